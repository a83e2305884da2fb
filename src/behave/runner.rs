//! The runner: loads the suite and the baseline once, computes the baseline's outputs on every
//! clean and probed input once (cached), then scores any number of candidates against them in
//! batches. Batches span probe boundaries so small suites still fill `batch_size` rows.

use super::error::{BehaveError, Result};
use super::models::{check_compatible, Kind, LoadOptions, Model};
use super::probes::{self, Probe, ProbeFamily};
use super::report::*;
use super::stats::{self, CellScore};
use super::suite::{Statistic, Suite, Task};
use crate::report::{codes, Finding, Location, Severity};
use candle_core::{Device, Tensor};
use std::path::Path;
use std::time::Instant;

/// Progress callback: (stage, done, total) in input rows.
pub type Progress<'a> = &'a dyn Fn(&str, u64, u64);

/// What one candidate scored, before the verdict is drawn.
struct Scored {
    value: f64,
    clean: Clean,
    companions: Option<Companions>,
    top: Vec<TriggerCandidate>,
}

/// Cap on the cached baseline outputs (probes × inputs × classes × 4 bytes).
const MAX_CACHE_BYTES: usize = 2 << 30;

/// A suite with its baseline evaluated; score candidates with [`Prepared::score`].
pub struct Prepared {
    pub suite: Suite,
    pub probes: Vec<Probe>,
    pub families: Vec<ProbeFamily>,
    pub probes_sha256: String,
    pub baseline: Model,
    pub device: Device,
    cache: Cache,
    base_forward_s: f64,
    /// Trigger synthesis, prepared (baseline's natural triggers found) when the suite asks.
    pub synth: Option<super::synth::Setup>,
    /// Trigger-token search (text models), prepared from the baseline when the suite asks.
    pub tsearch: Option<super::tokensearch::Setup>,
}

/// The baseline's outputs on the whole suite, computed once.
enum Cache {
    Classes {
        classes: usize,
        clean: Vec<f32>,
        clean_pred: Vec<u32>,
        /// Per probe, per input: prediction and probabilities.
        probed_pred: Vec<u32>,
        probed: Vec<f32>,
    },
    /// Output rows compared by a distance (embeddings: cosine; causal LMs: JS between
    /// next-token distributions), `dim` values per row.
    Embedding {
        dim: usize,
        clean: Vec<f32>,
        probed: Vec<f32>,
    },
}

impl Cache {
    /// Output values per row.
    fn width(&self) -> usize {
        match self {
            Cache::Classes { classes, .. } => *classes,
            Cache::Embedding { dim, .. } => *dim,
        }
    }
}

/// Text counterpart of [`stream`]: prompts (clean or probed) through a text model in batches.
#[allow(clippy::too_many_arguments)]
fn stream_text(
    model: &Model,
    who: &str,
    suite: &Suite,
    probes: Option<&[Probe]>,
    progress: Progress,
    forward_s: &mut f64,
    mut sink: impl FnMut(usize, &[f32]) -> Result<()>,
) -> Result<()> {
    let n = suite.n;
    let total = n * probes.map_or(1, |p| p.len());
    let bs = suite.file.suite.batch_size;
    let stage = if probes.is_some() { "probed" } else { "clean" };
    let mut start = 0;
    let mut texts = Vec::with_capacity(bs);
    while start < total {
        let end = (start + bs).min(total);
        texts.clear();
        for r in start..end {
            let t = &suite.texts[r % n];
            texts.push(match probes {
                Some(ps) => ps[r / n].apply_text(t, r % n),
                None => t.clone(),
            });
        }
        let t0 = Instant::now();
        let y = model.text_outputs(&texts)?;
        let out: Vec<f32> = y.flatten_all()?.to_vec1()?;
        *forward_s += t0.elapsed().as_secs_f64();
        check_finite(&out, start, n, model, who, probes, "prompt")?;
        sink(start, &out)?;
        progress(stage, end as u64, total as u64);
        start = end;
    }
    Ok(())
}

