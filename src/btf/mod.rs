//! A small, bounds-checked reader of BTF: enough to resolve the types of globals, map definitions
//! and event structs of one BPF object. Pure: no syscalls, tested on every arch.
//!
//! aya-obj 0.3 parses BTF too, but keeps its type table private, so layouts are read here.

pub mod core;
pub mod edit;
pub mod ext;
pub mod file;
pub mod gen;
pub mod hub;
pub mod raw;

use aya_obj::generated as g;

use crate::error::{Error, Result};

pub const KIND_INT: u8 = g::BTF_KIND_INT as u8;
pub const KIND_PTR: u8 = g::BTF_KIND_PTR as u8;
pub const KIND_ARRAY: u8 = g::BTF_KIND_ARRAY as u8;
pub const KIND_STRUCT: u8 = g::BTF_KIND_STRUCT as u8;
pub const KIND_UNION: u8 = g::BTF_KIND_UNION as u8;
pub const KIND_ENUM: u8 = g::BTF_KIND_ENUM as u8;
pub const KIND_FWD: u8 = g::BTF_KIND_FWD as u8;
pub const KIND_TYPEDEF: u8 = g::BTF_KIND_TYPEDEF as u8;
pub const KIND_VOLATILE: u8 = g::BTF_KIND_VOLATILE as u8;
pub const KIND_CONST: u8 = g::BTF_KIND_CONST as u8;
pub const KIND_RESTRICT: u8 = g::BTF_KIND_RESTRICT as u8;
pub const KIND_FUNC: u8 = g::BTF_KIND_FUNC as u8;
pub const KIND_FUNC_PROTO: u8 = g::BTF_KIND_FUNC_PROTO as u8;
pub const KIND_VAR: u8 = g::BTF_KIND_VAR as u8;
pub const KIND_DATASEC: u8 = g::BTF_KIND_DATASEC as u8;
pub const KIND_FLOAT: u8 = g::BTF_KIND_FLOAT as u8;
pub const KIND_DECL_TAG: u8 = g::BTF_KIND_DECL_TAG as u8;
pub const KIND_TYPE_TAG: u8 = g::BTF_KIND_TYPE_TAG as u8;
pub const KIND_ENUM64: u8 = g::BTF_KIND_ENUM64 as u8;

/// One BTF type with its kind-specific data decoded.
#[derive(Debug, Clone)]
pub struct Type {
    pub name: String,
    pub kind: u8,
    pub kind_flag: bool,
    /// size for INT/STRUCT/UNION/ENUM/DATASEC/FLOAT, referenced type id otherwise.
    pub size_or_type: u32,
    pub data: TypeData,
}

#[derive(Debug, Clone)]
pub enum TypeData {
    None,
    Int { encoding: u8, offset: u8, bits: u8 },
    Array { elem: u32, nelems: u32 },
    Members(Vec<Member>),
    Enum(Vec<(String, i64)>),
    Params(Vec<(String, u32)>),
    Var { linkage: u32 },
    DataSec(Vec<SecVar>),
}

#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub type_id: u32,
    pub bit_offset: u32,
    /// Non-zero for bitfields.
    pub bit_size: u8,
}

#[derive(Debug, Clone, Copy)]
pub struct SecVar {
    pub type_id: u32,
    pub offset: u32,
    pub size: u32,
}

pub const INT_SIGNED: u8 = g::BTF_INT_SIGNED as u8;
pub const INT_CHAR: u8 = g::BTF_INT_CHAR as u8;
pub const INT_BOOL: u8 = g::BTF_INT_BOOL as u8;

/// Parsed BTF of one object. Type id 0 is `void`.
#[derive(Debug, Default)]
pub struct Btf {
    types: Vec<Type>,
}

/// Hard caps so hostile input cannot make us allocate without bound.
const MAX_TYPES: usize = 1 << 20;
const MAX_DEPTH: usize = 32;
pub const MAX_NAME: usize = 4096;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u32(&mut self) -> Result<u32> {
        let b = self
            .buf
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| Error::invalid("BTF type section is truncated"))?;
        self.pos += 4;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

pub(crate) fn str_at(strings: &[u8], off: u32) -> Result<String> {
    let s = strings
        .get(off as usize..)
        .ok_or_else(|| Error::invalid(format!("BTF string offset {off} is out of range")))?;
    // Names are short (the kernel caps BTF names too): refuse huge ones, which many entries
    // could otherwise share and multiply.
    let end = s
        .iter()
        .take(MAX_NAME + 1)
        .position(|&c| c == 0)
        .ok_or_else(|| Error::invalid("BTF string is not NUL-terminated within 4096 bytes"))?;
    Ok(String::from_utf8_lossy(&s[..end]).into_owned())
}

