//! Trust, offline: what a package must prove before it is parsed or loaded. A policy holds
//! trusted keys (cosign ECDSA P-256 and minisign Ed25519, told apart by content), whether a
//! signature is required, and an allow-list of digests. Checking is pure: the signatures were
//! gathered with the package by `source`, and nothing here touches the network.

pub mod blake2b;
pub mod cosign;
pub mod minisign;
pub mod pem;

use serde::Deserialize;

use crate::error::{Error, ErrorKind, Result};

/// The policy file read when no `--policy` is given, if it exists.
pub const DEFAULT_POLICY: &str = "/etc/edge-ecli/policy.json";
/// Key files are a few hundred bytes; policy files a list of keys and digests.
const MAX_KEY_FILE: u64 = 64 << 10;
const MAX_POLICY_FILE: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Cosign(cosign::PublicKey),
    Minisign(minisign::PublicKey),
}

impl Key {
    /// Reads a key file: a PEM public key is cosign's, a `RW...` line minisign's.
    pub fn load(path: &str) -> Result<Key> {
        // A file that cannot be used is a bad input (exit 1), not a bad command line.
        let text = crate::files::read_text_limited(path, MAX_KEY_FILE)
            .map_err(|e| Error::from(e).context(format!("--verify-key {path}: cannot read")))?;
        let bad =
            |why: String| Error::new(ErrorKind::Invalid, format!("--verify-key {path}: {why}"));
        if text.contains("-----BEGIN") {
            cosign::PublicKey::parse(&text)
                .map(Key::Cosign)
                .map_err(bad)
        } else {
            minisign::PublicKey::parse(&text)
                .map(Key::Minisign)
                .map_err(bad)
        }
    }
}

/// A signature found with a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    /// A cosign simplesigning layer: the payload blob and its base64 signature annotation.
    Cosign { payload: Vec<u8>, signature: String },
    /// The text of a `.minisig` beside a file or URL.
    Minisign(String),
}

/// What a package is checked on.
pub struct Evidence<'a> {
    pub bytes: &'a [u8],
    /// sha256 of the bytes, `sha256:<hex>`.
    pub content_digest: &'a str,
    /// The OCI manifest's digest, for packages that came in one.
    pub manifest_digest: Option<&'a str>,
    pub signatures: &'a [Signature],
}

#[derive(Debug, Default, Clone)]
pub struct Policy {
    pub keys: Vec<(String, Key)>,
    pub require_signature: bool,
    pub allow_digests: Vec<String>,
}

#[derive(Deserialize)]
struct PolicyFile<'a> {
    #[serde(default)]
    require_signature: bool,
    #[serde(default, borrow)]
    keys: heapless::Vec<&'a str, 16>,
    #[serde(default, borrow)]
    allow_digests: heapless::Vec<&'a str, 256>,
}

impl Policy {
    /// Reads a policy file (JSON: `require_signature`, `keys` (paths, relative to the file),
    /// `allow_digests`).
    pub fn from_file(path: &str) -> Result<Policy> {
        let bytes = crate::files::read_limited(path, MAX_POLICY_FILE)
            .map_err(|e| Error::from(e).context(format!("policy {path}: cannot read")))?;
        Policy::parse(&bytes, path)
    }

    /// A policy file's bytes; `path` names it in errors and is where key paths are relative to.
    pub fn parse(bytes: &[u8], path: &str) -> Result<Policy> {
        let bad = |m: String| Error::new(ErrorKind::Invalid, format!("policy {path}: {m}"));
        let mut buf = vec![0u8; bytes.len()];
        let (f, _): (PolicyFile, usize) = serde_json_core::from_slice_escaped(bytes, &mut buf)
            .map_err(|e| bad(format!("not a policy ({e}); expected {{\"require_signature\": true, \"keys\": [\"cosign.pub\"], \"allow_digests\": [\"sha256:...\"]}}")))?;
        let dir = std::path::Path::new(path)
            .parent()
            .unwrap_or(std::path::Path::new("."));
        let mut p = Policy {
            require_signature: f.require_signature,
            ..Policy::default()
        };
        for k in &f.keys {
            let kp = dir.join(k).to_string_lossy().into_owned();
            p.keys
                .push((kp.clone(), Key::load(&kp).map_err(|e| bad(e.to_string()))?));
        }
        for d in &f.allow_digests {
            if !crate::codec::valid_digest(d) {
                return Err(bad(format!(
                    "allow_digests: {d:?} is not sha256:<64 hex digits>"
                )));
            }
            p.allow_digests.push(d.to_string());
        }
        Ok(p)
    }

