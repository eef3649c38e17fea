//! `edge-ecli build`: what eunomia's ecc does, without Docker (design.md section 17). clang
//! (and bpftool, for a vmlinux.h of this kernel) are needed at build time only: they are
//! found on PATH, run with a time limit, and their messages are passed on.
//!
//! X.bpf.c [X.h] -> X.bpf.o (clang; every `struct NAME {` of X.h kept in BTF through an
//! `__eunomia_dummy_NAME_ptr`), package.json (the object packed, with the source's doc
//! comments), X.skel.h (the object for a C Wasm guest). Reading the source's comments, the
//! header's structs and writing the skeleton are pure (`doc`, `lex`, `skel`).

pub mod doc;
mod headers;
mod kfuncs;
pub mod lex;
pub mod skel;
mod tools;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tools::{clang, run, system_includes, vmlinux_header, Scratch};

use crate::error::{Error, ErrorKind, Result};
use crate::files::write_atomic;
use crate::package::{self, eunomia, Object};

/// Largest source or header read: far above any BPF program.
const MAX_SOURCE: u64 = 8 << 20;
/// A compile taking longer than this is stuck.
const CLANG_TIMEOUT: Duration = Duration::from_secs(300);

/// `-D__TARGET_ARCH_*`: what PT_REGS_* and BPF_KPROBE read registers as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86,
    Arm64,
    Riscv,
}

impl Arch {
    pub fn parse(s: &str) -> Result<Arch> {
        match s {
            "x86" | "x86_64" => Ok(Arch::X86),
            "arm64" | "aarch64" => Ok(Arch::Arm64),
            "riscv" | "riscv64" => Ok(Arch::Riscv),
            _ => Err(Error::new(
                ErrorKind::Usage,
                format!("--arch {s}: unknown architecture; use x86, arm64 or riscv"),
            )),
        }
    }

    pub fn host() -> Arch {
        match std::env::consts::ARCH {
            "aarch64" => Arch::Arm64,
            "riscv64" => Arch::Riscv,
            _ => Arch::X86,
        }
    }

    fn define(self) -> &'static str {
        match self {
            Arch::X86 => "-D__TARGET_ARCH_x86",
            Arch::Arm64 => "-D__TARGET_ARCH_arm64",
            Arch::Riscv => "-D__TARGET_ARCH_riscv",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub source: PathBuf,
    pub header: Option<PathBuf>,
    /// The package.json to write; the object and skeleton go beside it.
    pub output: PathBuf,
    pub includes: Vec<PathBuf>,
    pub vmlinux: Option<PathBuf>,
    pub arch: Arch,
    /// Extra clang flags.
    pub cflags: Vec<String>,
    /// Where the steps are reported as they begin (off by default).
    pub meter: crate::progress::Meter,
    /// `--export-type`: the only structs exported (default: the header's).
    pub export_types: Vec<String>,
    /// `--btfgen`: kernel BTF files to cut and carry (none: the package carries no BTF).
    pub btfgen: Vec<(crate::btf::hub::BtfKey, PathBuf)>,
}

/// What a build wrote.
pub struct Built {
    pub package: PathBuf,
    pub object_path: PathBuf,
    pub skeleton: PathBuf,
    pub object: Object,
    /// What `--btfgen` carried, when it was given and the object has CO-RE relocations.
    pub btfgen: Option<crate::package::btfgen::Summary>,
}

/// `X` of `X.bpf.c` (or `X.c`).
pub fn stem(source: &Path) -> String {
    let name = source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let s = name
        .strip_suffix(".bpf.c")
        .or_else(|| name.strip_suffix(".c"))
        .unwrap_or(&name);
    s.to_string()
}

/// A C identifier from a file stem: what ecc names the object (`X_bpf`).
pub fn c_ident(stem: &str) -> String {
    let mut s: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) || s.is_empty() {
        s.insert(0, '_');
    }
    s.push_str("_bpf");
    s
}

