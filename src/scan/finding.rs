//! What a scan reports: one [`ScanFinding`] per problem, and one [`Verdict`] per file.

use super::diags::Code;
use crate::report::{Finding, Location, Severity};
use serde::Serialize;

/// A file's verdict, from the worst of its findings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Clean,
    Suspicious,
    Unscannable,
    Malicious,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Clean => "clean",
            Verdict::Suspicious => "suspicious",
            Verdict::Unscannable => "unscannable",
            Verdict::Malicious => "malicious",
        }
    }
}

/// One finding, with where it is inside the file. Every key is always present in JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScanFinding {
    pub code: &'static str,
    pub severity: Severity,
    /// Archive member path (nested containers joined with `!`), if any.
    pub member: Option<String>,
    /// Index of the pickle stream within the member (stacked pickles), if any.
    pub stream: Option<u32>,
    /// Byte offset within the member (or the file).
    pub offset: Option<u64>,
    /// The resolved global (`module.name`) the finding is about, if any.
    pub global: Option<String>,
    pub message: String,
}

/// Codes whose presence means "could not be read": the file is unscannable, never clean.
pub const UNSCANNABLE_CODES: &[Code] = Code::UNSCANNABLE;

impl ScanFinding {
    pub fn new(code: Code, severity: Severity, message: impl Into<String>) -> Self {
        ScanFinding {
            code: code.as_str(),
            severity,
            member: None,
            stream: None,
            offset: None,
            global: None,
            message: message.into(),
        }
    }
    pub fn offset(mut self, o: u64) -> Self {
        self.offset = Some(o);
        self
    }
    pub fn global(mut self, g: impl Into<String>) -> Self {
        self.global = Some(g.into());
        self
    }

    /// The verdict this finding alone implies.
    pub fn verdict(&self) -> Verdict {
        if UNSCANNABLE_CODES.iter().any(|c| c.as_str() == self.code) {
            return Verdict::Unscannable;
        }
        match self.severity {
            Severity::Critical | Severity::High => Verdict::Malicious,
            Severity::Medium => Verdict::Suspicious,
            Severity::Low | Severity::Info => Verdict::Clean,
        }
    }

    /// The shared report type (for SARIF).
    pub fn to_finding(&self, path: &str) -> Finding {
        let mut msg = self.message.clone();
        if let Some(s) = self.stream {
            msg = format!("{msg} (pickle stream {s})");
        }
        Finding::new(self.code, self.severity, msg).at(Location {
            path: path.to_string(),
            member: self.member.clone(),
            stream: self.stream,
            offset: self.offset,
        })
    }
}

/// Where findings are being collected: the member path and stream prefix to stamp on them.
#[derive(Clone, Debug, Default)]
pub struct Ctx {
    pub member: Option<String>,
    pub depth: u32,
}

impl Ctx {
    pub fn child(&self, name: &str) -> Ctx {
        Ctx {
            member: Some(match &self.member {
                Some(m) => format!("{m}!{name}"),
                None => name.to_string(),
            }),
            depth: self.depth + 1,
        }
    }
    pub fn stamp(&self, mut f: ScanFinding) -> ScanFinding {
        if f.member.is_none() {
            f.member = self.member.clone();
        }
        f
    }
}
