//! WASI preview1, the subset real eBPF guests import (design.md section 5), written by hand:
//! wasmi_wasi would add 41 crates and ~0.3 MB for functions these guests never call.
//!
//! Files: only below directories granted with `--dir`, opened with openat2(RESOLVE_BENEATH) so
//! `..` and symlinks cannot leave them. Environment: only what `--env` passes.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use wasmi::{Caller, Error as Trap, Linker};

use super::{mem, Host};

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

/// Files one guest may have open at once.
const MAX_GUEST_FDS: usize = 256;

const FILETYPE_CHARACTER_DEVICE: u8 = 2;
const FILETYPE_DIRECTORY: u8 = 3;
const FILETYPE_REGULAR_FILE: u8 = 4;

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

    fn raw(&self, fd: i32) -> Option<RawFd> {
        use std::os::fd::AsRawFd;
        match self.fds.get(fd as usize)?.as_ref()? {
            Fd::Stdin => Some(0),
            Fd::Stdout => Some(1),
            Fd::Stderr => Some(2),
            Fd::Dir(f, _) | Fd::File(f) => Some(f.as_raw_fd()),
        }
    }
}

fn errno_of(e: &std::io::Error) -> i32 {
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
fn put32(m: &mut [u8], at: i32, v: u32) -> bool {
    mem::write(m, at, &v.to_le_bytes())
}
fn put64(m: &mut [u8], at: i32, v: u64) -> bool {
    mem::write(m, at, &v.to_le_bytes())
}

/// args_get / environ_get: pointers into `buf` written at `ptrs`.
fn write_strings(m: &mut [u8], list: &[Vec<u8>], ptrs: i32, buf: i32) -> i32 {
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

fn sizes(m: &mut [u8], list: &[Vec<u8>], count: i32, size: i32) -> i32 {
    let total: usize = list.iter().map(|s| s.len() + 1).sum();
    if put32(m, count, list.len() as u32) && put32(m, size, total as u32) {
        ESUCCESS
    } else {
        EFAULT
    }
}

/// Reads the (ptr, len) pairs of an iovec array, checked against memory.
fn iovecs(m: &[u8], iovs: i32, n: i32) -> Option<Vec<(usize, usize)>> {
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

pub fn add_to_linker(linker: &mut Linker<Host>) -> Result<(), wasmi::Error> {
    const M: &str = "wasi_snapshot_preview1";
    linker.func_wrap(
        M,
        "args_get",
        |mut c: Caller<'_, Host>, argv: i32, buf: i32| -> i32 {
            let (m, h) = mem::split(&mut c);
            write_strings(m, &h.wasi.args, argv, buf)
        },
    )?;
    linker.func_wrap(
        M,
        "args_sizes_get",
        |mut c: Caller<'_, Host>, n: i32, size: i32| -> i32 {
            let (m, h) = mem::split(&mut c);
            sizes(m, &h.wasi.args, n, size)
        },
    )?;
    linker.func_wrap(
        M,
        "environ_get",
        |mut c: Caller<'_, Host>, env: i32, buf: i32| -> i32 {
            let (m, h) = mem::split(&mut c);
            write_strings(m, &h.wasi.env, env, buf)
        },
    )?;
    linker.func_wrap(
        M,
        "environ_sizes_get",
        |mut c: Caller<'_, Host>, n: i32, size: i32| -> i32 {
            let (m, h) = mem::split(&mut c);
            sizes(m, &h.wasi.env, n, size)
        },
    )?;
    linker.func_wrap(
        M,
        "fd_write",
        |mut c: Caller<'_, Host>, fd: i32, iovs: i32, n: i32, nwritten: i32| -> i32 {
            let (m, h) = mem::split(&mut c);
            let Some(raw) = h.wasi.raw(fd) else {
                return EBADF;
            };
            if matches!(h.wasi.fds[fd as usize], Some(Fd::Stdin) | Some(Fd::Dir(..))) {
                return EBADF;
            }
            let Some(vs) = iovecs(m, iovs, n) else {
                return EFAULT;
            };
            let mut total = 0usize;
            for (p, l) in vs {
                let mut chunk = &m[p..p + l];
                while !chunk.is_empty() {
                    // SAFETY: chunk is a live slice of guest memory; raw is an open fd.
                    let w = unsafe { libc::write(raw, chunk.as_ptr().cast(), chunk.len()) };
                    if w < 0 {
                        let e = std::io::Error::last_os_error();
                        if e.kind() == std::io::ErrorKind::Interrupted {
                            continue;
                        }
                        return errno_of(&e);
                    }
                    total += w as usize;
                    chunk = &chunk[w as usize..];
                }
            }
            if put32(m, nwritten, total as u32) {
                ESUCCESS
            } else {
                EFAULT
            }
        },
    )?;
    linker.func_wrap(
        M,
        "fd_read",
        |mut c: Caller<'_, Host>, fd: i32, iovs: i32, n: i32, nread: i32| -> i32 {
            let (m, h) = mem::split(&mut c);
            let Some(raw) = h.wasi.raw(fd) else {
                return EBADF;
            };
            if matches!(
                h.wasi.fds[fd as usize],
                Some(Fd::Stdout) | Some(Fd::Stderr) | Some(Fd::Dir(..))
            ) {
                return EBADF;
            }
            let Some(vs) = iovecs(m, iovs, n) else {
                return EFAULT;
            };
            // Reading a terminal or pipe can block for ever: wait for it together with the stop
            // signal and the deadline, so Ctrl-C and --timeout still end the guest.
            if matches!(h.wasi.fds[fd as usize], Some(Fd::Stdin)) && !h.stop.wait_readable(raw) {
                return EINTR;
            }
            let mut total = 0usize;
            for (p, l) in vs {
                // SAFETY: the range was checked against guest memory; raw is an open fd.
                let r = unsafe { libc::read(raw, m[p..p + l].as_mut_ptr().cast(), l) };
                if r < 0 {
                    return errno_of(&std::io::Error::last_os_error());
                }
                total += r as usize;
                if (r as usize) < l {
                    break;
                }
            }
            if put32(m, nread, total as u32) {
                ESUCCESS
            } else {
                EFAULT
            }
        },
    )?;
    linker.func_wrap(M, "fd_close", |mut c: Caller<'_, Host>, fd: i32| -> i32 {
        let h = c.data_mut();
        match h.wasi.fds.get_mut(fd as usize) {
            Some(slot @ Some(Fd::File(_))) => {
                *slot = None;
                ESUCCESS
            }
            // stdio and granted directories stay open: closing them would only confuse the guest.
            Some(Some(_)) => ESUCCESS,
            _ => EBADF,
        }
    })?;
    linker.func_wrap(
        M,
        "fd_seek",
        |mut c: Caller<'_, Host>, fd: i32, off: i64, whence: i32, newoff: i32| -> i32 {
            let (m, h) = mem::split(&mut c);
            let Some(Some(Fd::File(_))) = h.wasi.fds.get(fd as usize) else {
                // stdio is not seekable (libc asks when it sets up buffering).
                return if h.wasi.raw(fd).is_some() {
                    70 /* ESPIPE */
                } else {
                    EBADF
                };
            };
            let raw = h.wasi.raw(fd).unwrap_or(-1);
            let wh = match whence {
                0 => libc::SEEK_SET,
                1 => libc::SEEK_CUR,
                2 => libc::SEEK_END,
                _ => return EINVAL,
            };
            // SAFETY: raw is an open fd.
            let r = unsafe { libc::lseek(raw, off, wh) };
            if r < 0 {
                return errno_of(&std::io::Error::last_os_error());
            }
            if put64(m, newoff, r as u64) {
                ESUCCESS
            } else {
                EFAULT
            }
        },
    )?;
    linker.func_wrap(
        M,
        "fd_fdstat_get",
        |mut c: Caller<'_, Host>, fd: i32, out: i32| -> i32 {
            let (m, h) = mem::split(&mut c);
            let ft = match h.wasi.fds.get(fd as usize) {
                Some(Some(Fd::Dir(..))) => FILETYPE_DIRECTORY,
                Some(Some(Fd::File(_))) => FILETYPE_REGULAR_FILE,
                Some(Some(_)) => FILETYPE_CHARACTER_DEVICE,
                _ => return EBADF,
            };
            let mut st = [0u8; 24];
            st[0] = ft;
            st[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
            st[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
            if mem::write(m, out, &st) {
                ESUCCESS
            } else {
                EFAULT
            }
        },
    )?;
    linker.func_wrap(
        M,
        "fd_fdstat_set_flags",
        |_c: Caller<'_, Host>, _fd: i32, _f: i32| -> i32 { ENOSYS },
    )?;
    linker.func_wrap(
        M,
        "fd_prestat_get",
        |mut c: Caller<'_, Host>, fd: i32, out: i32| -> i32 {
            let (m, h) = mem::split(&mut c);
            let Some(Some(Fd::Dir(_, name))) = h.wasi.fds.get(fd as usize) else {
                return EBADF;
            };
            let mut st = [0u8; 8];
            st[4..8].copy_from_slice(&(name.len() as u32).to_le_bytes());
            if mem::write(m, out, &st) {
                ESUCCESS
            } else {
                EFAULT
            }
        },
    )?;
    linker.func_wrap(
        M,
        "fd_prestat_dir_name",
        |mut c: Caller<'_, Host>, fd: i32, path: i32, len: i32| -> i32 {
            let (m, h) = mem::split(&mut c);
            let Some(Some(Fd::Dir(_, name))) = h.wasi.fds.get(fd as usize) else {
                return EBADF;
            };
            let n = name.as_bytes();
            if (len as usize) < n.len() {
                return EINVAL;
            }
            if mem::write(m, path, n) {
                ESUCCESS
            } else {
                EFAULT
            }
        },
    )?;
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
            if put32(m, out, slot as u32) {
                ESUCCESS
            } else {
                EFAULT
            }
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
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: fd is open; st is a valid out-pointer.
            if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
                return errno_of(&std::io::Error::last_os_error());
            }
            filestat(m, out, &st)
        },
    )?;
    linker.func_wrap(
        M,
        "fd_filestat_get",
        |mut c: Caller<'_, Host>, fd: i32, out: i32| -> i32 {
            let (m, h) = mem::split(&mut c);
            let Some(raw) = h.wasi.raw(fd) else {
                return EBADF;
            };
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: raw is open; st is a valid out-pointer.
            if unsafe { libc::fstat(raw, &mut st) } < 0 {
                return errno_of(&std::io::Error::last_os_error());
            }
            filestat(m, out, &st)
        },
    )?;
    linker.func_wrap(
        M,
        "clock_time_get",
        |mut c: Caller<'_, Host>, id: i32, _prec: i64, out: i32| -> i32 {
            let clock = match id {
                0 => libc::CLOCK_REALTIME,
                1 => libc::CLOCK_MONOTONIC,
                2 => libc::CLOCK_PROCESS_CPUTIME_ID,
                3 => libc::CLOCK_THREAD_CPUTIME_ID,
                _ => return EINVAL,
            };
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: ts is a valid out-pointer.
            unsafe { libc::clock_gettime(clock, &mut ts) };
            let ns = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
            let (m, _) = mem::split(&mut c);
            if put64(m, out, ns) {
                ESUCCESS
            } else {
                EFAULT
            }
        },
    )?;
    linker.func_wrap(
        M,
        "clock_res_get",
        |mut c: Caller<'_, Host>, _id: i32, out: i32| -> i32 {
            let (m, _) = mem::split(&mut c);
            if put64(m, out, 1) {
                ESUCCESS
            } else {
                EFAULT
            }
        },
    )?;
    linker.func_wrap(M, "poll_oneoff", poll_oneoff)?;
    linker.func_wrap(
        M,
        "proc_exit",
        |_c: Caller<'_, Host>, code: i32| -> Result<(), Trap> { Err(Trap::i32_exit(code)) },
    )?;
    linker.func_wrap(M, "sched_yield", |_c: Caller<'_, Host>| -> i32 { ESUCCESS })?;
    linker.func_wrap(
        M,
        "random_get",
        |mut c: Caller<'_, Host>, buf: i32, len: i32| -> i32 {
            let (m, _) = mem::split(&mut c);
            let Some(dst) = mem::slice_mut(m, buf, len) else {
                return EFAULT;
            };
            let mut done = 0;
            while done < dst.len() {
                // SAFETY: writing into a checked slice of guest memory.
                let r = unsafe {
                    libc::getrandom(dst[done..].as_mut_ptr().cast(), dst.len() - done, 0)
                };
                if r <= 0 {
                    return EIO;
                }
                done += r as usize;
            }
            ESUCCESS
        },
    )?;
    Ok(())
}

