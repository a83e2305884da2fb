//! Parallel verification: `verify --partition I/N` checks the signature and then only the files
//! of partition `I` (the same path-hash split as `hash --partition`), and can write its result;
//! `verify --from-parts` merges N results into one verdict with every per-path difference
//! (renames across partitions paired by content, as a single-machine verify would).

use super::sign::{inside, resolve_output};
use super::verify::{verify_compact, Trust, VerifyOptions, VerifyOutcome};
use super::Error;
use crate::digest::partition::Spec;
use crate::digest::signed::diff_listed;
use crate::digest::{pieces, walk_listing, Difference, ListedManifest, Method, Progress};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Format tag of a partition's verification result.
pub const RESULT_FORMAT: &str = "https://mlsign.dev/verify-partition/v1";

/// What one partition found (the `--output` file).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartResult {
    pub format: String,
    pub partition: Spec,
    /// The root digest of the bundle that was checked: all parts of a merge must agree.
    pub root_digest: String,
    pub files_checked: usize,
    pub bytes: u64,
    pub differences: Vec<Difference>,
    /// Digests (hex, per piece) of missing and extra paths, to pair renames across partitions.
    pub missing: BTreeMap<String, Vec<String>>,
    pub extra: BTreeMap<String, Vec<String>>,
}

/// Verify the bundle, then the files of partition `spec` only.
pub fn verify_partition(
    path: &Path,
    bundle_path: &Path,
    trust: &Trust,
    opts: &VerifyOptions,
    spec: Spec,
    progress: &dyn Progress,
) -> Result<(VerifyOutcome, PartResult), Error> {
    let root = std::fs::canonicalize(path)
        .map_err(|e| Error::Digest(crate::digest::Error::io(path, e)))?;
    let (vp, signed) = verify_compact(bundle_path, trust, opts.legacy_pae)?;
    let mut config = signed.config.clone();
    config.allow_symlinks |= opts.allow_symlinks;
    config.threads = opts.threads;
    if let Some(rel) = inside(&root, &resolve_output(bundle_path)?) {
        config.ignore_paths.push(rel);
    }
    config
        .ignore_paths
        .extend(opts.extra_ignore.iter().cloned());
    let listing = walk_listing(&root, &config.ignore_paths, config.allow_symlinks)?;
    // Files of other partitions are not read: placeholder digests, never compared (the diff
    // below keeps this partition's paths only).
    let dlen = config.algorithm.digest_len();
    let skip = |e: &crate::digest::Entry| {
        (!spec.contains(&e.name)).then(|| vec![0u8; pieces(e.size, config.method).count() * dlen])
    };
    let (actual, _) = ListedManifest::hash(&listing, &config, progress, &skip)?;
    let (mut files, mut bytes) = (0usize, 0u64);
    for i in 0..listing.len() {
        if spec.contains(listing.name(i)) {
            files += 1;
            bytes += listing.stat(i).size;
        }
    }
    let d = diff_listed(&signed.resources, &actual, config.method, &|p| {
        spec.contains(p)
    });
    let differences = d.differences;
    let missing: BTreeMap<String, Vec<String>> = d.missing.into_iter().collect();
    let extra: BTreeMap<String, Vec<String>> = d.extra.into_iter().collect();
    let result = PartResult {
        format: RESULT_FORMAT.into(),
        partition: spec,
        root_digest: signed.root_digest.clone(),
        files_checked: files,
        bytes,
        differences: differences.clone(),
        missing,
        extra,
    };
    let outcome = VerifyOutcome {
        subject: signed.subject_name,
        kind: signed.kind,
        predicate_type: signed.predicate_type,
        method: vp.method,
        signer: vp.signer,
        root_digest: signed.root_digest,
        algorithm: config.algorithm.name(),
        shard_size: match config.method {
            Method::Files => None,
            Method::Shards { shard_size } => Some(shard_size),
        },
        files_checked: files,
        bytes,
        differences,
        warnings: vp.warnings,
    };
    Ok((outcome, result))
}

