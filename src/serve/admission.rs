//! AdmissionReview `admission.k8s.io/v1`: reading the request (untrusted bytes: size-capped by the
//! server, parsed once as strict JSON, every field checked), finding every image a workload runs,
//! normalising Kubernetes image strings to `oci://` references, and writing the response
//! (field names as kube-core's `AdmissionResponse` and the Go types; `patch` base64 as the API
//! server expects).

use crate::oci::Reference;
use base64::Engine;
use json_patch::{jsonptr::PointerBuf, PatchOperation, ReplaceOperation};
pub use kube_core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
pub use kube_core::DynamicObject;
use serde_json::{json, Value};
use std::collections::HashMap;

pub const API_VERSION: &str = "admission.k8s.io/v1";
pub const KIND: &str = "AdmissionReview";

/// Most image references taken from one object (a Pod spec allows far fewer in practice).
pub const MAX_IMAGES: usize = 256;
/// Longest image string accepted (distribution allows 255 for the name plus tag/digest).
pub const MAX_IMAGE_LEN: usize = 512;
/// Warnings returned per response, and characters per warning (the API server recommends 120).
const MAX_WARNINGS: usize = 20;
const MAX_WARNING_CHARS: usize = 120;
/// Characters in a deny message.
const MAX_MESSAGE_CHARS: usize = 4000;

/// Why a request body cannot be answered as a review.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// No usable `request.uid`: the body is answered with HTTP 400 (the API server then applies
    /// the webhook's failurePolicy, Fail in deploy/).
    #[error("{0}")]
    NoUid(String),
    /// A uid was found but the review is wrong: answered 200 with `allowed: false`.
    #[error("{message}")]
    Invalid { uid: String, message: String },
}

/// The workload kinds whose images mlsign knows where to find.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    Pod,
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
}

impl WorkloadKind {
    /// From the request's `kind` {group, kind}; the group must be the built-in one.
    pub fn from_gvk(group: &str, kind: &str) -> Option<WorkloadKind> {
        use WorkloadKind::*;
        Some(match (group, kind) {
            ("", "Pod") => Pod,
            ("apps", "Deployment") => Deployment,
            ("apps", "ReplicaSet") => ReplicaSet,
            ("apps", "StatefulSet") => StatefulSet,
            ("apps", "DaemonSet") => DaemonSet,
            ("batch", "Job") => Job,
            ("batch", "CronJob") => CronJob,
            _ => return None,
        })
    }

    /// JSON pointer of the pod spec inside the object.
    pub fn pod_spec_pointer(self) -> &'static str {
        match self {
            WorkloadKind::Pod => "/spec",
            WorkloadKind::CronJob => "/spec/jobTemplate/spec/template/spec",
            _ => "/spec/template/spec",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Pod => "Pod",
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::ReplicaSet => "ReplicaSet",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::Job => "Job",
            WorkloadKind::CronJob => "CronJob",
        }
    }
}

/// A checked AdmissionReview request: kube-core's typed request (the object untyped, as a
/// [`DynamicObject`]) after mlsign's own checks.
#[derive(Debug)]
pub struct Review {
    pub request: AdmissionRequest<DynamicObject>,
}

static NULL: Value = Value::Null;

impl Review {
    pub fn uid(&self) -> &str {
        &self.request.uid
    }

    /// `{group, version, kind}` of the object, as sent.
    pub fn gvk(&self) -> &kube_core::GroupVersionKind {
        &self.request.kind
    }

    pub fn namespace(&self) -> &str {
        self.request.namespace.as_deref().unwrap_or("")
    }

    pub fn name(&self) -> &str {
        &self.request.name
    }

    pub fn operation(&self) -> &'static str {
        match self.request.operation {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }

    pub fn dry_run(&self) -> bool {
        self.request.dry_run
    }

    /// The object without apiVersion, kind and metadata (where `/spec` lives), or null.
    pub fn object(&self) -> &Value {
        self.request.object.as_ref().map_or(&NULL, |o| &o.data)
    }

