//! `mlsign policy check`: a loaded policy's remarks (settings that weaken it) as findings
//! (POL001), for the output sinks ([`crate::report::render`]). A policy that does not load is
//! an error (exit 2), never a finding.

use super::Policy;
use crate::report::{codes, human, Finding, Location, Report, Severity, Table, Verdict};
use serde_json::json;

/// What `policy check` says about one policy file.
#[derive(Debug, Clone)]
pub struct LintReport {
    pub path: String,
    pub sha256: String,
    pub mode: &'static str,
    pub subjects: usize,
    pub authorities: usize,
    pub requirements: Vec<&'static str>,
    pub remarks: Vec<String>,
    pub findings: Vec<Finding>,
}

/// Lint `policy`, loaded from `path`: one POL001 (medium) per remark.
pub fn lint(policy: &Policy, path: &str) -> LintReport {
    LintReport {
        path: path.to_string(),
        sha256: policy.sha256.clone(),
        mode: policy.mode.as_str(),
        subjects: policy.subjects.len(),
        authorities: policy.authorities.len(),
        requirements: policy.requirements.names(),
        remarks: policy.notes.clone(),
        findings: policy
            .notes
            .iter()
            .map(|n| {
                Finding::new(codes::POL001, Severity::Medium, n.clone()).at(Location::path(path))
            })
            .collect(),
    }
}

impl Report for LintReport {
    fn title(&self) -> &'static str {
        "mlsign policy check"
    }

    /// Remarks fail the check (exit 1), so CI notices a weakened policy.
    fn verdict(&self) -> Verdict {
        Verdict::pass_if(self.findings.is_empty())
    }

    fn headline(&self) -> String {
        format!(
            "{}: valid policy (mode {}, {} subject pattern(s), {} authorit{}, requirements: {})",
            self.path,
            self.mode,
            self.subjects,
            self.authorities,
            if self.authorities == 1 { "y" } else { "ies" },
            self.requirements.join(", ")
        )
    }

    fn findings(&self) -> Vec<Finding> {
        self.findings.clone()
    }

    fn facts(&self) -> Vec<(&'static str, String)> {
        vec![("sha256", self.sha256.clone())]
    }

    fn table(&self) -> Table {
        Table {
            columns: vec!["requirement"],
            rows: self
                .requirements
                .iter()
                .map(|r| vec![r.to_string()])
                .collect(),
        }
    }

    /// Schema `mlsign-policy-check/2`: `/1` plus `findings`.
    fn json(&self) -> serde_json::Value {
        json!({
            "schema": "mlsign-policy-check/2",
            "policy": self.path,
            "sha256": self.sha256,
            "valid": true,
            "mode": self.mode,
            "requirements": self.requirements,
            "remarks": self.remarks,
            "findings": self.findings,
        })
    }

    fn human(&self) -> String {
        format!("{}\n{}", self.headline(), human::findings(&self.findings))
    }
}
