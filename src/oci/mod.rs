//! Registries: sign and verify `oci://` references by manifest digest (cosign v3 bundle
//! referrers, the referrers tag schema for registries without the referrers API, legacy cosign
//! `.sig` images), and models as OCI artifacts (CNCF ModelPack push/pull, KitOps pull,
//! manifest-only verification against a signed OMS manifest).
//!
//! Entry points: [`sign_reference`], [`verify_reference`], [`push_model`], [`pull_model`],
//! [`verify_dir_against`]. The client is blocking (ureq + rustls with ring); see docs/oci.md for
//! why not `oci-client`.

pub mod auth;
pub mod client;
pub mod cosign;
mod error;
pub mod manifest;
pub mod model;
pub mod reference;
mod report;
mod untar;
pub mod verify;

pub use client::Options;
pub use error::Error;
pub use model::{pull_model, push_model, push_model_with, ModelFormat, PullOutcome, PushOutcome};
pub use reference::{is_oci, Reference};
pub use report::{DirReport, PullReport};
pub use verify::{verify_dir_against, verify_reference, Candidate, DirOutcome, VerifyOutcome};

use client::{Client, OCI_INDEX, OCI_MANIFEST};
use manifest::{to_bytes, Descriptor};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Subject annotation binding an OMS statement to the repository it was pushed to (a referrer
/// carries no signed repository identity). model_signing ignores it.
pub const REPOSITORY_ANNOTATION: &str = "mlsign.dev/oci-repository";

/// Where a signature was stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AttachOutcome {
    /// Digest of the referrer manifest holding the bundle.
    pub signature: String,
    /// `referrers API` or `referrers tag schema (sha256-…)`.
    pub stored: String,
    /// The legacy cosign tag written with `--cosign-compat`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy_tag: Option<String>,
}

/// What `sign oci://…` did.
#[derive(Debug, serde::Serialize)]
pub struct SignOutcome {
    pub reference: String,
    pub repository: String,
    pub digest: String,
    pub media_type: String,
    #[serde(flatten)]
    pub attach: AttachOutcome,
    pub signer: String,
}

/// The OMS statement of a model directory, its subject annotated with the repository.
pub fn oms_statement_for(
    name: &str,
    manifest: &crate::digest::Manifest,
    config: &crate::digest::HashConfig,
    repository: &str,
) -> Vec<u8> {
    let payload = crate::attest::statement::model_statement(
        name,
        crate::attest::SubjectKind::Model,
        manifest,
        config,
    );
    let Ok(mut v) = serde_json::from_slice::<Value>(&payload) else {
        return payload;
    };
    if let Some(a) = v
        .get_mut("subject")
        .and_then(|s| s.get_mut(0))
        .and_then(|s| s.get_mut("annotations"))
        .and_then(Value::as_object_mut)
    {
        a.insert(REPOSITORY_ANNOTATION.into(), json!(repository));
    }
    let mut out = serde_json::to_vec_pretty(&v).unwrap_or(payload);
    out.push(b'\n');
    out
}

/// Add `desc` to the referrers tag-schema index `sha256-<hex>` of `subject` by
/// read-modify-write, keeping every other entry (and unknown fields) as they were. The write
/// is re-read to make sure a concurrent writer did not drop ours.
fn add_to_tag_index(
    client: &Client,
    r: &Reference,
    subject: &str,
    desc: &Descriptor,
) -> Result<String, Error> {
    let tag = cosign::tag_for(subject);
    let step = format!("referrers tag schema {tag}");
    for _ in 0..3 {
        let mut v = match client.get_manifest_opt(&r.at_tag(&tag), &step)? {
            Some(f) => {
                let v: Value = serde_json::from_slice(&f.bytes).map_err(|e| {
                    Error::malformed(&step, format!("existing index is not JSON: {e}"))
                })?;
                let mt = v.get("mediaType").and_then(Value::as_str).unwrap_or("");
                if mt != OCI_INDEX || !v.get("manifests").is_some_and(Value::is_array) {
                    return Err(Error::malformed(
                        &step,
                        format!("tag {tag} holds something other than an OCI image index ({mt:?}); not overwriting it"),
                    ));
                }
                v
            }
            None => json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}),
        };
        let list = v
            .get_mut("manifests")
            .and_then(Value::as_array_mut)
            .ok_or_else(|| Error::malformed(&step, "manifests is not an array"))?;
        let present = |l: &Vec<Value>| {
            l.iter()
                .any(|m| m.get("digest").and_then(Value::as_str) == Some(desc.digest.as_str()))
        };
        if present(list) {
            return Ok(tag);
        }
        list.push(serde_json::to_value(desc).unwrap_or_default());
        let bytes = serde_json::to_vec(&v).unwrap_or_default();
        client.put_manifest(&r.repository, &tag, OCI_INDEX, &bytes, &step)?;
        if let Some(f) = client.get_manifest_opt(&r.at_tag(&tag), &step)? {
            let again: Value = serde_json::from_slice(&f.bytes).unwrap_or_default();
            if again
                .get("manifests")
                .and_then(Value::as_array)
                .is_some_and(present)
            {
                return Ok(tag);
            }
        }
    }
    Err(Error::malformed(
        &step,
        "another writer kept replacing the index; try again",
    ))
}

