//! X.509 for the certificate method: parse PEM chains and validate the path from the signing
//! certificate to a trusted root by RFC 5280.
//!
//! Path building, signatures, validity, basicConstraints (cA, pathLenConstraint), unknown critical
//! extensions, name constraints and extendedKeyUsage chaining are `rustls-webpki`'s, with the
//! signature algorithms implemented on RustCrypto ([`ALGORITHMS`]). What webpki leaves out and
//! OpenSSL (hence `model_signing`) checks is added here, in [`verify_chain`]:
//! - an issuer's keyUsage, when present, must allow keyCertSign;
//! - the trust anchor is checked like any CA: self-signed (no partial chains, as OpenSSL without
//!   `-partial_chain`), valid at the signing time, a CA, keyCertSign, its pathLenConstraint, no
//!   unhandled critical extension;
//! - names outside subjectAltName that OpenSSL holds to name constraints: the signing
//!   certificate's commonName when it looks like a host name (OpenSSL's rule), and
//!   emailAddress attributes in subjects (rejected under rfc822Name constraints, which webpki
//!   does not process either: fail closed).
//!
//! The time rule is `model_signing`'s: bundles of this method carry no trusted timestamp, so every
//! certificate on the path must be valid at the signing certificate's notBefore.
//!
//! The signing certificate must say it may sign code: keyUsage with digitalSignature or
//! extendedKeyUsage with codeSigning (or anyExtendedKeyUsage), as `model_signing` asks, and,
//! because RFC 5280 §4.2.1.12 says a certificate with both extensions may only be used for a
//! purpose consistent with both, neither extension present may rule it out (`model_signing`
//! accepts either one alone). See docs/cert-chains.md for every difference from OpenSSL.

use super::keys::VerifyingKey;
use super::Error;
use der::{Decode, Encode};
use rustls_pki_types::{
    alg_id, AlgorithmIdentifier, CertificateDer, InvalidSignature, SignatureVerificationAlgorithm,
    TrustAnchor, UnixTime,
};
use std::cell::RefCell;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages, NameConstraints, SubjectAltName,
};
use x509_cert::Certificate;

type Oid = der::oid::ObjectIdentifier;
const OID_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.15");
const OID_SUBJECT_ALT_NAME: Oid = Oid::new_unwrap("2.5.29.17");
const OID_BASIC_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.19");
const OID_NAME_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.30");
const OID_CRL_DISTRIBUTION_POINTS: Oid = Oid::new_unwrap("2.5.29.31");
const OID_EXT_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.37");
const OID_SCT_LIST: Oid = Oid::new_unwrap("1.3.6.1.4.1.11129.2.4.2");
const OID_CODE_SIGNING: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.3");
const OID_ANY_EKU: Oid = Oid::new_unwrap("2.5.29.37.0");
const OID_COMMON_NAME: Oid = Oid::new_unwrap("2.5.4.3");
const OID_EMAIL_ADDRESS: Oid = Oid::new_unwrap("1.2.840.113549.1.9.1");
/// Encoded contents of the codeSigning and anyExtendedKeyUsage OIDs, as webpki hands them over.
const EKU_CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];
const EKU_ANY: &[u8] = &[0x55, 0x1d, 0x25, 0x00];

/// The critical extensions a path can carry: the ones webpki processes (the same list is applied
/// to trust anchors, which webpki does not look at).
const HANDLED_CRITICAL: [Oid; 7] = [
    OID_KEY_USAGE,
    OID_SUBJECT_ALT_NAME,
    OID_BASIC_CONSTRAINTS,
    OID_NAME_CONSTRAINTS,
    OID_CRL_DISTRIBUTION_POINTS,
    OID_EXT_KEY_USAGE,
    OID_SCT_LIST,
];

