//! Keyless Sigstore: offline verification of Sigstore bundles (v0.1–v0.3, message signatures and
//! DSSE, Fulcio certificates with SCTs, Rekor v1 and v2 entries with inclusion proofs, signed
//! checkpoints and SETs, RFC 3161 timestamps, managed-key bundles) against a `trusted_root.json`.
//!
//! The checks themselves are the `sigstore-verify` crate (sigstore-rust), chosen by measurement
//! (docs/keyless.md: 140/140 on the conformance corpus, 20 pure-Rust crates); it runs on
//! [`provider`], our RustCrypto provider, instead of its default aws-lc. This module adds what
//! mlsign needs around it: the embedded trust roots, identity and issuer matching (exact or
//! anchored regex), bounded input, and errors that say which check failed, each with its own
//! finding code. Nothing here touches the network.

pub mod provider;
pub mod sign;

use regex::Regex;
use sigstore_trust_root::TrustedRoot;
use sigstore_types::{Bundle, DerPublicKey, Sha256Hash};
use sigstore_verify::error::{CertificateError, TransparencyLogError};
use sigstore_verify::{PublicKeyVerificationPolicy, VerificationPolicy, Verifier};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Sigstore's public-good production trusted root (as shipped by sigstore-python 4.5.1).
pub const PRODUCTION_TRUSTED_ROOT: &str = include_str!("production_trusted_root.json");
/// Sigstore's staging trusted root.
pub const STAGING_TRUSTED_ROOT: &str = include_str!("staging_trusted_root.json");
/// Trusted roots are a few kilobytes; anything far larger is not one.
pub const MAX_TRUSTED_ROOT_BYTES: u64 = 4 << 20;
/// Bundles over a blob or an in-toto statement (conformance, BOMs). Model bundles carry the
/// whole manifest and use [`crate::attest::bundle::MAX_BUNDLE_BYTES`].
pub const MAX_BLOB_BUNDLE_BYTES: u64 = 64 << 20;
/// Identity and issuer regexes are compiled with this size limit (no regex bombs from policies).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Why a keyless (or managed-key) Sigstore bundle was not accepted. Check failures map to exit 1
/// and a finding code ([`KeylessError::code`]); the rest are unreadable input (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum KeylessError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {size} bytes is over the {limit} byte limit for a {what}")]
    TooLarge {
        path: PathBuf,
        what: &'static str,
        size: u64,
        limit: u64,
    },
    #[error("malformed bundle: {0}")]
    MalformedBundle(String),
    #[error("unsupported bundle: {0}")]
    UnsupportedBundle(String),
    #[error("trusted root: {0}")]
    TrustRoot(String),
    #[error("public key: {0}")]
    Key(String),
    #[error("invalid {what} regex {pattern:?}: {why}")]
    Regex {
        what: &'static str,
        pattern: String,
        why: String,
    },
    #[error("certificate chain: {0}")]
    Chain(String),
    #[error("time window: {0}")]
    TimeWindow(String),
    #[error("SCT: {0}")]
    Sct(String),
    #[error("identity mismatch: the certificate is for {actual:?}, expected {expected}")]
    Identity { expected: String, actual: String },
    #[error("issuer mismatch: the certificate's OIDC issuer is {actual:?}, expected {expected}")]
    Issuer { expected: String, actual: String },
    #[error("inclusion proof: {0}")]
    InclusionProof(String),
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("signed entry timestamp (SET): {0}")]
    Set(String),
    #[error("timestamp: {0}")]
    Timestamp(String),
    #[error("unknown transparency log: {0}")]
    UnknownLog(String),
    #[error("transparency log entry does not match the bundle: {0}")]
    EntryMismatch(String),
    #[error("integrated time: {0}")]
    IntegratedTime(String),
    #[error("signature: {0}")]
    Signature(String),
    #[error("artifact mismatch: {0}")]
    ArtifactMismatch(String),
    #[error("key mismatch: {0}")]
    KeyMismatch(String),
    /// Fewer transparency-log entries or RFC 3161 timestamps than a policy requires.
    #[error("evidence threshold: {0}")]
    Threshold(String),
}

