//! BTFHub's layout of kernel BTF files, and the sets of them packages carry. A kernel's BTF is
//! filed under `ID/VERSION_ID/ARCH/RELEASE.btf`: `/etc/os-release`'s ID and VERSION_ID, the
//! BTFHub name of the machine (`x86_64`, `arm64`, `riscv64`) and `uname -r`. A set is a tar
//! archive in that layout, gzipped (Inspektor Gadget's btfgen layer, our package.json key and
//! Wasm section) or plain with a `btfhub-archive/` prefix (ecc's btfgen tar). Pure.

use std::sync::Arc;

use crate::codec::gzip;
use crate::codec::tar;
use crate::error::{Error, Result};

/// Largest set we inflate: thousands of minimized BTFs, or dozens of whole ones.
pub const MAX_ARCHIVE: usize = 256 << 20;

/// What one kernel's BTF is filed under.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BtfKey {
    pub id: String,
    pub version_id: String,
    pub arch: String,
    pub release: String,
}

impl std::fmt::Display for BtfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.path())
    }
}

fn component_ok(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\0'])
}

impl BtfKey {
    /// `ID/VERSION_ID/ARCH/RELEASE.btf`.
    pub fn path(&self) -> String {
        format!(
            "{}/{}/{}/{}.btf",
            self.id, self.version_id, self.arch, self.release
        )
    }

    /// The key of a path in BTFHub layout: its last four components, the last one
    /// `RELEASE.btf` (or `RELEASE.btf.tar.xz`, as btfhub-archive ships them).
    pub fn from_path(path: &str) -> Option<BtfKey> {
        let parts: Vec<&str> = path.trim_end_matches('/').rsplit('/').take(4).collect();
        let [file, arch, version_id, id] = parts[..] else {
            return None;
        };
        let release = file
            .strip_suffix(".btf.tar.xz")
            .or_else(|| file.strip_suffix(".btf"))?;
        let key = BtfKey {
            id: id.into(),
            version_id: version_id.into(),
            arch: arch.into(),
            release: release.into(),
        };
        [&key.id, &key.version_id, &key.arch, &key.release]
            .iter()
            .all(|s| component_ok(s))
            .then_some(key)
    }

    /// This host's key, from the text of its os-release file, `uname -m` and `uname -r`.
    /// None when the os-release names no ID or VERSION_ID (rolling distributions): only the
    /// flat `RELEASE.btf` layout can serve such a host.
    pub fn host(os_release: &str, machine: &str, release: &str) -> Option<BtfKey> {
        let key = BtfKey {
            id: os_release_field(os_release, "ID")?,
            version_id: os_release_field(os_release, "VERSION_ID")?,
            arch: btfhub_arch(machine).into(),
            release: release.into(),
        };
        [&key.id, &key.version_id, &key.arch, &key.release]
            .iter()
            .all(|s| component_ok(s))
            .then_some(key)
    }
}

/// BTFHub's name for a machine (`uname -m`): arm64 for aarch64, the same name otherwise.
pub fn btfhub_arch(machine: &str) -> &str {
    match machine {
        "aarch64" => "arm64",
        m => m,
    }
}

/// A field of an os-release file (`KEY=value`, `KEY="value"` or `KEY='value'`).
pub fn os_release_field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let v = l.trim().strip_prefix(key)?.strip_prefix('=')?;
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(v);
        (!v.is_empty()).then(|| v.to_string())
    })
}

/// Kernel BTF files a package carries, kept as carried and inflated only when looked into
/// (a kernel with BTF of its own never does).
#[derive(Clone)]
pub struct BtfArchive {
    bytes: Arc<Vec<u8>>,
    packing: Packing,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Packing {
    Tar,
    Gzip,
    Xz,
}

impl std::fmt::Debug for BtfArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BtfArchive({} bytes)", self.bytes.len())
    }
}

impl BtfArchive {
    /// A gzipped tar in BTFHub layout.
    pub fn tar_gz(bytes: Vec<u8>) -> Result<BtfArchive> {
        if !bytes.starts_with(&[0x1f, 0x8b]) {
            return Err(Error::invalid(
                "kernel BTF set: not a gzip stream (expected a tar.gz in BTFHub layout)",
            ));
        }
        Ok(BtfArchive {
            bytes: Arc::new(bytes),
            packing: Packing::Gzip,
        })
    }

