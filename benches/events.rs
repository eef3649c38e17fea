//! Benchmarks, all as ratios against a native libbpf consumer measured in the same run:
//! startup (exec to attached), event throughput and loss (BPF_PROG_TEST_RUN of a bpf_loop
//! generator, so no syscall per event), the offered rate where loss starts, peak RSS and binary
//! size, and CPU and latency at real rates (one record per getppid(2) at 200k and 600k/s).
//! `cargo bench --bench events` (root, BPF kernel); EDGE_ECLI_BIN picks the binary;
//! EDGE_BENCH_ONLY=real runs only the real-rate scenarios.
//!
//! Consumers: edge-ecli NDJSON, edge-ecli plain columns, edge-ecli running a Wasm guest whose
//! callback does the same printf work, and the baseline (benches/baseline/consumer.c) in both
//! output formats.

#[path = "../tests/all/common.rs"]
mod common;
mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{bin, fixtures};
use support::{cpu_ticks, median, sh, status_kb, sys};

struct Built {
    flood: String,
    flood_perf: String,
    five: String,
    opensnoop: String,
    baseline: String,
    guest: String,
    syscall_rb: String,
    syscall_perf: String,
}

fn build() -> Built {
    let fx = fixtures();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = |n: &str| fx.path(n);
    let bpf = |src: &str, o: &str, extra: &[&str]| {
        support::bpf_object(Path::new(&fx.dir), src, &out(o), extra)
    };
    bpf("benches/bpf/flood.bpf.c", "flood.bpf.o", &[]);
    bpf("benches/bpf/flood.bpf.c", "flood_perf.bpf.o", &["-DPERF"]);
    bpf("benches/bpf/five.bpf.c", "five.bpf.o", &[]);
    bpf("benches/bpf/syscall.bpf.c", "syscall_rb.bpf.o", &[]);
    bpf(
        "benches/bpf/syscall.bpf.c",
        "syscall_perf.bpf.o",
        &["-DPERF"],
    );
    sh(Command::new("cc")
        .args(["-O2", "-o"])
        .arg(out("baseline-consumer"))
        .arg(root.join("benches/baseline/consumer.c"))
        .arg("-lbpf"));
    sh(Command::new("clang-19")
        .args([
            "--target=wasm32-wasi",
            "--sysroot=/usr",
            "-O2",
            "-Wno-c23-extensions",
            "-Wl,--export-table",
        ])
        .arg("-I")
        .arg(root.join("sdk/c"))
        .arg(format!("-DFLOOD_OBJ=\"{}\"", out("flood.bpf.o")))
        .arg(root.join("benches/guest/consumer.c"))
        .arg("-o")
        .arg(out("bench-consumer.wasm")));
    Built {
        flood: out("flood.bpf.o"),
        flood_perf: out("flood_perf.bpf.o"),
        five: out("five.bpf.o"),
        opensnoop: fx.obj("opensnoop"),
        baseline: out("baseline-consumer"),
        guest: out("bench-consumer.wasm"),
        syscall_rb: out("syscall_rb.bpf.o"),
        syscall_perf: out("syscall_perf.bpf.o"),
    }
}

/// A running consumer with its output lines counted as they arrive.
struct Consumer {
    child: Child,
    lines: Arc<AtomicU64>,
    last_line: Arc<Mutex<Instant>>,
    stderr: Arc<Mutex<String>>,
}

impl Consumer {
    fn start(cmd: &mut Command, ready: &str) -> (Consumer, Duration) {
        let t0 = Instant::now();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(AtomicU64::new(0));
        let last_line = Arc::new(Mutex::new(Instant::now()));
        let (stderr, _) = common::collect_stderr(&mut child);
        let (l2, t2) = (lines.clone(), last_line.clone());
        let mut out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let c = buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
                if c > 0 {
                    l2.fetch_add(c, Ordering::Relaxed);
                    *t2.lock().unwrap() = Instant::now();
                }
            }
        });
        loop {
            if stderr.lock().unwrap().contains(ready) {
                break;
            }
            if let Ok(Some(st)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(50));
                panic!("consumer exited ({st}): {}", stderr.lock().unwrap());
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "consumer never ready"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        let startup = t0.elapsed();
        (
            Consumer {
                child,
                lines,
                last_line,
                stderr,
            },
            startup,
        )
    }

    fn stop(mut self) -> String {
        // SAFETY: signalling our child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
        let e = self.stderr.lock().unwrap().clone();
        e
    }
}

