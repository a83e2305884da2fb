//! Build the ML-BOM: the model (metadata.component) with its model card and every file hashed,
//! datasets from the lineage file and `--dataset` directories with per-file hashes, lineage as
//! dependencies + pedigree + formulation, and lockfile packages as libraries.
//!
//! Determinism: every list is sorted or in manifest order and maps are BTreeMaps, so the same
//! inputs give the same bytes except `serialNumber` and `metadata.timestamp` (`reproducible`
//! derives those from the content / SOURCE_DATE_EPOCH).

use super::cyclonedx::*;
use super::lockfiles::{self, LockedPackage};
use super::modelcard::{self, ModelFacts};
use super::validate::spdx_ids;
use super::BomError;
use crate::dataset::{self, Loaded, Record};
use crate::digest::{HashConfig, Manifest};
use crate::util::{sha256_hex, short};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component as PathComponent, Path, PathBuf};

/// Inputs of [`build`].
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub model: PathBuf,
    /// Component name (default: the directory name).
    pub name: Option<String>,
    pub version: Option<String>,
    pub datasets: Vec<PathBuf>,
    pub lineage: Option<PathBuf>,
    pub locks: Vec<PathBuf>,
    /// Directory the BOM will be written to: recorded paths are relative to it.
    pub out_dir: PathBuf,
    /// Fix serialNumber (from the content) and timestamp (SOURCE_DATE_EPOCH or the epoch).
    pub reproducible: bool,
    /// Extra `mlsign:*` properties on the model (signature / scan status), name → value.
    pub model_properties: Vec<Property>,
    /// Run `mlsign scan` (default policy) over every model file and record the verdicts.
    pub scan: bool,
    pub threads: Option<usize>,
    /// What the root component is: a model (default) or an application (a release binary with
    /// its lockfile: no model card, no base models).
    pub root: RootKind,
}

/// `component.type` of the BOM's root (`mlsign bom --type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RootKind {
    #[default]
    Model,
    Application,
}

impl BuildOptions {
    pub fn new(model: PathBuf) -> Self {
        BuildOptions {
            model,
            name: None,
            version: None,
            datasets: vec![],
            lineage: None,
            locks: vec![],
            out_dir: PathBuf::from("."),
            reproducible: false,
            model_properties: vec![],
            scan: false,
            threads: None,
            root: RootKind::Model,
        }
    }
}

/// Property names mlsign reads back (`bom verify`, `bom show`).
pub mod prop {
    pub const PATH: &str = "mlsign:path";
    pub const DIGEST_METHOD: &str = "mlsign:digest.method";
    pub const FILES: &str = "mlsign:files";
    pub const BYTES: &str = "mlsign:bytes";
    pub const SOURCE: &str = "mlsign:source";
    pub const STEP: &str = "mlsign:lineage.step";
    pub const LOCKFILE: &str = "mlsign:lockfile";
    pub const UNPINNED: &str = "mlsign:unpinned";
}

/// How the component-level SHA-256 of a model or dataset is computed (documented in docs/bom.md).
pub const DIGEST_METHOD: &str = "oms-root-sha256: SHA-256 over the concatenated per-file SHA-256 \
digests in OpenSSF model signing order (mlsign hash / model_signing subject digest)";

fn hash_tree(path: &Path, threads: Option<usize>) -> Result<Manifest, BomError> {
    let cfg = HashConfig {
        threads,
        ..HashConfig::default()
    };
    Manifest::from_path(path, &cfg).map_err(|e| BomError::Hash(e.to_string()))
}

