//! Containers, identified by content (never by file extension), each in its own file.

pub mod compress;
pub mod gguf;
pub mod hdf5;
pub mod jinja;
pub mod keras;
pub mod npy;
pub mod pyjson;
pub mod safetensors;
pub mod source;
pub mod tar;
pub mod torch;
pub mod zip;

use super::finding::{Ctx, ScanFinding};
use super::pickle;
use super::policy::Policy;
use crate::report::Severity;
use source::{FileSource, Source};

thread_local! {
    /// Bytes still allowed to be read from members / decompressed for the current file.
    static BUDGET: std::cell::Cell<u64> = const { std::cell::Cell::new(u64::MAX) };
}

/// Start a new file's read budget.
pub fn reset_budget(policy: &Policy) {
    BUDGET.with(|b| b.set(policy.max_total_bytes));
    pickle::reset_memory();
}

/// The most one more member / payload may take: the per-member limit or what is left.
fn member_cap(policy: &Policy) -> u64 {
    policy.max_member_bytes.min(BUDGET.with(|b| b.get()))
}

/// The most bytes of one member or decompressed payload held in memory at once. Larger
/// payloads are streamed: their head decides whether they must be held (pickles, containers),
/// else they are counted and dropped. Keeps peak memory bounded on bombs (docs/scan-formats.md).
pub const IN_MEMORY_MAX: u64 = 192 << 20;

/// Files, members and decompressed payloads larger than this that are pickles (or compressed
/// files) are streamed (see [`pickle::input`]); smaller ones are read whole.
pub const STREAM_FILE: u64 = 64 << 20;

/// A pickle (by its PROTO, or magic-less content that acts as one) too large to hold, replayed
/// through a window: what [`scan_bytes`] does for one held in memory.
fn scan_pickle_stream(
    kind: Kind,
    src: &dyn pickle::PickleSource,
    ctx: &Ctx,
    policy: &Policy,
) -> Vec<ScanFinding> {
    if kind == Kind::Pickle || acts_as_pickle_src(src, false) {
        torch::scan_pickle_source(src, ctx, policy)
    } else {
        not_a_model(ctx)
    }
}

/// Whether a payload whose head is `head` and that must be held is a pickle that can be
/// replayed through a window instead (see [`STREAM_FILE`]).
fn streamable(head: &[u8]) -> bool {
    match sniff(&head[..head.len().min(4096)], u64::MAX) {
        Kind::Pickle => true,
        Kind::Unknown => acts_as_pickle(head, true),
        _ => false,
    }
}

/// Head of a streamed payload that decides whether it must be held whole.
const STREAM_HEAD: usize = 1 << 20;

/// Whether a payload whose first bytes are `head` must be held whole to be scanned: containers
/// and pickles yes; plain `.npy` arrays and content that does not act as a pickle no.
fn must_hold(head: &[u8]) -> bool {
    match sniff(&head[..head.len().min(4096)], u64::MAX) {
        Kind::Npy => !npy::streamable(head),
        Kind::Unknown => acts_as_pickle(head, true),
        _ => true,
    }
}

/// Most bytes held in memory for one payload under this policy.
fn hold_cap(policy: &Policy) -> u64 {
    member_cap(policy).min(policy.max_in_memory_bytes)
}

/// Findings for a payload that was streamed and dropped, or `None` when it must be read whole
/// after all (data after a plain array, or a ZIP appended to unrecognised data).
fn dropped_findings(
    head: &[u8],
    total: u64,
    tail_eocd: bool,
    ctx: &Ctx,
) -> Option<Vec<ScanFinding>> {
    if tail_eocd {
        return None;
    }
    if sniff(&head[..head.len().min(4096)], u64::MAX) == Kind::Npy {
        return npy::scan_streamed(head, total, ctx);
    }
    Some(not_a_model(ctx))
}

