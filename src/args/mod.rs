//! The package's own command line, generated from its globals: flags, help, and values checked
//! against their BTF types and encoded little-endian for `.rodata`/`.bss`. Pure.
//!
//! A flag is spelled as the package names it (`cmdarg.long`, else the variable's name), and
//! `-` and `_` are the same in it (`--filtered-pid` is `--filtered_pid`). A global that filters
//! by pid, tid, uid or cgroup gets libbpf-tools' usual short flag (`-p`, `-t`, `-u`, `-c`)
//! when the package gives it none and the letter is free.

mod value;

use std::fmt::Write;

use crate::btf::Btf;
use crate::error::{Error, ErrorKind, Result};
use crate::package::meta::{Global, Meta};
use value::{encode, value_type, ValueType};

/// How the user runs the package: named in its help and in the hints of a bad argument.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// The command that runs packages (default `edge-ecli run`).
    pub command: Option<String>,
    /// PROG as the user wrote it (default `PROG`).
    pub prog: Option<String>,
    /// The flags that belong before PROG (`-j`, `--timeout`...): one of them after PROG gets
    /// the hint that it goes before.
    pub outer_flags: Vec<String>,
    /// Those of `outer_flags` that take a value (`--timeout SECS`): the hint moves the value
    /// with the flag.
    pub outer_options: Vec<String>,
}

impl Invocation {
    /// `edge-ecli run PROG`
    fn command(&self) -> String {
        self.with_flag("")
    }

    /// `edge-ecli run FLAG PROG`: where a flag of edge-ecli goes.
    fn with_flag(&self, flag: &str) -> String {
        let cmd = self.command.as_deref().unwrap_or("edge-ecli run");
        let prog = self.prog.as_deref().unwrap_or("PROG");
        if flag.is_empty() {
            format!("{cmd} {prog}")
        } else {
            format!("{cmd} {flag} {prog}")
        }
    }
}

/// One generated flag.
struct Flag<'a> {
    global: &'a Global,
    vt: ValueType,
    /// Bool spelling: `--name` (None), `--enable-name` (Some(false)), `--disable-name` (Some(true)).
    bool_default: Option<bool>,
    /// The package's short flag, or the conventional one derived from the name.
    short: Option<char>,
}

impl Flag<'_> {
    fn long(&self) -> String {
        match (&self.vt, self.bool_default) {
            (ValueType::Bool, Some(false)) => format!("enable-{}", self.global.long),
            (ValueType::Bool, Some(true)) => format!("disable-{}", self.global.long),
            _ => self.global.long.clone(),
        }
    }
    fn is_switch(&self) -> bool {
        matches!(self.vt, ValueType::Bool)
    }
    /// Does `name` (after `--`) name this flag? Dashes and underscores are the same.
    fn is_named(&self, name: &str) -> bool {
        same_name(&self.long(), name)
    }
}

fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .all(|(x, y)| x == y || (matches!(x, b'-' | b'_') && matches!(y, b'-' | b'_')))
}

/// The result of parsing the package's arguments.
#[derive(Debug, Default)]
pub struct Parsed {
    /// (symbol name, bytes) for every global given on the command line or by a package default.
    pub globals: Vec<(String, Vec<u8>)>,
    pub verbose: bool,
    /// Set when `-h/--help` was asked: the help text to print.
    pub help: Option<String>,
}

/// The short flag libbpf-tools give a filter of this kind, judged by the words of the
/// global's name (`targ_pid`, `filtered_pid`, `target_tgid`, `filter_cg`...): `-p` pid, `-t`
/// tid, `-u` uid, `-c` cgroup. Integers only, and strings for a cgroup path.
fn conventional_short(g: &Global, vt: &ValueType) -> Option<char> {
    let words: Vec<String> = g
        .long
        .split(['_', '-'])
        .map(str::to_ascii_lowercase)
        .collect();
    let has = |w: &[&str]| words.iter().any(|x| w.contains(&x.as_str()));
    let int = matches!(vt, ValueType::Int { .. });
    let text = matches!(vt, ValueType::Str { .. });
    if int && has(&["pid", "tgid"]) {
        Some('p')
    } else if int && has(&["tid"]) {
        Some('t')
    } else if int && has(&["uid"]) {
        Some('u')
    } else if (int || text) && has(&["cgroup", "cg", "cgid", "cgroupid"]) {
        Some('c')
    } else {
        None
    }
}

