//! Registry credentials, as docker and podman keep them, and the authentication challenges of
//! registries (Basic, and Bearer tokens from a realm). Credentials are never taken from the
//! command line.

use std::ffi::OsString;
use std::path::PathBuf;

use serde::Deserialize;

use crate::codec::base64;
use crate::codec::json::{self, Value};
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

/// The credentials files, in the order podman (containers/image) and then docker read them:
/// `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
/// `/run/containers/$UID/auth.json` (where podman writes when XDG_RUNTIME_DIR is unset, as
/// for root under sudo or systemd), `$XDG_CONFIG_HOME/containers/auth.json` (default
/// `~/.config`), then docker's `$DOCKER_CONFIG/config.json` (default `~/.docker`).
pub fn auth_files() -> Vec<PathBuf> {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    auth_files_in(&|k| std::env::var_os(k), uid)
}

/// [`auth_files`] for a given environment.
pub fn auth_files_in(env: &dyn Fn(&str) -> Option<OsString>, uid: u32) -> Vec<PathBuf> {
    let env = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let mut v = Vec::new();
    v.extend(env("REGISTRY_AUTH_FILE"));
    v.extend(env("XDG_RUNTIME_DIR").map(|d| d.join("containers/auth.json")));
    v.push(PathBuf::from(format!("/run/containers/{uid}/auth.json")));
    match env("XDG_CONFIG_HOME") {
        Some(d) => v.push(d.join("containers/auth.json")),
        None => v.extend(env("HOME").map(|h| h.join(".config/containers/auth.json"))),
    }
    match env("DOCKER_CONFIG") {
        Some(d) => v.push(d.join("config.json")),
        None => v.extend(env("HOME").map(|h| h.join(".docker/config.json"))),
    }
    v.dedup();
    v
}

/// The file `podman login` writes, and so `edge-ecli login`: `$REGISTRY_AUTH_FILE`, else
/// `$XDG_RUNTIME_DIR/containers/auth.json`, else `/run/containers/$UID/auth.json`.
pub fn login_file() -> PathBuf {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    login_file_in(&|k| std::env::var_os(k), uid)
}

/// [`login_file`] for a given environment.
pub fn login_file_in(env: &dyn Fn(&str) -> Option<OsString>, uid: u32) -> PathBuf {
    let env = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    env("REGISTRY_AUTH_FILE")
        .or_else(|| env("XDG_RUNTIME_DIR").map(|d| d.join("containers/auth.json")))
        .unwrap_or_else(|| PathBuf::from(format!("/run/containers/{uid}/auth.json")))
}

/// The credentials file's text with `registry`'s entry set to `creds` (None removes it), every
/// other entry and key kept. Returns the text and whether an entry was there before.
pub fn edit_auth_file(
    text: Option<&str>,
    registry: &str,
    creds: Option<(&str, &str)>,
    from: &str,
) -> Result<(String, bool)> {
    let bad = |e: Error| {
        Error::new(
            ErrorKind::Invalid,
            format!("{from}: not a credentials file ({e}); move it away or fix it"),
        )
    };
    let mut root = match text.filter(|t| !t.trim().is_empty()) {
        Some(t) => json::parse(t).map_err(bad)?,
        None => Value::Object(vec![]),
    };
    let Value::Object(top) = &mut root else {
        return Err(bad(Error::invalid("not a JSON object")));
    };
    if !top.iter().any(|(k, _)| k == "auths") {
        top.insert(0, ("auths".into(), Value::Object(vec![])));
    }
    let Some((_, Value::Object(auths))) = top.iter_mut().find(|(k, _)| k == "auths") else {
        return Err(bad(Error::invalid("\"auths\" is not an object")));
    };
    let before = auths.len();
    auths.retain(|(k, _)| normalise(k) != registry);
    let had = auths.len() != before;
    if let Some((user, pass)) = creds {
        let auth = base64::encode(format!("{user}:{pass}").as_bytes());
        auths.push((
            registry.to_string().into(),
            Value::Object(vec![("auth".into(), Value::Str(auth.into()))]),
        ));
    }
    let mut out = String::new();
    json::write_pretty(&mut out, &root, 0);
    out.push('\n');
    Ok((out, had))
}

