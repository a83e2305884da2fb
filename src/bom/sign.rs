//! A BOM as an in-toto attestation: the statement's subject is the BOM file (name + SHA-256 of
//! its exact bytes), the predicate the BOM itself (predicate type `https://cyclonedx.org/bom`).
//! The statement is signed into a Sigstore v0.3 bundle by [`crate::attest`].

use super::PREDICATE_TYPE;
use crate::attest::document::DocumentError;
use crate::attest::STATEMENT_TYPE;
use serde_json::{json, Value};

pub use crate::util::sha256_hex;

/// The in-toto Statement (exact bytes to sign) for BOM bytes published under `name`.
pub fn statement(bom_bytes: &[u8], name: &str) -> Result<Vec<u8>, DocumentError> {
    let predicate: Value =
        crate::json::value_from_slice(bom_bytes).map_err(DocumentError::NotJson)?;
    let st = json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": sha256_hex(bom_bytes)}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    });
    serde_json::to_vec(&st).map_err(DocumentError::Serialize)
}

/// Check a verified statement payload against the BOM bytes on disk. `Err` says why the
/// attestation does not cover this BOM.
pub fn check_statement(payload: &[u8], bom_bytes: &[u8]) -> Result<String, DocumentError> {
    crate::attest::document::check_covers(
        payload,
        bom_bytes,
        PREDICATE_TYPE,
        "BOM",
        " (it does not sign a BOM)",
        || {
            crate::json::value_from_slice(bom_bytes).map_err(|source| {
                DocumentError::ContentNotJson {
                    noun: "BOM",
                    source,
                }
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_round_trip_and_tamper() {
        let bom = br#"{"bomFormat":"CycloneDX","specVersion":"1.6","version":1}"#;
        let st = statement(bom, "x.cdx.json").unwrap();
        assert_eq!(check_statement(&st, bom).unwrap(), "x.cdx.json");
        let other = br#"{"bomFormat":"CycloneDX","specVersion":"1.6","version":2}"#;
        let e = check_statement(&st, other).unwrap_err();
        assert!(
            matches!(&e, DocumentError::Changed { noun: "BOM", .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("changed after it was signed"), "{e}");
        let v: Value = serde_json::from_slice(&st).unwrap();
        let mut w = v.clone();
        w["predicateType"] = json!("https://model_signing/signature/v1.0");
        let e = check_statement(&serde_json::to_vec(&w).unwrap(), bom).unwrap_err();
        assert!(
            matches!(e, DocumentError::PredicateType { hint, .. } if hint.contains("BOM")),
            "{e:?}"
        );
        // A statement whose subject digest matches bytes that are not JSON: the predicate
        // comparison names the BOM, never panics.
        let junk = b"{not json";
        let mut j = v.clone();
        j["subject"][0]["digest"]["sha256"] = json!(sha256_hex(junk));
        let e = check_statement(&serde_json::to_vec(&j).unwrap(), junk).unwrap_err();
        assert!(
            matches!(e, DocumentError::ContentNotJson { noun: "BOM", .. }),
            "{e:?}"
        );
    }
}
