use super::common::{hash_config, human_bytes, print_json, Bar};
use crate::cli::HashArgs;
use anyhow::{Context, Result};
use mlsign::digest::partition::Part;
use mlsign::digest::{cache, walk, walk_listing, ListedManifest, Manifest, Method, ResourceSource};
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
    let all = walk(&a.path, &config.ignore_paths, config.allow_symlinks)?;
    let own: Vec<_> = all
        .iter()
        .filter(|e| spec.contains(&e.name))
        .cloned()
        .collect();
    let m = Manifest::from_entries(&own, &config, &bar)?;
    let part = Part::new(spec, &config, &all, &m);
    mlsign::attest::write_atomic(out, &part.to_json(), a.force)?;
    match a.format {
        Format::Human => println!(
            "partition {spec}: {} of {} files, {} hashed -> {}",
            own.len(),
            all.len(),
            human_bytes(m.total_bytes),
            out.display()
        ),
        Format::Json | Format::Sarif | Format::Markdown => print_json(&json!({
            "partition": spec, "output": out, "files": own.len(), "listed_files": all.len(),
            "bytes": m.total_bytes, "resources": m.resources().len(),
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