/// Runs `rows` inputs (each the clean input or a probed one) through a model in batches and
/// hands every batch's probabilities to `sink(first_row, probs)`.
#[allow(clippy::too_many_arguments)]
fn stream(
    model: &Model,
    who: &str,
    suite: &Suite,
    probes: Option<&[Probe]>,
    device: &Device,
    progress: Progress,
    forward_s: &mut f64,
    mut sink: impl FnMut(usize, &[f32]) -> Result<()>,
) -> Result<()> {
    if suite.text {
        return stream_text(model, who, suite, probes, progress, forward_s, sink);
    }
    let n = suite.n;
    let d = suite.sample_len();
    let total = n * probes.map_or(1, |p| p.len());
    let bs = suite.file.suite.batch_size;
    let mut shape = vec![0usize];
    shape.extend(&suite.sample_shape);
    let stage = if probes.is_some() { "probed" } else { "clean" };
    let mut buf: Vec<f32> = Vec::with_capacity(bs * d);
    let mut start = 0;
    while start < total {
        let end = (start + bs).min(total);
        buf.clear();
        let mut r = start;
        while r < end {
            let p = r / n;
            let i0 = r % n;
            let i1 = (n).min(i0 + (end - r));
            let xs = &suite.x[i0 * d..i1 * d];
            match probes {
                Some(ps) => probes::apply(&ps[p], xs, &mut buf),
                None => buf.extend_from_slice(xs),
            }
            r += i1 - i0;
        }
        shape[0] = end - start;
        let t0 = Instant::now();
        let x = Tensor::from_slice(&buf, shape.as_slice(), device)?;
        let y = model.probabilities(&x)?;
        let probs: Vec<f32> = y.flatten_all()?.to_vec1()?;
        *forward_s += t0.elapsed().as_secs_f64();
        check_finite(&probs, start, n, model, who, probes, "input")?;
        sink(start, &probs)?;
        progress(stage, end as u64, total as u64);
        start = end;
    }
    Ok(())
}

/// NaN/Inf in a batch's outputs is an error naming the model, the input and the probe.
fn check_finite(
    out: &[f32],
    start: usize,
    n: usize,
    model: &Model,
    who: &str,
    probes: Option<&[Probe]>,
    noun: &str,
) -> Result<()> {
    let Some(bad) = out.iter().position(|v| !v.is_finite()) else {
        return Ok(());
    };
    let row = start + bad / model.info().outputs;
    let place = match probes {
        Some(ps) => format!("{noun} {} under probe `{}`", row % n, ps[row / n].label),
        None => format!("clean {noun} {row}"),
    };
    Err(BehaveError::NonFiniteOutput {
        model: who.into(),
        place,
    })
}

fn check_inputs(suite: &Suite, model: &Model, path: &Path) -> Result<()> {
    let task = suite.file.suite.task;
    let kind = model.kind();
    let fits = match (task, kind) {
        (Task::Classification, Kind::TensorClassifier) => !suite.text,
        (Task::Classification, Kind::TextClassifier) => suite.text,
        (Task::Embedding, Kind::Embedder) | (Task::Lm, Kind::CausalLm) => true,
        _ => false,
    };
    if !fits {
        let what = match kind {
            Kind::TensorClassifier => "a classifier over tensors: use task = \"classification\" with safetensors inputs",
            Kind::TextClassifier => "a text classifier: use task = \"classification\" with JSONL prompts (inputs = \"….jsonl\")",
            Kind::Embedder => "a text encoder: use a suite with task = \"embedding\" and JSONL prompts",
            Kind::CausalLm => "a causal LM: use a suite with task = \"lm\" and JSONL prompts",
        };
        return Err(BehaveError::suite(
            &suite.path,
            format!(
                "{} is {what} (this suite has task = {:?} with {} inputs; model format {})",
                path.display(),
                task,
                if suite.text { "text" } else { "tensor" },
                model.info().format
            ),
        ));
    }
    if suite.text {
        return Ok(());
    }
    let want = &model.info().input_shape;
    if &suite.sample_shape != want {
        return Err(BehaveError::suite(
            &suite.path,
            format!(
                "inputs `{}` in {} have per-sample shape {:?} but the model {} expects {:?}",
                suite.file.suite.input_tensor,
                suite.inputs_path.display(),
                suite.sample_shape,
                path.display(),
                want
            ),
        ));
    }
    // Accuracy is reported from the labels: one outside the classes would be silently wrong.
    if let Some(labels) = &suite.labels {
        let classes = model.info().outputs;
        if let Some((index, &label)) = labels
            .iter()
            .enumerate()
            .find(|&(_, &l)| usize::try_from(l).map_or(true, |l| l >= classes))
        {
            return Err(BehaveError::LabelOutOfRange {
                path: suite.inputs_path.clone(),
                tensor: suite.file.suite.label_tensor.clone(),
                index,
                label,
                classes,
            });
        }
    }
    Ok(())
}

