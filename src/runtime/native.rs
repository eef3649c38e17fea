//! A BPF object run natively: its flags from ARGS, load, attach, then the event pipeline and
//! the sample maps, formatted into the sink until a stop.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Options, Outcome};
use crate::bpf::sys::{KernelMap, MapOps};
use crate::bpf::{self, Loaded, RecordBuffers};
use crate::error::{Error, ErrorKind, Result};
use crate::event::out::{rfc3339_utc, Clock, Frames, Records};
use crate::event::pipeline::{self, Pipeline};
use crate::event::results::Results;
use crate::event::sample::{self, SampleMap};
use crate::event::symbols::Symbolizer;
use crate::event::{Control, Format, Sink, Stream};
use crate::package::meta::map_type;
use crate::package::{MapDef, Object};
use crate::{args, logger};

/// Output is written in batches of this size (a pipe's capacity: a bigger batch saves no
/// writes, only memory), or when the buffers go idle.
const BATCH: usize = 1 << 16;
/// The longest a line waits in memory while records keep coming.
const FLUSH_AFTER: Duration = Duration::from_millis(1);

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

pub(super) fn run(
    object: Object,
    args: Vec<String>,
    opts: &Options,
    mut sink: Box<dyn Sink>,
    control: Arc<Control>,
) -> Result<Outcome> {
    let t0 = Instant::now();
    let parsed = args::parse(&object.meta, &object.btf, &opts.invocation, &args)?;
    if let Some(h) = parsed.help {
        return Ok(Outcome::Help(h));
    }
    if parsed.verbose || object.meta.tunables.debug_verbose {
        logger::raise_to_debug();
    }
    // Checked before anything touches the kernel.
    let event_type = match &opts.event_type {
        Some(n) => Some(object.find_struct(n).ok_or_else(|| {
            Error::new(
                ErrorKind::Usage,
                format!("--event-type {n}: no struct named {n} in the object's BTF"),
            )
        })?),
        None => None,
    };
    let t_parse = t0.elapsed();
    let mut loaded = bpf::load(&object, &parsed.globals, &opts.load_options())?;
    let t_load = t0.elapsed();
    // The event buffers exist before any program runs: a perf event array drops what a
    // program emits on a CPU whose buffer is not open yet.
    let wired = pipeline::wire(&object, &mut loaded, event_type, control.clone())?;
    let skipped = loaded.attach_all(&object.meta.progs, &opts.attach)?;
    let verify = ms(loaded.verify_time);
    log::info!(
        "phases (ms): parse/inflate/object BTF {}, kernel BTF/maps {}, verify {verify}, attach {}; all attached at {} ms",
        ms(t_parse),
        ms(t_load - t_parse),
        ms(loaded.attach_time).saturating_sub(verify),
        logger::since_start_ms(),
    );
    for n in wired.notes.iter().chain(&skipped) {
        sink.note(n);
    }
    let samples = sample::wire(&object, |def| sample_map(&loaded, def))?;
    let mut views = Vec::new();
    for def in &object.meta.maps {
        let Some(kind) = sample::MapView::kind_for(&object, def) else {
            continue;
        };
        let fd = loaded.map_fd(&def.name);
        let view = fd
            .ok_or_else(|| Error::msg(format!("map {} was not created", def.name)))
            .and_then(|fd| {
                KernelMap::dup(fd).map_err(|e| Error::msg(format!("map {}: {e}", def.name)))
            })
            .and_then(|m| sample::MapView::new(&object, def, kind, Box::new(m)));
        match view {
            Ok(v) => views.push(v),
            Err(e) => sink.note(&format!("no metrics from {}: {e}", def.name)),
        }
    }
    control.publish(views);
    control.publish_programs(loaded.program_ids());
    let frames = symbolizer(&object, &loaded)?;
    // A raw object's result maps print at exit; a package.json's only when it has no events
    // or sample maps to show (ecli shows nothing else, and its users expect what it shows).
    let m = &object.meta;
    let show_results = !m.tunables.package_json
        || opts.interval.is_some()
        || (m
            .maps
            .iter()
            .all(|d| !d.is_event_map() && d.sample.is_none()));
    let results = if show_results {
        let unit = opts
            .hist_unit
            .clone()
            .unwrap_or_else(|| hist_unit(&parsed.globals));
        Some(Results::new(
            &object,
            |name| {
                let fd = loaded
                    .map_fd(name)
                    .ok_or_else(|| Error::msg(format!("map {name} was not created")))?;
                KernelMap::dup(fd)
                    .map(|m| Box::new(m) as Box<dyn MapOps>)
                    .map_err(|e| Error::msg(format!("map {name}: {e}")))
            },
            frames.clone(),
            unit,
        )?)
        .filter(|r| !r.is_empty())
    } else {
        None
    };
    let mut printer = Printer {
        records: wired
            .maps
            .into_iter()
            .map(|(name, layout)| {
                let r = Records::new(layout, &name, opts.format, &opts.output)?;
                Ok(match &frames {
                    Some(f) => r.with_frames(f.clone()),
                    None => r,
                })
            })
            .collect::<Result<_>>()?,
        samples,
        results,
        interval: opts.interval,
        next_results: opts.interval.map(|i| Instant::now() + i),
        format: opts.format,
        timestamp: opts.output.timestamp,
        out: String::with_capacity(BATCH + 4096),
        sink,
        clock: Clock::default(),
        failed: None,
        unflushed_since: None,
    };
    printer.header();
    // The header shows as soon as everything is attached, not with the first event.
    printer.flush();
    if printer.records.is_empty() && printer.samples.is_empty() {
        let note = match (&printer.results, opts.interval) {
            (None, _) => "attached; this package exports no events (Ctrl-C to stop)".to_string(),
            (Some(_), None) => "attached; its results print at exit (Ctrl-C to stop)".to_string(),
            (Some(_), Some(i)) => format!(
                "attached; its results print every {} s (Ctrl-C to stop)",
                i.as_secs_f64()
            ),
        };
        printer.sink.note(&note);
    }
    control.set_ready();
    printer.run(wired.pipeline)?;
    drop(loaded);
    Ok(Outcome::Done)
}

