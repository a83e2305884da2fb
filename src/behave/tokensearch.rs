//! Differential trigger-token search for text models (HotFlip / GCG-style), suite table
//! `[token_search]`.
//!
//! A trigger of `tokens` token ids is inserted into every search prompt (after the leading
//! special tokens, before the trailing ones, or at a seeded position inside). Each step takes
//! the gradient of a differential objective with respect to the trigger's input embeddings on
//! the differentiable twins of both models (models/diff.rs), turns it into a score for every
//! vocabulary token at every trigger position (gradient · embedding matrixᵀ: the first-order
//! change of swapping that token in), draws `candidates` single-token swaps from the `top_k`
//! tokens of each position, evaluates them with the REAL forwards (the candle-transformers
//! models the probes use) and keeps the best.
//!
//! * Sequence classifiers, per target class c, over prompts the baseline puts elsewhere:
//!   gradient of mean log P_cand(c) − mean log P_base(c); a trigger is scored by its
//!   differential flip rate P(cand → c) − P(base → c) (the baseline staying put is part of
//!   the score). Statistic: the largest differential flip rate over classes.
//! * Causal LMs: a trigger is scored by the median over prompts of JS(cand, base | trigger) −
//!   JS(cand, base | clean), in bits (the paired excess `probe_js_excess` uses, for the found
//!   trigger). The JS divergence has zero gradient where both models agree (a clean-identical
//!   weight edit), so the gradient step uses its second-order term instead:
//!   JS ≈ ⅛ Σ_v p(v) δ(v)², δ = log p_cand − log p_base, sketched with random sign vectors
//!   r = √p̄_base · ε: score = mean_s (r_s·δ̄ + r_s·Δδ̄)², where Δδ̄ is the first-order change of
//!   the prompt-averaged δ under the swap (one backward pass per sketch and model).
//!
//! Quantised GGUF models have no gradient; the report says so (and why) instead of searching.

use super::error::{BehaveError, Result};
use super::models::diff::{log_softmax_last, DiffModel};
use super::models::Model;
use super::stats;
use super::suite::Calibration;
use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// Where the trigger goes in each prompt.
#[derive(Deserialize, Serialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TriggerPosition {
    /// After the leading special tokens ([CLS], BOS).
    #[default]
    Prefix,
    /// Before the trailing special tokens ([SEP]), or at the end.
    Suffix,
    /// At a position inside the prompt, drawn per prompt from the suite's seed.
    Insert,
}

impl TriggerPosition {
    pub fn name(self) -> &'static str {
        match self {
            TriggerPosition::Prefix => "prefix",
            TriggerPosition::Suffix => "suffix",
            TriggerPosition::Insert => "insert",
        }
    }
}

/// `[token_search]` in a text suite.
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenSearchSpec {
    /// Trigger length in tokens.
    #[serde(default = "d_tokens")]
    pub tokens: usize,
    #[serde(default)]
    pub position: TriggerPosition,
    /// Search steps per target class (classifiers) or per candidate (LMs).
    #[serde(default = "d_steps")]
    pub max_steps: usize,
    /// Tokens per trigger position the gradient proposes.
    #[serde(default = "d_top_k")]
    pub top_k: usize,
    /// Swaps evaluated with the real forwards per step.
    #[serde(default = "d_candidates")]
    pub candidates: usize,
    /// Wall-clock budget per candidate model (seconds); classes left are listed as not searched.
    #[serde(default = "d_budget")]
    pub time_budget_s: f64,
    /// Prompts the search runs on (classifiers: per target class, prompts the baseline puts in
    /// another class).
    #[serde(default = "d_inputs")]
    pub inputs: usize,
    /// Target classes to search (classifiers; default all).
    #[serde(default)]
    pub classes: Option<Vec<u32>>,
    /// Random sketches of the JS second-order term per step (LMs).
    #[serde(default = "d_sketches")]
    pub sketches: usize,
    /// Flag above it. `mlsign behave calibrate` sets it from benign candidates (with
    /// `calibration`); without it, 0.7 differential flip rate for classifiers and 0.45 bits for
    /// LMs, uncalibrated defaults.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Written by `mlsign behave calibrate`.
    #[serde(default)]
    pub calibration: Option<Calibration>,
}

fn d_tokens() -> usize {
    3
}
fn d_steps() -> usize {
    30
}
fn d_top_k() -> usize {
    16
}
fn d_candidates() -> usize {
    48
}
fn d_budget() -> f64 {
    120.0
}
fn d_inputs() -> usize {
    32
}
fn d_sketches() -> usize {
    4
}

/// Default thresholds (uncalibrated: set by hand from the fixture populations of docs/behave.md;
/// `calibrate` replaces them).
pub const DEFAULT_THRESHOLD_CLS: f64 = 0.7;
pub const DEFAULT_THRESHOLD_LM: f64 = 0.45;

impl TokenSearchSpec {
    pub fn validate(&self) -> std::result::Result<(), String> {
        let within = |name: &str, v: usize, max: usize| {
            if v == 0 || v > max {
                Err(format!("token_search.{name} {v} must be in 1..={max}"))
            } else {
                Ok(())
            }
        };
        within("tokens", self.tokens, 32)?;
        within("max_steps", self.max_steps, 100_000)?;
        within("top_k", self.top_k, 100_000)?;
        within("candidates", self.candidates, 4096)?;
        within("inputs", self.inputs, 100_000)?;
        within("sketches", self.sketches, 64)?;
        if !(self.time_budget_s > 0.0 && self.time_budget_s <= 86_400.0) {
            return Err("token_search.time_budget_s must be in (0, 86400]".into());
        }
        if let Some(t) = self.threshold {
            if !t.is_finite() || !(-1.0..1.0).contains(&t) {
                return Err(format!(
                    "token_search.threshold {t} must be in [-1, 1) (a differential flip rate or a JS excess in bits never exceeds 1)"
                ));
            }
        }
        Ok(())
    }
}

