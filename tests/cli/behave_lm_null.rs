//! The causal-LM statistic calibrated on benign fine-tunes (issue 15 §2). Benign and backdoored
//! fine-tunes of the tiny Llama fixture are trained here with candle's autograd
//! (tests/cli/support/behave_lm_gen.rs); nothing is downloaded.
//!
//! `lm_null_study` (ignored: a few minutes) prints the comparison of LM statistics in
//! docs/behave.md: `cargo test --features onnx --test cli behave_lm_null:: -- --ignored --nocapture`.
#![cfg(feature = "behave")]

use candle_core::{Device, Tensor};
use mlsign::behave::models::{LoadOptions, Model};
use mlsign::behave::suite::Suite;
use mlsign::behave::{probes, stats};
use std::path::{Path, PathBuf};

use crate::support::behave as support;
use crate::support::behave_lm_gen as gen;
use gen::Ft;
use support::{auroc, mlsign, s};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/behave/lm")
}

/// The differentiable forward the fine-tunes are trained with computes the same function as the
/// Llama mlsign runs (a float64 numpy reference that candle matches to 4e-6).
#[test]
fn differentiable_llama_matches_reference() {
    let m = gen::TinyLlama::load(&data().join("llama-base"));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data().join("reference.json")).unwrap())
            .unwrap();
    let mut worst = 0f64;
    for case in r["llama-base"].as_array().unwrap() {
        let ids: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let n = ids.len();
        let x = Tensor::from_vec(ids, (1, n), &Device::Cpu).unwrap();
        let got: Vec<f32> = m
            .forward(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for (g, w) in got.iter().zip(case["logits"].as_array().unwrap()) {
            worst = worst.max((*g as f64 - w.as_f64().unwrap()).abs());
        }
    }
    assert!(worst < 1e-4, "max |Δlogit| {worst}");
}

/// Per-prompt JS divergences of one candidate: clean `[n]` and per probe `[probes][n]`.
struct Divergences {
    clean: Vec<f64>,
    probed: Vec<Vec<f64>>,
    /// The same at the last position only and as the max over positions (suites with
    /// `lm_positions` > 1; equal to the above otherwise).
    clean_last: Vec<f64>,
    probed_last: Vec<Vec<f64>>,
    clean_max: Vec<f64>,
    probed_max: Vec<Vec<f64>>,
}

fn outputs(m: &Model, texts: &[String]) -> Vec<Vec<f32>> {
    let t = m.text_outputs(texts).unwrap();
    let v = t.dim(1).unwrap();
    t.flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .chunks(v)
        .map(|c| c.to_vec())
        .collect()
}

struct Study {
    suite: Suite,
    probes: Vec<probes::Probe>,
    base_clean: Vec<Vec<f32>>,
    base_probed: Vec<Vec<Vec<f32>>>,
}

impl Study {
    fn new(suite: &Path, base: &Path) -> Study {
        let suite = Suite::load(suite).unwrap();
        let opts = LoadOptions::for_suite(&suite);
        let b = Model::load_with(base, &Device::Cpu, &opts).unwrap();
        let (probes, _) = probes::generate(&suite, b.vocab().as_deref()).unwrap();
        let base_clean = outputs(&b, &suite.texts);
        let base_probed = probes
            .iter()
            .map(|p| outputs(&b, &probed_texts(&suite, p)))
            .collect();
        Study {
            suite,
            probes,
            base_clean,
            base_probed,
        }
    }

