//! Plain columns, libbpf-tools style: a TIME column, then one fixed-width column per field
//! with an upper-case header.

use std::fmt::Write;

use super::value::{write_field, Style};
use crate::event::layout::{Kind, Layout};
use crate::text::push_short;

/// Formats records of one layout as columns into a reused String.
pub struct Columns {
    pub layout: Layout,
    widths: Vec<usize>,
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

impl Columns {
    pub fn new(layout: Layout) -> Columns {
        let widths = layout
            .fields
            .iter()
            .map(|f| f.name.len().max(natural_width(&f.kind)))
            .collect();
        Columns { layout, widths }
    }

    /// The header line, without a newline.
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
        push_short(out, time);
        out.push(' ');
        self.columns(out, data);
        out.push('\n');
    }

    /// Appends the columns of one record, without time or newline.
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
