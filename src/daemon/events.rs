//! The output of one named instance, kept for its clients: a bounded buffer of whole lines with
//! sequence numbers. The instance appends and never waits; each client reads from its own
//! cursor and, when it fell so far behind that the lines it wanted are gone, skips ahead and
//! has what it missed counted. Also the sink the instance writes to.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::event::{Sink, Stream};

/// Lines and bytes kept for clients (whichever limit is reached first drops the oldest).
pub const KEEP_LINES: usize = 16_384;
pub const KEEP_BYTES: usize = 4 << 20;
/// Notes (warnings, a guest's stderr) kept for `status`.
const KEEP_NOTES: usize = 20;

#[derive(Default)]
struct Lines {
    /// Sequence number of the first line in `lines`.
    first: u64,
    lines: VecDeque<Vec<u8>>,
    bytes: usize,
    /// A partial line (a guest's write without its newline yet).
    partial: Vec<u8>,
    notes: VecDeque<String>,
    closed: bool,
}

#[derive(Default)]
pub struct EventLog {
    inner: Mutex<Lines>,
    more: Condvar,
    /// Lines clients missed because they read too slowly.
    pub client_drops: AtomicU64,
}

/// What a client got: lines, and how many it missed since its last read.
pub struct Batch {
    pub lines: Vec<Vec<u8>>,
    pub missed: u64,
    pub next: u64,
    /// The log was closed (the daemon is stopping) and everything was read.
    pub closed: bool,
}

impl EventLog {
    pub fn new() -> Arc<EventLog> {
        Arc::new(EventLog::default())
    }

    fn push_line(l: &mut Lines, line: Vec<u8>) {
        l.bytes += line.len();
        l.lines.push_back(line);
        while l.lines.len() > KEEP_LINES || l.bytes > KEEP_BYTES {
            if let Some(old) = l.lines.pop_front() {
                l.bytes -= old.len();
                l.first += 1;
            } else {
                break;
            }
        }
    }

    /// Appends output; complete lines become visible to clients at once.
    pub fn append(&self, bytes: &[u8]) {
        let mut l = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut rest = bytes;
        while let Some(i) = rest.iter().position(|&c| c == b'\n') {
            let mut line = std::mem::take(&mut l.partial);
            line.extend_from_slice(&rest[..=i]);
            Self::push_line(&mut l, line);
            rest = &rest[i + 1..];
        }
        l.partial.extend_from_slice(rest);
        if l.partial.len() > 64 << 10 {
            // A guest that never writes a newline still gets its output through.
            let mut line = std::mem::take(&mut l.partial);
            line.push(b'\n');
            Self::push_line(&mut l, line);
        }
        drop(l);
        self.more.notify_all();
    }

    pub fn note(&self, msg: &str) {
        let mut l = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        l.notes.push_back(msg.to_string());
        while l.notes.len() > KEEP_NOTES {
            l.notes.pop_front();
        }
    }

    pub fn notes(&self) -> Vec<String> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .notes
            .iter()
            .cloned()
            .collect()
    }

    /// Wakes every follower for good (the daemon is stopping).
    pub fn close(&self) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.more.notify_all();
    }

    /// The sequence number after the last line (where a follower of new lines starts).
    pub fn end(&self) -> u64 {
        let l = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        l.first + l.lines.len() as u64
    }

    /// The sequence number of the oldest line kept.
    pub fn start(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).first
    }

    /// Lines from `from` on, waiting up to `wait` for some when there are none.
    pub fn read(&self, from: u64, max: usize, wait: Duration) -> Batch {
        let mut l = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if from >= l.first + l.lines.len() as u64 && !l.closed && !wait.is_zero() {
            l = self
                .more
                .wait_timeout(l, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let missed = l.first.saturating_sub(from);
        if missed > 0 {
            self.client_drops.fetch_add(missed, Ordering::Relaxed);
        }
        let start = from.max(l.first);
        let skip = (start - l.first) as usize;
        let lines: Vec<Vec<u8>> = l.lines.iter().skip(skip).take(max).cloned().collect();
        let next = start + lines.len() as u64;
        Batch {
            closed: l.closed && next >= l.first + l.lines.len() as u64,
            lines,
            missed,
            next,
        }
    }
}

/// The sink an instance writes to: its name's log.
pub struct LogSink(pub Arc<EventLog>);

impl Sink for LogSink {
    fn write(&mut self, stream: Stream, bytes: &[u8]) -> std::io::Result<()> {
        match stream {
            Stream::Out => self.0.append(bytes),
            Stream::Err => {
                let text = String::from_utf8_lossy(bytes);
                for l in text.lines().filter(|l| !l.is_empty()) {
                    self.0.note(l);
                }
            }
        }
        Ok(())
    }

    fn note(&mut self, msg: &str) {
        log::info!("{msg}");
        self.0.note(msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_clients_skip_ahead_and_are_counted() {
        let log = EventLog::new();
        for i in 0..KEEP_LINES + 10 {
            log.append(format!("{i}\n").as_bytes());
        }
        let b = log.read(0, 5, Duration::ZERO);
        assert_eq!(b.missed, 10);
        assert_eq!(b.lines[0], b"10\n");
        assert_eq!(log.client_drops.load(Ordering::Relaxed), 10);
        let c = log.read(b.next, usize::MAX, Duration::ZERO);
        assert_eq!(c.missed, 0);
        assert_eq!(c.lines.len(), KEEP_LINES - 5);
        // Partial lines wait for their newline.
        log.append(b"par");
        assert_eq!(log.read(c.next, 10, Duration::ZERO).lines.len(), 0);
        log.append(b"tial\n");
        assert_eq!(
            log.read(c.next, 10, Duration::ZERO).lines,
            vec![b"partial\n".to_vec()]
        );
    }

    #[test]
    fn a_follower_wakes_on_new_lines() {
        let log = EventLog::new();
        let l2 = log.clone();
        let h = std::thread::spawn(move || l2.read(0, 10, Duration::from_secs(5)).lines);
        std::thread::sleep(Duration::from_millis(30));
        log.append(b"x\n");
        assert_eq!(h.join().unwrap(), vec![b"x\n".to_vec()]);
    }
}
