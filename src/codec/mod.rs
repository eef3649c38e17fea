//! General codecs every layer uses (JSON, base64, PEM, gzip, content digests): pure, bounded, and
//! knowing nothing of packages, registries or trust.

pub mod base64;
pub mod digest;
pub mod gzip;
pub mod json;
pub mod pem;
pub mod tar;
pub mod xz;

pub use digest::{blob_path, sha256_digest, valid_digest, Digest};
