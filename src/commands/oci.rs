//! The `oci://` branches of `sign` and `verify`, and `verify DIR --against oci://…`.

use super::common::{human_bytes, no_sarif, print_json, read_small};
use crate::cli::{RegistryArgs, SignArgs, VerifyArgs};
use anyhow::{Context, Result};
use mlsign::attest::{cert, Trust, VerifyingKey};
use mlsign::oci::{self, Reference};
use mlsign::report::{sarif, Exit, Finding, Format, Location, Severity};
use serde_json::json;
use std::time::Duration;

pub fn options(a: &RegistryArgs) -> Result<oci::Options> {
    if a.registry_timeout == 0 {
        anyhow::bail!("--registry-timeout must be at least 1 second");
    }
    Ok(oci::Options {
        insecure: a.insecure_registry.clone(),
        auth_file: a.registry_auth.clone(),
        timeout: Duration::from_secs(a.registry_timeout),
        ..Default::default()
    })
}

pub fn parse_ref(s: &str) -> Result<Reference> {
    Ok(Reference::parse(s)?)
}

/// The trust for `--key` / `--cert-chain`.
pub fn trust(key: Option<&std::path::Path>, chain: Option<&std::path::Path>) -> Result<Trust> {
    Ok(match (key, chain) {
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
        (None, None) => anyhow::bail!("pass --key PUB.pem or --cert-chain ROOTS.pem"),
    })
}

/// `mlsign sign oci://…`.
pub fn sign(a: &SignArgs, reference: &str) -> Result<Exit> {
    no_sarif(a.format)?;
    if a.bundle.is_some() {
        anyhow::bail!("--bundle is for files on disk; the signature of an oci:// reference is stored in the registry");
    }
    let r = parse_ref(reference)?;
    let out = if a.keyless.keyless {
        if a.cosign_compat {
            anyhow::bail!("--cosign-compat writes key-signed legacy .sig images; keyless signatures are stored as Sigstore bundle referrers only");
        }
        let k = &a.keyless;
        let (services, root) = super::keyless_sign::services_and_root(
            k.signing_config.as_deref(),
            k.trusted_root.as_deref(),
            k.staging,
        )?;
        let opts = options(&a.registry)?;
        let token = mlsign::attest::sigstore::sign::obtain_token(
            k.identity_token.as_deref(),
            k.identity_token_file.as_deref(),
        )?;
        let signer = oci::KeylessSigner {
            token: &token,
            services: &services,
            root: &root,
        };
        oci::sign_reference_with(&r, &signer, &opts)?
    } else {
        let signer = super::sign::signer_of(a)?;
        oci::sign_reference(&r, &signer, &options(&a.registry)?, a.cosign_compat)?
    };
    match a.format {
        Format::Human => {
            println!("Signed {} ({})", out.reference, out.media_type);
            println!(
                "  signature {} stored via the {}",
                out.attach.signature, out.attach.stored
            );
            if let Some(t) = &out.attach.legacy_tag {
                println!("  legacy cosign signature in tag {t}");
            }
        }
        _ => print_json(&serde_json::to_value(&out)?),
    }
    Ok(Exit::Pass)
}

fn findings_of(out: &oci::VerifyOutcome) -> Vec<Finding> {
    if out.verified {
        return Vec::new();
    }
    let mut f: Vec<Finding> = out
        .candidates
        .iter()
        .filter(|c| !c.verified)
        .map(|c| {
            let code = c.code.unwrap_or("OCI005");
            Finding::new(
                code,
                Severity::High,
                format!(
                    "{} ({}): {}",
                    c.kind,
                    c.source,
                    c.reason.as_deref().unwrap_or("rejected")
                ),
            )
            .at({
                let mut l = Location::path(out.reference.clone());
                l.member = Some(c.manifest.clone());
                l
            })
        })
        .collect();
    f.push(
        Finding::new(
            "OCI001",
            Severity::Critical,
            if out.candidates.is_empty() {
                format!(
                    "no signature found for {} (the tag may have moved since signing)",
                    out.digest
                )
            } else {
                format!(
                    "none of the {} signatures found is valid for {}",
                    out.candidates.len(),
                    out.digest
                )
            },
        )
        .at(Location::path(out.reference.clone())),
    );
    f
}