impl KeylessError {
    /// The finding code of a failed check; `None` for unreadable input (exit 2).
    pub fn code(&self) -> Option<&'static str> {
        Some(match self {
            KeylessError::Chain(_) => "SGS001",
            KeylessError::TimeWindow(_) => "SGS002",
            KeylessError::Sct(_) => "SGS003",
            KeylessError::Identity { .. } => "SGS004",
            KeylessError::Issuer { .. } => "SGS005",
            KeylessError::InclusionProof(_) => "SGS006",
            KeylessError::Checkpoint(_) => "SGS007",
            KeylessError::Set(_) => "SGS008",
            KeylessError::Timestamp(_) => "SGS009",
            KeylessError::UnknownLog(_) => "SGS010",
            KeylessError::EntryMismatch(_) => "SGS011",
            KeylessError::IntegratedTime(_) => "SGS012",
            KeylessError::Signature(_) => "SGS013",
            KeylessError::ArtifactMismatch(_) => "SGS014",
            KeylessError::KeyMismatch(_) => "SGS015",
            KeylessError::Threshold(_) => "SGS016",
            KeylessError::Io { .. }
            | KeylessError::TooLarge { .. }
            | KeylessError::MalformedBundle(_)
            | KeylessError::UnsupportedBundle(_)
            | KeylessError::TrustRoot(_)
            | KeylessError::Key(_)
            | KeylessError::Regex { .. } => return None,
        })
    }

    /// What a user can do about it (the CLI prints this as advice).
    pub fn advice(&self) -> &'static str {
        match self {
            KeylessError::Identity { .. } | KeylessError::Issuer { .. } => {
                "the bundle was signed by someone else; check --identity/--issuer against the signer you trust"
            }
            KeylessError::Chain(_) | KeylessError::Sct(_) | KeylessError::UnknownLog(_) => {
                "the bundle does not come from the Sigstore instance in the trusted root; pass the right --trusted-root (or --staging)"
            }
            KeylessError::TrustRoot(_) => "pass a Sigstore trusted_root.json (protobuf-specs TrustedRoot)",
            KeylessError::Threshold(_) => {
                "the bundle lacks transparency-log entries or timestamps the policy requires; sign with a signing config that logs (and timestamps) the signature"
            }
            KeylessError::ArtifactMismatch(_) | KeylessError::EntryMismatch(_) => {
                "the bundle is for other content: the artifact changed or the bundle belongs to another one"
            }
            _ => "the bundle or its log entry was altered or is not genuine; obtain a fresh bundle from the signer",
        }
    }
}

/// A string a certificate claim must equal, or an anchored regex it must match in full.
#[derive(Clone, Debug)]
pub struct Matcher {
    text: String,
    regex: Option<Regex>,
}

impl Matcher {
    pub fn exact(text: impl Into<String>) -> Self {
        Matcher {
            text: text.into(),
            regex: None,
        }
    }

    /// A regex matched against the whole value (it is anchored: `^(?:RE)$`), unlike cosign's
    /// unanchored `--certificate-identity-regexp`, so `repo` cannot match `evil-repo-fork`.
    pub fn regex(what: &'static str, pattern: &str) -> Result<Self, KeylessError> {
        let re = regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| KeylessError::Regex {
                what,
                pattern: pattern.into(),
                why: e.to_string(),
            })?;
        Ok(Matcher {
            text: pattern.into(),
            regex: Some(re),
        })
    }

    pub fn matches(&self, value: &str) -> bool {
        match &self.regex {
            Some(re) => re.is_match(value),
            None => self.text == value,
        }
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.regex {
            Some(_) => write!(f, "a match of regex {:?}", self.text),
            None => write!(f, "{:?}", self.text),
        }
    }
}

/// Who must have signed: a Fulcio identity (SAN) from an OIDC issuer, or a managed key.
#[derive(Clone, Debug)]
pub enum Expect {
    Identity {
        identity: Matcher,
        issuer: Matcher,
    },
    /// A managed (non-Fulcio) key, DER SubjectPublicKeyInfo.
    Key(Vec<u8>),
}

impl Expect {
    /// A managed key from PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn key_pem(pem: &str) -> Result<Self, KeylessError> {
        let k = DerPublicKey::from_pem(pem).map_err(|e| KeylessError::Key(e.to_string()))?;
        Ok(Expect::Key(k.as_bytes().to_vec()))
    }
}

