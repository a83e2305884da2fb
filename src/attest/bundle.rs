//! Sigstore bundle JSON (the subset OpenSSF model signing uses), parsed strictly.

use super::error::BundleFault;
use super::Error;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const MEDIA_TYPE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// Bundles bigger than this are refused before parsing (a manifest of a million files is ~150 MB).
pub const MAX_BUNDLE_BYTES: u64 = 512 << 20;

const KNOWN_MEDIA_TYPES: &[&str] = &[
    MEDIA_TYPE_V03,
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
];

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    pub media_type: String,
    pub verification_material: VerificationMaterial,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsse_envelope: Option<Envelope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_signature: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationMaterial {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<PublicKeyIdentifier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x509_certificate_chain: Option<CertificateChain>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Certificate>,
    #[serde(default)]
    pub tlog_entries: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_verification_data: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PublicKeyIdentifier {
    #[serde(default)]
    pub hint: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CertificateChain {
    pub certificates: Vec<Certificate>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Certificate {
    /// Base64 DER.
    pub raw_bytes: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Base64 of the exact payload bytes that were signed.
    pub payload: String,
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// Base64 signature (DER for ECDSA).
    pub sig: String,
    #[serde(default)]
    pub keyid: String,
}

pub(crate) fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Decode standard base64 (padding optional; URL-safe accepted too, as protobuf JSON allows).
pub(crate) fn unb64(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let s = s.trim();
    STANDARD
        .decode(s)
        .or_else(|_| STANDARD_NO_PAD.decode(s))
        .or_else(|_| URL_SAFE.decode(s))
        .or_else(|_| URL_SAFE_NO_PAD.decode(s))
        .ok()
}

impl Bundle {
    /// Read and parse a bundle file, bounded in size.
    pub fn read(path: &Path) -> Result<Bundle, Error> {
        let bytes = Self::read_bytes(path)?;
        Self::parse(&bytes, path)
    }

    /// The bytes of a bundle file, bounded in size.
    fn read_bytes(path: &Path) -> Result<Vec<u8>, Error> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        let bad = |fault| Error::BadBundle {
            path: path.into(),
            fault,
        };
        if !meta.is_file() {
            return Err(bad(BundleFault::NotAFile));
        }
        if meta.len() > MAX_BUNDLE_BYTES {
            return Err(bad(BundleFault::TooLarge { len: meta.len() }));
        }
        std::fs::read(path).map_err(|e| Error::io(path, e))
    }

    pub fn parse(bytes: &[u8], path: &Path) -> Result<Bundle, Error> {
        let b: Bundle = parse_with(bytes, path, crate::json::from_slice)?;
        check_media_type(&b.media_type, path)?;
        Ok(b)
    }

    /// Read a bundle file holding it only once: the payload is base64-decoded in place inside
    /// the file's bytes (a bundle over a million files is ~250 MB; parsing it into a [`Bundle`]
    /// and decoding it took three copies). Same checks and errors as [`Bundle::read`]; the
    /// returned bundle's envelope payload is empty, the decoded payload is
    /// [`InPlace::payload`].
    pub(crate) fn read_in_place(path: &Path) -> Result<InPlace, Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Lazy<'a> {
            media_type: String,
            verification_material: VerificationMaterial,
            #[serde(default, borrow)]
            dsse_envelope: Option<LazyEnvelope<'a>>,
            #[serde(default)]
            message_signature: Option<serde::de::IgnoredAny>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct LazyEnvelope<'a> {
            #[serde(borrow)]
            payload: std::borrow::Cow<'a, str>,
            payload_type: String,
            signatures: Vec<EnvelopeSignature>,
        }
        let mut bytes = Self::read_bytes(path)?;
        let lazy: Lazy<'_> = parse_with(&bytes, path, |b| {
            crate::json::check_slice(b)?;
            serde_json::from_slice(b)
        })?;
        check_media_type(&lazy.media_type, path)?;
        // Where the payload's text is: inside `bytes` (no escapes), or a copy.
        enum At {
            Inside(usize, usize),
            Copy(String),
        }
        let (envelope, at) = match lazy.dsse_envelope {
            None => (None, None),
            Some(e) => {
                let at = match e.payload {
                    std::borrow::Cow::Borrowed(p) => {
                        At::Inside(p.as_ptr() as usize - bytes.as_ptr() as usize, p.len())
                    }
                    std::borrow::Cow::Owned(p) => At::Copy(p),
                };
                let env = Envelope {
                    payload: String::new(),
                    payload_type: e.payload_type,
                    signatures: e.signatures,
                };
                (Some(env), Some(at))
            }
        };
        let bundle = Bundle {
            media_type: lazy.media_type,
            verification_material: lazy.verification_material,
            dsse_envelope: envelope,
            message_signature: lazy.message_signature.map(|_| serde_json::Value::Null),
        };
        let (storage, payload) = match at {
            None => (Vec::new(), None),
            Some(At::Inside(start, len)) => {
                let r = decode_in_place(&mut bytes, start, len);
                (bytes, r)
            }
            Some(At::Copy(text)) => {
                drop(bytes);
                let mut v = text.into_bytes();
                let len = v.len();
                let r = decode_in_place(&mut v, 0, len);
                (v, r)
            }
        };
        Ok(InPlace {
            bundle,
            storage,
            payload,
        })
    }
}

