//! `mlsign bom verify`: re-hash the model and datasets a BOM names (their `mlsign:path`) and
//! report every file that differs from the per-file hashes in the BOM.

use super::build::prop;
use super::cyclonedx::{ctype, Bom, Component};
use super::BomError;
use crate::digest::{self, Difference, HashConfig, Manifest, Resource};
use crate::report::{Finding, Location, Severity};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default)]
pub struct DriftOptions {
    /// Directory recorded paths are relative to (default: the BOM's directory).
    pub base: Option<PathBuf>,
    /// Hash this directory for the model instead of the recorded path.
    pub model: Option<PathBuf>,
    pub threads: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    pub bom_ref: String,
    pub kind: String,
    pub name: String,
    pub path: String,
    pub recorded: String,
    pub actual: String,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub bom_ref: String,
    pub name: String,
    pub why: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    pub checked: Vec<Checked>,
    pub skipped: Vec<Skipped>,
    pub findings: Vec<Finding>,
}

/// The recorded per-file hashes of a model/data component (its nested `file` children).
fn recorded_manifest(c: &Component) -> Result<Manifest, BomError> {
    let mut res = Vec::new();
    for f in c.components.iter().filter(|k| k.kind == ctype::FILE) {
        let h = f.hash("SHA-256").ok_or_else(|| {
            BomError::Usage(format!(
                "component {:?}: file {:?} has no SHA-256 hash",
                c.name, f.name
            ))
        })?;
        digest::check_resource_name(&f.name).map_err(|e| BomError::Usage(e.to_string()))?;
        res.push(Resource {
            name: f.name.clone(),
            algorithm: "sha256".into(),
            digest: hex::decode(h)
                .map_err(|_| BomError::Usage(format!("file {:?}: hash is not hex", f.name)))?,
        });
    }
    Ok(Manifest::from_resources(res))
}

/// Re-hash what the BOM names. `bom_path` locates relative paths.
pub fn verify(bom: &Bom, bom_path: &Path, o: &DriftOptions) -> Result<DriftReport, BomError> {
    let base = o.base.clone().unwrap_or_else(|| {
        bom_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf()
    });
    let model_ref = bom
        .metadata
        .as_ref()
        .and_then(|m| m.component.as_ref())
        .and_then(|c| c.bom_ref.clone());
    let mut rep = DriftReport {
        checked: vec![],
        skipped: vec![],
        findings: vec![],
    };
    // The root whatever its type (a model, or an application: `bom --type application`), then
    // every model and dataset component.
    let targets: Vec<&Component> = bom
        .metadata
        .iter()
        .filter_map(|m| m.component.as_deref())
        .chain(
            bom.components
                .iter()
                .filter(|c| c.kind == ctype::MODEL || c.kind == ctype::DATA),
        )
        .collect();
    for c in targets {
        let bref = c.bom_ref.clone().unwrap_or_else(|| c.name.clone());
        let is_model = c.bom_ref.is_some() && c.bom_ref == model_ref;
        let path = match (is_model, &o.model, c.property(prop::PATH)) {
            (true, Some(m), _) => m.clone(),
            (_, _, Some(p)) => {
                let p = Path::new(p);
                if p.is_absolute() {
                    p.to_path_buf()
                } else {
                    base.join(p)
                }
            }
            _ => {
                rep.skipped.push(Skipped {
                    bom_ref: bref,
                    name: c.name.clone(),
                    why: if c.property(prop::UNPINNED).is_some() {
                        "named by the model card only; not pinned by content".into()
                    } else {
                        "the BOM records no local path (mlsign:path)".into()
                    },
                });
                continue;
            }
        };
        let Some(recorded_root) = c.hash("SHA-256") else {
            rep.skipped.push(Skipped {
                bom_ref: bref,
                name: c.name.clone(),
                why: "no SHA-256 hash in the BOM".into(),
            });
            continue;
        };
        let cfg = HashConfig {
            threads: o.threads,
            ..HashConfig::default()
        };
        let actual = Manifest::from_path(&path, &cfg)
            .map_err(|e| BomError::Hash(format!("{} {:?} ({bref}): {e}", c.kind, c.name)))?;
        let recorded = recorded_manifest(c)?;
        let shown = path.display().to_string();
        let mut diffs = digest::diff(&recorded, &actual);
        if recorded.resources().is_empty() {
            diffs.clear(); // no per-file hashes in the BOM: compare the root only
        }
        for d in &diffs {
            let (code, sev, what) = match d {
                Difference::Modified { path } => (
                    "BOM005",
                    Severity::High,
                    format!("{path}: content differs from its hash in the BOM"),
                ),
                Difference::Renamed { from, to } => (
                    "BOM005",
                    Severity::High,
                    format!("{from} renamed to {to} since the BOM was made"),
                ),
                Difference::Missing { path } => (
                    "BOM006",
                    Severity::High,
                    format!("{path}: listed in the BOM, but missing"),
                ),
                Difference::Extra { path } => (
                    "BOM007",
                    Severity::Medium,
                    format!("{path}: present, but not listed in the BOM"),
                ),
            };
            rep.findings.push(
                Finding::new(code, sev, format!("{} {:?}: {what}", c.kind, c.name)).at(Location {
                    path: shown.clone(),
                    member: Some(d.path().to_string()),
                    stream: None,
                    offset: None,
                }),
            );
        }
        let root = actual.root_digest_hex();
        let ok = root == recorded_root.to_ascii_lowercase();
        if !ok && diffs.is_empty() {
            rep.findings.push(
                Finding::new(
                    "BOM005",
                    Severity::High,
                    format!(
                        "{} {:?}: content digest is sha256:{root}, the BOM says sha256:{recorded_root}",
                        c.kind, c.name
                    ),
                )
                .at(Location::path(shown.clone())),
            );
        }
        rep.checked.push(Checked {
            bom_ref: bref,
            kind: c.kind.clone(),
            name: c.name.clone(),
            path: shown,
            recorded: format!("sha256:{recorded_root}"),
            actual: format!("sha256:{root}"),
            ok: ok && diffs.is_empty(),
        });
    }
    Ok(rep)
}
