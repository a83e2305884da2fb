//! `mlsign behave calibrate --generate-null N` (issue 15 §5): null candidates generated as short
//! clean fine-tunes of an mlsign-net baseline on the suite's own labelled inputs.

use crate::support::mlsign;
use candle_core::{Device, Tensor};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn td(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/behave")
        .join(p)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The committed suite and its labelled inputs, copied so `--write` does not touch testdata.
fn suite_copy(dir: &Path) -> PathBuf {
    std::fs::copy(td("inputs.safetensors"), dir.join("inputs.safetensors")).unwrap();
    let suite = dir.join("suite.toml");
    // The focused statistic (the default for new suites), no threshold yet.
    let text = std::fs::read_to_string(td("suite.toml"))
        .unwrap()
        .replace("stat = \"srcclass_median_excess\"\n", "")
        .replace("threshold = 0.5\n", "");
    std::fs::write(&suite, text).unwrap();
    suite
}

#[test]
fn generated_nulls_calibrate_an_mlsign_net_baseline() {
    let t = tempfile::tempdir().unwrap();
    let suite = suite_copy(t.path());
    let nulls = t.path().join("nulls");
    let o = mlsign([
        "behave",
        "calibrate",
        "--baseline",
        s(&td("base")),
        "--suite",
        s(&suite),
        "--generate-null",
        "20",
        "--null-dir",
        s(&nulls),
        "--fpr",
        "0.05",
        "--write",
        "--format",
        "json",
        "--no-progress",
    ]);
    let err = &o.stderr;
    assert_eq!(Some(o.code), Some(0), "{err}");
    let c: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(c["generated_null"], 20);
    assert_eq!(c["scores"].as_array().unwrap().len(), 20);
    assert_eq!(
        c["calibration"]["method"],
        "benign-quantile+generated-null:20"
    );
    let thr = c["threshold"].as_f64().unwrap();
    assert!((0.0..1.0).contains(&thr), "threshold {thr}");
    // Every null is a real, distinct fine-tune of the baseline: same tensors and shapes,
    // other values, and no two alike.
    let base = candle_core::safetensors::load(td("base/model.safetensors"), &Device::Cpu).unwrap();
    let load = |i: usize| -> HashMap<String, Tensor> {
        let d = nulls.join(format!("null-{i:04}"));
        assert!(d.join("mlsign-net.json").is_file());
        candle_core::safetensors::load(d.join("model.safetensors"), &Device::Cpu).unwrap()
    };
    let dist = |a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>| -> f32 {
        let mut d = 0.0;
        for (k, t) in a {
            let u = &b[k];
            assert_eq!(t.dims(), u.dims(), "{k}");
            d += (t - u)
                .unwrap()
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
        }
        d
    };
    let (n0, n1) = (load(0), load(19));
    assert_eq!(n0.len(), base.len());
    assert!(dist(&n0, &base) > 1e-3, "null 0 is the baseline");
    assert!(dist(&n0, &n1) > 1e-3, "nulls 0 and 19 are the same");
    // Clean fine-tunes keep the baseline's accuracy on the suite (they are benign models).
    let o = mlsign([
        "behave",
        "--baseline",
        s(&td("base")),
        "--candidate",
        s(&nulls.join("null-0000")),
        "--candidate",
        s(&td("backdoored")),
        "--suite",
        s(&suite),
        "--format",
        "json",
        "--no-progress",
    ]);
    let r: Value = serde_json::from_str(&o.stdout).unwrap();
    let r = r.as_array().unwrap();
    let acc = |r: &Value| r["clean"]["candidate_accuracy"].as_f64().unwrap();
    assert!(
        acc(&r[0]) >= r[0]["clean"]["baseline_accuracy"].as_f64().unwrap() - 0.05,
        "{}",
        r[0]["clean"]
    );
    // The threshold from the nulls (now in the suite, with its provenance) flags the planted
    // backdoor.
    assert_eq!(r[1]["verdict"], "flagged", "{}", r[1]["decision"]);
    assert_eq!(
        r[1]["decision"]["calibration"]["method"],
        "benign-quantile+generated-null:20"
    );
}

#[test]
fn null_generation_needs_labels_and_an_mlsign_net_baseline() {
    let t = tempfile::tempdir().unwrap();
    // Inputs without labels.
    let inputs = candle_core::safetensors::load(td("inputs.safetensors"), &Device::Cpu).unwrap();
    let x: HashMap<&str, Tensor> = [("x", inputs["x"].clone())].into();
    candle_core::safetensors::save(&x, t.path().join("inputs.safetensors")).unwrap();
    let suite = t.path().join("suite.toml");
    std::fs::copy(td("suite.toml"), &suite).unwrap();
    let o = mlsign([
        "behave",
        "calibrate",
        "--baseline",
        s(&td("base")),
        "--suite",
        s(&suite),
        "--generate-null",
        "20",
        "--fpr",
        "0.05",
        "--no-progress",
    ]);
    let err = &o.stderr;
    assert_eq!(Some(o.code), Some(2), "{err}");
    assert!(err.contains("needs labels") && err.contains("`y`"), "{err}");
    // Neither --benign nor --generate-null: a usage error.
    let o = mlsign([
        "behave",
        "calibrate",
        "--baseline",
        s(&td("base")),
        "--suite",
        s(&suite),
    ]);
    assert_eq!(Some(o.code), Some(2));
    // Zero nulls is refused.
    let o = mlsign([
        "behave",
        "calibrate",
        "--baseline",
        s(&td("base")),
        "--suite",
        s(&suite_copy(t.path())),
        "--generate-null",
        "0",
        "--no-progress",
    ]);
    let err = &o.stderr;
    assert_eq!(Some(o.code), Some(2), "{err}");
    assert!(err.contains("1..=10000"), "{err}");
    // ONNX graphs are not rebuilt as trainable graphs.
    #[cfg(feature = "onnx")]
    {
        let o = mlsign([
            "behave",
            "calibrate",
            "--baseline",
            s(&td("onnx/mlp/base")),
            "--suite",
            s(&td("suite.toml")),
            "--generate-null",
            "20",
            "--fpr",
            "0.05",
            "--no-progress",
        ]);
        let err = &o.stderr;
        assert_eq!(Some(o.code), Some(2), "{err}");
        assert!(err.contains("mlsign network spec"), "{err}");
    }
}
