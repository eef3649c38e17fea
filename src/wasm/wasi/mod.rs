//! WASI preview1, the subset real eBPF guests import (design.md section 5), written by hand:
//! wasmi_wasi would add 41 crates and ~0.3 MB for functions these guests never call. One file
//! per area: `env` (arguments, environment), `fd` (stdio and open files), `path` (opening
//! below granted directories), `clock` (clocks, sleeping, random, exit).
//!
//! Files: only below directories granted with `--dir`, opened with openat2(RESOLVE_BENEATH) so
//! `..` and symlinks cannot leave them. Environment: only what `--env` passes. Stdout and
//! stderr go to the instance's sink.

mod clock;
mod env;
mod fd;
mod path;

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use wasmi::Linker;

use super::host::Host;
use super::mem;

pub const ESUCCESS: i32 = 0;
pub const EBADF: i32 = 8;
pub const EFAULT: i32 = 21;
pub const EINTR: i32 = 27;
pub const EINVAL: i32 = 28;
pub const EIO: i32 = 29;
pub const ENOENT: i32 = 44;
pub const ENOSYS: i32 = 52;
pub const ENOTCAPABLE: i32 = 76;
pub const EACCES: i32 = 2;
pub const EEXIST: i32 = 20;
pub const EISDIR: i32 = 31;
pub const ENOTDIR: i32 = 54;
pub const EMFILE: i32 = 33;
pub const ESPIPE: i32 = 70;

/// Files one guest may have open at once.
pub(super) const MAX_GUEST_FDS: usize = 256;

pub(super) const FILETYPE_CHARACTER_DEVICE: u8 = 2;
pub(super) const FILETYPE_DIRECTORY: u8 = 3;
pub(super) const FILETYPE_REGULAR_FILE: u8 = 4;

/// An open file of the guest.
pub enum Fd {
    Stdin,
    Stdout,
    Stderr,
    /// A granted directory: host fd and the name the guest sees.
    Dir(OwnedFd, String),
    File(OwnedFd),
}

pub struct WasiState {
    pub args: Vec<Vec<u8>>,
    pub env: Vec<Vec<u8>>,
    pub fds: Vec<Option<Fd>>,
}

impl WasiState {
    pub fn new(args: Vec<String>, env: Vec<String>) -> WasiState {
        WasiState {
            args: args.into_iter().map(|a| a.into_bytes()).collect(),
            env: env.into_iter().map(|a| a.into_bytes()).collect(),
            fds: vec![Some(Fd::Stdin), Some(Fd::Stdout), Some(Fd::Stderr)],
        }
    }

    /// Grants a host directory, seen by the guest as `guest`.
    pub fn preopen(&mut self, host: &str, guest: &str) -> std::io::Result<()> {
        let c = std::ffi::CString::new(host).map_err(|_| std::io::ErrorKind::InvalidInput)?;
        // SAFETY: c is NUL-terminated.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd was just opened and is owned by nobody else.
        self.fds.push(Some(Fd::Dir(
            unsafe { OwnedFd::from_raw_fd(fd) },
            guest.to_string(),
        )));
        Ok(())
    }

    pub(super) fn raw(&self, fd: i32) -> Option<RawFd> {
        use std::os::fd::AsRawFd;
        match self.fds.get(fd as usize)?.as_ref()? {
            Fd::Stdin => Some(0),
            Fd::Stdout => Some(1),
            Fd::Stderr => Some(2),
            Fd::Dir(f, _) | Fd::File(f) => Some(f.as_raw_fd()),
        }
    }
}

pub(super) fn errno_of(e: &std::io::Error) -> i32 {
    match e.raw_os_error() {
        Some(libc::ENOENT) => ENOENT,
        Some(libc::EACCES) | Some(libc::EPERM) => EACCES,
        Some(libc::EEXIST) => EEXIST,
        Some(libc::EISDIR) => EISDIR,
        Some(libc::ENOTDIR) => ENOTDIR,
        Some(libc::EXDEV) | Some(libc::ELOOP) => ENOTCAPABLE,
        Some(libc::EINVAL) => EINVAL,
        Some(libc::EBADF) => EBADF,
        Some(libc::EINTR) => EINTR,
        _ => EIO,
    }
}

