//! OCI manifests and indexes (and Docker's v2 equivalents): the media types we read and write,
//! typed reading through serde-json-core with heapless collections (fixed schemas, bounded),
//! and the manifests we write, hashed exactly as written. Pure.

use serde::Deserialize;

use crate::codec::sha256_digest;
use crate::error::{Error, ErrorKind, Result};
use crate::text::push_json_str;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// What a registry is asked for (registry 2.8 answers MANIFEST_UNKNOWN without the OCI types).
pub const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

pub const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
/// The empty config blob `{}` and its digest.
pub const EMPTY_JSON: &[u8] = b"{}";
pub const EMPTY_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// eunomia ecli's Wasm artifacts (what we push for Wasm modules).
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v1+json";
pub const WASM_LAYER: &str = "application/vnd.wasm.content.layer.v1+wasm";
/// Ours, for eunomia package.json and raw BPF objects.
pub const EDGE_PACKAGE: &str = "application/vnd.edge-ecli.package.v1+json";
pub const EDGE_OBJECT: &str = "application/vnd.edge-ecli.bpf-object.v1+elf";
/// bumblebee.
pub const BUMBLEBEE_CONFIG: &str = "application/ebpf.oci.image.config.v1+json";
pub const BUMBLEBEE_LAYER: &str = "application/ebpf.oci.image.program.v1+binary";
/// Inspektor Gadget.
pub const GADGET_CONFIG: &str = "application/vnd.gadget.config.v1+yaml";
pub const GADGET_EBPF: &str = "application/vnd.gadget.ebpf.program.v1+binary";
pub const GADGET_WASM: &str = "application/vnd.gadget.wasm.program.v1+binary";
/// Kernel BTF for kernels without their own: a tar.gz in BTFHub layout. Inspektor Gadget's,
/// and the one edge-ecli writes beside a package (`push --btfgen`).
pub const GADGET_BTFGEN: &str = "application/vnd.gadget.btfgen.v1+binary";
/// Container image configs and layers (bpfman bytecode images).
pub const OCI_IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_IMAGE_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const TAR_GZIP_LAYERS: [&str; 2] = [
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
];
pub const TAR_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// cosign.
pub const COSIGN_LAYER: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

pub const TITLE: &str = "org.opencontainers.image.title";
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A manifest may not be larger than this.
pub const MAX_MANIFEST: u64 = 4 << 20;

// What serde-json-core reads: borrowed strings (a string with escapes is refused, which no
// registry writes for these fields) and bounded lists, so nothing large sits on the stack.
#[derive(Deserialize)]
struct RawPlatform<'a> {
    architecture: &'a str,
    os: &'a str,
    #[serde(default)]
    variant: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct RawAnnotations<'a> {
    #[serde(rename = "org.opencontainers.image.title", default)]
    title: Option<&'a str>,
    #[serde(rename = "org.opencontainers.image.ref.name", default)]
    ref_name: Option<&'a str>,
    #[serde(rename = "dev.cosignproject.cosign/signature", default)]
    cosign_signature: Option<&'a str>,
}

#[derive(Deserialize)]
struct RawDescriptor<'a> {
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    digest: &'a str,
    size: u64,
    #[serde(default, borrow)]
    platform: Option<RawPlatform<'a>>,
    #[serde(default, borrow)]
    annotations: Option<RawAnnotations<'a>>,
}

#[derive(Deserialize)]
struct RawManifest<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType", default)]
    media_type: Option<&'a str>,
    #[serde(rename = "artifactType", default)]
    artifact_type: Option<&'a str>,
    #[serde(default, borrow)]
    config: Option<RawDescriptor<'a>>,
    #[serde(default, borrow)]
    layers: heapless::Vec<RawDescriptor<'a>, 16>,
    #[serde(default, borrow)]
    manifests: heapless::Vec<RawDescriptor<'a>, 64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    pub variant: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations {
    pub title: Option<String>,
    pub ref_name: Option<String>,
    pub cosign_signature: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    pub platform: Option<Platform>,
    pub annotations: Option<Annotations>,
}

/// A manifest or an index: which one is told by `mediaType` or by which list it has.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub schema_version: u32,
    pub media_type: Option<String>,
    pub artifact_type: Option<String>,
    pub config: Option<Descriptor>,
    pub layers: Vec<Descriptor>,
    pub manifests: Vec<Descriptor>,
}

