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
    // ML-BOM (bom validate / bom verify)
    ("BOM001", "BOM violates the CycloneDX 1.6 JSON schema"),
    ("BOM002", "duplicate bom-ref"),
    ("BOM003", "reference names no bom-ref in the BOM (dependency, model card dataset, formulation input/output)"),
    ("BOM004", "machine-learning-model component without hashes"),
    ("BOM005", "model or dataset file differs from its hash in the BOM"),
    ("BOM006", "file listed in the BOM is missing"),
    ("BOM007", "file present but not listed in the BOM"),
    ("BOM008", "BOM attestation does not verify, or does not cover this BOM"),
    // Dataset lineage (dataset verify)
    ("DSL001", "dataset file content changed since it was recorded"),
    ("DSL002", "recorded dataset file is missing"),
    ("DSL003", "file present in a dataset but not recorded"),
    ("DSL004", "dataset file renamed since it was recorded"),
    ("DSL005", "lineage step broken: its output or one of its inputs changed since it was recorded"),
    ("DSL006", "code a lineage step ran changed since the step was recorded"),
];

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
