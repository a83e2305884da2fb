use std::path::PathBuf;

/// Why a tree could not be hashed. Every variant names the path involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: no such file or directory")]
    NotFound { path: PathBuf },
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: is a symbolic link; links are refused by default")]
    Symlink { path: PathBuf },
    #[error("{path}: symbolic link leads outside the root (to {target}); refusing to follow it")]
    SymlinkEscapes { path: PathBuf, target: PathBuf },
    #[error("{path}: symbolic link to a directory; only links to regular files can be hashed")]
    SymlinkToDir { path: PathBuf },
    #[error("{path}: is a {kind}, not a regular file or directory")]
    SpecialFile { path: PathBuf, kind: &'static str },
    #[error("{path}: changed while it was being hashed ({what})")]
    Changed { path: PathBuf, what: &'static str },
    #[error("{path}: file name is not valid UTF-8, which the manifest format cannot record")]
    NonUtf8 { path: PathBuf },
    #[error("{path}: nothing to hash: no regular files after the ignore rules")]
    Empty { path: PathBuf },
    #[error("invalid shard size {0}: it must be at least 1 byte")]
    ShardSize(u64),
    #[error("unsafe or malformed manifest entry {name:?}: {why}")]
    UnsafeName { name: String, why: &'static str },
    #[error("cannot start hashing threads: {0}")]
    Threads(std::io::Error),
    #[error(transparent)]
    Partition(#[from] super::partition::PartError),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound { path }
        } else {
            Error::Io { path, source }
        }
    }
}
