//! The kernel layer, on aya: load the object with its globals, attach every program by its
//! section name, and hand out the maps that carry events. Everything kernel-side is owned by
//! `Loaded`; dropping it detaches links and closes programs and maps.

use std::os::fd::{AsFd, AsRawFd, RawFd};

use aya::programs::uprobe::UProbeScope;
use aya::programs::{self, Program, TcAttachType, XdpMode};
use aya::{Ebpf, EbpfLoader};

use crate::core_btf::{self, Needs};
use crate::elf::Elf;
use crate::error::{Error, Result};
use crate::meta::{self, Object, Prog};

/// Formats an error with its whole source chain (aya puts the verifier log and errno there).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// Where the kernel's BTF comes from.
pub enum KernelBtf {
    Sys,
    File(String),
}

pub const SYS_BTF: &str = "/sys/kernel/btf/vmlinux";

/// A kernel BTF file's bytes: mapped where the kernel allows it (sysfs BTF since Linux 6.16),
/// which saves copying ~6 MB in 4 KiB reads; read otherwise.
enum BtfBytes {
    Mapped(*const u8, usize),
    Read(Vec<u8>),
}

impl std::ops::Deref for BtfBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            // SAFETY: a private read-only mapping of `len` bytes, alive until drop.
            BtfBytes::Mapped(p, len) => unsafe { std::slice::from_raw_parts(*p, *len) },
            BtfBytes::Read(v) => v,
        }
    }
}

impl Drop for BtfBytes {
    fn drop(&mut self) {
        if let BtfBytes::Mapped(p, len) = *self {
            unsafe { libc::munmap(p as *mut libc::c_void, len) };
        }
    }
}

/// Only sysfs BTF is mapped: it is kernel memory that cannot change, where a mapped --btf file
/// could be rewritten or truncated (SIGBUS) under the parser by another process.
fn read_btf(path: &str, mappable: bool) -> std::io::Result<BtfBytes> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len() as usize;
    if mappable && len > 0 {
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                f.as_raw_fd(),
                0,
            )
        };
        if p != libc::MAP_FAILED {
            return Ok(BtfBytes::Mapped(p as *const u8, len));
        }
    }
    let mut v = Vec::with_capacity(len);
    f.read_to_end(&mut v)?;
    Ok(BtfBytes::Read(v))
}

/// The kernel BTF aya needs for `needs`: none, the part `core_btf` cuts out, or all of it.
fn kernel_btf(src: &KernelBtf, needs: &Needs) -> Result<Option<aya::Btf>> {
    let path = match src {
        KernelBtf::Sys => SYS_BTF,
        // Checked even when the object needs no kernel BTF: a typo should not pass unseen.
        KernelBtf::File(p) => match std::fs::metadata(p) {
            Err(_) => return Err(Error::msg(format!("--btf {p}: no such file"))),
            Ok(m) if !m.is_file() => {
                return Err(Error::msg(format!(
                "--btf {p}: not a regular file (give a raw BTF file, like /sys/kernel/btf/vmlinux)"
            )))
            }
            Ok(_) => p.as_str(),
        },
    };
    if *needs == Needs::Nothing {
        return Ok(None);
    }
    let data = read_btf(path, matches!(src, KernelBtf::Sys)).map_err(|e| {
        Error::msg(match (src, e.kind()) {
            (KernelBtf::Sys, std::io::ErrorKind::NotFound) => format!(
                "kernel BTF not found at {SYS_BTF}: this kernel lacks CONFIG_DEBUG_INFO_BTF; pass --btf FILE with a BTF file for it"
            ),
            _ => format!("reading kernel BTF {path}: {e}"),
        })
    })?;
    let bad = |e: &dyn std::fmt::Display| Error::msg(format!("kernel BTF {path}: {e}"));
    let cut;
    let raw = match needs {
        Needs::Names(names) => {
            cut = core_btf::minimal_target(&data, names).map_err(|e| bad(&e))?;
            drop(data);
            &cut[..]
        }
        _ => &data[..],
    };
    aya::Btf::parse(raw, aya::Endianness::default())
        .map(Some)
        .map_err(|e| bad(&chain(&e)))
}

/// The kernel type a BTF-attached program is attached through (named as aya looks it up).
fn btf_attach_type(section: &str) -> Option<String> {
    let (kind, rest) = section.split_once('/')?;
    match kind {
        "tp_btf" => Some(format!("btf_trace_{rest}")),
        "fentry" | "fentry.s" | "fexit" | "fexit.s" => Some(rest.to_string()),
        "lsm" | "lsm.s" => Some(format!("bpf_lsm_{rest}")),
        _ => None,
    }
}

