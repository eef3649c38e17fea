//! Event layouts: a BTF struct becomes a flat list of fields with their offsets and kinds,
//! once per map, and which layout a map's records get. Pure.

use crate::btf::{self, Btf, TypeData};
use crate::error::{Error, Result};
use crate::package::{MapDef, Object};

#[derive(Debug, Clone)]
pub enum Kind {
    Int {
        size: usize,
        signed: bool,
    },
    Bool {
        size: usize,
    },
    Char {
        len: usize,
    },
    Enum {
        size: usize,
        signed: bool,
        variants: Vec<(String, i64)>,
    },
    Float {
        size: usize,
    },
    Array {
        elem: Box<Kind>,
        elem_size: usize,
        len: usize,
    },
    Struct(Vec<Field>),
    /// Anything else (unions, unknown): shown as hex.
    Bytes {
        size: usize,
    },
}

/// How a field is shown besides its kind: what libbpf-tools' C user space did by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Render {
    #[default]
    Value,
    /// An IPv4 or IPv6 address (`saddr`, `daddr_v6`...): the family comes from a field of the
    /// record named like `af`/`family` (AF_INET 2, AF_INET6 10) at (offset, size), else from
    /// the field's own size (4 or 16 bytes).
    Ip { family: Option<(usize, usize)> },
    /// The id of a stack in the object's stack trace map (`kern_stack_id`, `user_stack_id`):
    /// shown as symbolized frames; user stacks of the process whose pid is at (offset, size).
    Stack {
        user: bool,
        pid: Option<(usize, usize)>,
    },
}

#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub offset: usize,
    /// Bytes the value occupies (from its kind), computed once.
    pub size: usize,
    /// Bitfield position relative to `offset`, and width; width 0 for plain fields.
    pub bit_shift: u32,
    pub bit_size: u32,
    pub kind: Kind,
    pub render: Render,
}

#[derive(Debug, Clone)]
pub struct Layout {
    pub name: String,
    pub size: usize,
    pub fields: Vec<Field>,
    /// Not a struct: one field, named after its type, that is the whole value.
    pub scalar: bool,
}

const MAX_NEST: usize = 8;
/// Fields a layout may have in all (nested structs included): structs that embed structs many
/// times over could otherwise describe billions of fields in a few KB of BTF.
const MAX_FIELDS: usize = 10_000;

fn kind_of(btf: &Btf, id: u32, depth: usize, budget: &mut usize) -> Result<Kind> {
    if depth > MAX_NEST {
        return Err(Error::invalid("event type nests too deeply"));
    }
    let rid = btf.resolve(id)?;
    let t = btf.get(rid)?;
    let size = btf.size_of(rid).unwrap_or(0) as usize;
    Ok(match (&t.data, t.kind) {
        (TypeData::Int { encoding, .. }, _) => {
            if encoding & btf::INT_BOOL != 0 {
                Kind::Bool { size }
            } else {
                Kind::Int {
                    size,
                    signed: encoding & btf::INT_SIGNED != 0,
                }
            }
        }
        (TypeData::Enum(v), _) => Kind::Enum {
            size,
            signed: t.kind_flag,
            variants: v.clone(),
        },
        (_, btf::KIND_FLOAT) => Kind::Float { size },
        (_, btf::KIND_PTR) => Kind::Int {
            size: 8,
            signed: false,
        },
        (TypeData::Array { elem, nelems }, _) => {
            let ek = kind_of(btf, *elem, depth + 1, budget)?;
            let elem_size = btf.size_of(*elem)? as usize;
            match ek {
                Kind::Int { size: 1, .. } => Kind::Char {
                    len: *nelems as usize,
                },
                ek => Kind::Array {
                    elem: Box::new(ek),
                    elem_size,
                    len: *nelems as usize,
                },
            }
        }
        (TypeData::Members(_), btf::KIND_STRUCT) => {
            Kind::Struct(fields_of(btf, rid, depth + 1, budget)?)
        }
        _ => Kind::Bytes { size },
    })
}

