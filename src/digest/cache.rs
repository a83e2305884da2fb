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

use super::manifest::ListedManifest;
use super::walk::{Entry, FileStat};
use super::{HashConfig, Method};
use hmac::{Hmac, Mac};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

type HmacSha256 = Hmac<sha2::Sha256>;

/// Format 2: the body first, then its MAC on the last line (written in one streamed pass).
/// Format 1 (MAC first, `ring` HMAC) is no longer read; such files are pruned.
const VERSION: u64 = 2;
/// Bound into every MAC, so a MAC of one format can never authenticate another.
const MAC_DOMAIN: &[u8] = b"mlsign stat cache v2\n";
/// Entries changed less than this before the walk are not recorded: a write within the same
/// clock tick (kernel timestamps come from a coarse clock) could leave stat unchanged.
const RACY_NS: i64 = 50_000_000;
/// Caches larger than this are not read (a million files take about 150 MB).
const MAX_CACHE: u64 = 4 << 30;
/// The cache directory keeps at most this many trees' caches (the most recently written) ...
const MAX_CACHES: usize = 256;
/// ... none older than this, and none whose tree is gone.
const MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Leftover temp files of interrupted runs older than this are removed.
const TEMP_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

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

/// Why a stat cache is not used or not written. Each is only a missed optimisation: the caller
/// re-hashes and warns. Every variant names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("no cache directory ($XDG_CACHE_HOME and $HOME unset)")]
    NoDir,
    #[error("no stat cache for {} ({})", root.display(), path.display())]
    Missing { root: PathBuf, path: PathBuf },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {len} bytes is too large for a stat cache (at most {MAX_CACHE})", path.display())]
    TooLarge { path: PathBuf, len: u64 },
    #[error("{}: corrupt stat cache ({why})", path.display())]
    Corrupt { path: PathBuf, why: Corruption },
    #[error("{}: the stat cache's MAC does not match (tampered with, or written with another key)", path.display())]
    MacMismatch { path: PathBuf },
    #[error("{}: the stat cache belongs to another tree (path, device or inode of the root differ)", path.display())]
    OtherTree { path: PathBuf },
    #[error("{}: the stat cache was recorded with another algorithm or shard size", path.display())]
    OtherSettings { path: PathBuf },
    #[error("{}: not a 32-byte key ({len} bytes)", path.display())]
    KeyLength { path: PathBuf, len: usize },
    #[error("{}: no cache key", path.display())]
    NoKey { path: PathBuf },
    #[error("{}: vanished", path.display())]
    KeyVanished { path: PathBuf },
}

