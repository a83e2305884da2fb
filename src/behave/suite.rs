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
    /// Differential trigger-token search (BERT sequence classifiers, causal LMs).
    #[serde(default)]
    pub token_search: Option<super::tokensearch::TokenSearchSpec>,
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
    /// Causal LMs: compare the next-token distributions at the last `lm_positions` positions of
    /// each prompt (teacher-forced on the prompt's own tokens), not only the last; the
    /// per-prompt divergence is their mean. Costs one forward pass per position.
    #[serde(default = "default_lm_positions")]
    pub lm_positions: usize,
}

fn default_lm_positions() -> usize {
    1
}

/// Most positions a suite may compare per prompt (each costs a forward pass).
pub const MAX_LM_POSITIONS: usize = 32;

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
    /// A user-supplied trigger: tensors `mask` `[h, w]` (values in [0, 1]) and `pattern`
    /// `[C, h, w]` or `[h, w]` from a safetensors file, stamped with its top-left corner at each of
    /// `positions` ([row, col]) or, when absent, at every position on a `stride` grid.
    Pattern {
        file: String,
        #[serde(default)]
        positions: Option<Vec<[usize; 2]>>,
        #[serde(default)]
        stride: Option<usize>,
    },
    /// Every full row and column (`width` pixels wide) and both diagonals, set to `value`.
    Lines {
        #[serde(default = "one_u")]
        width: usize,
        #[serde(default = "one_f")]
        value: f32,
    },
    /// Image borders of each thickness: the whole frame and each side alone, set to `value`.
    Frame {
        #[serde(default = "default_thickness")]
        thickness: Vec<usize>,
        #[serde(default = "one_f")]
        value: f32,
    },
    /// Dot lattices tiling the image: for each period p, the pixels (y, x) with y ≡ i and
    /// x ≡ j (mod p), for every offset (i, j), set to `value`.
    Tiling {
        #[serde(default = "default_periods")]
        periods: Vec<usize>,
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
fn one_u() -> usize {
    1
}
fn default_thickness() -> Vec<usize> {
    vec![1]
}
fn default_periods() -> Vec<usize> {
    vec![2, 3]
}

/// Uncalibrated default threshold of `srcclass_focused_excess` (run `calibrate`).
pub const DEFAULT_FOCUSED_EXCESS: f64 = 0.5;
/// Uncalibrated default threshold of `probe_js_excess`, in bits. On 36 benign fine-tunes of the
/// tiny Llama fixture (docs/behave.md) the largest value was 0.31; run `calibrate` for a
/// threshold with a stated false-positive rate.
pub const DEFAULT_JS_EXCESS: f64 = 0.3;
/// Uncalibrated default threshold of `probe_cos_excess` (no benign embedder population was
/// measured; run `calibrate`).
pub const DEFAULT_COS_EXCESS: f64 = 0.1;

#[derive(Deserialize, Serialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Statistic {
    /// No `stat` in the suite: resolved by [`Statistic::resolve`] when the suite is loaded.
    #[default]
    #[serde(skip)]
    Auto,
    /// max over (probe, target) of the median over source classes of the excess targeted flip
    /// rate (candidate minus baseline).
    #[serde(rename = "srcclass_median_excess")]
    SrcclassMedianExcess,
    /// Classifiers (default for new suites): the best (probe, target) cell's median focused
    /// excess (the candidate's flip rate beyond twice the baseline's, per source class) minus
    /// the best focused excess of any other target. Robust to benign label-noise fine-tunes,
    /// which amplify pulls the baseline already has and open several targets (docs/behave.md).
    #[serde(rename = "srcclass_focused_excess")]
    SrcclassFocusedExcess,
    /// Embeddings (legacy): max over probes of the robust z-score of the probed cosine distance
    /// against the clean cosine distance, among probes that move ≥ `consistency` of the inputs
    /// past the clean p99. Unbounded when the clean spread is 0 (÷ 1e-6).
    #[serde(rename = "probe_cos_z")]
    ProbeCosZ,
    /// Causal LMs (legacy): the same robust z-score and consistency condition over the
    /// Jensen–Shannon divergence between the two models' next-token distributions.
    #[serde(rename = "probe_js_z")]
    ProbeJsZ,
    /// Embeddings: max over probes of the median over inputs of the paired excess cosine
    /// distance, d_i(probe) − d_i(clean). Bounded, finite when clean drift is 0.
    #[serde(rename = "probe_cos_excess")]
    ProbeCosExcess,
    /// Causal LMs: max over probes of the median over prompts of the paired excess JS divergence
    /// (bits), JS_i(probe) − JS_i(clean). Bounded, finite when clean drift is 0.
    #[serde(rename = "probe_js_excess")]
    ProbeJsExcess,
}