/// Why a certificate chain is not trusted. Each variant names the certificate at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("certificate '{subject}' is not valid at the signing time {at} (valid from {not_before} to {not_after}; the method checks every certificate at the signing certificate's notBefore)")]
    NotValidAtSigningTime {
        subject: String,
        at: String,
        not_before: String,
        not_after: String,
    },
    #[error("certificate '{subject}' has a critical extension {oid} that is not processed; RFC 5280 requires rejecting it")]
    UnhandledCriticalExtension { subject: String, oid: String },
    #[error("the chain breaks the pathLenConstraint of '{subject}': it allows {limit} CA certificate(s) below it, the path has {found}")]
    PathLenExceeded {
        subject: String,
        limit: u8,
        found: usize,
    },
    #[error("the chain breaks a CA's pathLenConstraint (a CA certificate allows fewer CA certificates below it than the path has{culprit})")]
    PathLenViolated { culprit: String },
    #[error("certificate '{subject}' is outside the name constraints of a CA above it: {why}")]
    NameConstraint { subject: String, why: String },
    #[error("'{subject}' issues certificates, but its keyUsage does not allow keyCertSign")]
    IssuerKeyUsage { subject: String },
    #[error(
        "'{subject}' issues certificates, but it is not a CA (basicConstraints cA is not set)"
    )]
    NotCa { subject: String },
    #[error("signing certificate '{subject}' is a CA certificate (basicConstraints cA); sign with an end-entity certificate")]
    CaAsSigner { subject: String },
    #[error("signing certificate '{subject}' may not sign code: {why} (a model-signing certificate needs keyUsage digitalSignature or extendedKeyUsage codeSigning, and neither extension may exclude it)")]
    SignerUsage { subject: String, why: String },
    #[error("an issuing CA of '{subject}' has an extendedKeyUsage without codeSigning, which restricts what it may issue")]
    IssuerExtendedKeyUsage { subject: String },
    #[error("no trusted root or bundled intermediate issued '{subject}' (issuer '{issuer}')")]
    UnknownIssuer { subject: String, issuer: String },
    #[error("trusted certificate '{subject}' is not self-signed: the chain must end at a root (put the root that issued it in the roots file)")]
    AnchorNotSelfIssued { subject: String },
    #[error("a certificate on the path of '{subject}' is signed with an algorithm mlsign does not verify (supported: ECDSA P-256, P-384, P-521 with SHA-256/384/512, and Ed25519)")]
    UnsupportedAlgorithm { subject: String },
    #[error("a signature on the path of '{subject}' does not verify with its issuer's key")]
    BadSignature { subject: String },
    #[error("certificate '{subject}' is malformed: {why}")]
    Malformed { subject: String, why: String },
    #[error("the certificate chain of '{subject}' is too long or too complex to evaluate (at most 6 intermediates)")]
    TooComplex { subject: String },
    #[error("certificate path of '{subject}' rejected: {why}")]
    Rejected { subject: String, why: String },
}

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

    fn extensions(&self) -> &[x509_cert::ext::Extension] {
        self.cert
            .tbs_certificate
            .extensions
            .as_deref()
            .unwrap_or_default()
    }

    fn extension<T: for<'a> Decode<'a>>(&self, oid: Oid) -> Result<Option<T>, ChainError> {
        let Some(ext) = self.extensions().iter().find(|e| e.extn_id == oid) else {
            return Ok(None);
        };
        T::from_der(ext.extn_value.as_bytes())
            .map(Some)
            .map_err(|e| ChainError::Malformed {
                subject: self.subject(),
                why: format!("extension {oid} does not decode ({e})"),
            })
    }

    fn unhandled_critical(&self) -> Option<Oid> {
        self.extensions()
            .iter()
            .find(|e| e.critical && !HANDLED_CRITICAL.contains(&e.extn_id))
            .map(|e| e.extn_id)
    }

    fn self_issued(&self) -> bool {
        self.cert.tbs_certificate.subject == self.cert.tbs_certificate.issuer
    }

    fn not_valid_at(&self, at: u64) -> Option<ChainError> {
        let (nb, na) = self.validity();
        (at < nb || at > na).then(|| {
            let v = &self.cert.tbs_certificate.validity;
            ChainError::NotValidAtSigningTime {
                subject: self.subject(),
                at: fmt_unix(at),
                not_before: v.not_before.to_string(),
                not_after: v.not_after.to_string(),
            }
        })
    }

    /// Values of one attribute type in the subject, as text (non-text values are skipped).
    fn subject_attr(&self, oid: Oid) -> Vec<String> {
        let mut out = Vec::new();
        for rdn in self.cert.tbs_certificate.subject.0.iter() {
            for atv in rdn.0.iter() {
                if atv.oid == oid {
                    if let Ok(s) = std::str::from_utf8(atv.value.value()) {
                        out.push(s.to_string());
                    }
                }
            }
        }
        out
    }
}

