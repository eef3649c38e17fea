//! `edge-ecli daemon`: many named instances at once, driven over HTTP (a Unix socket, and
//! optionally TCP with a token), reloaded make-before-break, their events streamed to any
//! number of clients, their counters and maps exported as Prometheus metrics, their desired
//! set read from a file that may change at any time. Every instance is a `runtime::Instance`;
//! the daemon has no event loop of its own.

pub mod api;
pub mod config;
pub mod log;
pub mod metrics;
pub mod server;
pub mod table;

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::event::poll::wait_readable;
use crate::runtime::Options;
use crate::source::FetchOptions;
use crate::trust::Policy;
use server::{Gate, Slots};
use table::{Context, Origin, Table};

pub const DEFAULT_SOCKET: &str = "/run/edge-ecli.sock";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/edge-ecli";
/// Where instances' maps pinned by name live, one directory per instance.
pub const PIN_ROOT: &str = "/sys/fs/bpf/edge-ecli";

pub struct DaemonOptions {
    pub socket: PathBuf,
    pub group: Option<String>,
    pub listen: Option<String>,
    pub token_file: Option<String>,
    pub config: Option<String>,
    pub state_dir: PathBuf,
    pub fetch: FetchOptions,
    pub policy: Policy,
    pub options: Options,
}

fn usage(m: String) -> Error {
    Error::new(ErrorKind::Usage, m)
}

fn group_id(name: &str) -> Result<libc::gid_t> {
    let c =
        std::ffi::CString::new(name).map_err(|_| usage(format!("--group {name:?}: bad name")))?;
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut res: *mut libc::group = std::ptr::null_mut();
    // SAFETY: getgrnam_r with a buffer of its length; res says whether gr was filled.
    let r = unsafe { libc::getgrnam_r(c.as_ptr(), &mut gr, buf.as_mut_ptr(), buf.len(), &mut res) };
    if r != 0 || res.is_null() {
        return Err(usage(format!(
            "--group {name}: no such group (create it with groupadd)"
        )));
    }
    Ok(gr.gr_gid)
}

fn read_token(path: &str) -> Result<Vec<u8>> {
    let t = crate::files::read_limited(path, 64 << 10)
        .map_err(|e| usage(format!("--token-file {path}: cannot read: {e}")))?;
    let t = String::from_utf8(t).map_err(|_| usage(format!("--token-file {path}: not text")))?;
    let t = t.trim();
    if t.len() < 16 || t.len() > 4096 || t.bytes().any(|c| !c.is_ascii_graphic()) {
        return Err(usage(format!(
            "--token-file {path}: the token must be 16 to 4096 printable characters (e.g. head -c 32 /dev/urandom | base64)"
        )));
    }
    Ok(t.as_bytes().to_vec())
}

/// Binds the Unix socket: 0660, owned by root:GROUP. A socket file nobody listens on (left
/// by a killed daemon) is replaced; one a live daemon answers on is an error.
fn bind_socket(path: &Path, gid: Option<libc::gid_t>) -> Result<UnixListener> {
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

/// Removes what a previous daemon pinned (it may have been killed): every instance's pins are
/// made again by the instances that start now.
fn clean_pins(root: &Path) {
    let Ok(dir) = std::fs::read_dir(root) else {
        return;
    };
    for e in dir.flatten() {
        let p = e.path();
        match std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p)) {
            Ok(()) => ::log::warn!("removed {} left by an earlier daemon", p.display()),
            Err(err) => ::log::warn!("cannot remove {}: {err}", p.display()),
        }
    }
}

/// Starts the instances of the state dir (API) and of the desired-state file.
fn restore(table: &Table, opts: &DaemonOptions) {
    let saved = opts.state_dir.join("instances.json");
    if let Ok(b) = std::fs::read(&saved) {
        match config::parse(&b, &saved.to_string_lossy()) {
            Ok(list) => {
                for (name, spec) in list {
                    if let Err(e) = table.apply(&name, spec.clone(), Origin::Api) {
                        ::log::warn!("restoring {name}: {e}");
                        table.record_failure(&name, spec, Origin::Api, e.to_string());
                    }
                }
            }
            Err(e) => ::log::warn!("{e}; no instance restored from it"),
        }
    }
    if let Some(c) = &opts.config {
        for line in config::reconcile(table, c) {
            ::log::info!("{line}");
        }
    }
}

