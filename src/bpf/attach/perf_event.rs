//! perf_event: one sampling event per online CPU (PERF_COUNT_SW_CPU_CLOCK at `--freq` Hz), as
//! libbpf-tools' profile does.

use aya::programs::perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent};
use aya::programs::Program;

use super::{mismatch, AttachOptions, Ctx, Failure};

pub(super) fn attach(
    prog: &mut Program,
    opts: &AttachOptions,
    ctx: &mut Ctx,
) -> Result<(), Failure> {
    let Program::PerfEvent(t) = prog else {
        return Err(mismatch());
    };
    if opts.freq == 0 {
        return Err(Failure::msg("--freq must be at least 1 Hz"));
    }
    let cpus =
        crate::bpf::sys::online_cpus().map_err(|e| Failure::os("reading the online CPUs", e))?;
    ctx.load(|| t.load())?;
    for cpu in cpus {
        t.attach(
            PerfEventConfig::Software(SoftwareEvent::CpuClock),
            PerfEventScope::AllProcessesOneCpu { cpu },
            SamplePolicy::Frequency(opts.freq),
            false,
        )?;
    }
    Ok(())
}
