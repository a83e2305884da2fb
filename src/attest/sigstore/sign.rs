//! Keyless signing: an OIDC identity token buys a short-lived Fulcio certificate for an
//! ephemeral P-256 key that lives only in memory; the signature is logged to Rekor (v1 API) and,
//! when the signing config names one, timestamped by an RFC 3161 TSA; the result is a v0.3
//! bundle, checked with our own verifier before it is handed back.
//!
//! The token is a bearer credential: it is held in zeroized memory, never printed, and never
//! part of an error message (service errors quote the response, which does not echo it).

use super::{Artifact, Expect, KeylessError, Matcher, TrustRoot};
use crate::attest::bundle::{b64, unb64};
use crate::attest::dsse;
use base64::Engine;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::EncodePublicKey;
use serde_json::{json, Value};
use sha2::Digest;
use std::path::Path;
use std::time::Duration;
use zeroize::Zeroizing;

/// Responses bigger than this are not a Fulcio certificate or a Rekor entry.
const MAX_RESPONSE_BYTES: u64 = 4 << 20;
const HTTP_TIMEOUT: Duration = Duration::from_secs(60);
/// Tokens are a few kilobytes.
const MAX_TOKEN_BYTES: u64 = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("identity token: {0}")]
    Token(String),
    /// No token given, none in the environment, no CI provider, no terminal for a browser.
    #[error("identity token: none given, SIGSTORE_ID_TOKEN unset, not in GitHub Actions with an ID-token request, and no terminal for the browser sign-in")]
    NoToken,
    /// The interactive sign-in got no redirect from the browser before the deadline.
    #[error("identity token: no answer from the browser in time")]
    BrowserTimeout,
    #[error("signing config: {0}")]
    Config(String),
    #[error("{service} at {url}: {why}")]
    Http {
        service: &'static str,
        url: String,
        why: String,
    },
    #[error("{service} at {url} answered HTTP {status}: {body}")]
    Service {
        service: &'static str,
        url: String,
        status: u16,
        body: String,
    },
    #[error("{service} at {url} sent an unusable response: {why}")]
    Response {
        service: &'static str,
        url: String,
        why: String,
    },
    /// The assembled bundle does not verify against the trusted root: never written.
    #[error("the new bundle does not verify against {root}: {source}")]
    SelfCheck {
        root: String,
        #[source]
        source: KeylessError,
    },
}

/// An OIDC identity token. Its `Debug` shows the claims that matter, never the token.
pub struct IdentityToken {
    raw: Zeroizing<String>,
    claims: Value,
}

impl std::fmt::Debug for IdentityToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityToken")
            .field("iss", &self.claims["iss"])
            .field("sub", &self.claims["sub"])
            .finish_non_exhaustive()
    }
}

impl IdentityToken {
    /// Parse a JWT's claims (unverified: Fulcio verifies the token; we only need the subject
    /// for the proof of possession and for messages).
    pub fn new(raw: String) -> Result<Self, SignError> {
        let raw = Zeroizing::new(raw.trim().to_string());
        let parts: Vec<&str> = raw.split('.').collect();
        if parts.len() != 3 || parts[1].is_empty() {
            return Err(SignError::Token(
                "not a JWT (expected three base64url parts separated by dots)".into(),
            ));
        }
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1].trim_end_matches('='))
            .map_err(|_| SignError::Token("the JWT payload is not base64url".into()))?;
        let claims: Value = serde_json::from_slice(&payload)
            .map_err(|_| SignError::Token("the JWT payload is not JSON".into()))?;
        if !claims.is_object() {
            return Err(SignError::Token(
                "the JWT payload is not a JSON object".into(),
            ));
        }
        Ok(IdentityToken { raw, claims })
    }

    /// What Fulcio expects signed as proof of possession: the e-mail claim if there is one,
    /// else the subject.
    fn pop_subject(&self) -> Result<String, SignError> {
        self.claims["email"]
            .as_str()
            .or_else(|| self.claims["sub"].as_str())
            .map(str::to_string)
            .ok_or_else(|| {
                SignError::Token("the token has neither an email nor a sub claim".into())
            })
    }

    pub fn issuer(&self) -> Option<&str> {
        self.claims["iss"].as_str()
    }

    /// A string claim of the token (unverified).
    pub fn claim(&self, name: &str) -> Option<String> {
        self.claims[name].as_str().map(str::to_string)
    }
}

