//! Human approvals: an in-toto statement about a subject digest with an approval predicate,
//! signed into a Sigstore bundle by a reviewer key (`mlsign approve`), and counted by the gate
//! only when it verifies under a policy reviewer key, names the same digest, is unexpired, and
//! was not made with the key that signed the subject (separation of duties).

use crate::attest::{self, bundle::Bundle, Signer, Trust, VerifyingKey, STATEMENT_TYPE};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Predicate type of an approval.
pub const PREDICATE_TYPE: &str = "https://mlsign.dev/approval/v1";

/// Infix of approval files beside the subject: `SUBJECT.approval.<hint16>.sig`.
pub const FILE_INFIX: &str = ".approval.";

/// Approvals may be dated at most this far in the future (clock skew between machines).
const MAX_SKEW_S: i64 = 300;

fn fmt(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// The statement (exact bytes to sign) approving `digest_hex` (the subject's sha256 root).
pub fn statement(
    subject_name: &str,
    digest_hex: &str,
    reviewer_hint: &str,
    approved_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    note: Option<&str>,
) -> Vec<u8> {
    let mut predicate = json!({
        "reviewer": {"keyHint": reviewer_hint},
        "approvedAt": fmt(approved_at),
        "expiresAt": fmt(expires_at),
    });
    if let Some(n) = note {
        predicate["note"] = json!(n);
    }
    let st = json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": subject_name, "digest": {"sha256": digest_hex}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    });
    serde_json::to_vec(&st).unwrap_or_default()
}

/// Sign an approval statement.
pub fn sign(signer: &Signer, payload: &[u8]) -> Result<Bundle, crate::attest::Error> {
    attest::sign_statement(signer, payload)
}

/// Default file for an approval of `subject_abs` by the key with `hint`.
pub fn default_path(subject_abs: &Path, hint: &str) -> Option<PathBuf> {
    let name = subject_abs.file_name()?.to_string_lossy().into_owned();
    Some(subject_abs.with_file_name(format!(
        "{name}{FILE_INFIX}{}.sig",
        &hint[..hint.len().min(16)]
    )))
}

/// Approval files beside `subject_abs` (sorted), at most `limit`.
pub fn find_beside(subject_abs: &Path, limit: usize) -> std::io::Result<Vec<PathBuf>> {
    let (Some(dir), Some(name)) = (subject_abs.parent(), subject_abs.file_name()) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{}{FILE_INFIX}", name.to_string_lossy());
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(&prefix) && n.ends_with(".sig") {
            out.push(e.path());
            if out.len() > limit {
                return Err(std::io::Error::other(format!(
                    "more than {limit} approval files beside {}",
                    subject_abs.display()
                )));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A counted approval.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Approval {
    pub file: String,
    pub reviewer_hint: String,
    pub approved_at: String,
    pub expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Why an approval does not count (the gate reports it as an info finding).
#[derive(Debug, PartialEq, Eq)]
pub enum Rejection {
    NoReviewerKey,
    BadSignature(String),
    NotAnApproval(String),
    OtherDigest {
        approved: String,
    },
    Expired {
        expires_at: String,
    },
    TooOld {
        approved_at: String,
        max_age_days: u32,
    },
    Future {
        approved_at: String,
    },
    SignersOwnKey,
    RevokedKey,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::NoReviewerKey => {
                f.write_str("not signed by any of the policy's reviewer keys")
            }
            Rejection::BadSignature(m) => write!(f, "signature does not verify: {m}"),
            Rejection::NotAnApproval(m) => write!(f, "not an mlsign approval: {m}"),
            Rejection::OtherDigest { approved } => write!(
                f,
                "approves another artifact (sha256:{approved}), not this subject"
            ),
            Rejection::Expired { expires_at } => write!(f, "expired at {expires_at}"),
            Rejection::TooOld {
                approved_at,
                max_age_days,
            } => write!(
                f,
                "made at {approved_at}, older than the policy's {max_age_days}-day limit"
            ),
            Rejection::Future { approved_at } => {
                write!(f, "dated in the future ({approved_at})")
            }
            Rejection::SignersOwnKey => f.write_str(
                "made with the key that signed the subject: separation of duties requires another reviewer",
            ),
            Rejection::RevokedKey => f.write_str("the reviewer key is on the revocation list"),
        }
    }
}

/// What [`check`] needs to know about the subject and the policy.
pub struct Context<'a> {
    pub digest_hex: &'a str,
    pub reviewers: &'a [(PathBuf, VerifyingKey)],
    /// Key hints of whoever signed the subject (verified or claimed).
    pub signer_hints: &'a [String],
    pub revoked_keys: &'a [String],
    pub max_age_days: Option<u32>,
    pub now: OffsetDateTime,
}

fn parse_time(v: &Value, key: &str) -> Result<(OffsetDateTime, String), Rejection> {
    let s = v[key]
        .as_str()
        .ok_or_else(|| Rejection::NotAnApproval(format!("predicate.{key} is missing")))?;
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
        Rejection::NotAnApproval(format!("predicate.{key} {s:?} is not an RFC 3339 time"))
    })?;
    Ok((t, s.to_string()))
}