fn read_text(p: &Path, what: &str) -> Result<String> {
    let f = std::fs::File::open(p).map_err(|e| {
        Error::new(
            ErrorKind::NotFound,
            format!("{}: cannot read the {what}: {e}", p.display()),
        )
    })?;
    let mut bytes = Vec::new();
    f.take(MAX_SOURCE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::msg(format!("{}: {e}", p.display())))?;
    if bytes.len() as u64 > MAX_SOURCE {
        return Err(Error::invalid(format!(
            "{}: the {what} is larger than {} MiB",
            p.display(),
            MAX_SOURCE >> 20
        )));
    }
    String::from_utf8(bytes)
        .map_err(|_| Error::invalid(format!("{}: the {what} is not UTF-8 text", p.display())))
}

/// Compiles, packs and writes everything; warnings go to `warn` as they are found.
pub fn build(opts: &Options, warn: &mut dyn FnMut(String)) -> Result<Built> {
    let src_label = opts.source.display().to_string();
    let source = read_text(&opts.source, "BPF source")?;
    let stem = stem(&opts.source);
    let ident = c_ident(&stem);
    let header_structs = exported_structs(opts, warn)?;
    let clang = clang()?;
    let scratch = Scratch::new()?;
    let include = scratch.0.join("include");
    // libbpf 1.7's headers, ahead of the system's (older ones lack BPF_UPROBE,
    // bpf_ksym_exists...).
    headers::write(&include)?;
    if opts.vmlinux.is_none() {
        opts.meter
            .step("[1/3] making vmlinux.h from this kernel's BTF (bpftool)");
    }
    let vmlinux = vmlinux_header(opts, &include, warn);
    if let (Err(e), Some(_)) = (&vmlinux, &opts.vmlinux) {
        return Err(e.clone());
    }
    let wrapper_path = scratch.0.join(format!("{stem}.bpf.c"));
    std::fs::write(&wrapper_path, wrapper_unit(&source, &header_structs))
        .map_err(|e| Error::msg(format!("{e}")))?;
    let obj_tmp = scratch.0.join(format!("{stem}.bpf.o"));
    let mut cmd = clang_command(opts, &clang, &scratch.0, &wrapper_path, &obj_tmp)?;
    opts.meter.step(&format!(
        "[2/3] compiling {src_label} ({})",
        file_name(&clang)
    ));
    let result = run(&mut cmd, CLANG_TIMEOUT, "clang");
    opts.meter.step("");
    let (ok, _, err) = result?;
    if !err.trim().is_empty() {
        // clang's own diagnostics, warnings included, as it printed them.
        eprint!("{err}");
    }
    if !ok {
        return Err(clang_failed(&src_label, &err, vmlinux.err()));
    }
    let bytes = std::fs::read(&obj_tmp).map_err(|e| Error::msg(format!("{e}")))?;
    let mut object = Object::parse(bytes, &ident).map_err(|e| e.context(&src_label))?;
    let mut btfgen = None;
    if !opts.btfgen.is_empty() {
        match crate::package::btfgen::cut(&[&object], &opts.btfgen)? {
            Some((set, summary)) => {
                object.btfs = Some(set);
                btfgen = Some(summary);
            }
            None => warn(format!(
                "{src_label} has no CO-RE relocations: it needs no kernel BTF, so --btfgen carries none"
            )),
        }
    }
    for n in &header_structs {
        if object.find_struct(n).is_none() {
            warn(format!(
                "struct {n} of the header did not reach the object's BTF (does {src_label} include the header?): it is not exported"
            ));
        }
    }
    opts.meter
        .step("[3/3] packing package.json and writing the skeleton");
    let found = doc::parse(&src_label, &source);
    for w in &found.warnings {
        warn(w.clone());
    }
    let docs = package_docs(&object, &found, warn);
    let text = eunomia::pack_with(&object, &docs);
    let object = eunomia::load(text.as_bytes()).map_err(|e| {
        Error::invalid(format!(
            "the package made from {src_label} does not load: {e} (check its doc comment annotations)"
        ))
    })?;
    let built = write_outputs(opts, &stem, &ident, object, &text, btfgen)?;
    opts.meter.step("");
    Ok(built)
}

