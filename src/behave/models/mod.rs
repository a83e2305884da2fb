//! Model loaders, one file per format. Every loader reads tensors only (safetensors through
//! candle) and a declarative description; none executes code from the model directory.

pub mod bert;
pub mod net;

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
}

impl Model {
    /// Load a model directory (or the spec file inside it), choosing the loader by its files.
    pub fn load(path: &Path, device: &Device) -> Result<Model> {
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
        if dir.join(net::SPEC_FILE).is_file() {
            return Ok(Model::Net(net::NetModel::load(dir, device)?));
        }
        if bert::detect(dir) {
            return Ok(Model::Bert(Box::new(bert::BertEmbedder::load(
                dir, device,
            )?)));
        }
        Err(BehaveError::format(
            dir,
            format!(
                "no supported model found: expected {} (mlsign network spec) or config.json + tokenizer.json + model.safetensors (BERT encoder)",
                net::SPEC_FILE
            ),
        ))
    }

    pub fn info(&self) -> &ModelInfo {
        match self {
            Model::Net(m) => &m.info,
            Model::Bert(m) => &m.info,
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
                    OutputKind::Embedding => Ok(y),
                }
            }
            Model::Bert(_) => Err(candle_core::Error::Msg(
                "a text encoder has no class probabilities: use a suite with task = \"embedding\""
                    .into(),
            )),
        }
    }

    /// The tokenizer's vocabulary ordered by id (text encoders only).
    pub fn vocab(&self) -> Option<Vec<String>> {
        match self {
            Model::Bert(m) => Some(m.vocab()),
            Model::Net(_) => None,
        }
    }

    /// Pooled embeddings `[B, H]` for texts (text encoders only).
    pub fn embed(&self, texts: &[String]) -> candle_core::Result<Tensor> {
        match self {
            Model::Bert(m) => m.embed(texts),
            Model::Net(_) => Err(candle_core::Error::Msg(
                "an mlsign network takes tensors, not text: use a suite with task = \"classification\"".into(),
            )),
        }
    }
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
        if a != b {
            return mismatch(format!(
                "layer {i} is {a} in the baseline but {b} in the candidate"
            ));
        }
    }
    Ok(())
}
