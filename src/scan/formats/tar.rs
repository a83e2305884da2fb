//! tar archives (ustar/GNU), including PyTorch's pre-0.4 layout (`sys_info`, `pickle`,
//! `storages`, `tensors`), whose members are stacked pickles mixed with raw data.

use crate::report::Severity;
use crate::scan::diags::Code;
use crate::scan::finding::ScanFinding;
use crate::scan::pickle::{self, PidItem, TopValue};
use crate::scan::scanner::Scanner;
use crate::util::tar::{self, Pax};

pub struct Member<'a> {
    pub name: String,
    pub data: &'a [u8],
}

/// Why a tar archive's member list cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum MembersError {
    #[error("{source} at offset {offset}")]
    Header {
        offset: usize,
        source: tar::TarError,
    },
    #[error("member at offset {offset} runs past the end")]
    PastEnd { offset: usize },
    #[error("pax header at offset {offset}: {source}")]
    Pax {
        offset: usize,
        source: tar::TarError,
    },
}

/// List regular-file members as Python's tarfile does: GNU long names, pax `path`/`size`
/// overrides (local and global), ustar prefixes. Offsets are checked.
pub fn members(d: &[u8]) -> Result<Vec<Member<'_>>, MembersError> {
    let mut out = vec![];
    let mut pos = 0usize;
    let mut long_name: Option<String> = None;
    let mut pax_local = Pax::default();
    let mut pax_global = Pax::default();
    while let Some(h) = pos
        .checked_add(512)
        .and_then(|e| d.get(pos..e))
        .and_then(|h| <&[u8; 512]>::try_from(h).ok())
    {
        if tar::is_end(h) {
            break;
        }
        let hd = tar::header(h).map_err(|source| MembersError::Header {
            offset: pos,
            source,
        })?;
        let ty = hd.typeflag;
        let meta = matches!(ty, b'x' | b'g' | b'L' | b'K');
        // A pax `size` replaces the header's for the member it precedes.
        let size = if meta {
            hd.size
        } else {
            pax_local.size.or(pax_global.size).unwrap_or(hd.size)
        };
        let start = pos + 512;
        let end = usize::try_from(size)
            .ok()
            .and_then(|s| start.checked_add(s))
            .filter(|e| *e <= d.len())
            .ok_or(MembersError::PastEnd { offset: pos })?;
        match ty {
            b'L' => long_name = Some(tar::nts(&d[start..end])),
            b'x' => tar::parse_pax(&d[start..end], &mut pax_local).map_err(|source| {
                MembersError::Pax {
                    offset: pos,
                    source,
                }
            })?,
            b'g' => tar::parse_pax(&d[start..end], &mut pax_global).map_err(|source| {
                MembersError::Pax {
                    offset: pos,
                    source,
                }
            })?,
            b'K' => {}
            _ => {
                let name = pax_local
                    .path
                    .take()
                    .or_else(|| pax_global.path.clone())
                    .or_else(|| long_name.take())
                    .unwrap_or(hd.name);
                if matches!(ty, b'0' | 0 | b'7') {
                    out.push(Member {
                        name,
                        data: &d[start..end],
                    });
                }
                long_name = None;
                pax_local = Pax::default();
            }
        }
        pos = tar::padded(size)
            .and_then(|s| usize::try_from(s).ok())
            .and_then(|s| start.checked_add(s))
            .ok_or(MembersError::PastEnd { offset: pos })?;
    }
    Ok(out)
}

pub fn scan(sc: &Scanner, d: &[u8]) -> Vec<ScanFinding> {
    let ms = match members(d) {
        Ok(m) => m,
        Err(e) => {
            return vec![sc.stamp(ScanFinding::new(
                Code::Scn002,
                Severity::High,
                format!("tar archive cannot be read: {e}"),
            ))]
        }
    };
    let legacy = ["sys_info", "pickle", "storages"]
        .iter()
        .all(|n| ms.iter().any(|m| m.name == *n));
    let mut fs = vec![];
    for m in &ms {
        let child = sc.child(&m.name);
        if child.depth() > sc.policy.max_depth {
            fs.push(child.stamp(ScanFinding::new(
                Code::Scn017,
                Severity::High,
                "archive nested deeper than the limit",
            )));
            continue;
        }
        if legacy && (m.name == "storages" || m.name == "tensors") {
            fs.extend(walk_legacy_records(&child, m.data, &m.name));
        } else if legacy && (m.name == "sys_info" || m.name == "pickle") {
            fs.extend(pickle::scan_streams(&child, m.data, 0, None).findings);
        } else {
            fs.extend(sc.nested(&m.name, m.data));
        }
    }
    fs
}

