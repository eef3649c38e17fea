//! `edge-ecli run`: source -> package -> flags -> loader -> event loop -> output.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};

use aya::maps::perf::{PerfEvent, PerfEventArray, PerfEventArrayBuffer};
use aya::maps::{Map, MapData, RingBuf};

use crate::bpf::{self, rawmap, KernelBtf};
use crate::btf::{self, TypeData};
use crate::error::{Error, Result};
use crate::event::{self, Formatter, Layout, Style};
use crate::hist;
use crate::meta::{MapDef, Object, Sample, SampleKind};
use crate::{args, package, source};

pub struct RunOptions {
    pub prog: String,
    pub args: Vec<String>,
    pub json: bool,
    pub timeout: Option<f64>,
    pub btf: Option<String>,
    pub event_type: Option<String>,
}

/// Exit status of a run that did not fail.
pub enum Outcome {
    Done,
    Help(String),
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
    let btf_src = opts.btf.clone().map_or(KernelBtf::Sys, KernelBtf::File);
    let mut loaded = bpf::load(&object, &parsed.globals, btf_src)?;
    let t_load = now_ms(t0);
    loaded.attach_all(&object.meta.progs)?;
    let t_attach = now_ms(t0);
    log::info!(
        "phases (ms since exec of run): read {t_read}, parse+inflate+btf {t_parse}, load {t_load}, attach {t_attach}"
    );

    let event_layout = match &opts.event_type {
        Some(n) => Some(object.find_struct(n).ok_or_else(|| {
            Error::msg(format!(
                "--event-type {n}: no struct named {n} in the object's BTF"
            ))
        })?),
        None => None,
    };
    let mut lp = EventLoop::new(sigfd, opts.json, opts.timeout);
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

/// SIGINT/SIGTERM as a readable fd.
struct SignalFd {
    fd: RawFd,
}

impl SignalFd {
    fn new() -> Result<SignalFd> {
        // SAFETY: plain libc calls on a locally owned sigset.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
            if fd < 0 {
                return Err(Error::msg(format!(
                    "signalfd: {}",
                    std::io::Error::last_os_error()
                )));
            }
            Ok(SignalFd { fd })
        }
    }
}

impl Drop for SignalFd {
    fn drop(&mut self) {
        // SAFETY: we own fd.
        unsafe { libc::close(self.fd) };
    }
}

enum Source {
    Ring {
        map: String,
        rb: RingBuf<MapData>,
        fmt: Option<Formatter>,
    },
    Perf {
        map: String,
        buf: PerfEventArrayBuffer<MapData>,
        fmt: Option<Formatter>,
    },
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
    epfd: RawFd,
    sig: SignalFd,
    json: bool,
    deadline: Option<Instant>,
    sources: Vec<Source>,
    samples: Vec<SampleMap>,
    /// Perf arrays must stay alive while their buffers are read.
    _perf_maps: Vec<PerfEventArray<MapData>>,
    out: String,
    scratch: Vec<u8>,
    lost: u64,
    events: u64,
    header_printed: bool,
}

const SIG_TOKEN: u64 = u64::MAX;

impl EventLoop {
    fn new(sig: SignalFd, json: bool, timeout: Option<f64>) -> EventLoop {
        // SAFETY: creating an epoll fd has no preconditions.
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        let lp = EventLoop {
            epfd,
            sig,
            json,
            deadline: timeout.map(|t| Instant::now() + Duration::from_secs_f64(t)),
            sources: vec![],
            samples: vec![],
            _perf_maps: vec![],
            out: String::with_capacity(1 << 16),
            scratch: vec![],
            lost: 0,
            events: 0,
            header_printed: false,
        };
        let fd = lp.sig.fd;
        lp.watch(fd, SIG_TOKEN);
        lp
    }