/// Runs the daemon until `stop_fd` is readable (the CLI's signalfd); every instance is then
/// stopped and the socket removed.
pub fn run(opts: DaemonOptions, stop_fd: i32) -> Result<()> {
    let token = match (&opts.listen, &opts.token_file) {
        (Some(_), None) => {
            return Err(usage(
                "--listen needs --token-file FILE: TCP clients must present a token".into(),
            ))
        }
        (_, Some(f)) => Some(Arc::new(read_token(f)?)),
        (None, None) => None,
    };
    let gid = opts.group.as_deref().map(group_id).transpose()?;
    std::fs::create_dir_all(&opts.state_dir).map_err(|e| {
        Error::msg(format!(
            "--state-dir {}: cannot create it: {e}",
            opts.state_dir.display()
        ))
    })?;
    let pin_root = Path::new(PIN_ROOT);
    let pins = Path::new("/sys/fs/bpf")
        .is_dir()
        .then(|| pin_root.to_path_buf());
    if let Some(p) = &pins {
        clean_pins(p);
    }
    let unix = bind_socket(&opts.socket, gid)?;
    let tcp = match &opts.listen {
        Some(a) => {
            Some(std::net::TcpListener::bind(a).map_err(|e| usage(format!("--listen {a}: {e}")))?)
        }
        None => None,
    };
    let table = Arc::new(Table::new(Context {
        fetch: opts.fetch.clone(),
        policy: opts.policy.clone(),
        options: opts.options.clone(),
        pin_root: pins,
    }));
    restore(&table, &opts);
    ::log::info!("listening on {}", opts.socket.display());
    eprintln!("edge-ecli daemon: listening on {}", opts.socket.display());
    let slots = Arc::new(Slots::new());
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The desired-state file is watched on its own thread: a package that takes long to load
    // never holds up the API, and a busy API never holds up the file.
    let watcher = opts.config.clone().map(|path| {
        let (t, stop) = (table.clone(), stopping.clone());
        std::thread::spawn(move || {
            let mut w = config::Watch::new(&path);
            w.changed();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(500));
                if w.changed() {
                    for line in config::reconcile(&t, w.path()) {
                        ::log::info!("{line}");
                        eprintln!("edge-ecli daemon: {line}");
                    }
                }
            }
        })
    });
    let state_dir = opts.state_dir.clone();
    let handler = {
        let t = table.clone();
        Arc::new(move |req: server::Request| {
            let metrics = || metrics::render(&t);
            let saved = || {
                if let Err(e) = config::save_api_instances(&t, &state_dir) {
                    ::log::warn!("{e}");
                }
            };
            api::handle(&t, &metrics, &saved, req)
        })
    };
    let mut fds = vec![stop_fd, unix.as_raw_fd()];
    if let Some(t) = &tcp {
        fds.push(t.as_raw_fd());
    }
    loop {
        match wait_readable(&fds, Duration::from_secs(1)) {
            Some(0) => break,
            Some(1) => {
                if let Ok((s, _)) = unix.accept() {
                    server::set_timeouts(&s);
                    let (h, sl) = (handler.clone(), slots.clone());
                    let gate = Gate::Peer { gid };
                    std::thread::spawn(move || match sl.take() {
                        Some(_slot) => server::serve_connection(s, &gate, &*h),
                        None => server::refuse_busy(s),
                    });
                }
            }
            Some(_) => {
                if let Some(Ok((s, _))) = tcp.as_ref().map(|t| t.accept()) {
                    let _ = s.set_read_timeout(Some(server::READ_TIMEOUT));
                    let _ = s.set_write_timeout(Some(server::WRITE_TIMEOUT));
                    let (h, sl) = (handler.clone(), slots.clone());
                    let gate = Gate::Token(token.clone().expect("TCP needs a token"));
                    std::thread::spawn(move || match sl.take() {
                        Some(_slot) => server::serve_connection(s, &gate, &*h),
                        None => server::refuse_busy(s),
                    });
                }
            }
            None => {}
        }
    }
    eprintln!("edge-ecli daemon: stopping every instance");
    stopping.store(true, std::sync::atomic::Ordering::SeqCst);
    if let Some(w) = watcher {
        let _ = w.join();
    }
    table.stop_all();
    let _ = std::fs::remove_file(&opts.socket);
    Ok(())
}
