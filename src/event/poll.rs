//! Waiting: epoll over event buffers and wake-up fds, and the eventfd that wakes a waiter from
//! another thread (a stop or pause request).

use std::os::fd::RawFd;
use std::time::Duration;

use crate::error::{Error, Result};

fn os_err(what: &str) -> Error {
    Error::msg(format!("{what}: {}", std::io::Error::last_os_error()))
}

pub struct Epoll {
    fd: RawFd,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    pub fn new() -> Result<Epoll> {
        // SAFETY: creating an epoll fd has no preconditions.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(os_err("epoll_create1"));
        }
        Ok(Epoll {
            fd,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; 64],
        })
    }

    pub fn add(&self, fd: RawFd, token: u64) -> Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: both fds are open; ev is valid for the call.
        if unsafe { libc::epoll_ctl(self.fd, libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
            return Err(os_err("epoll_ctl"));
        }
        Ok(())
    }

    /// Waits up to `timeout` and returns the tokens of the ready fds.
    pub fn wait(&mut self, timeout: Duration) -> Result<impl Iterator<Item = u64> + '_> {
        // Round up: a 0.4 ms wait must not become a busy zero-timeout poll.
        let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        // SAFETY: events has room for its length.
        let n = unsafe {
            libc::epoll_wait(
                self.fd,
                self.events.as_mut_ptr(),
                self.events.len() as i32,
                ms,
            )
        };
        let n = if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(Error::msg(format!("epoll_wait: {e}")));
            }
            0
        } else {
            n as usize
        };
        Ok(self.events[..n].iter().map(|e| e.u64))
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: we own fd.
        unsafe { libc::close(self.fd) };
    }
}

/// An eventfd: readable once signalled, until drained. Wakes a waiter on another thread.
pub struct EventFd {
    fd: RawFd,
}

impl EventFd {
    pub fn new() -> Result<EventFd> {
        // SAFETY: no preconditions.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(os_err("eventfd"));
        }
        Ok(EventFd { fd })
    }

    pub fn fd(&self) -> RawFd {
        self.fd
    }

    pub fn signal(&self) {
        let one = 1u64;
        // SAFETY: writing 8 bytes from a local to our eventfd. A full counter (EAGAIN) means
        // it is readable already, which is all a signal needs.
        unsafe { libc::write(self.fd, (&one as *const u64).cast(), 8) };
    }

    /// Resets it to not readable.
    pub fn drain(&self) {
        let mut v = 0u64;
        // SAFETY: reading 8 bytes into a local from our non-blocking eventfd.
        unsafe { libc::read(self.fd, (&mut v as *mut u64).cast(), 8) };
    }

    /// Waits until it is readable or `timeout` passes; true when readable.
    pub fn wait(&self, timeout: Duration) -> bool {
        wait_readable(&[self.fd], timeout).is_some()
    }
}

impl Drop for EventFd {
    fn drop(&mut self) {
        // SAFETY: we own fd.
        unsafe { libc::close(self.fd) };
    }
}

/// poll(2) on `fds` for input: the index of the first readable one, None on timeout.
pub fn wait_readable(fds: &[RawFd], timeout: Duration) -> Option<usize> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
    // SAFETY: p is a valid array of pollfds of its length.
    let n = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, ms) };
    if n <= 0 {
        return None;
    }
    p.iter().position(|x| x.revents != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eventfd_wakes_epoll_until_drained() {
        let e = EventFd::new().unwrap();
        let mut ep = Epoll::new().unwrap();
        ep.add(e.fd(), 7).unwrap();
        assert_eq!(ep.wait(Duration::ZERO).unwrap().count(), 0);
        e.signal();
        assert_eq!(
            ep.wait(Duration::ZERO).unwrap().collect::<Vec<_>>(),
            vec![7]
        );
        assert!(e.wait(Duration::ZERO));
        e.drain();
        assert!(!e.wait(Duration::from_millis(1)));
    }
}
