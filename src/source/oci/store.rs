//! Where OCI artifacts are read from (a registry, an image layout, an oci-archive, the cache),
//! behind one trait, and how an artifact is put together from any of them: its manifest
//! (through an index by platform), every blob, digests and sizes checked, and its cosign
//! signature manifest when there is one. Also writing an image layout (`pull -o oci:DIR`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::manifest::{self, Descriptor, Manifest, COSIGN_LAYER, MAX_MANIFEST, REF_NAME};
use super::tar;
use crate::codec::{blob_path, sha256_digest, valid_digest};
use crate::error::{Error, ErrorKind, Result};
use crate::files::write_atomic;
use crate::source::MAX_PACKAGE_SIZE;
use crate::trust::Signature;

pub trait Store {
    /// The manifest `name` refers to (a tag, a digest, a layout's ref name): its bytes and
    /// media type, None when there is no such manifest.
    fn manifest(&mut self, name: &str) -> Result<Option<(Vec<u8>, Option<String>)>>;
    /// The blob `digest`, at most `limit` bytes (checked by the caller).
    fn blob(&mut self, digest: &str, limit: u64) -> Result<Vec<u8>>;
}

/// An artifact with everything it is made of.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub manifest: Vec<u8>,
    pub digest: String,
    pub media_type: String,
    pub parsed: Manifest,
    /// The config (first) and the layers, in the manifest's order.
    pub blobs: Vec<(Descriptor, Vec<u8>)>,
    /// The cosign signature manifest (tag `sha256-<hex>.sig`), with its payload blobs.
    pub signature: Option<Box<Artifact>>,
}

/// The cosign tag of the signatures of a manifest.
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replace(':', "-"))
}

fn check_blob(what: &str, d: &Descriptor, bytes: &[u8]) -> Result<()> {
    if bytes.len() as u64 != d.size {
        return Err(Error::on(
            what,
            ErrorKind::Network,
            format!(
                "blob {} is {} bytes but the manifest says {}: size mismatch",
                d.digest,
                bytes.len(),
                d.size
            ),
        ));
    }
    let got = sha256_digest(bytes);
    if got != d.digest.as_str() {
        return Err(Error::on(
            what,
            ErrorKind::Network,
            format!(
                "blob {} has the digest {got}: digest mismatch (corrupted or tampered)",
                d.digest
            ),
        ));
    }
    Ok(())
}

/// A manifest's bytes, its digest and its media type as the store gave it.
type Fetched = (Vec<u8>, String, Option<String>);

/// A manifest's bytes, checked against `name` when asked for by digest.
fn fetch_manifest(store: &mut dyn Store, what: &str, name: &str) -> Result<Option<Fetched>> {
    let Some((bytes, ct)) = store.manifest(name)? else {
        return Ok(None);
    };
    if bytes.len() as u64 > MAX_MANIFEST {
        return Err(Error::on(
            what,
            ErrorKind::Network,
            "the manifest is larger than 4 MiB; refusing it",
        ));
    }
    let digest = sha256_digest(&bytes);
    if valid_digest(name) && digest != name {
        return Err(Error::on(
            what,
            ErrorKind::Network,
            format!("the manifest has the digest {digest}, not {name}: digest mismatch"),
        ));
    }
    Ok(Some((bytes, digest, ct)))
}

