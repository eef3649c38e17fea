//! The readable buffers of an event map: one ring buffer, or one perf buffer per online CPU.
//! aya's reader types stay in here; callers see fds to wait on and records as byte slices.

use std::ops::ControlFlow;
use std::os::fd::{AsFd, AsRawFd, RawFd};

use aya::maps::perf::{PerfEvent, PerfEventArray, PerfEventArrayBuffer};
use aya::maps::{Map, MapData, RingBuf};

use super::chain;
use crate::error::{Error, Result};

enum Buffer {
    Ring(RingBuf<MapData>),
    Perf(PerfEventArrayBuffer<MapData>),
}

/// What the event pipeline reads from: the buffers of one event map, each with an fd that is
/// readable while it holds records. [`EventBuffers`] is the kernel's; the pipeline's unit tests
/// implement it over memory, as `sys::MapOps` has its fake.
pub trait RecordBuffers {
    /// The event map's name.
    fn name(&self) -> &str;
    /// The fds to wait on, one per buffer.
    fn fds(&self) -> Vec<RawFd>;
    /// How many buffers there are.
    fn buffers(&self) -> usize;
    /// Hands every available record of buffer `i` to `f` until `f` breaks; returns how many
    /// records were handed over and the break value, if any.
    fn drain<B>(&mut self, i: usize, f: impl FnMut(&[u8]) -> ControlFlow<B>) -> (u64, Option<B>);
    /// Consumes what buffer `i` holds without handing it on, so that the drops recorded
    /// behind it are counted; returns the records thrown away.
    fn discard(&mut self, i: usize) -> u64;
    /// The drops reported by the drop records read so far.
    fn lost(&self) -> u64;
    /// The drops up to now, by the kernel's own count where it keeps one (a syscall).
    fn lost_now(&self) -> u64;
}

/// The readable buffers of one event map (a ring buffer, or one perf buffer per online CPU).
pub struct EventBuffers {
    name: String,
    bufs: Vec<Buffer>,
    _perf: Option<PerfEventArray<MapData>>,
    scratch: Vec<u8>,
    /// Samples the kernel dropped because a perf buffer was full.
    lost: u64,
}

impl EventBuffers {
    pub(super) fn open(name: &str, map: Map, perf_pages: usize) -> Result<EventBuffers> {
        let err = |e: &dyn std::error::Error| Error::msg(format!("map {name}: {}", chain(e)));
        let mut m = EventBuffers {
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
                let cpus = super::sys::online_cpus()
                    .map_err(|e| Error::msg(format!("reading online CPUs: {e}")))?;
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
}

impl RecordBuffers for EventBuffers {
    fn name(&self) -> &str {
        &self.name
    }

    /// The fds to wait on, one per buffer.
    fn fds(&self) -> Vec<RawFd> {
        self.bufs
            .iter()
            .map(|b| match b {
                Buffer::Ring(r) => r.as_fd().as_raw_fd(),
                Buffer::Perf(p) => p.as_raw_fd(),
            })
            .collect()
    }

    /// Consumes what perf buffer `i` holds now without handing it on, so that the drops the
    /// kernel recorded behind it are counted; returns the records thrown away. A ring buffer
    /// is left as it is: it carries no drop records, and a live producer would keep us here.
    fn discard(&mut self, i: usize) -> u64 {
        match self.bufs[i] {
            Buffer::Ring(_) => 0,
            Buffer::Perf(_) => self.drain(i, |_| ControlFlow::<()>::Continue(())).0,
        }
    }

    /// Hands every available record of buffer `i` to `f` until `f` breaks; returns how many
    /// records were handed over and the break value, if any.
    fn drain<B>(
        &mut self,
        i: usize,
        mut f: impl FnMut(&[u8]) -> ControlFlow<B>,
    ) -> (u64, Option<B>) {
        let EventBuffers {
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

    /// What the kernel dropped in all, up to now: its own count where it keeps one (perf
    /// buffers on Linux 6.0 and later), else the drops its records reported so far.
    fn lost_now(&self) -> u64 {
        let kernel: Option<u64> = self
            .bufs
            .iter()
            .map(|b| match b {
                Buffer::Perf(p) => super::sys::perf_lost_samples(p.as_raw_fd()),
                Buffer::Ring(_) => Some(0),
            })
            .sum();
        kernel.map_or(self.lost, |k| k.max(self.lost))
    }

    fn buffers(&self) -> usize {
        self.bufs.len()
    }

    fn lost(&self) -> u64 {
        self.lost
    }
}
