//! A user's first hour with the command line, read as the user reads it: help and version
//! spelled every usual way, a suggestion for a mistyped command or flag, package flags with
//! dashes, short filter flags and hints, exit codes by kind of error, `info` of a Wasm app,
//! shell completion that completes, a man page that renders and a systemd unit that checks.
//! None of these needs root, a compiler or the kernel.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::*;

/// Exit status `code`, one line on stderr, with every `want` in it.
fn fails(f: &Finished, code: i32, want: &[&str]) {
    assert_eq!(
        f.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        f.stdout,
        f.stderr
    );
    for w in want {
        assert!(f.stderr.contains(w), "{w:?} not in:\n{}", f.stderr);
    }
    assert!(!f.stderr.contains("panicked"), "{}", f.stderr);
}

#[test]
fn help_and_version_every_usual_way() {
    for args in [&["-h"][..], &["--help"], &["help"]] {
        let f = run(args);
        assert_eq!(f.status.code(), Some(0), "{args:?}: {}", f.stderr);
        assert!(
            f.stdout.starts_with("Usage: edge-ecli"),
            "{args:?}: {}",
            f.stdout
        );
        assert!(f.stdout.contains("-h, --help"), "{}", f.stdout);
        assert!(f.stdout.contains("completion"), "{}", f.stdout);
    }
    // Every subcommand, nested ones too, takes -h.
    for cmd in [
        "run",
        "info",
        "pack",
        "build",
        "pull",
        "push",
        "login",
        "logout",
        "daemon",
        "ctl",
        "completion",
        "man",
        "version",
    ] {
        let f = run(&[cmd, "-h"]);
        assert_eq!(f.status.code(), Some(0), "{cmd} -h: {}", f.stderr);
        assert!(
            f.stdout.starts_with(&format!("Usage: edge-ecli {cmd}")),
            "{cmd} -h: {}",
            f.stdout
        );
    }
    let f = run(&["ctl", "logs", "-h"]);
    assert!(f.stdout.contains("--tail"), "{}", f.stdout);
    // PROG and the package's ARGS: brackets that close.
    for cmd in [&["run", "-h"][..], &["ctl", "start", "-h"]] {
        let f = run(cmd);
        let usage = f.stdout.lines().next().unwrap_or("");
        assert!(usage.ends_with(" [PROG [ARGS...]]"), "{usage}");
    }
    let want = format!("edge-ecli {}\n", env!("CARGO_PKG_VERSION"));
    for args in [&["-V"][..], &["--version"]] {
        let f = run(args);
        assert_eq!(
            (f.status.code(), f.stdout.as_str()),
            (Some(0), want.as_str())
        );
    }
    let f = run(&["version"]);
    assert!(f.stdout.starts_with(&want), "{}", f.stdout);
    assert!(f.stdout.contains(std::env::consts::ARCH), "{}", f.stdout);
    // Nothing at all is a usage error that shows the help.
    let f = run(&[]);
    assert_eq!(f.status.code(), Some(2));
    assert!(f.stderr.contains("Usage: edge-ecli"), "{}", f.stderr);
}

#[test]
fn mistyped_commands_flags_and_references_are_named() {
    fails(
        &run(&["rnu", "x.json"]),
        2,
        &["unknown command `rnu`", "did you mean `edge-ecli run`?"],
    );
    fails(&run(&["lsit"]), 2, &["did you mean `edge-ecli ctl list`?"]);
    fails(
        &run(&["ctl", "lsit"]),
        2,
        &["lsit", "Did you mean `edge-ecli ctl list`?"],
    );
    fails(
        &run(&["run", "--timout", "3", "x.json"]),
        2,
        &["--timout", "Did you mean `--timeout`?"],
    );
    fails(
        &run(&["frobnicate"]),
        2,
        &["`frobnicate` is neither a command nor a file", "run, info"],
    );
    // A docker-style reference without a registry is a missing file, and said to be one.
    let f = run(&["pull", "example/sigsnoop:v1"]);
    fails(
        &f,
        1,
        &[
            "example/sigsnoop:v1: no such file",
            "lacks its registry",
            "localhost:5000/example/sigsnoop:v1",
        ],
    );
    assert_eq!(f.stderr.lines().count(), 1, "{}", f.stderr);
}

