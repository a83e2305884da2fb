//! The suite file (TOML): which inputs, which probes, which statistic and threshold. Paths in it
//! are relative to the suite file. See docs/behave.md for the full reference.

use super::error::{BehaveError, Result};
use super::tensors::{self, read_bounded};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Deserialize, Serialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct SuiteFile {
    pub suite: SuiteSection,
    #[serde(default, rename = "probe")]
    pub probes: Vec<ProbeSpec>,
    #[serde(default)]
    pub decision: Decision,
    /// Differential trigger synthesis (classifiers in the mlsign network spec).
    #[serde(default)]
    pub synthesis: Option<super::synth::SynthSpec>,
}

#[derive(Deserialize, Serialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct SuiteSection {
    pub name: String,
    #[serde(default)]
    pub task: Task,
    /// safetensors file with the inputs, relative to the suite file.
    pub inputs: String,
    /// Tensor holding the inputs `[N, ...input_shape]`.
    #[serde(default = "default_x")]
    pub input_tensor: String,
    /// Optional integer labels `[N]` (only to report accuracy).
    #[serde(default = "default_y")]
    pub label_tensor: String,
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    #[serde(default)]
    pub seed: u64,
    /// Spatial layout for image probes when the model takes flat inputs: [C, H, W] or [H, W].
    #[serde(default)]
    pub image_shape: Option<Vec<usize>>,
    /// ONNX graphs with several outputs: the name of the one holding `[batch, classes]` scores
    /// (ignored for single-output graphs).
    #[serde(default)]
    pub model_output: Option<String>,
}

fn default_x() -> String {
    "x".into()
}
fn default_y() -> String {
    "y".into()
}
fn default_batch() -> usize {
    256
}

#[derive(Deserialize, Serialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    /// Class scores from tensors (mlsign network spec); inputs in safetensors.
    #[default]
    Classification,
    /// Pooled text embeddings (BERT encoders); inputs are JSONL prompts `{"text": ...}`.
    Embedding,
    /// Next-token distributions of causal LMs; inputs are JSONL prompts.
    #[serde(rename = "lm", alias = "causal-lm")]
    Lm,
}

/// One probe generator.
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ProbeSpec {
    /// Every `size`×`size` square on a `stride` grid, set to `value`.
    PatchGrid {
        size: usize,
        #[serde(default)]
        stride: Option<usize>,
        #[serde(default = "one_f")]
        value: f32,
    },
    /// `count` random patterns of `pixels[0]..=pixels[1]` pixels set to `value`.
    RandomSparse {
        count: usize,
        pixels: [usize; 2],
        #[serde(default = "one_f")]
        value: f32,
    },
    /// x' = (1-alpha)·x + alpha·pattern, patterns from a file (tensor `pattern`,
    /// `[P, ...input_shape]` or `[...input_shape]`) or `random` uniform ones in [0, value].
    Blend {
        alpha: f32,
        #[serde(default)]
        pattern: Option<String>,
        #[serde(default)]
        random: Option<usize>,
        #[serde(default = "one_f")]
        value: f32,
    },
    /// Text: insert each candidate trigger (word, rare token, phrase) before or after every prompt.
    Tokens {
        tokens: Vec<String>,
        #[serde(default)]
        position: Position,
    },
    /// Text: `max` whole-word tokens drawn (seeded) from the baseline tokenizer's vocabulary, each
    /// inserted as a probe; `select = "rare"` draws from the later (rarer) half of the ids.
    TokenSweep {
        max: usize,
        #[serde(default)]
        select: Select,
        #[serde(default)]
        position: Position,
    },
}

#[derive(Deserialize, Serialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Position {
    #[default]
    Prefix,
    Suffix,
    /// Between two words, at a position drawn from the suite seed, the probe and the input.
    Random,
}

#[derive(Deserialize, Serialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Select {
    #[default]
    Rare,
    Any,
}

