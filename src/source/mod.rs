//! PROG -> the package's bytes, with what vouches for them: a path (with a `.minisig` beside
//! it), `-` (standard input), an `http(s)://` URL (and `URL.minisig`), an OCI reference
//! `HOST[:PORT]/REPO[:TAG|@sha256:DIGEST]` (with its cosign signature), an image layout
//! `oci:DIR[:TAG]` or an `oci-archive:FILE[:TAG]`. Everything is size-limited, time-limited
//! and checked against its digests; what came from a remote is cached, so a node that was
//! online once runs the same reference offline. Nothing here judges trust (`trust` does) or
//! decodes the package (`package` does).

pub mod cache;
pub mod oci;

use std::io::Read;

use crate::codec::sha256_digest;
use crate::error::{Error, ErrorKind, Result};
use crate::http::client::{Client, ClientOptions, Url};
use crate::progress::Meter;
use crate::trust::{Evidence, Signature};
use oci::reference::{self, Reference};
use oci::store::{self, Artifact, Layout};

/// No package we run is anywhere near this; anything larger is refused before it is read.
pub const MAX_PACKAGE_SIZE: u64 = 128 << 20;
/// Nor any signature file.
const MAX_SIGNATURE: u64 = 64 << 10;

/// What `-` becomes on the command line (argh would read a lone `-` as an option).
pub const STDIN_PATH: &str = "/dev/stdin";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Stdin,
    File(String),
    Url(String),
    Registry(Reference),
    Layout { dir: String, tag: Option<String> },
    Archive { file: String, tag: Option<String> },
}

/// `DIR[:TAG]` as skopeo writes it: the tag is what follows the last `:`, if it has no `/`.
fn split_tag(s: &str) -> (String, Option<String>) {
    match s.rsplit_once(':') {
        Some((d, t)) if !t.contains('/') && !t.is_empty() => (d.to_string(), Some(t.to_string())),
        _ => (s.to_string(), None),
    }
}

impl Source {
    pub fn parse(prog: &str) -> Result<Source> {
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
        // A path that exists is a path, whatever it looks like (Docker's rule otherwise).
        if !std::path::Path::new(prog).exists() && reference::looks_like(prog) {
            return Reference::parse(prog).map(Source::Registry);
        }
        Ok(Source::File(prog.to_string()))
    }
}

/// How remotes are reached.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    pub http: ClientOptions,
    /// Registries (host or host:port) that may be reached over plain HTTP.
    pub insecure: Vec<String>,
    /// The cache directory (default: `cache::default_dir()`).
    pub cache_dir: Option<String>,
    /// Where the progress of downloads goes (off by default).
    pub meter: Meter,
}

/// A package's bytes and what came with them.
#[derive(Debug)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    /// What the package is called (for its object name, a Wasm app's argv[0]).
    pub name: String,
    pub content_digest: String,
    /// The OCI manifest's digest, for packages that came in one.
    pub manifest_digest: Option<String>,
    pub signatures: Vec<Signature>,
    /// What the user should know (a cached copy was used...).
    pub notes: Vec<String>,
    /// The OCI artifact it came in (for `pull -o oci:DIR`).
    pub artifact: Option<Artifact>,
    /// The tag it was fetched by, for a registry reference with one.
    pub tag: Option<String>,
}

impl Fetched {
    fn plain(bytes: Vec<u8>, name: &str, minisig: Option<String>) -> Fetched {
        Fetched {
            content_digest: sha256_digest(&bytes),
            bytes,
            name: name.to_string(),
            manifest_digest: None,
            signatures: minisig.into_iter().map(Signature::Minisign).collect(),
            notes: vec![],
            artifact: None,
            tag: None,
        }
    }

    fn from_artifact(a: Artifact, what: &str) -> Result<Fetched> {
        let (bytes, title) = oci::artifact::package_of(&a, what)?;
        let mut f = Fetched::plain(bytes, title.as_deref().unwrap_or(what), None);
        f.manifest_digest = Some(a.digest.clone());
        f.signatures = a.signatures();
        f.artifact = Some(a);
        Ok(f)
    }

    pub fn evidence(&self) -> Evidence<'_> {
        Evidence {
            bytes: &self.bytes,
            content_digest: &self.content_digest,
            manifest_digest: self.manifest_digest.as_deref(),
            signatures: &self.signatures,
        }
    }
}

