use serde::{Deserialize, Serialize};

/// Paths at the root that model_signing ignores by default (and records as ignored).
pub const GIT_PATHS: [&str; 4] = [".git", ".gitattributes", ".github", ".gitignore"];

/// Digest algorithm applied to each file or shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum HashAlgorithm {
    #[default]
    Sha256,
    Blake2b,
    Blake3,
}

impl HashAlgorithm {
    /// The name model_signing records in `hash_type` and in resource algorithms.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Blake2b => "blake2b",
            HashAlgorithm::Blake3 => "blake3",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "sha256" => Some(HashAlgorithm::Sha256),
            "blake2b" | "blake2" => Some(HashAlgorithm::Blake2b),
            "blake3" => Some(HashAlgorithm::Blake3),
            _ => None,
        }
    }

    pub fn digest_len(self) -> usize {
        match self {
            HashAlgorithm::Sha256 | HashAlgorithm::Blake3 => 32,
            HashAlgorithm::Blake2b => 64,
        }
    }
}

impl std::fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One digest per file, or one per fixed-size shard of each file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Files,
    Shards { shard_size: u64 },
}

/// Everything that decides the manifest of a tree. The first four fields are recorded in the
/// signature (model_signing's `serialization`); the rest only affect how fast we get there.
#[derive(Clone, Debug)]
pub struct HashConfig {
    pub algorithm: HashAlgorithm,
    pub method: Method,
    /// Follow symlinks whose target stays inside the root.
    pub allow_symlinks: bool,
    /// Root-relative POSIX paths left out (a directory covers everything under it). Includes
    /// [`GIT_PATHS`] when they are ignored.
    pub ignore_paths: Vec<String>,
    /// Worker threads; `None` = all cores.
    pub threads: Option<usize>,
}

impl Default for HashConfig {
    /// SHA-256, one digest per file, no symlinks, git paths ignored: model_signing's defaults.
    fn default() -> Self {
        HashConfig {
            algorithm: HashAlgorithm::Sha256,
            method: Method::Files,
            allow_symlinks: false,
            ignore_paths: GIT_PATHS.iter().map(|s| s.to_string()).collect(),
            threads: None,
        }
    }
}

impl HashConfig {
    pub fn threads(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }
}

/// Progress reporting hook for long runs (the CLI draws a bar with it).
pub trait Progress: Sync {
    fn start(&self, _total_bytes: u64) {}
    fn advance(&self, _bytes: u64) {}
    fn finish(&self) {}
}

/// A [`Progress`] that reports nothing.
pub struct NoProgress;
impl Progress for NoProgress {}
