//! The control block one running instance shares with whoever owns it: stop and pause requests
//! (with an eventfd that wakes the instance's waits), the deadline of `--timeout`, whether it is
//! ready (attached), and its counters. Every wait of the instance (the event pipeline, a Wasm
//! guest's blocking calls) watches it, so a stop is seen at once wherever the instance is.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::poll::{wait_readable, EventFd};
use crate::error::Result;

const RUNNING: u8 = 0;
const PAUSED: u8 = 1;

/// Counters of one instance, updated by its thread, read by anyone.
#[derive(Default)]
pub struct Counters {
    /// Records delivered (printed, or handed to a Wasm guest).
    pub events: AtomicU64,
    /// Records the kernel dropped (full perf buffers) or the consumer could not take.
    pub lost: AtomicU64,
    /// Records read from the kernel and discarded because the instance was paused.
    pub paused_drops: AtomicU64,
}

pub struct Control {
    wake: EventFd,
    pause_state: AtomicU8,
    stop: AtomicBool,
    stop_at: Mutex<Option<Instant>>,
    deadline: Option<Instant>,
    /// Longest any single wait may last (fuzzing drives blocking calls with hostile timeouts).
    wait_limit: Option<Duration>,
    ready: Mutex<bool>,
    ready_cv: Condvar,
    pub counters: Counters,
    /// Maps the instance lets others read (metrics).
    views: Mutex<Vec<std::sync::Arc<super::sample::MapView>>>,
    /// Its programs' kernel ids, by name (metrics: run counts and times).
    programs: Mutex<Vec<(String, u32)>>,
}

impl Control {
    pub fn new(timeout: Option<Duration>) -> Result<Control> {
        Ok(Control {
            wake: EventFd::new()?,
            pause_state: AtomicU8::new(RUNNING),
            stop: AtomicBool::new(false),
            stop_at: Mutex::new(None),
            deadline: timeout.map(|t| Instant::now() + t),
            wait_limit: None,
            ready: Mutex::new(false),
            ready_cv: Condvar::new(),
            counters: Counters::default(),
            views: Mutex::new(Vec::new()),
            programs: Mutex::new(Vec::new()),
        })
    }

    /// Caps every wait (sleeps, polls) at `d`: a harness drives the Wasm host's blocking
    /// calls with any timeout a guest could pass, and must not sleep for days.
    #[doc(hidden)]
    pub fn limit_waits(mut self, d: Duration) -> Control {
        self.wait_limit = Some(d);
        self
    }

    /// Asks the instance to stop. Sticky: its waits return at once from now on.
    pub fn stop(&self) {
        if !self.stop.swap(true, Ordering::SeqCst) {
            *self.stop_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        }
        self.wake.signal();
    }

    pub fn pause(&self) {
        self.pause_state.store(PAUSED, Ordering::SeqCst);
        self.wake.signal();
    }

    pub fn resume(&self) {
        self.pause_state.store(RUNNING, Ordering::SeqCst);
        self.wake.signal();
    }

    pub fn is_paused(&self) -> bool {
        self.pause_state.load(Ordering::SeqCst) == PAUSED
    }

