//! Event decoding: a BTF struct becomes a flat Layout once; each record is then formatted
//! from bytes into a reused buffer, as plain columns or NDJSON. Pure: tested on every arch.

use std::fmt::Write;

use crate::btf::{self, Btf, TypeData};
use crate::error::{Error, Result};
use crate::json;
use crate::meta::Object;

#[derive(Debug, Clone)]
pub enum Kind {
    Int {
        size: usize,
        signed: bool,
    },
    Bool {
        size: usize,
    },
    Char {
        len: usize,
    },
    Enum {
        size: usize,
        signed: bool,
        variants: Vec<(String, i64)>,
    },
    Float {
        size: usize,
    },
    Array {
        elem: Box<Kind>,
        elem_size: usize,
        len: usize,
    },
    Struct(Vec<Field>),
    /// Anything else (unions, unknown): shown as hex.
    Bytes {
        size: usize,
    },
}

#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub offset: usize,
    /// Bytes the value occupies (from its kind), computed once.
    pub size: usize,
    /// Bitfield position relative to `offset`, and width; width 0 for plain fields.
    pub bit_shift: u32,
    pub bit_size: u32,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub struct Layout {
    pub name: String,
    pub size: usize,
    pub fields: Vec<Field>,
}

const MAX_NEST: usize = 8;
/// Fields a layout may have in all (nested structs included): structs that embed structs many
/// times over could otherwise describe billions of fields in a few KB of BTF.
const MAX_FIELDS: usize = 10_000;

fn kind_of(btf: &Btf, id: u32, depth: usize, budget: &mut usize) -> Result<Kind> {
    if depth > MAX_NEST {
        return Err(Error::msg("event type nests too deeply"));
    }
    let rid = btf.resolve(id)?;
    let t = btf.get(rid)?;
    let size = btf.size_of(rid).unwrap_or(0) as usize;
    Ok(match (&t.data, t.kind) {
        (TypeData::Int { encoding, .. }, _) => {
            if encoding & btf::INT_BOOL != 0 {
                Kind::Bool { size }
            } else {
                Kind::Int {
                    size,
                    signed: encoding & btf::INT_SIGNED != 0,
                }
            }
        }
        (TypeData::Enum(v), _) => Kind::Enum {
            size,
            signed: t.kind_flag,
            variants: v.clone(),
        },
        (_, btf::KIND_FLOAT) => Kind::Float { size },
        (_, btf::KIND_PTR) => Kind::Int {
            size: 8,
            signed: false,
        },
        (TypeData::Array { elem, nelems }, _) => {
            let ek = kind_of(btf, *elem, depth + 1, budget)?;
            let elem_size = btf.size_of(*elem)? as usize;
            match ek {
                Kind::Int { size: 1, .. } => Kind::Char {
                    len: *nelems as usize,
                },
                ek => Kind::Array {
                    elem: Box::new(ek),
                    elem_size,
                    len: *nelems as usize,
                },
            }
        }
        (TypeData::Members(_), btf::KIND_STRUCT) => {
            Kind::Struct(fields_of(btf, rid, depth + 1, budget)?)
        }
        _ => Kind::Bytes { size },
    })
}

fn fields_of(btf: &Btf, id: u32, depth: usize, budget: &mut usize) -> Result<Vec<Field>> {
    let TypeData::Members(members) = &btf.get(id)?.data else {
        return Err(Error::msg(format!("BTF type {id} is not a struct")));
    };
    *budget = budget.checked_sub(members.len()).ok_or_else(|| {
        Error::msg(format!(
            "event type has more than {MAX_FIELDS} fields in all"
        ))
    })?;
    let mut out = Vec::with_capacity(members.len());
    for (i, m) in members.iter().enumerate() {
        let kind = kind_of(btf, m.type_id, depth, budget)?;
        if m.bit_size > 64 {
            return Err(Error::msg(format!(
                "bitfield {} is {} bits wide (at most 64)",
                m.name, m.bit_size
            )));
        }
        // A bitfield is read from the bytes that hold it: shift < 8, at most 9 bytes.
        let (offset, bit_shift) = (
            (m.bit_offset / 8) as usize,
            if m.bit_size > 0 { m.bit_offset % 8 } else { 0 },
        );
        let name = if m.name.is_empty() {
            format!("_{i}")
        } else {
            m.name.clone()
        };
        let size = if m.bit_size > 0 {
            (bit_shift as usize + m.bit_size as usize).div_ceil(8)
        } else {
            kind_size(&kind)
        };
        out.push(Field {
            name,
            offset,
            size,
            bit_shift,
            bit_size: m.bit_size as u32,
            kind,
        });
    }
    Ok(out)
}

