//! The desired-state file (`--config FILE`): a JSON array of `{"name", "source", "args"?}`.
//! Applied at start and whenever the file changes (what a Kubernetes ConfigMap update does):
//! added names start, changed ones reload, removed ones stop. A file that does not parse, or
//! repeats a name, is reported and changes nothing.

use std::path::Path;
use std::time::SystemTime;

use serde::Deserialize;

use super::table::{valid_name, Origin, Spec, Table};
use crate::error::{Error, ErrorKind, Result};

/// Entries a desired-state file may hold.
pub const MAX_ENTRIES: usize = 256;
/// What parse accepts; reading stops one byte past it.
const MAX_CONFIG_FILE: u64 = 4 << 20;

#[derive(Deserialize)]
struct Desired {
    name: String,
    source: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    digest: Option<String>,
}

/// Parses a desired-state file's bytes.
pub fn parse(bytes: &[u8], what: &str) -> Result<Vec<(String, Spec)>> {
    let bad = |m: String| Error::new(ErrorKind::Usage, format!("{what}: {m}"));
    if bytes.len() as u64 > MAX_CONFIG_FILE {
        return Err(bad("larger than 4 MiB".into()));
    }
    let mut buf = vec![0u8; bytes.len()];
    let (list, _): (Vec<Desired>, usize) = serde_json_core::from_slice_escaped(bytes, &mut buf)
        .map_err(|e| bad(format!("not a list of instances ({e}); expected [{{\"name\": \"x\", \"source\": \"PROG\", \"args\": []}}]")))?;
    if list.len() > MAX_ENTRIES {
        return Err(bad(format!("more than {MAX_ENTRIES} instances")));
    }
    let mut out: Vec<(String, Spec)> = Vec::new();
    for d in list {
        if !valid_name(&d.name) {
            return Err(bad(format!(
                "instance name {:?}: use 1 to 63 of a-z 0-9 _ . -",
                d.name
            )));
        }
        if out.iter().any(|(n, _)| *n == d.name) {
            return Err(bad(format!("instance {} is named twice", d.name)));
        }
        if d.source.is_empty() {
            return Err(bad(format!("instance {}: \"source\" is empty", d.name)));
        }
        out.push((
            d.name,
            Spec {
                source: d.source,
                args: d.args,
                digest: d.digest,
            },
        ));
    }
    Ok(out)
}

/// Watches a desired-state file: `changed()` says when it should be read again (mtime, size
/// or inode moved: editors and ConfigMaps replace files).
pub struct Watch {
    path: String,
    seen: Option<(SystemTime, u64, u64)>,
}

impl Watch {
    pub fn new(path: &str) -> Watch {
        Watch {
            path: path.to_string(),
            seen: None,
        }
    }

    fn stamp(&self) -> Option<(SystemTime, u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&self.path).ok()?;
        Some((m.modified().ok()?, m.len(), m.ino()))
    }

    pub fn changed(&mut self) -> bool {
        let now = self.stamp();
        if now != self.seen {
            self.seen = now;
            return true;
        }
        false
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

/// Brings the table to what the file says; returns one line per action or failure.
pub fn reconcile(table: &Table, path: &str) -> Vec<String> {
    let desired = match crate::files::read_limited(path, MAX_CONFIG_FILE)
        .map_err(|e| Error::new(ErrorKind::Usage, format!("{path}: cannot read: {e}")))
        .and_then(|b| parse(&b, path))
    {
        Ok(d) => d,
        Err(e) => return vec![format!("{e}; nothing was changed")],
    };
    let mut log = Vec::new();
    for (name, _) in table.specs(Origin::Config) {
        if !desired.iter().any(|(n, _)| *n == name) {
            match table.remove(&name) {
                Ok(_) => log.push(format!("{name}: stopped (no longer in {path})")),
                Err(e) => log.push(format!("{name}: stopping: {e}")),
            }
        }
    }
    for (name, spec) in desired {
        match table.apply(&name, spec.clone(), Origin::Config) {
            Ok(a) => log.push(format!("{name}: {a:?} from {path}")),
            Err(e) => {
                // A name that never started is kept as failed, so status shows why.
                if table.status(&name).is_err() {
                    table.record_failure(&name, spec, Origin::Config, e.to_string());
                }
                log.push(format!("{name}: {e}"));
            }
        }
    }
    log
}

/// The instances started through the API, kept in the state dir so a restart restores them.
pub fn save_api_instances(table: &Table, state_dir: &Path) -> Result<()> {
    let mut o = String::from("[");
    for (i, (name, spec)) in table.specs(Origin::Api).iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push_str("{\"name\":");
        crate::text::push_json_str(&mut o, name);
        o.push_str(",\"source\":");
        crate::text::push_json_str(&mut o, &spec.source);
        o.push_str(",\"args\":[");
        for (j, a) in spec.args.iter().enumerate() {
            if j > 0 {
                o.push(',');
            }
            crate::text::push_json_str(&mut o, a);
        }
        o.push_str("]}");
    }
    o.push_str("]\n");
    crate::files::write_atomic(&state_dir.join("instances.json"), o.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desired_state_files_parse_or_say_why() {
        let d = parse(br#"[{"name":"sig","source":"/p/sigsnoop.json","args":["--filtered_pid","1"]},{"name":"b","source":"localhost:5000/x:v1"}]"#, "f").unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].1.args, vec!["--filtered_pid", "1"]);
        assert!(d[1].1.args.is_empty());
        let esc = parse(br#"[{"name":"e","source":"/a\"b","args":["x\ny"]}]"#, "f").unwrap();
        assert_eq!(esc[0].1.source, "/a\"b");
        for (bad, why) in [
            (&br#"{"name":"x"}"#[..], "not a list"),
            (br#"[{"name":"../x","source":"p"}]"#, "instance name"),
            (
                br#"[{"name":"a","source":"p"},{"name":"a","source":"q"}]"#,
                "named twice",
            ),
            (br#"[{"name":"a","source":""}]"#, "empty"),
            (b"[", "not a list"),
        ] {
            let e = parse(bad, "f").unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
    }
}
