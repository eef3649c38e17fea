//! The daemon's named instances: what each should run (its spec), what runs (an Instance and
//! the digest of its package), its log, and the operations on them. Reload is
//! make-before-break: the new version is fetched, verified, loaded and attached while the old
//! one runs, into the same log; only then is the old one stopped (draining what it read).
//! Mutations are serialised; reads never wait for a package to load.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::log::{EventLog, LogSink};
use crate::error::{Error, ErrorKind, Result};
use crate::package::{self, Package};
use crate::runtime::{Instance, Options, State, Stats};
use crate::source::{self, FetchOptions};
use crate::trust::Policy;

/// What an instance should run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub source: String,
    pub args: Vec<String>,
    /// The digest the package must have, when the caller pins one.
    pub digest: Option<String>,
}

/// Who asked for an instance: the API (kept in the state dir) or the desired-state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Api,
    Config,
}

pub struct Entry {
    pub spec: Spec,
    pub origin: Origin,
    /// The digest of what runs (its OCI manifest's, else its bytes').
    pub digest: String,
    pub kind: &'static str,
    pub instance: Option<Instance>,
    pub log: Arc<EventLog>,
    pub started: SystemTime,
    /// Why the last start failed, when nothing runs.
    pub failure: Option<String>,
}

/// A snapshot of one instance, for the API and metrics.
#[derive(Debug, Clone)]
pub struct Status {
    pub name: String,
    pub state: State,
    pub spec: Spec,
    pub origin: Origin,
    pub digest: String,
    pub kind: &'static str,
    pub started: SystemTime,
    pub stats: Stats,
    pub client_drops: u64,
    pub notes: Vec<String>,
}

/// What the daemon runs packages with.
pub struct Context {
    pub fetch: FetchOptions,
    pub policy: Policy,
    pub options: Options,
    /// bpffs directory under which each instance's pinned maps live (`<root>/<name>/`).
    pub pin_root: Option<PathBuf>,
}

/// What `apply` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Created,
    Reloaded,
    Unchanged,
}

pub struct Table {
    entries: Mutex<BTreeMap<String, Entry>>,
    ops: Mutex<()>,
    ctx: Context,
}

/// Instance names: what a path component, a metric label and a URL segment can all carry.
pub fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 63
        && n.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && n.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_.-".contains(&c))
}

fn check_name(n: &str) -> Result<()> {
    if valid_name(n) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Usage,
            format!("instance name {n:?}: use 1 to 63 of a-z 0-9 _ . - (starting with a letter or digit)"),
        ))
    }
}

/// A started instance and what it runs.
struct Started {
    instance: Instance,
    digest: String,
    kind: &'static str,
}