impl Prepared {
    /// Load the suite and the baseline, generate the probes and evaluate the baseline on all of them.
    pub fn new(
        suite_path: &Path,
        baseline: &Path,
        device: Device,
        progress: Progress,
    ) -> Result<Self> {
        let suite = Suite::load(suite_path)?;
        let model = Model::load_with(baseline, &device, &LoadOptions::for_suite(&suite))?;
        check_inputs(&suite, &model, baseline)?;
        // Token sweeps draw from the baseline's vocabulary.
        let (probes, families) = probes::generate(&suite, model.vocab().as_deref())?;
        let probes_sha256 = probes::hash(&probes);
        let width = model.info().outputs;
        let cache_bytes = probes
            .len()
            .saturating_mul(suite.n)
            .saturating_mul(width)
            .saturating_mul(4);
        if cache_bytes > MAX_CACHE_BYTES {
            return Err(BehaveError::suite(
                suite_path,
                format!("{} probes × {} inputs × {width} outputs needs {} MiB of cached baseline outputs (limit {} MiB); use fewer probes or inputs", probes.len(), suite.n, cache_bytes >> 20, MAX_CACHE_BYTES >> 20),
            ));
        }
        let mut fwd = 0.0;
        let mut clean = vec![0f32; suite.n * width];
        let mut probed = vec![0f32; cache_bytes / 4];
        {
            let mut put_clean = |s: usize, p: &[f32]| {
                clean[s * width..s * width + p.len()].copy_from_slice(p);
                Ok(())
            };
            stream(
                &model,
                "the baseline",
                &suite,
                None,
                &device,
                progress,
                &mut fwd,
                &mut put_clean,
            )?;
            let mut put_probed = |s: usize, p: &[f32]| {
                probed[s * width..s * width + p.len()].copy_from_slice(p);
                Ok(())
            };
            stream(
                &model,
                "the baseline",
                &suite,
                Some(&probes),
                &device,
                progress,
                &mut fwd,
                &mut put_probed,
            )?;
        }
        let cache = if suite.file.suite.task != Task::Classification {
            Cache::Embedding {
                dim: width,
                clean,
                probed,
            }
        } else {
            Cache::Classes {
                classes: width,
                clean_pred: stats::argmax_rows(&clean, width),
                probed_pred: stats::argmax_rows(&probed, width),
                clean,
                probed,
            }
        };
        let synth = match (&suite.file.synthesis, &cache) {
            (Some(spec), Cache::Classes { clean_pred, .. }) => Some(super::synth::setup(
                spec,
                &suite.path,
                probes::geometry(&suite),
                &suite.sample_shape,
                &suite.x,
                clean_pred,
                &model,
                &device,
            )?),
            _ => None,
        };
        let tsearch = match &suite.file.token_search {
            Some(spec) => Some(super::tokensearch::setup(
                spec,
                &suite.texts,
                suite.file.suite.seed,
                suite.file.suite.batch_size,
                baseline,
                &model,
                &device,
            )?),
            None => None,
        };
        Ok(Prepared {
            suite,
            probes,
            families,
            probes_sha256,
            baseline: model,
            device,
            cache,
            base_forward_s: fwd,
            synth,
            tsearch,
        })
    }

    pub fn suite_ref(&self) -> SuiteRef {
        SuiteRef {
            name: self.suite.file.suite.name.clone(),
            path: self.suite.path.display().to_string(),
            sha256: self.suite.sha256.clone(),
            inputs: self.suite.inputs_path.display().to_string(),
            inputs_sha256: self.suite.inputs_sha256.clone(),
            n_inputs: self.suite.n,
            probes_sha256: self.probes_sha256.clone(),
            n_probes: self.probes.len(),
            probe_families: self.families.clone(),
            seed: self.suite.file.suite.seed,
        }
    }

    /// Short description of the probe library for messages ("probes P").
    pub fn probe_summary(&self) -> String {
        let fams: Vec<String> = self
            .families
            .iter()
            .map(|f| format!("{} {} ({})", f.count, f.kind, f.spec))
            .collect();
        format!("{} [sha256 {}]", fams.join(", "), &self.probes_sha256[..16])
    }