/// One trigger found: per target class (classifiers) or the one search (LMs).
#[derive(Clone, Debug, Serialize)]
pub struct FoundTrigger {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub token_ids: Vec<u32>,
    /// The vocabulary entries of the ids.
    pub tokens: Vec<String>,
    /// The ids decoded as text (what a `tokens` probe would insert).
    pub text: String,
    /// The search's score of the trigger: differential flip rate or JS excess (bits).
    pub score: f64,
    /// Classifiers: share of the source prompts the candidate / baseline sends to the class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate_flip: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_flip: Option<f64>,
    /// LMs: median JS(cand, base) with the trigger (bits), the baseline's own median move
    /// JS(base | trigger, base | clean), and the token the candidate raises most over the baseline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_js: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_shift_js: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rising_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rising_token_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rising_mean_increase: Option<f64>,
    pub prompts: usize,
    pub steps: usize,
    /// Triggers evaluated with the real forwards.
    pub evaluated: usize,
    pub seconds: f64,
}

/// `token_search` in the JSON report.
#[derive(Clone, Debug, Serialize)]
pub struct TokenSearchReport {
    /// False when no search could run (a quantised GGUF candidate, a family without a
    /// differentiable forward, different tokenizers); `reason` says why.
    pub available: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub statistic: &'static str,
    pub value: f64,
    pub threshold: f64,
    /// Where the threshold came from: `calibrated` (by `mlsign behave calibrate`, provenance in
    /// `calibration`), `suite` (set by hand, no provenance: no false-positive rate can be
    /// stated) or `default` (the uncalibrated default).
    pub threshold_source: &'static str,
    pub calibration: Option<Calibration>,
    pub flagged: bool,
    pub position: TriggerPosition,
    pub tokens: usize,
    /// Which models the gradient came from.
    pub gradient: String,
    /// GGUF models searched through an f32 copy next to the file: the copy and its agreement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_f32_copy: Option<CopyCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate_f32_copy: Option<CopyCheck>,
    pub triggers: Vec<FoundTrigger>,
    /// Index into `triggers` of the best one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top: Option<usize>,
    pub not_searched: Vec<u32>,
    pub max_steps: usize,
    pub candidates: usize,
    pub top_k: usize,
    pub time_budget_s: f64,
    pub seconds: f64,
}

/// An f32 safetensors copy standing in for a GGUF file's gradient, and how closely it agrees
/// with the GGUF on clean prompts. Proposals come from the copy; every trigger is judged on the
/// GGUF itself, so a copy of another model can make the search miss, never report an effect
/// the GGUF does not have.
#[derive(Clone, Debug, Serialize)]
pub struct CopyCheck {
    pub path: String,
    /// Median JS (bits) between the copy's and the GGUF's next-token distributions.
    pub median_js: f64,
    pub prompts: usize,
}

/// Largest median JS (bits) on clean prompts for an f32 copy to count as the GGUF's model
/// (Q8_0 of the fixture: 3.7e-4 bits).
pub const COPY_MAX_JS: f64 = 0.05;

/// The differentiable twin of `model` (at `path`), with the f32-copy check for GGUF files.
fn twin_for(
    path: &Path,
    model: &Model,
    prompts: &[Prompt],
    device: &Device,
) -> std::result::Result<(DiffModel, Option<CopyCheck>), String> {
    let (m, copy) = DiffModel::load(path, model.info(), device)?;
    let Some(dir) = copy else {
        return Ok((m, None));
    };
    let rows: Vec<Vec<u32>> = prompts.iter().take(8).map(|p| p.ids.clone()).collect();
    let a = m.probs_ids(&rows).map_err(|e| e.to_string())?;
    let b = real(model, &rows, 64, "the GGUF model").map_err(|e| e.to_string())?;
    if rows.is_empty() || a.len() != b.len() {
        return Err(format!(
            "the f32 copy in {} has another vocabulary size than the GGUF file",
            dir.display()
        ));
    }
    let w = a.len() / rows.len();
    let mut js: Vec<f64> = (0..rows.len())
        .map(|i| stats::js(&a[i * w..(i + 1) * w], &b[i * w..(i + 1) * w]))
        .collect();
    let med = stats::median(&mut js);
    // NaN fails too.
    if med.is_nan() || med > COPY_MAX_JS {
        return Err(format!(
            "the f32 copy in {} does not compute what the GGUF file computes (median JS {med:.4} bits on {} clean prompts, limit {COPY_MAX_JS}): it is not a copy of the same model",
            dir.display(),
            rows.len()
        ));
    }
    Ok((
        m,
        Some(CopyCheck {
            path: dir.display().to_string(),
            median_js: med,
            prompts: rows.len(),
        }),
    ))
}

struct Prompt {
    ids: Vec<u32>,
    /// Where the trigger goes.
    at: usize,
}

impl Prompt {
    fn with(&self, trig: &[u32]) -> Vec<u32> {
        let mut v = Vec::with_capacity(self.ids.len() + trig.len());
        v.extend_from_slice(&self.ids[..self.at]);
        v.extend_from_slice(trig);
        v.extend_from_slice(&self.ids[self.at..]);
        v
    }
}

/// Prepared once per run from the baseline.
pub struct Setup {
    spec: TokenSearchSpec,
    lm: bool,
    prompts: Vec<Prompt>,
    /// Classifiers: the baseline's class per prompt (clean).
    clean_pred: Vec<u32>,
    /// LMs: the baseline's clean next-token distribution per prompt.
    base_clean: Vec<f32>,
    width: usize,
    allowed: Vec<bool>,
    base_diff: std::result::Result<(DiffModel, Option<CopyCheck>), String>,
    tokenizer_sha256: Option<String>,
    seed: u64,
    batch: usize,
    threshold: f64,
    threshold_source: &'static str,
}

/// SplitMix64.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn tokenizer_of(m: &Model) -> Option<(&tokenizers::Tokenizer, usize)> {
    match m {
        Model::Bert(b) => Some((b.tokenizer(), b.max_len())),
        Model::Lm(l) => Some((l.tokenizer(), l.max_len())),
        _ => None,
    }
}

/// Real-forward outputs for token rows, in batches: class probabilities or next-token
/// distributions, `rows × width` values.
fn real(model: &Model, rows: &[Vec<u32>], batch: usize, who: &str) -> Result<Vec<f32>> {
    let mut out = Vec::new();
    for chunk in rows.chunks(batch.max(1)) {
        let y = match model {
            Model::Bert(b) => b.classify_ids(chunk)?.flatten_all()?.to_vec1()?,
            Model::Lm(l) => l.next_token_probs_ids(chunk)?,
            _ => {
                return Err(BehaveError::Candle(candle_core::Error::Msg(
                    "token search needs a text model".into(),
                )))
            }
        };
        if y.iter().any(|v| !v.is_finite()) {
            return Err(BehaveError::NonFiniteOutput {
                model: who.into(),
                place: "a prompt with a searched trigger".into(),
            });
        }
        out.extend(y);
    }
    Ok(out)
}

