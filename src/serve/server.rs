//! The HTTPS server: axum on hyper over rustls (ring provider), with bounded bodies, a TLS
//! handshake timeout and a first-request/header timeout (a stalling client holds a connection for
//! at most `client_timeout`), policy and certificate files polled for changes, graceful shutdown
//! on SIGTERM/SIGINT, and one JSON log line per decision on stderr (no request bodies, no
//! credentials).

use super::admission::{self, ReviewError};
use super::metrics::{Decision, Endpoint, Metrics};
use super::verifier::{Engine, Loaded, PolicyStatus, Status};
use super::{ServeConfig, ServeError};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct App {
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    max_body: usize,
    ready: AtomicBool,
    quiet: bool,
}

type Shared = Arc<App>;

/// What the log thread receives: a line to write, or a request to confirm that everything
/// sent before it is written.
enum LogMsg {
    Line(&'static str, &'static str, Value, time::OffsetDateTime),
    Flush(std::sync::mpsc::SyncSender<()>),
}

/// Lines queued before a request blocks on the log thread (back-pressure, not loss: a decision
/// log is an audit record).
const LOG_QUEUE: usize = 8192;

fn log_sender() -> &'static std::sync::mpsc::SyncSender<LogMsg> {
    static TX: std::sync::OnceLock<std::sync::mpsc::SyncSender<LogMsg>> =
        std::sync::OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<LogMsg>(LOG_QUEUE);
        let spawned = std::thread::Builder::new()
            .name("mlsign-log".into())
            .spawn(move || {
                use std::io::Write;
                let mut out = std::io::BufWriter::with_capacity(64 << 10, std::io::stderr());
                let mut next = rx.recv().ok();
                while let Some(m) = next.take() {
                    match m {
                        LogMsg::Line(level, msg, fields, at) => {
                            let _ = out.write_all(&render(level, msg, fields, at));
                        }
                        LogMsg::Flush(done) => {
                            let _ = out.flush();
                            let _ = done.send(());
                        }
                    }
                    // Write in batches, flush as soon as nothing more is waiting.
                    next = match rx.try_recv() {
                        Ok(m) => Some(m),
                        Err(_) => {
                            let _ = out.flush();
                            rx.recv().ok()
                        }
                    };
                }
                let _ = out.flush();
            });
        // A thread that cannot start drops `rx` with it: `log` then finds the channel closed
        // and writes synchronously.
        drop(spawned);
        tx
    })
}

fn render(level: &str, msg: &str, fields: Value, at: time::OffsetDateTime) -> Vec<u8> {
    let time = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut v = json!({"time": time, "level": level, "msg": msg});
    if let (Some(o), Value::Object(f)) = (v.as_object_mut(), fields) {
        o.extend(f);
    }
    let mut line = serde_json::to_vec(&v).unwrap_or_default();
    line.push(b'\n');
    line
}

/// One JSON log line on stderr, written by a log thread: a request never waits for stderr
/// (a slow log pipe or a lock shared by both workers), only, with 8192 lines queued, for
/// the queue.
pub fn log(level: &'static str, msg: &'static str, fields: Value) {
    let at = time::OffsetDateTime::now_utc();
    match log_sender().try_send(LogMsg::Line(level, msg, fields, at)) {
        Ok(()) => {}
        Err(std::sync::mpsc::TrySendError::Full(m)) => {
            if let Err(std::sync::mpsc::SendError(LogMsg::Line(l, m, f, at))) = log_sender().send(m)
            {
                write_now(l, m, f, at);
            }
        }
        Err(std::sync::mpsc::TrySendError::Disconnected(LogMsg::Line(l, m, f, at))) => {
            write_now(l, m, f, at)
        }
        Err(_) => {}
    }
}

fn write_now(level: &str, msg: &str, fields: Value, at: time::OffsetDateTime) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(&render(level, msg, fields, at));
}

/// Wait (at most `limit`) until every line logged so far is written.
pub fn flush_logs(limit: Duration) {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    if log_sender().send(LogMsg::Flush(tx)).is_ok() {
        let _ = rx.recv_timeout(limit);
    }
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(v).unwrap_or_default(),
    )
        .into_response()
}

