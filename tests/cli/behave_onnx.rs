//! `mlsign behave` on ONNX models (cargo feature `onnx`, candle-onnx). Fixtures in
//! testdata/behave/onnx/ come from scripts/behave-make-onnx-testdata.py: the same MLPs as
//! testdata/behave/{base,backdoored,benign} and a small CNN (also in the mlsign network spec, in
//! cnn-net/), a model with an op candle-onnx lacks, one with another architecture, one with
//! external data, and numpy/onnxruntime reference outputs.
#![cfg(feature = "onnx")]

use candle_core::{Device, Tensor};
use mlsign::behave::models::Model;
use serde_json::Value;
use std::path::{Path, PathBuf};

use crate::support::behave as support;
use support::mlsign;

fn td(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/behave")
        .join(rel)
}

fn suite() -> PathBuf {
    td("suite.toml")
}

fn behave_json(base: &Path, cand: &Path) -> (i32, Value) {
    let o = mlsign(&[
        "behave",
        "--baseline",
        base.to_str().unwrap(),
        "--candidate",
        cand.to_str().unwrap(),
        "--suite",
        suite().to_str().unwrap(),
        "--format",
        "json",
        "--no-progress",
    ]);
    let code = o.status.code().expect("exit code");
    assert!(code != 2, "error: {}", String::from_utf8_lossy(&o.stderr));
    (
        code,
        serde_json::from_slice(&o.stdout).expect("json report"),
    )
}

