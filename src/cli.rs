//! The command line of edge-ecli itself (argh). The package's own flags are parsed in `args`.

use argh::FromArgs;

use crate::error::Result;
use crate::run::{self, Outcome, RunOptions};
use crate::{info, logger, package, source};

#[derive(FromArgs)]
/// Run portable eBPF tools on this kernel: eunomia package.json, raw .bpf.o, or Wasm apps.
/// Short form: `edge-ecli PROG [ARGS...]` is `edge-ecli run PROG [ARGS...]`.
struct Cli {
    /// diagnostics on stderr (startup phases, attach steps)
    #[argh(switch, short = 'v')]
    verbose: bool,
    #[argh(subcommand)]
    cmd: Cmd,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Cmd {
    Run(RunCmd),
    Info(InfoCmd),
    Pack(PackCmd),
}

#[derive(FromArgs)]
/// Load, attach and run a package; print its events until Ctrl-C, SIGTERM or --timeout.
/// ARGS after PROG go to the package's own flags (`run PROG -h` lists them).
#[argh(subcommand, name = "run")]
struct RunCmd {
    /// print events as NDJSON (one JSON object per line)
    #[argh(switch, short = 'j')]
    json: bool,
    /// stop after SECS seconds (decimals allowed)
    #[argh(option, arg_name = "SECS")]
    timeout: Option<String>,
    /// kernel BTF file to use instead of /sys/kernel/btf/vmlinux
    #[argh(option, arg_name = "FILE")]
    btf: Option<String>,
    /// struct that decodes the records of the event maps (for raw objects)
    #[argh(option, arg_name = "NAME")]
    event_type: Option<String>,
    /// attach uprobes to PATH:FUNC instead of what their sections name
    #[argh(option, arg_name = "PATH:FUNC")]
    uprobe_target: Option<String>,
    /// uprobes fire only in process PID
    #[argh(option, arg_name = "PID")]
    uprobe_pid: Option<u32>,
    /// for Wasm apps: environment variable K=V of the guest (repeatable; none by default)
    #[argh(option, arg_name = "K=V")]
    env: Vec<String>,
    /// for Wasm apps: grant the guest a host directory, HOST[:GUEST] (repeatable; none by default)
    #[argh(option, arg_name = "DIR")]
    dir: Vec<String>,
    /// for Wasm apps: cap on guest memory in MiB (default 256)
    #[argh(option, arg_name = "MIB", default = "256")]
    max_memory: u64,
    /// debug diagnostics of edge-ecli on stderr
    #[argh(switch, short = 'v')]
    verbose: bool,
    /// package: path to package.json, .bpf.o or .wasm, or - for standard input
    #[argh(positional, arg_name = "PROG")]
    prog: String,
    /// arguments for the package's own flags (everything after PROG)
    #[argh(positional, greedy, arg_name = "ARGS")]
    args: Vec<String>,
}

/// Options of `run` that take a value: needed to find PROG before argh sees the line.
const RUN_VALUE_OPTIONS: [&str; 8] = [
    "--uprobe-target",
    "--uprobe-pid",
    "--timeout",
    "--btf",
    "--event-type",
    "--env",
    "--dir",
    "--max-memory",
];

/// Splits `... run [OPTIONS] PROG ARGS...` into the part argh parses and ARGS, which belong to
/// the package (argh would take a `-h` among them as its own).
fn split_package_args(argv: &mut Vec<String>) -> Vec<String> {
    let Some(run) = argv.iter().position(|a| a == "run") else {
        return vec![];
    };
    let mut i = run + 1;
    while i < argv.len() {
        let a = argv[i].as_str();
        if RUN_VALUE_OPTIONS.contains(&a) {
            i += 2;
        } else if a.starts_with('-') && a != "-" {
            i += 1;
        } else {
            return argv.split_off(i + 1);
        }
    }
    vec![]
}

#[derive(FromArgs)]
/// Show a package's programs, maps, event types and flags without loading anything.
#[argh(subcommand, name = "info")]
struct InfoCmd {
    /// package: path to package.json or .bpf.o, or - for standard input
    #[argh(positional, arg_name = "PROG")]
    prog: String,
}

#[derive(FromArgs)]
/// Make an eunomia-compatible package.json from a BPF object.
#[argh(subcommand, name = "pack")]
struct PackCmd {
    /// output file (default: standard output)
    #[argh(option, short = 'o', arg_name = "FILE")]
    output: Option<String>,
    /// the BPF object (.bpf.o), or - for standard input
    #[argh(positional, arg_name = "OBJ")]
    obj: String,
}

const SUBCOMMANDS: [&str; 4] = ["run", "info", "pack", "help"];

/// Inserts `run` for the short form `edge-ecli PROG ...`.
fn expand_short_form(mut argv: Vec<String>) -> Vec<String> {
    if let Some(pos) = argv
        .iter()
        .skip(1)
        .position(|a| !a.starts_with('-') || a == "-")
    {
        let i = pos + 1;
        if !SUBCOMMANDS.contains(&argv[i].as_str()) {
            argv.insert(i, "run".into());
        }
    }
    argv
}

pub fn main(argv: Vec<String>) -> i32 {
    let mut argv = expand_short_form(argv);
    // argh takes a lone `-` for an option; PROG `-` means standard input.
    if let Some(dash) = argv.iter().skip(1).position(|a| a == "-") {
        argv[dash + 1] = source::STDIN_PATH.into();
    }
    let package_args = split_package_args(&mut argv);
    let strs: Vec<&str> = argv.iter().map(String::as_str).collect();
    let cli = match Cli::from_args(&["edge-ecli"], strs.get(1..).unwrap_or(&[])) {
        Ok(mut c) => {
            if let Cmd::Run(r) = &mut c.cmd {
                r.args = package_args;
            }
            c
        }
        Err(early) => {
            return match early.status {
                Ok(()) => {
                    println!("{}", early.output);
                    0
                }
                Err(()) => {
                    eprintln!("{}", early.output.trim_end());
                    eprintln!("Run `edge-ecli --help` for usage.");
                    2
                }
            };
        }
    };
    let run_verbose = matches!(&cli.cmd, Cmd::Run(r) if r.verbose);
    logger::init(if run_verbose { 2 } else { cli.verbose as u8 });
    match dispatch(cli.cmd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("edge-ecli: {e}");
            1
        }
    }
}

