//! kprobe/F[+OFF], kretprobe/F, and ksyscall/NAME (a kprobe on this arch's syscall wrapper).
//! The function is looked up first as bpftrace looks it up: a compiler clone (`F.isra.0`,
//! `F.constprop.0`) stands for F, and a function ftrace cannot trace is named as such.

use std::sync::OnceLock;

use aya::programs::Program;

use super::{mismatch, Ctx, Failure};

/// Every function a kprobe can attach to (ftrace's list), read once; None without tracefs.
fn traceable() -> Option<&'static str> {
    static LIST: OnceLock<Option<String>> = OnceLock::new();
    LIST.get_or_init(|| {
        ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
            .iter()
            .find_map(|d| std::fs::read_to_string(format!("{d}/available_filter_functions")).ok())
    })
    .as_deref()
}

/// The function to attach to: F itself, or its clone. A function the kernel has but cannot
/// trace, or does not have at all, is an error that says which.
pub(super) fn resolve(
    func: &str,
    list: &str,
    kallsyms: impl FnOnce() -> bool,
) -> Result<String, Failure> {
    let mut clone = None;
    for line in list.lines() {
        let name = line.split_ascii_whitespace().next().unwrap_or("");
        if name == func {
            return Ok(func.to_string());
        }
        if clone.is_none()
            && name.strip_prefix(func).is_some_and(|rest| {
                [".isra.", ".constprop.", ".part.", ".cold", ".llvm."]
                    .iter()
                    .any(|p| rest.starts_with(p))
            })
        {
            clone = Some(name.to_string());
        }
    }
    if let Some(c) = clone {
        log::info!("kprobe on {func}: the kernel has it as the clone {c}");
        return Ok(c);
    }
    if kallsyms() {
        return Err(Failure::absent(format!(
            "kernel function {func} cannot be traced (notrace, or inlined into its callers): kprobes cannot attach to it"
        )));
    }
    Err(Failure::absent(format!(
        "this kernel has no function {func}"
    )))
}

pub(super) fn attach(
    prog: &mut Program,
    func: &str,
    offset: u64,
    ctx: &mut Ctx,
) -> Result<(), Failure> {
    let Program::KProbe(t) = prog else {
        return Err(mismatch());
    };
    // Only where kprobes exist at all: otherwise aya's own error says so (and the hint).
    let func = match traceable() {
        Some(list) if std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists() => {
            resolve(func, list, || in_kallsyms(func))?
        }
        _ => func.to_string(),
    };
    ctx.load(|| t.load())?;
    t.attach(func.as_str(), offset)?;
    Ok(())
}

fn in_kallsyms(func: &str) -> bool {
    std::fs::read_to_string("/proc/kallsyms").is_ok_and(|t| {
        t.lines()
            .any(|l| l.split_ascii_whitespace().nth(2) == Some(func))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_stand_for_their_function_and_notrace_is_named() {
        let list = "vfs_read\ntcp_sendmsg.isra.0 [tcp]\nfoo.constprop.3\nfoobar\n";
        assert_eq!(
            resolve("vfs_read", list, || false).ok(),
            Some("vfs_read".into())
        );
        assert_eq!(
            resolve("tcp_sendmsg", list, || false).ok(),
            Some("tcp_sendmsg.isra.0".into())
        );
        assert_eq!(
            resolve("foo", list, || false).ok(),
            Some("foo.constprop.3".into())
        );
        let e = resolve("secret", list, || true).err().unwrap();
        assert!(e.text.contains("cannot be traced") && e.absent);
        let e = resolve("nothere", list, || false).err().unwrap();
        assert!(e.text.contains("no function nothere"));
    }
}