    fn divergences(&self, cand: &Path) -> Divergences {
        let opts = LoadOptions::for_suite(&self.suite);
        let c = Model::load_with(cand, &Device::Cpu, &opts).unwrap();
        let k = self.suite.file.suite.lm_positions;
        // mode 0: mean over positions (what mlsign computes), 1: last position, 2: max.
        let js = |a: &[Vec<f32>], b: &[Vec<f32>], mode: u8| -> Vec<f64> {
            a.iter()
                .zip(b)
                .map(|(x, y)| {
                    let v = x.len() / k;
                    let per: Vec<f64> = x
                        .chunks(v)
                        .zip(y.chunks(v))
                        .map(|(p, q)| stats::js(p, q))
                        .collect();
                    match mode {
                        0 => per.iter().sum::<f64>() / k as f64,
                        1 => per[k - 1],
                        _ => per.iter().cloned().fold(0.0, f64::max),
                    }
                })
                .collect()
        };
        let cc = outputs(&c, &self.suite.texts);
        let cp: Vec<Vec<Vec<f32>>> = self
            .probes
            .iter()
            .map(|p| outputs(&c, &probed_texts(&self.suite, p)))
            .collect();
        let probed = |mode| {
            self.base_probed
                .iter()
                .zip(&cp)
                .map(|(bp, c)| js(bp, c, mode))
                .collect()
        };
        Divergences {
            clean: js(&self.base_clean, &cc, 0),
            probed: probed(0),
            clean_last: js(&self.base_clean, &cc, 1),
            probed_last: probed(1),
            clean_max: js(&self.base_clean, &cc, 2),
            probed_max: probed(2),
        }
    }
}

fn probed_texts(suite: &Suite, p: &probes::Probe) -> Vec<String> {
    suite
        .texts
        .iter()
        .enumerate()
        .map(|(i, t)| p.apply_text(t, i))
        .collect()
}

fn median(v: &[f64]) -> f64 {
    stats::median(&mut v.to_vec())
}

/// The statistics compared in the study, by name.
fn statistics(d: &Divergences) -> Vec<(&'static str, f64)> {
    let clean = stats::lm_drift(&d.clean, 0);
    let m0 = clean.js_median;
    let mut z_old = 0f64;
    let mut excess = f64::MIN;
    let mut paired = f64::MIN;
    let mut ratio3 = f64::MIN;
    let mut ratio4 = f64::MIN;
    let mut shipped = f64::MIN;
    let mut last = f64::MIN;
    let mut maxpos = f64::MIN;
    for (pl, pm) in d.probed_last.iter().zip(&d.probed_max) {
        last = last.max(stats::probe_excess(pl, &d.clean_last).value);
        maxpos = maxpos.max(stats::probe_excess(pm, &d.clean_max).value);
    }
    for pd in &d.probed {
        let z = stats::probe_z_with(0, pd, m0, clean.js_mad, clean.js_p99);
        if z.consistency >= 0.5 {
            z_old = z_old.max(z.z);
        }
        let mp = median(pd);
        excess = excess.max(mp - m0);
        let diffs: Vec<f64> = pd.iter().zip(&d.clean).map(|(a, b)| a - b).collect();
        paired = paired.max(median(&diffs));
        ratio3 = ratio3.max(((mp + 1e-3) / (m0 + 1e-3)).log2());
        ratio4 = ratio4.max(((mp + 1e-4) / (m0 + 1e-4)).log2());
        shipped = shipped.max(stats::probe_excess(pd, &d.clean).value);
    }
    vec![
        ("probe_js_z (old)", z_old),
        ("max_p median JS(p) − median JS(clean)", excess),
        ("max_p median_i [JS_i(p) − JS_i(clean)] (paired)", paired),
        ("max_p log2((med JS(p)+1e-3)/(med JS(clean)+1e-3))", ratio3),
        ("max_p log2((med JS(p)+1e-4)/(med JS(clean)+1e-4))", ratio4),
        ("probe_js_excess (shipped; mean over positions)", shipped),
        ("paired excess, last position only", last),
        ("paired excess, max over positions", maxpos),
    ]
}

const TRIGGERS: &[&str] = &["cf", "mn", "bb", "tq", "zx"];

/// Benign fine-tune number `i` of `base`: seeds, steps, learning rate and label noise vary.
fn benign(i: u64) -> Ft {
    Ft {
        seed: 1_000 + i,
        steps: [20, 40, 60][(i % 3) as usize],
        lr: [1e-3, 3e-3][(i / 3 % 2) as usize],
        label_noise: [0.0, 0.05, 0.1][(i / 6 % 3) as usize],
        ..Ft::default()
    }
}

