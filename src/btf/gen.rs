//! The kernel BTF a package carries for a kernel without its own: the types and members the
//! objects' CO-RE relocations use, and nothing else, renumbered, as `bpftool gen
//! min_core_btf` makes it (a few hundred bytes where the whole BTF is megabytes).
//!
//! For each relocation the first kernel type that matches it (by name, kind and, for field
//! accesses, the member path: anonymous structs and unions are searched as libbpf does) is
//! kept: the members on the path, the types they have (through typedefs, qualifiers and
//! arrays, not through pointers: a pointer to a type no relocation uses becomes `void *`), a
//! whole enum for enum value relocations, and a struct with no members for type-based ones.
//! Sizes and member offsets are the kernel's, so the loader relocates to exactly what the
//! whole BTF gives. Type ids are not the kernel's: `bpf_core_type_id_kernel` and BTF attach
//! points need the kernel's own BTF anyway. Pure.

use std::collections::{HashMap, HashSet};

use crate::btf::core::{core_relos, flavorless, CORE_TYPE_ID_LOCAL};
use crate::btf::raw::{word, RawBtf};
use crate::btf::{
    Btf, TypeData, KIND_ARRAY, KIND_CONST, KIND_DATASEC, KIND_DECL_TAG, KIND_ENUM, KIND_ENUM64,
    KIND_FUNC, KIND_FUNC_PROTO, KIND_PTR, KIND_RESTRICT, KIND_STRUCT, KIND_TYPEDEF, KIND_TYPE_TAG,
    KIND_UNION, KIND_VAR, KIND_VOLATILE,
};
use crate::error::{Error, Result};

// bpf_core_relo_kind
const FIELD_LAST: u32 = 5; // FIELD_BYTE_OFFSET..=FIELD_RSHIFT_U64
const TYPE_ID_TARGET: u32 = 7;
const TYPE_EXISTS: u32 = 8;
const TYPE_SIZE: u32 = 9;
const ENUMVAL_EXISTS: u32 = 10;
const ENUMVAL_VALUE: u32 = 11;
const TYPE_MATCHES: u32 = 12;

/// What one object brings: its parsed BTF, the string section of its raw `.BTF` (access
/// strings live there) and its `.BTF.ext`.
pub struct ObjectCore<'a> {
    pub btf: &'a Btf,
    pub strings: &'a [u8],
    pub ext: &'a [u8],
}

/// One step of a field access, as libbpf's high-level spec has it: a named member (found
/// through anonymous members in the target), or an array index.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index,
}

/// Types and members kept. A type's state: 1 kept, 2 kept with what its pointers reach.
#[derive(Default, Clone)]
struct Marks {
    types: HashMap<u32, u8>,
    members: HashSet<(u32, usize)>,
}

