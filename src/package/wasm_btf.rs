//! Kernel BTF inside a Wasm app: a custom section (`edge-ecli.btfgen`, the same tar.gz as the
//! package.json key), which engines ignore and ecli's one-layer OCI artifact carries as it is.
//! Also where a module keeps its BPF objects (in its data segments: `#embed`,
//! `include_bytes!`), so `pack --btfgen` knows what to cut the BTF for. Pure.

use crate::btf::hub::BtfArchive;
use crate::error::{Error, Result};

/// The custom section's name.
pub const SECTION: &str = "edge-ecli.btfgen";

const EM_BPF: u16 = 247;

fn bad(m: &str) -> Error {
    Error::invalid(format!("invalid Wasm module: {m}"))
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8> {
        let v = *self.b.get(self.pos).ok_or_else(|| bad("truncated"))?;
        self.pos += 1;
        Ok(v)
    }

    /// An unsigned (or, with `signed`, a signed: only its length matters) LEB128 number.
    fn leb(&mut self) -> Result<u64> {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let b = self.byte()?;
            if shift < 64 {
                v |= ((b & 0x7f) as u64) << shift;
            }
            shift += 7;
            if b & 0x80 == 0 {
                return Ok(v);
            }
            if shift > 70 {
                return Err(bad("LEB128 number too long"));
            }
        }
    }

    fn bytes(&mut self, n: u64) -> Result<&'a [u8]> {
        let end = (self.pos as u64)
            .checked_add(n)
            .filter(|&e| e <= self.b.len() as u64)
            .ok_or_else(|| bad("a length runs past the end"))? as usize;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// A constant expression (a data segment's offset), up to its `end`.
    fn const_expr(&mut self) -> Result<()> {
        loop {
            match self.byte()? {
                0x0b => return Ok(()),
                0x41 | 0x42 | 0x23 => {
                    self.leb()?;
                }
                0x6a..=0x6c | 0x7c..=0x7e => {} // extended-const arithmetic
                op => {
                    return Err(bad(&format!(
                        "unexpected opcode {op:#x} in a constant expression"
                    )))
                }
            }
        }
    }
}

/// A section: its id, where the whole section is, where its payload is.
type Section = (u8, std::ops::Range<usize>, std::ops::Range<usize>);

/// The sections of a module.
fn sections(m: &[u8]) -> Result<Vec<Section>> {
    if m.len() < 8 || &m[..4] != b"\0asm" {
        return Err(bad("no Wasm magic"));
    }
    let mut r = Reader { b: m, pos: 8 };
    let mut out = Vec::new();
    while r.pos < m.len() {
        let start = r.pos;
        let id = r.byte()?;
        let len = r.leb()?;
        let body = r.pos;
        r.bytes(len)?;
        out.push((id, start..r.pos, body..r.pos));
    }
    Ok(out)
}

fn custom_name(payload: &[u8]) -> Result<(&[u8], &[u8])> {
    let mut r = Reader { b: payload, pos: 0 };
    let n = r.leb()?;
    let name = r.bytes(n)?;
    Ok((name, &payload[r.pos..]))
}

/// The kernel BTF set a module carries, if it has one.
pub fn carried(module: &[u8]) -> Result<Option<BtfArchive>> {
    for (id, _, body) in sections(module)? {
        if id != 0 {
            continue;
        }
        let (name, data) = custom_name(&module[body])?;
        if name == SECTION.as_bytes() {
            return BtfArchive::tar_gz(data.to_vec())
                .map(Some)
                .map_err(|e| e.context(format!("Wasm section {SECTION}")));
        }
    }
    Ok(None)
}

/// The module with `set` as its BTF section (replacing one it had), appended at the end.
pub fn with_btf(module: &[u8], set: &BtfArchive) -> Result<Vec<u8>> {
    let mut out = module[..8].to_vec();
    for (id, whole, body) in sections(module)? {
        if id == 0 && custom_name(&module[body])?.0 == SECTION.as_bytes() {
            continue;
        }
        out.extend_from_slice(&module[whole]);
    }
    let mut payload = leb(SECTION.len() as u64);
    payload.extend_from_slice(SECTION.as_bytes());
    payload.extend_from_slice(set.bytes());
    out.push(0);
    out.extend(leb(payload.len() as u64));
    out.extend(payload);
    Ok(out)
}

