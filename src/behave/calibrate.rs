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
    /// The trigger-token search statistic, when the suite has [token_search] and the search
    /// ran on this candidate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_search_value: Option<f64>,
    /// Why the search could not run on this candidate (BHV008): it is left out of the
    /// token-search threshold's sample instead of counting as a benign 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_search_unavailable: Option<String>,
}

/// How the requested FPR is shared: evenly over every statistic the suite enables, each
/// thresholded at `fpr_each`, so by the union bound a benign candidate is flagged by any of
/// them with probability at most `fpr`.
#[derive(Clone, Debug, Serialize)]
pub struct FprSplit {
    pub fpr: f64,
    /// The statistics the FPR is split over (the probe statistic first).
    pub statistics: Vec<String>,
    pub fpr_each: f64,
    /// Benign candidates flagged by any statistic at the new thresholds (a candidate the token
    /// search could not run on is judged by the others, as `mlsign behave` would judge it).
    pub combined_exceedances: usize,
    pub combined_in_sample_fpr: f64,
    /// Exact upper confidence bound on the combined false-positive rate.
    pub combined_fpr_upper_bound: f64,
}

/// The trigger-token search threshold (`[token_search] threshold`), calibrated at its share of
/// the FPR on the benign candidates the search ran on.
#[derive(Clone, Debug, Serialize)]
pub struct TokenSearchCalibrationResult {
    pub threshold: f64,
    pub calibration: Calibration,
    /// Benign candidates left out because the search could not run on them ("path: reason").
    pub unavailable: Vec<String>,
}

