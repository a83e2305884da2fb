//! A `sigstore-crypto` provider on RustCrypto only (ECDSA P-256/P-384, Ed25519, RSA PKCS#1 v1.5
//! and PSS, SHA-2), so the Sigstore verifier adds no C crypto stack (its default is aws-lc) and
//! mlsign has one crypto stack; ring is left to rustls as its TLS provider.

use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use sha2::Digest;
use sigstore_crypto::provider::{CryptoProvider, HashContext, SigningKeyPair};
use sigstore_crypto::{Error, KeyAlgorithm, Result, SigningScheme};
use sigstore_types::HashAlgorithm;

/// The provider; install once with [`install`].
#[derive(Debug)]
pub struct RustCryptoProvider;

static PROVIDER: RustCryptoProvider = RustCryptoProvider;

/// Install the provider process-wide (idempotent; another installed provider is kept).
pub fn install() {
    let _ = sigstore_crypto::provider::install_default_provider(&PROVIDER);
}

enum Hasher {
    S256(sha2::Sha256),
    S384(sha2::Sha384),
    S512(sha2::Sha512),
}

impl HashContext for Hasher {
    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::S256(h) => h.update(data),
            Hasher::S384(h) => h.update(data),
            Hasher::S512(h) => h.update(data),
        }
    }
    fn finalize(self: Box<Self>) -> Vec<u8> {
        match *self {
            Hasher::S256(h) => h.finalize().to_vec(),
            Hasher::S384(h) => h.finalize().to_vec(),
            Hasher::S512(h) => h.finalize().to_vec(),
        }
    }
}

fn digest(alg: HashAlgorithm, data: &[u8]) -> Result<Vec<u8>> {
    Ok(match alg {
        HashAlgorithm::Sha2256 => sha2::Sha256::digest(data).to_vec(),
        HashAlgorithm::Sha2384 => sha2::Sha384::digest(data).to_vec(),
        HashAlgorithm::Sha2512 => sha2::Sha512::digest(data).to_vec(),
        other => {
            return Err(Error::UnsupportedAlgorithm(format!(
                "cannot compute {other} digests"
            )))
        }
    })
}

fn invalid(scheme: SigningScheme) -> Error {
    Error::Verification(format!("{} signature invalid", scheme.name()))
}

/// ECDSA over a digest; DER signatures, as Sigstore encodes them.
fn ecdsa_prehash(scheme: SigningScheme, key: &[u8], digest: &[u8], sig: &[u8]) -> Result<()> {
    let ok = match scheme {
        SigningScheme::EcdsaP256Sha256 | SigningScheme::EcdsaP256Sha384 => {
            let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(key)
                .map_err(|_| Error::InvalidKeyFormat("not a P-256 point".into()))?;
            let s = p256::ecdsa::Signature::from_der(sig).map_err(|_| invalid(scheme))?;
            vk.verify_prehash(digest, &s).is_ok()
        }
        SigningScheme::EcdsaP384Sha256 | SigningScheme::EcdsaP384Sha384 => {
            let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(key)
                .map_err(|_| Error::InvalidKeyFormat("not a P-384 point".into()))?;
            let s = p384::ecdsa::Signature::from_der(sig).map_err(|_| invalid(scheme))?;
            vk.verify_prehash(digest, &s).is_ok()
        }
        _ => return Err(Error::UnsupportedAlgorithm(format!("{scheme:?}"))),
    };
    if ok {
        Ok(())
    } else {
        Err(invalid(scheme))
    }
}

