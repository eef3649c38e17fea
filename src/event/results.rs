//! A tool's results, where they live in maps rather than in events: the maps its programs
//! write in place (`MapDef::is_result`: counters, histograms with `slots[]`) and its writable
//! globals (`.bss` counters and histogram arrays). Printed as bpftrace prints maps, at exit and
//! every `--interval`: `@name[key]: value`, histograms byte-identical to libbpf-tools'
//! `print_log2_hist`, keys decoded from BTF, stack ids symbolized. Read through `MapOps`, so
//! this is tested without a kernel.

use std::sync::Arc;

use super::layout::{field_of, Field, Kind, Layout};
use super::out::plain::write_stacks;
use super::out::result::{print_value, write_json};
use super::out::value::le;
use super::out::{write_plain, write_value, Format, Frames, Style};
pub use super::percpu::sum_cpus;
use crate::bpf::sys::MapOps;
use crate::btf::TypeData;
use crate::error::{Error, Result};
use crate::package::meta::map_type;
use crate::package::{MapDef, Object};
use crate::text::push_json_str;

/// At most this many keys are read from one map per print.
const MAX_KEYS: usize = 1 << 16;

/// One result map.
struct ResultMap {
    name: String,
    map: Box<dyn MapOps>,
    key: Layout,
    value: Layout,
    /// Per-CPU values are summed: (CPUs, bytes per CPU).
    percpu: Option<(usize, usize)>,
    /// Array maps keep every index: print only the ones that are not all zero.
    array: bool,
}

/// The writable globals of one data section (`.bss`), read as its one-entry array map.
struct Globals {
    section: String,
    map: Box<dyn MapOps>,
    size: usize,
    vars: Vec<Field>,
}

pub struct Results {
    maps: Vec<ResultMap>,
    globals: Vec<Globals>,
    frames: Option<Arc<dyn Frames>>,
    /// The label of histogram columns (libbpf-tools' `usecs`, `msecs`, ...).
    unit: String,
}

