//! Keys, signatures and policies: PEM and minisign key files, minisign signature files,
//! cosign payloads and their base64 DER signatures, the policy file, and the policy's verdict
//! on a package carrying fuzzed signatures.
#![no_main]

use std::sync::OnceLock;

use edge_ecli::trust::{cosign, minisign, Evidence, Key, Policy, Signature};
use libfuzzer_sys::fuzz_target;

const COSIGN_PUB: &str = include_str!("../keys/cosign.pub");
const MINISIGN_PUB: &str = include_str!("../keys/minisign.pub");

fn policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| Policy {
        keys: vec![
            (
                "cosign.pub".into(),
                Key::Cosign(cosign::PublicKey::parse(COSIGN_PUB).unwrap()),
            ),
            (
                "minisign.pub".into(),
                Key::Minisign(minisign::PublicKey::parse(MINISIGN_PUB).unwrap()),
            ),
        ],
        require_signature: true,
        allow_digests: Vec::new(),
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    // The signed data and the signature text, split at the first NUL.
    let (signed, sig) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (
            &rest[..i],
            String::from_utf8_lossy(&rest[i + 1..]).into_owned(),
        ),
        None => (rest, String::new()),
    };
    match mode % 4 {
        0 => {
            let _ = cosign::PublicKey::parse(&text);
            let _ = minisign::PublicKey::parse(&text);
            let _ = edge_ecli::codec::pem::blocks(&text, "PUBLIC KEY");
        }
        1 => {
            let Some((_, Key::Minisign(k))) = policy().keys.get(1) else {
                unreachable!()
            };
            let _ = minisign::verify(k, &sig, signed);
            let _ = minisign::verify(k, &text, b"hello package");
        }
        2 => {
            let Some((_, Key::Cosign(k))) = policy().keys.first() else {
                unreachable!()
            };
            let digest = edge_ecli::codec::sha256_digest(b"manifest");
            let _ = cosign::verify(k, signed, &sig, &digest);
            let _ = Policy::parse(rest, "/nonexistent/policy.json");
        }
        _ => {
            let content_digest = edge_ecli::codec::sha256_digest(signed);
            let sigs = [
                Signature::Minisign(sig.clone()),
                Signature::Cosign {
                    payload: signed.to_vec(),
                    signature: sig.clone(),
                },
            ];
            let ev = Evidence {
                bytes: signed,
                content_digest: &content_digest,
                manifest_digest: Some(&content_digest),
                signatures: &sigs,
            };
            let _ = policy().check("fuzz", &ev);
        }
    }
});
