//! `verify --partition I/N [-o RESULT.json]` and `verify --from-parts RESULT…`.

use super::verify::emit;
use crate::cli::VerifyArgs;
use anyhow::Result;
use mlsign::attest::partition::{merge_results, verify_partition};
use mlsign::attest::{Error as AttestError, Trust, VerifyOptions};
use mlsign::digest::Progress;
use mlsign::report::Exit;

pub fn run(
    a: &VerifyArgs,
    bundle: &std::path::Path,
    trust: &Trust,
    opts: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<Exit> {
    let result = if let Some(spec) = a.partition {
        verify_partition(&a.path, bundle, trust, opts, spec, progress).and_then(|(o, r)| {
            if let Some(out) = &a.output {
                let mut json = serde_json::to_vec_pretty(&r).unwrap_or_default();
                json.push(b'\n');
                mlsign::attest::write_atomic(out, &json, true)?;
            }
            Ok(o)
        })
    } else {
        let parts = mlsign::digest::partition::expand_patterns(&a.from_parts)
            .map_err(|e| AttestError::Digest(e.into()))?;
        merge_results(bundle, trust, a.legacy_pae, &parts)
    };
    let exit = emit(a, bundle, result)?;
    if a.format == mlsign::report::Format::Human {
        match a.partition {
            Some(spec) => eprintln!(
                "note: partition {spec} only; the other partitions are checked by their \
                 own runs (merge their --output files with --from-parts)"
            ),
            None => eprintln!(
                "note: merged the results of every partition (each present once, all \
                 for this bundle)"
            ),
        }
    }
    Ok(exit)
}
