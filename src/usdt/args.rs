//! USDT argument specs (`-4@%edi 8@-8(%rbp) 4@$5` on x86_64, `8@[sp, 16]` on arm64,
//! `-4@8(a0)` on riscv64) as libbpf's usdt.c parses them, into what `usdt.bpf.h` reads: a
//! constant, a register, or memory at a register plus an offset, with the register given as
//! its offset in the architecture's `struct pt_regs`. Pure.

use crate::error::{Error, Result};

/// Where an argument's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loc {
    Const(i64),
    Reg { reg_off: u16 },
    Deref { reg_off: u16, off: i64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arg {
    pub loc: Loc,
    /// Bytes of the value (1, 2, 4, 8); negative in the spec means signed.
    pub size: u8,
    pub signed: bool,
}

impl Arg {
    /// Bits to clear (and sign-extend) from a u64 to get the value.
    pub fn bitshift(&self) -> u8 {
        64 - 8 * self.size
    }
}

/// The architectures whose `pt_regs` we know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
    Riscv64,
}

impl Arch {
    pub fn host() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Aarch64)
        } else if cfg!(target_arch = "riscv64") {
            Some(Arch::Riscv64)
        } else {
            None
        }
    }

    /// Offset of register `name` in this arch's `struct pt_regs` (x86_64 accepts every
    /// width's name of a register: rax, eax, ax, al).
    pub fn reg_off(self, name: &str) -> Option<u16> {
        match self {
            Arch::X86_64 => {
                const REGS: [(&[&str], u16); 18] = [
                    (&["r15", "r15d", "r15w", "r15b"], 0),
                    (&["r14", "r14d", "r14w", "r14b"], 8),
                    (&["r13", "r13d", "r13w", "r13b"], 16),
                    (&["r12", "r12d", "r12w", "r12b"], 24),
                    (&["rbp", "ebp", "bp", "bpl"], 32),
                    (&["rbx", "ebx", "bx", "bl"], 40),
                    (&["r11", "r11d", "r11w", "r11b"], 48),
                    (&["r10", "r10d", "r10w", "r10b"], 56),
                    (&["r9", "r9d", "r9w", "r9b"], 64),
                    (&["r8", "r8d", "r8w", "r8b"], 72),
                    (&["rax", "eax", "ax", "al"], 80),
                    (&["rcx", "ecx", "cx", "cl"], 88),
                    (&["rdx", "edx", "dx", "dl"], 96),
                    (&["rsi", "esi", "si", "sil"], 104),
                    (&["rdi", "edi", "di", "dil"], 112),
                    (&["rip", "eip", "ip"], 128),
                    (&["rsp", "esp", "sp", "spl"], 152),
                    (&["orig_ax"], 120),
                ];
                REGS.iter()
                    .find(|(names, _)| names.contains(&name))
                    .map(|(_, o)| *o)
            }
            Arch::Aarch64 => match name {
                "sp" => Some(31 * 8),
                "pc" => Some(32 * 8),
                _ => {
                    let n: u16 = name
                        .strip_prefix('x')
                        .or_else(|| name.strip_prefix('w'))?
                        .parse()
                        .ok()?;
                    (n <= 30).then_some(n * 8)
                }
            },
            Arch::Riscv64 => {
                const REGS: [&str; 32] = [
                    "pc", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2",
                    "a3", "a4", "a5", "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9",
                    "s10", "s11", "t3", "t4", "t5", "t6",
                ];
                let name = if name == "fp" { "s0" } else { name };
                REGS.iter().position(|r| *r == name).map(|i| i as u16 * 8)
            }
        }
    }
}

fn int(s: &str) -> Option<i64> {
    let (neg, t) = match s.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = match t.strip_prefix("0x") {
        Some(h) => i64::from_str_radix(h, 16).ok()?,
        None => t.parse::<i64>().ok()?,
    };
    Some(if neg { -v } else { v })
}

