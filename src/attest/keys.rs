//! Signing and verifying keys: ECDSA P-256/P-384/P-521 (the curve fixes the hash, as Sigstore
//! and model_signing require) and Ed25519. PEM in, PEM out; secrets are zeroized on drop and never
//! printed.

use super::Error;
use ecdsa::signature::{Signer as _, Verifier as _};
use pkcs8::der::Decode;
use pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use spki::DecodePublicKey;
use zeroize::Zeroizing;

const OID_EC_PUBLIC_KEY: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.3.132.0.35");
const OID_ED25519: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_RSA: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// A message produced on demand, the same bytes every time it is written: lets a signer sign
/// the DSSE encoding of a statement too large to hold (`sign_message`, `verify_message`).
pub trait Message {
    fn write_to(&self, w: &mut dyn std::io::Write) -> std::io::Result<()>;
}

impl Message for &[u8] {
    fn write_to(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        w.write_all(self)
    }
}

/// Feeds a hash whatever is written.
struct DigestWriter<'a, D>(&'a mut D);

impl<D: sha2::Digest> std::io::Write for DigestWriter<'_, D> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct StreamWriter<'a>(&'a mut ed25519_dalek::StreamVerifier);

impl std::io::Write for StreamWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The hash of a streamed message.
pub(crate) fn digest_message<D: sha2::Digest>(msg: &dyn Message) -> std::io::Result<Vec<u8>> {
    let mut d = D::new();
    msg.write_to(&mut DigestWriter(&mut d))?;
    Ok(d.finalize().to_vec())
}

/// The algorithm family of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    P256,
    P384,
    P521,
    Ed25519,
}

impl KeyKind {
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::P256 => "ECDSA P-256 / SHA-256",
            KeyKind::P384 => "ECDSA P-384 / SHA-384",
            KeyKind::P521 => "ECDSA P-521 / SHA-512",
            KeyKind::Ed25519 => "Ed25519",
        }
    }
}

/// A private key able to sign.
pub enum SigningKey {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    P521(p521::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

/// A public key able to verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyingKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    P521(P521Key),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// p521's verifying key lacks `PartialEq`/`Debug`; keep the SEC1 bytes beside it.
#[derive(Clone)]
pub struct P521Key {
    pub(crate) key: p521::ecdsa::VerifyingKey,
    sec1: Vec<u8>,
}
impl PartialEq for P521Key {
    fn eq(&self, o: &Self) -> bool {
        self.sec1 == o.sec1
    }
}
impl Eq for P521Key {}
impl std::fmt::Debug for P521Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "P521Key({})", hex::encode(&self.sec1))
    }
}

fn unsupported_curve(oid: Option<pkcs8::ObjectIdentifier>) -> Error {
    Error::UnsupportedKey(match oid {
        Some(o) => {
            format!("elliptic curve {o} is not supported; use P-256, P-384, P-521 or Ed25519")
        }
        None => "EC key without a named curve; re-export it with a named curve".into(),
    })
}

impl SigningKey {
    /// Generate a fresh key.
    pub fn generate(kind: KeyKind) -> SigningKey {
        let mut rng = rand_core::OsRng;
        match kind {
            KeyKind::P256 => SigningKey::P256(p256::ecdsa::SigningKey::random(&mut rng)),
            KeyKind::P384 => SigningKey::P384(p384::ecdsa::SigningKey::random(&mut rng)),
            KeyKind::P521 => SigningKey::P521(p521::ecdsa::SigningKey::random(&mut rng)),
            KeyKind::Ed25519 => SigningKey::Ed25519(ed25519_dalek::SigningKey::generate(&mut rng)),
        }
    }

    pub fn kind(&self) -> KeyKind {
        match self {
            SigningKey::P256(_) => KeyKind::P256,
            SigningKey::P384(_) => KeyKind::P384,
            SigningKey::P521(_) => KeyKind::P521,
            SigningKey::Ed25519(_) => KeyKind::Ed25519,
        }
    }