fn leb(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

/// The BPF ELF objects (64-bit, little-endian, EM_BPF) in the module's data segments.
pub fn bpf_objects(module: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut objects = Vec::new();
    for (id, _, body) in sections(module)? {
        if id != 11 {
            continue;
        }
        let mut r = Reader {
            b: &module[body],
            pos: 0,
        };
        for _ in 0..r.leb()? {
            match r.leb()? {
                0 => r.const_expr()?,
                1 => {}
                2 => {
                    r.leb()?;
                    r.const_expr()?;
                }
                f => return Err(bad(&format!("data segment flags {f}"))),
            }
            let n = r.leb()?;
            let seg = r.bytes(n)?;
            objects.extend(elf_objects(seg));
        }
    }
    Ok(objects)
}

/// ELF images of BPF objects inside `seg`: an ELF header whose section table ends inside it.
fn elf_objects(seg: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = seg[at..].windows(4).position(|w| w == b"\x7fELF") {
        let start = at + i;
        let h = &seg[start..];
        at = start + 4;
        if h.len() < 64 || h[4] != 2 || h[5] != 1 || u16::from_le_bytes([h[18], h[19]]) != EM_BPF {
            continue;
        }
        let shoff = u64::from_le_bytes(h[0x28..0x30].try_into().unwrap());
        let (entsize, num) = (
            u16::from_le_bytes([h[0x3a], h[0x3b]]) as u64,
            u16::from_le_bytes([h[0x3c], h[0x3d]]) as u64,
        );
        let Some(end) = shoff
            .checked_add(entsize * num)
            .filter(|&e| e <= h.len() as u64)
        else {
            continue;
        };
        out.push(h[..end as usize].to_vec());
        at = start + end as usize;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::hub::BtfKey;

    /// (module (memory 1) (data (i32.const 16) "..ELF..") (data "passive"))
    fn module(seg: &[u8]) -> Vec<u8> {
        let mut data = vec![2u8]; // two segments
        data.extend([0, 0x41, 16, 0x0b]); // active, offset i32.const 16
        data.extend(leb(seg.len() as u64));
        data.extend_from_slice(seg);
        data.extend([1, 3, b'a', b'b', b'c']); // passive
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        m.extend([5, 3, 1, 0, 1]); // memory section: one memory, min 1
        m.push(11);
        m.extend(leb(data.len() as u64));
        m.extend(data);
        m
    }

    fn bpf_elf(extra: usize) -> Vec<u8> {
        let mut e = vec![0u8; 64];
        e[..6].copy_from_slice(b"\x7fELF\x02\x01");
        e[18..20].copy_from_slice(&EM_BPF.to_le_bytes());
        e[0x28..0x30].copy_from_slice(&(64u64 + extra as u64).to_le_bytes());
        e[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        e[0x3c..0x3e].copy_from_slice(&2u16.to_le_bytes());
        e.resize(64 + extra + 128, 0xaa);
        e
    }

    #[test]
    fn carries_a_btf_section_and_finds_embedded_objects() {
        let obj = bpf_elf(100);
        let mut seg = b"prefix\x7fELFnot-an-object".to_vec();
        seg.extend(&obj);
        seg.extend(b"suffix");
        let m = module(&seg);
        assert_eq!(bpf_objects(&m).unwrap(), vec![obj.clone()]);
        assert!(carried(&m).unwrap().is_none());
        let k = BtfKey::from_path("debian/12/x86_64/6.1.0.btf").unwrap();
        let set = BtfArchive::build(&[(k.clone(), vec![1, 2, 3])]).unwrap();
        let with = with_btf(&m, &set).unwrap();
        let got = carried(&with).unwrap().expect("the section");
        assert_eq!(got.find(&k).unwrap(), Some(vec![1, 2, 3]));
        // replacing keeps one section, and the module's own sections unchanged
        let set2 = BtfArchive::build(&[(k.clone(), vec![9])]).unwrap();
        let again = with_btf(&with, &set2).unwrap();
        assert_eq!(
            again.len(),
            with.len() - set.bytes().len() + set2.bytes().len()
        );
        assert_eq!(
            carried(&again).unwrap().unwrap().find(&k).unwrap(),
            Some(vec![9])
        );
        assert_eq!(bpf_objects(&again).unwrap(), vec![obj]);
        for cut in 0..with.len() {
            let _ = carried(&with[..cut]);
            let _ = bpf_objects(&with[..cut]);
        }
        assert!(carried(b"not wasm").is_err());
    }
}