/// Read the body: refused (413) above `max` before reading when Content-Length says so, and
/// while reading otherwise; bounded in time by the deadline.
async fn read_body(
    app: &App,
    headers: &HeaderMap,
    body: Body,
    deadline: Instant,
) -> Result<Bytes, (StatusCode, String)> {
    if let Some(n) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if n > app.max_body as u64 {
            return Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is {n} bytes; at most {} are read", app.max_body),
            ));
        }
    }
    match tokio::time::timeout_at(
        tokio::time::Instant::from_std(deadline),
        axum::body::to_bytes(body, app.max_body),
    )
    .await
    {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) => {
            // to_bytes fails with a length-limit error or a transport error.
            let msg = e.to_string();
            if msg.contains("length limit") {
                Err((
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the body is over the {}-byte limit", app.max_body),
                ))
            } else {
                Err((
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {msg}"),
                ))
            }
        }
        Err(_) => Err((
            StatusCode::REQUEST_TIMEOUT,
            "the body did not arrive within the deadline".into(),
        )),
    }
}

fn decision_of(allowed: bool, warnings: bool) -> Decision {
    match (allowed, warnings) {
        (false, _) => Decision::Deny,
        (true, true) => Decision::Warn,
        (true, false) => Decision::Allow,
    }
}

async fn review(app: Shared, endpoint: Endpoint, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    app.metrics.in_flight.fetch_add(1, Relaxed);
    let r = review_inner(&app, endpoint, &headers, body, started).await;
    app.metrics.in_flight.fetch_sub(1, Relaxed);
    r
}

async fn review_inner(
    app: &App,
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: Body,
    started: Instant,
) -> Response {
    let ep = format!("{endpoint:?}").to_lowercase();
    let refuse = |status: StatusCode, msg: String| {
        app.metrics
            .decision(endpoint, Decision::Refuse, started.elapsed());
        log(
            "warn",
            "refused",
            json!({"endpoint": ep, "status": status.as_u16(), "error": msg}),
        );
        json_response(status, &json!({"error": msg}))
    };
    let deadline = started + app.engine.settings.deadline;
    let bytes = match read_body(app, headers, body, deadline).await {
        Ok(b) => b,
        Err((s, m)) => return refuse(s, m),
    };
    let rv = match admission::parse_review(&bytes) {
        Ok(r) => r,
        Err(ReviewError::NoUid(m)) => return refuse(StatusCode::BAD_REQUEST, m),
        Err(ReviewError::Invalid { uid, message }) => {
            let a = admission::Answer {
                allowed: false,
                message: format!("mlsign: malformed AdmissionReview: {message}"),
                ..Default::default()
            };
            app.metrics
                .decision(endpoint, Decision::Deny, started.elapsed());
            log(
                "warn",
                "admission",
                json!({"endpoint": ep, "uid": uid, "allowed": false, "error": message}),
            );
            return json_response(StatusCode::OK, &admission::response(&uid, &a));
        }
    };
    let a = app
        .engine
        .review(&rv, matches!(endpoint, Endpoint::Mutate), started)
        .await;
    let took = started.elapsed();
    app.metrics.decision(
        endpoint,
        decision_of(a.allowed, !a.warnings.is_empty()),
        took,
    );
    if !app.quiet || !a.allowed {
        log(
            "info",
            "admission",
            json!({
                "endpoint": ep, "uid": rv.uid(), "kind": rv.gvk().kind, "namespace": rv.namespace(),
                "name": rv.name(), "operation": rv.operation(), "dry_run": rv.dry_run(),
                "allowed": a.allowed, "warnings": a.warnings.len(), "patched": a.patch.len(),
                "message": a.message, "duration_ms": took.as_secs_f64() * 1e3,
            }),
        );
    }
    json_response(StatusCode::OK, &admission::response(rv.uid(), &a))
}

/// Most references one `/admit` call may ask about.
const MAX_ADMIT_REFERENCES: usize = 64;

