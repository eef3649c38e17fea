//! xdp, on `--iface` or the package's ifindex (default 1, as ecli).

use aya::programs::{Program, XdpMode};

use super::{iface_index, mismatch, AttachOptions, Ctx, Failure};
use crate::package::Prog;

/// XDP_FLAGS_SKB_MODE in the package's xdp flags.
const XDP_FLAGS_SKB_MODE: u32 = 2;

pub(super) fn attach(
    prog: &mut Program,
    p: &Prog,
    opts: &AttachOptions,
    ctx: &mut Ctx,
) -> Result<(), Failure> {
    let Program::Xdp(t) = prog else {
        return Err(mismatch());
    };
    let mode = if p.xdp_flags & XDP_FLAGS_SKB_MODE != 0 {
        XdpMode::Skb
    } else {
        XdpMode::Default
    };
    let ifindex = iface_index(p, opts)?;
    ctx.load(|| t.load())?;
    t.attach_to_if_index(ifindex, mode)?;
    Ok(())
}
