//! Model loaders, one file per format. Every loader reads tensors only (safetensors through
//! candle) and a declarative description; none executes code from the model directory.

pub mod bert;
pub mod diff;
pub mod lm;
pub mod net;
#[cfg(feature = "onnx")]
pub mod onnx;

use super::error::{BehaveError, Result};
use candle_core::{Device, Tensor};
use serde::Serialize;
use std::path::Path;

/// What the last layer emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    Logits,
    Probabilities,
    /// A pooled text embedding (BERT-family encoders).
    Embedding,
    /// The next-token probability distribution at the last prompt position (causal LMs).
    #[serde(rename = "next-token")]
    NextToken,
}

/// What a model does, which decides the suite tasks it can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Class scores from tensor inputs (mlsign network spec).
    TensorClassifier,
    /// Class probabilities from text (BERT sequence classification).
    TextClassifier,
    /// Pooled text embeddings (BERT encoders).
    Embedder,
    /// Next-token distributions (causal LMs).
    CausalLm,
}

/// What `Model::load` accepts, for error messages.
pub const SUPPORTED: &str = "supported: the mlsign network spec (mlsign-net.json); Hugging Face directories with config.json + model.safetensors + tokenizer.json for model_type \"bert\" (embeddings or BertForSequenceClassification) and the causal LMs llama, mistral, qwen2, phi3; GGUF files (llama, qwen2, phi3) with tokenizer.json; one *.onnx classifier (built with --features onnx)";

/// config.json as JSON (bounded read).
pub fn read_config(path: &Path) -> Result<serde_json::Value> {
    let raw = super::tensors::read_bounded(path, 1 << 20)?;
    serde_json::from_slice(&raw)
        .map_err(|e| BehaveError::format(path, format!("invalid JSON: {e}")))
}

/// What the report says about a loaded model; also what compatibility is checked on.
#[derive(Clone, Debug, Serialize)]
pub struct ModelInfo {
    pub format: String,
    pub weights: String,
    pub weights_sha256: String,
    pub input_shape: Vec<usize>,
    pub outputs: usize,
    pub output: OutputKind,
    /// One entry per layer with its weight shape: equal lists mean equal architectures.
    pub arch: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokenizer_sha256: Option<String>,
}

/// A loaded model of any supported format.
pub enum Model {
    Net(net::NetModel),
    Bert(Box<bert::BertEmbedder>),
    Lm(Box<lm::CausalLm>),
    #[cfg(feature = "onnx")]
    Onnx(Box<onnx::OnnxModel>),
}

/// What a suite says about reading its models (today: which ONNX output holds the class scores).
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    pub output: Option<String>,
    /// Causal LMs: positions compared per prompt (0 or 1: the last only).
    pub lm_positions: usize,
}

impl LoadOptions {
    pub fn for_suite(suite: &super::suite::Suite) -> Self {
        LoadOptions {
            output: suite.file.suite.model_output.clone(),
            lm_positions: suite.file.suite.lm_positions,
        }
    }
}

impl Model {
    /// Load a model directory (or the spec file inside it), choosing the loader by its files.
    pub fn load(path: &Path, device: &Device) -> Result<Model> {
        Self::load_with(path, device, &LoadOptions::default())
    }

