//! NDJSON: one JSON object per record, member names as keys.

use super::value::write_object_keyed;
use super::Frames;
use crate::event::layout::Layout;
use crate::text::push_json_str;

/// Formats records of one layout as JSON objects; each key is written once, up front.
pub struct Objects {
    pub layout: Layout,
    keys: Vec<String>,
}

/// The JSON key prefix of each field: `{"first":`, then `,"next":`.
fn json_keys(layout: &Layout) -> Vec<String> {
    layout
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut k = String::from(if i == 0 { "{" } else { "," });
            push_json_str(&mut k, &f.name);
            k.push(':');
            k
        })
        .collect()
}

impl Objects {
    pub fn new(layout: Layout) -> Objects {
        Objects {
            keys: json_keys(&layout),
            layout,
        }
    }

    /// Appends one record as a JSON object, without a newline.
    pub fn object(&self, out: &mut String, data: &[u8], frames: Option<&dyn Frames>) {
        if self.layout.fields.is_empty() {
            out.push_str("{}");
        } else {
            write_object_keyed(out, &self.layout.fields, &self.keys, data, frames);
        }
    }

    /// Appends one record as a line.
    pub fn record(&self, out: &mut String, data: &[u8], frames: Option<&dyn Frames>) {
        self.object(out, data, frames);
        out.push('\n');
    }
}
