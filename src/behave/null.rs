//! Null candidates generated automatically (issue 15 §5): short clean fine-tunes of the baseline
//! on the suite's own labelled inputs, trained here with candle's autograd, for users who do not
//! have dozens of known-benign models to calibrate on. Only the mlsign network spec can be trained
//! (its layer list is declarative; BERT, LM and ONNX graphs are not rebuilt as trainable graphs).
//!
//! A generated null is a benign model by construction (clean labels, a few epochs), but it is
//! only one kind of benign model: how far a threshold calibrated on them carries to real benign
//! fine-tunes (other data, label noise, pruning, distillation…) is measured in docs/behave.md,
//! not assumed.

use super::error::{BehaveError, Result};
use super::models::net::{Layer, NetSpec, SPEC_FILE};
use super::probes::SplitMix64;
use super::suite::Suite;
use super::tensors;
use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// At most this many null candidates per call (each is a model directory on disk).
pub const MAX_NULLS: usize = 10_000;

#[derive(Clone, Debug)]
pub struct NullOptions {
    /// Number of fine-tunes.
    pub count: usize,
    /// Seed of the bootstrap samples, epochs and learning rates (null i uses seed ⊕ i).
    pub seed: u64,
    /// Epochs over the bootstrap sample, drawn uniformly in this range (inclusive).
    pub epochs: (usize, usize),
    /// Learning rates (Adam) drawn uniformly from this list.
    pub lrs: Vec<f64>,
    pub batch_size: usize,
}

impl Default for NullOptions {
    fn default() -> Self {
        NullOptions {
            count: 0,
            seed: 0x6e75_6c6c,
            epochs: (2, 5),
            lrs: vec![5e-4, 1e-3],
            batch_size: 32,
        }
    }
}

