//! `mlsign gate`: run every check a policy requires on one subject, once, and fold the results
//! into one verdict.
//!
//! Order: subject match → revocation → signature → scan → bom → lineage → behave → approvals.
//! The tree is hashed once per distinct hashing configuration: the subject digest (SHA-256,
//! whole files, model_signing's default ignore rules) is the manifest that signature
//! verification, BOM matching, the behave report's candidate check and approvals all reuse when
//! the signature was made with that configuration (the default).

pub mod approval;
pub mod audit;

use crate::attest::{self, bundle::Bundle, cert::Cert, statement};
use crate::digest::{self, Difference, HashAlgorithm, HashConfig, Manifest};
use crate::policy::{self, Outcome, Policy, Subject};
use crate::report::{codes, Check, CheckStatus, Finding, Location, Severity};
use serde::Serialize;
use serde_json::json;
use std::path::{Path, PathBuf};

/// The `schema` of the gate's JSON report.
pub const SCHEMA: &str = "mlsign-gate/1";

/// Largest behave report read.
const MAX_REPORT_BYTES: u64 = 64 << 20;
/// Most approval files considered beside one subject.
const MAX_APPROVALS: usize = 1000;

/// Evidence locations given on the command line; `None`/empty = the policy's setting or the
/// default location beside the subject.
#[derive(Clone, Debug, Default)]
pub struct Evidence {
    pub bundles: Vec<PathBuf>,
    pub bom: Option<PathBuf>,
    pub behave_report: Option<PathBuf>,
    pub lineage: Option<PathBuf>,
    pub approvals: Vec<PathBuf>,
}

#[derive(Clone, Debug, Default)]
pub struct GateOptions {
    pub evidence: Evidence,
    pub threads: Option<usize>,
    /// Registry access for `oci://` subjects (default: `oci::Options::default()`).
    pub registry: Option<crate::oci::Options>,
}

/// A subject that cannot be gated at all (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("malformed subject: {0}")]
    Subject(#[from] crate::policy::SubjectError),
}

#[derive(Clone, Debug, Serialize)]
pub struct SubjectOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// `sha256:<hex>` root of the content manifest; null when it could not be computed.
    pub digest: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PolicyOut {
    pub path: String,
    pub sha256: String,
    pub mode: &'static str,
}

/// The gate's result for one subject (JSON schema `mlsign-gate/1`).
#[derive(Clone, Debug, Serialize)]
pub struct GateReport {
    pub schema: &'static str,
    pub verdict: crate::report::Verdict,
    pub subject: SubjectOut,
    pub policy: PolicyOut,
    pub checks: Vec<Check>,
    pub findings: Vec<Finding>,
    /// Violations the policy's mode (warn, audit) did not enforce.
    pub would_fail: bool,
    pub revoked: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<approval::Approval>,
    pub tool: ToolOut,
    #[serde(skip)]
    pub outcome: Outcome,
}

#[derive(Clone, Debug, Serialize)]
pub struct ToolOut {
    pub name: &'static str,
    pub version: &'static str,
}

impl GateReport {
    /// One line: subject and verdict.
    pub fn headline(&self) -> String {
        let s = self
            .subject
            .path
            .as_deref()
            .or(self.subject.reference.as_deref())
            .unwrap_or("?");
        let why = if self.revoked {
            " (revoked)".to_string()
        } else if self.would_fail {
            format!(" (violations not enforced: mode {})", self.policy.mode)
        } else {
            String::new()
        };
        format!("{s}: {}{why}", self.verdict)
    }
}

fn high(code: &'static str, msg: impl Into<String>) -> Finding {
    Finding::new(code, Severity::High, msg)
}

fn at(f: Finding, p: &Path) -> Finding {
    f.at(Location::path(p.display().to_string()))
}

fn missing(what: &str, p: &Path, hint: &str) -> Finding {
    at(
        high(
            codes::GAT002,
            format!("{what} not found at {} ({hint})", p.display()),
        ),
        p,
    )
    .with_details(json!({"looked_for": p.display().to_string()}))
}

fn unreadable(p: &Path, why: impl std::fmt::Display) -> Finding {
    at(
        Finding::new(
            codes::GAT010,
            Severity::High,
            format!("{}: {why}", p.display()),
        ),
        p,
    )
}

/// A policy authority whose trust material cannot be loaded now (a keyless trusted root
/// removed or edited since the policy was loaded): the check cannot be decided.
fn authority_error(a: &policy::Authority, e: impl std::fmt::Display) -> Finding {
    Finding::new(
        codes::GAT012,
        Severity::High,
        format!("authority {:?} cannot be evaluated: {e}", a.name),
    )
}

/// The identity part of a verified signer: a certificate subject, a key hint, or the SAN of a
/// keyless signer (`attest` writes those as `SAN (issuer URL)`).
fn signer_identity(signer: &str) -> &str {
    match signer.rfind(" (issuer ") {
        Some(i) if signer.ends_with(')') => &signer[..i],
        _ => signer,
    }
}

/// A sibling of the subject: `SUBJECT<suffix>` in the subject's directory (as `mlsign sign`
/// places `SUBJECT.sig`).
fn sibling(abs: &Path, suffix: &str) -> PathBuf {
    let name = abs
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "subject".into());
    abs.with_file_name(format!("{name}{suffix}"))
}

/// A path from the policy: `{subject}` expands to the subject's absolute path; other relative
/// paths are relative to the policy file's directory.
fn policy_path(policy: &Policy, template: &str, subject_abs: &Path) -> PathBuf {
    if template.contains("{subject}") {
        return PathBuf::from(template.replace("{subject}", &subject_abs.to_string_lossy()));
    }
    let p = Path::new(template);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    policy
        .path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(p)
}

