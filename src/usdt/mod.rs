//! USDT probes (systemtap's `sys/sdt.h`) in a binary, as libbpf's usdt.c finds them: the
//! `.note.stapsdt` notes (provider, name, address, semaphore, argument spec), their addresses
//! turned into file offsets for uprobes, their arguments into the spec records that libbpf's
//! `usdt.bpf.h` reads (`args`). Pure: the binary's bytes in, attach points out.

pub mod args;

use crate::btf::{Btf, TypeData};
use crate::error::{Error, Result};
use args::{Arg, Loc};

/// Where libbpf's `usdt.bpf.h` (the version the object was built with) keeps each part of a
/// probe's spec: read from the object's own BTF (`struct __bpf_usdt_spec`), so a spec map
/// value is written the way that header reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecLayout {
    size: usize,
    args_off: usize,
    arg_size: usize,
    max_args: usize,
    cookie_off: usize,
    cnt: (usize, usize),
    val_off: usize,
    arg_type: (usize, usize),
    reg_off: usize,
    signed: usize,
    bitshift: usize,
    /// enum __bpf_usdt_arg_type: CONST, REG, REG_DEREF.
    kinds: [u64; 3],
}

/// The map libbpf's `usdt.bpf.h` reads specs from.
pub const SPECS_MAP: &str = "__bpf_usdt_specs";

impl SpecLayout {
    pub fn from_btf(btf: &Btf) -> Result<SpecLayout> {
        let bad = |m: &str| Error::invalid(format!("the object's struct __bpf_usdt_spec: {m}"));
        /// A struct's size and its members: (name, byte offset, type id).
        type Members = (usize, Vec<(String, usize, u32)>);
        let members = |name: &str| -> Result<Members> {
            let id = btf
                .find(crate::btf::KIND_STRUCT, name)
                .ok_or_else(|| bad(&format!("no struct {name} (include <bpf/usdt.bpf.h>)")))?;
            let t = btf.get(id)?;
            let TypeData::Members(ms) = &t.data else {
                return Err(bad("not a struct"));
            };
            let v = ms
                .iter()
                .map(|m| (m.name.clone(), (m.bit_offset / 8) as usize, m.type_id))
                .collect();
            Ok((btf.size_of(id)? as usize, v))
        };
        let (size, spec) = members("__bpf_usdt_spec")?;
        let (arg_size, arg) = members("__bpf_usdt_arg_spec")?;
        let find = |v: &[(String, usize, u32)], n: &str| {
            v.iter()
                .find(|m| m.0 == n)
                .map(|m| (m.1, m.2))
                .ok_or_else(|| bad(&format!("no member {n}")))
        };
        let sized = |(off, ty): (usize, u32)| -> Result<(usize, usize)> {
            Ok((off, btf.size_of(ty)? as usize))
        };
        let (args_off, args_ty) = find(&spec, "args")?;
        let max_args = match &btf.get(btf.resolve(args_ty)?)?.data {
            TypeData::Array { nelems, .. } => *nelems as usize,
            _ => return Err(bad("args is not an array")),
        };
        let kinds_id = btf
            .find(crate::btf::KIND_ENUM, "__bpf_usdt_arg_type")
            .ok_or_else(|| bad("no enum __bpf_usdt_arg_type"))?;
        let TypeData::Enum(vals) = &btf.get(kinds_id)?.data else {
            return Err(bad("enum __bpf_usdt_arg_type is not an enum"));
        };
        let kind = |n: &str| {
            vals.iter()
                .find(|(name, _)| name == n)
                .map(|(_, v)| *v as u64)
                .ok_or_else(|| bad(&format!("no {n}")))
        };
        let l = SpecLayout {
            size,
            args_off,
            arg_size,
            max_args,
            cookie_off: find(&spec, "usdt_cookie")?.0,
            cnt: sized(find(&spec, "arg_cnt")?)?,
            val_off: find(&arg, "val_off")?.0,
            arg_type: sized(find(&arg, "arg_type")?)?,
            reg_off: find(&arg, "reg_off")?.0,
            signed: find(&arg, "arg_signed")?.0,
            bitshift: find(&arg, "arg_bitshift")?.0,
            kinds: [
                kind("BPF_USDT_ARG_CONST")?,
                kind("BPF_USDT_ARG_REG")?,
                kind("BPF_USDT_ARG_REG_DEREF")?,
            ],
        };
        let end = l.args_off + l.arg_size * l.max_args;
        let fits = |o: usize, n: usize| o + n <= l.arg_size;
        if end > l.size
            || !fits(l.val_off, 8)
            || !fits(l.arg_type.0, l.arg_type.1)
            || !fits(l.reg_off, 2)
            || l.cookie_off + 8 > l.size
            || l.cnt.0 + l.cnt.1 > l.size
        {
            return Err(bad("members out of place"));
        }
        Ok(l)
    }

