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