impl Table {
    pub fn new(ctx: Context) -> Table {
        Table {
            entries: Mutex::new(BTreeMap::new()),
            ops: Mutex::new(()),
            ctx,
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn pin_dir(&self, name: &str) -> Option<PathBuf> {
        self.ctx.pin_root.as_ref().map(|r| r.join(name))
    }

    /// Fetches, verifies and starts `spec` into `log`.
    fn start(&self, name: &str, spec: &Spec, log: &Arc<EventLog>) -> Result<Started> {
        let f = source::fetch(&spec.source, &self.ctx.fetch)?;
        for n in &f.notes {
            log.note(n);
        }
        self.ctx.policy.check(&spec.source, &f.evidence())?;
        let digest = f
            .manifest_digest
            .clone()
            .unwrap_or_else(|| f.content_digest.clone());
        if let Some(want) = &spec.digest {
            if want != &digest && want != &f.content_digest {
                return Err(Error::new(
                    ErrorKind::Trust,
                    format!(
                        "{}: has the digest {digest}, not the {want} asked for",
                        spec.source
                    ),
                ));
            }
        }
        let kind = package::detect(&f.bytes)
            .map(package::Kind::name)
            .unwrap_or("package");
        let pkg = Package::decode(f.bytes, &f.name).map_err(|e| e.context(&spec.source))?;
        let mut opts = self.ctx.options.clone();
        opts.pin_dir = self.pin_dir(name);
        if let Some(d) = &opts.pin_dir {
            std::fs::create_dir_all(d).map_err(|e| {
                Error::msg(format!("creating the pin directory {}: {e}", d.display()))
            })?;
        }
        let instance =
            Instance::start(pkg, spec.args.clone(), opts, Box::new(LogSink(log.clone())))?;
        if instance.is_finished() {
            // Started and ended: `-h`, or a guest that exits at once. Nothing to keep running.
            let how = match instance.wait() {
                Ok(o) => format!("{o:?}"),
                Err(e) => e.to_string(),
            };
            return Err(Error::new(
                ErrorKind::Invalid,
                format!(
                    "{}: it ended as soon as it started ({how}); nothing to run",
                    spec.source
                ),
            ));
        }
        Ok(Started {
            instance,
            digest,
            kind,
        })
    }

    /// Starts a new instance; `Conflict` when the name is taken.
    pub fn create(&self, name: &str, spec: Spec, origin: Origin) -> Result<Status> {
        check_name(name)?;
        let _op = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        if self.entries().contains_key(name) {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("instance {name} exists; reload it or stop it first"),
            ));
        }
        self.put_new(name, spec, origin)?;
        self.status(name)
    }

    fn put_new(&self, name: &str, spec: Spec, origin: Origin) -> Result<()> {
        let log = EventLog::new();
        let s = self.start(name, &spec, &log)?;
        self.entries().insert(
            name.to_string(),
            Entry {
                spec,
                origin,
                digest: s.digest,
                kind: s.kind,
                instance: Some(s.instance),
                log,
                started: SystemTime::now(),
                failure: None,
            },
        );
        Ok(())
    }

    /// Creates, or reloads when the package's digest or the arguments changed; the same
    /// digest and arguments are a no-op. A failed reload leaves the running version running.
    pub fn apply(&self, name: &str, spec: Spec, origin: Origin) -> Result<Applied> {
        check_name(name)?;
        let _op = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        // (The table's lock is released before anything loads.)
        let existing = self.entries().get(name).map(|e| e.log.clone());
        let Some(log) = existing else {
            self.put_new(name, spec, origin)?;
            return Ok(Applied::Created);
        };
        let keeps = |e: Error| {
            let e = e.context(format!(
                "reloading {name} (the running version keeps running)"
            ));
            log.note(&e.to_string());
            e
        };
        // Fetch first: an unchanged digest needs nothing loaded.
        let f = source::fetch(&spec.source, &self.ctx.fetch).map_err(keeps)?;
        let digest = f
            .manifest_digest
            .clone()
            .unwrap_or_else(|| f.content_digest.clone());
        {
            let entries = self.entries();
            let e = entries
                .get(name)
                .expect("present: mutations are serialised");
            let running = e.instance.as_ref().is_some_and(|i| !i.is_finished());
            if running
                && e.digest == digest
                && e.spec.args == spec.args
                && e.spec.source == spec.source
            {
                return Ok(Applied::Unchanged);
            }
        }
        let new = self.start(name, &spec, &log).map_err(keeps)?;
        let old = {
            let mut entries = self.entries();
            let e = entries
                .get_mut(name)
                .expect("present: mutations are serialised");
            e.spec = spec;
            e.origin = origin;
            e.digest = new.digest;
            e.kind = new.kind;
            e.started = SystemTime::now();
            e.failure = None;
            e.instance.replace(new.instance)
        };
        if let Some(old) = old {
            old.stop();
            let _ = old.wait();
        }
        Ok(Applied::Reloaded)
    }

