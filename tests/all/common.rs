//! Shared by the integration tests: the committed examples, building the BPF C fixtures,
//! running edge-ecli, and checking that nothing of ours stays in the kernel.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The binary under test: the cargo-built one, or the one named by EDGE_ECLI_BIN (CI also runs
/// the kernel tests against the static release binary).
pub fn bin() -> String {
    std::env::var("EDGE_ECLI_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_edge-ecli").to_string())
}

/// A committed, ready-to-run example (examples/build.sh makes them): needs no compiler.
pub fn example(file: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/sigsnoop")
        .join(file)
        .to_string_lossy()
        .into_owned()
}

/// Skips (outside CI) or fails (CI=true) a test that cannot run here, saying why. A test
/// whose needs build.rs found missing is already `#[ignore]`d and counted so by the runner;
/// one that skips at run time anyway (run with --include-ignored, or a need build.rs cannot
/// see) is listed after the runner's summary, so a green run never hides it.
pub fn skip_unless(test: &str, missing: Option<String>, needs: &str) -> bool {
    match missing {
        None => true,
        Some(r) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{test}: cannot run under CI: {r}");
            }
            eprintln!("SKIPPED {test}: {r} ({needs})");
            record_skip(format!("{test}: {r} ({needs})"));
            false
        }
    }
}

static SKIPPED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Remembers a skip, and prints them all when the test binary exits (after the summary).
fn record_skip(line: String) {
    static AT_EXIT: std::sync::Once = std::sync::Once::new();
    SKIPPED.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    AT_EXIT.call_once(|| {
        extern "C" fn print_skips() {
            let v = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
            let mut e = std::io::stderr().lock();
            use std::io::Write;
            let _ = writeln!(
                e,
                "\n{} test(s) passed WITHOUT RUNNING (skipped at run time; CI=true fails them):",
                v.len()
            );
            for l in v.iter() {
                let _ = writeln!(e, "  SKIPPED {l}");
            }
        }
        // SAFETY: registers a plain function to run at exit; it only locks and writes.
        unsafe { libc::atexit(print_skips) };
    });
}

fn on_path(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
}

/// True when the fixtures can be built here: clang-19, bpftool and cc.
pub fn toolchain_available(test: &str) -> bool {
    let missing = ["clang-19", "bpftool", "cc"]
        .iter()
        .find(|c| !on_path(c))
        .map(|c| format!("{c} is not installed"));
    skip_unless(
        test,
        missing,
        "fixture tests build BPF C with clang-19; bash tests/setup.sh installs it",
    )
}

/// Kernel tests: root, BTF and the fixture toolchain.
pub fn kernel_ready(test: &str) -> bool {
    kernel_available(test) && toolchain_available(test)
}

/// Kernel tests run one at a time: leak checks look at the whole kernel.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct Fixtures {
    pub dir: PathBuf,
}

impl Fixtures {
    pub fn obj(&self, name: &str) -> String {
        self.dir
            .join(format!("{name}.bpf.o"))
            .to_string_lossy()
            .into_owned()
    }
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }
    pub fn trigger(&self) -> String {
        self.path("edge-trigger")
    }
    /// Packs `name.bpf.o` into `name.json` with edge-ecli itself, once per test binary, and
    /// atomically (tests running in parallel read it).
    pub fn packed(&self, name: &str) -> String {
        static DONE: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let out = self.path(&format!("{name}.json"));
        let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
        if !done.iter().any(|n| n == name) {
            let tmp = format!("{out}.{}.tmp", std::process::id());
            let o = Command::new(bin())
                .args(["pack", &self.obj(name), "-o", &tmp])
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "pack {name}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            std::fs::rename(&tmp, &out).unwrap();
            done.push(name.to_string());
        }
        out
    }
}

