//! The mlsign network spec: `mlsign-net.json` (a layer list) + a safetensors file of weights.
//! Small tabular and vision models, the benchmark population and the tests use it. Loading never
//! executes code: the JSON names a fixed set of layer types, the weights are plain tensors.

use super::{ModelInfo, OutputKind};
use crate::behave::error::{BehaveError, Result};
use crate::behave::tensors::{self, read_bounded, TensorFile};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const SPEC_FILE: &str = "mlsign-net.json";
pub const FORMAT: &str = "mlsign-net/1";

#[derive(Deserialize, Serialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct NetSpec {
    /// Always "mlsign-net/1".
    pub format: String,
    /// Weights file, relative to the spec's directory.
    #[serde(default = "default_weights")]
    pub weights: String,
    /// Shape of one input sample, without the batch dimension (e.g. [1, 8, 8] or [64]).
    pub input_shape: Vec<usize>,
    pub layers: Vec<Layer>,
    /// Optional class names, one per output.
    #[serde(default)]
    pub labels: Option<Vec<String>>,
}

fn default_weights() -> String {
    "model.safetensors".into()
}
fn one() -> usize {
    1
}

/// One layer. Weight layouts follow PyTorch: linear `[out, in]`, conv2d `[out, in, kh, kw]`.
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Layer {
    Linear {
        weight: String,
        #[serde(default)]
        bias: Option<String>,
    },
    Conv2d {
        weight: String,
        #[serde(default)]
        bias: Option<String>,
        #[serde(default = "one")]
        stride: usize,
        #[serde(default)]
        padding: usize,
    },
    Maxpool2d {
        size: usize,
        #[serde(default)]
        stride: Option<usize>,
    },
    Avgpool2d {
        size: usize,
        #[serde(default)]
        stride: Option<usize>,
    },
    Flatten,
    Relu,
    Tanh,
    Sigmoid,
    Gelu,
    Softmax,
}

impl Layer {
    fn describe(&self, shapes: &[usize]) -> String {
        match self {
            Layer::Linear { .. } => format!("linear{shapes:?}"),
            Layer::Conv2d {
                stride, padding, ..
            } => format!("conv2d{shapes:?}/s{stride}/p{padding}"),
            Layer::Maxpool2d { size, stride } => format!("maxpool2d/{size}/{stride:?}"),
            Layer::Avgpool2d { size, stride } => format!("avgpool2d/{size}/{stride:?}"),
            Layer::Flatten => "flatten".into(),
            Layer::Relu => "relu".into(),
            Layer::Tanh => "tanh".into(),
            Layer::Sigmoid => "sigmoid".into(),
            Layer::Gelu => "gelu".into(),
            Layer::Softmax => "softmax".into(),
        }
    }
}

enum Op {
    /// weight already transposed to [in, out]
    Linear(Tensor, Option<Tensor>),
    /// bias reshaped to [1, out, 1, 1]
    Conv2d(Tensor, Option<Tensor>, usize, usize),
    MaxPool(usize, usize),
    AvgPool(usize, usize),
    Flatten,
    Relu,
    Tanh,
    Sigmoid,
    Gelu,
    Softmax,
}

pub struct NetModel {
    ops: Vec<Op>,
    pub info: ModelInfo,
}

/// Softmax over the last dimension of a [B, C] tensor, numerically stable.
pub fn softmax(x: &Tensor) -> candle_core::Result<Tensor> {
    let m = x.max_keepdim(1)?;
    let e = x.broadcast_sub(&m)?.exp()?;
    let s = e.sum_keepdim(1)?;
    e.broadcast_div(&s)
}

fn check_shape(path: &Path, name: &str, t: &Tensor, expected: &[Option<usize>]) -> Result<()> {
    let dims = t.dims();
    let ok = dims.len() == expected.len()
        && dims
            .iter()
            .zip(expected)
            .all(|(d, e)| e.is_none_or(|e| *d == e));
    if ok {
        return Ok(());
    }
    let exp: Vec<String> = expected
        .iter()
        .map(|e| e.map_or("?".to_string(), |v| v.to_string()))
        .collect();
    Err(BehaveError::Shape {
        path: path.into(),
        tensor: name.into(),
        found: dims.to_vec(),
        expected: format!("[{}]", exp.join(", ")),
    })
}

