//! `edge-ecli daemon`: the long-running manager of named instances (`crate::daemon`).

use argh::{ArgsInfo, FromArgs};

use super::signals::SignalFd;
use super::source_flags::with_source_flags;
use crate::daemon::{self, DaemonOptions};
use crate::error::Result;
use crate::event::{Format, OutputOptions};
use crate::runtime::Options;
use crate::source::FetchOptions;

with_source_flags! {
#[derive(FromArgs, ArgsInfo)]
/// Run many packages at once, driven over HTTP on a Unix socket (and optionally TCP): start,
/// reload (make-before-break), pause, stop, stream events, export metrics. Packages come from
/// anything `run` takes, checked by the same trust policy.
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
    /// desired-state file (a JSON list of {name, source, args}), applied at start and on change
    #[argh(option, arg_name = "FILE")]
    config: Option<String>,
    /// where the daemon keeps what the API started (default /var/lib/edge-ecli)
    #[argh(option, arg_name = "DIR")]
    state_dir: Option<String>,
    /// event lines get a "timestamp" field: when the record was read, RFC 3339 in UTC
    #[argh(switch)]
    timestamp: bool,
}
}

impl DaemonCmd {
    pub fn main(self) -> Result<i32> {
        let sig = SignalFd::new()?;
        let src = self.source_flags();
        let opts = DaemonOptions {
            socket: self
                .socket
                .clone()
                .unwrap_or_else(|| daemon::DEFAULT_SOCKET.into())
                .into(),
            group: self.group.clone(),
            listen: self.listen.clone(),
            token_file: self.token_file.clone(),
            config: self.config.clone(),
            state_dir: self
                .state_dir
                .clone()
                .unwrap_or_else(|| daemon::DEFAULT_STATE_DIR.into())
                .into(),
            // A daemon's fetches draw no progress, whatever its stderr is.
            fetch: FetchOptions {
                meter: Default::default(),
                ..src.fetch_options()?
            },
            policy: src.policy()?,
            options: Options {
                format: Format::Json,
                output: OutputOptions {
                    timestamp: self.timestamp,
                    ..OutputOptions::default()
                },
                ..Options::default()
            },
        };
        daemon::run(opts, sig.fd)?;
        Ok(0)
    }
}
