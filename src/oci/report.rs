//! `mlsign verify oci://…` and `mlsign verify DIR --against oci://…` for the output sinks
//! ([`crate::report::render`]). The findings and their severities are made here: a rejected
//! signature candidate is `high` under its own code (OCI002–OCI005, SGS…), and no valid
//! signature at all is OCI001, `critical`.

use super::verify::{DirOutcome, VerifyOutcome};
use crate::report::{human, Finding, Location, Report, Severity, Table, Verdict};
use serde_json::json;
use std::path::PathBuf;

impl VerifyOutcome {
    /// One finding per rejected signature candidate under its own code: `high` when no
    /// signature verified (then OCI001, `critical`, for the reference too), `info` when another
    /// one did (a note: the reference is verified).
    pub fn findings(&self) -> Vec<Finding> {
        let sev = if self.verified {
            Severity::Info
        } else {
            Severity::High
        };
        let mut f: Vec<Finding> = self
            .candidates
            .iter()
            .filter(|c| !c.verified)
            .map(|c| {
                Finding::new(
                    c.code.unwrap_or("OCI005"),
                    sev,
                    format!(
                        "{} ({}): {}",
                        c.kind,
                        c.source,
                        c.reason.as_deref().unwrap_or("rejected")
                    ),
                )
                .at(Location {
                    member: Some(c.manifest.clone()),
                    ..Location::path(self.reference.clone())
                })
            })
            .collect();
        if self.verified {
            return f;
        }
        f.push(
            Finding::new(
                "OCI001",
                Severity::Critical,
                if self.candidates.is_empty() {
                    format!(
                        "no signature found for {} (the tag may have moved since signing)",
                        self.digest
                    )
                } else {
                    format!(
                        "none of the {} signatures found is valid for {}",
                        self.candidates.len(),
                        self.digest
                    )
                },
            )
            .at(Location::path(self.reference.clone())),
        );
        f
    }

    fn what(&self) -> String {
        match (self.model, self.model_files) {
            (Some(m), Some(n)) => format!("{} model artifact, {n} files", m.name()),
            (Some(m), None) => format!("{} model artifact", m.name()),
            (None, _) => self.media_type.clone(),
        }
    }

    fn candidate_table(&self) -> Table {
        Table {
            columns: vec!["signature", "source", "kind", "status", "signer or reason"],
            rows: self
                .candidates
                .iter()
                .map(|c| {
                    vec![
                        c.manifest.clone(),
                        c.source.to_string(),
                        c.kind.clone(),
                        if c.verified {
                            "verified".to_string()
                        } else {
                            format!("rejected ({})", c.code.unwrap_or("-"))
                        },
                        if c.verified {
                            c.signer.clone().unwrap_or_default()
                        } else {
                            c.reason.clone().unwrap_or_default()
                        },
                    ]
                })
                .collect(),
        }
    }
}

impl Report for VerifyOutcome {
    fn title(&self) -> &'static str {
        "mlsign verify"
    }

    fn verdict(&self) -> Verdict {
        Verdict::pass_if(self.verified)
    }

    fn headline(&self) -> String {
        if self.verified {
            format!(
                "Verified: {} is {} ({})",
                self.reference,
                self.digest,
                self.what()
            )
        } else {
            format!(
                "FAILED: {} ({}, {})",
                self.reference,
                self.digest,
                self.what()
            )
        }
    }

    fn findings(&self) -> Vec<Finding> {
        VerifyOutcome::findings(self)
    }

    fn facts(&self) -> Vec<(&'static str, String)> {
        vec![
            ("digest", self.digest.clone()),
            ("read from the registry", human::bytes(self.bytes_read)),
        ]
    }

    fn table(&self) -> Table {
        self.candidate_table()
    }

    fn json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        v["findings"] = json!(VerifyOutcome::findings(self));
        v
    }

    fn human(&self) -> String {
        let mut s = format!("{}\n", self.headline());
        if let Some(c) = self.verified_candidate() {
            s.push_str(&format!(
                "  {} via the {} ({}), {} method, signer {}\n",
                c.kind,
                c.source,
                c.manifest,
                c.method.unwrap_or("?"),
                c.signer.as_deref().unwrap_or("?")
            ));
            if c.kind.starts_with("model") {
                s.push_str("  the artifact's filepath → digest set equals the signed OMS manifest (no layer fetched)\n");
            }
            let rejected = self.candidates.iter().filter(|c| !c.verified).count();
            if rejected > 0 {
                s.push_str(&format!(
                    "  {rejected} other signature(s) did not verify:\n"
                ));
                for c in self.candidates.iter().filter(|c| !c.verified) {
                    s.push_str(&format!(
                        "    [{}] {} {}: {}\n",
                        c.code.unwrap_or("-"),
                        c.source,
                        c.manifest,
                        c.reason.as_deref().unwrap_or("")
                    ));
                }
            }
        } else {
            s.push_str(&human::findings(&VerifyOutcome::findings(self)));
            for d in &self.discovery {
                s.push_str(&format!("  looked at: {d}\n"));
            }
        }
        s.push_str(&format!(
            "  read {} from the registry\n",
            human::bytes(self.bytes_read)
        ));
        s
    }
}

