//! Integer text in protocol-0 pickles, read the way CPython's two unpicklers read it.
//!
//! The C unpickler (`pickle.load`, `numpy.load`, `torch.load`) parses INT with `strtol(s, 0)`
//! and falls back to `PyLong_FromString(s, NULL, 0)`; LONG with `PyLong_FromString(s, NULL, 0)`;
//! PUT/GET keys with `PyLong_FromString(s, NULL, 10)`. Its line buffer is a C string, so parsing
//! stops at the first NUL byte. The pure-Python unpickler (`joblib.load`) calls `int()` on the
//! same bytes, which accepts the same grammar without the NUL cut-off: the C reading accepts a
//! superset, with the same value wherever both accept. Digit separators (`1_0`), surrounding
//! whitespace, signs and `0x`/`0o`/`0b` prefixes are all legal here, so a scanner that refuses
//! them stops reading where the loader goes on.

/// An integer's value: sign and magnitude as decimal digits (no leading zeros, `"0"` for zero).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PyInt {
    pub negative: bool,
    pub digits: String,
}

impl From<u64> for PyInt {
    fn from(v: u64) -> Self {
        PyInt {
            negative: false,
            digits: v.to_string(),
        }
    }
}

impl PyInt {
    /// The value as Python prints it (long values shortened).
    pub fn display(&self) -> String {
        let d = if self.digits.len() > 40 {
            format!("{}…({} digits)", &self.digits[..20], self.digits.len())
        } else {
            self.digits.clone()
        };
        format!("{}{d}", if self.negative { "-" } else { "" })
    }
    pub fn to_i64(&self) -> Option<i64> {
        let m: i128 = self.digits.parse().ok()?;
        let v = if self.negative { -m } else { m };
        i64::try_from(v).ok()
    }
    pub fn to_u64(&self) -> Option<u64> {
        if self.negative && self.digits != "0" {
            return None;
        }
        self.digits.parse().ok()
    }
    pub fn is_zero(&self) -> bool {
        self.digits == "0"
    }
    /// Minimal little-endian two's-complement bytes, as `pickle.encode_long` writes them (LONG1).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        // Magnitude in base 2^32, little-endian.
        let mut limbs: Vec<u32> = vec![];
        for d in self.digits.bytes() {
            let mut carry = u64::from(d - b'0');
            for l in limbs.iter_mut() {
                let v = u64::from(*l) * 10 + carry;
                *l = v as u32;
                carry = v >> 32;
            }
            if carry != 0 {
                limbs.push(carry as u32);
            }
        }
        let mut mag: Vec<u8> = limbs.iter().flat_map(|l| l.to_le_bytes()).collect();
        while mag.last() == Some(&0) {
            mag.pop();
        }
        if mag.is_empty() {
            return vec![];
        }
        if !self.negative {
            if mag.last().is_some_and(|b| b & 0x80 != 0) {
                mag.push(0);
            }
            return mag;
        }
        // Two's complement of the magnitude, then the shortest form that keeps the sign.
        mag.push(0);
        let mut carry = 1u16;
        for b in mag.iter_mut() {
            let v = u16::from(!*b) + carry;
            *b = v as u8;
            carry = v >> 8;
        }
        while mag.len() > 1 && mag[mag.len() - 1] == 0xff && mag[mag.len() - 2] & 0x80 != 0 {
            mag.pop();
        }
        mag
    }
}

/// `Py_ISSPACE`: the ASCII whitespace CPython skips around numbers.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The bytes a C-string parser sees: up to the first NUL.
fn c_str(s: &[u8]) -> &[u8] {
    match s.iter().position(|&b| b == 0) {
        Some(i) => &s[..i],
        None => s,
    }
}

fn digit_value(b: u8) -> u32 {
    match b {
        b'0'..=b'9' => u32::from(b - b'0'),
        b'a'..=b'z' => u32::from(b - b'a') + 10,
        b'A'..=b'Z' => u32::from(b - b'A') + 10,
        _ => 99,
    }
}

/// CPython refuses decimal strings longer than this (`sys.int_info.default_max_str_digits`).
const MAX_STR_DIGITS: usize = 4300;

/// Convert digits in `radix` (most significant first) to the decimal form of [`PyInt`].
fn to_decimal(digits: &[u32], radix: u32) -> String {
    if radix == 10 {
        let s: String = digits
            .iter()
            .skip_while(|&&d| d == 0)
            .map(|&d| char::from(b'0' + d as u8))
            .collect();
        return if s.is_empty() { "0".into() } else { s };
    }
    // Base 10^9 accumulator, little-endian.
    let mut acc: Vec<u32> = vec![];
    for &d in digits {
        let mut carry = u64::from(d);
        for l in acc.iter_mut() {
            let v = u64::from(*l) * u64::from(radix) + carry;
            *l = (v % 1_000_000_000) as u32;
            carry = v / 1_000_000_000;
        }
        while carry != 0 {
            acc.push((carry % 1_000_000_000) as u32);
            carry /= 1_000_000_000;
        }
    }
    while acc.last() == Some(&0) {
        acc.pop();
    }
    match acc.split_last() {
        None => "0".into(),
        Some((top, rest)) => {
            let mut s = top.to_string();
            for l in rest.iter().rev() {
                s.push_str(&format!("{l:09}"));
            }
            s
        }
    }
}