    /// Score one candidate against the cached baseline.
    pub fn score(&self, candidate: &Path, progress: Progress) -> Result<BehaveReport> {
        let t_start = Instant::now();
        let model = Model::load_with(
            candidate,
            &self.device,
            &LoadOptions::for_suite(&self.suite),
        )?;
        check_compatible(self.baseline.info(), model.info())?;
        let mut fwd = 0.0;
        let scored = match self.suite.file.suite.task {
            Task::Classification => self.score_classes(&model, progress, &mut fwd)?,
            Task::Embedding => self.score_text(&model, progress, &mut fwd)?,
            Task::Lm => self.score_lm(&model, progress, &mut fwd)?,
        };
        let synthesis = match &self.synth {
            Some(setup) => Some(super::synth::run(
                setup,
                &model,
                &self.baseline,
                model.info().labels.as_deref(),
                &self.device,
            )?),
            None => None,
        };
        let dec = &self.suite.file.decision;
        let threshold = dec.threshold_for(self.suite.file.suite.task);
        let value = scored.value;
        let probe_flagged = value > threshold;
        let synth_flagged = synthesis.as_ref().is_some_and(|s| s.flagged);
        let token_search = match &self.tsearch {
            Some(setup) => Some(setup.run(candidate, &model, &self.baseline, &self.device)?),
            None => None,
        };
        let ts_flagged = token_search.as_ref().is_some_and(|t| t.flagged);
        let flagged = probe_flagged || synth_flagged || ts_flagged;
        let mut findings = Vec::new();
        let loc = Location::path(candidate.display().to_string());
        let probes_p = self.probe_summary();
        let stat = dec.stat.name();
        let message = if let (true, Some(t)) = (probe_flagged, scored.top.first()) {
            let what = match &t.detail {
                CandidateDetail::Class { target_class, median_excess, focused_excess, .. } => format!(
                    "under probe `{}` the candidate sends a median {:.0}% of each source class to class {target_class} beyond what the baseline does ({:.0}% beyond twice the baseline's rate)",
                    t.probe,
                    100.0 * median_excess,
                    100.0 * focused_excess
                ),
                CandidateDetail::Embedding { median_distance, consistency, excess, .. } => format!(
                    "probe `{}` moves the candidate's embeddings away from the baseline's (median cosine distance {median_distance:.4}, {excess:+.4} over each input's clean distance, {:.0}% of inputs beyond the clean p99)",
                    t.probe,
                    100.0 * consistency
                ),
                CandidateDetail::Lm { median_js, consistency, excess, rising_token, rising_mean_increase, .. } => format!(
                    "probe `{}` moves the candidate's next-token distribution away from the baseline's (median JS {median_js:.4} bits, {excess:+.4} over each prompt's clean JS, {:.0}% of prompts beyond the clean p99); token {rising_token:?} gains {:.1} points of probability on average",
                    t.probe,
                    100.0 * consistency,
                    100.0 * rising_mean_increase
                ),
            };
            findings.push(
                Finding::new(
                    codes::BHV001,
                    Severity::High,
                    format!("backdoor-like divergence: {what} ({stat} = {value:.3} > threshold {threshold:.3})"),
                )
                .at(loc.clone()),
            );
            let target = match &t.detail {
                CandidateDetail::Lm { rising_token, .. } => format!(" → token {rising_token:?}"),
                CandidateDetail::Class {
                    target_class,
                    target_label,
                    ..
                } => match target_label {
                    Some(l) => format!(" → class {target_class} ({l})"),
                    None => format!(" → class {target_class}"),
                },
                CandidateDetail::Embedding { .. } => String::new(),
            };
            format!("backdoor-like divergence found: {stat} = {value:.3} exceeds {threshold:.3}; top trigger candidate `{}`{target}", t.probe)
        } else {
            format!(
                "no backdoor-like divergence found under probes {probes_p} ({stat} = {value:.3} ≤ {threshold:.3}); this does not rule out triggers outside these probes"
            )
        };
        let message = match synthesis.as_ref().filter(|s| s.flagged) {
            Some(sy) => {
                let top = sy.classes.iter().find(|c| Some(c.class) == sy.top_class);
                let what = match top {
                    Some(c) => format!(
                        "a synthesised trigger of {} px sends {:.0}% of the other classes' inputs to class {}{} on the candidate vs {:.0}% on the baseline, whose own smallest trigger for that class takes {}",
                        c.mask_l1.map_or("no".into(), |m| format!("{m:.1}")),
                        100.0 * c.candidate_flip,
                        c.class,
                        c.label.as_deref().map(|l| format!(" ({l})")).unwrap_or_default(),
                        100.0 * c.baseline_flip,
                        c.natural_mask_l1.map_or("more than the whole image".into(), |m| format!("{m:.1} px")),
                    ),
                    None => "a synthesised trigger".into(),
                };
                findings.push(
                    Finding::new(
                        codes::BHV006,
                        Severity::High,
                        format!(
                            "backdoor-like trigger synthesised: {what} (synthesis statistic {:.3} > threshold {:.3})",
                            sy.value, sy.threshold
                        ),
                    )
                    .at(loc.clone()),
                );
                if probe_flagged {
                    format!("{message}; trigger synthesis agrees ({what})")
                } else {
                    format!("backdoor-like divergence found by trigger synthesis: {what} (the probe library alone found none: {stat} = {value:.3} ≤ {threshold:.3})")
                }
            }
            None => message,
        };
        let message = match &token_search {
            Some(ts) if ts.flagged => {
                let what = ts.describe();
                findings.push(
                    Finding::new(
                        codes::BHV007,
                        Severity::High,
                        format!(
                            "backdoor-like trigger tokens found: {what} ({} = {:.3} > threshold {:.3})",
                            ts.statistic, ts.value, ts.threshold
                        ),
                    )
                    .at(loc.clone()),
                );
                if probe_flagged || synth_flagged {
                    format!("{message}; the trigger-token search agrees ({what})")
                } else {
                    format!("backdoor-like divergence found by the trigger-token search: {what} (the probe library alone found none: {stat} = {value:.3} ≤ {threshold:.3})")
                }
            }
            Some(ts) if !ts.available => {
                findings.push(
                    Finding::new(
                        codes::BHV008,
                        Severity::Info,
                        format!(
                            "trigger-token search unavailable: {}",
                            ts.reason.as_deref().unwrap_or("no reason given")
                        ),
                    )
                    .at(loc.clone()),
                );
                message
            }
            _ => message,
        };
        if let (Some(max), Clean::Classes(c)) = (dec.clean_flip_rate_max, &scored.clean) {
            if c.top1_flip_rate > max {
                findings.push(
                    Finding::new(
                        codes::BHV002,
                        Severity::Medium,
                        format!(
                            "clean drift: the candidate changes the top-1 prediction on {:.1}% of unprobed inputs (limit {:.1}%)",
                            100.0 * c.top1_flip_rate,
                            100.0 * max
                        ),
                    )
                    .at(loc.clone()),
                );
            }
        }
        if let Some(c) = &dec.calibration {
            let mut stale = vec![];
            if c.baseline_sha256 != self.baseline.info().weights_sha256 {
                stale.push("baseline weights");
            }
            if c.inputs_sha256 != self.suite.inputs_sha256 {
                stale.push("inputs");
            }
            if c.probes_sha256 != self.probes_sha256 {
                stale.push("probes");
            }
            if !stale.is_empty() {
                findings.push(
                    Finding::new(
                        codes::BHV004,
                        Severity::Low,
                        format!(
                            "the threshold's calibration (FPR {} on {} benign candidates) was made with other {}; re-run `mlsign behave calibrate`",
                            c.fpr,
                            c.n_benign,
                            stale.join(", ")
                        ),
                    )
                    .at(Location::path(self.suite.path.display().to_string())),
                );
            }
        }
        if let Some(why) = dec.calibration.as_ref().and_then(|c| c.unsupported()) {
            findings.push(
                Finding::new(
                    codes::BHV005,
                    Severity::Low,
                    format!("the threshold's {why}; its false-positive rate on new benign models may be that high (re-run `mlsign behave calibrate` with more benign candidates)"),
                )
                .at(Location::path(self.suite.path.display().to_string())),
            );
        }
        if dec.calibration.is_none() {
            findings.push(
                Finding::new(
                    codes::BHV003,
                    Severity::Info,
                    format!(
                        "threshold {threshold:.3} in {} is not calibrated: run `mlsign behave calibrate` over known-benign candidates to state a false-positive rate",
                        self.suite.path.display()
                    ),
                )
                .at(Location::path(self.suite.path.display().to_string())),
            );
        }
        if let Some(ts) = &token_search {
            findings.extend(ts.calibration_findings(
                &self.suite.path,
                &self.baseline.info().weights_sha256,
                &self.suite.inputs_sha256,
            ));
        }
        Ok(BehaveReport {
            schema: SCHEMA,
            verdict: if flagged {
                "flagged"
            } else {
                "no-divergence-found"
            },
            message,
            suite: self.suite_ref(),
            baseline: self.baseline.info().clone(),
            candidate: model.info().clone(),
            clean: scored.clean,
            decision: DecisionOut {
                statistic: stat.into(),
                value,
                threshold,
                flagged: probe_flagged,
                calibration: dec.calibration.clone(),
            },
            companions: scored.companions,
            top_candidates: scored.top,
            synthesis,
            token_search,
            findings,
            timing: Timing {
                forward_s: fwd,
                total_s: t_start.elapsed().as_secs_f64(),
                baseline_forward_s: self.base_forward_s,
            },
        })
    }

