//! Content digests as OCI and our policies write them: `sha256:<64 lowercase hex>`. Pure.

/// A digest as `sha256:<64 hex>`.
pub fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    })
}

/// A checked `sha256:<64 lowercase hex>` digest, whose hex part can name a file safely.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Digest(String);

impl Digest {
    /// `d` when it is a valid digest.
    pub fn parse(d: &str) -> Option<Digest> {
        valid_digest(d).then(|| Digest(d.to_string()))
    }

    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Digest {
        Digest(sha256_digest(data))
    }

    /// The 64 hex digits (an OCI blob's file name under `blobs/sha256/`).
    pub fn hex(&self) -> &str {
        self.0.strip_prefix("sha256:").unwrap_or(&self.0)
    }

    /// `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The file of blob `digest` in an OCI `blobs/sha256` directory; an error (never a path
/// outside `dir`) for anything but a valid digest.
pub fn blob_path(dir: &std::path::Path, digest: &str) -> crate::error::Result<std::path::PathBuf> {
    let d = Digest::parse(digest).ok_or_else(|| {
        crate::error::Error::invalid(format!(
            "bad digest {digest:?}: expected sha256:<64 lowercase hex digits>"
        ))
    })?;
    Ok(dir.join(d.hex()))
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut s = String::from("sha256:");
    crate::text::push_hex(&mut s, d.as_ref());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_valid_digests_name_blob_files() {
        let d = Digest::of(b"abc");
        assert_eq!(
            d.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Digest::parse(d.as_str()), Some(d.clone()));
        let dir = std::path::Path::new("/c/blobs/sha256");
        assert_eq!(blob_path(dir, d.as_str()).unwrap(), dir.join(d.hex()));
        for bad in [
            "",
            "sha256:",
            "sha256:../../etc/passwd",
            "md5:abc",
            "sha256:AB",
        ] {
            assert!(Digest::parse(bad).is_none(), "{bad}");
            let e = blob_path(dir, bad).unwrap_err().to_string();
            assert!(e.starts_with("bad digest"), "{e}");
        }
    }
}
