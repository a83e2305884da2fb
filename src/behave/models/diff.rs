//! Differentiable forwards of the text models, for gradient-guided trigger-token search.
//!
//! candle-transformers' BERT and Llama-family models cannot be differentiated: their LayerNorm,
//! RMS-norm, rotary-embedding and softmax kernels are custom ops without a backward pass. These
//! forwards compute the same functions from the same safetensors weights with basic candle ops
//! only (matmul, exp, sum, sqrt, erf…), starting from input embeddings, so a gradient with
//! respect to the embeddings of chosen positions is available. They are checked against the
//! candle-transformers forwards the loaders build (unit tests below, to 1e-4).
//!
//! Covered: BERT sequence classifiers (absolute positions, token type 0, GELU) and the causal
//! LMs llama, mistral, qwen2 and phi3 from safetensors. GGUF files keep quantised weights and
//! have no differentiable matmul: they are refused with a reason the report states.

use crate::behave::error::{BehaveError, Result};
use crate::behave::tensors::{load_buffer, read_bounded, MAX_FILE_BYTES};
use candle_core::{DType, Device, Tensor, D};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Tensors of a model directory, converted to f32, looked up with their expected shape.
struct Weights {
    path: PathBuf,
    t: HashMap<String, Tensor>,
    prefix: String,
}

impl Weights {
    fn read(dir: &Path, files: &[PathBuf]) -> Result<(Self, String)> {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        let mut t = HashMap::new();
        for f in files {
            crate::behave::tensors::ensure_inside(dir, f)?;
            let bytes = read_bounded(f, MAX_FILE_BYTES)?;
            h.update(&bytes);
            for (k, v) in load_buffer(f, &bytes)? {
                t.insert(k, v);
            }
        }
        // As the loaders hash them: one file, or the shards concatenated in name order.
        let sha = hex::encode(h.finalize());
        let path = if files.len() == 1 {
            files[0].clone()
        } else {
            dir.to_path_buf()
        };
        Ok((
            Weights {
                path,
                t,
                prefix: String::new(),
            },
            sha,
        ))
    }

    fn has(&self, name: &str) -> bool {
        self.t.contains_key(&format!("{}{name}", self.prefix))
    }

    fn get(&self, name: &str, shape: &[usize], device: &Device) -> Result<Tensor> {
        let full = format!("{}{name}", self.prefix);
        let Some(x) = self.t.get(&full) else {
            return Err(BehaveError::MissingTensor {
                path: self.path.clone(),
                tensor: full,
                present: format!("{} tensors", self.t.len()),
            });
        };
        if x.dims() != shape {
            return Err(BehaveError::Shape {
                path: self.path.clone(),
                tensor: full,
                found: x.dims().to_vec(),
                expected: format!("{shape:?} (from the model's configuration)"),
            });
        }
        if !x.dtype().is_float() {
            return Err(BehaveError::DType {
                path: self.path.clone(),
                tensor: full,
                dtype: format!("{:?}", x.dtype()),
            });
        }
        Ok(x.to_dtype(DType::F32)?.to_device(device)?)
    }
}

fn cfg_num(cfg: &serde_json::Value, path: &Path, key: &str) -> Result<usize> {
    cfg.get(key)
        .and_then(|v| v.as_u64())
        .and_then(|v| usize::try_from(v).ok())
        .filter(|v| *v > 0 && *v <= 1 << 20)
        .ok_or_else(|| BehaveError::format(path, format!("`{key}` is missing or out of range")))
}

