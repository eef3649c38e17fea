//! What a PROG names: a file, standard input, a URL, a registry reference, an image layout or
//! an OCI archive; and the rule for a name that could be a file or a reference. Pure.

use super::oci::reference::{self, Reference};
use crate::error::{Error, ErrorKind, Result};
use crate::http::client::Url;

/// What `-` becomes on the command line (argh would read a lone `-` as an option).
pub const STDIN_PATH: &str = "/dev/stdin";

/// Where a PROG names a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `-`.
    Stdin,
    /// A local file.
    File(String),
    /// An `http://` or `https://` URL.
    Url(String),
    /// An OCI registry reference.
    Registry(Reference),
    /// An OCI image layout directory, `oci:DIR[:TAG]`.
    Layout {
        /// The layout's directory.
        dir: String,
        /// The tag chosen (none: its only image).
        tag: Option<String>,
    },
    /// An OCI archive, `oci-archive:FILE[:TAG]`.
    Archive {
        /// The tar file.
        file: String,
        /// The tag chosen (none: its only image).
        tag: Option<String>,
    },
}

/// `DIR[:TAG]` as skopeo writes it: the tag is what follows the last `:`, if it has no `/`.
pub(super) fn split_tag(s: &str) -> (String, Option<String>) {
    match s.rsplit_once(':') {
        Some((d, t)) if !t.contains('/') && !t.is_empty() => (d.to_string(), Some(t.to_string())),
        _ => (s.to_string(), None),
    }
}

/// The explicit prefixes of a registry reference (helm's and flux's `oci://`, skopeo's
/// `docker://`): what a user writes when a file of the same name exists.
const REGISTRY_PREFIXES: [&str; 2] = ["oci://", "docker://"];

impl Source {
    /// Reads a PROG; a name that is both a file here and a registry reference is an error
    /// that says how to pick one.
    pub fn parse(prog: &str) -> Result<Source> {
        Source::parse_in(prog, &|p| std::path::Path::new(p).exists())
    }

    /// [`Source::parse`], with `exists` telling whether a path names a file (relative paths
    /// are relative to wherever the caller means).
    pub fn parse_in(prog: &str, exists: &dyn Fn(&str) -> bool) -> Result<Source> {
        if let Some(r) = REGISTRY_PREFIXES.iter().find_map(|p| prog.strip_prefix(p)) {
            return Reference::parse(r).map(Source::Registry);
        }
        if prog == "-" || prog == STDIN_PATH {
            return Ok(Source::Stdin);
        }
        if prog.starts_with("http://") || prog.starts_with("https://") {
            Url::parse(prog)?;
            return Ok(Source::Url(prog.to_string()));
        }
        if let Some(rest) = prog.strip_prefix("oci:") {
            let (dir, tag) = split_tag(rest);
            return Ok(Source::Layout { dir, tag });
        }
        if let Some(rest) = prog.strip_prefix("oci-archive:") {
            let (file, tag) = split_tag(rest);
            return Ok(Source::Archive { file, tag });
        }
        // Docker's rule; a name that is both a file here and a reference is neither until the
        // user says which.
        if reference::looks_like(prog) {
            if exists(prog) {
                return Err(Error::new(
                    ErrorKind::Usage,
                    format!("{prog} is both a file here and a registry reference: write ./{prog} for the file or oci://{prog} for the registry"),
                ));
            }
            return Reference::parse(prog).map(Source::Registry);
        }
        Ok(Source::File(prog.to_string()))
    }

    /// Whether it names files on this machine (what a remote client cannot name).
    pub fn is_local(&self) -> bool {
        matches!(
            self,
            Source::Stdin | Source::File(_) | Source::Layout { .. } | Source::Archive { .. }
        )
    }
}

