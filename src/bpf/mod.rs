//! The kernel layer, and the only one: load an object with its globals (aya), attach every
//! program by its section name (`attach/`, one file per kind), hand out event buffers and map
//! access. aya types never leave this module. Everything kernel-side is owned by [`Loaded`];
//! dropping it detaches links and closes programs, maps and the sockets and perf events
//! programs were attached through.

pub mod attach;
pub mod btf_source;
mod buffer;
pub mod externs;
pub mod kernel_btf;
pub mod section;
pub mod stats;
pub mod sys;

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use aya::maps::Map;
use aya::{Ebpf, EbpfLoader};

pub use attach::AttachOptions;
pub use btf_source::SYS_BTF;
pub use buffer::{EventBuffers, RecordBuffers};
pub use kernel_btf::KernelBtf;
pub use section::Section;

use crate::btf::core::Needs;
use crate::error::{Error, ErrorKind, Result};
use crate::package::elf::Elf;
use crate::package::meta::{check_map_sizes, map_type, MapSize};
use crate::package::{Object, Prog};

/// Formats an error with its whole source chain (aya puts the verifier log and errno there).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
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

/// The errno somewhere in an error's source chain (aya wraps the syscall's io::Error).
pub(crate) fn errno(e: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if let Some(n) = io.raw_os_error() {
                return Some(n);
            }
        }
        cur = c.source();
    }
    None
}

/// An object loaded into the kernel: its maps exist, its programs are loaded at attach.
pub struct Loaded {
    ebpf: Ebpf,
    /// Each program's parsed section, by program name.
    sections: Vec<(String, Section)>,
    kbtf: Option<aya::Btf>,
    /// BTF-attached programs still to load; `kbtf` is dropped when none are left.
    btf_attaches_left: usize,
    btf_src: KernelBtf,
    /// Sockets, perf events and cgroup directories programs are attached through.
    held: Vec<OwnedFd>,
    /// The object's USDT spec map (`usdt.bpf.h`), when it has USDT programs.
    usdt: Option<attach::UsdtSpecs>,
    /// Time spent in program loads (the verifier) and in attaching, for the phase log.
    pub verify_time: Duration,
    pub attach_time: Duration,
}

/// How an object is loaded, besides its globals.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Where the kernel's BTF comes from.
    pub btf: KernelBtf,
    /// Where maps pinned by name (`__uint(pinning, LIBBPF_PIN_BY_NAME)`) live instead of
    /// /sys/fs/bpf: a second load with the same directory shares them.
    pub pin_dir: Option<std::path::PathBuf>,
    /// Map sizes the user sets (`--map NAME.max_entries=N`).
    pub map_sizes: Vec<MapSize>,
}

