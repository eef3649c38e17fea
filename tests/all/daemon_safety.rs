//! The daemon against hostile packages, sources, local users and API clients: a start that
//! never attaches, a source that never ends, clients that dribble, a socket-group member
//! naming files it cannot read, a second daemon beside the first; and what an operator
//! relies on: relative sources, pinned digests, strict request bodies, files reloaded while
//! it runs.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::daemon::{eventually, jfield, raw, ready, s, scratch, Daemon};

/// A guest that computes for ever before its first blocking call: never attached.
const SPINNER: &str =
    r#"(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))"#;

/// A guest that waits in poll_oneoff for ever: attached (ready) at once.
const SLEEPER: &str = r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $p (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store (i32.const 80) (i32.const 1)) (i64.store (i32.const 88) (i64.const 3600000000000))
    (loop $l (drop (call $p (i32.const 64) (i32.const 200) (i32.const 1) (i32.const 36))) (br $l))))"#;

fn wasm(dir: &Path, name: &str, wat_text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, wat::parse_str(wat_text).unwrap()).unwrap();
    s(&p)
}

fn body(source: &str) -> String {
    format!("{{\"source\":\"{source}\"}}")
}

fn ok_ready(test: &str) -> bool {
    kernel_available(test)
}

/// A web server on 127.0.0.1 that sends its answer one byte every 300 ms, for ever.
fn dripping_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut c = c;
                let mut buf = [0u8; 1024];
                let _ = c.read(&mut buf);
                for b in b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
                    .iter()
                    .cycle()
                {
                    if c.write_all(&[*b]).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(300));
                }
            });
        }
    });
    port
}

#[cfg_attr(edge_skip_root, ignore = "needs root and kernel BTF")]
#[test]
fn a_start_that_never_attaches_wedges_nothing_and_a_stop_wins() {
    let _g = serial();
    if !ok_ready("a_start_that_never_attaches_wedges_nothing_and_a_stop_wins") {
        return;
    }
    let dir = scratch("wedge");
    let mut d = Daemon::start(&dir, &["--start-timeout", "4"]);
    let spin = wasm(&dir, "spin.wasm", SPINNER);
    let sleeper = wasm(&dir, "sleep.wasm", SLEEPER);
    let put = |name: &str, src: &str| {
        let sock = d.socket.clone();
        let (name, b) = (name.to_string(), body(src));
        std::thread::spawn(move || raw(&sock, "PUT", &format!("/v1/instances/{name}"), Some(&b)))
    };
    // A guest that spins before its first blocking call is being started...
    let pending = put("spin", &spin);
    // ...and a source that dribbles for ever is being fetched.
    let drip = format!("http://127.0.0.1:{}/pkg.json", dripping_server());
    let fetching = put("drip", &drip);
    std::thread::sleep(Duration::from_millis(700));
    let t0 = Instant::now();
    let (st, b) = d.req("GET", "/v1/instances/spin", None);
    assert_eq!(
        (st, jfield(&b, "state").as_deref()),
        (200, Some("starting")),
        "{b}"
    );
    let (st, b) = d.req("PUT", "/v1/instances/other", Some(&body(&sleeper)));
    assert_eq!(st, 201, "another name starts meanwhile: {b}");
    let (st, b) = d.req("PUT", "/v1/instances/spin", Some(&body(&sleeper)));
    assert_eq!(st, 409, "one operation at a time per name: {b}");
    assert!(b.contains("being started"), "{b}");
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "nothing waited for the start in progress: {:?}",
        t0.elapsed()
    );
    // A FIFO nobody writes is refused at once, not opened and waited on.
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(s(&fifo)).unwrap();
    // SAFETY: a NUL-terminated path that lives through the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0);
    let (st, b) = d.req("PUT", "/v1/instances/fifo", Some(&body(&s(&fifo))));
    assert_eq!(st, 400, "{b}");
    assert!(b.contains("a FIFO, not a regular file"), "{b}");
    // A stop wins over the start in progress, at once.
    let t1 = Instant::now();
    let (st, b) = d.req("DELETE", "/v1/instances/spin", None);
    assert_eq!(st, 200, "{b}");
    let (st, b) = pending.join().unwrap();
    assert_eq!(st, 409, "{b}");
    assert!(b.contains("stopped while it was starting"), "{b}");
    assert!(t1.elapsed() < Duration::from_secs(5), "{:?}", t1.elapsed());
    let (st, b) = d.req("DELETE", "/v1/instances/drip", None);
    assert_eq!(st, 200, "{b}");
    // Left alone, the start has a deadline.
    let t2 = Instant::now();
    let (st, b) = d.req("PUT", "/v1/instances/spin", Some(&body(&spin)));
    assert_eq!(st, 422, "{b}");
    assert!(b.contains("not attached within 4 s"), "{b}");
    assert!(t2.elapsed() < Duration::from_secs(15), "{:?}", t2.elapsed());
    assert_eq!(d.req("GET", "/v1/instances/spin", None).0, 404);
    // SIGTERM during a start that would never end: the daemon still stops, promptly.
    let _pending = put("spin2", &spin);
    std::thread::sleep(Duration::from_millis(500));
    let t3 = Instant::now();
    let st = d.signal(libc::SIGTERM);
    assert!(st.success(), "{st}: {}", d.log());
    assert!(t3.elapsed() < Duration::from_secs(15), "{:?}", t3.elapsed());
    drop(fetching);
}

