//! `GET /metrics`: Prometheus text format 0.0.4. Per instance: its state, events, lost
//! records, records dropped while paused, records its clients missed, CPU time. Per map an
//! instance publishes (bumblebee's `counter_`, `gauge_`, `hist_` prefixes and eunomia's sample
//! maps): one sample per key, the key's fields as labels, per-CPU values summed.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::table::Table;
use crate::event::layout::{Field, Kind, Layout};
use crate::event::out::{write_value, Style};
use crate::event::sample::{MapView, ViewKind};

const STATES: [&str; 5] = ["starting", "running", "paused", "stopped", "failed"];

/// A metric family: its type, help and sample lines.
struct Family {
    kind: &'static str,
    help: String,
    lines: Vec<String>,
}

fn escape_label(v: &str) -> String {
    let mut o = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

/// A metric or label name: [a-zA-Z_][a-zA-Z0-9_]*.
fn sanitize(n: &str) -> String {
    let mut o: String = n
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if o.is_empty() || o.starts_with(|c: char| c.is_ascii_digit()) {
        o.insert(0, '_');
    }
    o
}

fn labels(pairs: &[(String, String)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}=\"{}\"", k, escape_label(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// An integer of at most 8 bytes (signed as its kind says).
fn int_of(f: &Field, b: &[u8]) -> Option<i128> {
    let (size, signed) = match &f.kind {
        Kind::Int { size, signed } if *size <= 8 => (*size, *signed),
        Kind::Bool { size } | Kind::Enum { size, .. } => (*size, false),
        _ => return None,
    };
    let bytes = b.get(f.offset..f.offset + size)?;
    let mut v: u64 = 0;
    for (i, &x) in bytes.iter().enumerate() {
        v |= (x as u64) << (8 * i);
    }
    Some(if signed && size < 8 && v >> (size * 8 - 1) & 1 == 1 {
        (v as i128) - (1i128 << (size * 8))
    } else if signed && size == 8 {
        v as i64 as i128
    } else {
        v as i128
    })
}

/// A value's numeric fields, summed over per-CPU copies when the map holds several.
fn numbers(value: &Layout, raw: &[u8]) -> Vec<(String, i128)> {
    let stride = value.size.div_ceil(8) * 8;
    let copies = if stride > 0 && raw.len() > value.size {
        raw.len() / stride
    } else {
        1
    };
    let mut out: Vec<(String, i128)> = Vec::new();
    for f in &value.fields {
        let mut sum = 0i128;
        let mut any = false;
        for c in 0..copies {
            if let Some(v) = raw.get(c * stride..).and_then(|b| int_of(f, b)) {
                sum += v;
                any = true;
            }
        }
        if any {
            out.push((f.name.clone(), sum));
        }
    }
    out
}

fn key_labels(v: &MapView, raw: &[u8]) -> Vec<(String, String)> {
    v.key
        .fields
        .iter()
        .map(|f| {
            let mut text = String::new();
            write_value(
                &mut text,
                &f.kind,
                raw.get(f.offset..).unwrap_or(&[]),
                Style::Plain,
            );
            let name = if v.key_is_struct {
                sanitize(&f.name)
            } else {
                "key".into()
            };
            // Prometheus reserves names that start with two underscores.
            let name = if name.starts_with("__") {
                format!("k{name}")
            } else {
                name
            };
            (name, text)
        })
        .collect()
}

fn view_families(instance: &str, v: &MapView, fams: &mut BTreeMap<String, Family>) {
    let (prefix, kind) = match v.kind {
        ViewKind::Counter => ("counter_", "counter"),
        ViewKind::Gauge => ("gauge_", "gauge"),
        ViewKind::Log2Hist => ("hist_", "histogram"),
    };
    let base = format!(
        "ebpf_{}",
        sanitize(v.name.strip_prefix(prefix).unwrap_or(&v.name))
    );
    let family = if kind == "counter" {
        format!("{base}_total")
    } else {
        base.clone()
    };
    let fam = fams.entry(family.clone()).or_insert_with(|| Family {
        kind,
        help: format!("BPF map {} ({kind})", v.name),
        lines: Vec::new(),
    });
    for (k, val) in v.entries() {
        let mut l = vec![("instance".to_string(), instance.to_string())];
        l.extend(key_labels(v, &k));
        if kind == "histogram" {
            let slots = v.slots(&val);
            let mut cum = 0u64;
            let mut sum = 0u64;
            for (i, &n) in slots.iter().enumerate() {
                cum += n as u64;
                // A lower bound of the sum: each count at its bucket's low end.
                sum += n as u64 * ((1u64 << i) >> 1);
                let mut lb = l.clone();
                lb.push(("le".into(), format!("{}", (1u128 << (i + 1)) - 1)));
                fam.lines
                    .push(format!("{base}_bucket{} {cum}", labels(&lb)));
            }
            let mut inf = l.clone();
            inf.push(("le".into(), "+Inf".into()));
            fam.lines
                .push(format!("{base}_bucket{} {cum}", labels(&inf)));
            fam.lines.push(format!("{base}_sum{} {sum}", labels(&l)));
            fam.lines.push(format!("{base}_count{} {cum}", labels(&l)));
            continue;
        }
        let nums = numbers(&v.value, &val);
        for (field, n) in &nums {
            let mut lf = l.clone();
            if nums.len() > 1 {
                lf.push(("field".into(), field.clone()));
            }
            fam.lines.push(format!("{family}{} {n}", labels(&lf)));
        }
    }
}

pub fn render(table: &Table) -> String {
    let mut fams: BTreeMap<String, Family> = BTreeMap::new();
    let mut add = |name: &str, kind: &'static str, help: &str, line: String| {
        fams.entry(name.to_string())
            .or_insert_with(|| Family {
                kind,
                help: help.into(),
                lines: Vec::new(),
            })
            .lines
            .push(line);
    };
    for s in table.list() {
        let inst = labels(&[("instance".into(), s.name.clone())]);
        for st in STATES {
            let l = labels(&[
                ("instance".into(), s.name.clone()),
                ("state".into(), st.into()),
            ]);
            add(
                "edge_ecli_instance_state",
                "gauge",
                "1 for the state the instance is in",
                format!(
                    "edge_ecli_instance_state{l} {}",
                    (s.state.name() == st) as u8
                ),
            );
        }
        let c = &s.stats;
        for (name, help, v) in [
            (
                "edge_ecli_instance_events_total",
                "records the instance delivered",
                c.events,
            ),
            (
                "edge_ecli_instance_lost_total",
                "records the kernel dropped (full perf buffers)",
                c.lost,
            ),
            (
                "edge_ecli_instance_paused_drops_total",
                "records read and discarded while paused",
                c.paused_drops,
            ),
            (
                "edge_ecli_instance_client_drops_total",
                "output lines clients read too slowly to get",
                s.client_drops,
            ),
        ] {
            add(name, "counter", help, format!("{name}{inst} {v}"));
        }
        add(
            "edge_ecli_instance_cpu_seconds_total",
            "counter",
            "CPU time of the instance's thread",
            format!(
                "edge_ecli_instance_cpu_seconds_total{inst} {:.6}",
                c.cpu_ns as f64 / 1e9
            ),
        );
        add(
            "edge_ecli_instance_start_time_seconds",
            "gauge",
            "when the running version started (Unix time)",
            format!(
                "edge_ecli_instance_start_time_seconds{inst} {}",
                s.started
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
            ),
        );
    }
    for (inst, views) in table.map_views() {
        for v in views {
            view_families(&inst, &v, &mut fams);
        }
    }
    let mut o = String::new();
    for (name, f) in fams {
        let _ = writeln!(o, "# HELP {name} {}", f.help);
        let _ = writeln!(o, "# TYPE {name} {}", f.kind);
        for l in f.lines {
            o.push_str(&l);
            o.push('\n');
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_are_prometheus_safe() {
        assert_eq!(sanitize("a-b.c"), "a_b_c");
        assert_eq!(sanitize("9x"), "_9x");
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(
            labels(&[("k".into(), "v".into()), ("a".into(), "b\"".into())]),
            "{k=\"v\",a=\"b\\\"\"}"
        );
    }
}
