//! Software dependencies from lockfiles: Cargo.lock, pip `requirements.txt` (with `--hash`),
//! `uv.lock` and `poetry.lock`. Each parser turns untrusted text into [`LockedPackage`]s with a
//! purl and the hashes the lockfile pins; the kind is chosen by file name.

mod cargo;
mod poetry;
mod requirements;
mod uv;

use super::cyclonedx::Hash;
use std::path::Path;

/// Lockfiles larger than this are refused (a real one is well under a few MiB).
pub const MAX_LOCKFILE_BYTES: u64 = 64 << 20;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LockedPackage {
    /// `cargo` or `pypi` (the purl type).
    pub ecosystem: &'static str,
    pub name: String,
    pub version: Option<String>,
    pub purl: Option<String>,
    /// Sorted, deduplicated.
    pub hashes: Vec<Hash>,
    /// Names (and versions where the lockfile says) of direct dependencies: keys into the same
    /// lockfile's [`LockedPackage::key`].
    pub dependencies: Vec<String>,
    /// Where it comes from when not the default registry (git URL, path, other index).
    pub source: Option<String>,
}

impl LockedPackage {
    /// Identity inside one lockfile: `name@version` (or `name`).
    pub fn key(&self) -> String {
        match &self.version {
            Some(v) => format!("{}@{}", self.name, v),
            None => self.name.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    Cargo,
    Requirements,
    Uv,
    Poetry,
}

impl LockKind {
    /// Choose by file name: `Cargo.lock`, `uv.lock`, `poetry.lock`, `*.txt` (pip requirements).
    pub fn from_path(path: &Path) -> Option<LockKind> {
        let name = path.file_name()?.to_str()?;
        match name {
            "Cargo.lock" => Some(LockKind::Cargo),
            "uv.lock" => Some(LockKind::Uv),
            "poetry.lock" => Some(LockKind::Poetry),
            n if n.ends_with(".txt") => Some(LockKind::Requirements),
            _ => None,
        }
    }
}

/// A lockfile that could not be read; `at` is `file:line` where known.
#[derive(Debug, thiserror::Error)]
#[error("{at}: {message}")]
pub struct LockError {
    pub at: String,
    pub message: String,
}

impl LockError {
    pub(crate) fn new(at: impl Into<String>, message: impl Into<String>) -> Self {
        LockError {
            at: at.into(),
            message: message.into(),
        }
    }
}

/// Read and parse one lockfile.
pub fn load(path: &Path) -> Result<Vec<LockedPackage>, LockError> {
    let shown = path.display().to_string();
    let kind = LockKind::from_path(path).ok_or_else(|| {
        LockError::new(
            &shown,
            "unknown lockfile kind: the name must be Cargo.lock, uv.lock, poetry.lock or *.txt \
             (pip requirements)",
        )
    })?;
    let meta = std::fs::metadata(path).map_err(|e| LockError::new(&shown, e.to_string()))?;
    if meta.len() > MAX_LOCKFILE_BYTES {
        return Err(LockError::new(
            &shown,
            format!(
                "{} bytes is larger than the {MAX_LOCKFILE_BYTES}-byte limit",
                meta.len()
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| LockError::new(&shown, e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        LockError::new(
            &shown,
            format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to()),
        )
    })?;
    parse(kind, &text, &shown)
}

/// Parse lockfile text of a known kind; `shown` names the file in errors.
pub fn parse(kind: LockKind, text: &str, shown: &str) -> Result<Vec<LockedPackage>, LockError> {
    let mut pkgs = match kind {
        LockKind::Cargo => cargo::parse(text, shown)?,
        LockKind::Requirements => requirements::parse(text, shown)?,
        LockKind::Uv => uv::parse(text, shown)?,
        LockKind::Poetry => poetry::parse(text, shown)?,
    };
    for p in &mut pkgs {
        p.hashes.sort();
        p.hashes.dedup();
        p.dependencies.sort();
        p.dependencies.dedup();
    }
    pkgs.sort();
    pkgs.dedup_by(|a, b| a.key() == b.key() && a.source == b.source);
    Ok(pkgs)
}

/// PEP 503 name normalisation (lower case, runs of `-_.` become `-`), as purl `pkg:pypi` wants.
pub(crate) fn pep503(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// Percent-encode a purl name or version segment (RFC 3986 unreserved stays).
pub(crate) fn purl_enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(crate) fn pypi_purl(name: &str, version: Option<&str>) -> String {
    match version {
        Some(v) => format!("pkg:pypi/{}@{}", purl_enc(&pep503(name)), purl_enc(v)),
        None => format!("pkg:pypi/{}", purl_enc(&pep503(name))),
    }
}

/// `sha256:<hex>` (pip, uv, poetry) to a CycloneDX hash; other algorithms map by name, unknown
/// ones are an error so nothing is silently dropped.
pub(crate) fn parse_hash(s: &str, at: &str) -> Result<Hash, LockError> {
    let (alg, hex) = s
        .split_once(':')
        .or_else(|| s.split_once('='))
        .ok_or_else(|| LockError::new(at, format!("hash {s:?} is not ALG:HEX")))?;
    let (cdx, len) = match alg.to_ascii_lowercase().as_str() {
        "sha256" => ("SHA-256", 64),
        "sha384" => ("SHA-384", 96),
        "sha512" => ("SHA-512", 128),
        "md5" => ("MD5", 32),
        "sha1" => ("SHA-1", 40),
        other => {
            return Err(LockError::new(
                at,
                format!("unsupported hash algorithm {other:?}"),
            ))
        }
    };
    if hex.len() != len || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(LockError::new(
            at,
            format!("hash {s:?}: expected {len} hex digits"),
        ));
    }
    Ok(Hash {
        alg: cdx.into(),
        content: hex.to_ascii_lowercase(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pep503_and_purl() {
        assert_eq!(pep503("Foo__Bar.baz"), "foo-bar-baz");
        assert_eq!(pypi_purl("PyYAML", Some("6.0.1")), "pkg:pypi/pyyaml@6.0.1");
        assert_eq!(
            pypi_purl("torch", Some("2.1.0+cpu")),
            "pkg:pypi/torch@2.1.0%2Bcpu"
        );
    }

    #[test]
    fn hash_parsing() {
        let h = parse_hash(&format!("sha256:{}", "AB".repeat(32)), "x").unwrap();
        assert_eq!(h.alg, "SHA-256");
        assert_eq!(h.content, "ab".repeat(32));
        assert!(parse_hash("sha256:abc", "x").is_err());
        assert!(parse_hash("crc32:abcd", "x").is_err());
        assert!(parse_hash("nocolon", "x").is_err());
    }

    /// Fuzz smoke: every prefix and many single-byte mutations of real lockfiles must parse or
    /// fail cleanly, never panic.
    #[test]
    fn mutated_lockfiles_never_panic() {
        let fixtures = [
            (
                LockKind::Cargo,
                include_str!("../../../testdata/bom/locks/Cargo.lock"),
            ),
            (
                LockKind::Requirements,
                include_str!("../../../testdata/bom/locks/requirements.txt"),
            ),
            (
                LockKind::Uv,
                include_str!("../../../testdata/bom/locks/uv.lock"),
            ),
            (
                LockKind::Poetry,
                include_str!("../../../testdata/bom/locks/poetry.lock"),
            ),
        ];
        for (kind, text) in fixtures {
            assert!(parse(kind, text, "f").is_ok(), "{kind:?} fixture parses");
            let b = text.as_bytes();
            for cut in 0..b.len() {
                if let Ok(t) = std::str::from_utf8(&b[..cut]) {
                    let _ = parse(kind, t, "f");
                }
            }
            let mut seed = 0x9e37_79b9_7f4a_7c15u64;
            for _ in 0..400 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let mut m = b.to_vec();
                let i = (seed as usize) % m.len();
                const CH: &[u8] = b"\"[]{}=\n#:\\ x9";
                m[i] = CH[(seed >> 32) as usize % CH.len()];
                if let Ok(t) = std::str::from_utf8(&m) {
                    let _ = parse(kind, t, "f");
                }
            }
        }
    }

    #[test]
    fn kind_by_name() {
        assert_eq!(
            LockKind::from_path(Path::new("a/Cargo.lock")),
            Some(LockKind::Cargo)
        );
        assert_eq!(
            LockKind::from_path(Path::new("requirements-dev.txt")),
            Some(LockKind::Requirements)
        );
        assert_eq!(LockKind::from_path(Path::new("package-lock.json")), None);
    }
}
