//! A `sigstore-crypto` provider on RustCrypto (ECDSA P-256/P-384, Ed25519, SHA-2) with ring for
//! RSA verification only, so the Sigstore verifier adds no C crypto stack (its default is aws-lc).

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

fn ring_rsa(scheme: SigningScheme) -> Option<&'static ring::signature::RsaParameters> {
    use ring::signature as r;
    Some(match scheme {
        SigningScheme::RsaPkcs1Sha256 => &r::RSA_PKCS1_2048_8192_SHA256,
        SigningScheme::RsaPkcs1Sha384 => &r::RSA_PKCS1_2048_8192_SHA384,
        SigningScheme::RsaPkcs1Sha512 => &r::RSA_PKCS1_2048_8192_SHA512,
        SigningScheme::RsaPssSha256 => &r::RSA_PSS_2048_8192_SHA256,
        SigningScheme::RsaPssSha384 => &r::RSA_PSS_2048_8192_SHA384,
        SigningScheme::RsaPssSha512 => &r::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
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
        if let Some(params) = ring_rsa(scheme) {
            return ring::signature::UnparsedPublicKey::new(params, key)
                .verify(data, signature)
                .map_err(|_| invalid(scheme));
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
