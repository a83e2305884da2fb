//! Signing: statement → DSSE → Sigstore bundle, written atomically.

use super::bundle::{
    self, Bundle, Certificate, CertificateChain, Envelope, EnvelopeSignature, PublicKeyIdentifier,
    VerificationMaterial,
};
use super::cert::Cert;
use super::keys::Message;
use super::statement::{write_model_statement, SubjectKind};
use super::{dsse, Error, SigningKey, VerifyingKey};
use crate::digest::{HashConfig, Progress, ResourceSource};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where signatures come from: a key file in memory, a PKCS#11 token, and later keyless
/// (Fulcio) or cloud KMS keys. One small trait so every one of them yields the same bundles.
///
/// Contract for implementations:
/// - [`SigningBackend::sign`] signs `msg` (the DSSE pre-authentication encoding) and returns
///   what goes into the bundle: a DER ECDSA signature made with the curve's own hash (P-256 /
///   SHA-256, P-384 / SHA-384, P-521 / SHA-512, as model_signing requires), or a raw Ed25519
///   signature. Hashing on the host and asking the device for a raw ECDSA signature is fine.
/// - It fails with a typed [`Error`] (device gone, PIN expired…), never panics, and never puts
///   a secret (PIN, key bytes) in the error.
/// - [`SigningBackend::verifying_key`] is the public key that checks those signatures; its hint
///   is recorded in key-method bundles, and a certificate must certify it.
/// - It must be `Send + Sync`: callers may sign from any thread.
pub trait SigningBackend: Send + Sync {
    fn verifying_key(&self) -> VerifyingKey;
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, Error>;
    /// Sign a message produced on demand (the DSSE encoding of a statement that may be too
    /// large to hold). The default collects it and calls [`SigningBackend::sign`]; backends
    /// that hash on the host override it to hash the stream, so memory stays flat.
    fn sign_message(&self, msg: &dyn Message) -> Result<Vec<u8>, Error> {
        let mut buf = Vec::new();
        msg.write_to(&mut buf)
            .map_err(|e| Error::KeyFormat(format!("cannot produce the message to sign: {e}")))?;
        self.sign(&buf)
    }
    /// Where the key lives, for messages (`key file`, `PKCS#11 token 'x', object 'y'`).
    fn describe(&self) -> String;
}

impl SigningBackend for SigningKey {
    fn verifying_key(&self) -> VerifyingKey {
        SigningKey::verifying_key(self)
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(SigningKey::sign(self, msg))
    }
    fn sign_message(&self, msg: &dyn Message) -> Result<Vec<u8>, Error> {
        SigningKey::sign_message(self, msg)
    }
    fn describe(&self) -> String {
        format!("{} key", self.kind().name())
    }
}

/// A signing key (any [`SigningBackend`]), optionally with its certificate chain (the
/// certificate method).
pub struct Signer {
    backend: Box<dyn SigningBackend>,
    public: VerifyingKey,
    /// Leaf first, then intermediates.
    certificates: Vec<Cert>,
}

impl Signer {
    /// The key method with a key held in memory: the bundle carries the key's hint.
    pub fn from_key(key: SigningKey) -> Signer {
        Self::from_backend(Box::new(key))
    }

    /// The key method with any backend (PKCS#11 token, KMS…).
    pub fn from_backend(backend: Box<dyn SigningBackend>) -> Signer {
        let public = backend.verifying_key();
        Signer {
            backend,
            public,
            certificates: Vec::new(),
        }
    }

    /// The certificate method: the bundle carries `leaf` and `chain`. The leaf must certify
    /// the signing key.
    pub fn with_certificates(
        key: SigningKey,
        leaf: Cert,
        chain: Vec<Cert>,
    ) -> Result<Signer, Error> {
        Self::backend_with_certificates(Box::new(key), leaf, chain)
    }

