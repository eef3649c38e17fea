//! A program's attach kind, parsed once from its ELF section name (libbpf's conventions). Pure:
//! `info`, the loader and every attach use this one parser, so a section means the same thing
//! everywhere. Kinds aya 0.14 cannot parse are renamed to ones it can; kinds nobody here can
//! run are refused with the reason and a hint.

/// What a section asks for. Targets are as the section spells them; run-time options
/// (`--uprobe-target`, `--iface`, `--cgroup`) may replace them at attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Section {
    Tracepoint {
        category: String,
        name: String,
    },
    RawTracepoint {
        name: String,
    },
    /// tp_btf, fentry, fexit, lsm: loaded against a kernel BTF type.
    BtfTracing {
        kind: BtfKind,
        target: String,
    },
    /// kprobe/kretprobe; `ksyscall/NAME` is a kprobe on this arch's syscall wrapper.
    Kprobe {
        func: String,
        offset: u64,
        ret: bool,
    },
    /// uprobe/PATH:FUNC[+OFF]; `target` is empty when the section names none.
    Uprobe {
        target: String,
        ret: bool,
    },
    /// usdt/PATH:PROVIDER:NAME (libbpf's `usdt.bpf.h`); empty when the section names none.
    Usdt {
        target: String,
    },
    Xdp,
    Tc {
        egress: bool,
    },
    Socket,
    CgroupSkb {
        egress: Option<bool>,
    },
    /// `cgroup/ATTACH` (sock, connect4, getsockopt, sysctl, dev...), attached to a cgroup.
    Cgroup {
        attach: String,
    },
    Sockops,
    SkMsg,
    SkSkb,
    PerfEvent,
    /// Kinds aya parses but that attach to nothing this runtime can name (iter, sk_lookup...).
    Unattachable {
        kind: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BtfKind {
    TpBtf,
    Fentry,
    Fexit,
    Lsm,
}

/// Why a section cannot run here: the hint is the whole message after the section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// The libbpf syscall wrapper prefix of this architecture (for `ksyscall/NAME`).
pub fn syscall_prefix() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        "__x64_sys_"
    } else if cfg!(target_arch = "aarch64") {
        "__arm64_sys_"
    } else if cfg!(target_arch = "riscv64") {
        "__riscv_sys_"
    } else {
        "sys_"
    }
}

fn split_offset(target: &str) -> Result<(&str, u64), Refused> {
    match target.rsplit_once('+') {
        None => Ok((target, 0)),
        Some((f, o)) => {
            let off = match o.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16),
                None => o.parse(),
            }
            .map_err(|_| Refused(format!("bad offset \"{o}\" in \"{target}\"")))?;
            Ok((f, off))
        }
    }
}

