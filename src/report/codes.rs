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
    // Scanning (pickle analyser)
    ("PKL001", "denylisted global: reaches code execution, process, file, network or import machinery"),
    ("PKL002", "global not in the allowlist"),
    ("PKL003", "custom class of a known library (suspicious tier): allow it with a policy if expected"),
    ("PKL004", "dotted global name: attribute traversal from protocol 4 on"),
    ("PKL005", "STACK_GLOBAL operands are not literal strings (computed global)"),
    ("PKL006", "memo reference to an entry that was never stored"),
    ("PKL007", "EXT opcode: global taken from the copyreg extension registry"),
    ("PKL008", "call on a value that is not a named global"),
    ("PKL009", "broken or truncated pickle stream (what ran before the break is reported)"),
    ("PKL011", "BUILD / item assignment applied to a global itself (mutates module state)"),
    ("PKL012", "non-pickle data after the last STOP"),
    ("PKL013", "bytes inside the pickle hold a nested payload with findings"),
    ("PKL014", "loaders disagree on a stream in a way mlsign cannot settle (an argument across a FRAME end), or too many anomalies to list"),
    ("PKL015", "unexpected or malformed persistent id"),
    ("PKL016", "PROTO opcode not at the start of the stream"),
    ("PKL017", "out-of-band buffer opcode (NEXT_BUFFER) without buffers"),
    ("PKL018", "custom class allowed by the policy"),
    ("PKL019", "call result thrown away right after the call (payload-then-POP)"),
    ("PKL020", "joblib < 0.10 array wrapper loads a companion file with numpy.load(allow_pickle=True) (high when the name leaves the file's directory)"),
    ("PKL021", "unscannable: resource limit: replaying the pickle needs more memory or opcodes than mlsign's budget allows"),
    // Scanning (containers)
    ("SCN001", "unscannable: archive, compression or encryption mlsign cannot look inside"),
    ("SCN002", "unscannable: container is corrupt or too large to read"),
    ("SCN003", "ZIP member CRC or size mismatch (Python's zipfile refuses, torch loads)"),
    ("SCN004", "ZIP member with unusual or encryption flag bits"),
    ("SCN005", "ZIP local header name differs from the central directory"),
    ("SCN006", "data precedes the ZIP archive"),
    ("SCN007", "duplicate ZIP member name"),
    ("SCN008", "torch storage referenced by the pickle is missing"),
    ("SCN009", "torch storage size differs from what the pickle declares"),
    ("SCN010", "legacy torch layout anomaly (stacked pickles, tar records, trailing data)"),
    ("SCN011", "TorchScript archive: code members run by the TorchScript interpreter"),
    ("SCN012", "NumPy .npy header: invalid, object dtype (pickle), or data size anomaly"),
    ("SCN013", "safetensors header invalid (offsets, dtypes, sizes, trailing bytes)"),
    ("SCN014", "GGUF header invalid"),
    ("SCN015", "GGUF chat template (Jinja) present; high when it reaches Python internals"),
    ("SCN016", "Keras Lambda layer or layer from a non-Keras module"),
    ("SCN017", "nesting deeper than the policy limit"),
    ("SCN018", "unscannable: compressed data cannot be decompressed within the limits"),
    ("SCN019", "not a recognised model, archive or pickle format"),
    ("SCN021", "unscannable: ZIP compression method not supported"),
    ("SCN030", "ZIP readers disagree: several end records or directories, loaders read different archives"),
    ("SCN031", "unscannable: GGUF chat template is not valid Jinja (or not UTF-8), so it cannot be checked"),
    ("SCN032", "unscannable: special file (FIFO, device, socket) or symlinked directory skipped"),
    // Behavioural diff (behave)
    (BHV001, "backdoor-like divergence: under a probe the candidate sends inputs of most source classes to one target class, beyond the baseline (statistic above the calibrated threshold)"),
    (BHV002, "clean drift above the suite's limit: the candidate changes many top-1 predictions on unprobed inputs"),
    (BHV003, "the suite's decision threshold carries no calibration provenance, so no false-positive rate can be stated"),
    (BHV004, "the threshold was calibrated for another baseline, input set or probe library than the one used now, so its false-positive rate does not carry over"),
    (BHV005, "the threshold's calibration sample is too small for its stated false-positive rate: the exact upper confidence bound on the FPR is above it"),
    (BHV006, "backdoor-like trigger synthesised: a small mask and pattern send most inputs of other classes to one class on the candidate but not on the baseline (synthesis statistic above its threshold)"),
    (BHV007, "backdoor-like trigger tokens found: a differential token search found a short token sequence that moves the candidate text model (to one class, or its next-token distribution) while the baseline stays put, above the search's threshold"),
    (BHV008, "trigger-token search unavailable for this candidate (quantised GGUF weights have no gradient, no differentiable forward for the family, or a different tokenizer): only the probe library was applied"),
    // Keyless Sigstore verification (verify --identity, conformance verify-bundle)
    ("SGS001", "Fulcio certificate chain does not lead to a CA of the trusted root"),
    ("SGS002", "signing certificate not valid at the verified signing time (expired or not yet valid)"),
    ("SGS003", "signed certificate timestamp (SCT) missing or not signed by a CT log of the trusted root"),
    ("SGS004", "certificate identity (SAN) is not the expected signer"),
    ("SGS005", "certificate OIDC issuer is not the expected one"),
    ("SGS006", "transparency-log inclusion proof does not lead to the checkpoint's root"),
    ("SGS007", "checkpoint missing, unsigned, signed by an unknown key or for another root"),
    ("SGS008", "signed entry timestamp (SET) does not verify"),
    ("SGS009", "RFC 3161 timestamp invalid, untrusted or outside its authority's validity"),
    ("SGS010", "transparency log not in the trusted root"),
    ("SGS011", "transparency-log entry inconsistent with the bundle (signature, certificate, envelope)"),
    ("SGS012", "integrated time in the future or outside the certificate's validity"),
    ("SGS013", "signature does not verify over the artifact or DSSE payload"),
    ("SGS014", "bundle or its log entry is for other content than the artifact"),
    ("SGS015", "managed-key bundle not signed by the given key"),
    ("SGS016", "fewer verified transparency-log entries or RFC 3161 timestamps than the policy requires"),
    // Gate and policy (mlsign gate, mlsign approve)
    (GAT001, "subject matches none of the policy's subject patterns (no_match = deny)"),
    (GAT002, "evidence a required check needs is missing (the file looked for is named)"),
    (GAT003, "signature requirement not met: fewer policy authorities verified a signature of the subject than the threshold"),
    (GAT004, "revoked: the subject digest, a signer key or a signer identity is on the policy's revocation list"),
    (GAT005, "the ML-BOM describes another artifact: its model digest differs from the subject's"),
    (GAT006, "the ML-BOM is not signed by a policy authority"),
    (GAT007, "the behave report does not match the policy's pins (suite sha256, baseline digest) or is about another model"),
    (GAT008, "the behave report did not pass: divergence or clean drift was flagged"),
    (GAT009, "fewer valid approvals than the policy requires"),
    (GAT010, "evidence exists but cannot be read, parsed or evaluated"),
    (GAT011, "approval not counted: bad signature, unknown reviewer, another digest, expired, or made with the signer's own key"),
    (GAT012, "a policy authority cannot be evaluated: its trust material (key, roots, keyless trusted root or regex) could not be loaded at gate time"),
    (GAT013, "a signed report (behave) is not signed by a policy authority, or its attestation does not cover the report"),
    (GAT014, "a tag reference where the policy requires a digest (require_digest = true)"),
    // Registries (verify oci://…, verify DIR --against oci://…)
    ("OCI001", "no valid signature covers the current manifest digest of the reference (unsigned, or the tag moved)"),
    ("OCI002", "signature covers another digest than the one the reference names now"),
    ("OCI003", "signature was made for another repository, or records none"),
    ("OCI004", "model artifact's filepath → digest set differs from the signed OMS manifest"),
    ("OCI005", "signature candidate unreadable: junk referrer entry, digest mismatch, malformed bundle or layer"),
    // Admission webhook (mlsign serve)
    (SRV001, "the admission deadline passed before verification finished (the slow step is named)"),
    (SRV002, "an image reference in the workload does not parse"),
    // Policy lint (mlsign policy check)
    (POL001, "policy setting that weakens it (audit mode, no_match = allow, an unsigned BOM accepted, a broad keyless identity…)"),
];