/// Check one parsed approval bundle. `Ok` means it counts.
pub fn check(bundle: &Bundle, file: &Path, cx: &Context) -> Result<Approval, Rejection> {
    let claimed = bundle
        .verification_material
        .public_key
        .as_ref()
        .map(|p| p.hint.to_ascii_lowercase());
    // Try the reviewer whose hint the bundle names first; a missing hint tries them all.
    let mut candidates: Vec<&VerifyingKey> = cx
        .reviewers
        .iter()
        .map(|(_, k)| k)
        .filter(|k| {
            claimed
                .as_deref()
                .is_none_or(|h| h.is_empty() || h == k.hint())
        })
        .collect();
    if candidates.is_empty() {
        return Err(Rejection::NoReviewerKey);
    }
    candidates.dedup();
    let mut last = None;
    let mut verified = None;
    for k in candidates {
        match attest::verify_bundle(bundle, file, &Trust::Key(k.clone())) {
            Ok(vp) => {
                verified = Some((k.hint(), vp));
                break;
            }
            Err(e) => last = Some(e.to_string()),
        }
    }
    let Some((hint, vp)) = verified else {
        return Err(Rejection::BadSignature(last.unwrap_or_default()));
    };
    if cx.revoked_keys.contains(&hint) {
        return Err(Rejection::RevokedKey);
    }
    if cx.signer_hints.contains(&hint) {
        return Err(Rejection::SignersOwnKey);
    }
    let st: Value = serde_json::from_slice(&vp.payload)
        .map_err(|e| Rejection::NotAnApproval(format!("payload is not JSON: {e}")))?;
    if st["_type"] != STATEMENT_TYPE {
        return Err(Rejection::NotAnApproval("not an in-toto statement".into()));
    }
    if st["predicateType"] != PREDICATE_TYPE {
        return Err(Rejection::NotAnApproval(format!(
            "predicateType is {}, not {PREDICATE_TYPE}",
            st["predicateType"]
        )));
    }
    let subjects = st["subject"].as_array().cloned().unwrap_or_default();
    let digests: Vec<String> = subjects
        .iter()
        .filter_map(|s| s["digest"]["sha256"].as_str().map(str::to_ascii_lowercase))
        .collect();
    if !digests.iter().any(|d| d == cx.digest_hex) {
        return Err(Rejection::OtherDigest {
            approved: digests.first().cloned().unwrap_or_else(|| "?".into()),
        });
    }
    let p = &st["predicate"];
    let (approved, approved_s) = parse_time(p, "approvedAt")?;
    let (expires, expires_s) = parse_time(p, "expiresAt")?;
    if approved - cx.now > time::Duration::seconds(MAX_SKEW_S) {
        return Err(Rejection::Future {
            approved_at: approved_s,
        });
    }
    if expires <= cx.now {
        return Err(Rejection::Expired {
            expires_at: expires_s,
        });
    }
    if let Some(days) = cx.max_age_days {
        if cx.now - approved > time::Duration::days(days.into()) {
            return Err(Rejection::TooOld {
                approved_at: approved_s,
                max_age_days: days,
            });
        }
    }
    Ok(Approval {
        file: file.display().to_string(),
        reviewer_hint: hint,
        approved_at: approved_s,
        expires_at: expires_s,
        note: p["note"].as_str().map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::{KeyKind, SigningKey};

    fn approve(key: &SigningKey, digest: &str, at: OffsetDateTime, days: i64) -> Bundle {
        let hint = key.verifying_key().hint();
        let st = statement(
            "m",
            digest,
            &hint,
            at,
            at + time::Duration::days(days),
            Some("ok"),
        );
        sign(&Signer::from_key(key.clone_for_test()), &st).unwrap()
    }

    trait CloneKey {
        fn clone_for_test(&self) -> SigningKey;
    }
    impl CloneKey for SigningKey {
        fn clone_for_test(&self) -> SigningKey {
            let pem = self.to_pkcs8_pem(None).unwrap();
            SigningKey::from_pem(&pem, &mut || unreachable!()).unwrap()
        }
    }

    #[test]
    fn counts_only_valid_approvals() {
        let alice = SigningKey::generate(KeyKind::P256);
        let bob = SigningKey::generate(KeyKind::P256);
        let mallory = SigningKey::generate(KeyKind::P256);
        let d = "ab".repeat(32);
        let now = OffsetDateTime::now_utc();
        let reviewers = vec![
            (PathBuf::from("alice.pub"), alice.verifying_key()),
            (PathBuf::from("bob.pub"), bob.verifying_key()),
        ];
        let signer = vec![bob.verifying_key().hint()];
        let cx = Context {
            digest_hex: &d,
            reviewers: &reviewers,
            signer_hints: &signer,
            revoked_keys: &[],
            max_age_days: Some(30),
            now,
        };
        let f = Path::new("a.sig");
        assert!(check(&approve(&alice, &d, now, 7), f, &cx).is_ok());
        assert_eq!(
            check(&approve(&bob, &d, now, 7), f, &cx).unwrap_err(),
            Rejection::SignersOwnKey
        );
        assert_eq!(
            check(&approve(&mallory, &d, now, 7), f, &cx).unwrap_err(),
            Rejection::NoReviewerKey
        );
        assert!(matches!(
            check(&approve(&alice, &"cd".repeat(32), now, 7), f, &cx).unwrap_err(),
            Rejection::OtherDigest { .. }
        ));
        let old = now - time::Duration::days(10);
        assert!(matches!(
            check(&approve(&alice, &d, old, 5), f, &cx).unwrap_err(),
            Rejection::Expired { .. }
        ));
        let ancient = now - time::Duration::days(40);
        assert!(matches!(
            check(&approve(&alice, &d, ancient, 100), f, &cx).unwrap_err(),
            Rejection::TooOld { .. }
        ));
        let future = now + time::Duration::days(2);
        assert!(matches!(
            check(&approve(&alice, &d, future, 7), f, &cx).unwrap_err(),
            Rejection::Future { .. }
        ));
        // A bundle whose hint names alice but whose signature is mallory's.
        let mut forged = approve(&mallory, &d, now, 7);
        forged
            .verification_material
            .public_key
            .as_mut()
            .unwrap()
            .hint = alice.verifying_key().hint();
        assert!(matches!(
            check(&forged, f, &cx).unwrap_err(),
            Rejection::BadSignature(_)
        ));
        let revoked = vec![alice.verifying_key().hint()];
        let cx2 = Context {
            revoked_keys: &revoked,
            ..cx
        };
        assert_eq!(
            check(&approve(&alice, &d, now, 7), f, &cx2).unwrap_err(),
            Rejection::RevokedKey
        );
    }
}
