//! From image references to a decision, inside a deadline. Each reference is normalised, matched
//! against the policy (no network for references the policy does not cover or that break
//! `require_digest`), resolved to its digest, looked up in the cache, and otherwise verified by
//! the gate (`crate::gate::run` on the digest-pinned reference: signatures by manifest digest,
//! models by manifest, no layers). The blocking registry work runs on tokio's blocking pool with
//! its own registry timeout below the deadline; the deadline itself is enforced around it, so a
//! hanging registry costs one deadline and yields a deny naming the step.

use super::admission::{self, Answer, Review, WorkloadKind};
use super::cache::{Key, TtlCache};
use super::metrics::{Metrics, VerifyResult};
use crate::gate::{self, GateOptions, GateReport, PolicyOut, SubjectOut, ToolOut};
use crate::oci::{Options, Reference};
use crate::policy::{self, OnError, PinDigests, Policy, Subject};
use crate::report::{codes, Check, CheckStatus, Exit, Finding, Location, Severity, Verdict};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Why registry work of an admission review did not finish (SRV001).
#[derive(Debug, thiserror::Error)]
pub enum DeadlineError {
    #[error(
        "the {:.1} s admission deadline passed during: {step}{}",
        deadline.as_secs_f64(),
        match waiting_for_slot {
            Some(n) => format!(" (waiting for one of the {n} verification slots)"),
            None => String::new(),
        }
    )]
    Late {
        deadline: Duration,
        step: String,
        /// Set when no verification slot (of this many) came free in time.
        waiting_for_slot: Option<usize>,
    },
    #[error("internal error during {step}: {source}")]
    Internal {
        step: String,
        #[source]
        source: tokio::task::JoinError,
    },
}

/// Namespaces never checked (the control plane).
pub const ALWAYS_EXCLUDED: &str = "kube-system";

/// What the engine needs besides the policy.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Every request is answered within this (below the webhook's timeoutSeconds).
    pub deadline: Duration,
    /// Registry access (auth file, insecure hosts); its timeout is set per verification.
    pub registry: Options,
    /// The webhook's own namespace: excluded so it can always start.
    pub namespace: String,
    pub cache_ttl: Duration,
    pub negative_ttl: Duration,
    pub cache_capacity: usize,
    /// Registry verifications running at once.
    pub max_verifications: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            deadline: Duration::from_millis(2500),
            registry: Options::default(),
            namespace: "mlsign".into(),
            cache_ttl: Duration::from_secs(300),
            negative_ttl: Duration::from_secs(5),
            cache_capacity: 10_000,
            max_verifications: 32,
        }
    }
}

/// A loaded policy and the fingerprint that keys the cache: the file's digest plus every
/// authority's key material and the revocation list (key files are separate files: a rotated
/// key changes the outcome without changing the policy's bytes).
#[derive(Debug)]
pub struct Loaded {
    pub policy: Arc<Policy>,
    pub fingerprint: String,
}

impl Loaded {
    pub fn new(policy: Policy) -> Loaded {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(policy.sha256.as_bytes());
        for a in &policy.authorities {
            h.update(b"\0authority\0");
            h.update(a.name.as_bytes());
            h.update(b"\0");
            match &a.kind {
                policy::AuthorityKind::Key { key, .. } => h.update(key.hint().as_bytes()),
                policy::AuthorityKind::CertRoots { roots, .. } => {
                    for r in roots {
                        h.update(Sha256::digest(&r.der));
                    }
                }
                policy::AuthorityKind::Keyless(k) => {
                    h.update(serde_json::to_vec(k).unwrap_or_default())
                }
            }
        }
        Loaded {
            fingerprint: hex::encode(h.finalize()),
            policy: Arc::new(policy),
        }
    }
}

/// The policy in force. A policy file that stops loading is not silently replaced by the last
/// good one: until it loads again every checked request is denied (a revocation being added is
/// exactly when an edit may go wrong). Exclusions keep coming from the last good policy.
#[derive(Debug, Clone)]
pub enum PolicyStatus {
    Ok(Arc<Loaded>),
    Broken { last: Arc<Loaded>, error: String },
}

