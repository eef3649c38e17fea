//! What an object's programs do with its maps, read from their instructions. A tool's C user
//! space knows which maps hold its results (counters, histograms) and which are scratch
//! (start times, arguments kept between entry and exit, a per-CPU heap for a big record); a
//! package does not say. The instructions do: results are written in place through the
//! pointer a lookup returns (`__sync_fetch_and_add(&val->count, 1)`, `hist->slots[i]++`),
//! scratch is deleted from, only read, or handed to an output helper as record data. Pure: a
//! linear pass over each function, following which register or stack slot holds a map or a
//! pointer into a map's value.

use std::collections::HashMap;

use aya_obj::generated::{self as g, bpf_func_id};

use super::elf::{self, Elf};

/// What the programs do with one map.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MapUse {
    /// A value is written through the pointer a lookup returned.
    pub written: bool,
    /// `bpf_map_delete_elem` is called on it.
    pub deleted: bool,
    /// A value is handed to `bpf_perf_event_output`/`bpf_ringbuf_output` as record data.
    pub output: bool,
}

// Helper ids and instruction fields, from the kernel's UAPI as aya-obj binds it.
const MAP_LOOKUP_ELEM: i32 = bpf_func_id::BPF_FUNC_map_lookup_elem as i32;
const MAP_DELETE_ELEM: i32 = bpf_func_id::BPF_FUNC_map_delete_elem as i32;
const PERF_EVENT_OUTPUT: i32 = bpf_func_id::BPF_FUNC_perf_event_output as i32;
const RINGBUF_OUTPUT: i32 = bpf_func_id::BPF_FUNC_ringbuf_output as i32;
const MAP_LOOKUP_PERCPU_ELEM: i32 = bpf_func_id::BPF_FUNC_map_lookup_percpu_elem as i32;

const CLASS_LD: u8 = g::BPF_LD as u8;
const CLASS_LDX: u8 = g::BPF_LDX as u8;
const CLASS_ST: u8 = g::BPF_ST as u8;
const CLASS_STX: u8 = g::BPF_STX as u8;
const CLASS_ALU: u8 = g::BPF_ALU as u8;
const CLASS_JMP: u8 = g::BPF_JMP as u8;
const CLASS_ALU64: u8 = g::BPF_ALU64 as u8;
const OP_CALL: u8 = g::BPF_CALL as u8;
const OP_MOV: u8 = g::BPF_MOV as u8;
const OP_ADD: u8 = g::BPF_ADD as u8;
const OP_SUB: u8 = g::BPF_SUB as u8;
const MODE_MEM: u8 = g::BPF_MEM as u8;
const FP: u8 = 10;

/// What a register or stack slot holds, as far as maps go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holds {
    Nothing,
    /// The map itself (`r1 = &map ll`).
    Map(usize),
    /// A pointer into one of its values (what a lookup returned, plus an offset).
    Value(usize),
}

/// What the programs of `elf` do with each map of its `.maps` section, by map name.
pub fn map_uses(elf: &Elf) -> HashMap<String, MapUse> {
    let Some(maps_sec) = elf.sections.iter().position(|s| s.name == ".maps") else {
        return HashMap::new();
    };
    // Map names are the .maps section's object symbols.
    let names: Vec<String> = elf
        .symbols
        .iter()
        .filter(|s| s.section as usize == maps_sec && s.kind == elf::STT_OBJECT)
        .map(|s| s.name.clone())
        .collect();
    let mut uses = vec![MapUse::default(); names.len()];
    for (i, sec) in elf.sections.iter().enumerate() {
        if sec.flags & elf::SHF_EXECINSTR == 0 {
            continue;
        }
        let map_at: HashMap<u64, usize> = elf
            .relocations(i)
            .into_iter()
            .filter_map(|r| {
                let sym = elf.symbols.get(r.symbol as usize)?;
                if sym.section as usize != maps_sec {
                    return None;
                }
                names
                    .iter()
                    .position(|n| *n == sym.name)
                    .map(|m| (r.offset, m))
            })
            .collect();
        // Functions start where a function symbol of this section does.
        let starts: Vec<u64> = elf
            .symbols
            .iter()
            .filter(|s| s.section as usize == i && s.kind == elf::STT_FUNC)
            .map(|s| s.value)
            .collect();
        scan(elf.section_data(sec), &map_at, &starts, &mut uses);
    }
    names.into_iter().zip(uses).collect()
}

