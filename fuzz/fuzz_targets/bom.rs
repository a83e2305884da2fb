//! ML-BOM and lineage parsers of untrusted input: lockfiles (all four kinds), README front
//! matter, lineage files, BOM documents (schema + reference checks, the typed reader, the
//! auditor's views) and BOM attestation statements. None may panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mlsign::bom::lockfiles::{parse, LockKind};

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        for kind in [LockKind::Cargo, LockKind::Requirements, LockKind::Uv, LockKind::Poetry] {
            let _ = parse(kind, s, "fuzz.lock");
        }
        let mut facts = mlsign::bom::modelcard::ModelFacts::default();
        mlsign::bom::modelcard::from_readme(s, &mut facts);
    }
    let _ = mlsign::dataset::lineage::from_bytes(data, std::path::Path::new("fuzz/lineage.json"));
    if let Ok(doc) = mlsign::bom::validate::parse(data) {
        let _ = mlsign::bom::validate::validate(&doc);
    }
    if let Ok(bom) = mlsign::bom::from_json(data) {
        let v = mlsign::bom::show::view(&bom);
        let _ = v.human();
        let _ = v.html();
    }
    let _ = mlsign::bom::sign::check_statement(data, b"{}");
});