    /// A btfgen layer of an OCI artifact: Inspektor Gadget's spec says "a tarball" in
    /// btfhub-archive's layout, so a tar plain, gzipped or xz'd, told apart by magic. Nothing
    /// is checked until a kernel without BTF of its own looks into it (a damaged layer does
    /// not stop a tool on a kernel that never needs it).
    pub fn layer(bytes: Vec<u8>) -> BtfArchive {
        let packing = if bytes.starts_with(&[0x1f, 0x8b]) {
            Packing::Gzip
        } else if bytes.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Packing::Xz
        } else {
            Packing::Tar
        };
        BtfArchive {
            bytes: Arc::new(bytes),
            packing,
        }
    }

    /// A plain tar whose BTF files are in BTFHub layout under any prefix (ecc's
    /// `btfhub-archive/`).
    pub fn tar(bytes: Vec<u8>) -> BtfArchive {
        BtfArchive {
            bytes: Arc::new(bytes),
            packing: Packing::Tar,
        }
    }

    /// The set of `files` as a reproducible tar.gz, in key order.
    pub fn build(files: &[(BtfKey, Vec<u8>)]) -> Result<BtfArchive> {
        let mut sorted: Vec<(String, &[u8])> = files
            .iter()
            .map(|(k, b)| (k.path(), b.as_slice()))
            .collect();
        sorted.sort();
        sorted.dedup_by(|a, b| a.0 == b.0);
        let list: Vec<(&str, &[u8])> = sorted.iter().map(|(p, b)| (p.as_str(), *b)).collect();
        BtfArchive::tar_gz(gzip::gzip(&tar::write(&list)?))
    }

    /// The bytes as carried (a tar.gz, or ecc's plain tar).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn is_gzipped(&self) -> bool {
        self.packing == Packing::Gzip
    }

    /// Every BTF file of the set with its key; entries not in BTFHub layout are left out.
    pub fn files(&self) -> Result<Vec<(BtfKey, Vec<u8>)>> {
        let what = "the package's kernel BTF set";
        let inflated;
        let raw: &[u8] = match self.packing {
            Packing::Gzip => {
                inflated = gzip::gunzip(&self.bytes, MAX_ARCHIVE, what)?;
                &inflated
            }
            Packing::Xz => {
                inflated = crate::codec::xz::unxz(&self.bytes, MAX_ARCHIVE, what)?;
                &inflated
            }
            Packing::Tar => &self.bytes,
        };
        let mut out: Vec<(BtfKey, Vec<u8>)> = Vec::new();
        for e in tar::entries(raw, what)? {
            if !e.path.ends_with(".btf") {
                continue;
            }
            if let Some(k) = BtfKey::from_path(&e.path) {
                if !out.iter().any(|(o, _)| *o == k) {
                    out.push((k, e.data.to_vec()));
                }
            }
        }
        if out.is_empty() {
            return Err(Error::invalid(format!(
                "{what}: no BTF file in BTFHub layout (ID/VERSION_ID/ARCH/RELEASE.btf) in it"
            )));
        }
        Ok(out)
    }

    /// The BTF filed under `key`, if the set has it.
    pub fn find(&self, key: &BtfKey) -> Result<Option<Vec<u8>>> {
        Ok(self
            .files()?
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, b)| b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(r: &str) -> BtfKey {
        BtfKey {
            id: "debian".into(),
            version_id: "12".into(),
            arch: "x86_64".into(),
            release: r.into(),
        }
    }

    #[test]
    fn keys_from_paths_and_hosts() {
        assert_eq!(
            BtfKey::from_path("/srv/hub/debian/12/x86_64/6.1.0-9-amd64.btf.tar.xz"),
            Some(key("6.1.0-9-amd64"))
        );
        assert_eq!(
            BtfKey::from_path("btfhub-archive/debian/12/x86_64/6.1.0-9-amd64.btf"),
            Some(key("6.1.0-9-amd64"))
        );
        assert_eq!(key("r").path(), "debian/12/x86_64/r.btf");
        for bad in [
            "12/x86_64/r.btf",
            "a/b/c/r.txt",
            "a/../c/r.btf",
            "a/b/c/.btf",
        ] {
            assert_eq!(BtfKey::from_path(bad), None, "{bad}");
        }
        let os = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nID=debian\n";
        assert_eq!(
            BtfKey::host(os, "x86_64", "6.1.0-9-amd64"),
            Some(key("6.1.0-9-amd64"))
        );
        let arm = BtfKey::host("ID='ubuntu'\nVERSION_ID=22.04", "aarch64", "5.15.0").unwrap();
        assert_eq!(arm.path(), "ubuntu/22.04/arm64/5.15.0.btf");
        assert_eq!(
            BtfKey::host("ID=arch\n", "x86_64", "6.9"),
            None,
            "no VERSION_ID"
        );
        assert_eq!(BtfKey::host("ID=x/y\nVERSION_ID=1", "x86_64", "6.9"), None);
    }

    #[test]
    fn sets_round_trip_and_read_ecc_archives() {
        let set = BtfArchive::build(&[(key("b"), vec![2; 3]), (key("a"), vec![1; 5])]).unwrap();
        assert!(set.is_gzipped());
        let files = set.files().unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0], (key("a"), vec![1; 5]), "sorted by key");
        assert_eq!(set.find(&key("b")).unwrap(), Some(vec![2; 3]));
        assert_eq!(set.find(&key("c")).unwrap(), None);
        // ecc: package.json, the object and btfhub-archive/ in one plain tar
        let t = tar::write(&[
            ("package.json", b"{}"),
            ("client.bpf.o", b"\x7fELF"),
            ("./btfhub-archive/debian/12/x86_64/a.btf", &[9; 4]),
        ])
        .unwrap();
        let ecc = BtfArchive::tar(t);
        assert_eq!(ecc.files().unwrap(), vec![(key("a"), vec![9; 4])]);
        assert!(BtfArchive::tar_gz(b"{}".to_vec()).is_err());
        let broken = BtfArchive::tar_gz(vec![0x1f, 0x8b, 8, 0, 0, 0]).unwrap();
        assert!(broken.files().is_err());
    }

    #[test]
    fn layers_are_read_by_magic_and_only_when_looked_into() {
        let files = vec![(key("5.4.0-edge"), b"\x9f\xeb\x01\x00btf".to_vec())];
        let gz = BtfArchive::build(&files).unwrap();
        let plain = gzip::gunzip(gz.bytes(), 1 << 20, "t").unwrap();
        for layer in [
            BtfArchive::layer(gz.bytes().to_vec()),
            BtfArchive::layer(plain),
        ] {
            assert_eq!(layer.files().unwrap(), files);
        }
        // Junk is accepted as carried and refused, with what it is, when looked into.
        let junk = BtfArchive::layer(b"btf".to_vec());
        let e = junk.files().unwrap_err().to_string();
        assert!(e.contains("the package's kernel BTF set"), "{e}");
    }
}
