//! The package's own command line, generated from its globals: flags, help, and values checked
//! against their BTF types and encoded little-endian for `.rodata`/`.bss`. Pure.

use std::fmt::Write;

use crate::btf::{self, Btf, TypeData};
use crate::error::{Error, Result};
use crate::package::meta::{Global, Meta};

/// What a global's type lets the user write.
#[derive(Debug, Clone)]
enum ValueType {
    Int {
        size: usize,
        signed: bool,
    },
    Bool,
    Enum {
        size: usize,
        signed: bool,
        variants: Vec<(String, i64)>,
    },
    Float {
        size: usize,
    },
    Str {
        cap: usize,
    },
    Unsupported(String),
}

fn value_type(btf: &Btf, id: u32) -> ValueType {
    let Ok(rid) = btf.resolve(id) else {
        return ValueType::Unsupported("?".into());
    };
    let Ok(t) = btf.get(rid) else {
        return ValueType::Unsupported("?".into());
    };
    match &t.data {
        TypeData::Int { encoding, .. } if encoding & btf::INT_BOOL != 0 => ValueType::Bool,
        TypeData::Int { encoding, .. } => ValueType::Int {
            size: t.size_or_type as usize,
            signed: encoding & btf::INT_SIGNED != 0,
        },
        TypeData::Enum(v) => ValueType::Enum {
            size: t.size_or_type as usize,
            signed: t.kind_flag,
            variants: v.clone(),
        },
        TypeData::Array { elem, nelems } if btf.size_of(*elem).ok() == Some(1) => {
            let is_int = btf
                .resolve(*elem)
                .ok()
                .and_then(|e| btf.get(e).ok())
                .is_some_and(|e| e.kind == btf::KIND_INT);
            if is_int {
                ValueType::Str {
                    cap: *nelems as usize,
                }
            } else {
                ValueType::Unsupported(btf.type_name(id))
            }
        }
        _ if t.kind == btf::KIND_FLOAT => ValueType::Float {
            size: t.size_or_type as usize,
        },
        _ => ValueType::Unsupported(btf.type_name(id)),
    }
}

fn parse_int(text: &str) -> Option<i128> {
    let t = text.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let v = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        i128::from_str_radix(h, 16).ok()?
    } else {
        t.parse::<i128>().ok()?
    };
    Some(if neg { -v } else { v })
}

fn int_range(size: usize, signed: bool) -> (i128, i128) {
    let bits = (size * 8).min(64) as u32;
    if signed {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    } else {
        (0, (1i128 << bits) - 1)
    }
}

/// Bytes a value of this type takes, when the type is one a flag can set.
fn natural_size(vt: &ValueType) -> Option<usize> {
    match vt {
        ValueType::Int { size, .. } if matches!(size, 1 | 2 | 4 | 8 | 16) => Some(*size),
        ValueType::Enum { size, .. } if matches!(size, 1 | 2 | 4 | 8) => Some(*size),
        ValueType::Float { size } if matches!(size, 4 | 8) => Some(*size),
        ValueType::Bool => Some(1),
        ValueType::Str { cap } if (1..=1 << 20).contains(cap) => Some(*cap),
        _ => None,
    }
}

/// Encodes `text` as a value of the global's type, exactly `size` bytes.
/// (One match over the value types a flag can set.)
fn encode(btf: &Btf, g: &Global, text: &str) -> Result<Vec<u8>> {
    let ty = btf.plain_type_name(g.type_id);
    // The object's symbol size and its BTF type must agree before any byte is written: a
    // hostile object could claim anything in either.
    let vt = value_type(btf, g.type_id);
    let size = match natural_size(&vt) {
        Some(n) if n as u64 == g.size => n,
        Some(n) => {
            return Err(Error::invalid(format!(
                "global {}: its symbol has {} bytes but its type {ty} has {n}: the object is inconsistent",
                g.name, g.size
            )))
        }
        None if matches!(vt, ValueType::Unsupported(_)) => 0,
        None => return Err(Error::invalid(format!("type {ty} of {} has a size no flag can set", g.name))),
    };
    let mut out = vec![0u8; size];
    let fits = |v: i128, sz: usize, signed: bool| -> Result<Vec<u8>> {
        let (lo, hi) = int_range(sz, signed);
        if v < lo || v > hi {
            return Err(Error::invalid(format!(
                "value {text} does not fit {ty} (range {lo}..={hi})"
            )));
        }
        Ok((v as u128).to_le_bytes()[..sz].to_vec())
    };
    match vt {
        ValueType::Int { size: sz, signed } => {
            let v = parse_int(text)
                .ok_or_else(|| Error::invalid(format!("\"{text}\" is not an integer ({ty})")))?;
            out[..sz.min(size)].copy_from_slice(&fits(v, sz, signed)?[..sz.min(size)]);
        }
        ValueType::Bool => {
            let v = match text {
                "true" | "1" | "yes" | "on" => 1,
                "false" | "0" | "no" | "off" => 0,
                _ => {
                    return Err(Error::invalid(format!(
                        "\"{text}\" is not a bool (true or false)"
                    )))
                }
            };
            out[0] = v;
        }
        ValueType::Enum {
            size: sz,
            signed,
            variants,
        } => {
            let v = match variants.iter().find(|(n, _)| n == text) {
                Some((_, v)) => *v as i128,
                None => parse_int(text).ok_or_else(|| {
                    let names: Vec<&str> = variants.iter().map(|(n, _)| n.as_str()).collect();
                    Error::invalid(format!(
                        "\"{text}\" is not a value of {ty} (one of {})",
                        names.join(", ")
                    ))
                })?,
            };
            out[..sz.min(size)].copy_from_slice(&fits(v, sz, signed)?[..sz.min(size)]);
        }
        ValueType::Float { size: 4 } => {
            let v: f32 = text
                .parse()
                .map_err(|_| Error::invalid(format!("\"{text}\" is not a number ({ty})")))?;
            out[..4].copy_from_slice(&v.to_le_bytes());
        }
        ValueType::Float { .. } => {
            let v: f64 = text
                .parse()
                .map_err(|_| Error::invalid(format!("\"{text}\" is not a number ({ty})")))?;
            out[..8.min(size)].copy_from_slice(&v.to_le_bytes()[..8.min(size)]);
        }
        ValueType::Str { cap } => {
            if text.len() >= cap {
                return Err(Error::invalid(format!(
                    "\"{text}\" is {} bytes, too long for {ty} (at most {} bytes)",
                    text.len(),
                    cap - 1
                )));
            }
            out[..text.len()].copy_from_slice(text.as_bytes());
        }
        ValueType::Unsupported(t) => {
            return Err(Error::invalid(format!(
                "type {t} cannot be set from the command line"
            )));
        }
    }
    Ok(out)
}