    /// True once a stop was asked for or the deadline passed.
    pub fn stop_requested(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return true;
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.stop();
            return true;
        }
        false
    }

    /// How long ago the stop was asked for.
    pub fn stopping_for(&self) -> Option<Duration> {
        self.stop_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|t| t.elapsed())
    }

    /// The fd that becomes readable on a stop, pause or resume request. Waiters that see it
    /// readable call [`Control::acknowledge`] and look at the state again.
    pub fn wake_fd(&self) -> i32 {
        self.wake.fd()
    }

    /// Clears a wake-up; a stop stays visible through [`Control::stop_requested`] (and keeps
    /// the fd readable, so later waits return at once).
    pub fn acknowledge(&self) {
        if !self.stop.load(Ordering::SeqCst) {
            self.wake.drain();
        }
    }

    /// `d`, cut short so that a wait ends at the deadline.
    pub fn cap(&self, d: Duration) -> Duration {
        let d = self.wait_limit.map_or(d, |l| d.min(l));
        match self.deadline {
            Some(dl) => d.min(dl.saturating_duration_since(Instant::now())),
            None => d,
        }
    }

    /// Sleeps `d` unless a stop comes first; false when interrupted by a stop.
    pub fn sleep(&self, d: Duration) -> bool {
        let d = self.wait_limit.map_or(d, |l| d.min(l));
        // A guest may ask for centuries: past what Instant holds, it is "for ever".
        let end = Instant::now()
            .checked_add(d)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(u32::MAX.into()));
        loop {
            if self.stop_requested() {
                return false;
            }
            let now = Instant::now();
            if now >= end {
                return true;
            }
            if wait_readable(&[self.wake_fd()], self.cap(end - now)).is_some() {
                self.acknowledge();
            }
        }
    }

    /// Waits while paused; false when a stop ends the wait.
    pub fn wait_while_paused(&self) -> bool {
        while self.is_paused() {
            if self.stop_requested() {
                return false;
            }
            if wait_readable(&[self.wake_fd()], self.cap(Duration::from_secs(1))).is_some() {
                self.acknowledge();
            }
        }
        !self.stop_requested()
    }

    /// Publishes the maps others may read while the instance runs.
    pub fn publish(&self, views: Vec<super::sample::MapView>) {
        *self.views.lock().unwrap_or_else(|e| e.into_inner()) =
            views.into_iter().map(std::sync::Arc::new).collect();
    }

    pub fn views(&self) -> Vec<std::sync::Arc<super::sample::MapView>> {
        self.views.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Publishes the kernel ids of the instance's programs.
    pub fn publish_programs(&self, ids: Vec<(String, u32)>) {
        *self.programs.lock().unwrap_or_else(|e| e.into_inner()) = ids;
    }

    pub fn programs(&self) -> Vec<(String, u32)> {
        self.programs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Marks the instance ready: every program it wanted is attached, events flow.
    pub fn set_ready(&self) {
        let mut r = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        if !*r {
            *r = true;
            self.ready_cv.notify_all();
        }
    }

    pub fn is_ready(&self) -> bool {
        *self.ready.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until ready, until `done()` says the instance ended, or until `until` passes;
    /// true when it is ready.
    pub fn wait_ready(&self, done: impl Fn() -> bool, until: Option<Instant>) -> bool {
        let mut r = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        while !*r && !done() && until.is_none_or(|u| Instant::now() < u) {
            r = self
                .ready_cv
                .wait_timeout(r, Duration::from_millis(20))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *r
    }

    /// Wakes a [`Control::wait_ready`] after the instance ended.
    pub fn notify_done(&self) {
        let _g = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        self.ready_cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_and_stop_end_sleeps() {
        let c = Control::new(Some(Duration::from_millis(50))).unwrap();
        let t0 = Instant::now();
        assert!(!c.sleep(Duration::from_secs(5)), "the deadline interrupts");
        assert!(t0.elapsed() < Duration::from_secs(2));
        assert!(c.stop_requested());
        let c = std::sync::Arc::new(Control::new(None).unwrap());
        let c2 = c.clone();
        let h = std::thread::spawn(move || c2.sleep(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        c.stop();
        assert!(!h.join().unwrap());
        assert!(c.stopping_for().is_some());
    }

    #[test]
    fn pause_waits_until_resumed() {
        let c = std::sync::Arc::new(Control::new(None).unwrap());
        c.pause();
        let c2 = c.clone();
        let h = std::thread::spawn(move || c2.wait_while_paused());
        std::thread::sleep(Duration::from_millis(30));
        assert!(!h.is_finished());
        c.resume();
        assert!(h.join().unwrap());
    }
}
