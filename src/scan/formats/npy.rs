//! NumPy `.npy` (v1–v3): an object dtype anywhere in `descr` means a pickle follows the header.

use crate::report::Severity;
use crate::scan::diags::Code;
use crate::scan::finding::ScanFinding;
use crate::scan::pickle;
use crate::scan::scanner::Scanner;

pub struct Header {
    pub descr: String,
    pub object: bool,
    pub data_offset: usize,
    pub count: Option<u64>,
}

/// Why an `.npy` header cannot be read (as `numpy.lib.format` would refuse it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NpyError {
    #[error("missing \\x93NUMPY magic")]
    Magic,
    #[error("unsupported .npy format version {major}.{minor}")]
    Version { major: u8, minor: u8 },
    #[error("header length runs past the end of the data")]
    HeaderPastEnd,
    #[error("header is not UTF-8")]
    NotUtf8,
    #[error("header is not Latin-1/ASCII")]
    NotAscii,
    #[error("header is not a dict literal")]
    NotADict,
    #[error("header has no 'descr'")]
    NoDescr,
    #[error("malformed 'descr'")]
    MalformedDescr,
    #[error("empty 'descr'")]
    EmptyDescr,
    #[error("unterminated 'descr'")]
    UnterminatedDescr,
}

/// Parse the magic, version and header dict (`{'descr': ..., 'fortran_order': ..., 'shape': (...)}`).
pub fn parse_header(d: &[u8]) -> Result<Header, NpyError> {
    if d.len() < 10 || !d.starts_with(b"\x93NUMPY") {
        return Err(NpyError::Magic);
    }
    let (hlen, start): (usize, usize) = match d[6] {
        1 => (u16::from_le_bytes([d[8], d[9]]) as usize, 10),
        2 | 3 if d.len() >= 12 => (u32::from_le_bytes([d[8], d[9], d[10], d[11]]) as usize, 12),
        major => return Err(NpyError::Version { major, minor: d[7] }),
    };
    let end = start
        .checked_add(hlen)
        .filter(|e| *e <= d.len())
        .ok_or(NpyError::HeaderPastEnd)?;
    let text = if d[6] == 3 {
        std::str::from_utf8(&d[start..end]).map_err(|_| NpyError::NotUtf8)?
    } else {
        std::str::from_utf8(&d[start..end]).map_err(|_| NpyError::NotAscii)?
    };
    let t = text.trim();
    if !t.starts_with('{') || !t.ends_with('}') {
        return Err(NpyError::NotADict);
    }
    let di = t.find("'descr'").ok_or(NpyError::NoDescr)?;
    let after = t[di + 7..]
        .trim_start()
        .strip_prefix(':')
        .ok_or(NpyError::MalformedDescr)?
        .trim_start();
    // The value is a quoted string or a bracketed list of field tuples.
    let descr = if after.starts_with('[') {
        let mut depth = 0i32;
        let mut endi = after.len();
        for (i, c) in after.char_indices() {
            match c {
                '[' | '(' => depth += 1,
                ']' | ')' => {
                    depth -= 1;
                    if depth == 0 {
                        endi = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        after[..endi].to_string()
    } else {
        let q = after.chars().next().ok_or(NpyError::EmptyDescr)?;
        let rest = &after[1..];
        let e = rest.find(q).ok_or(NpyError::UnterminatedDescr)?;
        format!("'{}'", &rest[..e])
    };
    // Object type codes: the type string of the plain descr, or the second quoted item of each
    // field tuple `('name', 'type'[, shape])` (field names may be anything, even "O").
    let is_obj = |tok: &str| {
        matches!(
            tok.trim_start_matches(['<', '>', '|', '=']),
            "O" | "O8" | "O4"
        )
    };
    let mut object = false;
    let mut depth: Vec<u32> = vec![];
    let mut chars = descr.chars();
    while let Some(c) = chars.next() {
        match c {
            '(' => depth.push(0),
            ')' => {
                depth.pop();
            }
            '\'' | '"' => {
                let tok: String = chars.by_ref().take_while(|x| *x != c).collect();
                match depth.last_mut() {
                    None => object |= is_obj(&tok),
                    Some(n) => {
                        *n += 1;
                        object |= *n == 2 && is_obj(&tok);
                    }
                }
            }
            _ => {}
        }
    }
    let count = t.find("'shape'").and_then(|si| {
        let a = t[si + 7..]
            .trim_start()
            .strip_prefix(':')?
            .trim_start()
            .strip_prefix('(')?;
        let inner = &a[..a.find(')')?];
        inner
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .try_fold(1u64, |acc, n| {
                n.trim_end_matches('L')
                    .parse::<u64>()
                    .ok()
                    .and_then(|n| acc.checked_mul(n))
            })
    });
    Ok(Header {
        descr,
        object,
        data_offset: end,
        count,
    })
}

pub fn scan(sc: &Scanner, d: &[u8]) -> Vec<ScanFinding> {
    let h = match parse_header(d) {
        Ok(h) => h,
        Err(e) => {
            return vec![sc.stamp(ScanFinding::new(
                Code::Scn012,
                Severity::High,
                format!("invalid .npy header: {e}"),
            ))]
        }
    };
    if h.object {
        // np.load(allow_pickle=True) calls pickle.load on the rest of the file.
        let mut fs = vec![sc.stamp(
            ScanFinding::new(
                Code::Scn012,
                Severity::Info,
                format!("object dtype {}: the array data is a pickle", h.descr),
            )
            .offset(h.data_offset as u64),
        )];
        let scan = pickle::scan_streams(sc, &d[h.data_offset..], h.data_offset as u64, None);
        fs.extend(scan.findings);
        return fs;
    }
    let mut fs = vec![];
    let itemsize = {
        let s = h.descr.trim_matches('\'');
        pickle::vm::dtype_itemsize(s)
    };
    if let (Some(c), Some(sz)) = (h.count, itemsize) {
        let need = c.saturating_mul(sz);
        let have = (d.len() - h.data_offset) as u64;
        if have < need {
            fs.push(sc.stamp(ScanFinding::new(
                Code::Scn012,
                Severity::Medium,
                format!("array data is truncated: {have} of {need} bytes"),
            )));
        } else if have > need {
            let extra = &d[h.data_offset + need as usize..];
            let scan = pickle::scan_streams(sc, extra, h.data_offset as u64 + need, Some(1));
            let acts = scan
                .traces
                .iter()
                .any(|t| !t.globals.is_empty() || !t.calls.is_empty());
            fs.push(
                sc.stamp(
                    ScanFinding::new(
                        Code::Scn012,
                        if acts {
                            Severity::High
                        } else {
                            Severity::Medium
                        },
                        format!("{} byte(s) follow the array data", have - need),
                    )
                    .offset(h.data_offset as u64 + need),
                ),
            );
            if acts {
                fs.extend(scan.findings);
            }
        }
    }
    fs
}

/// Whether a `.npy` whose first bytes are `head` can be streamed instead of held: its header
/// parses and holds no object dtype, so the data are plain numbers never unpickled.
pub fn streamable(head: &[u8]) -> bool {
    parse_header(head).is_ok_and(|h| !h.object)
}

/// Findings for a streamed (not held) plain `.npy` of `total` bytes whose head is `head`, as
/// [`scan`] would give; `None` when bytes follow the array data (they must be read and scanned).
pub fn scan_streamed(sc: &Scanner, head: &[u8], total: u64) -> Option<Vec<ScanFinding>> {
    let h = parse_header(head).ok().filter(|h| !h.object)?;
    let itemsize = pickle::vm::dtype_itemsize(h.descr.trim_matches('\''));
    let mut fs = vec![];
    if let (Some(c), Some(sz)) = (h.count, itemsize) {
        let need = c.saturating_mul(sz);
        let have = total.saturating_sub(h.data_offset as u64);
        if have > need {
            return None;
        }
        if have < need {
            fs.push(sc.stamp(ScanFinding::new(
                Code::Scn012,
                Severity::Medium,
                format!("array data is truncated: {have} of {need} bytes"),
            )));
        }
    }
    Some(fs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::Policy;

    fn npy(descr: &str, shape: &str, body: &[u8]) -> Vec<u8> {
        let h = format!("{{'descr': {descr}, 'fortran_order': False, 'shape': {shape}, }}\n");
        let mut v = b"\x93NUMPY\x01\x00".to_vec();
        v.extend_from_slice(&(h.len() as u16).to_le_bytes());
        v.extend_from_slice(h.as_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn header_object_detection_and_sizes() {
        let h = parse_header(&npy("'<f4'", "(2, 3)", &[0; 24])).unwrap();
        assert!(!h.object);
        assert_eq!(h.count, Some(6));
        assert!(parse_header(&npy("'|O'", "(1,)", b"")).unwrap().object);
        assert!(
            parse_header(&npy("[('a', '<f8'), ('b', '|O')]", "(1,)", b""))
                .unwrap()
                .object
        );
        assert!(
            !parse_header(&npy("[('a', '<f8')]", "(1,)", b""))
                .unwrap()
                .object
        );
        assert!(parse_header(b"\x93NUMPY\x09\x00").is_err());
        assert!(parse_header(b"\x93NUMPY\x01\x00\xff\xff{").is_err());
    }

    #[test]
    fn truncated_and_trailing_data() {
        let p = Policy::default();
        let f = scan(&crate::scan::scanner(&p), &npy("'<f4'", "(4,)", &[0; 8]));
        assert!(f
            .iter()
            .any(|f| f.code == "SCN012" && f.severity == Severity::Medium));
        let mut d = npy("'<f4'", "(1,)", &[0; 4]);
        d.extend_from_slice(b"cos\nsystem\n(S'x'\ntR.");
        let f = scan(&crate::scan::scanner(&p), &d);
        assert!(f.iter().any(|f| f.code == "PKL001"), "{f:?}");
    }
}
