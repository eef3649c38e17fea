//! Who is at the other end of the Unix socket (SO_PEERCRED, SO_PEERGROUPS), who may use the
//! daemon, and reading local files as that peer: the daemon runs as root, and a member of its
//! group must not make it open what the member could not open itself (`/etc/shadow`, another
//! user's files). Local sources are read on a thread whose filesystem identity (fsuid, fsgid,
//! supplementary groups: all per thread in Linux) is the peer's, so the kernel itself checks
//! every path component and the file's mode.

use std::os::fd::RawFd;

use super::spec::Owner;
use crate::error::{Error, ErrorKind, Result};

/// The credentials of a Unix socket's peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: i32,
    pub groups: Vec<u32>,
}

impl Peer {
    /// Reads them from a connected Unix socket.
    pub fn of(fd: RawFd) -> Option<Peer> {
        let mut c = libc::ucred {
            pid: 0,
            uid: 0,
            gid: 0,
        };
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        // SAFETY: c is a ucred of the size given.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                (&mut c as *mut libc::ucred).cast(),
                &mut len,
            )
        };
        if r != 0 {
            return None;
        }
        let mut groups = vec![0 as libc::gid_t; 256];
        let mut glen = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: groups has room for glen bytes; the kernel writes at most that many.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut glen,
            )
        };
        // A peer with more than 256 groups, or a kernel without SO_PEERGROUPS (< 4.13): its
        // primary group only, which can only make it see less.
        let n = if r == 0 {
            glen as usize / std::mem::size_of::<libc::gid_t>()
        } else {
            0
        };
        groups.truncate(n.min(256));
        Some(Peer {
            uid: c.uid,
            gid: c.gid,
            pid: c.pid,
            groups,
        })
    }

    /// Root, the daemon's own user, or a member of `group`.
    pub fn allowed(&self, group: Option<u32>) -> bool {
        self.uid == 0
            || self.uid == crate::sys::euid()
            || group.is_some_and(|g| self.gid == g || self.groups.contains(&g))
    }

    /// Whose files its requests name.
    pub fn owner(&self) -> Owner {
        if self.uid == 0 {
            Owner::Daemon
        } else {
            Owner::User {
                uid: self.uid,
                gid: self.gid,
                groups: self.groups.clone(),
            }
        }
    }
}

/// The gid of group `name`.
pub fn group_id(name: &str) -> Result<u32> {
    let usage = |m: String| Error::new(ErrorKind::Usage, m);
    let c =
        std::ffi::CString::new(name).map_err(|_| usage(format!("--group {name:?}: bad name")))?;
    // SAFETY: an all-zero group is a valid out-value (null pointers, zero ids).
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut res: *mut libc::group = std::ptr::null_mut();
    // SAFETY: getgrnam_r with a buffer of its length; res says whether gr was filled.
    let r = unsafe { libc::getgrnam_r(c.as_ptr(), &mut gr, buf.as_mut_ptr(), buf.len(), &mut res) };
    if r != 0 || res.is_null() {
        return Err(usage(format!(
            "--group {name}: no such group (create it with groupadd)"
        )));
    }
    Ok(gr.gr_gid)
}

/// Takes `uid`, `gid` and `groups` as this thread's filesystem identity. Raw syscalls: libc's
/// wrappers would apply setgroups to every thread of the process.
fn become_user(uid: u32, gid: u32, groups: &[u32]) -> std::io::Result<()> {
    // SAFETY: setgroups reads groups.len() gids from a live slice; setfsgid and setfsuid take
    // plain ids. All three change only the calling thread's credentials.
    unsafe {
        if libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        libc::syscall(libc::SYS_setfsgid, gid);
        libc::syscall(libc::SYS_setfsuid, uid);
        // Both return the previous id whatever happened: an invalid id (-1) reads them back.
        let fsuid = libc::syscall(libc::SYS_setfsuid, u32::MAX) as u32;
        let fsgid = libc::syscall(libc::SYS_setfsgid, u32::MAX) as u32;
        if fsuid != uid || fsgid != gid {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "the daemon cannot take the identity of its peer (it is not root)",
            ));
        }
    }
    Ok(())
}

/// Runs `f` with the filesystem identity of `owner`: on a thread of its own for a user, so
/// every file `f` opens is checked by the kernel as that user's; directly for the daemon.
/// A remote owner has no files here: the caller never reaches this for one.
pub fn run_as<T: Send>(owner: &Owner, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let (uid, gid, groups) = match owner {
        Owner::Daemon => return f(),
        Owner::User { uid, .. } if *uid == crate::sys::euid() => return f(),
        Owner::User { uid, gid, groups } => (*uid, *gid, groups.clone()),
        Owner::Remote => {
            return Err(Error::new(
                ErrorKind::Denied,
                "a TCP client has no files on this node: name a URL or a registry reference, or use the Unix socket",
            ))
        }
    };
    std::thread::scope(|s| {
        s.spawn(move || {
            become_user(uid, gid, &groups).map_err(|e| {
                Error::new(
                    ErrorKind::Denied,
                    format!("reading files as uid {uid}: {e}"),
                )
            })?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(Error::msg("the thread reading files as the peer failed")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_read_with_the_peers_identity() {
        if crate::sys::euid() != 0 {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "files_are_read_with_the_peers_identity needs root under CI"
            );
            eprintln!("SKIPPED files_are_read_with_the_peers_identity: needs root to change fsuid");
            return;
        }
        let d = std::env::temp_dir().join(format!("edge-peer-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let secret = d.join("secret");
        std::fs::write(&secret, "root only").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let nobody = Owner::User {
            uid: 65534,
            gid: 65534,
            groups: vec![],
        };
        let s2 = secret.clone();
        let e = run_as(&nobody, move || Ok(std::fs::read(&s2)?)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
        let s3 = secret.clone();
        assert_eq!(
            run_as(&Owner::Daemon, move || Ok(std::fs::read(&s3)?)).unwrap(),
            b"root only"
        );
        // The caller's own thread kept its identity.
        assert!(std::fs::read(&secret).is_ok());
        assert!(run_as(&Owner::Remote, || Ok(())).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn who_may_use_the_socket() {
        let p = |uid, gid, groups: Vec<u32>| Peer {
            uid,
            gid,
            pid: 1,
            groups,
        };
        assert!(p(0, 0, vec![]).allowed(None));
        assert!(p(1000, 1000, vec![27]).allowed(Some(27)));
        assert!(p(1000, 27, vec![]).allowed(Some(27)));
        assert!(!p(1000, 1000, vec![4]).allowed(Some(27)) || crate::sys::euid() == 1000);
        assert_eq!(p(0, 0, vec![]).owner(), Owner::Daemon);
    }
}