/// The artifact a bundle is checked against.
pub enum Artifact<'a> {
    Bytes(&'a [u8]),
    /// SHA-256 of the artifact (conformance `sha256:<hex>`; a DSSE statement's subject digest).
    Sha256([u8; 32]),
}

/// A parsed trusted root (Fulcio CAs, Rekor logs, CT logs, TSAs with their validity windows).
#[derive(Clone, Debug)]
pub struct TrustRoot {
    root: TrustedRoot,
    /// Where it came from, for messages.
    pub source: String,
}

impl TrustRoot {
    pub fn production() -> Self {
        Self::from_json(PRODUCTION_TRUSTED_ROOT, "embedded production trusted root")
            .expect("the embedded production trusted root parses")
    }

    pub fn staging() -> Self {
        Self::from_json(STAGING_TRUSTED_ROOT, "embedded staging trusted root")
            .expect("the embedded staging trusted root parses")
    }

    pub fn from_json(json: &str, source: &str) -> Result<Self, KeylessError> {
        let root = TrustedRoot::from_json(json)
            .map_err(|e| KeylessError::TrustRoot(format!("{source}: {e}")))?;
        Ok(TrustRoot {
            root,
            source: source.into(),
        })
    }

    /// `path` if given, else the staging or production root.
    pub fn load(path: Option<&Path>, staging: bool) -> Result<Self, KeylessError> {
        match path {
            Some(p) => {
                let bytes = read_bounded(p, MAX_TRUSTED_ROOT_BYTES, "trusted root")?;
                let text = std::str::from_utf8(&bytes).map_err(|_| {
                    KeylessError::TrustRoot(format!("{}: not UTF-8 JSON", p.display()))
                })?;
                Self::from_json(text, &p.display().to_string())
            }
            None if staging => Ok(Self::staging()),
            None => Ok(Self::production()),
        }
    }
}

/// What a successful verification established.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Verified {
    /// `keyless` (Fulcio certificate) or `managed-key`.
    pub method: &'static str,
    /// Certificate SAN (keyless) or key hint (managed key).
    pub identity: String,
    pub issuer: Option<String>,
    /// Rekor v1 integrated time (RFC 3339), when inclusion was verified.
    pub integrated_time: Option<String>,
    /// Every authenticated signing time (SET-backed integrated times, RFC 3161 timestamps).
    pub signing_times: Vec<String>,
    pub tlog_verified: bool,
    pub sct_verified: bool,
    /// Transparency-log entries in the bundle, every one verified.
    pub tlog_entries: usize,
    /// RFC 3161 timestamps in the bundle, every one verified against its authority.
    pub rfc3161_timestamps: usize,
}

/// The identity (SAN) and OIDC issuer a Fulcio certificate *claims*, unverified: for
/// revocation lists, which may only ever deny on a claim.
pub fn certificate_claims(der: &[u8]) -> Option<(String, Option<String>)> {
    let info = sigstore_crypto::x509::parse_certificate_info(&sigstore_types::DerCertificate::new(
        der.to_vec(),
    ))
    .ok()?;
    let san = info.identity.map(|s| s.as_str().to_string())?;
    Some((san, info.issuer))
}

