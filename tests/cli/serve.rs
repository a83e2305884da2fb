//! `mlsign serve`, end to end: the real binary serving HTTPS on 127.0.0.1 (certificates made by
//! `openssl`), realistic AdmissionReview requests POSTed over TLS, backed by a real Debian
//! `docker-registry` started by the test holding signed and unsigned images (pushed with the
//! real `skopeo`, signed with `mlsign sign oci://…`) and a signed ModelPack model
//! (`mlsign push --sign`), plus the in-test registry of tests/cli/support/oci.rs for registries that
//! hang or serve junk.

use crate::support::oci as support;

use crate::support::{python, repo};
use base64::Engine;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

fn mlsign(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mlsign"))
        .args(args)
        .env("DOCKER_CONFIG", "/nonexistent-mlsign-test")
        .env_remove("MLSIGN_REGISTRY_USERNAME")
        .env_remove("MLSIGN_REGISTRY_PASSWORD")
        .env_remove("MLSIGN_REGISTRY_TOKEN")
        .output()
        .expect("run mlsign");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn p(x: &Path) -> &str {
    x.to_str().unwrap()
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for 127.0.0.1 under `prefix` in `dir`: (ca.crt, tls.crt,
/// tls.key).
fn make_certs(dir: &Path, prefix: &str) -> (PathBuf, PathBuf, PathBuf) {
    let f = |n: &str| format!("{prefix}{n}");
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &f("ca.key"),
            "-out",
            &f("ca.crt"),
            "-subj",
            &format!("/CN=mlsign test CA {prefix}"),
            "-days",
            "2",
        ],
        dir,
    );
    std::fs::write(
        dir.join(f("ext.cnf")),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &f("tls.key"),
            "-out",
            &f("tls.csr"),
            "-subj",
            "/CN=127.0.0.1",
        ],
        dir,
    );
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            &f("tls.csr"),
            "-CA",
            &f("ca.crt"),
            "-CAkey",
            &f("ca.key"),
            "-CAcreateserial",
            "-out",
            &f("tls.crt"),
            "-days",
            "2",
            "-extfile",
            &f("ext.cnf"),
        ],
        dir,
    );
    (
        dir.join(f("ca.crt")),
        dir.join(f("tls.crt")),
        dir.join(f("tls.key")),
    )
}

/// An HTTPS client that trusts only `ca` (a fresh agent: no pooled connection).
fn client(ca: &Path) -> ureq::Agent {
    let pem = std::fs::read(ca).unwrap();
    let cert = ureq::tls::Certificate::from_pem(&pem).unwrap();
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![cert])))
        .build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

struct Server {
    child: Child,
    port: u16,
    ca: PathBuf,
    log: PathBuf,
}

