//! `edge-ecli daemon`: the long-running manager of named instances (`crate::daemon`).

use std::sync::Arc;
use std::time::Duration;

use argh::{ArgsInfo, FromArgs};

use super::signals::SignalFd;
use super::source_flags::{with_source_flags, SourceFlags};
use crate::daemon::{self, DaemonOptions, TrustFiles};
use crate::error::{Error, ErrorKind, Result};
use crate::event::{Format, OutputOptions};
use crate::runtime::{AttachOptions, KernelBtf, Options};
use crate::source::FetchOptions;
use crate::trust::DEFAULT_POLICY;

with_source_flags! {
#[derive(FromArgs, ArgsInfo)]
/// Run many packages at once, driven over HTTP on a Unix socket (and optionally TCP): start,
/// reload (make-before-break), pause, stop, stream events, export metrics. Packages come from
/// anything `run` takes, checked by the same trust policy; the policy, its keys and the token
/// are read again when they change or on SIGHUP.
#[argh(subcommand, name = "daemon")]
pub struct DaemonCmd {
    /// the API's Unix socket (default /run/edge-ecli.sock; mode 0660)
    #[argh(option, arg_name = "PATH")]
    socket: Option<String>,
    /// group that may use the socket besides root (the socket is root:GROUP)
    #[argh(option, arg_name = "NAME")]
    group: Option<String>,
    /// also serve the API on TCP at ADDR:PORT (needs --token-file)
    #[argh(option, arg_name = "ADDR:PORT")]
    listen: Option<String>,
    /// the bearer token TCP clients must present
    #[argh(option, arg_name = "FILE")]
    token_file: Option<String>,
    /// serve GET /metrics and GET /healthz, and nothing else, on TCP at ADDR:PORT without a
    /// token (for Prometheus and probes)
    #[argh(option, arg_name = "ADDR:PORT")]
    metrics_listen: Option<String>,
    /// desired-state file (a JSON list of {name, source, args}), applied at start and on change
    #[argh(option, arg_name = "FILE")]
    config: Option<String>,
    /// where the daemon keeps what the API started, and kernel BTF files in btf/ (default
    /// /var/lib/edge-ecli)
    #[argh(option, arg_name = "DIR")]
    state_dir: Option<String>,
    /// event lines get a "timestamp" field: when the record was read, RFC 3339 in UTC
    #[argh(switch)]
    timestamp: bool,
    /// give up on a package that is not attached SECS seconds after its load began
    /// (default 60)
    #[argh(option, arg_name = "SECS")]
    start_timeout: Option<String>,
    /// count every program's runs and run time for the metrics (BPF_ENABLE_STATS; costs each
    /// program run a few tens of ns)
    #[argh(switch)]
    bpf_stats: bool,
    /// resolve absolute uprobe paths under DIR: the node's root as a container sees it (a
    /// read-only bind mount of the node's /)
    #[argh(option, arg_name = "DIR")]
    host_root: Option<String>,
}
}

/// The policy's inputs, owned: the daemon reads them again when they change.
fn trust_files(src: &SourceFlags) -> TrustFiles {
    let (keys, digests) = (src.verify_key.to_vec(), src.allow_digest.to_vec());
    let policy = src.policy.map(str::to_string);
    let mut files: Vec<std::path::PathBuf> = keys.iter().map(Into::into).collect();
    files.push(
        policy
            .clone()
            .unwrap_or_else(|| DEFAULT_POLICY.into())
            .into(),
    );
    TrustFiles {
        load: Arc::new(move || {
            SourceFlags {
                verify_key: &keys,
                allow_digest: &digests,
                policy: policy.as_deref(),
                ca_file: None,
                insecure_registry: &[],
                cache_dir: None,
                fetch_timeout: None,
                fetch_deadline: None,
                quiet: true,
            }
            .policy()
        }),
        files,
    }
}

impl crate::daemon::Signals for SignalFd {
    fn fd(&self) -> i32 {
        self.fd
    }
    fn take(&self) -> Option<u32> {
        SignalFd::take(self)
    }
}

impl DaemonCmd {
    pub fn main(self) -> Result<i32> {
        let sig = SignalFd::with(&[libc::SIGHUP])?;
        let src = self.source_flags();
        let start_timeout = match &self.start_timeout {
            None => daemon::launch::DEFAULT_START_TIMEOUT,
            Some(t) => t
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0 && *v <= 3600.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::Usage,
                        format!("--start-timeout {t}: expected seconds, 0 < SECS <= 3600"),
                    )
                })?,
        };
        let state_dir: std::path::PathBuf = self
            .state_dir
            .clone()
            .unwrap_or_else(|| daemon::DEFAULT_STATE_DIR.into())
            .into();
        let opts = DaemonOptions {
            socket: self
                .socket
                .clone()
                .unwrap_or_else(|| daemon::DEFAULT_SOCKET.into())
                .into(),
            group: self.group.clone(),
            listen: self.listen.clone(),
            metrics_listen: self.metrics_listen.clone(),
            token_file: self.token_file.clone(),
            config: self.config.clone(),
            state_dir: state_dir.clone(),
            // A daemon's fetches draw no progress, whatever its stderr is.
            fetch: FetchOptions {
                meter: Default::default(),
                ..src.fetch_options()?
            },
            trust: trust_files(&src),
            options: Options {
                format: Format::Json,
                output: OutputOptions {
                    timestamp: self.timestamp,
                    ..OutputOptions::default()
                },
                attach: AttachOptions {
                    host_root: self.host_root.clone(),
                    ..AttachOptions::default()
                },
                // The node directory of kernel BTF is the state dir's (kernels without BTF).
                btf: KernelBtf {
                    dir: Some(state_dir.join("btf")),
                    ..KernelBtf::default()
                },
                ..Options::default()
            },
            start_timeout,
            bpf_stats: self.bpf_stats,
        };
        daemon::run(opts, &sig)?;
        Ok(0)
    }
}
