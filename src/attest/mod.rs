//! Attestations: in-toto statements in DSSE envelopes inside Sigstore bundles (v0.3), signed and
//! verified exactly as OpenSSF model signing (`model_signing` 1.1.1) writes and reads them.
//!
//! Signing: [`sign_model`] hashes a tree and writes a bundle; [`sign_statement`] signs any in-toto
//! statement (BOMs use it). Verifying: [`verify_bundle`] checks the signature over the exact
//! payload bytes against a key or a certificate chain and returns the verified payload;
//! [`verify_model`] then re-hashes the tree with the recorded configuration and reports every
//! difference.

pub mod bundle;
pub mod cert;
pub mod document;
pub mod dsse;
mod error;
mod finding;
pub mod keys;
pub mod partition;
pub mod pkcs11;
mod report;
mod sign;
pub mod sigstore;
pub mod statement;
pub mod statement_parse;
#[cfg(test)]
mod statement_reference;
mod verify;

pub use error::{BundleFault, Error, OtherMethod};
pub use keys::{KeyKind, Message, SigningKey, VerifyingKey};
pub use report::VerifyReport;
pub use sign::{
    sign_model, sign_model_with, sign_resources_to, sign_statement, write_atomic,
    write_atomic_with, ManifestSource, SignExtras, SignOptions, SignOutcome, Signer,
    SigningBackend, SourceReport,
};
pub use statement::{SubjectKind, PREDICATE_V01, PREDICATE_V1, STATEMENT_TYPE};
pub use verify::{
    verify_bundle, verify_bundle_bytes, verify_bundle_with, verify_model, KeylessTrust, Trust,
    VerifiedPayload, VerifyOptions, VerifyOutcome,
};
