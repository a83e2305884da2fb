//! Model loaders, one file per format. Every loader reads tensors only (safetensors through
//! candle) and a declarative description; none executes code from the model directory.

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
}

/// A loaded model of any supported format.
pub enum Model {
    Net(net::NetModel),
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
        Err(BehaveError::format(
            dir,
            format!(
                "no supported model found: expected {} (mlsign network spec) in the directory",
                net::SPEC_FILE
            ),
        ))
    }

    pub fn info(&self) -> &ModelInfo {
        match self {
            Model::Net(m) => &m.info,
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
                }
            }
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
