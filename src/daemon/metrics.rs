//! `GET /metrics`: Prometheus text format 0.0.4, checked with `promtool check metrics`.
//!
//! Modelled on Cloudflare's ebpf_exporter, with the differences a daemon of named instances
//! needs. Every sample carries the instance as `ebpf_instance` (never `instance` or `job`,
//! which Prometheus sets from the scrape target: a label of that name would arrive renamed
//! `exported_instance`). Per instance: its state, info (digest, kind), records delivered,
//! lost, dropped while paused, missed by slow clients, CPU time and start time (the counters
//! add up across reloads), and per program its run count and run time (`bpf_prog_info`, as
//! ebpf_exporter's `ebpf_program_run_*`; the kernel counts them while statistics are on:
//! `--bpf-stats` or the `kernel.bpf_stats_enabled` sysctl). Per map an instance publishes
//! (bumblebee's `counter_`, `gauge_`, `hist_` prefixes and eunomia's sample maps): one family
//! per map (per value field when the value has several), named `ebpf_<map>` with the unit
//! suffix its sample unit gives (`usecs` become `_seconds`, scaled, as ebpf_exporter's
//! `bucket_multiplier` does), one sample per key with the key's fields as labels (a field
//! named like a label of ours is prefixed `key_`), per-CPU values summed. log2 histograms
//! keep libbpf-tools' buckets (`le` = 2^(i+1)-1); the map holds counts only, so `_sum` is
//! estimated with each count at its bucket's midpoint. Maps of native packages only.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::table::Table;
use crate::event::layout::{Field, Kind, Layout};
use crate::event::out::{write_value, Style};
use crate::event::sample::{MapView, ViewKind};

/// The label that names the instance in every sample.
pub const INSTANCE: &str = "ebpf_instance";
/// Label names a key field may not take: Prometheus's target labels, and ours.
const RESERVED: [&str; 6] = ["instance", "job", INSTANCE, "le", "quantile", "program"];
const STATES: [&str; 5] = ["starting", "running", "paused", "stopped", "failed"];

/// A metric family: its type, help and sample lines.
struct Family {
    kind: &'static str,
    help: String,
    lines: Vec<String>,
}

/// The families of one scrape, by name. A name is one type: a map whose family name another
/// type already holds gets its type as a suffix rather than break the exposition.
#[derive(Default)]
struct Families(BTreeMap<String, Family>);

impl Families {
    fn family(&mut self, name: &str, kind: &'static str, help: &str) -> (&mut Family, String) {
        let name = match self.0.get(name) {
            Some(f) if f.kind != kind => format!("{name}_{kind}"),
            _ => name.to_string(),
        };
        let f = self.0.entry(name.clone()).or_insert_with(|| Family {
            kind,
            help: help.to_string(),
            lines: Vec::new(),
        });
        (f, name)
    }

    fn add(
        &mut self,
        name: &str,
        kind: &'static str,
        help: &str,
        labels: &[(String, String)],
        v: impl std::fmt::Display,
    ) {
        let (f, name) = self.family(name, kind, help);
        f.lines.push(format!("{name}{} {v}", render_labels(labels)));
    }

