//! JSON read as Python's `json.loads(bytes)` reads it (what Keras does with `config.json` and
//! h5py attribute strings): the encoding detected from the first bytes (UTF-8 with or without
//! BOM, UTF-16, UTF-32), `NaN`/`Infinity`/`-Infinity` accepted, lone surrogates accepted, the
//! last duplicate key wins, and no recursion: nesting is followed iteratively up to
//! [`MAX_DEPTH`], deeper than CPython's own recursion limit lets `json` go.

use serde_json::{Map, Number, Value};

/// CPython's `json` gives up near its recursion limit (1000); deeper input cannot load.
pub const MAX_DEPTH: usize = 2000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JsonError {
    #[error("text is not valid {0}")]
    Encoding(&'static str),
    #[error("unexpected {found} at character {at}")]
    Unexpected { found: String, at: usize },
    #[error("unexpected end of data")]
    Eof,
    #[error("nesting deeper than {MAX_DEPTH} levels (Python's json cannot load it either)")]
    TooDeep,
}

/// Decode bytes as `json.detect_encoding` + `bytes.decode(enc, "surrogatepass")` would.
pub fn decode_text(b: &[u8]) -> Result<String, JsonError> {
    let utf16 = |b: &[u8], be: bool| -> Result<String, JsonError> {
        if b.len() % 2 != 0 {
            return Err(JsonError::Encoding("UTF-16"));
        }
        let units = b.chunks(2).map(|c| {
            if be {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_le_bytes([c[0], c[1]])
            }
        });
        Ok(char::decode_utf16(units)
            .map(|r| r.unwrap_or('\u{fffd}'))
            .collect())
    };
    let utf32 = |b: &[u8], be: bool| -> Result<String, JsonError> {
        if b.len() % 4 != 0 {
            return Err(JsonError::Encoding("UTF-32"));
        }
        b.chunks(4)
            .map(|c| {
                let a = [c[0], c[1], c[2], c[3]];
                let v = if be {
                    u32::from_be_bytes(a)
                } else {
                    u32::from_le_bytes(a)
                };
                match v {
                    0xd800..=0xdfff => Some('\u{fffd}'),
                    v => char::from_u32(v),
                }
            })
            .collect::<Option<String>>()
            .ok_or(JsonError::Encoding("UTF-32"))
    };
    if b.starts_with(&[0, 0, 0xfe, 0xff]) {
        return utf32(&b[4..], true);
    }
    if b.starts_with(&[0xff, 0xfe, 0, 0]) {
        return utf32(&b[4..], false);
    }
    if b.starts_with(&[0xfe, 0xff]) {
        return utf16(&b[2..], true);
    }
    if b.starts_with(&[0xff, 0xfe]) {
        return utf16(&b[2..], false);
    }
    if let Some(rest) = b.strip_prefix(&[0xef, 0xbb, 0xbf]) {
        return String::from_utf8(rest.to_vec()).map_err(|_| JsonError::Encoding("UTF-8"));
    }
    if b.len() >= 4 {
        if b[0] == 0 {
            return if b[1] != 0 {
                utf16(b, true)
            } else {
                utf32(b, true)
            };
        }
        if b[1] == 0 {
            return if b[2] != 0 || b[3] != 0 {
                utf16(b, false)
            } else {
                utf32(b, false)
            };
        }
    } else if b.len() == 2 {
        if b[0] == 0 {
            return utf16(b, true);
        }
        if b[1] == 0 {
            return utf16(b, false);
        }
    }
    // surrogatepass: UTF-8-encoded surrogates (ED A0..BF xx) are accepted by Python.
    match String::from_utf8(b.to_vec()) {
        Ok(s) => Ok(s),
        Err(_) => Ok(String::from_utf8_lossy(b).into_owned()).and_then(|s| {
            if wtf8_ok(b) {
                Ok(s)
            } else {
                Err(JsonError::Encoding("UTF-8"))
            }
        }),
    }
}

/// Whether invalid UTF-8 is only encoded surrogates (which `surrogatepass` accepts).
fn wtf8_ok(b: &[u8]) -> bool {
    let mut i = 0;
    while i < b.len() {
        match std::str::from_utf8(&b[i..]) {
            Ok(_) => return true,
            Err(e) => {
                let bad = i + e.valid_up_to();
                let s = &b[bad..];
                if s.len() >= 3
                    && s[0] == 0xed
                    && (0xa0..=0xbf).contains(&s[1])
                    && (0x80..=0xbf).contains(&s[2])
                {
                    i = bad + 3;
                } else {
                    return false;
                }
            }
        }
    }
    true
}

/// Parse JSON bytes as Python's `json.loads` does.
pub fn loads(b: &[u8]) -> Result<Value, JsonError> {
    let text = decode_text(b)?;
    let chars: Vec<char> = text.chars().collect();
    Parser { c: &chars, p: 0 }.document()
}

enum Frame {
    Arr(Vec<Value>),
    Obj(Map<String, Value>, String),
}

struct Parser<'a> {
    c: &'a [char],
    p: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.p < self.c.len() && matches!(self.c[self.p], ' ' | '\t' | '\n' | '\r') {
            self.p += 1;
        }
    }
    fn peek(&self) -> Option<char> {
        self.c.get(self.p).copied()
    }
    fn err(&self) -> JsonError {
        match self.peek() {
            None => JsonError::Eof,
            Some(c) => JsonError::Unexpected {
                found: format!("{c:?}"),
                at: self.p,
            },
        }
    }
    fn lit(&mut self, s: &str) -> bool {
        let n = s.chars().count();
        if self.c.len() >= self.p + n && self.c[self.p..self.p + n].iter().copied().eq(s.chars()) {
            self.p += n;
            true
        } else {
            false
        }
    }

    fn document(mut self) -> Result<Value, JsonError> {
        let mut stack: Vec<Frame> = vec![];
        loop {
            self.ws();
            // A value starts here (or a container closes right away).
            let mut v = match self.peek().ok_or(JsonError::Eof)? {
                '{' | '[' if stack.len() >= MAX_DEPTH => return Err(JsonError::TooDeep),
                '{' => {
                    self.p += 1;
                    self.ws();
                    if self.peek() == Some('}') {
                        self.p += 1;
                        Value::Object(Map::new())
                    } else {
                        let k = self.key()?;
                        stack.push(Frame::Obj(Map::new(), k));
                        continue;
                    }
                }
                '[' => {
                    self.p += 1;
                    self.ws();
                    if self.peek() == Some(']') {
                        self.p += 1;
                        Value::Array(vec![])
                    } else {
                        stack.push(Frame::Arr(vec![]));
                        continue;
                    }
                }
                _ => self.scalar()?,
            };
            // Attach the value to its container; close containers that end here.
            loop {
                match stack.last_mut() {
                    None => {
                        self.ws();
                        return if self.p == self.c.len() {
                            Ok(v)
                        } else {
                            Err(self.err())
                        };
                    }
                    Some(Frame::Arr(a)) => {
                        a.push(v);
                        self.ws();
                        match self.peek() {
                            Some(',') => {
                                self.p += 1;
                                break;
                            }
                            Some(']') => {
                                self.p += 1;
                                let Some(Frame::Arr(a)) = stack.pop() else {
                                    unreachable!()
                                };
                                v = Value::Array(a);
                            }
                            _ => return Err(self.err()),
                        }
                    }
                    Some(Frame::Obj(m, k)) => {
                        m.insert(std::mem::take(k), v);
                        self.ws();
                        match self.peek() {
                            Some(',') => {
                                self.p += 1;
                                self.ws();
                                let nk = self.key()?;
                                if let Some(Frame::Obj(_, k)) = stack.last_mut() {
                                    *k = nk;
                                }
                                break;
                            }
                            Some('}') => {
                                self.p += 1;
                                let Some(Frame::Obj(m, _)) = stack.pop() else {
                                    unreachable!()
                                };
                                v = Value::Object(m);
                            }
                            _ => return Err(self.err()),
                        }
                    }
                }
            }
        }
    }

    /// `"key" :`
    fn key(&mut self) -> Result<String, JsonError> {
        if self.peek() != Some('"') {
            return Err(self.err());
        }
        let k = self.string()?;
        self.ws();
        if self.peek() != Some(':') {
            return Err(self.err());
        }
        self.p += 1;
        Ok(k)
    }

    fn scalar(&mut self) -> Result<Value, JsonError> {
        Ok(match self.peek().ok_or(JsonError::Eof)? {
            '"' => Value::String(self.string()?),
            _ if self.lit("true") => Value::Bool(true),
            _ if self.lit("false") => Value::Bool(false),
            _ if self.lit("null") => Value::Null,
            // Not representable in serde_json; nothing here depends on the number's value.
            _ if self.lit("NaN") || self.lit("Infinity") || self.lit("-Infinity") => Value::Null,
            '-' | '0'..='9' => self.number()?,
            _ => return Err(self.err()),
        })
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.p;
        if self.peek() == Some('-') {
            self.p += 1;
        }
        match self.peek() {
            Some('0') => self.p += 1,
            Some('1'..='9') => {
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.p += 1;
                }
            }
            _ => return Err(self.err()),
        }
        let mut float = false;
        if self.peek() == Some('.') && self.c.get(self.p + 1).is_some_and(|c| c.is_ascii_digit()) {
            float = true;
            self.p += 1;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.p += 1;
            }
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let save = self.p;
            self.p += 1;
            if matches!(self.peek(), Some('+' | '-')) {
                self.p += 1;
            }
            if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                float = true;
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.p += 1;
                }
            } else {
                self.p = save; // Python stops the number before a bare `e`
            }
        }
        let s: String = self.c[start..self.p].iter().collect();
        let n = if float {
            s.parse::<f64>().ok().and_then(Number::from_f64)
        } else {
            s.parse::<i64>()
                .map(Number::from)
                .ok()
                .or_else(|| s.parse::<u64>().ok().map(Number::from))
                .or_else(|| s.parse::<f64>().ok().and_then(Number::from_f64))
        };
        Ok(n.map(Value::Number).unwrap_or(Value::Null))
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.p += 1; // opening quote
        let mut out = String::new();
        loop {
            let c = self.peek().ok_or(JsonError::Eof)?;
            self.p += 1;
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let e = self.peek().ok_or(JsonError::Eof)?;
                    self.p += 1;
                    match e {
                        '"' => out.push('"'),
                        '\\' => out.push('\\'),
                        '/' => out.push('/'),
                        'b' => out.push('\x08'),
                        'f' => out.push('\x0c'),
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        'u' => {
                            let hi = self.hex4()?;
                            if (0xd800..0xdc00).contains(&hi)
                                && self.peek() == Some('\\')
                                && self.c.get(self.p + 1) == Some(&'u')
                            {
                                let save = self.p;
                                self.p += 2;
                                let lo = self.hex4()?;
                                if (0xdc00..0xe000).contains(&lo) {
                                    let v = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
                                    out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                                    continue;
                                }
                                self.p = save;
                            }
                            out.push(char::from_u32(hi).unwrap_or('\u{fffd}'));
                        }
                        _ => {
                            self.p -= 1;
                            return Err(self.err());
                        }
                    }
                }
                c if (c as u32) < 0x20 => {
                    self.p -= 1;
                    return Err(self.err());
                }
                c => out.push(c),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let s: String = self
            .c
            .get(self.p..self.p + 4)
            .ok_or(JsonError::Eof)?
            .iter()
            .collect();
        let v = u32::from_str_radix(&s, 16).map_err(|_| self.err())?;
        if !s.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(self.err());
        }
        self.p += 4;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_python_reads() {
        assert_eq!(
            loads(b" {\"a\": [1, 2.5, \"x\\u0041\"], \"a\": null} ").unwrap(),
            serde_json::json!({"a": null})
        );
        assert_eq!(
            loads(b"[NaN, Infinity, -Infinity]").unwrap(),
            serde_json::json!([null, null, null])
        );
        let u16: Vec<u8> = "{\"k\": 1}"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        assert_eq!(loads(&u16).unwrap(), serde_json::json!({"k": 1}));
        assert_eq!(loads(b"\xef\xbb\xbf[1]").unwrap(), serde_json::json!([1]));
        assert!(loads(b"[1,]").is_err());
        assert!(loads(b"{\"a\" 1}").is_err());
        assert!(loads(b"\"\x01\"").is_err());
        assert!(loads(b"[1] x").is_err());
        let deep = "[".repeat(1500) + &"]".repeat(1500);
        assert!(loads(deep.as_bytes()).is_ok());
        let too_deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(matches!(
            loads(too_deep.as_bytes()),
            Err(JsonError::TooDeep)
        ));
        let at_limit = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(loads(at_limit.as_bytes()).is_ok());
    }
}
