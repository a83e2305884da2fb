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

/// Parse report bytes strictly (duplicate keys refused): what is signed is what every reader
/// reads.
pub fn parse(bytes: &[u8]) -> Result<Value, String> {
    let v = crate::json::value_from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    if !v.is_object() {
        return Err("not a JSON object (an in-toto predicate must be one)".into());
    }
    Ok(v)
}

/// The statement (exact bytes to sign) for report `bytes` published under `name`.
pub fn statement(bytes: &[u8], name: &str, predicate_type: &str) -> Result<Vec<u8>, String> {
    let predicate = parse(bytes)?;
    let st = json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": sha256_hex(bytes)}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    });
    serde_json::to_vec(&st).map_err(|e| e.to_string())
}

/// Check a verified statement payload against the report bytes on disk: the right predicate
/// type, the file's digest among the subjects, and the predicate equal to the report. `Ok` is
/// the subject name; `Err` says why the attestation does not cover this report.
pub fn check(payload: &[u8], bytes: &[u8], predicate_type: &str) -> Result<String, String> {
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
    noun: &str,
    type_hint: &str,
    predicate: impl FnOnce() -> Result<Value, String>,
) -> Result<String, String> {
    let st: Value = crate::json::value_from_slice(payload)
        .map_err(|e| format!("signed payload is not JSON: {e}"))?;
    if st["_type"] != STATEMENT_TYPE {
        return Err(format!(
            "signed payload is not an in-toto Statement v1 ({})",
            st["_type"]
        ));
    }
    if st["predicateType"] != predicate_type {
        return Err(format!(
            "the attestation's predicateType is {}, not {predicate_type}{type_hint}",
            st["predicateType"]
        ));
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
        return Err(format!(
            "the {noun} changed after it was signed: its SHA-256 is {want}, the attestation signs {signed}"
        ));
    };
    if st["predicate"] != predicate()? {
        return Err(format!(
            "the attestation's predicate differs from the {noun}"
        ));
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
        assert!(e.contains("changed after it was signed"), "{e}");
        let e = check(&st, r, GATE_PREDICATE).unwrap_err();
        assert!(e.contains("predicateType"), "{e}");
        // Same bytes, another predicate inside the statement: refused.
        let mut v: Value = serde_json::from_slice(&st).unwrap();
        v["predicate"]["verdict"] = json!("flagged");
        let e = check(&serde_json::to_vec(&v).unwrap(), r, BEHAVE_PREDICATE).unwrap_err();
        assert!(e.contains("predicate differs"), "{e}");
        assert!(parse(b"[1]").is_err());
        assert!(parse(br#"{"a":1,"a":2}"#).is_err());
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
                    Finding::new(codes::GAT013, Severity::Critical, why).at(Location::path(shown)),
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