fn expect_error(base: &Path, cand: &Path, needles: &[&str]) {
    let o = mlsign(&[
        "behave",
        "--baseline",
        base.to_str().unwrap(),
        "--candidate",
        cand.to_str().unwrap(),
        "--suite",
        suite().to_str().unwrap(),
        "--no-progress",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    for n in needles {
        assert!(err.contains(n), "`{n}` not in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn candle_onnx_matches_the_numpy_reference() {
    let refs =
        candle_core::safetensors::load(td("onnx/reference.safetensors"), &Device::Cpu).unwrap();
    let x = &refs["x"];
    let mut worst = 0f32;
    for name in [
        "mlp/base",
        "mlp/backdoored",
        "mlp/benign",
        "mlp-batch1",
        "cnn/base",
        "cnn/backdoored",
        "cnn/benign",
        "mismatched-arch",
    ] {
        let m = Model::load(&td(&format!("onnx/{name}")), &Device::Cpu).unwrap();
        assert_eq!(m.info().format, "onnx");
        assert_eq!(m.info().input_shape, vec![1, 8, 8]);
        assert_eq!(m.info().outputs, 10);
        let y = m.probabilities(x).unwrap();
        let want: &Tensor = &refs[name];
        assert_eq!(y.dims(), want.dims(), "{name}");
        let diff: f32 = (y - want)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap();
        eprintln!("{name}: max abs diff vs numpy reference {diff:.3e}");
        assert!(diff < 1e-5, "{name}: max abs diff {diff}");
        worst = worst.max(diff);
    }
    eprintln!("worst max abs diff vs reference: {worst:.3e}");
    // Sanity of the reference itself: the trigger flips every backdoored prediction to class 3.
    let bd: Vec<u32> = refs["mlp/backdoored"].argmax(1).unwrap().to_vec1().unwrap();
    assert_eq!(&bd[8..], &[3; 8]);
}

/// The same fixture in both formats must reach the same verdict and name the same trigger.
fn same_verdict_as_net(onnx_dir: &str, net_dir: &str, flagged: bool) -> Value {
    let (code, r) = behave_json(
        &td(&format!("{onnx_dir}/base")),
        &td(&format!(
            "{onnx_dir}/{}",
            if flagged { "backdoored" } else { "benign" }
        )),
    );
    let (ncode, n) = behave_json(
        &td(&format!("{net_dir}/base")),
        &td(&format!(
            "{net_dir}/{}",
            if flagged { "backdoored" } else { "benign" }
        )),
    );
    assert_eq!(code, if flagged { 1 } else { 0 }, "{r:#}");
    assert_eq!(code, ncode);
    assert_eq!(r["verdict"], n["verdict"]);
    let (v, nv) = (
        r["decision"]["value"].as_f64().unwrap(),
        n["decision"]["value"].as_f64().unwrap(),
    );
    assert!((v - nv).abs() < 0.02, "onnx {v} vs mlsign-net {nv}");
    assert_eq!(r["clean"]["top1_flip_rate"], n["clean"]["top1_flip_rate"]);
    assert_eq!(r["baseline"]["format"], "onnx");
    if flagged {
        assert_eq!(
            r["top_candidates"][0]["probe"],
            n["top_candidates"][0]["probe"]
        );
        assert_eq!(r["top_candidates"][0]["target_class"], 3);
    }
    r
}

#[test]
fn backdoored_mlp_is_flagged_naming_the_trigger() {
    let r = same_verdict_as_net("onnx/mlp", ".", true);
    let top = &r["top_candidates"][0];
    assert!(
        top["probe"]
            .as_str()
            .unwrap()
            .starts_with("patch-grid[0] size=2 at (row 0, col 0)"),
        "{top}"
    );
    // Labels come from the model's metadata_props.
    assert_eq!(top["target_label"], "digit-3");
    assert_eq!(r["baseline"]["labels"][0], "digit-0");
    assert!(r["baseline"]["arch"][1]
        .as_str()
        .unwrap()
        .starts_with("Gemm[[11, 64], [11]]"));
    // Human output names it too.
    let o = mlsign(&[
        "behave",
        "--baseline",
        td("onnx/mlp/base").to_str().unwrap(),
        "--candidate",
        td("onnx/mlp/backdoored/model.onnx").to_str().unwrap(),
        "--suite",
        suite().to_str().unwrap(),
        "--no-progress",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("BHV001") && out.contains("(row 0, col 0)"),
        "{out}"
    );
}

#[test]
fn backdoored_cnn_is_flagged_like_its_mlsign_net_twin() {
    let r = same_verdict_as_net("onnx/cnn", "onnx/cnn-net", true);
    assert!(r["top_candidates"][0]["probe"]
        .as_str()
        .unwrap()
        .contains("(row 0, col 0)"));
    assert!(r["baseline"]["arch"][0]
        .as_str()
        .unwrap()
        .starts_with("Conv[[2, 1, 3, 3], [2]]"));
}

#[test]
fn benign_candidates_pass_like_their_mlsign_net_twins() {
    same_verdict_as_net("onnx/mlp", ".", false);
    same_verdict_as_net("onnx/cnn", "onnx/cnn-net", false);
}

#[test]
fn identical_copy_and_fixed_batch_export_have_zero_divergence() {
    let t = tempfile::tempdir().unwrap();
    let copy = t.path().join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(td("onnx/mlp/base/model.onnx"), copy.join("net.onnx")).unwrap();
    let (code, r) = behave_json(&td("onnx/mlp/base"), &copy);
    assert_eq!(code, 0);
    assert_eq!(r["decision"]["value"].as_f64(), Some(0.0));
    assert_eq!(r["clean"]["js_mean"].as_f64(), Some(0.0));
    assert_eq!(r["companions"]["probe_js_excess_max"].as_f64(), Some(0.0));
    assert_eq!(
        r["baseline"]["weights_sha256"],
        r["candidate"]["weights_sha256"]
    );
    // Batch fixed to 1 in the graph: run per sample, same architecture, same predictions.
    let (code, r) = behave_json(&td("onnx/mlp/base"), &td("onnx/mlp-batch1"));
    assert_eq!(code, 0);
    assert_eq!(r["decision"]["value"].as_f64(), Some(0.0));
    assert_eq!(r["clean"]["top1_flip_rate"].as_f64(), Some(0.0));
    assert!(r["clean"]["js_mean"].as_f64().unwrap() < 1e-9, "{r:#}");
}

#[test]
fn unsupported_op_is_named_before_running() {
    expect_error(
        &td("onnx/mlp/base"),
        &td("onnx/unsupported-op"),
        &[
            "unsupported ONNX op `Softplus` (node `act1`) in model.onnx",
            "supported ops: Abs, Add",
        ],
    );
    // Also as the baseline.
    expect_error(
        &td("onnx/unsupported-op"),
        &td("onnx/mlp/base"),
        &["unsupported ONNX op `Softplus`"],
    );
}

#[test]
fn mismatched_architecture_and_formats_are_errors() {
    expect_error(
        &td("onnx/mlp/base"),
        &td("onnx/mismatched-arch"),
        &[
            "architectures differ",
            "layer 1 is Gemm[[11, 64], [11]] transB=1 in the baseline but Gemm[[12, 64], [12]] transB=1",
        ],
    );
    expect_error(
        &td("base"),
        &td("onnx/mlp/base"),
        &["baseline is mlsign-net/1, candidate is onnx"],
    );
}

#[test]
fn external_data_truncated_and_garbage_files_are_errors() {
    expect_error(
        &td("onnx/mlp/base"),
        &td("onnx/external-data"),
        &[
            "initializer `fc1.weight`",
            "external file (`../weights.bin`)",
        ],
    );
    let t = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(td("onnx/mlp/base/model.onnx")).unwrap();
    let dir = t.path().join("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("model.onnx");
    std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    expect_error(
        &td("onnx/mlp/base"),
        &dir,
        &["model.onnx", "not a valid ONNX model"],
    );
    let mut x = 0x9e3779b97f4a7c15u64;
    let garbage: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&f, &garbage).unwrap();
    expect_error(&td("onnx/mlp/base"), &dir, &["model.onnx"]);
    std::fs::write(&f, b"").unwrap();
    expect_error(&td("onnx/mlp/base"), &dir, &["model.onnx"]);
    // Every prefix of a real model loads or fails cleanly, in process (a panic fails the test);
    // cut inside the graph, none may load.
    let mut loaded = 0;
    for cut in 0..bytes.len() {
        std::fs::write(&f, &bytes[..cut]).unwrap();
        if Model::load(&dir, &Device::Cpu).is_ok() {
            loaded += 1;
            assert!(cut > bytes.len() - 200, "prefix of {cut} bytes loaded");
        }
    }
    eprintln!(
        "{loaded} of {} prefixes loaded (cut after the graph)",
        bytes.len()
    );
    // Two .onnx files in one directory: ambiguous.
    std::fs::write(&f, &bytes).unwrap();
    std::fs::write(dir.join("other.onnx"), &bytes).unwrap();
    expect_error(&td("onnx/mlp/base"), &dir, &["holds 2 .onnx files"]);
}

#[test]
fn mutated_models_load_or_fail_cleanly() {
    // Seeded byte mutations of both fixture graphs, loaded in process (a panic fails the test).
    // Errors must name the file; a panic caught inside candle-onnx is counted and must not occur.
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("model.onnx");
    let mut x = 0x2545f4914f6cdd1du64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut ok, mut failed, mut caught) = (0, 0, 0);
    for src in ["onnx/mlp/base/model.onnx", "onnx/cnn/backdoored/model.onnx"] {
        let orig = std::fs::read(td(src)).unwrap();
        for _ in 0..600 {
            let mut b = orig.clone();
            for _ in 0..1 + next() % 4 {
                let i = (next() as usize) % b.len();
                b[i] = next() as u8;
            }
            std::fs::write(&f, &b).unwrap();
            match Model::load(t.path(), &Device::Cpu) {
                Ok(_) => ok += 1,
                Err(e) => {
                    let e = e.to_string();
                    assert!(
                        e.contains("model.onnx") || e.contains("architectures"),
                        "{e}"
                    );
                    caught += e.contains("panicked") as usize;
                    failed += 1;
                }
            }
        }
    }
    eprintln!("mutations: {ok} loaded, {failed} refused, {caught} candle-onnx panics caught");
    assert_eq!(caught, 0);
    assert!(failed > 100, "{failed}");
}

#[test]
fn every_supported_op_matches_onnxruntime() {
    // testdata/behave/onnx/ops: one graph with every supported op but Gelu; reference
    // log-probabilities from onnxruntime.
    let refs =
        candle_core::safetensors::load(td("onnx/reference.safetensors"), &Device::Cpu).unwrap();
    let m = Model::load(&td("onnx/ops"), &Device::Cpu).unwrap();
    let ops: std::collections::BTreeSet<String> = m
        .info()
        .arch
        .iter()
        .map(|a| a.split('[').next().unwrap().to_string())
        .collect();
    let missing: Vec<&str> = mlsign::behave::models::onnx::SUPPORTED_OPS
        .iter()
        .map(|o| o.0)
        // Flatten, Relu and Softmax are in the mlp/cnn fixtures; Gelu needs opset 20.
        .filter(|o| !ops.contains(*o))
        .filter(|o| !["Gelu", "Constant", "Flatten", "Relu", "Softmax"].contains(o))
        .collect();
    assert!(missing.is_empty(), "ops fixture lacks {missing:?}");
    let Model::Onnx(onnx) = &m else {
        panic!("not loaded as ONNX")
    };
    let y = onnx.forward(&refs["x"]).unwrap();
    let diff: f32 = (y - &refs["ops"])
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap();
    eprintln!("ops graph: max abs diff vs onnxruntime (log-probabilities) {diff:.3e}");
    assert!(diff < 1e-4, "{diff}");
}

#[test]
fn labels_sidecar_overrides_metadata_and_is_checked() {
    let t = tempfile::tempdir().unwrap();
    std::fs::copy(td("onnx/mlp/base/model.onnx"), t.path().join("model.onnx")).unwrap();
    let names: Vec<String> = (0..10).map(|k| format!("class {k}")).collect();
    std::fs::write(
        t.path().join("labels.json"),
        serde_json::to_string(&names).unwrap(),
    )
    .unwrap();
    let m = Model::load(t.path(), &Device::Cpu).unwrap();
    assert_eq!(m.info().labels.as_ref(), Some(&names));
    std::fs::write(t.path().join("labels.json"), r#"["a", "b", "c"]"#).unwrap();
    let e = Model::load(t.path(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("3 labels for 10 outputs"), "{e}");
    std::fs::write(t.path().join("labels.json"), "{").unwrap();
    let e = Model::load(t.path(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("labels.json: expected a JSON array of class names"),
        "{e}"
    );
}

#[test]
fn suite_model_output_picks_one_of_several_outputs() {
    let two = td("onnx/two-outputs");
    expect_error(
        &td("onnx/mlp/base"),
        &two,
        &[
            "the graph has 2 outputs (`probs`, `logits`)",
            "model_output",
        ],
    );
    let t = tempfile::tempdir().unwrap();
    let inputs = td("inputs.safetensors");
    let base_suite = std::fs::read_to_string(suite()).unwrap();
    for (out, zero) in [("probs", true), ("logits", true), ("nope", false)] {
        let s = t.path().join(format!("{out}.toml"));
        let text = base_suite.replace(
            "inputs = \"inputs.safetensors\"",
            &format!(
                "inputs = {:?}\nmodel_output = {out:?}",
                inputs.to_str().unwrap()
            ),
        );
        assert!(text.contains("model_output"));
        std::fs::write(&s, text).unwrap();
        let o = mlsign(&[
            "behave",
            "--baseline",
            td("onnx/mlp/base").to_str().unwrap(),
            "--candidate",
            two.to_str().unwrap(),
            "--suite",
            s.to_str().unwrap(),
            "--format",
            "json",
            "--no-progress",
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        if !zero {
            assert_eq!(o.status.code(), Some(2), "{err}");
            // The single-output baseline ignores the setting; the candidate cannot honour it.
            assert!(
                err.contains(
                    "model_output = \"nope\" is not among the graph's outputs (`probs`, `logits`)"
                ),
                "{err}"
            );
            continue;
        }
        assert_eq!(o.status.code(), Some(0), "{err}");
        let r: Value = serde_json::from_slice(&o.stdout).unwrap();
        // Logits are softmaxed: the same probabilities, so no divergence either way.
        assert_eq!(r["decision"]["value"].as_f64(), Some(0.0), "{out}");
        assert_eq!(r["clean"]["top1_flip_rate"].as_f64(), Some(0.0), "{out}");
        assert!(r["clean"]["js_mean"].as_f64().unwrap() < 1e-9, "{out}");
        assert_eq!(
            r["candidate"]["output"],
            if out == "probs" {
                "probabilities"
            } else {
                "logits"
            }
        );
    }
}

/// ONNX MLP and CNN pairs, and the CNN's mlsign-net twin (conv2d), under `--device cuda`: the GPU
/// verdict equals the CPU one, or a clear exit 2 without a GPU or a CUDA build.
#[test]
fn cuda_device_agrees_with_cpu_or_says_why_not() {
    for dir in ["onnx/mlp", "onnx/cnn", "onnx/cnn-net"] {
        let on_gpu = support::cuda_matches_cpu(
            &td(&format!("{dir}/base")),
            &td(&format!("{dir}/backdoored")),
            &suite(),
        );
        println!("{dir}: compared on a GPU: {on_gpu}");
    }
}

/// Can trigger synthesis differentiate candle-onnx graphs? Gradients of the class-3 log
/// probability with respect to the input, through the ONNX MLP and CNN and through their
/// mlsign-net twins (same weights), must agree: candle-onnx evaluates every node with candle
/// tensor ops, so the autograd graph runs through it.
#[test]
fn candle_onnx_graphs_are_differentiable() {
    let d = Device::Cpu;
    for (onnx, net) in [
        ("onnx/mlp/backdoored", "backdoored"),
        ("onnx/cnn/backdoored", "onnx/cnn-net/backdoored"),
    ] {
        let x0: Vec<f32> = (0..4 * 64)
            .map(|i| ((i * 37) % 101) as f32 / 125.0)
            .collect();
        let grad = |dir: &str| -> Vec<f32> {
            let m = Model::load(&td(dir), &d).unwrap();
            let x = candle_core::Var::from_vec(x0.clone(), (4, 1, 8, 8), &d).unwrap();
            let lp = (m.probabilities(x.as_tensor()).unwrap() + 1e-12)
                .unwrap()
                .log()
                .unwrap();
            let loss = lp.narrow(1, 3, 1).unwrap().sum_all().unwrap();
            let g = loss.backward().unwrap();
            let gx = g.get(x.as_tensor()).expect("gradient reaches the input");
            gx.flatten_all().unwrap().to_vec1().unwrap()
        };
        let (go, gn) = (grad(onnx), grad(net));
        let scale = gn.iter().fold(0f32, |a, v| a.max(v.abs()));
        assert!(scale > 0.0, "{net}: zero gradient");
        let diff = go
            .iter()
            .zip(&gn)
            .fold(0f32, |a, (p, q)| a.max((p - q).abs()));
        assert!(
            diff <= 1e-4 * scale.max(1.0),
            "{onnx}: max |Δgrad| {diff} (scale {scale})"
        );
    }
}
