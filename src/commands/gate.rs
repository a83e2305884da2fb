//! `mlsign gate SUBJECT… --policy FILE`: the CLI edge of [`mlsign::gate`].

use super::common::print_json;
use anyhow::{bail, Context, Result};
use clap::Args;
use mlsign::gate::{self, audit, render, Evidence, GateOptions, GateReport};
use mlsign::policy::Policy;
use mlsign::report::{self, Exit, Format};
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
#[command(
    long_about = "Decide whether models may be promoted. The policy names the subjects it covers, \
whose signatures count (authorities: any one verifies, M-of-N with `threshold`), and the checks \
that must all pass (signature, scan, bom, lineage, behave, approvals). Evidence is read where \
the other commands write it: SUBJECT.sig, SUBJECT.cdx.json (+ .sig), SUBJECT.behave.json, \
lineage.json beside the subject, SUBJECT.approval.*.sig. Missing evidence for a required check \
is a violation naming the file looked for; evidence that cannot be read is an error.\n\n\
Exit codes: 0 pass (also verdict warn in warn mode, and audit mode), 1 violation, 2 error \
(unreadable policy or evidence, malformed subject, unsupported authority): nothing that \
cannot be evaluated passes.",
    after_help = "Examples:\n  mlsign gate models/bert --policy policies/default.toml\n  mlsign gate models/bert --policy strict.toml --format json --audit-log gate.log\n  mlsign gate models/bert --policy p.toml --format markdown >> \"$GITHUB_STEP_SUMMARY\"\n  mlsign gate models/bert --policy p.toml --sarif-output gate.sarif --json-output gate.json\n  mlsign policy explain policies/default.toml models/bert"
)]
pub struct GateArgs {
    /// Model directories or files (or oci:// references) to decide on.
    #[arg(value_name = "SUBJECT", required = true)]
    pub subjects: Vec<String>,
    /// The policy file (TOML; see `mlsign policy init`).
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Append one JSON line per decision to this file (fsynced).
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// Signature bundle(s) instead of SUBJECT.sig. Repeatable (M-of-N).
    #[arg(long = "bundle", value_name = "B.sig")]
    pub bundles: Vec<PathBuf>,
    /// The ML-BOM instead of SUBJECT.cdx.json (its signature: BOM.sig).
    #[arg(long, value_name = "BOM.cdx.json")]
    pub bom: Option<PathBuf>,
    /// The behave report (JSON of `mlsign behave`) instead of SUBJECT.behave.json.
    #[arg(long, value_name = "REPORT.json")]
    pub behave_report: Option<PathBuf>,
    /// The dataset lineage file instead of the policy's or lineage.json beside the subject.
    #[arg(long, value_name = "lineage.json")]
    pub lineage: Option<PathBuf>,
    /// Approval bundle(s) instead of SUBJECT.approval.*.sig. Repeatable.
    #[arg(long = "approval", value_name = "A.sig")]
    pub approvals: Vec<PathBuf>,
    /// Also write the JSON report to this file.
    #[arg(long, value_name = "FILE")]
    pub json_output: Option<PathBuf>,
    /// Also write SARIF 2.1.0 to this file (for code-scanning upload).
    #[arg(long, value_name = "FILE")]
    pub sarif_output: Option<PathBuf>,
    /// Also write the Markdown summary to this file.
    #[arg(long, value_name = "FILE")]
    pub markdown_output: Option<PathBuf>,
    /// Print one GitHub workflow annotation per finding on stderr (capped at 50).
    #[arg(long)]
    pub annotations: bool,
    /// Append `verdict=` and `digest=` step outputs to this file (GitHub's $GITHUB_OUTPUT).
    #[arg(long, value_name = "FILE")]
    pub github_output: Option<PathBuf>,
    /// Worker threads for hashing (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// Most annotations printed per run (GitHub shows 10 per step and 50 per job anyway).
const MAX_ANNOTATIONS: usize = 50;

fn json_value(reports: &[GateReport]) -> serde_json::Value {
    if reports.len() == 1 {
        serde_json::to_value(&reports[0]).unwrap_or_default()
    } else {
        serde_json::to_value(reports).unwrap_or_default()
    }
}

fn sarif(reports: &[GateReport]) -> serde_json::Value {
    let all: Vec<report::Finding> = reports.iter().flat_map(|r| r.findings.clone()).collect();
    report::sarif::to_sarif(&all)
}

fn write(path: &Path, text: &str) -> Result<()> {
    mlsign::bom::write_public(path, text.as_bytes(), true)
        .with_context(|| format!("cannot write {}", path.display()))
}

pub fn run(a: GateArgs) -> Result<Exit> {
    let per_subject = !a.bundles.is_empty()
        || a.bom.is_some()
        || a.behave_report.is_some()
        || !a.approvals.is_empty();
    if per_subject && a.subjects.len() > 1 {
        bail!("--bundle, --bom, --behave-report and --approval name one subject's evidence; gate one subject at a time with them");
    }
    let policy = Policy::load(&a.policy)?;
    let opts = GateOptions {
        evidence: Evidence {
            bundles: a.bundles.clone(),
            bom: a.bom.clone(),
            behave_report: a.behave_report.clone(),
            lineage: a.lineage.clone(),
            approvals: a.approvals.clone(),
        },
        threads: a.threads,
        registry: None,
    };
    let mut reports = Vec::new();
    for s in &a.subjects {
        reports.push(gate::run(&policy, s, &opts)?);
    }
    if let Some(p) = &a.audit_log {
        audit::append(p, &reports)
            .with_context(|| format!("--audit-log {}: cannot append", p.display()))?;
    }
    let json_text = report::json::to_string(&json_value(&reports));
    if let Some(p) = &a.json_output {
        write(p, &json_text)?;
    }
    if let Some(p) = &a.sarif_output {
        write(p, &report::json::to_string(&sarif(&reports)))?;
    }
    if let Some(p) = &a.markdown_output {
        write(p, &render::markdown(&reports, report::markdown::MAX_BYTES))?;
    }
    if a.annotations {
        let all: Vec<report::Finding> = reports.iter().flat_map(|r| r.findings.clone()).collect();
        let enforced = reports.iter().any(|r| r.verdict == report::Verdict::Fail);
        eprint!(
            "{}",
            report::github::annotations(&all, MAX_ANNOTATIONS, enforced)
        );
    }
    if let Some(p) = &a.github_output {
        let worst = reports
            .iter()
            .map(|r| r.verdict)
            .max()
            .unwrap_or(report::Verdict::Fail);
        let digests: Vec<&str> = reports
            .iter()
            .filter_map(|r| r.subject.digest.as_deref())
            .collect();
        let text = report::github::output("verdict", worst.as_str())
            + &report::github::output("digest", &digests.join("\n"));
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(p)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .with_context(|| format!("--github-output {}", p.display()))?;
    }
    match a.format {
        Format::Human => {
            for r in &reports {
                print!("{}", render::human(r));
            }
        }
        Format::Json => print!("{json_text}"),
        Format::Sarif => print_json(&sarif(&reports)),
        Format::Markdown => print!(
            "{}",
            render::markdown(&reports, report::markdown::MAX_BYTES)
        ),
    }
    // The worst outcome decides: error (2) over violation (1) over pass (0).
    let exit = reports
        .iter()
        .map(|r| r.outcome.exit)
        .max_by_key(|e| *e as i32)
        .unwrap_or(Exit::Error);
    Ok(exit)
}
