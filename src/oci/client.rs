//! A small blocking OCI distribution client (ureq + rustls/ring): the endpoints mlsign needs, with
//! size limits on everything read into memory, digest checks on everything fetched, token auth,
//! timeouts and retries. Every response byte is counted (`bytes_read`) so a caller can show that
//! a manifest-only check read kilobytes.

use super::auth::{parse_challenge, Credential};
use super::reference::{valid_digest, Reference};
use super::Error;
use base64::Engine;
use sha2::{Digest as _, Sha256};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use ureq::http::{Response, StatusCode};

/// Manifests and indexes are refused above this (distribution's own limit is 4 MiB).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// Signature bundles and config blobs read into memory.
pub const MAX_SMALL_BLOB_BYTES: u64 = 64 << 20;
/// Token and error responses.
const MAX_AUX_BYTES: u64 = 1 << 20;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// How to reach registries.
#[derive(Clone, Debug)]
pub struct Options {
    /// Hosts (`host` or `host:port`) that may be reached over plain HTTP.
    pub insecure: Vec<String>,
    /// A Docker config.json-style auth file (`--registry-auth`).
    pub auth_file: Option<PathBuf>,
    /// Connect / response / per-read timeout.
    pub timeout: Duration,
    /// Attempts for idempotent requests (connection errors, 429, 5xx).
    pub attempts: u32,
    /// Connections and bearer tokens shared by every client made with these options (a
    /// long-running caller, `mlsign serve`); `None`: each client has its own.
    pub pool: Option<Pool>,
}

/// Bearer tokens are reused at most this long (the distribution spec's default lifetime is
/// 60 s; a shorter `expires_in` is honoured).
const MAX_TOKEN_REUSE: Duration = Duration::from_secs(50);

/// HTTP agents (each with its keep-alive connection pool) per registry endpoint, and bearer
/// tokens per registry, credentials and scope, shared across clients. A client still reads the
/// credentials when it is made (a rotated auth file is used at once); tokens are keyed by a
/// digest of the credentials, so a rotated credential never reuses the old one's token.
/// Timeouts are set per request, so clients with different deadlines share connections.
#[derive(Clone, Default)]
pub struct Pool {
    agents: Arc<Mutex<HashMap<String, ureq::Agent>>>,
    tokens: Arc<Mutex<HashMap<String, (String, Instant)>>>,
    /// Registry and credential keys whose registry asked for basic auth: later clients send it
    /// up front instead of being refused once each.
    basic: Arc<Mutex<std::collections::HashSet<String>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.agents.lock().map(|m| m.len()).unwrap_or(0);
        write!(f, "Pool({n} registries)")
    }
}

/// At most this many registries keep an agent, and this many tokens are kept.
const POOL_MAX_AGENTS: usize = 256;
const POOL_MAX_TOKENS: usize = 4096;

impl Pool {
    fn agent(&self, key: &str, make: impl FnOnce() -> ureq::Agent) -> ureq::Agent {
        let mut m = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = m.get(key) {
            return a.clone();
        }
        if m.len() >= POOL_MAX_AGENTS {
            m.clear();
        }
        let a = make();
        m.insert(key.to_string(), a.clone());
        a
    }

    fn token(&self, key: &str) -> Option<String> {
        let mut m = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        match m.get(key) {
            Some((t, exp)) if *exp > Instant::now() => Some(t.clone()),
            Some(_) => {
                m.remove(key);
                None
            }
            None => None,
        }
    }

    fn put_token(&self, key: String, token: String, life: Duration) {
        let mut m = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if m.len() >= POOL_MAX_TOKENS {
            m.retain(|_, (_, exp)| *exp > now);
            if m.len() >= POOL_MAX_TOKENS {
                m.clear();
            }
        }
        m.insert(key, (token, now + life.min(MAX_TOKEN_REUSE)));
    }

    fn wants_basic(&self, key: &str) -> bool {
        self.basic
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(key)
    }

    fn set_basic(&self, key: &str) {
        let mut m = self.basic.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= POOL_MAX_TOKENS {
            m.clear();
        }
        m.insert(key.to_string());
    }

