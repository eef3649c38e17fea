//! `edge-ecli completion bash|zsh|fish` and `edge-ecli man`: shell completion and the man
//! page, both from argh's own flag definitions (`ArgsInfo`), so neither can drift from what
//! the parser accepts. The completion scripts are small and fixed: they ask the binary for
//! candidates (`EDGE_ECLI_COMPLETE=SHELL edge-ecli WORDS...`), as clap's dynamic completion
//! does, so one walk of the definitions serves every shell.

use std::fmt::Write;

use argh::{ArgsInfo, CommandInfoWithArgs, FlagInfoKind, FromArgs, Optionality};

use super::Cli;
use crate::error::{Error, Result};

#[derive(FromArgs, ArgsInfo)]
/// Print a completion script for SHELL (bash, zsh or fish). bash: `source <(edge-ecli
/// completion bash)`; zsh: `edge-ecli completion zsh > "${fpath[1]}/_edge-ecli"`; fish:
/// `edge-ecli completion fish > ~/.config/fish/completions/edge-ecli.fish`.
#[argh(subcommand, name = "completion")]
pub struct CompletionCmd {
    /// bash, zsh or fish
    #[argh(positional, arg_name = "SHELL")]
    shell: String,
}

#[derive(FromArgs, ArgsInfo)]
/// Print the man page (roff): `edge-ecli man > /usr/local/share/man/man1/edge-ecli.1`, or
/// `edge-ecli man | man -l -`.
#[argh(subcommand, name = "man")]
pub struct ManCmd {}

const SHELLS: &[&str] = &["bash", "zsh", "fish"];

impl CompletionCmd {
    pub fn main(self) -> Result<i32> {
        let script = match self.shell.as_str() {
            "bash" => BASH,
            "zsh" => ZSH,
            "fish" => FISH,
            s => {
                return Err(Error::usage(format!(
                    "completion {s}: expected one of {}",
                    SHELLS.join(", ")
                )))
            }
        };
        print!("{script}");
        Ok(0)
    }
}

impl ManCmd {
    pub fn main(self) -> Result<i32> {
        print!("{}", man(&commands()));
        Ok(0)
    }
}

/// One command of the tree, flattened: its path and what argh knows of it.
struct Node {
    /// Words after `edge-ecli` (empty for the top level).
    path: Vec<&'static str>,
    info: CommandInfoWithArgs,
}

impl Node {
    fn children<'a>(&self, all: &'a [Node]) -> impl Iterator<Item = &'a Node> {
        let n = self.path.len();
        let path = self.path.clone();
        all.iter()
            .filter(move |c| c.path.len() == n + 1 && c.path[..n] == path[..])
    }
    fn flags(&self) -> impl Iterator<Item = &argh::FlagInfo<'static>> {
        self.info.flags.iter().filter(|f| !f.hidden)
    }
    /// Does a positional of this command name a file (or anything a path may be)?
    fn takes_files(&self) -> bool {
        self.path.is_empty()
            || self
                .info
                .positionals
                .iter()
                .any(|p| is_file_arg(p.name.split_whitespace().next().unwrap_or("")))
    }
}

/// Argument names whose values are paths (PROG may be one).
fn is_file_arg(name: &str) -> bool {
    matches!(
        name,
        "FILE" | "PATH" | "DIR" | "PROG" | "OBJ" | "SOURCE" | "HEADER"
    )
}

/// Values a positional takes, where they are a fixed set.
fn choices(name: &str) -> &'static [&'static str] {
    if name == "SHELL" {
        SHELLS
    } else {
        &[]
    }
}

fn commands() -> Vec<Node> {
    // Each command before its subcommands, in the order argh lists them.
    fn walk(mut info: CommandInfoWithArgs, path: Vec<&'static str>, out: &mut Vec<Node>) {
        // Its subcommands become nodes of their own (`Node::children`).
        let subs = std::mem::take(&mut info.commands);
        out.push(Node {
            path: path.clone(),
            info,
        });
        for s in subs {
            let mut p = path.clone();
            p.push(s.name);
            walk(s.command, p, out);
        }
    }
    let mut out = Vec::new();
    walk(Cli::get_args_info(), vec![], &mut out);
    out
}