/// Where a token can come from, in order: an explicit value, a file, `SIGSTORE_ID_TOKEN`, the
/// GitHub Actions ambient provider (`ACTIONS_ID_TOKEN_REQUEST_URL`/`_TOKEN`, audience
/// `sigstore`).
pub fn obtain_token(
    explicit: Option<&str>,
    file: Option<&Path>,
) -> Result<IdentityToken, SignError> {
    if let Some(t) = explicit {
        return IdentityToken::new(t.to_string());
    }
    if let Some(p) = file {
        let bytes = super::read_bounded(p, MAX_TOKEN_BYTES, "identity token")
            .map_err(|e| SignError::Token(e.to_string()))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| SignError::Token(format!("{}: not UTF-8", p.display())))?;
        return IdentityToken::new(text);
    }
    if let Ok(t) = std::env::var("SIGSTORE_ID_TOKEN") {
        if !t.trim().is_empty() {
            return IdentityToken::new(t);
        }
    }
    if let (Ok(url), Ok(req_token)) = (
        std::env::var("ACTIONS_ID_TOKEN_REQUEST_URL"),
        std::env::var("ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
    ) {
        return github_actions_token(&url, &Zeroizing::new(req_token));
    }
    Err(SignError::NoToken)
}

fn github_actions_token(url: &str, req_token: &str) -> Result<IdentityToken, SignError> {
    let sep = if url.contains('?') { '&' } else { '?' };
    let full = format!("{url}{sep}audience=sigstore");
    let body = http_call(
        "GitHub Actions token endpoint",
        &full,
        agent()
            .get(&full)
            .header("Authorization", format!("bearer {req_token}"))
            .header("Accept", "application/json")
            .call(),
    )?;
    let v: Value = serde_json::from_slice(&body).map_err(|e| SignError::Response {
        service: "GitHub Actions token endpoint",
        url: url.into(),
        why: format!("not JSON: {e}"),
    })?;
    let t = v["value"].as_str().ok_or_else(|| SignError::Response {
        service: "GitHub Actions token endpoint",
        url: url.into(),
        why: "no \"value\" in the response".into(),
    })?;
    IdentityToken::new(t.to_string())
}

/// Like [`obtain_token`], and when none of those sources has a token and a terminal is
/// attached (stdin and stderr), the interactive browser sign-in against the signing config's
/// OIDC issuer ([`super::oidc::browser_token`]); the URL is printed on stderr.
pub fn obtain_token_or_browser(
    explicit: Option<&str>,
    file: Option<&Path>,
    services: &Services,
) -> Result<IdentityToken, SignError> {
    use std::io::IsTerminal;
    let ambient = explicit.is_some()
        || file.is_some()
        || std::env::var("SIGSTORE_ID_TOKEN").is_ok_and(|t| !t.trim().is_empty())
        || std::env::var_os("ACTIONS_ID_TOKEN_REQUEST_URL").is_some();
    if ambient || !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return obtain_token(explicit, file);
    }
    let issuer = services
        .oidc
        .as_deref()
        .unwrap_or(super::oidc::PUBLIC_GOOD_ISSUER);
    super::oidc::browser_token(
        issuer,
        super::oidc::CLIENT_ID,
        &|url| {
            eprintln!("Sign in to {issuer} in your browser; if it does not open, visit:\n  {url}");
            super::oidc::open_browser(url);
        },
        Duration::from_secs(300),
    )
}

/// Fulcio, Rekor (v1 API), optionally a TSA, and the OIDC issuer for interactive sign-in.
#[derive(Clone, Debug)]
pub struct Services {
    pub fulcio: String,
    pub rekor: String,
    pub tsa: Option<String>,
    /// The signing config's OIDC issuer (`oidcUrls`), used only by the browser flow.
    pub oidc: Option<String>,
}

