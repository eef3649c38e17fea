//! Content digests as OCI and our policies write them: `sha256:<64 lowercase hex>`. Pure.

/// A digest as `sha256:<64 hex>`.
pub fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    })
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut s = String::from("sha256:");
    crate::text::push_hex(&mut s, d.as_ref());
    s
}