/// `https://host:5000/v1/` -> `host:5000`, as docker normalises auth keys.
fn normalise(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    match k.split('/').next().unwrap_or(k) {
        // docker login keeps Docker Hub's credentials under its old index name.
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        h => h,
    }
}

/// The credentials for `registry` (host[:port]) in one auth file's text (any number of
/// entries; keys other than `auths.*.auth`, such as `credHelpers`, are left alone).
pub fn credentials_in(text: &[u8], registry: &str, from: &str) -> Result<Option<Credentials>> {
    let bad = |why: String| Error::new(ErrorKind::Invalid, format!("{from}: {why}"));
    let text =
        std::str::from_utf8(text).map_err(|_| bad("not a credentials file (not UTF-8)".into()))?;
    let root = json::parse(text).map_err(|e| bad(format!("not a credentials file ({e})")))?;
    let Some(Value::Object(auths)) = root.get("auths") else {
        return Ok(None);
    };
    for (k, e) in auths {
        if normalise(k) != registry {
            continue;
        }
        let Some(a) = e.get("auth").and_then(Value::as_str) else {
            continue;
        };
        let raw =
            base64::decode(a).map_err(|_| bad(format!("the auth of {registry} is not base64")))?;
        let text = String::from_utf8(raw)
            .map_err(|_| bad(format!("the auth of {registry} is not text")))?;
        let (user, pass) = text
            .split_once(':')
            .ok_or_else(|| bad(format!("the auth of {registry} is not user:password")))?;
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

    #[test]
    fn files_in_podmans_then_dockers_order() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let all = env(&[
            ("REGISTRY_AUTH_FILE", "/a.json"),
            ("XDG_RUNTIME_DIR", "/run/user/7"),
            ("HOME", "/home/u"),
            ("DOCKER_CONFIG", "/d"),
        ]);
        let paths: Vec<String> = auth_files_in(&all, 7)
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            paths,
            [
                "/a.json",
                "/run/user/7/containers/auth.json",
                "/run/containers/7/auth.json",
                "/home/u/.config/containers/auth.json",
                "/d/config.json"
            ]
        );
        assert_eq!(
            login_file_in(&all, 7).to_string_lossy(),
            "/a.json",
            "podman login writes REGISTRY_AUTH_FILE first"
        );
        let root = env(&[("HOME", "/root")]);
        assert_eq!(
            login_file_in(&root, 0).to_string_lossy(),
            "/run/containers/0/auth.json"
        );
        let paths = auth_files_in(&root, 0);
        assert_eq!(paths[0].to_string_lossy(), "/run/containers/0/auth.json");
        assert_eq!(paths[2].to_string_lossy(), "/root/.docker/config.json");
    }

    #[test]
    fn login_edits_keep_the_other_entries() {
        let before = r#"{"auths":{"other.io":{"auth":"eDp5"},"localhost:5000":{"auth":"b2xkOm9sZA=="}},"credHelpers":{"x.io":"pass"}}"#;
        let (text, had) =
            edit_auth_file(Some(before), "localhost:5000", Some(("u", "p")), "f").unwrap();
        assert!(had);
        let c = credentials_in(text.as_bytes(), "localhost:5000", "f")
            .unwrap()
            .unwrap();
        assert_eq!((c.user.as_str(), c.pass.as_str()), ("u", "p"));
        assert!(
            text.contains("\"other.io\": {\n\t\t\t\"auth\": \"eDp5\""),
            "{text}"
        );
        assert!(text.contains("\"credHelpers\""), "{text}");
        let (text, had) = edit_auth_file(Some(&text), "localhost:5000", None, "f").unwrap();
        assert!(had);
        assert!(credentials_in(text.as_bytes(), "localhost:5000", "f")
            .unwrap()
            .is_none());
        let (fresh, had) = edit_auth_file(None, "r.io", Some(("a", "b")), "f").unwrap();
        assert!(!had);
        assert_eq!(
            fresh,
            "{\n\t\"auths\": {\n\t\t\"r.io\": {\n\t\t\t\"auth\": \"YTpi\"\n\t\t}\n\t}\n}\n"
        );
        assert!(edit_auth_file(Some("[1]"), "r.io", None, "f").is_err());
    }
}
