//! Signing core, end to end: the real `mlsign` binary against the real OpenSSF `model_signing`
//! 1.1.1 (CLI and Python API), certificate chains made by `openssl`, and every tamper and
//! bad-input case the issue lists.

use crate::support::{mlsign, python, run, Run};
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn oms(args: &[&OsStr]) -> Run {
    let py = python();
    let bin = py.parent().unwrap().join("model_signing");
    run(Command::new(bin).args(args))
}

fn oms_api(args: &[&OsStr]) -> Run {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli/support/oms_api.py");
    run(Command::new(python()).arg(script).args(args))
}

fn openssl(dir: &Path, args: &[&str]) {
    let r = run(Command::new("openssl").current_dir(dir).args(args));
    assert_eq!(r.code, 0, "openssl {args:?}: {}", r.all());
}

macro_rules! os {
    ($($x:expr),* $(,)?) => { &[$(AsRef::<OsStr>::as_ref(&$x)),*] };
}

/// A model tree with the traps users hit.
fn model(dir: &Path) -> PathBuf {
    let m = dir.join("model");
    fs::create_dir_all(m.join("a")).unwrap();
    fs::create_dir_all(m.join("nested/deeper/deepest")).unwrap();
    fs::create_dir_all(m.join(".git/objects")).unwrap();
    fs::create_dir_all(m.join("empty-dir")).unwrap();
    fs::write(m.join("a/b"), "weights in a/b\n").unwrap();
    fs::write(m.join("a.txt"), "sorted after a/b\n").unwrap();
    fs::write(m.join("empty.bin"), "").unwrap();
    fs::write(m.join("with space.json"), "{\"x\": 1}\n").unwrap();
    fs::write(
        m.join("nested/deeper/deepest/w.safetensors"),
        vec![42u8; 100_000],
    )
    .unwrap();
    fs::write(m.join(".git/objects/ab"), "git object").unwrap();
    fs::write(m.join(".gitignore"), "*.tmp\n").unwrap();
    fs::write(m.join(".gitattributes"), "* binary\n").unwrap();
    m
}

fn ec_key(dir: &Path, name: &str, curve: &str) -> (PathBuf, PathBuf) {
    openssl(
        dir,
        &[
            "ecparam",
            "-name",
            curve,
            "-genkey",
            "-noout",
            "-out",
            &format!("{name}.sec1"),
        ],
    );
    openssl(
        dir,
        &[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            &format!("{name}.sec1"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
    openssl(
        dir,
        &[
            "ec",
            "-in",
            &format!("{name}.pem"),
            "-pubout",
            "-out",
            &format!("{name}.pub"),
        ],
    );
    (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.pub")),
    )
}

/// Root CA → intermediate CA → code-signing leaf, all P-256, made with openssl.
struct Pki {
    root: PathBuf,
    inter: PathBuf,
    leaf: PathBuf,
    leaf_key: PathBuf,
    other_root: PathBuf,
    server_leaf: PathBuf,
}

fn pki(dir: &Path) -> Pki {
    let ext = dir.join("ext.cnf");
    fs::write(
        &ext,
        "[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n\
         [leaf]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n\
         [server]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    for k in ["root", "inter", "leaf", "other", "server"] {
        ec_key(dir, k, "prime256v1");
    }
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "root.pem",
            "-subj",
            "/CN=Test Root",
            "-days",
            "3650",
            "-extensions",
            "ca",
            "-config",
            "ext.cnf",
            "-out",
            "root.crt",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "other.pem",
            "-subj",
            "/CN=Other Root",
            "-days",
            "3650",
            "-extensions",
            "ca",
            "-config",
            "ext.cnf",
            "-out",
            "other.crt",
        ],
    );
    for (name, cn, issuer, ext_name) in [
        ("inter", "Test Intermediate", "root", "ca"),
        ("leaf", "Model Signer", "inter", "leaf"),
        ("server", "Web Server", "inter", "server"),
    ] {
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-key",
                &format!("{name}.pem"),
                "-subj",
                &format!("/CN={cn}"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                &format!("{issuer}.crt"),
                "-CAkey",
                &format!("{issuer}.pem"),
                "-CAcreateserial",
                "-days",
                "365",
                "-extfile",
                "ext.cnf",
                "-extensions",
                ext_name,
                "-out",
                &format!("{name}.crt"),
            ],
        );
    }
    Pki {
        root: dir.join("root.crt"),
        inter: dir.join("inter.crt"),
        leaf: dir.join("leaf.crt"),
        leaf_key: dir.join("leaf.pem"),
        other_root: dir.join("other.crt"),
        server_leaf: dir.join("server.crt"),
    }
}

fn json(r: &Run) -> serde_json::Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.all()))
}

#[test]
fn legacy_pae_bundles_fail_closed_unless_asked_for() {
    // A bundle signed over model_signing 0.2's faulty PAE, made with upstream's own pae_compat.
    let t = tempfile::tempdir().unwrap();
    let m = model(t.path());
    let prefix = t.path().join("k");
    assert_eq!(mlsign(os!["keygen", "--out", prefix]).code, 0);
    let (pem, pubk) = (t.path().join("k.pem"), t.path().join("k.pub"));
    let (good, old) = (t.path().join("good.sig"), t.path().join("old.sig"));
    assert_eq!(
        mlsign(os!["sign", m, "--key", pem, "--bundle", good]).code,
        0
    );
    let r = oms_api(os!["legacy-resign", good, pem, old]);
    assert_eq!(r.code, 0, "{}", r.all());

    // Default: rejected (exit 1), and the message says what the bundle is and what to do.
    let r = mlsign(os!["verify", m, "--bundle", old, "--key", pubk]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.all().contains("SIG005") && r.all().contains("--legacy-pae"),
        "{}",
        r.all()
    );
    // Opted in: verified, with a warning in the report.
    let r = mlsign(os![
        "verify",
        m,
        "--bundle",
        old,
        "--key",
        pubk,
        "--legacy-pae",
        "--format",
        "json"
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let v = json(&r);
    assert_eq!(v["verified"], true);
    assert!(v["warnings"].to_string().contains("faulty PAE"), "{v}");
    // The flag never weakens anything else: a tampered tree still fails.
    fs::write(m.join("a.txt"), "changed\n").unwrap();
    let r = mlsign(os![
        "verify",
        m,
        "--bundle",
        old,
        "--key",
        pubk,
        "--legacy-pae"
    ]);
    assert_eq!(r.code, 1, "{}", r.all());
    // And a current bundle is unaffected by the flag (no warning).
    fs::write(m.join("a.txt"), "sorted after a/b\n").unwrap();
    let r = mlsign(os![
        "verify",
        m,
        "--bundle",
        good,
        "--key",
        pubk,
        "--legacy-pae",
        "--format",
        "json"
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(!json(&r)["warnings"].to_string().contains("PAE"));
}

// ---------------------------------------------------------------------------------------------
// mlsign alone

#[test]
fn keygen_sign_verify_every_key_type() {
    let t = tempfile::tempdir().unwrap();
    let m = model(t.path());
    for alg in ["p256", "p384", "p521", "ed25519"] {
        let prefix = t.path().join(alg);
        let r = mlsign(os!["keygen", "--out", prefix, "--algorithm", alg]);
        assert_eq!(r.code, 0, "{}", r.all());
        let (pem, pubk, sig) = (
            t.path().join(format!("{alg}.pem")),
            t.path().join(format!("{alg}.pub")),
            t.path().join(format!("{alg}.sig")),
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&pem).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let r = mlsign(os![
            "sign", m, "--key", pem, "--bundle", sig, "--format", "json"
        ]);
        assert_eq!(r.code, 0, "{}", r.all());
        assert_eq!(json(&r)["files"], 5);
        let r = mlsign(os![
            "verify", m, "--bundle", sig, "--key", pubk, "--format", "json"
        ]);
        assert_eq!(r.code, 0, "{alg}: {}", r.all());
        let v = json(&r);
        assert_eq!(v["verified"], true);
        assert_eq!(v["files_checked"], 5);
        assert_eq!(v["kind"], "model");
    }
    // keygen refuses to overwrite.
    let r = mlsign(os!["keygen", "--out", t.path().join("p256")]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);
}

#[test]
fn hash_orders_like_model_signing_and_honours_ignores() {
    let t = tempfile::tempdir().unwrap();
    let m = model(t.path());
    let r = mlsign(os!["hash", m, "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let v = json(&r);
    let names: Vec<&str> = v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "a/b",
            "a.txt",
            "empty.bin",
            "nested/deeper/deepest/w.safetensors",
            "with space.json"
        ]
    );
    assert_eq!(
        v["serialization"]["ignore_paths"],
        serde_json::json!([".git", ".gitattributes", ".github", ".gitignore"])
    );
    let r = mlsign(os![
        "hash",
        m,
        "--no-ignore-git-paths",
        "--ignore",
        m.join("nested"),
        "--algorithm",
        "blake3",
        "--format",
        "json"
    ]);
    let v = json(&r);
    let names: Vec<&str> = v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            ".git/objects/ab",
            ".gitattributes",
            ".gitignore",
            "a/b",
            "a.txt",
            "empty.bin",
            "with space.json"
        ]
    );
    assert_eq!(v["resources"][0]["algorithm"], "blake3");
    // Sharded: the 100 kB file in 4 shards of 30000 bytes; the empty file has none (as OMS).
    let r = mlsign(os!["hash", m, "--shard-size", "30K", "--format", "json"]);
    let v = json(&r);
    let names: Vec<&str> = v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"nested/deeper/deepest/w.safetensors:90000:100000"),
        "{names:?}"
    );
    assert_eq!(v["resources"][0]["algorithm"], "sha256-sharded-30000");
    assert_eq!(v["serialization"]["shard_size"], 30000);
    // Human format lists digests and the root.
    let r = mlsign(os!["hash", m]);
    assert!(
        r.stdout.contains("  a/b\n") && r.stdout.contains("root sha256:"),
        "{}",
        r.stdout
    );
}

