//! X.509 for the certificate method: parse PEM chains, build a path from the signing
//! certificate to a trusted root, and check code-signing fitness. As model_signing does, the
//! chain is evaluated at the signing certificate's notBefore (bundles of this method carry no
//! trusted timestamp), and the leaf must allow digitalSignature or the codeSigning EKU.

use super::keys::VerifyingKey;
use super::Error;
use der::{Decode, Encode};
use ecdsa::signature::hazmat::PrehashVerifier;
use x509_cert::Certificate;

const OID_ECDSA_SHA256: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const OID_ECDSA_SHA384: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const OID_ECDSA_SHA512: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const OID_ED25519: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_KEY_USAGE: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("2.5.29.15");
const OID_EXT_KEY_USAGE: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("2.5.29.37");
const OID_BASIC_CONSTRAINTS: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("2.5.29.19");
const OID_CODE_SIGNING: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
const MAX_DEPTH: usize = 8;

/// A parsed certificate with its original DER.
#[derive(Clone, Debug)]
pub struct Cert {
    pub der: Vec<u8>,
    pub cert: Certificate,
}

impl Cert {
    pub fn from_der(der: &[u8]) -> Result<Cert, Error> {
        let cert = Certificate::from_der(der)
            .map_err(|e| Error::Certificate(format!("malformed certificate ({e})")))?;
        Ok(Cert {
            der: der.to_vec(),
            cert,
        })
    }

    pub fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }

    pub fn public_key(&self) -> Result<VerifyingKey, Error> {
        let spki = self
            .cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| Error::Certificate(format!("cannot encode key ({e})")))?;
        VerifyingKey::from_spki_der(&spki)
    }

    fn validity(&self) -> (u64, u64) {
        let v = &self.cert.tbs_certificate.validity;
        (
            v.not_before.to_unix_duration().as_secs(),
            v.not_after.to_unix_duration().as_secs(),
        )
    }

    fn extension<T: for<'a> Decode<'a>>(
        &self,
        oid: der::oid::ObjectIdentifier,
    ) -> Option<Result<T, Error>> {
        let ext = self
            .cert
            .tbs_certificate
            .extensions
            .as_ref()?
            .iter()
            .find(|e| e.extn_id == oid)?;
        Some(
            T::from_der(ext.extn_value.as_bytes())
                .map_err(|e| Error::Certificate(format!("bad extension {oid} ({e})"))),
        )
    }

    /// The exact signed TBS bytes, taken from the original encoding.
    fn tbs_bytes(&self) -> Result<Vec<u8>, Error> {
        let bad = |e: der::Error| Error::Certificate(format!("malformed certificate ({e})"));
        let mut r = der::SliceReader::new(&self.der).map_err(bad)?;
        let _outer = der::Header::decode(&mut r).map_err(bad)?;
        let tbs: der::asn1::AnyRef<'_> = der::Reader::decode(&mut r).map_err(bad)?;
        tbs.to_der().map_err(bad)
    }

    /// Does `issuer`'s key verify this certificate's signature?
    fn signed_by(&self, issuer: &Cert) -> bool {
        let Ok(key) = issuer.public_key() else {
            return false;
        };
        let Ok(tbs) = self.tbs_bytes() else {
            return false;
        };
        let Some(sig) = self.cert.signature.as_bytes() else {
            return false;
        };
        let alg = self.cert.signature_algorithm.oid;
        let prehash = |tbs: &[u8]| -> Option<Vec<u8>> {
            use sha2::Digest;
            Some(if alg == OID_ECDSA_SHA256 {
                sha2::Sha256::digest(tbs).to_vec()
            } else if alg == OID_ECDSA_SHA384 {
                sha2::Sha384::digest(tbs).to_vec()
            } else if alg == OID_ECDSA_SHA512 {
                sha2::Sha512::digest(tbs).to_vec()
            } else {
                return None;
            })
        };
        match key {
            VerifyingKey::Ed25519(k) => {
                alg == OID_ED25519
                    && ed25519_dalek::Signature::from_slice(sig)
                        .is_ok_and(|s| k.verify_strict(&tbs, &s).is_ok())
            }
            VerifyingKey::P256(k) => prehash(&tbs).is_some_and(|h| {
                p256::ecdsa::Signature::from_der(sig)
                    .is_ok_and(|s| k.verify_prehash(&h, &s).is_ok())
            }),
            VerifyingKey::P384(k) => prehash(&tbs).is_some_and(|h| {
                p384::ecdsa::Signature::from_der(sig)
                    .is_ok_and(|s| k.verify_prehash(&h, &s).is_ok())
            }),
            VerifyingKey::P521(k) => prehash(&tbs).is_some_and(|h| {
                p521::ecdsa::Signature::from_der(sig)
                    .is_ok_and(|s| k.key.verify_prehash(&h, &s).is_ok())
            }),
        }
    }

    fn is_ca(&self) -> Result<bool, Error> {
        match self.extension::<x509_cert::ext::pkix::BasicConstraints>(OID_BASIC_CONSTRAINTS) {
            Some(bc) => Ok(bc?.ca),
            None => Ok(false),
        }
    }
}

