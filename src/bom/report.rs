//! `mlsign bom validate` and `mlsign bom verify` for the output sinks
//! ([`crate::report::render`]), and the BOM attestation check `bom verify --bundle` runs.

use super::drift::DriftReport;
use super::show::short;
use super::validate::Issue;
use crate::attest::{self, bundle::Bundle, Trust};
use crate::report::{human, Finding, Location, Report, Severity, Table, Verdict};
use serde::Serialize;
use std::path::Path;

/// What `bom validate` found in one BOM file.
#[derive(Debug, Clone)]
pub struct ValidateReport {
    pub file: String,
    pub issues: Vec<Issue>,
}

#[derive(Serialize)]
struct ValidateDoc<'a> {
    file: &'a str,
    valid: bool,
    errors: &'a [Issue],
}

impl Report for ValidateReport {
    fn title(&self) -> &'static str {
        "mlsign bom validate"
    }

    fn verdict(&self) -> Verdict {
        Verdict::pass_if(self.issues.is_empty())
    }

    fn headline(&self) -> String {
        if self.issues.is_empty() {
            format!(
                "{}: valid CycloneDX 1.6 (schema, references, model hashes)",
                self.file
            )
        } else {
            format!("{}: INVALID ({} error(s))", self.file, self.issues.len())
        }
    }

    fn findings(&self) -> Vec<Finding> {
        self.issues
            .iter()
            .map(|i| i.to_finding(&self.file))
            .collect()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::to_value(ValidateDoc {
            file: &self.file,
            valid: self.issues.is_empty(),
            errors: &self.issues,
        })
        .unwrap_or_default()
    }

    fn human(&self) -> String {
        let mut s = format!("{}\n", self.headline());
        for i in &self.issues {
            let p = if i.pointer.is_empty() {
                "/"
            } else {
                &i.pointer
            };
            s.push_str(&format!("  {} at {p}: {}\n", i.code, i.message));
        }
        s
    }
}

/// The BOM's signature as `bom verify` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct SignatureStatus {
    pub verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    /// The statement's subject name (the BOM's file name when it was signed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Verifier warnings (legacy formats…): for people, not part of the JSON.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// Verify the BOM attestation at `bundle_path` over `bom` (its exact bytes): the signature under
/// `trust`, then that the statement covers these bytes. A failure is a finding (BOM008, or the
/// keyless check's own SGS code); errors that decide nothing (unreadable bundle) stay errors.
pub fn verify_signature(
    bom: &[u8],
    bom_shown: &str,
    bundle_path: &Path,
    trust: &Trust,
) -> Result<(SignatureStatus, Option<Finding>), attest::Error> {
    let failed = SignatureStatus {
        verified: false,
        method: None,
        signer: None,
        subject: None,
        warnings: Vec::new(),
    };
    let b = Bundle::read(bundle_path)?;
    let at = bundle_path.display().to_string();
    match attest::verify_bundle(&b, bundle_path, trust) {
        Ok(vp) => match super::sign::check_statement(&vp.payload, bom) {
            Ok(name) => Ok((
                SignatureStatus {
                    verified: true,
                    method: Some(vp.method),
                    signer: Some(vp.signer),
                    subject: Some(name),
                    warnings: vp.warnings,
                },
                None,
            )),
            Err(why) => Ok((
                failed,
                Some(super::attestation_finding(why.to_string(), bom_shown)),
            )),
        },
        // Keyless checks keep their own code (SGS…): it says which check failed.
        Err(attest::Error::Rejected { code, message }) if code.starts_with("SGS") => Ok((
            failed,
            Some(Finding::new(code, Severity::Critical, message).at(Location::path(at))),
        )),
        Err(attest::Error::Rejected { message, .. }) => {
            Ok((failed, Some(super::attestation_finding(message, &at))))
        }
        Err(e) => Err(e),
    }
}

/// What `bom verify` found: the signature (with `--bundle`) and the re-hash of what the BOM
/// names (unless `--no-rehash`).
#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub bom: String,
    pub signature: Option<SignatureStatus>,
    pub drift: Option<DriftReport>,
    /// Signature finding first, then drift findings.
    pub findings: Vec<Finding>,
}

#[derive(Serialize)]
struct VerifyDoc<'a> {
    bom: &'a str,
    verified: bool,
    signature: &'a Option<SignatureStatus>,
    checked: Option<&'a [super::drift::Checked]>,
    skipped: Option<&'a [super::drift::Skipped]>,
    findings: &'a [Finding],
}

impl VerifyReport {
    pub fn verified(&self) -> bool {
        self.findings.is_empty()
    }
}

impl Report for VerifyReport {
    fn title(&self) -> &'static str {
        "mlsign bom verify"
    }

    fn verdict(&self) -> Verdict {
        Verdict::pass_if(self.verified())
    }

    fn headline(&self) -> String {
        format!(
            "{}: {}",
            self.bom,
            if self.verified() {
                "verified"
            } else {
                "FAILED"
            }
        )
    }

    fn findings(&self) -> Vec<Finding> {
        self.findings.clone()
    }

    fn facts(&self) -> Vec<(&'static str, String)> {
        match &self.signature {
            Some(s) if s.verified => vec![(
                "signature",
                format!(
                    "verified ({} method, signer {})",
                    s.method.unwrap_or(""),
                    s.signer.as_deref().unwrap_or("")
                ),
            )],
            Some(_) => vec![("signature", "FAILED".into())],
            None => Vec::new(),
        }
    }

    fn table(&self) -> Table {
        let mut rows = Vec::new();
        if let Some(r) = &self.drift {
            for c in &r.checked {
                rows.push(vec![
                    c.kind.clone(),
                    c.name.clone(),
                    c.path.clone(),
                    if c.ok { "ok" } else { "drift" }.into(),
                    short(&c.recorded),
                    short(&c.actual),
                ]);
            }
            for s in &r.skipped {
                rows.push(vec![
                    String::new(),
                    s.name.clone(),
                    String::new(),
                    format!("skipped: {}", s.why),
                    String::new(),
                    String::new(),
                ]);
            }
        }
        Table {
            columns: vec!["kind", "name", "path", "status", "in the BOM", "now"],
            rows,
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::to_value(VerifyDoc {
            bom: &self.bom,
            verified: self.verified(),
            signature: &self.signature,
            checked: self.drift.as_ref().map(|r| r.checked.as_slice()),
            skipped: self.drift.as_ref().map(|r| r.skipped.as_slice()),
            findings: &self.findings,
        })
        .unwrap_or_default()
    }

    fn human(&self) -> String {
        let mut s = String::new();
        if let Some((_, v)) = self.facts().first() {
            s.push_str(&format!("Signature: {v}\n"));
        }
        if let Some(r) = &self.drift {
            for c in &r.checked {
                s.push_str(&format!(
                    "{} {} {:?} ({}): {}\n",
                    if c.ok { "ok     " } else { "DRIFT  " },
                    c.kind,
                    c.name,
                    c.path,
                    if c.ok {
                        short(&c.recorded)
                    } else {
                        format!("BOM {} now {}", short(&c.recorded), short(&c.actual))
                    }
                ));
            }
            for k in &r.skipped {
                s.push_str(&format!("skipped {:?}: {}\n", k.name, k.why));
            }
        }
        s.push_str(&human::findings(&self.findings));
        s.push_str(&self.headline());
        s.push('\n');
        s
    }
}
