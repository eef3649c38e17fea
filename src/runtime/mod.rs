//! The runtime: one [`Instance`] per running package, whatever its kind, on its own thread.
//! Start it with a package, its arguments, [`Options`] and a [`Sink`] for its output; then
//! stop, pause, resume and watch it. The CLI's `run`, the daemon and the tests are its
//! callers; none of them has an event loop of its own.
//!
//! ```no_run
//! use edge_ecli::{package::Package, runtime::{Instance, Options}, event::Stdout};
//! let bytes = std::fs::read("sigsnoop.bpf.o")?;
//! let pkg = Package::decode(bytes, "sigsnoop.bpf.o")?;
//! let inst = Instance::start(pkg, vec![], Options::default(), Box::new(Stdout))?;
//! std::thread::sleep(std::time::Duration::from_secs(5));
//! inst.stop();
//! inst.wait()?;
//! # Ok::<(), edge_ecli::error::Error>(())
//! ```

mod native;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

pub use crate::bpf::{AttachOptions, KernelBtf};
pub use crate::event::{Format, Sink};
pub use crate::package::meta::MapSize;
pub use crate::wasm::WasmOptions;

use crate::error::{Error, Result};
use crate::event::poll::EventFd;
use crate::event::Control;
use crate::package::Package;

/// How an instance runs, besides its package and the package's own arguments.
#[derive(Debug, Clone)]
pub struct Options {
    /// Plain columns or NDJSON (JSON packages and raw objects; Wasm guests print themselves).
    pub format: Format,
    /// Which fields, and whether NDJSON lines carry a timestamp.
    pub output: crate::event::OutputOptions,
    /// Stop by itself after this long.
    pub timeout: Option<Duration>,
    /// Where the kernel's BTF comes from.
    pub btf: KernelBtf,
    /// The struct that decodes records of event maps (raw objects, env-ABI guests).
    pub event_type: Option<String>,
    /// What sections cannot name: uprobe targets, interfaces, cgroups, sampling frequency.
    pub attach: AttachOptions,
    /// Environment, directories and memory of Wasm guests.
    pub wasm: WasmOptions,
    /// Where maps pinned by name live (default /sys/fs/bpf, as libbpf).
    pub pin_dir: Option<std::path::PathBuf>,
    /// How the user ran the package, for its help and the hints of a bad argument.
    pub invocation: crate::args::Invocation,
    /// Map sizes the user sets (`--map NAME.max_entries=N`).
    pub map_sizes: Vec<MapSize>,
    /// Print the result maps every this long (and clear them), not only at exit.
    pub interval: Option<Duration>,
    /// Label of histogram columns (default from the package's `*_ms`/`*_ns` flags, else usecs).
    pub hist_unit: Option<String>,
}

impl Options {
    /// What the loader takes of these options.
    pub fn load_options(&self) -> crate::bpf::LoadOptions {
        crate::bpf::LoadOptions {
            btf: self.btf.clone(),
            pin_dir: self.pin_dir.clone(),
            map_sizes: self.map_sizes.clone(),
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            format: Format::Plain,
            output: Default::default(),
            timeout: None,
            btf: KernelBtf::default(),
            event_type: None,
            attach: AttachOptions::default(),
            wasm: WasmOptions::default(),
            pin_dir: None,
            invocation: Default::default(),
            map_sizes: Vec::new(),
            interval: None,
            hist_unit: None,
        }
    }
}

/// How an instance ended, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stopped (a stop request, the timeout, the output's reader went away).
    Done,
    /// `-h`: the package's help text; nothing was loaded.
    Help(String),
    /// A Wasm guest's exit code (`proc_exit` or `main`'s return).
    Exit(i32),
}

/// Where an instance is in its life.
#[derive(Debug, Clone)]
pub enum State {
    /// Loading and attaching.
    Starting,
    /// Attached, its events flowing.
    Running,
    /// Attached; its events are read and counted, not handed on.
    Paused,
    /// Ended by itself or by a stop request.
    Stopped,
    /// Ended with this error (its kind says what went wrong).
    Failed(Error),
}

impl State {
    /// Its name in status output and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Paused => "paused",
            State::Stopped => "stopped",
            State::Failed(_) => "failed",
        }
    }
}

/// Counters of an instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records handed on.
    pub events: u64,
    /// Records the kernel dropped (full perf buffers).
    pub lost: u64,
    /// Records read and thrown away while paused.
    pub paused_drops: u64,
    /// CPU time of the instance's thread.
    pub cpu_ns: u64,
}

