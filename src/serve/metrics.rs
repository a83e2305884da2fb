//! Prometheus metrics in the text exposition format (0.0.4), kept in atomics: decisions by
//! endpoint and verdict, a latency histogram per endpoint, cache hits and misses, verifications
//! by result, registry errors, policy and certificate reloads.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

pub const ENDPOINTS: [&str; 3] = ["validate", "mutate", "admit"];
pub const VERDICTS: [&str; 4] = ["allow", "warn", "deny", "refuse"];
/// Histogram upper bounds, seconds.
const BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
pub const VERIFY_RESULTS: [&str; 4] = ["pass", "fail", "error", "timeout"];

#[derive(Clone, Copy, Debug)]
pub enum Endpoint {
    Validate = 0,
    Mutate = 1,
    Admit = 2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow = 0,
    Warn = 1,
    Deny = 2,
    /// Not answered as a review (HTTP 4xx).
    Refuse = 3,
}

#[derive(Clone, Copy, Debug)]
pub enum VerifyResult {
    Pass = 0,
    Fail = 1,
    Error = 2,
    Timeout = 3,
}

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// Microseconds.
    sum_us: AtomicU64,
}

#[derive(Default)]
pub struct Metrics {
    decisions: [[AtomicU64; VERDICTS.len()]; ENDPOINTS.len()],
    latency: [Histogram; ENDPOINTS.len()],
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub negative_hits: AtomicU64,
    verifications: [AtomicU64; VERIFY_RESULTS.len()],
    pub registry_errors: AtomicU64,
    pub policy_reloads_ok: AtomicU64,
    pub policy_reloads_failed: AtomicU64,
    pub tls_reloads_ok: AtomicU64,
    pub tls_reloads_failed: AtomicU64,
    pub in_flight: AtomicI64,
}

