//! What registries and layouts hand us: manifests and indexes (and the platform choice),
//! layout index.json, the layers a package is taken from (tar, gzip, every media type of the
//! formats read), references, auth challenges, token answers and credential files.
#![no_main]

use edge_ecli::source::oci::{artifact, auth, manifest, reference, store, tar};
use libfuzzer_sys::fuzz_target;

/// Separates the manifest from the blobs of its descriptors, in order.
const SEP: &[u8] = b"\n--blob--\n";

fn split<'a>(mut data: &'a [u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    while let Some(i) = data.windows(SEP.len()).position(|w| w == SEP) {
        parts.push(&data[..i]);
        data = &data[i + SEP.len()..];
    }
    parts.push(data);
    parts
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match mode % 5 {
        0 => {
            if let Ok(m) = manifest::Manifest::parse(rest, "fuzz") {
                let _ = m.is_index(Some(manifest::OCI_INDEX));
                let _ = m.is_index(None);
                let _ = m.select_platform("fuzz");
            }
            let _ = manifest::parse_descriptors(rest, "fuzz");
        }
        1 => {
            // A manifest and its blobs, as if their digests matched (the fetch checks those):
            // which layer is the package, and its decoding.
            let parts = split(rest);
            let Ok(parsed) = manifest::Manifest::parse(parts[0], "fuzz") else {
                return;
            };
            let blobs = parsed
                .config
                .iter()
                .chain(parsed.layers.iter())
                .zip(parts[1..].iter())
                .map(|(d, b)| (d.clone(), b.to_vec()))
                .collect();
            let a = store::Artifact {
                manifest: parts[0].to_vec(),
                digest: edge_ecli::codec::sha256_digest(parts[0]),
                media_type: parsed.media_type.clone().unwrap_or_default(),
                parsed,
                blobs,
                signature: None,
            };
            let _ = artifact::package_of(&a, "fuzz");
            let _ = a.signatures();
        }
        2 => {
            let _ = tar::entries(rest, "fuzz");
            if let Ok(t) = edge_ecli::codec::gzip::gunzip(rest, 1 << 20, "fuzz") {
                let _ = tar::entries(&t, "fuzz");
            }
        }
        3 => {
            let _ = auth::parse_challenge(&text);
            let _ = auth::token_of(rest, "fuzz");
            let _ = auth::credentials_in(rest, "registry.example:5000", "fuzz");
        }
        _ => {
            let _ = reference::looks_like(&text);
            if let Ok(r) = reference::Reference::parse(&text) {
                let _ = (r.target(), r.name(), r.host());
                let _ = r.with_tag("latest");
            }
        }
    }
});
