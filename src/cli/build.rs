//! `edge-ecli build`: compile a libbpf-style BPF C program into an eunomia package, as ecc
//! does. The work is in `crate::build`; this file is its flags.

use std::path::PathBuf;

use argh::{ArgsInfo, FromArgs};

use crate::build::{self, Arch, Options};
use crate::error::Result;

#[derive(FromArgs, ArgsInfo)]
/// Compile a BPF C program into a package (what eunomia's ecc does): writes package.json, the
/// object (X.bpf.o) and a C skeleton for Wasm guests (X.skel.h). Needs clang; bpftool too for
/// a vmlinux.h made from this kernel's BTF.
#[argh(subcommand, name = "build")]
pub struct BuildCmd {
    /// the package to write (default: package.json beside the source); X.bpf.o and X.skel.h
    /// are written beside it
    #[argh(option, short = 'o', arg_name = "FILE")]
    output: Option<String>,
    /// add DIR to clang's include path (repeatable)
    #[argh(option, short = 'I', arg_name = "DIR")]
    include: Vec<String>,
    /// the vmlinux.h to include (default: made from /sys/kernel/btf/vmlinux with bpftool)
    #[argh(option, arg_name = "FILE")]
    vmlinux: Option<String>,
    /// architecture the program's register access is for: x86, arm64 or riscv (default: this
    /// machine's)
    #[argh(option, arg_name = "ARCH")]
    arch: Option<String>,
    /// an extra flag for clang, e.g. --cflag -DDEBUG (repeatable)
    #[argh(option, arg_name = "FLAG")]
    cflag: Vec<String>,
    /// no progress on the terminal
    #[argh(switch, short = 'q')]
    quiet: bool,
    /// export only this struct as an event type (repeatable; default: every struct of the
    /// header, each record decoded as the one its size selects)
    #[argh(option, arg_name = "NAME")]
    export_type: Vec<String>,
    /// carry kernel BTF for kernels without their own: a directory in BTFHub layout
    /// (ID/VERSION_ID/ARCH/RELEASE.btf or .btf.tar.xz), such a file, or
    /// ID/VERSION_ID/ARCH/RELEASE=FILE (repeatable; see pack --btfgen)
    #[argh(option, arg_name = "DIR|FILE")]
    btfgen: Vec<String>,
    /// the BPF C source (X.bpf.c)
    #[argh(positional, arg_name = "SOURCE")]
    pub source: String,
    /// a header whose structs are the event types to export (X.h)
    #[argh(positional, arg_name = "HEADER")]
    header: Option<String>,
}

impl BuildCmd {
    fn options(&self) -> Result<Options> {
        let source = PathBuf::from(&self.source);
        let output = match &self.output {
            Some(o) => PathBuf::from(o),
            None => source
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("package.json"), |d| d.join("package.json")),
        };
        Ok(Options {
            source,
            header: self.header.as_ref().map(PathBuf::from),
            output,
            includes: self.include.iter().map(PathBuf::from).collect(),
            vmlinux: self.vmlinux.as_ref().map(PathBuf::from),
            arch: match &self.arch {
                Some(a) => Arch::parse(a)?,
                None => Arch::host(),
            },
            cflags: self.cflag.clone(),
            meter: super::progress::meter("building", self.quiet),
            export_types: self.export_type.clone(),
            btfgen: crate::package::btfgen::gather(&self.btfgen)?,
        })
    }

    pub fn main(self) -> Result<i32> {
        let opts = self.options()?;
        let built = build::build(&opts, &mut |w| eprintln!("edge-ecli: warning: {w}"))?;
        if let Some(s) = &built.btfgen {
            eprintln!("edge-ecli: {}: {s}", built.package.display());
        }
        let m = &built.object.meta;
        eprintln!(
            "built {}: {} ({} programs, {} maps, {} globals, {} export types), {}, {}",
            self.source,
            built.package.display(),
            m.progs.len(),
            m.maps.len(),
            m.globals.len(),
            built.object.export_types().len(),
            built.object_path.display(),
            built.skeleton.display()
        );
        Ok(0)
    }
}
