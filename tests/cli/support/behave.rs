//! Shared by the behave test files: running the binary, and `--device cuda` checked against the
//! CPU run of the same pair. Each file uses part of it.
//!
//! What `cuda_matches_cpu` can check depends on the build and the machine; it says which:
//! - built without the `cuda` feature: `--device cuda` is a usage error (exit 2) that names the
//!   feature;
//! - built with it, on a machine without the NVIDIA driver or a GPU: exit 2 naming CUDA device 0
//!   and what to check, never a panic;
//! - built with it on a GPU: the same exit code, verdict and top trigger candidate as on the CPU,
//!   and the decision statistic within float tolerance.
#![allow(dead_code)]

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

pub fn mlsign(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mlsign"))
        .args(args)
        .output()
        .expect("run mlsign")
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn behave(base: &Path, cand: &Path, suite: &Path, device: &str) -> (i32, Value, String) {
    let o = mlsign(&[
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
        "--device",
        device,
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "--device {device} panicked: {stderr}"
    );
    let code = o.status.code().expect("exit code");
    let report = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (code, report, stderr)
}

/// Runs the pair on the CPU and on CUDA device 0 and checks what this build and machine allow.
/// Returns true when the comparison really ran on a GPU.
pub fn cuda_matches_cpu(base: &Path, cand: &Path, suite: &Path) -> bool {
    let (cpu_code, cpu, cpu_err) = behave(base, cand, suite, "cpu");
    assert!(cpu_code == 0 || cpu_code == 1, "cpu run failed: {cpu_err}");
    let (code, gpu, err) = behave(base, cand, suite, "cuda");
    let message = gpu["error"]["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| err.clone());
    if !cfg!(feature = "cuda") {
        assert_eq!(code, 2, "{gpu:#} {err}");
        assert!(message.contains("feature `cuda`"), "{message}");
        return false;
    }
    if code == 2 && message.contains("cannot open CUDA device 0") {
        assert!(message.contains("--device cpu"), "{message}");
        eprintln!("no usable GPU here, only the error path was checked: {message}");
        return false;
    }
    assert_eq!(code, cpu_code, "cuda: {gpu:#}\ncpu: {cpu:#}\n{err}");
    assert_eq!(gpu["verdict"], cpu["verdict"]);
    let (top_gpu, top_cpu) = (&gpu["top_candidates"][0], &cpu["top_candidates"][0]);
    assert_eq!(
        top_gpu["probe"], top_cpu["probe"],
        "{top_gpu:#} {top_cpu:#}"
    );
    assert_eq!(top_gpu["target_class"], top_cpu["target_class"]);
    assert_eq!(top_gpu["rising_token"], top_cpu["rising_token"]);
    let (a, b) = (
        gpu["decision"]["value"].as_f64().unwrap(),
        cpu["decision"]["value"].as_f64().unwrap(),
    );
    // A z-score over an exactly-zero clean spread is ~1e6 and only its side of the threshold
    // is meaningful; below that the GPU must agree to float tolerance.
    if b.abs() < 1e4 {
        assert!(
            (a - b).abs() <= 1e-3 + 1e-2 * b.abs(),
            "cuda {a} vs cpu {b}"
        );
    }
    true
}

/// Mann–Whitney AUROC of `pos` over `neg` (ties count one half), for the population studies.
pub fn auroc(neg: &[f64], pos: &[f64]) -> f64 {
    let mut s = 0.0;
    for p in pos {
        for n in neg {
            s += if p > n {
                1.0
            } else if p == n {
                0.5
            } else {
                0.0
            };
        }
    }
    s / (neg.len() * pos.len()) as f64
}