impl Services {
    /// From a Sigstore `signing_config.json` (v0.2): the first valid Fulcio, Rekor v1 and TSA.
    pub fn from_signing_config(json: &str) -> Result<Self, SignError> {
        let cfg = sigstore_trust_root::SigningConfig::from_json(json)
            .map_err(|e| SignError::Config(e.to_string()))?;
        let fulcio = cfg
            .fulcio_url()
            .ok_or_else(|| SignError::Config("no valid Fulcio (caUrls) entry".into()))?;
        let rekor = cfg.rekor_url(Some(1)).ok_or_else(|| {
            SignError::Config(
                "no valid Rekor v1 (rekorTlogUrls, majorApiVersion 1) entry; Rekor v2 logs are not supported for signing yet"
                    .into(),
            )
        })?;
        Ok(Services {
            fulcio: fulcio.url.trim_end_matches('/').to_string(),
            rekor: rekor.url.trim_end_matches('/').to_string(),
            tsa: cfg
                .tsa_url()
                .map(|t| t.url.trim_end_matches('/').to_string()),
            oidc: cfg
                .oidc_url()
                .map(|t| t.url.trim_end_matches('/').to_string()),
        })
    }

    /// Sigstore's public-good instance.
    pub fn production() -> Result<Self, SignError> {
        Self::from_signing_config(sigstore_trust_root::SIGSTORE_PRODUCTION_SIGNING_CONFIG)
    }
}

/// What is signed.
pub enum Content<'a> {
    /// A blob: a `messageSignature` over its SHA-256, logged as `hashedrekord`.
    Blob(&'a [u8]),
    /// A DSSE envelope over `payload`, logged as `dsse`.
    Dsse {
        payload_type: &'a str,
        payload: &'a [u8],
    },
}

pub(super) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(HTTP_TIMEOUT))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

