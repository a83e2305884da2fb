//! Content manifests: walk a model or dataset, hash every file (or shard) in parallel with bounded
//! memory, and order the results exactly as OpenSSF model signing (`model_signing`) does.
//!
//! ```no_run
//! use mlsign::digest::{HashConfig, Manifest};
//! let m = Manifest::from_path("models/bert".as_ref(), &HashConfig::default()).unwrap();
//! println!("{} files, root {}", m.resources().len(), m.root_digest_hex());
//! ```

mod config;
mod diff;
mod error;
mod hash;
mod manifest;
mod sha256ni;
mod sigbus;
mod walk;

pub use config::{HashAlgorithm, HashConfig, Method, NoProgress, Progress, GIT_PATHS};
pub use diff::{diff, Difference};
pub use error::Error;
pub(crate) use hash::sha256;
pub use manifest::root_digest_of as manifest_root;
pub use manifest::{check_resource_name, Manifest, Resource};
pub use walk::{normalize_ignore, Entry};
