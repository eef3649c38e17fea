//! PROG -> the package's bytes, with what vouches for them: a path (with a `.minisig` beside
//! it), `-` (standard input), an `http(s)://` URL (and `URL.minisig`), an OCI reference
//! `HOST[:PORT]/REPO[:TAG|@sha256:DIGEST]` (with its cosign signature), an image layout
//! `oci:DIR[:TAG]` or an `oci-archive:FILE[:TAG]`. Everything is size-limited, time-limited
//! and checked against its digests; what came from a remote is cached, so a node that was
//! online once runs the same reference offline. Nothing here judges trust (`trust` does) or
//! decodes the package (`package` does).

#[doc(hidden)]
pub mod cache;
#[doc(hidden)]
pub mod oci;
mod prog;

use prog::split_tag;
pub use prog::{absolute, Source, STDIN_PATH};

use std::io::Read;

use crate::codec::sha256_digest;
use crate::error::{Error, ErrorKind, Result};
use crate::http::client::{Client, ClientOptions, Url};
use crate::progress::Meter;
use crate::trust::{Evidence, Policy, Signature};
use oci::reference::{self, Reference};
use oci::store::{self, Artifact, Layout};

/// No package we run is anywhere near this; anything larger is refused before it is read.
pub const MAX_PACKAGE_SIZE: u64 = 128 << 20;
/// Nor any signature file.
const MAX_SIGNATURE: u64 = 64 << 10;

/// How remotes are reached.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// Timeouts, limits, proxies and TLS of HTTP requests.
    pub http: ClientOptions,
    /// Registries (host or host:port) that may be reached over plain HTTP.
    pub insecure: Vec<String>,
    /// The cache directory (default: `cache::default_dir()`).
    pub cache_dir: Option<String>,
    /// Where the progress of downloads goes (off by default).
    pub meter: Meter,
    /// Local sources must be regular files (the daemon: a FIFO or a device would block it or
    /// never end); standard input is refused. The CLI also reads pipes (`run <(...)`).
    pub regular_files_only: bool,
}

/// A package's bytes and what came with them.
#[derive(Debug)]
pub struct Fetched {
    /// The package.
    pub bytes: Vec<u8>,
    /// What the package is called (for its object name, a Wasm app's argv[0]).
    pub name: String,
    /// `sha256:<hex>` of the bytes.
    pub content_digest: String,
    /// The OCI manifest's digest, for packages that came in one.
    pub manifest_digest: Option<String>,
    /// Signatures that came with it (a `.minisig` beside a URL, cosign signatures in a registry).
    pub signatures: Vec<Signature>,
    /// What the user should know (a cached copy was used...).
    pub notes: Vec<String>,
    /// The OCI artifact it came in (for `pull -o oci:DIR`).
    pub artifact: Option<Artifact>,
    /// The tag it was fetched by, for a registry reference with one.
    pub tag: Option<String>,
    /// What the trust policy accepted it for.
    pub trusted_by: String,
    /// Kernel BTF that came beside the package (an OCI btfgen layer): a tar.gz in BTFHub
    /// layout.
    pub btfgen: Option<Vec<u8>>,
}

/// What a fetch from a remote will write to the cache once the package is trusted.
enum CacheWrite {
    Url { key: String, sig_key: String },
    Registry { repo: String, tag: Option<String> },
}

impl Fetched {
    pub(crate) fn plain(bytes: Vec<u8>, name: &str, minisig: Option<String>) -> Fetched {
        Fetched {
            content_digest: sha256_digest(&bytes),
            bytes,
            name: name.to_string(),
            manifest_digest: None,
            signatures: minisig.into_iter().map(Signature::Minisign).collect(),
            notes: vec![],
            artifact: None,
            tag: None,
            trusted_by: String::new(),
            btfgen: None,
        }
    }

    fn from_artifact(a: Artifact, what: &str) -> Result<Fetched> {
        let (bytes, title) = oci::artifact::package_of(&a, what)?;
        let mut f = Fetched::plain(bytes, title.as_deref().unwrap_or(what), None);
        f.manifest_digest = Some(a.digest.clone());
        f.signatures = a.signatures();
        f.btfgen = oci::artifact::btfgen_of(&a);
        f.artifact = Some(a);
        Ok(f)
    }

    /// What the trust policy checks.
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
        .map_err(|e| Error::on(what, ErrorKind::Other, format!("cannot read: {e}")))?;
    if buf.len() as u64 > limit {
        return Err(Error::on(
            what,
            ErrorKind::Invalid,
            format!("larger than the {limit}-byte limit"),
        ));
    }
    Ok(buf)
}

/// A path or standard input, size-limited.
pub fn read(prog: &str) -> Result<Vec<u8>> {
    read_file(prog, false)
}

fn read_file(prog: &str, regular_only: bool) -> Result<Vec<u8>> {
    let stdin = prog == "-" || prog == STDIN_PATH;
    let buf = if stdin && !regular_only {
        read_limited(std::io::stdin().lock(), MAX_PACKAGE_SIZE, prog)?
    } else {
        let f = if regular_only {
            crate::files::open_regular(prog)
        } else {
            std::fs::File::open(prog)
        };
        let f = f.map_err(|e| {
            let kind = match e.kind() {
                std::io::ErrorKind::PermissionDenied => ErrorKind::Denied,
                std::io::ErrorKind::InvalidInput => ErrorKind::Usage,
                _ => ErrorKind::NotFound,
            };
            Error::new(kind, format!("{prog}: cannot open: {e}"))
        })?;
        read_limited(f, MAX_PACKAGE_SIZE, prog)?
    };
    if buf.is_empty() {
        return Err(Error::invalid(format!("{prog}: empty input")));
    }
    Ok(buf)
}

