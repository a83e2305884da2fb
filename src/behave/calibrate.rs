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
    /// The synthesis statistic, when the suite has [synthesis].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synthesis_value: Option<f64>,
    /// The trigger-token search statistic, when the suite has [token_search] (reported for
    /// choosing `token_search.threshold`; not calibrated automatically yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_search_value: Option<f64>,
}

/// The synthesis threshold, calibrated next to the probe statistic's: the requested FPR is
/// split evenly between the two (Bonferroni), so a benign candidate is flagged by either with
/// probability at most the FPR.
#[derive(Clone, Debug, Serialize)]
pub struct SynthCalibrationResult {
    pub threshold: f64,
    pub calibration: Calibration,
    /// Benign candidates flagged by either statistic at the two thresholds.
    pub combined_exceedances: usize,
    pub combined_in_sample_fpr: f64,
    /// Exact upper confidence bound on the combined false-positive rate.
    pub combined_fpr_upper_bound: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct CalibrationResult {
    pub threshold: f64,
    pub calibration: Calibration,
    pub scores: Vec<BenignScore>,
    /// How the threshold was chosen: `benign-quantile` or `benign-upper-bound`.
    pub method: &'static str,
    /// Benign candidates above the new threshold.
    pub exceedances: usize,
    /// `exceedances / n` (in-sample false-positive rate).
    pub in_sample_fpr: f64,
    /// Exact one-sided (Clopper–Pearson) upper confidence bound on the false-positive rate on
    /// new benign candidates, at `confidence`.
    pub fpr_upper_bound: f64,
    pub confidence: f64,
    /// Benign candidates needed for the bound to reach the requested FPR (with none above the
    /// threshold).
    pub min_benign_for_fpr: Option<usize>,
    /// The upper bound is at or below the requested FPR.
    pub fpr_supported: bool,
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synthesis: Option<SynthCalibrationResult>,
}

/// How `calibrate` picks the threshold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Options {
    /// Target false-positive rate on benign candidates.
    pub fpr: f64,
    /// Level of the upper confidence bound reported (and used by `bounded`).
    pub confidence: f64,
    /// Choose the lowest threshold whose upper confidence bound meets `fpr` (a distribution-free
    /// tolerance bound) instead of the empirical (1 − fpr) quantile.
    pub bounded: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            fpr: 0.01,
            confidence: 0.95,
            bounded: false,
        }
    }
}

/// The threshold picked from benign scores, with what can be said about its FPR.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    pub threshold: f64,
    pub exceedances: usize,
    pub upper_bound: f64,
}

