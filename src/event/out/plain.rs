//! Plain columns, libbpf-tools style: a TIME column, then one fixed-width column per field
//! with an upper-case header.

use std::fmt::Write;

use super::value::{int_at, stack_id, write_field, Style};
use super::Frames;
use crate::event::layout::{Kind, Layout, Render};
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
    /// Stack id fields are followed by their frames, one per line, when `frames` is given.
    pub fn record(&self, out: &mut String, time: &str, data: &[u8], frames: Option<&dyn Frames>) {
        push_short(out, time);
        out.push(' ');
        self.columns(out, data);
        out.push('\n');
        if let Some(fr) = frames {
            write_stacks(out, &self.layout, data, fr, "    ");
        }
    }

    /// Appends the columns of one record, without time or newline.
    pub fn columns(&self, out: &mut String, data: &[u8]) {
        let last = self.layout.fields.len().saturating_sub(1);
        for (i, f) in self.layout.fields.iter().enumerate() {
            let start = out.len();
            write_field(out, f, data, Style::Plain, None);
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

/// The frames of every stack id field of a record, under a `name:` line each, indented.
pub fn write_stacks(out: &mut String, layout: &Layout, data: &[u8], fr: &dyn Frames, indent: &str) {
    for f in &layout.fields {
        let Render::Stack { user, pid } = f.render else {
            continue;
        };
        let Some(id) = stack_id(f, data) else {
            continue;
        };
        let pid = pid.and_then(|x| int_at(data, x)).unwrap_or(0) as u32;
        let frames = fr.frames(id, user, pid);
        out.push_str(indent);
        out.push_str(&f.name);
        out.push_str(":\n");
        for frame in frames {
            out.push_str(indent);
            out.push_str("    ");
            out.push_str(&frame);
            out.push('\n');
        }
    }
}
