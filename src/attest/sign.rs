//! Signing: statement → DSSE → Sigstore bundle, written atomically.

use super::bundle::{
    self, Bundle, Certificate, CertificateChain, Envelope, EnvelopeSignature, PublicKeyIdentifier,
    VerificationMaterial,
};
use super::cert::Cert;
use super::statement::{model_statement, SubjectKind};
use super::{dsse, Error, SigningKey};
use crate::digest::{HashConfig, Manifest, Progress};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A key, optionally with its certificate chain (the certificate method).
pub struct Signer {
    key: SigningKey,
    /// Leaf first, then intermediates.
    certificates: Vec<Cert>,
}

impl Signer {
    /// The key method: the bundle carries the key's hint.
    pub fn from_key(key: SigningKey) -> Signer {
        Signer {
            key,
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
        if leaf.public_key()? != key.verifying_key() {
            return Err(Error::Certificate(format!(
                "the signing certificate '{}' is for another key than the private key given",
                leaf.subject()
            )));
        }
        let mut certificates = vec![leaf];
        certificates.extend(chain);
        Ok(Signer { key, certificates })
    }

    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    fn verification_material(&self) -> VerificationMaterial {
        if self.certificates.is_empty() {
            VerificationMaterial {
                public_key: Some(PublicKeyIdentifier {
                    hint: self.key.verifying_key().hint(),
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

/// Sign an in-toto statement (exact bytes) into a v0.3 bundle.
pub fn sign_statement(signer: &Signer, payload: &[u8]) -> Bundle {
    let sig = signer
        .key
        .sign(&dsse::pae(bundle::IN_TOTO_PAYLOAD_TYPE, payload));
    Bundle {
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
    }
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

/// Hash `path` and write a signed bundle for it.
pub fn sign_model(
    path: &Path,
    signer: &Signer,
    opts: &SignOptions,
    progress: &dyn Progress,
) -> Result<SignOutcome, Error> {
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
    if let Some(rel) = inside(&root, &bundle_path) {
        // As model_signing: a signature inside the model is left out, and that is recorded.
        config.ignore_paths.push(rel);
    }
    config.ignore_paths.sort();
    config.ignore_paths.dedup();
    let manifest = Manifest::from_path_with(&root, &config, progress)?;
    if manifest.file_count == 0 {
        return Err(Error::Digest(crate::digest::Error::Empty {
            path: path.into(),
        }));
    }
    let mut warnings = Vec::new();
    if matches!(config.method, crate::digest::Method::Shards { .. })
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
    let bundle = sign_statement(signer, &payload);
    write_atomic(&bundle_path, &bundle.to_json(), opts.force)?;
    // A bundle is public material (the temp file behind it was 0600).
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bundle_path, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::io(&bundle_path, e))?;
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
        warnings,
    })
}