#[derive(Default, Clone)]
struct Run {
    events_per_s: f64,
    lost: u64,
    cpu_us_per_event: f64,
    peak_rss_kb: u64,
    anon_kb: u64,
}

/// Emits `total` events at most `rate` per second (0: as fast as possible) and waits for them.
fn drive(c: &Consumer, header_lines: u64, total: u64, rate: u64) -> Run {
    let fd = (0..200)
        .find_map(|_| {
            let fd = sys::prog_fd_by_name("flood");
            if fd.is_none() {
                std::thread::sleep(Duration::from_millis(10));
            }
            fd
        })
        .expect("flood program not loaded");
    let pid = c.child.id();
    // Let a header line that follows the readiness message arrive before counting.
    std::thread::sleep(Duration::from_millis(200));
    let base = c.lines.load(Ordering::Relaxed);
    let cpu0 = cpu_ticks(pid);
    let t0 = Instant::now();
    let batch = if rate == 0 {
        50_000
    } else {
        (rate / 100).max(1)
    };
    let mut sent = 0;
    while sent < total {
        let n = batch.min(total - sent);
        assert!(
            sys::test_run(fd, n) >= 0,
            "BPF_PROG_TEST_RUN failed: {}",
            std::io::Error::last_os_error()
        );
        sent += n;
        if rate > 0 {
            let due = t0 + Duration::from_secs_f64(sent as f64 / rate as f64);
            if let Some(d) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
        }
    }
    // Wait until the output stops growing.
    let mut prev = u64::MAX;
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = c.lines.load(Ordering::Relaxed);
        if now == prev || now.saturating_sub(base + header_lines) >= total {
            break;
        }
        prev = now;
    }
    let received = c.lines.load(Ordering::Relaxed) - base;
    let received = received.saturating_sub(header_lines).min(total);
    let elapsed = c
        .last_line
        .lock()
        .unwrap()
        .duration_since(t0)
        .as_secs_f64()
        .max(1e-6);
    let ticks = cpu_ticks(pid) - cpu0;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    // SAFETY: closing the fd prog_fd_by_name opened.
    unsafe { libc::close(fd) };
    Run {
        events_per_s: received as f64 / elapsed,
        lost: total - received,
        cpu_us_per_event: ticks as f64 / hz * 1e6 / received.max(1) as f64,
        peak_rss_kb: status_kb(pid, "VmHWM:"),
        anon_kb: status_kb(pid, "RssAnon:"),
    }
}