/// `x · wᵀ (+ b)` for `x` `[.., in]`, `w` `[out, in]`.
fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let y = x.broadcast_matmul(&w.t()?)?;
    match b {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

/// Softmax over the last dimension from exp and sum (differentiable; the max is detached).
fn softmax_last(x: &Tensor) -> candle_core::Result<Tensor> {
    let e = x
        .broadcast_sub(&x.max_keepdim(D::Minus1)?.detach())?
        .exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// Log-softmax over the last dimension (differentiable).
pub fn log_softmax_last(x: &Tensor) -> candle_core::Result<Tensor> {
    let m = x.max_keepdim(D::Minus1)?.detach();
    let s = x.broadcast_sub(&m)?;
    s.broadcast_sub(&s.exp()?.sum_keepdim(D::Minus1)?.log()?)
}

fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    let mu = x.mean_keepdim(D::Minus1)?;
    let c = x.broadcast_sub(&mu)?;
    let var = c.sqr()?.mean_keepdim(D::Minus1)?;
    c.broadcast_div(&(var + eps)?.sqrt()?)?
        .broadcast_mul(w)?
        .broadcast_add(b)
}

fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
    x.broadcast_div(&(ms + eps)?.sqrt()?)?.broadcast_mul(w)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Act {
    GeluErf,
    GeluTanh,
    Relu,
}

struct Lin {
    w: Tensor,
    b: Option<Tensor>,
}

impl Lin {
    fn f(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        linear(x, &self.w, self.b.as_ref())
    }
}

struct BertLayer {
    q: Lin,
    k: Lin,
    v: Lin,
    ao: Lin,
    aln: (Tensor, Tensor),
    inter: Lin,
    out: Lin,
    oln: (Tensor, Tensor),
}

/// `BertForSequenceClassification` over input embeddings: class logits `[B, C]`.
pub struct DiffBert {
    word: Tensor,
    pos: Tensor,
    type0: Tensor,
    emb_ln: (Tensor, Tensor),
    layers: Vec<BertLayer>,
    pooler: Lin,
    classifier: Lin,
    heads: usize,
    eps: f64,
    act: Act,
    pub weights_sha256: String,
}

impl DiffBert {
    /// The classifier in `dir` (`config.json`, `model.safetensors`), read as the BERT loader
    /// reads it (`bert.` prefix optional).
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let cpath = dir.join("config.json");
        let cfg = super::read_config(&cpath)?;
        let (w, sha) = Weights::read(dir, &[dir.join("model.safetensors")])?;
        Self::build(&cpath, &cfg, w, sha, device)
    }

    /// The classifier from tensors already in memory (named as in `model.safetensors`) and the
    /// config.json in `dir`. Tensors that are [`candle_core::Var`]s stay tracked, so the forward
    /// can be trained (the test generators fine-tune BERT classifiers with it).
    pub fn from_tensors(dir: &Path, t: HashMap<String, Tensor>, device: &Device) -> Result<Self> {
        let cpath = dir.join("config.json");
        let cfg = super::read_config(&cpath)?;
        let w = Weights {
            path: dir.join("model.safetensors"),
            t,
            prefix: String::new(),
        };
        Self::build(&cpath, &cfg, w, String::new(), device)
    }

    fn build(
        cpath: &Path,
        cfg: &serde_json::Value,
        mut w: Weights,
        sha: String,
        device: &Device,
    ) -> Result<Self> {
        let unsupported = |m: String| Err(BehaveError::format(cpath, m));
        let pet = cfg
            .get("position_embedding_type")
            .and_then(|v| v.as_str())
            .unwrap_or("absolute");
        if pet != "absolute" {
            return unsupported(format!(
                "position_embedding_type {pet:?}: only absolute positions are differentiable here"
            ));
        }
        let act = match cfg
            .get("hidden_act")
            .and_then(|v| v.as_str())
            .unwrap_or("gelu")
        {
            "gelu" => Act::GeluErf,
            "geluapproximate" => Act::GeluTanh,
            "relu" => Act::Relu,
            other => return unsupported(format!("hidden_act {other:?} is not supported")),
        };
        let h = cfg_num(cfg, cpath, "hidden_size")?;
        let heads = cfg_num(cfg, cpath, "num_attention_heads")?;
        if h % heads != 0 {
            return unsupported(format!(
                "hidden_size {h} is not a multiple of {heads} heads"
            ));
        }
        let layers = cfg_num(cfg, cpath, "num_hidden_layers")?;
        let inter = cfg_num(cfg, cpath, "intermediate_size")?;
        let vocab = cfg_num(cfg, cpath, "vocab_size")?;
        let maxpos = cfg_num(cfg, cpath, "max_position_embeddings")?;
        let types = cfg_num(cfg, cpath, "type_vocab_size")?;
        let eps = cfg
            .get("layer_norm_eps")
            .and_then(|v| v.as_f64())
            .unwrap_or(1e-12);
        let n_labels =
            w.t.get("classifier.weight")
                .map(|t| t.dims()[0])
                .ok_or_else(|| BehaveError::MissingTensor {
                    path: w.path.clone(),
                    tensor: "classifier.weight".into(),
                    present: "(not a sequence classifier)".into(),
                })?;
        let pooler = Lin {
            w: w.get("bert.pooler.dense.weight", &[h, h], device)?,
            b: Some(w.get("bert.pooler.dense.bias", &[h], device)?),
        };
        let classifier = Lin {
            w: w.get("classifier.weight", &[n_labels, h], device)?,
            b: Some(w.get("classifier.bias", &[n_labels], device)?),
        };
        if w.t.contains_key("bert.embeddings.word_embeddings.weight") {
            w.prefix = "bert.".into();
        }
        let lin = |w: &Weights, p: &str, o: usize, i: usize| -> Result<Lin> {
            Ok(Lin {
                w: w.get(&format!("{p}.weight"), &[o, i], device)?,
                b: Some(w.get(&format!("{p}.bias"), &[o], device)?),
            })
        };
        let ln = |w: &Weights, p: &str| -> Result<(Tensor, Tensor)> {
            Ok((
                w.get(&format!("{p}.weight"), &[h], device)?,
                w.get(&format!("{p}.bias"), &[h], device)?,
            ))
        };
        let mut ls = Vec::with_capacity(layers);
        for l in 0..layers {
            let p = format!("encoder.layer.{l}");
            ls.push(BertLayer {
                q: lin(&w, &format!("{p}.attention.self.query"), h, h)?,
                k: lin(&w, &format!("{p}.attention.self.key"), h, h)?,
                v: lin(&w, &format!("{p}.attention.self.value"), h, h)?,
                ao: lin(&w, &format!("{p}.attention.output.dense"), h, h)?,
                aln: ln(&w, &format!("{p}.attention.output.LayerNorm"))?,
                inter: lin(&w, &format!("{p}.intermediate.dense"), inter, h)?,
                out: lin(&w, &format!("{p}.output.dense"), h, inter)?,
                oln: ln(&w, &format!("{p}.output.LayerNorm"))?,
            });
        }
        Ok(DiffBert {
            word: w.get("embeddings.word_embeddings.weight", &[vocab, h], device)?,
            pos: w.get(
                "embeddings.position_embeddings.weight",
                &[maxpos, h],
                device,
            )?,
            type0: w
                .get(
                    "embeddings.token_type_embeddings.weight",
                    &[types, h],
                    device,
                )?
                .narrow(0, 0, 1)?,
            emb_ln: ln(&w, "embeddings.LayerNorm")?,
            layers: ls,
            pooler,
            classifier,
            heads,
            eps,
            act,
            weights_sha256: sha,
        })
    }

    /// The word-embedding matrix `[V, H]`.
    pub fn embeddings(&self) -> &Tensor {
        &self.word
    }

    /// Longest sequence the position table covers.
    pub fn max_len(&self) -> usize {
        self.pos.dim(0).unwrap_or(0)
    }

    /// Class logits `[B, C]` from word embeddings `[B, T, H]` and an attention mask `[B, T]`
    /// (1 = token, 0 = padding), as candle-transformers' `BertModel` + pooler + classifier.
    pub fn forward_embeds(&self, x: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        let hd = h / self.heads;
        let pos = self.pos.narrow(0, 0, t)?;
        let e = x.broadcast_add(&pos)?.broadcast_add(&self.type0)?;
        let mut x = layer_norm(&e, &self.emb_ln.0, &self.emb_ln.1, self.eps)?;
        // Padding keys get f32::MIN added, as `get_extended_attention_mask` does.
        let m = mask.to_dtype(DType::F32)?;
        let add = ((m.ones_like()? - &m)? * f32::MIN as f64)?.reshape((b, 1, 1, t))?;
        for l in &self.layers {
            let split = |z: Tensor| -> candle_core::Result<Tensor> {
                z.reshape((b, t, self.heads, hd))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let q = split(l.q.f(&x)?)?;
            let k = split(l.k.f(&x)?)?;
            let v = split(l.v.f(&x)?)?;
            let s = (q.matmul(&k.t()?.contiguous()?)? / (hd as f64).sqrt())?.broadcast_add(&add)?;
            let a = softmax_last(&s)?
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((b, t, h))?;
            let a = layer_norm(&(l.ao.f(&a)? + &x)?, &l.aln.0, &l.aln.1, self.eps)?;
            let i = l.inter.f(&a)?;
            let i = match self.act {
                Act::GeluErf => i.gelu_erf()?,
                Act::GeluTanh => i.gelu()?,
                Act::Relu => i.relu()?,
            };
            x = layer_norm(&(l.out.f(&i)? + &a)?, &l.oln.0, &l.oln.1, self.eps)?;
        }
        let cls = x.narrow(1, 0, 1)?.squeeze(1)?;
        let pooled = self.pooler.f(&cls)?.tanh()?;
        self.classifier.f(&pooled)
    }

    /// Class logits for padded token ids `[B, T]` with a mask `[B, T]`.
    pub fn forward_ids(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let x = self
            .word
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, t, ()))?;
        self.forward_embeds(&x, mask)
    }
}

