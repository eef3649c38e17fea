//! `edge-ecli run PROG [ARGS...]`: one instance of the runtime in the foreground, stopped by
//! Ctrl-C, SIGTERM or `--timeout`, its output on stdout.

use std::time::Duration;

use argh::{ArgsInfo, FromArgs};

use super::signals::SignalFd;
use super::source_flags::with_source_flags;
use crate::args::Invocation;
use crate::bpf::{AttachOptions, KernelBtf};
use crate::error::{Error, ErrorKind, Result};
use crate::event::poll::wait_readable;
use crate::event::OutputOptions;
use crate::event::{Format, Stdout};
use crate::logger;
use crate::package::Package;
use crate::runtime::{Instance, MapSize, Options, Outcome};
use crate::wasm::WasmOptions;

with_source_flags! {
#[derive(FromArgs, ArgsInfo)]
/// Load, attach and run a package; print its events until Ctrl-C, SIGTERM or --timeout.
/// PROG is a path, - (standard input), an http(s):// URL, an OCI reference
/// HOST[:PORT]/REPO[:TAG|@DIGEST], oci:DIR[:TAG] or oci-archive:FILE[:TAG].
/// ARGS after PROG go to the package's own flags (`run PROG -h` lists them).
#[argh(subcommand, name = "run")]
pub struct RunCmd {
    /// print events as NDJSON (one JSON object per line); same as -o json
    #[argh(switch, short = 'j')]
    pub json: bool,
    /// output: columns (the default), json, or columns=F1,F2,... / json=F1,F2,... for only
    /// those fields of the event, in that order
    #[argh(option, short = 'o', arg_name = "FORMAT")]
    output: Option<String>,
    /// NDJSON lines get a "timestamp" field: when the record was read, RFC 3339 in UTC
    #[argh(switch)]
    timestamp: bool,
    /// stop after SECS seconds (decimals allowed)
    #[argh(option, arg_name = "SECS")]
    pub timeout: Option<String>,
    /// the kernel's BTF, used whatever else there is: raw BTF or a vmlinux with a .BTF section
    /// (default: sysfs, else what the package carries, else --btf-dir, else /boot/vmlinux-R)
    #[argh(option, arg_name = "FILE")]
    btf: Option<String>,
    /// node directory of kernel BTF files, in BTFHub layout ID/VERSION_ID/ARCH/RELEASE.btf
    /// or flat RELEASE.btf, plain or .tar.xz (default /var/lib/edge-ecli/btf)
    #[argh(option, arg_name = "DIR")]
    btf_dir: Option<String>,
    /// struct that decodes the records of the event maps (for raw objects)
    #[argh(option, arg_name = "NAME")]
    event_type: Option<String>,
    /// attach uprobes to PATH:FUNC instead of what their sections name
    #[argh(option, arg_name = "PATH:FUNC")]
    uprobe_target: Option<String>,
    /// uprobes fire only in process PID
    #[argh(option, arg_name = "PID")]
    uprobe_pid: Option<u32>,
    /// network interface of xdp, tc and socket programs (default: ifindex 1, lo for socket)
    #[argh(option, arg_name = "NAME")]
    iface: Option<String>,
    /// cgroup v2 directory of cgroup and sockops programs (default: the cgroup v2 root)
    #[argh(option, arg_name = "PATH")]
    cgroup: Option<String>,
    /// sampling frequency of perf_event programs, per CPU (default 49)
    #[argh(option, arg_name = "HZ")]
    freq: Option<u64>,
    /// attach program PROG (or every program whose section names PROG) to TARGET instead: a
    /// kernel function, CATEGORY/NAME of a tracepoint, PATH:FUNC of a uprobe (repeatable)
    #[argh(option, arg_name = "PROG=TARGET")]
    attach: Vec<String>,
    /// attach only program PROG (repeatable), as a tool's own flags turn the others off
    #[argh(option, arg_name = "PROG")]
    only: Vec<String>,
    /// fail when a program cannot attach on this kernel (default: skip it with a warning
    /// when others attached; of alternatives such as fentry/kprobe one attaches)
    #[argh(switch)]
    strict: bool,
    /// size a map: NAME.max_entries=N or NAME.value_size=N (repeatable; maps the object leaves
    /// open get libbpf-tools' defaults: 10240 entries, 127-frame stacks)
    #[argh(option, arg_name = "NAME.KEY=N")]
    map: Vec<String>,
    /// print the tool's result maps every SECS seconds and clear them (default: once, at exit)
    #[argh(option, arg_name = "SECS")]
    interval: Option<String>,
    /// label of histogram columns (default usecs; msecs or nsecs when a *_ms or *_ns flag of
    /// the package is set)
    #[argh(option, arg_name = "UNIT")]
    hist_unit: Option<String>,
    /// for Wasm apps: environment variable K=V of the guest (repeatable; none by default)
    #[argh(option, arg_name = "K=V")]
    env: Vec<String>,
    /// for Wasm apps: grant the guest a host directory, HOST[:GUEST] (repeatable; none by default)
    #[argh(option, arg_name = "DIR")]
    dir: Vec<String>,
    /// for Wasm apps: cap on guest memory in MiB (default 256)
    #[argh(option, arg_name = "MIB", default = "256")]
    max_memory: u64,
    /// debug diagnostics of edge-ecli on stderr
    #[argh(switch, short = 'v')]
    pub verbose: bool,
    /// the package (a path to package.json, .bpf.o or .wasm, or - for standard input), then
    /// the arguments of its own flags
    #[argh(positional, greedy, arg_name = "PROG [ARGS")]
    pub rest: Vec<String>,
}
}

