//! Differential trigger-token search (`[token_search]`, issue 15 §2) on text models: the
//! committed tiny BERT classifier and Llama fixtures (planted `cf` backdoors), fine-tunes trained
//! here with candle (tests/cli/support/behave_lm_gen.rs), and a quantised GGUF, for which the
//! search must say it is unavailable.
//!
//! `token_search_population_study` (ignored: a few minutes) prints the detection table of
//! docs/behave.md: `cargo test --features onnx --test cli behave_tokens:: -- --ignored --nocapture`.
#![cfg(feature = "behave")]

use candle_core::{Device, Tensor};
use serde_json::Value;
use std::path::{Path, PathBuf};

use crate::support::behave as support;
use support::{mlsign, s};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/behave/lm")
}

/// Runs one baseline against candidates, JSON reports (an array when several).
fn behave(base: &Path, cands: &[&Path], suite: &Path) -> (i32, Vec<Value>) {
    let mut args = vec!["behave", "--baseline", s(base)];
    for c in cands {
        args.push("--candidate");
        args.push(s(c));
    }
    args.extend(["--suite", s(suite), "--format", "json", "--no-progress"]);
    let o = mlsign(&args);
    let code = o.status.code().unwrap();
    assert!(
        code == 0 || code == 1,
        "exit {code}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&o.stdout).expect("json report");
    let reports = match v {
        Value::Array(a) => a,
        one => vec![one],
    };
    (code, reports)
}

fn write_suite(dir: &Path, task: &str, prompts: &Path, search: &str) -> PathBuf {
    let p = dir.join(format!("{task}-tokens.toml"));
    let (probe, decision) = if task == "lm" {
        ("suffix", "stat = \"probe_js_excess\"")
    } else {
        (
            "prefix",
            "stat = \"srcclass_median_excess\"\nthreshold = 0.5\nmin_support = 10",
        )
    };
    std::fs::write(
        &p,
        format!(
            r#"[suite]
name = "tokens"
task = "{task}"
inputs = "{}"
batch_size = 512
seed = 3

[[probe]]
kind = "tokens"
position = "{probe}"
tokens = ["mn"]

[decision]
{decision}

[token_search]
{search}
"#,
            s(prompts)
        ),
    )
    .unwrap();
    p
}

fn copy_dir(src: &Path, dst: &Path) -> PathBuf {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dst.join(p.file_name().unwrap())).unwrap();
    }
    dst.to_path_buf()
}

/// A copy of `src` with N(0, σ²) added to every weight (a benign drift).
fn noisy_copy(src: &Path, dst: &Path, sigma: f64) -> PathBuf {
    copy_dir(src, dst);
    let p = dst.join("model.safetensors");
    let mut m = candle_core::safetensors::load(&p, &Device::Cpu).unwrap();
    for t in m.values_mut() {
        let n = Tensor::randn(0f32, sigma as f32, t.shape(), &Device::Cpu).unwrap();
        *t = (&*t + n).unwrap();
    }
    candle_core::safetensors::save(&m, &p).unwrap();
    dst.to_path_buf()
}

