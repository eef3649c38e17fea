//! Wasm apps on the real kernel: the example guests (C and Rust, wasm_bpf and env ABIs), WASI,
//! and hostile modules. After each run nothing the guest created is left in the kernel.

use crate::common::*;

fn ready(test: &str) -> bool {
    kernel_ready(test)
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn c_sigsnoop_flags_and_signal_names() {
    let _g = serial();
    if !ready("c_sigsnoop_flags_and_signal_names") {
        return;
    }
    let me = std::process::id().to_string();
    let wasm = guests().path("sigsnoop.wasm");
    // -p keeps only our signals; -s keeps only SIGUSR1.
    let s = Session::start_until(&[&wasm, "-p", &me, "-s", "10"], "tracing signals");
    let cpid = signal_sleeper(&[libc::SIGUSR2, libc::SIGUSR1]);
    let out = s.wait_for(|o| o.contains("SIGUSR1"));
    let f = s.stop_with(libc::SIGINT);
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    let rows = json_lines(&out);
    let row = rows
        .iter()
        .find(|l| field(l, "tpid") == Some(cpid.as_str()))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(field(row, "pid"), Some(me.as_str()));
    assert_eq!(field(row, "sig"), Some("10"));
    assert_eq!(field(row, "sig_name"), Some("SIGUSR1"));
    assert!(
        !out.contains("SIGUSR2"),
        "-s 10 let SIGUSR2 through:\n{out}"
    );
    assert!(
        rows.iter().all(|l| field(l, "pid") == Some(me.as_str())),
        "-p let others through:\n{out}"
    );
    assert_no_leaks(&["sig_trace", "sig_events"]);

    // -k: kill only.
    let s = Session::start_until(&[&wasm, "-p", &me, "-k"], "tracing signals");
    signal_sleeper(&[libc::SIGUSR1, libc::SIGKILL]);
    let out = s.wait_for(|o| o.contains("SIGKILL"));
    let f = s.stop_with(libc::SIGTERM);
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    assert!(out.contains("\"sig_name\":\"SIGKILL\""), "{out}");
    assert!(!out.contains("SIGUSR1"), "{out}");
    assert_no_leaks(&["sig_trace", "sig_events"]);
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn c_opensnoop_filters_in_wasm_and_stops_by_itself() {
    let _g = serial();
    if !ready("c_opensnoop_filters_in_wasm_and_stops_by_itself") {
        return;
    }
    let missing = format!("/nonexistent/edge-ecli-wasm-{}", std::process::id());
    let wasm = guests().path("opensnoop.wasm");
    let s = Session::start_until(
        &[
            &wasm,
            "-n",
            "edge-trigger",
            "-x",
            "-f",
            "/nonexistent/edge-ecli-wasm",
            "-c",
            "1",
        ],
        "PID     COMM",
    );
    trigger(&["open", "/etc/hostname"]);
    trigger(&["open", &missing]);
    // -c 1: the guest's callback returns non-zero after one event and the guest exits.
    let f = s.finish();
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    let rows: Vec<&str> = f.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{}", f.stdout);
    let cols: Vec<&str> = rows[0].split_whitespace().collect();
    assert_eq!(
        &cols[1..],
        &["edge-trigger", "-1", "2", missing.as_str()],
        "{}",
        rows[0]
    );
    assert_no_leaks(&["open_enter", "open_exit", "open_rb", "open_start"]);
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn rust_bootstrap_exec_and_exit() {
    let _g = serial();
    if !ready("rust_bootstrap_exec_and_exit") {
        return;
    }
    let wasm = guests().path("bootstrap.wasm");
    let s = Session::start_until(&[&wasm, "-c", "edge-trigger"], "TIME     EVENT");
    trigger(&["exit", "9"]);
    let out = s.wait_for(|o| o.contains("[9]"));
    let f = s.stop_with(libc::SIGINT);
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    let exec = out
        .lines()
        .find(|l| l.contains("EXEC"))
        .unwrap_or_else(|| panic!("{out}\nstderr:\n{}", f.stderr));
    assert!(exec.ends_with(&fixtures().trigger()), "{exec}");
    let exit = out
        .lines()
        .skip(1)
        .find(|l| l.contains("EXIT"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        exit.contains("edge-trigger") && exit.contains("[9]"),
        "{exit}"
    );
    assert_no_leaks(&["boot_exec", "boot_exit", "boot_rb"]);
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn c_runqlat_reads_histogram_with_map_operate() {
    let _g = serial();
    if !ready("c_runqlat_reads_histogram_with_map_operate") {
        return;
    }
    let wasm = guests().path("runqlat.wasm");
    let s = Session::start_until(
        &[&wasm, "-c", "edge-trigger", "-i", "700", "-n", "2"],
        "tracing write sizes",
    );
    trigger(&["write", "1", "2", "3", "100"]);
    let f = s.finish();
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    let want = "key = 0
     bytes               : count    distribution
         0 -> 1          : 1        |********************                    |
         2 -> 3          : 2        |****************************************|
         4 -> 7          : 0        |                                        |
         8 -> 15         : 0        |                                        |
        16 -> 31         : 0        |                                        |
        32 -> 63         : 0        |                                        |
        64 -> 127        : 1        |********************                    |
";
    assert!(f.stdout.contains(want), "{}", f.stdout);
    assert_no_leaks(&["hist_write", "hists"]);
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn env_abi_module_with_embedded_package() {
    let _g = serial();
    if !ready("env_abi_module_with_embedded_package") {
        return;
    }
    let me = std::process::id().to_string();
    let wasm = guests().path("ewasm_sigsnoop.wasm");
    let s = Session::start_until(&[&wasm, &me], "tracing signals");
    let cpid = signal_sleeper(&[libc::SIGUSR2]);
    let out = s.wait_for(|o| o.contains("SIGUSR2"));
    let f = s.stop_with(libc::SIGINT);
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    let row = json_lines(&out)
        .into_iter()
        .find(|l| field(l, "tpid") == Some(cpid.as_str()));
    let row = row.unwrap_or_else(|| panic!("{out}"));
    assert_eq!(
        field(&row, "pid"),
        Some(me.as_str()),
        "the global set in Wasm filters by pid"
    );
    assert_eq!(field(&row, "sig_name"), Some("SIGUSR2"));
    assert_no_leaks(&["sig_trace", "sig_events"]);
}

#[cfg_attr(edge_skip_toolchain, ignore = "needs clang-19, bpftool")]
#[test]
fn wasi_args_env_dirs_clocks_and_exit_code() {
    if !toolchain_available("wasi_args_env_dirs_clocks_and_exit_code") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("edge-ecli-wasi-{}", std::process::id()));
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("hello.txt"), "hello from host\n").unwrap();
    std::fs::write(dir.join("escape.txt"), "secret\n").unwrap();
    let grant = format!("{}:/data", data.display());
    let f = run(&[
        "run",
        "--env",
        "EDGE_PROBE=42",
        "--dir",
        &grant,
        &guests().path("wasi_probe.wasm"),
        "one",
    ]);
    assert_eq!(
        f.status.code(),
        Some(5),
        "proc_exit's code is ours: {}",
        f.stderr
    );
    for want in [
        "argc=2 argv0=wasi_probe argv1=one",
        "env=42 home=(unset)",
        "read=hello from host",
        "escape=refused",
        "outside=refused",
        "slept_ms_ge_20=yes",
        "random=yes",
    ] {
        assert!(
            f.stdout.lines().any(|l| l == want),
            "{want:?} missing:\n{}",
            f.stdout
        );
    }
    assert_eq!(
        std::fs::read_to_string(data.join("out.txt")).unwrap(),
        "written by the guest\n"
    );
    let f = run(&["run", &guests().path("wasi_probe.wasm")]);
    assert!(
        f.stdout.contains("read=(cannot open)"),
        "no --dir, no files: {}",
        f.stdout
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A WAT module: imports as given, memory, and a `_start` with `body`.
fn wat_module(imports: &str, body: &str, data: &str) -> Vec<u8> {
    let text = format!(
        r#"(module {imports}
             (memory (export "memory") 1)
             {data}
             (func (export "_start") {body}))"#
    );
    wat::parse_str(text).unwrap()
}

fn write_wasm(name: &str, bytes: &[u8]) -> String {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasm-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name).to_string_lossy().into_owned();
    std::fs::write(&p, bytes).unwrap();
    p
}

fn expect_wasm_error(path: &str, extra: &[&str], want: &[&str]) -> Finished {
    let mut args = vec!["run"];
    args.extend(extra);
    args.push(path);
    let f = run(&args);
    assert_eq!(f.status.code(), Some(1), "{}", f.stderr);
    let last = f.stderr.lines().last().unwrap_or("");
    for w in want {
        assert!(
            last.contains(w),
            "{w:?} not in {last:?}\nstderr:\n{}",
            f.stderr
        );
    }
    assert!(!f.stderr.contains("panicked"));
    f
}

#[test]
fn invalid_modules_are_refused_clearly() {
    let bad = write_wasm("invalid.wasm", b"\0asm\x01\0\0\0\x01\xff");
    expect_wasm_error(&bad, &[], &[&bad, "invalid Wasm module"]);
    let no_start = write_wasm(
        "nostart.wasm",
        &wat::parse_str(r#"(module (memory (export "memory") 1))"#).unwrap(),
    );
    expect_wasm_error(&no_start, &[], &["exports neither _start nor bpf_main"]);
    let imports = write_wasm(
        "imports.wasm",
        &wat_module(
            r#"(import "env" "no_such_fn" (func)) (import "mystery" "thing" (func (param i32)))"#,
            "",
            "",
        ),
    );
    expect_wasm_error(&imports, &[], &["env.no_such_fn", "mystery.thing"]);
    let trap = write_wasm("trap.wasm", &wat_module("", "unreachable", ""));
    expect_wasm_error(&trap, &[], &["trapped in _start", "unreachable"]);
}

#[test]
fn hostile_pointers_get_errors_not_host_memory() {
    // Each host call gets an out-of-range pointer; the module exits with the sum of the
    // distinct results it saw, so the test checks every one of them.
    let imports = r#"
        (import "wasm_bpf" "wasm_load_bpf_object" (func $load (param i32 i32) (result i64)))
        (import "wasm_bpf" "wasm_bpf_map_fd_by_name" (func $fd (param i64 i32) (result i32)))
        (import "wasm_bpf" "wasm_bpf_map_operate" (func $op (param i32 i32 i32 i32 i32 i64) (result i32)))
        (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))"#;
    let body = r#"
        (local $acc i32)
        ;; object beyond the end of memory -> handle 0
        (if (i64.ne (call $load (i32.const 0xfff0) (i32.const 0x100000)) (i64.const 0))
          (then (call $exit (i32.const 100))))
        ;; map name pointer out of range on an unknown object -> negative
        (if (i32.ge_s (call $fd (i64.const 1) (i32.const -16)) (i32.const 0))
          (then (call $exit (i32.const 101))))
        ;; map_operate on a fd that is not one of ours (stdout) -> -EBADF
        (local.set $acc (i32.sub (i32.const 0) (call $op (i32.const 1) (i32.const 1) (i32.const -8) (i32.const 0) (i32.const 0) (i64.const 0))))
        ;; fd_write with an iovec pointing outside memory -> EFAULT (21)
        (i32.store (i32.const 0) (i32.const 0xfffff0))
        (i32.store (i32.const 4) (i32.const 64))
        (local.set $acc (i32.add (local.get $acc) (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16))))
        (call $exit (local.get $acc))"#;
    let m = write_wasm("pointers.wasm", &wat_module(imports, body, ""));
    let f = run(&["run", &m]);
    // 9 (EBADF from map_operate) + 21 (EFAULT from fd_write)
    assert_eq!(f.status.code(), Some(30), "stderr: {}", f.stderr);
    assert!(f.stderr.contains("outside guest memory"), "{}", f.stderr);
}

#[test]
fn guest_memory_is_capped() {
    let body = r#"
        (if (i32.eq (memory.grow (i32.const 1000)) (i32.const -1))
          (then (call $exit (i32.const 3))))
        (call $exit (i32.const 4))"#;
    let m = write_wasm(
        "grow.wasm",
        &wat_module(
            r#"(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))"#,
            body,
            "",
        ),
    );
    assert_eq!(
        run(&["run", "--max-memory", "16", &m]).status.code(),
        Some(3),
        "64 MiB more than 16 MiB"
    );
    assert_eq!(
        run(&["run", "--max-memory", "256", &m]).status.code(),
        Some(4)
    );
}

/// WAT data string for arbitrary bytes.
fn wat_bytes(b: &[u8]) -> String {
    b.iter().map(|x| format!("\\{x:02x}")).collect()
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn spinning_guest_is_stopped_and_its_objects_released() {
    let _g = serial();
    if !ready("spinning_guest_is_stopped_and_its_objects_released") {
        return;
    }
    let obj = std::fs::read(fixtures().obj("sigsnoop")).unwrap();
    let imports = r#"
        (import "wasm_bpf" "wasm_load_bpf_object" (func $load (param i32 i32) (result i64)))
        (import "wasm_bpf" "wasm_attach_bpf_program" (func $attach (param i64 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))"#;
    let body = format!(
        r#"(local $h i64)
        (local.set $h (call $load (i32.const 1024) (i32.const {len})))
        (if (i64.eq (local.get $h) (i64.const 0)) (then (call $exit (i32.const 10))))
        (if (i32.ne (call $attach (local.get $h) (i32.const 16) (i32.const 0)) (i32.const 0))
          (then (call $exit (i32.const 11))))
        (loop $spin (br $spin))"#,
        len = obj.len()
    );
    let data = format!(
        r#"(data (i32.const 16) "sig_trace\00") (data (i32.const 1024) "{}")"#,
        wat_bytes(&obj)
    );
    let text = format!(
        r#"(module {imports} (memory (export "memory") {pages}) {data} (func (export "_start") {body}))"#,
        pages = (obj.len() + 1024) / 65536 + 1
    );
    let m = write_wasm("spin.wasm", &wat::parse_str(text).unwrap());

    // --timeout: the guest does not end by itself, so it is stopped by force after the grace
    // period. The stop was asked for: exit 0, said on stderr, never called a trap.
    let t0 = std::time::Instant::now();
    let f = run(&["run", "--timeout", "0.5", &m]);
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    assert!(
        f.stderr.contains("stopped the guest by force"),
        "{}",
        f.stderr
    );
    assert!(!f.stderr.contains("trap"), "{}", f.stderr);
    assert!(t0.elapsed() < std::time::Duration::from_secs(10));
    assert_no_leaks(&["sig_trace", "sig_events"]);

    // Ctrl-C while it spins: same.
    let child = std::process::Command::new(bin())
        .args(["run", &m])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until this child holds a BPF link (its program is attached), then interrupt.
    // (Not `bpftool prog show`: another test's sig_trace may be loaded at the same time.)
    let holds_link = |pid: u32| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| {
                d.flatten().any(|e| {
                    std::fs::read_link(e.path())
                        .map(|l| l.to_string_lossy().contains("bpf_link"))
                        .unwrap_or(false)
                })
            })
            .unwrap_or(false)
    };
    let t0 = std::time::Instant::now();
    while !holds_link(child.id()) {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(30),
            "the guest never attached"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: kill(2) with a pid we spawned; no memory is involved.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stderr).contains("stopped the guest by force"));
    assert_no_leaks(&["sig_trace", "sig_events"]);
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn object_that_fails_to_load_reaches_the_user() {
    let _g = serial();
    if !ready("object_that_fails_to_load_reaches_the_user") {
        return;
    }
    let imports = r#"
        (import "wasm_bpf" "wasm_load_bpf_object" (func $load (param i32 i32) (result i64)))
        (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))"#;
    let body = r#"(if (i64.eq (call $load (i32.const 64) (i32.const 64)) (i64.const 0))
                    (then (call $exit (i32.const 1))))"#;
    let elf_no_bpf = std::fs::read("/bin/true").unwrap();
    let data = format!(
        r#"(data (i32.const 64) "{}")"#,
        wat_bytes(&elf_no_bpf[..64])
    );
    let m = write_wasm("badobj.wasm", &wat_module(imports, body, &data));
    let f = run(&["run", &m]);
    assert_eq!(f.status.code(), Some(1));
    assert!(
        f.stderr.contains("wasm_load_bpf_object:") && f.stderr.contains("ELF"),
        "{}",
        f.stderr
    );
}

/// A module that loads sigsnoop's object from its data, attaches `sig_trace` and polls
/// `sig_events` up to 300 times with `poll` (one `$poll` call with $h and $fd in scope), after
/// `poll_import` and the extra module `items` (callbacks, tables, globals).
fn sigsnoop_poller(poll_import: &str, items: &str, poll: &str) -> Vec<u8> {
    let obj = std::fs::read(fixtures().obj("sigsnoop")).unwrap();
    let text = format!(
        r#"(module
          (import "wasm_bpf" "wasm_load_bpf_object" (func $load (param i32 i32) (result i64)))
          (import "wasm_bpf" "wasm_attach_bpf_program" (func $attach (param i64 i32 i32) (result i32)))
          (import "wasm_bpf" "wasm_bpf_map_fd_by_name" (func $fd (param i64 i32) (result i32)))
          {poll_import}
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (memory (export "memory") {pages})
          (data (i32.const 16) "sig_trace\00")
          (data (i32.const 32) "sig_events\00")
          (data (i32.const 8192) "{obj}")
          {items}
          (func (export "_start")
            (local $h i64) (local $fd i32) (local $i i32)
            (local.set $h (call $load (i32.const 8192) (i32.const {len})))
            (if (i64.eq (local.get $h) (i64.const 0)) (then (call $exit (i32.const 10))))
            (if (call $attach (local.get $h) (i32.const 16) (i32.const 0)) (then (call $exit (i32.const 11))))
            (local.set $fd (call $fd (local.get $h) (i32.const 32)))
            (if (i32.lt_s (local.get $fd) (i32.const 0)) (then (call $exit (i32.const 12))))
            (loop $again
              {poll}
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br_if $again (i32.lt_u (local.get $i) (i32.const 300))))
            (call $exit (i32.const 14))))"#,
        pages = (obj.len() + 8192) / 65536 + 1,
        obj = wat_bytes(&obj),
        len = obj.len()
    );
    wat::parse_str(text).unwrap()
}

