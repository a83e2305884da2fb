//! The manifest: ordered (name, algorithm, digest) resources and their root digest, exactly as
//! model_signing computes them.

use super::hash::{hash_items, Item};
use super::walk::{walk, Entry, Listing};
use super::{Error, HashAlgorithm, HashConfig, Method, NoProgress, Progress};
use crate::util::sha256;
use std::path::Path;

/// One manifest entry: a file (`name` = path) or a shard (`name` = `path:start:end`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    pub name: String,
    /// `sha256`, `blake3`, `blake2b`, or `<alg>-sharded-<size>` for shards.
    pub algorithm: String,
    pub digest: Vec<u8>,
}

impl Resource {
    pub fn hex(&self) -> String {
        hex::encode(&self.digest)
    }

    /// The file path this resource covers (for shards: `name` without `:start:end`).
    pub fn path(&self) -> &str {
        self.shard().map_or(self.name.as_str(), |(p, _, _)| p)
    }

    /// For a shard resource, `(path, start, end)`.
    pub fn shard(&self) -> Option<(&str, u64, u64)> {
        if !self.algorithm.contains("-sharded-") {
            return None;
        }
        let mut it = self.name.rsplitn(3, ':');
        let end = it.next()?.parse().ok()?;
        let start = it.next()?.parse().ok()?;
        let path = it.next()?;
        Some((path, start, end))
    }
}

/// Reject names that could escape the root or are not in canonical form. Signed manifests are
/// checked with this before anything is read from disk.
pub fn check_resource_name(name: &str) -> Result<(), Error> {
    let bad = |why| {
        Err(Error::UnsafeName {
            name: name.to_string(),
            why,
        })
    };
    if name == "." {
        return Ok(());
    }
    if name.is_empty() {
        return bad("empty name");
    }
    if name.starts_with('/') {
        return bad("absolute path");
    }
    if name.contains('\\') {
        return bad("backslash in path");
    }
    if name.contains('\0') {
        return bad("NUL byte in path");
    }
    for part in name.split('/') {
        match part {
            "" => return bad("empty path component"),
            "." => return bad("`.` path component"),
            ".." => return bad("`..` path component escapes the root"),
            _ => {}
        }
    }
    Ok(())
}

/// What an incremental run reused and what it hashed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Reuse {
    pub reused_files: usize,
    pub reused_bytes: u64,
    pub hashed_files: usize,
    pub hashed_bytes: u64,
}

/// The byte ranges hashed into one digest each: the whole file, or `[0,S) [S,2S) …` as
/// model_signing cuts shards (an empty file has no shard).
pub fn pieces(size: u64, method: Method) -> impl Iterator<Item = (u64, u64)> {
    let (step, whole) = match method {
        Method::Files => (u64::MAX, true),
        Method::Shards { shard_size } => (shard_size.max(1), false),
    };
    let mut start = 0u64;
    let mut first = true;
    std::iter::from_fn(move || {
        if whole {
            return std::mem::take(&mut first).then_some((0, size));
        }
        if start >= size {
            return None;
        }
        let end = start.saturating_add(step).min(size);
        let r = (start, end);
        start = end;
        Some(r)
    })
}

/// The content manifest of a model or dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    resources: Vec<Resource>,
    /// Total bytes hashed.
    pub total_bytes: u64,
    /// Files hashed (including empty files, which shard mode does not record).
    pub file_count: usize,
}

impl Manifest {
    /// Hash `path` (a directory or a single file) with `config`.
    pub fn from_path(path: &Path, config: &HashConfig) -> Result<Manifest, Error> {
        Self::from_path_with(path, config, &NoProgress)
    }

    /// As [`Manifest::from_path`], reporting progress.
    pub fn from_path_with(
        path: &Path,
        config: &HashConfig,
        progress: &dyn Progress,
    ) -> Result<Manifest, Error> {
        let entries = walk(path, &config.ignore_paths, config.allow_symlinks)?;
        Self::from_entries(&entries, config, progress)
    }

    /// Hash already-walked entries.
    pub fn from_entries(
        entries: &[Entry],
        config: &HashConfig,
        progress: &dyn Progress,
    ) -> Result<Manifest, Error> {
        Self::from_entries_reusing(entries, config, progress, &|_| None).map(|(m, _)| m)
    }

