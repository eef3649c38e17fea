//! Getting one version of an instance running, outside every lock of the table: fetch its
//! package (local files read as whoever asked for it), check it against the trust policy and
//! the digest it is pinned to, load it and wait, for at most the start deadline, until it is
//! attached. Each step can be cut short by a stop: the table signals the instance through its
//! [`Stopper`], and what was started is then stopped and released.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::events::{EventLog, LogSink};
use super::peer;
use super::spec::{Owner, Spec};
use crate::error::{Error, ErrorKind, Result};
use crate::package::{self, Package};
use crate::runtime::{Instance, Options, Readiness, Stats, Stopper};
use crate::source::{self, FetchOptions, Fetched, Source};
use crate::trust::Policy;

/// How long an instance stopped by the daemon may take to end before it is left to end on its
/// own (its thread inside the kernel; nothing waits for it for ever).
pub const STOP_WAIT: Duration = Duration::from_secs(10);
/// How long a start may take by default: load, verify and attach (`--start-timeout`).
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(60);

/// What the daemon runs packages with.
pub struct Settings {
    pub fetch: FetchOptions,
    pub options: Options,
    /// bpffs directory under which each instance's pinned maps live (`<root>/<name>/`).
    pub pin_root: Option<PathBuf>,
    /// How long a package may take from its load to being attached.
    pub start_timeout: Duration,
}

/// A package fetched and trusted, with the digest it runs under.
pub struct Trusted {
    pub fetched: Fetched,
    /// Its OCI manifest's digest, else its bytes'.
    pub digest: String,
}

/// A version started and ready.
pub struct Started {
    pub instance: Instance,
    pub digest: String,
    pub kind: &'static str,
}

/// How the table fetches and starts versions: [`Packages`] for real, a fake in the table's
/// unit tests (reload, cancel and conflict logic without registries or the kernel).
pub trait Launch: Send + Sync {
    /// See [`fetch`].
    fn fetch(&self, spec: &Spec, opts: &FetchOptions, policy: &Policy) -> Result<Trusted>;
    /// See [`start`].
    fn start(
        &self,
        name: &str,
        spec: &Spec,
        trusted: Trusted,
        settings: &Settings,
        log: &Arc<EventLog>,
        on_spawn: Box<dyn FnOnce(Stopper) + '_>,
    ) -> Result<Started>;
}

/// Packages from their sources, run by the runtime.
pub struct Packages;

impl Launch for Packages {
    fn fetch(&self, spec: &Spec, opts: &FetchOptions, policy: &Policy) -> Result<Trusted> {
        fetch(spec, opts, policy)
    }

    fn start(
        &self,
        name: &str,
        spec: &Spec,
        trusted: Trusted,
        settings: &Settings,
        log: &Arc<EventLog>,
        on_spawn: Box<dyn FnOnce(Stopper) + '_>,
    ) -> Result<Started> {
        start(name, spec, trusted, settings, log, on_spawn)
    }
}

/// Fetches `spec`'s package as its owner and checks it: the policy, then the pinned digest.
pub fn fetch(spec: &Spec, opts: &FetchOptions, policy: &Policy) -> Result<Trusted> {
    let local = Source::parse(&spec.source).map(|s| s.is_local())?;
    let get = || source::fetch(&spec.source, opts, policy);
    let fetched = if local {
        peer::run_as(&spec.owner, get)?
    } else {
        get()?
    };
    let digest = fetched
        .manifest_digest
        .clone()
        .unwrap_or_else(|| fetched.content_digest.clone());
    if let Some(want) = &spec.digest {
        if want != &digest && want != &fetched.content_digest {
            return Err(Error::new(
                ErrorKind::Trust,
                format!(
                    "{}: has the digest {digest}, not the {want} asked for",
                    spec.source
                ),
            ));
        }
    }
    Ok(Trusted { fetched, digest })
}

/// Whether `owner` may name `source` at all: a TCP client has no files here.
pub fn check_owner(source: &str, owner: &Owner) -> Result<()> {
    if *owner == Owner::Remote && Source::parse_in(source, &|_| false)?.is_local() {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("{source}: a TCP client may name only URLs and registry references (local files need the Unix socket)"),
        ));
    }
    Ok(())
}

/// Decodes and spawns the package into `log`, hands its stopper to `on_spawn` (which stops it
/// at once when a stop came first), and waits until it is attached or the deadline passes.
pub fn start(
    name: &str,
    spec: &Spec,
    trusted: Trusted,
    settings: &Settings,
    log: &Arc<EventLog>,
    on_spawn: impl FnOnce(Stopper),
) -> Result<Started> {
    let Trusted { fetched, digest } = trusted;
    for n in &fetched.notes {
        log.note(n);
    }
    let kind = package::detect(&fetched.bytes)
        .map(package::Kind::name)
        .unwrap_or("package");
    let pkg = Package::decode(fetched.bytes, &fetched.name)
        .and_then(|p| p.with_btfgen(fetched.btfgen))
        .map_err(|e| e.context(&spec.source))?;
    let mut opts = settings.options.clone();
    opts.pin_dir = settings
        .pin_root
        .as_ref()
        .map(|r| r.join(super::pin_name(name)));
    if let Some(d) = &opts.pin_dir {
        std::fs::create_dir_all(d)
            .map_err(|e| Error::msg(format!("creating the pin directory {}: {e}", d.display())))?;
    }
    let instance = Instance::spawn(pkg, spec.args.clone(), opts, Box::new(LogSink(log.clone())))?;
    on_spawn(instance.stopper());
    match instance.wait_ready(Some(settings.start_timeout)) {
        Readiness::Ready => Ok(Started {
            instance,
            digest,
            kind,
        }),
        Readiness::Failed(e) => {
            retire(instance);
            Err(e)
        }
        Readiness::Ended => {
            let how = match instance.wait_for(STOP_WAIT) {
                Ok(Ok(o)) => format!("{o:?}"),
                Ok(Err(e)) => e.to_string(),
                Err(i) => {
                    retire(i);
                    "it did not end".into()
                }
            };
            Err(Error::new(
                ErrorKind::Invalid,
                format!(
                    "{}: it ended as soon as it started ({how}); nothing to run",
                    spec.source
                ),
            ))
        }
        Readiness::TimedOut => {
            retire(instance);
            Err(Error::new(
                ErrorKind::Kernel,
                format!(
                    "{}: not attached within {} s of its start (a guest that computes before its first blocking call, or a slow verifier); it was stopped (--start-timeout SECS allows more)",
                    spec.source,
                    settings.start_timeout.as_secs_f64()
                ),
            ))
        }
    }
}

/// Stops an instance and waits a while for its end; one that does not end by then is left to
/// end on a thread of its own. Returns its last counters.
pub fn retire(instance: Instance) -> Stats {
    instance.stop();
    let ended = instance.is_finished()
        || crate::event::poll::wait_readable(&[instance.done_fd()], STOP_WAIT).is_some();
    // Read after the end: the final counts (the CPU clock of an ended thread is kept).
    let last = instance.stats();
    if ended {
        let _ = instance.wait();
    } else {
        ::log::warn!(
            "an instance did not end within {STOP_WAIT:?} of its stop; left to end on its own"
        );
        std::thread::spawn(move || {
            let _ = instance.wait();
        });
    }
    last
}

/// Counters of two versions of one instance, added (what survives a reload).
pub fn add(a: Stats, b: Stats) -> Stats {
    Stats {
        events: a.events + b.events,
        lost: a.lost + b.lost,
        paused_drops: a.paused_drops + b.paused_drops,
        cpu_ns: a.cpu_ns + b.cpu_ns,
    }
}