    fn forget_token(&self, key: &str) {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            insecure: Vec::new(),
            auth_file: None,
            timeout: Duration::from_secs(30),
            attempts: 3,
            pool: None,
        }
    }
}

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A request body that can be sent again on retry.
enum Body<'a> {
    None,
    Bytes(&'a [u8]),
    File(&'a Path),
}

/// A manifest (or index) as served, with the digest of its exact bytes.
#[derive(Clone, Debug)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub digest: String,
    pub media_type: String,
}

/// A client for one registry.
pub struct Client {
    agent: ureq::Agent,
    /// Registry endpoint and a digest of the credentials: the prefix of shared token keys.
    pool_key: String,
    base: String,
    registry: String,
    cred: Credential,
    opts: Options,
    /// scope → bearer token.
    tokens: RefCell<HashMap<String, String>>,
    /// Send basic credentials up front once the registry asked for them.
    basic: Cell<bool>,
    bytes_read: Cell<u64>,
}

impl Client {
    /// A client for the registry of `r`. Plain HTTP only for loopback hosts or hosts listed as
    /// insecure.
    pub fn new(r: &Reference, opts: &Options) -> Result<Client, Error> {
        let host = r.host();
        let plain =
            is_loopback(host) || opts.insecure.iter().any(|h| h == host || h == &r.registry);
        let scheme = if plain { "http" } else { "https" };
        let cred = super::auth::credentials_for(&r.registry, opts.auth_file.as_deref())?;
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        let build = || {
            let mut cfg = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .https_only(!plain)
                .tls_config(tls)
                .user_agent(concat!("mlsign/", env!("CARGO_PKG_VERSION")))
                .timeout_connect(Some(opts.timeout))
                .timeout_recv_response(Some(opts.timeout))
                .timeout_per_read(Some(opts.timeout))
                .timeout_per_write(Some(opts.timeout))
                .max_redirects(5)
                // Compressed manifests would break digest checks of the exact bytes.
                .accept_encoding("identity")
                // A shared agent keeps connections for concurrent verifications (ureq keeps 3 per
                // host by default).
                .max_idle_connections(256)
                .max_idle_connections_per_host(64);
            if is_loopback(host) {
                cfg = cfg.proxy(None);
            }
            ureq::Agent::from(cfg.build())
        };
        let base = format!("{scheme}://{}", r.registry);
        let agent = match &opts.pool {
            Some(p) => p.agent(&base, build),
            None => build(),
        };
        let cred_id = match &cred {
            Credential::Anonymous => "anonymous".to_string(),
            Credential::Basic { username, password } => hex::encode(Sha256::digest(format!(
                "basic\0{username}\0{}",
                password.as_str()
            ))),
            Credential::IdentityToken(t) => {
                hex::encode(Sha256::digest(format!("identity\0{}", t.as_str())))
            }
            Credential::Bearer(t) => hex::encode(Sha256::digest(format!("bearer\0{}", t.as_str()))),
        };
        Ok(Client {
            agent,
            pool_key: format!("{base}\0{cred_id}\0"),
            base,
            registry: r.registry.clone(),
            cred,
            opts: opts.clone(),
            tokens: RefCell::new(HashMap::new()),
            basic: Cell::new(false),
            bytes_read: Cell::new(0),
        })
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// Response body bytes read so far (manifests, indexes, blobs, tokens).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.get()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn map_err(&self, step: &str, url: &str, e: ureq::Error) -> Error {
        match e {
            ureq::Error::Timeout(_) => Error::Timeout {
                step: step.into(),
                url: url.into(),
                secs: self.opts.timeout.as_secs().max(1),
            },
            ureq::Error::Io(ref io) if io.kind() == std::io::ErrorKind::TimedOut => {
                Error::Timeout {
                    step: step.into(),
                    url: url.into(),
                    secs: self.opts.timeout.as_secs().max(1),
                }
            }
            ureq::Error::RequireHttpsOnly(_) => Error::Unreachable {
                step: step.into(),
                url: url.into(),
                why: "a redirect to plain HTTP was refused".into(),
            },
            other => Error::Unreachable {
                step: step.into(),
                url: url.into(),
                why: other.to_string(),
            },
        }
    }

    /// This client's timeouts on one request (a shared agent serves clients with different
    /// deadlines).
    fn timed<B>(&self, rb: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        let t = Some(self.opts.timeout);
        rb.config()
            .timeout_connect(t)
            .timeout_recv_response(t)
            .timeout_per_read(t)
            .timeout_per_write(t)
            .build()
    }

