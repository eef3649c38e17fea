//! Waiting for events: epoll over ring buffers, per-CPU perf buffers and a signalfd. Shared by
//! the CLI event loop and the Wasm host's buffer polling, so there is one reader of each kind.

use std::ops::ControlFlow;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;

use aya::maps::perf::{PerfEvent, PerfEventArray, PerfEventArrayBuffer};
use aya::maps::{Map, MapData, RingBuf};

use crate::bpf;
use crate::error::{Error, Result};

/// SIGINT/SIGTERM as a readable fd. Creating it blocks both signals for the process, so a
/// Ctrl-C at any point ends in the same orderly teardown.
pub struct SignalFd {
    pub fd: RawFd,
}

impl SignalFd {
    pub fn new() -> Result<SignalFd> {
        // SAFETY: plain libc calls on a locally owned sigset.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
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

    /// True when a signal arrived (it is consumed).
    pub fn pending(&self) -> bool {
        let mut info = [0u8; 128];
        // SAFETY: reading into a buffer of signalfd_siginfo size from our non-blocking fd.
        let n = unsafe { libc::read(self.fd, info.as_mut_ptr().cast(), info.len()) };
        n > 0
    }
}

impl Drop for SignalFd {
    fn drop(&mut self) {
        // SAFETY: we own fd.
        unsafe { libc::close(self.fd) };
    }
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
            return Err(Error::msg(format!(
                "epoll_create1: {}",
                std::io::Error::last_os_error()
            )));
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
            return Err(Error::msg(format!(
                "epoll_ctl: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(())
    }

    /// Waits up to `timeout` and returns the tokens of the ready fds.
    pub fn wait(&mut self, timeout: Duration) -> Result<impl Iterator<Item = u64> + '_> {
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
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

enum Buffer {
    Ring(RingBuf<MapData>),
    Perf(PerfEventArrayBuffer<MapData>),
}

/// The readable buffers of one event map (a ring buffer, or one perf buffer per online CPU).
pub struct EventMap {
    pub name: String,
    bufs: Vec<Buffer>,
    _perf: Option<PerfEventArray<MapData>>,
    scratch: Vec<u8>,
    /// Samples the kernel dropped because a perf buffer was full.
    pub lost: u64,
}

impl EventMap {
    pub fn open(name: &str, map: Map, perf_pages: usize) -> Result<EventMap> {
        let err = |e: &dyn std::error::Error| Error::msg(format!("map {name}: {}", bpf::chain(e)));
        let mut m = EventMap {
            name: name.to_string(),
            bufs: vec![],
            _perf: None,
            scratch: vec![],
            lost: 0,
        };
        match map {
            Map::RingBuf(_) => m
                .bufs
                .push(Buffer::Ring(RingBuf::try_from(map).map_err(|e| err(&e))?)),
            Map::PerfEventArray(_) => {
                let mut arr = PerfEventArray::try_from(map).map_err(|e| err(&e))?;
                let cpus = aya::util::online_cpus()
                    .map_err(|(_, e)| Error::msg(format!("reading online CPUs: {e}")))?;
                for cpu in cpus {
                    let b = arr
                        .open(cpu, Some(perf_pages.max(1).next_power_of_two()))
                        .map_err(|e| err(&e))?;
                    m.bufs.push(Buffer::Perf(b));
                }
                m._perf = Some(arr);
            }
            _ => {
                return Err(Error::msg(format!(
                    "map {name} is not a ringbuf or perf event array"
                )))
            }
        }
        Ok(m)
    }

    /// The fds to wait on, one per buffer.
    pub fn fds(&self) -> Vec<RawFd> {
        self.bufs
            .iter()
            .map(|b| match b {
                Buffer::Ring(r) => r.as_fd().as_raw_fd(),
                Buffer::Perf(p) => p.as_raw_fd(),
            })
            .collect()
    }

    /// Hands every available record of buffer `i` to `f` until `f` breaks; returns how many
    /// records were handed over and the break value, if any.
    pub fn drain<B>(
        &mut self,
        i: usize,
        mut f: impl FnMut(&[u8]) -> ControlFlow<B>,
    ) -> (u64, Option<B>) {
        let EventMap {
            bufs,
            scratch,
            lost,
            ..
        } = self;
        let mut n = 0u64;
        match &mut bufs[i] {
            Buffer::Ring(rb) => {
                while let Some(item) = rb.next() {
                    n += 1;
                    if let ControlFlow::Break(b) = f(&item) {
                        return (n, Some(b));
                    }
                }
                (n, None)
            }
            Buffer::Perf(buf) => {
                let r = buf.try_fold((), |(), ev| match ev {
                    PerfEvent::Sample { head, tail } => {
                        n += 1;
                        if tail.is_empty() {
                            f(head)
                        } else {
                            scratch.clear();
                            scratch.extend_from_slice(head);
                            scratch.extend_from_slice(tail);
                            f(scratch)
                        }
                    }
                    PerfEvent::Lost { count } => {
                        *lost += count;
                        ControlFlow::Continue(())
                    }
                });
                match r {
                    ControlFlow::Break(b) => (n, Some(b)),
                    ControlFlow::Continue(()) => (n, None),
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.bufs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }
}