/// How a stat cache file is malformed.
#[derive(Debug, thiserror::Error)]
pub enum Corruption {
    #[error("truncated: no MAC line")]
    Truncated,
    #[error("no MAC line")]
    NoMacLine,
    #[error("MAC is not hex; written by an older mlsign? it is replaced on the next run")]
    MacNotHex,
    #[error("{0}")]
    Json(#[source] serde_json::Error),
    #[error("unknown version {0}")]
    Version(u64),
    #[error("truncated while read")]
    TruncatedWhileRead,
    #[error("missing head fields")]
    MissingHead,
    #[error("no entries")]
    NoEntries,
    #[error("{name:?} is recorded twice")]
    Duplicate { name: String },
    #[error("digests of {name:?} are not hex")]
    DigestsNotHex { name: String },
    #[error("digest length: {len} bytes recorded for {name:?}, not a multiple of {digest_len}")]
    DigestLength {
        name: String,
        len: usize,
        digest_len: usize,
    },
}

impl CacheError {
    fn io(path: &Path) -> impl Fn(std::io::Error) -> CacheError + Copy + '_ {
        move |source| CacheError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A fresh MAC over `MAC_DOMAIN` with the per-user key (created on first use, mode 0600;
/// concurrent first runs agree on one).
fn mac_key(dir: &Path, create: bool) -> Result<HmacSha256, CacheError> {
    let p = dir.join("cache.key");
    let keyed = |k: &[u8]| {
        let mut m = <HmacSha256 as Mac>::new_from_slice(k).map_err(|_| CacheError::KeyLength {
            path: p.clone(),
            len: k.len(),
        })?;
        m.update(MAC_DOMAIN);
        Ok::<_, CacheError>(m)
    };
    let read = || -> Result<Option<HmacSha256>, CacheError> {
        match std::fs::read(&p).map(zeroize::Zeroizing::new) {
            Ok(k) if k.len() == 32 => keyed(&k).map(Some),
            Ok(k) => Err(CacheError::KeyLength {
                path: p.clone(),
                len: k.len(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CacheError::io(&p)(e)),
        }
    };
    if let Some(k) = read()? {
        return Ok(k);
    }
    if !create {
        return Err(CacheError::NoKey { path: p });
    }
    let mut k = zeroize::Zeroizing::new([0u8; 32]);
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut k[..]);
    // Written whole to a 0600 temp file, then linked into place only if absent.
    let mut tmp = tempfile::Builder::new()
        .prefix(".key-")
        .tempfile_in(dir)
        .map_err(CacheError::io(dir))?;
    tmp.write_all(&k[..])
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(CacheError::io(tmp.path()))?;
    match tmp.persist_noclobber(&p) {
        Ok(_) => keyed(&k[..]),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
            read()?.ok_or(CacheError::KeyVanished { path: p.clone() })
        }
        Err(e) => Err(CacheError::io(&p)(e.error)),
    }
}

fn shard_size(config: &HashConfig) -> Option<u64> {
    match config.method {
        Method::Files => None,
        Method::Shards { shard_size } => Some(shard_size),
    }
}

/// The cache body as written (keys in this order).
#[derive(serde::Serialize, serde::Deserialize)]
struct Head {
    version: u64,
    root: Option<String>,
    root_dev: u64,
    root_ino: u64,
    algorithm: String,
    shard_size: Option<u64>,
}

/// A loaded cache, compact: names in one buffer, a stat record and the digests per file, and
/// an index sorted by name for lookups (~100 bytes a file plus its name, where a map of
/// strings and vectors took several hundred).
pub struct StatCache {
    names: String,
    /// Per entry: end of its name in `names`, end of its digests in `digests`, its stat.
    ends: Vec<(u32, usize)>,
    stats: Vec<FileStat>,
    digests: Vec<u8>,
    /// Entry indices sorted by name.
    order: Vec<u32>,
    /// Why the parse stopped, when an entry was malformed (load only).
    bad: Option<Corruption>,
}

/// Reads the cache body: the head's fields, and `entries` straight into a [`StatCache`].
struct BodySeed<'a> {
    cache: &'a mut StatCache,
    dlen: usize,
}

#[derive(Default)]
struct HeadFields {
    version: Option<u64>,
    root: Option<Option<String>>,
    root_dev: Option<u64>,
    root_ino: Option<u64>,
    algorithm: Option<String>,
    shard_size: Option<Option<u64>>,
    entries: bool,
}

impl<'de> serde::de::DeserializeSeed<'de> for BodySeed<'_> {
    type Value = HeadFields;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<HeadFields, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for BodySeed<'_> {
    type Value = HeadFields;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a stat cache")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<HeadFields, A::Error> {
        let mut h = HeadFields::default();
        while let Some(k) = map.next_key::<String>()? {
            match k.as_str() {
                "version" => h.version = Some(map.next_value()?),
                "root" => h.root = Some(map.next_value()?),
                "root_dev" => h.root_dev = Some(map.next_value()?),
                "root_ino" => h.root_ino = Some(map.next_value()?),
                "algorithm" => h.algorithm = Some(map.next_value()?),
                "shard_size" => h.shard_size = Some(map.next_value()?),
                "entries" => {
                    map.next_value_seed(EntriesSeed {
                        cache: &mut *self.cache,
                        dlen: self.dlen,
                    })?;
                    h.entries = true;
                }
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(h)
    }
}

struct EntriesSeed<'a> {
    cache: &'a mut StatCache,
    dlen: usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for EntriesSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for EntriesSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cache entries")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(EntrySeed {
                cache: &mut *self.cache,
                dlen: self.dlen,
            })?
            .is_some()
        {}
        Ok(())
    }
}