fn one_f() -> f32 {
    1.0
}

#[derive(Deserialize, Serialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Statistic {
    /// max over (probe, target) of the median over source classes of the excess targeted flip
    /// rate (candidate minus baseline).
    #[default]
    #[serde(rename = "srcclass_median_excess")]
    SrcclassMedianExcess,
    /// Embeddings: max over probes of the robust z-score of the probed cosine distance against the
    /// clean cosine distance, among probes that move ≥ `consistency` of the inputs past the clean p99.
    #[serde(rename = "probe_cos_z")]
    ProbeCosZ,
    /// Causal LMs: the same robust z-score and consistency condition over the Jensen–Shannon
    /// divergence between the two models' next-token distributions.
    #[serde(rename = "probe_js_z")]
    ProbeJsZ,
}

impl Statistic {
    /// The statistic in force for a task (embedding and LM suites have theirs fixed).
    pub fn for_task(self, task: Task) -> Statistic {
        match task {
            Task::Embedding => Statistic::ProbeCosZ,
            Task::Lm => Statistic::ProbeJsZ,
            Task::Classification => self,
        }
    }

    /// Thresholds that can both flag and clear a candidate (flagged = value > threshold): the
    /// lowest usable one, and the value the statistic never exceeds, if it has one. Below the
    /// lower bound a candidate that does no more than the baseline is flagged; at or above the
    /// upper bound nothing ever is, so detection would be silently off.
    pub fn threshold_range(self) -> (f64, Option<f64>) {
        match self {
            // A median over source classes of a difference of two rates: within [-1, 1].
            Statistic::SrcclassMedianExcess => (0.0, Some(1.0)),
            // Robust z-scores, 0 when no probe passes the consistency condition; unbounded above.
            Statistic::ProbeCosZ | Statistic::ProbeJsZ => (0.0, None),
        }
    }

    /// Why `t` is not a usable threshold for this statistic, if it is not.
    pub fn check_threshold(self, t: f64) -> Option<String> {
        let (lo, hi) = self.threshold_range();
        let name = self.name();
        if !t.is_finite() {
            return Some("decision.threshold must be a finite number".into());
        }
        if t < lo {
            return Some(format!("decision.threshold {t} is below {lo}, the least value of {name} that means any divergence: every candidate, even an identical copy of the baseline, would be flagged"));
        }
        if let Some(hi) = hi {
            if t >= hi {
                return Some(format!("decision.threshold {t} is out of range for {name}, which never exceeds {hi}: no candidate could ever be flagged (use a value in [{lo}, {hi}), e.g. 0.5, or run `mlsign behave calibrate`)"));
            }
        }
        None
    }

    pub fn name(self) -> &'static str {
        match self {
            Statistic::SrcclassMedianExcess => "srcclass_median_excess",
            Statistic::ProbeCosZ => "probe_cos_z",
            Statistic::ProbeJsZ => "probe_js_z",
        }
    }
}

#[derive(Deserialize, Serialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    #[serde(default)]
    pub stat: Statistic,
    /// Flag when the statistic is above this value [default: 0.5 for classification, 10 for
    /// embeddings; uncalibrated either way].
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Minimum inputs per source class for it to count in the median.
    #[serde(default = "default_support")]
    pub min_support: usize,
    /// How many (probe, target) trigger candidates to list.
    #[serde(default = "default_top")]
    pub report_top: usize,
    /// Optional gate on clean drift (top-1 flip rate on unprobed inputs): a separate finding,
    /// never the backdoor verdict.
    #[serde(default)]
    pub clean_flip_rate_max: Option<f64>,
    /// Embeddings: share of inputs a probe must push past the clean p99 distance to count.
    #[serde(default = "default_consistency")]
    pub consistency: f64,
    /// Written by `mlsign behave calibrate`.
    #[serde(default)]
    pub calibration: Option<Calibration>,
}

