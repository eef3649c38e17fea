//! `edge-ecli build`, the ecc step: a libbpf-style source with a header and doc-comment
//! annotations becomes a package that prints typed columns, a histogram every interval and
//! flags with the annotated help; a C Wasm guest written against the generated skeleton runs;
//! each bad input gets its one clear error.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn src(name: &str) -> String {
    root()
        .join("tests/fixtures/build")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("build")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Builds writesnoop into `dir`; returns the package path.
fn build_writesnoop(dir: &Path) -> String {
    let pkg = dir.join("package.json").to_string_lossy().into_owned();
    let f = run(&[
        "build",
        &src("writesnoop.bpf.c"),
        &src("writesnoop.h"),
        "-o",
        &pkg,
    ]);
    assert!(f.status.success(), "build failed:\n{}", f.stderr);
    assert!(
        f.stderr
            .contains("(1 programs, 2 maps, 2 globals, 2 export types)"),
        "{}",
        f.stderr
    );
    pkg
}

/// Tools `build` needs, or why the test cannot run.
fn tools_ready(test: &str) -> bool {
    let missing = ["clang-19", "bpftool"]
        .into_iter()
        .find(|t| {
            Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .output()
                .map_or(true, |o| !o.status.success())
        })
        .map(|t| format!("{t} is not installed (tests/setup.sh installs it)"));
    skip_unless(test, missing, "build tests need clang and bpftool")
}

