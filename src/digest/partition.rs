//! Partitioned manifests: hash a tree on many machines, sign it once.
//!
//! `mlsign hash DIR --partition I/N -o part-I.json` hashes the files whose path hash falls in
//! partition `I` of `N` (SHA-256 of the root-relative path, first 8 bytes big-endian, modulo
//! `N`: stable when other files come and go) and writes an unsigned partial manifest. It records
//! the walk settings, the algorithm and shard size, a digest of the whole directory listing it
//! saw, its own files with their sizes, and their digests. [`merge`] checks that a set of parts
//! agrees on all of that, covers every file of the current listing exactly once, and yields the
//! manifest a single-machine run would compute — so the bundle is byte-identical.
//!
//! Parts are trusted input: whoever can edit a part's digests can make the signer sign them,
//! as whoever can edit the files could. The merge catches inconsistent, duplicated, missing,
//! stale or corrupted parts; keep their transport as safe as the model's.

use super::manifest::{pieces, Manifest};
use super::walk::Entry;
use super::{HashAlgorithm, HashConfig, Method};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Format tag of a partial manifest.
pub const FORMAT: &str = "https://mlsign.dev/partial-manifest/v1";
/// Parts larger than this are not read.
const MAX_PART: u64 = 8 << 30;

/// `I/N`: partition `I` (0-based) of `N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    pub index: u32,
    pub count: u32,
}

/// Why an `I/N` partition spec is not one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("partition {0:?}: expected I/N, e.g. 0/4")]
    NoSlash(String),
    #[error("partition {0:?}: I is not a number")]
    Index(String),
    #[error("partition {0:?}: N is not a number")]
    Count(String),
    #[error(
        "partition {0:?}: need 0 <= I < N (partitions are numbered from 0, as Kubernetes \
         JOB_COMPLETION_INDEX is)"
    )]
    Range(String),
}

impl std::str::FromStr for Spec {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Spec, SpecError> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| SpecError::NoSlash(s.into()))?;
        let index: u32 = i.trim().parse().map_err(|_| SpecError::Index(s.into()))?;
        let count: u32 = n.trim().parse().map_err(|_| SpecError::Count(s.into()))?;
        if count == 0 || index >= count {
            return Err(SpecError::Range(s.into()));
        }
        Ok(Spec { index, count })
    }
}

impl std::fmt::Display for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Which partition of `count` a root-relative path belongs to.
pub fn index_of(name: &str, count: u32) -> u32 {
    let h = super::sha256(name.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[..8]);
    (u64::from_be_bytes(b) % u64::from(count.max(1))) as u32
}

impl Spec {
    pub fn contains(&self, name: &str) -> bool {
        index_of(name, self.count) == self.index
    }
}

/// The settings that decide a manifest (all parts and the signer must agree on them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub algorithm: String,
    pub shard_size: Option<u64>,
    pub allow_symlinks: bool,
    pub ignore_paths: Vec<String>,
}

impl Settings {
    pub fn of(config: &HashConfig) -> Settings {
        let mut ignore_paths = config.ignore_paths.clone();
        ignore_paths.sort();
        ignore_paths.dedup();
        Settings {
            algorithm: config.algorithm.name().into(),
            shard_size: match config.method {
                Method::Files => None,
                Method::Shards { shard_size } => Some(shard_size),
            },
            allow_symlinks: config.allow_symlinks,
            ignore_paths,
        }
    }
}

/// The whole directory listing as the walk saw it: count and SHA-256 over `path NUL size LF`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    pub files: u64,
    pub sha256: String,
}

pub fn listing_of(entries: &[Entry]) -> Listing {
    listing_of_files(entries.iter().map(|e| (e.name.as_str(), e.size)))
}