#[test]
fn exit_codes_follow_the_kind_of_error() {
    let p = example("sigsnoop.bpf.o");
    // A bad command line of edge-ecli: 2, one line.
    for (args, want) in [
        (&["run", "--timeout", "abc", &p][..], "--timeout abc"),
        (&["run", "--timeout", "-1", &p], "--timeout -1"),
        (&["run", "--max-memory", "0", &p], "--max-memory 0"),
        (&["run", "-o", "yaml", &p], "-o yaml"),
        (&["run", "--timestamp", &p], "--timestamp"),
        (&["run"], "PROG is missing"),
        (&["completion", "tcsh"], "completion tcsh"),
        (
            &[
                "daemon",
                "--listen",
                "127.0.0.1:1",
                "--socket",
                "/nonexistent/s",
            ],
            "--listen needs --token-file",
        ),
    ] {
        let f = run(args);
        fails(&f, 2, &[want]);
        assert_eq!(f.stderr.lines().count(), 1, "{args:?}: {}", f.stderr);
    }
    // The package's own command line is a command line too.
    fails(
        &run(&["run", &p, "--target_signal", "99999999999"]),
        2,
        &["does not fit int"],
    );
    // Anything else: 1.
    fails(&run(&["run", "/nonexistent/x.json"]), 1, &["cannot open"]);
    let junk = std::env::temp_dir().join(format!("edge-ecli-junk-{}", std::process::id()));
    std::fs::write(&junk, b"hello").unwrap();
    fails(
        &run(&["info", junk.to_str().unwrap()]),
        1,
        &["not a package"],
    );
    let _ = std::fs::remove_file(&junk);
}

#[test]
fn package_flags_take_dashes_short_filters_and_hints() {
    let p = example("package.json");
    let h = run(&["run", &p, "-h"]);
    assert_eq!(h.status.code(), Some(0), "{}", h.stderr);
    assert!(
        h.stdout
            .starts_with(&format!("Usage: edge-ecli run {p} [OPTIONS]")),
        "{}",
        h.stdout
    );
    // sigsnoop's pid filter gets libbpf-tools' -p.
    assert!(
        h.stdout.contains("-p, --filtered_pid <pid_t>"),
        "{}",
        h.stdout
    );
    // The short form and -h after PROG give the same help.
    assert_eq!(run(&[&p, "-h"]).stdout, h.stdout);
    // Dashes are underscores: a wrong value reaches the flag's own check.
    fails(
        &run(&["run", &p, "--filtered-pid", "abc"]),
        2,
        &["--filtered_pid", "not an integer"],
    );
    fails(&run(&["run", &p, "-p", "abc"]), 2, &["not an integer"]);
    let f = run(&["run", &p, "--filtred-pid", "1"]);
    fails(
        &f,
        2,
        &[
            "unknown argument \"--filtred-pid\"",
            "did you mean --filtered_pid?",
            &format!("`edge-ecli run {p} --help`"),
        ],
    );
    assert!(!f.stderr.contains("sigsnoop_bpf --help"), "{}", f.stderr);
    // edge-ecli's own flags after PROG: where they go.
    for flag in ["-j", "--timeout=3", "--json"] {
        fails(
            &run(&["run", &p, flag]),
            2,
            &[
                &format!("{flag} is a flag of edge-ecli"),
                &format!("edge-ecli run {flag} {p}"),
            ],
        );
    }
    // An option's value moves with it.
    fails(
        &run(&["run", &p, "--timeout", "3"]),
        2,
        &[&format!("(`edge-ecli run --timeout 3 {p}`)")],
    );
}