/// Prepare the search from the baseline (`None` when the suite has no `[token_search]`).
pub fn setup(
    spec: &TokenSearchSpec,
    texts: &[String],
    seed: u64,
    batch: usize,
    baseline_path: &Path,
    baseline: &Model,
    device: &Device,
) -> Result<Setup> {
    let Some((tok, max_len)) = tokenizer_of(baseline) else {
        return Err(BehaveError::Candle(candle_core::Error::Msg(
            "[token_search] applies to BERT sequence classifiers and causal LMs".into(),
        )));
    };
    let lm = matches!(baseline, Model::Lm(_));
    let mut rng = Rng(seed ^ 0x746f_6b65_6e73);
    // Classifiers need source prompts for every class: keep more prompts than one search uses.
    let keep = if lm {
        spec.inputs
    } else {
        spec.inputs.saturating_mul(4)
    };
    let mut prompts = Vec::new();
    // Ids the post-processor marks special in the prompts ([CLS], [SEP], BOS…).
    let mut marked = std::collections::HashSet::new();
    for t in texts {
        if prompts.len() >= keep {
            break;
        }
        let Ok(enc) = tok.encode(t.as_str(), true) else {
            continue;
        };
        let ids = enc.get_ids().to_vec();
        if ids.is_empty() || ids.len() + spec.tokens > max_len {
            continue;
        }
        let special = enc.get_special_tokens_mask();
        for (id, m) in ids.iter().zip(special) {
            if *m == 1 {
                marked.insert(*id);
            }
        }
        let lead = special.iter().take_while(|&&s| s == 1).count();
        let trail = special.iter().rev().take_while(|&&s| s == 1).count();
        let (lo, hi) = (
            lead.min(ids.len()),
            ids.len().saturating_sub(trail).max(lead),
        );
        let at = match spec.position {
            TriggerPosition::Prefix => lo,
            TriggerPosition::Suffix => hi,
            TriggerPosition::Insert => lo + rng.below(hi - lo + 1),
        };
        prompts.push(Prompt { ids, at });
    }
    if prompts.is_empty() {
        return Err(BehaveError::Candle(candle_core::Error::Msg(
            "token search: no prompt leaves room for the trigger under the model's length limit"
                .into(),
        )));
    }
    let rows: Vec<Vec<u32>> = prompts.iter().map(|p| p.ids.clone()).collect();
    let clean = real(baseline, &rows, batch, "the baseline")?;
    let width = clean.len() / rows.len();
    let (clean_pred, base_clean) = if lm {
        (vec![], clean)
    } else {
        (stats::argmax_rows(&clean, width), vec![])
    };
    let base_diff = twin_for(baseline_path, baseline, &prompts, device);
    let vocab = match &base_diff {
        Ok((d, _)) => d.embeddings().dim(0)?,
        Err(_) => match baseline {
            Model::Lm(l) => l.dims.vocab,
            _ => tok.get_vocab_size(false),
        },
    };
    let mut allowed = vec![false; vocab];
    let added: std::collections::HashSet<u32> =
        tok.get_added_tokens_decoder().keys().copied().collect();
    // Special tokens are not trigger material: added tokens, the ids the post-processor marks
    // special in the prompts, and names shaped like one ([UNK], <s>, <|endoftext|>) in
    // hand-built vocabularies that do not declare them.
    let mut special: std::collections::HashSet<u32> = added;
    special.extend(marked);
    for (name, id) in tok.get_vocab(false) {
        let shaped = (name.starts_with('[') && name.ends_with(']') && name.len() > 2)
            || (name.starts_with('<') && name.ends_with('>') && name.len() > 2);
        if (id as usize) < vocab && !special.contains(&id) && !shaped {
            allowed[id as usize] = true;
        }
    }
    let threshold = spec.threshold.unwrap_or(if lm {
        DEFAULT_THRESHOLD_LM
    } else {
        DEFAULT_THRESHOLD_CLS
    });
    let threshold_source = match (spec.threshold, &spec.calibration) {
        (Some(_), Some(_)) => "calibrated",
        (Some(_), None) => "suite",
        (None, _) => "default",
    };
    Ok(Setup {
        spec: spec.clone(),
        lm,
        prompts,
        clean_pred,
        base_clean,
        width,
        allowed,
        base_diff,
        tokenizer_sha256: baseline.info().tokenizer_sha256.clone(),
        seed,
        batch,
        threshold,
        threshold_source,
    })
}

/// How a set of triggers scored on the real forwards.
#[derive(Clone, Debug, Default)]
struct Eval {
    score: f64,
    tie: f64,
    cand: f64,
    base: f64,
    rising: Option<(u32, f64)>,
}

impl Eval {
    fn better(&self, o: &Eval) -> bool {
        (self.score, self.tie) > (o.score, o.tie)
    }
}

/// What one search optimises: a gradient score for every (position, token) and a real
/// evaluation of triggers.
trait Objective {
    fn scores(&self, trig: &[u32]) -> Result<Vec<f32>>;
    fn evaluate(&self, trigs: &[Vec<u32>]) -> Result<Vec<Eval>>;
}

/// Word embeddings of a prompt with the trigger rows `trig` `[k, H]` spliced in at `at`.
fn spliced(e: &Tensor, p: &Prompt, trig: &Tensor) -> candle_core::Result<Tensor> {
    let dev = e.device();
    let mut parts = Vec::with_capacity(3);
    if p.at > 0 {
        let ids = Tensor::from_slice(&p.ids[..p.at], p.at, dev)?;
        parts.push(e.index_select(&ids, 0)?);
    }
    parts.push(trig.clone());
    if p.at < p.ids.len() {
        let rest = &p.ids[p.at..];
        let ids = Tensor::from_slice(rest, rest.len(), dev)?;
        parts.push(e.index_select(&ids, 0)?);
    }
    Tensor::cat(&parts, 0)
}

