//! `mlsign verify` (a directory or file against its bundle) for the output sinks
//! ([`crate::report::render`]): the outcome, when the signature could be checked, and the
//! findings (SIG…/SGS…), each made once where the library decides it.

use super::{Error, VerifyOutcome};
use crate::report::{human, Finding, Report, Table, Verdict};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What `verify` found.
#[derive(Debug)]
pub struct VerifyReport {
    pub path: PathBuf,
    pub bundle: PathBuf,
    /// `None` when the signature was rejected before the tree was compared.
    pub outcome: Option<VerifyOutcome>,
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    /// The report for a verification result; errors that decide nothing (unreadable bundle,
    /// I/O) stay errors (exit 2).
    pub fn new(
        path: &Path,
        bundle: &Path,
        result: Result<VerifyOutcome, Error>,
    ) -> Result<Self, Error> {
        let (outcome, findings) = match result {
            Ok(o) => {
                let f = o.differences.iter().map(|d| d.to_finding()).collect();
                (Some(o), f)
            }
            Err(e) => match e.to_finding(&bundle.display().to_string()) {
                Some(f) => (None, vec![f]),
                None => return Err(e),
            },
        };
        Ok(VerifyReport {
            path: path.to_path_buf(),
            bundle: bundle.to_path_buf(),
            outcome,
            findings,
        })
    }

    pub fn verified(&self) -> bool {
        self.outcome.is_some() && self.findings.is_empty()
    }
}

#[derive(Serialize)]
struct Root<'a> {
    sha256: &'a str,
}

/// The outcome's keys in the JSON document (present once the signature verified).
#[derive(Serialize)]
struct OutcomeDoc<'a> {
    subject: &'a str,
    kind: Option<super::SubjectKind>,
    predicate_type: &'a str,
    method: &'a str,
    signer: &'a str,
    root_digest: Root<'a>,
    algorithm: &'a str,
    shard_size: Option<u64>,
    files_checked: usize,
    bytes: u64,
    differences: &'a [crate::digest::Difference],
    warnings: &'a [String],
}

/// `verify --format json`: `verified`, `path`, `bundle`, `findings`, then the outcome.
#[derive(Serialize)]
struct Doc<'a> {
    verified: bool,
    path: &'a Path,
    bundle: &'a Path,
    findings: &'a [Finding],
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    outcome: Option<OutcomeDoc<'a>>,
}

impl Report for VerifyReport {
    fn title(&self) -> &'static str {
        "mlsign verify"
    }

    fn verdict(&self) -> Verdict {
        Verdict::pass_if(self.verified())
    }

    fn headline(&self) -> String {
        if self.verified() {
            format!(
                "Verified: {} matches {}",
                self.path.display(),
                self.bundle.display()
            )
        } else {
            format!(
                "FAILED: {} does not match {}",
                self.path.display(),
                self.bundle.display()
            )
        }
    }

    fn findings(&self) -> Vec<Finding> {
        self.findings.clone()
    }

    fn facts(&self) -> Vec<(&'static str, String)> {
        let Some(o) = &self.outcome else {
            return vec![("bundle", self.bundle.display().to_string())];
        };
        vec![
            (
                "subject",
                format!("{} {}", o.kind.map_or("subject", |k| k.name()), o.subject),
            ),
            ("signer", format!("{} ({} method)", o.signer, o.method)),
            ("root digest", format!("sha256:{}", o.root_digest)),
            (
                "hashing",
                format!(
                    "{}{}",
                    o.algorithm,
                    o.shard_size
                        .map(|s| format!(", shards of {s} bytes"))
                        .unwrap_or_default()
                ),
            ),
        ]
    }

    fn table(&self) -> Table {
        let mut rows = vec![vec![
            "signature".to_string(),
            if self.outcome.is_some() {
                "pass"
            } else {
                "fail"
            }
            .to_string(),
            self.bundle.display().to_string(),
        ]];
        if let Some(o) = &self.outcome {
            rows.push(vec![
                "files".into(),
                if o.differences.is_empty() {
                    "pass"
                } else {
                    "fail"
                }
                .into(),
                format!(
                    "{} files, {} re-hashed; {} difference(s)",
                    o.files_checked,
                    human::bytes(o.bytes),
                    o.differences.len()
                ),
            ]);
        }
        Table {
            columns: vec!["check", "status", "summary"],
            rows,
        }
    }

    fn json(&self) -> serde_json::Value {
        let doc = Doc {
            verified: self.verified(),
            path: &self.path,
            bundle: &self.bundle,
            findings: &self.findings,
            outcome: self.outcome.as_ref().map(|o| OutcomeDoc {
                subject: &o.subject,
                kind: o.kind,
                predicate_type: &o.predicate_type,
                method: o.method,
                signer: &o.signer,
                root_digest: Root {
                    sha256: &o.root_digest,
                },
                algorithm: o.algorithm,
                shard_size: o.shard_size,
                files_checked: o.files_checked,
                bytes: o.bytes,
                differences: &o.differences,
                warnings: &o.warnings,
            }),
        };
        serde_json::to_value(doc).unwrap_or_default()
    }

    fn human(&self) -> String {
        let mut s = format!("{}\n", self.headline());
        match &self.outcome {
            Some(o) if self.verified() => {
                s.push_str(&format!(
                    "  {} {}, signed with the {} method by {}\n",
                    o.kind.map_or("subject", |k| k.name()),
                    o.subject,
                    o.method,
                    o.signer
                ));
                s.push_str(&format!(
                    "  {} files, {} re-hashed with {}{}; root sha256:{}\n",
                    o.files_checked,
                    human::bytes(o.bytes),
                    o.algorithm,
                    o.shard_size
                        .map(|s| format!(" (shards of {s} bytes)"))
                        .unwrap_or_default(),
                    o.root_digest
                ));
            }
            _ => s.push_str(&human::findings(&self.findings)),
        }
        s
    }
}
