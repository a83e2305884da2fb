//! The `oci://` branches of `sign` and `verify`, and `verify DIR --against oci://…`.

use super::common::{no_sarif, print_json, read_small};
use crate::cli::{RegistryArgs, SignArgs, VerifyArgs};
use anyhow::{Context, Result};
use mlsign::attest::{cert, Trust, VerifyingKey};
use mlsign::oci::{self, Reference};
use mlsign::report::{render, Exit, Format};
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
        let opts = options(&a.registry)?;
        let (services, root, token) = super::keyless_sign::services_root_token(
            k.signing_config.as_deref(),
            k.trusted_root.as_deref(),
            k.staging,
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
    Ok(render::emit(a.format, &out))
}

/// `mlsign verify DIR --against oci://…`.
pub fn verify_against(a: &VerifyArgs, reference: &str) -> Result<Exit> {
    let r = parse_ref(reference)?;
    let t = verify_trust(a)?;
    if !a.path.is_dir() {
        anyhow::bail!("{}: not a directory", a.path.display());
    }
    let outcome = oci::verify_dir_against(&a.path, &r, &t, &options(&a.registry)?)?;
    let report = oci::DirReport {
        path: a.path.clone(),
        outcome,
    };
    Ok(render::emit(a.format, &report))
}
