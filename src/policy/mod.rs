//! Promotion policies: which subjects a policy covers, whose signatures count (authorities,
//! combined with OR up to an M-of-N threshold), what else must hold (requirements, combined with
//! AND), how violations are enforced (mode), what happens to subjects nothing covers (no_match),
//! and the revocation list that overrides everything.
//!
//! A policy is a TOML file (`policies/*.toml`, JSON Schema in `policies/policy.schema.json`).
//! [`Policy::load`] reads and checks it (unknown keys and conflicting rules are errors with file,
//! line and column); [`verdict`] folds the checks `crate::gate` ran into one [`Verdict`].

pub mod explain;
pub mod glob;
pub mod init;
pub mod lint;

use crate::attest::{cert, cert::Cert, sigstore, KeylessTrust, Trust, VerifyingKey};
use crate::report::{Check, CheckStatus, Exit, Verdict};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The `schema` a policy file may declare.
pub const SCHEMA: &str = "mlsign-policy/1";

/// Largest policy file read.
const MAX_POLICY_BYTES: u64 = 1 << 20;

/// Why a policy cannot be used. Every variant names the policy file; parse errors carry the
/// line and column.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "policy {path}: {size} bytes is over the {MAX_POLICY_BYTES}-byte limit for a policy file"
    )]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("policy {path}: {message}")]
    Conflict { path: PathBuf, message: String },
    #[error("policy {path}: authority {authority:?}: {file}: {fault}")]
    Key {
        path: PathBuf,
        authority: String,
        file: PathBuf,
        fault: KeyFileError,
    },
}

/// Why a key or certificate file named by a policy cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{0}")]
    Io(#[source] std::io::Error),
    #[error("{0} bytes; that is not a PEM file")]
    TooLarge(u64),
    #[error("not a PEM text file")]
    NotText,
    /// Not a public key, or not one mlsign verifies with.
    #[error("{0}")]
    Key(#[source] Box<crate::attest::Error>),
    #[error("{0}")]
    Certificates(#[source] Box<crate::attest::Error>),
    #[error("no certificate in the file")]
    NoCertificate,
    #[error("not UTF-8 JSON")]
    NotUtf8Json,
    /// A Sigstore trusted root that cannot be read or is not one.
    #[error("{0}")]
    TrustedRoot(#[source] Box<sigstore::KeylessError>),
}

/// Why a gate subject argument is not one.
#[derive(Debug, thiserror::Error)]
pub enum SubjectError {
    #[error("empty subject")]
    Empty,
    #[error("subject {0:?} contains control characters")]
    Control(String),
    #[error("{0:?} is not an OCI reference (oci://REGISTRY/REPOSITORY[:TAG|@sha256:DIGEST])")]
    NotOci(String),
    #[error("{0:?}: only file paths and oci:// references are subjects")]
    Scheme(String),
    #[error("{subject}: {source} (the subject must be an existing file or directory)")]
    Path {
        subject: String,
        #[source]
        source: std::io::Error,
    },
}

/// How violations are enforced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Violations fail the gate (exit 1).
    #[default]
    Enforce,
    /// Violations are reported as warnings; verdict `warn`, exit 0.
    Warn,
    /// Violations are only recorded (report, audit log); verdict `pass`, exit 0.
    Audit,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Warn => "warn",
            Mode::Audit => "audit",
        }
    }
}

/// What happens to a subject that no subject pattern covers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NoMatch {
    #[default]
    Deny,
    Warn,
    Allow,
}

impl NoMatch {
    pub fn as_str(self) -> &'static str {
        match self {
            NoMatch::Deny => "deny",
            NoMatch::Warn => "warn",
            NoMatch::Allow => "allow",
        }
    }
}

// ---- The file as written (serde, unknown keys rejected) ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    schema: Option<String>,
    name: Option<String>,
    description: Option<String>,
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    no_match: NoMatch,
    subjects: Vec<String>,
    #[serde(default)]
    authorities: Vec<AuthorityFile>,
    #[serde(default)]
    requirements: RequirementsFile,
    #[serde(default)]
    revocation: Revocation,
    #[serde(default)]
    require_digest: bool,
    #[serde(default)]
    admission: Admission,
}

/// `[admission]`: how `mlsign serve` applies the policy to Kubernetes workloads.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Admission {
    /// Namespaces never checked, besides `kube-system` and the webhook's own namespace.
    #[serde(default)]
    pub exclude_namespaces: Vec<String>,
    /// What a timeout or an internal/registry error gives: `deny` (default) or `warn`.
    #[serde(default)]
    pub on_error: OnError,
    /// Which objects `/mutate` pins to digests: `pods` (default), `all` (also controller
    /// templates; GitOps tools then see drift) or `none`.
    #[serde(default)]
    pub pin_digests: PinDigests,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    #[default]
    Deny,
    Warn,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PinDigests {
    #[default]
    Pods,
    All,
    None,
}

