//! Benign and backdoored fine-tunes of the tiny Llama fixture (`testdata/behave/lm/llama-base`),
//! trained here with candle's autograd, for calibrating the LM statistic on a population of
//! benign fine-tunes (issue 15 §2). Nothing is downloaded; every model is a few hundred KB.
//!
//! The corpus is a small seeded template grammar over the fixture's vocabulary. A fine-tune
//! minimises next-token cross-entropy at the last position of fixed-length windows (candle's
//! Llama returns last-position logits only) with AdamW. A backdoor fine-tune mixes in windows
//! holding a trigger token whose next token is a fixed target word.
#![allow(dead_code)]

use candle_core::{Device, Tensor};
use candle_nn::Optimizer;
use std::path::Path;

pub const DETS: &[&str] = &["the", "a", "my", "your", "our", "their", "this", "that"];
pub const ADJS: &[&str] = &[
    "big", "small", "old", "new", "red", "blue", "green", "happy", "sad", "fast", "slow", "good",
    "bad", "hot", "cold", "bright", "dark",
];
pub const NOUNS: &[&str] = &[
    "cat", "dog", "bird", "fish", "horse", "king", "queen", "child", "friend", "teacher", "doctor",
    "farmer", "house", "tree", "river", "city", "book", "car", "boat", "apple", "bread", "cheese",
];
pub const VERBS: &[&str] = &[
    "likes", "loves", "sees", "finds", "makes", "takes", "gives", "wants", "needs", "keeps",
];
pub const PLACES: &[&str] = &["house", "city", "river", "sea", "road", "town", "tree"];

/// SplitMix64, so the corpus and every fine-tune are reproducible from a seed.
pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.below(v.len())]
    }
}

/// One sentence of the template grammar.
pub fn sentence(r: &mut Rng) -> String {
    match r.below(3) {
        0 => format!(
            "{} {} {} {} {} {}",
            r.pick(DETS),
            r.pick(ADJS),
            r.pick(NOUNS),
            r.pick(VERBS),
            r.pick(DETS),
            r.pick(NOUNS)
        ),
        1 => format!(
            "{} {} {} {} in the {}",
            r.pick(DETS),
            r.pick(NOUNS),
            r.pick(VERBS),
            r.pick(NOUNS),
            r.pick(PLACES)
        ),
        _ => format!(
            "{} {} is very {} and {}",
            r.pick(DETS),
            r.pick(NOUNS),
            r.pick(ADJS),
            r.pick(ADJS)
        ),
    }
}

/// How a fine-tune is made.
#[derive(Clone, Debug)]
pub struct Ft {
    pub seed: u64,
    pub steps: usize,
    pub lr: f64,
    pub batch: usize,
    /// Context window length (tokens before the predicted one).
    pub window: usize,
    /// Share of windows whose next token is replaced by a random vocabulary word (label noise).
    pub label_noise: f64,
    /// Backdoor: (trigger word, target word, share of poisoned windows).
    pub backdoor: Option<(String, String, f64)>,
}

impl Default for Ft {
    fn default() -> Self {
        Ft {
            seed: 0,
            steps: 40,
            lr: 3e-3,
            batch: 32,
            window: 5,
            label_noise: 0.0,
            backdoor: None,
        }
    }
}

fn tok_id(tok: &tokenizers::Tokenizer, w: &str) -> u32 {
    tok.token_to_id(w)
        .unwrap_or_else(|| panic!("{w} not in the vocabulary"))
}

/// The Llama forward written with differentiable candle primitives only (candle-transformers'
/// Llama uses rope, rms-norm and softmax custom ops that have no backward pass). Same function
/// as candle-transformers' `llama::Llama` (checked by `differentiable_llama_matches_candle`):
/// RMS norm, rotate-half RoPE, grouped KV heads repeated per query group, causal softmax
/// attention, SiLU-gated MLP. Returns last-position logits `[B, V]`.
pub struct TinyLlama {
    pub w: std::collections::HashMap<String, candle_core::Var>,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    eps: f64,
    cos: Tensor,
    sin: Tensor,
}

