/// Errors talking to a registry or reading what it serves. Each names the registry step that
/// failed. A signature that does not verify is not an error: it is a rejected candidate in the
/// outcome (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid reference {input:?}: {why}")]
    Reference { input: String, why: String },
    #[error("{step}: cannot reach {url}: {why}")]
    Unreachable {
        step: String,
        url: String,
        why: String,
    },
    #[error("{step}: {url} did not answer within {secs} s")]
    Timeout {
        step: String,
        url: String,
        secs: u64,
    },
    #[error("{step}: {url}: 401 unauthorized{detail}")]
    Unauthorized {
        step: String,
        url: String,
        detail: String,
    },
    #[error(
        "{step}: {url}: 403 forbidden{detail}; the credentials lack access to this repository"
    )]
    Forbidden {
        step: String,
        url: String,
        detail: String,
    },
    #[error("{step}: {url}: 404 not found{detail}")]
    NotFound {
        step: String,
        url: String,
        detail: String,
    },
    #[error("{step}: {url}: HTTP {status}{detail}")]
    Status {
        step: String,
        url: String,
        status: u16,
        detail: String,
    },
    #[error("{step}: {url}: the response is larger than the {limit} byte limit for {what}")]
    TooLarge {
        step: String,
        url: String,
        what: &'static str,
        limit: u64,
    },
    #[error("{step}: {what}: the registry served bytes with digest {actual}, expected {expected}")]
    DigestMismatch {
        step: String,
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{step}: {what}: {size} bytes, but the descriptor says {expected}")]
    SizeMismatch {
        step: String,
        what: String,
        expected: u64,
        size: u64,
    },
    #[error("{what}: {why}")]
    Malformed { what: String, why: String },
    #[error("{what}: unsafe file path {path:?}: {why}")]
    UnsafePath {
        what: String,
        path: String,
        why: String,
    },
    #[error("{0} is not a model artifact mlsign can read: {1}")]
    NotAModel(String, String),
    #[error("refusing plain HTTP to {host}: only loopback registries and hosts allowed as insecure registries may use it")]
    Insecure { host: String },
    #[error("credentials: {0}")]
    Credentials(String),
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: already exists")]
    Exists { path: std::path::PathBuf },
    #[error("{}: no valid signature covers {} (nothing was written)", .0.reference, .0.digest)]
    NotVerified(Box<super::verify::VerifyOutcome>),
    #[error(transparent)]
    Attest(#[from] crate::attest::Error),
    #[error(transparent)]
    Digest(#[from] crate::digest::Error),
    /// Keyless signing (Fulcio, Rekor, TSA) failed; nothing was attached.
    #[error("keyless signing: {0}")]
    Keyless(#[from] crate::attest::sigstore::sign::SignError),
}

impl Error {
    pub(crate) fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn malformed(what: impl Into<String>, why: impl Into<String>) -> Self {
        Error::Malformed {
            what: what.into(),
            why: why.into(),
        }
    }
}
