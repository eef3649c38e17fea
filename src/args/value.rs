//! What a global's BTF type lets the user write, and the bytes a value of it becomes
//! (little-endian, exactly the global's size). Pure.

use crate::btf::{self, Btf, TypeData};
use crate::error::{Error, Result};
use crate::package::meta::Global;

/// What a global's type lets the user write.
#[derive(Debug, Clone)]
pub(super) enum ValueType {
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

pub(super) fn value_type(btf: &Btf, id: u32) -> ValueType {
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
pub(super) fn encode(btf: &Btf, g: &Global, text: &str) -> Result<Vec<u8>> {
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
            return Err(Error::usage(format!(
                "value {text} does not fit {ty} (range {lo}..={hi})"
            )));
        }
        Ok((v as u128).to_le_bytes()[..sz].to_vec())
    };
    match vt {
        ValueType::Int { size: sz, signed } => {
            let v = parse_int(text)
                .ok_or_else(|| Error::usage(format!("\"{text}\" is not an integer ({ty})")))?;
            out[..sz.min(size)].copy_from_slice(&fits(v, sz, signed)?[..sz.min(size)]);
        }
        ValueType::Bool => {
            let v = match text {
                "true" | "1" | "yes" | "on" => 1,
                "false" | "0" | "no" | "off" => 0,
                _ => {
                    return Err(Error::usage(format!(
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
                    Error::usage(format!(
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
                .map_err(|_| Error::usage(format!("\"{text}\" is not a number ({ty})")))?;
            out[..4].copy_from_slice(&v.to_le_bytes());
        }
        ValueType::Float { .. } => {
            let v: f64 = text
                .parse()
                .map_err(|_| Error::usage(format!("\"{text}\" is not a number ({ty})")))?;
            out[..8.min(size)].copy_from_slice(&v.to_le_bytes()[..8.min(size)]);
        }
        ValueType::Str { cap } => {
            if text.len() >= cap {
                return Err(Error::usage(format!(
                    "\"{text}\" is {} bytes, too long for {ty} (at most {} bytes)",
                    text.len(),
                    cap - 1
                )));
            }
            out[..text.len()].copy_from_slice(text.as_bytes());
        }
        ValueType::Unsupported(t) => {
            return Err(Error::usage(format!(
                "type {t} cannot be set from the command line"
            )));
        }
    }
    Ok(out)
}