/// What a consumer cost at a real rate, and how late its lines came.
struct RealRun {
    events: u64,
    cpu_us_per_event: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Events from real syscalls: `edge-trigger getppid` at `rate` for `secs`, traced by
/// benches/bpf/syscall.bpf.c, consumed as NDJSON by `cmd`. Latency is the time from the
/// record's bpf_ktime_get_ns to the moment its line is read from the consumer's stdout.
fn real_rate(cmd: &mut Command, ready: &str, rate: u64, secs: f64) -> RealRun {
    let t0 = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lat = Arc::new(Mutex::new(Vec::<u64>::with_capacity(4 << 20)));
    let lines = Arc::new(AtomicU64::new(0));
    let (l2, n2) = (lat.clone(), lines.clone());
    let mut out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut partial: Vec<u8> = Vec::new();
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            let now = monotonic_ns();
            partial.extend_from_slice(&buf[..n]);
            let end = partial
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            let mut got = Vec::new();
            for line in partial[..end]
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
            {
                let Some(i) = line.windows(5).position(|w| w == b"\"ts\":") else {
                    continue;
                };
                let ts = line[i + 5..]
                    .iter()
                    .take_while(|c| c.is_ascii_digit())
                    .fold(0u64, |v, c| v * 10 + (c - b'0') as u64);
                got.push(now.saturating_sub(ts));
            }
            partial.drain(..end);
            n2.fetch_add(got.len() as u64, Ordering::Relaxed);
            l2.lock().unwrap().extend(got);
        }
    });
    let (stderr, _) = common::collect_stderr(&mut child);
    while !stderr.lock().unwrap().contains(ready) {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "consumer never ready"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let pid = child.id();
    let cpu0 = cpu_ticks(pid);
    let n = (rate as f64 * secs) as u64;
    let st = Command::new(fixtures().trigger())
        .args(["getppid", &n.to_string(), &rate.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let mut prev = u64::MAX;
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = lines.load(Ordering::Relaxed);
        if now == prev || now >= n {
            break;
        }
        prev = now;
    }
    let ticks = cpu_ticks(pid) - cpu0;
    // SAFETY: signalling our child.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let _ = child.wait();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut v = lat.lock().unwrap().clone();
    v.sort_unstable();
    let pct = |p: f64| {
        v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1e6
    };
    let events = lines.load(Ordering::Relaxed);
    RealRun {
        events,
        cpu_us_per_event: ticks as f64 / hz * 1e6 / events.max(1) as f64,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
    }
}

fn edge(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.arg("-v").arg("run").args(args);
    c.env_remove("RUST_BACKTRACE");
    c
}

fn baseline(b: &Built, args: &[&str]) -> Command {
    let mut c = Command::new(&b.baseline);
    c.args(args);
    c
}

fn startup(mk: &dyn Fn() -> Command, ready: &str) -> f64 {
    let v = (0..7)
        .map(|_| {
            let (c, t) = Consumer::start(&mut mk(), ready);
            c.stop();
            common::assert_no_leaks(&["five_exec", "open_enter", "flood"]);
            t.as_secs_f64() * 1e3
        })
        .collect();
    median(v)
}

/// Pushes `obj` to a docker-registry started here, pulls it into a fresh cache, and stops
/// the registry: returns the reference by digest and the cache dir. None without
/// docker-registry.
fn cached_reference(obj: &str) -> Option<(String, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-registry");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).ok()?;
    let cfg = dir.join("config.yml");
    std::fs::write(&cfg, format!("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n", dir.join("data").display())).ok()?;
    let mut reg = match Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(_) => {
            println!("(no docker-registry: the cached-reference startup is not measured)");
            return None;
        }
    };
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        && t0.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = format!("127.0.0.1:{port}/bench/opensnoop:v1");
    let pushed = Command::new(bin()).args(["push", obj, &r]).output().ok()?;
    let cache = dir.join("cache").to_string_lossy().into_owned();
    let digest = String::from_utf8_lossy(&pushed.stdout)
        .trim()
        .rsplit('@')
        .next()?
        .to_string();
    let by_digest = format!("127.0.0.1:{port}/bench/opensnoop@{digest}");
    let pulled = Command::new(bin())
        .args(["pull", "--cache-dir", &cache, &by_digest])
        .output()
        .ok()?;
    let _ = reg.kill();
    let _ = reg.wait();
    (pushed.status.success() && pulled.status.success()).then_some((by_digest, cache))
}

