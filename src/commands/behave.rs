//! `mlsign behave` and `mlsign behave calibrate`: rendering and exit codes.

use crate::cli::{BehaveArgs, BehaveCalibrateArgs, BehaveCommand, BehaveDevice, BehaveRunArgs};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use mlsign::behave::report::{CandidateDetail, Clean};
use mlsign::behave::{self, calibrate, BehaveReport, Prepared};
use mlsign::report::{Exit, Format};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

pub fn run(args: BehaveArgs) -> anyhow::Result<Exit> {
    behave::pin_thread_count();
    match args.command {
        Some(BehaveCommand::Calibrate(c)) => run_calibrate(c),
        None => {
            let baseline = args.baseline.context("--baseline is required")?;
            let suite = args.suite.context("--suite is required")?;
            run_diff(
                baseline,
                args.candidate,
                suite,
                args.trigger_dir.as_deref(),
                &args.run,
            )
        }
    }
}

/// A progress bar on stderr for long suites (only on a terminal).
struct Bar(Option<ProgressBar>);

impl Bar {
    fn new(opts: &BehaveRunArgs) -> Self {
        if opts.no_progress || !std::io::stderr().is_terminal() {
            return Bar(None);
        }
        let pb = ProgressBar::new(0);
        pb.set_style(
            ProgressStyle::with_template("{msg:>24} [{bar:40}] {pos}/{len} inputs ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Bar(Some(pb))
    }
    fn update(&self, what: &str, done: u64, total: u64) {
        if let Some(pb) = &self.0 {
            pb.set_length(total);
            pb.set_position(done);
            pb.set_message(what.to_string());
        }
    }
    fn set_who(&self, who: &str) {
        if let Some(pb) = &self.0 {
            pb.set_prefix(who.to_string());
        }
    }
    fn finish(&self) {
        if let Some(pb) = &self.0 {
            pb.finish_and_clear();
        }
    }
}

fn device(opts: &BehaveRunArgs) -> anyhow::Result<candle_core::Device> {
    Ok(behave::device(opts.device == BehaveDevice::Cuda)?)
}

fn prepare(
    baseline: &Path,
    suite: &Path,
    opts: &BehaveRunArgs,
    bar: &Bar,
) -> anyhow::Result<Prepared> {
    let progress = |s: &str, d: u64, t: u64| bar.update(&format!("baseline {s}"), d, t);
    Prepared::new(suite, baseline, device(opts)?, &progress).map_err(|e| {
        about_suite(
            e,
            suite,
            &format!(
                "cannot evaluate baseline {} on suite {}",
                baseline.display(),
                suite.display()
            ),
        )
    })
}

/// `what: cause`, where a cause that is about `suite` itself ("suite S: …") does not name the
/// suite a second time.
fn about_suite(e: behave::BehaveError, suite: &Path, what: &str) -> anyhow::Error {
    match e {
        behave::BehaveError::Suite { path, message } if path == suite => {
            anyhow::anyhow!("{what}: {message}")
        }
        other => anyhow::Error::new(other).context(what.to_string()),
    }
}

fn run_diff(
    baseline: PathBuf,
    candidates: Vec<PathBuf>,
    suite: PathBuf,
    trigger_dir: Option<&Path>,
    opts: &BehaveRunArgs,
) -> anyhow::Result<Exit> {
    let bar = Bar::new(opts);
    let prepared = prepare(&baseline, &suite, opts, &bar)?;
    let mut reports = Vec::with_capacity(candidates.len());
    for (i, c) in candidates.iter().enumerate() {
        bar.set_who(&c.display().to_string());
        let progress = |s: &str, d: u64, t: u64| {
            bar.update(
                &format!("candidate {}/{} {s}", i + 1, candidates.len()),
                d,
                t,
            )
        };
        let mut r = prepared.score(c, &progress).with_context(|| {
            format!(
                "cannot compare candidate {} with baseline {}",
                c.display(),
                baseline.display()
            )
        })?;
        if let (Some(dir), Some(sy)) = (trigger_dir, r.synthesis.as_mut()) {
            behave::synth::write_files(sy, dir, &file_stem(i, c), &c.display().to_string())
                .with_context(|| {
                    format!(
                        "cannot write the synthesised triggers into {}",
                        dir.display()
                    )
                })?;
        }
        reports.push(r);
    }
    bar.finish();
    // Exit 1 for divergence (BHV001) and the clean-drift gate (BHV002); calibration notes
    // (BHV003/BHV004) are reported but do not fail the run.
    let gating = [
        mlsign::report::codes::BHV001,
        mlsign::report::codes::BHV002,
        mlsign::report::codes::BHV006,
    ];
    let flagged = reports
        .iter()
        .any(|r| r.findings.iter().any(|f| gating.contains(&f.code)));
    match opts.format {
        Format::Json => {
            let v = if reports.len() == 1 {
                serde_json::to_value(&reports[0])?
            } else {
                serde_json::to_value(&reports)?
            };
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Format::Sarif => {
            let all: Vec<_> = reports.iter().flat_map(|r| r.findings.clone()).collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&mlsign::report::sarif::to_sarif(&all))?
            );
        }
        Format::Human => {
            for r in &reports {
                print!("{}", human(r));
            }
        }
    }
    Ok(if flagged { Exit::Finding } else { Exit::Pass })
}

/// File-name stem for a candidate's trigger images: its position and a sanitised name.
fn file_stem(i: usize, c: &Path) -> String {
    let name: String = c
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' {
                ch
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    format!("{}-{name}", i + 1)
}

fn human(r: &BehaveReport) -> String {
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
        Some(c) => format!(
            "calibrated for FPR {} on {} benign candidates{}, {}",
            c.fpr,
            c.n_benign,
            c.fpr_upper_bound
                .map(|u| format!(
                    " ({:.0}% upper bound {u:.3})",
                    100.0 * c.confidence.unwrap_or(0.95)
                ))
                .unwrap_or_default(),
            c.created
        ),
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
        let size = |c: &&behave::synth::ClassResult| c.mask_l1.unwrap_or(f64::INFINITY);
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

fn run_calibrate(a: BehaveCalibrateArgs) -> anyhow::Result<Exit> {
    let bar = Bar::new(&a.run);
    let prepared = prepare(&a.baseline, &a.suite, &a.run, &bar)?;
    let n = a.benign.len();
    let progress = |s: &str, d: u64, t: u64| bar.update(&format!("benign ({n}) {s}"), d, t);
    let opts = calibrate::Options {
        fpr: a.fpr,
        confidence: a.confidence,
        bounded: a.bounded,
    };
    let res = calibrate::calibrate(&prepared, &a.benign, &opts, &progress).map_err(|e| {
        about_suite(
            e,
            &a.suite,
            &format!("cannot calibrate suite {}", a.suite.display()),
        )
    })?;
    bar.finish();
    for w in &res.warnings {
        eprintln!("warning: {w}");
    }
    if a.write {
        let synth = res
            .synthesis
            .as_ref()
            .map(|s| (s.threshold, &s.calibration));
        calibrate::write_into_suite(&a.suite, res.threshold, &res.calibration, synth)
            .with_context(|| format!("cannot write the threshold into {}", a.suite.display()))?;
    }
    match a.run.format {
        Format::Json | Format::Sarif => {
            let mut v = serde_json::to_value(&res)?;
            v["written"] = serde_json::Value::Bool(a.write);
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Format::Human => {
            let how = if a.bounded {
                format!(
                    "lowest threshold whose {:.0}% upper bound meets FPR {}",
                    100.0 * res.confidence,
                    a.fpr
                )
            } else {
                format!("{:.3} quantile", res.calibration.quantile)
            };
            println!(
                "threshold {:.4} = {how} of {} over {} benign candidates (max {:.4})",
                res.threshold,
                res.calibration.statistic,
                res.calibration.n_benign,
                res.calibration.benign_max,
            );
            println!(
                "false-positive rate: {}/{} benign above it (in-sample {:.3}); exact {:.0}% upper confidence bound {:.4} (requested {}{})",
                res.exceedances,
                res.calibration.n_benign,
                res.in_sample_fpr,
                100.0 * res.confidence,
                res.fpr_upper_bound,
                a.fpr,
                if res.fpr_supported { ", supported" } else { ", NOT supported" }
            );
            if let Some(sy) = &res.synthesis {
                println!(
                    "synthesis threshold {:.4} (FPR {} each; {}/{} benign above it); either statistic: {}/{} benign flagged, exact {:.0}% upper bound {:.4} on the combined FPR",
                    sy.threshold,
                    sy.calibration.fpr,
                    sy.calibration.exceedances.unwrap_or(0),
                    res.calibration.n_benign,
                    sy.combined_exceedances,
                    res.calibration.n_benign,
                    100.0 * res.confidence,
                    sy.combined_fpr_upper_bound
                );
            }
            if a.write {
                println!(
                    "written into {} [decision] with provenance",
                    a.suite.display()
                );
            } else {
                println!(
                    "not written (add --write to store it in {})",
                    a.suite.display()
                );
            }
        }
    }
    Ok(Exit::Pass)
}

/// The output format asked for (errors are rendered in it by the dispatcher).
pub fn format(a: &crate::cli::BehaveArgs) -> mlsign::report::Format {
    match &a.command {
        Some(crate::cli::BehaveCommand::Calibrate(c)) => c.run.format,
        None => a.run.format,
    }
}