    /// A spec map value for a probe with these arguments.
    pub fn encode(&self, args: &[Arg], cookie: u64) -> Result<Vec<u8>> {
        if args.len() > self.max_args {
            return Err(Error::invalid(format!(
                "USDT probe has {} arguments; this object's usdt.bpf.h takes {}",
                args.len(),
                self.max_args
            )));
        }
        let mut v = vec![0u8; self.size];
        for (i, a) in args.iter().enumerate() {
            let base = self.args_off + i * self.arg_size;
            let (kind, val, reg) = match a.loc {
                Loc::Const(c) => (self.kinds[0], c as u64, 0),
                Loc::Reg { reg_off } => (self.kinds[1], 0, reg_off),
                Loc::Deref { reg_off, off } => (self.kinds[2], off as u64, reg_off),
            };
            v[base + self.val_off..base + self.val_off + 8].copy_from_slice(&val.to_le_bytes());
            let (to, n) = self.arg_type;
            v[base + to..base + to + n].copy_from_slice(&kind.to_le_bytes()[..n.min(8)]);
            v[base + self.reg_off..base + self.reg_off + 2].copy_from_slice(&reg.to_le_bytes());
            v[base + self.signed] = a.signed as u8;
            v[base + self.bitshift] = a.bitshift();
        }
        v[self.cookie_off..self.cookie_off + 8].copy_from_slice(&cookie.to_le_bytes());
        let (co, cn) = self.cnt;
        v[co..co + cn].copy_from_slice(&(args.len() as u64).to_le_bytes()[..cn.min(8)]);
        Ok(v)
    }
}

/// One probe site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub provider: String,
    pub name: String,
    /// Virtual address of the probe's instruction (after prelink adjustment).
    pub addr: u64,
    /// Virtual address of its semaphore (0: none).
    pub sema: u64,
    /// Its arguments, as the compiler wrote them (`-4@%edi 8@-8(%rbp)`).
    pub args: String,
}

/// A probe site ready to attach: file offsets of the instruction and of the semaphore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub note: Note,
    pub offset: u64,
    pub sema_offset: u64,
}

fn rd16(d: &[u8], o: usize) -> Option<u64> {
    d.get(o..o + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]) as u64)
}
fn rd32(d: &[u8], o: usize) -> Option<u64> {
    d.get(o..o + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64)
}
fn rd64(d: &[u8], o: usize) -> Option<u64> {
    d.get(o..o + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
}

struct Sec<'a> {
    name: &'a [u8],
    addr: u64,
    offset: u64,
    size: u64,
}