/// `[name, dev, ino, size, mtime_ns, ctime_ns, hex digests]`
struct EntrySeed<'a> {
    cache: &'a mut StatCache,
    dlen: usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for EntrySeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[name, dev, ino, size, mtime_ns, ctime_ns, digests]")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        use serde::de::Error as _;
        fn next<'de, T: serde::Deserialize<'de>, A: serde::de::SeqAccess<'de>>(
            seq: &mut A,
        ) -> Result<T, A::Error> {
            seq.next_element()?
                .ok_or_else(|| A::Error::custom("an entry has fewer than 7 fields"))
        }
        let name: std::borrow::Cow<'de, str> = next(&mut seq)?;
        let stat = FileStat {
            dev: next(&mut seq)?,
            ino: next(&mut seq)?,
            size: next(&mut seq)?,
            mtime_ns: next(&mut seq)?,
            ctime_ns: next(&mut seq)?,
        };
        let digests: std::borrow::Cow<'de, str> = next(&mut seq)?;
        if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
            return Err(A::Error::custom("an entry has more than 7 fields"));
        }
        let c = self.cache;
        let at = c.digests.len();
        let n = digests.len() / 2;
        c.digests.resize(at + n, 0);
        if digests.len() % 2 != 0
            || hex::decode_to_slice(digests.as_bytes(), &mut c.digests[at..]).is_err()
        {
            c.bad = Some(Corruption::DigestsNotHex {
                name: name.into_owned(),
            });
            return Err(A::Error::custom("digests are not hex"));
        }
        if n % self.dlen != 0 {
            c.bad = Some(Corruption::DigestLength {
                name: name.into_owned(),
                len: n,
                digest_len: self.dlen,
            });
            return Err(A::Error::custom("digest length"));
        }
        c.names.push_str(&name);
        let end = u32::try_from(c.names.len())
            .map_err(|_| A::Error::custom("names too long to index"))?;
        c.ends.push((end, c.digests.len()));
        c.stats.push(stat);
        Ok(())
    }
}

