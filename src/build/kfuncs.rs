//! Prototypes of the kernel's kfuncs for the vmlinux.h that `build` makes: current tools call
//! them (`bpf_task_from_pid`...), and bpftool before 7.5 does not write them. Found in the
//! kernel's BTF as functions tagged `bpf_kfunc`, written as bpftool 7.5 writes them (weak
//! `__ksym` externs, behind `BPF_NO_KFUNC_PROTOTYPES`). A kfunc whose C declaration this
//! cannot spell exactly (a callback parameter, an anonymous type) is left out. Pure.

use std::fmt::Write;

use crate::btf::{self, Btf, TypeData};

/// `T` spelled for a declaration of `name`, or None where that would need a declarator this
/// does not write (function pointers, arrays, anonymous types).
fn decl(b: &Btf, id: u32, name: &str, depth: usize) -> Option<String> {
    if depth > 16 {
        return None;
    }
    if id == 0 {
        return Some(format!("void{}", sep(name)));
    }
    let t = b.get(id).ok()?;
    let named =
        |prefix: &str| (!t.name.is_empty()).then(|| format!("{prefix}{}{}", t.name, sep(name)));
    match t.kind {
        btf::KIND_INT | btf::KIND_FLOAT | btf::KIND_TYPEDEF => named(""),
        btf::KIND_STRUCT => named("struct "),
        btf::KIND_UNION => named("union "),
        btf::KIND_ENUM | btf::KIND_ENUM64 => named("enum "),
        btf::KIND_FWD => named(if t.kind_flag { "union " } else { "struct " }),
        btf::KIND_PTR => {
            let target = b.get(t.size_or_type).ok();
            if target.is_some_and(|p| p.kind == btf::KIND_FUNC_PROTO) {
                return None;
            }
            decl(b, t.size_or_type, &format!("*{name}"), depth + 1)
        }
        // Qualifiers of a pointer itself do not matter to a parameter's type; others are kept.
        btf::KIND_CONST | btf::KIND_VOLATILE => {
            let q = if t.kind == btf::KIND_CONST {
                "const "
            } else {
                "volatile "
            };
            let inner = decl(b, t.size_or_type, name, depth + 1)?;
            let under = b.get(t.size_or_type).ok()?;
            Some(if under.kind == btf::KIND_PTR {
                inner
            } else {
                format!("{q}{inner}")
            })
        }
        btf::KIND_RESTRICT | btf::KIND_TYPE_TAG => decl(b, t.size_or_type, name, depth + 1),
        _ => None,
    }
}

/// The declarator after a type name: ` name`, ` *name` (nothing for an abstract one).
fn sep(name: &str) -> String {
    if name.is_empty() {
        String::new()
    } else {
        format!(" {name}")
    }
}

/// The kfunc prototypes of kernel BTF `b`, as a block for the end of vmlinux.h.
pub fn prototypes(b: &Btf) -> String {
    let mut funcs: Vec<u32> = b
        .iter()
        .filter(|(_, t)| t.kind == btf::KIND_DECL_TAG && t.name == "bpf_kfunc")
        .map(|(_, t)| t.size_or_type)
        .collect();
    funcs.sort_unstable();
    funcs.dedup();
    let mut out = String::from(
        "\n#ifndef BPF_NO_KFUNC_PROTOTYPES\n#ifndef __ksym\n#define __ksym __attribute__((section(\".ksyms\")))\n#endif\n#ifndef __weak\n#define __weak __attribute__((weak))\n#endif\n",
    );
    for id in funcs {
        let Ok(f) = b.get(id) else { continue };
        if f.kind != btf::KIND_FUNC {
            continue;
        }
        let Ok(proto) = b.get(f.size_or_type) else {
            continue;
        };
        let TypeData::Params(params) = &proto.data else {
            continue;
        };
        let mut args = Vec::new();
        let mut ok = true;
        for (i, (pname, ptype)) in params.iter().enumerate() {
            if *ptype == 0 && i + 1 == params.len() {
                args.push("...".to_string()); // variadic
                continue;
            }
            let n = if pname.is_empty() {
                format!("arg{i}")
            } else {
                pname.clone()
            };
            match decl(b, *ptype, &n, 0) {
                Some(d) => args.push(d),
                None => ok = false,
            }
        }
        let head = decl(b, proto.size_or_type, &format!("{}(", f.name), 0);
        let (Some(head), true) = (head, ok) else {
            continue;
        };
        let args = if args.is_empty() {
            "void".to_string()
        } else {
            args.join(", ")
        };
        let _ = writeln!(out, "extern {head}{args}) __weak __ksym;");
    }
    out.push_str("#endif\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::testutil::BtfBuilder;

    #[test]
    fn kfuncs_are_declared_as_bpftool_declares_them() {
        let mut b = BtfBuilder::new();
        b.add("int", btf::KIND_INT, 0, false, 4, &[(1 << 24) | 32]); // 1
        b.add("s32", btf::KIND_TYPEDEF, 0, false, 1, &[]); // 2
        b.add("task_struct", btf::KIND_STRUCT, 0, false, 0, &[]); // 3
        b.add("", btf::KIND_PTR, 0, false, 3, &[]); // 4
        let pid = b.s("pid");
        b.add("", btf::KIND_FUNC_PROTO, 1, false, 4, &[pid, 2]); // 5
        b.add("bpf_task_from_pid", btf::KIND_FUNC, 0, false, 5, &[]); // 6
        b.add("bpf_kfunc", btf::KIND_DECL_TAG, 0, false, 6, &[u32::MAX]); // 7
        b.add("", btf::KIND_FUNC_PROTO, 0, false, 1, &[]); // 8 int (void)
        b.add("", btf::KIND_PTR, 0, false, 8, &[]); // 9 int (*)(void)
        let cb = b.s("cb");
        b.add("", btf::KIND_FUNC_PROTO, 1, false, 0, &[cb, 9]); // 10 void (int (*cb)(void))
        b.add("bpf_with_callback", btf::KIND_FUNC, 0, false, 10, &[]); // 11
        b.add("bpf_kfunc", btf::KIND_DECL_TAG, 0, false, 11, &[u32::MAX]); // 12
        b.add("not_a_kfunc", btf::KIND_FUNC, 0, false, 5, &[]); // 13
        let btf = Btf::parse(&b.build()).unwrap();
        let p = prototypes(&btf);
        assert!(
            p.contains("extern struct task_struct *bpf_task_from_pid(s32 pid) __weak __ksym;\n"),
            "{p}"
        );
        assert!(
            !p.contains("bpf_with_callback") && !p.contains("not_a_kfunc"),
            "{p}"
        );
        assert!(p.starts_with("\n#ifndef BPF_NO_KFUNC_PROTOTYPES"), "{p}");
    }
}