fn filestat(m: &mut [u8], out: i32, st: &libc::stat) -> i32 {
    let ft = match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => FILETYPE_DIRECTORY,
        libc::S_IFREG => FILETYPE_REGULAR_FILE,
        libc::S_IFCHR => FILETYPE_CHARACTER_DEVICE,
        libc::S_IFLNK => 7,
        _ => 0,
    };
    let mut b = [0u8; 64];
    b[0..8].copy_from_slice(&(st.st_dev as u64).to_le_bytes());
    b[8..16].copy_from_slice(&(st.st_ino as u64).to_le_bytes());
    b[16] = ft;
    b[24..32].copy_from_slice(&(st.st_nlink as u64).to_le_bytes());
    b[32..40].copy_from_slice(&(st.st_size as u64).to_le_bytes());
    let ns = |s: i64, n: i64| {
        (s as u64)
            .wrapping_mul(1_000_000_000)
            .wrapping_add(n as u64)
    };
    b[40..48].copy_from_slice(&ns(st.st_atime, st.st_atime_nsec).to_le_bytes());
    b[48..56].copy_from_slice(&ns(st.st_mtime, st.st_mtime_nsec).to_le_bytes());
    b[56..64].copy_from_slice(&ns(st.st_ctime, st.st_ctime_nsec).to_le_bytes());
    if mem::write(m, out, &b) {
        ESUCCESS
    } else {
        EFAULT
    }
}