/// A signature difference located in the workspace: `SUBJECT/FILE` for a directory subject.
fn finding_of(d: &Difference, shown: &str, is_dir: bool) -> Finding {
    let mut f = d.to_finding();
    if let Some(l) = f.location.as_mut() {
        l.path = if is_dir {
            format!("{}/{}", shown.trim_end_matches('/'), d.path())
        } else {
            shown.to_string()
        };
    }
    f
}

/// Hashes of the subject, one per distinct configuration.
struct Hashes {
    root: PathBuf,
    threads: Option<usize>,
    done: Vec<(HashConfig, Manifest)>,
}

fn same_config(a: &HashConfig, b: &HashConfig) -> bool {
    let norm = |c: &HashConfig| {
        let mut v = c.ignore_paths.clone();
        v.sort();
        v.dedup();
        v
    };
    a.algorithm == b.algorithm
        && a.method == b.method
        && a.allow_symlinks == b.allow_symlinks
        && norm(a) == norm(b)
}

impl Hashes {
    fn get(&mut self, config: &HashConfig) -> Result<&Manifest, digest::Error> {
        if let Some(i) = self.done.iter().position(|(c, _)| same_config(c, config)) {
            return Ok(&self.done[i].1);
        }
        let mut c = config.clone();
        c.threads = self.threads;
        let m = Manifest::from_path(&self.root, &c)?;
        self.done.push((c, m));
        Ok(&self.done[self.done.len() - 1].1)
    }
}

/// Signer identities found while checking, for revocation and separation of duties.
#[derive(Default)]
struct Signers {
    /// Key hints (verified, or claimed by a bundle).
    hints: Vec<String>,
    /// Certificate subjects.
    identities: Vec<String>,
}

impl Signers {
    fn add_claims(&mut self, b: &Bundle) {
        let vm = &b.verification_material;
        if let Some(h) = vm.public_key.as_ref().map(|p| p.hint.to_ascii_lowercase()) {
            if !h.is_empty() && !self.hints.contains(&h) {
                self.hints.push(h);
            }
        }
        let leaf = vm
            .x509_certificate_chain
            .as_ref()
            .and_then(|c| c.certificates.first())
            .or(vm.certificate.as_ref());
        let der = leaf.and_then(|c| b64_decode(&c.raw_bytes));
        // A Fulcio certificate's identity is its SAN (its subject is empty).
        if let Some((san, _)) = der
            .as_deref()
            .and_then(crate::attest::sigstore::certificate_claims)
        {
            if !self.identities.contains(&san) {
                self.identities.push(san);
            }
        }
        if let Some(c) = der.and_then(|der| Cert::from_der(&der).ok()) {
            let s = c.subject();
            if !s.is_empty() && !self.identities.contains(&s) {
                self.identities.push(s);
            }
            if let Ok(k) = c.public_key() {
                let h = k.hint();
                if !self.hints.contains(&h) {
                    self.hints.push(h);
                }
            }
        }
    }
}

fn b64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
}

