//! Causal language models: Llama, Mistral, Qwen2 and Phi-3 from a Hugging Face directory
//! (`config.json` + `model.safetensors` or `model-XXXXX-of-YYYYY.safetensors` shards +
//! `tokenizer.json`), and GGUF files (`general.architecture` llama, qwen2 or phi3, any
//! quantisation candle reads) with the directory's `tokenizer.json`.
//!
//! Output: the next-token probability distribution at the last prompt position. Every tensor
//! the architecture needs is checked (present, float dtype, shape from the config) before candle
//! builds the model, and configs that would allocate absurd amounts are refused first. Nothing
//! from the directory is executed.

use super::{ModelInfo, OutputKind};
use crate::behave::error::{BehaveError, Result};
use crate::behave::tensors::{read_bounded, sha256_hex, MAX_FILE_BYTES};
use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor};
use candle_transformers::models::{
    llama, mistral, phi3, quantized_llama, quantized_phi3, quantized_qwen2, qwen2,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tokenizers::Tokenizer;

/// `model_type` values of config.json this loader accepts.
pub const HF_FAMILIES: &[&str] = &["llama", "mistral", "qwen2", "phi3"];
/// `general.architecture` values of GGUF files this loader accepts.
pub const GGUF_FAMILIES: &[&str] = &["llama", "qwen2", "phi3"];

/// Prompts are cut to their last `MAX_PROMPT_TOKENS` tokens (and to the context length).
pub const MAX_PROMPT_TOKENS: usize = 512;

// Bounds checked before anything is allocated from a config's numbers.
const MAX_VOCAB: usize = 1 << 20;
const MAX_HIDDEN: usize = 1 << 16;
const MAX_LAYERS: usize = 1024;
const MAX_INTERMEDIATE: usize = 1 << 18;
const MAX_HEADS: usize = 1024;
const MAX_CONTEXT: usize = 1 << 20;

/// Architecture numbers shared by every family, read from config.json or GGUF metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct Dims {
    pub family: String,
    pub vocab: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub intermediate: usize,
    pub tied: bool,
}

impl Dims {
    /// One line for the report and the compatibility check.
    pub fn describe(&self) -> String {
        format!(
            "{} L{} H{} heads {}/{} head_dim {} I{} vocab {}{}",
            self.family,
            self.layers,
            self.hidden,
            self.heads,
            self.kv_heads,
            self.head_dim,
            self.intermediate,
            self.vocab,
            if self.tied { " tied" } else { "" }
        )
    }

    fn check(&self, path: &Path) -> Result<()> {
        let bad = |m: String| Err(BehaveError::format(path, m));
        let limits = [
            ("vocab_size", self.vocab, MAX_VOCAB),
            ("hidden_size", self.hidden, MAX_HIDDEN),
            ("num_hidden_layers", self.layers, MAX_LAYERS),
            ("num_attention_heads", self.heads, MAX_HEADS),
            ("num_key_value_heads", self.kv_heads, MAX_HEADS),
            ("head_dim", self.head_dim, MAX_HIDDEN),
            ("intermediate_size", self.intermediate, MAX_INTERMEDIATE),
        ];
        for (name, v, max) in limits {
            if v == 0 || v > max {
                return bad(format!(
                    "{name} = {v} is outside 1..={max}; refusing to allocate a model this size"
                ));
            }
        }
        if self.heads % self.kv_heads != 0 {
            return bad(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.heads, self.kv_heads
            ));
        }
        if self.head_dim % 2 != 0 {
            return bad(format!(
                "head_dim {} is odd; rotary embeddings need an even head dimension",
                self.head_dim
            ));
        }
        Ok(())
    }
}

enum Inner {
    Llama(Box<llama::Llama>, Box<llama::Cache>),
    Mistral(Box<mistral::Model>),
    Qwen2(Box<qwen2::ModelForCausalLM>),
    Phi3(Box<phi3::Model>),
    QLlama(Box<quantized_llama::ModelWeights>),
    QQwen2(Box<quantized_qwen2::ModelWeights>),
    QPhi3(Box<quantized_phi3::ModelWeights>),
}

