//! The little DER it takes to read an EC public key (SubjectPublicKeyInfo); PEM blocks are
//! `codec::pem`.
//! Pure.

/// One DER TLV: (tag, contents, rest).
fn tlv(d: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, d) = d.split_first()?;
    let (&l0, mut d) = d.split_first()?;
    let len = if l0 < 0x80 {
        l0 as usize
    } else {
        let n = (l0 & 0x7f) as usize;
        if n == 0 || n > 3 || d.len() < n {
            return None;
        }
        let mut l = 0usize;
        for &b in &d[..n] {
            l = (l << 8) | b as usize;
        }
        d = &d[n..];
        l
    };
    (d.len() >= len).then(|| (tag, &d[..len], &d[len..]))
}

const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// The uncompressed P-256 point (65 bytes, 0x04 || X || Y) of a SubjectPublicKeyInfo.
pub fn p256_point(spki: &[u8]) -> Option<Vec<u8>> {
    let (0x30, seq, _) = tlv(spki)? else {
        return None;
    };
    let (0x30, alg, rest) = tlv(seq)? else {
        return None;
    };
    let (0x06, oid, params) = tlv(alg)? else {
        return None;
    };
    let (0x06, curve, _) = tlv(params)? else {
        return None;
    };
    if oid != OID_EC_PUBLIC_KEY || curve != OID_P256 {
        return None;
    }
    let (0x03, bits, _) = tlv(rest)? else {
        return None;
    };
    let (&unused, point) = bits.split_first()?;
    (unused == 0 && point.len() == 65 && point[0] == 4).then(|| point.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    // A P-256 public key made with `openssl ecparam -name prime256v1 -genkey | openssl ec -pubout`.
    const PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAECtZrTVaadhKME7wtGL3t26tAugWp
+igM5hzSgWsu6MwUM5GtkLFxDQ60scqHKMu525BQE7B5P9tK7uQZQMSr8Q==
-----END PUBLIC KEY-----
";

    #[test]
    fn reads_p256_keys_and_refuses_others() {
        let der = crate::codec::pem::blocks(PUB, "PUBLIC KEY");
        assert_eq!(der.len(), 1);
        let p = p256_point(&der[0]).unwrap();
        assert_eq!((p.len(), p[0]), (65, 4));
        assert!(p256_point(&der[0][..40]).is_none());
        let mut other = der[0].clone();
        other[20] ^= 1; // the curve OID
        assert!(p256_point(&other).is_none());
        assert!(crate::codec::pem::blocks("no pem here", "PUBLIC KEY").is_empty());
    }
}
