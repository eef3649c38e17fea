//! Sample maps (eunomia's `sample`): hash or array maps read every interval and printed as
//! key/value rows, or as histograms byte-identical to BCC's (`out::hist`). The map is read
//! through `MapOps`, so this is tested without a kernel.

use std::time::{Duration, Instant};

use super::layout::{Field, Kind, Layout};
use super::out::{hist, plain, write_object, write_value, Format, Style};
use crate::bpf::sys::MapOps;
use crate::btf::{self, TypeData};
use crate::error::{Error, Result};
use crate::package::meta::map_type;
use crate::package::{MapDef, Object, Sample, SampleKind};
use crate::text::push_json_str;

/// At most this many keys are read per interval.
const MAX_KEYS: usize = 1 << 16;

pub struct SampleMap {
    name: String,
    map: Box<dyn MapOps>,
    pub sample: Sample,
    key: Layout,
    value: Layout,
    /// Key and value side by side, for default_kv rows.
    kv: plain::Columns,
    next_due: Instant,
    header_done: bool,
}

/// Checks that a histogram value has slots: a struct with a `slots` array, or an array.
fn has_slots(btf: &btf::Btf, value_type: u32) -> bool {
    let Some(t) = btf.resolve(value_type).ok().and_then(|id| btf.get(id).ok()) else {
        return false;
    };
    match &t.data {
        TypeData::Array { .. } => true,
        TypeData::Members(m) => m.iter().any(|m| m.name == "slots"),
        _ => false,
    }
}

impl SampleMap {
    pub fn new(
        object: &Object,
        def: &MapDef,
        sample: Sample,
        map: Box<dyn MapOps>,
    ) -> Result<SampleMap> {
        let need = |id: u32, what: &str| -> Result<Layout> {
            if id == 0 {
                return Err(Error::invalid(format!(
                    "sample map {}: its {what} type is not in BTF (declare it with __type)",
                    def.name
                )));
            }
            Layout::from_btf(&object.btf, id)
        };
        let key = need(def.key_type, "key")?;
        let value = need(def.value_type, "value")?;
        if matches!(sample.kind, SampleKind::Log2Hist | SampleKind::LinearHist)
            && !has_slots(&object.btf, def.value_type)
        {
            return Err(Error::invalid(format!(
                "sample map {}: a histogram value must be a struct with a `slots` array of u32 (or a u32 array)",
                def.name
            )));
        }
        let mut kv_fields = key.fields.clone();
        kv_fields.extend(value.fields.iter().cloned().map(|mut f| {
            f.offset += key.size;
            f
        }));
        let kv = plain::Columns::new(Layout {
            name: def.name.clone(),
            size: key.size + value.size,
            fields: kv_fields,
            scalar: false,
        });
        Ok(SampleMap {
            name: def.name.clone(),
            map,
            next_due: Instant::now() + Duration::from_millis(sample.interval_ms),
            sample,
            key,
            value,
            kv,
            header_done: false,
        })
    }

    pub fn next_due(&self) -> Instant {
        self.next_due
    }

    /// Prints the map if its interval has passed; true when it did.
    pub fn print_if_due(&mut self, out: &mut String, format: Format, time: &str) -> bool {
        let now = Instant::now();
        if self.next_due > now {
            return false;
        }
        self.next_due = now + Duration::from_millis(self.sample.interval_ms);
        self.print(out, format, time);
        true
    }

    fn keys(&self) -> Vec<Vec<u8>> {
        let ks = self.key.size;
        let mut key = vec![0u8; ks];
        let mut next = vec![0u8; ks];
        let mut keys = Vec::new();
        let mut first = true;
        while keys.len() < MAX_KEYS {
            let r = self
                .map
                .next_key(if first { None } else { Some(&key) }, &mut next);
            first = false;
            match r {
                Ok(true) => {
                    keys.push(next.clone());
                    std::mem::swap(&mut key, &mut next);
                }
                _ => break,
            }
        }
        keys
    }

