//! `extern` globals of an object, resolved the way libbpf resolves them, and the object
//! rewritten with their values so that aya (which knows no externs) loads it. Pure: the values
//! come from the caller (`bpf::externs` reads them from the running kernel).
//!
//! - `extern T NAME __kconfig` (DATASEC `.kconfig`): libbpf's "kconfig map". The values are
//!   laid out in a new read-only data section, `.rodata.kconfig`, the extern symbols become
//!   globals defined there, and the object's instructions then reach them as any `.rodata`
//!   global (aya freezes the map).
//! - `extern T NAME __ksym` (DATASEC `.ksyms`): a kernel variable typed by the kernel's BTF
//!   (`ld_imm64` with `BPF_PSEUDO_BTF_ID`), an untyped one by its address from kallsyms, a
//!   kernel function (kfunc) called with `BPF_PSEUDO_KFUNC_CALL` and its BTF id. The
//!   instructions are patched and their relocations dropped.
//! - Weak externs that do not resolve are 0 (`bpf_ksym_exists()` is then false).
//! - The `.kconfig` and `.ksyms` DATASECs are made loadable as libbpf makes them: sized, their
//!   variables allocated, kfunc entries replaced by a 4-byte dummy variable.
//! - Global functions with hidden visibility (`__hidden`, as `usdt.bpf.h`'s `bpf_usdt_arg`)
//!   become static in BTF, as libbpf makes them: the verifier then checks them in their
//!   caller's context (their pointer arguments are the caller's stack) instead of alone.

use super::elf::{self, Elf, NewSection};
use crate::btf::edit::BtfEdit;
use crate::btf::{self, Btf, TypeData};
use crate::error::{Error, Result};

/// The C type of a kconfig extern, as libbpf classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KconfigType {
    Bool,
    Char,
    /// `enum libbpf_tristate`: TRI_NO 0, TRI_YES 1, TRI_MODULE 2.
    Tristate,
    Int {
        size: usize,
        signed: bool,
    },
    CharArray(usize),
}

impl KconfigType {
    pub fn size(self) -> usize {
        match self {
            KconfigType::Bool | KconfigType::Char => 1,
            KconfigType::Tristate => 4,
            KconfigType::Int { size, .. } => size,
            KconfigType::CharArray(n) => n,
        }
    }