impl PinDigests {
    pub fn as_str(self) -> &'static str {
        match self {
            PinDigests::Pods => "pods",
            PinDigests::All => "all",
            PinDigests::None => "none",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthorityFile {
    name: String,
    key: Option<String>,
    cert_roots: Option<String>,
    keyless: Option<Keyless>,
}

/// A keyless (Fulcio certificate) identity: exact or regex subject, exact or regex issuer,
/// checked against a Sigstore trusted root, with optional evidence thresholds.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Keyless {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_regex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer_regex: Option<String>,
    /// A Sigstore `trusted_root.json` (relative to the policy file; resolved when loaded).
    /// Default: the public-good production root embedded in mlsign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_root: Option<String>,
    /// Use the embedded Sigstore staging root instead of production.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub staging: bool,
    /// Minimum transparency-log entries in the bundle (default 1), each one verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tlog_entries: Option<usize>,
    /// Minimum RFC 3161 timestamps from authorities of the trusted root (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_timestamps: Option<usize>,
    /// SHA-256 of the `trusted_root` file as loaded (set by [`Policy::load`], never read from
    /// the policy file): the root verified against is the one the policy was loaded with, and
    /// it is part of what serializing the authority fingerprints.
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub trusted_root_sha256: Option<String>,
}

/// Identities and issuers nobody in a policy means to trust: a regex that matches one of them
/// lets anyone with a free account sign (the classic keyless misconfiguration).
const STRANGER_IDENTITIES: &[&str] = &[
    "https://github.com/mlsign-stranger/evil/.github/workflows/release.yml@refs/heads/main",
    "https://gitlab.com/mlsign-stranger/evil//.gitlab-ci.yml@refs/heads/main",
    "mlsign-stranger@example.com",
];
const STRANGER_ISSUERS: &[&str] = &["https://mlsign-stranger.example.com"];

/// `policy check` remarks for keyless regexes that a stranger's identity or issuer satisfies.
fn broad_keyless(name: &str, k: &Keyless) -> Vec<String> {
    let mut out = Vec::new();
    if let (Some(re), Ok(m)) = (&k.identity_regex, k.identity_matcher()) {
        if let Some(s) = STRANGER_IDENTITIES.iter().find(|s| m.matches(s)) {
            out.push(format!(
                "keyless authority {name:?}: identity_regex {re:?} also matches a stranger's identity ({s}); pin the organisation and repository"
            ));
        }
    }
    if let (Some(re), Ok(m)) = (&k.issuer_regex, k.issuer_matcher()) {
        if let Some(s) = STRANGER_ISSUERS.iter().find(|s| m.matches(s)) {
            out.push(format!(
                "keyless authority {name:?}: issuer_regex {re:?} also matches an issuer nobody vouches for ({s}); name the issuer exactly"
            ));
        }
    }
    out
}

/// Most log entries or timestamps a policy may demand (bundles carry one or two).
const MAX_KEYLESS_THRESHOLD: usize = 16;

impl Keyless {
    /// Transparency-log entries required (default 1: a keyless signature must be logged).
    pub fn min_tlog_entries(&self) -> usize {
        self.tlog_entries.unwrap_or(1)
    }

    /// RFC 3161 timestamps required (default 0).
    pub fn min_timestamps(&self) -> usize {
        self.signed_timestamps.unwrap_or(0)
    }

    /// The identity matcher (exact or anchored regex).
    pub fn identity_matcher(&self) -> Result<sigstore::Matcher, sigstore::KeylessError> {
        match (&self.identity, &self.identity_regex) {
            (Some(id), _) => Ok(sigstore::Matcher::exact(id.clone())),
            (None, Some(re)) => sigstore::Matcher::regex("identity", re),
            (None, None) => Err(sigstore::KeylessError::Regex {
                what: "identity",
                pattern: String::new(),
                why: "neither identity nor identity_regex is set".into(),
            }),
        }
    }

    /// The issuer matcher (exact or anchored regex).
    pub fn issuer_matcher(&self) -> Result<sigstore::Matcher, sigstore::KeylessError> {
        match (&self.issuer, &self.issuer_regex) {
            (Some(iss), _) => Ok(sigstore::Matcher::exact(iss.clone())),
            (None, Some(re)) => sigstore::Matcher::regex("issuer", re),
            (None, None) => Err(sigstore::KeylessError::Regex {
                what: "issuer",
                pattern: String::new(),
                why: "neither issuer nor issuer_regex is set".into(),
            }),
        }
    }

