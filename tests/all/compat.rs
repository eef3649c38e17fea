//! Real libbpf tools, unchanged (issue 17): what a tool's C user space and libbpf used to do,
//! which the loader does now. One fixture per mechanism (tests/fixtures/, in the style of
//! libbpf-tools), loaded, attached and triggered on this kernel; values checked.

use crate::common::*;

/// `openat(2)` itself (musl's `File::open` is `open(2)` on x86_64, which these probes do not see).
fn openat(path: &str, flags: i32) {
    let c = std::ffi::CString::new(path).unwrap();
    // SAFETY: openat on a NUL-terminated path that lives through the call; the fd it returns is closed here.
    unsafe {
        let fd = libc::syscall(libc::SYS_openat, libc::AT_FDCWD, c.as_ptr(), flags, 0o600);
        if fd >= 0 {
            libc::close(fd as i32);
        }
    }
}

/// Item 1: CO-RE reads of tracepoint arguments through a flexible array (`args[]` of the
/// kernel's `struct syscall_trace_enter`), an array inside a struct and a typedef chain.
#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn core_reads_tracepoint_args_through_flexible_arrays() {
    if !kernel_ready("core_reads_tracepoint_args_through_flexible_arrays") {
        return;
    }
    let _g = serial();
    let me = std::process::id().to_string();
    let s = Session::start(&["-j", &fixtures().obj("flexargs"), "--target_tgid", &me]);
    let path = format!("/tmp/edge-flexargs-{me}");
    let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    openat(&path, flags);
    let out = s.wait_for(|o| o.contains(&path));
    let f = s.stop_with(libc::SIGINT);
    assert!(f.status.success(), "{}", f.stderr);
    let row = json_lines(&out)
        .into_iter()
        .find(|l| l.contains(&path))
        .unwrap_or_else(|| panic!("no event for {path}; stdout:\n{out}\nstderr:\n{}", f.stderr));
    for key in ["flags_flex", "flags_array", "flags_typedef"] {
        assert_eq!(
            field(&row, key),
            Some(flags.to_string().as_str()),
            "{key}: {row}"
        );
    }
    assert_eq!(field(&row, "fname_flex"), Some(path.as_str()), "{row}");
    assert_eq!(field(&row, "fname_array"), Some(path.as_str()), "{row}");
    assert_no_leaks(&["fa_openat", "fa_rb"]);
}

/// A trigger that waits for a line on stdin before `args` run, so its pid is known (and given
/// to the fixture's filter) before its first event.
fn gated_trigger(args: &[&str]) -> (std::process::Child, String) {
    let c = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "read go; exec {} {}",
            fixtures().trigger(),
            args.join(" ")
        ))
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = c.id().to_string();
    (c, pid)
}

fn release(child: &mut std::process::Child) {
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(child.wait().unwrap().success());
}

/// The histogram libbpf-tools' print_log2_hist prints for five writes of 0, 1, 2, 4 and 1000
/// bytes.
const WRITE_HIST: &str = "     usecs               : count    distribution
         0 -> 1          : 2        |****************************************|
         2 -> 3          : 1        |********************                    |
         4 -> 7          : 1        |********************                    |
         8 -> 15         : 0        |                                        |
        16 -> 31         : 0        |                                        |
        32 -> 63         : 0        |                                        |
        64 -> 127        : 0        |                                        |
       128 -> 255        : 0        |                                        |
       256 -> 511        : 0        |                                        |
       512 -> 1023       : 1        |********************                    |
";

