//! Exact decoders for the text forms of pickle strings, matching CPython:
//! `raw-unicode-escape` (UNICODE), `codecs.escape_decode` plus the quote rule (STRING).

/// Why a text-form string argument does not decode (CPython raises on the same bytes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StringError {
    /// Fewer than the 4 (`\u`) or 8 (`\U`) characters the escape needs.
    #[error("truncated \\{0}XXXX escape")]
    ShortEscape(char),
    /// The escape's characters are not all hex digits.
    #[error("truncated \\{0} escape")]
    NonHexEscape(char),
    #[error("bad escape")]
    BadEscape,
    #[error("{0}")]
    Radix(#[from] std::num::ParseIntError),
    #[error("\\U{0:08x} out of range")]
    OutOfRange(u32),
    #[error("the STRING opcode argument must be quoted")]
    Unquoted,
    #[error("trailing \\ in string")]
    TrailingBackslash,
    /// Position of the backslash.
    #[error("invalid \\x escape at position {0}")]
    BadHexEscape(usize),
}

/// CPython's `raw_unicode_escape` decoder: bytes are Latin-1, and `\uXXXX` / `\UXXXXXXXX` are
/// escapes only after an odd number of backslashes. `Ok(None)`: valid, but the text holds a
/// lone surrogate (`\ud800`), which Python keeps and a Rust `String` cannot.
pub fn raw_unicode_escape(data: &[u8]) -> Result<Option<String>, StringError> {
    let mut surrogate = false;
    let mut out = String::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        let b = data[i];
        if b != b'\\' {
            out.push(b as char);
            i += 1;
            continue;
        }
        let start = i;
        while i < data.len() && data[i] == b'\\' {
            out.push('\\');
            i += 1;
        }
        let odd = (i - start) % 2 == 1;
        if !odd || i >= data.len() || (data[i] != b'u' && data[i] != b'U') {
            continue;
        }
        out.pop();
        let n = if data[i] == b'u' { 4 } else { 8 };
        i += 1;
        let letter = if n == 4 { 'u' } else { 'U' };
        let hex = data.get(i..i + n).ok_or(StringError::ShortEscape(letter))?;
        let s = std::str::from_utf8(hex).map_err(|_| StringError::BadEscape)?;
        if !s.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(StringError::NonHexEscape(letter));
        }
        let v = u32::from_str_radix(s, 16)?;
        if v > 0x10ffff {
            return Err(StringError::OutOfRange(v));
        }
        match char::from_u32(v) {
            Some(c) => out.push(c),
            None => surrogate = true,
        }
        i += n;
    }
    Ok((!surrogate).then_some(out))
}

/// `load_string`: strip one pair of matching outer quotes (required), then `escape_decode`.
pub fn string_opcode(line: &[u8]) -> Result<Vec<u8>, StringError> {
    if line.len() >= 2 && line[0] == line[line.len() - 1] && (line[0] == b'"' || line[0] == b'\'') {
        escape_decode(&line[1..line.len() - 1])
    } else {
        Err(StringError::Unquoted)
    }
}

/// CPython's `codecs.escape_decode` (`_PyBytes_DecodeEscape`).
pub fn escape_decode(data: &[u8]) -> Result<Vec<u8>, StringError> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        let b = data[i];
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(&c) = data.get(i) else {
            return Err(StringError::TrailingBackslash);
        };
        i += 1;
        match c {
            b'\n' => {}
            b'\\' => out.push(b'\\'),
            b'\'' => out.push(b'\''),
            b'"' => out.push(b'"'),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b't' => out.push(b'\t'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b'v' => out.push(11),
            b'a' => out.push(7),
            b'0'..=b'7' => {
                let mut v = (c - b'0') as u32;
                for _ in 0..2 {
                    match data.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + (d - b'0') as u32;
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            b'x' => {
                let h = data
                    .get(i..i + 2)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit));
                let Some(h) = h else {
                    return Err(StringError::BadHexEscape(i - 2));
                };
                let s = std::str::from_utf8(h).unwrap_or("00");
                out.push(u8::from_str_radix(s, 16).unwrap_or(0));
                i += 2;
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_unicode_escape_matches_cpython() {
        let d = |b: &[u8]| raw_unicode_escape(b).unwrap().unwrap();
        assert_eq!(d(br"\u006f\u0073"), "os");
        assert_eq!(d(br"\\u006f"), r"\\u006f");
        assert_eq!(d(br"\\\u006f"), "\\\\o");
        assert_eq!(d(b"\xe9"), "\u{e9}");
        assert_eq!(d(br"\U0001F600"), "\u{1F600}");
        assert!(raw_unicode_escape(br"\u00").is_err());
        assert!(raw_unicode_escape(br"\U00110000").is_err());
        // Lone surrogates are legal text for CPython (never a valid name).
        assert_eq!(raw_unicode_escape(br"\ud800"), Ok(None));
        assert_eq!(raw_unicode_escape(br"a\U0000dfffb"), Ok(None));
    }

    #[test]
    fn escape_decode_matches_cpython() {
        assert_eq!(string_opcode(br"'\x6fs'").unwrap(), b"os");
        assert_eq!(string_opcode(br#""\157s""#).unwrap(), b"os");
        assert_eq!(escape_decode(br"a\qb").unwrap(), br"a\qb");
        assert_eq!(escape_decode(b"a\\\nb").unwrap(), b"ab");
        assert!(escape_decode(br"\x6").is_err());
        assert!(escape_decode(b"ab\\").is_err());
        assert!(string_opcode(b"os").is_err());
        assert!(string_opcode(b"'os\"").is_err());
    }
}
