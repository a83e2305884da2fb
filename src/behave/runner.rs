//! The runner: loads the suite and the baseline once, computes the baseline's outputs on every
//! clean and probed input once (cached), then scores any number of candidates against them in
//! batches. Batches span probe boundaries so small suites still fill `batch_size` rows.

use super::error::{BehaveError, Result};
use super::models::{check_compatible, Model};
use super::probes::{self, Probe, ProbeFamily};
use super::report::*;
use super::stats::{self, CellScore};
use super::suite::Suite;
use crate::report::{codes, Finding, Location, Severity};
use candle_core::{Device, Tensor};
use std::path::Path;
use std::time::Instant;

/// Progress callback: (stage, done, total) in input rows.
pub type Progress<'a> = &'a dyn Fn(&str, u64, u64);

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
    classes: usize,
    base_clean: Vec<f32>,
    base_clean_pred: Vec<u32>,
    /// Per probe, per input: baseline prediction and probabilities.
    base_probed_pred: Vec<u32>,
    base_probed: Vec<f32>,
    base_forward_s: f64,
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
        if let Some(bad) = probs.iter().position(|v| !v.is_finite()) {
            let row = start + bad / model.info().outputs;
            let place = match probes {
                Some(ps) => format!("input {} under probe `{}`", row % n, ps[row / n].label),
                None => format!("clean input {row}"),
            };
            return Err(BehaveError::NonFiniteOutput {
                model: who.into(),
                place,
            });
        }
        sink(start, &probs)?;
        progress(stage, end as u64, total as u64);
        start = end;
    }
    Ok(())
}

