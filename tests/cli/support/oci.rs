//! Test support for tests/oci.rs: a real Debian `docker-registry` (distribution 2.8, no
//! referrers API) started on 127.0.0.1 with a temp config and storage, OCI layouts pushed with
//! the real `skopeo`, and a small in-test registry (std TcpListener) that implements the OCI 1.1
//! referrers API and can be made to misbehave.

#![allow(dead_code)]

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn need(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    // Fail loudly: CI installs these from scripts/deps/apt/oci.txt.
    assert!(
        found,
        "{tool} is not installed: apt-get install -y $(grep -v '^#' scripts/deps/apt/oci.txt)"
    );
}

/// A Debian docker-registry on a free loopback port, killed on drop.
pub struct Registry {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        Self::start_with(None)
    }

    /// A registry that requires basic auth (docker-registry's htpasswd access controller);
    /// `htpasswd` is one `user:bcrypt-hash` line.
    pub fn start_htpasswd(htpasswd: &str) -> Registry {
        Self::start_with(Some(htpasswd))
    }

    fn start_with(htpasswd: Option<&str>) -> Registry {
        need("docker-registry");
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..5 {
            if let Some((child, port)) = Self::try_start(dir.path(), htpasswd) {
                return Registry { child, port, dir };
            }
        }
        panic!("docker-registry did not come up");
    }

    fn try_start(dir: &Path, htpasswd: Option<&str>) -> Option<(Child, u16)> {
        {
            let port = free_port();
            let cfg = dir.join("config.yml");
            let auth = match htpasswd {
                Some(line) => {
                    let f = dir.join("htpasswd");
                    std::fs::write(&f, format!("{line}\n")).unwrap();
                    format!(
                        "auth: {{htpasswd: {{realm: mlsign-test, path: {}}}}}\n",
                        f.display()
                    )
                }
                None => String::new(),
            };
            std::fs::write(
                &cfg,
                format!(
                    "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n{auth}",
                    dir.join("storage").display()
                ),
            )
            .unwrap();
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&cfg)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start docker-registry");
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return None; // port taken: try another
                }
                if http_get(port, "/v2/").is_some_and(|(s, _)| s == 200 || s == 401) {
                    return Some((child, port));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn oci(&self, repo_tag: &str) -> String {
        format!("oci://127.0.0.1:{}/{repo_tag}", self.port)
    }

    /// The file holding a blob in the registry's filesystem storage.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Minimal HTTP GET over a raw socket: (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let mut body = buf[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Some((status, body))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
}

// ---------------------------------------------------------------------------------------------
// OCI image layouts for skopeo

/// A one-file tar (what a container layer is).
pub fn tar_one(name: &str, data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| *b as u32).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
    out
}

pub struct Blob {
    pub media_type: String,
    pub data: Vec<u8>,
    pub annotations: Vec<(String, String)>,
}

/// Write an OCI image layout holding one manifest under `tag`; returns the manifest digest.
pub fn write_layout(
    dir: &Path,
    tag: &str,
    config: Blob,
    layers: Vec<Blob>,
    artifact_type: Option<&str>,
) -> String {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let put = |data: &[u8]| -> String {
        let d = sha256(data);
        std::fs::write(blobs.join(d.trim_start_matches("sha256:")), data).unwrap();
        d
    };
    let desc = |b: &Blob, d: String| {
        let mut v =
            serde_json::json!({"mediaType": b.media_type, "digest": d, "size": b.data.len()});
        if !b.annotations.is_empty() {
            let m: serde_json::Map<String, serde_json::Value> = b
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::json!(v)))
                .collect();
            v["annotations"] = serde_json::Value::Object(m);
        }
        v
    };
    let cd = put(&config.data);
    let mut m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc(&config, cd),
        "layers": layers.iter().map(|l| { let d = put(&l.data); desc(l, d) }).collect::<Vec<_>>(),
    });
    if let Some(a) = artifact_type {
        m["artifactType"] = serde_json::json!(a);
    }
    let mb = serde_json::to_vec(&m).unwrap();
    let md = put(&mb);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md,
                       "size": mb.len(), "annotations": {"org.opencontainers.image.ref.name": tag}}],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    md
}

