//! Containers, identified by content (never by file extension), each in its own file.
//!
//! Every format is one entry of [`FORMATS`]: how it is sniffed and how it is scanned in memory,
//! in place and when found inside a pickle. [`Registry`] hands the table to the
//! [`Scanner`], through which nested content comes back in (see [`crate::scan::scanner`]).

pub mod compress;
pub mod gguf;
pub mod hdf5;
pub mod jinja;
pub mod keras;
pub mod npy;
pub mod pyjson;
pub mod safetensors;
pub mod tar;
pub mod torch;
pub mod zip;

/// Random-access sources; re-exported here, where the formats read them.
pub use super::source;

use super::finding::ScanFinding;
use super::pickle;
use super::scanner::{Embedded, Formats, Scanner};
use crate::report::Severity;
use crate::scan::diags::Code;
use source::{FileSource, Source};

/// Where it was defined before the policy took it (the policy's default).
pub use super::policy::IN_MEMORY_MAX;

/// Files, members and decompressed payloads larger than this that are pickles (or compressed
/// files) are streamed (see [`pickle::input`]); smaller ones are read whole.
pub const STREAM_FILE: u64 = 64 << 20;

/// A pickle (by its PROTO, or magic-less content that acts as one) too large to hold, replayed
/// through a window: what [`scan_bytes`] does for one held in memory.
fn scan_pickle_stream(
    sc: &Scanner,
    kind: Kind,
    src: &dyn pickle::PickleSource,
) -> Vec<ScanFinding> {
    if kind == Kind::Pickle || acts_as_pickle_src(sc, src, false) {
        torch::scan_pickle_source(sc, src)
    } else {
        not_a_model(sc)
    }
}

/// Whether a payload whose head is `head` and that must be held is a pickle that can be
/// replayed through a window instead (see [`STREAM_FILE`]).
fn streamable(sc: &Scanner, head: &[u8]) -> bool {
    match sniff(&head[..head.len().min(4096)], u64::MAX) {
        Kind::Pickle => true,
        Kind::Unknown => acts_as_pickle(sc, head, true),
        _ => false,
    }
}

/// Head of a streamed payload that decides whether it must be held whole.
const STREAM_HEAD: usize = 1 << 20;

/// Whether a payload whose first bytes are `head` must be held whole to be scanned: containers
/// and pickles yes; plain `.npy` arrays and content that does not act as a pickle no.
fn must_hold(sc: &Scanner, head: &[u8]) -> bool {
    match sniff(&head[..head.len().min(4096)], u64::MAX) {
        Kind::Npy => !npy::streamable(head),
        Kind::Unknown => acts_as_pickle(sc, head, true),
        _ => true,
    }
}

/// Findings for a payload that was streamed and dropped, or `None` when it must be read whole
/// after all (data after a plain array, or a ZIP appended to unrecognised data).
fn dropped_findings(
    sc: &Scanner,
    head: &[u8],
    total: u64,
    tail_eocd: bool,
) -> Option<Vec<ScanFinding>> {
    if tail_eocd {
        return None;
    }
    if sniff(&head[..head.len().min(4096)], u64::MAX) == Kind::Npy {
        return npy::scan_streamed(sc, head, total);
    }
    Some(not_a_model(sc))
}

/// What the first bytes say a file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Zip,
    Npy,
    Safetensors,
    Gguf,
    Tar,
    Hdf5,
    Compressed(compress::Codec),
    Unsupported(&'static str),
    Pickle,
    Unknown,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Zip => "ZIP archive",
            Kind::Npy => "NumPy array",
            Kind::Safetensors => "safetensors file",
            Kind::Gguf => "GGUF file",
            Kind::Tar => "tar archive",
            Kind::Hdf5 => "HDF5 file",
            Kind::Compressed(c) => c.name(),
            Kind::Unsupported(n) => n,
            Kind::Pickle => "pickle",
            Kind::Unknown => "unrecognised data",
        }
    }
}

/// One registered format: how its content is recognised and how it is scanned.
pub struct Format {
    /// The kind this entry reports (its variant is what [`Kind::format`] looks up).
    pub kind: Kind,
    /// The kind of content from its head (and length), or `None` when it is not this format.
    pub sniff: fn(&[u8], u64) -> Option<Kind>,
    /// Scan content held in memory.
    pub in_memory: fn(&Scanner, Kind, &[u8]) -> Vec<ScanFinding>,
    /// Scan content by positioned reads without holding it (formats with an index).
    pub in_place: Option<InPlace>,
    /// Bytes found inside a pickle that really are this format: its name and findings.
    pub embedded: Option<EmbeddedIn>,
}

/// A scan by positioned reads (see [`Format::in_place`]).
pub type InPlace = fn(&Scanner, &dyn Source) -> Vec<ScanFinding>;
/// A scan of bytes inside a pickle (see [`Format::embedded`]).
pub type EmbeddedIn = fn(&Scanner, Kind, &[u8]) -> Embedded;

