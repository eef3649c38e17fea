//! The kernel BTF edge-ecli hands aya is cut down to what an object needs (src/btf/core.rs).
//! These tests hold the cut to the whole: the same relocated instructions for every fixture
//! with CO-RE relocations, the same attach ids, and, on the kernel, the values a program sees.

use crate::common::*;
use edge_ecli::btf::core::{core_needs, minimal_target, Needs};
use edge_ecli::btf::{self, Btf, TypeData};
use edge_ecli::package::elf::Elf;

const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

fn needs_of(obj: &[u8]) -> Needs {
    let object = edge_ecli::package::Object::parse(obj.to_vec(), "fixture").unwrap();
    let elf = Elf::parse(obj).unwrap();
    let ext = elf.section(".BTF.ext").unwrap();
    core_needs(&object.btf, elf.section_data(ext)).unwrap()
}

/// Every function's instructions after CO-RE relocation against `target`.
fn relocated(obj: &[u8], target: &aya_obj::btf::Btf) -> Vec<String> {
    let mut o = aya_obj::Object::parse(obj).unwrap();
    o.relocate_btf(target).unwrap();
    o.functions
        .values()
        .flat_map(|f| f.instructions.iter().map(|i| format!("{}: {i:?}", f.name)))
        .collect()
}

#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn cut_btf_relocates_exactly_like_the_whole() {
    if !kernel_ready("cut_btf_relocates_exactly_like_the_whole") {
        return;
    }
    let kernel = std::fs::read(VMLINUX).unwrap();
    let endian = aya::Endianness::default();
    let whole = aya_obj::btf::Btf::parse(&kernel, endian).unwrap();
    for name in ["bootstrap", "opensnoop", "corerelo"] {
        let obj = std::fs::read(fixtures().obj(name)).unwrap();
        let Needs::Names(mut names) = needs_of(&obj) else {
            panic!("{name} has CO-RE relocations on named types")
        };
        names.push("btf_trace_sched_process_exec".into());
        let cut = minimal_target(&kernel, &names).unwrap();
        assert!(
            cut.len() < kernel.len() / 2,
            "{name}: cut is {} bytes",
            cut.len()
        );
        let cut = aya_obj::btf::Btf::parse(&cut, endian).unwrap();
        let (a, b) = (relocated(&obj, &whole), relocated(&obj, &cut));
        assert!(a.len() > 10, "{name}");
        assert_eq!(a, b, "{name}: relocations differ");
        let kind = aya_obj::btf::BtfKind::Typedef;
        assert_eq!(
            whole
                .id_by_type_name_kind("btf_trace_sched_process_exec", kind)
                .unwrap(),
            cut.id_by_type_name_kind("btf_trace_sched_process_exec", kind)
                .unwrap()
        );
    }
}

fn member_offset(b: &Btf, id: u32, member: &str) -> Option<u32> {
    match &b.get(id).unwrap().data {
        TypeData::Members(m) => m
            .iter()
            .find(|m| m.name == member)
            .map(|m| m.bit_offset / 8),
        _ => None,
    }
}

/// The corerelo fixture prints what each relocation gave the kernel; the whole kernel BTF,
/// parsed here, says what it must be.
#[cfg_attr(edge_skip_kernel, ignore = "needs root, BTF, clang-19")]
#[test]
fn programs_see_the_kernels_own_values() {
    if !kernel_ready("programs_see_the_kernels_own_values") {
        return;
    }
    let _g = serial();
    let k = Btf::parse(&std::fs::read(VMLINUX).unwrap()).unwrap();
    let task = k.find(btf::KIND_STRUCT, "task_struct").unwrap();
    let pid_type = k.find(btf::KIND_ENUM, "pid_type").unwrap();
    let TypeData::Enum(values) = &k.get(pid_type).unwrap().data else {
        panic!("pid_type is not an enum")
    };
    let max = values.iter().find(|(n, _)| n == "PIDTYPE_MAX").unwrap().1;
    let me = std::process::id().to_string();
    let s = Session::start(&["-j", &fixtures().obj("corerelo"), "--target_tgid", &me]);
    // SAFETY: a syscall with no arguments, made to fire its tracepoint.
    unsafe { libc::getppid() };
    let out = s.wait_for(|o| o.contains("tgid"));
    // the tp_btf program was attached through the cut BTF's btf_trace_sched_process_exec
    let p = std::process::Command::new("bpftool")
        .args(["prog", "show", "name", "cr_exec"])
        .output()
        .unwrap();
    let p = String::from_utf8_lossy(&p.stdout);
    assert!(
        p.contains("tracing") && p.contains("cr_exec"),
        "bpftool: {p}"
    );
    let f = s.stop_with(libc::SIGINT);
    assert!(f.status.success(), "{}", f.stderr);
    let rows = json_lines(&out);
    assert!(!rows.is_empty(), "no event; stderr:\n{}", f.stderr);
    let r = &rows[0];
    let want = [
        ("pid_off", member_offset(&k, task, "pid").unwrap() as i64),
        (
            "state_exists",
            member_offset(&k, task, "__state").is_some() as i64,
        ),
        (
            "old_state_exists",
            member_offset(&k, task, "state").is_some() as i64,
        ),
        ("task_size", k.size_of(task).unwrap() as i64),
        ("task_type_id", task as i64),
        ("pidtype_max", max),
        ("pidtype_max_exists", 1),
        ("tgid", std::process::id() as i64),
    ];
    for (key, v) in want {
        assert_eq!(field(r, key), Some(v.to_string().as_str()), "{key} in {r}");
    }
    let users: i64 = field(r, "mm_users").unwrap().parse().unwrap();
    assert!(users >= 1, "mm_users read through task->mm: {r}");
    assert_no_leaks(&["cr_getppid", "cr_exec", "cr_rb"]);
}