/// [`listing_of`] over (path, size) pairs, hashed as they come.
pub fn listing_of_files<'a>(files: impl Iterator<Item = (&'a str, u64)>) -> Listing {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let mut n = 0u64;
    for (name, size) in files {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(size.to_string().as_bytes());
        h.update(b"\n");
        n += 1;
    }
    Listing {
        files: n,
        sha256: hex::encode(h.finalize()),
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartFile {
    pub path: String,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartResource {
    pub name: String,
    pub algorithm: String,
    pub digest: String,
}

/// One partial manifest (the JSON file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Part {
    pub format: String,
    pub partition: Spec,
    pub settings: Settings,
    pub listing: Listing,
    pub files: Vec<PartFile>,
    pub resources: Vec<PartResource>,
    /// SHA-256 of this JSON with `checksum` empty: catches truncation and hand edits.
    pub checksum: String,
}

impl Part {
    fn body_digest(&self) -> String {
        let mut c = self.clone();
        c.checksum = String::new();
        hex::encode(super::sha256(&serde_json::to_vec(&c).unwrap_or_default()))
    }

    /// The part for partition `spec` of already-walked `entries` (the whole listing), from the
    /// manifest of the partition's entries.
    pub fn new(spec: Spec, config: &HashConfig, all: &[Entry], own: &Manifest) -> Part {
        let files = all
            .iter()
            .filter(|e| spec.contains(&e.name))
            .map(|e| PartFile {
                path: e.name.clone(),
                size: e.size,
            })
            .collect();
        let resources = own
            .resources()
            .iter()
            .map(|r| PartResource {
                name: r.name.clone(),
                algorithm: r.algorithm.clone(),
                digest: r.hex(),
            })
            .collect();
        let mut p = Part {
            format: FORMAT.into(),
            partition: spec,
            settings: Settings::of(config),
            listing: listing_of(all),
            files,
            resources,
            checksum: String::new(),
        };
        p.checksum = p.body_digest();
        p
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// Read and parse a part file (bounded).
    pub fn read(path: &Path) -> Result<Part, PartError> {
        let io = |source| PartError::Io {
            path: path.into(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if meta.len() > MAX_PART {
            return Err(PartError::TooLarge {
                path: path.into(),
                len: meta.len(),
            });
        }
        let data = std::fs::read(path).map_err(io)?;
        let p: Part = serde_json::from_slice(&data).map_err(|source| PartError::NotAPart {
            path: path.into(),
            source,
        })?;
        if p.format != FORMAT {
            return Err(PartError::Format {
                path: path.into(),
                format: p.format,
            });
        }
        if p.checksum != p.body_digest() {
            return Err(PartError::Checksum { path: path.into() });
        }
        Ok(p)
    }
}

/// Why a set of parts cannot be merged. Each names the part file involved.
#[derive(Debug, thiserror::Error)]
pub enum PartError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {len} bytes is too large (at most {MAX_PART})", path.display())]
    TooLarge { path: PathBuf, len: u64 },
    #[error("{}: not a partial manifest ({source})", path.display())]
    NotAPart {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: unknown format {format:?}", path.display())]
    Format { path: PathBuf, format: String },
    #[error(
        "{}: checksum mismatch: the part was edited or corrupted after `mlsign hash` wrote it",
        path.display()
    )]
    Checksum { path: PathBuf },
    #[error("{}: wildcards are supported in the file name only", path.display())]
    WildcardDir { path: PathBuf },
    #[error("{}: the pattern matches no file", path.display())]
    NoMatch { path: PathBuf },
    #[error("no partial manifests given (the pattern matched no file?)")]
    NoParts,
    #[error("{path}: partition {got} but {first} has {want} partitions")]
    Count {
        path: PathBuf,
        got: Spec,
        first: PathBuf,
        want: u32,
    },
    #[error("partition {index} appears twice: {a} and {b}")]
    Duplicate { index: u32, a: PathBuf, b: PathBuf },
    #[error("partition {index} of {count} is missing (no part file for it)")]
    Missing { index: u32, count: u32 },
    #[error("{}: hashed with other settings than this signing run ({differs})", path.display())]
    Settings {
        path: PathBuf,
        differs: SettingsDiff,
    },
    #[error(
        "{}: the directory changed since this part was hashed (listing of {then} files \
         differs from the current one of {now} files)",
        path.display()
    )]
    Listing { path: PathBuf, then: u64, now: u64 },
    #[error("{}: {mismatch}", path.display())]
    Content { path: PathBuf, mismatch: Mismatch },
    #[error("{}: the merged digests do not fit the directory listing", path.display())]
    Unfit { path: PathBuf },
}

/// The first setting in which a part differs from the signing run (part's value first).
#[derive(Debug, thiserror::Error)]
pub enum SettingsDiff {
    #[error("algorithm {part} vs {run}")]
    Algorithm { part: String, run: String },
    #[error("shard size {part:?} vs {run:?}")]
    ShardSize { part: Option<u64>, run: Option<u64> },
    #[error("allow_symlinks differs")]
    AllowSymlinks,
    #[error("ignore paths {part:?} vs {run:?}")]
    IgnorePaths { part: Vec<String>, run: Vec<String> },
}

/// How a part's files or digests disagree with the directory it claims to cover.
#[derive(Debug, thiserror::Error)]
pub enum Mismatch {
    #[error("{name} is in the directory but not in this part")]
    FileMissing { name: String },
    #[error(
        "expected {want} ({want_size} bytes) next, found {found} ({found_size} bytes): the part \
         does not match the directory"
    )]
    File {
        want: String,
        want_size: u64,
        found: String,
        found_size: u64,
    },
    #[error("no digest for {name}")]
    NoDigest { name: String },
    #[error("expected resource {want} ({want_algorithm}), found {found} ({found_algorithm})")]
    Resource {
        want: String,
        want_algorithm: String,
        found: String,
        found_algorithm: String,
    },
    #[error("{name}: malformed digest")]
    Digest { name: String },
    #[error("{files} files / {digests} digests that are not in the directory's partition {index}")]
    Extra {
        files: usize,
        digests: usize,
        index: usize,
    },
}