/// Every format, in the order [`sniff`] asks them (the first that answers wins; the last
/// entry answers for anything).
pub static FORMATS: &[Format] = &[
    Format {
        kind: Kind::Zip,
        sniff: |h, _| {
            (h.starts_with(b"PK\x03\x04") || h.starts_with(b"PK\x05\x06")).then_some(Kind::Zip)
        },
        in_memory: zip_in_memory,
        in_place: Some(zip_in_place),
        embedded: Some(zip_embedded),
    },
    Format {
        kind: Kind::Npy,
        sniff: |h, _| h.starts_with(b"\x93NUMPY").then_some(Kind::Npy),
        in_memory: npy_in_memory,
        in_place: None,
        embedded: Some(npy_embedded),
    },
    Format {
        kind: Kind::Gguf,
        sniff: |h, _| h.starts_with(b"GGUF").then_some(Kind::Gguf),
        in_memory: |sc, _, d| gguf::scan(sc, &d),
        in_place: Some(gguf::scan),
        embedded: None,
    },
    Format {
        kind: Kind::Hdf5,
        sniff: |h, _| h.starts_with(b"\x89HDF\r\n\x1a\n").then_some(Kind::Hdf5),
        in_memory: |sc, _, d| keras::scan_hdf5(sc, &d),
        in_place: Some(keras::scan_hdf5),
        embedded: None,
    },
    unsupported(|h, _| {
        h.starts_with(b"7z\xbc\xaf\x27\x1c")
            .then_some(Kind::Unsupported("7z archive"))
    }),
    unsupported(|h, _| {
        h.starts_with(b"Rar!\x1a\x07")
            .then_some(Kind::Unsupported("RAR archive"))
    }),
    unsupported(|h, _| {
        h.starts_with(&[0x04, 0x22, 0x4d, 0x18])
            .then_some(Kind::Unsupported("LZ4 frame"))
    }),
    unsupported(|h, _| {
        h.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
            .then_some(Kind::Unsupported("Zstandard frame"))
    }),
    Format {
        kind: Kind::Tar,
        sniff: |h, _| (h.len() >= 262 && &h[257..262] == b"ustar").then_some(Kind::Tar),
        in_memory: |sc, _, d| tar::scan(sc, d),
        in_place: None,
        embedded: None,
    },
    Format {
        kind: Kind::Compressed(compress::Codec::Gzip),
        sniff: |h, _| compress::sniff(h).map(Kind::Compressed),
        in_memory: compressed_in_memory,
        in_place: None,
        embedded: Some(compressed_embedded),
    },
    Format {
        kind: Kind::Safetensors,
        sniff: sniff_safetensors,
        in_memory: |sc, _, d| safetensors::scan(sc, &d),
        in_place: Some(safetensors::scan),
        embedded: None,
    },
    Format {
        kind: Kind::Pickle,
        sniff: |h, _| matches!(h, [0x80, 2..=5, ..]).then_some(Kind::Pickle),
        in_memory: pickle_or_unknown,
        in_place: None,
        embedded: Some(pickle_embedded),
    },
    Format {
        kind: Kind::Unknown,
        sniff: |_, _| Some(Kind::Unknown),
        in_memory: pickle_or_unknown,
        in_place: None,
        embedded: Some(unknown_embedded),
    },
];

/// The entry for an archive or compression format mlsign cannot look inside.
const fn unsupported(sniff: fn(&[u8], u64) -> Option<Kind>) -> Format {
    Format {
        kind: Kind::Unsupported(""),
        sniff,
        in_memory: |sc, kind, _| {
            vec![sc.stamp(ScanFinding::new(
                Code::Scn001,
                Severity::High,
                format!("{}: mlsign cannot look inside it, so it cannot be called safe (unpack it and scan the contents)", kind.name()),
            ))]
        },
        in_place: None,
        embedded: None,
    }
}

impl Kind {
    /// This kind's entry in [`FORMATS`].
    pub fn format(self) -> &'static Format {
        let d = std::mem::discriminant(&self);
        FORMATS
            .iter()
            .find(|f| std::mem::discriminant(&f.kind) == d)
            .unwrap_or(&FORMATS[FORMATS.len() - 1])
    }
}

/// Identify content from its head (and, for ZIPs with prepended data, its tail).
pub fn sniff(head: &[u8], len: u64) -> Kind {
    FORMATS
        .iter()
        .find_map(|f| (f.sniff)(head, len))
        .unwrap_or(Kind::Unknown)
}

fn sniff_safetensors(head: &[u8], len: u64) -> Option<Kind> {
    if head.len() >= 9 {
        let n = u64::from_le_bytes(head[..8].try_into().unwrap_or([0; 8]));
        if head[8] == b'{' && (2..=100_000_000).contains(&n) && n + 8 <= len {
            return Some(Kind::Safetensors);
        }
    }
    None
}

fn zip_in_memory(sc: &Scanner, _: Kind, d: &[u8]) -> Vec<ScanFinding> {
    scan_zip(sc, &d, false)
}

fn zip_in_place(sc: &Scanner, src: &dyn Source) -> Vec<ScanFinding> {
    scan_zip(sc, src, false)
}

fn zip_embedded(sc: &Scanner, _: Kind, d: &[u8]) -> Embedded {
    zip::read_archive(&d)
        .ok()
        .map(|_| ("ZIP archive", scan_zip(sc, &d, false)))
}

fn npy_in_memory(sc: &Scanner, _: Kind, d: &[u8]) -> Vec<ScanFinding> {
    npy::scan(sc, d)
}

fn npy_embedded(sc: &Scanner, _: Kind, d: &[u8]) -> Embedded {
    npy::parse_header(d)
        .ok()
        .map(|_| ("NumPy array", npy::scan(sc, d)))
}

fn compressed_in_memory(sc: &Scanner, kind: Kind, d: &[u8]) -> Vec<ScanFinding> {
    match kind {
        Kind::Compressed(c) => scan_compressed(sc, c, &d),
        _ => not_a_model(sc),
    }
}