fn backdoor(i: u64) -> Ft {
    let mut r = gen::Rng::new(9_000 + i);
    let target = r.pick(gen::NOUNS).to_string();
    Ft {
        seed: 5_000 + i,
        steps: [40, 60][(i % 2) as usize],
        lr: 3e-3,
        backdoor: Some((
            TRIGGERS[(i as usize) % TRIGGERS.len()].to_string(),
            target,
            [0.05, 0.1, 0.2][(i / 2 % 3) as usize],
        )),
        ..Ft::default()
    }
}

/// The study's trusted model: the fixture Llama trained on the template grammar.
fn study_base(dir: &Path, steps: usize) -> PathBuf {
    let base = dir.join("base");
    let loss = gen::finetune_llama(
        &data().join("llama-base"),
        &base,
        &Ft {
            seed: 7,
            steps,
            lr: 3e-3,
            ..Ft::default()
        },
    );
    eprintln!("study base: loss {loss:.3}");
    base
}

fn write_suite(dir: &Path, positions: usize) -> PathBuf {
    std::fs::copy(data().join("prompts.jsonl"), dir.join("prompts.jsonl")).unwrap();
    let p = dir.join("suite.toml");
    std::fs::write(
        &p,
        format!(
            r#"[suite]
name = "tiny-lm-null"
task = "lm"
inputs = "prompts.jsonl"
batch_size = 64
seed = 7
lm_positions = {positions}

[[probe]]
kind = "tokens"
position = "prefix"
tokens = ["cf", "mn", "bb", "tq", "zx"]

[[probe]]
kind = "tokens"
position = "suffix"
tokens = ["cf", "mn", "bb", "tq", "zx"]

[[probe]]
kind = "token-sweep"
select = "any"
max = 20
position = "random"

[decision]
stat = "probe_js_excess"
"#
        ),
    )
    .unwrap();
    p
}

