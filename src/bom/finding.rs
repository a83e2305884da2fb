//! BOM validation issues as findings: severities are set here, where issues are made.

use super::validate::Issue;
use crate::report::{Finding, Location, Severity};

impl Issue {
    /// The finding for this issue in the BOM file `file`; the JSON pointer is the member.
    pub fn to_finding(&self, file: &str) -> Finding {
        let sev = match self.code {
            // A model without hashes can still be described; everything else breaks the BOM.
            "BOM004" => Severity::Medium,
            _ => Severity::High,
        };
        Finding::new(self.code, sev, self.message.clone()).at(Location {
            path: file.to_string(),
            member: Some(if self.pointer.is_empty() {
                "/".into()
            } else {
                self.pointer.clone()
            }),
            stream: None,
            offset: None,
        })
    }
}

/// BOM008: the BOM's attestation does not verify or does not cover the BOM; `at` is the BOM or
/// bundle file.
pub fn attestation_finding(why: impl Into<String>, at: &str) -> Finding {
    Finding::new("BOM008", Severity::Critical, why).at(Location::path(at))
}