/// Fetches PROG (the package's bytes, its digests and signatures) and checks it against
/// `policy` before anything parses it and before anything of it is written to the cache: a
/// package the policy refuses leaves nothing behind that a later run without a policy could
/// pick up.
pub fn fetch(prog: &str, opts: &FetchOptions, policy: &Policy) -> Result<Fetched> {
    let (mut f, pending) = fetch_unverified(prog, opts)?;
    f.trusted_by = policy.check(prog, &f.evidence())?;
    if let Some(w) = pending {
        if let Err(e) = commit(w, &f, opts) {
            f.notes.push(format!("{prog}: not cached: {e}"));
        }
    }
    Ok(f)
}

fn commit(w: CacheWrite, f: &Fetched, opts: &FetchOptions) -> Result<()> {
    let cache = cache::Cache::open(opts.cache_dir.as_deref());
    match w {
        CacheWrite::Url { key, sig_key } => {
            cache.put(&key, &f.bytes)?;
            if let Some(Signature::Minisign(s)) = f.signatures.first() {
                cache.put(&sig_key, s.as_bytes())?;
            }
            Ok(())
        }
        CacheWrite::Registry { repo, tag } => match &f.artifact {
            Some(a) => cache.save(&repo, tag.as_deref(), a),
            None => Ok(()),
        },
    }
}

fn fetch_unverified(prog: &str, opts: &FetchOptions) -> Result<(Fetched, Option<CacheWrite>)> {
    let done = |f: Fetched| Ok((f, None));
    match Source::parse(prog)? {
        Source::Stdin if opts.regular_files_only => Err(Error::new(
            ErrorKind::Usage,
            format!("{prog}: standard input cannot be a source here; name a file"),
        )),
        Source::Stdin => done(Fetched::plain(read(prog)?, prog, None)),
        Source::File(p) => {
            if !std::path::Path::new(&p).exists() && reference::looks_unqualified(&p) {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "{p}: no such file; as an image reference it lacks its registry (edge-ecli has no default one): HOST[:PORT]/{p}, e.g. docker.io/{p} or localhost:5000/{p}"
                    ),
                ));
            }
            let bytes = read_file(&p, opts.regular_files_only)?;
            let sig = crate::files::open_regular(format!("{p}.minisig"))
                .ok()
                .map(|f| read_limited(f, MAX_SIGNATURE, &format!("{p}.minisig")))
                .transpose()?
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            done(Fetched::plain(bytes, &p, sig))
        }
        Source::Url(u) => from_url(&u, opts).map_err(|e| e.about(&u)),
        Source::Registry(r) => from_registry(&r, opts),
        Source::Layout { dir, tag } => {
            let mut l = Layout::open_dir(&dir)?;
            let name = match tag {
                Some(t) => t,
                None => l.default_name()?,
            };
            done(Fetched::from_artifact(
                store::assemble(&mut l, prog, &name, true)?,
                prog,
            )?)
        }
        Source::Archive { file, tag } => {
            let mut l = Layout::open_archive(&file)?;
            let name = match tag {
                Some(t) => t,
                None => l.default_name()?,
            };
            done(Fetched::from_artifact(
                store::assemble(&mut l, prog, &name, true)?,
                prog,
            )?)
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
                let next = u.join(loc)?;
                if u.downgrades_to(&next) {
                    return Err(Error::new(
                        ErrorKind::Network,
                        format!("{u}: redirected to plain HTTP ({next}); refused (never from HTTPS to HTTP)"),
                    ));
                }
                u = next;
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

fn from_url(url: &str, opts: &FetchOptions) -> Result<(Fetched, Option<CacheWrite>)> {
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
            let f = Fetched::plain(
                bytes,
                url,
                sig.map(|b| String::from_utf8_lossy(&b).into_owned()),
            );
            Ok((f, Some(CacheWrite::Url { key, sig_key })))
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
            Ok((f, None))
        }
        Err(e) => Err(e),
    }
}

fn from_registry(r: &Reference, opts: &FetchOptions) -> Result<(Fetched, Option<CacheWrite>)> {
    let what = r.to_string();
    let (mut f, w) = registry_fetch(r, opts).map_err(|e| e.about(&what))?;
    f.tag = r.tag.clone();
    Ok((f, w))
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
    let mut notes = Vec::new();
    if f.btfgen.is_some() {
        notes.push(format!("note: the artifact's kernel BTF layer is not written to {dest}; pull to oci:DIR to keep it, or run the reference"));
    }
    for s in &f.signatures {
        if let Signature::Minisign(text) = s {
            crate::files::write_atomic(
                std::path::Path::new(&format!("{dest}.minisig")),
                text.as_bytes(),
            )?;
        }
    }
    Ok(notes)
}

fn registry_fetch(r: &Reference, opts: &FetchOptions) -> Result<(Fetched, Option<CacheWrite>)> {
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
            return Ok((f, None));
        }
    }
    let client = Client::new(opts.http.clone());
    let mut reg = oci::registry::Registry::new(&client, r, &opts.insecure, false)?
        .with_meter(opts.meter.clone());
    match store::assemble(&mut reg, &what, r.target(), true) {
        Ok(a) => {
            // Only a trusted package is cached: what is not one leaves nothing behind.
            let tag = r.digest.is_none().then(|| r.target().to_string());
            let f = Fetched::from_artifact(a, &what)?;
            Ok((f, Some(CacheWrite::Registry { repo, tag })))
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
            Ok((f, None))
        }
        Err(e) => Err(e),
    }
}