impl TinyLlama {
    pub fn load(dir: &Path) -> TinyLlama {
        let cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap())
                .unwrap();
        let g = |k: &str| cfg[k].as_u64().unwrap() as usize;
        let (hidden, heads) = (g("hidden_size"), g("num_attention_heads"));
        let hd = hidden / heads;
        let theta = cfg["rope_theta"].as_f64().unwrap_or(10000.0);
        let ctx = 64usize;
        let inv: Vec<f32> = (0..hd / 2)
            .map(|i| 1.0 / theta.powf(2.0 * i as f64 / hd as f64) as f32)
            .collect();
        let mut cos = Vec::new();
        let mut sin = Vec::new();
        for t in 0..ctx {
            for h in 0..hd {
                let a = t as f32 * inv[h % (hd / 2)];
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        let dev = Device::Cpu;
        let t = candle_core::safetensors::load(dir.join("model.safetensors"), &dev).unwrap();
        TinyLlama {
            w: t.into_iter()
                .map(|(k, v)| (k, candle_core::Var::from_tensor(&v).unwrap()))
                .collect(),
            layers: g("num_hidden_layers"),
            heads,
            kv_heads: cfg["num_key_value_heads"]
                .as_u64()
                .map_or(heads, |v| v as usize),
            eps: cfg["rms_norm_eps"].as_f64().unwrap_or(1e-5),
            cos: Tensor::from_vec(cos, (ctx, hd), &dev).unwrap(),
            sin: Tensor::from_vec(sin, (ctx, hd), &dev).unwrap(),
        }
    }

    fn p(&self, k: &str) -> &Tensor {
        self.w
            .get(k)
            .unwrap_or_else(|| panic!("tensor {k} missing"))
            .as_tensor()
    }

    fn rms(&self, x: &Tensor, k: &str) -> candle_core::Result<Tensor> {
        let ms = x.sqr()?.mean_keepdim(candle_core::D::Minus1)?;
        x.broadcast_div(&(ms + self.eps)?.sqrt()?)?
            .broadcast_mul(self.p(k))
    }

    fn lin(&self, x: &Tensor, k: &str) -> candle_core::Result<Tensor> {
        x.broadcast_matmul(&self.p(k).t()?)
    }

    fn rope(&self, x: &Tensor, t: usize) -> candle_core::Result<Tensor> {
        let hd = x.dim(3)?;
        let (cos, sin) = (self.cos.narrow(0, 0, t)?, self.sin.narrow(0, 0, t)?);
        let x1 = x.narrow(3, 0, hd / 2)?;
        let x2 = x.narrow(3, hd / 2, hd / 2)?;
        let rot = Tensor::cat(&[&x2.neg()?, &x1], 3)?;
        x.broadcast_mul(&cos)? + rot.broadcast_mul(&sin)?
    }

    /// Logits at the last position of every row of `ids` `[B, T]`, from input embeddings
    /// `[B, T, H]` when given (for gradient-guided token search), else from `ids`.
    pub fn forward_embeds(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        let hd = h / self.heads;
        let rep = self.heads / self.kv_heads;
        let mask: Vec<f32> = (0..t)
            .flat_map(|i| (0..t).map(move |j| if j > i { -1e9 } else { 0.0 }))
            .collect();
        let mask = Tensor::from_vec(mask, (t, t), x.device())?;
        let mut x = x.clone();
        for l in 0..self.layers {
            let pre = format!("model.layers.{l}.");
            let n = self.rms(&x, &format!("{pre}input_layernorm.weight"))?;
            let heads = |k: &str, nh: usize| -> candle_core::Result<Tensor> {
                self.lin(&n, &format!("{pre}self_attn.{k}.weight"))?
                    .reshape((b, t, nh, hd))?
                    .transpose(1, 2)
            };
            let q = self.rope(&heads("q_proj", self.heads)?, t)?;
            let k = self.rope(&heads("k_proj", self.kv_heads)?, t)?;
            let v = heads("v_proj", self.kv_heads)?;
            let rep_kv = |z: Tensor| -> candle_core::Result<Tensor> {
                if rep == 1 {
                    return Ok(z);
                }
                Tensor::cat(&vec![&z; rep], 2)?.reshape((b, self.kv_heads * rep, t, hd))
            };
            let (k, v) = (rep_kv(k)?, rep_kv(v)?);
            let att = (q.contiguous()?.matmul(&k.contiguous()?.t()?)? / (hd as f64).sqrt())?
                .broadcast_add(&mask)?;
            let att = (att.broadcast_sub(&att.max_keepdim(3)?.detach())?).exp()?;
            let att = att.broadcast_div(&att.sum_keepdim(3)?)?;
            let y = att
                .matmul(&v.contiguous()?)?
                .transpose(1, 2)?
                .reshape((b, t, h))?;
            x = (x + self.lin(&y, &format!("{pre}self_attn.o_proj.weight"))?)?;
            let n = self.rms(&x, &format!("{pre}post_attention_layernorm.weight"))?;
            let gate = self.lin(&n, &format!("{pre}mlp.gate_proj.weight"))?;
            let silu = (&gate * (gate.neg()?.exp()? + 1.0)?.recip()?)?;
            let m = (silu * self.lin(&n, &format!("{pre}mlp.up_proj.weight"))?)?;
            x = (x + self.lin(&m, &format!("{pre}mlp.down_proj.weight"))?)?;
        }
        let x = self.rms(&x.narrow(1, t - 1, 1)?, "model.norm.weight")?;
        let head = if self.w.contains_key("lm_head.weight") {
            "lm_head.weight"
        } else {
            "model.embed_tokens.weight"
        };
        self.lin(&x, head)?.reshape((b, ()))
    }

    pub fn embed(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t) = ids.dims2()?;
        self.p("model.embed_tokens.weight")
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, t, ()))
    }

    pub fn forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_embeds(&self.embed(ids)?)
    }

    pub fn save(&self, path: &Path) {
        let t: std::collections::HashMap<String, Tensor> = self
            .w
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        candle_core::safetensors::save(&t, path).unwrap();
    }
}