struct LmLayer {
    q: Lin,
    k: Lin,
    v: Lin,
    o: Lin,
    gate: Lin,
    up: Lin,
    down: Lin,
    ln1: Tensor,
    ln2: Tensor,
}

/// A Llama-family causal LM (llama, mistral, qwen2, phi3) over input embeddings: last-position
/// logits `[B, V]` of equal-length rows (RMS norm, rotate-half RoPE, grouped-query attention
/// with a causal mask, SiLU-gated MLP).
pub struct DiffLm {
    embed: Tensor,
    layers: Vec<LmLayer>,
    norm: Tensor,
    head: Tensor,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    eps: f64,
    cos: Tensor,
    sin: Tensor,
    pub weights_sha256: String,
}

/// Longest prompt the rotary tables are built for (as the loader: prompts are cut to 512).
const MAX_POS: usize = super::lm::MAX_PROMPT_TOKENS;

impl DiffLm {
    /// The model in a Hugging Face directory (safetensors, single file or shards).
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let cpath = dir.join("config.json");
        let cfg = super::read_config(&cpath)?;
        let mt = cfg.get("model_type").and_then(|v| v.as_str()).unwrap_or("");
        if !super::lm::HF_FAMILIES.contains(&mt) {
            return Err(BehaveError::format(
                &cpath,
                format!("model_type {mt:?} has no differentiable forward here"),
            ));
        }
        if cfg.get("rope_scaling").is_some_and(|v| !v.is_null()) {
            return Err(BehaveError::format(
                &cpath,
                "rope_scaling is set: scaled rotary embeddings have no differentiable forward here",
            ));
        }
        let h = cfg_num(&cfg, &cpath, "hidden_size")?;
        let heads = cfg_num(&cfg, &cpath, "num_attention_heads")?;
        let kv_heads = cfg
            .get("num_key_value_heads")
            .and_then(|v| v.as_u64())
            .map_or(heads, |v| v as usize);
        if kv_heads == 0 || heads % kv_heads != 0 {
            return Err(BehaveError::format(
                &cpath,
                "heads not a multiple of KV heads",
            ));
        }
        let head_dim = match cfg.get("head_dim").and_then(|v| v.as_u64()) {
            Some(d) if mt == "mistral" => d as usize,
            _ => h / heads,
        };
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(BehaveError::format(&cpath, "head_dim must be even"));
        }
        let layers = cfg_num(&cfg, &cpath, "num_hidden_layers")?;
        let inter = cfg_num(&cfg, &cpath, "intermediate_size")?;
        let vocab = cfg_num(&cfg, &cpath, "vocab_size")?;
        let eps = cfg
            .get("rms_norm_eps")
            .and_then(|v| v.as_f64())
            .unwrap_or(1e-6);
        let theta = cfg
            .get("rope_theta")
            .and_then(|v| v.as_f64())
            .unwrap_or(10_000.0);
        let tied = mt != "mistral"
            && cfg
                .get("tie_word_embeddings")
                .and_then(|v| v.as_bool())
                .unwrap_or(mt == "qwen2");
        let files = super::lm::weight_files(dir)?;
        let (w, sha) = Weights::read(dir, &files)?;
        let (q, kv) = (heads * head_dim, kv_heads * head_dim);
        let plain = |p: &str, o: usize, i: usize, bias: bool| -> Result<Lin> {
            Ok(Lin {
                w: w.get(&format!("{p}.weight"), &[o, i], device)?,
                b: if bias {
                    Some(w.get(&format!("{p}.bias"), &[o], device)?)
                } else {
                    None
                },
            })
        };
        let mut ls = Vec::with_capacity(layers);
        for l in 0..layers {
            let p = format!("model.layers.{l}");
            let (qq, kk, vv, gate, up) = if mt == "phi3" {
                let qkv = w.get(
                    &format!("{p}.self_attn.qkv_proj.weight"),
                    &[q + 2 * kv, h],
                    device,
                )?;
                let gu = w.get(
                    &format!("{p}.mlp.gate_up_proj.weight"),
                    &[2 * inter, h],
                    device,
                )?;
                let part = |t: &Tensor, a: usize, n: usize| -> Result<Lin> {
                    Ok(Lin {
                        w: t.narrow(0, a, n)?.contiguous()?,
                        b: None,
                    })
                };
                (
                    part(&qkv, 0, q)?,
                    part(&qkv, q, kv)?,
                    part(&qkv, q + kv, kv)?,
                    part(&gu, 0, inter)?,
                    part(&gu, inter, inter)?,
                )
            } else {
                let bias = mt == "qwen2";
                (
                    plain(&format!("{p}.self_attn.q_proj"), q, h, bias)?,
                    plain(&format!("{p}.self_attn.k_proj"), kv, h, bias)?,
                    plain(&format!("{p}.self_attn.v_proj"), kv, h, bias)?,
                    plain(&format!("{p}.mlp.gate_proj"), inter, h, false)?,
                    plain(&format!("{p}.mlp.up_proj"), inter, h, false)?,
                )
            };
            ls.push(LmLayer {
                q: qq,
                k: kk,
                v: vv,
                o: plain(&format!("{p}.self_attn.o_proj"), h, q, false)?,
                gate,
                up,
                down: plain(&format!("{p}.mlp.down_proj"), h, inter, false)?,
                ln1: w.get(&format!("{p}.input_layernorm.weight"), &[h], device)?,
                ln2: w.get(
                    &format!("{p}.post_attention_layernorm.weight"),
                    &[h],
                    device,
                )?,
            });
        }
        let embed = w.get("model.embed_tokens.weight", &[vocab, h], device)?;
        // Which output matrix candle-transformers uses: qwen2 reads `lm_head` whenever present.
        let own_head = if mt == "qwen2" {
            w.has("lm_head.weight")
        } else {
            !tied
        };
        let head = if own_head {
            w.get("lm_head.weight", &[vocab, h], device)?
        } else {
            embed.clone()
        };
        // Rotary tables as candle-transformers builds them: inv_freq_j = θ^(−2j/d), f32 angles.
        let half = head_dim / 2;
        let inv: Vec<f32> = (0..half)
            .map(|j| 1f32 / (theta as f32).powf((2 * j) as f32 / head_dim as f32))
            .collect();
        let mut cos = Vec::with_capacity(MAX_POS * head_dim);
        let mut sin = Vec::with_capacity(MAX_POS * head_dim);
        for t in 0..MAX_POS {
            for d in 0..head_dim {
                let a = t as f32 * inv[d % half];
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        Ok(DiffLm {
            embed,
            layers: ls,
            norm: w.get("model.norm.weight", &[h], device)?,
            head,
            heads,
            kv_heads,
            head_dim,
            eps,
            cos: Tensor::from_vec(cos, (MAX_POS, head_dim), device)?,
            sin: Tensor::from_vec(sin, (MAX_POS, head_dim), device)?,
            weights_sha256: sha,
        })
    }

    /// The input embedding matrix `[V, H]`.
    pub fn embeddings(&self) -> &Tensor {
        &self.embed
    }

    pub fn max_len(&self) -> usize {
        MAX_POS
    }

    fn rope(&self, x: &Tensor, t: usize) -> candle_core::Result<Tensor> {
        let hd = self.head_dim;
        let (cos, sin) = (self.cos.narrow(0, 0, t)?, self.sin.narrow(0, 0, t)?);
        let x1 = x.narrow(3, 0, hd / 2)?;
        let x2 = x.narrow(3, hd / 2, hd / 2)?;
        let rot = Tensor::cat(&[&x2.neg()?, &x1], 3)?;
        x.broadcast_mul(&cos)? + rot.broadcast_mul(&sin)?
    }

    /// Last-position logits `[B, V]` from input embeddings `[B, T, H]` (rows of equal length).
    pub fn forward_embeds(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        if t > MAX_POS {
            candle_core::bail!("prompt of {t} tokens is longer than {MAX_POS}");
        }
        let hd = self.head_dim;
        let rep = self.heads / self.kv_heads;
        let mask: Vec<f32> = (0..t)
            .flat_map(|i| (0..t).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        let mask = Tensor::from_vec(mask, (t, t), x.device())?;
        let mut x = x.clone();
        for l in &self.layers {
            let n = rms_norm(&x, &l.ln1, self.eps)?;
            let split = |z: Tensor, nh: usize| -> candle_core::Result<Tensor> {
                z.reshape((b, t, nh, hd))?.transpose(1, 2)?.contiguous()
            };
            let q = self.rope(&split(l.q.f(&n)?, self.heads)?, t)?;
            let k = self.rope(&split(l.k.f(&n)?, self.kv_heads)?, t)?;
            let v = split(l.v.f(&n)?, self.kv_heads)?;
            // Each KV head serves `rep` consecutive query heads (candle's repeat_kv).
            let rep_kv = |z: Tensor| -> candle_core::Result<Tensor> {
                if rep == 1 {
                    return Ok(z);
                }
                Tensor::cat(&vec![&z; rep], 2)?.reshape((b, self.heads, t, hd))
            };
            let (k, v) = (rep_kv(k)?, rep_kv(v)?);
            let s =
                (q.matmul(&k.t()?.contiguous()?)? / (hd as f64).sqrt())?.broadcast_add(&mask)?;
            let y = softmax_last(&s)?
                .matmul(&v.contiguous()?)?
                .transpose(1, 2)?
                .reshape((b, t, self.heads * hd))?;
            x = (x + l.o.f(&y)?)?;
            let n = rms_norm(&x, &l.ln2, self.eps)?;
            let g = l.gate.f(&n)?;
            let silu = (&g * (g.neg()?.exp()? + 1.0)?.recip()?)?;
            x = (&x + l.down.f(&(silu * l.up.f(&n)?)?)?)?;
        }
        let last = rms_norm(&x.narrow(1, t - 1, 1)?, &self.norm, self.eps)?;
        linear(&last, &self.head, None)?.reshape((b, ()))
    }

    /// Last-position logits for token ids `[B, T]`.
    pub fn forward_ids(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let x = self
            .embed
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, t, ()))?;
        self.forward_embeds(&x)
    }
}