/// The structs exported as event types: the header's, or `--export-type`'s.
fn exported_structs(opts: &Options, warn: &mut dyn FnMut(String)) -> Result<Vec<String>> {
    let header_structs = match &opts.header {
        Some(h) => {
            let text = read_text(h, "header")?;
            let names = lex::struct_definitions(&text);
            if names.is_empty() {
                warn(format!(
                    "{}: the header defines no struct (`struct NAME {{ ... }};`), so it names no event type to export",
                    h.display()
                ));
            }
            names
        }
        None => Vec::new(),
    };
    // --export-type narrows the header's structs, or names structs the source defines.
    let structs = if opts.export_types.is_empty() {
        header_structs
    } else {
        for n in &header_structs {
            if !opts.export_types.contains(n) {
                log::debug!("struct {n} of the header is not exported (--export-type)");
            }
        }
        opts.export_types.clone()
    };
    if let Some(n) = structs.iter().find(|n| !is_c_ident(n)) {
        return Err(Error::invalid(format!(
            "struct name {n:?} is not a C identifier"
        )));
    }
    Ok(structs)
}

/// The unit clang compiles: it keeps the exported structs in BTF, as ecc's does. The source
/// comes in with -include (so clang's messages point at the user's file and lines) rather
/// than an #include line: the wrapper's text, whose MD5 lands in the debug info, must not
/// hold the checkout's path, or each checkout would build other bytes.
fn wrapper_unit(source: &str, structs: &[String]) -> String {
    let mut wrapper = String::new();
    for n in structs {
        let var = format!("{}{n}_ptr", package::meta::DUMMY_PREFIX);
        if !source.contains(&var) {
            wrapper.push_str(&format!(
                "const volatile struct {n} *{var} __attribute__((unused));\n"
            ));
        }
    }
    wrapper
}

/// clang's command line: run in `scratch` (which holds include/), compiling `wrapper` with
/// the user's source included, into `obj`.
fn clang_command(
    opts: &Options,
    clang: &Path,
    scratch: &Path,
    wrapper: &Path,
    obj: &Path,
) -> Result<Command> {
    let src_label = opts.source.display();
    let abs_source =
        std::fs::canonicalize(&opts.source).map_err(|e| Error::msg(format!("{src_label}: {e}")))?;
    let mut cmd = Command::new(clang);
    // The scratch directory's random name must not reach the object's debug info: the same
    // source gives the same bytes (and package digest) on every build.
    let mut prefix_map = std::ffi::OsString::from("-fdebug-prefix-map=");
    prefix_map.push(scratch);
    prefix_map.push("=.");
    cmd.current_dir(scratch)
        .arg(prefix_map)
        .args(["-g", "-O2", "-target", "bpf", opts.arch.define()])
        .arg("-I")
        .arg(scratch.join("include"));
    if let Some(dir) = abs_source.parent() {
        cmd.arg("-I").arg(dir);
    }
    // clang runs in the scratch directory: relative paths are made absolute first.
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    if let Some(h) = &opts.header {
        if let Some(dir) = abs(h).parent() {
            cmd.arg("-I").arg(dir);
        }
    }
    for i in &opts.includes {
        cmd.arg("-I").arg(abs(i));
    }
    for d in system_includes(clang) {
        cmd.arg("-idirafter").arg(d);
    }
    cmd.args(&opts.cflags)
        .arg("-include")
        .arg(&abs_source)
        .arg("-c")
        .arg(wrapper)
        .arg("-o")
        .arg(obj);
    Ok(cmd)
}