fn charge(n: usize) {
    BUDGET.with(|b| b.set(b.get().saturating_sub(n as u64)));
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

/// Identify content from its head (and, for ZIPs with prepended data, its tail).
pub fn sniff(head: &[u8], len: u64) -> Kind {
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Kind::Zip;
    }
    if head.starts_with(b"\x93NUMPY") {
        return Kind::Npy;
    }
    if head.starts_with(b"GGUF") {
        return Kind::Gguf;
    }
    if head.starts_with(b"\x89HDF\r\n\x1a\n") {
        return Kind::Hdf5;
    }
    if head.starts_with(b"7z\xbc\xaf\x27\x1c") {
        return Kind::Unsupported("7z archive");
    }
    if head.starts_with(b"Rar!\x1a\x07") {
        return Kind::Unsupported("RAR archive");
    }
    if head.starts_with(&[0x04, 0x22, 0x4d, 0x18]) {
        return Kind::Unsupported("LZ4 frame");
    }
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Kind::Unsupported("Zstandard frame");
    }
    if head.len() >= 262 && &head[257..262] == b"ustar" {
        return Kind::Tar;
    }
    if let Some(c) = compress::sniff(head) {
        return Kind::Compressed(c);
    }
    if head.len() >= 9 {
        let n = u64::from_le_bytes(head[..8].try_into().unwrap_or([0; 8]));
        if head[8] == b'{' && (2..=100_000_000).contains(&n) && n + 8 <= len {
            return Kind::Safetensors;
        }
    }
    if matches!(head, [0x80, 2..=5, ..]) {
        return Kind::Pickle;
    }
    Kind::Unknown
}

/// Scan a file on disk. Only the bytes a format needs are read.
pub fn scan_file(path: &std::path::Path, policy: &Policy) -> std::io::Result<Vec<ScanFinding>> {
    let src = FileSource::open(path)?;
    let ctx = Ctx::default();
    reset_budget(policy);
    let head = src.read_vec(0, src.len().min(4096), 4096)?;
    let kind = sniff(&head, src.len());
    let zip_by_tail = kind == Kind::Unknown || kind == Kind::Pickle;
    let mut fs = match kind {
        Kind::Zip => scan_zip(&src, &ctx, policy, false),
        Kind::Safetensors => safetensors::scan(&src, &ctx),
        Kind::Gguf => gguf::scan(&src, &ctx),
        Kind::Hdf5 => keras::scan_hdf5(&src, &ctx),
        _ => vec![],
    };
    if matches!(
        kind,
        Kind::Zip | Kind::Safetensors | Kind::Gguf | Kind::Hdf5
    ) {
        // Read through the format's own reader; a pickle reading of the head is added on top.
        fs.extend(polyglot_in_place(kind, &src, &ctx, policy)?);
        return Ok(fs);
    }
    // A ZIP end record behind other content: torch.load would unpickle the head (no ZIP magic),
    // zipfile-based tools would read the archive. Scan both readings.
    let mut tail_zip = vec![];
    if zip_by_tail && matches!(zip::find_eocd(&src), Ok(Some(_))) && zip::read_archive(&src).is_ok()
    {
        tail_zip = scan_zip(&src, &ctx, policy, true);
    }
    // Unrecognised content (media, ONNX, text…): decide from the first MiB before reading more.
    if kind == Kind::Unknown && tail_zip.is_empty() {
        let n = src.len().min(1 << 20);
        let head = src.read_vec(0, n, 1 << 20)?;
        if !acts_as_pickle(&head, n < src.len()) {
            return Ok(not_a_model(&ctx));
        }
    }
    // Large legacy torch files: pickles from the head, storages by positioned reads.
    if kind == Kind::Pickle && src.len() > 64 << 20 {
        if let Some(mut fs) = torch::scan_large_legacy(&src, &ctx, policy) {
            fs.extend(tail_zip);
            return Ok(fs);
        }
    }
    // Large pickles and compressed files are replayed through a window, not read whole.
    if src.len() > STREAM_FILE {
        let s: &dyn Source = &src;
        match kind {
            Kind::Pickle | Kind::Unknown => {
                let mut fs = scan_pickle_stream(kind, &s, &ctx, policy);
                if !tail_zip.is_empty() {
                    fs.retain(|f| f.code != "SCN019");
                }
                fs.extend(tail_zip);
                return Ok(fs);
            }
            Kind::Compressed(c) => return Ok(scan_compressed(c, &s, &ctx, policy)),
            _ => {}
        }
    }
    if src.len() > policy.max_member_bytes {
        tail_zip.push(ScanFinding::new(
            "SCN002",
            Severity::High,
            format!(
                "{} of {} bytes exceeds the in-memory limit of {} bytes",
                kind.name(),
                src.len(),
                policy.max_member_bytes
            ),
        ));
        return Ok(tail_zip);
    }
    let data = src.read_vec(0, src.len(), policy.max_member_bytes)?;
    let _held = pickle::hold_data(data.len());
    let mut fs = if tail_zip.is_empty() {
        scan_bytes(&data, &ctx, policy)
    } else {
        scan_head(kind, &data, &ctx, policy)
    };
    fs.extend(tail_zip);
    Ok(fs)
}

