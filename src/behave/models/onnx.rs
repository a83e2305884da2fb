//! ONNX classifiers through candle-onnx (cargo feature `onnx`). A directory holding one `*.onnx`
//! file (or the file itself) whose graph maps one float tensor `[B, ...]` to `[B, C]` logits or
//! probabilities.
//!
//! Everything candle-onnx would trip over is refused at load time, before any input runs: ops
//! outside [`SUPPORTED_OPS`] (named with their node), external-data or sparse tensors, files over
//! [`MAX_ONNX_BYTES`], non-float inputs, several inputs/outputs, symbolic per-sample dimensions,
//! nodes with missing inputs. The graph is then evaluated node by node (each node through
//! `candle_onnx::simple_eval`), so every tensor's size is bounded before it is allocated and a
//! failure names its node. Initializers are decoded here, not by candle-onnx, with their sizes
//! checked against the bytes present. Loading never executes code from the model.

use super::{ModelInfo, OutputKind};
use crate::behave::error::{BehaveError, Result};
use crate::behave::tensors::{read_bounded, sha256_hex};
use candle_core::{DType, Device, Tensor};
use candle_onnx::onnx::{
    self, attribute_proto::AttributeType, tensor_proto::DataLocation, tensor_proto::DataType,
    tensor_shape_proto::dimension, type_proto,
};
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

pub const FORMAT: &str = "onnx";
/// Largest `.onnx` file read (protobuf itself caps a message at 2 GiB).
pub const MAX_ONNX_BYTES: u64 = 1 << 30;
/// Largest tensor any node may produce, in elements (1 GiB of f32).
pub const MAX_TENSOR_ELEMS: usize = 1 << 28;
/// Optional sidecar with class names (a JSON array of strings), next to the `.onnx` file.
pub const LABELS_FILE: &str = "labels.json";
/// Largest padding, stride, dilation or kernel extent accepted in Conv/pool attributes.
const MAX_WINDOW: i64 = 4096;

/// Ops accepted, with their (min, max) input counts as candle-onnx indexes them. The subset of
/// candle-onnx 0.11.1's ops that feed-forward classifiers use and that cannot allocate more than
/// their inputs' shapes imply (no Expand, Tile, ConstantOfShape, Range, Resize, Pad, control flow).
pub const SUPPORTED_OPS: &[(&str, usize, usize)] = &[
    ("Abs", 1, 1),
    ("Add", 2, 2),
    ("AveragePool", 1, 1),
    ("BatchNormalization", 5, 5),
    ("Cast", 1, 1),
    ("Clip", 1, 3),
    ("Concat", 1, 64),
    ("Constant", 0, 0),
    ("Conv", 2, 3),
    ("Div", 2, 2),
    ("Dropout", 1, 3),
    ("Erf", 1, 1),
    ("Exp", 1, 1),
    ("Flatten", 1, 1),
    ("Gather", 2, 2),
    ("Gelu", 1, 1),
    ("Gemm", 3, 3),
    ("HardSwish", 1, 1),
    ("Identity", 1, 1),
    ("LeakyRelu", 1, 1),
    ("Log", 1, 1),
    ("LogSoftmax", 1, 1),
    ("MatMul", 2, 2),
    ("MaxPool", 1, 1),
    ("Mul", 2, 2),
    ("Neg", 1, 1),
    ("Pow", 2, 2),
    ("PRelu", 2, 2),
    ("ReduceMean", 1, 1),
    ("Relu", 1, 1),
    ("Reshape", 2, 2),
    ("Selu", 1, 1),
    ("Shape", 1, 1),
    ("Sigmoid", 1, 1),
    ("Softmax", 1, 1),
    ("Sqrt", 1, 1),
    ("Squeeze", 1, 2),
    ("Sub", 2, 2),
    ("Tanh", 1, 1),
    ("Transpose", 1, 1),
    ("Unsqueeze", 1, 2),
];