#[test]
fn info_shows_what_a_wasm_app_carries() {
    let f = run(&["info", &example("sigsnoop.wasm")]);
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    for want in [
        "ABI: WASI preview1, wasm_bpf (the wasm-bpf ABI)",
        "entry: _start (a WASI command)",
        "memory: initial 2 pages (128.0 KiB)",
        "wasm_bpf: wasm_load_bpf_object",
        "wasi_snapshot_preview1: args_get",
        "[1] BPF object at data segment",
        "sig_trace                tracepoint/signal/signal_generate",
        "sig_events               perf_event_array",
        "struct event (size 32",
    ] {
        assert!(f.stdout.contains(want), "{want:?} missing:\n{}", f.stdout);
    }
    // The embedded object is the committed one, byte for byte.
    let obj = std::fs::metadata(example("sigsnoop.bpf.o")).unwrap().len();
    assert!(
        f.stdout
            .contains(&format!("object: embedded ({obj} bytes)")),
        "{}",
        f.stdout
    );
    // A module with an import nobody provides says it will not run.
    let m = wat_module(
        r#"(module (import "env" "printf" (func)) (memory (export "memory") 1) (func (export "_start")))"#,
    );
    let f = run(&["info", &m]);
    assert!(
        f.stdout
            .contains("not provided by edge-ecli, so it will not run: env.printf"),
        "{}",
        f.stdout
    );
    assert!(f.stdout.contains("none found"), "{}", f.stdout);
}

/// A Wasm module from its text, in this run's scratch directory.
fn wat_module(text: &str) -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(format!("m{}.wasm", text.len()));
    std::fs::write(&p, wat::parse_str(text).unwrap()).unwrap();
    p.to_string_lossy().into_owned()
}

/// The completion script for `shell`, in this run's scratch directory.
fn completion(shell: &str) -> String {
    let f = run(&["completion", shell]);
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(format!("completion.{shell}"));
    std::fs::write(&p, f.stdout).unwrap();
    p.to_string_lossy().into_owned()
}

