//! Keyless Sigstore, end to end through the real `mlsign` binary: the sigstore-conformance
//! verify corpus (every case, file and digest form, exactly as the upstream suite drives a CLI),
//! and the bad-input list of issue 13, each rejected with a message naming the failed check.
//!
//! The corpus lives outside the repository (1.7 MB): `shared/conformance/sigstore/` in the
//! project root's parent or any ancestor of it, or `MLSIGN_SIGSTORE_CORPUS`.

use crate::support::formats;
use crate::support::{mlsign, python_bin, Run};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const ISSUER: &str = "https://token.actions.githubusercontent.com";

fn corpus() -> PathBuf {
    if let Some(p) = std::env::var_os("MLSIGN_SIGSTORE_CORPUS") {
        return PathBuf::from(p);
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in here.ancestors() {
        let c = dir.join("shared/conformance/sigstore");
        if c.join("bundle-verify").is_dir() {
            return c;
        }
    }
    panic!(
        "the sigstore-conformance corpus is not in shared/conformance/sigstore above {}; set MLSIGN_SIGSTORE_CORPUS",
        here.display()
    );
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// The arguments the conformance suite would pass for `case`, with the artifact as a file or as
/// `sha256:<hex>`; `root` false leaves the production root to the embedded default.
fn case_args(case: &Path, base: &Path, digest: bool, explicit_root: bool) -> Vec<String> {
    let read = |n: &str| {
        fs::read_to_string(case.join(n))
            .ok()
            .map(|s| s.trim().to_string())
    };
    let mut a = vec![
        "conformance".to_string(),
        "verify-bundle".into(),
        "--bundle".into(),
        case.join("bundle.sigstore.json").display().to_string(),
    ];
    if case.join("key.pub").exists() {
        a.extend(["--key".into(), case.join("key.pub").display().to_string()]);
    } else {
        a.extend([
            "--certificate-identity".into(),
            read("identity").unwrap_or(IDENTITY.into()),
            "--certificate-oidc-issuer".into(),
            read("issuer").unwrap_or(ISSUER.into()),
        ]);
    }
    let own_root = case.join("trusted_root.json");
    if own_root.exists() {
        a.extend(["--trusted-root".into(), own_root.display().to_string()]);
    } else if explicit_root {
        a.extend([
            "--trusted-root".into(),
            base.join("production_trusted_root.json")
                .display()
                .to_string(),
        ]);
    }
    let artifact = if case.join("artifact").exists() {
        case.join("artifact")
    } else {
        base.join("a.txt")
    };
    a.push(if digest {
        format!("sha256:{}", sha256_hex(&fs::read(&artifact).unwrap()))
    } else {
        artifact.display().to_string()
    });
    a
}

#[test]
fn conformance_corpus_every_case_both_forms() {
    let base = corpus();
    let mut cases: Vec<PathBuf> = fs::read_dir(base.join("bundle-verify"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("bundle.sigstore.json").exists())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 70,
        "only {} cases in the corpus",
        cases.len()
    );
    let mut wrong = Vec::new();
    let mut runs = 0;
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let must_fail = name.ends_with("_fail");
        let mut forms = vec![(false, true), (true, true)];
        if !case.join("trusted_root.json").exists() {
            // Once more on the embedded production root.
            forms.push((false, false));
        }
        for (digest, explicit_root) in forms {
            let r = mlsign(case_args(case, &base, digest, explicit_root));
            runs += 1;
            assert!(
                matches!(r.code, 0..=2),
                "{name}: exit {} (crash?)\n{}",
                r.code,
                r.all()
            );
            let right = (r.code == 0) != must_fail;
            if !right {
                wrong.push(format!(
                    "{name} [{}{}] exit {}: {}",
                    if digest { "digest" } else { "file" },
                    if explicit_root { "" } else { ", embedded root" },
                    r.code,
                    r.all().trim()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {runs} runs wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// Run one corpus case (file form, explicit root), optionally with changed arguments.
fn case(name: &str, edit: impl FnOnce(&mut Vec<String>)) -> Run {
    let base = corpus();
    let mut a = case_args(&base.join("bundle-verify").join(name), &base, false, true);
    edit(&mut a);
    mlsign(&a)
}

fn set_arg(a: &mut [String], flag: &str, value: &str) {
    let i = a.iter().position(|x| x == flag).unwrap();
    a[i + 1] = value.into();
}

fn expect_check(r: &Run, code: i32, needle: &str) {
    assert_eq!(r.code, code, "{}", r.all());
    assert!(
        r.all().to_lowercase().contains(&needle.to_lowercase()),
        "expected {needle:?} in:\n{}",
        r.all()
    );
}

#[test]
fn happy_paths_report_who_signed() {
    let r = case("happy-path-v0.3-new-mediaType", |a| {
        a.extend(["--format".into(), "json".into()])
    });
    assert_eq!(r.code, 0, "{}", r.all());
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["result"]["identity"], IDENTITY);
    assert_eq!(v["result"]["issuer"], ISSUER);
    assert_eq!(v["result"]["tlog_verified"], true);
    assert_eq!(v["result"]["sct_verified"], true);
}

#[test]
fn wrong_identity_or_issuer_is_named() {
    let r = case("happy-path-v0.3", |a| {
        set_arg(
            a,
            "--certificate-identity",
            "https://github.com/evil/repo/.github/workflows/x.yml@refs/heads/main",
        )
    });
    expect_check(&r, 1, "identity mismatch");
    assert!(
        r.all().contains(IDENTITY),
        "the actual identity is shown: {}",
        r.all()
    );
    let r = case("happy-path-v0.3", |a| {
        set_arg(
            a,
            "--certificate-oidc-issuer",
            "https://accounts.google.com",
        )
    });
    expect_check(&r, 1, "issuer mismatch");
}

#[test]
fn each_failed_check_is_named() {
    // Expired / not yet valid certificate at the verified signing time.
    expect_check(
        &case("intoto-expired-certificate_fail", |_| {}),
        1,
        "time window",
    );
    // A bad checkpoint signature, and a checkpoint signed by an unknown key.
    expect_check(
        &case("invalid-checkpoint-signature_fail", |_| {}),
        1,
        "checkpoint",
    );
    expect_check(
        &case("checkpoint-bad-keyhint_fail", |_| {}),
        1,
        "checkpoint",
    );
    // A tampered inclusion proof.
    expect_check(
        &case("inclusion-proof-corrupted-hash_fail", |_| {}),
        1,
        "inclusion proof",
    );
    // An SCT from an unknown CT key.
    expect_check(&case("invalid-ct-key_fail", |_| {}), 1, "SCT");
    // A log entry for another artifact.
    expect_check(
        &case("wrong-hashedrekord-entry_fail", |_| {}),
        1,
        "artifact mismatch",
    );
    // A bad SET.
    expect_check(
        &case("set-invalid-signature_fail", |_| {}),
        1,
        "signed entry timestamp",
    );
    // The artifact differs from what was signed.
    let r = case("happy-path-v0.3", |a| {
        let n = a.len();
        a[n - 1] = format!("sha256:{}", "0".repeat(64));
    });
    expect_check(&r, 1, "artifact mismatch");
    // RFC 3161 timestamps from an untrusted authority.
    expect_check(
        &case(
            "rekor2-timestamp-untrusted-tsa-with-embedded-cert_fail",
            |_| {},
        ),
        1,
        "timestamp",
    );
}

#[test]
fn unknown_log_key_is_rejected() {
    // The production root without its Rekor logs: the bundle's entry names an unknown log.
    let base = corpus();
    let mut root: Value =
        serde_json::from_slice(&fs::read(base.join("production_trusted_root.json")).unwrap())
            .unwrap();
    root["tlogs"] = Value::Array(vec![]);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("root.json");
    fs::write(&p, serde_json::to_vec(&root).unwrap()).unwrap();
    let r = case("happy-path-v0.3", |a| {
        set_arg(a, "--trusted-root", &p.display().to_string())
    });
    expect_check(&r, 1, "unknown transparency log");
}

#[test]
fn malformed_oversized_and_unreadable_inputs_exit_2() {
    expect_check(
        &case("bundle-malformed-json_fail", |_| {}),
        2,
        "malformed bundle",
    );
    expect_check(
        &case("bundle-unknown-version_fail", |_| {}),
        2,
        "media type",
    );
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.json");
    let f = fs::File::create(&big).unwrap();
    f.set_len(65 << 20).unwrap(); // sparse: no data written
    let r = case("happy-path-v0.3", |a| {
        set_arg(a, "--bundle", &big.display().to_string())
    });
    expect_check(&r, 2, "byte limit");
    let r = case("happy-path-v0.3", |a| {
        set_arg(a, "--bundle", "/nonexistent/b.json")
    });
    expect_check(&r, 2, "/nonexistent/b.json");
    let empty = dir.path().join("empty.json");
    fs::write(&empty, "").unwrap();
    let r = case("happy-path-v0.3", |a| {
        set_arg(a, "--bundle", &empty.display().to_string())
    });
    expect_check(&r, 2, "empty");
    let bad_root = dir.path().join("root.json");
    fs::write(&bad_root, "{\"mediaType\": 3}").unwrap();
    let r = case("happy-path-v0.3", |a| {
        set_arg(a, "--trusted-root", &bad_root.display().to_string())
    });
    expect_check(&r, 2, "trusted root");
    // Every corpus bundle truncated at a few points: exit 2 or 1, never a crash.
    let base = corpus();
    let src = fs::read(base.join("bundle-verify/happy-path-v0.3/bundle.sigstore.json")).unwrap();
    for cut in [1, src.len() / 3, src.len() / 2, src.len() - 2] {
        let p = dir.path().join(format!("cut{cut}.json"));
        fs::write(&p, &src[..cut]).unwrap();
        let r = case("happy-path-v0.3", |a| {
            set_arg(a, "--bundle", &p.display().to_string())
        });
        assert_eq!(r.code, 2, "cut at {cut}: {}", r.all());
    }
}

#[test]
fn keyless_branch_of_mlsign_verify() {
    // An in-toto bundle over a.txt: the whole Sigstore verification runs through `mlsign verify`;
    // the payload is no model manifest, which is the next check (SIG008).
    let base = corpus();
    let c = base.join("bundle-verify/happy-path-intoto-in-dsse-v3");
    let bundle = c.join("bundle.sigstore.json");
    let r = mlsign([
        "verify".as_ref(),
        base.join("a.txt").as_os_str(),
        "--bundle".as_ref(),
        bundle.as_os_str(),
        "--identity".as_ref(),
        IDENTITY.as_ref(),
        "--issuer".as_ref(),
        ISSUER.as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.all().contains("SIG008"), "{}", r.all());
    // The wrong identity fails before that, with the keyless code.
    let r = mlsign([
        "verify".as_ref(),
        base.join("a.txt").as_os_str(),
        "--bundle".as_ref(),
        bundle.as_os_str(),
        "--identity-regex".as_ref(),
        "https://github.com/sigstore-conformance/other/.*".as_ref(),
        "--issuer".as_ref(),
        ISSUER.as_ref(),
    ]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.all().contains("SGS004"), "{}", r.all());
    // Both in the four output formats: the same codes, valid SARIF.
    let work = tempfile::tempdir().unwrap();
    let run = |a: &[&str]| {
        let r = mlsign(a);
        (r.code, r.stdout, r.stderr)
    };
    let (a_txt, b) = (
        base.join("a.txt").display().to_string(),
        bundle.display().to_string(),
    );
    let args = ["verify", &a_txt, "--bundle", &b, "--issuer", ISSUER];
    let mut exact = args.to_vec();
    exact.extend(["--identity", IDENTITY]);
    formats::four_formats(work.path(), &run, &exact, 1, &["SIG008"]);
    let mut other = args.to_vec();
    other.extend([
        "--identity-regex",
        "https://github.com/sigstore-conformance/other/.*",
    ]);
    formats::four_formats(work.path(), &run, &other, 1, &["SGS004"]);
    formats::validate_sarif(work.path());
    // An identity without an issuer is a usage error.
    let r = mlsign([
        "verify".as_ref(),
        base.join("a.txt").as_os_str(),
        "--bundle".as_ref(),
        bundle.as_os_str(),
        "--identity".as_ref(),
        IDENTITY.as_ref(),
    ]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.all().contains("--issuer"), "{}", r.all());
}

// ---------------------------------------------------------------------------------------------
// Keyless signing against local Fulcio / Rekor / TSA services (tests/cli/support/sigstore-services:
// @sigstore/mock in a node server), cross-checked with sigstore-python and model_signing.

use crate::support::sigstore as sigstore_support;
use sigstore_support::{local_sigstore, token, LocalSigstore, SIGNER, TEST_ISSUER};

fn run_tool(bin: &Path, args: &[&str]) -> Run {
    let out = Command::new(bin).args(args).output().expect("run tool");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// sigstore-python, offline, with the local trust config.
fn sigstore_python_verifies(s: &LocalSigstore, bundle: &Path, file: &Path) -> Run {
    run_tool(
        &python_bin("sigstore"),
        &[
            "--trust-config",
            s.file("trust_config.json").to_str().unwrap(),
            "verify",
            "identity",
            "--offline",
            "--cert-identity",
            SIGNER,
            "--cert-oidc-issuer",
            TEST_ISSUER,
            "--bundle",
            bundle.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
    )
}

/// sigstore-js (@sigstore/bundle + @sigstore/verify, the stack under @sigstore/cli) with the local
/// trusted root, offline: `tests/cli/support/sigstore-services/verify.js`. `artifact` is None for DSSE.
fn sigstore_js_verifies(
    s: &LocalSigstore,
    bundle: &Path,
    artifact: Option<&Path>,
    identity: &str,
    timestamps: usize,
) -> Run {
    let dir = sigstore_support::node_modules();
    let mut a = vec![
        dir.join("verify.js").display().to_string(),
        s.file("trusted_root.json").display().to_string(),
        bundle.display().to_string(),
        identity.to_string(),
        TEST_ISSUER.to_string(),
    ];
    if let Some(f) = artifact {
        a.push(f.display().to_string());
    }
    a.extend(["--timestamps".to_string(), timestamps.to_string()]);
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    run_tool(Path::new("node"), &refs)
}

fn sign_bundle(
    s: &LocalSigstore,
    tok: &str,
    config: &str,
    extra: &[&str],
    file: &Path,
    out: &Path,
) -> Run {
    let mut a = vec![
        "conformance".to_string(),
        "sign-bundle".into(),
        "--identity-token".into(),
        tok.into(),
        "--bundle".into(),
        out.display().to_string(),
        "--signing-config".into(),
        s.file(config).display().to_string(),
        "--trusted-root".into(),
        s.file("trusted_root.json").display().to_string(),
    ];
    a.extend(extra.iter().map(|x| x.to_string()));
    a.push(file.display().to_string());
    let r = mlsign(&a);
    assert!(
        !r.all().contains(tok),
        "the token was printed:\n{}",
        r.all()
    );
    r
}

fn verify_local(s: &LocalSigstore, bundle: &Path, artifact: &str, identity: &str) -> Run {
    mlsign([
        "conformance",
        "verify-bundle",
        "--bundle",
        bundle.to_str().unwrap(),
        "--certificate-identity",
        identity,
        "--certificate-oidc-issuer",
        TEST_ISSUER,
        "--trusted-root",
        s.file("trusted_root.json").to_str().unwrap(),
        artifact,
    ])
}

#[test]
fn keyless_blob_signing_round_trip_and_cross_checks() {
    let s = local_sigstore();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("weights.bin");
    fs::write(&file, b"model weights \x00\x01\x02").unwrap();
    let tok = token(SIGNER, TEST_ISSUER);
    for (config, tsa) in [
        ("signing_config.json", false),
        ("signing_config_tsa.json", true),
    ] {
        let bundle = work.path().join(format!("w-{tsa}.sigstore.json"));
        let r = sign_bundle(&s, &tok, config, &[], &file, &bundle);
        assert_eq!(r.code, 0, "{}", r.all());
        let b: Value = serde_json::from_slice(&fs::read(&bundle).unwrap()).unwrap();
        assert_eq!(
            b["mediaType"],
            "application/vnd.dev.sigstore.bundle.v0.3+json"
        );
        let vm = &b["verificationMaterial"];
        assert!(vm["certificate"]["rawBytes"].is_string());
        assert_eq!(vm["tlogEntries"].as_array().unwrap().len(), 1);
        assert_eq!(vm["tlogEntries"][0]["kindVersion"]["kind"], "hashedrekord");
        let stamps = vm["timestampVerificationData"]["rfc3161Timestamps"]
            .as_array()
            .unwrap();
        assert_eq!(stamps.len(), usize::from(tsa), "{config}");
        // mlsign, file and digest form; the wrong identity fails.
        let digest = format!("sha256:{}", sha256_hex(&fs::read(&file).unwrap()));
        for art in [file.to_str().unwrap(), &digest] {
            let r = verify_local(&s, &bundle, art, SIGNER);
            assert_eq!(r.code, 0, "{config} {art}: {}", r.all());
        }
        let r = verify_local(
            &s,
            &bundle,
            file.to_str().unwrap(),
            "https://github.com/other/repo",
        );
        expect_check(&r, 1, "identity mismatch");
        // Another artifact.
        let other = work.path().join("other.bin");
        fs::write(&other, b"other").unwrap();
        let r = verify_local(&s, &bundle, other.to_str().unwrap(), SIGNER);
        assert_eq!(r.code, 1, "{}", r.all());
        // sigstore-python accepts what mlsign signed.
        let r = sigstore_python_verifies(&s, &bundle, &file);
        assert_eq!(r.code, 0, "sigstore-python ({config}):\n{}", r.all());
        // So does sigstore-js, counting the RFC 3161 timestamp when there is one; it refuses
        // another artifact, another identity, and a timestamp the bundle does not have.
        let r = sigstore_js_verifies(&s, &bundle, Some(&file), SIGNER, usize::from(tsa));
        assert_eq!(r.code, 0, "sigstore-js ({config}):\n{}", r.all());
        let r = sigstore_js_verifies(&s, &bundle, Some(&other), SIGNER, 0);
        assert_eq!(r.code, 1, "sigstore-js, other artifact:\n{}", r.all());
        let r = sigstore_js_verifies(&s, &bundle, Some(&file), "https://github.com/other/repo", 0);
        assert_eq!(r.code, 1, "sigstore-js, other identity:\n{}", r.all());
        let r = sigstore_js_verifies(&s, &bundle, Some(&file), SIGNER, usize::from(tsa) + 1);
        assert_eq!(r.code, 1, "sigstore-js, missing timestamp:\n{}", r.all());
        // The production root does not know these services.
        let r = mlsign([
            "conformance",
            "verify-bundle",
            "--bundle",
            bundle.to_str().unwrap(),
            "--certificate-identity",
            SIGNER,
            "--certificate-oidc-issuer",
            TEST_ISSUER,
            file.to_str().unwrap(),
        ]);
        assert_eq!(r.code, 1, "{}", r.all());
    }
}

#[test]
fn keyless_dsse_signing_of_an_in_toto_statement() {
    let s = local_sigstore();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("a.txt");
    fs::write(&file, b"attested\n").unwrap();
    let statement = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "a.txt", "digest": {"sha256": sha256_hex(b"attested\n")}}],
        "predicateType": "https://example.com/test/v1",
        "predicate": {"ok": true},
    });
    let st = work.path().join("statement.json");
    fs::write(&st, serde_json::to_vec(&statement).unwrap()).unwrap();
    let bundle = work.path().join("a.sigstore.json");
    let tok = token(SIGNER, TEST_ISSUER);
    let r = sign_bundle(
        &s,
        &tok,
        "signing_config_tsa.json",
        &["--in-toto"],
        &st,
        &bundle,
    );
    assert_eq!(r.code, 0, "{}", r.all());
    let b: Value = serde_json::from_slice(&fs::read(&bundle).unwrap()).unwrap();
    assert_eq!(
        b["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["kind"],
        "dsse"
    );
    let r = verify_local(&s, &bundle, file.to_str().unwrap(), SIGNER);
    assert_eq!(r.code, 0, "{}", r.all());
    // sigstore-js checks the DSSE envelope, the dsse tlog entry and the timestamp.
    let r = sigstore_js_verifies(&s, &bundle, None, SIGNER, 1);
    assert_eq!(r.code, 0, "sigstore-js:\n{}", r.all());
    fs::write(&file, b"changed\n").unwrap();
    let r = verify_local(&s, &bundle, file.to_str().unwrap(), SIGNER);
    assert_eq!(r.code, 1, "{}", r.all());
}

#[test]
fn signing_failures_are_reported_without_the_token() {
    let s = local_sigstore();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("f");
    fs::write(&file, b"x").unwrap();
    let tok = token(SIGNER, TEST_ISSUER);
    // A dead Rekor: Fulcio answers, the log does not.
    let mut cfg: Value =
        serde_json::from_slice(&fs::read(s.file("signing_config.json")).unwrap()).unwrap();
    cfg["rekorTlogUrls"][0]["url"] = "http://127.0.0.1:9".into();
    fs::write(s.file("dead_rekor.json"), cfg.to_string()).unwrap();
    let out = work.path().join("b.json");
    let r = sign_bundle(&s, &tok, "dead_rekor.json", &[], &file, &out);
    expect_check(&r, 2, "Rekor at http://127.0.0.1:9");
    assert!(!out.exists());
    // Not a JWT.
    let r = sign_bundle(&s, "not-a-token", "signing_config.json", &[], &file, &out);
    expect_check(&r, 2, "identity token");
    // A trusted root that does not describe these services: the self-check refuses to write.
    let r = mlsign([
        "conformance",
        "sign-bundle",
        "--identity-token",
        &tok,
        "--bundle",
        out.to_str().unwrap(),
        "--signing-config",
        s.file("signing_config.json").to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    expect_check(&r, 2, "does not verify against");
    assert!(!r.all().contains(&tok));
    assert!(!out.exists());
}

#[test]
fn github_actions_ambient_token() {
    let s = local_sigstore();
    // The token endpoint hands out a token for these claims.
    post(
        &s,
        "/gha-claims",
        &serde_json::json!({"sub": SIGNER, "iss": TEST_ISSUER}),
    );
    std::env::remove_var("SIGSTORE_ID_TOKEN");
    std::env::set_var(
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        s.url("/gha-token?api-version=2.0"),
    );
    std::env::set_var("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "gha-request-token");
    let t = mlsign::attest::sigstore::sign::obtain_token(None, None).unwrap();
    assert_eq!(t.issuer(), Some(TEST_ISSUER));
    std::env::set_var("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "wrong");
    let e = mlsign::attest::sigstore::sign::obtain_token(None, None).unwrap_err();
    assert!(e.to_string().contains("HTTP 401"), "{e}");
    assert!(!e.to_string().contains("wrong"), "{e}");
    std::env::remove_var("ACTIONS_ID_TOKEN_REQUEST_URL");
    std::env::remove_var("ACTIONS_ID_TOKEN_REQUEST_TOKEN");
}

#[test]
fn keyless_model_directory_is_oms_compatible() {
    let s = local_sigstore();
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("bert");
    fs::create_dir_all(model.join("sub")).unwrap();
    fs::write(model.join("config.json"), b"{\"layers\": 2}").unwrap();
    fs::write(model.join("sub/weights.bin"), vec![7u8; 4096]).unwrap();
    let bundle = work.path().join("bert.sig");
    let tok = token(SIGNER, TEST_ISSUER);
    let tok_file = work.path().join("token");
    fs::write(&tok_file, &tok).unwrap();
    let r = mlsign([
        "sign",
        model.to_str().unwrap(),
        "--keyless",
        "--identity-token-file",
        tok_file.to_str().unwrap(),
        "--signing-config",
        s.file("signing_config_tsa.json").to_str().unwrap(),
        "--trusted-root",
        s.file("trusted_root.json").to_str().unwrap(),
        "--bundle",
        bundle.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(!r.all().contains(&tok), "token printed");
    let out: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(out["files"], 2);
    // Never over an existing bundle without --force, and no key flags with --keyless.
    let r = mlsign([
        "sign",
        model.to_str().unwrap(),
        "--keyless",
        "--identity-token-file",
        tok_file.to_str().unwrap(),
        "--bundle",
        bundle.to_str().unwrap(),
    ]);
    expect_check(&r, 2, "already exists");
    let r = mlsign([
        "sign",
        model.to_str().unwrap(),
        "--keyless",
        "--key",
        "k.pem",
    ]);
    assert_eq!(r.code, 2, "{}", r.all());
    // model_signing accepts it with the matching trust config.
    let oms = |m: &Path, identity: &str| {
        run_tool(
            &python_bin("model_signing"),
            &[
                "verify",
                "sigstore",
                m.to_str().unwrap(),
                "--signature",
                bundle.to_str().unwrap(),
                "--identity",
                identity,
                "--identity_provider",
                TEST_ISSUER,
                "--trust_config",
                s.file("trust_config.json").to_str().unwrap(),
            ],
        )
    };
    let r = oms(&model, SIGNER);
    assert_eq!(r.code, 0, "model_signing:\n{}", r.all());
    // sigstore-js accepts the OMS DSSE bundle (envelope, dsse entry, timestamp).
    let r = sigstore_js_verifies(&s, &bundle, None, SIGNER, 1);
    assert_eq!(r.code, 0, "sigstore-js:\n{}", r.all());
    let r = oms(&model, "https://github.com/other/x");
    assert_ne!(
        r.code,
        0,
        "model_signing accepted the wrong identity:\n{}",
        r.all()
    );
    // mlsign verify, keyless, on the directory.
    let root_file = s.file("trusted_root.json");
    let verify = |identity: &[&str]| {
        let mut a = vec![
            "verify",
            model.to_str().unwrap(),
            "--bundle",
            bundle.to_str().unwrap(),
            "--issuer",
            TEST_ISSUER,
            "--trusted-root",
            root_file.to_str().unwrap(),
            "--format",
            "json",
        ];
        a.extend_from_slice(identity);
        mlsign(&a)
    };
    let r = verify(&["--identity", SIGNER]);
    assert_eq!(r.code, 0, "{}", r.all());
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["method"], "keyless");
    assert!(v["signer"].as_str().unwrap().contains(SIGNER), "{v}");
    let r = verify(&["--identity-regex", "https://github.com/mlsign-test/.*"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let r = verify(&["--identity-regex", "https://github.com/mlsign-test"]);
    expect_check(&r, 1, "SGS004");
    // A tampered file is found after the keyless checks pass.
    fs::write(model.join("sub/weights.bin"), vec![8u8; 4096]).unwrap();
    let r = verify(&["--identity", SIGNER]);
    expect_check(&r, 1, "SIG001");
}

fn post(s: &LocalSigstore, path: &str, body: &Value) {
    let ok = Command::new("node")
        .arg("-e")
        .arg(format!(
            "fetch('{}', {{method: 'POST', body: process.argv[1]}}).then(r => process.exit(r.ok ? 0 : 1))",
            s.url(path)
        ))
        .arg(body.to_string())
        .status()
        .unwrap();
    assert!(ok.success(), "POST {path}");
}

#[test]
fn bundles_from_sigstore_python_verify_and_future_times_fail() {
    let s = local_sigstore();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("f.txt");
    fs::write(&file, b"signed by sigstore-python\n").unwrap();
    let tok = token(SIGNER, TEST_ISSUER);
    let sign = |out: &Path| {
        run_tool(
            &python_bin("sigstore"),
            &[
                "--trust-config",
                s.file("trust_config.json").to_str().unwrap(),
                "sign",
                "--identity-token",
                &tok,
                "--bundle",
                out.to_str().unwrap(),
                file.to_str().unwrap(),
            ],
        )
    };
    let good = work.path().join("good.json");
    let r = sign(&good);
    assert_eq!(r.code, 0, "sigstore-python sign:\n{}", r.all());
    let r = verify_local(&s, &good, file.to_str().unwrap(), SIGNER);
    assert_eq!(r.code, 0, "{}", r.all());
    // The log now claims an integrated time a day ahead (SET and checkpoint still valid).
    post(&s, "/rekor-offset", &serde_json::json!({"seconds": 86_400}));
    let future = work.path().join("future.json");
    let r = sign(&future);
    assert_eq!(r.code, 0, "sigstore-python sign:\n{}", r.all());
    let r = verify_local(&s, &future, file.to_str().unwrap(), SIGNER);
    expect_check(&r, 1, "integrated time");
}

#[test]
fn key_method_bundle_with_keyless_flags_says_what_it_is() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("m");
    fs::create_dir(&model).unwrap();
    fs::write(model.join("w.bin"), b"weights").unwrap();
    let prefix = work.path().join("k");
    let p = prefix.to_str().unwrap();
    assert_eq!(mlsign(["keygen", "--out", p]).code, 0);
    let bundle = work.path().join("m.sig");
    let key = format!("{p}.pem");
    let r = mlsign([
        "sign",
        model.to_str().unwrap(),
        "--key",
        &key,
        "--bundle",
        bundle.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let r = mlsign([
        "verify",
        model.to_str().unwrap(),
        "--bundle",
        bundle.to_str().unwrap(),
        "--identity",
        SIGNER,
        "--issuer",
        TEST_ISSUER,
    ]);
    expect_check(&r, 2, "key method");
}

/// A "browser" for the interactive flow: follows the authorization URL to the issuer, which
/// redirects at once (the user consents), then delivers the redirect to mlsign's loopback
/// listener, with `edit` applied to the callback URL first. Runs on its own thread, as a real
/// browser does.
fn fake_browser(edit: fn(String) -> String) -> impl Fn(&str) {
    move |url: &str| {
        let url = url.to_string();
        std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .max_redirects(0)
                .http_status_as_error(false)
                .build()
                .into();
            let r = agent.get(&url).call().expect("issuer reachable");
            assert_eq!(r.status().as_u16(), 302, "the issuer refused {url}");
            let to = r.headers()["location"].to_str().unwrap().to_string();
            // The redirect names localhost; the listener is on 127.0.0.1.
            let to = edit(to.replacen("http://localhost:", "http://127.0.0.1:", 1));
            let _ = agent.get(&to).call();
        });
    }
}

#[test]
fn interactive_browser_sign_in_with_pkce() {
    use mlsign::attest::sigstore::oidc::browser_token;
    use mlsign::attest::sigstore::sign::{sign, Content, Services};
    let s = local_sigstore();
    post(
        &s,
        "/oauth-claims",
        &serde_json::json!({"sub": SIGNER, "iss": TEST_ISSUER}),
    );
    let issuer = s.url("");
    let wait = std::time::Duration::from_secs(20);
    let tok = browser_token(&issuer, "sigstore", &fake_browser(|u| u), wait).unwrap();
    assert_eq!(tok.issuer(), Some(TEST_ISSUER));
    assert_eq!(tok.claim("sub").as_deref(), Some(SIGNER));
    // The token signs: Fulcio certifies it, the bundle verifies with the signer's identity.
    let services =
        Services::from_signing_config(&fs::read_to_string(s.file("signing_config.json")).unwrap())
            .unwrap();
    assert_eq!(services.oidc.as_deref(), Some(issuer.as_str()));
    let root = mlsign::attest::sigstore::TrustRoot::load(Some(&s.file("trusted_root.json")), false)
        .unwrap();
    let bundle = sign(Content::Blob(b"weights"), &tok, &services, &root).unwrap();
    assert!(bundle["verificationMaterial"]["certificate"].is_object());
    // A redirect whose state is not this sign-in's (login CSRF) is refused.
    let e = browser_token(
        &issuer,
        "sigstore",
        &fake_browser(|u| u.replace("state=", "state=x")),
        wait,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("state does not match"), "{e}");
    // A forged authorization code fails at the token endpoint (PKCE, one-time codes).
    let e = browser_token(
        &issuer,
        "sigstore",
        &fake_browser(|u| u.replace("code=", "code=forged")),
        wait,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("HTTP 400"), "{e}");
    // No browser at all: bounded by the timeout.
    let e = browser_token(
        &issuer,
        "sigstore",
        &|_| {},
        std::time::Duration::from_millis(300),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("in time"), "{e}");
    // A plain-HTTP issuer off the loopback interface is refused before anything is sent.
    let e = browser_token("http://oidc.example.com", "sigstore", &|_| {}, wait)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not HTTPS"), "{e}");
}

#[test]
fn no_token_anywhere_is_a_fact_and_the_cli_says_where_to_get_one() {
    // No token flag, none in the environment, not in GitHub Actions, stdin not a terminal:
    // nothing is contacted (the staging services are only named).
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("f");
    fs::write(&file, b"x").unwrap();
    let r = crate::support::run(
        Command::new(crate::support::bin())
            .args(["sign", file.to_str().unwrap(), "--keyless", "--staging"])
            .env_remove("SIGSTORE_ID_TOKEN")
            .env_remove("ACTIONS_ID_TOKEN_REQUEST_URL")
            .env_remove("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
            .stdin(std::process::Stdio::null()),
    );
    expect_check(&r, 2, "identity token: none given, SIGSTORE_ID_TOKEN unset");
    expect_check(
        &r,
        2,
        "terminal for the browser sign-in; pass --identity-token or --identity-token-file",
    );
    assert!(!work.path().join("f.sig").exists());
}
