//! `mlsign behave` and `mlsign behave calibrate`: rendering and exit codes.

use crate::cli::{BehaveArgs, BehaveCalibrateArgs, BehaveCommand, BehaveDevice, BehaveRunArgs};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use mlsign::behave::render::BehaveRun;
use mlsign::behave::{self, calibrate, Prepared};
use mlsign::report::{render, Exit, Format};
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
    Ok(render::emit(opts.format, &BehaveRun(reports)))
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

fn run_calibrate(a: BehaveCalibrateArgs) -> anyhow::Result<Exit> {
    // Calibration reports a threshold, not findings.
    super::common::no_sarif(a.run.format)?;
    let bar = Bar::new(&a.run);
    let prepared = prepare(&a.baseline, &a.suite, &a.run, &bar)?;
    // Generated null candidates (short clean fine-tunes) join the benign models given.
    let mut benign = a.benign.clone();
    let mut _null_tmp = None;
    let mut generated = 0usize;
    if let Some(count) = a.generate_null {
        let out = match &a.null_dir {
            Some(d) => d.clone(),
            None => {
                let t = tempfile::tempdir().context("cannot create a temporary directory")?;
                let p = t.path().to_path_buf();
                _null_tmp = Some(t);
                p
            }
        };
        let opts = behave::null::NullOptions {
            count,
            seed: prepared.suite.file.suite.seed ^ 0x6e75_6c6c,
            ..Default::default()
        };
        let progress =
            |d: usize, t: usize| bar.update("generating null candidates", d as u64, t as u64);
        let dirs = behave::null::generate(
            &prepared.suite,
            &a.baseline,
            &out,
            &opts,
            &prepared.device,
            &progress,
        )
        .map_err(|e| about_suite(e, &a.suite, "cannot generate null candidates"))?;
        generated = dirs.len();
        benign.extend(dirs);
    }
    let n = benign.len();
    let progress = |s: &str, d: u64, t: u64| bar.update(&format!("benign ({n}) {s}"), d, t);
    let opts = calibrate::Options {
        fpr: a.fpr,
        confidence: a.confidence,
        bounded: a.bounded,
    };
    let res = calibrate::calibrate(&prepared, &benign, &opts, &progress).map_err(|e| {
        about_suite(
            e,
            &a.suite,
            &format!("cannot calibrate suite {}", a.suite.display()),
        )
    })?;
    bar.finish();
    let mut res = res;
    if generated > 0 {
        // Provenance: the threshold rests (partly) on generated nulls, not only on real models.
        let tag = format!("+generated-null:{generated}");
        res.calibration.method.push_str(&tag);
        if let Some(sy) = res.synthesis.as_mut() {
            sy.calibration.method.push_str(&tag);
        }
        if let Some(ts) = res.token_search.as_mut() {
            ts.calibration.method.push_str(&tag);
        }
    }
    for w in &res.warnings {
        eprintln!("warning: {w}");
    }
    if a.write {
        calibrate::write_result(&a.suite, &res)
            .with_context(|| format!("cannot write the threshold into {}", a.suite.display()))?;
    }
    match a.run.format {
        Format::Json | Format::Sarif | Format::Markdown => {
            let mut v = serde_json::to_value(&res)?;
            v["written"] = serde_json::Value::Bool(a.write);
            v["generated_null"] = serde_json::json!(generated);
            super::common::print_json(&v);
        }
        Format::Human => {
            if generated > 0 {
                println!(
                    "{generated} generated null candidates (clean fine-tunes of the baseline on the suite's labelled inputs){}",
                    match a.benign.len() {
                        0 => String::new(),
                        k => format!(" and {k} benign candidates given"),
                    }
                );
            }
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
            if let Some(ts) = &res.token_search {
                println!(
                    "trigger-token search threshold {:.4} = {} of {} over the {} benign candidates it ran on (FPR {} each; {} above it; max {:.4}){}",
                    ts.threshold,
                    if a.bounded {
                        "bounded choice".to_string()
                    } else {
                        format!("{:.3} quantile", ts.calibration.quantile)
                    },
                    ts.calibration.statistic,
                    ts.calibration.n_benign,
                    ts.calibration.fpr,
                    ts.calibration.exceedances.unwrap_or(0),
                    ts.calibration.benign_max,
                    if ts.unavailable.is_empty() {
                        String::new()
                    } else {
                        format!("; {} without a search left out", ts.unavailable.len())
                    }
                );
            }
            if res.split.statistics.len() > 1 {
                println!(
                    "FPR {} split evenly over {} statistics ({}), {} each; any statistic: {}/{} benign flagged (in-sample {:.3}), exact {:.0}% upper bound {:.4} on the combined FPR",
                    res.split.fpr,
                    res.split.statistics.len(),
                    res.split.statistics.join(", "),
                    res.split.fpr_each,
                    res.split.combined_exceedances,
                    res.calibration.n_benign,
                    res.split.combined_in_sample_fpr,
                    100.0 * res.confidence,
                    res.split.combined_fpr_upper_bound
                );
            }
            if a.write {
                let mut tables = vec!["[decision]"];
                if res.synthesis.is_some() {
                    tables.push("[synthesis]");
                }
                if res.token_search.is_some() {
                    tables.push("[token_search]");
                }
                println!(
                    "written into {} {} with provenance",
                    a.suite.display(),
                    tables.join(", ")
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