fn read_limited(r: impl Read, limit: u64, what: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    r.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::msg(format!("{what}: cannot read: {e}")))?;
    if buf.len() as u64 > limit {
        return Err(Error::invalid(format!(
            "{what}: larger than the {limit}-byte limit"
        )));
    }
    Ok(buf)
}

/// A path or standard input, size-limited.
pub fn read(prog: &str) -> Result<Vec<u8>> {
    let buf = if prog == "-" || prog == STDIN_PATH {
        read_limited(std::io::stdin().lock(), MAX_PACKAGE_SIZE, prog)?
    } else {
        let f = std::fs::File::open(prog)
            .map_err(|e| Error::new(ErrorKind::NotFound, format!("{prog}: cannot open: {e}")))?;
        read_limited(f, MAX_PACKAGE_SIZE, prog)?
    };
    if buf.is_empty() {
        return Err(Error::invalid(format!("{prog}: empty input")));
    }
    Ok(buf)
}

/// Fetches PROG: the package's bytes, its digests and signatures.
pub fn fetch(prog: &str, opts: &FetchOptions) -> Result<Fetched> {
    match Source::parse(prog)? {
        Source::Stdin => Ok(Fetched::plain(read(prog)?, prog, None)),
        Source::File(p) => {
            if !std::path::Path::new(&p).exists() && reference::looks_unqualified(&p) {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "{p}: no such file; as an image reference it lacks its registry (edge-ecli has no default one): HOST[:PORT]/{p}, e.g. docker.io/{p} or localhost:5000/{p}"
                    ),
                ));
            }
            let bytes = read(&p)?;
            let sig = std::fs::File::open(format!("{p}.minisig"))
                .ok()
                .map(|f| read_limited(f, MAX_SIGNATURE, &format!("{p}.minisig")))
                .transpose()?
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            Ok(Fetched::plain(bytes, &p, sig))
        }
        Source::Url(u) => from_url(&u, opts).map_err(|e| named(e, &u)),
        Source::Registry(r) => from_registry(&r, opts),
        Source::Layout { dir, tag } => {
            let mut l = Layout::open_dir(&dir)?;
            let name = match tag {
                Some(t) => t,
                None => l.default_name()?,
            };
            Fetched::from_artifact(store::assemble(&mut l, prog, &name, true)?, prog)
        }
        Source::Archive { file, tag } => {
            let mut l = Layout::open_archive(&file)?;
            let name = match tag {
                Some(t) => t,
                None => l.default_name()?,
            };
            Fetched::from_artifact(store::assemble(&mut l, prog, &name, true)?, prog)
        }
    }
}

/// GETs `url` with redirects (at most 5); None on 404.
fn get(
    client: &Client,
    url: &str,
    limit: u64,
    what: &str,
    meter: &Meter,
) -> Result<Option<Vec<u8>>> {
    let mut u = Url::parse(url)?;
    for _ in 0..=5 {
        let r = client.send("GET", &u, &[], None)?;
        match r.status() {
            200 => {
                let total = r.head.content_length().ok().flatten();
                let name = u.target.rsplit('/').next().unwrap_or(what).to_string();
                let r = if meter.is_on() {
                    let (m, n) = (meter.clone(), name.clone());
                    r.on_read(move |done| m.transfer(&n, done, total))
                } else {
                    r
                };
                let body = r.body(limit, what, client.options().io_timeout);
                meter.finished(&name);
                return body.map(Some);
            }
            404 => return Ok(None),
            301 | 302 | 303 | 307 | 308 => {
                let loc = r.header("location").ok_or_else(|| {
                    Error::new(
                        ErrorKind::Network,
                        format!("{u}: a redirect without a Location"),
                    )
                })?;
                u = u.join(loc)?;
            }
            s => {
                return Err(Error::new(
                    ErrorKind::Network,
                    format!("{u}: the server answered {s} {}", r.head.line[2]),
                ))
            }
        }
    }
    Err(Error::new(
        ErrorKind::Network,
        format!("{url}: more than 5 redirects (a redirect loop?)"),
    ))
}