pub struct Loaded {
    pub ebpf: Ebpf,
    kbtf: Option<aya::Btf>,
    /// BTF-attached programs still to load; `kbtf` is dropped when none are left.
    btf_attaches_left: usize,
    btf_src: KernelBtf,
    /// Time spent in program loads (the verifier) and in attaching, for the phase log.
    pub verify_time: std::time::Duration,
    pub attach_time: std::time::Duration,
    /// Uprobes fire only in this process when non-zero (`--uprobe-pid`).
    pub uprobe_pid: u32,
}

/// Loads the object's maps and globals into the kernel (programs are loaded at attach).
pub fn load(object: &Object, globals: &[(String, Vec<u8>)], btf_src: KernelBtf) -> Result<Loaded> {
    // Map libbpf section names aya does not parse before aya sees them; refuse the rest.
    let mut renames = Vec::new();
    for p in &object.meta.progs {
        if let Some(new) = meta::aya_section(&p.name, &p.section)? {
            renames.push((p.section.clone(), new));
        }
    }
    let elf = Elf::parse(&object.bytes)?;
    let ext = elf.section(".BTF.ext").map(|x| elf.section_data(x));
    let renamed;
    let bytes: &[u8] = if renames.is_empty() {
        &object.bytes
    } else {
        // .BTF.ext names program sections too (func and line info, CO-RE relocations): its
        // names must follow, through new strings appended to .BTF.
        let mut replace = Vec::new();
        if let (Some(b), Some(x)) = (elf.section(".BTF"), ext) {
            let (nb, nx) = crate::btf::rename_ext_sections(elf.section_data(b), x, &renames)?;
            replace.push((".BTF", nb));
            replace.push((".BTF.ext", nx));
        }
        renamed = elf.with_renamed_sections(
            |n| renames.iter().find(|(o, _)| o == n).map(|(_, r)| r.clone()),
            &replace,
        );
        &renamed
    };
    // Only what CO-RE relocations and BTF attach points use of the kernel's BTF is parsed.
    // (Renaming changes section names only: the original .BTF.ext has the same relocations.)
    let mut needs = match ext {
        Some(x) => core_btf::core_needs(&object.btf, x)?,
        None => Needs::Nothing,
    };
    for p in &object.meta.progs {
        if let Some(t) = btf_attach_type(&p.section) {
            needs.add(t);
        }
    }
    let btf_attaches_left = object
        .meta
        .progs
        .iter()
        .filter(|p| btf_attach_type(&p.section).is_some())
        .count();
    let mut kbtf = kernel_btf(&btf_src, &needs)?;
    let mut loader = EbpfLoader::with_btf(kbtf.as_ref());
    for (name, value) in globals {
        loader.override_global(name.as_str(), value.as_slice(), true);
    }
    let ebpf = loader.load(bytes).map_err(|e| {
        let m = chain(&e);
        let hint = if m.contains("Operation not permitted") {
            "; hint: run as root (loading needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN)"
        } else {
            ""
        };
        Error::msg(format!(
            "loading object {}: {m}{hint}",
            object.meta.obj_name
        ))
    })?;
    drop(loader);
    if btf_attaches_left == 0 {
        kbtf = None; // CO-RE is done: free it before the event buffers are mapped
    }
    Ok(Loaded {
        ebpf,
        kbtf,
        btf_attaches_left,
        btf_src,
        verify_time: Default::default(),
        attach_time: Default::default(),
        uprobe_pid: 0,
    })
}

fn errno_hint(section: &str, e: &str) -> &'static str {
    let kprobe = ["kprobe/", "kretprobe/", "ksyscall/", "kretsyscall/"]
        .iter()
        .any(|k| section.starts_with(k));
    let refused = e.contains("Invalid argument") || e.contains("Illegal byte sequence");
    if kprobe && refused && cfg!(target_arch = "riscv64") {
        "this riscv64 kernel cannot place a kprobe at offset 0 of a function (no KPROBES_ON_FTRACE); use kprobe/FUNC+8 (past the ftrace patch site), a tracepoint or fentry"
    } else if e.contains("kprobe/type") || e.contains("/kprobe/") {
        "kprobes are not enabled in this kernel (CONFIG_KPROBES); use a tracepoint or fentry"
    } else if e.contains("Permission denied")
        || e.contains("EPERM")
        || e.contains("Operation not permitted")
    {
        "run as root (CAP_BPF, CAP_PERFMON); fentry/fexit/lsm may also be blocked by kernel lockdown"
    } else if e.contains("No such file") || e.contains("not found") {
        "the attach target does not exist in this kernel; check the name (e.g. in /sys/kernel/tracing/events or /proc/kallsyms)"
    } else if e.contains("Invalid argument") {
        "the kernel rejected the program for this hook; check the section name and program type"
    } else {
        "see the error above"
    }
}