/// `--timeout` as a duration.
pub fn parse_timeout(t: &str) -> Result<Duration> {
    t.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0 && *v < 1e9)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Usage,
                format!("--timeout {t}: expected a number of seconds"),
            )
        })
}

/// `-j`, `-o FORMAT`: the format and, with `=F1,F2`, the fields shown.
fn output_choice(json: bool, output: Option<&str>) -> Result<(Format, Option<Vec<String>>)> {
    let Some(o) = output else {
        return Ok((if json { Format::Json } else { Format::Plain }, None));
    };
    let (kind, list) = match o.split_once('=') {
        Some((k, l)) => (k, Some(l)),
        None => (o, None),
    };
    let format = match kind {
        "columns" | "plain" if !json => Format::Plain,
        "json" => Format::Json,
        "columns" | "plain" => {
            return Err(Error::usage(format!(
                "-o {o} and -j disagree: give one of them"
            )))
        }
        _ => {
            return Err(Error::usage(format!(
                "-o {o}: expected columns, json, columns=F1,F2,... or json=F1,F2,..."
            )))
        }
    };
    let fields = match list {
        None => None,
        Some(l) => {
            let v: Vec<String> = l.split(',').map(|f| f.trim().to_string()).collect();
            if v.iter().any(String::is_empty) {
                return Err(Error::usage(format!(
                    "-o {o}: a field name is empty (expected {kind}=F1,F2,...)"
                )));
            }
            Some(v)
        }
    };
    Ok((format, fields))
}

/// The flags of `run` that go before PROG, as the user may type them (only those that take a
/// value with `options`).
fn outer_flags(options: bool) -> Vec<String> {
    let mut v = Vec::new();
    for f in RunCmd::get_args_info().flags {
        let takes_value = matches!(f.kind, argh::FlagInfoKind::Option { .. });
        if f.long == "--help" || (options && !takes_value) {
            continue;
        }
        v.push(f.long.to_string());
        if let Some(c) = f.short {
            v.push(format!("-{c}"));
        }
    }
    v
}