/// `path` relative to `base` (both made absolute), with `..` where needed; POSIX separators.
pub fn relative_to(path: &Path, base: &Path) -> String {
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (p, b) = (abs(path), abs(base));
    let pc: Vec<PathComponent> = p.components().collect();
    let bc: Vec<PathComponent> = b.components().collect();
    let common = pc.iter().zip(&bc).take_while(|(a, b)| a == b).count();
    if common == 0 {
        return p.to_string_lossy().replace('\\', "/");
    }
    let mut parts: Vec<String> = vec!["..".into(); bc.len() - common];
    parts.extend(
        pc[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

/// A license string as CycloneDX: a known SPDX id, an expression, or a free-text name.
pub fn license(s: &str) -> LicenseChoice {
    let t = s.trim();
    if let Some(id) = spdx_ids().get(&t.to_ascii_lowercase()) {
        return LicenseChoice::License {
            license: License {
                id: Some(id.clone()),
                name: None,
                url: None,
            },
        };
    }
    let is_expr = [" AND ", " OR ", " WITH "].iter().any(|op| t.contains(op))
        && t.split_whitespace()
            .filter(|w| !matches!(*w, "AND" | "OR" | "WITH"))
            .all(|w| {
                let w = w.trim_matches(|c| c == '(' || c == ')');
                spdx_ids().contains_key(&w.to_ascii_lowercase()) || w.starts_with("LicenseRef-")
            });
    if is_expr {
        LicenseChoice::Expression {
            expression: t.to_string(),
        }
    } else {
        LicenseChoice::License {
            license: License {
                id: None,
                name: Some(t.to_string()),
                url: None,
            },
        }
    }
}

fn is_url(s: &str) -> bool {
    [
        "https://", "http://", "s3://", "gs://", "hf://", "file://", "git+", "ssh://",
    ]
    .iter()
    .any(|p| s.starts_with(p))
}

fn file_children(parent_ref: &str, m: &Manifest) -> Vec<Component> {
    m.resources()
        .iter()
        .map(|r| {
            let mut c = Component::new(ctype::FILE, r.name.clone());
            c.bom_ref = Some(format!("{parent_ref}/{}", r.name));
            c.hashes = vec![Hash::sha256(r.hex())];
            c
        })
        .collect()
}

fn tree_properties(path: &str, m: &Manifest) -> Vec<Property> {
    vec![
        Property::new(prop::PATH, path),
        Property::new(prop::DIGEST_METHOD, DIGEST_METHOD),
        Property::new(prop::FILES, m.resources().len().to_string()),
        Property::new(prop::BYTES, m.total_bytes.to_string()),
    ]
}

/// bom-ref of a dataset version.
pub fn data_ref(name: &str, digest_hex: &str) -> String {
    format!("data:{name}@{}", short(digest_hex))
}

/// Task type for a step name (CycloneDX has no "train"/"preprocess": see docs/bom.md).
fn task_type(step: &str) -> &'static str {
    let s = step.to_ascii_lowercase();
    let has = |ws: &[&str]| ws.iter().any(|w| s.contains(w));
    if has(&["train", "fit", "finetune", "fine-tune", "build", "distill"]) {
        "build"
    } else if has(&["eval", "test", "valid", "bench"]) {
        "test"
    } else if has(&[
        "clean",
        "prep",
        "filter",
        "dedup",
        "normal",
        "token",
        "transform",
    ]) {
        "clean"
    } else if has(&["download", "fetch", "copy", "ingest", "acquire"]) {
        "copy"
    } else if has(&["merge", "join", "concat", "mix"]) {
        "merge"
    } else {
        "other"
    }
}

struct DatasetComp {
    component: Component,
    digest: String,
}

fn record_component(
    l: &Loaded,
    r: &Record,
    out_dir: &Path,
    threads: Option<usize>,
) -> Result<DatasetComp, BomError> {
    // The BOM states what is on disk now: re-hash and refuse drift (fail closed).
    let on_disk = l.resolve(&r.path);
    let m = hash_tree(&on_disk, threads).map_err(|e| {
        BomError::Usage(format!(
            "{}: dataset {:?} ({}): {e}",
            l.file.display(),
            r.label(),
            r.path
        ))
    })?;
    if format!("sha256:{}", m.root_digest_hex()) != r.digest {
        return Err(BomError::DatasetChanged {
            lineage: l.file.clone(),
            label: r.label(),
            path: r.path.clone(),
            recorded: short(&r.digest),
        });
    }
    let hex = r.digest_hex().to_string();
    let bref = data_ref(&r.name, &hex);
    let mut c = Component::new(ctype::DATA, r.name.clone());
    c.bom_ref = Some(bref.clone());
    c.version = r.version.clone();
    c.description = r.description.clone();
    c.hashes = vec![Hash::sha256(hex.clone())];
    c.licenses = r.license.iter().map(|s| license(s)).collect();
    let mut props = tree_properties(&relative_to(&on_disk, out_dir), &m);
    let mut contents_props = vec![];
    if let Some(s) = &r.split {
        contents_props.push(Property::new("mlsign:split", s));
    }
    contents_props.push(Property::new("mlsign:recordedAt", &r.recorded_at));
    if let Some(b) = &r.recorded_by {
        contents_props.push(Property::new("mlsign:recordedBy", b));
    }
    let mut url = None;
    if let Some(src) = &r.source {
        if is_url(src) {
            url = Some(src.clone());
            c.external_references.push(ExternalReference {
                kind: "distribution".into(),
                url: src.clone(),
                comment: Some("where the raw data was obtained".into()),
                hashes: vec![],
            });
        } else {
            props.push(Property::new(prop::SOURCE, src));
        }
    }
    if let Some(step) = &r.step {
        props.push(Property::new(prop::STEP, &step.name));
    }
    c.properties = props;
    c.data = vec![ComponentData {
        kind: "dataset".into(),
        bom_ref: None,
        name: Some(r.label()),
        description: None,
        contents: Some(DataContents {
            url,
            properties: contents_props,
        }),
        classification: None,
    }];
    c.components = file_children(&bref, &m);
    Ok(DatasetComp {
        component: c,
        digest: r.digest.clone(),
    })
}

/// Build the BOM. Hashes the model, every dataset and checks the lineage against disk.
pub fn build(o: &BuildOptions) -> Result<Bom, BomError> {
    if !o.model.exists() {
        return Err(BomError::Usage(format!(
            "{}: model path does not exist",
            o.model.display()
        )));
    }
    let app = o.root == RootKind::Application;
    // An application has no model card: its README/config are not read as one.
    let facts: ModelFacts = if app {
        ModelFacts::default()
    } else {
        modelcard::extract(&o.model)
    };
    let (mut model, model_ref) = model_component(o, &facts, app)?;

    // Datasets: lineage records first (with their chain), then loose --dataset directories,
    // then what the model card names without pinning it.
    let mut g = Graph::default();
    let formulation = match &o.lineage {
        Some(p) => lineage_datasets(o, &dataset::load(p)?, &mut g)?,
        None => None,
    };
    loose_datasets(o, &mut g)?;
    unpinned_datasets(&facts, &mut g);
    if !app {
        model.model_card = Some(model_card(&facts, &model_ref, &g.card_datasets));
    }
    let libs = libraries(o, &mut g)?;
    let mut bom = assemble(model, model_ref, g, libs, formulation.into_iter().collect());
    stamp(&mut bom, o.reproducible)?;
    Ok(bom)
}

/// What the datasets and libraries add up to while the BOM is built.
#[derive(Default)]
struct Graph {
    /// Dataset components, in the order they were found.
    data: Vec<DatasetComp>,
    /// bom-ref → what it depends on (datasets on their parents, libraries on libraries).
    deps: BTreeMap<String, BTreeSet<String>>,
    /// What the root depends on directly.
    model_deps: BTreeSet<String>,
    /// The datasets the model card lists (`modelParameters.datasets`).
    card_datasets: BTreeSet<String>,
}

/// The root component: every file hashed, the card's facts, the scan verdicts if asked, and the
/// base models as pedigree. Returns it with its bom-ref.
fn model_component(
    o: &BuildOptions,
    facts: &ModelFacts,
    app: bool,
) -> Result<(Component, String), BomError> {
    let mm = hash_tree(&o.model, o.threads)?;
    let name = o.name.clone().unwrap_or_else(|| {
        std::fs::canonicalize(&o.model)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "model".into())
    });
    let (kind, prefix) = if app {
        (ctype::APPLICATION, "application")
    } else {
        (ctype::MODEL, "model")
    };
    let model_ref = format!("{prefix}:{name}");
    let mut model = Component::new(kind, name.clone());
    model.bom_ref = Some(model_ref.clone());
    model.version = o.version.clone();
    model.description = facts.description.clone();
    model.hashes = vec![Hash::sha256(mm.root_digest_hex())];
    model.licenses = facts.license.iter().map(|s| license(s)).collect();
    model.properties = tree_properties(&relative_to(&o.model, &o.out_dir), &mm);
    model.properties.extend(o.model_properties.iter().cloned());
    model.components = file_children(&model_ref, &mm);
    if o.scan {
        scan_model(&o.model, &mut model)?;
    }
    if !facts.base_models.is_empty() {
        model.pedigree = Some(Pedigree {
            ancestors: facts
                .base_models
                .iter()
                .map(|b| {
                    let mut a = Component::new(ctype::MODEL, b.clone());
                    a.purl = Some(format!(
                        "pkg:huggingface/{}",
                        b.split('/')
                            .map(lockfiles::purl_enc)
                            .collect::<Vec<_>>()
                            .join("/")
                    ));
                    a
                })
                .collect(),
            notes: Some("base model named in README.md front matter (base_model)".into()),
        });
    }
    Ok((model, model_ref))
}

/// The lineage file's records (re-hashed, drift refused), their dependencies and pedigree, and
/// the steps that made them as one formulation workflow (none when no record has a step).
fn lineage_datasets(
    o: &BuildOptions,
    l: &Loaded,
    g: &mut Graph,
) -> Result<Option<Formula>, BomError> {
    let Graph {
        data,
        deps,
        model_deps,
        card_datasets,
    } = g;
    let ds = &l.lineage.datasets;
    let refs: BTreeMap<&str, String> = ds
        .iter()
        .map(|r| (r.digest.as_str(), data_ref(&r.name, r.digest_hex())))
        .collect();
    let mut steps = Steps::default();
    for &i in &l.topo_order() {
        let r = &ds[i];
        let mut dc = record_component(l, r, &o.out_dir, o.threads)?;
        let my_ref = refs[r.digest.as_str()].clone();
        deps.entry(my_ref.clone())
            .or_default()
            .extend(r.parents.iter().map(|p| refs[p.as_str()].clone()));
        if !r.parents.is_empty() {
            dc.component.pedigree = Some(Pedigree {
                ancestors: r
                    .parents
                    .iter()
                    .map(|p| {
                        let pr = &ds[l.by_digest()[p.as_str()]];
                        let mut a = Component::new(ctype::DATA, pr.name.clone());
                        a.version = pr.version.clone();
                        a.hashes = vec![Hash::sha256(pr.digest_hex())];
                        a
                    })
                    .collect(),
                notes: r
                    .step
                    .as_ref()
                    .map(|s| format!("made by step {:?}: {}", s.name, s.command)),
            });
        }
        if let Some(s) = &r.step {
            steps.add(r, s, &my_ref, &refs);
        }
        data.push(dc);
    }
    // The model was trained on the leaves: versions nothing else was derived from.
    for (i, r) in ds.iter().enumerate() {
        if l.children(i).is_empty() {
            model_deps.insert(refs[r.digest.as_str()].clone());
            card_datasets.insert(refs[r.digest.as_str()].clone());
        }
    }
    Ok(steps.workflow(l))
}

/// The lineage steps as CycloneDX formulation tasks, built while the records are walked.
#[derive(Default)]
struct Steps<'l> {
    tasks: Vec<Task>,
    /// Record digest → the bom-ref of the task that made it.
    of: BTreeMap<&'l str, String>,
    /// One run's identity → its index in `tasks`.
    key: BTreeMap<String, usize>,
}