/// Writes a little-endian u32/u64 to guest memory; false if out of range.
pub(super) fn put32(m: &mut [u8], at: i32, v: u32) -> bool {
    mem::write(m, at, &v.to_le_bytes())
}
pub(super) fn put64(m: &mut [u8], at: i32, v: u64) -> bool {
    mem::write(m, at, &v.to_le_bytes())
}

/// args_get / environ_get: pointers into `buf` written at `ptrs`.
pub(super) fn write_strings(m: &mut [u8], list: &[Vec<u8>], ptrs: i32, buf: i32) -> i32 {
    let mut off = buf as u32;
    for (i, s) in list.iter().enumerate() {
        if !put32(m, ptrs.wrapping_add(4 * i as i32), off) {
            return EFAULT;
        }
        let mut z = s.clone();
        z.push(0);
        if !mem::write(m, off as i32, &z) {
            return EFAULT;
        }
        off += z.len() as u32;
    }
    ESUCCESS
}

pub(super) fn sizes(m: &mut [u8], list: &[Vec<u8>], count: i32, size: i32) -> i32 {
    let total: usize = list.iter().map(|s| s.len() + 1).sum();
    written(put32(m, count, list.len() as u32) && put32(m, size, total as u32))
}

/// Reads the (ptr, len) pairs of an iovec array, checked against memory.
pub(super) fn iovecs(m: &[u8], iovs: i32, n: i32) -> Option<Vec<(usize, usize)>> {
    if !(0..=1024).contains(&n) {
        return None;
    }
    let raw = mem::slice(m, iovs, n.checked_mul(8)?)?;
    let mut v = Vec::with_capacity(n as usize);
    for c in raw.chunks_exact(8) {
        let p = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize;
        let l = u32::from_le_bytes([c[4], c[5], c[6], c[7]]) as usize;
        if p.checked_add(l)? > m.len() {
            return None;
        }
        v.push((p, l));
    }
    Some(v)
}

const M: &str = "wasi_snapshot_preview1";

/// The errno of a call whose only failure left is writing its result into guest memory:
/// success, or EFAULT when the guest's pointer was out of bounds.
fn written(ok: bool) -> i32 {
    if ok {
        ESUCCESS
    } else {
        EFAULT
    }
}

pub fn add_to_linker(linker: &mut Linker<Host>) -> Result<(), wasmi::Error> {
    env::add_to_linker(linker)?;
    fd::add_to_linker(linker)?;
    path::add_to_linker(linker)?;
    clock::add_to_linker(linker)
}

// libc's stat field types differ by arch (st_nlink is u32 on aarch64): widen them all.
#[allow(clippy::useless_conversion)]
pub(super) fn filestat(m: &mut [u8], out: i32, st: &libc::stat) -> i32 {
    let ft = match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => FILETYPE_DIRECTORY,
        libc::S_IFREG => FILETYPE_REGULAR_FILE,
        libc::S_IFCHR => FILETYPE_CHARACTER_DEVICE,
        libc::S_IFLNK => 7,
        _ => 0,
    };
    let mut b = [0u8; 64];
    b[0..8].copy_from_slice(&u64::from(st.st_dev).to_le_bytes());
    b[8..16].copy_from_slice(&u64::from(st.st_ino).to_le_bytes());
    b[16] = ft;
    b[24..32].copy_from_slice(&u64::from(st.st_nlink).to_le_bytes());
    b[32..40].copy_from_slice(&(st.st_size as u64).to_le_bytes());
    let ns = |s: i64, n: i64| {
        (s as u64)
            .wrapping_mul(1_000_000_000)
            .wrapping_add(n as u64)
    };
    b[40..48].copy_from_slice(&ns(st.st_atime, st.st_atime_nsec).to_le_bytes());
    b[48..56].copy_from_slice(&ns(st.st_mtime, st.st_mtime_nsec).to_le_bytes());
    b[56..64].copy_from_slice(&ns(st.st_ctime, st.st_ctime_nsec).to_le_bytes());
    written(mem::write(m, out, &b))
}
