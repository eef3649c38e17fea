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
    if crate::sys::fstatfs_type(std::os::fd::AsRawFd::as_raw_fd(&dir))
        .is_ok_and(|t| t != CGROUP2_SUPER_MAGIC)
    {
        return Err(Failure::msg(format!(
            "{path} is not a cgroup v2 directory (mount -t cgroup2 none /sys/fs/cgroup, or give --cgroup)"
        )));
    }
    Ok(dir)
}

fn is_cgroup2(path: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(path) else {
        return false;
    };
    crate::sys::statfs_type(&c).is_ok_and(|t| t == CGROUP2_SUPER_MAGIC)
}

/// Where cgroup v2 is mounted: /sys/fs/cgroup on a unified system, /sys/fs/cgroup/unified on a
/// systemd hybrid one, else the first cgroup2 mount in /proc/self/mountinfo.
fn cgroup2_root() -> Option<String> {
    if is_cgroup2(DEFAULT_CGROUP) {
        return Some(DEFAULT_CGROUP.to_string());
    }
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS... - FSTYPE SOURCE SUPER
        let (left, right) = l.split_once(" - ")?;
        (right.split_whitespace().next() == Some("cgroup2"))
            .then(|| left.split_whitespace().nth(4).map(str::to_string))
            .flatten()
    })
}

/// The cgroup to attach to. The default, and /sys/fs/cgroup as a Wasm guest or a user names
/// it (upstream sockops.wasm does), mean the cgroup v2 root wherever it is mounted.
fn cgroup_of(opts: &AttachOptions) -> Result<OwnedFd, Failure> {
    let asked = opts.cgroup.as_deref().unwrap_or(DEFAULT_CGROUP);
    if asked.trim_end_matches('/') == DEFAULT_CGROUP && !is_cgroup2(DEFAULT_CGROUP) {
        if let Some(root) = cgroup2_root() {
            log::info!("{asked} is not cgroup v2 here: attaching to the cgroup v2 root {root}");
            return open_cgroup(&root);
        }
    }
    open_cgroup(asked)
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