/// The first sentence of a description, on one line.
fn summary(d: &str) -> String {
    let d = d.split_whitespace().collect::<Vec<_>>().join(" ");
    match d.find(". ") {
        Some(i) => d[..i].to_string(),
        None => d.trim_end_matches('.').to_string(),
    }
}

/// `-h` is `--help` everywhere (the flag layer makes it so; argh knows only `--help`).
fn short_of(f: &argh::FlagInfo<'_>) -> Option<char> {
    f.short.or((f.long == "--help").then_some('h'))
}

fn spellings(f: &argh::FlagInfo<'_>) -> Vec<String> {
    let mut v = vec![f.long.to_string()];
    if let Some(c) = short_of(f) {
        v.push(format!("-{c}"));
    }
    v
}

fn value_name<'a>(f: &argh::FlagInfo<'a>) -> Option<&'a str> {
    match f.kind {
        FlagInfoKind::Option { arg_name } => Some(arg_name),
        FlagInfoKind::Switch => None,
    }
}

/// The environment variable that makes edge-ecli answer a completion request instead of
/// running: its value is the shell, the arguments are the words typed so far, the last one
/// the word being completed (as clap's dynamic completion does).
pub const COMPLETE_VAR: &str = "EDGE_ECLI_COMPLETE";

/// The scripts are fixed: each asks edge-ecli for the candidates, which come from argh's
/// definitions at that moment (so an upgraded binary completes its own flags).
const BASH: &str = r#"# bash completion for edge-ecli (edge-ecli completion bash)
_edge_ecli() {
    local line
    COMPREPLY=()
    while IFS= read -r line; do
        if [[ $line == ':files' ]]; then
            compopt -o filenames 2>/dev/null
            while IFS= read -r line; do COMPREPLY+=("$line"); done < <(compgen -f -- "${COMP_WORDS[COMP_CWORD]}")
        else
            COMPREPLY+=("${line%%$'\t'*}")
        fi
    done < <(EDGE_ECLI_COMPLETE=bash "${COMP_WORDS[0]}" "${COMP_WORDS[@]:1:COMP_CWORD}")
}
complete -F _edge_ecli edge-ecli
"#;

