//! GGUF header sanity (v1–v3): bounded metadata parsing, tensor infos inside the file, and the
//! chat template (a Jinja program some runtimes render) reported, graded by what it touches.

use super::source::Source;
use crate::report::Severity;
use crate::scan::diags::Code;
use crate::scan::finding::ScanFinding;
use crate::scan::scanner::Scanner;

const MAX_META: u64 = 256 << 20;

/// Each way a GGUF header can be wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GgufError {
    #[error("metadata runs past the read window at offset {0}")]
    PastWindow(usize),
    #[error("length {len} at offset {at} does not fit in memory")]
    LengthOverflow { at: usize, len: u64 },
    #[error("unsupported version {0}")]
    Version(u32),
    #[error("{tensors} tensors / {kvs} metadata entries exceed sane limits")]
    TooManyEntries { tensors: u64, kvs: u64 },
    #[error("general.alignment {0} is not a power of two")]
    Alignment(u64),
    #[error("unknown metadata value type {ty} at offset {at}")]
    ValueType { ty: u32, at: usize },
    #[error("arrays nested too deep at offset {0}")]
    ArrayDepth(usize),
    #[error("array of {n} elements at offset {at}")]
    ArrayLength { n: u64, at: usize },
    #[error("tensor {name:?} has {dims} dimensions")]
    Dimensions { name: String, dims: u32 },
    #[error("tensor {name:?} offset {offset} overflows past the data section at {data_start}")]
    OffsetOverflow {
        name: String,
        offset: u64,
        data_start: u64,
    },
    #[error("a tensor starts at {start} past the end of the file ({file_len} bytes)")]
    TensorPastEnd { start: u64, file_len: u64 },
}

struct Cur<'a> {
    d: &'a [u8],
    p: usize,
    v1: bool,
}

impl<'a> Cur<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], GgufError> {
        let n = usize::try_from(n).map_err(|_| GgufError::LengthOverflow { at: self.p, len: n })?;
        if n > self.d.len() - self.p {
            return Err(GgufError::PastWindow(self.p));
        }
        self.p += n;
        Ok(&self.d[self.p - n..self.p])
    }
    fn u32(&mut self) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or([0; 4]),
        ))
    }
    fn u64(&mut self) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().unwrap_or([0; 8]),
        ))
    }
    fn len(&mut self) -> Result<u64, GgufError> {
        if self.v1 {
            self.u32().map(u64::from)
        } else {
            self.u64()
        }
    }
    fn string(&mut self) -> Result<&'a [u8], GgufError> {
        let n = self.len()?;
        self.take(n)
    }
    fn skip_value(&mut self, ty: u32, depth: u32) -> Result<Option<&'a [u8]>, GgufError> {
        let fixed = match ty {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            10..=12 => 8,
            8 => return self.string().map(Some),
            9 => {
                if depth > 4 {
                    return Err(GgufError::ArrayDepth(self.p));
                }
                let et = self.u32()?;
                let at = self.p;
                let n = self.len()?;
                if n > 100_000_000 {
                    return Err(GgufError::ArrayLength { n, at });
                }
                for _ in 0..n {
                    self.skip_value(et, depth + 1)?;
                }
                return Ok(None);
            }
            t => return Err(GgufError::ValueType { ty: t, at: self.p }),
        };
        self.take(fixed)?;
        Ok(None)
    }
}

