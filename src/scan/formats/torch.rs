//! PyTorch containers: raw and legacy stacked pickles (`_legacy_save`), the ZIP checkpoint
//! (`archive/data.pkl` + `archive/data/<key>` storages), TorchScript archives. The storages a
//! pickle references must exist with the declared size; storage bodies are never read.

use super::source::Source;
use super::zip;
use crate::report::Severity;
use crate::scan::diags::Code;
use crate::scan::finding::ScanFinding;
use crate::scan::pickle::{self, PickleScan, PidItem, TopValue};
use crate::scan::scanner::Scanner;
use std::collections::HashMap;

/// `0x1950a86a20f9469cfc6c`, little-endian, as LONG1 writes it.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// Bytes per element of a torch storage class (by class name).
pub fn element_size(name: &str) -> Option<u64> {
    Some(match name {
        "DoubleStorage" | "LongStorage" | "ComplexFloatStorage" => 8,
        "FloatStorage" | "IntStorage" | "QInt32Storage" => 4,
        "HalfStorage" | "BFloat16Storage" | "ShortStorage" => 2,
        "CharStorage" | "ByteStorage" | "BoolStorage" | "QUInt8Storage" | "QInt8Storage"
        | "QUInt4x2Storage" | "QUInt2x4Storage" | "UntypedStorage" => 1,
        "ComplexDoubleStorage" => 16,
        _ => return None,
    })
}

/// A validated torch storage reference from a persistent id.
struct StorageRef {
    class: String,
    key: String,
    numel: Option<u64>,
    offset: u64,
}

/// Check every persistent id of a torch pickle; return the storage references.
fn storage_refs(sc: &Scanner, scan: &PickleScan, fs: &mut Vec<ScanFinding>) -> Vec<StorageRef> {
    let mut refs = vec![];
    for pid in scan.pids() {
        let ok = pid.is_tuple
            && (5..=6).contains(&pid.items.len())
            && pid.items[0] == PidItem::Str("storage".into());
        let parsed = if ok {
            match (&pid.items[1], &pid.items[2], &pid.items[3], &pid.items[4]) {
                (PidItem::Global(m, n), PidItem::Str(key), PidItem::Str(_loc), numel)
                    if (m == "torch" || m == "torch.cuda" || m == "torch.storage")
                        && n.ends_with("Storage") =>
                {
                    Some(StorageRef {
                        class: n.clone(),
                        key: key.clone(),
                        numel: match numel {
                            PidItem::Int(i) => u64::try_from(*i).ok(),
                            _ => None,
                        },
                        offset: pid.offset,
                    })
                }
                _ => None,
            }
        } else {
            None
        };
        match parsed {
            Some(r) => refs.push(r),
            None => fs.push(sc.stamp(
                ScanFinding::new(
                    Code::Pkl015,
                    Severity::High,
                    format!("persistent id is not a torch storage reference ('storage', <torch *Storage class>, key, location, numel): {:?}", pid.items),
                )
                .offset(pid.offset),
            )),
        }
    }
    refs
}

/// A raw pickle file: legacy torch layout when the first stream is the magic number, else
/// stacked streams read to EOF.
pub fn scan_pickle_file(sc: &Scanner, data: &[u8]) -> Vec<ScanFinding> {
    scan_pickle_source(sc, &data)
}

/// [`scan_pickle_file`] over any [`pickle::PickleSource`] (a file or payload read through a
/// window).
pub fn scan_pickle_source(sc: &Scanner, src: &dyn pickle::PickleSource) -> Vec<ScanFinding> {
    // The legacy magic stream is a handful of opcodes: a short probe avoids replaying a
    // large ordinary pickle twice.
    let probe = pickle::Limits {
        max_ops: 64,
        ..pickle::Limits::default()
    };
    let first = pickle::vm::run_input(&mut src.input(0), 0, 0, probe, true);
    if first.outcome == pickle::Outcome::Complete
        && first.top == Some(TopValue::BigInt(LEGACY_MAGIC.to_vec()))
    {
        if let Some(data) = src.bytes() {
            return scan_legacy(sc, &data, data).unwrap_or_default();
        }
        // Streamed: its pickles did not fit the head read up front (scan_large_legacy).
        let mut fs = pickle::scan_source(sc, src, 0, Some(5)).findings;
        fs.push(sc.stamp(ScanFinding::new(
            Code::Scn010,
            Severity::High,
            format!(
                "legacy torch file whose pickles are larger than {LEGACY_HEAD} bytes: its storages were not checked"
            ),
        )));
        return fs;
    }
    let scan = pickle::scan_source(sc, src, 0, None);
    let mut fs = scan.findings;
    if let Some(pid) = scan.traces.iter().flat_map(|t| t.pids.iter()).next() {
        fs.push(sc.stamp(
            ScanFinding::new(
                Code::Pkl015,
                Severity::Low,
                "persistent id outside a known container: plain pickle.load refuses it; a custom loader decides what it means",
            )
            .offset(pid.offset),
        ));
    }
    fs
}