    /// Parse a PEM private key. `passphrase` is asked for only when the key is encrypted.
    pub fn from_pem(
        pem: &str,
        passphrase: &mut dyn FnMut() -> Result<Zeroizing<String>, Error>,
    ) -> Result<SigningKey, Error> {
        let (label, doc) = pkcs8::SecretDocument::from_pem(pem.trim_start()).map_err(|e| {
            if pem.contains("Proc-Type: 4,ENCRYPTED") {
                Error::UnsupportedKey(
                    "legacy OpenSSL-encrypted EC key (Proc-Type header); convert it with \
                     `openssl pkcs8 -topk8 -in KEY -out KEY.p8` and use the PKCS#8 file"
                        .into(),
                )
            } else if pem.contains("OPENSSH PRIVATE KEY") {
                Error::UnsupportedKey(
                    "OpenSSH key format; convert it with `ssh-keygen -p -m PKCS8 -f KEY`".into(),
                )
            } else {
                Error::KeyFormat(format!("not a PEM private key ({e})"))
            }
        })?;
        match label {
            "PRIVATE KEY" => Self::from_pkcs8_der(doc.as_bytes()),
            "ENCRYPTED PRIVATE KEY" => {
                let enc = pkcs8::EncryptedPrivateKeyInfo::from_der(doc.as_bytes())
                    .map_err(|e| Error::KeyFormat(format!("malformed encrypted PKCS#8 key ({e})")))?;
                let pass = passphrase()?;
                let plain = enc.decrypt(pass.as_bytes()).map_err(|_| {
                    Error::KeyFormat(
                        "cannot decrypt the private key: wrong passphrase, or an encryption \
                         scheme other than PBES2 (PBKDF2/scrypt + AES-CBC)"
                            .into(),
                    )
                })?;
                Self::from_pkcs8_der(plain.as_bytes())
            }
            "EC PRIVATE KEY" => {
                let k = sec1::EcPrivateKey::from_der(doc.as_bytes())
                    .map_err(|e| Error::KeyFormat(format!("malformed SEC1 EC key ({e})")))?;
                let curve = k.parameters.and_then(|p| p.named_curve());
                Self::from_scalar(curve, k.private_key)
            }
            other => Err(Error::KeyFormat(format!(
                "PEM block '{other}' is not a private key (expected PRIVATE KEY, ENCRYPTED PRIVATE KEY or EC PRIVATE KEY)"
            ))),
        }
    }

    fn from_scalar(curve: Option<pkcs8::ObjectIdentifier>, d: &[u8]) -> Result<SigningKey, Error> {
        let bad = |_| Error::KeyFormat("invalid private scalar for the curve".into());
        Ok(match curve {
            Some(c) if c == OID_P256 => {
                SigningKey::P256(p256::ecdsa::SigningKey::from_slice(d).map_err(bad)?)
            }
            Some(c) if c == OID_P384 => {
                SigningKey::P384(p384::ecdsa::SigningKey::from_slice(d).map_err(bad)?)
            }
            Some(c) if c == OID_P521 => {
                SigningKey::P521(p521::ecdsa::SigningKey::from_slice(d).map_err(bad)?)
            }
            other => return Err(unsupported_curve(other)),
        })
    }

    fn from_pkcs8_der(der: &[u8]) -> Result<SigningKey, Error> {
        let info = pkcs8::PrivateKeyInfo::from_der(der)
            .map_err(|e| Error::KeyFormat(format!("malformed PKCS#8 key ({e})")))?;
        let alg = info.algorithm.oid;
        if alg == OID_ED25519 {
            let k = ed25519_dalek::SigningKey::from_pkcs8_der(der)
                .map_err(|e| Error::KeyFormat(format!("malformed Ed25519 key ({e})")))?;
            return Ok(SigningKey::Ed25519(k));
        }
        if alg == OID_RSA {
            return Err(Error::UnsupportedKey(
                "RSA keys are not supported by the OpenSSF model signing format; use ECDSA P-256"
                    .into(),
            ));
        }
        if alg != OID_EC_PUBLIC_KEY {
            return Err(Error::UnsupportedKey(format!(
                "key algorithm {alg} is not supported"
            )));
        }
        let curve = info.algorithm.parameters_oid().ok();
        let k = sec1::EcPrivateKey::from_der(info.private_key)
            .map_err(|e| Error::KeyFormat(format!("malformed EC key inside PKCS#8 ({e})")))?;
        Self::from_scalar(curve, k.private_key)
    }