    /// Adds what the command line says to this policy.
    pub fn extend(&mut self, keys: &[String], allow: &[String]) -> Result<()> {
        for k in keys {
            self.keys.push((k.clone(), Key::load(k)?));
        }
        for d in allow {
            if !crate::codec::valid_digest(d) {
                return Err(Error::new(
                    ErrorKind::Usage,
                    format!("--allow-digest {d}: expected sha256:<64 hex digits>"),
                ));
            }
            self.allow_digests.push(d.clone());
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && !self.require_signature && self.allow_digests.is_empty()
    }

    /// Checks a package; `what` names it in the refusal. Returns what vouched for it.
    pub fn check(&self, what: &str, ev: &Evidence) -> Result<String> {
        let refuse = |why: String| {
            Error::new(
                ErrorKind::Trust,
                format!("{what}: refused by the trust policy: {why}"),
            )
        };
        if !self.allow_digests.is_empty() {
            let listed = self
                .allow_digests
                .iter()
                .any(|d| d == ev.content_digest || ev.manifest_digest == Some(d.as_str()));
            if !listed {
                return Err(refuse(format!(
                    "its digest {} is not in the allow-list",
                    ev.manifest_digest.unwrap_or(ev.content_digest)
                )));
            }
        }
        if !self.require_signature && self.keys.is_empty() {
            return Ok(if self.allow_digests.is_empty() {
                "no policy".into()
            } else {
                "the digest allow-list".into()
            });
        }
        if self.keys.is_empty() {
            return Err(refuse(
                "signatures are required but no key is trusted (give --verify-key)".into(),
            ));
        }
        if ev.signatures.is_empty() {
            return Err(refuse(
                "it is not signed (no cosign signature in the registry or layout, no .minisig beside it)".into(),
            ));
        }
        let mut why = Vec::new();
        for sig in ev.signatures {
            for (path, key) in &self.keys {
                let r = match (sig, key) {
                    (Signature::Cosign { payload, signature }, Key::Cosign(k)) => {
                        match ev.manifest_digest {
                            Some(d) => {
                                cosign::verify(k, payload, signature, d).map_err(|e| e.to_string())
                            }
                            None => Err("a cosign signature needs an OCI manifest".into()),
                        }
                    }
                    (Signature::Minisign(text), Key::Minisign(k)) => {
                        minisign::verify(k, text, ev.bytes)
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    }
                    _ => continue,
                };
                match r {
                    Ok(()) => return Ok(format!("a signature verified with {path}")),
                    Err(e) => why.push(e),
                }
            }
        }
        why.dedup();
        if why.is_empty() {
            why.push("no signature of a kind the trusted keys can check".into());
        }
        Err(refuse(why.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{sha256_digest, valid_digest};

    #[test]
    fn digests_and_allow_lists() {
        let d = sha256_digest(b"abc");
        assert_eq!(
            d,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(valid_digest(&d));
        assert!(!valid_digest("sha256:ABC") && !valid_digest("md5:00"));
        let p = Policy {
            allow_digests: vec![d.clone()],
            ..Policy::default()
        };
        let ev = |c: &'static str| Evidence {
            bytes: b"abc",
            content_digest: c,
            manifest_digest: None,
            signatures: &[],
        };
        assert!(p
            .check("x", &ev(Box::leak(d.clone().into_boxed_str())))
            .is_ok());
        let e = p.check("x", &ev("sha256:00")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Trust);
        assert!(e.to_string().contains("not in the allow-list"), "{e}");
        let need = Policy {
            require_signature: true,
            ..Policy::default()
        };
        assert!(need
            .check("x", &ev("sha256:00"))
            .unwrap_err()
            .to_string()
            .contains("no key is trusted"));
    }
}
