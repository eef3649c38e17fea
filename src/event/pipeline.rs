//! The one event pipeline: the event maps of an object, waited on together with the instance's
//! control fd, drained record by record into a caller's function. The CLI, the daemon and both
//! Wasm ABIs read events only through here; they differ in what that function does with a
//! record (format it, hand it to a guest). Stop requests are seen between records even under a
//! flood, a paused instance's records are read and counted, never left to fill the kernel's
//! buffers silently, and the kernel's own losses are counted.

use std::ops::ControlFlow;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::control::Control;
use super::layout::{self, Layouts};
use super::poll::Epoll;
use crate::bpf::{EventBuffers, Loaded};
use crate::error::Result;
use crate::package::Object;

const WAKE: u64 = u64::MAX;
/// How often, in records, a drain looks for a stop request.
const STOP_CHECK_EVERY: u32 = 256;
/// A poll that hands over fewer records than this was woken for nearly every one (a perf
/// buffer wakes its reader per record): at a few hundred thousand records a second that is a
/// wait and a wake-up per record, more CPU than the records themselves. The next poll first
/// lets records gather for GATHER_FOR, then takes them all in one go.
const GATHER_BELOW: u64 = 32;
/// Short against the buffers (a 256 KiB perf buffer holds ~20 ms of a 300 k/s CPU's
/// records) and far under the latency a user notices.
const GATHER_FOR: Duration = Duration::from_micros(500);
/// Records sparser than this (one wake-up each, under ~5k/s) are not gathered: the sleep would
/// be a second wake-up per record, not fewer.
const DENSE: Duration = Duration::from_micros(200);

/// Epoll token of buffer `buf` of event map `map`.
fn token(map: usize, buf: usize) -> u64 {
    ((map as u64) << 32) | buf as u64
}

/// What one wait brought.
pub struct Polled<B> {
    /// Records handed to the caller's function.
    pub records: u64,
    /// The caller's function stopped the drain with this.
    pub broke: Option<B>,
    /// A stop was requested (or the deadline passed).
    pub stop: bool,
}

pub struct Pipeline {
    epoll: Epoll,
    control: Arc<Control>,
    maps: Vec<EventBuffers>,
    ready: Vec<u64>,
    /// Buffers a drain left before they were empty (the caller's function broke, or other
    /// buffers were ready after it broke). They are drained at the next poll without waiting:
    /// a perf buffer signals readiness once per kernel wake-up, and a full one gets no new
    /// record to wake us, so waiting for it would wait for ever.
    pending: Vec<u64>,
    lost_seen: u64,
    /// The last poll brought a few records only: let the next ones gather first.
    gather: bool,
    /// When the kernel's drop counts were last read.
    counted_exactly: Instant,
    /// When the last poll that brought records ended.
    last_records: Instant,
}

impl Pipeline {
    pub fn new(control: Arc<Control>) -> Result<Pipeline> {
        let epoll = Epoll::new()?;
        epoll.add(control.wake_fd(), WAKE)?;
        Ok(Pipeline {
            epoll,
            control,
            maps: Vec::new(),
            ready: Vec::with_capacity(64),
            pending: Vec::new(),
            lost_seen: 0,
            gather: false,
            counted_exactly: Instant::now(),
            last_records: Instant::now(),
        })
    }

    /// Adds an event map; returns its index (the `map` of every record from it).
    pub fn add(&mut self, bufs: EventBuffers) -> Result<usize> {
        let m = self.maps.len();
        for (i, fd) in bufs.fds().into_iter().enumerate() {
            self.epoll.add(fd, token(m, i))?;
        }
        self.maps.push(bufs);
        Ok(m)
    }

    pub fn len(&self) -> usize {
        self.maps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    pub fn name(&self, map: usize) -> &str {
        &self.maps[map].name
    }

    pub fn control(&self) -> &Arc<Control> {
        &self.control
    }

    /// Waits up to `timeout` (cut short at the deadline) for records, then hands every record
    /// of the ready buffers to `f(map, bytes)` until it breaks. After a poll that brought only
    /// a few records, the wait is a sleep of up to GATHER_FOR and the poll may then return
    /// with none.
    pub fn poll<B>(
        &mut self,
        timeout: Duration,
        mut f: impl FnMut(usize, &[u8]) -> ControlFlow<B>,
    ) -> Result<Polled<B>> {
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        let wait = if !self.pending.is_empty() {
            Duration::ZERO
        } else if std::mem::take(&mut self.gather) {
            // A stop ends the sleep; it is seen below.
            self.control
                .sleep(self.control.cap(timeout.min(GATHER_FOR)));
            Duration::ZERO
        } else {
            self.control.cap(timeout)
        };
        ready.extend(self.epoll.wait(wait)?);
        for t in self.pending.drain(..) {
            if !ready.contains(&t) {
                ready.push(t);
            }
        }
        let mut polled = Polled {
            records: 0,
            broke: None,
            stop: self.control.stop_requested(),
        };
        for (i, &t) in ready.iter().enumerate() {
            if t == WAKE {
                self.control.acknowledge();
                polled.stop |= self.control.stop_requested();
                continue;
            }
            let (m, b) = ((t >> 32) as usize, (t & 0xffff_ffff) as usize);
            if self.drain(m, b, &mut f, &mut polled) {
                // This buffer and the ready ones after it still hold records.
                self.pending
                    .extend(ready[i..].iter().copied().filter(|&t| t != WAKE));
                break;
            }
        }
        self.ready = ready;
        let now = Instant::now();
        let dense = polled.records > 1 || now.duration_since(self.last_records) < DENSE;
        self.gather =
            polled.records > 0 && polled.records < GATHER_BELOW && dense && self.pending.is_empty();
        if polled.records > 0 {
            self.last_records = now;
        }
        // The kernel's own counts once a second, so that a stalled buffer's drops show in
        // the counters (and the daemon's metrics) before any drop record comes.
        let exact = self.counted_exactly.elapsed() >= Duration::from_secs(1);
        if exact {
            self.counted_exactly = Instant::now();
        }
        self.count_lost(exact);
        Ok(polled)
    }

    /// Hands every record already buffered, in every map, to `f` without waiting (a stop
    /// loses nothing that reached the kernel's buffers).
    pub fn drain_all<B>(&mut self, mut f: impl FnMut(usize, &[u8]) -> ControlFlow<B>) -> Polled<B> {
        let mut polled = Polled {
            records: 0,
            broke: None,
            stop: true,
        };
        'maps: for m in 0..self.maps.len() {
            for b in 0..self.maps[m].len() {
                // A stop must not cut this drain short: it is the drain of the stop.
                if self.drain_buffer(m, b, &mut f, &mut polled, false) {
                    break 'maps;
                }
            }
        }
        self.count_lost(true);
        polled
    }