    /// [`Signer::with_certificates`] for any backend.
    pub fn backend_with_certificates(
        backend: Box<dyn SigningBackend>,
        leaf: Cert,
        chain: Vec<Cert>,
    ) -> Result<Signer, Error> {
        let public = backend.verifying_key();
        if leaf.public_key()? != public {
            return Err(Error::Certificate(format!(
                "the signing certificate '{}' is for another key than the signing key ({})",
                leaf.subject(),
                backend.describe()
            )));
        }
        let mut certificates = vec![leaf];
        certificates.extend(chain);
        Ok(Signer {
            backend,
            public,
            certificates,
        })
    }

    /// The public key that verifies this signer's bundles.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.public
    }

    /// A raw signature over `msg` (cosign's legacy simple signing signs the payload itself,
    /// not a DSSE PAE), checked against the public key like [`sign_statement`] does.
    pub fn sign_raw(&self, msg: &[u8]) -> Result<Vec<u8>, Error> {
        let sig = self.backend.sign(msg)?;
        if !self.public.verify(msg, &sig) {
            return Err(Error::KeyFormat(format!(
                "the signature made by the {} does not verify with its public key",
                self.backend.describe()
            )));
        }
        Ok(sig)
    }

    /// Where the key lives, for messages.
    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    fn verification_material(&self) -> VerificationMaterial {
        if self.certificates.is_empty() {
            VerificationMaterial {
                public_key: Some(PublicKeyIdentifier {
                    hint: self.public.hint(),
                }),
                ..Default::default()
            }
        } else {
            VerificationMaterial {
                x509_certificate_chain: Some(CertificateChain {
                    certificates: self
                        .certificates
                        .iter()
                        .map(|c| Certificate {
                            raw_bytes: bundle::b64(&c.der),
                        })
                        .collect(),
                }),
                ..Default::default()
            }
        }
    }
}

/// Sign an in-toto statement (exact bytes) into a v0.3 bundle. Fails only when the backend
/// cannot sign (a token removed, a session expired); a signature that does not verify with
/// the signer's public key is refused rather than written.
pub fn sign_statement(signer: &Signer, payload: &[u8]) -> Result<Bundle, Error> {
    let pae = dsse::pae(bundle::IN_TOTO_PAYLOAD_TYPE, payload);
    let sig = signer.backend.sign(&pae)?;
    if !signer.public.verify(&pae, &sig) {
        return Err(mismatched(signer));
    }
    Ok(Bundle {
        media_type: bundle::MEDIA_TYPE_V03.into(),
        verification_material: signer.verification_material(),
        dsse_envelope: Some(Envelope {
            payload: bundle::b64(payload),
            payload_type: bundle::IN_TOTO_PAYLOAD_TYPE.into(),
            signatures: vec![EnvelopeSignature {
                sig: bundle::b64(&sig),
                keyid: String::new(),
            }],
        }),
        message_signature: None,
    })
}

/// Counts what is written.
#[derive(Default)]
struct Count(u64);

impl Write for Count {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The statement of a manifest, produced on demand.
struct StatementStream<'a> {
    subject: &'a str,
    kind: SubjectKind,
    resources: &'a dyn ResourceSource,
    config: &'a HashConfig,
}

impl Message for StatementStream<'_> {
    fn write_to(&self, w: &mut dyn Write) -> std::io::Result<()> {
        write_model_statement(w, self.subject, self.kind, self.resources, self.config)
    }
}

/// The DSSE pre-authentication encoding of a streamed payload of known length.
struct PaeStream<'a> {
    payload: &'a dyn Message,
    len: u64,
}

impl Message for PaeStream<'_> {
    fn write_to(&self, w: &mut dyn Write) -> std::io::Result<()> {
        let t = bundle::IN_TOTO_PAYLOAD_TYPE;
        write!(w, "DSSEv1 {} {t} {} ", t.len(), self.len)?;
        self.payload.write_to(w)
    }
}

