//! `mlsign dataset verify` for the output sinks ([`crate::report::render`]).

use super::verify::{short, DatasetStatus, VerifyReport};
use crate::report::{human, Finding, Report, Table, Verdict};
use serde::Serialize;

/// `dataset verify --format json`.
#[derive(Serialize)]
struct Doc<'a> {
    lineage: &'a str,
    verified: bool,
    datasets: &'a [DatasetStatus],
    findings: &'a [Finding],
}

fn label(d: &DatasetStatus) -> String {
    match &d.version {
        Some(v) => format!("{}@{v}", d.name),
        None => d.name.clone(),
    }
}

impl Report for VerifyReport {
    fn title(&self) -> &'static str {
        "mlsign dataset verify"
    }

    fn verdict(&self) -> Verdict {
        Verdict::pass_if(self.ok())
    }

    fn headline(&self) -> String {
        format!(
            "{}: {}",
            self.lineage,
            if self.ok() {
                "lineage verified"
            } else {
                "FAILED"
            }
        )
    }

    fn findings(&self) -> Vec<Finding> {
        self.findings.clone()
    }

    fn table(&self) -> Table {
        Table {
            columns: vec!["dataset", "status", "recorded", "now", "files"],
            rows: self
                .datasets
                .iter()
                .map(|d| {
                    vec![
                        label(d),
                        if d.ok { "ok" } else { "changed" }.into(),
                        short(&d.recorded),
                        short(&d.actual),
                        d.files.to_string(),
                    ]
                })
                .collect(),
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::to_value(Doc {
            lineage: &self.lineage,
            verified: self.ok(),
            datasets: &self.datasets,
            findings: &self.findings,
        })
        .unwrap_or_default()
    }

    fn human(&self) -> String {
        let mut s = String::new();
        for d in &self.datasets {
            if d.ok {
                s.push_str(&format!(
                    "ok      {} {} ({} files)\n",
                    label(d),
                    short(&d.recorded),
                    d.files
                ));
            } else {
                s.push_str(&format!(
                    "CHANGED {} recorded {} now {}\n",
                    label(d),
                    short(&d.recorded),
                    short(&d.actual)
                ));
            }
        }
        s.push_str(&human::findings(&self.findings));
        s.push_str(&self.headline());
        s.push('\n');
        s
    }
}