/// The type and string sections of raw little-endian BTF, bounds-checked.
pub fn split(data: &[u8]) -> Result<(&[u8], &[u8])> {
    let bad = |m: &str| Error::invalid(format!("bad BTF: {m}"));
    if data.len() < 24 {
        return Err(bad("shorter than its header"));
    }
    let magic = u16::from_le_bytes([data[0], data[1]]);
    if magic != 0xeb9f {
        return Err(bad("wrong magic (only little-endian BTF is supported)"));
    }
    let rd = |o: usize| u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
    let hdr_len = rd(4) as usize;
    let section = |off: u32, len: u32, what: &str| {
        let body = data
            .get(hdr_len..)
            .ok_or_else(|| bad("header length out of range"))?;
        let (off, len) = (off as usize, len as usize);
        off.checked_add(len)
            .and_then(|end| body.get(off..end))
            .ok_or_else(|| bad(&format!("{what} section out of range")))
    };
    Ok((
        section(rd(8), rd(12), "type")?,
        section(rd(16), rd(20), "string")?,
    ))
}

impl Btf {
    /// Parses raw little-endian BTF (the `.BTF` section of a BPF object).
    /// One pass over the type section, one arm per BTF kind as the kernel documents them:
    /// long, but it reads as the format.
    pub fn parse(data: &[u8]) -> Result<Btf> {
        let bad = |m: &str| Error::invalid(format!("bad BTF: {m}"));
        let (types_buf, strings) = split(data)?;
        let mut r = Reader {
            buf: types_buf,
            pos: 0,
        };
        let mut types = vec![Type {
            name: String::new(),
            kind: 0,
            kind_flag: false,
            size_or_type: 0,
            data: TypeData::None,
        }];
        while r.pos < types_buf.len() {
            if types.len() > MAX_TYPES {
                return Err(bad("too many types"));
            }
            let name_off = r.u32()?;
            let info = r.u32()?;
            let size_or_type = r.u32()?;
            let vlen = (info & 0xffff) as usize;
            let kind = ((info >> 24) & 0x1f) as u8;
            let kind_flag = info >> 31 == 1;
            // Every vlen entry is at least 8 bytes: refuse counts the buffer cannot hold.
            if vlen * 8 > types_buf.len() - r.pos.min(types_buf.len()) + 8 {
                return Err(bad("member count exceeds the type section"));
            }
            let data = match kind {
                KIND_INT => {
                    let v = r.u32()?;
                    TypeData::Int {
                        encoding: ((v >> 24) & 0xf) as u8,
                        offset: ((v >> 16) & 0xff) as u8,
                        bits: (v & 0xff) as u8,
                    }
                }
                KIND_ARRAY => {
                    let elem = r.u32()?;
                    let _index = r.u32()?;
                    let nelems = r.u32()?;
                    TypeData::Array { elem, nelems }
                }
                KIND_STRUCT | KIND_UNION => {
                    let mut m = Vec::with_capacity(vlen);
                    for _ in 0..vlen {
                        let name = str_at(strings, r.u32()?)?;
                        let type_id = r.u32()?;
                        let off = r.u32()?;
                        let (bit_offset, bit_size) = if kind_flag {
                            (off & 0xffffff, (off >> 24) as u8)
                        } else {
                            (off, 0)
                        };
                        m.push(Member {
                            name,
                            type_id,
                            bit_offset,
                            bit_size,
                        });
                    }
                    TypeData::Members(m)
                }
                KIND_ENUM => {
                    let mut v = Vec::with_capacity(vlen);
                    for _ in 0..vlen {
                        let name = str_at(strings, r.u32()?)?;
                        let raw = r.u32()?;
                        let val = if kind_flag {
                            raw as i32 as i64
                        } else {
                            raw as i64
                        };
                        v.push((name, val));
                    }
                    TypeData::Enum(v)
                }
                KIND_ENUM64 => {
                    let mut v = Vec::with_capacity(vlen);
                    for _ in 0..vlen {
                        let name = str_at(strings, r.u32()?)?;
                        let lo = r.u32()? as u64;
                        let hi = r.u32()? as u64;
                        v.push((name, ((hi << 32) | lo) as i64));
                    }
                    TypeData::Enum(v)
                }
                KIND_FUNC_PROTO => {
                    let mut v = Vec::with_capacity(vlen);
                    for _ in 0..vlen {
                        let name = str_at(strings, r.u32()?)?;
                        v.push((name, r.u32()?));
                    }
                    TypeData::Params(v)
                }
                KIND_VAR => TypeData::Var { linkage: r.u32()? },
                KIND_DATASEC => {
                    let mut v = Vec::with_capacity(vlen);
                    for _ in 0..vlen {
                        v.push(SecVar {
                            type_id: r.u32()?,
                            offset: r.u32()?,
                            size: r.u32()?,
                        });
                    }
                    TypeData::DataSec(v)
                }
                KIND_DECL_TAG => {
                    r.u32()?;
                    TypeData::None
                }
                KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
                | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => TypeData::None,
                k => return Err(bad(&format!("unknown type kind {k}"))),
            };
            types.push(Type {
                name: str_at(strings, name_off)?,
                kind,
                kind_flag,
                size_or_type,
                data,
            });
        }
        Ok(Btf { types })
    }