/// `PyLong_FromString(s, NULL, base)` for base 0 or 10, on a C string (stops at NUL).
pub fn pylong(s: &[u8], base: u32) -> Option<PyInt> {
    let s = c_str(s);
    let mut i = 0;
    while i < s.len() && is_space(s[i]) {
        i += 1;
    }
    let mut negative = false;
    match s.get(i) {
        Some(b'+') => i += 1,
        Some(b'-') => {
            i += 1;
            negative = true;
        }
        _ => {}
    }
    let at = |k: usize| s.get(k).copied().unwrap_or(0);
    let mut radix = base;
    let mut error_if_nonzero = false;
    if radix == 0 {
        radix = match (at(i), at(i + 1)) {
            (b'0', b'x' | b'X') => 16,
            (b'0', b'o' | b'O') => 8,
            (b'0', b'b' | b'B') => 2,
            (b'0', _) => {
                error_if_nonzero = true;
                10
            }
            _ => 10,
        };
    }
    if at(i) == b'0'
        && matches!(
            (radix, at(i + 1)),
            (16, b'x' | b'X') | (8, b'o' | b'O') | (2, b'b' | b'B')
        )
    {
        i += 2;
        if at(i) == b'_' {
            i += 1;
        }
    }
    if at(i) == b'_' {
        return None;
    }
    let mut digits = vec![];
    let mut prev = 0u8;
    while i < s.len() {
        let c = s[i];
        if c == b'_' {
            if prev == b'_' {
                return None;
            }
        } else if digit_value(c) < radix {
            digits.push(digit_value(c));
        } else {
            break;
        }
        prev = c;
        i += 1;
    }
    if prev == b'_' || digits.is_empty() {
        return None;
    }
    if radix == 10 && digits.len() > MAX_STR_DIGITS {
        return None;
    }
    // Power-of-two bases have no digit limit in CPython; converting a huge one to decimal
    // would be quadratic, and no caller needs more than "wider than 64 bytes".
    let dec = if radix != 10 && digits.len() > 600 {
        "9".repeat(200)
    } else {
        to_decimal(&digits, radix)
    };
    if error_if_nonzero && dec != "0" {
        return None;
    }
    while i < s.len() && is_space(s[i]) {
        i += 1;
    }
    if i != s.len() {
        return None;
    }
    Some(PyInt {
        negative: negative && dec != "0",
        digits: dec,
    })
}

/// What glibc `strtol(s, &end, 0)` does in the C locale.
enum Strtol {
    /// Converted digits; `end` indexes the first byte not parsed.
    Value(i64, usize),
    /// No digits: `end` is the start of the string.
    NoDigits,
    /// ERANGE.
    Overflow,
}

fn strtol0(s: &[u8]) -> Strtol {
    let at = |k: usize| s.get(k).copied().unwrap_or(0);
    let mut i = 0;
    while is_space(at(i)) {
        i += 1;
    }
    let mut negative = false;
    match at(i) {
        b'+' => i += 1,
        b'-' => {
            i += 1;
            negative = true;
        }
        _ => {}
    }
    let radix = if at(i) == b'0' && matches!(at(i + 1), b'x' | b'X') && digit_value(at(i + 2)) < 16
    {
        i += 2;
        16
    } else if at(i) == b'0' {
        8
    } else {
        10
    };
    let start = i;
    let mut mag: u64 = 0;
    while digit_value(at(i)) < radix {
        match mag
            .checked_mul(u64::from(radix))
            .and_then(|m| m.checked_add(u64::from(digit_value(at(i)))))
        {
            Some(m) => mag = m,
            None => return Strtol::Overflow,
        }
        i += 1;
    }
    if i == start {
        return Strtol::NoDigits;
    }
    let v = if negative {
        if mag > 1u64 << 63 {
            return Strtol::Overflow;
        }
        (mag as i64).wrapping_neg()
    } else {
        match i64::try_from(mag) {
            Ok(v) => v,
            Err(_) => return Strtol::Overflow,
        }
    };
    Strtol::Value(v, i)
}

/// What the INT opcode pushes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IntValue {
    /// A two-character line the C loader reads as 0 or 1 (`00`, `01`, `+1`, ` 0`, …): the
    /// boolean with that value.
    Bool(bool),
    Int(PyInt),
}