/// `_legacy_save`: magic, protocol, sys_info, object, storage keys — then raw storages
/// (`<i8 numel>` + bytes each, in key order).
/// Bytes of a large legacy file read up front: the five pickles are normally far smaller.
const LEGACY_HEAD: u64 = 64 << 20;

/// A legacy torch file too large to read whole: parse the pickles from its head and walk the
/// storages with positioned reads. `None` when it is not legacy or its pickles exceed the head.
pub fn scan_large_legacy(sc: &Scanner, src: &dyn Source) -> Option<Vec<ScanFinding>> {
    let head = src
        .read_vec(0, src.len().min(LEGACY_HEAD), LEGACY_HEAD)
        .ok()?;
    let probe = pickle::Limits {
        max_ops: 64,
        ..pickle::Limits::default()
    };
    let first = pickle::vm::run_stream(&head, 0, probe);
    let legacy = first.outcome == pickle::Outcome::Complete
        && first.top == Some(TopValue::BigInt(LEGACY_MAGIC.to_vec()));
    if !legacy {
        return None;
    }
    scan_legacy(sc, src, &head)
}

/// `head` is the start of `src` (all of it for files read whole).
fn scan_legacy(sc: &Scanner, src: &dyn Source, head: &[u8]) -> Option<Vec<ScanFinding>> {
    let scan = pickle::scan_streams(sc, head, 0, Some(5));
    let mut fs = scan.findings.clone();
    let complete = scan.traces.len() == 5
        && scan
            .traces
            .iter()
            .all(|t| t.outcome == pickle::Outcome::Complete);
    if !complete && (head.len() as u64) < src.len() {
        return None; // the pickles run past the head: read the file whole instead
    }
    if !complete {
        if !fs.iter().any(|f| f.code == Code::Pkl009.as_str()) {
            fs.push(sc.stamp(ScanFinding::new(
                Code::Scn010,
                Severity::High,
                format!(
                    "legacy torch file has {} complete pickle(s), 5 expected",
                    scan.traces.len()
                ),
            )));
        }
        return Some(fs);
    }
    let refs = storage_refs(sc, &scan, &mut fs);
    let by_key: HashMap<&str, &StorageRef> = refs.iter().map(|r| (r.key.as_str(), r)).collect();
    let keys = match &scan.traces[4].top {
        Some(TopValue::Strings(k)) => k.clone(),
        _ => {
            fs.push(sc.stamp(ScanFinding::new(
                Code::Scn010,
                Severity::High,
                "legacy torch storage-key list is not a list of strings",
            )));
            return Some(fs);
        }
    };
    let mut pos = scan.end as u64;
    let len = src.len();
    for key in &keys {
        let Some(r) = by_key.get(key.as_str()) else {
            fs.push(
                sc.stamp(
                    ScanFinding::new(
                        Code::Scn008,
                        Severity::High,
                        format!("storage key {key:?} is listed but no tensor references it"),
                    )
                    .offset(pos),
                ),
            );
            return Some(fs);
        };
        let el = element_size(&r.class).unwrap_or(1);
        if pos + 8 > len {
            fs.push(
                sc.stamp(
                    ScanFinding::new(
                        Code::Scn008,
                        Severity::High,
                        format!("storage {key:?} is missing: file ends at {len}"),
                    )
                    .offset(pos),
                ),
            );
            return Some(fs);
        }
        let Ok(hdr) = src.read_vec(pos, 8, 8) else {
            return Some(fs);
        };
        let numel = u64::from_le_bytes(hdr.try_into().unwrap_or([0; 8]));
        if r.numel.is_some_and(|n| n != numel) {
            fs.push(
                sc.stamp(
                    ScanFinding::new(
                        Code::Scn009,
                        Severity::High,
                        format!(
                            "storage {key:?} holds {numel} elements, the pickle declares {}",
                            r.numel.unwrap_or(0)
                        ),
                    )
                    .offset(pos),
                ),
            );
        }
        let body = numel.checked_mul(el).and_then(|b| b.checked_add(8));
        match body.and_then(|b| pos.checked_add(b)).filter(|e| *e <= len) {
            Some(e) => pos = e,
            None => {
                fs.push(sc.stamp(ScanFinding::new(Code::Scn009, Severity::High, format!("storage {key:?} declares {numel} elements of {el} byte(s), past the end of the file")).offset(pos)));
                return Some(fs);
            }
        }
    }
    if pos < len {
        // Whatever follows the storages is not read by torch; scan it in case it is a payload.
        let n = (len - pos).min(sc.policy.max_member_bytes);
        let tail = src
            .read_vec(pos, n, sc.policy.max_member_bytes)
            .unwrap_or_default();
        let rest = pickle::scan_streams(sc, &tail, pos, None);
        let calls = rest
            .traces
            .iter()
            .any(|t| !t.globals.is_empty() || !t.calls.is_empty());
        fs.push(
            sc.stamp(
                ScanFinding::new(
                    Code::Scn010,
                    if calls {
                        Severity::High
                    } else {
                        Severity::Medium
                    },
                    format!("{} byte(s) after the last legacy storage", len - pos),
                )
                .offset(pos),
            ),
        );
        if calls {
            fs.extend(rest.findings);
        }
    }
    Some(fs)
}