/// A small container image layout (distinct content per `seed`); returns its digest.
pub fn image_layout(dir: &Path, tag: &str, seed: &str) -> String {
    let layer = tar_one("hello.txt", format!("hello from {seed}\n").as_bytes());
    let diff_id = sha256(&layer);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/hello"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    write_layout(
        dir,
        tag,
        Blob {
            media_type: "application/vnd.oci.image.config.v1+json".into(),
            data: serde_json::to_vec(&config).unwrap(),
            annotations: vec![],
        },
        vec![Blob {
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            data: layer,
            annotations: vec![],
        }],
        None,
    )
}

/// `skopeo copy oci:DIR:TAG docker://HOST/REPO:TAG` (plain HTTP to the loopback registry).
pub fn skopeo_push(layout: &Path, tag: &str, dest: &str) {
    need("skopeo");
    let out = Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{dest}"))
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo copy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// The in-test registry

pub struct Req {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    }
}

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Resp {
        Resp {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }
    pub fn with(mut self, k: &str, v: &str) -> Resp {
        self.headers.push((k.into(), v.into()));
        self
    }
}

#[derive(Default)]
pub struct State {
    pub blobs: HashMap<String, Vec<u8>>,
    /// (repo, tag or digest) → (mediaType, bytes)
    pub manifests: HashMap<(String, String), (String, Vec<u8>)>,
    pub uploads: u64,
    pub requests: Vec<String>,
    /// TCP connections accepted (keep-alive reuse shows as fewer connections than requests).
    pub connections: u64,
}

pub type Hook = Box<dyn Fn(&Req, &State) -> Option<Resp> + Send + Sync>;

pub struct MockConfig {
    /// Implement `GET /v2/<repo>/referrers/<digest>` and answer pushes with `OCI-Subject`.
    pub referrers: bool,
    /// Require a bearer token obtained at /token with these basic credentials.
    pub bearer: Option<(String, String)>,
    pub hook: Option<Hook>,
}

pub struct Mock {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
}

impl Mock {
    pub fn start(cfg: MockConfig) -> Mock {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        let cfg = Arc::new(cfg);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                st.lock().unwrap().connections += 1;
                let st = st.clone();
                let cfg = cfg.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &st, &cfg, port);
                });
            }
        });
        Mock { port, state }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn oci(&self, repo_tag: &str) -> String {
        format!("oci://127.0.0.1:{}/{repo_tag}", self.port)
    }

    /// Store an image (config + one layer) under repo:tag directly; returns its digest.
    pub fn put_image(&self, repo: &str, tag: &str, seed: &str) -> String {
        let layer = tar_one("f", seed.as_bytes());
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            sha256(&layer)
        );
        let m = serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config.as_bytes()), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(&layer), "size": layer.len()}],
        });
        let mb = serde_json::to_vec(&m).unwrap();
        let d = sha256(&mb);
        let mut s = self.state.lock().unwrap();
        s.blobs.insert(sha256(&layer), layer);
        s.blobs
            .insert(sha256(config.as_bytes()), config.into_bytes());
        let mt = "application/vnd.oci.image.manifest.v1+json".to_string();
        s.manifests
            .insert((repo.into(), tag.into()), (mt.clone(), mb.clone()));
        s.manifests.insert((repo.into(), d.clone()), (mt, mb));
        d
    }
}

fn read_req(r: &mut BufReader<TcpStream>) -> Option<Req> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let get = |k: &str| {
        headers
            .iter()
            .find(|(n, _): &&(String, String)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if let Some(n) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        r.read_exact(&mut body).ok()?;
    } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut l = String::new();
            r.read_line(&mut l).ok()?;
            let n = usize::from_str_radix(l.trim(), 16).ok()?;
            let mut chunk = vec![0u8; n + 2];
            r.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    Some(Req {
        method,
        path,
        query,
        headers,
        body,
    })
}

fn serve(conn: TcpStream, st: &Mutex<State>, cfg: &MockConfig, port: u16) -> std::io::Result<()> {
    let mut w = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    while let Some(req) = read_req(&mut r) {
        let resp = {
            let mut s = st.lock().unwrap();
            s.requests.push(format!("{} {}", req.method, req.path));
            let hooked = cfg.hook.as_ref().and_then(|h| h(&req, &s));
            match hooked {
                Some(x) => x,
                None => route(&req, &mut s, cfg, port),
            }
        };
        let mut head = format!(
            "HTTP/1.1 {} X\r\nContent-Length: {}\r\n",
            resp.status,
            resp.body.len()
        );
        for (k, v) in &resp.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        w.write_all(head.as_bytes())?;
        if req.method != "HEAD" {
            w.write_all(&resp.body)?;
        }
        w.flush()?;
    }
    Ok(())
}

