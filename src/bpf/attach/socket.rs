//! socket (socket filters): an AF_PACKET raw socket bound to `--iface` (default `lo`) gets the
//! program with SO_ATTACH_BPF. Its receive buffer is kept at the minimum and never read: the
//! program runs on every packet and reports through its maps; what it keeps is discarded.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use aya::programs::Program;

use super::{if_index, mismatch, AttachOptions, Ctx, Failure};

pub const DEFAULT_IFACE: &str = "lo";

fn packet_socket(ifindex: u32) -> Result<OwnedFd, Failure> {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2); the fd is owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            proto as i32,
        )
    };
    if fd < 0 {
        return Err(Failure::os(
            "AF_PACKET socket",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: fd was just created and nobody else owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: sll is a valid sockaddr_ll for the length given.
    let r = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if r < 0 {
        return Err(Failure::os(
            "binding the packet socket",
            std::io::Error::last_os_error(),
        ));
    }
    let min: libc::c_int = 1; // the kernel rounds it up to its minimum
                              // SAFETY: setting an int option from a local.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&min as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    Ok(sock)
}

pub(super) fn attach(
    prog: &mut Program,
    opts: &AttachOptions,
    ctx: &mut Ctx,
) -> Result<(), Failure> {
    let Program::SocketFilter(t) = prog else {
        return Err(mismatch());
    };
    let ifindex = if_index(opts.iface.as_deref().unwrap_or(DEFAULT_IFACE))?;
    ctx.load(|| t.load())?;
    let sock = packet_socket(ifindex)?;
    t.attach(&sock)?;
    // The filter lives as long as the socket: the loaded object holds it.
    ctx.held.push(sock);
    Ok(())
}