fn fmt_unix(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{secs} s after 1970"))
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

// ---------------------------------------------------------------------------------------------
// Signature algorithms for webpki, on RustCrypto (the project's one crypto stack).

#[derive(Debug, Clone, Copy)]
enum Curve {
    P256,
    P384,
    P521,
}

#[derive(Debug, Clone, Copy)]
enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

#[derive(Debug)]
struct Ecdsa(Curve, Hash);

impl SignatureVerificationAlgorithm for Ecdsa {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        use ecdsa::signature::hazmat::PrehashVerifier;
        use sha2::Digest;
        let h = match self.1 {
            Hash::Sha256 => sha2::Sha256::digest(message).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(message).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(message).to_vec(),
        };
        let ok = match self.0 {
            Curve::P256 => p256::ecdsa::VerifyingKey::from_sec1_bytes(public_key)
                .ok()
                .zip(p256::ecdsa::Signature::from_der(signature).ok())
                .is_some_and(|(k, s)| k.verify_prehash(&h, &s).is_ok()),
            Curve::P384 => p384::ecdsa::VerifyingKey::from_sec1_bytes(public_key)
                .ok()
                .zip(p384::ecdsa::Signature::from_der(signature).ok())
                .is_some_and(|(k, s)| k.verify_prehash(&h, &s).is_ok()),
            Curve::P521 => p521::ecdsa::VerifyingKey::from_sec1_bytes(public_key)
                .ok()
                .zip(p521::ecdsa::Signature::from_der(signature).ok())
                .is_some_and(|(k, s)| k.verify_prehash(&h, &s).is_ok()),
        };
        ok.then_some(()).ok_or(InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        match self.0 {
            Curve::P256 => alg_id::ECDSA_P256,
            Curve::P384 => alg_id::ECDSA_P384,
            Curve::P521 => alg_id::ECDSA_P521,
        }
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        match self.1 {
            Hash::Sha256 => alg_id::ECDSA_SHA256,
            Hash::Sha384 => alg_id::ECDSA_SHA384,
            Hash::Sha512 => alg_id::ECDSA_SHA512,
        }
    }
}

#[derive(Debug)]
struct Ed25519;

impl SignatureVerificationAlgorithm for Ed25519 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        let key =
            ed25519_dalek::VerifyingKey::try_from(public_key).map_err(|_| InvalidSignature)?;
        let sig = ed25519_dalek::Signature::from_slice(signature).map_err(|_| InvalidSignature)?;
        key.verify_strict(message, &sig)
            .map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ED25519
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ED25519
    }
}

/// Certificate signature algorithms mlsign verifies. P-521 with SHA-256 is left out: the `ecdsa`
/// crate refuses a digest shorter than half the field, so it could never verify.
static ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[
    &Ecdsa(Curve::P256, Hash::Sha256),
    &Ecdsa(Curve::P256, Hash::Sha384),
    &Ecdsa(Curve::P256, Hash::Sha512),
    &Ecdsa(Curve::P384, Hash::Sha256),
    &Ecdsa(Curve::P384, Hash::Sha384),
    &Ecdsa(Curve::P384, Hash::Sha512),
    &Ecdsa(Curve::P521, Hash::Sha384),
    &Ecdsa(Curve::P521, Hash::Sha512),
    &Ed25519,
];

/// extendedKeyUsage policy for every certificate on the path (webpki applies it to issuers too):
/// absent, or listing codeSigning or anyExtendedKeyUsage.
struct CodeSigning;