/// Run the gate on one subject.
pub fn run(policy: &Policy, subject: &str, opts: &GateOptions) -> Result<GateReport, GateError> {
    let subj = policy::parse_subject(subject).map_err(GateError::Subject)?;
    let mut checks = Vec::new();
    let mut approvals = Vec::new();
    let mut digest_out = None;
    let matched = policy.matching_pattern(&subj).map(|p| p.glob.clone());
    let subject_out = match &subj {
        Subject::Path { shown, .. } => SubjectOut {
            path: Some(shown.clone()),
            reference: None,
            digest: None,
        },
        Subject::Oci(r) => SubjectOut {
            path: None,
            reference: Some(r.clone()),
            digest: None,
        },
    };
    let no_match_outcome;
    match &matched {
        Some(g) => {
            no_match_outcome = None;
            checks.push(Check {
                name: "subject",
                status: CheckStatus::Pass,
                summary: format!("covered by subject pattern {g:?}"),
                findings: vec![],
            });
        }
        None => {
            let f = Finding::new(
                codes::GAT001,
                if policy.no_match == policy::NoMatch::Allow {
                    Severity::Info
                } else {
                    Severity::High
                },
                format!(
                    "{subject} matches none of the policy's subject patterns ({}); no_match = {}",
                    policy
                        .subjects
                        .iter()
                        .map(|p| p.glob.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    policy.no_match.as_str()
                ),
            );
            no_match_outcome = Some(policy.no_match);
            checks.push(Check {
                name: "subject",
                status: if policy.no_match == policy::NoMatch::Allow {
                    CheckStatus::Pass
                } else {
                    CheckStatus::Fail
                },
                summary: "no subject pattern matches".into(),
                findings: vec![f],
            });
        }
    }

    let mut revoked = false;
    match &subj {
        Subject::Oci(r) => {
            if matched.is_some() {
                let (c, d, rev) = oci_checks(policy, r, opts);
                checks.extend(c);
                digest_out = d;
                revoked = rev;
            }
        }
        Subject::Path { shown, absolute } => {
            let mut hashes = Hashes {
                root: absolute.clone(),
                threads: opts.threads,
                done: Vec::new(),
            };
            let default_cfg = HashConfig::default();
            let subject_manifest = hashes.get(&default_cfg).cloned();
            let subject_manifest = match subject_manifest {
                Ok(m) => Some(m),
                Err(e) => {
                    checks.push(Check::error(
                        "digest",
                        at(
                            Finding::new(
                                codes::GAT010,
                                Severity::High,
                                format!("cannot hash the subject: {e}"),
                            ),
                            absolute,
                        ),
                    ));
                    None
                }
            };
            if let Some(m) = &subject_manifest {
                let digest = format!("sha256:{}", m.root_digest_hex());
                digest_out = Some(digest.clone());
                let cx = Cx {
                    policy,
                    opts,
                    shown,
                    abs: absolute,
                    digest: &digest,
                    manifest: m,
                };
                let mut signers = Signers::default();
                let covered = matched.is_some();
                let mut req_checks = Vec::new();
                if covered {
                    req_checks.push(cx.signature(&mut hashes, &mut signers));
                    req_checks.push(cx.scan());
                    req_checks.push(cx.bom(&mut signers));
                    req_checks.push(cx.lineage());
                    req_checks.push(cx.behave(&mut signers));
                    req_checks.push(cx.approvals(&signers, &mut approvals));
                } else {
                    // Claims in the default bundle still count for revocation.
                    cx.collect_claims(&mut signers);
                }
                let rev = cx.revocation(&signers);
                revoked = rev.status == CheckStatus::Fail;
                checks.push(rev);
                checks.extend(req_checks);
            }
        }
    }

    let outcome = match no_match_outcome {
        None => policy::verdict(policy.mode, &checks, revoked),
        Some(nm) => {
            // Outside the policy's subjects the mode does not apply: no_match decides, but an
            // error or a revocation still wins.
            use crate::report::{Exit, Verdict};
            let rest: Vec<Check> = checks
                .iter()
                .filter(|c| c.name != "subject")
                .cloned()
                .collect();
            let mut o = policy::verdict(policy.mode, &rest, revoked);
            if o.exit == Exit::Pass {
                let (v, e) = match nm {
                    policy::NoMatch::Deny => (Verdict::Fail, Exit::Finding),
                    policy::NoMatch::Warn => (Verdict::Warn, Exit::Pass),
                    policy::NoMatch::Allow => (Verdict::Pass, Exit::Pass),
                };
                o.verdict = v;
                o.exit = e;
                o.would_fail = false;
            }
            o
        }
    };
    let findings = checks.iter().flat_map(|c| c.findings.clone()).collect();
    Ok(GateReport {
        schema: SCHEMA,
        verdict: outcome.verdict,
        subject: SubjectOut {
            digest: digest_out,
            ..subject_out
        },
        policy: PolicyOut {
            path: policy.path.display().to_string(),
            sha256: policy.sha256.clone(),
            mode: policy.mode.as_str(),
        },
        checks,
        findings,
        would_fail: outcome.would_fail,
        revoked: outcome.revoked,
        approvals,
        tool: ToolOut {
            name: "mlsign",
            version: env!("CARGO_PKG_VERSION"),
        },
        outcome,
    })
}

/// An `oci://` subject: the signature requirement is checked in the registry by manifest
/// digest (crate::oci, nothing pulled); revocation by digest and signer key. Requirements that
/// need the model's files fail closed with advice to pull and gate the directory.
fn oci_checks(
    policy: &Policy,
    reference: &str,
    gate_opts: &GateOptions,
) -> (Vec<Check>, Option<String>, bool) {
    const NAME: &str = "signature";
    let mut checks = Vec::new();
    let r = match crate::oci::Reference::parse(reference) {
        Ok(r) => r,
        Err(e) => {
            let f = Finding::new(codes::GAT010, Severity::High, e.to_string());
            return (vec![Check::error("subject", f)], None, false);
        }
    };
    if policy.require_digest && r.digest.is_none() {
        checks.push(Check::from_findings(
            "digest",
            "the policy requires references pinned by digest",
            vec![Finding::new(
                codes::GAT014,
                Severity::High,
                format!("{reference} names a tag, but the policy sets require_digest = true: pin it (`@sha256:…`)"),
            )
            .at(Location::path(reference))],
        ));
    }
    let opts = gate_opts.registry.clone().unwrap_or_default();
    let (mut digest, mut satisfied, mut hints) = (None, Vec::new(), Vec::new());
    for a in &policy.authorities {
        let trust = match a.trust() {
            Ok(t) => t,
            Err(e) => return (vec![Check::error(NAME, authority_error(a, e))], None, false),
        };
        match crate::oci::verify_reference(&r, &trust, &opts) {
            Ok(o) => {
                digest = Some(o.digest.clone());
                if let Some(c) = o.verified_candidate() {
                    let signer = c.signer.clone().unwrap_or_default();
                    if !hints.contains(&signer) {
                        satisfied.push(a.name.clone());
                        hints.push(signer);
                    }
                }
            }
            Err(e) => {
                let f = Finding::new(codes::GAT010, Severity::High, format!("{reference}: {e}"));
                return (vec![Check::error(NAME, f)], digest, false);
            }
        }
    }
    let rev = &policy.revocation;
    let mut rev_findings = Vec::new();
    if let Some(d) = digest.as_ref().filter(|d| rev.digests.contains(d)) {
        rev_findings.push(Finding::new(
            codes::GAT004,
            Severity::Critical,
            format!("the subject's digest {d} is revoked by the policy"),
        ));
    }
    for h in hints.iter().filter(|h| rev.keys.contains(h)) {
        rev_findings.push(Finding::new(
            codes::GAT004,
            Severity::Critical,
            format!("the signer key {h} is revoked by the policy"),
        ));
    }
    for i in hints
        .iter()
        .map(|h| signer_identity(h))
        .filter(|i| rev.identities.iter().any(|r| r == i))
    {
        rev_findings.push(Finding::new(
            codes::GAT004,
            Severity::Critical,
            format!("the signer identity {i:?} is revoked by the policy"),
        ));
    }
    let revoked = !rev_findings.is_empty();
    checks.push(Check::from_findings(
        "revocation",
        "registry digest and signer keys",
        rev_findings,
    ));
    let req = &policy.requirements;
    match &req.signature {
        None => checks.push(Check::skipped(NAME, "not required by the policy")),
        Some(sr) => {
            let have = satisfied.len();
            let mut findings = Vec::new();
            if have < sr.threshold {
                findings.push(
                    Finding::new(
                        codes::GAT003,
                        Severity::Critical,
                        format!(
                            "{have} of the {} required policy authorities verified a signature of {reference} in the registry",
                            sr.threshold,
                        ),
                    )
                    .at(Location::path(reference)),
                );
            }
            checks.push(Check::from_findings(
                NAME,
                format!(
                    "{have} of {} required authorities verified in the registry",
                    sr.threshold
                ),
                findings,
            ));
        }
    }
    let local: Vec<&str> = req
        .names()
        .into_iter()
        .filter(|n| *n != "signature")
        .collect();
    for n in local {
        checks.push(Check::error(
            "subject",
            Finding::new(
                codes::GAT010,
                Severity::High,
                format!("{reference}: the {n} requirement needs the model's files; `mlsign pull` it (digest-checked) and gate the directory"),
            ),
        ));
    }
    (checks, digest, revoked)
}

/// What every check of one path subject shares.
struct Cx<'a> {
    policy: &'a Policy,
    opts: &'a GateOptions,
    shown: &'a str,
    abs: &'a Path,
    /// `sha256:<hex>`.
    digest: &'a str,
    /// The default-configuration manifest behind `digest`.
    manifest: &'a Manifest,
}