/// The non-ZIP reading of content that also ends in a ZIP.
fn scan_head(kind: Kind, data: &[u8], ctx: &Ctx, policy: &Policy) -> Vec<ScanFinding> {
    let fs = match kind {
        Kind::Pickle => torch::scan_pickle_file(data, ctx, policy),
        _ => scan_unknown(data, ctx, policy),
    };
    fs.into_iter().filter(|f| f.code != "SCN019").collect()
}

/// Scan content already in memory (a file, a member, a decompressed payload).
pub fn scan_bytes(data: &[u8], ctx: &Ctx, policy: &Policy) -> Vec<ScanFinding> {
    let head = &data[..data.len().min(4096)];
    let kind = sniff(head, data.len() as u64);
    let mut fs = scan_as(kind, data, ctx, policy);
    // Recognised formats that also unpickle from offset 0 (compressed data handles its own).
    if !matches!(kind, Kind::Pickle | Kind::Unknown | Kind::Compressed(_))
        && acts_as_pickle(data, false)
    {
        fs.extend(polyglot_pickle(kind, &data, ctx, policy));
    }
    fs
}

/// Content that is a recognised format and, from offset 0, also a pickle that would act: a tar
/// whose first name field holds a protocol-0 pickle, a GGUF v1 header swallowed by BINFLOAT,
/// a ZIP whose `PK` reads as PERSID. `pickle.load`, `joblib.load`, `numpy.load`'s fallback and
/// torch's legacy path unpickle such a file instead of reading the format, so both readings
/// are scanned. What follows the pickle's streams is the other format, not trailing junk.
fn polyglot_pickle(
    kind: Kind,
    data: &dyn pickle::PickleSource,
    ctx: &Ctx,
    policy: &Policy,
) -> Vec<ScanFinding> {
    let child = ctx.child("<as pickle>");
    let mut fs: Vec<ScanFinding> = pickle::scan_source(data, 0, &child, policy, None)
        .findings
        .into_iter()
        .filter(|f| f.code != "PKL012")
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
    kind: Kind,
    src: &dyn Source,
    ctx: &Ctx,
    policy: &Policy,
) -> std::io::Result<Vec<ScanFinding>> {
    let n = src.len().min(STREAM_HEAD as u64);
    let head = src.read_vec(0, n, STREAM_HEAD as u64)?;
    if !acts_as_pickle(&head, n < src.len()) {
        return Ok(vec![]);
    }
    // Replayed through a window from the source, not read whole.
    Ok(polyglot_pickle(kind, &src, ctx, policy))
}

fn scan_as(kind: Kind, data: &[u8], ctx: &Ctx, policy: &Policy) -> Vec<ScanFinding> {
    match kind {
        Kind::Zip => scan_zip(&data, ctx, policy, false),
        Kind::Npy => npy::scan(data, ctx, policy),
        Kind::Safetensors => safetensors::scan(&data, ctx),
        Kind::Gguf => gguf::scan(&data, ctx),
        Kind::Hdf5 => keras::scan_hdf5(&data, ctx),
        Kind::Tar => tar::scan(data, ctx, policy),
        Kind::Compressed(c) => scan_compressed(c, &data, ctx, policy),
        Kind::Unsupported(what) => vec![ctx.stamp(ScanFinding::new(
            "SCN001",
            Severity::High,
            format!("{what}: mlsign cannot look inside it, so it cannot be called safe (unpack it and scan the contents)"),
        ))],
        k @ (Kind::Pickle | Kind::Unknown) => {
            if matches!(zip::find_eocd(&data), Ok(Some(_))) && zip::read_archive(&data).is_ok() {
                let mut fs = scan_head(k, data, ctx, policy);
                fs.extend(scan_zip(&data, ctx, policy, true));
                return fs;
            }
            if k == Kind::Pickle {
                torch::scan_pickle_file(data, ctx, policy)
            } else {
                scan_unknown(data, ctx, policy)
            }
        }
    }
}