/// Write the part for partition `spec` of `listing` straight from its [`ListedManifest`]
/// (hashed for this partition's files; other files' digests are ignored): byte for byte
/// [`Part::new`]`(…).to_json()`, without holding the part. The checksum takes one pass over
/// the compact form, the file a second over the pretty one.
pub fn write_part(
    spec: Spec,
    config: &HashConfig,
    manifest: &super::ListedManifest<'_>,
    w: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    #[derive(Serialize)]
    struct View<'a> {
        format: &'a str,
        partition: Spec,
        settings: &'a Settings,
        listing: &'a Listing,
        files: Files<'a>,
        resources: Resources<'a>,
        checksum: &'a str,
    }
    #[derive(Clone, Copy)]
    struct Files<'a>(Spec, &'a super::Listing);
    #[derive(Clone, Copy)]
    struct Resources<'a>(Spec, &'a super::ListedManifest<'a>, Method, &'a str, usize);
    #[derive(Serialize)]
    struct File<'a> {
        path: &'a str,
        size: u64,
    }
    #[derive(Serialize)]
    struct Res<'a> {
        name: &'a str,
        algorithm: &'a str,
        digest: &'a str,
    }
    impl Serialize for Files<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeSeq;
            let Files(spec, l) = *self;
            let mut seq = s.serialize_seq(None)?;
            for i in (0..l.len()).filter(|&i| spec.contains(l.name(i))) {
                seq.serialize_element(&File {
                    path: l.name(i),
                    size: l.stat(i).size,
                })?;
            }
            seq.end()
        }
    }
    impl Serialize for Resources<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeSeq;
            let Resources(spec, m, method, algorithm, dlen) = *self;
            let l = m.listing();
            let mut seq = s.serialize_seq(None)?;
            let mut name = String::new();
            for (i, d) in m.files().filter(|(i, _)| spec.contains(l.name(*i))) {
                for ((start, end), digest) in pieces(l.stat(i).size, method).zip(d.chunks(dlen)) {
                    name.clear();
                    name.push_str(l.name(i));
                    if let Method::Shards { .. } = method {
                        name.push_str(&format!(":{start}:{end}"));
                    }
                    seq.serialize_element(&Res {
                        name: &name,
                        algorithm,
                        digest: &hex::encode(digest),
                    })?;
                }
            }
            seq.end()
        }
    }
    let l = manifest.listing();
    let settings = Settings::of(config);
    let listing = listing_of_files((0..l.len()).map(|i| (l.name(i), l.stat(i).size)));
    let algorithm = match config.method {
        Method::Files => config.algorithm.name().to_string(),
        Method::Shards { shard_size } => {
            format!("{}-sharded-{}", config.algorithm.name(), shard_size)
        }
    };
    let mut view = View {
        format: FORMAT,
        partition: spec,
        settings: &settings,
        listing: &listing,
        files: Files(spec, l),
        resources: Resources(
            spec,
            manifest,
            config.method,
            &algorithm,
            config.algorithm.digest_len(),
        ),
        checksum: "",
    };
    let mut h = HashWriter(<sha2::Sha256 as sha2::Digest>::new());
    serde_json::to_writer(&mut h, &view)?;
    let checksum = hex::encode(sha2::Digest::finalize(h.0));
    view.checksum = &checksum;
    serde_json::to_writer_pretty(&mut *w, &view)?;
    w.write_all(b"\n")
}