/// openat2 with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS: the kernel refuses any path that
/// leaves `dir`, through `..`, an absolute path or a symlink.
fn openat2_beneath(dir: RawFd, path: &std::ffi::CStr, flags: i32) -> std::io::Result<OwnedFd> {
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

/// poll_oneoff: clock subscriptions sleep (interruptibly: Ctrl-C or --timeout ends the wait
/// with EINTR); fd subscriptions are reported ready at once.
fn poll_oneoff(mut c: Caller<'_, Host>, sin: i32, sout: i32, nsubs: i32, nevents: i32) -> i32 {
    if !(1..=64).contains(&nsubs) {
        return EINVAL;
    }
    let (m, h) = mem::split(&mut c);
    let Some(subs) = mem::slice(m, sin, nsubs * 48).map(|s| s.to_vec()) else {
        return EFAULT;
    };
    let mut sleep: Option<Duration> = None;
    let mut events = Vec::new();
    for s in subs.chunks_exact(48) {
        let userdata = &s[0..8];
        let tag = s[8];
        let mut ev = [0u8; 32];
        ev[0..8].copy_from_slice(userdata);
        ev[10] = tag;
        match tag {
            0 => {
                let timeout = u64::from_le_bytes(s[24..32].try_into().unwrap_or_default());
                let abs = u16::from_le_bytes([s[40], s[41]]) & 1 != 0;
                let clock = match u32::from_le_bytes([s[16], s[17], s[18], s[19]]) {
                    0 => libc::CLOCK_REALTIME,
                    1 => libc::CLOCK_MONOTONIC,
                    _ => return EINVAL,
                };
                let d = if abs {
                    let mut ts = libc::timespec {
                        tv_sec: 0,
                        tv_nsec: 0,
                    };
                    // SAFETY: valid out-pointer.
                    unsafe { libc::clock_gettime(clock, &mut ts) };
                    let now = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
                    Duration::from_nanos(timeout.saturating_sub(now))
                } else {
                    Duration::from_nanos(timeout)
                };
                sleep = Some(sleep.map_or(d, |s: Duration| s.min(d)));
                events.push((Some(d), ev));
            }
            _ => events.push((None, ev)),
        }
    }
    let fd_ready = events.iter().any(|e| e.0.is_none());
    if let (Some(d), false) = (sleep, fd_ready) {
        if !h.stop.sleep(d) {
            return EINTR;
        }
    }
    let mut n = 0;
    for (d, ev) in events.iter() {
        if fd_ready && d.is_some() {
            continue;
        }
        if !mem::write(m, sout.wrapping_add(32 * n), ev) {
            return EFAULT;
        }
        n += 1;
    }
    if put32(m, nevents, n as u32) {
        ESUCCESS
    } else {
        EFAULT
    }
}
