//! Dataset lineage: hash-linked records of every dataset version and the steps between them.
//!
//! ```text
//! raw (source, license) --step "clean"--> processed --step "split"--> train / validation / test
//! ```
//! Each record pins its files with the signing core's manifest ([`crate::digest`]); a derived
//! record names its parents by root digest and records the step (command, parameters, code
//! digest, time, who). [`verify()`] re-hashes everything and names the steps a change breaks.

pub mod lineage;
mod render;
pub mod verify;

pub use lineage::{
    load, load_or_new, save, CodeRef, FileEntry, Lineage, LineageError, Loaded, Record, Step,
};
pub use verify::{verify, DatasetStatus, VerifyOptions, VerifyReport};

use std::collections::BTreeMap;
use std::path::Path;

/// What the user says about a dataset version when recording it.
#[derive(Debug, Clone, Default)]
pub struct RecordInput {
    pub name: String,
    pub version: Option<String>,
    pub source: Option<String>,
    pub license: Option<String>,
    pub split: Option<String>,
    pub description: Option<String>,
    pub by: Option<String>,
    /// Replace an existing record with the same name and version.
    pub replace: bool,
    pub threads: Option<usize>,
    /// Fixed `recordedAt` (RFC 3339), for reproducible lineage files; default now.
    pub recorded_at: Option<String>,
}

/// The step that made a derived dataset, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct StepInput {
    pub name: String,
    pub command: String,
    pub parameters: BTreeMap<String, String>,
    /// Paths (files or directories) of the code the step ran; hashed now.
    pub code: Vec<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub by: Option<String>,
}

/// Why recording failed without an I/O or format error: a parent no longer matches.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Lineage(#[from] LineageError),
    #[error("{0}")]
    Usage(String),
    #[error("parent {label:?} ({path}) has changed since it was recorded ({recorded} → {actual})")]
    ParentChanged {
        label: String,
        path: String,
        recorded: String,
        actual: String,
    },
}

pub use crate::util::now_rfc3339;

fn check_time(t: &Option<String>, what: &str) -> Result<(), RecordError> {
    if let Some(t) = t {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).map_err(
            |_| {
                RecordError::Usage(format!(
                    "{what} {t:?} is not an RFC 3339 time (2026-01-31T12:00:00Z)"
                ))
            },
        )?;
    }
    Ok(())
}

/// Path of `p` as the lineage should store it: relative to the lineage file's directory when
/// it lies below it, else absolute.
fn stored_path(l: &Loaded, p: &Path) -> Result<String, RecordError> {
    let abs = std::fs::canonicalize(p)
        .map_err(|e| RecordError::Usage(format!("{}: {e}", p.display())))?;
    let base = std::fs::canonicalize(&l.base)
        .map_err(|e| RecordError::Usage(format!("{}: {e}", l.base.display())))?;
    let rel = match abs.strip_prefix(&base) {
        Ok(r) if r.as_os_str().is_empty() => ".".to_string(),
        Ok(r) => r.to_string_lossy().replace('\\', "/"),
        Err(_) => abs.to_string_lossy().into_owned(),
    };
    Ok(rel)
}

