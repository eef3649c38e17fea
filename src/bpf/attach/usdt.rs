//! usdt/PATH:PROVIDER:NAME (libbpf's `usdt.bpf.h`): a uprobe at every site of the probe in
//! the binary, each with a BPF cookie that names its argument spec in the object's
//! `__bpf_usdt_specs` map (written before the probe can fire), and the probe's semaphore
//! counted by the kernel while attached (`ref_ctr_offset`), so probes guarded by
//! `PROVIDER_NAME_ENABLED()` fire. The target may come at run time (`SEC("usdt")` with
//! `--attach PROG=PATH:PROVIDER:NAME`); `--uprobe-pid` limits it to one process.

use aya::programs::uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeScope};
use aya::programs::Program;

use super::{mismatch, AttachOptions, Ctx, Failure};
use crate::bpf::sys::{KernelMap, MapOps};
use crate::usdt::args::{parse_args, Arch};
use crate::usdt::{sites, SpecLayout};

/// Largest binary whose notes are read (a JVM's libjvm.so is ~20 MB).
const MAX_BINARY: u64 = 512 << 20;

/// The object's spec map and where the next spec goes.
pub struct Specs {
    pub layout: SpecLayout,
    pub map: KernelMap,
    pub next: u32,
    pub max: u32,
}

/// PATH:PROVIDER:NAME -> (path, provider, name); the path may itself hold colons.
fn split(target: &str) -> Option<(&str, &str, &str)> {
    let mut it = target.rsplitn(3, ':');
    let (name, provider, path) = (it.next()?, it.next()?, it.next()?);
    (!name.is_empty() && !provider.is_empty() && !path.is_empty()).then_some((path, provider, name))
}

/// The binary as the process `pid` sees it: a bare name is looked up among its mappings.
fn binary_path(path: &str, pid: u32) -> String {
    if pid == 0 || path.contains('/') {
        return path.to_string();
    }
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .ok()
        .and_then(|maps| {
            maps.lines()
                .filter_map(|l| l.split_ascii_whitespace().nth(5))
                .find(|p| {
                    let base = p.rsplit('/').next().unwrap_or(p);
                    base == path || base.starts_with(&format!("{path}."))
                })
                .map(|p| format!("/proc/{pid}/root{p}"))
        })
        .unwrap_or_else(|| path.to_string())
}

pub(super) fn attach(
    prog: &mut Program,
    section_target: &str,
    opts: &AttachOptions,
    ctx: &mut Ctx,
) -> Result<(), Failure> {
    let Program::UProbe(p) = prog else {
        return Err(mismatch());
    };
    let target = match (section_target, opts.uprobe_target.as_deref()) {
        ("", Some(t)) => t,
        (t, _) => t,
    };
    let (path, provider, name) = split(target).ok_or_else(|| {
        Failure::absent(format!(
            "a USDT program needs PATH:PROVIDER:NAME (the section names \"{target}\")"
        ))
    })?;
    let specs = ctx.usdt.as_deref_mut().ok_or_else(|| {
        Failure::msg("the object has no __bpf_usdt_specs map: build it with <bpf/usdt.bpf.h>")
    })?;
    let path = binary_path(path, opts.uprobe_pid);
    let bytes = crate::files::read_limited(&path, MAX_BINARY)
        .map_err(|e| Failure::absent(format!("reading {path}: {e}")))?;
    let found =
        sites(&bytes, provider, name).map_err(|e| Failure::absent(format!("{path}: {e}")))?;
    drop(bytes);
    if found.is_empty() {
        return Err(Failure::absent(format!(
            "{path} has no USDT probe {provider}:{name}"
        )));
    }
    let arch = Arch::host().ok_or_else(|| Failure::msg("USDT arguments: unknown architecture"))?;
    let mut values = Vec::with_capacity(found.len());
    for s in &found {
        let args = parse_args(arch, &s.note.args)
            .map_err(|e| Failure::msg(format!("{provider}:{name} at {:#x}: {e}", s.note.addr)))?;
        values.push(specs.layout.encode(&args, 0).map_err(Failure::from)?);
    }
    if specs.next as usize + found.len() > specs.max as usize {
        return Err(Failure::msg(format!(
            "more USDT sites than the object's __bpf_usdt_specs map holds ({}); raise it with --map __bpf_usdt_specs.max_entries=N",
            specs.max
        )));
    }
    ctx.load(|| p.load())?;
    let specs = ctx
        .usdt
        .as_deref_mut()
        .ok_or_else(|| Failure::msg("no spec map"))?;
    let scope = match std::num::NonZeroU32::new(opts.uprobe_pid) {
        Some(pid) => UProbeScope::OneProcess(pid),
        None => UProbeScope::AllProcesses,
    };
    for (s, v) in found.iter().zip(values) {
        let id = specs.next;
        specs
            .map
            .update(&(id as i32).to_le_bytes(), &v, 0)
            .map_err(|e| Failure::os("writing the USDT spec map", e))?;
        specs.next += 1;
        let point = UProbeAttachPoint {
            location: UProbeAttachLocation::AbsoluteOffset(s.offset),
            cookie: Some(id as u64),
        };
        p.attach_with_ref_ctr(point, &path, scope, s.sema_offset)?;
    }
    log::debug!("usdt {provider}:{name}: {} site(s) in {path}", found.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_into_path_provider_and_name() {
        assert_eq!(
            split("/usr/lib/libjvm.so:hotspot:gc__begin"),
            Some(("/usr/lib/libjvm.so", "hotspot", "gc__begin"))
        );
        assert_eq!(split("/a:b/c:p:n"), Some(("/a:b/c", "p", "n")));
        assert_eq!(split("p:n"), None);
        assert_eq!(split("/x::n"), None);
    }
}
