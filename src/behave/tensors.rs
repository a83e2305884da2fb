//! Reading safetensors files (through candle, which never executes code) with a digest of the
//! exact bytes, so the report can bind a verdict to what was loaded.

use super::error::{BehaveError, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// Largest file we read into memory (weights or suite tensors).
pub const MAX_FILE_BYTES: u64 = 8 << 30;

/// A loaded safetensors file: tensors on the CPU, the SHA-256 of its bytes.
pub struct TensorFile {
    pub tensors: HashMap<String, Tensor>,
    pub sha256: String,
}

pub use crate::util::sha256_hex;

/// Read a whole file with a size bound.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| BehaveError::io(path, e))?;
    if !meta.is_file() {
        return Err(BehaveError::format(path, "not a regular file"));
    }
    if meta.len() > max {
        return Err(BehaveError::format(
            path,
            format!("file is {} bytes, over the {max}-byte limit", meta.len()),
        ));
    }
    std::fs::read(path).map_err(|e| BehaveError::io(path, e))
}

pub fn load(path: &Path) -> Result<TensorFile> {
    let bytes = read_bounded(path, MAX_FILE_BYTES)?;
    let sha256 = sha256_hex(&bytes);
    let tensors = load_buffer(path, &bytes)?;
    Ok(TensorFile { tensors, sha256 })
}

/// Every tensor of a safetensors buffer, on the CPU. A file whose container is broken is "not a
/// valid safetensors file"; a valid one holding a dtype candle cannot load (I8, U16 in some
/// versions, F8 variants…) says which tensor and dtype instead.
pub fn load_buffer(path: &Path, bytes: &[u8]) -> Result<HashMap<String, Tensor>> {
    use candle_core::safetensors::Load;
    let st = candle_core::safetensors::SliceSafetensors::new(bytes)
        .map_err(|e| BehaveError::format(path, format!("not a valid safetensors file: {e}")))?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        let t = view.load(&Device::Cpu).map_err(|e| match e {
            candle_core::Error::UnsupportedSafeTensorDtype(d) => BehaveError::UnsupportedDType {
                path: path.into(),
                tensor: name.clone(),
                dtype: format!("{d:?}"),
            },
            other => BehaveError::format(
                path,
                format!("cannot load tensor `{name}` ({:?}): {other}", view.dtype()),
            ),
        })?;
        out.insert(name, t);
    }
    Ok(out)
}

/// A model file must stay inside its model directory once symlinks are resolved: a weights file
/// linking elsewhere (another model, a system file) would be read and reported as this model's.
pub fn ensure_inside(dir: &Path, file: &Path) -> Result<()> {
    let d = std::fs::canonicalize(dir).map_err(|e| BehaveError::io(dir, e))?;
    let f = std::fs::canonicalize(file).map_err(|e| BehaveError::io(file, e))?;
    if f.starts_with(&d) {
        Ok(())
    } else {
        Err(BehaveError::OutsideModel {
            path: file.into(),
            target: f,
            dir: d,
        })
    }
}

impl TensorFile {
    fn present(&self) -> String {
        let mut names: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
        names.sort_unstable();
        if names.len() > 12 {
            let n = names.len();
            names.truncate(12);
            format!("{}, … ({n} in all)", names.join(", "))
        } else {
            names.join(", ")
        }
    }

    /// A float tensor as f32, checked for NaN/Inf.
    pub fn f32(&self, path: &Path, name: &str) -> Result<Tensor> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| BehaveError::MissingTensor {
                path: path.into(),
                tensor: name.into(),
                present: self.present(),
            })?;
        match t.dtype() {
            DType::F32 | DType::F16 | DType::BF16 | DType::F64 => {}
            other => {
                return Err(BehaveError::DType {
                    path: path.into(),
                    tensor: name.into(),
                    dtype: format!("{other:?}"),
                })
            }
        }
        let t = t.to_dtype(DType::F32)?;
        let v: Vec<f32> = t.flatten_all()?.to_vec1()?;
        if v.iter().any(|x| !x.is_finite()) {
            return Err(BehaveError::NonFiniteTensor {
                path: path.into(),
                tensor: name.into(),
            });
        }
        Ok(t)
    }

    /// An integer tensor (labels) as u32.
    pub fn labels(&self, path: &Path, name: &str) -> Result<Option<Vec<u32>>> {
        let Some(t) = self.tensors.get(name) else {
            return Ok(None);
        };
        let v: Vec<i64> = match t.dtype() {
            DType::U8 | DType::U32 | DType::I64 | DType::I32 | DType::I16 => {
                t.to_dtype(DType::I64)?.flatten_all()?.to_vec1()?
            }
            other => {
                return Err(BehaveError::LabelDType {
                    path: path.into(),
                    tensor: name.into(),
                    dtype: format!("{other:?}"),
                })
            }
        };
        if t.rank() != 1 {
            return Err(BehaveError::Shape {
                path: path.into(),
                tensor: name.into(),
                found: t.dims().to_vec(),
                expected: "[N]".into(),
            });
        }
        v.into_iter()
            .map(|x| {
                u32::try_from(x).map_err(|_| {
                    BehaveError::format(path, format!("label tensor `{name}` holds {x}"))
                })
            })
            .collect::<Result<Vec<u32>>>()
            .map(Some)
    }
}