impl Loaded {
    /// Makes sure the kernel BTF is there for a BTF-attached program. `load` normally built it
    /// already, with every program's attach type in it.
    fn btf(&mut self, section: &str) -> Result<()> {
        if self.kbtf.is_none() {
            let mut needs = Needs::Nothing;
            needs.add(btf_attach_type(section).unwrap_or_default());
            self.kbtf = kernel_btf(&self.btf_src, &needs)?;
        }
        Ok(())
    }

    /// Loads and attaches every program of the package, in order. The first failure is returned
    /// naming the program, its section, the reason and a hint.
    /// Attaches every program; `uprobe_target` (PATH:FUNC) replaces what uprobe sections name.
    pub fn attach_all(&mut self, progs: &[Prog], uprobe_target: Option<&str>) -> Result<()> {
        for p in progs {
            let is_uprobe = p.section.starts_with("uprobe") || p.section.starts_with("uretprobe");
            self.attach_one(p, if is_uprobe { uprobe_target } else { None })?;
        }
        Ok(())
    }

    /// Loads and attaches one program. `target` overrides what the section names (an
    /// interface for xdp/tc, `PATH:FUNC` for uprobes). A failure names the program, its
    /// section, the reason and a hint.
    pub fn attach_one(&mut self, p: &Prog, target: Option<&str>) -> Result<()> {
        if p.section.starts_with("tp/") || p.section.starts_with("tracepoint/") {
            ensure_tracefs();
        }
        self.attach(p, target.filter(|t| !t.is_empty()))
            .map_err(|e| {
                let m = e.to_string();
                Error::msg(format!(
                    "attaching program {} (section \"{}\"): {m}; hint: {}",
                    p.name,
                    p.section,
                    errno_hint(&p.section, &m)
                ))
            })?;
        log::debug!("attached {} ({})", p.name, p.section);
        Ok(())
    }

