//! The in-toto Statement v1 that OpenSSF model signing signs, built and parsed.

#[cfg(test)]
use crate::digest::Resource;
use crate::digest::{HashConfig, Manifest, Method, ResourceSource};
use serde_json::{json, Map, Value};

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_V1: &str = "https://model_signing/signature/v1.0";
pub const PREDICATE_V01: &str = "https://model_signing/Digests/v0.1";
/// Subject annotation recording whether a model or a dataset was signed. model_signing ignores
/// it (v1.0 verifiers ignore unknown fields); mlsign's BOMs read it.
pub const KIND_ANNOTATION: &str = "mlsign.dev/kind";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SubjectKind {
    #[default]
    Model,
    Dataset,
}

impl SubjectKind {
    pub fn name(self) -> &'static str {
        match self {
            SubjectKind::Model => "model",
            SubjectKind::Dataset => "dataset",
        }
    }
}

/// The `serialization` object model_signing records (and re-applies when verifying).
pub fn serialization_json(config: &HashConfig) -> Value {
    let mut m = Map::new();
    match config.method {
        Method::Files => {
            m.insert("method".into(), json!("files"));
            m.insert("hash_type".into(), json!(config.algorithm.name()));
        }
        Method::Shards { shard_size } => {
            m.insert("method".into(), json!("shards"));
            m.insert("hash_type".into(), json!(config.algorithm.name()));
            // An integer: model_signing's own float (1e9 → 1000000000.0) breaks its API readers.
            m.insert("shard_size".into(), json!(shard_size));
        }
    }
    m.insert("allow_symlinks".into(), json!(config.allow_symlinks));
    let mut ignore = config.ignore_paths.clone();
    ignore.sort();
    ignore.dedup();
    if !ignore.is_empty() {
        m.insert("ignore_paths".into(), json!(ignore));
    }
    Value::Object(m)
}

/// The exact payload bytes for a model/dataset manifest (2-space indented JSON, as
/// model_signing writes it). See [`write_model_statement`].
pub fn model_statement(
    subject_name: &str,
    kind: SubjectKind,
    manifest: &Manifest,
    config: &HashConfig,
) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = write_model_statement(&mut out, subject_name, kind, manifest, config);
    out
}

/// The statement around its resources array: `(before, after)` the array's text, with the
/// subject digest filled in. Made by serde's pretty printer, so it is byte for byte what a JSON
/// tree would give.
fn statement_frame(
    subject_name: &str,
    kind: SubjectKind,
    root_hex: &str,
    config: &HashConfig,
) -> (String, String) {
    #[derive(serde::Serialize)]
    struct Statement<'a> {
        #[serde(rename = "_type")]
        type_: &'static str,
        subject: [Subject<'a>; 1],
        #[serde(rename = "predicateType")]
        predicate_type: &'static str,
        predicate: Predicate<'a>,
    }
    #[derive(serde::Serialize)]
    struct Subject<'a> {
        name: &'a str,
        digest: Digest<'a>,
        annotations: Annotations,
    }
    #[derive(serde::Serialize)]
    struct Digest<'a> {
        sha256: &'a str,
    }
    #[derive(serde::Serialize)]
    struct Annotations {
        #[serde(rename = "mlsign.dev/kind")]
        kind: &'static str,
    }
    #[derive(serde::Serialize)]
    struct Predicate<'a> {
        resources: &'a str,
        serialization: Value,
    }
    // A placeholder string where the array goes; a name that happens to contain it only
    // makes us pick another.
    for n in 0u32.. {
        let mark = format!("\u{1}mlsign-resources-{n}\u{1}");
        let st = Statement {
            type_: STATEMENT_TYPE,
            subject: [Subject {
                name: subject_name,
                digest: Digest { sha256: root_hex },
                annotations: Annotations { kind: kind.name() },
            }],
            predicate_type: PREDICATE_V1,
            predicate: Predicate {
                resources: &mark,
                serialization: serialization_json(config),
            },
        };
        let text = serde_json::to_string_pretty(&st).unwrap_or_default();
        let quoted = serde_json::to_string(&mark).unwrap_or_default();
        if text.matches(&quoted).count() == 1 {
            if let Some((before, after)) = text.split_once(&quoted) {
                return (before.to_string(), after.to_string());
            }
        }
    }
    unreachable!("some placeholder is unique")
}

