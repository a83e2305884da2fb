//! Registries, end to end: the real `mlsign` binary against a real Debian `docker-registry`
//! (distribution 2.8.2: no referrers API, so the referrers tag schema is used) started by each
//! test on 127.0.0.1, images pushed with the real `skopeo`, legacy cosign signatures made with
//! `openssl` from the published cosign simple-signing specification, and a small in-test
//! registry (tests/cli/support/oci.rs) for the native referrers-API path and the misbehaving-server
//! cases (no registry implementing the referrers API is packaged for Debian).

use crate::support::formats;
use crate::support::oci as support;
use crate::support::sigstore as sigstore_support;

use crate::support::Run;
use serde_json::Value;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

fn mlsign_env<I, S>(args: I, env: &[(&str, &str)]) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut c = Command::new(env!("CARGO_BIN_EXE_mlsign"));
    c.args(args)
        .env_remove("MLSIGN_REGISTRY_USERNAME")
        .env_remove("MLSIGN_REGISTRY_PASSWORD")
        .env_remove("MLSIGN_REGISTRY_TOKEN")
        .env("DOCKER_CONFIG", "/nonexistent-mlsign-test");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("run mlsign");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

fn mlsign<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    mlsign_env(args, &[])
}

struct Keys {
    _dir: tempfile::TempDir,
    a_priv: PathBuf,
    a_pub: PathBuf,
    b_priv: PathBuf,
    b_pub: PathBuf,
}

fn keys() -> Keys {
    let dir = tempfile::tempdir().unwrap();
    for k in ["a", "b"] {
        let out = dir.path().join(k);
        let r = mlsign(["keygen", "--out", p(&out)]);
        assert_eq!(r.code, 0, "{}", r.all());
    }
    Keys {
        a_priv: dir.path().join("a.pem"),
        a_pub: dir.path().join("a.pub"),
        b_priv: dir.path().join("b.pem"),
        b_pub: dir.path().join("b.pub"),
        _dir: dir,
    }
}

fn p(x: &Path) -> &str {
    x.to_str().unwrap()
}

/// Push an image built as an OCI layout to the registry with skopeo; returns its digest.
fn push_image(reg: &Registry, repo_tag: &str, seed: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let tag = repo_tag.rsplit(':').next().unwrap();
    let d = image_layout(dir.path(), tag, seed);
    skopeo_push(dir.path(), tag, &format!("{}/{repo_tag}", reg.host()));
    d
}

/// A small model directory: weights, config, tokenizer, card, a nested file.
fn model_dir(root: &Path, weight_bytes: usize) -> PathBuf {
    let m = root.join("tiny-bert");
    std::fs::create_dir_all(m.join("extra")).unwrap();
    let w: Vec<u8> = (0..weight_bytes).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(m.join("model.safetensors"), w).unwrap();
    std::fs::write(
        m.join("config.json"),
        r#"{"architectures":["BertForSequenceClassification"],"model_type":"bert","torch_dtype":"float32"}"#,
    )
    .unwrap();
    std::fs::write(m.join("tokenizer.json"), r#"{"version":"1.0"}"#).unwrap();
    std::fs::write(
        m.join("README.md"),
        "---\nlicense: apache-2.0\n---\n# tiny\n",
    )
    .unwrap();
    std::fs::write(m.join("extra/notes.txt"), "n\n").unwrap();
    m
}

fn tree_equal(a: &Path, b: &Path) {
    let list = |d: &Path| {
        let mut v: Vec<(String, Vec<u8>)> = Vec::new();
        let mut stack = vec![d.to_path_buf()];
        while let Some(x) = stack.pop() {
            for e in std::fs::read_dir(&x).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    v.push((
                        e.path().strip_prefix(d).unwrap().display().to_string(),
                        std::fs::read(e.path()).unwrap(),
                    ));
                }
            }
        }
        v.sort();
        v
    };
    assert_eq!(list(a), list(b));
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".mlsign"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Images on distribution 2.8 (tag-schema fallback)

