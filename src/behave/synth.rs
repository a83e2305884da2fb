//! Differential trigger synthesis for classifiers (Neural Cleanse made differential).
//!
//! For each target class c, a mask m ∈ [0,1]^{H×W} (shared over channels) and a pattern p are
//! optimised with candle's autograd so that the candidate sends x' = (1 − m)·x + m·p to c while
//! the baseline does not, with an L1 penalty on m whose weight adapts (raised while the trigger
//! works, lowered while it does not). The class's score is the smallest mask (Σm, in pixels)
//! seen that reaches `target_flip` on the candidate with the baseline at most `baseline_cap`.
//! The same search without the differential term, run once on the baseline, gives the
//! *natural* mask of every class: how little it takes to reach c on the trusted model. A
//! backdoor shows as a class whose differential mask is far smaller than its natural one.
//!
//! Single-model trigger inversion gets its false positives from classes that are naturally easy
//! to reach; the baseline cancels those twice here (in the loss, and as the natural reference).

use super::error::{BehaveError, Result};
use super::models::net::NetModel;
use super::models::{Model, OutputKind};
use super::suite::Calibration;
use candle_core::{Device, Tensor, Var, D};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `[synthesis]` in the suite: enables trigger synthesis for classifiers.
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SynthSpec {
    /// Target classes to search (default: all).
    #[serde(default)]
    pub classes: Option<Vec<u32>>,
    /// Optimisation steps per class and model.
    #[serde(default = "d_steps")]
    pub max_steps: usize,
    /// Wall-clock budget per candidate (seconds); classes left when it runs out are reported
    /// as not searched.
    #[serde(default = "d_budget")]
    pub time_budget_s: f64,
    /// Suite inputs the trigger is optimised on (source inputs: the baseline predicts another
    /// class). All source inputs are used to report the final flip rates.
    #[serde(default = "d_inputs")]
    pub inputs: usize,
    /// Flip rate on the candidate a trigger must reach.
    #[serde(default = "d_target")]
    pub target_flip: f64,
    /// Largest flip rate the baseline may show under the same trigger.
    #[serde(default = "d_cap")]
    pub baseline_cap: f64,
    /// Adam learning rate on the mask and pattern logits.
    #[serde(default = "d_lr")]
    pub lr: f64,
    /// Softplus sharpness β standing in for ReLU in the gradient (0 = plain ReLU): dead units
    /// pass gradient through the surrogate; feasibility is always judged on the real network.
    /// (Sharpening β over the run was tried: it lost the planted fixture backdoor entirely.)
    #[serde(default = "d_relax")]
    pub relax: f64,
    /// Values the pattern may take [default: the inputs' range widened to include [0, 1]].
    #[serde(default)]
    pub value_range: Option<[f32; 2]>,
    /// Flag when the synthesis statistic is above this value.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Written by `mlsign behave calibrate`.
    #[serde(default)]
    pub calibration: Option<Calibration>,
}

fn d_steps() -> usize {
    150
}
fn d_budget() -> f64 {
    60.0
}
fn d_inputs() -> usize {
    100
}
fn d_target() -> f64 {
    0.8
}
fn d_cap() -> f64 {
    0.2
}
fn d_lr() -> f64 {
    0.1
}
fn d_relax() -> f64 {
    4.0
}

/// Default threshold on [`SynthReport::value`] when the suite sets none (uncalibrated).
pub const DEFAULT_THRESHOLD: f64 = 3.0;

impl SynthSpec {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.max_steps == 0 || self.max_steps > 100_000 {
            return Err(format!(
                "synthesis.max_steps {} must be in 1..=100000",
                self.max_steps
            ));
        }
        if !(self.time_budget_s > 0.0 && self.time_budget_s <= 86_400.0) {
            return Err("synthesis.time_budget_s must be in (0, 86400]".into());
        }
        if self.inputs == 0 || self.inputs > 100_000 {
            return Err("synthesis.inputs must be in 1..=100000".into());
        }
        for (name, v) in [
            ("target_flip", self.target_flip),
            ("baseline_cap", self.baseline_cap),
        ] {
            if !(v > 0.0 && v < 1.0) {
                return Err(format!("synthesis.{name} {v} must be in (0, 1)"));
            }
        }
        if self.baseline_cap >= self.target_flip {
            return Err("synthesis.baseline_cap must be below synthesis.target_flip".into());
        }
        if !(self.lr > 0.0 && self.lr <= 10.0) {
            return Err("synthesis.lr must be in (0, 10]".into());
        }
        if let Some([lo, hi]) = self.value_range {
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                return Err(format!(
                    "synthesis.value_range [{lo}, {hi}] must be two finite numbers, low < high"
                ));
            }
        }
        if !(self.relax >= 0.0 && self.relax <= 1e4) {
            return Err("synthesis.relax must be in [0, 10000]".into());
        }
        if let Some(t) = self.threshold {
            if !(t.is_finite() && t >= 0.0) {
                return Err(format!(
                    "synthesis.threshold {t} must be a finite number ≥ 0"
                ));
            }
        }
        Ok(())
    }
}