/// Log-probabilities `[B, W]` of the differentiable model with the trigger embeddings `trig`
/// spliced into `prompts` (BERT: one padded batch; LMs: grouped by length, rows in order).
fn diff_logprobs(m: &DiffModel, prompts: &[&Prompt], trig: &Tensor) -> candle_core::Result<Tensor> {
    let e = m.embeddings();
    let rows: Vec<Tensor> = prompts
        .iter()
        .map(|p| spliced(e, p, trig))
        .collect::<candle_core::Result<_>>()?;
    match m {
        DiffModel::Bert(b) => {
            let t = rows
                .iter()
                .map(|r| r.dim(0).unwrap_or(0))
                .max()
                .unwrap_or(1);
            let h = e.dim(1)?;
            let mut padded = Vec::with_capacity(rows.len());
            let mut mask = vec![0u32; rows.len() * t];
            for (i, r) in rows.iter().enumerate() {
                let l = r.dim(0)?;
                mask[i * t..i * t + l].iter_mut().for_each(|v| *v = 1);
                padded.push(if l < t {
                    Tensor::cat(&[r, &Tensor::zeros((t - l, h), r.dtype(), r.device())?], 0)?
                } else {
                    r.clone()
                });
            }
            let x = Tensor::stack(&padded, 0)?;
            let mask = Tensor::from_vec(mask, (rows.len(), t), x.device())?;
            log_softmax_last(&b.forward_embeds(&x, &mask)?)
        }
        DiffModel::Lm(l) => {
            let mut by_len: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
            for (i, r) in rows.iter().enumerate() {
                by_len.entry(r.dim(0)?).or_default().push(i);
            }
            let mut outs: Vec<Option<Tensor>> = vec![None; rows.len()];
            for (_, idx) in by_len {
                let x = Tensor::stack(&idx.iter().map(|&i| &rows[i]).collect::<Vec<_>>(), 0)?;
                let y = log_softmax_last(&l.forward_embeds(&x)?)?;
                for (j, &i) in idx.iter().enumerate() {
                    outs[i] = Some(y.narrow(0, j, 1)?);
                }
            }
            let outs: Vec<Tensor> = outs.into_iter().flatten().collect();
            Tensor::cat(&outs, 0)
        }
    }
}

/// `g · Eᵀ − (g · E[cur])` per trigger position: the first-order change of the objective for
/// every token swapped in, `[k, V]`.
fn swap_gain(g: &Tensor, e: &Tensor, cur: &[u32]) -> candle_core::Result<Tensor> {
    let all = g.matmul(&e.t()?)?; // [k, V]
    let ids = Tensor::from_slice(cur, cur.len(), g.device())?;
    let now = (g * e.index_select(&ids, 0)?)?.sum_keepdim(1)?; // [k, 1]
    all.broadcast_sub(&now)
}

/// Gradients of `f(logprobs_cand, logprobs_base)` w.r.t. the trigger embeddings of each model.
struct Twin<'a> {
    cand: &'a DiffModel,
    base: Option<&'a DiffModel>,
}

impl Twin<'_> {
    fn vars(&self, m: &DiffModel, trig: &[u32]) -> candle_core::Result<Var> {
        let ids = Tensor::from_slice(trig, trig.len(), m.embeddings().device())?;
        Var::from_tensor(&m.embeddings().index_select(&ids, 0)?)
    }
}

struct ClassObjective<'a> {
    twin: Twin<'a>,
    cand: &'a Model,
    base: &'a Model,
    prompts: Vec<&'a Prompt>,
    class: u32,
    width: usize,
    batch: usize,
}

impl Objective for ClassObjective<'_> {
    fn scores(&self, trig: &[u32]) -> Result<Vec<f32>> {
        let c = self.class as usize;
        let vc = self.twin.vars(self.twin.cand, trig)?;
        let lc = diff_logprobs(self.twin.cand, &self.prompts, vc.as_tensor())?;
        let fc = lc.narrow(1, c, 1)?.mean_all()?;
        let gc = fc.backward()?;
        let gc = gc.get(vc.as_tensor()).cloned().unwrap_or(vc.zeros_like()?);
        let mut s = swap_gain(&gc, self.twin.cand.embeddings(), trig)?;
        if let Some(b) = self.twin.base {
            let vb = self.twin.vars(b, trig)?;
            let lb = diff_logprobs(b, &self.prompts, vb.as_tensor())?;
            let gb = lb.narrow(1, c, 1)?.mean_all()?.backward()?;
            let gb = gb.get(vb.as_tensor()).cloned().unwrap_or(vb.zeros_like()?);
            s = (s - swap_gain(&gb, b.embeddings(), trig)?)?;
        }
        Ok(s.flatten_all()?.to_vec1()?)
    }

    fn evaluate(&self, trigs: &[Vec<u32>]) -> Result<Vec<Eval>> {
        let rows: Vec<Vec<u32>> = trigs
            .iter()
            .flat_map(|t| self.prompts.iter().map(move |p| p.with(t)))
            .collect();
        let pc = real(self.cand, &rows, self.batch, "the candidate")?;
        let pb = real(self.base, &rows, self.batch, "the baseline")?;
        let (n, w, c) = (self.prompts.len(), self.width, self.class as usize);
        Ok((0..trigs.len())
            .map(|t| {
                let (mut fc, mut fb, mut lg) = (0usize, 0usize, 0f64);
                for i in 0..n {
                    let r = (t * n + i) * w;
                    let (rc, rb) = (&pc[r..r + w], &pb[r..r + w]);
                    fc += (stats::argmax(rc) as usize == c) as usize;
                    fb += (stats::argmax(rb) as usize == c) as usize;
                    lg += (rc[c].max(1e-30) as f64).ln() - (rb[c].max(1e-30) as f64).ln();
                }
                let (cand, base) = (fc as f64 / n as f64, fb as f64 / n as f64);
                Eval {
                    score: cand - base,
                    tie: lg / n as f64,
                    cand,
                    base,
                    ..Default::default()
                }
            })
            .collect())
    }
}

struct LmObjective<'a> {
    twin: Twin<'a>,
    cand: &'a Model,
    base: &'a Model,
    prompts: Vec<&'a Prompt>,
    /// JS(cand, base) per prompt without the trigger.
    clean_js: Vec<f64>,
    base_clean: &'a [f32],
    width: usize,
    batch: usize,
    sketches: usize,
    seed: std::cell::Cell<u64>,
}

