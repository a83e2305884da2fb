//! Differences as findings: the codes and severities are set here, where differences are made,
//! so `verify`, `bom verify` and the gate report them the same way.

use super::Difference;
use crate::report::{Finding, Location, Severity};

impl Difference {
    /// The signature finding (SIG001–SIG004) for this difference, located at the file's
    /// root-relative path.
    pub fn to_finding(&self) -> Finding {
        let (code, sev, msg) = match self {
            Difference::Modified { .. } => (
                "SIG001",
                Severity::Critical,
                "content differs from what was signed".to_string(),
            ),
            Difference::Missing { .. } => {
                ("SIG002", Severity::High, "signed, but missing".to_string())
            }
            Difference::Extra { .. } => (
                "SIG003",
                Severity::High,
                "present, but not covered by the signature".to_string(),
            ),
            Difference::Renamed { from, .. } => (
                "SIG004",
                Severity::High,
                format!("renamed from {from} (same content)"),
            ),
        };
        Finding::new(code, sev, msg).at(Location::path(self.path()))
    }
}
