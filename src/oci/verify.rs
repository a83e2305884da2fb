//! Verifying a registry reference: resolve it to the current manifest digest, discover every
//! signature (referrers API, else the referrers tag schema, then legacy cosign `.sig`), inspect
//! each candidate manifest itself (an index's artifactType is not trusted), and pass only when
//! a signature that verifies covers this digest in this repository. For model artifacts an OMS
//! signature must also match the artifact's `filepath → digest` set, which needs the manifest
//! alone: no layer is fetched.

use super::client::Client;
use super::manifest::{index_entries, ImageManifest};
use super::model::{layout, ModelFormat};
use super::reference::Reference;
use super::{cosign, Error, Options, REPOSITORY_ANNOTATION};
use crate::attest::statement::{parse_model_statement, SignedManifest};
use crate::attest::{bundle::Bundle, verify_bundle_bytes, Trust};
use crate::digest::{diff, Difference, HashAlgorithm, Manifest, Method, Resource};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Candidates looked at, at most (a referrers list is attacker-controlled).
pub const MAX_CANDIDATES: usize = 64;

/// One signature found for the reference, and what became of it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Candidate {
    /// `referrers API`, `referrers tag schema` or `legacy cosign .sig`.
    pub source: &'static str,
    /// The referrer manifest digest, or `TAG layer N` for legacy signatures.
    pub manifest: String,
    /// `image signature`, `model signature (OMS)`, `simple signing` or `not a signature`.
    pub kind: String,
    pub verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    #[serde(skip)]
    signed: Option<SignedManifest>,
}

impl Candidate {
    fn new(source: &'static str, manifest: impl Into<String>) -> Candidate {
        Candidate {
            source,
            manifest: manifest.into(),
            kind: "signature".into(),
            verified: false,
            code: None,
            reason: None,
            method: None,
            signer: None,
            signed: None,
        }
    }

    fn reject(mut self, code: &'static str, why: impl Into<String>) -> Candidate {
        self.code = Some(code);
        self.reason = Some(why.into());
        self.verified = false;
        self
    }
}

/// The result of verifying a reference.
#[derive(Debug, serde::Serialize)]
pub struct VerifyOutcome {
    pub reference: String,
    pub repository: String,
    /// The digest that was verified (what the reference names now).
    pub digest: String,
    pub media_type: String,
    /// Model artifact format, when it is one.
    pub model: Option<ModelFormat>,
    /// Files in a model artifact (raw layers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_files: Option<usize>,
    pub verified: bool,
    /// Index into `candidates` of the first signature that verified.
    pub verified_by: Option<usize>,
    pub candidates: Vec<Candidate>,
    /// What each discovery step found.
    pub discovery: Vec<String>,
    /// Registry response bytes read (manifests, indexes, bundles; never a model layer).
    pub bytes_read: u64,
    #[serde(skip)]
    file_map: Option<BTreeMap<String, String>>,
}

impl VerifyOutcome {
    pub fn verified_candidate(&self) -> Option<&Candidate> {
        self.verified_by.and_then(|i| self.candidates.get(i))
    }
}

/// Errors that mean the registry could not be asked (exit 2), as opposed to a candidate that
/// is wrong (a rejected signature, exit 1).
fn fatal(e: &Error) -> bool {
    matches!(
        e,
        Error::Unreachable { .. }
            | Error::Timeout { .. }
            | Error::Unauthorized { .. }
            | Error::Forbidden { .. }
            | Error::Insecure { .. }
            | Error::Credentials(_)
    )
}

/// Verify `r` against `trust`.
pub fn verify_reference(
    r: &Reference,
    trust: &Trust,
    opts: &Options,
) -> Result<VerifyOutcome, Error> {
    let client = Client::new(r, opts)?;
    verify_with(&client, r, trust)
}