/// Picks the threshold from benign scores (any order). `floor` is the least usable threshold of
/// the statistic. Quantile mode: the (1 − fpr) quantile (type 7). Bounded mode: the largest
/// order statistic count k such that k benign candidates above the threshold still give an upper
/// bound ≤ fpr; the threshold is then the (k+1)-th largest score, so at most k lie above it
/// (ties only lower that count). P(true FPR > fpr) ≤ 1 − confidence for exchangeable benign
/// scores, because that event is "Binomial(n, fpr) ≤ k".
pub fn choose(values: &[f64], opts: &Options, floor: f64) -> std::result::Result<Choice, String> {
    let n = values.len();
    if n == 0 {
        return Err("no benign candidates".into());
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let threshold = if opts.bounded {
        let mut k_max = None;
        for k in 0..n {
            if stats::clopper_pearson_upper(k, n, opts.confidence) <= opts.fpr {
                k_max = Some(k);
            } else {
                break;
            }
        }
        let Some(k) = k_max else {
            let need = stats::min_benign_for_fpr(opts.fpr, opts.confidence)
                .map(|m| format!("at least {m}"))
                .unwrap_or_else(|| "more".into());
            return Err(format!(
                "{n} benign candidates cannot bound the false-positive rate by {} at {:.0}% confidence, even with none above the threshold (the bound would be {:.4}); need {need}, or drop --bounded to take the in-sample quantile with its bound reported",
                opts.fpr,
                100.0 * opts.confidence,
                stats::clopper_pearson_upper(0, n, opts.confidence)
            ));
        };
        v[n - 1 - k]
    } else {
        stats::quantile(&mut v, 1.0 - opts.fpr)
    };
    // Never below the statistic's floor: a threshold that flags candidates doing no more than the
    // baseline is no threshold, however the benign ones scored.
    let threshold = threshold.max(floor);
    let exceedances = v.iter().filter(|x| **x > threshold).count();
    Ok(Choice {
        threshold,
        exceedances,
        upper_bound: stats::clopper_pearson_upper(exceedances, n, opts.confidence),
    })
}

pub fn calibrate(
    prepared: &Prepared,
    benign: &[PathBuf],
    opts: &Options,
    progress: Progress,
) -> Result<CalibrationResult> {
    let path = &prepared.suite.path;
    let fpr = opts.fpr;
    if !(fpr > 0.0 && fpr < 1.0) {
        return Err(BehaveError::suite(
            path,
            format!("--fpr {fpr} must be in (0, 1)"),
        ));
    }
    if !(opts.confidence > 0.0 && opts.confidence < 1.0) {
        return Err(BehaveError::suite(
            path,
            format!("--confidence {} must be in (0, 1)", opts.confidence),
        ));
    }
    // With synthesis, each statistic gets half the FPR (union bound over the two verdicts).
    let split = prepared.synth.is_some();
    let each = Options {
        fpr: if split { fpr / 2.0 } else { fpr },
        ..*opts
    };
    let need = (1.0 / each.fpr).ceil() as usize;
    if benign.len() < need {
        return Err(BehaveError::suite(
            path,
            format!(
                "{} benign candidates cannot support a false-positive rate of {}{}: need at least {need} (one false positive among n is already 1/n), and {} for an exact {:.0}% upper confidence bound of {}",
                benign.len(),
                each.fpr,
                if split { " per statistic (the FPR is split between the probe statistic and trigger synthesis)" } else { "" },
                stats::min_benign_for_fpr(each.fpr, opts.confidence).unwrap_or(need),
                100.0 * opts.confidence,
                each.fpr
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
            synthesis_value: r.synthesis.as_ref().map(|s| s.value),
            token_search_value: r
                .token_search
                .as_ref()
                .filter(|t| t.available)
                .map(|t| t.value),
        });
    }
    let v: Vec<f64> = scores.iter().map(|s| s.value).collect();
    let stat = prepared.suite.file.decision.stat;
    let choice =
        choose(&v, &each, stat.threshold_range().0).map_err(|why| BehaveError::suite(path, why))?;
    let threshold = choice.threshold;
    if let Some(why) = stat.check_threshold(threshold) {
        return Err(BehaveError::suite(
            path,
            format!(
                "the benign candidates give threshold {threshold}, which cannot be used: {why}"
            ),
        ));
    }
    let n = v.len();
    let benign_max = v.iter().copied().fold(f64::MIN, f64::max);
    let created = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let method = if opts.bounded {
        "benign-upper-bound"
    } else {
        "benign-quantile"
    };
    let in_sample_fpr = choice.exceedances as f64 / n as f64;
    let note = split.then(|| {
        format!("FPR {fpr} split evenly between the probe statistic and trigger synthesis")
    });
    let calibration = Calibration {
        method: method.into(),
        statistic: stat.name().into(),
        fpr: each.fpr,
        n_benign: n,
        benign_max,
        quantile: if opts.bounded {
            1.0 - in_sample_fpr
        } else {
            1.0 - each.fpr
        },
        baseline_sha256: prepared.baseline.info().weights_sha256.clone(),
        inputs_sha256: prepared.suite.inputs_sha256.clone(),
        probes_sha256: prepared.probes_sha256.clone(),
        created,
        tool: format!("mlsign {}", env!("CARGO_PKG_VERSION")),
        note: note.clone(),
        exceedances: Some(choice.exceedances),
        in_sample_fpr: Some(in_sample_fpr),
        fpr_upper_bound: Some(choice.upper_bound),
        confidence: Some(opts.confidence),
    };
    let mut warnings = Vec::new();
    if let Some(why) = calibration.unsupported() {
        warnings.push(format!(
            "{why}: the requested FPR holds in-sample only; expect up to {:.1}% false positives on new benign models (add benign candidates, or use --bounded for a threshold whose bound meets the FPR)",
            100.0 * choice.upper_bound
        ));
    }
    let synthesis = if split {
        let sv: Vec<f64> = scores
            .iter()
            .map(|s| s.synthesis_value.unwrap_or(0.0))
            .collect();
        let sc = choose(&sv, &each, 0.0).map_err(|why| BehaveError::suite(path, why))?;
        let both = v
            .iter()
            .zip(&sv)
            .filter(|(p, q)| **p > threshold || **q > sc.threshold)
            .count();
        let combined_ub = stats::clopper_pearson_upper(both, n, opts.confidence);
        let cal = Calibration {
            statistic: "synthesis_anomaly_index".into(),
            benign_max: sv.iter().copied().fold(f64::MIN, f64::max),
            quantile: if opts.bounded {
                1.0 - sc.exceedances as f64 / n as f64
            } else {
                1.0 - each.fpr
            },
            exceedances: Some(sc.exceedances),
            in_sample_fpr: Some(sc.exceedances as f64 / n as f64),
            fpr_upper_bound: Some(sc.upper_bound),
            ..calibration.clone()
        };
        if let Some(why) = cal.unsupported() {
            warnings.push(format!("trigger synthesis threshold: {why}"));
        }
        if combined_ub > fpr {
            warnings.push(format!(
                "combined (probe statistic or synthesis): {both}/{n} benign candidates flagged (in-sample {:.3}); the exact {:.0}% upper confidence bound on the combined false-positive rate is {:.3}, above the requested {fpr}",
                both as f64 / n as f64,
                100.0 * opts.confidence,
                combined_ub
            ));
        }
        Some(SynthCalibrationResult {
            threshold: sc.threshold,
            calibration: cal,
            combined_exceedances: both,
            combined_in_sample_fpr: both as f64 / n as f64,
            combined_fpr_upper_bound: combined_ub,
        })
    } else {
        None
    };
    Ok(CalibrationResult {
        synthesis,
        threshold,
        method,
        exceedances: choice.exceedances,
        in_sample_fpr,
        fpr_upper_bound: choice.upper_bound,
        confidence: opts.confidence,
        min_benign_for_fpr: stats::min_benign_for_fpr(each.fpr, opts.confidence),
        fpr_supported: choice.upper_bound <= each.fpr,
        warnings,
        calibration,
        scores,
    })
}

/// Write the threshold and its provenance into the suite's `[decision]` table, keeping the rest
/// of the file (comments, order) as it is. Atomic: a temporary file in the same directory is
/// renamed over the suite.
pub fn write_into_suite(
    suite: &Path,
    threshold: f64,
    cal: &Calibration,
    synthesis: Option<(f64, &Calibration)>,
) -> Result<()> {
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
    if let Some((t, c)) = synthesis {
        let sy = doc["synthesis"]
            .as_table_mut()
            .ok_or_else(|| BehaveError::suite(suite, "`synthesis` is not a table"))?;
        sy["threshold"] = toml_edit::value(t);
        let c_toml = toml::to_string(c).map_err(|e| BehaveError::suite(suite, e.to_string()))?;
        let c_doc: toml_edit::DocumentMut = c_toml
            .parse()
            .map_err(|e: toml_edit::TomlError| BehaveError::suite(suite, e.to_string()))?;
        sy["calibration"] = toml_edit::Item::Table(c_doc.as_table().clone());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(fpr: f64, bounded: bool) -> Options {
        Options {
            fpr,
            confidence: 0.95,
            bounded,
        }
    }

    #[test]
    fn quantile_threshold_reports_its_upper_bound() {
        // 20 distinct scores 0.00, 0.05, …, 0.95 (shuffled order must not matter).
        let mut v: Vec<f64> = (0..20).map(|i| i as f64 * 0.05).collect();
        v.reverse();
        let c = choose(&v, &opts(0.05, false), 0.0).unwrap();
        // Type-7 quantile at 0.95: between the 19th and 20th values.
        assert!((c.threshold - (0.90 + 0.05 * 0.05)).abs() < 1e-12, "{c:?}");
        assert_eq!(c.exceedances, 1);
        // scipy: beta.ppf(0.95, 2, 19)
        assert!((c.upper_bound - 0.2161061642068473).abs() < 1e-9);
    }

    #[test]
    fn bounded_threshold_meets_the_fpr_or_refuses() {
        let v: Vec<f64> = (0..300).map(|i| i as f64 / 300.0).collect();
        // n = 300, FPR 0.05: the largest k with bound ≤ 0.05 (scipy: k = 8, bound 0.0476; k = 9, 0.0518).
        let c = choose(&v, &opts(0.05, true), 0.0).unwrap();
        assert_eq!(c.exceedances, 8, "{c:?}");
        assert!(c.upper_bound <= 0.05);
        assert_eq!(c.threshold, v[300 - 1 - 8]);
        // Ties at the threshold only lower the count above it.
        let mut t = v.clone();
        for x in t.iter_mut().skip(285) {
            *x = 0.99;
        }
        let c = choose(&t, &opts(0.05, true), 0.0).unwrap();
        assert_eq!(c.exceedances, 0);
        // 20 benign models cannot bound 5 %: the error says how many are needed.
        let e = choose(&v[..20], &opts(0.05, true), 0.0).unwrap_err();
        assert!(e.contains("need at least 59"), "{e}");
        // 59 can, with the maximum as the threshold.
        let c = choose(&v[..59], &opts(0.05, true), 0.0).unwrap();
        assert_eq!((c.exceedances, c.threshold), (0, v[58]));
        // The statistic's floor wins over benign scores below it.
        let c = choose(&[-0.5; 100], &opts(0.05, false), 0.0).unwrap();
        assert_eq!((c.threshold, c.exceedances), (0.0, 0));
    }
}
