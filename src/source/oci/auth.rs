//! Registry credentials, as docker and podman keep them, and the authentication challenges of
//! registries (Basic, and Bearer tokens from a realm). Credentials are never taken from the
//! command line.

use std::path::PathBuf;

use serde::Deserialize;

use crate::codec::base64;
use crate::error::{Error, ErrorKind, Result};

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub pass: String,
    /// The file they came from (for error messages).
    pub from: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({} from {})", self.user, self.from)
    }
}

impl Credentials {
    pub fn basic(&self) -> String {
        format!(
            "Basic {}",
            base64::encode(format!("{}:{}", self.user, self.pass).as_bytes())
        )
    }
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(default)]
    auth: Option<&'a str>,
}

#[derive(Deserialize)]
struct AuthFile<'a> {
    #[serde(default, borrow)]
    auths: heapless::LinearMap<&'a str, Entry<'a>, 32>,
}

/// The credentials files, in the order podman reads them: `$REGISTRY_AUTH_FILE`,
/// `$XDG_RUNTIME_DIR/containers/auth.json`, then docker's `$DOCKER_CONFIG/config.json`
/// (default `~/.docker/config.json`).
pub fn auth_files() -> Vec<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let mut v = Vec::new();
    v.extend(env("REGISTRY_AUTH_FILE"));
    v.extend(env("XDG_RUNTIME_DIR").map(|d| d.join("containers/auth.json")));
    match env("DOCKER_CONFIG") {
        Some(d) => v.push(d.join("config.json")),
        None => v.extend(env("HOME").map(|h| h.join(".docker/config.json"))),
    }
    v
}

/// `https://host:5000/v1/` -> `host:5000`, as docker normalises auth keys.
fn normalise(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

/// The credentials for `registry` (host[:port]) in one auth file's text.
pub fn credentials_in(text: &[u8], registry: &str, from: &str) -> Result<Option<Credentials>> {
    let mut buf = vec![0u8; text.len()];
    let (f, _): (AuthFile, usize) =
        serde_json_core::from_slice_escaped(text, &mut buf).map_err(|e| {
            Error::new(
                ErrorKind::Usage,
                format!("{from}: not a credentials file ({e})"),
            )
        })?;
    for (k, e) in f.auths.iter() {
        if normalise(k) != registry {
            continue;
        }
        let Some(a) = &e.auth else { continue };
        let raw = base64::decode(a).map_err(|_| {
            Error::new(
                ErrorKind::Usage,
                format!("{from}: the auth of {registry} is not base64"),
            )
        })?;
        let text = String::from_utf8(raw).map_err(|_| {
            Error::new(
                ErrorKind::Usage,
                format!("{from}: the auth of {registry} is not text"),
            )
        })?;
        let (user, pass) = text.split_once(':').ok_or_else(|| {
            Error::new(
                ErrorKind::Usage,
                format!("{from}: the auth of {registry} is not user:password"),
            )
        })?;
        return Ok(Some(Credentials {
            user: user.into(),
            pass: pass.into(),
            from: from.into(),
        }));
    }
    Ok(None)
}

pub fn credentials_for(registry: &str) -> Result<Option<Credentials>> {
    for f in auth_files() {
        let Ok(text) = crate::files::read_limited(&f, 1 << 20) else {
            continue;
        };
        if let Some(c) = credentials_in(&text, registry, &f.to_string_lossy())? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header: `Basic realm="x"` or
/// `Bearer realm="https://auth/token",service="reg",scope="repository:a:pull"`.
pub fn parse_challenge(h: &str) -> Option<Challenge> {
    let (scheme, rest) = h.trim().split_once(' ').unwrap_or((h.trim(), ""));
    let mut params = Vec::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let (k, after) = s.split_once('=')?;
        let after = after.trim_start();
        let (v, tail) = if let Some(q) = after.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => v.push(c),
                }
            }
            (v, &q[end?..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        params.push((k.trim().to_ascii_lowercase(), v));
        s = tail.trim_start().trim_start_matches(',').trim_start();
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
            scope: get("scope"),
        }),
        _ => None,
    }
}

#[derive(Deserialize)]
struct TokenAnswer<'a> {
    #[serde(default)]
    token: Option<&'a str>,
    #[serde(default)]
    access_token: Option<&'a str>,
}

/// The token of a token realm's JSON answer.
pub fn token_of(body: &[u8], what: &str) -> Result<String> {
    let mut buf = vec![0u8; body.len()];
    let (t, _): (TokenAnswer, usize) = serde_json_core::from_slice_escaped(body, &mut buf)
        .map_err(|e| {
            Error::new(
                ErrorKind::Network,
                format!("{what}: the token realm answered no token JSON ({e})"),
            )
        })?;
    t.token
        .or(t.access_token)
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_graphic()))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Network,
                format!("{what}: the token realm answered no usable token"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_files_and_challenges() {
        let f = br#"{"auths":{"https://other.io/v1/":{"auth":"eDp5"},"localhost:5000":{"auth":"dXNlcjpwYXNzOndvcmQ=","email":"x"}},"credsStore":"none"}"#;
        let c = credentials_in(f, "localhost:5000", "f").unwrap().unwrap();
        assert_eq!((c.user.as_str(), c.pass.as_str()), ("user", "pass:word"));
        assert_eq!(
            credentials_in(f, "other.io", "f").unwrap().unwrap().user,
            "x"
        );
        assert!(credentials_in(f, "nope:1", "f").unwrap().is_none());
        assert!(credentials_in(b"{\"auths\":{\"h\":{\"auth\":\"!!\"}}}", "h", "f").is_err());
        assert!(
            !format!("{c:?}").contains("word"),
            "Debug never shows the password"
        );
        assert_eq!(
            parse_challenge("Basic realm=\"Registry Realm\""),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="http://127.0.0.1:9/token",service="reg",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:9/token".into(),
                service: Some("reg".into()),
                scope: Some("repository:a/b:pull,push".into())
            })
        );
        assert_eq!(
            parse_challenge("Bearer service=x"),
            None,
            "a realm is required"
        );
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(
            token_of(br#"{"token":"abc.def","expires_in":60}"#, "t").unwrap(),
            "abc.def"
        );
        assert_eq!(token_of(br#"{"access_token":"x"}"#, "t").unwrap(), "x");
        assert!(token_of(b"{}", "t").is_err());
    }
}