impl From<RawDescriptor<'_>> for Descriptor {
    fn from(r: RawDescriptor<'_>) -> Descriptor {
        Descriptor {
            media_type: r.media_type.into(),
            digest: r.digest.into(),
            size: r.size,
            platform: r.platform.map(|p| Platform {
                architecture: p.architecture.into(),
                os: p.os.into(),
                variant: p.variant.map(Into::into),
            }),
            annotations: r.annotations.map(|a| Annotations {
                title: a.title.map(Into::into),
                ref_name: a.ref_name.map(Into::into),
                cosign_signature: a.cosign_signature.map(Into::into),
            }),
        }
    }
}

/// Parses a list of descriptors (an image layout's index.json `manifests`).
pub fn parse_descriptors(bytes: &[u8], what: &str) -> Result<Vec<Descriptor>> {
    #[derive(Deserialize)]
    struct RawIndex<'a> {
        #[serde(default, borrow)]
        manifests: heapless::Vec<RawDescriptor<'a>, 64>,
    }
    let mut buf = vec![0u8; bytes.len()];
    let (i, _): (RawIndex, usize) =
        serde_json_core::from_slice_escaped(bytes, &mut buf).map_err(|e| {
            Error::on(
                what,
                ErrorKind::Invalid,
                format!(
                    "index.json is not an OCI image index ({e}; at most 64 manifests are read)"
                ),
            )
        })?;
    Ok(i.manifests.into_iter().map(Descriptor::from).collect())
}

impl Manifest {
    /// Parses manifest JSON; `what` names it in errors.
    pub fn parse(bytes: &[u8], what: &str) -> Result<Manifest> {
        let bad = |m: String| Error::on(what, ErrorKind::Network, m);
        if bytes.len() as u64 > MAX_MANIFEST {
            return Err(bad(format!(
                "the manifest is larger than {MAX_MANIFEST} bytes"
            )));
        }
        let mut buf = vec![0u8; bytes.len()];
        let (r, _): (RawManifest, usize) = serde_json_core::from_slice_escaped(bytes, &mut buf)
            .map_err(|e| {
                bad(format!(
                    "malformed manifest JSON ({e}); is this an OCI registry?"
                ))
            })?;
        if r.schema_version != 2 {
            return Err(bad(format!(
                "manifest schemaVersion {} (only 2 is read)",
                r.schema_version
            )));
        }
        let m = Manifest {
            schema_version: r.schema_version,
            media_type: r.media_type.map(Into::into),
            artifact_type: r.artifact_type.map(Into::into),
            config: r.config.map(Descriptor::from),
            layers: r.layers.into_iter().map(Descriptor::from).collect(),
            manifests: r.manifests.into_iter().map(Descriptor::from).collect(),
        };
        for d in m.layers.iter().chain(&m.manifests).chain(m.config.iter()) {
            if !crate::codec::valid_digest(&d.digest) {
                return Err(bad(format!(
                    "a descriptor has the digest {:?}, not sha256:<64 hex>",
                    d.digest
                )));
            }
        }
        Ok(m)
    }

    pub fn is_index(&self, content_type: Option<&str>) -> bool {
        let t = self.media_type.as_deref().or(content_type).unwrap_or("");
        t == OCI_INDEX || t == DOCKER_LIST || (self.config.is_none() && !self.manifests.is_empty())
    }

    /// The manifest of an index that runs here: os linux and this architecture.
    pub fn select_platform(&self, what: &str) -> Result<&Descriptor> {
        let arch = oci_arch();
        self.manifests
            .iter()
            .find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == arch)
            })
            .ok_or_else(|| {
                let have: Vec<String> = self
                    .manifests
                    .iter()
                    .filter_map(|d| d.platform.as_ref())
                    .map(|p| format!("{}/{}", p.os, p.architecture))
                    .collect();
                Error::on(
                    what,
                    ErrorKind::NotFound,
                    format!(
                        "the index has no linux/{arch} manifest (it has: {})",
                        if have.is_empty() {
                            "none with a platform".into()
                        } else {
                            have.join(", ")
                        }
                    ),
                )
            })
    }
}

/// This build's architecture as OCI names it.
pub fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "riscv64" => "riscv64",
        a => a,
    }
}

/// A descriptor as JSON.
pub fn write_descriptor(
    o: &mut String,
    media_type: &str,
    digest: &str,
    size: usize,
    annotations: &[(&str, &str)],
) {
    o.push_str("{\"mediaType\":");
    push_json_str(o, media_type);
    o.push_str(",\"digest\":");
    push_json_str(o, digest);
    o.push_str(&format!(",\"size\":{size}"));
    if !annotations.is_empty() {
        o.push_str(",\"annotations\":{");
        for (i, (k, v)) in annotations.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            push_json_str(o, k);
            o.push(':');
            push_json_str(o, v);
        }
        o.push('}');
    }
    o.push('}');
}