/// A part held compactly for [`merge_listed`]: its header, then its files and resources in
/// flat buffers (names and digests each in one buffer), ~50 bytes a file plus its name, where
/// a [`Part`] of strings takes several hundred.
pub struct CompactPart {
    pub partition: Spec,
    pub settings: Settings,
    pub listing: Listing,
    file_names: Names,
    file_sizes: Vec<u64>,
    res_names: Names,
    /// Index into `algorithms` per resource (parts name one algorithm; a stray one is kept).
    res_alg: Vec<u32>,
    algorithms: Vec<String>,
    /// Decoded digests (empty where the text was not hex), ends in `digest_ends`.
    digests: Vec<u8>,
    digest_ends: Vec<usize>,
}

/// Strings in one buffer.
#[derive(Default)]
struct Names {
    text: String,
    ends: Vec<usize>,
}

impl Names {
    fn push(&mut self, s: &str) {
        self.text.push_str(s);
        self.ends.push(self.text.len());
    }
    fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.text[start..end])
    }
    fn len(&self) -> usize {
        self.ends.len()
    }
}

impl CompactPart {
    fn new(partition: Spec, settings: Settings, listing: Listing) -> CompactPart {
        CompactPart {
            partition,
            settings,
            listing,
            file_names: Names::default(),
            file_sizes: Vec::new(),
            res_names: Names::default(),
            res_alg: Vec::new(),
            algorithms: Vec::new(),
            digests: Vec::new(),
            digest_ends: Vec::new(),
        }
    }

    fn push_file(&mut self, f: &PartFile) {
        self.file_names.push(&f.path);
        self.file_sizes.push(f.size);
    }

    fn push_resource(&mut self, r: &PartResource) {
        self.res_names.push(&r.name);
        let a = match self.algorithms.iter().position(|a| *a == r.algorithm) {
            Some(a) => a,
            None => {
                self.algorithms.push(r.algorithm.clone());
                self.algorithms.len() - 1
            }
        };
        self.res_alg.push(a as u32);
        if let Ok(d) = hex::decode(&r.digest) {
            self.digests.extend_from_slice(&d);
        }
        self.digest_ends.push(self.digests.len());
    }

    fn file(&self, i: usize) -> Option<(&str, u64)> {
        Some((self.file_names.get(i)?, self.file_sizes[i]))
    }

    /// Resource `i`: name, algorithm, digest (empty when it was not hex).
    fn resource(&self, i: usize) -> Option<(&str, &str, &[u8])> {
        let name = self.res_names.get(i)?;
        let start = if i == 0 { 0 } else { self.digest_ends[i - 1] };
        Some((
            name,
            &self.algorithms[self.res_alg[i] as usize],
            &self.digests[start..self.digest_ends[i]],
        ))
    }

    fn from_part(p: &Part) -> CompactPart {
        let mut c = CompactPart::new(p.partition, p.settings.clone(), p.listing.clone());
        for f in &p.files {
            c.push_file(f);
        }
        for r in &p.resources {
            c.push_resource(r);
        }
        c
    }

