//! mlsign's integration tests, one test binary (`cargo test --test cli`; one module per area,
//! filter with `cargo test --test cli scan::`). Every module runs the real binary against real
//! counterparts (model_signing, sigstore-python, sigstore-js, openssl, the Debian registry,
//! skopeo, softhsm2, check-jsonschema, the CycloneDX validator, CPython's unpicklers) started
//! from the test itself; `support` holds what they share.

mod support;

#[cfg(feature = "behave")]
mod behave;
#[cfg(feature = "behave")]
mod behave_lm;
#[cfg(feature = "behave")]
mod behave_lm_null;
#[cfg(feature = "behave")]
mod behave_null;
#[cfg(feature = "onnx")]
mod behave_onnx;
#[cfg(feature = "behave")]
mod behave_tokens;
mod bom;
mod dist;
mod gate;
mod keyless;
mod oci;
mod output;
mod scan;
mod serve;
mod signing;