impl RunCmd {
    /// Every option checked, as the runtime takes them.
    pub fn options(&self) -> Result<Options> {
        let usage = |m: String| Error::new(ErrorKind::Usage, m);
        let timeout = self.timeout.as_deref().map(parse_timeout).transpose()?;
        let (format, fields) = output_choice(self.json, self.output.as_deref())?;
        if self.timestamp && format != Format::Json {
            return Err(usage(
                "--timestamp adds a field to NDJSON lines: use it with -j (columns have TIME)"
                    .into(),
            ));
        }
        for e in &self.env {
            if !e.contains('=') {
                return Err(usage(format!("--env {e}: expected K=V")));
            }
        }
        if self.max_memory == 0 || self.max_memory > 4096 {
            return Err(usage(format!(
                "--max-memory {}: expected 1..4096 MiB",
                self.max_memory
            )));
        }
        if let Some(f) = self.freq {
            if !(1..=100_000).contains(&f) {
                return Err(usage(format!("--freq {f}: expected 1..100000 Hz")));
            }
        }
        if let Some(t) = &self.uprobe_target {
            if !t.contains(':') {
                return Err(usage(format!("--uprobe-target {t}: expected PATH:FUNC")));
            }
        }
        let dirs = self
            .dir
            .iter()
            .map(|d| match d.split_once(':') {
                Some((h, g)) => (h.to_string(), g.to_string()),
                None => (d.clone(), d.clone()),
            })
            .collect();
        Ok(Options {
            format,
            output: OutputOptions {
                fields,
                timestamp: self.timestamp,
            },
            timeout,
            btf: KernelBtf {
                file: self.btf.clone(),
                dir: self.btf_dir.as_ref().map(Into::into),
                ..KernelBtf::default()
            },
            event_type: self.event_type.clone(),
            attach: AttachOptions {
                uprobe_target: self.uprobe_target.clone(),
                uprobe_pid: self.uprobe_pid.unwrap_or(0),
                iface: self.iface.clone(),
                cgroup: self.cgroup.clone(),
                freq: self.freq.unwrap_or(crate::bpf::attach::DEFAULT_FREQ),
                host_root: None,
                targets: self
                    .attach
                    .iter()
                    .map(|a| {
                        a.split_once('=')
                            .filter(|(p, t)| !p.is_empty() && !t.is_empty())
                            .map(|(p, t)| (p.to_string(), t.to_string()))
                            .ok_or_else(|| usage(format!("--attach {a}: expected PROG=TARGET")))
                    })
                    .collect::<Result<_>>()?,
                strict: self.strict,
                only: self.only.clone(),
            },
            wasm: WasmOptions {
                env: self.env.clone(),
                dirs,
                max_memory: (self.max_memory as usize) << 20,
            },
            pin_dir: None,
            invocation: Default::default(),
            map_sizes: self
                .map
                .iter()
                .map(|m| MapSize::parse(m))
                .collect::<Result<_>>()?,
            interval: match self.interval.as_deref() {
                None => None,
                Some(t) => Some(parse_timeout(t).ok().filter(|d| !d.is_zero()).ok_or_else(
                    || {
                        usage(format!(
                            "--interval {t}: expected a positive number of seconds"
                        ))
                    },
                )?),
            },
            hist_unit: self.hist_unit.clone(),
        })
    }

    pub fn main(mut self) -> Result<i32> {
        if self.rest.is_empty() {
            return Err(Error::usage(
                "PROG is missing: edge-ecli run [OPTIONS] PROG [ARGS...] (`edge-ecli run --help`)",
            ));
        }
        let mut opts = self.options()?;
        let prog = self.rest.remove(0);
        opts.invocation = Invocation {
            command: Some("edge-ecli run".into()),
            prog: Some(prog.clone()),
            outer_flags: outer_flags(false),
            outer_options: outer_flags(true),
        };
        let args = std::mem::take(&mut self.rest);
        // Before the instance's thread starts, so it inherits the blocked signals.
        let signals = SignalFd::new()?;
        let fetched = self.source_flags().fetch_trusted(&prog)?;
        log::info!(
            "read {prog} ({} bytes, {}) at {} ms",
            fetched.bytes.len(),
            fetched.content_digest,
            logger::since_start_ms()
        );
        let package = Package::decode(fetched.bytes, &fetched.name)
            .and_then(|p| p.with_btfgen(fetched.btfgen))
            .map_err(|e| e.context(&prog))?;
        let is_wasm = matches!(package, Package::Wasm { .. });
        let named = |e: Error| if is_wasm { e.context(&prog) } else { e };
        let inst = Instance::spawn(package, args, opts, Box::new(Stdout)).map_err(named)?;
        while !inst.is_finished() {
            let fds = [signals.fd, inst.done_fd()];
            if wait_readable(&fds, Duration::from_secs(3600)) == Some(0) && signals.take().is_some()
            {
                inst.stop();
            }
        }
        match inst.wait().map_err(named)? {
            Outcome::Help(h) => {
                print!("{h}");
                Ok(0)
            }
            Outcome::Done => Ok(0),
            Outcome::Exit(code) => Ok(code),
        }
    }
}
