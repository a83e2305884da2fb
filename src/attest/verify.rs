//! Verification: the signature over the exact payload bytes first (key hint, key or chain), then
//! the tree re-hashed with the configuration that was signed, never with what the input claims.

use super::bundle::{self, Bundle};
use super::cert::{self, Cert};
use super::sign::{inside, resolve_output};
use super::statement::SubjectKind;
use super::statement_parse::{parse_compact, CompactStatement};
use super::{dsse, sigstore, Error, VerifyingKey};
use crate::digest::signed::diff_listed;
use crate::digest::{walk_listing, Difference, ListedManifest, Progress};
use std::path::{Path, PathBuf};

/// What the verifier trusts.
pub enum Trust {
    /// A public key (bundles made with the key method).
    Key(VerifyingKey),
    /// Root certificates (bundles made with the certificate method).
    Roots(Vec<Cert>),
    /// A Sigstore trusted root and the signer it must name (keyless bundles, managed keys).
    Keyless(KeylessTrust),
}

/// What keyless verification trusts: a trusted root and the expected identity or managed key.
#[derive(Clone, Debug)]
pub struct KeylessTrust {
    pub root: sigstore::TrustRoot,
    pub expect: sigstore::Expect,
    /// At least this many transparency-log entries must be in the bundle (each one verified).
    /// 0 (the CLI's default) leaves it to the verifier, which wants a log entry or a timestamp.
    pub min_tlog_entries: usize,
    /// At least this many RFC 3161 timestamps from authorities of the trusted root.
    pub min_timestamps: usize,
}

impl KeylessTrust {
    /// Policies (`keyless = {identity | identity_regex, issuer}`) build their trust here:
    /// `Matcher::exact(..)` or `Matcher::regex(..)` for each, and a root from
    /// `TrustRoot::load(path, staging)`; then [`verify_model`] with `Trust::Keyless`.
    pub fn new(
        identity: sigstore::Matcher,
        issuer: sigstore::Matcher,
        root: sigstore::TrustRoot,
    ) -> Self {
        KeylessTrust {
            root,
            expect: sigstore::Expect::Identity { identity, issuer },
            min_tlog_entries: 0,
            min_timestamps: 0,
        }
    }

    /// Require at least `tlog_entries` transparency-log entries and `timestamps` RFC 3161
    /// timestamps (policies: `keyless = { …, tlog_entries = 1, signed_timestamps = 0 }`).
    pub fn with_thresholds(mut self, tlog_entries: usize, timestamps: usize) -> Self {
        self.min_tlog_entries = tlog_entries;
        self.min_timestamps = timestamps;
        self
    }
}

/// A payload whose signature verified.
#[derive(Debug)]
pub struct VerifiedPayload {
    pub payload_type: String,
    pub payload: Vec<u8>,
    /// `key` or `certificate`.
    pub method: &'static str,
    /// Key hint or certificate subject.
    pub signer: String,
    pub warnings: Vec<String>,
}

const LEGACY_PAE_WARNING: &str = "the signature is over model_signing 0.2's faulty PAE encoding (accepted because of --legacy-pae); re-sign with a current signer";

fn rejected(code: &'static str, message: impl Into<String>) -> Error {
    Error::Rejected {
        code,
        message: message.into(),
    }
}

/// Check a bundle's signature against `trust`; returns the verified payload. A signature that
/// does not verify is [`Error::Rejected`] (exit 1); an unreadable bundle is another error (exit 2).
pub fn verify_bundle(
    bundle: &Bundle,
    bundle_path: &Path,
    trust: &Trust,
) -> Result<VerifiedPayload, Error> {
    verify_bundle_with(bundle, bundle_path, trust, false)
}

/// [`verify_bundle`], optionally accepting a signature over model_signing 0.2's faulty PAE
/// ([`dsse::pae_compat`]) with a warning. Without `legacy_pae` such a signature is still
/// rejected, but the message says what it is and how to accept it.
pub fn verify_bundle_with(
    bundle: &Bundle,
    bundle_path: &Path,
    trust: &Trust,
    legacy_pae: bool,
) -> Result<VerifiedPayload, Error> {
    verify_inner(bundle, None, bundle_path, trust, legacy_pae)
}

