//! `edge-ecli pack`: an eunomia-compatible package.json from a BPF object; with `--btfgen`,
//! carrying the kernel BTF for kernels without their own (also into a Wasm app).

use argh::{ArgsInfo, FromArgs};

use crate::error::{Error, ErrorKind, Result};
use crate::package::{btfgen, wasm_btf, Kind};
use crate::{package, source};

#[derive(FromArgs, ArgsInfo)]
/// Make an eunomia-compatible package.json from a BPF object. With --btfgen, the package
/// carries the kernel BTF of the kernels named, cut to what the object needs (as bpftool gen
/// min_core_btf), for kernels built without BTF; given a Wasm app, the app carries it.
#[argh(subcommand, name = "pack")]
pub struct PackCmd {
    /// output file (default: standard output)
    #[argh(option, short = 'o', arg_name = "FILE")]
    output: Option<String>,
    /// kernel BTF to carry: a directory in BTFHub layout (ID/VERSION_ID/ARCH/RELEASE.btf or
    /// .btf.tar.xz), such a file, or ID/VERSION_ID/ARCH/RELEASE=FILE (repeatable)
    #[argh(option, arg_name = "DIR|FILE")]
    btfgen: Vec<String>,
    /// the BPF object (.bpf.o), a Wasm app with --btfgen, or - for standard input
    #[argh(positional, arg_name = "OBJ")]
    pub obj: String,
}

impl PackCmd {
    pub fn main(self) -> Result<i32> {
        let bytes = source::read(&self.obj)?;
        let kind = package::detect(&bytes).map_err(|e| e.context(&self.obj))?;
        let kernels = btfgen::gather(&self.btfgen)?;
        let out: Vec<u8> = match kind {
            Kind::Elf => {
                let mut object =
                    package::load(bytes, &self.obj).map_err(|e| e.context(&self.obj))?;
                if !kernels.is_empty() {
                    object.btfs = embed(&[&object], &kernels, &self.obj)?;
                }
                package::eunomia::pack(&object).into_bytes()
            }
            Kind::Wasm if !kernels.is_empty() => {
                let found = wasm_btf::bpf_objects(&bytes).map_err(|e| e.context(&self.obj))?;
                let objects: Vec<package::Object> = found
                    .into_iter()
                    .enumerate()
                    .map(|(i, b)| package::Object::parse(b, &format!("object{i}")))
                    .collect::<Result<_>>()
                    .map_err(|e| e.context(&self.obj))?;
                if objects.is_empty() {
                    return Err(Error::invalid(format!(
                        "{}: no BPF object in the app's data (embed it with #embed or include_bytes!)",
                        self.obj
                    )));
                }
                let refs: Vec<&package::Object> = objects.iter().collect();
                match embed(&refs, &kernels, &self.obj)? {
                    Some(set) => wasm_btf::with_btf(&bytes, &set)?,
                    None => bytes,
                }
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::Usage,
                    format!(
                        "{}: pack takes a BPF object (.bpf.o), or a Wasm app with --btfgen",
                        self.obj
                    ),
                ))
            }
        };
        match self.output {
            Some(path) => crate::files::write_atomic(std::path::Path::new(&path), &out)?,
            None if kind == Kind::Wasm => {
                return Err(Error::new(
                    ErrorKind::Usage,
                    "pack of a Wasm app needs -o FILE",
                ))
            }
            None => {
                use std::io::Write;
                std::io::stdout()
                    .write_all(&out)
                    .map_err(|e| Error::msg(format!("writing the package: {e}")))?;
            }
        }
        Ok(0)
    }
}

/// The BTF set for `objects`, with what it cost on stderr.
fn embed(
    objects: &[&package::Object],
    kernels: &[(crate::btf::hub::BtfKey, std::path::PathBuf)],
    what: &str,
) -> Result<Option<crate::btf::hub::BtfArchive>> {
    match btfgen::cut(objects, kernels)? {
        Some((set, summary)) => {
            eprintln!("edge-ecli: {what}: {summary}");
            Ok(Some(set))
        }
        None => {
            eprintln!("edge-ecli: warning: {what} has no CO-RE relocations: it needs no kernel BTF, so none is carried");
            Ok(None)
        }
    }
}
