//! The Meta model: what a package says about its object (programs, maps, globals, event types),
//! derived from the object's own ELF and BTF. Package JSON only adds to it (doc text, flag
//! spellings, defaults, sample maps, tunables): offsets and sizes always come from BTF.

use super::elf::{self, Elf};
use super::usage::{self, MapUse};
use crate::btf::{self, Btf, TypeData};
use crate::error::{Error, Result};

/// BPF map types (enum bpf_map_type), as a BTF map definition's `type` gives them; the values
/// come from the kernel's UAPI as aya-obj binds it.
pub mod map_type {
    use aya_obj::generated::bpf_map_type as t;

    pub const HASH: u32 = t::BPF_MAP_TYPE_HASH as u32;
    pub const ARRAY: u32 = t::BPF_MAP_TYPE_ARRAY as u32;
    pub const PERF_EVENT_ARRAY: u32 = t::BPF_MAP_TYPE_PERF_EVENT_ARRAY as u32;
    pub const PERCPU_HASH: u32 = t::BPF_MAP_TYPE_PERCPU_HASH as u32;
    pub const PERCPU_ARRAY: u32 = t::BPF_MAP_TYPE_PERCPU_ARRAY as u32;
    pub const STACK_TRACE: u32 = t::BPF_MAP_TYPE_STACK_TRACE as u32;
    pub const LRU_HASH: u32 = t::BPF_MAP_TYPE_LRU_HASH as u32;
    pub const LRU_PERCPU_HASH: u32 = t::BPF_MAP_TYPE_LRU_PERCPU_HASH as u32;
    pub const PERCPU_CGROUP_STORAGE: u32 = t::BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE_DEPRECATED as u32;
    pub const RINGBUF: u32 = t::BPF_MAP_TYPE_RINGBUF as u32;

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
    /// `__uint(key_size, N)` / `__uint(value_size, N)`, for maps without BTF key/value types.
    pub key_size: u32,
    pub value_size: u32,
    pub sample: Option<Sample>,
    /// Event struct chosen for this map by package JSON (`export_config`).
    pub export_type: Option<u32>,
    /// What the programs do with it (read from their instructions).
    pub uses: MapUse,
}

/// What libbpf-tools' user space gives maps their definitions leave open: entries of hash and
/// stack maps, frames of a stack trace (`perf_max_stack_depth`). One perf buffer per CPU is
/// aya's own default.
pub const DEFAULT_MAX_ENTRIES: u32 = 10240;
pub const DEFAULT_STACK_DEPTH: u32 = 127;

/// A size the user sets for a map (`--map NAME.max_entries=N`, `--map NAME.value_size=N`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapSize {
    pub map: String,
    pub max_entries: Option<u32>,
    pub value_size: Option<u32>,
}

impl MapSize {
    /// Parses `NAME.max_entries=N` or `NAME.value_size=N`.
    pub fn parse(text: &str) -> Result<MapSize> {
        let bad = || {
            Error::new(
                crate::error::ErrorKind::Usage,
                format!("--map {text}: expected NAME.max_entries=N or NAME.value_size=N"),
            )
        };
        let (lhs, n) = text.split_once('=').ok_or_else(bad)?;
        let (map, what) = lhs.rsplit_once('.').ok_or_else(bad)?;
        let n: u32 = n.trim().parse().ok().filter(|&n| n > 0).ok_or_else(|| {
            Error::new(
                crate::error::ErrorKind::Usage,
                format!("--map {text}: {n:?} is not a positive integer"),
            )
        })?;
        if map.is_empty() {
            return Err(bad());
        }
        let mut s = MapSize {
            map: map.to_string(),
            max_entries: None,
            value_size: None,
        };
        match what {
            "max_entries" => s.max_entries = Some(n),
            "value_size" => s.value_size = Some(n),
            _ => return Err(bad()),
        }
        Ok(s)
    }
}

impl MapDef {
    pub fn is_event_map(&self) -> bool {
        matches!(
            self.map_type,
            map_type::RINGBUF | map_type::PERF_EVENT_ARRAY
        )
    }

    /// Does it hold the tool's results, to be printed at exit or every interval? A hash or
    /// array map (per-CPU or not) whose values the programs write in place and never hand to
    /// an output helper: counters, histograms. Maps they delete from or only read are
    /// scratch (start times, arguments kept from entry to exit).
    pub fn is_result(&self) -> bool {
        let kind = matches!(
            self.map_type,
            map_type::HASH
                | map_type::ARRAY
                | map_type::PERCPU_HASH
                | map_type::PERCPU_ARRAY
                | map_type::LRU_HASH
                | map_type::LRU_PERCPU_HASH
        );
        kind && self.uses.written && !self.uses.output && !self.uses.deleted
    }

    /// The (max_entries, value_size) this map gets where its definition leaves them to user
    /// space (0), or the user sets them: None keeps what the object says.
    pub fn sizes(&self, user: &[MapSize]) -> (Option<u32>, Option<u32>) {
        let mine = user.iter().filter(|u| u.map == self.name);
        let max = mine.clone().find_map(|u| u.max_entries);
        let value = mine.clone().find_map(|u| u.value_size);
        let sized_by_cpus = self.map_type == map_type::PERF_EVENT_ARRAY;
        let max = max.or((self.max_entries == 0
            && !sized_by_cpus
            && self.map_type != map_type::RINGBUF)
            .then_some(DEFAULT_MAX_ENTRIES));
        let value = value.or((self.map_type == map_type::STACK_TRACE
            && self.value_size == 0
            && self.value_type == 0)
            .then_some(DEFAULT_STACK_DEPTH * 8));
        (max, value)
    }
}