impl Layout {
    pub fn from_btf(btf: &Btf, id: u32) -> Result<Layout> {
        let rid = btf.resolve(id)?;
        let t = btf.get(rid)?;
        let fields = match kind_of(btf, rid, 0, &mut MAX_FIELDS.clone())? {
            Kind::Struct(f) => f,
            // A non-struct value (e.g. a u32 key): one field named after its type as written.
            k => vec![Field {
                name: btf.plain_type_name(id),
                offset: 0,
                size: kind_size(&k),
                bit_shift: 0,
                bit_size: 0,
                kind: k,
            }],
        };
        Ok(Layout {
            name: t.name.clone(),
            size: btf.size_of(rid)? as usize,
            fields,
        })
    }
}

/// Event types the object exports without any flag: eunomia's dummy pointers, else the
/// value types of event maps that declare one.
pub fn default_export_types(object: &Object) -> Vec<u32> {
    if !object.meta.export_types.is_empty() {
        return object.meta.export_types.clone();
    }
    let mut v: Vec<u32> = object
        .meta
        .maps
        .iter()
        .filter(|m| m.is_event_map() && m.value_type != 0)
        .filter_map(|m| object.btf.resolve(m.value_type).ok())
        .filter(|&id| object.btf.get(id).is_ok_and(|t| t.kind == btf::KIND_STRUCT))
        .collect();
    v.dedup();
    v
}

fn le(b: &[u8]) -> u128 {
    let mut v = 0u128;
    for (i, &x) in b.iter().take(16).enumerate() {
        v |= (x as u128) << (8 * i);
    }
    v
}

fn sign_extend(v: u128, size: usize) -> i128 {
    let bits = (size * 8).clamp(1, 128) as u32;
    ((v << (128 - bits)) as i128) >> (128 - bits)
}

/// How a value is written: plain text (strings bare) or JSON (strings quoted).
#[derive(Clone, Copy, PartialEq)]
pub enum Style {
    Plain,
    Json,
}

fn write_field(out: &mut String, f: &Field, data: &[u8], style: Style) {
    let Some(bytes) = data.get(f.offset..f.offset + f.size.max(1)) else {
        out.push_str(if style == Style::Json { "null" } else { "?" });
        return;
    };
    if f.bit_size > 0 {
        let raw = (le(bytes) >> f.bit_shift) & ((1u128 << f.bit_size) - 1);
        let _ = match f.kind {
            Kind::Int { signed: true, .. } => {
                write!(
                    out,
                    "{}",
                    ((raw << (128 - f.bit_size)) as i128) >> (128 - f.bit_size)
                )
            }
            _ => write!(out, "{raw}"),
        };
        return;
    }
    write_value(out, &f.kind, bytes, style);
}

fn kind_size(k: &Kind) -> usize {
    match k {
        Kind::Int { size, .. }
        | Kind::Bool { size }
        | Kind::Enum { size, .. }
        | Kind::Float { size } => *size,
        Kind::Bytes { size } => *size,
        Kind::Char { len } => *len,
        Kind::Array { elem_size, len, .. } => elem_size.saturating_mul(*len),
        Kind::Struct(fields) => fields
            .iter()
            .map(|f| f.offset.saturating_add(f.size))
            .max()
            .unwrap_or(0),
    }
}

