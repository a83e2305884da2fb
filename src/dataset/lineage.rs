//! The lineage file: one record per dataset version (raw, processed, each split) with its
//! manifest (per-file SHA-256 and the signing core's root digest), source, license and the step
//! that made it from its parents. Parents are named by digest, so the chain is hash-linked.
//!
//! Reading is strict: unknown keys, a root digest that does not match the recorded files,
//! duplicate versions or digests, parents that name no record, and cycles are errors that name
//! the place (`datasets[2] "train".parents[0]`).

use crate::digest::{self, Manifest, Resource};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub const FORMAT_VERSION: u32 = 1;
/// Lineage files larger than this are refused (one line per file of every dataset version).
pub const MAX_LINEAGE_BYTES: u64 = 256 << 20;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Lineage {
    pub mlsign_lineage: u32,
    #[serde(default)]
    pub datasets: Vec<Record>,
}

/// One dataset version.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Record {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Directory (or file), relative to the lineage file's directory unless absolute.
    pub path: String,
    /// `sha256:<hex>`: the signing core's manifest root digest over `files`.
    pub digest: String,
    pub files: Vec<FileEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// `train`, `validation`, `test`, … for split datasets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub recorded_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_by: Option<String>,
    /// Digests of the datasets this one was made from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<Step>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// POSIX path relative to the dataset root (`.` for a single-file dataset).
    pub path: String,
    pub sha256: String,
}

/// How a dataset was made from its parents.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Step {
    pub name: String,
    pub command: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub code: Vec<CodeRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// A script or code directory the step ran, pinned by its manifest root digest.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CodeRef {
    pub path: String,
    pub digest: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LineageError {
    #[error("{file}: {message}")]
    Read { file: String, message: String },
    #[error("{file}: {place}: {message}")]
    Invalid {
        file: String,
        place: String,
        message: String,
    },
    #[error("{file}: cycle in lineage: {chain}")]
    Cycle { file: String, chain: String },
    #[error("{0}")]
    Hash(String),
}

/// Why a record's file list is not a manifest. `index` is the position in `files`.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{source}")]
    Path {
        index: usize,
        #[source]
        source: Box<digest::Error>,
    },
    #[error("{value:?} is not hex")]
    NotHex { index: usize, value: String },
}

impl Record {
    /// `name` or `name@version`.
    pub fn label(&self) -> String {
        match &self.version {
            Some(v) => format!("{}@{v}", self.name),
            None => self.name.clone(),
        }
    }

    /// The digest's hex part.
    pub fn digest_hex(&self) -> &str {
        self.digest.strip_prefix("sha256:").unwrap_or(&self.digest)
    }

    /// The recorded files as a manifest (for diffing against disk).
    pub fn manifest(&self) -> Result<Manifest, RecordError> {
        let mut res = Vec::with_capacity(self.files.len());
        for (index, f) in self.files.iter().enumerate() {
            digest::check_resource_name(&f.path).map_err(|source| RecordError::Path {
                index,
                source: Box::new(source),
            })?;
            res.push(Resource {
                name: f.path.clone(),
                algorithm: "sha256".into(),
                digest: hex::decode(&f.sha256).map_err(|_| RecordError::NotHex {
                    index,
                    value: f.sha256.clone(),
                })?,
            });
        }
        Ok(Manifest::from_resources(res))
    }

    /// Build a record's content fields from a freshly computed manifest.
    pub fn content_from(m: &Manifest) -> (String, Vec<FileEntry>) {
        let files = m
            .resources()
            .iter()
            .map(|r| FileEntry {
                path: r.name.clone(),
                sha256: r.hex(),
            })
            .collect();
        (format!("sha256:{}", m.root_digest_hex()), files)
    }
}

/// A lineage file read from disk and checked, with its base directory.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub file: PathBuf,
    pub base: PathBuf,
    pub lineage: Lineage,
}

impl Loaded {
    /// Where a record's path lives on disk.
    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    pub fn by_digest(&self) -> HashMap<&str, usize> {
        self.lineage
            .datasets
            .iter()
            .enumerate()
            .map(|(i, r)| (r.digest.as_str(), i))
            .collect()
    }

    /// Indices of records whose parents include record `i`.
    pub fn children(&self, i: usize) -> Vec<usize> {
        let d = &self.lineage.datasets[i].digest;
        self.lineage
            .datasets
            .iter()
            .enumerate()
            .filter(|(_, r)| r.parents.contains(d))
            .map(|(j, _)| j)
            .collect()
    }