/// Runs `script` in `prog` with the binary under test on PATH as `edge-ecli` (the completion
/// scripts call it back for the candidates).
fn shell(prog: &str, script: &str) -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli/bin");
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("edge-ecli");
    if !link.exists() {
        std::os::unix::fs::symlink(bin(), &link).unwrap();
    }
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = Command::new(prog)
        .args(["-c", script])
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{prog}: {e} (bash tests/setup.sh installs zsh and fish)"));
    assert!(
        o.status.success(),
        "{prog} -c {script}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[cfg_attr(edge_skip_cli, ignore = "needs zsh, fish, groff etc.")]
#[test]
fn completion_completes_in_bash_zsh_and_fish() {
    // bash: the completion function, called as readline would.
    let bash = completion("bash");
    let complete = |words: &str| {
        shell(
            "bash",
            &format!(
                "source {bash}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); _edge_ecli; printf '%s\\n' \"${{COMPREPLY[@]}}\""
            ),
        )
    };
    let out = complete("edge-ecli r");
    assert!(out.lines().any(|l| l == "run"), "{out}");
    let out = complete("edge-ecli run --ti");
    assert!(out.lines().any(|l| l == "--timeout"), "{out}");
    assert!(out.lines().any(|l| l == "--timestamp"), "{out}");
    let out = complete("edge-ecli ctl l");
    assert_eq!(out.lines().collect::<Vec<_>>(), ["list", "logs"], "{out}");
    let out = complete("edge-ecli ctl --socket /s logs --t");
    assert!(out.lines().any(|l| l == "--tail"), "{out}");
    let out = complete("edge-ecli completion ''");
    assert!(out.contains("zsh") && out.contains("fish"), "{out}");
    let out = complete("edge-ecli run --btf /us");
    assert!(out.lines().any(|l| l == "/usr"), "a path: {out}");
    // zsh: the function with compsys's builtins stood in for, printing what they are given.
    let zsh = completion("zsh");
    let out = shell(
        "zsh",
        &format!(
            "_describe() {{ print -l -- \"${{(@P)2}}\" }}; _files() {{ print files }}; \
             source {zsh} 2>/dev/null; words=(edge-ecli ctl ''); CURRENT=3; _edge_ecli; \
             words=(edge-ecli run --); CURRENT=3; _edge_ecli; \
             words=(edge-ecli run --btf ''); CURRENT=4; _edge_ecli"
        ),
    );
    assert!(out.contains("list:List the instances"), "{out}");
    assert!(out.contains("--timeout:stop after SECS seconds"), "{out}");
    assert!(out.lines().any(|l| l == "files"), "{out}");
    // fish: its own completion machinery.
    let fish = completion("fish");
    let out = shell(
        "fish",
        &format!("source {fish}; complete -C'edge-ecli ru'; complete -C'edge-ecli ctl logs --ta'"),
    );
    assert!(out.lines().any(|l| l.starts_with("run\t")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("--tail\t")), "{out}");
}

#[cfg_attr(edge_skip_cli, ignore = "needs zsh, fish, groff etc.")]
#[test]
fn the_man_page_renders_every_flag_of_every_command() {
    let f = run(&["man"]);
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli");
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("edge-ecli.1");
    std::fs::write(&page, &f.stdout).unwrap();
    let o = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-P", "-cbou"])
        .arg(&page)
        .output()
        .expect("groff (bash tests/setup.sh installs it)");
    let warnings = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && warnings.is_empty(), "{warnings}");
    // groff may break a word at a hyphen at a line's end: read it joined.
    let text = String::from_utf8_lossy(&o.stdout)
        .replace("‐\n", "")
        .replace('‐', "-");
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    // Every flag each command's --help lists is in the page.
    for cmd in [
        vec![],
        vec!["run"],
        vec!["pull"],
        vec!["push"],
        vec!["login"],
        vec!["daemon"],
        vec!["ctl"],
        vec!["ctl", "logs"],
        vec!["build"],
    ] {
        let mut args = cmd.clone();
        args.push("--help");
        let help = run(&args).stdout;
        let flags: Vec<&str> = help
            .split_whitespace()
            .filter(|w| w.starts_with("--") && w.len() > 2 && *w != "--help")
            .map(|w| w.trim_end_matches([',', ']', '.', ')']))
            .filter(|w| {
                w.chars()
                    .skip(2)
                    .all(|c| c.is_ascii_lowercase() || c == '-')
            })
            .collect();
        assert!(!cmd.is_empty() || flags.contains(&"--version"), "{help}");
        for fl in flags {
            assert!(text.contains(fl), "{cmd:?}: {fl} not in the man page");
        }
        if !cmd.is_empty() {
            assert!(
                text.contains(&format!("edge-ecli {}", cmd.join(" "))),
                "{cmd:?} has no section"
            );
        }
    }
    assert!(text.contains("EXIT STATUS"), "{text}");
}

#[cfg_attr(edge_skip_cli, ignore = "needs zsh, fish, groff etc.")]
#[test]
fn the_systemd_unit_verifies_and_runs_flags_that_exist() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd/edge-ecli.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    let exec = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart line");
    let words: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(words[..2], ["/usr/local/bin/edge-ecli", "daemon"], "{exec}");
    // The daemon accepts these flags: argh reads them all before --help.
    let mut args: Vec<&str> = words[1..].to_vec();
    args.push("--help");
    let f = run(&args);
    assert_eq!(f.status.code(), Some(0), "{exec}: {}", f.stderr);
    // systemd reads the unit without a complaint (with the binary under test in the
    // binary's place: verify checks that it is executable).
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("systemd");
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("edge-ecli.service");
    std::fs::write(&copy, text.replace("/usr/local/bin/edge-ecli", &bin())).unwrap();
    // Its Documentation= is the man page edge-ecli prints, installed where man finds it.
    let man1 = dir.join("man/man1");
    std::fs::create_dir_all(&man1).unwrap();
    std::fs::write(man1.join("edge-ecli.1"), run(&["man"]).stdout).unwrap();
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .env("MANPATH", dir.join("man"))
        .output()
        .expect("systemd-analyze");
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && out.trim().is_empty(), "{out}");
}