fn query_param<'a>(q: &'a str, k: &str) -> Option<&'a str> {
    q.split('&')
        .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
}

fn route(req: &Req, s: &mut State, cfg: &MockConfig, port: u16) -> Resp {
    let err = |status: u16, code: &str| {
        Resp::new(
            status,
            format!(r#"{{"errors":[{{"code":"{code}","message":"{code}"}}]}}"#),
        )
    };
    if let Some((user, pass)) = &cfg.bearer {
        if req.path == "/token" {
            use base64::Engine;
            let want = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
            );
            return if req.header("authorization") == Some(want.as_str()) {
                Resp::new(200, r#"{"token":"good-token"}"#)
            } else {
                err(401, "UNAUTHORIZED")
            };
        }
        if req.header("authorization") != Some("Bearer good-token") {
            return err(401, "UNAUTHORIZED").with(
                "WWW-Authenticate",
                &format!(r#"Bearer realm="http://127.0.0.1:{port}/token",service="mock",scope="repository:x:pull""#),
            );
        }
    }
    let Some(p) = req.path.strip_prefix("/v2/") else {
        return err(404, "NOT_FOUND");
    };
    if p.is_empty() {
        return Resp::new(200, "{}");
    }
    if let Some((repo, rest)) = p.split_once("/manifests/") {
        let key = (repo.to_string(), rest.to_string());
        return match req.method.as_str() {
            "GET" | "HEAD" => match s.manifests.get(&key) {
                Some((mt, b)) => Resp::new(200, b.clone())
                    .with("Content-Type", mt)
                    .with("Docker-Content-Digest", &sha256(b)),
                None => err(404, "MANIFEST_UNKNOWN"),
            },
            "PUT" => {
                let mt = req.header("content-type").unwrap_or("").to_string();
                let d = sha256(&req.body);
                if rest.starts_with("sha256:") && rest != d {
                    return err(400, "DIGEST_INVALID");
                }
                s.manifests.insert(key, (mt.clone(), req.body.clone()));
                s.manifests
                    .insert((repo.to_string(), d.clone()), (mt, req.body.clone()));
                let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
                let mut resp = Resp::new(201, "").with("Docker-Content-Digest", &d);
                if cfg.referrers {
                    if let Some(sd) = v["subject"]["digest"].as_str() {
                        resp = resp.with("OCI-Subject", sd);
                    }
                }
                resp
            }
            _ => err(405, "UNSUPPORTED"),
        };
    }
    if let Some((repo, rest)) = p.split_once("/blobs/uploads/") {
        return match req.method.as_str() {
            "POST" => {
                s.uploads += 1;
                Resp::new(202, "").with(
                    "Location",
                    &format!("/v2/{repo}/blobs/uploads/u{}", s.uploads),
                )
            }
            "PUT" => {
                let _ = rest;
                let want = query_param(&req.query, "digest")
                    .unwrap_or("")
                    .replace("%3A", ":");
                if sha256(&req.body) != want {
                    return err(400, "DIGEST_INVALID");
                }
                s.blobs.insert(want, req.body.clone());
                Resp::new(201, "")
            }
            _ => err(405, "UNSUPPORTED"),
        };
    }
    if let Some((_repo, d)) = p.split_once("/blobs/") {
        return match s.blobs.get(d) {
            Some(b) => Resp::new(200, b.clone()),
            None => err(404, "BLOB_UNKNOWN"),
        };
    }
    if let Some((repo, d)) = p.split_once("/referrers/") {
        if !cfg.referrers {
            return Resp::new(404, "404 page not found");
        }
        let mut entries: Vec<serde_json::Value> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for ((r, _), (mt, b)) in &s.manifests {
            if r != repo {
                continue;
            }
            let v: serde_json::Value = serde_json::from_slice(b).unwrap_or_default();
            if v["subject"]["digest"].as_str() == Some(d) && seen.insert(sha256(b)) {
                let mut e =
                    serde_json::json!({"mediaType": mt, "digest": sha256(b), "size": b.len()});
                if let Some(a) = v.get("artifactType") {
                    e["artifactType"] = a.clone();
                }
                if let Some(a) = v.get("annotations") {
                    e["annotations"] = a.clone();
                }
                entries.push(e);
            }
        }
        let idx = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries});
        return Resp::new(200, serde_json::to_vec(&idx).unwrap())
            .with("Content-Type", "application/vnd.oci.image.index.v1+json");
    }
    err(404, "NOT_FOUND")
}
