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
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&bytes, path)
    }

    pub fn parse(bytes: &[u8], path: &Path) -> Result<Bundle, Error> {
        let bad = |fault| Error::BadBundle {
            path: path.into(),
            fault,
        };
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Err(bad(BundleFault::Empty));
        }
        let b: Bundle = crate::json::from_slice(bytes).map_err(|e| {
            bad(BundleFault::Json {
                truncated: e.is_eof(),
                line: e.line(),
                column: e.column(),
                source: e,
            })
        })?;
        if !KNOWN_MEDIA_TYPES.contains(&b.media_type.as_str()) {
            return Err(Error::UnsupportedBundle {
                path: path.into(),
                why: format!("unknown mediaType {:?}", b.media_type),
            });
        }
        Ok(b)
    }

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
}