/// The probe sites of `elf` (a 64-bit little-endian executable or library) named
/// `provider:name`, in the order of the notes.
pub fn sites(elf: &[u8], provider: &str, name: &str) -> Result<Vec<Site>> {
    let bad = |m: &str| Error::invalid(format!("reading USDT notes: {m}"));
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return Err(bad("not a 64-bit little-endian ELF file"));
    }
    let (phoff, shoff) = (rd64(elf, 32).unwrap_or(0), rd64(elf, 40).unwrap_or(0));
    let (phnum, shnum) = (rd16(elf, 56).unwrap_or(0), rd16(elf, 60).unwrap_or(0));
    let shstrndx = rd16(elf, 62).unwrap_or(0);
    let hdr = |i: u64| -> Option<&[u8]> {
        let o = usize::try_from(shoff.checked_add(i.checked_mul(64)?)?).ok()?;
        elf.get(o..o + 64)
    };
    let strtab = hdr(shstrndx)
        .and_then(|h| Some((rd64(h, 24)? as usize, rd64(h, 32)? as usize)))
        .and_then(|(o, s)| elf.get(o..o.checked_add(s)?))
        .ok_or_else(|| bad("no section name table"))?;
    let mut secs = Vec::new();
    for i in 0..shnum {
        let h = hdr(i).ok_or_else(|| bad("section headers lie outside the file"))?;
        let name_off = rd32(h, 0).unwrap_or(0) as usize;
        let name = strtab
            .get(name_off..)
            .and_then(|s| s.iter().position(|&c| c == 0).map(|e| &s[..e]))
            .unwrap_or(b"");
        secs.push(Sec {
            name,
            addr: rd64(h, 16).unwrap_or(0),
            offset: rd64(h, 24).unwrap_or(0),
            size: rd64(h, 32).unwrap_or(0),
        });
    }
    let find = |n: &[u8]| secs.iter().find(|s| s.name == n);
    let notes = find(b".note.stapsdt").ok_or_else(|| {
        Error::new(
            crate::error::ErrorKind::NotFound,
            "the binary has no USDT probes (no .note.stapsdt section)",
        )
    })?;
    let base = find(b".stapsdt.base").map(|s| s.addr);
    // Executable segments: (file offset, vaddr, size) for address -> offset.
    let mut loads = Vec::new();
    for i in 0..phnum {
        let Some(p) = phoff
            .checked_add(i * 56)
            .and_then(|o| usize::try_from(o).ok())
            .and_then(|o| elf.get(o..o.checked_add(56)?))
        else {
            break;
        };
        if rd32(p, 0) == Some(1) {
            loads.push((
                rd64(p, 8).unwrap_or(0),
                rd64(p, 16).unwrap_or(0),
                rd64(p, 40).unwrap_or(0),
            ));
        }
    }
    let data = elf
        .get(notes.offset as usize..(notes.offset.saturating_add(notes.size)) as usize)
        .ok_or_else(|| bad(".note.stapsdt lies outside the file"))?;
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 12 <= data.len() {
        let (nsz, dsz, kind) = (
            rd32(data, at).unwrap_or(0) as usize,
            rd32(data, at + 4).unwrap_or(0) as usize,
            rd32(data, at + 8).unwrap_or(0),
        );
        let name_at = at + 12;
        let desc_at = name_at + nsz.div_ceil(4) * 4;
        let next = desc_at.saturating_add(dsz.div_ceil(4) * 4);
        if next > data.len() || next <= at {
            return Err(bad("truncated note"));
        }
        at = next;
        if kind != 3 || data.get(name_at..name_at + nsz) != Some(b"stapsdt\0") {
            continue;
        }
        let desc = &data[desc_at..desc_at + dsz];
        let (Some(pc), Some(note_base), Some(sema)) =
            (rd64(desc, 0), rd64(desc, 8), rd64(desc, 16))
        else {
            return Err(bad("note shorter than its three addresses"));
        };
        let mut strs = desc[24.min(desc.len())..].split(|&c| c == 0);
        let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or(b"")).into_owned();
        let (p, n, a) = (text(strs.next()), text(strs.next()), text(strs.next()));
        if p != provider || n != name {
            continue;
        }
        // A prelinked binary moved .stapsdt.base: the notes' addresses move with it.
        let shift = base.map_or(0, |b| b.wrapping_sub(note_base));
        let (addr, sema) = (
            pc.wrapping_add(shift),
            if sema == 0 {
                0
            } else {
                sema.wrapping_add(shift)
            },
        );
        let to_offset = |va: u64| {
            loads
                .iter()
                .find(|(_, v, s)| va >= *v && va < v.saturating_add(*s))
                .map(|(o, v, _)| va - v + o)
        };
        let offset = to_offset(addr).ok_or_else(|| {
            bad(&format!(
                "probe {p}:{n} at {addr:#x} is in no loadable segment"
            ))
        })?;
        // Semaphores live in .probes (writable data): their file offset through the section.
        let sema_offset = if sema == 0 {
            0
        } else {
            secs.iter()
                .find(|s| s.addr != 0 && sema >= s.addr && sema < s.addr.saturating_add(s.size))
                .map(|s| sema - s.addr + s.offset)
                .ok_or_else(|| {
                    bad(&format!(
                        "probe {p}:{n}: semaphore {sema:#x} is in no section"
                    ))
                })?
        };
        out.push(Site {
            note: Note {
                provider: p,
                name: n,
                addr,
                sema,
                args: a,
            },
            offset,
            sema_offset,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF with one PT_LOAD (vaddr 0x1000 at file offset 0x100, 0x1000 bytes), a
    /// .note.stapsdt with two notes, a .stapsdt.base and a .probes section.
    fn elf_with_notes(base_shift: u64) -> Vec<u8> {
        let mut names = b"\0.note.stapsdt\0.stapsdt.base\0.probes\0.shstrtab\0".to_vec();
        names.resize(64, 0);
        let note = |pc: u64, sema: u64, p: &str, n: &str, a: &str| {
            let mut desc = Vec::new();
            desc.extend(pc.to_le_bytes());
            desc.extend(0x1800u64.to_le_bytes()); // base as linked
            desc.extend(sema.to_le_bytes());
            for s in [p, n, a] {
                desc.extend(s.as_bytes());
                desc.push(0);
            }
            let mut v = Vec::new();
            v.extend(8u32.to_le_bytes());
            v.extend((desc.len() as u32).to_le_bytes());
            v.extend(3u32.to_le_bytes());
            v.extend(b"stapsdt\0");
            v.extend(&desc);
            while v.len() % 4 != 0 {
                v.push(0);
            }
            v
        };
        let mut notes = note(0x1010, 0x2002, "app", "tick", "-4@%edi 8@-8(%rbp)");
        notes.extend(note(0x1020, 0, "app", "other", ""));
        let mut elf = vec![0u8; 0x400];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[32..40].copy_from_slice(&64u64.to_le_bytes()); // phoff
        elf[56..58].copy_from_slice(&1u16.to_le_bytes());
        // PT_LOAD
        let ph = 64;
        elf[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes());
        elf[ph + 8..ph + 16].copy_from_slice(&0x100u64.to_le_bytes());
        elf[ph + 16..ph + 24].copy_from_slice(&0x1000u64.to_le_bytes());
        elf[ph + 40..ph + 48].copy_from_slice(&0x1000u64.to_le_bytes());
        let notes_at = 0x200usize;
        elf[notes_at..notes_at + notes.len()].copy_from_slice(&notes);
        let names_at = 0x300usize;
        elf[names_at..names_at + names.len()].copy_from_slice(&names);
        let shoff = elf.len();
        elf[40..48].copy_from_slice(&(shoff as u64).to_le_bytes());
        elf[60..62].copy_from_slice(&5u16.to_le_bytes());
        elf[62..64].copy_from_slice(&4u16.to_le_bytes());
        let sh = |name: u32, addr: u64, off: u64, size: u64| {
            let mut h = [0u8; 64];
            h[..4].copy_from_slice(&name.to_le_bytes());
            h[16..24].copy_from_slice(&addr.to_le_bytes());
            h[24..32].copy_from_slice(&off.to_le_bytes());
            h[32..40].copy_from_slice(&size.to_le_bytes());
            h
        };
        elf.extend([0u8; 64]);
        elf.extend(sh(1, 0, notes_at as u64, notes.len() as u64));
        elf.extend(sh(15, 0x1800 + base_shift, 0x180, 8));
        elf.extend(sh(29, 0x2000 + base_shift, 0x380, 16));
        elf.extend(sh(37, 0, names_at as u64, 64));
        elf
    }

    #[test]
    fn notes_give_file_offsets_and_semaphores() {
        let s = sites(&elf_with_notes(0), "app", "tick").unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].offset, 0x110);
        assert_eq!(s[0].note.args, "-4@%edi 8@-8(%rbp)");
        assert_eq!(s[0].sema_offset, 0x382);
        assert!(sites(&elf_with_notes(0), "app", "nope").unwrap().is_empty());
        // prelinked: .stapsdt.base moved by 0x10, and the probe with it
        let s = sites(&elf_with_notes(0x10), "app", "tick").unwrap();
        assert_eq!(s[0].note.addr, 0x1020);
        assert_eq!(s[0].offset, 0x120);
    }

    #[test]
    fn hostile_files_are_errors_not_panics() {
        let good = elf_with_notes(0);
        for cut in [10, 63, 100, 0x210, 0x3f0, good.len() - 1] {
            let _ = sites(&good[..cut], "app", "tick");
        }
        let mut bad = good.clone();
        bad[0x200..0x204].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(sites(&bad, "app", "tick").is_err());
        let e = sites(b"\x7fELF", "a", "b").unwrap_err().to_string();
        assert!(e.contains("not a 64-bit"), "{e}");
    }
}