fn fail(path: &Path, message: impl Into<String>) -> BehaveError {
    BehaveError::Format {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn cerr(path: &Path, e: candle_core::Error) -> BehaveError {
    fail(path, format!("fine-tuning a null candidate failed: {e}"))
}

/// The pre-softmax output of the network for `x` (`[B, ...input_shape]`), built from candle ops
/// that have a backward pass. A trailing softmax is left out (the loss applies log-softmax).
fn forward(spec: &NetSpec, w: &HashMap<String, Var>, x: &Tensor) -> candle_core::Result<Tensor> {
    let get = |name: &str| {
        w.get(name)
            .map(|v| v.as_tensor().clone())
            .ok_or_else(|| candle_core::Error::Msg(format!("tensor `{name}` is missing")))
    };
    let mut x = x.clone();
    let last = spec.layers.len().saturating_sub(1);
    for (i, layer) in spec.layers.iter().enumerate() {
        x = match layer {
            Layer::Linear { weight, bias } => {
                let y = x.matmul(&get(weight)?.t()?)?;
                match bias {
                    Some(b) => y.broadcast_add(&get(b)?)?,
                    None => y,
                }
            }
            Layer::Conv2d {
                weight,
                bias,
                stride,
                padding,
            } => {
                let y = x.conv2d(&get(weight)?, *padding, *stride, 1, 1)?;
                match bias {
                    Some(b) => {
                        let b = get(b)?;
                        let n = b.dim(0)?;
                        y.broadcast_add(&b.reshape((1, n, 1, 1))?)?
                    }
                    None => y,
                }
            }
            Layer::Maxpool2d { size, stride } => {
                x.max_pool2d_with_stride(*size, stride.unwrap_or(*size))?
            }
            Layer::Avgpool2d { size, stride } => {
                x.avg_pool2d_with_stride(*size, stride.unwrap_or(*size))?
            }
            Layer::Flatten => x.flatten_from(1)?,
            Layer::Relu => x.relu()?,
            Layer::Tanh => x.tanh()?,
            Layer::Sigmoid => (x.neg()?.exp()? + 1.0)?.recip()?,
            Layer::Gelu => x.gelu_erf()?,
            Layer::Softmax if i == last => x,
            Layer::Softmax => candle_nn::ops::softmax(&x, D::Minus1)?,
        };
    }
    Ok(x)
}

/// Writes `opts.count` clean fine-tunes of the baseline (mlsign network spec) into
/// `out/null-0000`, `out/null-0001`, … and returns their directories. Each is trained on a
/// bootstrap sample of the suite's labelled inputs with Adam for a few epochs.
pub fn generate(
    suite: &Suite,
    baseline: &Path,
    out: &Path,
    opts: &NullOptions,
    device: &Device,
    progress: &dyn Fn(usize, usize),
) -> Result<Vec<PathBuf>> {
    if opts.count == 0 || opts.count > MAX_NULLS {
        return Err(fail(
            out,
            format!(
                "the number of null candidates must be in 1..={MAX_NULLS}, not {}",
                opts.count
            ),
        ));
    }
    let labels = suite.labels.as_ref().ok_or_else(|| {
        fail(
            &suite.inputs_path,
            format!(
                "generating null candidates needs labels: add an integer tensor `{}` [N] to the suite's inputs",
                suite.file.suite.label_tensor
            ),
        )
    })?;
    let spec_path = baseline.join(SPEC_FILE);
    if !spec_path.is_file() {
        return Err(fail(
            baseline,
            "null candidates can be generated only for models in the mlsign network spec (mlsign-net.json); calibrate with real benign models instead",
        ));
    }
    let raw = tensors::read_bounded(&spec_path, 4 << 20)?;
    let spec: NetSpec = crate::json::from_slice(&raw)
        .map_err(|e| fail(&spec_path, format!("invalid network spec: {e}")))?;
    // The baseline was loaded (and its weights path confined to its directory) by the runner
    // before this is called; the weights are read again here as trainable tensors.
    let wpath = baseline.join(&spec.weights);
    let file = tensors::load(&wpath)?;
    let mut names: Vec<&String> = file.tensors.keys().collect();
    names.sort();
    let base: Vec<(String, Tensor)> = names
        .iter()
        .map(|n| {
            let t = &file.tensors[*n];
            t.to_dtype(DType::F32)
                .and_then(|t| t.to_device(device))
                .map(|t| ((*n).clone(), t))
                .map_err(|e| cerr(&wpath, e))
        })
        .collect::<Result<_>>()?;

    let n = suite.n;
    let len = suite.sample_len();
    let in_len: usize = spec.input_shape.iter().product();
    if n == 0 || len != in_len {
        return Err(fail(
            &suite.inputs_path,
            format!(
                "the suite's {n} inputs of {len} values do not fit the network's input shape {:?}",
                spec.input_shape
            ),
        ));
    }
    let bs = opts.batch_size.max(1);
    let (lo, hi) = (
        opts.epochs.0.max(1),
        opts.epochs.1.max(opts.epochs.0.max(1)),
    );
    std::fs::create_dir_all(out).map_err(|e| BehaveError::Io {
        path: out.to_path_buf(),
        source: e,
    })?;
    let spec_json = {
        let mut s = spec.clone();
        s.weights = "model.safetensors".into();
        serde_json::to_vec_pretty(&s).map_err(|e| fail(&spec_path, e.to_string()))?
    };
    let mut dirs = Vec::with_capacity(opts.count);
    for i in 0..opts.count {
        progress(i, opts.count);
        let mut rng = SplitMix64::new(opts.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let epochs = lo + rng.below((hi - lo + 1) as u64) as usize;
        let lr = opts.lrs[rng.below(opts.lrs.len().max(1) as u64) as usize % opts.lrs.len().max(1)];
        let vars: HashMap<String, Var> = base
            .iter()
            .map(|(k, t)| Var::from_tensor(t).map(|v| (k.clone(), v)))
            .collect::<candle_core::Result<_>>()
            .map_err(|e| cerr(&wpath, e))?;
        let mut opt = AdamW::new(
            vars.values().cloned().collect(),
            ParamsAdamW {
                lr,
                weight_decay: 0.0,
                ..Default::default()
            },
        )
        .map_err(|e| cerr(&wpath, e))?;
        // Bootstrap sample of the suite's labelled inputs.
        let sample: Vec<usize> = (0..n).map(|_| rng.below(n as u64) as usize).collect();
        for _ in 0..epochs {
            let mut order = sample.clone();
            for j in (1..order.len()).rev() {
                order.swap(j, rng.below(j as u64 + 1) as usize);
            }
            for chunk in order.chunks(bs) {
                let mut xb = Vec::with_capacity(chunk.len() * len);
                let mut yb = Vec::with_capacity(chunk.len());
                for &k in chunk {
                    xb.extend_from_slice(&suite.x[k * len..(k + 1) * len]);
                    yb.push(labels[k]);
                }
                let mut step = || -> candle_core::Result<()> {
                    let mut shape = vec![chunk.len()];
                    shape.extend_from_slice(&spec.input_shape);
                    let x = Tensor::from_vec(xb.clone(), shape, device)?;
                    let y = Tensor::from_vec(yb.clone(), chunk.len(), device)?;
                    let logits = forward(&spec, &vars, &x)?;
                    let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
                    opt.backward_step(&loss)
                };
                step().map_err(|e| cerr(&wpath, e))?;
            }
        }
        let dir = out.join(format!("null-{i:04}"));
        std::fs::create_dir_all(&dir).map_err(|e| BehaveError::Io {
            path: dir.clone(),
            source: e,
        })?;
        let trained: HashMap<String, Tensor> = vars
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        let wfile = dir.join("model.safetensors");
        candle_core::safetensors::save(&trained, &wfile).map_err(|e| cerr(&wfile, e))?;
        let sfile = dir.join(SPEC_FILE);
        std::fs::write(&sfile, &spec_json).map_err(|e| BehaveError::Io {
            path: sfile,
            source: e,
        })?;
        dirs.push(dir);
    }
    progress(opts.count, opts.count);
    Ok(dirs)
}