    /// Record indices with every parent before its children.
    pub fn topo_order(&self) -> Vec<usize> {
        // check() proved the graph acyclic, so this terminates.
        let by = self.by_digest();
        let mut done = vec![false; self.lineage.datasets.len()];
        let mut out = Vec::new();
        fn visit(
            i: usize,
            l: &Lineage,
            by: &HashMap<&str, usize>,
            done: &mut [bool],
            out: &mut Vec<usize>,
        ) {
            let mut stack = vec![(i, 0usize)];
            while let Some((n, k)) = stack.pop() {
                if done[n] {
                    continue;
                }
                let parents = &l.datasets[n].parents;
                if k < parents.len() {
                    stack.push((n, k + 1));
                    if let Some(&p) = by.get(parents[k].as_str()) {
                        if !done[p] {
                            stack.push((p, 0));
                        }
                    }
                } else {
                    done[n] = true;
                    out.push(n);
                }
            }
        }
        for i in 0..self.lineage.datasets.len() {
            visit(i, &self.lineage, &by, &mut done, &mut out);
        }
        out
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn place(i: usize, r: &Record) -> String {
    format!("datasets[{i}] {:?}", r.label())
}

/// Read and check a lineage file. A missing file is an error (use [`load_or_new`] to start one).
pub fn load(file: &Path) -> Result<Loaded, LineageError> {
    let shown = file.display().to_string();
    let read_err = |m: String| LineageError::Read {
        file: shown.clone(),
        message: m,
    };
    let meta = std::fs::metadata(file).map_err(|e| read_err(e.to_string()))?;
    if meta.len() > MAX_LINEAGE_BYTES {
        return Err(read_err(format!(
            "{} bytes is over the {MAX_LINEAGE_BYTES}-byte limit",
            meta.len()
        )));
    }
    let bytes = std::fs::read(file).map_err(|e| read_err(e.to_string()))?;
    from_bytes(&bytes, file)
}

/// Parse and check lineage bytes as if read from `file` (paths resolve against its directory).
pub fn from_bytes(bytes: &[u8], file: &Path) -> Result<Loaded, LineageError> {
    let shown = file.display().to_string();
    let read_err = |m: String| LineageError::Read {
        file: shown.clone(),
        message: m,
    };
    let lineage: Lineage = crate::json::from_slice(bytes).map_err(|e| {
        read_err(format!(
            "line {} column {}: {}",
            e.line(),
            e.column(),
            // serde's text already says `unknown field `x`, expected one of …`
            e.to_string().split(" at line ").next().unwrap_or_default()
        ))
    })?;
    let loaded = Loaded {
        file: file.to_path_buf(),
        base: file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf(),
        lineage,
    };
    check(&loaded)?;
    Ok(loaded)
}

/// Load an existing lineage file or start an empty one.
pub fn load_or_new(file: &Path) -> Result<Loaded, LineageError> {
    if file.exists() {
        load(file)
    } else {
        Ok(Loaded {
            file: file.to_path_buf(),
            base: file
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf(),
            lineage: Lineage {
                mlsign_lineage: FORMAT_VERSION,
                datasets: vec![],
            },
        })
    }
}

/// Structural checks: everything that can be decided without touching the datasets.
pub fn check(l: &Loaded) -> Result<(), LineageError> {
    let file = l.file.display().to_string();
    let bad = |place: String, message: String| LineageError::Invalid {
        file: file.clone(),
        place,
        message,
    };
    if l.lineage.mlsign_lineage != FORMAT_VERSION {
        return Err(bad(
            "mlsignLineage".into(),
            format!(
                "format version {} is not supported (this mlsign reads {FORMAT_VERSION})",
                l.lineage.mlsign_lineage
            ),
        ));
    }
    let mut labels: HashMap<String, usize> = HashMap::new();
    let mut digests: HashMap<&str, usize> = HashMap::new();
    for (i, r) in l.lineage.datasets.iter().enumerate() {
        let at = place(i, r);
        if r.name.trim().is_empty() {
            return Err(bad(format!("datasets[{i}].name"), "empty name".into()));
        }
        if r.path.is_empty() {
            return Err(bad(format!("{at}.path"), "empty path".into()));
        }
        if !r.digest.starts_with("sha256:") || !is_hex(r.digest_hex(), 64) {
            return Err(bad(
                format!("{at}.digest"),
                format!("{:?} is not sha256:<64 lower-case hex>", r.digest),
            ));
        }
        if r.files.is_empty() {
            return Err(bad(format!("{at}.files"), "no files recorded".into()));
        }
        for (j, f) in r.files.iter().enumerate() {
            if !is_hex(&f.sha256, 64) {
                return Err(bad(
                    format!("{at}.files[{j}].sha256"),
                    format!("{:?} is not 64 lower-case hex digits", f.sha256),
                ));
            }
            if let Err(e) = digest::check_resource_name(&f.path) {
                return Err(bad(format!("{at}.files[{j}].path"), e.to_string()));
            }
        }
        let m = r
            .manifest()
            .map_err(|e| bad(format!("{at}.files"), e.to_string()))?;
        if m.resources().len() != r.files.len()
            || m.resources().windows(2).any(|w| w[0].name == w[1].name)
        {
            return Err(bad(format!("{at}.files"), "a path is listed twice".into()));
        }
        let root = m.root_digest_hex();
        if root != r.digest_hex() {
            return Err(bad(
                format!("{at}.digest"),
                format!(
                    "does not match its files (their root digest is sha256:{root}); \
                     the record was edited by hand — record the dataset again"
                ),
            ));
        }
        if let Some(prev) = labels.insert(r.label(), i) {
            return Err(bad(
                at,
                format!("same name and version as datasets[{prev}]; give it a --version"),
            ));
        }
        if let Some(prev) = digests.insert(r.digest.as_str(), i) {
            return Err(bad(
                format!("{at}.digest"),
                format!(
                    "same content as datasets[{prev}] {:?}: parents are named by digest, so \
                     identical datasets must be recorded once",
                    l.lineage.datasets[prev].label()
                ),
            ));
        }
        if !r.parents.is_empty() && r.step.is_none() {
            return Err(bad(
                format!("{at}.step"),
                "a derived dataset must record the step that made it".into(),
            ));
        }
        if let Some(s) = &r.step {
            if s.name.trim().is_empty() || s.command.trim().is_empty() {
                return Err(bad(
                    format!("{at}.step"),
                    "step name and command must not be empty".into(),
                ));
            }
            for (k, c) in s.code.iter().enumerate() {
                if !c.digest.starts_with("sha256:") || !is_hex(&c.digest[7..], 64) {
                    return Err(bad(
                        format!("{at}.step.code[{k}].digest"),
                        format!("{:?} is not sha256:<64 hex>", c.digest),
                    ));
                }
            }
            for (k, t) in [&s.started_at, &s.finished_at].into_iter().enumerate() {
                if let Some(t) = t {
                    if time::OffsetDateTime::parse(
                        t,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .is_err()
                    {
                        let f = ["startedAt", "finishedAt"][k];
                        return Err(bad(
                            format!("{at}.step.{f}"),
                            format!("{t:?} is not an RFC 3339 time"),
                        ));
                    }
                }
            }
        }
    }
    for (i, r) in l.lineage.datasets.iter().enumerate() {
        for (j, p) in r.parents.iter().enumerate() {
            if !digests.contains_key(p.as_str()) {
                return Err(bad(
                    format!("{}.parents[{j}]", place(i, r)),
                    format!("{p} is not the digest of any dataset in this lineage"),
                ));
            }
        }
    }
    find_cycle(l).map_or(Ok(()), |chain| Err(LineageError::Cycle { file, chain }))
}

/// A cycle through parents, as `a -> b -> a`, if there is one.
fn find_cycle(l: &Loaded) -> Option<String> {
    let ds = &l.lineage.datasets;
    let by = l.by_digest();
    // 0 = unvisited, 1 = on the stack, 2 = done. Iterative DFS.
    let mut state = vec![0u8; ds.len()];
    for start in 0..ds.len() {
        if state[start] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = 1;
        while let Some(top) = stack.last_mut() {
            let (n, k) = *top;
            if k < ds[n].parents.len() {
                top.1 += 1;
                let p = by[ds[n].parents[k].as_str()];
                match state[p] {
                    0 => {
                        state[p] = 1;
                        stack.push((p, 0));
                    }
                    1 => {
                        let pos = stack.iter().position(|(x, _)| *x == p).unwrap_or(0);
                        let mut names: Vec<String> =
                            stack[pos..].iter().map(|(x, _)| ds[*x].label()).collect();
                        names.push(ds[p].label());
                        return Some(names.join(" -> "));
                    }
                    _ => {}
                }
            } else {
                state[n] = 2;
                stack.pop();
            }
        }
    }
    None
}

/// Write the lineage atomically (temp file in the same directory, then rename).
pub fn save(l: &Loaded) -> Result<(), LineageError> {
    let shown = l.file.display().to_string();
    let err = |m: String| LineageError::Read {
        file: shown.clone(),
        message: m,
    };
    let mut text = serde_json::to_string_pretty(&l.lineage).map_err(|e| err(e.to_string()))?;
    text.push('\n');
    crate::util::fs::write_public(&l.file, text.as_bytes(), true).map_err(|e| err(e.to_string()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn rec(name: &str, files: &[(&str, u8)], parents: &[&Record]) -> Record {
        let res = files
            .iter()
            .map(|(p, b)| Resource {
                name: p.to_string(),
                algorithm: "sha256".into(),
                digest: vec![*b; 32],
            })
            .collect();
        let (digest, files) = Record::content_from(&Manifest::from_resources(res));
        Record {
            name: name.into(),
            version: None,
            path: format!("data/{name}"),
            digest,
            files,
            source: None,
            license: None,
            split: None,
            description: None,
            recorded_at: "2026-01-01T00:00:00Z".into(),
            recorded_by: None,
            parents: parents.iter().map(|p| p.digest.clone()).collect(),
            step: (!parents.is_empty()).then(|| Step {
                name: format!("make-{name}"),
                command: "python make.py".into(),
                parameters: BTreeMap::new(),
                code: vec![],
                started_at: None,
                finished_at: None,
                by: None,
            }),
        }
    }

    fn loaded(ds: Vec<Record>) -> Loaded {
        Loaded {
            file: "lineage.json".into(),
            base: ".".into(),
            lineage: Lineage {
                mlsign_lineage: 1,
                datasets: ds,
            },
        }
    }

    #[test]
    fn record_files_that_are_no_manifest_name_the_entry() {
        let mut r = rec("raw", &[("a.csv", 1), ("b.csv", 2)], &[]);
        assert!(r.manifest().is_ok());
        r.files[1].sha256 = "zz".into();
        let e = r.manifest().unwrap_err();
        assert!(
            matches!(&e, RecordError::NotHex { index: 1, value } if value == "zz"),
            "{e:?}"
        );
        r.files[1].sha256 = "00".repeat(32);
        r.files[0].path = "../etc/passwd".into();
        let e = r.manifest().unwrap_err();
        assert!(matches!(e, RecordError::Path { index: 0, .. }), "{e:?}");
        assert!(e.to_string().contains("../etc/passwd"), "{e}");
    }

    #[test]
    fn good_chain_and_topo_order() {
        let raw = rec("raw", &[("a.csv", 1)], &[]);
        let proc_ = rec("proc", &[("a.parquet", 2)], &[&raw]);
        let train = rec("train", &[("t.parquet", 3)], &[&proc_]);
        let l = loaded(vec![train, proc_, raw]);
        check(&l).unwrap();
        assert_eq!(l.topo_order(), vec![2, 1, 0]);
        assert_eq!(l.children(2), vec![1]);
    }

    #[test]
    fn cycles_are_named() {
        let mut a = rec("a", &[("x", 1)], &[]);
        let b = rec("b", &[("y", 2)], &[&a]);
        a.parents = vec![b.digest.clone()];
        a.step = b.step.clone();
        let e = check(&loaded(vec![a, b])).unwrap_err().to_string();
        assert!(e.contains("cycle in lineage: a -> b -> a"), "{e}");
    }

    #[test]
    fn tampered_digest_dangling_parent_and_duplicates() {
        let raw = rec("raw", &[("a.csv", 1)], &[]);
        let mut bad = raw.clone();
        bad.files[0].sha256 = "00".repeat(32);
        let e = check(&loaded(vec![bad])).unwrap_err().to_string();
        assert!(
            e.contains("datasets[0] \"raw\".digest: does not match its files"),
            "{e}"
        );

        let mut orphan = rec("p", &[("b", 2)], &[&raw]);
        orphan.parents = vec![format!("sha256:{}", "ab".repeat(32))];
        let e = check(&loaded(vec![raw.clone(), orphan]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("datasets[1] \"p\".parents[0]"), "{e}");

        let e = check(&loaded(vec![raw.clone(), raw.clone()]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("datasets[1] \"raw\""), "{e}");

        let mut nostep = rec("q", &[("c", 3)], &[&raw]);
        nostep.step = None;
        let e = check(&loaded(vec![raw, nostep])).unwrap_err().to_string();
        assert!(e.contains(".step"), "{e}");
    }

    #[test]
    fn unknown_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("lineage.json");
        std::fs::write(&f, r#"{"mlsignLineage": 1, "datasets": [], "extra": 1}"#).unwrap();
        let e = load(&f).unwrap_err().to_string();
        assert!(e.contains("unknown field `extra`"), "{e}");
        assert!(e.contains("line 1"), "{e}");
    }
}