/// One generated flag.
struct Flag<'a> {
    global: &'a Global,
    vt: ValueType,
    /// Bool spelling: `--name` (None), `--enable-name` (Some(false)), `--disable-name` (Some(true)).
    bool_default: Option<bool>,
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

fn flags<'a>(meta: &'a Meta, btf: &Btf) -> Vec<Flag<'a>> {
    meta.globals
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
            }
        })
        .collect()
}

pub fn help(meta: &Meta, btf: &Btf, prog_name: &str) -> String {
    let mut h = String::new();
    // ecc names a tool's object X_bpf (from X.bpf.c): the tool is X.
    let shown = prog_name.strip_suffix("_bpf").unwrap_or(prog_name);
    let _ = writeln!(h, "Usage: {shown} [OPTIONS]");
    let doc = &meta.doc;
    for text in [&doc.brief, &doc.description, &doc.details]
        .into_iter()
        .flatten()
    {
        let _ = writeln!(h, "\n{}", text.trim_end());
    }
    h.push_str("\nOptions:\n");
    let mut rows: Vec<(String, String)> = Vec::new();
    for f in flags(meta, btf) {
        let g = f.global;
        let short = g
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
    h
}

/// Parses ARGS against the package's flags. Defaults from the package are applied first.
pub fn parse(meta: &Meta, btf: &Btf, prog_name: &str, args: &[String]) -> Result<Parsed> {
    let flags = flags(meta, btf);
    let mut p = Parsed::default();
    let set = |p: &mut Parsed, f: &Flag, text: &str, shown: &str| -> Result<()> {
        let bytes =
            encode(btf, f.global, text).map_err(|e| Error::invalid(format!("{shown}: {e}")))?;
        p.globals.retain(|(n, _)| n != &f.global.name);
        p.globals.push((f.global.name.clone(), bytes));
        Ok(())
    };
    for f in &flags {
        if let Some(d) = &f.global.default {
            set(&mut p, f, d, &format!("default of --{}", f.long()))?;
        }
    }
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "-h" || a == "--help" {
            p.help = Some(help(meta, btf, prog_name));
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
                (flags.iter().find(|f| f.long() == name), val)
            } else if let Some(short) = a.strip_prefix('-').filter(|s| !s.is_empty()) {
                let c = short.chars().next().unwrap_or(' ');
                let rest = &short[c.len_utf8()..];
                (
                    flags.iter().find(|f| f.global.short == Some(c)),
                    (!rest.is_empty()).then(|| rest.to_string()),
                )
            } else {
                (None, None)
            };
        let Some(f) = flag else {
            return Err(Error::invalid(format!(
                "unknown argument \"{a}\" for {prog_name}: see `{prog_name} --help` for its flags"
            )));
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
                let v = args
                    .get(i)
                    .ok_or_else(|| Error::invalid(format!("{a} needs a value")))?;
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
    use crate::btf::testutil::BtfBuilder;
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
            "t",
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
        let e = parse(&m, &b, "t", &["-p".into(), "1".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("inconsistent"), "{e}");
        m.globals[0].size = 4;
        m.globals[3].size = 2; // char[8] whose symbol says 2 bytes
        let e = parse(&m, &b, "t", &["--name".into(), "abc".into()])
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
}