    /// Prints every key and value of the map, then clears it if the package asks.
    pub fn print(&mut self, out: &mut String, format: Format, time: &str) {
        let keys = self.keys();
        let json = format == Format::Json;
        if !json && self.sample.kind == SampleKind::DefaultKv && !self.header_done {
            out.push_str(&self.kv.header("TIME     "));
            out.push('\n');
            self.header_done = true;
        }
        let mut value = vec![0u8; self.value.size];
        let mut kv = Vec::with_capacity(self.key.size + self.value.size);
        for k in &keys {
            if self.map.lookup(k, &mut value).is_err() {
                continue;
            }
            if json {
                out.push_str("{\"map\":");
                push_json_str(out, &self.name);
                out.push_str(",\"key\":");
                write_object(out, &self.key.fields, k);
                out.push_str(",\"value\":");
                write_object(out, &self.value.fields, &value);
                out.push_str("}\n");
                continue;
            }
            match self.sample.kind {
                SampleKind::DefaultKv => {
                    kv.clear();
                    kv.extend_from_slice(k);
                    kv.extend_from_slice(&value);
                    self.kv.record(out, time, &kv, None);
                }
                SampleKind::Log2Hist | SampleKind::LinearHist => self.histogram(out, k, &value),
            }
        }
        if self.sample.clear_map {
            for k in &keys {
                let _ = self.map.delete(k);
            }
        }
    }

    /// `key = K`, the value's other members, then the histogram of its slots.
    fn histogram(&self, out: &mut String, key: &[u8], value: &[u8]) {
        out.push_str("key = ");
        write_plain_fields(out, &self.key.fields, key);
        out.push('\n');
        let mut slots = Vec::new();
        for f in &self.value.fields {
            if f.name == "slots" || self.value.fields.len() == 1 {
                slots = u32_slots(f, value);
            } else {
                out.push_str(&f.name);
                out.push_str(" = ");
                write_value(
                    out,
                    &f.kind,
                    value.get(f.offset..).unwrap_or(&[]),
                    Style::Plain,
                );
                out.push('\n');
            }
        }
        if self.sample.kind == SampleKind::Log2Hist {
            hist::log2(out, &slots, &self.sample.unit);
        } else {
            hist::linear(out, &slots, 0, 1, &self.sample.unit);
        }
        out.push('\n');
    }
}