fn dispatch(cmd: Cmd) -> Result<i32> {
    match cmd {
        Cmd::Run(r) => {
            let timeout = match r.timeout.as_deref() {
                None => None,
                Some(t) => Some(
                    t.parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite() && *v >= 0.0 && *v < 1e9)
                        .ok_or_else(|| {
                            crate::error::Error::msg(format!(
                                "--timeout {t}: expected a number of seconds"
                            ))
                        })?,
                ),
            };
            for e in &r.env {
                if !e.contains('=') {
                    return Err(crate::error::Error::msg(format!("--env {e}: expected K=V")));
                }
            }
            if r.max_memory == 0 || r.max_memory > 4096 {
                return Err(crate::error::Error::msg(format!(
                    "--max-memory {}: expected 1..4096 MiB",
                    r.max_memory
                )));
            }
            let dirs = r
                .dir
                .iter()
                .map(|d| match d.split_once(':') {
                    Some((h, g)) => (h.to_string(), g.to_string()),
                    None => (d.clone(), d.clone()),
                })
                .collect();
            let out = run::run(RunOptions {
                prog: r.prog,
                args: r.args,
                json: r.json,
                timeout,
                btf: r.btf,
                event_type: r.event_type,
                env: r.env,
                dirs,
                max_memory: (r.max_memory as usize) << 20,
                uprobe_target: r.uprobe_target,
                uprobe_pid: r.uprobe_pid,
            })?;
            match out {
                Outcome::Help(h) => {
                    print!("{h}");
                    Ok(0)
                }
                Outcome::Done => Ok(0),
                Outcome::Exit(code) => Ok(code),
            }
        }
        Cmd::Info(i) => {
            let bytes = source::read(&i.prog)?;
            let object = package::load(bytes, &i.prog).map_err(|e| e.context(&i.prog))?;
            print!("{}", info::render(&object));
            Ok(0)
        }
        Cmd::Pack(p) => {
            let bytes = source::read(&p.obj)?;
            if package::detect(&bytes)? != package::Kind::Elf {
                return Err(crate::error::Error::msg(format!(
                    "{}: pack takes a BPF object (.bpf.o)",
                    p.obj
                )));
            }
            let object = package::load(bytes, &p.obj).map_err(|e| e.context(&p.obj))?;
            let text = package::pack(&object);
            match p.output {
                Some(path) => std::fs::write(&path, text)
                    .map_err(|e| crate::error::Error::msg(format!("{path}: cannot write: {e}")))?,
                None => print!("{text}"),
            }
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn short_form_becomes_run() {
        assert_eq!(
            expand_short_form(v(&["e", "x.json", "-p", "1"])),
            v(&["e", "run", "x.json", "-p", "1"])
        );
        assert_eq!(
            expand_short_form(v(&["e", "-v", "x.json"])),
            v(&["e", "-v", "run", "x.json"])
        );
        assert_eq!(
            expand_short_form(v(&["e", "info", "x"])),
            v(&["e", "info", "x"])
        );
        assert_eq!(expand_short_form(v(&["e", "-"])), v(&["e", "run", "-"]));
    }

    #[test]
    fn run_args_after_prog_go_to_the_package() {
        let mut argv = v(&[
            "e",
            "run",
            "-j",
            "--timeout",
            "2",
            "p.json",
            "-h",
            "--pid",
            "3",
        ]);
        assert_eq!(split_package_args(&mut argv), v(&["-h", "--pid", "3"]));
        let s: Vec<&str> = argv.iter().skip(1).map(String::as_str).collect();
        let cli = Cli::from_args(&["edge-ecli"], &s).unwrap_or_else(|e| panic!("{}", e.output));
        let Cmd::Run(r) = cli.cmd else { panic!() };
        assert!(r.json);
        assert_eq!(r.prog, "p.json");
        assert_eq!(r.timeout.as_deref(), Some("2"));
    }
}