/// How [`Instance::wait_ready`] ended.
#[derive(Debug)]
pub enum Readiness {
    /// Every program attached (a Wasm guest waits for events or time).
    Ready,
    /// It ended without an error before it was ready (`-h`, a guest that exits at once).
    Ended,
    /// It failed before it was ready.
    Failed(Error),
    /// Neither within the time given; it is still starting.
    TimedOut,
}

/// Stops an instance from wherever it is owned ([`Instance::stopper`]).
#[derive(Clone)]
pub struct Stopper(Arc<Control>);

impl Stopper {
    /// Asks the instance to stop (see [`Instance::stop`]).
    pub fn stop(&self) {
        self.0.stop();
    }
}

/// What the instance's thread shares with its owner besides the control block.
struct Shared {
    result: Mutex<Option<Result<Outcome>>>,
    finished: AtomicBool,
    /// The thread's CPU clock while it runs; its last reading once it ended.
    cpu_clock: Mutex<Option<libc::clockid_t>>,
    cpu_final: AtomicU64,
    done: EventFd,
}

fn read_clock(id: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer; a stale clock id gives an error, not UB.
    (unsafe { libc::clock_gettime(id, &mut ts) } == 0)
        .then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// Signals the end of the instance's thread even if it unwinds.
struct EndGuard(Arc<Shared>, Arc<Control>);

impl Drop for EndGuard {
    fn drop(&mut self) {
        let mut clock = self.0.cpu_clock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ns) = clock.and_then(read_clock) {
            self.0.cpu_final.store(ns, Ordering::Relaxed);
        }
        *clock = None;
        drop(clock);
        self.0.finished.store(true, Ordering::SeqCst);
        self.1.notify_done();
        self.0.done.signal();
    }
}

/// A running package.
pub struct Instance {
    control: Arc<Control>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    started: SystemTime,
}

impl Instance {
    /// Starts `package` on a new thread and returns once it is ready (every program attached;
    /// for a Wasm guest, once it first waits for events or time) or has ended. An error
    /// before that is returned here, and nothing of the package is left in the kernel.
    pub fn start(
        package: Package,
        args: Vec<String>,
        opts: Options,
        sink: Box<dyn Sink>,
    ) -> Result<Instance> {
        let inst = Instance::spawn(package, args, opts, sink)?;
        match inst.wait_ready(None) {
            Readiness::Failed(e) => Err(e),
            _ => Ok(inst),
        }
    }

    /// Waits until it is ready (see [`Instance::start`]), has ended, or `timeout` passed.
    /// When it failed before it was ready, its thread is joined and the error returned.
    pub fn wait_ready(&self, timeout: Option<Duration>) -> Readiness {
        let until = timeout.map(|t| std::time::Instant::now() + t);
        if self
            .control
            .wait_ready(|| self.shared.finished.load(Ordering::SeqCst), until)
        {
            return Readiness::Ready;
        }
        if !self.is_finished() {
            return Readiness::TimedOut;
        }
        let mut result = self.shared.result.lock().unwrap_or_else(|e| e.into_inner());
        match result.take() {
            Some(Err(e)) => {
                *result = Some(Err(e.clone()));
                Readiness::Failed(e)
            }
            other => {
                *result = other;
                Readiness::Ended
            }
        }
    }

    /// A handle that stops this instance from anywhere (another thread may own it).
    pub fn stopper(&self) -> Stopper {
        Stopper(self.control.clone())
    }

    /// Waits at most `timeout` for the end: how it ended, or the instance back when it is
    /// still running (its thread may be inside the kernel; nothing waits for it for ever).
    pub fn wait_for(self, timeout: Duration) -> std::result::Result<Result<Outcome>, Instance> {
        if !self.is_finished()
            && crate::event::poll::wait_readable(&[self.done_fd()], timeout).is_none()
            && !self.is_finished()
        {
            return Err(self);
        }
        Ok(self.wait())
    }

    /// Starts `package` on a new thread and returns at once (a foreground caller that also
    /// waits for signals uses this, with [`Instance::done_fd`]).
    pub fn spawn(
        package: Package,
        args: Vec<String>,
        opts: Options,
        sink: Box<dyn Sink>,
    ) -> Result<Instance> {
        let timeout = opts.timeout;
        Instance::spawn_with(timeout, move |c| run(package, args, opts, sink, c))
    }