    /// What `mlsign verify` trusts for this authority: the trusted root (read now), the
    /// identity and issuer, and the thresholds.
    pub fn trust(&self) -> Result<KeylessTrust, sigstore::KeylessError> {
        let root = match &self.trusted_root {
            Some(p) => {
                let bytes = sigstore::read_bounded(
                    Path::new(p),
                    sigstore::MAX_TRUSTED_ROOT_BYTES,
                    "trusted root",
                )?;
                let digest = hex::encode(crate::digest::sha256(&bytes));
                if self
                    .trusted_root_sha256
                    .as_ref()
                    .is_some_and(|d| *d != digest)
                {
                    return Err(sigstore::KeylessError::TrustRoot(format!(
                        "{p} changed since the policy was loaded (sha256 {digest}); reload the policy"
                    )));
                }
                let text = std::str::from_utf8(&bytes).map_err(|_| {
                    sigstore::KeylessError::TrustRoot(format!("{p}: not UTF-8 JSON"))
                })?;
                sigstore::TrustRoot::from_json(text, p)?
            }
            None => sigstore::TrustRoot::load(None, self.staging)?,
        };
        Ok(
            KeylessTrust::new(self.identity_matcher()?, self.issuer_matcher()?, root)
                .with_thresholds(self.min_tlog_entries(), self.min_timestamps()),
        )
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequirementsFile {
    signature: Option<SignatureReq>,
    scan: Option<ScanReq>,
    bom: Option<BomReqFile>,
    lineage: Option<LineageReqFile>,
    behave: Option<BehaveReqFile>,
    approvals: Option<ApprovalsReqFile>,
}

fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}

/// `[requirements.signature]`: at least `threshold` distinct authorities verified a signature
/// bundle of the subject, and the tree matches every verified bundle.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureReq {
    #[serde(default = "one")]
    pub threshold: usize,
    /// Accepted hashing algorithms of the signed manifest (default: any mlsign verifies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_algorithms: Option<Vec<String>>,
    /// Accept model_signing 0.2's faulty PAE encoding.
    #[serde(default)]
    pub legacy_pae: bool,
}

/// `[requirements.scan]`: every file clean; `allow`/`allow_suspicious` extend the allowlist.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScanReq {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presets: Option<Vec<String>>,
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub allow_suspicious: Vec<String>,
    /// Suspicious files fail the check (default true: the gate wants a clean scan).
    #[serde(default = "yes")]
    pub fail_on_suspicious: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BomReqFile {
    path: Option<String>,
    #[serde(default = "yes")]
    signed: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LineageReqFile {
    file: Option<String>,
    #[serde(default)]
    skip_code: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BehaveReqFile {
    suite_sha256: String,
    baseline_sha256: String,
    report: Option<String>,
    #[serde(default)]
    signed: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalsReqFile {
    #[serde(default = "one")]
    count: usize,
    reviewers: Vec<String>,
    max_age_days: Option<u32>,
}

/// `[revocation]`: the kill switch. Anything listed fails the gate in every mode.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// Subject digests (`sha256:<hex>`).
    #[serde(default)]
    pub digests: Vec<String>,
    /// Signer key hints (model_signing's hint: hex SHA-256 of the PEM public key).
    #[serde(default)]
    pub keys: Vec<String>,
    /// Signer identities: certificate subjects, and keyless identities (the Fulcio
    /// certificate's SAN, e.g. a workflow URI or an e-mail address).
    #[serde(default)]
    pub identities: Vec<String>,
}

// ---- The loaded policy ----

/// A subject pattern: a path glob or an `oci://` reference glob.
#[derive(Clone, Debug, Serialize)]
pub struct SubjectPattern {
    pub glob: String,
    pub oci: bool,
}

/// Whose signature counts.
#[derive(Clone, Debug)]
pub enum AuthorityKind {
    Key {
        file: PathBuf,
        key: VerifyingKey,
    },
    CertRoots {
        file: PathBuf,
        roots: Vec<Cert>,
    },
    /// A Fulcio identity and OIDC issuer, verified through `Trust::Keyless` (chain, SCT, log
    /// entry, inclusion proof, checkpoint, SET, timestamps) against the authority's trusted
    /// root; `trusted_root` holds the resolved path.
    Keyless(Keyless),
}

#[derive(Clone, Debug)]
pub struct Authority {
    pub name: String,
    pub kind: AuthorityKind,
}

impl Authority {
    /// What a bundle is verified against for this authority. Only keyless authorities can fail
    /// here (their trusted root is read on each call, so an edited or removed file shows).
    pub fn trust(&self) -> Result<Trust, sigstore::KeylessError> {
        Ok(match &self.kind {
            AuthorityKind::Key { key, .. } => Trust::Key(key.clone()),
            AuthorityKind::CertRoots { roots, .. } => Trust::Roots(roots.clone()),
            AuthorityKind::Keyless(k) => Trust::Keyless(k.trust()?),
        })
    }

    /// One-line description for explain and reports.
    pub fn describe(&self) -> String {
        match &self.kind {
            AuthorityKind::Key { file, key } => {
                format!("public key {} (hint {})", file.display(), &key.hint()[..16])
            }
            AuthorityKind::CertRoots { file, roots } => format!(
                "certificates chaining to the {} root(s) in {}",
                roots.len(),
                file.display()
            ),
            AuthorityKind::Keyless(k) => format!(
                "keyless identity {} from issuer {}, under {}{}",
                k.identity
                    .as_deref()
                    .map(|s| format!("{s:?}"))
                    .or(k
                        .identity_regex
                        .as_deref()
                        .map(|s| format!("matching /{s}/")))
                    .unwrap_or_default(),
                k.issuer
                    .as_deref()
                    .map(|s| format!("{s:?}"))
                    .or(k.issuer_regex.as_deref().map(|s| format!("matching /{s}/")))
                    .unwrap_or_default(),
                match (&k.trusted_root, k.staging) {
                    (Some(p), _) => format!("the trusted root {p}"),
                    (None, true) => "Sigstore's staging root".to_string(),
                    (None, false) => "Sigstore's public-good production root".to_string(),
                },
                {
                    let mut v = Vec::new();
                    if k.min_tlog_entries() > 0 {
                        v.push(format!(
                            "{} transparency-log entr{}",
                            k.min_tlog_entries(),
                            if k.min_tlog_entries() == 1 {
                                "y"
                            } else {
                                "ies"
                            }
                        ));
                    }
                    if k.min_timestamps() > 0 {
                        v.push(format!("{} RFC 3161 timestamp(s)", k.min_timestamps()));
                    }
                    if v.is_empty() {
                        String::new()
                    } else {
                        format!(", with at least {}", v.join(" and "))
                    }
                }
            ),
        }
    }
}

/// `[requirements.bom]`: a CycloneDX ML-BOM that is valid, matches the subject, and (unless
/// `signed = false`) is signed by a policy authority.
#[derive(Clone, Debug, Serialize)]
pub struct BomReq {
    pub path: Option<String>,
    pub signed: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct LineageReq {
    pub file: Option<String>,
    pub skip_code: bool,
}

/// `[requirements.behave]`: a behave report that passed, for this suite and baseline.
#[derive(Clone, Debug, Serialize)]
pub struct BehaveReq {
    pub suite_sha256: String,
    pub baseline_sha256: String,
    pub report: Option<String>,
    /// The report must be signed (`mlsign attest sign REPORT`, bundle `REPORT.sig`) by a
    /// policy authority: the gate cannot recompute a behave run, so an unsigned report is
    /// believed from whoever could write the file.
    pub signed: bool,
}

/// `[requirements.approvals]`: `count` valid approvals from distinct reviewer keys, none the
/// key that signed the subject.
#[derive(Clone, Debug)]
pub struct ApprovalsReq {
    pub count: usize,
    pub reviewers: Vec<(PathBuf, VerifyingKey)>,
    pub max_age_days: Option<u32>,
}

#[derive(Clone, Debug, Default)]
pub struct Requirements {
    pub signature: Option<SignatureReq>,
    pub scan: Option<ScanReq>,
    pub bom: Option<BomReq>,
    pub lineage: Option<LineageReq>,
    pub behave: Option<BehaveReq>,
    pub approvals: Option<ApprovalsReq>,
}

impl Requirements {
    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.signature.is_some() {
            v.push("signature");
        }
        if self.scan.is_some() {
            v.push("scan");
        }
        if self.bom.is_some() {
            v.push("bom");
        }
        if self.lineage.is_some() {
            v.push("lineage");
        }
        if self.behave.is_some() {
            v.push("behave");
        }
        if self.approvals.is_some() {
            v.push("approvals");
        }
        v
    }
}

/// A loaded, checked policy.
#[derive(Clone, Debug)]
pub struct Policy {
    pub path: PathBuf,
    /// SHA-256 of the policy file's exact bytes (recorded in reports and the audit log).
    pub sha256: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub mode: Mode,
    pub no_match: NoMatch,
    pub subjects: Vec<SubjectPattern>,
    pub authorities: Vec<Authority>,
    pub requirements: Requirements,
    pub revocation: Revocation,
    /// `oci://` subjects must name a digest: a tag-only reference fails (GAT014). The GitOps
    /// alternative to `mlsign serve` rewriting tags.
    pub require_digest: bool,
    /// `[admission]` settings of `mlsign serve`.
    pub admission: Admission,
    /// Non-fatal remarks found while loading (shown by `policy check`).
    pub notes: Vec<String>,
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.chars().count(), |i| before[i + 1..].chars().count())
        + 1;
    (line, col)
}

/// Is `s` a `sha256:<64 hex>` digest (or bare 64 hex)? Returns the normalized `sha256:<hex>`.
pub fn normalize_digest(s: &str) -> Option<String> {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("sha256:{}", hex.to_ascii_lowercase()))
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn read_pem(p: &Path) -> Result<String, KeyFileError> {
    let meta = std::fs::metadata(p).map_err(KeyFileError::Io)?;
    if meta.len() > 4 << 20 {
        return Err(KeyFileError::TooLarge(meta.len()));
    }
    let b = std::fs::read(p).map_err(KeyFileError::Io)?;
    String::from_utf8(b).map_err(|_| KeyFileError::NotText)
}

impl Policy {
    /// Read, parse and check a policy file. Key and certificate files named in it are read
    /// relative to the policy file's directory.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let io = |source| PolicyError::Io {
            path: path.into(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if meta.len() > MAX_POLICY_BYTES {
            return Err(PolicyError::TooLarge {
                path: path.into(),
                size: meta.len(),
            });
        }
        let bytes = std::fs::read(path).map_err(io)?;
        Self::from_bytes(&bytes, path)
    }

    /// Parse policy bytes as if read from `path` (relative files resolve against its directory).
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Policy, PolicyError> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let (line, column) = line_col(
                &String::from_utf8_lossy(&bytes[..e.valid_up_to()]),
                e.valid_up_to(),
            );
            PolicyError::Syntax {
                path: path.into(),
                line,
                column,
                message: "the policy is not UTF-8 text".into(),
            }
        })?;
        let file: PolicyFile = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            PolicyError::Syntax {
                path: path.into(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })?;
        let sha256 = hex::encode(crate::digest::sha256(bytes));
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let conflict = |message: String| PolicyError::Conflict {
            path: path.into(),
            message,
        };
        if let Some(s) = &file.schema {
            if s != SCHEMA {
                return Err(conflict(format!(
                    "schema {s:?} is not supported (this mlsign reads {SCHEMA:?})"
                )));
            }
        }
        let mut notes = Vec::new();

