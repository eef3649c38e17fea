//! `edge-ecli daemon`: many named instances at once, driven over HTTP (a Unix socket, and
//! optionally TCP with a token), reloaded make-before-break, their events streamed to any
//! number of clients, their counters and maps exported as Prometheus metrics (also on a
//! listener of their own), their desired set read from a file that may change at any time.
//! Every instance is a `runtime::Instance`; the daemon has no event loop of its own.

pub mod api;
pub mod client;
pub mod config;
pub mod events;
pub mod launch;
pub mod metrics;
pub mod peer;
pub mod server;
mod slot;
pub mod spec;
pub mod table;
mod trust;

use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::event::poll::wait_readable;
use crate::runtime::Options;
use crate::source::FetchOptions;
use launch::Settings;
use server::{Gate, Handler, Secret, Slots};
use table::{Origin, Table};
pub use trust::TrustFiles;

pub const DEFAULT_SOCKET: &str = "/run/edge-ecli.sock";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/edge-ecli";
/// Where the instances' maps pinned by name live: `<root>/<name>/`. The daemon of the default
/// state dir uses this one; a daemon of another state dir has a root of its own beside it
/// (`edge-ecli-<hash of the state dir>`).
pub const PIN_ROOT: &str = "/sys/fs/bpf/edge-ecli";
/// Connections of the metrics listener at once.
const MAX_SCRAPERS: usize = 16;
/// How often watched files (the desired state, the policy, keys, the token) are looked at.
const WATCH_EVERY: Duration = Duration::from_millis(500);

pub struct DaemonOptions {
    pub socket: PathBuf,
    pub group: Option<String>,
    pub listen: Option<String>,
    pub metrics_listen: Option<String>,
    pub token_file: Option<String>,
    pub config: Option<String>,
    pub state_dir: PathBuf,
    pub fetch: FetchOptions,
    /// The trust policy and the files it comes from (reloaded when they change).
    pub trust: TrustFiles,
    pub options: Options,
    pub start_timeout: Duration,
    /// Keep the kernel counting program runs and run time for the metrics.
    pub bpf_stats: bool,
}

/// The signals the daemon is driven by.
pub trait Signals {
    /// Readable when a signal is pending.
    fn fd(&self) -> RawFd;
    /// The signal that arrived, if any (it is consumed).
    fn take(&self) -> Option<u32>;
}

fn usage(m: String) -> Error {
    Error::new(ErrorKind::Usage, m)
}

/// The pin root of a state dir (see [`PIN_ROOT`]).
pub fn pin_root_for(state_dir: &Path) -> PathBuf {
    let canon = std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    if canon == Path::new(DEFAULT_STATE_DIR) {
        return PathBuf::from(PIN_ROOT);
    }
    // bpffs refuses names with a dot (they are the kernel's own).
    let h = crate::codec::sha256_digest(canon.to_string_lossy().as_bytes());
    PathBuf::from(format!("{PIN_ROOT}-{}", &h[7..19]))
}

/// The pin directory name of an instance: its name, unless it has a dot (bpffs refuses
/// them): then dots become `_` and a hash of the name keeps it unique.
pub fn pin_name(name: &str) -> String {
    if !name.contains('.') {
        return name.to_string();
    }
    let h = crate::codec::sha256_digest(name.as_bytes());
    format!("{}-{}", name.replace('.', "_"), &h[7..15])
}

/// Takes the state dir for this daemon alone (an flock held while it runs): a second daemon
/// with the same state dir would share its pins and its saved instances.
fn lock_state_dir(dir: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::msg(format!(
            "--state-dir {}: cannot create it: {e}",
            dir.display()
        ))
    })?;
    let path = dir.join("daemon.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| Error::msg(format!("{}: {e}", path.display())))?;
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let holder = std::fs::read_to_string(&path).unwrap_or_default();
        return Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "--state-dir {}: another daemon (pid {}) uses it; give this one a --state-dir of its own",
                dir.display(),
                holder.trim()
            ),
        ));
    }
    let _ = f.set_len(0);
    let _ = std::io::Write::write_all(&mut &f, std::process::id().to_string().as_bytes());
    Ok(f)
}

/// Binds the Unix socket: 0660, owned by root:GROUP. A socket file nobody listens on (left
/// by a killed daemon) is replaced; one a live daemon answers on is an error.
fn bind_socket(path: &Path, gid: Option<u32>) -> Result<UnixListener> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("{}: another daemon is listening there", path.display()),
            ));
        }
        let _ = std::fs::remove_file(path);
    }
    if let Some(d) = path.parent() {
        let _ = std::fs::create_dir_all(d);
    }
    let l = UnixListener::bind(path)
        .map_err(|e| Error::msg(format!("{}: cannot listen: {e}", path.display())))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| Error::msg(format!("{}: chmod: {e}", path.display())))?;
    if let Some(g) = gid {
        std::os::unix::fs::chown(path, Some(0), Some(g))
            .map_err(|e| Error::msg(format!("{}: chown: {e}", path.display())))?;
    }
    Ok(l)
}