fn flags<'a>(meta: &'a Meta, btf: &Btf) -> Vec<Flag<'a>> {
    let mut flags: Vec<Flag> = meta
        .globals
        .iter()
        .map(|g| {
            let vt = value_type(btf, g.type_id);
            let bool_default = match (&vt, g.default.as_deref()) {
                (ValueType::Bool, Some("true" | "1")) => Some(true),
                (ValueType::Bool, Some("false" | "0")) => Some(false),
                _ => None,
            };
            Flag {
                global: g,
                vt,
                bool_default,
                short: g.short,
            }
        })
        .collect();
    // A conventional letter goes to the one global it fits, if the package uses it nowhere.
    let derived: Vec<Option<char>> = flags
        .iter()
        .map(|f| {
            f.short
                .is_none()
                .then(|| conventional_short(f.global, &f.vt))
                .flatten()
        })
        .collect();
    for (i, c) in derived.iter().enumerate() {
        let Some(c) = *c else { continue };
        let taken = c == 'h' || flags.iter().any(|f| f.short == Some(c));
        let unique = derived.iter().filter(|d| **d == Some(c)).count() == 1;
        if !taken && unique {
            flags[i].short = Some(c);
        }
    }
    flags
}

pub fn help(meta: &Meta, btf: &Btf, inv: &Invocation) -> String {
    let mut h = String::new();
    let _ = writeln!(h, "Usage: {} [OPTIONS]", inv.command());
    let doc = &meta.doc;
    for text in [&doc.brief, &doc.description, &doc.details]
        .into_iter()
        .flatten()
    {
        let _ = writeln!(h, "\n{}", text.trim_end());
    }
    h.push_str("\nOptions:\n");
    let mut rows: Vec<(String, String)> = Vec::new();
    let flags = flags(meta, btf);
    for f in &flags {
        let g = f.global;
        let short = f
            .short
            .map(|c| format!("-{c}, "))
            .unwrap_or_else(|| "    ".into());
        let arg = if f.is_switch() {
            String::new()
        } else {
            format!(" <{}>", btf.plain_type_name(g.type_id))
        };
        let mut text = g
            .help
            .clone()
            .unwrap_or_else(|| format!("set {} ({})", g.name, btf.plain_type_name(g.type_id)));
        if let (false, Some(d)) = (f.is_switch(), &g.default) {
            let _ = write!(text, " [default: {d}]");
        }
        rows.push((format!("{short}--{}{arg}", f.long()), text));
    }
    rows.push((
        "    --verbose".into(),
        "print debug output of the loader".into(),
    ));
    rows.push(("-h, --help".into(), "print this help".into()));
    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    for (l, r) in rows {
        let _ = writeln!(h, "  {l:<w$}  {r}");
    }
    if flags.iter().any(|f| f.long().contains('_')) {
        h.push_str("\nIn flag names - and _ are the same (--a-b is --a_b).\n");
    }
    h
}

