//! Files below the granted directories: path_open, path_filestat_get.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use wasmi::{Caller, Linker};

use super::{errno_of, filestat, put32, written, Fd, M, MAX_GUEST_FDS};
use super::{EBADF, EFAULT, EINVAL, EMFILE};
use crate::wasm::host::Host;
use crate::wasm::mem;

/// (A table of host functions, one entry per import.)
pub(super) fn add_to_linker(linker: &mut Linker<Host>) -> Result<(), wasmi::Error> {
    linker.func_wrap(
        M,
        "path_open",
        |mut c: Caller<'_, Host>,
         dirfd: i32,
         _dirflags: i32,
         path: i32,
         path_len: i32,
         oflags: i32,
         rights: i64,
         _inherit: i64,
         fdflags: i32,
         out: i32|
         -> i32 {
            let (m, h) = mem::split(&mut c);
            let Some(Some(Fd::Dir(dir, _))) = h.wasi.fds.get(dirfd as usize) else {
                return EBADF;
            };
            let Some(p) = mem::slice(m, path, path_len) else {
                return EFAULT;
            };
            let Ok(cpath) = std::ffi::CString::new(p) else {
                return EINVAL;
            };
            // rights bit 6 = fd_write; oflags: 1 creat, 2 directory, 4 excl, 8 trunc.
            let write = rights & (1 << 6) != 0;
            let mut flags = if write { libc::O_RDWR } else { libc::O_RDONLY } | libc::O_CLOEXEC;
            if oflags & 1 != 0 {
                flags |= libc::O_CREAT;
            }
            if oflags & 2 != 0 {
                flags |= libc::O_DIRECTORY;
            }
            if oflags & 4 != 0 {
                flags |= libc::O_EXCL;
            }
            if oflags & 8 != 0 {
                flags |= libc::O_TRUNC;
            }
            if fdflags & 1 != 0 {
                flags |= libc::O_APPEND;
            }
            use std::os::fd::AsRawFd;
            let fd = match openat2_beneath(dir.as_raw_fd(), &cpath, flags) {
                Ok(fd) => fd,
                Err(e) => return errno_of(&e),
            };
            // Reuse closed slots; cap what one guest may hold open (host fds are shared).
            let slot = match h.wasi.fds.iter().position(Option::is_none) {
                Some(i) => i,
                None if h.wasi.fds.len() < MAX_GUEST_FDS => {
                    h.wasi.fds.push(None);
                    h.wasi.fds.len() - 1
                }
                None => return EMFILE,
            };
            h.wasi.fds[slot] = Some(Fd::File(fd));
            written(put32(m, out, slot as u32))
        },
    )?;
    linker.func_wrap(
        M,
        "path_filestat_get",
        |mut c: Caller<'_, Host>, dirfd: i32, _flags: i32, path: i32, len: i32, out: i32| -> i32 {
            let (m, h) = mem::split(&mut c);
            let Some(Some(Fd::Dir(dir, _))) = h.wasi.fds.get(dirfd as usize) else {
                return EBADF;
            };
            let Some(p) = mem::slice(m, path, len) else {
                return EFAULT;
            };
            let Ok(cpath) = std::ffi::CString::new(p) else {
                return EINVAL;
            };
            use std::os::fd::AsRawFd;
            let fd = match openat2_beneath(dir.as_raw_fd(), &cpath, libc::O_PATH | libc::O_CLOEXEC)
            {
                Ok(fd) => fd,
                Err(e) => return errno_of(&e),
            };
            match crate::sys::fstat(fd.as_raw_fd()) {
                Ok(st) => filestat(m, out, &st),
                Err(e) => errno_of(&e),
            }
        },
    )?;
    Ok(())
}

/// openat2 with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS: the kernel refuses any path that
/// leaves `dir`, through `..`, an absolute path or a symlink.
pub(super) fn openat2_beneath(
    dir: RawFd,
    path: &std::ffi::CStr,
    flags: i32,
) -> std::io::Result<OwnedFd> {
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
    const RESOLVE_BENEATH: u64 = 0x08;
    // openat2 refuses a mode unless a file may be created.
    let mode = if flags & libc::O_CREAT != 0 { 0o644 } else { 0 };
    let how = OpenHow {
        flags: flags as u64,
        mode,
        resolve: RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: how and path are valid for the call; the result is a new fd or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}