impl<'l> Steps<'l> {
    /// The task that made record `r` (bom-ref `my_ref`) by step `s`.
    fn add(
        &mut self,
        r: &'l Record,
        s: &crate::dataset::lineage::Step,
        my_ref: &str,
        refs: &BTreeMap<&str, String>,
    ) {
        // One run of a step that wrote several versions (a split) is one task with
        // several outputs: same step, command, parameters, code, parents and times.
        let mut parents_sorted = r.parents.clone();
        parents_sorted.sort();
        let key = serde_json::json!([
            s.name,
            s.command,
            s.parameters,
            s.code
                .iter()
                .map(|c| (&c.path, &c.digest))
                .collect::<Vec<_>>(),
            parents_sorted,
            s.started_at,
            s.finished_at,
            s.by
        ])
        .to_string();
        if let Some(&ti) = self.key.get(&key) {
            let t: &mut Task = &mut self.tasks[ti];
            t.outputs.push(TaskOutput {
                kind: Some("artifact".into()),
                resource: Some(ResourceRef {
                    reference: my_ref.to_string(),
                }),
            });
            t.description = Some(format!(
                "made {} version(s) from {} parent(s)",
                t.outputs.len(),
                r.parents.len()
            ));
            self.of.insert(r.digest.as_str(), t.bom_ref.clone());
            return;
        }
        self.key.insert(key, self.tasks.len());
        let task_ref = format!("task:{}", my_ref);
        let mut inputs: Vec<TaskInput> = r
            .parents
            .iter()
            .map(|p| TaskInput {
                resource: Some(ResourceRef {
                    reference: refs[p.as_str()].clone(),
                }),
                parameters: vec![],
            })
            .collect();
        if !s.parameters.is_empty() {
            inputs.push(TaskInput {
                resource: None,
                parameters: s
                    .parameters
                    .iter()
                    .map(|(k, v)| Parameter {
                        name: k.clone(),
                        value: v.clone(),
                    })
                    .collect(),
            });
        }
        let mut props = vec![Property::new("mlsign:step.name", &s.name)];
        for c in &s.code {
            props.push(Property::new(
                "mlsign:step.code",
                format!("{} {}", c.path, c.digest),
            ));
        }
        if let Some(b) = &s.by {
            props.push(Property::new("mlsign:step.by", b));
        }
        self.tasks.push(Task {
            bom_ref: task_ref.clone(),
            uid: format!("mlsign:{}:{}", s.name, r.digest),
            name: Some(s.name.clone()),
            description: Some(format!(
                "made {} from {} parent(s)",
                r.label(),
                r.parents.len()
            )),
            task_types: vec![task_type(&s.name).into()],
            steps: vec![super::cyclonedx::Step {
                name: Some(s.name.clone()),
                commands: vec![Command {
                    executed: Some(s.command.clone()),
                }],
            }],
            inputs,
            outputs: vec![TaskOutput {
                kind: Some("artifact".into()),
                resource: Some(ResourceRef {
                    reference: my_ref.to_string(),
                }),
            }],
            time_start: s.started_at.clone(),
            time_end: s.finished_at.clone(),
            properties: props,
        });
        self.of.insert(r.digest.as_str(), task_ref);
    }

