//! `mlsign bom` and `mlsign dataset`, driven through the real binary. Every BOM generated here
//! is validated twice: by `mlsign bom validate` and by cyclonedx-python-lib's
//! JsonStrictValidator (the official CycloneDX 1.6 schema, in the venv scripts/test.sh makes).

use crate::support::{copy_dir, python, run, Run};
use serde_json::Value;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

fn mlsign_in<I, S>(dir: &Path, args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(Command::new(env!("CARGO_BIN_EXE_mlsign"))
        .current_dir(dir)
        .env("USER", "tester")
        .env_remove("SOURCE_DATE_EPOCH")
        .args(args))
}

const PY_VALIDATE: &str = r#"
import sys
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
err = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1], encoding="utf-8").read())
if err is None:
    print("VALID")
else:
    print("INVALID", err)
"#;

/// Validate with both validators; both must agree the BOM is valid.
fn assert_valid_both(dir: &Path, bom: &Path) {
    let r = mlsign_in(
        dir,
        [OsStr::new("bom"), "validate".as_ref(), bom.as_os_str()],
    );
    assert_eq!(r.code, 0, "mlsign bom validate: {}", r.all());
    let p = run(Command::new(python())
        .arg("-c")
        .arg(PY_VALIDATE)
        .arg(dir.join(bom)));
    assert!(
        p.stdout.trim() == "VALID",
        "cyclonedx-python-lib rejects {}: {}",
        bom.display(),
        p.all()
    );
}

fn python_says_invalid(path: &Path) -> bool {
    let p = run(Command::new(python()).arg("-c").arg(PY_VALIDATE).arg(path));
    assert_eq!(p.code, 0, "{}", p.all());
    p.stdout.starts_with("INVALID")
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/bom")
}

fn write(p: &Path, s: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, s).unwrap();
}

/// A project: model fixture, raw → clean → {train, test} data, scripts, lineage recorded via
/// the CLI.
fn project() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    copy_dir(&testdata().join("model"), &d.join("model"));
    write(
        &d.join("data/raw/reviews.csv"),
        "text,label\ngood film,1\nbad film,0\nmeh,1\n",
    );
    write(&d.join("data/raw/LICENSE.txt"), "sample licence text\n");
    write(
        &d.join("data/clean/reviews.csv"),
        "text,label\ngood film,1\nbad film,0\n",
    );
    write(&d.join("data/train/part-0.csv"), "good film,1\n");
    write(&d.join("data/test/part-0.csv"), "bad film,0\n");
    write(&d.join("code/clean.py"), "print('clean')\n");
    write(&d.join("code/split.py"), "print('split')\n");
    let steps: [&[&str]; 4] = [
        &[
            "dataset",
            "record",
            "data/raw",
            "--lineage",
            "lineage.json",
            "--name",
            "reviews",
            "--version",
            "2024-05",
            "--source",
            "https://example.org/reviews.tar.gz",
            "--license",
            "cc-by-4.0",
        ],
        &[
            "dataset",
            "derive",
            "data/clean",
            "--lineage",
            "lineage.json",
            "--name",
            "reviews-clean",
            "--from",
            "reviews",
            "--step",
            "clean",
            "--command",
            "python code/clean.py --lower",
            "--param",
            "lower=true",
            "--code",
            "code/clean.py",
        ],
        &[
            "dataset",
            "derive",
            "data/train",
            "--lineage",
            "lineage.json",
            "--name",
            "reviews-train",
            "--split",
            "train",
            "--from",
            "reviews-clean",
            "--step",
            "split",
            "--command",
            "python code/split.py --seed 7",
            "--param",
            "seed=7",
            "--code",
            "code/split.py",
            "--started-at",
            "2026-01-02T03:04:05Z",
            "--finished-at",
            "2026-01-02T03:05:00Z",
        ],
        &[
            "dataset",
            "derive",
            "data/test",
            "--lineage",
            "lineage.json",
            "--name",
            "reviews-test",
            "--split",
            "test",
            "--from",
            "reviews-clean",
            "--step",
            "split",
            "--command",
            "python code/split.py --seed 7",
            "--param",
            "seed=7",
            "--code",
            "code/split.py",
            "--started-at",
            "2026-01-02T03:04:05Z",
            "--finished-at",
            "2026-01-02T03:05:00Z",
        ],
    ];
    for s in steps {
        let r = mlsign_in(d, s);
        assert_eq!(r.code, 0, "{s:?}: {}", r.all());
    }
    t
}

fn locks() -> Vec<String> {
    let l = testdata().join("locks");
    ["Cargo.lock", "requirements.txt", "uv.lock", "poetry.lock"]
        .iter()
        .flat_map(|f| ["--lock".to_string(), l.join(f).display().to_string()])
        .collect()
}

fn build(d: &Path, extra: &[&str]) -> Run {
    let mut args: Vec<String> = [
        "bom",
        "model",
        "-o",
        "bom.cdx.json",
        "--lineage",
        "lineage.json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(locks());
    args.extend(extra.iter().map(|s| s.to_string()));
    mlsign_in(d, args)
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn component<'a>(bom: &'a Value, name: &str) -> &'a Value {
    bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no component {name}"))
}

fn sha256_file(p: &Path) -> String {
    let out = run(Command::new("sha256sum").arg(p));
    out.stdout[..64].to_string()
}

