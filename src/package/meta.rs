//! The Meta model: what a package says about its object (programs, maps, globals, event types),
//! derived from the object's own ELF and BTF. Package JSON only adds to it (doc text, flag
//! spellings, defaults, sample maps, tunables): offsets and sizes always come from BTF.

use super::elf::{self, Elf};
use crate::btf::{self, Btf, TypeData};
use crate::error::{Error, Result};

/// BPF map types (enum bpf_map_type), as a BTF map definition's `type` gives them.
pub mod map_type {
    pub const HASH: u32 = 1;
    pub const ARRAY: u32 = 2;
    pub const PERF_EVENT_ARRAY: u32 = 4;
    pub const PERCPU_HASH: u32 = 5;
    pub const PERCPU_ARRAY: u32 = 6;
    pub const LRU_HASH: u32 = 9;
    pub const LRU_PERCPU_HASH: u32 = 10;
    pub const PERCPU_CGROUP_STORAGE: u32 = 21;
    pub const RINGBUF: u32 = 27;

    /// Per-CPU maps hold one value per possible CPU.
    pub fn is_percpu(t: u32) -> bool {
        matches!(
            t,
            PERCPU_HASH | PERCPU_ARRAY | LRU_PERCPU_HASH | PERCPU_CGROUP_STORAGE
        )
    }

    pub fn name(t: u32) -> String {
        const NAMES: [&str; 34] = [
            "unspec",
            "hash",
            "array",
            "prog_array",
            "perf_event_array",
            "percpu_hash",
            "percpu_array",
            "stack_trace",
            "cgroup_array",
            "lru_hash",
            "lru_percpu_hash",
            "lpm_trie",
            "array_of_maps",
            "hash_of_maps",
            "devmap",
            "sockmap",
            "cpumap",
            "xskmap",
            "sockhash",
            "cgroup_storage",
            "reuseport_sockarray",
            "percpu_cgroup_storage",
            "queue",
            "stack",
            "sk_storage",
            "devmap_hash",
            "struct_ops",
            "ringbuf",
            "inode_storage",
            "task_storage",
            "bloom_filter",
            "user_ringbuf",
            "cgrp_storage",
            "arena",
        ];
        NAMES
            .get(t as usize)
            .map_or_else(|| format!("type {t}"), |n| n.to_string())
    }
}

pub const DUMMY_PREFIX: &str = "__eunomia_dummy_";