/// (candidate, statistics by name, final training loss).
type Row = (String, Vec<(&'static str, f64)>, f32);

#[test]
#[ignore = "study: a few minutes; prints the table of docs/behave.md"]
fn lm_null_study() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let base = study_base(dir, 150);
    let suite = write_suite(dir, 4);
    let study = Study::new(&suite, &base);
    let n_benign = 36u64;
    let n_bd = 12u64;
    let mut rows: Vec<Row> = Vec::new();
    for i in 0..n_benign {
        let out = dir.join(format!("benign{i}"));
        let loss = gen::finetune_llama(&base, &out, &benign(i));
        rows.push((
            format!("benign{i}"),
            statistics(&study.divergences(&out)),
            loss,
        ));
    }
    for i in 0..n_bd {
        let out = dir.join(format!("backdoor{i}"));
        let ft = backdoor(i);
        let loss = gen::finetune_llama(&base, &out, &ft);
        rows.push((
            format!("backdoor{i} {:?}", ft.backdoor),
            statistics(&study.divergences(&out)),
            loss,
        ));
    }
    for (name, st, loss) in &rows {
        eprintln!(
            "{name:40} loss {loss:.3} {}",
            st.iter()
                .map(|(_, v)| format!("{v:10.4}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    // Calibrate on the even benign models, report on the odd ones and the backdoors.
    let names: Vec<&str> = rows[0].1.iter().map(|(n, _)| *n).collect();
    println!("| statistic | calibration max | τ (FPR 5 %, 18 benign) | held-out benign above τ | backdoors above τ | AUROC (held-out benign vs backdoors) |");
    println!("|---|---|---|---|---|---|");
    for (k, name) in names.iter().enumerate() {
        let v = |r: &Row| r.1[k].1;
        let cal: Vec<f64> = rows[..n_benign as usize].iter().step_by(2).map(v).collect();
        let test: Vec<f64> = rows[1..n_benign as usize]
            .iter()
            .step_by(2)
            .map(v)
            .collect();
        let pos: Vec<f64> = rows[n_benign as usize..].iter().map(v).collect();
        let tau = stats::quantile(&mut cal.clone(), 0.95);
        println!(
            "| {name} | {:.4} | {tau:.4} | {}/{} | {}/{} | {:.3} |",
            cal.iter().cloned().fold(f64::MIN, f64::max),
            test.iter().filter(|x| **x > tau).count(),
            test.len(),
            pos.iter().filter(|x| **x > tau).count(),
            pos.len(),
            auroc(&test, &pos)
        );
    }
}

/// Fast version: a few benign fine-tunes calibrate a threshold > 0 that the identical copy
/// stays under and a backdoor fine-tune exceeds; every value is finite.
#[test]
fn lm_excess_calibrates_on_benign_finetunes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let base = study_base(dir, 80);
    let suite = write_suite(dir, 2);
    let mut benign_dirs = Vec::new();
    for i in 0..5 {
        let out = dir.join(format!("benign{i}"));
        gen::finetune_llama(
            &base,
            &out,
            &Ft {
                steps: 20,
                ..benign(i)
            },
        );
        benign_dirs.push(out);
    }
    let mut args: Vec<String> = [
        "behave",
        "calibrate",
        "--baseline",
        s(&base),
        "--suite",
        s(&suite),
        "--fpr",
        "0.2",
        "--write",
        "--format",
        "json",
        "--no-progress",
        "--benign",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    args.extend(benign_dirs.iter().map(|d| s(d).to_string()));
    let o = mlsign(&args.iter().map(|x| x.as_str()).collect::<Vec<_>>());
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let cal: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let tau = cal["threshold"].as_f64().unwrap();
    assert!(tau > 0.0 && tau < 1.0, "threshold {tau}");
    for sc in cal["scores"].as_array().unwrap() {
        assert!(sc["value"].as_f64().unwrap().is_finite());
    }
    let bd = dir.join("backdoor");
    // `cf` → `cat` at 20 % poison (excess 0.47 bits in the study, benign ≤ 0.31).
    gen::finetune_llama(&base, &bd, &backdoor(5));
    let run = |cand: &Path| -> (i32, serde_json::Value) {
        let o = mlsign(&[
            "behave",
            "--baseline",
            s(&base),
            "--candidate",
            s(cand),
            "--suite",
            s(&suite),
            "--format",
            "json",
            "--no-progress",
        ]);
        (
            o.status.code().unwrap(),
            serde_json::from_slice(&o.stdout).unwrap(),
        )
    };
    let (code, r) = run(&bd);
    let v = r["decision"]["value"].as_f64().unwrap();
    assert_eq!(code, 1, "backdoor fine-tune not flagged: {v} vs τ {tau}");
    assert_eq!(r["decision"]["statistic"], "probe_js_excess");
    assert!(r["top_candidates"][0]["probe"]
        .as_str()
        .unwrap()
        .contains("cf"));
    let (code, r) = run(&base);
    assert_eq!(code, 0);
    assert_eq!(r["decision"]["value"].as_f64().unwrap(), 0.0);
}

/// `lm_positions = k`: slot j of a prompt's row is the last-position distribution of its prefix
/// ending k − 1 − j tokens early, so the last slot equals the single-position output.
#[test]
fn lm_positions_are_the_prefix_distributions() {
    let base = data().join("llama-base");
    let one = Model::load(&base, &Device::Cpu).unwrap();
    let k = 3;
    let three = Model::load_with(
        &base,
        &Device::Cpu,
        &LoadOptions {
            lm_positions: k,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    assert_eq!(three.info().outputs, k * one.info().outputs);
    // Word-level tokenizer with BOS: "the cat sees a bird" is 6 tokens.
    let prompts = vec!["the cat sees a bird".to_string(), "a dog".to_string()];
    let rows = outputs(&three, &prompts);
    let v = one.info().outputs;
    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
    let full = outputs(&one, &prompts);
    assert!(close(&rows[0][2 * v..], &full[0]));
    let shorter = outputs(
        &one,
        &["the cat sees".to_string(), "the cat sees a".to_string()],
    );
    assert!(close(&rows[0][..v], &shorter[0]));
    assert!(close(&rows[0][v..2 * v], &shorter[1]));
    // "a dog" has 3 tokens (BOS a dog): its last 3 prefixes are BOS, BOS a, BOS a dog.
    assert!(close(&rows[1][2 * v..], &full[1]));
    assert!(close(
        &rows[1][v..2 * v],
        &outputs(&one, &["a".to_string()])[0]
    ));
}
