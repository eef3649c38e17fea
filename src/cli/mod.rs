//! The face: edge-ecli's own command line (argh), one file per subcommand. Flags are defined
//! in each subcommand's struct, parsed by argh, and validated in one place per subcommand
//! (`options()`); the package's own flags (ARGS after PROG) are never seen by argh.

mod build;
mod ctl;
mod daemon;
mod info;
mod pack;
mod pull;
mod push;
mod run;
mod signals;
mod source_flags;

#[doc(hidden)]
pub use info::render as render_info;

use argh::{FromArgs, SubCommands};

use crate::error::Result;
use crate::logger;
use crate::source::STDIN_PATH;

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
// Parsed once per process: the size of the run variant costs nothing.
#[allow(clippy::large_enum_variant)]
enum Cmd {
    Run(run::RunCmd),
    Info(info::InfoCmd),
    Pack(pack::PackCmd),
    Build(build::BuildCmd),
    Pull(pull::PullCmd),
    Push(push::PushCmd),
    Daemon(daemon::DaemonCmd),
    Ctl(ctl::CtlCmd),
}

impl Cmd {
    /// The argument that names the package, where the subcommand has one.
    fn prog(&self) -> Option<&str> {
        match self {
            Cmd::Run(r) => r.rest.first().map(String::as_str),
            Cmd::Info(i) => Some(&i.prog),
            Cmd::Pack(p) => Some(&p.obj),
            Cmd::Build(b) => Some(&b.source),
            Cmd::Pull(p) => Some(&p.reference),
            Cmd::Push(p) => Some(&p.file),
            Cmd::Daemon(_) | Cmd::Ctl(_) => None,
        }
    }
}

fn parse(argv: &[String]) -> std::result::Result<Cli, argh::EarlyExit> {
    let strs: Vec<&str> = argv.iter().skip(1).map(String::as_str).collect();
    Cli::from_args(&["edge-ecli"], &strs)
}

/// Inserts `run` for the short form `edge-ecli PROG ...`.
fn expand_short_form(mut argv: Vec<String>) -> Vec<String> {
    if let Some(pos) = argv
        .iter()
        .skip(1)
        .position(|a| !a.starts_with('-') || a == "-")
    {
        let i = pos + 1;
        let known = Cmd::COMMANDS.iter().any(|c| c.name == argv[i]) || argv[i] == "help";
        if !known {
            argv.insert(i, "run".into());
        }
    }
    argv
}

/// Rewrites PROG `-` to [`STDIN_PATH`], and only PROG: argh itself says where PROG is, by
/// parsing what comes before a `-` with a stand-in after it. A `-` among the package's own
/// arguments is left alone.
fn mark_stdin(argv: &mut [String]) {
    for i in 1..argv.len() {
        if argv[i] != "-" {
            continue;
        }
        let mut probe = argv[..i].to_vec();
        probe.push("\u{1}prog".into());
        if parse(&probe).is_ok_and(|c| c.cmd.prog() == Some("\u{1}prog")) {
            argv[i] = STDIN_PATH.into();
            return;
        }
    }
}

/// Runs edge-ecli with `argv` (argv[0] first); returns the exit code.
pub fn main(argv: Vec<String>) -> i32 {
    logger::mark_start();
    let mut argv = expand_short_form(argv);
    mark_stdin(&mut argv);
    let cli = match parse(&argv) {
        Ok(c) => c,
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
        Cmd::Run(r) => r.main(),
        Cmd::Info(i) => i.main(),
        Cmd::Pack(p) => p.main(),
        Cmd::Build(b) => b.main(),
        Cmd::Pull(p) => p.main(),
        Cmd::Push(p) => p.main(),
        Cmd::Daemon(d) => d.main(),
        Cmd::Ctl(c) => c.main(),
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
        let argv = v(&[
            "e",
            "run",
            "-j",
            "--timeout",
            "2",
            "p.json",
            "-h",
            "--pid",
            "3",
            "-",
        ]);
        let cli = parse(&argv).unwrap_or_else(|e| panic!("{}", e.output));
        let Cmd::Run(r) = cli.cmd else { panic!() };
        assert!(r.json);
        assert_eq!(r.timeout.as_deref(), Some("2"));
        assert_eq!(r.rest, v(&["p.json", "-h", "--pid", "3", "-"]));
    }

    #[test]
    fn only_prog_dash_means_stdin() {
        let mut argv = v(&["e", "run", "--btf", "/b", "-", "--name", "-"]);
        mark_stdin(&mut argv);
        assert_eq!(
            argv,
            v(&["e", "run", "--btf", "/b", STDIN_PATH, "--name", "-"])
        );
        let mut argv = v(&["e", "run", "p.json", "--name", "-"]);
        mark_stdin(&mut argv);
        assert_eq!(argv, v(&["e", "run", "p.json", "--name", "-"]));
        let mut argv = v(&["e", "info", "-"]);
        mark_stdin(&mut argv);
        assert_eq!(argv, v(&["e", "info", STDIN_PATH]));
    }
}
