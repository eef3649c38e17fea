//! `edge-ecli pack`: an eunomia-compatible package.json from a BPF object.

use argh::{ArgsInfo, FromArgs};

use crate::error::{Error, ErrorKind, Result};
use crate::{package, source};

#[derive(FromArgs, ArgsInfo)]
/// Make an eunomia-compatible package.json from a BPF object.
#[argh(subcommand, name = "pack")]
pub struct PackCmd {
    /// output file (default: standard output)
    #[argh(option, short = 'o', arg_name = "FILE")]
    output: Option<String>,
    /// the BPF object (.bpf.o), or - for standard input
    #[argh(positional, arg_name = "OBJ")]
    pub obj: String,
}

impl PackCmd {
    pub fn main(self) -> Result<i32> {
        let bytes = source::read(&self.obj)?;
        if package::detect(&bytes).map_err(|e| e.context(&self.obj))? != package::Kind::Elf {
            return Err(Error::new(
                ErrorKind::Usage,
                format!("{}: pack takes a BPF object (.bpf.o)", self.obj),
            ));
        }
        let object = package::load(bytes, &self.obj).map_err(|e| e.context(&self.obj))?;
        let text = package::eunomia::pack(&object);
        match self.output {
            Some(path) => crate::files::write_atomic(std::path::Path::new(&path), text.as_bytes())?,
            None => print!("{text}"),
        }
        Ok(0)
    }
}