#[test]
fn ml_bom_with_lineage_and_lockfiles_is_valid_and_complete() {
    let t = project();
    let d = t.path();
    let r = build(d, &["--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.json()["valid"], true);
    assert_valid_both(d, Path::new("bom.cdx.json"));
    let bom = read_json(&d.join("bom.cdx.json"));
    assert_eq!(bom["specVersion"], "1.6");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["bom.cdx.json", "lineage.json"] {
            let mode = std::fs::metadata(d.join(f)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644, "{f} is meant to be shared");
        }
    }

    // Model: model card from config.json + README, every file with its real SHA-256.
    let m = &bom["metadata"]["component"];
    assert_eq!(m["type"], "machine-learning-model");
    assert_eq!(m["licenses"][0]["license"]["id"], "Apache-2.0");
    let mp = &m["modelCard"]["modelParameters"];
    assert_eq!(mp["task"], "text-classification");
    assert_eq!(mp["modelArchitecture"], "BertForSequenceClassification");
    assert_eq!(mp["architectureFamily"], "bert");
    let metrics = &m["modelCard"]["quantitativeAnalysis"]["performanceMetrics"];
    assert_eq!(metrics[0]["type"], "accuracy");
    assert_eq!(metrics[0]["value"], "0.871");
    assert_eq!(
        m["pedigree"]["ancestors"][0]["purl"],
        "pkg:huggingface/google-bert/bert-base-uncased"
    );
    let files = m["components"].as_array().unwrap();
    assert_eq!(files.len(), 5);
    for f in files {
        let name = f["name"].as_str().unwrap();
        assert_eq!(f["type"], "file");
        assert_eq!(
            f["hashes"][0]["content"].as_str().unwrap(),
            sha256_file(&d.join("model").join(name)),
            "{name}"
        );
    }
    assert!(files.iter().any(|f| f["name"] == "chat_template.jinja"));
    // The model's hash is the signing core's root digest (what `mlsign hash` prints).
    let h = mlsign_in(d, ["hash", "model", "--format", "json"]).json();
    assert_eq!(m["hashes"][0]["content"], h["root_digest"]["sha256"], "{h}");

    // Datasets: one data component per version, per-file hashes, lineage three ways.
    let raw = component(&bom, "reviews");
    assert_eq!(raw["type"], "data");
    assert_eq!(raw["version"], "2024-05");
    assert_eq!(raw["licenses"][0]["license"]["id"], "CC-BY-4.0");
    assert_eq!(raw["externalReferences"][0]["type"], "distribution");
    assert_eq!(raw["data"][0]["type"], "dataset");
    assert_eq!(raw["components"].as_array().unwrap().len(), 2);
    let train = component(&bom, "reviews-train");
    let clean = component(&bom, "reviews-clean");
    assert_eq!(train["pedigree"]["ancestors"][0]["name"], "reviews-clean");
    assert_eq!(
        train["pedigree"]["ancestors"][0]["hashes"][0]["content"],
        clean["hashes"][0]["content"]
    );
    let deps = bom["dependencies"].as_array().unwrap();
    let dep = |r: &Value| {
        deps.iter()
            .find(|d| d["ref"] == *r)
            .map(|d| d["dependsOn"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(dep(&train["bom-ref"])[0], clean["bom-ref"]);
    assert_eq!(dep(&clean["bom-ref"])[0], raw["bom-ref"]);
    let model_deps = dep(&m["bom-ref"]);
    assert!(model_deps.as_array().unwrap().contains(&train["bom-ref"]));
    assert!(!model_deps.as_array().unwrap().contains(&clean["bom-ref"]));
    let card_refs: Vec<&Value> = mp["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["ref"])
        .collect();
    assert!(card_refs.contains(&&train["bom-ref"]));
    // README names stanfordnlp/imdb: listed, marked as not pinned.
    let hf = component(&bom, "stanfordnlp/imdb");
    assert!(hf["hashes"].is_null());
    let tasks = bom["formulation"][0]["workflows"][0]["tasks"]
        .as_array()
        .unwrap();
    // clean, and one split run that wrote both train and test.
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    let split = tasks
        .iter()
        .find(|t| t["outputs"][0]["resource"]["ref"] == train["bom-ref"])
        .unwrap();
    let test = component(&bom, "reviews-test");
    assert_eq!(split["outputs"][1]["resource"]["ref"], test["bom-ref"]);
    let order = bom["formulation"][0]["workflows"][0]["taskDependencies"]
        .as_array()
        .unwrap();
    assert_eq!(order.len(), 2);
    assert_eq!(order[1]["ref"], split["bom-ref"]);
    assert_eq!(order[1]["dependsOn"].as_array().unwrap().len(), 1);
    assert_eq!(
        split["steps"][0]["commands"][0]["executed"],
        "python code/split.py --seed 7"
    );
    assert_eq!(split["inputs"][0]["resource"]["ref"], clean["bom-ref"]);
    assert_eq!(split["inputs"][1]["parameters"][0]["name"], "seed");
    assert_eq!(split["timeStart"], "2026-01-02T03:04:05Z");
    let code_prop = split["properties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "mlsign:step.code")
        .unwrap();
    assert_eq!(
        code_prop["value"].as_str().unwrap(),
        format!("code/split.py sha256:{}", {
            // a single file's root digest is SHA-256 over its one SHA-256 digest
            let h = sha256_file(&d.join("code/split.py"));
            let bytes: Vec<u8> = (0..32)
                .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            let tmp = d.join("digest.bin");
            std::fs::write(&tmp, bytes).unwrap();
            sha256_file(&tmp)
        })
    );

    // Software: purls and hashes from every lockfile kind.
    let purls: Vec<&str> = bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "library")
        .filter_map(|c| c["purl"].as_str())
        .collect();
    for p in [
        "pkg:cargo/serde@1.0.219",
        "pkg:pypi/numpy@1.26.4",
        "pkg:pypi/torch@2.3.1%2Bcpu",
        "pkg:pypi/pandas@2.2.2",
        "pkg:pypi/safetensors@0.4.3",
    ] {
        assert!(purls.contains(&p), "{p} missing from {purls:?}");
    }
    let numpy = bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["purl"] == "pkg:pypi/numpy@1.26.4")
        .unwrap();
    assert_eq!(
        numpy["hashes"].as_array().unwrap().len(),
        2,
        "merged across lockfiles"
    );
}

#[test]
fn output_is_deterministic_and_reproducible() {
    let t = project();
    let d = t.path();
    let strip = |p: &Path| {
        let mut v = read_json(p);
        v.as_object_mut().unwrap().remove("serialNumber");
        v["metadata"].as_object_mut().unwrap().remove("timestamp");
        serde_json::to_string(&v).unwrap()
    };
    assert_eq!(build(d, &[]).code, 0);
    std::fs::rename(d.join("bom.cdx.json"), d.join("a.json")).unwrap();
    assert_eq!(build(d, &[]).code, 0);
    let (a, b) = (
        read_json(&d.join("a.json")),
        read_json(&d.join("bom.cdx.json")),
    );
    assert_ne!(a["serialNumber"], b["serialNumber"]);
    assert_valid_both(d, Path::new("a.json"));
    assert_eq!(strip(&d.join("a.json")), strip(&d.join("bom.cdx.json")));

    let r = build(d, &["--reproducible", "--force"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let first = std::fs::read(d.join("bom.cdx.json")).unwrap();
    assert_eq!(build(d, &["--reproducible", "--force"]).code, 0);
    assert_eq!(first, std::fs::read(d.join("bom.cdx.json")).unwrap());
    let v = read_json(&d.join("bom.cdx.json"));
    assert_eq!(v["metadata"]["timestamp"], "1970-01-01T00:00:00Z");
    assert_valid_both(d, Path::new("bom.cdx.json"));
    // SOURCE_DATE_EPOCH moves the timestamp (and so the serial).
    let r = run(Command::new(env!("CARGO_BIN_EXE_mlsign"))
        .current_dir(d)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["bom", "model", "-o", "e.json", "--reproducible"]));
    assert_eq!(r.code, 0, "{}", r.all());
    assert_valid_both(d, Path::new("e.json"));
    assert_eq!(
        read_json(&d.join("e.json"))["metadata"]["timestamp"],
        "2023-11-14T22:13:20Z"
    );
    // Without an existing --force the output is never overwritten.
    let r = build(d, &[]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("already exists"), "{}", r.all());
}

#[test]
fn plain_dataset_dirs_and_bare_model_file() {
    let t = project();
    let d = t.path();
    write(&d.join("eval/set.jsonl"), "{\"x\":1}\n");
    let r = mlsign_in(
        d,
        [
            "bom",
            "model/model.safetensors",
            "-o",
            "one.cdx.json",
            "--dataset",
            "eval",
            "--dataset",
            "data/train",
            "--name",
            "tiny",
            "--model-version",
            "1.0",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert_valid_both(d, Path::new("one.cdx.json"));
    let bom = read_json(&d.join("one.cdx.json"));
    assert_eq!(bom["metadata"]["component"]["name"], "tiny");
    assert_eq!(bom["metadata"]["component"]["version"], "1.0");
    assert_eq!(
        component(&bom, "eval")["components"][0]["name"],
        "set.jsonl"
    );
    let refs = &bom["metadata"]["component"]["modelCard"]["modelParameters"]["datasets"];
    assert_eq!(refs.as_array().unwrap().len(), 2);
}

/// A release binary's SBOM: the root is an `application` with its hashes and the crates of
/// Cargo.lock, no model card (a README next to it is not read as one); both validators accept it
/// and `bom verify` still checks the binary's bytes.
#[test]
fn application_root_for_a_release_binary() {
    let t = project();
    let d = t.path();
    std::fs::create_dir(d.join("rel")).unwrap();
    std::fs::write(d.join("rel/tool"), b"\x7fELF not really").unwrap();
    write(
        &d.join("rel/README.md"),
        "---\nbase_model: org/base\n---\n# tool\n",
    );
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock");
    let r = mlsign_in(
        d,
        [
            OsStr::new("bom"),
            "rel".as_ref(),
            "-o".as_ref(),
            "sbom.cdx.json".as_ref(),
            "--lock".as_ref(),
            lock.as_os_str(),
            "--name".as_ref(),
            "tool".as_ref(),
            "--type".as_ref(),
            "application".as_ref(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert_valid_both(d, Path::new("sbom.cdx.json"));
    let bom = read_json(&d.join("sbom.cdx.json"));
    let root = &bom["metadata"]["component"];
    assert_eq!(root["type"], "application");
    assert_eq!(root["bom-ref"], "application:tool");
    assert!(root.get("modelCard").is_none(), "{root}");
    assert!(
        root.get("pedigree").is_none(),
        "no base model from a README: {root}"
    );
    assert!(bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["purl"]
            .as_str()
            .is_some_and(|p| p.starts_with("pkg:cargo/sha2@"))));
    let r = mlsign_in(d, ["bom", "verify", "sbom.cdx.json"]);
    assert_eq!(r.code, 0, "{}", r.all());
    std::fs::write(d.join("rel/tool"), b"\x7fELF tampered").unwrap();
    let r = mlsign_in(d, ["bom", "verify", "sbom.cdx.json"]);
    assert_eq!(r.code, 1, "{}", r.all());
    let r = mlsign_in(d, ["bom", "rel", "-o", "x.json", "--type", "library"]);
    assert_eq!(r.code, 2, "{}", r.all());
}

#[test]
fn validate_locates_every_error_by_json_pointer() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    // Schema errors (wrong hash alg spelling, fine-tuning approach, unknown key) and what the
    // schema cannot see (duplicate bom-ref, dangling refs, model without hashes).
    let bad = serde_json::json!({
        "bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1,
        "metadata": {"component": {"type": "machine-learning-model", "name": "m", "bom-ref": "m",
            "modelCard": {"modelParameters": {"approach": {"type": "fine-tuning"},
                "datasets": [{"ref": "data:gone"}]}}}},
        "components": [
            {"type": "data", "name": "d", "bom-ref": "d",
             "hashes": [{"alg": "sha256", "content": "00"}]},
            {"type": "data", "name": "d2", "bom-ref": "d", "colour": "red"}
        ],
        "dependencies": [{"ref": "m", "dependsOn": ["d", "nowhere"]}]
    });
    write(
        &d.join("bad.json"),
        &serde_json::to_string_pretty(&bad).unwrap(),
    );
    let r = mlsign_in(d, ["bom", "validate", "bad.json", "--format", "json"]);
    assert_eq!(r.code, 1, "{}", r.all());
    let v = r.json();
    assert_eq!(v["valid"], false);
    let errs: Vec<(String, String)> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["code"].as_str().unwrap().into(),
                e["pointer"].as_str().unwrap().into(),
            )
        })
        .collect();
    let has = |c: &str, p: &str| errs.iter().any(|(a, b)| a == c && b == p);
    assert!(has("BOM001", "/components/0/hashes/0/alg"), "{errs:?}");
    assert!(has("BOM001", "/components/0/hashes/0/content"), "{errs:?}");
    assert!(
        has(
            "BOM001",
            "/metadata/component/modelCard/modelParameters/approach/type"
        ),
        "{errs:?}"
    );
    assert!(has("BOM001", "/components/1"), "{errs:?}");
    assert!(has("BOM002", "/components/1/bom-ref"), "{errs:?}");
    assert!(has("BOM003", "/dependencies/0/dependsOn/1"), "{errs:?}");
    assert!(
        has(
            "BOM003",
            "/metadata/component/modelCard/modelParameters/datasets/0/ref"
        ),
        "{errs:?}"
    );
    assert!(has("BOM004", "/metadata/component"), "{errs:?}");
    // The reference validator agrees the document is schema-invalid.
    assert!(python_says_invalid(&d.join("bad.json")));
    // Human and SARIF carry the same pointers.
    let r = mlsign_in(d, ["bom", "validate", "bad.json"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("BOM003 at /dependencies/0/dependsOn/1"),
        "{}",
        r.all()
    );
    let s = mlsign_in(d, ["bom", "validate", "bad.json", "--format", "sarif"]).json();
    assert_eq!(s["version"], "2.1.0");
    assert!(!s["runs"][0]["results"].as_array().unwrap().is_empty());

    // Unreadable: exit 2.
    write(&d.join("notjson.json"), "{\"bomFormat\": ");
    write(
        &d.join("old.json"),
        r#"{"bomFormat":"CycloneDX","specVersion":"1.5","version":1}"#,
    );
    write(&d.join("other.json"), r#"{"spdxVersion":"SPDX-2.3"}"#);
    for (f, msg) in [
        ("notjson.json", "not JSON"),
        ("old.json", "1.5 is not supported"),
        ("other.json", "not a CycloneDX document"),
        ("missing.json", "missing.json"),
    ] {
        let r = mlsign_in(d, ["bom", "validate", f]);
        assert_eq!(r.code, 2, "{f}: {}", r.all());
        assert!(r.stderr.contains(msg), "{f}: {}", r.all());
    }
}

#[test]
fn verify_reports_drift_per_file() {
    let t = project();
    let d = t.path();
    assert_eq!(build(d, &[]).code, 0);
    assert_valid_both(d, Path::new("bom.cdx.json"));
    let r = mlsign_in(d, ["bom", "verify", "bom.cdx.json"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains("skipped \"stanfordnlp/imdb\""),
        "{}",
        r.all()
    );
    // Change the model and a dataset after the BOM was made.
    write(&d.join("model/tokenizer.json"), "{}\n");
    std::fs::remove_file(d.join("model/chat_template.jinja")).unwrap();
    write(&d.join("model/backdoor.py"), "import os\n");
    write(&d.join("data/test/part-0.csv"), "bad film,1\n");
    let r = mlsign_in(d, ["bom", "verify", "bom.cdx.json", "--format", "json"]);
    assert_eq!(r.code, 1, "{}", r.all());
    let v = r.json();
    let found: Vec<(String, String)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().into(),
                f["location"]["member"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert!(
        found.contains(&("BOM005".into(), "tokenizer.json".into())),
        "{found:?}"
    );
    assert!(
        found.contains(&("BOM006".into(), "chat_template.jinja".into())),
        "{found:?}"
    );
    assert!(
        found.contains(&("BOM007".into(), "backdoor.py".into())),
        "{found:?}"
    );
    assert!(
        found.contains(&("BOM005".into(), "part-0.csv".into())),
        "{found:?}"
    );
    let bad: Vec<&str> = v["checked"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(bad.len(), 2, "{bad:?}");
    // --model points the check elsewhere (a pristine copy verifies).
    copy_dir(&testdata().join("model"), &d.join("pristine"));
    let r = mlsign_in(
        d,
        [
            "bom",
            "verify",
            "bom.cdx.json",
            "--model",
            "pristine",
            "--format",
            "json",
        ],
    );
    let v = r.json();
    let model = v["checked"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "machine-learning-model")
        .unwrap();
    assert_eq!(model["ok"], true, "{}", r.all());
    assert!(
        model["path"].as_str().unwrap().ends_with("pristine"),
        "{}",
        r.all()
    );
    // A model directory that is gone is an I/O error.
    std::fs::rename(d.join("model"), d.join("moved")).unwrap();
    let r = mlsign_in(d, ["bom", "verify", "bom.cdx.json"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("no such file"), "{}", r.all());
}

#[test]
fn sign_and_verify_the_bom_as_an_attestation() {
    let t = project();
    let d = t.path();
    assert_eq!(build(d, &[]).code, 0);
    assert_valid_both(d, Path::new("bom.cdx.json"));
    assert_eq!(mlsign_in(d, ["keygen", "--out", "k"]).code, 0);
    assert_eq!(
        mlsign_in(d, ["keygen", "--out", "other", "--algorithm", "ed25519"]).code,
        0
    );
    let r = mlsign_in(d, ["bom", "sign", "bom.cdx.json", "--key", "k.pem"]);
    assert_eq!(r.code, 0, "{}", r.all());
    // The bundle is a Sigstore v0.3 DSSE bundle whose statement has the BOM as predicate.
    let b = read_json(&d.join("bom.cdx.json.sig"));
    assert_eq!(
        b["mediaType"],
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );
    let payload = b["dsseEnvelope"]["payload"].as_str().unwrap();
    let st = decode_b64_json(payload);
    assert_eq!(st["predicateType"], "https://cyclonedx.org/bom");
    assert_eq!(st["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(st["subject"][0]["name"], "bom.cdx.json");
    assert_eq!(
        st["subject"][0]["digest"]["sha256"].as_str().unwrap(),
        sha256_file(&d.join("bom.cdx.json"))
    );
    assert_eq!(st["predicate"], read_json(&d.join("bom.cdx.json")));

    let r = mlsign_in(
        d,
        [
            "bom",
            "verify",
            "bom.cdx.json",
            "--bundle",
            "bom.cdx.json.sig",
            "--key",
            "k.pub",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("Signature: verified"), "{}", r.all());
    // Wrong key.
    let r = mlsign_in(
        d,
        [
            "bom",
            "verify",
            "bom.cdx.json",
            "--bundle",
            "bom.cdx.json.sig",
            "--key",
            "other.pub",
            "--no-rehash",
            "--format",
            "json",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert_eq!(r.json()["findings"][0]["code"], "BOM008");
    // The BOM edited after signing (one byte of whitespace is enough).
    let mut text = std::fs::read_to_string(d.join("bom.cdx.json")).unwrap();
    text.push('\n');
    write(&d.join("bom.cdx.json"), &text);
    let r = mlsign_in(
        d,
        [
            "bom",
            "verify",
            "bom.cdx.json",
            "--bundle",
            "bom.cdx.json.sig",
            "--key",
            "k.pub",
            "--no-rehash",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout.contains("BOM008") && r.stdout.contains("changed after it was signed"),
        "{}",
        r.all()
    );
    // An existing bundle is not overwritten without --force; an invalid BOM is not signed.
    let r = mlsign_in(d, ["bom", "sign", "bom.cdx.json", "--key", "k.pem"]);
    assert_eq!(r.code, 2, "{}", r.all());
    write(
        &d.join("bad.json"),
        r#"{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,"components":[{"type":"data"}]}"#,
    );
    let r = mlsign_in(d, ["bom", "sign", "bad.json", "--key", "k.pem"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("not signing an invalid BOM"),
        "{}",
        r.all()
    );
    assert!(!d.join("bad.json.sig").exists());
}

fn decode_b64_json(s: &str) -> Value {
    // Standard base64 without a crate dependency in the test.
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = A.iter().position(|a| *a == c).expect("base64") as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn model_signature_status_is_recorded() {
    let t = project();
    let d = t.path();
    assert_eq!(mlsign_in(d, ["keygen", "--out", "k"]).code, 0);
    let r = mlsign_in(
        d,
        ["sign", "model", "--key", "k.pem", "--bundle", "model.sig"],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    let r = mlsign_in(
        d,
        [
            "bom",
            "model",
            "-o",
            "b.json",
            "--signature",
            "model.sig",
            "--signature-key",
            "k.pub",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert_valid_both(d, Path::new("b.json"));
    let bom = read_json(&d.join("b.json"));
    let props = bom["metadata"]["component"]["properties"]
        .as_array()
        .unwrap();
    let get = |n: &str| {
        props
            .iter()
            .find(|p| p["name"] == n)
            .map(|p| p["value"].clone())
    };
    assert_eq!(get("mlsign:signature.status").unwrap(), "verified");
    assert_eq!(
        get("mlsign:signature.bundleSha256")
            .unwrap()
            .as_str()
            .unwrap(),
        sha256_file(&d.join("model.sig"))
    );
    let s = mlsign_in(d, ["bom", "show", "b.json"]);
    assert!(
        s.stdout.contains("mlsign:signature.status: verified"),
        "{}",
        s.all()
    );
    // A model that no longer matches its signature is recorded as failed, not hidden.
    write(&d.join("model/config.json"), "{}\n");
    let r = mlsign_in(
        d,
        [
            "bom",
            "model",
            "-o",
            "c.json",
            "--signature",
            "model.sig",
            "--signature-key",
            "k.pub",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert_valid_both(d, Path::new("c.json"));
    let bom = read_json(&d.join("c.json"));
    let status = bom["metadata"]["component"]["properties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "mlsign:signature.status")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(status.starts_with("failed"), "{status}");
}

#[test]
fn scan_status_is_recorded() {
    let t = project();
    let d = t.path();
    let r = mlsign_in(d, ["bom", "model", "-o", "clean.json", "--scan"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_valid_both(d, Path::new("clean.json"));
    let bom = read_json(&d.join("clean.json"));
    let props = &bom["metadata"]["component"]["properties"];
    let get = |props: &Value, n: &str| {
        props
            .as_array()
            .and_then(|a| a.iter().find(|p| p["name"] == n))
            .map(|p| p["value"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(get(props, "mlsign:scan.verdict"), "clean");
    assert_eq!(get(props, "mlsign:scan.problems"), "0");
    // A pickle that runs os.system when loaded.
    std::fs::write(d.join("model/extra.pkl"), b"cos\nsystem\n(S'id'\ntR.").unwrap();
    let r = mlsign_in(d, ["bom", "model", "-o", "evil.json", "--scan"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_valid_both(d, Path::new("evil.json"));
    let bom = read_json(&d.join("evil.json"));
    let m = &bom["metadata"]["component"];
    assert_eq!(get(&m["properties"], "mlsign:scan.verdict"), "malicious");
    assert_ne!(get(&m["properties"], "mlsign:scan.problems"), "0");
    let evil = m["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "extra.pkl")
        .unwrap();
    assert_eq!(get(&evil["properties"], "mlsign:scan.verdict"), "malicious");
    let s = mlsign_in(d, ["bom", "show", "evil.json"]);
    assert!(
        s.stdout.contains("mlsign:scan.verdict: malicious"),
        "{}",
        s.all()
    );
}

#[test]
fn boms_from_another_generator_validate_show_and_verify() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli/support/bom_foreign.py");
    let r = run(Command::new(python()).arg(script));
    assert_eq!(r.code, 0, "{}", r.all());
    write(&d.join("foreign.json"), &r.stdout);
    assert_valid_both(d, Path::new("foreign.json"));
    let s = mlsign_in(d, ["bom", "show", "foreign.json"]);
    assert_eq!(s.code, 0, "{}", s.all());
    assert!(s.stdout.contains("model foreign-model"), "{}", s.all());
    assert!(s.stdout.contains("imdb  NOT PINNED"), "{}", s.all());
    // Nothing records a local path: verify says so instead of passing.
    let v = mlsign_in(d, ["bom", "verify", "foreign.json"]);
    assert_eq!(v.code, 2, "{}", v.all());
    assert!(v.stderr.contains("nothing to re-hash"), "{}", v.all());
    // --model compares the root digest: theirs is not mlsign's, so that is drift.
    write(&d.join("m/w.bin"), "weights");
    let v = mlsign_in(d, ["bom", "verify", "foreign.json", "--model", "m"]);
    assert_eq!(v.code, 1, "{}", v.all());
    assert!(v.stdout.contains("BOM005"), "{}", v.all());
}

#[test]
fn dataset_verify_names_the_broken_steps() {
    let t = project();
    let d = t.path();
    let r = mlsign_in(d, ["dataset", "verify", "--lineage", "lineage.json"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let l = read_json(&d.join("lineage.json"));
    assert_eq!(l["mlsignLineage"], 1);
    let ds = l["datasets"].as_array().unwrap();
    assert_eq!(ds.len(), 4);
    assert_eq!(ds[1]["parents"][0], ds[0]["digest"]);
    assert_eq!(ds[1]["step"]["parameters"]["lower"], "true");
    assert_eq!(ds[1]["step"]["by"], "tester");
    assert_eq!(ds[0]["recordedBy"], "tester");

    // An upstream file changes: the raw version, and the step that consumed it, are named.
    write(&d.join("data/raw/reviews.csv"), "text,label\ngood film,0\n");
    let r = mlsign_in(
        d,
        [
            "dataset",
            "verify",
            "--lineage",
            "lineage.json",
            "--format",
            "json",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    let v = r.json();
    let f = v["findings"].as_array().unwrap();
    assert!(
        f.iter()
            .any(|x| x["code"] == "DSL001" && x["location"]["member"] == "reviews.csv"),
        "{f:?}"
    );
    let broken: Vec<&str> = f
        .iter()
        .filter(|x| x["code"] == "DSL005")
        .map(|x| x["message"].as_str().unwrap())
        .collect();
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert!(
        broken[0].contains("step \"clean\"") && broken[0].contains("reviews-clean"),
        "{broken:?}"
    );
    // Deriving from the changed version is refused and leaves the lineage untouched.
    let before = std::fs::read(d.join("lineage.json")).unwrap();
    write(&d.join("data/other/x.csv"), "1\n");
    let r = mlsign_in(
        d,
        [
            "dataset",
            "derive",
            "data/other",
            "--lineage",
            "lineage.json",
            "--name",
            "o",
            "--from",
            "reviews",
            "--step",
            "s",
            "--command",
            "c",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains("has changed since it was recorded")
            && r.stderr
                .contains("; run `mlsign dataset verify` to see what changed"),
        "{}",
        r.all()
    );
    assert_eq!(before, std::fs::read(d.join("lineage.json")).unwrap());
    // A BOM is not built over a broken lineage.
    let r = build(d, &[]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("no longer matches its recorded digest")
            && r.stderr.contains("; run `mlsign dataset verify --lineage "),
        "{}",
        r.all()
    );
    assert!(!d.join("bom.cdx.json").exists());

    // Restore, then change a split and a step's code: the split step and its code are named.
    write(
        &d.join("data/raw/reviews.csv"),
        "text,label\ngood film,1\nbad film,0\nmeh,1\n",
    );
    write(&d.join("data/train/part-1.csv"), "extra,1\n");
    write(&d.join("code/split.py"), "print('split differently')\n");
    let r = mlsign_in(d, ["dataset", "verify", "--lineage", "lineage.json"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout.contains("DSL003") && r.stdout.contains("part-1.csv"),
        "{}",
        r.all()
    );
    assert!(
        r.stdout.contains("DSL006") && r.stdout.contains("code/split.py"),
        "{}",
        r.all()
    );
    assert!(
        r.stdout
            .contains("step \"split\" is broken: its output \"reviews-train\""),
        "{}",
        r.all()
    );
    let r = mlsign_in(
        d,
        [
            "dataset",
            "verify",
            "--lineage",
            "lineage.json",
            "--skip-code",
            "--format",
            "sarif",
        ],
    );
    assert_eq!(r.code, 1);
    assert!(!r.stdout.contains("DSL006"), "{}", r.all());
}

#[test]
fn bad_input_is_exit_2_naming_the_place_and_nothing_is_written() {
    let t = project();
    let d = t.path();
    let bad = testdata().join("bad");
    for (f, msg) in [
        ("Cargo.lock", "not a valid Cargo.lock"),
        ("requirements.txt", "requirements.txt:1"),
        ("uv.lock", "uv.lock: package a: hash"),
        ("poetry.lock", "poetry.lock: package x: hash \"sha256:abc\""),
    ] {
        let p = bad.join(f);
        let r = mlsign_in(
            d,
            [
                OsStr::new("bom"),
                "model".as_ref(),
                "-o".as_ref(),
                "x.json".as_ref(),
                "--lock".as_ref(),
                p.as_os_str(),
            ],
        );
        assert_eq!(r.code, 2, "{f}: {}", r.all());
        assert!(r.stderr.contains(msg), "{f}: {}", r.all());
        assert!(!d.join("x.json").exists(), "{f}: half-written output");
    }
    let r = mlsign_in(
        d,
        [
            "bom",
            "model",
            "-o",
            "x.json",
            "--lock",
            "package-lock.json",
        ],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("unknown lockfile kind"), "{}", r.all());

    // Lineage: unknown key, cycle, a parent that is not there, a dataset directory that is gone.
    let good = read_json(&d.join("lineage.json"));
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "unknown key",
            {
                let mut v = good.clone();
                v["datasets"][2]["splitRatio"] = "0.8".into();
                v
            },
            "unknown field `splitRatio`",
        ),
        (
            "cycle",
            {
                let mut v = good.clone();
                let clean_digest = v["datasets"][1]["digest"].clone();
                v["datasets"][0]["parents"] = serde_json::json!([clean_digest]);
                v["datasets"][0]["step"] = v["datasets"][1]["step"].clone();
                v
            },
            "cycle in lineage: reviews@2024-05 -> reviews-clean -> reviews@2024-05",
        ),
        (
            "dangling parent",
            {
                let mut v = good.clone();
                v["datasets"][3]["parents"][0] = format!("sha256:{}", "ab".repeat(32)).into();
                v
            },
            "datasets[3] \"reviews-test\".parents[0]",
        ),
        (
            "edited digest",
            {
                let mut v = good.clone();
                v["datasets"][0]["files"][0]["sha256"] = "00".repeat(32).into();
                v
            },
            "datasets[0] \"reviews@2024-05\".digest: does not match its files",
        ),
        (
            "missing directory",
            {
                let mut v = good.clone();
                v["datasets"][2]["path"] = "data/nowhere".into();
                v
            },
            "\"data/nowhere\" named in the lineage does not exist",
        ),
    ];
    for (what, v, msg) in cases {
        write(
            &d.join("l2.json"),
            &serde_json::to_string_pretty(&v).unwrap(),
        );
        let before = std::fs::read(d.join("l2.json")).unwrap();
        let r = mlsign_in(d, ["dataset", "verify", "--lineage", "l2.json"]);
        assert_eq!(r.code, 2, "{what}: {}", r.all());
        assert!(r.stderr.contains(msg), "{what}: {}", r.all());
        let r = mlsign_in(d, ["bom", "model", "-o", "x.json", "--lineage", "l2.json"]);
        assert_eq!(r.code, 2, "{what}: {}", r.all());
        assert!(!d.join("x.json").exists(), "{what}: half-written BOM");
        let r = mlsign_in(
            d,
            [
                "dataset",
                "record",
                "data/train",
                "--lineage",
                "l2.json",
                "--name",
                "n",
            ],
        );
        assert_eq!(r.code, 2, "{what}: {}", r.all());
        assert_eq!(
            before,
            std::fs::read(d.join("l2.json")).unwrap(),
            "{what}: lineage rewritten"
        );
    }
    // Malformed JSON names line and column.
    write(
        &d.join("l3.json"),
        "{\n  \"mlsignLineage\": 1,\n  \"datasets\": [,]\n}\n",
    );
    let r = mlsign_in(d, ["dataset", "verify", "--lineage", "l3.json"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("l3.json: line 3 column"), "{}", r.all());
    // Recording the same version twice is refused.
    let r = mlsign_in(
        d,
        [
            "dataset",
            "record",
            "data/raw",
            "--lineage",
            "lineage.json",
            "--name",
            "reviews",
            "--version",
            "2024-05",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("already recorded"), "{}", r.all());
    // A BOM inside the model directory would change what it describes.
    let r = mlsign_in(d, ["bom", "model", "-o", "model/bom.json"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(!d.join("model/bom.json").exists());
    // Nor inside a dataset; and a lineage file may not live inside the data it records.
    let r = mlsign_in(
        d,
        ["bom", "model", "-o", "data/x.json", "--dataset", "data"],
    );
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(!d.join("data/x.json").exists());
    let r = mlsign_in(
        d,
        [
            "dataset",
            "record",
            "data",
            "--lineage",
            "data/l.json",
            "--name",
            "all",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("inside the dataset"), "{}", r.all());
    assert!(!d.join("data/l.json").exists());
    // Missing model.
    let r = mlsign_in(d, ["bom", "nomodel", "-o", "x.json"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("nomodel"), "{}", r.all());
}

#[test]
fn show_renders_tree_json_and_self_contained_html() {
    let t = project();
    let d = t.path();
    // A hostile dataset name must come out escaped in HTML.
    write(&d.join("data/x/a.txt"), "1\n");
    let r = mlsign_in(
        d,
        [
            "dataset",
            "record",
            "data/x",
            "--lineage",
            "lineage.json",
            "--name",
            "<script>alert(1)</script>",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(build(d, &["--dataset", "data/x"]).code, 0);
    assert_valid_both(d, Path::new("bom.cdx.json"));
    let r = mlsign_in(d, ["bom", "show", "bom.cdx.json"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let s = &r.stdout;
    for want in [
        "task text-classification",
        "reviews-train",
        "⇐ step split [other]",
        "$ python code/split.py --seed 7",
        "source https://example.org/reviews.tar.gz",
        "stanfordnlp/imdb  NOT PINNED",
        "software: 8 package(s)",
    ] {
        assert!(s.contains(want), "missing {want:?} in:\n{s}");
    }
    let v = mlsign_in(d, ["bom", "show", "bom.cdx.json", "--format", "json"]).json();
    assert_eq!(v["model"]["task"], "text-classification");
    let train = v["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "reviews-train")
        .unwrap();
    assert_eq!(train["step"]["name"], "split");
    assert_eq!(train["split"], "train");
    let r = mlsign_in(
        d,
        [
            "bom",
            "show",
            "bom.cdx.json",
            "--format",
            "html",
            "-o",
            "bom.html",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    let html = std::fs::read_to_string(d.join("bom.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<svg") && html.contains("marker-end"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!html.contains("<script>"));
    assert!(
        !html.contains("http://") || !html.contains("src=\"http"),
        "no remote resources"
    );
    assert!(
        !html.contains("src="),
        "self-contained: nothing loaded from elsewhere"
    );
}

#[test]
fn duplicate_json_keys_are_refused_and_show_keeps_existing_files() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    // The same key twice (also spelled with an escape): which value counts depends on the
    // parser, so the document is refused, naming the key and the place.
    for (name, doc) in [
        (
            "dup-top.json",
            r#"{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,"version":2}"#,
        ),
        (
            "dup-nested.json",
            r#"{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,
"components":[{"type":"data","name":"a","\u006eame":"b"}]}"#,
        ),
    ] {
        write(&d.join(name), doc);
        for cmd in ["validate", "show"] {
            let r = mlsign_in(d, ["bom", cmd, name]);
            assert_eq!(r.code, 2, "{cmd} {name}: {}", r.all());
            assert!(r.stderr.contains("duplicate key"), "{}", r.all());
            assert!(r.stderr.contains("line "), "{}", r.all());
        }
    }
    // Without duplicates the same document is fine.
    write(
        &d.join("ok.json"),
        r#"{"bomFormat":"CycloneDX","specVersion":"1.6","version":1}"#,
    );
    let r = mlsign_in(d, ["bom", "validate", "ok.json"]);
    assert_eq!(r.code, 0, "{}", r.all());

    // Lineage files are strict too.
    write(
        &d.join("lineage.json"),
        r#"{"mlsign_lineage":1,"datasets":[{"name":"a","path":"x","digest":"sha256:00",
"files":[],"recordedAt":"t","step":{"name":"s","command":"c",
"parameters":{"seed":"1","seed":"2"}}}]}"#,
    );
    let r = mlsign_in(d, ["dataset", "verify", "--lineage", "lineage.json"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("duplicate key"), "{}", r.all());

    // `bom show -o` does not replace an existing file unless --force.
    write(&d.join("view.txt"), "keep me\n");
    let r = mlsign_in(d, ["bom", "show", "ok.json", "-o", "view.txt"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("--force"), "{}", r.all());
    assert_eq!(
        std::fs::read_to_string(d.join("view.txt")).unwrap(),
        "keep me\n"
    );
    let r = mlsign_in(d, ["bom", "show", "ok.json", "-o", "view.txt", "--force"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_ne!(
        std::fs::read_to_string(d.join("view.txt")).unwrap(),
        "keep me\n"
    );
    let r = mlsign_in(d, ["bom", "show", "ok.json", "-o", "new.txt"]);
    assert_eq!(r.code, 0, "{}", r.all());
}
