//! The committed, ready-to-run examples (examples/sigsnoop): fresh against their sources,
//! exactly what `build` and a rebuild make, and running on the kernel.

use std::path::Path;
use std::process::Command;

use crate::common::*;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The STAMP lines: "clang: VERSION" and "HASH  PATH" for every input.
fn stamp() -> (String, Vec<(String, String)>) {
    let text = std::fs::read_to_string(root().join("examples/STAMP")).unwrap();
    let mut clang = String::new();
    let mut files = Vec::new();
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some(v) = l.strip_prefix("clang: ") {
            clang = v.to_string();
        } else if let Some((h, p)) = l.split_once("  ") {
            files.push((h.to_string(), p.to_string()));
        }
    }
    (clang, files)
}

#[test]
fn examples_match_their_sources() {
    let (_, files) = stamp();
    assert!(files.len() >= 5, "STAMP lists its inputs");
    for (hash, path) in files {
        let o = Command::new("sha256sum")
            .arg(root().join(&path))
            .output()
            .unwrap();
        let now = String::from_utf8_lossy(&o.stdout);
        assert_eq!(
            now.split_whitespace().next(),
            Some(hash.as_str()),
            "{path} changed since the examples were built: run `bash examples/build.sh` and commit what it writes"
        );
    }
}

#[test]
fn example_package_holds_the_committed_object_and_its_doc_comments() {
    // `pack` needs no compiler: the object inside package.json must be the committed one.
    let f = run(&["pack", &example("sigsnoop.bpf.o")]);
    assert!(f.status.success(), "{}", f.stderr);
    let object_field = |text: &str| {
        let start = text.find("\"bpf_object\":\"").expect("bpf_object") + 14;
        text[start..start + text[start..].find('"').unwrap()].to_string()
    };
    let pkg = std::fs::read_to_string(example("package.json")).unwrap();
    assert!(
        object_field(&f.stdout) == object_field(&pkg),
        "examples/sigsnoop/package.json is stale: run `bash examples/build.sh`"
    );
    // What `build` added from the source's `///` comments.
    assert!(
        pkg.contains(r#""description":"Trace only signals sent by this process id""#),
        "{pkg}"
    );
}

#[cfg_attr(edge_skip_toolchain, ignore = "needs clang-19, bpftool")]
#[test]
fn examples_rebuild_to_the_committed_bytes() {
    if !toolchain_available("examples_rebuild_to_the_committed_bytes") {
        return;
    }
    let (clang, _) = stamp();
    let have = Command::new("clang-19").arg("--version").output().unwrap();
    let have = String::from_utf8_lossy(&have.stdout);
    if have.lines().next() != Some(clang.as_str()) {
        // Another compiler makes other bytes; the source hashes above still hold.
        eprintln!("SKIPPED examples_rebuild_to_the_committed_bytes: clang is {have:?}, the examples were built with {clang:?}");
        return;
    }
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("examples-rebuilt");
    let st = Command::new("bash")
        .arg(root().join("examples/build.sh"))
        .arg(bin())
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    for f in ["sigsnoop.bpf.o", "package.json", "sigsnoop.wasm"] {
        assert!(
            std::fs::read(out.join(f)).unwrap() == std::fs::read(example(f)).unwrap(),
            "examples/sigsnoop/{f} is not what its sources build: run `bash examples/build.sh`"
        );
    }
}

#[cfg_attr(edge_skip_root, ignore = "needs root and kernel BTF")]
#[test]
fn example_package_and_wasm_app_show_signals() {
    let _g = serial();
    if !kernel_available("example_package_and_wasm_app_show_signals") {
        return;
    }
    let me = std::process::id().to_string();
    // The package, as NDJSON, filtered to our own signals.
    let s = Session::start(&["-j", &example("package.json"), "--filtered_pid", &me]);
    let cpid = signal_sleeper(&[libc::SIGUSR1]);
    let out = s.wait_for(|o| o.contains(&cpid));
    let f = s.stop_with(libc::SIGINT);
    assert!(f.status.success(), "{}", f.stderr);
    let out = out + &f.stdout;
    let row = json_lines(&out)
        .into_iter()
        .find(|l| field(l, "tpid") == Some(cpid.as_str()))
        .unwrap_or_else(|| panic!("no event for {cpid}:\n{out}"));
    assert_eq!(field(&row, "sig"), Some("10"));
    assert_eq!(field(&row, "pid"), Some(me.as_str()));

    // The Wasm app: its own flags (-p PID) and signal names.
    let s = Session::start_until(&[&example("sigsnoop.wasm"), "-p", &me], "tracing signals");
    let cpid = signal_sleeper(&[libc::SIGUSR2]);
    let out = s.wait_for(|o| o.contains(&cpid));
    let f = s.stop_with(libc::SIGTERM);
    assert!(f.status.success(), "{}", f.stderr);
    let out = out + &f.stdout;
    let row = json_lines(&out)
        .into_iter()
        .find(|l| field(l, "tpid") == Some(cpid.as_str()))
        .unwrap_or_else(|| panic!("no event for {cpid}:\n{out}"));
    assert_eq!(field(&row, "sig_name"), Some("SIGUSR2"));
    assert_no_leaks(&["sig_trace", "sig_events"]);
}