impl PolicyStatus {
    pub fn last(&self) -> &Arc<Loaded> {
        match self {
            PolicyStatus::Ok(l) | PolicyStatus::Broken { last: l, .. } => l,
        }
    }
}

/// The outcome for one reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pass,
    Warn,
    Deny,
    /// Could not be decided (timeout, registry error): denied unless `on_error = "warn"`.
    Error,
}

#[derive(Clone, Debug)]
pub struct RefOutcome {
    /// The reference as written.
    pub image: String,
    /// The normalised `oci://` reference (empty when it did not parse).
    pub reference: String,
    pub digest: Option<String>,
    pub status: Status,
    /// `CODE check: message` lines of what failed.
    pub reasons: Vec<String>,
    pub cached: bool,
    pub report: Arc<GateReport>,
}

pub struct Engine {
    pub settings: Settings,
    policy: RwLock<PolicyStatus>,
    cache: TtlCache<Key, Arc<GateReport>>,
    /// `fingerprint|reference` → the error, for `negative_ttl`.
    negative: TtlCache<String, String>,
    pub metrics: Arc<Metrics>,
    /// Registry verifications in flight; a permit lives as long as the blocking work, so a
    /// hanging registry holds slots until its own timeout, not just until the deadline.
    slots: Arc<tokio::sync::Semaphore>,
    /// Verifications in flight, by cache key.
    inflight: std::sync::Mutex<HashMap<Key, Arc<tokio::sync::OnceCell<Arc<GateReport>>>>>,
}

fn finding(code: &'static str, msg: impl Into<String>) -> Finding {
    Finding::new(code, Severity::High, msg)
}

/// A gate report the server made without running the gate (parse errors, deadline, registry
/// errors before verification, require_digest).
fn synthetic(
    policy: &Policy,
    reference: &str,
    digest: Option<String>,
    checks: Vec<Check>,
) -> GateReport {
    let outcome = policy::verdict(policy.mode, &checks, false);
    GateReport {
        schema: gate::SCHEMA,
        verdict: outcome.verdict,
        subject: SubjectOut {
            path: None,
            reference: Some(reference.to_string()),
            digest,
        },
        policy: PolicyOut {
            path: policy.path.display().to_string(),
            sha256: policy.sha256.clone(),
            mode: policy.mode.as_str(),
        },
        findings: checks.iter().flat_map(|c| c.findings.clone()).collect(),
        checks,
        would_fail: outcome.would_fail,
        revoked: outcome.revoked,
        approvals: Vec::new(),
        tool: ToolOut {
            name: "mlsign",
            version: env!("CARGO_PKG_VERSION"),
        },
        outcome,
    }
}

fn status_of(r: &GateReport) -> Status {
    match r.verdict {
        Verdict::Pass => Status::Pass,
        Verdict::Warn => Status::Warn,
        Verdict::Fail if r.outcome.exit == Exit::Error => Status::Error,
        Verdict::Fail => Status::Deny,
    }
}

fn reasons_of(r: &GateReport) -> Vec<String> {
    let mut out = Vec::new();
    for c in &r.checks {
        if matches!(c.status, CheckStatus::Fail | CheckStatus::Error) {
            for f in &c.findings {
                if f.severity >= Severity::Medium {
                    out.push(format!("{} {}: {}", f.code, c.name, f.message));
                }
            }
        }
    }
    out.truncate(5);
    out
}

