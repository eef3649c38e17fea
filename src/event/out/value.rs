//! Values of one record, read from its bytes by their BTF kind and written as text: plain (for
//! columns) or JSON. Pure, and on the hot path: no formatting machinery per field.

use std::fmt::Write;

use super::super::layout::{Field, Kind, Render};
use super::Frames;
use crate::text::{push_i64, push_json_str, push_short, push_u64};

/// The little-endian integer of up to 16 bytes.
pub(crate) fn le(b: &[u8]) -> u128 {
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

/// Reads a little-endian unsigned integer field of `size` bytes at `at`, if the record has it.
pub(super) fn int_at(data: &[u8], (at, size): (usize, usize)) -> Option<u64> {
    data.get(at..at + size).map(le_small)
}

/// A stack id field's value: bpf_get_stackid's negative errors stay negative.
pub(super) fn stack_id(f: &Field, data: &[u8]) -> Option<i64> {
    let v = int_at(data, (f.offset, f.size))?;
    Some(match (&f.kind, f.size) {
        (Kind::Int { signed: true, .. }, 4) => v as u32 as i32 as i64,
        _ => v as i64,
    })
}

/// An IPv4 or IPv6 address from the bytes of an address field.
fn write_ip(out: &mut String, b: &[u8], family: Option<u64>, style: Style) {
    const AF_INET: u64 = 2;
    const AF_INET6: u64 = 10;
    let q = style == Style::Json;
    if q {
        out.push('"');
    }
    let v4 = match family {
        Some(AF_INET) => true,
        Some(AF_INET6) => false,
        _ => b.len() == 4,
    };
    if v4 && b.len() >= 4 {
        let _ = write!(out, "{}", std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]));
    } else if b.len() >= 16 {
        let mut a = [0u8; 16];
        a.copy_from_slice(&b[..16]);
        let _ = write!(out, "{}", std::net::Ipv6Addr::from(a));
    } else {
        for x in b {
            let _ = write!(out, "{x:02x}");
        }
    }
    if q {
        out.push('"');
    }
}

/// The strings of a char array the record ends inside (a tool submits only the bytes its
/// variable-length tail uses, e.g. argv as consecutive NUL-terminated strings): joined with
/// spaces, as execsnoop shows them.
fn write_tail_strings(out: &mut String, b: &[u8], style: Style) {
    let mut text = String::new();
    for (i, part) in b.split(|&c| c == 0).filter(|p| !p.is_empty()).enumerate() {
        if i > 0 {
            text.push(' ');
        }
        text.push_str(&String::from_utf8_lossy(part));
    }
    if style == Style::Json {
        push_json_str(out, &text);
    } else {
        push_short(out, &text);
    }
}

pub(super) fn write_field(
    out: &mut String,
    f: &Field,
    data: &[u8],
    style: Style,
    frames: Option<&dyn Frames>,
) {
    let Some(bytes) = data.get(f.offset..f.offset + f.size.max(1)) else {
        // A variable-length tail: the part of the last member the record holds.
        if let Some(part) = data.get(f.offset..).filter(|p| !p.is_empty()) {
            match &f.kind {
                Kind::Char { .. } => return write_tail_strings(out, part, style),
                Kind::Array { .. } => return write_value(out, &f.kind, part, style),
                _ => {}
            }
        }
        out.push_str(if style == Style::Json { "null" } else { "?" });
        return;
    };
    match f.render {
        Render::Ip { family } => {
            return write_ip(out, bytes, family.and_then(|x| int_at(data, x)), style)
        }
        Render::Stack { user, pid } if style == Style::Json => {
            if let (Some(fr), Some(id)) = (frames, stack_id(f, data)) {
                let pid = pid.and_then(|x| int_at(data, x)).unwrap_or(0) as u32;
                out.push('[');
                for (i, frame) in fr.frames(id, user, pid).iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    push_json_str(out, frame);
                }
                out.push(']');
                return;
            }
        }
        _ => {}
    }
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

/// Writes fields as one JSON object, with their keys already written as JSON (`{"a":`,
/// `,"b":`...) by `json_keys`.
pub fn write_object_keyed(
    out: &mut String,
    fields: &[Field],
    keys: &[String],
    b: &[u8],
    frames: Option<&dyn Frames>,
) {
    for (f, k) in fields.iter().zip(keys) {
        push_short(out, k);
        write_field(out, f, b, Style::Json, frames);
    }
    out.push('}');
}

/// Writes fields as one JSON object.
pub fn write_object(out: &mut String, fields: &[Field], b: &[u8]) {
    write_object_with(out, fields, b, None)
}

/// Writes fields as one JSON object, stack ids as arrays of frames when `frames` is given.
pub fn write_object_with(
    out: &mut String,
    fields: &[Field],
    b: &[u8],
    frames: Option<&dyn Frames>,
) {
    out.push('{');
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_str(out, &f.name);
        out.push(':');
        write_field(out, f, b, Style::Json, frames);
    }
    out.push('}');
}

/// Writes one field's value as plain text (strings bare), stack ids as numbers.
pub fn write_plain(out: &mut String, f: &Field, data: &[u8]) {
    write_field(out, f, data, Style::Plain, None)
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

/// (One match over the value kinds; splitting it would scatter the formats.)
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
                push_json_str(out, &text);
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
                Some((name, _)) if style == Style::Json => push_json_str(out, name),
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