/// A bundle read by [`Bundle::read_in_place`].
pub(crate) struct InPlace {
    pub bundle: Bundle,
    storage: Vec<u8>,
    /// The decoded payload's place in `storage`; `None` when it is not base64.
    payload: Option<std::ops::Range<usize>>,
}

impl InPlace {
    /// The decoded payload, or `None` when it is not base64 (or there is no envelope).
    pub fn payload(&self) -> Option<&[u8]> {
        self.payload.clone().map(|r| &self.storage[r])
    }
}

fn parse_with<'a, T>(
    bytes: &'a [u8],
    path: &Path,
    parse: impl FnOnce(&'a [u8]) -> Result<T, serde_json::Error>,
) -> Result<T, Error> {
    let bad = |fault| Error::BadBundle {
        path: path.into(),
        fault,
    };
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(bad(BundleFault::Empty));
    }
    parse(bytes).map_err(|e| {
        bad(BundleFault::Json {
            truncated: e.is_eof(),
            line: e.line(),
            column: e.column(),
            source: e,
        })
    })
}

fn check_media_type(media_type: &str, path: &Path) -> Result<(), Error> {
    if !KNOWN_MEDIA_TYPES.contains(&media_type) {
        return Err(Error::UnsupportedBundle {
            path: path.into(),
            why: format!("unknown mediaType {media_type:?}"),
        });
    }
    Ok(())
}

/// [`unb64`] of the text at `buf[start..start + len]`, written over it from `start`: the
/// decoded range, or `None` when it is not base64. Decodes in 4 KiB chunks through a small
/// buffer; the output (3 bytes per 4 characters) never overtakes the input.
fn decode_in_place(buf: &mut [u8], start: usize, len: usize) -> Option<std::ops::Range<usize>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let text = std::str::from_utf8(buf.get(start..start.checked_add(len)?)?).ok()?;
    let trimmed = text.trim();
    let lead = trimmed.as_ptr() as usize - text.as_ptr() as usize;
    let (from, n) = (start + lead, trimmed.len());
    // unb64 tries four engines in turn; only one can succeed on a given text: the URL-safe
    // alphabet iff `-` or `_` occur, the padded form iff it ends with `=`.
    let url = trimmed.bytes().any(|b| b == b'-' || b == b'_');
    let padded = trimmed.ends_with('=');
    let engine = match (url, padded) {
        (false, true) => &STANDARD,
        (false, false) => &STANDARD_NO_PAD,
        (true, true) => &URL_SAFE,
        (true, false) => &URL_SAFE_NO_PAD,
    };
    // Padding anywhere but the last group is invalid for every engine; checking it here lets
    // the groups before be decoded chunk by chunk.
    let tail = n.saturating_sub(4);
    if buf[from..from + tail].contains(&b'=') {
        return None;
    }
    const CHUNK: usize = 4096;
    let mut out = [0u8; (CHUNK + 4) / 4 * 3 + 3];
    let (mut r, mut w) = (from, start);
    let end = from + n;
    while r < end {
        // Whole groups of 4 up to the last chunk, which takes the rest (padding included).
        let take = if end - r > CHUNK + 4 { CHUNK } else { end - r };
        let k = base64::Engine::decode_slice(engine, &buf[r..r + take], &mut out).ok()?;
        buf[w..w + k].copy_from_slice(&out[..k]);
        r += take;
        w += k;
    }
    Some(start..w)
}

