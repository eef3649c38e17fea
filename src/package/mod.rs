//! Packages, pure: bytes in, a [`Package`] out. The kind is told by content (eunomia
//! package.json, raw BPF ELF object, Wasm module); the object model ([`Object`], [`Meta`]) is
//! derived from the object's own ELF and BTF, and package JSON only adds to it. Nothing here
//! knows how the loader attaches or which kernel runs it.

#[doc(hidden)]
pub mod btfgen;
#[doc(hidden)]
pub mod elf;
#[doc(hidden)]
pub mod eunomia;
#[doc(hidden)]
pub mod externs;
#[doc(hidden)]
pub mod meta;
#[doc(hidden)]
pub mod usage;
#[doc(hidden)]
pub mod wasm_btf;

pub use meta::{MapDef, Meta, Object, Prog, Sample, SampleKind};

use crate::error::{Error, ErrorKind, Result};

/// Largest object we inflate: far above any real BPF object, small enough for an edge node.
pub const MAX_OBJECT_SIZE: usize = 64 << 20;

/// The three kinds of package.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Kind {
    /// An eunomia `package.json` (the object inside, base64 and maybe zlib).
    Json,
    /// A raw BPF object (`.bpf.o`).
    Elf,
    /// A Wasm app carrying its objects and its user-space logic.
    Wasm,
}

impl Kind {
    /// What it is called in messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Json => "package.json",
            Kind::Elf => "BPF object",
            Kind::Wasm => "Wasm module",
        }
    }
}

/// A tar archive (ustar magic): ecc's btfgen output, package.json and its kernel BTF.
#[doc(hidden)]
pub fn is_tar(bytes: &[u8]) -> bool {
    bytes.len() >= 512 && &bytes[257..262] == b"ustar"
}

/// The kind of a package, by its first bytes; an error names the three kinds accepted.
pub fn detect(bytes: &[u8]) -> Result<Kind> {
    if is_tar(bytes) {
        return Err(Error::invalid(
            "a tar archive (ecc's btfgen output): `edge-ecli run` and `info` read it; to publish it, push its package.json with --btfgen DIR",
        ));
    }
    if bytes.starts_with(b"\0asm") {
        return Ok(Kind::Wasm);
    }
    if bytes.starts_with(b"\x7fELF") {
        return Ok(Kind::Elf);
    }
    let first = bytes.iter().find(|c| !c.is_ascii_whitespace());
    if first == Some(&b'{') {
        return Ok(Kind::Json);
    }
    Err(Error::invalid(
        "not a package: expected an eunomia package.json, a BPF ELF object or a Wasm module",
    ))
}

/// Anything `edge-ecli run` can run.
// One per instance: boxing the object would only add an indirection.
#[allow(clippy::large_enum_variant)]
pub enum Package {
    /// A BPF object with its metadata (from a package.json or a raw `.bpf.o`).
    Object(Object),
    /// A Wasm app: the module's bytes and the name its argv[0] gets.
    Wasm {
        /// The module's bytes.
        module: Vec<u8>,
        /// Its argv[0].
        name: String,
    },
}

impl Package {
    /// Decodes a package of any kind; `name` is where it came from (a path, a reference).
    pub fn decode(bytes: Vec<u8>, name: &str) -> Result<Package> {
        if !is_tar(&bytes) && detect(&bytes)? == Kind::Wasm {
            return Ok(Package::Wasm {
                module: bytes,
                name: base_name(name, &[".wasm"]),
            });
        }
        load(bytes, name).map(Package::Object)
    }

    /// Gives a package the kernel BTF that came beside it (an OCI btfgen layer), unless it
    /// carries its own.
    pub fn with_btfgen(mut self, btfgen: Option<Vec<u8>>) -> Result<Package> {
        if let (Package::Object(o), Some(b)) = (&mut self, btfgen) {
            if o.btfs.is_none() {
                o.btfs = Some(crate::btf::hub::BtfArchive::layer(b));
            }
        }
        Ok(self)
    }
}

/// ecc's btfgen archive: a tar of package.json (or the object), and `btfhub-archive/` with
/// the minimized BTF of each kernel.
fn ecc_archive(bytes: Vec<u8>, name: &str) -> Result<Object> {
    let what = format!("{name} (tar)");
    let mut object = {
        let entries = crate::codec::tar::entries(&bytes, &what)?;
        let json = entries
            .iter()
            .find(|e| e.path.rsplit('/').next() == Some("package.json"));
        match json {
            Some(e) => {
                eunomia::load(e.data).map_err(|err| err.context(format!("{what}: package.json")))?
            }
            None => {
                let obj = entries
                    .iter()
                    .find(|e| detect(e.data).ok() == Some(Kind::Elf))
                    .ok_or_else(|| {
                        Error::invalid(format!(
                            "{what}: holds neither package.json nor a BPF object"
                        ))
                    })?;
                Object::parse(obj.data.to_vec(), &base_name(&obj.path, &[".o", ".bpf"]))?
            }
        }
    };
    if object.btfs.is_none() {
        object.btfs = Some(crate::btf::hub::BtfArchive::tar(bytes));
    }
    Ok(object)
}

/// Loads any package kind except Wasm into an Object.
pub fn load(bytes: Vec<u8>, name: &str) -> Result<Object> {
    if is_tar(&bytes) {
        return ecc_archive(bytes, name);
    }
    match detect(&bytes)? {
        Kind::Elf => Object::parse(bytes, &base_name(name, &[".o", ".bpf"])),
        Kind::Json => eunomia::load(&bytes),
        Kind::Wasm => Err(Error::new(
            ErrorKind::Usage,
            "a Wasm app carries its BPF object inside its code: `edge-ecli run` it; info and pack read package.json and .bpf.o",
        )),
    }
}

/// The last path component of `path` without the given suffixes, in order ("stdin" for `-`).
fn base_name(path: &str, suffixes: &[&str]) -> String {
    let mut base = path.rsplit('/').next().unwrap_or(path);
    // An OCI reference: the repository name without its tag or digest.
    base = base.split(['@', ':']).next().unwrap_or(base);
    for s in suffixes {
        base = base.strip_suffix(s).unwrap_or(base);
    }
    if base.is_empty() || base == "-" {
        "stdin".into()
    } else {
        base.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_kinds() {
        assert_eq!(detect(b"\0asm\x01").unwrap(), Kind::Wasm);
        assert_eq!(detect(b"\x7fELF....").unwrap(), Kind::Elf);
        assert_eq!(detect(b"  \n{\"a\":1}").unwrap(), Kind::Json);
        let e = detect(b"hello").unwrap_err();
        assert!(e.to_string().contains("not a package"));
        assert_eq!(e.kind(), ErrorKind::Invalid);
    }

    #[test]
    fn names_come_from_the_last_component() {
        assert_eq!(
            base_name("/a/b/sigsnoop.bpf.o", &[".o", ".bpf"]),
            "sigsnoop"
        );
        assert_eq!(base_name("-", &[".o"]), "stdin");
        assert_eq!(base_name("app.wasm", &[".wasm"]), "app");
        assert_eq!(
            base_name("localhost:5000/tools/sigsnoop:v1", &[".wasm"]),
            "sigsnoop"
        );
        assert_eq!(base_name("reg.io/x/app@sha256:ab", &[".wasm"]), "app");
    }
}
