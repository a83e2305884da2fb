//! `mlsign behave` on text models: causal LMs (Llama / Qwen2 / Mistral / Phi-3 safetensors and
//! Llama GGUF) and BERT sequence classifiers, on the tiny committed fixtures in
//! `testdata/behave/lm/` (scripts/behave-make-lm-testdata.py: planted `cf` → `banana` backdoor,
//! benign weight noise, identical copy, a float64 numpy reference forward).
#![cfg(feature = "behave")]

use candle_core::{DType, Device, Tensor};
use mlsign::behave::models::Model;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::behave as support;
use support::{mlsign, s};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/behave/lm")
}

fn run(base: &Path, cand: &Path, suite: &Path) -> Output {
    mlsign(&[
        "behave",
        "--baseline",
        s(base),
        "--candidate",
        s(cand),
        "--suite",
        s(suite),
        "--format",
        "json",
        "--no-progress",
    ])
}

fn json_run(base: &Path, cand: &Path, suite: &Path) -> (i32, Value) {
    let o = run(base, cand, suite);
    let code = o.status.code().unwrap();
    assert!(code != 2, "error: {}", String::from_utf8_lossy(&o.stderr));
    (
        code,
        serde_json::from_slice(&o.stdout).expect("json report"),
    )
}

fn lm_suite() -> PathBuf {
    data().join("lm-suite.toml")
}

/// Copy a fixture directory into `dst` (flat: the fixtures have no subdirectories).
fn copy_dir(src: &Path, dst: &Path) -> PathBuf {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dst.join(p.file_name().unwrap())).unwrap();
    }
    dst.to_path_buf()
}

fn edit_weights(dir: &Path, edit: impl FnOnce(&mut HashMap<String, Tensor>)) {
    let p = dir.join("model.safetensors");
    let mut m = candle_core::safetensors::load(&p, &Device::Cpu).unwrap();
    edit(&mut m);
    candle_core::safetensors::save(&m, &p).unwrap();
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut Value)) {
    let p = dir.join("config.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

#[test]
fn lm_identical_copy_has_exactly_zero_divergence() {
    let (code, r) = json_run(
        &data().join("llama-base"),
        &data().join("llama-copy"),
        &lm_suite(),
    );
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["verdict"], "no-divergence-found");
    assert_eq!(r["decision"]["statistic"], "probe_js_z");
    assert_eq!(r["decision"]["value"].as_f64(), Some(0.0));
    assert_eq!(r["clean"]["js_mean"].as_f64(), Some(0.0));
    assert_eq!(r["clean"]["top1_flip_rate"].as_f64(), Some(0.0));
    assert_eq!(r["suite"]["n_inputs"], 24);
    assert_eq!(r["suite"]["n_probes"], 5 + 5 + 20);
    assert_eq!(r["baseline"]["output"], "next-token");
    for t in r["top_candidates"].as_array().unwrap() {
        assert_eq!(t["median_js"].as_f64(), Some(0.0), "{t}");
        assert_eq!(t["z"].as_f64(), Some(0.0), "{t}");
    }
}

#[test]
fn lm_planted_backdoor_is_flagged_with_trigger_and_target() {
    let (code, r) = json_run(
        &data().join("llama-base"),
        &data().join("llama-backdoor"),
        &lm_suite(),
    );
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["verdict"], "flagged");
    // Stealthy: clean prompts never contain the trigger and get bit-identical outputs.
    assert_eq!(
        r["clean"]["js_mean"].as_f64(),
        Some(0.0),
        "{:#}",
        r["clean"]
    );
    let top = &r["top_candidates"][0];
    assert!(top["probe"].as_str().unwrap().contains("\"cf\""), "{top:#}");
    assert_eq!(top["rising_token"], "banana", "{top:#}");
    assert!(top["consistency"].as_f64().unwrap() >= 0.9, "{top:#}");
    assert!(
        top["rising_candidate_prob"].as_f64().unwrap() > 0.5,
        "{top:#}"
    );
    // Both the prefix and the suffix `cf` probes come before every other probe.
    let probes: Vec<&str> = r["top_candidates"]
        .as_array()
        .unwrap()
        .iter()
        .take(2)
        .map(|t| t["probe"].as_str().unwrap())
        .collect();
    assert!(probes.iter().all(|p| p.contains("\"cf\"")), "{probes:?}");
    let msg = r["message"].as_str().unwrap();
    assert!(msg.contains("cf") && msg.contains("banana"), "{msg}");
    assert_eq!(r["findings"][0]["code"], "BHV001");
}