impl Inner {
    /// Next-token logits `[B, V]` for a batch of equal-length prompts, with an empty KV cache.
    fn logits(&mut self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let b = ids.dim(0)?;
        let quantized = matches!(self, Inner::QLlama(_) | Inner::QQwen2(_) | Inner::QPhi3(_));
        if quantized && b > 1 {
            // candle's quantized models hand a strided last-position slice to the quantized
            // matmul, which only takes contiguous inputs when the batch is larger than one.
            let rows = (0..b)
                .map(|i| self.logits(&ids.narrow(0, i, 1)?))
                .collect::<candle_core::Result<Vec<_>>>()?;
            return Tensor::cat(&rows, 0);
        }
        let y = match self {
            Inner::Llama(m, cache) => m.forward(ids, 0, cache)?,
            Inner::Mistral(m) => {
                m.clear_kv_cache();
                m.forward(ids, 0)?
            }
            Inner::Qwen2(m) => {
                m.clear_kv_cache();
                m.forward(ids, 0)?
            }
            Inner::Phi3(m) => {
                m.clear_kv_cache();
                m.forward(ids, 0)?
            }
            // index_pos 0 starts every layer's KV cache afresh.
            Inner::QLlama(m) => m.forward(ids, 0)?,
            Inner::QQwen2(m) => m.forward(ids, 0)?,
            Inner::QPhi3(m) => m.forward(ids, 0)?,
        };
        let v = y.elem_count() / b.max(1);
        y.reshape((b, v))?.to_dtype(DType::F32)
    }
}

pub struct CausalLm {
    inner: Mutex<Inner>,
    /// Positions compared per prompt: the last `positions` (1 = the last only).
    positions: usize,
    tokenizer: Tokenizer,
    max_len: usize,
    device: Device,
    pub dims: Dims,
    pub info: ModelInfo,
}

/// Does this directory hold a GGUF file (or is the path one)?
pub fn find_gguf(path: &Path) -> Option<PathBuf> {
    if path.is_file() {
        return (path.extension().and_then(|e| e.to_str()) == Some("gguf"))
            .then(|| path.to_path_buf());
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(path)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("gguf"))
        .collect();
    found.sort();
    found.into_iter().next()
}

fn cfg_usize(cfg: &serde_json::Value, path: &Path, key: &str) -> Result<usize> {
    cfg.get(key)
        .and_then(|v| v.as_u64())
        .map(|v| v as usize)
        .ok_or_else(|| {
            BehaveError::format(
                path,
                format!("`{key}` is missing or not a non-negative integer"),
            )
        })
}

/// A tensor as the loader sees it before building the model.
struct Meta {
    shape: Vec<usize>,
    float: bool,
    dtype: String,
}

/// Check that every expected tensor exists with the expected shape (and a float dtype where
/// `need_float`), naming the first that does not.
fn check_tensors(
    path: &Path,
    have: &HashMap<String, Meta>,
    expected: &[(String, Vec<usize>)],
    need_float: bool,
) -> Result<()> {
    for (name, shape) in expected {
        let Some(m) = have.get(name) else {
            let mut names: Vec<&str> = have.keys().map(String::as_str).collect();
            names.sort_unstable();
            let n = names.len();
            names.truncate(12);
            return Err(BehaveError::MissingTensor {
                path: path.into(),
                tensor: name.clone(),
                present: if n > 12 {
                    format!("{}, … ({n} in all)", names.join(", "))
                } else {
                    names.join(", ")
                },
            });
        };
        if need_float && !m.float {
            return Err(BehaveError::DType {
                path: path.into(),
                tensor: name.clone(),
                dtype: m.dtype.clone(),
            });
        }
        if &m.shape != shape {
            return Err(BehaveError::Shape {
                path: path.into(),
                tensor: name.clone(),
                found: m.shape.clone(),
                expected: format!("{shape:?} (from the model's configuration)"),
            });
        }
    }
    Ok(())
}

