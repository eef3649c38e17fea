//! Output formats of event records: plain columns (`plain`), NDJSON (`ndjson`), histograms
//! byte-identical to BCC (`hist`), all over the same value writer (`value`). Pure.

pub mod hist;
pub mod ndjson;
pub mod plain;
mod value;

pub use value::{write_object, write_value, Style};

use super::layout::Layout;
use crate::text::{push_hex, push_json_str, push_short};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Plain,
    Json,
}

/// How the records of one event map are written.
pub enum Records {
    Plain(plain::Columns),
    Json(ndjson::Objects),
    /// No layout is known: the bytes in hex, as `TIME MAP HEX` or `{"map":..,"data":"HEX"}`.
    Raw {
        prefix: String,
        format: Format,
    },
}

impl Records {
    pub fn new(layout: Option<Layout>, map: &str, format: Format) -> Records {
        match (layout, format) {
            (Some(l), Format::Plain) => Records::Plain(plain::Columns::new(l)),
            (Some(l), Format::Json) => Records::Json(ndjson::Objects::new(l)),
            (None, Format::Plain) => Records::Raw {
                prefix: format!(" {map} "),
                format,
            },
            (None, Format::Json) => {
                let mut prefix = String::from("{\"map\":");
                push_json_str(&mut prefix, map);
                prefix.push_str(",\"data\":\"");
                Records::Raw { prefix, format }
            }
        }
    }

    /// The column header of typed plain output, without a newline.
    pub fn header(&self) -> Option<String> {
        match self {
            Records::Plain(c) => Some(c.header("TIME     ")),
            _ => None,
        }
    }

    /// Appends one record as a line. `time` is the TIME column (plain output only).
    #[inline]
    pub fn write(&self, out: &mut String, time: &str, data: &[u8]) {
        match self {
            Records::Plain(c) => c.record(out, time, data),
            Records::Json(o) => o.record(out, data),
            Records::Raw { prefix, format } => {
                if *format == Format::Plain {
                    push_short(out, time);
                }
                out.push_str(prefix);
                push_hex(out, data);
                out.push_str(if *format == Format::Json {
                    "\"}\n"
                } else {
                    "\n"
                });
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
    use crate::btf::{self, testutil::BtfBuilder, Btf};
    use crate::event::layout::testdata::{event_btf, record};

    #[test]
    fn formats_json_records() {
        let btf = event_btf();
        let f = ndjson::Objects::new(Layout::from_btf(&btf, 8).unwrap());
        let mut out = String::new();
        f.record(&mut out, &record());
        assert_eq!(out, "{\"pid\":-5,\"comm\":\"bash\",\"ts\":1234567890123,\"ok\":true,\"k\":\"B\",\"v\":[1,-2]}\n");
    }

    #[test]
    fn formats_plain_columns() {
        let btf = event_btf();
        let f = plain::Columns::new(Layout::from_btf(&btf, 8).unwrap());
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
        ndjson::Objects::new(l).record(&mut out, &[0u8; 64]);
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
        let f = ndjson::Objects::new(Layout::from_btf(&btf, 8).unwrap());
        let mut out = String::new();
        f.record(&mut out, &record()[..6]);
        assert!(out.starts_with("{\"pid\":-5,\"comm\":null"), "{out}");
    }

    #[test]
    fn records_without_a_layout_are_hex_in_either_format() {
        let mut out = String::new();
        Records::new(None, "rb", Format::Json).write(&mut out, "", &[1, 0xfe]);
        Records::new(None, "rb", Format::Plain).write(&mut out, "12:00:00", &[1, 0xfe]);
        assert_eq!(
            out,
            "{\"map\":\"rb\",\"data\":\"01fe\"}\n12:00:00 rb 01fe\n"
        );
    }
}
