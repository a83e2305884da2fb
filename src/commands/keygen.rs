use super::common::print_json;
use crate::cli::{KeyAlgorithm, KeygenArgs};
use anyhow::{Context, Result};
use mlsign::attest::{write_atomic, KeyKind, SigningKey};
use mlsign::report::{Exit, Format};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// `keygen --pkcs11-uri`: the key pair is made on the token; only PREFIX.pub is written.
fn on_token(a: &KeygenArgs, kind: KeyKind, uri: &str, pub_path: &std::path::Path) -> Result<Exit> {
    use mlsign::attest::pkcs11::{generate, Pkcs11Uri};
    if !matches!(kind, KeyKind::P256 | KeyKind::P384) {
        anyhow::bail!("--pkcs11-uri: only p256 and p384 keys can be made on a token");
    }
    if !a.force && pub_path.symlink_metadata().is_ok() {
        anyhow::bail!(
            "{} already exists; pass --force to overwrite it",
            pub_path.display()
        );
    }
    let parsed = Pkcs11Uri::parse(uri)?;
    let public = generate(&parsed, kind)?;
    write_atomic(pub_path, public.to_pem().as_bytes(), a.force)?;
    std::fs::set_permissions(pub_path, std::fs::Permissions::from_mode(0o644))
        .with_context(|| format!("{}", pub_path.display()))?;
    match a.format {
        Format::Human => {
            println!(
                "Created a {} key pair on the token ({uri_shown})",
                kind.name(),
                uri_shown = redact(uri)
            );
            println!(
                "Wrote {} (public, hint {})",
                pub_path.display(),
                public.hint()
            );
        }
        Format::Json | Format::Sarif | Format::Markdown => print_json(&serde_json::json!({
            "pkcs11_uri": redact(uri), "public_key": pub_path, "algorithm": kind.name(),
            "hint": public.hint(),
        })),
    }
    Ok(Exit::Pass)
}

/// The URI without its query (module path, PIN source) for output.
fn redact(uri: &str) -> &str {
    uri.split_once('?').map_or(uri, |(p, _)| p)
}

pub fn run(a: KeygenArgs) -> Result<Exit> {
    super::common::no_sarif(a.format)?;
    let kind = match a.algorithm {
        KeyAlgorithm::P256 => KeyKind::P256,
        KeyAlgorithm::P384 => KeyKind::P384,
        KeyAlgorithm::P521 => KeyKind::P521,
        KeyAlgorithm::Ed25519 => KeyKind::Ed25519,
    };
    let with_ext = |ext: &str| {
        let mut s = a.out.clone().into_os_string();
        s.push(ext);
        PathBuf::from(s)
    };
    if let Some(uri) = &a.pkcs11_uri {
        return on_token(&a, kind, uri, &with_ext(".pub"));
    }
    let (priv_path, pub_path) = (with_ext(".pem"), with_ext(".pub"));
    if !a.force {
        for p in [&priv_path, &pub_path] {
            if p.symlink_metadata().is_ok() {
                anyhow::bail!(
                    "{} already exists; pass --force to overwrite it",
                    p.display()
                );
            }
        }
    }
    let passphrase = match &a.passphrase_env {
        Some(var) => Some(zeroize::Zeroizing::new(std::env::var(var).with_context(
            || format!("--passphrase-env: environment variable {var} is not set"),
        )?)),
        None => None,
    };
    let key = SigningKey::generate(kind);
    let pem = key.to_pkcs8_pem(passphrase.as_deref().map(|s| s.as_str()))?;
    let public = key.verifying_key();
    // The temp file behind write_atomic is created 0600, so the private key is never readable
    // by others, not even briefly.
    write_atomic(&priv_path, pem.as_bytes(), a.force)?;
    write_atomic(&pub_path, public.to_pem().as_bytes(), a.force)?;
    std::fs::set_permissions(&pub_path, std::fs::Permissions::from_mode(0o644))
        .with_context(|| format!("{}", pub_path.display()))?;
    match a.format {
        Format::Human => {
            println!(
                "Wrote {} (private, {}, mode 0600{})",
                priv_path.display(),
                kind.name(),
                if passphrase.is_some() {
                    ", encrypted"
                } else {
                    ""
                }
            );
            println!(
                "Wrote {} (public, hint {})",
                pub_path.display(),
                public.hint()
            );
            if kind == KeyKind::Ed25519 {
                println!("note: model_signing 1.1.1 verifies only ECDSA keys; use p256 for bundles others must check");
            }
        }
        Format::Json | Format::Sarif | Format::Markdown => print_json(&serde_json::json!({
            "private_key": priv_path, "public_key": pub_path, "algorithm": kind.name(),
            "encrypted": passphrase.is_some(), "hint": public.hint(),
        })),
    }
    Ok(Exit::Pass)
}