/// Items 4 and 10: results in maps (hash histogram, per-syscall counters in a map whose
/// max_entries the object leaves open, a per-CPU counter, .bss counters and histogram) print
/// at exit; scratch maps do not; the open map gets libbpf-tools' 10240 entries.
#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn results_in_maps_print_at_exit() {
    if !kernel_ready("results_in_maps_print_at_exit") {
        return;
    }
    let _g = serial();
    let (mut t, pid) = gated_trigger(&["write", "0", "1", "2", "4", "1000"]);
    let s = Session::start(&[&fixtures().obj("maphist"), "--target_tgid", &pid]);
    let shown = std::process::Command::new("bpftool")
        .args(["map", "show", "name", "syscalls"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("max_entries 10240"), "bpftool: {shown}");
    release(&mut t);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let f = s.stop_with(libc::SIGINT);
    assert!(f.status.success(), "{}", f.stderr);
    let out = f.stdout;
    assert!(
        out.contains(&format!("@hists:\n    comm = edge-trigger\n{WRITE_HIST}\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!("@write_hist:\n{WRITE_HIST}\n")),
        "{out}"
    );
    assert!(
        out.contains("@write_bytes[0]: 3\n@write_bytes[1]: 1004\n"),
        "{out}"
    );
    assert!(out.contains("@pcpu_writes: 5\n"), "{out}");
    assert!(
        out.contains(&format!("@syscalls[{}]: 5\n", libc::SYS_write)),
        "{out}"
    );
    assert!(!out.contains("@start"), "scratch map printed: {out}");
    assert_no_leaks(&["mh_enter", "mh_write", "mh_exit", "syscalls", "hists"]);
}

/// Item 4: `--map NAME.max_entries=N` sizes a map as the tool's C user space did; a map the
/// object does not have, or a bad value, is one line and exit 2 before anything is loaded.
#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn map_sizes_are_overridden_from_the_command_line() {
    if !kernel_ready("map_sizes_are_overridden_from_the_command_line") {
        return;
    }
    let _g = serial();
    let obj = fixtures().obj("maphist");
    let s = Session::start(&["--map", "syscalls.max_entries=333", &obj]);
    let shown = std::process::Command::new("bpftool")
        .args(["map", "show", "name", "syscalls"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
    let f = s.stop_with(libc::SIGINT);
    assert!(f.status.success(), "{}", f.stderr);
    assert!(shown.contains("max_entries 333"), "bpftool: {shown}");
    for (arg, says) in [
        ("nosuch.max_entries=5", "nosuch"),
        ("syscalls.max_entries=lots", "syscalls.max_entries=lots"),
        (
            "syscalls.colour=5",
            "expected NAME.max_entries=N or NAME.value_size=N",
        ),
    ] {
        let r = run(&["run", "--map", arg, &obj]);
        assert_eq!(r.status.code(), Some(2), "--map {arg}: {}", r.stderr);
        assert!(r.stderr.contains(says), "--map {arg}: {}", r.stderr);
        assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    }
    assert_no_leaks(&["mh_enter", "mh_write", "mh_exit", "syscalls", "hists"]);
}

/// Item 10: `--interval` prints the results every interval and clears them, as libbpf-tools
/// do; NDJSON carries map, key and value.
#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn results_print_every_interval_and_clear() {
    if !kernel_ready("results_print_every_interval_and_clear") {
        return;
    }
    let _g = serial();
    let (mut t, pid) = gated_trigger(&["write", "0", "1", "2", "4", "1000"]);
    let s = Session::start(&[
        "-j",
        "--interval",
        "0.5",
        &fixtures().obj("maphist"),
        "--target_tgid",
        &pid,
    ]);
    release(&mut t);
    s.wait_for(|o| o.contains("\"pcpu_writes\""));
    // Two more intervals pass: what was printed was cleared and is not printed again.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let f = s.stop_with(libc::SIGINT);
    assert!(f.status.success(), "{}", f.stderr);
    let all = f.stdout;
    assert_eq!(
        all.matches("{\"global\":\"write_bytes\",\"value\":[3,1004,0,0]}")
            .count(),
        1,
        "printed once, then cleared: {all}"
    );
    assert_eq!(
        all.matches("{\"map\":\"pcpu_writes\",\"key\":0,\"value\":5}")
            .count(),
        1,
        "{all}"
    );
    let hist = json_lines(&all)
        .into_iter()
        .find(|l| l.starts_with("{\"map\":\"hists\""))
        .unwrap_or_else(|| panic!("{all}"));
    assert!(
        hist.starts_with("{\"map\":\"hists\",\"key\":0,\"value\":{\"slots\":[2,1,1,0,0,0,0,0,0,1,"),
        "{hist}"
    );
}

/// Items 4 and 5: a stack trace map and a perf event array whose sizes the object leaves open
/// are sized (127 frames, 10240 entries, a buffer per CPU); stack ids in events and in a map's
/// keys print as symbolized frames: the trigger's own function, libc, the kernel's syscall
/// entry.
#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn stack_ids_print_as_symbolized_frames() {
    if !kernel_ready("stack_ids_print_as_symbolized_frames") {
        return;
    }
    let _g = serial();
    for json in [false, true] {
        let mut args = vec![];
        if json {
            args.push("-j");
        }
        let obj = fixtures().obj("stacks");
        args.push(&obj);
        let s = Session::start(&args);
        let shown = std::process::Command::new("bpftool")
            .args(["map", "show", "name", "st_stackmap"])
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&shown.stdout);
        assert!(
            shown.contains("value 1016") && shown.contains("max_entries 10240"),
            "bpftool: {shown}"
        );
        let mut t = std::process::Command::new(fixtures().trigger())
            .args(["uprobe-linger", "3", "1500"])
            .spawn()
            .unwrap();
        let out = s.wait_for(|o| o.contains("clock_nanosleep") && o.contains("do_syscall_64"));
        let f = s.stop_with(libc::SIGINT);
        t.wait().unwrap();
        assert!(f.status.success(), "{}", f.stderr);
        let all = f.stdout;
        let user = "edge_uprobe_target+0 (edge-trigger)";
        let libc_frame = line_with(&all, "clock_nanosleep+", "(libc.so.6)");
        assert!(libc_frame, "no libc frame: {all}");
        assert!(all.contains(user), "{all}");
        assert!(out.contains("do_syscall_64+"), "{out}");
        if json {
            let ev = json_lines(&all)
                .into_iter()
                .find(|l| l.contains(user) && !l.starts_with("{\"map\""))
                .unwrap_or_else(|| panic!("{all}"));
            assert!(
                ev.contains(&format!("\"user_stack_id\":[\"{user}\"]")),
                "{ev}"
            );
            assert!(all.contains("{\"map\":\"st_counts\",\"key\":{"), "{all}");
        } else {
            assert!(
                all.contains(&format!("    user_stack_id:\n        {user}\n")),
                "{all}"
            );
            assert!(all.contains("@st_counts["), "{all}");
        }
    }
    assert_no_leaks(&["st_probe", "st_sleep", "st_stackmap", "st_counts"]);
}