/// Sign the statement of `resources` and write its bundle to `path` atomically, without ever
/// holding the statement or the bundle: the statement is produced once to learn its length,
/// once (twice for Ed25519) into the signature, and once through base64 into the bundle file.
/// Byte-identical to [`sign_statement`] over [`super::statement::model_statement`].
pub fn sign_resources_to(
    signer: &Signer,
    subject: &str,
    kind: SubjectKind,
    resources: &dyn ResourceSource,
    config: &HashConfig,
    path: &Path,
    force: bool,
) -> Result<(), Error> {
    let payload = StatementStream {
        subject,
        kind,
        resources,
        config,
    };
    let mut count = Count::default();
    payload
        .write_to(&mut count)
        .map_err(|e| Error::KeyFormat(format!("cannot produce the statement: {e}")))?;
    let pae = PaeStream {
        payload: &payload,
        len: count.0,
    };
    let sig = signer.backend.sign_message(&pae)?;
    if !signer.public.verify_message(&pae, &sig) {
        return Err(mismatched(signer));
    }
    // The bundle with a placeholder payload, split around it: serde writes every other byte.
    let mark = "\u{1}mlsign-payload\u{1}";
    let frame = Bundle {
        media_type: bundle::MEDIA_TYPE_V03.into(),
        verification_material: signer.verification_material(),
        dsse_envelope: Some(Envelope {
            payload: mark.into(),
            payload_type: bundle::IN_TOTO_PAYLOAD_TYPE.into(),
            signatures: vec![EnvelopeSignature {
                sig: bundle::b64(&sig),
                keyid: String::new(),
            }],
        }),
        message_signature: None,
    }
    .to_json();
    let quoted = serde_json::to_vec(mark).unwrap_or_default();
    let at = frame
        .windows(quoted.len())
        .position(|w| w == quoted.as_slice())
        .ok_or_else(|| Error::KeyFormat("bundle placeholder lost".into()))?;
    let (before, after) = (&frame[..at], &frame[at + quoted.len()..]);
    write_atomic_with(path, force, &mut |w| {
        w.write_all(before)?;
        w.write_all(b"\"")?;
        {
            let mut b64 = base64::write::EncoderWriter::new(
                &mut *w,
                &base64::engine::general_purpose::STANDARD,
            );
            payload.write_to(&mut b64)?;
            b64.finish()?;
        }
        w.write_all(b"\"")?;
        w.write_all(after)
    })
}

fn mismatched(signer: &Signer) -> Error {
    Error::KeyFormat(format!(
        "the signature made by the {} does not verify with its public key; the private and public key objects do not belong together",
        signer.backend.describe()
    ))
}

/// Options for [`sign_model`].
pub struct SignOptions {
    pub kind: SubjectKind,
    pub config: HashConfig,
    pub bundle_path: PathBuf,
    pub force: bool,
}

/// What was signed.
#[derive(Debug, serde::Serialize)]
pub struct SignOutcome {
    pub bundle: PathBuf,
    pub subject: String,
    pub kind: SubjectKind,
    pub root_digest: String,
    pub files: usize,
    pub resources: usize,
    pub bytes: u64,
    pub algorithm: &'static str,
    pub ignore_paths: Vec<String>,
    #[serde(flatten)]
    pub source: SourceReport,
    #[serde(skip)]
    pub warnings: Vec<String>,
    /// Why `--since` found no usable stat cache (every file was re-hashed); a warning for the
    /// caller to show next to [`SignOutcome::warnings`].
    #[serde(skip)]
    pub stat_cache_miss: Option<crate::digest::cache::CacheError>,
}

/// Resolve a path that may not exist yet: canonical parent + file name.
pub(crate) fn resolve_output(path: &Path) -> Result<PathBuf, Error> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::io(path, std::io::Error::other("not a file path")))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let parent = std::fs::canonicalize(parent).map_err(|e| Error::io(parent, e))?;
    Ok(parent.join(name))
}

/// Root-relative POSIX path of `p` if it lies strictly inside `root` (both canonical).
pub(crate) fn inside(root: &Path, p: &Path) -> Option<String> {
    let rel = p.strip_prefix(root).ok()?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    let s = parts?.join("/");
    (!s.is_empty()).then_some(s)
}

/// Write `data` to `path` atomically (temp file in the same directory, fsync, rename). Without
/// `force` an existing file is never replaced.
pub fn write_atomic(path: &Path, data: &[u8], force: bool) -> Result<(), Error> {
    crate::util::fs::write_atomic(path, data, force).map_err(Error::from)
}