/// Appends the decimal digits of `v` (no formatting machinery: this runs per field per event).
/// Two digits per step, and division written as a multiply: at opt-level "z" LLVM keeps `div`.
pub fn push_u64(out: &mut String, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    while v >= 100 {
        let q = div100(v);
        let r = (v - q * 100) as usize * 2;
        i -= 2;
        buf[i] = DIGIT_PAIRS[r];
        buf[i + 1] = DIGIT_PAIRS[r + 1];
        v = q;
    }
    if v >= 10 {
        i -= 2;
        buf[i] = DIGIT_PAIRS[v as usize * 2];
        buf[i + 1] = DIGIT_PAIRS[v as usize * 2 + 1];
    } else {
        i -= 1;
        buf[i] = b'0' + v as u8;
    }
    // SAFETY: ASCII digits only.
    let digits = unsafe { std::str::from_utf8_unchecked(&buf[i..]) };
    push_short(out, digits);
}

const DIGIT_PAIRS: &[u8; 200] = b"\
    00010203040506070809101112131415161718192021222324252627282930313233343536373839\
    40414243444546474849505152535455565758596061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// `x / 100` for any u64, as compilers do it at -O2: ((x >> 2) * ceil(2^66 / 100)) >> 66.
#[inline(always)]
fn div100(x: u64) -> u64 {
    (((x >> 2) as u128 * 0x28F5_C28F_5C28_F5C3) >> 66) as u64
}

/// Appends `s`. Strings of up to 16 bytes are copied with fixed-size moves: musl's memcpy
/// starts with `rep movs`, whose start-up cost dominates copies of a few bytes, and keys and
/// short values are appended several times per event.
#[inline]
pub fn push_short(out: &mut String, s: &str) {
    let b = s.as_bytes();
    let n = b.len();
    if n > 16 {
        out.push_str(s);
        return;
    }
    // SAFETY: reserve(16) leaves at least 16 writable bytes past the end; every read is inside
    // `b` (the two 8- or 4-byte halves overlap for n < 16) and exactly n valid UTF-8 bytes of
    // `s` are added to the length.
    unsafe {
        let vec = out.as_mut_vec();
        vec.reserve(16);
        let len = vec.len();
        let dst = vec.as_mut_ptr().add(len);
        let src = b.as_ptr();
        if n >= 8 {
            (dst as *mut u64).write_unaligned((src as *const u64).read_unaligned());
            let (d, s) = (dst.add(n - 8), src.add(n - 8));
            (d as *mut u64).write_unaligned((s as *const u64).read_unaligned());
        } else if n >= 4 {
            (dst as *mut u32).write_unaligned((src as *const u32).read_unaligned());
            let (d, s) = (dst.add(n - 4), src.add(n - 4));
            (d as *mut u32).write_unaligned((s as *const u32).read_unaligned());
        } else if n > 0 {
            *dst = *src;
            *dst.add(n / 2) = *src.add(n / 2);
            *dst.add(n - 1) = *src.add(n - 1);
        }
        vec.set_len(len + n);
    }
}

pub fn push_i64(out: &mut String, v: i64) {
    if v < 0 {
        out.push('-');
    }
    push_u64(out, v.unsigned_abs());
}

/// Writes fields as one JSON object, with their keys already written as JSON (`{"a":`,
/// `,"b":`...) by `json_keys`.
pub fn write_object_keyed(out: &mut String, fields: &[Field], keys: &[String], b: &[u8]) {
    for (f, k) in fields.iter().zip(keys) {
        push_short(out, k);
        write_field(out, f, b, Style::Json);
    }
    out.push('}');
}

/// The JSON key prefix of each field: `{"first":`, then `,"next":`.
pub fn json_keys(fields: &[Field]) -> Vec<String> {
    fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut k = String::from(if i == 0 { "{" } else { "," });
            json::write_str(&mut k, &f.name);
            k.push(':');
            k
        })
        .collect()
}

/// Writes fields as one JSON object.
pub fn write_object(out: &mut String, fields: &[Field], b: &[u8]) {
    out.push('{');
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::write_str(out, &f.name);
        out.push(':');
        write_field(out, f, b, Style::Json);
    }
    out.push('}');
}

