//! What an instance runs, its spec, in the one JSON shape the API's bodies, the desired-state
//! file and the state dir all use: `{"name", "source", "args", "digest", "cwd"}` (and, in the
//! state dir only, `"owner"`). Read and checked here, written here; unknown fields are an
//! error, so a misspelt `arg` is never silently ignored.

use crate::codec::json::{self, Value};
use crate::codec::valid_digest;
use crate::text::push_json_str;

/// Limits of one spec.
pub const MAX_SOURCE: usize = 4096;
pub const MAX_ARGS: usize = 256;
pub const MAX_ARG: usize = 4096;

/// Whose files a local source is read as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// The daemon itself: the desired-state file, and root peers of the socket.
    Daemon,
    /// A peer of the socket that is not root: local files are opened with its uid, gid and
    /// groups, so it can name only what it could read itself.
    User {
        uid: u32,
        gid: u32,
        groups: Vec<u32>,
    },
    /// A TCP client: it has no files on this node; it may name only remote sources.
    Remote,
}

/// What an instance should run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub source: String,
    pub args: Vec<String>,
    /// The digest the package must have, when the caller pins one.
    pub digest: Option<String>,
    /// Who asked for it.
    pub owner: Owner,
}

/// A spec as a request or a file states it, before its source is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecBody {
    pub name: Option<String>,
    pub source: String,
    pub args: Vec<String>,
    pub digest: Option<String>,
    /// The directory a relative local source is relative to (the client's working directory).
    pub cwd: Option<String>,
    /// Only in the state dir: who asked (`{"uid", "gid", "groups"}`, or `"remote"`).
    pub owner: Option<Owner>,
}

const FIELDS: &str = "name, source, args, digest, cwd";

fn text<'a>(v: &'a Value, field: &str) -> Result<&'a str, String> {
    v.as_str()
        .ok_or_else(|| format!("\"{field}\" must be a string"))
}

fn owner_of(v: &Value) -> Result<Owner, String> {
    if v.as_str() == Some("remote") {
        return Ok(Owner::Remote);
    }
    let num = |k: &str| {
        v.get(k)
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("\"owner\": \"{k}\" must be a number"))
    };
    let groups = match v.get("groups") {
        None => vec![],
        Some(g) => g
            .as_array()
            .ok_or("\"owner\": \"groups\" must be a list")?
            .iter()
            .take(256)
            .map(|x| {
                x.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or("\"owner\": a group must be a number")
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(Owner::User {
        uid: num("uid")?,
        gid: num("gid")?,
        groups,
    })
}

impl SpecBody {
    /// One spec from a parsed JSON object; `owner` is accepted only when `with_owner` (the
    /// state dir's own file: a client cannot claim to be someone else).
    pub fn from_value(v: &Value, with_owner: bool) -> Result<SpecBody, String> {
        let Value::Object(fields) = v else {
            return Err(format!("expected an object with {FIELDS}"));
        };
        for (i, (k, _)) in fields.iter().enumerate() {
            let known = matches!(k.as_ref(), "name" | "source" | "args" | "digest" | "cwd")
                || (with_owner && k == "owner");
            if !known {
                return Err(format!("unknown field \"{k}\" (the fields are {FIELDS})"));
            }
            if fields[..i].iter().any(|(p, _)| p == k) {
                return Err(format!("\"{k}\" is given twice"));
            }
        }
        let opt_str = |k: &str| -> Result<Option<String>, String> {
            match v.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => text(x, k).map(|s| Some(s.to_string())),
            }
        };
        let source = match v.get("source") {
            Some(s) => text(s, "source")?.to_string(),
            None => return Err("\"source\" is missing: it names the package (PROG)".into()),
        };
        if source.is_empty() || source.len() > MAX_SOURCE {
            return Err(format!(
                "\"source\" must name a package (1 to {MAX_SOURCE} bytes)"
            ));
        }
        let args = match v.get("args") {
            None | Some(Value::Null) => vec![],
            Some(a) => {
                let a = a.as_array().ok_or("\"args\" must be a list of strings")?;
                if a.len() > MAX_ARGS {
                    return Err(format!("\"args\": at most {MAX_ARGS} arguments"));
                }
                a.iter()
                    .map(|x| match x.as_str() {
                        Some(s) if s.len() <= MAX_ARG => Ok(s.to_string()),
                        Some(_) => Err(format!("\"args\": an argument is over {MAX_ARG} bytes")),
                        None => Err("\"args\" must be a list of strings".to_string()),
                    })
                    .collect::<Result<_, _>>()?
            }
        };
        let digest = opt_str("digest")?;
        if digest.as_deref().is_some_and(|d| !valid_digest(d)) {
            return Err("\"digest\" must be sha256:<64 hex digits>".into());
        }
        let cwd = opt_str("cwd")?;
        if cwd
            .as_deref()
            .is_some_and(|c| !c.starts_with('/') || c.len() > MAX_SOURCE)
        {
            return Err("\"cwd\" must be an absolute directory".into());
        }
        let owner = match v.get("owner") {
            Some(o) if with_owner => Some(owner_of(o)?),
            _ => None,
        };
        Ok(SpecBody {
            name: opt_str("name")?,
            source,
            args,
            digest,
            cwd,
            owner,
        })
    }

    /// A request body (the API's `PUT` and `POST`).
    pub fn parse(body: &[u8]) -> Result<SpecBody, String> {
        let t = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_string())?;
        let v = json::parse(t).map_err(|e| {
            format!("bad JSON body ({e}); expected {{\"source\": \"PROG\", \"args\": [\"--flag\", \"value\"]}}")
        })?;
        SpecBody::from_value(&v, false)
    }
}

