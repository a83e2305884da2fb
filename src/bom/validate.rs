//! `mlsign bom validate`: the official CycloneDX 1.6 JSON schema (bundled, resolved offline),
//! then what a schema cannot see: duplicate bom-refs, dangling references and models without
//! hashes. Every problem is located by a JSON pointer (RFC 6901).

use super::BomError;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::OnceLock;

const BOM_SCHEMA: &str = include_str!("schema/bom-1.6.SNAPSHOT.schema.json");
const JSF_SCHEMA: &str = include_str!("schema/jsf-0.82.SNAPSHOT.schema.json");
const SPDX_SCHEMA: &str = include_str!("schema/spdx.SNAPSHOT.schema.json");

/// One problem in a BOM document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Issue {
    /// Finding code (`BOM001` …).
    pub code: &'static str,
    /// JSON pointer of the offending value ("" is the whole document).
    pub pointer: String,
    pub message: String,
}

fn validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        // The bundled schemas are fixed at compile time; a unit test proves they load.
        let parse = |s: &str| serde_json::from_str::<Value>(s).expect("bundled schema is JSON");
        let res = |s: &str| {
            jsonschema::Resource::from_contents(parse(s)).expect("bundled schema is a resource")
        };
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft7)
            .should_validate_formats(true)
            .with_resource(
                "http://cyclonedx.org/schema/spdx.SNAPSHOT.schema.json",
                res(SPDX_SCHEMA),
            )
            .with_resource(
                "http://cyclonedx.org/schema/jsf-0.82.SNAPSHOT.schema.json",
                res(JSF_SCHEMA),
            )
            .build(&parse(BOM_SCHEMA))
            .expect("bundled CycloneDX 1.6 schema compiles")
    })
}

