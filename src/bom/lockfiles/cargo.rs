//! Cargo.lock (format versions 1–4) via the `cargo-lock` crate.

use super::{purl_enc, LockError, LockedPackage};
use crate::bom::cyclonedx::Hash;
use std::str::FromStr;

pub(super) fn parse(text: &str, shown: &str) -> Result<Vec<LockedPackage>, LockError> {
    let lock = cargo_lock::Lockfile::from_str(text)
        .map_err(|e| LockError::new(shown, format!("not a valid Cargo.lock: {e}")))?;
    Ok(lock
        .packages
        .iter()
        .map(|p| {
            let name = p.name.as_str().to_string();
            let version = p.version.to_string();
            let source = p.source.as_ref();
            let from_crates_io = source.is_some_and(|s| s.is_default_registry());
            LockedPackage {
                ecosystem: "cargo",
                purl: Some(format!(
                    "pkg:cargo/{}@{}",
                    purl_enc(&name),
                    purl_enc(&version)
                )),
                hashes: p
                    .checksum
                    .as_ref()
                    .and_then(|c| c.as_sha256())
                    .map(|d| vec![Hash::sha256(hex::encode(d))])
                    .unwrap_or_default(),
                dependencies: p
                    .dependencies
                    .iter()
                    .map(|d| format!("{}@{}", d.name.as_str(), d.version))
                    .collect(),
                source: match source {
                    None => Some("path (workspace member)".into()),
                    Some(_) if from_crates_io => None,
                    Some(s) => Some(s.url().to_string()),
                },
                name,
                version: Some(version),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"
version = 3

[[package]]
name = "app"
version = "0.1.0"
dependencies = [
 "serde",
]

[[package]]
name = "serde"
version = "1.0.200"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "ddc6f9cc94d67c0e21aaf7eda3a010fd3af78ebf6e096aa6e2e13c79749cce4f"
"#;

    #[test]
    fn parses_packages_checksums_and_deps() {
        let p = parse(LOCK, "Cargo.lock").unwrap();
        assert_eq!(p.len(), 2);
        let app = p.iter().find(|x| x.name == "app").unwrap();
        assert_eq!(app.dependencies, vec!["serde@1.0.200"]);
        assert!(app.hashes.is_empty());
        assert!(app.source.is_some());
        let serde = p.iter().find(|x| x.name == "serde").unwrap();
        assert_eq!(serde.purl.as_deref(), Some("pkg:cargo/serde@1.0.200"));
        assert_eq!(serde.hashes[0].content.len(), 64);
        assert_eq!(serde.source, None);
    }

    #[test]
    fn malformed_is_an_error() {
        let e = parse("[[package]]\nname = 3\n", "Cargo.lock").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("Cargo.lock: not a valid Cargo.lock"),
            "{e}"
        );
    }
}
