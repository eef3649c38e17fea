//! The daemon's named instances: what each should run (its spec), what runs (an Instance and
//! the digest of its package), its event log, and the operations on them.
//!
//! The table's lock guards only the map, never I/O or a wait: an operation that starts a
//! version registers itself on its name, lets go of the lock while it fetches, verifies, loads
//! and waits for the attach (each bounded: the fetch deadline, the start deadline), and takes
//! the lock again only to install what it started. Operations on other names, reads, and
//! stops never wait for it. One operation at a time per name (a second is told to retry); a
//! stop always wins: it cancels the operation in progress, stops what that started, and the
//! daemon's own stop does the same for every name.
//!
//! Reload is make-before-break: the new version runs, into the same event log, before the old
//! one is stopped (draining what it read); a failed new version leaves the old one running.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use super::events::EventLog;
use super::launch::{self, Launch, Settings, Started};
use super::slot::{Entry, Op, OpGuard, Slot};
use super::spec::Spec;
use crate::error::Error;
use crate::runtime::{State, Stats};
use crate::trust::Policy;

/// Who asked for an instance: the API (kept in the state dir) or the desired-state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Api,
    Config,
}

/// Why an operation did not happen; the API's status codes follow from the variant.
#[derive(Debug, Clone)]
pub enum Failure {
    /// No instance has this name.
    NoInstance(String),
    /// The name is taken, an operation on it is in progress, or the daemon is stopping.
    Conflict(String),
    /// The request itself is wrong (a bad name, a source that cannot be named this way).
    BadRequest(String),
    /// The package could not be fetched, verified, loaded or attached.
    Package(Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NoInstance(n) => write!(f, "no instance named {n}"),
            Failure::Conflict(m) | Failure::BadRequest(m) => f.write_str(m),
            Failure::Package(e) => write!(f, "{e}"),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        if e.kind() == crate::error::ErrorKind::Usage {
            Failure::BadRequest(e.to_string())
        } else {
            Failure::Package(e)
        }
    }
}

type Res<T> = std::result::Result<T, Failure>;

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

/// What `apply` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Created,
    Reloaded,
    Unchanged,
}

pub struct Table {
    slots: Mutex<BTreeMap<String, Slot>>,
    settings: Settings,
    launcher: Box<dyn Launch>,
    policy: Mutex<Arc<Policy>>,
    closing: AtomicBool,
    next_op: AtomicU64,
    /// Operations that have spawned a version not yet installed or released.
    pub(super) starting: Mutex<usize>,
    pub(super) started_cv: Condvar,
}

/// Instance names: what a path component, a metric label and a URL segment can all carry.
pub fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 63
        && n.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && n.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_.-".contains(&c))
}

fn check_name(n: &str) -> Res<()> {
    if valid_name(n) {
        Ok(())
    } else {
        Err(Failure::BadRequest(format!(
            "instance name {n:?}: use 1 to 63 of a-z 0-9 _ . - (starting with a letter or digit)"
        )))
    }
}

impl Table {
    pub fn new(settings: Settings, policy: Policy) -> Table {
        Table::with_launcher(settings, policy, Box::new(launch::Packages))
    }

    /// A table whose versions are fetched and started by `launcher`.
    pub(crate) fn with_launcher(
        settings: Settings,
        policy: Policy,
        launcher: Box<dyn Launch>,
    ) -> Table {
        Table {
            slots: Mutex::new(BTreeMap::new()),
            settings,
            launcher,
            policy: Mutex::new(Arc::new(policy)),
            closing: AtomicBool::new(false),
            next_op: AtomicU64::new(1),
            starting: Mutex::new(0),
            started_cv: Condvar::new(),
        }
    }

