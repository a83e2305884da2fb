//! `mlsign serve`: a Kubernetes admission webhook (and a plain `/admit` endpoint for registries
//! and CI) that admits only workloads whose every image and model reference verifies under the
//! policy. Fail-closed inside a deadline: a timeout, a registry error, a policy that does not
//! load or a request that cannot be read is a deny (or an HTTP 4xx), never an allow.
//!
//! Modules: [`admission`] (AdmissionReview parsing, image extraction, references, responses,
//! JSON Patch), [`verifier`] (policy in force, cache, deadline, the decision), [`cache`],
//! [`metrics`] (Prometheus text), [`server`] (HTTPS, reloads, shutdown, logs). docs/serve.md.

pub mod admission;
pub mod cache;
pub mod metrics;
pub mod server;
pub mod verifier;

pub use verifier::{Loaded, Settings};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything `mlsign serve` is started with.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub policy: PathBuf,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub settings: Settings,
    /// How often the policy, its key files and the certificate are checked for changes.
    pub reload_interval: Duration,
    /// Largest request body read.
    pub max_body: usize,
    /// TLS handshake and first-request/header read limit per connection.
    pub client_timeout: Duration,
    /// How long requests in flight may finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// Log only denials and errors (not every allowed request).
    pub quiet: bool,
    pub worker_threads: Option<usize>,
}

impl ServeConfig {
    pub fn new(policy: PathBuf, tls_cert: PathBuf, tls_key: PathBuf) -> ServeConfig {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            policy,
            tls_cert,
            tls_key,
            settings: Settings::default(),
            reload_interval: Duration::from_secs(2),
            // An AdmissionReview carries the object and the old object (etcd stores at most
            // ~1.5 MiB each).
            max_body: 4 << 20,
            client_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(20),
            quiet: false,
            worker_threads: None,
        }
    }
}

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    #[error("TLS {path}: {message}")]
    Tls { path: PathBuf, message: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Load the policy and certificate (errors before anything listens), then serve until
/// SIGTERM/SIGINT.
pub fn run(cfg: ServeConfig) -> Result<(), ServeError> {
    let policy = crate::policy::Policy::load(&cfg.policy)?;
    server::tls_config(&cfg.tls_cert, &cfg.tls_key)?;
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = cfg.worker_threads {
        rt.worker_threads(n.max(1));
    }
    let rt = rt.build().map_err(ServeError::Runtime)?;
    rt.block_on(server::serve(cfg, Loaded::new(policy)))
}
