//! `edge-ecli info`: what a package contains, read without touching the kernel.

use std::fmt::Write;

use argh::{ArgsInfo, FromArgs};

use super::source_flags::with_source_flags;
use crate::args;
use crate::bpf::section;
use crate::bpf::KernelBtf;
use crate::btf::hub::BtfArchive;
use crate::btf::TypeData;
use crate::error::Result;
use crate::package::meta::map_type;
use crate::package::{self, Object};
use crate::wasm::inspect;

with_source_flags! {
#[derive(FromArgs, ArgsInfo)]
/// Show a package's programs, maps, event types and flags without loading anything; for a
/// Wasm app, the ABIs it speaks, its memory and the packages embedded in it.
#[argh(subcommand, name = "info")]
pub struct InfoCmd {
    /// package: a path to package.json or .bpf.o, - for standard input, a URL, an OCI
    /// reference, oci:DIR[:TAG] or oci-archive:FILE[:TAG]
    #[argh(positional, arg_name = "PROG")]
    pub prog: String,
    /// the kernel BTF run would use, whatever else there is (see run --btf)
    #[argh(option, arg_name = "FILE")]
    btf: Option<String>,
    /// node directory of kernel BTF files (see run --btf-dir; default /var/lib/edge-ecli/btf)
    #[argh(option, arg_name = "DIR")]
    btf_dir: Option<String>,
}
}

impl InfoCmd {
    pub fn main(self) -> Result<i32> {
        let fetched = self.source_flags().fetch_trusted(&self.prog)?;
        if package::detect(&fetched.bytes).ok() == Some(package::Kind::Wasm) {
            print!(
                "{}",
                render_wasm(&fetched.bytes, &fetched.name).map_err(|e| e.context(&self.prog))?
            );
            return Ok(0);
        }
        let mut object =
            package::load(fetched.bytes, &fetched.name).map_err(|e| e.context(&self.prog))?;
        if object.btfs.is_none() {
            if let Some(b) = fetched.btfgen {
                object.btfs = Some(BtfArchive::layer(b));
            }
        }
        print!("{}", render(&object));
        // Where run would take this kernel's BTF from (nothing is read but file names).
        let src = KernelBtf {
            file: self.btf.clone(),
            dir: self.btf_dir.as_ref().map(Into::into),
            carried: object.btfs.clone(),
            ..KernelBtf::default()
        };
        let needs = match object_ext(&object)? {
            Some(x) => crate::btf::core::core_needs(&object.btf, &x)?,
            None => crate::btf::core::Needs::Nothing,
        };
        let btf_attach = object
            .meta
            .progs
            .iter()
            .any(|p| section::needs_kernel_btf(&p.section).is_some());
        let used = match src.locate() {
            Ok(o) => o.to_string(),
            Err(e) => format!("none: {e}"),
        };
        println!(
            "\nkernel BTF on this node: {used}{}",
            if needs == crate::btf::core::Needs::Nothing && !btf_attach {
                " (not needed: the object has no CO-RE relocations)"
            } else {
                ""
            }
        );
        Ok(0)
    }
}

/// `12.3 MiB` for 64 KiB pages.
fn pages(n: u64) -> String {
    super::progress::bytes(n.saturating_mul(64 << 10))
}

