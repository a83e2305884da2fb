//! `mlsign serve`: the CLI edge of [`mlsign::serve`] (the admission webhook).

use anyhow::Result;
use clap::Args;
use mlsign::report::Exit;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `2.5s`, `500ms`, `1m`, or plain seconds.
fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (2.5s, 500ms, 1m)"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        _ => return Err(format!("{s:?}: unit must be ms, s or m")),
    };
    if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[derive(Args, Debug)]
#[command(
    long_about = "Serve the Kubernetes admission webhook over HTTPS: POST /validate and /mutate \
(AdmissionReview admission.k8s.io/v1) admit a Pod, Deployment, ReplicaSet, StatefulSet, \
DaemonSet, Job or CronJob only when every image (containers, initContainers, \
ephemeralContainers) and every OCI image volume (volumes[].image.reference: models) verifies \
under the policy in the registry, by manifest digest, nothing pulled. /mutate also pins \
verified tags to digests (Pods by default). POST /admit takes {\"reference\": \"oci://…\"} or a \
list and answers the gate's JSON (mlsign-gate/1). GET /healthz, /readyz, /metrics \
(Prometheus).\n\n\
Fail-closed: every request is answered within --deadline; a timeout, a registry error or a \
policy that does not load denies (the message names the step), a body without a uid gets \
HTTP 400. kube-system and --namespace are never checked. The policy, its key files and the \
certificate are reloaded when they change; SIGTERM drains requests in flight. One JSON log \
line per decision on stderr.",
    after_help = "Examples:\n  mlsign serve --policy policy.toml --tls-cert tls.crt --tls-key tls.key\n  mlsign serve --policy /etc/mlsign/policy.toml --tls-cert /tls/tls.crt --tls-key /tls/tls.key --listen 0.0.0.0:8443 --deadline 2.5s\n  curl --cacert ca.crt https://127.0.0.1:8443/admit -d '{\"reference\": \"oci://ghcr.io/acme/bert:v1\"}'\n\nSee docs/serve.md and deploy/."
)]
pub struct ServeArgs {
    /// The policy file (TOML; `[admission]` holds the webhook settings).
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// PEM certificate chain served to the API server.
    #[arg(long, value_name = "CERT")]
    pub tls_cert: PathBuf,
    /// PEM private key of the certificate.
    #[arg(long, value_name = "KEY")]
    pub tls_key: PathBuf,
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// Answer every request within this (keep it below the webhook's timeoutSeconds).
    #[arg(long, value_name = "DURATION", default_value = "2.5s", value_parser = duration)]
    pub deadline: Duration,
    /// The webhook's own namespace, never checked (default: $POD_NAMESPACE, else mlsign).
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// How long a verified digest stays cached (0 disables the cache).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = duration)]
    pub cache_ttl: Duration,
    /// How long a registry error is remembered (fewer retries against a failing registry).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = duration)]
    pub negative_cache_ttl: Duration,
    /// How often the policy and certificate files are checked for changes.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = duration)]
    pub reload_interval: Duration,
    /// TLS handshake and request-header limit per connection (stalling clients).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub client_timeout: Duration,
    /// Largest request body read, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20)]
    pub max_body: usize,
    /// Registry verifications running at once.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub max_verifications: usize,
    /// Reach this registry host over plain HTTP (loopback hosts always may). Repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registries: Vec<String>,
    /// Docker config.json with registry credentials.
    #[arg(long, value_name = "FILE")]
    pub registry_auth: Option<PathBuf>,
    /// Log denials and errors only (not every allowed request).
    #[arg(long)]
    pub quiet: bool,
    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

#[cfg(feature = "serve")]
pub fn run(a: ServeArgs) -> Result<Exit> {
    use mlsign::serve::{self, ServeConfig};
    anyhow::ensure!(
        !a.deadline.is_zero(),
        "--deadline must be more than 0 (the webhook's timeoutSeconds minus a margin)"
    );
    let mut c = ServeConfig::new(a.policy, a.tls_cert, a.tls_key);
    c.listen = a.listen;
    c.settings.deadline = a.deadline;
    c.settings.namespace = a
        .namespace
        .or_else(|| {
            std::env::var("POD_NAMESPACE")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "mlsign".into());
    c.settings.cache_ttl = a.cache_ttl;
    c.settings.negative_ttl = a.negative_cache_ttl;
    c.settings.max_verifications = a.max_verifications.max(1);
    c.settings.registry.insecure = a.insecure_registries;
    c.settings.registry.auth_file = a.registry_auth;
    c.reload_interval = a.reload_interval.max(Duration::from_millis(100));
    c.client_timeout = a.client_timeout.max(Duration::from_millis(100));
    c.max_body = a.max_body.max(1024);
    c.quiet = a.quiet;
    c.worker_threads = a.threads;
    serve::run(c)?;
    Ok(Exit::Pass)
}

#[cfg(not(feature = "serve"))]
pub fn run(_: ServeArgs) -> Result<Exit> {
    anyhow::bail!("this mlsign was built without the webhook: rebuild with the default features (feature `serve`)")
}

#[cfg(test)]
mod tests {
    use super::duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(duration("2.5s").unwrap(), Duration::from_millis(2500));
        assert_eq!(duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(duration("3").unwrap(), Duration::from_secs(3));
        for bad in ["", "x", "2h", "-1s", "NaNs", "1e9s"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }
}
