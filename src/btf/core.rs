//! The part of the kernel's BTF that one object needs, cut out before aya sees it.
//!
//! aya parses every type it is given: the whole kernel BTF is ~150k types, 40-50 ms and tens of
//! MB of heap, most of a tool's start-up. CO-RE relocations and BTF attach points only look at
//! types found by name and at what those reach, so edge-ecli hands aya a copy in which every
//! other type is a 12-byte placeholder. Type ids and string offsets are unchanged, so relocated
//! instructions, `bpf_core_type_id_kernel` and attach ids are exactly what the full BTF gives.
//! Pure code: no syscalls.

use crate::btf::raw::{word, RawBtf};
use crate::btf::{
    Btf, KIND_ARRAY, KIND_CONST, KIND_DATASEC, KIND_DECL_TAG, KIND_FUNC, KIND_FUNC_PROTO, KIND_PTR,
    KIND_RESTRICT, KIND_STRUCT, KIND_TYPEDEF, KIND_TYPE_TAG, KIND_UNION, KIND_VAR, KIND_VOLATILE,
};
use crate::error::{Error, Result};

/// What an object needs from the kernel's BTF.
#[derive(Debug, PartialEq)]
pub enum Needs {
    Nothing,
    /// Types with these names (compared without a `___flavor` suffix) and what they reach.
    Names(Vec<String>),
    /// A relocation on an anonymous type: candidates cannot be found by name.
    Everything,
}

impl Needs {
    /// Adds a type name that must be kept (an attach point such as `btf_trace_sched_switch`).
    pub fn add(&mut self, name: String) {
        match self {
            Needs::Nothing => *self = Needs::Names(vec![name]),
            Needs::Names(v) if !v.contains(&name) => v.push(name),
            _ => {}
        }
    }
}

// bpf_core_relo_kind: TYPE_ID_LOCAL needs no kernel type.
pub const CORE_TYPE_ID_LOCAL: u32 = 6;
const CORE_RELO_SIZE: usize = 16;

/// A type name without its `___flavor` suffix.
pub fn flavorless(name: &str) -> &str {
    name.split_once("___").map_or(name, |(base, _)| base)
}

/// One CO-RE relocation of an object's `.BTF.ext` (`struct bpf_core_relo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreRelo {
    pub insn_off: u32,
    /// The local (object) type the relocation is rooted at.
    pub type_id: u32,
    /// Offset of the access string ("0:1:2") in the object's BTF strings.
    pub access: u32,
    pub kind: u32,
}

/// Every CO-RE relocation in an object's `.BTF.ext`, bounds-checked.
pub fn core_relos(ext: &[u8]) -> Result<Vec<CoreRelo>> {
    let bad = |m: &str| Error::invalid(format!("bad BTF.ext: {m}"));
    let rd = |o: usize| -> Result<u32> {
        ext.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| bad("truncated"))
    };
    let hdr_len = rd(4)? as usize;
    if hdr_len < 32 {
        return Ok(Vec::new()); // written before CO-RE existed
    }
    let (off, len) = (rd(24)? as usize, rd(28)? as usize);
    if len == 0 {
        return Ok(Vec::new());
    }
    let start = hdr_len
        .checked_add(off)
        .ok_or_else(|| bad("CO-RE part out of range"))?;
    let end = start
        .checked_add(len)
        .filter(|&e| e <= ext.len())
        .ok_or_else(|| bad("CO-RE part out of range"))?;
    let rec_size = rd(start)? as usize;
    if rec_size < CORE_RELO_SIZE {
        return Err(bad("CO-RE record size below 16"));
    }
    let mut out = Vec::new();
    let mut p = start + 4;
    while p + 8 <= end {
        let n = rd(p + 4)? as usize;
        let recs = p + 8;
        let block_end = n
            .checked_mul(rec_size)
            .and_then(|b| recs.checked_add(b))
            .filter(|&e| e <= end)
            .ok_or_else(|| bad("CO-RE block overflows its part"))?;
        for r in (recs..block_end).step_by(rec_size) {
            out.push(CoreRelo {
                insn_off: rd(r)?,
                type_id: rd(r + 4)?,
                access: rd(r + 8)?,
                kind: rd(r + 12)?,
            });
        }
        p = block_end;
    }
    Ok(out)
}

