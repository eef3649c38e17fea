//! The daemon's trust files, reloaded while it runs: the policy (and the keys it names, and
//! those of `--verify-key`) and the TCP token. A change to any of them (a ConfigMap or Secret
//! update replaces them), or SIGHUP, makes the daemon read them again; the new policy applies
//! to every package started from then on, the new token to every request. Files that do not
//! read or parse change nothing and are reported.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::config::Watch;
use super::server::Secret;
use super::table::Table;
use crate::error::{Error, ErrorKind, Result};
use crate::trust::Policy;

/// Where the policy comes from.
#[derive(Clone)]
pub struct TrustFiles {
    /// Builds the policy from its files (the policy file and the flags' keys and digests).
    pub load: Arc<dyn Fn() -> Result<Policy> + Send + Sync>,
    /// The files named on the command line that the policy is read from.
    pub files: Vec<PathBuf>,
}

/// Reads a token file: 16 to 4096 printable characters.
pub fn read_token(path: &str) -> Result<Vec<u8>> {
    let usage = |m: String| Error::new(ErrorKind::Usage, m);
    let t = crate::files::read_regular_limited(path, 64 << 10)
        .map_err(|e| usage(format!("--token-file {path}: cannot read: {e}")))?;
    let t = String::from_utf8(t).map_err(|_| usage(format!("--token-file {path}: not text")))?;
    let t = t.trim();
    if t.len() < 16 || t.len() > 4096 || t.bytes().any(|c| !c.is_ascii_graphic()) {
        return Err(usage(format!(
            "--token-file {path}: the token must be 16 to 4096 printable characters (e.g. head -c 32 /dev/urandom | base64)"
        )));
    }
    Ok(t.as_bytes().to_vec())
}

pub struct Reloader {
    files: TrustFiles,
    token_file: Option<String>,
    token: Option<Arc<Secret>>,
    policy: Mutex<Option<Policy>>,
    watch: Mutex<Watch>,
}

/// The files to watch: the command line's, the token, and the keys the policy named.
fn watched(files: &[PathBuf], token: Option<&str>, p: &Policy) -> Vec<PathBuf> {
    let mut v = files.to_vec();
    v.extend(token.map(PathBuf::from));
    v.extend(p.keys.iter().map(|(k, _)| PathBuf::from(k)));
    v.sort();
    v.dedup();
    v
}

impl Reloader {
    /// Reads everything once: an error here stops the daemon from starting.
    pub fn new(files: &TrustFiles, token_file: Option<&str>) -> Result<Reloader> {
        let policy = (files.load)()?;
        let token = token_file
            .map(read_token)
            .transpose()?
            .map(|v| Arc::new(Secret::new(v)));
        Ok(Reloader {
            watch: Mutex::new(Watch::new(watched(&files.files, token_file, &policy))),
            files: files.clone(),
            token_file: token_file.map(str::to_string),
            token,
            policy: Mutex::new(Some(policy)),
        })
    }

    /// The policy read at start (the table takes it once).
    pub fn policy(&self) -> Policy {
        self.policy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default()
    }

    /// The token TCP clients present, if there is one.
    pub fn token(&self) -> Option<Arc<Secret>> {
        self.token.clone()
    }

    /// Whether a watched file changed since the last look.
    pub fn changed(&self) -> bool {
        self.watch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .changed()
    }

    /// Reads the policy and the token again; what does not read keeps its previous value.
    pub fn reload(&self, table: &Table) {
        match (self.files.load)() {
            Ok(p) => {
                let w = watched(&self.files.files, self.token_file.as_deref(), &p);
                *self.watch.lock().unwrap_or_else(|e| e.into_inner()) = Watch::new(w);
                table.set_policy(p);
                super::say(
                    "trust policy read again; it applies to every package started from now on",
                );
            }
            Err(e) => super::say(&format!("{e}; the previous trust policy stays")),
        }
        if let (Some(f), Some(t)) = (&self.token_file, &self.token) {
            match read_token(f) {
                Ok(v) if *t.get() != v => {
                    t.set(v);
                    super::say(&format!(
                        "the token of {f} changed; the previous one is refused from now on"
                    ));
                }
                Ok(_) => {}
                Err(e) => super::say(&format!("{e}; the previous token stays")),
            }
        }
    }
}