    /// Hash already-walked entries, except those for which `reuse` returns their digests (one
    /// per piece: one for a file, one per shard in order; any other count is ignored and the
    /// entry is hashed). Incremental re-signing passes digests it proved unchanged.
    pub fn from_entries_reusing(
        entries: &[Entry],
        config: &HashConfig,
        progress: &dyn Progress,
        reuse: &dyn Fn(&Entry) -> Option<Vec<Vec<u8>>>,
    ) -> Result<(Manifest, Reuse), Error> {
        if let Method::Shards { shard_size: 0 } = config.method {
            return Err(Error::ShardSize(0));
        }
        let mut items = Vec::with_capacity(entries.len());
        // Per entry: reused digests, or the index of its first item.
        let mut known: Vec<Option<Vec<Vec<u8>>>> = Vec::with_capacity(entries.len());
        let mut stats = Reuse::default();
        for (i, e) in entries.iter().enumerate() {
            let n = pieces(e.size, config.method).count();
            if let Some(d) = reuse(e).filter(|d| d.len() == n) {
                stats.reused_files += 1;
                stats.reused_bytes += e.size;
                known.push(Some(d));
                continue;
            }
            stats.hashed_files += 1;
            stats.hashed_bytes += e.size;
            known.push(None);
            items.extend(pieces(e.size, config.method).map(|(start, end)| Item {
                entry: i,
                start,
                end,
            }));
        }
        progress.start(stats.hashed_bytes);
        let digests = hash_items(
            entries,
            &items,
            config.algorithm,
            config.threads(),
            progress,
        )?;
        progress.finish();
        let mut hashed = items.iter().zip(digests).peekable();
        let mut resources = Vec::with_capacity(entries.len());
        for (i, (e, k)) in entries.iter().zip(known).enumerate() {
            let mut one = |start: u64, end: u64, digest: Vec<u8>| {
                resources.push(match config.method {
                    Method::Files => Resource {
                        name: e.name.clone(),
                        algorithm: config.algorithm.name().to_string(),
                        digest,
                    },
                    Method::Shards { shard_size } => Resource {
                        name: format!("{}:{}:{}", e.name, start, end),
                        algorithm: format!("{}-sharded-{}", config.algorithm.name(), shard_size),
                        digest,
                    },
                })
            };
            match k {
                Some(ds) => {
                    for ((start, end), d) in pieces(e.size, config.method).zip(ds) {
                        one(start, end, d);
                    }
                }
                None => {
                    while let Some((it, d)) = hashed.next_if(|(it, _)| it.entry == i) {
                        one(it.start, it.end, d);
                    }
                }
            }
        }
        // Entries are sorted and pieces follow them, shards in ascending order: already ordered.
        Ok((
            Manifest {
                resources,
                total_bytes: stats.reused_bytes + stats.hashed_bytes,
                file_count: entries.len(),
            },
            stats,
        ))
    }

    /// Build from resources read out of a signature, ordering them canonically.
    pub fn from_resources(mut resources: Vec<Resource>) -> Manifest {
        resources.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
        Manifest {
            resources,
            total_bytes: 0,
            file_count: 0,
        }
    }

    pub fn resources(&self) -> &[Resource] {
        &self.resources
    }

    /// SHA-256 over the concatenated raw digests in order (always SHA-256, whatever the
    /// per-resource algorithm), as model_signing's subject digest.
    pub fn root_digest(&self) -> [u8; 32] {
        root_digest_of(&self.resources)
    }

    pub fn root_digest_hex(&self) -> String {
        hex::encode(self.root_digest())
    }
}

/// One resource as the statement writer sees it, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct ResourceRef<'a> {
    pub name: &'a str,
    pub algorithm: &'a str,
    pub digest: &'a [u8],
}

/// Anything that can list manifest resources in canonical order, any number of times, with the
/// same bytes each time: the in-memory [`Manifest`], or a [`ListedManifest`] (compact, for very
/// large trees). The signer streams the statement from it several times (length, signature,
/// bundle) instead of holding the payload.
pub trait ResourceSource {
    /// Resources (files, or shards) listed.
    fn resource_count(&self) -> usize;
    /// Visit every resource in order; stops at the first error `f` returns.
    fn each_resource(
        &self,
        f: &mut dyn FnMut(ResourceRef<'_>) -> std::io::Result<()>,
    ) -> std::io::Result<()>;
    /// SHA-256 over the concatenated raw digests (model_signing's subject digest).
    fn root_digest(&self) -> [u8; 32];
}

impl ResourceSource for Manifest {
    fn resource_count(&self) -> usize {
        self.resources.len()
    }
    fn each_resource(
        &self,
        f: &mut dyn FnMut(ResourceRef<'_>) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        for r in &self.resources {
            f(ResourceRef {
                name: &r.name,
                algorithm: &r.algorithm,
                digest: &r.digest,
            })?;
        }
        Ok(())
    }
    fn root_digest(&self) -> [u8; 32] {
        Manifest::root_digest(self)
    }
}

/// Files hashed per batch by [`hash_listing`]: whole trees below this size are scheduled in one
/// plan, exactly like [`Manifest::from_entries`]; bigger trees hold one batch of [`Entry`]s at a
/// time (a few MB) instead of one per file.
const BATCH_FILES: usize = 32 * 1024;

/// The manifest of a [`Listing`], compact: digests concatenated in one buffer (their
/// concatenation *is* the root digest's input), names taken from the listing. About 100 bytes
/// per file in all, where [`Manifest`] needs several hundred.
pub struct ListedManifest<'l> {
    listing: &'l Listing,
    method: Method,
    algorithm: HashAlgorithm,
    resource_algorithm: String,
    digests: Vec<u8>,
    resources: usize,
}

