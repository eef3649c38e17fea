//! `--btfgen`: the kernel BTF a package carries for kernels without their own. Each kernel's
//! BTF (a BTFHub tree, or files) is cut to what the package's objects relocate against
//! (`btf::gen`), and the set is one tar.gz in BTFHub layout. Reads the files it is given.

use std::path::{Path, PathBuf};

use super::Object;
use crate::btf::gen::{min_core_btf, ObjectCore};
use crate::btf::hub::{BtfArchive, BtfKey};
use crate::error::{Error, ErrorKind, Result};

/// At most this many kernels in one set (btfhub-archive has a few thousand per arch).
const MAX_KERNELS: usize = 50_000;

/// What a `--btfgen` made.
#[derive(Debug)]
pub struct Summary {
    pub kernels: usize,
    /// The kernels' BTF files as given (decompressed), and cut down.
    pub full_bytes: u64,
    pub min_bytes: u64,
    /// The set as the package carries it (tar.gz).
    pub carried_bytes: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "kernel BTF for {} kernel(s): {} bytes cut to {} ({} per kernel on average), {} bytes in the package",
            self.kernels,
            self.full_bytes,
            self.min_bytes,
            self.min_bytes / self.kernels.max(1) as u64,
            self.carried_bytes
        )
    }
}

fn usage(m: String) -> Error {
    Error::new(ErrorKind::Usage, m)
}

/// The kernel BTF files `args` name: a directory in BTFHub layout (searched for `*.btf` and
/// `*.btf.tar.xz`), a file whose last four path components are its key, or `KEY=FILE` with
/// KEY as `ID/VERSION_ID/ARCH/RELEASE`.
pub fn gather(args: &[String]) -> Result<Vec<(BtfKey, PathBuf)>> {
    let mut out: Vec<(BtfKey, PathBuf)> = Vec::new();
    for a in args {
        if let Some((k, f)) = a.split_once('=') {
            let key = BtfKey::from_path(&format!("{}.btf", k.trim_end_matches(".btf")))
                .ok_or_else(|| usage(format!("--btfgen {a}: KEY must be ID/VERSION_ID/ARCH/RELEASE (as uname -r says it)")))?;
            out.push((key, PathBuf::from(f)));
            continue;
        }
        let p = Path::new(a);
        let meta = std::fs::metadata(p)
            .map_err(|e| Error::new(ErrorKind::NotFound, format!("--btfgen {a}: {e}")))?;
        if meta.is_dir() {
            let before = out.len();
            walk(p, p, 0, &mut out)?;
            if out.len() == before {
                return Err(usage(format!(
                    "--btfgen {a}: no BTF files in BTFHub layout (ID/VERSION_ID/ARCH/RELEASE.btf or .btf.tar.xz) under it"
                )));
            }
        } else {
            let key = BtfKey::from_path(a).ok_or_else(|| {
                usage(format!("--btfgen {a}: its path does not end in ID/VERSION_ID/ARCH/RELEASE.btf; name the kernel: --btfgen ID/VERSION_ID/ARCH/RELEASE={a}"))
            })?;
            out.push((key, p.to_path_buf()));
        }
        if out.len() > MAX_KERNELS {
            return Err(usage(format!("--btfgen: more than {MAX_KERNELS} kernels")));
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.0 == b.0);
    Ok(out)
}

fn walk(root: &Path, dir: &Path, depth: usize, out: &mut Vec<(BtfKey, PathBuf)>) -> Result<()> {
    if depth > 8 || out.len() > MAX_KERNELS {
        return Ok(());
    }
    let rd = std::fs::read_dir(dir)
        .map_err(|e| Error::msg(format!("--btfgen {}: {e}", dir.display())))?;
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if p.is_dir() && !name.starts_with('.') {
            walk(root, &p, depth + 1, out)?;
        } else if name.ends_with(".btf") || name.ends_with(".btf.tar.xz") {
            let rel = p
                .strip_prefix(root)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned();
            if let Some(k) = BtfKey::from_path(&rel) {
                out.push((k, p));
            }
        }
    }
    Ok(())
}

/// The kernel BTF of `kernels`, cut to what `objects` need, as one set. None when the objects
/// have no CO-RE relocations (they need no kernel BTF).
pub fn cut(
    objects: &[&Object],
    kernels: &[(BtfKey, PathBuf)],
) -> Result<Option<(BtfArchive, Summary)>> {
    let mut parts = Vec::new();
    for o in objects {
        let elf = super::elf::Elf::parse(&o.bytes)?;
        let (Some(b), Some(x)) = (elf.section(".BTF"), elf.section(".BTF.ext")) else {
            continue;
        };
        let strings = crate::btf::split(elf.section_data(b))?.1.to_vec();
        let ext = elf.section_data(x).to_vec();
        if !crate::btf::core::core_relos(&ext)?.is_empty() {
            parts.push((o, strings, ext));
        }
    }
    if parts.is_empty() {
        return Ok(None);
    }
    let cores: Vec<ObjectCore> = parts
        .iter()
        .map(|(o, s, x)| ObjectCore {
            btf: &o.btf,
            strings: s,
            ext: x,
        })
        .collect();
    let mut files = Vec::with_capacity(kernels.len());
    let (mut full, mut min) = (0u64, 0u64);
    for (key, path) in kernels {
        let what = format!("--btfgen {} ({key})", path.display());
        let data = crate::btf::file::read_any(path).map_err(|e| e.context(&what))?;
        let cut = min_core_btf(&cores, &data).map_err(|e| e.context(&what))?;
        full += data.len() as u64;
        min += cut.len() as u64;
        files.push((key.clone(), cut));
    }
    let set = BtfArchive::build(&files)?;
    let summary = Summary {
        kernels: files.len(),
        full_bytes: full,
        min_bytes: min,
        carried_bytes: set.bytes().len(),
    };
    Ok(Some((set, summary)))
}