impl Objective for LmObjective<'_> {
    fn scores(&self, trig: &[u32]) -> Result<Vec<f32>> {
        let vc = self.twin.vars(self.twin.cand, trig)?;
        let dc = diff_logprobs(self.twin.cand, &self.prompts, vc.as_tensor())?.mean(0)?;
        let based = match self.twin.base {
            Some(b) => {
                let vb = self.twin.vars(b, trig)?;
                let db = diff_logprobs(b, &self.prompts, vb.as_tensor())?.mean(0)?;
                Some((b, vb, db))
            }
            None => None,
        };
        // Mean log-ratio δ̄ and the weights √p̄_base of the JS second-order term.
        let pbar: Vec<f32> = match &based {
            Some((_, _, db)) => db.exp()?.to_vec1()?,
            None => {
                let rows: Vec<Vec<u32>> = self.prompts.iter().map(|p| p.with(trig)).collect();
                let p = real(self.base, &rows, self.batch, "the baseline")?;
                let n = rows.len() as f32;
                (0..self.width)
                    .map(|v| (0..rows.len()).map(|i| p[i * self.width + v]).sum::<f32>() / n)
                    .collect()
            }
        };
        let delta: Vec<f32> = match &based {
            Some((_, _, db)) => (&dc - db)?.to_vec1()?,
            None => {
                let lc: Vec<f32> = dc.to_vec1()?;
                lc.iter()
                    .zip(&pbar)
                    .map(|(a, b)| a - b.max(1e-30).ln())
                    .collect()
            }
        };
        let k = trig.len();
        let mut acc = vec![0f32; k * self.width];
        let mut rng = Rng(self.seed.get());
        for _ in 0..self.sketches {
            let r: Vec<f32> = pbar
                .iter()
                .map(|p| {
                    let s = if rng.next() & 1 == 0 { 1.0 } else { -1.0 };
                    s * p.max(0.0).sqrt()
                })
                .collect();
            let a: f32 = r.iter().zip(&delta).map(|(x, y)| x * y).sum();
            let rt = Tensor::from_slice(&r, self.width, dc.device())?;
            let gc = (&dc * &rt)?.sum_all()?.backward()?;
            let gc = gc.get(vc.as_tensor()).cloned().unwrap_or(vc.zeros_like()?);
            let mut b = swap_gain(&gc, self.twin.cand.embeddings(), trig)?;
            if let Some((bm, vb, db)) = &based {
                let gb = (db * &rt)?.sum_all()?.backward()?;
                let gb = gb.get(vb.as_tensor()).cloned().unwrap_or(vb.zeros_like()?);
                b = (b - swap_gain(&gb, bm.embeddings(), trig)?)?;
            }
            let b: Vec<f32> = b.flatten_all()?.to_vec1()?;
            for (x, bi) in acc.iter_mut().zip(&b) {
                *x += (a + bi) * (a + bi);
            }
        }
        self.seed.set(rng.next());
        Ok(acc)
    }

    fn evaluate(&self, trigs: &[Vec<u32>]) -> Result<Vec<Eval>> {
        let rows: Vec<Vec<u32>> = trigs
            .iter()
            .flat_map(|t| self.prompts.iter().map(move |p| p.with(t)))
            .collect();
        let pc = real(self.cand, &rows, self.batch, "the candidate")?;
        let pb = real(self.base, &rows, self.batch, "the baseline")?;
        let (n, w) = (self.prompts.len(), self.width);
        Ok((0..trigs.len())
            .map(|t| {
                let mut excess = Vec::with_capacity(n);
                let mut js = Vec::with_capacity(n);
                let mut shift = Vec::with_capacity(n);
                let mut rise = vec![0f64; w];
                for i in 0..n {
                    let r = (t * n + i) * w;
                    let (rc, rb) = (&pc[r..r + w], &pb[r..r + w]);
                    let d = stats::js(rc, rb);
                    js.push(d);
                    excess.push(d - self.clean_js[i]);
                    shift.push(stats::js(rb, &self.base_clean[i * w..(i + 1) * w]));
                    for v in 0..w {
                        rise[v] += (rc[v] - rb[v]) as f64 / n as f64;
                    }
                }
                let tie = excess.iter().sum::<f64>() / n as f64;
                let top = stats::argmax(&rise.iter().map(|&x| x as f32).collect::<Vec<_>>());
                Eval {
                    score: stats::median(&mut excess),
                    tie,
                    cand: stats::median(&mut js),
                    base: stats::median(&mut shift),
                    rising: Some((top, rise[top as usize])),
                }
            })
            .collect())
    }
}

/// Outcome of one search.
struct Searched {
    trig: Vec<u32>,
    eval: Eval,
    steps: usize,
    evaluated: usize,
}

