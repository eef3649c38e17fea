//! edge-ecli beside the native libbpf-tools (Debian's `libbpf-tools`), on the same workload at
//! the same time. Each native binary carries its BPF object (the ELF with machine BPF inside
//! it); that same object runs through `edge-ecli run`. Measured for both: the events each saw,
//! whether the fields both print agree, consumer CPU per event (every thread's schedstat),
//! time from exec to ready, peak RSS (VmHWM). Ratios are edge-ecli / native.
//!
//! `cargo bench --bench native` (root, a BPF kernel, `apt install libbpf-tools`);
//! EDGE_ECLI_BIN picks the edge-ecli binary (benches/run.sh passes the static release one).

#[path = "../tests/all/common.rs"]
mod common;
#[allow(dead_code)] // shared by the benchmarks; this one uses a part
mod support;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::bin;
use support::status_kb;

/// The BPF object inside a native tool's binary (a 64-bit little-endian ELF of machine 247).
fn embedded_object(tool: &str) -> Vec<u8> {
    let exe =
        std::fs::read(tool).unwrap_or_else(|e| panic!("{tool}: {e} (apt install libbpf-tools)"));
    let mut i = 0;
    while let Some(p) = exe[i..]
        .windows(7)
        .position(|w| w == b"\x7fELF\x02\x01\x01")
    {
        let at = i + p;
        let h = &exe[at..];
        if h.len() > 64 && u16::from_le_bytes([h[18], h[19]]) == 247 {
            let shoff = u64::from_le_bytes(h[40..48].try_into().unwrap()) as usize;
            let shnum = u16::from_le_bytes([h[60], h[61]]) as usize;
            return h[..shoff + shnum * 64].to_vec();
        }
        i = at + 4;
    }
    panic!("{tool} holds no BPF object");
}

/// A consumer: its output as it comes, and when it became ready.
struct Consumer {
    child: Child,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
    ready: Duration,
}

fn reader(mut r: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
}

/// Runs a native tool line-buffered, as at a terminal (piped, its printf buffers 4 KiB).
fn native(tool: &str, args: &[&str]) -> Vec<String> {
    let mut v = vec![
        "stdbuf".to_string(),
        "-oL".into(),
        format!("/usr/sbin/{tool}"),
    ];
    v.extend(args.iter().map(|a| a.to_string()));
    v
}

/// Starts `argv` and waits until `ready` shows on its stdout or stderr.
fn start(argv: &[String], ready: &str) -> Consumer {
    let t0 = Instant::now();
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let (out, err) = (Arc::default(), Arc::default());
    reader(child.stdout.take().unwrap(), Arc::clone(&out));
    reader(child.stderr.take().unwrap(), Arc::clone(&err));
    loop {
        let o: &Mutex<String> = &out;
        let e: &Mutex<String> = &err;
        if o.lock().unwrap().contains(ready) || e.lock().unwrap().contains(ready) {
            break;
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("{argv:?} exited ({st}): {}", e.lock().unwrap());
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "{argv:?} not ready");
        std::thread::sleep(Duration::from_micros(500));
    }
    Consumer {
        child,
        out,
        err,
        ready: t0.elapsed(),
    }
}

/// CPU time of every thread of a process, in ns (schedstat: finer than the 10 ms ticks).
fn cpu_ns(pid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    dir.flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Stops a consumer (SIGINT, as Ctrl-C) and returns (stdout, stderr, peak RSS kB, CPU ns).
fn stop(mut c: Consumer) -> (String, String, u64, u64) {
    let pid = c.child.id();
    let (hwm, cpu) = (status_kb(pid, "VmHWM"), cpu_ns(pid));
    // SAFETY: pid is our child.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let t0 = Instant::now();
    while c.child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = c.child.kill();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100)); // the readers' last bytes
    let out = c.out.lock().unwrap().clone();
    let err = c.err.lock().unwrap().clone();
    (out, err, hwm, cpu)
}

struct Row {
    tool: &'static str,
    what: String,
    edge: f64,
    native: f64,
    unit: &'static str,
}

fn row(
    rows: &mut Vec<Row>,
    tool: &'static str,
    what: &str,
    edge: f64,
    native: f64,
    unit: &'static str,
) {
    rows.push(Row {
        tool,
        what: what.into(),
        edge,
        native,
        unit,
    });
}