fn compressed_embedded(sc: &Scanner, kind: Kind, d: &[u8]) -> Embedded {
    let Kind::Compressed(c) = kind else {
        return None;
    };
    let inner = compress::decompress(c, d, sc.hold_cap()).ok()?;
    sc.charge(inner.len() as u64);
    let _held = sc.hold(inner.len());
    sc.embedded(&format!("<{}>", c.short()), &inner)
}

fn pickle_embedded(sc: &Scanner, _: Kind, d: &[u8]) -> Embedded {
    let s = pickle::scan_streams(sc, d, 0, Some(1));
    (s.traces.first()?.outcome == pickle::Outcome::Complete).then_some(("pickle", s.findings))
}

/// PROTO 0/1 or no PROTO at all: a pickle when a loader would act on it.
fn unknown_embedded(sc: &Scanner, _: Kind, d: &[u8]) -> Embedded {
    if !acts_as_pickle(sc, d, false) {
        return None;
    }
    let s = pickle::scan_streams(sc, d, 0, Some(1));
    Some(("pickle", s.findings))
}

/// The format table as a [`Scanner`] sees it: nested content comes back in through it.
pub struct Registry;

/// What [`crate::scan::scanner`] builds scanners with.
pub static REGISTRY: Registry = Registry;

impl Formats for Registry {
    fn scan(&self, sc: &Scanner<'_>, data: &[u8]) -> Vec<ScanFinding> {
        scan_bytes(sc, data)
    }
    fn embedded(&self, sc: &Scanner<'_>, data: &[u8]) -> Embedded {
        scan_nested(sc, data)
    }
}

/// Scan a file on disk. Only the bytes a format needs are read.
pub fn scan_file(sc: &Scanner, path: &std::path::Path) -> std::io::Result<Vec<ScanFinding>> {
    let src = FileSource::open(path)?;
    let head = src.read_vec(0, src.len().min(4096), 4096)?;
    let kind = sniff(&head, src.len());
    let zip_by_tail = kind == Kind::Unknown || kind == Kind::Pickle;
    if let Some(scan) = kind.format().in_place {
        let mut fs = scan(sc, &src);
        // Read through the format's own reader; a pickle reading of the head is added on top.
        fs.extend(polyglot_in_place(sc, kind, &src)?);
        return Ok(fs);
    }
    // A ZIP end record behind other content: torch.load would unpickle the head (no ZIP magic),
    // zipfile-based tools would read the archive. Scan both readings.
    let mut tail_zip = vec![];
    if zip_by_tail && matches!(zip::find_eocd(&src), Ok(Some(_))) && zip::read_archive(&src).is_ok()
    {
        tail_zip = scan_zip(sc, &src, true);
    }
    // Unrecognised content (media, ONNX, text…): decide from the first MiB before reading more.
    if kind == Kind::Unknown && tail_zip.is_empty() {
        let n = src.len().min(1 << 20);
        let head = src.read_vec(0, n, 1 << 20)?;
        if !acts_as_pickle(sc, &head, n < src.len()) {
            return Ok(not_a_model(sc));
        }
    }
    // Large legacy torch files: pickles from the head, storages by positioned reads.
    if kind == Kind::Pickle && src.len() > 64 << 20 {
        if let Some(mut fs) = torch::scan_large_legacy(sc, &src) {
            fs.extend(tail_zip);
            return Ok(fs);
        }
    }
    // Large pickles and compressed files are replayed through a window, not read whole.
    if src.len() > STREAM_FILE {
        let s: &dyn Source = &src;
        match kind {
            Kind::Pickle | Kind::Unknown => {
                let mut fs = scan_pickle_stream(sc, kind, &s);
                if !tail_zip.is_empty() {
                    fs.retain(|f| f.code != Code::Scn019.as_str());
                }
                fs.extend(tail_zip);
                return Ok(fs);
            }
            Kind::Compressed(c) => return Ok(scan_compressed(sc, c, &s)),
            _ => {}
        }
    }
    if src.len() > sc.policy.max_member_bytes {
        tail_zip.push(ScanFinding::new(
            Code::Scn002,
            Severity::High,
            format!(
                "{} of {} bytes exceeds the in-memory limit of {} bytes",
                kind.name(),
                src.len(),
                sc.policy.max_member_bytes
            ),
        ));
        return Ok(tail_zip);
    }
    let data = src.read_vec(0, src.len(), sc.policy.max_member_bytes)?;
    let _held = sc.hold(data.len());
    let mut fs = if tail_zip.is_empty() {
        scan_bytes(sc, &data)
    } else {
        scan_head(sc, kind, &data)
    };
    fs.extend(tail_zip);
    Ok(fs)
}

/// The non-ZIP reading of content that also ends in a ZIP.
fn scan_head(sc: &Scanner, kind: Kind, data: &[u8]) -> Vec<ScanFinding> {
    let fs = match kind {
        Kind::Pickle => torch::scan_pickle_file(sc, data),
        _ => scan_unknown(sc, data),
    };
    fs.into_iter()
        .filter(|f| f.code != Code::Scn019.as_str())
        .collect()
}

/// Scan content already in memory (a file, a member, a decompressed payload).
pub fn scan_bytes(sc: &Scanner, data: &[u8]) -> Vec<ScanFinding> {
    let head = &data[..data.len().min(4096)];
    let kind = sniff(head, data.len() as u64);
    let mut fs = scan_as(sc, kind, data);
    // Recognised formats that also unpickle from offset 0 (compressed data handles its own).
    if !matches!(kind, Kind::Pickle | Kind::Unknown | Kind::Compressed(_))
        && acts_as_pickle(sc, data, false)
    {
        fs.extend(polyglot_pickle(sc, kind, &data));
    }
    fs
}

