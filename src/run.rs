//! `edge-ecli run`: source -> package -> flags -> loader -> event loop -> output.

use std::io::Write;
use std::ops::ControlFlow;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use aya::maps::Map;

use crate::bpf::{self, rawmap, KernelBtf};
use crate::btf::{self, TypeData};
use crate::error::{Error, Result};
use crate::event::{self, Formatter, Layout, Style};
use crate::hist;
use crate::meta::{MapDef, Object, Sample, SampleKind};
use crate::poll::{Epoll, EventMap, SignalFd};
use crate::{args, package, source};

pub struct RunOptions {
    pub prog: String,
    pub args: Vec<String>,
    pub json: bool,
    pub timeout: Option<f64>,
    pub btf: Option<String>,
    pub event_type: Option<String>,
    pub env: Vec<String>,
    pub dirs: Vec<(String, String)>,
    pub max_memory: usize,
    pub uprobe_target: Option<String>,
    pub uprobe_pid: Option<u32>,
}

/// Exit status of a run that did not fail.
pub enum Outcome {
    Done,
    Help(String),
    /// A Wasm guest's exit code.
    Exit(i32),
}

fn now_ms(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

pub fn run(opts: RunOptions) -> Result<Outcome> {
    let t0 = Instant::now();
    // Block SIGINT/SIGTERM first: they are read from a signalfd in the event loop, so a Ctrl-C
    // at any point ends in the same orderly teardown.
    let sigfd = SignalFd::new()?;
    let bytes = source::read(&opts.prog)?;
    let t_read = now_ms(t0);
    if package::detect(&bytes).ok() == Some(package::Kind::Wasm) {
        drop(sigfd);
        let name = opts
            .prog
            .rsplit('/')
            .next()
            .unwrap_or(&opts.prog)
            .trim_end_matches(".wasm")
            .to_string();
        let code = crate::wasm::run(
            &bytes,
            crate::wasm::WasmOptions {
                name,
                args: opts.args,
                env: opts.env,
                dirs: opts.dirs,
                max_memory: opts.max_memory,
                timeout: opts.timeout,
                btf: opts.btf,
            },
        )
        .map_err(|e| e.context(&opts.prog))?;
        return Ok(Outcome::Exit(code));
    }
    let object = package::load(bytes, &opts.prog).map_err(|e| e.context(&opts.prog))?;
    let t_parse = now_ms(t0);
    let prog_name = object.meta.obj_name.clone();
    let parsed = args::parse(&object.meta, &object.btf, &prog_name, &opts.args)?;
    if let Some(h) = parsed.help {
        return Ok(Outcome::Help(h));
    }
    if parsed.verbose || object.meta.tunables.debug_verbose {
        crate::logger::raise_to_debug();
    }
    // Checked before anything touches the kernel.
    let event_layout = match &opts.event_type {
        Some(n) => Some(object.find_struct(n).ok_or_else(|| {
            Error::msg(format!(
                "--event-type {n}: no struct named {n} in the object's BTF"
            ))
        })?),
        None => None,
    };
    let btf_src = opts.btf.clone().map_or(KernelBtf::Sys, KernelBtf::File);
    let mut loaded = bpf::load(&object, &parsed.globals, btf_src)?;
    let t_load = now_ms(t0);
    loaded.uprobe_pid = opts.uprobe_pid.unwrap_or(0);
    loaded.attach_all(&object.meta.progs, opts.uprobe_target.as_deref())?;
    let t_attach = now_ms(t0);
    let verify = loaded.verify_time.as_millis() as u64;
    let attach = (loaded.attach_time.as_millis() as u64).saturating_sub(verify);
    log::info!(
        "phases (ms): read {t_read}, parse/inflate/object BTF {}, kernel BTF/maps {}, verify {verify}, attach {attach}; all attached at {t_attach} ms",
        t_parse - t_read,
        t_load - t_parse,
    );

    let mut lp = EventLoop::new(sigfd, opts.json, opts.timeout)?;
    let event_maps: Vec<&str> = object
        .meta
        .maps
        .iter()
        .filter(|m| m.is_event_map())
        .map(|m| m.name.as_str())
        .collect();
    if event_maps.len() > 1 {
        // ecli reads only the last export map; every one is read here.
        eprintln!(
            "edge-ecli: reading {} event maps: {}",
            event_maps.len(),
            event_maps.join(", ")
        );
    }
    for def in &object.meta.maps {
        if def.is_event_map() {
            let layout = pick_layout(&object, def, event_layout)?;
            let map = loaded
                .take_map(&def.name)
                .ok_or_else(|| Error::msg(format!("map {} was not created", def.name)))?;
            lp.add_event_map(def, map, layout, object.meta.tunables.perf_buffer_pages)?;
        } else if let Some(s) = &def.sample {
            let map = loaded
                .ebpf
                .map(&def.name)
                .ok_or_else(|| Error::msg(format!("map {} was not created", def.name)))?;
            let fd = rawmap::fd_of(map).ok_or_else(|| {
                Error::msg(format!(
                    "map {}: sample maps must be hash or array maps",
                    def.name
                ))
            })?;
            lp.add_sample_map(&object, def, s.clone(), fd)?;
        }
    }
    lp.run()?;
    drop(lp);
    drop(loaded);
    Ok(Outcome::Done)
}

fn pick_layout(object: &Object, def: &MapDef, flag: Option<u32>) -> Result<Option<Layout>> {
    let exported = event::default_export_types(object);
    let id = def
        .export_type
        .or(flag)
        .or_else(|| exported.first().copied());
    match id {
        Some(id) => Ok(Some(Layout::from_btf(&object.btf, id)?)),
        None => {
            eprintln!(
                "edge-ecli: map {}: no event type known, printing raw bytes in hex; name the struct with --event-type NAME",
                def.name
            );
            Ok(None)
        }
    }
}

struct SampleMap {
    name: String,
    fd: RawFd,
    sample: Sample,
    key: Layout,
    value: Layout,
    key_size: usize,
    value_size: usize,
    next_due: Instant,
    header_done: bool,
}

struct EventLoop {
    epoll: Epoll,
    sig: SignalFd,
    json: bool,
    deadline: Option<Instant>,
    maps: Vec<(EventMap, Option<Formatter>)>,
    samples: Vec<SampleMap>,
    out: String,
    events: u64,
    header_printed: bool,
    clock: event::Clock,
}

const SIG_TOKEN: u64 = u64::MAX;

/// Epoll token of buffer `buf` of event map `map`.
fn token(map: usize, buf: usize) -> u64 {
    ((map as u64) << 32) | buf as u64
}

impl EventLoop {
    fn new(sig: SignalFd, json: bool, timeout: Option<f64>) -> Result<EventLoop> {
        let epoll = Epoll::new()?;
        epoll.add(sig.fd, SIG_TOKEN)?;
        Ok(EventLoop {
            epoll,
            sig,
            json,
            deadline: timeout.map(|t| Instant::now() + Duration::from_secs_f64(t)),
            maps: vec![],
            samples: vec![],
            out: String::with_capacity(1 << 16),
            events: 0,
            header_printed: false,
            clock: event::Clock::default(),
        })
    }

    fn add_event_map(
        &mut self,
        def: &MapDef,
        map: Map,
        layout: Option<Layout>,
        pages: usize,
    ) -> Result<()> {
        let fmt = layout.map(|l| Formatter::new(l, self.json));
        if let (false, Some(f)) = (self.json || self.header_printed, &fmt) {
            println!("{}", f.header("TIME     "));
            self.header_printed = true;
        }
        let em = EventMap::open(&def.name, map, pages)?;
        for (i, fd) in em.fds().into_iter().enumerate() {
            self.epoll.add(fd, token(self.maps.len(), i))?;
        }
        self.maps.push((em, fmt));
        Ok(())
    }

    fn add_sample_map(
        &mut self,
        object: &Object,
        def: &MapDef,
        sample: Sample,
        fd: RawFd,
    ) -> Result<()> {
        let need = |id: u32, what: &str| -> Result<Layout> {
            if id == 0 {
                return Err(Error::msg(format!(
                    "sample map {}: its {what} type is not in BTF (declare it with __type)",
                    def.name
                )));
            }
            Layout::from_btf(&object.btf, id)
        };
        let key = need(def.key_type, "key")?;
        let value = need(def.value_type, "value")?;
        if matches!(sample.kind, SampleKind::Log2Hist | SampleKind::LinearHist)
            && slots_of(&object.btf, def.value_type).is_none()
        {
            return Err(Error::msg(format!(
                "sample map {}: a histogram value must be a struct with a `slots` array of u32 (or a u32 array)",
                def.name
            )));
        }
        self.samples.push(SampleMap {
            name: def.name.clone(),
            fd,
            key_size: key.size,
            value_size: value.size,
            key,
            value,
            next_due: Instant::now() + Duration::from_millis(sample.interval_ms),
            sample,
            header_done: false,
        });
        Ok(())
    }

    fn run(&mut self) -> Result<()> {
        if self.maps.is_empty() && self.samples.is_empty() {
            eprintln!("edge-ecli: attached; this package exports no events (Ctrl-C to stop)");
        }
        let mut ready = Vec::with_capacity(64);
        loop {
            let now = Instant::now();
            let mut wait = Duration::from_secs(3600);
            if let Some(d) = self.deadline {
                if now >= d {
                    break;
                }
                wait = wait.min(d - now);
            }
            for s in &self.samples {
                wait = wait.min(s.next_due.saturating_duration_since(now));
            }
            // Output waits in memory while events keep coming; it is written once the buffers
            // are idle (a zero-timeout poll finds nothing) or it grows past 64 KiB, so a flood
            // costs one write per batch, not one per wakeup.
            if !self.out.is_empty() {
                wait = Duration::ZERO;
            }
            ready.clear();
            ready.extend(self.epoll.wait(wait)?);
            if ready.is_empty() {
                self.flush()?;
            }
            let time = if self.json { "" } else { self.clock.hms() };
            let time = time.to_string();
            let mut stop = false;
            for &t in &ready {
                if t == SIG_TOKEN {
                    stop = self.sig.pending() || stop;
                    continue;
                }
                self.drain((t >> 32) as usize, (t & 0xffff_ffff) as usize, &time);
                self.flush_if_big()?;
            }
            let now = Instant::now();
            for i in 0..self.samples.len() {
                if self.samples[i].next_due <= now {
                    self.print_sample(i, &time);
                    let iv = Duration::from_millis(self.samples[i].sample.interval_ms);
                    self.samples[i].next_due = now + iv;
                }
            }
            self.flush_if_big()?;
            if stop {
                break;
            }
        }
        // Drain what is already buffered so a stop loses nothing that reached us.
        let time = if self.json {
            String::new()
        } else {
            event::local_hms()
        };
        for m in 0..self.maps.len() {
            for b in 0..self.maps[m].0.len() {
                self.drain(m, b, &time);
                self.flush_if_big()?;
            }
        }
        self.flush()?;
        let lost: u64 = self.maps.iter().map(|m| m.0.lost).sum();
        if lost > 0 {
            eprintln!(
                "edge-ecli: lost {lost} samples (perf buffer overflow; raise perf_buffer_pages)"
            );
        }
        log::info!("{} events printed", self.events);
        Ok(())
    }

    fn flush_if_big(&mut self) -> Result<()> {
        if self.out.len() > 1 << 16 {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let mut so = std::io::stdout().lock();
        let r = so.write_all(self.out.as_bytes()).and_then(|_| so.flush());
        self.out.clear();
        match r {
            Ok(()) => Ok(()),
            // The reader went away (e.g. `| head`): stop quietly.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.deadline = Some(Instant::now());
                Ok(())
            }
            Err(e) => Err(Error::msg(format!("writing output: {e}"))),
        }
    }

    /// Formats every record of one buffer, yielding to the caller every 1 MiB of output so
    /// memory stays bounded under a flood.
    fn drain(&mut self, map: usize, buf: usize, time: &str) {
        let EventLoop {
            maps, out, events, ..
        } = self;
        let (em, fmt) = &mut maps[map];
        let name = em.name.clone();
        loop {
            let (n, more) = em.drain(buf, |data| {
                emit(out, fmt.as_ref(), &name, time, data);
                // 64 KiB, a pipe's capacity: a bigger batch saves no writes, only memory.
                if out.len() > 1 << 16 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
            *events += n;
            if more.is_none() {
                break;
            }
            let mut so = std::io::stdout().lock();
            let _ = so.write_all(out.as_bytes());
            out.clear();
        }
    }

    fn print_sample(&mut self, i: usize, time: &str) {
        let s = &mut self.samples[i];
        let out = &mut self.out;
        let mut key = vec![0u8; s.key_size];
        let mut next = vec![0u8; s.key_size];
        let mut value = vec![0u8; s.value_size];
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut first = true;
        while keys.len() < 1 << 16 {
            let r = rawmap::next_key(s.fd, if first { None } else { Some(&key) }, &mut next);
            first = false;
            match r {
                Ok(true) => {
                    keys.push(next.clone());
                    std::mem::swap(&mut key, &mut next);
                }
                _ => break,
            }
        }
        // Key and value side by side: one layout over the bytes key ++ value.
        let mut kv_fields = s.key.fields.clone();
        kv_fields.extend(s.value.fields.iter().cloned().map(|mut f| {
            f.offset += s.key_size;
            f
        }));
        let kv_fmt = Formatter::new(
            Layout {
                name: s.name.clone(),
                size: s.key_size + s.value_size,
                fields: kv_fields,
            },
            false,
        );
        if !self.json && s.sample.kind == SampleKind::DefaultKv && !s.header_done {
            out.push_str(&kv_fmt.header("TIME     "));
            out.push('\n');
            s.header_done = true;
        }
        let mut kv = Vec::with_capacity(s.key_size + s.value_size);
        for k in &keys {
            if rawmap::lookup(s.fd, k, &mut value).is_err() {
                continue;
            }
            if self.json {
                out.push_str("{\"map\":");
                crate::json::write_str(out, &s.name);
                out.push_str(",\"key\":");
                event::write_object(out, &s.key.fields, k);
                out.push_str(",\"value\":");
                event::write_object(out, &s.value.fields, &value);
                out.push_str("}\n");
                continue;
            }
            match s.sample.kind {
                SampleKind::DefaultKv => {
                    kv.clear();
                    kv.extend_from_slice(k);
                    kv.extend_from_slice(&value);
                    kv_fmt.record(out, time, &kv);
                }
                SampleKind::Log2Hist | SampleKind::LinearHist => {
                    out.push_str("key = ");
                    write_plain_fields(out, &s.key, k);
                    out.push('\n');
                    let mut slots: &[u32] = &[];
                    let mut buf = Vec::new();
                    for f in &s.value.fields {
                        if f.name == "slots" || s.value.fields.len() == 1 {
                            if let event::Kind::Array {
                                len, elem_size: 4, ..
                            } = f.kind
                            {
                                buf = (0..len)
                                    .map(|j| {
                                        let o = f.offset + j * 4;
                                        value.get(o..o + 4).map_or(0, |b| {
                                            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
                                        })
                                    })
                                    .collect();
                            }
                        } else {
                            out.push_str(&f.name);
                            out.push_str(" = ");
                            event::write_value(
                                out,
                                &f.kind,
                                value.get(f.offset..).unwrap_or(&[]),
                                Style::Plain,
                            );
                            out.push('\n');
                        }
                    }
                    slots = if buf.is_empty() { slots } else { &buf };
                    if s.sample.kind == SampleKind::Log2Hist {
                        hist::log2(out, slots, &s.sample.unit);
                    } else {
                        hist::linear(out, slots, 0, 1, &s.sample.unit);
                    }
                    out.push('\n');
                }
            }
        }
        if s.sample.clear_map {
            for k in &keys {
                let _ = rawmap::delete(s.fd, k);
            }
        }
    }
}

fn write_plain_fields(out: &mut String, l: &Layout, data: &[u8]) {
    if l.fields.len() == 1 {
        let f = &l.fields[0];
        event::write_value(
            out,
            &f.kind,
            data.get(f.offset..).unwrap_or(&[]),
            Style::Plain,
        );
    } else {
        event::write_object(out, &l.fields, data);
    }
}

fn slots_of(btf: &btf::Btf, value_type: u32) -> Option<()> {
    let id = btf.resolve(value_type).ok()?;
    match &btf.get(id).ok()?.data {
        TypeData::Array { .. } => Some(()),
        TypeData::Members(m) => m.iter().any(|m| m.name == "slots").then_some(()),
        _ => None,
    }
}

fn emit(out: &mut String, fmt: Option<&Formatter>, map: &str, time: &str, data: &[u8]) {
    use std::fmt::Write as _;
    match fmt {
        Some(f) => f.record(out, time, data),
        None => {
            let _ = write!(out, "{time} {map} ");
            for b in data {
                let _ = write!(out, "{b:02x}");
            }
            out.push('\n');
        }
    }
}