        // Subjects.
        if file.subjects.is_empty() {
            return Err(conflict(
                "subjects is empty: list the paths or oci:// references this policy covers (\"**\" for all paths)".into(),
            ));
        }
        let mut subjects = Vec::new();
        for g in &file.subjects {
            if g.is_empty() || g.contains('\0') {
                return Err(conflict(format!(
                    "subject pattern {g:?} is empty or has a NUL byte"
                )));
            }
            let oci = g.starts_with("oci://");
            if oci && g.len() == "oci://".len() {
                return Err(conflict(format!("subject pattern {g:?} names no registry")));
            }
            if !oci && g.contains("://") {
                return Err(conflict(format!(
                    "subject pattern {g:?}: only file paths and oci:// references are subjects"
                )));
            }
            subjects.push(SubjectPattern {
                glob: g.clone(),
                oci,
            });
        }

        // Authorities.
        let mut authorities = Vec::new();
        for a in &file.authorities {
            if a.name.trim().is_empty() {
                return Err(conflict("an authority has an empty name".into()));
            }
            if authorities.iter().any(|x: &Authority| x.name == a.name) {
                return Err(conflict(format!("two authorities are named {:?}", a.name)));
            }
            let kinds =
                a.key.is_some() as u8 + a.cert_roots.is_some() as u8 + a.keyless.is_some() as u8;
            if kinds != 1 {
                return Err(conflict(format!(
                    "authority {:?} must have exactly one of key, cert_roots, keyless",
                    a.name
                )));
            }
            let key_err = |file: &Path, fault: KeyFileError| PolicyError::Key {
                path: path.into(),
                authority: a.name.clone(),
                file: file.into(),
                fault,
            };
            let kind = if let Some(k) = &a.key {
                let f = base.join(k);
                let pem = read_pem(&f).map_err(|m| key_err(&f, m))?;
                let key = VerifyingKey::from_pem(&pem)
                    .map_err(|e| key_err(&f, KeyFileError::Key(Box::new(e))))?;
                AuthorityKind::Key { file: f, key }
            } else if let Some(r) = &a.cert_roots {
                let f = base.join(r);
                let pem = read_pem(&f).map_err(|m| key_err(&f, m))?;
                let roots = cert::load_pem_chain(pem.as_bytes())
                    .map_err(|e| key_err(&f, KeyFileError::Certificates(Box::new(e))))?;
                if roots.is_empty() {
                    return Err(key_err(&f, KeyFileError::NoCertificate));
                }
                AuthorityKind::CertRoots { file: f, roots }
            } else {
                let k = a.keyless.clone().unwrap_or_default();
                if k.identity.is_some() == k.identity_regex.is_some() {
                    return Err(conflict(format!(
                        "keyless authority {:?} needs exactly one of identity, identity_regex",
                        a.name
                    )));
                }
                if k.issuer.is_some() == k.issuer_regex.is_some() {
                    return Err(conflict(format!(
                        "keyless authority {:?} needs exactly one of issuer, issuer_regex",
                        a.name
                    )));
                }
                let mut k = k;
                if k.trusted_root.is_some() && k.staging {
                    return Err(conflict(format!(
                        "keyless authority {:?}: trusted_root and staging = true both name a trusted root; keep one",
                        a.name
                    )));
                }
                for (what, n) in [
                    ("tlog_entries", k.tlog_entries),
                    ("signed_timestamps", k.signed_timestamps),
                ] {
                    if n.is_some_and(|n| n > MAX_KEYLESS_THRESHOLD) {
                        return Err(conflict(format!(
                            "keyless authority {:?}: {what} = {} is over {MAX_KEYLESS_THRESHOLD}; bundles carry one or two",
                            a.name,
                            n.unwrap_or_default()
                        )));
                    }
                }
                for m in [k.identity_matcher(), k.issuer_matcher()] {
                    if let Err(e) = m {
                        return Err(conflict(format!("keyless authority {:?}: {e}", a.name)));
                    }
                }
                if let Some(r) = &k.trusted_root {
                    let f = base.join(r);
                    let bytes = sigstore::read_bounded(
                        &f,
                        sigstore::MAX_TRUSTED_ROOT_BYTES,
                        "trusted root",
                    )
                    .map_err(|e| key_err(&f, KeyFileError::TrustedRoot(Box::new(e))))?;
                    let text = std::str::from_utf8(&bytes)
                        .map_err(|_| key_err(&f, KeyFileError::NotUtf8Json))?;
                    sigstore::TrustRoot::from_json(text, &f.display().to_string())
                        .map_err(|e| key_err(&f, KeyFileError::TrustedRoot(Box::new(e))))?;
                    k.trusted_root = Some(f.display().to_string());
                    k.trusted_root_sha256 = Some(hex::encode(crate::digest::sha256(&bytes)));
                }
                if k.min_tlog_entries() == 0 {
                    notes.push(format!(
                        "keyless authority {:?}: tlog_entries = 0 accepts bundles that were never logged in a transparency log (a timestamp alone suffices)",
                        a.name
                    ));
                }
                notes.extend(broad_keyless(&a.name, &k));
                AuthorityKind::Keyless(k)
            };
            authorities.push(Authority {
                name: a.name.clone(),
                kind,
            });
        }

