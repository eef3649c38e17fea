//! Attaching one loaded program, by the kind its section names: one file per kind. Each
//! loads the program (the verifier runs there, timed) and attaches it where its section, the
//! package or the run-time options say; what the kernel returns is turned into one message
//! with a hint from its errno.

mod btf_tracing;
mod cgroup;
mod kprobe;
mod perf_event;
mod raw_tracepoint;
mod socket;
mod tc;
mod tracepoint;
mod uprobe;
mod usdt;
mod xdp;

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use aya::programs::{Program, ProgramError};

use super::section::Section;
use super::{chain, errno};
use crate::error::{Error, ErrorKind, Result};
use crate::package::Prog;

/// What a section cannot name, given at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachOptions {
    /// `PATH:FUNC` for uprobes, replacing what their sections name.
    pub uprobe_target: Option<String>,
    /// Uprobes fire only in this process when non-zero.
    pub uprobe_pid: u32,
    /// Interface for xdp, tc and socket filters.
    pub iface: Option<String>,
    /// cgroup v2 directory for cgroup programs and sockops (default: the root).
    pub cgroup: Option<String>,
    /// Sampling frequency of perf_event programs, per CPU.
    pub freq: u64,
    /// Absolute uprobe paths are resolved under this directory: the node's root as a
    /// container sees it (a read-only bind mount of the node's `/`).
    pub host_root: Option<String>,
    /// `--attach NAME=TARGET`: the target of program NAME (or of every program whose section
    /// names NAME), for sections whose target the tool's user space filled in.
    pub targets: Vec<(String, String)>,
    /// A program that cannot attach here is an error even when others attached.
    pub strict: bool,
    /// `--only`: attach these programs and no others (as a tool's user space turns the rest
    /// off); empty: all.
    pub only: Vec<String>,
}

pub const DEFAULT_FREQ: u64 = 49;
pub const DEFAULT_CGROUP: &str = "/sys/fs/cgroup";

impl Default for AttachOptions {
    fn default() -> Self {
        AttachOptions {
            uprobe_target: None,
            uprobe_pid: 0,
            iface: None,
            cgroup: None,
            freq: DEFAULT_FREQ,
            host_root: None,
            targets: Vec::new(),
            strict: false,
            only: Vec::new(),
        }
    }
}

impl AttachOptions {
    /// The section of program `prog` with its `--attach` target applied, if one names it.
    pub fn section_for(&self, prog: &str, section: &Section) -> Result<Section> {
        let by_name = self.targets.iter().find(|(n, _)| n == prog);
        let by_target = || {
            let t = section.target()?;
            self.targets.iter().find(|(n, _)| *n == t)
        };
        let Some((_, new)) = by_name.or_else(by_target) else {
            return Ok(section.clone());
        };
        section.with_target(new).ok_or_else(|| {
            Error::new(
                ErrorKind::Usage,
                format!("--attach {prog}={new}: this program's section ({section:?}) has no target to replace"),
            )
        })
    }

    /// The options with a Wasm guest's attach target (`bpf_set_prog_attach_target`) applied
    /// to what `section` takes: an interface, a cgroup, or a uprobe's PATH:FUNC. Empty means
    /// what the section names.
    pub fn with_target(&self, section: &Section, target: &str) -> AttachOptions {
        let mut o = self.clone();
        if target.is_empty() {
            return o;
        }
        match section {
            Section::Xdp | Section::Tc { .. } | Section::Socket => o.iface = Some(target.into()),
            Section::CgroupSkb { .. } | Section::Cgroup { .. } | Section::Sockops => {
                o.cgroup = Some(target.into())
            }
            Section::Uprobe { .. } | Section::Usdt { .. } => o.uprobe_target = Some(target.into()),
            _ => {}
        }
        o
    }
}

/// What attaching needs besides the program: the kernel BTF, a place for the fds programs are
/// attached through, and the verifier's time.
pub(super) struct Ctx<'a> {
    pub verify: Duration,
    pub kbtf: Option<&'a aya::Btf>,
    pub held: &'a mut Vec<OwnedFd>,
    /// The object's USDT spec map, when it has one.
    pub usdt: Option<&'a mut usdt::Specs>,
}

impl<'a> Ctx<'a> {
    /// Runs a program load (the verifier), timed.
    fn load(&mut self, f: impl FnOnce() -> Result<(), ProgramError>) -> Result<(), Failure> {
        let t0 = Instant::now();
        let r = f();
        self.verify += t0.elapsed();
        r.map_err(Failure::from)
    }