fn fields_of(btf: &Btf, id: u32, depth: usize, budget: &mut usize) -> Result<Vec<Field>> {
    let TypeData::Members(members) = &btf.get(id)?.data else {
        return Err(Error::invalid(format!(
            "BTF type {id} is not a struct or union"
        )));
    };
    *budget = budget.checked_sub(members.len()).ok_or_else(|| {
        Error::invalid(format!(
            "event type has more than {MAX_FIELDS} fields in all"
        ))
    })?;
    let mut out = Vec::with_capacity(members.len());
    for (i, m) in members.iter().enumerate() {
        // An unnamed struct or union inside a record: its members are the record's own (as C
        // reads them), each at its offset; a union's members all show, side by side.
        if m.name.is_empty() && m.bit_size == 0 {
            let rid = btf.resolve(m.type_id)?;
            let t = btf.get(rid)?;
            if matches!(t.kind, btf::KIND_STRUCT | btf::KIND_UNION) {
                if depth > MAX_NEST {
                    return Err(Error::invalid("event type nests too deeply"));
                }
                for mut f in fields_of(btf, rid, depth + 1, budget)? {
                    f.offset += (m.bit_offset / 8) as usize;
                    out.push(f);
                }
                continue;
            }
        }
        let kind = kind_of(btf, m.type_id, depth, budget)?;
        if m.bit_size > 64 {
            return Err(Error::invalid(format!(
                "bitfield {} is {} bits wide (at most 64)",
                m.name, m.bit_size
            )));
        }
        // A bitfield is read from the bytes that hold it: shift < 8, at most 9 bytes.
        let (offset, bit_shift) = (
            (m.bit_offset / 8) as usize,
            if m.bit_size > 0 { m.bit_offset % 8 } else { 0 },
        );
        let name = if m.name.is_empty() {
            format!("_{i}")
        } else {
            m.name.clone()
        };
        let size = if m.bit_size > 0 {
            (bit_shift as usize + m.bit_size as usize).div_ceil(8)
        } else {
            kind_size(&kind)
        };
        out.push(Field {
            name,
            offset,
            size,
            bit_shift,
            bit_size: m.bit_size as u32,
            kind,
            render: Render::Value,
        });
    }
    Ok(out)
}

impl Layout {
    pub fn from_btf(btf: &Btf, id: u32) -> Result<Layout> {
        let rid = btf.resolve(id)?;
        let t = btf.get(rid)?;
        let mut scalar = false;
        let fields = match kind_of(btf, rid, 0, &mut MAX_FIELDS.clone())? {
            Kind::Struct(f) => f,
            // A non-struct value (e.g. a u32 key): one field named after its type as written.
            k => {
                scalar = true;
                vec![Field {
                    name: btf.plain_type_name(id),
                    offset: 0,
                    size: kind_size(&k),
                    bit_shift: 0,
                    bit_size: 0,
                    kind: k,
                    render: Render::Value,
                }]
            }
        };
        let mut l = Layout {
            name: t.name.clone(),
            size: btf.size_of(rid)? as usize,
            fields,
            scalar,
        };
        l.mark_addresses();
        Ok(l)
    }

    /// The bytes a record of this layout has before a variable-length tail: the offset of
    /// its last member when that is an array (execsnoop submits `offsetof(args) +
    /// args_size`), else its whole size.
    pub fn fixed_size(&self) -> usize {
        match self.fields.last() {
            Some(f) if matches!(f.kind, Kind::Char { .. } | Kind::Array { .. }) => f.offset,
            _ => self.size,
        }
    }

    /// An int field named like an address family, at (offset, size).
    fn family_field(&self) -> Option<(usize, usize)> {
        const NAMES: [&str; 6] = [
            "af",
            "family",
            "sa_family",
            "ss_family",
            "skc_family",
            "ip_family",
        ];
        self.fields
            .iter()
            .find(|f| NAMES.contains(&f.name.as_str()) && matches!(f.kind, Kind::Int { .. }))
            .map(|f| (f.offset, f.size))
    }

