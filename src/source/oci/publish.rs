//! Writing packages out as OCI artifacts: publishing to a registry (`push`), and an image
//! layout for a package that was fetched (`pull -o oci:DIR[:TAG]`), with our own artifact
//! format around a package that came without one (a URL, a file).

use super::artifact::manifest_for;
use super::manifest::{Manifest, OCI_MANIFEST};
use super::reference::Reference;
use super::registry::Registry;
use super::store::{write_layout, Artifact};
use crate::codec::sha256_digest;
use crate::error::{Error, ErrorKind, Result};
use crate::http::client::{Client, ClientOptions};
use crate::package;
use crate::progress::Meter;
use crate::source::Fetched;
use crate::trust::Signature;

/// Where and how to publish.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    pub http: ClientOptions,
    /// Registries (host or host:port) that may be reached over plain HTTP.
    pub insecure: Vec<String>,
    pub meter: Meter,
    /// `--btfgen`: kernel BTF to carry as a btfgen layer beside the package (a BTFHub
    /// directory, such files, or ID/VERSION_ID/ARCH/RELEASE=FILE).
    pub btfgen: Vec<String>,
}

/// The file name a package is published under (its manifest's title).
fn title_of(name: &str) -> String {
    name.rsplit('/').next().unwrap_or(name).to_string()
}

/// Publishes the package `bytes` (named `name`) under `reference` (a tag): Wasm modules in
/// eunomia ecli's format (one layer, so `ecli pull` reads them), package.json and `.bpf.o` in
/// ours. What would not run is refused first. Returns `REPO:TAG@DIGEST`.
pub fn push(bytes: &[u8], name: &str, reference: &str, opts: &PushOptions) -> Result<String> {
    let r = Reference::parse(reference)?;
    if r.digest.is_some() {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("{reference}: push to a tag, not a digest (the digest is the manifest's)"),
        ));
    }
    let kind = package::detect(bytes).map_err(|e| e.context(name))?;
    let object = if kind != package::Kind::Wasm {
        Some(package::load(bytes.to_vec(), name).map_err(|e| e.context(name))?)
    } else {
        None
    };
    let btfgen = btfgen_layer(object.as_ref(), name, &opts.btfgen)?;
    let layer = sha256_digest(bytes);
    let btf_layer = btfgen
        .as_ref()
        .map(|s| (sha256_digest(s.bytes()), s.bytes().len()));
    let (config, manifest, digest) = manifest_for(
        kind,
        &layer,
        bytes.len(),
        &title_of(name),
        btf_layer.as_ref().map(|(d, n)| (d.as_str(), *n)),
    );
    let client = Client::new(opts.http.clone());
    let mut reg = Registry::new(&client, &r, &opts.insecure, true)?.with_meter(opts.meter.clone());
    reg.push_blob(config)?;
    reg.push_blob(bytes)?;
    if let Some(s) = &btfgen {
        reg.push_blob(s.bytes())?;
    }
    reg.push_manifest(r.target(), &manifest, OCI_MANIFEST)?;
    Ok(format!("{}@{digest}", r.with_tag(r.target())))
}

/// The btfgen layer `push --btfgen` adds: the kernels named, cut to what the object needs.
fn btfgen_layer(
    object: Option<&package::Object>,
    name: &str,
    args: &[String],
) -> Result<Option<crate::btf::hub::BtfArchive>> {
    let kernels = package::btfgen::gather(args)?;
    if kernels.is_empty() {
        return Ok(None);
    }
    let Some(o) = object else {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("{name}: a Wasm app carries its kernel BTF inside (ecli reads one layer): pack {name} --btfgen DIR -o APP, then push APP"),
        ));
    };
    match package::btfgen::cut(&[o], &kernels)? {
        Some((set, summary)) => {
            eprintln!("edge-ecli: {name}: {summary} (a btfgen layer)");
            Ok(Some(set))
        }
        None => {
            eprintln!("edge-ecli: warning: {name} has no CO-RE relocations: it needs no kernel BTF, so no btfgen layer is pushed");
            Ok(None)
        }
    }
}

/// An artifact of our own format around a package that came without one.
pub fn wrap(f: &Fetched) -> Result<Artifact> {
    let kind = package::detect(&f.bytes)?;
    let layer = sha256_digest(&f.bytes);
    let (config, manifest, digest) =
        manifest_for(kind, &layer, f.bytes.len(), &title_of(&f.name), None);
    let parsed = Manifest::parse(&manifest, "our manifest")?;
    let (Some(config_desc), Some(layer_desc)) = (parsed.config.clone(), parsed.layers.first())
    else {
        return Err(Error::msg("our manifest lacks its config or layer"));
    };
    let blobs = vec![
        (config_desc, config.to_vec()),
        (layer_desc.clone(), f.bytes.clone()),
    ];
    Ok(Artifact {
        manifest,
        digest,
        media_type: OCI_MANIFEST.into(),
        parsed,
        blobs,
        signature: None,
    })
}

/// Writes a fetched package into the image layout `dir` under `tag` (default: the tag it
/// was fetched by, else `latest`), with its signatures. Returns the manifest digest and what
/// the user should know.
pub fn save_layout(
    f: &Fetched,
    dir: &str,
    tag: Option<&str>,
) -> Result<(String, String, Vec<String>)> {
    let tag = tag.or(f.tag.as_deref()).unwrap_or("latest").to_string();
    let mut notes = Vec::new();
    let a = match &f.artifact {
        Some(a) => a.clone(),
        None => {
            if f.signatures
                .iter()
                .any(|s| matches!(s, Signature::Minisign(_)))
            {
                notes.push("the .minisig is not carried into an OCI layout".to_string());
            }
            wrap(f)?
        }
    };
    write_layout(dir, &tag, &a)?;
    Ok((a.digest, tag, notes))
}