/// Hugging Face tensor names and shapes of one family.
fn hf_expected(d: &Dims, qkv_bias: bool, fused: bool) -> Vec<(String, Vec<usize>)> {
    let (h, q, kv, i) = (
        d.hidden,
        d.heads * d.head_dim,
        d.kv_heads * d.head_dim,
        d.intermediate,
    );
    let mut e = vec![("model.embed_tokens.weight".to_string(), vec![d.vocab, h])];
    for l in 0..d.layers {
        let p = format!("model.layers.{l}.");
        if fused {
            e.push((format!("{p}self_attn.qkv_proj.weight"), vec![q + 2 * kv, h]));
            e.push((format!("{p}mlp.gate_up_proj.weight"), vec![2 * i, h]));
        } else {
            e.push((format!("{p}self_attn.q_proj.weight"), vec![q, h]));
            e.push((format!("{p}self_attn.k_proj.weight"), vec![kv, h]));
            e.push((format!("{p}self_attn.v_proj.weight"), vec![kv, h]));
            if qkv_bias {
                e.push((format!("{p}self_attn.q_proj.bias"), vec![q]));
                e.push((format!("{p}self_attn.k_proj.bias"), vec![kv]));
                e.push((format!("{p}self_attn.v_proj.bias"), vec![kv]));
            }
            e.push((format!("{p}mlp.gate_proj.weight"), vec![i, h]));
            e.push((format!("{p}mlp.up_proj.weight"), vec![i, h]));
        }
        e.push((format!("{p}self_attn.o_proj.weight"), vec![h, q]));
        e.push((format!("{p}mlp.down_proj.weight"), vec![h, i]));
        e.push((format!("{p}input_layernorm.weight"), vec![h]));
        e.push((format!("{p}post_attention_layernorm.weight"), vec![h]));
    }
    e.push(("model.norm.weight".into(), vec![h]));
    if !d.tied {
        e.push(("lm_head.weight".into(), vec![d.vocab, h]));
    }
    e
}

/// GGUF tensor names and shapes (candle's row-major order) of one architecture.
fn gguf_expected(d: &Dims, arch: &str, moe: bool) -> Vec<(String, Vec<usize>)> {
    let (h, q, kv, i) = (
        d.hidden,
        d.heads * d.head_dim,
        d.kv_heads * d.head_dim,
        d.intermediate,
    );
    let mut e = vec![
        ("token_embd.weight".to_string(), vec![d.vocab, h]),
        ("output_norm.weight".to_string(), vec![h]),
    ];
    for l in 0..d.layers {
        let p = format!("blk.{l}.");
        if arch == "phi3" {
            e.push((format!("{p}attn_qkv.weight"), vec![q + 2 * kv, h]));
            e.push((format!("{p}ffn_up.weight"), vec![2 * i, h]));
        } else {
            e.push((format!("{p}attn_q.weight"), vec![q, h]));
            e.push((format!("{p}attn_k.weight"), vec![kv, h]));
            e.push((format!("{p}attn_v.weight"), vec![kv, h]));
            if arch == "qwen2" {
                e.push((format!("{p}attn_q.bias"), vec![q]));
                e.push((format!("{p}attn_k.bias"), vec![kv]));
                e.push((format!("{p}attn_v.bias"), vec![kv]));
            }
            if !moe {
                e.push((format!("{p}ffn_gate.weight"), vec![i, h]));
                e.push((format!("{p}ffn_up.weight"), vec![i, h]));
            }
        }
        e.push((format!("{p}attn_output.weight"), vec![h, q]));
        if !moe {
            e.push((format!("{p}ffn_down.weight"), vec![h, i]));
        }
        e.push((format!("{p}attn_norm.weight"), vec![h]));
        e.push((format!("{p}ffn_norm.weight"), vec![h]));
    }
    if !d.tied {
        e.push(("output.weight".into(), vec![d.vocab, h]));
    }
    e
}

/// The weight files of a Hugging Face directory: `model.safetensors` or its shards.
pub(crate) fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let mut shards: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| BehaveError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.starts_with("model-") && n.ends_with(".safetensors") && n.contains("-of-")
        })
        .collect();
    shards.sort();
    if shards.is_empty() {
        return Err(BehaveError::format(
            dir,
            "model.safetensors is missing (pickle-based pytorch_model.bin is not loaded: convert it to safetensors)",
        ));
    }
    Ok(shards)
}

fn load_tokenizer(dir: &Path) -> Result<(Tokenizer, String)> {
    let tpath = dir.join("tokenizer.json");
    if !tpath.is_file() {
        return Err(BehaveError::format(
            dir,
            "tokenizer.json is missing: a causal LM needs the tokenizer.json it was trained with next to its weights (also for GGUF files)",
        ));
    }
    let tbytes = read_bounded(&tpath, 64 << 20)?;
    let mut tokenizer = Tokenizer::from_bytes(&tbytes)
        .map_err(|e| BehaveError::format(&tpath, format!("invalid tokenizer: {e}")))?;
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(None)
        .map_err(|e| BehaveError::format(&tpath, format!("truncation: {e}")))?;
    Ok((tokenizer, sha256_hex(&tbytes)))
}

