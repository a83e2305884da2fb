//! `poetry.lock` (TOML): `[[package]]` with name, version, `files = [{file, hash}]`
//! (Poetry ≥ 1.2) or the older `[metadata.files]` table, and `[package.dependencies]`.

use super::{parse_hash, pypi_purl, LockError, LockedPackage};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct PoetryLock {
    #[serde(default)]
    package: Vec<PoetryPackage>,
    #[serde(default)]
    metadata: PoetryMetadata,
}

#[derive(Deserialize, Default)]
struct PoetryMetadata {
    #[serde(default)]
    files: BTreeMap<String, Vec<PoetryFile>>,
}

#[derive(Deserialize)]
struct PoetryPackage {
    name: String,
    version: String,
    #[serde(default)]
    files: Vec<PoetryFile>,
    #[serde(default)]
    dependencies: BTreeMap<String, toml::Value>,
    source: Option<PoetrySource>,
}

#[derive(Deserialize)]
struct PoetryFile {
    hash: String,
}

#[derive(Deserialize)]
struct PoetrySource {
    #[serde(rename = "type")]
    kind: Option<String>,
    url: Option<String>,
}

pub(super) fn parse(text: &str, shown: &str) -> Result<Vec<LockedPackage>, LockError> {
    let lock: PoetryLock = toml::from_str(text)
        .map_err(|e| LockError::new(shown, format!("not a valid poetry.lock: {}", e.message())))?;
    let versions: BTreeMap<String, String> = lock
        .package
        .iter()
        .map(|p| (super::pep503(&p.name), p.version.clone()))
        .collect();
    let mut out = Vec::new();
    for p in &lock.package {
        let at = format!("{shown}: package {}", p.name);
        let legacy = lock.metadata.files.get(&p.name);
        let mut hashes = Vec::new();
        for f in p.files.iter().chain(legacy.into_iter().flatten()) {
            hashes.push(parse_hash(&f.hash, &at)?);
        }
        out.push(LockedPackage {
            ecosystem: "pypi",
            purl: Some(pypi_purl(&p.name, Some(&p.version))),
            name: p.name.clone(),
            version: Some(p.version.clone()),
            hashes,
            dependencies: p
                .dependencies
                .keys()
                .map(|d| match versions.get(&super::pep503(d)) {
                    Some(v) => format!("{}@{v}", lock_name(&lock.package, d)),
                    None => d.clone(),
                })
                .collect(),
            source: p.source.as_ref().map(|s| {
                format!(
                    "{}: {}",
                    s.kind.as_deref().unwrap_or("source"),
                    s.url.as_deref().unwrap_or("?")
                )
            }),
        });
    }
    Ok(out)
}

/// The package's own spelling of a dependency name (dependencies may differ in case).
fn lock_name(pkgs: &[PoetryPackage], dep: &str) -> String {
    let n = super::pep503(dep);
    pkgs.iter()
        .find(|p| super::pep503(&p.name) == n)
        .map(|p| p.name.clone())
        .unwrap_or_else(|| dep.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_layouts() {
        let h = "d".repeat(64);
        let text = format!(
            r#"[[package]]
name = "requests"
version = "2.31.0"
description = "HTTP"
optional = false
python-versions = ">=3.7"
files = [{{file = "requests-2.31.0-py3-none-any.whl", hash = "sha256:{h}"}}]

[package.dependencies]
Urllib3 = ">=1.21.1,<3"

[[package]]
name = "urllib3"
version = "2.1.0"
description = "x"

[metadata]
lock-version = "1.1"
content-hash = "abc"

[metadata.files]
urllib3 = [{{file = "urllib3.whl", hash = "sha256:{h}"}}]
"#
        );
        let p = parse(&text, "poetry.lock").unwrap();
        assert_eq!(p[0].dependencies, vec!["urllib3@2.1.0"]);
        assert_eq!(p[0].hashes.len(), 1);
        assert_eq!(p[1].hashes.len(), 1);
    }

    #[test]
    fn malformed() {
        let e = parse("[[package]]\nname = \"x\"\n", "poetry.lock").unwrap_err();
        assert!(e.message.contains("version"), "{e}");
    }
}