    /// [`Model::load`] with the suite's choices.
    pub fn load_with(path: &Path, device: &Device, opts: &LoadOptions) -> Result<Model> {
        let dir = if path.is_file() {
            path.parent().unwrap_or(Path::new("."))
        } else {
            path
        };
        if !dir.is_dir() {
            return Err(BehaveError::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such model directory"),
            ));
        }
        let explicit_onnx = path.is_file() && is_onnx(path);
        if !explicit_onnx && dir.join(net::SPEC_FILE).is_file() {
            return Ok(Model::Net(net::NetModel::load(dir, device)?));
        }
        let mut unsupported_type = None;
        if !explicit_onnx {
            if let Some(g) = lm::find_gguf(path) {
                // A file found in the directory must be in it; one named by the user is theirs.
                if !path.is_file() {
                    crate::behave::tensors::ensure_inside(dir, &g)?;
                }
                let mut m = lm::CausalLm::load_gguf(&g, device)?;
                m.set_positions(opts.lm_positions);
                return Ok(Model::Lm(Box::new(m)));
            }
            let cpath = dir.join(bert::CONFIG_FILE);
            if cpath.is_file() {
                let cfg = read_config(&cpath)?;
                let mt = cfg.get("model_type").and_then(|v| v.as_str()).unwrap_or("");
                if lm::HF_FAMILIES.contains(&mt) {
                    let mut m = lm::CausalLm::load_hf(dir, &cfg, device)?;
                    m.set_positions(opts.lm_positions);
                    return Ok(Model::Lm(Box::new(m)));
                }
                if mt != "bert" {
                    // An ONNX export may carry its source config.json: decide after looking for it.
                    unsupported_type = Some((cpath, mt.to_string()));
                }
            }
        }
        if !explicit_onnx && unsupported_type.is_none() && bert::detect(dir) {
            return Ok(Model::Bert(Box::new(bert::BertEmbedder::load(
                dir, device,
            )?)));
        }
        #[cfg(not(feature = "onnx"))]
        let _ = opts;
        if let Some(file) = onnx_file(path, dir)? {
            if !path.is_file() {
                crate::behave::tensors::ensure_inside(dir, &file)?;
            }
            #[cfg(feature = "onnx")]
            return Ok(Model::Onnx(Box::new(onnx::OnnxModel::load(
                &file,
                device,
                opts.output.as_deref(),
            )?)));
            #[cfg(not(feature = "onnx"))]
            return Err(BehaveError::format(
                file,
                "ONNX support is not built in: rebuild with --features onnx (needs Debian's protobuf-compiler)",
            ));
        }
        if let Some((cpath, mt)) = unsupported_type {
            return Err(BehaveError::format(
                &cpath,
                format!("model_type {mt:?} is not supported; {SUPPORTED}"),
            ));
        }
        Err(BehaveError::format(
            dir,
            format!("no supported model found; {SUPPORTED}"),
        ))
    }

    pub fn info(&self) -> &ModelInfo {
        match self {
            Model::Net(m) => &m.info,
            Model::Bert(m) => &m.info,
            Model::Lm(m) => &m.info,
            #[cfg(feature = "onnx")]
            Model::Onnx(m) => &m.info,
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Model::Net(_) => Kind::TensorClassifier,
            #[cfg(feature = "onnx")]
            Model::Onnx(_) => Kind::TensorClassifier,
            Model::Bert(m) if m.is_classifier() => Kind::TextClassifier,
            Model::Bert(_) => Kind::Embedder,
            Model::Lm(_) => Kind::CausalLm,
        }
    }

    /// Outputs `[B, outputs]` for prompts: class probabilities (text classifiers), pooled
    /// embeddings (encoders) or next-token distributions (causal LMs).
    pub fn text_outputs(&self, texts: &[String]) -> candle_core::Result<Tensor> {
        match self {
            Model::Bert(m) if m.is_classifier() => m.classify(texts),
            Model::Bert(m) => m.embed(texts),
            Model::Lm(m) => m.next_token_probs(texts),
            Model::Net(_) => Err(candle_core::Error::Msg(
                "an mlsign network takes tensors, not text: use a suite with safetensors inputs"
                    .into(),
            )),
            #[cfg(feature = "onnx")]
            Model::Onnx(_) => Err(candle_core::Error::Msg(
                "an ONNX classifier takes tensors, not text: use a suite with safetensors inputs"
                    .into(),
            )),
        }
    }

    /// The text of one output index: a class label, or a token for causal LMs.
    pub fn output_name(&self, i: u32) -> Option<String> {
        match self {
            Model::Lm(m) => Some(m.token_text(i % m.dims.vocab.max(1) as u32)),
            _ => self
                .info()
                .labels
                .as_ref()
                .and_then(|l| l.get(i as usize).cloned()),
        }
    }

    /// Class probabilities `[B, C]` for a batch.
    pub fn probabilities(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Model::Net(m) => {
                let y = m.forward(x)?;
                match m.info.output {
                    OutputKind::Probabilities => Ok(y),
                    OutputKind::Logits => net::softmax(&y),
                    OutputKind::Embedding | OutputKind::NextToken => Ok(y),
                }
            }
            #[cfg(feature = "onnx")]
            Model::Onnx(m) => match m.info.output {
                OutputKind::Logits => net::softmax(&m.forward(x)?),
                _ => m.forward(x),
            },
            Model::Bert(_) | Model::Lm(_) => Err(candle_core::Error::Msg(
                "a text model takes prompts, not tensors: use a suite with JSONL prompts".into(),
            )),
        }
    }

    /// The tokenizer's vocabulary ordered by id (text encoders only).
    pub fn vocab(&self) -> Option<Vec<String>> {
        match self {
            Model::Bert(m) => Some(m.vocab()),
            Model::Lm(m) => Some(m.vocab()),
            Model::Net(_) => None,
            #[cfg(feature = "onnx")]
            Model::Onnx(_) => None,
        }
    }
}