/// Checks that every `--map` names a map of the object.
pub fn check_map_sizes(maps: &[MapDef], user: &[MapSize]) -> Result<()> {
    for u in user {
        if !maps.iter().any(|m| m.name == u.map) {
            let names: Vec<&str> = maps.iter().map(|m| m.name.as_str()).collect();
            return Err(Error::new(
                crate::error::ErrorKind::Usage,
                format!(
                    "--map {}: the object has no map named {} (its maps: {})",
                    u.map,
                    u.map,
                    names.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct Global {
    pub section: String,
    pub name: String,
    /// Offset in its section (the ELF symbol's value: an object's DATASEC offsets are 0
    /// until a loader fixes them up).
    pub offset: u64,
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
    /// The metadata came from a package.json (eunomia's conventions apply: ecli shows only
    /// event and sample maps), not from a raw object.
    pub package_json: bool,
}

impl Default for Tunables {
    fn default() -> Self {
        Tunables {
            perf_buffer_pages: 64,
            perf_buffer_time_ms: 10,
            poll_timeout_ms: 100,
            debug_verbose: false,
            print_header: false,
            package_json: false,
        }
    }
}

#[derive(Debug)]
pub struct Meta {
    pub obj_name: String,
    pub doc: Doc,
    pub progs: Vec<Prog>,
    pub maps: Vec<MapDef>,
    /// `.rodata` globals (and those a package.json lists): the package's flags.
    pub globals: Vec<Global>,
    /// Writable globals (`.bss`, `.data`) that are not flags: the tool's state and results,
    /// printed with the result maps.
    pub results: Vec<Global>,
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
    /// Kernel BTF the package carries for kernels without their own (BTFHub layout).
    pub btfs: Option<crate::btf::hub::BtfArchive>,
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
        Ok(Object {
            bytes,
            btf,
            meta,
            btfs: None,
        })
    }

    pub fn find_struct(&self, name: &str) -> Option<u32> {
        self.btf.find(btf::KIND_STRUCT, name)
    }

    /// Named structs that are key or value types of the object's maps (not event maps): the
    /// tool's own data types.
    pub fn map_structs(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .meta
            .maps
            .iter()
            .filter(|m| !m.is_event_map())
            .flat_map(|m| [m.key_type, m.value_type])
            .filter(|&t| t != 0)
            .filter_map(|t| self.btf.resolve(t).ok())
            .filter(|&id| {
                self.btf
                    .get(id)
                    .is_ok_and(|t| t.kind == btf::KIND_STRUCT && !t.name.is_empty())
            })
            .collect();
        v.sort_unstable();
        v.dedup();
        v
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
    let mut results = Vec::new();
    let mut export_types = Vec::new();
    let uses = usage::map_uses(elf);
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
                let mut def = map_def(btf, &name, var.size_or_type)?;
                def.uses = uses.get(&name).copied().unwrap_or_default();
                maps.push(def);
            } else if let Some(rest) = name.strip_prefix(DUMMY_PREFIX) {
                // `const volatile struct NAME *__eunomia_dummy_NAME_ptr`: NAME is an event type.
                let sname = rest.strip_suffix("_ptr").unwrap_or(rest);
                if let Some(id) = btf.find(btf::KIND_STRUCT, sname) {
                    export_types.push(id);
                }
            } else if (t.name == ".rodata" || t.name == ".bss" || t.name.starts_with(".data"))
                && matches!(var.data, TypeData::Var { linkage } if linkage != 0)
            {
                // Static variables (linkage 0) are private to the object, as in libbpf skeletons.
                let sym = elf
                    .symbols
                    .iter()
                    .find(|s| s.name == name && s.kind == elf::STT_OBJECT);
                let size = sym
                    .map(|s| s.size)
                    .filter(|&s| s > 0)
                    .map_or_else(|| btf.size_of(var.size_or_type), Ok)?;
                let g = Global {
                    section: t.name.clone(),
                    offset: sym.map_or(v.offset as u64, |s| s.value),
                    long: name.clone(),
                    name,
                    type_id: var.size_or_type,
                    size,
                    short: None,
                    help: None,
                    default: None,
                };
                // `const volatile` globals configure a tool; writable ones are its state.
                if t.name == ".rodata" {
                    globals.push(g);
                } else {
                    results.push(g);
                }
            }
        }
    }
    Ok(Meta {
        obj_name: obj_name.to_string(),
        doc: Doc::default(),
        progs,
        maps,
        globals,
        results,
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
        key_size: 0,
        value_size: 0,
        sample: None,
        export_type: None,
        uses: MapUse::default(),
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
            "key_size" => def.key_size = uint()?,
            "value_size" => def.value_size = uint()?,
            "key" => def.key_type = pointee,
            "value" => def.value_type = pointee,
            _ => {}
        }
    }
    Ok(def)
}