/// Comma-separated list of [`SUPPORTED_OPS`] for error messages and docs.
pub fn supported_ops() -> String {
    SUPPORTED_OPS
        .iter()
        .map(|o| o.0)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One node, ready to run alone through `simple_eval`.
struct Step {
    /// A model whose graph is this node alone, its first output as the graph output.
    single: onnx::ModelProto,
    name: String,
    op: String,
    inputs: Vec<String>,
    output: String,
    /// Values no later step reads: dropped after this one.
    frees: Vec<String>,
    /// Softmax/LogSoftmax of opset < 13 (flattens to 2-D at `axis`): only rank-2 inputs are
    /// computed the same way by candle-onnx.
    legacy_softmax: bool,
}

pub struct OnnxModel {
    path: PathBuf,
    steps: Vec<Step>,
    /// Initializers and Constant outputs.
    consts: HashMap<String, Tensor>,
    input_name: String,
    output_name: String,
    /// The graph fixes the batch dimension to 1: run one sample at a time.
    batch_one: bool,
    pub info: ModelInfo,
}

fn fmt_err(path: &Path, msg: impl Into<String>) -> BehaveError {
    BehaveError::format(path, msg)
}

/// IEEE 754 binary16 bits to f32 (exact: every f16 is an f32).
fn f16_to_f32(h: u16) -> f32 {
    half::f16::from_bits(h).to_f32()
}

/// Decode a tensor held in the model file. Floats become f32, integers i64, bool/uint8 u8.
fn decode_tensor(path: &Path, t: &onnx::TensorProto, what: &str) -> Result<Tensor> {
    let bad = |m: String| fmt_err(path, format!("{what}: {m}"));
    if t.data_location == DataLocation::External as i32 || !t.external_data.is_empty() {
        let loc = t
            .external_data
            .iter()
            .find(|e| e.key == "location")
            .map_or("?", |e| e.value.as_str());
        return Err(bad(format!(
            "stores its data in an external file (`{loc}`); mlsign reads self-contained .onnx \
files only: re-save it with onnx.save_model(model, path, save_as_external_data=False)"
        )));
    }
    let mut dims = Vec::with_capacity(t.dims.len());
    let mut n: usize = 1;
    for &d in &t.dims {
        if d < 0 {
            return Err(bad(format!("negative dimension in {:?}", t.dims)));
        }
        dims.push(d as usize);
        n = n
            .checked_mul(d as usize)
            .filter(|&n| n <= MAX_TENSOR_ELEMS)
            .ok_or_else(|| bad(format!("shape {:?} is too large", t.dims)))?;
    }
    let raw = &t.raw_data;
    let width = |w: usize| -> Result<()> {
        if raw.len() != n * w {
            return Err(bad(format!(
                "shape {dims:?} needs {} bytes of data, the file holds {}",
                n * w,
                raw.len()
            )));
        }
        Ok(())
    };
    let count = |have: usize| -> Result<()> {
        if have != n {
            return Err(bad(format!(
                "shape {dims:?} needs {n} values, the file holds {have}"
            )));
        }
        Ok(())
    };
    let dev = &Device::Cpu;
    let dt = DataType::try_from(t.data_type).unwrap_or(DataType::Undefined);
    let tensor = match dt {
        DataType::Float | DataType::Double | DataType::Float16 | DataType::Bfloat16 => {
            let v: Vec<f32> = if !raw.is_empty() || n == 0 {
                match dt {
                    DataType::Float => {
                        width(4)?;
                        raw.chunks_exact(4)
                            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                            .collect()
                    }
                    DataType::Double => {
                        width(8)?;
                        raw.chunks_exact(8)
                            .map(|c| {
                                f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
                                    as f32
                            })
                            .collect()
                    }
                    DataType::Float16 => {
                        width(2)?;
                        raw.chunks_exact(2)
                            .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                            .collect()
                    }
                    _ => {
                        width(2)?;
                        raw.chunks_exact(2)
                            .map(|c| {
                                f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16)
                            })
                            .collect()
                    }
                }
            } else {
                match dt {
                    DataType::Float => {
                        count(t.float_data.len())?;
                        t.float_data.clone()
                    }
                    DataType::Double => {
                        count(t.double_data.len())?;
                        t.double_data.iter().map(|&v| v as f32).collect()
                    }
                    // float16/bfloat16 values sit in int32_data, one per entry
                    DataType::Float16 => {
                        count(t.int32_data.len())?;
                        t.int32_data.iter().map(|&v| f16_to_f32(v as u16)).collect()
                    }
                    _ => {
                        count(t.int32_data.len())?;
                        t.int32_data
                            .iter()
                            .map(|&v| f32::from_bits((v as u32 & 0xffff) << 16))
                            .collect()
                    }
                }
            };
            if v.iter().any(|x| !x.is_finite()) {
                return Err(BehaveError::NonFiniteTensor {
                    path: path.into(),
                    tensor: if t.name.is_empty() {
                        what.into()
                    } else {
                        t.name.clone()
                    },
                });
            }
            Tensor::from_vec(v, dims, dev)?
        }
        DataType::Int64 | DataType::Int32 => {
            let v: Vec<i64> = if !raw.is_empty() || n == 0 {
                if dt == DataType::Int64 {
                    width(8)?;
                    raw.chunks_exact(8)
                        .map(|c| {
                            i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
                        })
                        .collect()
                } else {
                    width(4)?;
                    raw.chunks_exact(4)
                        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                        .collect()
                }
            } else if dt == DataType::Int64 {
                count(t.int64_data.len())?;
                t.int64_data.clone()
            } else {
                count(t.int32_data.len())?;
                t.int32_data.iter().map(|&v| v as i64).collect()
            };
            Tensor::from_vec(v, dims, dev)?
        }
        DataType::Uint8 | DataType::Bool => {
            let v: Vec<u8> = if !raw.is_empty() || n == 0 {
                width(1)?;
                raw.clone()
            } else {
                count(t.int32_data.len())?;
                t.int32_data.iter().map(|&v| v as u8).collect()
            };
            Tensor::from_vec(v, dims, dev)?
        }
        other => {
            return Err(bad(format!(
            "has data type {other:?} ({}); mlsign reads float, int32/int64 and uint8/bool tensors",
            t.data_type
        )))
        }
    };
    Ok(tensor)
}

fn attr<'a>(node: &'a onnx::NodeProto, name: &str) -> Option<&'a onnx::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn attr_i(node: &onnx::NodeProto, name: &str) -> Option<i64> {
    attr(node, name)
        .filter(|a| a.r#type == AttributeType::Int as i32)
        .map(|a| a.i)
}

fn attr_ints<'a>(node: &'a onnx::NodeProto, name: &str) -> Option<&'a [i64]> {
    attr(node, name)
        .filter(|a| a.r#type == AttributeType::Ints as i32)
        .map(|a| a.ints.as_slice())
}

/// Compact, name-free description of a node's attributes for the architecture fingerprint.
fn describe_attrs(node: &onnx::NodeProto) -> String {
    let mut parts: Vec<String> = node
        .attribute
        .iter()
        .filter_map(|a| match AttributeType::try_from(a.r#type).ok()? {
            AttributeType::Int => Some(format!("{}={}", a.name, a.i)),
            AttributeType::Ints => Some(format!("{}={:?}", a.name, a.ints)),
            AttributeType::Float => Some(format!("{}={}", a.name, a.f)),
            AttributeType::String => Some(format!("{}={}", a.name, String::from_utf8_lossy(&a.s))),
            _ => None,
        })
        .collect();
    parts.sort();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" {}", parts.join(" "))
    }
}

/// The value of a Constant node.
fn constant_value(path: &Path, node: &onnx::NodeProto, what: &str) -> Result<Tensor> {
    let dev = &Device::Cpu;
    let a = node
        .attribute
        .first()
        .filter(|_| node.attribute.len() == 1)
        .ok_or_else(|| {
            fmt_err(
                path,
                format!("{what}: a Constant needs exactly one attribute"),
            )
        })?;
    let t = match a.name.as_str() {
        "value" => match &a.t {
            Some(t) => decode_tensor(path, t, what)?,
            None => return Err(fmt_err(path, format!("{what}: `value` holds no tensor"))),
        },
        "value_float" => Tensor::new(a.f, dev)?,
        "value_floats" => Tensor::new(a.floats.as_slice(), dev)?,
        "value_int" => Tensor::new(a.i, dev)?,
        "value_ints" => Tensor::new(a.ints.as_slice(), dev)?,
        other => {
            return Err(fmt_err(
                path,
                format!("{what}: Constant attribute `{other}` is not supported"),
            ))
        }
    };
    Ok(t)
}