/// Loads the object's maps and globals into the kernel (programs are loaded at attach).
pub fn load(object: &Object, globals: &[(String, Vec<u8>)], opts: &LoadOptions) -> Result<Loaded> {
    check_map_sizes(&object.meta.maps, &opts.map_sizes)?;
    let mut btf_src = opts.btf.clone();
    // BTF the package carries (package.json, ecc's tar, an OCI btfgen layer); a Wasm app's
    // comes in the options.
    if let Some(a) = &object.btfs {
        btf_src.carried = Some(a.clone());
    }
    let own_btf = btf_src.kernel_has_btf();
    // Every section is parsed once; kinds aya does not parse are renamed before it sees them.
    let mut sections = Vec::new();
    let mut renames = Vec::new();
    for p in &object.meta.progs {
        let sec = section::parse_for(&p.name, &p.section).map_err(|e| {
            match section::needs_kernel_btf(&p.section) {
                Some(kind) if !own_btf => Error::new(
                    e.kind(),
                    format!("{e}; {kind} programs also need the kernel's own BTF ({SYS_BTF}), which this kernel lacks"),
                ),
                _ => e,
            }
        })?;
        if let Some(new) = sec.aya_name(&p.section) {
            renames.push((p.section.clone(), new));
        }
        sections.push((p.name.clone(), sec));
    }
    // Externs (`__kconfig`, `__ksym`) get this kernel's values, and hidden global functions
    // are made static, as libbpf does.
    let linked = {
        let elf = Elf::parse(&object.bytes)?;
        let found = crate::package::externs::find(&elf, &object.btf)
            .map_err(|e| e.context(format!("object {}", object.meta.obj_name)))?;
        let hidden = crate::package::externs::hidden_functions(&elf, &object.btf);
        if found.is_empty() && hidden.is_empty() {
            None
        } else {
            let values = externs::resolve(&found, &btf_src)?;
            Some(crate::package::externs::link(
                &object.bytes,
                &found,
                &values,
            )?)
        }
    };
    let elf = Elf::parse(linked.as_deref().unwrap_or(&object.bytes))?;
    let ext = elf.section(".BTF.ext").map(|x| elf.section_data(x));
    let renamed = renamed_object(&elf, &renames)?;
    let bytes: &[u8] = renamed
        .as_deref()
        .or(linked.as_deref())
        .unwrap_or(&object.bytes);
    // Only what CO-RE relocations and BTF attach points use of the kernel's BTF is parsed.
    // (Renaming changes section names only: the original .BTF.ext has the same relocations.)
    let mut needs = match ext {
        Some(x) => crate::btf::core::core_needs(&object.btf, x)?,
        None => Needs::Nothing,
    };
    let mut btf_attaches_left = 0;
    // Without BTF of its own the kernel cannot take BTF attach points at all: those programs
    // fail at attach with the reason (their alternatives, raw_tp or kprobes, attach instead).
    for (_, s) in sections.iter().filter(|_| own_btf) {
        if let Some(t) = s.btf_attach_type() {
            needs.add(t);
            btf_attaches_left += 1;
        }
    }
    let mut kbtf = kernel_btf::kernel_btf(&btf_src, &needs)?;
    let mut loader = EbpfLoader::with_btf(kbtf.as_ref());
    let ringbufs: Vec<&str> = object
        .meta
        .maps
        .iter()
        .filter(|m| m.map_type == map_type::RINGBUF)
        .map(|m| m.name.as_str())
        .collect();
    if !ringbufs.is_empty() && !ringbuf_supported() {
        let guarded = match ext {
            Some(x) => crate::btf::core::checks_type_exists(&object.btf, x, "bpf_ringbuf")?,
            None => false,
        };
        if !guarded {
            return Err(Error::new(
                ErrorKind::Kernel,
                format!(
                    "object {}: map {} is a ring buffer (BPF_MAP_TYPE_RINGBUF, Linux 5.8), which this kernel lacks; the tool must check bpf_core_type_exists(struct bpf_ringbuf) and use bpf_perf_event_output otherwise (as <edge/compat.bpf.h> of the C SDK, sdk/c/edge, does), or run on a newer kernel",
                    object.meta.obj_name,
                    ringbufs.join(", ")
                ),
            ));
        }
        for m in &ringbufs {
            log::info!("map {m}: this kernel has no ring buffers; created as a perf event array (the object checks bpf_core_type_exists(struct bpf_ringbuf))");
            loader.map_as_perf_event_array(m);
        }
    }
    if let Some(d) = &opts.pin_dir {
        loader.default_map_pin_directory(d);
    }
    // What the object leaves to user space, as libbpf-tools' mains size it.
    for def in &object.meta.maps {
        let (max, value) = def.sizes(&opts.map_sizes);
        if let Some(n) = max {
            log::debug!("map {}: max_entries {n}", def.name);
            loader.map_max_entries(&def.name, n);
        }
        if let Some(n) = value {
            log::debug!("map {}: value_size {n}", def.name);
            loader.map_value_size(&def.name, n);
        }
    }
    for (name, value) in globals {
        loader.override_global(name.as_str(), value.as_slice(), true);
    }
    let ebpf = loader.load(bytes).map_err(|e| {
        let m = chain(&e);
        let denied = errno(&e) == Some(libc::EPERM);
        let hint = if denied {
            "; hint: run as root (loading needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN)"
        } else {
            ""
        };
        let kind = if denied {
            ErrorKind::Denied
        } else {
            ErrorKind::Kernel
        };
        Error::new(
            kind,
            format!("loading object {}: {m}{hint}", object.meta.obj_name),
        )
    })?;
    drop(loader);
    if btf_attaches_left == 0 {
        kbtf = None; // CO-RE is done: free it before the event buffers are mapped
    }
    let usdt = usdt_specs(object, &sections, &ebpf)?;
    Ok(Loaded {
        ebpf,
        sections,
        usdt,
        kbtf,
        btf_attaches_left,
        btf_src,
        held: Vec::new(),
        verify_time: Duration::ZERO,
        attach_time: Duration::ZERO,
    })
}

