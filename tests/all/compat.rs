//! Real libbpf tools, unchanged (issue 17): what a tool's C user space and libbpf used to do,
//! which the loader does now. One fixture per mechanism (tests/fixtures/, in the style of
//! libbpf-tools), loaded, attached and triggered on this kernel; values checked.

use crate::common::*;

/// `openat(2)` itself (musl's `File::open` is `open(2)` on x86_64, which these probes do not see).
fn openat(path: &str, flags: i32) {
    let c = std::ffi::CString::new(path).unwrap();
    unsafe {
        let fd = libc::syscall(libc::SYS_openat, libc::AT_FDCWD, c.as_ptr(), flags, 0o600);
        if fd >= 0 {
            libc::close(fd as i32);
        }
    }
}

/// Item 1: CO-RE reads of tracepoint arguments through a flexible array (`args[]` of the
/// kernel's `struct syscall_trace_enter`), an array inside a struct and a typedef chain.
#[test]
fn core_reads_tracepoint_args_through_flexible_arrays() {
    if !kernel_ready("core_reads_tracepoint_args_through_flexible_arrays") {
        return;
    }
    let _g = serial();
    let me = std::process::id().to_string();
    let s = Session::start(&["-j", &fixtures().obj("flexargs"), "--target_tgid", &me]);
    let path = format!("/tmp/edge-flexargs-{me}");
    let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    openat(&path, flags);
    let out = s.wait_for(|o| o.contains(&path));
    let f = s.stop_with(libc::SIGINT);
    assert!(f.status.success(), "{}", f.stderr);
    let row = json_lines(&out)
        .into_iter()
        .find(|l| l.contains(&path))
        .unwrap_or_else(|| panic!("no event for {path}; stdout:\n{out}\nstderr:\n{}", f.stderr));
    for key in ["flags_flex", "flags_array", "flags_typedef"] {
        assert_eq!(
            field(&row, key),
            Some(flags.to_string().as_str()),
            "{key}: {row}"
        );
    }
    assert_eq!(field(&row, "fname_flex"), Some(path.as_str()), "{row}");
    assert_eq!(field(&row, "fname_array"), Some(path.as_str()), "{row}");
    assert_no_leaks(&["fa_openat", "fa_rb"]);
}