    /// Runs the candidate over the clean inputs (`probed` false) or every probe and hands each
    /// output row to `row(r, values)`, r = probe × n + input as in the baseline cache.
    fn candidate_rows(
        &self,
        model: &Model,
        probed: bool,
        progress: Progress,
        fwd: &mut f64,
        mut row: impl FnMut(usize, &[f32]),
    ) -> Result<()> {
        let width = self.cache.width();
        let probes = probed.then_some(self.probes.as_slice());
        stream(
            model,
            "the candidate",
            &self.suite,
            probes,
            &self.device,
            progress,
            fwd,
            |s, p| {
                for (j, values) in p.chunks_exact(width).enumerate() {
                    row(s + j, values);
                }
                Ok(())
            },
        )
    }

    fn score_classes(&self, model: &Model, progress: Progress, fwd: &mut f64) -> Result<Scored> {
        let Cache::Classes {
            classes: k,
            clean: base_clean,
            clean_pred,
            probed_pred,
            probed,
        } = &self.cache
        else {
            unreachable!("classification cache")
        };
        let (n, k) = (self.suite.n, *k);
        let mut cand_clean = vec![0f32; n * k];
        self.candidate_rows(model, false, progress, fwd, |r, row| {
            cand_clean[r * k..(r + 1) * k].copy_from_slice(row);
        })?;
        let clean = stats::clean_drift(base_clean, &cand_clean, k, self.suite.labels.as_deref());
        let np = self.probes.len();
        let mut cand_pred = vec![0u32; np * n];
        let mut js_sum = vec![0f64; np];
        self.candidate_rows(model, true, progress, fwd, |r, row| {
            cand_pred[r] = stats::argmax(row);
            js_sum[r / n] += stats::js(&probed[r * k..(r + 1) * k], row);
        })?;
        let min_support = self.suite.file.decision.min_support;
        let mut cells: Vec<CellScore> = Vec::new();
        for p in 0..np {
            cells.extend(stats::probe_cells(
                p,
                clean_pred,
                &probed_pred[p * n..(p + 1) * n],
                &cand_pred[p * n..(p + 1) * n],
                k,
                min_support,
            ));
        }
        if cells.is_empty() {
            return Err(BehaveError::suite(
                &self.suite.path,
                format!("no source class has ≥ {min_support} inputs (decision.min_support); add inputs or lower min_support"),
            ));
        }
        let (js_arg, js_max) = js_sum
            .iter()
            .enumerate()
            .map(|(i, s)| (i, s / n as f64 - clean.js_mean))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((0, 0.0));
        let pooled_max = cells
            .iter()
            .map(|c| c.pooled_excess)
            .fold(f64::MIN, f64::max);
        let (best, focused, competing) =
            stats::focused_statistic(&cells).expect("cells is not empty");
        let (best_target, best_probe) = (cells[best].target, cells[best].probe);
        let median_max = cells
            .iter()
            .map(|c| c.median_excess)
            .fold(f64::MIN, f64::max);
        let focused_stat = self.suite.file.decision.stat == Statistic::SrcclassFocusedExcess;
        if focused_stat {
            // The verdict's cell first, then by focused excess.
            cells.sort_by(|a, b| {
                let key = |c: &CellScore| (c.target, c.probe) == (best_target, best_probe);
                key(b)
                    .cmp(&key(a))
                    .then(b.focused_excess.total_cmp(&a.focused_excess))
                    .then(b.median_excess.total_cmp(&a.median_excess))
            });
        } else {
            cells.sort_by(|a, b| {
                b.median_excess
                    .total_cmp(&a.median_excess)
                    .then(b.pooled_excess.total_cmp(&a.pooled_excess))
            });
        }
        let labels = model.info().labels.as_deref();
        let mut seen = std::collections::HashSet::new();
        Ok(Scored {
            value: if focused_stat { focused } else { median_max },
            clean: Clean::Classes(clean),
            companions: Some(Companions {
                pooled_excess_max: pooled_max,
                probe_js_excess_max: js_max,
                probe_js_excess_argmax: self
                    .probes
                    .get(js_arg)
                    .map(|p| p.label.clone())
                    .unwrap_or_default(),
                srcclass_median_excess: Some(median_max),
                srcclass_focused_excess: Some(focused),
                competing_target_excess: Some(competing),
            }),
            // The best target per probe: several probes pointing at one class is the signal.
            // Only cells where the candidate does more than the baseline are trigger candidates.
            top: cells
                .iter()
                .filter(|c| c.median_excess > 0.0)
                .filter(|c| seen.insert(c.probe))
                .take(self.suite.file.decision.report_top)
                .map(|c| TriggerCandidate::new(c, &self.probes[c.probe].label, labels))
                .collect(),
        })
    }