    /// The matching public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        match self {
            SigningKey::P256(k) => VerifyingKey::P256(*k.verifying_key()),
            SigningKey::P384(k) => VerifyingKey::P384(*k.verifying_key()),
            SigningKey::P521(k) => {
                let v = p521::ecdsa::VerifyingKey::from(k);
                let sec1 = v.to_encoded_point(false).as_bytes().to_vec();
                VerifyingKey::P521(P521Key { key: v, sec1 })
            }
            SigningKey::Ed25519(k) => VerifyingKey::Ed25519(k.verifying_key()),
        }
    }

    /// Sign `msg`: DER ECDSA with the curve's hash, or a raw Ed25519 signature.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        match self {
            SigningKey::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign(msg);
                s.to_der().as_bytes().to_vec()
            }
            SigningKey::P384(k) => {
                let s: p384::ecdsa::Signature = k.sign(msg);
                s.to_der().as_bytes().to_vec()
            }
            SigningKey::P521(k) => {
                let s: p521::ecdsa::Signature = k.sign(msg);
                s.to_der().as_bytes().to_vec()
            }
            SigningKey::Ed25519(k) => k.sign(msg).to_bytes().to_vec(),
        }
    }

    /// Sign a message produced on demand (see [`Message`]): the same signature [`Self::sign`]
    /// gives over its bytes, without ever holding them. ECDSA hashes the stream once; Ed25519
    /// (whose nonce depends on the whole message) reads it twice.
    pub fn sign_message(&self, msg: &dyn Message) -> Result<Vec<u8>, Error> {
        use ecdsa::signature::hazmat::{PrehashSigner, RandomizedPrehashSigner};
        let failed = |e: &dyn std::fmt::Display| Error::KeyFormat(format!("signing failed: {e}"));
        Ok(match self {
            SigningKey::P256(k) => {
                let d = digest_message::<sha2::Sha256>(msg).map_err(|e| failed(&e))?;
                let s: p256::ecdsa::Signature = k.sign_prehash(&d).map_err(|e| failed(&e))?;
                s.to_der().as_bytes().to_vec()
            }
            SigningKey::P384(k) => {
                let d = digest_message::<sha2::Sha384>(msg).map_err(|e| failed(&e))?;
                let s: p384::ecdsa::Signature = k.sign_prehash(&d).map_err(|e| failed(&e))?;
                s.to_der().as_bytes().to_vec()
            }
            SigningKey::P521(k) => {
                let d = digest_message::<sha2::Sha512>(msg).map_err(|e| failed(&e))?;
                let s: p521::ecdsa::Signature = k
                    .sign_prehash_with_rng(&mut rand_core::OsRng, &d)
                    .map_err(|e| failed(&e))?;
                s.to_der().as_bytes().to_vec()
            }
            SigningKey::Ed25519(k) => {
                let esk = ed25519_dalek::hazmat::ExpandedSecretKey::from(k.as_bytes());
                ed25519_dalek::hazmat::raw_sign_byupdate::<sha2::Sha512, _>(
                    &esk,
                    |h| {
                        msg.write_to(&mut DigestWriter(h))
                            .map_err(|_| ed25519_dalek::SignatureError::new())
                    },
                    &k.verifying_key(),
                )
                .map_err(|e| failed(&e))?
                .to_bytes()
                .to_vec()
            }
        })
    }

    /// PKCS#8 PEM, encrypted (PBES2: PBKDF2-HMAC-SHA256 600k rounds + AES-256-CBC) when a
    /// passphrase is given.
    pub fn to_pkcs8_pem(&self, passphrase: Option<&str>) -> Result<Zeroizing<String>, Error> {
        let doc = match self {
            SigningKey::P256(k) => k.to_pkcs8_der(),
            SigningKey::P384(k) => k.to_pkcs8_der(),
            SigningKey::P521(k) => p521::SecretKey::from_bytes(&k.to_bytes())
                .map_err(|_| Error::KeyFormat("invalid P-521 scalar".into()))?
                .to_pkcs8_der(),
            SigningKey::Ed25519(k) => k.to_pkcs8_der(),
        }
        .map_err(|e| Error::KeyFormat(format!("cannot encode key ({e})")))?;
        match passphrase {
            None => doc
                .to_pem("PRIVATE KEY", LineEnding::LF)
                .map_err(|e| Error::KeyFormat(format!("cannot encode key ({e})"))),
            Some(p) => {
                let mut salt = [0u8; 16];
                let mut iv = [0u8; 16];
                rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut salt);
                rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut iv);
                let params =
                    pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(600_000, &salt, &iv)
                        .map_err(|e| Error::KeyFormat(format!("cannot encrypt key ({e})")))?;
                let info = pkcs8::PrivateKeyInfo::try_from(doc.as_bytes())
                    .map_err(|e| Error::KeyFormat(format!("cannot encrypt key ({e})")))?;
                let enc = info
                    .encrypt_with_params(params, p)
                    .map_err(|e| Error::KeyFormat(format!("cannot encrypt key ({e})")))?;
                enc.to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
                    .map_err(|e| Error::KeyFormat(format!("cannot encode key ({e})")))
            }
        }
    }
}