    /// The workflow of every step, ordered by which task made which input; `None` without steps.
    fn workflow(self, l: &Loaded) -> Option<Formula> {
        if self.tasks.is_empty() {
            return None;
        }
        let ds = &l.lineage.datasets;
        // Task order: a task depends on the tasks that made its inputs.
        let mut order: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for r in ds {
            if let Some(t) = self.of.get(r.digest.as_str()) {
                order.entry(t.clone()).or_default().extend(
                    r.parents
                        .iter()
                        .filter_map(|p| self.of.get(p.as_str()).cloned()),
                );
            }
        }
        let task_deps: Vec<Dependency> = order
            .into_iter()
            .map(|(t, before)| Dependency {
                reference: t,
                depends_on: before.into_iter().collect(),
            })
            .collect();
        let mut types: Vec<String> = self
            .tasks
            .iter()
            .flat_map(|t| t.task_types.clone())
            .collect();
        types.sort();
        types.dedup();
        let chain: String = ds
            .iter()
            .map(|r| r.digest.as_str())
            .collect::<Vec<_>>()
            .join(",");
        Some(Formula {
            bom_ref: Some("formulation:lineage".into()),
            workflows: vec![Workflow {
                bom_ref: "workflow:lineage".into(),
                uid: format!("mlsign-lineage:{}", short(&sha256_hex(chain.as_bytes()))),
                name: Some("dataset lineage".into()),
                description: Some(format!(
                    "steps recorded in {} (mlsign dataset)",
                    l.file
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                )),
                task_types: types,
                tasks: self.tasks,
                task_dependencies: task_deps,
            }],
            properties: vec![],
        })
    }
}