fn tmp_object(tool: &str) -> String {
    let p = format!("{}/native-{tool}.bpf.o", env!("CARGO_TARGET_TMPDIR"));
    std::fs::write(&p, embedded_object(&format!("/usr/sbin/{tool}"))).unwrap();
    p
}

/// Lines mentioning `marker`, by their second field (the pid in both tools' columns).
fn pids(out: &str, marker: &str) -> Vec<String> {
    let mut v: Vec<String> = out
        .lines()
        .filter(|l| l.contains(marker))
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect();
    v.sort();
    v
}

/// execsnoop at exec rates: N execs of /bin/true, one after the other.
fn execsnoop(rows: &mut Vec<Row>) {
    let obj = tmp_object("execsnoop");
    let native = start(&native("execsnoop", &[]), "PCOMM");
    let edge = start(&[bin(), "run".into(), obj], "TIME");
    let marker = format!("edge-bench-{}", std::process::id());
    let (c0n, c0e) = (cpu_ns(native.child.id()), cpu_ns(edge.child.id()));
    let n = 2000;
    let t0 = Instant::now();
    for _ in 0..n {
        Command::new("/bin/true").arg(&marker).status().unwrap();
    }
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(500));
    let (e_ready, n_ready) = (edge.ready, native.ready);
    let (eo, _, e_hwm, e_cpu) = stop(edge);
    let (no, _, n_hwm, n_cpu) = stop(native);
    let (ep, np) = (pids(&eo, &marker), pids(&no, &marker));
    let same_args = eo
        .lines()
        .filter(|l| l.contains(&marker))
        .all(|l| l.trim_end().ends_with(&format!("/bin/true {marker}")));
    println!(
        "execsnoop: {n} execs at {rate:.0}/s; edge-ecli saw {}, native {}; the same pids: {}; args as native prints them: {same_args}",
        ep.len(),
        np.len(),
        ep == np
    );
    row(
        rows,
        "execsnoop",
        &format!("events seen of {n} execs"),
        ep.len() as f64,
        np.len() as f64,
        "",
    );
    row(
        rows,
        "execsnoop",
        &format!("CPU per event at {rate:.0} execs/s"),
        (e_cpu - c0e) as f64 / n as f64 / 1e3,
        (n_cpu - c0n) as f64 / n as f64 / 1e3,
        "us",
    );
    row(
        rows,
        "execsnoop",
        "exec to ready",
        e_ready.as_secs_f64() * 1e3,
        n_ready.as_secs_f64() * 1e3,
        "ms",
    );
    row(
        rows,
        "execsnoop",
        "peak RSS",
        e_hwm as f64 / 1024.0,
        n_hwm as f64 / 1024.0,
        "MiB",
    );
}

