//! Minimal bounds-checked ELF64 little-endian reader for BPF objects, plus the one edit we make:
//! renaming program sections that aya 0.14 does not know to names it does.

use crate::error::{Error, Result};

pub const EM_BPF: u16 = 247;
const SHT_SYMTAB: u32 = 2;
const SHT_STRTAB: u32 = 3;
pub const SHT_PROGBITS: u32 = 1;
pub const SHT_REL: u32 = 9;
pub const SHF_WRITE: u64 = 1;
pub const SHF_ALLOC: u64 = 2;
pub const SHT_NOBITS: u32 = 8;
pub const SHF_EXECINSTR: u64 = 4;
pub const STT_OBJECT: u8 = 1;
pub const STT_FUNC: u8 = 2;
pub const STT_SECTION: u8 = 3;
pub const SHN_UNDEF: u16 = 0;

#[derive(Debug, Clone)]
pub struct Section {
    pub name: String,
    pub name_off: u32,
    pub kind: u32,
    pub flags: u64,
    pub offset: u64,
    pub size: u64,
    pub link: u32,
    /// For relocation sections, the section they apply to.
    pub info: u32,
}

/// One `Elf64_Rel` entry: the byte offset it patches in its section, and the symbol it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rel {
    pub offset: u64,
    pub symbol: u32,
    pub kind: u32,
}

#[derive(Debug, Clone)]
pub struct Symbol {
    pub name: String,
    pub kind: u8,
    pub bind: u8,
    /// `st_other`'s visibility (0 default, 1 internal, 2 hidden, 3 protected).
    pub visibility: u8,
    pub section: u16,
    pub value: u64,
    pub size: u64,
}

#[derive(Debug)]
pub struct Elf<'a> {
    pub data: &'a [u8],
    pub machine: u16,
    pub sections: Vec<Section>,
    pub symbols: Vec<Symbol>,
    shoff: u64,
}

