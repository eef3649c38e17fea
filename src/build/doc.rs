//! The doc comments of a BPF C source, read as ecc reads them. The comment before a global, a
//! map definition, a program or `LICENSE` gives keys of that item in the package:
//! - plain text is its `description`;
//! - `@brief`, `@details`, `@version` and the other Doxygen block commands take the rest of
//!   their paragraph as text;
//! - any other `@name` (`@cmdarg`, `@sample`, `@export_config`...) takes the JSON value that
//!   follows it, `true` when nothing follows, or, with a warning, the text when it is not JSON.
//!
//! Pure: source text in, items out. There is no preprocessor here, so a declaration a macro
//! expands to is not seen (ecc reads the same declarations: those written in the source).

use super::lex::{lex, Tok, Token};
use crate::codec::json;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Valid JSON, as written.
    Json(String),
    Text(String),
}

impl Value {
    pub fn to_json(&self) -> String {
        match self {
            Value::Json(j) => j.clone(),
            Value::Text(t) => {
                let mut s = String::new();
                crate::text::push_json_str(&mut s, t);
                s
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Var,
    Map,
    Func,
}

#[derive(Debug, Clone)]
pub struct Item {
    pub name: String,
    pub kind: Kind,
    /// Line of the doc comment.
    pub line: u32,
    pub keys: Vec<(String, Value)>,
}

#[derive(Debug, Default)]
pub struct Docs {
    pub items: Vec<Item>,
    pub warnings: Vec<String>,
}

/// Doxygen commands whose argument is the rest of the paragraph, kept as text.
const BLOCK_COMMANDS: &[&str] = &[
    "brief",
    "short",
    "details",
    "version",
    "author",
    "authors",
    "date",
    "copyright",
    "note",
    "warning",
    "since",
    "deprecated",
    "todo",
    "see",
    "sa",
    "return",
    "returns",
    "result",
    "pre",
    "post",
    "remark",
    "remarks",
    "par",
    "param",
];

/// Reads every documented top-level declaration of `src`; `label` names the file in
/// warnings.
pub fn parse(label: &str, src: &str) -> Docs {
    let mut docs = Docs::default();
    let toks = lex(src);
    let mut decl: Vec<&Token> = Vec::new();
    let mut doc: Option<(Vec<String>, u32)> = None;
    let mut depth = 0usize;
    let mut parens = 0usize;
    let mut in_body = false;
    for t in &toks {
        if depth > 0 {
            match t.tok {
                Tok::Punct(b'{') => depth += 1,
                Tok::Punct(b'}') => {
                    depth -= 1;
                    if depth == 0 {
                        if in_body {
                            // The end of a function definition.
                            finish(&mut docs, label, function_name(&decl), Kind::Func, &doc);
                            decl.clear();
                            doc = None;
                            in_body = false;
                        } else {
                            // The end of an aggregate (struct body, initializer).
                            decl.push(t);
                        }
                    }
                }
                _ => {}
            }
            continue;
        }
        match &t.tok {
            Tok::Doc(lines) => {
                if parens == 0 {
                    match &mut doc {
                        Some((l, _)) => l.extend(lines.iter().cloned()),
                        None => doc = Some((lines.clone(), t.line)),
                    }
                }
            }
            Tok::Punct(b'{') => {
                let last = decl.last().map(|t| &t.tok);
                in_body = parens == 0
                    && last == Some(&Tok::Punct(b')'))
                    && !decl.iter().any(|t| t.tok == Tok::Punct(b'='));
                depth = 1;
                if !in_body {
                    decl.push(t);
                }
            }
            Tok::Punct(b'(') => {
                parens += 1;
                decl.push(t);
            }
            Tok::Punct(b')') => {
                parens = parens.saturating_sub(1);
                decl.push(t);
            }
            Tok::Punct(b';') if parens == 0 => {
                if let Some((name, kind)) = declared(&decl) {
                    finish(&mut docs, label, Some(name), kind, &doc);
                }
                decl.clear();
                doc = None;
            }
            _ => decl.push(t),
        }
    }
    docs
}

fn finish(
    docs: &mut Docs,
    label: &str,
    name: Option<String>,
    kind: Kind,
    doc: &Option<(Vec<String>, u32)>,
) {
    let (Some(name), Some((lines, line))) = (name, doc) else {
        return;
    };
    let keys = keys(label, *line, &name, lines, &mut docs.warnings);
    if !keys.is_empty() {
        docs.items.push(Item {
            name,
            kind,
            line: *line,
            keys,
        });
    }
}

fn ident(t: &Token) -> Option<&str> {
    match &t.tok {
        Tok::Ident(s) => Some(s),
        _ => None,
    }
}

const NOT_A_NAME: &[&str] = &[
    "const", "volatile", "static", "extern", "struct", "union", "enum", "unsigned", "signed",
    "int", "char", "short", "long", "void", "_Bool", "float", "double", "inline",
];

/// The name a declaration at file scope declares, and whether it is a map; None for types,
/// typedefs and prototypes.
fn declared(decl: &[&Token]) -> Option<(String, Kind)> {
    if decl.first().and_then(|t| ident(t)) == Some("typedef") {
        return None;
    }
    // `struct { ... } NAME SEC(".maps")`
    for (i, w) in decl.windows(3).enumerate() {
        if let (Some("SEC"), Tok::Punct(b'('), Tok::Str(s)) = (ident(w[0]), &w[1].tok, &w[2].tok) {
            if s == ".maps" || s == "maps" {
                let name = decl[..i].iter().rev().find_map(|t| ident(t))?;
                return Some((name.to_string(), Kind::Map));
            }
        }
    }
    // The declarator: the last name before `=`, `[`, `SEC(...)` or an attribute.
    let mut parens = 0usize;
    let mut name: Option<(usize, &str)> = None;
    for (i, t) in decl.iter().enumerate() {
        match &t.tok {
            Tok::Punct(b'(') => {
                if parens == 0 && name.is_some_and(|(j, _)| j + 1 == i) {
                    return None; // a function prototype
                }
                parens += 1;
            }
            Tok::Punct(b')') => parens = parens.saturating_sub(1),
            _ if parens > 0 => {}
            Tok::Punct(b'=' | b'[' | b',') => break,
            Tok::Punct(b'}') => name = None, // what came before was the struct's own name
            Tok::Ident(s) if s == "SEC" || s.starts_with("__attribute") => break,
            Tok::Ident(s) if !NOT_A_NAME.contains(&s.as_str()) => {
                let after_tag =
                    i > 0 && matches!(ident(decl[i - 1]), Some("struct" | "union" | "enum"));
                name = if after_tag { None } else { Some((i, s)) };
            }
            _ => {}
        }
    }
    name.map(|(_, n)| (n.to_string(), Kind::Var))
}

/// A function definition's name: `int name(...)`, or the first argument of an all-caps macro
/// such as `BPF_PROG(name, ...)` or `BPF_KPROBE(name, ...)`.
fn function_name(decl: &[&Token]) -> Option<String> {
    let mut parens = 0usize;
    let mut last_open = None;
    for (i, t) in decl.iter().enumerate() {
        match t.tok {
            Tok::Punct(b'(') => {
                if parens == 0 {
                    last_open = Some(i);
                }
                parens += 1;
            }
            Tok::Punct(b')') => parens = parens.saturating_sub(1),
            _ => {}
        }
    }
    let open = last_open?;
    let before = ident(decl.get(open.checked_sub(1)?)?)?;
    let is_macro = before.bytes().any(|c| c.is_ascii_uppercase())
        && !before.bytes().any(|c| c.is_ascii_lowercase());
    if is_macro {
        decl.get(open + 1)
            .and_then(|t| ident(t))
            .map(str::to_string)
    } else {
        Some(before.to_string())
    }
}

/// The keys one doc comment gives its item.
fn keys(
    label: &str,
    line: u32,
    item: &str,
    lines: &[String],
    warnings: &mut Vec<String>,
) -> Vec<(String, Value)> {
    let mut keys: Vec<(String, Value)> = Vec::new();
    let mut set = |k: &str, v: Value| {
        keys.retain(|(x, _)| x != k);
        keys.push((k.to_string(), v));
    };
    let mut description: Vec<String> = Vec::new();
    for para in lines
        .split(|l| l.trim().is_empty())
        .filter(|p| !p.is_empty())
    {
        let text = para.join("\n");
        let mut plain = String::new();
        let mut rest = text.as_str();
        while !rest.is_empty() {
            let Some((before, cmd, after)) = next_command(rest) else {
                plain.push_str(rest);
                break;
            };
            plain.push_str(before);
            if BLOCK_COMMANDS.contains(&cmd) {
                // To the next block command or the end of the paragraph.
                let (arg, tail) = match next_block_command(after) {
                    Some(p) => (&after[..p], &after[p..]),
                    None => (after, ""),
                };
                set(cmd, Value::Text(squash(arg)));
                rest = tail;
                continue;
            }
            let after_ws = after.trim_start();
            let (arg, tail) = if after_ws.starts_with(['{', '[', '"']) {
                let n = json_span(after_ws);
                (&after_ws[..n], &after_ws[n..])
            } else {
                match next_command(after) {
                    Some((b, _, _)) => (b, &after[b.len()..]),
                    None => (after, ""),
                }
            };
            let arg = arg.trim();
            let value = if arg.is_empty() {
                Value::Json("true".into())
            } else {
                match json::parse(arg) {
                    Ok(_) => Value::Json(arg.to_string()),
                    Err(e) => {
                        warnings.push(format!(
                            "{label}:{line}: @{cmd} of {item} is not JSON ({e}); kept as text: {}",
                            squash(arg)
                        ));
                        Value::Text(squash(arg))
                    }
                }
            };
            set(cmd, value);
            rest = tail;
        }
        let plain = squash(&plain);
        if !plain.is_empty() {
            description.push(plain);
        }
    }
    if !description.is_empty() {
        set("description", Value::Text(description.join("\n")));
    }
    keys
}

/// Joins a paragraph's lines with single spaces.
fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The next `@name` or `\name` that starts a word: (text before, name, text after).
fn next_command(s: &str) -> Option<(&str, &str, &str)> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if (b[i] == b'@' || b[i] == b'\\') && (i == 0 || b[i - 1].is_ascii_whitespace()) {
            let n = b[i + 1..]
                .iter()
                .position(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
                .unwrap_or(b.len() - i - 1);
            if n > 0 && b[i + 1].is_ascii_alphabetic() {
                return Some((&s[..i], &s[i + 1..i + 1 + n], &s[i + 1 + n..]));
            }
        }
        i += 1;
    }
    None
}

fn next_block_command(s: &str) -> Option<usize> {
    let mut off = 0;
    let mut rest = s;
    while let Some((before, cmd, after)) = next_command(rest) {
        let at = off + before.len();
        if BLOCK_COMMANDS.contains(&cmd) {
            return Some(at);
        }
        off = at + 1 + cmd.len();
        rest = after;
    }
    None
}

/// Length of the JSON value `s` starts with ({...}, [...] or "..."), by bracket balance
/// outside strings; the whole of `s` when it never closes.
fn json_span(s: &str) -> usize {
    let b = s.as_bytes();
    let mut depth = 0i32;
    let mut in_str = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if in_str {
            match c {
                b'\\' => i += 1,
                b'"' => {
                    in_str = false;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
        } else {
            match c {
                b'"' => in_str = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth <= 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = r#"
#include "vmlinux.h"

/// @brief Trace signals
/// @version 0.1
/// Shows every signal a process sends.
char LICENSE[] SEC("license") = "Dual BSD/GPL";

/// Trace only this process
/// @cmdarg {"default": 0, "short": "p", "long": "pid", "help": "mail me@x.org"}
const volatile pid_t filtered_pid = 0;

/** min duration
 *  in ns */
const volatile unsigned long long min_ns = 1000;

/// @sample {"interval": 1000,
///          "type": "log2_hist"}
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, u32);
	__type(value, struct hist);
} hists SEC(".maps");

/// a struct, not a variable
struct hist { int slots[26]; };

/// @unit not json at all
const volatile int bad = 1;

/// handles exec
SEC("tp/sched/sched_process_exec")
int handle_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct { int a; } x = { 1 };
	return 0;
}

/// @flag
SEC("fentry/do_unlinkat")
int BPF_PROG(do_unlinkat, int dfd, struct filename *name)
{
	return 0;
}

/// a prototype has no item
static int helper(int x);
"#;

    fn item<'a>(d: &'a Docs, n: &str) -> &'a Item {
        d.items
            .iter()
            .find(|i| i.name == n)
            .unwrap_or_else(|| panic!("no {n} in {:?}", d.items))
    }

    fn key<'a>(i: &'a Item, k: &str) -> &'a Value {
        &i.keys.iter().find(|(x, _)| x == k).unwrap().1
    }

    #[test]
    fn globals_maps_programs_and_license() {
        let d = parse("x.bpf.c", SRC);
        let lic = item(&d, "LICENSE");
        assert_eq!(key(lic, "brief"), &Value::Text("Trace signals".into()));
        assert_eq!(
            key(lic, "version"),
            &Value::Text("0.1 Shows every signal a process sends.".into())
        );
        let pid = item(&d, "filtered_pid");
        assert_eq!(pid.kind, Kind::Var);
        assert_eq!(
            key(pid, "description"),
            &Value::Text("Trace only this process".into())
        );
        assert_eq!(
            key(pid, "cmdarg"),
            &Value::Json(
                r#"{"default": 0, "short": "p", "long": "pid", "help": "mail me@x.org"}"#.into()
            )
        );
        assert_eq!(
            key(item(&d, "min_ns"), "description"),
            &Value::Text("min duration in ns".into())
        );
        let h = item(&d, "hists");
        assert_eq!(h.kind, Kind::Map);
        match key(h, "sample") {
            Value::Json(j) => assert!(json::parse(j).is_ok() && j.contains("log2_hist")),
            v => panic!("{v:?}"),
        }
        let e = item(&d, "handle_exec");
        assert_eq!(e.kind, Kind::Func);
        assert_eq!(key(e, "description"), &Value::Text("handles exec".into()));
        assert_eq!(
            key(item(&d, "do_unlinkat"), "flag"),
            &Value::Json("true".into())
        );
        assert!(d
            .items
            .iter()
            .all(|i| i.name != "hist" && i.name != "helper"));
    }

    #[test]
    fn bad_annotation_json_is_a_warning_that_keeps_the_text() {
        let d = parse("x.bpf.c", SRC);
        assert_eq!(
            key(item(&d, "bad"), "unit"),
            &Value::Text("not json at all".into())
        );
        assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
        assert!(
            d.warnings[0].starts_with("x.bpf.c:28: @unit of bad is not JSON"),
            "{}",
            d.warnings[0]
        );
        let d = parse("y.c", "/// @sample {\"interval\": 1000,\nint v;");
        assert_eq!(d.warnings.len(), 1);
        assert_eq!(
            key(item(&d, "v"), "sample"),
            &Value::Text("{\"interval\": 1000,".into())
        );
    }

    #[test]
    fn undocumented_and_hostile_input() {
        assert!(parse("a", "int x; struct { int a; } m SEC(\".maps\");")
            .items
            .is_empty());
        for s in [
            "/// @",
            "/// @x {",
            "/// \\",
            "}}}} ;;; /// a\n",
            "/// a\n int (",
            "((((;",
        ] {
            let _ = parse("a", s);
        }
        let d = parse("a", "/// d\nint a, b;");
        assert_eq!(item(&d, "a").name, "a");
    }
}