/// The synthesis threshold, calibrated next to the probe statistic's: the requested FPR is
/// split evenly over the statistics the suite enables (Bonferroni, [`FprSplit`]), so a benign
/// candidate is flagged by any with probability at most the FPR.
#[derive(Clone, Debug, Serialize)]
pub struct SynthCalibrationResult {
    pub threshold: f64,
    pub calibration: Calibration,
    /// Benign candidates flagged by any statistic at the new thresholds (as in `split`).
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_search: Option<TokenSearchCalibrationResult>,
    pub split: FprSplit,
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

/// The provenance of a further statistic's threshold, calibrated like `base` (same models,
/// suite and FPR share) from its own benign `values` and the threshold `c` chosen among them.
fn derived(
    base: &Calibration,
    statistic: &str,
    values: &[f64],
    c: &Choice,
    opts: &Options,
) -> Calibration {
    let n = values.len();
    Calibration {
        statistic: statistic.into(),
        n_benign: n,
        benign_max: values.iter().copied().fold(f64::MIN, f64::max),
        quantile: if opts.bounded {
            1.0 - c.exceedances as f64 / n as f64
        } else {
            1.0 - opts.fpr
        },
        exceedances: Some(c.exceedances),
        in_sample_fpr: Some(c.exceedances as f64 / n as f64),
        fpr_upper_bound: Some(c.upper_bound),
        ..base.clone()
    }
}

/// The statistics a suite's verdict is the union of: the probe statistic, then trigger
/// synthesis and the trigger-token search when enabled.
pub fn statistics_of(probe: &str, synthesis: bool, token_search: Option<&str>) -> Vec<String> {
    let mut v = vec![format!("probe statistic {probe}")];
    if synthesis {
        v.push("trigger synthesis synthesis_anomaly_index".into());
    }
    if let Some(t) = token_search {
        v.push(format!("trigger-token search {t}"));
    }
    v
}

/// Each statistic's share of the FPR: an even split over `k` statistics.
pub fn fpr_each(fpr: f64, k: usize) -> f64 {
    fpr / k.max(1) as f64
}

/// `token_search.threshold` from the benign candidates the search ran on. Fail closed: a
/// candidate the search could not run on (BHV008: a GGUF without its f32 copy, another
/// tokenizer) has no value, and counting it as 0 would pull the threshold down on models that
/// say nothing about it; it is left out and named in a warning, and when fewer than
/// ⌈1 / fpr_each⌉ candidates remain, calibration stops with an error rather than keep an
/// uncalibrated threshold.
fn calibrate_token_search(
    path: &Path,
    statistic: &str,
    scores: &[BenignScore],
    each: &Options,
    calibration: &Calibration,
    warnings: &mut Vec<String>,
) -> Result<TokenSearchCalibrationResult> {
    let tv: Vec<f64> = scores.iter().filter_map(|s| s.token_search_value).collect();
    let unavailable: Vec<String> = scores
        .iter()
        .filter(|s| s.token_search_value.is_none())
        .map(|s| {
            format!(
                "{}: {}",
                s.candidate,
                s.token_search_unavailable
                    .as_deref()
                    .unwrap_or("no token search")
            )
        })
        .collect();
    let n = scores.len();
    let m = tv.len();
    let need = (1.0 / each.fpr).ceil() as usize;
    if m < need {
        return Err(BehaveError::suite(
            path,
            format!(
                "the trigger-token search ran on only {m} of {n} benign candidates ({} unavailable; first: {}); calibrating token_search.threshold at FPR {} needs at least {need} (a candidate without a search is left out, never counted as 0): put the f32 safetensors copy next to each GGUF file, add benign candidates the search can run on, or remove [token_search]",
                unavailable.len(),
                unavailable.first().map(String::as_str).unwrap_or("none"),
                each.fpr
            ),
        ));
    }
    if !unavailable.is_empty() {
        warnings.push(format!(
            "trigger-token search threshold: calibrated on the {m} of {n} benign candidates the search ran on; {} left out ({}); at scoring time such candidates are judged by the other statistics only (BHV008)",
            unavailable.len(),
            unavailable.join("; ")
        ));
    }
    let c = choose(&tv, each, 0.0).map_err(|why| BehaveError::suite(path, why))?;
    // Both statistics never exceed 1: a threshold of 1 could flag nothing.
    if c.threshold >= 1.0 {
        return Err(BehaveError::suite(
            path,
            format!(
                "the benign candidates give token_search.threshold {}, which cannot be used: {statistic} never exceeds 1, so no candidate could be flagged (the benign candidates already reach the maximum)",
                c.threshold
            ),
        ));
    }
    let note = match (&calibration.note, unavailable.len()) {
        (n, 0) => n.clone(),
        (n, k) => Some(format!(
            "{}{k} benign candidate(s) without a token search (BHV008) left out",
            n.as_ref().map(|n| format!("{n}; ")).unwrap_or_default()
        )),
    };
    let cal = Calibration {
        note,
        ..derived(calibration, statistic, &tv, &c, each)
    };
    if let Some(why) = cal.unsupported() {
        warnings.push(format!("trigger-token search threshold: {why}"));
    }
    Ok(TokenSearchCalibrationResult {
        threshold: c.threshold,
        calibration: cal,
        unavailable,
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
    // Each statistic the suite enables gets an even share of the FPR (union bound over the
    // verdicts).
    let stat = prepared.suite.file.decision.stat;
    let statistics = statistics_of(
        stat.name(),
        prepared.synth.is_some(),
        prepared.tsearch.as_ref().map(|t| t.statistic()),
    );
    let split = statistics.len() > 1;
    let each = Options {
        fpr: fpr_each(fpr, statistics.len()),
        ..*opts
    };
    let split_words = format!(
        "the FPR is split evenly over {} statistics: {}",
        statistics.len(),
        statistics.join(", ")
    );
    let need = (1.0 / each.fpr).ceil() as usize;
    if benign.len() < need {
        return Err(BehaveError::suite(
            path,
            format!(
                "{} benign candidates cannot support a false-positive rate of {}{}: need at least {need} (one false positive among n is already 1/n), and {} for an exact {:.0}% upper confidence bound of {}",
                benign.len(),
                each.fpr,
                if split { format!(" per statistic ({split_words})") } else { String::new() },
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
            token_search_unavailable: r
                .token_search
                .as_ref()
                .filter(|t| !t.available)
                .map(|t| t.reason.clone().unwrap_or_else(|| "no reason given".into())),
        });
    }
    let v: Vec<f64> = scores.iter().map(|s| s.value).collect();
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
    let note = split.then(|| format!("FPR {fpr}: {split_words} (union bound)"));
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
    let synthesis = if prepared.synth.is_some() {
        let sv: Vec<f64> = scores
            .iter()
            .map(|s| s.synthesis_value.unwrap_or(0.0))
            .collect();
        let sc = choose(&sv, &each, 0.0).map_err(|why| BehaveError::suite(path, why))?;
        let cal = derived(&calibration, "synthesis_anomaly_index", &sv, &sc, &each);
        if let Some(why) = cal.unsupported() {
            warnings.push(format!("trigger synthesis threshold: {why}"));
        }
        Some((sc.threshold, sv, cal))
    } else {
        None
    };
    let token_search = match &prepared.tsearch {
        Some(setup) => Some(calibrate_token_search(
            path,
            setup.statistic(),
            &scores,
            &each,
            &calibration,
            &mut warnings,
        )?),
        None => None,
    };
    // Combined: flagged by any statistic at its new threshold.
    let both = scores
        .iter()
        .enumerate()
        .filter(|(i, sc)| {
            sc.value > threshold
                || synthesis.as_ref().is_some_and(|(t, sv, _)| sv[*i] > *t)
                || token_search
                    .as_ref()
                    .is_some_and(|ts| sc.token_search_value.is_some_and(|x| x > ts.threshold))
        })
        .count();
    let combined_ub = stats::clopper_pearson_upper(both, n, opts.confidence);
    if split && combined_ub > fpr {
        warnings.push(format!(
            "combined ({}): {both}/{n} benign candidates flagged by any (in-sample {:.3}); the exact {:.0}% upper confidence bound on the combined false-positive rate is {:.3}, above the requested {fpr}",
            statistics.join(" or "),
            both as f64 / n as f64,
            100.0 * opts.confidence,
            combined_ub
        ));
    }
    let split = FprSplit {
        fpr,
        statistics,
        fpr_each: each.fpr,
        combined_exceedances: both,
        combined_in_sample_fpr: both as f64 / n as f64,
        combined_fpr_upper_bound: combined_ub,
    };
    let synthesis = synthesis.map(|(t, _, cal)| SynthCalibrationResult {
        threshold: t,
        calibration: cal,
        combined_exceedances: both,
        combined_in_sample_fpr: split.combined_in_sample_fpr,
        combined_fpr_upper_bound: combined_ub,
    });
    Ok(CalibrationResult {
        synthesis,
        token_search,
        split,
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
    let extra: Vec<(&str, f64, &Calibration)> = synthesis
        .map(|(t, c)| ("synthesis", t, c))
        .into_iter()
        .collect();
    write_tables(suite, threshold, cal, &extra)
}

/// Write every threshold of a calibration: `[decision]`, and `[synthesis]` and
/// `[token_search]` when the suite has them.
pub fn write_result(suite: &Path, res: &CalibrationResult) -> Result<()> {
    let mut extra: Vec<(&str, f64, &Calibration)> = Vec::new();
    if let Some(sy) = &res.synthesis {
        extra.push(("synthesis", sy.threshold, &sy.calibration));
    }
    if let Some(ts) = &res.token_search {
        extra.push(("token_search", ts.threshold, &ts.calibration));
    }
    write_tables(suite, res.threshold, &res.calibration, &extra)
}

/// `[decision]` plus each (table, threshold, calibration) in `extra` (tables that must exist).
fn write_tables(
    suite: &Path,
    threshold: f64,
    cal: &Calibration,
    extra: &[(&str, f64, &Calibration)],
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
    for &(name, t, c) in extra {
        let sy = doc[name]
            .as_table_mut()
            .ok_or_else(|| BehaveError::suite(suite, format!("`{name}` is not a table")))?;
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

    fn benign(value: Option<f64>) -> BenignScore {
        BenignScore {
            candidate: "m".into(),
            value: 0.0,
            top_probe: String::new(),
            top_target: None,
            synthesis_value: None,
            token_search_value: value,
            token_search_unavailable: value.is_none().then(|| "GGUF without f32 copy".into()),
        }
    }

    fn base_calibration() -> Calibration {
        Calibration {
            method: "benign-quantile".into(),
            statistic: "probe_js_excess".into(),
            fpr: 0.25,
            n_benign: 5,
            benign_max: 0.0,
            quantile: 0.75,
            baseline_sha256: "b".into(),
            inputs_sha256: "i".into(),
            probes_sha256: "p".into(),
            created: "now".into(),
            tool: "mlsign".into(),
            note: Some("split".into()),
            exceedances: Some(0),
            in_sample_fpr: Some(0.0),
            fpr_upper_bound: Some(0.0),
            confidence: Some(0.95),
        }
    }

    #[test]
    fn the_fpr_is_split_over_every_enabled_statistic() {
        assert_eq!(statistics_of("probe_js_excess", false, None).len(), 1);
        assert_eq!(fpr_each(0.05, 1), 0.05);
        let s = statistics_of("srcclass_focused_excess", true, Some("trigger_flip_excess"));
        assert_eq!(s.len(), 3);
        assert!(s[2].contains("trigger_flip_excess"), "{s:?}");
        assert!((fpr_each(0.06, s.len()) - 0.02).abs() < 1e-15);
        assert_eq!(
            statistics_of("probe_js_excess", false, Some("trigger_js_excess")).len(),
            2
        );
    }

    #[test]
    fn token_search_threshold_leaves_out_candidates_without_a_search() {
        let each = opts(0.25, false);
        let cal = base_calibration();
        let run = |stat: &str, scores: &[BenignScore], o: &Options, w: &mut Vec<String>| {
            calibrate_token_search(Path::new("s.toml"), stat, scores, o, &cal, w)
        };
        // One of five without a search: calibrated on the other four, with a warning.
        let scores: Vec<BenignScore> = [Some(0.1), None, Some(0.4), Some(0.2), Some(0.3)]
            .into_iter()
            .map(benign)
            .collect();
        let mut w = vec![];
        let r = run("trigger_js_excess", &scores, &each, &mut w).unwrap();
        // Type-7 0.75 quantile of 0.1, 0.2, 0.3, 0.4 (a 0 for the missing one would give 0.3).
        assert!((r.threshold - 0.325).abs() < 1e-12, "{}", r.threshold);
        assert_eq!(r.calibration.n_benign, 4);
        assert_eq!(r.calibration.statistic, "trigger_js_excess");
        assert_eq!(r.calibration.exceedances, Some(1));
        assert_eq!(r.unavailable.len(), 1);
        assert!(w.iter().any(|w| w.contains("4 of 5")), "{w:?}");
        assert!(r.calibration.note.as_deref().unwrap().contains("left out"));
        // Two of five without: three cannot carry FPR 0.25 (one false positive is 1/3).
        let mut scores = scores;
        scores[0] = benign(None);
        let e = run("trigger_js_excess", &scores, &each, &mut vec![])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("only 3 of 5") && e.contains("never counted as 0"),
            "{e}"
        );
        // Benign candidates at the statistic's maximum leave no usable threshold.
        let top: Vec<BenignScore> = (0..4).map(|_| benign(Some(1.0))).collect();
        let e = run("trigger_flip_excess", &top, &each, &mut vec![])
            .unwrap_err()
            .to_string();
        assert!(e.contains("never exceeds 1"), "{e}");
        // Bounded: at 50 % confidence, four benign bound FPR 0.25 only with none above: the max.
        let scores: Vec<BenignScore> = [0.1, 0.4, 0.2, 0.3].map(|v| benign(Some(v))).to_vec();
        let b = Options {
            fpr: 0.25,
            confidence: 0.5,
            bounded: true,
        };
        let r = run("trigger_js_excess", &scores, &b, &mut vec![]).unwrap();
        assert_eq!((r.threshold, r.calibration.exceedances), (0.4, Some(0)));
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
