//! tc / tcx / classifier, on `--iface` or the package's ifindex, ingress unless the section or
//! the package says egress. From 6.6 aya attaches through TCX links (no qdisc, none left).

use aya::programs::{tc, Program, TcAttachType};

use super::{if_name, iface_index, mismatch, AttachOptions, Ctx, Failure};
use crate::package::Prog;

pub(super) fn attach(
    prog: &mut Program,
    egress: bool,
    p: &Prog,
    opts: &AttachOptions,
    ctx: &mut Ctx,
) -> Result<(), Failure> {
    let Program::SchedClassifier(t) = prog else {
        return Err(mismatch());
    };
    let ifname = match &opts.iface {
        Some(n) => n.clone(),
        None => if_name(iface_index(p, opts)?)?,
    };
    let tcx = aya::util::KernelVersion::current()
        .is_ok_and(|v| v >= aya::util::KernelVersion::new(6, 6, 0));
    if !tcx {
        // An existing clsact qdisc is fine: the error is ignored.
        let _ = tc::qdisc_add_clsact(&ifname);
    }
    let at = match p.tc_attach_point.as_deref() {
        Some("BPF_TC_EGRESS") => TcAttachType::Egress,
        Some("BPF_TC_INGRESS") => TcAttachType::Ingress,
        _ if egress => TcAttachType::Egress,
        _ => TcAttachType::Ingress,
    };
    ctx.load(|| t.load())?;
    t.attach(&ifname, at)?;
    Ok(())
}