pub fn scan(sc: &Scanner, src: &dyn Source) -> Vec<ScanFinding> {
    let len = src.len();
    // Metadata is usually a few MiB (tokenizer vocabularies): try a small window first.
    let mut last = None;
    for window in [16u64 << 20, MAX_META] {
        let n = len.min(window);
        let d = match src.read_vec(0, n, MAX_META) {
            Ok(d) => d,
            Err(e) => {
                return vec![sc.stamp(ScanFinding::new(
                    Code::Scn002,
                    Severity::High,
                    format!("GGUF file cannot be read: {e}"),
                ))]
            }
        };
        match parse(&d, len) {
            Ok(fs) => return fs.into_iter().map(|f| sc.stamp(f)).collect(),
            Err(e @ GgufError::PastWindow(_)) if n < len => last = Some(e),
            Err(e) => {
                return vec![sc.stamp(ScanFinding::new(
                    Code::Scn014,
                    Severity::High,
                    format!("invalid GGUF header: {e}"),
                ))]
            }
        }
    }
    vec![sc.stamp(ScanFinding::new(
        Code::Scn014,
        Severity::High,
        format!(
            "invalid GGUF header: {} (metadata larger than {MAX_META} bytes)",
            last.map(|e| e.to_string()).unwrap_or_default()
        ),
    ))]
}