/// Read a file of at most `limit` bytes (checked before and while reading).
pub fn read_bounded(path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>, KeylessError> {
    let io = |source| KeylessError::Io {
        path: path.into(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let meta = f.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(io(std::io::Error::other("not a regular file")));
    }
    let too_large = |size| KeylessError::TooLarge {
        path: path.into(),
        what,
        size,
        limit,
    };
    if meta.len() > limit {
        return Err(too_large(meta.len()));
    }
    let mut buf = Vec::new();
    f.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(io)?;
    if buf.len() as u64 > limit {
        return Err(too_large(buf.len() as u64));
    }
    Ok(buf)
}

/// Parse a bundle (any of the v0.1, v0.2, v0.3 media types).
pub fn parse_bundle(json: &[u8]) -> Result<Bundle, KeylessError> {
    let text = std::str::from_utf8(json).map_err(|e| {
        KeylessError::MalformedBundle(format!("not UTF-8 at byte {}", e.valid_up_to()))
    })?;
    if text.trim().is_empty() {
        return Err(KeylessError::MalformedBundle("the file is empty".into()));
    }
    Bundle::from_json(text).map_err(|e| {
        let msg = e.to_string();
        if msg.contains("media type") {
            KeylessError::UnsupportedBundle(msg)
        } else {
            KeylessError::MalformedBundle(msg)
        }
    })
}

/// Verify `bundle` over `artifact` against `root`, requiring the signer in `expect`. Offline.
pub fn verify(
    bundle: &Bundle,
    artifact: Artifact<'_>,
    expect: &Expect,
    root: &TrustRoot,
) -> Result<Verified, KeylessError> {
    provider::install();
    let tlog_entries = bundle.verification_material.tlog_entries.len();
    let rfc3161_timestamps = bundle
        .verification_material
        .timestamp_verification_data
        .rfc3161_timestamps
        .len();
    let verifier = Verifier::new(&root.root).map_err(|e| KeylessError::TrustRoot(e.to_string()))?;
    let artifact: sigstore_types::Artifact<'_> = match artifact {
        Artifact::Bytes(b) => b.into(),
        Artifact::Sha256(d) => Sha256Hash::new(d).into(),
    };
    match expect {
        Expect::Identity { identity, issuer } => {
            // Identity and issuer are matched here rather than by the crate, which knows only
            // exact strings; every other check runs with the same policy either way.
            let r = verifier
                .verify(artifact, bundle, &VerificationPolicy::any_identity())
                .map_err(map_error)?;
            let san = r.identity().map(|s| s.as_str().to_string());
            let san = san.unwrap_or_default();
            if san.is_empty() || !identity.matches(&san) {
                return Err(KeylessError::Identity {
                    expected: identity.to_string(),
                    actual: san,
                });
            }
            let iss = r.issuer().unwrap_or_default().to_string();
            if iss.is_empty() || !issuer.matches(&iss) {
                return Err(KeylessError::Issuer {
                    expected: issuer.to_string(),
                    actual: iss,
                });
            }
            Ok(Verified {
                method: "keyless",
                identity: san,
                issuer: Some(iss),
                integrated_time: r.integrated_time().map(|t| t.to_string()),
                signing_times: r
                    .verified_timestamps()
                    .iter()
                    .map(|t| t.to_string())
                    .collect(),
                tlog_verified: r.tlog_verified(),
                sct_verified: r.sct_verified(),
                tlog_entries,
                rfc3161_timestamps,
            })
        }
        Expect::Key(spki) => {
            let key = DerPublicKey::new(spki.clone());
            let r = verifier
                .verify(artifact, bundle, &PublicKeyVerificationPolicy::new(key))
                .map_err(|e| match map_error(e) {
                    KeylessError::Signature(m) => KeylessError::KeyMismatch(format!(
                        "the signature does not verify with the given key ({m})"
                    )),
                    other => other,
                })?;
            use sha2::Digest;
            Ok(Verified {
                method: "managed-key",
                identity: hex::encode(sha2::Sha256::digest(spki)),
                issuer: None,
                integrated_time: r.integrated_time().map(|t| t.to_string()),
                signing_times: r
                    .verified_timestamps()
                    .iter()
                    .map(|t| t.to_string())
                    .collect(),
                tlog_verified: r.tlog_verified(),
                sct_verified: false,
                tlog_entries,
                rfc3161_timestamps,
            })
        }
    }
}

/// Sort the crate's errors into the checks a user can act on.
fn map_error(e: sigstore_verify::Error) -> KeylessError {
    use sigstore_verify::Error as E;
    let msg = e.to_string();
    match e {
        E::IdentityMismatch { expected, actual } => KeylessError::Identity {
            expected: expected.to_string(),
            actual: actual.map(|a| a.to_string()).unwrap_or_default(),
        },
        E::IssuerMismatch { expected, actual } => KeylessError::Issuer {
            expected,
            actual: actual.unwrap_or_default(),
        },
        E::SignatureInvalid(m) => KeylessError::Signature(m),
        E::ArtifactMismatch(m) => KeylessError::ArtifactMismatch(m),
        E::Certificate(c) => match c {
            CertificateError::Malformed(m) => {
                KeylessError::MalformedBundle(format!("signing certificate: {m}"))
            }
            CertificateError::ChainInvalid(m)
                if m.contains("CertExpired") || m.contains("CertNotValidYet") =>
            {
                KeylessError::TimeWindow(format!(
                    "the signing certificate was not valid at the verified signing time ({m})"
                ))
            }
            CertificateError::NotYetValid { .. } | CertificateError::Expired { .. } => {
                KeylessError::TimeWindow(msg)
            }
            CertificateError::Sct(m) => KeylessError::Sct(m),
            _ => KeylessError::Chain(msg),
        },
        E::TransparencyLog(t) => match t {
            TransparencyLogError::UnknownLog { log_id } => {
                KeylessError::UnknownLog(format!("log {log_id} is not in the trusted root"))
            }
            TransparencyLogError::InclusionProof(m) => KeylessError::InclusionProof(m),
            TransparencyLogError::Checkpoint(m) => KeylessError::Checkpoint(m),
            // A SET from a log the trusted root does not list (or not at that time).
            TransparencyLogError::InclusionPromise(m) if m.contains("No log key") => {
                KeylessError::UnknownLog(m)
            }
            TransparencyLogError::InclusionPromise(m) => KeylessError::Set(m),
            TransparencyLogError::EntryMismatch(m) => KeylessError::EntryMismatch(m),
            TransparencyLogError::IntegratedTime(m) => KeylessError::IntegratedTime(m),
            TransparencyLogError::MalformedEntry(m) => {
                KeylessError::MalformedBundle(format!("transparency log entry: {m}"))
            }
            _ => KeylessError::EntryMismatch(msg),
        },
        E::Timestamp(_) => KeylessError::Timestamp(msg),
        E::Bundle(b) => {
            use sigstore_bundle::Error as B;
            match b {
                B::MissingCheckpoint | B::CheckpointRootMismatch => KeylessError::Checkpoint(msg),
                B::MissingInclusionProof(_) | B::LogIndexOutOfRange { .. } => {
                    KeylessError::InclusionProof(msg)
                }
                B::MissingInclusionPromise(_) => KeylessError::Set(msg),
                B::MissingTimestamp | B::MissingSigningTimeEvidence => KeylessError::Timestamp(msg),
                B::UnsupportedMediaType(_) | B::UnsupportedVerificationMaterial => {
                    KeylessError::UnsupportedBundle(msg)
                }
                _ => KeylessError::MalformedBundle(msg),
            }
        }
        E::UnsupportedBundle(m) | E::UnsupportedArtifact(m) => KeylessError::UnsupportedBundle(m),
        E::InvalidBundle(m) => KeylessError::MalformedBundle(m),
        E::InvalidTrustRoot(_) | E::TrustRoot(_) | E::TrustedCertificate(_) => {
            KeylessError::TrustRoot(msg)
        }
        E::Types(_) => KeylessError::MalformedBundle(msg),
        E::Crypto(_) => KeylessError::Signature(msg),
        _ => KeylessError::MalformedBundle(msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_roots_parse() {
        assert!(!TrustRoot::production().root.tlogs.is_empty());
        assert!(!TrustRoot::staging().root.tlogs.is_empty());
    }

    #[test]
    fn regex_is_anchored() {
        let m = Matcher::regex("identity", "https://github.com/org/repo/.*").unwrap();
        assert!(m.matches("https://github.com/org/repo/.github/workflows/r.yml@refs/heads/main"));
        assert!(!m.matches("x https://github.com/org/repo/a"));
        let m = Matcher::regex("identity", "a|b").unwrap();
        assert!(m.matches("a") && m.matches("b") && !m.matches("ab") && !m.matches("xa"));
        assert!(Matcher::regex("identity", "(").is_err());
        assert!(Matcher::exact("a").matches("a") && !Matcher::exact("a").matches("A"));
    }

    #[test]
    fn empty_and_garbage_bundles_are_malformed() {
        for input in [
            &b""[..],
            b"  \n",
            b"{",
            b"\xff\xfe",
            b"[]",
            b"{\"mediaType\":1}",
        ] {
            assert!(
                matches!(parse_bundle(input), Err(KeylessError::MalformedBundle(_))),
                "{input:?}"
            );
        }
        let unknown = br#"{"mediaType":"application/vnd.dev.sigstore.bundle+json;version=99.9"}"#;
        assert!(parse_bundle(unknown).is_err());
    }
}