/// Content that is a recognised format and, from offset 0, also a pickle that would act: a tar
/// whose first name field holds a protocol-0 pickle, a GGUF v1 header swallowed by BINFLOAT,
/// a ZIP whose `PK` reads as PERSID. `pickle.load`, `joblib.load`, `numpy.load`'s fallback and
/// torch's legacy path unpickle such a file instead of reading the format, so both readings
/// are scanned. What follows the pickle's streams is the other format, not trailing junk.
fn polyglot_pickle(sc: &Scanner, kind: Kind, data: &dyn pickle::PickleSource) -> Vec<ScanFinding> {
    let child = sc.child("<as pickle>");
    let mut fs: Vec<ScanFinding> = pickle::scan_source(&child, data, 0, None)
        .findings
        .into_iter()
        .filter(|f| f.code != Code::Pkl012.as_str())
        .collect();
    if let Some(f) = fs.iter_mut().find(|f| f.severity >= Severity::Medium) {
        f.message = format!(
            "{} (the {} also reads as a pickle from offset 0, which pickle/joblib/numpy loaders unpickle)",
            f.message,
            kind.name()
        );
    }
    fs
}

/// [`polyglot_pickle`] for content read through a [`Source`]: decided from the first MiB,
/// then read whole up to the in-memory limit.
fn polyglot_in_place(
    sc: &Scanner,
    kind: Kind,
    src: &dyn Source,
) -> std::io::Result<Vec<ScanFinding>> {
    let n = src.len().min(STREAM_HEAD as u64);
    let head = src.read_vec(0, n, STREAM_HEAD as u64)?;
    if !acts_as_pickle(sc, &head, n < src.len()) {
        return Ok(vec![]);
    }
    // Replayed through a window from the source, not read whole.
    Ok(polyglot_pickle(sc, kind, &src))
}

fn scan_as(sc: &Scanner, kind: Kind, data: &[u8]) -> Vec<ScanFinding> {
    (kind.format().in_memory)(sc, kind, data)
}

/// Pickles and unrecognised content: a ZIP behind them is read too (see [`scan_file`]).
fn pickle_or_unknown(sc: &Scanner, k: Kind, data: &[u8]) -> Vec<ScanFinding> {
    if matches!(zip::find_eocd(&data), Ok(Some(_))) && zip::read_archive(&data).is_ok() {
        let mut fs = scan_head(sc, k, data);
        fs.extend(scan_zip(sc, &data, true));
        return fs;
    }
    if k == Kind::Pickle {
        torch::scan_pickle_file(sc, data)
    } else {
        scan_unknown(sc, data)
    }
}

/// Whether content read from offset 0 acts as a pickle: a loader that unpickles it
/// (`pickle.load`, `joblib.load`, `numpy.load`'s fallback, torch's legacy path) would do
/// something with it. Protocol 0/1 streams need no magic, so this decides by replay: a stream
/// that completes, calls something, or imports a module a loader can import (an import runs
/// the module's code) acts; so does one that mlsign cannot follow as far as the loader would.
/// Text that breaks first (`cat\ndog\n…`: module `at`) does not. `partial`: `data` is only the
/// head of the file, so running out of data counts.
pub fn acts_as_pickle(sc: &Scanner, data: &[u8], partial: bool) -> bool {
    acts_as_pickle_src(sc, &data, partial)
}

/// [`acts_as_pickle`] over any [`pickle::PickleSource`].
pub fn acts_as_pickle_src(sc: &Scanner, src: &dyn pickle::PickleSource, partial: bool) -> bool {
    let mut inp = src.input(0);
    let n = inp.fill(0, 2);
    if n == 0 || !pickle::looks_like_pickle(inp.get(0, n)) {
        return false;
    }
    let t = pickle::vm::run_input(&mut inp, 0, 0, pickle::limits(sc), true);
    let ran_out = partial
        && matches!(&t.outcome, pickle::Outcome::Broken { message, .. } if message.contains("truncated"));
    t.outcome == pickle::Outcome::Complete
        || ran_out
        || t.unfollowable
        // Calls on literal values (None, numbers, containers) fail in the loader too; a call
        // that can run anything starts at a global.
        || t.calls.iter().any(|c| {
            matches!(
                c.target,
                pickle::vm::Target::Global(_) | pickle::vm::Target::MethodOf(..)
            )
        })
        // STACK_GLOBAL on computed or non-name text: find_class may import its module.
        || t.computed_global
        || t.globals.iter().any(|g| {
            super::policy::deny_reason(&g.module, &g.name).is_some()
                || pickle::modules::importable(&g.module)
        })
}

fn not_a_model(sc: &Scanner) -> Vec<ScanFinding> {
    vec![sc.stamp(ScanFinding::new(
        Code::Scn019,
        Severity::Info,
        "not a recognised model, archive or pickle format: nothing executable found",
    ))]
}

fn scan_unknown(sc: &Scanner, data: &[u8]) -> Vec<ScanFinding> {
    if acts_as_pickle(sc, data, false) {
        return torch::scan_pickle_file(sc, data);
    }
    not_a_model(sc)
}

