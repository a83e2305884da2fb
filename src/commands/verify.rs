use super::common::{human_bytes, ignore_list, print_json, read_small, Bar};
use crate::cli::{KeylessVerifyArgs, VerifyArgs};
use anyhow::{Context, Result};
use mlsign::attest::sigstore::{Matcher, TrustRoot};
use mlsign::attest::{
    cert, verify_model, KeylessTrust, Trust, VerifyOptions, VerifyOutcome, VerifyingKey,
};
use mlsign::report::{sarif, Exit, Finding, Format};
use serde_json::json;

pub(super) fn emit(
    a: &VerifyArgs,
    bundle: &std::path::Path,
    outcome: Option<&VerifyOutcome>,
    findings: &[Finding],
) {
    let ok = findings.is_empty();
    match a.format {
        Format::Human => {
            if let Some(o) = outcome.filter(|_| ok) {
                println!(
                    "Verified: {} matches {}",
                    a.path.display(),
                    bundle.display()
                );
                println!(
                    "  {} {}, signed with the {} method by {}",
                    o.kind.map_or("subject", |k| k.name()),
                    o.subject,
                    o.method,
                    o.signer
                );
                println!(
                    "  {} files, {} re-hashed with {}{}; root sha256:{}",
                    o.files_checked,
                    human_bytes(o.bytes),
                    o.algorithm,
                    o.shard_size
                        .map(|s| format!(" (shards of {s} bytes)"))
                        .unwrap_or_default(),
                    o.root_digest
                );
            } else {
                println!(
                    "FAILED: {} does not match {}",
                    a.path.display(),
                    bundle.display()
                );
                for f in findings {
                    println!("  {f}");
                }
            }
            if let Some(o) = outcome {
                for w in &o.warnings {
                    eprintln!("warning: {w}");
                }
            }
        }
        Format::Json => {
            let mut v = json!({
                "verified": ok,
                "path": a.path,
                "bundle": bundle,
                "findings": findings,
            });
            if let Some(o) = outcome {
                v["subject"] = json!(o.subject);
                v["kind"] = json!(o.kind);
                v["predicate_type"] = json!(o.predicate_type);
                v["method"] = json!(o.method);
                v["signer"] = json!(o.signer);
                v["root_digest"] = json!({"sha256": o.root_digest});
                v["algorithm"] = json!(o.algorithm);
                v["shard_size"] = json!(o.shard_size);
                v["files_checked"] = json!(o.files_checked);
                v["bytes"] = json!(o.bytes);
                v["differences"] = json!(o.differences);
                v["warnings"] = json!(o.warnings);
            }
            print_json(&v);
        }
        Format::Sarif => print_json(&sarif::to_sarif(findings)),
    }
}

/// The keyless trust from `--identity[-regex] --issuer[-regex] [--trusted-root F | --staging]`.
pub fn keyless_trust(k: &KeylessVerifyArgs) -> Result<KeylessTrust> {
    let identity = match (&k.identity, &k.identity_regex) {
        (Some(id), _) => Matcher::exact(id.clone()),
        (None, Some(re)) => Matcher::regex("identity", re)?,
        (None, None) => anyhow::bail!("keyless verification needs --identity or --identity-regex"),
    };
    let issuer = match (&k.issuer, &k.issuer_regex) {
        (Some(iss), _) => Matcher::exact(iss.clone()),
        (None, Some(re)) => Matcher::regex("issuer", re)?,
        (None, None) => anyhow::bail!(
            "keyless verification needs --issuer URL (or --issuer-regex): an identity means nothing without the OIDC issuer that vouched for it"
        ),
    };
    Ok(KeylessTrust::new(
        identity,
        issuer,
        TrustRoot::load(k.trusted_root.as_deref(), k.staging)?,
    ))
}

pub fn run(a: VerifyArgs) -> Result<Exit> {
    if let Some(r) = a.path.to_str().filter(|s| mlsign::oci::is_oci(s)) {
        return super::oci::verify(&a, r);
    }
    if let Some(r) = &a.against {
        return super::oci::verify_against(&a, r);
    }
    let Some(bundle) = a.bundle.clone() else {
        anyhow::bail!("pass --bundle B.json (or --against oci://REF for a pushed model)");
    };
    let trust = match (&a.key, &a.cert_chain) {
        _ if a.keyless.identity.is_some() || a.keyless.identity_regex.is_some() => {
            Trust::Keyless(keyless_trust(&a.keyless)?)
        }
        (Some(k), _) => {
            let pem = read_small(k, "public key")?;
            Trust::Key(
                VerifyingKey::from_pem(&pem)
                    .with_context(|| format!("public key {}", k.display()))?,
            )
        }
        (None, Some(c)) => {
            let pem = read_small(c, "trusted roots")?;
            Trust::Roots(
                cert::load_pem_chain(pem.as_bytes()).with_context(|| format!("{}", c.display()))?,
            )
        }
        (None, None) => anyhow::bail!(
            "pass --key PUB.pem, --cert-chain ROOTS.pem, or --identity ID --issuer URL (keyless)"
        ),
    };
    if !a.path.exists() {
        anyhow::bail!("{}: no such file or directory", a.path.display());
    }
    let opts = VerifyOptions {
        extra_ignore: ignore_list(&a.path, &a.ignore),
        allow_symlinks: a.allow_symlinks,
        threads: a.threads,
        legacy_pae: a.legacy_pae,
    };
    let bar = Bar::new(!a.no_progress);
    if a.partition.is_some() || !a.from_parts.is_empty() {
        // Partitioned verification (see commands/verify_parts.rs).
        return super::verify_parts::run(&a, &bundle, &trust, &opts, &bar);
    }
    match verify_model(&a.path, &bundle, &trust, &opts, &bar) {
        Ok(o) => {
            let findings: Vec<Finding> = o.differences.iter().map(|d| d.to_finding()).collect();
            emit(&a, &bundle, Some(&o), &findings);
            Ok(if findings.is_empty() {
                Exit::Pass
            } else {
                Exit::Finding
            })
        }
        Err(e) => match e.to_finding(&bundle.display().to_string()) {
            Some(f) => {
                emit(&a, &bundle, None, &[f]);
                Ok(Exit::Finding)
            }
            None => Err(e.into()),
        },
    }
}
