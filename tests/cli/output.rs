//! The shared output formats, end to end with the real binary: every command that reports
//! findings renders one report as human text, JSON, SARIF and Markdown, and the four carry the
//! same set of finding codes (with the same exit code); every SARIF document validates against
//! the OASIS SARIF 2.1.0 schema; Markdown is a job summary (verdict first, under 1 MiB).
//! Commands without findings refuse sarif and markdown (exit 2).

use crate::support::formats::{self, validate_sarif};
use crate::support::{copy_dir, mlsign_in, ok, repo};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};

/// `four_formats` with the binary run in `dir`.
fn four_formats(dir: &Path, args: &[&str], exit: i32, expect: &[&str]) -> Value {
    formats::four_formats(
        dir,
        &|a: &[&str]| {
            let r = mlsign_in(dir, a);
            (r.code, r.stdout, r.stderr)
        },
        args,
        exit,
        expect,
    )
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    copy_dir(&repo().join("testdata/tiny-model"), &dir.join("model"));
    for k in ["release", "other"] {
        ok(mlsign_in(&dir, ["keygen", "--out", k]));
    }
    (tmp, dir)
}

#[test]
fn verify_formats_agree() {
    let (_t, dir) = setup();
    ok(mlsign_in(&dir, ["sign", "model", "--key", "release.pem"]));
    let base = [
        "verify",
        "model",
        "--bundle",
        "model.sig",
        "--key",
        "release.pub",
    ];
    let j = four_formats(&dir, &base, 0, &[]);
    assert_eq!(j["verified"], true);
    assert_eq!(j["findings"], serde_json::json!([]));
    for k in [
        "path",
        "bundle",
        "subject",
        "kind",
        "predicate_type",
        "method",
        "signer",
        "root_digest",
        "algorithm",
        "shard_size",
        "files_checked",
        "bytes",
        "differences",
        "warnings",
    ] {
        assert!(j.get(k).is_some(), "verify JSON lost {k}: {j}");
    }
    // Modified and extra files.
    fs::write(dir.join("model/config.json"), b"{}").unwrap();
    fs::write(dir.join("model/extra.bin"), b"x").unwrap();
    let j = four_formats(&dir, &base, 1, &["SIG001", "SIG003"]);
    assert_eq!(j["verified"], false);
    assert_eq!(j["differences"].as_array().unwrap().len(), 2);
    // Another key: the signature is rejected before the tree is compared.
    let j = four_formats(
        &dir,
        &[
            "verify",
            "model",
            "--bundle",
            "model.sig",
            "--key",
            "other.pub",
        ],
        1,
        &["SIG006"],
    );
    assert!(j.get("differences").is_none(), "{j}");
    validate_sarif(&dir);
}

#[test]
fn scan_formats_agree() {
    let (_t, dir) = setup();
    fs::write(dir.join("model/evil.pkl"), b"cos\nsystem\n(S'id'\ntR.").unwrap();
    let j = four_formats(&dir, &["scan", "model"], 1, &["PKL001"]);
    let files = j["files"].as_array().unwrap();
    assert!(files.iter().any(|f| f["verdict"] == "malicious"), "{j}");
    assert!(
        j.get("fail_on_suspicious").is_none(),
        "JSON shape unchanged: {j}"
    );
    fs::remove_file(dir.join("model/evil.pkl")).unwrap();
    // Clean, with notes (SCN019: README.md is no model format) that do not fail the scan.
    four_formats(&dir, &["scan", "model"], 0, &["SCN019"]);
    validate_sarif(&dir);
}

#[test]
fn bom_formats_agree() {
    let (_t, dir) = setup();
    // validate: a duplicate bom-ref, a dangling reference, a model without hashes.
    fs::write(
        dir.join("bad.cdx.json"),
        r#"{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,
            "components":[{"type":"machine-learning-model","name":"m","bom-ref":"a"},
                          {"type":"library","name":"x","bom-ref":"a"}],
            "dependencies":[{"ref":"nowhere"}]}"#,
    )
    .unwrap();
    let j = four_formats(
        &dir,
        &["bom", "validate", "bad.cdx.json"],
        1,
        &["BOM002", "BOM003", "BOM004"],
    );
    assert_eq!(j["valid"], false);
    assert!(j["errors"].as_array().unwrap().len() >= 3, "{j}");
    // verify: drift, then a signature by another key.
    ok(mlsign_in(&dir, ["bom", "model", "-o", "m.cdx.json"]));
    ok(mlsign_in(
        &dir,
        ["bom", "sign", "m.cdx.json", "--key", "release.pem"],
    ));
    four_formats(&dir, &["bom", "validate", "m.cdx.json"], 0, &[]);
    let signed = [
        "bom",
        "verify",
        "m.cdx.json",
        "--bundle",
        "m.cdx.json.sig",
        "--key",
        "release.pub",
    ];
    let j = four_formats(&dir, &signed, 0, &[]);
    assert_eq!(j["signature"]["verified"], true, "{j}");
    fs::write(dir.join("model/config.json"), b"{}").unwrap();
    fs::write(dir.join("model/extra.bin"), b"x").unwrap();
    let j = four_formats(&dir, &signed, 1, &["BOM005", "BOM007"]);
    assert_eq!(j["signature"]["verified"], true, "{j}");
    assert!(j["checked"].is_array() && j["skipped"].is_array(), "{j}");
    let j = four_formats(
        &dir,
        &[
            "bom",
            "verify",
            "m.cdx.json",
            "--bundle",
            "m.cdx.json.sig",
            "--key",
            "other.pub",
            "--no-rehash",
        ],
        1,
        &["BOM008"],
    );
    assert_eq!(j["signature"], serde_json::json!({"verified": false}));
    assert!(j["checked"].is_null(), "{j}");
    validate_sarif(&dir);
}