async fn admit(State(app): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let deadline = started + app.engine.settings.deadline;
    let refuse = |status: StatusCode, msg: String| {
        app.metrics
            .decision(Endpoint::Admit, Decision::Refuse, started.elapsed());
        json_response(status, &json!({"error": msg}))
    };
    let bytes = match read_body(&app, &headers, body, deadline).await {
        Ok(b) => b,
        Err((s, m)) => return refuse(s, m),
    };
    let v = match crate::json::value_from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("the body is not JSON: {e}"),
            )
        }
    };
    let (refs, single): (Vec<&Value>, bool) = match &v {
        Value::Object(o) if o.len() == 1 && o.contains_key("reference") => (vec![&o["reference"]], true),
        Value::Object(o) if o.len() == 1 && o.get("references").is_some_and(Value::is_array) => {
            (o["references"].as_array().map(|a| a.iter().collect()).unwrap_or_default(), false)
        }
        Value::Array(a) => (a.iter().collect(), false),
        _ => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "expected {\"reference\": \"oci://…\"}, {\"references\": [...]} or a list of references".into(),
            )
        }
    };
    if refs.is_empty() || refs.len() > MAX_ADMIT_REFERENCES {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("1 to {MAX_ADMIT_REFERENCES} references per request"),
        );
    }
    let Some(refs) = refs
        .iter()
        .map(|r| r.as_str().map(str::to_string))
        .collect::<Option<Vec<String>>>()
    else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "every reference must be a string".into(),
        );
    };
    let loaded = match app.engine.policy() {
        PolicyStatus::Ok(l) => l,
        PolicyStatus::Broken { error, .. } => {
            app.metrics
                .decision(Endpoint::Admit, Decision::Deny, started.elapsed());
            return json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"error": format!("the policy does not load: {error}")}),
            );
        }
    };
    let mut set = tokio::task::JoinSet::new();
    for (i, r) in refs.into_iter().enumerate() {
        let e = app.engine.clone();
        let l = loaded.clone();
        set.spawn(async move { (i, e.verify(&l, &r, deadline).await) });
    }
    let mut out: Vec<Option<Value>> = Vec::new();
    let mut worst = Decision::Allow;
    while let Some(j) = set.join_next().await {
        let Ok((i, o)) = j else { continue };
        let d = match o.status {
            Status::Pass => Decision::Allow,
            Status::Warn => Decision::Warn,
            Status::Deny | Status::Error => Decision::Deny,
        };
        if d as u8 > worst as u8 {
            worst = d;
        }
        if out.len() <= i {
            out.resize(i + 1, None);
        }
        out[i] = Some(serde_json::to_value(&*o.report).unwrap_or_default());
    }
    let out: Vec<Value> = out
        .into_iter()
        .map(|x| x.unwrap_or(json!({"error": "internal error: the check did not finish"})))
        .collect();
    app.metrics
        .decision(Endpoint::Admit, worst, started.elapsed());
    let body = if single {
        out.into_iter().next().unwrap_or_default()
    } else {
        Value::Array(out)
    };
    json_response(StatusCode::OK, &body)
}

async fn metrics(State(app): State<Shared>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(app.engine.cache_entries()),
    )
        .into_response()
}

async fn readyz(State(app): State<Shared>) -> Response {
    let ok = app.ready.load(Relaxed);
    let policy_ok = matches!(app.engine.policy(), PolicyStatus::Ok(_));
    match (ok, policy_ok) {
        (true, true) => (StatusCode::OK, "ready\n").into_response(),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response(),
        (true, false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the policy does not load\n",
        )
            .into_response(),
    }
}

async fn fallback() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"error": "not found: POST /validate, /mutate, /admit; GET /healthz, /readyz, /metrics"}),
    )
}

fn router(app: Shared) -> Router {
    Router::new()
        .route(
            "/validate",
            post(|State(a): State<Shared>, h: HeaderMap, b: Body| {
                review(a, Endpoint::Validate, h, b)
            }),
        )
        .route(
            "/mutate",
            post(|State(a): State<Shared>, h: HeaderMap, b: Body| {
                review(a, Endpoint::Mutate, h, b)
            }),
        )
        .route("/admit", post(admit))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(fallback)
        .with_state(app)
}

