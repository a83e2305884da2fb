//! SARIF 2.1.0 sink: one run, one result per finding, rules from the codes table.

use super::{codes, Finding, Severity};
use serde_json::{json, Value};

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Info => "note",
        Severity::Low => "note",
        Severity::Medium => "warning",
        Severity::High | Severity::Critical => "error",
    }
}

/// Render findings as a SARIF log. `tool_version` is mlsign's version.
pub fn to_sarif(findings: &[Finding]) -> Value {
    let mut rule_ids: Vec<&str> = findings.iter().map(|f| f.code).collect();
    rule_ids.sort_unstable();
    rule_ids.dedup();
    let rules: Vec<Value> = rule_ids
        .iter()
        .map(|id| {
            json!({
                "id": id,
                "shortDescription": {"text": codes::describe(id).unwrap_or(id)},
            })
        })
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let mut r = json!({
                "ruleId": f.code,
                "level": level(f.severity),
                "message": {"text": f.message},
                "properties": {"severity": f.severity.as_str()},
            });
            if let Some(loc) = &f.location {
                let mut phys = json!({"artifactLocation": {"uri": loc.path}});
                if let Some(off) = loc.offset {
                    phys["region"] = json!({"byteOffset": off});
                }
                let mut l = json!({"physicalLocation": phys});
                if let Some(m) = &loc.member {
                    l["logicalLocations"] = json!([{"name": m, "kind": "member"}]);
                }
                if let Some(s) = loc.stream {
                    l["properties"] = json!({"pickleStream": s});
                }
                r["locations"] = json!([l]);
            }
            r
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "mlsign",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/mlsign/mlsign",
                "rules": rules,
            }},
            "results": results,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Location;

    #[test]
    fn sarif_has_rules_and_locations() {
        let f = vec![
            Finding::new("SIG001", Severity::High, "hash mismatch").at(Location {
                path: "a/b".into(),
                member: Some("data.pkl".into()),
                stream: None,
                offset: Some(7),
            }),
        ];
        let v = to_sarif(&f);
        assert_eq!(v["version"], "2.1.0");
        let run = &v["runs"][0];
        assert_eq!(run["tool"]["driver"]["rules"][0]["id"], "SIG001");
        let r = &run["results"][0];
        assert_eq!(r["level"], "error");
        assert_eq!(
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            "a/b"
        );
        assert_eq!(
            r["locations"][0]["physicalLocation"]["region"]["byteOffset"],
            7
        );
    }
}