impl CausalLm {
    /// A Hugging Face directory whose config.json names one of [`HF_FAMILIES`].
    pub fn load_hf(dir: &Path, cfg: &serde_json::Value, device: &Device) -> Result<Self> {
        let cpath = dir.join(super::bert::CONFIG_FILE);
        let mt = cfg.get("model_type").and_then(|v| v.as_str()).unwrap_or("");
        if !HF_FAMILIES.contains(&mt) {
            return Err(BehaveError::format(
                &cpath,
                format!(
                    "model_type {mt:?} is not a supported causal LM (supported: {})",
                    HF_FAMILIES.join(", ")
                ),
            ));
        }
        let heads = cfg_usize(cfg, &cpath, "num_attention_heads")?;
        let hidden = cfg_usize(cfg, &cpath, "hidden_size")?;
        let head_dim = match cfg.get("head_dim").and_then(|v| v.as_u64()) {
            Some(h) if mt == "mistral" => h as usize,
            _ => hidden / heads.max(1),
        };
        let tied_default = mt == "qwen2";
        let dims = Dims {
            family: mt.to_string(),
            vocab: cfg_usize(cfg, &cpath, "vocab_size")?,
            hidden,
            layers: cfg_usize(cfg, &cpath, "num_hidden_layers")?,
            heads,
            kv_heads: cfg
                .get("num_key_value_heads")
                .and_then(|v| v.as_u64())
                .map_or(heads, |v| v as usize),
            head_dim,
            intermediate: cfg_usize(cfg, &cpath, "intermediate_size")?,
            // Mistral in candle always reads `lm_head`.
            tied: mt != "mistral"
                && cfg
                    .get("tie_word_embeddings")
                    .and_then(|v| v.as_bool())
                    .unwrap_or(tied_default),
        };
        dims.check(&cpath)?;
        if mt != "mistral" && hidden % heads != 0 {
            return Err(BehaveError::format(
                &cpath,
                format!("hidden_size {hidden} is not a multiple of num_attention_heads {heads}"),
            ));
        }
        let ctx = cfg_usize(cfg, &cpath, "max_position_embeddings")?;
        if ctx == 0 || ctx > MAX_CONTEXT {
            return Err(BehaveError::format(
                &cpath,
                format!("max_position_embeddings = {ctx} is outside 1..={MAX_CONTEXT}"),
            ));
        }
        let max_len = ctx.min(MAX_PROMPT_TOKENS);
        // The rotary tables are sized by max_position_embeddings: only what prompts can use.
        let mut cfg_small = cfg.clone();
        cfg_small["max_position_embeddings"] = serde_json::json!(max_len);

        let files = weight_files(dir)?;
        use sha2::Digest;
        let mut ctx_hash = sha2::Sha256::new();
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        let mut owner: HashMap<String, PathBuf> = HashMap::new();
        for f in &files {
            crate::behave::tensors::ensure_inside(dir, f)?;
            let bytes = read_bounded(f, MAX_FILE_BYTES)?;
            ctx_hash.update(&bytes);
            let ts = crate::behave::tensors::load_buffer(f, &bytes)?;
            for (k, v) in ts {
                owner.insert(k.clone(), f.clone());
                tensors.insert(k, v);
            }
        }
        let weights_sha256 = hex::encode(ctx_hash.finalize());
        let wpath = if files.len() == 1 {
            files[0].clone()
        } else {
            dir.to_path_buf()
        };
        let meta: HashMap<String, Meta> = tensors
            .iter()
            .map(|(k, t)| {
                (
                    k.clone(),
                    Meta {
                        shape: t.dims().to_vec(),
                        float: matches!(
                            t.dtype(),
                            DType::F32 | DType::F16 | DType::BF16 | DType::F64
                        ),
                        dtype: format!("{:?}", t.dtype()),
                    },
                )
            })
            .collect();
        let expected = hf_expected(&dims, mt == "qwen2", mt == "phi3");
        // Name the shard that holds a bad tensor when there are several.
        if let Err(e) = check_tensors(&wpath, &meta, &expected, true) {
            return Err(match e {
                BehaveError::Shape {
                    tensor,
                    found,
                    expected,
                    ..
                } => BehaveError::Shape {
                    path: owner.get(&tensor).cloned().unwrap_or(wpath.clone()),
                    tensor,
                    found,
                    expected,
                },
                BehaveError::DType { tensor, dtype, .. } => BehaveError::DType {
                    path: owner.get(&tensor).cloned().unwrap_or(wpath.clone()),
                    tensor,
                    dtype,
                },
                other => other,
            });
        }
        if mt == "qwen2" && dims.tied && tensors.contains_key("lm_head.weight") {
            check_tensors(
                &wpath,
                &meta,
                &[("lm_head.weight".into(), vec![dims.vocab, dims.hidden])],
                true,
            )?;
        }
        let vb = candle_nn::VarBuilder::from_tensors(tensors, DType::F32, device);
        let parse_err =
            |e: serde_json::Error| BehaveError::format(&cpath, format!("not a {mt} config: {e}"));
        let build_err = |e: candle_core::Error| {
            BehaveError::format(&wpath, format!("cannot build the {mt} model: {e}"))
        };
        let inner = match mt {
            "llama" => {
                let c: llama::LlamaConfig = serde_json::from_value(cfg_small).map_err(parse_err)?;
                let c = c.into_config(false);
                let cache = llama::Cache::new(false, DType::F32, &c, device)?;
                Inner::Llama(
                    Box::new(llama::Llama::load(vb, &c).map_err(build_err)?),
                    Box::new(cache),
                )
            }
            "mistral" => {
                let c: mistral::Config = serde_json::from_value(cfg_small).map_err(parse_err)?;
                Inner::Mistral(Box::new(mistral::Model::new(&c, vb).map_err(build_err)?))
            }
            "qwen2" => {
                let c: qwen2::Config = serde_json::from_value(cfg_small).map_err(parse_err)?;
                Inner::Qwen2(Box::new(
                    qwen2::ModelForCausalLM::new(&c, vb).map_err(build_err)?,
                ))
            }
            _ => {
                let c: phi3::Config = serde_json::from_value(cfg_small).map_err(parse_err)?;
                Inner::Phi3(Box::new(phi3::Model::new(&c, vb).map_err(build_err)?))
            }
        };
        let (tokenizer, tok_sha) = load_tokenizer(dir)?;
        Ok(Self::assemble(
            inner,
            tokenizer,
            tok_sha,
            max_len,
            device,
            dims,
            wpath,
            weights_sha256,
        ))
    }

