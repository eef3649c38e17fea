//! How far long work has got (a layer's bytes, a build's steps), told to whoever shows it. The
//! CLI draws it on a terminal; the daemon and the library's other callers leave it off.

use std::sync::Arc;

/// Receives progress. Called often: implementations throttle their own output.
pub trait Progress: Send + Sync {
    /// `done` bytes of the transfer `what` (of `total`, when known) have moved.
    fn transfer(&self, what: &str, done: u64, total: Option<u64>);
    /// The transfer `what` is over (done or failed).
    fn finished(&self, what: &str);
    /// A step of a longer job begins.
    fn step(&self, what: &str);
}

/// A [`Progress`] or nothing: what the layers that do long work carry.
#[derive(Clone, Default)]
pub struct Meter(Option<Arc<dyn Progress>>);

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Meter(on)"
        } else {
            "Meter(off)"
        })
    }
}

impl Meter {
    pub fn new(p: Arc<dyn Progress>) -> Meter {
        Meter(Some(p))
    }
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }
    pub fn transfer(&self, what: &str, done: u64, total: Option<u64>) {
        if let Some(p) = &self.0 {
            p.transfer(what, done, total);
        }
    }
    pub fn finished(&self, what: &str) {
        if let Some(p) = &self.0 {
            p.finished(what);
        }
    }
    pub fn step(&self, what: &str) {
        if let Some(p) = &self.0 {
            p.step(what);
        }
    }
}