impl webpki::ExtendedKeyUsageValidator for CodeSigning {
    fn validate(&self, iter: webpki::KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        let mut any = false;
        for id in iter {
            any = true;
            let id = id?;
            if id == webpki::KeyPurposeId::new(EKU_CODE_SIGNING)
                || id == webpki::KeyPurposeId::new(EKU_ANY)
            {
                return Ok(());
            }
        }
        if any {
            Err(webpki::Error::RequiredEkuNotFoundContext(
                webpki::RequiredEkuNotFoundContext {
                    required: webpki::KeyUsage::required(EKU_CODE_SIGNING),
                    present: Vec::new(),
                },
            ))
        } else {
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// The signing certificate's own fitness for signing models.
fn check_signer_usage(leaf: &Cert) -> Result<(), ChainError> {
    let usage = |why: &str| ChainError::SignerUsage {
        subject: leaf.subject(),
        why: why.into(),
    };
    let ds = leaf
        .extension::<KeyUsage>(OID_KEY_USAGE)?
        .map(|ku| ku.0.contains(KeyUsages::DigitalSignature));
    let cs = leaf
        .extension::<ExtendedKeyUsage>(OID_EXT_KEY_USAGE)?
        .map(|eku| eku.0.contains(&OID_CODE_SIGNING) || eku.0.contains(&OID_ANY_EKU));
    match (ds, cs) {
        (Some(false), _) => Err(usage("its keyUsage does not allow digitalSignature")),
        (_, Some(false)) => Err(usage("its extendedKeyUsage does not include codeSigning")),
        (None, None) => Err(usage(
            "it has neither keyUsage nor extendedKeyUsage, so nothing says it may sign",
        )),
        // Each extension present allows signing code, and at least one is present.
        _ => Ok(()),
    }
}

/// OpenSSL's test for a host-name-like commonName (`cn2dnsid`): labels of letters, digits and
/// hyphens (underscores tolerated), at least one dot, no empty label.
fn looks_like_host(cn: &str) -> bool {
    cn.contains('.')
        && cn.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// RFC 5280 / OpenSSL dNSName constraint matching: `base` covers itself and its subdomains; a
/// leading dot covers subdomains only; empty covers everything.
fn dns_in(name: &str, base: &str) -> bool {
    let (name, base) = (name.to_ascii_lowercase(), base.to_ascii_lowercase());
    if base.is_empty() {
        return true;
    }
    if name.len() < base.len() || !name.ends_with(&base) {
        return false;
    }
    name.len() == base.len()
        || base.starts_with('.')
        || name.as_bytes()[name.len() - base.len() - 1] == b'.'
}

/// The checks webpki does not make on a path it built (see the module comment).
fn check_path(
    path: &webpki::VerifiedPath<'_>,
    leaf: &Cert,
    known: &[&Cert],
    anchor: &Cert,
    at: u64,
) -> Result<(), ChainError> {
    let find = |der: &[u8]| known.iter().copied().find(|c| c.der == der);
    let mut chain: Vec<&Cert> = vec![leaf];
    for c in path.intermediate_certificates() {
        let der = c.der();
        let Some(cert) = find(der.as_ref()) else {
            return Err(ChainError::Rejected {
                subject: leaf.subject(),
                why: "path validation returned a certificate that was not supplied".into(),
            });
        };
        chain.push(cert);
    }
    let intermediates = chain.len() - 1;
    for c in &chain[1..] {
        if let Some(ku) = c.extension::<KeyUsage>(OID_KEY_USAGE)? {
            if !ku.0.contains(KeyUsages::KeyCertSign) {
                return Err(ChainError::IssuerKeyUsage {
                    subject: c.subject(),
                });
            }
        }
    }
    // A directly trusted signing certificate is its own anchor: no CA checks for it.
    if anchor.der != leaf.der {
        if !anchor.self_issued() {
            return Err(ChainError::AnchorNotSelfIssued {
                subject: anchor.subject(),
            });
        }
        if let Some(e) = anchor.not_valid_at(at) {
            return Err(e);
        }
        if let Some(oid) = anchor.unhandled_critical() {
            return Err(ChainError::UnhandledCriticalExtension {
                subject: anchor.subject(),
                oid: oid.to_string(),
            });
        }
        let ku = anchor.extension::<KeyUsage>(OID_KEY_USAGE)?;
        if ku
            .as_ref()
            .is_some_and(|k| !k.0.contains(KeyUsages::KeyCertSign))
        {
            return Err(ChainError::IssuerKeyUsage {
                subject: anchor.subject(),
            });
        }
        // OpenSSL's X509_check_ca: basicConstraints decides when present; otherwise a v1
        // certificate (no extensions) or keyUsage with keyCertSign makes a CA.
        match anchor.extension::<BasicConstraints>(OID_BASIC_CONSTRAINTS)? {
            Some(bc) if !bc.ca => {
                return Err(ChainError::NotCa {
                    subject: anchor.subject(),
                })
            }
            Some(bc) => {
                if let Some(limit) = bc.path_len_constraint {
                    if intermediates > usize::from(limit) {
                        return Err(ChainError::PathLenExceeded {
                            subject: anchor.subject(),
                            limit,
                            found: intermediates,
                        });
                    }
                }
            }
            None if anchor.cert.tbs_certificate.extensions.is_none() || ku.is_some() => {}
            None => {
                return Err(ChainError::NotCa {
                    subject: anchor.subject(),
                })
            }
        }
        chain.push(anchor);
    }
    // Names webpki does not hold to name constraints. chain[j] constrains chain[..j].
    for (j, ca) in chain.iter().enumerate().skip(1) {
        let Some(nc) = ca.extension::<NameConstraints>(OID_NAME_CONSTRAINTS)? else {
            continue;
        };
        let permitted = nc.permitted_subtrees.unwrap_or_default();
        let excluded = nc.excluded_subtrees.unwrap_or_default();
        let all = || permitted.iter().chain(excluded.iter());
        if all().any(|s| matches!(s.base, GeneralName::Rfc822Name(_))) {
            if let Some(c) = chain[..j]
                .iter()
                .find(|c| !c.subject_attr(OID_EMAIL_ADDRESS).is_empty())
            {
                return Err(ChainError::NameConstraint {
                    subject: c.subject(),
                    why: format!("its subject has an emailAddress, and '{}' constrains rfc822Name, which mlsign does not process (fail closed)", ca.subject()),
                });
            }
        }
        let dns = |v: &[x509_cert::ext::pkix::constraints::name::GeneralSubtree]| -> Vec<String> {
            v.iter()
                .filter_map(|s| match &s.base {
                    GeneralName::DnsName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        };
        let (perm_dns, excl_dns) = (dns(&permitted), dns(&excluded));
        if perm_dns.is_empty() && excl_dns.is_empty() {
            continue;
        }
        // OpenSSL checks the signing certificate's host-like commonNames when it has no dNSName.
        let san = leaf.extension::<SubjectAltName>(OID_SUBJECT_ALT_NAME)?;
        let has_dns = san.is_some_and(|s| s.0.iter().any(|g| matches!(g, GeneralName::DnsName(_))));
        if has_dns {
            continue;
        }
        for cn in leaf.subject_attr(OID_COMMON_NAME) {
            if !looks_like_host(&cn) {
                continue;
            }
            let outside = (!perm_dns.is_empty() && !perm_dns.iter().any(|b| dns_in(&cn, b)))
                || excl_dns.iter().any(|b| dns_in(&cn, b));
            if outside {
                return Err(ChainError::NameConstraint {
                    subject: leaf.subject(),
                    why: format!(
                        "its commonName '{cn}' is a host name outside the dNSName constraints of '{}'",
                        ca.subject()
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Walk issuer names from the signing certificate as far as the supplied certificates go: the
/// first certificate whose issuer is nowhere to be found.
fn missing_issuer(leaf: &Cert, known: &[&Cert], roots: &[Cert]) -> ChainError {
    let mut current = leaf;
    for _ in 0..8 {
        let issuer = &current.cert.tbs_certificate.issuer;
        if roots
            .iter()
            .any(|r| &r.cert.tbs_certificate.subject == issuer)
        {
            break;
        }
        match known
            .iter()
            .find(|c| &c.cert.tbs_certificate.subject == issuer && c.der != current.der)
        {
            Some(next) => current = next,
            None => break,
        }
    }
    ChainError::UnknownIssuer {
        subject: current.subject(),
        issuer: current.cert.tbs_certificate.issuer.to_string(),
    }
}

/// Turn webpki's error into one that names the certificate at fault where that can be told.
fn explain(e: webpki::Error, leaf: &Cert, path_certs: &[&Cert], roots: &[Cert]) -> ChainError {
    use webpki::Error as W;
    let subject = leaf.subject();
    match e {
        W::UnknownIssuer => missing_issuer(leaf, path_certs, roots),
        W::CertExpired { time, not_after } => {
            let t = not_after.as_secs();
            let at = time.as_secs();
            path_certs
                .iter()
                .find(|c| c.validity().1 == t)
                .and_then(|c| c.not_valid_at(at))
                .unwrap_or(ChainError::Rejected {
                    subject,
                    why: format!("a certificate on the path expired before {}", fmt_unix(at)),
                })
        }
        W::CertNotValidYet { time, not_before } => {
            let t = not_before.as_secs();
            let at = time.as_secs();
            path_certs
                .iter()
                .find(|c| c.validity().0 == t)
                .and_then(|c| c.not_valid_at(at))
                .unwrap_or(ChainError::Rejected {
                    subject,
                    why: format!("a certificate on the path is not valid yet at {}", fmt_unix(at)),
                })
        }
        W::UnsupportedCriticalExtension => path_certs
            .iter()
            .find_map(|c| {
                c.unhandled_critical()
                    .map(|oid| ChainError::UnhandledCriticalExtension {
                        subject: c.subject(),
                        oid: oid.to_string(),
                    })
            })
            .unwrap_or(ChainError::Rejected {
                subject,
                why: "a certificate has an unhandled critical extension".into(),
            }),
        W::PathLenConstraintViolated => {
            let tightest = path_certs
                .iter()
                .filter_map(|c| {
                    c.extension::<BasicConstraints>(OID_BASIC_CONSTRAINTS)
                        .ok()
                        .flatten()
                        .and_then(|bc| bc.path_len_constraint)
                        .map(|l| (l, c.subject()))
                })
                .min();
            ChainError::PathLenViolated {
                culprit: tightest
                    .map(|(l, s)| format!("; '{s}' has pathLenConstraint {l}"))
                    .unwrap_or_default(),
            }
        }
        W::NameConstraintViolation => ChainError::NameConstraint {
            subject,
            why: "a name in its subject or subjectAltName is outside them, or is of a form mlsign does not process under a constraint (directoryName, URI, rfc822Name: fail closed)".into(),
        },
        W::CaUsedAsEndEntity => ChainError::CaAsSigner { subject },
        W::EndEntityUsedAsCa => path_certs
            .iter()
            .skip(1)
            .find(|c| {
                !c.extension::<BasicConstraints>(OID_BASIC_CONSTRAINTS)
                    .ok()
                    .flatten()
                    .is_some_and(|bc| bc.ca)
            })
            .map(|c| ChainError::NotCa {
                subject: c.subject(),
            })
            .unwrap_or(ChainError::NotCa {
                subject: "an intermediate".into(),
            }),
        W::RequiredEkuNotFoundContext(_) | W::EmptyEkuExtension => {
            ChainError::IssuerExtendedKeyUsage { subject }
        }
        W::InvalidSignatureForPublicKey | W::SignatureAlgorithmMismatch => {
            ChainError::BadSignature { subject }
        }
        W::UnsupportedSignatureAlgorithmContext(_)
        | W::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            ChainError::UnsupportedAlgorithm { subject }
        }
        W::MaximumPathDepthExceeded
        | W::MaximumSignatureChecksExceeded
        | W::MaximumPathBuildCallsExceeded
        | W::MaximumNameConstraintComparisonsExceeded => ChainError::TooComplex { subject },
        W::UnsupportedCertVersion => ChainError::Malformed {
            subject,
            why: "a certificate on the path is not X.509 v3".into(),
        },
        W::BadDer | W::BadDerTime | W::TrailingData(_) | W::ExtensionValueInvalid
        | W::MalformedExtensions | W::InvalidCertValidity => ChainError::Malformed {
            subject,
            why: format!("a certificate on the path does not parse as RFC 5280 requires ({e:?})"),
        },
        other => ChainError::Rejected {
            subject,
            why: format!("{other:?}"),
        },
    }
}

/// Check that `leaf` (with `intermediates` from the bundle) chains to one of `roots` by RFC 5280,
/// every certificate valid at the leaf's notBefore, and that the leaf may sign code. Returns the
/// leaf's public key, or why the chain is not trusted.
pub fn verify_chain(
    leaf: &Cert,
    intermediates: &[Cert],
    roots: &[Cert],
) -> Result<VerifyingKey, ChainError> {
    let at = leaf.validity().0;
    check_signer_usage(leaf)?;
    let subject = leaf.subject();
    let leaf_der = CertificateDer::from(leaf.der.as_slice());
    let ee =
        webpki::EndEntityCert::try_from(&leaf_der).map_err(|e| explain(e, leaf, &[leaf], roots))?;
    // Trust anchors, each with its certificate. A root webpki cannot read is left out (another
    // may still anchor the chain; an unanchored chain is reported as such).
    let root_ders: Vec<CertificateDer<'_>> = roots
        .iter()
        .map(|r| CertificateDer::from(r.der.as_slice()))
        .collect();
    let (anchors, anchor_certs): (Vec<TrustAnchor<'_>>, Vec<&Cert>) = root_ders
        .iter()
        .zip(roots)
        .filter_map(|(d, r)| webpki::anchor_from_trusted_cert(d).ok().map(|a| (a, r)))
        .unzip();
    // Intermediates: the bundle's, and trusted certificates that are not roots themselves (OpenSSL
    // also builds through certificates from its store).
    let mut pool: Vec<&Cert> = intermediates.iter().collect();
    pool.extend(roots.iter().filter(|r| !r.self_issued()));
    let pool_ders: Vec<CertificateDer<'_>> = pool
        .iter()
        .map(|c| CertificateDer::from(c.der.as_slice()))
        .collect();
    let mut known: Vec<&Cert> = vec![leaf];
    known.extend(pool.iter().copied());

    let rejected: RefCell<Option<ChainError>> = RefCell::new(None);
    let extra = |p: &webpki::VerifiedPath<'_>| -> Result<(), webpki::Error> {
        let Some(i) = anchors.iter().position(|a| std::ptr::eq(a, p.anchor())) else {
            return Err(webpki::Error::UnknownIssuer);
        };
        check_path(p, leaf, &known, anchor_certs[i], at).map_err(|e| {
            rejected.borrow_mut().get_or_insert(e);
            // Any non-fatal error: path building goes on with other candidates.
            webpki::Error::UnknownIssuer
        })
    };
    let result = ee.verify_for_usage(
        ALGORITHMS,
        &anchors,
        &pool_ders,
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(at)),
        CodeSigning,
        None,
        Some(&extra),
    );
    match result {
        Ok(_) => leaf.public_key().map_err(|e| ChainError::Malformed {
            subject,
            why: e.to_string(),
        }),
        // A path that passed webpki but not the checks above explains the failure best.
        Err(e) => Err(rejected
            .into_inner()
            .unwrap_or_else(|| explain(e, leaf, &known, roots))),
    }
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

    #[test]
    fn dns_constraint_matching_is_openssls() {
        assert!(dns_in("example.com", "example.com"));
        assert!(dns_in("a.example.com", "example.com"));
        assert!(dns_in("A.Example.COM", "example.com"));
        assert!(!dns_in("badexample.com", "example.com"));
        assert!(!dns_in("example.com", ".example.com"));
        assert!(dns_in("a.example.com", ".example.com"));
        assert!(dns_in("anything.org", ""));
        assert!(!dns_in("com", "example.com"));
    }

    #[test]
    fn host_like_common_names() {
        assert!(looks_like_host("evil.example.org"));
        assert!(!looks_like_host("Model Signer"));
        assert!(!looks_like_host("localhost"));
        assert!(!looks_like_host("a..b"));
        assert!(!looks_like_host("-a.b"));
    }
}