fn check_inputs(suite: &Suite, model: &Model, path: &Path) -> Result<()> {
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
        let (probes, families) = probes::generate(&suite)?;
        let probes_sha256 = probes::hash(&probes);
        let model = Model::load(baseline, &device)?;
        check_inputs(&suite, &model, baseline)?;
        let classes = model.info().outputs;
        let cache = probes.len() * suite.n * classes * 4;
        if cache > MAX_CACHE_BYTES {
            return Err(BehaveError::suite(
                suite_path,
                format!("{} probes × {} inputs × {classes} classes needs {} MiB of cached baseline outputs (limit {} MiB); use fewer probes or inputs", probes.len(), suite.n, cache >> 20, MAX_CACHE_BYTES >> 20),
            ));
        }
        let mut fwd = 0.0;
        let mut base_clean = vec![0f32; suite.n * classes];
        stream(
            &model,
            "the baseline",
            &suite,
            None,
            &device,
            progress,
            &mut fwd,
            |s, p| {
                base_clean[s * classes..s * classes + p.len()].copy_from_slice(p);
                Ok(())
            },
        )?;
        let mut base_probed = vec![0f32; cache / 4];
        stream(
            &model,
            "the baseline",
            &suite,
            Some(&probes),
            &device,
            progress,
            &mut fwd,
            |s, p| {
                base_probed[s * classes..s * classes + p.len()].copy_from_slice(p);
                Ok(())
            },
        )?;
        Ok(Prepared {
            base_clean_pred: stats::argmax_rows(&base_clean, classes),
            base_probed_pred: stats::argmax_rows(&base_probed, classes),
            suite,
            probes,
            families,
            probes_sha256,
            baseline: model,
            device,
            classes,
            base_clean,
            base_probed,
            base_forward_s: fwd,
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
        let model = Model::load(candidate, &self.device)?;
        check_compatible(self.baseline.info(), model.info())?;
        let (n, k) = (self.suite.n, self.classes);
        let mut fwd = 0.0;
        let mut cand_clean = vec![0f32; n * k];
        stream(
            &model,
            "the candidate",
            &self.suite,
            None,
            &self.device,
            progress,
            &mut fwd,
            |s, p| {
                cand_clean[s * k..s * k + p.len()].copy_from_slice(p);
                Ok(())
            },
        )?;
        let clean = stats::clean_drift(
            &self.base_clean,
            &cand_clean,
            k,
            self.suite.labels.as_deref(),
        );
        let np = self.probes.len();
        let mut cand_pred = vec![0u32; np * n];
        let mut js_sum = vec![0f64; np];
        stream(
            &model,
            "the candidate",
            &self.suite,
            Some(&self.probes),
            &self.device,
            progress,
            &mut fwd,
            |s, p| {
                for (j, row) in p.chunks_exact(k).enumerate() {
                    let r = s + j;
                    cand_pred[r] = stats::argmax(row);
                    js_sum[r / n] += stats::js(&self.base_probed[r * k..(r + 1) * k], row);
                }
                Ok(())
            },
        )?;

        let min_support = self.suite.file.decision.min_support;
        let mut cells: Vec<CellScore> = Vec::new();
        for p in 0..np {
            cells.extend(stats::probe_cells(
                p,
                &self.base_clean_pred,
                &self.base_probed_pred[p * n..(p + 1) * n],
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
        cells.sort_by(|a, b| {
            b.median_excess
                .total_cmp(&a.median_excess)
                .then(b.pooled_excess.total_cmp(&a.pooled_excess))
        });
        let value = cells[0].median_excess;
        let dec = &self.suite.file.decision;
        let flagged = value > dec.threshold;
        let labels = model.info().labels.as_deref();
        let top: Vec<TriggerCandidate> = cells
            .iter()
            .take(dec.report_top)
            .map(|c| TriggerCandidate::new(c, &self.probes[c.probe].label, labels))
            .collect();

        let mut findings = Vec::new();
        let loc = Location::path(candidate.display().to_string());
        let probes_p = self.probe_summary();
        let message = if flagged {
            let t = &top[0];
            findings.push(
                Finding::new(
                    codes::BHV001,
                    Severity::High,
                    format!(
                        "backdoor-like divergence: under probe `{}` the candidate sends a median {:.0}% of each source class to class {} beyond what the baseline does ({} = {:.3} > threshold {:.3})",
                        t.probe,
                        100.0 * t.median_excess,
                        t.target_class,
                        dec.stat.name(),
                        value,
                        dec.threshold
                    ),
                )
                .at(loc.clone()),
            );
            format!(
                "backdoor-like divergence found: {} = {:.3} exceeds {:.3}; top trigger candidate `{}` → class {}",
                dec.stat.name(),
                value,
                dec.threshold,
                t.probe,
                t.target_class
            )
        } else {
            format!(
                "no backdoor-like divergence found under probes {probes_p} ({} = {:.3} ≤ {:.3}); this does not rule out triggers outside these probes",
                dec.stat.name(),
                value,
                dec.threshold
            )
        };
        if let Some(max) = dec.clean_flip_rate_max {
            if clean.top1_flip_rate > max {
                findings.push(
                    Finding::new(
                        codes::BHV002,
                        Severity::Medium,
                        format!(
                            "clean drift: the candidate changes the top-1 prediction on {:.1}% of unprobed inputs (limit {:.1}%)",
                            100.0 * clean.top1_flip_rate,
                            100.0 * max
                        ),
                    )
                    .at(loc.clone()),
                );
            }
        }
        if dec.calibration.is_none() {
            findings.push(
                Finding::new(
                    codes::BHV003,
                    Severity::Info,
                    format!(
                        "threshold {:.3} in {} is not calibrated: run `mlsign behave calibrate` over known-benign candidates to state a false-positive rate",
                        dec.threshold,
                        self.suite.path.display()
                    ),
                )
                .at(Location::path(self.suite.path.display().to_string())),
            );
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
            clean,
            decision: DecisionOut {
                statistic: dec.stat.name().into(),
                value,
                threshold: dec.threshold,
                flagged,
                calibration: dec.calibration.clone(),
            },
            companions: Companions {
                pooled_excess_max: pooled_max,
                probe_js_excess_max: js_max,
                probe_js_excess_argmax: self
                    .probes
                    .get(js_arg)
                    .map(|p| p.label.clone())
                    .unwrap_or_default(),
            },
            top_candidates: top,
            findings,
            timing: Timing {
                forward_s: fwd + self.base_forward_s,
                total_s: t_start.elapsed().as_secs_f64(),
            },
        })
    }

    /// The baseline's share of the forward time (computed once, in [`Prepared::new`]).
    pub fn baseline_forward_s(&self) -> f64 {
        self.base_forward_s
    }
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