/// Resolve `name`, `name@version` or `sha256:<hex>` (a unique prefix of at least 12 digits) to
/// a record index.
pub fn find(l: &Loaded, key: &str) -> Result<usize, RecordError> {
    let ds = &l.lineage.datasets;
    let hits: Vec<usize> = if let Some(h) = key.strip_prefix("sha256:") {
        if h.len() < 12 {
            return Err(RecordError::Usage(format!(
                "digest prefix {key:?} is shorter than 12 hex digits"
            )));
        }
        (0..ds.len())
            .filter(|&i| ds[i].digest_hex().starts_with(h))
            .collect()
    } else {
        let exact: Vec<usize> = (0..ds.len()).filter(|&i| ds[i].label() == key).collect();
        if exact.is_empty() {
            (0..ds.len()).filter(|&i| ds[i].name == key).collect()
        } else {
            exact
        }
    };
    match hits.as_slice() {
        [i] => Ok(*i),
        [] => Err(RecordError::Usage(format!(
            "no dataset {key:?} in {} (known: {})",
            l.file.display(),
            ds.iter().map(|r| r.label()).collect::<Vec<_>>().join(", ")
        ))),
        many => Err(RecordError::Usage(format!(
            "{key:?} is ambiguous in {}: {}; use name@version or the digest",
            l.file.display(),
            many.iter()
                .map(|&i| ds[i].label())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Hash `dir` and add (or with `replace`, update) its record. With `parents`/`step` it is a
/// derived dataset: each parent is re-hashed first and must still match its record.
pub fn record(
    l: &mut Loaded,
    dir: &Path,
    input: &RecordInput,
    parents: &[String],
    step: Option<&StepInput>,
) -> Result<usize, RecordError> {
    if input.name.trim().is_empty() {
        return Err(RecordError::Usage("--name must not be empty".into()));
    }
    if !parents.is_empty() && step.is_none() {
        return Err(RecordError::Usage(
            "a derived dataset needs --step and --command".into(),
        ));
    }
    check_time(&input.recorded_at, "--recorded-at")?;
    let path = stored_path(l, dir)?;
    // The lineage file is rewritten after hashing: inside the dataset it would change it.
    if let (Ok(d), Ok(b)) = (std::fs::canonicalize(dir), std::fs::canonicalize(&l.base)) {
        let file = b.join(l.file.file_name().unwrap_or_default());
        if d.is_dir() && file.starts_with(&d) {
            return Err(RecordError::Usage(format!(
                "{} lies inside the dataset {}; keep the lineage file outside the data it describes",
                l.file.display(),
                dir.display()
            )));
        }
    }
    let mut parent_digests = Vec::new();
    for key in parents {
        let i = find(l, key)?;
        let r = &l.lineage.datasets[i];
        let m = verify::hash_record_path(l, &r.path, input.threads)?;
        let now = format!("sha256:{}", m.root_digest_hex());
        if now != r.digest {
            return Err(RecordError::ParentChanged {
                label: r.label(),
                path: r.path.clone(),
                recorded: verify::short(&r.digest),
                actual: verify::short(&now),
            });
        }
        if !parent_digests.contains(&r.digest) {
            parent_digests.push(r.digest.clone());
        }
    }
    let step = match step {
        None => None,
        Some(s) => {
            if s.name.trim().is_empty() || s.command.trim().is_empty() {
                return Err(RecordError::Usage(
                    "--step and --command must not be empty".into(),
                ));
            }
            check_time(&s.started_at, "--started-at")?;
            check_time(&s.finished_at, "--finished-at")?;
            let mut code = Vec::new();
            for c in &s.code {
                let stored = stored_path(l, Path::new(c))?;
                let m = verify::hash_record_path(l, &stored, input.threads)?;
                code.push(CodeRef {
                    path: stored,
                    digest: format!("sha256:{}", m.root_digest_hex()),
                });
            }
            Some(Step {
                name: s.name.clone(),
                command: s.command.clone(),
                parameters: s.parameters.clone(),
                code,
                started_at: s.started_at.clone(),
                finished_at: s.finished_at.clone(),
                by: s.by.clone(),
            })
        }
    };
    let m = verify::hash_record_path(l, &path, input.threads)?;
    let (digest, files) = Record::content_from(&m);
    if parent_digests.contains(&digest) {
        return Err(RecordError::Usage(format!(
            "{} has the same content as its parent; nothing was derived",
            dir.display()
        )));
    }
    let rec = Record {
        name: input.name.clone(),
        version: input.version.clone(),
        path,
        digest,
        files,
        source: input.source.clone(),
        license: input.license.clone(),
        split: input.split.clone(),
        description: input.description.clone(),
        recorded_at: input.recorded_at.clone().unwrap_or_else(now_rfc3339),
        recorded_by: input.by.clone(),
        parents: parent_digests,
        step,
    };
    let label = rec.label();
    let existing = l.lineage.datasets.iter().position(|r| r.label() == label);
    let idx = match existing {
        Some(i) if input.replace => {
            let old = l.lineage.datasets[i].digest.clone();
            // Children name the old digest; re-point them only if nothing else changes, else
            // they would silently vouch for content they were not made from.
            if old != rec.digest && l.lineage.datasets.iter().any(|r| r.parents.contains(&old)) {
                return Err(RecordError::Usage(format!(
                    "{label:?} has derived datasets that were made from its recorded content; \
                     record the new content under a new --version instead"
                )));
            }
            l.lineage.datasets[i] = rec;
            i
        }
        Some(_) => {
            return Err(RecordError::Usage(format!(
                "{label:?} is already recorded in {}; use a new --version, or --replace",
                l.file.display()
            )))
        }
        None => {
            l.lineage.datasets.push(rec);
            l.lineage.datasets.len() - 1
        }
    };
    lineage::check(l)?;
    Ok(idx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, s: &str) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, s).unwrap();
    }

    #[test]
    fn replace_is_refused_under_derived_versions() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        write(&root.join("raw/a"), "1");
        write(&root.join("out/b"), "2");
        let mut l = load_or_new(&root.join("l.json")).unwrap();
        let raw = RecordInput {
            name: "raw".into(),
            ..Default::default()
        };
        record(&mut l, &root.join("raw"), &raw, &[], None).unwrap();
        let again = record(&mut l, &root.join("raw"), &raw, &[], None).unwrap_err();
        assert!(again.to_string().contains("already recorded"), "{again}");
        // Replacing without children is fine.
        write(&root.join("raw/a"), "1b");
        let replace = RecordInput {
            replace: true,
            ..raw.clone()
        };
        record(&mut l, &root.join("raw"), &replace, &[], None).unwrap();
        assert_eq!(l.lineage.datasets.len(), 1);
        let step = StepInput {
            name: "s".into(),
            command: "c".into(),
            ..Default::default()
        };
        let out = RecordInput {
            name: "out".into(),
            ..Default::default()
        };
        record(
            &mut l,
            &root.join("out"),
            &out,
            &["raw".into()],
            Some(&step),
        )
        .unwrap();
        write(&root.join("raw/a"), "1c");
        let e = record(&mut l, &root.join("raw"), &replace, &[], None).unwrap_err();
        assert!(e.to_string().contains("new --version"), "{e}");
        // Unknown parent, ambiguous and short digests are usage errors.
        for key in ["nope", "sha256:ab"] {
            let e =
                record(&mut l, &root.join("out"), &out, &[key.into()], Some(&step)).unwrap_err();
            assert!(matches!(e, RecordError::Usage(_)), "{e}");
        }
    }

    #[test]
    fn record_derive_verify_and_break() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        write(&root.join("data/raw/a.csv"), "x,y\n1,2\n");
        write(&root.join("data/proc/a.csv"), "x,y\n1,2\n3,4\n");
        write(&root.join("prep.py"), "print(1)\n");
        let lf = root.join("lineage.json");
        let mut l = load_or_new(&lf).unwrap();
        let raw = RecordInput {
            name: "raw".into(),
            source: Some("https://example.org/raw.csv".into()),
            license: Some("CC-BY-4.0".into()),
            ..Default::default()
        };
        record(&mut l, &root.join("data/raw"), &raw, &[], None).unwrap();
        let step = StepInput {
            name: "clean".into(),
            command: "python prep.py".into(),
            code: vec![root.join("prep.py").display().to_string()],
            ..Default::default()
        };
        let proc_ = RecordInput {
            name: "proc".into(),
            ..Default::default()
        };
        record(
            &mut l,
            &root.join("data/proc"),
            &proc_,
            &["raw".into()],
            Some(&step),
        )
        .unwrap();
        save(&l).unwrap();
        let l = load(&lf).unwrap();
        assert_eq!(l.lineage.datasets[0].path, "data/raw");
        assert_eq!(
            l.lineage.datasets[1].step.as_ref().unwrap().code[0].path,
            "prep.py"
        );
        let rep = verify(&l, &VerifyOptions::default()).unwrap();
        assert!(rep.ok(), "{:?}", rep.findings);

        // Change an upstream file: the raw dataset and the `clean` step are named.
        write(&root.join("data/raw/a.csv"), "x,y\n1,3\n");
        write(&root.join("prep.py"), "print(2)\n");
        let rep = verify(&l, &VerifyOptions::default()).unwrap();
        let codes: Vec<&str> = rep.findings.iter().map(|f| f.code).collect();
        assert!(codes.contains(&"DSL001"), "{codes:?}");
        assert!(codes.contains(&"DSL006"), "{codes:?}");
        let broken = rep.findings.iter().find(|f| f.code == "DSL005").unwrap();
        assert!(
            broken.message.contains("step \"clean\""),
            "{}",
            broken.message
        );
        assert!(!rep.datasets[0].ok && rep.datasets[1].ok);

        // Deriving from a changed parent is refused.
        let mut l2 = load(&lf).unwrap();
        let e = record(
            &mut l2,
            &root.join("data/proc"),
            &RecordInput {
                name: "p2".into(),
                ..Default::default()
            },
            &["raw".into()],
            Some(&step),
        )
        .unwrap_err();
        assert!(matches!(e, RecordError::ParentChanged { .. }), "{e}");
    }
}