/// Statically check a node's attributes where candle-onnx trusts them (casts to usize, divides).
fn check_attrs(path: &Path, node: &onnx::NodeProto, what: &str) -> Result<()> {
    let bad = |m: String| Err(fmt_err(path, format!("{what}: {m}")));
    for (name, lo) in [
        ("pads", 0),
        ("strides", 1),
        ("dilations", 1),
        ("kernel_shape", 1),
    ] {
        if let Some(a) = attr(node, name) {
            if a.ints.iter().any(|&v| v < lo || v > MAX_WINDOW) {
                return bad(format!(
                    "attribute `{name}` = {:?} is out of range ({lo}..={MAX_WINDOW})",
                    a.ints
                ));
            }
        }
    }
    match node.op_type.as_str() {
        "Conv" => {
            if let Some(g) = attr_i(node, "group") {
                if !(1..=1 << 20).contains(&g) {
                    return bad(format!("group = {g} is out of range"));
                }
            }
        }
        "MaxPool" | "AveragePool" if attr_ints(node, "kernel_shape").is_none() => {
            return bad("pooling needs a `kernel_shape` attribute".into());
        }
        "Unsqueeze" if node.input.len() < 2 && attr_ints(node, "axes").is_none() => {
            return bad("Unsqueeze needs `axes` (attribute or second input)".into());
        }
        // Attributes candle-onnx 0.11.1 ignores: refused rather than silently computed wrong.
        "MaxPool" | "AveragePool" if attr_i(node, "ceil_mode").is_some_and(|v| v != 0) => {
            return bad("ceil_mode = 1 is not supported (candle-onnx rounds down)".into());
        }
        "Gelu" if attr(node, "approximate").is_some_and(|a| a.s != b"none") => {
            return bad(
                "approximate = \"tanh\" is not supported (candle-onnx computes the erf form)"
                    .into(),
            );
        }
        "Clip" if attr(node, "min").is_some() || attr(node, "max").is_some() => {
            return bad(
                "min/max as attributes (opset < 11) are not supported (candle-onnx reads them as \
inputs); re-export with opset ≥ 11"
                    .into(),
            );
        }
        "Squeeze" if attr(node, "axes").is_some() => {
            return bad(
                "`axes` as an attribute (opset < 13) is not supported (candle-onnx ignores it); \
re-export with opset ≥ 13"
                    .into(),
            );
        }
        "Concat" if attr_i(node, "axis").is_none() => {
            return bad("Concat needs an `axis` attribute".into());
        }
        "Cast" if attr_i(node, "to").is_none() => {
            return bad("Cast needs a `to` attribute".into());
        }
        _ => {}
    }
    Ok(())
}

fn broadcast_elems(shapes: &[&[usize]]) -> usize {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    (0..rank)
        .map(|i| {
            shapes
                .iter()
                .filter_map(|s| (i + s.len()).checked_sub(rank).map(|j| s[j]))
                .max()
                .unwrap_or(1)
        })
        .fold(1usize, |a, d| a.saturating_mul(d))
}

/// An upper bound on the elements a node produces, from its inputs' shapes.
fn output_bound(node: &onnx::NodeProto, ins: &[&Tensor]) -> usize {
    let elems = |t: &Tensor| t.elem_count();
    let dims: Vec<&[usize]> = ins.iter().map(|t| t.dims()).collect();
    let max_in = ins.iter().map(|t| elems(t)).max().unwrap_or(1);
    let prod = |d: &[usize]| d.iter().fold(1usize, |a, &b| a.saturating_mul(b));
    match node.op_type.as_str() {
        "Add" | "Sub" | "Mul" | "Div" | "Pow" | "PRelu" | "Clip" => broadcast_elems(&dims),
        "MatMul" | "Gemm" => {
            // [.., m, k] x [.., k, n]: broadcast batch dims × m × n (bounded by the largest dims)
            let (a, b) = (dims[0], dims[1]);
            let batch = |d: &[usize]| prod(&d[..d.len().saturating_sub(2)]);
            let big = |d: &[usize]| d.iter().rev().take(2).copied().max().unwrap_or(1);
            let mn = big(a).saturating_mul(big(b));
            let c = dims.get(2).map_or(1, |d| prod(d));
            batch(a).max(batch(b)).saturating_mul(mn).max(c).max(max_in)
        }
        "Conv" => {
            let (x, w) = (dims[0], dims[1]);
            let pads: i64 =
                attr_ints(node, "pads").map_or(0, |p| p.iter().copied().max().unwrap_or(0));
            let spatial = x
                .iter()
                .skip(2)
                .fold(1usize, |a, &d| a.saturating_mul(d + 2 * pads as usize));
            x.first()
                .copied()
                .unwrap_or(1)
                .saturating_mul(w.first().copied().unwrap_or(1))
                .saturating_mul(spatial)
        }
        "Concat" => ins.iter().fold(0usize, |a, t| a.saturating_add(elems(t))),
        "Gather" => {
            let (x, idx) = (dims[0], ins[1].elem_count().max(1));
            let axis = attr_i(node, "axis").unwrap_or(0);
            let axis = if axis < 0 {
                axis + x.len() as i64
            } else {
                axis
            };
            let along = usize::try_from(axis)
                .ok()
                .and_then(|a| x.get(a).copied())
                .unwrap_or(1)
                .max(1);
            (prod(x) / along).saturating_mul(idx)
        }
        _ => max_in,
    }
}

impl OnnxModel {
    /// Load `file` (a `.onnx` file); `dir` is its directory, where `labels.json` may sit.
    /// `output` picks the graph output holding the class scores when there are several (a graph
    /// with one output uses it whatever `output` says).
    pub fn load(file: &Path, device: &Device, output: Option<&str>) -> Result<Self> {
        let bytes = read_bounded(file, MAX_ONNX_BYTES)?;
        let sha256 = sha256_hex(&bytes);
        let model = onnx::ModelProto::decode(bytes.as_slice()).map_err(|e| {
            fmt_err(
                file,
                format!("not a valid ONNX model (protobuf decoding failed: {e}); is the file truncated?"),
            )
        })?;
        drop(bytes);
        let labels_path = file.parent().map(|d| d.join(LABELS_FILE));
        let sidecar = match &labels_path {
            Some(p) if p.is_file() => {
                let raw = read_bounded(p, 4 << 20)?;
                Some(serde_json::from_slice::<Vec<String>>(&raw).map_err(|e| {
                    fmt_err(p, format!("expected a JSON array of class names: {e}"))
                })?)
            }
            _ => None,
        };
        Self::from_proto(model, file, sha256, sidecar, output, device)
    }