fn from_url(url: &str, opts: &FetchOptions) -> Result<Fetched> {
    let client = Client::new(opts.http.clone());
    let cache = cache::Cache::open(opts.cache_dir.as_deref());
    let key = format!("url:{url}");
    let sig_key = format!("url:{url}.minisig");
    match get(&client, url, MAX_PACKAGE_SIZE, "package", &opts.meter) {
        Ok(Some(bytes)) => {
            let sig = get(
                &client,
                &format!("{url}.minisig"),
                MAX_SIGNATURE,
                "signature",
                &Meter::default(),
            )?;
            let mut f = Fetched::plain(
                bytes,
                url,
                sig.map(|b| String::from_utf8_lossy(&b).into_owned()),
            );
            if let Err(e) = cache.put(&key, &f.bytes) {
                f.notes.push(format!("not cached: {e}"));
            }
            if let Some(Signature::Minisign(s)) = f.signatures.first() {
                let _ = cache.put(&sig_key, s.as_bytes());
            }
            Ok(f)
        }
        Ok(None) => Err(Error::new(
            ErrorKind::NotFound,
            format!("{url}: not found (404)"),
        )),
        Err(e) if e.kind() == ErrorKind::Unreachable => {
            let bytes = cache.get(&key).ok_or(e.clone())?;
            let sig = cache
                .get(&sig_key)
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            let mut f = Fetched::plain(bytes, url, sig);
            f.notes.push(format!(
                "{url}: unreachable ({e}); running the copy downloaded earlier ({})",
                f.content_digest
            ));
            Ok(f)
        }
        Err(e) => Err(e),
    }
}

/// `e`, naming `what` first if it does not yet.
fn named(e: Error, what: &str) -> Error {
    if e.to_string().starts_with(what) {
        e
    } else {
        e.context(what)
    }
}

fn from_registry(r: &Reference, opts: &FetchOptions) -> Result<Fetched> {
    let what = r.to_string();
    let mut f = registry_fetch(r, opts).map_err(|e| named(e, &what))?;
    f.tag = r.tag.clone();
    Ok(f)
}

/// Writes a fetched package to `dest`: a file (with its `.minisig` beside it), or the image
/// layout `oci:DIR[:TAG]` (with its signature manifest). Returns what the user should know.
pub fn save(f: &Fetched, dest: &str) -> Result<Vec<String>> {
    if let Some(rest) = dest.strip_prefix("oci:") {
        let (dir, tag) = split_tag(rest);
        let (digest, tag, mut notes) = oci::publish::save_layout(f, &dir, tag.as_deref())?;
        notes.push(format!("wrote {digest} to oci:{dir}:{tag}"));
        return Ok(notes);
    }
    let path = std::path::Path::new(dest);
    crate::files::write_atomic(path, &f.bytes)?;
    for s in &f.signatures {
        if let Signature::Minisign(text) = s {
            crate::files::write_atomic(
                std::path::Path::new(&format!("{dest}.minisig")),
                text.as_bytes(),
            )?;
        }
    }
    Ok(vec![])
}

fn registry_fetch(r: &Reference, opts: &FetchOptions) -> Result<Fetched> {
    let what = r.to_string();
    let cache = cache::Cache::open(opts.cache_dir.as_deref());
    let repo = r.name();
    // By digest, the cache is as good as the registry: it is content-addressed and checked.
    if r.digest.is_some() {
        if let Ok(a) = store::assemble(&mut cache.store(&repo), &what, r.target(), true) {
            let mut f = Fetched::from_artifact(a, &what)?;
            f.notes.push(format!(
                "{what}: from the cache ({})",
                cache.dir().display()
            ));
            return Ok(f);
        }
    }
    let client = Client::new(opts.http.clone());
    let mut reg = oci::registry::Registry::new(&client, r, &opts.insecure, false)?
        .with_meter(opts.meter.clone());
    match store::assemble(&mut reg, &what, r.target(), true) {
        Ok(a) => {
            // Only a package is cached: what is not one leaves nothing behind.
            let tag = if r.digest.is_none() {
                Some(r.target())
            } else {
                None
            };
            let mut f = Fetched::from_artifact(a, &what)?;
            if let Err(e) = cache.save(&repo, tag, f.artifact.as_ref().expect("from an artifact")) {
                f.notes.push(format!("{what}: not cached: {e}"));
            }
            Ok(f)
        }
        Err(e) if e.kind() == ErrorKind::Unreachable => {
            let a = store::assemble(&mut cache.store(&repo), &what, r.target(), true).map_err(
                |_| {
                    Error::new(
                        e.kind(),
                        format!(
                            "{e}; it was never pulled on this node, so there is no cached copy"
                        ),
                    )
                },
            )?;
            let mut f = Fetched::from_artifact(a, &what)?;
            f.notes.push(format!(
                "{what}: the registry is unreachable ({e}); running the copy pulled earlier ({})",
                f.manifest_digest.as_deref().unwrap_or("")
            ));
            Ok(f)
        }
        Err(e) => Err(e),
    }
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
}
