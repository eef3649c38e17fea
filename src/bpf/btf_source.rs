//! Where the kernel's BTF comes from, in order: `--btf FILE` (the user's choice wins); sysfs
//! (`/sys/kernel/btf/vmlinux`, the kernel's own); the BTF the package carries; the node
//! directory (`--btf-dir`, BTFHub layout `ID/VERSION_ID/ARCH/RELEASE.btf[.tar.xz]` or flat
//! `RELEASE.btf[.tar.xz]`); libbpf's vmlinux paths (an ELF with a `.BTF` section). Files of
//! the package and the node directory are found by this kernel's key (os-release ID and
//! VERSION_ID, the BTFHub arch, `uname -r`): a BTF filed under another key is never used.
//! Every path is under [`Host::root`], so tests can give a whole other host.

use std::path::{Path, PathBuf};

use crate::btf::file::{has_btf, read_any};
use crate::btf::hub::{BtfArchive, BtfKey};
use crate::error::{Error, ErrorKind, Result};

pub const SYS_BTF: &str = "/sys/kernel/btf/vmlinux";
pub const DEFAULT_BTF_DIR: &str = "/var/lib/edge-ecli/btf";

/// libbpf's fallback locations of a kernel image with BTF (`btf__load_vmlinux_btf`).
const VMLINUX_PATHS: [&str; 7] = [
    "/boot/vmlinux-{R}",
    "/lib/modules/{R}/vmlinux-{R}",
    "/lib/modules/{R}/build/vmlinux",
    "/usr/lib/modules/{R}/kernel/vmlinux",
    "/usr/lib/debug/boot/vmlinux-{R}",
    "/usr/lib/debug/boot/vmlinux-{R}.debug",
    "/usr/lib/debug/lib/modules/{R}/vmlinux",
];

/// The host the lookups see: this one, unless a test gives another.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Host {
    /// Prefix of every path looked at (sysfs, os-release, the vmlinux paths); None: `/`.
    pub root: Option<PathBuf>,
    /// `uname -r` and `uname -m`; None: this kernel's.
    pub release: Option<String>,
    pub machine: Option<String>,
}

/// Where the kernel's BTF is looked for.
#[derive(Debug, Clone, Default)]
pub struct KernelBtf {
    /// `--btf FILE`: used whatever else there is.
    pub file: Option<String>,
    /// The node directory (`--btf-dir`; default [`DEFAULT_BTF_DIR`]).
    pub dir: Option<PathBuf>,
    /// What the package carries.
    pub carried: Option<BtfArchive>,
    pub host: Host,
}

/// Where the BTF in use came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(String),
    Sysfs(PathBuf),
    Package(BtfKey),
    NodeDir(PathBuf),
    Vmlinux(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File(p) => write!(f, "--btf {p}"),
            Origin::Sysfs(p) => write!(f, "sysfs ({})", p.display()),
            Origin::Package(k) => write!(f, "the package ({k})"),
            Origin::NodeDir(p) => write!(f, "the node directory ({})", p.display()),
            Origin::Vmlinux(p) => write!(f, "a vmlinux image ({}, its .BTF section)", p.display()),
        }
    }
}

impl KernelBtf {
    /// Only `--btf FILE`.
    pub fn file(path: impl Into<String>) -> KernelBtf {
        KernelBtf {
            file: Some(path.into()),
            ..KernelBtf::default()
        }
    }

    fn at(&self, p: &str) -> PathBuf {
        match &self.host.root {
            Some(r) => r.join(p.trim_start_matches('/')),
            None => PathBuf::from(p),
        }
    }

    pub fn sysfs(&self) -> PathBuf {
        self.at(SYS_BTF)
    }

    /// Does the kernel have BTF of its own? What BTF attach points (tp_btf, fentry, lsm...)
    /// and typed `__ksym`s need: the kernel resolves their type ids in it.
    pub fn kernel_has_btf(&self) -> bool {
        self.sysfs().exists()
    }

