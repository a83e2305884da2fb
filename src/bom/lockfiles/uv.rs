//! `uv.lock` (TOML, `version = 1`): `[[package]]` with name, version, source, dependencies,
//! sdist and wheels (each with `hash = "sha256:…"`).

use super::{parse_hash, pypi_purl, LockError, LockedPackage};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct UvLock {
    version: Option<u32>,
    #[serde(default)]
    package: Vec<UvPackage>,
}

#[derive(Deserialize)]
struct UvPackage {
    name: String,
    version: Option<String>,
    #[serde(default)]
    source: BTreeMap<String, toml::Value>,
    #[serde(default)]
    dependencies: Vec<UvDep>,
    sdist: Option<UvArtifact>,
    #[serde(default)]
    wheels: Vec<UvArtifact>,
}

#[derive(Deserialize)]
struct UvDep {
    name: String,
    version: Option<String>,
}

#[derive(Deserialize)]
struct UvArtifact {
    hash: Option<String>,
}

pub(super) fn parse(text: &str, shown: &str) -> Result<Vec<LockedPackage>, LockError> {
    let lock: UvLock = toml::from_str(text)
        .map_err(|e| LockError::new(shown, format!("not a valid uv.lock: {}", e.message())))?;
    if lock.version != Some(1) {
        return Err(LockError::new(
            shown,
            format!(
                "uv.lock version {:?} is not supported (expected 1)",
                lock.version
            ),
        ));
    }
    // Dependencies name packages without a version when only one version is locked.
    let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in &lock.package {
        if let Some(v) = &p.version {
            versions.entry(p.name.clone()).or_default().push(v.clone());
        }
    }
    let mut out = Vec::new();
    for p in lock.package {
        let at = format!("{shown}: package {}", p.name);
        let mut hashes = Vec::new();
        for a in p.sdist.iter().chain(p.wheels.iter()) {
            if let Some(h) = &a.hash {
                hashes.push(parse_hash(h, &at)?);
            }
        }
        let source = p.source.iter().find_map(|(k, v)| match (k.as_str(), v) {
            ("registry", toml::Value::String(u)) if u == "https://pypi.org/simple" => None,
            (k, toml::Value::String(u)) => Some(format!("{k}: {u}")),
            (k, _) => Some(k.to_string()),
        });
        let dependencies = p
            .dependencies
            .iter()
            .map(|d| match (&d.version, versions.get(&d.name)) {
                (Some(v), _) => format!("{}@{v}", d.name),
                (None, Some(vs)) if vs.len() == 1 => format!("{}@{}", d.name, vs[0]),
                _ => d.name.clone(),
            })
            .collect();
        out.push(LockedPackage {
            ecosystem: "pypi",
            purl: Some(pypi_purl(&p.name, p.version.as_deref())),
            name: p.name,
            version: p.version,
            hashes,
            dependencies,
            source,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_uv_lock() {
        let h = "c".repeat(64);
        let text = format!(
            r#"version = 1
requires-python = ">=3.11"

[[package]]
name = "demo"
version = "0.1.0"
source = {{ editable = "." }}
dependencies = [{{ name = "numpy" }}]

[[package]]
name = "numpy"
version = "1.26.4"
source = {{ registry = "https://pypi.org/simple" }}
sdist = {{ url = "https://x/numpy.tar.gz", hash = "sha256:{h}", size = 1 }}
wheels = [{{ url = "https://x/numpy.whl", hash = "sha256:{h}", size = 2 }}]
"#
        );
        let p = super::super::parse(super::super::LockKind::Uv, &text, "uv.lock").unwrap();
        let demo = p.iter().find(|x| x.name == "demo").unwrap();
        assert_eq!(demo.dependencies, vec!["numpy@1.26.4"]);
        assert_eq!(demo.source.as_deref(), Some("editable: ."));
        let np = p.iter().find(|x| x.name == "numpy").unwrap();
        assert_eq!(np.hashes.len(), 1, "identical hashes are deduplicated");
        assert_eq!(np.source, None);
    }

    #[test]
    fn malformed() {
        let e = parse("version = 1\n[[package]]\nversion = \"1\"\n", "uv.lock").unwrap_err();
        assert!(e.message.contains("name"), "{e}");
        assert!(parse("version = 2\n", "uv.lock").is_err());
    }
}