impl Server {
    fn start(policy: &Path, cert: &Path, key: &Path, ca: &Path, extra: &[&str]) -> Server {
        let port = free_port();
        let log = policy.with_extension(format!("{port}.log"));
        let listen = format!("127.0.0.1:{port}");
        let mut args: Vec<&str> = vec![
            "serve",
            "--policy",
            p(policy),
            "--tls-cert",
            p(cert),
            "--tls-key",
            p(key),
            "--listen",
            listen.as_str(),
            "--deadline",
            "1.5s",
            "--reload-interval",
            "100ms",
            "--client-timeout",
            "1s",
            "--namespace",
            "mlsign-system",
        ];
        args.extend_from_slice(extra);
        let child = Command::new(env!("CARGO_BIN_EXE_mlsign"))
            .args(&args)
            .env("DOCKER_CONFIG", "/nonexistent-mlsign-test")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start mlsign serve");
        let s = Server {
            child,
            port,
            ca: ca.to_path_buf(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = s.get("/healthz") {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "server did not start: {}",
                s.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn get(&self, path: &str) -> Result<(u16, String), ureq::Error> {
        let mut r = client(&self.ca).get(&self.url(path)).call()?;
        Ok((
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        ))
    }

    fn post(&self, path: &str, body: &[u8]) -> (u16, Value) {
        let mut r = client(&self.ca)
            .post(&self.url(path))
            .header("Content-Type", "application/json")
            .send(body)
            .unwrap_or_else(|e| panic!("POST {path}: {e}\n{}", self.logs()));
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// POST an AdmissionReview; returns the response object (asserting HTTP 200 and uid echo).
    fn review(&self, path: &str, review: &Value) -> Value {
        let (s, v) = self.post(path, &serde_json::to_vec(review).unwrap());
        assert_eq!(s, 200, "{v}\n{}", self.logs());
        assert_eq!(v["apiVersion"], "admission.k8s.io/v1", "{v}");
        assert_eq!(v["kind"], "AdmissionReview", "{v}");
        assert_eq!(
            v["response"]["uid"], review["request"]["uid"],
            "uid echoed exactly: {v}"
        );
        v["response"].clone()
    }

    fn metric(&self, line_prefix: &str) -> f64 {
        let (_, m) = self.get("/metrics").unwrap();
        m.lines()
            .find(|l| l.starts_with(line_prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no metric {line_prefix} in\n{m}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Send a review over TLS and reset the connection (SO_LINGER 0) without reading the answer.
fn hang_up_after_request(srv: &Server, body: &[u8]) {
    use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
    use std::os::fd::AsRawFd;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&srv.ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(cfg), ServerName::try_from("127.0.0.1").unwrap())
            .unwrap();
    // Errors are not unwrapped: a dead server is reported by the caller's liveness check.
    let Ok(sock) = TcpStream::connect(("127.0.0.1", srv.port)) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let head = format!("POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len());
    if tls
        .write_all(head.as_bytes())
        .and_then(|_| tls.write_all(body))
        .and_then(|_| tls.flush())
        .is_err()
    {
        return;
    }
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    unsafe {
        libc::setsockopt(
            tls.sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn review(uid: &str, kind: (&str, &str), ns: &str, op: &str, object: Value) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": uid,
        "kind": {"group": kind.0, "version": "v1", "kind": kind.1},
        "resource": {"group": kind.0, "version": "v1", "resource": format!("{}s", kind.1.to_lowercase())},
        "requestKind": {"group": kind.0, "version": "v1", "kind": kind.1},
        "name": "w", "namespace": ns, "operation": op,
        "userInfo": {"username": "alice", "uid": "1", "groups": ["system:authenticated"]},
        "object": object, "oldObject": null, "dryRun": false,
        "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}}})
}

fn pod(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "w", "namespace": "ml"}, "spec": spec})
}

fn containers(images: &[&str]) -> Value {
    Value::Array(
        images
            .iter()
            .enumerate()
            .map(|(i, im)| json!({"name": format!("c{i}"), "image": im}))
            .collect(),
    )
}

fn message(r: &Value) -> String {
    r["status"]["message"].as_str().unwrap_or("").to_string()
}

fn push_image(reg: &Registry, repo_tag: &str, seed: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let tag = repo_tag.rsplit(':').next().unwrap();
    let d = image_layout(dir.path(), tag, seed);
    skopeo_push(dir.path(), tag, &format!("{}/{repo_tag}", reg.host()));
    d
}

fn write_policy(path: &Path, host: &str, extra: &str) {
    // Written to a temp name and renamed, as a ConfigMap update swaps files.
    let tmp = path.with_extension("tmp");
    std::fs::write(
        &tmp,
        format!(
            "schema = \"mlsign-policy/1\"\nname = \"test\"\nsubjects = [\"oci://{host}/team/**\"]\n[[authorities]]\nname = \"release\"\nkey = \"release.pub\"\n[requirements.signature]\n{extra}"
        ),
    )
    .unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Wait until `f` holds (reloads are polled every 100 ms).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn apply_patch(obj: &mut Value, patch_b64: &str) {
    let ops: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(patch_b64)
            .unwrap(),
    )
    .unwrap();
    for op in ops.as_array().unwrap() {
        assert_eq!(op["op"], "replace", "{op}");
        let path = op["path"].as_str().unwrap();
        *obj.pointer_mut(path)
            .unwrap_or_else(|| panic!("patch path {path} not in the object")) = op["value"].clone();
    }
}

#[test]
fn webhook_against_a_real_registry() {
    let reg = Registry::start();
    let host = reg.host();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (code, out) = mlsign(&["keygen", "--out", p(&d.join("release"))]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = mlsign(&["keygen", "--out", p(&d.join("other"))]);
    assert_eq!(code, 0, "{out}");

    // Registry content: a signed app, a signed init image, an unsigned sidecar, an image signed
    // by another key, a signed model artifact and an unsigned one.
    let app = push_image(&reg, "team/app:v1", "app");
    let init = push_image(&reg, "team/init:v1", "init");
    push_image(&reg, "team/sidecar:v1", "sidecar");
    push_image(&reg, "team/rogue:v1", "rogue");
    let flight = push_image(&reg, "team/flight:v1", "flight");
    for (r, k) in [
        ("team/app:v1", "release"),
        ("team/init:v1", "release"),
        ("team/rogue:v1", "other"),
        ("team/flight:v1", "release"),
    ] {
        let (code, out) = mlsign(&["sign", &reg.oci(r), "--key", p(&d.join(format!("{k}.pem")))]);
        assert_eq!(code, 0, "{out}");
    }
    let model = d.join("bert");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("model.safetensors"), vec![7u8; 4096]).unwrap();
    std::fs::write(model.join("config.json"), br#"{"model_type":"bert"}"#).unwrap();
    let (code, out) = mlsign(&[
        "push",
        p(&model),
        &reg.oci("team/bert:v1"),
        "--sign",
        "--key",
        p(&d.join("release.pem")),
    ]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = mlsign(&["push", p(&model), &reg.oci("team/bert-unsigned:v1")]);
    assert_eq!(code, 0, "{out}");

    let (ca, cert, key) = make_certs(d, "a-");
    let policy = d.join("policy.toml");
    write_policy(&policy, &host, "");
    let mut srv = Server::start(&policy, &cert, &key, &ca, &[]);
    let img = |r: &str| format!("{host}/{r}");

    // Multi-container Pod: signed by tag and by digest.
    let ok = review(
        "u-1",
        ("", "Pod"),
        "ml",
        "CREATE",
        pod(
            json!({"containers": containers(&[&img("team/app:v1"), &format!("{host}/team/app@{app}")])}),
        ),
    );
    let t0 = Instant::now();
    let r = srv.review("/validate", &ok);
    let cold = t0.elapsed();
    assert_eq!(r["allowed"], true, "{r}");
    assert!(
        r["auditAnnotations"]["mlsign.dev/verified"]
            .as_str()
            .unwrap()
            .contains(&app),
        "{r}"
    );
    // Warm: from the cache.
    let hits = srv.metric("mlsign_cache_hits_total");
    let r = srv.review("/validate", &ok);
    assert_eq!(r["allowed"], true, "{r}");
    assert!(
        srv.metric("mlsign_cache_hits_total") > hits,
        "second request hits the cache"
    );
    eprintln!("cold multi-container verify: {cold:?}");

    // An unsigned sidecar: denied, naming the container, the image and the check.
    let r = srv.review(
        "/validate",
        &review(
            "u-2",
            ("", "Pod"),
            "ml",
            "CREATE",
            pod(json!({"containers": containers(&[&img("team/app:v1"), &img("team/sidecar:v1")])})),
        ),
    );
    assert_eq!(r["allowed"], false, "{r}");
    let m = message(&r);
    assert!(
        m.contains("container \"c1\"")
            && m.contains("team/sidecar:v1")
            && m.contains("GAT003")
            && m.contains("signature"),
        "{m}"
    );
    assert!(
        !m.contains("team/app:v1:"),
        "only the failing reference is named: {m}"
    );
    assert_eq!(r["status"]["code"], 403);

    // Signed by a key the policy does not trust.
    let r = srv.review(
        "/validate",
        &review(
            "u-3",
            ("", "Pod"),
            "ml",
            "CREATE",
            pod(json!({"containers": containers(&[&img("team/rogue:v1")])})),
        ),
    );
    assert_eq!(r["allowed"], false, "{r}");

    // Init and ephemeral containers are checked too.
    let r = srv.review(
        "/validate",
        &review(
            "u-4",
            ("", "Pod"),
            "ml",
            "UPDATE",
            pod(json!({
        "initContainers": containers(&[&img("team/init:v1")]),
        "containers": containers(&[&img("team/app:v1")]),
        "ephemeralContainers": [{"name": "debug", "image": img("team/sidecar:v1")}]})),
        ),
    );
    assert_eq!(r["allowed"], false, "{r}");
    assert!(message(&r).contains("ephemeralContainer \"debug\""), "{r}");
    let r = srv.review(
        "/validate",
        &review(
            "u-5",
            ("", "Pod"),
            "ml",
            "CREATE",
            pod(json!({
        "initContainers": [{"name": "fetch", "image": img("team/sidecar:v1")}],
        "containers": containers(&[&img("team/app:v1")])})),
        ),
    );
    assert_eq!(r["allowed"], false, "{r}");
    assert!(message(&r).contains("initContainer \"fetch\""), "{r}");

    // A model mounted as an OCI image volume: verified by manifest (signed OMS manifest vs the
    // artifact's layers), nothing pulled.
    let with_model = |m: &str| {
        pod(json!({"containers": containers(&[&img("team/app:v1")]),
        "volumes": [{"name": "weights", "image": {"reference": img(m), "pullPolicy": "IfNotPresent"}}]}))
    };
    let r = srv.review(
        "/validate",
        &review(
            "u-6",
            ("", "Pod"),
            "ml",
            "CREATE",
            with_model("team/bert:v1"),
        ),
    );
    assert_eq!(r["allowed"], true, "{r}\n{}", srv.logs());
    let r = srv.review(
        "/validate",
        &review(
            "u-7",
            ("", "Pod"),
            "ml",
            "CREATE",
            with_model("team/bert-unsigned:v1"),
        ),
    );
    assert_eq!(r["allowed"], false, "{r}");
    assert!(message(&r).contains("image volume \"weights\""), "{r}");

    // /mutate pins tags to digests on Pods (base64 JSONPatch), and the patch applies.
    let mut obj = pod(
        json!({"initContainers": containers(&[&img("team/init:v1")]), "containers": containers(&[&img("team/app:v1")]),
        "volumes": [{"name": "weights", "image": {"reference": img("team/bert:v1")}}]}),
    );
    let r = srv.review(
        "/mutate",
        &review("u-8", ("", "Pod"), "ml", "CREATE", obj.clone()),
    );
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(r["patchType"], "JSONPatch", "{r}");
    apply_patch(&mut obj, r["patch"].as_str().unwrap());
    assert_eq!(
        obj["spec"]["containers"][0]["image"],
        format!("{host}/team/app:v1@{app}")
    );
    assert_eq!(
        obj["spec"]["initContainers"][0]["image"],
        format!("{host}/team/init:v1@{init}")
    );
    assert!(obj["spec"]["volumes"][0]["image"]["reference"]
        .as_str()
        .unwrap()
        .contains("@sha256:"));
    // The pinned Pod validates (and needs no further patch).
    let r = srv.review(
        "/mutate",
        &review("u-9", ("", "Pod"), "ml", "CREATE", obj.clone()),
    );
    assert_eq!(r["allowed"], true, "{r}");
    assert!(r.get("patch").is_none(), "{r}");
    // Controllers are not rewritten by default (GitOps): validated, no patch.
    let deploy = |image: &str| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"},
        "spec": {"selector": {}, "template": {"metadata": {}, "spec": {"containers": containers(&[image])}}}})
    };
    let r = srv.review(
        "/mutate",
        &review(
            "u-10",
            ("apps", "Deployment"),
            "ml",
            "CREATE",
            deploy(&img("team/app:v1")),
        ),
    );
    assert_eq!(r["allowed"], true, "{r}");
    assert!(r.get("patch").is_none(), "{r}");

    // A dry-run Deployment UPDATE from a digest back to a tag: allowed (the tag verifies), with
    // a warning about the regression.
    let mut upd = review(
        "u-11",
        ("apps", "Deployment"),
        "ml",
        "UPDATE",
        deploy(&img("team/app:v1")),
    );
    upd["request"]["dryRun"] = json!(true);
    upd["request"]["oldObject"] = deploy(&format!("{host}/team/app@{app}"));
    upd["request"]["options"] =
        json!({"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1", "dryRun": ["All"]});
    let r = srv.review("/validate", &upd);
    assert_eq!(r["allowed"], true, "{r}");
    assert!(
        r["warnings"][0].as_str().unwrap().contains("from a digest"),
        "{r}"
    );
    // A CronJob with an unsigned image.
    let cj = json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": containers(&[&img("team/sidecar:v1")])}}}}}});
    let r = srv.review(
        "/validate",
        &review("u-12", ("batch", "CronJob"), "ml", "CREATE", cj),
    );
    assert_eq!(r["allowed"], false, "{r}");

    // No policy covers it: denied (no_match defaults to deny), without asking the registry.
    let r = srv.review(
        "/validate",
        &review(
            "u-13",
            ("", "Pod"),
            "ml",
            "CREATE",
            pod(json!({"containers": containers(&["nginx:1.25"])})),
        ),
    );
    assert_eq!(r["allowed"], false, "{r}");
    assert!(message(&r).contains("GAT001"), "{r}");
    // A reference that does not parse.
    let r = srv.review(
        "/validate",
        &review(
            "u-14",
            ("", "Pod"),
            "ml",
            "CREATE",
            pod(json!({"containers": containers(&["Not A/Ref"])})),
        ),
    );
    assert_eq!(r["allowed"], false, "{r}");
    assert!(message(&r).contains("SRV002"), "{r}");
    // kube-system and the webhook's own namespace are never checked.
    for ns in ["kube-system", "mlsign-system"] {
        let r = srv.review(
            "/validate",
            &review(
                "u-15",
                ("", "Pod"),
                ns,
                "CREATE",
                pod(json!({"containers": containers(&[&img("team/sidecar:v1")])})),
            ),
        );
        assert_eq!(r["allowed"], true, "{ns}: {r}");
    }
    // Unknown kind with a uid: denied. DELETE: nothing to verify.
    let r = srv.review(
        "/validate",
        &review("u-16", ("", "Service"), "ml", "CREATE", json!({"spec": {}})),
    );
    assert_eq!(r["allowed"], false, "{r}");
    let r = srv.review(
        "/validate",
        &review("u-17", ("", "Pod"), "ml", "DELETE", Value::Null),
    );
    assert_eq!(r["allowed"], true, "{r}");

    // Malformed requests: a uid gets a 200 deny, no uid a 400; never an allow.
    let mut wrong = ok.clone();
    wrong["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let r = srv.review("/validate", &wrong);
    assert_eq!(r["allowed"], false, "{r}");
    let body = serde_json::to_vec(&ok).unwrap();
    let nested = "[".repeat(100_000);
    for bad in [
        &body[..body.len() / 2],
        nested.as_bytes(),
        b"{\"request\": {}}",
        b"not json",
    ] {
        let (s, v) = srv.post("/validate", bad);
        assert_eq!(s, 400, "{v}");
        assert!(v["error"].is_string(), "{v}");
    }
    // A 100 MB body is refused without being read (413), and the server stays up.
    let big = vec![b' '; 100 << 20];
    match client(&ca)
        .post(&srv.url("/validate"))
        .header("Content-Type", "application/json")
        .send(&big[..])
    {
        Ok(mut r) => {
            assert_eq!(
                r.status().as_u16(),
                413,
                "{}",
                r.body_mut().read_to_string().unwrap_or_default()
            )
        }
        Err(e) => eprintln!("100 MB body: connection closed by the server ({e})"),
    }
    assert_eq!(srv.get("/healthz").unwrap().0, 200);
    assert!(
        srv.metric("mlsign_admission_decisions_total{endpoint=\"validate\",verdict=\"refuse\"}")
            >= 4.0
    );

    // /admit: the gate's JSON, one or several.
    let (s, v) = srv.post(
        "/admit",
        json!({"reference": reg.oci("team/app:v1")})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["schema"].as_str(), v["verdict"].as_str()),
        (Some("mlsign-gate/1"), Some("pass")),
        "{v}"
    );
    assert_eq!(v["subject"]["digest"], app.as_str());
    let (s, v) = srv.post(
        "/admit",
        json!([
            reg.oci("team/bert:v1"),
            reg.oci("team/sidecar:v1"),
            "oci://bad"
        ])
        .to_string()
        .as_bytes(),
    );
    assert_eq!(s, 200, "{v}");
    let verdicts: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts, ["pass", "fail", "fail"], "{v}");
    let (s, _) = srv.post("/admit", b"{\"nope\": 1}");
    assert_eq!(s, 400);

    // Single flight: concurrent requests for one unverified digest share one verification.
    let passes = srv.metric("mlsign_verifications_total{result=\"pass\"}");
    let body = json!({"reference": reg.oci(&format!("team/flight@{flight}"))}).to_string();
    let verdicts: Vec<String> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                sc.spawn(|| {
                    srv.post("/admit", body.as_bytes()).1["verdict"]
                        .as_str()
                        .unwrap_or("")
                        .to_string()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(verdicts.iter().all(|v| v == "pass"), "{verdicts:?}");
    assert_eq!(
        srv.metric("mlsign_verifications_total{result=\"pass\"}"),
        passes + 1.0,
        "one verification for 8 concurrent requests"
    );

    // Prometheus metrics.
    let (s, m) = srv.get("/metrics").unwrap();
    assert_eq!(s, 200);
    for name in [
        "mlsign_admission_decisions_total{endpoint=\"validate\",verdict=\"deny\"}",
        "mlsign_admission_duration_seconds_bucket",
        "mlsign_cache_hits_total",
        "mlsign_registry_errors_total",
        "mlsign_verifications_total{result=\"pass\"}",
    ] {
        assert!(m.contains(name), "{name} in\n{m}");
    }
    assert!(
        srv.metric("mlsign_admission_decisions_total{endpoint=\"validate\",verdict=\"allow\"}")
            >= 5.0
    );

    // Revocation: the cached success does not outlive it (the policy fingerprint is in the key).
    write_policy(
        &policy,
        &host,
        &format!("[revocation]\ndigests = [\"{app}\"]\n"),
    );
    eventually("the revocation to take effect", || {
        srv.review("/validate", &ok)["allowed"] == false
    });
    let r = srv.review("/validate", &ok);
    assert!(message(&r).contains("GAT004"), "{r}");
    // require_digest: tags are refused on controllers instead of being rewritten.
    std::fs::write(&policy, format!("schema = \"mlsign-policy/1\"\nrequire_digest = true\nsubjects = [\"oci://{host}/team/**\"]\n[[authorities]]\nname = \"release\"\nkey = \"release.pub\"\n[requirements.signature]\n")).unwrap();
    eventually("require_digest", || {
        let r = srv.review(
            "/validate",
            &review(
                "u-18",
                ("apps", "Deployment"),
                "ml",
                "CREATE",
                deploy(&img("team/app:v1")),
            ),
        );
        r["allowed"] == false && message(&r).contains("GAT014")
    });
    let r = srv.review(
        "/validate",
        &review(
            "u-19",
            ("apps", "Deployment"),
            "ml",
            "CREATE",
            deploy(&format!("{host}/team/app@{app}")),
        ),
    );
    assert_eq!(r["allowed"], true, "{r}");
    // The same rule in `mlsign gate oci://…`.
    let (code, out) = mlsign(&[
        "gate",
        &reg.oci("team/app:v1"),
        "--policy",
        p(&policy),
        "--format",
        "json",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("GAT014"), "{out}");
    let (code, out) = mlsign(&[
        "gate",
        &reg.oci(&format!("team/app@{app}")),
        "--policy",
        p(&policy),
    ]);
    assert_eq!(code, 0, "{out}");
    // A policy that stops loading denies everything until fixed (readyz says so).
    std::fs::write(&policy, "subjects = [").unwrap();
    eventually("the broken policy to be noticed", || {
        matches!(srv.get("/readyz"), Ok((503, _)))
    });
    let r = srv.review("/validate", &ok);
    assert_eq!(r["allowed"], false, "{r}");
    assert!(message(&r).contains("does not load"), "{r}");
    write_policy(&policy, &host, "");
    eventually("the fixed policy", || {
        srv.review("/validate", &ok)["allowed"] == true
    });

    // Certificate rotation: a client trusting only the new CA gets in once the files change.
    let (ca2, cert2, key2) = make_certs(d, "b-");
    let new_client_ok = || client(&ca2).get(&srv.url("/healthz")).call().is_ok();
    assert!(
        !new_client_ok(),
        "the new CA does not know the old certificate"
    );
    std::fs::copy(&key2, &key).unwrap();
    std::fs::copy(&cert2, &cert).unwrap();
    eventually("the rotated certificate", new_client_ok);
    srv.ca = ca2.clone();

    // Clients that hang up (RST) before the answer is written: the server must survive the
    // failed writes (SIGPIPE).
    for i in 0..10 {
        hang_up_after_request(
            &srv,
            &serde_json::to_vec(&review(
                &format!("hup-{i}"),
                ("", "Pod"),
                "ml",
                "CREATE",
                pod(json!({"containers": containers(&[&img("team/app:v1")])})),
            ))
            .unwrap(),
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        srv.child.try_wait().unwrap().is_none(),
        "the server died: {}",
        srv.logs()
    );
    assert_eq!(srv.get("/healthz").unwrap().0, 200, "{}", srv.logs());

    // A stalling TLS client is dropped after --client-timeout (1 s) and blocks nobody.
    let mut stall = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    stall
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let t = Instant::now();
    assert_eq!(
        srv.get("/healthz").unwrap().0,
        200,
        "served while a client stalls"
    );
    let mut buf = [0u8; 16];
    let n = stall.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the server closes the stalled connection");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let _ = stall.write_all(b"x");

    // The registry goes away: a tag cannot be resolved, so it is denied within the deadline,
    // naming the step; a digest verified before is still served from the cache.
    drop(reg);
    let t = Instant::now();
    let r = srv.review(
        "/validate",
        &review(
            "u-20",
            ("", "Pod"),
            "ml",
            "CREATE",
            pod(json!({"containers": containers(&[&img("team/init:v1")])})),
        ),
    );
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        t.elapsed() < Duration::from_millis(1500 + 1500),
        "{:?}",
        t.elapsed()
    );
    assert!(message(&r).contains("resolve"), "{r}");
    let r = srv.review(
        "/validate",
        &review(
            "u-21",
            ("", "Pod"),
            "ml",
            "CREATE",
            pod(json!({"containers": containers(&[&format!("{host}/team/app@{app}")])})),
        ),
    );
    assert_eq!(r["allowed"], true, "cached digest: {r}");
    assert!(srv.metric("mlsign_registry_errors_total") >= 1.0);

    // Logs are JSON lines and carry no request bodies or credentials.
    let logs = srv.logs();
    for l in logs.lines() {
        let v: Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"));
        assert!(v["time"].is_string() && v["msg"].is_string(), "{l}");
    }
    assert!(
        !logs.contains("system:authenticated"),
        "no user info in logs"
    );

    // SIGTERM: drains and exits 0.
    unsafe {
        libc::kill(srv.child.id() as i32, libc::SIGTERM);
    }
    let t = Instant::now();
    let status = loop {
        if let Some(s) = srv.child.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}\n{}", srv.logs());
}

#[test]
fn hanging_and_junk_registries_are_denied_within_the_deadline() {
    // Manifests of team/hang never arrive; team/junk serves bytes that are not a manifest;
    // team/big's referrers tag index points at a 5 MiB referrer manifest.
    let big_digest = std::sync::OnceLock::<String>::new();
    let big = Arc::new(big_digest);
    let big2 = big.clone();
    let mock = Mock::start(MockConfig {
        referrers: false,
        bearer: None,
        hook: Some(Box::new(move |req: &Req, _s: &State| {
            if req.path.starts_with("/v2/team/hang/manifests/") {
                std::thread::sleep(Duration::from_secs(8));
                return Some(Resp::new(500, ""));
            }
            if req.path.starts_with("/v2/team/junk/manifests/") {
                return Some(
                    Resp::new(200, b"\x00\x01 not a manifest".to_vec())
                        .with("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
                );
            }
            if let Some(d) = big2.get() {
                if req.path == format!("/v2/team/big/manifests/{d}") {
                    let body = vec![b' '; 5 << 20];
                    return Some(
                        Resp::new(200, body)
                            .with("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
                    );
                }
            }
            None
        })),
    });
    let big_app = mock.put_image("team/big", "v1", "big");
    // A tag-schema index naming one (oversized) referrer.
    let fake_ref = format!("sha256:{}", "b".repeat(64));
    let _ = big.set(fake_ref.clone());
    let idx = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": fake_ref, "size": 5 << 20,
                        "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json"}]});
    mock.state.lock().unwrap().manifests.insert(
        ("team/big".into(), big_app.replace(':', "-")),
        (
            "application/vnd.oci.image.index.v1+json".into(),
            serde_json::to_vec(&idx).unwrap(),
        ),
    );
    mock.put_image("team/junk", "v1", "junk");

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (code, out) = mlsign(&["keygen", "--out", p(&d.join("release"))]);
    assert_eq!(code, 0, "{out}");
    let (ca, cert, key) = make_certs(d, "");
    let policy = d.join("policy.toml");
    write_policy(&policy, &mock.host(), "");
    let srv = Server::start(&policy, &cert, &key, &ca, &[]);
    let img = |r: &str| format!("{}/{r}", mock.host());
    for (uid, image, want) in [
        // The hanging one last: the in-test registry answers one request at a time.
        ("h-1", img("team/junk:v1"), ""),
        ("h-2", img("team/big:v1"), "GAT003"),
        ("h-3", img("team/hang:v1"), "resolve"),
    ] {
        let t = Instant::now();
        let r = srv.review(
            "/validate",
            &review(
                uid,
                ("", "Pod"),
                "ml",
                "CREATE",
                pod(json!({"containers": containers(&[&image])})),
            ),
        );
        let took = t.elapsed();
        assert_eq!(r["allowed"], false, "{image}: {r}");
        assert!(
            took < Duration::from_millis(1500 + 1000),
            "{image}: answered in {took:?}"
        );
        assert!(message(&r).contains(want), "{image}: {r}");
        eprintln!("{image}: denied in {took:?}: {}", message(&r));
    }
    // The hanging registry's error is remembered briefly: the next request is denied at once.
    let t = Instant::now();
    let r = srv.review(
        "/validate",
        &review(
            "h-4",
            ("", "Pod"),
            "ml",
            "CREATE",
            pod(json!({"containers": containers(&[&img("team/hang:v1")])})),
        ),
    );
    assert_eq!(r["allowed"], false, "{r}");
    eprintln!("second hang: {:?}", t.elapsed());
}

/// deploy/: every manifest against the Kubernetes 1.33 schemas bundled in kubernetes-validate
/// (offline), a broken copy refused (the validator is not vacuous), and the fields the docs
/// promise.
#[test]
fn deploy_manifests_validate_offline() {
    let py = python();
    let kv = py.parent().unwrap().join("kubernetes-validate");
    let deploy = repo().join("deploy");
    let files = [
        "namespace.yaml",
        "policy.yaml",
        "deployment.yaml",
        "webhooks.yaml",
    ];
    // One run for all files (each run loads the schemas).
    let out = Command::new(&kv)
        .args(["--strict", "-k", "1.33.0"])
        .args(files.iter().map(|f| deploy.join(f)))
        .output()
        .expect("run kubernetes-validate (scripts/deps/python/serve.txt)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    for r in [
        "namespace/mlsign",
        "configmap/mlsign-policy",
        "deployment/mlsign",
        "service/mlsign",
        "mutatingwebhookconfiguration/mlsign",
        "validatingwebhookconfiguration/mlsign",
    ] {
        assert!(
            text.contains(&format!("passed for resource {r}")),
            "{r} validated: {text}"
        );
    }
    // Every image in deploy/ is pinned by digest (what `require_digest` asks of workloads).
    for f in files {
        for line in std::fs::read_to_string(deploy.join(f)).unwrap().lines() {
            if let Some(image) = line.trim().strip_prefix("image:") {
                let (_, digest) = image
                    .trim()
                    .split_once("@sha256:")
                    .unwrap_or_else(|| panic!("{f}: image {image:?} is not pinned by digest"));
                assert!(
                    digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
                    "{f}: {image}"
                );
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("webhooks.yaml");
    let wtext = std::fs::read_to_string(deploy.join("webhooks.yaml")).unwrap();
    // A misspelt field and a wrong type are refused (the check is not vacuous).
    for (from, to) in [
        ("failurePolicy: Fail", "failurePolicyy: Fail"),
        ("timeoutSeconds: 5", "timeoutSeconds: five"),
    ] {
        std::fs::write(&bad, wtext.replace(from, to)).unwrap();
        let out = Command::new(&kv)
            .args(["--strict", "-k", "1.33.0"])
            .arg(&bad)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{to} must fail the schema");
    }

    // All documents as JSON.
    let out = Command::new(&py)
        .args(["-c", "import json,sys,yaml\nprint(json.dumps([d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d]))"])
        .args(files.iter().map(|f| deploy.join(f)))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let find = |kind: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
    };
    let mut kinds_in_rules = Vec::new();
    for (kind, path) in [
        ("ValidatingWebhookConfiguration", "/validate"),
        ("MutatingWebhookConfiguration", "/mutate"),
    ] {
        let w = &find(kind)["webhooks"][0];
        assert_eq!(w["failurePolicy"], "Fail", "{kind}");
        assert_eq!(w["sideEffects"], "None", "{kind}: dry-run requests need it");
        assert_eq!(w["admissionReviewVersions"], json!(["v1"]), "{kind}");
        let t = w["timeoutSeconds"].as_u64().unwrap();
        assert!(
            (3..=30).contains(&t),
            "{kind}: timeoutSeconds {t} must exceed the 2.5 s deadline"
        );
        assert_eq!(w["clientConfig"]["service"]["path"], path, "{kind}");
        let excluded = &w["namespaceSelector"]["matchExpressions"][0];
        assert_eq!(excluded["key"], "kubernetes.io/metadata.name");
        assert_eq!(excluded["operator"], "NotIn");
        for ns in ["kube-system", "mlsign"] {
            assert!(
                excluded["values"].as_array().unwrap().contains(&json!(ns)),
                "{kind}: {ns}"
            );
        }
        if kind.starts_with("Validating") {
            for r in w["rules"].as_array().unwrap() {
                for res in r["resources"].as_array().unwrap() {
                    kinds_in_rules.push(format!(
                        "{}/{}",
                        r["apiGroups"][0].as_str().unwrap(),
                        res.as_str().unwrap()
                    ));
                }
            }
        } else {
            assert_eq!(w["reinvocationPolicy"], "IfNeeded");
        }
    }
    for k in [
        "/pods",
        "/pods/ephemeralcontainers",
        "apps/deployments",
        "apps/replicasets",
        "apps/statefulsets",
        "apps/daemonsets",
        "batch/jobs",
        "batch/cronjobs",
    ] {
        assert!(
            kinds_in_rules.contains(&k.to_string()),
            "{k} in {kinds_in_rules:?}"
        );
    }
    let dep = find("Deployment");
    let c = &dep["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["scheme"], "HTTPS");
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "serve");
    assert!(args.contains(&"--deadline=2.5s"), "{args:?}");
    let svc = find("Service");
    assert_eq!(svc["spec"]["ports"][0]["port"], 443);
    assert_eq!(
        svc["metadata"]["name"],
        find("ValidatingWebhookConfiguration")["webhooks"][0]["clientConfig"]["service"]["name"]
    );
    // The shipped policy loads (with a real key in place of the placeholder).
    let cm = find("ConfigMap");
    let pdir = tempfile::tempdir().unwrap();
    std::fs::write(
        pdir.path().join("policy.toml"),
        cm["data"]["policy.toml"].as_str().unwrap(),
    )
    .unwrap();
    let (code, out) = mlsign(&["keygen", "--out", p(&pdir.path().join("release"))]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = mlsign(&["policy", "check", p(&pdir.path().join("policy.toml"))]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn private_registry_credentials_pooled_connections_and_tokens() {
    // An in-test registry that requires a bearer token obtained with basic credentials (as
    // Docker Hub, GHCR or Harbor do). The server reads the credentials from --registry-auth
    // (a mounted docker config.json, as an imagePullSecret's .dockerconfigjson), keeps its
    // connections and the bearer token across requests, and never reuses the token for other
    // credentials.
    let mock = Mock::start(MockConfig {
        referrers: false,
        bearer: Some(("alice".into(), "s3cret".into())),
        hook: None,
    });
    mock.put_image("team/app", "v1", "private");
    // And a real docker-registry with basic auth (htpasswd; bcrypt cost 4 keeps it fast).
    let reg = Registry::start_htpasswd(
        "bob:$2b$04$JGpCQj9PUvUiqdfHlKLZz.IqAeS2THhzpFP6RfhWB0ggfWKBW6386",
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (code, out) = mlsign(&["keygen", "--out", p(&d.join("release"))]);
    assert_eq!(code, 0, "{out}");
    let auth = d.join("config.json");
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let write_auth = |pass: &str| {
        let tmp = d.join("config.tmp");
        std::fs::write(
            &tmp,
            format!(
                r#"{{"auths":{{"{}":{{"auth":"{}"}},"{}":{{"auth":"{}"}}}}}}"#,
                mock.host(),
                b64(&format!("alice:{pass}")),
                reg.host(),
                b64("bob:s3cret"),
            ),
        )
        .unwrap();
        std::fs::rename(&tmp, &auth).unwrap();
    };
    write_auth("s3cret");
    let app = d.join("app");
    std::fs::create_dir(&app).unwrap();
    std::fs::write(app.join("app.txt"), "private app\n").unwrap();
    let (code, out) = mlsign(&[
        "push",
        p(&app),
        &reg.oci("team/app:v1"),
        "--registry-auth",
        p(&auth),
    ]);
    assert_eq!(code, 0, "{out}");
    for target in [mock.oci("team/app:v1"), reg.oci("team/app:v1")] {
        let (code, out) = mlsign(&[
            "sign",
            &target,
            "--key",
            p(&d.join("release.pem")),
            "--registry-auth",
            p(&auth),
        ]);
        assert_eq!(code, 0, "{target}: {out}");
    }
    let (ca, cert, key) = make_certs(d, "");
    let policy = d.join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "schema = \"mlsign-policy/1\"\nsubjects = [\"oci://{}/team/**\", \"oci://{}/team/**\"]\n[[authorities]]\nname = \"release\"\nkey = \"release.pub\"\n[requirements.signature]\n",
            mock.host(),
            reg.host()
        ),
    )
    .unwrap();
    let image = format!("{}/team/app:v1", mock.host());
    let pod_review = |uid: &str| {
        review(
            uid,
            ("", "Pod"),
            "ml",
            "CREATE",
            pod(json!({"containers": containers(&[&image])})),
        )
    };
    let htpasswd_review = |uid: &str| {
        review(
            uid,
            ("", "Pod"),
            "ml",
            "CREATE",
            pod(json!({"containers": containers(&[&format!("{}/team/app:v1", reg.host())])})),
        )
    };

    // Without credentials: each registry's 401 is a deny naming the step.
    let anon = Server::start(&policy, &cert, &key, &ca, &[]);
    for r in [
        anon.review("/validate", &pod_review("anon")),
        anon.review("/validate", &htpasswd_review("anon-2")),
    ] {
        assert_eq!(r["allowed"], false, "{r}");
        assert!(message(&r).contains("401"), "{r}");
    }
    drop(anon);

    let srv = Server::start(
        &policy,
        &cert,
        &key,
        &ca,
        &["--registry-auth", p(&auth), "--negative-cache-ttl", "0"],
    );
    let counts = || {
        let s = mock.state.lock().unwrap();
        let tokens = s.requests.iter().filter(|r| r.ends_with(" /token")).count();
        (s.connections, tokens, s.requests.len())
    };
    let (c0, t0, r0) = counts();
    for i in 0..8 {
        let r = srv.review("/validate", &pod_review(&format!("priv-{i}")));
        assert_eq!(r["allowed"], true, "{r}\n{}", srv.logs());
    }
    let (c1, t1, r1) = counts();
    // The htpasswd registry: verified with basic credentials from the same file.
    for i in 0..3 {
        let r = srv.review("/validate", &htpasswd_review(&format!("basic-{i}")));
        assert_eq!(r["allowed"], true, "{r}\n{}", srv.logs());
    }
    // 8 tag resolutions and one full verification: well over 8 registry requests, on one or
    // two kept-alive connections (a client per request would open at least 8), with one token
    // exchange (a client per request would ask for a token at least 8 times).
    assert!(r1 - r0 >= 9, "requests: {}", r1 - r0);
    assert!(c1 - c0 <= 2, "connections opened: {}", c1 - c0);
    assert_eq!(t1 - t0, 1, "token requests");
    assert_eq!(srv.metric("mlsign_cache_hits_total"), 7.0 + 2.0);

    // Rotated to a wrong password (a new Secret version): read on the next request; the token
    // fetched with the old credentials is not reused, so the tag cannot be resolved.
    write_auth("wrong");
    let r = srv.review("/validate", &pod_review("priv-rotated"));
    assert_eq!(r["allowed"], false, "{r}");
    assert!(message(&r).contains("token request"), "{r}");
    // And back: admitted again.
    write_auth("s3cret");
    let r = srv.review("/validate", &pod_review("priv-back"));
    assert_eq!(r["allowed"], true, "{r}");
    assert!(!srv.logs().contains("s3cret"), "no secrets in logs");
}