#[derive(Debug, Default, Clone)]
pub struct Doc {
    pub version: Option<String>,
    pub brief: Option<String>,
    pub details: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Prog {
    pub name: String,
    pub section: String,
    /// tc/xdp parameters from package JSON.
    pub ifindex: Option<u32>,
    pub tc_attach_point: Option<String>,
    pub xdp_flags: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SampleKind {
    Log2Hist,
    LinearHist,
    DefaultKv,
}

#[derive(Debug, Clone)]
pub struct Sample {
    pub interval_ms: u64,
    pub kind: SampleKind,
    pub unit: String,
    pub clear_map: bool,
}

#[derive(Debug, Clone)]
pub struct MapDef {
    pub name: String,
    pub map_type: u32,
    pub key_type: u32,
    pub value_type: u32,
    pub max_entries: u32,
    pub sample: Option<Sample>,
    /// Event struct chosen for this map by package JSON (`export_config`).
    pub export_type: Option<u32>,
}

impl MapDef {
    pub fn is_event_map(&self) -> bool {
        matches!(
            self.map_type,
            map_type::RINGBUF | map_type::PERF_EVENT_ARRAY
        )
    }
}

#[derive(Debug, Clone)]
pub struct Global {
    pub section: String,
    pub name: String,
    pub type_id: u32,
    pub size: u64,
    pub long: String,
    pub short: Option<char>,
    pub help: Option<String>,
    pub default: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Tunables {
    pub perf_buffer_pages: usize,
    pub perf_buffer_time_ms: u64,
    pub poll_timeout_ms: u64,
    pub debug_verbose: bool,
    pub print_header: bool,
}

impl Default for Tunables {
    fn default() -> Self {
        Tunables {
            perf_buffer_pages: 64,
            perf_buffer_time_ms: 10,
            poll_timeout_ms: 100,
            debug_verbose: false,
            print_header: false,
        }
    }
}

#[derive(Debug)]
pub struct Meta {
    pub obj_name: String,
    pub doc: Doc,
    pub progs: Vec<Prog>,
    pub maps: Vec<MapDef>,
    pub globals: Vec<Global>,
    /// Struct type ids exported as events (eunomia's dummy pointers or package JSON).
    pub export_types: Vec<u32>,
    pub tunables: Tunables,
}

/// A parsed BPF object: its bytes, BTF and derived Meta.
#[derive(Debug)]
pub struct Object {
    pub bytes: Vec<u8>,
    pub btf: Btf,
    pub meta: Meta,
}

impl Object {
    pub fn parse(bytes: Vec<u8>, obj_name: &str) -> Result<Object> {
        let elf = Elf::parse(&bytes)?;
        if elf.machine != elf::EM_BPF {
            return Err(Error::invalid(format!(
                "ELF is not a BPF object (machine {}, expected {}): compile with clang -target bpf",
                elf.machine,
                elf::EM_BPF
            )));
        }
        let btf_sec = elf.section(".BTF").ok_or_else(|| {
            Error::invalid("object has no BTF (.BTF section): compile with clang -g")
        })?;
        let btf = Btf::parse(elf.section_data(btf_sec))?;
        let meta = derive_meta(&elf, &btf, obj_name)?;
        drop(elf);
        Ok(Object { bytes, btf, meta })
    }

    pub fn find_struct(&self, name: &str) -> Option<u32> {
        self.btf.find(btf::KIND_STRUCT, name)
    }

    /// Event types the object exports without any flag: eunomia's dummy pointers or package
    /// JSON, else the value types of event maps that declare one.
    pub fn export_types(&self) -> Vec<u32> {
        if !self.meta.export_types.is_empty() {
            return self.meta.export_types.clone();
        }
        let mut v: Vec<u32> = self
            .meta
            .maps
            .iter()
            .filter(|m| m.is_event_map() && m.value_type != 0)
            .filter_map(|m| self.btf.resolve(m.value_type).ok())
            .filter(|&id| self.btf.get(id).is_ok_and(|t| t.kind == btf::KIND_STRUCT))
            .collect();
        v.dedup();
        v
    }
}

fn derive_meta(elf: &Elf, btf: &Btf, obj_name: &str) -> Result<Meta> {
    // Programs: global functions in executable sections other than .text (subprograms).
    let mut progs = Vec::new();
    for sym in &elf.symbols {
        if sym.kind != elf::STT_FUNC || sym.bind == 0 {
            continue;
        }
        let Some(sec) = elf.sections.get(sym.section as usize) else {
            continue;
        };
        if sec.flags & elf::SHF_EXECINSTR == 0 || sec.name == ".text" {
            continue;
        }
        progs.push(Prog {
            name: sym.name.clone(),
            section: sec.name.clone(),
            ifindex: None,
            tc_attach_point: None,
            xdp_flags: 0,
        });
    }

    let mut maps = Vec::new();
    let mut globals = Vec::new();
    let mut export_types = Vec::new();
    for (_, t) in btf.iter() {
        let TypeData::DataSec(vars) = &t.data else {
            continue;
        };
        for v in vars {
            let var = btf.get(v.type_id)?;
            if var.kind != btf::KIND_VAR {
                continue;
            }
            let name = var.name.clone();
            if t.name == ".maps" {
                maps.push(map_def(btf, &name, var.size_or_type)?);
            } else if let Some(rest) = name.strip_prefix(DUMMY_PREFIX) {
                // `const volatile struct NAME *__eunomia_dummy_NAME_ptr`: NAME is an event type.
                let sname = rest.strip_suffix("_ptr").unwrap_or(rest);
                if let Some(id) = btf.find(btf::KIND_STRUCT, sname) {
                    export_types.push(id);
                }
            } else if (t.name == ".rodata" || t.name == ".bss")
                && matches!(var.data, TypeData::Var { linkage } if linkage != 0)
            {
                // Static variables (linkage 0) are private to the object, as in libbpf skeletons.
                let size = elf
                    .symbols
                    .iter()
                    .find(|s| s.name == name && s.kind == elf::STT_OBJECT)
                    .map(|s| s.size)
                    .filter(|&s| s > 0)
                    .map_or_else(|| btf.size_of(var.size_or_type), Ok)?;
                globals.push(Global {
                    section: t.name.clone(),
                    long: name.clone(),
                    name,
                    type_id: var.size_or_type,
                    size,
                    short: None,
                    help: None,
                    default: None,
                });
            }
        }
    }
    Ok(Meta {
        obj_name: obj_name.to_string(),
        doc: Doc::default(),
        progs,
        maps,
        globals,
        export_types,
        tunables: Tunables::default(),
    })
}

/// Decodes a BTF-defined map (`struct { __uint(type, ...); __type(key, ...); ... } name SEC(".maps")`).
fn map_def(btf: &Btf, name: &str, type_id: u32) -> Result<MapDef> {
    let st = btf.get(btf.resolve(type_id)?)?;
    let TypeData::Members(members) = &st.data else {
        return Err(Error::invalid(format!(
            "map {name}: BTF definition is not a struct"
        )));
    };
    let mut def = MapDef {
        name: name.to_string(),
        map_type: 0,
        key_type: 0,
        value_type: 0,
        max_entries: 0,
        sample: None,
        export_type: None,
    };
    for m in members {
        // __uint(x, N) is `int (*x)[N]`; __type(x, T) is `T *x`.
        let ptr = btf.get(m.type_id)?;
        let pointee = ptr.size_or_type;
        let uint = || -> Result<u32> {
            match &btf.get(pointee)?.data {
                TypeData::Array { nelems, .. } => Ok(*nelems),
                _ => Err(Error::invalid(format!(
                    "map {name}: member {} is not __uint()",
                    m.name
                ))),
            }
        };
        match m.name.as_str() {
            "type" => def.map_type = uint()?,
            "max_entries" => def.max_entries = uint()?,
            "key" => def.key_type = pointee,
            "value" => def.value_type = pointee,
            _ => {}
        }
    }
    Ok(def)
}