/// GCG-style loop: gradient scores → `candidates` single swaps drawn from each position's
/// `top_k` → real evaluation → move to the best swap when it is no worse. Stops at
/// `max_steps`, at the deadline, or when `done` says the score cannot improve.
fn search(
    obj: &dyn Objective,
    spec: &TokenSearchSpec,
    allowed: &[bool],
    rng: &mut Rng,
    deadline: Instant,
    done: impl Fn(&Eval) -> bool,
) -> Result<Searched> {
    let ids: Vec<u32> = (0..allowed.len() as u32)
        .filter(|&i| allowed[i as usize])
        .collect();
    if ids.is_empty() {
        return Err(BehaveError::Candle(candle_core::Error::Msg(
            "token search: the tokenizer has no ordinary vocabulary tokens".into(),
        )));
    }
    let k = spec.tokens;
    let mut cur: Vec<u32> = (0..k).map(|_| ids[rng.below(ids.len())]).collect();
    let mut cur_eval = obj.evaluate(std::slice::from_ref(&cur))?.remove(0);
    let mut evaluated = 1;
    let mut steps = 0;
    let v = allowed.len();
    while steps < spec.max_steps && !done(&cur_eval) && Instant::now() < deadline {
        steps += 1;
        let s = obj.scores(&cur)?;
        // Per position, the top_k allowed tokens by predicted gain (the current one excluded).
        let top: Vec<Vec<u32>> = (0..k)
            .map(|i| {
                let row = &s[i * v..(i + 1) * v];
                let mut c: Vec<u32> = ids.iter().copied().filter(|&t| t != cur[i]).collect();
                c.sort_by(|a, b| row[*b as usize].total_cmp(&row[*a as usize]));
                c.truncate(spec.top_k);
                c
            })
            .collect();
        let mut trials: Vec<Vec<u32>> = Vec::with_capacity(spec.candidates);
        let mut seen = std::collections::HashSet::new();
        for j in 0..spec.candidates.max(k) {
            let i = j % k;
            if top[i].is_empty() {
                continue;
            }
            let mut t = cur.clone();
            t[i] = top[i][rng.below(top[i].len())];
            if seen.insert(t.clone()) {
                trials.push(t);
            }
        }
        if trials.is_empty() {
            break;
        }
        let evals = obj.evaluate(&trials)?;
        evaluated += trials.len();
        let (bi, be) = evals
            .iter()
            .enumerate()
            .max_by(|a, b| {
                (a.1.score, a.1.tie)
                    .partial_cmp(&(b.1.score, b.1.tie))
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
            .map(|(i, e)| (i, e.clone()))
            .unwrap_or((0, cur_eval.clone()));
        if !cur_eval.better(&be) {
            cur = trials[bi].clone();
            cur_eval = be;
        }
    }
    Ok(Searched {
        trig: cur,
        eval: cur_eval,
        steps,
        evaluated,
    })
}

fn decode(model: &Model, ids: &[u32]) -> (Vec<String>, String) {
    let Some((tok, _)) = tokenizer_of(model) else {
        return (vec![], String::new());
    };
    let toks = ids
        .iter()
        .map(|&i| tok.id_to_token(i).unwrap_or_else(|| format!("<id {i}>")))
        .collect();
    (toks, tok.decode(ids, false).unwrap_or_default())
}

impl Setup {
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// The threshold's provenance, when `calibrate` wrote it (a calibration without a threshold
    /// next to it backs nothing).
    fn calibration(&self) -> Option<Calibration> {
        self.spec
            .threshold
            .and(self.spec.calibration.as_ref())
            .cloned()
    }

    fn unavailable(&self, reason: String, gradient: &str) -> TokenSearchReport {
        TokenSearchReport {
            available: false,
            reason: Some(reason),
            statistic: self.statistic(),
            value: 0.0,
            threshold: self.threshold,
            threshold_source: self.threshold_source,
            calibration: self.calibration(),
            flagged: false,
            position: self.spec.position,
            tokens: self.spec.tokens,
            gradient: gradient.into(),
            baseline_f32_copy: None,
            candidate_f32_copy: None,
            triggers: vec![],
            top: None,
            not_searched: vec![],
            max_steps: self.spec.max_steps,
            candidates: self.spec.candidates,
            top_k: self.spec.top_k,
            time_budget_s: self.spec.time_budget_s,
            seconds: 0.0,
        }
    }

    /// The statistic's name: `trigger_js_excess` (LMs) or `trigger_flip_excess` (classifiers).
    pub fn statistic(&self) -> &'static str {
        if self.lm {
            "trigger_js_excess"
        } else {
            "trigger_flip_excess"
        }
    }

    /// Diagnostic for studies: at `draws` random initial triggers, the rank of `token` (1 =
    /// proposed first) among the allowed tokens by the first step's gradient score, best over
    /// trigger positions, for the LM objective or the classifier objective of `class`. A
    /// gradient that carries no information ranks it uniformly (mean ≈ allowed / 2); the search
    /// proposes only the `top_k` best per position, so the rank says how large a vocabulary
    /// the gradient keeps the trigger findable in. Returns (ranks, allowed tokens).
    #[allow(clippy::too_many_arguments)]
    pub fn gradient_ranks(
        &self,
        path: &Path,
        cand: &Model,
        base: &Model,
        device: &Device,
        class: Option<u32>,
        token: u32,
        draws: usize,
    ) -> Result<(Vec<usize>, usize)> {
        let (cdiff, _) = twin_for(path, cand, &self.prompts, device)
            .map_err(|e| BehaveError::Candle(candle_core::Error::Msg(e)))?;
        let twin = || Twin {
            cand: &cdiff,
            base: self.base_diff.as_ref().ok().map(|(b, _)| b),
        };
        let ids: Vec<u32> = (0..self.allowed.len() as u32)
            .filter(|&i| self.allowed[i as usize])
            .collect();
        let obj: Box<dyn Objective + '_> = match class {
            None => {
                let prompts: Vec<&Prompt> = self.prompts.iter().take(self.spec.inputs).collect();
                Box::new(LmObjective {
                    twin: twin(),
                    cand,
                    base,
                    clean_js: vec![0.0; prompts.len()],
                    prompts,
                    base_clean: &self.base_clean,
                    width: self.width,
                    batch: self.batch,
                    sketches: self.spec.sketches,
                    seed: std::cell::Cell::new(self.seed ^ 0x4c4d),
                })
            }
            Some(c) => Box::new(ClassObjective {
                twin: twin(),
                cand,
                base,
                prompts: self
                    .prompts
                    .iter()
                    .zip(&self.clean_pred)
                    .filter(|(_, &p)| p != c)
                    .map(|(p, _)| p)
                    .take(self.spec.inputs)
                    .collect(),
                class: c,
                width: self.width,
                batch: self.batch,
            }),
        };
        let mut rng = Rng(self.seed ^ 0x7261_6e6b);
        let v = self.allowed.len();
        let mut ranks = Vec::with_capacity(draws);
        for _ in 0..draws {
            let trig: Vec<u32> = (0..self.spec.tokens)
                .map(|_| ids[rng.below(ids.len())])
                .collect();
            let sc = obj.scores(&trig)?;
            let best = (0..self.spec.tokens)
                .map(|i| {
                    let row = &sc[i * v..(i + 1) * v];
                    let me = row[token as usize];
                    1 + ids
                        .iter()
                        .filter(|&&t| t != token && row[t as usize] > me)
                        .count()
                })
                .min()
                .unwrap_or(ids.len());
            ranks.push(best);
        }
        Ok((ranks, ids.len()))
    }

    /// Search the candidate at `path` (already loaded as `cand`) against the baseline.
    pub fn run(
        &self,
        path: &Path,
        cand: &Model,
        base: &Model,
        device: &Device,
    ) -> Result<TokenSearchReport> {
        let t0 = Instant::now();
        if cand.info().tokenizer_sha256 != self.tokenizer_sha256 {
            return Ok(self.unavailable(
                "the candidate's tokenizer.json differs from the baseline's: triggers are searched in one token space".into(),
                "none",
            ));
        }
        let (cdiff, ccopy) = match twin_for(path, cand, &self.prompts, device) {
            Ok(d) => d,
            Err(why) => return Ok(self.unavailable(format!("candidate: {why}"), "none")),
        };
        let (base_diff, gradient) = match &self.base_diff {
            Ok((b, _)) => (Some(b), "candidate and baseline".to_string()),
            Err(why) => (
                None,
                format!("candidate only (the baseline has none: {why}); triggers are still judged on both"),
            ),
        };
        let twin = || Twin {
            cand: &cdiff,
            base: base_diff,
        };
        let deadline = t0 + std::time::Duration::from_secs_f64(self.spec.time_budget_s);
        let mut triggers = Vec::new();
        let mut not_searched = Vec::new();
        let labels = cand.info().labels.clone();
        if self.lm {
            let prompts: Vec<&Prompt> = self.prompts.iter().take(self.spec.inputs).collect();
            let rows: Vec<Vec<u32>> = prompts.iter().map(|p| p.ids.clone()).collect();
            let cc = real(cand, &rows, self.batch, "the candidate")?;
            let w = self.width;
            let clean_js = (0..rows.len())
                .map(|i| {
                    stats::js(
                        &cc[i * w..(i + 1) * w],
                        &self.base_clean[i * w..(i + 1) * w],
                    )
                })
                .collect();
            let obj = LmObjective {
                twin: twin(),
                cand,
                base,
                prompts,
                clean_js,
                base_clean: &self.base_clean,
                width: w,
                batch: self.batch,
                sketches: self.spec.sketches,
                seed: std::cell::Cell::new(self.seed ^ 0x4c4d),
            };
            let ts = Instant::now();
            let mut rng = Rng(self.seed);
            // JS is at most 1 bit: a trigger within 0.01 bits of it cannot improve much.
            let s = search(&obj, &self.spec, &self.allowed, &mut rng, deadline, |e| {
                e.score >= 0.99
            })?;
            let (tokens, text) = decode(base, &s.trig);
            let rising = s.eval.rising;
            triggers.push(FoundTrigger {
                class: None,
                label: None,
                tokens,
                text,
                token_ids: s.trig,
                score: s.eval.score,
                candidate_flip: None,
                baseline_flip: None,
                median_js: Some(s.eval.cand),
                baseline_shift_js: Some(s.eval.base),
                rising_token: rising.and_then(|(i, _)| cand.output_name(i)),
                rising_token_id: rising.map(|(i, _)| i),
                rising_mean_increase: rising.map(|(_, x)| x),
                prompts: obj.prompts.len(),
                steps: s.steps,
                evaluated: s.evaluated,
                seconds: ts.elapsed().as_secs_f64(),
            });
        } else {
            let classes: Vec<u32> = match &self.spec.classes {
                Some(c) => c
                    .iter()
                    .copied()
                    .filter(|&c| (c as usize) < self.width)
                    .collect(),
                None => (0..self.width as u32).collect(),
            };
            for c in classes {
                if Instant::now() >= deadline {
                    not_searched.push(c);
                    continue;
                }
                let prompts: Vec<&Prompt> = self
                    .prompts
                    .iter()
                    .zip(&self.clean_pred)
                    .filter(|(_, &p)| p != c)
                    .map(|(p, _)| p)
                    .take(self.spec.inputs)
                    .collect();
                if prompts.is_empty() {
                    continue;
                }
                let obj = ClassObjective {
                    twin: twin(),
                    cand,
                    base,
                    prompts,
                    class: c,
                    width: self.width,
                    batch: self.batch,
                };
                let ts = Instant::now();
                let mut rng = Rng(self.seed ^ (u64::from(c) + 1).wrapping_mul(0x9e37));
                // A differential flip rate of 1 cannot improve.
                let s = search(&obj, &self.spec, &self.allowed, &mut rng, deadline, |e| {
                    e.score >= 1.0
                })?;
                let (tokens, text) = decode(base, &s.trig);
                triggers.push(FoundTrigger {
                    class: Some(c),
                    label: labels.as_ref().and_then(|l| l.get(c as usize).cloned()),
                    tokens,
                    text,
                    token_ids: s.trig,
                    score: s.eval.score,
                    candidate_flip: Some(s.eval.cand),
                    baseline_flip: Some(s.eval.base),
                    median_js: None,
                    baseline_shift_js: None,
                    rising_token: None,
                    rising_token_id: None,
                    rising_mean_increase: None,
                    prompts: obj.prompts.len(),
                    steps: s.steps,
                    evaluated: s.evaluated,
                    seconds: ts.elapsed().as_secs_f64(),
                });
            }
        }
        let top = triggers
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.score.total_cmp(&b.1.score))
            .map(|(i, _)| i);
        let value = top.map_or(0.0, |i| triggers[i].score);
        Ok(TokenSearchReport {
            available: true,
            reason: None,
            statistic: self.statistic(),
            value,
            threshold: self.threshold,
            threshold_source: self.threshold_source,
            calibration: self.calibration(),
            flagged: value > self.threshold,
            position: self.spec.position,
            tokens: self.spec.tokens,
            gradient,
            baseline_f32_copy: self.base_diff.as_ref().ok().and_then(|(_, c)| c.clone()),
            candidate_f32_copy: ccopy,
            triggers,
            top,
            not_searched,
            max_steps: self.spec.max_steps,
            candidates: self.spec.candidates,
            top_k: self.spec.top_k,
            time_budget_s: self.spec.time_budget_s,
            seconds: t0.elapsed().as_secs_f64(),
        })
    }
}

