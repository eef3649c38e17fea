//! The flag layer: what the user typed, made into what argh parses, and argh's answers made
//! into what the user reads. The short form `edge-ecli PROG` becomes `run PROG` (unless the
//! word is a mistyped command), PROG `-` becomes standard input, `-h` is `--help` wherever
//! argh would take `--help` (argh knows only `--help` and `help`), and an unknown word gets
//! the closest command or flag as a suggestion. Every decision asks argh itself where a word
//! sits, so nothing here knows a subcommand's flags.

use std::path::Path;

use argh::{ArgsInfo, CommandInfoWithArgs, SubCommands};

use super::{parse, Cli, Cmd};
use crate::error::{Error, Result};
use crate::source::STDIN_PATH;

/// Every command path of the tree (`run`, `ctl list`, ...), from argh's own definitions.
pub fn command_paths() -> Vec<String> {
    fn walk(c: &CommandInfoWithArgs, prefix: &str, out: &mut Vec<String>) {
        for s in &c.commands {
            let path = if prefix.is_empty() {
                s.name.to_string()
            } else {
                format!("{prefix} {}", s.name)
            };
            walk(&s.command, &path, out);
            out.push(path);
        }
    }
    let mut out = Vec::new();
    walk(&Cli::get_args_info(), "", &mut out);
    out
}

/// Every flag spelling of the tree (`--timeout`, `-j`, ...).
fn all_flags() -> Vec<String> {
    fn walk(c: &CommandInfoWithArgs, out: &mut Vec<String>) {
        for f in c.flags {
            if !out.iter().any(|o| o == f.long) {
                out.push(f.long.to_string());
            }
        }
        for s in &c.commands {
            walk(&s.command, out);
        }
    }
    let mut out = Vec::new();
    walk(&Cli::get_args_info(), &mut out);
    out
}

/// A word where a command or PROG goes that is neither a command nor anything PROG can be
/// (no path, URL or reference looks like a bare word that does not exist).
fn bare_word(w: &str) -> bool {
    !w.is_empty()
        && !w.contains(['/', '.', ':', '@'])
        && !w.starts_with('-')
        && !Path::new(w).exists()
}

/// The closest command to a mistyped one, matched on the last word (`lsit` -> `ctl list`).
fn suggest_command(word: &str) -> Option<String> {
    let paths = command_paths();
    let last: Vec<&str> = paths
        .iter()
        .map(|p| p.rsplit(' ').next().unwrap_or(p))
        .collect();
    let best = crate::text::closest(word, last.iter().copied())?;
    // Prefer a top-level command when a nested one has the same name.
    paths
        .iter()
        .filter(|p| p.rsplit(' ').next() == Some(best))
        .min_by_key(|p| p.len())
        .cloned()
}

/// Inserts `run` for the short form `edge-ecli PROG ...`; a mistyped command is an error.
pub fn expand_short_form(mut argv: Vec<String>) -> Result<Vec<String>> {
    let Some(pos) = argv
        .iter()
        .skip(1)
        .position(|a| !a.starts_with('-') || a == "-")
    else {
        return Ok(argv);
    };
    let i = pos + 1;
    let known = Cmd::COMMANDS.iter().any(|c| c.name == argv[i]) || argv[i] == "help";
    if known {
        return Ok(argv);
    }
    if bare_word(&argv[i]) {
        let w = &argv[i];
        let names: Vec<&str> = Cmd::COMMANDS.iter().map(|c| c.name).collect();
        return Err(Error::usage(match suggest_command(w) {
            Some(c) => format!("unknown command `{w}`: did you mean `edge-ecli {c}`?"),
            None => format!(
                "`{w}` is neither a command nor a file: the commands are {}; `edge-ecli PROG` runs PROG (a path, -, a URL or HOST/REPO:TAG)",
                names.join(", ")
            ),
        }));
    }
    argv.insert(i, "run".into());
    Ok(argv)
}

/// Rewrites PROG `-` to [`STDIN_PATH`], and only PROG: argh itself says where PROG is, by
/// parsing what comes before a `-` with a stand-in after it. A `-` among the package's own
/// arguments is left alone.
pub fn mark_stdin(argv: &mut [String]) {
    for i in 1..argv.len() {
        if argv[i] != "-" {
            continue;
        }
        let mut probe = argv[..i].to_vec();
        probe.push("\u{1}prog".into());
        if parse(&probe).is_ok_and(|c| c.cmd.as_ref().and_then(Cmd::prog) == Some("\u{1}prog")) {
            argv[i] = STDIN_PATH.into();
            return;
        }
    }
}

