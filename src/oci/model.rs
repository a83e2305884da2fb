//! Models as OCI artifacts: CNCF ModelPack (and its older `cnai` spelling) written and read,
//! KitOps ModelKits read. A raw ModelPack layer is the file itself, so its digest is the file's
//! SHA-256: the artifact's `filepath → digest` map can be compared with a signed OMS manifest
//! without fetching a layer.

use super::client::{Client, Options, OCI_MANIFEST};
use super::manifest::{to_bytes, Descriptor, ImageManifest};
use super::reference::Reference;
use super::Error;
use crate::digest::{check_resource_name, HashConfig, Manifest};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub const MODELPACK_ARTIFACT: &str = "application/vnd.cncf.model.manifest.v1+json";
pub const MODELPACK_CONFIG: &str = "application/vnd.cncf.model.config.v1+json";
pub const MODELPACK_FILEPATH: &str = "org.cncf.model.filepath";
const CNAI_ARTIFACT: &str = "application/vnd.cnai.model.manifest.v1+json";
const CNAI_CONFIG: &str = "application/vnd.cnai.model.config.v1+json";
const CNAI_FILEPATH: &str = "org.cnai.model.filepath";
pub const KITOPS_CONFIG: &str = "application/vnd.kitops.modelkit.config.v1+json";
const KITOPS_ARTIFACT: &str = "application/vnd.kitops.modelkit.manifest.v1+json";

/// What kind of model artifact a manifest is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelFormat {
    /// CNCF ModelPack (`vnd.cncf.model.*` or the older `vnd.cnai.model.*`).
    ModelPack,
    /// KitOps ModelKit (tar layers described by a Kitfile).
    KitOps,
}

impl ModelFormat {
    pub fn name(self) -> &'static str {
        match self {
            ModelFormat::ModelPack => "CNCF ModelPack",
            ModelFormat::KitOps => "KitOps ModelKit",
        }
    }
}

/// A layer of a model artifact.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ModelLayer {
    /// Where the layer goes (raw: the file; tar: the directory it unpacks into, `.` for root).
    pub path: Option<String>,
    pub digest: String,
    pub size: u64,
    pub media_type: String,
    /// A raw layer is exactly one file's bytes.
    pub raw: bool,
    /// gzip-compressed tar.
    pub gzip: bool,
}

/// The model view of a manifest.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ModelLayout {
    pub format: ModelFormat,
    pub layers: Vec<ModelLayer>,
}

/// Is the manifest a model artifact? `None` for ordinary images and other artifacts.
pub fn layout(m: &ImageManifest) -> Option<ModelLayout> {
    let cfg = m.config.media_type.as_str();
    let art = m.artifact_type.as_deref().unwrap_or("");
    let format = if art == MODELPACK_ARTIFACT
        || art == CNAI_ARTIFACT
        || cfg == MODELPACK_CONFIG
        || cfg == CNAI_CONFIG
    {
        ModelFormat::ModelPack
    } else if cfg == KITOPS_CONFIG || art == KITOPS_ARTIFACT {
        ModelFormat::KitOps
    } else {
        return None;
    };
    let layers = m
        .layers
        .iter()
        .map(|l| {
            let mt = l.media_type.as_str();
            let raw = format == ModelFormat::ModelPack && mt.ends_with(".raw");
            let gzip = mt.ends_with("+gzip");
            let path = l
                .annotations
                .get(MODELPACK_FILEPATH)
                .or_else(|| l.annotations.get(CNAI_FILEPATH))
                .cloned();
            ModelLayer {
                path,
                digest: l.digest.clone(),
                size: l.size,
                media_type: l.media_type.clone(),
                raw,
                gzip,
            }
        })
        .collect();
    Some(ModelLayout { format, layers })
}

/// Validate one artifact file path the way the pull writes it: relative, no `..`, no empty or
/// `.` components, no backslash or NUL.
pub fn check_path(p: &str, what: &str) -> Result<(), Error> {
    if p == "." {
        return Err(Error::UnsafePath {
            what: what.into(),
            path: p.into(),
            why: "names the directory itself".into(),
        });
    }
    check_resource_name(p).map_err(|e| Error::UnsafePath {
        what: what.into(),
        path: p.into(),
        why: match e {
            crate::digest::Error::UnsafeName { why, .. } => why.to_string(),
            other => other.to_string(),
        },
    })
}