/// Parse every certificate in a PEM file.
pub fn load_pem_chain(pem: &[u8]) -> Result<Vec<Cert>, Error> {
    // x509-cert 0.2.5 underflows (panics) on input that is empty after trailing newlines; found
    // by fuzz/fuzz_targets/bundle.rs. Refuse that up front, and contain any other parser panic.
    if pem.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(Error::Certificate("the PEM file is empty".into()));
    }
    let certs = std::panic::catch_unwind(|| Certificate::load_pem_chain(pem))
        .map_err(|_| Error::Certificate("malformed PEM certificate list".into()))?
        .map_err(|e| Error::Certificate(format!("not a PEM certificate list ({e})")))?;
    if certs.is_empty() {
        return Err(Error::Certificate(
            "no certificate found in the PEM file".into(),
        ));
    }
    certs
        .into_iter()
        .map(|c| {
            let der = c
                .to_der()
                .map_err(|e| Error::Certificate(format!("cannot encode certificate ({e})")))?;
            Ok(Cert { der, cert: c })
        })
        .collect()
}

/// Check that `leaf` (with `intermediates` from the bundle) chains to one of `roots`, that every
/// certificate on the path is valid at the leaf's notBefore, that issuers are CAs, and that the
/// leaf may sign code. Returns the leaf's public key, or why the chain is not trusted.
pub fn verify_chain(
    leaf: &Cert,
    intermediates: &[Cert],
    roots: &[Cert],
) -> Result<VerifyingKey, String> {
    let at = leaf.validity().0;
    let valid_at = |c: &Cert| {
        let (nb, na) = c.validity();
        if at < nb || at > na {
            Err(format!(
                "certificate '{}' is not valid at the signing time",
                c.subject()
            ))
        } else {
            Ok(())
        }
    };
    valid_at(leaf)?;
    // Leaf fitness for code signing.
    let ku_ok = match leaf.extension::<x509_cert::ext::pkix::KeyUsage>(OID_KEY_USAGE) {
        Some(ku) => ku
            .map_err(|e| e.to_string())?
            .0
            .contains(x509_cert::ext::pkix::KeyUsages::DigitalSignature),
        None => false,
    };
    let eku_ok = match leaf.extension::<x509_cert::ext::pkix::ExtendedKeyUsage>(OID_EXT_KEY_USAGE) {
        Some(eku) => eku
            .map_err(|e| e.to_string())?
            .0
            .contains(&OID_CODE_SIGNING),
        None => false,
    };
    if !ku_ok && !eku_ok {
        return Err(format!(
            "signing certificate '{}' allows neither digitalSignature key usage nor the codeSigning extended key usage",
            leaf.subject()
        ));
    }
    let mut current = leaf.clone();
    for _ in 0..MAX_DEPTH {
        if roots.iter().any(|r| r.der == current.der) {
            return leaf.public_key().map_err(|e| e.to_string());
        }
        let issuer_name = &current.cert.tbs_certificate.issuer;
        if let Some(root) = roots
            .iter()
            .find(|r| &r.cert.tbs_certificate.subject == issuer_name && current.signed_by(r))
        {
            valid_at(root)?;
            return leaf.public_key().map_err(|e| e.to_string());
        }
        let Some(next) = intermediates.iter().find(|c| {
            &c.cert.tbs_certificate.subject == issuer_name
                && c.der != current.der
                && current.signed_by(c)
        }) else {
            return Err(format!(
                "no trusted root or bundled intermediate issued '{}' (issuer '{}')",
                current.subject(),
                issuer_name
            ));
        };
        valid_at(next)?;
        if !next.is_ca().map_err(|e| e.to_string())? {
            return Err(format!(
                "'{}' issues certificates but is not a CA",
                next.subject()
            ));
        }
        current = next.clone();
    }
    Err("certificate chain is too long".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_or_garbage_pem_is_an_error() {
        for input in [
            &b""[..],
            b"\n",
            b"\r\n\r\n",
            b"hello",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n",
        ] {
            assert!(load_pem_chain(input).is_err());
        }
    }
}
