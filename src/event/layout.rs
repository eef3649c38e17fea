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
}

#[derive(Debug, Clone)]
pub struct Layout {
    pub name: String,
    pub size: usize,
    pub fields: Vec<Field>,
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
        return Err(Error::invalid(format!("BTF type {id} is not a struct")));
    };
    *budget = budget.checked_sub(members.len()).ok_or_else(|| {
        Error::invalid(format!(
            "event type has more than {MAX_FIELDS} fields in all"
        ))
    })?;
    let mut out = Vec::with_capacity(members.len());
    for (i, m) in members.iter().enumerate() {
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
        });
    }
    Ok(out)
}

impl Layout {
    pub fn from_btf(btf: &Btf, id: u32) -> Result<Layout> {
        let rid = btf.resolve(id)?;
        let t = btf.get(rid)?;
        let fields = match kind_of(btf, rid, 0, &mut MAX_FIELDS.clone())? {
            Kind::Struct(f) => f,
            // A non-struct value (e.g. a u32 key): one field named after its type as written.
            k => vec![Field {
                name: btf.plain_type_name(id),
                offset: 0,
                size: kind_size(&k),
                bit_shift: 0,
                bit_size: 0,
                kind: k,
            }],
        };
        Ok(Layout {
            name: t.name.clone(),
            size: btf.size_of(rid)? as usize,
            fields,
        })
    }
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

/// The layout of the records of event map `def`: the package's own choice for it (export
/// config), else `--event-type`, else the object's first export type. None means raw bytes,
/// and the note says so and how to fix it.
pub fn choose(
    object: &Object,
    def: &MapDef,
    event_type: Option<u32>,
) -> Result<(Option<Layout>, Option<String>)> {
    let exported = object.export_types();
    let id = def
        .export_type
        .or(event_type)
        .or_else(|| exported.first().copied());
    match id {
        Some(id) => Ok((Some(Layout::from_btf(&object.btf, id)?), None)),
        None => Ok((
            None,
            Some(format!(
                "map {}: no event type known, printing raw bytes in hex; name the struct with --event-type NAME",
                def.name
            )),
        )),
    }
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