/// `verify DIR --against oci://…`: the directory and what was found.
#[derive(Debug)]
pub struct DirReport {
    pub path: PathBuf,
    pub outcome: DirOutcome,
}

impl DirReport {
    pub fn verified(&self) -> bool {
        self.outcome.registry.verified && self.outcome.differences.is_empty()
    }
}

impl Report for DirReport {
    fn title(&self) -> &'static str {
        "mlsign verify"
    }

    fn verdict(&self) -> Verdict {
        Verdict::pass_if(self.verified())
    }

    fn headline(&self) -> String {
        let o = &self.outcome;
        if self.verified() {
            format!(
                "Verified: {} matches {} ({} files, {})",
                self.path.display(),
                o.registry.reference,
                o.files_checked,
                human::bytes(o.bytes)
            )
        } else {
            format!(
                "FAILED: {} does not match {}",
                self.path.display(),
                o.registry.reference
            )
        }
    }

    fn findings(&self) -> Vec<Finding> {
        let mut f = self.outcome.registry.findings();
        f.extend(self.outcome.differences.iter().map(|d| d.to_finding()));
        f
    }

    fn facts(&self) -> Vec<(&'static str, String)> {
        vec![
            ("digest", self.outcome.registry.digest.clone()),
            (
                "files",
                format!(
                    "{} checked, {} difference(s)",
                    self.outcome.files_checked,
                    self.outcome.differences.len()
                ),
            ),
        ]
    }

    fn table(&self) -> Table {
        self.outcome.registry.candidate_table()
    }

    fn json(&self) -> serde_json::Value {
        let o = &self.outcome;
        json!({
            "verified": self.verified(),
            "path": self.path,
            "registry": o.registry,
            "differences": o.differences,
            "files_checked": o.files_checked,
            "bytes": o.bytes,
            "findings": self.findings(),
        })
    }

    fn human(&self) -> String {
        let o = &self.outcome;
        if !o.registry.verified {
            return Report::human(&o.registry);
        }
        let mut s = format!("{}\n", self.headline());
        if let Some(c) = o.registry.verified_candidate().filter(|_| self.verified()) {
            s.push_str(&format!(
                "  {} {} verified ({} via the {})\n",
                o.registry.digest, c.kind, c.manifest, c.source
            ));
        }
        // Differences, and notes about other signatures that did not verify.
        s.push_str(&human::findings(&self.findings()));
        s
    }
}

/// `mlsign pull`: the model pulled, or the verification that stopped it (nothing pulled).
#[derive(Debug)]
pub enum PullReport {
    Pulled(super::PullOutcome),
    NotVerified(VerifyOutcome),
}

impl Report for PullReport {
    fn title(&self) -> &'static str {
        "mlsign pull"
    }

    fn verdict(&self) -> Verdict {
        match self {
            PullReport::Pulled(_) => Verdict::Pass,
            PullReport::NotVerified(_) => Verdict::Fail,
        }
    }

    fn headline(&self) -> String {
        match self {
            PullReport::Pulled(o) => format!(
                "Pulled {} ({}) into {}: {} files, {}, every blob digest checked",
                o.reference,
                o.format.name(),
                o.directory.display(),
                o.files,
                human::bytes(o.bytes)
            ),
            PullReport::NotVerified(v) => format!(
                "FAILED: {} has no valid signature for {}; nothing was pulled",
                v.reference, v.digest
            ),
        }
    }

    /// Pulled: notes about signatures that did not verify beside the one that did.
    fn findings(&self) -> Vec<Finding> {
        match self {
            PullReport::Pulled(o) => o
                .verified
                .as_ref()
                .map(|v| v.findings())
                .unwrap_or_default(),
            PullReport::NotVerified(v) => v.findings(),
        }
    }

    fn facts(&self) -> Vec<(&'static str, String)> {
        match self {
            PullReport::Pulled(o) => vec![("digest", o.digest.clone())],
            PullReport::NotVerified(v) => vec![("digest", v.digest.clone())],
        }
    }

    fn table(&self) -> Table {
        match self {
            PullReport::Pulled(o) => o
                .verified
                .as_ref()
                .map(|v| v.candidate_table())
                .unwrap_or_default(),
            PullReport::NotVerified(v) => v.candidate_table(),
        }
    }

    fn json(&self) -> serde_json::Value {
        match self {
            PullReport::Pulled(o) => serde_json::to_value(o).unwrap_or_default(),
            // The verification as `verify oci://` prints it (with its findings).
            PullReport::NotVerified(v) => json!({"pulled": false, "verification": Report::json(v)}),
        }
    }

    fn human(&self) -> String {
        let mut s = format!("{}\n", self.headline());
        if let PullReport::Pulled(o) = self {
            if let Some(c) = o.verified.as_ref().and_then(|v| v.verified_candidate()) {
                s.push_str(&format!(
                    "  signature verified first: {} via the {}\n",
                    c.kind, c.source
                ));
            }
        }
        s.push_str(&human::findings(&self.findings()));
        s
    }
}
