//! The shape every multi-check result shares: named checks with a status and their findings,
//! folded into one [`Verdict`] by a policy (see `crate::policy::verdict`).

use super::Finding;
use serde::Serialize;

/// The one answer a policy gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    /// Violations found, but the policy is in `warn` mode (exit 0).
    Warn,
    Fail,
}

impl Verdict {
    /// Pass when `ok`, else Fail: the verdict of a single check with no warn mode.
    pub fn pass_if(ok: bool) -> Verdict {
        if ok {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Fail,
    /// Not required by the policy.
    Skipped,
    /// The check could not be evaluated (unreadable evidence, unsupported authority…).
    Error,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Pass => "pass",
            CheckStatus::Fail => "fail",
            CheckStatus::Skipped => "skipped",
            CheckStatus::Error => "error",
        }
    }
}

/// One named check with what it found. `summary` is one line for tables.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: CheckStatus,
    pub summary: String,
    pub findings: Vec<Finding>,
}

impl Check {
    pub fn skipped(name: &'static str, why: impl Into<String>) -> Check {
        Check {
            name,
            status: CheckStatus::Skipped,
            summary: why.into(),
            findings: Vec::new(),
        }
    }

    /// Pass when there are no findings at or above `Low`, fail otherwise. Info findings are
    /// notes and never fail a check.
    pub fn from_findings(
        name: &'static str,
        summary: impl Into<String>,
        findings: Vec<Finding>,
    ) -> Check {
        let fail = findings.iter().any(|f| f.severity > super::Severity::Info);
        Check {
            name,
            status: if fail {
                CheckStatus::Fail
            } else {
                CheckStatus::Pass
            },
            summary: summary.into(),
            findings,
        }
    }

    pub fn error(name: &'static str, finding: Finding) -> Check {
        Check {
            name,
            status: CheckStatus::Error,
            summary: finding.message.clone(),
            findings: vec![finding],
        }
    }
}
