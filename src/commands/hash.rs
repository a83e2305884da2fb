use super::common::{hash_config, human_bytes, print_json, Bar};
use crate::cli::HashArgs;
use crate::digest::{Manifest, Method};
use crate::report::{Exit, Format};
use anyhow::Result;
use serde_json::json;

pub fn run(a: HashArgs) -> Result<Exit> {
    super::common::no_sarif(a.format)?;
    let config = hash_config(&a.path, &a.hashing)?;
    let bar = Bar::new(!a.hashing.no_progress);
    let m = Manifest::from_path_with(&a.path, &config, &bar)?;
    match a.format {
        Format::Human => {
            for r in m.resources() {
                println!("{}  {}", r.hex(), r.name);
            }
            println!(
                "root sha256:{}  ({} files, {}, {}{})",
                m.root_digest_hex(),
                m.file_count,
                human_bytes(m.total_bytes),
                config.algorithm,
                match config.method {
                    Method::Files => String::new(),
                    Method::Shards { shard_size } => format!(", shards of {shard_size} bytes"),
                }
            );
        }
        Format::Json | Format::Sarif => {
            let resources: Vec<_> = m
                .resources()
                .iter()
                .map(|r| json!({"name": r.name, "algorithm": r.algorithm, "digest": r.hex()}))
                .collect();
            print_json(&json!({
                "path": a.path,
                "root_digest": {"sha256": m.root_digest_hex()},
                "serialization": crate::attest::statement::serialization_json(&config),
                "files": m.file_count,
                "bytes": m.total_bytes,
                "resources": resources,
            }));
        }
    }
    Ok(Exit::Pass)
}