/// The body of a 2xx answer, bounded; anything else an error quoting (the start of) the body.
pub(super) fn http_call(
    service: &'static str,
    url: &str,
    r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Vec<u8>, SignError> {
    let mut resp = r.map_err(|e| SignError::Http {
        service,
        url: url.into(),
        why: e.to_string(),
    })?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(MAX_RESPONSE_BYTES)
        .read_to_vec()
        .map_err(|e| SignError::Http {
            service,
            url: url.into(),
            why: format!("reading the response: {e}"),
        })?;
    if !(200..300).contains(&status) {
        let text = String::from_utf8_lossy(&body);
        let excerpt: String = text.chars().take(300).collect();
        return Err(SignError::Service {
            service,
            url: url.into(),
            status,
            body: excerpt,
        });
    }
    Ok(body)
}

fn post_json(
    service: &'static str,
    url: &str,
    body: &Value,
    bearer: Option<&str>,
) -> Result<Value, SignError> {
    let mut req = agent()
        .post(url)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json");
    if let Some(t) = bearer {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let bytes = http_call(
        service,
        url,
        req.send(serde_json::to_vec(body).unwrap_or_default()),
    )?;
    serde_json::from_slice(&bytes).map_err(|e| SignError::Response {
        service,
        url: url.into(),
        why: format!("not JSON: {e}"),
    })
}

/// The DER of a PEM certificate. Lenient about line width and line endings (Fulcio
/// implementations differ), strict about the label.
fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    let body = pem
        .trim()
        .strip_prefix("-----BEGIN CERTIFICATE-----")?
        .strip_suffix("-----END CERTIFICATE-----")?;
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

fn pem_of(der_bytes: &[u8]) -> String {
    let body = b64(der_bytes);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Ask Fulcio for a certificate binding `key` to the token's identity; returns the leaf DER.
fn fulcio_certificate(
    fulcio: &str,
    token: &IdentityToken,
    key: &p256::ecdsa::SigningKey,
) -> Result<Vec<u8>, SignError> {
    let url = format!("{fulcio}/api/v2/signingCert");
    let spki = key
        .verifying_key()
        .to_public_key_der()
        .map_err(|e| SignError::Token(format!("encoding the ephemeral key: {e}")))?;
    let pem = key
        .verifying_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .map_err(|e| SignError::Token(format!("encoding the ephemeral key: {e}")))?;
    let pop: p256::ecdsa::Signature = key.sign(token.pop_subject()?.as_bytes());
    let req = json!({
        "credentials": {"oidcIdentityToken": token.raw.as_str()},
        "publicKeyRequest": {
            "publicKey": {"algorithm": "ECDSA", "content": pem},
            "proofOfPossession": b64(pop.to_der().as_bytes()),
        }
    });
    let resp = post_json("Fulcio", &url, &req, Some(token.raw.as_str()))?;
    let bad = |why: &str| SignError::Response {
        service: "Fulcio",
        url: url.clone(),
        why: why.into(),
    };
    if resp.get("signedCertificateDetachedSct").is_some() {
        return Err(bad(
            "it issued a certificate with a detached SCT; bundles need an embedded SCT",
        ));
    }
    let leaf_pem = resp["signedCertificateEmbeddedSct"]["chain"]["certificates"][0]
        .as_str()
        .ok_or_else(|| bad("no signedCertificateEmbeddedSct.chain.certificates[0]"))?;
    let leaf = pem_to_der(leaf_pem).ok_or_else(|| bad("the leaf is not a PEM certificate"))?;
    // The certificate must be for the key we hold (a Fulcio that swaps it is not trusted).
    use der::{Decode, Encode};
    let cert = x509_cert::Certificate::from_der(&leaf)
        .map_err(|e| bad(&format!("the leaf is not X.509: {e}")))?;
    let cert_spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| bad(&format!("the leaf's key: {e}")))?;
    if cert_spki != spki.as_bytes() {
        return Err(bad(
            "the certificate is for another public key than the one sent",
        ));
    }
    Ok(leaf)
}

/// Log the signature to Rekor v1; returns the bundle's `tlogEntries[0]`.
fn rekor_entry(rekor: &str, proposed: &Value) -> Result<Value, SignError> {
    let url = format!("{rekor}/api/v1/log/entries");
    let resp = post_json("Rekor", &url, proposed, None)?;
    let bad = |why: String| SignError::Response {
        service: "Rekor",
        url: url.clone(),
        why,
    };
    let entry = resp
        .as_object()
        .filter(|m| m.len() == 1)
        .and_then(|m| m.values().next())
        .ok_or_else(|| bad("expected one log entry keyed by its UUID".into()))?;
    let body_b64 = entry["body"]
        .as_str()
        .ok_or_else(|| bad("no body".into()))?;
    let body: Value = unb64(body_b64)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("the body is not base64 JSON".into()))?;
    let hex_to_b64 = |h: &str| hex::decode(h).ok().map(|d| b64(&d));
    let log_id = entry["logID"]
        .as_str()
        .and_then(hex_to_b64)
        .ok_or_else(|| bad("logID is not hex".into()))?;
    let proof = &entry["verification"]["inclusionProof"];
    let hashes = proof["hashes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|h| h.as_str().and_then(hex_to_b64))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let num = |v: &Value, what: &str| -> Result<String, SignError> {
        v.as_u64()
            .map(|n| n.to_string())
            .ok_or_else(|| bad(format!("{what} is not a non-negative integer")))
    };
    Ok(json!({
        "logIndex": num(&entry["logIndex"], "logIndex")?,
        "logId": {"keyId": log_id},
        "kindVersion": {
            "kind": body["kind"].as_str().unwrap_or_default(),
            "version": body["apiVersion"].as_str().unwrap_or_default(),
        },
        "integratedTime": num(&entry["integratedTime"], "integratedTime")?,
        "inclusionPromise": {
            "signedEntryTimestamp": entry["verification"]["signedEntryTimestamp"].as_str()
                .ok_or_else(|| bad("no signedEntryTimestamp".into()))?,
        },
        "inclusionProof": {
            "logIndex": num(&proof["logIndex"], "inclusionProof.logIndex")?,
            "rootHash": proof["rootHash"].as_str().and_then(hex_to_b64)
                .ok_or_else(|| bad("inclusionProof.rootHash is not hex".into()))?,
            "treeSize": num(&proof["treeSize"], "inclusionProof.treeSize")?,
            "hashes": hashes,
            "checkpoint": {"envelope": proof["checkpoint"].as_str()
                .ok_or_else(|| bad("no inclusionProof.checkpoint".into()))?},
        },
        "canonicalizedBody": body_b64,
    }))
}

/// (tag, whole TLV, contents, rest).
type Tlv<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

/// One DER TLV at the start of `b`. Bounded, no panics.
fn tlv(b: &[u8]) -> Option<Tlv<'_>> {
    let (&tag, rest) = b.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, &x| (a << 8) | x as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    let header = b.len() - rest.len();
    Some((tag, &b[..header + len], &rest[..len], &rest[len..]))
}

