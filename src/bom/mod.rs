//! CycloneDX 1.6 ML-BOMs: build one for a model directory (model card, per-file hashes,
//! datasets with hash-linked lineage, lockfile dependencies), validate it against the official
//! schema plus reference checks, re-hash what it names, sign it as an in-toto attestation, and
//! render it for auditors.
//!
//! ```ignore
//! // compiled as the unit test `bom::doc_example`
//! use mlsign::bom::{build, BuildOptions};
//! let bom = build(&BuildOptions::new("models/bert".into())).unwrap();
//! println!("{}", mlsign::bom::to_json(&bom).unwrap());
//! ```

pub mod build;
pub mod cyclonedx;
pub mod drift;
mod finding;
pub use finding::attestation_finding;
pub mod lockfiles;
pub mod modelcard;
pub mod report;
pub mod show;
pub mod sign;
pub mod validate;
mod yaml;

pub use build::{build, BuildOptions, RootKind};
pub use cyclonedx::Bom;

use std::path::Path;

/// Predicate type of a BOM signed as an in-toto attestation.
pub const PREDICATE_TYPE: &str = "https://cyclonedx.org/bom";

#[derive(Debug, thiserror::Error)]
pub enum BomError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("not a CycloneDX document (bomFormat must be \"CycloneDX\" and specVersion a string)")]
    NotCycloneDx,
    #[error("CycloneDX {0} is not supported: mlsign validates and reads spec 1.6")]
    UnsupportedSpec(String),
    #[error("BOM does not match mlsign's reading of CycloneDX 1.6: {0}")]
    Shape(String),
    #[error(transparent)]
    Lock(#[from] lockfiles::LockError),
    #[error(transparent)]
    Lineage(#[from] crate::dataset::LineageError),
    #[error("{0}")]
    Hash(String),
    #[error("{0}")]
    Usage(String),
    /// A dataset of the lineage re-hashes to another digest than the one recorded.
    #[error(
        "{}: dataset {label:?} ({path}) no longer matches its recorded digest {recorded}",
        lineage.display()
    )]
    DatasetChanged {
        lineage: std::path::PathBuf,
        label: String,
        path: String,
        /// Short form of the recorded digest.
        recorded: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Serialize a BOM: two-space indent, trailing newline, fields in declaration order.
pub fn to_json(bom: &Bom) -> Result<String, BomError> {
    let mut s = serde_json::to_string_pretty(bom).map_err(|e| BomError::Shape(e.to_string()))?;
    s.push('\n');
    Ok(s)
}

/// Parse BOM bytes into mlsign's types (lenient about fields mlsign does not model).
pub fn from_json(bytes: &[u8]) -> Result<Bom, BomError> {
    let v = validate::parse(bytes)?;
    match (v.get("bomFormat"), v.get("specVersion")) {
        (Some(serde_json::Value::String(f)), Some(serde_json::Value::String(s)))
            if f == "CycloneDX" && s == "1.6" => {}
        (Some(serde_json::Value::String(f)), Some(serde_json::Value::String(s)))
            if f == "CycloneDX" =>
        {
            return Err(BomError::UnsupportedSpec(s.clone()))
        }
        _ => return Err(BomError::NotCycloneDx),
    }
    serde_json::from_value(v).map_err(|e| BomError::Shape(e.to_string()))
}

/// Read a file with a size limit; errors name the path.
pub fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>, BomError> {
    let io = |e| BomError::Io {
        path: path.display().to_string(),
        source: e,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > max {
        return Err(BomError::Usage(format!(
            "{}: {} bytes is over the {max}-byte limit",
            path.display(),
            meta.len()
        )));
    }
    std::fs::read(path).map_err(io)
}

/// Largest BOM mlsign reads (a BOM of a million files is ~300 MB; beyond that, split it).
pub const MAX_BOM_BYTES: u64 = 512 << 20;

/// Write a document meant to be shared (BOM, HTML view, lineage file, BOM bundle): atomically,
/// then readable by everyone (see [`crate::util::fs::write_public`]).
pub fn write_public(path: &Path, bytes: &[u8], force: bool) -> Result<(), crate::attest::Error> {
    crate::util::fs::write_public(path, bytes, force).map_err(Into::into)
}

/// The module-level usage example, compiled (doc tests are off: see Cargo.toml).
#[cfg(test)]
#[allow(dead_code)]
fn doc_example() {
    let bom = build(&BuildOptions::new("models/bert".into())).unwrap();
    println!("{}", to_json(&bom).unwrap());
}