impl Metrics {
    pub fn decision(&self, e: Endpoint, d: Decision, took: Duration) {
        self.decisions[e as usize][d as usize].fetch_add(1, Relaxed);
        let h = &self.latency[e as usize];
        let s = took.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                h.buckets[i].fetch_add(1, Relaxed);
            }
        }
        h.count.fetch_add(1, Relaxed);
        h.sum_us
            .fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    pub fn verification(&self, r: VerifyResult) {
        self.verifications[r as usize].fetch_add(1, Relaxed);
    }

    pub fn decisions(&self, e: Endpoint, d: Decision) -> u64 {
        self.decisions[e as usize][d as usize].load(Relaxed)
    }

    /// The exposition text.
    pub fn render(&self, cache_entries: usize) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# HELP mlsign_admission_decisions_total Admission decisions by endpoint and verdict (refuse: not answerable as a review, HTTP 4xx).");
        let _ = writeln!(s, "# TYPE mlsign_admission_decisions_total counter");
        for (ei, e) in ENDPOINTS.iter().enumerate() {
            for (vi, v) in VERDICTS.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "mlsign_admission_decisions_total{{endpoint=\"{e}\",verdict=\"{v}\"}} {}",
                    self.decisions[ei][vi].load(Relaxed)
                );
            }
        }
        let _ = writeln!(
            s,
            "# HELP mlsign_admission_duration_seconds Time from request to answer."
        );
        let _ = writeln!(s, "# TYPE mlsign_admission_duration_seconds histogram");
        for (ei, e) in ENDPOINTS.iter().enumerate() {
            let h = &self.latency[ei];
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "mlsign_admission_duration_seconds_bucket{{endpoint=\"{e}\",le=\"{b}\"}} {}",
                    h.buckets[i].load(Relaxed)
                );
            }
            let count = h.count.load(Relaxed);
            let _ = writeln!(
                s,
                "mlsign_admission_duration_seconds_bucket{{endpoint=\"{e}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                s,
                "mlsign_admission_duration_seconds_sum{{endpoint=\"{e}\"}} {}",
                h.sum_us.load(Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                s,
                "mlsign_admission_duration_seconds_count{{endpoint=\"{e}\"}} {count}"
            );
        }
        let counter = |s: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}");
            let _ = writeln!(s, "# TYPE {name} counter");
            let _ = writeln!(s, "{name} {v}");
        };
        counter(
            &mut s,
            "mlsign_cache_hits_total",
            "Image verifications answered from the cache.",
            self.cache_hits.load(Relaxed),
        );
        counter(
            &mut s,
            "mlsign_cache_misses_total",
            "Image verifications not in the cache.",
            self.cache_misses.load(Relaxed),
        );
        counter(
            &mut s,
            "mlsign_cache_negative_hits_total",
            "Registry errors answered from the short negative cache.",
            self.negative_hits.load(Relaxed),
        );
        counter(
            &mut s,
            "mlsign_registry_errors_total",
            "Registry requests that failed (unreachable, timeout, HTTP errors).",
            self.registry_errors.load(Relaxed),
        );
        let _ = writeln!(
            s,
            "# HELP mlsign_verifications_total Verifications against the registry by result."
        );
        let _ = writeln!(s, "# TYPE mlsign_verifications_total counter");
        for (i, r) in VERIFY_RESULTS.iter().enumerate() {
            let _ = writeln!(
                s,
                "mlsign_verifications_total{{result=\"{r}\"}} {}",
                self.verifications[i].load(Relaxed)
            );
        }
        let _ = writeln!(
            s,
            "# HELP mlsign_reloads_total Policy and certificate reloads."
        );
        let _ = writeln!(s, "# TYPE mlsign_reloads_total counter");
        for (what, ok, failed) in [
            (
                "policy",
                &self.policy_reloads_ok,
                &self.policy_reloads_failed,
            ),
            ("tls", &self.tls_reloads_ok, &self.tls_reloads_failed),
        ] {
            let _ = writeln!(
                s,
                "mlsign_reloads_total{{what=\"{what}\",result=\"ok\"}} {}",
                ok.load(Relaxed)
            );
            let _ = writeln!(
                s,
                "mlsign_reloads_total{{what=\"{what}\",result=\"error\"}} {}",
                failed.load(Relaxed)
            );
        }
        let _ = writeln!(
            s,
            "# HELP mlsign_cache_entries Verified subjects in the cache."
        );
        let _ = writeln!(s, "# TYPE mlsign_cache_entries gauge");
        let _ = writeln!(s, "mlsign_cache_entries {cache_entries}");
        let _ = writeln!(
            s,
            "# HELP mlsign_requests_in_flight Requests being answered."
        );
        let _ = writeln!(s, "# TYPE mlsign_requests_in_flight gauge");
        let _ = writeln!(
            s,
            "mlsign_requests_in_flight {}",
            self.in_flight.load(Relaxed)
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_is_cumulative_and_complete() {
        let m = Metrics::default();
        m.decision(Endpoint::Validate, Decision::Deny, Duration::from_millis(3));
        m.decision(
            Endpoint::Validate,
            Decision::Allow,
            Duration::from_millis(30),
        );
        let t = m.render(0);
        assert!(t.contains(
            "mlsign_admission_decisions_total{endpoint=\"validate\",verdict=\"deny\"} 1"
        ));
        assert!(t.contains(
            "mlsign_admission_duration_seconds_bucket{endpoint=\"validate\",le=\"0.005\"} 1"
        ));
        assert!(t.contains(
            "mlsign_admission_duration_seconds_bucket{endpoint=\"validate\",le=\"0.05\"} 2"
        ));
        assert!(t.contains(
            "mlsign_admission_duration_seconds_bucket{endpoint=\"validate\",le=\"+Inf\"} 2"
        ));
        assert!(t.contains("mlsign_admission_duration_seconds_count{endpoint=\"validate\"} 2"));
        // Every sample line is `name{labels} value` or `name value`.
        for l in t.lines().filter(|l| !l.starts_with('#')) {
            let v = l.rsplit(' ').next().unwrap();
            assert!(v.parse::<f64>().is_ok(), "{l}");
        }
    }
}
