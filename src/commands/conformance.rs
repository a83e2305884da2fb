//! `mlsign conformance verify-bundle|sign-bundle`: the sigstore-conformance CLI protocol.
//! Exit 0 = verified / signed; 1 = a check failed; 2 = unreadable input or usage.

use super::common::print_json;
use crate::cli::{ConformanceAction, ConformanceArgs, ConformanceSignArgs, ConformanceVerifyArgs};
use anyhow::Result;
use mlsign::attest::sigstore::sign::{self as ksign, Content, Services};
use mlsign::attest::sigstore::{self, Artifact, Expect, KeylessError, Matcher, TrustRoot};
use mlsign::report::{Exit, Format};
use serde_json::json;
use std::path::Path;

/// Artifacts are read whole; the conformance suite uses small blobs.
const MAX_ARTIFACT_BYTES: u64 = 1 << 30;

pub fn format(a: &ConformanceArgs) -> Format {
    match &a.action {
        ConformanceAction::VerifyBundle(v) => v.format,
        ConformanceAction::SignBundle(s) => s.format,
    }
}

pub fn run(a: ConformanceArgs) -> Result<Exit> {
    super::common::no_sarif(format(&a))?;
    match a.action {
        ConformanceAction::VerifyBundle(v) => verify(&v),
        ConformanceAction::SignBundle(s) => sign(&s),
    }
}

/// `sha256:<64 hex>` that is not an existing path is a digest; anything else a file.
pub fn parse_digest_arg(s: &str) -> Option<[u8; 32]> {
    let hex_part = s.strip_prefix("sha256:")?;
    if Path::new(s).exists() || hex_part.len() != 64 {
        return None;
    }
    hex::decode(hex_part).ok()?.try_into().ok()
}

fn verify(a: &ConformanceVerifyArgs) -> Result<Exit> {
    let outcome = (|| -> Result<sigstore::Verified, KeylessError> {
        let root = TrustRoot::load(a.trusted_root.as_deref(), a.staging)?;
        let expect = match (&a.key, &a.certificate_identity, &a.certificate_oidc_issuer) {
            (Some(k), _, _) => {
                let pem = sigstore::read_bounded(k, 1 << 20, "public key")?;
                Expect::key_pem(&String::from_utf8_lossy(&pem))?
            }
            (None, Some(id), Some(iss)) => Expect::Identity {
                identity: Matcher::exact(id.clone()),
                issuer: Matcher::exact(iss.clone()),
            },
            // clap requires one of the two forms.
            _ => {
                return Err(KeylessError::Key(
                    "pass --key, or --certificate-identity with --certificate-oidc-issuer".into(),
                ))
            }
        };
        let raw = sigstore::read_bounded(&a.bundle, sigstore::MAX_BLOB_BUNDLE_BYTES, "bundle")?;
        let bundle = sigstore::parse_bundle(&raw)?;
        match parse_digest_arg(&a.file_or_digest) {
            Some(d) => sigstore::verify(&bundle, Artifact::Sha256(d), &expect, &root),
            None => {
                let data = sigstore::read_bounded(
                    Path::new(&a.file_or_digest),
                    MAX_ARTIFACT_BYTES,
                    "artifact",
                )?;
                sigstore::verify(&bundle, Artifact::Bytes(&data), &expect, &root)
            }
        }
    })();
    match outcome {
        Ok(v) => {
            match a.format {
                Format::Json => print_json(&json!({"verified": true, "result": v})),
                _ => println!(
                    "OK: {} verified ({} {}{})",
                    a.bundle.display(),
                    v.method,
                    v.identity,
                    v.issuer
                        .as_deref()
                        .map(|i| format!(", issuer {i}"))
                        .unwrap_or_default()
                ),
            }
            Ok(Exit::Pass)
        }
        Err(e) => {
            let code = e.code();
            match a.format {
                Format::Json => print_json(&json!({
                    "verified": false,
                    "code": code,
                    "error": e.to_string(),
                    "advice": e.advice(),
                })),
                _ => {
                    eprintln!("FAILED: {}: {e}", a.bundle.display());
                    eprintln!("  advice: {}", e.advice());
                }
            }
            Ok(if code.is_some() {
                Exit::Finding
            } else {
                Exit::Error
            })
        }
    }
}

/// Largest file `sign-bundle` signs (read whole).
const MAX_SIGN_BYTES: u64 = 1 << 30;

fn sign(a: &ConformanceSignArgs) -> Result<Exit> {
    let token = ksign::IdentityToken::new(a.identity_token.clone())?;
    let services = match &a.signing_config {
        Some(p) => {
            let bytes = sigstore::read_bounded(p, 1 << 20, "signing config")?;
            Services::from_signing_config(&String::from_utf8_lossy(&bytes))
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
        }
        None if a.staging => {
            Services::from_signing_config(sigstore_trust_root::SIGSTORE_STAGING_SIGNING_CONFIG)?
        }
        None => Services::production()?,
    };
    let root = TrustRoot::load(a.trusted_root.as_deref(), a.staging)?;
    let data = sigstore::read_bounded(&a.file, MAX_SIGN_BYTES, "file to sign")?;
    let content = if a.in_toto {
        Content::Dsse {
            payload_type: mlsign::attest::bundle::IN_TOTO_PAYLOAD_TYPE,
            payload: &data,
        }
    } else {
        Content::Blob(&data)
    };
    let bundle = ksign::sign(content, &token, &services, &root)?;
    std::fs::write(&a.bundle, serde_json::to_vec(&bundle)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.bundle.display()))?;
    match a.format {
        Format::Json => print_json(&json!({"signed": true, "bundle": a.bundle})),
        _ => println!("Signed {} into {}", a.file.display(), a.bundle.display()),
    }
    Ok(Exit::Pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_argument_forms() {
        let h = "a".repeat(64);
        assert_eq!(parse_digest_arg(&format!("sha256:{h}")), Some([0xaa; 32]));
        assert_eq!(
            parse_digest_arg(&format!("sha256:{}", "a".repeat(63))),
            None
        );
        assert_eq!(
            parse_digest_arg(&format!("sha256:{}", "g".repeat(64))),
            None
        );
        assert_eq!(parse_digest_arg("a.txt"), None);
        assert_eq!(parse_digest_arg(&format!("sha512:{h}")), None);
    }
}