impl<'l> ListedManifest<'l> {
    /// Hash every file of `listing`, except those for which `reuse` returns their digests
    /// concatenated (one per piece, in order; any other length is ignored and the file hashed).
    pub fn hash(
        listing: &'l Listing,
        config: &HashConfig,
        progress: &dyn Progress,
        reuse: &dyn Fn(&Entry) -> Option<Vec<u8>>,
    ) -> Result<(ListedManifest<'l>, Reuse), Error> {
        #[allow(unused_mut)]
        let mut batch = BATCH_FILES;
        #[cfg(debug_assertions)]
        if let Some(n) = std::env::var("MLSIGN_TEST_BATCH_FILES")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            // Test hook (debug builds only): small batches on small trees.
            batch = n;
        }
        Self::hash_batched(listing, config, progress, reuse, batch)
    }

    fn hash_batched(
        listing: &'l Listing,
        config: &HashConfig,
        progress: &dyn Progress,
        reuse: &dyn Fn(&Entry) -> Option<Vec<u8>>,
        batch_files: usize,
    ) -> Result<(ListedManifest<'l>, Reuse), Error> {
        if let Method::Shards { shard_size: 0 } = config.method {
            return Err(Error::ShardSize(0));
        }
        let dlen = config.algorithm.digest_len();
        let mut stats = Reuse::default();
        let mut digests = Vec::new();
        let mut resources = 0usize;
        progress.start(listing.total_bytes());
        let mut start = 0;
        while start < listing.len() {
            let end = (start + batch_files.max(1)).min(listing.len());
            let batch: Vec<Entry> = (start..end).map(|i| listing.entry(i)).collect();
            let mut items = Vec::new();
            let mut known: Vec<Option<Vec<u8>>> = Vec::with_capacity(batch.len());
            for (i, e) in batch.iter().enumerate() {
                let n = pieces(e.size, config.method).count();
                resources += n;
                if let Some(d) = reuse(e).filter(|d| d.len() == n * dlen) {
                    stats.reused_files += 1;
                    stats.reused_bytes += e.size;
                    progress.advance(e.size);
                    known.push(Some(d));
                    continue;
                }
                stats.hashed_files += 1;
                stats.hashed_bytes += e.size;
                known.push(None);
                items.extend(pieces(e.size, config.method).map(|(start, end)| Item {
                    entry: i,
                    start,
                    end,
                }));
            }
            let hashed = hash_items(&batch, &items, config.algorithm, config.threads(), progress)?;
            // Items follow their entries in order, so walking both in step keeps manifest order.
            let mut hashed = items.iter().zip(hashed).peekable();
            for (i, k) in known.into_iter().enumerate() {
                match k {
                    Some(d) => digests.extend_from_slice(&d),
                    None => {
                        while let Some((_, d)) = hashed.next_if(|(it, _)| it.entry == i) {
                            digests.extend_from_slice(&d);
                        }
                    }
                }
            }
            start = end;
        }
        progress.finish();
        let resource_algorithm = match config.method {
            Method::Files => config.algorithm.name().to_string(),
            Method::Shards { shard_size } => {
                format!("{}-sharded-{}", config.algorithm.name(), shard_size)
            }
        };
        Ok((
            ListedManifest {
                listing,
                method: config.method,
                algorithm: config.algorithm,
                resource_algorithm,
                digests,
                resources,
            },
            stats,
        ))
    }

    /// The manifest of `listing` from digests computed elsewhere (merged partial manifests):
    /// `digests` holds every file's pieces in listing order, as [`ListedManifest::hash`]
    /// would. `None` when their number does not fit the listing.
    pub fn from_digests(
        listing: &'l Listing,
        config: &HashConfig,
        digests: Vec<u8>,
    ) -> Option<ListedManifest<'l>> {
        let dlen = config.algorithm.digest_len();
        let resources: usize = (0..listing.len())
            .map(|i| pieces(listing.stat(i).size, config.method).count())
            .sum();
        if digests.len() != resources.checked_mul(dlen)? {
            return None;
        }
        Some(ListedManifest {
            listing,
            method: config.method,
            algorithm: config.algorithm,
            resource_algorithm: match config.method {
                Method::Files => config.algorithm.name().to_string(),
                Method::Shards { shard_size } => {
                    format!("{}-sharded-{}", config.algorithm.name(), shard_size)
                }
            },
            digests,
            resources,
        })
    }

    pub fn listing(&self) -> &Listing {
        self.listing
    }

    /// The digests of file `i`, concatenated (one per piece); `at` is its first piece's index.
    fn file_digests(&self, at: usize, i: usize) -> &[u8] {
        let dlen = self.algorithm.digest_len();
        let n = pieces(self.listing.stat(i).size, self.method).count();
        &self.digests[at * dlen..(at + n) * dlen]
    }

    /// Every file's index with its concatenated digests (one per piece), in order.
    pub fn files(&self) -> impl Iterator<Item = (usize, &[u8])> + '_ {
        let dlen = self.algorithm.digest_len();
        (0..self.listing.len()).scan(0usize, move |at, i| {
            let d = self.file_digests(*at, i);
            *at += d.len() / dlen;
            Some((i, d))
        })
    }

    pub fn root_digest_hex(&self) -> String {
        hex::encode(sha256(&self.digests))
    }

    /// The in-memory form (partial manifests and JSON listings want [`Resource`]s).
    pub fn to_manifest(&self) -> Manifest {
        let mut resources = Vec::with_capacity(self.resources);
        let _ = self.each_resource(&mut |r| {
            resources.push(Resource {
                name: r.name.to_string(),
                algorithm: r.algorithm.to_string(),
                digest: r.digest.to_vec(),
            });
            Ok(())
        });
        Manifest {
            resources,
            total_bytes: self.listing.total_bytes(),
            file_count: self.listing.len(),
        }
    }
}