fn rd16(d: &[u8], o: usize) -> Result<u16> {
    d.get(o..o + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or_else(|| Error::invalid("ELF is truncated"))
}
fn rd32(d: &[u8], o: usize) -> Result<u32> {
    d.get(o..o + 4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()))
        .ok_or_else(|| Error::invalid("ELF is truncated"))
}
fn rd64(d: &[u8], o: usize) -> Result<u64> {
    d.get(o..o + 8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
        .ok_or_else(|| Error::invalid("ELF is truncated"))
}

fn cstr(d: &[u8], off: usize) -> Result<String> {
    let s = d
        .get(off..)
        .ok_or_else(|| Error::invalid("ELF string offset out of range"))?;
    let end = s
        .iter()
        .take(crate::btf::MAX_NAME + 1)
        .position(|&c| c == 0)
        .ok_or_else(|| Error::invalid("ELF string not terminated within 4096 bytes"))?;
    Ok(String::from_utf8_lossy(&s[..end]).into_owned())
}

/// `data[off..off+size]`, refused when it does not lie inside the file.
fn range(data: &[u8], off: u64, size: u64) -> Result<&[u8]> {
    off.checked_add(size)
        .and_then(|end| data.get(off as usize..end as usize))
        .ok_or_else(|| Error::invalid("ELF string or symbol table lies outside the file"))
}

impl<'a> Elf<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Elf<'a>> {
        if data.len() < 64 || &data[..4] != b"\x7fELF" {
            return Err(Error::invalid("not an ELF file"));
        }
        if data[4] != 2 || data[5] != 1 {
            return Err(Error::invalid(
                "not a 64-bit little-endian ELF (build the object with clang -target bpf, or bpfel)",
            ));
        }
        let machine = rd16(data, 18)?;
        let shoff = rd64(data, 40)?;
        let shentsize = rd16(data, 58)? as u64;
        let shnum = rd16(data, 60)? as u64;
        let shstrndx = rd16(data, 62)?;
        if shnum > 0 && shentsize != 64 {
            return Err(Error::invalid("ELF section header size is not 64"));
        }
        shoff
            .checked_add(shnum * 64)
            .filter(|&e| e <= data.len() as u64)
            .ok_or_else(|| Error::invalid("ELF section headers lie outside the file"))?;
        let mut sections = Vec::with_capacity(shnum as usize);
        for i in 0..shnum {
            let o = (shoff + i * 64) as usize;
            let s = Section {
                name: String::new(),
                name_off: rd32(data, o)?,
                kind: rd32(data, o + 4)?,
                flags: rd64(data, o + 8)?,
                offset: rd64(data, o + 24)?,
                size: rd64(data, o + 32)?,
                link: rd32(data, o + 40)?,
                info: rd32(data, o + 44)?,
            };
            if s.kind != SHT_NOBITS
                && s.offset
                    .checked_add(s.size)
                    .is_none_or(|e| e > data.len() as u64)
            {
                return Err(Error::invalid(format!(
                    "ELF section {i} lies outside the file"
                )));
            }
            sections.push(s);
        }
        let mut elf = Elf {
            data,
            machine,
            sections,
            symbols: vec![],
            shoff,
        };
        if let Some(strtab) = elf
            .sections
            .get(shstrndx as usize)
            .map(|s| (s.offset, s.size))
        {
            let names = range(data, strtab.0, strtab.1)?;
            for s in &mut elf.sections {
                s.name = cstr(names, s.name_off as usize)?;
            }
        }
        if let Some(symtab) = elf.sections.iter().find(|s| s.kind == SHT_SYMTAB).cloned() {
            let strs = elf
                .sections
                .get(symtab.link as usize)
                .ok_or_else(|| Error::invalid("ELF symbol table has no string table"))?;
            let strs = range(data, strs.offset, strs.size)?;
            let syms = range(data, symtab.offset, symtab.size)?;
            for ent in syms.chunks_exact(24) {
                let info = ent[4];
                elf.symbols.push(Symbol {
                    name: cstr(strs, rd32(ent, 0)? as usize)?,
                    kind: info & 0xf,
                    bind: info >> 4,
                    visibility: ent[5] & 3,
                    section: rd16(ent, 6)?,
                    value: rd64(ent, 8)?,
                    size: rd64(ent, 16)?,
                });
            }
        }
        Ok(elf)
    }

    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// The relocations that apply to section `index` (its `.rel` sections' entries).
    pub fn relocations(&self, index: usize) -> Vec<Rel> {
        let mut out = Vec::new();
        for s in &self.sections {
            if s.kind != SHT_REL || s.info as usize != index {
                continue;
            }
            for e in self.section_data(s).chunks_exact(16) {
                let info = u64::from_le_bytes(e[8..16].try_into().unwrap_or_default());
                out.push(Rel {
                    offset: u64::from_le_bytes(e[..8].try_into().unwrap_or_default()),
                    symbol: (info >> 32) as u32,
                    kind: info as u32,
                });
            }
        }
        out
    }

    pub fn section_data(&self, s: &Section) -> &'a [u8] {
        if s.kind == SHT_NOBITS {
            return &[];
        }
        &self.data[s.offset as usize..(s.offset + s.size) as usize]
    }

    /// Returns a copy of the object whose section names are replaced by `rename(old)`. The new
    /// names go into a section-name table appended at the end, so symbol names (which clang keeps
    /// in the same table) stay untouched.
    ///
    /// `replace` gives new contents for whole sections by name: they are appended too and the
    /// section's header points at them.
    pub fn with_renamed_sections(
        &self,
        rename: impl Fn(&str) -> Option<String>,
        replace: &[(&str, Vec<u8>)],
    ) -> Vec<u8> {
        self.edited(&rename, replace, &[])
    }

    /// The object with sections renamed, contents replaced and new sections appended (their
    /// indexes follow the existing ones, in order).
    pub fn edited(
        &self,
        rename: &dyn Fn(&str) -> Option<String>,
        replace: &[(&str, Vec<u8>)],
        append: &[NewSection],
    ) -> Vec<u8> {
        let mut out = self.data.to_vec();
        let pad = |out: &mut Vec<u8>| {
            while !out.len().is_multiple_of(8) {
                out.push(0);
            }
        };
        pad(&mut out);
        let mut moved = Vec::new();
        for (name, bytes) in replace {
            moved.push((*name, out.len() as u64, bytes.len() as u64));
            out.extend_from_slice(bytes);
            pad(&mut out);
        }
        let mut added = Vec::new();
        for n in append {
            added.push(out.len() as u64);
            out.extend_from_slice(&n.data);
            pad(&mut out);
        }
        let mut names = vec![0u8];
        let mut offsets = Vec::with_capacity(self.sections.len());
        for s in &self.sections {
            let n = rename(&s.name).unwrap_or_else(|| s.name.clone());
            offsets.push(names.len() as u32);
            names.extend_from_slice(n.as_bytes());
            names.push(0);
        }
        let mut added_names = Vec::new();
        for n in append {
            added_names.push(names.len() as u32);
            names.extend_from_slice(n.name.as_bytes());
            names.push(0);
        }
        let new_name_off = names.len() as u32;
        names.extend_from_slice(b".edge.shstrtab\0");
        let names_off = out.len() as u64;
        out.extend_from_slice(&names);
        pad(&mut out);
        let new_shoff = out.len() as u64;
        for (i, off) in offsets.iter().enumerate() {
            let o = (self.shoff + i as u64 * 64) as usize;
            let mut hdr = self.data[o..o + 64].to_vec();
            hdr[..4].copy_from_slice(&off.to_le_bytes());
            if let Some((_, at, len)) = moved.iter().find(|m| m.0 == self.sections[i].name) {
                hdr[24..32].copy_from_slice(&at.to_le_bytes());
                hdr[32..40].copy_from_slice(&len.to_le_bytes());
            }
            out.extend_from_slice(&hdr);
        }
        for ((n, at), name) in append.iter().zip(&added).zip(&added_names) {
            let mut hdr = [0u8; 64];
            hdr[..4].copy_from_slice(&name.to_le_bytes());
            hdr[4..8].copy_from_slice(&n.kind.to_le_bytes());
            hdr[8..16].copy_from_slice(&n.flags.to_le_bytes());
            hdr[24..32].copy_from_slice(&at.to_le_bytes());
            hdr[32..40].copy_from_slice(&(n.data.len() as u64).to_le_bytes());
            hdr[48..56].copy_from_slice(&n.align.max(1).to_le_bytes());
            out.extend_from_slice(&hdr);
        }
        let mut hdr = [0u8; 64];
        hdr[..4].copy_from_slice(&new_name_off.to_le_bytes());
        hdr[4..8].copy_from_slice(&SHT_STRTAB.to_le_bytes());
        hdr[24..32].copy_from_slice(&names_off.to_le_bytes());
        hdr[32..40].copy_from_slice(&(names.len() as u64).to_le_bytes());
        hdr[48..56].copy_from_slice(&1u64.to_le_bytes());
        out.extend_from_slice(&hdr);
        // Parsing refused more than u16::MAX sections, and a full table stays as it is.
        let shnum = (self.sections.len() as u16)
            .saturating_add(append.len() as u16)
            .saturating_add(1);
        out[40..48].copy_from_slice(&new_shoff.to_le_bytes());
        out[60..62].copy_from_slice(&shnum.to_le_bytes());
        out[62..64].copy_from_slice(&(shnum - 1).to_le_bytes());
        out
    }
}