/// The SPDX license ids the bundled schema accepts, keyed by lower case.
pub fn spdx_ids() -> &'static HashMap<String, String> {
    static IDS: OnceLock<HashMap<String, String>> = OnceLock::new();
    IDS.get_or_init(|| {
        let v: Value = serde_json::from_str(SPDX_SCHEMA).unwrap_or(Value::Null);
        v["enum"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str())
                    .map(|s| (s.to_ascii_lowercase(), s.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// Parse bytes as JSON; the error names line and column.
pub fn parse(bytes: &[u8]) -> Result<Value, BomError> {
    // Duplicate keys are refused: validators and consumers disagree on which value counts.
    crate::json::value_from_slice(bytes).map_err(|e| BomError::NotJson(e.to_string()))
}

/// Validate a parsed document. Returns every issue found (empty = valid). A document that is
/// not CycloneDX 1.6 at all is an error, not an issue list.
pub fn validate(doc: &Value) -> Result<Vec<Issue>, BomError> {
    match (doc.get("bomFormat"), doc.get("specVersion")) {
        (Some(Value::String(f)), Some(Value::String(v))) if f == "CycloneDX" && v == "1.6" => {}
        (Some(Value::String(f)), Some(Value::String(v))) if f == "CycloneDX" => {
            return Err(BomError::UnsupportedSpec(v.clone()))
        }
        _ => return Err(BomError::NotCycloneDx),
    }
    let mut issues: Vec<Issue> = validator()
        .iter_errors(doc)
        .map(|e| Issue {
            code: "BOM001",
            pointer: e.instance_path.to_string(),
            message: schema_message(&e),
        })
        .collect();
    issues.extend(semantic(doc));
    issues.sort_by(|a, b| (&a.pointer, a.code).cmp(&(&b.pointer, b.code)));
    issues.dedup();
    Ok(issues)
}

/// The schema error text, shortened: jsonschema quotes the whole offending instance, which for
/// a component can be kilobytes.
fn schema_message(e: &jsonschema::ValidationError) -> String {
    let mut m = e.to_string();
    if m.len() > 300 {
        let mut cut = 300;
        while !m.is_char_boundary(cut) {
            cut -= 1;
        }
        m.truncate(cut);
        m.push('…');
    }
    format!("schema: {m} (schema path {})", e.schema_path)
}

fn escape(seg: &str) -> String {
    seg.replace('~', "~0").replace('/', "~1")
}

/// Reference-integrity and ML checks the schema cannot express.
pub fn semantic(doc: &Value) -> Vec<Issue> {
    let mut refs: HashMap<String, String> = HashMap::new(); // bom-ref -> first pointer
    let mut issues = Vec::new();
    let mut uses: Vec<(String, String)> = Vec::new(); // (pointer, referenced bom-ref)
    walk(doc, String::new(), &mut |ptr, key, v| match (key, v) {
        ("bom-ref", Value::String(r)) => {
            if let Some(first) = refs.get(r) {
                issues.push(Issue {
                    code: "BOM002",
                    pointer: ptr.to_string(),
                    message: format!("duplicate bom-ref {r:?} (first defined at {first})"),
                });
            } else {
                refs.insert(r.clone(), ptr.to_string());
            }
        }
        ("ref", Value::String(r)) => uses.push((ptr.to_string(), r.clone())),
        ("dependsOn" | "provides" | "assemblies" | "subjects", Value::Array(a)) => {
            for (i, x) in a.iter().enumerate() {
                if let Value::String(r) = x {
                    uses.push((format!("{ptr}/{i}"), r.clone()));
                }
            }
        }
        _ => {}
    });
    for (ptr, r) in uses {
        // BOM-Links point into other BOMs; they cannot be resolved here.
        if !r.starts_with("urn:cdx:") && !refs.contains_key(&r) {
            issues.push(Issue {
                code: "BOM003",
                pointer: ptr,
                message: format!("reference {r:?} names no bom-ref in this BOM"),
            });
        }
    }
    // Models must be pinned by content.
    let mut models = Vec::new();
    if let Some(c) = doc.pointer("/metadata/component") {
        collect_models(c, "/metadata/component".into(), &mut models);
    }
    if let Some(Value::Array(a)) = doc.get("components") {
        for (i, c) in a.iter().enumerate() {
            collect_models(c, format!("/components/{i}"), &mut models);
        }
    }
    for (ptr, c) in models {
        let has = matches!(c.get("hashes"), Some(Value::Array(h)) if !h.is_empty());
        if !has {
            let name = c.get("name").and_then(Value::as_str).unwrap_or("?");
            issues.push(Issue {
                code: "BOM004",
                pointer: ptr,
                message: format!(
                    "machine-learning-model {name:?} has no hashes: nothing pins its weights"
                ),
            });
        }
    }
    issues
}

fn collect_models<'a>(c: &'a Value, ptr: String, out: &mut Vec<(String, &'a Value)>) {
    if c.get("type").and_then(Value::as_str) == Some("machine-learning-model") {
        out.push((ptr.clone(), c));
    }
    if let Some(Value::Array(a)) = c.get("components") {
        for (i, k) in a.iter().enumerate() {
            collect_models(k, format!("{ptr}/components/{i}"), out);
        }
    }
}

/// Visit every (pointer-to-value, key, value) pair of every object, depth first. Iterative so a
/// hostile, deeply nested document cannot overflow the stack.
fn walk(doc: &Value, root: String, f: &mut dyn FnMut(&str, &str, &Value)) {
    let mut stack: Vec<(String, &Value)> = vec![(root, doc)];
    while let Some((ptr, v)) = stack.pop() {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter().rev() {
                    let p = format!("{ptr}/{}", escape(k));
                    f(&p, k, x);
                    stack.push((p, x));
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate().rev() {
                    stack.push((format!("{ptr}/{i}"), x));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({
            "bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1,
            "metadata": {"component": {"type": "machine-learning-model", "name": "m",
                "bom-ref": "model", "hashes": [{"alg": "SHA-256", "content": "a".repeat(64)}]}},
            "components": [{"type": "data", "name": "d", "bom-ref": "data"}],
            "dependencies": [{"ref": "model", "dependsOn": ["data"]}]
        })
    }

    #[test]
    fn minimal_bom_is_valid() {
        assert_eq!(validate(&minimal()).unwrap(), vec![]);
    }

    #[test]
    fn schema_errors_carry_pointers() {
        let mut d = minimal();
        d["metadata"]["component"]["hashes"][0]["alg"] = json!("sha256");
        d["components"][0]["bogus"] = json!(1);
        let issues = validate(&d).unwrap();
        let ptrs: Vec<&str> = issues.iter().map(|i| i.pointer.as_str()).collect();
        assert!(
            ptrs.contains(&"/metadata/component/hashes/0/alg"),
            "{issues:?}"
        );
        assert!(ptrs.contains(&"/components/0"), "{issues:?}");
        assert!(issues.iter().all(|i| i.code == "BOM001"));
    }

    #[test]
    fn semantic_errors() {
        let mut d = minimal();
        d["components"][0]["bom-ref"] = json!("model");
        d["metadata"]["component"]
            .as_object_mut()
            .unwrap()
            .remove("hashes");
        d["metadata"]["component"]["modelCard"] = json!({"modelParameters": {"datasets": [{"ref": "nowhere"}, {"ref": "urn:cdx:x/1#y"}]}});
        let issues = validate(&d).unwrap();
        let got: Vec<(&str, &str)> = issues
            .iter()
            .map(|i| (i.code, i.pointer.as_str()))
            .collect();
        assert!(
            got.contains(&("BOM002", "/components/0/bom-ref")),
            "{got:?}"
        );
        assert!(
            got.contains(&("BOM003", "/dependencies/0/dependsOn/0")),
            "{got:?}"
        );
        assert!(
            got.contains(&(
                "BOM003",
                "/metadata/component/modelCard/modelParameters/datasets/0/ref"
            )),
            "{got:?}"
        );
        assert!(got.contains(&("BOM004", "/metadata/component")), "{got:?}");
        assert_eq!(got.iter().filter(|g| g.0 == "BOM003").count(), 2);
    }

    #[test]
    fn other_specs_are_errors() {
        let mut d = minimal();
        d["specVersion"] = json!("1.5");
        assert!(matches!(validate(&d), Err(BomError::UnsupportedSpec(_))));
        assert!(matches!(
            validate(&json!({"a": 1})),
            Err(BomError::NotCycloneDx)
        ));
    }

    /// Fuzz smoke: mutated BOMs are reported or rejected, never panic.
    #[test]
    fn mutated_boms_never_panic() {
        let text = serde_json::to_string(&minimal()).unwrap();
        let b = text.as_bytes();
        for cut in 0..b.len() {
            if let Ok(v) = parse(&b[..cut]) {
                let _ = validate(&v);
            }
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..300 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut m = b.to_vec();
            let i = (seed as usize) % m.len();
            const CH: &[u8] = b"\"[]{}:,0a";
            m[i] = CH[(seed >> 32) as usize % CH.len()];
            if let Ok(v) = parse(&m) {
                let _ = validate(&v);
            }
        }
        // Deep nesting is refused by the parser, not a stack overflow.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse(deep.as_bytes()).is_err());
    }

    #[test]
    fn spdx_ids_load() {
        assert_eq!(spdx_ids().get("apache-2.0").unwrap(), "Apache-2.0");
    }
}