    /// The old object on UPDATE (same shape as [`Review::object`]), or null.
    pub fn old_object(&self) -> &Value {
        self.request.old_object.as_ref().map_or(&NULL, |o| &o.data)
    }
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Parse a request body. Truncated, deeply nested (serde_json's recursion limit) or
/// duplicate-key JSON and a body without a string `request.uid` are `NoUid` (HTTP 400);
/// everything else that is wrong is `Invalid` (200, denied).
///
/// Three steps: the bytes are read once as strict JSON (duplicate keys refused at any depth,
/// which kube-core's serde derive would not do inside the object), the uid and the fields
/// kube-core accepts too loosely are checked on that value (`apiVersion`: kube-core takes
/// v1beta1 as well; string lengths; the operation, with a clearer message), then the value
/// is read as kube-core's `AdmissionReview<DynamicObject>`. Where kube-core is stricter than
/// the checks above (no `userInfo` or `resource`, a null `dryRun`, ill-typed object
/// metadata) the review is denied: the API server always sends those well-formed.
pub fn parse_review(body: &[u8]) -> Result<Review, ReviewError> {
    let v = crate::json::value_from_slice(body)
        .map_err(|e| ReviewError::NoUid(format!("the body is not a JSON AdmissionReview: {e}")))?;
    let req = v.get("request").ok_or_else(|| {
        ReviewError::NoUid("the AdmissionReview has no request (and so no uid)".into())
    })?;
    let uid = match req.get("uid") {
        Some(Value::String(u))
            if !u.is_empty() && u.len() <= 256 && !u.chars().any(char::is_control) =>
        {
            u.clone()
        }
        _ => {
            return Err(ReviewError::NoUid(
                "request.uid is missing or not a non-empty string of at most 256 characters".into(),
            ))
        }
    };
    let invalid = |message: String| ReviewError::Invalid {
        uid: uid.clone(),
        message,
    };
    let api = str_at(&v, "apiVersion").unwrap_or("");
    let kind = str_at(&v, "kind").unwrap_or("");
    if api != API_VERSION || kind != KIND {
        return Err(invalid(format!(
            "apiVersion {api:?}, kind {kind:?}: mlsign reads {KIND} {API_VERSION} only (set admissionReviewVersions: [\"v1\"] in the webhook configuration)"
        )));
    }
    let gvk = req.get("kind").unwrap_or(&Value::Null);
    if !["group", "version", "kind"]
        .iter()
        .all(|k| gvk.get(k).is_some_and(Value::is_string))
    {
        return Err(invalid(
            "request.kind must be an object with string group, version and kind".into(),
        ));
    }
    let operation = str_at(req, "operation").unwrap_or("");
    if !matches!(operation, "CREATE" | "UPDATE" | "DELETE" | "CONNECT") {
        return Err(invalid(format!(
            "request.operation {operation:?} is not CREATE, UPDATE, DELETE or CONNECT"
        )));
    }
    if !matches!(req.get("dryRun"), None | Some(Value::Bool(_))) {
        return Err(invalid("request.dryRun is not a boolean".into()));
    }
    for key in ["namespace", "name", "subResource"] {
        match req.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.len() <= 253 => {}
            Some(_) => {
                return Err(invalid(format!(
                    "request.{key} is not a string of at most 253 characters"
                )))
            }
        }
    }
    let review: AdmissionReview<DynamicObject> = serde_json::from_value(v).map_err(|e| {
        invalid(format!(
            "the request does not read as an AdmissionReview v1 (kube-core): {e}"
        ))
    })?;
    let request: AdmissionRequest<DynamicObject> = review
        .try_into()
        .map_err(|e: kube_core::admission::ConvertAdmissionReviewError| invalid(e.to_string()))?;
    Ok(Review { request })
}

/// Where an image string sits in the pod spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageField {
    Container,
    InitContainer,
    EphemeralContainer,
    /// `volumes[].image.reference`: an OCI artifact (a model) mounted as a volume.
    Volume,
}

impl ImageField {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageField::Container => "container",
            ImageField::InitContainer => "initContainer",
            ImageField::EphemeralContainer => "ephemeralContainer",
            ImageField::Volume => "image volume",
        }
    }
}

