//! Faults under a flood asking 1 M events/s (BPF_PROG_TEST_RUN of benches/bpf/flood.bpf.c into a perf
//! array, so the kernel counts what it drops) while the stdout reader reads, edge-ecli is
//! stopped and continued (SIGSTOP/SIGCONT), the reader stalls and then closes the pipe; then a
//! SIGKILL mid-flood; then a Wasm guest that traps mid-stream. Each time: no panic, the right
//! exit code, what was lost counted and reported, nothing left in the kernel.
//!
//! `EDGE_SOAK_SECS` sets the length (default 10, what CI runs); `tests/soak.sh SECS` runs a
//! long one and prints its figures.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::common::*;

#[path = "../../benches/support/mod.rs"]
#[allow(dead_code)]
mod support;

const RATE: u64 = 1_000_000;
const FLOOD: [&str; 2] = ["flood", "flood_events"];

fn soak_secs() -> f64 {
    std::env::var("EDGE_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10.0)
}

/// benches/bpf/flood.bpf.c built for a perf event array.
fn flood_object() -> &'static str {
    static O: OnceLock<String> = OnceLock::new();
    O.get_or_init(|| {
        let fx = fixtures();
        let out = fx.path("flood_perf.bpf.o");
        support::bpf_object(
            std::path::Path::new(&fx.path("")),
            "benches/bpf/flood.bpf.c",
            &out,
            &["-DPERF"],
        );
        out
    })
}

/// Drives the newest loaded `flood` program at RATE until dropped; counts what it offered.
struct Flood {
    stop: Arc<AtomicBool>,
    offered: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flood {
    fn start() -> Flood {
        let t0 = Instant::now();
        let fd = loop {
            if let Some(fd) = support::sys::prog_fd_by_name("flood") {
                break fd;
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "flood never loaded");
            std::thread::sleep(Duration::from_millis(20));
        };
        let (stop, offered) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let (s, o) = (stop.clone(), offered.clone());
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut sent = 0u64;
            while !s.load(Ordering::Relaxed) {
                // The program goes away when its process does: then there is nothing to drive.
                // Bursts of 1000 (56 KB): a real tracer's events come spread out, not in
                // bursts that alone overflow a perf buffer.
                if support::sys::test_run(fd, RATE / 1000) < 0 {
                    break;
                }
                sent += RATE / 1000;
                o.store(sent, Ordering::Relaxed);
                let due = start + Duration::from_secs_f64(sent as f64 / RATE as f64);
                if let Some(d) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
            }
            // SAFETY: closing an fd this test opened and no one else uses.
            unsafe { libc::close(fd) };
        });
        Flood {
            stop,
            offered,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.offered.load(Ordering::Relaxed)
    }
}

/// Runs the newest `flood` program once with one record on each online CPU; how many it wrote.
fn mark_every_cpu() -> u64 {
    let fd = support::sys::prog_fd_by_name("flood").expect("flood is loaded");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut n = 0;
    for cpu in 0..cpus {
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: a zeroed cpu_set_t with one bit set, for this thread only.
                let pinned = unsafe {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(cpu, &mut set);
                    libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
                };
                if pinned && support::sys::test_run(fd, 1) >= 0 {
                    n += 1;
                }
            });
        });
    }
    // SAFETY: closing an fd this test opened and no one else uses.
    unsafe { libc::close(fd) };
    n
}

/// Reads the child's stdout in a thread, counting event lines (not the results a raw object
/// prints at exit, `{"global":...}` and `{"map":...}`); `mode` 0 reads, 1 stalls, 2 closes.
fn spawn_reader(child: &mut Child) -> (Arc<AtomicU8>, Arc<AtomicU64>, std::thread::JoinHandle<()>) {
    let mode = Arc::new(AtomicU8::new(0));
    let lines = Arc::new(AtomicU64::new(0));
    let mut out = std::io::BufReader::with_capacity(1 << 16, child.stdout.take().unwrap());
    let (m, n) = (mode.clone(), lines.clone());
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut line = Vec::with_capacity(256);
        loop {
            match m.load(Ordering::Relaxed) {
                0 => {
                    line.clear();
                    match out.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {
                            let result =
                                line.starts_with(b"{\"global\":") || line.starts_with(b"{\"map\":");
                            if line.ends_with(b"\n") && !result {
                                n.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
                1 => std::thread::sleep(Duration::from_millis(10)),
                _ => return, // dropping `out` closes the pipe
            }
        }
    });
    (mode, lines, reader)
}

/// `edge-ecli -v run -j obj` with its stdout read and counted and its stderr collected,
/// once everything is attached.
fn traced(
    obj: &str,
) -> (
    Child,
    Arc<AtomicU8>,
    Arc<AtomicU64>,
    std::thread::JoinHandle<()>,
    Stderr,
) {
    let mut child = Command::new(bin())
        .args(["-v", "run", "-j", obj])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mode, lines, reader) = spawn_reader(&mut child);
    let errs = Stderr::of(&mut child);
    errs.wait_attached();
    (child, mode, lines, reader, errs)
}