    fn kbtf(&self) -> Result<&'a aya::Btf, Failure> {
        self.kbtf
            .ok_or_else(|| Failure::msg("the kernel BTF is not available"))
    }
}

/// Why an attach failed, with what the hint is chosen from.
pub(super) struct Failure {
    text: String,
    errno: Option<i32>,
    /// A name was not found in the kernel's BTF.
    missing_btf: bool,
    /// Our own check, not the kernel's answer.
    ours: bool,
    /// The target is not on this kernel (our own finding).
    absent: bool,
}

impl Failure {
    fn msg(text: impl Into<String>) -> Failure {
        Failure {
            text: text.into(),
            errno: None,
            missing_btf: false,
            ours: true,
            absent: false,
        }
    }

    /// The target is not on this kernel, as our own lookup found.
    fn absent(text: impl Into<String>) -> Failure {
        Failure {
            absent: true,
            ..Failure::msg(text)
        }
    }

    fn os(what: &str, e: std::io::Error) -> Failure {
        Failure {
            text: format!("{what}: {e}"),
            errno: e.raw_os_error(),
            missing_btf: false,
            ours: false,
            absent: false,
        }
    }
}

impl From<ProgramError> for Failure {
    fn from(e: ProgramError) -> Failure {
        let missing_btf = matches!(&e, ProgramError::Btf(_));
        let mut text = chain(&e);
        // aya names the verifier's log even when the kernel wrote none.
        if let Some(t) = text.strip_suffix(" Verifier output: ") {
            text = t.trim_end_matches('.').to_string();
        }
        Failure {
            text,
            errno: errno(&e),
            missing_btf,
            ours: false,
            absent: false,
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::msg(e.to_string())
    }
}

fn mismatch() -> Failure {
    Failure::msg("aya parsed this section as another program type")
}

fn hint(sec: &Section, f: &Failure) -> &'static str {
    let kprobe = sec.is_kprobe();
    if f.text
        .contains("failed to find the address for kernel symbol")
    {
        return "this kernel's kallsyms lists no data symbols (CONFIG_KALLSYMS_ALL is off), so it cannot place typed __ksym variables; declare them __weak and test them with bpf_ksym_exists()";
    }
    match f.errno {
        Some(libc::EINVAL | libc::EILSEQ) if kprobe && cfg!(target_arch = "riscv64") => {
            "this riscv64 kernel cannot place a kprobe at offset 0 of a function (no KPROBES_ON_FTRACE); use kprobe/FUNC+8 (past the ftrace patch site), a tracepoint or fentry"
        }
        Some(libc::ENOENT)
            if kprobe && !std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists() =>
        {
            "kprobes are not enabled in this kernel (CONFIG_KPROBES); use a tracepoint or fentry"
        }
        // A program load the verifier refused (its log is in the text) says EACCES too.
        Some(libc::EACCES | libc::EINVAL) if f.text.contains("Verifier output") && f.text.len() > 200 => {
            "the verifier rejected the program: its log above ends with the reason"
        }
        Some(libc::EPERM) if matches!(sec, Section::BtfTracing { .. }) && crate::sys::euid() == 0 => {
            "this kernel refuses fentry/fexit/lsm programs even to root (lockdown or a security module); a tool's kprobe alternative is used where it has one"
        }
        Some(libc::EPERM | libc::EACCES) => {
            "run as root (CAP_BPF, CAP_PERFMON); fentry/fexit/lsm may also be blocked by kernel lockdown"
        }
        Some(libc::ENOENT) => {
            "the attach target does not exist in this kernel; check the name (e.g. in /sys/kernel/tracing/events or /proc/kallsyms)"
        }
        _ if f.missing_btf => {
            "the attach target is not in the kernel's BTF; check the name (bpftool btf dump file /sys/kernel/btf/vmlinux)"
        }
        Some(libc::EINVAL) => {
            "the kernel rejected the program for this hook; check the section name and program type"
        }
        Some(libc::EBUSY | libc::EEXIST) => {
            "another program is attached there already; detach it or choose another target"
        }
        _ => "see the error above",
    }
}

/// Loads `prog` and attaches it as `sec` says.
pub use usdt::Specs as UsdtSpecs;