/// Sends SIGUSR1 to a process that ignores it (so each one is delivered and traced) until
/// `guest` has exited.
fn signal_until_exit(guest: &mut std::process::Child) {
    let mut target = std::process::Command::new("sh")
        .args(["-c", "trap '' USR1; sleep 60"])
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while guest.try_wait().unwrap().is_none() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(40),
            "the guest never ended"
        );
        // SAFETY: kill(2) with a pid we spawned; no memory is involved.
        unsafe { libc::kill(target.id() as i32, libc::SIGUSR1) };
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = target.kill();
    let _ = target.wait();
}

/// TinyGo guests cannot pass table indices: they import `callback-wrapper.wasm_bpf_buffer_poll`
/// and export `go-callback`. This module polls sigsnoop's perf buffer that way and exits 42
/// once go-callback has seen a SIGUSR1 event (sig at offset 8 of struct event).
#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn tinygo_callback_wrapper_abi() {
    let _g = serial();
    if !ready("tinygo_callback_wrapper_abi") {
        return;
    }
    let module = sigsnoop_poller(
        r#"(import "callback-wrapper" "wasm_bpf_buffer_poll" (func $poll (param i64 i32 i32 i32 i32 i32) (result i32)))"#,
        r#"(global $seen (mut i32) (i32.const 0))
          (func (export "go-callback") (param $ctx i32) (param $data i32) (param $size i32) (result i32)
            (if (i32.and (i32.ge_u (local.get $size) (i32.const 32))
                         (i32.eq (i32.load offset=8 (local.get $data)) (i32.const 10)))
              (then (global.set $seen (i32.const 1))))
            (i32.const 0))"#,
        r#"(if (i32.lt_s (call $poll (local.get $h) (local.get $fd) (i32.const 0) (i32.const 1024) (i32.const 4096) (i32.const 100)) (i32.const 0))
                (then (call $exit (i32.const 13))))
              (if (global.get $seen) (then (call $exit (i32.const 42))))"#,
    );
    let m = write_wasm("tinygo.wasm", &module);
    let mut ecli = std::process::Command::new(bin())
        .args(["run", &m])
        .spawn()
        .unwrap();
    signal_until_exit(&mut ecli);
    assert_eq!(ecli.wait().unwrap().code(), Some(42));
    assert_no_leaks(&["sig_trace", "sig_events"]);
}