/// The u32 counters of a `slots` array field.
fn u32_slots(f: &Field, value: &[u8]) -> Vec<u32> {
    match f.kind {
        Kind::Array {
            len, elem_size: 4, ..
        } => (0..len)
            .map(|j| {
                let o = f.offset + j * 4;
                value
                    .get(o..o + 4)
                    .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn write_plain_fields(out: &mut String, fields: &[Field], data: &[u8]) {
    if let [f] = fields {
        write_value(
            out,
            &f.kind,
            data.get(f.offset..).unwrap_or(&[]),
            Style::Plain,
        );
    } else {
        write_object(out, fields, data);
    }
}

/// How a map is shown as metrics (bumblebee's prefixes, and eunomia's sample maps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewKind {
    /// `counter_*`: each key's integer value is a counter.
    Counter,
    /// `gauge_*` and `default_kv` sample maps: each key's value is a gauge.
    Gauge,
    /// `hist_*` and `log2_hist` sample maps: each key's `slots` are log2 buckets.
    Log2Hist,
}

/// A map an instance lets others read while it runs (the daemon's metrics): its layouts and
/// an fd of its own.
pub struct MapView {
    pub name: String,
    pub kind: ViewKind,
    /// A struct key's fields are labels; any other key is one label, `key`.
    pub key_is_struct: bool,
    pub key: Layout,
    pub value: Layout,
    pub map: Box<dyn MapOps>,
    /// The unit a sample map names (`usecs`, `bytes`...), when it names one.
    pub unit: Option<String>,
}

impl MapView {
    /// Which kind of view a map gets, if any.
    pub fn kind_of(def: &MapDef) -> Option<ViewKind> {
        if def.is_event_map() {
            return None;
        }
        match (&def.sample, def.name.as_str()) {
            (_, n) if n.starts_with("counter_") => Some(ViewKind::Counter),
            (_, n) if n.starts_with("gauge_") => Some(ViewKind::Gauge),
            (_, n) if n.starts_with("hist_") => Some(ViewKind::Log2Hist),
            (Some(s), _) if s.kind == SampleKind::DefaultKv => Some(ViewKind::Gauge),
            (Some(s), _) if s.kind == SampleKind::Log2Hist => Some(ViewKind::Log2Hist),
            _ => None,
        }
    }

    /// The view of a map: by name or sample config (`kind_of`), else, for a map that holds
    /// the tool's results (`MapDef::is_result`), a histogram when its value has `slots`, a
    /// gauge per value field otherwise: what the CLI prints at exit, the daemon exports.
    pub fn kind_for(object: &Object, def: &MapDef) -> Option<ViewKind> {
        Self::kind_of(def).or_else(|| {
            (def.is_result() && def.key_type != 0 && def.value_type != 0).then(|| {
                if has_slots(&object.btf, def.value_type) {
                    ViewKind::Log2Hist
                } else {
                    ViewKind::Gauge
                }
            })
        })
    }

    pub fn new(
        object: &Object,
        def: &MapDef,
        kind: ViewKind,
        map: Box<dyn MapOps>,
    ) -> Result<MapView> {
        if def.key_type == 0 || def.value_type == 0 {
            return Err(Error::invalid(format!(
                "map {}: its key and value types must be in BTF (__type) to be shown as metrics",
                def.name
            )));
        }
        let key_is_struct = object
            .btf
            .resolve(def.key_type)
            .ok()
            .and_then(|id| object.btf.get(id).ok())
            .is_some_and(|t| t.kind == btf::KIND_STRUCT);
        Ok(MapView {
            name: def.name.clone(),
            kind,
            key_is_struct,
            key: Layout::from_btf(&object.btf, def.key_type)?,
            value: Layout::from_btf(&object.btf, def.value_type)?,
            map,
            unit: def
                .sample
                .as_ref()
                .map(|s| s.unit.clone())
                .filter(|u| !u.is_empty() && u != "(unit)"),
        })
    }

    /// Every (key, value) of the map now (at most 4096 keys).
    pub fn entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let Ok(info) = self.map.info() else {
            return vec![];
        };
        let mut out = Vec::new();
        let mut key: Option<Vec<u8>> = None;
        let mut next = vec![0u8; info.key_size];
        while out.len() < 4096 {
            match self.map.next_key(key.as_deref(), &mut next) {
                Ok(true) => {}
                _ => break,
            }
            let mut v = vec![0u8; info.value_size];
            if self.map.lookup(&next, &mut v).is_ok() {
                // A per-CPU map holds a value per CPU: their integers are summed.
                if map_type::is_percpu(info.map_type) {
                    v = crate::event::results::sum_cpus(&self.value, &v);
                }
                out.push((next.clone(), v));
            }
            key = Some(next.clone());
        }
        out
    }

    /// The u32 slots of a histogram value.
    pub fn slots(&self, value: &[u8]) -> Vec<u32> {
        self.value
            .fields
            .iter()
            .find(|f| f.name == "slots" || self.value.fields.len() == 1)
            .map(|f| u32_slots(f, value))
            .unwrap_or_default()
    }
}

/// The sample maps of an object, each read through `open(name)` (the loader's map access).
pub fn wire(
    object: &Object,
    mut open: impl FnMut(&MapDef) -> Result<Box<dyn MapOps>>,
) -> Result<Vec<SampleMap>> {
    let mut v = Vec::new();
    for def in &object.meta.maps {
        if def.is_event_map() {
            continue;
        }
        if let Some(s) = &def.sample {
            v.push(SampleMap::new(object, def, s.clone(), open(def)?)?);
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::sys::FakeMap;
    use crate::btf::testutil::BtfBuilder;
    use crate::btf::Btf;
    use crate::package::meta::{map_type, Doc, Meta, Tunables};

    /// An object whose only map is a hash u32 -> struct hist { u32 slots[4]; }.
    fn hist_object(kind: SampleKind) -> (Object, MapDef) {
        let mut b = BtfBuilder::new();
        b.add("unsigned int", btf::KIND_INT, 0, false, 4, &[32]); // 1
        b.add("", btf::KIND_ARRAY, 0, false, 0, &[1, 1, 4]); // 2 u32[4]
        let slots = b.s("slots");
        b.add("hist", btf::KIND_STRUCT, 1, false, 16, &[slots, 2, 0]); // 3
        let btf = Btf::parse(&b.build()).unwrap();
        let def = MapDef {
            name: "hists".into(),
            map_type: map_type::HASH,
            key_type: 1,
            value_type: 3,
            max_entries: 8,
            key_size: 0,
            value_size: 0,
            sample: Some(Sample {
                interval_ms: 1000,
                kind,
                unit: "usecs".into(),
                clear_map: true,
            }),
            export_type: None,
            uses: Default::default(),
        };
        let object = Object {
            bytes: vec![],
            btf,
            btfs: None,
            meta: Meta {
                obj_name: "t".into(),
                doc: Doc::default(),
                progs: vec![],
                maps: vec![def.clone()],
                globals: vec![],
                results: vec![],
                export_types: vec![],
                tunables: Tunables::default(),
            },
        };
        (object, def)
    }

    #[test]
    fn histograms_print_like_bcc_and_clear_the_map() {
        let (object, _) = hist_object(SampleKind::Log2Hist);
        let fake = std::sync::Arc::new(FakeMap::new(map_type::HASH, 4, 16, 8));
        let mut v = Vec::new();
        for s in [0u32, 1, 4, 2] {
            v.extend(s.to_le_bytes());
        }
        fake.update(&7u32.to_le_bytes(), &v, 0).unwrap();
        let mut maps = wire(&object, |_| Ok(Box::new(fake.clone()))).unwrap();
        let mut out = String::new();
        maps[0].print(&mut out, Format::Plain, "12:00:00");
        let want = "key = 7\n     usecs               : count    distribution\n\
\x20        0 -> 1          : 0        |                                        |\n\
\x20        2 -> 3          : 1        |**********                              |\n\
\x20        4 -> 7          : 4        |****************************************|\n\
\x20        8 -> 15         : 2        |********************                    |\n\n";
        assert_eq!(out, want);
        let mut k = [0u8; 4];
        assert!(
            !fake.next_key(None, &mut k).unwrap(),
            "clear_map empties the map"
        );
    }

    #[test]
    fn json_rows_carry_map_key_and_value() {
        let (object, def) = hist_object(SampleKind::DefaultKv);
        let fake = FakeMap::new(map_type::HASH, 4, 16, 8);
        fake.update(
            &3u32.to_le_bytes(),
            &[1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            0,
        )
        .unwrap();
        let mut m =
            SampleMap::new(&object, &def, def.sample.clone().unwrap(), Box::new(fake)).unwrap();
        let mut out = String::new();
        m.print(&mut out, Format::Json, "");
        assert_eq!(
            out,
            "{\"map\":\"hists\",\"key\":{\"unsigned int\":3},\"value\":{\"slots\":[1,2,0,0]}}\n"
        );
    }

    #[test]
    fn a_histogram_without_slots_is_refused() {
        let (object, mut def) = hist_object(SampleKind::Log2Hist);
        def.value_type = 1;
        let e = SampleMap::new(
            &object,
            &def,
            def.sample.clone().unwrap(),
            Box::new(FakeMap::new(1, 4, 4, 1)),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("slots"), "{e}");
    }
}
