//! Attestations about the JSON reports mlsign writes (a behave report, a gate report): an in-toto
//! Statement v1 whose subject is the report file (its name and the SHA-256 of its exact bytes)
//! and whose predicate is the report itself, signed into a Sigstore bundle like any statement
//! (key, certificate or keyless). The gate uses it so that evidence it cannot recompute (a behave
//! run) is believed only when a policy authority vouched for it.

use super::STATEMENT_TYPE;
use serde_json::{json, Value};

/// Predicate type of a signed `mlsign behave --format json` report (schema `mlsign-behave/1`).
pub const BEHAVE_PREDICATE: &str = "https://mlsign.dev/behave/v1";
/// Predicate type of a signed `mlsign gate --format json` report (schema `mlsign-gate/1`).
pub const GATE_PREDICATE: &str = "https://mlsign.dev/gate/v1";

/// The predicate type for a report, from its `schema` field.
pub fn predicate_for(doc: &Value) -> Option<&'static str> {
    match doc.get("schema").and_then(Value::as_str) {
        Some("mlsign-behave/1") => Some(BEHAVE_PREDICATE),
        Some("mlsign-gate/1") => Some(GATE_PREDICATE),
        _ => None,
    }
}

use crate::util::sha256_hex;

/// Why a document cannot be signed as a predicate, or why a signed statement does not cover
/// it. `noun` names the document ("report", "BOM").
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("not a JSON object (an in-toto predicate must be one)")]
    NotObject,
    #[error("cannot serialise the statement: {0}")]
    Serialize(#[source] serde_json::Error),
    #[error("signed payload is not JSON: {0}")]
    PayloadNotJson(#[source] serde_json::Error),
    #[error("signed payload is not an in-toto Statement v1 ({found})")]
    NotStatement { found: Value },
    #[error("the attestation's predicateType is {found}, not {want}{hint}")]
    PredicateType {
        found: Value,
        want: String,
        /// What the wrong type means for this document, e.g. " (it does not sign a BOM)".
        hint: &'static str,
    },
    #[error("the {noun} changed after it was signed: its SHA-256 is {sha256}, the attestation signs {signed}")]
    Changed {
        noun: &'static str,
        sha256: String,
        /// The first subject's SHA-256 ("?" when it has none).
        signed: String,
    },
    #[error("{noun} is not JSON: {source}")]
    ContentNotJson {
        noun: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("the attestation's predicate differs from the {noun}")]
    PredicateDiffers { noun: &'static str },
}

/// Parse report bytes strictly (duplicate keys refused): what is signed is what every reader
/// reads.
pub fn parse(bytes: &[u8]) -> Result<Value, DocumentError> {
    let v = crate::json::value_from_slice(bytes).map_err(DocumentError::NotJson)?;
    if !v.is_object() {
        return Err(DocumentError::NotObject);
    }
    Ok(v)
}

/// The statement (exact bytes to sign) for report `bytes` published under `name`.
pub fn statement(bytes: &[u8], name: &str, predicate_type: &str) -> Result<Vec<u8>, DocumentError> {
    let predicate = parse(bytes)?;
    let st = json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": sha256_hex(bytes)}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    });
    serde_json::to_vec(&st).map_err(DocumentError::Serialize)
}

/// Check a verified statement payload against the report bytes on disk: the right predicate
/// type, the file's digest among the subjects, and the predicate equal to the report. `Ok` is
/// the subject name; `Err` says why the attestation does not cover this report.
pub fn check(payload: &[u8], bytes: &[u8], predicate_type: &str) -> Result<String, DocumentError> {
    check_covers(payload, bytes, predicate_type, "report", "", || {
        parse(bytes)
    })
}

/// The one check behind every "a signed statement covers this file" (reports here, BOMs in
/// `bom::sign`): statement type, predicate type, the file's SHA-256 among the subjects, and the
/// predicate equal to the file's parsed content (`predicate`, called only once the digest
/// matched). `noun` names the file in messages; `type_hint` is appended to a wrong-type message.
pub fn check_covers(
    payload: &[u8],
    bytes: &[u8],
    predicate_type: &str,
    noun: &'static str,
    type_hint: &'static str,
    predicate: impl FnOnce() -> Result<Value, DocumentError>,
) -> Result<String, DocumentError> {
    let st: Value =
        crate::json::value_from_slice(payload).map_err(DocumentError::PayloadNotJson)?;
    if st["_type"] != STATEMENT_TYPE {
        return Err(DocumentError::NotStatement {
            found: st["_type"].clone(),
        });
    }
    if st["predicateType"] != predicate_type {
        return Err(DocumentError::PredicateType {
            found: st["predicateType"].clone(),
            want: predicate_type.to_string(),
            hint: type_hint,
        });
    }
    let want = sha256_hex(bytes);
    let subjects = st["subject"].as_array().cloned().unwrap_or_default();
    let Some(subj) = subjects.iter().find(|s| {
        s["digest"]["sha256"].as_str().map(str::to_ascii_lowercase) == Some(want.clone())
    }) else {
        let signed = subjects
            .first()
            .and_then(|s| s["digest"]["sha256"].as_str())
            .unwrap_or("?");
        return Err(DocumentError::Changed {
            noun,
            sha256: want,
            signed: signed.to_string(),
        });
    };
    if st["predicate"] != predicate()? {
        return Err(DocumentError::PredicateDiffers { noun });
    }
    Ok(subj["name"].as_str().unwrap_or("").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let r = br#"{"schema":"mlsign-behave/1","verdict":"no-divergence-found"}"#;
        let doc = parse(r).unwrap();
        assert_eq!(predicate_for(&doc), Some(BEHAVE_PREDICATE));
        let st = statement(r, "m.behave.json", BEHAVE_PREDICATE).unwrap();
        assert_eq!(check(&st, r, BEHAVE_PREDICATE).unwrap(), "m.behave.json");
        let other = br#"{"schema":"mlsign-behave/1","verdict":"flagged"}"#;
        let e = check(&st, other, BEHAVE_PREDICATE).unwrap_err();
        assert!(
            matches!(&e, DocumentError::Changed { noun: "report", .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("changed after it was signed"), "{e}");
        let e = check(&st, r, GATE_PREDICATE).unwrap_err();
        assert!(matches!(e, DocumentError::PredicateType { .. }), "{e:?}");
        assert!(e.to_string().contains("predicateType"), "{e}");
        // Same bytes, another predicate inside the statement: refused.
        let mut v: Value = serde_json::from_slice(&st).unwrap();
        v["predicate"]["verdict"] = json!("flagged");
        let e = check(&serde_json::to_vec(&v).unwrap(), r, BEHAVE_PREDICATE).unwrap_err();
        assert!(matches!(e, DocumentError::PredicateDiffers { .. }), "{e:?}");
        assert!(e.to_string().contains("predicate differs"), "{e}");
        assert!(matches!(parse(b"[1]"), Err(DocumentError::NotObject)));
        assert!(matches!(
            parse(br#"{"a":1,"a":2}"#),
            Err(DocumentError::NotJson(_))
        ));
        // Hostile payloads: not JSON, a duplicate key, not a statement.
        for (payload, what) in [
            (&b"{"[..], "not JSON"),
            (br#"{"_type":"x","_type":"y"}"#, "duplicate key"),
        ] {
            let e = check(payload, r, BEHAVE_PREDICATE).unwrap_err();
            assert!(
                matches!(e, DocumentError::PayloadNotJson(_)),
                "{what}: {e:?}"
            );
        }
        let e = check(
            br#"{"_type":"https://in-toto.io/Statement/v0.1"}"#,
            r,
            BEHAVE_PREDICATE,
        )
        .unwrap_err();
        assert!(
            matches!(&e, DocumentError::NotStatement { found } if found == "https://in-toto.io/Statement/v0.1"),
            "{e:?}"
        );
        assert!(predicate_for(&json!({"schema": "x"})).is_none());
    }
}

/// What `mlsign attest verify` found: who signed the report, or the finding that says why the
/// bundle does not vouch for it.
#[derive(Debug, Clone)]
pub struct DocumentReport {
    pub report: String,
    pub bundle: String,
    pub predicate_type: String,
    /// `(method, signer)` when the bundle verified and covers the report.
    pub signer: Option<(&'static str, String)>,
    pub findings: Vec<crate::report::Finding>,
}

/// Verify the bundle at `bundle_path` under `trust`, then that its statement covers `bytes`
/// (the report `shown`) with `predicate_type`. A rejected signature (its own code) or a
/// statement about something else (GAT013) is a finding; errors that decide nothing (an
/// unreadable bundle) stay errors.
pub fn verify_report(
    bytes: &[u8],
    shown: &str,
    predicate_type: &str,
    bundle_path: &std::path::Path,
    trust: &super::Trust,
) -> Result<DocumentReport, super::Error> {
    use crate::report::{codes, Finding, Location, Severity};
    let b = super::bundle::Bundle::read(bundle_path)?;
    let at = bundle_path.display().to_string();
    let (finding, signer) = match super::verify_bundle(&b, bundle_path, trust) {
        Ok(vp) => match check(&vp.payload, bytes, predicate_type) {
            Ok(_) => (None, Some((vp.method, vp.signer))),
            Err(why) => (
                Some(
                    Finding::new(codes::GAT013, Severity::Critical, why.to_string())
                        .at(Location::path(shown)),
                ),
                None,
            ),
        },
        Err(e) => match e.to_finding(&at) {
            Some(f) => (Some(f), None),
            None => return Err(e),
        },
    };
    Ok(DocumentReport {
        report: shown.to_string(),
        bundle: at,
        predicate_type: predicate_type.to_string(),
        signer,
        findings: finding.into_iter().collect(),
    })
}

impl crate::report::Report for DocumentReport {
    fn title(&self) -> &'static str {
        "mlsign attest verify"
    }

    fn verdict(&self) -> crate::report::Verdict {
        if self.signer.is_some() {
            crate::report::Verdict::Pass
        } else {
            crate::report::Verdict::Fail
        }
    }

    fn headline(&self) -> String {
        match &self.signer {
            Some((m, s)) => format!(
                "Verified: {} is signed ({}) by {s} ({m} method)",
                self.report, self.predicate_type
            ),
            None => format!("FAILED: {} is not covered by {}", self.report, self.bundle),
        }
    }

    fn findings(&self) -> Vec<crate::report::Finding> {
        self.findings.clone()
    }

    fn facts(&self) -> Vec<(&'static str, String)> {
        vec![
            ("bundle", self.bundle.clone()),
            ("predicate type", self.predicate_type.clone()),
        ]
    }

    fn json(&self) -> Value {
        json!({
            "report": self.report,
            "bundle": self.bundle,
            "predicateType": self.predicate_type,
            "verified": self.signer.is_some(),
            "method": self.signer.as_ref().map(|s| s.0),
            "signer": self.signer.as_ref().map(|s| s.1.clone()),
            "findings": self.findings,
        })
    }

    fn human(&self) -> String {
        format!(
            "{}\n{}",
            self.headline(),
            crate::report::human::findings(&self.findings)
        )
    }
}