    pub fn node_dir(&self) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_BTF_DIR))
    }

    /// `uname -r`, and this kernel's BTFHub key (None without os-release ID and VERSION_ID).
    pub fn key(&self) -> (String, Option<BtfKey>) {
        let (r, m) = match (&self.host.release, &self.host.machine) {
            (Some(r), Some(m)) => (r.clone(), m.clone()),
            _ => {
                let (r, m) = crate::sys::uname();
                (
                    self.host.release.clone().unwrap_or(r),
                    self.host.machine.clone().unwrap_or(m),
                )
            }
        };
        let os = ["/etc/os-release", "/usr/lib/os-release"]
            .iter()
            .find_map(|p| crate::files::read_limited(self.at(p), 64 << 10).ok())
            .unwrap_or_default();
        let key = BtfKey::host(&String::from_utf8_lossy(&os), &m, &r);
        (r, key)
    }

    /// The first source that has this kernel's BTF, without reading it; or one line saying
    /// where it was looked for and what to do.
    pub fn locate(&self) -> Result<Origin> {
        if let Some(f) = &self.file {
            return match std::fs::metadata(f) {
                Err(_) => Err(Error::new(ErrorKind::NotFound, format!("--btf {f}: no such file"))),
                Ok(m) if !m.is_file() => Err(Error::invalid(format!(
                    "--btf {f}: not a regular file (give a BTF file, like /sys/kernel/btf/vmlinux, or a vmlinux with a .BTF section)"
                ))),
                Ok(_) => Ok(Origin::File(f.clone())),
            };
        }
        let sys = self.sysfs();
        if sys.exists() {
            return Ok(Origin::Sysfs(sys));
        }
        let (release, key) = self.key();
        let mut looked = vec![format!(
            "this kernel has no {SYS_BTF} (built without CONFIG_DEBUG_INFO_BTF)"
        )];
        if let Some(a) = &self.carried {
            let files = a
                .files()
                .map_err(|e| e.context("the package's kernel BTF"))?;
            if let Some(k) = key.as_ref().filter(|k| files.iter().any(|(f, _)| f == *k)) {
                return Ok(Origin::Package(k.clone()));
            }
            looked.push(format!(
                "the package carries BTF for {} other kernel(s)",
                files.len()
            ));
        }
        let dir = self.node_dir();
        let mut names: Vec<PathBuf> = Vec::new();
        if let Some(k) = &key {
            names.push(dir.join(k.path()));
            names.push(dir.join(format!("{}.tar.xz", k.path())));
        }
        names.push(dir.join(format!("{release}.btf")));
        names.push(dir.join(format!("{release}.btf.tar.xz")));
        if let Some(p) = names.iter().find(|p| p.is_file()) {
            return Ok(Origin::NodeDir(p.clone()));
        }
        looked.push(format!(
            "nothing in {} ({}{release}.btf[.tar.xz])",
            dir.display(),
            key.as_ref()
                .map(|k| format!("{}[.tar.xz] or ", k.path()))
                .unwrap_or_default()
        ));
        for p in VMLINUX_PATHS {
            let path = self.at(&p.replace("{R}", &release));
            if path.is_file() && has_btf(&path) {
                return Ok(Origin::Vmlinux(path));
            }
        }
        looked.push(format!(
            "no /boot/vmlinux-{release} or other vmlinux with BTF"
        ));
        Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "kernel BTF not found for {}: {}; put this kernel's BTF in {} (README: \"Kernels without BTF\"), run a package that carries it, or pass --btf FILE",
                key.map_or(release.clone(), |k| k.path()),
                looked.join(", "),
                dir.display()
            ),
        ))
    }

    /// The BTF of `origin` (raw BTF bytes), read whole.
    pub fn read(&self, origin: &Origin) -> Result<Vec<u8>> {
        let what = origin.to_string();
        let data = match origin {
            Origin::Package(k) => self
                .carried
                .as_ref()
                .and_then(|a| a.find(k).transpose())
                .transpose()?
                .ok_or_else(|| Error::msg(format!("{what}: gone from the package")))?,
            Origin::File(p) => read_any(Path::new(p)).map_err(|e| e.context(&what))?,
            Origin::Sysfs(p) | Origin::NodeDir(p) | Origin::Vmlinux(p) => {
                read_any(p).map_err(|e| e.context(&what))?
            }
        };
        if !data.starts_with(&[0x9f, 0xeb]) {
            return Err(Error::invalid(format!(
                "kernel BTF from {what}: bad BTF (no BTF magic; give raw BTF, like /sys/kernel/btf/vmlinux, or an ELF with a .BTF section)"
            )));
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::file::read_btf_file;

    const BTF: &[u8] = &[
        0x9f, 0xeb, 1, 0, 24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0,
    ];

    /// A host under a temporary root: os-release, and the given files.
    fn host(files: &[(&str, &[u8])]) -> (tempdir::Dir, KernelBtf) {
        let d = tempdir::Dir::new();
        std::fs::create_dir_all(d.0.join("etc")).unwrap();
        std::fs::write(d.0.join("etc/os-release"), "ID=debian\nVERSION_ID=\"12\"\n").unwrap();
        for (p, b) in files {
            let p = d.0.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b).unwrap();
        }
        let k = KernelBtf {
            dir: Some(d.0.join("var/lib/edge-ecli/btf")),
            host: Host {
                root: Some(d.0.clone()),
                release: Some("6.1.0-edge".into()),
                machine: Some("aarch64".into()),
            },
            ..KernelBtf::default()
        };
        (d, k)
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "edge-btf-src-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    fn key(release: &str) -> BtfKey {
        BtfKey {
            id: "debian".into(),
            version_id: "12".into(),
            arch: "arm64".into(),
            release: release.into(),
        }
    }

    #[test]
    fn the_order_of_the_sources_and_keys_that_must_match() {
        let node = "var/lib/edge-ecli/btf/debian/12/arm64/6.1.0-edge.btf";
        let (d, mut k) = host(&[
            ("sys/kernel/btf/vmlinux", BTF),
            (node, BTF),
            ("boot/vmlinux-6.1.0-edge", BTF),
        ]);
        k.carried = Some(BtfArchive::build(&[(key("6.1.0-edge"), BTF.to_vec())]).unwrap());
        assert_eq!(
            k.key().1,
            Some(key("6.1.0-edge")),
            "aarch64 is arm64 in BTFHub"
        );
        // sysfs first; --btf wins over everything
        assert_eq!(
            k.locate().unwrap(),
            Origin::Sysfs(d.0.join("sys/kernel/btf/vmlinux"))
        );
        assert!(k.kernel_has_btf());
        let mut f = k.clone();
        f.file = Some(d.0.join(node).to_string_lossy().into_owned());
        assert!(matches!(f.locate().unwrap(), Origin::File(_)));
        // without sysfs: the package, then the node directory, then /boot
        std::fs::remove_file(d.0.join("sys/kernel/btf/vmlinux")).unwrap();
        assert!(!k.kernel_has_btf());
        assert_eq!(k.locate().unwrap(), Origin::Package(key("6.1.0-edge")));
        assert_eq!(k.read(&Origin::Package(key("6.1.0-edge"))).unwrap(), BTF);
        k.carried = Some(BtfArchive::build(&[(key("6.1.0-other"), BTF.to_vec())]).unwrap());
        assert_eq!(
            k.locate().unwrap(),
            Origin::NodeDir(d.0.join(node)),
            "another kernel's BTF is never used"
        );
        std::fs::remove_file(d.0.join(node)).unwrap();
        std::fs::write(d.0.join("var/lib/edge-ecli/btf/6.1.0-other.btf"), BTF).unwrap();
        assert_eq!(
            k.locate().unwrap(),
            Origin::Vmlinux(d.0.join("boot/vmlinux-6.1.0-edge"))
        );
        std::fs::write(d.0.join("var/lib/edge-ecli/btf/6.1.0-edge.btf"), BTF).unwrap();
        assert_eq!(
            k.locate().unwrap(),
            Origin::NodeDir(d.0.join("var/lib/edge-ecli/btf/6.1.0-edge.btf")),
            "the flat layout"
        );
        std::fs::remove_file(d.0.join("var/lib/edge-ecli/btf/6.1.0-edge.btf")).unwrap();
        std::fs::remove_file(d.0.join("boot/vmlinux-6.1.0-edge")).unwrap();
        let e = k.locate().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let m = e.to_string();
        for want in [
            "kernel BTF not found for debian/12/arm64/6.1.0-edge.btf",
            "built without CONFIG_DEBUG_INFO_BTF",
            "the package carries BTF for 1 other kernel(s)",
            "debian/12/arm64/6.1.0-edge.btf[.tar.xz] or 6.1.0-edge.btf[.tar.xz]",
            "no /boot/vmlinux-6.1.0-edge",
            "--btf FILE",
        ] {
            assert!(m.contains(want), "{want:?} in {m}");
        }
        assert!(!m.contains('\n'), "one line");
        let mut missing = k.clone();
        missing.file = Some("/nonexistent/x.btf".into());
        assert_eq!(missing.locate().unwrap_err().kind(), ErrorKind::NotFound);
    }

    #[test]
    fn reads_the_btf_section_of_an_elf_file() {
        // A minimal ELF64 LE: header, .BTF data, .shstrtab, three section headers.
        let mut elf = vec![0u8; 64];
        elf[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
        let btf_off = elf.len() as u64;
        elf.extend_from_slice(BTF);
        let str_off = elf.len() as u64;
        let names = b"\0.BTF\0.shstrtab\0";
        elf.extend_from_slice(names);
        let shoff = elf.len() as u64;
        let mut sh = |name: u32, off: u64, size: u64| {
            let mut s = [0u8; 64];
            s[0..4].copy_from_slice(&name.to_le_bytes());
            s[0x18..0x20].copy_from_slice(&off.to_le_bytes());
            s[0x20..0x28].copy_from_slice(&size.to_le_bytes());
            elf.extend_from_slice(&s);
        };
        sh(0, 0, 0);
        sh(1, btf_off, BTF.len() as u64);
        sh(6, str_off, names.len() as u64);
        elf[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
        elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        elf[0x3e..0x40].copy_from_slice(&2u16.to_le_bytes());
        let (d, k) = host(&[("lib/modules/6.1.0-edge/build/vmlinux", &elf)]);
        let origin = k.locate().unwrap();
        assert_eq!(
            origin,
            Origin::Vmlinux(d.0.join("lib/modules/6.1.0-edge/build/vmlinux"))
        );
        assert_eq!(k.read(&origin).unwrap(), BTF);
        // an ELF without .BTF is passed over, and refused when named
        elf[str_off as usize + 1] = b'X';
        std::fs::write(d.0.join("lib/modules/6.1.0-edge/build/vmlinux"), &elf).unwrap();
        assert!(k.locate().is_err());
        let e = read_btf_file(&d.0.join("lib/modules/6.1.0-edge/build/vmlinux")).unwrap_err();
        assert!(e.to_string().contains("without a .BTF section"), "{e}");
        let short = d.0.join("short");
        std::fs::write(&short, &elf[..100]).unwrap();
        assert!(read_btf_file(&short).is_err());
    }
}