impl ResourceSource for ListedManifest<'_> {
    fn resource_count(&self) -> usize {
        self.resources
    }
    fn each_resource(
        &self,
        f: &mut dyn FnMut(ResourceRef<'_>) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let dlen = self.algorithm.digest_len();
        let mut name = String::new();
        let mut at = 0;
        for i in 0..self.listing.len() {
            let path = self.listing.name(i);
            for (start, end) in pieces(self.listing.stat(i).size, self.method) {
                let digest = &self.digests[at * dlen..(at + 1) * dlen];
                at += 1;
                let name = match self.method {
                    Method::Files => path,
                    Method::Shards { .. } => {
                        use std::fmt::Write;
                        name.clear();
                        let _ = write!(name, "{path}:{start}:{end}");
                        name.as_str()
                    }
                };
                f(ResourceRef {
                    name,
                    algorithm: &self.resource_algorithm,
                    digest,
                })?;
            }
        }
        Ok(())
    }
    fn root_digest(&self) -> [u8; 32] {
        sha256(&self.digests)
    }
}

/// Root digest of resources in the order given.
pub fn root_digest_of(resources: &[Resource]) -> [u8; 32] {
    let mut cat = Vec::with_capacity(resources.iter().map(|r| r.digest.len()).sum());
    for r in resources {
        cat.extend_from_slice(&r.digest);
    }
    sha256(&cat)
}

