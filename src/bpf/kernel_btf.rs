//! The kernel's BTF, as much of it as one object needs: none, the part `btf::core` cuts out, or
//! all of it. sysfs BTF is mapped where the kernel allows it.

use std::os::fd::AsRawFd;

use super::chain;
use crate::btf::core::{self, Needs};
use crate::error::{Error, ErrorKind, Result};

/// Where the kernel's BTF comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum KernelBtf {
    #[default]
    Sys,
    File(String),
}

pub const SYS_BTF: &str = "/sys/kernel/btf/vmlinux";

/// A kernel BTF file's bytes: mapped where the kernel allows it (sysfs BTF since Linux 6.16),
/// which saves copying ~6 MB in 4 KiB reads; read otherwise.
enum BtfBytes {
    Mapped(*const u8, usize),
    Read(Vec<u8>),
}

impl std::ops::Deref for BtfBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            // SAFETY: a private read-only mapping of `len` bytes, alive until drop.
            BtfBytes::Mapped(p, len) => unsafe { std::slice::from_raw_parts(*p, *len) },
            BtfBytes::Read(v) => v,
        }
    }
}

impl Drop for BtfBytes {
    fn drop(&mut self) {
        if let BtfBytes::Mapped(p, len) = *self {
            // SAFETY: our own mapping of `len` bytes; no slice of it outlives `self`.
            unsafe { libc::munmap(p as *mut libc::c_void, len) };
        }
    }
}

/// Only sysfs BTF is mapped: it is kernel memory that cannot change, where a mapped --btf file
/// could be rewritten or truncated (SIGBUS) under the parser by another process.
fn read_btf(path: &str, mappable: bool) -> std::io::Result<BtfBytes> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len() as usize;
    if mappable && len > 0 {
        // SAFETY: a new private read-only mapping of an open file; failure is MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                f.as_raw_fd(),
                0,
            )
        };
        if p != libc::MAP_FAILED {
            return Ok(BtfBytes::Mapped(p as *const u8, len));
        }
    }
    let mut v = Vec::with_capacity(len);
    f.read_to_end(&mut v)?;
    Ok(BtfBytes::Read(v))
}

/// The ids of named types in the kernel's BTF (typed ksyms, kfuncs), found by a scan of the
/// raw BTF: no parse.
pub fn kernel_ids(src: &KernelBtf, wanted: &[(&str, u8)]) -> Result<Vec<Option<u32>>> {
    let path = match src {
        KernelBtf::Sys => SYS_BTF,
        KernelBtf::File(p) => p.as_str(),
    };
    let data = read_btf(path, matches!(src, KernelBtf::Sys)).map_err(|e| {
        Error::msg(format!(
            "reading kernel BTF {path} (for the object's __ksym externs): {e}"
        ))
    })?;
    crate::btf::edit::ids_by_name(&data, wanted)
        .map_err(|e| Error::invalid(format!("kernel BTF {path}: {e}")))
}

/// The kernel BTF aya needs for `needs`: none, the part `core_btf` cuts out, or all of it.
pub fn kernel_btf(src: &KernelBtf, needs: &Needs) -> Result<Option<aya::Btf>> {
    let path = match src {
        KernelBtf::Sys => SYS_BTF,
        // Checked even when the object needs no kernel BTF: a typo should not pass unseen.
        KernelBtf::File(p) => match std::fs::metadata(p) {
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("--btf {p}: no such file"),
                ))
            }
            Ok(m) if !m.is_file() => {
                return Err(Error::invalid(format!(
                "--btf {p}: not a regular file (give a raw BTF file, like /sys/kernel/btf/vmlinux)"
            )))
            }
            Ok(_) => p.as_str(),
        },
    };
    if *needs == Needs::Nothing {
        return Ok(None);
    }
    let data = read_btf(path, matches!(src, KernelBtf::Sys)).map_err(|e| {
        Error::msg(match (src, e.kind()) {
            (KernelBtf::Sys, std::io::ErrorKind::NotFound) => format!(
                "kernel BTF not found at {SYS_BTF}: this kernel lacks CONFIG_DEBUG_INFO_BTF; pass --btf FILE with a BTF file for it"
            ),
            _ => format!("reading kernel BTF {path}: {e}"),
        })
    })?;
    let bad = |e: &dyn std::fmt::Display| Error::invalid(format!("kernel BTF {path}: {e}"));
    let cut;
    let raw = match needs {
        Needs::Names(names) => {
            cut = core::minimal_target(&data, names).map_err(|e| bad(&e))?;
            drop(data);
            &cut[..]
        }
        _ => &data[..],
    };
    aya::Btf::parse(raw, aya::Endianness::default())
        .map(Some)
        .map_err(|e| bad(&chain(&e)))
}