    /// Fields named like addresses (`saddr`, `daddr_v6`, `addr`...) that hold 4 or 16 bytes
    /// are shown as IP addresses.
    fn mark_addresses(&mut self) {
        let family = self.family_field();
        for f in &mut self.fields {
            let n = f.name.to_ascii_lowercase();
            let named = n.ends_with("addr")
                || n.contains("addr_")
                || n.ends_with("addr4")
                || n.ends_with("addr6");
            let fits = matches!(f.size, 4 | 16)
                && f.bit_size == 0
                && match &f.kind {
                    Kind::Int { .. } | Kind::Char { .. } => true,
                    Kind::Array { elem, .. } => matches!(**elem, Kind::Int { .. }),
                    _ => false,
                };
            if named && fits {
                f.render = Render::Ip { family };
            }
        }
    }

    /// Marks stack id fields (an int named like `kern_stack_id`, `user_stack_id`, `stackid`)
    /// of an object that has a stack trace map. User stacks belong to the process in a `tgid`
    /// or `pid` field.
    pub fn mark_stacks(&mut self) {
        let pid = ["tgid", "pid"].iter().find_map(|want| {
            self.fields
                .iter()
                .find(|f| f.name == *want && matches!(f.kind, Kind::Int { size: 4 | 8, .. }))
                .map(|f| (f.offset, f.size))
        });
        for f in &mut self.fields {
            let n = f.name.to_ascii_lowercase();
            if n.contains("stack")
                && matches!(f.kind, Kind::Int { size: 4 | 8, .. })
                && f.bit_size == 0
            {
                let user = n.contains("user") || n.starts_with('u');
                f.render = Render::Stack { user, pid };
            }
        }
    }
}

/// The layouts a map's records may have, and which one a record of a given length has.
#[derive(Debug, Clone, Default)]
pub struct Layouts {
    pub all: Vec<Layout>,
    /// The candidates were inferred, not declared: a record whose size none of them fits
    /// is shown as bytes rather than decoded as a guess.
    pub inferred: bool,
}