impl Engine {
    pub fn new(mut settings: Settings, policy: Loaded, metrics: Arc<Metrics>) -> Engine {
        // One connection pool (and token cache) per registry and credentials for the life of
        // the server: a tag resolution reuses a kept-alive connection instead of a new client,
        // connection and (for registries with token auth) token exchange per request.
        settings
            .registry
            .pool
            .get_or_insert_with(crate::oci::client::Pool::default);
        Engine {
            cache: TtlCache::new(settings.cache_ttl, settings.cache_capacity),
            negative: TtlCache::new(settings.negative_ttl, settings.cache_capacity),
            slots: Arc::new(tokio::sync::Semaphore::new(
                settings.max_verifications.max(1),
            )),
            inflight: std::sync::Mutex::new(HashMap::new()),
            settings,
            policy: RwLock::new(PolicyStatus::Ok(Arc::new(policy))),
            metrics,
        }
    }

    pub fn policy(&self) -> PolicyStatus {
        self.policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Put a newly loaded policy in force (or mark the file broken).
    pub fn set_policy(&self, p: Result<Loaded, crate::policy::PolicyError>) {
        let mut g = self.policy.write().unwrap_or_else(|e| e.into_inner());
        let last = g.last().clone();
        *g = match p {
            Ok(l) => PolicyStatus::Ok(Arc::new(l)),
            Err(e) => PolicyStatus::Broken {
                last,
                error: e.to_string(),
            },
        };
        // Errors remembered under the old policy are not this policy's.
        self.negative.clear();
    }

    pub fn cache_entries(&self) -> usize {
        self.cache.len()
    }

    /// Verify one reference (as written in a workload, or `oci://…`) before `deadline`.
    pub async fn verify(
        self: &Arc<Self>,
        loaded: &Arc<Loaded>,
        image: &str,
        deadline: Instant,
    ) -> RefOutcome {
        let policy = &loaded.policy;
        let out = |reference: String, digest: Option<String>, report: GateReport, cached: bool| {
            let report = Arc::new(report);
            RefOutcome {
                image: image.to_string(),
                reference,
                digest,
                status: status_of(&report),
                reasons: reasons_of(&report),
                cached,
                report,
            }
        };
        let r = match admission::normalize_image(image) {
            Ok(r) => r,
            Err(why) => {
                let c = Check::error(
                    "subject",
                    finding(
                        codes::SRV002,
                        format!("image reference does not parse: {why}"),
                    )
                    .at(Location::path(image)),
                );
                let mut o = out(
                    String::new(),
                    None,
                    synthetic(policy, image, None, vec![c]),
                    false,
                );
                // Nothing that cannot be read is ever allowed, even with on_error = "warn".
                o.status = Status::Deny;
                return o;
            }
        };
        let shown = r.to_string();
        let subject = Subject::Oci(shown.clone());
        if policy.matching_pattern(&subject).is_none() {
            // The gate decides per no_match without touching the registry.
            let report = match gate::run(policy, &shown, &GateOptions::default()) {
                Ok(rep) => rep,
                Err(e) => synthetic(
                    policy,
                    &shown,
                    None,
                    vec![Check::error(
                        "subject",
                        finding(codes::SRV002, e.to_string()),
                    )],
                ),
            };
            return out(shown, r.digest.clone(), report, false);
        }
        if policy.require_digest && r.digest.is_none() {
            let c = Check::from_findings(
                "digest",
                "the policy requires references pinned by digest",
                vec![finding(codes::GAT014, format!("{image} names a tag, but the policy sets require_digest = true: pin it by digest (name@sha256:…) in the manifest"))
                    .at(Location::path(image))],
            );
            return out(
                shown.clone(),
                None,
                synthetic(policy, &shown, None, vec![c]),
                false,
            );
        }
        let neg_key = |s: &str| format!("{}|{s}", loaded.fingerprint);
        let error_report =
            |reference: &str, digest: Option<String>, code: &'static str, msg: String| {
                synthetic(
                    policy,
                    reference,
                    digest,
                    vec![Check::error(
                        "signature",
                        finding(code, msg).at(Location::path(reference)),
                    )],
                )
            };
        // Resolve a tag to the digest the kubelet would pull now.
        let digest = match &r.digest {
            Some(d) => d.clone(),
            None => {
                if let Some(e) = self.negative.get(&neg_key(&shown)) {
                    self.metrics
                        .negative_hits
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return out(
                        shown.clone(),
                        None,
                        error_report(
                            &shown,
                            None,
                            codes::GAT010,
                            format!(
                                "{e} (remembered for {} s)",
                                self.settings.negative_ttl.as_secs()
                            ),
                        ),
                        false,
                    );
                }
                let rr = r.clone();
                let opts = self.registry_options(deadline);
                let step = format!("resolve {shown} to a digest");
                match self
                    .blocking(deadline, &step, move || resolve(&rr, &opts))
                    .await
                {
                    Ok(Ok(d)) => d,
                    Ok(Err(e)) => {
                        self.metrics
                            .registry_errors
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let msg = e.to_string();
                        self.negative.insert(neg_key(&shown), msg.clone());
                        return out(
                            shown.clone(),
                            None,
                            error_report(&shown, None, codes::GAT010, msg),
                            false,
                        );
                    }
                    Err(timeout) => {
                        // Not remembered: running out of time may be our own queueing, not
                        // the registry (its own timeouts, below the deadline, are remembered).
                        self.metrics.verification(VerifyResult::Timeout);
                        return out(
                            shown.clone(),
                            None,
                            error_report(&shown, None, codes::SRV001, timeout.to_string()),
                            false,
                        );
                    }
                }
            }
        };
        let key = Key {
            policy: loaded.fingerprint.clone(),
            repository: r.repository_name(),
            digest: digest.clone(),
        };
        if let Some(rep) = self.cache.get(&key) {
            return self.hit(image, shown, digest, rep);
        }
        self.metrics
            .cache_misses
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Verify exactly this digest: a tag moved meanwhile does not change what was checked.
        let pinned = Reference {
            digest: Some(digest.clone()),
            ..r.clone()
        }
        .to_string();
        if let Some(e) = self.negative.get(&neg_key(&pinned)) {
            self.metrics
                .negative_hits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return out(
                shown,
                Some(digest.clone()),
                error_report(
                    &pinned,
                    Some(digest),
                    codes::GAT010,
                    format!(
                        "{e} (remembered for {} s)",
                        self.settings.negative_ttl.as_secs()
                    ),
                ),
                false,
            );
        }
        // Single flight: requests arriving while this digest is being verified wait for that
        // verification instead of starting their own (each still bounded by its own deadline).
        let cell = {
            let mut m = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            m.entry(key.clone()).or_default().clone()
        };
        let verify_once = async {
            let p = policy.clone();
            let opts = GateOptions {
                registry: Some(self.registry_options(deadline)),
                ..GateOptions::default()
            };
            let pin2 = pinned.clone();
            let step = format!("verify the signatures of {pinned} in the registry");
            let report = match self
                .blocking(deadline, &step, move || gate::run(&p, &pin2, &opts))
                .await
            {
                Ok(Ok(rep)) => rep,
                Ok(Err(e)) => {
                    error_report(&pinned, Some(digest.clone()), codes::GAT010, e.to_string())
                }
                Err(timeout) => {
                    self.metrics.verification(VerifyResult::Timeout);
                    error_report(
                        &pinned,
                        Some(digest.clone()),
                        codes::SRV001,
                        timeout.to_string(),
                    )
                }
            };
            let status = status_of(&report);
            if !report.findings.iter().any(|f| f.code == codes::SRV001) {
                self.metrics.verification(match status {
                    Status::Pass => VerifyResult::Pass,
                    Status::Warn | Status::Deny => VerifyResult::Fail,
                    Status::Error => VerifyResult::Error,
                });
                if status == Status::Error {
                    self.metrics
                        .registry_errors
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if let Some(first) = reasons_of(&report).first() {
                        self.negative.insert(neg_key(&pinned), first.clone());
                    }
                }
            }
            let report = Arc::new(report);
            if status == Status::Pass && !report.would_fail {
                self.cache.insert(key.clone(), report.clone());
            }
            report
        };
        let waited = tokio::time::timeout_at(
            tokio::time::Instant::from_std(deadline),
            cell.get_or_init(|| verify_once),
        )
        .await;
        {
            // The finished flight leaves the map (the cache holds a success from now on); an
            // abandoned one stays for the next caller to run.
            let mut m = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            if m.get(&key)
                .is_some_and(|c| Arc::ptr_eq(c, &cell) && c.initialized())
            {
                m.remove(&key);
            }
        }
        let report = match waited {
            Ok(r) => r.clone(),
            Err(_) => {
                self.metrics.verification(VerifyResult::Timeout);
                let msg = format!(
                    "the {:.1} s admission deadline passed while waiting for the verification of {pinned} (started by a concurrent request)",
                    self.settings.deadline.as_secs_f64()
                );
                Arc::new(error_report(
                    &pinned,
                    Some(digest.clone()),
                    codes::SRV001,
                    msg,
                ))
            }
        };
        let status = status_of(&report);
        RefOutcome {
            image: image.to_string(),
            reference: shown,
            digest: Some(digest),
            status,
            reasons: reasons_of(&report),
            cached: false,
            report,
        }
    }