/// Store a bundle as a cosign v3 / OCI 1.1 referrer of `subject`.
pub(crate) fn attach_bundle(
    client: &Client,
    r: &Reference,
    subject: &Descriptor,
    bundle: &[u8],
    predicate_type: &str,
) -> Result<AttachOutcome, Error> {
    let repo = &r.repository;
    let empty_digest = client.push_blob_bytes(repo, cosign::EMPTY_BLOB, "push empty config")?;
    let bundle_digest = client.push_blob_bytes(repo, bundle, "push signature bundle")?;
    let empty = Descriptor {
        media_type: cosign::EMPTY_MEDIA_TYPE.into(),
        digest: empty_digest,
        size: cosign::EMPTY_BLOB.len() as u64,
        artifact_type: None,
        annotations: BTreeMap::new(),
    };
    let layer = Descriptor {
        media_type: cosign::BUNDLE_MEDIA_TYPE.into(),
        digest: bundle_digest,
        size: bundle.len() as u64,
        artifact_type: None,
        annotations: BTreeMap::new(),
    };
    let created = model::now_rfc3339();
    let m = cosign::bundle_referrer(subject, &layer, &empty, predicate_type, &created);
    let bytes = to_bytes(&m);
    let digest = client::sha256_digest(&bytes);
    let native = client.put_manifest(
        repo,
        &digest,
        OCI_MANIFEST,
        &bytes,
        "push signature referrer",
    )?;
    let stored = if native {
        "referrers API".to_string()
    } else {
        let desc = Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: digest.clone(),
            size: bytes.len() as u64,
            artifact_type: m.artifact_type.clone(),
            annotations: m.annotations.clone(),
        };
        let tag = add_to_tag_index(client, r, &subject.digest, &desc)?;
        format!("referrers tag schema ({tag})")
    };
    Ok(AttachOutcome {
        signature: digest,
        stored,
        legacy_tag: None,
    })
}

/// Append a simple-signing layer to the legacy cosign `sha256-<hex>.sig` image.
fn attach_legacy(
    client: &Client,
    r: &Reference,
    digest: &str,
    signer: &crate::attest::Signer,
) -> Result<String, Error> {
    let repo = &r.repository;
    let tag = format!("{}.sig", cosign::tag_for(digest));
    let step = format!("legacy cosign signature {tag}");
    let payload = cosign::simple_signing_payload(&r.repository_name(), digest);
    let sig = crate::attest::bundle::b64(&signer.sign_raw(&payload)?);
    let payload_digest = client.push_blob_bytes(repo, &payload, &step)?;
    let mut layers: Vec<Descriptor> = match client.get_manifest_opt(&r.at_tag(&tag), &step)? {
        Some(f) => manifest::ImageManifest::parse(&f.bytes, &step)?.layers,
        None => Vec::new(),
    };
    let mut ann = BTreeMap::new();
    ann.insert(cosign::ANN_LEGACY_SIGNATURE.to_string(), sig);
    layers.push(Descriptor {
        media_type: cosign::SIMPLESIGNING_MEDIA_TYPE.into(),
        digest: payload_digest,
        size: payload.len() as u64,
        artifact_type: None,
        annotations: ann,
    });
    let diff_ids: Vec<String> = layers.iter().map(|l| l.digest.clone()).collect();
    let cfg = cosign::legacy_config(&diff_ids);
    let cfg_digest = client.push_blob_bytes(repo, &cfg, &step)?;
    let m = manifest::ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor {
            media_type: "application/vnd.oci.image.config.v1+json".into(),
            digest: cfg_digest,
            size: cfg.len() as u64,
            artifact_type: None,
            annotations: BTreeMap::new(),
        },
        layers,
        subject: None,
        annotations: BTreeMap::new(),
    };
    client.put_manifest(repo, &tag, OCI_MANIFEST, &to_bytes(&m), &step)?;
    Ok(tag)
}