    fn watch(&self, fd: RawFd, token: u64) {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: epfd and fd are open; ev is valid for the call.
        unsafe { libc::epoll_ctl(self.epfd, libc::EPOLL_CTL_ADD, fd, &mut ev) };
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
        match map {
            Map::RingBuf(_) => {
                let rb = RingBuf::try_from(map)
                    .map_err(|e| Error::msg(format!("map {}: {}", def.name, bpf::chain(&e))))?;
                self.watch(rb.as_fd().as_raw_fd(), self.sources.len() as u64);
                self.sources.push(Source::Ring {
                    map: def.name.clone(),
                    rb,
                    fmt,
                });
            }
            Map::PerfEventArray(_) => {
                let mut arr = PerfEventArray::try_from(map)
                    .map_err(|e| Error::msg(format!("map {}: {}", def.name, bpf::chain(&e))))?;
                let cpus = aya::util::online_cpus()
                    .map_err(|(_, e)| Error::msg(format!("reading online CPUs: {e}")))?;
                for (i, cpu) in cpus.iter().enumerate() {
                    let buf = arr
                        .open(*cpu, Some(pages.next_power_of_two()))
                        .map_err(|e| {
                            Error::msg(format!(
                                "map {}: opening perf buffer on CPU {cpu}: {}",
                                def.name,
                                bpf::chain(&e)
                            ))
                        })?;
                    self.watch(buf.as_raw_fd(), self.sources.len() as u64);
                    let _ = i;
                    let fmt = fmt.clone_fmt();
                    self.sources.push(Source::Perf {
                        map: def.name.clone(),
                        buf,
                        fmt,
                    });
                }
                self._perf_maps.push(arr);
            }
            _ => {
                return Err(Error::msg(format!(
                    "map {} is not a ringbuf or perf event array",
                    def.name
                )))
            }
        }
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
        if self.sources.is_empty() && self.samples.is_empty() {
            eprintln!("edge-ecli: attached; this package exports no events (Ctrl-C to stop)");
        }
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 64];
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
            let ms = wait.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: events has room for its length.
            let n = unsafe {
                libc::epoll_wait(self.epfd, events.as_mut_ptr(), events.len() as i32, ms)
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::msg(format!("epoll_wait: {e}")));
            }
            let time = if self.json {
                String::new()
            } else {
                event::local_hms()
            };
            let mut stop = false;
            for ev in &events[..n as usize] {
                if ev.u64 == SIG_TOKEN {
                    stop = true;
                    continue;
                }
                self.drain(ev.u64 as usize, &time);
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
            self.flush()?;
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
        for i in 0..self.sources.len() {
            self.drain(i, &time);
        }
        self.flush()?;
        if self.lost > 0 {
            eprintln!(
                "edge-ecli: lost {} samples (perf buffer overflow; raise perf_buffer_pages)",
                self.lost
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

    fn drain(&mut self, idx: usize, time: &str) {
        let EventLoop {
            sources,
            out,
            scratch,
            lost,
            events,
            ..
        } = self;
        match &mut sources[idx] {
            Source::Ring { rb, fmt, map } => {
                while let Some(item) = rb.next() {
                    emit(out, fmt.as_ref(), map, time, &item);
                    *events += 1;
                    if out.len() > 1 << 20 {
                        break;
                    }
                }
            }
            Source::Perf { buf, fmt, map } => {
                buf.for_each(|ev| match ev {
                    PerfEvent::Sample { head, tail } => {
                        let data: &[u8] = if tail.is_empty() {
                            head
                        } else {
                            scratch.clear();
                            scratch.extend_from_slice(head);
                            scratch.extend_from_slice(tail);
                            scratch
                        };
                        emit(out, fmt.as_ref(), map, time, data);
                        *events += 1;
                    }
                    PerfEvent::Lost { count } => *lost += count,
                });
            }
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

trait CloneFmt {
    fn clone_fmt(&self) -> Self;
}

impl CloneFmt for Option<Formatter> {
    fn clone_fmt(&self) -> Self {
        self.as_ref()
            .map(|f| Formatter::new(f.layout.clone(), f.json))
    }
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        // SAFETY: we own epfd.
        unsafe { libc::close(self.epfd) };
    }
}