    /// Read a part file: in one pass when its fields are in the order `mlsign hash` writes
    /// them (the checksum is computed over the same compact JSON as [`Part`]'s, element by
    /// element); any other file, or any doubt, goes through [`Part::read`], so what is
    /// accepted and every error are exactly as before.
    pub fn read(path: &Path) -> Result<CompactPart, PartError> {
        let io = |source| PartError::Io {
            path: path.into(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if meta.len() > MAX_PART {
            return Err(PartError::TooLarge {
                path: path.into(),
                len: meta.len(),
            });
        }
        let data = std::fs::read(path).map_err(io)?;
        if let Some(c) = streamed_part(&data) {
            return Ok(c);
        }
        drop(data);
        Part::read(path).map(|p| CompactPart::from_part(&p))
    }
}

/// The one-pass reading of [`CompactPart::read`]; `None` on anything unusual.
fn streamed_part(data: &[u8]) -> Option<CompactPart> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_slice(data);
    let c = PartSeed.deserialize(&mut de).ok()?;
    de.end().ok()?;
    c
}

struct PartSeed;

impl<'de> serde::de::DeserializeSeed<'de> for PartSeed {
    type Value = Option<CompactPart>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

/// Feeds SHA-256 whatever is written.
struct HashWriter(sha2::Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        sha2::Digest::update(&mut self.0, buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'de> serde::de::Visitor<'de> for PartSeed {
    type Value = Option<CompactPart>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a partial manifest")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error as _;
        use std::io::Write;
        const ORDER: [&str; 7] = [
            "format",
            "partition",
            "settings",
            "listing",
            "files",
            "resources",
            "checksum",
        ];
        let out_of_order = || A::Error::custom("fields not in the order mlsign writes them");
        let io = |e: std::io::Error| A::Error::custom(e.to_string());
        let js = |e: serde_json::Error| A::Error::custom(e.to_string());
        let mut h = HashWriter(<sha2::Sha256 as sha2::Digest>::new());
        let next_key = |map: &mut A, want: &str| -> Result<(), A::Error> {
            match map.next_key::<String>()? {
                Some(k) if k == want => Ok(()),
                _ => Err(out_of_order()),
            }
        };
        next_key(&mut map, ORDER[0])?;
        let format: String = map.next_value()?;
        if format != FORMAT {
            return Err(out_of_order());
        }
        next_key(&mut map, ORDER[1])?;
        let partition: Spec = map.next_value()?;
        next_key(&mut map, ORDER[2])?;
        let settings: Settings = map.next_value()?;
        next_key(&mut map, ORDER[3])?;
        let listing: Listing = map.next_value()?;
        write!(h, "{{\"format\":").map_err(io)?;
        serde_json::to_writer(&mut h, &format).map_err(js)?;
        write!(h, ",\"partition\":").map_err(io)?;
        serde_json::to_writer(&mut h, &partition).map_err(js)?;
        write!(h, ",\"settings\":").map_err(io)?;
        serde_json::to_writer(&mut h, &settings).map_err(js)?;
        write!(h, ",\"listing\":").map_err(io)?;
        serde_json::to_writer(&mut h, &listing).map_err(js)?;
        let mut c = CompactPart::new(partition, settings, listing);
        next_key(&mut map, ORDER[4])?;
        write!(h, ",\"files\":[").map_err(io)?;
        map.next_value_seed(Elements {
            h: &mut h,
            add: &mut |f: PartFile| c.push_file(&f),
        })?;
        next_key(&mut map, ORDER[5])?;
        write!(h, "],\"resources\":[").map_err(io)?;
        map.next_value_seed(Elements {
            h: &mut h,
            add: &mut |r: PartResource| c.push_resource(&r),
        })?;
        next_key(&mut map, ORDER[6])?;
        let checksum: String = map.next_value()?;
        write!(h, "],\"checksum\":\"\"}}").map_err(io)?;
        if map.next_key::<String>()?.is_some() {
            return Err(out_of_order());
        }
        let got = hex::encode(sha2::Digest::finalize(h.0));
        Ok((got == checksum).then_some(c))
    }
}

/// An array whose elements are re-serialized into the checksum and handed to `add`.
struct Elements<'a, T> {
    h: &'a mut HashWriter,
    add: &'a mut dyn FnMut(T),
}

impl<'de, T: Deserialize<'de> + Serialize> serde::de::DeserializeSeed<'de> for Elements<'_, T> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, T: Deserialize<'de> + Serialize> serde::de::Visitor<'de> for Elements<'_, T> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        use serde::de::Error as _;
        use std::io::Write;
        let mut first = true;
        while let Some(x) = seq.next_element::<T>()? {
            if !first {
                self.h
                    .write_all(b",")
                    .map_err(|e| A::Error::custom(e.to_string()))?;
            }
            first = false;
            serde_json::to_writer(&mut *self.h, &x).map_err(|e| A::Error::custom(e.to_string()))?;
            (self.add)(x);
        }
        Ok(())
    }
}