/// A trap inside a buffer callback names the callback and the reason; the objects the guest
/// loaded are released.
#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn trap_in_callback_is_named() {
    let _g = serial();
    if !ready("trap_in_callback_is_named") {
        return;
    }
    let module = sigsnoop_poller(
        r#"(import "wasm_bpf" "wasm_bpf_buffer_poll" (func $poll (param i64 i32 i32 i32 i32 i32 i32) (result i32)))"#,
        r#"(table (export "__indirect_function_table") 1 funcref)
          (elem (i32.const 0) $cb)
          (func $cb (param i32 i32 i32) (result i32) unreachable)"#,
        r#"(drop (call $poll (local.get $h) (local.get $fd) (i32.const 0) (i32.const 0) (i32.const 1024) (i32.const 4096) (i32.const 100)))"#,
    );
    let m = write_wasm("trapcb.wasm", &module);
    let mut ecli = std::process::Command::new(bin())
        .args(["run", &m])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    signal_until_exit(&mut ecli);
    let o = ecli.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("buffer callback") && err.contains("unreachable"),
        "{err}"
    );
    assert_no_leaks(&["sig_trace", "sig_events"]);
}

/// A guest that ignores EINTR: `while (1) { printf("tick\n"); usleep(1000000); }`. Needs no
/// kernel: the stop rule is the host's.
#[test]
fn guest_ignoring_eintr_ends_at_once_with_a_handful_of_lines() {
    let imports = r#"(import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))"#;
    // iovec at 0 -> "tick\n" at 100; a relative 1 s CLOCK_MONOTONIC subscription at 200.
    let data = r#"(data (i32.const 0) "\64\00\00\00\05\00\00\00") (data (i32.const 100) "tick\0a")
        (data (i32.const 216) "\01") (data (i32.const 224) "\00\ca\9a\3b")"#;
    let body = r#"(loop $forever
          (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 400)))
          (drop (call $poll (i32.const 200) (i32.const 300) (i32.const 1) (i32.const 404)))
          (br $forever))"#;
    let m = write_wasm("ignores_eintr.wasm", &wat_module(imports, body, data));
    for (how, args) in [
        ("--timeout", vec!["run", "--timeout", "0.5", &m]),
        ("SIGTERM", vec!["run", &m]),
    ] {
        let mut child = std::process::Command::new(bin())
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        // The first tick comes at once; the stop lands in the guest's first 1 s sleep.
        let mut out = child.stdout.take().unwrap();
        let mut first = [0u8; 5];
        std::io::Read::read_exact(&mut out, &mut first).unwrap();
        let stop_at = if how == "SIGTERM" {
            std::thread::sleep(std::time::Duration::from_millis(300));
            // SAFETY: kill(2) with a pid we spawned; no memory is involved.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            std::time::Instant::now()
        } else {
            start + std::time::Duration::from_millis(500)
        };
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
        let o = child.wait_with_output().unwrap();
        let ended = std::time::Instant::now();
        let stderr = String::from_utf8_lossy(&o.stderr);
        let lines = 1 + rest.lines().count();
        assert_eq!(o.status.code(), Some(0), "{how}: {stderr}");
        // One tick before the stop, one after its EINTR; the next sleep is interrupted.
        assert_eq!(lines, 2, "{how}: {lines} lines:\ntick\n{rest}");
        assert!(
            stderr.contains(
                "stopped the guest by force: it kept making blocking calls after the stop request"
            ),
            "{how}: {stderr}"
        );
        assert!(!stderr.contains("trap"), "{how}: {stderr}");
        let after = ended.saturating_duration_since(stop_at);
        assert!(
            after < std::time::Duration::from_millis(500),
            "{how}: ended {after:?} after the stop"
        );
    }
}