    fn align(self) -> usize {
        match self {
            KconfigType::CharArray(_) => 1,
            t => t.size(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExternKind {
    Kconfig(KconfigType),
    /// A kernel variable: typed (its BTF type is known) or untyped (`const void`).
    KsymVar {
        typed: bool,
    },
    /// A kernel function (kfunc).
    KsymFunc,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extern {
    pub name: String,
    pub weak: bool,
    pub kind: ExternKind,
    /// Its ELF symbol's index, and its VAR (or FUNC) type id in the object's BTF.
    sym: usize,
    btf_id: u32,
}

/// What an extern resolved to on this kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A kconfig value, encoded (`KconfigType::size()` bytes).
    Kconfig(Vec<u8>),
    /// A typed kernel variable or a kfunc: its id in the kernel's BTF.
    BtfId(u32),
    /// An untyped kernel symbol's address.
    Addr(u64),
    /// A weak extern that did not resolve.
    Zero,
}

const STB_WEAK: u8 = 2;
const BPF_PSEUDO_BTF_ID: u8 = 3;
const BPF_PSEUDO_KFUNC_CALL: u8 = 2;
/// What libbpf names the data section of kconfig externs' values (here a real ELF section).
pub const KCONFIG_SECTION: &str = ".rodata.kconfig";

fn kconfig_type(btf: &Btf, var_type: u32, name: &str) -> Result<KconfigType> {
    let bad = || {
        Error::invalid(format!(
            "extern (kconfig) {name}: its type {} is not one libbpf supports (bool, char, int types, enum libbpf_tristate, char[N])",
            btf.type_name(var_type)
        ))
    };
    let id = btf.resolve(var_type)?;
    let t = btf.get(id)?;
    Ok(match &t.data {
        TypeData::Int { encoding, .. } if encoding & btf::INT_BOOL != 0 => KconfigType::Bool,
        TypeData::Int { .. } if t.size_or_type == 1 => KconfigType::Char,
        TypeData::Int { encoding, .. } if matches!(t.size_or_type, 2 | 4 | 8) => KconfigType::Int {
            size: t.size_or_type as usize,
            signed: encoding & btf::INT_SIGNED != 0,
        },
        TypeData::Enum(_) if t.name == "libbpf_tristate" => KconfigType::Tristate,
        TypeData::Array { elem, nelems } if btf.size_of(*elem).ok() == Some(1) && *nelems > 0 => {
            KconfigType::CharArray(*nelems as usize)
        }
        _ => return Err(bad()),
    })
}

/// The externs of an object (empty for most).
pub fn find(elf: &Elf, btf: &Btf) -> Result<Vec<Extern>> {
    let mut out = Vec::new();
    for (_, t) in btf.iter() {
        let TypeData::DataSec(vars) = &t.data else {
            continue;
        };
        let ksyms = match t.name.as_str() {
            ".kconfig" => false,
            ".ksyms" => true,
            _ => continue,
        };
        for v in vars {
            let var = btf.get(v.type_id)?;
            let name = var.name.clone();
            let sym = elf
                .symbols
                .iter()
                .position(|s| s.name == name && s.section == elf::SHN_UNDEF)
                .ok_or_else(|| {
                    Error::invalid(format!("extern {name}: no undefined ELF symbol for it"))
                })?;
            let weak = elf.symbols[sym].bind == STB_WEAK;
            let kind = match (ksyms, var.kind) {
                (false, btf::KIND_VAR) => {
                    ExternKind::Kconfig(kconfig_type(btf, var.size_or_type, &name)?)
                }
                (true, btf::KIND_FUNC) => ExternKind::KsymFunc,
                (true, btf::KIND_VAR) => {
                    // `extern const void sym __ksym`: no type (void) means untyped.
                    let mut id = var.size_or_type;
                    while id != 0 {
                        let t = btf.get(id)?;
                        if !matches!(
                            t.kind,
                            btf::KIND_CONST
                                | btf::KIND_VOLATILE
                                | btf::KIND_TYPEDEF
                                | btf::KIND_RESTRICT
                                | btf::KIND_TYPE_TAG
                        ) {
                            break;
                        }
                        id = t.size_or_type;
                    }
                    ExternKind::KsymVar { typed: id != 0 }
                }
                _ => {
                    return Err(Error::invalid(format!(
                        "extern {name} in {}: a {} is not an extern libbpf resolves",
                        t.name,
                        btf::kind_name(var.kind)
                    )))
                }
            };
            out.push(Extern {
                name,
                weak,
                kind,
                sym,
                btf_id: v.type_id,
            });
        }
    }
    Ok(out)
}

/// Encodes a kconfig value as libbpf does (`y`/`n`/`m`, a quoted string, a number; `None`:
/// not set). Errors name the extern and what is wrong.
pub fn encode_kconfig(name: &str, t: KconfigType, text: Option<&str>) -> Result<Vec<u8>> {
    let bad = |why: String| Error::invalid(format!("extern (kconfig) {name}: {why}"));
    let mut out = vec![0u8; t.size()];
    let Some(text) = text else {
        return Ok(out);
    };
    match (text, t) {
        ("y" | "n" | "m", KconfigType::Bool) if text != "m" => out[0] = (text == "y") as u8,
        ("y" | "n" | "m", KconfigType::Tristate) => {
            out[0] = match text {
                "y" => 1,
                "m" => 2,
                _ => 0,
            }
        }
        ("y" | "n" | "m", KconfigType::Char) => out[0] = text.as_bytes()[0],
        (s, KconfigType::CharArray(n)) if s.starts_with('"') => {
            let inner = s
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .ok_or_else(|| bad(format!("value {s} is not a quoted string")))?;
            // Truncated to fit with its NUL, as libbpf does (with a warning).
            let take = inner.len().min(n - 1);
            if take < inner.len() {
                log::warn!(
                    "extern (kconfig) {name}: value {s} truncated to {} bytes",
                    n - 1
                );
            }
            out[..take].copy_from_slice(&inner.as_bytes()[..take]);
        }
        (s, _) if s.starts_with('"') => {
            return Err(bad(format!("string value {s} needs a char array")))
        }
        (s, t) => {
            let (neg, digits) = match s.strip_prefix('-') {
                Some(d) => (true, d),
                None => (false, s),
            };
            let v = match digits
                .strip_prefix("0x")
                .or_else(|| digits.strip_prefix("0X"))
            {
                Some(h) => u64::from_str_radix(h, 16),
                None => digits.parse::<u64>(),
            }
            .map_err(|_| bad(format!("value {s} is not y, n, m, a string or a number")))?;
            let v = if neg {
                (v as i64).wrapping_neg() as u64
            } else {
                v
            };
            let size = match t {
                KconfigType::Int { size, .. } => size,
                KconfigType::Char => 1,
                KconfigType::Bool if v <= 1 => 1,
                _ => return Err(bad(format!("value {s} does not fit its type"))),
            };
            let fits = match (t, size) {
                (_, 8) => true,
                (KconfigType::Int { signed: true, .. }, n) => {
                    let bits = 8 * n as u32;
                    let x = v as i64;
                    x >= -(1i64 << (bits - 1)) && x < (1i64 << (bits - 1))
                }
                (_, n) => v < (1u64 << (8 * n as u32)),
            };
            if !fits {
                return Err(bad(format!("value {s} does not fit in {size} bytes")));
            }
            out.copy_from_slice(&v.to_le_bytes()[..size]);
        }
    }
    Ok(out)
}

/// BTF ids of global functions with hidden visibility (libbpf makes them static).
pub fn hidden_functions(elf: &Elf, btf: &Btf) -> Vec<u32> {
    elf.symbols
        .iter()
        .filter(|s| s.kind == elf::STT_FUNC && s.bind != 0 && matches!(s.visibility, 1 | 2))
        .filter_map(|s| btf.find(btf::KIND_FUNC, &s.name))
        .collect()
}

/// The object with its externs resolved to `values` (one per extern, in `find`'s order) and
/// its hidden global functions made static.
pub fn link(bytes: &[u8], externs: &[Extern], values: &[Value]) -> Result<Vec<u8>> {
    if externs.len() != values.len() {
        return Err(Error::msg("extern values do not match the externs"));
    }
    let elf = Elf::parse(bytes)?;
    let btf_sec = elf
        .section(".BTF")
        .ok_or_else(|| Error::invalid("an object with externs has no .BTF"))?;
    let mut b = BtfEdit::parse(elf.section_data(btf_sec))?;
    let obj_btf = Btf::parse(elf.section_data(btf_sec))?;

    // .kconfig: values laid out in a new section, the extern symbols defined there.
    let mut data = Vec::new();
    let mut offsets = vec![None; externs.len()];
    for (i, (e, v)) in externs.iter().zip(values).enumerate() {
        if let (ExternKind::Kconfig(t), Value::Kconfig(bytes)) = (&e.kind, v) {
            while !data.len().is_multiple_of(t.align()) {
                data.push(0);
            }
            offsets[i] = Some(data.len());
            data.extend_from_slice(bytes);
        }
    }
    let kconfig_idx = elf.sections.len();
    let mut symtab = elf
        .sections
        .iter()
        .find(|s| s.name == ".symtab")
        .map(|s| elf.section_data(s).to_vec())
        .ok_or_else(|| Error::invalid("an object with externs has no .symtab"))?;
    for (e, off) in externs.iter().zip(&offsets) {
        let Some(off) = off else { continue };
        let at = e.sym * 24;
        let ent = symtab
            .get_mut(at..at + 24)
            .ok_or_else(|| Error::invalid(format!("extern {}: bad symbol index", e.name)))?;
        ent[4] = (1 << 4) | elf::STT_OBJECT; // GLOBAL OBJECT
        ent[6..8].copy_from_slice(&(kconfig_idx as u16).to_le_bytes());
        ent[8..16].copy_from_slice(&(*off as u64).to_le_bytes());
        let size = match &e.kind {
            ExternKind::Kconfig(t) => t.size() as u64,
            _ => 0,
        };
        ent[16..24].copy_from_slice(&size.to_le_bytes());
    }
    fix_datasecs(&mut b, &obj_btf, externs, &offsets, data.len())?;
    for id in hidden_functions(&elf, &obj_btf) {
        let info = b.word(id, 1)?;
        b.set_word(id, 1, info & !0xffff)?; // FUNC linkage: static
    }

    // .ksyms: instructions patched, their relocations dropped.
    let mut replace: Vec<(String, Vec<u8>)> = Vec::new();
    for rel in elf.sections.iter().filter(|s| s.kind == elf::SHT_REL) {
        let target = elf
            .sections
            .get(rel.info as usize)
            .ok_or_else(|| Error::invalid(format!("{}: bad target section", rel.name)))?;
        // Only code: `.rel.BTF` names the externs too (DATASEC entries), which loaders skip.
        if target.flags & elf::SHF_EXECINSTR == 0 {
            continue;
        }
        let mut code = elf.section_data(target).to_vec();
        let mut kept = Vec::new();
        let mut changed = false;
        for r in elf.section_data(rel).chunks_exact(16) {
            let info = u64::from_le_bytes(r[8..16].try_into().unwrap_or_default());
            let sym = (info >> 32) as usize;
            let Some(i) = externs
                .iter()
                .position(|e| e.sym == sym && !matches!(e.kind, ExternKind::Kconfig(_)))
            else {
                kept.extend_from_slice(r);
                continue;
            };
            let at = u64::from_le_bytes(r[..8].try_into().unwrap_or_default()) as usize;
            patch(&mut code, at, &externs[i], &values[i])?;
            changed = true;
        }
        if changed {
            replace.push((target.name.clone(), code));
            replace.push((rel.name.clone(), kept));
        }
    }
    replace.push((".symtab".into(), symtab));
    replace.push((".BTF".into(), b.finish()));
    let replace: Vec<(&str, Vec<u8>)> = replace
        .iter()
        .map(|(n, d)| (n.as_str(), d.clone()))
        .collect();
    let append = if offsets.iter().any(Option::is_some) {
        vec![NewSection {
            name: KCONFIG_SECTION.into(),
            kind: elf::SHT_PROGBITS,
            flags: elf::SHF_ALLOC,
            align: 8,
            data,
        }]
    } else {
        vec![]
    };
    Ok(elf.edited(&|_| None, &replace, &append))
}

/// Patches the instruction at byte `at` that refers to a kernel symbol.
fn patch(code: &mut [u8], at: usize, e: &Extern, v: &Value) -> Result<()> {
    let bad = || {
        Error::invalid(format!(
            "extern {}: relocation at {at} is not an instruction",
            e.name
        ))
    };
    let ins = code.get_mut(at..at + 8).ok_or_else(bad)?;
    let op = ins[0];
    if op == 0x18 {
        // ld_imm64: two slots; the second's imm is the high half (or the BTF object's fd).
        let (lo, hi, src) = match v {
            Value::BtfId(id) => (*id, 0u32, BPF_PSEUDO_BTF_ID),
            Value::Addr(a) => (*a as u32, (*a >> 32) as u32, 0),
            _ => (0, 0, 0),
        };
        let next = code.get_mut(at..at + 16).ok_or_else(bad)?;
        next[1] = (next[1] & 0x0f) | (src << 4);
        next[4..8].copy_from_slice(&lo.to_le_bytes());
        next[12..16].copy_from_slice(&hi.to_le_bytes());
        return Ok(());
    }
    if op == 0x85 {
        // call: a kfunc by its BTF id; an unresolved weak one stays 0 for the verifier to
        // drop as dead code, as libbpf leaves it.
        let id = match v {
            Value::BtfId(id) => *id,
            _ => 0,
        };
        ins[1] = (ins[1] & 0x0f) | (BPF_PSEUDO_KFUNC_CALL << 4);
        ins[2..4].copy_from_slice(&0u16.to_le_bytes());
        ins[4..8].copy_from_slice(&id.to_le_bytes());
        return Ok(());
    }
    Err(bad())
}

/// Sizes `.kconfig` and `.ksyms` and makes their variables loadable.
fn fix_datasecs(
    b: &mut BtfEdit,
    obj: &Btf,
    externs: &[Extern],
    offsets: &[Option<usize>],
    kconfig_size: usize,
) -> Result<()> {
    for (id, t) in obj.iter() {
        let TypeData::DataSec(vars) = &t.data else {
            continue;
        };
        match t.name.as_str() {
            ".kconfig" => {
                b.set_word(id, 2, kconfig_size as u32)?;
                for (i, v) in vars.iter().enumerate() {
                    let off = externs
                        .iter()
                        .zip(offsets)
                        .find(|(e, _)| e.btf_id == v.type_id)
                        .and_then(|(_, o)| *o)
                        .unwrap_or(0);
                    b.set_word(id, 4 + 3 * i, off as u32)?;
                    b.set_word(v.type_id, 3, 1)?; // VAR linkage: global allocated
                }
            }
            ".ksyms" => {
                let int = match obj
                    .iter()
                    .find(|(_, t)| t.kind == btf::KIND_INT && t.size_or_type == 4)
                {
                    Some((i, _)) => i,
                    None => {
                        let n = b.add_string("int");
                        b.push_type(&[n, (btf::KIND_INT as u32) << 24, 4, (1 << 24) | 32])
                    }
                };
                let dummy_name = b.add_string("dummy_ksym");
                let dummy = b.push_type(&[dummy_name, (btf::KIND_VAR as u32) << 24, int, 1]);
                for (i, v) in vars.iter().enumerate() {
                    let var = obj.get(v.type_id)?;
                    if var.kind == btf::KIND_FUNC {
                        b.set_word(id, 3 + 3 * i, dummy)?;
                        // FUNC linkage extern -> global; unnamed parameters of its proto
                        // named, as the kernel wants of a global function.
                        let info = b.word(v.type_id, 1)?;
                        b.set_word(v.type_id, 1, (info & !0xffff) | 1)?;
                        if let Ok(TypeData::Params(ps)) = obj.get(var.size_or_type).map(|p| &p.data)
                        {
                            for (j, (pname, ptype)) in ps.iter().enumerate() {
                                if pname.is_empty() && *ptype != 0 {
                                    b.set_word(var.size_or_type, 3 + 2 * j, dummy_name)?;
                                }
                            }
                        }
                    } else {
                        b.set_word(v.type_id, 2, int)?;
                        b.set_word(v.type_id, 3, 1)?;
                    }
                    b.set_word(id, 4 + 3 * i, 4 * i as u32)?;
                    b.set_word(id, 5 + 3 * i, 4)?;
                }
                b.set_word(id, 2, 4 * vars.len() as u32)?;
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kconfig_values_encode_as_libbpf_does() {
        let e = |t, s| encode_kconfig("CONFIG_X", t, s);
        assert_eq!(e(KconfigType::Bool, Some("y")).unwrap(), vec![1]);
        assert_eq!(e(KconfigType::Bool, Some("n")).unwrap(), vec![0]);
        assert!(e(KconfigType::Bool, Some("m")).is_err());
        assert_eq!(
            e(KconfigType::Tristate, Some("m")).unwrap(),
            vec![2, 0, 0, 0]
        );
        assert_eq!(e(KconfigType::Tristate, None).unwrap(), vec![0, 0, 0, 0]);
        assert_eq!(
            e(
                KconfigType::Int {
                    size: 4,
                    signed: false
                },
                Some("0x100")
            )
            .unwrap(),
            vec![0, 1, 0, 0]
        );
        assert_eq!(
            e(
                KconfigType::Int {
                    size: 2,
                    signed: true
                },
                Some("-2")
            )
            .unwrap(),
            vec![0xfe, 0xff]
        );
        let err = e(
            KconfigType::Int {
                size: 2,
                signed: false,
            },
            Some("70000"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("CONFIG_X") && err.contains("does not fit"),
            "{err}"
        );
        assert_eq!(
            e(KconfigType::CharArray(4), Some("\"abcdef\"")).unwrap(),
            b"abc\0"
        );
        assert!(e(
            KconfigType::Int {
                size: 4,
                signed: true
            },
            Some("\"s\"")
        )
        .is_err());
        assert!(e(
            KconfigType::Int {
                size: 4,
                signed: true
            },
            Some("zz")
        )
        .is_err());
    }
}
