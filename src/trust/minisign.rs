//! minisign signatures (jedisct1/minisign): Ed25519 over the file (`Ed`, legacy) or over its
//! BLAKE2b-512 (`ED`, the default since 0.10), plus the global signature over the trusted
//! comment. Pure: keys and signatures are text the caller read.

use ring::signature::{UnparsedPublicKey, ED25519};

use super::blake2b::blake2b_512;
use crate::codec::base64;

/// A minisign public key: its 8-byte id and the Ed25519 key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub id: [u8; 8],
    pub key: [u8; 32],
}

/// The base64 line of a minisign file: the first line that is not a comment.
fn payload_line(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
}

fn key_id_hex(id: &[u8; 8]) -> String {
    id.iter().rev().map(|b| format!("{b:02X}")).collect()
}

impl PublicKey {
    /// Parses a public key file (`untrusted comment: ...` then `RW...`), or the bare base64
    /// line.
    pub fn parse(text: &str) -> Result<PublicKey, String> {
        let line = payload_line(text).ok_or("no key in it")?;
        let raw = base64::decode(line).map_err(|_| "not a minisign public key (bad base64)")?;
        if raw.len() != 42 || &raw[..2] != b"Ed" {
            return Err("not a minisign public key (expected 42 bytes starting with Ed)".into());
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&raw[2..10]);
        let mut key = [0u8; 32];
        key.copy_from_slice(&raw[10..42]);
        Ok(PublicKey { id, key })
    }

    pub fn id_hex(&self) -> String {
        key_id_hex(&self.id)
    }
}

/// Why a minisign signature was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    Malformed(&'static str),
    /// Made with a key other than this one (its id).
    OtherKey(String),
    BadSignature,
    BadTrustedComment,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Malformed(m) => write!(f, "malformed .minisig: {m}"),
            Refusal::OtherKey(id) => write!(f, "signed with key {id}, not a trusted key"),
            Refusal::BadSignature => {
                f.write_str("the signature does not match the file (tampered, or another file)")
            }
            Refusal::BadTrustedComment => {
                f.write_str("the trusted comment's signature does not verify (tampered .minisig)")
            }
        }
    }
}

/// Verifies `sig_text` (a .minisig file) over `data` with `key`. Returns the trusted comment.
pub fn verify(key: &PublicKey, sig_text: &str, data: &[u8]) -> Result<String, Refusal> {
    let mut lines = sig_text.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut first = lines.next().ok_or(Refusal::Malformed("empty"))?;
    if first.starts_with("untrusted comment:") {
        first = lines
            .next()
            .ok_or(Refusal::Malformed("no signature line"))?;
    }
    let raw = base64::decode(first).map_err(|_| Refusal::Malformed("bad base64"))?;
    if raw.len() != 74 {
        return Err(Refusal::Malformed("the signature is not 74 bytes"));
    }
    let prehashed = match &raw[..2] {
        b"Ed" => false,
        b"ED" => true,
        _ => return Err(Refusal::Malformed("unknown signature algorithm")),
    };
    let mut id = [0u8; 8];
    id.copy_from_slice(&raw[2..10]);
    if id != key.id {
        return Err(Refusal::OtherKey(key_id_hex(&id)));
    }
    let sig = &raw[10..74];
    let pk = UnparsedPublicKey::new(&ED25519, &key.key);
    let ok = if prehashed {
        pk.verify(&blake2b_512(data), sig)
    } else {
        pk.verify(data, sig)
    };
    ok.map_err(|_| Refusal::BadSignature)?;
    let comment = lines
        .next()
        .and_then(|l| l.strip_prefix("trusted comment: "))
        .ok_or(Refusal::Malformed("no trusted comment"))?;
    let global = lines
        .next()
        .and_then(|l| base64::decode(l).ok())
        .filter(|g| g.len() == 64)
        .ok_or(Refusal::Malformed("no global signature"))?;
    let mut signed = sig.to_vec();
    signed.extend_from_slice(comment.as_bytes());
    pk.verify(&signed, &global)
        .map_err(|_| Refusal::BadTrustedComment)?;
    Ok(comment.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    /// Signs like minisign does, with a key made here.
    fn sign(kp: &Ed25519KeyPair, id: [u8; 8], data: &[u8], prehash: bool, comment: &str) -> String {
        let msg = if prehash {
            blake2b_512(data).to_vec()
        } else {
            data.to_vec()
        };
        let sig = kp.sign(&msg);
        let mut raw = if prehash {
            b"ED".to_vec()
        } else {
            b"Ed".to_vec()
        };
        raw.extend_from_slice(&id);
        raw.extend_from_slice(sig.as_ref());
        let mut g = sig.as_ref().to_vec();
        g.extend_from_slice(comment.as_bytes());
        let global = kp.sign(&g);
        format!(
            "untrusted comment: test\n{}\ntrusted comment: {comment}\n{}\n",
            base64::encode(&raw),
            base64::encode(global.as_ref())
        )
    }

    #[test]
    fn verifies_both_algorithms_and_refuses_tampering() {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let kp = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let id = [1, 2, 3, 4, 5, 6, 7, 8];
        let mut raw = b"Ed".to_vec();
        raw.extend_from_slice(&id);
        raw.extend_from_slice(kp.public_key().as_ref());
        let key =
            PublicKey::parse(&format!("untrusted comment: k\n{}\n", base64::encode(&raw))).unwrap();
        assert_eq!(key.id_hex(), "0807060504030201");
        for prehash in [true, false] {
            let s = sign(&kp, id, b"package bytes", prehash, "timestamp:1 file:p");
            assert_eq!(
                verify(&key, &s, b"package bytes").unwrap(),
                "timestamp:1 file:p"
            );
            assert_eq!(
                verify(&key, &s, b"package bytez"),
                Err(Refusal::BadSignature)
            );
            let forged = s.replace("file:p", "file:q");
            assert_eq!(
                verify(&key, &forged, b"package bytes"),
                Err(Refusal::BadTrustedComment)
            );
        }
        let other = sign(&kp, [9; 8], b"x", true, "c");
        assert!(matches!(
            verify(&key, &other, b"x"),
            Err(Refusal::OtherKey(_))
        ));
        assert!(verify(&key, "garbage", b"x").is_err());
        assert!(PublicKey::parse("RWQ=").is_err());
    }
}