/// `--dataset` directories not already described by a lineage record.
fn loose_datasets(o: &BuildOptions, g: &mut Graph) -> Result<(), BomError> {
    let Graph {
        data,
        deps,
        model_deps,
        card_datasets,
    } = g;
    for d in &o.datasets {
        let m = hash_tree(d, o.threads)
            .map_err(|e| BomError::Usage(format!("--dataset {}: {e}", d.display())))?;
        let hex = m.root_digest_hex();
        let digest = format!("sha256:{hex}");
        if let Some(existing) = data.iter().find(|x| x.digest == digest) {
            // Same content as a lineage record: that record already describes it.
            model_deps.insert(existing.component.bom_ref.clone().unwrap_or_default());
            card_datasets.insert(existing.component.bom_ref.clone().unwrap_or_default());
            continue;
        }
        let name = std::fs::canonicalize(d)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "dataset".into());
        let bref = data_ref(&name, &hex);
        let mut c = Component::new(ctype::DATA, name.clone());
        c.bom_ref = Some(bref.clone());
        c.hashes = vec![Hash::sha256(hex.clone())];
        c.properties = tree_properties(&relative_to(d, &o.out_dir), &m);
        c.data = vec![ComponentData {
            kind: "dataset".into(),
            name: Some(name),
            ..Default::default()
        }];
        c.components = file_children(&bref, &m);
        model_deps.insert(bref.clone());
        card_datasets.insert(bref.clone());
        deps.entry(bref).or_default();
        data.push(DatasetComp {
            component: c,
            digest,
        });
    }
    Ok(())
}