    fn score_text(&self, model: &Model, progress: Progress, fwd: &mut f64) -> Result<Scored> {
        let Cache::Embedding {
            dim,
            clean: base_clean,
            probed,
        } = &self.cache
        else {
            unreachable!("embedding cache")
        };
        let (n, h) = (self.suite.n, *dim);
        let mut d_clean = vec![0f64; n];
        self.candidate_rows(model, false, progress, fwd, |r, row| {
            d_clean[r] = stats::cos_distance(&base_clean[r * h..(r + 1) * h], row);
        })?;
        let clean = stats::embed_drift(&d_clean);
        let np = self.probes.len();
        let mut d_probe = vec![0f64; np * n];
        self.candidate_rows(model, true, progress, fwd, |r, row| {
            d_probe[r] = stats::cos_distance(&probed[r * h..(r + 1) * h], row);
        })?;
        let mut zs: Vec<stats::ProbeZ> = (0..np)
            .map(|p| {
                let d = &d_probe[p * n..(p + 1) * n];
                stats::probe_z(p, d, &clean).with_excess(d, &d_clean)
            })
            .collect();
        let value = rank_probes(&mut zs, &self.suite.file.decision);
        Ok(Scored {
            value,
            clean: Clean::Embedding(clean),
            companions: None,
            top: zs
                .iter()
                .take(self.suite.file.decision.report_top)
                .map(|z| TriggerCandidate::embedding(z, &self.probes[z.probe].label))
                .collect(),
        })
    }

