//! The ZIP central-directory reader and member extraction on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mlsign::scan::formats::zip;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = zip::read_archive(&data) {
        for e in a.entries.iter().take(64) {
            if let Ok((d, _)) = zip::read_member(&data, e, 1 << 24) {
                assert!(d.len() as u64 <= 1 << 24);
            }
        }
    }
});