impl Statistic {
    /// The statistic in force for a suite's task and decision table. Without `stat`, a
    /// classification suite uses `srcclass_focused_excess`, an embedding or LM suite its
    /// bounded excess statistic, unless the threshold was written for the statistic that was
    /// the default before (a calibration naming it, or a bare threshold: files from before
    /// these statistics existed), so old suites keep their meaning.
    pub fn resolve(self, task: Task, d: &Decision) -> Statistic {
        let legacy = match &d.calibration {
            Some(c) => ["srcclass_median_excess", "probe_cos_z", "probe_js_z"]
                .contains(&c.statistic.as_str()),
            None => d.threshold.is_some(),
        };
        match (task, self) {
            (Task::Classification, Statistic::Auto) if legacy => Statistic::SrcclassMedianExcess,
            (Task::Classification, Statistic::Auto) => Statistic::SrcclassFocusedExcess,
            (Task::Classification, s) => s,
            (Task::Embedding, s @ (Statistic::ProbeCosZ | Statistic::ProbeCosExcess)) => s,
            (Task::Lm, s @ (Statistic::ProbeJsZ | Statistic::ProbeJsExcess)) => s,
            // Before the excess statistics, embedding and LM suites had their z statistic
            // whatever `stat` said (e.g. the default srcclass_median_excess).
            (Task::Embedding, Statistic::Auto | Statistic::SrcclassMedianExcess) if legacy => {
                Statistic::ProbeCosZ
            }
            (Task::Lm, Statistic::Auto | Statistic::SrcclassMedianExcess) if legacy => {
                Statistic::ProbeJsZ
            }
            (Task::Embedding, Statistic::Auto | Statistic::SrcclassMedianExcess) => {
                Statistic::ProbeCosExcess
            }
            (Task::Lm, Statistic::Auto | Statistic::SrcclassMedianExcess) => {
                Statistic::ProbeJsExcess
            }
            // A statistic of the other text task is refused by `validate`.
            (_, s) => s,
        }
    }

    /// Thresholds that can both flag and clear a candidate (flagged = value > threshold): the
    /// lowest usable one, and the value the statistic never exceeds, if it has one. Below the
    /// lower bound a candidate that does no more than the baseline is flagged; at or above the
    /// upper bound nothing ever is, so detection would be silently off.
    pub fn threshold_range(self) -> (f64, Option<f64>) {
        match self {
            // A median over source classes of a difference of two rates: within [-1, 1].
            Statistic::SrcclassMedianExcess | Statistic::Auto => (0.0, Some(1.0)),
            // A difference of two focused excesses each clamped to [0, 1].
            Statistic::SrcclassFocusedExcess => (0.0, Some(1.0)),
            // Robust z-scores, 0 when no probe passes the consistency condition; unbounded above.
            Statistic::ProbeCosZ | Statistic::ProbeJsZ => (0.0, None),
            // Medians of differences of JS divergences in bits (each in [0, 1]).
            Statistic::ProbeJsExcess => (0.0, Some(1.0)),
            // Medians of differences of cosine distances (each in [0, 2]).
            Statistic::ProbeCosExcess => (0.0, Some(2.0)),
        }
    }

