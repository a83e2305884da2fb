//! Keyless Sigstore inputs: bundles of every version through the whole verifier (production
//! root, a fixed artifact and both kinds of signer), trusted roots, signing configs and identity
//! tokens. None may panic or run away with memory.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mlsign::attest::sigstore::{self, sign, Artifact, Expect, Matcher, TrustRoot};

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = sigstore::parse_bundle(data) {
        let root = TrustRoot::production();
        let id = Expect::Identity {
            identity: Matcher::exact("a@b"),
            issuer: Matcher::exact("https://accounts.google.com"),
        };
        let _ = sigstore::verify(&b, Artifact::Bytes(b"fuzz"), &id, &root);
        let _ = sigstore::verify(&b, Artifact::Sha256([7; 32]), &Expect::Key(data.to_vec()), &root);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = TrustRoot::from_json(s, "fuzz");
        let _ = sign::Services::from_signing_config(s);
        let _ = sign::IdentityToken::new(s.to_string());
        let _ = Expect::key_pem(s);
    }
});