impl NetModel {
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let spec_path = dir.join(SPEC_FILE);
        let raw = read_bounded(&spec_path, 4 << 20)?;
        let spec: NetSpec = crate::json::from_slice(&raw)
            .map_err(|e| BehaveError::format(&spec_path, format!("invalid network spec: {e}")))?;
        if spec.format != FORMAT {
            return Err(BehaveError::format(
                &spec_path,
                format!("format is {:?}; this mlsign reads {FORMAT:?}", spec.format),
            ));
        }
        let rel = Path::new(&spec.weights);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(BehaveError::format(
                &spec_path,
                format!(
                    "weights path {:?} must be a plain relative path inside the model directory",
                    spec.weights
                ),
            ));
        }
        let wpath: PathBuf = dir.join(rel);
        tensors::ensure_inside(dir, &wpath)?;
        let file = tensors::load(&wpath)?;
        Self::build(&spec, &spec_path, &wpath, &file, device)
    }

    fn build(
        spec: &NetSpec,
        spec_path: &Path,
        wpath: &Path,
        file: &TensorFile,
        device: &Device,
    ) -> Result<Self> {
        if spec.input_shape.is_empty() || spec.input_shape.contains(&0) {
            return Err(BehaveError::format(
                spec_path,
                "input_shape must list one or more positive dimensions",
            ));
        }
        let mut shape = spec.input_shape.clone();
        let mut ops = Vec::with_capacity(spec.layers.len());
        let mut arch = Vec::with_capacity(spec.layers.len());
        let bad =
            |i: usize, msg: String| BehaveError::format(spec_path, format!("layer {i}: {msg}"));
        for (i, layer) in spec.layers.iter().enumerate() {
            let mut wshape = vec![];
            let op = match layer {
                Layer::Linear { weight, bias } => {
                    if shape.len() != 1 {
                        return Err(bad(
                            i,
                            format!(
                                "linear needs a flat input, got {shape:?} (add a flatten layer)"
                            ),
                        ));
                    }
                    let w = file.f32(wpath, weight)?;
                    check_shape(wpath, weight, &w, &[None, Some(shape[0])])?;
                    let out = w.dims()[0];
                    wshape = w.dims().to_vec();
                    let b = match bias {
                        Some(b) => {
                            let t = file.f32(wpath, b)?;
                            check_shape(wpath, b, &t, &[Some(out)])?;
                            Some(t.reshape((1, out))?.to_device(device)?)
                        }
                        None => None,
                    };
                    shape = vec![out];
                    Op::Linear(w.t()?.contiguous()?.to_device(device)?, b)
                }
                Layer::Conv2d {
                    weight,
                    bias,
                    stride,
                    padding,
                } => {
                    if shape.len() != 3 {
                        return Err(bad(
                            i,
                            format!("conv2d needs a [C, H, W] input, got {shape:?}"),
                        ));
                    }
                    if *stride == 0 {
                        return Err(bad(i, "stride must be positive".into()));
                    }
                    let w = file.f32(wpath, weight)?;
                    check_shape(wpath, weight, &w, &[None, Some(shape[0]), None, None])?;
                    let d = w.dims().to_vec();
                    let (o, kh, kw) = (d[0], d[2], d[3]);
                    let (h, wd) = (shape[1] + 2 * padding, shape[2] + 2 * padding);
                    if kh == 0 || kw == 0 || kh > h || kw > wd {
                        return Err(bad(i, format!("kernel {kh}x{kw} does not fit input {shape:?} with padding {padding}")));
                    }
                    wshape = d.clone();
                    let b = match bias {
                        Some(b) => {
                            let t = file.f32(wpath, b)?;
                            check_shape(wpath, b, &t, &[Some(o)])?;
                            Some(t.reshape((1, o, 1, 1))?.to_device(device)?)
                        }
                        None => None,
                    };
                    shape = vec![o, (h - kh) / stride + 1, (wd - kw) / stride + 1];
                    Op::Conv2d(w.to_device(device)?, b, *stride, *padding)
                }
                Layer::Maxpool2d { size, stride } | Layer::Avgpool2d { size, stride } => {
                    let s = stride.unwrap_or(*size);
                    if shape.len() != 3
                        || *size == 0
                        || s == 0
                        || shape[1] < *size
                        || shape[2] < *size
                    {
                        return Err(bad(
                            i,
                            format!("pool of size {size} does not fit input {shape:?}"),
                        ));
                    }
                    shape = vec![
                        shape[0],
                        (shape[1] - size) / s + 1,
                        (shape[2] - size) / s + 1,
                    ];
                    if matches!(layer, Layer::Maxpool2d { .. }) {
                        Op::MaxPool(*size, s)
                    } else {
                        Op::AvgPool(*size, s)
                    }
                }
                Layer::Flatten => {
                    shape = vec![shape.iter().product()];
                    Op::Flatten
                }
                Layer::Relu => Op::Relu,
                Layer::Tanh => Op::Tanh,
                Layer::Sigmoid => Op::Sigmoid,
                Layer::Gelu => Op::Gelu,
                Layer::Softmax => {
                    if shape.len() != 1 {
                        return Err(bad(i, format!("softmax needs a flat input, got {shape:?}")));
                    }
                    Op::Softmax
                }
            };
            arch.push(layer.describe(&wshape));
            ops.push(op);
        }
        if shape.len() != 1 || shape[0] < 2 {
            return Err(BehaveError::format(
                spec_path,
                format!("the network must end in a flat vector of ≥ 2 class scores, it ends in {shape:?}"),
            ));
        }
        if let Some(l) = &spec.labels {
            if l.len() != shape[0] {
                return Err(BehaveError::format(
                    spec_path,
                    format!("{} labels for {} outputs", l.len(), shape[0]),
                ));
            }
        }
        let output = if matches!(ops.last(), Some(Op::Softmax)) {
            OutputKind::Probabilities
        } else {
            OutputKind::Logits
        };
        Ok(NetModel {
            ops,
            info: ModelInfo {
                format: FORMAT.into(),
                weights: wpath.display().to_string(),
                weights_sha256: file.sha256.clone(),
                input_shape: spec.input_shape.clone(),
                outputs: shape[0],
                output,
                arch,
                labels: spec.labels.clone(),
                tokenizer_sha256: None,
            },
        })
    }

    /// Run a batch `[B, ...input_shape]`; returns the last layer's `[B, C]` output.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_relaxed(x, None)
    }

    /// [`NetModel::forward`] with every ReLU replaced by softplus of sharpness `beta`
    /// (ln(1 + e^{βx})/β), when given. Trigger synthesis takes gradients through this surrogate:
    /// a ReLU unit that is off on every input passes no gradient, so a backdoor unit that only a
    /// near-complete trigger switches on would stay invisible to the search.
    pub fn forward_relaxed(&self, x: &Tensor, beta: Option<f64>) -> candle_core::Result<Tensor> {
        let mut x = x.clone();
        for op in &self.ops {
            x = match op {
                Op::Linear(w, b) => {
                    let y = x.matmul(w)?;
                    match b {
                        Some(b) => y.broadcast_add(b)?,
                        None => y,
                    }
                }
                Op::Conv2d(w, b, s, p) => {
                    // The gradient path unfolds: candle's CPU conv2d backward runs a naive
                    // conv_transpose2d that dominated trigger synthesis on CNNs.
                    let y = match beta {
                        Some(_) => conv2d_unfolded(&x, w, *p, *s)?,
                        None => x.conv2d(w, *p, *s, 1, 1)?,
                    };
                    match b {
                        Some(b) => y.broadcast_add(b)?,
                        None => y,
                    }
                }
                Op::MaxPool(k, s) => x.max_pool2d_with_stride(*k, *s)?,
                Op::AvgPool(k, s) => x.avg_pool2d_with_stride(*k, *s)?,
                Op::Flatten => x.flatten_from(1)?,
                Op::Relu => match beta {
                    // relu(x) + ln(1 + e^{−β|x|})/β: softplus without overflow.
                    Some(b) => {
                        (x.relu()?
                            + ((x.abs()? * -b)?.exp()? + 1.0)?
                                .log()?
                                .affine(1.0 / b, 0.0)?)?
                    }
                    None => x.relu()?,
                },
                Op::Tanh => x.tanh()?,
                Op::Sigmoid => (x.neg()?.exp()? + 1.0)?.recip()?,
                Op::Gelu => x.gelu_erf()?,
                Op::Softmax => softmax(&x)?,
            };
        }
        Ok(x)
    }
}