/// Parses a list of specs (the desired-state file, the state dir's file).
pub fn parse_list(bytes: &[u8], with_owner: bool) -> Result<Vec<SpecBody>, String> {
    let t = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
    let v = json::parse(t).map_err(|e| {
        format!("not a list of instances ({e}); expected [{{\"name\": \"x\", \"source\": \"PROG\", \"args\": []}}]")
    })?;
    let list = v.as_array().ok_or_else(|| {
        "not a list of instances; expected [{\"name\": \"x\", \"source\": \"PROG\", \"args\": []}]"
            .to_string()
    })?;
    list.iter()
        .enumerate()
        .map(|(i, e)| SpecBody::from_value(e, with_owner).map_err(|m| format!("entry {i}: {m}")))
        .collect()
}

/// Appends `{"name", "source", "args", "digest"?, "owner"?}`.
pub fn write(o: &mut String, name: &str, spec: &Spec, with_owner: bool) {
    o.push_str("{\"name\":");
    push_json_str(o, name);
    o.push_str(",\"source\":");
    push_json_str(o, &spec.source);
    o.push_str(",\"args\":");
    write_args(o, &spec.args);
    if let Some(d) = &spec.digest {
        o.push_str(",\"digest\":");
        push_json_str(o, d);
    }
    if with_owner {
        match &spec.owner {
            Owner::Daemon => {}
            Owner::Remote => o.push_str(",\"owner\":\"remote\""),
            Owner::User { uid, gid, groups } => {
                let g: Vec<String> = groups.iter().map(u32::to_string).collect();
                o.push_str(&format!(
                    ",\"owner\":{{\"uid\":{uid},\"gid\":{gid},\"groups\":[{}]}}",
                    g.join(",")
                ));
            }
        }
    }
    o.push('}');
}

/// Appends a JSON list of strings.
pub fn write_args(o: &mut String, args: &[String]) {
    o.push('[');
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        push_json_str(o, a);
    }
    o.push(']');
}

/// A request body for `source` and `args` (what `ctl` sends), with the client's `cwd`.
pub fn request_body(
    name: Option<&str>,
    source: &str,
    args: &[String],
    cwd: Option<&str>,
) -> String {
    let mut o = String::from("{");
    if let Some(n) = name {
        o.push_str("\"name\":");
        push_json_str(&mut o, n);
        o.push(',');
    }
    o.push_str("\"source\":");
    push_json_str(&mut o, source);
    o.push_str(",\"args\":");
    write_args(&mut o, args);
    if let Some(c) = cwd {
        o.push_str(",\"cwd\":");
        push_json_str(&mut o, c);
    }
    o.push('}');
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_checked_and_unknown_fields_refused() {
        let b = SpecBody::parse(br#"{"source":"/p.json","args":["--pid","1"],"cwd":"/home/u"}"#)
            .unwrap();
        assert_eq!(b.args, vec!["--pid", "1"]);
        assert_eq!(b.cwd.as_deref(), Some("/home/u"));
        for (bad, why) in [
            (
                &br#"{"source":"p","arg":["x"]}"#[..],
                "unknown field \"arg\"",
            ),
            (br#"{"source":"p","source":"q"}"#, "given twice"),
            (br#"{"args":[]}"#, "\"source\" is missing"),
            (br#"{"source":""}"#, "must name a package"),
            (br#"{"source":"p","args":[1]}"#, "list of strings"),
            (br#"{"source":"p","digest":"md5:x"}"#, "sha256"),
            (br#"{"source":"p","cwd":"rel"}"#, "absolute"),
            (
                br#"{"source":"p","owner":{"uid":0,"gid":0}}"#,
                "unknown field \"owner\"",
            ),
            (b"[", "bad JSON"),
            (b"\xff", "UTF-8"),
        ] {
            let e = SpecBody::parse(bad).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn specs_round_trip_with_their_owner() {
        let spec = Spec {
            source: "/a\"b".into(),
            args: vec!["x\ny".into()],
            digest: Some(format!("sha256:{}", "a".repeat(64))),
            owner: Owner::User {
                uid: 1000,
                gid: 100,
                groups: vec![100, 27],
            },
        };
        let mut o = String::from("[");
        write(&mut o, "n", &spec, true);
        o.push(']');
        let l = parse_list(o.as_bytes(), true).unwrap();
        assert_eq!(l[0].owner, Some(spec.owner.clone()));
        assert_eq!(
            (l[0].source.as_str(), &l[0].args, &l[0].digest),
            (spec.source.as_str(), &spec.args, &spec.digest)
        );
        assert!(
            parse_list(o.as_bytes(), false).is_err(),
            "owner only in the state dir"
        );
        let r = request_body(Some("n"), "p", &["a".into()], Some("/w"));
        let b = SpecBody::parse(r.as_bytes()).unwrap();
        assert_eq!(
            (b.name.as_deref(), b.cwd.as_deref()),
            (Some("n"), Some("/w"))
        );
    }
}
