//! Helpers both benchmarks share: process accounting from /proc, raw bpf(2) calls to find and
//! drive the flood generator, and running the build commands.

use std::path::Path;
use std::process::Command;

/// Compiles `src` (relative to the crate) for BPF into `out`, as the test fixtures are.
pub fn bpf_object(include: &Path, src: &str, out: &str, extra: &[&str]) {
    sh(Command::new("clang-19")
        .args(["-g", "-O2", "-target", "bpf", "-D__TARGET_ARCH_x86"])
        .args(extra)
        .arg("-I")
        .arg(include)
        .arg("-c")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(src))
        .arg("-o")
        .arg(out));
}

pub fn sh(cmd: &mut Command) {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?}:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

pub mod sys {
    fn bpf(cmd: i32, attr: &mut [u8]) -> i64 {
        // SAFETY: attr is a zero-padded bpf_attr of the size passed.
        unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) }
    }

    /// fd of the loaded program named `name` (the kernel keeps 15 bytes of it).
    /// The newest program called `name`: the kernel frees an exited consumer's program
    /// asynchronously, so an older one may still be listed.
    pub fn prog_fd_by_name(name: &str) -> Option<i32> {
        let mut id = 0u32;
        let mut found: Option<i32> = None;
        loop {
            let mut a = [0u8; 128];
            a[0..4].copy_from_slice(&id.to_le_bytes());
            if bpf(11, &mut a) < 0 {
                return found; // BPF_PROG_GET_NEXT_ID: no more
            }
            id = u32::from_le_bytes(a[4..8].try_into().unwrap());
            let mut a = [0u8; 128];
            a[0..4].copy_from_slice(&id.to_le_bytes());
            let fd = bpf(13, &mut a); // BPF_PROG_GET_FD_BY_ID
            if fd < 0 {
                continue;
            }
            let mut info = [0u8; 256];
            let mut a = [0u8; 128];
            a[0..4].copy_from_slice(&(fd as u32).to_le_bytes());
            a[4..8].copy_from_slice(&(info.len() as u32).to_le_bytes());
            a[8..16].copy_from_slice(&(info.as_mut_ptr() as u64).to_le_bytes());
            if bpf(15, &mut a) == 0 {
                let n = &info[64..80];
                let end = n.iter().position(|&c| c == 0).unwrap_or(16);
                if &n[..end] == name.as_bytes() {
                    if let Some(old) = found.replace(fd as i32) {
                        // SAFETY: old is ours.
                        unsafe { libc::close(old) };
                    }
                    continue;
                }
            }
            // SAFETY: fd is ours.
            unsafe { libc::close(fd as i32) };
        }
    }

    /// One BPF_PROG_TEST_RUN of a raw_tp program with args[0] = count.
    pub fn test_run(fd: i32, count: u64) -> i64 {
        let ctx = [count, 0, 0, 0];
        let mut a = [0u8; 128];
        a[0..4].copy_from_slice(&(fd as u32).to_le_bytes());
        a[40..44].copy_from_slice(&32u32.to_le_bytes());
        a[48..56].copy_from_slice(&(ctx.as_ptr() as u64).to_le_bytes());
        bpf(10, &mut a)
    }
}

pub fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

/// A `/proc/PID/status` field in kB: VmHWM is the peak RSS; RssAnon is private memory, where
/// the ring buffer mapping (the same for both consumers) and file pages do not count.
pub fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}
