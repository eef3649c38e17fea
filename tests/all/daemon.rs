//! The daemon, as real processes: `edge-ecli daemon` with its socket in a scratch directory,
//! driven with `edge-ecli ctl` and with raw HTTP over the socket, running real packages whose
//! kernel events are checked.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// A running daemon, stopped (SIGTERM, then SIGKILL) when dropped.
pub(crate) struct Daemon {
    child: Option<Child>,
    pub socket: String,
    pub dir: PathBuf,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

pub(crate) fn scratch(test: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("daemon")
        .join(test);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub(crate) fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

impl Daemon {
    pub(crate) fn start(dir: &Path, extra: &[&str]) -> Daemon {
        Daemon::try_start(dir, extra).unwrap_or_else(|e| panic!("daemon did not start: {e}"))
    }

    pub(crate) fn try_start(dir: &Path, extra: &[&str]) -> Result<Daemon, String> {
        Daemon::try_start_in(dir, extra, dir, "edge.sock", "state")
    }

    /// A daemon with its working directory `cwd`, its socket and state dir named under `dir`.
    pub(crate) fn try_start_in(
        dir: &Path,
        extra: &[&str],
        cwd: &Path,
        sock: &str,
        state: &str,
    ) -> Result<Daemon, String> {
        let socket = s(&dir.join(sock));
        let state = s(&dir.join(state));
        let mut child = Command::new(bin())
            .args(["daemon", "--socket", &socket, "--state-dir", &state])
            .args(extra)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (err, _) = collect_stderr(&mut child);
        let t0 = Instant::now();
        loop {
            if err.lock().unwrap().contains("listening on") {
                break;
            }
            if let Some(st) = child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(50));
                return Err(format!("exited {st}: {}", err.lock().unwrap()));
            }
            if t0.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                return Err(format!("not listening after 60 s: {}", err.lock().unwrap()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Daemon {
            child: Some(child),
            socket,
            dir: dir.to_path_buf(),
            stderr: err,
        })
    }

    /// One raw HTTP request over the socket: (status, body).
    pub(crate) fn req(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        raw(&self.socket, method, path, body)
    }

    pub(crate) fn ctl(&self, args: &[&str]) -> Finished {
        let mut v = vec!["ctl", "--socket", self.socket.as_str()];
        v.extend_from_slice(args);
        run(&v)
    }

    /// The daemon's pid.
    pub(crate) fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Where this daemon pins maps by name (it says so when it starts).
    pub(crate) fn pin_root(&self) -> PathBuf {
        let log = self.log();
        let line = log
            .lines()
            .find_map(|l| l.split("maps pinned by name live under ").nth(1))
            .unwrap_or_else(|| panic!("no pin root in the log:\n{log}"));
        PathBuf::from(line.trim().trim_end_matches("/NAME"))
    }

    pub(crate) fn signal(&mut self, sig: i32) -> std::process::ExitStatus {
        let mut c = self.child.take().unwrap();
        // SAFETY: kill(2) with a pid we spawned; no memory is involved.
        unsafe { libc::kill(c.id() as i32, sig) };
        let t0 = Instant::now();
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "the daemon did not exit after signal {sig}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) with a pid we spawned; no memory is involved.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let t0 = Instant::now();
            while c.try_wait().unwrap().is_none() && t0.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub(crate) fn raw(socket: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut st = UnixStream::connect(socket).unwrap_or_else(|e| panic!("{socket}: {e}"));
    st.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let b = body.unwrap_or("");
    // A refusal (503 when busy) may be written and the socket closed before the request is:
    // the write then fails with EPIPE, and the answer is still there to read.
    let _ = write!(
        st,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{b}",
        b.len()
    );
    let mut out = String::new();
    let _ = st.read_to_string(&mut out);
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (status, body)
}

/// `"key":value` of a JSON answer (numbers and strings).
pub(crate) fn jfield(text: &str, key: &str) -> Option<String> {
    field(text, key).map(str::to_string)
}

/// Waits until `f` holds (15 s at most).
pub(crate) fn eventually(what: &str, f: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(15), "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The events of an instance so far (GET events without follow).
pub(crate) fn events(d: &Daemon, name: &str) -> String {
    let (st, body) = d.req("GET", &format!("/v1/instances/{name}/events"), None);
    assert_eq!(st, 200, "{body}");
    dechunk(&body)
}

pub(crate) fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

pub(crate) fn ready(test: &str) -> bool {
    kernel_ready(test)
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn daemon_runs_streams_reports_and_stops_instances() {
    let _g = serial();
    if !ready("daemon_runs_streams_reports_and_stops_instances") {
        return;
    }
    let dir = scratch("runs");
    let d = Daemon::start(&dir, &[]);
    let me = std::process::id().to_string();
    // A package and a Wasm app, with ctl.
    let f = d.ctl(&[
        "start",
        "sig",
        &example("package.json"),
        "--filtered_pid",
        &me,
    ]);
    assert!(f.status.success(), "{}", f.stderr);
    assert!(f.stdout.contains("running"), "{}", f.stdout);
    let f = d.ctl(&["start", "app", &example("sigsnoop.wasm"), "-p", &me]);
    assert!(f.status.success(), "{}", f.stderr);
    // A follower sees events as they come.
    let mut follow = Command::new(bin())
        .args(["ctl", "--socket", &d.socket, "logs", "-f", "sig"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    std::thread::sleep(Duration::from_millis(300));
    let cpid = signal_sleeper(&[libc::SIGUSR1]);
    let t0 = Instant::now();
    let line = loop {
        let l = lines.next().unwrap().unwrap();
        if field(&l, "tpid") == Some(cpid.as_str()) {
            break l;
        }
        assert!(t0.elapsed() < Duration::from_secs(10));
    };
    assert_eq!(field(&line, "sig"), Some("10"));
    let _ = follow.kill();
    let _ = follow.wait();
    eventually("the Wasm app prints the signal", || {
        events(&d, "app").contains(&format!("\"tpid\":{cpid}"))
    });
    // Status and list: state, source, digest, start time, counters.
    let (st, body) = d.req("GET", "/v1/instances/sig", None);
    assert_eq!(st, 200, "{body}");
    assert_eq!(jfield(&body, "state").as_deref(), Some("running"));
    assert!(
        jfield(&body, "digest").unwrap().starts_with("sha256:"),
        "{body}"
    );
    assert!(
        jfield(&body, "events").unwrap().parse::<u64>().unwrap() >= 1,
        "{body}"
    );
    assert!(
        jfield(&body, "started_at").unwrap().parse::<u64>().unwrap() > 1_700_000_000,
        "{body}"
    );
    let l = d.ctl(&["list"]);
    assert!(
        l.stdout.contains("sig") && l.stdout.contains("app") && l.stdout.contains("running"),
        "{}",
        l.stdout
    );
    let (st, _) = d.req("GET", "/healthz", None);
    assert_eq!(st, 200);
    // Stop both: nothing left.
    assert!(d.ctl(&["stop", "sig"]).status.success());
    assert!(d.ctl(&["stop", "app"]).status.success());
    let (st, _) = d.req("GET", "/v1/instances/sig", None);
    assert_eq!(st, 404);
    assert_no_leaks(&["sig_trace", "sig_events"]);
}

fn seqs(text: &str) -> std::collections::BTreeSet<u32> {
    text.lines()
        .filter_map(|l| field(l, "seq")?.parse().ok())
        .collect()
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn reload_is_make_before_break_and_loses_no_event() {
    let _g = serial();
    if !ready("reload_is_make_before_break_and_loses_no_event") {
        return;
    }
    let dir = scratch("reload");
    let d = Daemon::start(&dir, &[]);
    let fx = fixtures();
    let n = 6000;
    let (mut gen, pid) = generator(n, 3000);
    let body =
        |src: &str| format!("{{\"source\":\"{src}\",\"args\":[\"--target_tgid\",\"{pid}\"]}}");
    let (st, b) = d.req("PUT", "/v1/instances/seq", Some(&body(&fx.obj("seqwrite"))));
    assert_eq!(st, 201, "{b}");
    assert_eq!(jfield(&b, "applied").as_deref(), Some("created"));
    // The same package again: nothing to do.
    let (st, b) = d.req("PUT", "/v1/instances/seq", Some(&body(&fx.obj("seqwrite"))));
    assert_eq!(
        (st, jfield(&b, "applied").as_deref()),
        (200, Some("unchanged")),
        "{b}"
    );
    gen.stdin.take().unwrap().write_all(b"go\n").unwrap();
    std::thread::sleep(Duration::from_millis(600));
    // Reload while events flow: the packed version has another digest.
    let (st, b) = d.req(
        "PUT",
        "/v1/instances/seq",
        Some(&body(&fx.packed("seqwrite"))),
    );
    assert_eq!(
        (st, jfield(&b, "applied").as_deref()),
        (200, Some("reloaded")),
        "{b}"
    );
    // A reload that fails keeps the running version.
    let (st, b) = d.req(
        "PUT",
        "/v1/instances/seq",
        Some(&body("/nonexistent/pkg.json")),
    );
    assert_eq!(st, 422, "{b}");
    assert!(b.contains("keeps running"), "{b}");
    assert!(gen.wait().unwrap().success());
    eventually("every numbered event arrives", || {
        seqs(&events(&d, "seq")).len() as u32 >= n
    });
    let got = seqs(&events(&d, "seq"));
    let missing: Vec<u32> = (1..=n).filter(|i| !got.contains(i)).take(10).collect();
    assert!(missing.is_empty(), "lost across the reload: {missing:?}...");
    let (_, b) = d.req("GET", "/v1/instances/seq", None);
    assert_eq!(jfield(&b, "state").as_deref(), Some("running"), "{b}");
    assert!(
        jfield(&b, "source").unwrap().ends_with("seqwrite.json"),
        "the reloaded version runs: {b}"
    );
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn pause_holds_events_and_guests_and_counts_what_it_drops() {
    let _g = serial();
    if !ready("pause_holds_events_and_guests_and_counts_what_it_drops") {
        return;
    }
    let dir = scratch("pause");
    let d = Daemon::start(&dir, &[]);
    let me = std::process::id().to_string();
    assert!(d
        .ctl(&[
            "start",
            "sig",
            &example("package.json"),
            "--filtered_pid",
            &me
        ])
        .status
        .success());
    // A guest that prints a line every 50 ms.
    let ticker = wat::parse_str(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "poll_oneoff" (func $p (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 0) "tick\n")
          (func (export "_start")
            (i32.store (i32.const 16) (i32.const 0)) (i32.store (i32.const 20) (i32.const 5))
            ;; a relative clock subscription of 50 ms at 64
            (i64.store (i32.const 64) (i64.const 0)) (i32.store8 (i32.const 72) (i32.const 0))
            (i32.store (i32.const 80) (i32.const 1)) (i64.store (i32.const 88) (i64.const 50000000))
            (loop $l
              (drop (call $w (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 32)))
              (drop (call $p (i32.const 64) (i32.const 200) (i32.const 1) (i32.const 36)))
              (br $l))))"#,
    )
    .unwrap();
    let tick = dir.join("ticker.wasm");
    std::fs::write(&tick, ticker).unwrap();
    assert!(d.ctl(&["start", "tick", &s(&tick)]).status.success());
    eventually("the guest ticks", || {
        events(&d, "tick").lines().count() >= 3
    });
    assert!(d.ctl(&["pause", "sig"]).status.success());
    assert!(d.ctl(&["pause", "tick"]).status.success());
    std::thread::sleep(Duration::from_millis(300));
    let (sig_before, tick_before) = (events(&d, "sig"), events(&d, "tick").lines().count());
    let cpid = signal_sleeper(&[libc::SIGUSR1]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        events(&d, "tick").lines().count(),
        tick_before,
        "a paused guest prints nothing"
    );
    assert!(
        !events(&d, "sig").contains(&cpid),
        "a paused instance delivers nothing"
    );
    assert_eq!(events(&d, "sig"), sig_before);
    let (_, b) = d.req("GET", "/v1/instances/sig", None);
    assert_eq!(jfield(&b, "state").as_deref(), Some("paused"), "{b}");
    assert!(
        jfield(&b, "paused_drops").unwrap().parse::<u64>().unwrap() >= 1,
        "what a pause drops is counted: {b}"
    );
    assert!(d.ctl(&["resume", "sig"]).status.success());
    assert!(d.ctl(&["resume", "tick"]).status.success());
    eventually("the guest ticks again", || {
        events(&d, "tick").lines().count() > tick_before + 2
    });
    let cpid = signal_sleeper(&[libc::SIGUSR2]);
    eventually("events flow again", || {
        events(&d, "sig").contains(&format!("\"tpid\":{cpid}"))
    });
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn a_stalled_client_misses_lines_counted_and_never_holds_the_consumer() {
    let _g = serial();
    if !ready("a_stalled_client_misses_lines_counted_and_never_holds_the_consumer") {
        return;
    }
    let dir = scratch("slow");
    let d = Daemon::start(&dir, &[]);
    let (mut gen, pid) = generator(60_000, 60_000);
    let body = format!(
        "{{\"source\":\"{}\",\"args\":[\"--target_tgid\",\"{pid}\"]}}",
        fixtures().obj("seqwrite")
    );
    assert_eq!(d.req("PUT", "/v1/instances/flood", Some(&body)).0, 201);
    // A follower that reads nothing while 60000 lines go by.
    let mut stalled = UnixStream::connect(&d.socket).unwrap();
    write!(
        stalled,
        "GET /v1/instances/flood/events?follow=1 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    gen.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(gen.wait().unwrap().success());
    eventually(
        "the consumer took every event while the client stalled",
        || {
            let (_, b) = d.req("GET", "/v1/instances/flood", None);
            jfield(&b, "events")
                .and_then(|e| e.parse::<u64>().ok())
                .unwrap_or(0)
                >= 60_000
        },
    );
    // Now it reads: it is told what it missed, and the daemon counted it.
    stalled
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let t0 = Instant::now();
    while !String::from_utf8_lossy(&got).contains("\"missed\"")
        && t0.elapsed() < Duration::from_secs(20)
    {
        match stalled.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    assert!(
        String::from_utf8_lossy(&got).contains("\"missed\":"),
        "the client is told what it missed"
    );
    let (_, b) = d.req("GET", "/v1/instances/flood", None);
    assert!(
        jfield(&b, "client_drops").unwrap().parse::<u64>().unwrap() > 0,
        "{b}"
    );
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn the_desired_state_file_is_reconciled_when_it_changes() {
    let _g = serial();
    if !ready("the_desired_state_file_is_reconciled_when_it_changes") {
        return;
    }
    let dir = scratch("config");
    let cfg = dir.join("instances.json");
    let me = std::process::id().to_string();
    let entry = |name: &str, args: &str| {
        format!(
            "{{\"name\":\"{name}\",\"source\":\"{}\",\"args\":[{args}]}}",
            example("package.json")
        )
    };
    std::fs::write(
        &cfg,
        format!("[{}]", entry("a", &format!("\"--filtered_pid\",\"{me}\""))),
    )
    .unwrap();
    let d = Daemon::start(&dir, &["--config", &s(&cfg)]);
    let state = |n: &str| {
        jfield(
            &d.req("GET", &format!("/v1/instances/{n}"), None).1,
            "state",
        )
    };
    assert_eq!(state("a").as_deref(), Some("running"));
    let write = |text: String| {
        // A new file renamed over the old one, as editors and ConfigMaps do.
        let tmp = dir.join("instances.json.new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &cfg).unwrap();
    };
    write(format!(
        "[{},{}]",
        entry("a", &format!("\"--filtered_pid\",\"{me}\"")),
        entry("b", "")
    ));
    eventually(&format!("b starts ({})", d.log()), || {
        state("b").as_deref() == Some("running")
    });
    write(format!(
        "[{},{}]",
        entry("a", "\"--target_signal\",\"12\""),
        entry("b", "")
    ));
    eventually("a reloads with its new arguments", || {
        d.req("GET", "/v1/instances/a", None)
            .1
            .contains("--target_signal")
    });
    write(format!("[{}]", entry("b", "")));
    eventually("a stops", || d.req("GET", "/v1/instances/a", None).0 == 404);
    write("[{\"name\": \"c\"".into());
    std::thread::sleep(Duration::from_secs(2));
    assert!(d.log().contains("nothing was changed"), "{}", d.log());
    assert_eq!(
        state("b").as_deref(),
        Some("running"),
        "an invalid file changes nothing"
    );
}

/// A sample line of `m` that starts with `prefix`: its value.
fn sample(m: &str, prefix: &str) -> Option<f64> {
    m.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn promtool(dir: &Path, m: &str) {
    let file = dir.join("metrics.txt");
    std::fs::write(&file, m).unwrap();
    match Command::new("promtool")
        .arg("check")
        .arg("metrics")
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
    {
        Ok(o) => assert!(
            o.status.success(),
            "promtool: {}{}\n{m}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "promtool is needed under CI: {e}"
            );
            eprintln!("SKIPPED promtool check: {e} (apt-get install prometheus)");
        }
    }
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn metrics_pass_promtool_with_counters_gauges_and_histograms() {
    let _g = serial();
    if !ready("metrics_pass_promtool_with_counters_gauges_and_histograms") {
        return;
    }
    let dir = scratch("metrics");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let scrape = format!("127.0.0.1:{port}");
    let d = Daemon::start(&dir, &["--bpf-stats", "--metrics-listen", &scrape]);
    let me = std::process::id().to_string();
    let c = Command::new(fixtures().trigger())
        .args(["seq", "50", "1000"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = c.id().to_string();
    assert!(d
        .ctl(&[
            "start",
            "maps",
            &fixtures().obj("metricmaps"),
            "--target_tgid",
            &pid
        ])
        .status
        .success());
    assert!(d
        .ctl(&[
            "start",
            "sig",
            &example("package.json"),
            "--filtered_pid",
            &me
        ])
        .status
        .success());
    let mut c = c;
    c.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(c.wait().unwrap().success());
    signal_sleeper(&[libc::SIGUSR1]);
    eventually("sig counts its event", || {
        sample(
            &d.req("GET", "/metrics", None).1,
            "edge_ecli_instance_events_total{ebpf_instance=\"sig\"}",
        )
        .unwrap_or(0.0)
            >= 1.0
    });
    // Prometheus scrapes the metrics listener: no token, and nothing but metrics and health.
    let get = |path: &str, method: &str| {
        let mut c = std::net::TcpStream::connect(&scrape).unwrap();
        write!(
            c,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap();
        let mut o = String::new();
        let _ = c.read_to_string(&mut o);
        o
    };
    let scraped = get("/metrics", "GET");
    assert!(scraped.starts_with("HTTP/1.1 200"), "{scraped}");
    assert!(scraped.contains("text/plain; version=0.0.4"), "{scraped}");
    assert!(get("/healthz", "GET").starts_with("HTTP/1.1 200"));
    assert!(get("/v1/instances", "GET").starts_with("HTTP/1.1 404"));
    assert!(get("/v1/instances/sig", "DELETE").starts_with("HTTP/1.1 404"));
    let m = dechunk_or(&scraped);
    for want in [
        "edge_ecli_build_info{version=\"",
        "edge_ecli_instance_state{ebpf_instance=\"maps\",state=\"running\"} 1",
        "edge_ecli_instance_info{ebpf_instance=\"sig\",digest=\"sha256:",
        "# TYPE ebpf_writes_total counter",
        "ebpf_writes_total{ebpf_instance=\"maps\",key=\"",
        "# TYPE ebpf_last_size gauge",
        "# TYPE ebpf_sizes histogram",
        "ebpf_sizes_count{ebpf_instance=\"maps\",key=\"0\"} 50",
        "ebpf_pinned_total{ebpf_instance=\"maps\",key=\"0\"} 50",
        // Key fields named like Prometheus's target labels never collide with them.
        "ebpf_jobs_total{ebpf_instance=\"maps\",key_instance=\"",
        "# TYPE edge_ecli_program_run_count_total counter",
    ] {
        assert!(m.contains(want), "{want} missing:\n{m}");
    }
    assert!(!m.contains("{instance="), "{m}");
    assert!(m.contains(",key_job=\"7\"} 50"), "{m}");
    // Writes of 1..=50 bytes: their sum is 1275; the estimate is close.
    let sum = sample(&m, "ebpf_sizes_sum{ebpf_instance=\"maps\",key=\"0\"}").unwrap();
    assert!((sum - 1275.0).abs() < 1275.0 * 0.15, "sum {sum}:\n{m}");
    // With --bpf-stats the kernel counts the program's runs.
    let runs = sample(
        &m,
        "edge_ecli_program_run_count_total{ebpf_instance=\"maps\",program=\"count_write\"",
    )
    .unwrap_or(0.0);
    assert!(runs >= 50.0, "{runs}:\n{m}");
    promtool(&dir, &m);
    // A reload keeps counting where the old version stopped.
    let before = sample(&m, "edge_ecli_instance_events_total{ebpf_instance=\"sig\"}").unwrap();
    let f = d.ctl(&[
        "reload",
        "sig",
        &example("package.json"),
        "--filtered_pid",
        &me,
        "--target_signal",
        "10",
    ]);
    assert!(f.status.success(), "{}", f.stderr);
    assert!(f.stdout.contains("reloaded"), "{}", f.stdout);
    let (_, m) = d.req("GET", "/metrics", None);
    let after = sample(&m, "edge_ecli_instance_events_total{ebpf_instance=\"sig\"}").unwrap();
    assert!(
        after >= before,
        "a reload reset the counter: {before} -> {after}"
    );
    promtool(&dir, &m);
}

/// The body of a whole HTTP answer (metrics come with a Content-Length).
fn dechunk_or(answer: &str) -> String {
    answer
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default()
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn the_socket_and_tcp_refuse_whom_they_should() {
    if !ready("the_socket_and_tcp_refuse_whom_they_should") {
        return;
    }
    let dir = scratch("security");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    // TCP needs a token file; a short token is refused.
    let f = run(&[
        "daemon",
        "--socket",
        &s(&dir.join("x.sock")),
        "--state-dir",
        &s(&dir.join("st")),
        "--listen",
        "127.0.0.1:0",
    ]);
    // A bad command line of edge-ecli: exit 2.
    assert_eq!(f.status.code(), Some(2));
    assert!(
        f.stderr.contains("--listen needs --token-file"),
        "{}",
        f.stderr
    );
    let token = dir.join("token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let d = Daemon::start(&dir, &["--listen", &listen, "--token-file", &s(&token)]);
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let tcp = |auth: &str| {
        let mut c = std::net::TcpStream::connect(&listen).unwrap();
        write!(c, "GET /v1/instances HTTP/1.1\r\nHost: x\r\n{auth}\r\n").unwrap();
        let mut o = String::new();
        let _ = c.read_to_string(&mut o);
        o
    };
    assert!(tcp("").starts_with("HTTP/1.1 401"));
    assert!(tcp("Authorization: Bearer wrong-token-wrong-token\r\n").starts_with("HTTP/1.1 401"));
    assert!(
        tcp("Authorization: Bearer 0123456789abcdef0123456789abcdef\r\n")
            .starts_with("HTTP/1.1 200")
    );
    // A user that is neither root nor in the group cannot connect.
    let copy = dir.join("edge-ecli");
    std::fs::copy(bin(), &copy).unwrap();
    let o = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(&copy)
        .args(["ctl", "--socket", &d.socket, "list"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Bad requests get 4xx with a JSON error; the daemon stays up.
    for (m, p, b, code) in [
        ("PUT", "/v1/instances/x", Some("{not json"), 400),
        ("PUT", "/v1/instances/..", Some("{\"source\":\"p\"}"), 400),
        (
            "PUT",
            "/v1/instances/a%2Fb",
            Some("{\"source\":\"p\"}"),
            400,
        ),
        ("GET", "/v1/instances/nobody", None, 404),
        ("GET", "/nothing", None, 404),
        ("PATCH", "/v1/instances", None, 405),
        (
            "PUT",
            "/v1/instances/bad",
            Some("{\"source\":\"/nonexistent.json\"}"),
            422,
        ),
        ("POST", "/v1/instances/nobody/pause", None, 404),
    ] {
        let (st, body) = d.req(m, p, b);
        assert_eq!(st, code, "{m} {p}: {body}");
        assert!(body.contains("\"error\":"), "{m} {p}: {body}");
    }
    // Limits: a huge head, a huge body, a slow client, too many connections.
    let mut c = UnixStream::connect(&d.socket).unwrap();
    let _ = write!(c, "GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(70 << 10));
    let mut o = String::new();
    let _ = c.read_to_string(&mut o);
    assert!(o.starts_with("HTTP/1.1 431"), "{}", &o[..o.len().min(80)]);
    let mut c = UnixStream::connect(&d.socket).unwrap();
    let _ = write!(
        c,
        "PUT /v1/instances/x HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        2 << 20
    );
    let mut o = String::new();
    let _ = c.read_to_string(&mut o);
    assert!(o.starts_with("HTTP/1.1 413"), "{o}");
    let held: Vec<UnixStream> = (0..64)
        .map(|_| UnixStream::connect(&d.socket).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let (st, _) = d.req("GET", "/healthz", None);
    assert_eq!(st, 503, "the 65th connection is refused");
    let t0 = Instant::now();
    let mut slow = held.into_iter().next().unwrap();
    let mut o = String::new();
    let _ = slow.read_to_string(&mut o);
    assert!(
        o.starts_with("HTTP/1.1 408"),
        "a client that sends nothing times out: {o}"
    );
    assert!(t0.elapsed() < Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(300));
    let (st, _) = d.req("GET", "/healthz", None);
    assert_eq!(st, 200, "the daemon serves again");
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn failing_and_trapping_instances_are_marked_failed_and_the_daemon_stays_up() {
    let _g = serial();
    if !ready("failing_and_trapping_instances_are_marked_failed_and_the_daemon_stays_up") {
        return;
    }
    let dir = scratch("failed");
    let d = Daemon::start(&dir, &[]);
    // Fails to load: a section no loader knows. The reply says why; nothing is kept.
    let (st, b) = d.req(
        "PUT",
        "/v1/instances/bad",
        Some(&format!(
            "{{\"source\":\"{}\"}}",
            fixtures().obj("badsection")
        )),
    );
    assert_eq!(st, 422, "{b}");
    assert!(b.contains("unknown section name"), "{b}");
    // A guest that traps after it started waiting: failed, with the trap.
    let trap = wat::parse_str(
        r#"(module
          (import "wasi_snapshot_preview1" "poll_oneoff" (func $p (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (func (export "_start")
            (i32.store (i32.const 80) (i32.const 1)) (i64.store (i32.const 88) (i64.const 300000000))
            (drop (call $p (i32.const 64) (i32.const 200) (i32.const 1) (i32.const 36)))
            unreachable))"#,
    )
    .unwrap();
    let path = dir.join("trap.wasm");
    std::fs::write(&path, trap).unwrap();
    let (st, b) = d.req(
        "PUT",
        "/v1/instances/trap",
        Some(&format!("{{\"source\":\"{}\"}}", s(&path))),
    );
    assert_eq!(st, 201, "{b}");
    eventually("the trap is seen", || {
        d.req("GET", "/v1/instances/trap", None)
            .1
            .contains("\"state\":\"failed\"")
    });
    let (_, b) = d.req("GET", "/v1/instances/trap", None);
    assert!(b.contains("unreachable"), "{b}");
    assert_eq!(d.req("GET", "/healthz", None).0, 200);
    assert_no_leaks(&["odd_prog"]);
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn sigterm_stops_everything_and_a_killed_daemon_is_cleaned_up_on_restart() {
    let _g = serial();
    if !ready("sigterm_stops_everything_and_a_killed_daemon_is_cleaned_up_on_restart") {
        return;
    }
    let dir = scratch("faults");
    let cfg = dir.join("instances.json");
    let me = std::process::id().to_string();
    std::fs::write(
        &cfg,
        format!(
            "[{{\"name\":\"cfg\",\"source\":\"{}\",\"args\":[\"--filtered_pid\",\"{me}\"]}}]",
            example("package.json")
        ),
    )
    .unwrap();
    let mut d = Daemon::start(&dir, &["--config", &s(&cfg)]);
    assert!(d
        .ctl(&[
            "start",
            "maps",
            &fixtures().obj("metricmaps"),
            "--target_tgid",
            "1"
        ])
        .status
        .success());
    let root = d.pin_root();
    let pinned = root.join("maps/counter_pinned");
    assert!(
        pinned.exists(),
        "the map is pinned by name under the daemon's root"
    );
    let pinned = pinned.as_path();
    // SIGTERM: every instance stopped, pins and socket removed, nothing in the kernel.
    let st = d.signal(libc::SIGTERM);
    assert!(st.success(), "{st}: {}", d.log());
    assert!(!pinned.exists());
    assert!(!Path::new(&d.socket).exists());
    assert_no_leaks(&["sig_trace", "sig_events", "count_write", "counter_writes"]);
    // Again, then SIGKILL: the pins stay behind...
    let mut d = Daemon::start(&dir, &["--config", &s(&cfg)]);
    assert!(
        d.req("GET", "/v1/instances/maps", None)
            .1
            .contains("\"state\":\"running\""),
        "the API instance was restored from the state dir"
    );
    let old_ino = std::fs::metadata(pinned)
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap();
    let st = d.signal(libc::SIGKILL);
    assert!(!st.success());
    assert!(pinned.exists(), "a killed daemon leaves its pins");
    // ...and the next start cleans them and restores the desired state.
    let d = Daemon::start(&dir, &["--config", &s(&cfg)]);
    assert!(d.log().contains("left by an earlier daemon"), "{}", d.log());
    let new_ino = std::fs::metadata(pinned)
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap();
    assert_ne!(old_ino, new_ino, "the stale pin was removed and made anew");
    for n in ["cfg", "maps"] {
        let (_, b) = d.req("GET", &format!("/v1/instances/{n}"), None);
        assert!(b.contains("\"state\":\"running\""), "{n}: {b}");
    }
    let _ = &d.dir;
}