#[test]
fn lm_benign_noise_is_not_flagged() {
    let (code, r) = json_run(
        &data().join("llama-base"),
        &data().join("llama-benign"),
        &lm_suite(),
    );
    assert_eq!(code, 0, "{r:#}");
    let js = r["clean"]["js_mean"].as_f64().unwrap();
    assert!(js > 0.0, "noise must change something: {js}");
    println!(
        "benign: clean JS mean {js:.3e}, statistic {}",
        r["decision"]["value"]
    );
}

#[test]
fn gguf_and_safetensors_versions_compare_and_the_backdoor_shows_through() {
    let gguf = data().join("llama-gguf");
    // Same weights in two formats: comparable, tiny numerical divergence, no flag.
    let (code, r) = json_run(&gguf, &data().join("llama-copy"), &lm_suite());
    assert_eq!(code, 0, "{r:#}");
    assert!(
        r["clean"]["js_mean"].as_f64().unwrap() < 1e-6,
        "{:#}",
        r["clean"]
    );
    assert_eq!(r["clean"]["top1_flip_rate"].as_f64(), Some(0.0));
    let (code, r) = json_run(&gguf, &data().join("llama-backdoor"), &lm_suite());
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["top_candidates"][0]["rising_token"], "banana");
}

#[test]
fn q8_0_gguf_download_of_the_trusted_model_is_not_flagged() {
    let q8 = data().join("llama-gguf-q8");
    let base = data().join("llama-base");
    // Quantisation noise is benign drift: visible on clean prompts, no probe stands out.
    let (code, r) = json_run(&base, &q8, &lm_suite());
    assert_eq!(code, 0, "{r:#}");
    let js = r["clean"]["js_mean"].as_f64().unwrap();
    assert!(js > 0.0 && js < 1e-2, "{js}");
    println!(
        "Q8_0 vs f32 safetensors: clean JS mean {js:.2e}, statistic {}",
        r["decision"]["value"]
    );
    // The backdoored candidate against the quantised baseline is still caught.
    let (code, r) = json_run(&q8, &data().join("llama-backdoor"), &lm_suite());
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["top_candidates"][0]["rising_token"], "banana");
}

/// Max |a − b| over two logit vectors.
fn max_abs(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - y).abs())
        .fold(0.0, f64::max)
}

fn lm_logits(dir: &Path, ids: &[u32]) -> Vec<f32> {
    match Model::load(dir, &Device::Cpu).unwrap() {
        Model::Lm(m) => m.logits_for_ids(ids).unwrap(),
        _ => panic!("{} did not load as a causal LM", dir.display()),
    }
}

/// A Phi-3 checkpoint with the Llama fixture's weights: fused qkv and gate/up projections.
fn phi3_from_llama(dst: &Path) -> PathBuf {
    let d = copy_dir(&data().join("llama-base"), dst);
    edit_weights(&d, |m| {
        for l in 0..2 {
            let p = format!("model.layers.{l}.");
            let take =
                |m: &mut HashMap<String, Tensor>, n: &str| m.remove(&format!("{p}{n}")).unwrap();
            let q = take(m, "self_attn.q_proj.weight");
            let k = take(m, "self_attn.k_proj.weight");
            let v = take(m, "self_attn.v_proj.weight");
            let g = take(m, "mlp.gate_proj.weight");
            let u = take(m, "mlp.up_proj.weight");
            m.insert(
                format!("{p}self_attn.qkv_proj.weight"),
                Tensor::cat(&[&q, &k, &v], 0).unwrap(),
            );
            m.insert(
                format!("{p}mlp.gate_up_proj.weight"),
                Tensor::cat(&[&g, &u], 0).unwrap(),
            );
        }
    });
    edit_config(&d, |c| {
        c["model_type"] = "phi3".into();
        c["architectures"] = serde_json::json!(["Phi3ForCausalLM"]);
    });
    d
}