    /// Drains one buffer; true when the caller's function broke or a stop came.
    fn drain<B>(
        &mut self,
        m: usize,
        b: usize,
        f: &mut impl FnMut(usize, &[u8]) -> ControlFlow<B>,
        polled: &mut Polled<B>,
    ) -> bool {
        self.drain_buffer(m, b, f, polled, true)
    }

    fn drain_buffer<B>(
        &mut self,
        m: usize,
        b: usize,
        f: &mut impl FnMut(usize, &[u8]) -> ControlFlow<B>,
        polled: &mut Polled<B>,
        watch_stop: bool,
    ) -> bool {
        let control = &self.control;
        let paused = control.is_paused();
        let mut seen = 0u32;
        let mut stopped = false;
        let (n, brk) = self.maps[m].drain(b, |data| {
            seen = seen.wrapping_add(1);
            if !paused {
                if let ControlFlow::Break(x) = f(m, data) {
                    return ControlFlow::Break(Some(x));
                }
            }
            // A producer that never pauses must not keep us here past a stop request.
            if watch_stop && seen.is_multiple_of(STOP_CHECK_EVERY) && control.stop_requested() {
                stopped = true;
                return ControlFlow::Break(None);
            }
            ControlFlow::Continue(())
        });
        let counters = &self.control.counters;
        if paused {
            counters.paused_drops.fetch_add(n, Ordering::Relaxed);
        } else {
            counters.events.fetch_add(n, Ordering::Relaxed);
            polled.records += n;
        }
        polled.stop |= stopped;
        match brk {
            Some(Some(x)) => {
                polled.broke = Some(x);
                true
            }
            Some(None) => true,
            None => false,
        }
    }

    /// Output is gone (its reader closed it): empties the perf buffers without handing
    /// records on, so the kernel's drop reports queued behind them still reach the lost
    /// count. Returns the records thrown away.
    pub fn discard_unread(&mut self) -> u64 {
        let mut n = 0;
        for m in &mut self.maps {
            for b in 0..m.len() {
                n += m.discard(b);
            }
        }
        self.count_lost(true);
        n
    }

    /// Adds what the kernel dropped since the last look to the instance's lost counter: from
    /// the drop records read so far, or, `exact`, from the kernel's own counts (a read(2) per
    /// perf buffer: done at the end, when drop records may never come).
    fn count_lost(&mut self, exact: bool) {
        let lost: u64 = self
            .maps
            .iter()
            .map(|m| if exact { m.lost_now() } else { m.lost })
            .sum();
        if lost > self.lost_seen {
            self.control
                .counters
                .lost
                .fetch_add(lost - self.lost_seen, Ordering::Relaxed);
            self.lost_seen = lost;
        }
    }

    /// Samples the kernel dropped in all (full perf buffers).
    pub fn lost(&self) -> u64 {
        self.lost_seen
    }
}

/// The event maps of an object, wired into a pipeline, each with the layout of its records.
pub struct Wired {
    pub pipeline: Pipeline,
    /// Per map of the pipeline: its name and candidate layouts (none: raw bytes).
    pub maps: Vec<(String, Layouts)>,
    /// What the user should know about the wiring (several maps, raw records).
    pub notes: Vec<String>,
}

/// Takes every event map of `object` out of `loaded` into a new pipeline. Layouts follow
/// `layout::choose`, with `event_type` from `--event-type`.
pub fn wire(
    object: &Object,
    loaded: &mut Loaded,
    event_type: Option<u32>,
    control: Arc<Control>,
) -> Result<Wired> {
    let mut w = Wired {
        pipeline: Pipeline::new(control)?,
        maps: Vec::new(),
        notes: Vec::new(),
    };
    let defs: Vec<_> = object
        .meta
        .maps
        .iter()
        .filter(|d| d.is_event_map())
        .collect();
    if defs.len() > 1 {
        // ecli reads only the last export map; every one is read here.
        let names: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
        w.notes.push(format!(
            "reading {} event maps: {}",
            defs.len(),
            names.join(", ")
        ));
    }
    for def in defs {
        let (layout, note) = layout::choose(object, def, event_type)?;
        w.notes.extend(note);
        let bufs = loaded.event_buffers(&def.name, object.meta.tunables.perf_buffer_pages)?;
        w.pipeline.add(bufs)?;
        w.maps.push((def.name.clone(), layout));
    }
    Ok(w)
}