/// Symbolized stacks, when the object has a stack trace map (the first, if several).
fn symbolizer(object: &Object, loaded: &Loaded) -> Result<Option<Arc<dyn Frames>>> {
    let Some(def) = object
        .meta
        .maps
        .iter()
        .find(|d| d.map_type == map_type::STACK_TRACE)
    else {
        return Ok(None);
    };
    let Some(fd) = loaded.map_fd(&def.name) else {
        return Ok(None);
    };
    let m = KernelMap::dup(fd).map_err(|e| Error::msg(format!("map {}: {e}", def.name)))?;
    let s =
        Symbolizer::new(Box::new(m)).map_err(|e| Error::msg(format!("map {}: {e}", def.name)))?;
    Ok(Some(Arc::new(s)))
}

/// libbpf-tools' convention: a `*_ms` flag switches histograms to msecs, `*_ns` to nsecs.
fn hist_unit(globals: &[(String, Vec<u8>)]) -> String {
    let set = |suffix: &str| {
        globals
            .iter()
            .any(|(n, v)| n.ends_with(suffix) && v.iter().any(|&b| b != 0))
    };
    if set("_ms") {
        "msecs".into()
    } else if set("_ns") {
        "nsecs".into()
    } else {
        "usecs".into()
    }
}

/// Map access for a sample map, which must be a hash or array map.
fn sample_map(loaded: &Loaded, def: &MapDef) -> Result<Box<dyn MapOps>> {
    let fd = loaded
        .map_fd(&def.name)
        .ok_or_else(|| Error::msg(format!("map {} was not created", def.name)))?;
    let m = KernelMap::new(fd)
        .map_err(|e| Error::msg(format!("map {}: reading its info: {e}", def.name)))?;
    let t = m.info()?.map_type;
    let ok = matches!(
        t,
        map_type::HASH
            | map_type::ARRAY
            | map_type::PERCPU_HASH
            | map_type::PERCPU_ARRAY
            | map_type::LRU_HASH
            | map_type::LRU_PERCPU_HASH
    );
    if !ok {
        return Err(Error::invalid(format!(
            "map {}: sample maps must be hash or array maps (this one is {})",
            def.name,
            map_type::name(t)
        )));
    }
    Ok(Box::new(m))
}

struct Printer {
    records: Vec<Records>,
    samples: Vec<SampleMap>,
    /// Result maps and globals: printed at exit, and every `interval` when there is one.
    results: Option<Results>,
    interval: Option<Duration>,
    next_results: Option<Instant>,
    format: Format,
    /// NDJSON lines carry the time they were read.
    timestamp: bool,
    out: String,
    sink: Box<dyn Sink>,
    clock: Clock,
    /// Set when the output cannot be written any more.
    failed: Option<std::io::Error>,
    /// When the oldest line waiting in `out` was made.
    unflushed_since: Option<Instant>,
}

impl Printer {
    /// The time of the records read now: TIME of plain columns, or NDJSON's timestamp.
    fn time(&mut self) -> String {
        match self.format {
            Format::Json if self.timestamp => rfc3339_utc(std::time::SystemTime::now()),
            Format::Json => String::new(),
            Format::Plain => self.clock.hms().to_string(),
        }
    }

