//! The container parsers added for issue 10 on arbitrary bytes: every ZIP reading, the HDF5
//! root-attribute reader, Python-compatible JSON and the Jinja template analyser.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mlsign::scan::formats::{hdf5, jinja, pyjson, zip};

fuzz_target!(|data: &[u8]| {
    if let Ok(all) = zip::read_archives(&data) {
        for a in &all {
            for e in a.entries.iter().take(16) {
                if let Ok((d, _)) = zip::read_member(&data, e, 1 << 20) {
                    assert!(d.len() <= 1 << 20);
                }
            }
        }
    }
    let _ = hdf5::root_attrs(&data, &["model_config", "training_config"]);
    let _ = pyjson::loads(data);
    if let Ok(t) = std::str::from_utf8(data) {
        let _ = jinja::analyse(t);
    }
});