fn der_len(n: usize) -> Vec<u8> {
    if n < 0x80 {
        vec![n as u8]
    } else if n < 0x100 {
        vec![0x81, n as u8]
    } else {
        vec![0x82, (n >> 8) as u8, n as u8]
    }
}

fn der_seq(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let body: Vec<u8> = parts.concat();
    let mut out = vec![tag];
    out.extend(der_len(body.len()));
    out.extend(body);
    out
}

/// RFC 3161: timestamp the signature bytes (as Sigstore clients do); returns the whole DER
/// TimeStampResp, which is what `timestampVerificationData.rfc3161Timestamps[].signedTimestamp`
/// holds (protobuf-specs; sigstore-python rejects a bare token).
fn rfc3161_timestamp(tsa: &str, signature: &[u8]) -> Result<Vec<u8>, SignError> {
    const SHA256_ALG: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
    ];
    let digest = sha2::Sha256::digest(signature);
    let imprint = der_seq(0x30, &[SHA256_ALG, &der_seq(0x04, &[&digest])]);
    let mut nonce = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
    nonce[0] &= 0x7f; // positive INTEGER without a leading zero byte
    nonce[0] |= 0x01;
    let req = der_seq(
        0x30,
        &[
            &[0x02, 0x01, 0x01],
            &imprint,
            &der_seq(0x02, &[&nonce]),
            &[0x01, 0x01, 0xff],
        ],
    );
    let body = http_call(
        "TSA",
        tsa,
        agent()
            .post(tsa)
            .header("Content-Type", "application/timestamp-query")
            .header("Accept", "application/timestamp-reply")
            .send(req),
    )?;
    let bad = |why: &str| SignError::Response {
        service: "TSA",
        url: tsa.into(),
        why: why.into(),
    };
    // TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken ContentInfo OPTIONAL }
    let (tag, _, resp, _) = tlv(&body).ok_or_else(|| bad("not DER"))?;
    let (stag, _, status_info, rest) = tlv(resp).ok_or_else(|| bad("no PKIStatusInfo"))?;
    let (itag, _, status, _) = tlv(status_info).ok_or_else(|| bad("no PKIStatus"))?;
    if tag != 0x30 || stag != 0x30 || itag != 0x02 {
        return Err(bad("not an RFC 3161 TimeStampResp"));
    }
    if !matches!(status, [0] | [1]) {
        return Err(bad(&format!(
            "the request was not granted (PKIStatus {status:?})"
        )));
    }
    let (ttag, _, _, _) = tlv(rest).ok_or_else(|| bad("granted, but no timeStampToken"))?;
    if ttag != 0x30 {
        return Err(bad("the timeStampToken is not a ContentInfo"));
    }
    let (_, whole, _, _) = tlv(&body).ok_or_else(|| bad("not DER"))?;
    Ok(whole.to_vec())
}

