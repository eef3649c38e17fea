//! What the daemon costs on a node, measured against the same work done without it:
//! - scale: 20 instances started at once (per-instance start vs a `run` process's startup);
//! - API latency: p50/p99 of `GET /v1/instances` while one instance consumes a 1 M events/s
//!   flood (BPF_PROG_TEST_RUN of benches/bpf/flood.bpf.c), against the same requests idle;
//! - memory and idle CPU: one daemon with 10 idle instances against 10 `run` processes.
//!
//! `cargo bench --bench daemon` (root, BPF kernel); EDGE_ECLI_BIN picks the binary.

#[path = "../tests/all/common.rs"]
mod common;
mod support;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{bin, fixtures};
use support::{cpu_ticks, median, status_kb, sys};

/// A child whose stderr is collected, killed (SIGTERM, then SIGKILL) when dropped.
struct Proc {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    fn spawn(cmd: &mut Command, ready: &str) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", bin()));
        let (stderr, _) = common::collect_stderr(&mut child);
        let t0 = Instant::now();
        while !stderr.lock().unwrap().contains(ready) {
            if let Ok(Some(st)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(50));
                panic!("exited ({st}) before '{ready}': {}", stderr.lock().unwrap());
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "never '{ready}'");
            std::thread::sleep(Duration::from_micros(200));
        }
        Proc { child, stderr }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: signalling our child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let t0 = Instant::now();
        while self.child.try_wait().ok().flatten().is_none() && t0.elapsed().as_secs() < 20 {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Daemon {
    proc: Proc,
    socket: String,
}

impl Daemon {
    fn start(dir: &Path) -> Daemon {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        let socket = dir.join("edge.sock").to_string_lossy().into_owned();
        let state = dir.join("state").to_string_lossy().into_owned();
        let proc = Proc::spawn(
            Command::new(bin()).args(["daemon", "--socket", &socket, "--state-dir", &state]),
            "listening on",
        );
        Daemon { proc, socket }
    }

    /// One request over the socket: status, body and how long it took.
    fn req(&self, method: &str, path: &str, body: &str) -> (u16, String, Duration) {
        let t0 = Instant::now();
        let mut st = UnixStream::connect(&self.socket).unwrap();
        st.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        write!(
            st,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        let _ = st.read_to_string(&mut out);
        let took = t0.elapsed();
        let status = out
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
        (status, body.to_string(), took)
    }

    fn put(&self, name: &str, source: &str) -> Duration {
        let body = format!("{{\"source\":\"{source}\"}}");
        let (st, b, took) = self.req("PUT", &format!("/v1/instances/{name}"), &body);
        assert_eq!(
            st,
            201,
            "PUT {name}: {b}\n{}",
            self.proc.stderr.lock().unwrap()
        );
        took
    }

    fn number(&self, name: &str, key: &str) -> u64 {
        let (_, b, _) = self.req("GET", &format!("/v1/instances/{name}"), "");
        common::field(&b, key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Proportional set size: shared pages (the binary's text) divided among their users, so a
/// sum over processes counts them once.
fn pss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Pss:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// `n` list requests, one every `gap`; latencies in ms.
fn list_latencies(d: &Daemon, n: usize, gap: Duration) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let (st, b, took) = d.req("GET", "/v1/instances", "");
            assert_eq!(st, 200, "{b}");
            std::thread::sleep(gap);
            took.as_secs_f64() * 1e3
        })
        .collect()
}

fn main() {
    if !common::kernel_available("daemon benchmarks") {
        return;
    }
    let fx = fixtures();
    let flood = fx.path("flood.bpf.o");
    support::bpf_object(&fx.dir, "benches/bpf/flood.bpf.c", &flood, &[]);
    let opensnoop = fx.obj("opensnoop");
    let sigsnoop = fx.obj("sigsnoop");
    let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-daemon");
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;

    let mut rows: Vec<(String, f64, f64, String)> = Vec::new();
    let mut add = |name: &str, ours: f64, base: f64, unit: &str| {
        println!(
            "{name:<60} daemon {ours:>10.3} {unit:<4} without {base:>10.3}  ratio {:.2}",
            ours / base
        );
        rows.push((name.to_string(), ours, base, unit.to_string()));
    };

    // Scale: 20 instances at once, each its own copy of an openat tracer.
    {
        let d = Daemon::start(&scratch);
        let t0 = Instant::now();
        let starts: Vec<f64> = (0..20)
            .map(|i| d.put(&format!("open-{i:02}"), &opensnoop).as_secs_f64() * 1e3)
            .collect();
        let all = t0.elapsed().as_secs_f64();
        let runs: Vec<f64> = (0..7)
            .map(|_| {
                let t0 = Instant::now();
                let p = Proc::spawn(
                    Command::new(bin()).args(["-v", "run", "--timeout", "30", &opensnoop]),
                    "phases",
                );
                let t = t0.elapsed().as_secs_f64() * 1e3;
                drop(p);
                t
            })
            .collect();
        println!("20 instances started in {all:.2} s");
        add(
            "start one of 20 instances (PUT) vs exec of `run`, ms",
            median(starts),
            median(runs),
            "ms",
        );
        // Every instance sees the same openat calls.
        let before: Vec<u64> = (0..20)
            .map(|i| d.number(&format!("open-{i:02}"), "events"))
            .collect();
        let probe = scratch.join("probe");
        for _ in 0..200 {
            let _ = std::fs::File::create(&probe);
        }
        std::thread::sleep(Duration::from_millis(500));
        let least = (0..20)
            .map(|i| d.number(&format!("open-{i:02}"), "events") - before[i])
            .min()
            .unwrap();
        println!("200 opens: the instance that saw fewest counted {least} events");
        let idle = list_latencies(&d, 200, Duration::from_millis(2));
        println!(
            "list with 20 instances: p50 {:.3} ms p99 {:.3} ms; daemon RSS {:.1} MiB",
            percentile(idle.clone(), 0.5),
            percentile(idle, 0.99),
            status_kb(d.proc.pid(), "VmRSS:") as f64 / 1024.0
        );
    }

    // API latency while one instance consumes 1 M events/s.
    {
        let d = Daemon::start(&scratch);
        d.put("flood", &flood);
        d.put("sig", &sigsnoop);
        let idle = list_latencies(&d, 500, Duration::from_millis(2));
        let fd = sys::prog_fd_by_name("flood").expect("the flood program is not loaded");
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, rate) = (stop.clone(), 1_000_000u64);
        let driver = std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut sent = 0u64;
            while !stop2.load(Ordering::Relaxed) {
                assert!(sys::test_run(fd, rate / 100) >= 0, "BPF_PROG_TEST_RUN");
                sent += rate / 100;
                let due = t0 + Duration::from_secs_f64(sent as f64 / rate as f64);
                if let Some(w) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(w);
                }
            }
            (sent, t0.elapsed().as_secs_f64())
        });
        std::thread::sleep(Duration::from_millis(300));
        let cpu0 = cpu_ticks(d.proc.pid());
        // About five seconds of flood.
        let loaded = list_latencies(&d, 1500, Duration::from_millis(2));
        let cpu = (cpu_ticks(d.proc.pid()) - cpu0) as f64 / hz;
        stop.store(true, Ordering::Relaxed);
        let (sent, secs) = driver.join().unwrap();
        // SAFETY: closing the fd prog_fd_by_name opened.
        unsafe { libc::close(fd) };
        std::thread::sleep(Duration::from_millis(500));
        let (events, lost) = (d.number("flood", "events"), d.number("flood", "lost"));
        println!(
            "flood: offered {sent} in {secs:.2} s ({:.2} M/s), consumed {events}, lost {lost}, daemon CPU {:.0}% of one core",
            sent as f64 / secs / 1e6,
            cpu / secs * 100.0
        );
        add(
            "list p50 during a 1 M ev/s flood vs idle, ms",
            percentile(loaded.clone(), 0.5),
            percentile(idle.clone(), 0.5),
            "ms",
        );
        add(
            "list p99 during a 1 M ev/s flood vs idle, ms",
            percentile(loaded, 0.99),
            percentile(idle, 0.99),
            "ms",
        );
    }

    // Memory and idle CPU: 10 idle instances in one daemon against 10 `run` processes.
    {
        let d = Daemon::start(&scratch);
        let empty = status_kb(d.proc.pid(), "VmRSS:");
        for i in 0..10 {
            d.put(&format!("sig-{i}"), &sigsnoop);
        }
        let runs: Vec<Proc> = (0..10)
            .map(|_| Proc::spawn(Command::new(bin()).args(["-v", "run", &sigsnoop]), "phases"))
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        let pids: Vec<u32> = runs.iter().map(Proc::pid).collect();
        let ticks = |p: &[u32]| p.iter().map(|&p| cpu_ticks(p)).sum::<u64>();
        let (d0, r0) = (cpu_ticks(d.proc.pid()), ticks(&pids));
        std::thread::sleep(Duration::from_secs(5));
        let (d1, r1) = (cpu_ticks(d.proc.pid()), ticks(&pids));
        let rss: u64 = pids.iter().map(|&p| status_kb(p, "VmRSS:")).sum();
        let pss: u64 = pids.iter().map(|&p| pss_kb(p)).sum();
        let hwm: u64 = pids.iter().map(|&p| status_kb(p, "VmHWM:")).sum();
        println!(
            "daemon RSS with no instances {:.1} MiB",
            empty as f64 / 1024.0
        );
        add(
            "RSS, 10 idle instances vs 10 `run` processes, MiB",
            status_kb(d.proc.pid(), "VmRSS:") as f64 / 1024.0,
            rss as f64 / 1024.0,
            "MiB",
        );
        add(
            "PSS (shared pages split), same, MiB",
            pss_kb(d.proc.pid()) as f64 / 1024.0,
            pss as f64 / 1024.0,
            "MiB",
        );
        add(
            "peak RSS (VmHWM), same, MiB",
            status_kb(d.proc.pid(), "VmHWM:") as f64 / 1024.0,
            hwm as f64 / 1024.0,
            "MiB",
        );
        println!(
            "idle CPU over 5 s: daemon {:.3} s, 10 run processes {:.3} s",
            (d1 - d0) as f64 / hz,
            (r1 - r0) as f64 / hz
        );
    }

    let mut md = String::from("| measure | daemon | without | ratio |\n|---|---:|---:|---:|\n");
    for (n, o, b, u) in &rows {
        md.push_str(&format!(
            "| {n} | {o:.2} {u} | {b:.2} {u} | {:.2} |\n",
            o / b
        ));
    }
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-daemon-table.md");
    std::fs::write(&path, &md).unwrap();
    println!("\n{md}\n(table written to {})", path.display());
}
