//! Bad input: each case gives one line on stderr naming the input and the problem, a non-zero
//! exit, no panic, and nothing left in the kernel. Most need nothing but the binary and the
//! committed example (no compiler, no root); the few that need a fixture say so.

use crate::common::*;

fn expect_error(args: &[&str], want: &[&str]) {
    expect_exit(1, args, want)
}

/// A bad command line (of edge-ecli or of the package): exit 2, one line.
fn expect_usage(args: &[&str], want: &[&str]) {
    expect_exit(2, args, want)
}

fn expect_exit(code: i32, args: &[&str], want: &[&str]) {
    let f = run(args);
    assert_eq!(
        f.status.code(),
        Some(code),
        "{args:?} exit {:?}\nstderr: {}",
        f.status,
        f.stderr
    );
    let lines: Vec<&str> = f.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: expected one line on stderr, got:\n{}",
        f.stderr
    );
    assert!(lines[0].starts_with("edge-ecli: "), "{}", lines[0]);
    for w in want {
        assert!(
            lines[0].contains(w),
            "{args:?}: {:?} not in: {}",
            w,
            lines[0]
        );
    }
    assert!(!f.stderr.contains("panicked"));
}

/// A scratch file of this test run.
fn tmp(name: &str, data: &[u8]) -> String {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("errors");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name).to_string_lossy().into_owned();
    std::fs::write(&p, data).unwrap();
    p
}

/// The example package with one edit applied to its text.
fn edited_package(name: &str, edit: impl Fn(String) -> String) -> String {
    let text = std::fs::read_to_string(example("package.json")).unwrap();
    tmp(name, edit(text).as_bytes())
}

/// The example object with every `.BTF` section renamed away.
fn object_without_btf_bytes() -> Vec<u8> {
    let mut o = std::fs::read(example("sigsnoop.bpf.o")).unwrap();
    let pat = b".BTF\0";
    let mut i = 0;
    while let Some(at) = o[i..].windows(pat.len()).position(|w| w == pat) {
        o[i + at + 1] = b'X';
        i += at + pat.len();
    }
    o
}

#[test]
fn broken_json() {
    let p = tmp("broken.json", b"{\"bpf_object\": \"abc\", ");
    expect_error(&["run", &p], &[&p, "invalid JSON at line 1"]);
}

#[test]
fn bad_base64() {
    let p = edited_package("badb64.json", |t| {
        t.replacen("\"bpf_object\":\"", "\"bpf_object\":\"#", 1)
    });
    expect_error(&["run", &p], &[&p, "bad base64"]);
}

#[test]
fn bad_zlib() {
    let p = edited_package("badzlib.json", |t| {
        // Keep valid base64 but make the zlib stream garbage.
        let start = t.find("\"bpf_object\":\"").unwrap() + 14;
        let mut t = t;
        t.replace_range(start..start + 8, "AAAAAAAA");
        t
    });
    expect_error(&["run", &p], &[&p, "not valid zlib"]);
}

#[test]
fn size_mismatch() {
    let p = edited_package("badsize.json", |t| {
        t.replacen("\"bpf_object_size\":", "\"bpf_object_size\":1", 1)
    });
    expect_error(&["run", &p], &[&p, "bpf_object_size", "corrupt"]);
}

#[test]
fn not_a_package() {
    let p = tmp("notpkg.txt", b"hello world\n");
    expect_error(&["run", &p], &[&p, "not a package"]);
}

#[test]
fn elf_that_is_not_bpf() {
    expect_error(
        &["run", "/bin/true"],
        &["/bin/true", "not a BPF object", "clang -target bpf"],
    );
}

#[test]
fn object_without_btf() {
    let p = tmp("nobtf.bpf.o", &object_without_btf_bytes());
    expect_error(&["run", &p], &[&p, "no BTF", "clang -g"]);
    expect_error(&["info", &p], &["no BTF"]);
}

#[cfg_attr(edge_skip_toolchain, ignore = "needs clang-19, bpftool")]
#[test]
fn unknown_section() {
    if !toolchain_available("unknown_section") {
        return;
    }
    let p = fixtures().obj("badsection");
    expect_error(
        &["run", &p],
        &["odd_prog", "\"weird/section\"", "unknown section name"],
    );
    let f = run(&["info", &p]);
    assert!(f.status.success());
    assert!(f.stdout.contains("cannot run"), "{}", f.stdout);
}

#[test]
fn missing_kernel_btf_file() {
    expect_error(
        &[
            "run",
            "--btf",
            "/nonexistent/vmlinux",
            &example("sigsnoop.bpf.o"),
        ],
        &["--btf /nonexistent/vmlinux", "no such file"],
    );
    expect_error(
        &["run", "--btf", "/tmp", &example("sigsnoop.bpf.o")],
        &["--btf /tmp", "not a regular file"],
    );
    // Read only for an object with CO-RE relocations (the example's preserve_access_index).
    let junk = tmp("junk.btf", b"not btf at all");
    expect_error(
        &["run", "--btf", &junk, &example("sigsnoop.bpf.o")],
        &["kernel BTF", &junk, "bad BTF"],
    );
}