    /// Causal LMs: JS divergence between next-token distributions, robust z per probe against
    /// the clean prompts (same rule as embeddings), and per probe the token whose probability the
    /// candidate raises most over the baseline (the trigger's likely target).
    fn score_lm(&self, model: &Model, progress: Progress, fwd: &mut f64) -> Result<Scored> {
        let Cache::Embedding {
            dim,
            clean: base_clean,
            probed,
        } = &self.cache
        else {
            unreachable!("distribution cache")
        };
        let (n, v) = (self.suite.n, *dim);
        // Rows hold the distributions at the last `k` positions of each prompt; a prompt's
        // divergence is their mean JS, its top-1 flip is read at the last position.
        let k = self.suite.file.suite.lm_positions.max(1);
        let vocab = v / k;
        let js_rows = |b: &[f32], c: &[f32]| -> f64 {
            b.chunks_exact(vocab)
                .zip(c.chunks_exact(vocab))
                .map(|(x, y)| stats::js(x, y))
                .sum::<f64>()
                / k as f64
        };
        let mut d_clean = vec![0f64; n];
        let mut flips = 0usize;
        self.candidate_rows(model, false, progress, fwd, |r, row| {
            let b = &base_clean[r * v..(r + 1) * v];
            d_clean[r] = js_rows(b, row);
            flips +=
                usize::from(stats::argmax(&b[v - vocab..]) != stats::argmax(&row[v - vocab..]));
        })?;
        let clean = stats::lm_drift(&d_clean, flips);
        let np = self.probes.len();
        let mut d_probe = vec![0f64; np * n];
        // Per probe, the sum over prompts of candidate minus baseline probability per token
        // (and position).
        let mut rise = vec![0f32; np * v];
        self.candidate_rows(model, true, progress, fwd, |r, row| {
            let b = &probed[r * v..(r + 1) * v];
            d_probe[r] = js_rows(b, row);
            let acc = &mut rise[(r / n) * v..(r / n + 1) * v];
            for ((a, c), b) in acc.iter_mut().zip(row).zip(b) {
                *a += c - b;
            }
        })?;
        let mut zs: Vec<stats::ProbeZ> = (0..np)
            .map(|p| {
                let d = &d_probe[p * n..(p + 1) * n];
                stats::probe_z_with(p, d, clean.js_median, clean.js_mad, clean.js_p99)
                    .with_excess(d, &d_clean)
            })
            .collect();
        let value = rank_probes(&mut zs, &self.suite.file.decision);
        let top = zs
            .iter()
            .take(self.suite.file.decision.report_top)
            .map(|z| {
                let acc = &rise[z.probe * v..(z.probe + 1) * v];
                // Index into the k·V row: the token (and the position where it rises most).
                let at = stats::argmax(acc);
                let tok = at % vocab as u32;
                let base_mean = (0..n)
                    .map(|i| probed[(z.probe * n + i) * v + at as usize] as f64)
                    .sum::<f64>()
                    / n as f64;
                let inc = acc[at as usize] as f64 / n as f64;
                TriggerCandidate {
                    probe: self.probes[z.probe].label.clone(),
                    probe_index: z.probe,
                    detail: CandidateDetail::Lm {
                        median_js: z.median_distance,
                        z: z.z,
                        consistency: z.consistency,
                        excess: z.excess,
                        raised: z.raised,
                        rising_token: self
                            .baseline
                            .output_name(tok)
                            .unwrap_or_else(|| format!("<id {tok}>")),
                        rising_token_id: tok,
                        rising_mean_increase: inc,
                        rising_baseline_prob: base_mean,
                        rising_candidate_prob: base_mean + inc,
                    },
                }
            })
            .collect();
        Ok(Scored {
            value,
            clean: Clean::Lm(clean),
            companions: None,
            top,
        })
    }