fn scan_compressed(
    sc: &Scanner,
    c: compress::Codec,
    data: &dyn pickle::PickleSource,
) -> Vec<ScanFinding> {
    if sc.depth() >= sc.policy.max_depth {
        return vec![sc.stamp(ScanFinding::new(
            Code::Scn017,
            Severity::High,
            format!(
                "{} nested deeper than the limit ({})",
                c.name(),
                sc.policy.max_depth
            ),
        ))];
    }
    let cap = sc.member_cap();
    let hold = sc.hold_cap();
    let child = sc.child(&format!("<{}>", c.short()));
    let open = || -> std::io::Result<Box<dyn std::io::Read + '_>> {
        compress::stream_reader(c, data.open(0)?).map_err(std::io::Error::other)
    };
    let collect = |decide: &dyn Fn(&[u8]) -> bool, oversize: bool| {
        let streamable = |h: &[u8]| streamable(sc, h);
        let oversize = oversize.then_some((STREAM_FILE, &streamable as &dyn Fn(&[u8]) -> bool));
        let r = data.open(0)?;
        compress::decompress_collect(c, r, STREAM_HEAD, cap, hold, decide, oversize)
    };
    let must_hold = |h: &[u8]| must_hold(sc, h);
    let collected = collect(&must_hold, true).and_then(|(got, total)| match got {
        source::Collected::Dropped {
            head,
            total,
            tail_eocd,
        } => match dropped_findings(&child, &head, total, tail_eocd) {
            Some(fs) => Ok((Err(fs), total)),
            // Hold it after all.
            None => collect(&|_: &[u8]| true, false).map(|(got, total)| (Ok(got), total)),
        },
        whole => Ok((Ok(whole), total)),
    });
    // Compressed data that also unpickles from offset 0 (a polyglot).
    let polyglot = || {
        if acts_as_pickle_src(sc, data, false) {
            polyglot_pickle(sc, Kind::Compressed(c), data)
        } else {
            vec![]
        }
    };
    let oversize =
        |head: &[u8], tail_eocd: bool| -> Result<Vec<ScanFinding>, compress::DecompressError> {
            let kind = sniff(&head[..head.len().min(4096)], u64::MAX);
            if tail_eocd || !matches!(kind, Kind::Pickle | Kind::Unknown) {
                return Err(compress::DecompressError::MustHoldTooLarge { hold });
            }
            // A pickle too large to hold: decompressed again, straight into the replay.
            let mut fs = scan_pickle_stream(&child, kind, &pickle::input::Reopen(&open));
            fs.extend(polyglot());
            Ok(fs)
        };
    let collected = match collected {
        Ok((
            Ok(source::Collected::Oversize {
                head, tail_eocd, ..
            }),
            total,
        )) => {
            sc.charge(total);
            match oversize(&head, tail_eocd) {
                Ok(fs) => return fs,
                Err(e) => Err(e),
            }
        }
        other => other,
    };
    match collected {
        Ok((got, total)) => {
            sc.charge(total);
            match got {
                Ok(source::Collected::Whole(inner)) => {
                    let _held = sc.hold(inner.len());
                    let mut fs = child.scan(&inner);
                    fs.extend(polyglot());
                    fs
                }
                Ok(_) => not_a_model(&child),
                Err(fs) => fs,
            }
        }
        // Magic bytes that happen to start a pickle (`]` of lzma-alone is EMPTY_LIST).
        Err(_)
            if {
                let mut inp = data.input(0);
                let n = inp.fill(0, 2);
                pickle::looks_like_pickle(inp.get(0, n))
                    && pickle::vm::run_input(&mut inp, 0, 0, pickle::limits(sc), true).outcome
                        == pickle::Outcome::Complete
            } =>
        {
            torch::scan_pickle_source(sc, data)
        }
        Err(e) => vec![sc.stamp(ScanFinding::new(
            Code::Scn018,
            Severity::High,
            format!("{} data cannot be decompressed: {e}", c.name()),
        ))],
    }
}

/// Nested payload inside a pickle's bytes: only content that really is a known format counts.
pub fn scan_nested(sc: &Scanner, data: &[u8]) -> Embedded {
    let kind = sniff(&data[..data.len().min(4096)], data.len() as u64);
    kind.format().embedded.and_then(|f| f(sc, kind, data))
}

/// Any ZIP: a PyTorch checkpoint, a TorchScript archive, an `.npz`, a Keras `.keras`, or
/// another archive whose members are scanned one by one.
pub fn scan_zip(sc: &Scanner, src: &dyn Source, prepended_by_sniff: bool) -> Vec<ScanFinding> {
    let archives = match zip::read_archives(src) {
        Ok(a) => a,
        Err(e) => {
            return vec![sc.stamp(ScanFinding::new(
                Code::Scn002,
                Severity::High,
                format!("ZIP archive cannot be read: {e}"),
            ))];
        }
    };
    let mut fs = vec![];
    if prepended_by_sniff && archives.iter().all(|a| a.prepended == 0) {
        fs.push(sc.stamp(ScanFinding::new(
            Code::Scn006,
            Severity::Medium,
            "data precedes the ZIP archive",
        )));
    }
    // Loaders may read these bytes as different archives: scan every reading.
    for archive in &archives {
        fs.extend(scan_archive(sc, src, archive));
    }
    let mut seen = std::collections::HashSet::new();
    fs.retain(|f| seen.insert((f.code, f.member.clone(), f.offset, f.message.clone())));
    fs
}