/// The lost count edge-ecli reported on stderr.
fn reported_lost(err: &str) -> Option<u64> {
    err.split("lost ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
}

fn wait_timeout(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            panic!("edge-ecli did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) with a pid we spawned; no memory is involved.
    unsafe { libc::kill(child.id() as i32, sig) };
}

/// Collects the child's stderr in a thread (edge-ecli -v says when everything is attached).
struct Stderr {
    text: Arc<std::sync::Mutex<String>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Stderr {
    fn of(child: &mut Child) -> Stderr {
        let (text, thread) = collect_stderr(child);
        Stderr {
            text,
            thread: Some(thread),
        }
    }

    /// Waits for "all attached": events offered before the perf buffers are in place would
    /// be dropped by the kernel without a count.
    fn wait_attached(&self) {
        let t0 = Instant::now();
        while !self.text.lock().unwrap().contains("all attached") {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "never attached: {}",
                self.text.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// All of it, once the child has exited.
    fn finish(mut self) -> String {
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.text.lock().unwrap().clone()
    }
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn floods_with_stalls_stops_kills_and_traps() {
    let _g = serial();
    if !kernel_ready("floods_with_stalls_stops_kills_and_traps") {
        return;
    }
    let d = soak_secs();
    let obj = flood_object();
    let at = |f: f64| Duration::from_secs_f64(d * f);

    // 0. Accounting: every record offered is printed or counted lost while edge-ecli runs.
    // Output is written in batches; a batch that fills mid-buffer must not leave the rest of
    // a perf buffer unread (perf fds signal once per wake-up: a full buffer never signals).
    let (mut child, _, lines, reader, errs) = traced(obj);
    let flood = Flood::start();
    std::thread::sleep(at(0.2));
    let offered = flood.finish();
    // Quiet now: what reached the buffers is printed within moments.
    let t0 = Instant::now();
    let mut before_stop = lines.load(Ordering::Relaxed);
    while t0.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(200));
        let now = lines.load(Ordering::Relaxed);
        if now == before_stop && t0.elapsed() > Duration::from_secs(1) {
            break;
        }
        before_stop = now;
    }
    // The kernel reports a perf buffer's drops with the next record it writes there: one
    // marker per CPU carries whatever the flood's last drops left unreported.
    let markers = mark_every_cpu();
    std::thread::sleep(Duration::from_millis(500));
    let offered = offered + markers;
    before_stop = lines.load(Ordering::Relaxed);
    signal(&child, libc::SIGINT);
    let st = wait_timeout(&mut child, Duration::from_secs(10));
    reader.join().unwrap();
    let err = errs.finish();
    let total = lines.load(Ordering::Relaxed);
    let lost = reported_lost(&err).unwrap_or(0);
    eprintln!("soak 0 (accounting): offered {offered}, printed {before_stop} while running and {} at the stop, lost {lost}", total - before_stop);
    assert_eq!(st.code(), Some(0), "{err}");
    assert_eq!(total + lost, offered, "printed + lost != offered: {err}");
    assert_eq!(
        total, before_stop,
        "records stayed unread in a buffer until the stop"
    );
    assert_no_leaks(&FLOOD);

    // 1. Read, SIGSTOP/SIGCONT, stall, close: edge-ecli ends as when `head` closes its pipe
    // (exit 0), and says how much the kernel dropped while nobody read.
    let (mut child, mode, lines, reader, errs) = traced(obj);
    let flood = Flood::start();
    std::thread::sleep(at(0.25));
    signal(&child, libc::SIGSTOP);
    std::thread::sleep(at(0.1));
    signal(&child, libc::SIGCONT);
    std::thread::sleep(at(0.1));
    mode.store(1, Ordering::Relaxed);
    std::thread::sleep(at(0.15));
    mode.store(2, Ordering::Relaxed);
    reader.join().unwrap();
    let st = wait_timeout(&mut child, Duration::from_secs(10));
    let offered = flood.finish();
    let err = errs.finish();
    let read = lines.load(Ordering::Relaxed);
    eprintln!("soak 1 (read, SIGSTOP/SIGCONT, stall, close; {d} s): offered {offered}, read {read}, stderr: {err:?}");
    assert_eq!(st.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(read > 0, "nothing was read before the stall");
    // SIGSTOP at 1 M/s overflows the perf buffers: the kernel's count is reported.
    let lost = reported_lost(&err).unwrap_or_else(|| panic!("no lost count reported: {err}"));
    assert!(lost > 0 && lost <= offered, "lost {lost} of {offered}");
    assert_no_leaks(&FLOOD);

    // 2. SIGKILL mid-flood: the kernel frees everything with the process.
    let mut child = Command::new(bin())
        .args(["run", "-j", obj])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let flood = Flood::start();
    std::thread::sleep(at(0.15));
    signal(&child, libc::SIGKILL);
    let st = wait_timeout(&mut child, Duration::from_secs(10));
    let offered = flood.finish();
    eprintln!("soak 2 (SIGKILL): offered {offered}");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(libc::SIGKILL));
    assert_no_leaks(&FLOOD);

    // 3. A Wasm guest whose callback traps after 50000 events, mid-flood: exit 1, the trap
    // named on one line, the guest's objects released.
    let m = trapping_guest(obj);
    let mut child = Command::new(bin())
        .args(["run", &m])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read as it comes: a guest that writes much to stderr must not block on the pipe.
    let errs = Stderr::of(&mut child);
    let flood = Flood::start();
    let t0 = Instant::now();
    let limit = Duration::from_secs_f64(10.0 + d);
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let offered = flood.finish();
            panic!(
                "the guest did not end within {limit:?} (offered {offered}); stderr: {}",
                errs.finish()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let offered = flood.finish();
    let err = errs.finish();
    eprintln!("soak 3 (Wasm trap): offered {offered}, stderr: {err:?}");
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(
        err.contains("trapped") && err.contains("unreachable"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_no_leaks(&FLOOD);
}

/// A wasm_bpf guest that loads `obj`, attaches `flood`, polls `flood_events` and traps
/// (unreachable) in its callback at the 50000th event.
fn trapping_guest(obj: &str) -> String {
    let bytes = std::fs::read(obj).unwrap();
    let data: String = bytes.iter().map(|x| format!("\\{x:02x}")).collect();
    let at = 4096;
    let text = format!(
        r#"(module
  (import "wasm_bpf" "wasm_load_bpf_object" (func $load (param i32 i32) (result i64)))
  (import "wasm_bpf" "wasm_attach_bpf_program" (func $attach (param i64 i32 i32) (result i32)))
  (import "wasm_bpf" "wasm_bpf_map_fd_by_name" (func $fd (param i64 i32) (result i32)))
  (import "wasm_bpf" "wasm_bpf_buffer_poll" (func $poll (param i64 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") {pages})
  (global $seen (mut i32) (i32.const 0))
  (func $cb (param i32 i32 i32) (result i32)
    (global.set $seen (i32.add (global.get $seen) (i32.const 1)))
    (if (i32.eq (global.get $seen) (i32.const 50000)) (then unreachable))
    (i32.const 0))
  (table (export "__indirect_function_table") 1 funcref)
  (elem (i32.const 0) $cb)
  (data (i32.const 16) "flood\00")
  (data (i32.const 32) "flood_events\00")
  (data (i32.const {at}) "{data}")
  (func (export "_start") (local $h i64) (local $map i32) (local $r i32)
    (local.set $h (call $load (i32.const {at}) (i32.const {len})))
    (if (i64.eq (local.get $h) (i64.const 0)) (then (call $exit (i32.const 10))))
    (if (i32.ne (call $attach (local.get $h) (i32.const 16) (i32.const 0)) (i32.const 0))
      (then (call $exit (i32.const 11))))
    (local.set $map (call $fd (local.get $h) (i32.const 32)))
    (loop $again
      ;; A failing poll (not EINTR) ends the guest with 12, so the test says why.
      (local.set $r (call $poll (local.get $h) (local.get $map) (i32.const 0) (i32.const 0)
        (i32.const 2048) (i32.const 1024) (i32.const 100)))
      (if (i32.and (i32.lt_s (local.get $r) (i32.const 0)) (i32.ne (local.get $r) (i32.const -4)))
        (then (call $exit (i32.const 12))))
      (br $again))))"#,
        pages = (at + bytes.len()) / 65536 + 1,
        len = bytes.len()
    );
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("soak");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("trap_mid_stream.wasm");
    std::fs::write(&p, wat::parse_str(text).unwrap()).unwrap();
    p.to_string_lossy().into_owned()
}