    /// The baseline's share of the forward time (computed once, in [`Prepared::new`]).
    pub fn baseline_forward_s(&self) -> f64 {
        self.base_forward_s
    }
}

/// The verdict statistic of an embedding or LM suite, and the probes sorted for the report.
/// Excess statistics: the largest paired excess over all probes (no consistency gate: the
/// median over inputs already asks half of them to move), probes by excess. Legacy z
/// statistics: the largest z among probes that pass the consistency condition, consistent
/// probes first, by z.
fn rank_probes(zs: &mut [stats::ProbeZ], dec: &crate::behave::suite::Decision) -> f64 {
    use crate::behave::suite::Statistic;
    if matches!(
        dec.stat,
        Statistic::ProbeJsExcess | Statistic::ProbeCosExcess
    ) {
        zs.sort_by(|a, b| b.excess.total_cmp(&a.excess).then(b.z.total_cmp(&a.z)));
        return zs.first().map_or(0.0, |z| z.excess);
    }
    let consistency = dec.consistency;
    let value = zs
        .iter()
        .filter(|z| z.consistency >= consistency)
        .map(|z| z.z)
        .fold(0.0, f64::max);
    zs.sort_by(|a, b| {
        (b.consistency >= consistency)
            .cmp(&(a.consistency >= consistency))
            .then(b.z.total_cmp(&a.z))
    });
    value
}

/// One baseline, one candidate, one suite.
pub fn run(
    baseline: &Path,
    candidate: &Path,
    suite: &Path,
    device: Device,
) -> Result<BehaveReport> {
    let none: Progress = &|_, _, _| {};
    Prepared::new(suite, baseline, device, none)?.score(candidate, none)
}