fn sort_key(r: &Resource) -> (Vec<&str>, u64, u64) {
    match r.shard() {
        Some((p, s, e)) => (p.split('/').collect(), s, e),
        None => (r.name.split('/').collect(), 0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("a")).unwrap();
        fs::write(d.path().join("a/b"), "hi\n").unwrap();
        fs::write(d.path().join("a.txt"), "x\n").unwrap();
        d
    }

    #[test]
    fn matches_model_signing_root_digest() {
        // Same tree signed with model_signing 1.1.1: root c411a492… (see tests/cli/signing.rs for
        // the live interop check).
        let d = tree();
        let m = Manifest::from_path(d.path(), &HashConfig::default()).unwrap();
        let names: Vec<_> = m.resources().iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a/b", "a.txt"]);
        assert_eq!(
            m.root_digest_hex(),
            "c411a4924ea846393ef2ee46d132d47e2e035de0bdca3a6323539af295cc958f"
        );
    }

    #[test]
    fn shards_cover_files_and_skip_empty() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("big"), vec![7u8; 10]).unwrap();
        fs::write(d.path().join("empty"), "").unwrap();
        let cfg = HashConfig {
            method: Method::Shards { shard_size: 4 },
            ..HashConfig::default()
        };
        let m = Manifest::from_path(d.path(), &cfg).unwrap();
        let names: Vec<_> = m.resources().iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["big:0:4", "big:4:8", "big:8:10"]);
        assert_eq!(m.resources()[0].algorithm, "sha256-sharded-4");
        assert_eq!(m.resources()[2].shard(), Some(("big", 8, 10)));
        assert_eq!(m.file_count, 2);
    }

    #[test]
    fn file_changed_after_walk_is_an_error() {
        let d = tree();
        let cfg = HashConfig::default();
        let entries = walk(d.path(), &cfg.ignore_paths, false).unwrap();
        // Grown between the walk and the read.
        fs::write(d.path().join("a.txt"), "x\nmore\n").unwrap();
        let err = Manifest::from_entries(&entries, &cfg, &NoProgress).unwrap_err();
        assert!(matches!(err, Error::Changed { .. }), "{err}");
        // Replaced by a symlink.
        let entries = walk(d.path(), &cfg.ignore_paths, false).unwrap();
        fs::remove_file(d.path().join("a/b")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", d.path().join("a/b")).unwrap();
        let err = Manifest::from_entries(&entries, &cfg, &NoProgress).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }

    #[test]
    fn listed_manifest_equals_the_in_memory_one_across_batches() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for (p, n) in [
            ("a/b", 10usize),
            ("a.txt", 3),
            ("a/c/d\"q\u{e9}", 9),
            ("empty", 0),
            ("z/y/x", 1),
        ] {
            let f = r.join(p);
            fs::create_dir_all(f.parent().unwrap()).unwrap();
            fs::write(f, vec![n as u8; n]).unwrap();
        }
        for method in [Method::Files, Method::Shards { shard_size: 4 }] {
            let cfg = HashConfig {
                method,
                ..HashConfig::default()
            };
            let want = Manifest::from_path(r, &cfg).unwrap();
            let listing = crate::digest::walk_listing(r, &cfg.ignore_paths, false).unwrap();
            for batch in [1, 2, 100] {
                let (got, stats) =
                    ListedManifest::hash_batched(&listing, &cfg, &NoProgress, &|_| None, batch)
                        .unwrap();
                assert_eq!(
                    got.to_manifest().resources(),
                    want.resources(),
                    "{method:?}"
                );
                assert_eq!(got.root_digest(), want.root_digest());
                assert_eq!(got.resource_count(), want.resources().len());
                assert_eq!(stats.hashed_files, 5);
                // Reuse: digests handed back for one file are taken as they are.
                let dlen = 32;
                let fake = |e: &Entry| {
                    (e.name == "a/b").then(|| vec![7u8; pieces(e.size, method).count() * dlen])
                };
                let (got, stats) =
                    ListedManifest::hash_batched(&listing, &cfg, &NoProgress, &fake, batch)
                        .unwrap();
                assert_eq!((stats.reused_files, stats.reused_bytes), (1, 10));
                let m = got.to_manifest();
                assert!(m
                    .resources()
                    .iter()
                    .filter(|x| x.path() == "a/b")
                    .all(|x| x.digest == vec![7u8; 32]));
                // A wrong count is ignored: the file is hashed.
                let bad = |e: &Entry| (e.name == "a/b").then(|| vec![7u8; 5]);
                let (got, _) =
                    ListedManifest::hash_batched(&listing, &cfg, &NoProgress, &bad, batch).unwrap();
                assert_eq!(got.root_digest(), want.root_digest());
            }
        }
    }

    #[test]
    fn resource_order_is_component_wise() {
        let r = |n: &str| Resource {
            name: n.into(),
            algorithm: "sha256".into(),
            digest: vec![],
        };
        let m = Manifest::from_resources(vec![r("a.txt"), r("a/b"), r("A")]);
        let names: Vec<_> = m.resources().iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["A", "a/b", "a.txt"]);
    }

    #[test]
    fn unsafe_names_rejected() {
        for n in [
            "../x",
            "/etc/passwd",
            "a/../../b",
            "a//b",
            "",
            "a/./b",
            "a\\b",
        ] {
            assert!(check_resource_name(n).is_err(), "{n}");
        }
        for n in [".", "a", "a/b c", "..a", "a..b"] {
            assert!(check_resource_name(n).is_ok(), "{n}");
        }
    }
}