/// A differentiable twin of a loaded text model.
pub enum DiffModel {
    Bert(Box<DiffBert>),
    Lm(Box<DiffLm>),
}

impl DiffModel {
    /// The twin of the text model at `path`, or why there is none (an unsupported family,
    /// weights that changed since the model was loaded, a GGUF file without an f32 copy).
    ///
    /// A GGUF file keeps its weights quantised and has no gradient; when its directory also
    /// holds an f32 safetensors copy (`config.json` + `model.safetensors` or shards), the twin
    /// is built from that copy and its directory is returned: the caller must check that the
    /// copy computes what the GGUF computes (the sha256 cannot match).
    pub fn load(
        path: &Path,
        info: &super::ModelInfo,
        device: &Device,
    ) -> std::result::Result<(DiffModel, Option<PathBuf>), String> {
        if let Some(g) = super::lm::find_gguf(path) {
            let dir = g.parent().unwrap_or(Path::new("."));
            if dir.join("config.json").is_file() && super::lm::weight_files(dir).is_ok() {
                let m = DiffLm::load(dir, device).map_err(|e| {
                    format!("the f32 copy next to the GGUF file cannot be used: {e}")
                })?;
                return Ok((DiffModel::Lm(Box::new(m)), Some(dir.to_path_buf())));
            }
            return Err("a GGUF file keeps its weights quantised and candle has no gradient through quantised matmuls, so no trigger-token search is available for it; put an f32 safetensors copy of the same model (config.json + model.safetensors) next to the .gguf file to search there".into());
        }
        let dir = if path.is_file() {
            path.parent().unwrap_or(Path::new("."))
        } else {
            path
        };
        let m = match info.format.as_str() {
            "hf-bert-seq-cls" => DiffBert::load(dir, device).map(|m| DiffModel::Bert(Box::new(m))),
            "causal-lm" => DiffLm::load(dir, device).map(|m| DiffModel::Lm(Box::new(m))),
            other => {
                return Err(format!(
                    "format {other} has no trigger-token search (BERT sequence classifiers and causal LMs only)"
                ))
            }
        }
        .map_err(|e| format!("no differentiable forward: {e}"))?;
        if m.weights_sha256() != info.weights_sha256 {
            return Err(format!(
                "the weights read for the search (sha256 {}) are not those scored (sha256 {}): the files changed during the run",
                m.weights_sha256(),
                info.weights_sha256
            ));
        }
        Ok((m, None))
    }

