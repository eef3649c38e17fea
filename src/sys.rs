//! The OS calls outside BPF (file status, file system type, identity, the kernel's release),
//! as safe functions: the `unsafe` and its reasoning live here once, not at every caller, as
//! aya keeps its syscalls in `sys/`. BPF's own calls stay in `bpf/sys.rs`.

use std::ffi::CStr;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;

/// Calls `f` with room for a `T` that it fills when it returns 0 or more (the convention of
/// `stat`, `statfs`, `uname`); the errno otherwise.
fn filled<T>(f: impl FnOnce(*mut T) -> libc::c_int) -> io::Result<T> {
    let mut v = MaybeUninit::<T>::zeroed();
    if f(v.as_mut_ptr()) < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zeroed, then filled by a call that succeeded: every field is initialized (the
    // libc structs used here are plain data, valid at all-zero).
    Ok(unsafe { v.assume_init() })
}

/// fstat(2) of an open fd.
pub fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: `st` points to room for a stat; a bad fd is an error return, not UB.
    filled(|st| unsafe { libc::fstat(fd, st) })
}

/// The file system magic number (`f_type`) of the file system holding `fd`.
#[allow(clippy::unnecessary_cast)] // f_type's type differs between arches
pub fn fstatfs_type(fd: RawFd) -> io::Result<i64> {
    // SAFETY: `st` points to room for a statfs; a bad fd is an error return.
    filled(|st| unsafe { libc::fstatfs(fd, st) }).map(|st| st.f_type as i64)
}

/// The file system magic number of the file system holding `path`.
#[allow(clippy::unnecessary_cast)] // f_type's type differs between arches
pub fn statfs_type(path: &CStr) -> io::Result<i64> {
    // SAFETY: a NUL-terminated path and room for a statfs.
    filled(|st| unsafe { libc::statfs(path.as_ptr(), st) }).map(|st| st.f_type as i64)
}

/// The effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// `uname -r`, or "" when uname fails.
pub fn kernel_release() -> String {
    uname().0
}

/// `uname -r` and `uname -m`, or empty strings when uname fails.
pub fn uname() -> (String, String) {
    // SAFETY: `u` points to room for a utsname.
    let Ok(u) = filled(|u| unsafe { libc::uname(u) }) else {
        return (String::new(), String::new());
    };
    let text = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    (text(&u.release), text(&u.machine))
}

/// The local time of day of `secs` since the epoch, as (hours, minutes, seconds).
pub fn local_time_of_day(secs: i64) -> (i32, i32, i32) {
    let tm = filled(|tm| {
        // (time_t is inferred, not named: musl's libc crate deprecates the name.)
        let t = secs as _;
        // SAFETY: `t` is a valid time_t and `tm` room for a tm; null is its error return.
        if unsafe { libc::localtime_r(&t, tm) }.is_null() {
            -1
        } else {
            0
        }
    });
    tm.map_or((0, 0, 0), |tm| (tm.tm_hour, tm.tm_min, tm.tm_sec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_report_results_and_errors() {
        let f = std::fs::File::open("/proc/self/status").unwrap();
        let st = fstat(std::os::fd::AsRawFd::as_raw_fd(&f)).unwrap();
        assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFREG);
        assert_eq!(fstat(-1).unwrap_err().raw_os_error(), Some(libc::EBADF));
        // procfs's magic number.
        assert_eq!(statfs_type(c"/proc").unwrap(), 0x9fa0);
        assert!(statfs_type(c"/nonexistent/x").is_err());
        let r = kernel_release();
        assert!(r.starts_with(|c: char| c.is_ascii_digit()), "{r}");
        let (h, m, s) = local_time_of_day(0);
        assert!((0..24).contains(&h) && (0..60).contains(&m) && s == 0);
    }
}
