//! cosign key-based signatures of OCI artifacts: the signature manifest (tag
//! `sha256-<hex>.sig`) has one `simplesigning` layer per signature; its blob is the payload, and
//! the layer's annotation `dev.cosignproject.cosign/signature` is base64 DER ECDSA P-256 over
//! SHA-256 of the payload. The payload names the manifest digest it signs. Pure.

use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use serde::Deserialize;

use super::pem;
use crate::codec::base64;

/// The type the payload's `critical.type` must have.
pub const PAYLOAD_TYPE: &str = "cosign container image signature";

/// A cosign public key (PEM `PUBLIC KEY`, EC P-256): the uncompressed point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(pub Vec<u8>);

impl PublicKey {
    pub fn parse(text: &str) -> Result<PublicKey, String> {
        let der = crate::codec::pem::blocks(text, "PUBLIC KEY");
        let first = der.first().ok_or("no PEM PUBLIC KEY block in it")?;
        pem::p256_point(first).map(PublicKey).ok_or_else(|| {
            "not an ECDSA P-256 public key (cosign generate-key-pair makes one)".into()
        })
    }
}

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    image: Image,
    #[serde(rename = "type")]
    kind: heapless::String<64>,
}

#[derive(Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    digest: heapless::String<80>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    BadSignature,
    Malformed(String),
    /// The payload signs another manifest (its digest).
    OtherDigest(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::BadSignature => {
                f.write_str("the cosign signature does not verify with the trusted key")
            }
            Refusal::Malformed(m) => write!(f, "malformed cosign signature: {m}"),
            Refusal::OtherDigest(d) => {
                write!(f, "the cosign signature is for {d}, not this artifact")
            }
        }
    }
}

/// Verifies one signature (`payload` and its base64 DER `signature`) of the manifest with
/// digest `manifest_digest`.
pub fn verify(
    key: &PublicKey,
    payload: &[u8],
    signature: &str,
    manifest_digest: &str,
) -> Result<(), Refusal> {
    let sig = base64::decode(signature.trim())
        .map_err(|_| Refusal::Malformed("the signature annotation is not base64".into()))?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &key.0)
        .verify(payload, &sig)
        .map_err(|_| Refusal::BadSignature)?;
    let mut buf = vec![0u8; payload.len().min(1 << 16)];
    let (p, _): (Payload, usize) = serde_json_core::from_slice_escaped(payload, &mut buf)
        .map_err(|e| Refusal::Malformed(format!("payload JSON: {e}")))?;
    if p.critical.kind.as_str() != PAYLOAD_TYPE {
        return Err(Refusal::Malformed(format!(
            "payload type is {:?}",
            p.critical.kind.as_str()
        )));
    }
    if p.critical.image.digest.as_str() != manifest_digest {
        return Err(Refusal::OtherDigest(p.critical.image.digest.to_string()));
    }
    Ok(())
}

/// The payload cosign signs for `reference` at `digest` (what `push` would sign; tests use it).
pub fn payload(reference: &str, digest: &str) -> String {
    let mut o = String::from("{\"critical\":{\"identity\":{\"docker-reference\":");
    crate::text::push_json_str(&mut o, reference);
    o.push_str("},\"image\":{\"docker-manifest-digest\":");
    crate::text::push_json_str(&mut o, digest);
    o.push_str("},\"type\":\"cosign container image signature\"},\"optional\":null}");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

    #[test]
    fn verifies_payloads_for_the_right_digest_only() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let key = PublicKey(kp.public_key().as_ref().to_vec());
        let d = format!("sha256:{}", "a".repeat(64));
        let p = payload("localhost:5000/tools/x", &d);
        let sig = base64::encode(kp.sign(&rng, p.as_bytes()).unwrap().as_ref());
        assert_eq!(verify(&key, p.as_bytes(), &sig, &d), Ok(()));
        let other = format!("sha256:{}", "b".repeat(64));
        assert_eq!(
            verify(&key, p.as_bytes(), &sig, &other),
            Err(Refusal::OtherDigest(d.clone()))
        );
        let tampered = p.replace("tools/x", "tools/y");
        assert_eq!(
            verify(&key, tampered.as_bytes(), &sig, &d),
            Err(Refusal::BadSignature)
        );
        // Unknown members (optional annotations) are skipped.
        let extra = p.replace(
            "\"optional\":null",
            "\"optional\":{\"a\":[1,{\"b\":\"c\"}]}",
        );
        let sig2 = base64::encode(kp.sign(&rng, extra.as_bytes()).unwrap().as_ref());
        assert_eq!(verify(&key, extra.as_bytes(), &sig2, &d), Ok(()));
        assert!(PublicKey::parse("nothing").is_err());
    }
}