/// Turns an in-toto statement into a Sigstore bundle (JSON): a key or certificate
/// [`crate::attest::Signer`], or a [`KeylessSigner`].
pub trait StatementSigner {
    /// The bundle JSON over `payload` (`application/vnd.in-toto+json`).
    fn bundle_for(&self, payload: &[u8]) -> Result<Vec<u8>, Error>;
    /// Who signs, for reports: a key hint, or the keyless token's issuer.
    fn signer(&self) -> String;
}

impl StatementSigner for crate::attest::Signer {
    fn bundle_for(&self, payload: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(crate::attest::sign_statement(self, payload)?.to_json())
    }
    fn signer(&self) -> String {
        self.verifying_key().hint()
    }
}

/// Keyless signing for registry references: an OIDC token, the Sigstore services, and the
/// trusted root each new bundle is verified against before it is attached.
pub struct KeylessSigner<'a> {
    pub token: &'a crate::attest::sigstore::sign::IdentityToken,
    pub services: &'a crate::attest::sigstore::sign::Services,
    pub root: &'a crate::attest::sigstore::TrustRoot,
}

impl StatementSigner for KeylessSigner<'_> {
    fn bundle_for(&self, payload: &[u8]) -> Result<Vec<u8>, Error> {
        use crate::attest::sigstore::sign::{sign, Content};
        let b = sign(
            Content::Dsse {
                payload_type: crate::attest::bundle::IN_TOTO_PAYLOAD_TYPE,
                payload,
            },
            self.token,
            self.services,
            self.root,
        )?;
        Ok(b.to_string().into_bytes())
    }
    fn signer(&self) -> String {
        format!(
            "keyless (issuer {}, logged in {})",
            self.token.issuer().unwrap_or("?"),
            self.services.rekor
        )
    }
}

/// Sign what `r` names, by manifest digest (a tag is resolved first and never signed): an
/// in-toto statement (subject = digest, named by the repository) in a Sigstore bundle, stored
/// as a referrer; with `cosign_compat` also as a legacy `.sig` simple signature.
pub fn sign_reference(
    r: &Reference,
    signer: &crate::attest::Signer,
    opts: &Options,
    cosign_compat: bool,
) -> Result<SignOutcome, Error> {
    let legacy: Option<&crate::attest::Signer> = cosign_compat.then_some(signer);
    sign_reference_inner(r, signer, opts, legacy)
}

/// [`sign_reference`] with any [`StatementSigner`] (keyless: a Fulcio certificate, the bundle
/// logged in Rekor). No legacy `.sig` is written: cosign's legacy format carries keyless
/// material in annotations mlsign does not write.
pub fn sign_reference_with(
    r: &Reference,
    signer: &dyn StatementSigner,
    opts: &Options,
) -> Result<SignOutcome, Error> {
    sign_reference_inner(r, signer, opts, None)
}

fn sign_reference_inner(
    r: &Reference,
    signer: &dyn StatementSigner,
    opts: &Options,
    legacy: Option<&crate::attest::Signer>,
) -> Result<SignOutcome, Error> {
    let client = Client::new(r, opts)?;
    let fetched = client.get_manifest(r, "resolve reference")?;
    let subject = Descriptor {
        media_type: fetched.media_type.clone(),
        digest: fetched.digest.clone(),
        size: fetched.bytes.len() as u64,
        artifact_type: None,
        annotations: BTreeMap::new(),
    };
    let repository = r.repository_name();
    let payload = cosign::image_statement(&repository, &fetched.digest);
    let bundle = signer.bundle_for(&payload)?;
    let mut attach = attach_bundle(&client, r, &subject, &bundle, cosign::COSIGN_SIGN_PREDICATE)?;
    if let Some(k) = legacy {
        attach.legacy_tag = Some(attach_legacy(&client, r, &fetched.digest, k)?);
    }
    Ok(SignOutcome {
        reference: r.at_digest(&fetched.digest).to_string(),
        repository,
        digest: fetched.digest,
        media_type: fetched.media_type,
        attach,
        signer: signer.signer(),
    })
}
