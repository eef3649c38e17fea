//! Stdio and open files: fd_write (stdout and stderr to the instance's sink), fd_read,
//! fd_close, fd_seek, fd_fdstat_get, fd_prestat_*, fd_filestat_get.

use wasmi::{Caller, Error as Trap, Linker};

use super::{errno_of, filestat, iovecs, put32, put64, written, Fd, M};
use super::{EBADF, EFAULT, EINTR, EINVAL, ENOSYS, ESPIPE, ESUCCESS};
use super::{FILETYPE_CHARACTER_DEVICE, FILETYPE_DIRECTORY, FILETYPE_REGULAR_FILE};
use crate::event::Stream;
use crate::wasm::host::Host;
use crate::wasm::mem;

/// WASI rights bits (preview1 `rights`).
const RIGHT_FD_SEEK: u64 = 1 << 2;
const RIGHT_FD_TELL: u64 = 1 << 5;

/// (A table of host functions, one entry per import.)
pub(super) fn add_to_linker(linker: &mut Linker<Host>) -> Result<(), wasmi::Error> {
    linker.func_wrap(
        M,
        "fd_write",
        |mut c: Caller<'_, Host>, fd: i32, iovs: i32, n: i32, nwritten: i32| -> i32 {
            fd_write(&mut c, fd, iovs, n, nwritten)
        },
    )?;
    linker.func_wrap(
        M,
        "fd_read",
        |mut c: Caller<'_, Host>, fd: i32, iovs: i32, n: i32, nread: i32| -> Result<i32, Trap> {
            fd_read(&mut c, fd, iovs, n, nread)
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
                    ESPIPE
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
            written(put64(m, newoff, r as u64))
        },
    )?;
    linker.func_wrap(
        M,
        "fd_fdstat_get",
        |mut c: Caller<'_, Host>, fd: i32, out: i32| -> i32 {
            let (m, h) = mem::split(&mut c);
            // Stdio is a character device that cannot seek or tell: what wasi-libc's isatty
            // asks, so its stdout is line-buffered (each line reaches the output as it is
            // printed, as on a terminal) instead of fully buffered and lost at a forced stop.
            // The host batches the writes it passes on.
            let (ft, rights) = match h.wasi.fds.get(fd as usize) {
                Some(Some(Fd::Dir(..))) => (FILETYPE_DIRECTORY, u64::MAX),
                Some(Some(Fd::File(_))) => (FILETYPE_REGULAR_FILE, u64::MAX),
                Some(Some(_)) => (FILETYPE_CHARACTER_DEVICE, !(RIGHT_FD_SEEK | RIGHT_FD_TELL)),
                _ => return EBADF,
            };
            let mut st = [0u8; 24];
            st[0] = ft;
            st[8..16].copy_from_slice(&rights.to_le_bytes());
            st[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
            written(mem::write(m, out, &st))
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
            written(mem::write(m, out, &st))
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
            written(mem::write(m, path, n))
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
            match crate::sys::fstat(raw) {
                Ok(st) => filestat(m, out, &st),
                Err(e) => errno_of(&e),
            }
        },
    )?;
    Ok(())
}

/// fd_read. Reading a terminal or pipe can block for ever: stdin is waited on together with the
/// stop request and the deadline, as every blocking call is.
fn fd_read(c: &mut Caller<'_, Host>, fd: i32, iovs: i32, n: i32, nread: i32) -> Result<i32, Trap> {
    let is_stdin = matches!(c.data().wasi.fds.get(fd as usize), Some(Some(Fd::Stdin)));
    if is_stdin {
        if !c.data_mut().before_blocking()? {
            return Ok(EINTR);
        }
        let h = c.data_mut();
        loop {
            let fds = [0, h.control.wake_fd()];
            match crate::event::poll::wait_readable(
                &fds,
                h.control.cap(std::time::Duration::from_secs(1)),
            ) {
                Some(0) => break,
                Some(_) => h.control.acknowledge(),
                None => {}
            }
            h.hold_while_paused();
            if h.control.stop_requested() {
                h.interrupted_wait();
                return Ok(EINTR);
            }
        }
    }
    let (m, h) = mem::split(c);
    let Some(raw) = h.wasi.raw(fd) else {
        return Ok(EBADF);
    };
    if matches!(
        h.wasi.fds[fd as usize],
        Some(Fd::Stdout) | Some(Fd::Stderr) | Some(Fd::Dir(..))
    ) {
        return Ok(EBADF);
    }
    let Some(vs) = iovecs(m, iovs, n) else {
        return Ok(EFAULT);
    };
    let mut total = 0usize;
    for (p, l) in vs {
        // SAFETY: the range was checked against guest memory; raw is an open fd.
        let r = unsafe { libc::read(raw, m[p..p + l].as_mut_ptr().cast(), l) };
        if r < 0 {
            return Ok(errno_of(&std::io::Error::last_os_error()));
        }
        total += r as usize;
        if (r as usize) < l {
            break;
        }
    }
    Ok(written(put32(m, nread, total as u32)))
}

/// fd_write: stdout and stderr go to the instance's sink, files to the file.
fn fd_write(c: &mut Caller<'_, Host>, fd: i32, iovs: i32, n: i32, nwritten: i32) -> i32 {
    // A paused guest prints nothing.
    c.data_mut().hold_while_paused();
    let (m, h) = mem::split(c);
    let Some(raw) = h.wasi.raw(fd) else {
        return EBADF;
    };
    let stream = match h.wasi.fds[fd as usize] {
        Some(Fd::Stdin) | Some(Fd::Dir(..)) => return EBADF,
        Some(Fd::Stdout) => Some(Stream::Out),
        Some(Fd::Stderr) => Some(Stream::Err),
        _ => None,
    };
    let Some(vs) = iovecs(m, iovs, n) else {
        return EFAULT;
    };
    let total: usize = vs.iter().map(|v| v.1).sum();
    if let Some(stream) = stream {
        let r = if stream == Stream::Out {
            vs.iter()
                .try_for_each(|&(p, l)| h.write_stdout(&m[p..p + l]))
        } else {
            // Stderr is not buffered, and comes after the stdout printed before it.
            let _ = h.flush_output();
            let mut buf = Vec::with_capacity(total);
            for (p, l) in vs {
                buf.extend_from_slice(&m[p..p + l]);
            }
            h.sink.write(stream, &buf)
        };
        if let Err(e) = r {
            return errno_of(&e);
        }
    } else {
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
                chunk = &chunk[w as usize..];
            }
        }
    }
    written(put32(m, nwritten, total as u32))
}