    /// The outcome of a cache hit (no copy of the cached report).
    fn hit(&self, image: &str, shown: String, digest: String, rep: Arc<GateReport>) -> RefOutcome {
        self.metrics
            .cache_hits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        RefOutcome {
            image: image.to_string(),
            reference: shown,
            digest: Some(digest),
            status: status_of(&rep),
            reasons: reasons_of(&rep),
            cached: true,
            report: rep,
        }
    }

    /// The warm path, without a task or the blocking pool: a digest-pinned reference the
    /// policy covers whose verification is cached. `None` for everything else ([`verify`]
    /// decides those, with the same checks in the same order).
    fn cached(&self, loaded: &Loaded, image: &str) -> Option<RefOutcome> {
        let r = admission::normalize_image(image).ok()?;
        let digest = r.digest.clone()?;
        let shown = r.to_string();
        loaded
            .policy
            .matching_pattern(&Subject::Oci(shown.clone()))?;
        let key = Key {
            policy: loaded.fingerprint.clone(),
            repository: r.repository_name(),
            digest,
        };
        let rep = self.cache.get(&key)?;
        Some(self.hit(image, shown, key.digest, rep))
    }

    /// Registry options for one verification: one attempt, and a per-request timeout below
    /// what is left of the deadline, so the registry step's own error (naming it) usually
    /// arrives before the deadline does.
    fn registry_options(&self, deadline: Instant) -> Options {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut o = self.settings.registry.clone();
        o.timeout = (left.mul_f64(0.9)).max(Duration::from_millis(50));
        o.attempts = 1;
        o
    }

