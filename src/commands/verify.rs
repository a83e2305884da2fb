use super::common::{ignore_list, read_small, Bar};
use crate::cli::{KeylessVerifyArgs, VerifyArgs};
use anyhow::{Context, Result};
use mlsign::attest::sigstore::{Matcher, TrustRoot};
use mlsign::attest::{
    cert, verify_model, KeylessTrust, Trust, VerifyOptions, VerifyOutcome, VerifyReport,
    VerifyingKey,
};
use mlsign::report::{render, Exit, Format};

/// Render a verify result; warnings (not findings) go to stderr for people.
pub(super) fn emit(
    a: &VerifyArgs,
    bundle: &std::path::Path,
    result: Result<VerifyOutcome, mlsign::attest::Error>,
) -> Result<Exit> {
    let report = VerifyReport::new(&a.path, bundle, result)?;
    let exit = render::emit(a.format, &report);
    if a.format == Format::Human {
        for w in report.outcome.iter().flat_map(|o| &o.warnings) {
            eprintln!("warning: {w}");
        }
    }
    Ok(exit)
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
    emit(
        &a,
        &bundle,
        verify_model(&a.path, &bundle, &trust, &opts, &bar),
    )
}
