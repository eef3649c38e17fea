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
use crate::bpf::{EventBuffers, Loaded, RecordBuffers};
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

/// Reads the buffers of event maps: the kernel's ([`EventBuffers`]) or, in unit tests, a fake.
pub struct Pipeline<M: RecordBuffers = EventBuffers> {
    epoll: Epoll,
    control: Arc<Control>,
    maps: Vec<M>,
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

impl<M: RecordBuffers> Pipeline<M> {
    pub fn new(control: Arc<Control>) -> Result<Pipeline<M>> {
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
    pub fn add(&mut self, bufs: M) -> Result<usize> {
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
        self.maps[map].name()
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
            for b in 0..self.maps[m].buffers() {
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
            for b in 0..m.buffers() {
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
            .map(|m| if exact { m.lost_now() } else { m.lost() })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::fake::{numbered, FakeBuffers};

    fn pipeline(bufs: FakeBuffers) -> Pipeline<FakeBuffers> {
        let mut p = Pipeline::new(Arc::new(Control::new(None).unwrap())).unwrap();
        assert_eq!(p.add(bufs).unwrap(), 0);
        p
    }

    fn collect(p: &mut Pipeline<FakeBuffers>, timeout: Duration) -> (Vec<u32>, Polled<()>) {
        let mut got = Vec::new();
        let polled = p
            .poll(timeout, |m, r| {
                assert_eq!(m, 0);
                got.push(u32::from_le_bytes(r.try_into().unwrap()));
                ControlFlow::Continue(())
            })
            .unwrap();
        (got, polled)
    }

    #[test]
    fn records_of_every_ready_buffer_in_order_and_counted() {
        let mut bufs = FakeBuffers::new(2);
        bufs.push(0, numbered(3));
        bufs.push(1, numbered(2));
        let mut p = pipeline(bufs);
        let (got, polled) = collect(&mut p, Duration::from_secs(5));
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, [0, 0, 1, 1, 2]);
        assert_eq!(polled.records, 5);
        assert!(!polled.stop);
        assert_eq!(p.control().counters.events.load(Ordering::Relaxed), 5);
        // Nothing more: an empty poll times out with no records.
        let (got, polled) = collect(&mut p, Duration::from_millis(1));
        assert!(got.is_empty() && polled.records == 0);
    }

    #[test]
    fn a_few_records_make_the_next_poll_gather_and_a_batch_does_not() {
        let mut bufs = FakeBuffers::new(1);
        bufs.push(0, numbered(2));
        let mut p = pipeline(bufs);
        collect(&mut p, Duration::from_secs(5));
        assert!(
            p.gather,
            "2 records in one wake-up: let the next ones gather"
        );
        p.maps[0].push(0, numbered(GATHER_BELOW as usize));
        let (got, _) = collect(&mut p, Duration::from_secs(5));
        assert_eq!(
            got.len(),
            GATHER_BELOW as usize,
            "the gathered poll takes all"
        );
        assert!(!p.gather, "a full batch needs no gathering");
    }

    #[test]
    fn a_buffer_left_by_a_break_is_drained_next_without_a_wake_up() {
        let mut bufs = FakeBuffers::new(1);
        bufs.push(0, numbered(10));
        let mut p = pipeline(bufs);
        let mut seen = 0;
        let polled = p
            .poll(Duration::from_secs(5), |_, _| {
                seen += 1;
                if seen == 4 {
                    ControlFlow::Break("full")
                } else {
                    ControlFlow::Continue(())
                }
            })
            .unwrap();
        assert_eq!((polled.records, polled.broke), (4, Some("full")));
        // The fd signalled once and is clear now; the rest must still come, at once.
        let (got, polled) = collect(&mut p, Duration::from_secs(2));
        assert_eq!(got, [4, 5, 6, 7, 8, 9]);
        assert_eq!(polled.records, 6);
    }

    #[test]
    fn a_stop_during_a_flood_ends_the_drain_at_the_next_check() {
        let mut bufs = FakeBuffers::new(1);
        bufs.push(0, numbered(10 * STOP_CHECK_EVERY as usize));
        let mut p = pipeline(bufs);
        let control = p.control().clone();
        let mut seen = 0;
        let polled = p
            .poll(Duration::from_secs(5), |_, _| {
                seen += 1;
                if seen == 10 {
                    control.stop();
                }
                ControlFlow::<()>::Continue(())
            })
            .unwrap();
        assert!(polled.stop);
        assert_eq!(polled.records, STOP_CHECK_EVERY as u64);
        // The stop's final drain ignores the stop and takes everything left.
        let left = p.maps[0].held() as u64;
        let polled = p.drain_all(|_, _| ControlFlow::<()>::Continue(()));
        assert_eq!(polled.records, left);
        assert_eq!(p.maps[0].held(), 0);
    }

    #[test]
    fn a_paused_instance_reads_and_counts_without_handing_on() {
        let mut bufs = FakeBuffers::new(1);
        bufs.push(0, numbered(7));
        let mut p = pipeline(bufs);
        p.control().pause();
        let polled = p
            .poll(Duration::from_secs(5), |_, _| -> ControlFlow<()> {
                panic!("a paused instance handed a record on")
            })
            .unwrap();
        assert_eq!(polled.records, 0);
        let c = &p.control().counters;
        assert_eq!(c.paused_drops.load(Ordering::Relaxed), 7);
        assert_eq!(c.events.load(Ordering::Relaxed), 0);
        assert_eq!(
            p.maps[0].held(),
            0,
            "the kernel's buffers are not left to fill"
        );
    }

    #[test]
    fn drops_are_counted_from_records_then_from_the_kernels_count() {
        let mut bufs = FakeBuffers::new(2);
        bufs.push(1, numbered(1));
        bufs.queued_drops[1] = 40;
        bufs.kernel_lost = 55;
        let mut p = pipeline(bufs);
        collect(&mut p, Duration::from_secs(5));
        assert_eq!(p.lost(), 40, "the drop record read");
        assert_eq!(p.control().counters.lost.load(Ordering::Relaxed), 40);
        p.drain_all(|_, _| ControlFlow::<()>::Continue(()));
        assert_eq!(p.lost(), 55, "the kernel's count at the end");
        assert_eq!(p.control().counters.lost.load(Ordering::Relaxed), 55);
    }

    #[test]
    fn a_closed_output_discards_the_rest_and_still_counts_drops() {
        let mut bufs = FakeBuffers::new(2);
        bufs.push(0, numbered(3));
        bufs.push(1, numbered(4));
        bufs.queued_drops[0] = 9;
        let mut p = pipeline(bufs);
        assert_eq!(p.discard_unread(), 7);
        assert_eq!(p.maps[0].held(), 0);
        assert_eq!(p.lost(), 9);
        assert_eq!(p.control().counters.events.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_stop_request_wakes_a_long_wait() {
        let p = pipeline(FakeBuffers::new(1));
        let control = p.control().clone();
        let waiter = std::thread::spawn(move || {
            let mut p = p;
            collect(&mut p, Duration::from_secs(3600)).1.stop
        });
        control.stop();
        assert!(waiter.join().unwrap(), "the poll returned with the stop");
    }
}