/// Datasets the model card names but nobody pinned: listed, marked unpinned.
fn unpinned_datasets(facts: &ModelFacts, g: &mut Graph) {
    let Graph {
        data,
        deps,
        model_deps,
        card_datasets,
    } = g;
    let pinned_names: BTreeSet<String> = data.iter().map(|d| d.component.name.clone()).collect();
    for n in &facts.datasets {
        if pinned_names.contains(n) {
            if let Some(d) = data.iter().find(|d| &d.component.name == n) {
                card_datasets.insert(d.component.bom_ref.clone().unwrap_or_default());
            }
            continue;
        }
        let bref = format!("data:hf:{n}");
        if data
            .iter()
            .any(|d| d.component.bom_ref.as_deref() == Some(&bref))
        {
            continue;
        }
        let mut c = Component::new(ctype::DATA, n.clone());
        c.bom_ref = Some(bref.clone());
        c.external_references.push(ExternalReference {
            kind: "website".into(),
            url: format!("https://huggingface.co/datasets/{n}"),
            comment: Some("named in README.md front matter; not pinned by content".into()),
            hashes: vec![],
        });
        c.properties = vec![Property::new(prop::UNPINNED, "true")];
        c.data = vec![ComponentData {
            kind: "dataset".into(),
            name: Some(n.clone()),
            ..Default::default()
        }];
        model_deps.insert(bref.clone());
        card_datasets.insert(bref.clone());
        deps.entry(bref).or_default();
        data.push(DatasetComp {
            component: c,
            digest: String::new(),
        });
    }
}

/// The model card, listing the datasets the model was trained on.
fn model_card(facts: &ModelFacts, model_ref: &str, card_datasets: &BTreeSet<String>) -> ModelCard {
    let mut card = facts.model_card(format!("{model_ref}#modelCard"));
    if let Some(p) = card.model_parameters.as_mut() {
        p.datasets = card_datasets
            .iter()
            .map(|r| DatasetChoice::Ref {
                reference: r.clone(),
            })
            .collect();
    }
    card
}