pub(crate) fn verify_with(
    client: &Client,
    r: &Reference,
    trust: &Trust,
) -> Result<VerifyOutcome, Error> {
    let fetched = client.get_manifest(r, "resolve reference")?;
    let digest = fetched.digest.clone();
    let what = r.to_string();
    // An image manifest may be a model artifact; an index (multi-platform image) is signed as is.
    let (model, file_map, model_err) = if super::manifest::is_index(&fetched.media_type) {
        (None, None, None)
    } else {
        match ImageManifest::parse(&fetched.bytes, &what) {
            Ok(m) => match layout(&m) {
                Some(l) => {
                    let fm = l.file_map(&what);
                    match fm {
                        Ok(map) => (Some(l.format), Some(map), None),
                        Err(e) => (Some(l.format), None, Some(e.to_string())),
                    }
                }
                None => (None, None, None),
            },
            Err(e) => (None, None, Some(e.to_string())),
        }
    };
    let mut out = VerifyOutcome {
        reference: r.to_string(),
        repository: r.repository_name(),
        digest: digest.clone(),
        media_type: fetched.media_type.clone(),
        model,
        model_files: file_map.as_ref().map(BTreeMap::len),
        verified: false,
        verified_by: None,
        candidates: Vec::new(),
        discovery: Vec::new(),
        bytes_read: 0,
        file_map: None,
    };
    if let Some(e) = &model_err {
        out.discovery.push(format!("model layout: {e}"));
    }
    // 1. referrers API, 2. tag schema when the API is missing.
    let mut seen = BTreeSet::new();
    let mut entries: Vec<(
        &'static str,
        Result<super::manifest::Descriptor, super::manifest::EntryError>,
    )> = Vec::new();
    match client.referrers(&r.repository, &digest, "referrers API")? {
        Some(bytes) => {
            let e = index_entries(&bytes, "referrers API answer")?;
            out.discovery
                .push(format!("referrers API: {} entries", e.len()));
            entries.extend(e.into_iter().map(|x| ("referrers API", x)));
        }
        None => {
            out.discovery
                .push("referrers API: not supported by this registry".into());
            let tag = cosign::tag_for(&digest);
            match client.get_manifest_opt(&r.at_tag(&tag), "referrers tag schema")? {
                Some(f) => match index_entries(&f.bytes, &format!("referrers tag {tag}")) {
                    Ok(e) => {
                        out.discovery
                            .push(format!("referrers tag schema {tag}: {} entries", e.len()));
                        entries.extend(e.into_iter().map(|x| ("referrers tag schema", x)));
                    }
                    Err(e) => out
                        .discovery
                        .push(format!("referrers tag schema {tag}: {e}")),
                },
                None => out
                    .discovery
                    .push(format!("referrers tag schema {tag}: none")),
            }
        }
    }
    for (source, entry) in entries.into_iter() {
        if out.candidates.len() >= MAX_CANDIDATES {
            out.discovery.push(format!(
                "more than {MAX_CANDIDATES} referrers; the rest were not inspected"
            ));
            break;
        }
        let c = match entry {
            Err(why) => Candidate::new(source, "(invalid entry)").reject("OCI005", why.to_string()),
            Ok(d) => {
                if !seen.insert(d.digest.clone()) {
                    continue;
                }
                bundle_candidate(
                    client,
                    r,
                    &digest,
                    &d.digest,
                    file_map.as_ref(),
                    model_err.as_deref(),
                    trust,
                    source,
                )?
            }
        };
        if c.kind == "not a signature" {
            out.discovery.push(format!(
                "{}: {} is not a signature ({})",
                c.source,
                c.manifest,
                c.reason.clone().unwrap_or_default()
            ));
            continue;
        }
        out.candidates.push(c);
    }
    // 3. legacy cosign signatures.
    let legacy = legacy_candidates(client, r, &digest, trust, &mut out.discovery)?;
    out.candidates.extend(legacy);
    out.verified_by = out.candidates.iter().position(|c| c.verified);
    out.verified = out.verified_by.is_some();
    out.file_map = file_map;
    out.bytes_read = client.bytes_read();
    Ok(out)
}

/// Why a verified referrer's payload is not an in-toto statement (SIG008).
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("payload type {0:?} is not an in-toto statement")]
    PayloadType(String),
    #[error("signed payload is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("signed payload is not an in-toto Statement v1 (_type {0})")]
    NotStatement(Value),
}

fn in_toto_payload(vp: &crate::attest::VerifiedPayload) -> Result<Value, PayloadError> {
    if vp.payload_type != crate::attest::bundle::IN_TOTO_PAYLOAD_TYPE {
        return Err(PayloadError::PayloadType(vp.payload_type.clone()));
    }
    let v: Value = serde_json::from_slice(&vp.payload).map_err(PayloadError::NotJson)?;
    if v.get("_type").and_then(Value::as_str) != Some(crate::attest::STATEMENT_TYPE) {
        return Err(PayloadError::NotStatement(
            v.get("_type").cloned().unwrap_or(Value::Null),
        ));
    }
    Ok(v)
}