/// [`write_atomic`] with the content streamed by `fill` (buffered); on any error the old file
/// is left as it was.
pub fn write_atomic_with(
    path: &Path,
    force: bool,
    fill: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), Error> {
    crate::util::fs::write_atomic_with(path, force, fill).map_err(Error::from)
}

/// Where the manifest of a signing run comes from.
#[derive(Clone, Debug, Default)]
pub enum ManifestSource {
    /// Hash every file.
    #[default]
    Hash,
    /// Re-use the digests OLD.sig recorded for files the stat cache proves unchanged.
    Since(PathBuf),
    /// Merge partial manifests written by `mlsign hash --partition` (no hashing).
    Parts(Vec<PathBuf>),
}

/// Options of [`sign_model_with`] beyond [`SignOptions`].
#[derive(Clone, Debug, Default)]
pub struct SignExtras {
    pub source: ManifestSource,
    /// Record the stat cache for a later `--since` (off: leave any old cache untouched).
    pub write_stat_cache: bool,
}

/// How an incremental or partitioned run got its digests.
#[derive(Debug, Default, serde::Serialize)]
pub struct SourceReport {
    /// Files whose digests came from OLD.sig, and files hashed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incremental: Option<crate::digest::Reuse>,
    /// Number of partial manifests merged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parts: Option<usize>,
    /// Entries recorded in the stat cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stat_cache_entries: Option<usize>,
}

/// The digests of OLD.sig, if it was signed by this signer's key with the same algorithm and
/// shard size; otherwise `None` with a warning (everything is re-hashed). An unreadable or
/// malformed OLD.sig is an error. Held compactly (the bundle's bytes once while it is read,
/// then ~60 bytes a resource), looked up by path.
fn old_digests(
    old: &Path,
    signer: &Signer,
    config: &HashConfig,
    warnings: &mut Vec<String>,
) -> Result<Option<crate::digest::signed::SignedResources>, Error> {
    use super::statement_parse::parse_compact;
    let b = Bundle::read_in_place(old)?;
    let malformed = |why: &str| Error::MalformedBundle {
        path: old.into(),
        why: why.into(),
    };
    let env = b
        .bundle
        .dsse_envelope
        .as_ref()
        .ok_or_else(|| malformed("no dsseEnvelope"))?;
    let payload = b
        .payload()
        .ok_or_else(|| malformed("payload is not base64"))?;
    let sig = env
        .signatures
        .first()
        .and_then(|s| bundle::unb64(&s.sig))
        .ok_or_else(|| malformed("no base64 signature"))?;
    let shown = old.display();
    let pae = super::verify::PaeMessage {
        payload_type: &env.payload_type,
        payload,
    };
    if !signer.verifying_key().verify_message(&pae, &sig) {
        warnings.push(format!(
            "--since {shown}: not signed by this signing key; every file is re-hashed"
        ));
        return Ok(None);
    }
    let signed = match parse_compact(payload) {
        Ok(s) => s,
        Err(why) => {
            warnings.push(format!("--since {shown}: {why}; every file is re-hashed"));
            return Ok(None);
        }
    };
    if signed.config.algorithm != config.algorithm || signed.config.method != config.method {
        warnings.push(format!(
            "--since {shown}: signed with another algorithm or shard size; every file is re-hashed"
        ));
        return Ok(None);
    }
    Ok(Some(signed.resources))
}

/// Hash `path` and write a signed bundle for it.
pub fn sign_model(
    path: &Path,
    signer: &Signer,
    opts: &SignOptions,
    progress: &dyn Progress,
) -> Result<SignOutcome, Error> {
    sign_model_with(path, signer, opts, &SignExtras::default(), progress)
}

