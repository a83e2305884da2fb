//! Signing-side parsers of untrusted input: Sigstore bundles, signed statements, PEM keys and
//! certificate chains. None may panic or run away with memory.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.sig");
    if let Ok(b) = mlsign::attest::bundle::Bundle::parse(data, path) {
        let _ = mlsign::attest::verify_bundle(
            &b,
            path,
            &mlsign::attest::Trust::Roots(Vec::new()),
        );
    }
    let _ = mlsign::attest::statement::parse_model_statement(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = mlsign::attest::VerifyingKey::from_pem(s);
        let _ = mlsign::attest::SigningKey::from_pem(s, &mut || {
            Ok(zeroize::Zeroizing::new("fuzz".to_string()))
        });
    }
    let _ = mlsign::attest::cert::load_pem_chain(data);
    let _ = mlsign::attest::cert::Cert::from_der(data);
});
