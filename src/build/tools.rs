//! The tools `build` runs (clang, bpftool): found on PATH or through an environment variable,
//! run with a time limit in a scratch directory, and vmlinux.h made from this kernel's BTF.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{kfuncs, Arch, Options};
use crate::error::{Error, ErrorKind, Result};

const BPFTOOL_TIMEOUT: Duration = Duration::from_secs(120);
const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

/// An executable `name` on PATH.
pub(super) fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The tool an environment variable names (which must exist), else the first of `names`
/// on PATH.
pub(super) fn find_tool(var: &str, names: &[&str]) -> Result<Option<PathBuf>> {
    if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(&v);
        let found = if p.components().count() > 1 {
            p.is_file().then_some(p)
        } else {
            on_path(&p.to_string_lossy())
        };
        return found.map(Some).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("{var}={}: no such program", v.to_string_lossy()),
            )
        });
    }
    Ok(names.iter().find_map(|n| on_path(n)))
}

pub(super) fn clang() -> Result<PathBuf> {
    const NAMES: &[&str] = &[
        "clang", "clang-21", "clang-20", "clang-19", "clang-18", "clang-17", "clang-16",
        "clang-15", "clang-14",
    ];
    find_tool("CLANG", NAMES)?.ok_or_else(|| {
        Error::new(
            ErrorKind::NotFound,
            "clang not found on PATH (looked for clang and clang-14 to clang-21): build needs \
             it to compile BPF C; install it (Debian/Ubuntu: apt install clang; Fedora: dnf \
             install clang) or set CLANG=/path/to/clang",
        )
    })
}

/// Runs `cmd` with a time limit; (success, stdout, stderr).
pub(super) fn run(
    cmd: &mut Command,
    limit: Duration,
    what: &str,
) -> Result<(bool, Vec<u8>, String)> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::msg(format!("cannot run {what}: {e}")))?;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    });
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child
            .try_wait()
            .map_err(|e| Error::msg(format!("{what}: {e}")))?
        {
            break st;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::msg(format!(
                "{what} did not finish in {} s and was stopped",
                limit.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok((status.success(), stdout, stderr))
}

/// A scratch directory removed when dropped.
pub(super) struct Scratch(pub(super) PathBuf);

impl Scratch {
    pub(super) fn new() -> Result<Scratch> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p =
            std::env::temp_dir().join(format!("edge-ecli-build-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(p.join("include"))
            .map_err(|e| Error::msg(format!("{}: {e}", p.display())))?;
        Ok(Scratch(p))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The system include directories clang searches for C (where `asm/types.h` lives), to be
/// searched after ours when compiling for BPF, as libbpf-bootstrap does.
pub(super) fn system_includes(clang: &Path) -> Vec<String> {
    let Ok((_, _, err)) = run(
        Command::new(clang).args(["-v", "-E", "-x", "c", "/dev/null", "-o", "/dev/null"]),
        Duration::from_secs(30),
        "clang -v",
    ) else {
        return Vec::new();
    };
    err.lines()
        .skip_while(|l| !l.starts_with("#include <...> search starts here"))
        .skip(1)
        .take_while(|l| !l.starts_with("End of search list"))
        .map(|l| l.trim().to_string())
        .collect()
}

/// Writes include/vmlinux.h: the given file, or bpftool's C dump of this kernel's BTF. Err
/// is why there is none (said only if the source turns out to need it).
pub(super) fn vmlinux_header(
    opts: &Options,
    dir: &Path,
    warn: &mut dyn FnMut(String),
) -> Result<String> {
    let target = dir.join("vmlinux.h");
    if let Some(v) = &opts.vmlinux {
        std::fs::copy(v, &target).map_err(|e| {
            Error::new(
                ErrorKind::NotFound,
                format!("--vmlinux {}: cannot read: {e}", v.display()),
            )
        })?;
        return Ok(String::new());
    }
    if !Path::new(KERNEL_BTF).exists() {
        return Err(Error::msg(format!(
            "there is no {KERNEL_BTF} to make a vmlinux.h from: pass --vmlinux FILE"
        )));
    }
    let Some(bpftool) = find_tool("BPFTOOL", &["bpftool"])?.or_else(|| {
        ["/usr/sbin/bpftool", "/sbin/bpftool"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
    }) else {
        return Err(Error::msg(
            "bpftool is not installed to make a vmlinux.h from this kernel's BTF: install it \
             (Debian/Ubuntu: apt install bpftool) or pass --vmlinux FILE",
        ));
    };
    let (ok, out, err) = run(
        Command::new(&bpftool).args(["btf", "dump", "file", KERNEL_BTF, "format", "c"]),
        BPFTOOL_TIMEOUT,
        "bpftool btf dump",
    )?;
    if !ok {
        return Err(Error::msg(format!(
            "bpftool could not dump {KERNEL_BTF}: {}",
            err.trim()
        )));
    }
    // The kfunc prototypes bpftool before 7.5 leaves out, from the same BTF.
    let mut out = String::from_utf8_lossy(&out).into_owned();
    if !out.contains("BPF_NO_KFUNC_PROTOTYPES") {
        match std::fs::read(KERNEL_BTF)
            .map_err(|e| e.to_string())
            .and_then(|raw| crate::btf::Btf::parse(&raw).map_err(|e| e.to_string()))
        {
            Ok(b) => out.push_str(&kfuncs::prototypes(&b)),
            Err(e) => warn(format!(
                "vmlinux.h has no kfunc prototypes: {KERNEL_BTF}: {e}"
            )),
        }
    }
    std::fs::write(&target, out).map_err(|e| Error::msg(format!("{}: {e}", target.display())))?;
    if opts.arch != Arch::host() {
        warn(format!(
            "vmlinux.h comes from this {} kernel's BTF; for {:?} kernel types (pt_regs...) pass --vmlinux with that architecture's header",
            std::env::consts::ARCH,
            opts.arch
        ));
    }
    Ok(String::new())
}