    fn attach(&mut self, p: &Prog, target: Option<&str>) -> Result<()> {
        let sec = p.section.as_str();
        let (kind, rest) = sec.split_once('/').unwrap_or((sec, ""));
        // A uprobe target given at run time replaces the section's PATH:FUNC.
        let rest = match (kind, target) {
            ("uprobe" | "uretprobe", Some(t)) => t,
            _ => rest,
        };
        let needs_btf = matches!(
            kind,
            "tp_btf" | "fentry" | "fentry.s" | "fexit" | "fexit.s" | "lsm" | "lsm.s"
        );
        if needs_btf {
            self.btf(sec)?;
        }
        let Loaded {
            ebpf,
            kbtf,
            verify_time,
            uprobe_pid,
            ..
        } = self;
        let t_start = std::time::Instant::now();
        let prog = ebpf
            .program_mut(&p.name)
            .ok_or_else(|| Error::msg("not found in the loaded object".to_string()))?;
        let e = |err: programs::ProgramError| Error::msg(chain(&err));
        match prog {
            Program::TracePoint(t) => {
                let (cat, name) = rest
                    .split_once('/')
                    .ok_or_else(|| Error::msg("expected tracepoint/CATEGORY/NAME"))?;
                {
                    let t0 = std::time::Instant::now();
                    t.load().map_err(e)?;
                    *verify_time += t0.elapsed();
                }
                t.attach(cat, name).map_err(e)?;
            }
            Program::RawTracePoint(t) => {
                {
                    let t0 = std::time::Instant::now();
                    t.load().map_err(e)?;
                    *verify_time += t0.elapsed();
                }
                t.attach(rest).map_err(e)?;
            }
            Program::BtfTracePoint(t) => {
                {
                    let t0 = std::time::Instant::now();
                    t.load(rest, kbtf.as_ref().unwrap()).map_err(e)?;
                    *verify_time += t0.elapsed();
                }
                t.attach().map_err(e)?;
            }
            Program::FEntry(t) => {
                {
                    let t0 = std::time::Instant::now();
                    t.load(rest, kbtf.as_ref().unwrap()).map_err(e)?;
                    *verify_time += t0.elapsed();
                }
                t.attach().map_err(e)?;
            }
            Program::FExit(t) => {
                {
                    let t0 = std::time::Instant::now();
                    t.load(rest, kbtf.as_ref().unwrap()).map_err(e)?;
                    *verify_time += t0.elapsed();
                }
                t.attach().map_err(e)?;
            }
            Program::Lsm(t) => {
                {
                    let t0 = std::time::Instant::now();
                    t.load(rest, kbtf.as_ref().unwrap()).map_err(e)?;
                    *verify_time += t0.elapsed();
                }
                t.attach().map_err(e)?;
            }
            Program::KProbe(t) => {
                let target = match kind {
                    "ksyscall" | "kretsyscall" => format!("{}{rest}", meta::syscall_prefix()),
                    _ => rest.to_string(),
                };
                let (func, off) = split_offset(&target)?;
                {
                    let t0 = std::time::Instant::now();
                    t.load().map_err(e)?;
                    *verify_time += t0.elapsed();
                }
                t.attach(func, off).map_err(e)?;
            }
            Program::UProbe(t) => {
                let (path, func) = rest.rsplit_once(':').ok_or_else(|| {
                    Error::msg("the section names no PATH:FUNCTION; give one with --uprobe-target PATH:FUNC")
                })?;
                let (func, off) = split_offset(func)?;
                {
                    let t0 = std::time::Instant::now();
                    t.load().map_err(e)?;
                    *verify_time += t0.elapsed();
                }
                let point = if off == 0 {
                    programs::uprobe::UProbeAttachLocation::Symbol(func)
                } else {
                    programs::uprobe::UProbeAttachLocation::SymbolOffset(func, off)
                };
                let scope = match std::num::NonZeroU32::new(*uprobe_pid) {
                    Some(pid) => UProbeScope::OneProcess(pid),
                    None => UProbeScope::AllProcesses,
                };
                t.attach(point, path, scope).map_err(e)?;
            }
            Program::Xdp(t) => {
                let mode = if p.xdp_flags & 2 != 0 { XdpMode::Skb } else { XdpMode::Default };
                let ifindex = match target {
                    Some(name) => if_index(name)?,
                    None => p.ifindex.unwrap_or(1),
                };
                {
                    let t0 = std::time::Instant::now();
                    t.load().map_err(e)?;
                    *verify_time += t0.elapsed();
                }
                t.attach_to_if_index(ifindex, mode).map_err(e)?;
            }
            Program::SchedClassifier(t) => {
                let ifname = match target {
                    Some(name) => name.to_string(),
                    None => if_name(p.ifindex.unwrap_or(1))?,
                };
                // From 6.6 aya attaches through TCX links, which need no qdisc (and leave none).
                let tcx = aya::util::KernelVersion::current()
                    .is_ok_and(|v| v >= aya::util::KernelVersion::new(6, 6, 0));
                if !tcx {
                    let _ = programs::tc::qdisc_add_clsact(&ifname);
                }
                let at = match p.tc_attach_point.as_deref() {
                    Some("BPF_TC_EGRESS") => TcAttachType::Egress,
                    _ if kind == "tc" && rest.contains("egress") => TcAttachType::Egress,
                    _ => TcAttachType::Ingress,
                };
                {
                    let t0 = std::time::Instant::now();
                    t.load().map_err(e)?;
                    *verify_time += t0.elapsed();
                }
                t.attach(&ifname, at).map_err(e)?;
            }
            _ => {
                return Err(Error::msg(
                    "this program type needs an attach target the package cannot name (socket, cgroup, perf event); it is not supported yet",
                ))
            }
        }
        self.attach_time += t_start.elapsed();
        if needs_btf {
            self.btf_attaches_left = self.btf_attaches_left.saturating_sub(1);
            if self.btf_attaches_left == 0 {
                self.kbtf = None; // not needed any more: give its memory back before tracing
            }
        }
        Ok(())
    }

    pub fn take_map(&mut self, name: &str) -> Option<aya::maps::Map> {
        self.ebpf.take_map(name)
    }
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

fn split_offset(target: &str) -> Result<(&str, u64)> {
    match target.split_once('+') {
        None => Ok((target, 0)),
        Some((f, o)) => {
            let off = match o.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16),
                None => o.parse(),
            }
            .map_err(|_| Error::msg(format!("bad offset \"{o}\" in \"{target}\"")))?;
            Ok((f, off))
        }
    }
}

