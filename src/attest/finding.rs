//! Verification failures as findings: the severity is set here, where the failure is made.

use super::Error;
use crate::report::{Finding, Location, Severity};

impl Error {
    /// The finding for a rejected signature ([`Error::Rejected`]), located at `at` (the bundle);
    /// `None` for errors that decide nothing (exit 2).
    pub fn to_finding(&self, at: &str) -> Option<Finding> {
        match self {
            Error::Rejected { code, message } => {
                Some(Finding::new(code, Severity::Critical, message.clone()).at(Location::path(at)))
            }
            _ => None,
        }
    }
}