/// [`sign_model`] with incremental re-signing, partitioned manifests and the stat cache.
pub fn sign_model_with(
    path: &Path,
    signer: &Signer,
    opts: &SignOptions,
    extras: &SignExtras,
    progress: &dyn Progress,
) -> Result<SignOutcome, Error> {
    use crate::digest::{cache, partition, ListedManifest, Method};
    let root = std::fs::canonicalize(path)
        .map_err(|e| Error::Digest(crate::digest::Error::io(path, e)))?;
    let bundle_path = resolve_output(&opts.bundle_path)?;
    if bundle_path == root {
        return Err(Error::io(
            &opts.bundle_path,
            std::io::Error::other("the bundle path is the model itself"),
        ));
    }
    let mut config = opts.config.clone();
    // Parts record the settings of the `hash` runs, which knew nothing of this bundle.
    let parts_config = config.clone();
    if let Some(rel) = inside(&root, &bundle_path) {
        // As model_signing: a signature inside the model is left out, and that is recorded.
        config.ignore_paths.push(rel);
    }
    config.ignore_paths.sort();
    config.ignore_paths.dedup();
    let mut warnings = Vec::new();
    let mut stat_cache_miss = None;
    let mut report = SourceReport::default();
    // OLD.sig is read before the walk: its bytes are gone before the listing is built, so the
    // two never take memory at once.
    let old_signed = match &extras.source {
        ManifestSource::Since(old) => Some(old_digests(old, signer, &config, &mut warnings)?),
        _ => None,
    };
    let walk_started = cache::now_ns();
    // Compact (names in one arena): a million files list in tens of MB.
    let listing = crate::digest::walk_listing(&root, &config.ignore_paths, config.allow_symlinks)?;
    if listing.is_empty() {
        return Err(Error::Digest(crate::digest::Error::Empty {
            path: path.into(),
        }));
    }
    let subject = root
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("model")
        .to_string();
    let dlen = config.algorithm.digest_len();
    // `Merged`: digests computed by other machines, never recorded in the local stat cache.
    enum Got<'l> {
        Listed(ListedManifest<'l>),
        Merged(ListedManifest<'l>),
    }
    let got = match &extras.source {
        ManifestSource::Parts(files) => {
            let mut parts = Vec::with_capacity(files.len());
            for f in files {
                parts.push((
                    f.clone(),
                    partition::CompactPart::read(f).map_err(crate::digest::Error::from)?,
                ));
            }
            report.parts = Some(parts.len());
            let digests = partition::merge_listed(&parts, &parts_config, &listing)
                .map_err(crate::digest::Error::from)?;
            drop(parts);
            Got::Merged(
                ListedManifest::from_digests(&listing, &config, digests).ok_or_else(|| {
                    Error::Digest(crate::digest::Error::from(partition::PartError::Unfit {
                        path: files.first().cloned().unwrap_or_default(),
                    }))
                })?,
            )
        }
        ManifestSource::Hash => {
            Got::Listed(ListedManifest::hash(&listing, &config, progress, &|_| None)?.0)
        }
        ManifestSource::Since(_) => {
            let old = old_signed.flatten();
            let stat = match &old {
                None => None,
                Some(_) => match cache::StatCache::load(&root, &config) {
                    Ok(c) => Some(c),
                    Err(why) => {
                        stat_cache_miss = Some(why);
                        None
                    }
                },
            };
            let reuse = |e: &crate::digest::Entry| -> Option<Vec<u8>> {
                let (old, stat) = (old.as_ref()?, stat.as_ref()?);
                let cached = stat.lookup(e)?;
                let signed = old.pieces_of(&e.name)?;
                let ranges_ok = match config.method {
                    Method::Files => signed.len() == 1,
                    Method::Shards { .. } => signed
                        .iter()
                        .map(|x| (x.0, x.1))
                        .eq(crate::digest::pieces(e.size, config.method)),
                };
                (ranges_ok
                    && cached.len() == signed.len() * dlen
                    && cached.chunks(dlen).zip(&signed).all(|(c, s)| c == s.2))
                .then(|| cached.to_vec())
            };
            let (m, stats) = ListedManifest::hash(&listing, &config, progress, &reuse)?;
            report.incremental = Some(stats);
            Got::Listed(m)
        }
    };
    let resources: &dyn ResourceSource = match &got {
        Got::Listed(l) => l,
        Got::Merged(m) => m,
    };
    let (files, bytes) = (listing.len(), listing.total_bytes());
    if matches!(config.method, Method::Shards { .. }) && resources.resource_count() < files {
        warnings.push(
            "empty files have no shards and are not recorded in shard mode (OpenSSF model signing format); \
             sign without --shard-size to cover them"
                .to_string(),
        );
    }
    sign_resources_to(
        signer,
        &subject,
        opts.kind,
        resources,
        &config,
        &bundle_path,
        opts.force,
    )?;
    // A bundle is public material (the temp file behind it was 0600).
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bundle_path, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::io(&bundle_path, e))?;
    }
    if let (true, Got::Listed(listed)) = (extras.write_stat_cache, &got) {
        match cache::store(&root, &config, listed, walk_started) {
            Ok(n) => report.stat_cache_entries = Some(n),
            Err(why) => warnings.push(format!("stat cache not written: {why}")),
        }
    }
    let root_digest = hex::encode(resources.root_digest());
    let resource_count = resources.resource_count();
    Ok(SignOutcome {
        bundle: bundle_path,
        subject,
        kind: opts.kind,
        root_digest,
        files,
        resources: resource_count,
        bytes,
        algorithm: config.algorithm.name(),
        ignore_paths: config.ignore_paths,
        source: report,
        warnings,
        stat_cache_miss,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::statement::model_statement;
    use crate::attest::KeyKind;
    use crate::digest::{Manifest, Method, Resource};

    #[test]
    fn streamed_bundle_is_byte_identical_to_the_in_memory_one() {
        let d = tempfile::tempdir().unwrap();
        let m = Manifest::from_resources(
            (0..50)
                .map(|i| Resource {
                    name: format!("dir{}/f\"{i}:0:4", i % 7),
                    algorithm: "sha256-sharded-4".into(),
                    digest: vec![i as u8; 32],
                })
                .collect(),
        );
        let cfg = HashConfig {
            method: Method::Shards { shard_size: 4 },
            ..HashConfig::default()
        };
        for kind in [
            KeyKind::P256,
            KeyKind::P384,
            KeyKind::P521,
            KeyKind::Ed25519,
        ] {
            let signer = Signer::from_key(SigningKey::generate(kind));
            let payload = model_statement("m", SubjectKind::Model, &m, &cfg);
            let want = sign_statement(&signer, &payload).unwrap().to_json();
            let p = d.path().join("b.sig");
            sign_resources_to(&signer, "m", SubjectKind::Model, &m, &cfg, &p, true).unwrap();
            let got = std::fs::read(&p).unwrap();
            if kind == KeyKind::P521 {
                // Randomised (hedged) signatures: same bundle apart from the signature, which
                // must verify over the same PAE.
                let (g, w) = (
                    Bundle::parse(&got, &p).unwrap(),
                    Bundle::parse(&want, &p).unwrap(),
                );
                let (ge, we) = (g.dsse_envelope.unwrap(), w.dsse_envelope.unwrap());
                assert_eq!(ge.payload, we.payload);
                let sig = bundle::unb64(&ge.signatures[0].sig).unwrap();
                let pae = dsse::pae(bundle::IN_TOTO_PAYLOAD_TYPE, &payload);
                assert!(signer.verifying_key().verify(&pae, &sig));
            } else {
                assert_eq!(
                    String::from_utf8(got).unwrap(),
                    String::from_utf8(want).unwrap()
                );
            }
            // Streamed verification agrees with the whole-message one, and rejects a change.
            let sig = SigningKey::generate(kind);
            let msg: &[u8] = b"DSSEv1 1 t 3 abc";
            let s = sig.sign_message(&msg).unwrap();
            assert!(sig.verifying_key().verify(msg, &s));
            assert!(sig.verifying_key().verify_message(&msg, &s));
            let other: &[u8] = b"DSSEv1 1 t 3 abd";
            assert!(!sig.verifying_key().verify_message(&other, &s));
        }
        // Without --force an existing bundle is kept.
        let p = d.path().join("b.sig");
        let before = std::fs::read(&p).unwrap();
        let signer = Signer::from_key(SigningKey::generate(KeyKind::P256));
        assert!(matches!(
            sign_resources_to(&signer, "m", SubjectKind::Model, &m, &cfg, &p, false),
            Err(Error::Exists { .. })
        ));
        assert_eq!(std::fs::read(&p).unwrap(), before);
    }
}