impl Bundle {
    /// Compact JSON, as model_signing writes it.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain structs cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_bundle_files_name_their_fault() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("b.sig");
        let fault = |bytes: &[u8]| {
            std::fs::write(&p, bytes).unwrap();
            match Bundle::read(&p) {
                Err(Error::BadBundle { path, fault }) => {
                    assert_eq!(path, p);
                    fault
                }
                other => panic!("{other:?}"),
            }
        };
        assert!(matches!(fault(b" \n"), BundleFault::Empty));
        assert!(matches!(
            fault(b"{\"mediaType\": \"x\""),
            BundleFault::Json {
                truncated: true,
                line: 1,
                ..
            }
        ));
        let f = fault(b"{\"mediaType\": 5}");
        assert!(
            matches!(
                f,
                BundleFault::Json {
                    truncated: false,
                    ..
                }
            ),
            "{f:?}"
        );
        assert!(
            f.to_string().starts_with("invalid bundle JSON at line 1"),
            "{f}"
        );
        assert!(matches!(
            Bundle::read(t.path()),
            Err(Error::BadBundle {
                fault: BundleFault::NotAFile,
                ..
            })
        ));
    }

    #[test]
    fn in_place_decoding_is_unb64() {
        let mut cases: Vec<String> = vec![
            "".into(),
            "QQ".into(),
            "QQ=".into(),
            "QQ==".into(),
            "QR==".into(),
            "QUI=".into(),
            "QUJD".into(),
            " QUJD\n".into(),
            "\u{2003}QUJD\u{2003}".into(),
            "QU JD".into(),
            "QU=D".into(),
            "-_-_".into(),
            "+/+/".into(),
            "+/-_".into(),
            "QUJD====".into(),
            "Q".into(),
        ];
        // Long texts that cross the 4 KiB chunks, in both alphabets, padded or not, with a
        // fault at the end, in the middle or at a chunk edge.
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 + i / 255) as u8).collect();
        for n in [4095, 4096, 4097, 9000, 12_289, 20_000] {
            for engine in [
                &base64::engine::general_purpose::STANDARD,
                &base64::engine::general_purpose::STANDARD_NO_PAD,
                &base64::engine::general_purpose::URL_SAFE,
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ] {
                let t = base64::Engine::encode(engine, &data[..n]);
                cases.push(t.clone());
                for at in [1, 4096, 5461, t.len() / 2, t.len() - 1] {
                    for c in ['=', '*', '-', '+'] {
                        let mut bad = t.clone().into_bytes();
                        if at < bad.len() {
                            bad[at] = c as u8;
                            cases.push(String::from_utf8(bad).unwrap());
                        }
                    }
                }
            }
        }
        for text in cases {
            let mut buf = format!("xx\"{text}\"yy").into_bytes();
            let got = decode_in_place(&mut buf, 3, text.len()).map(|r| buf[r].to_vec());
            assert_eq!(got, unb64(&text), "{text:?}");
        }
    }

    #[test]
    fn in_place_read_is_the_same_bundle() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("b.sig");
        let payload = b"{\"hello\": [1, 2, 3]}\n".repeat(500);
        for escaped in [false, true] {
            let mut text = String::from_utf8(
                Bundle {
                    media_type: MEDIA_TYPE_V03.into(),
                    verification_material: VerificationMaterial::default(),
                    dsse_envelope: Some(Envelope {
                        payload: b64(&payload),
                        payload_type: IN_TOTO_PAYLOAD_TYPE.into(),
                        signatures: vec![],
                    }),
                    message_signature: None,
                }
                .to_json(),
            )
            .unwrap();
            if escaped {
                // JSON may escape `/` and any letter: the text is then a copy, same bytes.
                // The payload's first character written as a \u escape.
                let at = text.find("\"payload\":\"").unwrap() + 11;
                let c = text.as_bytes()[at];
                text.replace_range(at..at + 1, &format!("\\u{c:04x}"));
            }
            std::fs::write(&p, &text).unwrap();
            let whole = Bundle::read(&p).unwrap();
            let fast = Bundle::read_in_place(&p).unwrap();
            let want = unb64(&whole.dsse_envelope.as_ref().unwrap().payload);
            assert_eq!(fast.payload().map(<[u8]>::to_vec), want);
            assert_eq!(want.as_deref(), Some(payload.as_slice()));
        }
        std::fs::write(&p, r#"{"mediaType":"x","mediaType":"y"}"#).unwrap();
        let e = Bundle::read_in_place(&p).err().unwrap().to_string();
        assert!(e.contains("duplicate key"), "{e}");
        std::fs::write(&p, "  \n").unwrap();
        assert!(Bundle::read_in_place(&p)
            .err()
            .unwrap()
            .to_string()
            .contains("empty"));
    }
}