    pub fn get(&self, id: u32) -> Result<&Type> {
        self.types
            .get(id as usize)
            .ok_or_else(|| Error::invalid(format!("BTF type id {id} does not exist")))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// Iterates over (id, type), skipping void.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Type)> {
        self.types
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, t)| (i as u32, t))
    }

    pub fn find(&self, kind: u8, name: &str) -> Option<u32> {
        self.iter()
            .find(|(_, t)| t.kind == kind && t.name == name)
            .map(|(i, _)| i)
    }

    /// Follows typedefs and qualifiers to the underlying type id.
    pub fn resolve(&self, mut id: u32) -> Result<u32> {
        for _ in 0..MAX_DEPTH {
            let t = self.get(id)?;
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG
                | KIND_VAR => id = t.size_or_type,
                _ => return Ok(id),
            }
        }
        Err(Error::invalid(format!(
            "BTF type {id}: reference chain too deep"
        )))
    }

    /// Size in bytes of a type, following references.
    pub fn size_of(&self, id: u32) -> Result<u64> {
        self.size_of_depth(id, 0)
    }

    fn size_of_depth(&self, id: u32, depth: usize) -> Result<u64> {
        if depth > MAX_DEPTH {
            return Err(Error::invalid("BTF type nesting too deep"));
        }
        let id = self.resolve(id)?;
        let t = self.get(id)?;
        Ok(match (t.kind, &t.data) {
            (KIND_PTR, _) => 8,
            (KIND_ARRAY, TypeData::Array { elem, nelems }) => self
                .size_of_depth(*elem, depth + 1)?
                .saturating_mul(*nelems as u64),
            (
                KIND_INT | KIND_STRUCT | KIND_UNION | KIND_ENUM | KIND_ENUM64 | KIND_FLOAT
                | KIND_DATASEC,
                _,
            ) => t.size_or_type as u64,
            _ => {
                return Err(Error::invalid(format!(
                    "BTF type {id} ({}) has no size",
                    kind_name(t.kind)
                )))
            }
        })
    }

    /// The type's spelling without top-level const/volatile/restrict, for flags and help.
    pub fn plain_type_name(&self, id: u32) -> String {
        self.type_name(self.skip_qualifiers(id))
    }

    fn skip_qualifiers(&self, mut id: u32) -> u32 {
        for _ in 0..MAX_DEPTH {
            match self.get(id) {
                Ok(t)
                    if matches!(
                        t.kind,
                        KIND_CONST | KIND_VOLATILE | KIND_RESTRICT | KIND_TYPE_TAG
                    ) =>
                {
                    id = t.size_or_type
                }
                _ => break,
            }
        }
        id
    }

    /// A C-like spelling of a type, for help text and package metadata.
    pub fn type_name(&self, id: u32) -> String {
        self.type_name_depth(id, 0)
    }

    fn type_name_depth(&self, id: u32, depth: usize) -> String {
        if id == 0 {
            return "void".into();
        }
        let Ok(t) = self.get(id) else {
            return "?".into();
        };
        if depth > MAX_DEPTH {
            return "...".into();
        }
        let inner = |s: &Self| s.type_name_depth(t.size_or_type, depth + 1);
        match t.kind {
            KIND_INT | KIND_TYPEDEF | KIND_FLOAT => t.name.clone(),
            KIND_STRUCT => format!("struct {}", t.name),
            KIND_UNION => format!("union {}", t.name),
            KIND_ENUM | KIND_ENUM64 => format!("enum {}", t.name),
            KIND_PTR => format!("{} *", inner(self)),
            KIND_CONST => format!("const {}", inner(self)),
            KIND_VOLATILE => format!("volatile {}", inner(self)),
            KIND_ARRAY => match &t.data {
                TypeData::Array { elem, nelems } => {
                    format!(
                        "{}[{nelems}]",
                        self.type_name_depth(self.skip_qualifiers(*elem), depth + 1)
                    )
                }
                _ => "?".into(),
            },
            _ => inner(self),
        }
    }
}