    /// Run blocking registry work before `deadline`; `Err` names the step that ran out of time.
    async fn blocking<T: Send + 'static>(
        &self,
        deadline: Instant,
        step: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, DeadlineError> {
        let total = self.settings.deadline;
        let late = || DeadlineError::Late {
            deadline: total,
            step: step.to_string(),
            waiting_for_slot: None,
        };
        let dl = tokio::time::Instant::from_std(deadline);
        let permit = match tokio::time::timeout_at(dl, self.slots.clone().acquire_owned()).await {
            Ok(Ok(p)) => p,
            _ => {
                return Err(DeadlineError::Late {
                    deadline: total,
                    step: step.to_string(),
                    waiting_for_slot: Some(self.settings.max_verifications),
                })
            }
        };
        let h = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f()
        });
        let r = tokio::time::timeout_at(dl, h).await;
        match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(source)) => Err(DeadlineError::Internal {
                step: step.to_string(),
                source,
            }),
            Err(_) => Err(late()),
        }
    }

    /// Decide an AdmissionReview. `mutate`: also pin verified tags to digests (per the policy's
    /// `admission.pin_digests`).
    pub async fn review(self: &Arc<Self>, rv: &Review, mutate: bool, started: Instant) -> Answer {
        let deadline = started + self.settings.deadline;
        let status = self.policy();
        let loaded = status.last().clone();
        let adm = &loaded.policy.admission;
        let mut a = Answer::default();
        if matches!(rv.operation(), "DELETE" | "CONNECT") {
            a.allowed = true;
            a.message = format!("mlsign: nothing to verify on {}", rv.operation());
            return a;
        }
        let ns = rv.namespace();
        if !ns.is_empty()
            && (ns == ALWAYS_EXCLUDED
                || ns == self.settings.namespace
                || adm.exclude_namespaces.iter().any(|x| x == ns))
        {
            a.allowed = true;
            a.message = format!("mlsign: namespace {ns} is excluded");
            a.audit.insert("mlsign.dev/excluded".into(), ns.to_string());
            return a;
        }
        let (group, kind) = (&rv.gvk().group, &rv.gvk().kind);
        let Some(wk) = WorkloadKind::from_gvk(group, kind) else {
            a.message = format!(
                "mlsign: cannot check kind {kind} (group {group:?}): it checks Pod, Deployment, ReplicaSet, StatefulSet, DaemonSet, Job and CronJob; remove this kind from the webhook's rules"
            );
            return a;
        };
        if let PolicyStatus::Broken { error, .. } = &status {
            a.message = format!("mlsign: the policy does not load, so nothing is admitted until it is fixed: {error}");
            return a;
        }
        let policy = loaded.policy.clone();
        let images = match admission::extract_images(wk, rv.object()) {
            Ok(v) => v,
            Err(why) => {
                a.message = format!(
                    "mlsign: cannot read the images of this {}: {why}",
                    wk.as_str()
                );
                return a;
            }
        };
        // Verify each distinct reference once, concurrently.
        let mut distinct: Vec<String> = Vec::new();
        for u in &images {
            if !distinct.contains(&u.image) {
                distinct.push(u.image.clone());
            }
        }
        let mut results: Vec<Option<RefOutcome>> = distinct
            .iter()
            .map(|img| self.cached(&loaded, img))
            .collect();
        let mut set = tokio::task::JoinSet::new();
        for (i, img) in distinct.iter().enumerate() {
            if results[i].is_some() {
                continue;
            }
            let me = self.clone();
            let l = loaded.clone();
            let img = img.clone();
            set.spawn(async move { (i, me.verify(&l, &img, deadline).await) });
        }
        while let Some(j) = set.join_next().await {
            if let Ok((i, o)) = j {
                results[i] = Some(o);
            }
        }
        let warn_errors = adm.on_error == OnError::Warn;
        let mut denials = Vec::new();
        let mut verified = Vec::new();
        let pin = mutate
            && match adm.pin_digests {
                PinDigests::Pods => wk == WorkloadKind::Pod,
                PinDigests::All => true,
                PinDigests::None => false,
            };
        for u in &images {
            let i = distinct.iter().position(|x| x == &u.image).unwrap_or(0);
            let Some(o) = results.get(i).and_then(Option::as_ref) else {
                denials.push(format!(
                    "{} image {}: internal error: its check did not finish",
                    u.describe(),
                    u.image
                ));
                continue;
            };
            let why = if o.reasons.is_empty() {
                "not verified".to_string()
            } else {
                o.reasons.join("; ")
            };
            match o.status {
                Status::Pass => {}
                Status::Warn => {
                    a.warnings
                        .push(format!("mlsign: {} {}: {why}", u.describe(), u.image))
                }
                Status::Error if warn_errors => a.warnings.push(format!(
                    "mlsign: {} {} could not be verified (admitted: on_error = warn): {why}",
                    u.describe(),
                    u.image
                )),
                Status::Deny | Status::Error => {
                    denials.push(format!("{} image {}: {why}", u.describe(), u.image))
                }
            }
            if let Some(d) = &o.digest {
                verified.push(format!(
                    "{}@{d}",
                    o.reference.split('@').next().unwrap_or("")
                ));
                if pin && !u.image.contains('@') && matches!(o.status, Status::Pass | Status::Warn)
                {
                    if let Some(op) = admission::pin_op(u, d) {
                        a.patch.push(op);
                    }
                }
            }
        }
        // Digest → tag regressions on UPDATE: a warning (the tag is still verified above).
        if rv.operation() == "UPDATE" && !rv.old_object().is_null() {
            if let Ok(old) = admission::extract_images(wk, rv.old_object()) {
                for u in &images {
                    if let Some(o) = old.iter().find(|o| o.pointer == u.pointer) {
                        if o.image.contains('@') && !u.image.contains('@') {
                            a.warnings.push(format!(
                                "mlsign: {} changed from a digest ({}) to a tag ({})",
                                u.describe(),
                                o.image,
                                u.image
                            ));
                        }
                    }
                }
            }
        }
        a.allowed = denials.is_empty();
        if a.allowed {
            a.message = String::new();
            if !verified.is_empty() {
                a.audit
                    .insert("mlsign.dev/verified".into(), verified.join(","));
            }
        } else {
            a.patch.clear();
            a.message = format!(
                "mlsign denied this {} (policy {}, mode {}): {}",
                wk.as_str(),
                policy
                    .name
                    .as_deref()
                    .unwrap_or(&policy.path.display().to_string()),
                policy.mode.as_str(),
                denials.join(" | ")
            );
        }
        a
    }
}

