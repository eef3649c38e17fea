//! uprobe/PATH:FUNC[+OFF] and uretprobe/...; `--uprobe-target` replaces the section's target
//! and `--uprobe-pid` limits it to one process.

use aya::programs::uprobe::{UProbeAttachLocation, UProbeScope};
use aya::programs::Program;

use super::{mismatch, AttachOptions, Ctx, Failure};

/// PATH:FUNC[+OFF] -> (path, function, offset).
fn split(target: &str) -> Result<(&str, &str, u64), Failure> {
    let (path, func) = target
        .rsplit_once(':')
        .filter(|(p, f)| !p.is_empty() && !f.is_empty())
        .ok_or_else(|| {
            Failure::msg(
                "the section names no PATH:FUNCTION; give one with --uprobe-target PATH:FUNC",
            )
        })?;
    let (func, off) = match func.split_once('+') {
        None => (func, 0),
        Some((f, o)) => {
            let off = match o.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16),
                None => o.parse(),
            }
            .map_err(|_| Failure::msg(format!("bad offset \"{o}\" in \"{target}\"")))?;
            (f, off)
        }
    };
    Ok((path, func, off))
}

pub(super) fn attach(
    prog: &mut Program,
    section_target: &str,
    opts: &AttachOptions,
    ctx: &mut Ctx,
) -> Result<(), Failure> {
    let Program::UProbe(t) = prog else {
        return Err(mismatch());
    };
    let target = opts.uprobe_target.as_deref().unwrap_or(section_target);
    let (path, func, off) = split(target)?;
    let rooted = match &opts.host_root {
        Some(r) if path.starts_with('/') => {
            format!(
                "{}/{}",
                r.trim_end_matches('/'),
                path.trim_start_matches('/')
            )
        }
        _ => path.to_string(),
    };
    let path = rooted.as_str();
    ctx.load(|| t.load())?;
    let point = if off == 0 {
        UProbeAttachLocation::Symbol(func)
    } else {
        UProbeAttachLocation::SymbolOffset(func, off)
    };
    let scope = match std::num::NonZeroU32::new(opts.uprobe_pid) {
        Some(pid) => UProbeScope::OneProcess(pid),
        None => UProbeScope::AllProcesses,
    };
    t.attach(point, path, scope)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_into_path_function_and_offset() {
        assert!(matches!(split("/bin/x:main"), Ok(("/bin/x", "main", 0))));
        assert!(matches!(
            split("/bin/x:main+0x10"),
            Ok(("/bin/x", "main", 16))
        ));
        assert!(split("main").is_err());
        assert!(split("/bin/x:").is_err());
        assert!(split("/bin/x:f+q").is_err());
    }
}