#[allow(clippy::too_many_arguments)]
fn bundle_candidate(
    client: &Client,
    r: &Reference,
    digest: &str,
    referrer: &str,
    file_map: Option<&BTreeMap<String, String>>,
    model_err: Option<&str>,
    trust: &Trust,
    source: &'static str,
) -> Result<Candidate, Error> {
    let c = Candidate::new(source, referrer);
    let at = r.at_digest(referrer);
    let m = match client
        .get_manifest(&at, "fetch referrer")
        .and_then(|f| ImageManifest::parse(&f.bytes, &format!("referrer {referrer}")))
    {
        Ok(m) => m,
        Err(e) if fatal(&e) => return Err(e),
        Err(e) => return Ok(c.reject("OCI005", e.to_string())),
    };
    // Inspect the manifest itself: the index entry's artifactType may be wrong (cosign #4422).
    let Some(layer) = m
        .layers
        .iter()
        .find(|l| cosign::is_bundle_media_type(&l.media_type))
    else {
        let mut c = c;
        c.kind = "not a signature".into();
        c.reason = Some(format!("artifact type {}", m.kind()));
        return Ok(c);
    };
    if m.subject.as_ref().map(|s| s.digest.as_str()) != Some(digest) {
        return Ok(c.reject(
            "OCI002",
            format!(
                "the referrer's subject is {}, not {digest}",
                m.subject.as_ref().map_or("missing", |s| s.digest.as_str())
            ),
        ));
    }
    let bytes = match client.get_blob_small(
        &r.repository,
        &layer.digest,
        layer.size,
        "fetch signature bundle",
    ) {
        Ok(b) => b,
        Err(e) if fatal(&e) => return Err(e),
        Err(e) => return Ok(c.reject("OCI005", e.to_string())),
    };
    let label = Path::new(referrer);
    let bundle = match Bundle::parse(&bytes, label) {
        Ok(b) => b,
        Err(e) => return Ok(c.reject("OCI005", e.to_string())),
    };
    let vp = match verify_bundle_bytes(&bundle, &bytes, label, trust, false) {
        Ok(vp) => vp,
        Err(crate::attest::Error::Rejected { code, message }) => return Ok(c.reject(code, message)),
        Err(e) => return Ok(c.reject("OCI005", e.to_string())),
    };
    let mut c = c;
    c.method = Some(vp.method);
    c.signer = Some(vp.signer.clone());
    let st = match in_toto_payload(&vp) {
        Ok(v) => v,
        Err(why) => return Ok(c.reject("SIG008", why.to_string())),
    };
    let pt = st
        .get("predicateType")
        .and_then(Value::as_str)
        .unwrap_or("");
    let repo = r.repository_name();
    if pt == crate::attest::PREDICATE_V1 || pt == crate::attest::PREDICATE_V01 {
        c.kind = "model signature (OMS)".into();
        let recorded = st
            .get("subject")
            .and_then(|s| s.get(0))
            .and_then(|s| s.get("annotations"))
            .and_then(|a| a.get(REPOSITORY_ANNOTATION))
            .and_then(Value::as_str);
        match recorded {
            Some(x) if x == repo => {}
            Some(x) => {
                return Ok(c.reject("OCI003", format!("the signature was made for repository {x}, not {repo}")))
            }
            None => {
                return Ok(c.reject(
                    "OCI003",
                    format!("the model signature does not record a repository ({REPOSITORY_ANNOTATION}); it cannot be bound to {repo}"),
                ))
            }
        }
        let signed = match parse_model_statement(&vp.payload) {
            Ok(s) => s,
            Err(why) => return Ok(c.reject("SIG008", why.to_string())),
        };
        let Some(map) = file_map else {
            return Ok(c.reject(
                "OCI004",
                format!(
                    "a model signature, but the artifact's files cannot be listed from its manifest: {}",
                    model_err.unwrap_or("not a model artifact")
                ),
            ));
        };
        if signed.config.algorithm != HashAlgorithm::Sha256 || signed.config.method != Method::Files
        {
            return Ok(c.reject(
                "OCI004",
                "the model was signed with shards or a non-SHA-256 digest; layer digests can only be compared with per-file SHA-256 manifests",
            ));
        }
        let diffs = diff(&signed.manifest, &map_manifest(map));
        if !diffs.is_empty() {
            return Ok(c.reject("OCI004", describe(&diffs)));
        }
        c.signed = Some(signed);
        c.verified = true;
        return Ok(c);
    }
    c.kind = "image signature".into();
    let hex = digest.trim_start_matches("sha256:");
    let subjects = st
        .get("subject")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mine = subjects.iter().find(|s| {
        s.get("digest")
            .and_then(|d| d.get("sha256"))
            .and_then(Value::as_str)
            == Some(hex)
    });
    let Some(s) = mine else {
        let other = subjects
            .first()
            .and_then(|s| s.get("digest"))
            .and_then(|d| d.get("sha256"))
            .and_then(Value::as_str)
            .unwrap_or("nothing");
        return Ok(c.reject(
            "OCI002",
            format!("the signature covers sha256:{other}, not the current digest {digest} (the tag moved, or it signs another artifact)"),
        ));
    };
    let name = s.get("name").and_then(Value::as_str).unwrap_or("");
    if name != repo {
        return Ok(c.reject(
            "OCI003",
            format!("the signature was made for repository {name:?}, not {repo}"),
        ));
    }
    c.verified = true;
    Ok(c)
}