/// The root types of the CO-RE relocations in an object's `.BTF.ext`; `local` is its `.BTF`.
pub fn core_needs(local: &Btf, ext: &[u8]) -> Result<Needs> {
    let mut needs = Needs::Nothing;
    for r in core_relos(ext)? {
        if r.kind == CORE_TYPE_ID_LOCAL {
            continue;
        }
        let t = local.get(r.type_id)?;
        let name = flavorless(&t.name);
        // aya matches these by an empty name (it clears pointer names, which bpf-linker
        // sets for Rust): every anonymous type of the kind is a candidate.
        if name.is_empty() || t.kind == KIND_PTR {
            return Ok(Needs::Everything);
        }
        needs.add(name.to_string());
    }
    Ok(needs)
}

/// Does the object test whether the kernel has type `name` (`bpf_core_type_exists()`, or
/// `bpf_core_type_matches()`)? How libbpf-tools' compat.bpf.h chooses between a ring buffer
/// and a perf event array: `struct bpf_ringbuf`.
pub fn checks_type_exists(local: &Btf, ext: &[u8], name: &str) -> Result<bool> {
    const TYPE_EXISTS: u32 = 8;
    const TYPE_MATCHES: u32 = 12;
    for r in core_relos(ext)? {
        if matches!(r.kind, TYPE_EXISTS | TYPE_MATCHES)
            && flavorless(&local.get(r.type_id)?.name) == name
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether the string at `off` is `w`, or `w` followed by a `___flavor` suffix.
fn name_matches(strings: &[u8], off: u32, wanted: &[String]) -> bool {
    let Some(s) = strings.get(off as usize..) else {
        return false;
    };
    wanted.iter().any(|w| {
        let w = w.as_bytes();
        s.starts_with(w)
            && matches!(
                s.get(w.len()..),
                Some([0, ..]) | Some([b'_', b'_', b'_', ..])
            )
    })
}

/// Raw BTF holding the types named in `wanted` and everything a relocation or attach can reach
/// from them; every other type becomes an anonymous `void *`.
///
/// From a kept type, members, array elements, typedefs, qualifiers and function prototypes are
/// kept whole. A struct or union reached through a pointer is kept with no members: CO-RE
/// compares what pointers point to only by kind, and never walks members through a pointer.
/// (One function: the cut is a single walk over the kernel's type section, kept together so
/// ids and offsets provably stay put.)
pub fn minimal_target(kernel: &[u8], wanted: &[String]) -> Result<Vec<u8>> {
    let bad = |m: String| Error::invalid(format!("bad BTF: {m}"));
    // Pass 1: where each type starts, and the roots.
    let raw = RawBtf::parse(kernel)?;
    let strings = raw.strings;
    let n = raw.len() as usize;
    let roots: Vec<u32> = (1..=n as u32)
        .filter(|&id| {
            let name_off = word(raw.ty(id), 0);
            name_off != 0 && name_matches(strings, name_off, wanted)
        })
        .collect();
    let ty = |id: u32| raw.ty(id);

    // Pass 2: what the roots reach. 1: shallow (a composite kept as a stub), 2: whole.
    let mut state = vec![0u8; n + 1];
    let mut stack: Vec<(u32, bool)> = Vec::new();
    let visit = |id: u32, deep: bool, state: &mut Vec<u8>, stack: &mut Vec<(u32, bool)>| {
        if id as usize > n {
            return Err(bad(format!("type id {id} out of range (there are {n})")));
        }
        let want = if deep { 2 } else { 1 };
        if id != 0 && state[id as usize] < want {
            state[id as usize] = want;
            stack.push((id, deep));
        }
        Ok(())
    };
    for &r in &roots {
        visit(r, true, &mut state, &mut stack)?;
    }
    while let Some((id, deep)) = stack.pop() {
        let t = ty(id);
        let info = word(t, 4);
        let (kind, vlen) = ((info >> 24 & 0x1f) as u8, (info & 0xffff) as usize);
        let target = word(t, 8);
        let entries = |size: usize, at: usize| (0..vlen).map(move |i| word(t, 12 + i * size + at));
        match kind {
            KIND_STRUCT | KIND_UNION if deep => {
                for m in entries(12, 4) {
                    visit(m, true, &mut state, &mut stack)?;
                }
            }
            KIND_PTR => visit(target, false, &mut state, &mut stack)?,
            KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG
            | KIND_DECL_TAG | KIND_FUNC | KIND_VAR => visit(target, deep, &mut state, &mut stack)?,
            KIND_ARRAY => {
                visit(word(t, 12), deep, &mut state, &mut stack)?;
                visit(word(t, 16), deep, &mut state, &mut stack)?;
            }
            KIND_FUNC_PROTO => {
                visit(target, deep, &mut state, &mut stack)?;
                for p in entries(8, 4) {
                    visit(p, deep, &mut state, &mut stack)?;
                }
            }
            KIND_DATASEC => {
                for v in entries(12, 0) {
                    visit(v, deep, &mut state, &mut stack)?;
                }
            }
            _ => {}
        }
    }

    // Pass 3: ids up to the last kept one, then the strings unchanged.
    let last = state.iter().rposition(|&s| s != 0).unwrap_or(0);
    let mut out = vec![0u8; 24];
    for id in 1..=last as u32 {
        let t = ty(id);
        let kind = (word(t, 4) >> 24 & 0x1f) as u8;
        match state[id as usize] {
            0 => {
                // anonymous `void *`: never a candidate, no allocation in aya's parser
                out.extend_from_slice(&0u32.to_le_bytes());
                out.extend_from_slice(&((KIND_PTR as u32) << 24).to_le_bytes());
                out.extend_from_slice(&0u32.to_le_bytes());
            }
            1 if kind == KIND_STRUCT || kind == KIND_UNION => {
                out.extend_from_slice(&t[..4]);
                out.extend_from_slice(&(word(t, 4) & !0xffff).to_le_bytes());
                out.extend_from_slice(&t[8..12]);
            }
            _ => out.extend_from_slice(t),
        }
    }
    let type_len = (out.len() - 24) as u32;
    out.extend_from_slice(strings);
    let hdr: [u32; 5] = [24, 0, type_len, type_len, strings.len() as u32];
    out[..4].copy_from_slice(&[0x9f, 0xeb, 1, 0]);
    for (i, v) in hdr.iter().enumerate() {
        out[4 + i * 4..8 + i * 4].copy_from_slice(&v.to_le_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::testutil::BtfBuilder;
    use crate::btf::{self, KIND_ENUM, KIND_INT};

    /// 1 int, 2 struct task (pid, *mm, inner by value), 3 *mm, 4 struct mm (big), 5 struct inner,
    /// 6 unrelated struct, 7 typedef task_t, 8 struct task___v2 flavour, 9 enum state.
    fn kernel() -> Vec<u8> {
        let mut b = BtfBuilder::new();
        b.add("int", KIND_INT, 0, false, 4, &[(1 << 24) | 32]);
        let (pid, mm, inner, x) = (b.s("pid"), b.s("mm"), b.s("inner"), b.s("x"));
        b.add(
            "task",
            KIND_STRUCT,
            3,
            false,
            24,
            &[pid, 1, 0, mm, 3, 64, inner, 5, 128],
        );
        b.add("", KIND_PTR, 0, false, 4, &[]);
        b.add("mm", KIND_STRUCT, 1, false, 4, &[x, 1, 0]);
        b.add("inner", KIND_STRUCT, 1, false, 4, &[x, 1, 0]);
        b.add("unrelated", KIND_STRUCT, 1, false, 4, &[x, 1, 0]);
        b.add("task_t", KIND_TYPEDEF, 0, false, 2, &[]);
        b.add("task___v2", KIND_STRUCT, 1, false, 4, &[pid, 1, 0]);
        let run = b.s("RUNNING");
        b.add("state", KIND_ENUM, 1, false, 4, &[run, 7]);
        b.build()
    }

    fn members(b: &Btf, id: u32) -> usize {
        match &b.get(id).unwrap().data {
            btf::TypeData::Members(m) => m.len(),
            _ => panic!("type {id} is not a struct"),
        }
    }

    #[test]
    fn keeps_ids_names_and_what_the_roots_reach() {
        let min = minimal_target(&kernel(), &["task".into()]).unwrap();
        let b = Btf::parse(&min).unwrap();
        // the flavoured task___v2 is id 8, so ids 1..=8 are all there, unchanged
        assert_eq!(b.len(), 9);
        assert_eq!(b.find(KIND_STRUCT, "task"), Some(2));
        assert_eq!(members(&b, 2), 3);
        assert_eq!(members(&b, 5), 1, "a struct held by value is kept whole");
        assert_eq!(b.get(4).unwrap().name, "mm");
        assert_eq!(members(&b, 4), 0, "a struct behind a pointer is a stub");
        assert_eq!(b.size_of(4).unwrap(), 4);
        assert_eq!(members(&b, 8), 1);
        let gone = b.get(6).unwrap();
        assert_eq!((gone.kind, gone.name.as_str()), (KIND_PTR, ""));
        assert_eq!(
            b.get(7).unwrap().kind,
            KIND_PTR,
            "task_t is not named, so dropped"
        );
    }

    #[test]
    fn names_match_exactly_or_up_to_a_flavour() {
        let k = kernel();
        let b = Btf::parse(&minimal_target(&k, &["state".into()]).unwrap()).unwrap();
        assert_eq!(b.find(KIND_ENUM, "state"), Some(9));
        assert_eq!(b.get(2).unwrap().kind, KIND_PTR);
        // "tas" is a prefix of "task", not a name
        let b = Btf::parse(&minimal_target(&k, &["tas".into()]).unwrap()).unwrap();
        assert_eq!(b.len(), 1);
        let b = Btf::parse(&minimal_target(&k, &["task_t".into()]).unwrap()).unwrap();
        assert_eq!(members(&b, 2), 3, "a typedef's target is kept whole");
    }

    #[test]
    fn hostile_kernel_btf_is_an_error_not_a_panic() {
        let good = kernel();
        for cut in 0..good.len() {
            let mut d = good[..cut].to_vec();
            if d.len() >= 24 {
                // keep the header consistent with the cut so the type walk itself is tested
                let tl = (cut as u32).saturating_sub(24).min(word(&good, 12));
                d[12..16].copy_from_slice(&tl.to_le_bytes());
                d[16..20].copy_from_slice(&tl.to_le_bytes());
                d[20..24].copy_from_slice(&0u32.to_le_bytes());
            }
            let _ = minimal_target(&d, &["task".into()]);
        }
        let mut b = BtfBuilder::new();
        b.add("task", KIND_TYPEDEF, 0, false, 99, &[]);
        let e = minimal_target(&b.build(), &["task".into()]).unwrap_err();
        assert!(e.to_string().contains("type id 99 out of range"), "{e}");
        let mut b = BtfBuilder::new();
        b.add("task", KIND_STRUCT, 3, false, 4, &[]);
        assert!(minimal_target(&b.build(), &["task".into()]).is_err());
        // a pointer loop ends
        let mut b = BtfBuilder::new();
        b.add("task", KIND_PTR, 0, false, 1, &[]);
        assert!(minimal_target(&b.build(), &["task".into()]).is_ok());
    }

    #[test]
    fn finds_core_roots_in_btf_ext() {
        let mut b = BtfBuilder::new();
        b.add("task___x", KIND_STRUCT, 0, false, 4, &[]); // 1
        b.add("", KIND_STRUCT, 0, false, 4, &[]); // 2
        b.add("*const task", KIND_PTR, 0, false, 1, &[]); // 3, as bpf-linker names them
        b.add("___x", KIND_STRUCT, 0, false, 4, &[]); // 4
        let sec = b.s("tp/x");
        let local = Btf::parse(&b.build()).unwrap();
        let ext = |relos: &[(u32, u32)]| {
            let mut w: Vec<u32> = vec![0x0001_eb9f, 32, 0, 0, 0, 0, 0, 0];
            let body = [vec![16, sec, relos.len() as u32], {
                relos
                    .iter()
                    .flat_map(|&(id, kind)| [0, id, 0, kind])
                    .collect()
            }]
            .concat();
            w[7] = body.len() as u32 * 4;
            w.extend(body);
            w.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()
        };
        assert_eq!(
            core_needs(&local, &ext(&[(1, 0), (1, 2)])).unwrap(),
            Needs::Names(vec!["task".into()])
        );
        assert_eq!(core_needs(&local, &ext(&[(2, 6)])).unwrap(), Needs::Nothing);
        for anonymous in [2, 3, 4] {
            let got = core_needs(&local, &ext(&[(1, 0), (anonymous, 8)])).unwrap();
            assert_eq!(got, Needs::Everything, "root {anonymous}");
        }
        assert!(core_needs(&local, &ext(&[(9, 0)])).is_err());
        let mut short = ext(&[(1, 0)]);
        short.truncate(40);
        assert!(core_needs(&local, &short).is_err());
    }
}
