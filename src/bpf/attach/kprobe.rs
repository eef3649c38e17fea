//! kprobe/F[+OFF], kretprobe/F, and ksyscall/NAME (a kprobe on this arch's syscall wrapper).

use aya::programs::Program;

use super::{mismatch, Ctx, Failure};

pub(super) fn attach(
    prog: &mut Program,
    func: &str,
    offset: u64,
    ctx: &mut Ctx,
) -> Result<(), Failure> {
    let Program::KProbe(t) = prog else {
        return Err(mismatch());
    };
    ctx.load(|| t.load())?;
    t.attach(func, offset)?;
    Ok(())
}