/// What an RSA signature covers: the message, or its digest (hashedrekord).
#[derive(Clone, Copy)]
enum Signed<'a> {
    Message(&'a [u8]),
    Digest(&'a [u8]),
}

/// The RSA schemes: (PSS?, hash).
fn rsa_scheme(scheme: SigningScheme) -> Option<(bool, HashAlgorithm)> {
    Some(match scheme {
        SigningScheme::RsaPkcs1Sha256 => (false, HashAlgorithm::Sha2256),
        SigningScheme::RsaPkcs1Sha384 => (false, HashAlgorithm::Sha2384),
        SigningScheme::RsaPkcs1Sha512 => (false, HashAlgorithm::Sha2512),
        SigningScheme::RsaPssSha256 => (true, HashAlgorithm::Sha2256),
        SigningScheme::RsaPssSha384 => (true, HashAlgorithm::Sha2384),
        SigningScheme::RsaPssSha512 => (true, HashAlgorithm::Sha2512),
        _ => return None,
    })
}

/// Modulus sizes accepted, as Sigstore's default provider (aws-lc's and ring's
/// `RSA_*_2048_8192_*`) accepts them.
const RSA_MIN_BITS: usize = 2048;
const RSA_MAX_BITS: usize = 8192;

/// A PKCS#1 `RSAPublicKey` (DER), 2048 to 8192 bits, odd exponent from 3 to 2^33-1.
fn rsa_key(der: &[u8]) -> Result<rsa::RsaPublicKey> {
    use rsa::pkcs1::der::Decode;
    use rsa::traits::PublicKeyParts;
    let k = rsa::pkcs1::RsaPublicKey::from_der(der)
        .map_err(|_| Error::InvalidKeyFormat("not a PKCS#1 RSA public key".into()))?;
    let n = rsa::BigUint::from_bytes_be(k.modulus.as_bytes());
    let e = rsa::BigUint::from_bytes_be(k.public_exponent.as_bytes());
    // `from_pkcs1_der` would cap the modulus at 4096 bits; Sigstore allows 8192.
    let key = rsa::RsaPublicKey::new_with_max_size(n, e, RSA_MAX_BITS)
        .map_err(|e| Error::InvalidKeyFormat(format!("RSA public key refused: {e}")))?;
    if key.n().bits() < RSA_MIN_BITS {
        return Err(Error::InvalidKeyFormat(format!(
            "RSA modulus of {} bits, under the {RSA_MIN_BITS}-bit minimum",
            key.n().bits()
        )));
    }
    Ok(key)
}

/// One RSA check for hash `D`. PSS takes the salt length equal to the digest length, the only
/// one Sigstore's clients produce and the only one aws-lc and ring accept.
fn rsa_check<D>(pss: bool, key: rsa::RsaPublicKey, signed: Signed, sig: &[u8]) -> bool
where
    D: Digest + sha2::digest::FixedOutputReset + sha2::digest::const_oid::AssociatedOid,
{
    use rsa::signature::{hazmat::PrehashVerifier, Verifier};
    if pss {
        let vk = rsa::pss::VerifyingKey::<D>::new(key);
        let Ok(s) = rsa::pss::Signature::try_from(sig) else {
            return false;
        };
        match signed {
            Signed::Message(m) => vk.verify(m, &s).is_ok(),
            Signed::Digest(d) => vk.verify_prehash(d, &s).is_ok(),
        }
    } else {
        let vk = rsa::pkcs1v15::VerifyingKey::<D>::new(key);
        let Ok(s) = rsa::pkcs1v15::Signature::try_from(sig) else {
            return false;
        };
        match signed {
            Signed::Message(m) => vk.verify(m, &s).is_ok(),
            Signed::Digest(d) => vk.verify_prehash(d, &s).is_ok(),
        }
    }
}

/// RSA verification; `None` when `scheme` is not an RSA scheme.
fn rsa_verify(scheme: SigningScheme, key: &[u8], signed: Signed, sig: &[u8]) -> Option<Result<()>> {
    let (pss, hash) = rsa_scheme(scheme)?;
    Some((|| {
        let key = rsa_key(key)?;
        if let Signed::Digest(d) = signed {
            let want = match hash {
                HashAlgorithm::Sha2384 => 48,
                HashAlgorithm::Sha2512 => 64,
                _ => 32,
            };
            if d.len() != want {
                return Err(invalid(scheme));
            }
        }
        let ok = match hash {
            HashAlgorithm::Sha2384 => rsa_check::<sha2::Sha384>(pss, key, signed, sig),
            HashAlgorithm::Sha2512 => rsa_check::<sha2::Sha512>(pss, key, signed, sig),
            _ => rsa_check::<sha2::Sha256>(pss, key, signed, sig),
        };
        if ok {
            Ok(())
        } else {
            Err(invalid(scheme))
        }
    })())
}

impl CryptoProvider for RustCryptoProvider {
    fn hash(&self, algorithm: HashAlgorithm) -> Result<Box<dyn HashContext>> {
        Ok(Box::new(match algorithm {
            HashAlgorithm::Sha2256 => Hasher::S256(sha2::Sha256::new()),
            HashAlgorithm::Sha2384 => Hasher::S384(sha2::Sha384::new()),
            HashAlgorithm::Sha2512 => Hasher::S512(sha2::Sha512::new()),
            other => {
                return Err(Error::UnsupportedAlgorithm(format!(
                    "cannot compute {other} digests"
                )))
            }
        }))
    }

    fn verify_raw(
        &self,
        scheme: SigningScheme,
        key: &[u8],
        data: &[u8],
        signature: &[u8],
    ) -> Result<()> {
        if scheme == SigningScheme::Ed25519 {
            let key: [u8; 32] = key
                .try_into()
                .map_err(|_| Error::InvalidKeyFormat("Ed25519 keys are 32 bytes".into()))?;
            let vk = ed25519_dalek::VerifyingKey::from_bytes(&key)
                .map_err(|_| Error::InvalidKeyFormat("not an Ed25519 point".into()))?;
            let sig =
                ed25519_dalek::Signature::from_slice(signature).map_err(|_| invalid(scheme))?;
            return vk.verify_strict(data, &sig).map_err(|_| invalid(scheme));
        }
        if let Some(r) = rsa_verify(scheme, key, Signed::Message(data), signature) {
            return r;
        }
        let alg = scheme.hash_algorithm().ok_or_else(|| {
            Error::UnsupportedAlgorithm(format!("{} is not supported", scheme.name()))
        })?;
        ecdsa_prehash(scheme, key, &digest(alg, data)?, signature)
    }

    fn verify_prehashed(
        &self,
        scheme: SigningScheme,
        key: &[u8],
        digest: &[u8],
        signature: &[u8],
    ) -> Result<()> {
        match scheme {
            SigningScheme::EcdsaP256Sha256
            | SigningScheme::EcdsaP256Sha384
            | SigningScheme::EcdsaP384Sha256
            | SigningScheme::EcdsaP384Sha384 => ecdsa_prehash(scheme, key, digest, signature),
            _ if rsa_scheme(scheme).is_some() => {
                rsa_verify(scheme, key, Signed::Digest(digest), signature)
                    .unwrap_or_else(|| Err(invalid(scheme)))
            }
            _ => Err(Error::UnsupportedAlgorithm(format!(
                "{} over a precomputed digest is not supported; verify with the file",
                scheme.name()
            ))),
        }
    }

    fn generate_key_pair(&self, algorithm: KeyAlgorithm) -> Result<Box<dyn SigningKeyPair>> {
        match algorithm {
            KeyAlgorithm::EcdsaP256 => Ok(Box::new(P256KeyPair::random())),
            other => Err(Error::UnsupportedAlgorithm(format!(
                "key generation is not supported for {other:?}"
            ))),
        }
    }

    fn key_pair_from_pkcs8_der(&self, pkcs8: &[u8]) -> Result<Box<dyn SigningKeyPair>> {
        use p256::pkcs8::DecodePrivateKey;
        let sk = p256::ecdsa::SigningKey::from_pkcs8_der(pkcs8)
            .map_err(|e| Error::InvalidKeyFormat(format!("not a P-256 PKCS#8 key: {e}")))?;
        Ok(Box::new(P256KeyPair::new(sk)))
    }
}

/// An ephemeral P-256 key held in memory only (zeroized on drop by p256).
pub struct P256KeyPair {
    key: p256::ecdsa::SigningKey,
    public: Vec<u8>,
}

impl P256KeyPair {
    pub fn new(key: p256::ecdsa::SigningKey) -> Self {
        let public = key
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        Self { key, public }
    }
    pub fn random() -> Self {
        Self::new(p256::ecdsa::SigningKey::random(&mut rand_core::OsRng))
    }
}

impl SigningKeyPair for P256KeyPair {
    fn algorithm(&self) -> KeyAlgorithm {
        KeyAlgorithm::EcdsaP256
    }
    fn public_key_bytes(&self) -> &[u8] {
        &self.public
    }
    fn sign_raw(&self, data: &[u8]) -> Result<Vec<u8>> {
        self.sign_prehashed(&sha2::Sha256::digest(data))
    }
    fn sign_prehashed(&self, digest: &[u8]) -> Result<Vec<u8>> {
        let sig: p256::ecdsa::Signature = self
            .key
            .sign_prehash(digest)
            .map_err(|_| Error::Signing("ECDSA P-256 signing failed".into()))?;
        Ok(sig.to_der().as_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    //! RSA against OpenSSL, the signer Sigstore's RSA users run: what `openssl dgst -sign` makes
    //! must verify, everything else must not.
    use super::*;
    use std::process::Command;

    fn openssl(args: &[&str]) -> Vec<u8> {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// A fresh key of `bits`: (PEM private key path, PKCS#1 DER public key).
    fn key(dir: &std::path::Path, bits: u32) -> (String, Vec<u8>) {
        let k = dir.join(format!("rsa{bits}.pem"));
        let ks = k.to_str().unwrap().to_string();
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            &format!("rsa_keygen_bits:{bits}"),
            "-out",
            &ks,
        ]);
        let der = openssl(&["rsa", "-in", &ks, "-RSAPublicKey_out", "-outform", "DER"]);
        (ks, der)
    }

    fn sign(dir: &std::path::Path, key: &str, md: &str, extra: &[&str], msg: &[u8]) -> Vec<u8> {
        let m = dir.join("msg");
        std::fs::write(&m, msg).unwrap();
        let mut args = vec!["dgst", md, "-sign", key];
        args.extend_from_slice(extra);
        args.push(m.to_str().unwrap());
        openssl(&args)
    }

    const PSS: &[&str] = &[
        "-sigopt",
        "rsa_padding_mode:pss",
        "-sigopt",
        "rsa_pss_saltlen:digest",
    ];

    #[test]
    fn rsa_matches_openssl() {
        let t = tempfile::tempdir().unwrap();
        let (k, der) = key(t.path(), 2048);
        let msg = b"the bundle's message";
        let p = RustCryptoProvider;
        for (scheme, md, extra, alg) in [
            (
                SigningScheme::RsaPkcs1Sha256,
                "-sha256",
                &[][..],
                HashAlgorithm::Sha2256,
            ),
            (
                SigningScheme::RsaPkcs1Sha384,
                "-sha384",
                &[][..],
                HashAlgorithm::Sha2384,
            ),
            (
                SigningScheme::RsaPkcs1Sha512,
                "-sha512",
                &[][..],
                HashAlgorithm::Sha2512,
            ),
            (
                SigningScheme::RsaPssSha256,
                "-sha256",
                PSS,
                HashAlgorithm::Sha2256,
            ),
            (
                SigningScheme::RsaPssSha384,
                "-sha384",
                PSS,
                HashAlgorithm::Sha2384,
            ),
            (
                SigningScheme::RsaPssSha512,
                "-sha512",
                PSS,
                HashAlgorithm::Sha2512,
            ),
        ] {
            let sig = sign(t.path(), &k, md, extra, msg);
            p.verify_raw(scheme, &der, msg, &sig)
                .unwrap_or_else(|e| panic!("{scheme:?}: {e}"));
            let d = digest(alg, msg).unwrap();
            p.verify_prehashed(scheme, &der, &d, &sig)
                .unwrap_or_else(|e| panic!("{scheme:?} prehashed: {e}"));
            // Another message, a flipped bit, a truncated or padded signature: refused.
            assert!(p.verify_raw(scheme, &der, b"another", &sig).is_err());
            let mut bad = sig.clone();
            bad[10] ^= 1;
            assert!(p.verify_raw(scheme, &der, msg, &bad).is_err());
            assert!(p.verify_raw(scheme, &der, msg, &sig[1..]).is_err());
            let mut long = vec![0u8];
            long.extend_from_slice(&sig);
            assert!(p.verify_raw(scheme, &der, msg, &long).is_err());
            assert!(p.verify_prehashed(scheme, &der, &d[1..], &sig).is_err());
        }
        // The padding is part of the scheme: PKCS#1 v1.5 is not PSS, nor the other way round.
        let sig = sign(t.path(), &k, "-sha256", &[], msg);
        assert!(p
            .verify_raw(SigningScheme::RsaPssSha256, &der, msg, &sig)
            .is_err());
        assert!(p
            .verify_raw(SigningScheme::RsaPkcs1Sha384, &der, msg, &sig)
            .is_err());
        // PSS with a salt other than the digest length is refused, as aws-lc and ring refuse it.
        let sig = sign(
            t.path(),
            &k,
            "-sha256",
            &[
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:max",
            ],
            msg,
        );
        assert!(p
            .verify_raw(SigningScheme::RsaPssSha256, &der, msg, &sig)
            .is_err());
        // Not a PKCS#1 key: an SPKI wrapper, garbage, an EC point.
        let spki = openssl(&["pkey", "-in", &k, "-pubout", "-outform", "DER"]);
        let sig = sign(t.path(), &k, "-sha256", &[], msg);
        for key in [&spki[..], b"\x30\x00", &[4u8; 65]] {
            assert!(matches!(
                p.verify_raw(SigningScheme::RsaPkcs1Sha256, key, msg, &sig),
                Err(Error::InvalidKeyFormat(_))
            ));
        }
    }

    #[test]
    fn rsa_key_sizes_as_sigstore_allows() {
        let t = tempfile::tempdir().unwrap();
        let msg = b"m";
        let p = RustCryptoProvider;
        // 1024 bits: under the minimum, refused even with a good signature.
        let (k, der) = key(t.path(), 1024);
        let sig = sign(t.path(), &k, "-sha256", &[], msg);
        let e = p
            .verify_raw(SigningScheme::RsaPkcs1Sha256, &der, msg, &sig)
            .unwrap_err();
        assert!(e.to_string().contains("2048"), "{e}");
        // 4097 bits: over `rsa`'s own 4096-bit default cap, within Sigstore's 8192. Made once by
        // `openssl genpkey … rsa_keygen_bits:4097` and `openssl dgst -sha256 -sign` over "m" (a
        // key that size takes seconds to generate).
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/rsa");
        let der = std::fs::read(dir.join("rsa4097.pub.der")).unwrap();
        let sig = std::fs::read(dir.join("rsa4097-m.sha256.sig")).unwrap();
        p.verify_raw(SigningScheme::RsaPkcs1Sha256, &der, msg, &sig)
            .unwrap();
        assert!(p
            .verify_raw(SigningScheme::RsaPkcs1Sha256, &der, b"n", &sig)
            .is_err());
    }
}