        // Requirements.
        let r = file.requirements;
        if let Some(s) = &r.signature {
            if authorities.is_empty() {
                return Err(conflict(
                    "requirements.signature needs at least one [[authorities]] entry".into(),
                ));
            }
            if s.threshold == 0 || s.threshold > authorities.len() {
                return Err(conflict(format!(
                    "requirements.signature.threshold is {}, but it must be between 1 and the {} authorit{} listed",
                    s.threshold,
                    authorities.len(),
                    if authorities.len() == 1 { "y" } else { "ies" }
                )));
            }
            for a in s.hash_algorithms.iter().flatten() {
                if crate::digest::HashAlgorithm::from_name(a).is_none() {
                    return Err(conflict(format!(
                        "requirements.signature.hash_algorithms: unknown algorithm {a:?} (sha256, blake2b, blake3)"
                    )));
                }
            }
        }
        if let Some(s) = &r.scan {
            // Build the scan policy once here so bad entries are load errors.
            scan_policy(s).map_err(|e| conflict(format!("requirements.scan: {e}")))?;
        }
        let bom = r.bom.map(|b| BomReq {
            path: b.path,
            signed: b.signed,
        });
        if r.behave.as_ref().is_some_and(|b| b.signed) && authorities.is_empty() {
            return Err(conflict(
                "requirements.behave.signed needs at least one [[authorities]] entry".into(),
            ));
        }
        if let Some(b) = &bom {
            if b.signed && authorities.is_empty() {
                return Err(conflict(
                    "requirements.bom.signed needs at least one [[authorities]] entry (or signed = false)".into(),
                ));
            }
        }
        let behave = match r.behave {
            Some(b) => {
                for (k, v) in [
                    ("suite_sha256", &b.suite_sha256),
                    ("baseline_sha256", &b.baseline_sha256),
                ] {
                    let hex = v.strip_prefix("sha256:").unwrap_or(v);
                    if !is_hex64(hex) {
                        return Err(conflict(format!(
                            "requirements.behave.{k} = {v:?} is not a SHA-256 digest (64 hex digits)"
                        )));
                    }
                }
                Some(BehaveReq {
                    suite_sha256: b
                        .suite_sha256
                        .trim_start_matches("sha256:")
                        .to_ascii_lowercase(),
                    baseline_sha256: b
                        .baseline_sha256
                        .trim_start_matches("sha256:")
                        .to_ascii_lowercase(),
                    report: b.report,
                    signed: b.signed,
                })
            }
            None => None,
        };
        let approvals = match r.approvals {
            Some(a) => {
                let mut reviewers: Vec<(PathBuf, VerifyingKey)> = Vec::new();
                for k in &a.reviewers {
                    let f = base.join(k);
                    let pem = read_pem(&f).map_err(|fault| PolicyError::Key {
                        path: path.into(),
                        authority: "reviewers".into(),
                        file: f.clone(),
                        fault,
                    })?;
                    let key = VerifyingKey::from_pem(&pem).map_err(|e| PolicyError::Key {
                        path: path.into(),
                        authority: "reviewers".into(),
                        file: f.clone(),
                        fault: KeyFileError::Key(Box::new(e)),
                    })?;
                    if reviewers.iter().any(|(_, x)| x.hint() == key.hint()) {
                        return Err(conflict(format!(
                            "requirements.approvals.reviewers lists the same key twice ({})",
                            f.display()
                        )));
                    }
                    reviewers.push((f, key));
                }
                if a.count == 0 || a.count > reviewers.len() {
                    return Err(conflict(format!(
                        "requirements.approvals.count is {}, but it must be between 1 and the {} reviewer key(s) listed",
                        a.count,
                        reviewers.len()
                    )));
                }
                if a.max_age_days == Some(0) {
                    return Err(conflict(
                        "requirements.approvals.max_age_days must be at least 1".into(),
                    ));
                }
                for (f, k) in &reviewers {
                    let h = k.hint();
                    if authorities.iter().any(
                        |x| matches!(&x.kind, AuthorityKind::Key { key, .. } if key.hint() == h),
                    ) {
                        notes.push(format!(
                            "reviewer key {} is also a signing authority: its approval never counts for a subject it signed (separation of duties)",
                            f.display()
                        ));
                    }
                }
                Some(ApprovalsReq {
                    count: a.count,
                    reviewers,
                    max_age_days: a.max_age_days,
                })
            }
            None => None,
        };
        let requirements = Requirements {
            signature: r.signature,
            scan: r.scan,
            bom,
            lineage: r.lineage.map(|l| LineageReq {
                file: l.file,
                skip_code: l.skip_code,
            }),
            behave,
            approvals,
        };
        if requirements.names().is_empty() {
            return Err(conflict(
                "no [requirements.*] table: a policy without requirements would pass anything it covers".into(),
            ));
        }

