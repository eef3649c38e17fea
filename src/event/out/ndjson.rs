//! NDJSON: one JSON object per record, member names as keys.

use super::value::write_object_keyed;
use super::Frames;
use crate::event::layout::Layout;
use crate::text::push_json_str;

/// Appends `"timestamp":"TIME",` (nothing if `time` is empty): the first key of a line.
pub fn push_timestamp(out: &mut String, time: &str) {
    if !time.is_empty() {
        out.push_str("\"timestamp\":");
        push_json_str(out, time);
        out.push(',');
    }
}

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

    /// Appends one record as a line, with a leading `"timestamp"` unless `time` is empty.
    #[inline]
    pub fn record_at(
        &self,
        out: &mut String,
        time: &str,
        data: &[u8],
        frames: Option<&dyn Frames>,
    ) {
        if time.is_empty() {
            return self.record(out, data, frames);
        }
        out.push('{');
        push_timestamp(out, time);
        if self.layout.fields.is_empty() {
            out.pop(); // the comma
            out.push('}');
        } else {
            // The object without its opening brace follows the timestamp.
            let start = out.len();
            self.object(out, data, frames);
            out.remove(start);
        }
        out.push('\n');
    }
}
