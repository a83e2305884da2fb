//! `mlsign pull oci://… DIR`.

use super::common::{human_bytes, no_sarif, print_json};
use super::oci::{options, parse_ref, trust};
use crate::cli::PullArgs;
use anyhow::Result;
use mlsign::report::{Exit, Format};

pub fn run(a: PullArgs) -> Result<Exit> {
    no_sarif(a.format)?;
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
    match mlsign::oci::pull_model(&r, &a.dir, &options(&a.registry)?, t.as_ref()) {
        Ok(out) => {
            match a.format {
                Format::Human => {
                    println!(
                        "Pulled {} ({}) into {}: {} files, {}, every blob digest checked",
                        out.reference,
                        out.format.name(),
                        out.directory.display(),
                        out.files,
                        human_bytes(out.bytes)
                    );
                    if let Some(v) = out.verified.as_ref().and_then(|v| v.verified_candidate()) {
                        println!(
                            "  signature verified first: {} via the {}",
                            v.kind, v.source
                        );
                    }
                }
                _ => print_json(&serde_json::to_value(&out)?),
            }
            Ok(Exit::Pass)
        }
        Err(mlsign::oci::Error::NotVerified(v)) => {
            match a.format {
                Format::Human => {
                    println!(
                        "FAILED: {} has no valid signature for {}; nothing was pulled",
                        v.reference, v.digest
                    );
                    for c in &v.candidates {
                        println!(
                            "  [{}] {} {}: {}",
                            c.code.unwrap_or("-"),
                            c.source,
                            c.manifest,
                            c.reason.as_deref().unwrap_or("")
                        );
                    }
                }
                _ => print_json(&serde_json::json!({"pulled": false, "verification": v})),
            }
            Ok(Exit::Finding)
        }
        Err(e) => Err(e.into()),
    }
}