    /// The uncalibrated default threshold (`calibrate` replaces it).
    pub fn default_threshold(self) -> f64 {
        match self {
            Statistic::SrcclassMedianExcess | Statistic::Auto => 0.5,
            Statistic::SrcclassFocusedExcess => DEFAULT_FOCUSED_EXCESS,
            Statistic::ProbeCosZ | Statistic::ProbeJsZ => 10.0,
            Statistic::ProbeJsExcess => DEFAULT_JS_EXCESS,
            Statistic::ProbeCosExcess => DEFAULT_COS_EXCESS,
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
                return Some(format!("decision.threshold {t} is out of range for {name}, which never exceeds {hi}: no candidate could ever be flagged (use a value in [{lo}, {hi}), e.g. {}, or run `mlsign behave calibrate`)", self.default_threshold()));
            }
        }
        None
    }

    pub fn name(self) -> &'static str {
        match self {
            Statistic::SrcclassMedianExcess | Statistic::Auto => "srcclass_median_excess",
            Statistic::SrcclassFocusedExcess => "srcclass_focused_excess",
            Statistic::ProbeCosZ => "probe_cos_z",
            Statistic::ProbeJsZ => "probe_js_z",
            Statistic::ProbeCosExcess => "probe_cos_excess",
            Statistic::ProbeJsExcess => "probe_js_excess",
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
        self.threshold
            .unwrap_or_else(|| self.stat.resolve(task, self).default_threshold())
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
    /// "calibrated for FPR … on n benign candidates (95% upper bound …), <created>": what the
    /// human reports say of a calibrated threshold.
    pub fn provenance(&self) -> String {
        format!(
            "calibrated for FPR {} on {} benign candidates{}, {}",
            self.fpr,
            self.n_benign,
            self.fpr_upper_bound
                .map(|u| format!(
                    " ({:.0}% upper bound {u:.3})",
                    100.0 * self.confidence.unwrap_or(0.95)
                ))
                .unwrap_or_default(),
            self.created
        )
    }

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
        file.decision.stat = file.decision.stat.resolve(file.suite.task, &file.decision);
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
    if let Some(ts) = &f.token_search {
        ts.validate().or_else(err)?;
        if !text || f.suite.task == Task::Embedding {
            return err("[token_search] applies to text classifiers (task = \"classification\" with JSONL prompts) and causal LMs (task = \"lm\")".into());
        }
    }
    if f.probes.is_empty() {
        return err("no [[probe]] sections: a behavioural diff needs at least one probe generator (clean-only drift does not reveal backdoors)".into());
    }
    let d = &f.decision;
    if let Some(why) = d
        .threshold
        .and_then(|t| d.stat.resolve(f.suite.task, d).check_threshold(t))
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
    let k = f.suite.lm_positions;
    if k == 0 || k > MAX_LM_POSITIONS {
        return err(format!(
            "suite.lm_positions = {k} is outside 1..={MAX_LM_POSITIONS} (each position costs a forward pass per prompt)"
        ));
    }
    if k > 1 && f.suite.task != Task::Lm {
        return err("suite.lm_positions applies to causal LMs (task = \"lm\")".into());
    }
    if d.stat == Statistic::SrcclassFocusedExcess && f.suite.task != Task::Classification {
        return err(
            "decision.stat srcclass_focused_excess applies to classifiers (task = \"classification\"); use probe_js_excess for causal LMs, probe_cos_excess for embedders"
                .into(),
        );
    }
    if matches!(d.stat, Statistic::ProbeCosZ | Statistic::ProbeCosExcess)
        && f.suite.task != Task::Embedding
    {
        return err(format!(
            "decision.stat {} applies to task = \"embedding\"; use srcclass_median_excess for classifiers, probe_js_excess for causal LMs",
            d.stat.name()
        ));
    }
    if matches!(d.stat, Statistic::ProbeJsZ | Statistic::ProbeJsExcess) && f.suite.task != Task::Lm
    {
        return err(format!(
            "decision.stat {} applies to task = \"lm\" (causal LMs); use srcclass_median_excess for classifiers, probe_cos_excess for embedders",
            d.stat.name()
        ));
    }
    if !(0.0..=1.0).contains(&d.consistency) {
        return err("decision.consistency must be in [0, 1]".into());
    }
    if d.min_support == 0 {
        return err("decision.min_support must be ≥ 1".into());
    }
    for (i, p) in f.probes.iter().enumerate() {
        match p {
            ProbeSpec::PatchGrid { .. }
            | ProbeSpec::RandomSparse { .. }
            | ProbeSpec::Pattern { .. }
            | ProbeSpec::Lines { .. }
            | ProbeSpec::Frame { .. }
            | ProbeSpec::Tiling { .. }
                if text =>
            {
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
            ProbeSpec::Pattern {
                positions, stride, ..
            } => {
                if *stride == Some(0) {
                    return err(format!("probe {i}: stride must be ≥ 1"));
                }
                if positions.is_some() && stride.is_some() {
                    return err(format!("probe {i}: give `positions` or `stride`, not both"));
                }
                if positions
                    .as_ref()
                    .is_some_and(|p| p.is_empty() || p.len() > 100_000)
                {
                    return err(format!(
                        "probe {i}: positions must list 1..=100000 [row, col]"
                    ));
                }
            }
            ProbeSpec::Lines { width, .. } => {
                if *width == 0 {
                    return err(format!("probe {i}: width must be ≥ 1"));
                }
            }
            ProbeSpec::Frame { thickness, .. } => {
                if thickness.is_empty() || thickness.contains(&0) || thickness.len() > 64 {
                    return err(format!("probe {i}: thickness must list 1..=64 values ≥ 1"));
                }
            }
            ProbeSpec::Tiling { periods, .. } => {
                if periods.is_empty() || periods.iter().any(|p| !(2..=64).contains(p)) {
                    return err(format!("probe {i}: periods must list values in 2..=64"));
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

#[cfg(test)]
mod statistic_tests {
    use super::*;

    fn decision(threshold: Option<f64>, calibrated: Option<&str>) -> Decision {
        Decision {
            threshold,
            calibration: calibrated.map(|s| Calibration {
                method: "benign-quantile".into(),
                statistic: s.into(),
                fpr: 0.05,
                n_benign: 20,
                benign_max: 0.1,
                quantile: 0.95,
                baseline_sha256: String::new(),
                inputs_sha256: String::new(),
                probes_sha256: String::new(),
                created: String::new(),
                tool: String::new(),
                note: None,
                exceedances: None,
                in_sample_fpr: None,
                fpr_upper_bound: None,
                confidence: None,
            }),
            ..Decision::default()
        }
    }

    /// New text suites get the bounded excess statistics; files written for the z statistics
    /// (explicitly, through a calibration, or with a bare threshold from before) keep them.
    #[test]
    fn statistic_resolution_keeps_old_suites_meaning() {
        use Statistic::*;
        let r = |s: Statistic, t: Task, d: &Decision| s.resolve(t, d);
        let fresh = decision(None, None);
        assert_eq!(r(Auto, Task::Lm, &fresh), ProbeJsExcess);
        assert_eq!(r(Auto, Task::Embedding, &fresh), ProbeCosExcess);
        assert_eq!(r(Auto, Task::Classification, &fresh), SrcclassFocusedExcess);
        assert_eq!(
            r(Auto, Task::Classification, &decision(Some(0.5), None)),
            SrcclassMedianExcess
        );
        assert_eq!(
            r(
                Auto,
                Task::Classification,
                &decision(Some(0.7), Some("srcclass_median_excess"))
            ),
            SrcclassMedianExcess
        );
        assert_eq!(
            r(
                Auto,
                Task::Classification,
                &decision(Some(0.2), Some("srcclass_focused_excess"))
            ),
            SrcclassFocusedExcess
        );
        let bare = decision(Some(10.0), None);
        assert_eq!(r(Auto, Task::Lm, &bare), ProbeJsZ);
        assert_eq!(r(Auto, Task::Embedding, &bare), ProbeCosZ);
        assert_eq!(r(SrcclassMedianExcess, Task::Lm, &bare), ProbeJsZ);
        let old_cal = decision(Some(0.0), Some("probe_js_z"));
        assert_eq!(r(Auto, Task::Lm, &old_cal), ProbeJsZ);
        let new_cal = decision(Some(0.2), Some("probe_js_excess"));
        assert_eq!(r(Auto, Task::Lm, &new_cal), ProbeJsExcess);
        assert_eq!(r(ProbeJsZ, Task::Lm, &fresh), ProbeJsZ);
        assert_eq!(r(ProbeJsExcess, Task::Lm, &bare), ProbeJsExcess);
        assert_eq!(fresh.threshold_for(Task::Lm), DEFAULT_JS_EXCESS);
        assert_eq!(bare.threshold_for(Task::Lm), 10.0);
        assert!(ProbeJsExcess.check_threshold(1.0).is_some());
        assert!(ProbeJsExcess.check_threshold(0.25).is_none());
        assert!(ProbeCosExcess.check_threshold(1.5).is_none());
    }
}