/// A little-endian integer of at most 8 bytes, without a variable-length copy (a memcpy call).
fn le_small(b: &[u8]) -> u64 {
    match *b {
        [a] => a as u64,
        [a, c] => u16::from_le_bytes([a, c]) as u64,
        [a, c, d, e] => u32::from_le_bytes([a, c, d, e]) as u64,
        [a, c, d, e, f, g, h, i] => u64::from_le_bytes([a, c, d, e, f, g, h, i]),
        _ => b.iter().rev().fold(0, |v, &x| v << 8 | x as u64),
    }
}

pub fn write_value(out: &mut String, kind: &Kind, b: &[u8], style: Style) {
    match kind {
        Kind::Int { size, signed } if *size <= 8 => {
            let n = (*size).min(b.len());
            let v = le_small(&b[..n]);
            if *signed {
                let shift = 64 - 8 * n.max(1) as u32;
                push_i64(out, ((v << shift) as i64) >> shift);
            } else {
                push_u64(out, v);
            }
        }
        Kind::Int { size, signed } => {
            // 128-bit integers do not fit a JSON number: decimal strings.
            let v = le(b);
            let q = if style == Style::Json { "\"" } else { "" };
            let _ = if *signed {
                write!(out, "{q}{}{q}", sign_extend(v, *size))
            } else {
                write!(out, "{q}{v}{q}")
            };
        }
        Kind::Bool { .. } => out.push_str(if le(b) != 0 { "true" } else { "false" }),
        Kind::Char { len } => {
            let s = &b[..(*len).min(b.len())];
            let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
            let text = String::from_utf8_lossy(&s[..end]);
            if style == Style::Json {
                json::write_str(out, &text);
            } else {
                push_short(out, &text);
            }
        }
        Kind::Enum {
            size,
            signed,
            variants,
        } => {
            let raw = le(b);
            let v = if *signed {
                sign_extend(raw, *size) as i64
            } else {
                raw as i64
            };
            match variants.iter().find(|(_, val)| *val == v) {
                Some((name, _)) if style == Style::Json => json::write_str(out, name),
                Some((name, _)) => out.push_str(name),
                None => {
                    let _ = write!(out, "{v}");
                }
            }
        }
        Kind::Float { size } => {
            let _ = if *size == 4 {
                write!(out, "{}", f32::from_bits(le(b) as u32))
            } else {
                write!(out, "{}", f64::from_bits(le(b) as u64))
            };
        }
        Kind::Array {
            elem,
            elem_size,
            len,
        } => {
            out.push('[');
            // Only the elements the record really holds (BTF may claim any count, or size 0).
            let n = if *elem_size == 0 {
                0
            } else {
                (*len).min(b.len() / elem_size)
            };
            for (i, eb) in b.chunks_exact((*elem_size).max(1)).take(n).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, elem, eb, Style::Json);
            }
            out.push(']');
        }
        Kind::Struct(fields) => write_object(out, fields, b),
        Kind::Bytes { .. } => {
            if style == Style::Json {
                out.push('"');
            }
            for x in b {
                let _ = write!(out, "{x:02x}");
            }
            if style == Style::Json {
                out.push('"');
            }
        }
    }
}

/// Formats records of one layout, plain or NDJSON, into a reused String.
pub struct Formatter {
    pub layout: Layout,
    pub json: bool,
    widths: Vec<usize>,
    keys: Vec<String>,
}

fn natural_width(k: &Kind) -> usize {
    match k {
        Kind::Int { size, .. } | Kind::Enum { size, .. } => match size {
            1 | 2 => 5,
            4 => 7,
            _ => 10,
        },
        Kind::Bool { .. } => 5,
        Kind::Char { len } => (*len).clamp(1, 16),
        Kind::Float { .. } => 8,
        _ => 8,
    }
}

impl Formatter {
    pub fn new(layout: Layout, json: bool) -> Formatter {
        let widths = layout
            .fields
            .iter()
            .map(|f| f.name.len().max(natural_width(&f.kind)))
            .collect();
        Formatter {
            keys: json_keys(&layout.fields),
            layout,
            json,
            widths,
        }
    }

