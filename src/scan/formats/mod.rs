//! Containers, identified by content (never by file extension), each in its own file.

pub mod compress;
pub mod gguf;
pub mod keras;
pub mod npy;
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
    let head = src.read_vec(0, src.len().min(4096), 4096)?;
    let kind = sniff(&head, src.len());
    let zip_by_tail = kind == Kind::Unknown || kind == Kind::Pickle;
    match kind {
        Kind::Zip => return Ok(scan_zip(&src, &ctx, policy, false)),
        Kind::Safetensors => return Ok(safetensors::scan(&src, &ctx)),
        Kind::Gguf => return Ok(gguf::scan(&src, &ctx)),
        Kind::Hdf5 => return Ok(keras::scan_hdf5(&src, &ctx)),
        _ => {}
    }
    // A ZIP end record behind other content: torch.load would unpickle the head (no ZIP magic),
    // zipfile-based tools would read the archive. Scan both readings.
    let mut tail_zip = vec![];
    if zip_by_tail && matches!(zip::find_eocd(&src), Ok(Some(_))) && zip::read_archive(&src).is_ok()
    {
        tail_zip = scan_zip(&src, &ctx, policy, true);
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
    match sniff(head, data.len() as u64) {
        Kind::Zip => scan_zip(&data, ctx, policy, false),
        Kind::Npy => npy::scan(data, ctx, policy),
        Kind::Safetensors => safetensors::scan(&data, ctx),
        Kind::Gguf => gguf::scan(&data, ctx),
        Kind::Hdf5 => keras::scan_hdf5(&data, ctx),
        Kind::Tar => tar::scan(data, ctx, policy),
        Kind::Compressed(c) => scan_compressed(c, data, ctx, policy),
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

/// Protocol-0/1 pickles have no magic: content counts as a pickle when a stream completes or
/// does something a loader would act on.
fn scan_unknown(data: &[u8], ctx: &Ctx, policy: &Policy) -> Vec<ScanFinding> {
    if !data.is_empty() && pickle::looks_like_pickle(data) {
        let t = pickle::vm::run_stream(data, 0, pickle::Limits::default());
        // Text that merely starts like GLOBAL (`cat\ndog\n…`) is not a pickle; a stream that
        // completes, calls something or names a denylisted global is.
        let pickle_like = t.outcome == pickle::Outcome::Complete
            || !t.calls.is_empty()
            || t.globals
                .iter()
                .any(|g| super::policy::deny_reason(&g.module, &g.name).is_some());
        if pickle_like {
            return torch::scan_pickle_file(data, ctx, policy);
        }
    }
    vec![ctx.stamp(ScanFinding::new(
        "SCN019",
        Severity::Info,
        "not a recognised model, archive or pickle format: nothing executable found",
    ))]
}

fn scan_compressed(
    c: compress::Codec,
    data: &[u8],
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
    match compress::decompress(c, data, policy.max_member_bytes) {
        Ok(inner) => scan_bytes(&inner, &ctx.child(&format!("<{}>", c.short())), policy),
        // Magic bytes that happen to start a pickle (`]` of lzma-alone is EMPTY_LIST).
        Err(_)
            if pickle::looks_like_pickle(data)
                && pickle::vm::run_stream(data, 0, pickle::Limits::default()).outcome
                    == pickle::Outcome::Complete =>
        {
            torch::scan_pickle_file(data, ctx, policy)
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
        Kind::Npy => npy::parse_header(data)
            .ok()
            .map(|_| ("NumPy array", npy::scan(data, ctx, policy))),
        Kind::Zip => zip::read_archive(&data)
            .ok()
            .map(|_| ("ZIP archive", scan_zip(&data, ctx, policy, false))),
        Kind::Compressed(c) => {
            let inner = compress::decompress(c, data, policy.max_member_bytes).ok()?;
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
    let archive = match zip::read_archive(src) {
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
    if prepended_by_sniff && archive.prepended == 0 {
        fs.push(ctx.stamp(ScanFinding::new(
            "SCN006",
            Severity::Medium,
            "data precedes the ZIP archive",
        )));
    }
    for (kind, msg) in &archive.anomalies {
        fs.push(ctx.stamp(zip_anomaly(*kind, msg)));
    }
    let is_torch = archive
        .entries
        .iter()
        .any(|e| e.name == "data.pkl" || e.name.ends_with("/data.pkl"));
    let is_keras = archive.entries.iter().any(|e| e.name == "config.json")
        && archive
            .entries
            .iter()
            .any(|e| e.name == "metadata.json" || e.name.ends_with(".weights.h5"));
    if is_torch {
        fs.extend(torch::scan_torch_zip(src, &archive, ctx, policy));
    } else if is_keras {
        fs.extend(keras::scan_keras_zip(src, &archive, ctx, policy));
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
    };
    ScanFinding::new(code, Severity::Medium, msg.to_string())
}

/// Read one ZIP member and scan it by content.
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
    match read_zip_member(src, e, &child, policy) {
        Ok((data, mut fs)) => {
            let head = &data[..data.len().min(4096)];
            if e.flags & 1 != 0 && sniff(head, data.len() as u64) == Kind::Unknown {
                fs.push(child.stamp(ScanFinding::new(
                    "SCN001",
                    Severity::High,
                    "member is encrypted: its content cannot be inspected",
                )));
                return fs;
            }
            fs.extend(scan_bytes(&data, &child, policy));
            fs
        }
        Err(f) => vec![f],
    }
}

/// Read a member, turning anomalies into findings; an unreadable member is unscannable.
pub fn read_zip_member(
    src: &dyn Source,
    e: &zip::Entry,
    child: &Ctx,
    policy: &Policy,
) -> Result<(Vec<u8>, Vec<ScanFinding>), ScanFinding> {
    match zip::read_member(src, e, policy.max_member_bytes) {
        Ok((data, anomalies)) => {
            let fs = anomalies
                .iter()
                .map(|(k, m)| child.stamp(zip_anomaly(*k, m)))
                .collect();
            Ok((data, fs))
        }
        Err(zip::ZipError::Method { method, .. }) => Err(child.stamp(ScanFinding::new(
            "SCN021",
            Severity::High,
            format!(
                "compression method {method} is not supported{}: the member cannot be inspected",
                if e.flags & 1 != 0 {
                    " (member is encrypted)"
                } else {
                    ""
                }
            ),
        ))),
        Err(err) => Err(child.stamp(ScanFinding::new(
            if e.flags & 1 != 0 { "SCN001" } else { "SCN002" },
            Severity::High,
            format!(
                "member cannot be read{}: {err}",
                if e.flags & 1 != 0 { " (encrypted)" } else { "" }
            ),
        ))),
    }
}