fn if_index(name: &str) -> Result<u32> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| Error::msg(format!("bad interface name {name:?}")))?;
    // SAFETY: c is NUL-terminated.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(Error::msg(format!("no network interface named {name}"))),
        i => Ok(i),
    }
}

fn if_name(ifindex: u32) -> Result<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf holds IF_NAMESIZE bytes as if_indextoname requires.
    let r = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if r.is_null() {
        return Err(Error::msg(format!(
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

/// Raw map access by fd for maps whose key/value sizes are only known at run time (aya's typed
/// maps need them at compile time).
pub mod rawmap {
    use super::*;

    #[repr(C)]
    struct Attr {
        map_fd: u32,
        _pad: u32,
        key: u64,
        value: u64,
        flags: u64,
    }

    fn call(
        cmd: i32,
        fd: RawFd,
        key: *const u8,
        value: *mut u8,
        flags: u64,
    ) -> std::io::Result<()> {
        let attr = Attr {
            map_fd: fd as u32,
            _pad: 0,
            key: key as u64,
            value: value as u64,
            flags,
        };
        // SAFETY: attr points to a valid bpf_attr prefix; key/value buffers are sized by callers
        // to the map's key and value sizes.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                &attr as *const Attr,
                std::mem::size_of::<Attr>(),
            )
        };
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    pub fn lookup(fd: RawFd, key: &[u8], value: &mut [u8]) -> std::io::Result<()> {
        call(1, fd, key.as_ptr(), value.as_mut_ptr(), 0)
    }

    pub fn delete(fd: RawFd, key: &[u8]) -> std::io::Result<()> {
        call(3, fd, key.as_ptr(), std::ptr::null_mut(), 0)
    }

    pub fn update(fd: RawFd, key: &[u8], value: &[u8], flags: u64) -> std::io::Result<()> {
        // The kernel only reads the value for an update.
        call(2, fd, key.as_ptr(), value.as_ptr() as *mut u8, flags)
    }

    /// (map type, key size, value size as user space sees it) from the kernel.
    pub fn info(fd: RawFd) -> std::io::Result<(u32, usize, usize)> {
        #[repr(C)]
        struct InfoAttr {
            bpf_fd: u32,
            info_len: u32,
            info: u64,
        }
        let mut info = [0u32; 20];
        let attr = InfoAttr {
            bpf_fd: fd as u32,
            info_len: 80,
            info: info.as_mut_ptr() as u64,
        };
        // SAFETY: BPF_OBJ_GET_INFO_BY_FD writes at most info_len bytes into info.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                15,
                &attr as *const InfoAttr,
                std::mem::size_of::<InfoAttr>(),
            )
        };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let (ty, key, value) = (info[0], info[2] as usize, info[3] as usize);
        // Per-CPU maps return one 8-byte-aligned value per possible CPU.
        let percpu = matches!(ty, 5 | 6 | 10 | 21);
        let value = if percpu {
            let n = aya::util::nr_cpus().map_err(|(_, e)| e)?;
            value.div_ceil(8) * 8 * n
        } else {
            value
        };
        Ok((ty, key, value))
    }

    /// Next key after `key` (None: the first key). Ok(false) at the end.
    pub fn next_key(fd: RawFd, key: Option<&[u8]>, next: &mut [u8]) -> std::io::Result<bool> {
        match call(
            4,
            fd,
            key.map_or(std::ptr::null(), |k| k.as_ptr()),
            next.as_mut_ptr(),
            0,
        ) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub fn fd_of(map: &aya::maps::Map) -> Option<RawFd> {
        use aya::maps::Map;
        let data = match map {
            Map::HashMap(d)
            | Map::LruHashMap(d)
            | Map::Array(d)
            | Map::PerCpuHashMap(d)
            | Map::PerCpuArray(d)
            | Map::PerCpuLruHashMap(d)
            | Map::LpmTrie(d) => d,
            _ => return None,
        };
        Some(data.fd().as_fd().as_raw_fd())
    }

    /// The fd of any map kind a guest may name (event maps included).
    pub fn fd_of_any(map: &aya::maps::Map) -> Option<RawFd> {
        use aya::maps::Map;
        if let Some(fd) = fd_of(map) {
            return Some(fd);
        }
        let data = match map {
            Map::RingBuf(d)
            | Map::PerfEventArray(d)
            | Map::Queue(d)
            | Map::Stack(d)
            | Map::BloomFilter(d) => d,
            _ => return None,
        };
        Some(data.fd().as_fd().as_raw_fd())
    }
}
