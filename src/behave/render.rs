//! `mlsign behave` for the output sinks ([`crate::report::render`]): one report per candidate,
//! rendered together.

use super::report::{CandidateDetail, Clean};
use super::BehaveReport;
use crate::report::{codes, Finding, Report, Table, Verdict};

/// Findings that fail a behave run (exit 1): backdoor-like divergence (BHV001), clean drift
/// above the suite's limit (BHV002), a synthesised trigger (BHV006) and trigger tokens found by
/// the token search (BHV007). Calibration notes (BHV003–BHV005) and an unavailable token search
/// (BHV008) are reported but do not fail it.
pub const GATING: [&str; 4] = [codes::BHV001, codes::BHV002, codes::BHV006, codes::BHV007];

impl BehaveReport {
    /// Whether this candidate fails the run.
    pub fn failed(&self) -> bool {
        self.findings.iter().any(|f| GATING.contains(&f.code))
    }
}

/// The reports of one `mlsign behave` run: one per candidate, against one baseline.
#[derive(Clone, Debug)]
pub struct BehaveRun(pub Vec<BehaveReport>);

impl Report for BehaveRun {
    fn title(&self) -> &'static str {
        "mlsign behave"
    }

    fn verdict(&self) -> Verdict {
        if self.0.iter().any(BehaveReport::failed) {
            Verdict::Fail
        } else {
            Verdict::Pass
        }
    }

    fn headline(&self) -> String {
        let flagged = self.0.iter().filter(|r| r.failed()).count();
        match self.0.as_slice() {
            [r] => format!("{}: {}", r.candidate.weights, r.message),
            rs => format!("{} candidate(s), {flagged} flagged", rs.len()),
        }
    }

    fn findings(&self) -> Vec<Finding> {
        self.0.iter().flat_map(|r| r.findings.clone()).collect()
    }

    fn facts(&self) -> Vec<(&'static str, String)> {
        match self.0.first() {
            Some(r) => vec![
                (
                    "suite",
                    format!(
                        "{} ({} inputs × {} probes)",
                        r.suite.name, r.suite.n_inputs, r.suite.n_probes
                    ),
                ),
                ("baseline", r.baseline.weights.clone()),
            ],
            None => Vec::new(),
        }
    }

    fn table(&self) -> Table {
        Table {
            columns: vec!["candidate", "verdict", "statistic", "value", "threshold"],
            rows: self
                .0
                .iter()
                .map(|r| {
                    vec![
                        r.candidate.weights.clone(),
                        r.verdict.to_string(),
                        r.decision.statistic.to_string(),
                        format!("{:.4}", r.decision.value),
                        format!("{:.4}", r.decision.threshold),
                    ]
                })
                .collect(),
        }
    }

    /// One candidate: its report object; several: an array of them.
    fn json(&self) -> serde_json::Value {
        match self.0.as_slice() {
            [r] => serde_json::to_value(r),
            rs => serde_json::to_value(rs),
        }
        .unwrap_or_default()
    }

    fn human(&self) -> String {
        self.0.iter().map(human).collect()
    }
}

