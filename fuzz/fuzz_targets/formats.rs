//! Content sniffing and every container parser (npy, safetensors, GGUF, tar, compressed,
//! torch legacy, Keras) on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mlsign::scan::{scan_bytes, Policy};

fuzz_target!(|data: &[u8]| {
    let mut policy = Policy::default();
    policy.max_member_bytes = 1 << 24;
    let _ = scan_bytes("fuzz", data, &policy);
});