/// Does `text` have a line with `a` followed later on the same line by `b`?
fn line_with(text: &str, a: &str, b: &str) -> bool {
    text.lines()
        .any(|l| l.find(a).is_some_and(|i| l[i..].contains(b)))
}

/// Items 8 and 9: a header with several structs (the first a decoy): each record is decoded
/// by the struct its size selects; a variable-length tail shows the strings it holds; addresses
/// in unnamed unions, a 128-bit integer and a u32[4] print as IP addresses.
#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn records_pick_their_struct_and_show_addresses() {
    if !kernel_ready("records_pick_their_struct_and_show_addresses") {
        return;
    }
    let _g = serial();
    let me = std::process::id().to_string();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let path = format!("/tmp/edge-records-{me}");
    for json in [true, false] {
        let obj = fixtures().obj("records");
        let mut args = vec![];
        if json {
            args.push("-j");
        }
        args.extend([obj.as_str(), "--target_tgid", &me]);
        let s = Session::start(&args);
        openat(&path, libc::O_RDONLY);
        let c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let out = s.wait_for(|o| o.contains(&path) && o.contains("127.0.0.1"));
        drop(c);
        let f = s.stop_with(libc::SIGINT);
        assert!(f.status.success(), "{}", f.stderr);
        if json {
            let ev = json_lines(&out)
                .into_iter()
                .find(|l| l.contains(&path))
                .unwrap_or_else(|| panic!("{out}"));
            assert_eq!(
                ev,
                format!(
                    "{{\"pid\":{me},\"args_count\":2,\"args_size\":{},\"comm\":\"{}\",\"args\":\"{path} xy\"}}",
                    path.len() + 4,
                    field(&ev, "comm").unwrap()
                )
            );
            let conn = json_lines(&out)
                .into_iter()
                .find(|l| l.contains("\"af\""))
                .unwrap_or_else(|| panic!("{out}"));
            assert_eq!(
                conn,
                format!(
                    "{{\"af\":2,\"dport\":{},\"saddr_v4\":\"127.0.0.1\",\"saddr_v6\":\"127.0.0.1\",\"daddr_v4\":\"127.0.0.1\",\"daddr_v6\":\"127.0.0.1\",\"saddr\":\"127.0.0.1\",\"daddr\":\"127.0.0.1\",\"comm\":\"{}\"}}",
                    port,
                    field(&conn, "comm").unwrap()
                )
            );
        } else {
            let lines: Vec<&str> = out.lines().collect();
            assert!(
                lines[0].starts_with("TIME     PID     ARGS_COUNT ARGS_SIZE COMM"),
                "the event's header first: {out}"
            );
            assert!(
                out.lines().any(|l| l.ends_with(&format!("{path} xy"))),
                "{out}"
            );
            let h = lines
                .iter()
                .position(|l| l.starts_with("TIME     AF    DPORT SADDR_V4"))
                .unwrap_or_else(|| panic!("no header for conn_event: {out}"));
            assert!(lines[h + 1].contains(" 127.0.0.1 "), "{out}");
            assert!(!out.contains("IDENT") && !out.contains("?"), "{out}");
        }
    }
    let _ = std::fs::remove_file(&path);
    assert_no_leaks(&["rec_openat", "rec_state", "rec_rb", "rec_heap"]);
}