    /// The header line (plain output only), without a newline.
    pub fn header(&self, prefix: &str) -> String {
        let mut h = String::from(prefix);
        for (i, f) in self.layout.fields.iter().enumerate() {
            let _ = write!(h, "{:<w$} ", f.name.to_uppercase(), w = self.widths[i]);
        }
        h.truncate(h.trim_end().len());
        h
    }

    /// Appends one record (with a trailing newline). `time` is the HH:MM:SS column text.
    pub fn record(&self, out: &mut String, time: &str, data: &[u8]) {
        if self.json {
            if self.layout.fields.is_empty() {
                out.push_str("{}");
            } else {
                write_object_keyed(out, &self.layout.fields, &self.keys, data);
            }
            out.push('\n');
            return;
        }
        push_short(out, time);
        out.push(' ');
        self.columns(out, data);
        out.push('\n');
    }
}

impl Formatter {
    /// Appends the plain columns of one record, without time or newline.
    pub fn columns(&self, out: &mut String, data: &[u8]) {
        let last = self.layout.fields.len().saturating_sub(1);
        for (i, f) in self.layout.fields.iter().enumerate() {
            let start = out.len();
            write_field(out, f, data, Style::Plain);
            let written = out.len() - start;
            if i < last {
                for _ in written..self.widths[i] {
                    out.push(' ');
                }
                out.push(' ');
            }
        }
    }
}

/// The TIME column, recomputed only when the second changes.
#[derive(Default)]
pub struct Clock {
    second: i64,
    text: String,
}

impl Clock {
    pub fn hms(&mut self) -> &str {
        // SAFETY: time(NULL) has no preconditions.
        let now = unsafe { libc::time(std::ptr::null_mut()) } as i64;
        if now != self.second || self.text.is_empty() {
            self.second = now;
            self.text = local_hms();
        }
        &self.text
    }
}