/// A TCP client that sends one byte of its request every second until the daemon closes it:
/// what the daemon answered, and when.
fn dribble(addr: String) -> (String, Duration) {
    let t0 = Instant::now();
    let mut c = TcpStream::connect(&addr).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut got = Vec::new();
    for b in b"GET /v1/instances HTTP/1.1\r\nHost: x\r\nX-Slow: "
        .iter()
        .chain([b'a'; 64].iter())
    {
        if c.write_all(&[*b]).is_err() {
            break;
        }
        let mut buf = [0u8; 512];
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                break;
            }
            Err(_) => {}
        }
        if t0.elapsed() > Duration::from_secs(40) {
            break;
        }
        std::thread::sleep(Duration::from_millis(950));
    }
    (String::from_utf8_lossy(&got).into_owned(), t0.elapsed())
}

#[cfg_attr(edge_skip_root, ignore = "needs root and kernel BTF")]
#[test]
fn dribbling_clients_never_lock_out_the_socket_and_wrong_tokens_end_at_their_header() {
    if !ok_ready("dribbling_clients_never_lock_out_the_socket_and_wrong_tokens_end_at_their_header")
    {
        return;
    }
    let dir = scratch("slowloris");
    let token = dir.join("token");
    let tok = "0123456789abcdef0123456789abcdef";
    std::fs::write(&token, format!("{tok}\n")).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let d = Daemon::start(&dir, &["--listen", &addr, "--token-file", &s(&token)]);
    assert!(
        d.log().contains(&format!("listening on tcp {addr}")),
        "TCP listening is logged: {}",
        d.log()
    );
    let slow: Vec<_> = (0..64)
        .map(|_| {
            let a = addr.clone();
            std::thread::spawn(move || dribble(a))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    // Root on the socket is served whatever TCP clients do.
    let (st, b) = d.req("GET", "/healthz", None);
    assert_eq!(st, 200, "{b}");
    // The 65th TCP client is told to retry.
    let mut c = TcpStream::connect(&addr).unwrap();
    let _ = write!(
        c,
        "GET /healthz HTTP/1.1\r\nAuthorization: Bearer {tok}\r\n\r\n"
    );
    let mut o = String::new();
    let _ = c.read_to_string(&mut o);
    assert!(o.starts_with("HTTP/1.1 503"), "{o}");
    assert!(o.contains("TCP listener"), "{o}");
    // Every dribbler is cut off at the request's deadline, however often it sends a byte.
    for h in slow {
        let (got, took) = h.join().unwrap();
        assert!(got.starts_with("HTTP/1.1 408"), "{got}");
        assert!(took < Duration::from_secs(14), "held for {took:?}");
    }
    // A wrong token is refused as soon as its header arrives, not when the head ends.
    let mut c = TcpStream::connect(&addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    write!(
        c,
        "GET /v1/instances HTTP/1.1\r\nAuthorization: Bearer wrong-wrong-wrong-wrong\r\n"
    )
    .unwrap();
    let mut buf = [0u8; 256];
    let n = c.read(&mut buf).unwrap_or(0);
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 401"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    // The scheme is case-insensitive.
    let mut c = TcpStream::connect(&addr).unwrap();
    write!(
        c,
        "GET /v1/instances HTTP/1.1\r\nauthorization: bearer {tok}\r\n\r\n"
    )
    .unwrap();
    let mut o = String::new();
    let _ = c.read_to_string(&mut o);
    assert!(o.starts_with("HTTP/1.1 200"), "{o}");
}

/// `edge-ecli ctl ARGS` as uid/gid 65534 (nobody:nogroup), a member of the daemon's group.
fn ctl_as_nobody(d: &Daemon, args: &[&str]) -> (i32, String) {
    let o = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(bin())
        .args(["ctl", "--socket", &d.socket])
        .args(args)
        .current_dir("/")
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

#[cfg_attr(edge_skip_root, ignore = "needs root and kernel BTF")]
#[test]
fn a_socket_group_member_names_only_regular_files_it_can_read_itself() {
    let _g = serial();
    if !ok_ready("a_socket_group_member_names_only_regular_files_it_can_read_itself") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("deputy");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = Daemon::start(&dir, &["--group", "nogroup"]);
    // Files only root can read: refused as the peer's own open would be, with no digest.
    let (code, out) = ctl_as_nobody(&d, &["start", "x", "/etc/shadow"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("Permission denied"), "{out}");
    assert!(
        !out.contains("sha256:"),
        "no digest of what it cannot read: {out}"
    );
    let private = dir.join("private");
    std::fs::create_dir_all(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::copy(example("package.json"), private.join("pkg.json")).unwrap();
    let (code, there) = ctl_as_nobody(&d, &["start", "x", &s(&private.join("pkg.json"))]);
    assert_eq!(code, 1, "{there}");
    let (_, absent) = ctl_as_nobody(&d, &["start", "x", &s(&private.join("none.json"))]);
    assert_eq!(
        there.replace("pkg.json", "F"),
        absent.replace("none.json", "F"),
        "a file it cannot see and a file that does not exist look the same"
    );
    // Devices and FIFOs are never opened as packages.
    let (code, out) = ctl_as_nobody(&d, &["start", "x", "/dev/zero"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("a device, not a regular file"), "{out}");
    // What it can read runs, and is read as it again after a restart.
    let shared = dir.join("pkg.json");
    std::fs::copy(example("package.json"), &shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, out) = ctl_as_nobody(&d, &["start", "mine", &s(&shared)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("running"), "{out}");
    let saved = std::fs::read_to_string(dir.join("state/instances.json")).unwrap();
    assert!(
        saved.contains("\"owner\":{\"uid\":65534,\"gid\":65534"),
        "{saved}"
    );
    drop(d);
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o600)).unwrap();
    let d = Daemon::start(&dir, &["--group", "nogroup"]);
    let (_, b) = d.req("GET", "/v1/instances/mine", None);
    assert_eq!(jfield(&b, "state").as_deref(), Some("failed"), "{b}");
    assert!(
        b.contains("Permission denied"),
        "restored as its owner: {b}"
    );
}

#[cfg_attr(edge_skip_root, ignore = "needs root and kernel BTF")]
#[test]
fn relative_sources_are_the_clients_and_survive_a_restart() {
    let _g = serial();
    if !ok_ready("relative_sources_are_the_clients_and_survive_a_restart") {
        return;
    }
    let dir = scratch("relative");
    let elsewhere = dir.join("cwd");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let start = || Daemon::try_start_in(&dir, &[], &elsewhere, "edge.sock", "state").unwrap();
    let d = start();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = Command::new(bin())
        .args(["ctl", "--socket", &d.socket, "start", "sig"])
        .arg("examples/sigsnoop/package.json")
        .current_dir(root)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (_, b) = d.req("GET", "/v1/instances/sig", None);
    let want = s(&root.join("examples/sigsnoop/package.json"));
    assert_eq!(jfield(&b, "source").as_deref(), Some(want.as_str()), "{b}");
    // A client that sends no directory cannot name a relative path.
    let (st, b) = d.req(
        "PUT",
        "/v1/instances/rel",
        Some("{\"source\":\"examples/sigsnoop/package.json\"}"),
    );
    assert_eq!(st, 400, "{b}");
    assert!(b.contains("relative path"), "{b}");
    drop(d);
    let d = start();
    let (_, b) = d.req("GET", "/v1/instances/sig", None);
    assert_eq!(jfield(&b, "state").as_deref(), Some("running"), "{b}");
}

#[cfg_attr(edge_skip_root, ignore = "needs root and kernel BTF")]
#[test]
fn a_second_daemon_never_touches_the_first_ones_pins_or_state() {
    let _g = serial();
    if !ready("a_second_daemon_never_touches_the_first_ones_pins_or_state") {
        return;
    }
    let dir = scratch("two");
    let a = Daemon::try_start_in(&dir, &[], &dir, "a.sock", "state-a").unwrap();
    assert!(a
        .ctl(&[
            "start",
            "maps",
            &fixtures().obj("metricmaps"),
            "--target_tgid",
            "1"
        ])
        .status
        .success());
    let pinned = a.pin_root().join("maps/counter_pinned");
    assert!(pinned.exists());
    let b = Daemon::try_start_in(&dir, &[], &dir, "b.sock", "state-b").unwrap();
    assert_ne!(a.pin_root(), b.pin_root());
    assert!(
        pinned.exists(),
        "the first daemon's pin is still there: {}",
        b.log()
    );
    assert!(
        !b.log().contains("left by an earlier daemon"),
        "{}",
        b.log()
    );
    let e = Daemon::try_start_in(&dir, &[], &dir, "c.sock", "state-a")
        .err()
        .unwrap();
    assert!(e.contains("another daemon"), "{e}");
    let (_, st) = a.req("GET", "/v1/instances/maps", None);
    assert_eq!(jfield(&st, "state").as_deref(), Some("running"), "{st}");
    drop(b);
    drop(a);
    assert!(!pinned.exists());
}

fn sha256_of(path: &str) -> String {
    let o = Command::new("sha256sum").arg(path).output().unwrap();
    format!(
        "sha256:{}",
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .next()
            .unwrap()
    )
}

#[cfg_attr(edge_skip_root, ignore = "needs root and kernel BTF")]
#[test]
fn pins_bodies_failed_starts_and_a_missing_config_are_checked() {
    let _g = serial();
    if !ready("pins_bodies_failed_starts_and_a_missing_config_are_checked") {
        return;
    }
    let dir = scratch("strict");
    // A --config that names nothing is an error at once, not a daemon with nothing to do.
    let mut c = Command::new(bin())
        .args(["daemon", "--socket", &s(&dir.join("x.sock"))])
        .args(["--state-dir", &s(&dir.join("st"))])
        .args(["--config", &s(&dir.join("missing.json"))])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while c.try_wait().unwrap().is_none() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = c.kill();
    let o = c.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("the desired-state file must exist"), "{err}");
    let d = Daemon::start(&dir, &[]);
    let pkg = example("package.json");
    let spec = |digest: &str| format!("{{\"source\":\"{pkg}\",\"digest\":\"{digest}\"}}");
    let (st, b) = d.req("PUT", "/v1/instances/sig", Some(&spec(&sha256_of(&pkg))));
    assert_eq!(st, 201, "{b}");
    // The same source and arguments pinned to another digest: checked, not "unchanged".
    let other = format!("sha256:{}", "0".repeat(64));
    let (st, b) = d.req("PUT", "/v1/instances/sig", Some(&spec(&other)));
    assert_eq!(st, 422, "{b}");
    assert!(b.contains("not the sha256:0000"), "{b}");
    let (_, b) = d.req("GET", "/v1/instances/sig", None);
    assert_eq!(jfield(&b, "state").as_deref(), Some("running"), "{b}");
    // A misspelt field is an error, not ignored.
    let (st, b) = d.req(
        "PUT",
        "/v1/instances/sig",
        Some(&format!(
            "{{\"source\":\"{pkg}\",\"arg\":[\"--filtered_pid\",\"1\"]}}"
        )),
    );
    assert_eq!(st, 400, "{b}");
    assert!(b.contains("unknown field \\\"arg\\\""), "{b}");
    // A start that fails leaves no pin directory behind.
    let trap = wasm(
        &dir,
        "trap.wasm",
        r#"(module (memory (export "memory") 1) (func (export "_start") unreachable))"#,
    );
    let (st, b) = d.req("PUT", "/v1/instances/bad", Some(&body(&trap)));
    assert_eq!(st, 422, "{b}");
    assert!(b.contains("trapped"), "{b}");
    assert!(!d.pin_root().join("bad").exists());
}

/// Rewrites `path` in place (same inode and size) and puts its old mtime back: only SIGHUP
/// can tell the daemon.
fn rewrite_unseen(path: &Path, text: &str) {
    let old = std::fs::metadata(path).unwrap().modified().unwrap();
    assert_eq!(std::fs::metadata(path).unwrap().len() as usize, text.len());
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    (&f).write_all(text.as_bytes()).unwrap();
    f.set_modified(old).unwrap();
}

#[cfg_attr(edge_skip_root, ignore = "needs root and kernel BTF")]
#[test]
fn the_policy_keys_and_token_are_read_again_when_they_change_or_on_sighup() {
    let _g = serial();
    if !ready("the_policy_keys_and_token_are_read_again_when_they_change_or_on_sighup") {
        return;
    }
    let dir = scratch("reread");
    let pkg = example("package.json");
    let good = sha256_of(&pkg);
    let bad = format!("sha256:{}", "1".repeat(64));
    let policy = dir.join("policy.json");
    let allow = |d: &str| format!("{{\"allow_digests\": [\"{d}\"]}}");
    std::fs::write(&policy, allow(&bad)).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef\n").unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let d = Daemon::start(
        &dir,
        &[
            "--policy",
            &s(&policy),
            "--listen",
            &addr,
            "--token-file",
            &s(&token),
        ],
    );
    let (st, b) = d.req("PUT", "/v1/instances/sig", Some(&body(&pkg)));
    assert_eq!(st, 422, "{b}");
    assert!(b.contains("not in the allow-list"), "{b}");
    // The policy file changes (as a ConfigMap update replaces it): no restart needed.
    let tmp = dir.join("policy.new");
    std::fs::write(&tmp, allow(&good)).unwrap();
    std::fs::rename(&tmp, &policy).unwrap();
    eventually("the new policy applies", || {
        d.req("PUT", "/v1/instances/sig", Some(&body(&pkg))).0 == 201
    });
    // The token changes: the old one is refused from then on.
    let tcp = |t: &str| {
        let mut c = TcpStream::connect(&addr).unwrap();
        write!(
            c,
            "GET /healthz HTTP/1.1\r\nAuthorization: Bearer {t}\r\n\r\n"
        )
        .unwrap();
        let mut o = String::new();
        let _ = c.read_to_string(&mut o);
        o
    };
    assert!(tcp("0123456789abcdef0123456789abcdef").starts_with("HTTP/1.1 200"));
    std::fs::write(&token, "fedcba9876543210fedcba9876543210\n").unwrap();
    eventually("the new token is the one", || {
        tcp("fedcba9876543210fedcba9876543210").starts_with("HTTP/1.1 200")
    });
    assert!(tcp("0123456789abcdef0123456789abcdef").starts_with("HTTP/1.1 401"));
    // A change no file stamp shows: SIGHUP.
    std::thread::sleep(Duration::from_secs(1));
    rewrite_unseen(&policy, &allow(&bad));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(d.req("DELETE", "/v1/instances/sig", None).0, 200);
    assert_eq!(
        d.req("PUT", "/v1/instances/sig", Some(&body(&pkg))).0,
        201,
        "not seen without SIGHUP"
    );
    assert_eq!(d.req("DELETE", "/v1/instances/sig", None).0, 200);
    // SAFETY: kill(2) with a pid we spawned; no memory is involved.
    unsafe { libc::kill(d.pid(), libc::SIGHUP) };
    eventually("SIGHUP reads the policy again", || {
        d.log().contains("SIGHUP") && d.req("PUT", "/v1/instances/sig", Some(&body(&pkg))).0 == 422
    });
}