/// Write the statement of `resources` to `w`, streamed: what it costs does not grow with the
/// number of resources, so the signer can produce it as many times as it needs (length,
/// signature, bundle) instead of holding it. Byte-identical to serde's pretty printer over the
/// whole statement (`streamed_payload_equals_the_json_tree_form`).
pub fn write_model_statement(
    w: &mut dyn std::io::Write,
    subject_name: &str,
    kind: SubjectKind,
    resources: &dyn ResourceSource,
    config: &HashConfig,
) -> std::io::Result<()> {
    let root_hex = hex::encode(resources.root_digest());
    let (before, after) = statement_frame(subject_name, kind, &root_hex, config);
    w.write_all(before.as_bytes())?;
    if resources.resource_count() == 0 {
        w.write_all(b"[]")?;
    } else {
        // Depth: statement › predicate › resources, two spaces a level.
        let mut buf = Vec::with_capacity(256);
        let mut first = true;
        resources.each_resource(&mut |r| {
            buf.clear();
            buf.extend_from_slice(if first { b"[\n      {" } else { b",\n      {" });
            first = false;
            buf.extend_from_slice(b"\n        \"name\": ");
            serde_json::to_writer(&mut buf, r.name)?;
            buf.extend_from_slice(b",\n        \"digest\": \"");
            let at = buf.len();
            buf.resize(at + r.digest.len() * 2, 0);
            hex::encode_to_slice(r.digest, &mut buf[at..]).map_err(std::io::Error::other)?;
            buf.extend_from_slice(b"\",\n        \"algorithm\": ");
            serde_json::to_writer(&mut buf, r.algorithm)?;
            buf.extend_from_slice(b"\n      }");
            w.write_all(&buf)
        })?;
        w.write_all(b"\n    ]")?;
    }
    w.write_all(after.as_bytes())?;
    w.write_all(b"\n")
}

/// What a verified payload says was signed.
#[derive(Clone, Debug)]
pub struct SignedManifest {
    pub subject_name: String,
    pub kind: Option<SubjectKind>,
    pub predicate_type: String,
    /// How to re-hash: algorithm, method, symlinks and the recorded ignore paths.
    pub config: HashConfig,
    pub manifest: Manifest,
    pub root_digest: String,
}

/// Why a signed payload is not an acceptable model statement. Every one is a reason to reject
/// the signature: the payload is what was signed.
#[derive(Debug, thiserror::Error)]
pub enum StatementError {
    #[error("signed payload is not JSON: {0}")]
    NotJson(String),
    #[error("{at}: missing \"{key}\"")]
    Missing { at: String, key: String },
    #[error("{at}.{key}: expected a string")]
    NotString { at: String, key: String },
    #[error("{at}: expected {what}")]
    Expected {
        at: &'static str,
        what: &'static str,
    },
    #[error("statement _type is {0:?}, expected {STATEMENT_TYPE:?}")]
    StatementType(String),
    #[error("predicateType {0:?} is not a model signature (expected {PREDICATE_V1:?})")]
    NotModelSignature(String),
    #[error("expected exactly one subject, found {0}")]
    SubjectCount(usize),
    #[error("serialization.hash_type {0:?} is not supported")]
    HashType(String),
    #[error("serialization.method {0:?} is not supported")]
    Method(String),
    #[error("serialization.shard_size {0} is not a positive integer")]
    ShardSize(String),
    #[error("{at}: algorithm {found:?} disagrees with the serialization ({expected:?})")]
    Algorithm {
        at: String,
        found: String,
        expected: String,
    },
    #[error("{at}: digest is not hex")]
    DigestNotHex { at: String },
    #[error("{at}: digest has {got} bytes, expected {want}")]
    DigestLength { at: String, got: usize, want: usize },
    #[error("{at}: shard name {name:?} is not PATH:START:END")]
    ShardName { at: String, name: String },
    #[error("manifest is inconsistent: subject digest is {subject}, but the resources hash to {computed}")]
    RootMismatch { subject: String, computed: String },
    #[error(transparent)]
    ResourceName(crate::digest::Error),
    #[error("manifest lists {0:?} twice")]
    Duplicate(String),
    #[error("manifest has too many resources or too long names to index")]
    TooLarge,
}

