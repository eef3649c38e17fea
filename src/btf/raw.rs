//! Raw BTF read in place: where each type starts, and its words. For the cuts of the kernel's
//! BTF (`core`, `gen`), which copy type records as they are rather than decode them. Pure;
//! every offset is checked once, when the index is built.

use crate::btf::{
    self, KIND_ARRAY, KIND_CONST, KIND_DATASEC, KIND_DECL_TAG, KIND_ENUM, KIND_ENUM64, KIND_FLOAT,
    KIND_FUNC, KIND_FUNC_PROTO, KIND_FWD, KIND_INT, KIND_PTR, KIND_RESTRICT, KIND_STRUCT,
    KIND_TYPEDEF, KIND_TYPE_TAG, KIND_UNION, KIND_VAR, KIND_VOLATILE,
};
use crate::error::{Error, Result};

const MAX_TYPES: usize = 1 << 20;

pub fn word(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// Bytes after the 12-byte header of a type of `kind` with `vlen` entries.
pub fn extra_len(kind: u8, vlen: usize) -> Result<usize> {
    Ok(match kind {
        KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
        KIND_ARRAY => 12,
        KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * vlen,
        KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen,
        KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
        | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => 0,
        k => return Err(Error::invalid(format!("bad BTF: unknown type kind {k}"))),
    })
}

/// Raw little-endian BTF with an index of its types (ids 1..=len).
pub struct RawBtf<'a> {
    pub types: &'a [u8],
    pub strings: &'a [u8],
    /// Where type `id` starts is `offs[id - 1]`; one more entry for the end.
    offs: Vec<u32>,
}

impl<'a> RawBtf<'a> {
    pub fn parse(data: &'a [u8]) -> Result<RawBtf<'a>> {
        let bad = |m: &str| Error::invalid(format!("bad BTF: {m}"));
        let (types, strings) = btf::split(data)?;
        let mut offs: Vec<u32> = Vec::with_capacity((types.len() / 24 + 2).min(MAX_TYPES + 1));
        let mut pos = 0usize;
        while pos < types.len() {
            if offs.len() >= MAX_TYPES {
                return Err(bad("too many types"));
            }
            let h = types
                .get(pos..pos + 12)
                .ok_or_else(|| bad("type section is truncated"))?;
            let info = word(h, 4);
            let end = pos + 12 + extra_len((info >> 24 & 0x1f) as u8, (info & 0xffff) as usize)?;
            if end > types.len() {
                return Err(bad("type section is truncated"));
            }
            offs.push(pos as u32);
            pos = end;
        }
        offs.push(pos as u32);
        Ok(RawBtf {
            types,
            strings,
            offs,
        })
    }

    /// How many types there are (the largest id).
    pub fn len(&self) -> u32 {
        (self.offs.len() - 1) as u32
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Is `id` a type here (0, void, is not)?
    pub fn has(&self, id: u32) -> bool {
        id >= 1 && id <= self.len()
    }

    /// Type `id`'s record (header and entries); `id` must exist.
    pub fn ty(&self, id: u32) -> &'a [u8] {
        &self.types[self.offs[id as usize - 1] as usize..self.offs[id as usize] as usize]
    }

    pub fn checked(&self, id: u32) -> Result<&'a [u8]> {
        if self.has(id) {
            Ok(self.ty(id))
        } else {
            Err(Error::invalid(format!(
                "bad BTF: type id {id} out of range (there are {})",
                self.len()
            )))
        }
    }

    pub fn kind(&self, id: u32) -> u8 {
        (word(self.ty(id), 4) >> 24 & 0x1f) as u8
    }

    pub fn vlen(&self, id: u32) -> usize {
        (word(self.ty(id), 4) & 0xffff) as usize
    }

    /// The referenced type of a PTR, TYPEDEF, qualifier, FUNC, VAR, FUNC_PROTO (its return).
    pub fn target(&self, id: u32) -> u32 {
        word(self.ty(id), 8)
    }

    /// The string at `off` (without its NUL; empty when out of range).
    pub fn str_at(&self, off: u32) -> &'a [u8] {
        let s = self.strings.get(off as usize..).unwrap_or(&[]);
        &s[..s.iter().position(|&c| c == 0).unwrap_or(s.len())]
    }

    pub fn name(&self, id: u32) -> &'a [u8] {
        self.str_at(word(self.ty(id), 0))
    }

    /// Entry `i` of a struct or union: (name offset, type, offset word).
    pub fn member(&self, id: u32, i: usize) -> (u32, u32, u32) {
        let t = self.ty(id);
        let o = 12 + 12 * i;
        (word(t, o), word(t, o + 4), word(t, o + 8))
    }

    /// Follows typedefs and qualifiers (at most 64 of them) to what they name.
    pub fn skip_mods(&self, mut id: u32) -> Result<u32> {
        for _ in 0..64 {
            self.checked(id)?;
            match self.kind(id) {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = self.target(id)
                }
                _ => return Ok(id),
            }
        }
        Err(Error::invalid("bad BTF: a typedef chain longer than 64"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::testutil::BtfBuilder;

    #[test]
    fn indexes_types_and_refuses_damage() {
        let mut b = BtfBuilder::new();
        b.add("int", KIND_INT, 0, false, 4, &[(1 << 24) | 32]); // 1
        let x = b.s("x");
        b.add("s", KIND_STRUCT, 1, false, 4, &[x, 1, 0]); // 2
        b.add("t", KIND_TYPEDEF, 0, false, 2, &[]); // 3
        let raw = b.build();
        let r = RawBtf::parse(&raw).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(
            (r.kind(2), r.vlen(2), r.name(2)),
            (KIND_STRUCT, 1, &b"s"[..])
        );
        assert_eq!(r.str_at(r.member(2, 0).0), b"x");
        assert_eq!(r.skip_mods(3).unwrap(), 2);
        assert!(r.checked(4).is_err() && r.checked(0).is_err());
        for cut in 24..raw.len() {
            let mut d = raw[..cut].to_vec();
            let tl = (cut as u32 - 24).min(word(&raw, 12));
            d[12..16].copy_from_slice(&tl.to_le_bytes());
            d[16..20].copy_from_slice(&tl.to_le_bytes());
            d[20..24].copy_from_slice(&0u32.to_le_bytes());
            let _ = RawBtf::parse(&d);
        }
        let mut loop_b = BtfBuilder::new();
        loop_b.add("a", KIND_TYPEDEF, 0, false, 1, &[]);
        let l = loop_b.build();
        assert!(RawBtf::parse(&l).unwrap().skip_mods(1).is_err());
    }
}