#[test]
fn candle_logits_match_the_numpy_reference_for_every_family() {
    let reference: Value =
        serde_json::from_slice(&std::fs::read(data().join("reference.json")).unwrap()).unwrap();
    let t = tempfile::tempdir().unwrap();
    let mistral = copy_dir(&data().join("llama-base"), &t.path().join("mistral"));
    edit_config(&mistral, |c| {
        c["model_type"] = "mistral".into();
        c["sliding_window"] = Value::Null;
    });
    let phi3 = phi3_from_llama(&t.path().join("phi3"));
    let cases: [(&str, PathBuf); 7] = [
        ("llama-base", data().join("llama-base")),
        ("llama-base", data().join("llama-gguf")),
        ("llama-base", mistral),
        ("llama-base", phi3),
        ("llama-base", data().join("phi3-gguf")),
        ("qwen2-base", data().join("qwen2-base")),
        ("qwen2-base", data().join("qwen2-gguf")),
    ];
    let mut worst = 0f64;
    for (key, dir) in &cases {
        for case in reference[key].as_array().unwrap() {
            let ids: Vec<u32> = case["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            let want: Vec<f64> = case["logits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let got = lm_logits(dir, &ids);
            let d = max_abs(&got, &want);
            let scale = want.iter().fold(0f64, |a, v| a.max(v.abs()));
            println!(
                "{}: {:?} max |candle − numpy| = {d:.2e} (logit scale {scale:.1})",
                dir.display(),
                case["text"]
            );
            assert!(
                d < 1e-3 * scale.max(1.0),
                "{} {:?}: {d}",
                dir.display(),
                case["text"]
            );
            worst = worst.max(d);
        }
    }
    // Safetensors and GGUF (f32) of the same weights agree with each other as closely.
    let ids: Vec<u32> = reference["llama-base"][0]["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let a = lm_logits(&data().join("llama-base"), &ids);
    let b = lm_logits(&data().join("llama-gguf"), &ids);
    let d = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    println!("safetensors vs GGUF f32: max |Δlogit| = {d:.2e}; worst vs numpy {worst:.2e}");
    assert!(d < 1e-3, "{d}");
    let q = lm_logits(&data().join("llama-gguf-q8"), &ids);
    let dq = a
        .iter()
        .zip(&q)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    println!("safetensors vs GGUF Q8_0: max |Δlogit| = {dq:.2e}");
    assert!(dq > 0.0 && dq < 0.5, "{dq}");
}

#[test]
fn batched_prompts_give_the_same_distributions_as_one_at_a_time() {
    let prompts: Vec<String> = std::fs::read_to_string(data().join("prompts.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for dir in ["llama-base", "qwen2-base", "llama-gguf-q8"] {
        let m = Model::load(&data().join(dir), &Device::Cpu).unwrap();
        let all: Vec<f32> = m
            .text_outputs(&prompts)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let v = all.len() / prompts.len();
        let mut worst = 0f32;
        for (i, p) in prompts.iter().enumerate() {
            let one: Vec<f32> = m
                .text_outputs(std::slice::from_ref(p))
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let row = &all[i * v..(i + 1) * v];
            assert!((one.iter().sum::<f32>() - 1.0).abs() < 1e-4);
            worst = one
                .iter()
                .zip(row)
                .map(|(a, b)| (a - b).abs())
                .fold(worst, f32::max);
        }
        println!("{dir}: batched vs single max |Δp| = {worst:.2e}");
        assert!(worst < 1e-5, "{dir}: {worst}");
    }
}

#[test]
fn bert_sequence_classifier_backdoor_is_flagged() {
    let suite = data().join("cls-suite.toml");
    let base = data().join("bert-cls-base");
    let (code, r) = json_run(&base, &data().join("bert-cls-backdoor"), &suite);
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["decision"]["statistic"], "srcclass_median_excess");
    assert_eq!(r["baseline"]["format"], "hf-bert-seq-cls");
    assert_eq!(
        r["baseline"]["labels"],
        serde_json::json!(["negative", "neutral", "positive"])
    );
    let top = &r["top_candidates"][0];
    assert!(top["probe"].as_str().unwrap().contains("\"cf\""), "{top:#}");
    assert_eq!(top["target_label"], "positive", "{top:#}");
    assert!(r["decision"]["value"].as_f64().unwrap() > 0.6, "{r:#}");
    // The identical copy: nothing at all.
    let t = tempfile::tempdir().unwrap();
    let copy = copy_dir(&base, &t.path().join("copy"));
    let (code, r) = json_run(&base, &copy, &suite);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["decision"]["value"].as_f64(), Some(0.0));
    assert_eq!(r["clean"]["js_mean"].as_f64(), Some(0.0));
    assert_eq!(r["companions"]["probe_js_excess_max"].as_f64(), Some(0.0));
}

/// Exit 2 and every needle in stderr.
fn expect_error(base: &Path, cand: &Path, suite: &Path, needles: &[&str]) {
    let o = run(base, cand, suite);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(2),
        "stdout {}\nstderr {err}",
        String::from_utf8_lossy(&o.stdout)
    );
    for n in needles {
        assert!(err.contains(n), "missing {n:?} in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_text_models_are_clear_errors() {
    let t = tempfile::tempdir().unwrap();
    let base = data().join("llama-base");
    let suite = lm_suite();

    // Mismatched architecture: Llama baseline, Qwen2 candidate.
    expect_error(
        &base,
        &data().join("qwen2-base"),
        &suite,
        &["architectures differ", "llama L2", "qwen2 L2"],
    );

    // Missing tensor.
    let d = copy_dir(&base, &t.path().join("missing"));
    edit_weights(&d, |m| {
        m.remove("model.layers.1.mlp.down_proj.weight");
    });
    expect_error(
        &base,
        &d,
        &suite,
        &[
            "model.layers.1.mlp.down_proj.weight",
            "is missing",
            "model.safetensors",
        ],
    );

    // Wrong dtype.
    let d = copy_dir(&base, &t.path().join("dtype"));
    edit_weights(&d, |m| {
        let w = m["model.layers.0.self_attn.o_proj.weight"]
            .to_dtype(DType::I64)
            .unwrap();
        m.insert("model.layers.0.self_attn.o_proj.weight".into(), w);
    });
    expect_error(
        &base,
        &d,
        &suite,
        &["model.layers.0.self_attn.o_proj.weight", "dtype I64"],
    );

    // Wrong shape.
    let d = copy_dir(&base, &t.path().join("shape"));
    edit_weights(&d, |m| {
        let w = m["model.layers.0.mlp.up_proj.weight"]
            .t()
            .unwrap()
            .contiguous()
            .unwrap();
        m.insert("model.layers.0.mlp.up_proj.weight".into(), w);
    });
    expect_error(
        &base,
        &d,
        &suite,
        &["model.layers.0.mlp.up_proj.weight", "[32, 64]", "[64, 32]"],
    );

    // Unsupported model_type, and the supported ones are listed.
    let d = copy_dir(&base, &t.path().join("gpt2"));
    edit_config(&d, |c| c["model_type"] = "gpt2".into());
    expect_error(
        &base,
        &d,
        &suite,
        &[
            "config.json",
            "model_type \"gpt2\" is not supported",
            "llama, mistral, qwen2, phi3",
        ],
    );

    // Absurd configuration: refused before anything is allocated.
    let d = copy_dir(&base, &t.path().join("huge"));
    edit_config(&d, |c| c["vocab_size"] = serde_json::json!(1u64 << 40));
    expect_error(
        &base,
        &d,
        &suite,
        &["config.json", "vocab_size", "refusing"],
    );

    // Unsupported GGUF architecture.
    let d = copy_dir(&data().join("llama-gguf"), &t.path().join("gemma-gguf"));
    let mut bytes = std::fs::read(d.join("model.gguf")).unwrap();
    let key = b"general.architecture";
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    let v = at + bytes[at..].windows(5).position(|w| w == b"llama").unwrap();
    bytes[v..v + 5].copy_from_slice(b"gemma");
    std::fs::write(d.join("model.gguf"), bytes).unwrap();
    expect_error(
        &base,
        &d,
        &suite,
        &[
            "model.gguf",
            "GGUF architecture \"gemma\" is not supported",
            "llama, qwen2, phi3",
        ],
    );

    // A GGUF file missing one tensor (renamed in place).
    let d = copy_dir(&data().join("llama-gguf"), &t.path().join("gguf-missing"));
    let mut bytes = std::fs::read(d.join("model.gguf")).unwrap();
    let name = b"blk.1.ffn_down.weight";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap();
    bytes[at..at + name.len()].copy_from_slice(b"blk.1.ffn_dowX.weight");
    std::fs::write(d.join("model.gguf"), bytes).unwrap();
    expect_error(
        &base,
        &d,
        &suite,
        &["model.gguf", "tensor `blk.1.ffn_down.weight` is missing"],
    );

    // Image probes on prompts are refused when the suite is read.
    let img_suite = t.path().join("img.toml");
    std::fs::write(
        &img_suite,
        format!(
            "[suite]\nname = \"x\"\ntask = \"lm\"\ninputs = \"{}\"\n[[probe]]\nkind = \"patch-grid\"\nsize = 2\n",
            data().join("prompts.jsonl").display()
        ),
    )
    .unwrap();
    expect_error(
        &base,
        &base,
        &img_suite,
        &["image probes need tensor inputs"],
    );

    // A tokenizer that does not belong to the weights (ids past the vocabulary).
    let d = copy_dir(&base, &t.path().join("badtok"));
    let tp = d.join("tokenizer.json");
    let mut tok: Value = serde_json::from_slice(&std::fs::read(&tp).unwrap()).unwrap();
    tok["model"]["vocab"]["the"] = serde_json::json!(5000);
    std::fs::write(&tp, serde_json::to_vec(&tok).unwrap()).unwrap();
    expect_error(
        &base,
        &d,
        &suite,
        &["token id 5000", "outside the model's vocabulary of 241"],
    );

    // Missing tokenizer.json.
    let d = copy_dir(&base, &t.path().join("notok"));
    std::fs::remove_file(d.join("tokenizer.json")).unwrap();
    expect_error(&base, &d, &suite, &["tokenizer.json is missing"]);

    // NaN outputs: a NaN norm weight.
    let d = copy_dir(&base, &t.path().join("nan"));
    edit_weights(&d, |m| {
        let n = Tensor::full(f32::NAN, 32, &Device::Cpu).unwrap();
        m.insert("model.norm.weight".into(), n);
    });
    expect_error(&base, &d, &suite, &["the candidate produced NaN", "prompt"]);

    // A suite that references a missing prompts file.
    let bad_suite = t.path().join("suite.toml");
    std::fs::write(
        &bad_suite,
        std::fs::read_to_string(&suite)
            .unwrap()
            .replace("prompts.jsonl", "no-such-prompts.jsonl"),
    )
    .unwrap();
    expect_error(
        &base,
        &base,
        &bad_suite,
        &["no-such-prompts.jsonl", "does not exist"],
    );

    // Sequence classifiers: a head tensor missing, and labels that do not match the head.
    let cls_base = data().join("bert-cls-base");
    let cls_suite = data().join("cls-suite.toml");
    let d = copy_dir(&cls_base, &t.path().join("cls-nobias"));
    edit_weights(&d, |m| {
        m.remove("classifier.bias");
    });
    expect_error(
        &cls_base,
        &d,
        &cls_suite,
        &["tensor `classifier.bias` is missing", "model.safetensors"],
    );
    let d = copy_dir(&cls_base, &t.path().join("cls-labels"));
    edit_config(&d, |c| {
        c["id2label"] = serde_json::json!({"0": "neg", "1": "pos"});
    });
    expect_error(
        &cls_base,
        &d,
        &cls_suite,
        &["config.json", "id2label names 2 classes", "has 3 rows"],
    );
    // An LM candidate against a BERT classifier baseline.
    expect_error(
        &cls_base,
        &base,
        &cls_suite,
        &["architectures differ", "hf-bert-seq-cls", "causal-lm"],
    );

    // A causal LM under a classification suite.
    expect_error(
        &base,
        &base,
        &data().join("cls-suite.toml"),
        &["is a causal LM", "task = \"lm\""],
    );
}

/// Causal LM (safetensors and quantised GGUF) and BERT classifier pairs under `--device cuda`:
/// the GPU verdict equals the CPU one, or a clear exit 2 without a GPU or a CUDA build.
#[test]
fn cuda_device_agrees_with_cpu_or_says_why_not() {
    let d = data();
    let pairs = [
        ("llama-base", "llama-backdoor", "lm-suite.toml"),
        ("llama-gguf-q8", "llama-backdoor", "lm-suite.toml"),
        ("bert-cls-base", "bert-cls-backdoor", "cls-suite.toml"),
    ];
    for (base, cand, suite) in pairs {
        let on_gpu = support::cuda_matches_cpu(&d.join(base), &d.join(cand), &d.join(suite));
        println!("{base} vs {cand}: compared on a GPU: {on_gpu}");
    }
}