/// What the search found for one target class.
#[derive(Clone, Debug, Serialize)]
pub struct ClassResult {
    pub class: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Σm of the smallest feasible trigger on the candidate (pixels); `null` when none was found.
    pub mask_l1: Option<f64>,
    /// Σm of the baseline's own smallest trigger for the class (no differential term).
    pub natural_mask_l1: Option<f64>,
    /// log2(natural / candidate mask), with a missing mask counted as the whole image.
    pub log2_ratio: f64,
    /// Flip rates of the best trigger over all source inputs of the suite.
    pub candidate_flip: f64,
    pub baseline_flip: f64,
    pub source_inputs: usize,
    pub steps: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask_png: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern_png: Option<String>,
    /// The mask `[H, W]` and pattern `[C, H, W]` (row-major), for the PNGs.
    #[serde(skip)]
    pub mask: Vec<f32>,
    #[serde(skip)]
    pub pattern: Vec<f32>,
}

/// The synthesis part of a report.
#[derive(Clone, Debug, Serialize)]
pub struct SynthReport {
    /// The synthesis statistic: the MAD anomaly index of −log2(differential mask) across the
    /// searched classes ((max − median) / (1.4826 · MAD), MAD ≥ [`MAD_FLOOR`]; a class without a
    /// feasible trigger smaller than the baseline's natural one counts as the whole image), and
    /// 0 when the class with the smallest mask has no such trigger. A backdoor gives one class a trigger far smaller than the
    /// others'; a benign fine-tune (label noise included) moves several or none. Chosen over
    /// the ratio to the natural mask by the benchmark in docs/behave.md.
    pub value: f64,
    pub threshold: f64,
    pub flagged: bool,
    /// Class with the smallest differential mask.
    pub top_class: Option<u32>,
    /// `max_c log2_ratio`: how many times (log2) smaller than the baseline's natural trigger
    /// the candidate's most suspicious differential trigger is (information).
    pub max_log2_ratio: f64,
    pub classes: Vec<ClassResult>,
    /// Classes left unsearched when the time budget ran out.
    pub not_searched: Vec<u32>,
    pub max_steps: usize,
    pub time_budget_s: f64,
    pub seconds: f64,
    /// Seconds of the baseline's natural-trigger search (once per run, shared by candidates).
    pub baseline_seconds: f64,
    pub calibration: Option<Calibration>,
    /// Image geometry of the mask and pattern.
    pub shape: [usize; 3],
    /// Input value range the pattern was drawn in (the suite inputs' min and max).
    pub value_range: [f32; 2],
    /// HTML view of the triggers, when written (`--trigger-dir`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
}

/// Everything the search needs from the suite, prepared once.
pub struct Setup {
    pub spec: SynthSpec,
    pub geo: (usize, usize, usize),
    pub sample_shape: Vec<usize>,
    pub lo: f32,
    pub hi: f32,
    /// Per class: indices of suite inputs the baseline assigns to another class.
    pub sources: Vec<Vec<usize>>,
    pub classes: Vec<u32>,
    pub x: Vec<f32>,
    /// The baseline's natural trigger per searched class, `None` when it found none.
    pub natural: Vec<(u32, Option<f64>)>,
    pub natural_seconds: f64,
}

/// A model synthesis can differentiate: the mlsign network spec (with the softplus surrogate
/// for ReLU) or an ONNX graph (candle-onnx runs every node as candle tensor ops, so gradients
/// flow through it; tests/cli/behave_onnx.rs checks them against the mlsign-net twins).
#[derive(Clone, Copy)]
pub enum Diff<'a> {
    Net(&'a NetModel),
    #[cfg(feature = "onnx")]
    Onnx(&'a super::models::onnx::OnnxModel),
}

impl Diff<'_> {
    /// Class scores (probabilities or logits, as the model emits them).
    fn forward(&self, x: &Tensor, relax: Option<f64>) -> candle_core::Result<Tensor> {
        match self {
            Diff::Net(n) => n.forward_relaxed(x, relax),
            #[cfg(feature = "onnx")]
            Diff::Onnx(o) => o.forward(x),
        }
    }

    fn output(&self) -> OutputKind {
        match self {
            Diff::Net(n) => n.info.output,
            #[cfg(feature = "onnx")]
            Diff::Onnx(o) => o.info.output,
        }
    }

    /// Whether the ReLU surrogate applies (ONNX graphs run as they are).
    fn relaxable(&self) -> bool {
        matches!(self, Diff::Net(_))
    }
}

