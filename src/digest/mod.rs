//! Content manifests: walk a model or dataset, hash every file (or shard) in parallel with bounded
//! memory, and order the results exactly as OpenSSF model signing (`model_signing`) does.
//!
//! ```ignore
//! // compiled as the unit test `digest::doc_example`
//! use mlsign::digest::{HashConfig, Manifest};
//! let m = Manifest::from_path("models/bert".as_ref(), &HashConfig::default()).unwrap();
//! println!("{} files, root {}", m.resources().len(), m.root_digest_hex());
//! ```

pub mod cache;
mod config;
mod diff;
mod error;
mod finding;
mod hash;
mod manifest;
mod schedule;
mod sha256ni;
mod sigbus;
mod walk;

pub(crate) use crate::util::sha256;
pub use config::{HashAlgorithm, HashConfig, Method, NoProgress, Progress, GIT_PATHS};
pub use diff::{diff, Difference};
pub use error::Error;
pub use manifest::root_digest_of as manifest_root;
pub use manifest::{
    check_resource_name, pieces, ListedManifest, Manifest, Resource, ResourceRef, ResourceSource,
    Reuse,
};
pub mod partition;
pub mod signed;
#[cfg(test)]
pub(crate) use signed::alloc_count;
pub use walk::{normalize_ignore, walk, walk_listing, Entry, FileStat, Listing};

/// The raw SHA-256 kernels on in-memory data, for `benches/sha256_kernels.rs` only: it measures
/// the SHA unit's ceiling so the signing benchmark can say how close the file path gets to it.
#[doc(hidden)]
pub mod kernels {
    use super::sha256ni::{self, Sha256Ni};

    /// SHA-256 through `sha2` (one stream; SHA extensions picked at run time): what every
    /// single-stream hash in mlsign runs.
    pub fn sha256_sha2(data: &[u8]) -> [u8; 32] {
        crate::util::sha256(data)
    }

    /// One stream on the SHA extensions; `None` where the CPU lacks them.
    pub fn sha256_ni(data: &[u8]) -> Option<[u8; 32]> {
        sha256ni::available().then(|| {
            let mut h = Sha256Ni::new();
            h.update(data);
            h.finish()
        })
    }

    /// Two streams interleaved on the SHA extensions, as the hashing workers run them.
    pub fn sha256_ni_pair(a: &[u8], b: &[u8]) -> Option<([u8; 32], [u8; 32])> {
        sha256ni::available().then(|| {
            let (mut ha, mut hb) = (Sha256Ni::new(), Sha256Ni::new());
            Sha256Ni::update2(&mut ha, a, &mut hb, b);
            (ha.finish(), hb.finish())
        })
    }
}

/// The module-level usage example, compiled (doc tests are off: see Cargo.toml).
#[cfg(test)]
#[allow(dead_code)]
fn doc_example() {
    let m = Manifest::from_path("models/bert".as_ref(), &HashConfig::default()).unwrap();
    println!(
        "{} files, root {}",
        m.resources().len(),
        m.root_digest_hex()
    );
}