/// The error of a failed compile, with a hint for the missing headers it can explain.
fn clang_failed(src_label: &str, stderr: &str, vmlinux: Option<Error>) -> Error {
    let mut hint = String::new();
    if stderr.contains("'vmlinux.h' file not found") {
        if let Some(e) = vmlinux {
            hint = format!(": the source includes vmlinux.h and {e}");
        }
    } else if stderr.contains("'bpf/bpf_helpers.h' file not found") {
        hint = ": the libbpf headers are missing; install them (Debian/Ubuntu: apt install libbpf-dev) or pass -I DIR with bpf/bpf_helpers.h".into();
    }
    Error::invalid(format!(
        "clang could not compile {src_label} (its messages are above){hint}"
    ))
}

/// Writes the object, the package and the skeleton beside `opts.output`.
fn write_outputs(
    opts: &Options,
    stem: &str,
    ident: &str,
    object: Object,
    package_text: &str,
    btfgen: Option<crate::package::btfgen::Summary>,
) -> Result<Built> {
    let out_dir = opts
        .output
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let object_path = out_dir.join(format!("{stem}.bpf.o"));
    let skeleton = out_dir.join(format!("{stem}.skel.h"));
    write_atomic(&object_path, &object.bytes)?;
    write_atomic(&opts.output, package_text.as_bytes())?;
    write_atomic(
        &skeleton,
        skel::render(&object, ident, &file_name(&opts.source)).as_bytes(),
    )?;
    Ok(Built {
        package: opts.output.clone(),
        object_path,
        skeleton,
        object,
        btfgen,
    })
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn is_c_ident(s: &str) -> bool {
    s.starts_with(|c: char| c == '_' || c.is_ascii_alphabetic())
        && s.chars().all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Keys an item of the package already has, which a doc comment must not replace.
const RESERVED: &[&str] = &["name", "type", "ident", "attach", "link", "mmaped"];

/// The doc comments that belong to something the package lists, as `pack_with` takes them.
fn package_docs(object: &Object, found: &doc::Docs, warn: &mut dyn FnMut(String)) -> eunomia::Docs {
    let m = &object.meta;
    let mut docs = eunomia::Docs::default();
    for item in &found.items {
        let keys = |warn: &mut dyn FnMut(String)| -> Vec<(String, String)> {
            item.keys
                .iter()
                .filter(|(k, _)| {
                    let reserved = RESERVED.contains(&k.as_str());
                    if reserved {
                        warn(format!(
                            "line {}: @{k} of {} would replace the package's own \"{k}\"; ignored",
                            item.line, item.name
                        ));
                    }
                    !reserved
                })
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect()
        };
        match item.kind {
            doc::Kind::Var if item.name == "LICENSE" => docs.doc = keys(warn),
            doc::Kind::Var if m.globals.iter().any(|g| g.name == item.name) => {
                docs.vars.push((item.name.clone(), keys(warn)))
            }
            doc::Kind::Map if m.maps.iter().any(|d| d.name == item.name) => {
                docs.maps.push((item.name.clone(), keys(warn)))
            }
            doc::Kind::Func if m.progs.iter().any(|p| p.name == item.name) => {
                docs.progs.push((item.name.clone(), keys(warn)))
            }
            _ => {}
        }
    }
    docs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_the_source_file() {
        assert_eq!(stem(Path::new("/a/sigsnoop.bpf.c")), "sigsnoop");
        assert_eq!(stem(Path::new("x.c")), "x");
        assert_eq!(c_ident("my-tool"), "my_tool_bpf");
        assert_eq!(c_ident("1x"), "_1x_bpf");
    }

    #[test]
    fn arch_names() {
        assert_eq!(Arch::parse("arm64").unwrap(), Arch::Arm64);
        assert_eq!(Arch::parse("x86").unwrap().define(), "-D__TARGET_ARCH_x86");
        let e = Arch::parse("mips").unwrap_err().to_string();
        assert!(
            e.contains("--arch mips: unknown architecture; use x86, arm64 or riscv"),
            "{e}"
        );
    }
}
