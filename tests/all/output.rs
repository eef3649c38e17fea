//! Output a user sees while something runs: a Wasm guest's lines in a file or a pipe although
//! it is stopped by force; columns picked with `-o`; timestamps on NDJSON from `run -j` and
//! from the daemon's event stream; `ctl -o json`, `logs --tail N` and human times.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

fn scratch(test: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("output")
        .join(test);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The guest prints two lines and sleeps for ever; `--timeout` stops it (by force, since it
/// sleeps again after its EINTR). The lines reach a pipe, a file and a terminal. Before the
/// guest's stdout was a character device, wasi-libc buffered it fully and the lines died with
/// the guest.
#[cfg_attr(edge_skip_toolchain, ignore = "needs clang-19, bpftool")]
#[test]
fn a_wasm_guests_lines_reach_a_pipe_a_file_and_a_terminal_before_a_forced_stop() {
    if !toolchain_available(
        "a_wasm_guests_lines_reach_a_pipe_a_file_and_a_terminal_before_a_forced_stop",
    ) {
        return;
    }
    let guest = guests().path("print_sleep.wasm");
    let want = "Load and attach BPF sockops successfully\na second line, then sleeping\n";
    // A pipe.
    let f = run(&["run", "--timeout", "0.5", &guest]);
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    assert_eq!(f.stdout, want, "stderr: {}", f.stderr);
    assert!(
        f.stderr.contains("stopped the guest by force"),
        "{}",
        f.stderr
    );
    // A file.
    let d = scratch("guest_file");
    let out = d.join("out.txt");
    let st = Command::new(bin())
        .args(["run", "--timeout", "0.5", &guest])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), want);
    // A terminal (a pty turns each \n into \r\n).
    let (ok, shown) = at_a_terminal(&["run", "--timeout", "0.5", &guest]);
    assert!(ok, "{shown}");
    assert!(shown.replace("\r\n", "\n").starts_with(want), "{shown}");
}

/// `2025-01-02T03:04:05.123456Z` within a minute of now.
fn recent_rfc3339(t: &str) {
    assert_eq!(t.len(), 27, "{t}");
    assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
    let o = Command::new("date")
        .args(["-u", "-d", t, "+%s"])
        .output()
        .unwrap();
    let then: u64 = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(then) < 60, "{t} is not now");
}

#[cfg_attr(edge_skip_root, ignore = "needs root and kernel BTF")]
#[test]
fn picked_columns_and_timestamped_ndjson() {
    if !kernel_available("picked_columns_and_timestamped_ndjson") {
        return;
    }
    let _g = serial();
    let obj = example("sigsnoop.bpf.o");
    let me = std::process::id().to_string();
    // Columns: only those asked for, in that order, after TIME.
    let sess = Session::start(&["-o", "columns=comm,sig,tpid", &obj, "-p", &me]);
    let cpid = signal_sleeper(&[libc::SIGUSR1]);
    let out = sess.wait_for(|o| o.contains(&cpid));
    let f = sess.stop_with(libc::SIGINT);
    assert!(f.status.success(), "{}", f.stderr);
    let out = out + &f.stdout;
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["TIME", "COMM", "SIG", "TPID"], "{out}");
    let row = lines
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|r| r.last() == Some(&cpid.as_str()))
        .unwrap_or_else(|| panic!("no row for {cpid}:\n{out}"));
    assert_eq!(row[2], "10", "{row:?}");
    // NDJSON: the timestamp leads, then the fields asked for.
    let sess = Session::start(&["-o", "json=tpid,sig", "--timestamp", &obj, "-p", &me]);
    let cpid = signal_sleeper(&[libc::SIGUSR1]);
    let out = sess.wait_for(|o| o.contains(&cpid));
    let f = sess.stop_with(libc::SIGINT);
    assert!(f.status.success(), "{}", f.stderr);
    let out = out + &f.stdout;
    let line = json_lines(&out)
        .into_iter()
        .find(|l| l.contains(&cpid))
        .unwrap_or_else(|| panic!("no line for {cpid}:\n{out}"));
    let ts = field(&line, "timestamp").unwrap().to_string();
    assert_eq!(
        line,
        format!("{{\"timestamp\":\"{ts}\",\"tpid\":{cpid},\"sig\":10}}")
    );
    recent_rfc3339(&ts);
    // A field the events do not have is named, with the ones they have.
    let f = run(&["run", "-o", "columns=pid,nope", &obj]);
    assert_eq!(f.status.code(), Some(2), "{}", f.stderr);
    assert!(
        f.stderr.contains("no field nope") && f.stderr.contains("pid, tpid, sig, ret, comm"),
        "{}",
        f.stderr
    );
    assert_no_leaks(&["sig_trace", "sig_events"]);
}

