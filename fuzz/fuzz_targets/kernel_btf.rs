//! A hostile kernel BTF (`--btf FILE`): our parser, the cut of what CO-RE needs
//! (`minimal_target`), and aya's parse of the cut, as loading does.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// Names real objects ask the kernel BTF for.
const WANTED: &[&str] = &[
    "task_struct",
    "trace_event_raw_sys_enter",
    "trace_event_raw_signal_generate",
    "pt_regs",
    "sk_buff",
    "file",
    "bpf_lsm_path_mkdir",
    "do_unlinkat",
];

fuzz_target!(|data: &[u8]| {
    let _ = edge_ecli::btf::Btf::parse(data);
    let wanted: Vec<String> = WANTED.iter().map(|s| s.to_string()).collect();
    if let Ok(cut) = edge_ecli::btf::core::minimal_target(data, &wanted) {
        let _ = aya::Btf::parse(&cut, aya::Endianness::default());
        // What is cut must parse again, by ours too.
        let _ = edge_ecli::btf::Btf::parse(&cut);
    }
});