#[test]
fn flag_value_out_of_range() {
    let p = example("sigsnoop.bpf.o");
    expect_usage(
        &["run", &p, "--target_signal", "99999999999"],
        &["--target_signal", "does not fit int"],
    );
    expect_usage(
        &["run", &p, "--filtered_pid", "abc"],
        &["--filtered_pid", "not an integer"],
    );
}

#[cfg_attr(edge_skip_toolchain, ignore = "needs clang-19, bpftool")]
#[test]
fn string_too_long_for_char_array() {
    if !toolchain_available("string_too_long_for_char_array") {
        return;
    }
    let p = fixtures().obj("opensnoop");
    expect_usage(
        &["run", &p, "--target_comm", "a-command-name-longer-than-16"],
        &["--target_comm", "too long for char[16]", "at most 15"],
    );
}

#[test]
fn unknown_flag() {
    let p = example("package.json");
    expect_usage(
        &["run", &p, "--no-such-flag"],
        &["unknown argument \"--no-such-flag\"", "--help"],
    );
}

#[test]
fn unknown_option_of_edge_ecli_itself() {
    let f = run(&["run", "--bogus", "x"]);
    assert_eq!(f.status.code(), Some(2));
    assert!(f.stderr.contains("--bogus"), "{}", f.stderr);
}

#[test]
fn missing_file() {
    expect_error(
        &["run", "/nonexistent/pkg.json"],
        &["/nonexistent/pkg.json", "cannot open"],
    );
}

#[test]
fn package_help_lists_its_flags() {
    let p = example("package.json");
    let f = run(&[&p, "-h"]);
    assert!(f.status.success(), "{}", f.stderr);
    assert!(
        f.stdout
            .starts_with(&format!("Usage: edge-ecli run {p} [OPTIONS]")),
        "{}",
        f.stdout
    );
    for flag in [
        "--filtered_pid <pid_t>",
        "--target_signal <int>",
        "--failed_only",
        "--verbose",
        "-h, --help",
    ] {
        assert!(f.stdout.contains(flag), "{flag} missing:\n{}", f.stdout);
    }
}

#[cfg_attr(edge_skip_toolchain, ignore = "needs clang-19, bpftool")]
#[test]
fn info_without_loading() {
    if !toolchain_available("info_without_loading") {
        return;
    }
    let f = run(&["info", &fixtures().packed("opensnoop")]);
    assert!(f.status.success(), "{}", f.stderr);
    for want in [
        "open_enter               tracepoint/syscalls/sys_enter_openat",
        "open_rb                  ringbuf",
        "struct event (size 288",
        "+32    fname                char[255]",
        "--targ_failed",
        "--target_comm <char[16]>",
    ] {
        assert!(f.stdout.contains(want), "{want:?} missing:\n{}", f.stdout);
    }
}