impl ModelLayout {
    /// `filepath → sha256 hex` of the raw layers; refuses unsafe, repeated or nested paths and
    /// layers listed twice. `Err(Malformed)` when a layer is not raw (tar layers can only be
    /// checked by pulling them).
    pub fn file_map(&self, what: &str) -> Result<BTreeMap<String, String>, Error> {
        let mut map = BTreeMap::new();
        let mut seen_digests = BTreeSet::new();
        for (i, l) in self.layers.iter().enumerate() {
            if !l.raw {
                return Err(Error::malformed(
                    what,
                    format!(
                        "layer {i} ({}) is not a raw file layer; its files can only be checked by pulling it",
                        l.media_type
                    ),
                ));
            }
            let p = l.path.as_deref().ok_or_else(|| {
                Error::malformed(
                    what,
                    format!("layer {i} has no {MODELPACK_FILEPATH} annotation"),
                )
            })?;
            check_path(p, what)?;
            if !seen_digests.insert((p.to_string(), l.digest.clone())) {
                return Err(Error::malformed(
                    what,
                    format!("layer {} ({p}) is listed twice", l.digest),
                ));
            }
            let hex = l.digest.trim_start_matches("sha256:").to_string();
            if map.insert(p.to_string(), hex).is_some() {
                return Err(Error::UnsafePath {
                    what: what.into(),
                    path: p.into(),
                    why: "two layers claim this path".into(),
                });
            }
        }
        check_no_nesting(map.keys().map(String::as_str), what)?;
        Ok(map)
    }
}

/// A path may not be both a file and a directory (`a` and `a/b`).
fn check_no_nesting<'a>(paths: impl Iterator<Item = &'a str>, what: &str) -> Result<(), Error> {
    let all: BTreeSet<&str> = paths.collect();
    for p in &all {
        let mut prefix = String::new();
        for part in p.split('/') {
            if !prefix.is_empty() {
                if all.contains(prefix.as_str()) {
                    return Err(Error::UnsafePath {
                        what: what.into(),
                        path: (*p).into(),
                        why: format!("{prefix:?} is a file, so it cannot hold {p:?}"),
                    });
                }
                prefix.push('/');
            }
            prefix.push_str(part);
        }
    }
    Ok(())
}

/// ModelPack layer role of a file, from its name.
pub fn role(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    let top = path.split('/').next().unwrap_or("").to_ascii_lowercase();
    if path.contains('/') && matches!(top.as_str(), "data" | "dataset" | "datasets") {
        return "dataset";
    }
    match ext {
        "safetensors" | "bin" | "pt" | "pth" | "gguf" | "onnx" | "h5" | "keras" | "ckpt" | "pb"
        | "tflite" | "msgpack" | "npz" | "npy" | "joblib" | "pkl" | "pickle" | "mlmodel" | "ot"
        | "model" => "weight",
        "py" | "sh" | "ipynb" | "js" | "ts" | "rs" | "go" | "c" | "cpp" | "h" | "java" => "code",
        "md" | "rst" | "pdf" | "html" => "doc",
        "csv" | "parquet" | "jsonl" | "arrow" | "tfrecord" => "dataset",
        "json" | "yaml" | "yml" | "toml" | "txt" | "tiktoken" | "vocab" | "spm" => {
            if name.starts_with("readme") || name.starts_with("license") {
                "doc"
            } else {
                "weight.config"
            }
        }
        _ if name.starts_with("readme") || name.starts_with("license") || name == "notice" => "doc",
        _ => "weight",
    }
}

fn media_type_for(path: &str) -> String {
    format!("application/vnd.cncf.model.{}.v1.raw", role(path))
}