#[test]
fn sign_by_tag_then_verify_wrong_key_and_two_signatures() {
    let reg = Registry::start();
    let k = keys();
    let digest = push_image(&reg, "team/app:v1", "one");
    let r = mlsign([
        "sign",
        &reg.oci("team/app:v1"),
        "--key",
        p(&k.a_priv),
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let j = r.json();
    assert_eq!(
        j["digest"], digest,
        "the tag is resolved to the manifest digest"
    );
    assert!(j["stored"].as_str().unwrap().contains("tag schema"), "{j}");
    // The tag-schema index is a real OCI index listing the referrer with its artifactType.
    let (s, body) = http_get(
        reg.port,
        &format!("/v2/team/app/manifests/{}", digest.replace(':', "-")),
    )
    .unwrap();
    assert_eq!(s, 200);
    let idx: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        idx["manifests"][0]["artifactType"],
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );
    assert_eq!(idx["manifests"][0]["digest"], j["signature"]);
    // The referrer: cosign v3 layout.
    let (_, rb) = http_get(
        reg.port,
        &format!(
            "/v2/team/app/manifests/{}",
            j["signature"].as_str().unwrap()
        ),
    )
    .unwrap();
    let rm: Value = serde_json::from_slice(&rb).unwrap();
    assert_eq!(rm["subject"]["digest"], digest);
    assert_eq!(
        rm["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    assert_eq!(rm["layers"].as_array().unwrap().len(), 1);
    assert_eq!(
        rm["annotations"]["dev.sigstore.bundle.content"],
        "dsse-envelope"
    );
    assert_eq!(
        rm["annotations"]["dev.sigstore.bundle.predicateType"],
        "https://sigstore.dev/cosign/sign/v1"
    );

    let v = mlsign([
        "verify",
        &reg.oci("team/app:v1"),
        "--key",
        p(&k.a_pub),
        "--format",
        "json",
    ]);
    assert_eq!(v.code, 0, "{}", v.all());
    let vj = v.json();
    assert_eq!(vj["verified"], true);
    assert_eq!(vj["digest"], digest);
    let by = vj["verified_by"].as_u64().unwrap() as usize;
    assert_eq!(vj["candidates"][by]["source"], "referrers tag schema");
    // By digest too.
    let v = mlsign([
        "verify",
        &reg.oci(&format!("team/app@{digest}")),
        "--key",
        p(&k.a_pub),
    ]);
    assert_eq!(v.code, 0, "{}", v.all());
    assert!(v.stdout.contains("Verified"), "{}", v.all());

    // Wrong key: exit 1, the key mismatch named.
    let w = mlsign([
        "verify",
        &reg.oci("team/app:v1"),
        "--key",
        p(&k.b_pub),
        "--format",
        "json",
    ]);
    assert_eq!(w.code, 1, "{}", w.all());
    let wj = w.json();
    assert_eq!(wj["verified"], false);
    let codes: Vec<&str> = wj["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(
        codes.contains(&"SIG006") && codes.contains(&"OCI001"),
        "{codes:?}"
    );
    let sarif = mlsign([
        "verify",
        &reg.oci("team/app:v1"),
        "--key",
        p(&k.b_pub),
        "--format",
        "sarif",
    ]);
    assert_eq!(sarif.code, 1);
    assert!(sarif.stdout.contains("OCI001"));

    // A second signature by another key: the index keeps both entries; each key verifies.
    let r2 = mlsign(["sign", &reg.oci("team/app:v1"), "--key", p(&k.b_priv)]);
    assert_eq!(r2.code, 0, "{}", r2.all());
    let (_, body) = http_get(
        reg.port,
        &format!("/v2/team/app/manifests/{}", digest.replace(':', "-")),
    )
    .unwrap();
    let idx: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        idx["manifests"].as_array().unwrap().len(),
        2,
        "read-modify-write kept the first entry"
    );
    for key in [&k.a_pub, &k.b_pub] {
        let v = mlsign([
            "verify",
            &reg.oci("team/app:v1"),
            "--key",
            p(key),
            "--format",
            "json",
        ]);
        assert_eq!(v.code, 0, "{}", v.all());
        let vj = v.json();
        let c = vj["candidates"].as_array().unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(
            c.iter().filter(|c| c["verified"] == true).count(),
            1,
            "one good, one bad: {vj}"
        );
    }
}

#[test]
fn moved_tag_fails_and_other_repository_is_refused() {
    let reg = Registry::start();
    let k = keys();
    push_image(&reg, "team/app:v1", "one");
    let r = mlsign(["sign", &reg.oci("team/app:v1"), "--key", p(&k.a_priv)]);
    assert_eq!(r.code, 0, "{}", r.all());
    // The tag moves to other content after signing.
    let moved = push_image(&reg, "team/app:v1", "two");
    let v = mlsign([
        "verify",
        &reg.oci("team/app:v1"),
        "--key",
        p(&k.a_pub),
        "--format",
        "json",
    ]);
    assert_eq!(v.code, 1, "{}", v.all());
    let vj = v.json();
    assert_eq!(vj["digest"], moved);
    assert_eq!(vj["findings"][0]["code"], "OCI001");

    // The same image in another repository, with the first repository's signature copied over:
    // the signature names team/app, so it does not vouch for evil/app.
    let d = push_image(&reg, "team/app:v2", "three");
    push_image(&reg, "evil/app:v2", "three");
    let s = mlsign([
        "sign",
        &reg.oci("team/app:v2"),
        "--key",
        p(&k.a_priv),
        "--format",
        "json",
    ]);
    assert_eq!(s.code, 0, "{}", s.all());
    let sig = s.json()["signature"].as_str().unwrap().to_string();
    copy_manifest_with_blobs(&reg, "team/app", "evil/app", &sig);
    copy_manifest_with_blobs(&reg, "team/app", "evil/app", &d.replace(':', "-"));
    let v = mlsign([
        "verify",
        &reg.oci("evil/app:v2"),
        "--key",
        p(&k.a_pub),
        "--format",
        "json",
    ]);
    assert_eq!(v.code, 1, "{}", v.all());
    let codes: Vec<String> = v.json()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect();
    assert!(codes.contains(&"OCI003".to_string()), "{codes:?}");
}

/// Copy a manifest (by digest or tag) and the blobs it names from one repository to another,
/// through the library's own client (raw registry operations).
fn copy_manifest_with_blobs(reg: &Registry, from: &str, to: &str, reference: &str) {
    use mlsign::oci::client::{Client, Options};
    use mlsign::oci::Reference;
    let src = Reference::parse(&format!("oci://{}/{from}:x", reg.host())).unwrap();
    let src = if reference.starts_with("sha256:") {
        src.at_digest(reference)
    } else {
        src.at_tag(reference)
    };
    let c = Client::new(&src, &Options::default()).unwrap();
    let f = c.get_manifest(&src, "copy").unwrap();
    let v: Value = serde_json::from_slice(&f.bytes).unwrap();
    let mut descs: Vec<Value> = v["layers"].as_array().cloned().unwrap_or_default();
    if v.get("config").is_some() {
        descs.push(v["config"].clone());
    }
    for d in descs {
        let b = c
            .get_blob_small(
                from,
                d["digest"].as_str().unwrap(),
                d["size"].as_u64().unwrap(),
                "copy",
            )
            .unwrap();
        c.push_blob_bytes(to, &b, "copy").unwrap();
    }
    c.put_manifest(to, reference, &f.media_type, &f.bytes, "copy")
        .unwrap();
}

#[test]
fn legacy_cosign_simple_signing_verifies() {
    let reg = Registry::start();
    let k = keys();
    let digest = push_image(&reg, "legacy/app:v1", "legacy");
    // A legacy cosign signature built from the published cosign specification
    // (sigstore/cosign specs/SIGNATURE_SPEC.md): the simple-signing payload as a layer of the
    // image tagged sha256-<hex>.sig, its ECDSA P-256/SHA-256 signature (made by openssl, not
    // mlsign) base64 in the dev.cosignproject.cosign/signature annotation.
    let dir = tempfile::tempdir().unwrap();
    let payload = format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{}/legacy/app"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#,
        reg.host()
    );
    std::fs::write(dir.path().join("payload.json"), &payload).unwrap();
    let out = Command::new("openssl")
        .args([
            "dgst",
            "-sha256",
            "-sign",
            p(&k.a_priv),
            p(&dir.path().join("payload.json")),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    use base64::Engine;
    let sig = base64::engine::general_purpose::STANDARD.encode(&out.stdout);
    let layout = dir.path().join("layout");
    let tag = format!("{}.sig", digest.replace(':', "-"));
    write_layout(
        &layout,
        &tag,
        Blob {
            media_type: "application/vnd.oci.image.config.v1+json".into(),
            data: format!(r#"{{"architecture":"","os":"","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#, sha256(payload.as_bytes())).into_bytes(),
            annotations: vec![],
        },
        vec![Blob {
            media_type: "application/vnd.dev.cosign.simplesigning.v1+json".into(),
            data: payload.clone().into_bytes(),
            annotations: vec![("dev.cosignproject.cosign/signature".into(), sig)],
        }],
        None,
    );
    skopeo_push(&layout, &tag, &format!("{}/legacy/app:{tag}", reg.host()));
    let v = mlsign([
        "verify",
        &reg.oci("legacy/app:v1"),
        "--key",
        p(&k.a_pub),
        "--format",
        "json",
    ]);
    assert_eq!(v.code, 0, "{}", v.all());
    let vj = v.json();
    let by = vj["verified_by"].as_u64().unwrap() as usize;
    assert_eq!(vj["candidates"][by]["kind"], "simple signing");
    assert_eq!(vj["candidates"][by]["source"], "legacy cosign .sig");
    let w = mlsign(["verify", &reg.oci("legacy/app:v1"), "--key", p(&k.b_pub)]);
    assert_eq!(w.code, 1, "{}", w.all());

    // mlsign's own --cosign-compat output appends to the same .sig image (keeps the openssl one).
    let s = mlsign([
        "sign",
        &reg.oci("legacy/app:v1"),
        "--key",
        p(&k.b_priv),
        "--cosign-compat",
        "--format",
        "json",
    ]);
    assert_eq!(s.code, 0, "{}", s.all());
    assert_eq!(s.json()["legacy_tag"], tag);
    let (_, body) = http_get(reg.port, &format!("/v2/legacy/app/manifests/{tag}")).unwrap();
    let m: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(m["layers"].as_array().unwrap().len(), 2);
    // Key b now verifies through the bundle and the second simple signature.
    let v = mlsign([
        "verify",
        &reg.oci("legacy/app:v1"),
        "--key",
        p(&k.b_pub),
        "--format",
        "json",
    ]);
    assert_eq!(v.code, 0, "{}", v.all());
    let vj = v.json();
    let ok: Vec<&str> = vj["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["verified"] == true)
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(ok, ["image signature", "simple signing"], "{vj}");
}

// ---------------------------------------------------------------------------------------------
// Models

#[test]
fn model_push_sign_verify_without_pull_then_pull_and_against() {
    let reg = Registry::start();
    let k = keys();
    let work = tempfile::tempdir().unwrap();
    let m = model_dir(work.path(), 2 << 20);
    let r = mlsign([
        "push",
        p(&m),
        &reg.oci("models/bert:v1"),
        "--sign",
        "--key",
        p(&k.a_priv),
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let pj = r.json();
    assert_eq!(pj["files"], 5);
    let digest = pj["digest"].as_str().unwrap().to_string();
    // The artifact: ModelPack, one raw layer per file, layer digest = file sha256.
    let (_, body) = http_get(reg.port, &format!("/v2/models/bert/manifests/{digest}")).unwrap();
    let man: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        man["artifactType"],
        "application/vnd.cncf.model.manifest.v1+json"
    );
    assert_eq!(
        man["config"]["mediaType"],
        "application/vnd.cncf.model.config.v1+json"
    );
    let layers = man["layers"].as_array().unwrap();
    let w = layers
        .iter()
        .find(|l| l["annotations"]["org.cncf.model.filepath"] == "model.safetensors")
        .unwrap();
    assert_eq!(w["mediaType"], "application/vnd.cncf.model.weight.v1.raw");
    assert_eq!(
        w["digest"],
        sha256(&std::fs::read(m.join("model.safetensors")).unwrap())
    );
    let c = layers
        .iter()
        .find(|l| l["annotations"]["org.cncf.model.filepath"] == "config.json")
        .unwrap();
    assert_eq!(
        c["mediaType"],
        "application/vnd.cncf.model.weight.config.v1.raw"
    );
    let (_, cfg) = http_get(
        reg.port,
        &format!(
            "/v2/models/bert/blobs/{}",
            man["config"]["digest"].as_str().unwrap()
        ),
    )
    .unwrap();
    let cfg: Value = serde_json::from_slice(&cfg).unwrap();
    assert_eq!(
        cfg["config"]["architecture"],
        "BertForSequenceClassification"
    );
    assert_eq!(cfg["descriptor"]["licenses"][0], "apache-2.0");
    assert_eq!(cfg["modelfs"]["diffIds"].as_array().unwrap().len(), 5);

    // Verify from the manifest and the referrer alone: kilobytes, not the 2 MiB of weights.
    let v = mlsign([
        "verify",
        &reg.oci("models/bert:v1"),
        "--key",
        p(&k.a_pub),
        "--format",
        "json",
    ]);
    assert_eq!(v.code, 0, "{}", v.all());
    let vj = v.json();
    let by = vj["verified_by"].as_u64().unwrap() as usize;
    assert_eq!(vj["candidates"][by]["kind"], "model signature (OMS)");
    assert_eq!(vj["model"], "modelpack");
    assert_eq!(vj["model_files"], 5);
    let read = vj["bytes_read"].as_u64().unwrap();
    assert!(read < 64 << 10, "manifest-only verify read {read} bytes");
    let wrong = mlsign(["verify", &reg.oci("models/bert:v1"), "--key", p(&k.b_pub)]);
    assert_eq!(wrong.code, 1, "{}", wrong.all());

    // Pull: identical tree; the OMS bundle verifies the pulled tree with model_signing's format.
    let out = work.path().join("pulled");
    let pl = mlsign([
        "pull",
        &reg.oci("models/bert:v1"),
        p(&out),
        "--key",
        p(&k.a_pub),
    ]);
    assert_eq!(pl.code, 0, "{}", pl.all());
    tree_equal(&m, &out);
    assert!(leftovers(work.path()).is_empty());
    let again = mlsign(["pull", &reg.oci("models/bert:v1"), p(&out)]);
    assert_eq!(
        again.code,
        2,
        "an existing directory is never overwritten: {}",
        again.all()
    );

    // verify DIR --against: the local copy matches; a modified file is named.
    let a = mlsign([
        "verify",
        p(&out),
        "--against",
        &reg.oci("models/bert:v1"),
        "--key",
        p(&k.a_pub),
    ]);
    assert_eq!(a.code, 0, "{}", a.all());
    std::fs::write(out.join("tokenizer.json"), "{}").unwrap();
    std::fs::write(out.join("new.bin"), "x").unwrap();
    let a = mlsign([
        "verify",
        p(&out),
        "--against",
        &reg.oci("models/bert:v1"),
        "--key",
        p(&k.a_pub),
        "--format",
        "json",
    ]);
    assert_eq!(a.code, 1, "{}", a.all());
    let codes: Vec<String> = a.json()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect();
    assert!(
        codes.contains(&"SIG001".into()) && codes.contains(&"SIG003".into()),
        "{codes:?}"
    );

    // The tag now points at a re-push with one more file: the old OMS signature does not cover
    // it, and a manifest that lists other files than were signed fails by manifest alone.
    std::fs::write(m.join("extra/more.txt"), "more").unwrap();
    let r = mlsign(["push", p(&m), &reg.oci("models/bert:v1")]);
    assert_eq!(r.code, 0, "{}", r.all());
    let v = mlsign(["verify", &reg.oci("models/bert:v1"), "--key", p(&k.a_pub)]);
    assert_eq!(v.code, 1, "{}", v.all());
}

#[test]
fn pull_with_corrupted_blob_writes_nothing() {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let m = model_dir(work.path(), 300 << 10);
    let r = mlsign(["push", p(&m), &reg.oci("models/c:v1")]);
    assert_eq!(r.code, 0, "{}", r.all());
    // Flip bytes of the weights blob inside the registry's storage (same size).
    let wd = sha256(&std::fs::read(m.join("model.safetensors")).unwrap());
    let blob = reg.blob_path(&wd);
    let mut data = std::fs::read(&blob).unwrap();
    data[1000] ^= 0xff;
    std::fs::write(&blob, &data).unwrap();
    let out = work.path().join("out");
    let pl = mlsign(["pull", &reg.oci("models/c:v1"), p(&out)]);
    assert_eq!(pl.code, 2, "{}", pl.all());
    assert!(pl.stderr.contains("digest"), "{}", pl.all());
    assert!(!out.exists(), "nothing is written on failure");
    assert!(
        leftovers(work.path()).is_empty(),
        "temp dir removed: {:?}",
        leftovers(work.path())
    );
}

/// Push a hand-made ModelPack manifest (raw layers with the given filepaths) with the library client.
fn push_raw_model(host: &str, repo: &str, tag: &str, files: &[(&str, &[u8])], dup_first: bool) {
    use mlsign::oci::client::{Client, Options};
    use mlsign::oci::Reference;
    let r = Reference::parse(&format!("oci://{host}/{repo}:{tag}")).unwrap();
    let c = Client::new(&r, &Options::default()).unwrap();
    let mut layers = Vec::new();
    for (path, data) in files {
        let d = c.push_blob_bytes(repo, data, "t").unwrap();
        layers.push(serde_json::json!({"mediaType": "application/vnd.cncf.model.weight.v1.raw", "digest": d, "size": data.len(), "annotations": {"org.cncf.model.filepath": path}}));
    }
    if dup_first {
        layers.push(layers[0].clone());
    }
    let cfg = c.push_blob_bytes(repo, b"{}", "t").unwrap();
    let m = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.cncf.model.manifest.v1+json",
        "config": {"mediaType": "application/vnd.cncf.model.config.v1+json", "digest": cfg, "size": 2},
        "layers": layers});
    c.put_manifest(
        repo,
        tag,
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&m).unwrap(),
        "t",
    )
    .unwrap();
}

#[test]
fn pull_refuses_escaping_and_duplicate_paths() {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    type Case<'a> = (&'a str, Vec<(&'a str, &'a [u8])>, bool, &'a str);
    let cases: [Case; 5] = [
        (
            "esc",
            vec![("ok.bin", b"1"), ("../escape.bin", b"2")],
            false,
            "..",
        ),
        ("abs", vec![("/tmp/abs.bin", b"1")], false, "absolute"),
        (
            "rep",
            vec![("a.bin", b"1"), ("a.bin", b"2")],
            false,
            "two layers",
        ),
        ("dup", vec![("a.bin", b"1"), ("b.bin", b"2")], true, "twice"),
        ("nest", vec![("a", b"1"), ("a/b", b"2")], false, "is a file"),
    ];
    for (name, files, dup, why) in cases {
        push_raw_model(&reg.host(), "bad/m", name, &files, dup);
        let out = work.path().join(name);
        let r = mlsign(["pull", &reg.oci(&format!("bad/m:{name}")), p(&out)]);
        assert_eq!(r.code, 2, "{name}: {}", r.all());
        assert!(r.stderr.contains(why), "{name}: {}", r.all());
        assert!(!out.exists() && !work.path().join("escape.bin").exists());
        assert!(leftovers(work.path()).is_empty());
    }
    // A clean hand-made artifact pulls.
    push_raw_model(&reg.host(), "bad/m", "fine", &[("d/x.bin", b"xyz")], false);
    let out = work.path().join("fine");
    let r = mlsign(["pull", &reg.oci("bad/m:fine"), p(&out)]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(std::fs::read(out.join("d/x.bin")).unwrap(), b"xyz");
}

#[test]
fn kitops_modelkit_is_recognised_and_pulled() {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("kit");
    let kitfile = br#"{"manifestVersion":"1.0","package":{"name":"tiny"},"model":{"path":"model.gguf"},"docs":[{"path":"README.md"}]}"#;
    let model_tar = tar_one("model.gguf", b"GGUF fake weights");
    let docs_tar = tar_one("README.md", b"# tiny kit\n");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &docs_tar).unwrap();
    let docs_gz = gz.finish().unwrap();
    write_layout(
        &layout,
        "v1",
        Blob {
            media_type: "application/vnd.kitops.modelkit.config.v1+json".into(),
            data: kitfile.to_vec(),
            annotations: vec![],
        },
        vec![
            Blob {
                media_type: "application/vnd.kitops.modelkit.model.v1.tar".into(),
                data: model_tar,
                annotations: vec![],
            },
            Blob {
                media_type: "application/vnd.kitops.modelkit.docs.v1.tar+gzip".into(),
                data: docs_gz,
                annotations: vec![],
            },
        ],
        None,
    );
    skopeo_push(&layout, "v1", &format!("{}/kits/tiny:v1", reg.host()));
    let out = work.path().join("out");
    let r = mlsign([
        "pull",
        &reg.oci("kits/tiny:v1"),
        p(&out),
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.json()["format"], "kitops");
    assert_eq!(
        std::fs::read(out.join("model.gguf")).unwrap(),
        b"GGUF fake weights"
    );
    assert_eq!(
        std::fs::read(out.join("README.md")).unwrap(),
        b"# tiny kit\n"
    );
}

/// `verify oci://…` and `verify DIR --against oci://…` in the four output formats: the same
/// exit code and finding codes, valid SARIF (tests/cli/support/formats.rs).
#[test]
fn verify_oci_formats_agree() {
    let k = keys();
    let m = mock(true);
    let work = tempfile::tempdir().unwrap();
    let run = |a: &[&str]| {
        let r = mlsign(a);
        (r.code, r.stdout, r.stderr)
    };
    m.put_image("a/b", "t", "y");
    let s = mlsign(["sign", &m.oci("a/b:t"), "--key", p(&k.a_priv)]);
    assert_eq!(s.code, 0, "{}", s.all());
    let r = m.oci("a/b:t");
    formats::four_formats(
        work.path(),
        &run,
        &["verify", &r, "--key", p(&k.a_pub)],
        0,
        &[],
    );
    let j = formats::four_formats(
        work.path(),
        &run,
        &["verify", &r, "--key", p(&k.b_pub)],
        1,
        &["OCI001", "SIG006"],
    );
    assert_eq!(j["verified"], false);
    // A pushed model, then the local directory against it.
    let dir = model_dir(work.path(), 4096);
    let reference = m.oci("models/bert:v1");
    let pushed = mlsign(["push", p(&dir), &reference, "--sign", "--key", p(&k.a_priv)]);
    assert_eq!(pushed.code, 0, "{}", pushed.all());
    let against = [
        "verify",
        p(&dir),
        "--against",
        &reference,
        "--key",
        p(&k.a_pub),
    ];
    formats::four_formats(work.path(), &run, &against, 0, &[]);
    std::fs::write(dir.join("config.json"), b"{}").unwrap();
    let j = formats::four_formats(work.path(), &run, &against, 1, &["SIG001"]);
    assert_eq!(j["registry"]["verified"], true);
    // pull with a key that signed nothing: the verification's findings, nothing pulled.
    let dest = work.path().join("pulled");
    let pull = ["pull", &reference, p(&dest), "--key", p(&k.b_pub)];
    let j = formats::four_formats(work.path(), &run, &pull, 1, &["OCI001"]);
    assert_eq!(j["pulled"], false);
    assert!(!dest.exists());
    formats::validate_sarif(work.path());
}

// ---------------------------------------------------------------------------------------------
// The in-test registry: native referrers API, auth and misbehaviour

fn mock(referrers: bool) -> Mock {
    Mock::start(MockConfig {
        referrers,
        bearer: None,
        hook: None,
    })
}

#[test]
fn referrers_api_path_and_junk_entries() {
    let k = keys();
    let m = Mock::start(MockConfig {
        referrers: true,
        bearer: None,
        hook: Some(Box::new(|req: &Req, s: &State| {
            // Junk before the real entries; the real entry's artifactType is wrong on purpose
            // (as some registries report it, cosign #4422).
            let (_, d) = req.path.strip_prefix("/v2/")?.split_once("/referrers/")?;
            let mut real: Vec<Value> = Vec::new();
            for ((_, _), (mt, b)) in &s.manifests {
                let v: Value = serde_json::from_slice(b).unwrap_or_default();
                if v["subject"]["digest"].as_str() == Some(d) {
                    let e = serde_json::json!({"mediaType": mt, "digest": sha256(b), "size": b.len(), "artifactType": "application/vnd.oci.empty.v1+json"});
                    if !real.contains(&e) {
                        real.push(e);
                    }
                }
            }
            let mut list = vec![
                serde_json::json!(17),
                serde_json::json!({"mediaType": "x", "digest": "md5:abc", "size": 1}),
                serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{}", "0".repeat(64)), "size": 10}),
            ];
            list.extend(real);
            Some(Resp::new(200, serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": list})).unwrap()))
        })),
    });
    let d = m.put_image("app", "v1", "x");
    let s = mlsign([
        "sign",
        &m.oci("app:v1"),
        "--key",
        p(&k.a_priv),
        "--format",
        "json",
    ]);
    assert_eq!(s.code, 0, "{}", s.all());
    assert_eq!(
        s.json()["stored"],
        "referrers API",
        "OCI-Subject answered: no tag index"
    );
    assert!(!m
        .state
        .lock()
        .unwrap()
        .manifests
        .contains_key(&("app".to_string(), d.replace(':', "-"))));
    let v = mlsign([
        "verify",
        &m.oci("app:v1"),
        "--key",
        p(&k.a_pub),
        "--format",
        "json",
    ]);
    assert_eq!(v.code, 0, "{}", v.all());
    let vj = v.json();
    let c = vj["candidates"].as_array().unwrap();
    assert!(
        c.iter()
            .any(|c| c["verified"] == true && c["source"] == "referrers API"),
        "{vj}"
    );
    assert!(
        c.iter().filter(|c| c["code"] == "OCI005").count() >= 3,
        "junk reported: {vj}"
    );
    // Verified: the junk entries are notes in every format, and do not fail the command.
    let work = tempfile::tempdir().unwrap();
    let run = |a: &[&str]| {
        let r = mlsign(a);
        (r.code, r.stdout, r.stderr)
    };
    formats::four_formats(
        work.path(),
        &run,
        &["verify", &m.oci("app:v1"), "--key", p(&k.a_pub)],
        0,
        &["OCI005"],
    );
    formats::validate_sarif(work.path());
}

#[test]
fn referrers_api_plain() {
    let k = keys();
    let m = mock(true);
    m.put_image("a/b", "t", "y");
    let s = mlsign(["sign", &m.oci("a/b:t"), "--key", p(&k.a_priv)]);
    assert_eq!(s.code, 0, "{}", s.all());
    let v = mlsign([
        "verify",
        &m.oci("a/b:t"),
        "--key",
        p(&k.a_pub),
        "--format",
        "json",
    ]);
    assert_eq!(v.code, 0, "{}", v.all());
    assert!(v.json()["discovery"][0]
        .as_str()
        .unwrap()
        .contains("referrers API: 1"));
}

#[test]
fn bearer_auth_from_env_and_auth_file() {
    let k = keys();
    let m = Mock::start(MockConfig {
        referrers: false,
        bearer: Some(("alice".into(), "s3cret".into())),
        hook: None,
    });
    m.put_image("app", "v1", "z");
    // Anonymous: 401, exit 2, the step named.
    let r = mlsign(["sign", &m.oci("app:v1"), "--key", p(&k.a_priv)]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("401") && r.stderr.contains("resolve reference"),
        "{}",
        r.all()
    );
    // The library says 401; the CLI says how to give credentials.
    assert!(
        r.stderr.contains("401 unauthorized")
            && r.stderr
                .contains("; give credentials (MLSIGN_REGISTRY_USERNAME/PASSWORD"),
        "{}",
        r.all()
    );
    let env = [
        ("MLSIGN_REGISTRY_USERNAME", "alice"),
        ("MLSIGN_REGISTRY_PASSWORD", "s3cret"),
    ];
    let r = mlsign_env(["sign", &m.oci("app:v1"), "--key", p(&k.a_priv)], &env);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(!r.all().contains("s3cret"));
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.json");
    use base64::Engine;
    std::fs::write(
        &auth,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            m.host(),
            base64::engine::general_purpose::STANDARD.encode("alice:s3cret")
        ),
    )
    .unwrap();
    let v = mlsign([
        "verify",
        &m.oci("app:v1"),
        "--key",
        p(&k.a_pub),
        "--registry-auth",
        p(&auth),
    ]);
    assert_eq!(v.code, 0, "{}", v.all());
    let bad = [
        ("MLSIGN_REGISTRY_USERNAME", "alice"),
        ("MLSIGN_REGISTRY_PASSWORD", "wrong"),
    ];
    let v = mlsign_env(["verify", &m.oci("app:v1"), "--key", p(&k.a_pub)], &bad);
    assert_eq!(v.code, 2, "{}", v.all());
    assert!(v.stderr.contains("token request"), "{}", v.all());
}

fn hooked(h: impl Fn(&Req, &State) -> Option<Resp> + Send + Sync + 'static) -> Mock {
    Mock::start(MockConfig {
        referrers: false,
        bearer: None,
        hook: Some(Box::new(h)),
    })
}

#[test]
fn registry_errors_are_clear_and_bounded() {
    let k = keys();
    // 403 and 404.
    let m = hooked(|req, _| {
        (req.path.contains("/manifests/"))
            .then(|| Resp::new(403, r#"{"errors":[{"code":"DENIED","message":"no"}]}"#))
    });
    let r = mlsign(["verify", &m.oci("app:v1"), "--key", p(&k.a_pub)]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("403") && r.stderr.contains("DENIED"),
        "{}",
        r.all()
    );
    let m = mock(false);
    let r = mlsign(["verify", &m.oci("nothing:v1"), "--key", p(&k.a_pub)]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("404"), "{}", r.all());

    // A manifest whose bytes do not match the digest asked for / the digest header.
    let m = mock(false);
    let d = m.put_image("app", "v1", "q");
    let other = {
        let mut s = m.state.lock().unwrap();
        let (mt, b) = s.manifests[&("app".to_string(), "v1".to_string())].clone();
        let mut b2 = b.clone();
        b2.extend_from_slice(b" ");
        s.manifests
            .insert(("app".into(), d.clone()), (mt, b2.clone()));
        b2
    };
    let r = mlsign(["verify", &m.oci(&format!("app@{d}")), "--key", p(&k.a_pub)]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("digest") && r.stderr.contains(&sha256(&other)),
        "{}",
        r.all()
    );
    let m2 = hooked(|req, _| {
        (req.path.ends_with("/manifests/v1")).then(|| {
            Resp::new(200, br#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1},"layers":[]}"#.to_vec())
                .with("Docker-Content-Digest", "sha256:1111111111111111111111111111111111111111111111111111111111111111")
        })
    });
    let r = mlsign(["sign", &m2.oci("app:v1"), "--key", p(&k.a_priv)]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("sha256:1111"), "{}", r.all());

    // An oversized manifest is refused before it is read.
    let m = hooked(|req, _| {
        req.path
            .contains("/manifests/")
            .then(|| Resp::new(200, vec![b' '; 5 << 20]))
    });
    let r = mlsign(["verify", &m.oci("app:v1"), "--key", p(&k.a_pub)]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("limit"), "{}", r.all());

    // Down: nothing listens (retried with backoff, then a clear error).
    let port = free_port();
    let t = Instant::now();
    let r = mlsign([
        "verify",
        &format!("oci://127.0.0.1:{port}/app:v1"),
        "--key",
        p(&k.a_pub),
    ]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("cannot reach"), "{}", r.all());
    assert!(t.elapsed() < Duration::from_secs(20));

    // Hangs: accepts and never answers; bounded by --registry-timeout.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming() {
            held.push(c);
        }
    });
    let t = Instant::now();
    let r = mlsign([
        "verify",
        &format!("oci://127.0.0.1:{port}/app:v1"),
        "--key",
        p(&k.a_pub),
        "--registry-timeout",
        "1",
    ]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("did not answer within 1 s"),
        "{}",
        r.all()
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());

    // Plain HTTP is refused for non-loopback hosts unless --insecure-registry: (TLS is tried,
    // and a name that does not resolve fails fast).
    let r = mlsign([
        "verify",
        "oci://registry.invalid/app:v1",
        "--key",
        p(&k.a_pub),
        "--registry-timeout",
        "2",
    ]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("https://registry.invalid"), "{}", r.all());
}

#[test]
fn bad_references_are_usage_errors() {
    let k = keys();
    for bad in [
        "oci://host/Repo:v1",
        "oci://host/repo",
        "oci://host/repo@sha256:12",
    ] {
        let r = mlsign(["verify", bad, "--key", p(&k.a_pub)]);
        assert_eq!(r.code, 2, "{bad}: {}", r.all());
        assert!(r.stderr.contains("invalid reference"), "{}", r.all());
    }
}

#[test]
fn gate_checks_oci_subjects_in_the_registry() {
    let reg = Registry::start();
    let k = keys();
    let digest = push_image(&reg, "team/app:v1", "gate");
    let s = mlsign(["sign", &reg.oci("team/app:v1"), "--key", p(&k.a_priv)]);
    assert_eq!(s.code, 0, "{}", s.all());
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&k.a_pub, dir.path().join("release.pub")).unwrap();
    let policy = |name: &str, extra: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "schema = \"mlsign-policy/1\"\nsubjects = [\"oci://{}/team/*\"]\n[[authorities]]\nname = \"release\"\nkey = \"release.pub\"\n[requirements.signature]\n{extra}",
                reg.host()
            ),
        )
        .unwrap();
        path
    };
    let gate = |pol: &Path| {
        let r = mlsign([
            "gate",
            &reg.oci("team/app:v1"),
            "--policy",
            p(pol),
            "--format",
            "json",
        ]);
        (r.code, r.json(), r.all())
    };
    let (code, v, all) = gate(&policy("ok.toml", ""));
    assert_eq!(code, 0, "{all}");
    assert_eq!(v["subject"]["digest"], digest, "{v}");
    let (code, _, all) = gate(&policy(
        "rev.toml",
        &format!("[revocation]\ndigests = [\"{digest}\"]\n"),
    ));
    assert_eq!(code, 1, "revoked digest: {all}");
    let (code, _, all) = gate(&policy("scan.toml", "[requirements.scan]\n"));
    assert_ne!(
        code, 0,
        "a file requirement fails closed for a registry subject: {all}"
    );
    // Moved tag: no signature covers the new digest.
    push_image(&reg, "team/app:v1", "moved");
    let (code, _, all) = gate(&policy("ok2.toml", ""));
    assert_eq!(code, 1, "{all}");
}

// ---------------------------------------------------------------------------------------------
// Keyless (Sigstore) signatures of registry references, against the local Fulcio/Rekor/TSA
// services of tests/cli/support/sigstore-services and the Debian registry.

/// The bundle stored for `digest` through the referrers tag schema (distribution 2.8).
fn stored_bundle(reg: &Registry, repo: &str, digest: &str) -> Vec<u8> {
    let tag = digest.replace(':', "-");
    let (_, idx) = http_get(reg.port, &format!("/v2/{repo}/manifests/{tag}")).unwrap();
    let idx: Value = serde_json::from_slice(&idx).unwrap();
    let referrer = idx["manifests"][0]["digest"].as_str().unwrap().to_string();
    let (_, m) = http_get(reg.port, &format!("/v2/{repo}/manifests/{referrer}")).unwrap();
    let m: Value = serde_json::from_slice(&m).unwrap();
    let layer = m["layers"][0]["digest"].as_str().unwrap();
    http_get(reg.port, &format!("/v2/{repo}/blobs/{layer}"))
        .unwrap()
        .1
}

#[test]
fn keyless_sign_verify_push_and_gate_in_the_registry() {
    use sigstore_support::{local_sigstore, token, SIGNER, TEST_ISSUER};
    let reg = Registry::start();
    let sig = local_sigstore();
    let work = tempfile::tempdir().unwrap();
    let tok = token(SIGNER, TEST_ISSUER);
    let tok_file = work.path().join("token");
    std::fs::write(&tok_file, &tok).unwrap();
    let root = sig.file("trusted_root.json");
    let cfg = sig.file("signing_config_tsa.json");
    let keyless: Vec<String> = [
        "--keyless",
        "--identity-token-file",
        p(&tok_file),
        "--signing-config",
        p(&cfg),
        "--trusted-root",
        p(&root),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let with = |base: &[&str], extra: &[String]| -> Run {
        let mut a: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        a.extend(extra.iter().cloned());
        let r = mlsign(&a);
        assert!(
            !r.all().contains(&tok),
            "the token was printed:\n{}",
            r.all()
        );
        r
    };
    // Sign an image by tag: the digest is signed, the bundle stored as a referrer.
    let digest = push_image(&reg, "team/app:v1", "keyless");
    let image = reg.oci("team/app:v1");
    let r = with(&["sign", &image, "--format", "json"], &keyless);
    assert_eq!(r.code, 0, "{}", r.all());
    let v = r.json();
    assert_eq!(v["digest"], digest.as_str());
    assert!(v["signer"].as_str().unwrap().contains(TEST_ISSUER), "{v}");
    // A v0.3 bundle with a Fulcio certificate, a dsse Rekor entry and a timestamp.
    let bundle = stored_bundle(&reg, "team/app", &digest);
    let b: Value = serde_json::from_slice(&bundle).unwrap();
    assert!(b["verificationMaterial"]["certificate"]["rawBytes"].is_string());
    assert_eq!(
        b["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["kind"],
        "dsse"
    );
    // sigstore-python verifies the stored bundle against the image digest (independent check).
    let bundle_file = work.path().join("image.sigstore.json");
    std::fs::write(&bundle_file, &bundle).unwrap();
    let py = std::env::var_os("MLSIGN_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    let out = Command::new(py.parent().unwrap().join("sigstore"))
        .args([
            "--trust-config",
            p(&sig.file("trust_config.json")),
            "verify",
            "identity",
            "--offline",
            "--cert-identity",
            SIGNER,
            "--cert-oidc-issuer",
            TEST_ISSUER,
            "--bundle",
            p(&bundle_file),
            &digest,
        ])
        .output()
        .expect("sigstore-python (MLSIGN_TEST_PYTHON)");
    assert!(
        out.status.success(),
        "sigstore-python:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Verify keylessly: the right identity passes; wrong identity, issuer or root deny.
    let ident = |id: &str, iss: &str, root_args: &[&str]| -> Vec<String> {
        let mut a = vec![
            "--identity".to_string(),
            id.into(),
            "--issuer".into(),
            iss.into(),
            "--format".into(),
            "json".into(),
        ];
        a.extend(root_args.iter().map(|s| s.to_string()));
        a
    };
    let good = ident(SIGNER, TEST_ISSUER, &["--trusted-root", p(&root)]);
    let r = with(&["verify", &image], &good);
    assert_eq!(r.code, 0, "{}", r.all());
    let v = r.json();
    let c = &v["candidates"][v["verified_by"].as_u64().unwrap() as usize];
    assert_eq!(c["method"], "keyless", "{v}");
    assert!(c["signer"].as_str().unwrap().contains(SIGNER), "{v}");
    let fcodes = |r: &Run| -> Vec<String> {
        r.json()["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["code"].as_str().unwrap().to_string())
            .collect()
    };
    let r = with(
        &["verify", &image],
        &ident(
            "https://github.com/evil/x",
            TEST_ISSUER,
            &["--trusted-root", p(&root)],
        ),
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(fcodes(&r).contains(&"SGS004".into()), "{}", r.all());
    let r = with(
        &["verify", &image],
        &ident(
            SIGNER,
            "https://accounts.google.com",
            &["--trusted-root", p(&root)],
        ),
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(fcodes(&r).contains(&"SGS005".into()), "{}", r.all());
    let r = with(&["verify", &image], &ident(SIGNER, TEST_ISSUER, &[]));
    assert_eq!(
        r.code,
        1,
        "the public-good root must not accept it: {}",
        r.all()
    );
    // Keyless has no legacy .sig form.
    let r = with(&["sign", &image, "--cosign-compat"], &keyless);
    assert_eq!(r.code, 2, "{}", r.all());

    // A model pushed and signed keylessly: verified from its manifest alone, then a local copy.
    let m = model_dir(work.path(), 64 << 10);
    let model = reg.oci("models/bert:v1");
    let r = with(
        &["push", p(&m), &model, "--sign", "--format", "json"],
        &keyless,
    );
    assert_eq!(r.code, 0, "{}", r.all());
    let r = with(&["verify", &model], &good);
    assert_eq!(r.code, 0, "{}", r.all());
    let v = r.json();
    let c = &v["candidates"][v["verified_by"].as_u64().unwrap() as usize];
    assert_eq!(c["kind"], "model signature (OMS)", "{v}");
    let r = with(&["verify", p(&m), "--against", &model], &good);
    assert_eq!(r.code, 0, "{}", r.all());
    // pull verifies keylessly first: the right identity pulls, another pulls nothing.
    let pulled = work.path().join("pulled");
    let r = with(&["pull", &model, p(&pulled)], &good);
    assert_eq!(r.code, 0, "{}", r.all());
    tree_equal(&m, &pulled);
    let refused = work.path().join("refused");
    let r = with(
        &["pull", &model, p(&refused)],
        &ident(
            "https://github.com/evil/x",
            TEST_ISSUER,
            &["--trusted-root", p(&root)],
        ),
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(!refused.exists());
    // model_signing accepts the OMS bundle attached in the registry for the local copy.
    let model_digest = v["digest"].as_str().unwrap().to_string();
    let oms = work.path().join("model.sigstore.json");
    std::fs::write(&oms, stored_bundle(&reg, "models/bert", &model_digest)).unwrap();
    let out = Command::new(py.parent().unwrap().join("model_signing"))
        .args([
            "verify",
            "sigstore",
            p(&m),
            "--signature",
            p(&oms),
            "--identity",
            SIGNER,
            "--identity_provider",
            TEST_ISSUER,
            "--trust_config",
            p(&sig.file("trust_config.json")),
        ])
        .output()
        .expect("model_signing (MLSIGN_TEST_PYTHON)");
    assert!(
        out.status.success(),
        "model_signing:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(m.join("config.json"), b"{\"tampered\": true}").unwrap();
    let r = with(&["verify", p(&m), "--against", &model], &good);
    assert_eq!(r.code, 1, "{}", r.all());
    // A keyless push whose token is refused pushes nothing.
    let r = mlsign([
        "push",
        p(&m),
        &reg.oci("models/never:v1"),
        "--sign",
        "--keyless",
        "--identity-token-file",
        "/nonexistent/token",
        "--signing-config",
        p(&cfg),
        "--trusted-root",
        p(&root),
    ]);
    assert_eq!(r.code, 2, "{}", r.all());
    let (status, _) = http_get(reg.port, "/v2/models/never/manifests/v1").unwrap();
    assert_eq!(status, 404);

    // The gate: a keyless authority decides an oci:// subject in the registry.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&root, dir.path().join("sigstore_root.json")).unwrap();
    let policy = |name: &str, identity: &str, extra: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "subjects = [\"oci://{}/team/*\"]\n[[authorities]]\nname = \"ci\"\nkeyless = {{ identity = {identity:?}, issuer = {TEST_ISSUER:?}, trusted_root = \"sigstore_root.json\" }}\n[requirements.signature]\n{extra}",
                reg.host()
            ),
        )
        .unwrap();
        path
    };
    let gate = |pol: &Path| {
        let r = mlsign(["gate", &image, "--policy", p(pol), "--format", "json"]);
        (r.code, r.json(), r.all())
    };
    let (code, v, all) = gate(&policy("ok.toml", SIGNER, ""));
    assert_eq!(code, 0, "{all}");
    assert_eq!(v["subject"]["digest"], digest.as_str());
    let (code, _, all) = gate(&policy("other.toml", "https://github.com/evil/x", ""));
    assert_eq!(code, 1, "{all}");
    let (code, v, all) = gate(&policy(
        "rev.toml",
        SIGNER,
        &format!("[revocation]\nidentities = [{SIGNER:?}]\n"),
    ));
    assert_eq!(code, 1, "revoked identity: {all}");
    assert_eq!(v["revoked"], true, "{all}");
}