    fn render(self) -> String {
        let mut o = String::new();
        for (name, f) in self.0 {
            let _ = writeln!(o, "# HELP {name} {}", f.help);
            let _ = writeln!(o, "# TYPE {name} {}", f.kind);
            for l in f.lines {
                o.push_str(&l);
                o.push('\n');
            }
        }
        o
    }
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

fn render_labels(pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}=\"{}\"", k, escape_label(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn instance_label(name: &str) -> (String, String) {
    (INSTANCE.to_string(), name.to_string())
}

/// The suffix and scale of a sample map's unit: time in seconds and sizes in bytes, the
/// Prometheus base units.
pub fn unit_of(unit: Option<&str>) -> (&'static str, f64) {
    match unit.map(str::to_ascii_lowercase).as_deref() {
        Some("nsecs" | "nsec" | "ns" | "nanoseconds") => ("_seconds", 1e-9),
        Some("usecs" | "usec" | "us" | "microseconds") => ("_seconds", 1e-6),
        Some("msecs" | "msec" | "ms" | "milliseconds") => ("_seconds", 1e-3),
        Some("secs" | "sec" | "s" | "seconds") => ("_seconds", 1.0),
        Some("bytes" | "byte") => ("_bytes", 1.0),
        Some("kbytes" | "kib" | "kb") => ("_bytes", 1024.0),
        _ => ("", 1.0),
    }
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

/// A key's fields as labels: sanitized, never one of the reserved names, never twice.
fn key_labels(v: &MapView, raw: &[u8]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for f in &v.key.fields {
        let mut text = String::new();
        write_value(
            &mut text,
            &f.kind,
            raw.get(f.offset..).unwrap_or(&[]),
            Style::Plain,
        );
        let mut name = if v.key_is_struct {
            sanitize(&f.name)
        } else {
            "key".into()
        };
        // Prometheus reserves names that start with two underscores.
        if name.starts_with("__") {
            name = format!("k{name}");
        }
        if RESERVED.contains(&name.as_str()) {
            name = format!("key_{name}");
        }
        while out.iter().any(|(n, _)| *n == name) {
            name.push('_');
        }
        out.push((name, text));
    }
    out
}

/// The low and high ends of log2 slot `i` (libbpf-tools: slot 0 holds 0 and 1).
fn slot_range(i: usize) -> (f64, f64) {
    let hi = ((1u128 << (i + 1)) - 1) as f64;
    let lo = if i == 0 { 0.0 } else { (1u128 << i) as f64 };
    (lo, hi)
}

/// A histogram's lines: cumulative buckets, the estimated sum, the count.
fn histogram(fam: &mut Family, name: &str, labels: &[(String, String)], slots: &[u32], scale: f64) {
    let mut cum = 0u64;
    let mut sum = 0.0f64;
    for (i, &n) in slots.iter().enumerate() {
        cum += n as u64;
        let (lo, hi) = slot_range(i);
        sum += n as f64 * (lo + hi) / 2.0 * scale;
        let mut lb = labels.to_vec();
        lb.push(("le".into(), format!("{}", hi * scale)));
        fam.lines
            .push(format!("{name}_bucket{} {cum}", render_labels(&lb)));
    }
    let mut inf = labels.to_vec();
    inf.push(("le".into(), "+Inf".into()));
    fam.lines
        .push(format!("{name}_bucket{} {cum}", render_labels(&inf)));
    fam.lines
        .push(format!("{name}_sum{} {sum}", render_labels(labels)));
    fam.lines
        .push(format!("{name}_count{} {cum}", render_labels(labels)));
}

fn view_families(instance: &str, v: &MapView, fams: &mut Families) {
    let (prefix, kind) = match v.kind {
        ViewKind::Counter => ("counter_", "counter"),
        ViewKind::Gauge => ("gauge_", "gauge"),
        ViewKind::Log2Hist => ("hist_", "histogram"),
    };
    let (suffix, scale) = unit_of(v.unit.as_deref());
    let stem = sanitize(v.name.strip_prefix(prefix).unwrap_or(&v.name));
    let stem = stem.strip_suffix(suffix).unwrap_or(&stem).to_string();
    let help = format!("BPF map {} ({kind})", v.name);
    let entries = v.entries();
    for (k, val) in entries {
        let mut l = vec![instance_label(instance)];
        l.extend(key_labels(v, &k));
        if kind == "histogram" {
            let (fam, name) = fams.family(&format!("ebpf_{stem}{suffix}"), kind, &help);
            histogram(fam, &name, &l, &v.slots(&val), scale);
            continue;
        }
        let nums = numbers(&v.value, &val);
        for (field, n) in &nums {
            // One family per value field: a sum over fields would mean nothing.
            let mut name = format!("ebpf_{stem}");
            if nums.len() > 1 {
                name = format!("{name}_{}", sanitize(field));
            }
            name.push_str(suffix);
            if kind == "counter" {
                name.push_str("_total");
            }
            let value = if scale == 1.0 {
                n.to_string()
            } else {
                format!("{}", *n as f64 * scale)
            };
            fams.add(&name, kind, &help, &l, value);
        }
    }
}

fn instance_families(t: &Table, fams: &mut Families) {
    for s in t.list() {
        let inst = [instance_label(&s.name)];
        for st in STATES {
            let l = [instance_label(&s.name), ("state".into(), st.into())];
            fams.add(
                "edge_ecli_instance_state",
                "gauge",
                "1 for the state the instance is in",
                &l,
                (s.state.name() == st) as u8,
            );
        }
        let info = [
            instance_label(&s.name),
            ("digest".into(), s.digest.clone()),
            ("kind".into(), s.kind.to_string()),
        ];
        fams.add(
            "edge_ecli_instance_info",
            "gauge",
            "the package an instance runs: its digest and kind",
            &info,
            1,
        );
        let c = &s.stats;
        for (name, help, v) in [
            (
                "edge_ecli_instance_events_total",
                "records the instance delivered (across reloads)",
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
            fams.add(name, "counter", help, &inst, v);
        }
        fams.add(
            "edge_ecli_instance_cpu_seconds_total",
            "counter",
            "CPU time of the instance's thread (across reloads)",
            &inst,
            format!("{:.6}", c.cpu_ns as f64 / 1e9),
        );
        fams.add(
            "edge_ecli_instance_start_time_seconds",
            "gauge",
            "when the running version started (Unix time)",
            &inst,
            s.started
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        );
    }
}

fn program_families(t: &Table, fams: &mut Families) {
    for (inst, progs) in t.program_ids() {
        let ids: Vec<u32> = progs.iter().map(|(_, id)| *id).collect();
        for st in crate::bpf::stats::program_stats(&ids) {
            let Some((prog, _)) = progs.iter().find(|(_, id)| *id == st.id) else {
                continue;
            };
            let l = [
                instance_label(&inst),
                ("program".into(), prog.clone()),
                ("id".into(), st.id.to_string()),
            ];
            fams.add(
                "edge_ecli_program_run_count_total",
                "counter",
                "times the program ran (counted while BPF statistics are enabled)",
                &l,
                st.run_count,
            );
            fams.add(
                "edge_ecli_program_run_seconds_total",
                "counter",
                "time the program ran (counted while BPF statistics are enabled)",
                &l,
                format!("{:.9}", st.run_time.as_secs_f64()),
            );
        }
    }
}

pub fn render(table: &Table) -> String {
    let mut fams = Families::default();
    fams.add(
        "edge_ecli_build_info",
        "gauge",
        "the edge-ecli that serves these metrics",
        &[
            ("version".into(), env!("CARGO_PKG_VERSION").into()),
            ("arch".into(), std::env::consts::ARCH.into()),
        ],
        1,
    );
    instance_families(table, &mut fams);
    program_families(table, &mut fams);
    for (inst, views) in table.map_views() {
        for v in views {
            view_families(&inst, &v, &mut fams);
        }
    }
    fams.render()
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
            render_labels(&[("k".into(), "v".into()), ("a".into(), "b\"".into())]),
            "{k=\"v\",a=\"b\\\"\"}"
        );
        assert_eq!(unit_of(Some("usecs")), ("_seconds", 1e-6));
        assert_eq!(unit_of(Some("bytes")), ("_bytes", 1.0));
        assert_eq!(unit_of(Some("(unit)")), ("", 1.0));
        assert_eq!(unit_of(None), ("", 1.0));
    }

    #[test]
    fn histogram_sums_estimate_each_count_at_its_buckets_midpoint() {
        // Writes of 1..=50 bytes, in libbpf-tools' log2 slots: the true sum is 1275.
        let mut slots = [0u32; 8];
        for v in 1u32..=50 {
            slots[(32 - v.leading_zeros() - 1) as usize] += 1;
        }
        let mut f = Family {
            kind: "histogram",
            help: String::new(),
            lines: vec![],
        };
        histogram(&mut f, "h", &[], &slots, 1.0);
        let sum: f64 = f
            .lines
            .iter()
            .find_map(|l| l.strip_prefix("h_sum "))
            .unwrap()
            .parse()
            .unwrap();
        assert!((sum - 1275.0).abs() / 1275.0 < 0.15, "{sum}");
        assert!(
            f.lines.contains(&"h_bucket{le=\"1\"} 1".to_string()),
            "{:?}",
            f.lines
        );
        assert!(f.lines.contains(&"h_count 50".to_string()));
        // In seconds when the unit says usecs.
        let mut g = Family {
            kind: "histogram",
            help: String::new(),
            lines: vec![],
        };
        histogram(&mut g, "t", &[], &[0, 2], 1e-6);
        assert!(
            g.lines.contains(&"t_bucket{le=\"0.000003\"} 2".to_string()),
            "{:?}",
            g.lines
        );
    }

    #[test]
    fn one_name_is_one_type() {
        let mut f = Families::default();
        f.add("ebpf_x", "gauge", "g", &[], 1);
        f.add("ebpf_x", "histogram", "h", &[], 2);
        f.add("ebpf_x", "gauge", "g", &[], 3);
        let text = f.render();
        assert!(
            text.contains("# TYPE ebpf_x gauge\nebpf_x 1\nebpf_x 3\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE ebpf_x_histogram histogram"), "{text}");
    }
}