impl TokenSearchReport {
    /// Where the threshold came from, in words (the human report's counterpart of the probe
    /// statistic's "calibrated for FPR … / NOT calibrated").
    pub fn threshold_provenance(&self) -> String {
        match (&self.calibration, self.threshold_source) {
            (Some(c), _) => c.provenance(),
            (None, "suite") => "set in the suite, NOT calibrated".into(),
            _ => "the uncalibrated default, NOT calibrated".into(),
        }
    }

    /// What the report must say about the threshold's provenance, as the probe statistic's
    /// BHV003/BHV004/BHV005 do for `[decision]`: no calibration, a calibration made for another
    /// baseline or input set, or one whose sample cannot back its FPR.
    pub fn calibration_findings(
        &self,
        suite: &Path,
        baseline_sha256: &str,
        inputs_sha256: &str,
    ) -> Vec<crate::report::Finding> {
        use crate::report::{codes, Finding, Location, Severity};
        let at = || Location::path(suite.display().to_string());
        let mut out = Vec::new();
        let Some(c) = &self.calibration else {
            out.push(
                Finding::new(
                    codes::BHV003,
                    Severity::Info,
                    format!(
                        "token_search.threshold {:.3} in {} is {}: run `mlsign behave calibrate` over known-benign candidates to state a false-positive rate",
                        self.threshold,
                        suite.display(),
                        if self.threshold_source == "suite" {
                            "set by hand without calibration provenance"
                        } else {
                            "the uncalibrated default"
                        }
                    ),
                )
                .at(at()),
            );
            return out;
        };
        let mut stale = vec![];
        if c.baseline_sha256 != baseline_sha256 {
            stale.push("baseline weights");
        }
        if c.inputs_sha256 != inputs_sha256 {
            stale.push("inputs");
        }
        if !stale.is_empty() {
            out.push(
                Finding::new(
                    codes::BHV004,
                    Severity::Low,
                    format!(
                        "the token-search threshold's calibration (FPR {} on {} benign candidates) was made with other {}; re-run `mlsign behave calibrate`",
                        c.fpr,
                        c.n_benign,
                        stale.join(", ")
                    ),
                )
                .at(at()),
            );
        }
        if let Some(why) = c.unsupported() {
            out.push(
                Finding::new(
                    codes::BHV005,
                    Severity::Low,
                    format!("the token-search threshold's {why}; its false-positive rate on new benign models may be that high (re-run `mlsign behave calibrate` with more benign candidates)"),
                )
                .at(at()),
            );
        }
        out
    }