/// One image a workload runs or mounts.
#[derive(Clone, Debug)]
pub struct ImageUse {
    /// JSON pointer (RFC 6901) of the image string in the object: what a patch replaces.
    pub pointer: String,
    pub field: ImageField,
    /// Container or volume name, when given.
    pub name: String,
    /// The image string as written.
    pub image: String,
}

impl ImageUse {
    /// `container "app"` etc., for messages.
    pub fn describe(&self) -> String {
        if self.name.is_empty() {
            self.field.as_str().to_string()
        } else {
            format!("{} {:?}", self.field.as_str(), self.name)
        }
    }
}

/// Why the images of an admitted object cannot be read. `at` is the JSON pointer of the
/// offending field.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("the {kind} has no pod spec at {at}")]
    NoPodSpec {
        kind: &'static str,
        at: &'static str,
    },
    #[error("{at} is not a list")]
    NotAList { at: String },
    #[error("{at} ({}) has no image", if name.is_empty() { "unnamed" } else { name })]
    NoImage { at: String, name: String },
    #[error("{at} is not a string")]
    ImageNotString { at: String },
    #[error("{at}.reference is missing or not a string")]
    NoVolumeReference { at: String },
    #[error("{count} image references; at most {MAX_IMAGES} are checked per object")]
    TooManyImages { count: usize },
}

/// Why a Kubernetes image string is not a reference the kubelet could pull.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("empty image reference")]
    Empty,
    #[error("image reference of {len} bytes; at most {MAX_IMAGE_LEN}")]
    TooLong { len: usize },
    #[error("{0:?} contains whitespace or control characters")]
    Whitespace(String),
    #[error("{0:?}: an image reference has no URL scheme")]
    Scheme(String),
    /// The normalised reference does not parse (`why` from the OCI reference parser).
    #[error("{image:?}: {why}")]
    Reference { image: String, why: String },
    #[error(transparent)]
    Oci(Box<crate::oci::Error>),
}

/// Every image of `object` (a `kind` workload): containers, initContainers,
/// ephemeralContainers and `volumes[].image.reference`. A shape the API server would not
/// accept (a list that is not a list, a container without an image) is an error: nothing is
/// skipped silently.
pub fn extract_images(kind: WorkloadKind, object: &Value) -> Result<Vec<ImageUse>, ObjectError> {
    let base = kind.pod_spec_pointer();
    let spec = object
        .pointer(base)
        .filter(|s| s.is_object())
        .ok_or(ObjectError::NoPodSpec {
            kind: kind.as_str(),
            at: base,
        })?;
    let mut out = Vec::new();
    for (key, field) in [
        ("initContainers", ImageField::InitContainer),
        ("containers", ImageField::Container),
        ("ephemeralContainers", ImageField::EphemeralContainer),
    ] {
        let list = match spec.get(key) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(a)) => a,
            Some(_) => {
                return Err(ObjectError::NotAList {
                    at: format!("{base}/{key}"),
                })
            }
        };
        for (i, c) in list.iter().enumerate() {
            let name = str_at(c, "name").unwrap_or("").to_string();
            let image = match c.get("image") {
                Some(Value::String(s)) => s.clone(),
                None | Some(Value::Null) => {
                    return Err(ObjectError::NoImage {
                        at: format!("{base}/{key}/{i}"),
                        name,
                    })
                }
                Some(_) => {
                    return Err(ObjectError::ImageNotString {
                        at: format!("{base}/{key}/{i}/image"),
                    })
                }
            };
            out.push(ImageUse {
                pointer: format!("{base}/{key}/{i}/image"),
                field,
                name,
                image,
            });
        }
    }
    match spec.get("volumes") {
        None | Some(Value::Null) => {}
        Some(Value::Array(vols)) => {
            for (i, v) in vols.iter().enumerate() {
                let Some(img) = v.get("image").filter(|x| !x.is_null()) else {
                    continue;
                };
                let name = str_at(v, "name").unwrap_or("").to_string();
                let image = match img.get("reference") {
                    Some(Value::String(s)) => s.clone(),
                    _ => {
                        return Err(ObjectError::NoVolumeReference {
                            at: format!("{base}/volumes/{i}/image"),
                        })
                    }
                };
                out.push(ImageUse {
                    pointer: format!("{base}/volumes/{i}/image/reference"),
                    field: ImageField::Volume,
                    name,
                    image,
                });
            }
        }
        Some(_) => {
            return Err(ObjectError::NotAList {
                at: format!("{base}/volumes"),
            })
        }
    }
    if out.len() > MAX_IMAGES {
        return Err(ObjectError::TooManyImages { count: out.len() });
    }
    Ok(out)
}