fn print_human(out: &oci::VerifyOutcome) {
    let what = match (out.model, out.model_files) {
        (Some(m), Some(n)) => format!("{} model artifact, {n} files", m.name()),
        (Some(m), None) => format!("{} model artifact", m.name()),
        (None, _) => out.media_type.clone(),
    };
    if let Some(c) = out.verified_candidate() {
        println!("Verified: {} is {} ({what})", out.reference, out.digest);
        println!(
            "  {} via the {} ({}), {} method, signer {}",
            c.kind,
            c.source,
            c.manifest,
            c.method.unwrap_or("?"),
            c.signer.as_deref().unwrap_or("?")
        );
        if c.kind.starts_with("model") {
            println!("  the artifact's filepath → digest set equals the signed OMS manifest (no layer fetched)");
        }
        let rejected = out.candidates.iter().filter(|c| !c.verified).count();
        if rejected > 0 {
            println!("  {rejected} other signature(s) did not verify:");
            for c in out.candidates.iter().filter(|c| !c.verified) {
                println!(
                    "    [{}] {} {}: {}",
                    c.code.unwrap_or("-"),
                    c.source,
                    c.manifest,
                    c.reason.as_deref().unwrap_or("")
                );
            }
        }
    } else {
        println!("FAILED: {} ({}, {what})", out.reference, out.digest);
        for f in findings_of(out) {
            println!("  {f}");
        }
        for d in &out.discovery {
            println!("  looked at: {d}");
        }
    }
    println!("  read {} from the registry", human_bytes(out.bytes_read));
}

/// `--key`, `--cert-chain`, or keyless `--identity[-regex] --issuer[-regex]`.
fn verify_trust(a: &VerifyArgs) -> Result<Trust> {
    if a.keyless.identity.is_some() || a.keyless.identity_regex.is_some() {
        return Ok(Trust::Keyless(super::verify::keyless_trust(&a.keyless)?));
    }
    trust(a.key.as_deref(), a.cert_chain.as_deref())
}

/// `mlsign verify oci://… --key PUB.pem` (or keyless `--identity … --issuer …`).
pub fn verify(a: &VerifyArgs, reference: &str) -> Result<Exit> {
    if a.bundle.is_some() {
        anyhow::bail!("--bundle is for files on disk; signatures of oci:// references are found in the registry");
    }
    let r = parse_ref(reference)?;
    let t = verify_trust(a)?;
    let out = oci::verify_reference(&r, &t, &options(&a.registry)?)?;
    let findings = findings_of(&out);
    match a.format {
        Format::Human => print_human(&out),
        Format::Json => {
            let mut v = serde_json::to_value(&out)?;
            v["findings"] = json!(findings);
            print_json(&v);
        }
        Format::Sarif => print_json(&sarif::to_sarif(&findings)),
    }
    Ok(if out.verified {
        Exit::Pass
    } else {
        Exit::Finding
    })
}

/// `mlsign verify DIR --against oci://…`.
pub fn verify_against(a: &VerifyArgs, reference: &str) -> Result<Exit> {
    let r = parse_ref(reference)?;
    let t = verify_trust(a)?;
    if !a.path.is_dir() {
        anyhow::bail!("{}: not a directory", a.path.display());
    }
    let out = oci::verify_dir_against(&a.path, &r, &t, &options(&a.registry)?)?;
    let mut findings = findings_of(&out.registry);
    findings.extend(out.differences.iter().map(|d| d.to_finding()));
    let ok = out.registry.verified && out.differences.is_empty();
    match a.format {
        Format::Human => {
            if ok {
                println!(
                    "Verified: {} matches {} ({} files, {})",
                    a.path.display(),
                    out.registry.reference,
                    out.files_checked,
                    human_bytes(out.bytes)
                );
                if let Some(c) = out.registry.verified_candidate() {
                    println!(
                        "  {} {} verified ({} via the {})",
                        out.registry.digest, c.kind, c.manifest, c.source
                    );
                }
            } else if !out.registry.verified {
                print_human(&out.registry);
            } else {
                println!(
                    "FAILED: {} does not match {}",
                    a.path.display(),
                    out.registry.reference
                );
                for f in &findings {
                    println!("  {f}");
                }
            }
        }
        Format::Json => print_json(&json!({
            "verified": ok,
            "path": a.path,
            "registry": out.registry,
            "differences": out.differences,
            "files_checked": out.files_checked,
            "bytes": out.bytes,
            "findings": findings,
        })),
        Format::Sarif => print_json(&sarif::to_sarif(&findings)),
    }
    Ok(if ok { Exit::Pass } else { Exit::Finding })
}