    /// Runs `body` as an instance: on a new thread, with a control that stops it after
    /// `timeout`. `body` marks the instance ready through the control.
    pub(crate) fn spawn_with(
        timeout: Option<Duration>,
        body: impl FnOnce(Arc<Control>) -> Result<Outcome> + Send + 'static,
    ) -> Result<Instance> {
        let control = Arc::new(Control::new(timeout)?);
        let shared = Arc::new(Shared {
            result: Mutex::new(None),
            finished: AtomicBool::new(false),
            cpu_clock: Mutex::new(None),
            cpu_final: AtomicU64::new(0),
            done: EventFd::new()?,
        });
        let (c, s) = (control.clone(), shared.clone());
        let thread = std::thread::Builder::new()
            .name("edge-ecli-run".into())
            .spawn(move || {
                let _end = EndGuard(s.clone(), c.clone());
                let mut id: libc::clockid_t = 0;
                // SAFETY: querying the calling thread's own CPU clock into a local.
                if unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut id) } == 0 {
                    *s.cpu_clock.lock().unwrap_or_else(|e| e.into_inner()) = Some(id);
                }
                let r = body(c);
                *s.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
            })
            .map_err(|e| Error::msg(format!("starting a thread: {e}")))?;
        Ok(Instance {
            control,
            shared,
            thread: Some(thread),
            started: SystemTime::now(),
        })
    }

    /// Asks it to stop; [`Instance::wait`] then returns soon. Stopping twice is fine.
    pub fn stop(&self) {
        self.control.stop();
    }

    /// Pauses it: a paused instance delivers no events (they are read and counted as
    /// `paused_drops`) and a paused Wasm guest runs no code.
    /// Pauses it: its events are read and counted, not handed on.
    pub fn pause(&self) {
        self.control.pause();
    }

    /// Ends a pause.
    pub fn resume(&self) {
        self.control.resume();
    }

    /// True once it has ended (its result is ready for [`Instance::wait`]).
    pub fn is_finished(&self) -> bool {
        self.shared.finished.load(Ordering::SeqCst)
    }

    /// Readable once the instance has ended (for callers that wait on several fds).
    pub fn done_fd(&self) -> i32 {
        self.shared.done.fd()
    }

    /// When it was spawned.
    pub fn started(&self) -> SystemTime {
        self.started
    }

    /// Where it is now.
    pub fn state(&self) -> State {
        if self.is_finished() {
            return match &*self.shared.result.lock().unwrap_or_else(|e| e.into_inner()) {
                Some(Err(e)) => State::Failed(e.clone()),
                _ => State::Stopped,
            };
        }
        if !self.control.is_ready() {
            State::Starting
        } else if self.control.is_paused() {
            State::Paused
        } else {
            State::Running
        }
    }

    /// Its counters now (final ones once it ended).
    pub fn stats(&self) -> Stats {
        let c = &self.control.counters;
        let cpu = self
            .shared
            .cpu_clock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .and_then(read_clock)
            .unwrap_or_else(|| self.shared.cpu_final.load(Ordering::Relaxed));
        Stats {
            events: c.events.load(Ordering::Relaxed),
            lost: c.lost.load(Ordering::Relaxed),
            paused_drops: c.paused_drops.load(Ordering::Relaxed),
            cpu_ns: cpu,
        }
    }

    /// The maps it lets others read while it runs (counter_, gauge_, hist_ and sample maps).
    pub fn map_views(&self) -> Vec<std::sync::Arc<crate::event::sample::MapView>> {
        self.control.views()
    }

    /// The kernel ids of its programs, by name (native packages; a Wasm guest's are its own).
    pub fn program_ids(&self) -> Vec<(String, u32)> {
        self.control.programs()
    }

    /// Waits for the end and returns how it ended.
    pub fn wait(mut self) -> Result<Outcome> {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.shared
            .result
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_else(|| Err(Error::msg("the instance's thread ended without a result")))
    }
}

impl Drop for Instance {
    /// An instance dropped without `wait` is stopped, and its kernel objects released.
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.control.stop();
            let _ = t.join();
        }
    }
}

/// The instance's thread: a BPF object through the native pipeline, or a Wasm guest.
fn run(
    package: Package,
    args: Vec<String>,
    opts: Options,
    sink: Box<dyn Sink>,
    control: Arc<Control>,
) -> Result<Outcome> {
    match package {
        Package::Object(object) => native::run(object, args, &opts, sink, control),
        Package::Wasm { module, name } => {
            let mut load = opts.load_options();
            // Kernel BTF the app carries for kernels without their own (a custom section).
            if let Some(a) = crate::package::wasm_btf::carried(&module)? {
                load.btf.carried = Some(a);
            }
            let config = crate::wasm::HostConfig {
                load,
                attach: opts.attach.clone(),
                event_type: opts.event_type.clone(),
            };
            crate::wasm::run(&module, &name, args, &opts.wasm, config, sink, control)
                .map(Outcome::Exit)
        }
    }
}
