//! mlsign: ML supply-chain integrity as a library. The binary (`main.rs`, with the clap
//! definitions in `cli.rs` and one file per command in `commands/`) is a thin shell over it and
//! not part of the library API.
//!
//! Capabilities, one module each: [`digest`] (walk, hash, manifest), [`attest`] (in-toto statement,
//! DSSE, Sigstore bundle, sign/verify), [`report`] (findings and output sinks).

pub mod attest;
#[cfg(feature = "behave")]
pub mod behave;
pub mod bom;
pub mod dataset;
pub mod digest;
pub mod gate;
pub mod json;
pub mod oci;
pub mod policy;
pub mod report;
pub mod scan;
#[cfg(feature = "serve")]
pub mod serve;
pub mod util;