/// This kernel's config, as /proc/config.gz says it (the fixture's expectations).
fn kernel_config(name: &str) -> Option<String> {
    let o = std::process::Command::new("zcat")
        .arg("/proc/config.gz")
        .output()
        .ok()?;
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")).map(str::to_string))
}

/// Items 2 and 3: kconfig externs (the kernel version, bool, tristate, int, string, missing
/// weak, libbpf's virtual ones) and ksyms (untyped by kallsyms address, missing weak, kfuncs
/// called and probed with bpf_ksym_exists) get this kernel's values; a strong extern the
/// kernel lacks is a one-line error naming it.
#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn externs_resolve_as_libbpf_resolves_them() {
    if !kernel_ready("externs_resolve_as_libbpf_resolves_them") {
        return;
    }
    let _g = serial();
    let me = std::process::id().to_string();
    let nr = libc::SYS_getppid.to_string();
    let s = Session::start(&[
        "-j",
        &fixtures().obj("externs"),
        "--target_tgid",
        &me,
        "--target_nr",
        &nr,
    ]);
    // SAFETY: a syscall with no arguments, made to fire its tracepoint.
    unsafe { libc::syscall(libc::SYS_getppid) };
    let out = s.wait_for(|o| o.contains("version"));
    let f = s.stop_with(libc::SIGINT);
    assert!(f.status.success(), "{}", f.stderr);
    let row = json_lines(&out)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{out}\n{}", f.stderr));
    // SAFETY: utsname is plain data, valid at all-zero.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: u is a valid, writable utsname.
    unsafe { libc::uname(&mut u) };
    let release: String = u
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8 as char)
        .collect();
    let nums: Vec<u32> = release
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .take(3)
        .map(|p| p.parse().unwrap())
        .collect();
    let version = (nums[0] << 16) + (nums[1] << 8) + nums[2].min(255);
    let schedule = std::fs::read_to_string("/proc/kallsyms")
        .unwrap()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"schedule")).then(|| u64::from_str_radix(f[0], 16).unwrap())
        })
        .unwrap();
    let tri = match kernel_config("CONFIG_IKCONFIG").as_deref() {
        Some("y") => 1,
        Some("m") => 2,
        _ => 0,
    };
    let want = [
        ("version", version.to_string()),
        ("cookie", "true".into()),
        ("bpf_syscall", "true".into()),
        ("ikconfig", tri.to_string()),
        ("hz", kernel_config("CONFIG_HZ").unwrap_or("0".into())),
        ("missing_config", "false".into()),
        (
            "localversion",
            kernel_config("CONFIG_LOCALVERSION")
                .unwrap_or_default()
                .trim_matches('"')
                .to_string(),
        ),
        ("sym_addr", schedule.to_string()),
        ("missing_sym_addr", "0".into()),
        ("kfunc_exists", "true".into()),
        ("missing_kfunc_exists", "false".into()),
        ("pid_by_kfunc", me.clone()),
    ];
    for (k, v) in want {
        assert_eq!(field(&row, k), Some(v.as_str()), "{k} in {row}");
    }
    assert_no_leaks(&["ex_enter", "ex_rb"]);

    let r = run(&["run", "--timeout", "1", &fixtures().obj("externs_strong")]);
    assert_eq!(r.status.code(), Some(1), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("CONFIG_EDGE_ECLI_NOT_A_CONFIG") && r.stderr.contains("__weak"),
        "{}",
        r.stderr
    );
}