    fn auth_header(&self, scope: &str) -> Option<String> {
        if let Credential::Bearer(t) = &self.cred {
            return Some(format!("Bearer {}", t.as_str()));
        }
        if let Some(t) = self.tokens.borrow().get(scope) {
            return Some(format!("Bearer {t}"));
        }
        if let Some(p) = &self.opts.pool {
            if let Some(t) = p.token(&format!("{}{scope}", self.pool_key)) {
                self.tokens
                    .borrow_mut()
                    .insert(scope.to_string(), t.clone());
                return Some(format!("Bearer {t}"));
            }
        }
        if self.basic.get()
            || self
                .opts
                .pool
                .as_ref()
                .is_some_and(|p| p.wants_basic(&self.pool_key))
        {
            if let Credential::Basic { username, password } = &self.cred {
                return Some(basic(username, password));
            }
        }
        None
    }

    fn once(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        auth: Option<&str>,
        body: &Body,
    ) -> Result<Response<ureq::Body>, ureq::Error> {
        macro_rules! hdrs {
            ($rb:expr) => {{
                let mut rb = $rb;
                for (k, v) in headers {
                    rb = rb.header(*k, *v);
                }
                if let Some(a) = auth {
                    rb = rb.header("Authorization", a);
                }
                self.timed(rb)
            }};
        }
        match method {
            "GET" => hdrs!(self.agent.get(url)).call(),
            "HEAD" => hdrs!(self.agent.head(url)).call(),
            "DELETE" => hdrs!(self.agent.delete(url)).call(),
            m => {
                let rb = if m == "PUT" {
                    self.agent.put(url)
                } else {
                    self.agent.post(url)
                };
                let rb = hdrs!(rb);
                match body {
                    Body::None => rb.header("Content-Length", "0").send_empty(),
                    Body::Bytes(b) => rb.send(*b),
                    Body::File(p) => {
                        let f = std::fs::File::open(p).map_err(ureq::Error::Io)?;
                        rb.send(f)
                    }
                }
            }
        }
    }