/// The text `info` prints for a Wasm app.
pub fn render_wasm(bytes: &[u8], name: &str) -> Result<String> {
    let m = inspect::inspect(bytes)?;
    let mut s = String::new();
    let _ = writeln!(s, "Wasm module: {name} ({} bytes)", bytes.len());
    let abis = m.abis();
    let _ = writeln!(
        s,
        "ABI: {}",
        if abis.is_empty() {
            "none of edge-ecli's (no wasm_bpf, env or WASI imports)".to_string()
        } else {
            abis.join(", ")
        }
    );
    let _ = writeln!(
        s,
        "entry: {}",
        match m.entry() {
            Some("bpf_main") => "bpf_main (env ABI: bpf_main(env_json, len))",
            Some(_) => "_start (a WASI command)",
            None => "none: edge-ecli runs modules that export _start or bpf_main",
        }
    );
    for mem in &m.memories {
        let max = match mem.maximum {
            Some(p) => format!("{p} pages ({})", pages(p)),
            None => "none".into(),
        };
        let cap = crate::wasm::DEFAULT_MAX_MEMORY as u64 >> 16;
        let note = if mem.initial > cap {
            format!(
                " [starts above the default cap of {}: --max-memory]",
                pages(cap)
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "memory: {}initial {} pages ({}), maximum {max}{}; edge-ecli caps it at --max-memory (default {}){note}",
            if mem.imported { "imported, " } else { "" },
            mem.initial,
            pages(mem.initial),
            if mem.memory64 { ", 64-bit" } else { "" },
            pages(cap),
        );
    }
    let _ = writeln!(s, "\nimports:");
    for (module, names) in &m.imports.by_module {
        let _ = writeln!(s, "  {module}: {}", names.join(", "));
    }
    let unknown = m.unknown_imports();
    if !unknown.is_empty() {
        let _ = writeln!(
            s,
            "  [not provided by edge-ecli, so it will not run: {}]",
            unknown.join(", ")
        );
    }
    let exports: Vec<&str> = m.exports.iter().map(String::as_str).collect();
    let _ = writeln!(s, "\nexports: {}", exports.join(", "));
    let _ = writeln!(
        s,
        "\nembedded packages ({} bytes of data segments searched):",
        m.data_bytes
    );
    if m.embedded.is_empty() {
        let _ = writeln!(
            s,
            "  none found (the app may build or fetch its object at run time)"
        );
    }
    for (i, e) in m.embedded.iter().enumerate() {
        let what = format!(
            "{} at data segment {} offset {:#x}, {} bytes",
            e.kind.name(),
            e.segment,
            e.offset,
            e.bytes.len()
        );
        match package::load(e.bytes.clone(), "embedded.bpf.o") {
            Ok(o) => {
                let _ = writeln!(s, "\n  [{}] {what}", i + 1);
                // Its globals are the app's to set: they are not flags of the app.
                for line in render_object(&o, false).lines() {
                    if line.is_empty() {
                        s.push('\n');
                    } else {
                        let _ = writeln!(s, "    {line}");
                    }
                }
            }
            Err(err) => {
                let _ = writeln!(s, "\n  [{}] {what}: not readable: {err}", i + 1);
            }
        }
    }
    Ok(s)
}

/// The text `info` prints.
pub fn render(o: &Object) -> String {
    render_object(o, true)
}

/// `info` of an object, with or without its flags.
fn render_object(o: &Object, with_flags: bool) -> String {
    let m = &o.meta;
    let mut s = String::new();
    let _ = writeln!(s, "object: {} ({} bytes)", m.obj_name, o.bytes.len());
    for (k, v) in [
        ("brief", &m.doc.brief),
        ("version", &m.doc.version),
        ("description", &m.doc.description),
        ("details", &m.doc.details),
    ] {
        if let Some(v) = v {
            let _ = writeln!(s, "{k}: {v}");
        }
    }
    let _ = writeln!(s, "\nprograms:");
    for p in &m.progs {
        let note = match section::parse_for(&p.name, &p.section) {
            Ok(_) => String::new(),
            Err(e) => format!("  [cannot run: {e}]"),
        };
        let _ = writeln!(s, "  {:<24} {}{note}", p.name, p.section);
    }
    let _ = writeln!(s, "\nmaps:");
    for d in &m.maps {
        let kv = |id: u32| {
            if id == 0 {
                "-".to_string()
            } else {
                o.btf.type_name(id)
            }
        };
        let mut extra = String::new();
        if let Some(sm) = &d.sample {
            let _ = write!(
                extra,
                "  sample {:?} every {} ms ({})",
                sm.kind, sm.interval_ms, sm.unit
            );
        }
        if d.is_event_map() {
            extra.push_str("  [events]");
        } else if d.is_result() {
            extra.push_str("  [results]");
        }
        let _ = writeln!(
            s,
            "  {:<24} {:<17} key {} value {} max_entries {}{extra}",
            d.name,
            map_type::name(d.map_type),
            kv(d.key_type),
            kv(d.value_type),
            d.max_entries
        );
    }
    if !m.results.is_empty() {
        let _ = writeln!(
            s,
            "\nresults (writable globals, printed with the result maps):"
        );
        for g in &m.results {
            let _ = writeln!(
                s,
                "  {:<24} {:<9} {}",
                g.name,
                g.section,
                o.btf.type_name(g.type_id)
            );
        }
    }
    let _ = writeln!(s, "\nexport types:");
    for id in o.export_types() {
        let Ok(t) = o.btf.get(id) else { continue };
        let _ = writeln!(
            s,
            "  struct {} (size {}, BTF id {id})",
            t.name, t.size_or_type
        );
        if let TypeData::Members(ms) = &t.data {
            for mem in ms {
                let _ = writeln!(
                    s,
                    "    {:<6} {:<20} {}",
                    format!("+{}", mem.bit_offset / 8),
                    mem.name,
                    o.btf.type_name(mem.type_id)
                );
            }
        }
    }
    if let Some(a) = &o.btfs {
        match a.files() {
            Ok(files) => {
                let _ = writeln!(
                    s,
                    "\nkernel BTF carried ({} bytes, {} kernels):",
                    a.bytes().len(),
                    files.len()
                );
                for (k, b) in files {
                    let _ = writeln!(s, "  {k:<60} {} bytes", b.len());
                }
            }
            Err(e) => {
                let _ = writeln!(s, "\nkernel BTF carried: unreadable: {e}");
            }
        }
    }
    if !with_flags {
        return s;
    }
    let _ = writeln!(s, "\nflags:");
    for line in args::help(m, &o.btf, &args::Invocation::default())
        .lines()
        .skip_while(|l| !l.starts_with("Options:"))
        .skip(1)
    {
        let _ = writeln!(s, "{line}");
    }
    s
}

/// The object's `.BTF.ext`, if it has one.
fn object_ext(o: &Object) -> Result<Option<Vec<u8>>> {
    let elf = package::elf::Elf::parse(&o.bytes)?;
    Ok(elf
        .section(".BTF.ext")
        .map(|x| elf.section_data(x).to_vec()))
}
