//! The one table of stable finding codes. Codes are never reused or renumbered; add new ones at
//! the end of their family. README.md documents the same table.

/// (code, one-line summary)
pub const CODES: &[(&str, &str)] = &[
    // Signing and verification (digest + attest)
    ("SIG001", "file content differs from what was signed"),
    ("SIG002", "signed file is missing"),
    ("SIG003", "file present but not covered by the signature"),
    ("SIG004", "file renamed since signing (same content, other path)"),
    ("SIG005", "signature does not verify over the signed payload"),
    ("SIG006", "public key or certificate does not match the bundle's key hint"),
    ("SIG007", "certificate chain does not lead to a trusted root, or the certificate is unfit for code signing"),
    ("SIG008", "signed manifest is malformed or unsafe (absolute path, `..`, duplicate entry)"),
    ("SIG009", "hashing configuration in the signature differs from the one requested"),
    // Behavioural diff (behave)
    (BHV001, "backdoor-like divergence: under a probe the candidate sends inputs of most source classes to one target class, beyond the baseline (statistic above the calibrated threshold)"),
    (BHV002, "clean drift above the suite's limit: the candidate changes many top-1 predictions on unprobed inputs"),
    (BHV003, "the suite's decision threshold carries no calibration provenance, so no false-positive rate can be stated"),
    (BHV004, "the threshold was calibrated for another baseline, input set or probe library than the one used now, so its false-positive rate does not carry over"),
];

pub const BHV001: &str = "BHV001";
pub const BHV002: &str = "BHV002";
pub const BHV003: &str = "BHV003";
pub const BHV004: &str = "BHV004";

/// Summary for a code, if it is known.
pub fn describe(code: &str) -> Option<&'static str> {
    CODES.iter().find(|(c, _)| *c == code).map(|(_, d)| *d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = HashSet::new();
        for (code, summary) in CODES {
            assert!(seen.insert(*code), "duplicate finding code {code}");
            assert_eq!(code.len(), 6, "code {code} must be 3 letters + 3 digits");
            assert!(code[..3].chars().all(|c| c.is_ascii_uppercase()), "{code}");
            assert!(code[3..].chars().all(|c| c.is_ascii_digit()), "{code}");
            assert!(!summary.is_empty());
        }
    }
}