/// Why `arg` is not one of the package's flags, and what to do.
/// `next` is the argument after it (the value, when `arg` is an option of edge-ecli).
fn unknown(arg: &str, next: Option<&str>, flags: &[Flag], inv: &Invocation) -> Error {
    let name = arg.split_once('=').map_or(arg, |(n, _)| n);
    let help = format!("`{} --help` lists the package's flags", inv.command());
    let msg = if inv.outer_flags.iter().any(|f| f == name) {
        let with_value = match next {
            Some(v) if !arg.contains('=') && inv.outer_options.iter().any(|f| f == name) => {
                format!("{arg} {v}")
            }
            _ => arg.to_string(),
        };
        format!(
            "{arg} is a flag of edge-ecli, not of the package: put it before PROG (`{}`)",
            inv.with_flag(&with_value)
        )
    } else if !arg.starts_with('-') {
        format!("unexpected argument \"{arg}\": the package takes only flags ({help})")
    } else {
        // Compared with - for _, as the flags are matched.
        let longs: Vec<String> = flags.iter().map(|f| format!("--{}", f.long())).collect();
        let norm: Vec<String> = longs.iter().map(|l| l.replace('_', "-")).collect();
        let near = name
            .starts_with("--")
            .then(|| crate::text::closest(&name.replace('_', "-"), norm.iter().map(String::as_str)))
            .flatten()
            .and_then(|n| norm.iter().position(|x| x == n))
            .map(|i| longs[i].as_str());
        match near {
            Some(n) => format!("unknown argument \"{arg}\": did you mean {n}? ({help})"),
            None => format!("unknown argument \"{arg}\" ({help})"),
        }
    };
    Error::usage(msg)
}

