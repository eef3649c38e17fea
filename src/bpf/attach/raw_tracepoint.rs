//! raw_tracepoint/NAME (and raw_tp/...).

use aya::programs::Program;

use super::{mismatch, Ctx, Failure};

pub(super) fn attach(prog: &mut Program, name: &str, ctx: &mut Ctx) -> Result<(), Failure> {
    let Program::RawTracePoint(t) = prog else {
        return Err(mismatch());
    };
    ctx.load(|| t.load())?;
    t.attach(name)?;
    Ok(())
}