/// The spec map of an object with USDT programs, and where its `usdt.bpf.h` keeps each part
/// of a spec.
fn usdt_specs(
    object: &Object,
    sections: &[(String, Section)],
    ebpf: &Ebpf,
) -> Result<Option<attach::UsdtSpecs>> {
    if !sections
        .iter()
        .any(|(_, s)| matches!(s, Section::Usdt { .. }))
    {
        return Ok(None);
    }
    let layout = crate::usdt::SpecLayout::from_btf(&object.btf)?;
    let map = ebpf
        .map(crate::usdt::SPECS_MAP)
        .ok_or_else(|| {
            Error::invalid(format!(
                "a USDT program needs the {} map of <bpf/usdt.bpf.h>",
                crate::usdt::SPECS_MAP
            ))
        })
        .and_then(|m| {
            sys::KernelMap::dup(map_fd(m))
                .map_err(|e| Error::msg(format!("map {}: {e}", crate::usdt::SPECS_MAP)))
        })?;
    let max = object
        .meta
        .maps
        .iter()
        .find(|m| m.name == crate::usdt::SPECS_MAP)
        .map_or(256, |m| m.max_entries);
    Ok(Some(attach::UsdtSpecs {
        layout,
        map,
        next: 0,
        max,
    }))
}

/// The object with its sections renamed (None when nothing is). `.BTF.ext` names program
/// sections too (func and line info, CO-RE relocations): its names follow, through new strings
/// appended to `.BTF`.
fn renamed_object(elf: &Elf, renames: &[(String, String)]) -> Result<Option<Vec<u8>>> {
    if renames.is_empty() {
        return Ok(None);
    }
    let mut replace = Vec::new();
    if let (Some(b), Some(x)) = (elf.section(".BTF"), elf.section(".BTF.ext")) {
        let (nb, nx) =
            crate::btf::ext::rename_sections(elf.section_data(b), elf.section_data(x), renames)?;
        replace.push((".BTF", nb));
        replace.push((".BTF.ext", nx));
    }
    Ok(Some(elf.with_renamed_sections(
        |n| renames.iter().find(|(o, _)| o == n).map(|(_, r)| r.clone()),
        &replace,
    )))
}

/// Does this kernel have ring buffers (`BPF_MAP_TYPE_RINGBUF`, Linux 5.8)? Probed once, by
/// creating one, as libbpf-tools' `probe_ringbuf()` does.
fn ringbuf_supported() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        // An error other than "no such map type" (EPERM...) is the load's to report.
        aya::sys::is_map_supported(aya::maps::MapType::RingBuf).unwrap_or(true)
    })
}

fn map_fd(map: &Map) -> RawFd {
    let data = match map {
        Map::Array(d)
        | Map::ArrayOfMaps(d)
        | Map::BloomFilter(d)
        | Map::CgroupArray(d)
        | Map::CgroupStorage(d)
        | Map::CgrpStorage(d)
        | Map::CpuMap(d)
        | Map::DevMap(d)
        | Map::DevMapHash(d)
        | Map::HashMap(d)
        | Map::HashOfMaps(d)
        | Map::InodeStorage(d)
        | Map::LpmTrie(d)
        | Map::LruHashMap(d)
        | Map::PerCpuArray(d)
        | Map::PerCpuCgroupStorage(d)
        | Map::PerCpuHashMap(d)
        | Map::PerCpuLruHashMap(d)
        | Map::PerfEventArray(d)
        | Map::ProgramArray(d)
        | Map::Queue(d)
        | Map::ReusePortSockArray(d)
        | Map::RingBuf(d)
        | Map::SockHash(d)
        | Map::SockMap(d)
        | Map::SkStorage(d)
        | Map::Stack(d)
        | Map::StackTraceMap(d)
        | Map::Unsupported(d)
        | Map::XskMap(d) => d,
    };
    data.fd().as_fd().as_raw_fd()
}

