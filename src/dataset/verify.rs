//! `mlsign dataset verify`: re-hash every dataset version and every step's code, compare with
//! the lineage, and say which steps the changes break.

use super::lineage::{LineageError, Loaded};
use crate::digest::{self, Difference, HashConfig, Manifest};
use crate::report::{Finding, Location, Severity};
use serde::Serialize;

/// What verification found for one dataset version.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetStatus {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub path: String,
    pub recorded: String,
    pub actual: String,
    pub files: usize,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub lineage: String,
    pub datasets: Vec<DatasetStatus>,
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Options for [`verify`].
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Do not re-hash the code recorded for steps (it may not be checked out where you audit).
    pub skip_code: bool,
    pub threads: Option<usize>,
}

/// Re-hash what a record names. A missing dataset root is an error, not a finding: nothing can
/// be decided about it.
pub fn hash_record_path(
    l: &Loaded,
    path: &str,
    threads: Option<usize>,
) -> Result<Manifest, LineageError> {
    let p = l.resolve(path);
    let cfg = HashConfig {
        threads,
        ..HashConfig::default()
    };
    Manifest::from_path(&p, &cfg).map_err(|e| match e {
        digest::Error::NotFound { .. } => LineageError::Hash(format!(
            "{}: {path:?} named in the lineage does not exist ({})",
            l.file.display(),
            p.display()
        )),
        e => LineageError::Hash(format!("{}: {e}", l.file.display())),
    })
}

pub fn verify(l: &Loaded, opts: &VerifyOptions) -> Result<VerifyReport, LineageError> {
    let ds = &l.lineage.datasets;
    let lineage_name = l.file.display().to_string();
    let mut findings = Vec::new();
    let mut statuses = Vec::with_capacity(ds.len());
    let mut changed = vec![false; ds.len()];
    for i in l.topo_order() {
        let r = &ds[i];
        let actual = hash_record_path(l, &r.path, opts.threads)?;
        let recorded = r
            .manifest()
            .map_err(|e| LineageError::Hash(e.to_string()))?;
        let diffs = digest::diff(&recorded, &actual);
        let root = format!("sha256:{}", actual.root_digest_hex());
        for d in &diffs {
            let (code, what) = match d {
                Difference::Modified { path } => (
                    "DSL001",
                    format!("{path}: content changed since it was recorded"),
                ),
                Difference::Missing { path } => {
                    ("DSL002", format!("{path}: recorded, but missing"))
                }
                Difference::Extra { path } => {
                    ("DSL003", format!("{path}: present, but not recorded"))
                }
                Difference::Renamed { from, to } => (
                    "DSL004",
                    format!("{from} renamed to {to} since it was recorded"),
                ),
            };
            findings.push(
                Finding::new(
                    code,
                    Severity::High,
                    format!("dataset {:?}: {what}", r.label()),
                )
                .at(Location {
                    path: r.path.clone(),
                    member: Some(d.path().to_string()),
                    stream: None,
                    offset: None,
                }),
            );
        }
        // Same files but another root would mean another manifest order: still a change.
        changed[i] = !diffs.is_empty() || root != r.digest;
        statuses.push(DatasetStatus {
            name: r.name.clone(),
            version: r.version.clone(),
            path: r.path.clone(),
            recorded: r.digest.clone(),
            actual: root,
            files: actual.resources().len(),
            ok: !changed[i],
        });
        if let (Some(step), false) = (&r.step, opts.skip_code) {
            for c in &step.code {
                let m = hash_record_path(l, &c.path, opts.threads)?;
                let now = format!("sha256:{}", m.root_digest_hex());
                if now != c.digest {
                    findings.push(
                        Finding::new(
                            "DSL006",
                            Severity::High,
                            format!(
                                "step {:?} (made {:?}): code {} changed since the step ran \
                                 (recorded {}, now {})",
                                step.name,
                                r.label(),
                                c.path,
                                short(&c.digest),
                                short(&now)
                            ),
                        )
                        .at(Location::path(c.path.clone())),
                    );
                }
            }
        }
    }
    // Name the broken steps: the one that made a changed dataset, and every one that consumed it.
    for (i, r) in ds.iter().enumerate() {
        if !changed[i] {
            continue;
        }
        if let Some(step) = &r.step {
            findings.push(
                Finding::new(
                    "DSL005",
                    Severity::High,
                    format!(
                        "step {:?} is broken: its output {:?} ({}) no longer matches what the \
                         step recorded",
                        step.name,
                        r.label(),
                        short(&r.digest)
                    ),
                )
                .at(Location::path(r.path.clone())),
            );
        }
        for j in l.children(i) {
            let c = &ds[j];
            let step = c.step.as_ref().map(|s| s.name.as_str()).unwrap_or("?");
            findings.push(
                Finding::new(
                    "DSL005",
                    Severity::High,
                    format!(
                        "step {step:?} is broken: it made {:?} from {:?} {}, and that input has \
                         changed since",
                        c.label(),
                        r.label(),
                        short(&r.digest)
                    ),
                )
                .at(Location::path(c.path.clone())),
            );
        }
    }
    Ok(VerifyReport {
        lineage: lineage_name,
        datasets: statuses,
        findings,
    })
}

pub use crate::util::short;
