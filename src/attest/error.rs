use std::path::PathBuf;

/// Errors from signing and verification. A *verification failure* (bad signature, wrong key,
/// untrusted chain) is not an error: it comes back as findings in the outcome. These are the
/// cases where nothing could be decided (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Digest(#[from] crate::digest::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    KeyFormat(String),
    #[error("unsupported key: {0}")]
    UnsupportedKey(String),
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("{path}: malformed bundle: {why}")]
    MalformedBundle { path: PathBuf, why: String },
    #[error("{path}: unsupported bundle: {why}")]
    UnsupportedBundle { path: PathBuf, why: String },
    /// A bundle file that is not a well-formed Sigstore bundle.
    #[error("{path}: malformed bundle: {fault}")]
    BadBundle { path: PathBuf, fault: BundleFault },
    /// A well-formed bundle made with another signing method than the trust given.
    #[error("{path}: unsupported bundle: {method}")]
    OtherMethod { path: PathBuf, method: OtherMethod },
    #[error("{path}: already exists")]
    Exists { path: PathBuf },
    /// Verification failed (exit 1): the signature, key or chain is not acceptable.
    #[error("{message}")]
    Rejected { code: &'static str, message: String },
    #[error("passphrase: {0}")]
    Passphrase(String),
    #[error(transparent)]
    Pkcs11(#[from] super::pkcs11::Error),
}

/// How a bundle file is malformed (the file named by [`Error::BadBundle`]).
#[derive(Debug, thiserror::Error)]
pub enum BundleFault {
    #[error("not a regular file")]
    NotAFile,
    #[error(
        "{len} bytes is over the {} byte limit",
        super::bundle::MAX_BUNDLE_BYTES
    )]
    TooLarge { len: u64 },
    #[error("the file is empty")]
    Empty,
    #[error(
        "{} at line {line} column {column}: {source}",
        if *truncated { "truncated JSON" } else { "invalid bundle JSON" }
    )]
    Json {
        truncated: bool,
        line: usize,
        column: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("no dsseEnvelope")]
    NoDsseEnvelope,
    #[error("the DSSE envelope has no signature")]
    NoSignature,
    #[error("dsseEnvelope.payload is not base64")]
    PayloadNotBase64,
    #[error("dsseEnvelope.signatures[0].sig is not base64")]
    SignatureNotBase64,
    #[error("certificate {index} is not base64")]
    CertificateNotBase64 { index: usize },
    #[error("certificate {index}: {source}")]
    Certificate {
        index: usize,
        #[source]
        source: Box<Error>,
    },
    #[error("the certificate chain is empty")]
    EmptyChain,
}

/// The signing method a bundle shows, when it is not the one the trust given verifies.
#[derive(Debug, thiserror::Error)]
pub enum OtherMethod {
    #[error("it signs a single blob (messageSignature), not a model manifest (dsseEnvelope)")]
    MessageSignature,
    #[error("the DSSE envelope has several signatures; model signatures have one")]
    SeveralSignatures,
    #[error("it was signed with the certificate method")]
    Certificate,
    #[error("it is a keyless Sigstore bundle (Fulcio certificate + Rekor entry)")]
    Keyless,
    #[error("it was signed with the key method")]
    Key,
    #[error("it has no x509CertificateChain")]
    NoCertificateChain,
}

impl From<crate::util::fs::WriteError> for Error {
    fn from(e: crate::util::fs::WriteError) -> Self {
        match e {
            crate::util::fs::WriteError::Exists { path } => Error::Exists { path },
            crate::util::fs::WriteError::Io { path, source } => Error::Io { path, source },
        }
    }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