impl Results {
    /// The result maps and writable globals of `object`; `open(name)` gives access to a map
    /// of the loaded object (a data section's map by its section name).
    pub fn new(
        object: &Object,
        mut open: impl FnMut(&str) -> Result<Box<dyn MapOps>>,
        frames: Option<Arc<dyn Frames>>,
        unit: String,
    ) -> Result<Results> {
        let mut maps = Vec::new();
        for def in object.meta.maps.iter().filter(|d| d.is_result()) {
            maps.push(ResultMap::new(object, def, open(&def.name)?, &frames)?);
        }
        let mut globals = Vec::new();
        for (_, t) in object.btf.iter() {
            let TypeData::DataSec(vars) = &t.data else {
                continue;
            };
            let mut fields = Vec::new();
            for v in vars {
                let Ok(var) = object.btf.get(v.type_id) else {
                    continue;
                };
                let Some(g) = object
                    .meta
                    .results
                    .iter()
                    .find(|g| g.name == var.name && g.section == t.name)
                else {
                    continue;
                };
                fields.push(field_of(
                    &object.btf,
                    var.size_or_type,
                    &var.name,
                    g.offset as usize,
                )?);
            }
            if fields.is_empty() {
                continue;
            }
            let map = open(&t.name)?;
            let size = map
                .info()
                .map_err(|e| Error::msg(format!("reading the map of section {}: {e}", t.name)))?;
            globals.push(Globals {
                section: t.name.clone(),
                map,
                size: size.value_size,
                vars: fields,
            });
        }
        Ok(Results {
            maps,
            globals,
            frames,
            unit,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.maps.is_empty() && self.globals.is_empty()
    }

    /// Prints every result that is not empty; with `clear`, empties what it printed (hash
    /// entries deleted, arrays and globals zeroed), as libbpf-tools do each interval.
    pub fn print(&mut self, out: &mut String, format: Format, clear: bool) {
        let frames = self.frames.clone();
        for g in &mut self.globals {
            g.print(out, format, &self.unit, clear);
        }
        for m in &mut self.maps {
            m.print(out, format, &self.unit, frames.as_deref(), clear);
        }
    }
}

impl Globals {
    fn print(&mut self, out: &mut String, format: Format, unit: &str, clear: bool) {
        let mut data = vec![0u8; self.size];
        if self.map.lookup(&0u32.to_le_bytes(), &mut data).is_err() {
            return;
        }
        for f in &self.vars {
            let Some(bytes) = data.get(f.offset..f.offset + f.size) else {
                continue;
            };
            if bytes.iter().all(|&b| b == 0) {
                continue;
            }
            let mut at0 = f.clone();
            at0.offset = 0;
            match format {
                Format::Json => {
                    out.push_str("{\"global\":");
                    push_json_str(out, &f.name);
                    out.push_str(",\"value\":");
                    write_value(out, &f.kind, bytes, Style::Json);
                    out.push_str("}\n");
                }
                Format::Plain => print_value(out, &format!("@{}", f.name), &at0, bytes, unit),
            }
        }
        if clear {
            for f in &self.vars {
                if let Some(b) = data.get_mut(f.offset..f.offset + f.size) {
                    b.fill(0);
                }
            }
            if let Err(e) = self.map.update(&0u32.to_le_bytes(), &data, 0) {
                log::warn!("clearing the results in {}: {e}", self.section);
            }
        }
    }
}

impl ResultMap {
    fn new(
        object: &Object,
        def: &MapDef,
        map: Box<dyn MapOps>,
        frames: &Option<Arc<dyn Frames>>,
    ) -> Result<ResultMap> {
        let info = map
            .info()
            .map_err(|e| Error::msg(format!("map {}: reading its info: {e}", def.name)))?;
        let layout = |id: u32, size: usize, what: &str| -> Result<Layout> {
            if id != 0 {
                return Layout::from_btf(&object.btf, id);
            }
            // No BTF type (`__uint(key_size, 4)`): an integer of that size, or bytes.
            let kind = match size {
                1 | 2 | 4 | 8 => Kind::Int {
                    size,
                    signed: false,
                },
                _ => Kind::Bytes { size },
            };
            Ok(Layout {
                name: what.into(),
                size,
                fields: vec![Field {
                    name: what.into(),
                    offset: 0,
                    size,
                    bit_shift: 0,
                    bit_size: 0,
                    kind,
                    render: Default::default(),
                }],
                scalar: true,
            })
        };
        let percpu = map_type::is_percpu(def.map_type);
        let per_cpu = if percpu {
            let cpus = crate::bpf::sys::possible_cpus()
                .map_err(|e| Error::msg(format!("counting CPUs: {e}")))?
                .max(1);
            Some((cpus, info.value_size / cpus))
        } else {
            None
        };
        let value_size = per_cpu.map_or(info.value_size, |(_, s)| s);
        let mut key = layout(def.key_type, info.key_size, "key")?;
        if frames.is_some() {
            key.mark_stacks();
        }
        Ok(ResultMap {
            name: def.name.clone(),
            map,
            key,
            value: layout(def.value_type, value_size, "value")?,
            percpu: per_cpu,
            array: matches!(def.map_type, map_type::ARRAY | map_type::PERCPU_ARRAY),
        })
    }

    fn entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let Ok(info) = self.map.info() else {
            return vec![];
        };
        let mut out = Vec::new();
        let mut key: Option<Vec<u8>> = None;
        let mut next = vec![0u8; info.key_size];
        let mut raw = vec![0u8; info.value_size];
        while out.len() < MAX_KEYS {
            match self.map.next_key(key.as_deref(), &mut next) {
                Ok(true) => {}
                _ => break,
            }
            if self.map.lookup(&next, &mut raw).is_ok() {
                let value = match self.percpu {
                    Some(_) => sum_cpus(&self.value, &raw),
                    None => raw.clone(),
                };
                if !(self.array && value.iter().all(|&b| b == 0)) {
                    out.push((next.clone(), value));
                }
            }
            key = Some(next.clone());
        }
        out
    }

    /// The single integer a value is (to sort counters by), if it is one.
    fn count(&self, value: &[u8]) -> Option<u64> {
        match self.value.fields.as_slice() {
            [f] if matches!(f.kind, Kind::Int { size: 1..=8, .. }) => {
                value.get(f.offset..f.offset + f.size).map(|b| le(b) as u64)
            }
            _ => None,
        }
    }

    fn print(
        &mut self,
        out: &mut String,
        format: Format,
        unit: &str,
        frames: Option<&dyn Frames>,
        clear: bool,
    ) {
        let mut entries = self.entries();
        if entries.is_empty() {
            return;
        }
        // bpftrace's order: counters ascending (the largest last), others by key.
        if entries.iter().all(|(_, v)| self.count(v).is_some()) {
            entries.sort_by_key(|(_, v)| self.count(v).unwrap_or(0));
        } else {
            entries.sort_by(|a, b| a.0.cmp(&b.0));
        }
        let whole_value = Field {
            name: self.name.clone(),
            offset: 0,
            size: self.value.size,
            bit_shift: 0,
            bit_size: 0,
            kind: match self.value.fields.as_slice() {
                [f] if f.offset == 0 && f.size == self.value.size => f.kind.clone(),
                fs => Kind::Struct(fs.to_vec()),
            },
            render: Default::default(),
        };
        for (k, v) in &entries {
            match format {
                Format::Json => {
                    out.push_str("{\"map\":");
                    push_json_str(out, &self.name);
                    out.push_str(",\"key\":");
                    write_json(out, &self.key, k, frames);
                    out.push_str(",\"value\":");
                    write_json(out, &self.value, v, None);
                    out.push_str("}\n");
                }
                Format::Plain => {
                    let mut label = format!("@{}", self.name);
                    let shown: Vec<&Field> = self
                        .key
                        .fields
                        .iter()
                        .filter(|f| !matches!(f.render, super::layout::Render::Stack { .. }))
                        .collect();
                    let only_zero_key = entries.len() == 1 && k.iter().all(|&b| b == 0);
                    if !only_zero_key && !shown.is_empty() {
                        label.push('[');
                        for (i, f) in shown.iter().enumerate() {
                            if i > 0 {
                                label.push_str(", ");
                            }
                            write_plain(&mut label, f, k);
                        }
                        label.push(']');
                    }
                    print_value(out, &label, &whole_value, v, unit);
                    // The key's stacks, under the value they were counted with.
                    if let Some(fr) = frames {
                        write_stacks(out, &self.key, k, fr, "    ");
                    }
                }
            }
        }
        if clear {
            for (k, v) in &entries {
                let r = if self.array {
                    let zero = vec![0u8; self.map.info().map_or(v.len(), |i| i.value_size)];
                    self.map.update(k, &zero, 0)
                } else {
                    self.map.delete(k)
                };
                if let Err(e) = r {
                    log::debug!("clearing map {}: {e}", self.name);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::sys::FakeMap;
    use crate::btf::testutil::BtfBuilder;
    use crate::btf::{self, Btf};
    use crate::package::meta::{Doc, Global, Meta, Tunables};
    use crate::package::usage::MapUse;

    /// BTF: u32, u64, struct hist { u32 slots[4]; char comm[4]; }, struct data_t { u64 count;
    /// u64 total_ns; }, u64[3], and a .bss DATASEC with `counts` (u64[3]) and `total` (u64).
    fn object() -> Object {
        let mut b = BtfBuilder::new();
        b.add("unsigned int", btf::KIND_INT, 0, false, 4, &[32]); // 1
        b.add("unsigned long long", btf::KIND_INT, 0, false, 8, &[64]); // 2
        b.add("", btf::KIND_ARRAY, 0, false, 0, &[1, 1, 4]); // 3 u32[4]
        b.add("char", btf::KIND_INT, 0, false, 1, &[(1 << 24) | 8]); // 4
        b.add("", btf::KIND_ARRAY, 0, false, 0, &[4, 1, 4]); // 5 char[4]
        let (slots, comm) = (b.s("slots"), b.s("comm"));
        b.add(
            "hist",
            btf::KIND_STRUCT,
            2,
            false,
            20,
            &[slots, 3, 0, comm, 5, 128],
        ); // 6
        let (count, total) = (b.s("count"), b.s("total_ns"));
        b.add(
            "data_t",
            btf::KIND_STRUCT,
            2,
            false,
            16,
            &[count, 2, 0, total, 2, 64],
        ); // 7
        b.add("", btf::KIND_ARRAY, 0, false, 0, &[2, 1, 3]); // 8 u64[3]
        b.add("counts", btf::KIND_VAR, 0, false, 8, &[1]); // 9
        b.add("total", btf::KIND_VAR, 0, false, 2, &[1]); // 10
                                                          // offsets 0, as clang leaves them: the symbols' values are the real ones
        b.add(
            ".bss",
            btf::KIND_DATASEC,
            2,
            false,
            32,
            &[9, 0, 24, 10, 0, 8],
        ); // 11
        let btf = Btf::parse(&b.build()).unwrap();
        let def = |name: &str, t: u32, k: u32, v: u32| MapDef {
            name: name.into(),
            map_type: t,
            key_type: k,
            value_type: v,
            max_entries: 8,
            key_size: 0,
            value_size: 0,
            sample: None,
            export_type: None,
            uses: MapUse {
                written: true,
                ..MapUse::default()
            },
        };
        let g = |name: &str, t: u32, size: u64, offset: u64| Global {
            section: ".bss".into(),
            offset,
            name: name.into(),
            long: name.into(),
            type_id: t,
            size,
            short: None,
            help: None,
            default: None,
        };
        Object {
            bytes: vec![],
            btf,
            btfs: None,
            meta: Meta {
                obj_name: "t".into(),
                doc: Doc::default(),
                progs: vec![],
                maps: vec![
                    def("hists", map_type::HASH, 1, 6),
                    def("data", map_type::PERCPU_HASH, 1, 7),
                ],
                globals: vec![],
                results: vec![g("counts", 8, 24, 0), g("total", 2, 8, 24)],
                export_types: vec![],
                tunables: Tunables::default(),
            },
        }
    }

    fn fakes() -> std::collections::HashMap<String, Arc<FakeMap>> {
        let cpus = crate::bpf::sys::possible_cpus().unwrap();
        let mut m = std::collections::HashMap::new();
        m.insert(
            "hists".into(),
            Arc::new(FakeMap::new(map_type::HASH, 4, 20, 8)),
        );
        m.insert(
            "data".into(),
            Arc::new(FakeMap::new(map_type::PERCPU_HASH, 4, 16 * cpus, 8)),
        );
        m.insert(
            ".bss".into(),
            Arc::new(FakeMap::new(map_type::ARRAY, 4, 32, 1)),
        );
        m
    }

    #[test]
    fn results_print_like_bpftrace_with_libbpf_tools_histograms() {
        let o = object();
        let f = fakes();
        let cpus = crate::bpf::sys::possible_cpus().unwrap();
        let mut h = Vec::new();
        for s in [0u32, 1, 4, 2] {
            h.extend(s.to_le_bytes());
        }
        h.extend(b"ab\0\0");
        f["hists"].update(&7u32.to_le_bytes(), &h, 0).unwrap();
        // data: key 3 -> count 2 on every CPU, total 10 on every CPU; key 9 -> count 1 on CPU 0
        let mut per = Vec::new();
        for _ in 0..cpus {
            per.extend(2u64.to_le_bytes());
            per.extend(10u64.to_le_bytes());
        }
        f["data"].update(&3u32.to_le_bytes(), &per, 0).unwrap();
        let mut one = vec![0u8; 16 * cpus];
        one[0] = 1;
        f["data"].update(&9u32.to_le_bytes(), &one, 0).unwrap();
        let mut bss = vec![0u8; 32];
        bss[8..16].copy_from_slice(&5u64.to_le_bytes());
        bss[24..32].copy_from_slice(&42u64.to_le_bytes());
        f[".bss"].update(&0u32.to_le_bytes(), &bss, 0).unwrap();
        let fc = f.clone();
        let mut r = Results::new(
            &o,
            |n| Ok(Box::new(fc[n].clone()) as Box<dyn MapOps>),
            None,
            "usecs".into(),
        )
        .unwrap();
        let mut out = String::new();
        r.print(&mut out, Format::Plain, false);
        let n = cpus * 2;
        let t = cpus * 10;
        let want = format!(
            "@counts[1]: 5\n@total: 42\n@hists[7]:\n    comm = ab\n     usecs               : count    distribution\n\
\x20        0 -> 1          : 0        |                                        |\n\
\x20        2 -> 3          : 1        |**********                              |\n\
\x20        4 -> 7          : 4        |****************************************|\n\
\x20        8 -> 15         : 2        |********************                    |\n\n\
@data[3]: {{ .count = {n}, .total_ns = {t} }}\n@data[9]: {{ .count = 1, .total_ns = 0 }}\n"
        );
        assert_eq!(out, want);
        out.clear();
        r.print(&mut out, Format::Json, true);
        assert!(
            out.contains("{\"global\":\"counts\",\"value\":[0,5,0]}\n"),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "{{\"map\":\"data\",\"key\":3,\"value\":{{\"count\":{n},\"total_ns\":{t}}}}}"
            )),
            "{out}"
        );
        // cleared: nothing left to print
        out.clear();
        r.print(&mut out, Format::Plain, false);
        assert_eq!(out, "");
    }
}