fn scan_archive(sc: &Scanner, src: &dyn Source, archive: &zip::Archive) -> Vec<ScanFinding> {
    let mut fs = vec![];
    for (kind, msg) in &archive.anomalies {
        fs.push(sc.stamp(zip_anomaly(*kind, msg)));
    }
    let is_torch = archive
        .entries
        .iter()
        .any(|e| e.name == "data.pkl" || e.name.ends_with("/data.pkl"));
    // Keras recognises a `.keras` archive by its `config.json` alone.
    let is_keras = archive.entries.iter().any(|e| e.name == "config.json");
    if is_torch {
        fs.extend(torch::scan_torch_zip(sc, src, archive));
    } else if is_keras {
        fs.extend(keras::scan_keras_zip(sc, src, archive));
    } else {
        for e in &archive.entries {
            if e.name.ends_with('/') && e.usize == 0 {
                continue;
            }
            fs.extend(scan_member(sc, src, e));
        }
    }
    fs
}

pub fn zip_anomaly(kind: zip::Anomaly, msg: &str) -> ScanFinding {
    let code = match kind {
        zip::Anomaly::BadCrc => Code::Scn003,
        zip::Anomaly::Flags => Code::Scn004,
        zip::Anomaly::NameMismatch => Code::Scn005,
        zip::Anomaly::Prepended => Code::Scn006,
        zip::Anomaly::Duplicate => Code::Scn007,
        zip::Anomaly::Ambiguous => Code::Scn030,
    };
    let severity = if kind == zip::Anomaly::Ambiguous {
        Severity::High
    } else {
        Severity::Medium
    };
    ScanFinding::new(code, severity, msg.to_string())
}

fn too_big_in_memory(n: u64, hold: u64) -> ScanFinding {
    ScanFinding::new(
        Code::Scn002,
        Severity::High,
        format!("more than {n} bytes must be scanned whole but exceed the in-memory limit of {hold} bytes (policy max_in_memory_bytes)"),
    )
}

/// Scan a container that is read by positioned reads (no copy into memory).
fn scan_in_place(sc: &Scanner, kind: Kind, src: &dyn Source) -> Option<Vec<ScanFinding>> {
    let scan = kind.format().in_place?;
    // A stored member that starts like a ZIP but does not read as one is scanned as bytes.
    if kind == Kind::Zip && zip::read_archives(src).is_err() {
        return None;
    }
    let mut fs = scan(sc, src);
    match polyglot_in_place(sc, kind, src) {
        Ok(more) => fs.extend(more),
        Err(e) => fs.push(sc.stamp(ScanFinding::new(
            Code::Scn002,
            Severity::High,
            format!("member cannot be read again for its pickle reading: {e}"),
        ))),
    }
    Some(fs)
}

/// Read one ZIP member and scan it by content. Members are streamed: stored containers are
/// read in place, anything else is held in memory only when its head says it must be scanned
/// whole (bounded by the policy's `max_in_memory_bytes`); the rest is counted (for the CRC) and dropped.
pub fn scan_member(sc: &Scanner, src: &dyn Source, e: &zip::Entry) -> Vec<ScanFinding> {
    let child = sc.child(&e.name);
    if child.depth() > sc.policy.max_depth {
        return vec![child.stamp(ScanFinding::new(
            Code::Scn017,
            Severity::High,
            format!(
                "archive nested deeper than the limit ({})",
                sc.policy.max_depth
            ),
        ))];
    }
    let cap = sc.member_cap();
    let (mut r, an) = match zip::open_member(src, e, cap) {
        Ok(x) => x,
        Err(err) => return vec![member_error(&child, e, err)],
    };
    let mut fs: Vec<ScanFinding> = an
        .iter()
        .map(|(k, m)| child.stamp(zip_anomaly(*k, m)))
        .collect();
    let mut head = vec![];
    let ended = match r.read_up_to(&mut head, (STREAM_HEAD as u64).min(cap)) {
        Ok(x) => x,
        Err(err) => {
            fs.push(member_error(&child, e, err));
            return fs;
        }
    };
    let kind = sniff(&head[..head.len().min(4096)], e.usize);
    if e.flags & 1 != 0 && kind == Kind::Unknown {
        fs.push(child.stamp(ScanFinding::new(
            Code::Scn001,
            Severity::High,
            "member is encrypted: its content cannot be inspected",
        )));
        return fs;
    }
    if !ended {
        if let Some(off) = r.stored_at {
            let sub = source::SubSource {
                src,
                off,
                len: e.usize,
            };
            if let Some(found) = scan_in_place(&child, kind, &sub) {
                if let Err(err) = r.drain(cap.saturating_sub(head.len() as u64)) {
                    fs.push(member_error(&child, e, err));
                }
                sc.charge(r.produced());
                fs.extend(r.finish(e).map(|(k, m)| child.stamp(zip_anomaly(k, &m))));
                fs.extend(found);
                return fs;
            }
        }
    }
    let hold = sc.hold_cap();
    let must_hold = |h: &[u8]| must_hold(sc, h);
    let streamable = |h: &[u8]| streamable(sc, h);
    let mut col = source::Collector::new(STREAM_HEAD, cap, hold, &must_hold);
    // A pickle too large to hold is replayed from the member again, through a window.
    col = col.stream_oversize(STREAM_FILE, &streamable);
    let copied = std::io::Write::write_all(&mut col, &head)
        .and_then(|_| std::io::copy(&mut r, &mut col).map(|_| ()));
    sc.charge(col.total());
    if let Err(err) = copied {
        fs.push(match err.kind() {
            std::io::ErrorKind::OutOfMemory => child.stamp(too_big_in_memory(col.total(), hold)),
            std::io::ErrorKind::Other => member_error(
                &child,
                e,
                zip::ZipError::InflatesPastLimit {
                    name: e.name.clone(),
                    max: cap,
                },
            ),
            _ => member_error(
                &child,
                e,
                zip::ZipError::Inflate {
                    name: e.name.clone(),
                    msg: err.to_string(),
                },
            ),
        });
        return fs;
    }
    fs.extend(r.finish(e).map(|(k, m)| child.stamp(zip_anomaly(k, &m))));
    let data = match col.finish() {
        source::Collected::Whole(d) => d,
        source::Collected::Oversize {
            total, tail_eocd, ..
        } => {
            if tail_eocd {
                fs.push(child.stamp(too_big_in_memory(total, hold)));
                return fs;
            }
            let open = || -> std::io::Result<Box<dyn std::io::Read + '_>> {
                let (r, _) = zip::open_member(src, e, cap).map_err(std::io::Error::other)?;
                Ok(Box::new(r))
            };
            fs.extend(scan_pickle_stream(
                &child,
                kind,
                &pickle::input::Reopen(&open),
            ));
            return fs;
        }
        source::Collected::Dropped {
            head,
            total,
            tail_eocd,
        } => match dropped_findings(&child, &head, total, tail_eocd) {
            Some(found) => {
                fs.extend(found);
                return fs;
            }
            // Read it whole after all (bounded like any held payload).
            None => match zip::read_member(src, e, hold) {
                Ok((d, _)) => d,
                Err(err) => {
                    fs.push(member_error(&child, e, err));
                    return fs;
                }
            },
        },
    };
    let _held = sc.hold(data.len());
    fs.extend(child.scan(&data));
    fs
}

