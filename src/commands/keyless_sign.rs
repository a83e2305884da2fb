//! `mlsign sign PATH --keyless`: the keyless branch of `sign` (library:
//! [`mlsign::attest::sigstore::sign`]).

use super::common::{human_bytes, print_json, Bar};
use crate::cli::{SignArgs, SubjectKind as CliKind};
use anyhow::{Context, Result};
use mlsign::attest::sigstore::sign::{
    obtain_token_or_browser, sign_model_keyless, IdentityToken, Services,
};
use mlsign::attest::sigstore::{self, TrustRoot};
use mlsign::attest::{SignOptions, SubjectKind};
use mlsign::digest::HashConfig;
use mlsign::report::{Exit, Format};
use std::path::Path;

/// The Sigstore services and the trusted root new bundles are checked against, from
/// `--signing-config`, `--trusted-root` and `--staging` (local files only: nothing is fetched).
pub fn services_and_root(
    signing_config: Option<&Path>,
    trusted_root: Option<&Path>,
    staging: bool,
) -> Result<(Services, TrustRoot)> {
    let services = match signing_config {
        Some(p) => {
            let bytes = sigstore::read_bounded(p, 1 << 20, "signing config")?;
            Services::from_signing_config(&String::from_utf8_lossy(&bytes))
                .with_context(|| format!("{}", p.display()))?
        }
        None if staging => {
            Services::from_signing_config(sigstore_trust_root::SIGSTORE_STAGING_SIGNING_CONFIG)?
        }
        None => Services::production()?,
    };
    Ok((services, TrustRoot::load(trusted_root, staging)?))
}

/// [`services_and_root`], then the OIDC token: fetched last, once every local file has been read,
/// so a bad path never costs a sign-in.
pub fn services_root_token(
    signing_config: Option<&Path>,
    trusted_root: Option<&Path>,
    staging: bool,
    token: Option<&str>,
    token_file: Option<&Path>,
) -> Result<(Services, TrustRoot, IdentityToken)> {
    let (services, root) = services_and_root(signing_config, trusted_root, staging)?;
    let token = obtain_token_or_browser(token, token_file, &services)?;
    Ok((services, root, token))
}

pub fn run(a: &SignArgs, config: HashConfig) -> Result<Exit> {
    let k = &a.keyless;
    // Everything local is checked before the token is fetched and the services are called.
    let (services, root) = services_and_root(
        k.signing_config.as_deref(),
        k.trusted_root.as_deref(),
        k.staging,
    )?;
    let bundle_path = match &a.bundle {
        Some(b) => b.clone(),
        None => super::sign::default_bundle(&a.path)?,
    };
    super::common::refuse_existing(&bundle_path, a.force)?;
    let token = obtain_token_or_browser(
        k.identity_token.as_deref(),
        k.identity_token_file.as_deref(),
        &services,
    )?;
    let opts = SignOptions {
        kind: match a.kind {
            CliKind::Model => SubjectKind::Model,
            CliKind::Dataset => SubjectKind::Dataset,
        },
        config,
        bundle_path,
        force: a.force,
    };
    let bar = Bar::new(!a.hashing.no_progress);
    let out = sign_model_keyless(&a.path, &opts, &token, &services, &root, &bar)?;
    match a.format {
        Format::Human => {
            println!(
                "Signed {} {} keylessly ({} files, {}, {}) -> {}",
                out.kind.name(),
                out.subject,
                out.files,
                human_bytes(out.bytes),
                out.algorithm,
                out.bundle.display()
            );
            println!(
                "identity from issuer {}; logged in {}",
                token.issuer().unwrap_or("?"),
                services.rekor
            );
            println!("root sha256:{}", out.root_digest);
        }
        Format::Json | Format::Sarif | Format::Markdown => print_json(&serde_json::to_value(&out)?),
    }
    Ok(Exit::Pass)
}