        // Revocation list, normalized.
        let mut revocation = file.revocation;
        for d in revocation.digests.iter_mut() {
            *d = normalize_digest(d).ok_or_else(|| {
                conflict(format!(
                    "revocation.digests: {d:?} is not a sha256:<64 hex> digest"
                ))
            })?;
        }
        for k in revocation.keys.iter_mut() {
            if !is_hex64(k) {
                return Err(conflict(format!(
                    "revocation.keys: {k:?} is not a key hint (64 hex digits: `mlsign keygen` prints it)"
                )));
            }
            *k = k.to_ascii_lowercase();
        }
        if revocation.identities.iter().any(|i| i.trim().is_empty()) {
            return Err(conflict("revocation.identities has an empty entry".into()));
        }
        if file.mode == Mode::Audit {
            notes.push("mode = \"audit\": violations are recorded but never block".into());
        }
        if file.no_match == NoMatch::Allow {
            notes.push("no_match = \"allow\": subjects outside the patterns pass unchecked".into());
        }
        for ns in &file.admission.exclude_namespaces {
            if ns.is_empty()
                || ns.len() > 63
                || !ns
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
            {
                return Err(conflict(format!(
                    "admission.exclude_namespaces: {ns:?} is not a Kubernetes namespace name"
                )));
            }
        }
        if file.admission.on_error == OnError::Warn {
            notes.push("admission.on_error = \"warn\": a timeout or registry error admits the workload with a warning".into());
        }
        if let Some(b) = &requirements.bom {
            if !b.signed {
                notes.push("requirements.bom.signed = false: an unsigned BOM is accepted".into());
            }
        }
        Ok(Policy {
            path: path.to_path_buf(),
            sha256,
            name: file.name,
            description: file.description,
            mode: file.mode,
            no_match: file.no_match,
            subjects,
            authorities,
            requirements,
            revocation,
            require_digest: file.require_digest,
            admission: file.admission,
            notes,
        })
    }

    /// The first subject pattern covering `subject`: an `oci://` reference, or a path given
    /// as-is and as its canonical absolute form.
    pub fn matching_pattern(&self, subject: &Subject) -> Option<&SubjectPattern> {
        match subject {
            // `REPO:TAG@DIGEST` is also matched as `REPO:TAG`: pinning a tag to the digest it
            // names (as `mlsign serve` does) must not take it out of the policy.
            Subject::Oci(r) => {
                let tag_form = r.rsplit_once('@').map(|(name, _)| name).filter(|name| {
                    name.rsplit('/')
                        .next()
                        .is_some_and(|last| last.contains(':'))
                });
                self.subjects.iter().find(|p| {
                    p.oci
                        && (glob::matches(&p.glob, r)
                            || tag_form.is_some_and(|t| glob::matches(&p.glob, t)))
                })
            }
            Subject::Path { shown, absolute } => self.subjects.iter().find(|p| {
                !p.oci
                    && (glob::matches(&p.glob, shown)
                        || glob::matches(&p.glob, &absolute.to_string_lossy()))
            }),
        }
    }
}