/// The differentiable form of a model, if synthesis supports its format.
pub fn diff_of(model: &Model) -> Option<Diff<'_>> {
    match model {
        Model::Net(n) => Some(Diff::Net(n)),
        #[cfg(feature = "onnx")]
        Model::Onnx(o) => Some(Diff::Onnx(o)),
        _ => None,
    }
}

fn log_probs(model: Diff, x: &Tensor, relax: Option<f64>) -> candle_core::Result<Tensor> {
    let y = model.forward(x, relax)?;
    match model.output() {
        OutputKind::Probabilities => (y + 1e-12)?.log(),
        _ => candle_nn::ops::log_softmax(&y, D::Minus1),
    }
}

fn sigmoid(x: &Tensor) -> candle_core::Result<Tensor> {
    (x.neg()?.exp()? + 1.0)?.recip()
}

/// Row indices where `pred == c` among `pred` (a `[B]` u32 vector).
fn rate(pred: &[u32], c: u32) -> f64 {
    if pred.is_empty() {
        return 0.0;
    }
    pred.iter().filter(|&&p| p == c).count() as f64 / pred.len() as f64
}

struct Found {
    mask_l1: Option<f64>,
    mask: Vec<f32>,
    pattern: Vec<f32>,
    steps: usize,
}

/// Deterministic start values in (−1, 1).
fn init(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

impl Setup {
    fn batch(&self, idx: &[usize], device: &Device) -> Result<Tensor> {
        let d = self.sample_len();
        let mut buf = Vec::with_capacity(idx.len() * d);
        for &i in idx {
            buf.extend_from_slice(&self.x[i * d..(i + 1) * d]);
        }
        let (c, h, w) = self.geo;
        Ok(Tensor::from_vec(buf, (idx.len(), c, h, w), device)?)
    }

    fn sample_len(&self) -> usize {
        self.sample_shape.iter().product()
    }

    /// The optimisation subset of a class's sources: evenly spread over them.
    fn opt_indices(&self, ci: usize) -> Vec<usize> {
        let src = &self.sources[ci];
        let k = self.spec.inputs.min(src.len());
        (0..k).map(|j| src[j * src.len() / k]).collect()
    }

    fn stamp(&self, x: &Tensor, m: &Tensor, p: &Tensor) -> candle_core::Result<Tensor> {
        let (c, h, w) = self.geo;
        let m = m.reshape((1, 1, h, w))?;
        let p = p.reshape((1, c, h, w))?;
        let xs = x
            .broadcast_mul(&m.affine(-1.0, 1.0)?)?
            .broadcast_add(&m.broadcast_mul(&p)?)?;
        let mut shape = vec![x.dims()[0]];
        shape.extend(&self.sample_shape);
        xs.reshape(shape)
    }

    /// One class: optimise (mask, pattern) so `cand` sends the sources to `class`, keeping
    /// `base` (when given) away from it. Returns the smallest feasible mask seen.
    fn search(
        &self,
        cand: Diff,
        base: Option<Diff>,
        ci: usize,
        deadline: Instant,
        device: &Device,
    ) -> Result<Found> {
        let class = self.classes[ci];
        let idx = self.opt_indices(ci);
        let (c, h, w) = self.geo;
        if idx.is_empty() {
            return Ok(Found {
                mask_l1: None,
                mask: vec![0.0; h * w],
                pattern: vec![0.0; c * h * w],
                steps: 0,
            });
        }
        let x = self.batch(&idx, device)?;
        let seed = 0x5EED ^ u64::from(class).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // Mask logits start at −2 (m ≈ 0.12 everywhere), pattern logits anywhere in (−1, 1).
        let a0: Vec<f32> = init(h * w, seed).iter().map(|v| -2.0 + 0.1 * v).collect();
        let a = Var::from_vec(a0, (h, w), device)?;
        let b = Var::from_vec(init(c * h * w, seed ^ 0xB), (c, h, w), device)?;
        let mut opt = AdamW::new(
            vec![a.clone(), b.clone()],
            ParamsAdamW {
                lr: self.spec.lr,
                weight_decay: 0.0,
                ..Default::default()
            },
        )?;
        let (lo, span) = (self.lo as f64, (self.hi - self.lo) as f64);
        let mut lambda = 1.0f64;
        let mut mu = 1.0f64;
        let mut best: Option<(f64, Vec<f32>, Vec<f32>)> = None;
        let mut ok_run = 0usize;
        let mut bad_run = 0usize;
        let mut steps = 0;
        let target = self.spec.target_flip;
        let cap = self.spec.baseline_cap;
        for _ in 0..self.spec.max_steps {
            if Instant::now() >= deadline {
                break;
            }
            steps += 1;
            let m = sigmoid(a.as_tensor())?;
            let p = ((sigmoid(b.as_tensor())? * span)? + lo)?;
            let xs = self.stamp(&x, &m, &p)?;
            let relax = (self.spec.relax > 0.0 && cand.relaxable()).then_some(self.spec.relax);
            let lp = log_probs(cand, &xs, relax)?;
            // Feasibility on the real network (its own forward when the gradient uses the surrogate).
            let argmax = |model: Diff, lp: &Tensor| -> candle_core::Result<Vec<u32>> {
                match relax {
                    Some(_) => model.forward(&xs.detach(), None)?.argmax(1)?.to_vec1(),
                    None => lp.argmax(1)?.to_vec1(),
                }
            };
            let cand_pred = argmax(cand, &lp)?;
            let mut loss = lp.narrow(1, class as usize, 1)?.mean_all()?.neg()?;
            let base_rate = match base {
                Some(bm) => {
                    let blp = log_probs(bm, &xs, relax)?;
                    let base_pred = argmax(bm, &blp)?;
                    // −log(1 − p_base(c)): zero while the baseline ignores the trigger.
                    let pc = blp.narrow(1, class as usize, 1)?.exp()?;
                    let keep = pc.affine(-1.0, 1.0 + 1e-6)?.log()?.mean_all()?.neg()?;
                    loss = (loss + (keep * mu)?)?;
                    rate(&base_pred, class)
                }
                None => 0.0,
            };
            let m_sum: f32 = m.sum_all()?.to_scalar()?;
            let reached = rate(&cand_pred, class) >= target;
            let feasible = reached && base_rate <= cap;
            if feasible && best.as_ref().is_none_or(|(s, ..)| (m_sum as f64) < *s) {
                best = Some((
                    m_sum as f64,
                    m.flatten_all()?.to_vec1()?,
                    p.flatten_all()?.to_vec1()?,
                ));
            }
            // Neural Cleanse's schedule: a working trigger buys a heavier mask penalty, a failing
            // one a lighter penalty. A trigger that also moves the baseline is not failing for
            // want of mask: it needs a heavier baseline term (and a smaller mask).
            if feasible {
                ok_run += 1;
                bad_run = 0;
            } else if reached {
                mu = (mu * 1.2).min(1e3);
                ok_run += 1;
                bad_run = 0;
            } else {
                bad_run += 1;
                ok_run = 0;
            }
            if ok_run >= 3 {
                lambda = (lambda * 1.5).min(1e3);
                ok_run = 0;
            } else if bad_run >= 3 {
                lambda = (lambda / 1.5).max(1e-3);
                bad_run = 0;
            }
            let loss = (loss + (m.mean_all()? * lambda)?)?;
            opt.backward_step(&loss)?;
        }
        Ok(match best {
            Some((s, mask, pattern)) => Found {
                mask_l1: Some(s),
                mask,
                pattern,
                steps,
            },
            None => {
                let m = sigmoid(a.as_tensor())?;
                let p = ((sigmoid(b.as_tensor())? * span)? + lo)?;
                Found {
                    mask_l1: None,
                    mask: m.flatten_all()?.to_vec1()?,
                    pattern: p.flatten_all()?.to_vec1()?,
                    steps,
                }
            }
        })
    }

    /// Flip rates of a trigger over every source input of a class.
    fn flip_rates(
        &self,
        cand: Diff,
        base: Diff,
        ci: usize,
        mask: &[f32],
        pattern: &[f32],
        device: &Device,
    ) -> Result<(f64, f64)> {
        let src = &self.sources[ci];
        if src.is_empty() {
            return Ok((0.0, 0.0));
        }
        let (c, h, w) = self.geo;
        let m = Tensor::from_slice(mask, (h, w), device)?;
        let p = Tensor::from_slice(pattern, (c, h, w), device)?;
        let class = self.classes[ci];
        let (mut nc, mut nb) = (0usize, 0usize);
        for chunk in src.chunks(512) {
            let xs = self.stamp(&self.batch(chunk, device)?, &m, &p)?;
            let pc: Vec<u32> = cand.forward(&xs, None)?.argmax(1)?.to_vec1()?;
            let pb: Vec<u32> = base.forward(&xs, None)?.argmax(1)?.to_vec1()?;
            nc += pc.iter().filter(|&&v| v == class).count();
            nb += pb.iter().filter(|&&v| v == class).count();
        }
        Ok((nc as f64 / src.len() as f64, nb as f64 / src.len() as f64))
    }
}

/// Prepare synthesis for a suite and baseline: source inputs per class, then the baseline's
/// natural trigger for every class (once per run).
#[allow(clippy::too_many_arguments)]
pub fn setup(
    spec: &SynthSpec,
    suite_path: &Path,
    geo: Option<(usize, usize, usize)>,
    sample_shape: &[usize],
    x: &[f32],
    clean_pred: &[u32],
    baseline: &Model,
    device: &Device,
) -> Result<Setup> {
    let net = diff_of(baseline).ok_or_else(|| {
        BehaveError::suite(
            suite_path,
            format!(
                "[synthesis] needs a model candle can differentiate: the mlsign network spec or an ONNX classifier (this baseline is {}); remove [synthesis] for this model",
                baseline.info().format
            ),
        )
    })?;
    let geo = geo.ok_or_else(|| {
        BehaveError::suite(
            suite_path,
            format!("[synthesis] needs an image layout: inputs are {sample_shape:?}; set suite.image_shape = [C, H, W]"),
        )
    })?;
    let k = baseline.info().outputs;
    let classes: Vec<u32> = match &spec.classes {
        Some(cs) => {
            if let Some(bad) = cs.iter().find(|&&c| c as usize >= k) {
                return Err(BehaveError::suite(
                    suite_path,
                    format!("synthesis.classes names class {bad}, but the model has {k} classes"),
                ));
            }
            let mut cs = cs.clone();
            cs.sort_unstable();
            cs.dedup();
            cs
        }
        None => (0..k as u32).collect(),
    };
    let sources = classes
        .iter()
        .map(|&c| {
            clean_pred
                .iter()
                .enumerate()
                .filter(|(_, &p)| p != c)
                .map(|(i, _)| i)
                .collect()
        })
        .collect();
    let (lo, hi) = x
        .iter()
        .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
    // Triggers often use values the clean inputs never reach (a white patch on dim digits), so
    // the pattern may span [0, 1] as well as the inputs' own range.
    let [lo, hi] = spec.value_range.unwrap_or([lo.min(0.0), hi.max(1.0)]);
    let mut s = Setup {
        spec: spec.clone(),
        geo,
        sample_shape: sample_shape.to_vec(),
        lo,
        hi,
        sources,
        classes,
        x: x.to_vec(),
        natural: vec![],
        natural_seconds: 0.0,
    };
    let t0 = Instant::now();
    // The baseline's search has no budget of its own: it is part of preparing the suite.
    let far = Instant::now() + std::time::Duration::from_secs(86_400 * 365);
    let mut natural = Vec::with_capacity(s.classes.len());
    for ci in 0..s.classes.len() {
        let f = s.search(net, None, ci, far, device)?;
        natural.push((s.classes[ci], f.mask_l1));
    }
    s.natural = natural;
    s.natural_seconds = t0.elapsed().as_secs_f64();
    Ok(s)
}

/// The MAD anomaly index of the largest value: (max − median) / (1.4826 · MAD).
/// With the MAD floored at `floor`.
pub fn anomaly_index(v: &[f64], floor: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    let med = super::stats::median(&mut s);
    let mut dev: Vec<f64> = v.iter().map(|x| (x - med).abs()).collect();
    let mad = super::stats::median(&mut dev).max(floor);
    let max = v.iter().copied().fold(f64::MIN, f64::max);
    (max - med) / (1.4826 * mad + 1e-9)
}

/// MAD floor of the synthesis statistic, in log2 units: mask sizes within ~19 % of each other
/// are not told apart (without it, a tiny spread among the other classes' masks makes any
/// difference look like an outlier). Fixed before the benchmark was run.
pub const MAD_FLOOR: f64 = 0.25;

/// The synthesis statistic over the searched classes and the class with the smallest mask that
/// is evidence ([`SynthReport::value`], [`SynthReport::top_class`]); `full` is the image area.
fn statistic(classes: &[ClassResult], full: f64) -> (f64, Option<&ClassResult>) {
    // −log2 of each class's differential mask that is evidence (none: the whole image). A
    // differential trigger no smaller than the baseline's own natural trigger for that class is
    // not: the candidate needs more to reach the class than the trusted model does. Counting it
    // let near-copies of the baseline (where the differential search is infeasible for most
    // classes, so one feasible class of 60 px stood out against the rest) score like backdoors.
    let small = |c: &ClassResult| -(evidence(c, full).unwrap_or(full).max(1e-3)).log2();
    let sizes: Vec<f64> = classes.iter().map(small).collect();
    let top = classes.iter().max_by(|a, b| small(a).total_cmp(&small(b)));
    // No evidence for the smallest-mask class: nothing to flag, whatever the spread.
    let value = match top {
        Some(t) if evidence(t, full).is_some() => anomaly_index(&sizes, MAD_FLOOR),
        _ => 0.0,
    };
    (value, top)
}

/// The class's differential mask size when it is evidence of a planted trigger: found, and
/// smaller than the baseline's natural trigger for the class (the whole image when the
/// baseline has none).
fn evidence(c: &ClassResult, full: f64) -> Option<f64> {
    c.mask_l1.filter(|&m| m < c.natural_mask_l1.unwrap_or(full))
}

/// Run the differential search on a candidate.
pub fn run(
    setup: &Setup,
    candidate: &Model,
    baseline: &Model,
    labels: Option<&[String]>,
    device: &Device,
) -> Result<SynthReport> {
    let t0 = Instant::now();
    let (Some(cand), Some(base)) = (diff_of(candidate), diff_of(baseline)) else {
        return Err(BehaveError::Format {
            path: PathBuf::from(&candidate.info().weights),
            message: "trigger synthesis needs mlsign network spec or ONNX models".into(),
        });
    };
    let deadline = t0 + std::time::Duration::from_secs_f64(setup.spec.time_budget_s);
    let (c, h, w) = setup.geo;
    let full = (h * w) as f64;
    let mut classes = Vec::new();
    let mut not_searched = Vec::new();
    for (ci, &class) in setup.classes.iter().enumerate() {
        if Instant::now() >= deadline {
            not_searched.push(class);
            continue;
        }
        let f = setup.search(cand, Some(base), ci, deadline, device)?;
        let (cf, bf) = setup.flip_rates(cand, base, ci, &f.mask, &f.pattern, device)?;
        let natural = setup.natural.get(ci).and_then(|n| n.1);
        let log2_ratio =
            (natural.unwrap_or(full).max(1e-3) / f.mask_l1.unwrap_or(full).max(1e-3)).log2();
        classes.push(ClassResult {
            class,
            label: labels.and_then(|l| l.get(class as usize).cloned()),
            mask_l1: f.mask_l1,
            natural_mask_l1: natural,
            log2_ratio,
            candidate_flip: cf,
            baseline_flip: bf,
            source_inputs: setup.sources[ci].len(),
            steps: f.steps,
            mask_png: None,
            pattern_png: None,
            mask: f.mask,
            pattern: f.pattern,
        });
    }
    let (value, top) = statistic(&classes, full);
    let max_log2_ratio = if classes.is_empty() {
        0.0
    } else {
        classes
            .iter()
            .map(|c| c.log2_ratio)
            .fold(f64::MIN, f64::max)
    };
    let threshold = setup.spec.threshold.unwrap_or(DEFAULT_THRESHOLD);
    Ok(SynthReport {
        value,
        threshold,
        flagged: value > threshold,
        top_class: top.map(|t| t.class),
        max_log2_ratio,
        classes,
        not_searched,
        max_steps: setup.spec.max_steps,
        time_budget_s: setup.spec.time_budget_s,
        seconds: t0.elapsed().as_secs_f64(),
        baseline_seconds: setup.natural_seconds,
        calibration: setup.spec.calibration.clone(),
        shape: [c, h, w],
        value_range: [setup.lo, setup.hi],
        html: None,
    })
}

/// Greyscale or RGB PNG of a `[C, H, W]` image with values in [lo, hi], each pixel drawn as a
/// `scale`×`scale` block (8×8 triggers are unreadable at 1:1). Encoded here with flate2 (a
/// dependency already) rather than pulling an image crate in.
pub fn png(
    data: &[f32],
    (c, h, w): (usize, usize, usize),
    lo: f32,
    hi: f32,
    scale: usize,
) -> Vec<u8> {
    use std::io::Write;
    let channels = if c == 3 { 3 } else { 1 };
    let (sw, sh) = (w * scale, h * scale);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let px = |ch: usize, y: usize, x: usize| -> u8 {
        let v = data.get(ch * h * w + y * w + x).copied().unwrap_or(0.0);
        (((v - lo) / span).clamp(0.0, 1.0) * 255.0).round() as u8
    };
    let mut raw = Vec::with_capacity(sh * (1 + sw * channels));
    for yy in 0..sh {
        raw.push(0u8); // filter: none
        for xx in 0..sw {
            for ch in 0..channels {
                raw.push(px(ch, yy / scale, xx / scale));
            }
        }
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = z.write_all(&raw);
    let idat = z.finish().unwrap_or_default();
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend((sw as u32).to_be_bytes());
    ihdr.extend((sh as u32).to_be_bytes());
    ihdr.extend([8u8, if channels == 3 { 2 } else { 0 }, 0, 0, 0]);
    for (kind, body) in [
        (&b"IHDR"[..], &ihdr[..]),
        (b"IDAT", &idat[..]),
        (b"IEND", &[][..]),
    ] {
        out.extend((body.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend(kind);
        out.extend(body);
        let crc = crc32(&out[start..]);
        out.extend(crc.to_be_bytes());
    }
    out
}

/// CRC-32 (IEEE, as PNG chunks use).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Write every searched class's mask and pattern as PNGs into `dir` (named after `stem`) with
/// an HTML page showing them, and record the file names in the report.
pub fn write_files(r: &mut SynthReport, dir: &Path, stem: &str, candidate: &str) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| BehaveError::io(dir, e))?;
    let [lo, hi] = r.value_range;
    let [c, h, w] = r.shape;
    let scale = (128 / h.max(w).max(1)).clamp(1, 16);
    for cr in &mut r.classes {
        let mp = dir.join(format!("{stem}-class{}-mask.png", cr.class));
        let pp = dir.join(format!("{stem}-class{}-pattern.png", cr.class));
        std::fs::write(&mp, png(&cr.mask, (1, h, w), 0.0, 1.0, scale))
            .map_err(|e| BehaveError::io(&mp, e))?;
        std::fs::write(&pp, png(&cr.pattern, (c, h, w), lo, hi, scale))
            .map_err(|e| BehaveError::io(&pp, e))?;
        cr.mask_png = Some(mp.display().to_string());
        cr.pattern_png = Some(pp.display().to_string());
    }
    let hp = dir.join(format!("{stem}-triggers.html"));
    std::fs::write(&hp, html(r, candidate)).map_err(|e| BehaveError::io(&hp, e))?;
    r.html = Some(hp.display().to_string());
    Ok(())
}

/// A one-file HTML view of a candidate's synthesised triggers (images referenced by name).
pub fn html(r: &SynthReport, candidate: &str) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let name = |p: &Option<String>| {
        p.as_deref()
            .and_then(|p| Path::new(p).file_name())
            .map(|f| esc(&f.to_string_lossy()))
            .unwrap_or_default()
    };
    let mut s = format!(
        "<!doctype html><meta charset=\"utf-8\"><title>mlsign behave: synthesised triggers</title>\n<h1>Synthesised triggers for {}</h1>\n<p>synthesis anomaly index {:.3} (threshold {:.3}){}; largest log2(natural / candidate mask) {:.2}</p>\n<table border=1 cellpadding=4><tr><th>class</th><th>mask Σm (px)</th><th>baseline's natural mask</th><th>log2 ratio</th><th>candidate flip</th><th>baseline flip</th><th>mask</th><th>pattern</th></tr>\n",
        esc(candidate),
        r.value,
        r.threshold,
        if r.flagged { " — FLAGGED" } else { "" },
        r.max_log2_ratio
    );
    for c in &r.classes {
        let f = |v: Option<f64>| v.map_or("none".to_string(), |v| format!("{v:.1}"));
        s.push_str(&format!(
            "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.0}%</td><td>{:.0}%</td><td><img src=\"{}\"></td><td><img src=\"{}\"></td></tr>\n",
            c.class,
            c.label.as_deref().map(|l| format!(" ({})", esc(l))).unwrap_or_default(),
            f(c.mask_l1),
            f(c.natural_mask_l1),
            c.log2_ratio,
            100.0 * c.candidate_flip,
            100.0 * c.baseline_flip,
            name(&c.mask_png),
            name(&c.pattern_png)
        ));
    }
    s.push_str("</table>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_bounds_are_checked() {
        let ok: SynthSpec = toml::from_str("").unwrap();
        assert!(ok.validate().is_ok());
        assert_eq!((ok.max_steps, ok.inputs, ok.target_flip), (150, 100, 0.8));
        for (bad, needle) in [
            ("max_steps = 0", "max_steps"),
            ("time_budget_s = -1.0", "time_budget_s"),
            ("target_flip = 1.5", "target_flip"),
            ("baseline_cap = 0.9", "below synthesis.target_flip"),
            ("lr = 0.0", "lr"),
            ("value_range = [1.0, 0.0]", "value_range"),
            ("threshold = nan", "threshold"),
            ("relax = -1.0", "relax"),
        ] {
            let s: SynthSpec = toml::from_str(bad).unwrap();
            let e = s.validate().unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
        assert!(
            toml::from_str::<SynthSpec>("steps = 3").is_err(),
            "unknown keys are refused"
        );
    }

    #[test]
    fn png_is_well_formed() {
        // 2×1 greyscale at scale 2: IHDR 4×2, rows of 1 + 4 bytes.
        let p = png(&[0.0, 1.0], (1, 1, 2), 0.0, 1.0, 2);
        assert_eq!(&p[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&p[12..16], b"IHDR");
        assert_eq!(&p[16..24], &[0, 0, 0, 4, 0, 0, 0, 2]);
        let n = u32::from_be_bytes(p[33..37].try_into().unwrap()) as usize;
        assert_eq!(&p[37..41], b"IDAT");
        let mut raw = Vec::new();
        use std::io::Read;
        flate2::read::ZlibDecoder::new(&p[41..41 + n])
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(raw, vec![0, 0, 0, 255, 255, 0, 0, 0, 255, 255]);
        assert!(p.ends_with(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]));
    }

    #[test]
    fn crc_and_anomaly_index() {
        // The PNG spec's check value for "123456789".
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        let ai = anomaly_index(&[1.0, 1.0, 1.2, 0.8, 1.0, 5.0], 0.0);
        assert!(ai > 10.0, "{ai}");
        // (5 − 1) / (1.4826 · 0.25)
        let ai = anomaly_index(&[1.0, 1.0, 1.01, 0.99, 1.0, 5.0], MAD_FLOOR);
        assert!((ai - 4.0 / (1.4826 * 0.25)).abs() < 1e-6, "{ai}");
        assert_eq!(anomaly_index(&[], 0.0), 0.0);
    }

    fn class(class: u32, mask: Option<f64>, natural: Option<f64>) -> ClassResult {
        ClassResult {
            class,
            label: None,
            mask_l1: mask,
            natural_mask_l1: natural,
            log2_ratio: 0.0,
            candidate_flip: 0.0,
            baseline_flip: 0.0,
            source_inputs: 10,
            steps: 1,
            mask_png: None,
            pattern_png: None,
            mask: vec![],
            pattern: vec![],
        }
    }

    #[test]
    fn only_triggers_smaller_than_the_natural_one_are_evidence() {
        // Natural masks and differential results of the glyph-CNN benchmark (16×16): a plain
        // fine-tune (calibration negative 0) and a line backdoor to class 5 (test positive 30).
        let natural = [27.9, 32.3, 47.9, 60.6, 28.4, 39.0, 29.8, 26.3, 52.2, 38.2];
        let near_copy: Vec<ClassResult> = (0..10)
            .map(|c| {
                let m = match c {
                    3 => Some(70.2),
                    5 => Some(59.8),
                    _ => None,
                };
                class(c, m, Some(natural[c as usize]))
            })
            .collect();
        // Both feasible masks exceed the baseline's natural ones: no evidence, value 0 (the
        // previous aggregation scored this benign model 5.66, above most backdoors' floor).
        assert_eq!(statistic(&near_copy, 256.0).0, 0.0);
        let mut backdoor = near_copy.clone();
        backdoor[3].mask_l1 = Some(66.2);
        backdoor[5].mask_l1 = Some(8.69);
        backdoor[8].mask_l1 = Some(64.0);
        let (v, top) = statistic(&backdoor, 256.0);
        // (−log2 8.69 + 8) / (1.4826 · 0.25): the other nine count as the whole image.
        let want = (8.0 - 8.69f64.log2()) / (1.4826 * MAD_FLOOR);
        assert!((v - want).abs() < 1e-6, "{v} vs {want}");
        assert_eq!(top.map(|t| t.class), Some(5));
        // A class the baseline cannot reach at all: any feasible trigger is evidence.
        let mut unreachable = near_copy.clone();
        unreachable[3].natural_mask_l1 = None;
        assert!(statistic(&unreachable, 256.0).0 > 0.0);
    }
}
