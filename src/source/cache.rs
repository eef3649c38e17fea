//! The content-addressed cache of pulled artifacts: `blobs/sha256/<hex>` (manifests, configs,
//! layers, signatures) and `refs/<sha256 of the reference>` naming the manifest a reference
//! had when it was pulled. Every write goes through a temporary file and a rename, so a failed
//! pull leaves nothing partial; every read is checked against its digest.

use std::path::{Path, PathBuf};

use super::oci::store::{signature_tag, Artifact, Store};
use crate::codec::{blob_path, sha256_digest, valid_digest, Digest};
use crate::error::{Error, ErrorKind, Result};
use crate::files::write_atomic;

pub struct Cache {
    dir: PathBuf,
}

/// Where the cache lives: under the state directory when root, else the user's cache dir.
pub fn default_dir() -> PathBuf {
    if crate::sys::euid() == 0 {
        return PathBuf::from("/var/lib/edge-ecli/cache");
    }
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("XDG_CACHE_HOME")
        .or_else(|| env("HOME").map(|h| h.join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("edge-ecli")
}

impl Cache {
    pub fn open(dir: Option<&str>) -> Cache {
        Cache {
            dir: dir.map_or_else(default_dir, PathBuf::from),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn ref_path(&self, name: &str) -> PathBuf {
        self.dir
            .join("refs")
            .join(Digest::of(name.as_bytes()).hex())
    }

    fn blob_path(&self, digest: &str) -> Option<PathBuf> {
        blob_path(&self.dir.join("blobs/sha256"), digest).ok()
    }

    /// Stores `a` (and its signature) for repository `repo` (`registry/repo`), and points
    /// `repo:tag` at it (and `repo:sha256-<hex>.sig` at its signature).
    pub fn save(&self, repo: &str, tag: Option<&str>, a: &Artifact) -> Result<()> {
        let blobs = self.dir.join("blobs/sha256");
        for d in [&blobs, &self.dir.join("refs")] {
            std::fs::create_dir_all(d).map_err(|e| {
                Error::msg(format!(
                    "cache {}: cannot create it: {e} (use --cache-dir DIR)",
                    self.dir.display()
                ))
            })?;
        }
        let put = |art: &Artifact| -> Result<()> {
            for (d, b) in &art.blobs {
                write_atomic(&blob_path(&blobs, &d.digest)?, b)?;
            }
            write_atomic(&blob_path(&blobs, &art.digest)?, &art.manifest)
        };
        let point = |tag: &str, art: &Artifact| -> Result<()> {
            let name = format!("{repo}:{tag}");
            let entry = format!("{name}\n{}\n{}\n", art.digest, art.media_type);
            write_atomic(&self.ref_path(&name), entry.as_bytes())
        };
        put(a)?;
        if let Some(s) = &a.signature {
            put(s)?;
            point(&signature_tag(&a.digest), s)?;
        }
        if let Some(t) = tag {
            point(t, a)?;
        }
        Ok(())
    }

    /// The manifest digest and media type `name` pointed to when pulled.
    pub fn lookup(&self, name: &str) -> Option<(String, String)> {
        let text = std::fs::read_to_string(self.ref_path(name)).ok()?;
        let mut l = text.lines();
        (l.next()? == name).then_some(())?;
        let digest = l.next()?.to_string();
        let mt = l.next().unwrap_or("").to_string();
        valid_digest(&digest).then_some((digest, mt))
    }

    /// Stores one blob under `name` (a URL's download, its .minisig).
    pub fn put(&self, name: &str, bytes: &[u8]) -> Result<String> {
        let digest = sha256_digest(bytes);
        let blobs = self.dir.join("blobs/sha256");
        for d in [&blobs, &self.dir.join("refs")] {
            std::fs::create_dir_all(d).map_err(|e| {
                Error::msg(format!(
                    "cache {}: cannot create it: {e} (use --cache-dir DIR)",
                    self.dir.display()
                ))
            })?;
        }
        write_atomic(&blob_path(&blobs, &digest)?, bytes)?;
        write_atomic(
            &self.ref_path(name),
            format!("{name}\n{digest}\n\n").as_bytes(),
        )?;
        Ok(digest)
    }

    /// The blob stored under `name`, checked against its digest.
    pub fn get(&self, name: &str) -> Option<Vec<u8>> {
        let (digest, _) = self.lookup(name)?;
        self.store("").blob(&digest, super::MAX_PACKAGE_SIZE).ok()
    }

    /// A store view for one repository (`registry/repo`), whose tags are looked up in refs.
    pub fn store<'a>(&'a self, repo: &str) -> CacheStore<'a> {
        CacheStore {
            cache: self,
            repo: repo.to_string(),
        }
    }
}

pub struct CacheStore<'a> {
    cache: &'a Cache,
    repo: String,
}

impl Store for CacheStore<'_> {
    fn manifest(&mut self, name: &str) -> Result<Option<(Vec<u8>, Option<String>)>> {
        let (digest, mt) = if valid_digest(name) {
            (name.to_string(), String::new())
        } else {
            match self.cache.lookup(&format!("{}:{name}", self.repo)) {
                Some(x) => x,
                None => return Ok(None),
            }
        };
        match self.blob(&digest, super::oci::manifest::MAX_MANIFEST) {
            Ok(b) => Ok(Some((b, (!mt.is_empty()).then_some(mt)))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn blob(&mut self, digest: &str, limit: u64) -> Result<Vec<u8>> {
        let p = self
            .cache
            .blob_path(digest)
            .ok_or_else(|| Error::invalid(format!("bad digest {digest:?}")))?;
        let b = std::fs::read(&p).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::new(ErrorKind::NotFound, format!("{digest} is not in the cache"))
            }
            _ => Error::msg(format!("cache: reading {}: {e}", p.display())),
        })?;
        if b.len() as u64 > limit.max(1) && limit > 0 {
            return Err(Error::invalid(format!(
                "cache: {} is larger than expected",
                p.display()
            )));
        }
        if sha256_digest(&b) != digest {
            return Err(Error::new(
                ErrorKind::Trust,
                format!("cache: {} does not hash to {digest}: the cache was tampered with; remove it and pull again", p.display()),
            ));
        }
        Ok(b)
    }
}