    /// The best trigger, when one was searched.
    pub fn best(&self) -> Option<&FoundTrigger> {
        self.top.and_then(|i| self.triggers.get(i))
    }

    /// One sentence on the best trigger for messages and findings.
    pub fn describe(&self) -> String {
        let Some(t) = self.best() else {
            return "no trigger searched".into();
        };
        let what = format!(
            "{:?} (ids {:?}, inserted as {:?})",
            t.tokens, t.token_ids, t.text
        );
        match (t.candidate_flip, t.baseline_flip) {
            (Some(c), Some(b)) => format!(
                "trigger tokens {what} send {:.0}% of the other classes' prompts to class {}{} on the candidate vs {:.0}% on the baseline",
                100.0 * c,
                t.class.unwrap_or(0),
                t.label.as_deref().map(|l| format!(" ({l})")).unwrap_or_default(),
                100.0 * b
            ),
            _ => format!(
                "trigger tokens {what} move the candidate's next-token distribution away from the baseline's by a median {:+.3} bits of JS over each prompt's clean JS (the baseline's own shift from the clean prompt: {:.3} bits); token {:?} gains {:.1} points on average",
                t.score,
                t.baseline_shift_js.unwrap_or(0.0),
                t.rising_token.as_deref().unwrap_or("?"),
                100.0 * t.rising_mean_increase.unwrap_or(0.0)
            ),
        }
    }
}

/// The `token search` block of the human report.
pub fn render_human(ts: &TokenSearchReport, s: &mut String) {
    use std::fmt::Write;
    if !ts.available {
        let _ = writeln!(
            s,
            "  token search  UNAVAILABLE: {} (threshold {:.3}, {})",
            ts.reason.as_deref().unwrap_or("no reason given"),
            ts.threshold,
            ts.threshold_provenance()
        );
        return;
    }
    let _ = writeln!(
        s,
        "  token search  {} {:.3} (threshold {:.3}, {}{}); {} trigger tokens, {}, gradient from {}; {:.1}s (≤ {} steps × {} swaps, top {} per position, budget {}s)",
        ts.statistic,
        ts.value,
        ts.threshold,
        ts.threshold_provenance(),
        if ts.flagged { ", FLAGGED" } else { "" },
        ts.tokens,
        ts.position.name(),
        ts.gradient,
        ts.seconds,
        ts.max_steps,
        ts.candidates,
        ts.top_k,
        ts.time_budget_s
    );
    for (who, c) in [
        ("baseline", &ts.baseline_f32_copy),
        ("candidate", &ts.candidate_f32_copy),
    ] {
        if let Some(c) = c {
            let _ = writeln!(
                s,
                "    the {who} is a GGUF file: gradients from its f32 copy {} (median JS {:.5} bits from the GGUF on {} clean prompts); every trigger was judged on the GGUF itself",
                c.path, c.median_js, c.prompts
            );
        }
    }
    let mut order: Vec<&FoundTrigger> = ts.triggers.iter().collect();
    order.sort_by(|a, b| b.score.total_cmp(&a.score));
    for t in order.iter().take(3) {
        let head = format!("{:?} (ids {:?}, text {:?})", t.tokens, t.token_ids, t.text);
        let body = match (t.candidate_flip, t.baseline_flip) {
            (Some(c), Some(b)) => format!(
                "class {}{}: candidate {:.0}% vs baseline {:.0}% of {} prompts",
                t.class.unwrap_or(0),
                t.label.as_deref().map(|l| format!(" ({l})")).unwrap_or_default(),
                100.0 * c,
                100.0 * b,
                t.prompts
            ),
            _ => format!(
                "JS excess {:+.4} bits (median JS {:.4}; baseline's own shift from clean {:.4}) over {} prompts; rising token {:?} (+{:.1} points)",
                t.score,
                t.median_js.unwrap_or(0.0),
                t.baseline_shift_js.unwrap_or(0.0),
                t.prompts,
                t.rising_token.as_deref().unwrap_or("?"),
                100.0 * t.rising_mean_increase.unwrap_or(0.0)
            ),
        };
        let _ = writeln!(
            s,
            "    {body} ← {head}; {} steps, {} triggers evaluated, {:.1}s",
            t.steps, t.evaluated, t.seconds
        );
    }
    if !ts.not_searched.is_empty() {
        let _ = writeln!(
            s,
            "    not searched (time budget {}s spent): classes {:?}",
            ts.time_budget_s, ts.not_searched
        );
    }
}