/// Item 6: of programs on one hook by different mechanisms exactly one attaches (tp_btf here,
/// not also raw_tp: nothing counted twice); a program whose target or mechanism this kernel
/// lacks is skipped with one warning line (an error with --strict); `--attach` fills in a
/// placeholder target; nothing attachable is an error naming why each failed.
#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn alternatives_attach_once_and_missing_targets_are_skipped() {
    if !kernel_ready("alternatives_attach_once_and_missing_targets_are_skipped") {
        return;
    }
    let _g = serial();
    let obj = fixtures().obj("alternatives");
    let placeholder = "syscalls/sys_enter_edge_placeholder=syscalls/sys_enter_getppid";
    let s = Session::start(&["--attach", placeholder, &obj]);
    for _ in 0..3 {
        // SAFETY: a syscall with no arguments, made to fire its tracepoint.
        unsafe { libc::syscall(libc::SYS_getppid) };
    }
    trigger(&["exit", "0"]); // an exec
    std::thread::sleep(std::time::Duration::from_millis(200));
    let f = s.stop_with(libc::SIGINT);
    assert!(f.status.success(), "{}", f.stderr);
    let skipped: Vec<&str> = f.stderr.lines().filter(|l| l.contains("skipped")).collect();
    // fentry is refused and kprobes are absent on this host kernel: the unlink group goes.
    assert!(
        skipped
            .iter()
            .any(|l| l.contains("alt_unlink_fentry") && l.contains("alt_unlink_kprobe")),
        "{}",
        f.stderr
    );
    if cfg!(target_arch = "x86_64") {
        assert!(
            skipped
                .iter()
                .any(|l| l.contains("alt_arch_only") && l.contains("does not exist")),
            "{}",
            f.stderr
        );
    }
    let hits = |name: &str| -> u64 {
        f.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("@{name}: ")))
            .map_or(0, |v| v.parse().unwrap())
    };
    assert!(hits("tp_btf_hits") >= 1, "{}", f.stdout);
    assert_eq!(
        hits("raw_tp_hits"),
        0,
        "both alternatives attached: {}",
        f.stdout
    );
    assert!(hits("placeholder_hits") >= 3, "{}", f.stdout);
    assert_no_leaks(&["alt_exec_btf", "alt_exec_raw", "alt_placeholder"]);

    let strict = run(&[
        "run",
        "--strict",
        "--timeout",
        "1",
        "--attach",
        placeholder,
        &obj,
    ]);
    assert_eq!(strict.status.code(), Some(1), "{}", strict.stderr);
    assert!(strict.stderr.contains("alt_unlink"), "{}", strict.stderr);

    let none = run(&[
        "run",
        "--timeout",
        "1",
        &fixtures().obj("alternatives_missing"),
    ]);
    if cfg!(target_arch = "x86_64") {
        assert_eq!(none.status.code(), Some(1), "{}", none.stderr);
        assert!(
            none.stderr.contains("no program could attach")
                && none.stderr.contains("alt_arch_only"),
            "{}",
            none.stderr
        );
    }
    let bad = run(&["run", "--timeout", "1", "--attach", "nosuch=x", &obj]);
    assert_ne!(bad.status.code(), Some(0));
    assert!(
        bad.stderr.contains("--attach nosuch=...: no program"),
        "{}",
        bad.stderr
    );
}

