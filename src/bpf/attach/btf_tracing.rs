//! Programs loaded against a kernel BTF type: tp_btf/NAME, fentry/F, fexit/F, lsm/HOOK.

use aya::programs::Program;

use super::{mismatch, Ctx, Failure};

pub(super) fn attach(prog: &mut Program, target: &str, ctx: &mut Ctx) -> Result<(), Failure> {
    let btf = ctx.kbtf()?;
    match prog {
        Program::BtfTracePoint(t) => {
            ctx.load(|| t.load(target, btf))?;
            t.attach()?;
        }
        Program::FEntry(t) => {
            ctx.load(|| t.load(target, btf))?;
            t.attach()?;
        }
        Program::FExit(t) => {
            ctx.load(|| t.load(target, btf))?;
            t.attach()?;
        }
        Program::Lsm(t) => {
            ctx.load(|| t.load(target, btf))?;
            t.attach()?;
        }
        _ => return Err(mismatch()),
    }
    Ok(())
}
