//! Per-CPU map values summed into one: what a per-CPU counter or histogram means to a reader.
//! Pure.

use super::layout::{Field, Kind, Layout};
use super::out::value::le;

/// Adds the integers of `src` into `dst`, field by field (per-CPU values are summed).
fn add_ints(fields: &[Field], base: usize, dst: &mut [u8], src: &[u8]) {
    for f in fields {
        let at = base + f.offset;
        match &f.kind {
            Kind::Int { size, .. } if f.bit_size == 0 && matches!(size, 1 | 2 | 4 | 8) => {
                add_at(dst, src, at, *size)
            }
            Kind::Array {
                elem,
                elem_size,
                len,
            } => match &**elem {
                Kind::Int { size, .. } if matches!(size, 1 | 2 | 4 | 8) => {
                    for i in 0..*len {
                        add_at(dst, src, at + i * elem_size, *size);
                    }
                }
                Kind::Struct(inner) => {
                    for i in 0..*len {
                        add_ints(inner, at + i * elem_size, dst, src);
                    }
                }
                _ => {}
            },
            Kind::Struct(inner) => add_ints(inner, at, dst, src),
            _ => {}
        }
    }
}

fn add_at(dst: &mut [u8], src: &[u8], at: usize, size: usize) {
    if let (Some(d), Some(s)) = (dst.get(at..at + size), src.get(at..at + size)) {
        let v = (le(d) as u64).wrapping_add(le(s) as u64);
        let bytes = v.to_le_bytes();
        dst[at..at + size].copy_from_slice(&bytes[..size]);
    }
}

/// A per-CPU map value (one 8-byte-aligned copy per possible CPU) summed into one of
/// `layout`: integers added field by field, the rest taken from the first CPU.
pub fn sum_cpus(layout: &Layout, raw: &[u8]) -> Vec<u8> {
    let stride = layout.size.div_ceil(8) * 8;
    let size = layout.size.min(raw.len());
    let mut sum = raw[..size].to_vec();
    if stride == 0 {
        return sum;
    }
    for c in 1..raw.len() / stride {
        if let Some(v) = raw.get(c * stride..c * stride + size) {
            add_ints(&layout.fields, 0, &mut sum, v);
        }
    }
    sum
}