fn is_onnx(p: &Path) -> bool {
    p.extension()
        .is_some_and(|x| x.eq_ignore_ascii_case("onnx"))
}

/// The ONNX file to load: `path` itself when it is a `.onnx` file, else the directory's one
/// `*.onnx` file (several are an error).
fn onnx_file(path: &Path, dir: &Path) -> Result<Option<std::path::PathBuf>> {
    if path.is_file() && is_onnx(path) {
        return Ok(Some(path.to_path_buf()));
    }
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| BehaveError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_onnx(p))
        .collect();
    found.sort();
    if found.len() > 1 {
        let names: Vec<_> = found.iter().filter_map(|p| p.file_name()).collect();
        return Err(BehaveError::format(
            dir,
            format!("holds {} .onnx files ({names:?}); put one model per directory or pass the file itself", found.len()),
        ));
    }
    Ok(found.pop())
}

/// Refuse to diff two models whose interfaces or layer structures differ.
pub fn check_compatible(base: &ModelInfo, cand: &ModelInfo) -> Result<()> {
    let mismatch = |detail: String| Err(BehaveError::ArchitectureMismatch { detail });
    if base.format != cand.format {
        return mismatch(format!(
            "baseline is {}, candidate is {}",
            base.format, cand.format
        ));
    }
    if base.input_shape != cand.input_shape {
        return mismatch(format!(
            "input shape {:?} (baseline) vs {:?} (candidate)",
            base.input_shape, cand.input_shape
        ));
    }
    if base.outputs != cand.outputs {
        return mismatch(format!(
            "{} outputs (baseline) vs {} (candidate)",
            base.outputs, cand.outputs
        ));
    }
    if base.arch.len() != cand.arch.len() {
        return mismatch(format!(
            "{} layers (baseline) vs {} (candidate)",
            base.arch.len(),
            cand.arch.len()
        ));
    }
    for (i, (a, b)) in base.arch.iter().zip(&cand.arch).enumerate() {
        if a != b && base.output == OutputKind::NextToken {
            return mismatch(format!(
                "the configuration is `{a}` in the baseline but `{b}` in the candidate"
            ));
        }
        if a != b {
            return mismatch(format!(
                "layer {i} is {a} in the baseline but {b} in the candidate"
            ));
        }
    }
    Ok(())
}

#[cfg(all(test, not(feature = "onnx")))]
mod tests_without_onnx {
    use super::*;

    #[test]
    fn onnx_directory_without_the_feature_is_a_clear_error() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("model.onnx"), b"\x08\x08").unwrap();
        let e = Model::load(t.path(), &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("model.onnx: ONNX support is not built in: rebuild with --features onnx"),
            "{e}"
        );
    }
}
