//! The values of an object's `extern`s on this kernel, found where libbpf finds them:
//! `LINUX_KERNEL_VERSION` from `uname`, `CONFIG_*` from /proc/config.gz or
//! /boot/config-$(uname -r), typed `__ksym`s and kfuncs in the kernel's BTF, untyped ones in
//! /proc/kallsyms. The object is then rewritten with them (`package::externs`).

use std::collections::HashMap;

use super::kernel_btf::{self, KernelBtf};
use crate::btf;
use crate::error::{Error, Result};
use crate::package::externs::{encode_kconfig, Extern, ExternKind, KconfigType, Value};

/// Largest kernel config read (a distribution's is ~250 KB).
const MAX_CONFIG: usize = 16 << 20;

use crate::sys::kernel_release;

/// KERNEL_VERSION(a, b, c) of a release string ("6.18.0-1-amd64"), the patch level capped
/// at 255 as the kernel's macro does.
pub fn kernel_version(release: &str) -> Option<u32> {
    let mut it = release
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u32>().ok());
    let (a, b) = (it.next()??, it.next()??);
    let c = it.next().flatten().unwrap_or(0);
    Some((a << 16) + (b << 8) + c.min(255))
}

/// The kernel's config as `CONFIG_X` -> value text (`y`, `m`, `"str"`, `123`); `n` for
/// "is not set".
pub fn parse_config(text: &str) -> HashMap<String, String> {
    let mut m = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("# ") {
            if let Some(name) = rest.strip_suffix(" is not set") {
                m.insert(name.to_string(), "n".to_string());
            }
        } else if let Some((k, v)) = line.split_once('=') {
            if k.starts_with("CONFIG_") {
                m.insert(k.to_string(), v.to_string());
            }
        }
    }
    m
}

fn read_config(release: &str) -> Option<(String, HashMap<String, String>)> {
    if let Ok(gz) = crate::files::read_limited("/proc/config.gz", MAX_CONFIG as u64) {
        if let Ok(text) = crate::codec::gzip::gunzip(&gz, MAX_CONFIG, "/proc/config.gz") {
            return Some((
                "/proc/config.gz".into(),
                parse_config(&String::from_utf8_lossy(&text)),
            ));
        }
    }
    let path = format!("/boot/config-{release}");
    let text = crate::files::read_limited(&path, MAX_CONFIG as u64).ok()?;
    Some((path, parse_config(&String::from_utf8_lossy(&text))))
}

/// The kernel's BPF cookie support (`bpf_get_attach_cookie`, Linux 5.15).
fn has_bpf_cookie(version: u32) -> bool {
    version >= (5 << 16) + (15 << 8)
}