fn default_support() -> usize {
    30
}
fn default_top() -> usize {
    10
}
fn default_consistency() -> f64 {
    0.5
}

impl Decision {
    /// The threshold in force for a task.
    pub fn threshold_for(&self, task: Task) -> f64 {
        self.threshold.unwrap_or(match task {
            Task::Classification => 0.5,
            Task::Embedding | Task::Lm => 10.0,
        })
    }
}

impl Default for Decision {
    fn default() -> Self {
        Decision {
            stat: Statistic::default(),
            threshold: None,
            min_support: default_support(),
            report_top: default_top(),
            clean_flip_rate_max: None,
            consistency: default_consistency(),
            calibration: None,
        }
    }
}

/// Where a threshold came from.
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    pub method: String,
    pub statistic: String,
    /// Target false-positive rate on benign candidates.
    pub fpr: f64,
    pub n_benign: usize,
    /// Largest benign statistic and the quantile used.
    pub benign_max: f64,
    pub quantile: f64,
    pub baseline_sha256: String,
    pub inputs_sha256: String,
    pub probes_sha256: String,
    pub created: String,
    pub tool: String,
    #[serde(default)]
    pub note: Option<String>,
    /// Benign candidates above the threshold (absent in calibrations made before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exceedances: Option<usize>,
    /// `exceedances / n_benign`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_sample_fpr: Option<f64>,
    /// Exact one-sided (Clopper–Pearson) upper confidence bound on the false-positive rate of
    /// the threshold on new benign candidates, at `confidence`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fpr_upper_bound: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
}

impl Calibration {
    /// Why this calibration cannot back its stated FPR, if it cannot: the upper confidence
    /// bound on the false-positive rate is above the FPR asked for.
    pub fn unsupported(&self) -> Option<String> {
        let ub = self.fpr_upper_bound?;
        let conf = self.confidence.unwrap_or(0.95);
        if ub <= self.fpr {
            return None;
        }
        let need = super::stats::min_benign_for_fpr(self.fpr, conf)
            .map(|n| format!("; a bound of {} needs at least {n} benign candidates with none above the threshold", self.fpr))
            .unwrap_or_default();
        Some(format!(
            "calibrated for FPR {} on {} benign candidates ({} above the threshold, in-sample {:.3}), but the exact {:.0}% upper confidence bound on its false-positive rate is {:.3}{need}",
            self.fpr,
            self.n_benign,
            self.exceedances.unwrap_or(0),
            self.in_sample_fpr.unwrap_or(0.0),
            100.0 * conf,
            ub
        ))
    }
}

/// A suite with its inputs in memory and the digests the report binds to.
pub struct Suite {
    pub path: PathBuf,
    pub file: SuiteFile,
    pub sha256: String,
    pub inputs_path: PathBuf,
    pub inputs_sha256: String,
    /// Inputs flattened per sample, row-major: `n × sample_len`.
    pub x: Vec<f32>,
    pub n: usize,
    pub sample_shape: Vec<usize>,
    pub labels: Option<Vec<u32>>,
    /// Prompts (JSONL inputs: task = embedding or lm, or text classification).
    pub texts: Vec<String>,
    /// Inputs are prompts rather than tensors.
    pub text: bool,
}

impl Suite {
    pub fn sample_len(&self) -> usize {
        self.sample_shape.iter().product()
    }

    /// Resolve a path written in the suite, relative to the suite's directory.
    pub fn resolve(&self, rel: &str) -> PathBuf {
        resolve(&self.path, rel)
    }