/// Sign `content` keylessly and return the v0.3 bundle (JSON), after verifying it against
/// `root` with the token's own identity and issuer. The ephemeral key is dropped (zeroized) on
/// return.
pub fn sign(
    content: Content<'_>,
    token: &IdentityToken,
    services: &Services,
    root: &TrustRoot,
) -> Result<Value, SignError> {
    let key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let leaf = fulcio_certificate(&services.fulcio, token, &key)?;
    let cert_pem_b64 = b64(pem_of(&leaf).as_bytes());
    let (content_json, proposed, sig_bytes, artifact_digest) = match content {
        Content::Blob(data) => {
            let digest: [u8; 32] = sha2::Sha256::digest(data).into();
            let sig: p256::ecdsa::Signature = key
                .sign_prehash(&digest)
                .map_err(|e| SignError::Token(format!("signing failed: {e}")))?;
            let sig = sig.to_der().as_bytes().to_vec();
            (
                json!({"messageSignature": {
                    "messageDigest": {"algorithm": "SHA2_256", "digest": b64(&digest)},
                    "signature": b64(&sig),
                }}),
                json!({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
                    "data": {"hash": {"algorithm": "sha256", "value": hex::encode(digest)}},
                    "signature": {"content": b64(&sig), "publicKey": {"content": cert_pem_b64}},
                }}),
                sig,
                digest,
            )
        }
        Content::Dsse {
            payload_type,
            payload,
        } => {
            let sig: p256::ecdsa::Signature = key.sign(&dsse::pae(payload_type, payload));
            let sig = sig.to_der().as_bytes().to_vec();
            let envelope = json!({
                "payload": b64(payload),
                "payloadType": payload_type,
                "signatures": [{"sig": b64(&sig), "keyid": ""}],
            });
            let subject = subject_digest(payload).unwrap_or_default();
            (
                json!({"dsseEnvelope": envelope}),
                json!({"apiVersion": "0.0.1", "kind": "dsse", "spec": {"proposedContent": {
                    "envelope": envelope.to_string(),
                    "verifiers": [cert_pem_b64],
                }}}),
                sig,
                subject,
            )
        }
    };
    drop(key);
    let timestamps = match &services.tsa {
        Some(tsa) => vec![json!({"signedTimestamp": b64(&rfc3161_timestamp(tsa, &sig_bytes)?)})],
        None => Vec::new(),
    };
    let entry = rekor_entry(&services.rekor, &proposed)?;
    let mut bundle = json!({
        "mediaType": crate::attest::bundle::MEDIA_TYPE_V03,
        "verificationMaterial": {
            "certificate": {"rawBytes": b64(&leaf)},
            "tlogEntries": [entry],
            "timestampVerificationData": {"rfc3161Timestamps": timestamps},
        },
    });
    if let (Some(obj), Some(c)) = (bundle.as_object_mut(), content_json.as_object()) {
        for (k, v) in c {
            obj.insert(k.clone(), v.clone());
        }
    }
    self_check(&bundle, artifact_digest, token, root)?;
    Ok(bundle)
}

/// The SHA-256 subject digest of an in-toto statement (what a DSSE bundle is verified over).
fn subject_digest(payload: &[u8]) -> Option<[u8; 32]> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    let h = v["subject"][0]["digest"]["sha256"].as_str()?;
    hex::decode(h).ok()?.try_into().ok()
}

/// Verify the new bundle as any verifier would: a broken service never yields a bundle.
fn self_check(
    bundle: &Value,
    digest: [u8; 32],
    token: &IdentityToken,
    root: &TrustRoot,
) -> Result<(), SignError> {
    let fail = |source| SignError::SelfCheck {
        root: root.source.clone(),
        source,
    };
    let parsed = super::parse_bundle(bundle.to_string().as_bytes()).map_err(fail)?;
    let v = super::verify(
        &parsed,
        Artifact::Sha256(digest),
        &Expect::Identity {
            identity: Matcher::regex("identity", ".*").map_err(fail)?,
            issuer: Matcher::regex("issuer", ".*").map_err(fail)?,
        },
        root,
    )
    .map_err(fail)?;
    if let Some(iss) = token.issuer() {
        if v.issuer.as_deref() != Some(iss) {
            return Err(fail(KeylessError::Issuer {
                expected: format!("{iss:?} (the token's issuer)"),
                actual: v.issuer.unwrap_or_default(),
            }));
        }
    }
    Ok(())
}