pub(super) fn attach(
    prog: &mut Program,
    sec: &Section,
    p: &Prog,
    opts: &AttachOptions,
    ctx: &mut Ctx,
) -> Result<()> {
    let r = match sec {
        Section::Tracepoint { category, name } => tracepoint::attach(prog, category, name, ctx),
        Section::RawTracepoint { name } => raw_tracepoint::attach(prog, name, ctx),
        Section::BtfTracing { target, .. } => btf_tracing::attach(prog, target, ctx),
        Section::Kprobe { func, offset, .. } => kprobe::attach(prog, func, *offset, ctx),
        Section::Uprobe { target, .. } => uprobe::attach(prog, target, opts, ctx),
        Section::Usdt { target } => usdt::attach(prog, target, opts, ctx),
        Section::Xdp => xdp::attach(prog, p, opts, ctx),
        Section::Tc { egress } => tc::attach(prog, *egress, p, opts, ctx),
        Section::Socket => socket::attach(prog, opts, ctx),
        Section::CgroupSkb { egress } => cgroup::attach_skb(prog, *egress, opts, ctx),
        Section::Cgroup { .. } | Section::Sockops => cgroup::attach(prog, opts, ctx),
        Section::PerfEvent => perf_event::attach(prog, opts, ctx),
        Section::SkMsg | Section::SkSkb => Err(Failure::msg(
            "sk_msg and sk_skb programs attach to a sockmap; a package cannot name one: run them from a Wasm app",
        )),
        Section::Unattachable { kind } => Err(Failure::msg(format!(
            "{kind} programs have no attach point this runtime can name"
        ))),
    };
    r.map_err(|f| {
        let verifier = f.text.contains("Verifier output") && f.text.len() > 200;
        // NotFound: the target, or the mechanism, is not on this kernel (a tool's other
        // programs may still run); Kernel: the kernel refused the program itself.
        let kind =
            match f.errno {
                Some(libc::EPERM | libc::EACCES) if !verifier => ErrorKind::Denied,
                _ if f.missing_btf || f.absent => ErrorKind::NotFound,
                Some(
                    libc::ENOENT | libc::ENODEV | libc::EOPNOTSUPP | libc::ENOTSUP | libc::EBADF,
                ) if !verifier => ErrorKind::NotFound,
                _ if f.ours => ErrorKind::Invalid,
                _ => ErrorKind::Kernel,
            };
        Error::new(kind, format!("{}; hint: {}", f.text, hint(sec, &f)))
    })
}

/// An interface index by name.
fn if_index(name: &str) -> Result<u32, Failure> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| Failure::msg(format!("bad interface name {name:?}")))?;
    // SAFETY: c is NUL-terminated.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(Failure::msg(format!("no network interface named {name}"))),
        i => Ok(i),
    }
}

/// An interface name by index.
fn if_name(ifindex: u32) -> Result<String, Failure> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf holds IF_NAMESIZE bytes as if_indextoname requires.
    let r = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if r.is_null() {
        return Err(Failure::msg(format!(
            "no network interface with index {ifindex}"
        )));
    }
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The interface a program attaches to: `--iface`, else the package's ifindex, else index 1
/// (as ecli does: the loopback device on most systems).
fn iface_index(p: &Prog, opts: &AttachOptions) -> Result<u32, Failure> {
    match &opts.iface {
        Some(name) => if_index(name),
        None => Ok(p.ifindex.unwrap_or(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wasm_target_goes_where_the_kind_takes_it() {
        let base = AttachOptions::default();
        let o = base.with_target(&Section::Sockops, "/sys/fs/cgroup/");
        assert_eq!(o.cgroup.as_deref(), Some("/sys/fs/cgroup/"));
        let o = base.with_target(&Section::Xdp, "eth0");
        assert_eq!(o.iface.as_deref(), Some("eth0"));
        let up = Section::parse("uprobe").unwrap();
        let o = base.with_target(&up, "/bin/true:main");
        assert_eq!(o.uprobe_target.as_deref(), Some("/bin/true:main"));
        assert_eq!(base.with_target(&Section::Xdp, ""), base);
    }

    #[test]
    fn hints_follow_the_errno() {
        let f = |errno| Failure {
            text: String::new(),
            errno: Some(errno),
            missing_btf: false,
            ours: false,
            absent: false,
        };
        let tp = Section::parse("tp/a/b").unwrap();
        assert!(hint(&tp, &f(libc::EPERM)).contains("run as root"));
        assert!(hint(&tp, &f(libc::ENOENT)).contains("does not exist"));
        assert!(hint(&tp, &f(libc::EINVAL)).contains("rejected"));
        assert!(hint(&Section::Xdp, &f(libc::EBUSY)).contains("another program"));
    }
}
