//! Output formats of event records: plain columns (`plain`), NDJSON (`ndjson`), histograms
//! byte-identical to BCC (`hist`), all over the same value writer (`value`). Pure.

pub mod hist;
pub mod ndjson;
pub mod plain;
pub(crate) mod result;
pub(crate) mod value;

pub use value::{write_object, write_object_with, write_plain, write_value, Style};

use super::layout::{Layout, Layouts};
use crate::error::{Error, Result};
use crate::text::{push_hex, push_json_str, push_short};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Plain,
    Json,
}

/// What of each record is shown, besides the format.
#[derive(Debug, Clone, Default)]
pub struct OutputOptions {
    /// Only these fields of the event, in this order (`-o columns=pid,comm`).
    pub fields: Option<Vec<String>>,
    /// NDJSON lines start with a `"timestamp"` field (the `time` given to `Records::write`).
    pub timestamp: bool,
}

/// The layouts shown with only `names`, in that order: each candidate keeps the names it has;
/// a name none of them has is an error listing the fields there are.
fn select(all: &[Layout], names: &[String], map: &str) -> Result<Vec<Layout>> {
    for n in names {
        if !all.iter().any(|l| l.fields.iter().any(|f| &f.name == n)) {
            let mut have: Vec<&str> = Vec::new();
            for f in all.iter().flat_map(|l| &l.fields) {
                if !have.contains(&f.name.as_str()) {
                    have.push(&f.name);
                }
            }
            let types: Vec<&str> = all.iter().map(|l| l.name.as_str()).collect();
            return Err(Error::usage(format!(
                "-o ...={n}: the events of {map} ({}) have no field {n}; they have {}",
                types.join(", "),
                have.join(", ")
            )));
        }
    }
    Ok(all
        .iter()
        .map(|l| {
            let mut l = l.clone();
            l.fields = names
                .iter()
                .filter_map(|n| l.fields.iter().find(|f| &f.name == n).cloned())
                .collect();
            l
        })
        .collect())
}

/// Turns stack ids into symbolized frames for the writers (the object's stack trace map and
/// the kernel's and processes' symbol tables).
pub trait Frames: Send + Sync {
    /// The frames of stack `id` (a kernel stack, or a user stack of process `pid`), innermost
    /// first; an id the map does not hold gives one line saying so.
    fn frames(&self, id: i64, user: bool, pid: u32) -> Vec<String>;
}

/// One layout's writer.
enum Typed {
    Plain(plain::Columns),
    Json(ndjson::Objects),
}

/// How the records of one event map are written: by the layout each record's size selects
/// among the candidates (`Layouts::pick`), or as hex when none is known.
pub struct Records {
    typed: Vec<Typed>,
    layouts: Layouts,
    /// No layout is known: the bytes in hex, as `TIME MAP HEX` or `{"map":..,"data":"HEX"}`.
    raw_prefix: String,
    format: Format,
    /// The last (length, layout) picked: records of one map mostly have one size.
    last: std::cell::Cell<(usize, usize)>,
    /// Plain output: which layouts' headers were written (the first one's up front).
    headers: std::cell::Cell<u64>,
    frames: Option<std::sync::Arc<dyn Frames>>,
}

impl Records {
    /// The writer of one map's records; `opts.fields` picks what is shown (the record's
    /// layout is still chosen among all of its candidates).
    pub fn new(
        layouts: Layouts,
        map: &str,
        format: Format,
        opts: &OutputOptions,
    ) -> Result<Records> {
        let shown = match &opts.fields {
            Some(_) if layouts.is_empty() => {
                return Err(Error::usage(format!(
                    "-o ...=FIELDS: the records of {map} have no known type (they print as hex); name it with --event-type NAME"
                )))
            }
            Some(names) => select(&layouts.all, names, map)?,
            None => layouts.all.clone(),
        };
        let typed = shown
            .into_iter()
            .map(|l| match format {
                Format::Plain => Typed::Plain(plain::Columns::new(l)),
                Format::Json => Typed::Json(ndjson::Objects::new(l)),
            })
            .collect();
        let raw_prefix = match format {
            Format::Plain => format!(" {map} "),
            Format::Json => {
                let mut p = String::from("\"map\":");
                push_json_str(&mut p, map);
                p.push_str(",\"data\":\"");
                p
            }
        };
        let first = layouts.preferred();
        Ok(Records {
            typed,
            layouts,
            raw_prefix,
            format,
            last: std::cell::Cell::new((usize::MAX, 0)),
            headers: std::cell::Cell::new(1 << first.min(63)),
            frames: None,
        })
    }

    /// Shows stack id fields as frames symbolized by `f`.
    pub fn with_frames(mut self, f: std::sync::Arc<dyn Frames>) -> Records {
        self.frames = Some(f);
        self
    }

    /// The column header of typed plain output (of the preferred candidate), without a
    /// newline.
    pub fn header(&self) -> Option<String> {
        match self.typed.get(self.layouts.preferred()) {
            Some(Typed::Plain(c)) => Some(c.header("TIME     ")),
            _ => None,
        }
    }