/// Removes what an earlier daemon of this state dir pinned (it may have been killed): every
/// instance's pins are made again by the instances that start now. Only this daemon's root:
/// another daemon's pins live elsewhere.
fn clean_pins(root: &Path) {
    let Ok(dir) = std::fs::read_dir(root) else {
        return;
    };
    for e in dir.flatten() {
        let p = e.path();
        match std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p)) {
            Ok(()) => say(&format!(
                "removed {} left by an earlier daemon",
                p.display()
            )),
            Err(err) => ::log::warn!("cannot remove {}: {err}", p.display()),
        }
    }
}

/// A line on stderr (and in the log): what an operator watching the daemon should see.
fn say(line: &str) {
    ::log::info!("{line}");
    eprintln!("edge-ecli daemon: {line}");
}

fn tcp_listener(flag: &str, addr: &str) -> Result<std::net::TcpListener> {
    std::net::TcpListener::bind(addr).map_err(|e| usage(format!("{flag} {addr}: {e}")))
}

/// Everything the daemon serves with, once set up.
struct Daemon {
    table: Arc<Table>,
    unix: UnixListener,
    group: Option<u32>,
    tcp: Option<(std::net::TcpListener, Arc<Secret>)>,
    metrics: Option<std::net::TcpListener>,
    handler: Arc<Handler>,
    trust: Arc<trust::Reloader>,
    _lock: std::fs::File,
    _stats: Option<crate::bpf::stats::Enabled>,
}

impl Daemon {
    fn prepare(opts: &DaemonOptions) -> Result<Daemon> {
        if opts.listen.is_some() && opts.token_file.is_none() {
            return Err(usage(
                "--listen needs --token-file FILE: TCP clients must present a token".into(),
            ));
        }
        if let Some(c) = &opts.config {
            // A file the flag names that cannot be used is an error of that input (exit 1).
            crate::files::open_regular(c).map_err(|e| {
                let m = format!(
                    "--config {c}: {e} (the desired-state file must exist; write [] for none)"
                );
                Error::new(Error::from(e).kind(), m)
            })?;
        }
        let trust = Arc::new(trust::Reloader::new(
            &opts.trust,
            opts.token_file.as_deref(),
        )?);
        let stats = opts.bpf_stats.then(crate::bpf::stats::enable).transpose()?;
        let group = opts.group.as_deref().map(peer::group_id).transpose()?;
        let lock = lock_state_dir(&opts.state_dir)?;
        let pins = Path::new("/sys/fs/bpf")
            .is_dir()
            .then(|| pin_root_for(&opts.state_dir));
        if let Some(p) = &pins {
            clean_pins(p);
        }
        let unix = bind_socket(&opts.socket, group)?;
        let tcp = match (&opts.listen, trust.token()) {
            (Some(a), Some(t)) => Some((tcp_listener("--listen", a)?, t)),
            _ => None,
        };
        let metrics = match &opts.metrics_listen {
            Some(a) => Some(tcp_listener("--metrics-listen", a)?),
            None => None,
        };
        let mut fetch = opts.fetch.clone();
        fetch.regular_files_only = true;
        let table = Arc::new(Table::new(
            Settings {
                fetch,
                options: opts.options.clone(),
                pin_root: pins.clone(),
                start_timeout: opts.start_timeout,
            },
            trust.policy(),
        ));
        if let Some(p) = &pins {
            say(&format!(
                "maps pinned by name live under {}/NAME",
                p.display()
            ));
        }
        let state_dir = opts.state_dir.clone();
        let api = {
            let (t, m) = (table.clone(), table.clone());
            api::Api {
                table: table.clone(),
                metrics: Box::new(move || metrics::render(&m)),
                on_change: Box::new(move || {
                    if let Err(e) = config::save_api_instances(&t, &state_dir) {
                        ::log::warn!("{e}");
                    }
                }),
            }
        };
        Ok(Daemon {
            table,
            unix,
            group,
            tcp,
            metrics,
            handler: Arc::new(move |req| api.handle(req)),
            trust,
            _lock: lock,
            _stats: stats,
        })
    }

    /// Starts the instances of the state dir (API) and of the desired-state file.
    fn restore(&self, opts: &DaemonOptions) {
        match config::saved_api_instances(&opts.state_dir) {
            Ok(list) => {
                for (name, spec) in list {
                    if let Err(f) = self.table.apply(&name, spec.clone(), Origin::Api) {
                        say(&format!("restoring {name}: {f}"));
                        let e = match f {
                            table::Failure::Package(e) => e,
                            f => Error::msg(f.to_string()),
                        };
                        self.table.record_failure(&name, spec, Origin::Api, e);
                    }
                }
            }
            Err(e) => say(&format!("{e}; no instance restored from it")),
        }
        if let Some(c) = &opts.config {
            for line in config::reconcile(&self.table, c) {
                say(&line);
            }
        }
    }