/// sigsnoop under a flood of kill(2) from this process to a child that ignores the signal.
fn sigsnoop(rows: &mut Vec<Row>) {
    let obj = tmp_object("sigsnoop");
    let me = std::process::id().to_string();
    let native = start(&native("sigsnoop", &["-p", &me]), "TIME");
    // The native tool attaches only the signal_generate tracepoint by default: so does this.
    let edge = start(
        &[
            bin(),
            "run".into(),
            "--only".into(),
            "sig_trace".into(),
            obj,
            "--filtered_pid".into(),
            me,
        ],
        "TIME",
    );
    let mut target = Command::new("sh")
        .args(["-c", "trap '' USR1; exec sleep 60"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let tpid = target.id() as i32;
    let (c0n, c0e) = (cpu_ns(native.child.id()), cpu_ns(edge.child.id()));
    let t0 = Instant::now();
    let mut sent = 0u64;
    while t0.elapsed() < Duration::from_secs(1) {
        for _ in 0..64 {
            // SAFETY: signalling our own child, which ignores SIGUSR1.
            unsafe { libc::kill(tpid, libc::SIGUSR1) };
        }
        sent += 64;
    }
    let rate = sent as f64 / t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(1000));
    let (eo, ee, e_hwm, e_cpu) = stop(edge);
    let (no, _, n_hwm, n_cpu) = stop(native);
    let _ = target.kill();
    let _ = target.wait();
    let t = format!(" {tpid} ");
    let e_seen = eo
        .lines()
        .filter(|l| l.contains(&t) && l.contains(" 10 "))
        .count();
    let n_seen = no
        .lines()
        .filter(|l| l.contains(&t) && l.contains(" 10 "))
        .count();
    let lost = ee
        .lines()
        .find_map(|l| {
            l.split("lost ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    println!("sigsnoop: {sent} kill(2) at {rate:.0}/s; edge-ecli printed {e_seen} (and counted {lost} lost), native printed {n_seen}");
    row(
        rows,
        "sigsnoop",
        &format!("events printed of {sent} sent"),
        e_seen as f64,
        n_seen as f64,
        "",
    );
    let per = |cpu: u64, seen: usize| cpu as f64 / seen.max(1) as f64 / 1e3;
    row(
        rows,
        "sigsnoop",
        &format!("CPU per event at {rate:.0} signals/s"),
        per(e_cpu - c0e, e_seen),
        per(n_cpu - c0n, n_seen),
        "us",
    );
    row(
        rows,
        "sigsnoop",
        "peak RSS",
        e_hwm as f64 / 1024.0,
        n_hwm as f64 / 1024.0,
        "MiB",
    );
}

/// syscount: results in a map, a getppid(2) flood of this process, counts compared at exit.
fn syscount(rows: &mut Vec<Row>) {
    let obj = tmp_object("syscount");
    let me = std::process::id().to_string();
    let native = start(&native("syscount", &["-p", &me]), "Tracing");
    let edge = start(
        &[bin(), "run".into(), obj, "--filter_pid".into(), me],
        "attached",
    );
    let (c0n, c0e) = (cpu_ns(native.child.id()), cpu_ns(edge.child.id()));
    let n = 1_000_000u64;
    for _ in 0..n {
        // SAFETY: getppid has no preconditions.
        unsafe { libc::syscall(libc::SYS_getppid) };
    }
    std::thread::sleep(Duration::from_millis(300));
    let (e_ready, n_ready) = (edge.ready, native.ready);
    let (eo, _, e_hwm, e_cpu) = stop(edge);
    let (no, _, n_hwm, n_cpu) = stop(native);
    let edge_count = eo
        .lines()
        .find(|l| l.starts_with(&format!("@data[{}]:", libc::SYS_getppid)))
        .and_then(|l| {
            l.split(".count = ")
                .nth(1)?
                .split(',')
                .next()?
                .trim()
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    let native_count = no
        .lines()
        .find(|l| l.trim_start().starts_with("getppid"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    println!("syscount: {n} getppid(2); edge-ecli counted {edge_count}, native {native_count}");
    row(
        rows,
        "syscount",
        &format!("getppid counted of {n}"),
        edge_count as f64,
        native_count as f64,
        "",
    );
    row(
        rows,
        "syscount",
        "consumer CPU for the flood",
        (e_cpu - c0e) as f64 / 1e6,
        (n_cpu - c0n) as f64 / 1e6,
        "ms",
    );
    row(
        rows,
        "syscount",
        "exec to ready",
        e_ready.as_secs_f64() * 1e3,
        n_ready.as_secs_f64() * 1e3,
        "ms",
    );
    row(
        rows,
        "syscount",
        "peak RSS",
        e_hwm as f64 / 1024.0,
        n_hwm as f64 / 1024.0,
        "MiB",
    );
}

fn main() {
    if !std::path::Path::new("/usr/sbin/execsnoop").exists() {
        eprintln!("native benchmark skipped: Debian's libbpf-tools is not installed (apt install libbpf-tools)");
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("native benchmark skipped: not root");
        return;
    }
    let mut rows = Vec::new();
    execsnoop(&mut rows);
    sigsnoop(&mut rows);
    syscount(&mut rows);
    println!("\n| tool | measure | edge-ecli | native | ratio |\n|---|---|---:|---:|---:|");
    for r in &rows {
        let ratio = if r.native > 0.0 {
            r.edge / r.native
        } else {
            f64::NAN
        };
        let f = |v: f64| {
            if r.unit.is_empty() {
                format!("{v:.0}")
            } else {
                format!("{v:.2} {}", r.unit)
            }
        };
        println!(
            "| {} | {} | {} | {} | {ratio:.2} |",
            r.tool,
            r.what,
            f(r.edge),
            f(r.native)
        );
    }
}