impl StatCache {
    /// Load the cache of `root` (canonical) recorded with the same algorithm and shard size.
    pub fn load(root: &Path, config: &HashConfig) -> Result<StatCache, CacheError> {
        let dir = cache_dir().ok_or(CacheError::NoDir)?;
        let path = cache_file(&dir, root);
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CacheError::Missing {
                    root: root.to_path_buf(),
                    path,
                })
            }
            Err(e) => return Err(CacheError::io(&path)(e)),
        };
        if meta.len() > MAX_CACHE {
            return Err(CacheError::TooLarge {
                path,
                len: meta.len(),
            });
        }
        // BODY '\n' HEX-MAC '\n', read in one pass: the MAC is fed every chunk read from the
        // file while the body is parsed from those same bytes (a cache of a million files is
        // ~150 MB; it is never held). Parsed entries count only once the MAC matches.
        use std::io::{Read, Seek};
        let io = CacheError::io(&path);
        let mut file = std::fs::File::open(&path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let tail_len = len.min(256);
        let mut tail = vec![0u8; tail_len as usize];
        file.seek(std::io::SeekFrom::Start(len - tail_len))
            .and_then(|_| file.read_exact(&mut tail))
            .map_err(io)?;
        let mac = mac_key(&dir, false)?;
        let corrupt = |why: Corruption| CacheError::Corrupt {
            path: path.clone(),
            why,
        };
        let not_hex = || corrupt(Corruption::MacNotHex);
        let data = tail
            .strip_suffix(b"\n")
            .ok_or_else(|| corrupt(Corruption::Truncated))?;
        let nl = match data.iter().rposition(|&b| b == b'\n') {
            Some(nl) => nl,
            None if tail_len < len => return Err(not_hex()),
            None => return Err(corrupt(Corruption::NoMacLine)),
        };
        let tag = hex::decode(&data[nl + 1..]).map_err(|_| not_hex())?;
        let body_len = len - tail_len + nl as u64;
        file.rewind().map_err(io)?;
        let mut reader = std::io::BufReader::with_capacity(
            1 << 16,
            MacRead {
                inner: file.take(body_len),
                mac,
            },
        );
        let dlen = config.algorithm.digest_len();
        let mut cache = StatCache {
            names: String::new(),
            ends: Vec::new(),
            stats: Vec::new(),
            digests: Vec::new(),
            order: Vec::new(),
            bad: None,
        };
        let parsed = {
            use serde::de::DeserializeSeed;
            let mut de = serde_json::Deserializer::from_reader(&mut reader);
            BodySeed {
                cache: &mut cache,
                dlen,
            }
            .deserialize(&mut de)
            .and_then(|h| de.end().map(|()| h))
        };
        // The whole body goes through the MAC, whatever the parser made of it; the MAC is
        // checked first, as when the file was read whole.
        std::io::copy(&mut reader, &mut std::io::sink()).map_err(io)?;
        let MacRead { inner, mac } = reader.into_inner();
        if inner.limit() != 0 {
            return Err(corrupt(Corruption::TruncatedWhileRead));
        }
        mac.verify_slice(&tag)
            .map_err(|_| CacheError::MacMismatch { path: path.clone() })?;
        // A malformed entry leaves its typed reason in `cache.bad`; serde only carries a text.
        let head = parsed.map_err(|e| corrupt(cache.bad.take().unwrap_or(Corruption::Json(e))))?;
        let (Some(version), Some(head_root), Some(root_dev), Some(root_ino), Some(algorithm)) = (
            head.version,
            head.root,
            head.root_dev,
            head.root_ino,
            head.algorithm,
        ) else {
            return Err(corrupt(Corruption::MissingHead));
        };
        if !head.entries {
            return Err(corrupt(Corruption::NoEntries));
        }
        if version != VERSION {
            return Err(corrupt(Corruption::Version(version)));
        }
        let root_meta = std::fs::metadata(root).map_err(CacheError::io(root))?;
        if head_root.as_deref() != root.to_str()
            || root_dev != root_meta.dev()
            || root_ino != root_meta.ino()
        {
            return Err(CacheError::OtherTree { path });
        }
        if algorithm != config.algorithm.name() || head.shard_size.flatten() != shard_size(config) {
            return Err(CacheError::OtherSettings { path });
        }
        let mut order: Vec<u32> = (0..cache.ends.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| cache.name(a as usize).cmp(cache.name(b as usize)));
        if let Some(w) = order
            .windows(2)
            .find(|w| cache.name(w[0] as usize) == cache.name(w[1] as usize))
        {
            return Err(corrupt(Corruption::Duplicate {
                name: cache.name(w[0] as usize).to_owned(),
            }));
        }
        cache.order = order;
        cache.names.shrink_to_fit();
        cache.digests.shrink_to_fit();
        Ok(cache)
    }

    fn name(&self, i: usize) -> &str {
        let start = if i == 0 {
            0
        } else {
            self.ends[i - 1].0 as usize
        };
        &self.names[start..self.ends[i].0 as usize]
    }

    fn digests_of(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1].1 };
        &self.digests[start..self.ends[i].1]
    }

    /// The recorded digests of `e` (concatenated, one per piece), if its stat is exactly what
    /// was recorded.
    pub fn lookup(&self, e: &Entry) -> Option<&[u8]> {
        let k = self
            .order
            .binary_search_by(|&i| self.name(i as usize).cmp(e.name.as_str()))
            .ok()?;
        let i = self.order[k] as usize;
        (self.stats[i] == e.stat() && has_ns(&e.stat())).then(|| self.digests_of(i))
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// Sub-second parts of both times are zero: a file system without nanosecond times (or a 1 in
/// 10^18 coincidence, which only costs a re-hash).
fn has_ns(s: &FileStat) -> bool {
    s.mtime_ns % 1_000_000_000 != 0 || s.ctime_ns % 1_000_000_000 != 0
}

/// Reads from a file and feeds the MAC the same bytes.
struct MacRead<R: std::io::Read> {
    inner: R,
    mac: HmacSha256,
}

impl<R: std::io::Read> std::io::Read for MacRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.mac.update(&buf[..n]);
        Ok(n)
    }
}