/// Whether content read from offset 0 acts as a pickle: a loader that unpickles it
/// (`pickle.load`, `joblib.load`, `numpy.load`'s fallback, torch's legacy path) would do
/// something with it. Protocol 0/1 streams need no magic, so this decides by replay: a stream
/// that completes, calls something, or imports a module a loader can import (an import runs
/// the module's code) acts; so does one that mlsign cannot follow as far as the loader would.
/// Text that breaks first (`cat\ndog\n…`: module `at`) does not. `partial`: `data` is only the
/// head of the file, so running out of data counts.
pub fn acts_as_pickle(data: &[u8], partial: bool) -> bool {
    acts_as_pickle_src(&data, partial)
}

/// [`acts_as_pickle`] over any [`pickle::PickleSource`].
pub fn acts_as_pickle_src(src: &dyn pickle::PickleSource, partial: bool) -> bool {
    let mut inp = src.input(0);
    let n = inp.fill(0, 2);
    if n == 0 || !pickle::looks_like_pickle(inp.get(0, n)) {
        return false;
    }
    let t = pickle::vm::run_input(&mut inp, 0, 0, pickle::Limits::default(), true);
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

fn not_a_model(ctx: &Ctx) -> Vec<ScanFinding> {
    vec![ctx.stamp(ScanFinding::new(
        "SCN019",
        Severity::Info,
        "not a recognised model, archive or pickle format: nothing executable found",
    ))]
}

fn scan_unknown(data: &[u8], ctx: &Ctx, policy: &Policy) -> Vec<ScanFinding> {
    if acts_as_pickle(data, false) {
        return torch::scan_pickle_file(data, ctx, policy);
    }
    not_a_model(ctx)
}

fn scan_compressed(
    c: compress::Codec,
    data: &dyn pickle::PickleSource,
    ctx: &Ctx,
    policy: &Policy,
) -> Vec<ScanFinding> {
    if ctx.depth >= policy.max_depth {
        return vec![ctx.stamp(ScanFinding::new(
            "SCN017",
            Severity::High,
            format!(
                "{} nested deeper than the limit ({})",
                c.name(),
                policy.max_depth
            ),
        ))];
    }
    let cap = member_cap(policy);
    let hold = hold_cap(policy);
    let child = ctx.child(&format!("<{}>", c.short()));
    let open = || -> std::io::Result<Box<dyn std::io::Read + '_>> {
        compress::stream_reader(c, data.open(0)?).map_err(std::io::Error::other)
    };
    let collect = |decide: &dyn Fn(&[u8]) -> bool, oversize: bool| {
        let oversize = oversize.then_some((STREAM_FILE, &streamable as &dyn Fn(&[u8]) -> bool));
        let r = data.open(0).map_err(|e| e.to_string())?;
        compress::decompress_collect(c, r, STREAM_HEAD, cap, hold, decide, oversize)
    };
    let collected = collect(&must_hold, true).and_then(|(got, total)| match got {
        source::Collected::Dropped {
            head,
            total,
            tail_eocd,
        } => match dropped_findings(&head, total, tail_eocd, &child) {
            Some(fs) => Ok((Err(fs), total)),
            // Hold it after all.
            None => collect(&|_: &[u8]| true, false).map(|(got, total)| (Ok(got), total)),
        },
        whole => Ok((Ok(whole), total)),
    });
    // Compressed data that also unpickles from offset 0 (a polyglot).
    let polyglot = || {
        if acts_as_pickle_src(data, false) {
            polyglot_pickle(Kind::Compressed(c), data, ctx, policy)
        } else {
            vec![]
        }
    };
    let oversize = |head: &[u8], tail_eocd: bool| -> Result<Vec<ScanFinding>, String> {
        let kind = sniff(&head[..head.len().min(4096)], u64::MAX);
        if tail_eocd || !matches!(kind, Kind::Pickle | Kind::Unknown) {
            return Err(format!(
                "must be scanned whole but exceeds the in-memory limit of {hold} bytes"
            ));
        }
        // A pickle too large to hold: decompressed again, straight into the replay.
        let mut fs = scan_pickle_stream(kind, &pickle::input::Reopen(&open), &child, policy);
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
            charge(total as usize);
            match oversize(&head, tail_eocd) {
                Ok(fs) => return fs,
                Err(e) => Err(e),
            }
        }
        other => other,
    };
    match collected {
        Ok((got, total)) => {
            charge(total as usize);
            match got {
                Ok(source::Collected::Whole(inner)) => {
                    let _held = pickle::hold_data(inner.len());
                    let mut fs = scan_bytes(&inner, &child, policy);
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
                    && pickle::vm::run_input(&mut inp, 0, 0, pickle::Limits::default(), true)
                        .outcome
                        == pickle::Outcome::Complete
            } =>
        {
            torch::scan_pickle_source(data, ctx, policy)
        }
        Err(e) => vec![ctx.stamp(ScanFinding::new(
            "SCN018",
            Severity::High,
            format!("{} data cannot be decompressed: {e}", c.name()),
        ))],
    }
}

/// Nested payload inside a pickle's bytes: only content that really is a known format counts.
pub fn scan_nested(
    data: &[u8],
    ctx: &Ctx,
    policy: &Policy,
) -> Option<(&'static str, Vec<ScanFinding>)> {
    match sniff(&data[..data.len().min(4096)], data.len() as u64) {
        Kind::Pickle => {
            let s = pickle::scan_streams(data, 0, ctx, policy, Some(1));
            (s.traces.first()?.outcome == pickle::Outcome::Complete)
                .then_some(("pickle", s.findings))
        }
        // PROTO 0/1 or no PROTO at all: a pickle when a loader would act on it.
        Kind::Unknown if acts_as_pickle(data, false) => {
            let s = pickle::scan_streams(data, 0, ctx, policy, Some(1));
            Some(("pickle", s.findings))
        }
        Kind::Npy => npy::parse_header(data)
            .ok()
            .map(|_| ("NumPy array", npy::scan(data, ctx, policy))),
        Kind::Zip => zip::read_archive(&data)
            .ok()
            .map(|_| ("ZIP archive", scan_zip(&data, ctx, policy, false))),
        Kind::Compressed(c) => {
            let inner = compress::decompress(c, data, hold_cap(policy)).ok()?;
            charge(inner.len());
            let _held = pickle::hold_data(inner.len());
            let (k, f) = scan_nested(&inner, &ctx.child(&format!("<{}>", c.short())), policy)?;
            Some((k, f))
        }
        _ => None,
    }
}

/// Any ZIP: a PyTorch checkpoint, a TorchScript archive, an `.npz`, a Keras `.keras`, or
/// another archive whose members are scanned one by one.
pub fn scan_zip(
    src: &dyn Source,
    ctx: &Ctx,
    policy: &Policy,
    prepended_by_sniff: bool,
) -> Vec<ScanFinding> {
    let archives = match zip::read_archives(src) {
        Ok(a) => a,
        Err(e) => {
            return vec![ctx.stamp(ScanFinding::new(
                "SCN002",
                Severity::High,
                format!("ZIP archive cannot be read: {e}"),
            ))];
        }
    };
    let mut fs = vec![];
    if prepended_by_sniff && archives.iter().all(|a| a.prepended == 0) {
        fs.push(ctx.stamp(ScanFinding::new(
            "SCN006",
            Severity::Medium,
            "data precedes the ZIP archive",
        )));
    }
    // Loaders may read these bytes as different archives: scan every reading.
    for archive in &archives {
        fs.extend(scan_archive(src, archive, ctx, policy));
    }
    let mut seen = std::collections::HashSet::new();
    fs.retain(|f| seen.insert((f.code, f.member.clone(), f.offset, f.message.clone())));
    fs
}

fn scan_archive(
    src: &dyn Source,
    archive: &zip::Archive,
    ctx: &Ctx,
    policy: &Policy,
) -> Vec<ScanFinding> {
    let mut fs = vec![];
    for (kind, msg) in &archive.anomalies {
        fs.push(ctx.stamp(zip_anomaly(*kind, msg)));
    }
    let is_torch = archive
        .entries
        .iter()
        .any(|e| e.name == "data.pkl" || e.name.ends_with("/data.pkl"));
    // Keras recognises a `.keras` archive by its `config.json` alone.
    let is_keras = archive.entries.iter().any(|e| e.name == "config.json");
    if is_torch {
        fs.extend(torch::scan_torch_zip(src, archive, ctx, policy));
    } else if is_keras {
        fs.extend(keras::scan_keras_zip(src, archive, ctx, policy));
    } else {
        for e in &archive.entries {
            if e.name.ends_with('/') && e.usize == 0 {
                continue;
            }
            fs.extend(scan_member(src, e, ctx, policy));
        }
    }
    fs
}

pub fn zip_anomaly(kind: zip::Anomaly, msg: &str) -> ScanFinding {
    let code = match kind {
        zip::Anomaly::BadCrc => "SCN003",
        zip::Anomaly::Flags => "SCN004",
        zip::Anomaly::NameMismatch => "SCN005",
        zip::Anomaly::Prepended => "SCN006",
        zip::Anomaly::Duplicate => "SCN007",
        zip::Anomaly::Ambiguous => "SCN030",
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
        "SCN002",
        Severity::High,
        format!("more than {n} bytes must be scanned whole but exceed the in-memory limit of {hold} bytes (policy max_in_memory_bytes)"),
    )
}

/// Scan a container that is read by positioned reads (no copy into memory).
fn scan_in_place(
    kind: Kind,
    src: &dyn Source,
    ctx: &Ctx,
    policy: &Policy,
) -> Option<Vec<ScanFinding>> {
    let mut fs = match kind {
        Kind::Zip if zip::read_archives(src).is_ok() => scan_zip(src, ctx, policy, false),
        Kind::Gguf => gguf::scan(src, ctx),
        Kind::Safetensors => safetensors::scan(src, ctx),
        Kind::Hdf5 => keras::scan_hdf5(src, ctx),
        _ => return None,
    };
    match polyglot_in_place(kind, src, ctx, policy) {
        Ok(more) => fs.extend(more),
        Err(e) => fs.push(ctx.stamp(ScanFinding::new(
            "SCN002",
            Severity::High,
            format!("member cannot be read again for its pickle reading: {e}"),
        ))),
    }
    Some(fs)
}

/// Read one ZIP member and scan it by content. Members are streamed: stored containers are
/// read in place, anything else is held in memory only when its head says it must be scanned
/// whole (bounded by the policy's `max_in_memory_bytes`); the rest is counted (for the CRC) and dropped.
pub fn scan_member(
    src: &dyn Source,
    e: &zip::Entry,
    ctx: &Ctx,
    policy: &Policy,
) -> Vec<ScanFinding> {
    let child = ctx.child(&e.name);
    if child.depth > policy.max_depth {
        return vec![child.stamp(ScanFinding::new(
            "SCN017",
            Severity::High,
            format!(
                "archive nested deeper than the limit ({})",
                policy.max_depth
            ),
        ))];
    }
    let cap = member_cap(policy);
    let (mut r, an) = match zip::open_member(src, e, cap) {
        Ok(x) => x,
        Err(err) => return vec![member_error(e, &child, err)],
    };
    let mut fs: Vec<ScanFinding> = an
        .iter()
        .map(|(k, m)| child.stamp(zip_anomaly(*k, m)))
        .collect();
    let mut head = vec![];
    let ended = match r.read_up_to(&mut head, (STREAM_HEAD as u64).min(cap)) {
        Ok(x) => x,
        Err(err) => {
            fs.push(member_error(e, &child, err));
            return fs;
        }
    };
    let kind = sniff(&head[..head.len().min(4096)], e.usize);
    if e.flags & 1 != 0 && kind == Kind::Unknown {
        fs.push(child.stamp(ScanFinding::new(
            "SCN001",
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
            if let Some(found) = scan_in_place(kind, &sub, &child, policy) {
                if let Err(err) = r.drain(cap.saturating_sub(head.len() as u64)) {
                    fs.push(member_error(e, &child, err));
                }
                charge(r.produced() as usize);
                fs.extend(r.finish(e).map(|(k, m)| child.stamp(zip_anomaly(k, &m))));
                fs.extend(found);
                return fs;
            }
        }
    }
    let hold = hold_cap(policy);
    let mut col = source::Collector::new(STREAM_HEAD, cap, hold, &must_hold);
    // A pickle too large to hold is replayed from the member again, through a window.
    col = col.stream_oversize(STREAM_FILE, &streamable);
    let copied = std::io::Write::write_all(&mut col, &head)
        .and_then(|_| std::io::copy(&mut r, &mut col).map(|_| ()));
    charge(col.total() as usize);
    if let Err(err) = copied {
        fs.push(match err.kind() {
            std::io::ErrorKind::OutOfMemory => child.stamp(too_big_in_memory(col.total(), hold)),
            std::io::ErrorKind::Other => member_error(
                e,
                &child,
                zip::ZipError::InflatesPastLimit {
                    name: e.name.clone(),
                    max: cap,
                },
            ),
            _ => member_error(
                e,
                &child,
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
                kind,
                &pickle::input::Reopen(&open),
                &child,
                policy,
            ));
            return fs;
        }
        source::Collected::Dropped {
            head,
            total,
            tail_eocd,
        } => match dropped_findings(&head, total, tail_eocd, &child) {
            Some(found) => {
                fs.extend(found);
                return fs;
            }
            // Read it whole after all (bounded like any held payload).
            None => match zip::read_member(src, e, hold) {
                Ok((d, _)) => d,
                Err(err) => {
                    fs.push(member_error(e, &child, err));
                    return fs;
                }
            },
        },
    };
    let _held = pickle::hold_data(data.len());
    fs.extend(scan_bytes(&data, &child, policy));
    fs
}

/// A member that cannot be read is unscannable.
fn member_error(e: &zip::Entry, child: &Ctx, err: zip::ZipError) -> ScanFinding {
    let enc = e.flags & 1 != 0;
    match err {
        zip::ZipError::Method { method, .. } => child.stamp(ScanFinding::new(
            "SCN021",
            Severity::High,
            format!(
                "compression method {method} is not supported{}: the member cannot be inspected",
                if enc { " (member is encrypted)" } else { "" }
            ),
        )),
        err => child.stamp(ScanFinding::new(
            if enc { "SCN001" } else { "SCN002" },
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
    child: &Ctx,
    policy: &Policy,
) -> Result<(Vec<u8>, Vec<ScanFinding>), ScanFinding> {
    match zip::read_member(src, e, hold_cap(policy)) {
        Ok((data, anomalies)) => {
            charge(data.len());
            let fs = anomalies
                .iter()
                .map(|(k, m)| child.stamp(zip_anomaly(*k, m)))
                .collect();
            Ok((data, fs))
        }
        Err(err) => Err(member_error(e, child, err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let held = codes(&scan_bytes(&p, &Ctx::default(), &policy));
        assert!(held.iter().any(|c| c.0 == "PKL001"), "{held:?}");
        // A file on disk.
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("big.pkl");
        std::fs::write(&f, &p).unwrap();
        assert_eq!(codes(&scan_file(&f, &policy).unwrap()), held);
        // A zlib payload (decompressed twice: checked, then replayed) and a ZIP member.
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut z, &p).unwrap();
        let z = z.finish().unwrap();
        reset_budget(&policy);
        assert_eq!(codes(&scan_bytes(&z, &Ctx::default(), &policy)), held);
        let zip = zip::build_stored(&[("model.pkl", &p)]);
        reset_budget(&policy);
        assert_eq!(codes(&scan_bytes(&zip, &Ctx::default(), &policy)), held);
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
