//! Typed errors of the behavioural diff. Each names the file, tensor or probe involved and what to
//! do; the CLI maps every one of them to exit code 2 (nothing could be decided).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BehaveError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{path}: tensor `{tensor}` is missing (the file holds: {present})")]
    MissingTensor {
        path: PathBuf,
        tensor: String,
        present: String,
    },
    #[error("{path}: tensor `{tensor}` has shape {found:?}, expected {expected}")]
    Shape {
        path: PathBuf,
        tensor: String,
        found: Vec<usize>,
        expected: String,
    },
    #[error(
        "{path}: tensor `{tensor}` has dtype {dtype}; expected a float type (f32, f16, bf16, f64)"
    )]
    DType {
        path: PathBuf,
        tensor: String,
        dtype: String,
    },
    #[error("{path}: tensor `{tensor}` has dtype {dtype}, which mlsign behave cannot load (it reads F32, F16, BF16, F64, U8, U16, U32, I16, I32, I64); convert the tensor")]
    UnsupportedDType {
        path: PathBuf,
        tensor: String,
        dtype: String,
    },
    #[error("{path}: label tensor `{tensor}` has dtype {dtype}; labels must be integers (U8, U32, I16, I32 or I64)")]
    LabelDType {
        path: PathBuf,
        tensor: String,
        dtype: String,
    },
    #[error("{path}: label tensor `{tensor}` holds {label} at input {index}, but the model has {classes} classes (labels run from 0 to {max})", max = .classes.saturating_sub(1))]
    LabelOutOfRange {
        path: PathBuf,
        tensor: String,
        index: usize,
        label: u32,
        classes: usize,
    },
    #[error("{path}: resolves to {target}, outside the model directory {dir}; model files must stay inside it (copy the file in rather than linking to it)")]
    OutsideModel {
        path: PathBuf,
        target: PathBuf,
        dir: PathBuf,
    },
    #[error("{path}: tensor `{tensor}` holds NaN or infinite values")]
    NonFiniteTensor { path: PathBuf, tensor: String },
    #[error(
        "baseline and candidate architectures differ: {detail}. A behavioural diff compares two \
versions of the same network; convert both to the same architecture first"
    )]
    ArchitectureMismatch { detail: String },
    #[error("{model} produced NaN or infinite outputs on {place}; the model is numerically broken or the inputs are out of range")]
    NonFiniteOutput { model: String, place: String },
    #[error("suite {path}: {message}")]
    Suite { path: PathBuf, message: String },
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}

impl BehaveError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BehaveError::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        BehaveError::Format {
            path: path.into(),
            message: message.into(),
        }
    }
    pub(crate) fn suite(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        BehaveError::Suite {
            path: path.into(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = BehaveError> = std::result::Result<T, E>;