    fn header(&mut self) {
        if self.format == Format::Plain {
            if let Some(h) = self.records.iter().find_map(Records::header) {
                self.out.push_str(&h);
                self.out.push('\n');
            }
        }
    }

    /// Writes what is buffered. A reader that went away (`| head`) ends the run quietly.
    fn flush(&mut self) {
        self.unflushed_since = None;
        if self.out.is_empty() {
            return;
        }
        if self.failed.is_none() {
            if let Err(e) = self.sink.write(Stream::Out, self.out.as_bytes()) {
                self.failed = Some(e);
            }
        }
        self.out.clear();
    }

    fn run<M: RecordBuffers>(&mut self, mut pipeline: Pipeline<M>) -> Result<()> {
        let control = pipeline.control().clone();
        loop {
            let now = Instant::now();
            let mut wait = Duration::from_secs(3600);
            for s in &self.samples {
                wait = wait.min(s.next_due().saturating_duration_since(now));
            }
            if let Some(due) = self.next_results {
                wait = wait.min(due.saturating_duration_since(now));
            }
            // Output waits in memory while events keep coming; it is written once the buffers
            // are idle (a poll finds nothing), a batch is full or its first line is FLUSH_AFTER
            // old, so a flood costs one write per batch, not one per wakeup.
            let flush_due = self.unflushed_since.map(|t| t + FLUSH_AFTER);
            if let Some(due) = flush_due {
                wait = wait.min(due.saturating_duration_since(now));
            }
            let time = self.time();
            let Printer { records, out, .. } = self;
            let polled = pipeline.poll(wait, |m, data| {
                records[m].write(out, &time, data);
                if out.len() > BATCH {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })?;
            if !self.out.is_empty() && self.unflushed_since.is_none() {
                self.unflushed_since = Some(now);
            }
            if polled.records == 0
                || polled.broke.is_some()
                || flush_due.is_some_and(|due| Instant::now() >= due)
            {
                self.flush();
            }
            if !control.is_paused() {
                for s in &mut self.samples {
                    s.print_if_due(&mut self.out, self.format, &time);
                }
                if let (Some(due), Some(r), Some(i)) =
                    (self.next_results, self.results.as_mut(), self.interval)
                {
                    if Instant::now() >= due {
                        self.next_results = Some(due + i);
                        if self.format == Format::Plain {
                            self.out.push_str(&time);
                            self.out.push('\n');
                        }
                        r.print(&mut self.out, self.format, true);
                        self.flush();
                    }
                }
            }
            if self.out.len() > BATCH {
                self.flush();
            }
            if polled.stop || self.failed.is_some() {
                break;
            }
        }
        self.finish(pipeline)
    }

    /// Drains what is already buffered so a stop loses nothing that reached us.
    fn finish<M: RecordBuffers>(&mut self, mut pipeline: Pipeline<M>) -> Result<()> {
        let time = self.time();
        loop {
            let Printer { records, out, .. } = self;
            let polled = pipeline.drain_all(|m, data| {
                records[m].write(out, &time, data);
                if out.len() > BATCH {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
            self.flush();
            if polled.broke.is_none() || self.failed.is_some() {
                break;
            }
        }
        if let (Some(r), None) = (self.results.as_mut(), &self.failed) {
            r.print(&mut self.out, self.format, false);
            self.flush();
        }
        if self.failed.is_some() {
            let unread = pipeline.discard_unread();
            if unread > 0 {
                log::info!("{unread} buffered records not printed: the output was closed");
            }
        }
        let lost = pipeline.lost();
        if lost > 0 {
            self.sink.note(&format!(
                "lost {lost} samples (perf buffer overflow; raise perf_buffer_pages)"
            ));
        }
        log::info!(
            "{} events printed",
            pipeline
                .control()
                .counters
                .events
                .load(std::sync::atomic::Ordering::Relaxed)
        );
        match self.failed.take() {
            Some(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                Err(Error::msg(format!("writing output: {e}")))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::event::fake::{numbered, FakeBuffers};
    use crate::event::layout::Layouts;

    /// Every write, in order, with its stream.
    type Writes = Arc<Mutex<Vec<(Stream, Vec<u8>)>>>;

    /// Keeps every write; stops the instance once `stop_after` lines were written; fails
    /// writes with `fail` from the `fail_at`th on.
    #[derive(Clone, Default)]
    struct Capture {
        writes: Writes,
        control: Option<Arc<Control>>,
        stop_after: usize,
        fail: Option<(usize, std::io::ErrorKind)>,
    }

    impl Capture {
        fn out(&self) -> Vec<Vec<u8>> {
            let w = self.writes.lock().unwrap();
            w.iter()
                .filter(|(s, _)| *s == Stream::Out)
                .map(|(_, b)| b.clone())
                .collect()
        }
        fn lines(&self) -> Vec<String> {
            let all: Vec<u8> = self.out().concat();
            String::from_utf8(all)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect()
        }
        fn err(&self) -> String {
            let w = self.writes.lock().unwrap();
            w.iter()
                .filter(|(s, _)| *s == Stream::Err)
                .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
                .collect()
        }
    }

    impl Sink for Capture {
        fn write(&mut self, stream: Stream, bytes: &[u8]) -> std::io::Result<()> {
            let mut w = self.writes.lock().unwrap();
            if stream == Stream::Out {
                let n = w.iter().filter(|(s, _)| *s == Stream::Out).count();
                if let Some((at, kind)) = self.fail {
                    if n >= at {
                        return Err(kind.into());
                    }
                }
            }
            w.push((stream, bytes.to_vec()));
            let lines: usize = w
                .iter()
                .filter(|(s, _)| *s == Stream::Out)
                .map(|(_, b)| b.iter().filter(|&&c| c == b'\n').count())
                .sum();
            if let Some(c) = &self.control {
                if lines >= self.stop_after {
                    c.stop();
                }
            }
            Ok(())
        }
    }

    fn printer(sink: Capture) -> Printer {
        Printer {
            records: vec![Records::new(
                Layouts::default(),
                "events",
                Format::Json,
                &Default::default(),
            )
            .unwrap()],
            samples: vec![],
            results: None,
            interval: None,
            next_results: None,
            format: Format::Json,
            timestamp: false,
            out: String::new(),
            sink: Box::new(sink),
            clock: Clock::default(),
            failed: None,
            unflushed_since: None,
        }
    }

    fn pipeline(bufs: FakeBuffers) -> Pipeline<FakeBuffers> {
        let mut p = Pipeline::new(Arc::new(Control::new(None).unwrap())).unwrap();
        p.add(bufs).unwrap();
        p
    }

    fn hex(i: u32) -> String {
        i.to_le_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn a_flood_is_written_in_batches_with_every_record_in_order() {
        const N: usize = 20_000;
        let mut bufs = FakeBuffers::new(1);
        bufs.push(0, numbered(N));
        let p = pipeline(bufs);
        let sink = Capture {
            control: Some(p.control().clone()),
            stop_after: N,
            ..Capture::default()
        };
        printer(sink.clone()).run(p).unwrap();
        let lines = sink.lines();
        assert_eq!(lines.len(), N);
        for (i, l) in lines.iter().enumerate() {
            assert_eq!(
                *l,
                format!("{{\"map\":\"events\",\"data\":\"{}\"}}", hex(i as u32))
            );
        }
        // ~700 KB of lines: a write per batch, not per record.
        let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
        let writes = sink.out().len();
        assert!(
            writes <= bytes / BATCH + 2,
            "{writes} writes for {bytes} bytes"
        );
    }

    #[test]
    fn records_buffered_at_a_stop_are_printed() {
        let mut bufs = FakeBuffers::new(2);
        bufs.push(0, numbered(100));
        bufs.push(1, numbered(50));
        let p = pipeline(bufs);
        p.control().stop();
        let sink = Capture::default();
        printer(sink.clone()).run(p).unwrap();
        assert_eq!(sink.lines().len(), 150);
    }

    #[test]
    fn a_closed_reader_ends_the_run_quietly_and_drops_are_still_told() {
        let mut bufs = FakeBuffers::new(1);
        bufs.push(0, numbered(30_000));
        bufs.queued_drops[0] = 12;
        let p = pipeline(bufs);
        let sink = Capture {
            fail: Some((1, std::io::ErrorKind::BrokenPipe)),
            ..Capture::default()
        };
        printer(sink.clone()).run(p).unwrap();
        assert_eq!(sink.out().len(), 1, "nothing written after the pipe closed");
        assert!(sink.err().contains("lost 12 samples"), "{}", sink.err());
    }

    #[test]
    fn an_output_that_fails_otherwise_is_an_error() {
        let mut bufs = FakeBuffers::new(1);
        bufs.push(0, numbered(10));
        let p = pipeline(bufs);
        p.control().stop();
        let sink = Capture {
            fail: Some((0, std::io::ErrorKind::StorageFull)),
            ..Capture::default()
        };
        let e = printer(sink).run(p).unwrap_err();
        assert!(e.to_string().starts_with("writing output: "), "{e}");
    }
}
