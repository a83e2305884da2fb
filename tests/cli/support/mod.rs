//! What every integration test module shares: running the binary, the result of a run, the test
//! venv's Python, the repository root. Service fixtures live in the submodules (`oci`: the Debian
//! registry and an in-test registry; `sigstore`: local Fulcio/Rekor/TSA; `behave`: model pairs).
#![allow(dead_code)]

pub mod behave;
#[cfg(feature = "behave")]
pub mod behave_bert_gen;
#[cfg(feature = "behave")]
pub mod behave_lm_gen;
pub mod formats;
pub mod oci;
pub mod sigstore;

use serde_json::Value;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The outcome of one process run: exit code (-1 when killed by a signal) and lossy UTF-8 output.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout and stderr together, for assertion messages and substring checks.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// stdout parsed as JSON; a failure names what was printed.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.all()))
    }
}

pub fn run(cmd: &mut Command) -> Run {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mlsign")
}

/// The binary under test with `args`, in the test's environment.
pub fn mlsign<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(Command::new(bin()).args(args))
}

/// The binary under test, run in `dir`.
pub fn mlsign_in<I, S>(dir: &Path, args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(Command::new(bin()).current_dir(dir).args(args))
}

/// `r`, after asserting that it exited 0.
pub fn ok(r: Run) -> Run {
    assert_eq!(r.code, 0, "{}", r.all());
    r
}

/// Recursive copy of a fixture directory (regular files and directories).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The test venv's Python (scripts/test.sh builds it from scripts/deps/python/*.txt):
/// MLSIGN_TEST_PYTHON, else `.venv/bin/python` in the repository.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("MLSIGN_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let p = repo().join(".venv/bin/python");
    assert!(
        p.exists(),
        "the integration tests need the test venv (model_signing, numpy, joblib, cyclonedx, \
         sigstore, kubernetes-validate…): run scripts/test.sh, or set MLSIGN_TEST_PYTHON"
    );
    p
}

/// A program installed beside the venv's Python (`sigstore`, `model_signing`, `check-jsonschema`…).
pub fn python_bin(name: &str) -> PathBuf {
    let bin = python()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
        .join(name);
    assert!(bin.exists(), "{} missing from the test venv", bin.display());
    bin
}
