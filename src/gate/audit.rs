//! The audit log: one JSON line per gate decision, appended and fsynced, so a pipeline keeps
//! a record of what was admitted under which policy. Lines hold digests, paths, verdicts,
//! finding codes and messages, and CI run identifiers; never environment secrets or keys.

use super::GateReport;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;

/// CI run identifiers read from the environment (only these names; nothing else is copied).
const CI_VARS: &[(&str, &str)] = &[
    ("GITHUB_RUN_ID", "github_run_id"),
    ("GITHUB_RUN_ATTEMPT", "github_run_attempt"),
    ("GITHUB_REPOSITORY", "github_repository"),
    ("GITHUB_SHA", "github_sha"),
    ("GITHUB_WORKFLOW", "github_workflow"),
    ("CI_PIPELINE_ID", "gitlab_pipeline_id"),
    ("CI_JOB_ID", "gitlab_job_id"),
    ("BUILD_ID", "build_id"),
    ("BUILD_BUILDID", "azure_build_id"),
];

/// Most reasons recorded per line (the report has all of them).
const MAX_REASONS: usize = 100;

fn ci() -> Value {
    let mut m = serde_json::Map::new();
    for (var, key) in CI_VARS {
        if let Ok(v) = std::env::var(var) {
            // Identifiers only: bounded and printable.
            let v: String = v.chars().filter(|c| !c.is_control()).take(200).collect();
            m.insert((*key).to_string(), json!(v));
        }
    }
    Value::Object(m)
}

/// The line recorded for one decision (without the trailing newline).
pub fn line(r: &GateReport, now: &str) -> String {
    let reasons: Vec<String> = r
        .findings
        .iter()
        .filter(|f| f.severity > crate::report::Severity::Info)
        .take(MAX_REASONS)
        .map(|f| format!("{}: {}", f.code, f.message))
        .collect();
    let v = json!({
        "time": now,
        "tool": {"name": "mlsign", "version": env!("CARGO_PKG_VERSION")},
        "subject": r.subject,
        "policy": r.policy,
        "verdict": r.verdict,
        "would_fail": r.would_fail,
        "revoked": r.revoked,
        "exit": r.outcome.exit as i32,
        "checks": r.checks.iter().map(|c| json!({"name": c.name, "status": c.status})).collect::<Vec<_>>(),
        "reasons": reasons,
        "ci": ci(),
    });
    v.to_string()
}

/// Append one line per report to `path` (created 0640 if missing) and fsync it.
pub fn append(path: &Path, reports: &[GateReport]) -> std::io::Result<()> {
    let now = crate::util::now_rfc3339();
    let mut text = String::new();
    for r in reports {
        text.push_str(&line(r, &now));
        text.push('\n');
    }
    let mut o = std::fs::OpenOptions::new();
    o.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o640);
    }
    let mut f = o.open(path)?;
    // One write per batch: O_APPEND keeps concurrent writers' lines whole on local disks.
    f.write_all(text.as_bytes())?;
    f.sync_all()
}
