//! The tree-based statement parser that [`super::statement_parse`] replaced, kept for tests
//! only: the differential tests check that the one-pass parser refuses every mutated payload
//! with the same first reason, and accepts the rest with the same result.

use super::statement::{
    SignedManifest, StatementError, SubjectKind, KIND_ANNOTATION, PREDICATE_V01, PREDICATE_V1,
    STATEMENT_TYPE,
};
use crate::digest::{
    self, check_resource_name, HashAlgorithm, HashConfig, Manifest, Method, Resource,
};
use serde_json::Value;
use std::collections::HashSet;

fn get<'a>(v: &'a Value, key: &str, at: &str) -> Result<&'a Value, StatementError> {
    v.get(key).ok_or_else(|| StatementError::Missing {
        at: at.into(),
        key: key.into(),
    })
}

fn get_str<'a>(v: &'a Value, key: &str, at: &str) -> Result<&'a str, StatementError> {
    get(v, key, at)?
        .as_str()
        .ok_or_else(|| StatementError::NotString {
            at: at.into(),
            key: key.into(),
        })
}

fn expected(at: &'static str, what: &'static str) -> StatementError {
    StatementError::Expected { at, what }
}

fn parse_hex(s: &str, len: usize, at: &str) -> Result<Vec<u8>, StatementError> {
    let d = hex::decode(s).map_err(|_| StatementError::DigestNotHex { at: at.into() })?;
    if d.len() != len {
        return Err(StatementError::DigestLength {
            at: at.into(),
            got: d.len(),
            want: len,
        });
    }
    Ok(d)
}

/// Parse the signed payload of a model signature (predicate v1.0 or legacy v0.1). Every error is
/// a reason to reject the signature: the payload is what was signed.
pub fn parse_model_statement(payload: &[u8]) -> Result<SignedManifest, StatementError> {
    let v: Value = crate::json::value_from_slice(payload)
        .map_err(|e| StatementError::NotJson(e.to_string()))?;
    let t = get_str(&v, "_type", "statement")?;
    if t != STATEMENT_TYPE {
        return Err(StatementError::StatementType(t.into()));
    }
    let pt = get_str(&v, "predicateType", "statement")?;
    let subjects = get(&v, "subject", "statement")?
        .as_array()
        .ok_or(expected("statement.subject", "an array"))?;
    match pt {
        PREDICATE_V1 => parse_v1(&v, subjects),
        PREDICATE_V01 => parse_v01(subjects),
        other => Err(StatementError::NotModelSignature(other.into())),
    }
}

fn check_names(resources: &[Resource]) -> Result<(), StatementError> {
    let mut seen = HashSet::new();
    for r in resources {
        check_resource_name(r.path()).map_err(StatementError::ResourceName)?;
        if !seen.insert(r.name.as_str()) {
            return Err(StatementError::Duplicate(r.name.clone()));
        }
    }
    Ok(())
}

fn parse_v1(v: &Value, subjects: &[Value]) -> Result<SignedManifest, StatementError> {
    if subjects.len() != 1 {
        return Err(StatementError::SubjectCount(subjects.len()));
    }
    let subj = &subjects[0];
    let subject_name = subj
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let root = get_str(get(subj, "digest", "subject")?, "sha256", "subject.digest")?.to_lowercase();
    let kind = subj
        .get("annotations")
        .and_then(|a| a.get(KIND_ANNOTATION))
        .and_then(Value::as_str)
        .and_then(|k| match k {
            "model" => Some(SubjectKind::Model),
            "dataset" => Some(SubjectKind::Dataset),
            _ => None,
        });
    let pred = get(v, "predicate", "statement")?;
    let ser = get(pred, "serialization", "predicate")?;
    let method = get_str(ser, "method", "serialization")?;
    let hash_type = get_str(ser, "hash_type", "serialization")?;
    let algorithm = HashAlgorithm::from_name(hash_type)
        .ok_or_else(|| StatementError::HashType(hash_type.into()))?;
    let allow_symlinks = match ser.get("allow_symlinks") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if s == "false" || s == "true" => s == "true",
        Some(_) => return Err(expected("serialization.allow_symlinks", "a boolean")),
    };
    let method = match method {
        "files" => Method::Files,
        "shards" => {
            let n = get(ser, "shard_size", "serialization")?;
            let size = n
                .as_u64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && *f >= 1.0 && *f < 9.0e15)
                        .map(|f| f as u64)
                })
                .filter(|s| *s > 0)
                .ok_or_else(|| StatementError::ShardSize(n.to_string()))?;
            Method::Shards { shard_size: size }
        }
        other => return Err(StatementError::Method(other.into())),
    };
    let mut ignore_paths = Vec::new();
    if let Some(ig) = ser.get("ignore_paths") {
        for p in ig
            .as_array()
            .ok_or(expected("serialization.ignore_paths", "an array"))?
        {
            let p = p
                .as_str()
                .ok_or(expected("serialization.ignore_paths", "strings"))?;
            ignore_paths.push(p.trim_end_matches('/').to_string());
        }
    }
    let expect_alg = match method {
        Method::Files => algorithm.name().to_string(),
        Method::Shards { shard_size } => format!("{}-sharded-{}", algorithm.name(), shard_size),
    };
    let mut resources = Vec::new();
    for (i, r) in get(pred, "resources", "predicate")?
        .as_array()
        .ok_or(expected("predicate.resources", "an array"))?
        .iter()
        .enumerate()
    {
        let at = format!("predicate.resources[{i}]");
        let name = get_str(r, "name", &at)?.to_string();
        let alg = get_str(r, "algorithm", &at)?;
        if alg != expect_alg {
            return Err(StatementError::Algorithm {
                at,
                found: alg.into(),
                expected: expect_alg,
            });
        }
        let digest = parse_hex(get_str(r, "digest", &at)?, algorithm.digest_len(), &at)?;
        let res = Resource {
            name,
            algorithm: alg.to_string(),
            digest,
        };
        if matches!(method, Method::Shards { .. }) {
            match res.shard() {
                Some((_, s, e)) if e > s => {}
                _ => return Err(StatementError::ShardName { at, name: res.name }),
            }
        }
        resources.push(res);
    }
    // The subject digest covers the resources in the order they were signed.
    let computed = hex::encode(digest::manifest_root(&resources));
    if computed != root {
        return Err(StatementError::RootMismatch {
            subject: root,
            computed,
        });
    }
    check_names(&resources)?;
    Ok(SignedManifest {
        subject_name,
        kind,
        predicate_type: PREDICATE_V1.into(),
        config: HashConfig {
            algorithm,
            method,
            allow_symlinks,
            ignore_paths,
            threads: None,
        },
        manifest: Manifest::from_resources(resources),
        root_digest: root,
    })
}

fn parse_v01(subjects: &[Value]) -> Result<SignedManifest, StatementError> {
    let mut resources = Vec::new();
    for (i, s) in subjects.iter().enumerate() {
        let at = format!("subject[{i}]");
        let name = get_str(s, "name", &at)?.to_string();
        let d = get_str(get(s, "digest", &at)?, "sha256", &at)?;
        resources.push(Resource {
            name,
            algorithm: "sha256".into(),
            digest: parse_hex(d, 32, &at)?,
        });
    }
    check_names(&resources)?;
    let manifest = Manifest::from_resources(resources);
    let root = manifest.root_digest_hex();
    Ok(SignedManifest {
        subject_name: String::new(),
        kind: None,
        predicate_type: PREDICATE_V01.into(),
        config: HashConfig::default(),
        manifest,
        root_digest: root,
    })
}