/// Docker Hub's registry API host, as go-containerregistry and cosign name it.
pub const DOCKER_HUB: &str = "index.docker.io";

/// A Kubernetes image string (`nginx`, `ghcr.io/acme/app:v1`, `host:5000/a/b@sha256:…`) as the
/// `oci://` reference the kubelet would pull: Docker Hub for a name without a registry host
/// (`library/` for one-component names), `latest` when neither tag nor digest is given. An
/// `oci://` prefix is accepted too (for `/admit`).
pub fn normalize_image(image: &str) -> Result<Reference, ImageError> {
    if image.is_empty() {
        return Err(ImageError::Empty);
    }
    if image.len() > MAX_IMAGE_LEN {
        return Err(ImageError::TooLong { len: image.len() });
    }
    if image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ImageError::Whitespace(image.into()));
    }
    if image.starts_with(crate::oci::reference::SCHEME) {
        return Reference::parse(image).map_err(|e| ImageError::Oci(Box::new(e)));
    }
    if image.contains("://") {
        return Err(ImageError::Scheme(image.into()));
    }
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let (first, rest) = match name.split_once('/') {
        Some((f, r)) if f.contains('.') || f.contains(':') || f == "localhost" => (Some(f), r),
        _ => (None, name),
    };
    let registry = match first {
        Some("docker.io") | Some("registry-1.docker.io") | None => DOCKER_HUB,
        Some(h) => h,
    };
    let path = if registry == DOCKER_HUB && !rest.contains('/') {
        format!("library/{rest}")
    } else {
        rest.to_string()
    };
    let last = path.rsplit('/').next().unwrap_or("");
    let tagged = last.contains(':');
    let mut s = format!("{}{registry}/{path}", crate::oci::reference::SCHEME);
    if !tagged && digest.is_none() {
        s.push_str(":latest");
    }
    if let Some(d) = digest {
        s.push('@');
        s.push_str(d);
    }
    Reference::parse(&s).map_err(|e| match e {
        crate::oci::Error::Reference { why, .. } => ImageError::Reference {
            image: image.into(),
            why,
        },
        e => ImageError::Oci(Box::new(e)),
    })
}