/// A member that cannot be read is unscannable.
fn member_error(child: &Scanner, e: &zip::Entry, err: zip::ZipError) -> ScanFinding {
    let enc = e.flags & 1 != 0;
    match err {
        zip::ZipError::Method { method, .. } => child.stamp(ScanFinding::new(
            Code::Scn021,
            Severity::High,
            format!(
                "compression method {method} is not supported{}: the member cannot be inspected",
                if enc { " (member is encrypted)" } else { "" }
            ),
        )),
        err => child.stamp(ScanFinding::new(
            if enc { Code::Scn001 } else { Code::Scn002 },
            Severity::High,
            format!(
                "member cannot be read{}: {err}",
                if enc { " (encrypted)" } else { "" }
            ),
        )),
    }
}

/// Read a member whole (at most `max_in_memory_bytes`), turning anomalies into findings;
/// an unreadable member is unscannable.
pub fn read_zip_member(
    src: &dyn Source,
    e: &zip::Entry,
    child: &Scanner,
) -> Result<(Vec<u8>, Vec<ScanFinding>), ScanFinding> {
    match zip::read_member(src, e, child.hold_cap()) {
        Ok((data, anomalies)) => {
            child.charge(data.len() as u64);
            let fs = anomalies
                .iter()
                .map(|(k, m)| child.stamp(zip_anomaly(*k, m)))
                .collect();
            Ok((data, fs))
        }
        Err(err) => Err(member_error(child, e, err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::Policy;

    #[test]
    fn total_read_budget_makes_zip_bombs_unscannable() {
        let big = vec![b'x'; 1 << 20];
        let z = zip::build_stored(&[("a.bin", &big), ("b.bin", &big), ("c.bin", &big)]);
        let mut policy = Policy::default();
        let r = crate::scan::scan_bytes("z", &z, &policy);
        assert_eq!(r.verdict, crate::scan::Verdict::Clean, "{:?}", r.findings);
        policy.max_total_bytes = 1 << 21;
        let r = crate::scan::scan_bytes("z", &z, &policy);
        assert_eq!(
            r.verdict,
            crate::scan::Verdict::Unscannable,
            "{:?}",
            r.findings
        );
        assert_eq!(r.findings.iter().filter(|f| f.code == "SCN002").count(), 1);
    }

    fn scan(d: &[u8]) -> (crate::scan::Verdict, Vec<&'static str>) {
        let r = crate::scan::scan_bytes("x", d, &Policy::default());
        (r.verdict, r.findings.iter().map(|f| f.code).collect())
    }

    #[test]
    fn proto_0_and_1_headers_are_pickles_everywhere() {
        let p = b"\x80\x01cos\nsystem\n(S'id'\ntR.";
        let (v, c) = scan(p);
        assert_eq!(v, crate::scan::Verdict::Malicious, "{c:?}");
        assert!(c.contains(&"PKL001"));
        let p0 = b"\x80\x00cos\nsystem\n(S'id'\ntR.";
        assert!(scan(p0).1.contains(&"PKL001"));
        // A benign PROTO 1 stream is a pickle (clean), not "not a model".
        assert_eq!(scan(b"\x80\x01N."), (crate::scan::Verdict::Clean, vec![]));
        let z = zip::build_stored(&[("model.pkl", &p[..])]);
        assert!(scan(&z).1.contains(&"PKL001"));
        // Nested in bytes (SHORT_BINBYTES) of an ordinary pickle.
        let mut outer = b"\x80\x03cpickle\nloads\nC".to_vec();
        outer.push(p.len() as u8);
        outer.extend_from_slice(p);
        outer.extend_from_slice(b"\x85R.");
        let c = scan(&outer).1;
        assert!(c.contains(&"PKL013") && c.contains(&"PKL001"), "{c:?}");
    }

    #[test]
    fn text_acts_as_pickle_only_when_a_loader_would_act() {
        // Calls and STACK_GLOBAL on literal non-text values fail in CPython before anything
        // runs: binary data that happens to read so is not a pickle.
        assert_eq!(scan(b"NNR\xff").1, vec!["SCN019"]);
        assert_eq!(scan(b"NN\x93\xff").1, vec!["SCN019"]);
        // The benign corpus's vocab.txt: GLOBAL of module `at`, which cannot import.
        assert_eq!(scan(b"cat\ndog\nbird\n(fish)\n").1, vec!["SCN019"]);
        // Importing `antigravity` runs it, even though the stream then breaks.
        let (v, c) = scan(b"cantigravity\nx\n\xff");
        assert_ne!(v, crate::scan::Verdict::Clean, "{c:?}");
        assert!(!c.contains(&"SCN019"));
        // Found by the differential fuzzer: STACK_GLOBAL('os', '\ud800system') imports os
        // before the stream breaks.
        let d = b"V\\u006f\\u0073\np0\n0V\\ud800system\np1\n0(g0\ng1\n\x93S'tru\xe5'\ntR";
        let (v, c) = scan(d);
        assert_ne!(v, crate::scan::Verdict::Clean, "{c:?}");
        assert!(c.contains(&"PKL005"), "{c:?}");
    }

    #[test]
    fn polyglots_are_also_scanned_as_pickles() {
        let payload = b"cos\nsystem\n(S'id'\ntR.";
        // GGUF v1: BINFLOAT swallows the magic's tail, the version and a byte of n_tensors.
        let mut g = b"GGUF\x01\x00\x00\x00\x00N0".to_vec();
        g.extend_from_slice(payload);
        g.extend_from_slice(&[0; 64]);
        assert_eq!(sniff(&g, g.len() as u64), Kind::Gguf);
        assert!(scan(&g).1.contains(&"PKL001"), "{:?}", scan(&g));
        // tar: the first header's name field holds the pickle.
        let mut t = vec![0u8; 1024];
        t[..payload.len()].copy_from_slice(payload);
        t[100..108].copy_from_slice(b"0000644\0");
        t[124..136].copy_from_slice(b"00000000000\0");
        t[156] = b'0';
        t[257..263].copy_from_slice(b"ustar\0");
        t[263..265].copy_from_slice(b"00");
        t[148..156].fill(b' ');
        let sum: u32 = t[..512].iter().map(|&b| b as u32).sum();
        t[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        assert_eq!(sniff(&t, t.len() as u64), Kind::Tar);
        assert!(scan(&t).1.contains(&"PKL001"), "{:?}", scan(&t));
    }

    /// Pickles past `STREAM_FILE` are replayed through a window from the file, the ZIP member
    /// or the decompressor instead of being held: same findings as the payload in memory.
    #[test]
    fn pickles_past_the_stream_limit_are_replayed_not_held() {
        let n = (STREAM_FILE + (1 << 20)) as usize;
        let mut p = b"\x80\x04\x8e".to_vec();
        p.extend_from_slice(&(n as u64).to_le_bytes());
        p.resize(p.len() + n, 0);
        p.extend_from_slice(b"0cos\nsystem\n(S'id'\ntR.");
        let codes = |fs: &[ScanFinding]| -> Vec<(&'static str, Option<u64>)> {
            fs.iter().map(|f| (f.code, f.offset)).collect()
        };
        let policy = Policy::default();
        let held = codes(&scan_bytes(&crate::scan::scanner(&policy), &p));
        assert!(held.iter().any(|c| c.0 == "PKL001"), "{held:?}");
        // A file on disk.
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("big.pkl");
        std::fs::write(&f, &p).unwrap();
        assert_eq!(
            codes(&scan_file(&crate::scan::scanner(&policy), &f).unwrap()),
            held
        );
        // A zlib payload (decompressed twice: checked, then replayed) and a ZIP member.
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut z, &p).unwrap();
        let z = z.finish().unwrap();
        assert_eq!(codes(&scan_bytes(&crate::scan::scanner(&policy), &z)), held);
        let zip = zip::build_stored(&[("model.pkl", &p)]);
        assert_eq!(
            codes(&scan_bytes(&crate::scan::scanner(&policy), &zip)),
            held
        );
    }

    /// Every entry is found again from its kind, and the last one answers for anything.
    #[test]
    fn the_format_table_is_consistent() {
        let d = std::mem::discriminant;
        for f in FORMATS {
            assert_eq!(d(&f.kind.format().kind), d(&f.kind));
        }
        let last = &FORMATS[FORMATS.len() - 1];
        assert_eq!(last.kind, Kind::Unknown);
        assert_eq!((last.sniff)(b"", 0), Some(Kind::Unknown));
        assert_eq!(sniff(b"", 0), Kind::Unknown);
        assert_eq!(
            sniff(b"7z\xbc\xaf\x27\x1c", 6),
            Kind::Unsupported("7z archive")
        );
        // Entries shared by several kinds report the kind they are given.
        let rar = Kind::Unsupported("RAR archive");
        let fs = (rar.format().in_memory)(&crate::scan::scanner(&Policy::default()), rar, b"");
        assert_eq!(fs.len(), 1);
        assert!(fs[0].code == "SCN001" && fs[0].message.starts_with("RAR archive:"));
    }

    #[test]
    fn stop_on_empty_stack_is_not_a_stream() {
        let r = crate::scan::scan_bytes("dots", b"\x80\x02N....", &Policy::default());
        assert!(
            r.findings.iter().any(|f| f.code == "PKL012"),
            "{:?}",
            r.findings
        );
        let r = crate::scan::scan_bytes("dot", b".", &Policy::default());
        assert_ne!(r.verdict, crate::scan::Verdict::Malicious);
    }
}