    /// Send with auth (one challenge round) and retries. `idempotent` requests are retried on
    /// connection errors, 429 and 5xx.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        step: &str,
        method: &str,
        url: &str,
        repo: &str,
        push: bool,
        headers: &[(&str, &str)],
        body: Body,
        idempotent: bool,
    ) -> Result<Response<ureq::Body>, Error> {
        let scope = format!(
            "repository:{repo}:{}",
            if push { "pull,push" } else { "pull" }
        );
        let attempts = if idempotent {
            self.opts.attempts.max(1)
        } else {
            1
        };
        let mut challenged = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let auth = self.auth_header(&scope);
            let res = self.once(method, url, headers, auth.as_deref(), &body);
            let retryable = match &res {
                Err(ureq::Error::Timeout(_)) => false,
                Err(_) => true,
                Ok(r) => {
                    r.status() == StatusCode::TOO_MANY_REQUESTS || r.status().is_server_error()
                }
            };
            if retryable && attempt < attempts {
                // 200 ms, 400 ms, … bounded.
                std::thread::sleep(Duration::from_millis(200u64 << (attempt - 1).min(4)));
                continue;
            }
            let mut res = res.map_err(|e| self.map_err(step, url, e))?;
            if res.status() == StatusCode::UNAUTHORIZED && !challenged {
                challenged = true;
                let www = res
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                self.drain(&mut res);
                if let Some(c) = www.as_deref().and_then(parse_challenge) {
                    match c.scheme.as_str() {
                        // A fixed token that was refused has nothing to exchange.
                        "bearer" if !matches!(self.cred, Credential::Bearer(_)) => {
                            let pool_key = format!("{}{scope}", self.pool_key);
                            if let Some(p) = &self.opts.pool {
                                p.forget_token(&pool_key);
                            }
                            let (token, life) = self.fetch_token(step, &c, &scope)?;
                            if let Some(p) = &self.opts.pool {
                                p.put_token(pool_key, token.clone(), life);
                            }
                            self.tokens.borrow_mut().insert(scope.clone(), token);
                            attempt = 0;
                            continue;
                        }
                        "basic" if matches!(self.cred, Credential::Basic { .. }) => {
                            // Plain HTTP is only ever used for loopback or --insecure-registry hosts.
                            self.basic.set(true);
                            if let Some(p) = &self.opts.pool {
                                p.set_basic(&self.pool_key);
                            }
                            attempt = 0;
                            continue;
                        }
                        _ => {}
                    }
                }
                return Err(Error::Unauthorized {
                    step: step.into(),
                    url: url.into(),
                    detail: String::new(),
                });
            }
            return Ok(res);
        }
    }

    /// Exchange credentials for a bearer token at the challenge's realm.
    fn fetch_token(
        &self,
        step: &str,
        c: &super::auth::Challenge,
        scope: &str,
    ) -> Result<(String, Duration), Error> {
        let realm = c.param("realm").ok_or_else(|| Error::Unauthorized {
            step: step.into(),
            url: self.base.clone(),
            detail: " (bearer challenge without a realm)".into(),
        })?;
        let realm_host = realm
            .strip_prefix("https://")
            .or_else(|| realm.strip_prefix("http://"))
            .and_then(|r| r.split(['/', '?']).next())
            .unwrap_or("");
        if !realm.starts_with("https://") {
            let h = realm_host.rsplit_once(':').map_or(realm_host, |(h, _)| h);
            let ok = realm.starts_with("http://")
                && (is_loopback(h) || self.opts.insecure.iter().any(|i| i == h || i == realm_host));
            if !ok {
                return Err(Error::Insecure {
                    host: realm_host.to_string(),
                });
            }
        }
        let scope = c.param("scope").unwrap_or(scope);
        let service = c.param("service").unwrap_or("");
        let tstep = format!("{step}: token request");
        let enc = |s: &str| -> String {
            s.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect()
        };
        let res = match &self.cred {
            Credential::IdentityToken(tok) => {
                let form = format!(
                    "grant_type=refresh_token&client_id=mlsign&service={}&scope={}&refresh_token={}",
                    enc(service),
                    enc(scope),
                    enc(tok)
                );
                self.timed(
                    self.agent
                        .post(realm)
                        .header("Content-Type", "application/x-www-form-urlencoded"),
                )
                .send(form.as_bytes())
            }
            cred => {
                let sep = if realm.contains('?') { '&' } else { '?' };
                let url = format!("{realm}{sep}service={}&scope={}", enc(service), enc(scope));
                let mut rb = self.agent.get(&url);
                if let Credential::Basic { username, password } = cred {
                    rb = rb.header("Authorization", basic(username, password));
                }
                self.timed(rb).call()
            }
        };
        let mut res = res.map_err(|e| self.map_err(&tstep, realm, e))?;
        let status = res.status();
        let body = self.read_limited(&mut res, MAX_AUX_BYTES, &tstep, realm, "a token response")?;
        if !status.is_success() {
            return Err(status_error(&tstep, realm, status.as_u16(), &body));
        }
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            Error::malformed(format!("{tstep} at {realm}"), format!("not JSON: {e}"))
        })?;
        // Reused (by a shared pool) for its lifetime less a margin, 60 s when not given.
        let life = v
            .get("expires_in")
            .and_then(|e| e.as_u64())
            .map_or(MAX_TOKEN_REUSE, |s| {
                Duration::from_secs(s.saturating_sub(10))
            });
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .map(|t| (t.to_string(), life))
            .ok_or_else(|| {
                Error::malformed(format!("{tstep} at {realm}"), "no token in the answer")
            })
    }

    fn drain(&self, res: &mut Response<ureq::Body>) {
        let mut sink = [0u8; 8192];
        let mut r = res.body_mut().as_reader();
        let mut n = 0u64;
        while let Ok(k) = r.read(&mut sink) {
            if k == 0 || n > MAX_AUX_BYTES {
                break;
            }
            n += k as u64;
        }
        self.bytes_read.set(self.bytes_read.get().saturating_add(n));
    }

    fn read_limited(
        &self,
        res: &mut Response<ureq::Body>,
        limit: u64,
        step: &str,
        url: &str,
        what: &'static str,
    ) -> Result<Vec<u8>, Error> {
        let too_large = || Error::TooLarge {
            step: step.into(),
            url: url.into(),
            what,
            limit,
        };
        if res.body().content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut out = Vec::new();
        let r = res.body_mut().as_reader();
        r.take(limit + 1)
            .read_to_end(&mut out)
            .map_err(|e| self.io_err(step, url, e))?;
        self.bytes_read
            .set(self.bytes_read.get().saturating_add(out.len() as u64));
        if out.len() as u64 > limit {
            return Err(too_large());
        }
        Ok(out)
    }

    fn io_err(&self, step: &str, url: &str, e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::TimedOut {
            return Error::Timeout {
                step: step.into(),
                url: url.into(),
                secs: self.opts.timeout.as_secs().max(1),
            };
        }
        // ureq wraps its own errors (timeouts among them) in io::Error.
        let msg = e.to_string();
        if msg.to_ascii_lowercase().contains("timeout") || msg.contains("timed out") {
            return Error::Timeout {
                step: step.into(),
                url: url.into(),
                secs: self.opts.timeout.as_secs().max(1),
            };
        }
        Error::Unreachable {
            step: step.into(),
            url: url.into(),
            why: format!("reading the response: {msg}"),
        }
    }

    /// Turn a non-success status into the right error (after reading a bounded error body).
    fn fail(&self, step: &str, url: &str, res: &mut Response<ureq::Body>) -> Error {
        let status = res.status().as_u16();
        let body = self
            .read_limited(res, MAX_AUX_BYTES, step, url, "an error response")
            .unwrap_or_default();
        status_error(step, url, status, &body)
    }

    /// GET a manifest or index by tag or digest, bounded, its digest checked.
    pub fn get_manifest(&self, r: &Reference, step: &str) -> Result<Fetched, Error> {
        match self.get_manifest_opt(r, step)? {
            Some(f) => Ok(f),
            None => Err(Error::NotFound {
                step: step.into(),
                url: self.url(&format!(
                    "/v2/{}/manifests/{}",
                    r.repository,
                    r.manifest_ref()
                )),
                detail: format!(" ({r} does not exist)"),
            }),
        }
    }

    /// As [`Client::get_manifest`], `None` on 404.
    pub fn get_manifest_opt(&self, r: &Reference, step: &str) -> Result<Option<Fetched>, Error> {
        let url = self.url(&format!(
            "/v2/{}/manifests/{}",
            r.repository,
            r.manifest_ref()
        ));
        let mut res = self.send(
            step,
            "GET",
            &url,
            &r.repository,
            false,
            &[("Accept", MANIFEST_ACCEPT)],
            Body::None,
            true,
        )?;
        if res.status() == StatusCode::NOT_FOUND {
            self.drain(&mut res);
            return Ok(None);
        }
        if !res.status().is_success() {
            return Err(self.fail(step, &url, &mut res));
        }
        let header_digest = res
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let ctype = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let bytes = self.read_limited(&mut res, MAX_MANIFEST_BYTES, step, &url, "a manifest")?;
        let digest = sha256_digest(&bytes);
        let expected = r
            .digest
            .clone()
            .or_else(|| header_digest.clone().filter(|d| d.starts_with("sha256:")));
        if let Some(exp) = expected {
            if exp != digest {
                return Err(Error::DigestMismatch {
                    step: step.into(),
                    what: format!("manifest {r}"),
                    expected: exp,
                    actual: digest,
                });
            }
        }
        // The mediaType inside the bytes is what was hashed; the header is only a hint.
        let media_type = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| {
                v.get("mediaType")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or(ctype);
        Ok(Some(Fetched {
            bytes,
            digest,
            media_type,
        }))
    }

    /// PUT a manifest under `reference` (tag or digest). Returns whether the registry answered
    /// with `OCI-Subject` (it processed `subject`, so it maintains the referrers list itself).
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
        step: &str,
    ) -> Result<bool, Error> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let mut res = self.send(
            step,
            "PUT",
            &url,
            repo,
            true,
            &[("Content-Type", media_type)],
            Body::Bytes(bytes),
            true,
        )?;
        if !res.status().is_success() {
            return Err(self.fail(step, &url, &mut res));
        }
        let subject = res.headers().get("oci-subject").is_some();
        if let Some(d) = res
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            let ours = sha256_digest(bytes);
            if d.starts_with("sha256:") && d != ours {
                return Err(Error::DigestMismatch {
                    step: step.into(),
                    what: format!("pushed manifest {repo}:{reference}"),
                    expected: ours,
                    actual: d.to_string(),
                });
            }
        }
        self.drain(&mut res);
        Ok(subject)
    }

    /// Does the repository hold this blob?
    pub fn blob_exists(&self, repo: &str, digest: &str, step: &str) -> Result<bool, Error> {
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"));
        let mut res = self.send(step, "HEAD", &url, repo, true, &[], Body::None, true)?;
        match res.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.fail(step, &url, &mut res)),
        }
    }

    fn upload(&self, repo: &str, digest: &str, body: Body, step: &str) -> Result<(), Error> {
        let url = self.url(&format!("/v2/{repo}/blobs/uploads/"));
        let mut res = self.send(step, "POST", &url, repo, true, &[], Body::None, true)?;
        if res.status() != StatusCode::ACCEPTED {
            return Err(self.fail(step, &url, &mut res));
        }
        let loc = res
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| {
                Error::malformed(
                    format!("{step}: {url}"),
                    "upload session without a Location",
                )
            })?;
        self.drain(&mut res);
        let mut put = if loc.starts_with("http://") || loc.starts_with("https://") {
            loc
        } else if loc.starts_with('/') {
            self.url(&loc)
        } else {
            return Err(Error::malformed(
                format!("{step}: {url}"),
                format!("odd upload Location {loc:?}"),
            ));
        };
        put.push(if put.contains('?') { '&' } else { '?' });
        put.push_str("digest=");
        put.push_str(&digest.replace(':', "%3A"));
        let mut res = self.send(
            step,
            "PUT",
            &put,
            repo,
            true,
            &[("Content-Type", "application/octet-stream")],
            body,
            false,
        )?;
        if res.status() != StatusCode::CREATED {
            return Err(self.fail(step, &put, &mut res));
        }
        self.drain(&mut res);
        Ok(())
    }

    /// Upload `data` unless the registry already holds it.
    pub fn push_blob_bytes(&self, repo: &str, data: &[u8], step: &str) -> Result<String, Error> {
        let digest = sha256_digest(data);
        if !self.blob_exists(repo, &digest, step)? {
            self.upload(repo, &digest, Body::Bytes(data), step)?;
        }
        Ok(digest)
    }

    /// Upload a file (streamed, one PUT) whose digest is already known, unless present.
    /// Returns whether bytes were sent.
    pub fn push_blob_file(
        &self,
        repo: &str,
        digest: &str,
        path: &Path,
        step: &str,
    ) -> Result<bool, Error> {
        if self.blob_exists(repo, digest, step)? {
            return Ok(false);
        }
        self.upload(repo, digest, Body::File(path), step)?;
        Ok(true)
    }

    fn get_blob(
        &self,
        repo: &str,
        digest: &str,
        step: &str,
    ) -> Result<(String, Response<ureq::Body>), Error> {
        if !valid_digest(digest) {
            return Err(Error::malformed(
                format!("{step}: blob"),
                format!("unsupported digest {digest:?} (sha256 only)"),
            ));
        }
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"));
        let mut res = self.send(step, "GET", &url, repo, false, &[], Body::None, true)?;
        if !res.status().is_success() {
            return Err(self.fail(step, &url, &mut res));
        }
        Ok((url, res))
    }

    /// A small blob (signature bundle, config), bounded, its size and digest checked.
    pub fn get_blob_small(
        &self,
        repo: &str,
        digest: &str,
        size: u64,
        step: &str,
    ) -> Result<Vec<u8>, Error> {
        if size > MAX_SMALL_BLOB_BYTES {
            return Err(Error::TooLarge {
                step: step.into(),
                url: self.url(&format!("/v2/{repo}/blobs/{digest}")),
                what: "a signature or config blob",
                limit: MAX_SMALL_BLOB_BYTES,
            });
        }
        let (url, mut res) = self.get_blob(repo, digest, step)?;
        let data = self.read_limited(
            &mut res,
            size,
            step,
            &url,
            "this blob (larger than its descriptor)",
        )?;
        if data.len() as u64 != size {
            return Err(Error::SizeMismatch {
                step: step.into(),
                what: format!("blob {digest}"),
                expected: size,
                size: data.len() as u64,
            });
        }
        let actual = sha256_digest(&data);
        if actual != digest {
            return Err(Error::DigestMismatch {
                step: step.into(),
                what: format!("blob in {repo}"),
                expected: digest.into(),
                actual,
            });
        }
        Ok(data)
    }

    /// Stream a blob into `out` with bounded memory, checking size and digest as it goes.
    /// On error, what was written is garbage: the caller discards it.
    pub fn stream_blob(
        &self,
        repo: &str,
        digest: &str,
        size: u64,
        out: &mut dyn Write,
        step: &str,
    ) -> Result<(), Error> {
        let (url, mut res) = self.get_blob(repo, digest, step)?;
        if res.body().content_length().is_some_and(|n| n != size) {
            return Err(Error::SizeMismatch {
                step: step.into(),
                what: format!("blob {digest}"),
                expected: size,
                size: res.body().content_length().unwrap_or(0),
            });
        }
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut total: u64 = 0;
        let mut r = res.body_mut().as_reader();
        loop {
            let n = r.read(&mut buf).map_err(|e| self.io_err(step, &url, e))?;
            if n == 0 {
                break;
            }
            total = total.saturating_add(n as u64);
            self.bytes_read
                .set(self.bytes_read.get().saturating_add(n as u64));
            if total > size {
                return Err(Error::SizeMismatch {
                    step: step.into(),
                    what: format!("blob {digest}"),
                    expected: size,
                    size: total,
                });
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|e| Error::io(format!("<{step}>"), e))?;
        }
        if total != size {
            return Err(Error::SizeMismatch {
                step: step.into(),
                what: format!("blob {digest}"),
                expected: size,
                size: total,
            });
        }
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual != digest {
            return Err(Error::DigestMismatch {
                step: step.into(),
                what: format!("blob in {repo}"),
                expected: digest.into(),
                actual,
            });
        }
        Ok(())
    }

    /// The referrers API: `Some(index bytes)`, or `None` when the registry does not implement
    /// it (404, 405, 501 — distribution 2.8 answers 404).
    pub fn referrers(
        &self,
        repo: &str,
        digest: &str,
        step: &str,
    ) -> Result<Option<Vec<u8>>, Error> {
        let url = self.url(&format!("/v2/{repo}/referrers/{digest}"));
        let mut res = self.send(
            step,
            "GET",
            &url,
            repo,
            false,
            &[("Accept", OCI_INDEX)],
            Body::None,
            true,
        )?;
        match res.status().as_u16() {
            200 => Ok(Some(self.read_limited(
                &mut res,
                MAX_MANIFEST_BYTES,
                step,
                &url,
                "a referrers index",
            )?)),
            404 | 405 | 501 => {
                self.drain(&mut res);
                Ok(None)
            }
            _ => Err(self.fail(step, &url, &mut res)),
        }
    }
}

fn basic(user: &str, pass: &str) -> String {
    let raw = zeroize::Zeroizing::new(format!("{user}:{pass}"));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw.as_bytes())
    )
}

/// The registry's error message (`{"errors":[{"code","message"}]}`), shortened.
fn registry_message(body: &[u8]) -> String {
    let v: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let msg = v
        .as_ref()
        .and_then(|v| v.get("errors"))
        .and_then(|e| e.as_array())
        .map(|errs| {
            errs.iter()
                .take(3)
                .map(|e| {
                    let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
                    let m = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
                    format!("{code} {m}").trim().to_string()
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default();
    let msg: String = msg.chars().filter(|c| !c.is_control()).take(200).collect();
    if msg.is_empty() {
        String::new()
    } else {
        format!(" ({msg})")
    }
}

fn status_error(step: &str, url: &str, status: u16, body: &[u8]) -> Error {
    let detail = registry_message(body);
    let (step, url) = (step.to_string(), url.to_string());
    match status {
        401 => Error::Unauthorized { step, url, detail },
        403 => Error::Forbidden { step, url, detail },
        404 => Error::NotFound { step, url, detail },
        _ => Error::Status {
            step,
            url,
            status,
            detail,
        },
    }
}
