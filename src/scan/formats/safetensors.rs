//! safetensors header validation: size limit, JSON shape, known dtypes, offsets contiguous from
//! 0 with no gaps or overlap, byte counts matching shapes, and no trailing bytes.

use super::source::Source;
use crate::report::Severity;
use crate::scan::diags::Code;
use crate::scan::finding::ScanFinding;
use crate::scan::scanner::Scanner;

const MAX_HEADER: u64 = 100_000_000;

fn dtype_size(d: &str) -> Option<(u64, u64)> {
    // (numerator bits, 8): sub-byte types pack several elements per byte.
    Some(match d {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" => (8, 8),
        "I16" | "U16" | "F16" | "BF16" => (16, 8),
        "I32" | "U32" | "F32" => (32, 8),
        "I64" | "U64" | "F64" | "C64" => (64, 8),
        "F4" => (4, 8),
        "F6_E2M3" | "F6_E3M2" => (6, 8),
        _ => return None,
    })
}

pub fn scan(sc: &Scanner, src: &dyn Source) -> Vec<ScanFinding> {
    let bad = |m: String| vec![sc.stamp(ScanFinding::new(Code::Scn013, Severity::High, m))];
    let len = src.len();
    let Ok(n) = src.read_vec(0, 8, 8) else {
        return bad("file shorter than the 8-byte header length".into());
    };
    let n = u64::from_le_bytes(n.try_into().unwrap_or([0; 8]));
    if n > MAX_HEADER {
        return bad(format!("header length {n} exceeds the 100 MB limit"));
    }
    if n + 8 > len {
        return bad(format!(
            "header length {n} runs past the end of the file ({len} bytes)"
        ));
    }
    let Ok(h) = src.read_vec(8, n, MAX_HEADER) else {
        return bad("header cannot be read".into());
    };
    let v: serde_json::Value = match serde_json::from_slice(&h) {
        Ok(v) => v,
        Err(e) => return bad(format!("header is not valid JSON: {e}")),
    };
    let Some(obj) = v.as_object() else {
        return bad("header is not a JSON object".into());
    };
    let mut fs = vec![];
    let mut spans = vec![];
    for (name, t) in obj {
        if name == "__metadata__" {
            if !t
                .as_object()
                .is_some_and(|m| m.values().all(|x| x.is_string()))
            {
                fs.push(sc.stamp(ScanFinding::new(
                    Code::Scn013,
                    Severity::High,
                    "__metadata__ must map strings to strings",
                )));
            }
            continue;
        }
        let dtype = t.get("dtype").and_then(|d| d.as_str());
        let shape: Option<Vec<u64>> = t
            .get("shape")
            .and_then(|s| s.as_array())
            .and_then(|a| a.iter().map(|x| x.as_u64()).collect());
        let offs: Option<Vec<u64>> = t
            .get("data_offsets")
            .and_then(|s| s.as_array())
            .and_then(|a| a.iter().map(|x| x.as_u64()).collect());
        let (Some(dtype), Some(shape), Some(offs)) = (dtype, shape, offs) else {
            fs.push(sc.stamp(ScanFinding::new(
                Code::Scn013,
                Severity::High,
                format!("tensor {name:?} lacks a valid dtype, shape or data_offsets"),
            )));
            continue;
        };
        if offs.len() != 2 || offs[0] > offs[1] {
            fs.push(sc.stamp(ScanFinding::new(
                Code::Scn013,
                Severity::High,
                format!("tensor {name:?} has invalid data_offsets {offs:?}"),
            )));
            continue;
        }
        match dtype_size(dtype) {
            None => fs.push(sc.stamp(ScanFinding::new(
                Code::Scn013,
                Severity::Medium,
                format!("tensor {name:?} has unknown dtype {dtype}"),
            ))),
            Some((bits, _)) => {
                let nbits = shape
                    .iter()
                    .try_fold(1u64, |a, d| a.checked_mul(*d))
                    .and_then(|c| c.checked_mul(bits));
                let want = nbits.map(|b| b.div_ceil(8));
                if want != Some(offs[1] - offs[0]) {
                    fs.push(sc.stamp(ScanFinding::new(Code::Scn013, Severity::High, format!("tensor {name:?}: {dtype} {shape:?} needs {} bytes but data_offsets span {}", want.map(|w| w.to_string()).unwrap_or("overflowing".into()), offs[1] - offs[0]))));
                }
            }
        }
        spans.push((offs[0], offs[1], name.clone()));
    }
    spans.sort();
    let mut expect = 0u64;
    for (b, e, name) in &spans {
        if *b != expect {
            fs.push(sc.stamp(ScanFinding::new(
                Code::Scn013,
                Severity::High,
                format!(
                    "tensor {name:?} starts at {b}, expected {expect} ({})",
                    if *b < expect { "overlap" } else { "gap" }
                ),
            )));
        }
        expect = expect.max(*e);
    }
    let body = len - 8 - n;
    if expect != body {
        fs.push(sc.stamp(ScanFinding::new(
            Code::Scn013,
            Severity::High,
            format!(
                "tensor data covers {expect} bytes but the file holds {body} after the header ({})",
                if expect < body {
                    "trailing bytes"
                } else {
                    "truncated"
                }
            ),
        )));
    }
    fs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::Policy;

    fn st(header: &str, body: usize) -> Vec<u8> {
        let mut v = (header.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(header.as_bytes());
        v.extend(std::iter::repeat_n(0u8, body));
        v
    }

    #[test]
    fn validates_offsets_sizes_and_trailing_bytes() {
        let ok = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I8","shape":[1],"data_offsets":[8,9]}}"#;
        assert!(scan(&crate::scan::scanner(&Policy::default()), &&st(ok, 9)[..]).is_empty());
        assert!(
            !scan(&crate::scan::scanner(&Policy::default()), &&st(ok, 10)[..]).is_empty(),
            "trailing byte"
        );
        let gap = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
        assert!(!scan(&crate::scan::scanner(&Policy::default()), &&st(gap, 12)[..]).is_empty());
        let size = r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#;
        assert!(!scan(&crate::scan::scanner(&Policy::default()), &&st(size, 8)[..]).is_empty());
        assert!(!scan(
            &crate::scan::scanner(&Policy::default()),
            &&b"\xff\xff\xff\xff\xff\xff\xff\xff{"[..]
        )
        .is_empty());
    }
}