/// Puts the artifact `name` of `store` together; `what` names it in errors.
pub fn assemble(
    store: &mut dyn Store,
    what: &str,
    name: &str,
    with_signature: bool,
) -> Result<Artifact> {
    let (mut bytes, mut digest, mut ct) = fetch_manifest(store, what, name)?.ok_or_else(|| {
        Error::on(
            what,
            ErrorKind::NotFound,
            format!("not found (no manifest {name}); check the name and tag"),
        )
    })?;
    let mut parsed = Manifest::parse(&bytes, what)?;
    if parsed.is_index(ct.as_deref()) {
        let d = parsed.select_platform(what)?.digest.to_string();
        (bytes, digest, ct) = fetch_manifest(store, what, &d)?.ok_or_else(|| {
            Error::on(
                what,
                ErrorKind::Network,
                format!("the index names {d}, which is missing"),
            )
        })?;
        parsed = Manifest::parse(&bytes, what)?;
        if parsed.is_index(ct.as_deref()) {
            return Err(Error::on(
                what,
                ErrorKind::Network,
                "an index inside an index is not read",
            ));
        }
    }
    let media_type = parsed
        .media_type
        .as_deref()
        .or(ct.as_deref())
        .unwrap_or(manifest::OCI_MANIFEST)
        .to_string();
    let mut blobs = Vec::new();
    let mut total = 0u64;
    for d in parsed.config.iter().chain(parsed.layers.iter()) {
        if d.size > MAX_PACKAGE_SIZE {
            return Err(Error::on(what, ErrorKind::Network, format!("blob {} is {} bytes, over the {MAX_PACKAGE_SIZE}-byte package limit; refusing it", d.digest, d.size),
            ));
        }
        total += d.size;
        if total > 2 * MAX_PACKAGE_SIZE {
            return Err(Error::on(
                what,
                ErrorKind::Network,
                format!(
                    "the artifact's blobs are larger than {} bytes in all",
                    2 * MAX_PACKAGE_SIZE
                ),
            ));
        }
        let b = store.blob(&d.digest, d.size)?;
        check_blob(what, d, &b)?;
        blobs.push((d.clone(), b));
    }
    let signature = if with_signature {
        signature_of(store, what, &digest)?.map(Box::new)
    } else {
        None
    };
    Ok(Artifact {
        manifest: bytes,
        digest,
        media_type,
        parsed,
        blobs,
        signature,
    })
}

/// The cosign signature manifest of `digest`, if the store has one.
fn signature_of(store: &mut dyn Store, what: &str, digest: &str) -> Result<Option<Artifact>> {
    let tag = signature_tag(digest);
    let Some((bytes, sdigest, ct)) = fetch_manifest(store, what, &tag)? else {
        return Ok(None);
    };
    let parsed = Manifest::parse(&bytes, &format!("{what} (signature {tag})"))?;
    let mut blobs = Vec::new();
    for d in parsed
        .layers
        .iter()
        .filter(|d| d.media_type.as_str() == COSIGN_LAYER)
    {
        if d.size > 1 << 20 {
            continue;
        }
        let b = store.blob(&d.digest, d.size)?;
        check_blob(what, d, &b)?;
        blobs.push((d.clone(), b));
    }
    Ok(Some(Artifact {
        manifest: bytes,
        digest: sdigest,
        media_type: ct.unwrap_or_else(|| manifest::OCI_MANIFEST.into()),
        parsed,
        blobs,
        signature: None,
    }))
}

impl Artifact {
    /// The cosign signatures it carries (payloads and their signature annotations).
    pub fn signatures(&self) -> Vec<Signature> {
        let Some(s) = &self.signature else {
            return vec![];
        };
        s.blobs
            .iter()
            .filter_map(|(d, payload)| {
                let sig = d.annotations.as_ref()?.cosign_signature.as_ref()?;
                Some(Signature::Cosign {
                    payload: payload.clone(),
                    signature: sig.to_string(),
                })
            })
            .collect()
    }
}

/// An OCI image layout read from a directory or from an oci-archive held in memory.
pub struct Layout {
    index: Vec<Descriptor>,
    files: Files,
    what: String,
}

enum Files {
    Dir(PathBuf),
    Archive(HashMap<String, (usize, usize)>, Vec<u8>),
}

