//! One result value as bpftrace prints a map's: `label: value`, log2 histograms as
//! libbpf-tools' `print_log2_hist`, integer arrays one line per non-zero element; and as NDJSON.

use super::value::le;
use super::{hist, write_object_with, write_plain, write_value, Frames, Style};
use crate::event::layout::{Field, Kind, Layout};

/// Is this value a histogram: a struct with a `slots` array of integers, or an integer array
/// named like one (`hist`, `slots`)?
pub(crate) fn slots_of(f: &Field) -> Option<&Field> {
    match &f.kind {
        Kind::Struct(fs) => fs
            .iter()
            .find(|m| m.name == "slots" && int_array(&m.kind).is_some()),
        Kind::Array { .. } if int_array(&f.kind).is_some() => {
            let n = f.name.to_ascii_lowercase();
            (n.contains("hist") || n.contains("slots")).then_some(f)
        }
        _ => None,
    }
}

/// (element size, count) of an array of integers.
pub(crate) fn int_array(k: &Kind) -> Option<(usize, usize)> {
    match k {
        Kind::Array {
            elem,
            elem_size,
            len,
        } if matches!(**elem, Kind::Int { .. }) && matches!(elem_size, 1 | 2 | 4 | 8) => {
            Some((*elem_size, *len))
        }
        _ => None,
    }
}

/// The counters of a histogram's slots (saturated to u32, as `print_log2_hist` takes them).
pub(crate) fn slot_values(slots: &Field, data: &[u8]) -> Vec<u32> {
    let Some((es, n)) = int_array(&slots.kind) else {
        return vec![];
    };
    (0..n)
        .map(|i| {
            let o = slots.offset + i * es;
            data.get(o..o + es)
                .map_or(0, |b| le(b).min(u32::MAX as u128) as u32)
        })
        .collect()
}

/// `label: value`, or a histogram under `label:`, or one line per non-zero element of an
/// integer array, or a histogram per non-empty element of an array of histograms.
pub(crate) fn print_value(out: &mut String, label: &str, f: &Field, data: &[u8], unit: &str) {
    if let Some(slots) = slots_of(f) {
        let vals = slot_values(slots, data);
        if vals.iter().all(|&v| v == 0) {
            return;
        }
        out.push_str(label);
        out.push_str(":\n");
        if let Kind::Struct(fs) = &f.kind {
            // Members beside the slots (comm, pid...) that hold anything.
            let set = |m: &&Field| {
                data.get(m.offset..m.offset + m.size)
                    .is_some_and(|b| b.iter().any(|&x| x != 0))
            };
            for m in fs.iter().filter(|m| m.name != "slots").filter(set) {
                out.push_str("    ");
                out.push_str(&m.name);
                out.push_str(" = ");
                write_plain(out, m, data);
                out.push('\n');
            }
        }
        hist::log2(out, &vals, unit);
        out.push('\n');
        return;
    }
    if let Kind::Array {
        elem,
        elem_size,
        len,
    } = &f.kind
    {
        let elem_field = Field {
            name: f.name.clone(),
            offset: 0,
            size: *elem_size,
            bit_shift: 0,
            bit_size: 0,
            kind: (**elem).clone(),
            render: Default::default(),
        };
        if matches!(**elem, Kind::Struct(_) | Kind::Int { .. }) {
            for i in 0..*len {
                let o = i * elem_size;
                let Some(b) = data.get(o..o + elem_size) else {
                    break;
                };
                if b.iter().all(|&x| x == 0) {
                    continue;
                }
                print_value(out, &format!("{label}[{i}]"), &elem_field, b, unit);
            }
            return;
        }
    }
    out.push_str(label);
    out.push_str(": ");
    write_plain_value(out, f, data);
    out.push('\n');
}

/// A key or value as JSON: a scalar bare, a struct as an object.
pub(crate) fn write_json(out: &mut String, l: &Layout, data: &[u8], frames: Option<&dyn Frames>) {
    match l.fields.as_slice() {
        [f] if l.scalar => write_value(
            out,
            &f.kind,
            data.get(f.offset..).unwrap_or(&[]),
            Style::Json,
        ),
        fs => write_object_with(out, fs, data, frames),
    }
}

/// A value in plain text: scalars bare, structs as `{ .a = 1, .b = x }`.
pub(crate) fn write_plain_value(out: &mut String, f: &Field, data: &[u8]) {
    match &f.kind {
        Kind::Struct(fs) => {
            out.push_str("{ ");
            for (i, m) in fs.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push('.');
                out.push_str(&m.name);
                out.push_str(" = ");
                write_plain(out, m, data.get(f.offset..).unwrap_or(&[]));
            }
            out.push_str(" }");
        }
        _ => write_plain(out, f, data),
    }
}