fn main() {
    if !common::kernel_available("benchmarks") {
        return;
    }
    let total: u64 = std::env::var("EDGE_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let b = build();
    let mut rows: Vec<(String, f64, f64, String)> = Vec::new();
    let mut add = |name: &str, ours: f64, base: f64, unit: &str| {
        println!(
            "{name:<48} edge-ecli {ours:>12.3} {unit:<10} baseline {base:>12.3}  ratio {:.2}",
            ours / base
        );
        rows.push((name.to_string(), ours, base, unit.to_string()));
    };

    // Real rates: one record per getppid(2), as a tracer sees them, not a bpf_loop burst.
    let secs = 3.0;
    for (kind, obj) in [("ringbuf", &b.syscall_rb), ("perf", &b.syscall_perf)] {
        for rate in [200_000u64, 600_000] {
            let ours = real_rate(&mut edge(&["-j", obj]), "phases", rate, secs);
            let base = real_rate(
                &mut baseline(&b, &["-j", obj, "sys_events"]),
                "attached",
                rate,
                secs,
            );
            let label = format!("getppid at {}k/s, {kind} NDJSON", rate / 1000);
            println!(
                "    {label}: events edge-ecli {} baseline {} of {}",
                ours.events,
                base.events,
                (rate as f64 * secs) as u64
            );
            add(
                &format!("{label}: CPU us per event"),
                ours.cpu_us_per_event,
                base.cpu_us_per_event,
                "us",
            );
            add(
                &format!("{label}: latency p50"),
                ours.p50_ms,
                base.p50_ms,
                "ms",
            );
            add(
                &format!("{label}: latency p99"),
                ours.p99_ms,
                base.p99_ms,
                "ms",
            );
        }
    }
    if std::env::var("EDGE_BENCH_ONLY").as_deref() == Ok("real") {
        print_table(&rows);
        return;
    }

    // Startup: exec to every program attached.
    for (label, obj) in [("openat tracer", &b.opensnoop), ("five programs", &b.five)] {
        let ours = startup(&|| edge(&["--timeout", "30", obj]), "phases");
        let base = startup(&|| baseline(&b, &["-x", obj, "open_rb"]), "attached");
        add(&format!("startup ms, {label}"), ours, base, "ms");
    }

    // A reference run from the cache (by digest: no network) against the same file.
    if let Some((reference, cache)) = cached_reference(&b.opensnoop) {
        let file = startup(&|| edge(&["--timeout", "30", &b.opensnoop]), "phases");
        let cached = startup(
            &|| edge(&["--timeout", "30", "--cache-dir", &cache, &reference]),
            "phases",
        );
        println!("cached reference adds {:.2} ms to startup", cached - file);
        add(
            "startup ms, cached OCI reference vs the same file",
            cached,
            file,
            "ms",
        );
    }

    // Throughput at full speed, then the loss threshold.
    let kinds: Vec<(&str, Command, Command, u64)> = vec![
        (
            "ringbuf NDJSON",
            edge(&["-j", &b.flood]),
            baseline(&b, &["-j", &b.flood]),
            0,
        ),
        (
            "ringbuf plain",
            edge(&[&b.flood]),
            baseline(&b, &[&b.flood]),
            0,
        ),
        (
            "perf NDJSON",
            edge(&["-j", &b.flood_perf]),
            baseline(&b, &["-j", &b.flood_perf]),
            0,
        ),
    ];
    let mut rss = (0u64, 0u64);
    let mut rss_wasm = 0u64;
    let mut anon = (0u64, 0u64);
    for (label, mut ours_cmd, mut base_cmd, header) in kinds {
        let (c, _) = Consumer::start(&mut ours_cmd, "phases");
        let ours = drive(&c, header, total, 0);
        let e = c.stop();
        let (c, _) = Consumer::start(&mut base_cmd, "attached");
        let base = drive(&c, 0, total, 0);
        c.stop();
        add(
            &format!("{label}: events/s ({total} offered at full speed)"),
            ours.events_per_s,
            base.events_per_s,
            "ev/s",
        );
        add(
            &format!("{label}: CPU us per event"),
            ours.cpu_us_per_event,
            base.cpu_us_per_event,
            "us",
        );
        println!(
            "    lost: edge-ecli {} baseline {}   {}",
            ours.lost,
            base.lost,
            e.lines()
                .filter(|l| l.contains("lost"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        rss = (rss.0.max(ours.peak_rss_kb), rss.1.max(base.peak_rss_kb));
        anon = (anon.0.max(ours.anon_kb), anon.1.max(base.anon_kb));
    }
    // Wasm guest callback path vs the native decode path (and vs the baseline).
    {
        let (c, _) = Consumer::start(&mut edge(&[&b.guest, "light"]), "attached");
        let light = drive(&c, 0, total, 0);
        c.stop();
        let (c, _) = Consumer::start(&mut edge(&[&b.guest]), "attached");
        let guest = drive(&c, 0, total, 0);
        c.stop();
        let (c, _) = Consumer::start(&mut edge(&["-j", &b.flood]), "phases");
        let native = drive(&c, 0, total, 0);
        c.stop();
        let (c, _) = Consumer::start(&mut baseline(&b, &["-j", &b.flood]), "attached");
        let base = drive(&c, 0, total, 0);
        c.stop();
        add(
            "Wasm callback, light (seq per line): events/s",
            light.events_per_s,
            base.events_per_s,
            "ev/s",
        );
        add(
            "Wasm callback, light: CPU us per event (vs native decode)",
            light.cpu_us_per_event,
            native.cpu_us_per_event,
            "us",
        );
        add(
            "Wasm callback, printf NDJSON in Wasm: events/s",
            guest.events_per_s,
            base.events_per_s,
            "ev/s",
        );
        add(
            "Wasm callback, printf NDJSON: CPU us per event (vs native)",
            guest.cpu_us_per_event,
            native.cpu_us_per_event,
            "us",
        );
        println!(
            "    lost: wasm light {} wasm printf {}",
            light.lost, guest.lost
        );
        rss_wasm = rss_wasm.max(light.peak_rss_kb).max(guest.peak_rss_kb);
    }
    // Offered-rate sweep: where does each start to lose events?
    for rate in [250_000u64, 500_000, 1_000_000, 2_000_000] {
        let n = rate; // one second's worth
        let (c, _) = Consumer::start(&mut edge(&["-j", &b.flood]), "phases");
        let ours = drive(&c, 0, n, rate);
        c.stop();
        let (c, _) = Consumer::start(&mut baseline(&b, &["-j", &b.flood]), "attached");
        let base = drive(&c, 0, n, rate);
        c.stop();
        let (c, _) = Consumer::start(&mut edge(&[&b.guest, "light"]), "attached");
        let guest = drive(&c, 0, n, rate);
        c.stop();
        println!(
            "offered {rate:>9}/s for 1 s: lost edge-ecli {:>8}  wasm light {:>8}  baseline {:>8}",
            ours.lost, guest.lost, base.lost
        );
    }
    add(
        "peak RSS while tracing (NDJSON, columns, perf)",
        rss.0 as f64 / 1024.0,
        rss.1 as f64 / 1024.0,
        "MiB",
    );
    add(
        "private (anonymous) RSS while tracing",
        anon.0 as f64 / 1024.0,
        anon.1 as f64 / 1024.0,
        "MiB",
    );
    add(
        "peak RSS while tracing, Wasm guests",
        rss_wasm as f64 / 1024.0,
        rss.1 as f64 / 1024.0,
        "MiB",
    );
    let size = std::fs::metadata(bin()).map(|m| m.len()).unwrap_or(0);
    let base_size = std::fs::metadata(&b.baseline).map(|m| m.len()).unwrap_or(0);
    println!("binary size: edge-ecli {size} bytes ({}), baseline {base_size} bytes + libbpf.so + libelf.so + libz.so", bin());
    print_table(&rows);
}

fn print_table(rows: &[(String, f64, f64, String)]) {
    let mut md =
        String::from("| measure | edge-ecli | libbpf baseline | ratio |\n|---|---:|---:|---:|\n");
    for (n, o, b, u) in rows {
        md.push_str(&format!(
            "| {n} | {o:.2} {u} | {b:.2} {u} | {:.2} |\n",
            o / b
        ));
    }
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-table.md");
    std::fs::write(&path, &md).unwrap();
    println!("\n{md}\n(table written to {})", path.display());
}