/// Parse the signed payload of a model signature (predicate v1.0 or legacy v0.1). Every error is
/// a reason to reject the signature: the payload is what was signed. One pass, without a JSON
/// tree (see [`super::statement_parse`]); this form holds the resources as [`Manifest`].
pub fn parse_model_statement(payload: &[u8]) -> Result<SignedManifest, StatementError> {
    let c = super::statement_parse::parse_compact(payload)?;
    Ok(SignedManifest {
        manifest: c.resources.to_manifest(),
        subject_name: c.subject_name,
        kind: c.kind,
        predicate_type: c.predicate_type,
        config: c.config,
        root_digest: c.root_digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Manifest, HashConfig) {
        let m = Manifest::from_resources(vec![
            Resource {
                name: "a/b".into(),
                algorithm: "sha256".into(),
                digest: vec![1; 32],
            },
            Resource {
                name: "a.txt".into(),
                algorithm: "sha256".into(),
                digest: vec![2; 32],
            },
        ]);
        (m, HashConfig::default())
    }

    #[test]
    fn streamed_payload_equals_the_json_tree_form() {
        // The bytes model_signing-compatible verifiers saw before the streaming writer.
        let (m, cfg) = sample();
        let resources: Vec<Value> = m
            .resources()
            .iter()
            .map(|r| json!({"name": r.name, "digest": r.hex(), "algorithm": r.algorithm}))
            .collect();
        let st = json!({
            "_type": STATEMENT_TYPE,
            "subject": [{
                "name": "bert",
                "digest": {"sha256": m.root_digest_hex()},
                "annotations": {KIND_ANNOTATION: "model"},
            }],
            "predicateType": PREDICATE_V1,
            "predicate": {"resources": resources, "serialization": serialization_json(&cfg)},
        });
        let mut want = serde_json::to_vec_pretty(&st).unwrap();
        want.push(b'\n');
        assert_eq!(
            String::from_utf8(model_statement("bert", SubjectKind::Model, &m, &cfg)).unwrap(),
            String::from_utf8(want).unwrap()
        );
        let empty = Manifest::from_resources(vec![]);
        assert!(
            String::from_utf8(model_statement("e", SubjectKind::Model, &empty, &cfg))
                .unwrap()
                .contains("\"resources\": []")
        );
    }

    #[test]
    fn streamed_payload_equals_the_tree_form_for_shards_and_odd_names() {
        let cfg = HashConfig {
            method: Method::Shards { shard_size: 4 },
            ignore_paths: vec!["x\"y".into(), ".git".into()],
            ..HashConfig::default()
        };
        let names = [
            "a\"b\\c:0:4",
            "caf\u{e9}/\u{1}ctl\t:0:4",
            "\u{1}mlsign-resources-0\u{1}:0:4",
            "z:4:8",
        ];
        let m = Manifest::from_resources(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| Resource {
                    name: n.to_string(),
                    algorithm: "sha256-sharded-4".into(),
                    digest: vec![i as u8; 32],
                })
                .collect(),
        );
        // The subject name collides with the first placeholder the writer would try.
        let subject = "\u{1}mlsign-resources-0\u{1}";
        let resources: Vec<Value> = m
            .resources()
            .iter()
            .map(|r| json!({"name": r.name, "digest": r.hex(), "algorithm": r.algorithm}))
            .collect();
        let st = json!({
            "_type": STATEMENT_TYPE,
            "subject": [{
                "name": subject,
                "digest": {"sha256": m.root_digest_hex()},
                "annotations": {KIND_ANNOTATION: "dataset"},
            }],
            "predicateType": PREDICATE_V1,
            "predicate": {"resources": resources, "serialization": serialization_json(&cfg)},
        });
        let mut want = serde_json::to_vec_pretty(&st).unwrap();
        want.push(b'\n');
        let got = model_statement(subject, SubjectKind::Dataset, &m, &cfg);
        assert_eq!(
            String::from_utf8(got).unwrap(),
            String::from_utf8(want).unwrap()
        );
    }

    #[test]
    fn roundtrip_v1() {
        let (m, cfg) = sample();
        let p = model_statement("bert", SubjectKind::Dataset, &m, &cfg);
        let s = parse_model_statement(&p).unwrap();
        assert_eq!(s.subject_name, "bert");
        assert_eq!(s.kind, Some(SubjectKind::Dataset));
        assert_eq!(s.manifest, m);
        assert_eq!(
            s.config.ignore_paths,
            [".git", ".gitattributes", ".github", ".gitignore"]
        );
        assert!(std::str::from_utf8(&p)
            .unwrap()
            .starts_with("{\n  \"_type\""));
    }

    #[test]
    fn rejects_escaping_and_inconsistent_manifests() {
        let (_, cfg) = sample();
        let evil = Manifest::from_resources(vec![Resource {
            name: "../etc/passwd".into(),
            algorithm: "sha256".into(),
            digest: vec![1; 32],
        }]);
        let p = model_statement("m", SubjectKind::Model, &evil, &cfg);
        let e = parse_model_statement(&p).unwrap_err();
        assert!(matches!(e, StatementError::ResourceName(_)), "{e:?}");
        assert!(e.to_string().contains(".."), "{e}");
        let (m, cfg) = sample();
        let p = String::from_utf8(model_statement("m", SubjectKind::Model, &m, &cfg)).unwrap();
        let tampered = p.replace(&"01".repeat(32), &"03".repeat(32));
        let e = parse_model_statement(tampered.as_bytes()).unwrap_err();
        assert!(matches!(e, StatementError::RootMismatch { .. }), "{e:?}");
        assert!(e.to_string().contains("inconsistent"), "{e}");
    }

    #[test]
    fn each_way_a_payload_is_wrong_has_its_variant() {
        use StatementError as E;
        let v1 = |subject: &str, ser: &str, resources: &str| {
            format!(
                r#"{{"_type":"{STATEMENT_TYPE}","subject":{subject},"predicateType":"{PREDICATE_V1}",
                "predicate":{{"serialization":{ser},"resources":{resources}}}}}"#
            )
        };
        let one = r#"[{"name":"m","digest":{"sha256":"00"}}]"#;
        let files = r#"{"method":"files","hash_type":"sha256"}"#;
        type Is = fn(&E) -> bool;
        let cases: Vec<(String, Is)> = vec![
            ("{".into(), |e| matches!(e, E::NotJson(_))),
            (r#"{"_type":"x"}"#.into(), |e| {
                matches!(e, E::StatementType(_))
            }),
            (format!(r#"{{"_type":"{STATEMENT_TYPE}"}}"#), |e| {
                matches!(e, E::Missing { .. })
            }),
            (
                format!(r#"{{"_type":"{STATEMENT_TYPE}","predicateType":"p","subject":{{}}}}"#),
                |e| matches!(e, E::Expected { .. }),
            ),
            (
                format!(r#"{{"_type":"{STATEMENT_TYPE}","predicateType":"p","subject":[]}}"#),
                |e| matches!(e, E::NotModelSignature(_)),
            ),
            (v1("[]", files, "[]"), |e| matches!(e, E::SubjectCount(0))),
            (
                v1(one, r#"{"method":"files","hash_type":"md5"}"#, "[]"),
                |e| matches!(e, E::HashType(_)),
            ),
            (
                v1(one, r#"{"method":"tar","hash_type":"sha256"}"#, "[]"),
                |e| matches!(e, E::Method(_)),
            ),
            (
                v1(
                    one,
                    r#"{"method":"shards","hash_type":"sha256","shard_size":1.5}"#,
                    "[]",
                ),
                |e| matches!(e, E::ShardSize(_)),
            ),
            (
                v1(
                    one,
                    files,
                    r#"[{"name":"a","algorithm":"blake3","digest":"00"}]"#,
                ),
                |e| matches!(e, E::Algorithm { .. }),
            ),
            (
                v1(
                    one,
                    files,
                    r#"[{"name":"a","algorithm":"sha256","digest":"zz"}]"#,
                ),
                |e| matches!(e, E::DigestNotHex { .. }),
            ),
            (
                v1(
                    one,
                    files,
                    r#"[{"name":"a","algorithm":"sha256","digest":"00"}]"#,
                ),
                |e| {
                    matches!(
                        e,
                        E::DigestLength {
                            got: 1,
                            want: 32,
                            ..
                        }
                    )
                },
            ),
            (v1(one, files, r#"[{"name":1}]"#), |e| {
                matches!(e, E::NotString { .. })
            }),
            (v1(one, files, "[]"), |e| {
                matches!(e, E::RootMismatch { .. })
            }),
        ];
        for (payload, is) in cases {
            let e = parse_model_statement(payload.as_bytes()).unwrap_err();
            assert!(is(&e), "{payload}: {e:?}");
        }
    }

    #[test]
    fn shard_size_float_accepted_fraction_rejected() {
        let (_, _) = sample();
        let mk = |size: &str| {
            format!(
                r#"{{"_type":"{STATEMENT_TYPE}","subject":[{{"name":"m","digest":{{"sha256":"{}"}}}}],
                "predicateType":"{PREDICATE_V1}","predicate":{{"serialization":{{"method":"shards",
                "hash_type":"sha256","shard_size":{size},"allow_symlinks":false}},"resources":[]}}}}"#,
                hex::encode(crate::digest::manifest_root(&[]))
            )
        };
        let s = parse_model_statement(mk("1048576.0").as_bytes()).unwrap();
        assert_eq!(
            s.config.method,
            Method::Shards {
                shard_size: 1048576
            }
        );
        assert!(parse_model_statement(mk("1.5").as_bytes()).is_err());
        assert!(parse_model_statement(mk("-4").as_bytes()).is_err());
    }
}
