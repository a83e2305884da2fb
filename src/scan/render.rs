//! `mlsign scan` for the output sinks ([`crate::report::render`]).

use super::{ScanReport, Verdict};
use crate::report::{self, Finding, Report, Severity, Table};
use std::fmt::Write;

impl ScanReport {
    /// Whether the scan fails: a malicious or unscannable file, or a suspicious one when the
    /// policy fails on suspicious files.
    pub fn failed(&self) -> bool {
        self.files.iter().any(|f| match f.verdict {
            Verdict::Malicious | Verdict::Unscannable => true,
            Verdict::Suspicious => self.fail_on_suspicious,
            Verdict::Clean => false,
        })
    }

    fn count(&self, v: Verdict) -> usize {
        self.files.iter().filter(|f| f.verdict == v).count()
    }
}

impl Report for ScanReport {
    fn title(&self) -> &'static str {
        "mlsign scan"
    }

    fn verdict(&self) -> report::Verdict {
        if self.failed() {
            report::Verdict::Fail
        } else {
            report::Verdict::Pass
        }
    }

    fn headline(&self) -> String {
        format!(
            "{} file(s): {} clean, {} suspicious, {} malicious, {} unscannable",
            self.files.len(),
            self.count(Verdict::Clean),
            self.count(Verdict::Suspicious),
            self.count(Verdict::Malicious),
            self.count(Verdict::Unscannable)
        )
    }

    fn findings(&self) -> Vec<Finding> {
        self.files
            .iter()
            .flat_map(|f| f.findings.iter().map(|x| x.to_finding(&f.path)))
            .collect()
    }

    fn facts(&self) -> Vec<(&'static str, String)> {
        if self.fail_on_suspicious {
            vec![("policy", "strict: suspicious files fail".into())]
        } else {
            Vec::new()
        }
    }

    fn table(&self) -> Table {
        Table {
            columns: vec!["file", "verdict", "findings"],
            rows: self
                .files
                .iter()
                .map(|f| {
                    vec![
                        f.path.clone(),
                        f.verdict.as_str().into(),
                        f.findings.len().to_string(),
                    ]
                })
                .collect(),
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// One line per file with its findings under it; `info` notes on clean files (a README is
    /// no model format) are gathered by code at the end instead, so a clean tree stays short.
    fn human(&self) -> String {
        let mut s = String::new();
        let mut notes: Vec<(&'static str, Vec<&str>)> = Vec::new();
        for f in &self.files {
            let _ = writeln!(s, "{}: {}", f.path, f.verdict.as_str().to_uppercase());
            for x in f.findings.iter().map(|x| x.to_finding(&f.path)) {
                if f.verdict == Verdict::Clean && x.severity == Severity::Info {
                    match notes.iter_mut().find(|(c, _)| *c == x.code) {
                        Some((_, files)) => files.push(&f.path),
                        None => notes.push((x.code, vec![&f.path])),
                    }
                    continue;
                }
                let mut loc = String::new();
                if let Some(l) = &x.location {
                    if let Some(m) = &l.member {
                        let _ = write!(loc, " {m}");
                    }
                    if let Some(o) = l.offset {
                        let _ = write!(loc, " @{o}");
                    }
                }
                let _ = writeln!(s, "  {} [{}]{loc}: {}", x.code, x.severity, x.message);
            }
        }
        for (code, files) in &notes {
            let shown: Vec<&str> = files.iter().take(5).copied().collect();
            let _ = writeln!(
                s,
                "note: {code} [info] on {} clean file(s) ({}): {}{}",
                files.len(),
                report::codes::describe(code).unwrap_or(""),
                shown.join(", "),
                if files.len() > shown.len() {
                    ", …"
                } else {
                    ""
                }
            );
        }
        let _ = writeln!(s, "{}", self.headline());
        s
    }
}