/// `storages`: count pickle, then per storage a (key, location, storage_type) pickle and raw
/// `<i8 numel>` + data. `tensors`: count pickle, then per tensor a pickle and raw
/// `<i4 ndim>`, 4 pad bytes, ndim sizes, ndim strides, `<i8 offset>`.
fn walk_legacy_records(sc: &Scanner, d: &[u8], which: &str) -> Vec<ScanFinding> {
    let mut fs = vec![];
    let first = pickle::scan_streams(sc, d, 0, Some(1));
    fs.extend(first.findings.iter().cloned());
    let n = match first.traces.first().and_then(|t| t.top.clone()) {
        Some(TopValue::Int(n))
            if (0..=10_000_000).contains(&n)
                && first.traces[0].outcome == pickle::Outcome::Complete =>
        {
            n as u64
        }
        _ => {
            fs.push(sc.stamp(ScanFinding::new(
                Code::Scn010,
                Severity::High,
                format!("legacy torch tar: {which} does not start with a record count"),
            )));
            return fs;
        }
    };
    let mut pos = first.end;
    for i in 0..n {
        let rec = pickle::vm::run_stream(&d[pos..], pos as u64, pickle::Limits::default());
        fs.extend(
            pickle::trace_findings(&rec, sc.policy)
                .into_iter()
                .map(|f| sc.stamp(f)),
        );
        if rec.outcome != pickle::Outcome::Complete {
            fs.push(
                sc.stamp(
                    ScanFinding::new(
                        Code::Pkl009,
                        Severity::High,
                        format!("record {i} of {which} is not a complete pickle"),
                    )
                    .offset(pos as u64),
                ),
            );
            return fs;
        }
        pos += rec.end;
        let raw = if which == "storages" {
            let el = rec
                .globals
                .iter()
                .find_map(|g| super::torch::element_size(&g.name))
                .unwrap_or(1);
            let numel = d
                .get(pos..pos + 8)
                .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
            numel
                .and_then(|n| n.checked_mul(el))
                .and_then(|b| b.checked_add(8))
        } else {
            let ndim = d
                .get(pos..pos + 4)
                .map(|b| i32::from_le_bytes(b.try_into().unwrap_or([0; 4])));
            ndim.filter(|n| (0..=64).contains(n))
                .map(|n| 8 + 16 * n as u64 + 8)
        };
        match raw
            .and_then(|r| usize::try_from(r).ok())
            .and_then(|r| pos.checked_add(r))
            .filter(|e| *e <= d.len())
        {
            Some(e) => pos = e,
            None => {
                fs.push(sc.stamp(ScanFinding::new(Code::Scn010, Severity::High, format!("legacy torch tar: raw data of record {i} in {which} runs past the end")).offset(pos as u64)));
                return fs;
            }
        }
        let _ = PidItem::Other;
    }
    if pos < d.len() {
        fs.push(
            sc.stamp(
                ScanFinding::new(
                    Code::Scn010,
                    Severity::Medium,
                    format!("{} byte(s) after the last record of {which}", d.len() - pos),
                )
                .offset(pos as u64),
            ),
        );
        let rest = pickle::scan_streams(sc, &d[pos..], pos as u64, None);
        if rest
            .traces
            .iter()
            .any(|t| !t.globals.is_empty() || !t.calls.is_empty())
        {
            fs.extend(rest.findings);
        }
    }
    fs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(name: &[u8], size: usize, ty: u8) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..name.len()].copy_from_slice(name);
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        h[156] = ty;
        h[257..263].copy_from_slice(b"ustar\0");
        h[148..156].fill(b' ');
        let sum: u64 = h.iter().map(|b| *b as u64).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        h
    }

    fn pad(mut v: Vec<u8>) -> Vec<u8> {
        v.resize(v.len().div_ceil(512) * 512, 0);
        v
    }

    #[test]
    fn pax_size_and_path_apply_to_the_next_member() {
        let body = b"payload-bytes".to_vec();
        assert_eq!(body.len(), 13);
        let rec = "17 path=real.pkl\n11 size=13\n".to_string();
        let mut t = hdr(b"PaxHeader", rec.len(), b'x');
        t.extend(pad(rec.into_bytes()));
        t.extend(hdr(b"decoy\0hidden", 0, b'0'));
        t.extend(pad(body.clone()));
        t.extend([0u8; 1024]);
        let m = members(&t).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].name, "real.pkl");
        assert_eq!(m[0].data, &body[..]);
        // The name field is cut at its first NUL, as tarfile's nts() does.
        let mut t = hdr(b"pickle\0junk", 3, b'0');
        t.extend(pad(b"abc".to_vec()));
        assert_eq!(members(&t).unwrap()[0].name, "pickle");
    }
}