/// A section `Elf::edited` appends.
#[derive(Debug, Clone)]
pub struct NewSection {
    pub name: String,
    pub kind: u32,
    pub flags: u64,
    pub align: u64,
    pub data: Vec<u8>,
}

#[cfg(test)]
pub mod testutil {
    /// Builds a tiny ELF64 LE object: sections (name, type, flags, data) and symbols
    /// (name, info, section index, value, size). Section 0 is null; the last two are the
    /// string table and the symbol table.
    pub fn build(
        machine: u16,
        sections: &[(&str, u32, u64, &[u8])],
        syms: &[(&str, u8, u16, u64, u64)],
    ) -> Vec<u8> {
        let mut strtab = vec![0u8];
        let add = |s: &str, t: &mut Vec<u8>| {
            let o = t.len() as u32;
            t.extend_from_slice(s.as_bytes());
            t.push(0);
            o
        };
        let mut out = vec![0u8; 64];
        let mut hdrs: Vec<[u8; 64]> = vec![[0; 64]];
        for (name, kind, flags, data) in sections {
            let mut h = [0u8; 64];
            h[..4].copy_from_slice(&add(name, &mut strtab).to_le_bytes());
            h[4..8].copy_from_slice(&kind.to_le_bytes());
            h[8..16].copy_from_slice(&flags.to_le_bytes());
            h[24..32].copy_from_slice(&(out.len() as u64).to_le_bytes());
            h[32..40].copy_from_slice(&(data.len() as u64).to_le_bytes());
            out.extend_from_slice(data);
            hdrs.push(h);
        }
        let mut symtab = vec![0u8; 24];
        for (name, info, shndx, value, size) in syms {
            let mut e = [0u8; 24];
            e[..4].copy_from_slice(&add(name, &mut strtab).to_le_bytes());
            e[4] = *info;
            e[6..8].copy_from_slice(&shndx.to_le_bytes());
            e[8..16].copy_from_slice(&value.to_le_bytes());
            e[16..24].copy_from_slice(&size.to_le_bytes());
            symtab.extend_from_slice(&e);
        }
        let strtab_name = add(".strtab", &mut strtab);
        let symtab_name = add(".symtab", &mut strtab);
        let strtab_idx = hdrs.len() as u32;
        let mut h = [0u8; 64];
        h[..4].copy_from_slice(&strtab_name.to_le_bytes());
        h[4..8].copy_from_slice(&3u32.to_le_bytes());
        h[24..32].copy_from_slice(&(out.len() as u64).to_le_bytes());
        h[32..40].copy_from_slice(&(strtab.len() as u64).to_le_bytes());
        out.extend_from_slice(&strtab);
        hdrs.push(h);
        let mut h = [0u8; 64];
        h[..4].copy_from_slice(&symtab_name.to_le_bytes());
        h[4..8].copy_from_slice(&2u32.to_le_bytes());
        h[24..32].copy_from_slice(&(out.len() as u64).to_le_bytes());
        h[32..40].copy_from_slice(&(symtab.len() as u64).to_le_bytes());
        h[40..44].copy_from_slice(&strtab_idx.to_le_bytes());
        out.extend_from_slice(&symtab);
        hdrs.push(h);
        let shoff = out.len() as u64;
        for h in &hdrs {
            out.extend_from_slice(h);
        }
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2;
        out[5] = 1;
        out[6] = 1;
        out[18..20].copy_from_slice(&machine.to_le_bytes());
        out[40..48].copy_from_slice(&shoff.to_le_bytes());
        out[58..60].copy_from_slice(&64u16.to_le_bytes());
        out[60..62].copy_from_slice(&(hdrs.len() as u16).to_le_bytes());
        out[62..64].copy_from_slice(&(strtab_idx as u16).to_le_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sections_and_symbols() {
        let obj = testutil::build(
            EM_BPF,
            &[("tc", 1, SHF_EXECINSTR, &[0; 16])],
            &[("prog", 0x12, 1, 0, 16)],
        );
        let elf = Elf::parse(&obj).unwrap();
        assert_eq!(elf.machine, EM_BPF);
        assert_eq!(elf.sections[1].name, "tc");
        assert_eq!(elf.symbols[1].name, "prog");
        assert_eq!(elf.symbols[1].kind, STT_FUNC);
    }

    #[test]
    fn renames_sections_keeping_symbols() {
        let obj = testutil::build(
            EM_BPF,
            &[("tc", 1, SHF_EXECINSTR, &[7; 16])],
            &[("prog", 0x12, 1, 0, 16)],
        );
        let elf = Elf::parse(&obj).unwrap();
        let out = elf.with_renamed_sections(|n| (n == "tc").then(|| "classifier".to_string()), &[]);
        let e2 = Elf::parse(&out).unwrap();
        assert_eq!(e2.sections[1].name, "classifier");
        assert_eq!(e2.section_data(&e2.sections[1]), &[7; 16]);
        assert_eq!(e2.symbols[1].name, "prog");
        assert_eq!(e2.sections.last().unwrap().name, ".edge.shstrtab");
    }

    #[test]
    fn nobits_string_table_is_refused() {
        let mut obj = testutil::build(EM_BPF, &[("x", 1, 0, &[0; 8])], &[]);
        // Make the section-name table (index 2) NOBITS with a huge size.
        let shoff = u64::from_le_bytes(obj[40..48].try_into().unwrap()) as usize;
        let h = shoff + 2 * 64;
        obj[h + 4..h + 8].copy_from_slice(&SHT_NOBITS.to_le_bytes());
        obj[h + 32..h + 40].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(Elf::parse(&obj)
            .unwrap_err()
            .to_string()
            .contains("outside the file"));
    }

    #[test]
    fn rejects_hostile_headers() {
        assert!(Elf::parse(b"hello")
            .unwrap_err()
            .to_string()
            .contains("not an ELF"));
        let mut obj = testutil::build(EM_BPF, &[("x", 1, 0, &[0; 8])], &[]);
        let n = obj.len();
        assert!(Elf::parse(&obj[..n - 10]).is_err());
        obj[40..48].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(Elf::parse(&obj)
            .unwrap_err()
            .to_string()
            .contains("outside"));
        let mut obj = testutil::build(EM_BPF, &[("x", 1, 0, &[0; 8])], &[]);
        obj[4] = 1;
        assert!(Elf::parse(&obj).unwrap_err().to_string().contains("64-bit"));
    }
}