/// Check `parts` against each other, against `config` and against the current `listing`
/// (no file is read), and return the digests of every file's pieces concatenated in listing
/// order (what [`super::ListedManifest`] holds).
pub fn merge_listed(
    parts: &[(PathBuf, CompactPart)],
    config: &HashConfig,
    listing: &super::Listing,
) -> Result<Vec<u8>, PartError> {
    let Some((first_path, first)) = parts.first() else {
        return Err(PartError::NoParts);
    };
    let count = first.partition.count;
    let want_settings = Settings::of(config);
    let current =
        listing_of_files((0..listing.len()).map(|i| (listing.name(i), listing.stat(i).size)));
    let mut by_index: Vec<Option<&(PathBuf, CompactPart)>> = vec![None; count as usize];
    for pp in parts {
        let (path, p) = pp;
        if p.partition.count != count || p.partition.index >= count {
            return Err(PartError::Count {
                path: path.clone(),
                got: p.partition,
                first: first_path.clone(),
                want: count,
            });
        }
        if let Some((other, _)) = by_index[p.partition.index as usize] {
            return Err(PartError::Duplicate {
                index: p.partition.index,
                a: other.clone(),
                b: path.clone(),
            });
        }
        by_index[p.partition.index as usize] = Some(pp);
        if p.settings != want_settings {
            return Err(PartError::Settings {
                path: path.clone(),
                differs: settings_difference(&p.settings, &want_settings),
            });
        }
        if p.listing != current {
            return Err(PartError::Listing {
                path: path.clone(),
                then: p.listing.files,
                now: current.files,
            });
        }
    }
    if let Some(index) = by_index.iter().position(Option::is_none) {
        return Err(PartError::Missing {
            index: index as u32,
            count,
        });
    }
    let alg = HashAlgorithm::from_name(&want_settings.algorithm).unwrap_or_default();
    let alg_name = match config.method {
        Method::Files => config.algorithm.name().to_string(),
        Method::Shards { shard_size } => {
            format!("{}-sharded-{}", config.algorithm.name(), shard_size)
        }
    };
    let mut digests = Vec::with_capacity(listing.len() * alg.digest_len());
    let mut cursor: Vec<(usize, usize)> = vec![(0, 0); count as usize];
    for i in 0..listing.len() {
        let (name, size) = (listing.name(i), listing.stat(i).size);
        let idx = index_of(name, count) as usize;
        let Some((path, p)) = by_index[idx] else {
            continue;
        };
        let content = |mismatch: Mismatch| PartError::Content {
            path: path.clone(),
            mismatch,
        };
        let (fi, ri) = &mut cursor[idx];
        let (fpath, fsize) = p.file(*fi).ok_or_else(|| {
            content(Mismatch::FileMissing {
                name: name.to_string(),
            })
        })?;
        if fpath != name || fsize != size {
            return Err(content(Mismatch::File {
                want: name.to_string(),
                want_size: size,
                found: fpath.to_string(),
                found_size: fsize,
            }));
        }
        *fi += 1;
        for (start, end) in pieces(size, config.method) {
            let (rname, ralg, rdigest) = p.resource(*ri).ok_or_else(|| {
                content(Mismatch::NoDigest {
                    name: name.to_string(),
                })
            })?;
            let want_name = match config.method {
                Method::Files => name.to_string(),
                Method::Shards { .. } => format!("{name}:{start}:{end}"),
            };
            if rname != want_name || ralg != alg_name {
                return Err(content(Mismatch::Resource {
                    want: want_name,
                    want_algorithm: alg_name,
                    found: rname.to_string(),
                    found_algorithm: ralg.to_string(),
                }));
            }
            if rdigest.len() != alg.digest_len() {
                return Err(content(Mismatch::Digest {
                    name: rname.to_string(),
                }));
            }
            *ri += 1;
            digests.extend_from_slice(rdigest);
        }
    }
    for (idx, (fi, ri)) in cursor.iter().enumerate() {
        if let Some((path, p)) = by_index[idx] {
            if *fi != p.file_names.len() || *ri != p.res_names.len() {
                return Err(PartError::Content {
                    path: path.clone(),
                    mismatch: Mismatch::Extra {
                        files: p.file_names.len().saturating_sub(*fi),
                        digests: p.res_names.len().saturating_sub(*ri),
                        index: idx,
                    },
                });
            }
        }
    }
    Ok(digests)
}

/// The first setting in which `part` differs from the signing run's `run`.
fn settings_difference(part: &Settings, run: &Settings) -> SettingsDiff {
    if part.algorithm != run.algorithm {
        SettingsDiff::Algorithm {
            part: part.algorithm.clone(),
            run: run.algorithm.clone(),
        }
    } else if part.shard_size != run.shard_size {
        SettingsDiff::ShardSize {
            part: part.shard_size,
            run: run.shard_size,
        }
    } else if part.allow_symlinks != run.allow_symlinks {
        SettingsDiff::AllowSymlinks
    } else {
        SettingsDiff::IgnorePaths {
            part: part.ignore_paths.clone(),
            run: run.ignore_paths.clone(),
        }
    }
}

