//! `mlsign policy explain`: a policy in plain words, with how its parts combine (authorities
//! OR up to the threshold, requirements AND, revocation over everything) and the individual
//! mlsign commands the gate's checks correspond to.

use super::{AuthorityKind, Mode, NoMatch, Policy, Subject};
use serde::Serialize;
use std::fmt::Write;

/// One requirement in words, with the equivalent command(s).
#[derive(Clone, Debug, Serialize)]
pub struct Rule {
    pub check: &'static str,
    pub rule: String,
    pub commands: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    pub schema: &'static str,
    pub policy: String,
    pub sha256: String,
    pub mode: String,
    pub no_match: String,
    pub subjects: Vec<String>,
    /// For `explain POLICY SUBJECT`: the pattern covering it, or null.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<SubjectMatch>,
    pub combination: Vec<String>,
    pub authorities: Vec<String>,
    pub requirements: Vec<Rule>,
    pub revocation: Vec<String>,
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SubjectMatch {
    pub subject: String,
    pub matched: Option<String>,
}

fn q(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:@+=,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Explain `policy`, for `subject` when given (paths in commands then name its evidence).
pub fn explain(policy: &Policy, subject: Option<&str>) -> Explanation {
    let subj = subject.unwrap_or("SUBJECT");
    let parsed = subject.map(super::parse_subject);
    let subject_match = subject.map(|s| SubjectMatch {
        subject: s.to_string(),
        matched: match &parsed {
            Some(Ok(p)) => policy.matching_pattern(p).map(|m| m.glob.clone()),
            _ => None,
        },
    });
    let is_oci = matches!(parsed, Some(Ok(Subject::Oci(_))));
    let r = &policy.requirements;
    let mut reqs = Vec::new();
    let auth_cmd = |a: &super::Authority, target: &str, bundle: &str, bom: bool| -> String {
        let verb = if bom {
            format!("mlsign bom verify {} --bundle {}", q(target), q(bundle))
        } else {
            format!("mlsign verify {} --bundle {}", q(target), q(bundle))
        };
        match &a.kind {
            AuthorityKind::Key { file, .. } => {
                format!("{verb} --key {}", q(&file.display().to_string()))
            }
            AuthorityKind::CertRoots { file, .. } => {
                format!("{verb} --cert-chain {}", q(&file.display().to_string()))
            }
            AuthorityKind::Keyless(k) => {
                let mut c = verb.clone();
                match (&k.identity, &k.identity_regex) {
                    (Some(i), _) => c.push_str(&format!(" --identity {}", q(i))),
                    (None, Some(r)) => c.push_str(&format!(" --identity-regex {}", q(r))),
                    (None, None) => {}
                }
                match (&k.issuer, &k.issuer_regex) {
                    (Some(i), _) => c.push_str(&format!(" --issuer {}", q(i))),
                    (None, Some(r)) => c.push_str(&format!(" --issuer-regex {}", q(r))),
                    (None, None) => {}
                }
                match (&k.trusted_root, k.staging) {
                    (Some(p), _) => c.push_str(&format!(" --trusted-root {}", q(p))),
                    (None, true) => c.push_str(" --staging"),
                    (None, false) => {}
                }
                if k.min_tlog_entries() != 1 || k.min_timestamps() != 0 {
                    c.push_str(&format!(
                        "   # the gate also requires >= {} log entr{} and >= {} RFC 3161 timestamp(s)",
                        k.min_tlog_entries(),
                        if k.min_tlog_entries() == 1 { "y" } else { "ies" },
                        k.min_timestamps()
                    ));
                }
                c
            }
        }
    };
    if let Some(s) = &r.signature {
        let bundle = format!("{subj}.sig");
        reqs.push(Rule {
            check: "signature",
            rule: format!(
                "a signature bundle ({bundle} or --bundle) verifies under at least {} of the {} authorities (any {} of them: OR), and the files match what was signed exactly{}",
                s.threshold,
                policy.authorities.len(),
                s.threshold,
                s.hash_algorithms
                    .as_ref()
                    .map(|a| format!("; hashing must be one of {}", a.join(", ")))
                    .unwrap_or_default()
            ),
            commands: policy
                .authorities
                .iter()
                .map(|a| auth_cmd(a, subj, &bundle, false))
                .collect(),
        });
    }
    if let Some(s) = &r.scan {
        let mut cmd = format!("mlsign scan {}", q(subj));
        if let Some(p) = &s.presets {
            cmd.push_str(&format!("   # presets: {}", p.join(", ")));
        }
        for a in &s.allow {
            cmd.push_str(&format!(" --allow {}", q(a)));
        }
        for a in &s.allow_suspicious {
            cmd.push_str(&format!(" --allow-suspicious {}", q(a)));
        }
        if s.fail_on_suspicious {
            cmd.push_str(" --strict");
        }
        reqs.push(Rule {
            check: "scan",
            rule: format!(
                "every file scans clean: nothing malicious or unscannable{}{}",
                if s.fail_on_suspicious {
                    ", nothing suspicious"
                } else {
                    " (suspicious files are reported, not failed)"
                },
                if s.allow.is_empty() && s.allow_suspicious.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; allowlist extended by {} entr{}",
                        s.allow.len() + s.allow_suspicious.len(),
                        if s.allow.len() + s.allow_suspicious.len() == 1 {
                            "y"
                        } else {
                            "ies"
                        }
                    )
                }
            ),
            commands: vec![cmd],
        });
    }
    if let Some(b) = &r.bom {
        let bom = b
            .path
            .clone()
            .map(|p| p.replace("{subject}", subj))
            .unwrap_or_else(|| format!("{subj}.cdx.json"));
        let mut commands = vec![
            format!("mlsign bom validate {}", q(&bom)),
            format!("mlsign bom verify {} --model {}", q(&bom), q(subj)),
        ];
        if b.signed {
            commands.extend(
                policy
                    .authorities
                    .iter()
                    .map(|a| auth_cmd(a, &bom, &format!("{bom}.sig"), true)),
            );
        }
        reqs.push(Rule {
            check: "bom",
            rule: format!(
                "the ML-BOM {bom} exists, is valid CycloneDX 1.6, describes this subject's digest{}",
                if b.signed {
                    format!(", and {bom}.sig verifies under any one authority")
                } else {
                    " (signature not required)".into()
                }
            ),
            commands,
        });
    }
    if let Some(l) = &r.lineage {
        let file = l
            .file
            .clone()
            .unwrap_or_else(|| "lineage.json (beside the subject)".into());
        reqs.push(Rule {
            check: "lineage",
            rule: format!(
                "the dataset lineage {file} verifies: every recorded dataset version{} re-hashes to what was recorded",
                if l.skip_code { "" } else { " and step code" }
            ),
            commands: vec![format!(
                "mlsign dataset verify --lineage {}{}",
                q(l.file.as_deref().unwrap_or("lineage.json")),
                if l.skip_code { " --skip-code" } else { "" }
            )],
        });
    }
    if let Some(b) = &r.behave {
        let report = b
            .report
            .clone()
            .map(|p| p.replace("{subject}", subj))
            .unwrap_or_else(|| format!("{subj}.behave.json"));
        let mut commands = vec![format!(
            "mlsign behave --baseline BASELINE --candidate {} --suite SUITE.toml --format json > {}",
            q(subj),
            q(&report)
        )];
        if b.signed {
            let sig = format!("{report}.sig");
            commands.extend(policy.authorities.iter().map(|a| {
                auth_cmd(a, &report, &sig, false).replacen(
                    "mlsign verify ",
                    "mlsign attest verify ",
                    1,
                )
            }));
        }
        reqs.push(Rule {
            check: "behave",
            rule: format!(
                "the behave report {report} is about this subject's weights, passed (no divergence, no drift over the limit), with suite sha256:{} and baseline weights sha256:{}{}",
                &b.suite_sha256[..12],
                &b.baseline_sha256[..12],
                if b.signed {
                    format!("; and {report}.sig (`mlsign attest sign`) verifies under any one authority (OR) and attests exactly this report")
                } else {
                    "; the report is not required to be signed (whoever can write it can forge it)".into()
                }
            ),
            commands,
        });
    }
    if let Some(a) = &r.approvals {
        reqs.push(Rule {
            check: "approvals",
            rule: format!(
                "at least {} valid approval(s) of this digest from distinct reviewer keys ({} listed), unexpired{}, none made with the key that signed the subject",
                a.count,
                a.reviewers.len(),
                a.max_age_days
                    .map(|d| format!(" and at most {d} days old"))
                    .unwrap_or_default()
            ),
            commands: a
                .reviewers
                .iter()
                .map(|(f, _)| {
                    format!(
                        "mlsign approve {} --key {}   # the reviewer's private key for {}",
                        q(subj),
                        "REVIEWER.pem",
                        f.display()
                    )
                })
                .collect(),
        });
    }
    let mut combination = vec![
        "authorities combine with OR: a signature counts when any one authority verifies it; \
         the threshold says how many distinct authorities must have verified a signature (M of N)"
            .to_string(),
        format!(
            "requirements combine with AND: all {} required check(s) must pass",
            reqs.len()
        ),
        "the revocation list overrides everything: a revoked digest, key or identity fails in every mode".into(),
        "evidence that exists but cannot be read, or an authority this build cannot evaluate, is an error (exit 2), never a pass".into(),
        match policy.mode {
            Mode::Enforce => "mode enforce: any failed check fails the gate (exit 1)".into(),
            Mode::Warn => "mode warn: failed checks give verdict warn, exit 0".into(),
            Mode::Audit => "mode audit: failed checks are recorded (report, audit log), verdict pass, exit 0".into(),
        },
        match policy.no_match {
            NoMatch::Deny => "no_match deny: a subject no pattern covers fails (exit 1)".into(),
            NoMatch::Warn => "no_match warn: a subject no pattern covers gets verdict warn".into(),
            NoMatch::Allow => "no_match allow: a subject no pattern covers passes unchecked".into(),
        },
    ];
    if is_oci {
        combination.push("oci:// subjects: the signature is verified in the registry by manifest digest (nothing pulled); requirements that need the files (scan, bom, lineage, behave, approvals) are an error: pull and gate the directory".into());
    }
    if policy.require_digest {
        combination.push("require_digest: an oci:// subject (or workload image) named by tag only fails (GAT014); pin it by digest (GitOps-friendly: nothing is rewritten)".into());
    }
    if is_oci || policy.subjects.iter().any(|p| p.oci) {
        let adm = &policy.admission;
        let mut excluded = vec![
            "kube-system".to_string(),
            "the webhook's own namespace".into(),
        ];
        excluded.extend(adm.exclude_namespaces.iter().cloned());
        combination.push(format!(
            "mlsign serve: every container, initContainer, ephemeralContainer image and image volume must pass as an oci:// subject; namespaces not checked: {}; timeouts and registry errors {}; /mutate pins verified tags to digests on {}",
            excluded.join(", "),
            match adm.on_error {
                super::OnError::Deny => "deny",
                super::OnError::Warn => "admit with a warning (on_error = warn)",
            },
            match adm.pin_digests {
                super::PinDigests::Pods => "Pods only",
                super::PinDigests::All => "Pods and controller templates",
                super::PinDigests::None => "nothing (pin_digests = none)",
            }
        ));
    }
    let rv = &policy.revocation;
    let mut revocation = Vec::new();
    revocation.extend(rv.digests.iter().map(|d| format!("digest {d}")));
    revocation.extend(rv.keys.iter().map(|k| format!("key hint {k}")));
    revocation.extend(rv.identities.iter().map(|i| format!("identity {i:?}")));
    Explanation {
        schema: "mlsign-policy-explain/1",
        policy: policy.path.display().to_string(),
        sha256: policy.sha256.clone(),
        mode: policy.mode.as_str().into(),
        no_match: policy.no_match.as_str().into(),
        subjects: policy.subjects.iter().map(|s| s.glob.clone()).collect(),
        subject: subject_match,
        combination,
        authorities: policy
            .authorities
            .iter()
            .map(|a| format!("{}: {}", a.name, a.describe()))
            .collect(),
        requirements: reqs,
        revocation,
        notes: policy.notes.clone(),
    }
}