fn map_manifest(map: &BTreeMap<String, String>) -> Manifest {
    Manifest::from_resources(
        map.iter()
            .map(|(p, d)| Resource {
                name: p.clone(),
                algorithm: "sha256".into(),
                digest: hex::decode(d).unwrap_or_default(),
            })
            .collect(),
    )
}

fn describe(d: &[Difference]) -> String {
    let parts: Vec<String> = d
        .iter()
        .take(8)
        .map(|x| match x {
            Difference::Modified { .. } => format!("{} differs", x.path()),
            Difference::Missing { .. } => format!("{} is missing", x.path()),
            Difference::Extra { .. } => format!("{} is not signed", x.path()),
            Difference::Renamed { from, .. } => format!("{} was renamed from {from}", x.path()),
        })
        .collect();
    let more = if d.len() > 8 {
        format!(" (+{} more)", d.len() - 8)
    } else {
        String::new()
    };
    format!(
        "the artifact's files differ from the signed manifest: {}{more}",
        parts.join(", ")
    )
}

fn legacy_candidates(
    client: &Client,
    r: &Reference,
    digest: &str,
    trust: &Trust,
    discovery: &mut Vec<String>,
) -> Result<Vec<Candidate>, Error> {
    let tag = format!("{}.sig", cosign::tag_for(digest));
    let source = "legacy cosign .sig";
    let f = match client.get_manifest_opt(&r.at_tag(&tag), "legacy cosign signature") {
        Ok(Some(f)) => f,
        Ok(None) => {
            discovery.push(format!("legacy cosign {tag}: none"));
            return Ok(Vec::new());
        }
        Err(e) if fatal(&e) => return Err(e),
        Err(e) => {
            return Ok(vec![
                Candidate::new(source, tag).reject("OCI005", e.to_string())
            ]);
        }
    };
    let m = match ImageManifest::parse(&f.bytes, &tag) {
        Ok(m) => m,
        Err(e) => {
            return Ok(vec![
                Candidate::new(source, tag).reject("OCI005", e.to_string())
            ])
        }
    };
    discovery.push(format!("legacy cosign {tag}: {} layers", m.layers.len()));
    let mut out = Vec::new();
    for (i, l) in m.layers.iter().enumerate().take(MAX_CANDIDATES) {
        let mut c = Candidate::new(source, format!("{tag} layer {i}"));
        c.kind = "simple signing".into();
        if l.media_type != cosign::SIMPLESIGNING_MEDIA_TYPE {
            out.push(c.reject(
                "OCI005",
                format!("layer media type {:?} is not simple signing", l.media_type),
            ));
            continue;
        }
        let Some(sig) = l
            .annotations
            .get(cosign::ANN_LEGACY_SIGNATURE)
            .map(String::as_str)
            .and_then(crate::attest::bundle::unb64)
        else {
            out.push(c.reject(
                "OCI005",
                format!("no base64 {} annotation", cosign::ANN_LEGACY_SIGNATURE),
            ));
            continue;
        };
        let key = match trust {
            Trust::Key(k) => k,
            Trust::Roots(_) | Trust::Keyless(_) => {
                out.push(c.reject(
                    "OCI005",
                    "legacy cosign signatures are checked with --key only (certificate and keyless annotations are not supported)",
                ));
                continue;
            }
        };
        let payload = match client.get_blob_small(
            &r.repository,
            &l.digest,
            l.size,
            "fetch simple-signing payload",
        ) {
            Ok(p) => p,
            Err(e) if fatal(&e) => return Err(e),
            Err(e) => {
                out.push(c.reject("OCI005", e.to_string()));
                continue;
            }
        };
        c.method = Some("key");
        c.signer = Some(key.hint());
        if !key.verify(&payload, &sig) {
            out.push(c.reject(
                "SIG005",
                "the simple-signing signature does not verify with the given key",
            ));
            continue;
        }
        match cosign::parse_simple_signing(&payload) {
            Err(why) => out.push(c.reject("SIG008", why.to_string())),
            Ok((_, d)) if d != digest => out.push(c.reject(
                "OCI002",
                format!("the signature covers {d}, not the current digest {digest}"),
            )),
            Ok((reference, _)) if reference != r.repository_name() => out.push(c.reject(
                "OCI003",
                format!(
                    "the signature names repository {reference:?}, not {}",
                    r.repository_name()
                ),
            )),
            Ok(_) => {
                c.verified = true;
                out.push(c);
            }
        }
    }
    Ok(out)
}