    pub fn load(path: &Path) -> Result<Suite> {
        let raw = read_bounded(path, 16 << 20)?;
        let text =
            std::str::from_utf8(&raw).map_err(|_| BehaveError::suite(path, "not UTF-8 text"))?;
        let mut file: SuiteFile =
            toml::from_str(text).map_err(|e| BehaveError::suite(path, e.to_string()))?;
        validate(path, &file)?;
        file.decision.stat = file.decision.stat.for_task(file.suite.task);
        let inputs_path = resolve(path, &file.suite.inputs);
        if !inputs_path.is_file() {
            return Err(BehaveError::suite(
                path,
                format!("inputs file {} does not exist", inputs_path.display()),
            ));
        }
        if text_inputs(&file) {
            let raw_in = read_bounded(&inputs_path, 256 << 20)?;
            let texts = parse_jsonl(&inputs_path, &raw_in)?;
            return Ok(Suite {
                path: path.to_path_buf(),
                sha256: tensors::sha256_hex(&raw),
                file,
                inputs_sha256: tensors::sha256_hex(&raw_in),
                inputs_path,
                x: vec![],
                n: texts.len(),
                sample_shape: vec![],
                labels: None,
                texts,
                text: true,
            });
        }
        let tf = tensors::load(&inputs_path)?;
        let x = tf.f32(&inputs_path, &file.suite.input_tensor)?;
        if x.rank() < 2 || x.dims()[0] == 0 {
            return Err(BehaveError::Shape {
                path: inputs_path.clone(),
                tensor: file.suite.input_tensor.clone(),
                found: x.dims().to_vec(),
                expected: "[N, ...input_shape] with N ≥ 1".into(),
            });
        }
        let n = x.dims()[0];
        let sample_shape = x.dims()[1..].to_vec();
        let labels = tf.labels(&inputs_path, &file.suite.label_tensor)?;
        if let Some(l) = &labels {
            if l.len() != n {
                return Err(BehaveError::format(
                    &inputs_path,
                    format!("{} labels for {n} inputs", l.len()),
                ));
            }
        }
        let x: Vec<f32> = x.flatten_all()?.to_vec1()?;
        Ok(Suite {
            path: path.to_path_buf(),
            sha256: tensors::sha256_hex(&raw),
            file,
            inputs_sha256: tf.sha256,
            inputs_path,
            x,
            n,
            sample_shape,
            labels,
            texts: vec![],
            text: false,
        })
    }
}

/// One `{"text": "..."}` object per line; blank lines are skipped.
fn parse_jsonl(path: &Path, raw: &[u8]) -> Result<Vec<String>> {
    let text = std::str::from_utf8(raw).map_err(|_| BehaveError::format(path, "not UTF-8 text"))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = crate::json::value_from_str(line)
            .map_err(|e| BehaveError::format(path, format!("line {}: {e}", i + 1)))?;
        let t = v.get("text").and_then(|t| t.as_str()).ok_or_else(|| {
            BehaveError::format(
                path,
                format!(
                    "line {}: expected an object with a string field \"text\"",
                    i + 1
                ),
            )
        })?;
        out.push(t.to_string());
    }
    if out.is_empty() {
        return Err(BehaveError::format(path, "no prompts"));
    }
    Ok(out)
}

pub fn resolve(suite_path: &Path, rel: &str) -> PathBuf {
    let base = suite_path.parent().unwrap_or(Path::new("."));
    base.join(rel)
}

/// Prompts (JSONL) rather than tensors: always for embedding and lm tasks; for classification
/// when `inputs` names a `.jsonl` file (text classifiers).
pub fn text_inputs(f: &SuiteFile) -> bool {
    f.suite.task != Task::Classification || f.suite.inputs.ends_with(".jsonl")
}