impl Cx<'_> {
    fn bundle_paths(&self) -> Vec<PathBuf> {
        if self.opts.evidence.bundles.is_empty() {
            vec![sibling(self.abs, ".sig")]
        } else {
            self.opts.evidence.bundles.clone()
        }
    }

    fn bom_path(&self) -> PathBuf {
        if let Some(p) = &self.opts.evidence.bom {
            return p.clone();
        }
        match self
            .policy
            .requirements
            .bom
            .as_ref()
            .and_then(|b| b.path.as_deref())
        {
            Some(t) => policy_path(self.policy, t, self.abs),
            None => sibling(self.abs, ".cdx.json"),
        }
    }

    fn collect_claims(&self, signers: &mut Signers) {
        let mut paths = self.bundle_paths();
        let mut bom_sig = self.bom_path().into_os_string();
        bom_sig.push(".sig");
        paths.push(PathBuf::from(bom_sig));
        for p in paths {
            if let Ok(b) = Bundle::read(&p) {
                signers.add_claims(&b);
            }
        }
    }

    fn revocation(&self, signers: &Signers) -> Check {
        let r = &self.policy.revocation;
        let mut findings = Vec::new();
        if r.digests.iter().any(|d| d == self.digest) {
            findings.push(
                Finding::new(
                    codes::GAT004,
                    Severity::Critical,
                    format!(
                        "the subject's digest {} is revoked by the policy",
                        self.digest
                    ),
                )
                .at(Location::path(self.shown))
                .with_details(json!({"digest": self.digest})),
            );
        }
        for h in &signers.hints {
            if r.keys.contains(h) {
                findings.push(
                    Finding::new(
                        codes::GAT004,
                        Severity::Critical,
                        format!("a signature of the subject or its BOM is by the revoked key {h}"),
                    )
                    .at(Location::path(self.shown))
                    .with_details(json!({"key_hint": h})),
                );
            }
        }
        for i in &signers.identities {
            if r.identities.contains(i) {
                findings.push(
                    Finding::new(
                        codes::GAT004,
                        Severity::Critical,
                        format!("a signature of the subject or its BOM is by the revoked identity {i:?}"),
                    )
                    .at(Location::path(self.shown))
                    .with_details(json!({"identity": i})),
                );
            }
        }
        let n = r.digests.len() + r.keys.len() + r.identities.len();
        let summary = if findings.is_empty() {
            format!(
                "not revoked ({n} revocation entr{})",
                if n == 1 { "y" } else { "ies" }
            )
        } else {
            "REVOKED: the kill switch overrides every other check and mode".into()
        };
        Check::from_findings("revocation", summary, findings)
    }

    fn signature(&self, hashes: &mut Hashes, signers: &mut Signers) -> Check {
        const NAME: &str = "signature";
        let Some(req) = &self.policy.requirements.signature else {
            self.collect_claims(signers);
            return Check::skipped(NAME, "not required by the policy");
        };
        let mut findings = Vec::new();
        let mut satisfied: Vec<String> = Vec::new();
        let mut counted_signers: Vec<String> = Vec::new();
        let mut trusts = Vec::new();
        for a in &self.policy.authorities {
            match a.trust() {
                Ok(t) => trusts.push((a, t)),
                Err(e) => return Check::error(NAME, authority_error(a, e)),
            }
        }
        for bp in self.bundle_paths() {
            if !bp.exists() {
                findings.push(missing(
                    "signature bundle",
                    &bp,
                    "sign with `mlsign sign SUBJECT --key KEY` (or `--keyless`), or pass --bundle",
                ));
                continue;
            }
            let bundle = match Bundle::read(&bp) {
                Ok(b) => b,
                Err(e) => return Check::error(NAME, unreadable(&bp, e)),
            };
            signers.add_claims(&bundle);
            let mut rejections: Vec<(&'static str, String)> = Vec::new();
            let mut verified = None;
            for (a, trust) in &trusts {
                match attest::verify_bundle_with(&bundle, &bp, trust, req.legacy_pae) {
                    Ok(vp) => {
                        verified = Some((a.name.clone(), vp));
                        break;
                    }
                    Err(attest::Error::Rejected { code, message }) => {
                        rejections.push((code, format!("authority {:?}: {message}", a.name)))
                    }
                    Err(attest::Error::UnsupportedBundle { why, .. }) => {
                        rejections.push((codes::GAT003, format!("authority {:?}: {why}", a.name)))
                    }
                    // Made with another method than this authority's: not this authority's.
                    Err(attest::Error::OtherMethod { method, .. }) => rejections
                        .push((codes::GAT003, format!("authority {:?}: {method}", a.name))),
                    Err(e) => return Check::error(NAME, unreadable(&bp, e)),
                }
            }
            let Some((authority, vp)) = verified else {
                // Report the most specific rejection (a bad signature over a wrong method).
                let (code, msg) = rejections
                    .iter()
                    .find(|(c, _)| *c != codes::GAT003)
                    .or(rejections.first())
                    .cloned()
                    .unwrap_or((
                        codes::GAT003,
                        "no key or certificate authority in the policy".into(),
                    ));
                findings.push(
                    at(
                        Finding::new(
                            code,
                            Severity::Critical,
                            format!("{}: no policy authority verifies this bundle; {msg}", bp.display()),
                        ),
                        &bp,
                    )
                    .with_details(json!({"rejections": rejections.iter().map(|(_, m)| m).collect::<Vec<_>>()})),
                );
                continue;
            };
            if vp.payload_type != attest::bundle::IN_TOTO_PAYLOAD_TYPE {
                findings.push(at(
                    Finding::new(
                        "SIG008",
                        Severity::Critical,
                        format!(
                            "payload type {:?} is not an in-toto statement",
                            vp.payload_type
                        ),
                    ),
                    &bp,
                ));
                continue;
            }
            let signed = match statement::parse_model_statement(&vp.payload) {
                Ok(s) => s,
                Err(why) => {
                    findings.push(at(
                        Finding::new("SIG008", Severity::Critical, why.to_string()),
                        &bp,
                    ));
                    continue;
                }
            };
            if let Some(algs) = &req.hash_algorithms {
                if !algs
                    .iter()
                    .any(|a| HashAlgorithm::from_name(a) == Some(signed.config.algorithm))
                {
                    findings.push(at(
                        Finding::new(
                            "SIG009",
                            Severity::High,
                            format!(
                                "signed with {} hashing; the policy accepts {}",
                                signed.config.algorithm.name(),
                                algs.join(", ")
                            ),
                        ),
                        &bp,
                    ));
                    continue;
                }
            }
            let mut config = signed.config.clone();
            if let Ok(b_abs) = std::fs::canonicalize(&bp) {
                if let Ok(rel) = b_abs.strip_prefix(self.abs) {
                    let rel = rel.to_string_lossy().replace('\\', "/");
                    if !rel.is_empty() {
                        config.ignore_paths.push(rel);
                    }
                }
            }
            let actual = match hashes.get(&config) {
                Ok(m) => m,
                Err(e) => return Check::error(NAME, unreadable(self.abs, e)),
            };
            let diffs = digest::diff(&signed.manifest, actual);
            if !diffs.is_empty() {
                findings.extend(
                    diffs
                        .iter()
                        .map(|d| finding_of(d, self.shown, self.abs.is_dir())),
                );
                continue;
            }
            // Distinct authorities and distinct signer keys count toward the threshold.
            let signer_key = vp.signer.clone();
            if !satisfied.contains(&authority) && !counted_signers.contains(&signer_key) {
                satisfied.push(authority);
                counted_signers.push(signer_key);
            }
        }
        let have = satisfied.len();
        if have < req.threshold {
            findings.push(
                Finding::new(
                    codes::GAT003,
                    Severity::Critical,
                    format!(
                        "{have} of the {} required policy authorities verified a signature of the subject",
                        req.threshold
                    ),
                )
                .at(Location::path(self.shown))
                .with_details(json!({"verified_by": satisfied, "threshold": req.threshold})),
            );
        }
        let summary = if findings.is_empty() {
            format!(
                "verified by {} ({} of {} required)",
                satisfied.join(", "),
                have,
                req.threshold
            )
        } else {
            format!("{have} of {} required authorities verified", req.threshold)
        };
        // Any finding fails the check, even when the threshold was met by another bundle.
        Check::from_findings(NAME, summary, findings)
    }

    fn scan(&self) -> Check {
        const NAME: &str = "scan";
        let Some(req) = &self.policy.requirements.scan else {
            return Check::skipped(NAME, "not required by the policy");
        };
        let sp = match policy::scan_policy(req) {
            Ok(p) => p,
            Err(e) => {
                return Check::error(
                    NAME,
                    Finding::new(codes::GAT010, Severity::High, format!("scan policy: {e}")),
                )
            }
        };
        let report = match crate::scan::scan_path(&[PathBuf::from(self.shown)], &sp) {
            Ok(r) => r,
            Err(e) => return Check::error(NAME, unreadable(self.abs, e)),
        };
        use crate::scan::Verdict as V;
        let mut findings = Vec::new();
        let mut bad = 0;
        for f in &report.files {
            let fails = match f.verdict {
                V::Malicious | V::Unscannable => true,
                V::Suspicious => sp.fail_on_suspicious,
                V::Clean => false,
            };
            if fails {
                bad += 1;
            }
            for x in &f.findings {
                let mut fd = x.to_finding(&f.path);
                if !fails && fd.severity > Severity::Info {
                    // Reported, but below what the policy fails on.
                    fd.severity = Severity::Info;
                }
                if fails || x.severity > Severity::Info {
                    findings.push(fd);
                }
            }
        }
        let summary = format!("{} file(s) scanned, {bad} not clean", report.files.len());
        let mut c = Check::from_findings(NAME, summary, findings);
        if bad > 0 {
            c.status = CheckStatus::Fail;
        }
        c
    }

    fn bom(&self, signers: &mut Signers) -> Check {
        const NAME: &str = "bom";
        let Some(req) = &self.policy.requirements.bom else {
            return Check::skipped(NAME, "not required by the policy");
        };
        let path = self.bom_path();
        if !path.exists() {
            return Check::from_findings(
                NAME,
                "no ML-BOM",
                vec![missing(
                    "ML-BOM",
                    &path,
                    "make it with `mlsign bom SUBJECT -o SUBJECT.cdx.json`, or pass --bom",
                )],
            );
        }
        let shown = path.display().to_string();
        let bytes = match crate::bom::read_limited(&path, crate::bom::MAX_BOM_BYTES) {
            Ok(b) => b,
            Err(e) => return Check::error(NAME, unreadable(&path, e)),
        };
        let doc = match crate::bom::validate::parse(&bytes) {
            Ok(d) => d,
            Err(e) => return Check::error(NAME, unreadable(&path, e)),
        };
        let issues = match crate::bom::validate::validate(&doc) {
            Ok(i) => i,
            Err(e) => return Check::error(NAME, unreadable(&path, e)),
        };
        let mut findings: Vec<Finding> = issues.iter().map(|i| i.to_finding(&shown)).collect();
        // Does it describe this subject?
        match crate::bom::from_json(&bytes) {
            Ok(b) => {
                let model = b.metadata.as_ref().and_then(|m| m.component.as_deref());
                let recorded = model
                    .and_then(|c| c.hash("SHA-256"))
                    .map(str::to_ascii_lowercase);
                let want = self.digest.trim_start_matches("sha256:");
                match (&recorded, model) {
                    (Some(r), _) if r == want => {}
                    (r, m) => {
                        findings.push(
                            Finding::new(
                                codes::GAT005,
                                Severity::Critical,
                                match r {
                                    Some(r) => format!(
                                        "the BOM's model {:?} has digest sha256:{r}, but the subject is {}: the BOM belongs to another artifact",
                                        m.map(|c| c.name.as_str()).unwrap_or("?"),
                                        self.digest
                                    ),
                                    None => format!(
                                        "the BOM records no SHA-256 for its model (metadata.component); expected {}",
                                        self.digest
                                    ),
                                },
                            )
                            .at(Location::path(&shown))
                            .with_details(json!({"expected": self.digest, "found": r.as_ref().map(|r| format!("sha256:{r}"))})),
                        );
                        // Name the files that differ when the BOM lists them.
                        if let Some(m) = m {
                            let mut res = Vec::new();
                            for f in m.components.iter().filter(|k| k.kind == "file") {
                                if let (Some(h), Ok(d)) = (
                                    f.hash("SHA-256"),
                                    hex::decode(f.hash("SHA-256").unwrap_or_default()),
                                ) {
                                    if h.len() == 64 {
                                        res.push(digest::Resource {
                                            name: f.name.clone(),
                                            algorithm: "sha256".into(),
                                            digest: d,
                                        });
                                    }
                                }
                            }
                            if !res.is_empty() {
                                let recorded = Manifest::from_resources(res);
                                for d in digest::diff(&recorded, self.manifest) {
                                    let (code, what) = match &d {
                                        Difference::Modified { .. }
                                        | Difference::Renamed { .. } => {
                                            ("BOM005", "differs from its hash in the BOM")
                                        }
                                        Difference::Missing { .. } => {
                                            ("BOM006", "listed in the BOM, but missing")
                                        }
                                        Difference::Extra { .. } => {
                                            ("BOM007", "present, but not listed in the BOM")
                                        }
                                    };
                                    findings.push(
                                        Finding::new(
                                            code,
                                            Severity::High,
                                            format!("{}: {what}", d.path()),
                                        )
                                        .at(Location {
                                            path: self.shown.to_string(),
                                            member: Some(d.path().to_string()),
                                            stream: None,
                                            offset: None,
                                        }),
                                    );
                                }
                            }
                        }
                    }
                }
            }
            Err(e) => {
                if findings.is_empty() {
                    return Check::error(NAME, unreadable(&path, e));
                }
            }
        }
        // Signed by a policy authority?
        let mut sig_note = "unsigned (allowed by the policy)".to_string();
        if req.signed {
            let mut bp = path.clone().into_os_string();
            bp.push(".sig");
            let bp = PathBuf::from(bp);
            if !bp.exists() {
                findings.push(missing(
                    "BOM signature",
                    &bp,
                    "sign it with `mlsign bom sign BOM --key KEY`",
                ));
                sig_note = "unsigned".into();
            } else {
                let bundle = match Bundle::read(&bp) {
                    Ok(b) => b,
                    Err(e) => return Check::error(NAME, unreadable(&bp, e)),
                };
                signers.add_claims(&bundle);
                let mut verified = None;
                let mut rejections = Vec::new();
                for a in &self.policy.authorities {
                    let trust = match a.trust() {
                        Ok(t) => t,
                        Err(e) => return Check::error(NAME, authority_error(a, e)),
                    };
                    match attest::verify_bundle(&bundle, &bp, &trust) {
                        Ok(vp) => {
                            verified = Some((a.name.clone(), vp));
                            break;
                        }
                        Err(attest::Error::Rejected { message, .. })
                        | Err(attest::Error::UnsupportedBundle { why: message, .. }) => {
                            rejections.push(format!("authority {:?}: {message}", a.name))
                        }
                        Err(attest::Error::OtherMethod { method, .. }) => {
                            rejections.push(format!("authority {:?}: {method}", a.name))
                        }
                        Err(e) => return Check::error(NAME, unreadable(&bp, e)),
                    }
                }
                match verified {
                    Some((name, vp)) => {
                        match crate::bom::sign::check_statement(&vp.payload, &bytes) {
                            Ok(_) => sig_note = format!("signed by {name}"),
                            Err(why) => {
                                findings
                                    .push(crate::bom::attestation_finding(why.to_string(), &shown));
                                sig_note = "signature does not cover this BOM".into();
                            }
                        }
                    }
                    None => {
                        findings.push(at(
                            Finding::new(
                                codes::GAT006,
                                Severity::Critical,
                                format!(
                                    "{}: the BOM is not signed by a policy authority ({})",
                                    bp.display(),
                                    rejections.join("; ")
                                ),
                            ),
                            &bp,
                        ));
                        sig_note = "not signed by a policy authority".into();
                    }
                }
            }
        }
        let summary = format!(
            "{}: {} issue(s); {sig_note}",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            findings.len()
        );
        Check::from_findings(NAME, summary, findings)
    }

    fn lineage(&self) -> Check {
        const NAME: &str = "lineage";
        let Some(req) = &self.policy.requirements.lineage else {
            return Check::skipped(NAME, "not required by the policy");
        };
        let path = match (&self.opts.evidence.lineage, &req.file) {
            (Some(p), _) => p.clone(),
            (None, Some(t)) => policy_path(self.policy, t, self.abs),
            (None, None) => self
                .abs
                .parent()
                .unwrap_or(Path::new("/"))
                .join("lineage.json"),
        };
        if !path.exists() {
            return Check::from_findings(
                NAME,
                "no lineage file",
                vec![missing(
                    "dataset lineage",
                    &path,
                    "record it with `mlsign dataset record|derive --lineage FILE`, or pass --lineage",
                )],
            );
        }
        let loaded = match crate::dataset::load(&path) {
            Ok(l) => l,
            Err(e) => return Check::error(NAME, unreadable(&path, e)),
        };
        if loaded.lineage.datasets.is_empty() {
            return Check::from_findings(
                NAME,
                "empty lineage",
                vec![at(
                    high(
                        codes::GAT002,
                        format!("{}: the lineage records no dataset", path.display()),
                    ),
                    &path,
                )],
            );
        }
        let rep = match crate::dataset::verify(
            &loaded,
            &crate::dataset::VerifyOptions {
                skip_code: req.skip_code,
                threads: self.opts.threads,
            },
        ) {
            Ok(r) => r,
            Err(e) => return Check::error(NAME, unreadable(&path, e)),
        };
        let summary = format!(
            "{}: {} dataset version(s), {} finding(s)",
            path.display(),
            rep.datasets.len(),
            rep.findings.len()
        );
        Check::from_findings(NAME, summary, rep.findings)
    }

    fn behave(&self, signers: &mut Signers) -> Check {
        const NAME: &str = "behave";
        let Some(req) = &self.policy.requirements.behave else {
            return Check::skipped(NAME, "not required by the policy");
        };
        let path = match (&self.opts.evidence.behave_report, &req.report) {
            (Some(p), _) => p.clone(),
            (None, Some(t)) => policy_path(self.policy, t, self.abs),
            (None, None) => sibling(self.abs, ".behave.json"),
        };
        if !path.exists() {
            return Check::from_findings(
                NAME,
                "no behave report",
                vec![missing(
                    "behave report",
                    &path,
                    "write it with `mlsign behave --baseline B --candidate SUBJECT --suite S --format json > SUBJECT.behave.json`, or pass --behave-report",
                )],
            );
        }
        let bytes = match crate::bom::read_limited(&path, MAX_REPORT_BYTES) {
            Ok(b) => b,
            Err(e) => return Check::error(NAME, unreadable(&path, e)),
        };
        // Strict JSON: a duplicate key could make the report say one thing here and another
        // to whoever reads it next.
        let v: serde_json::Value = match crate::json::value_from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => return Check::error(NAME, unreadable(&path, format!("not JSON: {e}"))),
        };
        if v["schema"] != "mlsign-behave/1" {
            return Check::error(
                NAME,
                unreadable(&path, format!("not an mlsign behave report (schema {}, expected \"mlsign-behave/1\" with one candidate)", v["schema"])),
            );
        }
        let field = |p: &str| {
            v.pointer(p)
                .and_then(|x| x.as_str())
                .map(str::to_ascii_lowercase)
        };
        let (Some(suite), Some(baseline), Some(candidate), Some(verdict)) = (
            field("/suite/sha256"),
            field("/baseline/weights_sha256"),
            field("/candidate/weights_sha256"),
            field("/verdict"),
        ) else {
            return Check::error(
                NAME,
                unreadable(&path, "missing suite.sha256, baseline.weights_sha256, candidate.weights_sha256 or verdict"),
            );
        };
        let mut findings = Vec::new();
        let pin = |what: &str, found: &str, want: &str| {
            at(
                Finding::new(
                    codes::GAT007,
                    Severity::High,
                    format!("the report's {what} is sha256:{found}, the policy pins sha256:{want}"),
                ),
                &path,
            )
            .with_details(
                json!({"expected": format!("sha256:{want}"), "found": format!("sha256:{found}")}),
            )
        };
        if suite != req.suite_sha256 {
            findings.push(pin("suite", &suite, &req.suite_sha256));
        }
        if baseline != req.baseline_sha256 {
            findings.push(pin("baseline", &baseline, &req.baseline_sha256));
        }
        if !self
            .manifest
            .resources()
            .iter()
            .any(|r| r.hex() == candidate)
        {
            findings.push(
                at(
                    Finding::new(
                        codes::GAT007,
                        Severity::High,
                        format!("the report's candidate weights (sha256:{candidate}) are not a file of this subject: the report is about another model"),
                    ),
                    &path,
                )
                .with_details(json!({"found": format!("sha256:{candidate}")})),
            );
        }
        let gating: Vec<String> = v["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["code"].as_str())
            .filter(|c| *c == codes::BHV001 || *c == codes::BHV002)
            .map(str::to_string)
            .collect();
        if verdict == "flagged" || !gating.is_empty() {
            findings.push(at(
                Finding::new(
                    codes::GAT008,
                    Severity::High,
                    format!(
                        "the behave report did not pass ({}): {}",
                        if gating.is_empty() {
                            verdict.clone()
                        } else {
                            gating.join(", ")
                        },
                        v["message"].as_str().unwrap_or("")
                    ),
                ),
                &path,
            ));
        } else if verdict != "no-divergence-found" {
            return Check::error(
                NAME,
                unreadable(&path, format!("unknown verdict {verdict:?}")),
            );
        }
        let mut signed_by = String::new();
        if req.signed {
            match self.report_signature(&path, &bytes, signers) {
                Ok(Ok(name)) => signed_by = format!(", signed by {name}"),
                Ok(Err(f)) => findings.push(f),
                Err(c) => return c,
            }
        }
        let summary = format!(
            "{}: {verdict}{signed_by}",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        Check::from_findings(NAME, summary, findings)
    }

    /// `REPORT.sig` must verify under a policy authority and attest exactly these report bytes
    /// (`mlsign attest sign`). `Ok(Ok(authority))`, `Ok(Err(violation))`, or `Err(error check)`.
    fn report_signature(
        &self,
        report: &Path,
        bytes: &[u8],
        signers: &mut Signers,
    ) -> Result<Result<String, Finding>, Check> {
        const NAME: &str = "behave";
        let mut bp = report.as_os_str().to_os_string();
        bp.push(".sig");
        let bp = PathBuf::from(bp);
        if !bp.exists() {
            return Ok(Err(missing(
                "behave report signature",
                &bp,
                "sign the report with `mlsign attest sign REPORT --key KEY` (or `--keyless`)",
            )));
        }
        let bundle = Bundle::read(&bp).map_err(|e| Check::error(NAME, unreadable(&bp, e)))?;
        signers.add_claims(&bundle);
        let mut rejections = Vec::new();
        for a in &self.policy.authorities {
            let trust = a
                .trust()
                .map_err(|e| Check::error(NAME, authority_error(a, e)))?;
            match attest::verify_bundle(&bundle, &bp, &trust) {
                Ok(vp) => {
                    return Ok(attest::document::check(
                        &vp.payload,
                        bytes,
                        attest::document::BEHAVE_PREDICATE,
                    )
                    .map(|_| a.name.clone())
                    .map_err(|why| {
                        at(
                            Finding::new(
                                codes::GAT013,
                                Severity::Critical,
                                format!("{}: {why}", bp.display()),
                            ),
                            &bp,
                        )
                    }))
                }
                Err(attest::Error::Rejected { message, .. })
                | Err(attest::Error::UnsupportedBundle { why: message, .. }) => {
                    rejections.push(format!("authority {:?}: {message}", a.name))
                }
                Err(attest::Error::OtherMethod { method, .. }) => {
                    rejections.push(format!("authority {:?}: {method}", a.name))
                }
                Err(e) => return Err(Check::error(NAME, unreadable(&bp, e))),
            }
        }
        Ok(Err(at(
            Finding::new(
                codes::GAT013,
                Severity::Critical,
                format!(
                    "{}: the behave report is not signed by a policy authority ({})",
                    bp.display(),
                    rejections.join("; ")
                ),
            ),
            &bp,
        )
        .with_details(json!({"rejections": rejections}))))
    }

    fn approvals(&self, signers: &Signers, out: &mut Vec<approval::Approval>) -> Check {
        const NAME: &str = "approvals";
        let Some(req) = &self.policy.requirements.approvals else {
            return Check::skipped(NAME, "not required by the policy");
        };
        let files = if self.opts.evidence.approvals.is_empty() {
            match approval::find_beside(self.abs, MAX_APPROVALS) {
                Ok(f) => f,
                Err(e) => return Check::error(NAME, unreadable(self.abs, e)),
            }
        } else {
            self.opts.evidence.approvals.clone()
        };
        let cx = approval::Context {
            digest_hex: self.digest.trim_start_matches("sha256:"),
            reviewers: &req.reviewers,
            signer_hints: &signers.hints,
            revoked_keys: &self.policy.revocation.keys,
            max_age_days: req.max_age_days,
            now: time::OffsetDateTime::now_utc(),
        };
        let mut findings = Vec::new();
        let mut counted: Vec<approval::Approval> = Vec::new();
        for f in &files {
            let b = match Bundle::read(f) {
                Ok(b) => b,
                Err(e) => return Check::error(NAME, unreadable(f, e)),
            };
            match approval::check(&b, f, &cx) {
                Ok(a) => {
                    if !counted.iter().any(|c| c.reviewer_hint == a.reviewer_hint) {
                        counted.push(a);
                    }
                }
                Err(why) => findings.push(at(
                    Finding::new(
                        codes::GAT011,
                        Severity::Info,
                        format!("{}: not counted: {why}", f.display()),
                    ),
                    f,
                )),
            }
        }
        if counted.len() < req.count {
            let where_ = sibling(self.abs, &format!("{}*.sig", approval::FILE_INFIX));
            findings.push(
                Finding::new(
                    codes::GAT009,
                    Severity::High,
                    format!(
                        "{} valid approval(s) from distinct policy reviewers, {} required (looked at {})",
                        counted.len(),
                        req.count,
                        if self.opts.evidence.approvals.is_empty() {
                            where_.display().to_string()
                        } else {
                            "the --approval files".into()
                        }
                    ),
                )
                .at(Location::path(self.shown))
                .with_details(json!({"valid": counted.len(), "required": req.count})),
            );
        }
        let summary = format!("{} of {} required approval(s)", counted.len(), req.count);
        *out = counted;
        Check::from_findings(NAME, summary, findings)
    }
}

/// Everything the CLI does not need to know about rendering gate results.
pub mod render {
    use super::GateReport;
    use crate::report::{human, markdown};

    pub fn human(r: &GateReport) -> String {
        let mut s = human::checks(&r.headline(), r.verdict, &r.checks);
        if let Some(d) = &r.subject.digest {
            s.push_str(&format!("  digest {d}\n"));
        }
        s.push_str(&format!(
            "  policy {} (sha256:{}, mode {})\n",
            r.policy.path,
            &r.policy.sha256[..12],
            r.policy.mode
        ));
        s
    }

    pub fn markdown(reports: &[GateReport], max_bytes: usize) -> String {
        let per = max_bytes / reports.len().max(1);
        reports
            .iter()
            .map(|r| {
                let meta = vec![
                    (
                        "digest",
                        r.subject.digest.clone().unwrap_or_else(|| "n/a".into()),
                    ),
                    (
                        "policy",
                        format!(
                            "{} (sha256:{}…, mode {})",
                            r.policy.path,
                            &r.policy.sha256[..12],
                            r.policy.mode
                        ),
                    ),
                ];
                markdown::render(
                    "mlsign gate",
                    r.verdict,
                    &r.headline(),
                    &meta,
                    &r.checks,
                    per,
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}