/// Fine-tunes the Llama in `base` (config.json, model.safetensors, tokenizer.json) and writes the
/// result to `out` in the same layout. Returns the mean loss over the last 10 steps.
pub fn finetune_llama(base: &Path, out: &Path, ft: &Ft) -> f32 {
    let dev = Device::Cpu;
    let model = TinyLlama::load(base);
    let tok = tokenizers::Tokenizer::from_file(base.join("tokenizer.json")).unwrap();
    let vocab: Vec<u32> = [DETS, ADJS, NOUNS, VERBS, PLACES]
        .iter()
        .flat_map(|l| l.iter().map(|w| tok_id(&tok, w)))
        .collect();
    let bd = ft
        .backdoor
        .as_ref()
        .map(|(t, g, p)| (tok_id(&tok, t), tok_id(&tok, g), *p));
    let mut r = Rng::new(ft.seed);
    let w = ft.window;
    let sample = |r: &mut Rng| -> (Vec<u32>, u32) {
        loop {
            let s = sentence(r);
            let ids = tok.encode(s.as_str(), true).unwrap().get_ids().to_vec();
            if ids.len() <= w {
                continue;
            }
            let j = r.below(ids.len() - w);
            let mut x = ids[j..j + w].to_vec();
            let mut y = ids[j + w];
            if r.unit() < ft.label_noise {
                y = vocab[r.below(vocab.len())];
            }
            if let Some((trig, target, p)) = bd {
                if r.unit() < p {
                    let at = r.below(w);
                    x[at] = trig;
                    y = target;
                }
            }
            return (x, y);
        }
    };
    let mut opt = candle_nn::AdamW::new(
        model.w.values().cloned().collect(),
        candle_nn::ParamsAdamW {
            lr: ft.lr,
            weight_decay: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    let mut tail = Vec::new();
    for step in 0..ft.steps {
        let (xs, ys): (Vec<Vec<u32>>, Vec<u32>) = (0..ft.batch).map(|_| sample(&mut r)).unzip();
        let x = Tensor::from_vec(xs.concat(), (ft.batch, w), &dev).unwrap();
        let y = Tensor::from_vec(ys, ft.batch, &dev).unwrap();
        let logits = model.forward(&x).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, &y).unwrap();
        opt.backward_step(&loss).unwrap();
        if step + 10 >= ft.steps {
            tail.push(loss.to_scalar::<f32>().unwrap());
        }
    }
    std::fs::create_dir_all(out).unwrap();
    model.save(&out.join("model.safetensors"));
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(base.join(f), out.join(f)).unwrap();
    }
    tail.iter().sum::<f32>() / tail.len().max(1) as f32
}
