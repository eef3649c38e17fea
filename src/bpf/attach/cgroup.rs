//! The cgroup family (cgroup_skb/*, cgroup/sock, connect4, getsockopt, sysctl, dev...) and
//! sockops, attached to `--cgroup PATH` (default the cgroup v2 root) through BPF links.

use std::os::fd::{FromRawFd, OwnedFd};

use aya::programs::cgroup_skb::CgroupSkbAttachType;
use aya::programs::{CgroupAttachMode, Program};

use super::{mismatch, AttachOptions, Ctx, Failure, DEFAULT_CGROUP};

/// CGROUP2_SUPER_MAGIC (statfs f_type of a cgroup v2 mount).
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// Opens a cgroup v2 directory.
fn open_cgroup(path: &str) -> Result<OwnedFd, Failure> {
    let c = std::ffi::CString::new(path)
        .map_err(|_| Failure::msg(format!("bad cgroup path {path:?}")))?;
    // SAFETY: c is NUL-terminated; the fd is owned below.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(Failure::msg(format!(
            "cgroup {path}: {e} (give a cgroup v2 directory with --cgroup, e.g. {DEFAULT_CGROUP})"
        )));
    }
    // SAFETY: fd was just opened and nobody else owns it.
    let dir = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: statfs into a zeroed struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(std::os::fd::AsRawFd::as_raw_fd(&dir), &mut st) } == 0
        && st.f_type as i64 != CGROUP2_SUPER_MAGIC
    {
        return Err(Failure::msg(format!(
            "{path} is not a cgroup v2 directory (mount -t cgroup2 none /sys/fs/cgroup, or give --cgroup)"
        )));
    }
    Ok(dir)
}

fn cgroup_of(opts: &AttachOptions) -> Result<OwnedFd, Failure> {
    open_cgroup(opts.cgroup.as_deref().unwrap_or(DEFAULT_CGROUP))
}

/// cgroup_skb/ingress, cgroup_skb/egress, and cgroup/skb (no direction: ingress).
pub(super) fn attach_skb(
    prog: &mut Program,
    egress: Option<bool>,
    opts: &AttachOptions,
    ctx: &mut Ctx,
) -> Result<(), Failure> {
    let Program::CgroupSkb(t) = prog else {
        return Err(mismatch());
    };
    let dir = cgroup_of(opts)?;
    let at = if egress == Some(true) {
        CgroupSkbAttachType::Egress
    } else {
        CgroupSkbAttachType::Ingress
    };
    ctx.load(|| t.load())?;
    t.attach(&dir, at, CgroupAttachMode::Single)?;
    Ok(())
}

/// Every other cgroup kind and sockops: the attach type is the one the program was loaded with.
pub(super) fn attach(
    prog: &mut Program,
    opts: &AttachOptions,
    ctx: &mut Ctx,
) -> Result<(), Failure> {
    let dir = cgroup_of(opts)?;
    let mode = CgroupAttachMode::Single;
    match prog {
        Program::SockOps(t) => {
            ctx.load(|| t.load())?;
            t.attach(&dir, mode)?;
        }
        Program::CgroupSock(t) => {
            ctx.load(|| t.load())?;
            t.attach(&dir, mode)?;
        }
        Program::CgroupSockAddr(t) => {
            ctx.load(|| t.load())?;
            t.attach(&dir, mode)?;
        }
        Program::CgroupSockopt(t) => {
            ctx.load(|| t.load())?;
            t.attach(&dir, mode)?;
        }
        Program::CgroupSysctl(t) => {
            ctx.load(|| t.load())?;
            t.attach(&dir, mode)?;
        }
        Program::CgroupDevice(t) => {
            ctx.load(|| t.load())?;
            t.attach(&dir, mode)?;
        }
        _ => return Err(mismatch()),
    }
    Ok(())
}