impl Loaded {
    /// Loads and attaches the programs of the package as a tool's user space would:
    /// programs that hook one place by different mechanisms are alternatives of which the
    /// first the kernel accepts is attached (fentry before kprobe, tp_btf before raw_tp); a
    /// program whose target or mechanism this kernel lacks is skipped when others attached
    /// (an error with `--strict`). Returns the warnings to show; nothing attached is an error
    /// naming why each program failed.
    pub fn attach_all(&mut self, progs: &[Prog], opts: &AttachOptions) -> Result<Vec<String>> {
        for n in &opts.only {
            if !progs.iter().any(|p| p.name == *n) {
                let names: Vec<&str> = progs.iter().map(|p| p.name.as_str()).collect();
                return Err(Error::new(
                    ErrorKind::Usage,
                    format!(
                        "--only {n}: no program named {n} (the programs: {})",
                        names.join(", ")
                    ),
                ));
            }
        }
        let chosen: Vec<Prog>;
        let progs = if opts.only.is_empty() {
            progs
        } else {
            chosen = progs
                .iter()
                .filter(|p| opts.only.contains(&p.name))
                .cloned()
                .collect();
            &chosen
        };
        let mut secs = Vec::with_capacity(progs.len());
        for p in progs {
            let sec = self.section_of(&p.name)?;
            secs.push(opts.section_for(&p.name, &sec)?);
        }
        for (n, _) in &opts.targets {
            let named = progs.iter().zip(&secs).any(|(p, s)| {
                p.name == *n
                    || s.target().as_deref() == Some(n.as_str())
                    || self
                        .section_of(&p.name)
                        .ok()
                        .and_then(|s| s.target())
                        .as_deref()
                        == Some(n.as_str())
            });
            if !named {
                return Err(Error::new(
                    ErrorKind::Usage,
                    format!("--attach {n}=...: no program or section target named {n}"),
                ));
            }
        }
        let mut warnings = Vec::new();
        let mut skipped: Vec<Error> = Vec::new();
        let mut attached = 0;
        for group in section::attach_plan(&secs) {
            let mut errs = Vec::new();
            for &i in &group {
                match self.attach_section(&progs[i], &secs[i], opts) {
                    Ok(()) => {
                        attached += 1;
                        break;
                    }
                    Err(e) => errs.push(e),
                }
            }
            if errs.len() < group.len() {
                if let (Some(e), Some(&i)) = (errs.first(), group.get(errs.len())) {
                    log::info!("attached {} instead of its alternative: {e}", progs[i].name);
                }
                continue;
            }
            // None of the group attached: the kernel's refusal of a program itself (the
            // verifier) is an error; a target or mechanism this kernel lacks is skipped.
            let hard = errs
                .iter()
                .position(|e| !matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Denied));
            if let Some(i) = hard {
                return Err(errs.swap_remove(i));
            }
            let kind = errs.last().map_or(ErrorKind::Other, Error::kind);
            let why: Vec<String> = errs.iter().map(Error::to_string).collect();
            let e = Error::new(kind, why.join("; and "));
            if opts.strict {
                return Err(e);
            }
            skipped.push(e);
        }
        if attached == 0 && !skipped.is_empty() {
            let why: Vec<String> = skipped.iter().map(Error::to_string).collect();
            return Err(Error::new(
                skipped[0].kind(),
                format!("no program could attach on this kernel: {}", why.join("; ")),
            ));
        }
        for e in skipped {
            warnings.push(format!("skipped (use --strict to make this an error): {e}"));
        }
        Ok(warnings)
    }

    fn section_of(&self, prog: &str) -> Result<Section> {
        self.sections
            .iter()
            .find(|(n, _)| n == prog)
            .map(|(_, s)| s.clone())
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no program named {prog}")))
    }

    /// Loads and attaches one program, with `opts` giving what its section cannot name.
    pub fn attach_one(&mut self, p: &Prog, opts: &AttachOptions) -> Result<()> {
        let sec = opts.section_for(&p.name, &self.section_of(&p.name)?)?;
        self.attach_section(p, &sec, opts)
    }

    /// Loads and attaches program `p` as section `sec` says.
    fn attach_section(&mut self, p: &Prog, sec: &Section, opts: &AttachOptions) -> Result<()> {
        let original = self.section_of(&p.name)?;
        let btf_type = sec.btf_attach_type();
        if btf_type.is_some() && !self.btf_src.kernel_has_btf() {
            let kind = section::needs_kernel_btf(&p.section).unwrap_or("BTF-attached");
            return Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "attaching program {} (section \"{}\"): {kind} programs need the kernel's own BTF ({SYS_BTF}), which this kernel lacks (built without CONFIG_DEBUG_INFO_BTF); BTF from the package, a node directory or a file cannot stand in for it: use a tracepoint (tp/...), raw_tp/... or a kprobe",
                    p.name, p.section
                ),
            ));
        }
        // Normally built by `load` already, with every attach type in it; a target given
        // at run time needs its own.
        let rebuild = match (&btf_type, &self.kbtf) {
            (Some(_), None) => true,
            (Some(t), Some(_)) => original.btf_attach_type().as_ref() != Some(t),
            _ => false,
        };
        if let (true, Some(t)) = (rebuild, &btf_type) {
            let mut needs = Needs::Nothing;
            needs.add(t.clone());
            self.kbtf = kernel_btf::kernel_btf(&self.btf_src, &needs)?;
        }
        let t0 = std::time::Instant::now();
        let Loaded {
            ebpf,
            kbtf,
            held,
            verify_time,
            usdt,
            ..
        } = self;
        let prog = ebpf.program_mut(&p.name).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("program {} is not in the loaded object", p.name),
            )
        })?;
        let mut ctx = attach::Ctx {
            verify: Duration::ZERO,
            kbtf: kbtf.as_ref(),
            held,
            usdt: usdt.as_mut(),
        };
        let r = attach::attach(prog, sec, p, opts, &mut ctx);
        *verify_time += ctx.verify;
        self.attach_time += t0.elapsed();
        let shown = match sec.target() {
            Some(t) if Some(&t) != original.target().as_ref() => {
                format!("{}, attached to {t}", p.section)
            }
            _ => p.section.clone(),
        };
        r.map_err(|e| {
            e.context(format!(
                "attaching program {} (section \"{shown}\")",
                p.name
            ))
        })?;
        log::debug!("attached {} ({shown})", p.name);
        if btf_type.is_some() {
            self.btf_attaches_left = self.btf_attaches_left.saturating_sub(1);
            if self.btf_attaches_left == 0 {
                self.kbtf = None; // not needed any more: give its memory back before tracing
            }
        }
        Ok(())
    }

    /// Takes event map `name` (a ring buffer or perf event array) out of the object and opens
    /// its buffers; perf buffers get `perf_pages` pages per CPU.
    pub fn event_buffers(&mut self, name: &str, perf_pages: usize) -> Result<EventBuffers> {
        let map = self.ebpf.take_map(name).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("map {name} was not created (or is already being read)"),
            )
        })?;
        EventBuffers::open(name, map, perf_pages)
    }

    /// Is map `name` a ring buffer or perf event array (still in the object)?
    pub fn is_event_map(&self, name: &str) -> bool {
        matches!(
            self.ebpf.map(name),
            Some(Map::RingBuf(_) | Map::PerfEventArray(_))
        )
    }

    /// The fd of map `name`, while the object holds it.
    /// The kernel ids of the programs loaded so far, by program name.
    pub fn program_ids(&self) -> Vec<(String, u32)> {
        self.ebpf
            .programs()
            .filter_map(|(n, p)| p.info().ok().map(|i| (n.to_string(), i.id())))
            .collect()
    }

    pub fn map_fd(&self, name: &str) -> Option<RawFd> {
        self.ebpf.map(name).map(map_fd)
    }

    /// Every map the object still holds, with its fd.
    pub fn map_fds(&self) -> Vec<(String, RawFd)> {
        self.ebpf
            .maps()
            .map(|(n, m)| (n.to_string(), map_fd(m)))
            .collect()
    }
}