impl Section {
    /// (One arm per libbpf section kind: a table, long by nature.)
    pub fn parse(section: &str) -> Result<Section, Refused> {
        let (kind, rest) = section.split_once('/').unwrap_or((section, ""));
        let need = |what: &str| -> Result<String, Refused> {
            if rest.is_empty() {
                Err(Refused(format!("expected {kind}/{what}")))
            } else {
                Ok(rest.to_string())
            }
        };
        let btf = |kind: BtfKind| need("NAME").map(|target| Section::BtfTracing { kind, target });
        Ok(match kind {
            "tracepoint" | "tp" => {
                let (c, n) = rest
                    .split_once('/')
                    .filter(|(c, n)| !c.is_empty() && !n.is_empty())
                    .ok_or_else(|| Refused(format!("expected {kind}/CATEGORY/NAME")))?;
                Section::Tracepoint {
                    category: c.into(),
                    name: n.into(),
                }
            }
            "raw_tracepoint" | "raw_tp" => Section::RawTracepoint {
                name: need("NAME")?,
            },
            "tp_btf" => btf(BtfKind::TpBtf)?,
            "fentry" | "fentry.s" => btf(BtfKind::Fentry)?,
            "fexit" | "fexit.s" => btf(BtfKind::Fexit)?,
            "lsm" | "lsm.s" => btf(BtfKind::Lsm)?,
            "kprobe" | "kretprobe" => {
                let (f, offset) = split_offset(rest)?;
                Section::Kprobe {
                    func: f.into(),
                    offset,
                    ret: kind == "kretprobe",
                }
            }
            "ksyscall" | "kretsyscall" => Section::Kprobe {
                func: format!("{}{}", syscall_prefix(), need("SYSCALL")?),
                offset: 0,
                ret: kind == "kretsyscall",
            },
            "uprobe" | "uprobe.s" | "uretprobe" | "uretprobe.s" => Section::Uprobe {
                target: rest.into(),
                ret: kind.starts_with("uret"),
            },
            "xdp" | "xdp.frags" => match rest {
                "" => Section::Xdp,
                _ => Section::Unattachable {
                    kind: format!("xdp/{rest}"),
                },
            },
            "tc" | "tcx" | "classifier" => Section::Tc {
                egress: rest.contains("egress"),
            },
            "socket" => Section::Socket,
            "cgroup_skb" => match rest {
                "ingress" => Section::CgroupSkb {
                    egress: Some(false),
                },
                "egress" => Section::CgroupSkb { egress: Some(true) },
                _ => return Err(Refused("expected cgroup_skb/ingress or cgroup_skb/egress".into())),
            },
            "cgroup" if rest == "skb" => Section::CgroupSkb { egress: None },
            "cgroup" => Section::Cgroup {
                attach: need("ATTACH")?,
            },
            "sockops" => Section::Sockops,
            "sk_msg" => Section::SkMsg,
            "sk_skb" => Section::SkSkb,
            "perf_event" => Section::PerfEvent,
            "iter" | "iter.s" | "sk_lookup" | "flow_dissector" | "sk_reuseport" | "lirc_mode2" => {
                Section::Unattachable { kind: kind.into() }
            }
            "fmod_ret" | "fmod_ret.s" => {
                return Err(Refused(
                    "fmod_ret is not supported by this runtime (aya 0.14); use fexit".into(),
                ))
            }
            "kprobe.multi" | "kretprobe.multi" => {
                return Err(Refused(
                    "multi-kprobes are not supported; use one kprobe/F per function".into(),
                ))
            }
            "uprobe.multi" | "uretprobe.multi" => {
                return Err(Refused(
                    "multi-uprobes are not supported; use uprobe/PATH:FUNC".into(),
                ))
            }
            "usdt" => Section::Usdt {
                target: rest.into(),
            },
            "struct_ops" | "struct_ops.s" => {
                return Err(Refused("struct_ops programs are not supported".into()))
            }
            "syscall" => {
                return Err(Refused(
                    "BPF_PROG_TYPE_SYSCALL programs are not supported".into(),
                ))
            }
            "netfilter" => return Err(Refused("netfilter programs are not supported".into())),
            _ => return Err(Refused(
                "unknown section name; see libbpf's section names (tp/C/N, raw_tp/N, tp_btf/N, fentry/F, kprobe/F, uprobe/PATH:FUNC, xdp, tc, socket, cgroup_skb/ingress, sockops, perf_event, ...)".into(),
            )),
        })
    }

    /// The name aya 0.14 must see instead of the original, when it does not parse libbpf's.
    /// It keeps the original as a suffix: two sections must not become one, or their
    /// `.BTF.ext` records (func and line info, CO-RE) would mix.
    pub fn aya_name(&self, original: &str) -> Option<String> {
        let kind = original.split('/').next().unwrap_or("");
        match (self, kind) {
            (Section::Tc { .. }, "tc" | "tcx") => Some(format!("classifier/{original}")),
            (Section::Kprobe { func, ret, .. }, "ksyscall" | "kretsyscall") => Some(format!(
                "{}/{func}",
                if *ret { "kretprobe" } else { "kprobe" }
            )),
            // A USDT probe is a uprobe with a spec; aya knows the uprobe.
            (Section::Usdt { .. }, _) => Some(format!("uprobe/{original}")),
            _ => None,
        }
    }

    /// The kernel BTF type a BTF-attached program is loaded against (named as aya looks it up).
    pub fn btf_attach_type(&self) -> Option<String> {
        match self {
            Section::BtfTracing { kind, target } => Some(match kind {
                BtfKind::TpBtf => format!("btf_trace_{target}"),
                BtfKind::Fentry | BtfKind::Fexit => target.clone(),
                BtfKind::Lsm => format!("bpf_lsm_{target}"),
            }),
            _ => None,
        }
    }

    pub fn is_kprobe(&self) -> bool {
        matches!(self, Section::Kprobe { .. })
    }
}

/// The kind of a program that needs the kernel's own BTF (the kernel resolves its attach point
/// or its types there), by its section name: tp_btf, fentry/fexit/fmod_ret, lsm, iter,
/// struct_ops, freplace.
pub fn needs_kernel_btf(section: &str) -> Option<&'static str> {
    let kind = section.split('/').next().unwrap_or(section);
    Some(match kind.trim_end_matches(".s") {
        "tp_btf" => "tp_btf",
        "fentry" => "fentry",
        "fexit" => "fexit",
        "fmod_ret" => "fmod_ret",
        "lsm" | "lsm_cgroup" => "lsm",
        "iter" => "iter",
        "struct_ops" => "struct_ops",
        "freplace" => "freplace",
        _ => return None,
    })
}