/// Writes to a file and feeds the MAC the same bytes.
struct MacWriter<W: Write> {
    out: W,
    mac: HmacSha256,
}

impl<W: Write> Write for MacWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.mac.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Record every file of `manifest` with its digests for `root` (a later `sign --since`).
/// Files without nanosecond times, or changed within [`RACY_NS`] of `walk_started_ns` (or
/// later), are left out. Returns how many were recorded. Streams: memory does not grow with
/// the tree. Prunes stale caches of other trees afterwards.
pub fn store(
    root: &Path,
    config: &HashConfig,
    manifest: &ListedManifest<'_>,
    walk_started_ns: i64,
) -> Result<usize, CacheError> {
    let l = manifest.listing();
    store_records(
        root,
        config,
        manifest.files().map(|(i, d)| (l.name(i), l.stat(i), d)),
        walk_started_ns,
    )
}

/// [`store`] from (name, stat, concatenated digests) records in manifest order.
fn store_records<'a>(
    root: &Path,
    config: &HashConfig,
    records: impl Iterator<Item = (&'a str, FileStat, &'a [u8])>,
    walk_started_ns: i64,
) -> Result<usize, CacheError> {
    let dir = cache_dir().ok_or(CacheError::NoDir)?;
    std::fs::create_dir_all(&dir).map_err(CacheError::io(&dir))?;
    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    let mac = mac_key(&dir, true)?;
    let root_meta = std::fs::metadata(root).map_err(CacheError::io(root))?;
    let head = Head {
        version: VERSION,
        root: root.to_str().map(str::to_string),
        root_dev: root_meta.dev(),
        root_ino: root_meta.ino(),
        algorithm: config.algorithm.name().to_string(),
        shard_size: shard_size(config),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".stat-")
        .tempfile_in(&dir)
        .map_err(CacheError::io(&dir))?;
    let tmp_path = tmp.path().to_path_buf();
    let io = CacheError::io(&tmp_path);
    let n = {
        let mut w = MacWriter {
            out: BufWriter::with_capacity(1 << 16, tmp.as_file()),
            mac,
        };
        // The head object without its closing brace, then the entries array.
        let head = serde_json::to_string(&head).map_err(|e| io(e.into()))?;
        w.write_all(&head.as_bytes()[..head.len() - 1])
            .map_err(io)?;
        w.write_all(b",\"entries\":[").map_err(io)?;
        let limit = walk_started_ns.saturating_sub(RACY_NS);
        let mut n = 0usize;
        let mut hexd = Vec::new();
        for (name, st, d) in records {
            if !has_ns(&st) || st.ctime_ns > limit || st.mtime_ns > limit {
                continue;
            }
            if n > 0 {
                w.write_all(b",").map_err(io)?;
            }
            w.write_all(b"[").map_err(io)?;
            serde_json::to_writer(&mut w, name).map_err(|e| io(e.into()))?;
            hexd.resize(d.len() * 2, 0);
            hex::encode_to_slice(d, &mut hexd).map_err(|e| io(std::io::Error::other(e)))?;
            write!(
                w,
                ",{},{},{},{},{},\"",
                st.dev, st.ino, st.size, st.mtime_ns, st.ctime_ns
            )
            .map_err(io)?;
            w.write_all(&hexd).map_err(io)?;
            w.write_all(b"\"]").map_err(io)?;
            n += 1;
        }
        w.write_all(b"]}").map_err(io)?;
        let MacWriter { mut out, mac } = w;
        let tag = hex::encode(mac.finalize().into_bytes());
        write!(out, "\n{tag}\n").map_err(io)?;
        out.flush().map_err(io)?;
        n
    };
    let path = cache_file(&dir, root);
    tmp.persist(&path)
        .map_err(|e| CacheError::io(&path)(e.error))?;
    prune(&dir, &path);
    Ok(n)
}