    /// Records a start that failed (restoring at start-up, or a config entry), so that status
    /// shows it as failed with its error.
    pub fn record_failure(&self, name: &str, spec: Spec, origin: Origin, why: String) {
        let log = EventLog::new();
        log.note(&why);
        self.entries().insert(
            name.to_string(),
            Entry {
                spec,
                origin,
                digest: String::new(),
                kind: "package",
                instance: None,
                log,
                started: SystemTime::now(),
                failure: Some(why),
            },
        );
    }

    /// Stops and forgets an instance; its pinned maps are removed.
    pub fn remove(&self, name: &str) -> Result<Status> {
        let _op = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        let status = self.status(name)?;
        let e = self.entries().remove(name);
        if let Some(mut e) = e {
            if let Some(i) = e.instance.take() {
                i.stop();
                let _ = i.wait();
            }
            e.log.close();
        }
        if let Some(d) = self.pin_dir(name) {
            let _ = std::fs::remove_dir_all(d);
        }
        Ok(status)
    }

    pub fn pause(&self, name: &str, paused: bool) -> Result<Status> {
        {
            let entries = self.entries();
            let e = entries.get(name).ok_or_else(|| {
                Error::new(ErrorKind::NotFound, format!("no instance named {name}"))
            })?;
            match &e.instance {
                Some(i) if !i.is_finished() => {
                    if paused {
                        i.pause()
                    } else {
                        i.resume()
                    }
                }
                _ => {
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        format!("instance {name} is not running"),
                    ))
                }
            }
        }
        self.status(name)
    }

    fn snapshot(name: &str, e: &Entry) -> Status {
        let (state, stats) = match (&e.instance, &e.failure) {
            (Some(i), _) => (i.state(), i.stats()),
            (None, Some(f)) => (State::Failed(f.clone()), Stats::default()),
            (None, None) => (State::Stopped, Stats::default()),
        };
        Status {
            name: name.to_string(),
            state,
            spec: e.spec.clone(),
            origin: e.origin,
            digest: e.digest.clone(),
            kind: e.kind,
            started: e.started,
            stats,
            client_drops: e
                .log
                .client_drops
                .load(std::sync::atomic::Ordering::Relaxed),
            notes: e.log.notes(),
        }
    }

    pub fn status(&self, name: &str) -> Result<Status> {
        let entries = self.entries();
        let e = entries
            .get(name)
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no instance named {name}")))?;
        Ok(Self::snapshot(name, e))
    }

    pub fn list(&self) -> Vec<Status> {
        self.entries()
            .iter()
            .map(|(n, e)| Self::snapshot(n, e))
            .collect()
    }

    pub fn log(&self, name: &str) -> Result<Arc<EventLog>> {
        self.entries()
            .get(name)
            .map(|e| e.log.clone())
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no instance named {name}")))
    }

    /// The map views each running instance published (for metrics).
    pub fn map_views(&self) -> Vec<(String, Vec<Arc<crate::event::sample::MapView>>)> {
        self.entries()
            .iter()
            .filter_map(|(n, e)| e.instance.as_ref().map(|i| (n.clone(), i.map_views())))
            .collect()
    }

    /// The names and specs of the instances `origin` asked for.
    pub fn specs(&self, origin: Origin) -> Vec<(String, Spec)> {
        self.entries()
            .iter()
            .filter(|(_, e)| e.origin == origin)
            .map(|(n, e)| (n.clone(), e.spec.clone()))
            .collect()
    }

    /// Stops every instance (SIGTERM), leaving nothing in the kernel.
    pub fn stop_all(&self) {
        let _op = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        let all: Vec<(String, Entry)> = std::mem::take(&mut *self.entries()).into_iter().collect();
        for (_, e) in &all {
            if let Some(i) = &e.instance {
                i.stop();
            }
        }
        for (name, mut e) in all {
            if let Some(i) = e.instance.take() {
                let _ = i.wait();
            }
            e.log.close();
            if let Some(d) = self.pin_dir(&name) {
                let _ = std::fs::remove_dir_all(d);
            }
        }
    }
}
