//! The result of one behavioural diff, as rendered by every output format.

use super::models::ModelInfo;
use super::probes::ProbeFamily;
use super::stats::{CellScore, CleanDrift, EmbedDrift, LmDrift, ProbeZ};
use super::suite::Calibration;
use crate::report::Finding;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct SuiteRef {
    pub name: String,
    pub path: String,
    pub sha256: String,
    pub inputs: String,
    pub inputs_sha256: String,
    pub n_inputs: usize,
    pub probes_sha256: String,
    pub n_probes: usize,
    pub probe_families: Vec<ProbeFamily>,
    pub seed: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct DecisionOut {
    pub statistic: String,
    pub value: f64,
    pub threshold: f64,
    pub flagged: bool,
    /// Where the threshold came from; `null` when the suite's threshold was never calibrated.
    pub calibration: Option<Calibration>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TriggerCandidate {
    pub probe: String,
    pub probe_index: usize,
    #[serde(flatten)]
    pub detail: CandidateDetail,
}

#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum CandidateDetail {
    Class {
        target_class: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        target_label: Option<String>,
        median_excess: f64,
        /// Median over source classes of the flip rate beyond twice the baseline's.
        focused_excess: f64,
        pooled_excess: f64,
        candidate_rate: f64,
        baseline_rate: f64,
        source_classes: usize,
    },
    Embedding {
        median_distance: f64,
        z: f64,
        consistency: f64,
        /// Paired excess: median over inputs of d(probe) − d(clean) (`probe_cos_excess`).
        excess: f64,
        /// Share of inputs whose probed distance exceeds their own clean distance.
        raised: f64,
    },
    /// Causal LMs: the probe's divergence and the token whose next-token probability the
    /// candidate raises most over the baseline under that probe (averaged over prompts).
    Lm {
        median_js: f64,
        z: f64,
        consistency: f64,
        /// Paired excess: median over prompts of JS(probe) − JS(clean), bits (`probe_js_excess`).
        excess: f64,
        /// Share of prompts whose probed JS exceeds their own clean JS.
        raised: f64,
        rising_token: String,
        rising_token_id: u32,
        rising_mean_increase: f64,
        rising_baseline_prob: f64,
        rising_candidate_prob: f64,
    },
}

impl TriggerCandidate {
    pub fn new(cell: &CellScore, label: &str, labels: Option<&[String]>) -> Self {
        TriggerCandidate {
            probe: label.into(),
            probe_index: cell.probe,
            detail: CandidateDetail::Class {
                target_class: cell.target,
                target_label: labels.and_then(|l| l.get(cell.target as usize).cloned()),
                median_excess: cell.median_excess,
                focused_excess: cell.focused_excess,
                pooled_excess: cell.pooled_excess,
                candidate_rate: cell.candidate_rate,
                baseline_rate: cell.baseline_rate,
                source_classes: cell.source_classes,
            },
        }
    }

    pub fn embedding(p: &ProbeZ, label: &str) -> Self {
        TriggerCandidate {
            probe: label.into(),
            probe_index: p.probe,
            detail: CandidateDetail::Embedding {
                median_distance: p.median_distance,
                z: p.z,
                consistency: p.consistency,
                excess: p.excess,
                raised: p.raised,
            },
        }
    }
}

/// Drift on unprobed inputs: informational only.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Clean {
    Classes(CleanDrift),
    Embedding(EmbedDrift),
    Lm(LmDrift),
}

/// Companion statistics, reported for context (not the verdict).
#[derive(Clone, Debug, Serialize)]
pub struct Companions {
    /// max over (probe, target) of the pooled excess targeted flip rate.
    pub pooled_excess_max: f64,
    /// max over probes of mean JS(base(x⊕p), cand(x⊕p)) minus the clean mean JS.
    pub probe_js_excess_max: f64,
    pub probe_js_excess_argmax: String,
    /// Both classification statistics, whichever decides (`srcclass_median_excess`,
    /// `srcclass_focused_excess`), and the best focused excess of a target other than the
    /// focused statistic's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub srcclass_median_excess: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub srcclass_focused_excess: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub competing_target_excess: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Timing {
    /// Seconds in this candidate's forward passes (part of `total_s`).
    pub forward_s: f64,
    /// Seconds to score this candidate: load, forward passes, statistics.
    pub total_s: f64,
    /// Seconds in the baseline's forward passes, made once per run and shared by every candidate
    /// of it: not part of `total_s` or `forward_s`.
    pub baseline_forward_s: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct BehaveReport {
    pub schema: &'static str,
    pub verdict: &'static str,
    pub message: String,
    pub suite: SuiteRef,
    pub baseline: ModelInfo,
    pub candidate: ModelInfo,
    pub clean: Clean,
    pub decision: DecisionOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub companions: Option<Companions>,
    pub top_candidates: Vec<TriggerCandidate>,
    /// Differential trigger synthesis, when the suite asks for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synthesis: Option<super::synth::SynthReport>,
    /// Differential trigger-token search, when the suite asks for it (text models).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_search: Option<super::tokensearch::TokenSearchReport>,
    pub findings: Vec<Finding>,
    pub timing: Timing,
}

pub const SCHEMA: &str = "mlsign-behave/1";