/// Keep the cache directory bounded: remove caches of another format, of trees that no longer
/// exist, older than [`MAX_AGE`], then the oldest beyond [`MAX_CACHES`]; and temp files of
/// interrupted runs. Best effort (a cache is only ever an optimisation).
fn prune(dir: &Path, keep: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    let mut live = Vec::new();
    for ent in rd.flatten() {
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        let Ok(meta) = ent.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let mtime = meta.modified().unwrap_or(now);
        let age = now.duration_since(mtime).unwrap_or_default();
        let path = ent.path();
        if name.starts_with(".stat-") || name.starts_with(".key-") {
            if age > TEMP_MAX_AGE {
                let _ = std::fs::remove_file(&path);
            }
            continue;
        }
        if !(name.starts_with("stat-") && name.ends_with(".json")) || path == keep {
            continue;
        }
        if age > MAX_AGE || stale(&path) {
            let _ = std::fs::remove_file(&path);
        } else {
            live.push((mtime, path));
        }
    }
    // `keep` counts as one.
    if live.len() >= MAX_CACHES {
        live.sort();
        for (_, p) in &live[..live.len() + 1 - MAX_CACHES] {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A cache of another format, or of a tree whose root path no longer exists. Only the head is
/// read; anything unclear counts as live.
fn stale(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 4096];
    let Ok(n) = std::fs::File::open(path).and_then(|mut f| f.read(&mut head)) else {
        return false;
    };
    let head = &head[..n];
    let prefix = format!("{{\"version\":{VERSION},\"root\":");
    let Some(rest) = head.strip_prefix(prefix.as_bytes()) else {
        return n > 0;
    };
    let mut it = serde_json::Deserializer::from_slice(rest).into_iter::<Option<String>>();
    match it.next() {
        Some(Ok(Some(root))) => matches!(
            std::fs::symlink_metadata(&root),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::HashAlgorithm;

    fn stat(ctime_ns: i64) -> FileStat {
        FileStat {
            size: 3,
            dev: 1,
            ino: 7,
            mtime_ns: ctime_ns - 5_000_000_000,
            ctime_ns,
        }
    }

    fn entry(name: &str, s: FileStat) -> Entry {
        Entry {
            name: name.into(),
            open_path: PathBuf::from(name),
            size: s.size,
            dev: s.dev,
            ino: s.ino,
            mtime_ns: s.mtime_ns,
            ctime_ns: s.ctime_ns,
        }
    }

    #[test]
    fn records_only_safe_entries_detects_tampering_and_prunes() {
        let t = tempfile::tempdir().unwrap();
        // The only test of this binary that reads the cache location from the environment.
        std::env::set_var("XDG_CACHE_HOME", t.path());
        let root = t.path().join("model");
        std::fs::create_dir_all(&root).unwrap();
        let cfg = HashConfig::default();
        let now = 1_700_000_000_123_456_789i64;
        let stats = [
            ("old", stat(now - 10_000_000_000)),
            ("racy", stat(now - 1_000_000)), // changed 1 ms before the walk
            ("no-ns", stat(1_600_000_000_000_000_000)), // whole seconds only
        ];
        let digests = [[1u8; 32], [2; 32], [3; 32]];
        let records = || {
            stats
                .iter()
                .zip(&digests)
                .map(|((n, s), d)| (*n, *s, &d[..]))
        };
        assert_eq!(store_records(&root, &cfg, records(), now).unwrap(), 1);
        let c = StatCache::load(&root, &cfg).unwrap();
        assert_eq!(c.len(), 1);
        let old = entry("old", stats[0].1);
        assert_eq!(c.lookup(&old), Some(&[1u8; 32][..]));
        assert!(c.lookup(&entry("racy", stats[1].1)).is_none());
        let mut changed = old.clone();
        changed.ctime_ns += 1;
        assert!(
            c.lookup(&changed).is_none(),
            "any stat difference is a miss"
        );
        // Another algorithm, another root, a flipped byte, a MAC of the old format: all misses
        // with a reason.
        let b3 = HashConfig {
            algorithm: HashAlgorithm::Blake3,
            ..HashConfig::default()
        };
        let e = StatCache::load(&root, &b3).err().unwrap();
        assert!(matches!(e, CacheError::OtherSettings { .. }), "{e}");
        assert!(e.to_string().contains("algorithm"), "{e}");
        let other = t.path().join("other");
        std::fs::create_dir_all(&other).unwrap();
        let e = StatCache::load(&other, &cfg).err().unwrap();
        assert!(matches!(e, CacheError::Missing { .. }), "{e}");
        assert!(e.to_string().contains("no stat cache"), "{e}");
        let dir = t.path().join("mlsign");
        let file = cache_file(&dir, &root);
        let good = std::fs::read(&file).unwrap();
        let mut bytes = good.clone();
        let at = bytes.iter().position(|&b| b == b'\n').unwrap() - 5;
        bytes[at] ^= 1;
        std::fs::write(&file, &bytes).unwrap();
        let e = StatCache::load(&root, &cfg).err().unwrap();
        assert!(matches!(e, CacheError::MacMismatch { .. }), "{e}");
        // A valid MAC made without the format's domain separation is refused too.
        let body = &good[..good.iter().position(|&b| b == b'\n').unwrap()];
        let key = std::fs::read(dir.join("cache.key")).unwrap();
        let mut plain = <HmacSha256 as Mac>::new_from_slice(&key).unwrap();
        plain.update(body);
        let mut forged = body.to_vec();
        forged.extend_from_slice(
            format!("\n{}\n", hex::encode(plain.finalize().into_bytes())).as_bytes(),
        );
        std::fs::write(&file, &forged).unwrap();
        let e = StatCache::load(&root, &cfg).err().unwrap();
        assert!(matches!(e, CacheError::MacMismatch { .. }), "{e}");

        // Hostile files, one variant each: the MAC is checked before the body is parsed, so
        // bodies that are not the format need a valid MAC (made here with the key).
        let sealed = |body: &[u8]| {
            let mut m = mac_key(&dir, false).unwrap();
            m.update(body);
            let mut out = body.to_vec();
            out.extend_from_slice(
                format!("\n{}\n", hex::encode(m.finalize().into_bytes())).as_bytes(),
            );
            out
        };
        let head = |version: u64| {
            let m = std::fs::metadata(&root).unwrap();
            format!(
                "{{\"version\":{version},\"root\":{},\"root_dev\":{},\"root_ino\":{},\"algorithm\":\"sha256\",\"shard_size\":null,\"entries\":",
                serde_json::to_string(root.to_str().unwrap()).unwrap(),
                m.dev(),
                m.ino()
            )
        };
        type Case = (&'static str, Vec<u8>, fn(&CacheError) -> bool);
        let cases: Vec<Case> = vec![
            ("empty", Vec::new(), |e| {
                matches!(
                    e,
                    CacheError::Corrupt {
                        why: Corruption::Truncated,
                        ..
                    }
                )
            }),
            ("one line", b"{}\n".to_vec(), |e| {
                matches!(
                    e,
                    CacheError::Corrupt {
                        why: Corruption::NoMacLine,
                        ..
                    }
                )
            }),
            ("MAC not hex", b"{}\nzz\n".to_vec(), |e| {
                matches!(
                    e,
                    CacheError::Corrupt {
                        why: Corruption::MacNotHex,
                        ..
                    }
                )
            }),
            ("not JSON", sealed(b"{\"version\":"), |e| {
                matches!(
                    e,
                    CacheError::Corrupt {
                        why: Corruption::Json(_),
                        ..
                    }
                )
            }),
            (
                "version 3",
                sealed(format!("{}[]}}", head(3)).as_bytes()),
                |e| {
                    matches!(
                        e,
                        CacheError::Corrupt {
                            why: Corruption::Version(3),
                            ..
                        }
                    )
                },
            ),
            (
                "digests not hex",
                sealed(format!("{}[[\"a\",1,2,3,4,5,\"xy\"]]}}", head(VERSION)).as_bytes()),
                |e| matches!(e, CacheError::Corrupt { why: Corruption::DigestsNotHex { name }, .. } if name == "a"),
            ),
            (
                "short digest",
                sealed(format!("{}[[\"a\",1,2,3,4,5,\"abcd\"]]}}", head(VERSION)).as_bytes()),
                |e| {
                    matches!(
                        e,
                        CacheError::Corrupt {
                            why: Corruption::DigestLength {
                                len: 2,
                                digest_len: 32,
                                ..
                            },
                            ..
                        }
                    )
                },
            ),
        ];
        for (what, bytes, want) in cases {
            std::fs::write(&file, &bytes).unwrap();
            let e = StatCache::load(&root, &cfg).err().unwrap();
            assert!(want(&e), "{what}: {e:?}");
            assert!(
                e.to_string().contains(file.to_str().unwrap()),
                "{what}: {e}"
            );
        }
        std::fs::write(&file, sealed(format!("{}[]}}", head(VERSION)).as_bytes())).unwrap();
        assert!(
            StatCache::load(&root, &cfg).is_ok(),
            "the forged cases used the right head"
        );
        // A key of the wrong length is refused, never stretched.
        let key_path = dir.join("cache.key");
        std::fs::write(&key_path, [7u8; 31]).unwrap();
        let e = StatCache::load(&root, &cfg).err().unwrap();
        assert!(matches!(e, CacheError::KeyLength { len: 31, .. }), "{e:?}");
        std::fs::write(&key_path, &key).unwrap();

        // Pruning: the cache of a deleted tree, an old-format cache and an old temp file go;
        // the live cache of an existing tree stays.
        let gone = t.path().join("gone");
        std::fs::create_dir_all(&gone).unwrap();
        store_records(&gone, &cfg, records(), now).unwrap();
        let gone_file = cache_file(&dir, &gone);
        assert!(gone_file.exists());
        std::fs::remove_dir(&gone).unwrap();
        let v1 = dir.join("stat-00000000000000000000000000000000.json");
        std::fs::write(&v1, format!("{}\n{{\"version\":1}}", "ab".repeat(32))).unwrap();
        let tmp = dir.join(".stat-leftover");
        std::fs::write(&tmp, "x").unwrap();
        let f = std::fs::File::options().write(true).open(&tmp).unwrap();
        f.set_modified(SystemTime::now() - 2 * TEMP_MAX_AGE)
            .unwrap();
        store_records(&root, &cfg, records(), now).unwrap();
        assert!(!gone_file.exists() && !v1.exists() && !tmp.exists());
        assert!(cache_file(&dir, &root).exists());
        assert!(StatCache::load(&root, &cfg).is_ok());
    }

    #[test]
    fn prune_keeps_at_most_max_caches() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("live");
        std::fs::create_dir_all(&root).unwrap();
        let head = format!(
            "{{\"version\":{VERSION},\"root\":{}}}",
            serde_json::to_string(root.to_str().unwrap()).unwrap()
        );
        let base = SystemTime::now() - Duration::from_secs(3600);
        for i in 0..MAX_CACHES + 10 {
            let p = t.path().join(format!("stat-{i:032}.json"));
            std::fs::write(&p, &head).unwrap();
            let f = std::fs::File::options().write(true).open(&p).unwrap();
            f.set_modified(base + Duration::from_secs(i as u64))
                .unwrap();
        }
        let keep = t.path().join("stat-keep.json");
        std::fs::write(&keep, &head).unwrap();
        prune(t.path(), &keep);
        let left: Vec<_> = std::fs::read_dir(t.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_str().unwrap().starts_with("stat-"))
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        assert_eq!(left.len(), MAX_CACHES);
        assert!(left.contains(&"stat-keep.json".to_string()));
        // The oldest went first.
        assert!(!left.contains(&format!("stat-{:032}.json", 0)));
        assert!(left.contains(&format!("stat-{:032}.json", MAX_CACHES + 9)));
    }
}