/// A gate subject: a file or directory, or an OCI reference.
#[derive(Clone, Debug)]
pub enum Subject {
    Path { shown: String, absolute: PathBuf },
    Oci(String),
}

/// Parse a subject argument. Paths must exist; `oci://` references must name a registry and a
/// repository.
pub fn parse_subject(s: &str) -> Result<Subject, SubjectError> {
    if s.is_empty() {
        return Err(SubjectError::Empty);
    }
    if s.contains('\0') || s.chars().any(|c| c.is_control()) {
        return Err(SubjectError::Control(s.into()));
    }
    if let Some(rest) = s.strip_prefix("oci://") {
        let ok = rest.split_once('/').is_some_and(|(reg, repo)| {
            !reg.is_empty()
                && !repo.is_empty()
                && !rest.contains("//")
                && !rest.chars().any(char::is_whitespace)
        });
        if !ok {
            return Err(SubjectError::NotOci(s.into()));
        }
        return Ok(Subject::Oci(s.to_string()));
    }
    if s.contains("://") {
        return Err(SubjectError::Scheme(s.into()));
    }
    let absolute = std::fs::canonicalize(s).map_err(|source| SubjectError::Path {
        subject: s.into(),
        source,
    })?;
    let mut shown = s.trim_end_matches('/').to_string();
    while let Some(r) = shown.strip_prefix("./") {
        shown = r.to_string();
    }
    if shown.is_empty() {
        shown = ".".into();
    }
    Ok(Subject::Path { shown, absolute })
}

/// The scan policy a `[requirements.scan]` table describes.
pub fn scan_policy(s: &ScanReq) -> Result<crate::scan::Policy, crate::scan::policy::PolicyError> {
    let mut p = match &s.presets {
        Some(names) => {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            crate::scan::Policy::from_presets(&names)?
        }
        None => crate::scan::Policy::default(),
    };
    for e in &s.allow {
        p.allow_entry(e)?;
    }
    for e in &s.allow_suspicious {
        p.allow_suspicious(e)?;
    }
    p.fail_on_suspicious = s.fail_on_suspicious;
    Ok(p)
}

/// The decision for one subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub verdict: Verdict,
    /// Violations were found but the mode did not enforce them.
    pub would_fail: bool,
    /// The subject or its signer is revoked.
    pub revoked: bool,
    #[serde(skip)]
    pub exit: Exit,
}