/// What the webhook answers.
#[derive(Clone, Debug, Default)]
pub struct Answer {
    pub allowed: bool,
    /// Why it was denied (or the allow note); shown to the kubectl user.
    pub message: String,
    pub warnings: Vec<String>,
    /// RFC 6902 operations.
    pub patch: Vec<PatchOperation>,
    pub audit: HashMap<String, String>,
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The AdmissionReview response for `uid`, written with kube-core's `AdmissionResponse`.
///
/// One change to what kube-core serialises: its `patch` is a `Vec<u8>` that serde writes as a
/// JSON array of numbers (kube-rs/kube#1781); the API server's `[]byte` is a base64 string in
/// JSON, so the patch is written base64 (as Go's encoding/json does).
pub fn response(uid: &str, a: &Answer) -> Value {
    // `invalid` is kube-core's constructor that needs no request (a body we could not read as
    // one still gets an answer with its uid); every field is set below.
    let mut r = AdmissionResponse::invalid("");
    r.types = kube_core::TypeMeta {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
    };
    r.uid = uid.to_string();
    r.allowed = a.allowed;
    r.result = if !a.allowed {
        kube_core::Status::failure(&clip(&a.message, MAX_MESSAGE_CHARS), "Forbidden").with_code(403)
    } else if !a.message.is_empty() {
        kube_core::Status::success().with_code(200)
    } else {
        kube_core::Status::default()
    };
    if a.allowed && !a.message.is_empty() {
        r.result.message = clip(&a.message, MAX_MESSAGE_CHARS);
    }
    if !a.warnings.is_empty() {
        let mut w: Vec<String> = a
            .warnings
            .iter()
            .take(MAX_WARNINGS)
            .map(|x| clip(x, MAX_WARNING_CHARS))
            .collect();
        if a.warnings.len() > MAX_WARNINGS {
            w.push(format!(
                "mlsign: {} more warning(s) not shown",
                a.warnings.len() - MAX_WARNINGS
            ));
        }
        r.warnings = Some(w);
    }
    if !a.audit.is_empty() {
        r.audit_annotations = a.audit.clone();
    }
    let mut patched = false;
    if a.allowed && !a.patch.is_empty() {
        match r.clone().with_patch(json_patch::Patch(a.patch.clone())) {
            Ok(with) => {
                r = with;
                patched = true;
            }
            Err(e) => {
                // Cannot happen for replace operations of strings; if it did, the pinning
                // is lost, never the decision.
                let w = r.warnings.get_or_insert_with(Vec::new);
                w.push(clip(
                    &format!("mlsign: digests not pinned: {e}"),
                    MAX_WARNING_CHARS,
                ));
            }
        }
    }
    let patch_b64 = r
        .patch
        .as_ref()
        .filter(|_| patched)
        .map(|p| base64::engine::general_purpose::STANDARD.encode(p));
    let mut v = serde_json::to_value(r.into_review()).unwrap_or_else(|_| {
        // Serialising these types cannot fail; a deny is the fallback all the same.
        json!({"apiVersion": API_VERSION, "kind": KIND, "response": {"uid": uid, "allowed": false,
            "status": {"status": "Failure", "code": 500, "message": "mlsign: internal error writing the response"}}})
    });
    if let (Some(b), Some(resp)) = (patch_b64, v.get_mut("response")) {
        resp["patch"] = Value::String(b);
    }
    v
}

/// A JSON Patch `replace` of the image at `pointer`, pinned to `digest` (`name:tag@digest`:
/// the kubelet pulls by digest, people still read the tag). `None` when the pointer is not a
/// JSON pointer (never: [`extract_images`] builds them from fixed keys and indexes).
pub fn pin_op(u: &ImageUse, digest: &str) -> Option<PatchOperation> {
    let base = u.image.split('@').next().unwrap_or(&u.image);
    Some(PatchOperation::Replace(ReplaceOperation {
        path: PointerBuf::parse(u.pointer.as_str()).ok()?,
        value: Value::String(format!("{base}@{digest}")),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "spec": spec})
    }

    #[test]
    fn normalizes_like_the_kubelet() {
        let d = format!("sha256:{}", "a".repeat(64));
        for (i, want) in [
            (
                "nginx",
                "oci://index.docker.io/library/nginx:latest".to_string(),
            ),
            (
                "nginx:1.25",
                "oci://index.docker.io/library/nginx:1.25".into(),
            ),
            (
                "docker.io/acme/app:v1",
                "oci://index.docker.io/acme/app:v1".into(),
            ),
            ("acme/app", "oci://index.docker.io/acme/app:latest".into()),
            ("ghcr.io/acme/app:v1", "oci://ghcr.io/acme/app:v1".into()),
            ("localhost/app:v1", "oci://localhost/app:v1".into()),
            (
                "127.0.0.1:5000/team/app:v1",
                "oci://127.0.0.1:5000/team/app:v1".into(),
            ),
            (
                &format!("127.0.0.1:5000/team/app@{d}"),
                format!("oci://127.0.0.1:5000/team/app@{d}"),
            ),
            (
                &format!("127.0.0.1:5000/team/app:v1@{d}"),
                format!("oci://127.0.0.1:5000/team/app:v1@{d}"),
            ),
            ("oci://reg.example/m:v1", "oci://reg.example/m:v1".into()),
        ] {
            assert_eq!(normalize_image(i).unwrap().to_string(), want, "{i}");
        }
        for bad in [
            "Nginx",
            "nginx:",
            "nginx@sha256:abc",
            "nginx@md5:00",
            "host:99999/x:v1",
        ] {
            let e = normalize_image(bad).unwrap_err();
            assert!(
                matches!(&e, ImageError::Reference { image, .. } if image == bad),
                "{bad:?}: {e:?}"
            );
        }
        assert!(matches!(normalize_image(""), Err(ImageError::Empty)));
        assert!(matches!(
            normalize_image("a b"),
            Err(ImageError::Whitespace(_))
        ));
        assert!(matches!(
            normalize_image("x\u{0}y"),
            Err(ImageError::Whitespace(_))
        ));
        assert!(matches!(
            normalize_image("http://x/y"),
            Err(ImageError::Scheme(_))
        ));
        assert!(matches!(
            normalize_image("oci://reg.example/Repo:v1"),
            Err(ImageError::Oci(_))
        ));
        assert!(matches!(
            normalize_image(&"a".repeat(600)),
            Err(ImageError::TooLong { len: 600 })
        ));
    }

    #[test]
    fn extracts_every_image_place() {
        let p = pod(json!({
            "initContainers": [{"name": "init", "image": "busybox"}],
            "containers": [{"name": "app", "image": "a:1"}, {"name": "side", "image": "b:2"}],
            "ephemeralContainers": [{"name": "dbg", "image": "c:3"}],
            "volumes": [{"name": "cfg", "configMap": {"name": "x"}},
                        {"name": "model", "image": {"reference": "reg.example/m:v1", "pullPolicy": "IfNotPresent"}}],
        }));
        let v = extract_images(WorkloadKind::Pod, &p).unwrap();
        let got: Vec<(&str, &str)> = v
            .iter()
            .map(|u| (u.pointer.as_str(), u.image.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/spec/initContainers/0/image", "busybox"),
                ("/spec/containers/0/image", "a:1"),
                ("/spec/containers/1/image", "b:2"),
                ("/spec/ephemeralContainers/0/image", "c:3"),
                ("/spec/volumes/1/image/reference", "reg.example/m:v1"),
            ]
        );
        let cj = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "x", "image": "j:1"}]}}}}}});
        let v = extract_images(WorkloadKind::CronJob, &cj).unwrap();
        assert_eq!(
            v[0].pointer,
            "/spec/jobTemplate/spec/template/spec/containers/0/image"
        );
        let d = json!({"spec": {"template": {"spec": {"containers": [{"name": "x", "image": "d:1"}]}}}});
        for k in [
            WorkloadKind::Deployment,
            WorkloadKind::ReplicaSet,
            WorkloadKind::StatefulSet,
            WorkloadKind::DaemonSet,
            WorkloadKind::Job,
        ] {
            assert_eq!(
                extract_images(k, &d).unwrap()[0].pointer,
                "/spec/template/spec/containers/0/image"
            );
        }
    }

    #[test]
    fn odd_shapes_are_errors_not_skips() {
        for (spec, want) in [
            (
                json!({"containers": {"name": "x"}}),
                "/spec/containers is not a list",
            ),
            (
                json!({"containers": [{"name": "x"}]}),
                "/spec/containers/0 (x) has no image",
            ),
            (
                json!({"containers": [{}]}),
                "/spec/containers/0 (unnamed) has no image",
            ),
            (
                json!({"containers": [{"name": "x", "image": 5}]}),
                "/spec/containers/0/image is not a string",
            ),
            (
                json!({"volumes": [{"name": "m", "image": {}}]}),
                "/spec/volumes/0/image.reference is missing or not a string",
            ),
            (json!({"volumes": "x"}), "/spec/volumes is not a list"),
        ] {
            let e = extract_images(WorkloadKind::Pod, &pod(spec.clone())).unwrap_err();
            assert_eq!(e.to_string(), want, "{spec}");
        }
        assert!(matches!(
            extract_images(WorkloadKind::Pod, &json!({"spec": null})),
            Err(ObjectError::NoPodSpec { kind: "Pod", .. })
        ));
        assert!(matches!(
            extract_images(WorkloadKind::Deployment, &pod(json!({"containers": []}))),
            Err(ObjectError::NoPodSpec { .. })
        ));
        let many: Vec<Value> = (0..300)
            .map(|i| json!({"name": format!("c{i}"), "image": "x:1"}))
            .collect();
        assert!(matches!(
            extract_images(WorkloadKind::Pod, &pod(json!({"containers": many}))),
            Err(ObjectError::TooManyImages { count: 300 })
        ));
    }

    #[test]
    fn review_parsing_separates_400_from_deny() {
        let ok = json!({"apiVersion": API_VERSION, "kind": KIND, "request": {
            "uid": "u1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "operation": "CREATE", "namespace": "ns", "dryRun": false, "object": pod(json!({}))}});
        let r = parse_review(&serde_json::to_vec(&ok).unwrap()).unwrap();
        assert_eq!(
            (r.uid(), r.namespace(), r.operation()),
            ("u1", "ns", "CREATE")
        );
        assert!(r.object().pointer("/spec").is_some(), "{:?}", r.object());
        // No uid, truncated, nested, duplicate keys: 400.
        let mut nested = String::new();
        for _ in 0..10_000 {
            nested.push('[');
        }
        let body = serde_json::to_vec(&ok).unwrap();
        for b in [
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}"#
                .to_vec(),
            body[..body.len() / 2].to_vec(),
            nested.into_bytes(),
            br#"{"request":{"uid":"a","uid":"b"}}"#.to_vec(),
            br#"{"request":{"uid":7}}"#.to_vec(),
            b"".to_vec(),
        ] {
            assert!(
                matches!(parse_review(&b), Err(ReviewError::NoUid(_))),
                "{}",
                String::from_utf8_lossy(&b[..b.len().min(80)])
            );
        }
        // A uid but wrong content: deny.
        for (k, v) in [
            ("/apiVersion", json!("admission.k8s.io/v1beta1")),
            ("/kind", json!("Other")),
            ("/request/kind", json!("Pod")),
            ("/request/operation", json!("PATCH")),
            ("/request/dryRun", json!("yes")),
            ("/request/namespace", json!(5)),
            ("/request/name", json!("x".repeat(254))),
            // kube-core is stricter than mlsign's own checks here; the API server never sends
            // these, so they are denied (not a 400: the uid is known).
            ("/request/userInfo", json!(null)),
            ("/request/resource", json!("pods")),
            ("/request/dryRun", json!(null)),
            (
                "/request/object/metadata",
                json!({"labels": ["not", "a", "map"]}),
            ),
            ("/request/object/metadata", json!({"name": 5})),
            ("/request/object", json!([1, 2])),
            ("/request/oldObject", json!("old")),
        ] {
            let mut x = ok.clone();
            match x.pointer_mut(k) {
                Some(slot) => *slot = v,
                None => {
                    let (parent, key) = k.rsplit_once('/').unwrap();
                    x.pointer_mut(parent).unwrap()[key] = v;
                }
            }
            match parse_review(&serde_json::to_vec(&x).unwrap()) {
                Err(ReviewError::Invalid { uid, .. }) => assert_eq!(uid, "u1"),
                other => panic!("{k}: {other:?}"),
            }
        }
    }

    /// A request as kube-apiserver 1.33 sends it for a Pod created by a ReplicaSet (fields the
    /// API server fills in: managedFields, ownerReferences, a null creationTimestamp,
    /// requestKind, options): kube-core's typed reading must accept it.
    #[test]
    fn reads_a_full_api_server_request() {
        let body = r#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"705ab4f5-6393-11e8-b7cc-42010a800002","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"requestKind":{"group":"","version":"v1","kind":"Pod"},"requestResource":{"group":"","version":"v1","resource":"pods"},"name":"","namespace":"ml","operation":"CREATE","userInfo":{"username":"system:serviceaccount:kube-system:replicaset-controller","uid":"2b1e5d2a","groups":["system:serviceaccounts","system:serviceaccounts:kube-system","system:authenticated"],"extra":{"authentication.kubernetes.io/credential-id":["JTI=abc"]}},"object":{"kind":"Pod","apiVersion":"v1","metadata":{"generateName":"bert-5d9c7b8f4-","namespace":"ml","creationTimestamp":null,"labels":{"app":"bert","pod-template-hash":"5d9c7b8f4"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"bert-5d9c7b8f4","uid":"a1b2","controller":true,"blockOwnerDeletion":true}],"managedFields":[{"manager":"kube-controller-manager","operation":"Update","apiVersion":"v1","time":"2025-06-01T10:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:generateName":{}}}}]},"spec":{"volumes":[{"name":"weights","image":{"reference":"ghcr.io/acme/bert:v1","pullPolicy":"IfNotPresent"}},{"name":"kube-api-access-x","projected":{"sources":[{"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}}],"defaultMode":420}}],"containers":[{"name":"app","image":"ghcr.io/acme/app@sha256:0000000000000000000000000000000000000000000000000000000000000000","resources":{"limits":{"cpu":"1","memory":"2Gi"}},"volumeMounts":[{"name":"weights","mountPath":"/models"}],"imagePullPolicy":"IfNotPresent"}],"restartPolicy":"Always","serviceAccountName":"default","priority":0},"status":{}},"oldObject":null,"dryRun":false,"options":{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1","fieldManager":"kube-controller-manager"}}}"#;
        let r = parse_review(body.as_bytes()).unwrap();
        assert_eq!(r.uid(), "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!((r.gvk().kind.as_str(), r.operation()), ("Pod", "CREATE"));
        assert!(r.old_object().is_null() && !r.dry_run());
        let images = extract_images(WorkloadKind::Pod, r.object()).unwrap();
        assert_eq!(images.len(), 2);
        assert_eq!(images[1].image, "ghcr.io/acme/bert:v1");
        // The same body with a duplicate key deep inside the object: refused before kube-core
        // (whose derive would keep one of the two) reads it.
        let dup = body.replacen(r#""name":"app","#, r#""name":"app","image":"evil/x:1","#, 1);
        assert!(matches!(
            parse_review(dup.as_bytes()),
            Err(ReviewError::NoUid(_))
        ));
    }

    #[test]
    fn response_shape() {
        let u = ImageUse {
            pointer: "/spec/containers/0/image".into(),
            field: ImageField::Container,
            name: "app".into(),
            image: "x:v1".into(),
        };
        let a = Answer {
            allowed: true,
            patch: vec![pin_op(&u, "sha256:00").unwrap()],
            warnings: vec!["w".repeat(300)],
            ..Default::default()
        };
        let v = response("u", &a);
        assert_eq!(v["apiVersion"], API_VERSION);
        assert_eq!(v["response"]["uid"], "u");
        assert_eq!(v["response"]["patchType"], "JSONPatch");
        let p = base64::engine::general_purpose::STANDARD
            .decode(v["response"]["patch"].as_str().unwrap())
            .unwrap();
        let ops: Value = serde_json::from_slice(&p).unwrap();
        assert_eq!(
            ops,
            json!([{"op": "replace", "path": "/spec/containers/0/image", "value": "x:v1@sha256:00"}])
        );
        // The patch applies (json-patch, RFC 6902) to the object it came from.
        let mut obj = pod(json!({"containers": [{"name": "app", "image": "x:v1"}]}));
        json_patch::patch(
            &mut obj,
            &serde_json::from_value::<json_patch::Patch>(ops).unwrap(),
        )
        .unwrap();
        assert_eq!(obj["spec"]["containers"][0]["image"], "x:v1@sha256:00");
        // The response reads back as kube-core's type (the patch as base64 is what Go decodes;
        // kube-core itself would expect an array of numbers there, so it is removed first).
        let mut back = v.clone();
        back["response"].as_object_mut().unwrap().remove("patch");
        let r: AdmissionReview<DynamicObject> = serde_json::from_value(back).unwrap();
        assert!(r.response.unwrap().allowed);
        assert_eq!(
            v["response"]["warnings"][0]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            120
        );
        let d = response(
            "u",
            &Answer {
                allowed: false,
                message: "no".into(),
                patch: a.patch.clone(),
                ..Default::default()
            },
        );
        assert_eq!(d["response"]["status"]["code"], 403);
        assert!(
            d["response"].get("patch").is_none(),
            "a deny never carries a patch"
        );
    }
}
