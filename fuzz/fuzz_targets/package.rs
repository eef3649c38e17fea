//! Format detection, the eunomia package.json, the ELF + BTF + Meta of an object, a Wasm
//! module's sections and embedded packages: everything `info` does with a package (not
//! `pack`: deflating our own output finds nothing and costs nine tenths of the time), then
//! what loading does before the kernel (the CO-RE needs from .BTF.ext, the section renames)
//! and the flags' help.
#![no_main]

use edge_ecli::package;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if package::detect(data).ok() == Some(package::Kind::Wasm) {
        // `info app.wasm`: sections, imports, memories, embedded packages.
        let _ = edge_ecli::cli::render_wasm_info(data, "fuzz.wasm");
        return;
    }
    let Ok(o) = package::load(data.to_vec(), "fuzz.bpf.o") else {
        return;
    };
    let _ = edge_ecli::cli::render_info(&o);
    let _ = edge_ecli::args::help(&o.meta, &o.btf, &Default::default());
    if let Ok(elf) = package::elf::Elf::parse(&o.bytes) {
        if let Some(ext) = elf.section(".BTF.ext") {
            let _ = edge_ecli::btf::core::core_needs(&o.btf, elf.section_data(ext));
        }
    }
    // A package.json's object is decoded again as its own package.
    if package::detect(data).ok() == Some(package::Kind::Json) {
        let _ = package::load(o.bytes.clone(), "inner.bpf.o");
    }
});