#[test]
fn dataset_kind_and_default_bundle_path() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("corpus");
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("train.jsonl"), "{\"text\": \"hi\"}\n").unwrap();
    let r = mlsign(os!["keygen", "--out", t.path().join("k")]);
    assert_eq!(r.code, 0);
    let r = mlsign(os![
        "sign",
        d,
        "--key",
        t.path().join("k.pem"),
        "--kind",
        "dataset"
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let sig = t.path().join("corpus.sig");
    assert!(sig.exists(), "default bundle goes beside the directory");
    assert!(!d.join("corpus.sig").exists());
    let r = mlsign(os![
        "verify",
        d,
        "--signature",
        sig,
        "--key",
        t.path().join("k.pub"),
        "--format",
        "json"
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(json(&r)["kind"], "dataset");
    // Signing again does not clobber the bundle without --force.
    let before = fs::read(&sig).unwrap();
    let r = mlsign(os![
        "sign",
        d,
        "--key",
        t.path().join("k.pem"),
        "--kind",
        "dataset"
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    assert_eq!(fs::read(&sig).unwrap(), before);
    let r = mlsign(os!["sign", d, "--key", t.path().join("k.pem"), "--force"]);
    assert_eq!(r.code, 0, "{}", r.all());
}

#[test]
fn bundle_inside_the_model_is_ignored_and_recorded() {
    let t = tempfile::tempdir().unwrap();
    let m = model(t.path());
    mlsign(os!["keygen", "--out", t.path().join("k")]);
    let sig = m.join("model.sig");
    let r = mlsign(os![
        "sign",
        m,
        "--key",
        t.path().join("k.pem"),
        "--bundle",
        sig
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let r = mlsign(os![
        "verify",
        m,
        "--bundle",
        sig,
        "--key",
        t.path().join("k.pub")
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    // model_signing agrees.
    let r = oms(os![
        "verify",
        "key",
        m,
        "--signature",
        sig,
        "--public_key",
        t.path().join("k.pub")
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
}

#[test]
fn single_file_model() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("model.gguf");
    fs::write(&f, b"GGUF fake weights").unwrap();
    let (key, pubk) = ec_key(t.path(), "k", "prime256v1");
    let sig = t.path().join("model.gguf.sig");
    let r = mlsign(os!["sign", f, "--key", key]);
    assert_eq!(r.code, 0, "{}", r.all());
    let r = oms(os![
        "verify",
        "key",
        f,
        "--signature",
        sig,
        "--public_key",
        pubk
    ]);
    assert_eq!(r.code, 0, "model_signing: {}", r.all());
    fs::write(&f, b"GGUF evil weights").unwrap();
    let r = mlsign(os!["verify", f, "--bundle", sig, "--key", pubk]);
    assert_eq!(r.code, 1, "{}", r.all());
}

// ---------------------------------------------------------------------------------------------
// Interop with model_signing 1.1.1

#[test]
fn interop_key_method_both_ways() {
    let t = tempfile::tempdir().unwrap();
    let m = model(t.path());
    for curve in ["prime256v1", "secp384r1", "secp521r1"] {
        let (key, pubk) = ec_key(t.path(), curve, curve);
        // model_signing signs, mlsign verifies.
        let theirs = t.path().join(format!("{curve}-oms.sig"));
        let r = oms(os![
            "sign",
            "key",
            m,
            "--private_key",
            key,
            "--signature",
            theirs
        ]);
        assert_eq!(r.code, 0, "model_signing sign: {}", r.all());
        let r = mlsign(os!["verify", m, "--bundle", theirs, "--key", pubk]);
        assert_eq!(r.code, 0, "{curve}: {}", r.all());
        // mlsign signs, model_signing verifies.
        let ours = t.path().join(format!("{curve}-mlsign.sig"));
        let r = mlsign(os!["sign", m, "--key", key, "--bundle", ours]);
        assert_eq!(r.code, 0, "{}", r.all());
        let r = oms(os![
            "verify",
            "key",
            m,
            "--signature",
            ours,
            "--public_key",
            pubk
        ]);
        assert_eq!(r.code, 0, "model_signing verify {curve}: {}", r.all());
        assert!(r.stdout.contains("Verification succeeded"));
        // Same manifest either way.
        let payload = |p: &Path| {
            let b: serde_json::Value = serde_json::from_slice(&fs::read(p).unwrap()).unwrap();
            use base64::Engine;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b["dsseEnvelope"]["payload"].as_str().unwrap())
                .unwrap();
            let s: serde_json::Value = serde_json::from_slice(&raw).unwrap();
            (
                s["subject"][0]["digest"]["sha256"].clone(),
                s["predicate"]["resources"].clone(),
            )
        };
        assert_eq!(payload(&theirs), payload(&ours));
    }
}

/// A wider tree than the fixtures (names that sort differently per component, several
/// hashing batches, shards): model_signing accepts what mlsign signs and the reverse, with the
/// same resources.
#[test]
fn interop_large_tree_both_ways() {
    let t = tempfile::tempdir().unwrap();
    let m = t.path().join("tree");
    for i in 0..600usize {
        let dir = match i % 5 {
            0 => format!("d{}", i % 17),
            1 => format!("d{}/sub.{}", i % 17, i % 3),
            2 => format!("d{}.x", i % 17),
            3 => format!("d{}-y/z", i % 17),
            _ => String::new(),
        };
        let p = m.join(dir).join(format!("f{i} \u{e9}.bin"));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, noise(i % 300, i as u64)).unwrap();
    }
    let (key, pubk) = ec_key(t.path(), "k", "prime256v1");
    let payload = |p: &Path| {
        let b: serde_json::Value = serde_json::from_slice(&fs::read(p).unwrap()).unwrap();
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b["dsseEnvelope"]["payload"].as_str().unwrap())
            .unwrap();
        let s: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        (
            s["subject"][0]["digest"]["sha256"].clone(),
            s["predicate"]["resources"].clone(),
        )
    };
    for shard in [None, Some("64")] {
        let ours = t.path().join("ours.sig");
        let theirs = t.path().join("theirs.sig");
        let mut args: Vec<&OsStr> =
            os!["sign", m, "--key", key, "--bundle", ours, "--force"].to_vec();
        if let Some(s) = shard {
            args.extend([OsStr::new("--shard-size"), OsStr::new(s)]);
        }
        let r = run(Command::new(env!("CARGO_BIN_EXE_mlsign"))
            .env("MLSIGN_TEST_BATCH_FILES", "97")
            .args(&args));
        assert_eq!(r.code, 0, "{}", r.all());
        // The CLI signs whole files only; shards go through model_signing's API.
        let (r, r2) = match shard {
            None => (
                oms(os![
                    "verify",
                    "key",
                    m,
                    "--signature",
                    ours,
                    "--public_key",
                    pubk
                ]),
                oms(os![
                    "sign",
                    "key",
                    m,
                    "--private_key",
                    key,
                    "--signature",
                    theirs
                ]),
            ),
            Some(s) => (
                oms_api(os!["verify", m, pubk, ours, "--shard-size", s]),
                oms_api(os!["sign", m, key, theirs, "--shard-size", s]),
            ),
        };
        assert_eq!(r.code, 0, "model_signing verify ({shard:?}): {}", r.all());
        assert_eq!(r2.code, 0, "model_signing sign ({shard:?}): {}", r2.all());
        let r = mlsign(os!["verify", m, "--bundle", theirs, "--key", pubk]);
        assert_eq!(r.code, 0, "{}", r.all());
        let (ours_p, theirs_p) = (payload(&ours), payload(&theirs));
        let want = match shard {
            None => 600,
            Some(_) => (0..600usize).map(|i| (i % 300).div_ceil(64)).sum(),
        };
        assert_eq!(ours_p.1.as_array().unwrap().len(), want);
        assert_eq!(ours_p, theirs_p, "{shard:?}");
    }
}

#[test]
fn interop_encrypted_key() {
    let t = tempfile::tempdir().unwrap();
    let m = model(t.path());
    let r = run(Command::new(env!("CARGO_BIN_EXE_mlsign"))
        .args(os![
            "keygen",
            "--out",
            t.path().join("enc"),
            "--passphrase-env",
            "MLSIGN_TEST_PASS"
        ])
        .env("MLSIGN_TEST_PASS", "correct horse"));
    assert_eq!(r.code, 0, "{}", r.all());
    let pem = fs::read_to_string(t.path().join("enc.pem")).unwrap();
    assert!(pem.contains("ENCRYPTED PRIVATE KEY"));
    let sig = t.path().join("enc.sig");
    let sign = |pass: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_mlsign"));
        c.args(os![
            "sign",
            m,
            "--key",
            t.path().join("enc.pem"),
            "--bundle",
            sig,
            "--passphrase-env",
            "MLSIGN_TEST_PASS",
            "--force"
        ]);
        c.stdin(std::process::Stdio::null());
        match pass {
            Some(p) => c.env("MLSIGN_TEST_PASS", p),
            None => c.env_remove("MLSIGN_TEST_PASS"),
        };
        run(&mut c)
    };
    let r = sign(Some("wrong"));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("wrong passphrase"), "{}", r.stderr);
    assert!(!r.all().contains("wrong\n") && !r.all().contains("correct horse"));
    assert!(!sig.exists(), "nothing written on failure");
    let r = sign(None);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("MLSIGN_TEST_PASS is not set"),
        "{}",
        r.stderr
    );
    let r = sign(Some("correct horse"));
    assert_eq!(r.code, 0, "{}", r.all());
    // model_signing can read our encrypted PKCS#8 too (through its API: its CLI's --password
    // passes a str where cryptography wants bytes and always fails).
    let theirs = t.path().join("enc-oms.sig");
    let r = oms_api(os![
        "sign",
        m,
        t.path().join("enc.pem"),
        theirs,
        "--password",
        "correct horse"
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let r = mlsign(os![
        "verify",
        m,
        "--bundle",
        theirs,
        "--key",
        t.path().join("enc.pub")
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
}

#[test]
fn interop_certificate_method_both_ways() {
    let t = tempfile::tempdir().unwrap();
    let m = model(t.path());
    let p = pki(t.path());
    // model_signing signs with the certificate method, mlsign verifies against the root.
    let theirs = t.path().join("cert-oms.sig");
    let r = oms(os![
        "sign",
        "certificate",
        m,
        "--private_key",
        p.leaf_key,
        "--signing_certificate",
        p.leaf,
        "--certificate_chain",
        p.inter,
        "--signature",
        theirs
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let r = mlsign(os![
        "verify",
        m,
        "--bundle",
        theirs,
        "--cert-chain",
        p.root,
        "--format",
        "json"
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(json(&r)["method"], "certificate");
    assert_eq!(json(&r)["signer"], "CN=Model Signer");
    // mlsign signs, model_signing verifies.
    let ours = t.path().join("cert-mlsign.sig");
    let r = mlsign(os![
        "sign", m, "--key", p.leaf_key, "--cert", p.leaf, "--chain", p.inter, "--bundle", ours
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let r = oms(os![
        "verify",
        "certificate",
        m,
        "--signature",
        ours,
        "--certificate_chain",
        p.root
    ]);
    assert_eq!(r.code, 0, "model_signing: {}", r.all());
    // Untrusted root: rejected with SIG007.
    let r = mlsign(os![
        "verify",
        m,
        "--bundle",
        ours,
        "--cert-chain",
        p.other_root,
        "--format",
        "json"
    ]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert_eq!(json(&r)["findings"][0]["code"], "SIG007");
    // A certificate that may not sign code: rejected at verify (signing with it is the user's call).
    let server_key = t.path().join("server.pem");
    let bad = t.path().join("server.sig");
    let r = mlsign(os![
        "sign",
        m,
        "--key",
        server_key,
        "--cert",
        p.server_leaf,
        "--chain",
        p.inter,
        "--bundle",
        bad
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let r = mlsign(os!["verify", m, "--bundle", bad, "--cert-chain", p.root]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.contains("codeSigning"), "{}", r.stdout);
    // Key/cert mismatch at signing.
    let (other_key, _) = ec_key(t.path(), "stranger", "prime256v1");
    let r = mlsign(os![
        "sign",
        m,
        "--key",
        other_key,
        "--cert",
        p.leaf,
        "--bundle",
        t.path().join("x.sig")
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("another key"), "{}", r.stderr);
    // A key bundle checked with --cert-chain says what to do.
    let (k, _) = ec_key(t.path(), "plain", "prime256v1");
    let ks = t.path().join("plain.sig");
    mlsign(os!["sign", m, "--key", k, "--bundle", ks]);
    let r = mlsign(os!["verify", m, "--bundle", ks, "--cert-chain", p.root]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--key"), "{}", r.stderr);
}

#[test]
fn interop_api_variants_verify_with_mlsign() {
    let t = tempfile::tempdir().unwrap();
    let m = model(t.path());
    let (key, pubk) = ec_key(t.path(), "k", "prime256v1");
    for (alg, shard) in [
        ("sha256", "30000"),
        ("blake2", "0"),
        ("blake3", "0"),
        ("sha256", "1000000000"),
        ("blake2", "7"),
    ] {
        let sig = t.path().join(format!("{alg}-{shard}.sig"));
        let r = oms_api(os![
            "sign",
            m,
            key,
            sig,
            "--alg",
            alg,
            "--shard-size",
            shard
        ]);
        assert_eq!(r.code, 0, "model_signing API {alg}/{shard}: {}", r.all());
        let r = mlsign(os![
            "verify", m, "--bundle", sig, "--key", pubk, "--format", "json"
        ]);
        assert_eq!(r.code, 0, "{alg}/{shard}: {}", r.all());
        // and the variant is really what was re-hashed
        let v = json(&r);
        let want = if alg == "blake2" { "blake2b" } else { alg };
        assert_eq!(v["algorithm"], want);
    }
    // mlsign's own shard bundle verifies with the model_signing API (explicit config).
    let ours = t.path().join("ours-sharded.sig");
    let r = mlsign(os![
        "sign",
        m,
        "--key",
        key,
        "--bundle",
        ours,
        "--shard-size",
        "30000"
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let r = oms_api(os![
        "verify",
        m,
        pubk,
        ours,
        "--alg",
        "sha256",
        "--shard-size",
        "30000"
    ]);
    assert_eq!(
        r.code,
        0,
        "model_signing API verify of mlsign shards: {}",
        r.all()
    );
    let ours = t.path().join("ours-blake2.sig");
    mlsign(os![
        "sign",
        m,
        "--key",
        key,
        "--bundle",
        ours,
        "--algorithm",
        "blake2b"
    ]);
    let r = oms_api(os!["verify", m, pubk, ours, "--alg", "blake2"]);
    assert_eq!(
        r.code,
        0,
        "model_signing API verify of mlsign blake2b: {}",
        r.all()
    );
    // Tampering is caught in the variants too.
    fs::write(
        m.join("nested/deeper/deepest/w.safetensors"),
        vec![43u8; 100_000],
    )
    .unwrap();
    let r = mlsign(os![
        "verify",
        m,
        "--bundle",
        t.path().join("sha256-30000.sig"),
        "--key",
        pubk,
        "--format",
        "json"
    ]);
    assert_eq!(r.code, 1);
    assert_eq!(json(&r)["findings"][0]["code"], "SIG001");
}

// ---------------------------------------------------------------------------------------------
// Tampering: each case fails with its own message and exit 1

fn signed(t: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let m = model(t);
    let (key, pubk) = ec_key(t, "k", "prime256v1");
    let sig = t.join("model.sig");
    let r = mlsign(os!["sign", m, "--key", key, "--bundle", sig]);
    assert_eq!(r.code, 0, "{}", r.all());
    (m, key, pubk, sig)
}

fn codes(r: &Run) -> Vec<String> {
    json(r)["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn tamper_content_changes_are_reported_by_path() {
    let t = tempfile::tempdir().unwrap();
    let (m, _, pubk, sig) = signed(t.path());
    let verify = || {
        mlsign(os![
            "verify", m, "--bundle", sig, "--key", pubk, "--format", "json"
        ])
    };
    assert_eq!(verify().code, 0);

    // A flipped byte.
    let w = m.join("nested/deeper/deepest/w.safetensors");
    let mut bytes = fs::read(&w).unwrap();
    bytes[54321] ^= 1;
    fs::write(&w, &bytes).unwrap();
    let r = verify();
    assert_eq!(r.code, 1);
    assert_eq!(codes(&r), ["SIG001"]);
    assert_eq!(
        json(&r)["findings"][0]["location"]["path"],
        "nested/deeper/deepest/w.safetensors"
    );
    bytes[54321] ^= 1;
    fs::write(&w, &bytes).unwrap();

    // Added, removed, renamed.
    fs::write(m.join("backdoor.py"), "import os").unwrap();
    fs::remove_file(m.join("a.txt")).unwrap();
    fs::rename(m.join("with space.json"), m.join("with_space.json")).unwrap();
    let r = verify();
    assert_eq!(r.code, 1);
    let v = json(&r);
    let diffs = &v["differences"];
    assert!(
        diffs
            .as_array()
            .unwrap()
            .contains(&serde_json::json!({"kind": "extra", "path": "backdoor.py"})),
        "{diffs}"
    );
    assert!(
        diffs
            .as_array()
            .unwrap()
            .contains(&serde_json::json!({"kind": "missing", "path": "a.txt"})),
        "{diffs}"
    );
    assert!(diffs.as_array().unwrap().contains(&serde_json::json!({"kind": "renamed", "from": "with space.json", "to": "with_space.json"})), "{diffs}");
    let mut c = codes(&r);
    c.sort();
    assert_eq!(c, ["SIG002", "SIG003", "SIG004"]);
    // Human output names them too; SARIF carries the same findings.
    let r = mlsign(os!["verify", m, "--bundle", sig, "--key", pubk]);
    assert!(
        r.stdout.contains("FAILED")
            && r.stdout.contains("backdoor.py")
            && r.stdout
                .contains("with_space.json: renamed from with space.json"),
        "{}",
        r.stdout
    );
    let r = mlsign(os![
        "verify", m, "--bundle", sig, "--key", pubk, "--format", "sarif"
    ]);
    assert_eq!(r.code, 1);
    assert_eq!(json(&r)["runs"][0]["results"].as_array().unwrap().len(), 3);

    // Ignored git paths may change freely (as model_signing).
    fs::remove_file(m.join("backdoor.py")).unwrap();
    fs::write(m.join("a.txt"), "sorted after a/b\n").unwrap();
    fs::rename(m.join("with_space.json"), m.join("with space.json")).unwrap();
    fs::write(m.join(".git/HEAD"), "ref: refs/heads/evil").unwrap();
    assert_eq!(verify().code, 0, "{}", verify().all());
    // An empty file added or removed is caught in file mode.
    fs::remove_file(m.join("empty.bin")).unwrap();
    let r = verify();
    assert_eq!(codes(&r), ["SIG002"]);
}

#[test]
fn tamper_bundle_and_keys() {
    let t = tempfile::tempdir().unwrap();
    let (m, _, pubk, sig) = signed(t.path());
    let bundle: serde_json::Value = serde_json::from_slice(&fs::read(&sig).unwrap()).unwrap();
    let write = |name: &str, v: &serde_json::Value| {
        let p = t.path().join(name);
        fs::write(&p, serde_json::to_vec(v).unwrap()).unwrap();
        p
    };
    let check = |p: &Path, key: &Path| {
        mlsign(os![
            "verify", m, "--bundle", p, "--key", key, "--format", "json"
        ])
    };

    // Edited payload (a digest swapped inside the signed statement): signature fails.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let raw = b64
        .decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let edited = String::from_utf8(raw)
        .unwrap()
        .replace("\"a.txt\"", "\"b.txt\"");
    let mut v = bundle.clone();
    v["dsseEnvelope"]["payload"] = b64.encode(edited).into();
    let r = check(&write("edited.sig", &v), &pubk);
    assert_eq!(r.code, 1, "{}", r.all());
    assert_eq!(codes(&r), ["SIG005"]);
    assert!(r.stdout.contains("does not verify"), "{}", r.stdout);

    // A different signature.
    let mut v = bundle.clone();
    let mut sigb = b64
        .decode(v["dsseEnvelope"]["signatures"][0]["sig"].as_str().unwrap())
        .unwrap();
    let n = sigb.len();
    sigb[n - 3] ^= 0x40;
    v["dsseEnvelope"]["signatures"][0]["sig"] = b64.encode(sigb).into();
    assert_eq!(codes(&check(&write("badsig.sig", &v), &pubk)), ["SIG005"]);

    // Wrong key: hint mismatch; without a hint the signature check still fails.
    let (_, other) = ec_key(t.path(), "other", "prime256v1");
    let r = check(&sig, &other);
    assert_eq!(codes(&r), ["SIG006"]);
    let mut v = bundle.clone();
    v["verificationMaterial"]["publicKey"]["hint"] = "".into();
    let r = check(&write("nohint.sig", &v), &other);
    assert_eq!(codes(&r), ["SIG005"]);

    // Truncated bundle, bad JSON, empty file, unknown media type, blob bundle: exit 2, clear words.
    let text = fs::read_to_string(&sig).unwrap();
    let trunc = t.path().join("trunc.sig");
    fs::write(&trunc, &text[..text.len() / 2]).unwrap();
    let r = check(&trunc, &pubk);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("truncated JSON") && r.stderr.contains("trunc.sig"),
        "{}",
        r.stderr
    );
    let bad = t.path().join("bad.sig");
    fs::write(&bad, "{\"mediaType\": 5}").unwrap();
    let r = check(&bad, &pubk);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("malformed bundle"), "{}", r.stderr);
    fs::write(&bad, "").unwrap();
    assert!(check(&bad, &pubk).stderr.contains("empty"));
    let mut v = bundle.clone();
    v["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=99.9".into();
    let r = check(&write("future.sig", &v), &pubk);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("unknown mediaType"), "{}", r.stderr);
    let mut v = bundle.clone();
    v.as_object_mut().unwrap().remove("dsseEnvelope");
    v["messageSignature"] = serde_json::json!({"signature": "AAAA"});
    let r = check(&write("blob.sig", &v), &pubk);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("messageSignature"), "{}", r.stderr);
    // JSON errors are JSON on stdout too.
    assert!(json(&r)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("blob"));
    // Another method than the trust given: the library names the method, the CLI the flag.
    let mut v = bundle.clone();
    v["verificationMaterial"]["x509CertificateChain"] = serde_json::json!({"certificates": []});
    let r = check(&write("chain.sig", &v), &pubk);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains(
            "unsupported bundle: it was signed with the certificate method; verify with \
             --cert-chain ROOTS.pem"
        ),
        "{}",
        r.stderr
    );
}

#[test]
fn hostile_manifests_are_rejected_before_reading_the_disk() {
    use mlsign::attest::{sign_statement, Signer, SigningKey};
    let t = tempfile::tempdir().unwrap();
    let m = model(t.path());
    let (key, pubk) = ec_key(t.path(), "k", "prime256v1");
    let signer = Signer::from_key(
        SigningKey::from_pem(&fs::read_to_string(&key).unwrap(), &mut || unreachable!()).unwrap(),
    );
    let digest = "00".repeat(32);
    let root = |n: usize| {
        let mut v = Vec::new();
        for _ in 0..n {
            v.extend_from_slice(&[0u8; 32]);
        }
        hex_sha256(&v)
    };
    for (name, why) in [
        ("../outside", ".."),
        ("/etc/passwd", "absolute"),
        ("a/../../x", ".."),
    ] {
        let stmt = format!(
            r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"m","digest":{{"sha256":"{}"}}}}],"predicateType":"https://model_signing/signature/v1.0","predicate":{{"serialization":{{"method":"files","hash_type":"sha256","allow_symlinks":false}},"resources":[{{"name":"{name}","algorithm":"sha256","digest":"{digest}"}}]}}}}"#,
            root(1)
        );
        let b = sign_statement(&signer, stmt.as_bytes()).unwrap();
        let p = t.path().join("hostile.sig");
        fs::write(&p, b.to_json()).unwrap();
        let r = mlsign(os![
            "verify", m, "--bundle", p, "--key", pubk, "--format", "json"
        ]);
        assert_eq!(r.code, 1, "{name}: {}", r.all());
        assert_eq!(codes(&r), ["SIG008"]);
        assert!(r.stdout.contains(why), "{}", r.stdout);
    }
    // The legacy v0.1 predicate (one subject per file) is still accepted.
    let mut subjects = Vec::new();
    let h =
        run(Command::new(env!("CARGO_BIN_EXE_mlsign")).args(os!["hash", m, "--format", "json"]));
    for r in json(&h)["resources"].as_array().unwrap() {
        subjects.push(serde_json::json!({"name": r["name"], "digest": {"sha256": r["digest"]}}));
    }
    let stmt = serde_json::json!({"_type": "https://in-toto.io/Statement/v1", "subject": subjects,
        "predicateType": "https://model_signing/Digests/v0.1", "predicate": {}});
    let b = sign_statement(&signer, &serde_json::to_vec(&stmt).unwrap()).unwrap();
    let p = t.path().join("legacy.sig");
    fs::write(&p, b.to_json()).unwrap();
    let r = mlsign(os![
        "verify", m, "--bundle", p, "--key", pubk, "--format", "json"
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        json(&r)["predicate_type"],
        "https://model_signing/Digests/v0.1"
    );
}

fn hex_sha256(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

// ---------------------------------------------------------------------------------------------
// Bad input: exit 2, the file named, nothing written

#[test]
fn bad_input() {
    let t = tempfile::tempdir().unwrap();
    let (m, key, pubk, sig) = signed(t.path());
    let out = t.path().join("out.sig");

    let r = mlsign(os![
        "sign",
        t.path().join("nope"),
        "--key",
        key,
        "--bundle",
        out
    ]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("nope") && r.stderr.contains("no such file"),
        "{}",
        r.stderr
    );

    let empty = t.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let r = mlsign(os!["sign", empty, "--key", key, "--bundle", out]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("nothing to hash"), "{}", r.stderr);
    assert!(!out.exists());

    // Symlinks: refused by default, contained when allowed.
    std::os::unix::fs::symlink("a.txt", m.join("link")).unwrap();
    let r = mlsign(os!["sign", m, "--key", key, "--bundle", out]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("link") && r.stderr.contains("--allow-symlinks"),
        "{}",
        r.stderr
    );
    let r = mlsign(os!["verify", m, "--bundle", sig, "--key", pubk]);
    assert_eq!(
        r.code,
        2,
        "a symlink planted after signing is refused: {}",
        r.all()
    );
    let r = mlsign(os![
        "sign",
        m,
        "--key",
        key,
        "--bundle",
        out,
        "--allow-symlinks"
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let r = mlsign(os!["verify", m, "--bundle", out, "--key", pubk]);
    assert_eq!(
        r.code,
        0,
        "allow_symlinks is recorded and re-applied: {}",
        r.all()
    );
    fs::remove_file(m.join("link")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", m.join("escape")).unwrap();
    let r = mlsign(os![
        "sign",
        m,
        "--key",
        key,
        "--bundle",
        out,
        "--allow-symlinks",
        "--force"
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("outside the root"), "{}", r.stderr);
    fs::remove_file(m.join("escape")).unwrap();

    // A named pipe is a special file, refused (and never opened, so nothing blocks).
    let fifo = m.join("pipe");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let r = mlsign(os!["hash", m]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("named pipe"), "{}", r.stderr);
    fs::remove_file(&fifo).unwrap();

    // Keys: garbage, a public key given as private, an unsupported curve, RSA.
    let garbage = t.path().join("garbage.pem");
    fs::write(&garbage, "not a key").unwrap();
    let r = mlsign(os!["sign", m, "--key", garbage, "--bundle", out, "--force"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("garbage.pem"), "{}", r.stderr);
    let r = mlsign(os!["sign", m, "--key", pubk, "--bundle", out, "--force"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("not a private key"), "{}", r.stderr);
    let (k1, _) = ec_key(t.path(), "k1", "secp256k1");
    let r = mlsign(os!["sign", m, "--key", k1, "--bundle", out, "--force"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("not supported"), "{}", r.stderr);
    openssl(
        t.path(),
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:1024",
            "-out",
            "rsa.pem",
        ],
    );
    let r = mlsign(os![
        "sign",
        m,
        "--key",
        t.path().join("rsa.pem"),
        "--bundle",
        out,
        "--force"
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("RSA"), "{}", r.stderr);

    // SEC1 ("EC PRIVATE KEY") files work as well as PKCS#8.
    let r = mlsign(os![
        "sign",
        m,
        "--key",
        t.path().join("k.sec1"),
        "--bundle",
        out,
        "--force"
    ]);
    assert_eq!(r.code, 0, "{}", r.all());

    // Usage errors are exit 2 (clap).
    let r = mlsign(os!["verify", m, "--bundle", sig]);
    assert_eq!(r.code, 2);
    let r = mlsign(os!["frobnicate"]);
    assert_eq!(r.code, 2);
}

#[test]
fn truncation_under_the_memory_map_is_an_error_not_a_crash() {
    let t = tempfile::tempdir().unwrap();
    let m = model(t.path());
    let r = run(Command::new(env!("CARGO_BIN_EXE_mlsign"))
        .args(os!["hash", m])
        .env("MLSIGN_TEST_TRUNCATE_WHILE_HASHING", "1"));
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("changed while it was being hashed"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(m.to_str().unwrap()),
        "names the file: {}",
        r.stderr
    );
}

#[test]
fn every_read_and_hash_path_agrees() {
    let t = tempfile::tempdir().unwrap();
    let m = model(t.path());
    fs::write(
        m.join("big.bin"),
        (0..20_000_000u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    for extra in [
        &[][..],
        &["--shard-size", "3000001"][..],
        &["--algorithm", "blake3"][..],
    ] {
        let mut outs = Vec::new();
        for (no_mmap, no_shani) in [("0", "0"), ("1", "0"), ("0", "1"), ("1", "1")] {
            let r = run(Command::new(env!("CARGO_BIN_EXE_mlsign"))
                .args(os!["hash", m, "--format", "json"])
                .args(extra)
                .env("MLSIGN_NO_MMAP", no_mmap)
                .env("MLSIGN_NO_SHANI", no_shani));
            assert_eq!(r.code, 0, "{}", r.all());
            outs.push(json(&r)["resources"].clone());
        }
        for o in &outs[1..] {
            assert_eq!(&outs[0], o, "{extra:?}");
        }
    }
}

#[test]
fn unreadable_file_is_an_io_error() {
    // Root reads mode-000 files, so as root the binary runs as `nobody` through setpriv
    // (util-linux); that way CI, which runs as root, exercises the real permission error.
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let m = model(t.path());
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(m.join("a.txt"), fs::Permissions::from_mode(0o000)).unwrap();
    let r = if unsafe { libc::geteuid() } == 0 {
        // A copy of the binary beside the model: the build tree may sit under a 0700 home.
        let bin = t.path().join("mlsign");
        fs::copy(env!("CARGO_BIN_EXE_mlsign"), &bin).unwrap();
        run(Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .arg("hash")
            .arg(&m))
    } else {
        mlsign(os!["hash", m])
    };
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("a.txt") && r.stderr.contains("cannot read"),
        "{}",
        r.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// Issue 17: scheduler shapes, PKCS#11, incremental re-signing, partitioned manifests.

/// `mlsign` with its stat cache in `cache` (never the user's own).
fn mlsign_in<I, S>(cache: &Path, args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(Command::new(env!("CARGO_BIN_EXE_mlsign"))
        .env("XDG_CACHE_HOME", cache)
        .args(args))
}

fn root_of(r: &Run) -> String {
    json(r)["root_digest"]["sha256"]
        .as_str()
        .unwrap_or_else(|| panic!("no root digest: {}", r.all()))
        .to_string()
}

/// Deterministic pseudo-random bytes (so shapes differ in content, not only in size).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn scheduler_every_shape_gives_the_same_digests() {
    // 1, 2, 3, C, 2C, many; equal and skewed; files and shards: whatever the plan (pairs, solo
    // streams, thread counts), the manifest must equal the one-thread, no-SHA-NI manifest.
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("cache");
    let shapes: Vec<(&str, Vec<usize>)> = vec![
        ("one", vec![3 << 20]),
        ("two", vec![2 << 20, 2 << 20]),
        ("three", vec![1 << 20, 1 << 20, 1 << 20]),
        (
            "skewed",
            vec![4 << 20, 300_000, 300_000, 300_000, 300_000, 17, 0],
        ),
        ("many", (0..300).map(|i| 100 + i * 37).collect()),
    ];
    for (name, sizes) in shapes {
        let m = t.path().join(name);
        fs::create_dir_all(&m).unwrap();
        for (i, s) in sizes.iter().enumerate() {
            fs::write(m.join(format!("f{i:04}")), noise(*s, i as u64 + 1)).unwrap();
        }
        for shard in [None, Some("1000000")] {
            let mut base = vec!["hash".to_string(), m.display().to_string()];
            base.extend(["--format".into(), "json".into()]);
            if let Some(s) = shard {
                base.extend(["--shard-size".into(), s.into()]);
            }
            let reference = run(Command::new(env!("CARGO_BIN_EXE_mlsign"))
                .env("XDG_CACHE_HOME", &cache)
                .env("MLSIGN_NO_SHANI", "1")
                .args(&base)
                .args(["--threads", "1"]));
            assert_eq!(reference.code, 0, "{}", reference.all());
            for threads in ["1", "2", "3", "8"] {
                let r = mlsign_in(
                    &cache,
                    base.iter()
                        .map(String::as_str)
                        .chain(["--threads", threads]),
                );
                assert_eq!(r.code, 0, "{}", r.all());
                assert_eq!(
                    json(&r)["resources"],
                    json(&reference)["resources"],
                    "{name} {shard:?} threads {threads}"
                );
                assert_eq!(root_of(&r), root_of(&reference));
            }
        }
    }
}

// --- PKCS#11 against SoftHSM v2 ---------------------------------------------------------------

const SOFTHSM_MODULES: [&str; 2] = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
];

/// A fresh SoftHSM token in `dir` (its own config, so nothing outside the temp dir is touched).
struct Hsm {
    conf: PathBuf,
    module: String,
    pin_file: PathBuf,
}

impl Hsm {
    const PIN: &'static str = "4931-pin";

    fn new(dir: &Path) -> Hsm {
        let module = SOFTHSM_MODULES
            .iter()
            .find(|p| Path::new(p).exists())
            .expect("PKCS#11 tests need SoftHSM v2: apt-get install softhsm2 (scripts/deps/apt/pkcs11.txt)")
            .to_string();
        let tokens = dir.join("tokens");
        fs::create_dir_all(&tokens).unwrap();
        let conf = dir.join("softhsm2.conf");
        fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        let r = run(Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &conf)
            .args(["--init-token", "--free", "--label", "mlsign-test"])
            .args(["--so-pin", "so-secret-1", "--pin", Self::PIN]));
        assert_eq!(r.code, 0, "softhsm2-util: {}", r.all());
        let pin_file = dir.join("pin");
        fs::write(&pin_file, format!("{}\n", Self::PIN)).unwrap();
        Hsm {
            conf,
            module,
            pin_file,
        }
    }

    fn uri(&self, object: &str) -> String {
        format!(
            "pkcs11:token=mlsign-test;object={object}?module-path={}&pin-source=file:{}",
            self.module,
            self.pin_file.display()
        )
    }

    fn run(&self, args: &[&OsStr]) -> Run {
        run(Command::new(env!("CARGO_BIN_EXE_mlsign"))
            .env("SOFTHSM2_CONF", &self.conf)
            .env("XDG_CACHE_HOME", self.conf.with_file_name("cache"))
            .env_remove("MLSIGN_PKCS11_PIN")
            .args(args))
    }
}

#[test]
fn pkcs11_keys_on_softhsm_sign_bundles_both_verifiers_accept() {
    let t = tempfile::tempdir().unwrap();
    let m = model(t.path());
    let hsm = Hsm::new(t.path());
    for (alg, object) in [("p256", "release-256"), ("p384", "release-384")] {
        let prefix = t.path().join(object);
        let uri = hsm.uri(object);
        let r = hsm.run(os![
            "keygen",
            "--out",
            prefix,
            "--algorithm",
            alg,
            "--pkcs11-uri",
            uri
        ]);
        assert_eq!(r.code, 0, "{}", r.all());
        assert!(
            !prefix.with_extension("pem").exists(),
            "no private key file for a token key"
        );
        let pubk = t.path().join(format!("{object}.pub"));
        // A second key under the same name is refused, not silently added.
        let r = hsm.run(os![
            "keygen",
            "--out",
            t.path().join("dup"),
            "--algorithm",
            alg,
            "--pkcs11-uri",
            uri
        ]);
        assert_eq!(r.code, 2, "{}", r.all());
        assert!(r.stderr.contains("already exists"), "{}", r.stderr);

        let bundle = t.path().join(format!("{object}.sig"));
        let r = hsm.run(os![
            "sign",
            m,
            "--pkcs11-uri",
            uri,
            "--bundle",
            bundle,
            "--format",
            "json"
        ]);
        assert_eq!(r.code, 0, "{}", r.all());
        assert!(!r.all().contains(Hsm::PIN), "the PIN must never be printed");
        let r = mlsign(os!["verify", m, "--bundle", bundle, "--key", pubk]);
        assert_eq!(r.code, 0, "{}", r.all());
        let r = oms(os![
            "verify",
            "key",
            m,
            "--signature",
            bundle,
            "--public_key",
            pubk
        ]);
        assert_eq!(r.code, 0, "model_signing verify key: {}", r.all());
        // The PIN from the environment works as well as from pin-source.
        let env_uri = format!(
            "pkcs11:token=mlsign-test;object={object}?module-path={}",
            hsm.module
        );
        let r = run(Command::new(env!("CARGO_BIN_EXE_mlsign"))
            .env("SOFTHSM2_CONF", &hsm.conf)
            .env("XDG_CACHE_HOME", t.path().join("cache"))
            .env("MLSIGN_PKCS11_PIN", Hsm::PIN)
            .args(os![
                "sign",
                m,
                "--pkcs11-uri",
                env_uri,
                "--bundle",
                bundle,
                "--force"
            ]));
        assert_eq!(r.code, 0, "{}", r.all());
        let r = mlsign(os!["verify", m, "--bundle", bundle, "--key", pubk]);
        assert_eq!(r.code, 0, "{}", r.all());
    }
}

#[test]
fn pkcs11_bad_input_fails_with_exit_2_and_keeps_the_old_bundle() {
    let t = tempfile::tempdir().unwrap();
    let m = model(t.path());
    let hsm = Hsm::new(t.path());
    let r = hsm.run(os![
        "keygen",
        "--out",
        t.path().join("k"),
        "--pkcs11-uri",
        hsm.uri("k")
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let bundle = t.path().join("old.sig");
    fs::write(&bundle, "previous bundle").unwrap();
    let wrong_pin = t.path().join("wrong-pin");
    fs::write(&wrong_pin, "0000\n").unwrap();
    let bad = |uri: String, want: &str| {
        let r = hsm.run(os![
            "sign",
            m,
            "--pkcs11-uri",
            uri,
            "--bundle",
            bundle,
            "--force"
        ]);
        assert_eq!(r.code, 2, "{uri}: {}", r.all());
        assert!(
            r.stderr.contains(want),
            "{uri}: want {want:?} in {}",
            r.stderr
        );
        assert!(!r.all().contains(Hsm::PIN));
        assert_eq!(fs::read_to_string(&bundle).unwrap(), "previous bundle");
    };
    let base = |rest: &str| {
        format!(
            "pkcs11:{rest}?module-path={}&pin-source=file:{}",
            hsm.module,
            hsm.pin_file.display()
        )
    };
    bad(
        format!(
            "pkcs11:token=mlsign-test;object=k?module-path={}&pin-source=file:{}",
            hsm.module,
            wrong_pin.display()
        ),
        "PIN is wrong",
    );
    bad(
        base("token=mlsign-test;object=nope"),
        "no private key matches object=nope",
    );
    bad(
        base("token=other-token;object=k"),
        "no token matches token=other-token",
    );
    bad(
        format!(
            "pkcs11:token=mlsign-test;object=k?module-path={}&pin-value={}",
            hsm.module,
            Hsm::PIN
        ),
        "process list",
    );
    bad(
        format!(
            "pkcs11:token=mlsign-test;object=k?module-path={}/missing.so",
            t.path().display()
        ),
        "cannot load the PKCS#11 module",
    );
    bad(
        format!(
            "pkcs11:token=mlsign-test;object=k?module-path={}&pin-source=file:{}/none",
            hsm.module,
            t.path().display()
        ),
        "pin-source",
    );
    // An unreadable token store: the token is gone.
    let r = run(Command::new(env!("CARGO_BIN_EXE_mlsign"))
        .env("SOFTHSM2_CONF", t.path().join("no-such.conf"))
        .args(os![
            "sign",
            m,
            "--pkcs11-uri",
            hsm.uri("k"),
            "--bundle",
            bundle,
            "--force"
        ]));
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("PKCS#11"), "{}", r.stderr);
    assert_eq!(fs::read_to_string(&bundle).unwrap(), "previous bundle");
    // --key and --pkcs11-uri together is a usage error.
    let (key, _) = ec_key(t.path(), "file", "prime256v1");
    let r = hsm.run(os![
        "sign",
        m,
        "--key",
        key,
        "--pkcs11-uri",
        hsm.uri("k"),
        "--bundle",
        bundle
    ]);
    assert_eq!(r.code, 2, "{}", r.all());
}

// --- incremental re-signing -------------------------------------------------------------------

fn incremental(r: &Run) -> (u64, u64) {
    let v = json(r);
    let i = &v["incremental"];
    (
        i["reused_files"]
            .as_u64()
            .unwrap_or_else(|| panic!("{}", r.all())),
        i["hashed_files"].as_u64().unwrap(),
    )
}

fn cache_files(cache: &Path) -> Vec<PathBuf> {
    fs::read_dir(cache.join("mlsign"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("stat-")
        })
        .collect()
}

#[test]
fn since_reuses_only_what_the_stat_cache_proves_unchanged() {
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("cache");
    let m = t.path().join("model");
    fs::create_dir_all(m.join("shards")).unwrap();
    for i in 0..6 {
        fs::write(m.join(format!("shards/w{i}.bin")), noise(200_000, i)).unwrap();
    }
    fs::write(m.join("README.md"), "# model\n").unwrap();
    let (key, pubk) = ec_key(t.path(), "k", "prime256v1");
    let (other_key, _) = ec_key(t.path(), "other", "prime256v1");
    // Files changed within the racy window of a run are never recorded; let them age.
    std::thread::sleep(std::time::Duration::from_millis(120));
    let old = t.path().join("old.sig");
    let r = mlsign_in(
        &cache,
        os!["sign", m, "--key", key, "--bundle", old, "--format", "json"],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(json(&r)["stat_cache_entries"], 7, "{}", r.all());

    let fresh_root = |m: &Path| {
        root_of(&mlsign_in(
            &cache,
            os!["hash", m, "--format", "json", "--no-stat-cache"],
        ))
    };
    let since = |args: &[&OsStr]| {
        let new = t.path().join("new.sig");
        let mut a: Vec<&OsStr> =
            os!["sign", m, "--bundle", new, "--force", "--format", "json", "--since", old].to_vec();
        a.extend_from_slice(args);
        let r = mlsign_in(&cache, a);
        assert_eq!(r.code, 0, "{}", r.all());
        let v = mlsign(os!["verify", m, "--bundle", new, "--key", pubk]);
        assert_eq!(v.code, 0, "the incremental bundle must verify: {}", v.all());
        r
    };

    // Nothing changed: everything reused, same root.
    let r = since(os!["--key", key, "--no-stat-cache"]);
    assert_eq!(incremental(&r), (7, 0));
    assert_eq!(root_of_sign(&r), fresh_root(&m));

    // README edited: only it is re-hashed.
    fs::write(m.join("README.md"), "# model, edited\n").unwrap();
    let r = since(os!["--key", key, "--no-stat-cache"]);
    assert_eq!(incremental(&r), (6, 1), "{}", r.stdout);
    assert_eq!(root_of_sign(&r), fresh_root(&m));

    // Same size, mtime put back: ctime still differs, so the file is re-hashed.
    let f = m.join("shards/w3.bin");
    let meta = fs::metadata(&f).unwrap();
    use std::os::unix::fs::MetadataExt;
    let stamp = format!("@{}.{:09}", meta.mtime(), meta.mtime_nsec());
    fs::write(&f, noise(200_000, 99)).unwrap();
    let r = run(Command::new("touch")
        .args(["-m", "-d", stamp.as_str()])
        .arg(&f));
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(fs::metadata(&f).unwrap().mtime_nsec(), meta.mtime_nsec());
    let r = since(os!["--key", key, "--no-stat-cache"]);
    assert_eq!(incremental(&r), (5, 2), "{}", r.stdout);
    assert_eq!(root_of_sign(&r), fresh_root(&m));

    // Doubt ⇒ full re-hash with a warning: tampered, corrupt or missing cache; another key;
    // another algorithm.
    let cf = cache_files(&cache);
    assert_eq!(cf.len(), 1, "{cf:?}");
    let good = fs::read(&cf[0]).unwrap();
    let mut tampered = good.clone();
    // A digit of the body (the MAC is on the last line).
    let at = tampered.len() / 3;
    tampered[at] = if tampered[at] == b'1' { b'2' } else { b'1' };
    for (what, bytes, want) in [
        ("tampered", tampered, "MAC does not match"),
        ("corrupt", good[..good.len() / 2].to_vec(), "MAC"),
        ("empty", Vec::new(), "corrupt"),
    ] {
        fs::write(&cf[0], &bytes).unwrap();
        let r = since(os!["--key", key, "--no-stat-cache"]);
        assert_eq!(incremental(&r), (0, 7), "{what}: {}", r.all());
        assert!(r.stderr.contains(want), "{what}: {}", r.stderr);
    }
    fs::remove_file(&cf[0]).unwrap();
    let r = since(os!["--key", key, "--no-stat-cache"]);
    assert_eq!(incremental(&r), (0, 7));
    assert!(r.stderr.contains("no stat cache"), "{}", r.stderr);
    // The library states the miss; the CLI says how to make one.
    assert!(
        r.stderr.contains("run `mlsign sign` or `mlsign hash` once"),
        "{}",
        r.stderr
    );
    fs::write(&cf[0], &good).unwrap();
    let r = mlsign_in(
        &cache,
        os![
            "sign",
            m,
            "--bundle",
            t.path().join("x.sig"),
            "--since",
            old,
            "--key",
            other_key,
            "--format",
            "json",
            "--no-stat-cache"
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(incremental(&r), (0, 7));
    assert!(
        r.stderr.contains("not signed by this signing key"),
        "{}",
        r.stderr
    );
    let r = since(os![
        "--key",
        key,
        "--no-stat-cache",
        "--algorithm",
        "blake3"
    ]);
    assert_eq!(incremental(&r), (0, 7));
    assert!(r.stderr.contains("another algorithm"), "{}", r.stderr);

    // Another tree at another path has no cache of its own.
    let copy = t.path().join("copy");
    fs::create_dir_all(copy.join("shards")).unwrap();
    for e in fs::read_dir(m.join("shards")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), copy.join("shards").join(e.file_name())).unwrap();
    }
    fs::copy(m.join("README.md"), copy.join("README.md")).unwrap();
    let r = mlsign_in(
        &cache,
        os![
            "sign",
            copy,
            "--bundle",
            t.path().join("c.sig"),
            "--since",
            old,
            "--key",
            key,
            "--format",
            "json"
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(incremental(&r), (0, 7));

    // A bad --since is an error naming it, and the existing bundle stays as it was.
    let keep = t.path().join("keep.sig");
    fs::write(&keep, "keep me").unwrap();
    for bad in [t.path().join("missing.sig"), m.join("README.md")] {
        let r = mlsign_in(
            &cache,
            os!["sign", m, "--key", key, "--bundle", keep, "--force", "--since", bad],
        );
        assert_eq!(r.code, 2, "{}", r.all());
        assert!(
            r.stderr
                .contains(bad.file_name().unwrap().to_str().unwrap()),
            "{}",
            r.stderr
        );
        assert_eq!(fs::read_to_string(&keep).unwrap(), "keep me");
    }
}

fn root_of_sign(r: &Run) -> String {
    json(r)["root_digest"].as_str().unwrap().to_string()
}

#[test]
fn since_with_shards_reuses_per_file_and_verify_ignores_the_cache() {
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("cache");
    let m = t.path().join("model");
    fs::create_dir_all(&m).unwrap();
    fs::write(m.join("big.bin"), noise(2_500_000, 5)).unwrap();
    fs::write(m.join("small.txt"), "hello\n").unwrap();
    let (key, pubk) = ec_key(t.path(), "k", "prime256v1");
    std::thread::sleep(std::time::Duration::from_millis(120));
    let old = t.path().join("old.sig");
    let r = mlsign_in(
        &cache,
        os![
            "sign",
            m,
            "--key",
            key,
            "--bundle",
            old,
            "--shard-size",
            "1000000"
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    fs::write(m.join("small.txt"), "hello again\n").unwrap();
    let new = t.path().join("new.sig");
    let r = mlsign_in(
        &cache,
        os![
            "sign",
            m,
            "--key",
            key,
            "--bundle",
            new,
            "--shard-size",
            "1000000",
            "--since",
            old,
            "--format",
            "json"
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(incremental(&r), (1, 1));
    // Another shard size: nothing reused.
    let r = mlsign_in(
        &cache,
        os![
            "sign",
            m,
            "--key",
            key,
            "--bundle",
            new,
            "--force",
            "--shard-size",
            "500000",
            "--since",
            old,
            "--format",
            "json"
        ],
    );
    assert_eq!(incremental(&r), (0, 2));
    assert!(r.stderr.contains("shard size"), "{}", r.stderr);
    // A bundle of the current state, then the cache is refreshed by `hash`.
    let r = mlsign_in(
        &cache,
        os![
            "sign",
            m,
            "--key",
            key,
            "--bundle",
            new,
            "--force",
            "--shard-size",
            "1000000"
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    // verify re-hashes everything whatever the cache says: change big.bin, keep its mtime.
    let f = m.join("big.bin");
    let meta = fs::metadata(&f).unwrap();
    use std::os::unix::fs::MetadataExt;
    let stamp = format!("@{}.{:09}", meta.mtime(), meta.mtime_nsec());
    let mut bytes = fs::read(&f).unwrap();
    bytes[1_700_000] ^= 0xff;
    fs::write(&f, &bytes).unwrap();
    assert_eq!(
        run(Command::new("touch")
            .args(["-m", "-d", stamp.as_str()])
            .arg(&f))
        .code,
        0
    );
    let r = mlsign_in(
        &cache,
        os!["verify", m, "--bundle", new, "--key", pubk, "--format", "json"],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert_eq!(codes(&r), ["SIG001"]);
    assert_eq!(
        json(&r)["differences"][0]["path"],
        "big.bin",
        "{}",
        r.stdout
    );
}

// --- partitioned manifests --------------------------------------------------------------------

fn tree_for_parts(dir: &Path) -> PathBuf {
    let m = dir.join("dataset");
    for i in 0..40 {
        let d = m.join(format!("d{}", i % 5));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(format!("f{i}.bin")), noise(1000 + i * 301, i as u64)).unwrap();
    }
    fs::write(m.join("empty"), "").unwrap();
    m
}

#[test]
fn four_partitions_in_separate_processes_sign_the_same_bundle() {
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("cache");
    let m = tree_for_parts(t.path());
    let (key, pubk) = ec_key(t.path(), "k", "prime256v1");
    let parts = t.path().join("parts");
    fs::create_dir_all(&parts).unwrap();
    for shard in [None, Some("2000")] {
        let extra: Vec<&str> = shard.map_or(vec![], |s| vec!["--shard-size", s]);
        // Four separate processes at once, as an indexed Job would run them.
        let children: Vec<_> = (0..4)
            .map(|i| {
                Command::new(env!("CARGO_BIN_EXE_mlsign"))
                    .env("XDG_CACHE_HOME", &cache)
                    .args(os![
                        "hash",
                        m,
                        "--partition",
                        format!("{i}/4"),
                        "-o",
                        parts.join(format!("part-{i}.json")),
                        "--force"
                    ])
                    .args(&extra)
                    .output()
                    .unwrap()
            })
            .collect();
        for c in &children {
            assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
        }
        let merged = t.path().join("merged.sig");
        let single = t.path().join("single.sig");
        let pattern = parts.join("part-*.json");
        let r = mlsign_in(
            &cache,
            os![
                "sign",
                m,
                "--key",
                key,
                "--bundle",
                merged,
                "--force",
                "--from-parts",
                pattern
            ]
            .iter()
            .copied()
            .chain(extra.iter().map(OsStr::new)),
        );
        assert_eq!(r.code, 0, "{}", r.all());
        assert!(
            r.stdout.contains("merged 4 partial manifests"),
            "{}",
            r.stdout
        );
        let r = mlsign_in(
            &cache,
            os!["sign", m, "--key", key, "--bundle", single, "--force"]
                .iter()
                .copied()
                .chain(extra.iter().map(OsStr::new)),
        );
        assert_eq!(r.code, 0, "{}", r.all());
        assert_eq!(
            fs::read(&merged).unwrap(),
            fs::read(&single).unwrap(),
            "merged and single-machine bundles must be byte-identical ({shard:?})"
        );
        let r = mlsign(os!["verify", m, "--bundle", merged, "--key", pubk]);
        assert_eq!(r.code, 0, "{}", r.all());
    }
}

#[test]
fn bad_parts_fail_clearly() {
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("cache");
    let m = tree_for_parts(t.path());
    let (key, _) = ec_key(t.path(), "k", "prime256v1");
    let parts = t.path().join("parts");
    fs::create_dir_all(&parts).unwrap();
    let part = |i: usize| parts.join(format!("part-{i}.json"));
    for i in 0..4 {
        let r = mlsign_in(
            &cache,
            os!["hash", m, "--partition", format!("{i}/4"), "-o", part(i)],
        );
        assert_eq!(r.code, 0, "{}", r.all());
    }
    let bundle = t.path().join("b.sig");
    fs::write(&bundle, "old").unwrap();
    let sign = |files: &[PathBuf], want: &str| {
        let mut a: Vec<&OsStr> = os![
            "sign",
            m,
            "--key",
            key,
            "--bundle",
            bundle,
            "--force",
            "--from-parts"
        ]
        .to_vec();
        a.extend(files.iter().map(|p| p.as_os_str()));
        let r = mlsign_in(&cache, a);
        assert_eq!(r.code, 2, "{want}: {}", r.all());
        assert!(r.stderr.contains(want), "want {want:?}: {}", r.stderr);
        assert_eq!(fs::read_to_string(&bundle).unwrap(), "old");
    };
    sign(&[part(0), part(1), part(3)], "partition 2 of 4 is missing");
    let dup = parts.join("dup.json");
    fs::copy(part(1), &dup).unwrap();
    sign(
        &[part(0), part(1), dup.clone(), part(2), part(3)],
        "appears twice",
    );
    // Tampered: a digest edited by hand.
    let text = fs::read_to_string(part(2)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let d = v["resources"][0]["digest"].as_str().unwrap().to_string();
    let flipped = format!("{}{}", if d.starts_with('0') { "1" } else { "0" }, &d[1..]);
    let tampered = parts.join("tampered.json");
    fs::write(&tampered, text.replace(&d, &flipped)).unwrap();
    sign(&[part(0), part(1), tampered, part(3)], "checksum mismatch");
    let junk = parts.join("junk.json");
    fs::write(&junk, "{\"format\": 1").unwrap();
    sign(&[part(0), part(1), junk, part(3)], "not a partial manifest");
    // Other settings than the signing run.
    let b3 = parts.join("b3.json");
    let r = mlsign_in(
        &cache,
        os![
            "hash",
            m,
            "--partition",
            "2/4",
            "-o",
            b3,
            "--algorithm",
            "blake3"
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    sign(
        &[part(0), part(1), b3, part(3)],
        "algorithm blake3 vs sha256); use the same --algorithm, --shard-size",
    );
    // A pattern that matches nothing.
    sign(&[parts.join("nothing-*.json")], "matches no file");
    // The directory changed after hashing.
    fs::write(m.join("d0/new-file"), "late").unwrap();
    sign(
        &[part(0), part(1), part(2), part(3)],
        "the directory changed since this part was hashed",
    );
    sign(
        &[part(0), part(1), part(2), part(3)],
        "files); hash the partitions again",
    );
}

#[test]
fn partitioned_verify_merges_every_difference() {
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("cache");
    let m = tree_for_parts(t.path());
    let (key, pubk) = ec_key(t.path(), "k", "prime256v1");
    let bundle = t.path().join("b.sig");
    let r = mlsign_in(&cache, os!["sign", m, "--key", key, "--bundle", bundle]);
    assert_eq!(r.code, 0, "{}", r.all());
    let verify_all = |label: &str| -> Run {
        for i in 0..3 {
            let r = mlsign(os![
                "verify",
                m,
                "--bundle",
                bundle,
                "--key",
                pubk,
                "--partition",
                format!("{i}/3"),
                "-o",
                t.path().join(format!("v-{i}.json"))
            ]);
            assert!(r.code == 0 || r.code == 1, "{label}: {}", r.all());
        }
        mlsign(os![
            "verify",
            m,
            "--bundle",
            bundle,
            "--key",
            pubk,
            "--from-parts",
            t.path().join("v-*.json"),
            "--format",
            "json"
        ])
    };
    let r = verify_all("clean");
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(json(&r)["files_checked"], 41);
    // One modified, one removed, one renamed (likely across partitions), one added.
    fs::write(m.join("d1/f1.bin"), "changed").unwrap();
    fs::remove_file(m.join("d2/f2.bin")).unwrap();
    fs::rename(m.join("d3/f3.bin"), m.join("d3/f3-renamed.bin")).unwrap();
    fs::write(m.join("added"), "new").unwrap();
    let r = verify_all("tampered");
    assert_eq!(r.code, 1, "{}", r.all());
    let diffs = json(&r)["differences"].clone();
    let kinds: Vec<(String, String)> = diffs
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_string(),
                d.get("path")
                    .or(d.get("to"))
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("extra".to_string(), "added".to_string()),
            ("modified".into(), "d1/f1.bin".into()),
            ("missing".into(), "d2/f2.bin".into()),
            ("renamed".into(), "d3/f3-renamed.bin".into()),
        ]
    );
    // The merged verdict equals the single-machine one.
    let single = mlsign(os![
        "verify", m, "--bundle", bundle, "--key", pubk, "--format", "json"
    ]);
    assert_eq!(json(&single)["differences"], diffs);
    // A missing or duplicated result is an error.
    fs::remove_file(t.path().join("v-1.json")).unwrap();
    let r = mlsign(os![
        "verify",
        m,
        "--bundle",
        bundle,
        "--key",
        pubk,
        "--from-parts",
        t.path().join("v-*.json")
    ]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("partition 1/3 is missing"),
        "{}",
        r.stderr
    );
}
// Certificate chains by RFC 5280 (issue 10 §8): one PKI per constraint, made by openssl; each
// chain goes through `mlsign verify` and `openssl verify` at the same time (the signing
// certificate's notBefore, model_signing's rule) and both must agree, except where mlsign is
// stricter on purpose (docs/cert-chains.md), which the cases say.

const CHAIN_EXT: &str = "\
[root]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n\
[root_pl0]\nbasicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n\
[root_nocertsign]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,cRLSign,digitalSignature\n\
[root_crit]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n1.3.6.1.4.1.55555.1=critical,ASN1:UTF8String:unknown\n\
[root_plain]\nsubjectKeyIdentifier=hash\n\
[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n\
[ca_pl0]\nbasicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n\
[ca_nocertsign]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,digitalSignature,cRLSign\n\
[ca_noku]\nbasicConstraints=critical,CA:TRUE\n\
[ca_crit]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n1.3.6.1.4.1.55555.1=critical,ASN1:UTF8String:unknown\n\
[ca_nc]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\nnameConstraints=critical,permitted;DNS:good.example\n\
[ca_nc_email]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\nnameConstraints=critical,permitted;email:good.example\n\
[ca_eku_server]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\nextendedKeyUsage=serverAuth\n\
[leaf]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n\
[leaf_crit]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n1.3.6.1.4.1.55555.1=critical,ASN1:UTF8String:unknown\n\
[leaf_dns_ok]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\nsubjectAltName=DNS:signer.good.example\n\
[leaf_dns_bad]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\nsubjectAltName=DNS:signer.evil.example\n\
[leaf_email_ok]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\nsubjectAltName=email:signer@good.example\n\
[leaf_email_bad]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\nsubjectAltName=email:signer@evil.example\n\
[leaf_noku]\nbasicConstraints=CA:FALSE\nextendedKeyUsage=codeSigning\n\
[leaf_ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,digitalSignature,keyCertSign\nextendedKeyUsage=codeSigning\n";

/// A P-256 certificate `name.crt` (key `name.pem`) with extension section `section`: self-signed
/// when `issuer` is None.
fn chain_cert(dir: &Path, name: &str, cn: &str, issuer: Option<&str>, section: &str) -> PathBuf {
    ec_key(dir, name, "prime256v1");
    let (key, crt, csr) = (
        format!("{name}.pem"),
        format!("{name}.crt"),
        format!("{name}.csr"),
    );
    let subj = format!("/CN={cn}");
    match issuer {
        None => openssl(
            dir,
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                &key,
                "-subj",
                &subj,
                "-days",
                "3650",
                "-extensions",
                section,
                "-config",
                "ext.cnf",
                "-out",
                &crt,
            ],
        ),
        Some(i) => {
            openssl(
                dir,
                &["req", "-new", "-key", &key, "-subj", &subj, "-out", &csr],
            );
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    &format!("{i}.crt"),
                    "-CAkey",
                    &format!("{i}.pem"),
                    "-CAcreateserial",
                    "-days",
                    "365",
                    "-extfile",
                    "ext.cnf",
                    "-extensions",
                    section,
                    "-out",
                    &crt,
                ],
            );
        }
    }
    dir.join(crt)
}

/// The signing certificate's notBefore in seconds since 1970 (the time every check uses).
fn not_before(crt: &Path) -> u64 {
    use x509_cert::der::DecodePem;
    let c = x509_cert::Certificate::from_pem(fs::read(crt).unwrap()).unwrap();
    c.tbs_certificate
        .validity
        .not_before
        .to_unix_duration()
        .as_secs()
}

/// Concatenate PEM files into `out`.
/// `sign` with the key, certificate and chain of `leaf`, then `verify` against `root.crt`: both runs.
fn sign_chain_then_verify(
    dir: &Path,
    m: &Path,
    leaf: &str,
    chain_pem: &Path,
    bundle: &Path,
    root: &str,
) -> (Run, Run) {
    let signed = mlsign(os![
        "sign",
        m,
        "--key",
        dir.join(format!("{leaf}.pem")),
        "--cert",
        dir.join(format!("{leaf}.crt")),
        "--chain",
        chain_pem,
        "--bundle",
        bundle
    ]);
    let verified = mlsign(os![
        "verify",
        m,
        "--bundle",
        bundle,
        "--cert-chain",
        dir.join(format!("{root}.crt"))
    ]);
    (signed, verified)
}

fn pem_cat(dir: &Path, out: &str, parts: &[&str]) -> PathBuf {
    let mut all = Vec::new();
    for p in parts {
        all.extend(fs::read(dir.join(format!("{p}.crt"))).unwrap());
    }
    let path = dir.join(out);
    fs::write(&path, all).unwrap();
    path
}

struct ChainCase {
    name: &'static str,
    roots: &'static [&'static str],
    chain: &'static [&'static str],
    leaf: &'static str,
    /// What openssl verify says (and model_signing, which calls it).
    openssl_ok: bool,
    /// What mlsign says, and a phrase its message must hold when it rejects.
    mlsign_ok: bool,
    why: &'static str,
}

#[test]
fn certificate_chains_follow_rfc5280_like_openssl() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    fs::write(dir.join("ext.cnf"), CHAIN_EXT).unwrap();
    let m = dir.join("weights.bin");
    fs::write(&m, b"model bytes").unwrap();
    // Roots.
    for r in [
        "root",
        "root_pl0",
        "root_nocertsign",
        "root_crit",
        "root_plain",
    ] {
        chain_cert(dir, r, &format!("Root {r}"), None, r);
    }
    // Intermediates (i_<section>), under `root` unless named.
    for (name, issuer, section) in [
        ("i_ca", "root", "ca"),
        ("i_ca_pl0", "root", "ca_pl0"),
        ("i_below_pl0", "i_ca_pl0", "ca"),
        ("i_nocertsign", "root", "ca_nocertsign"),
        ("i_noku", "root", "ca_noku"),
        ("i_crit", "root", "ca_crit"),
        ("i_nc", "root", "ca_nc"),
        ("i_nc_email", "root", "ca_nc_email"),
        ("i_eku_server", "root", "ca_eku_server"),
        ("i_root_pl0", "root_pl0", "ca"),
        ("i_root_nocertsign", "root_nocertsign", "ca"),
        ("i_root_crit", "root_crit", "ca"),
        ("i_root_plain", "root_plain", "ca"),
    ] {
        chain_cert(
            dir,
            name,
            &format!("Intermediate {name}"),
            Some(issuer),
            section,
        );
    }
    // Signing certificates (l_<case>).
    for (name, cn, issuer, section) in [
        ("l_ok", "Model Signer", "i_ca", "leaf"),
        ("l_pl_broken", "Model Signer", "i_below_pl0", "leaf"),
        ("l_pl_kept", "Model Signer", "i_ca_pl0", "leaf"),
        ("l_crit", "Model Signer", "i_ca", "leaf_crit"),
        ("l_under_crit", "Model Signer", "i_crit", "leaf"),
        ("l_nocertsign", "Model Signer", "i_nocertsign", "leaf"),
        ("l_noku_issuer", "Model Signer", "i_noku", "leaf"),
        ("l_dns_ok", "Model Signer", "i_nc", "leaf_dns_ok"),
        ("l_dns_bad", "Model Signer", "i_nc", "leaf_dns_bad"),
        ("l_cn_bad", "signer.evil.example", "i_nc", "leaf"),
        ("l_cn_ok", "signer.good.example", "i_nc", "leaf"),
        (
            "l_email_bad",
            "Model Signer",
            "i_nc_email",
            "leaf_email_bad",
        ),
        ("l_email_ok", "Model Signer", "i_nc_email", "leaf_email_ok"),
        ("l_eku_issuer", "Model Signer", "i_eku_server", "leaf"),
        ("l_root_pl0", "Model Signer", "i_root_pl0", "leaf"),
        (
            "l_root_nocertsign",
            "Model Signer",
            "i_root_nocertsign",
            "leaf",
        ),
        ("l_root_crit", "Model Signer", "i_root_crit", "leaf"),
        ("l_root_plain", "Model Signer", "i_root_plain", "leaf"),
        ("l_ca", "Model Signer", "i_ca", "leaf_ca"),
    ] {
        chain_cert(dir, name, cn, Some(issuer), section);
    }
    let ok = |name, roots, chain, leaf| ChainCase {
        name,
        roots,
        chain,
        leaf,
        openssl_ok: true,
        mlsign_ok: true,
        why: "",
    };
    let bad = |name, roots, chain, leaf, why| ChainCase {
        name,
        roots,
        chain,
        leaf,
        openssl_ok: false,
        mlsign_ok: false,
        why,
    };
    let stricter = |name, roots, chain, leaf, why| ChainCase {
        name,
        roots,
        chain,
        leaf,
        openssl_ok: true,
        mlsign_ok: false,
        why,
    };
    let cases = [
        ok("valid two-level chain", &["root"], &["i_ca"], "l_ok"),
        bad(
            "an intermediate's pathLenConstraint broken",
            &["root"],
            &["i_below_pl0", "i_ca_pl0"],
            "l_pl_broken",
            "pathLenConstraint",
        ),
        ok("pathLenConstraint 0 kept", &["root"], &["i_ca_pl0"], "l_pl_kept"),
        bad(
            "the root's pathLenConstraint broken",
            &["root_pl0"],
            &["i_root_pl0"],
            "l_root_pl0",
            "pathLenConstraint of 'CN=Root root_pl0'",
        ),
        bad(
            "unknown critical extension in the signing certificate",
            &["root"],
            &["i_ca"],
            "l_crit",
            "critical extension 1.3.6.1.4.1.55555.1",
        ),
        bad(
            "unknown critical extension in an intermediate",
            &["root"],
            &["i_crit"],
            "l_under_crit",
            "'CN=Intermediate i_crit' has a critical extension 1.3.6.1.4.1.55555.1",
        ),
        bad(
            "unknown critical extension in the root",
            &["root_crit"],
            &["i_root_crit"],
            "l_root_crit",
            "'CN=Root root_crit' has a critical extension",
        ),
        bad(
            "issuer keyUsage without keyCertSign",
            &["root"],
            &["i_nocertsign"],
            "l_nocertsign",
            "'CN=Intermediate i_nocertsign' issues certificates, but its keyUsage does not allow keyCertSign",
        ),
        bad(
            "root keyUsage without keyCertSign",
            &["root_nocertsign"],
            &["i_root_nocertsign"],
            "l_root_nocertsign",
            "keyCertSign",
        ),
        bad(
            "root that is not a CA",
            &["root_plain"],
            &["i_root_plain"],
            "l_root_plain",
            "'CN=Root root_plain' issues certificates, but it is not a CA",
        ),
        ok("issuer without keyUsage", &["root"], &["i_noku"], "l_noku_issuer"),
        ok("dNSName inside the name constraints", &["root"], &["i_nc"], "l_dns_ok"),
        bad(
            "dNSName outside the name constraints",
            &["root"],
            &["i_nc"],
            "l_dns_bad",
            "outside the name constraints",
        ),
        bad(
            "host-name commonName outside the name constraints",
            &["root"],
            &["i_nc"],
            "l_cn_bad",
            "commonName 'signer.evil.example'",
        ),
        ok("host-name commonName inside the name constraints", &["root"], &["i_nc"], "l_cn_ok"),
        bad(
            "email outside the name constraints",
            &["root"],
            &["i_nc_email"],
            "l_email_bad",
            "outside the name constraints",
        ),
        bad(
            "trust anchor that is not self-signed (no partial chains)",
            &["i_ca"],
            &[],
            "l_ok",
            "not self-signed",
        ),
        ok(
            "intermediate from the roots file, chained to its root",
            &["root", "i_ca"],
            &[],
            "l_ok",
        ),
        bad("another root", &["root_pl0"], &["i_ca"], "l_ok", "no trusted root"),
        stricter(
            "email inside rfc822Name constraints (not processed: fail closed)",
            &["root"],
            &["i_nc_email"],
            "l_email_ok",
            "outside the name constraints",
        ),
        stricter(
            "intermediate whose extendedKeyUsage excludes codeSigning",
            &["root"],
            &["i_eku_server"],
            "l_eku_issuer",
            "extendedKeyUsage without codeSigning",
        ),
        stricter(
            "CA certificate as the signing certificate",
            &["root"],
            &["i_ca"],
            "l_ca",
            "is a CA certificate",
        ),
    ];
    let mut failures = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let roots = pem_cat(dir, &format!("roots{i}.pem"), c.roots);
        let leaf = dir.join(format!("{}.crt", c.leaf));
        let leaf_key = dir.join(format!("{}.pem", c.leaf));
        let bundle = dir.join(format!("case{i}.sig"));
        let mut sign: Vec<PathBuf> = vec![
            "sign".into(),
            m.clone(),
            "--key".into(),
            leaf_key,
            "--cert".into(),
            leaf.clone(),
            "--bundle".into(),
            bundle.clone(),
        ];
        let mut untrusted = Vec::new();
        if !c.chain.is_empty() {
            let chain = pem_cat(dir, &format!("chain{i}.pem"), c.chain);
            sign.extend(["--chain".into(), chain.clone()]);
            untrusted = vec!["-untrusted".to_string(), chain.display().to_string()];
        }
        let r = mlsign(&sign);
        assert_eq!(r.code, 0, "{}: signing: {}", c.name, r.all());
        let r = mlsign(os![
            "verify",
            m,
            "--bundle",
            bundle,
            "--cert-chain",
            roots,
            "--format",
            "json"
        ]);
        let ours = match r.code {
            0 => true,
            1 => false,
            _ => panic!("{}: mlsign verify: {}", c.name, r.all()),
        };
        let mut args = vec![
            "verify".to_string(),
            "-attime".into(),
            not_before(&leaf).to_string(),
            "-CAfile".into(),
            roots.display().to_string(),
        ];
        args.extend(untrusted);
        args.push(leaf.display().to_string());
        let o = run(Command::new("openssl").args(&args));
        let theirs = o.code == 0;
        if theirs != c.openssl_ok {
            failures.push(format!(
                "{}: openssl verify says {theirs}, the case expects {}: {}",
                c.name,
                c.openssl_ok,
                o.all()
            ));
        }
        if ours != c.mlsign_ok {
            failures.push(format!(
                "{}: mlsign says {ours}, expected {}: {}",
                c.name,
                c.mlsign_ok,
                r.all()
            ));
        } else if !ours {
            let v = json(&r);
            let msg = v["findings"][0]["message"].as_str().unwrap_or_default();
            if v["findings"][0]["code"] != "SIG007" || !msg.contains(c.why) {
                failures.push(format!(
                    "{}: expected SIG007 saying {:?}, got {}",
                    c.name, c.why, r.stdout
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn certificate_holes_are_closed_for_model_signing_too() {
    // The four chains of issue 10 §8: model_signing (OpenSSL) rejects each, and so does mlsign.
    // A signing certificate with extendedKeyUsage codeSigning and no keyUsage: both accept it.
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    fs::write(dir.join("ext.cnf"), CHAIN_EXT).unwrap();
    let m = model(dir);
    chain_cert(dir, "root", "Root", None, "root");
    for (name, issuer, section) in [
        ("i_ca", "root", "ca"),
        ("i_ca_pl0", "root", "ca_pl0"),
        ("i_below_pl0", "i_ca_pl0", "ca"),
        ("i_nc", "root", "ca_nc"),
        ("i_nocertsign", "root", "ca_nocertsign"),
    ] {
        chain_cert(dir, name, name, Some(issuer), section);
    }
    for (leaf, chain, section, ok) in [
        ("l_pathlen", vec!["i_below_pl0", "i_ca_pl0"], "leaf", false),
        ("l_crit", vec!["i_ca"], "leaf_crit", false),
        ("l_nc", vec!["i_nc"], "leaf_dns_bad", false),
        ("l_keycertsign", vec!["i_nocertsign"], "leaf", false),
        ("l_noku", vec!["i_ca"], "leaf_noku", true),
    ] {
        chain_cert(dir, leaf, "Model Signer", Some(chain[0]), section);
        let chain_pem = pem_cat(dir, &format!("{leaf}-chain.pem"), &chain);
        let bundle = dir.join(format!("{leaf}.sig"));
        let (r, v) = sign_chain_then_verify(dir, &m, leaf, &chain_pem, &bundle, "root");
        assert_eq!(r.code, 0, "{leaf}: {}", r.all());
        let r = v;
        assert_eq!(
            r.code,
            if ok { 0 } else { 1 },
            "{leaf}: mlsign: {}",
            r.all()
        );
        let r = oms(os![
            "verify",
            "certificate",
            m,
            "--signature",
            bundle,
            "--certificate_chain",
            dir.join("root.crt")
        ]);
        assert_eq!(r.code == 0, ok, "{leaf}: model_signing: {}", r.all());
    }
}

/// A signing certificate with explicit validity dates (`openssl ca`), issued by `issuer`.
fn dated_leaf(dir: &Path, name: &str, issuer: &str, start: &str, end: &str) -> PathBuf {
    if !dir.join("ca.cnf").exists() {
        fs::write(
            dir.join("ca.cnf"),
            "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial.txt\n\
             default_md = sha256\npolicy = p\nunique_subject = no\ncopy_extensions = none\n\
             [p]\ncommonName = supplied\n",
        )
        .unwrap();
        fs::write(dir.join("index.txt"), "").unwrap();
        fs::write(dir.join("serial.txt"), "01\n").unwrap();
    }
    ec_key(dir, name, "prime256v1");
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            &format!("{name}.pem"),
            "-subj",
            "/CN=Dated Signer",
            "-out",
            &format!("{name}.csr"),
        ],
    );
    openssl(
        dir,
        &[
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-cert",
            &format!("{issuer}.crt"),
            "-keyfile",
            &format!("{issuer}.pem"),
            "-in",
            &format!("{name}.csr"),
            "-out",
            &format!("{name}.crt"),
            "-startdate",
            start,
            "-enddate",
            end,
            "-extfile",
            "ext.cnf",
            "-extensions",
            "leaf",
            "-notext",
        ],
    );
    dir.join(format!("{name}.crt"))
}

#[test]
fn certificate_validity_is_checked_at_the_signing_time() {
    // model_signing's rule: no trusted time in these bundles, so the whole path is evaluated at
    // the signing certificate's notBefore. openssl verify -attime at that instant must agree.
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    fs::write(dir.join("ext.cnf"), CHAIN_EXT).unwrap();
    let m = dir.join("weights.bin");
    fs::write(&m, b"model bytes").unwrap();
    chain_cert(dir, "root", "Root", None, "root"); // now .. now + 10 years
    chain_cert(dir, "i_ca", "Intermediate", Some("root"), "ca"); // now .. now + 1 year
    let cases = [
        // (leaf, issuer, start, end, accepted, certificate named in the message)
        ("in_time", "i_ca", None, true, ""),
        (
            "after_issuer",
            "i_ca",
            Some(("20300101000000Z", "20310101000000Z")),
            false,
            "'CN=Intermediate' is not valid at the signing time 2030-01-01T00:00:00Z",
        ),
        (
            "before_issuer",
            "i_ca",
            Some(("20200101000000Z", "20400101000000Z")),
            false,
            "'CN=Intermediate' is not valid at the signing time 2020-01-01T00:00:00Z",
        ),
        (
            "after_root",
            "root",
            Some(("20400101000000Z", "20410101000000Z")),
            false,
            "'CN=Root' is not valid at the signing time 2040-01-01T00:00:00Z",
        ),
    ];
    for (name, issuer, dates, accepted, why) in cases {
        let leaf = match dates {
            Some((start, end)) => dated_leaf(dir, name, issuer, start, end),
            None => chain_cert(dir, name, "Signer", Some(issuer), "leaf"),
        };
        let bundle = dir.join(format!("{name}.sig"));
        let mut args: Vec<PathBuf> = vec![
            "sign".into(),
            m.clone(),
            "--key".into(),
            dir.join(format!("{name}.pem")),
            "--cert".into(),
            leaf.clone(),
            "--bundle".into(),
            bundle.clone(),
        ];
        if issuer != "root" {
            args.extend(["--chain".into(), dir.join(format!("{issuer}.crt"))]);
        }
        let r = mlsign(&args);
        assert_eq!(r.code, 0, "{name}: {}", r.all());
        let r = mlsign(os![
            "verify",
            m,
            "--bundle",
            bundle,
            "--cert-chain",
            dir.join("root.crt")
        ]);
        assert_eq!(r.code, if accepted { 0 } else { 1 }, "{name}: {}", r.all());
        assert!(r.stdout.contains(why), "{name}: {why:?} not in {}", r.all());
        let o = run(Command::new("openssl").current_dir(dir).args([
            "verify",
            "-attime",
            &not_before(&leaf).to_string(),
            "-CAfile",
            "root.crt",
            "-untrusted",
            "i_ca.crt",
            &format!("{name}.crt"),
        ]));
        assert_eq!(o.code == 0, accepted, "{name}: openssl: {}", o.all());
    }
}

/// Seeded generator for the randomised chain comparison (no dependency for one test).
struct Lcg(u64);
impl Lcg {
    fn pick(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn random_chains_agree_with_openssl() {
    // Differential: random PKIs over the constraints both sides process (basicConstraints,
    // pathLenConstraint, keyUsage, unknown critical extensions, dNSName constraints), each
    // judged by mlsign verify and openssl verify -attime. Every verdict must match.
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let m = dir.join("weights.bin");
    fs::write(&m, b"model bytes").unwrap();
    let mut rng = Lcg(0x5eed_2026);
    let mut ext = String::new();
    let mut disagreements = Vec::new();
    let (mut accepted, mut rejected) = (0, 0);
    for case in 0..16 {
        let ca_section = |name: &str, rng: &mut Lcg, root: bool| {
            let bc = if !root && rng.pick(8) == 0 {
                "CA:FALSE".to_string()
            } else {
                match rng.pick(4) {
                    0 => "CA:TRUE,pathlen:0".into(),
                    1 => "CA:TRUE,pathlen:1".into(),
                    _ => "CA:TRUE".into(),
                }
            };
            let mut s = format!("[{name}]\nbasicConstraints=critical,{bc}\n");
            match rng.pick(6) {
                0 => s.push_str("keyUsage=critical,digitalSignature,cRLSign\n"),
                1 => {}
                _ => s.push_str("keyUsage=critical,keyCertSign,cRLSign\n"),
            }
            if rng.pick(8) == 0 {
                s.push_str("1.3.6.1.4.1.55555.2=critical,ASN1:UTF8String:x\n");
            }
            if !root && rng.pick(4) == 0 {
                s.push_str("nameConstraints=critical,permitted;DNS:good.example\n");
            }
            s
        };
        let depth = 1 + rng.pick(2) as usize;
        let root = format!("r{case}");
        ext.push_str(&ca_section(&root, &mut rng, true));
        let mut issuer = root.clone();
        let mut chain = Vec::new();
        let mut sections = vec![(root.clone(), None)];
        for d in 0..depth {
            let name = format!("c{case}i{d}");
            ext.push_str(&ca_section(&name, &mut rng, false));
            sections.push((name.clone(), Some(issuer.clone())));
            chain.insert(0, name.clone());
            issuer = name;
        }
        let leaf = format!("c{case}leaf");
        ext.push_str(&format!(
            "[{leaf}]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n"
        ));
        match rng.pick(3) {
            0 => ext.push_str("subjectAltName=DNS:signer.good.example\n"),
            1 => ext.push_str("subjectAltName=DNS:signer.evil.example\n"),
            _ => {}
        }
        if rng.pick(8) == 0 {
            ext.push_str("1.3.6.1.4.1.55555.3=critical,ASN1:UTF8String:y\n");
        }
        sections.push((leaf.clone(), Some(issuer)));
        fs::write(dir.join("ext.cnf"), &ext).unwrap();
        for (name, iss) in &sections {
            chain_cert(dir, name, name, iss.as_deref(), name);
        }
        let chain_refs: Vec<&str> = chain.iter().map(String::as_str).collect();
        let chain_pem = pem_cat(dir, &format!("c{case}chain.pem"), &chain_refs);
        let bundle = dir.join(format!("c{case}.sig"));
        let (r, v) = sign_chain_then_verify(dir, &m, &leaf, &chain_pem, &bundle, &root);
        assert_eq!(r.code, 0, "case {case}: {}", r.all());
        let r = v;
        assert!(r.code == 0 || r.code == 1, "case {case}: {}", r.all());
        let leaf_crt = dir.join(format!("{leaf}.crt"));
        let o = run(Command::new("openssl").current_dir(dir).args([
            "verify",
            "-attime",
            &not_before(&leaf_crt).to_string(),
            "-CAfile",
            &format!("{root}.crt"),
            "-untrusted",
            &format!("c{case}chain.pem"),
            &format!("{leaf}.crt"),
        ]));
        if (r.code == 0) != (o.code == 0) {
            disagreements.push(format!(
                "case {case} (mlsign exit {}, openssl exit {}):\n{}\nmlsign: {}\nopenssl: {}",
                r.code,
                o.code,
                fs::read_to_string(dir.join("ext.cnf"))
                    .unwrap()
                    .split(&format!("[r{case}]"))
                    .nth(1)
                    .unwrap_or_default(),
                r.stdout,
                o.all()
            ));
        }
        if r.code == 0 {
            accepted += 1;
        } else {
            rejected += 1;
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n\n"));
    // The generator must exercise both outcomes, or the comparison proves little.
    assert!(
        accepted >= 2 && rejected >= 2,
        "{accepted} accepted, {rejected} rejected"
    );
}

/// The library says what exists; the CLI adds what to do, in human and JSON error output.
#[test]
fn existing_bundle_is_kept_and_the_cli_says_how_to_replace_it() {
    let t = tempfile::tempdir().unwrap();
    let model = t.path().join("m");
    std::fs::create_dir(&model).unwrap();
    std::fs::write(model.join("w.bin"), b"weights").unwrap();
    let key = t.path().join("k");
    assert_eq!(mlsign(os!["keygen", "--out", &key]).code, 0);
    let pem = t.path().join("k.pem");
    let bundle = t.path().join("m.sig");
    let sign = |extra: &[&str]| {
        let mut a: Vec<std::ffi::OsString> =
            os!["sign", &model, "--key", &pem, "--bundle", &bundle]
                .iter()
                .map(|x| x.to_os_string())
                .collect();
        a.extend(extra.iter().map(std::ffi::OsString::from));
        mlsign(a)
    };
    assert_eq!(sign(&[]).code, 0);
    let before = std::fs::read(&bundle).unwrap();
    let r = sign(&[]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr
            .contains("already exists; pass --force to overwrite it"),
        "{}",
        r.stderr
    );
    let r = sign(&["--format", "json"]);
    assert_eq!(r.code, 2, "{}", r.all());
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("pass --force to overwrite it"),
        "{v}"
    );
    assert_eq!(std::fs::read(&bundle).unwrap(), before, "bundle replaced");
    assert_eq!(sign(&["--force"]).code, 0);
}
