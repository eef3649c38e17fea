//! OCI distribution: references, manifests and the media types we read and write, where
//! artifacts are stored (registries, image layouts, oci-archives, the cache), and which bytes
//! of an artifact are the package.

pub mod artifact;
pub mod auth;
pub mod manifest;
pub mod publish;
pub mod reference;
pub mod registry;
pub mod store;
// Tar moved to codec (kernel BTF sets read it too); the old path stays for callers.
pub use crate::codec::tar;
