//! OCI references: `HOST[:PORT]/REPOSITORY[:TAG|@sha256:DIGEST]`, with Docker's rule for
//! telling one from a path: the first component names a registry when it contains `.` or `:`
//! or is `localhost`. Pure.

use crate::codec::valid_digest;
use crate::error::{Error, ErrorKind, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// host or host:port
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

/// Does `s` look like a reference rather than a path?
pub fn looks_like(s: &str) -> bool {
    let Some((first, rest)) = s.split_once('/') else {
        return false;
    };
    !rest.is_empty()
        && !s.starts_with('/')
        && (first.contains('.') || first.contains(':') || first == "localhost")
        && first != "."
        && first != ".."
}

/// Is `s` a reference without its registry host, as docker and podman accept them
/// (`example/sigsnoop:v1`, `sigsnoop:v1`)? edge-ecli has no default registry, so such a word
/// is taken for a path; this says when to tell the user it may have meant a reference.
pub fn looks_unqualified(s: &str) -> bool {
    !s.starts_with(['/', '.'])
        && !looks_like(s)
        && Reference::parse(&format!("registry.invalid/{s}")).is_ok()
}

fn valid_component(c: &str) -> bool {
    // [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut prev_sep = false;
    for w in b.windows(2) {
        if !(w[1].is_ascii_lowercase() || w[1].is_ascii_digit() || b"._-".contains(&w[1])) {
            return false;
        }
        let sep = b"._-".contains(&w[1]);
        // "." and "_" may not repeat (but "__" is allowed), "-" may.
        if sep && prev_sep && !(w[0] == b'-' && w[1] == b'-') && !(w[0] == b'_' && w[1] == b'_') {
            return false;
        }
        prev_sep = sep;
    }
    b.iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(c))
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

impl Reference {
    pub fn parse(s: &str) -> Result<Reference> {
        let bad = |why: &str| {
            Error::new(
                ErrorKind::Usage,
                format!("{s}: not a valid OCI reference ({why}); expected HOST[:PORT]/REPO[:TAG|@sha256:DIGEST]"),
            )
        };
        if s.len() > 1024 {
            return Err(bad("too long"));
        }
        let (registry, rest) = s.split_once('/').ok_or_else(|| bad("no repository"))?;
        if registry.is_empty()
            || !registry
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b".-:[]".contains(&c))
        {
            return Err(bad("bad registry host"));
        }
        let (name, digest) = match rest.split_once('@') {
            Some((n, d)) => {
                if !valid_digest(d) {
                    return Err(bad("the digest must be sha256:<64 lowercase hex digits>"));
                }
                (n, Some(d.to_string()))
            }
            None => (rest, None),
        };
        let (repository, tag) = match name.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => {
                if !valid_tag(t) {
                    return Err(bad("bad tag"));
                }
                (r, Some(t.to_string()))
            }
            _ => (name, None),
        };
        if repository.is_empty() || !repository.split('/').all(valid_component) {
            return Err(bad(
                "repository names are lowercase letters, digits and . _ - separated by /",
            ));
        }
        Ok(Reference {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag,
            digest,
        })
    }

    /// What to ask the registry for: the digest, else the tag (default `latest`).
    pub fn target(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// registry/repository
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository with another tag.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }

    /// The host part without a port (for loopback checks and TLS).
    pub fn host(&self) -> &str {
        let r = self.registry.as_str();
        if let Some(v6) = r.strip_prefix('[') {
            return v6.split(']').next().unwrap_or(v6);
        }
        r.split(':').next().unwrap_or(r)
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_like_docker() {
        let r = Reference::parse("localhost:5000/tools/sigsnoop:v1").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("localhost:5000", "tools/sigsnoop")
        );
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.host(), "localhost");
        let d = format!("sha256:{}", "0".repeat(64));
        let r = Reference::parse(&format!("ghcr.io/a/b@{d}")).unwrap();
        assert_eq!(r.target(), d);
        assert_eq!(Reference::parse("reg.io/x").unwrap().target(), "latest");
        for bad in [
            "reg.io/",
            "reg.io/UPPER",
            "reg.io/a:b:c",
            "reg.io/a@sha256:12",
            "reg.io/a..b",
            "reg.io/a:-x",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
        assert!(
            looks_like("localhost/x")
                && looks_like("127.0.0.1:5000/x:1")
                && looks_like("ghcr.io/a/b")
        );
        assert!(
            !looks_like("examples/sigsnoop/package.json")
                && !looks_like("/abs/x")
                && !looks_like("./a.b/c")
        );
        assert!(!looks_like("pkg.json") && !looks_like("../x.y/z"));
        assert_eq!(
            Reference::parse("r.io/a/b:t").unwrap().to_string(),
            "r.io/a/b:t"
        );
    }

    #[test]
    fn references_without_a_host_are_recognised() {
        assert!(looks_unqualified("example/sigsnoop:v1"));
        assert!(looks_unqualified("sigsnoop:v1"));
        assert!(!looks_unqualified("./x.json"));
        assert!(!looks_unqualified("/tmp/x:1"));
        assert!(!looks_unqualified("localhost:5000/a:1"));
        assert!(!looks_unqualified("Upper/Case:1"));
    }
}
