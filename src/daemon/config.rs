//! The desired-state file (`--config FILE`): a JSON array of specs `{"name", "source",
//! "args"?, "digest"?}`. Applied at start and whenever the file changes (what a Kubernetes
//! ConfigMap update does): added names start, changed ones reload, removed ones stop. A file
//! that does not parse, or repeats a name, is reported and changes nothing. Relative sources
//! are relative to the file's directory. Also the state dir's list of what the API started,
//! and the watching of files by their stamp.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::spec::{self, Owner, Spec, SpecBody};
use super::table::{valid_name, Failure, Origin, Table};
use crate::error::{Error, ErrorKind, Result};

/// Entries a desired-state file may hold.
pub const MAX_ENTRIES: usize = 256;
/// What parse accepts; reading stops one byte past it.
const MAX_CONFIG_FILE: u64 = 4 << 20;
/// The state dir's file of what the API started.
const API_INSTANCES: &str = "instances.json";

/// Parses a list of named specs; `with_owner` for the state dir's own file.
fn parse_named(bytes: &[u8], what: &str, with_owner: bool) -> Result<Vec<(String, SpecBody)>> {
    let bad = |m: String| Error::new(ErrorKind::Usage, format!("{what}: {m}"));
    if bytes.len() as u64 > MAX_CONFIG_FILE {
        return Err(bad("larger than 4 MiB".into()));
    }
    let list = spec::parse_list(bytes, with_owner).map_err(bad)?;
    if list.len() > MAX_ENTRIES {
        return Err(bad(format!("more than {MAX_ENTRIES} instances")));
    }
    let mut out: Vec<(String, SpecBody)> = Vec::new();
    for b in list {
        let name = b
            .name
            .clone()
            .ok_or_else(|| bad(format!("an entry has no \"name\" (source {:?})", b.source)))?;
        if !valid_name(&name) {
            return Err(bad(format!(
                "instance name {name:?}: use 1 to 63 of a-z 0-9 _ . -"
            )));
        }
        if out.iter().any(|(n, _)| *n == name) {
            return Err(bad(format!("instance {name} is named twice")));
        }
        out.push((name, b));
    }
    Ok(out)
}

/// Parses a desired-state file's bytes: its specs, owned by the daemon, relative sources made
/// absolute against `dir` (the file's directory).
pub fn parse(bytes: &[u8], what: &str, dir: &Path) -> Result<Vec<(String, Spec)>> {
    parse_named(bytes, what, false)?
        .into_iter()
        .map(|(name, b)| {
            let source = crate::source::absolute(&b.source, dir)
                .map_err(|e| e.context(format!("{what}: instance {name}")))?;
            Ok((
                name,
                Spec {
                    source,
                    args: b.args,
                    digest: b.digest,
                    owner: Owner::Daemon,
                },
            ))
        })
        .collect()
}

/// Watches files: `changed()` says when one of them should be read again (mtime, size or
/// inode moved: editors and ConfigMaps replace files; a file that appears or goes counts).
pub struct Watch {
    paths: Vec<PathBuf>,
    seen: Vec<Option<(SystemTime, u64, u64)>>,
}

impl Watch {
    pub fn new(paths: Vec<PathBuf>) -> Watch {
        let mut w = Watch {
            seen: vec![None; paths.len()],
            paths,
        };
        w.changed();
        w
    }

    fn stamp(p: &Path) -> Option<(SystemTime, u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(p).ok()?;
        Some((m.modified().ok()?, m.len(), m.ino()))
    }

    pub fn changed(&mut self) -> bool {
        let now: Vec<_> = self.paths.iter().map(|p| Self::stamp(p)).collect();
        if now != self.seen {
            self.seen = now;
            return true;
        }
        false
    }
}

/// Brings the table to what the file says; returns one line per action or failure.
pub fn reconcile(table: &Table, path: &str) -> Vec<String> {
    let dir = Path::new(path).parent().unwrap_or(Path::new("/"));
    let desired = match crate::files::read_regular_limited(path, MAX_CONFIG_FILE)
        .map_err(|e| Error::new(ErrorKind::Usage, format!("{path}: cannot read: {e}")))
        .and_then(|b| parse(&b, path, dir))
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
            Err(f) => {
                // A name that never started is kept as failed, so status shows why.
                if let Failure::Package(e) = &f {
                    if table.status(&name).is_err() {
                        table.record_failure(&name, spec, Origin::Config, e.clone());
                    }
                }
                log.push(format!("{name}: {f}"));
            }
        }
    }
    log
}

/// The instances started through the API, kept in the state dir so a restart restores them
/// (with who asked for each: a restart reads their files as them again).
pub fn save_api_instances(table: &Table, state_dir: &Path) -> Result<()> {
    let mut o = String::from("[");
    for (i, (name, spec)) in table.specs(Origin::Api).iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        spec::write(&mut o, name, spec, true);
    }
    o.push_str("]\n");
    crate::files::write_atomic(&state_dir.join(API_INSTANCES), o.as_bytes())
}

/// What [`save_api_instances`] kept, if anything.
pub fn saved_api_instances(state_dir: &Path) -> Result<Vec<(String, Spec)>> {
    let path = state_dir.join(API_INSTANCES);
    let what = path.to_string_lossy().into_owned();
    let bytes = match crate::files::read_regular_limited(&path, MAX_CONFIG_FILE) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(Error::msg(format!("{what}: cannot read: {e}"))),
    };
    Ok(parse_named(&bytes, &what, true)?
        .into_iter()
        .map(|(name, b)| {
            let spec = Spec {
                source: b.source,
                args: b.args,
                digest: b.digest,
                owner: b.owner.unwrap_or(Owner::Daemon),
            };
            (name, spec)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desired_state_files_parse_or_say_why() {
        let dir = Path::new("/etc/edge-ecli");
        let d = parse(br#"[{"name":"sig","source":"/p/sigsnoop.json","args":["--filtered_pid","1"]},{"name":"b","source":"localhost:5000/x:v1"}]"#, "f", dir).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].1.args, vec!["--filtered_pid", "1"]);
        assert!(d[1].1.args.is_empty());
        let esc = parse(
            br#"[{"name":"e","source":"/a\"b","args":["x\ny"]}]"#,
            "f",
            dir,
        )
        .unwrap();
        assert_eq!(esc[0].1.source, "/a\"b");
        let rel = parse(br#"[{"name":"r","source":"pkgs/p.json"}]"#, "f", dir).unwrap();
        assert_eq!(rel[0].1.source, "/etc/edge-ecli/pkgs/p.json");
        for (bad, why) in [
            (&br#"{"name":"x"}"#[..], "not a list"),
            (br#"[{"name":"../x","source":"p"}]"#, "instance name"),
            (
                br#"[{"name":"a","source":"p"},{"name":"a","source":"q"}]"#,
                "named twice",
            ),
            (br#"[{"name":"a","source":""}]"#, "must name a package"),
            (
                br#"[{"name":"a","source":"p","arg":[]}]"#,
                "unknown field \"arg\"",
            ),
            (br#"[{"source":"p"}]"#, "no \"name\""),
            (
                br#"[{"name":"a","source":"p","owner":{"uid":0,"gid":0}}]"#,
                "unknown field",
            ),
            (b"[", "not a list"),
        ] {
            let e = parse(bad, "f", dir).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
    }
}
