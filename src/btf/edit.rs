//! Raw BTF edits, in place: the words of a type's record, new strings and new types appended.
//! Type ids and string offsets of what is there stay as they are, so `.BTF.ext` and the
//! object's relocations keep meaning the same types. Pure.

use super::{
    KIND_ARRAY, KIND_DATASEC, KIND_DECL_TAG, KIND_ENUM, KIND_ENUM64, KIND_FUNC_PROTO, KIND_INT,
    KIND_STRUCT, KIND_UNION, KIND_VAR,
};
use crate::error::{Error, Result};

pub struct BtfEdit {
    header: Vec<u8>,
    types: Vec<u8>,
    strings: Vec<u8>,
    /// Where each type's record starts in `types`, by id (id 0, void, has none).
    starts: Vec<usize>,
}

/// Bytes of a type record after its 12-byte head.
fn tail_len(kind: u8, vlen: usize) -> usize {
    match kind {
        KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
        KIND_ARRAY => 12,
        KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => vlen * 12,
        KIND_ENUM | KIND_FUNC_PROTO => vlen * 8,
        _ => 0,
    }
}

fn word(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
}

impl BtfEdit {
    pub fn parse(raw: &[u8]) -> Result<BtfEdit> {
        let (types, strings) = super::split(raw)?;
        let hdr_len = word(raw, 4).unwrap_or(24) as usize;
        let mut starts = vec![0];
        let mut at = 0;
        while at < types.len() {
            let info = word(types, at + 4)
                .ok_or_else(|| Error::invalid("bad BTF: truncated type record"))?;
            let (kind, vlen) = (((info >> 24) & 0x1f) as u8, (info & 0xffff) as usize);
            starts.push(at);
            at += 12 + tail_len(kind, vlen);
        }
        if at != types.len() {
            return Err(Error::invalid("bad BTF: truncated type record"));
        }
        Ok(BtfEdit {
            header: raw[..hdr_len.min(raw.len())].to_vec(),
            types: types.to_vec(),
            strings: strings.to_vec(),
            starts,
        })
    }

    /// Types there are, void included.
    pub fn len(&self) -> u32 {
        self.starts.len() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.starts.len() <= 1
    }

    /// Word `i` of type `id`'s record (0 name, 1 info, 2 size/type, then its tail).
    pub fn word(&self, id: u32, i: usize) -> Result<u32> {
        self.at(id, i).and_then(|at| {
            word(&self.types, at).ok_or_else(|| Error::invalid(format!("bad BTF: type {id}")))
        })
    }

    pub fn set_word(&mut self, id: u32, i: usize, v: u32) -> Result<()> {
        let at = self.at(id, i)?;
        self.types[at..at + 4].copy_from_slice(&v.to_le_bytes());
        Ok(())
    }

    fn at(&self, id: u32, i: usize) -> Result<usize> {
        let start = *self
            .starts
            .get(id as usize)
            .filter(|_| id != 0)
            .ok_or_else(|| Error::invalid(format!("bad BTF: no type {id}")))?;
        let next = self
            .starts
            .get(id as usize + 1)
            .copied()
            .unwrap_or(self.types.len());
        let at = start + i * 4;
        if at + 4 > next {
            return Err(Error::invalid(format!(
                "bad BTF: type {id} has no word {i}"
            )));
        }
        Ok(at)
    }

    pub fn add_string(&mut self, s: &str) -> u32 {
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        off
    }

    /// Appends a type record (its words); returns its id.
    pub fn push_type(&mut self, words: &[u32]) -> u32 {
        self.starts.push(self.types.len());
        for w in words {
            self.types.extend_from_slice(&w.to_le_bytes());
        }
        self.starts.len() as u32 - 1
    }

    /// The raw BTF: header, types, strings (in that order, lengths and offsets updated).
    pub fn finish(mut self) -> Vec<u8> {
        let (tl, sl) = (self.types.len() as u32, self.strings.len() as u32);
        let hl = self.header.len();
        if hl >= 24 {
            self.header[8..12].copy_from_slice(&0u32.to_le_bytes());
            self.header[12..16].copy_from_slice(&tl.to_le_bytes());
            self.header[16..20].copy_from_slice(&tl.to_le_bytes());
            self.header[20..24].copy_from_slice(&sl.to_le_bytes());
        }
        let mut out = self.header;
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings);
        out
    }
}

/// The ids of named types of raw BTF (the kernel's: ~150k types, scanned without parsing
/// them): for each (name, kind) wanted, the first such type, if any.
pub fn ids_by_name(raw: &[u8], wanted: &[(&str, u8)]) -> Result<Vec<Option<u32>>> {
    let (types, strings) = super::split(raw)?;
    let mut found = vec![None; wanted.len()];
    let mut left = wanted.len();
    let (mut at, mut id) = (0usize, 1u32);
    while at < types.len() && left > 0 {
        let (Some(name_off), Some(info)) = (word(types, at), word(types, at + 4)) else {
            return Err(Error::invalid("bad BTF: truncated type record"));
        };
        let (kind, vlen) = (((info >> 24) & 0x1f) as u8, (info & 0xffff) as usize);
        if wanted.iter().any(|(_, k)| *k == kind) {
            let name = strings
                .get(name_off as usize..)
                .and_then(|s| s.iter().position(|&c| c == 0).map(|e| &s[..e]));
            if let Some(name) = name {
                for (i, (n, k)) in wanted.iter().enumerate() {
                    if found[i].is_none() && *k == kind && n.as_bytes() == name {
                        found[i] = Some(id);
                        left -= 1;
                    }
                }
            }
        }
        at += 12 + tail_len(kind, vlen);
        id += 1;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::testutil::BtfBuilder;
    use crate::btf::{self, Btf, TypeData};

    #[test]
    fn edits_keep_ids_and_append_types() {
        let mut b = BtfBuilder::new();
        b.add("int", btf::KIND_INT, 0, false, 4, &[(1 << 24) | 32]); // 1
        b.add("x", btf::KIND_VAR, 0, false, 1, &[2]); // 2 extern var
        b.add(".ksyms", btf::KIND_DATASEC, 1, false, 0, &[2, 0, 0]); // 3
        let mut e = BtfEdit::parse(&b.build()).unwrap();
        assert_eq!(e.len(), 4);
        e.set_word(2, 3, 1).unwrap(); // linkage: allocated
        e.set_word(3, 2, 4).unwrap(); // datasec size
        let name = e.add_string("dummy");
        let id = e.push_type(&[name, (btf::KIND_VAR as u32) << 24, 1, 1]);
        assert_eq!(id, 4);
        assert!(e.set_word(1, 9, 0).is_err());
        assert!(e.word(0, 0).is_err());
        let raw = e.finish();
        assert_eq!(
            ids_by_name(
                &raw,
                &[
                    ("x", btf::KIND_VAR),
                    ("dummy", btf::KIND_VAR),
                    ("x", btf::KIND_FUNC)
                ]
            )
            .unwrap(),
            vec![Some(2), Some(4), None]
        );
        let parsed = Btf::parse(&raw).unwrap();
        assert!(matches!(
            parsed.get(2).unwrap().data,
            TypeData::Var { linkage: 1 }
        ));
        assert_eq!(parsed.get(3).unwrap().size_or_type, 4);
        assert_eq!(parsed.get(4).unwrap().name, "dummy");
    }
}
