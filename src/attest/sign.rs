//! Signing: statement → DSSE → Sigstore bundle, written atomically.

use super::bundle::{
    self, Bundle, Certificate, CertificateChain, Envelope, EnvelopeSignature, PublicKeyIdentifier,
    VerificationMaterial,
};
use super::cert::Cert;
use super::statement::{model_statement, SubjectKind};
use super::{dsse, Error, SigningKey, VerifyingKey};
use crate::digest::{HashConfig, Manifest, Progress};
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
        return Err(Error::KeyFormat(format!(
            "the signature made by the {} does not verify with its public key;              the private and public key objects do not belong together",
            signer.backend.describe()
        )));
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
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !force && path.symlink_metadata().is_ok() {
        return Err(Error::Exists { path: path.into() });
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".mlsign-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    tmp.write_all(data).map_err(|e| Error::io(tmp.path(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io(tmp.path(), e))?;
    let res = if force {
        tmp.persist(path).map(|_| ())
    } else {
        tmp.persist_noclobber(path).map(|_| ())
    };
    res.map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            Error::Exists { path: path.into() }
        } else {
            Error::io(path, e.error)
        }
    })
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

/// Per path, the pieces OLD.sig recorded: (start, end, digest), ascending.
type OldDigests = std::collections::HashMap<String, Vec<(u64, u64, Vec<u8>)>>;

/// The digests of OLD.sig, if it was signed by this signer's key with the same algorithm and
/// shard size; otherwise `None` with a warning (everything is re-hashed). An unreadable or
/// malformed OLD.sig is an error.
fn old_digests(
    old: &Path,
    signer: &Signer,
    config: &HashConfig,
    warnings: &mut Vec<String>,
) -> Result<Option<OldDigests>, Error> {
    use super::statement::parse_model_statement;
    let b = Bundle::read(old)?;
    let malformed = |why: &str| Error::MalformedBundle {
        path: old.into(),
        why: why.into(),
    };
    let env = b
        .dsse_envelope
        .as_ref()
        .ok_or_else(|| malformed("no dsseEnvelope"))?;
    let payload = bundle::unb64(&env.payload).ok_or_else(|| malformed("payload is not base64"))?;
    let sig = env
        .signatures
        .first()
        .and_then(|s| bundle::unb64(&s.sig))
        .ok_or_else(|| malformed("no base64 signature"))?;
    let shown = old.display();
    if !signer
        .verifying_key()
        .verify(&dsse::pae(&env.payload_type, &payload), &sig)
    {
        warnings.push(format!(
            "--since {shown}: not signed by this signing key; every file is re-hashed"
        ));
        return Ok(None);
    }
    let signed = match parse_model_statement(&payload) {
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
    let mut map = OldDigests::new();
    for r in signed.manifest.resources() {
        let (p, s, e) = r.shard().unwrap_or((r.name.as_str(), 0, 0));
        map.entry(p.to_string())
            .or_default()
            .push((s, e, r.digest.clone()));
    }
    for v in map.values_mut() {
        v.sort_by_key(|x| (x.0, x.1));
    }
    Ok(Some(map))
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
    use crate::digest::{cache, partition, Method};
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
    let mut report = SourceReport::default();
    let walk_started = cache::now_ns();
    let entries = crate::digest::walk(&root, &config.ignore_paths, config.allow_symlinks)?;
    let manifest = match &extras.source {
        ManifestSource::Parts(files) => {
            let mut parts = Vec::with_capacity(files.len());
            for f in files {
                parts.push((
                    f.clone(),
                    partition::Part::read(f).map_err(crate::digest::Error::from)?,
                ));
            }
            report.parts = Some(parts.len());
            partition::merge(&parts, &parts_config, &entries).map_err(crate::digest::Error::from)?
        }
        ManifestSource::Hash => Manifest::from_entries(&entries, &config, progress)?,
        ManifestSource::Since(old) => {
            let old = old_digests(old, signer, &config, &mut warnings)?;
            let stat = match &old {
                None => None,
                Some(_) => match cache::StatCache::load(&root, &config) {
                    Ok(c) => Some(c),
                    Err(cache::Miss(why)) => {
                        warnings.push(format!("{why}; every file is re-hashed"));
                        None
                    }
                },
            };
            let reuse = |e: &crate::digest::Entry| -> Option<Vec<Vec<u8>>> {
                let (old, stat) = (old.as_ref()?, stat.as_ref()?);
                let cached = stat.lookup(e)?;
                let signed = old.get(&e.name)?;
                let want: Vec<(u64, u64)> = crate::digest::pieces(e.size, config.method).collect();
                let ranges_ok = match config.method {
                    Method::Files => signed.len() == 1,
                    Method::Shards { .. } => {
                        signed.iter().map(|x| (x.0, x.1)).eq(want.iter().copied())
                    }
                };
                (ranges_ok
                    && cached.len() == signed.len()
                    && cached.iter().zip(signed).all(|(c, s)| *c == s.2))
                .then(|| signed.iter().map(|s| s.2.clone()).collect())
            };
            let (m, stats) = Manifest::from_entries_reusing(&entries, &config, progress, &reuse)?;
            report.incremental = Some(stats);
            m
        }
    };
    if manifest.file_count == 0 {
        return Err(Error::Digest(crate::digest::Error::Empty {
            path: path.into(),
        }));
    }
    if matches!(config.method, Method::Shards { .. })
        && manifest.resources().len() < manifest.file_count
    {
        warnings.push(
            "empty files have no shards and are not recorded in shard mode (OpenSSF model signing format); \
             sign without --shard-size to cover them"
                .to_string(),
        );
    }
    let subject = root
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("model")
        .to_string();
    let payload = model_statement(&subject, opts.kind, &manifest, &config);
    let bundle = sign_statement(signer, &payload)?;
    write_atomic(&bundle_path, &bundle.to_json(), opts.force)?;
    // A bundle is public material (the temp file behind it was 0600).
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bundle_path, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::io(&bundle_path, e))?;
    }
    if extras.write_stat_cache && !matches!(extras.source, ManifestSource::Parts(_)) {
        match cache::store(&root, &config, &entries, manifest.resources(), walk_started) {
            Ok(n) => report.stat_cache_entries = Some(n),
            Err(why) => warnings.push(format!("stat cache not written: {why}")),
        }
    }
    Ok(SignOutcome {
        bundle: bundle_path,
        subject,
        kind: opts.kind,
        root_digest: manifest.root_digest_hex(),
        files: manifest.file_count,
        resources: manifest.resources().len(),
        bytes: manifest.total_bytes,
        algorithm: config.algorithm.name(),
        ignore_paths: config.ignore_paths,
        source: report,
        warnings,
    })
}