/// Values of every extern of an object, in order, or the first error (a strong extern that
/// does not resolve, a value of the wrong type).
pub fn resolve(externs: &[Extern], btf_src: &KernelBtf) -> Result<Vec<Value>> {
    let release = kernel_release();
    let version = kernel_version(&release).unwrap_or(0);
    let need_config = externs
        .iter()
        .any(|e| matches!(e.kind, ExternKind::Kconfig(_)) && e.name.starts_with("CONFIG_"));
    let config = if need_config {
        read_config(&release)
    } else {
        None
    };
    // Typed ksyms and kfuncs: one scan of the kernel's BTF for all of them.
    let wanted: Vec<(&str, u8)> = externs
        .iter()
        .filter_map(|e| match e.kind {
            ExternKind::KsymVar { typed: true } => Some((e.name.as_str(), btf::KIND_VAR)),
            ExternKind::KsymFunc => Some((e.name.as_str(), btf::KIND_FUNC)),
            _ => None,
        })
        .collect();
    // None: the kernel has no BTF of its own, so it can resolve no typed ksym.
    let ids = if wanted.is_empty() {
        Some(vec![])
    } else {
        kernel_btf::kernel_ids(btf_src, &wanted)?
    };
    let untyped: Vec<&str> = externs
        .iter()
        .filter(|e| e.kind == ExternKind::KsymVar { typed: false })
        .map(|e| e.name.as_str())
        .collect();
    let addrs = if untyped.is_empty() {
        HashMap::new()
    } else {
        kallsyms_addrs(&untyped)?
    };
    let mut out = Vec::with_capacity(externs.len());
    for e in externs {
        let missing = |what: &str| -> Result<Value> {
            if e.weak {
                log::debug!("extern {}: {what}; weak, so 0", e.name);
                Ok(Value::Zero)
            } else {
                Err(Error::new(
                    crate::error::ErrorKind::Kernel,
                    format!("extern {}: {what}; the object needs it (declare it __weak to run without it)", e.name),
                ))
            }
        };
        let v = match &e.kind {
            ExternKind::Kconfig(t) => {
                let text: Option<String> = match e.name.as_str() {
                    "LINUX_KERNEL_VERSION" => {
                        if !matches!(t, KconfigType::Int { size: 4, .. }) {
                            return Err(Error::invalid(
                                "extern (kconfig) LINUX_KERNEL_VERSION must be a 32-bit integer",
                            ));
                        }
                        Some(version.to_string())
                    }
                    "LINUX_HAS_BPF_COOKIE" => Some(if has_bpf_cookie(version) { "y" } else { "n" }.into()),
                    "LINUX_HAS_SYSCALL_WRAPPER" => Some(
                        if syscall_wrapper() { "y" } else { "n" }.into(),
                    ),
                    n if n.starts_with("LINUX_") => {
                        return Err(Error::invalid(format!(
                            "extern (kconfig) {n}: not a value libbpf knows (LINUX_KERNEL_VERSION, LINUX_HAS_BPF_COOKIE, LINUX_HAS_SYSCALL_WRAPPER)"
                        )))
                    }
                    n if n.starts_with("CONFIG_") => match &config {
                        Some((_, c)) => c.get(n).cloned(),
                        None if e.weak => None,
                        None => {
                            return Err(Error::new(
                                crate::error::ErrorKind::NotFound,
                                format!(
                                    "extern (kconfig) {n}: the kernel's config is not readable (no /proc/config.gz, no /boot/config-{release}); the object needs it"
                                ),
                            ))
                        }
                    },
                    n => {
                        return Err(Error::invalid(format!(
                            "extern (kconfig) {n}: kconfig externs are CONFIG_* or LINUX_* names"
                        )))
                    }
                };
                if text.is_none() && !e.weak {
                    let from = config.as_ref().map_or("", |(p, _)| p.as_str());
                    return Err(Error::new(
                        crate::error::ErrorKind::NotFound,
                        format!("extern (kconfig) {}: not set in {from}; the object needs it (declare it __weak to run without it)", e.name),
                    ));
                }
                Value::Kconfig(encode_kconfig(&e.name, *t, text.as_deref())?)
            }
            ExternKind::KsymVar { typed: true } | ExternKind::KsymFunc => {
                let i = wanted
                    .iter()
                    .position(|(n, _)| *n == e.name)
                    .unwrap_or(usize::MAX);
                match ids.as_ref().map(|ids| ids.get(i).copied().flatten()) {
                    Some(Some(id)) => Value::BtfId(id),
                    Some(None) => missing("not in the kernel's BTF (a kernel variable or kfunc of this name is needed)")?,
                    None => missing(&format!("a typed __ksym or kfunc needs the kernel's own BTF ({}), which this kernel lacks (built without CONFIG_DEBUG_INFO_BTF)", kernel_btf::SYS_BTF))?,
                }
            }
            ExternKind::KsymVar { typed: false } => match addrs.get(e.name.as_str()) {
                Some(&a) => Value::Addr(a),
                None => missing("not in /proc/kallsyms")?,
            },
        };
        out.push(v);
    }
    Ok(out)
}

/// Addresses of kernel symbols by name, from /proc/kallsyms (root sees real addresses).
fn kallsyms_addrs(names: &[&str]) -> Result<HashMap<String, u64>> {
    let text = std::fs::read_to_string("/proc/kallsyms").map_err(|e| {
        Error::msg(format!(
            "reading /proc/kallsyms (for untyped __ksym externs): {e}"
        ))
    })?;
    let mut m = HashMap::new();
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        let (Some(a), Some(_), Some(n)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        if names.contains(&n) && !m.contains_key(n) {
            if let Ok(addr) = u64::from_str_radix(a, 16) {
                m.insert(n.to_string(), addr);
            }
        }
    }
    if m.values().all(|&a| a == 0) && !m.is_empty() {
        return Err(Error::new(
            crate::error::ErrorKind::Denied,
            "/proc/kallsyms shows zero addresses: run as root (kptr_restrict)",
        ));
    }
    Ok(m)
}

/// Does this kernel wrap syscalls (`__x64_sys_*` and friends), as libbpf probes it?
fn syscall_wrapper() -> bool {
    let want = format!("{}bpf", super::section::syscall_prefix());
    std::fs::read_to_string("/proc/kallsyms").is_ok_and(|t| {
        t.lines()
            .any(|l| l.split_ascii_whitespace().nth(2) == Some(want.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_configs_parse_as_libbpf_reads_them() {
        assert_eq!(
            kernel_version("6.18.0-1-cloud-amd64"),
            Some((6 << 16) + (18 << 8))
        );
        assert_eq!(kernel_version("5.4.300"), Some((5 << 16) + (4 << 8) + 255));
        assert_eq!(kernel_version("x"), None);
        let c = parse_config("# comment\nCONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\nCONFIG_S=\"str\"\nCONFIG_N=0x10\n");
        assert_eq!(c["CONFIG_A"], "y");
        assert_eq!(c["CONFIG_B"], "m");
        assert_eq!(c["CONFIG_C"], "n");
        assert_eq!(c["CONFIG_S"], "\"str\"");
        assert_eq!(c["CONFIG_N"], "0x10");
    }
}
