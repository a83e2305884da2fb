//! cosign's formats: the v3 / OCI 1.1 bundle referrer and the legacy `sha256-<hex>.sig`
//! simple-signing image (per the published cosign specification).

use super::client::OCI_MANIFEST;
use super::manifest::{Descriptor, ImageManifest};
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Older spelling some tools still write for the same bundle.
pub const BUNDLE_MEDIA_TYPE_ALT: &str = "application/vnd.dev.sigstore.bundle+json;version=0.3";
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
pub const EMPTY_BLOB: &[u8] = b"{}";
pub const ANN_CONTENT: &str = "dev.sigstore.bundle.content";
pub const ANN_PREDICATE: &str = "dev.sigstore.bundle.predicateType";
pub const ANN_CREATED: &str = "org.opencontainers.image.created";
/// The predicate cosign v3 uses for an image signature.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
pub const SIMPLESIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const ANN_LEGACY_SIGNATURE: &str = "dev.cosignproject.cosign/signature";
pub const SIMPLESIGNING_TYPE: &str = "cosign container image signature";

pub fn is_bundle_media_type(mt: &str) -> bool {
    mt == BUNDLE_MEDIA_TYPE || mt == BUNDLE_MEDIA_TYPE_ALT
}

/// `sha256:abc…` → `sha256-abc…` (referrers tag schema), `.sig` appended for legacy cosign.
pub fn tag_for(digest: &str) -> String {
    digest.replacen(':', "-", 1)
}

/// The in-toto statement signed for an image: subject = the manifest digest, named by the
/// repository (a referrer carries no signed repository identity, so the statement does).
pub fn image_statement(repository: &str, manifest_digest: &str) -> Vec<u8> {
    let hex = manifest_digest.trim_start_matches("sha256:");
    let st = json!({
        "_type": crate::attest::STATEMENT_TYPE,
        "subject": [{"name": repository, "digest": {"sha256": hex}}],
        "predicateType": COSIGN_SIGN_PREDICATE,
        "predicate": {},
    });
    serde_json::to_vec(&st).unwrap_or_default()
}

/// The referrer manifest that stores a bundle (cosign v3 layout).
pub fn bundle_referrer(
    subject: &Descriptor,
    bundle: &Descriptor,
    empty: &Descriptor,
    predicate_type: &str,
    created: &str,
) -> ImageManifest {
    let mut annotations = BTreeMap::new();
    annotations.insert(ANN_CONTENT.to_string(), "dsse-envelope".to_string());
    annotations.insert(ANN_PREDICATE.to_string(), predicate_type.to_string());
    annotations.insert(ANN_CREATED.to_string(), created.to_string());
    ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.into()),
        artifact_type: Some(BUNDLE_MEDIA_TYPE.into()),
        config: empty.clone(),
        layers: vec![bundle.clone()],
        subject: Some(Descriptor {
            annotations: BTreeMap::new(),
            artifact_type: None,
            ..subject.clone()
        }),
        annotations,
    }
}

/// The simple-signing payload cosign signs for `digest` of `repository`.
pub fn simple_signing_payload(repository: &str, digest: &str) -> Vec<u8> {
    let v = json!({
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": digest},
            "type": SIMPLESIGNING_TYPE,
        },
        "optional": null,
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Why a signed simple-signing payload is not acceptable.
#[derive(Debug, thiserror::Error)]
pub enum SimpleSigningError {
    /// Not JSON, or JSON with a duplicate key (what is signed must read one way only).
    #[error("payload is not JSON: {0}")]
    NotJson(String),
    #[error("payload has no \"critical\"")]
    NoCritical,
    #[error("critical.type is {0:?}, not {SIMPLESIGNING_TYPE:?}")]
    Type(String),
    #[error("critical.image.docker-manifest-digest is missing")]
    NoDigest,
}

/// `(docker-reference, docker-manifest-digest)` of a simple-signing payload.
pub fn parse_simple_signing(payload: &[u8]) -> Result<(String, String), SimpleSigningError> {
    let v: Value = crate::json::value_from_slice(payload)
        .map_err(|e| SimpleSigningError::NotJson(e.to_string()))?;
    let crit = v.get("critical").ok_or(SimpleSigningError::NoCritical)?;
    let t = crit.get("type").and_then(Value::as_str).unwrap_or("");
    if t != SIMPLESIGNING_TYPE {
        return Err(SimpleSigningError::Type(t.into()));
    }
    let digest = crit
        .get("image")
        .and_then(|i| i.get("docker-manifest-digest"))
        .and_then(Value::as_str)
        .ok_or(SimpleSigningError::NoDigest)?;
    let reference = crit
        .get("identity")
        .and_then(|i| i.get("docker-reference"))
        .and_then(Value::as_str)
        .unwrap_or("");
    Ok((reference.to_string(), digest.to_string()))
}

/// The config blob of a legacy `.sig` image (cosign writes an image config whose rootfs lists
/// the payload layers).
pub fn legacy_config(layer_digests: &[String]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": "",
        "os": "",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": layer_digests},
    }))
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_signing_roundtrip_and_spec_example() {
        let d = format!("sha256:{}", "a".repeat(64));
        let p = simple_signing_payload("reg/x", &d);
        assert_eq!(parse_simple_signing(&p).unwrap(), ("reg/x".into(), d));
        // The example payload of the cosign signature specification (SIGNATURE_SPEC.md).
        let spec = br#"{"critical":{"identity":{"docker-reference":"us.gcr.io/dlorenc-vmtest2/demo"},"image":{"docker-manifest-digest":"sha256:97fc222cee7991b5b061d4d4afdb5f3428fcb0c9054e1690313786befa1e4e36"},"type":"cosign container image signature"},"optional":null}"#;
        let (r, d) = parse_simple_signing(spec).unwrap();
        assert_eq!(r, "us.gcr.io/dlorenc-vmtest2/demo");
        assert!(d.ends_with("4e36"));
        assert!(matches!(
            parse_simple_signing(br#"{"critical":{"type":"x"}}"#),
            Err(SimpleSigningError::Type(_))
        ));
        assert!(matches!(
            parse_simple_signing(b"{}"),
            Err(SimpleSigningError::NoCritical)
        ));
        assert!(matches!(
            parse_simple_signing(br#"{"critical":{"type":"cosign container image signature"}}"#),
            Err(SimpleSigningError::NoDigest)
        ));
        // Two digests in one signed payload: refused, not read as the last one.
        let dup = br#"{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"sha256:aa","docker-manifest-digest":"sha256:bb"},"type":"cosign container image signature"}}"#;
        assert!(matches!(
            parse_simple_signing(dup),
            Err(SimpleSigningError::NotJson(_))
        ));
    }

    #[test]
    fn tags() {
        assert_eq!(tag_for("sha256:ab"), "sha256-ab");
    }
}