/// A place programs hook by different mechanisms: a tool ships one program per mechanism and
/// its user space turns all but one off (fentry/kprobe, fexit/kretprobe, tp_btf/raw_tp).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hook {
    Entry(String),
    Return(String),
    RawTracepoint(String),
}

impl Section {
    /// The hook this program shares with its alternatives, and its rank among them (the
    /// lowest is tried first: BTF-based mechanisms are cheaper and see typed arguments).
    pub fn hook(&self) -> Option<(Hook, u8)> {
        Some(match self {
            Section::BtfTracing { kind, target } => match kind {
                BtfKind::Fentry => (Hook::Entry(target.clone()), 0),
                BtfKind::Fexit => (Hook::Return(target.clone()), 0),
                BtfKind::TpBtf => (Hook::RawTracepoint(target.clone()), 0),
                BtfKind::Lsm => return None,
            },
            Section::Kprobe {
                func,
                offset: 0,
                ret,
            } => {
                if *ret {
                    (Hook::Return(func.clone()), 1)
                } else {
                    (Hook::Entry(func.clone()), 1)
                }
            }
            Section::RawTracepoint { name } => (Hook::RawTracepoint(name.clone()), 1),
            _ => return None,
        })
    }

    /// The target this section names, for `--attach` to replace: a function, a tracepoint
    /// (`CATEGORY/NAME`), a uprobe's `PATH:FUNC`.
    pub fn with_target(&self, new: &str) -> Option<Section> {
        let mut s = self.clone();
        match &mut s {
            Section::BtfTracing { target, .. } => *target = new.into(),
            Section::Kprobe { func, offset, .. } => {
                let (f, o) = split_offset(new).ok()?;
                *func = f.into();
                *offset = o;
            }
            Section::RawTracepoint { name } => *name = new.into(),
            Section::Tracepoint { category, name } => {
                let (c, n) = new.split_once(['/', ':'])?;
                *category = c.into();
                *name = n.into();
            }
            Section::Uprobe { target, .. } | Section::Usdt { target } => *target = new.into(),
            _ => return None,
        }
        Some(s)
    }

    /// What the section attaches to, as `--attach` names it.
    pub fn target(&self) -> Option<String> {
        match self {
            Section::BtfTracing { target, .. } => Some(target.clone()),
            Section::Kprobe { func, .. } => Some(func.clone()),
            Section::RawTracepoint { name } => Some(name.clone()),
            Section::Tracepoint { category, name } => Some(format!("{category}/{name}")),
            Section::Uprobe { target, .. } | Section::Usdt { target } if !target.is_empty() => {
                Some(target.clone())
            }
            _ => None,
        }
    }
}

/// The order programs are attached in: groups of alternatives (each in preference order, of
/// which one is attached), and every other program alone, in the object's order.
pub fn attach_plan(sections: &[Section]) -> Vec<Vec<usize>> {
    /// A hook (None: a program alone) and its programs, by (rank, index).
    type Group = (Option<Hook>, Vec<(u8, usize)>);
    let mut groups: Vec<Group> = Vec::new();
    for (i, s) in sections.iter().enumerate() {
        match s.hook() {
            Some((hook, rank)) => match groups.iter_mut().find(|g| g.0.as_ref() == Some(&hook)) {
                Some(g) => g.1.push((rank, i)),
                None => groups.push((Some(hook), vec![(rank, i)])),
            },
            None => groups.push((None, vec![(0, i)])),
        }
    }
    groups
        .into_iter()
        .map(|(_, mut g)| {
            g.sort_by_key(|&(rank, i)| (rank, i));
            g.into_iter().map(|(_, i)| i).collect()
        })
        .collect()
}

