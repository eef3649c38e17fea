//! The kernel's BTF, as much of it as one object needs: none, the part `btf::core` cuts out, or
//! all of it, from where `btf_source` finds it. sysfs BTF is mapped where the kernel allows it.

use std::os::fd::AsRawFd;

use super::btf_source::Origin;
pub use super::btf_source::{KernelBtf, SYS_BTF};
use super::chain;
use crate::btf::core::{self, Needs};
use crate::error::{Error, Result};

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

/// The bytes of the BTF at `origin`: sysfs mapped, the rest read.
fn bytes_of(src: &KernelBtf, origin: &Origin) -> Result<BtfBytes> {
    match origin {
        Origin::Sysfs(p) => read_btf(&p.to_string_lossy(), true)
            .map_err(|e| Error::msg(format!("reading kernel BTF {}: {e}", p.display()))),
        o => src.read(o).map(BtfBytes::Read),
    }
}

/// The ids of named types in the kernel's own BTF (typed ksyms, kfuncs), found by a scan of
/// the raw BTF: no parse. None when the kernel has no BTF of its own (the BTF of a package
/// or a node directory has other ids, and the kernel could not resolve any).
pub fn kernel_ids(src: &KernelBtf, wanted: &[(&str, u8)]) -> Result<Option<Vec<Option<u32>>>> {
    if !src.kernel_has_btf() {
        return Ok(None);
    }
    let origin = src.locate()?;
    let data = bytes_of(src, &origin).map_err(|e| e.context("for the object's __ksym externs"))?;
    crate::btf::edit::ids_by_name(&data, wanted)
        .map(Some)
        .map_err(|e| Error::invalid(format!("kernel BTF from {origin}: {e}")))
}

/// The kernel BTF aya needs for `needs`: none, the part `core_btf` cuts out, or all of it.
pub fn kernel_btf(src: &KernelBtf, needs: &Needs) -> Result<Option<aya::Btf>> {
    // --btf is checked even when the object needs no kernel BTF: a typo should not pass unseen.
    if src.file.is_some() {
        src.locate()?;
    }
    if *needs == Needs::Nothing {
        log::debug!("kernel BTF: not needed (no CO-RE relocations or BTF attach points)");
        return Ok(None);
    }
    let origin = src.locate()?;
    let data = bytes_of(src, &origin)?;
    log::info!("kernel BTF: {origin} ({} bytes)", data.len());
    let bad = |e: &dyn std::fmt::Display| Error::invalid(format!("kernel BTF from {origin}: {e}"));
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