impl Marks {
    /// Keeps `id` and what a relocation on it can look at (bpftool's `btfgen_mark_type`):
    /// typedefs, qualifiers, array elements, prototypes; pointees only with `follow`; a
    /// struct's members only when `deep` (TYPE_MATCHES compares them).
    fn mark(&mut self, k: &RawBtf, id: u32, follow: bool, deep: bool) -> Result<()> {
        let mut stack = vec![(id, follow, deep)];
        while let Some((id, follow, deep)) = stack.pop() {
            if id == 0 {
                continue;
            }
            k.checked(id)?;
            let want = 1 + follow as u8 + deep as u8;
            let e = self.types.entry(id).or_insert(0);
            if *e >= want {
                continue;
            }
            *e = want;
            let t = k.ty(id);
            let vlen = k.vlen(id);
            let same = |x: u32| (x, follow, deep);
            match k.kind(id) {
                // what a pointer points to is compared by name and kind only
                KIND_PTR if follow => stack.push((k.target(id), follow, false)),
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG
                | KIND_FUNC | KIND_VAR | KIND_DECL_TAG => stack.push(same(k.target(id))),
                KIND_ARRAY => stack.extend([same(word(t, 12)), same(word(t, 16))]),
                KIND_FUNC_PROTO => {
                    stack.push(same(k.target(id)));
                    stack.extend((0..vlen).map(|i| same(word(t, 12 + 8 * i + 4))));
                }
                KIND_STRUCT | KIND_UNION if deep => {
                    for i in 0..vlen {
                        self.members.insert((id, i));
                        stack.push(same(k.member(id, i).1));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn merge(&mut self, other: Marks) {
        for (id, s) in other.types {
            let e = self.types.entry(id).or_insert(0);
            *e = (*e).max(s);
        }
        self.members.extend(other.members);
    }
}

fn kinds_match(local: u8, target: u8) -> bool {
    let norm = |k| if k == KIND_ENUM64 { KIND_ENUM } else { k };
    norm(local) == norm(target)
}

/// The kernel types a relocation rooted at a type named `name` of kind `kind` may use.
fn candidates<'b>(k: &'b RawBtf, name: &'b str, kind: u8) -> impl Iterator<Item = u32> + 'b {
    (1..=k.len()).filter(move |&id| {
        kinds_match(kind, k.kind(id))
            && std::str::from_utf8(k.name(id)).is_ok_and(|n| flavorless(n) == name)
    })
}

/// The path to member `name` of composite `id`, through anonymous members: (struct, index).
fn find_member(
    k: &RawBtf,
    id: u32,
    name: &[u8],
    depth: usize,
) -> Result<Option<Vec<(u32, usize)>>> {
    if depth > 32 {
        return Ok(None);
    }
    for i in 0..k.vlen(id) {
        let (name_off, mtype, _) = k.member(id, i);
        let mname = k.str_at(name_off);
        if mname == name {
            return Ok(Some(vec![(id, i)]));
        }
        if mname.is_empty() {
            let inner = k.skip_mods(mtype)?;
            if matches!(k.kind(inner), KIND_STRUCT | KIND_UNION) {
                if let Some(mut p) = find_member(k, inner, name, depth + 1)? {
                    p.insert(0, (id, i));
                    return Ok(Some(p));
                }
            }
        }
    }
    Ok(None)
}

/// The high-level access spec of a field relocation on the object's side.
fn local_steps(local: &Btf, root: u32, access: &[u32]) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    let mut t = local.resolve(root)?;
    for &i in access.iter().skip(1) {
        match &local.get(t)?.data {
            TypeData::Members(ms) => {
                let m = ms.get(i as usize).ok_or_else(|| {
                    Error::invalid(format!("CO-RE access index {i} beyond the members"))
                })?;
                if !m.name.is_empty() {
                    steps.push(Step::Field(m.name.clone()));
                }
                t = local.resolve(m.type_id)?;
            }
            TypeData::Array { elem, .. } => {
                steps.push(Step::Index);
                t = local.resolve(*elem)?;
            }
            _ => {
                return Err(Error::invalid(
                    "CO-RE access through a type that is neither a struct, a union nor an array",
                ))
            }
        }
    }
    Ok(steps)
}

/// Marks what a field access needs of candidate `cand`, if it matches.
fn match_field(k: &RawBtf, cand: u32, steps: &[Step]) -> Result<Option<Marks>> {
    let mut m = Marks::default();
    m.mark(k, cand, false, false)?;
    let mut t = k.skip_mods(cand)?;
    for s in steps {
        match s {
            Step::Field(name) => {
                if !matches!(k.kind(t), KIND_STRUCT | KIND_UNION) {
                    return Ok(None);
                }
                let Some(path) = find_member(k, t, name.as_bytes(), 0)? else {
                    return Ok(None);
                };
                let mut last = 0;
                for (sid, i) in path {
                    m.members.insert((sid, i));
                    last = k.member(sid, i).1;
                    m.mark(k, last, false, false)?;
                }
                t = k.skip_mods(last)?;
            }
            Step::Index => {
                if k.kind(t) != KIND_ARRAY {
                    return Ok(None);
                }
                t = k.skip_mods(word(k.ty(t), 12))?;
            }
        }
    }
    Ok(Some(m))
}

fn parse_access(s: &[u8]) -> Result<Vec<u32>> {
    let text =
        std::str::from_utf8(s).map_err(|_| Error::invalid("CO-RE access string is not UTF-8"))?;
    text.split(':')
        .map(|p| {
            p.parse::<u32>()
                .map_err(|_| Error::invalid(format!("bad CO-RE access string {text:?}")))
        })
        .collect()
}

fn str_at(strings: &[u8], off: u32) -> &[u8] {
    let s = strings.get(off as usize..).unwrap_or(&[]);
    &s[..s.iter().position(|&c| c == 0).unwrap_or(s.len())]
}

/// Raw BTF with what `objects` need of `kernel` (raw BTF), renumbered.
pub fn min_core_btf(objects: &[ObjectCore], kernel: &[u8]) -> Result<Vec<u8>> {
    let k = RawBtf::parse(kernel)?;
    let mut marks = Marks::default();
    for o in objects {
        for r in core_relos(o.ext)? {
            if r.kind == CORE_TYPE_ID_LOCAL {
                continue;
            }
            let lt = o.btf.get(r.type_id)?;
            let name = flavorless(&lt.name).to_string();
            if name.is_empty() {
                return Err(Error::invalid(
                    "a CO-RE relocation on an anonymous type: its kernel type cannot be found by name, so the BTF cannot be cut down for it",
                ));
            }
            let access = parse_access(str_at(o.strings, r.access))?;
            let found = match r.kind {
                0..=FIELD_LAST => {
                    let steps = local_steps(o.btf, r.type_id, &access)?;
                    let mut hit = None;
                    for c in candidates(&k, &name, lt.kind) {
                        if let Some(m) = match_field(&k, c, &steps)? {
                            hit = Some(m);
                            break;
                        }
                    }
                    hit
                }
                ENUMVAL_EXISTS | ENUMVAL_VALUE => {
                    let TypeData::Enum(vals) = &lt.data else {
                        return Err(Error::invalid(
                            "an enum value relocation on a type that is not an enum",
                        ));
                    };
                    let wanted = access
                        .first()
                        .and_then(|&i| vals.get(i as usize))
                        .map(|(n, _)| n.as_bytes())
                        .ok_or_else(|| Error::invalid("enum value relocation out of range"))?;
                    let mut hit = None;
                    for c in candidates(&k, &name, lt.kind) {
                        let t = k.ty(c);
                        let step = if k.kind(c) == KIND_ENUM64 { 12 } else { 8 };
                        if (0..k.vlen(c)).any(|i| k.str_at(word(t, 12 + step * i)) == wanted) {
                            let mut m = Marks::default();
                            m.mark(&k, c, false, false)?;
                            hit = Some(m);
                            break;
                        }
                    }
                    hit
                }
                TYPE_ID_TARGET | TYPE_EXISTS | TYPE_SIZE | TYPE_MATCHES => {
                    match candidates(&k, &name, lt.kind).next() {
                        Some(c) => {
                            let mut m = Marks::default();
                            m.mark(&k, c, true, r.kind == TYPE_MATCHES)?;
                            Some(m)
                        }
                        None => None,
                    }
                }
                other => {
                    return Err(Error::invalid(format!(
                        "unknown CO-RE relocation kind {other}"
                    )))
                }
            };
            // No kernel type matches: the loader poisons that instruction on this kernel, as it
            // would with the whole BTF; nothing to keep.
            if let Some(m) = found {
                marks.merge(m);
            }
        }
    }
    emit(&k, &marks)
}

/// Writes the kept types in their kernel order with new ids, and only the strings they name.
fn emit(k: &RawBtf, marks: &Marks) -> Result<Vec<u8>> {
    let mut kept: Vec<u32> = marks.types.keys().copied().collect();
    kept.sort_unstable();
    let ids: HashMap<u32, u32> = kept
        .iter()
        .enumerate()
        .map(|(i, &id)| (id, i as u32 + 1))
        .collect();
    let remap = |id: u32| ids.get(&id).copied().unwrap_or(0);
    let mut strings = vec![0u8];
    let mut str_offs: HashMap<&[u8], u32> = HashMap::new();
    let mut name = |off: u32| -> u32 {
        let s = k.str_at(off);
        if s.is_empty() {
            return 0;
        }
        *str_offs.entry(s).or_insert_with(|| {
            let o = strings.len() as u32;
            strings.extend_from_slice(s);
            strings.push(0);
            o
        })
    };
    let mut types: Vec<u32> = Vec::new();
    for &id in &kept {
        let t = k.ty(id);
        let info = word(t, 4);
        let (kind, vlen) = (k.kind(id), k.vlen(id));
        let w = |o: usize| word(t, o);
        let mut entries: Vec<u32> = Vec::new();
        let mut new_vlen = vlen as u32;
        let size_or_type = match kind {
            KIND_PTR | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_FUNC
            | KIND_FUNC_PROTO | KIND_VAR | KIND_TYPE_TAG | KIND_DECL_TAG => remap(w(8)),
            _ => w(8),
        };
        match kind {
            KIND_STRUCT | KIND_UNION => {
                new_vlen = 0;
                for i in 0..vlen {
                    if marks.members.contains(&(id, i)) {
                        let (n, ty, off) = k.member(id, i);
                        entries.extend([name(n), remap(ty), off]);
                        new_vlen += 1;
                    }
                }
            }
            KIND_ARRAY => entries.extend([remap(w(12)), remap(w(16)), w(20)]),
            KIND_ENUM => {
                for i in 0..vlen {
                    entries.extend([name(w(12 + 8 * i)), w(16 + 8 * i)]);
                }
            }
            KIND_ENUM64 => {
                for i in 0..vlen {
                    entries.extend([name(w(12 + 12 * i)), w(16 + 12 * i), w(20 + 12 * i)]);
                }
            }
            KIND_FUNC_PROTO => {
                for i in 0..vlen {
                    entries.extend([name(w(12 + 8 * i)), remap(w(16 + 8 * i))]);
                }
            }
            KIND_DATASEC => {
                for i in 0..vlen {
                    entries.extend([remap(w(12 + 12 * i)), w(16 + 12 * i), w(20 + 12 * i)]);
                }
            }
            _ => entries.extend((12..t.len()).step_by(4).map(w)), // INT, VAR, DECL_TAG: one word
        }
        types.extend([name(w(0)), (info & !0xffff) | new_vlen, size_or_type]);
        types.extend(entries);
    }
    let type_len = (types.len() * 4) as u32;
    let mut out = Vec::with_capacity(24 + type_len as usize + strings.len());
    out.extend_from_slice(&[0x9f, 0xeb, 1, 0]);
    for v in [24, 0, type_len, type_len, strings.len() as u32] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for v in types {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&strings);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::testutil::BtfBuilder;
    use crate::btf::{KIND_INT, KIND_STRUCT, KIND_UNION};

    /// 1 int, 2 struct task_struct {pid, *real_parent, tgid, union {a, exit_code}, big},
    /// 3 *task_struct, 4 the union, 5 struct big, 6 enum state, 7 struct bpf_ringbuf,
    /// 8 struct unrelated, 9 typedef task_t.
    fn kernel() -> Vec<u8> {
        let mut b = BtfBuilder::new();
        b.add("int", KIND_INT, 0, false, 4, &[(1 << 24) | 32]);
        let [pid, rp, tgid, other, a, ec, x, z] = [
            "pid",
            "real_parent",
            "tgid",
            "other",
            "a",
            "exit_code",
            "x",
            "z",
        ]
        .map(|n| b.s(n));
        b.add(
            "task_struct",
            KIND_STRUCT,
            5,
            false,
            64,
            &[pid, 1, 0, rp, 3, 64, tgid, 1, 128, 0, 4, 192, other, 5, 256],
        );
        b.add("", KIND_PTR, 0, false, 2, &[]);
        b.add("", KIND_UNION, 2, false, 4, &[a, 1, 0, ec, 1, 0]);
        b.add("big", KIND_STRUCT, 2, false, 8, &[x, 1, 0, z, 1, 32]);
        let (run, stop) = (b.s("RUNNING"), b.s("STOPPED"));
        b.add("state", KIND_ENUM, 2, false, 4, &[run, 0, stop, 1]);
        b.add("bpf_ringbuf", KIND_STRUCT, 1, false, 4096, &[x, 1, 0]);
        b.add("unrelated", KIND_STRUCT, 1, false, 4, &[z, 1, 0]);
        b.add("task_t", KIND_TYPEDEF, 0, false, 2, &[]);
        b.build()
    }

    /// The object's side: its raw BTF and a .BTF.ext with these (type, access, kind) relocs.
    fn object(relos: &[(u32, &str, u32)]) -> (Vec<u8>, Vec<u8>) {
        let mut b = BtfBuilder::new();
        b.add("int", KIND_INT, 0, false, 4, &[(1 << 24) | 32]); // 1
        let [tgid, rp, ec, q] = ["tgid", "real_parent", "exit_code", "q"].map(|n| b.s(n));
        // 2: the fields in another order, and the union without its first member
        b.add(
            "task_struct___x",
            KIND_STRUCT,
            3,
            false,
            24,
            &[tgid, 1, 0, rp, 3, 64, 0, 4, 128],
        );
        b.add("", KIND_PTR, 0, false, 2, &[]); // 3
        b.add("", KIND_UNION, 1, false, 4, &[ec, 1, 0]); // 4
        let stop = b.s("STOPPED");
        b.add("state", KIND_ENUM, 1, false, 4, &[stop, 1]); // 5
        b.add("bpf_ringbuf", KIND_STRUCT, 0, false, 0, &[]); // 6
        b.add("missing", KIND_STRUCT, 1, false, 4, &[q, 1, 0]); // 7
        let sec = b.s("tp/x");
        let recs: Vec<u32> = relos
            .iter()
            .flat_map(|&(id, acc, kind)| [0, id, b.s(acc), kind])
            .collect();
        let mut w: Vec<u32> = vec![0x0001_eb9f, 32, 0, 0, 0, 0, 0, 0];
        let body = [vec![16, sec, relos.len() as u32], recs].concat();
        w[7] = body.len() as u32 * 4;
        w.extend(body);
        (b.build(), w.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    fn cut(relos: &[(u32, &str, u32)]) -> Btf {
        let (raw, ext) = object(relos);
        let local = Btf::parse(&raw).unwrap();
        let strings = crate::btf::split(&raw).unwrap().1;
        let o = ObjectCore {
            btf: &local,
            strings,
            ext: &ext,
        };
        Btf::parse(&min_core_btf(&[o], &kernel()).unwrap()).unwrap()
    }

    fn members(b: &Btf, id: u32) -> Vec<(String, u32, u32)> {
        match &b.get(id).unwrap().data {
            TypeData::Members(m) => m
                .iter()
                .map(|m| (m.name.clone(), m.type_id, m.bit_offset))
                .collect(),
            _ => panic!("type {id} is not a struct"),
        }
    }

    #[test]
    fn keeps_only_the_members_on_the_paths_renumbered() {
        let b = cut(&[
            (2, "0:0", 0),   // tgid
            (2, "0:1", 0),   // real_parent
            (2, "0:2:0", 0), // exit_code, through the anonymous union
            (5, "0", ENUMVAL_EXISTS),
            (6, "0", TYPE_EXISTS),
            (7, "0:0", 0), // no such kernel type: nothing kept
            (1, "0", CORE_TYPE_ID_LOCAL),
        ]);
        // int, task_struct, *task_struct, the union, state, bpf_ringbuf: in kernel order
        assert_eq!(b.len(), 7, "void + six types");
        let task = b.find(KIND_STRUCT, "task_struct").unwrap();
        assert_eq!(task, 2);
        assert_eq!(b.get(task).unwrap().size_or_type, 64, "the kernel's size");
        assert_eq!(
            members(&b, task),
            vec![
                ("real_parent".into(), 3, 64),
                ("tgid".into(), 1, 128),
                (String::new(), 4, 192)
            ],
            "kernel offsets; pid and big are gone"
        );
        assert_eq!(
            b.get(3).unwrap().size_or_type,
            task,
            "the pointer is renumbered"
        );
        assert_eq!(members(&b, 4), vec![("exit_code".into(), 1, 0)]);
        match &b.get(b.find(KIND_ENUM, "state").unwrap()).unwrap().data {
            TypeData::Enum(v) => assert_eq!(v.len(), 2, "an enum is kept whole"),
            _ => panic!(),
        }
        let rb = b.find(KIND_STRUCT, "bpf_ringbuf").unwrap();
        assert!(
            members(&b, rb).is_empty(),
            "exists: the type, none of its members"
        );
        assert_eq!(b.get(rb).unwrap().size_or_type, 4096);
        for gone in ["big", "unrelated", "task_t", "missing"] {
            assert!(b.iter().all(|(_, t)| t.name != gone), "{gone}");
        }
    }

    #[test]
    fn a_kernel_without_the_type_gives_a_btf_without_it() {
        // No ring buffer here: bpf_core_type_exists(struct bpf_ringbuf) must say no.
        let b = cut(&[(6, "0", TYPE_EXISTS), (2, "0:0", 0)]);
        assert!(b.find(KIND_STRUCT, "bpf_ringbuf").is_some());
        let mut k = kernel();
        let at = k.windows(12).position(|w| w == b"bpf_ringbuf\0").unwrap();
        k[at] = b'X';
        let (raw, ext) = object(&[(6, "0", TYPE_EXISTS), (2, "0:0", 0)]);
        let local = Btf::parse(&raw).unwrap();
        let o = ObjectCore {
            btf: &local,
            strings: crate::btf::split(&raw).unwrap().1,
            ext: &ext,
        };
        let min = min_core_btf(&[o], &k).unwrap();
        let b = Btf::parse(&min).unwrap();
        assert!(b.find(KIND_STRUCT, "bpf_ringbuf").is_none());
        assert!(b.find(KIND_STRUCT, "task_struct").is_some());
        assert!(min.len() < 120, "{} bytes", min.len());
    }

    #[test]
    fn hostile_input_is_an_error_not_a_panic() {
        let (raw, ext) = object(&[(2, "0:9", 0)]);
        let local = Btf::parse(&raw).unwrap();
        let strings = crate::btf::split(&raw).unwrap().1;
        let one = |ext: &[u8], kernel: &[u8]| {
            min_core_btf(
                &[ObjectCore {
                    btf: &local,
                    strings,
                    ext,
                }],
                kernel,
            )
        };
        assert!(
            one(&ext, &kernel()).is_err(),
            "access index past the members"
        );
        let k = kernel();
        let (_, good) = object(&[(2, "0:0", 0), (5, "0", ENUMVAL_VALUE)]);
        for cut in 0..k.len() {
            let _ = one(&good, &k[..cut]);
        }
        for cut in 0..good.len() {
            let _ = one(&good[..cut], &k);
        }
        let (_, bad_access) = object(&[(2, "0:x", 0)]);
        assert!(one(&bad_access, &k).is_err());
        let (_, bad_kind) = object(&[(2, "0:0", 99)]);
        assert!(one(&bad_kind, &k).is_err());
    }
}
