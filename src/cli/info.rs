//! `edge-ecli info`: what a package contains, read without touching the kernel.

use std::fmt::Write;

use argh::FromArgs;

use super::source_flags::with_source_flags;
use crate::args;
use crate::bpf::section;
use crate::bpf::KernelBtf;
use crate::btf::hub::BtfArchive;
use crate::btf::TypeData;
use crate::error::Result;
use crate::package::meta::map_type;
use crate::package::{self, Object};

with_source_flags! {
#[derive(FromArgs)]
/// Show a package's programs, maps, event types and flags without loading anything.
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

/// The text `info` prints.
pub fn render(o: &Object) -> String {
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
    let _ = writeln!(s, "\nflags:");
    for line in args::help(m, &o.btf, &m.obj_name)
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