#[cfg_attr(edge_skip_toolchain, ignore = "needs clang-19, bpftool")]
#[test]
fn build_writes_package_object_and_skeleton_with_the_annotations() {
    if !tools_ready("build_writes_package_object_and_skeleton_with_the_annotations") {
        return;
    }
    let dir = scratch("writesnoop");
    let pkg = build_writesnoop(&dir);
    for f in ["writesnoop.bpf.o", "writesnoop.skel.h"] {
        assert!(dir.join(f).is_file(), "{f} not written");
    }
    // Reproducible: a second build elsewhere gives the same object and package.
    let again = scratch("writesnoop-again");
    let pkg2 = build_writesnoop(&again);
    assert!(
        std::fs::read(dir.join("writesnoop.bpf.o")).unwrap()
            == std::fs::read(again.join("writesnoop.bpf.o")).unwrap()
            && std::fs::read(&pkg).unwrap() == std::fs::read(&pkg2).unwrap(),
        "two builds of the same source differ"
    );
    // And from another checkout: with its path mapped away as examples/build.sh does, a copy
    // of the sources elsewhere builds the same bytes (the object's debug info holds the MD5
    // of every file clang read, so nothing the build writes may hold the source's path).
    let copy = scratch("writesnoop-copy");
    for f in ["writesnoop.bpf.c", "writesnoop.h"] {
        std::fs::copy(src(f), copy.join(f)).unwrap();
    }
    let mapped = |from: &Path, to: &Path| {
        let pkg = to.join("package.json").to_string_lossy().into_owned();
        let map = format!("-fdebug-prefix-map={}=.", from.display());
        let f = run(&[
            "build",
            &from.join("writesnoop.bpf.c").to_string_lossy(),
            &from.join("writesnoop.h").to_string_lossy(),
            "-o",
            &pkg,
            "--cflag",
            &map,
        ]);
        assert!(f.status.success(), "build failed:\n{}", f.stderr);
        std::fs::read(to.join("writesnoop.bpf.o")).unwrap()
    };
    let orig = Path::new(&src("writesnoop.bpf.c"))
        .parent()
        .unwrap()
        .to_path_buf();
    assert!(
        mapped(&orig, &scratch("writesnoop-m1")) == mapped(&copy, &scratch("writesnoop-m2")),
        "the same sources in two directories build different objects"
    );
    let json = std::fs::read_to_string(&pkg).unwrap();
    // What ecc would write: the doc of LICENSE, cmdarg and description of globals, the sample
    // of the map, the header's structs as export types.
    for want in [
        r#""doc":{"brief":"Trace write(2) calls of one process","version":"1.2","description":"Prints every write with its size, and a histogram of sizes."}"#,
        r#""cmdarg":{"short": "p", "long": "pid"},"description":"Trace only this process id""#,
        r#""sample":{"interval": 300, "type": "log2_hist", "unit": "bytes"}"#,
        r#""description":"counts and reports each write""#,
        r#""name":"write_event""#,
        r#""obj_name":"writesnoop_bpf""#,
    ] {
        assert!(json.contains(want), "no {want} in\n{json}");
    }
    let info = run(&["info", &pkg]);
    assert!(info.status.success(), "{}", info.stderr);
    for want in [
        "brief: Trace write(2) calls of one process\nversion: 1.2\n",
        "struct write_event (size 32",
        "+8     count                unsigned long long",
        "sample Log2Hist every 300 ms (bytes)",
        "-p, --pid <int>",
        "Trace only this process id",
        "--min_bytes <unsigned long long>  Only writes of at least this many bytes",
    ] {
        assert!(
            info.stdout.contains(want),
            "no {want:?} in\n{}",
            info.stdout
        );
    }
    let help = run(&["run", &pkg, "--help"]);
    assert!(
        help.stdout.contains("Trace write(2) calls of one process")
            && help.stdout.contains("-p, --pid <int>"),
        "{}",
        help.stdout
    );
    let skel = std::fs::read_to_string(dir.join("writesnoop.skel.h")).unwrap();
    for want in [
        "struct writesnoop_bpf *writesnoop_bpf__open_and_load(void)",
        "int writesnoop_bpf__attach(struct writesnoop_bpf *s)",
        "struct bpf_map *events;",
        "struct bpf_program *handle_write;",
        "int32_t target_tgid;",
        "offsetof(struct writesnoop_bpf__rodata, min_bytes) == 8",
    ] {
        assert!(skel.contains(want), "no {want:?} in the skeleton");
    }
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn built_package_prints_typed_columns_and_a_histogram() {
    if !tools_ready("built_package_prints_typed_columns_and_a_histogram")
        || !kernel_ready("built_package_prints_typed_columns_and_a_histogram")
    {
        return;
    }
    let dir = scratch("columns");
    let pkg = build_writesnoop(&dir);
    let (mut gen, pid) = generator(5, 1000);
    let s = Session::start(&[&pkg, "-p", &pid]);
    gen.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(gen.wait().unwrap().success());
    s.wait_for(|o| o.contains("bytes               : count    distribution"));
    let f = s.stop_with(libc::SIGINT);
    assert!(f.status.success(), "{}", f.stderr);
    // Everything it printed, the stop's final drain included.
    let out = f.stdout;
    let mut lines = out.lines();
    assert_eq!(
        lines.next().unwrap().trim_end(),
        "TIME     PID     FD      COUNT      COMM"
    );
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|c| c.len() == 5 && c[1] == pid)
        .collect();
    let counts: Vec<&str> = rows.iter().map(|c| c[3]).collect();
    assert_eq!(counts, ["1", "2", "3", "4", "5"], "{out}");
    assert!(rows.iter().all(|c| c[4] == "edge-trigger"), "{out}");
    // 1 -> slot 0, 2 and 3 -> slot 1, 4 and 5 -> slot 2.
    assert!(out.contains("         2 -> 3          : 2 "), "{out}");
    assert!(out.contains("         4 -> 7          : 2 "), "{out}");
    assert_no_leaks(&["handle_write", "sizes"]);
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn wasm_guest_written_against_the_generated_skeleton() {
    if !tools_ready("wasm_guest_written_against_the_generated_skeleton")
        || !kernel_ready("wasm_guest_written_against_the_generated_skeleton")
    {
        return;
    }
    let dir = scratch("skel-app");
    build_writesnoop(&dir);
    let app = dir.join("writesnoop_app.wasm");
    let cc = Command::new("clang-19")
        .args([
            "--target=wasm32-wasi",
            "--sysroot=/usr",
            "-O2",
            "-Wl,--export-table",
        ])
        .arg("-I")
        .arg(root().join("sdk/c"))
        .arg("-I")
        .arg(&dir)
        .arg("-I")
        .arg(root().join("tests/fixtures/build"))
        .arg(src("writesnoop_app.c"))
        .arg("-o")
        .arg(&app)
        .output()
        .unwrap();
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let (mut gen, pid) = generator(3, 1000);
    let s = Session::start_until(&[&app.to_string_lossy(), &pid], "writesnoop_app: attached");
    gen.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(gen.wait().unwrap().success());
    s.wait_for(|o| o.matches(&format!("\"pid\":{pid},")).count() >= 3);
    let f = s.stop_with(libc::SIGTERM);
    assert!(f.status.success(), "{}", f.stderr);
    let out = f.stdout;
    let lines = json_lines(&out);
    let counts: Vec<&str> = lines
        .iter()
        .filter(|l| field(l, "pid") == Some(pid.as_str()))
        .filter_map(|l| field(l, "count"))
        .collect();
    // The rodata filter set through skel->rodata reached the kernel: only the generator.
    assert_eq!(counts, ["1", "2", "3"], "{out}");
    assert!(
        json_lines(&out)
            .iter()
            .all(|l| field(l, "pid") == Some(pid.as_str())),
        "{out}"
    );
    assert_no_leaks(&["handle_write", "sizes"]);
}

/// `build` on a scratch source: the result.
fn build_source(name: &str, source: &str, header: Option<&str>, extra: &[&str]) -> Finished {
    let dir = scratch(name);
    let s = dir.join(format!("{name}.bpf.c"));
    std::fs::write(&s, source).unwrap();
    let mut args = vec!["build".to_string(), s.to_string_lossy().into_owned()];
    if let Some(h) = header {
        let hp = dir.join(format!("{name}.h"));
        std::fs::write(&hp, h).unwrap();
        args.push(hp.to_string_lossy().into_owned());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&refs)
}

const TINY: &str = "#include \"vmlinux.h\"\n#include <bpf/bpf_helpers.h>\nchar LICENSE[] SEC(\"license\") = \"GPL\";\n";

#[cfg_attr(edge_skip_toolchain, ignore = "needs clang-19, bpftool")]
#[test]
fn build_bad_inputs_each_get_one_clear_error() {
    if !tools_ready("build_bad_inputs_each_get_one_clear_error") {
        return;
    }
    // clang missing: PATH without it.
    let dir = scratch("noclang");
    let s = dir.join("x.bpf.c");
    std::fs::write(&s, TINY).unwrap();
    let f = run_env(
        &["build", &s.to_string_lossy()],
        &[("PATH", "/nonexistent")],
    );
    assert_eq!(f.status.code(), Some(1));
    assert!(
        f.stderr.contains("clang not found on PATH")
            && f.stderr.contains("apt install clang")
            && f.stderr.contains("CLANG=/path/to/clang"),
        "{}",
        f.stderr
    );
    let f = run_env(
        &["build", &s.to_string_lossy()],
        &[("CLANG", "/nonexistent/clang")],
    );
    assert!(
        f.stderr
            .contains("CLANG=/nonexistent/clang: no such program"),
        "{}",
        f.stderr
    );

    // A syntax error: clang's own message with the user's file and line, then ours.
    let f = build_source("syntax", &format!("{TINY}int x = ;\n"), None, &[]);
    assert_eq!(f.status.code(), Some(1));
    assert!(
        f.stderr
            .contains("syntax.bpf.c:4:9: error: expected expression"),
        "{}",
        f.stderr
    );
    assert!(f.stderr.contains("clang could not compile"), "{}", f.stderr);
    assert!(!scratch_has(&["syntax"], "package.json"));

    // A header without structs: a warning, and the build goes on (issue 17 item 9).
    let f = build_source("nostruct", TINY, Some("#define X 1\nint f(void);\n"), &[]);
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    assert!(
        f.stderr.contains("warning: ")
            && f.stderr
                .contains("nostruct.h: the header defines no struct"),
        "{}",
        f.stderr
    );

    // Annotation JSON that does not parse: a warning that keeps the text; the build goes on.
    let bad = format!(
        "{TINY}/// @sample {{\"interval\": 1000,\nstruct {{\n\t__uint(type, BPF_MAP_TYPE_HASH);\n\t__uint(max_entries, 4);\n\t__type(key, u32);\n\t__type(value, u64);\n}} counts SEC(\".maps\");\n"
    );
    let f = build_source("badjson", &bad, None, &[]);
    assert!(f.status.success(), "{}", f.stderr);
    assert!(
        f.stderr
            .contains("badjson.bpf.c:4: @sample of counts is not JSON")
            && f.stderr.contains("kept as text"),
        "{}",
        f.stderr
    );
    let pkg = std::fs::read_to_string(scratch_path("badjson", "package.json")).unwrap();
    assert!(pkg.contains(r#""sample":"{\"interval\": 1000,""#), "{pkg}");
    let info = run(&["info", &scratch_path("badjson", "package.json")]);
    assert!(info.status.success(), "{}", info.stderr);

    // An unknown --arch.
    let f = build_source("arch", TINY, None, &["--arch", "mips"]);
    assert_eq!(f.status.code(), Some(2), "a bad command line");
    assert!(
        f.stderr
            .contains("--arch mips: unknown architecture; use x86, arm64 or riscv"),
        "{}",
        f.stderr
    );
    // A source that is not there.
    let f = run(&["build", "/nonexistent/x.bpf.c"]);
    assert!(
        f.stderr
            .contains("/nonexistent/x.bpf.c: cannot read the BPF source"),
        "{}",
        f.stderr
    );
}

fn scratch_path(name: &str, file: &str) -> String {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("build")
        .join(name)
        .join(file)
        .to_string_lossy()
        .into_owned()
}

fn scratch_has(names: &[&str], file: &str) -> bool {
    names
        .iter()
        .any(|n| Path::new(&scratch_path(n, file)).exists())
}

/// Issue 17 items 8 and 9: a tool written for a current libbpf builds on a machine whose
/// system headers are older (BPF_UPROBE, bpf_ksym_exists, BPF_USDT come from the carried
/// libbpf 1.7 headers; the kfunc it calls is declared by the vmlinux.h `build` makes), and
/// `--export-type` picks the one struct of a header that the records carry.
#[cfg_attr(edge_skip_toolchain, ignore = "needs clang-19, bpftool")]
#[test]
fn current_libbpf_tools_build_and_export_the_chosen_type() {
    if !tools_ready("current_libbpf_tools_build_and_export_the_chosen_type") {
        return;
    }
    let source = r#"#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>
#include "modern.h"

extern void edge_no_such_kfunc(void) __ksym __weak;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} rb SEC(".maps");

SEC("uprobe")
int BPF_UPROBE(on_call, long a)
{
	struct event *e = bpf_ringbuf_reserve(&rb, sizeof(*e), 0);
	if (!e)
		return 0;
	e->a = a;
	e->missing = bpf_ksym_exists(edge_no_such_kfunc);
	struct task_struct *t = bpf_task_from_pid(1);
	if (t)
		bpf_task_release(t);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("usdt")
int BPF_USDT(on_probe, int x)
{
	return x;
}

char LICENSE[] SEC("license") = "GPL";
"#;
    let header =
        "struct ident { int id; char name[16]; };\nstruct event { long a; bool missing; };\n";
    let f = build_source("modern", source, Some(header), &["--export-type", "event"]);
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    let info = run(&["info", &scratch_path("modern", "package.json")]);
    assert!(info.stdout.contains("struct event"), "{}", info.stdout);
    assert!(!info.stdout.contains("struct ident"), "{}", info.stdout);
}

/// `build` carries the C SDK's <edge/compat.bpf.h> (reserve_buf/submit_buf: a ring buffer
/// here, a perf event array on kernels without one) and, with `--btfgen`, the kernel BTF the
/// object needs for the kernels of a BTFHub tree: the package runs and its events arrive.
#[test]
#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
fn build_carries_the_compat_header_and_cuts_btfgen() {
    if !tools_ready("build_carries_the_compat_header_and_cuts_btfgen")
        || !kernel_ready("build_carries_the_compat_header_and_cuts_btfgen")
    {
        return;
    }
    let _g = serial();
    let dir = scratch("compatsdk");
    let os = std::fs::read_to_string("/etc/os-release").unwrap();
    let get = |k: &str| {
        os.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap()
    };
    let release =
        String::from_utf8(Command::new("uname").arg("-r").output().unwrap().stdout).unwrap();
    let arch = if std::env::consts::ARCH == "aarch64" {
        "arm64"
    } else {
        std::env::consts::ARCH
    };
    let leaf = dir
        .join("hub")
        .join(get("ID"))
        .join(get("VERSION_ID"))
        .join(arch);
    std::fs::create_dir_all(&leaf).unwrap();
    std::fs::copy(
        "/sys/kernel/btf/vmlinux",
        leaf.join(format!("{}.btf", release.trim())),
    )
    .unwrap();
    let pkg = dir.join("package.json").to_string_lossy().into_owned();
    let f = run(&[
        "build",
        &root()
            .join("tests/fixtures/execcompat.bpf.c")
            .to_string_lossy(),
        "--btfgen",
        &dir.join("hub").to_string_lossy(),
        "-o",
        &pkg,
    ]);
    assert!(f.status.success(), "build failed:\n{}", f.stderr);
    assert!(
        f.stderr.contains("kernel BTF for 1 kernel(s)"),
        "{}",
        f.stderr
    );
    let i = run(&["info", &pkg]);
    assert!(i.stdout.contains("kernel BTF carried ("), "{}", i.stdout);
    let s = Session::start(&["-j", &pkg, "--target_comm", "edge-trigger"]);
    trigger(&["exit", "7"]);
    let file = format!("\"filename\":\"{}\"", fixtures().trigger());
    let out = s.wait_for(|o| o.contains(&file));
    let f = s.stop_with(libc::SIGINT);
    assert!(f.status.success(), "{}", f.stderr);
    assert!(out.contains(&file), "{out}\n{}", f.stderr);
    assert!(
        out.contains(&format!("\"ppid\":{}", std::process::id())),
        "{out}"
    );
    assert_no_leaks(&["compat_exec", "events", "edge_compat_heap"]);
}