/// `load_int` of the C unpickler (`line` without its `\n`): `strtol` first, `PyLong_FromString`
/// (base 0) when `strtol` stops early or overflows; `00`/`01` are the booleans. `None`: the C
/// loader raises (and so does the pure-Python one, whose `int(line, 0)` accepts a subset).
pub fn int_opcode(line: &[u8]) -> Option<IntValue> {
    if line.is_empty() {
        return None;
    }
    let s = c_str(line);
    match strtol0(s) {
        // End of the C string is the `\n` or the NUL: accepted.
        Strtol::Value(v, end) if end == s.len() => {
            if line.len() == 2 && (v == 0 || v == 1) {
                return Some(IntValue::Bool(v == 1));
            }
            Some(IntValue::Int(PyInt {
                negative: v < 0,
                digits: v.unsigned_abs().to_string(),
            }))
        }
        // No digits and an empty C string (the line starts with NUL): `end` is the start,
        // which is the NUL itself, so the C loader accepts 0.
        Strtol::NoDigits if s.is_empty() => Some(if line.len() == 2 {
            IntValue::Bool(false)
        } else {
            IntValue::Int(PyInt {
                negative: false,
                digits: "0".into(),
            })
        }),
        _ => pylong(s, 0).map(IntValue::Int),
    }
}

/// `load_long` (`line` without its `\n`): one trailing `L` is dropped, then base-0 parsing.
pub fn long_opcode(line: &[u8]) -> Option<PyInt> {
    if line.is_empty() {
        return None;
    }
    let s = match line.last() {
        Some(b'L') => &line[..line.len() - 1],
        _ => line,
    };
    pylong(s, 0)
}

/// A PUT/GET key (`line` without its `\n`): base 10.
pub fn memo_key(line: &[u8]) -> Option<PyInt> {
    if line.is_empty() {
        return None;
    }
    pylong(line, 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[u8]) -> Option<String> {
        pylong(s, 0).map(|p| format!("{}{}", if p.negative { "-" } else { "" }, p.digits))
    }

    #[test]
    fn pylong_grammar_matches_cpython() {
        assert_eq!(v(b"1_0"), Some("10".into()));
        assert_eq!(v(b" +7 \n"), Some("7".into()));
        assert_eq!(v(b"-0"), Some("0".into()));
        assert_eq!(v(b"0x_1f"), Some("31".into()));
        assert_eq!(v(b"0b101"), Some("5".into()));
        assert_eq!(v(b"0o17"), Some("15".into()));
        assert_eq!(v(b"00"), Some("0".into()));
        assert_eq!(v(b"0_0"), Some("0".into()));
        assert_eq!(v(b"12\0junk"), Some("12".into()));
        for bad in [
            &b"010"[..],
            b"_1",
            b"1_",
            b"1__0",
            b"",
            b" ",
            b"0x",
            b"1\x1c",
            b"\xa01",
            b"1 2",
        ] {
            assert_eq!(v(bad), None, "{bad:?}");
        }
        assert_eq!(pylong(b"1_0", 10).map(|p| p.digits), Some("10".to_string()));
        assert_eq!(pylong(b"0x10", 10), None);
        assert_eq!(
            pylong(b"99999999999999999999999", 10).unwrap().digits,
            "99999999999999999999999"
        );
    }

    #[test]
    fn int_opcode_uses_strtol_first() {
        let i = |s: &[u8]| match int_opcode(s) {
            Some(IntValue::Int(p)) => p.to_i64(),
            _ => None,
        };
        assert_eq!(i(b"010"), Some(8));
        assert_eq!(i(b"0x10"), Some(16));
        assert_eq!(i(b" -5"), Some(-5));
        assert_eq!(i(b"1_000"), Some(1000));
        assert_eq!(i(b"7 "), Some(7));
        assert_eq!(i(b"12\0x"), Some(12));
        assert_eq!(int_opcode(b"01"), Some(IntValue::Bool(true)));
        assert_eq!(int_opcode(b"00"), Some(IntValue::Bool(false)));
        assert_eq!(int_opcode(b"+1"), Some(IntValue::Bool(true)));
        assert_eq!(int_opcode(b"-0"), Some(IntValue::Bool(false)));
        assert_eq!(int_opcode(b"\0x"), Some(IntValue::Bool(false)));
        assert_eq!(i(b"-1"), Some(-1));
        assert_eq!(i(b"1"), Some(1));
        assert!(int_opcode(b"x").is_none());
        assert!(int_opcode(b"").is_none());
        assert_eq!(i(b"99999999999999999999"), None);
        assert!(int_opcode(b"99999999999999999999").is_some());
    }

    #[test]
    fn long_bytes_match_encode_long() {
        let b = |s: &[u8]| long_opcode(s).unwrap().to_le_bytes();
        assert_eq!(b(b"0L"), Vec::<u8>::new());
        assert_eq!(b(b"255L"), vec![0xff, 0x00]);
        assert_eq!(b(b"-1L"), vec![0xff]);
        assert_eq!(b(b"-128"), vec![0x80]);
        assert_eq!(b(b"-129"), vec![0x7f, 0xff]);
        assert_eq!(b(b"127"), vec![0x7f]);
        // torch's legacy magic number, as LONG1 writes it.
        assert_eq!(
            b(b"119547037146038801333356L"),
            vec![0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]
        );
    }
}