fn run_ok(cmd: &mut Command) {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

const BPF_FIXTURES: [&str; 25] = [
    "execcompat",
    "tpbtf",
    "flexargs",
    "usdt",
    "alternatives",
    "externs",
    "records",
    "maphist",
    "stacks",
    "sockfilter",
    "cgroupskb",
    "xdppkt",
    "sockops",
    "perfsample",
    "seqwrite",
    "metricmaps",
    "sigsnoop",
    "corerelo",
    "bootstrap",
    "opensnoop",
    "writehist",
    "uprobe",
    "badsection",
    "tcpkt",
    "badattach",
];

/// Builds every fixture once per test binary: vmlinux.h from this kernel's BTF, the BPF objects
/// with clang-19, and the trigger program with cc.
pub fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fixtures");
        std::fs::create_dir_all(&dir).unwrap();
        let vmlinux = dir.join("vmlinux.h");
        if !vmlinux.exists() {
            let o = Command::new("bpftool")
                .args([
                    "btf",
                    "dump",
                    "file",
                    "/sys/kernel/btf/vmlinux",
                    "format",
                    "c",
                ])
                .output()
                .expect("bpftool is needed to build the fixtures (apt-get install bpftool)");
            assert!(
                o.status.success(),
                "bpftool: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            std::fs::write(&vmlinux, o.stdout).unwrap();
        }
        let trigger = dir.join("edge-trigger");
        run_ok(
            Command::new("cc")
                .args(["-O1", "-o"])
                .arg(&trigger)
                .arg(src.join("trigger.c")),
        );
        let arch = match std::env::consts::ARCH {
            "x86_64" => "x86",
            "aarch64" => "arm64",
            "riscv64" => "riscv",
            a => a,
        };
        // The libbpf headers `edge-ecli build` carries (libbpf 1.7), ahead of the system's.
        let libbpf = Path::new(env!("CARGO_MANIFEST_DIR")).join("third_party/libbpf/include");
        // The C SDK's BPF side (<edge/compat.bpf.h>).
        let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("sdk/c");
        // clang-19 for one fixture: source name, output name, extra flags (-g is one of them).
        let bpf = |name: &str, out: &str, extra: &[String]| {
            run_ok(
                Command::new("clang-19")
                    .args(["-O2", "-target", "bpf", &format!("-D__TARGET_ARCH_{arch}")])
                    .args(extra)
                    .arg("-I")
                    .arg(&libbpf)
                    .arg("-I")
                    .arg(&sdk)
                    .arg("-I")
                    .arg(&dir)
                    .arg("-c")
                    .arg(src.join(format!("{name}.bpf.c")))
                    .arg("-o")
                    .arg(dir.join(format!("{out}.bpf.o"))),
            )
        };
        let trigger_path = |p: &str| format!("-DTRIGGER_PATH=\"{p}\"");
        let g = "-g".to_string();
        for name in BPF_FIXTURES {
            bpf(
                name,
                name,
                &[g.clone(), trigger_path(&trigger.to_string_lossy())],
            );
        }
        // A uprobe whose section names a binary that does not exist (--uprobe-target tests).
        bpf(
            "uprobe",
            "uprobe_elsewhere",
            &[g.clone(), trigger_path("/nonexistent/edge-trigger")],
        );
        // The same object without BTF, for the error tests.
        bpf("sigsnoop", "nobtf", &[]);
        // Only programs whose targets no kernel here has, for the nothing-attached error.
        bpf(
            "alternatives",
            "alternatives_missing",
            &[g.clone(), "-DEDGE_ONLY_MISSING".to_string()],
        );
        // Only a program whose tracepoint does not exist: nothing attaches.
        bpf(
            "badattach",
            "badattach_only",
            &[g.clone(), "-DEDGE_ONLY_BAD".to_string()],
        );
        // A strong extern no kernel has, for the extern error test.
        bpf(
            "externs",
            "externs_strong",
            &[g.clone(), "-DEDGE_STRONG_MISSING".to_string()],
        );
        Fixtures { dir }
    })
}

/// True when the kernel tests can run here. Outside CI a missing capability skips with a
/// reason; under CI=true it fails.
pub fn kernel_available(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let reason = if unsafe { libc::geteuid() } != 0 {
        Some("not running as root")
    } else if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        Some("no kernel BTF at /sys/kernel/btf/vmlinux")
    } else {
        None
    };
    skip_unless(
        test,
        reason.map(str::to_string),
        "kernel tests need root and BTF",
    )
}

/// A running edge-ecli with its output collected in the background.
pub struct Session {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Appends what `r` gives to `into`, line by line as it comes, in a thread (bytes that are not
/// UTF-8, as a guest may print, are kept as replacement characters, not the end of reading).
fn collect(r: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut br = BufReader::new(r);
        let mut line = Vec::new();
        while br.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            into.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&line));
            line.clear();
        }
    })
}

/// A piped child's stderr, collected as it comes; the thread ends at the child's exit.
pub fn collect_stderr(child: &mut Child) -> (Arc<Mutex<String>>, std::thread::JoinHandle<()>) {
    let text = Arc::new(Mutex::new(String::new()));
    let thread = collect(child.stderr.take().expect("stderr is piped"), text.clone());
    (text, thread)
}

impl Session {
    /// Starts `edge-ecli -v run ARGS` and waits until every program is attached.
    pub fn start(args: &[&str]) -> Session {
        Session::start_env(args, &[])
    }

    /// `start` with extra environment variables for edge-ecli.
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Session {
        let mut full = vec!["-v", "run"];
        full.extend_from_slice(args);
        Session::spawn(&full, "phases", env)
    }

    /// Starts `edge-ecli run ARGS` and waits until `ready` appears on stdout or stderr (a Wasm
    /// guest's own "attached" line).
    pub fn start_until(args: &[&str], ready: &str) -> Session {
        Session::start_until_env(args, ready, &[])
    }