/// [`verify_bundle_with`] for a bundle that is not a file (a registry blob): `raw` are the
/// exact bytes `bundle` was parsed from; `label` names it in messages.
pub fn verify_bundle_bytes(
    bundle: &Bundle,
    raw: &[u8],
    label: &Path,
    trust: &Trust,
    legacy_pae: bool,
) -> Result<VerifiedPayload, Error> {
    verify_inner(bundle, Some(raw), label, trust, legacy_pae)
}

fn verify_inner(
    bundle: &Bundle,
    raw: Option<&[u8]>,
    bundle_path: &Path,
    trust: &Trust,
    legacy_pae: bool,
) -> Result<VerifiedPayload, Error> {
    let payload = bundle
        .dsse_envelope
        .as_ref()
        .and_then(|env| bundle::unb64(&env.payload));
    let mut vp = verify_core(
        bundle,
        payload.as_deref(),
        raw,
        bundle_path,
        trust,
        legacy_pae,
    )?;
    vp.payload = payload.unwrap_or_default();
    Ok(vp)
}

/// The DSSE pre-authentication encoding of a payload, produced on demand (never copied).
pub(crate) struct PaeMessage<'a> {
    pub payload_type: &'a str,
    pub payload: &'a [u8],
}

impl super::Message for PaeMessage<'_> {
    fn write_to(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        let t = self.payload_type;
        write!(w, "DSSEv1 {} {t} {} ", t.len(), self.payload.len())?;
        w.write_all(self.payload)
    }
}

