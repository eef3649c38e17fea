//! `edge-ecli info`: what a package contains, read without touching the kernel.

use std::fmt::Write;

use crate::args;
use crate::btf::TypeData;
use crate::event;
use crate::meta::{self, Object};

fn map_type_name(t: u32) -> String {
    match t {
        meta::MAP_HASH => "hash".into(),
        meta::MAP_ARRAY => "array".into(),
        meta::MAP_PERF_EVENT_ARRAY => "perf_event_array".into(),
        meta::MAP_PERCPU_HASH => "percpu_hash".into(),
        meta::MAP_LRU_HASH => "lru_hash".into(),
        meta::MAP_RINGBUF => "ringbuf".into(),
        n => format!("type {n}"),
    }
}

pub fn render(o: &Object) -> String {
    let m = &o.meta;
    let mut s = String::new();
    let _ = writeln!(s, "object: {} ({} bytes)", m.obj_name, o.bytes.len());
    let _ = writeln!(s, "\nprograms:");
    for p in &m.progs {
        let note = match meta::aya_section(&p.name, &p.section) {
            Ok(_) => String::new(),
            Err(e) => format!("  [cannot run: {e}]"),
        };
        let _ = writeln!(s, "  {:<24} {}{note}", p.name, p.section);
    }
    let _ = writeln!(s, "\nmaps:");
    for d in &m.maps {
        let kv = |id: u32| {
            if id == 0 {
                "-".to_string()
            } else {
                o.btf.type_name(id)
            }
        };
        let mut extra = String::new();
        if let Some(sm) = &d.sample {
            let _ = write!(
                extra,
                "  sample {:?} every {} ms ({})",
                sm.kind, sm.interval_ms, sm.unit
            );
        }
        if d.is_event_map() {
            extra.push_str("  [events]");
        }
        let _ = writeln!(
            s,
            "  {:<24} {:<17} key {} value {} max_entries {}{extra}",
            d.name,
            map_type_name(d.map_type),
            kv(d.key_type),
            kv(d.value_type),
            d.max_entries
        );
    }
    let _ = writeln!(s, "\nexport types:");
    for id in event::default_export_types(o) {
        let Ok(t) = o.btf.get(id) else { continue };
        let _ = writeln!(
            s,
            "  struct {} (size {}, BTF id {id})",
            t.name, t.size_or_type
        );
        if let TypeData::Members(ms) = &t.data {
            for mem in ms {
                let _ = writeln!(
                    s,
                    "    {:<6} {:<20} {}",
                    format!("+{}", mem.bit_offset / 8),
                    mem.name,
                    o.btf.type_name(mem.type_id)
                );
            }
        }
    }
    let _ = writeln!(s, "\nflags:");
    for line in args::help(m, &o.btf, &m.obj_name)
        .lines()
        .skip_while(|l| !l.starts_with("Options:"))
        .skip(1)
    {
        let _ = writeln!(s, "{line}");
    }
    s
}