/// Parses ARGS against the package's flags. Defaults from the package are applied first.
pub fn parse(meta: &Meta, btf: &Btf, inv: &Invocation, args: &[String]) -> Result<Parsed> {
    let flags = flags(meta, btf);
    let mut p = Parsed::default();
    let set = |p: &mut Parsed, f: &Flag, text: &str, shown: &str| -> Result<()> {
        let bytes = encode(btf, f.global, text)
            .map_err(|e| Error::new(e.kind(), format!("{shown}: {e}")))?;
        p.globals.retain(|(n, _)| n != &f.global.name);
        p.globals.push((f.global.name.clone(), bytes));
        Ok(())
    };
    for f in &flags {
        if let Some(d) = &f.global.default {
            // A default that does not fit is the package's fault, not the user's.
            set(&mut p, f, d, &format!("default of --{}", f.long()))
                .map_err(|e| Error::new(ErrorKind::Invalid, e.to_string()))?;
        }
    }
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "-h" || a == "--help" {
            p.help = Some(help(meta, btf, inv));
            return Ok(p);
        }
        if a == "--verbose" {
            p.verbose = true;
            continue;
        }
        let (flag, inline): (Option<&Flag>, Option<String>) =
            if let Some(long) = a.strip_prefix("--") {
                let (name, val) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (long, None),
                };
                (flags.iter().find(|f| f.is_named(name)), val)
            } else if let Some(short) = a.strip_prefix('-').filter(|s| !s.is_empty()) {
                let c = short.chars().next().unwrap_or(' ');
                let rest = &short[c.len_utf8()..];
                (
                    flags.iter().find(|f| f.short == Some(c)),
                    (!rest.is_empty()).then(|| rest.to_string()),
                )
            } else {
                (None, None)
            };
        let Some(f) = flag else {
            return Err(unknown(a, args.get(i).map(String::as_str), &flags, inv));
        };
        if f.is_switch() {
            let v = match (inline.as_deref(), f.bool_default) {
                (Some(v), _) => v.to_string(),
                (None, Some(true)) => "false".into(),
                (None, _) => "true".into(),
            };
            set(&mut p, f, &v, a)?;
            continue;
        }
        let val = match inline {
            Some(v) => v,
            None => {
                let v = args.get(i).ok_or_else(|| {
                    Error::usage(format!(
                        "{a} needs a value ({})",
                        btf.plain_type_name(f.global.type_id)
                    ))
                })?;
                i += 1;
                v.clone()
            }
        };
        set(&mut p, f, &val, &format!("--{}", f.long()))?;
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::{self, testutil::BtfBuilder};
    use crate::package::meta::{Doc, Tunables};

    fn setup() -> (Meta, Btf) {
        let mut b = BtfBuilder::new();
        b.add("int", btf::KIND_INT, 0, false, 4, &[(1 << 24) | 32]); // 1
        b.add("unsigned char", btf::KIND_INT, 0, false, 1, &[8]); // 2
        b.add("_Bool", btf::KIND_INT, 0, false, 1, &[(4 << 24) | 8]); // 3
        b.add("char", btf::KIND_INT, 0, false, 1, &[(1 << 24) | 8]); // 4
        b.add("", btf::KIND_ARRAY, 0, false, 0, &[4, 1, 8]); // 5 char[8]
        b.add("double", btf::KIND_FLOAT, 0, false, 8, &[]); // 6
        let (r, w) = (b.s("READ"), b.s("WRITE"));
        b.add("op", btf::KIND_ENUM, 2, false, 4, &[r, 1, w, 2]); // 7
        b.add("pid_t", btf::KIND_TYPEDEF, 0, false, 1, &[]); // 8
        let btf = Btf::parse(&b.build()).unwrap();
        let g = |name: &str, type_id, size, short: Option<char>, default: Option<&str>| Global {
            offset: 0,
            section: ".rodata".into(),
            name: name.into(),
            long: name.into(),
            type_id,
            size,
            short,
            help: None,
            default: default.map(str::to_string),
        };
        let meta = Meta {
            obj_name: "t".into(),
            doc: Doc {
                brief: Some("Trace things.".into()),
                ..Doc::default()
            },
            progs: vec![],
            maps: vec![],
            globals: vec![
                g("pid", 8, 4, Some('p'), None),
                g("small", 2, 1, None, None),
                g("failed", 3, 1, Some('x'), None),
                g("name", 5, 8, None, None),
                g("ratio", 6, 8, None, None),
                g("op", 7, 4, None, None),
                g("on", 3, 1, None, Some("true")),
            ],
            results: vec![],
            export_types: vec![],
            tunables: Tunables::default(),
        };
        (meta, btf)
    }

    fn run(args: &[&str]) -> Result<Parsed> {
        let (m, b) = setup();
        parse(
            &m,
            &b,
            &Invocation::default(),
            &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    }

    fn val(p: &Parsed, n: &str) -> Vec<u8> {
        p.globals
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap()
    }

    #[test]
    fn parses_every_kind() {
        let p = run(&[
            "-p",
            "42",
            "--small=255",
            "-x",
            "--name",
            "bash",
            "--ratio",
            "0.5",
            "--op",
            "WRITE",
            "--disable-on",
        ])
        .unwrap();
        assert_eq!(val(&p, "pid"), 42i32.to_le_bytes());
        assert_eq!(val(&p, "small"), [255]);
        assert_eq!(val(&p, "failed"), [1]);
        assert_eq!(val(&p, "name"), b"bash\0\0\0\0");
        assert_eq!(val(&p, "ratio"), 0.5f64.to_le_bytes());
        assert_eq!(val(&p, "op"), 2u32.to_le_bytes());
        assert_eq!(val(&p, "on"), [0]);
        let p = run(&["-p-7", "--op", "1"]).unwrap();
        assert_eq!(val(&p, "pid"), (-7i32).to_le_bytes());
        assert_eq!(val(&p, "on"), [1], "package default applies");
    }

    #[test]
    fn rejects_bad_values_clearly() {
        let e = |a: &[&str]| run(a).unwrap_err().to_string();
        assert!(e(&["--small", "256"]).contains("does not fit unsigned char (range 0..=255)"));
        assert!(e(&["-p", "abc"]).contains("not an integer"));
        assert!(e(&["--name", "toolongname"]).contains("too long for char[8] (at most 7 bytes)"));
        assert!(e(&["--op", "EXEC"]).contains("one of READ, WRITE"));
        assert!(e(&["--nope"]).contains("unknown argument \"--nope\""));
        assert!(e(&["-p"]).contains("-p needs a value"));
        assert!(e(&["--failed=maybe"]).contains("not a bool"));
    }

    #[test]
    fn inconsistent_symbol_and_type_sizes_are_refused() {
        let (mut m, b) = setup();
        m.globals[0].size = 1 << 40; // pid_t claimed 1 TiB by its symbol
        let e = parse(&m, &b, &Invocation::default(), &["-p".into(), "1".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("inconsistent"), "{e}");
        m.globals[0].size = 4;
        m.globals[3].size = 2; // char[8] whose symbol says 2 bytes
        let e = parse(
            &m,
            &b,
            &Invocation::default(),
            &["--name".into(), "abc".into()],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("inconsistent"), "{e}");
    }

    #[test]
    fn help_lists_flags_and_doc() {
        let p = run(&["--help"]).unwrap();
        let h = p.help.unwrap();
        assert!(h.contains("Trace things."), "{h}");
        assert!(h.contains("-p, --pid <pid_t>"), "{h}");
        assert!(h.contains("--disable-on"), "{h}");
        assert!(h.contains("-x, --failed "), "{h}");
    }

    #[test]
    fn dashes_and_underscores_are_the_same_and_bad_arguments_get_hints() {
        let (mut m, b) = setup();
        m.globals[1].long = "small_one".into();
        let inv = Invocation {
            command: None,
            prog: Some("x.json".into()),
            outer_flags: vec!["-j".into(), "--json".into(), "--timeout".into()],
            outer_options: vec!["--timeout".into()],
        };
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let p = parse(&m, &b, &inv, &args(&["--small-one", "7"])).unwrap();
        assert_eq!(val(&p, "small"), [7]);
        let p = parse(&m, &b, &inv, &args(&["--small-one=8"])).unwrap();
        assert_eq!(val(&p, "small"), [8]);
        let e = parse(&m, &b, &inv, &args(&["-j"])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage);
        assert!(
            e.to_string()
                .contains("put it before PROG (`edge-ecli run -j x.json`)"),
            "{e}"
        );
        let e = parse(&m, &b, &inv, &args(&["--timeout=3"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("edge-ecli run --timeout=3 x.json"), "{e}");
        // An option's value moves with it.
        let e = parse(&m, &b, &inv, &args(&["--timeout", "3"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("(`edge-ecli run --timeout 3 x.json`)"), "{e}");
        let e = parse(&m, &b, &inv, &args(&["--smal-one", "1"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean --small_one?"), "{e}");
        assert!(e.contains("`edge-ecli run x.json --help`"), "{e}");
        let h = parse(&m, &b, &inv, &args(&["-h"])).unwrap().help.unwrap();
        assert!(
            h.starts_with("Usage: edge-ecli run x.json [OPTIONS]"),
            "{h}"
        );
    }

    #[test]
    fn filters_get_the_usual_short_flags_when_free() {
        let (mut m, b) = setup();
        let g = |name: &str, ty: u32, size: u64| Global {
            section: ".rodata".into(),
            name: name.into(),
            offset: 0,
            long: name.into(),
            type_id: ty,
            size,
            short: None,
            help: None,
            default: None,
        };
        // pid has -p from the package; targ_tid, target_uid and filter_cg derive theirs;
        // a second pid filter gets none (-p is taken), nor does a bool.
        m.globals = vec![
            m.globals[0].clone(),
            g("targ_tid", 1, 4),
            g("target_uid", 1, 4),
            g("filter_cg", 1, 4),
            g("targ_tgid", 1, 4),
            g("trace_pid", 3, 1),
        ];
        let inv = Invocation::default();
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let p = parse(&m, &b, &inv, &args(&["-t", "5", "-u", "6", "-c7"])).unwrap();
        assert_eq!(val(&p, "targ_tid"), 5i32.to_le_bytes());
        assert_eq!(val(&p, "target_uid"), 6i32.to_le_bytes());
        assert_eq!(val(&p, "filter_cg"), 7i32.to_le_bytes());
        let h = parse(&m, &b, &inv, &args(&["--help"]))
            .unwrap()
            .help
            .unwrap();
        assert!(h.contains("-t, --targ_tid <int>"), "{h}");
        assert!(h.contains("    --targ_tgid <int>"), "{h}");
        assert!(h.contains("    --trace_pid "), "{h}");
        assert!(h.contains("- and _ are the same"), "{h}");
    }
}