    pub fn start_until_env(args: &[&str], ready: &str, env: &[(&str, &str)]) -> Session {
        let mut full = vec!["run"];
        full.extend_from_slice(args);
        Session::spawn(&full, ready, env)
    }

    fn spawn(args: &[&str], ready: &str, env: &[(&str, &str)]) -> Session {
        let mut cmd = Command::new(bin());
        cmd.args(args);
        Session::spawn_cmd(cmd, ready, env)
    }

    /// Starts `cmd` (which runs edge-ecli in some wrapper) and waits for `ready`.
    pub fn spawn_cmd(mut cmd: Command, ready: &str, env: &[(&str, &str)]) -> Session {
        let mut child = cmd
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            collect(child.stdout.take().unwrap(), stdout.clone()),
            collect(child.stderr.take().unwrap(), stderr.clone()),
        ];
        let mut s = Session {
            child,
            stdout,
            stderr,
            readers,
        };
        let t0 = Instant::now();
        loop {
            if s.stdout.lock().unwrap().contains(ready) || s.stderr.lock().unwrap().contains(ready)
            {
                return s;
            }
            if let Some(st) = s.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(50));
                panic!(
                    "edge-ecli exited ({st}) before {ready:?}; stdout:\n{}\nstderr:\n{}",
                    s.stdout.lock().unwrap(),
                    s.stderr.lock().unwrap()
                );
            }
            if t0.elapsed() > Duration::from_secs(60) {
                panic!(
                    "no {ready:?} within 60 s; stderr:\n{}",
                    s.stderr.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits until stdout satisfies `pred` (or 10 s pass) and returns it.
    pub fn wait_for(&self, pred: impl Fn(&str) -> bool) -> String {
        let t0 = Instant::now();
        loop {
            let out = self.stdout();
            if pred(&out) || t0.elapsed() > Duration::from_secs(10) {
                return out;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `sig` and collects everything.
    pub fn stop_with(self, sig: i32) -> Finished {
        // SAFETY: kill(2) with a pid we spawned; no memory is involved.
        unsafe { libc::kill(self.child.id() as i32, sig) };
        self.finish()
    }

    pub fn finish(mut self) -> Finished {
        let t0 = Instant::now();
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            if t0.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                panic!("edge-ecli did not exit within 20 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let stdout = self.stdout.lock().unwrap().clone();
        let stderr = self.stderr.lock().unwrap().clone();
        Finished {
            status,
            stdout,
            stderr,
        }
    }
}

/// Runs edge-ecli to completion with ARGS (no kernel wait) and returns its output.
pub fn run(args: &[&str]) -> Finished {
    run_env(args, &[])
}

/// `run` with extra environment variables for edge-ecli.
pub fn run_env(args: &[&str], env: &[(&str, &str)]) -> Finished {
    let o = Command::new(bin())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Finished {
        status: o.status,
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Starts `trigger seq N RATE`, which waits for a `go` line on its stdin before writing 1, 2
/// ... N bytes to /dev/null: its pid is known before its first event. Returns it and its pid.
pub fn generator(n: u32, rate: u32) -> (Child, String) {
    let c = Command::new(fixtures().trigger())
        .args(["seq", &n.to_string(), &rate.to_string()])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = c.id().to_string();
    (c, pid)
}

/// Runs the test trigger program and waits for it.
pub fn trigger(args: &[&str]) {
    let st = Command::new(fixtures().trigger())
        .args(args)
        .status()
        .unwrap();
    assert!(st.code().is_some(), "trigger {args:?} died: {st:?}");
}

/// Asserts that no program, map or link with one of these names is left in the kernel. The
/// kernel frees maps and programs after an RCU grace period, so a short wait is allowed.
pub fn assert_no_leaks(names: &[&str]) {
    let t0 = Instant::now();
    loop {
        match find_loaded(names) {
            None => return,
            Some(report) if t0.elapsed() > Duration::from_secs(3) => {
                panic!("still loaded 3 s after edge-ecli exited: {report}")
            }
            Some(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn find_loaded(names: &[&str]) -> Option<String> {
    for what in ["prog", "map"] {
        let o = Command::new("bpftool")
            .args([what, "show"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        for n in names {
            // The kernel keeps the first 15 bytes of a name.
            let short = &n[..n.len().min(15)];
            // One that a live process holds (another test, a daemon) is not left behind.
            if let Some(l) = text
                .lines()
                .find(|l| l.split_whitespace().any(|w| w == short) && !held_by_a_process(what, l))
            {
                return Some(format!("{what} {short}: {l}"));
            }
        }
    }
    // A link keeps its program alive, so no program of ours means no link of ours; still, list
    // links whose program is gone as a sanity check of the kernel's own cleanup.
    None
}

/// Whether some process has an fd of the program or map that a `bpftool show` line lists:
/// what is left behind is what only the kernel keeps (a link, a pin).
fn held_by_a_process(what: &str, line: &str) -> bool {
    let Some(id) = line.split(':').next().map(str::trim) else {
        return false;
    };
    let key = format!("{what}_id:\t{id}\n");
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|p| {
        std::fs::read_dir(p.path().join("fdinfo")).is_ok_and(|fds| {
            fds.flatten()
                .any(|f| std::fs::read_to_string(f.path()).is_ok_and(|t| t.contains(&key)))
        })
    })
}

/// Sends `sigs`, in order, to a fresh `sleep 30` child and reaps it; returns the child's pid.
pub fn signal_sleeper(sigs: &[i32]) -> String {
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    for &sig in sigs {
        // SAFETY: kill(2) with a pid we spawned; no memory is involved.
        unsafe { libc::kill(child.id() as i32, sig) };
    }
    let _ = child.wait();
    child.id().to_string()
}

pub fn json_lines(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.starts_with('{'))
        .map(str::to_string)
        .collect()
}

/// Extracts `"key":value` from a flat JSON line (values are numbers or simple strings).
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":");
    let start = line.find(&pat)? + pat.len();
    let rest = &line[start..];
    if let Some(s) = rest.strip_prefix('"') {
        return s.find('"').map(|e| &s[..e]);
    }
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(&rest[..end])
}

pub struct Guests {
    pub dir: PathBuf,
}

impl Guests {
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }
}

/// Builds the example Wasm apps once per test binary: the C ones with clang-19 for wasm32-wasi
/// (Debian's wasi-libc), the Rust one with cargo for wasm32-wasip1, each embedding the fixture
/// objects built by `fixtures()`.
pub fn guests() -> &'static Guests {
    static G: OnceLock<Guests> = OnceLock::new();
    G.get_or_init(|| {
        let fx = fixtures();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = fx.dir.join("wasm");
        std::fs::create_dir_all(&dir).unwrap();
        let cc = |src: &str, out: &str, extra: &[String]| {
            run_ok(
                Command::new("clang-19")
                    .args([
                        "--target=wasm32-wasi",
                        "--sysroot=/usr",
                        "-O2",
                        "-Wno-c23-extensions",
                    ])
                    .arg("-I")
                    .arg(root.join("sdk/c"))
                    .args(extra)
                    .arg(root.join(src))
                    .arg("-o")
                    .arg(dir.join(out)),
            )
        };
        let def = |k: &str, v: &str| format!("-D{k}=\"{v}\"");
        let table = "-Wl,--export-table".to_string();
        cc(
            "examples/c/sigsnoop.c",
            "sigsnoop.wasm",
            &[table.clone(), def("SIGSNOOP_OBJ", &fx.obj("sigsnoop"))],
        );
        cc(
            "examples/c/opensnoop.c",
            "opensnoop.wasm",
            &[table.clone(), def("OPENSNOOP_OBJ", &fx.obj("opensnoop"))],
        );
        cc(
            "examples/c/runqlat.c",
            "runqlat.wasm",
            &[table, def("WRITEHIST_OBJ", &fx.obj("writehist"))],
        );
        cc(
            "examples/c/ewasm_sigsnoop.c",
            "ewasm_sigsnoop.wasm",
            &[
                "-mexec-model=reactor".into(),
                "-Wl,--export=bpf_main".into(),
                "-Wl,--export=process_event".into(),
                "-Wl,--export=malloc".into(),
                def("SIGSNOOP_JSON", &fx.packed("sigsnoop")),
            ],
        );
        cc("tests/guests/wasi_probe.c", "wasi_probe.wasm", &[]);
        cc("tests/guests/print_sleep.c", "print_sleep.wasm", &[]);
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("guests");
        run_ok(
            Command::new(env!("CARGO"))
                .args([
                    "build",
                    "--release",
                    "--target",
                    "wasm32-wasip1",
                    "--manifest-path",
                ])
                .arg(root.join("examples/rust/bootstrap/Cargo.toml"))
                .env("CARGO_TARGET_DIR", &target)
                .env("BOOTSTRAP_BPF_OBJ", fx.obj("bootstrap"))
                .env_remove("RUSTFLAGS"),
        );
        std::fs::copy(
            target.join("wasm32-wasip1/release/bootstrap.wasm"),
            dir.join("bootstrap.wasm"),
        )
        .unwrap();
        Guests { dir }
    })
}

/// Runs `args` under a pseudo-terminal (`script`), as at a terminal; returns what it showed.
pub fn at_a_terminal(args: &[&str]) -> (bool, String) {
    let line: Vec<String> = std::iter::once(bin())
        .chain(args.iter().map(|a| a.to_string()))
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect();
    let o = Command::new("script")
        .args(["-qec", &line.join(" "), "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux)");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}