    /// Watches the desired-state file on a thread of its own: a package that takes long to
    /// load never holds up the API, and a busy API never holds up the file.
    fn watch_config(&self, path: String, stop: Arc<AtomicBool>) {
        let t = self.table.clone();
        std::thread::spawn(move || {
            let mut w = config::Watch::new(vec![PathBuf::from(&path)]);
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(WATCH_EVERY);
                if w.changed() && !stop.load(Ordering::SeqCst) {
                    for line in config::reconcile(&t, &path) {
                        say(&line);
                    }
                }
            }
        });
    }

    /// Watches the policy, its keys and the token: a change (or SIGHUP) applies to the
    /// requests and starts that follow.
    fn watch_trust(&self, stop: Arc<AtomicBool>) {
        let (r, t) = (self.trust.clone(), self.table.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(WATCH_EVERY);
                if r.changed() {
                    r.reload(&t);
                }
            }
        });
    }

    fn listening(&self, opts: &DaemonOptions) {
        if let (Some((l, _)), Some(f)) = (&self.tcp, &opts.token_file) {
            if let Ok(a) = l.local_addr() {
                say(&format!(
                    "listening on tcp {a} (clients present the token of {f})"
                ));
            }
        }
        if let Some(a) = self.metrics.as_ref().and_then(|l| l.local_addr().ok()) {
            say(&format!(
                "serving /metrics and /healthz on tcp {a} (no token)"
            ));
        }
        say(&format!("listening on {}", opts.socket.display()));
    }

    /// Accepts connections until SIGTERM or SIGINT; SIGHUP reloads the trust files and the
    /// desired state.
    fn serve(&self, signals: &dyn Signals, config: Option<&str>) {
        let unix_slots = Arc::new(Slots::new(server::MAX_CONNECTIONS, "Unix socket"));
        let tcp_slots = Arc::new(Slots::new(server::MAX_CONNECTIONS, "TCP listener"));
        let scrape_slots = Arc::new(Slots::new(MAX_SCRAPERS, "metrics listener"));
        let mut fds = vec![signals.fd(), self.unix.as_raw_fd()];
        fds.extend(self.tcp.as_ref().map(|(l, _)| l.as_raw_fd()));
        fds.extend(self.metrics.as_ref().map(AsRawFd::as_raw_fd));
        loop {
            let Some(i) = wait_readable(&fds, Duration::from_secs(1)) else {
                continue;
            };
            let fd = fds[i];
            if fd == signals.fd() {
                match signals.take() {
                    Some(s) if s == libc::SIGHUP as u32 => self.hangup(config),
                    Some(_) => return,
                    None => {}
                }
            } else if fd == self.unix.as_raw_fd() {
                if let Ok((s, _)) = self.unix.accept() {
                    let gate = Gate::Peer { group: self.group };
                    server::spawn(s, &unix_slots, gate, &self.handler);
                }
            } else if let Some((l, token)) = self.tcp.as_ref().filter(|(l, _)| l.as_raw_fd() == fd)
            {
                if let Ok((s, _)) = l.accept() {
                    server::spawn(s, &tcp_slots, Gate::Token(token.clone()), &self.handler);
                }
            } else if let Some(Ok((s, _))) = self.metrics.as_ref().map(|l| l.accept()) {
                server::spawn(s, &scrape_slots, Gate::Metrics, &self.handler);
            }
        }
    }

    fn hangup(&self, config: Option<&str>) {
        say("SIGHUP: reading the policy, the keys, the token and the desired state again");
        let (r, t, c) = (
            self.trust.clone(),
            self.table.clone(),
            config.map(str::to_string),
        );
        std::thread::spawn(move || {
            r.reload(&t);
            if let Some(c) = c {
                for line in config::reconcile(&t, &c) {
                    say(&line);
                }
            }
        });
    }
}

/// Runs the daemon until SIGTERM or SIGINT; every instance is then stopped, its pins and the
/// socket removed.
pub fn run(opts: DaemonOptions, signals: &dyn Signals) -> Result<()> {
    let d = Daemon::prepare(&opts)?;
    d.restore(&opts);
    let stop = Arc::new(AtomicBool::new(false));
    if let Some(c) = &opts.config {
        d.watch_config(c.clone(), stop.clone());
    }
    d.watch_trust(stop.clone());
    d.listening(&opts);
    d.serve(signals, opts.config.as_deref());
    say("stopping every instance");
    stop.store(true, Ordering::SeqCst);
    d.table.stop_all(launch::STOP_WAIT);
    let _ = std::fs::remove_file(&opts.socket);
    Ok(())
}