    /// Appends one record as a line. `time` is the TIME column of plain output, and the
    /// `"timestamp"` of NDJSON unless empty.
    #[inline]
    pub fn write(&self, out: &mut String, time: &str, data: &[u8]) {
        let i = match self.last.get() {
            (len, i) if len == data.len() => Some(i),
            _ => {
                let i = self.layouts.pick_fitting(data.len());
                self.last.set((data.len(), i.unwrap_or(usize::MAX)));
                i
            }
        }
        .filter(|&i| i < self.typed.len());
        let Some(i) = i else {
            if self.format == Format::Plain {
                push_short(out, time);
            } else {
                out.push('{');
                ndjson::push_timestamp(out, time);
            }
            out.push_str(&self.raw_prefix);
            push_hex(out, data);
            out.push_str(if self.format == Format::Json {
                "\"}\n"
            } else {
                "\n"
            });
            return;
        };
        let frames = self.frames.as_deref();
        match &self.typed[i] {
            Typed::Plain(c) => {
                // A record of another struct than the ones shown so far: its header first.
                let bit = 1u64 << i.min(63);
                if self.headers.get() & bit == 0 {
                    self.headers.set(self.headers.get() | bit);
                    out.push_str(&c.header("TIME     "));
                    out.push('\n');
                }
                c.record(out, time, data, frames)
            }
            Typed::Json(o) => o.record_at(out, time, data, frames),
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

/// `2025-01-02T03:04:05.123456Z`: a time as RFC 3339 in UTC, to the microsecond.
pub fn rfc3339_utc(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_micros()
    )
}

/// Local wall-clock time as HH:MM:SS.
pub fn local_hms() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (h, m, s) = crate::sys::local_time_of_day(now);
    format!("{h:02}:{m:02}:{s:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::{self, testutil::BtfBuilder, Btf};
    use crate::event::layout::testdata::{event_btf, record};
    use crate::event::layout::Layout;

    #[test]
    fn formats_json_records() {
        let btf = event_btf();
        let f = ndjson::Objects::new(Layout::from_btf(&btf, 8).unwrap());
        let mut out = String::new();
        f.record(&mut out, &record(), None);
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
        f.record(&mut out, "12:00:00", &record(), None);
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
        ndjson::Objects::new(l).record(&mut out, &[0u8; 64], None);
        assert_eq!(out, "{\"x\":[]}\n");
        let e = Layout::from_btf(&btf, prev).unwrap_err().to_string();
        assert!(
            e.contains("fields in all") || e.contains("nests too deeply"),
            "{e}"
        );
    }

    /// A record cut inside a member shows the part it holds (a variable-length tail, strings
    /// split at NULs); members past its end are null.
    #[test]
    fn short_records_show_what_they_hold() {
        let btf = event_btf();
        let f = ndjson::Objects::new(Layout::from_btf(&btf, 8).unwrap());
        let mut out = String::new();
        f.record(&mut out, &record()[..6], None);
        assert_eq!(
            out,
            "{\"pid\":-5,\"comm\":\"ba\",\"ts\":null,\"ok\":null,\"k\":null,\"v\":null}\n"
        );
        let mut argv = record();
        argv.truncate(4);
        argv.extend(b"ls\0-l\0");
        out.clear();
        f.record(&mut out, &argv, None);
        assert!(out.starts_with("{\"pid\":-5,\"comm\":\"ls -l\","), "{out}");
        let p = plain::Columns::new(Layout::from_btf(&btf, 8).unwrap());
        out.clear();
        p.record(&mut out, "12:00:00", &argv, None);
        assert!(out.starts_with("12:00:00 -5      ls -l    ?"), "{out}");
    }

    #[test]
    fn records_without_a_layout_are_hex_in_either_format() {
        let mut out = String::new();
        let o = OutputOptions::default();
        let json = Records::new(Layouts::default(), "rb", Format::Json, &o).unwrap();
        json.write(&mut out, "", &[1, 0xfe]);
        let plain = Records::new(Layouts::default(), "rb", Format::Plain, &o).unwrap();
        plain.write(&mut out, "12:00:00", &[1, 0xfe]);
        json.write(&mut out, "T", &[1]);
        assert_eq!(
            out,
            "{\"map\":\"rb\",\"data\":\"01fe\"}\n12:00:00 rb 01fe\n{\"timestamp\":\"T\",\"map\":\"rb\",\"data\":\"01\"}\n"
        );
    }

    #[test]
    fn fields_are_picked_in_order_and_timestamps_lead() {
        let btf = event_btf();
        let layouts = || Layouts::one(Layout::from_btf(&btf, 8).unwrap());
        let o = OutputOptions {
            fields: Some(vec!["comm".into(), "pid".into()]),
            timestamp: true,
        };
        let mut out = String::new();
        let r = Records::new(layouts(), "rb", Format::Json, &o).unwrap();
        r.write(&mut out, "2025-01-02T03:04:05.000000Z", &record());
        assert_eq!(
            out,
            "{\"timestamp\":\"2025-01-02T03:04:05.000000Z\",\"comm\":\"bash\",\"pid\":-5}\n"
        );
        let r = Records::new(layouts(), "rb", Format::Plain, &o).unwrap();
        assert_eq!(r.header().unwrap(), "TIME     COMM     PID");
        let bad = OutputOptions {
            fields: Some(vec!["nope".into()]),
            timestamp: false,
        };
        let e = Records::new(layouts(), "rb", Format::Plain, &bad)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("no field nope") && e.contains("pid, comm"),
            "{e}"
        );
        assert!(Records::new(Layouts::default(), "rb", Format::Plain, &o).is_err());
    }

    #[test]
    fn rfc3339_dates() {
        use std::time::{Duration, UNIX_EPOCH};
        let t =
            |s: u64, us: u64| rfc3339_utc(UNIX_EPOCH + Duration::from_micros(s * 1_000_000 + us));
        assert_eq!(t(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(t(951_782_400, 5), "2000-02-29T00:00:00.000005Z");
        assert_eq!(t(1_735_787_045, 123_456), "2025-01-02T03:04:05.123456Z");
    }
}