/// The terminal text for one candidate.
pub fn human(r: &BehaveReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let fams: Vec<String> = r
        .suite
        .probe_families
        .iter()
        .map(|f| format!("{} {}", f.count, f.kind))
        .collect();
    let _ = writeln!(s, "candidate {}", r.candidate.weights);
    let _ = writeln!(
        s,
        "  suite      {} ({} inputs × {} probes: {}; probes sha256 {})",
        r.suite.name,
        r.suite.n_inputs,
        r.suite.n_probes,
        fams.join(", "),
        &r.suite.probes_sha256[..16]
    );
    if r.decision.flagged {
        let _ = writeln!(s, "  verdict    FLAGGED: {}", r.message);
    } else {
        let _ = writeln!(s, "  verdict    {}", r.message);
    }
    let cal = match &r.decision.calibration {
        Some(c) => c.provenance(),
        None => "NOT calibrated".into(),
    };
    let _ = writeln!(
        s,
        "  statistic  {} = {:.4} (threshold {:.4}, {cal})",
        r.decision.statistic, r.decision.value, r.decision.threshold
    );
    match &r.clean {
        Clean::Classes(c) => {
            let acc = match (c.baseline_accuracy, c.candidate_accuracy) {
                (Some(a), Some(b)) => format!(", accuracy {a:.3} → {b:.3}"),
                _ => String::new(),
            };
            let _ = writeln!(
                s,
                "  clean      JS mean {:.4}, p99 {:.4}, top-1 flips {:.1}%{acc} (informational: clean drift does not reveal backdoors)",
                c.js_mean,
                c.js_p99,
                100.0 * c.top1_flip_rate
            );
        }
        Clean::Embedding(c) => {
            let _ = writeln!(
                s,
                "  clean      cosine distance mean {:.2e}, median {:.2e}, p99 {:.2e}, MAD {:.2e} (informational)",
                c.cos_distance_mean, c.cos_distance_median, c.cos_distance_p99, c.cos_distance_mad
            );
        }
        Clean::Lm(c) => {
            let _ = writeln!(
                s,
                "  clean      next-token JS mean {:.2e}, median {:.2e}, p99 {:.2e}, MAD {:.2e}, top-1 flips {:.1}% (informational)",
                c.js_mean, c.js_median, c.js_p99, c.js_mad, 100.0 * c.top1_flip_rate
            );
        }
    }
    if let Some(c) = &r.companions {
        let _ = writeln!(
            s,
            "  companions pooled excess max {:.3}, probe JS excess max {:.4}{}",
            c.pooled_excess_max,
            c.probe_js_excess_max,
            match (
                c.srcclass_median_excess,
                c.srcclass_focused_excess,
                c.competing_target_excess,
            ) {
                (Some(m), Some(f), Some(o)) => format!(
                    ", srcclass_median_excess {m:.3}, srcclass_focused_excess {f:.3} (best other target {o:.3})"
                ),
                _ => String::new(),
            }
        );
    }
    if r.top_candidates.is_empty() {
        let _ = writeln!(
            s,
            "  top trigger candidates: none (no probe sends more inputs to a class than the baseline does)"
        );
    } else {
        let _ = writeln!(s, "  top trigger candidates:");
    }
    for (i, t) in r.top_candidates.iter().take(5).enumerate() {
        let _ = match &t.detail {
            CandidateDetail::Class {
                target_class,
                target_label,
                median_excess,
                focused_excess,
                candidate_rate,
                baseline_rate,
                ..
            } => writeln!(
                s,
                "    {}. {} → class {}{}: median excess {:.3} (focused {:.3}), candidate {:.0}% vs baseline {:.0}%",
                i + 1,
                t.probe,
                target_class,
                target_label.as_deref().map(|l| format!(" ({l})")).unwrap_or_default(),
                median_excess,
                focused_excess,
                100.0 * candidate_rate,
                100.0 * baseline_rate
            ),
            CandidateDetail::Embedding {
                median_distance,
                z,
                consistency,
                excess,
                ..
            } => writeln!(
                s,
                "    {}. {}: excess {:+.4} over clean, median cosine distance {:.4}, z {:.1}, {:.0}% of inputs past the clean p99",
                i + 1,
                t.probe,
                excess,
                median_distance,
                z,
                100.0 * consistency
            ),
            CandidateDetail::Lm {
                median_js,
                z,
                consistency,
                excess,
                rising_token,
                rising_baseline_prob,
                rising_candidate_prob,
                ..
            } => {
                let rise = if rising_candidate_prob > rising_baseline_prob {
                    format!(
                        "token {:?} rises {:.1}% → {:.1}%",
                        rising_token,
                        100.0 * rising_baseline_prob,
                        100.0 * rising_candidate_prob
                    )
                } else {
                    "no token's probability rises".into()
                };
                writeln!(
                    s,
                    "    {}. {}: excess {:+.4} bits over clean, median JS {:.4} bits, z {:.1}, {:.0}% of prompts past the clean p99; {rise}",
                    i + 1,
                    t.probe,
                    excess,
                    median_js,
                    z,
                    100.0 * consistency,
                )
            }
        };
    }
    if let Some(sy) = &r.synthesis {
        let _ = writeln!(
            s,
            "  synthesis  anomaly index {:.3} (threshold {:.3}{}; largest log2 ratio {:.2}); {} classes in {:.1}s (baseline's natural triggers {:.1}s, once)",
            sy.value,
            sy.threshold,
            if sy.flagged { ", FLAGGED" } else { "" },
            sy.max_log2_ratio,
            sy.classes.len(),
            sy.seconds,
            sy.baseline_seconds
        );
        let mut order: Vec<_> = sy.classes.iter().collect();
        // Smallest differential mask first (no trigger found: last).
        let size = |c: &&super::synth::ClassResult| c.mask_l1.unwrap_or(f64::INFINITY);
        order.sort_by(|a, b| size(a).total_cmp(&size(b)));
        for c in order.iter().take(3) {
            let px = |v: Option<f64>| v.map_or("none found".into(), |v| format!("{v:.1} px"));
            let _ = writeln!(
                s,
                "    class {}{}: mask {} vs the baseline's natural {} (log2 ratio {:.2}); candidate {:.0}% vs baseline {:.0}% of {} inputs{}",
                c.class,
                c.label.as_deref().map(|l| format!(" ({l})")).unwrap_or_default(),
                px(c.mask_l1),
                px(c.natural_mask_l1),
                c.log2_ratio,
                100.0 * c.candidate_flip,
                100.0 * c.baseline_flip,
                c.source_inputs,
                match (&c.mask_png, &c.pattern_png) {
                    (Some(m), Some(p)) => format!("; mask {m}, pattern {p}"),
                    _ => String::new(),
                }
            );
        }
        if !sy.not_searched.is_empty() {
            let _ = writeln!(
                s,
                "    not searched (time budget {}s spent): classes {:?}",
                sy.time_budget_s, sy.not_searched
            );
        }
        match &sy.html {
            Some(h) => {
                let _ = writeln!(s, "    triggers shown in {h}");
            }
            None => {
                let _ = writeln!(
                    s,
                    "    (add --trigger-dir DIR to write the masks and patterns as PNG and HTML)"
                );
            }
        }
    }
    if let Some(ts) = &r.token_search {
        super::tokensearch::render_human(ts, &mut s);
    }
    for f in &r.findings {
        let _ = writeln!(s, "  {f}");
    }
    let _ = writeln!(
        s,
        "  time       {:.2}s ({:.2}s in forward passes); the baseline's forward passes took {:.2}s once for all candidates",
        r.timing.total_s, r.timing.forward_s, r.timing.baseline_forward_s
    );
    s
}