/// Libraries from the lockfiles, with their dependency edges; the lockfiles' roots become direct
/// dependencies of the model.
fn libraries(o: &BuildOptions, g: &mut Graph) -> Result<BTreeMap<String, Component>, BomError> {
    let Graph {
        deps, model_deps, ..
    } = g;
    let mut libs: BTreeMap<String, Component> = BTreeMap::new();
    for lock in &o.locks {
        let pkgs = lockfiles::load(lock)?;
        let lock_name = lock
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let refs: BTreeMap<String, String> = pkgs
            .iter()
            .map(|p| (p.key(), lib_ref(p, &lock_name)))
            .collect();
        let mut depended: BTreeSet<String> = BTreeSet::new();
        for p in &pkgs {
            let bref = refs[&p.key()].clone();
            let on: BTreeSet<String> = p
                .dependencies
                .iter()
                .filter_map(|d| refs.get(d).cloned())
                .collect();
            depended.extend(on.iter().cloned());
            deps.entry(bref.clone()).or_default().extend(on);
            let c = libs.entry(bref.clone()).or_insert_with(|| {
                let mut c = Component::new(ctype::LIBRARY, p.name.clone());
                c.bom_ref = Some(bref.clone());
                c.version = p.version.clone();
                c.purl = p.purl.clone();
                c
            });
            c.hashes.extend(p.hashes.iter().cloned());
            c.hashes.sort();
            c.hashes.dedup();
            let lp = Property::new(prop::LOCKFILE, &lock_name);
            if !c.properties.contains(&lp) {
                c.properties.push(lp);
            }
            if let Some(s) = &p.source {
                let sp = Property::new(prop::SOURCE, s);
                if !c.properties.contains(&sp) {
                    c.properties.push(sp);
                }
            }
            c.properties.sort();
        }
        for p in &pkgs {
            let r = &refs[&p.key()];
            if !depended.contains(r) {
                model_deps.insert(r.clone());
            }
        }
    }
    Ok(libs)
}

/// The document: dependencies and components in a stable order, the tool, the root.
fn assemble(
    model: Component,
    model_ref: String,
    g: Graph,
    libs: BTreeMap<String, Component>,
    formulation: Vec<Formula>,
) -> Bom {
    let Graph {
        data,
        deps,
        model_deps,
        ..
    } = g;
    let mut dependencies: Vec<Dependency> = vec![Dependency {
        reference: model_ref.clone(),
        depends_on: model_deps.into_iter().collect(),
    }];
    dependencies.extend(deps.into_iter().map(|(r, on)| Dependency {
        reference: r,
        depends_on: on.into_iter().collect(),
    }));
    dependencies.sort_by(|a, b| a.reference.cmp(&b.reference));

    let mut components: Vec<Component> = data.into_iter().map(|d| d.component).collect();
    components.sort_by(|a, b| a.bom_ref.cmp(&b.bom_ref));
    components.extend(libs.into_values());

    Bom {
        schema: Some(SCHEMA_URL.into()),
        bom_format: "CycloneDX".into(),
        spec_version: SPEC_VERSION.into(),
        serial_number: None,
        version: 1,
        metadata: Some(Metadata {
            timestamp: None,
            lifecycles: vec![Lifecycle {
                phase: "build".into(),
            }],
            tools: Some(Tools {
                components: vec![{
                    let mut t = Component::new(ctype::APPLICATION, "mlsign");
                    t.version = Some(env!("CARGO_PKG_VERSION").into());
                    t
                }],
            }),
            component: Some(Box::new(model)),
            properties: vec![],
        }),
        components,
        dependencies,
        formulation,
        properties: vec![],
    }
}

