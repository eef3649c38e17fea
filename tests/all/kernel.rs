//! Real-kernel tests: each loads a fixture, triggers known events and checks what edge-ecli
//! printed, as a raw .bpf.o and as packed JSON, in plain and NDJSON output; then checks that
//! nothing of ours is left in the kernel.

use crate::common::*;

fn is_root_ready(name: &str) -> bool {
    kernel_ready(name)
}

/// sigsnoop (perf event array): a signal we send to a child shows up with the right pids and
/// number; --filtered_pid keeps only our own signals.
fn sigsnoop(prog: &str, json: bool) {
    let me = std::process::id().to_string();
    let mut args = vec![];
    if json {
        args.push("-j");
    }
    args.extend([prog, "--filtered_pid", me.as_str()]);
    let s = Session::start(&args);
    let cpid = signal_sleeper(&[libc::SIGUSR1]);
    let out = s.wait_for(|o| o.contains(&cpid));
    let f = s.stop_with(libc::SIGINT);
    assert!(f.status.success(), "exit {:?}: {}", f.status, f.stderr);
    let out = if out.contains(&cpid) {
        f.stdout.clone()
    } else {
        out
    };
    if json {
        let rows = json_lines(&out);
        let row = rows
            .iter()
            .find(|l| field(l, "tpid") == Some(cpid.as_str()))
            .unwrap_or_else(|| {
                panic!(
                    "no event for pid {cpid} in:\n{out}\nafter the stop:\n{}\nstderr:\n{}",
                    f.stdout, f.stderr
                )
            });
        assert_eq!(field(row, "pid"), Some(me.as_str()));
        assert_eq!(field(row, "sig"), Some("10"));
        assert_eq!(field(row, "ret"), Some("0"));
        assert!(
            rows.iter().all(|l| field(l, "pid") == Some(me.as_str())),
            "filter let others through:\n{out}"
        );
    } else {
        let mut lines = out.lines();
        let header = lines.next().unwrap();
        assert!(
            header.starts_with("TIME     PID     TPID    SIG     RET     COMM"),
            "{header}"
        );
        let row = out
            .lines()
            .find(|l| l.split_whitespace().nth(2) == Some(cpid.as_str()))
            .unwrap_or_else(|| panic!("no row for pid {cpid} in:\n{out}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[1], me);
        assert_eq!(cols[3], "10");
        assert_eq!(cols[4], "0");
        assert!(
            out.lines()
                .skip(1)
                .all(|l| l.split_whitespace().nth(1) == Some(me.as_str())),
            "{out}"
        );
    }
    assert_no_leaks(&["sig_trace", "sig_events"]);
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn sigsnoop_raw_plain() {
    let _g = serial();
    if is_root_ready("sigsnoop_raw_plain") {
        sigsnoop(&fixtures().obj("sigsnoop"), false);
    }
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn sigsnoop_packed_json() {
    let _g = serial();
    if is_root_ready("sigsnoop_packed_json") {
        sigsnoop(&fixtures().packed("sigsnoop"), true);
    }
}

/// bootstrap (ringbuf): exec and exit of the trigger, with its filename and exit code.
fn bootstrap(prog: &str, json: bool) {
    let trig = fixtures().trigger();
    let mut args = vec![];
    if json {
        args.push("-j");
    }
    args.extend([prog, "--target_comm", "edge-trigger"]);
    let s = Session::start(&args);
    trigger(&["exit", "7"]);
    let out = s.wait_for(|o| o.lines().count() >= 3);
    let f = s.stop_with(libc::SIGTERM);
    assert!(f.status.success(), "exit {:?}: {}", f.status, f.stderr);
    let out = if f.stdout.len() > out.len() {
        f.stdout
    } else {
        out
    };
    if json {
        let rows = json_lines(&out);
        let exec = rows
            .iter()
            .find(|l| field(l, "exit_event") == Some("false"))
            .unwrap_or_else(|| panic!("no exec event:\n{out}"));
        assert_eq!(field(exec, "filename"), Some(trig.as_str()));
        assert_eq!(field(exec, "comm"), Some("edge-trigger"));
        let exit = rows
            .iter()
            .find(|l| field(l, "exit_event") == Some("true"))
            .unwrap_or_else(|| panic!("no exit event:\n{out}"));
        assert_eq!(field(exit, "exit_code"), Some("7"));
        assert_eq!(field(exit, "pid"), field(exec, "pid"));
    } else {
        assert!(
            out.lines()
                .next()
                .unwrap()
                .starts_with("TIME     PID     PPID    EXIT_CODE DURATION_NS COMM"),
            "{out}"
        );
        let exec = out
            .lines()
            .find(|l| l.contains(&trig))
            .unwrap_or_else(|| panic!("no exec row:\n{out}"));
        assert!(exec.ends_with("false"), "{exec}");
        let exit = out
            .lines()
            .find(|l| l.ends_with("true"))
            .unwrap_or_else(|| panic!("no exit row:\n{out}"));
        let cols: Vec<&str> = exit.split_whitespace().collect();
        assert_eq!(cols[3], "7", "{exit}");
        assert_eq!(cols[5], "edge-trigger", "{exit}");
    }
    assert_no_leaks(&["boot_exec", "boot_exit", "boot_rb", "boot_exec_start"]);
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn bootstrap_raw_json() {
    let _g = serial();
    if is_root_ready("bootstrap_raw_json") {
        bootstrap(&fixtures().obj("bootstrap"), true);
    }
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn bootstrap_packed_plain() {
    let _g = serial();
    if is_root_ready("bootstrap_packed_plain") {
        bootstrap(&fixtures().packed("bootstrap"), false);
    }
}

/// opensnoop: a unique path shows up; with --targ_failed only the failed open does.
fn opensnoop(prog: &str, json: bool) {
    let dir = std::env::temp_dir().join(format!("edge-ecli-open-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exists = dir.join("present");
    std::fs::write(&exists, b"x").unwrap();
    let missing = dir.join("missing");
    let (exists, missing) = (
        exists.to_string_lossy().into_owned(),
        missing.to_string_lossy().into_owned(),
    );

    // All opens.
    let mut args = vec![];
    if json {
        args.push("-j");
    }
    args.extend([prog, "--target_comm", "edge-trigger"]);
    let s = Session::start(&args);
    trigger(&["open", &exists]);
    let out = s.wait_for(|o| o.contains(&exists));
    let f = s.stop_with(libc::SIGINT);
    assert!(f.status.success(), "{}", f.stderr);
    assert!(out.contains(&exists), "open of {exists} not seen:\n{out}");
    if json {
        let row = json_lines(&out)
            .into_iter()
            .find(|l| field(l, "fname") == Some(exists.as_str()))
            .unwrap();
        assert_eq!(field(&row, "comm"), Some("edge-trigger"));
        assert!(
            field(&row, "ret").unwrap().parse::<i32>().unwrap() >= 0,
            "{row}"
        );
    }

    // Failed opens only: the bool flag.
    let mut args = vec![];
    if json {
        args.push("-j");
    }
    args.extend([prog, "--target_comm", "edge-trigger", "--targ_failed"]);
    let s = Session::start(&args);
    trigger(&["open", &exists]);
    trigger(&["open", &missing]);
    let out = s.wait_for(|o| o.contains(&missing));
    let f = s.stop_with(libc::SIGINT);
    assert!(f.status.success(), "{}", f.stderr);
    assert!(
        out.contains(&missing),
        "failed open of {missing} not seen:\n{out}"
    );
    assert!(
        !out.contains(&exists),
        "--targ_failed let a successful open through:\n{out}"
    );
    if json {
        let row = json_lines(&out)
            .into_iter()
            .find(|l| field(l, "fname") == Some(missing.as_str()))
            .unwrap();
        assert_eq!(field(&row, "ret"), Some("-2"));
    } else {
        let row = out.lines().find(|l| l.contains(&missing)).unwrap();
        assert_eq!(row.split_whitespace().nth(3), Some("-2"), "{row}");
    }
    assert_no_leaks(&["open_enter", "open_exit", "open_rb", "open_start"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn opensnoop_raw_plain() {
    let _g = serial();
    if is_root_ready("opensnoop_raw_plain") {
        opensnoop(&fixtures().obj("opensnoop"), false);
    }
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn opensnoop_packed_json() {
    let _g = serial();
    if is_root_ready("opensnoop_packed_json") {
        opensnoop(&fixtures().packed("opensnoop"), true);
    }
}

/// A packed package whose `hists` map is declared an eunomia log2 sample map.
fn hist_package() -> String {
    let fx = fixtures();
    let base = std::fs::read_to_string(fx.packed("writehist")).unwrap();
    let with_sample = base.replace(
        "{\"ident\":\"hists\",\"name\":\"hists\"}",
        "{\"ident\":\"hists\",\"name\":\"hists\",\"sample\":{\"interval\":200,\"type\":\"log2_hist\",\"unit\":\"bytes\"}}",
    );
    assert_ne!(base, with_sample, "pack output changed shape");
    let path = fx.path("writehist-sample.json");
    std::fs::write(&path, with_sample).unwrap();
    path
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn log2_histogram_of_write_sizes() {
    let _g = serial();
    if !is_root_ready("log2_histogram_of_write_sizes") {
        return;
    }
    let pkg = hist_package();
    let s = Session::start(&[&pkg, "--target_comm", "edge-trigger"]);
    trigger(&["write", "1", "2", "3", "100", "100", "100", "5000"]);
    std::thread::sleep(std::time::Duration::from_millis(600));
    let f = s.stop_with(libc::SIGINT);
    assert!(f.status.success(), "{}", f.stderr);
    // Sizes 1 | 2,3 | 100 x3 | 5000 fall in buckets 0-1, 2-3, 64-127 and 4096-8191.
    let want = "key = 0
     bytes               : count    distribution
         0 -> 1          : 1        |*************                           |
         2 -> 3          : 2        |**************************              |
         4 -> 7          : 0        |                                        |
         8 -> 15         : 0        |                                        |
        16 -> 31         : 0        |                                        |
        32 -> 63         : 0        |                                        |
        64 -> 127        : 3        |****************************************|
       128 -> 255        : 0        |                                        |
       256 -> 511        : 0        |                                        |
       512 -> 1023       : 0        |                                        |
      1024 -> 2047       : 0        |                                        |
      2048 -> 4095       : 0        |                                        |
      4096 -> 8191       : 1        |*************                           |
";
    assert!(
        f.stdout.contains(want),
        "histogram not found; got:\n{}",
        f.stdout
    );

    // The same map as NDJSON: the raw slot counts.
    let s = Session::start(&["-j", &pkg, "--target_comm", "edge-trigger"]);
    trigger(&["write", "8", "9"]);
    std::thread::sleep(std::time::Duration::from_millis(600));
    let f = s.stop_with(libc::SIGINT);
    let line = json_lines(&f.stdout).into_iter().last().unwrap_or_default();
    assert!(
        line.starts_with("{\"map\":\"hists\",\"key\":{\"u32\":0},\"value\":{\"slots\":[0,0,0,2,0"),
        "{}",
        f.stdout
    );
    assert_no_leaks(&["hist_write", "hists"]);
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn uprobe_on_a_test_binary() {
    let _g = serial();
    if !is_root_ready("uprobe_on_a_test_binary") {
        return;
    }
    let fx = fixtures();
    for json in [false, true] {
        let prog = if json {
            fx.packed("uprobe")
        } else {
            fx.obj("uprobe")
        };
        let mut args = vec![];
        if json {
            args.push("-j");
        }
        args.push(prog.as_str());
        let s = Session::start(&args);
        trigger(&["uprobe", "4242"]);
        let out = s.wait_for(|o| o.contains("4242"));
        let f = s.stop_with(libc::SIGINT);
        assert!(f.status.success(), "{}", f.stderr);
        if json {
            let row = json_lines(&out)
                .into_iter()
                .find(|l| field(l, "arg") == Some("4242"));
            let row = row.unwrap_or_else(|| panic!("no uprobe event:\n{out}"));
            assert_eq!(field(&row, "comm"), Some("edge-trigger"));
        } else {
            let row = out
                .lines()
                .find(|l| l.contains(" 4242 "))
                .unwrap_or_else(|| panic!("no row:\n{out}"));
            assert!(row.ends_with("edge-trigger"), "{row}");
        }
        assert_no_leaks(&["up_target", "up_rb"]);
    }
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn timeout_stops_by_itself_and_cleans_up() {
    let _g = serial();
    if !is_root_ready("timeout_stops_by_itself_and_cleans_up") {
        return;
    }
    let t0 = std::time::Instant::now();
    let f = Session::start(&["--timeout", "0.5", &fixtures().obj("sigsnoop")]).finish();
    assert!(f.status.success(), "{}", f.stderr);
    // -v reports the startup phases.
    for phase in [
        "read",
        "parse/inflate/object BTF",
        "kernel BTF/maps",
        "verify",
        "attach",
        "all attached at",
    ] {
        assert!(
            f.stderr.contains(phase),
            "{phase:?} missing in {}",
            f.stderr
        );
    }
    assert!(t0.elapsed() < std::time::Duration::from_secs(15));
    assert_no_leaks(&["sig_trace", "sig_events"]);
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn package_from_stdin() {
    let _g = serial();
    if !is_root_ready("package_from_stdin") {
        return;
    }
    let file = std::fs::File::open(fixtures().packed("sigsnoop")).unwrap();
    let o = std::process::Command::new(bin())
        .args(["run", "--timeout", "0.3", "-"])
        .stdin(file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("TIME     PID"));
}

/// `tc` is a libbpf section name aya 0.14 does not parse: it is renamed before loading and the
/// program attaches to lo (ifindex 1) ingress. A UDP datagram of known size shows up.
#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn tc_section_renamed_and_attached() {
    let _g = serial();
    if !is_root_ready("tc_section_renamed_and_attached") {
        return;
    }
    let s = Session::start(&["-j", &fixtures().obj("tcpkt")]);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = sock.local_addr().unwrap();
    sock.send_to(&[0u8; 1234], to).unwrap();
    // 1234 payload + 8 UDP + 20 IPv4 + 14 Ethernet header that lo carries.
    let out = s.wait_for(|o| o.contains("\"len\":1276"));
    let f = s.stop_with(libc::SIGINT);
    assert!(f.status.success(), "{}", f.stderr);
    let row = json_lines(&out)
        .into_iter()
        .find(|l| field(l, "len") == Some("1276"));
    let row = row.unwrap_or_else(|| panic!("no packet of 1276 bytes:\n{out}"));
    assert_eq!(field(&row, "ifindex"), Some("1"));
    assert_no_leaks(&["tc_sizes", "tc_rb"]);
    let qdisc = std::process::Command::new("tc")
        .args(["qdisc", "show", "dev", "lo"])
        .output();
    if let Ok(q) = qdisc {
        assert!(
            !String::from_utf8_lossy(&q.stdout).contains("clsact"),
            "a clsact qdisc was left on lo"
        );
    }
}

/// An attach failure names the program, its section, the reason and a hint, exits 1, and
/// releases the program that did attach.
#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn attach_failure_is_named_and_cleaned_up() {
    let _g = serial();
    if !is_root_ready("attach_failure_is_named_and_cleaned_up") {
        return;
    }
    // With --strict (and with nothing else attachable) a missing target is the error.
    for args in [
        vec!["run", "--strict", &fixtures().obj("badattach")],
        vec!["run", &fixtures().obj("badattach_only")],
    ] {
        let f = run(&args.iter().map(|s| s.as_ref()).collect::<Vec<&str>>());
        assert_eq!(f.status.code(), Some(1), "{}", f.stderr);
        let line = f.stderr.trim_end();
        assert_eq!(line.lines().count(), 1, "{line}");
        for want in [
            "attaching program bad_second",
            "\"tp/edge_no_such_category/edge_no_such_event\"",
            "hint:",
        ] {
            assert!(line.contains(want), "{want:?} not in {line}");
        }
        assert_no_leaks(&["good_first", "bad_second"]);
    }
    // Without, it is skipped with one warning line and the other program runs.
    let f = run(&["run", "--timeout", "1", &fixtures().obj("badattach")]);
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    let skipped: Vec<&str> = f.stderr.lines().filter(|l| l.contains("skipped")).collect();
    assert_eq!(skipped.len(), 1, "{}", f.stderr);
    assert!(skipped[0].contains("bad_second"), "{}", f.stderr);
    assert_no_leaks(&["good_first", "bad_second"]);
}

/// A `default_kv` sample map prints key/value rows under one header.
#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn default_kv_sample_map() {
    let _g = serial();
    if !is_root_ready("default_kv_sample_map") {
        return;
    }
    let fx = fixtures();
    let base = std::fs::read_to_string(fx.packed("writehist")).unwrap();
    let pkg = fx.path("writehist-kv.json");
    std::fs::write(
        &pkg,
        base.replace(
            "{\"ident\":\"hists\",\"name\":\"hists\"}",
            "{\"ident\":\"hists\",\"name\":\"hists\",\"sample\":{\"interval\":200,\"type\":\"default_kv\"}}",
        ),
    )
    .unwrap();
    let s = Session::start(&[&pkg, "--target_comm", "edge-trigger"]);
    trigger(&["write", "4", "4", "4"]);
    let out = s.wait_for(|o| o.contains("[0,0,3,"));
    let f = s.stop_with(libc::SIGINT);
    assert!(f.status.success(), "{}", f.stderr);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("TIME     U32     SLOTS"), "{out}");
    let row = lines
        .find(|l| l.contains("[0,0,3,"))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(row.split_whitespace().nth(1), Some("0"), "{row}");
}

/// --uprobe-target replaces the PATH:FUNC a section names; --uprobe-pid keeps one process.
#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn uprobe_target_and_pid_flags() {
    let _g = serial();
    if !is_root_ready("uprobe_target_and_pid_flags") {
        return;
    }
    let fx = fixtures();
    let elsewhere = fx.obj("uprobe_elsewhere");
    let f = run(&["run", "--timeout", "1", &elsewhere]);
    assert_eq!(f.status.code(), Some(1), "{}", f.stderr);
    assert!(
        f.stderr.contains("attaching program up_target")
            && f.stderr.contains("/nonexistent/edge-trigger"),
        "{}",
        f.stderr
    );

    let target = format!("{}:edge_uprobe_target", fx.trigger());
    let s = Session::start(&["-j", "--uprobe-target", &target, &elsewhere]);
    trigger(&["uprobe", "77"]);
    let out = s.wait_for(|o| o.contains("\"arg\":77"));
    let f = s.stop_with(libc::SIGINT);
    assert!(f.status.success(), "{}", f.stderr);
    assert!(out.contains("\"arg\":77"), "{out}");

    // Only the process given with --uprobe-pid is traced.
    let mut late = std::process::Command::new(fx.trigger())
        .args(["uprobe-after", "2500", "55"])
        .spawn()
        .unwrap();
    let pid = late.id().to_string();
    let s = Session::start(&["-j", "--uprobe-pid", &pid, &fx.obj("uprobe")]);
    trigger(&["uprobe", "66"]);
    let _ = late.wait();
    let out = s.wait_for(|o| o.contains("\"arg\":55"));
    let f = s.stop_with(libc::SIGINT);
    assert!(f.status.success(), "{}", f.stderr);
    assert!(
        out.contains("\"arg\":55"),
        "the traced process's call is missing:\n{out}"
    );
    assert!(
        !out.contains("\"arg\":66"),
        "another process got through --uprobe-pid:\n{out}"
    );
    assert_no_leaks(&["up_target", "up_rb"]);
}

/// With -j, records of a map whose type nobody knows still print as JSON lines:
/// {"map": NAME, "data": "HEX"}, after a note on stderr saying how to name the type.
#[cfg_attr(edge_skip_root, ignore = "needs root and kernel BTF")]
#[test]
fn untyped_records_are_json_hex_lines() {
    let _g = serial();
    if !kernel_available("untyped_records_are_json_hex_lines") {
        return;
    }
    // The example object without its __eunomia_dummy_event_ptr (renamed in BTF's strings).
    let mut obj = std::fs::read(example("sigsnoop.bpf.o")).unwrap();
    let pat = b"__eunomia_dummy_";
    let mut from = 0;
    while let Some(at) = obj[from..].windows(pat.len()).position(|w| w == pat) {
        obj[from + at + 2] = b'X';
        from += at + pat.len();
    }
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join("untyped.bpf.o").to_string_lossy().into_owned();
    std::fs::write(&path, &obj).unwrap();
    let me = std::process::id().to_string();
    let s = Session::start(&["-j", &path, "--filtered_pid", &me]);
    let cpid: u32 = signal_sleeper(&[libc::SIGUSR1]).parse().unwrap();
    let hex_tpid: String = cpid
        .to_le_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let out = s.wait_for(|o| o.contains(&hex_tpid));
    let f = s.stop_with(libc::SIGINT);
    assert!(f.status.success(), "{}", f.stderr);
    assert!(f.stderr.contains("no event type known"), "{}", f.stderr);
    let out = out + &f.stdout;
    let line = out
        .lines()
        .find(|l| l.contains(&hex_tpid))
        .unwrap_or_else(|| panic!("no record of {cpid}:\n{out}"));
    assert!(
        line.starts_with("{\"map\":\"sig_events\",\"data\":\""),
        "{line}"
    );
    assert!(
        out.lines().all(|l| l.starts_with('{') && l.ends_with('}')),
        "{out}"
    );
    // struct event: pid, tpid, sig = 10 (SIGUSR1) at offset 8.
    let data = field(line, "data").unwrap();
    assert_eq!(&data[8..16], hex_tpid);
    assert_eq!(&data[16..24], "0a000000");
    assert_no_leaks(&["sig_trace", "sig_events"]);
}