/// `*` and `?` wildcard match of a whole file name.
fn wildcard(pat: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while n < name.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some(p);
            mark = n;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            n = mark;
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// Expand `--from-parts` arguments: plain paths as given, and patterns with `*`/`?` in the
/// file name (not in directories) matched in their directory, sorted. A pattern matching
/// nothing is an error, so a typo never silently drops parts.
pub fn expand_patterns(args: &[String]) -> Result<Vec<PathBuf>, PartError> {
    let mut out = Vec::new();
    for a in args {
        let p = Path::new(a);
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.contains(['*', '?']) {
            out.push(p.to_path_buf());
            continue;
        }
        let dir = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if dir.to_str().is_some_and(|d| d.contains(['*', '?'])) {
            return Err(PartError::WildcardDir { path: p.into() });
        }
        let rd = std::fs::read_dir(dir).map_err(|source| PartError::Io {
            path: dir.into(),
            source,
        })?;
        let mut found: Vec<PathBuf> = rd
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| wildcard(name.as_bytes(), n.as_bytes()))
            })
            .map(|e| dir.join(e.file_name()))
            .collect();
        if found.is_empty() {
            return Err(PartError::NoMatch { path: p.into() });
        }
        found.sort();
        out.extend(found);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_parts_are_the_parts_and_merge_the_same() {
        use crate::digest::{walk, walk_listing, ListedManifest, NoProgress};
        let d = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        for i in 0..40u32 {
            let f = d.path().join(format!("d{}/f\"{i}", i % 3));
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, vec![i as u8; (i % 7) as usize]).unwrap();
        }
        for method in [Method::Files, Method::Shards { shard_size: 2 }] {
            let config = HashConfig {
                method,
                ..HashConfig::default()
            };
            let all = walk(d.path(), &config.ignore_paths, false).unwrap();
            let listing = walk_listing(d.path(), &config.ignore_paths, false).unwrap();
            let (whole, _) =
                ListedManifest::hash(&listing, &config, &NoProgress, &|_| None).unwrap();
            let mut parts = Vec::new();
            for index in 0..3 {
                let spec = Spec { index, count: 3 };
                let own: Vec<_> = all
                    .iter()
                    .filter(|e| spec.contains(&e.name))
                    .cloned()
                    .collect();
                let m = Manifest::from_entries(&own, &config, &NoProgress).unwrap();
                let want = Part::new(spec, &config, &all, &m).to_json();
                let mut got = Vec::new();
                write_part(spec, &config, &whole, &mut got).unwrap();
                assert_eq!(
                    String::from_utf8(got).unwrap(),
                    String::from_utf8(want.clone()).unwrap()
                );
                let p = out.path().join(format!("part-{index}.json"));
                std::fs::write(&p, &want).unwrap();
                assert!(streamed_part(&want).is_some(), "read in one pass");
                let c = CompactPart::read(&p).unwrap();
                parts.push((p, c));
            }
            // Fields in another order: read through `Part::read`, same content.
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&parts[0].0).unwrap()).unwrap();
            let mut m = serde_json::Map::new();
            for k in [
                "checksum",
                "resources",
                "files",
                "listing",
                "settings",
                "partition",
                "format",
            ] {
                m.insert(k.into(), v[k].clone());
            }
            let reordered = serde_json::to_vec(&serde_json::Value::Object(m)).unwrap();
            assert!(streamed_part(&reordered).is_none());
            std::fs::write(&parts[0].0, &reordered).unwrap();
            parts[0].1 = CompactPart::read(&parts[0].0).unwrap();
            let digests = merge_listed(&parts, &config, &listing).unwrap();
            let merged = ListedManifest::from_digests(&listing, &config, digests).unwrap();
            assert_eq!(merged.to_manifest(), whole.to_manifest());
            // A tampered digest: the checksum catches it on either path.
            let text = String::from_utf8(std::fs::read(&parts[1].0).unwrap()).unwrap();
            let at = text.find("\"digest\": \"").unwrap() + 11;
            let mut bad = text.into_bytes();
            bad[at] = if bad[at] == b'0' { b'1' } else { b'0' };
            std::fs::write(&parts[1].0, &bad).unwrap();
            let e = CompactPart::read(&parts[1].0).err().unwrap().to_string();
            assert!(e.contains("checksum mismatch"), "{e}");
        }
    }

    #[test]
    fn wildcards() {
        assert!(wildcard(b"part-*.json", b"part-3.json"));
        assert!(wildcard(b"part-?.json", b"part-3.json"));
        assert!(!wildcard(b"part-?.json", b"part-13.json"));
        assert!(wildcard(b"*", b""));
        assert!(!wildcard(b"a*b", b"acbd"));
        assert!(wildcard(b"a*b*", b"acbd"));
    }

    #[test]
    fn specs_parse_and_partition_deterministically() {
        assert_eq!("2/4".parse::<Spec>().unwrap(), Spec { index: 2, count: 4 });
        for (bad, want) in [
            ("4/4", SpecError::Range("4/4".into())),
            ("1/0", SpecError::Range("1/0".into())),
            ("x/2", SpecError::Index("x/2".into())),
            ("3", SpecError::NoSlash("3".into())),
            ("-1/2", SpecError::Index("-1/2".into())),
            ("1/y", SpecError::Count("1/y".into())),
        ] {
            assert_eq!(bad.parse::<Spec>(), Err(want), "{bad}");
        }
        // Stable and spread.
        assert_eq!(index_of("a/b.bin", 7), index_of("a/b.bin", 7));
        let mut counts = [0usize; 4];
        for i in 0..4000 {
            counts[index_of(&format!("f{i}"), 4) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
    }

    /// A part of partition 0/1 covering an empty listing, sealed.
    fn empty_part(config: &HashConfig) -> Part {
        let mut p = Part {
            format: FORMAT.into(),
            partition: Spec { index: 0, count: 1 },
            settings: Settings::of(config),
            listing: listing_of(&[]),
            files: Vec::new(),
            resources: Vec::new(),
            checksum: String::new(),
        };
        p.checksum = p.body_digest();
        p
    }

    #[test]
    fn hostile_part_files_name_their_fault() {
        let t = tempfile::tempdir().unwrap();
        let cfg = HashConfig::default();
        let path = t.path().join("part.json");
        let read = |bytes: &[u8]| {
            std::fs::write(&path, bytes).unwrap();
            Part::read(&path)
        };
        assert!(read(&empty_part(&cfg).to_json()).is_ok());
        let e = Part::read(&t.path().join("absent.json")).unwrap_err();
        assert!(matches!(e, PartError::Io { .. }), "{e:?}");
        let e = read(b"{\"format\": 1").unwrap_err();
        assert!(matches!(e, PartError::NotAPart { .. }), "{e:?}");
        assert!(
            e.to_string().contains("part.json: not a partial manifest"),
            "{e}"
        );
        let mut other = empty_part(&cfg);
        other.format = "https://example.com/v9".into();
        other.checksum = other.body_digest();
        let e = read(&other.to_json()).unwrap_err();
        assert!(
            matches!(&e, PartError::Format { format, .. } if format == "https://example.com/v9"),
            "{e:?}"
        );
        let mut edited = empty_part(&cfg);
        edited.listing.files = 5;
        let e = read(&edited.to_json()).unwrap_err();
        assert!(matches!(e, PartError::Checksum { .. }), "{e:?}");
    }

    #[test]
    fn merge_names_the_setting_and_the_content_that_differ() {
        let cfg = HashConfig::default();
        let b3 = HashConfig {
            algorithm: HashAlgorithm::Blake3,
            ..HashConfig::default()
        };
        let p = PathBuf::from("p.json");
        let none = super::super::Listing::default();
        let merge = |p: PathBuf, part: &Part| {
            merge_listed(&[(p, CompactPart::from_part(part))], &cfg, &none).unwrap_err()
        };
        let e = merge(p.clone(), &empty_part(&b3));
        assert!(
            matches!(&e, PartError::Settings { differs: SettingsDiff::Algorithm { part, run }, .. }
                if part == "blake3" && run == "sha256"),
            "{e:?}"
        );
        assert!(e.to_string().contains("algorithm blake3 vs sha256"), "{e}");
        // A file the (empty) directory does not have.
        let mut extra = empty_part(&cfg);
        extra.files.push(PartFile {
            path: "ghost.bin".into(),
            size: 1,
        });
        let e = merge(p, &extra);
        assert!(
            matches!(
                e,
                PartError::Content {
                    mismatch: Mismatch::Extra {
                        files: 1,
                        digests: 0,
                        index: 0
                    },
                    ..
                }
            ),
            "{e:?}"
        );
    }
}
