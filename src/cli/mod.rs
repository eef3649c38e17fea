//! The face: edge-ecli's own command line (argh), one file per subcommand. Flags are defined
//! in each subcommand's struct, parsed by argh (after the flag layer, `argv`), and validated
//! in one place per subcommand (`options()`); the package's own flags (ARGS after PROG) are
//! never seen by argh. Completion scripts and the man page are generated from the same
//! definitions (`completion`).

mod argv;
mod build;
mod completion;
mod ctl;
mod daemon;
mod info;
mod login;
mod pack;
mod progress;
mod pull;
mod push;
mod run;
mod signals;
mod source_flags;
mod version;

#[doc(hidden)]
pub use info::{render as render_info, render_wasm as render_wasm_info};

use argh::{ArgsInfo, FromArgs};

use crate::error::Result;
use crate::logger;

#[derive(FromArgs, ArgsInfo)]
/// Run portable eBPF tools on this kernel: eunomia package.json, raw .bpf.o, or Wasm apps.
/// Short form: `edge-ecli PROG [ARGS...]` is `edge-ecli run PROG [ARGS...]`.
struct Cli {
    /// diagnostics on stderr (startup phases, attach steps)
    #[argh(switch, short = 'v')]
    verbose: bool,
    /// print the version and exit
    #[argh(switch, short = 'V')]
    version: bool,
    #[argh(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(FromArgs, ArgsInfo)]
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
    Login(login::LoginCmd),
    Logout(login::LogoutCmd),
    Daemon(daemon::DaemonCmd),
    Ctl(ctl::CtlCmd),
    Completion(completion::CompletionCmd),
    Man(completion::ManCmd),
    Version(version::VersionCmd),
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
            _ => None,
        }
    }
}

fn parse(argv: &[String]) -> std::result::Result<Cli, argh::EarlyExit> {
    let strs: Vec<&str> = argv.iter().skip(1).map(String::as_str).collect();
    Cli::from_args(&["edge-ecli"], &strs)
}

/// The top-level help, as `edge-ecli --help` prints it.
fn top_help() -> String {
    match Cli::from_args(&["edge-ecli"], &["--help"]) {
        Err(e) => argv::help_text(&e.output),
        Ok(_) => String::new(),
    }
}

/// Runs edge-ecli with `argv` (argv[0] first); returns the exit code.
pub fn main(argv: Vec<String>) -> i32 {
    // A shell's completion script asking for candidates (`edge-ecli completion SHELL`).
    if std::env::var_os(completion::COMPLETE_VAR).is_some() {
        print!("{}", completion::candidates(argv.get(1..).unwrap_or(&[])));
        return 0;
    }
    logger::mark_start();
    let argv = match argv::prepare(argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("edge-ecli: {e}");
            return e.kind().exit_code();
        }
    };
    let cli = match parse(&argv) {
        Ok(c) => c,
        Err(early) => {
            return match early.status {
                Ok(()) => {
                    println!("{}", argv::help_text(&early.output));
                    0
                }
                Err(()) => {
                    eprintln!("{}", argv::error_text(&early.output));
                    eprintln!("Run `edge-ecli --help` for usage.");
                    2
                }
            };
        }
    };
    if cli.version {
        println!("{}", version::line());
        return 0;
    }
    let Some(cmd) = cli.cmd else {
        eprint!("{}", top_help());
        return 2;
    };
    let run_verbose = matches!(&cmd, Cmd::Run(r) if r.verbose);
    logger::init(if run_verbose { 2 } else { cli.verbose as u8 });
    match dispatch(cmd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("edge-ecli: {e}");
            e.kind().exit_code()
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
        Cmd::Login(l) => l.main(),
        Cmd::Logout(l) => l.main(),
        Cmd::Daemon(d) => d.main(),
        Cmd::Ctl(c) => c.main(),
        Cmd::Completion(c) => c.main(),
        Cmd::Man(m) => m.main(),
        Cmd::Version(v) => v.main(),
    }
}