/// A daemon in a scratch directory, SIGTERMed when dropped.
struct Daemon {
    child: Child,
    socket: String,
}

impl Daemon {
    fn start(dir: &Path, extra: &[&str]) -> Daemon {
        let socket = dir.join("edge.sock").to_string_lossy().into_owned();
        let state = dir.join("state").to_string_lossy().into_owned();
        let mut child = Command::new(bin())
            .args(["daemon", "--socket", &socket, "--state-dir", &state])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (err, _) = collect_stderr(&mut child);
        let t0 = Instant::now();
        while !err.lock().unwrap().contains("listening on") {
            assert!(
                child.try_wait().unwrap().is_none(),
                "{}",
                err.lock().unwrap()
            );
            assert!(t0.elapsed() < Duration::from_secs(60), "not listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        Daemon { child, socket }
    }

    fn ctl(&self, args: &[&str]) -> Finished {
        let mut v = vec!["ctl", "--socket", self.socket.as_str()];
        v.extend_from_slice(args);
        run(&v)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) of the daemon we spawned; no memory is involved.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let t0 = Instant::now();
        while self.child.try_wait().unwrap().is_none() && t0.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg_attr(edge_skip_root, ignore = "needs root and kernel BTF")]
#[test]
fn the_daemons_events_carry_timestamps_and_ctl_speaks_json_tails_and_ages() {
    if !kernel_available("the_daemons_events_carry_timestamps_and_ctl_speaks_json_tails_and_ages") {
        return;
    }
    let _g = serial();
    let d = Daemon::start(&scratch("daemon"), &["--timestamp"]);
    let me = std::process::id().to_string();
    let f = d.ctl(&["start", "sig", &example("package.json"), "-p", &me]);
    assert!(f.status.success(), "{}", f.stderr);
    assert!(
        f.stdout.contains("started       ") && f.stdout.contains("s ago (20"),
        "{}",
        f.stdout
    );
    let cpids: Vec<String> = (0..3).map(|_| signal_sleeper(&[libc::SIGUSR1])).collect();
    let t0 = Instant::now();
    let logs = loop {
        let l = d.ctl(&["logs", "sig"]).stdout;
        if cpids.iter().all(|c| l.contains(c.as_str())) {
            break l;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "events missing:\n{l}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    for l in json_lines(&logs) {
        assert!(l.starts_with("{\"timestamp\":\""), "{l}");
        recent_rfc3339(field(&l, "timestamp").unwrap());
    }
    // --tail: the last lines kept, here the last event.
    let f = d.ctl(&["logs", "--tail", "1", "sig"]);
    assert!(f.status.success(), "{}", f.stderr);
    let tail = json_lines(&f.stdout);
    assert_eq!(tail.len(), 1, "{}", f.stdout);
    assert_eq!(tail[0], *json_lines(&logs).last().unwrap());
    // -o json: the daemon's answer, one JSON line; the table says how long ago.
    let f = d.ctl(&["-o", "json", "list"]);
    assert!(f.status.success(), "{}", f.stderr);
    assert_eq!(f.stdout.lines().count(), 1, "{}", f.stdout);
    assert!(
        f.stdout.starts_with("{\"instances\":[{\"name\":\"sig\"")
            && f.stdout.contains("\"started_at\":"),
        "{}",
        f.stdout
    );
    let f = d.ctl(&["list"]);
    let header: Vec<&str> = f
        .stdout
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(header[..3], ["NAME", "STATE", "STARTED"], "{}", f.stdout);
    assert!(f.stdout.contains("s ago"), "{}", f.stdout);
    let f = d.ctl(&["-o", "json", "status", "sig"]);
    assert!(f.stdout.starts_with("{\"name\":\"sig\""), "{}", f.stdout);
    let f = d.ctl(&["-o", "yaml", "list"]);
    assert_eq!(f.status.code(), Some(2), "{}", f.stderr);
    assert!(d.ctl(&["stop", "sig"]).status.success());
    drop(d);
    assert_no_leaks(&["sig_trace", "sig_events"]);
}