fn scan(code: &[u8], map_at: &HashMap<u64, usize>, starts: &[u64], uses: &mut [MapUse]) {
    let mut regs = [Holds::Nothing; 11];
    let mut stack: HashMap<i16, Holds> = HashMap::new();
    let mut pc = 0usize;
    while pc + 8 <= code.len() {
        let at = pc as u64;
        if starts.contains(&at) {
            regs = [Holds::Nothing; 11];
            stack.clear();
        }
        let ins = &code[pc..pc + 8];
        let (op, dst, src) = (ins[0], (ins[1] & 0x0f) as usize, ins[1] >> 4);
        let off = i16::from_le_bytes([ins[2], ins[3]]);
        let imm = i32::from_le_bytes([ins[4], ins[5], ins[6], ins[7]]);
        pc += 8;
        if dst > 10 || src > 10 {
            continue; // not an instruction the verifier would take; nothing to learn
        }
        let src = src as usize;
        match op & 0x07 {
            CLASS_LD if op == 0x18 => {
                // ld_imm64: two slots; a relocation says which map it names.
                pc += 8;
                regs[dst] = map_at.get(&at).map_or(Holds::Nothing, |&m| Holds::Map(m));
            }
            CLASS_LDX if op & 0xe0 == MODE_MEM => {
                regs[dst] = if src == FP as usize {
                    stack.get(&off).copied().unwrap_or(Holds::Nothing)
                } else {
                    Holds::Nothing
                };
            }
            CLASS_STX | CLASS_ST => {
                if dst == FP as usize {
                    let v = if op & 0x07 == CLASS_STX && op & 0xe0 == MODE_MEM {
                        regs[src]
                    } else {
                        Holds::Nothing
                    };
                    stack.insert(off, v);
                } else if let Holds::Value(m) = regs[dst] {
                    // A store, or an atomic operation, through a pointer into a map value.
                    uses[m].written = true;
                }
            }
            CLASS_ALU64 | CLASS_ALU => {
                let is64 = op & 0x07 == CLASS_ALU64;
                let (alu, from_reg) = (op & 0xf0, op & 0x08 != 0);
                regs[dst] = match (alu, from_reg) {
                    (OP_MOV, true) if is64 => regs[src],
                    // Pointer arithmetic keeps pointing into the same value.
                    (OP_ADD | OP_SUB, _) if is64 => match regs[dst] {
                        Holds::Value(m) => Holds::Value(m),
                        _ => Holds::Nothing,
                    },
                    _ => Holds::Nothing,
                };
            }
            CLASS_JMP if op == (CLASS_JMP | OP_CALL) && src == 0 => {
                let map = |r: usize| match regs[r] {
                    Holds::Map(m) => Some(m),
                    _ => None,
                };
                let value = |r: usize| match regs[r] {
                    Holds::Value(m) => Some(m),
                    _ => None,
                };
                let r0 = match imm {
                    MAP_LOOKUP_ELEM | MAP_LOOKUP_PERCPU_ELEM => map(1).map(Holds::Value),
                    _ => None,
                };
                match imm {
                    MAP_DELETE_ELEM => map(1).into_iter().for_each(|m| uses[m].deleted = true),
                    PERF_EVENT_OUTPUT => value(4).into_iter().for_each(|m| uses[m].output = true),
                    RINGBUF_OUTPUT => value(2).into_iter().for_each(|m| uses[m].output = true),
                    _ => {}
                }
                // Calls clobber r0-r5.
                for r in regs.iter_mut().take(6) {
                    *r = Holds::Nothing;
                }
                regs[0] = r0.unwrap_or(Holds::Nothing);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ins(op: u8, dst: u8, src: u8, off: i16, imm: i32) -> Vec<u8> {
        let mut v = vec![op, (src << 4) | dst];
        v.extend(off.to_le_bytes());
        v.extend(imm.to_le_bytes());
        v
    }

    fn ld_map(dst: u8) -> Vec<u8> {
        let mut v = ins(0x18, dst, 1, 0, 0);
        v.extend(ins(0, 0, 0, 0, 0));
        v
    }

    /// Two maps: `counts` (looked up, then written through the pointer, spilled and reloaded
    /// on the way), `start` (looked up and read, then deleted) and `heap` (written, then
    /// handed to perf_event_output).
    #[test]
    fn results_are_written_in_place_scratch_is_not() {
        let mut code = Vec::new();
        let mut map_at = HashMap::new();
        // counts: r1 = &counts; call lookup; *(r10-8) = r0; r6 = *(r10-8); r6 += 8; lock *(u64 *)(r6+0) += r1
        map_at.insert(code.len() as u64, 0);
        code.extend(ld_map(1));
        code.extend(ins(0x85, 0, 0, 0, MAP_LOOKUP_ELEM));
        code.extend(ins(0x7b, 10, 0, -8, 0));
        code.extend(ins(0x79, 6, 10, -8, 0));
        code.extend(ins(0x07, 6, 0, 0, 8));
        code.extend(ins(0xdb, 6, 1, 0, 0));
        // start: r1 = &start; call lookup; r2 = *(u64 *)(r0+0); r1 = &start; call delete
        map_at.insert(code.len() as u64, 1);
        code.extend(ld_map(1));
        code.extend(ins(0x85, 0, 0, 0, MAP_LOOKUP_ELEM));
        code.extend(ins(0x79, 2, 0, 0, 0));
        map_at.insert(code.len() as u64, 1);
        code.extend(ld_map(1));
        code.extend(ins(0x85, 0, 0, 0, MAP_DELETE_ELEM));
        // heap: r1 = &heap; call lookup; r7 = r0; *(u32 *)(r7+0) = 1; r4 = r7; call perf_event_output
        map_at.insert(code.len() as u64, 2);
        code.extend(ld_map(1));
        code.extend(ins(0x85, 0, 0, 0, MAP_LOOKUP_ELEM));
        code.extend(ins(0xbf, 7, 0, 0, 0));
        code.extend(ins(0x62, 7, 0, 0, 1));
        code.extend(ins(0xbf, 4, 7, 0, 0));
        code.extend(ins(0x85, 0, 0, 0, PERF_EVENT_OUTPUT));
        let mut uses = vec![MapUse::default(); 3];
        scan(&code, &map_at, &[0], &mut uses);
        assert_eq!(
            uses[0],
            MapUse {
                written: true,
                deleted: false,
                output: false
            }
        );
        assert_eq!(
            uses[1],
            MapUse {
                written: false,
                deleted: true,
                output: false
            }
        );
        assert_eq!(
            uses[2],
            MapUse {
                written: true,
                deleted: false,
                output: true
            }
        );
    }

    #[test]
    fn calls_clobber_and_truncated_code_is_harmless() {
        let mut code = Vec::new();
        let mut map_at = HashMap::new();
        map_at.insert(0, 0);
        code.extend(ld_map(1));
        code.extend(ins(0x85, 0, 0, 0, MAP_LOOKUP_ELEM));
        code.extend(ins(0x85, 0, 0, 0, 5)); // another helper: r0 no longer the value
        code.extend(ins(0x62, 0, 0, 0, 1));
        code.extend([0x18, 0x01]); // a cut ld_imm64
        let mut uses = vec![MapUse::default(); 1];
        scan(&code, &map_at, &[], &mut uses);
        assert!(!uses[0].written);
    }
}
