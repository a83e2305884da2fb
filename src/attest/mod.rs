//! in-toto statements, DSSE, Sigstore bundles, signing and verification.
