//! Calibration: the threshold is the (1 − fpr) quantile of the verdict statistic over candidates
//! known to be benign (earlier trusted versions, benign fine-tunes). A parametric null does not
//! work here: benign models drift far more under off-manifold probes than on clean inputs, and a
//! binomial test flagged every benign candidate in our measurements.

use super::error::{BehaveError, Result};
use super::report::CandidateDetail;
use super::runner::{Prepared, Progress};
use super::stats;
use super::suite::Calibration;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize)]
pub struct BenignScore {
    pub candidate: String,
    pub value: f64,
    pub top_probe: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_target: Option<u32>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CalibrationResult {
    pub threshold: f64,
    pub calibration: Calibration,
    pub scores: Vec<BenignScore>,
    /// Share of the benign candidates above the new threshold (in-sample).
    pub in_sample_fpr: f64,
}

pub fn calibrate(
    prepared: &Prepared,
    benign: &[PathBuf],
    fpr: f64,
    progress: Progress,
) -> Result<CalibrationResult> {
    let path = &prepared.suite.path;
    if !(fpr > 0.0 && fpr < 1.0) {
        return Err(BehaveError::suite(
            path,
            format!("--fpr {fpr} must be in (0, 1)"),
        ));
    }
    let need = (1.0 / fpr).ceil() as usize;
    if benign.len() < need {
        return Err(BehaveError::suite(
            path,
            format!(
                "{} benign candidates cannot support a false-positive rate of {fpr}: need at least {need} (one false positive among n is already 1/n)",
                benign.len()
            ),
        ));
    }
    let mut scores = Vec::with_capacity(benign.len());
    for b in benign {
        let r = prepared.score(b, progress)?;
        let t = r.top_candidates.first();
        scores.push(BenignScore {
            candidate: b.display().to_string(),
            value: r.decision.value,
            top_probe: t.map(|t| t.probe.clone()).unwrap_or_default(),
            top_target: t.and_then(|t| match t.detail {
                CandidateDetail::Class { target_class, .. } => Some(target_class),
                CandidateDetail::Lm {
                    rising_token_id, ..
                } => Some(rising_token_id),
                CandidateDetail::Embedding { .. } => None,
            }),
        });
    }
    let mut v: Vec<f64> = scores.iter().map(|s| s.value).collect();
    let q = 1.0 - fpr;
    let stat = prepared.suite.file.decision.stat;
    // Never below the statistic's floor: a threshold that flags candidates doing no more than the
    // baseline is no threshold, however the benign ones scored.
    let threshold = stats::quantile(&mut v, q).max(stat.threshold_range().0);
    if let Some(why) = stat.check_threshold(threshold) {
        return Err(BehaveError::suite(
            path,
            format!(
                "the benign candidates give threshold {threshold}, which cannot be used: {why}"
            ),
        ));
    }
    let above = v.iter().filter(|x| **x > threshold).count();
    let benign_max = v.last().copied().unwrap_or(0.0);
    let created = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    Ok(CalibrationResult {
        threshold,
        in_sample_fpr: above as f64 / v.len() as f64,
        calibration: Calibration {
            method: "benign-quantile".into(),
            statistic: prepared.suite.file.decision.stat.name().into(),
            fpr,
            n_benign: v.len(),
            benign_max,
            quantile: q,
            baseline_sha256: prepared.baseline.info().weights_sha256.clone(),
            inputs_sha256: prepared.suite.inputs_sha256.clone(),
            probes_sha256: prepared.probes_sha256.clone(),
            created,
            tool: format!("mlsign {}", env!("CARGO_PKG_VERSION")),
            note: None,
        },
        scores,
    })
}

/// Write the threshold and its provenance into the suite's `[decision]` table, keeping the rest
/// of the file (comments, order) as it is. Atomic: a temporary file in the same directory is
/// renamed over the suite.
pub fn write_into_suite(suite: &Path, threshold: f64, cal: &Calibration) -> Result<()> {
    let text = std::fs::read_to_string(suite).map_err(|e| BehaveError::io(suite, e))?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| BehaveError::suite(suite, e.to_string()))?;
    if !doc.contains_table("decision") {
        doc["decision"] = toml_edit::table();
    }
    let dec = doc["decision"]
        .as_table_mut()
        .ok_or_else(|| BehaveError::suite(suite, "`decision` is not a table"))?;
    dec["threshold"] = toml_edit::value(threshold);
    let cal_toml = toml::to_string(cal).map_err(|e| BehaveError::suite(suite, e.to_string()))?;
    let cal_doc: toml_edit::DocumentMut = cal_toml
        .parse()
        .map_err(|e: toml_edit::TomlError| BehaveError::suite(suite, e.to_string()))?;
    dec["calibration"] = toml_edit::Item::Table(cal_doc.as_table().clone());
    let dir = suite
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| BehaveError::io(dir, e))?;
    tmp.write_all(doc.to_string().as_bytes())
        .map_err(|e| BehaveError::io(tmp.path(), e))?;
    tmp.persist(suite)
        .map_err(|e| BehaveError::io(suite, e.error))?;
    Ok(())
}