/// `-h` becomes `--help` where argh would read `--help` as a request for help: not after
/// PROG, where it belongs to the package (`run PROG -h` is the package's help).
pub fn help_flags(argv: &mut [String]) {
    for i in 1..argv.len() {
        if argv[i] != "-h" {
            continue;
        }
        let mut probe = argv[..i].to_vec();
        probe.push("--help".into());
        if matches!(parse(&probe), Err(e) if e.status.is_ok()) {
            argv[i] = "--help".into();
            return;
        }
    }
}

/// The command line argh is given.
pub fn prepare(argv: Vec<String>) -> Result<Vec<String>> {
    let mut argv = expand_short_form(argv)?;
    mark_stdin(&mut argv);
    help_flags(&mut argv);
    Ok(argv)
}

/// argh's help, with `-h` listed beside `--help`.
pub fn help_text(out: &str) -> String {
    out.replace(
        "  --help, help      display usage information",
        "  -h, --help        display usage information",
    )
    // argh writes a greedy positional as `[NAME...]`; ours is named `PROG [ARGS`.
    .replace("[PROG [ARGS...]", "[PROG [ARGS...]]")
}

/// argh's error, with the closest command or flag when a word was not recognised.
pub fn error_text(out: &str) -> String {
    let out = out.trim_end();
    let Some(word) = out
        .strip_prefix("Unrecognized argument: ")
        .map(|w| w.lines().next().unwrap_or(w).trim())
    else {
        return out.to_string();
    };
    let near = if word.starts_with('-') {
        let flags = all_flags();
        crate::text::closest(word, flags.iter().map(String::as_str)).map(str::to_string)
    } else {
        suggest_command(word).map(|c| format!("edge-ecli {c}"))
    };
    match near {
        Some(n) => format!("{out}\nDid you mean `{n}`?"),
        None => out.to_string(),
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
        let e = |a: &[&str]| expand_short_form(v(a)).unwrap();
        assert_eq!(
            e(&["e", "x.json", "-p", "1"]),
            v(&["e", "run", "x.json", "-p", "1"])
        );
        assert_eq!(e(&["e", "-v", "x.json"]), v(&["e", "-v", "run", "x.json"]));
        assert_eq!(e(&["e", "info", "x"]), v(&["e", "info", "x"]));
        assert_eq!(e(&["e", "-"]), v(&["e", "run", "-"]));
    }

    #[test]
    fn mistyped_commands_are_named() {
        let e = |a: &[&str]| expand_short_form(v(a)).unwrap_err().to_string();
        assert!(e(&["e", "rnu", "x.json"]).contains("did you mean `edge-ecli run`?"));
        assert!(e(&["e", "lsit"]).contains("did you mean `edge-ecli ctl list`?"));
        assert!(e(&["e", "frobnicate"]).contains("neither a command nor a file"));
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
        let mut prepared = prepare(argv).unwrap();
        assert_eq!(prepared[6], "-h", "after PROG -h is the package's");
        let cli = parse(&prepared).unwrap_or_else(|e| panic!("{}", e.output));
        let Some(Cmd::Run(r)) = cli.cmd else { panic!() };
        assert!(r.json);
        assert_eq!(r.timeout.as_deref(), Some("2"));
        assert_eq!(r.rest, v(&["p.json", "-h", "--pid", "3", "-"]));
        prepared = prepare(v(&["e", "run", "-j", "-h"])).unwrap();
        assert_eq!(prepared[3], "--help");
        prepared = prepare(v(&["e", "-h"])).unwrap();
        assert_eq!(prepared[1], "--help");
        prepared = prepare(v(&["e", "ctl", "start", "n", "p.json", "-h"])).unwrap();
        assert_eq!(prepared[5], "-h");
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

    #[test]
    fn unknown_flags_get_the_closest() {
        let t = error_text("Unrecognized argument: --timout\n");
        assert!(t.ends_with("Did you mean `--timeout`?"), "{t}");
    }
}