/// PROG with a relative path in it made absolute against `cwd` (the directory of whoever
/// named it), so it means the same thing from anywhere and after a restart. Ambiguity is
/// judged in `cwd` too.
pub fn absolute(prog: &str, cwd: &std::path::Path) -> Result<String> {
    let abs = |p: &str| cwd.join(p).to_string_lossy().into_owned();
    let with_tag = |p: &str, tag: &Option<String>| match tag {
        Some(t) => format!("{}:{t}", abs(p)),
        None => abs(p),
    };
    Ok(match Source::parse_in(prog, &|p| cwd.join(p).exists())? {
        Source::File(p) if !p.starts_with('/') => abs(&p),
        Source::Layout { dir, tag } if !dir.starts_with('/') => {
            format!("oci:{}", with_tag(&dir, &tag))
        }
        Source::Archive { file, tag } if !file.starts_with('/') => {
            format!("oci-archive:{}", with_tag(&file, &tag))
        }
        _ => prog.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prog_kinds() {
        assert_eq!(Source::parse("-").unwrap(), Source::Stdin);
        assert_eq!(
            Source::parse("/nonexistent/x.json").unwrap(),
            Source::File("/nonexistent/x.json".into())
        );
        assert!(matches!(
            Source::parse("localhost:5000/a/b:v1").unwrap(),
            Source::Registry(_)
        ));
        assert_eq!(
            Source::parse("oci:/tmp/lay:v2").unwrap(),
            Source::Layout {
                dir: "/tmp/lay".into(),
                tag: Some("v2".into())
            }
        );
        assert_eq!(
            Source::parse("oci:lay").unwrap(),
            Source::Layout {
                dir: "lay".into(),
                tag: None
            }
        );
        assert_eq!(
            Source::parse("oci-archive:/a/b.tar").unwrap(),
            Source::Archive {
                file: "/a/b.tar".into(),
                tag: None
            }
        );
        assert!(matches!(
            Source::parse("https://example.org/app.wasm").unwrap(),
            Source::Url(_)
        ));
        assert!(Source::parse("http://bad host/").is_err());
        assert!(Source::parse("localhost:5000/UPPER").is_err());
    }

    #[test]
    fn a_file_named_like_a_reference_is_never_silently_either() {
        let here = |p: &str| p == "ghcr.io/acme/tool:v1";
        let e = Source::parse_in("ghcr.io/acme/tool:v1", &here).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage);
        let m = e.to_string();
        assert!(
            m.contains("./ghcr.io/acme/tool:v1") && m.contains("oci://ghcr.io/acme/tool:v1"),
            "{m}"
        );
        assert_eq!(
            Source::parse_in("./ghcr.io/acme/tool:v1", &here).unwrap(),
            Source::File("./ghcr.io/acme/tool:v1".into())
        );
        for explicit in [
            "oci://ghcr.io/acme/tool:v1",
            "docker://ghcr.io/acme/tool:v1",
        ] {
            assert!(matches!(
                Source::parse_in(explicit, &here).unwrap(),
                Source::Registry(r) if r.registry == "ghcr.io" && r.repository == "acme/tool"
            ));
        }
        assert!(matches!(
            Source::parse_in("ghcr.io/acme/tool:v1", &|_| false).unwrap(),
            Source::Registry(_)
        ));
    }

    #[test]
    fn relative_sources_become_absolute_against_the_callers_directory() {
        let cwd = std::path::Path::new("/home/u/work");
        assert_eq!(
            absolute("examples/p.json", cwd).unwrap(),
            "/home/u/work/examples/p.json"
        );
        assert_eq!(absolute("/abs/p.json", cwd).unwrap(), "/abs/p.json");
        assert_eq!(
            absolute("oci:lay:v2", cwd).unwrap(),
            "oci:/home/u/work/lay:v2"
        );
        assert_eq!(
            absolute("oci-archive:a.tar", cwd).unwrap(),
            "oci-archive:/home/u/work/a.tar"
        );
        assert_eq!(
            absolute("localhost:5000/a/b:v1", cwd).unwrap(),
            "localhost:5000/a/b:v1"
        );
        assert_eq!(
            absolute("https://example.org/p.json", cwd).unwrap(),
            "https://example.org/p.json"
        );
    }
}