fn read_limited(p: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    // A layout holds regular files only: a FIFO planted in one must not block the reader.
    let f = crate::files::open_regular(p).map_err(|e| {
        let kind = match e.kind() {
            std::io::ErrorKind::PermissionDenied => ErrorKind::Denied,
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            _ => ErrorKind::Invalid,
        };
        Error::on(what, kind, format!("cannot open {}: {e}", p.display()))
    })?;
    let mut v = Vec::new();
    f.take(limit + 1).read_to_end(&mut v).map_err(|e| {
        Error::on(
            what,
            ErrorKind::Other,
            format!("reading {}: {e}", p.display()),
        )
    })?;
    if v.len() as u64 > limit {
        return Err(Error::on(
            what,
            ErrorKind::Invalid,
            format!("{} is larger than {limit} bytes", p.display()),
        ));
    }
    Ok(v)
}

fn parse_index(bytes: &[u8], what: &str) -> Result<Vec<Descriptor>> {
    manifest::parse_descriptors(bytes, what)
}

impl Layout {
    pub fn open_dir(dir: &str) -> Result<Layout> {
        let what = format!("oci:{dir}");
        let idx = read_limited(&Path::new(dir).join("index.json"), MAX_MANIFEST, &what)?;
        Ok(Layout {
            index: parse_index(&idx, &what)?,
            files: Files::Dir(PathBuf::from(dir)),
            what,
        })
    }

    pub fn open_archive(file: &str) -> Result<Layout> {
        let what = format!("oci-archive:{file}");
        let bytes = read_limited(Path::new(file), 2 * MAX_PACKAGE_SIZE + (16 << 20), &what)?;
        let mut map = HashMap::new();
        for e in tar::entries(&bytes, &what)? {
            let start = e.data.as_ptr() as usize - bytes.as_ptr() as usize;
            map.insert(e.path, (start, e.data.len()));
        }
        let (s, l) = *map.get("index.json").ok_or_else(|| {
            Error::on(
                &what,
                ErrorKind::Invalid,
                "no index.json in the archive (not an oci-archive?)",
            )
        })?;
        let index = parse_index(&bytes[s..s + l], &what)?;
        Ok(Layout {
            index,
            files: Files::Archive(map, bytes),
            what,
        })
    }

    fn file(&self, rel: &str, limit: u64) -> Result<Vec<u8>> {
        match &self.files {
            Files::Dir(d) => read_limited(&d.join(rel), limit, &self.what),
            Files::Archive(map, bytes) => {
                let (s, l) = *map.get(rel).ok_or_else(|| {
                    Error::new(
                        ErrorKind::NotFound,
                        format!("{}: {rel} is missing", self.what),
                    )
                })?;
                if l as u64 > limit {
                    return Err(Error::invalid(format!(
                        "{}: {rel} is larger than {limit} bytes",
                        self.what
                    )));
                }
                Ok(bytes[s..s + l].to_vec())
            }
        }
    }

    /// The only manifest's ref name (or digest), for `oci:DIR` without a tag.
    pub fn default_name(&self) -> Result<String> {
        let mut mains: Vec<&Descriptor> = self
            .index
            .iter()
            .filter(|d| {
                !d.annotations
                    .as_ref()
                    .and_then(|a| a.ref_name.as_ref())
                    .is_some_and(|r| r.ends_with(".sig"))
            })
            .collect();
        mains.dedup_by(|a, b| a.digest == b.digest);
        match mains.as_slice() {
            [one] => Ok(one.digest.to_string()),
            [] => Err(Error::new(
                ErrorKind::NotFound,
                format!("{}: the layout holds no manifest", self.what),
            )),
            _ => Err(Error::new(
                ErrorKind::Usage,
                format!(
                    "{}: the layout holds several manifests; name one as {}:TAG",
                    self.what, self.what
                ),
            )),
        }
    }
}