/// Errors of [`sign_model_keyless`]: hashing and writing, or the keyless exchange.
#[derive(Debug, thiserror::Error)]
pub enum ModelSignError {
    #[error(transparent)]
    Attest(#[from] crate::attest::Error),
    #[error(transparent)]
    Keyless(#[from] SignError),
}

/// `mlsign sign PATH --keyless`: hash the tree exactly as the key and certificate methods do
/// (same statement, same ignore rules, bundle beside the model and recorded when inside it),
/// then sign the statement keylessly. The bundle is what `model_signing sign sigstore` writes.
pub fn sign_model_keyless(
    path: &Path,
    opts: &crate::attest::SignOptions,
    token: &IdentityToken,
    services: &Services,
    root: &TrustRoot,
    progress: &dyn crate::digest::Progress,
) -> Result<crate::attest::SignOutcome, ModelSignError> {
    use crate::attest::sign::{inside, resolve_output, write_atomic};
    use crate::attest::Error;
    let model = std::fs::canonicalize(path)
        .map_err(|e| Error::Digest(crate::digest::Error::io(path, e)))?;
    let bundle_path = resolve_output(&opts.bundle_path)?;
    if bundle_path == model {
        return Err(Error::io(
            &opts.bundle_path,
            std::io::Error::other("the bundle path is the model itself"),
        )
        .into());
    }
    if bundle_path.exists() && !opts.force {
        return Err(Error::Exists { path: bundle_path }.into());
    }
    let mut config = opts.config.clone();
    if let Some(rel) = inside(&model, &bundle_path) {
        config.ignore_paths.push(rel);
    }
    config.ignore_paths.sort();
    config.ignore_paths.dedup();
    let manifest = crate::digest::Manifest::from_path_with(&model, &config, progress)
        .map_err(Error::Digest)?;
    if manifest.file_count == 0 {
        return Err(Error::Digest(crate::digest::Error::Empty { path: path.into() }).into());
    }
    let subject = model
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("model")
        .to_string();
    let payload =
        crate::attest::statement::model_statement(&subject, opts.kind, &manifest, &config);
    let bundle = sign(
        Content::Dsse {
            payload_type: crate::attest::bundle::IN_TOTO_PAYLOAD_TYPE,
            payload: &payload,
        },
        token,
        services,
        root,
    )?;
    write_atomic(&bundle_path, bundle.to_string().as_bytes(), opts.force)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bundle_path, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::io(&bundle_path, e))?;
    }
    Ok(crate::attest::SignOutcome {
        bundle: bundle_path,
        subject,
        kind: opts.kind,
        root_digest: manifest.root_digest_hex(),
        files: manifest.file_count,
        resources: manifest.resources().len(),
        bytes: manifest.total_bytes,
        algorithm: config.algorithm.name(),
        ignore_paths: config.ignore_paths,
        source: Default::default(),
        warnings: Vec::new(),
        stat_cache_miss: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &Value) -> String {
        let e = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}.sig", e(&json!({"alg": "none"})), e(claims))
    }

    #[test]
    fn token_claims_and_redaction() {
        let t = IdentityToken::new(jwt(&json!({"sub": "s", "iss": "i", "email": "a@b"}))).unwrap();
        assert_eq!(t.pop_subject().unwrap(), "a@b");
        assert_eq!(t.issuer(), Some("i"));
        let dbg = format!("{t:?}");
        assert!(!dbg.contains(".sig") && !dbg.contains(t.raw.as_str()));
        let t = IdentityToken::new(jwt(&json!({"sub": "s"}))).unwrap();
        assert_eq!(t.pop_subject().unwrap(), "s");
        for bad in ["", "a.b", "a.!!!.c", "a..c", "x.eyJ9.y"] {
            let e = IdentityToken::new(bad.into()).unwrap_err().to_string();
            assert!(e.starts_with("identity token:"), "{e}");
        }
    }

    #[test]
    fn pem_certificates_in_any_line_width() {
        let der = vec![0x30, 0x03, 0x02, 0x01, 0x07];
        assert_eq!(pem_to_der(&pem_of(&der)), Some(der.clone()));
        let crlf = format!(
            "-----BEGIN CERTIFICATE-----\r\n{}\r\n-----END CERTIFICATE-----\r\n",
            b64(&der)
        );
        assert_eq!(pem_to_der(&crlf), Some(der.clone()));
        assert_eq!(pem_to_der(&crlf.replace("CERTIFICATE", "PUBLIC KEY")), None);
        assert_eq!(pem_to_der("garbage"), None);
    }

    #[test]
    fn tlv_reader_is_bounded() {
        assert_eq!(tlv(&[0x30, 0x00]).map(|t| t.0), Some(0x30));
        assert!(tlv(&[0x30, 0x05, 1]).is_none());
        assert!(tlv(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_none());
        assert!(tlv(&[0x30]).is_none());
        assert!(tlv(&[]).is_none());
        let long = [&[0x04u8, 0x81, 0x80][..], &[7u8; 0x80]].concat();
        let (_, whole, body, rest) = tlv(&long).unwrap();
        assert_eq!((whole.len(), body.len(), rest.len()), (0x83, 0x80, 0));
        assert_eq!(der_seq(0x30, &[&[1u8; 200]])[..3], [0x30, 0x81, 200]);
    }

    #[test]
    fn production_signing_config_parses() {
        let s = Services::production().unwrap();
        assert!(s.fulcio.starts_with("https://"), "{s:?}");
        assert!(s.rekor.starts_with("https://"), "{s:?}");
    }
}