/// Parses `section` of program `prog`, naming both in the refusal.
pub fn parse_for(prog: &str, section: &str) -> crate::error::Result<Section> {
    Section::parse(section).map_err(|Refused(why)| {
        crate::error::Error::invalid(format!("program {prog} in section \"{section}\": {why}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_what_needs_the_kernels_own_btf() {
        for (sec, kind) in [
            ("tp_btf/sched_switch", Some("tp_btf")),
            ("fentry/do_unlinkat", Some("fentry")),
            ("fentry.s/x", Some("fentry")),
            ("fexit/x", Some("fexit")),
            ("lsm/path_mkdir", Some("lsm")),
            ("iter/task", Some("iter")),
            ("struct_ops", Some("struct_ops")),
            ("struct_ops.s/x", Some("struct_ops")),
            ("tp/sched/sched_switch", None),
            ("raw_tp/sched_switch", None),
            ("kprobe/do_unlinkat", None),
        ] {
            assert_eq!(needs_kernel_btf(sec), kind, "{sec}");
        }
    }

    #[test]
    fn parses_libbpf_sections_once() {
        assert_eq!(
            Section::parse("tp/syscalls/sys_enter_openat").unwrap(),
            Section::Tracepoint {
                category: "syscalls".into(),
                name: "sys_enter_openat".into()
            }
        );
        let tc = Section::parse("tc").unwrap();
        assert_eq!(tc.aya_name("tc").as_deref(), Some("classifier/tc"));
        assert_eq!(
            tc.aya_name("tcx/ingress").as_deref(),
            Some("classifier/tcx/ingress")
        );
        assert_eq!(
            Section::parse("classifier").unwrap().aya_name("classifier"),
            None
        );
        let k = Section::parse("ksyscall/kill").unwrap();
        let renamed = k.aya_name("ksyscall/kill").unwrap();
        assert!(
            renamed.starts_with("kprobe/") && renamed.ends_with("sys_kill"),
            "{renamed}"
        );
        assert_eq!(
            Section::parse("kprobe/do_sys_open+0x10").unwrap(),
            Section::Kprobe {
                func: "do_sys_open".into(),
                offset: 16,
                ret: false
            }
        );
        assert_eq!(
            Section::parse("tp_btf/sched_switch")
                .unwrap()
                .btf_attach_type()
                .as_deref(),
            Some("btf_trace_sched_switch")
        );
        assert_eq!(
            Section::parse("lsm/file_open")
                .unwrap()
                .btf_attach_type()
                .as_deref(),
            Some("bpf_lsm_file_open")
        );
        assert_eq!(
            Section::parse("cgroup_skb/egress").unwrap(),
            Section::CgroupSkb { egress: Some(true) }
        );
        assert_eq!(
            Section::parse("cgroup/connect4").unwrap(),
            Section::Cgroup {
                attach: "connect4".into()
            }
        );
        assert_eq!(
            Section::parse("uprobe").unwrap(),
            Section::Uprobe {
                target: String::new(),
                ret: false
            }
        );
    }

    #[test]
    fn alternatives_group_by_hook_best_first() {
        let secs: Vec<Section> = [
            "kprobe/vfs_read",
            "tp/sched/sched_switch",
            "fentry/vfs_read",
            "kretprobe/vfs_read",
            "fexit/vfs_read",
            "raw_tp/sched_wakeup",
            "tp_btf/sched_wakeup",
            "kprobe/vfs_read+8",
        ]
        .iter()
        .map(|s| Section::parse(s).unwrap())
        .collect();
        assert_eq!(
            attach_plan(&secs),
            vec![vec![2, 0], vec![1], vec![4, 3], vec![6, 5], vec![7]]
        );
        let k = Section::parse("kprobe/dummy_kprobe").unwrap();
        assert_eq!(
            k.with_target("vfs_read+4"),
            Some(Section::Kprobe {
                func: "vfs_read".into(),
                offset: 4,
                ret: false
            })
        );
        let t = Section::parse("tp/a/b")
            .unwrap()
            .with_target("sched:sched_switch")
            .unwrap();
        assert_eq!(t.target().as_deref(), Some("sched/sched_switch"));
        assert_eq!(Section::Xdp.with_target("x"), None);
    }

    #[test]
    fn refuses_what_cannot_run_with_a_hint() {
        let e = parse_for("handle", "struct_ops/x").unwrap_err().to_string();
        assert!(
            e.contains("program handle") && e.contains("\"struct_ops/x\""),
            "{e}"
        );
        assert_eq!(
            Section::parse("usdt/bin:p:n")
                .unwrap()
                .aya_name("usdt/bin:p:n")
                .as_deref(),
            Some("uprobe/usdt/bin:p:n")
        );
        let e = parse_for("h", "weird").unwrap_err().to_string();
        assert!(e.contains("unknown section name"), "{e}");
        assert!(Section::parse("tp/onlyone").is_err());
        assert!(Section::parse("kprobe/f+zz").is_err());
        assert!(Section::parse("fentry").is_err());
    }
}