/// A rustls server config (ring provider, TLS 1.2 and 1.3, h2 and http/1.1) from PEM files.
pub fn tls_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, ServeError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let tls_err = |path: &Path, message: String| ServeError::Tls {
        path: path.to_path_buf(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| tls_err(cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(tls_err(cert, "no CERTIFICATE in the file".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| tls_err(key, format!("no usable private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| tls_err(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| tls_err(key, format!("the key does not fit the certificate: {e}")))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

fn file_digest(paths: &[&Path]) -> Option<Vec<u8>> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in paths {
        let b = std::fs::read(p).ok()?;
        h.update((b.len() as u64).to_le_bytes());
        h.update(&b);
    }
    Some(h.finalize().to_vec())
}

fn policy_key(s: &PolicyStatus) -> String {
    match s {
        PolicyStatus::Ok(l) => l.fingerprint.clone(),
        PolicyStatus::Broken { error, .. } => format!("broken: {error}"),
    }
}

/// Poll the policy (and the key files it names) and the certificate files. Polling rather than
/// inotify: Kubernetes updates mounted ConfigMaps and Secrets by swapping a symlink, which
/// file watches miss.
async fn reloader(app: Shared, tls: axum_server::tls_rustls::RustlsConfig, cfg: ServeConfig) {
    let mut tls_seen = file_digest(&[&cfg.tls_cert, &cfg.tls_key]);
    let mut tick = tokio::time::interval(cfg.reload_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        // All file reads on the blocking pool, never on a worker that serves requests.
        let (path, cert, key) = (
            cfg.policy.clone(),
            cfg.tls_cert.clone(),
            cfg.tls_key.clone(),
        );
        let read = tokio::task::spawn_blocking(move || {
            let loaded = crate::policy::Policy::load(&path).map(Loaded::new);
            (loaded, file_digest(&[&cert, &key]))
        })
        .await;
        let Ok((loaded, seen)) = read else { continue };
        let before = policy_key(&app.engine.policy());
        let now = match &loaded {
            Ok(l) => l.fingerprint.clone(),
            Err(e) => format!("broken: {e}"),
        };
        if now != before {
            match &loaded {
                Ok(l) => {
                    app.metrics.policy_reloads_ok.fetch_add(1, Relaxed);
                    log(
                        "info",
                        "policy reloaded",
                        json!({"policy": cfg.policy.display().to_string(), "sha256": l.policy.sha256, "fingerprint": l.fingerprint}),
                    );
                }
                Err(e) => {
                    app.metrics.policy_reloads_failed.fetch_add(1, Relaxed);
                    log(
                        "error",
                        "policy does not load; denying until it is fixed",
                        json!({"policy": cfg.policy.display().to_string(), "error": e.to_string()}),
                    );
                }
            }
            app.engine.set_policy(loaded);
        }
        if seen.is_some() && seen != tls_seen {
            match tls_config(&cfg.tls_cert, &cfg.tls_key) {
                Ok(c) => {
                    tls.reload_from_config(Arc::new(c));
                    app.metrics.tls_reloads_ok.fetch_add(1, Relaxed);
                    log(
                        "info",
                        "certificate reloaded",
                        json!({"cert": cfg.tls_cert.display().to_string()}),
                    );
                    tls_seen = seen;
                }
                Err(e) => {
                    // Keep serving the old certificate; a half-written pair (cert updated, key
                    // not yet) is retried on the next tick.
                    app.metrics.tls_reloads_failed.fetch_add(1, Relaxed);
                    log(
                        "error",
                        "certificate reload failed; keeping the current one",
                        json!({"error": e.to_string()}),
                    );
                }
            }
        }
    }
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
}

/// Serve until SIGTERM/SIGINT, then drain requests in flight (up to `shutdown_grace`).
pub async fn serve(cfg: ServeConfig, policy: Loaded) -> Result<(), ServeError> {
    let metrics = Arc::new(Metrics::default());
    let engine = Arc::new(Engine::new(cfg.settings.clone(), policy, metrics.clone()));
    let app = Arc::new(App {
        engine,
        metrics,
        max_body: cfg.max_body,
        ready: AtomicBool::new(true),
        quiet: cfg.quiet,
    });
    let tls = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls_config(
        &cfg.tls_cert,
        &cfg.tls_key,
    )?));
    let handle: axum_server::Handle<std::net::SocketAddr> = axum_server::Handle::new();
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls.clone())
        .handshake_timeout(cfg.client_timeout);
    let listener = std::net::TcpListener::bind(cfg.listen).map_err(|source| ServeError::Bind {
        addr: cfg.listen.to_string(),
        source,
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| ServeError::Bind {
            addr: cfg.listen.to_string(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: cfg.listen.to_string(),
        source,
    })?;
    let mut server = axum_server::from_tcp(listener)
        .map_err(|source| ServeError::Bind {
            addr: cfg.listen.to_string(),
            source,
        })?
        .acceptor(acceptor)
        .handle(handle.clone())
        .first_request_timeout(cfg.client_timeout);
    server
        .http_builder()
        .http1()
        .header_read_timeout(cfg.client_timeout);
    server
        .http_builder()
        .http2()
        .keep_alive_interval(Some(Duration::from_secs(30)));
    log(
        "info",
        "listening",
        json!({"addr": addr.to_string(), "policy": cfg.policy.display().to_string(), "deadline_ms": cfg.settings.deadline.as_millis() as u64, "namespace": cfg.settings.namespace}),
    );
    let reload = tokio::spawn(reloader(app.clone(), tls, cfg.clone()));
    let h2 = handle.clone();
    let app2 = app.clone();
    let grace = cfg.shutdown_grace;
    tokio::spawn(async move {
        shutdown_signal().await;
        app2.ready.store(false, Relaxed);
        log(
            "info",
            "shutting down: draining requests in flight",
            json!({"grace_ms": grace.as_millis() as u64}),
        );
        h2.graceful_shutdown(Some(grace));
    });
    let r = server.serve(router(app).into_make_service()).await;
    reload.abort();
    log("info", "stopped", json!({}));
    flush_logs(Duration::from_secs(2));
    r.map_err(|source| ServeError::Bind {
        addr: addr.to_string(),
        source,
    })
}