#[test]
fn pack_round_trips_metadata() {
    let json = std::fs::read_to_string(example("package.json")).unwrap();
    for want in [
        "\"bpf_object_size\":",
        "{\"name\":\"filtered_pid\",\"type\":\"pid_t\",\"description\":\"Trace only signals sent by this process id\"}",
        "{\"attach\":\"tracepoint/signal/signal_generate\",\"link\":true,\"name\":\"sig_trace\"",
        "\"export_types\":[{\"members\":[{\"name\":\"pid\",\"type\":\"unsigned int\"}",
    ] {
        assert!(
            json.contains(want),
            "{want} missing in {}",
            &json[json.find("\"meta\"").unwrap()..]
        );
    }
    let a = run(&["info", &example("sigsnoop.bpf.o")]).stdout;
    let b = run(&["info", &example("package.json")]).stdout;
    // The same programs, maps and types; the package adds the doc comments' help to flags.
    let until_flags = |t: &str| {
        t.lines()
            .skip(1)
            .take_while(|l| *l != "flags:")
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(until_flags(&a), until_flags(&b));
    assert!(
        b.contains("Trace only signals sent by this process id"),
        "{b}"
    );
}

#[test]
fn info_and_pack_explain_wasm_modules() {
    let p = tmp("app.wasm", b"\0asm\x01\0\0\0");
    let f = run(&["info", &p]);
    assert!(f.status.success(), "{}", f.stderr);
    assert!(f.stdout.contains("Wasm module"), "{}", f.stdout);
    assert!(f.stdout.contains("entry: none"), "{}", f.stdout);
    expect_usage(&["pack", &p], &[&p, "pack takes a BPF object"]);
    let bad = tmp("bad.wasm", b"\0asm\x01\0\0\0\x0b\x05");
    expect_error(&["info", &bad], &[&bad, "invalid Wasm module"]);
}

/// Without privileges the load fails with a hint, and `info` still works (it loads nothing).
#[cfg_attr(edge_skip_root, ignore = "needs root and kernel BTF")]
#[test]
fn unprivileged_user_gets_a_hint() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0
        || std::process::Command::new("setpriv")
            .arg("--help")
            .output()
            .is_err()
    {
        eprintln!(
            "SKIPPED unprivileged_user_gets_a_hint: needs root to drop to nobody with setpriv"
        );
        return;
    }
    // A copy nobody can read, outside root-only directories.
    let dir = std::env::temp_dir().join(format!("edge-ecli-nobody-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (b, o) = (dir.join("edge-ecli"), dir.join("sigsnoop.bpf.o"));
    std::fs::copy(bin(), &b).unwrap();
    std::fs::copy(example("sigsnoop.bpf.o"), &o).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for (p, mode) in [(&dir, 0o755), (&b, 0o755), (&o, 0o644)] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let as_nobody = |args: &[&str]| {
        std::process::Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(&b)
            .args(args)
            .output()
            .unwrap()
    };
    let obj = o.to_string_lossy().into_owned();
    let r = as_nobody(&["run", &obj]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{err}");
    assert!(err.contains("run as root"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let r = as_nobody(&["info", &obj]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(String::from_utf8_lossy(&r.stdout).contains("sig_trace"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Hostile bytes never panic the decoders: thousands of mutated objects and packages go through
/// the same parsing `info` does; each must give an Ok or an error, never a panic.
#[test]
fn mutated_objects_and_packages_never_panic() {
    let obj = std::fs::read(example("sigsnoop.bpf.o")).unwrap();
    let pkg = std::fs::read(example("package.json")).unwrap();
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..3000 {
        let base = if round % 3 == 0 { &pkg } else { &obj };
        let mut m = base.clone();
        match next() % 4 {
            // Flip a few bytes anywhere.
            0 | 1 => {
                for _ in 0..1 + next() % 8 {
                    let i = (next() % m.len() as u64) as usize;
                    m[i] = next() as u8;
                }
            }
            // Truncate.
            2 => m.truncate((next() % m.len() as u64) as usize),
            // Overwrite a 4-byte field with an extreme value (sizes, offsets, counts).
            _ => {
                let i = (next() % (m.len() as u64 - 4)) as usize;
                let v = [u32::MAX, 0x7fff_ffff, 0x8000_0000, 0xffff][(next() % 4) as usize];
                m[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
        let r = std::panic::catch_unwind(|| {
            if let Ok(o) = edge_ecli::package::load(m.clone(), "fuzz") {
                let _ = edge_ecli::cli::render_info(&o);
                let _ = edge_ecli::package::eunomia::pack(&o);
                let _ = edge_ecli::args::parse(
                    &o.meta,
                    &o.btf,
                    &Default::default(),
                    &["--help".to_string()],
                );
            }
        });
        assert!(r.is_ok(), "round {round}: a mutated input panicked");
    }
}

#[test]
fn bad_values_of_edge_ecli_options() {
    let p = example("sigsnoop.bpf.o");
    expect_usage(
        &["run", "--timeout", "soon", &p],
        &["--timeout soon", "seconds"],
    );
    expect_usage(
        &["run", "--max-memory", "0", &p],
        &["--max-memory 0", "MiB"],
    );
    expect_usage(
        &["run", "--env", "NOEQUALS", &p],
        &["--env NOEQUALS", "K=V"],
    );
    expect_usage(
        &["run", "--event-type", "no_such_struct", &p],
        &["--event-type no_such_struct", "no struct"],
    );
}

/// A `-` among the package's own arguments reaches the package as it is (only PROG `-` means
/// standard input).
#[test]
fn a_package_argument_dash_is_not_rewritten() {
    expect_usage(
        &["run", &example("package.json"), "--filtered_pid", "-"],
        &["--filtered_pid", "\"-\" is not an integer"],
    );
}

/// Files a user names are read with a limit: a key, a policy or a CA file that is huge (or a
/// device that never ends) is one clear error, not all of memory.
#[test]
fn files_named_on_the_command_line_are_read_with_a_limit() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("limits");
    std::fs::create_dir_all(&dir).unwrap();
    let big = dir.join("big.pub");
    std::fs::write(&big, vec![b'R'; 2 << 20]).unwrap();
    let big = big.to_string_lossy().into_owned();
    let p = example("sigsnoop.bpf.o");
    expect_error(
        &["info", "--verify-key", &big, &p],
        &["--verify-key", "big.pub", "larger than 65536 bytes"],
    );
    expect_error(
        &["info", "--verify-key", "/dev/zero", &p],
        &["--verify-key /dev/zero", "larger than 65536 bytes"],
    );
    expect_error(
        &["info", "--policy", "/dev/zero", &p],
        &["policy /dev/zero", "larger than 1048576 bytes"],
    );
}
