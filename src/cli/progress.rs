//! Progress on the terminal: bytes and rate of a transfer, the step a build is at. One line on
//! stderr, redrawn at most ten times a second; nothing at all when stderr is not a terminal
//! (a pipe, a file, a CI log) or with `--quiet`. A small transfer that ends quickly draws
//! nothing.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::progress::{Meter, Progress};

/// A transfer draws nothing until it has taken this long, unless it is this big.
const QUIET_FOR: Duration = Duration::from_millis(300);
const BIG: u64 = 4 << 20;
const REDRAW: Duration = Duration::from_millis(100);

struct Current {
    what: String,
    start: Instant,
    last_draw: Option<Instant>,
    done: u64,
}

pub struct Terminal {
    /// What the transfers are: "pulling", "pushing".
    verb: &'static str,
    current: Mutex<Option<Current>>,
}

/// Whether fd 2 is a terminal.
pub fn stderr_is_tty() -> bool {
    // SAFETY: isatty has no preconditions.
    unsafe { libc::isatty(2) == 1 }
}

/// The meter of a command: on when stderr is a terminal and `--quiet` was not given.
pub fn meter(verb: &'static str, quiet: bool) -> Meter {
    if quiet || !stderr_is_tty() {
        return Meter::default();
    }
    Meter::new(Arc::new(Terminal {
        verb,
        current: Mutex::new(None),
    }))
}

/// `12.3 MiB`
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

fn rate(done: u64, since: Instant) -> String {
    let secs = since.elapsed().as_secs_f64().max(0.001);
    format!("{}/s", bytes((done as f64 / secs) as u64))
}

fn draw(line: &str) {
    let mut e = std::io::stderr().lock();
    let _ = write!(e, "\r\x1b[K{line}");
    let _ = e.flush();
}

impl Progress for Terminal {
    fn transfer(&self, what: &str, done: u64, total: Option<u64>) {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if cur.as_ref().is_none_or(|c| c.what != what) {
            *cur = Some(Current {
                what: what.to_string(),
                start: now,
                last_draw: None,
                done: 0,
            });
        }
        let Some(c) = cur.as_mut() else { return };
        c.done = done;
        let due = match c.last_draw {
            None => now.duration_since(c.start) >= QUIET_FOR || total.is_some_and(|t| t >= BIG),
            Some(t) => now.duration_since(t) >= REDRAW,
        };
        if !due {
            return;
        }
        c.last_draw = Some(now);
        let of = match total {
            Some(t) if t > 0 => format!(
                " / {} ({}%)",
                bytes(t),
                (done.min(t) as u128 * 100 / t as u128)
            ),
            _ => String::new(),
        };
        draw(&format!(
            "{} {what}: {}{of}, {}",
            self.verb,
            bytes(done),
            rate(done, c.start)
        ));
    }

    fn finished(&self, what: &str) {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cur.take() {
            if c.what == what && c.last_draw.is_some() {
                draw(&format!(
                    "{} {what}: {} in {:.1} s, {}\n",
                    self.verb,
                    bytes(c.done),
                    c.start.elapsed().as_secs_f64(),
                    rate(c.done, c.start)
                ));
            }
        }
    }

    fn step(&self, what: &str) {
        if what.is_empty() {
            draw("");
        } else {
            draw(&format!("{what} ..."));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(40 << 20), "40.0 MiB");
    }
}
