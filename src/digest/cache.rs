//! The stat cache behind incremental re-signing (`mlsign sign --since OLD.sig`).
//!
//! After hashing a tree, `sign` and `hash` record for every file its device, inode, size,
//! mtime and ctime (nanoseconds) next to the digests computed, in
//! `$XDG_CACHE_HOME/mlsign/stat-<hash of the root path>.json`. A later run may take a file's
//! digests from an old signature only when the file's stat is identical to the recorded one
//! *and* the recorded digests equal the signature's: the stat proves the file is unchanged since
//! it was hashed, the signature provides the digests.
//!
//! Trust assumption: the signer trusts its own file system's metadata. Any writer changes
//! ctime, which no unprivileged user can set back; root (or someone resetting the clock) can
//! defeat this, exactly as they could replace the file between hashing and signing. Anything
//! doubtful means re-hashing: a missing, corrupt, tampered (HMAC with a per-user key) or foreign
//! cache, another algorithm or shard size, a file system without nanosecond times, and files
//! changed so recently that a later write could share their timestamp (racy entries are never
//! recorded). `verify` never reads the cache.

use super::manifest::{pieces, Resource};
use super::walk::Entry;
use super::{HashConfig, Method};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

const VERSION: u64 = 1;
/// Entries changed less than this before the walk are not recorded: a write within the same
/// clock tick (kernel timestamps come from a coarse clock) could leave stat unchanged.
const RACY_NS: i64 = 50_000_000;
/// Caches larger than this are not read (a million files take about 150 MB).
const MAX_CACHE: u64 = 4 << 30;

/// Where caches live: `$XDG_CACHE_HOME/mlsign`, else `$HOME/.cache/mlsign`.
pub fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(base.join("mlsign"))
}

/// Nanoseconds since the epoch, now.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn cache_file(dir: &Path, root: &Path) -> PathBuf {
    let h = super::sha256(root.as_os_str().as_encoded_bytes());
    dir.join(format!("stat-{}.json", hex::encode(&h[..16])))
}

/// The per-user HMAC key (created on first use, mode 0600; concurrent first runs agree on one).
fn mac_key(dir: &Path, create: bool) -> Result<ring::hmac::Key, String> {
    let p = dir.join("cache.key");
    let read = || -> Result<Option<ring::hmac::Key>, String> {
        match std::fs::read(&p) {
            Ok(k) if k.len() == 32 => Ok(Some(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &k))),
            Ok(_) => Err(format!("{}: not a 32-byte key", p.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", p.display())),
        }
    };
    if let Some(k) = read()? {
        return Ok(k);
    }
    if !create {
        return Err(format!("{}: no cache key", p.display()));
    }
    let mut k = zeroize::Zeroizing::new([0u8; 32]);
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut k[..]);
    // Written whole to a 0600 temp file, then linked into place only if absent.
    let mut tmp = tempfile::Builder::new()
        .prefix(".key-")
        .tempfile_in(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    tmp.write_all(&k[..])
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| format!("{}: {e}", tmp.path().display()))?;
    match tmp.persist_noclobber(&p) {
        Ok(_) => Ok(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &k[..])),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
            read()?.ok_or_else(|| format!("{}: vanished", p.display()))
        }
        Err(e) => Err(format!("{}: {}", p.display(), e.error)),
    }
}

fn method_json(config: &HashConfig) -> serde_json::Value {
    match config.method {
        Method::Files => serde_json::Value::Null,
        Method::Shards { shard_size } => serde_json::json!(shard_size),
    }
}

/// The stat identity of a file as recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stat {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

impl Stat {
    fn of(e: &Entry) -> Stat {
        Stat {
            dev: e.dev,
            ino: e.ino,
            size: e.size,
            mtime_ns: e.mtime_ns,
            ctime_ns: e.ctime_ns,
        }
    }
}

/// A loaded cache: path → (stat, digests).
pub struct StatCache {
    entries: std::collections::HashMap<String, (Stat, Vec<Vec<u8>>)>,
}

/// Why no cache is used (turned into a warning by the caller).
#[derive(Debug)]
pub struct Miss(pub String);