const ZSH: &str = r#"#compdef edge-ecli
# zsh completion for edge-ecli (edge-ecli completion zsh)
_edge_ecli() {
    local line files=0
    local -a cands
    for line in "${(@f)$(EDGE_ECLI_COMPLETE=zsh ${words[1]} "${(@)words[2,CURRENT]}")}"; do
        if [[ $line == ':files' ]]; then files=1
        elif [[ -n $line ]]; then cands+=("${line/$'\t'/:}")
        fi
    done
    (( ${#cands} )) && _describe 'edge-ecli' cands
    (( files )) && _files
    return 0
}
_edge_ecli "$@"
"#;

const FISH: &str = r#"# fish completion for edge-ecli (edge-ecli completion fish)
function __edge_ecli_complete
    set -l words (commandline -opc) (commandline -ct)
    for line in (env EDGE_ECLI_COMPLETE=fish $words)
        if test "$line" = ':files'
            __fish_complete_path (commandline -ct)
        else
            echo $line
        end
    end
end
complete -c edge-ecli -f -a '(__edge_ecli_complete)'
"#;

/// The candidates for the last of `words` (the words after `edge-ecli`), one per line as
/// `WORD<TAB>DESCRIPTION`, and `:files` when a path may go there.
pub fn candidates(words: &[String]) -> String {
    let tree = commands();
    let (typed, cur) = match words.split_last() {
        Some((c, t)) => (t, c.as_str()),
        None => (&[][..], ""),
    };
    // Where the words lead: subcommands by name; an option's value is skipped.
    let node_at = |path: &[&str]| tree.iter().find(|n| n.path == path);
    let mut path: Vec<&str> = Vec::new();
    let mut words = typed.iter();
    while let Some(w) = words.next() {
        let mut next = path.clone();
        next.push(w.as_str());
        if node_at(&next).is_some() {
            path = next;
        } else if node_at(&path).is_some_and(|n| {
            n.flags()
                .any(|f| value_name(f).is_some() && spellings(f).iter().any(|s| s == w))
        }) {
            words.next();
        }
    }
    let Some(node) = node_at(&path) else {
        return String::new();
    };
    let mut out = String::new();
    // The value of an option: a path, or nothing we can list.
    if let Some(prev) = typed.last() {
        if let Some(f) = node
            .flags()
            .find(|f| spellings(f).iter().any(|s| s == prev))
        {
            if let Some(arg) = value_name(f) {
                if is_file_arg(arg) {
                    out.push_str(":files\n");
                }
                return out;
            }
        }
    }
    let mut add = |word: &str, desc: &str| {
        if word.starts_with(cur) {
            let _ = writeln!(out, "{word}\t{}", summary(desc));
        }
    };
    if cur.starts_with('-') {
        for f in node.flags() {
            for sp in spellings(f) {
                add(&sp, f.description);
            }
        }
        return out;
    }
    for c in node.children(&tree) {
        add(c.path[c.path.len() - 1], c.info.description);
    }
    for p in node.info.positionals {
        for v in choices(p.name) {
            add(v, "");
        }
    }
    if node.takes_files() {
        out.push_str(":files\n");
    }
    out
}

/// Escaped for roff text.
fn roff(s: &str) -> String {
    let t = s
        .replace('\\', "\\e")
        .replace('-', "\\-")
        .replace('\'', "\\(aq");
    if t.starts_with('.') {
        format!("\\&{t}")
    } else {
        t
    }
}

fn synopsis(n: &Node, tree: &[Node]) -> String {
    let mut s = format!("edge-ecli {}", n.path.join(" "));
    if n.flags().count() > 1 {
        s.push_str(" [OPTIONS]");
    }
    if n.children(tree).next().is_some() {
        s.push_str(" COMMAND");
    }
    for p in n.info.positionals {
        let name = p
            .name
            .trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
        let _ = match p.optionality {
            Optionality::Required => write!(s, " {name}"),
            Optionality::Optional => write!(s, " [{name}]"),
            // A greedy "PROG [ARGS" is PROG then the package's own arguments.
            Optionality::Repeating | Optionality::Greedy if p.name.contains(" [") => {
                write!(s, " {}...]", p.name)
            }
            Optionality::Repeating | Optionality::Greedy => write!(s, " [{name}...]"),
        };
    }
    s
}

fn man(tree: &[Node]) -> String {
    let top = tree.iter().find(|n| n.path.is_empty());
    let mut s = String::new();
    let _ = writeln!(
        s,
        ".TH EDGE\\-ECLI 1 \"\" \"edge\\-ecli {}\" \"User Commands\"",
        env!("CARGO_PKG_VERSION")
    );
    s.push_str(".SH NAME\nedge\\-ecli \\- run portable eBPF tools (eunomia packages, .bpf.o objects, Wasm apps) on any Linux kernel\n");
    s.push_str(".SH SYNOPSIS\n");
    s.push_str(".B edge\\-ecli\n[\\fB\\-v\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR] ...\n.br\n");
    s.push_str(".B edge\\-ecli\n[\\fB\\-v\\fR] \\fIPROG\\fR [\\fIARGS\\fR...]\n");
    s.push_str(".SH DESCRIPTION\n");
    if let Some(t) = top {
        let _ = writeln!(
            s,
            "{}",
            roff(
                &t.info
                    .description
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        );
        s.push_str(".PP\nGlobal options:\n");
        for f in t.flags() {
            flag_entry(&mut s, f);
        }
    }
    s.push_str(".SH COMMANDS\n");
    for n in tree.iter().filter(|n| !n.path.is_empty()) {
        let _ = writeln!(s, ".SS \"{}\"", roff(&synopsis(n, tree)));
        let _ = writeln!(
            s,
            "{}",
            roff(
                &n.info
                    .description
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        );
        for p in n.info.positionals {
            if p.description.is_empty() {
                continue;
            }
            let _ = writeln!(
                s,
                ".TP\n.I {}\n{}",
                roff(
                    p.name
                        .trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                ),
                roff(
                    &p.description
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            );
        }
        for f in n.flags() {
            flag_entry(&mut s, f);
        }
    }
    s.push_str(
        ".SH EXIT STATUS\n\
         0 on a normal stop (Ctrl\\-C, SIGTERM, \\fB\\-\\-timeout\\fR, \\fB\\-h\\fR); 1 on an error (one line on \
         standard error naming the input and the problem); 2 on a bad command line, of edge\\-ecli or of \
         the package. A Wasm app's own exit code is edge\\-ecli's.\n\
         .SH ENVIRONMENT\n\
         .TP\n.B REGISTRY_AUTH_FILE\nRegistry credentials file read first (podman's).\n\
         .TP\n.B XDG_RUNTIME_DIR\nCredentials in \\fI$XDG_RUNTIME_DIR/containers/auth.json\\fR, else \
         \\fI/run/containers/$UID/auth.json\\fR, then \\fI~/.config/containers/auth.json\\fR.\n\
         .TP\n.B DOCKER_CONFIG\nDirectory of docker's \\fIconfig.json\\fR (default \\fI~/.docker\\fR).\n\
         .TP\n.B EDGE_ECLI_COMPLETE\nSet by the completion scripts: edge\\-ecli then prints the candidates for its \
         arguments instead of running.\n\
         .SH FILES\n\
         .TP\n.I /run/edge\\-ecli.sock\nThe daemon's API socket.\n\
         .TP\n.I /var/lib/edge\\-ecli\nThe daemon's state and, as root, the cache of pulled packages.\n\
         .TP\n.I /etc/edge\\-ecli/policy.json\nThe trust policy, when it exists.\n\
         .SH SEE ALSO\n\
         .BR bpftool (8),\n.BR podman\\-login (1),\n.BR docker\\-login (1)\n",
    );
    s
}

fn flag_entry(s: &mut String, f: &argh::FlagInfo) {
    let mut head = String::new();
    if let Some(c) = short_of(f) {
        let _ = write!(head, "\\fB\\-{c}\\fR, ");
    }
    let _ = write!(head, "\\fB{}\\fR", roff(f.long));
    if let Some(arg) = value_name(f) {
        let _ = write!(head, " \\fI{}\\fR", roff(arg));
    }
    let _ = writeln!(
        s,
        ".TP\n{head}\n{}",
        roff(
            &f.description
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        )
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn candidates_follow_the_flag_definitions() {
        let c = |w: &[&str]| candidates(&words(w));
        assert!(
            c(&["r"]).contains("run\tLoad, attach and run a package"),
            "{}",
            c(&["r"])
        );
        assert!(c(&["r"]).ends_with(":files\n"), "PROG may be a path");
        assert!(c(&["run", "--ti"]).contains("--timeout\t"));
        assert!(c(&["run", "--ti"]).contains("--timestamp\t"));
        assert_eq!(c(&["run", "--btf", ""]), ":files\n");
        assert_eq!(c(&["run", "--timeout", ""]), "");
        let ctl = c(&["ctl", "l"]);
        assert!(
            ctl.starts_with("list\t") && ctl.contains("\nlogs\t"),
            "{ctl}"
        );
        assert!(c(&["ctl", "--socket", "/s", "logs", "--t"]).contains("--tail\t"));
        assert!(c(&["completion", ""]).contains("zsh\t"));
        assert!(c(&["-v", "run", "-"]).contains("-j\t"));
    }

    #[test]
    fn every_flag_of_every_command_is_in_the_man_page() {
        let tree = commands();
        let m = man(&tree);
        for n in &tree {
            for fl in n.flags() {
                assert!(m.contains(&roff(fl.long)), "man lacks {}", fl.long);
            }
        }
        assert!(tree.iter().any(|n| n.path == ["ctl", "logs"]));
        // The variable the scripts set is documented under its real name.
        assert!(
            m.contains(&format!(".B {COMPLETE_VAR}\n")),
            "man lacks {COMPLETE_VAR}"
        );
    }
}