fn codes(r: &Value) -> Vec<String> {
    r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

fn best(r: &Value) -> &Value {
    let ts = &r["token_search"];
    &ts["triggers"][ts["top"].as_u64().expect("a best trigger") as usize]
}

fn tokens(t: &Value) -> Vec<String> {
    t["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn token_search_finds_the_planted_bert_trigger() {
    let t = tempfile::tempdir().unwrap();
    let benign = noisy_copy(
        &data().join("bert-cls-base"),
        &t.path().join("benign"),
        1e-3,
    );
    let suite = write_suite(
        t.path(),
        "classification",
        &data().join("cls-prompts.jsonl"),
        "tokens = 2\nmax_steps = 8\ncandidates = 24\ninputs = 16",
    );
    let bd = data().join("bert-cls-backdoor");
    let copy = data().join("bert-cls-base");
    let (code, r) = behave(
        &data().join("bert-cls-base"),
        &[&bd, &benign, &copy],
        &suite,
    );
    assert_eq!(code, 1);
    // The planted backdoor: its one-token probe library (`mn`) misses it, the search finds `cf`.
    assert_eq!(r[0]["decision"]["flagged"], false);
    assert!(codes(&r[0]).contains(&"BHV007".to_string()), "{}", r[0]);
    assert_eq!(r[0]["verdict"], "flagged");
    let ts = &r[0]["token_search"];
    assert_eq!(ts["available"], true);
    assert_eq!(ts["gradient"], "candidate and baseline");
    let b = best(&r[0]);
    assert!(tokens(b).contains(&"cf".to_string()), "{b}");
    assert_eq!(b["class"], 2);
    assert_eq!(b["label"], "positive");
    assert!(b["candidate_flip"].as_f64().unwrap() >= 0.8, "{b}");
    assert!(b["baseline_flip"].as_f64().unwrap() <= 0.3, "{b}");
    assert!(b["text"].as_str().unwrap().contains("cf"));
    // Benign weight noise and an identical copy: nothing above the threshold.
    for (i, what) in [(1, "benign noise"), (2, "identical copy")] {
        let ts = &r[i]["token_search"];
        assert_eq!(ts["flagged"], false, "{what}: {ts}");
        assert!(ts["value"].as_f64().unwrap() < 0.25, "{what}: {ts}");
        assert!(!codes(&r[i]).contains(&"BHV007".to_string()));
        assert_eq!(r[i]["verdict"], "no-divergence-found", "{what}");
    }
    assert_eq!(r[2]["token_search"]["value"], 0.0);
}

#[test]
fn token_search_finds_the_planted_lm_trigger() {
    let t = tempfile::tempdir().unwrap();
    let suite = write_suite(
        t.path(),
        "lm",
        &data().join("prompts.jsonl"),
        "tokens = 2\nposition = \"suffix\"\nmax_steps = 8\ncandidates = 24\ninputs = 12",
    );
    let bd = data().join("llama-backdoor");
    let benign = data().join("llama-benign");
    let (code, r) = behave(&data().join("llama-base"), &[&bd, &benign], &suite);
    assert_eq!(code, 1);
    assert!(codes(&r[0]).contains(&"BHV007".to_string()), "{}", r[0]);
    let b = best(&r[0]);
    assert!(tokens(b).contains(&"cf".to_string()), "{b}");
    assert_eq!(b["rising_token"], "banana");
    assert!(b["score"].as_f64().unwrap() > 0.9, "{b}");
    let ts = &r[1]["token_search"];
    assert_eq!(ts["flagged"], false, "{ts}");
    assert!(ts["value"].as_f64().unwrap() < 0.05, "{ts}");
    assert_eq!(r[1]["verdict"], "no-divergence-found");
}

#[test]
fn token_search_on_gguf_needs_an_f32_copy() {
    let t = tempfile::tempdir().unwrap();
    let suite = write_suite(
        t.path(),
        "lm",
        &data().join("prompts.jsonl"),
        "tokens = 1\nposition = \"suffix\"\nmax_steps = 6\ncandidates = 16\ninputs = 8",
    );
    // Runs that only check what is reported, not what is found: a minimal budget.
    let quick = t.path().join("quick");
    std::fs::create_dir_all(&quick).unwrap();
    let quick = write_suite(
        &quick,
        "lm",
        &data().join("prompts.jsonl"),
        "tokens = 1\nmax_steps = 1\ncandidates = 2\ninputs = 4",
    );
    let q8 = data().join("llama-gguf-q8");
    let base = data().join("llama-base");
    let bd = data().join("llama-backdoor");
    // A quantised GGUF alone: no gradient, said plainly (BHV008, exit 0 from the probes).
    let (code, r) = behave(&base, &[&q8], &quick);
    assert_eq!(code, 0);
    let ts = &r[0]["token_search"];
    assert_eq!(ts["available"], false);
    let why = ts["reason"].as_str().unwrap();
    assert!(
        why.contains("GGUF") && why.contains("no gradient") && why.contains("f32"),
        "{why}"
    );
    assert!(codes(&r[0]).contains(&"BHV008".to_string()));
    // A GGUF baseline without a copy: the candidate's gradient alone proposes, both judge.
    let (_, r) = behave(&q8, &[&bd], &quick);
    let ts = &r[0]["token_search"];
    assert_eq!(ts["available"], true);
    assert!(
        ts["gradient"]
            .as_str()
            .unwrap()
            .starts_with("candidate only"),
        "{ts}"
    );
    // The GGUF with its f32 copy (the weights it was quantised from) beside it: gradients from
    // the copy, checked against the GGUF; triggers judged on the GGUF itself.
    let with_copy = copy_dir(&q8, &t.path().join("gguf-with-copy"));
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(base.join(f), with_copy.join(f)).unwrap();
    }
    let (code, r) = behave(&with_copy, &[&bd], &suite);
    assert_eq!(code, 1);
    let ts = &r[0]["token_search"];
    assert_eq!(ts["gradient"], "candidate and baseline");
    assert!(
        ts["baseline_f32_copy"]["median_js"].as_f64().unwrap() < 0.01,
        "{ts}"
    );
    assert_eq!(
        r[0]["baseline"]["weights"],
        s(&with_copy.join("model.gguf"))
    );
    let b = best(&r[0]);
    assert!(tokens(b).contains(&"cf".to_string()), "{b}");
    assert_eq!(b["rising_token"], "banana");
    // As the candidate: searched through the copy, nothing found against its own source.
    let (code, r) = behave(&base, &[&with_copy], &suite);
    assert_eq!(code, 0);
    let ts = &r[0]["token_search"];
    assert_eq!(ts["available"], true, "{ts}");
    assert!(ts["candidate_f32_copy"].is_object());
    assert!(ts["value"].as_f64().unwrap() < 0.05, "{ts}");
    // A "copy" that computes something else is refused, naming the disagreement.
    let wrong = copy_dir(&q8, &t.path().join("gguf-wrong-copy"));
    std::fs::copy(base.join("config.json"), wrong.join("config.json")).unwrap();
    let noisy = noisy_copy(&base, &t.path().join("noisy"), 0.5);
    std::fs::copy(
        noisy.join("model.safetensors"),
        wrong.join("model.safetensors"),
    )
    .unwrap();
    let (_, r) = behave(&base, &[&wrong], &quick);
    let ts = &r[0]["token_search"];
    assert_eq!(ts["available"], false);
    assert!(
        ts["reason"]
            .as_str()
            .unwrap()
            .contains("does not compute what the GGUF file computes"),
        "{ts}"
    );
}

#[test]
fn token_search_suite_errors() {
    let t = tempfile::tempdir().unwrap();
    for (task, search, want) in [
        ("embedding", "tokens = 2", "[token_search] applies to"),
        ("lm", "tokens = 0", "token_search.tokens 0"),
        ("lm", "threshold = 2.0", "token_search.threshold 2"),
        ("lm", "position = \"middle\"", "middle"),
    ] {
        let p = write_suite(t.path(), task, &data().join("prompts.jsonl"), search);
        let o = mlsign(&[
            "behave",
            "--baseline",
            s(&data().join("llama-base")),
            "--candidate",
            s(&data().join("llama-copy")),
            "--suite",
            s(&p),
            "--no-progress",
        ]);
        assert_eq!(o.status.code(), Some(2), "{search}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains(want), "{search}: {e}");
    }
}