pub const BHV001: &str = "BHV001";
pub const BHV002: &str = "BHV002";
pub const BHV003: &str = "BHV003";
pub const BHV004: &str = "BHV004";
pub const BHV005: &str = "BHV005";
pub const BHV006: &str = "BHV006";
pub const BHV007: &str = "BHV007";
pub const BHV008: &str = "BHV008";
pub const GAT001: &str = "GAT001";
pub const GAT002: &str = "GAT002";
pub const GAT003: &str = "GAT003";
pub const GAT004: &str = "GAT004";
pub const GAT005: &str = "GAT005";
pub const GAT006: &str = "GAT006";
pub const GAT007: &str = "GAT007";
pub const GAT008: &str = "GAT008";
pub const GAT009: &str = "GAT009";
pub const GAT010: &str = "GAT010";
pub const GAT011: &str = "GAT011";
pub const GAT012: &str = "GAT012";
pub const GAT013: &str = "GAT013";
pub const GAT014: &str = "GAT014";
pub const SRV001: &str = "SRV001";
pub const SRV002: &str = "SRV002";
pub const POL001: &str = "POL001";

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

    fn sources(dir: &std::path::Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                sources(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("report/codes.rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                // Library code only: what follows `#[cfg(test)]` is test code.
                let code = text.split("#[cfg(test)]").next().unwrap_or("").to_string();
                out.push((p.display().to_string(), code));
            }
        }
    }

    /// Every code in the table is emitted by library code: its literal (`"SIG001"`) or its
    /// constant (`codes::BHV001`) appears outside this table and outside tests. A code nothing
    /// emits is a promise the tool does not keep; remove it or emit it.
    #[test]
    fn every_code_is_emitted_somewhere() {
        let mut files = Vec::new();
        sources(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        let mut never = Vec::new();
        for (code, _) in CODES {
            let lit = format!("\"{code}\"");
            let konst = format!("codes::{code}");
            let used = files
                .iter()
                .any(|(_, t)| t.contains(&lit) || t.contains(&konst));
            if !used {
                never.push(*code);
            }
        }
        assert!(never.is_empty(), "codes never emitted: {never:?}");
    }
}