pub fn kind_name(kind: u8) -> &'static str {
    match kind {
        KIND_INT => "int",
        KIND_PTR => "ptr",
        KIND_ARRAY => "array",
        KIND_STRUCT => "struct",
        KIND_UNION => "union",
        KIND_ENUM | KIND_ENUM64 => "enum",
        KIND_FWD => "fwd",
        KIND_TYPEDEF => "typedef",
        KIND_FUNC => "func",
        KIND_FUNC_PROTO => "func_proto",
        KIND_VAR => "var",
        KIND_DATASEC => "datasec",
        KIND_FLOAT => "float",
        _ => "qualifier",
    }
}

#[cfg(test)]
pub mod testutil {
    /// Builds raw BTF from (name, info, size_or_type, extra words) entries, for tests.
    pub struct BtfBuilder {
        pub types: Vec<u32>,
        pub strings: Vec<u8>,
    }

    impl BtfBuilder {
        #[allow(clippy::new_without_default)]
        pub fn new() -> Self {
            BtfBuilder {
                types: vec![],
                strings: vec![0],
            }
        }
        pub fn s(&mut self, name: &str) -> u32 {
            if name.is_empty() {
                return 0;
            }
            let off = self.strings.len() as u32;
            self.strings.extend_from_slice(name.as_bytes());
            self.strings.push(0);
            off
        }
        pub fn add(
            &mut self,
            name: &str,
            kind: u8,
            vlen: u32,
            kflag: bool,
            sot: u32,
            extra: &[u32],
        ) {
            let n = self.s(name);
            self.types.push(n);
            self.types
                .push(((kflag as u32) << 31) | ((kind as u32) << 24) | vlen);
            self.types.push(sot);
            self.types.extend_from_slice(extra);
        }
        pub fn build(&self) -> Vec<u8> {
            let tl = self.types.len() as u32 * 4;
            let mut out = vec![];
            out.extend_from_slice(&0xeb9fu16.to_le_bytes());
            out.push(1);
            out.push(0);
            for v in [24u32, 0, tl, tl, self.strings.len() as u32] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            for w in &self.types {
                out.extend_from_slice(&w.to_le_bytes());
            }
            out.extend_from_slice(&self.strings);
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::BtfBuilder;
    use super::*;

    fn sample() -> Vec<u8> {
        let mut b = BtfBuilder::new();
        b.add("int", KIND_INT, 0, false, 4, &[(1 << 24) | 32]); // 1
        b.add("char", KIND_INT, 0, false, 1, &[(1 << 24) | 8]); // 2
        b.add("", KIND_ARRAY, 0, false, 0, &[2, 1, 16]); // 3 char[16]
        let pid = b.s("pid");
        let comm = b.s("comm");
        b.add(
            "event",
            KIND_STRUCT,
            2,
            false,
            20,
            &[pid, 1, 0, comm, 3, 32],
        ); // 4
        b.add("pid_t", KIND_TYPEDEF, 0, false, 1, &[]); // 5
        b.add("", KIND_CONST, 0, false, 5, &[]); // 6
        b.add("", KIND_VOLATILE, 0, false, 6, &[]); // 7
        b.build()
    }

    #[test]
    fn parses_struct_and_resolves_qualifiers() {
        let btf = Btf::parse(&sample()).unwrap();
        assert_eq!(btf.find(KIND_STRUCT, "event"), Some(4));
        assert_eq!(btf.size_of(3).unwrap(), 16);
        assert_eq!(btf.resolve(7).unwrap(), 1);
        assert_eq!(btf.type_name(7), "volatile const pid_t");
        assert_eq!(btf.type_name(3), "char[16]");
        match &btf.get(4).unwrap().data {
            TypeData::Members(m) => {
                assert_eq!(m[1].name, "comm");
                assert_eq!(m[1].bit_offset, 32);
            }
            _ => panic!("not a struct"),
        }
    }

    #[test]
    fn rejects_truncated_and_hostile_btf() {
        let good = sample();
        for cut in [0, 10, 23, good.len() - 30] {
            assert!(Btf::parse(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = good.clone();
        bad[0] = 0;
        assert!(Btf::parse(&bad).unwrap_err().to_string().contains("magic"));
        // A struct claiming 65535 members in a tiny buffer.
        let mut b = BtfBuilder::new();
        b.add("x", KIND_STRUCT, 0xffff, false, 4, &[]);
        assert!(Btf::parse(&b.build()).is_err());
        // A typedef loop must not hang.
        let mut b = BtfBuilder::new();
        b.add("a", KIND_TYPEDEF, 0, false, 2, &[]);
        b.add("b", KIND_TYPEDEF, 0, false, 1, &[]);
        let btf = Btf::parse(&b.build()).unwrap();
        assert!(btf.resolve(1).is_err());
        assert!(btf.size_of(1).is_err());
    }
}