/// An image manifest with one config and one layer: the bytes, which are what gets hashed.
pub fn one_layer_manifest(
    artifact_type: Option<&str>,
    config: (&str, &str, usize),
    layer: (&str, &str, usize),
    layer_annotations: &[(&str, &str)],
    annotations: &[(&str, &str)],
) -> (Vec<u8>, String) {
    manifest_of(
        artifact_type,
        config,
        &[(layer.0, layer.1, layer.2, layer_annotations)],
        annotations,
    )
}

/// A layer of a manifest: media type, digest, size, annotations.
pub type LayerDesc<'a> = (&'a str, &'a str, usize, &'a [(&'a str, &'a str)]);

/// An OCI image manifest with these layers.
pub fn manifest_of(
    artifact_type: Option<&str>,
    config: (&str, &str, usize),
    layers: &[LayerDesc],
    annotations: &[(&str, &str)],
) -> (Vec<u8>, String) {
    let mut o = String::from("{\"schemaVersion\":2,\"mediaType\":");
    push_json_str(&mut o, OCI_MANIFEST);
    if let Some(t) = artifact_type {
        o.push_str(",\"artifactType\":");
        push_json_str(&mut o, t);
    }
    o.push_str(",\"config\":");
    write_descriptor(&mut o, config.0, config.1, config.2, &[]);
    o.push_str(",\"layers\":[");
    for (i, (t, d, n, a)) in layers.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        write_descriptor(&mut o, t, d, *n, a);
    }
    o.push(']');
    if !annotations.is_empty() {
        o.push_str(",\"annotations\":{");
        for (i, (k, v)) in annotations.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            push_json_str(&mut o, k);
            o.push(':');
            push_json_str(&mut o, v);
        }
        o.push('}');
    }
    o.push('}');
    let digest = sha256_digest(o.as_bytes());
    (o.into_bytes(), digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_writes_and_refuses_bad_manifests() {
        let layer = sha256_digest(b"x");
        let (bytes, digest) = one_layer_manifest(
            Some(EDGE_OBJECT),
            (EMPTY_CONFIG, EMPTY_DIGEST, 2),
            (EDGE_OBJECT, &layer, 1),
            &[(TITLE, "x.bpf.o")],
            &[],
        );
        assert_eq!(digest, sha256_digest(&bytes));
        let m = Manifest::parse(&bytes, "t").unwrap();
        assert!(!m.is_index(None));
        assert_eq!(m.layers[0].digest, layer);
        assert_eq!(
            m.layers[0].annotations.as_ref().unwrap().title.as_deref(),
            Some("x.bpf.o")
        );
        assert_eq!(m.artifact_type.as_deref(), Some(EDGE_OBJECT));
        assert_eq!(sha256_digest(EMPTY_JSON), EMPTY_DIGEST);
        for bad in [&b"{"[..], b"[]", b"{\"schemaVersion\":1}", b"{\"schemaVersion\":2,\"layers\":[{\"mediaType\":\"a\",\"digest\":\"md5:x\",\"size\":1}]}"] {
            assert!(Manifest::parse(bad, "t").is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let many: String = (0..17)
            .map(|_| format!("{{\"mediaType\":\"a\",\"digest\":\"{layer}\",\"size\":1}}"))
            .collect::<Vec<_>>()
            .join(",");
        let m = format!("{{\"schemaVersion\":2,\"layers\":[{many}]}}");
        assert!(
            Manifest::parse(m.as_bytes(), "t").is_err(),
            "more layers than we hold"
        );
    }

    #[test]
    fn picks_this_platform_from_an_index() {
        let d = sha256_digest(b"m");
        let entry = |arch: &str| {
            format!("{{\"mediaType\":\"{OCI_MANIFEST}\",\"digest\":\"{d}\",\"size\":1,\"platform\":{{\"architecture\":\"{arch}\",\"os\":\"linux\"}}}}")
        };
        let idx = format!(
            "{{\"schemaVersion\":2,\"mediaType\":\"{OCI_INDEX}\",\"manifests\":[{},{}]}}",
            entry("s390x"),
            entry(oci_arch())
        );
        let m = Manifest::parse(idx.as_bytes(), "t").unwrap();
        assert!(m.is_index(None));
        assert_eq!(
            m.select_platform("t")
                .unwrap()
                .platform
                .as_ref()
                .unwrap()
                .architecture,
            oci_arch()
        );
        let only = format!("{{\"schemaVersion\":2,\"manifests\":[{}]}}", entry("s390x"));
        let e = Manifest::parse(only.as_bytes(), "t")
            .unwrap()
            .select_platform("t")
            .unwrap_err();
        assert!(e.to_string().contains("linux/s390x"), "{e}");
    }
}
