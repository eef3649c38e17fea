//! The flags of every subcommand that reads a package (`run`, `info`, `pull`): where packages
//! come from and what they must prove. Declared once, in `with_source_flags!`, and appended
//! to each subcommand's struct, so there is no hand-kept copy.

use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::http::client::ClientOptions;
use crate::source::{self, FetchOptions, Fetched};
use crate::trust::{Policy, DEFAULT_POLICY};

/// Declares an argh subcommand struct with the source and trust flags appended.
macro_rules! with_source_flags {
    // Token trees, not `ty`/`meta` fragments: argh reads the field types and attributes
    // syntactically, and fragments would reach it wrapped in invisible groups. The fields
    // must end with a comma.
    ($(#[$($meta:tt)*])* pub struct $name:ident { $($fields:tt)* }) => {
        $(#[$($meta)*])*
        pub struct $name {
            $($fields)*
            /// trust signatures made with this key: a cosign PEM public key or a minisign
            /// public key (repeatable); a signature is then required
            #[argh(option, arg_name = "FILE")]
            pub verify_key: Vec<String>,
            /// accept only packages with this digest, sha256:HEX, of the package or of its OCI
            /// manifest (repeatable)
            #[argh(option, arg_name = "DIGEST")]
            pub allow_digest: Vec<String>,
            /// trust policy file (default /etc/edge-ecli/policy.json when it exists)
            #[argh(option, arg_name = "FILE")]
            pub policy: Option<String>,
            /// extra CA certificates (PEM) trusted for HTTPS
            #[argh(option, arg_name = "FILE")]
            pub ca_file: Option<String>,
            /// registry (HOST or HOST:PORT) that may be reached over plain HTTP (repeatable;
            /// loopback registries always may)
            #[argh(option, arg_name = "HOST")]
            pub insecure_registry: Vec<String>,
            /// cache of pulled packages (default /var/lib/edge-ecli/cache as root, else
            /// ~/.cache/edge-ecli)
            #[argh(option, arg_name = "DIR")]
            pub cache_dir: Option<String>,
            /// give up on a server that sends nothing for SECS seconds (default 30)
            #[argh(option, arg_name = "SECS")]
            pub fetch_timeout: Option<String>,
            /// give up on a download that takes longer than SECS seconds in all, however the
            /// server dribbles it (default 600)
            #[argh(option, arg_name = "SECS")]
            pub fetch_deadline: Option<String>,
            /// no progress on the terminal while fetching
            #[argh(switch, short = 'q')]
            pub quiet: bool,
        }

        impl $name {
            pub fn source_flags(&self) -> $crate::cli::source_flags::SourceFlags<'_> {
                $crate::cli::source_flags::SourceFlags {
                    verify_key: &self.verify_key,
                    allow_digest: &self.allow_digest,
                    policy: self.policy.as_deref(),
                    ca_file: self.ca_file.as_deref(),
                    insecure_registry: &self.insecure_registry,
                    cache_dir: self.cache_dir.as_deref(),
                    fetch_timeout: self.fetch_timeout.as_deref(),
                    fetch_deadline: self.fetch_deadline.as_deref(),
                    quiet: self.quiet,
                }
            }
        }
    };
}
pub(crate) use with_source_flags;

/// The source and trust flags of one command line.
pub struct SourceFlags<'a> {
    pub verify_key: &'a [String],
    pub allow_digest: &'a [String],
    pub policy: Option<&'a str>,
    pub ca_file: Option<&'a str>,
    pub insecure_registry: &'a [String],
    pub cache_dir: Option<&'a str>,
    pub fetch_timeout: Option<&'a str>,
    pub quiet: bool,
    pub fetch_deadline: Option<&'a str>,
}

/// Seconds of a flag: 0 < SECS <= `max`.
fn seconds(flag: &str, t: &str, max: f64) -> Result<Duration> {
    t.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0 && *v <= max)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Usage,
                format!("{flag} {t}: expected seconds, 0 < SECS <= {max}"),
            )
        })
}

impl SourceFlags<'_> {
    pub fn fetch_options(&self) -> Result<FetchOptions> {
        let mut http = ClientOptions {
            ca_file: self.ca_file.map(str::to_string),
            ..ClientOptions::default()
        };
        if let Some(t) = self.fetch_timeout {
            http.io_timeout = seconds("--fetch-timeout", t, 3600.0)?;
            http.connect_timeout = http.io_timeout.min(http.connect_timeout);
        }
        if let Some(t) = self.fetch_deadline {
            http.transfer_timeout = Some(seconds("--fetch-deadline", t, 86400.0)?);
        }
        if let Some(f) = self.ca_file {
            if !std::path::Path::new(f).is_file() {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("--ca-file {f}: no such file"),
                ));
            }
        }
        Ok(FetchOptions {
            http,
            insecure: self.insecure_registry.to_vec(),
            cache_dir: self.cache_dir.map(str::to_string),
            regular_files_only: false,
            meter: super::progress::meter("fetching", self.quiet),
        })
    }

    /// The policy file (given, or the default one if it exists) with the flags' keys and
    /// digests added.
    pub fn policy(&self) -> Result<Policy> {
        let mut p = match self.policy {
            Some(f) => Policy::from_file(f)?,
            None if std::path::Path::new(DEFAULT_POLICY).exists() => {
                Policy::from_file(DEFAULT_POLICY)?
            }
            None => Policy::default(),
        };
        p.extend(self.verify_key, self.allow_digest)?;
        Ok(p)
    }

    /// Fetches PROG and checks it against the policy, before anything parses it. Notes
    /// (a cached copy was used, what vouched for it) go to stderr.
    pub fn fetch_trusted(&self, prog: &str) -> Result<Fetched> {
        let opts = self.fetch_options()?;
        let policy = self.policy()?;
        let fetched = source::fetch(prog, &opts, &policy)?;
        for n in &fetched.notes {
            eprintln!("edge-ecli: {n}");
        }
        if !policy.is_empty() {
            log::info!("{prog}: trusted: {}", fetched.trusted_by);
        }
        Ok(fetched)
    }
}