    pub(super) fn slots(&self) -> MutexGuard<'_, BTreeMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn pin_dir(&self, name: &str) -> Option<PathBuf> {
        self.settings
            .pin_root
            .as_ref()
            .map(|r| r.join(super::pin_name(name)))
    }

    /// The trust policy every package is checked against from now on.
    pub fn set_policy(&self, p: Policy) {
        *self.policy.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(p);
    }

    fn policy(&self) -> Arc<Policy> {
        self.policy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Registers an operation on `name`; `create` refuses a name in use.
    fn begin(&self, name: &str, spec: &Spec, origin: Origin, create: bool) -> Res<OpGuard<'_>> {
        check_name(name)?;
        launch::check_owner(&spec.source, &spec.owner)?;
        let mut slots = self.slots();
        if self.closing.load(Ordering::SeqCst) {
            return Err(Failure::Conflict("the daemon is stopping".into()));
        }
        let entry = match slots.remove(name) {
            None => None,
            Some(Slot::Idle(e)) if !create => Some(e),
            Some(taken) => {
                let why = match taken.op() {
                    Some(op) => format!(
                        "instance {name} is being started or reloaded (since {} s); retry when it is done, or stop it",
                        op.since.elapsed().map_or(0, |d| d.as_secs())
                    ),
                    None => format!("instance {name} exists; reload it or stop it first"),
                };
                slots.insert(name.to_string(), taken);
                return Err(Failure::Conflict(why));
            }
        };
        let log = entry.as_ref().map_or_else(EventLog::new, |e| e.log.clone());
        let running = entry.as_ref().and_then(|e| {
            e.instance
                .as_ref()
                .filter(|i| !i.is_finished())
                .map(|_| (e.digest.clone(), e.spec.clone()))
        });
        let id = self.next_op.fetch_add(1, Ordering::SeqCst);
        let op = Op {
            id,
            spec: spec.clone(),
            origin,
            since: SystemTime::now(),
            log: log.clone(),
            cancelled: false,
            stopper: None,
        };
        slots.insert(name.to_string(), Slot::Busy(op, entry));
        Ok(OpGuard {
            table: self,
            name: name.to_string(),
            id,
            log,
            running,
            spawned: false,
        })
    }

    /// Creates, or reloads when the package's digest or the arguments changed; the same
    /// digest and arguments are a no-op. A failed reload leaves the running version running.
    pub fn apply(&self, name: &str, spec: Spec, origin: Origin) -> Res<Applied> {
        let op = self.begin(name, &spec, origin, false)?;
        let reloading = op.running.is_some();
        let log = op.log.clone();
        let keeps = move |f: Failure| -> Failure {
            let Failure::Package(e) = f else { return f };
            let e = if reloading {
                e.context(format!(
                    "reloading {name} (the running version keeps running)"
                ))
            } else {
                e
            };
            log.note(&e.to_string());
            Failure::Package(e)
        };
        let trusted = self
            .launcher
            .fetch(&spec, &self.settings.fetch, &self.policy())
            .map_err(|e| keeps(e.into()))?;
        op.check()?;
        if let Some((digest, running)) = &op.running {
            if *digest == trusted.digest
                && running.args == spec.args
                && running.source == spec.source
            {
                let mut slots = self.slots();
                if let Some(e) = slots.get_mut(name).and_then(Slot::entry_mut) {
                    // The pin (checked against the package just now) and the owner are kept.
                    e.spec = spec;
                    e.origin = origin;
                }
                return Ok(Applied::Unchanged);
            }
        }
        self.run_new(op, name, spec, origin, trusted).map_err(keeps)
    }

    /// Starts a new instance; `Conflict` when the name is taken.
    pub fn create(&self, name: &str, spec: Spec, origin: Origin) -> Res<Status> {
        let op = self.begin(name, &spec, origin, true)?;
        let trusted = self
            .launcher
            .fetch(&spec, &self.settings.fetch, &self.policy())?;
        op.check()?;
        self.run_new(op, name, spec, origin, trusted)?;
        self.status(name)
    }

    fn run_new(
        &self,
        mut op: OpGuard<'_>,
        name: &str,
        spec: Spec,
        origin: Origin,
        trusted: launch::Trusted,
    ) -> Res<Applied> {
        let log = op.log.clone();
        let started = self.launcher.start(
            name,
            &spec,
            trusted,
            &self.settings,
            &log,
            Box::new(|s| op.on_spawn(s)),
        );
        let new = match started {
            Ok(n) => n,
            // What a stop cut short failed because of the stop.
            Err(e) => return Err(op.check().err().unwrap_or_else(|| e.into())),
        };
        let Started {
            instance,
            digest,
            kind,
        } = new;
        let installed = {
            let mut slots = self.slots();
            match slots.get_mut(name) {
                Some(Slot::Busy(o, current)) if o.id == op.id && !o.cancelled => {
                    let now = SystemTime::now();
                    let old = current.take();
                    let carried = old.as_ref().map_or_else(Stats::default, |e| e.carried);
                    *current = Some(Entry {
                        spec,
                        origin,
                        digest,
                        kind,
                        instance: Some(instance),
                        log,
                        started: now,
                        failure: None,
                        carried,
                    });
                    Ok(old)
                }
                _ => Err(instance),
            }
        };
        match installed {
            Ok(old) => {
                drop(op);
                let Some(mut old) = old else {
                    return Ok(Applied::Created);
                };
                // Make-before-break: the new version runs; the old one drains and stops.
                if let Some(i) = old.instance.take() {
                    let last = launch::retire(i);
                    let mut slots = self.slots();
                    if let Some(e) = slots.get_mut(name).and_then(Slot::entry_mut) {
                        e.carried = launch::add(old.carried, last);
                    }
                }
                Ok(Applied::Reloaded)
            }
            Err(instance) => {
                launch::retire(instance);
                Err(Failure::Conflict(format!(
                    "instance {name} was stopped while it was starting"
                )))
            }
        }
    }

    /// Records a start that failed (restoring at start-up, or a config entry), so that status
    /// shows it as failed with its error.
    pub fn record_failure(&self, name: &str, spec: Spec, origin: Origin, why: Error) {
        let log = EventLog::new();
        log.note(&why.to_string());
        let mut slots = self.slots();
        if !slots.contains_key(name) {
            let entry = Entry {
                spec,
                origin,
                digest: String::new(),
                kind: "package",
                instance: None,
                log,
                started: SystemTime::now(),
                failure: Some(why),
                carried: Stats::default(),
            };
            slots.insert(name.to_string(), Slot::Idle(entry));
        }
    }

    /// Stops and forgets an instance (and cancels an operation on it); its pinned maps are
    /// removed. Never waits for an operation: the stop wins.
    pub fn remove(&self, name: &str) -> Res<Status> {
        let (status, entry, stopper, busy) = {
            let mut slots = self.slots();
            let slot = slots
                .remove(name)
                .ok_or_else(|| Failure::NoInstance(name.to_string()))?;
            let status = Self::snapshot(name, &slot);
            match slot {
                Slot::Idle(e) => (status, Some(e), None, false),
                Slot::Busy(mut op, e) => {
                    op.cancelled = true;
                    let stopper = op.stopper.clone();
                    slots.insert(name.to_string(), Slot::Busy(op, None));
                    (status, e, stopper, true)
                }
            }
        };
        if let Some(s) = stopper {
            s.stop();
        }
        if let Some(mut e) = entry {
            if let Some(i) = e.instance.take() {
                launch::retire(i);
            }
            e.log.close();
        }
        // With an operation still ending, it removes the pins once it has.
        if !busy {
            if let Some(d) = self.pin_dir(name) {
                let _ = std::fs::remove_dir_all(d);
            }
        }
        Ok(status)
    }

    pub fn pause(&self, name: &str, paused: bool) -> Res<Status> {
        let slots = self.slots();
        let slot = slots
            .get(name)
            .ok_or_else(|| Failure::NoInstance(name.to_string()))?;
        match slot.entry().and_then(|e| e.instance.as_ref()) {
            Some(i) if !i.is_finished() => {
                if paused {
                    i.pause()
                } else {
                    i.resume()
                }
            }
            _ => return Err(Failure::Conflict(format!("instance {name} is not running"))),
        }
        Ok(Self::snapshot(name, slot))
    }

    fn snapshot(name: &str, slot: &Slot) -> Status {
        let e = match slot {
            Slot::Idle(e) | Slot::Busy(_, Some(e)) => e,
            // Only an operation: a version being started.
            Slot::Busy(op, None) => {
                return Status {
                    name: name.to_string(),
                    state: State::Starting,
                    spec: op.spec.clone(),
                    origin: op.origin,
                    digest: String::new(),
                    kind: "package",
                    started: op.since,
                    stats: Stats::default(),
                    client_drops: 0,
                    notes: op.log.notes(),
                }
            }
        };
        let (state, stats) = match (&e.instance, &e.failure) {
            (Some(i), _) => (i.state(), launch::add(e.carried, i.stats())),
            (None, Some(f)) => (State::Failed(f.clone()), e.carried),
            (None, None) => (State::Stopped, e.carried),
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
            client_drops: e.log.client_drops.load(Ordering::Relaxed),
            notes: e.log.notes(),
        }
    }

    pub fn status(&self, name: &str) -> Res<Status> {
        let slots = self.slots();
        let slot = slots
            .get(name)
            .ok_or_else(|| Failure::NoInstance(name.to_string()))?;
        Ok(Self::snapshot(name, slot))
    }

    pub fn list(&self) -> Vec<Status> {
        self.slots()
            .iter()
            .map(|(n, s)| Self::snapshot(n, s))
            .collect()
    }

    pub fn log(&self, name: &str) -> Res<Arc<EventLog>> {
        let slots = self.slots();
        let slot = slots
            .get(name)
            .ok_or_else(|| Failure::NoInstance(name.to_string()))?;
        Ok(match slot {
            Slot::Idle(e) | Slot::Busy(_, Some(e)) => e.log.clone(),
            Slot::Busy(op, None) => op.log.clone(),
        })
    }

    /// The map views each running instance published (for metrics).
    pub fn map_views(&self) -> Vec<(String, Vec<Arc<crate::event::sample::MapView>>)> {
        self.slots()
            .iter()
            .filter_map(|(n, s)| {
                let i = s.entry()?.instance.as_ref()?;
                Some((n.clone(), i.map_views()))
            })
            .collect()
    }

    /// The kernel ids of each running instance's programs (for metrics).
    pub fn program_ids(&self) -> Vec<(String, Vec<(String, u32)>)> {
        self.slots()
            .iter()
            .filter_map(|(n, s)| {
                let i = s.entry()?.instance.as_ref()?;
                Some((n.clone(), i.program_ids()))
            })
            .collect()
    }

    /// The names and specs of the instances `origin` asked for.
    pub fn specs(&self, origin: Origin) -> Vec<(String, Spec)> {
        self.slots()
            .iter()
            .filter_map(|(n, s)| {
                let e = s.entry()?;
                (e.origin == origin).then(|| (n.clone(), e.spec.clone()))
            })
            .collect()
    }

    /// Stops every instance and every operation (SIGTERM), leaving nothing in the kernel.
    /// Operations still fetching are not waited for: they start nothing from now on.
    pub fn stop_all(&self, wait: Duration) {
        self.closing.store(true, Ordering::SeqCst);
        let all: Vec<(String, Slot)> = std::mem::take(&mut *self.slots()).into_iter().collect();
        for (_, s) in &all {
            if let Some(st) = s.op().and_then(|o| o.stopper.as_ref()) {
                st.stop();
            }
            if let Some(i) = s.entry().and_then(|e| e.instance.as_ref()) {
                i.stop();
            }
        }
        for (name, s) in all {
            let entry = match s {
                Slot::Idle(e) | Slot::Busy(_, Some(e)) => Some(e),
                Slot::Busy(_, None) => None,
            };
            if let Some(mut e) = entry {
                if let Some(i) = e.instance.take() {
                    launch::retire(i);
                }
                e.log.close();
            }
            if let Some(d) = self.pin_dir(&name) {
                let _ = std::fs::remove_dir_all(d);
            }
        }
        // Versions that operations had spawned end (they were stopped) and are released.
        let mut n = self.starting.lock().unwrap_or_else(|e| e.into_inner());
        let until = std::time::Instant::now() + wait;
        while *n > 0 && std::time::Instant::now() < until {
            n = self
                .started_cv
                .wait_timeout(n, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests;
