//! The pickle stack machine and policy on arbitrary bytes: must return findings, never panic,
//! never allocate without bound.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mlsign::scan::{finding::Ctx, pickle, Policy};

fuzz_target!(|data: &[u8]| {
    let policy = Policy::default();
    let scan = pickle::scan_streams(data, 0, &Ctx::default(), &policy, None);
    // Offsets must point inside the input.
    for f in &scan.findings {
        if f.member.is_none() {
            if let Some(o) = f.offset {
                assert!(o <= data.len() as u64, "offset {o} past {}", data.len());
            }
        }
    }
    assert!(scan.end <= data.len());
});
