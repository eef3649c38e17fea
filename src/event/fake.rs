//! Event buffers in memory, for the unit tests of the pipeline and of its callers' loops.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::os::fd::RawFd;

use super::poll::EventFd;
use crate::bpf::RecordBuffers;

/// Buffers in memory. Like a perf buffer, a buffer's fd signals once per wake-up, not
/// while it holds records: the first drain clears it even if the drain stops early.
pub struct FakeBuffers {
    pub bufs: Vec<(EventFd, VecDeque<Vec<u8>>)>,
    /// Drops reported by drop records still queued, per buffer.
    pub queued_drops: Vec<u64>,
    /// Drops whose records were read.
    pub lost: u64,
    /// The kernel's own count (`lost_now`).
    pub kernel_lost: u64,
}

impl FakeBuffers {
    pub fn new(n: usize) -> FakeBuffers {
        FakeBuffers {
            bufs: (0..n)
                .map(|_| (EventFd::new().unwrap(), VecDeque::new()))
                .collect(),
            queued_drops: vec![0; n],
            lost: 0,
            kernel_lost: 0,
        }
    }

    pub fn push(&mut self, buf: usize, records: impl IntoIterator<Item = Vec<u8>>) {
        self.bufs[buf].1.extend(records);
        self.bufs[buf].0.signal();
    }

    pub fn held(&self) -> usize {
        self.bufs.iter().map(|b| b.1.len()).sum()
    }
}

impl RecordBuffers for FakeBuffers {
    fn name(&self) -> &str {
        "events"
    }
    fn fds(&self) -> Vec<RawFd> {
        self.bufs.iter().map(|b| b.0.fd()).collect()
    }
    fn buffers(&self) -> usize {
        self.bufs.len()
    }
    fn drain<B>(
        &mut self,
        i: usize,
        mut f: impl FnMut(&[u8]) -> ControlFlow<B>,
    ) -> (u64, Option<B>) {
        self.bufs[i].0.drain();
        self.lost += std::mem::take(&mut self.queued_drops[i]);
        let mut n = 0;
        while let Some(r) = self.bufs[i].1.pop_front() {
            n += 1;
            if let ControlFlow::Break(b) = f(&r) {
                return (n, Some(b));
            }
        }
        (n, None)
    }
    fn discard(&mut self, i: usize) -> u64 {
        self.drain(i, |_| ControlFlow::<()>::Continue(())).0
    }
    fn lost(&self) -> u64 {
        self.lost
    }
    fn lost_now(&self) -> u64 {
        self.kernel_lost.max(self.lost)
    }
}

/// `n` records, each its index as 4 little-endian bytes.
pub fn numbered(n: usize) -> impl Iterator<Item = Vec<u8>> {
    (0..n).map(|i| (i as u32).to_le_bytes().to_vec())
}