fn is_pickle_name(base: &str) -> bool {
    base.ends_with(".pkl") || base.ends_with(".debug_pkl")
}

/// The PyTorch ZIP checkpoint / TorchScript archive.
pub fn scan_torch_zip(sc: &Scanner, src: &dyn Source, archive: &zip::Archive) -> Vec<ScanFinding> {
    let mut fs = vec![];
    let sizes: HashMap<&str, u64> = archive
        .entries
        .iter()
        .map(|e| (e.name.as_str(), e.usize))
        .collect();
    let mut code_members = 0usize;
    for e in &archive.entries {
        let name = e.name.as_str();
        let base = name.rsplit('/').next().unwrap_or(name);
        let dir_parts: Vec<&str> = name.split('/').collect();
        let is_storage = dir_parts.len() >= 2
            && dir_parts[dir_parts.len() - 2] == "data"
            && !base.ends_with(".pkl");
        if is_storage || name.ends_with('/') {
            continue; // storage bodies are checked by size only, never read
        }
        // TorchScript source is `<archive>/code/…` below the archive's own top directory, which
        // is the file stem torch.save was given: `torch.save(x, "code.pt")` puts its pickle at
        // `code/data.pkl`, which must be scanned like any other. Pickles are never "code".
        let is_code = !is_pickle_name(base)
            && (base.ends_with(".py") || (dir_parts.len() >= 3 && dir_parts[1] == "code"));
        if is_code {
            code_members += 1;
            continue;
        }
        let small_meta = matches!(
            base,
            "version" | "byteorder" | ".format_version" | ".storage_alignment" | "serialization_id"
        );
        if small_meta && e.usize <= 64 {
            continue;
        }
        if !is_pickle_name(base) {
            // Anything else is scanned by content, streamed (large members are not held).
            fs.extend(super::scan_member(sc, src, e));
            continue;
        }
        let child = sc.child(name);
        let (data, anomalies) = match super::read_zip_member(src, e, &child) {
            Ok(x) => x,
            Err(f) => {
                fs.push(f);
                continue;
            }
        };
        fs.extend(anomalies);
        {
            let scan = pickle::scan_streams(&child, &data, 0, None);
            fs.extend(scan.findings.iter().cloned());
            if base == "data.pkl" {
                let refs = storage_refs(&child, &scan, &mut fs);
                let prefix = &name[..name.len() - "data.pkl".len()];
                for r in refs {
                    let member = format!("{prefix}data/{}", r.key);
                    match sizes.get(member.as_str()) {
                        None => fs.push(child.stamp(
                            ScanFinding::new(Code::Scn008, Severity::High, format!("storage {:?} is referenced but member {member} does not exist", r.key)).offset(r.offset),
                        )),
                        Some(&size) => {
                            if let (Some(n), Some(el)) = (r.numel, element_size(&r.class)) {
                                if n.checked_mul(el) != Some(size) {
                                    fs.push(child.stamp(
                                        ScanFinding::new(
                                            Code::Scn009,
                                            Severity::High,
                                            format!("storage {:?} ({}) declares {n} elements = {} bytes but {member} holds {size}", r.key, r.class, n.saturating_mul(el)),
                                        )
                                        .offset(r.offset),
                                    ));
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    if code_members > 0 {
        fs.push(sc.stamp(ScanFinding::new(
            Code::Scn011,
            Severity::Medium,
            format!("TorchScript archive: {code_members} code member(s) run by the TorchScript interpreter on torch.jit.load"),
        )));
    }
    fs
}