impl StatCache {
    /// Load the cache of `root` (canonical) recorded with the same algorithm and shard size.
    pub fn load(root: &Path, config: &HashConfig) -> Result<StatCache, Miss> {
        let dir = cache_dir()
            .ok_or_else(|| Miss("no cache directory ($XDG_CACHE_HOME and $HOME unset)".into()))?;
        let path = cache_file(&dir, root);
        let shown = path.display().to_string();
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Miss(format!(
                    "no stat cache for {} ({shown}); run `mlsign sign` or `mlsign hash` once to create it",
                    root.display()
                )))
            }
            Err(e) => return Err(Miss(format!("{shown}: {e}"))),
        };
        if meta.len() > MAX_CACHE {
            return Err(Miss(format!(
                "{shown}: {} bytes is too large for a stat cache",
                meta.len()
            )));
        }
        let data = std::fs::read(&path).map_err(|e| Miss(format!("{shown}: {e}")))?;
        let key = mac_key(&dir, false).map_err(Miss)?;
        let corrupt = |why: &str| Miss(format!("{shown}: corrupt stat cache ({why})"));
        let nl = data
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| corrupt("no MAC line"))?;
        let mac = hex::decode(&data[..nl]).map_err(|_| corrupt("MAC is not hex"))?;
        let body = &data[nl + 1..];
        ring::hmac::verify(&key, body, &mac).map_err(|_| {
            Miss(format!(
                "{shown}: the stat cache's MAC does not match (tampered with, or written with another key)"
            ))
        })?;
        let v: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| corrupt(&e.to_string()))?;
        if v["version"].as_u64() != Some(VERSION) {
            return Err(corrupt("unknown version"));
        }
        let root_meta =
            std::fs::metadata(root).map_err(|e| Miss(format!("{}: {e}", root.display())))?;
        if v["root"].as_str() != root.to_str()
            || v["root_dev"].as_u64() != Some(root_meta.dev())
            || v["root_ino"].as_u64() != Some(root_meta.ino())
        {
            return Err(Miss(format!(
                "{shown}: the stat cache belongs to another tree (path, device or inode of the root differ)"
            )));
        }
        if v["algorithm"].as_str() != Some(config.algorithm.name())
            || v["shard_size"] != method_json(config)
        {
            return Err(Miss(format!(
                "{shown}: the stat cache was recorded with another algorithm or shard size"
            )));
        }
        let dlen = config.algorithm.digest_len();
        let mut entries = std::collections::HashMap::new();
        for e in v["entries"]
            .as_array()
            .ok_or_else(|| corrupt("no entries"))?
        {
            let a = e
                .as_array()
                .filter(|a| a.len() == 7)
                .ok_or_else(|| corrupt("bad entry"))?;
            let u = |i: usize| a[i].as_u64().ok_or_else(|| corrupt("bad number"));
            let s = |i: usize| a[i].as_i64().ok_or_else(|| corrupt("bad number"));
            let name = a[0]
                .as_str()
                .ok_or_else(|| corrupt("bad name"))?
                .to_string();
            let stat = Stat {
                dev: u(1)?,
                ino: u(2)?,
                size: u(3)?,
                mtime_ns: s(4)?,
                ctime_ns: s(5)?,
            };
            let raw = hex::decode(a[6].as_str().ok_or_else(|| corrupt("bad digests"))?)
                .map_err(|_| corrupt("digests are not hex"))?;
            if raw.len() % dlen != 0 {
                return Err(corrupt("digest length"));
            }
            let digests = raw.chunks(dlen).map(<[u8]>::to_vec).collect();
            entries.insert(name, (stat, digests));
        }
        Ok(StatCache { entries })
    }

    /// The recorded digests of `e`, if its stat is exactly what was recorded.
    pub fn lookup(&self, e: &Entry) -> Option<&[Vec<u8>]> {
        let (stat, d) = self.entries.get(&e.name)?;
        (*stat == Stat::of(e) && has_ns(e)).then_some(d.as_slice())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Sub-second parts of both times are zero: a file system without nanosecond times (or a 1 in
/// 10^18 coincidence, which only costs a re-hash).
fn has_ns(e: &Entry) -> bool {
    e.mtime_ns % 1_000_000_000 != 0 || e.ctime_ns % 1_000_000_000 != 0
}

/// Record `entries` with their digests (`resources`: the manifest of exactly these entries, in
/// order) for `root`.
/// Entries without nanosecond times, or changed within [`RACY_NS`] of `walk_started_ns` (or
/// later), are left out. Returns how many were recorded.
pub fn store(
    root: &Path,
    config: &HashConfig,
    entries: &[Entry],
    resources: &[Resource],
    walk_started_ns: i64,
) -> Result<usize, String> {
    let dir = cache_dir().ok_or("no cache directory ($XDG_CACHE_HOME and $HOME unset)")?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    let key = mac_key(&dir, true)?;
    let root_meta = std::fs::metadata(root).map_err(|e| format!("{}: {e}", root.display()))?;
    let mut body = Vec::with_capacity(entries.len() * 160);
    let head = serde_json::json!({
        "version": VERSION,
        "root": root.to_str(),
        "root_dev": root_meta.dev(),
        "root_ino": root_meta.ino(),
        "algorithm": config.algorithm.name(),
        "shard_size": method_json(config),
    });
    // The head object without its closing brace, then the entries array.
    let head = serde_json::to_string(&head).map_err(|e| e.to_string())?;
    body.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
    body.extend_from_slice(b",\"entries\":[");
    let limit = walk_started_ns.saturating_sub(RACY_NS);
    let mut n = 0usize;
    let mut rest = resources;
    for e in entries {
        let k = pieces(e.size, config.method).count();
        if k > rest.len() {
            return Err("the manifest does not match the walked files".into());
        }
        let (d, tail) = rest.split_at(k);
        rest = tail;
        if !has_ns(e) || e.ctime_ns > limit || e.mtime_ns > limit {
            continue;
        }
        if n > 0 {
            body.push(b',');
        }
        let name = serde_json::to_string(&e.name).map_err(|e| e.to_string())?;
        let hexd: String = d.iter().map(|r| hex::encode(&r.digest)).collect();
        let _ = write!(
            body,
            "[{name},{},{},{},{},{},\"{hexd}\"]",
            e.dev, e.ino, e.size, e.mtime_ns, e.ctime_ns
        );
        n += 1;
    }
    body.extend_from_slice(b"]}");
    let mac = ring::hmac::sign(&key, &body);
    let mut out = hex::encode(mac.as_ref()).into_bytes();
    out.push(b'\n');
    out.extend_from_slice(&body);
    let path = cache_file(&dir, root);
    let mut tmp = tempfile::Builder::new()
        .prefix(".stat-")
        .tempfile_in(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    tmp.write_all(&out)
        .map_err(|e| format!("{}: {e}", tmp.path().display()))?;
    tmp.persist(&path)
        .map_err(|e| format!("{}: {}", path.display(), e.error))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::HashAlgorithm;

    fn entry(name: &str, size: u64, ctime_ns: i64) -> Entry {
        Entry {
            name: name.into(),
            open_path: PathBuf::from(name),
            size,
            dev: 1,
            ino: 7,
            mtime_ns: ctime_ns - 5_000_000_000,
            ctime_ns,
        }
    }

    fn res(name: &str, d: u8) -> Resource {
        Resource {
            name: name.into(),
            algorithm: "sha256".into(),
            digest: vec![d; 32],
        }
    }

    #[test]
    fn records_only_safe_entries_and_detects_tampering() {
        let t = tempfile::tempdir().unwrap();
        // The only test of this binary that reads the cache location from the environment.
        std::env::set_var("XDG_CACHE_HOME", t.path());
        let root = t.path().join("model");
        std::fs::create_dir_all(&root).unwrap();
        let cfg = HashConfig::default();
        let now = 1_700_000_000_123_456_789i64;
        let entries = [
            entry("old", 3, now - 10_000_000_000),
            entry("racy", 3, now - 1_000_000), // changed 1 ms before the walk
            entry("no-ns", 3, 1_600_000_000_000_000_000), // whole seconds only
        ];
        let resources = [res("old", 1), res("racy", 2), res("no-ns", 3)];
        assert_eq!(store(&root, &cfg, &entries, &resources, now).unwrap(), 1);
        let c = StatCache::load(&root, &cfg).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c.lookup(&entries[0]), Some(&[vec![1u8; 32]][..]));
        assert!(c.lookup(&entries[1]).is_none());
        let mut changed = entries[0].clone();
        changed.ctime_ns += 1;
        assert!(
            c.lookup(&changed).is_none(),
            "any stat difference is a miss"
        );
        // Another algorithm, another root, a flipped byte: all misses with a reason.
        let b3 = HashConfig {
            algorithm: HashAlgorithm::Blake3,
            ..HashConfig::default()
        };
        assert!(StatCache::load(&root, &b3)
            .err()
            .unwrap()
            .0
            .contains("algorithm"));
        let other = t.path().join("other");
        std::fs::create_dir_all(&other).unwrap();
        assert!(StatCache::load(&other, &cfg)
            .err()
            .unwrap()
            .0
            .contains("no stat cache"));
        let file = cache_file(&t.path().join("mlsign"), &root);
        let mut bytes = std::fs::read(&file).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 1;
        std::fs::write(&file, &bytes).unwrap();
        assert!(StatCache::load(&root, &cfg)
            .err()
            .unwrap()
            .0
            .contains("MAC"));
        // A mismatch between entries and resources is refused, not recorded wrongly.
        assert!(store(&root, &cfg, &entries, &resources[..1], now).is_err());
    }
}
