//! DSSE pre-authentication encoding.

/// `"DSSEv1" SP len(type) SP type SP len(body) SP body` — what is actually signed.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// The faulty encoding model_signing 0.2 signed over: `DSSEV1` (capital V) and the payload as
/// Python's `repr(bytes)` (`b'…'` with escapes), because bytes were formatted into a `str`.
/// Upstream verify retries it silently; mlsign only on request (`--legacy-pae`), never signs it.
pub fn pae_compat(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEV1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    py_bytes_repr(payload, &mut out);
    out
}

/// CPython's `bytes.__repr__`: single quotes unless the data holds `'` and no `"`.
fn py_bytes_repr(data: &[u8], out: &mut Vec<u8>) {
    let quote = if data.contains(&b'\'') && !data.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    out.push(b'b');
    out.push(quote);
    for &c in data {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            c if c == quote => out.extend_from_slice(&[b'\\', c]),
            c if !(0x20..0x7f).contains(&c) => {
                out.extend_from_slice(format!("\\x{c:02x}").as_bytes())
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

#[cfg(test)]
mod tests {
    #[test]
    fn legacy_pae_is_python_bytes_repr() {
        // What model_signing 0.2 produced: f"DSSEV1 {n} {type} {len} {payload!r}".
        assert_eq!(
            super::pae_compat("t", b"{\"a\": 'x'}\n\\\x00\xff"),
            b"DSSEV1 1 t 14 b'{\"a\": \\'x\\'}\\n\\\\\\x00\\xff'".to_vec()
        );
        assert_eq!(
            super::pae_compat("t", b"it's"),
            b"DSSEV1 1 t 4 b\"it's\"".to_vec()
        );
    }

    #[test]
    fn pae_matches_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            super::pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }
}