/// Every check of a bundle whose payload was decoded by the caller (`payload` is `None` when
/// it is not base64). The returned payload is empty: the caller holds the bytes.
fn verify_core(
    bundle: &Bundle,
    payload: Option<&[u8]>,
    raw: Option<&[u8]>,
    bundle_path: &Path,
    trust: &Trust,
    legacy_pae: bool,
) -> Result<VerifiedPayload, Error> {
    use super::error::{BundleFault, OtherMethod};
    let malformed = |fault| Error::BadBundle {
        path: bundle_path.into(),
        fault,
    };
    let unsupported = |method| Error::OtherMethod {
        path: bundle_path.into(),
        method,
    };
    let Some(env) = &bundle.dsse_envelope else {
        return Err(if bundle.message_signature.is_some() {
            unsupported(OtherMethod::MessageSignature)
        } else {
            malformed(BundleFault::NoDsseEnvelope)
        });
    };
    let sig = match env.signatures.as_slice() {
        [] => return Err(malformed(BundleFault::NoSignature)),
        [s] => s,
        _ => return Err(unsupported(OtherMethod::SeveralSignatures)),
    };
    let payload = payload.ok_or_else(|| malformed(BundleFault::PayloadNotBase64))?;
    let sig_bytes =
        bundle::unb64(&sig.sig).ok_or_else(|| malformed(BundleFault::SignatureNotBase64))?;
    let pae = PaeMessage {
        payload_type: &env.payload_type,
        payload,
    };
    let vm = &bundle.verification_material;
    let mut warnings = Vec::new();
    // Standard PAE first; the legacy encoding only decides the message unless asked for.
    // Ok(true): accepted over the legacy encoding.
    let check = |key: &VerifyingKey, what: String| -> Result<bool, Error> {
        if key.verify_message(&pae, &sig_bytes) {
            return Ok(false);
        }
        let legacy = key.verify(&dsse::pae_compat(&env.payload_type, payload), &sig_bytes);
        match (legacy, legacy_pae) {
            (true, true) => Ok(true),
            (true, false) => Err(rejected(
                "SIG005",
                format!("the signature {what} covers model_signing 0.2's faulty PAE encoding, not the DSSE one; pass --legacy-pae to accept such old bundles, or re-sign"),
            )),
            (false, _) => Err(rejected(
                "SIG005",
                format!("the signature does not verify over the signed payload {what} (payload or signature altered, or another key)"),
            )),
        }
    };
    if !vm.tlog_entries.is_empty() || vm.timestamp_verification_data.is_some() {
        warnings.push("the bundle carries transparency-log or timestamp data, which key and certificate verification do not check".into());
    }
    let (method, signer) = match trust {
        Trust::Key(key) => {
            if vm.x509_certificate_chain.is_some() {
                return Err(unsupported(OtherMethod::Certificate));
            }
            if vm.certificate.is_some() {
                return Err(unsupported(OtherMethod::Keyless));
            }
            let hint = key.hint();
            match vm.public_key.as_ref().map(|p| p.hint.to_ascii_lowercase()) {
                Some(h) if !h.is_empty() && h != hint => {
                    return Err(rejected(
                        "SIG006",
                        format!("key mismatch: the bundle was signed by the key with hint {h}, the given public key has hint {hint}"),
                    ))
                }
                Some(h) if !h.is_empty() => {}
                _ => warnings.push("the bundle has no public-key hint (older format); re-sign to record one".into()),
            }
            if check(key, "with the given key".into())? {
                warnings.push(LEGACY_PAE_WARNING.into());
            }
            ("key", hint)
        }
        Trust::Roots(roots) => {
            let Some(chain) = &vm.x509_certificate_chain else {
                return Err(if vm.public_key.is_some() {
                    unsupported(OtherMethod::Key)
                } else {
                    unsupported(OtherMethod::NoCertificateChain)
                });
            };
            let certs = chain
                .certificates
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let der = bundle::unb64(&c.raw_bytes)
                        .ok_or_else(|| malformed(BundleFault::CertificateNotBase64 { index: i }))?;
                    Cert::from_der(&der).map_err(|e| {
                        malformed(BundleFault::Certificate {
                            index: i,
                            source: Box::new(e),
                        })
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let Some((leaf, rest)) = certs.split_first() else {
                return Err(malformed(BundleFault::EmptyChain));
            };
            let key = cert::verify_chain(leaf, rest, roots).map_err(|why| {
                rejected("SIG007", format!("untrusted signing certificate: {why}"))
            })?;
            if check(&key, format!("with the key of '{}'", leaf.subject()))? {
                warnings.push(LEGACY_PAE_WARNING.into());
            }
            ("certificate", leaf.subject())
        }
        Trust::Keyless(k) => return verify_keyless(bundle, raw, bundle_path, k),
    };
    Ok(VerifiedPayload {
        payload_type: env.payload_type.clone(),
        payload: Vec::new(),
        method,
        signer,
        warnings,
    })
}

/// The keyless branch: the whole Sigstore verification (chain, SCT, identity, log entry, inclusion
/// proof, checkpoint, SET, timestamps) over the statement's subject digest, which the caller then
/// compares with the re-hashed tree.
fn verify_keyless(
    bundle: &Bundle,
    raw: Option<&[u8]>,
    bundle_path: &Path,
    k: &KeylessTrust,
) -> Result<VerifiedPayload, Error> {
    let malformed = |why: String| Error::MalformedBundle {
        path: bundle_path.into(),
        why,
    };
    let Some(env) = &bundle.dsse_envelope else {
        return Err(malformed("no dsseEnvelope".into()));
    };
    let vm = &bundle.verification_material;
    if vm.tlog_entries.is_empty() && vm.timestamp_verification_data.is_none() {
        return Err(Error::UnsupportedBundle {
            path: bundle_path.into(),
            why: if vm.public_key.is_some() {
                "it was signed with the key method, not keyless; verify with --key PUB.pem".into()
            } else {
                "it has no transparency-log entry, so it is not a keyless bundle (certificate method: verify with --cert-chain ROOTS.pem)".into()
            },
        });
    }
    let payload = bundle::unb64(&env.payload)
        .ok_or_else(|| malformed("dsseEnvelope.payload is not base64".into()))?;
    let statement: serde_json::Value = serde_json::from_slice(&payload)
        .map_err(|e| malformed(format!("the DSSE payload is not JSON: {e}")))?;
    let digest = statement["subject"][0]["digest"]["sha256"]
        .as_str()
        .and_then(|h| hex::decode(h).ok())
        .and_then(|d| <[u8; 32]>::try_from(d).ok())
        .ok_or_else(|| malformed("the statement has no subject with a SHA-256 digest".into()))?;
    let read;
    let raw = match raw {
        Some(r) => r,
        None => {
            read = sigstore::read_bounded(bundle_path, bundle::MAX_BUNDLE_BYTES, "bundle")
                .map_err(|e| malformed(e.to_string()))?;
            &read
        }
    };
    let sb = sigstore::parse_bundle(raw).map_err(|e| malformed(e.to_string()))?;
    let fail = |e: sigstore::KeylessError| match e.code() {
        Some(code) => rejected(code, format!("{e} ({})", e.advice())),
        None => malformed(e.to_string()),
    };
    let v = sigstore::verify(&sb, sigstore::Artifact::Sha256(digest), &k.expect, &k.root)
        .map_err(fail)?;
    if v.tlog_entries < k.min_tlog_entries || v.rfc3161_timestamps < k.min_timestamps {
        return Err(fail(sigstore::KeylessError::Threshold(format!(
            "the bundle has {} transparency-log entr{} and {} RFC 3161 timestamp(s); at least {} and {} are required",
            v.tlog_entries,
            if v.tlog_entries == 1 { "y" } else { "ies" },
            v.rfc3161_timestamps,
            k.min_tlog_entries,
            k.min_timestamps
        ))));
    }
    let signer = match &v.issuer {
        Some(iss) => format!("{} (issuer {iss})", v.identity),
        None => format!("managed key {}", v.identity),
    };
    Ok(VerifiedPayload {
        payload_type: env.payload_type.clone(),
        payload,
        method: v.method,
        signer,
        warnings: Vec::new(),
    })
}

/// Options for [`verify_model`].
#[derive(Default)]
pub struct VerifyOptions {
    /// Root-relative paths to leave out in addition to what the signature records.
    pub extra_ignore: Vec<String>,
    pub allow_symlinks: bool,
    pub threads: Option<usize>,
    /// Accept signatures over model_signing 0.2's faulty PAE (see [`dsse::pae_compat`]).
    pub legacy_pae: bool,
}

/// The result of checking a tree against its signature.
#[derive(Debug, serde::Serialize)]
pub struct VerifyOutcome {
    pub subject: String,
    pub kind: Option<SubjectKind>,
    pub predicate_type: String,
    pub method: &'static str,
    pub signer: String,
    pub root_digest: String,
    pub algorithm: &'static str,
    pub shard_size: Option<u64>,
    pub files_checked: usize,
    pub bytes: u64,
    pub differences: Vec<Difference>,
    pub warnings: Vec<String>,
}

impl VerifyOutcome {
    pub fn verified(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Verify the bundle at `bundle_path` and parse the statement it signed, holding the bundle's
/// bytes once (the payload is decoded in place) and the statement compactly: a bundle over a
/// million files costs its file size plus ~60 bytes a resource, not a kilobyte. Same checks,
/// in the same order, as [`verify_bundle_with`] and then the statement parser.
pub(crate) fn verify_compact(
    bundle_path: &Path,
    trust: &Trust,
    legacy_pae: bool,
) -> Result<(VerifiedPayload, CompactStatement), Error> {
    if let Trust::Keyless(_) = trust {
        // Sigstore verification reads the bundle whole (certificates, log entries, proofs).
        let bundle = Bundle::read(bundle_path)?;
        let mut vp = verify_bundle_with(&bundle, bundle_path, trust, legacy_pae)?;
        let payload = std::mem::take(&mut vp.payload);
        check_statement_type(&vp)?;
        let signed = parse_compact(&payload).map_err(|why| rejected("SIG008", why.to_string()))?;
        return Ok((vp, signed));
    }
    let read = Bundle::read_in_place(bundle_path)?;
    let vp = verify_core(
        &read.bundle,
        read.payload(),
        None,
        bundle_path,
        trust,
        legacy_pae,
    )?;
    check_statement_type(&vp)?;
    let signed = parse_compact(read.payload().unwrap_or_default())
        .map_err(|why| rejected("SIG008", why.to_string()))?;
    Ok((vp, signed))
}

fn check_statement_type(vp: &VerifiedPayload) -> Result<(), Error> {
    if vp.payload_type != bundle::IN_TOTO_PAYLOAD_TYPE {
        return Err(rejected(
            "SIG008",
            format!(
                "payload type {:?} is not an in-toto statement",
                vp.payload_type
            ),
        ));
    }
    Ok(())
}

/// Verify the bundle at `bundle_path` and then the tree at `path` against what it signed.
pub fn verify_model(
    path: &Path,
    bundle_path: &Path,
    trust: &Trust,
    opts: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<VerifyOutcome, Error> {
    let root = std::fs::canonicalize(path)
        .map_err(|e| Error::Digest(crate::digest::Error::io(path, e)))?;
    let (vp, signed) = verify_compact(bundle_path, trust, opts.legacy_pae)?;
    let mut config = signed.config.clone();
    config.allow_symlinks |= opts.allow_symlinks;
    config.threads = opts.threads;
    let bundle_abs: PathBuf = resolve_output(bundle_path)?;
    if let Some(rel) = inside(&root, &bundle_abs) {
        config.ignore_paths.push(rel);
    }
    config
        .ignore_paths
        .extend(opts.extra_ignore.iter().cloned());
    // Compact on both sides: the listing (names in one arena) and its digests in one buffer.
    let listing = walk_listing(&root, &config.ignore_paths, config.allow_symlinks)?;
    let (actual, _) = ListedManifest::hash(&listing, &config, progress, &|_| None)?;
    let differences = diff_listed(&signed.resources, &actual, config.method, &|_| true).differences;
    let (algorithm, shard_size) = (
        config.algorithm.name(),
        match config.method {
            crate::digest::Method::Files => None,
            crate::digest::Method::Shards { shard_size } => Some(shard_size),
        },
    );
    Ok(VerifyOutcome {
        subject: signed.subject_name,
        kind: signed.kind,
        predicate_type: signed.predicate_type,
        method: vp.method,
        signer: vp.signer,
        root_digest: signed.root_digest,
        algorithm,
        shard_size,
        files_checked: listing.len(),
        bytes: listing.total_bytes(),
        differences,
        warnings: vp.warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::{sign_statement, KeyKind, Signer, SigningKey, STATEMENT_TYPE};
    use crate::digest::NoProgress;
    use serde_json::json;

    /// A bundle, signed by a key the verifier trusts, over a statement listing `names` with
    /// `digest(i)`; the subject digest is consistent, so only the list itself can be wrong.
    fn signed_bundle(names: &[&str], dir: &Path) -> (PathBuf, Trust, usize) {
        let resources: Vec<_> = names
            .iter()
            .map(|n| json!({"name": n, "digest": "00".repeat(32), "algorithm": "sha256"}))
            .collect();
        let root = crate::util::sha256(&vec![0u8; 32 * names.len()]);
        let st = json!({
            "_type": STATEMENT_TYPE,
            "subject": [{"name": "m", "digest": {"sha256": hex::encode(root)}}],
            "predicateType": crate::attest::PREDICATE_V1,
            "predicate": {
                "resources": resources,
                "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": false},
            },
        });
        let payload = serde_json::to_vec_pretty(&st).unwrap();
        let signer = Signer::from_key(SigningKey::generate(KeyKind::P256));
        let b = sign_statement(&signer, &payload).unwrap().to_json();
        let p = dir.join("b.sig");
        std::fs::write(&p, &b).unwrap();
        (p, Trust::Key(signer.verifying_key().clone()), b.len())
    }

    #[test]
    fn a_signed_statement_listing_a_path_twice_is_rejected_by_name() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("m");
        std::fs::create_dir(&tree).unwrap();
        std::fs::write(tree.join("a"), "x").unwrap();
        let (bundle, trust, _) = signed_bundle(&["a", "b/c", "b/c"], d.path());
        let e = verify_model(
            &tree,
            &bundle,
            &trust,
            &VerifyOptions::default(),
            &NoProgress,
        )
        .unwrap_err();
        match e {
            Error::Rejected { code, message } => {
                assert_eq!(code, "SIG008");
                assert!(message.contains("\"b/c\" twice"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    /// A hostile list (100,000 entries of one path) is refused with a typed error, holding
    /// the bundle's bytes and the flat buffers only, never a JSON tree of it.
    #[test]
    fn a_huge_hostile_resource_list_stays_bounded() {
        let d = tempfile::tempdir().unwrap();
        let n = 100_000;
        let names = vec!["x"; n];
        let (bundle, trust, len) = signed_bundle(&names, d.path());
        let (r, peak) =
            crate::digest::alloc_count::peak_of(|| verify_compact(&bundle, &trust, false));
        match r {
            Err(Error::Rejected {
                code: "SIG008",
                message,
            }) => {
                assert!(message.contains("\"x\" twice"), "{message}")
            }
            other => panic!("{:?}", other.map(|_| ())),
        }
        assert!(
            peak < len + 100 * n,
            "peak {peak} bytes for a {len}-byte bundle of {n} resources"
        );
    }
}