    fn from_proto(
        model: onnx::ModelProto,
        path: &Path,
        sha256: String,
        sidecar_labels: Option<Vec<String>>,
        want_output: Option<&str>,
        device: &Device,
    ) -> Result<Self> {
        let graph = model
            .graph
            .as_ref()
            .ok_or_else(|| fmt_err(path, "the model has no graph"))?;
        if !graph.sparse_initializer.is_empty() {
            return Err(fmt_err(
                path,
                "sparse initializers are not supported; densify them before export",
            ));
        }
        // Default-domain opset (ONNX's own default when absent is not defined; assume current).
        let opset = model
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map_or(i64::MAX, |o| o.version);
        // Initializers, decoded and checked here.
        let mut consts: HashMap<String, Tensor> = HashMap::new();
        let mut init_shapes: HashMap<String, Vec<usize>> = HashMap::new();
        for t in &graph.initializer {
            let what = format!("initializer `{}`", t.name);
            let v = decode_tensor(path, t, &what)?;
            init_shapes.insert(t.name.clone(), v.dims().to_vec());
            consts.insert(t.name.clone(), v);
        }
        // The one real input (older exports also list initializers as inputs).
        let real_inputs: Vec<&onnx::ValueInfoProto> = graph
            .input
            .iter()
            .filter(|i| !consts.contains_key(&i.name))
            .collect();
        let names = |v: &[&onnx::ValueInfoProto]| {
            v.iter()
                .map(|i| format!("`{}`", i.name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if real_inputs.len() != 1 {
            return Err(fmt_err(
                path,
                format!(
                    "the graph has {} inputs ({}); mlsign runs classifiers with exactly one float tensor input",
                    real_inputs.len(),
                    names(&real_inputs)
                ),
            ));
        }
        let all_outs: Vec<&onnx::ValueInfoProto> = graph.output.iter().collect();
        // The suite's choice matters only when there is a choice.
        let want_output = want_output.filter(|_| all_outs.len() > 1);
        let outs: Vec<&onnx::ValueInfoProto> = match want_output {
            Some(w) => all_outs.iter().copied().filter(|o| o.name == w).collect(),
            None => all_outs.clone(),
        };
        if outs.len() != 1 {
            let msg = match want_output {
                Some(w) => format!(
                    "the suite's model_output = {w:?} is not among the graph's outputs ({})",
                    names(&all_outs)
                ),
                None => format!(
                    "the graph has {} outputs ({}); mlsign needs one [batch, classes] output: \
name it with model_output = \"…\" in the suite's [suite] table",
                    outs.len(),
                    names(&outs)
                ),
            };
            return Err(fmt_err(path, msg));
        }
        let input = real_inputs[0];
        let (batch_one, input_shape) = input_signature(path, input)?;
        let output_name = outs[0].name.clone();

        // Nodes: supported ops only, arity, attributes, defined inputs.
        let mut defined: HashSet<String> = consts.keys().cloned().collect();
        defined.insert(input.name.clone());
        let mut secondary: HashMap<String, String> = HashMap::new();
        let mut steps = Vec::new();
        let mut arch = Vec::new();
        let mut producer_op: HashMap<String, String> = HashMap::new();
        for (i, node) in graph.node.iter().enumerate() {
            let label = if node.name.is_empty() {
                format!("#{i}")
            } else {
                node.name.clone()
            };
            let file = path.file_name().map_or_else(
                || path.display().to_string(),
                |f| f.to_string_lossy().into(),
            );
            let op = &node.op_type;
            let what = format!("node `{label}` ({op})");
            let known = SUPPORTED_OPS.iter().find(|o| o.0 == op);
            let domain_ok = node.domain.is_empty() || node.domain == "ai.onnx";
            let Some(&(_, lo, hi)) = known.filter(|_| domain_ok) else {
                let shown = if domain_ok {
                    op.clone()
                } else {
                    format!("{}::{op}", node.domain)
                };
                return Err(fmt_err(
                    path,
                    format!(
                        "unsupported ONNX op `{shown}` (node `{label}`) in {file}; supported ops: {}. \
Re-export the model with supported ops (e.g. a lower opset or constant folding) or use the mlsign network spec",
                        supported_ops()
                    ),
                ));
            };
            if node.input.len() < lo || node.input.len() > hi {
                return Err(fmt_err(
                    path,
                    format!(
                        "{what} has {} inputs; mlsign evaluates {op} with {}",
                        node.input.len(),
                        if lo == hi {
                            format!("{lo}")
                        } else {
                            format!("{lo} to {hi}")
                        }
                    ),
                ));
            }
            let out = match node.output.first() {
                Some(o) if !o.is_empty() => o.clone(),
                _ => return Err(fmt_err(path, format!("{what} has no output"))),
            };
            check_attrs(path, node, &what)?;
            for (k, inp) in node.input.iter().enumerate() {
                if inp.is_empty() {
                    if k < lo {
                        return Err(fmt_err(path, format!("{what}: input {k} is required")));
                    }
                    continue;
                }
                if let Some(p) = secondary.get(inp) {
                    return Err(fmt_err(
                        path,
                        format!("{what} reads `{inp}`, a secondary output of node `{p}`; only first outputs are evaluated"),
                    ));
                }
                if !defined.contains(inp) {
                    return Err(fmt_err(
                        path,
                        format!("{what} reads `{inp}`, which no earlier node, initializer or input defines"),
                    ));
                }
            }
            for o in node.output.iter().skip(1).filter(|o| !o.is_empty()) {
                secondary.insert(o.clone(), label.clone());
            }
            let shapes: Vec<Vec<usize>> = node
                .input
                .iter()
                .filter_map(|n| init_shapes.get(n).cloned())
                .collect();
            if op == "Constant" {
                let v = constant_value(path, node, &what)?;
                arch.push(format!("Constant{:?}", v.dims()));
                init_shapes.insert(out.clone(), v.dims().to_vec());
                consts.insert(out.clone(), v);
                defined.insert(out);
                continue;
            }
            arch.push(format!("{op}{shapes:?}{}", describe_attrs(node)));
            let mut single_node = node.clone();
            single_node.output.truncate(1);
            let single = onnx::ModelProto {
                graph: Some(onnx::GraphProto {
                    node: vec![single_node],
                    output: vec![onnx::ValueInfoProto {
                        name: out.clone(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            };
            producer_op.insert(out.clone(), op.clone());
            defined.insert(out.clone());
            steps.push(Step {
                single,
                name: label,
                op: op.clone(),
                inputs: node
                    .input
                    .iter()
                    .filter(|s| !s.is_empty())
                    .cloned()
                    .collect(),
                output: out,
                frees: vec![],
                legacy_softmax: opset < 13 && (op == "Softmax" || op == "LogSoftmax"),
            });
        }
        if !defined.contains(&output_name) {
            return Err(fmt_err(
                path,
                format!("the graph output `{output_name}` is not produced by any node"),
            ));
        }
        // Free each intermediate after its last reader.
        let mut last: HashMap<&str, usize> = HashMap::new();
        for (i, s) in steps.iter().enumerate() {
            for n in &s.inputs {
                last.insert(n.as_str(), i);
            }
        }
        let frees: Vec<Vec<String>> = (0..steps.len())
            .map(|i| {
                last.iter()
                    .filter(|&(n, l)| {
                        *l == i && !consts.contains_key(*n) && *n != output_name.as_str()
                    })
                    .map(|(n, _)| n.to_string())
                    .collect()
            })
            .collect();
        for (s, f) in steps.iter_mut().zip(frees) {
            s.frees = f;
        }
        let output = if producer_op
            .get(&output_name)
            .is_some_and(|o| o == "Softmax")
        {
            OutputKind::Probabilities
        } else {
            OutputKind::Logits
        };
        let mut m = OnnxModel {
            path: path.to_path_buf(),
            steps,
            consts,
            input_name: input.name.clone(),
            output_name,
            batch_one,
            info: ModelInfo {
                format: FORMAT.into(),
                weights: path.display().to_string(),
                weights_sha256: sha256,
                input_shape: input_shape.clone(),
                outputs: 0,
                output,
                arch,
                labels: None,
                tokenizer_sha256: None,
            },
        };
        // One dry run on a zero sample: the number of classes, and any evaluation error named now.
        let mut shape = vec![1usize];
        shape.extend(&input_shape);
        let y = m.forward(&Tensor::zeros(shape, DType::F32, device)?)?;
        m.info.outputs = y.dims()[1];
        if m.info.outputs < 2 {
            return Err(fmt_err(
                path,
                format!(
                    "output `{}` has {} class score(s); mlsign needs ≥ 2",
                    m.output_name, m.info.outputs
                ),
            ));
        }
        let meta_labels = model
            .metadata_props
            .iter()
            .find(|p| p.key == "labels")
            .map(|p| {
                serde_json::from_str::<Vec<String>>(&p.value).map_err(|e| {
                    fmt_err(
                        path,
                        format!("metadata_props `labels` is not a JSON array of strings: {e}"),
                    )
                })
            })
            .transpose()?;
        if let Some(l) = sidecar_labels.or(meta_labels) {
            if l.len() != m.info.outputs {
                return Err(fmt_err(
                    path,
                    format!("{} labels for {} outputs", l.len(), m.info.outputs),
                ));
            }
            m.info.labels = Some(l);
        }
        Ok(m)
    }

    fn run_node(
        &self,
        step: &Step,
        values: &HashMap<String, Tensor>,
    ) -> candle_core::Result<Tensor> {
        let here = |m: String| {
            candle_core::Error::Msg(format!(
                "{}: node `{}` ({}): {m}",
                self.path.display(),
                step.name,
                step.op
            ))
        };
        let mut ins = HashMap::with_capacity(step.inputs.len());
        let mut refs = Vec::with_capacity(step.inputs.len());
        for n in &step.inputs {
            let t = values
                .get(n)
                .or_else(|| self.consts.get(n))
                .ok_or_else(|| here(format!("input `{n}` is not available")))?;
            if t.elem_count() == 0 {
                return Err(here(format!("input `{n}` is empty ({:?})", t.dims())));
            }
            ins.insert(n.clone(), t.clone());
            refs.push(t);
        }
        if step.legacy_softmax && refs[0].rank() != 2 {
            return Err(here(format!(
                "opset < 13 {} of a rank-{} input is not supported (candle-onnx applies the opset-13 \
semantics); re-export with opset ≥ 13",
                step.op,
                refs[0].rank()
            )));
        }
        let bound = output_bound(&step.single.graph.as_ref().unwrap().node[0], &refs);
        if bound > MAX_TENSOR_ELEMS {
            return Err(here(format!(
                "would produce up to {bound} elements (limit {MAX_TENSOR_ELEMS}); lower the suite's batch_size, or the graph is malformed"
            )));
        }
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            candle_onnx::simple_eval(&step.single, ins)
        }));
        let mut out = match res {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => return Err(here(e.to_string())),
            Err(_) => {
                return Err(here(
                    "candle-onnx panicked evaluating this node (malformed node?)".into(),
                ))
            }
        };
        let y = out
            .remove(&step.output)
            .ok_or_else(|| here("no output produced".into()))?;
        if y.elem_count() > MAX_TENSOR_ELEMS {
            return Err(here(format!(
                "produced {} elements (limit {MAX_TENSOR_ELEMS})",
                y.elem_count()
            )));
        }
        Ok(y)
    }

    fn run(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut values: HashMap<String, Tensor> = HashMap::new();
        values.insert(self.input_name.clone(), x.clone());
        for step in &self.steps {
            let y = self.run_node(step, &values)?;
            values.insert(step.output.clone(), y);
            for f in &step.frees {
                values.remove(f);
            }
        }
        let y = values
            .remove(&self.output_name)
            .or_else(|| self.consts.get(&self.output_name).cloned())
            .ok_or_else(|| {
                candle_core::Error::Msg(format!("{}: no output", self.path.display()))
            })?;
        let b = x.dims()[0];
        if y.rank() != 2 || y.dims()[0] != b {
            return Err(candle_core::Error::Msg(format!(
                "{}: output `{}` has shape {:?} for a batch of {b}; mlsign needs [batch, classes]",
                self.path.display(),
                self.output_name,
                y.dims()
            )));
        }
        y.to_dtype(DType::F32)
    }

    /// Run a batch `[B, ...input_shape]`; returns the graph output `[B, C]` as f32 on the input's
    /// device. candle-onnx evaluates on the CPU, so that is where the graph runs.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let cpu = x.to_device(&Device::Cpu)?;
        let y = if !self.batch_one || cpu.dims()[0] == 1 {
            self.run(&cpu)?
        } else {
            let ys = (0..cpu.dims()[0])
                .map(|i| self.run(&cpu.narrow(0, i, 1)?))
                .collect::<candle_core::Result<Vec<_>>>()?;
            Tensor::cat(&ys, 0)?
        };
        y.to_device(x.device())
    }
}

/// (batch fixed to 1?, per-sample shape) of the graph input; refuses non-float or symbolic shapes.
fn input_signature(path: &Path, input: &onnx::ValueInfoProto) -> Result<(bool, Vec<usize>)> {
    let name = &input.name;
    let bad = |m: String| Err(fmt_err(path, format!("input `{name}`: {m}")));
    let Some(type_proto::Value::TensorType(tt)) =
        input.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return bad("is not a tensor".into());
    };
    let dt = DataType::try_from(tt.elem_type).unwrap_or(DataType::Undefined);
    if !matches!(
        dt,
        DataType::Float | DataType::Double | DataType::Float16 | DataType::Bfloat16
    ) {
        return bad(format!(
            "has element type {dt:?}; mlsign feeds float tensors (image/tabular classifiers), not token ids or other types"
        ));
    }
    let Some(shape) = &tt.shape else {
        return bad("has no declared shape; export it with a fixed per-sample shape".into());
    };
    if shape.dim.len() < 2 {
        return bad(format!(
            "has rank {}; mlsign needs [batch, ...sample shape]",
            shape.dim.len()
        ));
    }
    let batch_one = match &shape.dim[0].value {
        Some(dimension::Value::DimValue(1)) => true,
        Some(dimension::Value::DimValue(v)) if *v > 1 => {
            return bad(format!(
                "the batch dimension is fixed to {v}; re-export with a symbolic batch dimension or batch 1"
            ))
        }
        _ => false,
    };
    let mut sample = Vec::new();
    for (k, d) in shape.dim.iter().enumerate().skip(1) {
        match &d.value {
            Some(dimension::Value::DimValue(v)) if *v > 0 && *v <= 1 << 24 => {
                sample.push(*v as usize)
            }
            Some(dimension::Value::DimParam(p)) => {
                return bad(format!(
                    "dimension {k} is symbolic (`{p}`); mlsign needs a fixed per-sample shape"
                ))
            }
            other => {
                return bad(format!(
                    "dimension {k} is {other:?}; mlsign needs a fixed positive per-sample shape"
                ))
            }
        }
    }
    if sample.iter().fold(1usize, |a, &d| a.saturating_mul(d)) > MAX_TENSOR_ELEMS {
        return bad(format!("per-sample shape {sample:?} is too large"));
    }
    Ok((batch_one, sample))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_onnx::onnx::{
        tensor_shape_proto, AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto,
    };

    fn vi(name: &str, elem: DataType, dims: &[i64]) -> onnx::ValueInfoProto {
        let dim = dims
            .iter()
            .map(|&d| tensor_shape_proto::Dimension {
                value: Some(if d < 0 {
                    dimension::Value::DimParam("N".into())
                } else {
                    dimension::Value::DimValue(d)
                }),
                ..Default::default()
            })
            .collect();
        onnx::ValueInfoProto {
            name: name.into(),
            r#type: Some(onnx::TypeProto {
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type: elem as i32,
                    shape: Some(onnx::TensorShapeProto { dim }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn init(name: &str, dims: &[i64], v: &[f32]) -> TensorProto {
        TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: DataType::Float as i32,
            raw_data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ..Default::default()
        }
    }

    fn node(
        op: &str,
        name: &str,
        ins: &[&str],
        out: &str,
        attrs: Vec<AttributeProto>,
    ) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            name: name.into(),
            input: ins.iter().map(|s| s.to_string()).collect(),
            output: vec![out.into()],
            attribute: attrs,
            ..Default::default()
        }
    }

    fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: AttributeType::Ints as i32,
            ints: v.to_vec(),
            ..Default::default()
        }
    }

    /// x [N, 3] -> Gemm(W [2, 3] transB, b) -> Relu -> y [N, 2]
    fn gemm_model(batch: i64) -> ModelProto {
        let trans_b = AttributeProto {
            name: "transB".into(),
            r#type: AttributeType::Int as i32,
            i: 1,
            ..Default::default()
        };
        ModelProto {
            graph: Some(GraphProto {
                node: vec![
                    node("Gemm", "fc", &["x", "w", "b"], "h", vec![trans_b]),
                    node("Relu", "act", &["h"], "y", vec![]),
                ],
                initializer: vec![
                    init("w", &[2, 3], &[1.0, 2.0, 3.0, -1.0, -1.0, -1.0]),
                    init("b", &[2], &[0.5, 0.0]),
                ],
                input: vec![vi("x", DataType::Float, &[batch, 3])],
                output: vec![vi("y", DataType::Float, &[batch, 2])],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn load(m: ModelProto) -> Result<OnnxModel> {
        OnnxModel::from_proto(
            m,
            Path::new("m.onnx"),
            String::new(),
            None,
            None,
            &Device::Cpu,
        )
    }

    fn err(m: ModelProto) -> String {
        load(m).err().expect("load must fail").to_string()
    }

    #[test]
    fn gemm_relu_matches_hand_computation_for_symbolic_and_fixed_batch() {
        for batch in [-1, 1] {
            let m = load(gemm_model(batch)).unwrap();
            assert_eq!(m.batch_one, batch == 1);
            assert_eq!(m.info.input_shape, vec![3]);
            assert_eq!(m.info.outputs, 2);
            assert_eq!(m.info.output, OutputKind::Logits);
            assert_eq!(m.info.arch, vec!["Gemm[[2, 3], [2]] transB=1", "Relu[]"]);
            let x = Tensor::new(&[[1f32, 1.0, 1.0], [0.0, -1.0, 0.0]], &Device::Cpu).unwrap();
            let y: Vec<Vec<f32>> = m.forward(&x).unwrap().to_vec2().unwrap();
            assert_eq!(y, vec![vec![6.5, 0.0], vec![0.0, 1.0]]);
        }
    }

    #[test]
    fn unsupported_op_is_named_with_its_node() {
        let mut m = gemm_model(-1);
        m.graph.as_mut().unwrap().node[1].op_type = "GlobalAveragePool".into();
        let e = err(m);
        assert!(
            e.contains("unsupported ONNX op `GlobalAveragePool` (node `act`) in m.onnx; supported ops: Abs, Add"),
            "{e}"
        );
        let mut m = gemm_model(-1);
        m.graph.as_mut().unwrap().node[1].domain = "com.microsoft".into();
        assert!(err(m).contains("`com.microsoft::Relu`"));
    }

    #[test]
    fn malformed_graphs_are_refused_before_running() {
        // Gemm without its C input would index out of bounds inside candle-onnx.
        let mut m = gemm_model(-1);
        m.graph.as_mut().unwrap().node[0].input.pop();
        assert!(err(m).contains("node `fc` (Gemm) has 2 inputs; mlsign evaluates Gemm with 3"));
        // An input nobody defines.
        let mut m = gemm_model(-1);
        m.graph.as_mut().unwrap().node[1].input[0] = "nope".into();
        assert!(err(m).contains("reads `nope`, which no earlier node"));
        // Data shorter than the shape says.
        let mut m = gemm_model(-1);
        m.graph.as_mut().unwrap().initializer[0]
            .raw_data
            .truncate(8);
        let e = err(m);
        assert!(
            e.contains("initializer `w`: shape [2, 3] needs 24 bytes of data, the file holds 8"),
            "{e}"
        );
        // Negative dims, absurd pads.
        let mut m = gemm_model(-1);
        m.graph.as_mut().unwrap().initializer[1].dims = vec![-2];
        assert!(err(m).contains("negative dimension"));
        let mut m = gemm_model(-1);
        m.graph.as_mut().unwrap().node[1].op_type = "MaxPool".into();
        m.graph.as_mut().unwrap().node[1].attribute =
            vec![ints("kernel_shape", &[2, 2]), ints("pads", &[-1, 0, 0, 0])];
        assert!(err(m).contains("attribute `pads` = [-1, 0, 0, 0] is out of range"));
        // NaN weights.
        let mut m = gemm_model(-1);
        m.graph.as_mut().unwrap().initializer[1] = init("b", &[2], &[f32::NAN, 0.0]);
        assert!(err(m).contains("holds NaN or infinite values"));
        // No graph at all.
        assert!(err(ModelProto::default()).contains("no graph"));
    }

    #[test]
    fn interface_limits_are_clear_errors() {
        let mut m = gemm_model(-1);
        m.graph.as_mut().unwrap().input[0] = vi("x", DataType::Int64, &[-1, 3]);
        assert!(err(m).contains("input `x`: has element type Int64; mlsign feeds float tensors"));
        let mut m = gemm_model(-1);
        m.graph
            .as_mut()
            .unwrap()
            .input
            .push(vi("x2", DataType::Float, &[-1, 3]));
        assert!(err(m).contains("the graph has 2 inputs (`x`, `x2`)"));
        let mut m = gemm_model(-1);
        m.graph
            .as_mut()
            .unwrap()
            .output
            .push(vi("h", DataType::Float, &[-1, 2]));
        assert!(err(m).contains("the graph has 2 outputs (`y`, `h`)"));
        // ... unless the suite names the output to read.
        let mut m = gemm_model(-1);
        m.graph
            .as_mut()
            .unwrap()
            .output
            .push(vi("h", DataType::Float, &[-1, 2]));
        let pick = |m: ModelProto, o: &str| {
            OnnxModel::from_proto(
                m,
                Path::new("m.onnx"),
                String::new(),
                None,
                Some(o),
                &Device::Cpu,
            )
        };
        let h = pick(m.clone(), "h").unwrap();
        let y = pick(m.clone(), "y").unwrap();
        let x = Tensor::new(&[[0f32, -1.0, 0.0]], &Device::Cpu).unwrap();
        let hv: Vec<Vec<f32>> = h.forward(&x).unwrap().to_vec2().unwrap();
        let yv: Vec<Vec<f32>> = y.forward(&x).unwrap().to_vec2().unwrap();
        assert_eq!((hv, yv), (vec![vec![-1.5, 1.0]], vec![vec![0.0, 1.0]]));
        let e = pick(m, "nope").err().unwrap().to_string();
        assert!(
            e.contains("model_output = \"nope\" is not among the graph's outputs (`y`, `h`)"),
            "{e}"
        );
        let mut m = gemm_model(-1);
        m.graph.as_mut().unwrap().input[0] = vi("x", DataType::Float, &[-1, -1]);
        assert!(err(m).contains("dimension 1 is symbolic (`N`)"));
        let mut m = gemm_model(4);
        m.graph.as_mut().unwrap().output.clear();
        m.graph
            .as_mut()
            .unwrap()
            .output
            .push(vi("y", DataType::Float, &[4, 2]));
        assert!(err(m).contains("batch dimension is fixed to 4"));
        // Initializers listed as inputs (IR < 4 exports) are not counted as inputs.
        let mut m = gemm_model(-1);
        m.graph
            .as_mut()
            .unwrap()
            .input
            .push(vi("w", DataType::Float, &[2, 3]));
        assert!(load(m).is_ok());
    }

    #[test]
    fn external_and_oversized_data_are_refused() {
        let mut m = gemm_model(-1);
        let t = &mut m.graph.as_mut().unwrap().initializer[0];
        t.raw_data.clear();
        t.data_location = DataLocation::External as i32;
        t.external_data.push(onnx::StringStringEntryProto {
            key: "location".into(),
            value: "../../etc/passwd".into(),
        });
        let e = err(m);
        assert!(
            e.contains("stores its data in an external file (`../../etc/passwd`)"),
            "{e}"
        );
        let mut m = gemm_model(-1);
        m.graph.as_mut().unwrap().initializer[0].dims = vec![1 << 20, 1 << 20];
        assert!(err(m).contains("is too large"));
    }

    #[test]
    fn huge_broadcasts_are_refused_before_allocation() {
        // x [N, 3] + c [1 << 16, 1, 1] ... broadcast to [65536, N, 3]; then with a second
        // [1, 1 << 13, 1] term the bound passes the limit before anything is allocated.
        let mut m = gemm_model(-1);
        let g = m.graph.as_mut().unwrap();
        g.initializer
            .push(init("big", &[1 << 16, 1, 1], &vec![0.0; 1 << 16]));
        g.initializer
            .push(init("wide", &[1, 1 << 13, 1], &vec![0.0; 1 << 13]));
        g.node
            .insert(0, node("Add", "a1", &["x", "big"], "x1", vec![]));
        g.node
            .insert(1, node("Add", "a2", &["x1", "wide"], "x2", vec![]));
        g.node[2].input[0] = "x2".into();
        let e = err(m);
        assert!(e.contains("node `a2` (Add): would produce up to"), "{e}");
    }

    #[test]
    fn constants_and_softmax_output() {
        let mut m = gemm_model(-1);
        let g = m.graph.as_mut().unwrap();
        g.initializer.remove(1);
        g.node.insert(
            0,
            NodeProto {
                op_type: "Constant".into(),
                name: "bias".into(),
                output: vec!["b".into()],
                attribute: vec![AttributeProto {
                    name: "value".into(),
                    r#type: AttributeType::Tensor as i32,
                    t: Some(init("", &[2], &[0.5, 0.0])),
                    ..Default::default()
                }],
                ..Default::default()
            },
        );
        g.node[2].op_type = "Softmax".into();
        let m = load(m).unwrap();
        assert_eq!(m.info.output, OutputKind::Probabilities);
        assert_eq!(m.info.arch[0], "Constant[2]");
        let y: Vec<Vec<f32>> = m
            .forward(&Tensor::new(&[[1f32, 1.0, 1.0]], &Device::Cpu).unwrap())
            .unwrap()
            .to_vec2()
            .unwrap();
        let e = (-9.5f32).exp();
        assert!((y[0][0] - 1.0 / (1.0 + e)).abs() < 1e-6, "{y:?}");
    }

    #[test]
    fn attributes_candle_onnx_ignores_are_refused() {
        let with = |op: &str, a: AttributeProto| {
            let mut m = gemm_model(-1);
            let n = &mut m.graph.as_mut().unwrap().node[1];
            n.op_type = op.into();
            n.attribute = vec![a];
            err(m)
        };
        let int = |name: &str, i: i64| AttributeProto {
            name: name.into(),
            r#type: AttributeType::Int as i32,
            i,
            ..Default::default()
        };
        let e = with(
            "Gelu",
            AttributeProto {
                name: "approximate".into(),
                r#type: AttributeType::String as i32,
                s: b"tanh".to_vec(),
                ..Default::default()
            },
        );
        assert!(
            e.contains("node `act` (Gelu): approximate = \"tanh\" is not supported"),
            "{e}"
        );
        let e = with(
            "Clip",
            AttributeProto {
                name: "min".into(),
                r#type: AttributeType::Float as i32,
                f: 0.0,
                ..Default::default()
            },
        );
        assert!(e.contains("min/max as attributes"), "{e}");
        assert!(with("Squeeze", ints("axes", &[1])).contains("`axes` as an attribute"));
        let mut m = gemm_model(-1);
        let n = &mut m.graph.as_mut().unwrap().node[1];
        n.op_type = "MaxPool".into();
        n.attribute = vec![ints("kernel_shape", &[1, 1]), int("ceil_mode", 1)];
        assert!(err(m).contains("ceil_mode = 1 is not supported"));
        // opset 11 Softmax: fine on [B, C] ...
        let mut m = gemm_model(-1);
        m.opset_import.push(onnx::OperatorSetIdProto {
            domain: String::new(),
            version: 11,
        });
        m.graph.as_mut().unwrap().node[1].op_type = "Softmax".into();
        assert!(load(m.clone()).is_ok());
        // ... refused on a rank-3 input, where opset 11 flattens and candle-onnx would not.
        let g = m.graph.as_mut().unwrap();
        g.initializer.push(TensorProto {
            name: "shp".into(),
            dims: vec![3],
            data_type: DataType::Int64 as i32,
            int64_data: vec![-1, 1, 2],
            ..Default::default()
        });
        g.node
            .insert(1, node("Reshape", "r", &["h", "shp"], "h3", vec![]));
        g.node[2].input[0] = "h3".into();
        let e = err(m);
        assert!(
            e.contains("node `act` (Softmax): opset < 13 Softmax of a rank-3 input"),
            "{e}"
        );
    }

    #[test]
    fn gelu_is_the_erf_form() {
        let mut m = gemm_model(-1);
        m.graph.as_mut().unwrap().node[1].op_type = "Gelu".into();
        let m = load(m).unwrap();
        // h = [6.5, -3] and [1.5 - 2 = -1.5, 1]
        let x = Tensor::new(&[[1f32, 1.0, 1.0], [0.0, -1.0, 0.0]], &Device::Cpu).unwrap();
        let y: Vec<Vec<f32>> = m.forward(&x).unwrap().to_vec2().unwrap();
        // 0.5·x·(1 + erf(x/√2)): gelu(6.5) ≈ 6.5, gelu(-3) = -0.0040497 (the tanh form gives -0.00364),
        // gelu(-1.5) = -0.1002108, gelu(1) = 0.8413447.
        let want = [[6.5f32, -0.004_049_7], [-0.100_210_8, 0.841_344_7]];
        for (r, w) in y.iter().zip(want) {
            for (a, b) in r.iter().zip(w) {
                assert!((a - b).abs() < 1e-5, "{y:?}");
            }
        }
    }

    #[test]
    fn f16_decoding() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert!(f16_to_f32(0x7c00).is_infinite());
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
    }
}
