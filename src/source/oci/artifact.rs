//! Which bytes of an OCI artifact are the package, for every publisher we read: eunomia ecli
//! (Wasm), bumblebee, bpfman bytecode images (a tar+gzip layer holding the object), Inspektor
//! Gadget (its eBPF layer; its own Wasm ABI is refused) and ours. Pure.

use super::manifest::*;
use super::store::Artifact;
use super::tar;
use crate::error::{Error, ErrorKind, Result};
use crate::source::MAX_PACKAGE_SIZE;

fn layer<'a>(a: &'a Artifact, media_type: &str) -> Option<&'a (Descriptor, Vec<u8>)> {
    a.blobs
        .iter()
        .skip(1)
        .find(|(d, _)| d.media_type.as_str() == media_type)
}

fn config_type(a: &Artifact) -> &str {
    a.parsed
        .config
        .as_ref()
        .map_or("", |c| c.media_type.as_str())
}

/// Is this a BPF ELF object (EM_BPF, little or big endian)?
fn is_bpf_elf(b: &[u8]) -> bool {
    b.len() > 20
        && b.starts_with(b"\x7fELF")
        && (u16::from_le_bytes([b[18], b[19]]) == 247 || u16::from_be_bytes([b[18], b[19]]) == 247)
}

/// The package bytes of `a`, and the file name its publisher gave it (if any).
pub fn package_of(a: &Artifact, what: &str) -> Result<(Vec<u8>, Option<String>)> {
    let title = |d: &Descriptor| {
        d.annotations
            .as_ref()
            .and_then(|x| x.title.as_ref())
            .map(|t| t.to_string())
    };
    let cfg = config_type(a);
    let direct = [
        WASM_LAYER,
        BUMBLEBEE_LAYER,
        EDGE_PACKAGE,
        EDGE_OBJECT,
        GADGET_EBPF,
    ];
    if let Some((d, b)) = direct.iter().find_map(|t| layer(a, t)) {
        return Ok((b.clone(), title(d)));
    }
    if layer(a, GADGET_WASM).is_some() || cfg == GADGET_CONFIG {
        return Err(Error::on(what, ErrorKind::Invalid, format!("an Inspektor Gadget image whose program is Wasm for Gadget's own ABI, which edge-ecli does not run; use a gadget with an eBPF layer ({GADGET_EBPF})"),
        ));
    }
    let tar_layer = a.blobs.iter().skip(1).find(|(d, _)| {
        TAR_GZIP_LAYERS.contains(&d.media_type.as_str()) || d.media_type.as_str() == TAR_LAYER
    });
    if let (Some((d, b)), true) = (
        tar_layer,
        cfg == OCI_IMAGE_CONFIG || cfg == DOCKER_IMAGE_CONFIG,
    ) {
        // bpfman bytecode images: the object is a file of the first layer.
        let lw = format!("{what} (layer {})", d.digest);
        let raw = if d.media_type.as_str() == TAR_LAYER {
            b.clone()
        } else {
            crate::codec::gzip::gunzip(b, MAX_PACKAGE_SIZE as usize, &lw)?
        };
        let files = tar::entries(&raw, &lw)?;
        let obj = files
            .iter()
            .filter(|e| is_bpf_elf(e.data))
            .min_by_key(|e| !e.path.ends_with(".o"))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Invalid,
                    format!("{lw}: the image holds no BPF object (an ELF file for EM_BPF)"),
                )
            })?;
        let name = obj.path.rsplit('/').next().map(str::to_string);
        return Ok((obj.data.to_vec(), name));
    }
    let mut types: Vec<&str> = a
        .blobs
        .iter()
        .skip(1)
        .map(|(d, _)| d.media_type.as_str())
        .collect();
    types.dedup();
    Err(Error::on(what, ErrorKind::Invalid, format!("not an eBPF package: config {cfg:?}, layers {types:?}; edge-ecli reads ecli Wasm ({WASM_LAYER}), bumblebee ({BUMBLEBEE_LAYER}), bpfman bytecode images (tar+gzip), Inspektor Gadget eBPF ({GADGET_EBPF}) and its own ({EDGE_PACKAGE}, {EDGE_OBJECT})"
        ),
    ))
}