/// Fold checks into one verdict under `mode`.
///
/// - Any check that could not be evaluated (`error`) ⇒ `fail`, exit 2, in every mode: nothing
///   unevaluable passes.
/// - Revocation (`revoked`) ⇒ `fail`, exit 1, in every mode: the kill switch overrides.
/// - Any failed check ⇒ `enforce`: `fail` (exit 1); `warn`: `warn` (exit 0); `audit`: `pass`
///   with `would_fail` (exit 0).
/// - Otherwise `pass`.
pub fn verdict(mode: Mode, checks: &[Check], revoked: bool) -> Outcome {
    let error = checks.iter().any(|c| c.status == CheckStatus::Error);
    let failed = checks.iter().any(|c| c.status == CheckStatus::Fail);
    let (verdict, exit) = if error {
        (Verdict::Fail, Exit::Error)
    } else if revoked {
        (Verdict::Fail, Exit::Finding)
    } else if failed {
        match mode {
            Mode::Enforce => (Verdict::Fail, Exit::Finding),
            Mode::Warn => (Verdict::Warn, Exit::Pass),
            Mode::Audit => (Verdict::Pass, Exit::Pass),
        }
    } else {
        (Verdict::Pass, Exit::Pass)
    };
    Outcome {
        verdict,
        would_fail: (failed || revoked) && verdict != Verdict::Fail,
        revoked,
        exit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Finding, Severity};

    fn load(text: &str) -> Result<Policy, PolicyError> {
        Policy::from_bytes(text.as_bytes(), Path::new("p.toml"))
    }

    #[test]
    fn unknown_key_has_line_and_column() {
        let e = load("subjects = [\"**\"]\n[requirements.scan]\nalow = [\"a:b\"]\n").unwrap_err();
        match e {
            PolicyError::Syntax {
                line,
                column,
                message,
                ..
            } => {
                assert_eq!((line, column), (3, 1), "{message}");
                assert!(message.contains("alow"), "{message}");
            }
            e => panic!("{e}"),
        }
    }

    #[test]
    fn conflicts() {
        for (text, want) in [
            ("subjects = []\n[requirements.scan]\n", "subjects is empty"),
            ("subjects = [\"**\"]\n", "no [requirements"),
            ("subjects = [\"**\"]\n[requirements.signature]\n", "at least one [[authorities]]"),
            ("subjects = [\"**\"]\n[requirements.bom]\n", "requirements.bom.signed"),
            ("subjects = [\"**\"]\n[requirements.scan]\nallow = [\"nocolon\"]\n", "module:name"),
            ("subjects = [\"**\"]\n[requirements.behave]\nsuite_sha256 = \"x\"\nbaseline_sha256 = \"y\"\n", "not a SHA-256"),
            ("subjects = [\"**\"]\n[requirements.scan]\n[revocation]\ndigests = [\"md5:1\"]\n", "revocation.digests"),
            ("subjects = [\"http://x\"]\n[requirements.scan]\n", "only file paths"),
            ("subjects = [\"**\"]\n[[authorities]]\nname = \"a\"\nkeyless = { identity = \"x\" }\n[requirements.scan]\n", "issuer"),
            ("subjects = [\"**\"]\n[[authorities]]\nname = \"a\"\nkeyless = { identity_regex = \"(\", issuer = \"i\" }\n[requirements.scan]\n", "invalid identity regex"),
            ("subjects = [\"**\"]\n[[authorities]]\nname = \"a\"\nkeyless = { identity = \"x\", issuer = \"i\", staging = true, trusted_root = \"r.json\" }\n[requirements.scan]\n", "keep one"),
            ("subjects = [\"**\"]\n[[authorities]]\nname = \"a\"\nkeyless = { identity = \"x\", issuer = \"i\", trusted_root = \"/nonexistent/r.json\" }\n[requirements.scan]\n", "/nonexistent/r.json"),
            ("subjects = [\"**\"]\n[[authorities]]\nname = \"a\"\nkeyless = { identity = \"x\", issuer = \"i\", tlog_entries = 99 }\n[requirements.scan]\n", "over 16"),
            ("subjects = [\"**\"]\n[[authorities]]\nname = \"a\"\nkeyless = { identity = \"x\", issuer = \"i\", rekor = true }\n[requirements.scan]\n", "rekor"),
        ] {
            let e = load(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn keyless_parses_with_a_note() {
        let p = load("subjects = [\"oci://ghcr.io/acme/**\"]\n[[authorities]]\nname = \"ci\"\nkeyless = { identity_regex = \"^https://github.com/acme/\", issuer = \"https://token.actions.githubusercontent.com\" }\n[requirements.signature]\n").unwrap();
        assert!(matches!(p.authorities[0].kind, AuthorityKind::Keyless(_)));
        assert!(p.notes.is_empty(), "{:?}", p.notes);
        assert!(matches!(p.authorities[0].trust(), Ok(Trust::Keyless(_))));
        assert!(p
            .matching_pattern(&Subject::Oci("oci://ghcr.io/acme/m:v1".into()))
            .is_some());
        assert!(p
            .matching_pattern(&Subject::Oci("oci://docker.io/acme/m:v1".into()))
            .is_none());
    }

    #[test]
    fn broad_keyless_regexes_are_remarked() {
        let p = |id: &str, iss: &str| {
            load(&format!("subjects = [\"**\"]\n[[authorities]]\nname = \"ci\"\nkeyless = {{ {id}, {iss} }}\n[requirements.signature]\n"))
                .unwrap()
                .notes
        };
        let iss = "issuer = \"https://token.actions.githubusercontent.com\"";
        assert!(p("identity_regex = \".*\"", iss)[0].contains("stranger"));
        assert!(p("identity_regex = \"https://github\\\\.com/.*\"", iss)[0]
            .contains("pin the organisation"));
        assert!(p("identity_regex = \".*@example\\\\.com\"", iss)[0].contains("stranger"));
        assert!(p(
            "identity_regex = \"https://github\\\\.com/acme/models/\\\\.github/workflows/.*\"",
            iss
        )
        .is_empty());
        assert!(p("identity = \"x\"", "issuer_regex = \"https://.*\"")[0].contains("issuer_regex"));
        assert!(p(
            "identity = \"x\"",
            "issuer_regex = \"https://token\\\\.actions\\\\.githubusercontent\\\\.com\""
        )
        .is_empty());
    }

    fn check(status: CheckStatus) -> Check {
        Check {
            name: "x",
            status,
            summary: String::new(),
            findings: vec![Finding::new("GAT002", Severity::High, "m")],
        }
    }

    #[test]
    fn verdict_table() {
        use CheckStatus::*;
        let v = |m, s, r| {
            let o = verdict(m, &[check(Pass), check(s)], r);
            (o.verdict, o.exit, o.would_fail)
        };
        assert_eq!(
            v(Mode::Enforce, Pass, false),
            (Verdict::Pass, Exit::Pass, false)
        );
        assert_eq!(
            v(Mode::Enforce, Fail, false),
            (Verdict::Fail, Exit::Finding, false)
        );
        assert_eq!(
            v(Mode::Warn, Fail, false),
            (Verdict::Warn, Exit::Pass, true)
        );
        assert_eq!(
            v(Mode::Audit, Fail, false),
            (Verdict::Pass, Exit::Pass, true)
        );
        assert_eq!(
            v(Mode::Audit, Error, false),
            (Verdict::Fail, Exit::Error, false)
        );
        assert_eq!(
            v(Mode::Warn, Pass, true),
            (Verdict::Fail, Exit::Finding, false)
        );
        assert_eq!(
            v(Mode::Audit, Skipped, true),
            (Verdict::Fail, Exit::Finding, false)
        );
    }

    #[test]
    fn subjects_parse() {
        assert!(matches!(parse_subject(""), Err(SubjectError::Empty)));
        assert!(matches!(
            parse_subject("oci://"),
            Err(SubjectError::NotOci(_))
        ));
        assert!(matches!(
            parse_subject("oci://ghcr.io"),
            Err(SubjectError::NotOci(_))
        ));
        assert!(matches!(
            parse_subject("oci://ghcr.io/a b"),
            Err(SubjectError::NotOci(_))
        ));
        assert!(matches!(
            parse_subject("a\u{1b}[2Jb"),
            Err(SubjectError::Control(_))
        ));
        assert!(parse_subject("oci://ghcr.io/a/b:v1").is_ok());
        assert!(matches!(
            parse_subject("https://x/y"),
            Err(SubjectError::Scheme(_))
        ));
        let e = parse_subject("/nonexistent/mlsign/subject").unwrap_err();
        assert!(matches!(e, SubjectError::Path { .. }), "{e:?}");
        assert!(
            e.to_string().contains("/nonexistent/mlsign/subject: "),
            "{e}"
        );
    }
}
