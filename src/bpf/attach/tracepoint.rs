//! tracepoint/CATEGORY/NAME (and tp/...), through tracefs.

use aya::programs::Program;

use super::{mismatch, Ctx, Failure};

pub(super) fn attach(
    prog: &mut Program,
    category: &str,
    name: &str,
    ctx: &mut Ctx,
) -> Result<(), Failure> {
    let Program::TracePoint(t) = prog else {
        return Err(mismatch());
    };
    ensure_tracefs();
    ctx.load(|| t.load())?;
    t.attach(category, name)?;
    Ok(())
}

/// Tracepoints need tracefs; a bare edge node (or initramfs) may not have it mounted yet.
fn ensure_tracefs() {
    let known = [
        "/sys/kernel/tracing/events",
        "/sys/kernel/debug/tracing/events",
    ];
    if known.iter().any(|p| std::path::Path::new(p).exists()) {
        return;
    }
    // SAFETY: constant NUL-terminated strings; failure is reported by the attach that follows.
    let r = unsafe {
        libc::mount(
            c"tracefs".as_ptr(),
            c"/sys/kernel/tracing".as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if r == 0 {
        log::info!("mounted tracefs at /sys/kernel/tracing");
    } else {
        log::warn!(
            "tracefs is not mounted and mounting it failed ({}): mount -t tracefs none /sys/kernel/tracing",
            std::io::Error::last_os_error()
        );
    }
}