/// `x.conv2d(w, padding, stride, 1, 1)` as im2col by `index_select` and one matmul. Same values;
/// its backward is a matmul and an `index_add`, which on the CPU cost a small fraction of the
/// naive transposed convolution candle runs for conv2d's input gradient.
pub fn conv2d_unfolded(
    x: &Tensor,
    w: &Tensor,
    padding: usize,
    stride: usize,
) -> candle_core::Result<Tensor> {
    let (n, c, h, wd) = x.dims4()?;
    let (o, wc, kh, kw) = w.dims4()?;
    if wc != c {
        return Err(candle_core::Error::Msg(format!(
            "conv2d: input has {c} channels, the kernel expects {wc}"
        )));
    }
    let (hp, wp) = (h + 2 * padding, wd + 2 * padding);
    if hp < kh || wp < kw || stride == 0 {
        return Err(candle_core::Error::Msg(format!(
            "conv2d: a {kh}×{kw} kernel does not fit a padded {hp}×{wp} input"
        )));
    }
    let (ho, wo) = ((hp - kh) / stride + 1, (wp - kw) / stride + 1);
    let xp = if padding > 0 {
        x.pad_with_zeros(2, padding, padding)?
            .pad_with_zeros(3, padding, padding)?
    } else {
        x.clone()
    };
    let patch = c * kh * kw;
    let mut idx = Vec::with_capacity(ho * wo * patch);
    for oy in 0..ho {
        for ox in 0..wo {
            for ci in 0..c {
                for ky in 0..kh {
                    for kx in 0..kw {
                        idx.push(
                            (ci * hp * wp + (oy * stride + ky) * wp + ox * stride + kx) as u32,
                        );
                    }
                }
            }
        }
    }
    let idx = Tensor::from_vec(idx, ho * wo * patch, x.device())?;
    let cols = xp
        .reshape((n, c * hp * wp))?
        .index_select(&idx, 1)?
        .reshape((n * ho * wo, patch))?;
    let y = cols.matmul(&w.reshape((o, patch))?.t()?)?; // [n·ho·wo, o]
    y.reshape((n, ho * wo, o))?
        .transpose(1, 2)?
        .reshape((n, o, ho, wo))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn file(t: &[(&str, Vec<f32>, &[usize])]) -> TensorFile {
        let mut tensors = HashMap::new();
        for (n, v, s) in t {
            tensors.insert(
                n.to_string(),
                Tensor::from_vec(v.clone(), *s, &Device::Cpu).unwrap(),
            );
        }
        TensorFile {
            tensors,
            sha256: String::new(),
        }
    }

    fn spec(layers: &str, input: &str) -> NetSpec {
        serde_json::from_str(&format!(
            r#"{{"format": "mlsign-net/1", "input_shape": {input}, "layers": {layers}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn conv_pool_linear_forward_matches_hand_computation() {
        let f = file(&[
            ("c", vec![1.0; 4], &[1, 1, 2, 2]),
            ("cb", vec![0.5], &[1]),
            ("l", vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0], &[2, 4]),
        ]);
        let s = spec(
            r#"[{"type": "conv2d", "weight": "c", "bias": "cb"}, {"type": "flatten"},
                {"type": "linear", "weight": "l"}]"#,
            "[1, 3, 3]",
        );
        let p = Path::new("t");
        let m = NetModel::build(&s, p, p, &f, &Device::Cpu).unwrap();
        assert_eq!(m.info.output, OutputKind::Logits);
        // Input 0..9 on a 3×3 grid: 2×2 window sums are 8, 12, 20, 24 (+0.5 bias).
        let x = Tensor::from_vec(
            (0..9).map(|v| v as f32).collect::<Vec<_>>(),
            (1, 1, 3, 3),
            &Device::Cpu,
        )
        .unwrap();
        let y: Vec<f32> = m
            .forward(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(y, vec![8.5, -24.5]);

        let s = spec(
            r#"[{"type": "maxpool2d", "size": 2, "stride": 1}, {"type": "flatten"}, {"type": "softmax"}]"#,
            "[1, 3, 3]",
        );
        let m = NetModel::build(&s, p, p, &f, &Device::Cpu).unwrap();
        assert_eq!(m.info.output, OutputKind::Probabilities);
        let y: Vec<f32> = m
            .forward(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let e: Vec<f32> = [4.0f32, 5.0, 7.0, 8.0]
            .iter()
            .map(|v| (v - 8.0).exp())
            .collect();
        let z: f32 = e.iter().sum();
        for (a, b) in y.iter().zip(e.iter().map(|v| v / z)) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn shape_errors_name_the_tensor() {
        let f = file(&[("c", vec![1.0; 8], &[1, 2, 2, 2])]);
        let s = spec(r#"[{"type": "conv2d", "weight": "c"}]"#, "[1, 3, 3]");
        let p = Path::new("w.safetensors");
        let e = NetModel::build(&s, p, p, &f, &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("`c` has shape [1, 2, 2, 2], expected [?, 1, ?, ?]"),
            "{e}"
        );
        let s = spec(r#"[{"type": "flatten"}]"#, "[1, 1, 1]");
        let e = NetModel::build(&s, p, p, &f, &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("must end in a flat vector of ≥ 2 class scores"),
            "{e}"
        );
        let s = spec(r#"[{"type": "linear", "weight": "c"}]"#, "[1, 3, 3]");
        let e = NetModel::build(&s, p, p, &f, &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("linear needs a flat input"), "{e}");
    }

    #[test]
    fn unfolded_conv_matches_candle_conv_in_value_and_input_gradient() {
        let dev = Device::Cpu;
        let mut seed = 0x1234_5678u64;
        let mut rnd = |k: usize| -> Vec<f32> {
            (0..k)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
                })
                .collect()
        };
        for (c, o, k, h, wd, pad, stride) in [
            (1, 8, 3, 16, 16, 1, 1),
            (3, 4, 3, 7, 9, 0, 2),
            (2, 5, 2, 6, 5, 2, 3),
            (8, 16, 3, 8, 8, 1, 1),
        ] {
            let x = candle_core::Var::from_vec(rnd(3 * c * h * wd), (3, c, h, wd), &dev).unwrap();
            let w = Tensor::from_vec(rnd(o * c * k * k), (o, c, k, k), &dev).unwrap();
            let reference = x.conv2d(&w, pad, stride, 1, 1).unwrap();
            let n = reference.elem_count();
            let g = Tensor::from_vec(rnd(n), n, &dev).unwrap();
            let ours = conv2d_unfolded(x.as_tensor(), &w, pad, stride).unwrap();
            assert_eq!(ours.dims(), reference.dims());
            let diff = (&ours - &reference)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap();
            assert!(
                diff.to_scalar::<f32>().unwrap() < 1e-5,
                "value, case {c} {o} {k}"
            );
            // The input gradient of a linear functional of the output: conv is linear in x,
            // so a central difference is exact up to rounding. (candle's own conv2d backward
            // fails on the third case: its transposed convolution gets the shape wrong when the
            // stride does not divide the padded input.)
            let loss = |y: &Tensor| (y.flatten_all().unwrap() * &g).unwrap().sum_all().unwrap();
            let grad = loss(&ours).backward().unwrap().get(&x).unwrap().clone();
            let grad = grad.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let base = x
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            for i in (0..base.len()).step_by(7) {
                let at = |eps: f32| {
                    let mut v = base.clone();
                    v[i] += eps;
                    let xe = Tensor::from_vec(v, (3, c, h, wd), &dev).unwrap();
                    let y = xe.conv2d(&w, pad, stride, 1, 1).unwrap();
                    loss(&y).to_scalar::<f32>().unwrap()
                };
                let fd = (at(0.5) - at(-0.5)) / 1.0;
                assert!(
                    (fd - grad[i]).abs() < 1e-3 * (1.0 + fd.abs()),
                    "gradient at {i}: {fd} vs {}",
                    grad[i]
                );
            }
        }
        let x = Tensor::zeros((1, 2, 4, 4), candle_core::DType::F32, &dev).unwrap();
        let w = Tensor::zeros((1, 3, 3, 3), candle_core::DType::F32, &dev).unwrap();
        assert!(conv2d_unfolded(&x, &w, 0, 1).is_err());
    }
}
