//! mlsign: ML supply-chain integrity as a library. The binary in `main.rs` is a thin shell over
//! [`commands::run`].
//!
//! Capabilities, one module each: [`digest`] (walk, hash, manifest), [`attest`] (in-toto statement,
//! DSSE, Sigstore bundle, sign/verify), [`report`] (findings and output sinks).

pub mod attest;
#[cfg(feature = "behave")]
pub mod behave;
pub mod bom;
pub mod cli;
pub mod commands;
pub mod dataset;
pub mod digest;
pub mod gate;
pub mod json;
pub mod oci;
pub mod policy;
pub mod report;
pub mod scan;