impl Store for Layout {
    fn manifest(&mut self, name: &str) -> Result<Option<(Vec<u8>, Option<String>)>> {
        let d = self
            .index
            .iter()
            .find(|d| {
                d.digest.as_str() == name
                    || d.annotations.as_ref().and_then(|a| a.ref_name.as_deref()) == Some(name)
            })
            .cloned();
        let digest = match &d {
            Some(d) => d.digest.to_string(),
            // Manifests of an index are found by digest among the blobs.
            None if valid_digest(name) => name.to_string(),
            None => return Ok(None),
        };
        let mt = d.as_ref().map(|d| d.media_type.to_string());
        match self.blob(&digest, MAX_MANIFEST) {
            Ok(b) => Ok(Some((b, mt))),
            Err(e) if e.kind() == ErrorKind::NotFound && d.is_none() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn blob(&mut self, digest: &str, limit: u64) -> Result<Vec<u8>> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|_| valid_digest(digest))
            .ok_or_else(|| Error::invalid(format!("{}: bad digest {digest:?}", self.what)))?;
        self.file(&format!("blobs/sha256/{hex}"), limit)
    }
}

/// Writes (or adds to) an image layout at `dir`: the artifact's blobs and manifest under
/// `tag`, and its signature manifest under `sha256-<hex>.sig`, so the layout verifies offline.
pub fn write_layout(dir: &str, tag: &str, a: &Artifact) -> Result<()> {
    let root = Path::new(dir);
    let blobs = root.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)
        .map_err(|e| Error::msg(format!("oci:{dir}: cannot create it: {e}")))?;
    write_atomic(
        &root.join("oci-layout"),
        b"{\"imageLayoutVersion\":\"1.0.0\"}",
    )?;
    let mut entries: Vec<(String, String, String, usize)> = Vec::new();
    let mut put = |art: &Artifact, name: String| -> Result<()> {
        for (d, b) in &art.blobs {
            write_atomic(&blob_path(&blobs, &d.digest)?, b)?;
        }
        write_atomic(&blob_path(&blobs, &art.digest)?, &art.manifest)?;
        entries.push((
            name,
            art.media_type.clone(),
            art.digest.clone(),
            art.manifest.len(),
        ));
        Ok(())
    };
    put(a, tag.to_string())?;
    if let Some(s) = &a.signature {
        put(s, signature_tag(&a.digest))?;
    }
    // Keep what the layout already names, except the names written now.
    let mut kept = Vec::new();
    if let Ok(old) = std::fs::read(root.join("index.json")) {
        for d in parse_index(&old, &format!("oci:{dir}"))? {
            let name = d
                .annotations
                .as_ref()
                .and_then(|x| x.ref_name.as_ref())
                .map(|r| r.to_string());
            if !name
                .as_ref()
                .is_some_and(|n| entries.iter().any(|e| &e.0 == n))
            {
                kept.push((name, d));
            }
        }
    }
    let mut o = String::from("{\"schemaVersion\":2,\"manifests\":[");
    let mut first = true;
    for (name, d) in &kept {
        if !first {
            o.push(',');
        }
        first = false;
        let ann: Vec<(&str, &str)> = name.iter().map(|n| (REF_NAME, n.as_str())).collect();
        manifest::write_descriptor(&mut o, &d.media_type, &d.digest, d.size as usize, &ann);
    }
    for (name, mt, digest, size) in &entries {
        if !first {
            o.push(',');
        }
        first = false;
        manifest::write_descriptor(&mut o, mt, digest, *size, &[(REF_NAME, name)]);
    }
    o.push_str("]}");
    write_atomic(&root.join("index.json"), o.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::oci::manifest::*;

    /// A store over a map of manifests (by name) and blobs (by digest).
    #[derive(Default)]
    pub struct Mem {
        pub manifests: HashMap<String, Vec<u8>>,
        pub blobs: HashMap<String, Vec<u8>>,
    }

    impl Store for Mem {
        fn manifest(&mut self, name: &str) -> Result<Option<(Vec<u8>, Option<String>)>> {
            Ok(self
                .manifests
                .get(name)
                .or_else(|| self.blobs.get(name))
                .map(|b| (b.clone(), None)))
        }
        fn blob(&mut self, digest: &str, _limit: u64) -> Result<Vec<u8>> {
            self.blobs
                .get(digest)
                .cloned()
                .ok_or_else(|| Error::new(ErrorKind::NotFound, "no blob"))
        }
    }

    fn one(layer: &[u8]) -> (Mem, String) {
        let mut m = Mem::default();
        let ld = sha256_digest(layer);
        m.blobs.insert(ld.clone(), layer.to_vec());
        m.blobs.insert(EMPTY_DIGEST.into(), EMPTY_JSON.to_vec());
        let (man, md) = one_layer_manifest(
            None,
            (EMPTY_CONFIG, EMPTY_DIGEST, 2),
            (EDGE_OBJECT, &ld, layer.len()),
            &[],
            &[],
        );
        m.manifests.insert("v1".into(), man);
        (m, md)
    }

    #[test]
    fn assembles_and_checks_every_blob() {
        let (mut m, md) = one(b"object");
        let a = assemble(&mut m, "r", "v1", true).unwrap();
        assert_eq!(a.digest, md);
        assert_eq!(a.blobs[1].1, b"object");
        assert!(a.signature.is_none());
        // A blob that does not hash to its digest, and one of another size.
        let ld = sha256_digest(b"object");
        m.blobs.insert(ld.clone(), b"objecT".to_vec());
        let e = assemble(&mut m, "r", "v1", false).unwrap_err().to_string();
        assert!(e.contains("digest mismatch"), "{e}");
        m.blobs.insert(ld, b"obj".to_vec());
        assert!(assemble(&mut m, "r", "v1", false)
            .unwrap_err()
            .to_string()
            .contains("size mismatch"));
        assert_eq!(
            assemble(&mut m, "r", "v2", false).unwrap_err().kind(),
            ErrorKind::NotFound
        );
        // By digest: the manifest must hash to it.
        let (mut m, md) = one(b"object");
        let wrong = sha256_digest(b"other");
        m.manifests.insert(wrong.clone(), m.manifests["v1"].clone());
        assert!(assemble(&mut m, "r", &wrong, false)
            .unwrap_err()
            .to_string()
            .contains("digest mismatch"));
        m.manifests.insert(md.clone(), m.manifests["v1"].clone());
        assert!(assemble(&mut m, "r", &md, false).is_ok());
    }

    #[test]
    fn layouts_round_trip_with_their_signatures() {
        let (mut m, md) = one(b"object");
        // A signature manifest in the cosign layout.
        let payload = crate::trust::cosign::payload("r/x", &md);
        let pd = sha256_digest(payload.as_bytes());
        m.blobs.insert(pd.clone(), payload.clone().into_bytes());
        let (sig, _) = one_layer_manifest(
            None,
            (EMPTY_CONFIG, EMPTY_DIGEST, 2),
            (COSIGN_LAYER, &pd, payload.len()),
            &[("dev.cosignproject.cosign/signature", "c2ln")],
            &[],
        );
        m.manifests.insert(signature_tag(&md), sig);
        let a = assemble(&mut m, "r", "v1", true).unwrap();
        assert_eq!(a.signatures().len(), 1);
        let dir = std::env::temp_dir().join(format!("edge-layout-{}", std::process::id()));
        let d = dir.to_string_lossy().into_owned();
        write_layout(&d, "v1", &a).unwrap();
        write_layout(&d, "v2", &a).unwrap();
        let mut l = Layout::open_dir(&d).unwrap();
        let b = assemble(&mut l, "l", "v1", true).unwrap();
        assert_eq!(b.digest, a.digest);
        assert_eq!(b.signatures(), a.signatures());
        assert!(
            assemble(&mut l, "l", "v2", false).is_ok(),
            "earlier names are kept"
        );
        assert_eq!(
            l.default_name().unwrap(),
            a.digest,
            "two tags of one manifest: that one"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