/// Item 7: USDT probes through libbpf's usdt.bpf.h: a section that names its probe, a bare
/// `usdt` section given its probe at run time, arguments (registers, a constant, signed),
/// and a probe guarded by its semaphore, which fires only because the kernel counts the
/// attached tracer.
#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn usdt_probes_fire_with_their_arguments() {
    if !kernel_ready("usdt_probes_fire_with_their_arguments") {
        return;
    }
    let _g = serial();
    let trigger_bin = fixtures().trigger();
    let guarded = format!("usdt_guarded={trigger_bin}:edge_ecli:guarded");
    let s = Session::start(&["-j", "--attach", &guarded, &fixtures().obj("usdt")]);
    let mut t = std::process::Command::new(&trigger_bin)
        .args(["usdt", "3"])
        .spawn()
        .unwrap();
    let pid = t.id();
    t.wait().unwrap();
    let out = s.wait_for(|o| o.matches("\"probe\":").count() >= 6);
    let f = s.stop_with(libc::SIGINT);
    assert!(f.status.success(), "{}", f.stderr);
    let rows: Vec<String> = json_lines(&out);
    let want: Vec<String> = (0..3)
        .flat_map(|i| {
            [
                format!("{{\"pid\":{pid},\"probe\":1,\"arg0\":{i},\"arg1\":{},\"arg2\":-7,\"arg_cnt\":3}}", i * 1000),
                format!("{{\"pid\":{pid},\"probe\":2,\"arg0\":77,\"arg1\":0,\"arg2\":0,\"arg_cnt\":1}}"),
            ]
        })
        .collect();
    assert_eq!(rows, want, "stderr:\n{}", f.stderr);
    assert_no_leaks(&["usdt_tick", "usdt_guarded", "usdt_rb"]);

    // Without a tracer the semaphore is 0 again: the guarded probe stays off.
    let mut t = std::process::Command::new(&trigger_bin)
        .args(["usdt", "1"])
        .spawn()
        .unwrap();
    assert!(t.wait().unwrap().success());

    let missing = format!("usdt_guarded={trigger_bin}:edge_ecli:nosuch");
    let r = run(&[
        "run",
        "--strict",
        "--timeout",
        "1",
        "--attach",
        &missing,
        &fixtures().obj("usdt"),
    ]);
    assert_eq!(r.status.code(), Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains("has no USDT probe edge_ecli:nosuch"),
        "{}",
        r.stderr
    );
}

/// Item 10, the daemon's side: the maps a tool's results live in are exported as metrics too
/// (a histogram for a value with slots, a gauge per field otherwise, per-CPU values summed),
/// and promtool accepts them.
#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn result_maps_are_daemon_metrics() {
    use crate::daemon::{eventually, ready, scratch, Daemon};
    if !ready("result_maps_are_daemon_metrics") {
        return;
    }
    let _g = serial();
    let d = Daemon::start(&scratch("resultmetrics"), &[]);
    let (mut t, pid) = gated_trigger(&["write", "0", "1", "2", "4", "1000"]);
    assert!(d
        .ctl(&[
            "start",
            "mh",
            &fixtures().obj("maphist"),
            "--target_tgid",
            &pid
        ])
        .status
        .success());
    release(&mut t);
    let metric = |text: &str, name: &str| -> Option<String> {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next().map(str::to_string))
    };
    eventually("the per-CPU counter shows", || {
        metric(&d.req("GET", "/metrics", None).1, "ebpf_pcpu_writes{").as_deref() == Some("5")
    });
    let m = d.req("GET", "/metrics", None).1;
    assert_eq!(metric(&m, "ebpf_hists_count{").as_deref(), Some("5"), "{m}");
    assert!(m.contains("# TYPE ebpf_hists histogram"), "{m}");
    assert_eq!(
        metric(
            &m,
            &format!(
                "ebpf_syscalls{{ebpf_instance=\"mh\",key=\"{}\"}}",
                libc::SYS_write
            )
        )
        .as_deref(),
        Some("5"),
        "{m}"
    );
    assert!(!m.contains("ebpf_start"), "scratch map exported: {m}");
    let dir = scratch("resultmetrics-promtool");
    let f = dir.join("metrics.txt");
    std::fs::write(&f, &m).unwrap();
    let o = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&f).unwrap())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}