/// Local wall-clock time as HH:MM:SS.
pub fn local_hms() -> String {
    // SAFETY: time(NULL) and localtime_r with a valid out-pointer have no other preconditions.
    unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&t, &mut tm);
        format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_short_strings_append_exactly() {
        let mut vals = vec![0u64, 9, 10, 99, 100, u32::MAX as u64, u64::MAX];
        vals.extend((0..20).map(|e| 10u64.pow(e)));
        vals.extend((1..20).map(|e| 10u64.pow(e) - 1));
        for v in vals {
            let mut out = String::from("x");
            push_u64(&mut out, v);
            assert_eq!(out, format!("x{v}"));
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for v in [x, x >> 20, x >> 40, x % 1000] {
                let mut out = String::new();
                push_u64(&mut out, v);
                assert_eq!(out, v.to_string());
            }
        }
        let mut out = String::from("y");
        push_i64(&mut out, i64::MIN);
        assert_eq!(out, format!("y{}", i64::MIN));
        let text = "abcdefghijklmnopqrstuvwxyz";
        for n in 0..=text.len() {
            let mut out = String::from("z");
            push_short(&mut out, &text[..n]);
            assert_eq!(out, format!("z{}", &text[..n]));
        }
        assert_eq!(le_small(&[1, 2, 3]), 0x030201);
        assert_eq!(le_small(&[0xff; 8]), u64::MAX);
        assert_eq!(le_small(&[]), 0);
    }
    use crate::btf::testutil::BtfBuilder;

    fn event_btf() -> Btf {
        let mut b = BtfBuilder::new();
        b.add("int", btf::KIND_INT, 0, false, 4, &[(1 << 24) | 32]); // 1
        b.add("char", btf::KIND_INT, 0, false, 1, &[(1 << 24) | 8]); // 2
        b.add("", btf::KIND_ARRAY, 0, false, 0, &[2, 1, 8]); // 3 char[8]
        b.add("unsigned long long", btf::KIND_INT, 0, false, 8, &[64]); // 4
        b.add("_Bool", btf::KIND_INT, 0, false, 1, &[(4 << 24) | 8]); // 5
        let (a, bb) = (b.s("A"), b.s("B"));
        b.add("kind", btf::KIND_ENUM, 2, false, 4, &[a, 0, bb, 7]); // 6
        b.add("", btf::KIND_ARRAY, 0, false, 0, &[1, 1, 2]); // 7 int[2]
        let names: Vec<u32> = ["pid", "comm", "ts", "ok", "k", "v"]
            .iter()
            .map(|n| b.s(n))
            .collect();
        b.add(
            "event",
            btf::KIND_STRUCT,
            6,
            false,
            40,
            &[
                names[0], 1, 0, names[1], 3, 32, names[2], 4, 128, names[3], 5, 192, names[4], 6,
                224, names[5], 7, 256,
            ],
        ); // 8
        Btf::parse(&b.build()).unwrap()
    }

    fn record() -> Vec<u8> {
        let mut d = vec![0u8; 40];
        d[0..4].copy_from_slice(&(-5i32).to_le_bytes());
        d[4..9].copy_from_slice(b"bash\0");
        d[16..24].copy_from_slice(&1234567890123u64.to_le_bytes());
        d[24] = 1;
        d[28..32].copy_from_slice(&7u32.to_le_bytes());
        d[32..36].copy_from_slice(&1i32.to_le_bytes());
        d[36..40].copy_from_slice(&(-2i32).to_le_bytes());
        d
    }

    #[test]
    fn formats_json_records() {
        let btf = event_btf();
        let f = Formatter::new(Layout::from_btf(&btf, 8).unwrap(), true);
        let mut out = String::new();
        f.record(&mut out, "", &record());
        assert_eq!(out, "{\"pid\":-5,\"comm\":\"bash\",\"ts\":1234567890123,\"ok\":true,\"k\":\"B\",\"v\":[1,-2]}\n");
    }

    #[test]
    fn formats_plain_columns() {
        let btf = event_btf();
        let f = Formatter::new(Layout::from_btf(&btf, 8).unwrap(), false);
        assert_eq!(
            f.header("TIME     "),
            "TIME     PID     COMM     TS         OK    K       V"
        );
        let mut out = String::new();
        f.record(&mut out, "12:00:00", &record());
        assert_eq!(
            out,
            "12:00:00 -5      bash     1234567890123 true  B       [1,-2]\n"
        );
    }

    #[test]
    fn hostile_layouts_are_bounded() {
        // An array claiming 2^32-1 elements of a zero-sized struct, and a struct embedding
        // another 16 times, nine levels deep: neither may blow up.
        let mut b = BtfBuilder::new();
        b.add("empty", btf::KIND_STRUCT, 0, false, 0, &[]); // 1
        b.add("", btf::KIND_ARRAY, 0, false, 0, &[1, 1, u32::MAX]); // 2
        let x = b.s("x");
        b.add("big", btf::KIND_STRUCT, 1, false, 0, &[x, 2, 0]); // 3
        let mut prev = 3;
        for level in 0..9 {
            let mut members = vec![];
            for i in 0..16 {
                members.extend([b.s(&format!("m{level}_{i}")), prev, 0]);
            }
            b.add(
                &format!("s{level}"),
                btf::KIND_STRUCT,
                16,
                false,
                0,
                &members,
            );
            prev += 1;
        }
        let btf = Btf::parse(&b.build()).unwrap();
        let l = Layout::from_btf(&btf, 3).unwrap();
        let mut out = String::new();
        Formatter::new(l, true).record(&mut out, "", &[0u8; 64]);
        assert_eq!(out, "{\"x\":[]}\n");
        let e = Layout::from_btf(&btf, prev).unwrap_err().to_string();
        assert!(
            e.contains("fields in all") || e.contains("nests too deeply"),
            "{e}"
        );
    }

    #[test]
    fn short_records_do_not_panic() {
        let btf = event_btf();
        let f = Formatter::new(Layout::from_btf(&btf, 8).unwrap(), true);
        let mut out = String::new();
        f.record(&mut out, "", &record()[..6]);
        assert!(out.starts_with("{\"pid\":-5,\"comm\":null"), "{out}");
    }
}