    /// A GGUF file (architecture in [`GGUF_FAMILIES`]) and the tokenizer.json next to it.
    pub fn load_gguf(file: &Path, device: &Device) -> Result<Self> {
        let dir = file.parent().unwrap_or(Path::new("."));
        let meta_fs = std::fs::metadata(file).map_err(|e| BehaveError::io(file, e))?;
        if meta_fs.len() > MAX_FILE_BYTES {
            return Err(BehaveError::format(
                file,
                format!(
                    "file is {} bytes, over the {MAX_FILE_BYTES}-byte limit",
                    meta_fs.len()
                ),
            ));
        }
        let weights_sha256 = {
            use sha2::Digest;
            use std::io::Read;
            let mut f = std::fs::File::open(file).map_err(|e| BehaveError::io(file, e))?;
            let mut ctx = sha2::Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f.read(&mut buf).map_err(|e| BehaveError::io(file, e))?;
                if n == 0 {
                    break;
                }
                ctx.update(&buf[..n]);
            }
            hex::encode(ctx.finalize())
        };
        let mut reader = std::io::BufReader::new(
            std::fs::File::open(file).map_err(|e| BehaveError::io(file, e))?,
        );
        let ct = gguf_file::Content::read(&mut reader)
            .map_err(|e| BehaveError::format(file, format!("not a valid GGUF file: {e}")))?;
        let arch = ct
            .metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_default();
        if !GGUF_FAMILIES.contains(&arch.as_str()) {
            return Err(BehaveError::format(
                file,
                format!(
                    "GGUF architecture {arch:?} is not supported (supported: {})",
                    GGUF_FAMILIES.join(", ")
                ),
            ));
        }
        let md = |k: &str| -> Result<usize> {
            let key = format!("{arch}.{k}");
            let v = ct
                .metadata
                .get(&key)
                .ok_or_else(|| BehaveError::format(file, format!("metadata `{key}` is missing")))?;
            v.to_u32()
                .map(|x| x as usize)
                .or_else(|_| v.to_u64().map(|x| x as usize))
                .map_err(|_| {
                    BehaveError::format(file, format!("metadata `{key}` is not an integer"))
                })
        };
        let heads = md("attention.head_count")?;
        let hidden = md("embedding_length")?;
        let infos: HashMap<String, Meta> = ct
            .tensor_infos
            .iter()
            .map(|(k, t)| {
                (
                    k.clone(),
                    Meta {
                        shape: t.shape.dims().to_vec(),
                        float: true,
                        dtype: format!("{:?}", t.ggml_dtype),
                    },
                )
            })
            .collect();
        let vocab = infos
            .get("token_embd.weight")
            .and_then(|m| m.shape.first().copied())
            .ok_or_else(|| BehaveError::MissingTensor {
                path: file.into(),
                tensor: "token_embd.weight".into(),
                present: {
                    let mut n: Vec<&str> = infos.keys().map(String::as_str).collect();
                    n.sort_unstable();
                    n.truncate(12);
                    n.join(", ")
                },
            })?;
        let moe = md("expert_count").unwrap_or(0) > 1;
        let dims = Dims {
            family: arch.clone(),
            vocab,
            hidden,
            layers: md("block_count")?,
            heads,
            kv_heads: md("attention.head_count_kv").unwrap_or(heads),
            head_dim: hidden / heads.max(1),
            intermediate: md("feed_forward_length")?,
            tied: !infos.contains_key("output.weight"),
        };
        dims.check(file)?;
        if hidden % heads != 0 {
            return Err(BehaveError::format(
                file,
                format!("embedding_length {hidden} is not a multiple of head_count {heads}"),
            ));
        }
        if arch == "phi3" && dims.tied {
            return Err(BehaveError::MissingTensor {
                path: file.into(),
                tensor: "output.weight".into(),
                present: "(phi3 GGUF files need an output matrix)".into(),
            });
        }
        if arch != "llama" {
            let c = md("context_length")?;
            if c == 0 || c > MAX_CONTEXT {
                return Err(BehaveError::format(
                    file,
                    format!("{arch}.context_length = {c} is outside 1..={MAX_CONTEXT}"),
                ));
            }
        }
        check_tensors(file, &infos, &gguf_expected(&dims, &arch, moe), false)?;
        let ctx_len = md("context_length").unwrap_or(quantized_llama::MAX_SEQ_LEN);
        let max_len = ctx_len.clamp(1, MAX_PROMPT_TOKENS);
        let build_err = |e: candle_core::Error| {
            BehaveError::format(file, format!("cannot build the {arch} model: {e}"))
        };
        let inner = match arch.as_str() {
            "llama" => Inner::QLlama(Box::new(
                quantized_llama::ModelWeights::from_gguf(ct, &mut reader, device)
                    .map_err(build_err)?,
            )),
            "qwen2" => Inner::QQwen2(Box::new(
                quantized_qwen2::ModelWeights::from_gguf(ct, &mut reader, device)
                    .map_err(build_err)?,
            )),
            _ => Inner::QPhi3(Box::new(
                quantized_phi3::ModelWeights::from_gguf(false, ct, &mut reader, device)
                    .map_err(build_err)?,
            )),
        };
        let (tokenizer, tok_sha) = load_tokenizer(dir)?;
        Ok(Self::assemble(
            inner,
            tokenizer,
            tok_sha,
            max_len,
            device,
            dims,
            file.to_path_buf(),
            weights_sha256,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        inner: Inner,
        tokenizer: Tokenizer,
        tokenizer_sha256: String,
        max_len: usize,
        device: &Device,
        dims: Dims,
        weights: PathBuf,
        weights_sha256: String,
    ) -> Self {
        CausalLm {
            positions: 1,
            inner: Mutex::new(inner),
            tokenizer,
            max_len,
            device: device.clone(),
            info: ModelInfo {
                // Safetensors and GGUF versions of one model are comparable: same interface,
                // same architecture line; `weights` says which file each came from.
                format: "causal-lm".into(),
                weights: weights.display().to_string(),
                weights_sha256,
                input_shape: vec![],
                outputs: dims.vocab,
                output: OutputKind::NextToken,
                arch: vec![dims.describe()],
                labels: None,
                tokenizer_sha256: Some(tokenizer_sha256),
            },
            dims,
        }
    }

    /// Compare the last `k` positions of every prompt (0 and 1 both mean the last only); the
    /// output row becomes `k` distributions, `[k · V]`.
    pub fn set_positions(&mut self, k: usize) {
        self.positions = k.max(1);
        self.info.outputs = self.dims.vocab.saturating_mul(self.positions);
    }

    /// Next-token probability rows `[B, k·V]` for a batch of prompts: the distributions after
    /// each of the last `k` prompt prefixes (k = `positions`), oldest first; a prompt shorter than
    /// k tokens repeats its first prefix. Prefixes are grouped by token count (no padding, so
    /// no attention mask is needed) and cut to their last `max_len` tokens.
    pub fn next_token_probs(&self, texts: &[String]) -> candle_core::Result<Tensor> {
        let enc = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| candle_core::Error::Msg(format!("tokenizer: {e}")))?;
        let ids: Vec<Vec<u32>> = enc
            .iter()
            .map(|e| {
                let ids = e.get_ids();
                ids[ids.len().saturating_sub(self.max_len)..].to_vec()
            })
            .collect();
        let v = self.dims.vocab;
        for (i, x) in ids.iter().enumerate() {
            if let Some(bad) = x.iter().find(|&&id| id as usize >= v) {
                return Err(candle_core::Error::Msg(format!(
                    "tokenizer.json maps prompt {:?} to token id {bad}, outside the model's vocabulary of {v}: the tokenizer does not belong to these weights",
                    texts[i]
                )));
            }
        }
        if let Some(i) = ids.iter().position(|v| v.is_empty()) {
            return Err(candle_core::Error::Msg(format!(
                "prompt {:?} has no tokens under this tokenizer",
                texts[i]
            )));
        }
        let k = self.positions;
        let width = v * k;
        let mut out = vec![0f32; ids.len() * width];
        // (prompt, slot) pairs per prefix length; slot j is the j-th of the last k positions.
        let mut by_len: std::collections::BTreeMap<usize, Vec<(usize, usize)>> = Default::default();
        for (i, x) in ids.iter().enumerate() {
            let l = x.len();
            for j in 0..k {
                let len = (l + j + 1).saturating_sub(k).max(1);
                by_len.entry(len).or_default().push((i, j));
            }
        }
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| candle_core::Error::Msg("model lock poisoned".into()))?;
        for (t, rows) in by_len {
            let flat: Vec<u32> = rows
                .iter()
                .flat_map(|&(r, _)| ids[r][..t].iter().copied())
                .collect();
            let x = Tensor::from_vec(flat, (rows.len(), t), &self.device)?;
            let logits = inner.logits(&x)?;
            if logits.dim(1)? != v {
                return Err(candle_core::Error::Msg(format!(
                    "the model returned {} logits per prompt, the configuration says vocab {v}",
                    logits.dim(1)?
                )));
            }
            let p: Vec<f32> = candle_nn::ops::softmax_last_dim(&logits)?
                .flatten_all()?
                .to_vec1()?;
            for (row, &(r, j)) in rows.iter().enumerate() {
                let at = r * width + j * v;
                out[at..at + v].copy_from_slice(&p[row * v..(row + 1) * v]);
            }
        }
        Tensor::from_vec(out, (ids.len(), width), &Device::Cpu)
    }

    /// Next-token distributions at the last position of token-id rows (BOS included where the
    /// tokenizer adds it), `[B · V]` row-major; rows are grouped by length like
    /// [`Self::next_token_probs`]. Used by the trigger-token search.
    pub fn next_token_probs_ids(&self, rows: &[Vec<u32>]) -> candle_core::Result<Vec<f32>> {
        let v = self.dims.vocab;
        for r in rows {
            if r.is_empty() || r.len() > self.max_len || r.iter().any(|&id| id as usize >= v) {
                return Err(candle_core::Error::Msg(format!(
                    "a token row of {} ids is empty, longer than {} or outside the vocabulary of {v}",
                    r.len(),
                    self.max_len
                )));
            }
        }
        let mut by_len: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for (i, r) in rows.iter().enumerate() {
            by_len.entry(r.len()).or_default().push(i);
        }
        let mut out = vec![0f32; rows.len() * v];
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| candle_core::Error::Msg("model lock poisoned".into()))?;
        for (t, idx) in by_len {
            let flat: Vec<u32> = idx.iter().flat_map(|&i| rows[i].iter().copied()).collect();
            let x = Tensor::from_vec(flat, (idx.len(), t), &self.device)?;
            let logits = inner.logits(&x)?;
            let p: Vec<f32> = candle_nn::ops::softmax_last_dim(&logits)?
                .flatten_all()?
                .to_vec1()?;
            if p.len() != idx.len() * v {
                return Err(candle_core::Error::Msg(format!(
                    "the model returned {} values for {} rows of vocab {v}",
                    p.len(),
                    idx.len()
                )));
            }
            for (row, &i) in idx.iter().enumerate() {
                out[i * v..(i + 1) * v].copy_from_slice(&p[row * v..(row + 1) * v]);
            }
        }
        Ok(out)
    }

    /// Token ids of a prompt as the model sees it (BOS where the post-processor adds it, cut to
    /// the last `max_len` tokens).
    pub fn token_ids(&self, text: &str) -> Vec<u32> {
        let ids = self
            .tokenizer
            .encode(text, true)
            .map(|e| e.get_ids().to_vec())
            .unwrap_or_default();
        ids[ids.len().saturating_sub(self.max_len)..].to_vec()
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Longest prompt (tokens) the model is run on.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Raw next-token logits for explicit token ids (one prompt); used by the reference tests.
    pub fn logits_for_ids(&self, ids: &[u32]) -> candle_core::Result<Vec<f32>> {
        let x = Tensor::from_vec(ids.to_vec(), (1, ids.len()), &self.device)?;
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| candle_core::Error::Msg("model lock poisoned".into()))?;
        inner.logits(&x)?.flatten_all()?.to_vec1()
    }

    /// Vocabulary tokens ordered by id (without added/special tokens).
    pub fn vocab(&self) -> Vec<String> {
        let mut v: Vec<(String, u32)> = self.tokenizer.get_vocab(false).into_iter().collect();
        v.sort_by_key(|(_, id)| *id);
        v.into_iter().map(|(t, _)| t).collect()
    }

    /// The text of one token id (for trigger reports).
    pub fn token_text(&self, id: u32) -> String {
        self.tokenizer
            .id_to_token(id)
            .unwrap_or_else(|| format!("<id {id}>"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims() -> Dims {
        Dims {
            family: "llama".into(),
            vocab: 100,
            hidden: 32,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            head_dim: 8,
            intermediate: 64,
            tied: false,
        }
    }

    #[test]
    fn absurd_configs_are_refused_before_allocation() {
        let p = Path::new("config.json");
        assert!(dims().check(p).is_ok());
        let mut d = dims();
        d.vocab = 1 << 40;
        let e = d.check(p).unwrap_err().to_string();
        assert!(e.contains("vocab_size") && e.contains("refusing"), "{e}");
        let mut d = dims();
        d.kv_heads = 3;
        assert!(d.check(p).unwrap_err().to_string().contains("multiple"));
        let mut d = dims();
        d.layers = 0;
        assert!(d.check(p).is_err());
    }

    #[test]
    fn expected_tensors_follow_the_family() {
        let d = dims();
        let llama = hf_expected(&d, false, false);
        assert_eq!(llama.len(), 1 + 2 * 9 + 2);
        assert!(llama.contains(&(
            "model.layers.1.self_attn.k_proj.weight".into(),
            vec![16, 32]
        )));
        let qwen = hf_expected(
            &Dims {
                tied: true,
                ..d.clone()
            },
            true,
            false,
        );
        assert!(qwen.contains(&("model.layers.0.self_attn.v_proj.bias".into(), vec![16])));
        assert!(!qwen.iter().any(|(n, _)| n == "lm_head.weight"));
        let phi = hf_expected(&d, false, true);
        assert!(phi.contains(&(
            "model.layers.0.self_attn.qkv_proj.weight".into(),
            vec![64, 32]
        )));
        assert!(phi.contains(&(
            "model.layers.0.mlp.gate_up_proj.weight".into(),
            vec![128, 32]
        )));
        let g = gguf_expected(&d, "llama", false);
        assert!(g.contains(&("blk.1.ffn_down.weight".into(), vec![32, 64])));
    }

    #[test]
    fn tensor_check_names_the_tensor() {
        let mut have = HashMap::new();
        have.insert(
            "a".to_string(),
            Meta {
                shape: vec![2, 3],
                float: true,
                dtype: "F32".into(),
            },
        );
        have.insert(
            "b".to_string(),
            Meta {
                shape: vec![4],
                float: false,
                dtype: "I64".into(),
            },
        );
        let p = Path::new("m.safetensors");
        let e = check_tensors(p, &have, &[("c".into(), vec![1])], true).unwrap_err();
        assert!(matches!(e, BehaveError::MissingTensor { ref tensor, .. } if tensor == "c"));
        let e = check_tensors(p, &have, &[("a".into(), vec![3, 2])], true).unwrap_err();
        assert!(
            e.to_string()
                .contains("`a` has shape [2, 3], expected [3, 2]"),
            "{e}"
        );
        let e = check_tensors(p, &have, &[("b".into(), vec![4])], true).unwrap_err();
        assert!(matches!(e, BehaveError::DType { .. }), "{e}");
    }
}
