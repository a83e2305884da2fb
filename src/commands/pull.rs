//! `mlsign pull oci://… DIR`.

use super::common::{human_bytes, no_sarif, print_json};
use super::oci::{options, parse_ref, trust};
use crate::cli::PullArgs;
use anyhow::Result;
use mlsign::report::{Exit, Format};

pub fn run(a: PullArgs) -> Result<Exit> {
    no_sarif(a.format)?;
    let r = parse_ref(&a.reference)?;
    let t = match &a.key {
        Some(k) => Some(trust(Some(k.as_path()), None)?),
        None => None,
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