/// `createdAt`: SOURCE_DATE_EPOCH when set (reproducible pushes), else now.
pub fn now_rfc3339() -> String {
    let t = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or_else(time::OffsetDateTime::now_utc);
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The ModelPack config: descriptor (name, family, licenses, createdAt), config (architecture,
/// format, precision) and modelfs (layer diffIds) from `config.json` and the model card.
pub fn model_config(dir: &Path, name: &str, files: &[(String, String)]) -> Vec<u8> {
    let facts = crate::bom::modelcard::extract(dir);
    let mut descriptor = serde_json::Map::new();
    descriptor.insert("name".into(), json!(name));
    descriptor.insert("createdAt".into(), json!(now_rfc3339()));
    if let Some(f) = &facts.family {
        descriptor.insert("family".into(), json!(f));
    }
    if let Some(l) = &facts.license {
        descriptor.insert("licenses".into(), json!([l]));
    }
    if let Some(d) = &facts.description {
        descriptor.insert("description".into(), json!(d));
    }
    let mut config = serde_json::Map::new();
    if let Some(a) = &facts.architecture {
        config.insert("architecture".into(), json!(a));
    }
    let formats: BTreeSet<&str> = files
        .iter()
        .filter(|(p, _)| role(p) == "weight")
        .filter_map(|(p, _)| p.rsplit_once('.').map(|(_, e)| e))
        .collect();
    if formats.len() == 1 {
        config.insert("format".into(), json!(formats.iter().next()));
    }
    // precision: torch_dtype from config.json, when given.
    if let Ok(text) = std::fs::read(dir.join("config.json")) {
        if text.len() < (4 << 20) {
            if let Some(dt) = serde_json::from_slice::<Value>(&text).ok().and_then(|v| {
                v.get("torch_dtype")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            }) {
                config.insert("precision".into(), json!(dt));
            }
        }
    }
    let diff_ids: Vec<String> = files.iter().map(|(_, d)| format!("sha256:{d}")).collect();
    let v = json!({
        "descriptor": descriptor,
        "config": config,
        "modelfs": {"type": "layers", "diffIds": diff_ids},
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

/// What a push did.
#[derive(Debug, serde::Serialize)]
pub struct PushOutcome {
    pub reference: String,
    pub digest: String,
    pub files: usize,
    pub bytes: u64,
    /// Bytes actually uploaded (blobs the registry already had are skipped).
    pub uploaded: u64,
    pub signature: Option<super::AttachOutcome>,
    pub root_digest: String,
}

/// Push a model directory as a ModelPack artifact under `r` (a tag). One raw layer per file of
/// the directory's OMS manifest (git paths ignored, as `mlsign sign` does); with `signer`, the
/// OMS bundle of the directory is attached as a referrer.
pub fn push_model(
    dir: &Path,
    r: &Reference,
    opts: &Options,
    signer: Option<&crate::attest::Signer>,
) -> Result<PushOutcome, Error> {
    push_model_with(
        dir,
        r,
        opts,
        signer.map(|s| s as &dyn super::StatementSigner),
    )
}

/// [`push_model`] with any [`super::StatementSigner`] (keyless: [`super::KeylessSigner`]).
pub fn push_model_with(
    dir: &Path,
    r: &Reference,
    opts: &Options,
    signer: Option<&dyn super::StatementSigner>,
) -> Result<PushOutcome, Error> {
    let root = std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
    if !root.is_dir() {
        return Err(Error::NotAModel(
            root.display().to_string(),
            "push takes a model directory".into(),
        ));
    }
    if r.tag.is_none() || r.digest.is_some() {
        return Err(Error::Reference {
            input: r.to_string(),
            why: "push needs a tag (oci://HOST/REPO:TAG), not a digest".into(),
        });
    }
    let config = HashConfig {
        ignore_paths: crate::digest::GIT_PATHS
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ..HashConfig::default()
    };
    let manifest = Manifest::from_path(&root, &config)?;
    if manifest.file_count == 0 {
        return Err(Error::Digest(crate::digest::Error::Empty {
            path: root.clone(),
        }));
    }
    let name = root
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("model")
        .to_string();
    let files: Vec<(String, String)> = manifest
        .resources()
        .iter()
        .map(|res| (res.name.clone(), res.hex()))
        .collect();
    for (p, _) in &files {
        check_path(p, &root.display().to_string())?;
    }
    let client = Client::new(r, opts)?;
    // Sign before uploading: the statement needs only the files, and a signing failure (a
    // keyless service down, a token expired) then leaves nothing unsigned in the registry.
    let bundle = match signer {
        Some(s) => Some(s.bundle_for(&super::oms_statement_for(
            &name,
            &manifest,
            &config,
            &r.repository_name(),
        ))?),
        None => None,
    };
    let repo = &r.repository;
    let mut uploaded = 0u64;
    let mut layers = Vec::with_capacity(files.len());
    for (p, hex) in &files {
        // Symlinks were refused by the walk, so the name is the file.
        let path = root.join(p);
        let size = std::fs::metadata(&path)
            .map_err(|e| Error::io(&path, e))?
            .len();
        let digest = format!("sha256:{hex}");
        if client.push_blob_file(repo, &digest, &path, &format!("push {p}"))? {
            uploaded = uploaded.saturating_add(size);
        }
        let mut ann = BTreeMap::new();
        ann.insert(MODELPACK_FILEPATH.to_string(), p.clone());
        layers.push(Descriptor {
            media_type: media_type_for(p),
            digest,
            size,
            artifact_type: None,
            annotations: ann,
        });
    }
    let cfg = model_config(&root, &name, &files);
    let cfg_digest = client.push_blob_bytes(repo, &cfg, "push model config")?;
    let mut annotations = BTreeMap::new();
    annotations.insert(super::cosign::ANN_CREATED.to_string(), now_rfc3339());
    let m = ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.into()),
        artifact_type: Some(MODELPACK_ARTIFACT.into()),
        config: Descriptor {
            media_type: MODELPACK_CONFIG.into(),
            digest: cfg_digest,
            size: cfg.len() as u64,
            artifact_type: None,
            annotations: BTreeMap::new(),
        },
        layers,
        subject: None,
        annotations,
    };
    let bytes = to_bytes(&m);
    let tag = r.tag.as_deref().unwrap_or("latest");
    client.put_manifest(repo, tag, OCI_MANIFEST, &bytes, "push model manifest")?;
    let digest = super::client::sha256_digest(&bytes);
    let signature = match bundle {
        Some(bundle) => {
            let subject = Descriptor {
                media_type: OCI_MANIFEST.into(),
                digest: digest.clone(),
                size: bytes.len() as u64,
                artifact_type: None,
                annotations: BTreeMap::new(),
            };
            Some(super::attach_bundle(
                &client,
                r,
                &subject,
                &bundle,
                crate::attest::PREDICATE_V1,
            )?)
        }
        None => None,
    };
    Ok(PushOutcome {
        reference: r.at_digest(&digest).to_string(),
        digest,
        files: files.len(),
        bytes: manifest.total_bytes,
        uploaded,
        signature,
        root_digest: manifest.root_digest_hex(),
    })
}

/// What a pull wrote.
#[derive(Debug, serde::Serialize)]
pub struct PullOutcome {
    pub reference: String,
    pub digest: String,
    pub format: ModelFormat,
    pub directory: PathBuf,
    pub files: usize,
    pub bytes: u64,
    pub verified: Option<super::verify::VerifyOutcome>,
}

/// Pull a model artifact into `dest` (which must not exist): every blob streamed into a temp
/// directory beside `dest` with its size and digest checked, then one rename. Nothing is left
/// behind on failure. With `trust`, the signature is verified first and the verified digest is
/// what gets pulled.
pub fn pull_model(
    r: &Reference,
    dest: &Path,
    opts: &Options,
    trust: Option<&crate::attest::Trust>,
) -> Result<PullOutcome, Error> {
    if dest.symlink_metadata().is_ok() {
        return Err(Error::Exists { path: dest.into() });
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let client = Client::new(r, opts)?;
    let (verified, pinned) = match trust {
        Some(t) => {
            let v = super::verify::verify_with(&client, r, t)?;
            if !v.verified {
                return Err(Error::NotVerified(Box::new(v)));
            }
            let d = v.digest.clone();
            (Some(v), r.at_digest(&d))
        }
        None => (None, r.clone()),
    };
    let fetched = client.get_manifest(&pinned, "pull: manifest")?;
    let what = format!("{r}");
    let m = ImageManifest::parse(&fetched.bytes, &what)?;
    let lay = layout(&m).ok_or_else(|| {
        Error::NotAModel(
            what.clone(),
            format!("artifact type {:?} is not ModelPack or KitOps", m.kind()),
        )
    })?;
    // Decide every path before writing anything.
    let mut plan: Vec<(&ModelLayer, Option<String>)> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut seen_layers = BTreeSet::new();
    for (i, l) in lay.layers.iter().enumerate() {
        if !seen_layers.insert((l.digest.clone(), l.path.clone())) {
            return Err(Error::malformed(
                &what,
                format!("layer {} is listed twice", l.digest),
            ));
        }
        if l.raw {
            let p = l.path.clone().ok_or_else(|| {
                Error::malformed(
                    &what,
                    format!("raw layer {i} has no {MODELPACK_FILEPATH} annotation"),
                )
            })?;
            check_path(&p, &what)?;
            if !seen.insert(p.clone()) {
                return Err(Error::UnsafePath {
                    what: what.clone(),
                    path: p,
                    why: "two layers claim this path".into(),
                });
            }
            plan.push((l, Some(p)));
        } else if l.media_type.contains(".tar") {
            if let Some(p) = &l.path {
                if p != "." {
                    check_path(p, &what)?;
                }
            }
            plan.push((l, l.path.clone()));
        } else {
            return Err(Error::malformed(
                &what,
                format!(
                    "layer {i} has media type {:?}, neither a raw file nor a tar",
                    l.media_type
                ),
            ));
        }
    }
    check_no_nesting(seen.iter().map(String::as_str), &what)?;
    let tmp = tempfile::Builder::new()
        .prefix(".mlsign-pull-")
        .tempdir_in(&parent)
        .map_err(|e| Error::io(&parent, e))?;
    let mut files = 0usize;
    let mut bytes = 0u64;
    for (l, p) in &plan {
        if l.raw {
            let rel = p.as_deref().unwrap_or_default();
            let target = tmp.path().join(rel);
            if let Some(d) = target.parent() {
                std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
            }
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&target)
                .map_err(|e| Error::io(&target, e))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, &mut f);
            client.stream_blob(
                &r.repository,
                &l.digest,
                l.size,
                &mut w,
                &format!("pull {rel}"),
            )?;
            use std::io::Write;
            w.flush().map_err(|e| Error::io(&target, e))?;
            drop(w);
            f.sync_all().map_err(|e| Error::io(&target, e))?;
            files += 1;
            bytes = bytes.saturating_add(l.size);
        } else {
            let sub = match p.as_deref() {
                None | Some(".") => tmp.path().to_path_buf(),
                Some(rel) => tmp.path().join(rel),
            };
            std::fs::create_dir_all(&sub).map_err(|e| Error::io(&sub, e))?;
            let n = super::untar::pull_tar_layer(&client, &r.repository, l, &sub, tmp.path())?;
            files += n.0;
            bytes = bytes.saturating_add(n.1);
        }
    }
    let kept = tmp.keep();
    if let Err(e) = std::fs::rename(&kept, dest) {
        let _ = std::fs::remove_dir_all(&kept);
        return Err(Error::io(dest, e));
    }
    Ok(PullOutcome {
        reference: r.at_digest(&fetched.digest).to_string(),
        digest: fetched.digest,
        format: lay.format,
        directory: dest.to_path_buf(),
        files,
        bytes,
        verified,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(path: &str, d: char) -> Descriptor {
        let mut a = BTreeMap::new();
        a.insert(MODELPACK_FILEPATH.to_string(), path.to_string());
        Descriptor {
            media_type: "application/vnd.cncf.model.weight.v1.raw".into(),
            digest: format!("sha256:{}", d.to_string().repeat(64)),
            size: 1,
            artifact_type: None,
            annotations: a,
        }
    }

    fn mp(layers: Vec<Descriptor>) -> ImageManifest {
        ImageManifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.into()),
            artifact_type: Some(MODELPACK_ARTIFACT.into()),
            config: Descriptor {
                media_type: MODELPACK_CONFIG.into(),
                digest: format!("sha256:{}", "0".repeat(64)),
                size: 2,
                artifact_type: None,
                annotations: BTreeMap::new(),
            },
            layers,
            subject: None,
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn file_map_refuses_escapes_duplicates_and_nesting() {
        let ok = layout(&mp(vec![layer("a/b.bin", 'a'), layer("c.json", 'b')])).unwrap();
        assert_eq!(ok.file_map("m").unwrap().len(), 2);
        for bad in [
            vec![layer("../x", 'a')],
            vec![layer("/etc/passwd", 'a')],
            vec![layer("a//b", 'a')],
            vec![layer("a", 'a'), layer("a", 'b')],
            vec![layer("a", 'a'), layer("a", 'a')],
            vec![layer("a", 'a'), layer("a/b", 'b')],
        ] {
            assert!(
                layout(&mp(bad.clone())).unwrap().file_map("m").is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn roles() {
        assert_eq!(role("model.safetensors"), "weight");
        assert_eq!(role("config.json"), "weight.config");
        assert_eq!(role("README.md"), "doc");
        assert_eq!(role("LICENSE"), "doc");
        assert_eq!(role("src/train.py"), "code");
        assert_eq!(role("data/train.csv"), "dataset");
    }
}
