//! SHA-256 of in-memory bytes and the short digest form used in messages.
//!
//! `sha2` picks the SHA extensions at run time (cpufeatures), so one stream here runs as fast as
//! the kernels in `ring` did; the hashing workers add a two-stream SHA-NI kernel on top
//! (`digest::sha256ni`) for whole files.

use sha2::Digest;

/// SHA-256 of a byte string.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

/// Lower-case hex SHA-256 of a byte string.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha256(data))
}

/// `sha256:0123456789ab` (the algorithm, if any, and 12 hex digits), for messages. By chars:
/// digests from a foreign BOM or lineage record are untrusted text.
pub fn short(d: &str) -> String {
    let cut = |s: &str| s.chars().take(12).collect::<String>();
    match d.split_once(':') {
        Some((a, h)) => format!("{a}:{}", cut(h)),
        None => cut(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_and_short_forms() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(short("sha256:ba7816bf8f01cfea41"), "sha256:ba7816bf8f01");
        assert_eq!(short("ba7816bf8f01cfea41"), "ba7816bf8f01");
        assert_eq!(short("ab"), "ab");
        // Multi-byte text is cut on a char boundary, never panicking.
        assert_eq!(short("x:ééééééééééééé"), "x:éééééééééééé");
    }
}