#[test]
fn dataset_verify_formats_agree() {
    let (_t, dir) = setup();
    fs::create_dir_all(dir.join("data")).unwrap();
    fs::write(dir.join("data/a.csv"), b"1,2\n").unwrap();
    fs::write(dir.join("data/b.csv"), b"3,4\n").unwrap();
    ok(mlsign_in(
        &dir,
        [
            "dataset",
            "record",
            "data",
            "--lineage",
            "l.json",
            "--name",
            "d",
            "--version",
            "1",
        ],
    ));
    let args = ["dataset", "verify", "--lineage", "l.json"];
    let j = four_formats(&dir, &args, 0, &[]);
    assert_eq!(j["verified"], true);
    fs::write(dir.join("data/a.csv"), b"1,3\n").unwrap();
    fs::write(dir.join("data/c.csv"), b"5,6\n").unwrap();
    let j = four_formats(&dir, &args, 1, &["DSL001", "DSL003"]);
    assert_eq!(j["verified"], false);
    assert_eq!(j["datasets"][0]["ok"], false);
    validate_sarif(&dir);
}

#[test]
fn attest_verify_and_policy_check_formats_agree() {
    let (_t, dir) = setup();
    fs::write(dir.join("r.json"), br#"{"schema":"x/1","ok":true}"#).unwrap();
    let pt = "https://example.com/report/v1";
    ok(mlsign_in(
        &dir,
        [
            "attest",
            "sign",
            "r.json",
            "--key",
            "release.pem",
            "--predicate-type",
            pt,
        ],
    ));
    let args = [
        "attest",
        "verify",
        "r.json",
        "--key",
        "release.pub",
        "--predicate-type",
        pt,
    ];
    let j = four_formats(&dir, &args, 0, &[]);
    assert_eq!(j["verified"], true);
    four_formats(
        &dir,
        &[
            "attest",
            "verify",
            "r.json",
            "--key",
            "other.pub",
            "--predicate-type",
            pt,
        ],
        1,
        &["SIG006"],
    );
    fs::write(dir.join("r.json"), br#"{"schema":"x/1","ok":false}"#).unwrap();
    let j = four_formats(&dir, &args, 1, &["GAT013"]);
    assert_eq!(j["verified"], false);

    let policy = "schema = \"mlsign-policy/1\"\nsubjects = [\"**\"]\n\
                  [[authorities]]\nname = \"release\"\nkey = \"release.pub\"\n\
                  [requirements.signature]\n";
    fs::write(dir.join("p.toml"), policy).unwrap();
    let j = four_formats(&dir, &["policy", "check", "p.toml"], 0, &[]);
    assert_eq!(j["schema"], "mlsign-policy-check/2");
    fs::write(
        dir.join("audit.toml"),
        format!("mode = \"audit\"\n{policy}"),
    )
    .unwrap();
    let j = four_formats(&dir, &["policy", "check", "audit.toml"], 1, &["POL001"]);
    assert_eq!(
        j["remarks"].as_array().unwrap().len(),
        j["findings"].as_array().unwrap().len()
    );
}

#[test]
fn behave_formats_agree() {
    let t = tempfile::tempdir().unwrap();
    let td = repo().join("testdata/behave");
    let p = |n: &str| td.join(n).display().to_string();
    let (base, bd, suite) = (p("base"), p("backdoored"), p("suite.toml"));
    let one = [
        "behave",
        "--baseline",
        &base,
        "--candidate",
        &bd,
        "--suite",
        &suite,
        "--no-progress",
    ];
    let j = four_formats(t.path(), &one, 1, &["BHV001"]);
    assert_eq!(j["schema"], "mlsign-behave/1");
    let two = [
        "behave",
        "--baseline",
        &base,
        "--candidate",
        &base,
        "--candidate",
        &bd,
        "--suite",
        &suite,
        "--no-progress",
    ];
    let j = four_formats(t.path(), &two, 1, &["BHV001"]);
    assert_eq!(
        j.as_array().map(Vec::len),
        Some(2),
        "two candidates: an array"
    );
    validate_sarif(t.path());
}

/// Commands that report no findings refuse sarif and markdown rather than print something else.
#[test]
fn commands_without_findings_refuse_sarif_and_markdown() {
    let (_t, dir) = setup();
    for f in ["sarif", "markdown"] {
        for args in [
            vec!["hash", "model"],
            vec!["sign", "model", "--key", "release.pem", "--bundle", "x.sig"],
            vec!["keygen", "--out", "k2"],
            vec!["bom", "model", "-o", "x.cdx.json"],
        ] {
            let mut a = args.clone();
            a.extend(["--format", f]);
            let r = mlsign_in(&dir, &a);
            assert_eq!(r.code, 2, "{a:?}: {}", r.all());
            assert!(r.stderr.contains("findings"), "{a:?}: {}", r.stderr);
            if f == "sarif" {
                // Machine formats get the error object on stdout too.
                let v: Value = serde_json::from_str(&r.stdout).unwrap();
                assert!(v["error"]["message"].is_string(), "{v}");
            } else {
                assert!(r.stdout.is_empty(), "{a:?}: {}", r.stdout);
            }
        }
    }
    assert!(!dir.join("x.sig").exists() && !dir.join("k2.pem").exists());
}