/// `verify DIR --against oci://…`.
#[derive(Debug, serde::Serialize)]
pub struct DirOutcome {
    pub registry: VerifyOutcome,
    pub differences: Vec<Difference>,
    pub files_checked: usize,
    pub bytes: u64,
}

/// Verify the registry artifact, then the local directory against what its signature covers:
/// the signed OMS manifest, or (for a manifest signature) the artifact's raw layers.
pub fn verify_dir_against(
    dir: &Path,
    r: &Reference,
    trust: &Trust,
    opts: &Options,
) -> Result<DirOutcome, Error> {
    let registry = verify_reference(r, trust, opts)?;
    let root = std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
    let mut out = DirOutcome {
        registry,
        differences: Vec::new(),
        files_checked: 0,
        bytes: 0,
    };
    let Some(c) = out.registry.verified_candidate() else {
        return Ok(out);
    };
    let (expected, config) = match (&c.signed, &out.registry.file_map) {
        (Some(s), _) => (s.manifest.clone(), s.config.clone()),
        (None, Some(map)) => (
            map_manifest(map),
            crate::digest::HashConfig {
                ignore_paths: crate::digest::GIT_PATHS
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                ..Default::default()
            },
        ),
        (None, None) => return Err(Error::NotAModel(
            r.to_string(),
            "its signature covers an image, not a list of model files to compare with a directory"
                .into(),
        )),
    };
    let actual = Manifest::from_path(&root, &config)?;
    out.differences = diff(&expected, &actual);
    out.files_checked = actual.file_count;
    out.bytes = actual.total_bytes;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(payload_type: &str, payload: &[u8]) -> crate::attest::VerifiedPayload {
        crate::attest::VerifiedPayload {
            payload_type: payload_type.into(),
            payload: payload.to_vec(),
            method: "key",
            signer: "k".into(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn referrer_payloads_that_are_not_statements_name_why() {
        let intoto = crate::attest::bundle::IN_TOTO_PAYLOAD_TYPE;
        let e = in_toto_payload(&payload("application/json", b"{}")).unwrap_err();
        assert!(
            matches!(&e, PayloadError::PayloadType(t) if t == "application/json"),
            "{e:?}"
        );
        let e = in_toto_payload(&payload(intoto, b"{\"_type\":")).unwrap_err();
        assert!(matches!(e, PayloadError::NotJson(_)), "{e:?}");
        let e = in_toto_payload(&payload(
            intoto,
            br#"{"_type":"https://in-toto.io/Statement/v0.1"}"#,
        ))
        .unwrap_err();
        assert!(
            matches!(&e, PayloadError::NotStatement(t) if t == "https://in-toto.io/Statement/v0.1"),
            "{e:?}"
        );
        assert!(e.to_string().contains("not an in-toto Statement v1"), "{e}");
        let st = format!(r#"{{"_type":"{}"}}"#, crate::attest::STATEMENT_TYPE);
        assert!(in_toto_payload(&payload(intoto, st.as_bytes())).is_ok());
    }
}
