use super::common::{hash_config, human_bytes, print_json, Bar};
use crate::cli::HashArgs;
use anyhow::{Context, Result};
use mlsign::digest::{cache, walk_listing, ListedManifest, Method, ResourceSource};
use mlsign::report::{Exit, Format};
use serde_json::json;

/// `hash --partition I/N -o PART.json`: hash one partition, write its partial manifest.
fn partition(a: &HashArgs, spec: mlsign::digest::partition::Spec) -> Result<Exit> {
    let out = a
        .output
        .as_deref()
        .context("--partition needs --output PART.json")?;
    let config = hash_config(&a.path, &a.hashing)?;
    let bar = Bar::new(!a.hashing.no_progress);
    // Compact throughout: the listing, this partition's digests (other files get placeholder
    // digests and are not read), and the part streamed to its file.
    let listing = walk_listing(&a.path, &config.ignore_paths, config.allow_symlinks)?;
    let dlen = config.algorithm.digest_len();
    let skip = |e: &mlsign::digest::Entry| {
        (!spec.contains(&e.name))
            .then(|| vec![0u8; mlsign::digest::pieces(e.size, config.method).count() * dlen])
    };
    let (m, _) = ListedManifest::hash(&listing, &config, &bar, &skip)?;
    mlsign::attest::write_atomic_with(out, a.force, &mut |w| {
        mlsign::digest::partition::write_part(spec, &config, &m, w)
    })?;
    let (mut files, mut bytes, mut resources) = (0usize, 0u64, 0usize);
    for i in (0..listing.len()).filter(|&i| spec.contains(listing.name(i))) {
        let size = listing.stat(i).size;
        files += 1;
        bytes += size;
        resources += mlsign::digest::pieces(size, config.method).count();
    }
    match a.format {
        Format::Human => println!(
            "partition {spec}: {} of {} files, {} hashed -> {}",
            files,
            listing.len(),
            human_bytes(bytes),
            out.display()
        ),
        Format::Json | Format::Sarif | Format::Markdown => print_json(&json!({
            "partition": spec, "output": out, "files": files, "listed_files": listing.len(),
            "bytes": bytes, "resources": resources,
        })),
    }
    Ok(Exit::Pass)
}

pub fn run(a: HashArgs) -> Result<Exit> {
    super::common::no_sarif(a.format)?;
    if let Some(spec) = a.partition {
        return partition(&a, spec);
    }
    let config = hash_config(&a.path, &a.hashing)?;
    let bar = Bar::new(!a.hashing.no_progress);
    let root = std::fs::canonicalize(&a.path).with_context(|| a.path.display().to_string())?;
    let walk_started = cache::now_ns();
    let listing = walk_listing(&root, &config.ignore_paths, config.allow_symlinks)?;
    let (m, _) = ListedManifest::hash(&listing, &config, &bar, &|_| None)?;
    if !a.hashing.no_stat_cache {
        // For a later `sign --since`; a failure here costs only a full re-hash then.
        if let Err(why) = cache::store(&root, &config, &m, walk_started) {
            eprintln!("warning: stat cache not written: {why}");
        }
    }
    match a.format {
        Format::Human => {
            use std::io::Write;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            // Streamed from the compact manifest; a closed pipe (`| head`) ends it quietly.
            let listed =
                m.each_resource(&mut |r| writeln!(out, "{}  {}", hex::encode(r.digest), r.name));
            if listed.is_err() {
                return Ok(Exit::Pass);
            }
            let _ = writeln!(
                out,
                "root sha256:{}  ({} files, {}, {}{})",
                m.root_digest_hex(),
                listing.len(),
                human_bytes(listing.total_bytes()),
                config.algorithm,
                match config.method {
                    Method::Files => String::new(),
                    Method::Shards { shard_size } => format!(", shards of {shard_size} bytes"),
                }
            );
        }
        Format::Json | Format::Sarif | Format::Markdown => {
            let m = m.to_manifest();
            let resources: Vec<_> = m
                .resources()
                .iter()
                .map(|r| json!({"name": r.name, "algorithm": r.algorithm, "digest": r.hex()}))
                .collect();
            print_json(&json!({
                "path": a.path,
                "root_digest": {"sha256": m.root_digest_hex()},
                "serialization": mlsign::attest::statement::serialization_json(&config),
                "files": m.file_count,
                "bytes": m.total_bytes,
                "resources": resources,
            }));
        }
    }
    Ok(Exit::Pass)
}