/// Verify the bundle's signature and merge the partition results in `parts`: each partition
/// of N present exactly once, all made for this bundle. Returns the merged outcome.
pub fn merge_results(
    bundle_path: &Path,
    trust: &Trust,
    legacy_pae: bool,
    parts: &[PathBuf],
) -> Result<VerifyOutcome, Error> {
    let (vp, signed) = verify_compact(bundle_path, trust, legacy_pae)?;
    let bad = |p: &Path, why: String| Error::MalformedBundle {
        path: p.into(),
        why,
    };
    let mut results: Vec<(PathBuf, PartResult)> = Vec::new();
    for p in parts {
        let meta = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
        if meta.len() > 1 << 30 {
            return Err(bad(p, "too large for a partition result".into()));
        }
        let data = std::fs::read(p).map_err(|e| Error::io(p, e))?;
        let r: PartResult = serde_json::from_slice(&data).map_err(|e| {
            bad(
                p,
                format!("not a partition result of `verify --partition` ({e})"),
            )
        })?;
        if r.format != RESULT_FORMAT {
            return Err(bad(p, format!("unknown format {:?}", r.format)));
        }
        if r.root_digest != signed.root_digest {
            return Err(bad(
                p,
                format!(
                    "made for another signature (root {}, this bundle's is {})",
                    r.root_digest, signed.root_digest
                ),
            ));
        }
        results.push((p.clone(), r));
    }
    let Some(count) = results.first().map(|(_, r)| r.partition.count) else {
        return Err(bad(bundle_path, "no partition results given".into()));
    };
    let mut seen: Vec<Option<&Path>> = vec![None; count as usize];
    for (p, r) in &results {
        if r.partition.count != count || r.partition.index >= count {
            return Err(bad(
                p,
                format!(
                    "partition {} but other results have {count} partitions",
                    r.partition
                ),
            ));
        }
        if let Some(other) = seen[r.partition.index as usize] {
            return Err(bad(
                p,
                format!(
                    "partition {} appears twice (also {})",
                    r.partition,
                    other.display()
                ),
            ));
        }
        seen[r.partition.index as usize] = Some(p.as_path());
    }
    if let Some(i) = seen.iter().position(Option::is_none) {
        return Err(bad(
            bundle_path,
            format!("the result of partition {i}/{count} is missing"),
        ));
    }
    let mut differences = Vec::new();
    let mut missing = BTreeMap::new();
    let mut extra = BTreeMap::new();
    let (mut files, mut bytes) = (0usize, 0u64);
    for (_, r) in results {
        files += r.files_checked;
        bytes += r.bytes;
        differences.extend(
            r.differences
                .into_iter()
                .filter(|d| !matches!(d, Difference::Missing { .. } | Difference::Extra { .. })),
        );
        missing.extend(r.missing);
        extra.extend(r.extra);
    }
    // Pair a missing path with an extra one of identical content: a rename across partitions.
    let mut claimed = std::collections::HashSet::new();
    for (m, pieces) in &missing {
        let to = extra
            .iter()
            .find(|(x, p)| !claimed.contains(*x) && *p == pieces)
            .map(|(x, _)| x.clone());
        match to {
            Some(to) => {
                claimed.insert(to.clone());
                differences.push(Difference::Renamed {
                    from: m.clone(),
                    to,
                });
            }
            None => differences.push(Difference::Missing { path: m.clone() }),
        }
    }
    for x in extra.keys().filter(|x| !claimed.contains(*x)) {
        differences.push(Difference::Extra { path: x.clone() });
    }
    differences.sort_by(|a, b| a.path().cmp(b.path()));
    let config = &signed.config;
    Ok(VerifyOutcome {
        subject: signed.subject_name,
        kind: signed.kind,
        predicate_type: signed.predicate_type,
        method: vp.method,
        signer: vp.signer,
        root_digest: signed.root_digest,
        algorithm: config.algorithm.name(),
        shard_size: match config.method {
            Method::Files => None,
            Method::Shards { shard_size } => Some(shard_size),
        },
        files_checked: files,
        bytes,
        differences,
        warnings: vp.warnings,
    })
}