/// Judge a chat template by its syntax tree (see [`super::jinja`]).
fn check_template(key: &str, v: &[u8], at: u64) -> ScanFinding {
    let Ok(t) = std::str::from_utf8(v) else {
        return ScanFinding::new(
            Code::Scn031,
            Severity::High,
            format!("{key}: chat template is not valid UTF-8, so it cannot be parsed as Jinja"),
        )
        .offset(at);
    };
    match super::jinja::analyse(t) {
        Ok(risks) if risks.is_empty() => ScanFinding::new(
            Code::Scn015,
            Severity::Info,
            format!("{key}: Jinja chat template of {} bytes (rendered by the runtime; no access to Python internals found)", v.len()),
        )
        .offset(at),
        Ok(risks) => ScanFinding::new(
            Code::Scn015,
            Severity::High,
            format!(
                "{key}: chat template reaches Python internals — template-injection payload: {}",
                risks
                    .iter()
                    .take(5)
                    .map(|r| format!("{} (template byte {})", r.what, r.at))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        )
        .offset(at),
        Err(e) => ScanFinding::new(
            Code::Scn031,
            Severity::High,
            format!("{key}: chat template does not parse as Jinja ({e}); what it does cannot be checked"),
        )
        .offset(at),
    }
}

fn parse(d: &[u8], file_len: u64) -> Result<Vec<ScanFinding>, GgufError> {
    let mut c = Cur { d, p: 4, v1: false };
    let version = c.u32()?;
    if !(1..=3).contains(&version) {
        return Err(GgufError::Version(version));
    }
    c.v1 = version == 1;
    let tensors = c.len()?;
    let kvs = c.len()?;
    if tensors > 10_000_000 || kvs > 10_000_000 {
        return Err(GgufError::TooManyEntries { tensors, kvs });
    }
    let mut fs = vec![];
    let mut alignment = 32u64;
    for _ in 0..kvs {
        let key = String::from_utf8_lossy(c.string()?).into_owned();
        let ty = c.u32()?;
        let at = c.p;
        let val = c.skip_value(ty, 0)?;
        if key == "general.alignment" && ty == 4 {
            alignment =
                u32::from_le_bytes(d[at..at + 4].try_into().unwrap_or([32, 0, 0, 0])) as u64;
            if alignment == 0 || !alignment.is_power_of_two() {
                return Err(GgufError::Alignment(alignment));
            }
        }
        if key.starts_with("tokenizer.chat_template") {
            if let Some(v) = val {
                fs.push(check_template(&key, v, at as u64));
            } else if ty == 9 {
                // An array of templates: each string element is a template.
                let mut sub = Cur { d, p: at, v1: c.v1 };
                if sub.u32()? == 8 {
                    let n = sub.len()?;
                    for _ in 0..n {
                        let at = sub.p;
                        let v = sub.string()?;
                        fs.push(check_template(&key, v, at as u64));
                    }
                }
            }
        }
    }
    let mut max_start = 0u64;
    let mut last_name = String::new();
    for i in 0..tensors {
        let name = String::from_utf8_lossy(c.string()?).into_owned();
        let nd = c.u32()?;
        if nd > 8 {
            return Err(GgufError::Dimensions { name, dims: nd });
        }
        for _ in 0..nd {
            if c.v1 {
                c.u32()?;
            } else {
                c.u64()?;
            }
        }
        let _ty = c.u32()?;
        let off = c.u64()?;
        if off % alignment != 0 {
            fs.push(ScanFinding::new(
                Code::Scn014,
                Severity::Medium,
                format!("tensor {i} ({name:?}) offset {off} is not aligned to {alignment}"),
            ));
        }
        if off >= max_start {
            max_start = off;
            last_name = name;
        }
    }
    // Checked: every term comes from the file.
    let data_start = (c.p as u64)
        .div_ceil(alignment)
        .checked_mul(alignment)
        .ok_or(GgufError::Alignment(alignment))?;
    if tensors > 0 {
        let start = data_start
            .checked_add(max_start)
            .ok_or(GgufError::OffsetOverflow {
                name: last_name,
                offset: max_start,
                data_start,
            })?;
        if start > file_len {
            return Err(GgufError::TensorPastEnd { start, file_len });
        }
    }
    Ok(fs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::Policy;

    fn gguf(template: &str, tensors: u64) -> Vec<u8> {
        let mut v = b"GGUF".to_vec();
        v.extend_from_slice(&3u32.to_le_bytes());
        v.extend_from_slice(&tensors.to_le_bytes());
        v.extend_from_slice(&1u64.to_le_bytes());
        let k = b"tokenizer.chat_template";
        v.extend_from_slice(&(k.len() as u64).to_le_bytes());
        v.extend_from_slice(k);
        v.extend_from_slice(&8u32.to_le_bytes());
        v.extend_from_slice(&(template.len() as u64).to_le_bytes());
        v.extend_from_slice(template.as_bytes());
        v
    }

    #[test]
    fn template_graded_and_bad_headers_rejected() {
        let f = scan(
            &crate::scan::scanner(&Policy::default()),
            &&gguf("{{ messages }}", 0)[..],
        );
        assert_eq!((f[0].code, f[0].severity), ("SCN015", Severity::Info));
        let f = scan(
            &crate::scan::scanner(&Policy::default()),
            &&gguf("{{ x.__class__.__mro__ }}", 0)[..],
        );
        assert_eq!(f[0].severity, Severity::High);
        let f = scan(
            &crate::scan::scanner(&Policy::default()),
            &&gguf("{{ m }}", 3)[..],
        );
        assert!(f.iter().any(|f| f.code == "SCN014"), "tensor infos missing");
        let mut bad = gguf("x", 0);
        bad.truncate(30);
        assert_eq!(
            scan(&crate::scan::scanner(&Policy::default()), &&bad[..])[0].code,
            "SCN014"
        );
        // Built dunder names are found by the syntax tree; broken Jinja is unscannable.
        let f = scan(
            &crate::scan::scanner(&Policy::default()),
            &&gguf("{{ x|attr('\\x5f\\x5fcla'~'ss\\x5f\\x5f') }}", 0)[..],
        );
        assert_eq!(
            (f[0].code, f[0].severity),
            ("SCN015", Severity::High),
            "{f:?}"
        );
        let f = scan(
            &crate::scan::scanner(&Policy::default()),
            &&gguf("{% if %}", 0)[..],
        );
        assert_eq!(f[0].code, "SCN031");
    }

    /// `data_start + offset` from a hostile tensor info must not overflow.
    #[test]
    fn tensor_offset_overflow_is_its_own_error() {
        let mut v = gguf("{{ m }}", 1);
        let name = b"t";
        v.extend_from_slice(&(name.len() as u64).to_le_bytes());
        v.extend_from_slice(name);
        v.extend_from_slice(&1u32.to_le_bytes()); // dims
        v.extend_from_slice(&4u64.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes()); // type
        v.extend_from_slice(&(u64::MAX - 31).to_le_bytes()); // aligned to 32
        assert!(matches!(
            parse(&v, v.len() as u64),
            Err(GgufError::OffsetOverflow { .. })
        ));
    }
}
