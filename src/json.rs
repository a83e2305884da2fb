//! JSON inputs whose meaning a duplicate key could change are read here, once: any object, at
//! any depth, naming the same key twice is an error. serde_json (and Python's `json`) keep the
//! last value, Go's `encoding/json` too, while other parsers keep the first or fail: a document
//! with `{"digest": A, "digest": B}` can mean A to one tool and B to another, which is how a
//! signed or validated document is made to say something else downstream. Keys are compared
//! after unescaping, so `"a"` and `"\u0061"` are the same key.
//!
//! Where each input stands (docs/json-inputs.md has the table): BOMs (`bom validate`, `show`,
//! `verify`, `diff`, signing and checking BOM attestations), Sigstore bundles, signed in-toto
//! statements, dataset lineage files, mlsign network specs and behave JSONL prompts are strict.
//! Hugging Face `config.json` and `tokenizer.json` keep last-wins: the loaders that consume them
//! (transformers through Python's `json`, the `tokenizers` crate through serde_json) read the
//! last value, so mlsign reads what the model's users load.

use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// Parse `bytes` as one JSON value, rejecting duplicate keys (error with line and column).
pub fn value_from_slice(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = Strict.deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

/// [`value_from_slice`] for text.
pub fn value_from_str(text: &str) -> Result<Value, serde_json::Error> {
    value_from_slice(text.as_bytes())
}

/// Parse `bytes` into `T`, rejecting duplicate keys anywhere in the document. Two passes, so
/// that shape errors (missing or unknown fields) keep serde_json's line and column.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    check_slice(bytes)?;
    serde_json::from_slice(bytes)
}

/// Check that `bytes` is one JSON value without a duplicate key at any depth, building
/// nothing: unescaped strings are borrowed, so a bundle with a payload of hundreds of MB is
/// checked without a copy of it. Accepts exactly what [`value_from_slice`] accepts.
pub fn check_slice(bytes: &[u8]) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    StrictCheck.deserialize(&mut de)?;
    de.end()
}

/// Visits a value like [`Strict`] but keeps nothing except, per object, its keys so far.
#[derive(Clone, Copy)]
pub(crate) struct StrictCheck;

/// The error [`Strict`] and [`StrictCheck`] give for a key an object already has.
pub(crate) fn duplicate_key<E: de::Error>(k: &str) -> E {
    E::custom(format!(
        "duplicate key {k:?} (a JSON object must name each key once: parsers disagree on which value counts)"
    ))
}

impl<'de> DeserializeSeed<'de> for StrictCheck {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictCheck {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        Number::from_f64(v)
            .map(|_| ())
            .ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(StrictCheck)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut keys = Keys::default();
        while let Some(k) = map.next_key::<String>()? {
            keys.insert::<A::Error>(k)?;
            map.next_value_seed(StrictCheck)?;
        }
        Ok(())
    }
}

/// The keys of one object so far (a linear scan while few, a set beyond).
#[derive(Default)]
pub(crate) struct Keys {
    few: Vec<String>,
    many: std::collections::HashSet<String>,
}

impl Keys {
    pub(crate) fn insert<E: de::Error>(&mut self, k: String) -> Result<(), E> {
        if self.few.len() < 16 {
            if self.few.contains(&k) {
                return Err(duplicate_key(&k));
            }
            self.few.push(k);
            return Ok(());
        }
        if self.few.contains(&k) || self.many.contains(&k) {
            return Err(duplicate_key(&k));
        }
        self.many.insert(k);
        Ok(())
    }
}

/// Builds a [`Value`] like serde_json does, refusing a key an object already has.
#[derive(Clone, Copy)]
pub(crate) struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut v = Vec::new();
        while let Some(x) = seq.next_element_seed(Strict)? {
            v.push(x);
        }
        Ok(Value::Array(v))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut m = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if m.contains_key(&k) {
                return Err(duplicate_key(&k));
            }
            let v = map.next_value_seed(Strict)?;
            m.insert(k, v);
        }
        Ok(Value::Object(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_refused_at_any_depth_and_after_unescaping() {
        for doc in [
            r#"{"a":1,"a":2}"#,
            r#"{"x":[{"b":1,"c":{"d":1,"d":1}}]}"#,
            r#"{"a":1,"\u0061":2}"#,
        ] {
            let e = value_from_str(doc).unwrap_err().to_string();
            assert!(e.contains("duplicate key"), "{doc}: {e}");
            assert!(e.contains("line 1"), "{doc}: {e}");
        }
    }

    #[test]
    fn same_values_as_serde_json_otherwise() {
        let doc = r#"{"a":[1,-2,3.5,18446744073709551615,1e400000000000000000000,"s\n",null,true],"b":{"c":{}},"z":0}"#;
        // serde_json refuses the overflowing float; so must we.
        assert!(value_from_str(doc).is_err());
        let doc = r#" {"a":[1,-2,3.5,18446744073709551615,"s\n",null,true],"b":{"c":{}},"z":0} "#;
        let ours = value_from_str(doc).unwrap();
        let theirs: Value = serde_json::from_str(doc).unwrap();
        assert_eq!(ours, theirs);
        assert_eq!(
            serde_json::to_string(&ours).unwrap(),
            serde_json::to_string(&theirs).unwrap(),
            "key order kept"
        );
        assert!(value_from_str(r#"{"a":1} x"#).is_err(), "trailing data");
        assert!(value_from_str(&"[".repeat(200)).is_err(), "recursion limit");
    }

    #[test]
    fn signed_statements_and_bundles_are_strict() {
        let e = crate::attest::statement::parse_model_statement(
            br#"{"_type":"https://in-toto.io/Statement/v1","_type":"x"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("duplicate key"), "{e}");
        let e = crate::attest::bundle::Bundle::parse(
            br#"{"mediaType":"a","mediaType":"b"}"#,
            std::path::Path::new("b.sig"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("duplicate key"), "{e}");
    }
}
