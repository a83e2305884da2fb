//! GGUF header sanity (v1–v3): bounded metadata parsing, tensor infos inside the file, and the
//! chat template (a Jinja program some runtimes render) reported, graded by what it touches.

use super::source::Source;
use crate::report::Severity;
use crate::scan::finding::{Ctx, ScanFinding};

const MAX_META: u64 = 256 << 20;

struct Cur<'a> {
    d: &'a [u8],
    p: usize,
    v1: bool,
}

impl<'a> Cur<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        let n = usize::try_from(n).map_err(|_| "length overflows")?;
        if n > self.d.len() - self.p {
            return Err(format!(
                "metadata runs past the read window at offset {}",
                self.p
            ));
        }
        self.p += n;
        Ok(&self.d[self.p - n..self.p])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or([0; 4]),
        ))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().unwrap_or([0; 8]),
        ))
    }
    fn len(&mut self) -> Result<u64, String> {
        if self.v1 {
            self.u32().map(u64::from)
        } else {
            self.u64()
        }
    }
    fn string(&mut self) -> Result<&'a [u8], String> {
        let n = self.len()?;
        self.take(n)
    }
    fn skip_value(&mut self, ty: u32, depth: u32) -> Result<Option<&'a [u8]>, String> {
        let fixed = match ty {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            10..=12 => 8,
            8 => return self.string().map(Some),
            9 => {
                if depth > 4 {
                    return Err("arrays nested too deep".into());
                }
                let et = self.u32()?;
                let n = self.len()?;
                if n > 100_000_000 {
                    return Err(format!("array of {n} elements"));
                }
                for _ in 0..n {
                    self.skip_value(et, depth + 1)?;
                }
                return Ok(None);
            }
            t => return Err(format!("unknown metadata value type {t}")),
        };
        self.take(fixed)?;
        Ok(None)
    }
}

pub fn scan(src: &dyn Source, ctx: &Ctx) -> Vec<ScanFinding> {
    let len = src.len();
    // Metadata is usually a few MiB (tokenizer vocabularies): try a small window first.
    let mut last = String::new();
    for window in [16u64 << 20, MAX_META] {
        let n = len.min(window);
        let d = match src.read_vec(0, n, MAX_META) {
            Ok(d) => d,
            Err(e) => {
                return vec![ctx.stamp(ScanFinding::new(
                    "SCN002",
                    Severity::High,
                    format!("GGUF file cannot be read: {e}"),
                ))]
            }
        };
        match parse(&d, len) {
            Ok(fs) => return fs.into_iter().map(|f| ctx.stamp(f)).collect(),
            Err(e) if e.contains("read window") && n < len => last = e,
            Err(e) => {
                return vec![ctx.stamp(ScanFinding::new(
                    "SCN014",
                    Severity::High,
                    format!("invalid GGUF header: {e}"),
                ))]
            }
        }
    }
    vec![ctx.stamp(ScanFinding::new(
        "SCN014",
        Severity::High,
        format!("invalid GGUF header: {last} (metadata larger than {MAX_META} bytes)"),
    ))]
}

fn parse(d: &[u8], file_len: u64) -> Result<Vec<ScanFinding>, String> {
    let mut c = Cur { d, p: 4, v1: false };
    let version = c.u32()?;
    if !(1..=3).contains(&version) {
        return Err(format!("unsupported version {version}"));
    }
    c.v1 = version == 1;
    let tensors = c.len()?;
    let kvs = c.len()?;
    if tensors > 10_000_000 || kvs > 10_000_000 {
        return Err(format!(
            "{tensors} tensors / {kvs} metadata entries exceed sane limits"
        ));
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
                return Err(format!(
                    "general.alignment {alignment} is not a power of two"
                ));
            }
        }
        if key.starts_with("tokenizer.chat_template") {
            if let Some(v) = val {
                let t = String::from_utf8_lossy(v);
                let risky = [
                    "__class__",
                    "__globals__",
                    "__subclasses__",
                    "__builtins__",
                    "__import__",
                    "__init__",
                    "__mro__",
                    "__base__",
                    "popen",
                    "os.system",
                    "eval(",
                    "exec(",
                ]
                .iter()
                .filter(|p| t.contains(**p))
                .copied()
                .collect::<Vec<_>>();
                fs.push(if risky.is_empty() {
                    ScanFinding::new("SCN015", Severity::Info, format!("{key}: Jinja chat template of {} bytes (rendered by the runtime)", v.len())).offset(at as u64)
                } else {
                    ScanFinding::new("SCN015", Severity::High, format!("{key}: chat template reaches Python internals ({}) — template-injection payload", risky.join(", "))).offset(at as u64)
                });
            }
        }
    }
    let mut max_end = 0u64;
    let mut infos = vec![];
    for i in 0..tensors {
        let name = String::from_utf8_lossy(c.string()?).into_owned();
        let nd = c.u32()?;
        if nd > 8 {
            return Err(format!("tensor {name:?} has {nd} dimensions"));
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
                "SCN014",
                Severity::Medium,
                format!("tensor {i} ({name:?}) offset {off} is not aligned to {alignment}"),
            ));
        }
        infos.push((name, off));
        max_end = max_end.max(off);
    }
    let data_start = (c.p as u64).div_ceil(alignment) * alignment;
    if tensors > 0 && data_start + max_end > file_len {
        return Err(format!(
            "a tensor starts at {} past the end of the file ({file_len} bytes)",
            data_start + max_end
        ));
    }
    Ok(fs)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let f = scan(&&gguf("{{ messages }}", 0)[..], &Ctx::default());
        assert_eq!((f[0].code, f[0].severity), ("SCN015", Severity::Info));
        let f = scan(&&gguf("{{ x.__class__.__mro__ }}", 0)[..], &Ctx::default());
        assert_eq!(f[0].severity, Severity::High);
        let f = scan(&&gguf("{{ m }}", 3)[..], &Ctx::default());
        assert!(f.iter().any(|f| f.code == "SCN014"), "tensor infos missing");
        let mut bad = gguf("x", 0);
        bad.truncate(30);
        assert_eq!(scan(&&bad[..], &Ctx::default())[0].code, "SCN014");
    }
}