impl Explanation {
    pub fn human(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "Policy {} (sha256:{})", self.policy, &self.sha256[..12]);
        let _ = writeln!(s, "Covers: {}", self.subjects.join(", "));
        if let Some(m) = &self.subject {
            match &m.matched {
                Some(g) => {
                    let _ = writeln!(s, "Subject {}: covered by {g:?}", m.subject);
                }
                None => {
                    let _ = writeln!(
                        s,
                        "Subject {}: NOT covered by any pattern (no_match = {})",
                        m.subject, self.no_match
                    );
                }
            }
        }
        let _ = writeln!(s, "\nHow it decides:");
        for c in &self.combination {
            let _ = writeln!(s, "  - {c}");
        }
        let _ = writeln!(s, "\nAuthorities (any one counts; OR):");
        if self.authorities.is_empty() {
            let _ = writeln!(s, "  (none)");
        }
        for a in &self.authorities {
            let _ = writeln!(s, "  - {a}");
        }
        let _ = writeln!(s, "\nRequirements (all must pass; AND):");
        for (i, r) in self.requirements.iter().enumerate() {
            let _ = writeln!(s, "  {}. {}: {}", i + 1, r.check, r.rule);
            for c in &r.commands {
                let _ = writeln!(s, "       $ {c}");
            }
        }
        let _ = writeln!(s, "\nRevocation list (overrides everything):");
        if self.revocation.is_empty() {
            let _ = writeln!(s, "  (empty)");
        }
        for r in &self.revocation {
            let _ = writeln!(s, "  - {r}");
        }
        if !self.notes.is_empty() {
            let _ = writeln!(s, "\nNotes:");
            for n in &self.notes {
                let _ = writeln!(s, "  - {n}");
            }
        }
        s
    }
}