impl VerifyingKey {
    pub fn kind(&self) -> KeyKind {
        match self {
            VerifyingKey::P256(_) => KeyKind::P256,
            VerifyingKey::P384(_) => KeyKind::P384,
            VerifyingKey::P521(_) => KeyKind::P521,
            VerifyingKey::Ed25519(_) => KeyKind::Ed25519,
        }
    }

    /// Parse a PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    pub fn from_pem(pem: &str) -> Result<VerifyingKey, Error> {
        let (label, doc) = spki::Document::from_pem(pem.trim_start())
            .map_err(|e| Error::KeyFormat(format!("not a PEM public key ({e})")))?;
        if label != "PUBLIC KEY" {
            return Err(Error::KeyFormat(format!(
                "PEM block '{label}' is not a public key (expected PUBLIC KEY)"
            )));
        }
        Self::from_spki_der(doc.as_bytes())
    }

    /// Parse DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<VerifyingKey, Error> {
        let info = spki::SubjectPublicKeyInfoRef::from_der(der)
            .map_err(|e| Error::KeyFormat(format!("malformed public key ({e})")))?;
        let alg = info.algorithm.oid;
        let bad = |e: &dyn std::fmt::Display| Error::KeyFormat(format!("invalid public key ({e})"));
        if alg == OID_ED25519 {
            return Ok(VerifyingKey::Ed25519(
                ed25519_dalek::VerifyingKey::from_public_key_der(der).map_err(|e| bad(&e))?,
            ));
        }
        if alg == OID_RSA {
            return Err(Error::UnsupportedKey(
                "RSA keys are not supported by the OpenSSF model signing format".into(),
            ));
        }
        if alg != OID_EC_PUBLIC_KEY {
            return Err(Error::UnsupportedKey(format!(
                "key algorithm {alg} is not supported"
            )));
        }
        let curve = info.algorithm.parameters_oid().ok();
        Ok(match curve {
            Some(c) if c == OID_P256 => VerifyingKey::P256(
                p256::ecdsa::VerifyingKey::from_public_key_der(der).map_err(|e| bad(&e))?,
            ),
            Some(c) if c == OID_P384 => VerifyingKey::P384(
                p384::ecdsa::VerifyingKey::from_public_key_der(der).map_err(|e| bad(&e))?,
            ),
            Some(c) if c == OID_P521 => {
                let pk = p521::PublicKey::from_public_key_der(der).map_err(|e| bad(&e))?;
                let key =
                    p521::ecdsa::VerifyingKey::from_affine(*pk.as_affine()).map_err(|e| bad(&e))?;
                let sec1 = key.to_encoded_point(false).as_bytes().to_vec();
                VerifyingKey::P521(P521Key { key, sec1 })
            }
            other => return Err(unsupported_curve(other)),
        })
    }

    /// DER SubjectPublicKeyInfo with an uncompressed point (what OpenSSL/cryptography emit).
    pub fn to_spki_der(&self) -> Vec<u8> {
        let r = match self {
            VerifyingKey::P256(k) => k.to_public_key_der(),
            VerifyingKey::P384(k) => k.to_public_key_der(),
            VerifyingKey::P521(k) => p521::PublicKey::from_sec1_bytes(&k.sec1)
                .map_err(|_| spki::Error::KeyMalformed)
                .and_then(|p| p.to_public_key_der()),
            VerifyingKey::Ed25519(k) => k.to_public_key_der(),
        };
        // Encoding a key we parsed or generated cannot fail.
        r.map(|d| d.as_bytes().to_vec()).unwrap_or_default()
    }

    /// Canonical PEM: 64-column base64 between `PUBLIC KEY` markers, ending in a newline.
    pub fn to_pem(&self) -> String {
        let b64 = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            self.to_spki_der(),
        );
        let mut s = String::from("-----BEGIN PUBLIC KEY-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            s.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            s.push('\n');
        }
        s.push_str("-----END PUBLIC KEY-----\n");
        s
    }

    /// model_signing's key hint: lowercase hex SHA-256 of the canonical PEM.
    pub fn hint(&self) -> String {
        hex::encode(crate::digest::sha256(self.to_pem().as_bytes()))
    }

    /// [`Self::verify`] over a message produced on demand.
    pub fn verify_message(&self, msg: &dyn Message, sig: &[u8]) -> bool {
        use ecdsa::signature::hazmat::PrehashVerifier;
        match self {
            VerifyingKey::P256(k) => p256::ecdsa::Signature::from_der(sig).is_ok_and(|s| {
                digest_message::<sha2::Sha256>(msg).is_ok_and(|d| k.verify_prehash(&d, &s).is_ok())
            }),
            VerifyingKey::P384(k) => p384::ecdsa::Signature::from_der(sig).is_ok_and(|s| {
                digest_message::<sha2::Sha384>(msg).is_ok_and(|d| k.verify_prehash(&d, &s).is_ok())
            }),
            VerifyingKey::P521(k) => p521::ecdsa::Signature::from_der(sig).is_ok_and(|s| {
                digest_message::<sha2::Sha512>(msg)
                    .is_ok_and(|d| k.key.verify_prehash(&d, &s).is_ok())
            }),
            VerifyingKey::Ed25519(k) => {
                let Ok(s) = ed25519_dalek::Signature::from_slice(sig) else {
                    return false;
                };
                // As verify_strict: no small-order key (the stream checks the equation).
                if k.is_weak() {
                    return false;
                }
                let Ok(mut v) = k.verify_stream(&s) else {
                    return false;
                };
                msg.write_to(&mut StreamWriter(&mut v)).is_ok() && v.finalize_and_verify().is_ok()
            }
        }
    }

    /// Verify `sig` over `msg`. ECDSA signatures are DER (high-S accepted, as OpenSSL does).
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match self {
            VerifyingKey::P256(k) => {
                p256::ecdsa::Signature::from_der(sig).is_ok_and(|s| k.verify(msg, &s).is_ok())
            }
            VerifyingKey::P384(k) => {
                p384::ecdsa::Signature::from_der(sig).is_ok_and(|s| k.verify(msg, &s).is_ok())
            }
            VerifyingKey::P521(k) => {
                p521::ecdsa::Signature::from_der(sig).is_ok_and(|s| k.key.verify(msg, &s).is_ok())
            }
            VerifyingKey::Ed25519(k) => ed25519_dalek::Signature::from_slice(sig)
                .is_ok_and(|s| k.verify_strict(msg, &s).is_ok()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nopass() -> Result<Zeroizing<String>, Error> {
        panic!("no passphrase expected")
    }

    #[test]
    fn roundtrip_every_kind() {
        for kind in [
            KeyKind::P256,
            KeyKind::P384,
            KeyKind::P521,
            KeyKind::Ed25519,
        ] {
            let k = SigningKey::generate(kind);
            let pem = k.to_pkcs8_pem(None).unwrap();
            let k2 = SigningKey::from_pem(&pem, &mut nopass).unwrap();
            let vk = k2.verifying_key();
            assert_eq!(vk, k.verifying_key());
            let sig = k2.sign(b"msg");
            assert!(vk.verify(b"msg", &sig), "{kind:?}");
            assert!(!vk.verify(b"msh", &sig), "{kind:?}");
            let vk2 = VerifyingKey::from_pem(&vk.to_pem()).unwrap();
            assert_eq!(vk2, vk);
            assert_eq!(vk2.hint().len(), 64);
        }
    }

    #[test]
    fn encrypted_key_needs_right_passphrase() {
        let k = SigningKey::generate(KeyKind::P256);
        let pem = k.to_pkcs8_pem(Some("s3cret")).unwrap();
        assert!(pem.contains("ENCRYPTED PRIVATE KEY"));
        let mut good = || Ok(Zeroizing::new("s3cret".to_string()));
        let k2 = SigningKey::from_pem(&pem, &mut good).unwrap();
        assert_eq!(k2.verifying_key(), k.verifying_key());
        let mut bad = || Ok(Zeroizing::new("nope".to_string()));
        let err = SigningKey::from_pem(&pem, &mut bad)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("wrong passphrase"), "{err}");
        assert!(!err.contains("nope"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for s in [
            "",
            "hello",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ] {
            assert!(SigningKey::from_pem(s, &mut nopass).is_err());
            assert!(VerifyingKey::from_pem(s).is_err());
        }
    }
}
