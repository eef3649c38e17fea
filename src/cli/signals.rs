//! SIGINT and SIGTERM (and, for the daemon, SIGHUP) as a readable fd, for the faces that run
//! in the foreground.

use std::os::fd::RawFd;

use crate::error::{Error, Result};

/// Creating it blocks both signals for the process (threads started later inherit the mask),
/// so a Ctrl-C at any point ends in the same orderly teardown.
pub struct SignalFd {
    pub fd: RawFd,
}

impl SignalFd {
    pub fn new() -> Result<SignalFd> {
        SignalFd::with(&[])
    }

    /// Also takes `extra` signals (the daemon's SIGHUP).
    pub fn with(extra: &[libc::c_int]) -> Result<SignalFd> {
        // SAFETY: plain libc calls on a locally owned sigset.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            for &s in extra {
                libc::sigaddset(&mut set, s);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
            if fd < 0 {
                return Err(Error::msg(format!(
                    "signalfd: {}",
                    std::io::Error::last_os_error()
                )));
            }
            Ok(SignalFd { fd })
        }
    }

    /// The signal that arrived, if any (it is consumed).
    pub fn take(&self) -> Option<u32> {
        let mut info = [0u8; 128];
        // SAFETY: reading into a buffer of signalfd_siginfo size from our non-blocking fd.
        let n = unsafe { libc::read(self.fd, info.as_mut_ptr().cast(), info.len()) };
        (n >= 4).then(|| u32::from_ne_bytes([info[0], info[1], info[2], info[3]]))
    }
}

impl Drop for SignalFd {
    fn drop(&mut self) {
        // SAFETY: we own fd.
        unsafe { libc::close(self.fd) };
    }
}