/// Scan every model file with the default policy: `mlsign:scan.verdict` on each file that is not
/// clean, and an overall verdict + finding count on the model.
fn scan_model(root: &Path, model: &mut Component) -> Result<(), BomError> {
    use crate::scan::{scan_file, Policy, Verdict};
    let policy = Policy::default();
    let mut overall = Verdict::Clean;
    let mut count = 0usize;
    for f in &mut model.components {
        let path = if f.name == "." {
            root.to_path_buf()
        } else {
            root.join(&f.name)
        };
        let rep = scan_file(&path, &policy).map_err(|e| BomError::Hash(e.to_string()))?;
        // Informational findings (format identified, …) do not count.
        let bad: Vec<_> = rep
            .findings
            .iter()
            .filter(|x| x.verdict() != Verdict::Clean)
            .collect();
        count += bad.len();
        overall = overall.max(rep.verdict);
        if rep.verdict != Verdict::Clean {
            f.properties
                .push(Property::new("mlsign:scan.verdict", rep.verdict.as_str()));
            let mut codes: Vec<&str> = bad.iter().map(|x| x.code).collect();
            codes.sort_unstable();
            codes.dedup();
            f.properties
                .push(Property::new("mlsign:scan.codes", codes.join(",")));
        }
    }
    model
        .properties
        .push(Property::new("mlsign:scan.verdict", overall.as_str()));
    model
        .properties
        .push(Property::new("mlsign:scan.problems", count.to_string()));
    model.properties.push(Property::new(
        "mlsign:scan.policy",
        format!("mlsign {} default policy", env!("CARGO_PKG_VERSION")),
    ));
    Ok(())
}

fn lib_ref(p: &LockedPackage, lock_name: &str) -> String {
    match &p.purl {
        Some(purl) if p.source.is_none() => purl.clone(),
        Some(purl) => format!("{purl}#{lock_name}"),
        None => format!("lock:{lock_name}:{}", p.key()),
    }
}

/// Set serialNumber and timestamp: random + now, or derived from the content + fixed time.
pub fn stamp(bom: &mut Bom, reproducible: bool) -> Result<(), BomError> {
    let ts = if reproducible {
        let epoch: i64 = std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        time::OffsetDateTime::from_unix_timestamp(epoch)
            .map_err(|e| BomError::Usage(format!("SOURCE_DATE_EPOCH: {e}")))?
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| BomError::Usage(e.to_string()))?
    } else {
        crate::util::now_rfc3339()
    };
    if let Some(m) = bom.metadata.as_mut() {
        m.timestamp = Some(ts);
    }
    bom.serial_number = None;
    let mut bytes = [0u8; 16];
    if reproducible {
        let body = super::to_json(bom)?;
        let d = hex::decode(sha256_hex(body.as_bytes())).unwrap_or_default();
        bytes.copy_from_slice(&d[..16]);
    } else {
        use rand_core::RngCore;
        rand_core::OsRng.fill_bytes(&mut bytes);
    }
    // RFC 4122 variant; version 5 (name-based) / 4 (random): the schema accepts versions 1–5.
    bytes[6] = (bytes[6] & 0x0f) | if reproducible { 0x50 } else { 0x40 };
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let h = hex::encode(bytes);
    bom.serial_number = Some(format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn licenses_map_to_spdx() {
        assert_eq!(license("apache-2.0").label(), "Apache-2.0");
        assert!(matches!(
            license("MIT OR Apache-2.0"),
            LicenseChoice::Expression { .. }
        ));
        assert!(matches!(
            license("llama2"),
            LicenseChoice::License {
                license: License { name: Some(_), .. }
            }
        ));
        assert!(matches!(
            license("my AND weird"),
            LicenseChoice::License { .. }
        ));
    }

    #[test]
    fn task_types() {
        assert_eq!(task_type("train-bert"), "build");
        assert_eq!(task_type("preprocess"), "clean");
        assert_eq!(task_type("split"), "other");
        assert_eq!(task_type("evaluate"), "test");
    }

    #[test]
    fn relative_paths() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        std::fs::create_dir_all(d.path().join("c")).unwrap();
        assert_eq!(
            relative_to(&d.path().join("a/b"), &d.path().join("c")),
            "../a/b"
        );
        assert_eq!(relative_to(&d.path().join("a/b"), d.path()), "a/b");
        assert_eq!(relative_to(d.path(), d.path()), ".");
    }
}