/// Parses one argument (`-4@%edi`).
pub fn parse_arg(arch: Arch, spec: &str) -> Result<Arg> {
    let bad = || {
        Error::invalid(format!(
            "USDT argument \"{spec}\": not a form libbpf supports"
        ))
    };
    let (size, loc) = spec.split_once('@').ok_or_else(bad)?;
    let size = int(size).ok_or_else(bad)?;
    let (signed, size) = (size < 0, size.unsigned_abs());
    if !matches!(size, 1 | 2 | 4 | 8) {
        return Err(bad());
    }
    let reg = |n: &str| arch.reg_off(n).ok_or_else(bad);
    let loc = match arch {
        Arch::X86_64 => {
            if let Some(c) = loc.strip_prefix('$') {
                Loc::Const(int(c).ok_or_else(bad)?)
            } else if let Some(r) = loc.strip_prefix('%') {
                Loc::Reg { reg_off: reg(r)? }
            } else if let Some((off, rest)) = loc.split_once("(%") {
                let r = rest.strip_suffix(')').ok_or_else(bad)?;
                if r.contains(',') {
                    // base + index * scale: libbpf 1.4's SIB form; older usdt.bpf.h cannot
                    // express it.
                    return Err(Error::invalid(format!(
                        "USDT argument \"{spec}\": indexed addressing is not supported"
                    )));
                }
                Loc::Deref {
                    reg_off: reg(r)?,
                    off: if off.is_empty() {
                        0
                    } else {
                        int(off).ok_or_else(bad)?
                    },
                }
            } else {
                return Err(bad());
            }
        }
        Arch::Aarch64 => {
            if let Some(inner) = loc.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                let (r, off) = match inner.split_once(',') {
                    Some((r, o)) => (r.trim(), int(o.trim()).ok_or_else(bad)?),
                    None => (inner.trim(), 0),
                };
                Loc::Deref {
                    reg_off: reg(r)?,
                    off,
                }
            } else if let Some(c) = int(loc) {
                Loc::Const(c)
            } else {
                Loc::Reg { reg_off: reg(loc)? }
            }
        }
        Arch::Riscv64 => {
            if let Some((off, rest)) = loc.split_once('(') {
                let r = rest.strip_suffix(')').ok_or_else(bad)?;
                Loc::Deref {
                    reg_off: reg(r)?,
                    off: if off.is_empty() {
                        0
                    } else {
                        int(off).ok_or_else(bad)?
                    },
                }
            } else if let Some(c) = int(loc) {
                Loc::Const(c)
            } else {
                Loc::Reg { reg_off: reg(loc)? }
            }
        }
    };
    Ok(Arg {
        loc,
        size: size as u8,
        signed,
    })
}

/// Most arguments a probe may have (libbpf's `USDT_MAX_ARG_CNT`).
pub const MAX_ARGS: usize = 12;

/// Splits an argument string at spaces outside brackets (arm64 writes `8@[sp, 16]`).
fn split_args(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, None);
    for (i, c) in text.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ' ' | '\t' if depth <= 0 => {
                if let Some(s) = start.take() {
                    out.push(&text[s..i]);
                }
                continue;
            }
            _ => {}
        }
        start.get_or_insert(i);
    }
    if let Some(s) = start {
        out.push(&text[s..]);
    }
    out
}

/// Parses a probe's whole argument string (space separated).
pub fn parse_args(arch: Arch, text: &str) -> Result<Vec<Arg>> {
    let args = split_args(text);
    if args.len() > MAX_ARGS {
        return Err(Error::invalid(format!(
            "USDT probe has {} arguments; at most {MAX_ARGS} are supported",
            args.len()
        )));
    }
    args.into_iter().map(|a| parse_arg(arch, a)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_64_specs() {
        let a = parse_args(
            Arch::X86_64,
            "-4@%edi 8@-8(%rbp) 4@$5 2@(%rax) 8@%r12 -1@$-9",
        )
        .unwrap();
        assert_eq!(
            a,
            vec![
                Arg {
                    loc: Loc::Reg { reg_off: 112 },
                    size: 4,
                    signed: true
                },
                Arg {
                    loc: Loc::Deref {
                        reg_off: 32,
                        off: -8
                    },
                    size: 8,
                    signed: false
                },
                Arg {
                    loc: Loc::Const(5),
                    size: 4,
                    signed: false
                },
                Arg {
                    loc: Loc::Deref {
                        reg_off: 80,
                        off: 0
                    },
                    size: 2,
                    signed: false
                },
                Arg {
                    loc: Loc::Reg { reg_off: 24 },
                    size: 8,
                    signed: false
                },
                Arg {
                    loc: Loc::Const(-9),
                    size: 1,
                    signed: true
                },
            ]
        );
        assert_eq!(a[0].bitshift(), 32);
        assert!(parse_arg(Arch::X86_64, "8@(%rax,%rbx,8)").is_err());
        assert!(parse_arg(Arch::X86_64, "3@%eax").is_err());
        assert!(parse_arg(Arch::X86_64, "4@%xmm0").is_err());
        assert!(parse_arg(Arch::X86_64, "garbage").is_err());
    }

    #[test]
    fn arm64_and_riscv64_specs() {
        let a = parse_args(Arch::Aarch64, "-4@x0 8@[sp, 16] 8@[x1] 4@5 4@w3").unwrap();
        assert_eq!(a[0].loc, Loc::Reg { reg_off: 0 });
        assert_eq!(
            a[1].loc,
            Loc::Deref {
                reg_off: 248,
                off: 16
            }
        );
        assert_eq!(a[2].loc, Loc::Deref { reg_off: 8, off: 0 });
        assert_eq!(a[3].loc, Loc::Const(5));
        assert_eq!(a[4].loc, Loc::Reg { reg_off: 24 });
        let r = parse_args(Arch::Riscv64, "8@a0 -4@-12(s0) 4@3 8@(sp)").unwrap();
        assert_eq!(r[0].loc, Loc::Reg { reg_off: 80 });
        assert_eq!(
            r[1].loc,
            Loc::Deref {
                reg_off: 64,
                off: -12
            }
        );
        assert_eq!(r[2].loc, Loc::Const(3));
        assert_eq!(
            r[3].loc,
            Loc::Deref {
                reg_off: 16,
                off: 0
            }
        );
        assert!(parse_args(Arch::X86_64, &"4@$1 ".repeat(13)).is_err());
    }
}