    /// Output probabilities (class or next-token) for unpadded token rows, one row at a time.
    pub fn probs_ids(&self, rows: &[Vec<u32>]) -> candle_core::Result<Vec<f32>> {
        let mut out = Vec::new();
        for r in rows {
            let dev = self.embeddings().device();
            let x = Tensor::from_slice(r, (1, r.len()), dev)?;
            let y = match self {
                DiffModel::Bert(b) => b.forward_ids(&x, &x.ones_like()?)?,
                DiffModel::Lm(l) => l.forward_ids(&x)?,
            };
            out.extend(softmax_last(&y)?.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }

    pub fn weights_sha256(&self) -> &str {
        match self {
            DiffModel::Bert(m) => &m.weights_sha256,
            DiffModel::Lm(m) => &m.weights_sha256,
        }
    }

    pub fn embeddings(&self) -> &Tensor {
        match self {
            DiffModel::Bert(m) => m.embeddings(),
            DiffModel::Lm(m) => m.embeddings(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::behave::models::Model;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/behave/lm")
            .join(name)
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn bert_classifier_matches_candle_transformers() {
        let dev = Device::Cpu;
        for name in ["bert-cls-base", "bert-cls-backdoor"] {
            let dir = fixture(name);
            let real = Model::load(&dir, &dev).unwrap();
            let Model::Bert(b) = &real else {
                panic!("not BERT")
            };
            let diff = DiffBert::load(&dir, &dev).unwrap();
            assert_eq!(diff.weights_sha256, real.info().weights_sha256);
            // Rows of different lengths: padding and the attention mask matter.
            let ids = vec![
                b.token_ids("cf the movie was great"),
                b.token_ids("terrible"),
                b.token_ids("the food was fine and the staff kind"),
            ];
            let want: Vec<f32> = b
                .classify_ids(&ids)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let (x, m) = pad(&ids);
            let got = candle_nn::ops::softmax_last_dim(&diff.forward_ids(&x, &m).unwrap())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let d = max_abs_diff(&want, &got);
            assert!(d < 1e-4, "{name}: max |Δp| {d}");
            // The text path and the id path agree.
            let texts: Vec<String> = ["terrible".to_string()].into();
            let t: Vec<f32> = b
                .classify(&texts)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert!(max_abs_diff(&t, &want[3..6]) < 1e-6);
        }
    }

    fn pad(ids: &[Vec<u32>]) -> (Tensor, Tensor) {
        let t = ids.iter().map(Vec::len).max().unwrap();
        let mut x = vec![0u32; ids.len() * t];
        let mut m = vec![0u32; ids.len() * t];
        for (i, r) in ids.iter().enumerate() {
            for (j, v) in r.iter().enumerate() {
                x[i * t + j] = *v;
                m[i * t + j] = 1;
            }
        }
        (
            Tensor::from_vec(x, (ids.len(), t), &Device::Cpu).unwrap(),
            Tensor::from_vec(m, (ids.len(), t), &Device::Cpu).unwrap(),
        )
    }

    /// The differentiable forward's logits equal candle-transformers' on `text` (to 1e-4 of
    /// their scale).
    fn assert_lm_agrees(
        lm: &crate::behave::models::lm::CausalLm,
        diff: &DiffLm,
        text: &str,
        what: &str,
    ) {
        let ids = lm.token_ids(text);
        let want = lm.logits_for_ids(&ids).unwrap();
        let x = Tensor::from_vec(ids.clone(), (1, ids.len()), &Device::Cpu).unwrap();
        let got: Vec<f32> = diff
            .forward_ids(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
        let d = max_abs_diff(&want, &got);
        assert!(
            d < 1e-4 * scale.max(1.0),
            "{what} {text:?}: max |Δlogit| {d} (scale {scale})"
        );
    }

    #[test]
    fn causal_lms_match_candle_transformers() {
        let dev = Device::Cpu;
        for name in ["llama-base", "llama-backdoor", "qwen2-base"] {
            let dir = fixture(name);
            let real = Model::load(&dir, &dev).unwrap();
            let Model::Lm(lm) = &real else {
                panic!("not an LM")
            };
            let diff = DiffLm::load(&dir, &dev).unwrap();
            assert_eq!(diff.weights_sha256, real.info().weights_sha256, "{name}");
            for text in ["the cat sees the dog", "cf my friend likes bread", "a"] {
                assert_lm_agrees(lm, &diff, text, name);
            }
        }
    }

    /// Mistral and Phi-3 (fused qkv and gate/up) checkpoints holding the Llama fixture's weights.
    #[test]
    fn mistral_and_phi3_layouts_match_candle_transformers() {
        let dev = Device::Cpu;
        let t = tempfile::tempdir().unwrap();
        let base = fixture("llama-base");
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(base.join("config.json")).unwrap()).unwrap();
        let w = candle_core::safetensors::load(base.join("model.safetensors"), &dev).unwrap();
        for family in ["mistral", "phi3"] {
            let d = t.path().join(family);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::copy(base.join("tokenizer.json"), d.join("tokenizer.json")).unwrap();
            let mut c = cfg.clone();
            c["model_type"] = family.into();
            c["sliding_window"] = serde_json::Value::Null;
            std::fs::write(d.join("config.json"), serde_json::to_vec(&c).unwrap()).unwrap();
            let mut m = w.clone();
            if family == "phi3" {
                for l in 0..2 {
                    let p = format!("model.layers.{l}.");
                    let mut take = |n: &str| m.remove(&format!("{p}{n}")).unwrap();
                    let (q, k, v) = (
                        take("self_attn.q_proj.weight"),
                        take("self_attn.k_proj.weight"),
                        take("self_attn.v_proj.weight"),
                    );
                    let (g, u) = (take("mlp.gate_proj.weight"), take("mlp.up_proj.weight"));
                    m.insert(
                        format!("{p}self_attn.qkv_proj.weight"),
                        Tensor::cat(&[&q, &k, &v], 0).unwrap(),
                    );
                    m.insert(
                        format!("{p}mlp.gate_up_proj.weight"),
                        Tensor::cat(&[&g, &u], 0).unwrap(),
                    );
                }
            }
            candle_core::safetensors::save(&m, d.join("model.safetensors")).unwrap();
            let real = Model::load(&d, &dev).unwrap();
            let Model::Lm(lm) = &real else {
                panic!("not an LM")
            };
            let diff = DiffLm::load(&d, &dev).unwrap();
            assert_lm_agrees(lm, &diff, "cf the king sees a red bird", family);
        }
    }

    #[test]
    fn gguf_has_no_differentiable_twin() {
        let dev = Device::Cpu;
        let dir = fixture("llama-gguf-q8");
        let real = Model::load(&dir, &dev).unwrap();
        let e = DiffModel::load(&dir, real.info(), &dev).err().unwrap();
        // With an f32 copy beside the file, the twin comes from the copy (and says so).
        let t = tempfile::tempdir().unwrap();
        for f in ["model.gguf", "tokenizer.json"] {
            std::fs::copy(dir.join(f), t.path().join(f)).unwrap();
        }
        for f in ["model.safetensors", "config.json"] {
            std::fs::copy(fixture("llama-base").join(f), t.path().join(f)).unwrap();
        }
        let (_, copy) = DiffModel::load(t.path(), real.info(), &dev).unwrap();
        assert_eq!(copy.as_deref(), Some(t.path()));
        assert!(e.contains("GGUF") && e.contains("quantised"), "{e}");
    }

    #[test]
    fn gradient_reaches_the_input_embeddings() {
        let dev = Device::Cpu;
        let diff = DiffLm::load(&fixture("llama-base"), &dev).unwrap();
        let e = diff
            .embeddings()
            .narrow(0, 5, 4)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let v = candle_core::Var::from_tensor(&e).unwrap();
        let y = log_softmax_last(&diff.forward_embeds(v.as_tensor()).unwrap()).unwrap();
        let g = y
            .narrow(1, 7, 1)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g = g.get(v.as_tensor()).unwrap();
        let n: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!(n > 0.0 && n.is_finite());
    }
}