impl Layouts {
    pub fn one(l: Layout) -> Layouts {
        Layouts {
            all: vec![l],
            inferred: false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// The candidate shown first (its header up front): the one named `event`, else the first.
    pub fn preferred(&self) -> usize {
        self.all.iter().position(|l| l.name == "event").unwrap_or(0)
    }

    /// The layout of a record of `len` bytes: one of exactly that size (a perf record is
    /// padded by up to 7 bytes), else one with a variable-length tail the record ends in,
    /// else the one named `event`, else the first; a struct named `event` wins ties.
    pub fn pick(&self, len: usize) -> usize {
        self.pick_fitting(len).unwrap_or(0)
    }

    /// `pick`, or None when the candidates were inferred and none fits the record's size.
    pub fn pick_fitting(&self, len: usize) -> Option<usize> {
        if self.all.len() <= 1 && !self.inferred {
            return Some(0);
        }
        let best = |ok: &dyn Fn(&Layout) -> bool| -> Option<usize> {
            let mut found = None;
            for (i, l) in self.all.iter().enumerate() {
                if ok(l) {
                    if l.name == "event" {
                        return Some(i);
                    }
                    found = found.or(Some(i));
                }
            }
            found
        };
        let fitting = best(&|l| len == l.size)
            .or_else(|| best(&|l| len > l.size && len - l.size < 8))
            .or_else(|| best(&|l| l.fixed_size() <= len && len < l.size));
        if self.inferred {
            return fitting;
        }
        Some(
            fitting
                .or_else(|| best(&|_| true).filter(|&i| self.all[i].name == "event"))
                .unwrap_or(0),
        )
    }
}

/// One named value of BTF type `id` at `offset` (a global in its data section).
pub fn field_of(btf: &Btf, id: u32, name: &str, offset: usize) -> Result<Field> {
    let kind = kind_of(btf, id, 0, &mut MAX_FIELDS.clone())?;
    Ok(Field {
        name: name.to_string(),
        offset,
        size: kind_size(&kind),
        bit_shift: 0,
        bit_size: 0,
        kind,
        render: Render::Value,
    })
}

pub(crate) fn kind_size(k: &Kind) -> usize {
    match k {
        Kind::Int { size, .. }
        | Kind::Bool { size }
        | Kind::Enum { size, .. }
        | Kind::Float { size } => *size,
        Kind::Bytes { size } => *size,
        Kind::Char { len } => *len,
        Kind::Array { elem_size, len, .. } => elem_size.saturating_mul(*len),
        Kind::Struct(fields) => fields
            .iter()
            .map(|f| f.offset.saturating_add(f.size))
            .max()
            .unwrap_or(0),
    }
}

/// The layouts of the records of event map `def`: the package's own choice for it (export
/// config), else `--event-type`, else every export type of the object, each record decoded by
/// the one its size selects (`Layouts::pick`). None means raw bytes, and the note says so and
/// how to fix it.
pub fn choose(
    object: &Object,
    def: &MapDef,
    event_type: Option<u32>,
) -> Result<(Layouts, Option<String>)> {
    let mut inferred = false;
    let mut ids = match def.export_type.or(event_type) {
        Some(id) => vec![id],
        None => object.export_types(),
    };
    if ids.is_empty() {
        // A raw object that names no event type: the structs it keeps in its other maps
        // (execsnoop's `execs` holds `struct event`) are likely what it submits; each record
        // is decoded only by one whose size fits it.
        ids = object.map_structs();
        inferred = !ids.is_empty();
    }
    if ids.is_empty() {
        return Ok((
            Layouts::default(),
            Some(format!(
                "map {}: no event type known, printing raw bytes in hex; name the struct with --event-type NAME",
                def.name
            )),
        ));
    }
    let has_stacks = object
        .meta
        .maps
        .iter()
        .any(|m| m.map_type == crate::package::meta::map_type::STACK_TRACE);
    let mut all = Vec::with_capacity(ids.len());
    for id in ids {
        let mut l = Layout::from_btf(&object.btf, id)?;
        if has_stacks {
            l.mark_stacks();
        }
        all.push(l);
    }
    let note = inferred.then(|| {
        let names: Vec<&str> = all.iter().map(|l| l.name.as_str()).collect();
        format!(
            "map {}: no event type declared; records are decoded by the struct of their size among the object's own ({}), else shown as bytes; name one with --event-type NAME",
            def.name,
            names.join(", ")
        )
    });
    Ok((Layouts { all, inferred }, note))
}

/// A BTF with one `struct event` (id 8) of every kind a record can hold, and a record of it.
#[cfg(test)]
pub mod testdata {
    use crate::btf::testutil::BtfBuilder;
    use crate::btf::{self, Btf};

    pub fn event_btf() -> Btf {
        let mut b = BtfBuilder::new();
        b.add("int", btf::KIND_INT, 0, false, 4, &[(1 << 24) | 32]); // 1
        b.add("char", btf::KIND_INT, 0, false, 1, &[(1 << 24) | 8]); // 2
        b.add("", btf::KIND_ARRAY, 0, false, 0, &[2, 1, 8]); // 3 char[8]
        b.add("unsigned long long", btf::KIND_INT, 0, false, 8, &[64]); // 4
        b.add("_Bool", btf::KIND_INT, 0, false, 1, &[(4 << 24) | 8]); // 5
        let (a, bb) = (b.s("A"), b.s("B"));
        b.add("kind", btf::KIND_ENUM, 2, false, 4, &[a, 0, bb, 7]); // 6
        b.add("", btf::KIND_ARRAY, 0, false, 0, &[1, 1, 2]); // 7 int[2]
        let names: Vec<u32> = ["pid", "comm", "ts", "ok", "k", "v"]
            .iter()
            .map(|n| b.s(n))
            .collect();
        b.add(
            "event",
            btf::KIND_STRUCT,
            6,
            false,
            40,
            &[
                names[0], 1, 0, names[1], 3, 32, names[2], 4, 128, names[3], 5, 192, names[4], 6,
                224, names[5], 7, 256,
            ],
        ); // 8
        Btf::parse(&b.build()).unwrap()
    }

    pub fn record() -> Vec<u8> {
        let mut d = vec![0u8; 40];
        d[0..4].copy_from_slice(&(-5i32).to_le_bytes());
        d[4..9].copy_from_slice(b"bash\0");
        d[16..24].copy_from_slice(&1234567890123u64.to_le_bytes());
        d[24] = 1;
        d[28..32].copy_from_slice(&7u32.to_le_bytes());
        d[32..36].copy_from_slice(&1i32.to_le_bytes());
        d[36..40].copy_from_slice(&(-2i32).to_le_bytes());
        d
    }
}