fn validate(path: &Path, f: &SuiteFile) -> Result<()> {
    let err = |m: String| Err(BehaveError::suite(path, m));
    let text = text_inputs(f);
    if f.suite.batch_size == 0 || f.suite.batch_size > 65_536 {
        return err("batch_size must be in 1..=65536".into());
    }
    if let Some(sy) = &f.synthesis {
        sy.validate().or_else(err)?;
        if f.suite.task != Task::Classification || text {
            return err("[synthesis] applies to classifiers over tensor inputs (task = \"classification\" with safetensors inputs)".into());
        }
    }
    if f.probes.is_empty() {
        return err("no [[probe]] sections: a behavioural diff needs at least one probe generator (clean-only drift does not reveal backdoors)".into());
    }
    let d = &f.decision;
    if let Some(why) = d
        .threshold
        .and_then(|t| d.stat.for_task(f.suite.task).check_threshold(t))
    {
        return err(why);
    }
    if d.report_top == 0 {
        return err(
            "decision.report_top must be ≥ 1 (a flagged verdict names its top trigger candidate)"
                .into(),
        );
    }
    if let Some(m) = d.clean_flip_rate_max {
        if !(0.0..1.0).contains(&m) {
            return err(format!("decision.clean_flip_rate_max {m} must be in [0, 1): the clean top-1 flip rate never exceeds 1, so the gate would be off"));
        }
    }
    if d.stat == Statistic::ProbeCosZ && f.suite.task != Task::Embedding {
        return err(
            "decision.stat probe_cos_z applies to task = \"embedding\"; use srcclass_median_excess"
                .into(),
        );
    }
    if d.stat == Statistic::ProbeJsZ && f.suite.task != Task::Lm {
        return err(
            "decision.stat probe_js_z applies to task = \"lm\" (causal LMs); use srcclass_median_excess for classifiers"
                .into(),
        );
    }
    if !(0.0..=1.0).contains(&d.consistency) {
        return err("decision.consistency must be in [0, 1]".into());
    }
    if d.min_support == 0 {
        return err("decision.min_support must be ≥ 1".into());
    }
    for (i, p) in f.probes.iter().enumerate() {
        match p {
            ProbeSpec::PatchGrid { .. } | ProbeSpec::RandomSparse { .. } if text => {
                return err(format!(
                    "probe {i}: image probes need tensor inputs; prompts take `tokens` or `token-sweep` probes"
                ));
            }
            ProbeSpec::PatchGrid { size, stride, .. } => {
                if *size == 0 || *stride == Some(0) {
                    return err(format!("probe {i}: size and stride must be ≥ 1"));
                }
            }
            ProbeSpec::RandomSparse { count, pixels, .. } => {
                if *count == 0 || pixels[0] == 0 || pixels[0] > pixels[1] {
                    return err(format!(
                        "probe {i}: need count ≥ 1 and 1 ≤ pixels[0] ≤ pixels[1]"
                    ));
                }
                if *count > 100_000 {
                    return err(format!("probe {i}: count {count} is over 100000"));
                }
            }
            ProbeSpec::TokenSweep { max, .. } => {
                if !text {
                    return err(format!(
                        "probe {i}: `token-sweep` probes need JSONL prompts (inputs = \"….jsonl\")"
                    ));
                }
                if *max == 0 || *max > 100_000 {
                    return err(format!("probe {i}: max must be in 1..=100000"));
                }
            }
            ProbeSpec::Tokens { tokens, .. } => {
                if !text {
                    return err(format!(
                        "probe {i}: `tokens` probes need JSONL prompts (inputs = \"….jsonl\")"
                    ));
                }
                if tokens.is_empty() || tokens.len() > 100_000 {
                    return err(format!("probe {i}: tokens must list 1..=100000 strings"));
                }
            }
            ProbeSpec::Blend {
                alpha,
                pattern,
                random,
                ..
            } => {
                if !(0.0..=1.0).contains(alpha) {
                    return err(format!("probe {i}: alpha must be in [0, 1]"));
                }
                if pattern.is_some() == random.is_some() {
                    return err(format!(
                        "probe {i}: a blend probe needs exactly one of `pattern` (file) or `random` (count)"
                    ));
                }
                if random.is_some_and(|r| r == 0 || r > 100_000) {
                    return err(format!("probe {i}: random must be in 1..=100000"));
                }
            }
        }
    }
    Ok(())
}
