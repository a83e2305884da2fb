//! `mlsign pull oci://… DIR`.

use super::oci::{options, parse_ref, trust};
use crate::cli::PullArgs;
use anyhow::Result;
use mlsign::oci::PullReport;
use mlsign::report::{render, Exit};

pub fn run(a: PullArgs) -> Result<Exit> {
    let r = parse_ref(&a.reference)?;
    let t = if a.keyless.identity.is_some() || a.keyless.identity_regex.is_some() {
        Some(mlsign::attest::Trust::Keyless(
            super::verify::keyless_trust(&a.keyless)?,
        ))
    } else if a.key.is_some() || a.cert_chain.is_some() {
        Some(trust(a.key.as_deref(), a.cert_chain.as_deref())?)
    } else {
        if a.keyless.issuer.is_some() || a.keyless.issuer_regex.is_some() {
            anyhow::bail!("--issuer needs --identity or --identity-regex (keyless verification)");
        }
        None
    };
    let report = match mlsign::oci::pull_model(&r, &a.dir, &options(&a.registry)?, t.as_ref()) {
        Ok(out) => PullReport::Pulled(out),
        Err(mlsign::oci::Error::NotVerified(v)) => PullReport::NotVerified(*v),
        Err(e) => return Err(e.into()),
    };
    Ok(render::emit(a.format, &report))
}
