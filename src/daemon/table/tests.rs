//! The table's reload, cancel and conflict logic, with versions that are threads, not
//! packages: a fake [`Launch`] whose behaviour follows the source's name.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::launch::Trusted;
use super::*;
use crate::error::{ErrorKind, Result};
use crate::runtime::{Instance, Options, Outcome, Stopper};
use crate::source::{FetchOptions, Fetched};

/// Opened (true) to let `slow` starts go on.
type Gate = Arc<(Mutex<bool>, Condvar)>;

#[derive(Default)]
struct Fake {
    /// Versions whose thread is running.
    live: Arc<AtomicUsize>,
    /// Starts of a `slow` source wait until this is true.
    gate: Gate,
}

impl Launch for Fake {
    fn fetch(&self, spec: &Spec, _: &FetchOptions, _: &Policy) -> Result<Trusted> {
        if spec.source.contains("unreachable") {
            return Err(Error::new(ErrorKind::Unreachable, "connection refused"));
        }
        Ok(Trusted {
            fetched: Fetched::plain(spec.source.as_bytes().to_vec(), &spec.source, None),
            digest: format!("sha256:{}", spec.source.trim_start_matches('/')),
        })
    }

    fn start(
        &self,
        _name: &str,
        spec: &Spec,
        trusted: Trusted,
        _: &Settings,
        log: &Arc<EventLog>,
        on_spawn: Box<dyn FnOnce(Stopper) + '_>,
    ) -> Result<Started> {
        if spec.source.contains("broken") {
            return Err(Error::new(ErrorKind::Kernel, "the verifier said no"));
        }
        let live = self.live.clone();
        live.fetch_add(1, Ordering::SeqCst);
        let instance = Instance::spawn_with(None, move |c| {
            c.set_ready();
            while c.sleep(Duration::from_secs(3600)) {}
            live.fetch_sub(1, Ordering::SeqCst);
            Ok(Outcome::Done)
        })?;
        on_spawn(instance.stopper());
        instance.wait_ready(None);
        log.note(&format!("started {}", spec.source));
        if spec.source.contains("slow") {
            let (open, cv) = &*self.gate;
            let mut g = open.lock().unwrap();
            while !*g {
                g = cv.wait(g).unwrap();
            }
        }
        Ok(Started {
            instance,
            digest: trusted.digest,
            kind: "fake",
        })
    }
}

fn table() -> (Arc<Table>, Arc<AtomicUsize>, Gate) {
    let fake = Fake::default();
    let (live, gate) = (fake.live.clone(), fake.gate.clone());
    let settings = Settings {
        fetch: FetchOptions::default(),
        options: Options::default(),
        pin_root: None,
        start_timeout: Duration::from_secs(10),
    };
    let t = Table::with_launcher(settings, Policy::default(), Box::new(fake));
    (Arc::new(t), live, gate)
}

fn spec(source: &str, args: &[&str]) -> Spec {
    Spec {
        source: source.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        digest: None,
        owner: crate::daemon::spec::Owner::Daemon,
    }
}

fn package_error(r: Res<Applied>) -> String {
    match r {
        Err(Failure::Package(e)) => e.to_string(),
        other => panic!("not a package failure: {other:?}"),
    }
}

#[test]
fn apply_creates_then_reloads_on_a_change_and_keeps_the_same() {
    let (t, live, _) = table();
    let apply = |s, a: &[&str]| t.apply("web", spec(s, a), Origin::Api).unwrap();
    assert_eq!(apply("/a", &[]), Applied::Created);
    assert_eq!(apply("/a", &[]), Applied::Unchanged);
    assert_eq!(live.load(Ordering::SeqCst), 1);
    assert_eq!(apply("/a", &["-v"]), Applied::Reloaded);
    assert_eq!(apply("/b", &["-v"]), Applied::Reloaded);
    // Make-before-break: each old version was stopped once the new one ran.
    assert_eq!(live.load(Ordering::SeqCst), 1);
    let s = t.status("web").unwrap();
    assert_eq!((s.digest.as_str(), s.state.name()), ("sha256:b", "running"));
    assert_eq!(s.spec.args, ["-v"]);
    t.remove("web").unwrap();
    assert_eq!(live.load(Ordering::SeqCst), 0);
    assert!(matches!(t.status("web"), Err(Failure::NoInstance(_))));
}

#[test]
fn a_failed_reload_leaves_the_running_version_running() {
    let (t, live, _) = table();
    t.apply("web", spec("/a", &[]), Origin::Api).unwrap();
    for bad in ["/broken", "/unreachable"] {
        let e = package_error(t.apply("web", spec(bad, &[]), Origin::Api));
        assert!(
            e.starts_with("reloading web (the running version keeps running): "),
            "{e}"
        );
        let s = t.status("web").unwrap();
        assert_eq!((s.digest.as_str(), s.state.name()), ("sha256:a", "running"));
        assert!(s.notes.contains(&e), "{:?}", s.notes);
    }
    assert_eq!(live.load(Ordering::SeqCst), 1);
    // A first start that fails is the plain error.
    let e = package_error(t.apply("api", spec("/broken", &[]), Origin::Api));
    assert_eq!(e, "the verifier said no");
}

#[test]
fn create_refuses_a_name_in_use() {
    let (t, _, _) = table();
    t.create("web", spec("/a", &[]), Origin::Api).unwrap();
    match t.create("web", spec("/b", &[]), Origin::Api) {
        Err(Failure::Conflict(m)) => assert!(m.contains("instance web exists"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(t.status("web").unwrap().digest, "sha256:a");
}

#[test]
fn a_stop_during_a_start_wins_and_a_second_operation_is_told_to_retry() {
    let (t, live, gate) = table();
    let t2 = t.clone();
    let starting = std::thread::spawn(move || t2.apply("web", spec("/slow", &[]), Origin::Api));
    // The start is under way once its version spawned.
    while live.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(t.status("web").unwrap().state.name(), "starting");
    match t.apply("web", spec("/b", &[]), Origin::Api) {
        Err(Failure::Conflict(m)) => assert!(m.contains("being started or reloaded"), "{m}"),
        other => panic!("{other:?}"),
    }
    // The stop does not wait for the start.
    t.remove("web").unwrap();
    let (open, cv) = &*gate;
    *open.lock().unwrap() = true;
    cv.notify_all();
    match starting.join().unwrap() {
        Err(Failure::Conflict(m)) => assert!(m.contains("stopped while it was starting"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "what the start made was stopped"
    );
    assert!(matches!(t.status("web"), Err(Failure::NoInstance(_))));
    // The name is free again.
    assert_eq!(
        t.apply("web", spec("/a", &[]), Origin::Api).unwrap(),
        Applied::Created
    );
}