/// Resolve a tag to the manifest digest the registry serves now.
pub fn resolve(r: &Reference, opts: &Options) -> Result<String, crate::oci::Error> {
    let c = crate::oci::client::Client::new(r, opts)?;
    Ok(c.get_manifest(r, "resolve reference")?.digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::admission::parse_review;
    use serde_json::{json, Value};

    fn engine(policy_text: &str) -> (Arc<Engine>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.toml");
        std::fs::write(&p, policy_text).unwrap();
        let policy = Policy::load(&p).unwrap();
        let s = Settings {
            deadline: Duration::from_millis(800),
            namespace: "mlsign".into(),
            ..Settings::default()
        };
        (
            Arc::new(Engine::new(
                s,
                Loaded::new(policy),
                Arc::new(Metrics::default()),
            )),
            dir,
        )
    }

    fn rv(ns: &str, kind: (&str, &str), op: &str, images: &[&str]) -> Review {
        let cs: Vec<Value> = images
            .iter()
            .enumerate()
            .map(|(i, im)| json!({"name": format!("c{i}"), "image": im}))
            .collect();
        let spec = json!({"containers": cs});
        let object = if kind.1 == "Pod" {
            json!({"spec": spec})
        } else {
            json!({"spec": {"template": {"spec": spec}}})
        };
        let body = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "u", "kind": {"group": kind.0, "version": "v1", "kind": kind.1},
            "resource": {"group": kind.0, "version": "v1", "resource": format!("{}s", kind.1.to_lowercase())},
            "userInfo": {"username": "test"},
            "namespace": ns, "operation": op, "object": object}});
        parse_review(&serde_json::to_vec(&body).unwrap()).unwrap()
    }

    const BASE: &str = "subjects = [\"oci://127.0.0.1:1/team/**\"]\n[requirements.scan]\n";

    fn decide(e: &Arc<Engine>, r: &Review) -> Answer {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(e.review(r, false, Instant::now()))
    }

    #[test]
    fn decisions_that_need_no_registry() {
        let (e, _d) = engine(BASE);
        // Excluded namespaces: kube-system and our own.
        for ns in ["kube-system", "mlsign"] {
            assert!(decide(&e, &rv(ns, ("", "Pod"), "CREATE", &["nginx"])).allowed);
        }
        // Not covered: no_match = deny by default, naming GAT001.
        let a = decide(&e, &rv("ml", ("", "Pod"), "CREATE", &["nginx"]));
        assert!(!a.allowed && a.message.contains("GAT001"), "{}", a.message);
        // Unknown kind, unparseable reference.
        assert!(!decide(&e, &rv("ml", ("", "Service"), "CREATE", &[])).allowed);
        let a = decide(&e, &rv("ml", ("", "Pod"), "CREATE", &["UPPER/case"]));
        assert!(!a.allowed && a.message.contains("SRV002"), "{}", a.message);
        // Nothing runs on DELETE.
        assert!(decide(&e, &rv("ml", ("", "Pod"), "DELETE", &[])).allowed);

        let (e, _d) = engine(&format!("no_match = \"allow\"\n{BASE}"));
        assert!(decide(&e, &rv("ml", ("", "Pod"), "CREATE", &["nginx"])).allowed);
        let (e, _d) = engine(&format!("no_match = \"warn\"\n{BASE}"));
        let a = decide(&e, &rv("ml", ("", "Pod"), "CREATE", &["nginx"]));
        assert!(a.allowed && !a.warnings.is_empty(), "{a:?}");

        // require_digest: a tag on a controller is refused before any registry call.
        let (e, _d) = engine(&format!("require_digest = true\n{BASE}"));
        let a = decide(
            &e,
            &rv(
                "ml",
                ("apps", "Deployment"),
                "CREATE",
                &["127.0.0.1:1/team/app:v1"],
            ),
        );
        assert!(!a.allowed && a.message.contains("GAT014"), "{}", a.message);

        // Policy exclusions; unparseable references stay denied under on_error = warn.
        let (e, _d) = engine(&format!(
            "{BASE}[admission]\nexclude_namespaces = [\"ci\"]\non_error = \"warn\"\n"
        ));
        assert!(decide(&e, &rv("ci", ("", "Pod"), "CREATE", &["nginx"])).allowed);
        assert!(!decide(&e, &rv("ml", ("", "Pod"), "CREATE", &["Bad Ref"])).allowed);
    }

    #[test]
    fn unreachable_registry_is_a_deny_naming_the_step_and_is_remembered() {
        let (e, _d) = engine(BASE);
        let r = rv("ml", ("", "Pod"), "CREATE", &["127.0.0.1:1/team/app:v1"]);
        let a = decide(&e, &r);
        assert!(!a.allowed, "{a:?}");
        assert!(a.message.contains("resolve"), "{}", a.message);
        let a = decide(&e, &r);
        assert!(
            a.message.contains("remembered"),
            "negative cache: {}",
            a.message
        );
        assert_eq!(
            e.metrics
                .negative_hits
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        // on_error = warn admits with a warning instead.
        let (e, _d) = engine(&format!("{BASE}[admission]\non_error = \"warn\"\n"));
        let a = decide(&e, &r);
        assert!(
            a.allowed && a.warnings[0].contains("could not be verified"),
            "{a:?}"
        );
    }

    #[test]
    fn a_broken_policy_denies_until_fixed() {
        let (e, d) = engine(&format!("no_match = \"allow\"\n{BASE}"));
        let r = rv("ml", ("", "Pod"), "CREATE", &["nginx"]);
        assert!(decide(&e, &r).allowed);
        e.set_policy(Err(crate::policy::PolicyError::Syntax {
            path: "p.toml".into(),
            line: 1,
            column: 1,
            message: "expected a table".into(),
        }));
        let a = decide(&e, &r);
        assert!(
            !a.allowed && a.message.contains("does not load"),
            "{}",
            a.message
        );
        // Exclusions still hold.
        assert!(decide(&e, &rv("kube-system", ("", "Pod"), "CREATE", &["nginx"])).allowed);
        let p = Policy::load(&d.path().join("p.toml")).unwrap();
        e.set_policy(Ok(Loaded::new(p)));
        assert!(decide(&e, &r).allowed);
    }

    #[test]
    fn fingerprint_covers_keys_and_revocations() {
        let (a, _d1) = engine(BASE);
        let (b, _d2) = engine(&format!(
            "{BASE}[revocation]\ndigests = [\"sha256:{}\"]\n",
            "a".repeat(64)
        ));
        assert_ne!(a.policy().last().fingerprint, b.policy().last().fingerprint);
    }
}