/// The manifest `push` writes for a package of `kind` named `title`: ecli's format for Wasm
/// (one layer, so `ecli pull` reads it), ours for the rest. Returns the config blob, the
/// manifest bytes and its digest.
pub fn manifest_for(
    kind: crate::package::Kind,
    layer_digest: &str,
    size: usize,
    title: &str,
    btfgen: Option<(&str, usize)>,
) -> (&'static [u8], Vec<u8>, String) {
    use crate::package::Kind;
    let (config, layer_type, artifact) = match kind {
        Kind::Wasm => (WASM_CONFIG, WASM_LAYER, None),
        Kind::Json => (EMPTY_CONFIG, EDGE_PACKAGE, Some(EDGE_PACKAGE)),
        Kind::Elf => (EMPTY_CONFIG, EDGE_OBJECT, Some(EDGE_OBJECT)),
    };
    let title_a: &[(&str, &str)] = &[(TITLE, title)];
    let mut layers = vec![(layer_type, layer_digest, size, title_a)];
    if let Some((d, n)) = btfgen {
        layers.push((GADGET_BTFGEN, d, n, &[]));
    }
    let (m, d) = manifest_of(
        artifact,
        (config, EMPTY_DIGEST, EMPTY_JSON.len()),
        &layers,
        &[(TITLE, title)],
    );
    (EMPTY_JSON, m, d)
}

/// The kernel BTF set of an artifact (Inspektor Gadget's btfgen layer, or ours), if it has one.
pub fn btfgen_of(a: &Artifact) -> Option<Vec<u8>> {
    layer(a, GADGET_BTFGEN).map(|(_, b)| b.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::sha256_digest;

    fn artifact(config: &str, layers: &[(&str, &[u8])]) -> Artifact {
        let mut blobs = Vec::new();
        let mut text = format!("{{\"schemaVersion\":2,\"config\":{{\"mediaType\":\"{config}\",\"digest\":\"{EMPTY_DIGEST}\",\"size\":2}},\"layers\":[");
        for (i, (t, b)) in layers.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&format!(
                "{{\"mediaType\":\"{t}\",\"digest\":\"{}\",\"size\":{}}}",
                sha256_digest(b),
                b.len()
            ));
        }
        text.push_str("]}");
        let parsed = Manifest::parse(text.as_bytes(), "t").unwrap();
        blobs.push((parsed.config.clone().unwrap(), EMPTY_JSON.to_vec()));
        for (d, (_, b)) in parsed.layers.iter().zip(layers) {
            blobs.push((d.clone(), b.to_vec()));
        }
        Artifact {
            digest: sha256_digest(text.as_bytes()),
            manifest: text.into_bytes(),
            media_type: OCI_MANIFEST.into(),
            parsed,
            blobs,
            signature: None,
        }
    }

    #[test]
    fn reads_every_publishers_layout() {
        let mut elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x01\0\xf7\0".to_vec();
        elf.resize(64, 0);
        for (cfg, t) in [
            (WASM_CONFIG, WASM_LAYER),
            (BUMBLEBEE_CONFIG, BUMBLEBEE_LAYER),
            (EMPTY_CONFIG, EDGE_OBJECT),
            (GADGET_CONFIG, GADGET_EBPF),
        ] {
            let a = artifact(cfg, &[(t, &elf)]);
            assert_eq!(package_of(&a, "t").unwrap().0, elf, "{t}");
        }
        // bpfman: the object inside the first tar+gzip layer.
        let tgz = tar::testutil::gzip(&tar::testutil::tar(&[
            ("README", b"x"),
            ("bpf_x86_bpfel.o", &elf),
        ]));
        let a = artifact(OCI_IMAGE_CONFIG, &[(TAR_GZIP_LAYERS[0], &tgz)]);
        let (b, name) = package_of(&a, "t").unwrap();
        assert_eq!((b, name.as_deref()), (elf.clone(), Some("bpf_x86_bpfel.o")));
        let no_obj = tar::testutil::gzip(&tar::testutil::tar(&[("README", b"x")]));
        assert!(package_of(
            &artifact(OCI_IMAGE_CONFIG, &[(TAR_GZIP_LAYERS[0], &no_obj)]),
            "t"
        )
        .is_err());
        let e = package_of(&artifact(GADGET_CONFIG, &[(GADGET_WASM, b"\0asm")]), "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("Inspektor Gadget") && e.contains("Wasm"), "{e}");
        let e = package_of(
            &artifact("application/x-odd", &[("application/x-thing", b"z")]),
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("not an eBPF package") && e.contains("application/x-thing"),
            "{e}"
        );
    }
}
