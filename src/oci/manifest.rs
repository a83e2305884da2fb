//! OCI image manifests, indexes and descriptors, parsed strictly (unknown fields kept out of
//! the way, duplicate keys refused by serde, digests and sizes validated).

use super::client::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use super::reference::valid_digest;
use super::Error;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Entries in an index or layers in a manifest beyond this are refused (a signature index with
/// a million entries is an attack, not a use).
pub const MAX_ENTRIES: usize = 10_000;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    pub fn check(&self, at: &str) -> Result<(), Error> {
        if !valid_digest(&self.digest) {
            return Err(Error::malformed(
                at,
                format!(
                    "digest {:?} is not sha256:<64 lowercase hex> (other algorithms are not supported)",
                    self.digest
                ),
            ));
        }
        if self.media_type.is_empty() {
            return Err(Error::malformed(at, "descriptor without mediaType"));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ImageManifest {
    pub fn parse(bytes: &[u8], what: &str) -> Result<ImageManifest, Error> {
        let m: ImageManifest = serde_json::from_slice(bytes)
            .map_err(|e| Error::malformed(what, format!("not an image manifest: {e}")))?;
        if m.schema_version != 2 {
            return Err(Error::malformed(
                what,
                format!("schemaVersion {} (expected 2)", m.schema_version),
            ));
        }
        if let Some(mt) = &m.media_type {
            if mt != OCI_MANIFEST && mt != DOCKER_MANIFEST {
                return Err(Error::malformed(
                    what,
                    format!("mediaType {mt:?} is not an image manifest"),
                ));
            }
        }
        if m.layers.len() > MAX_ENTRIES {
            return Err(Error::malformed(
                what,
                format!("{} layers (limit {MAX_ENTRIES})", m.layers.len()),
            ));
        }
        m.config.check(&format!("{what}: config"))?;
        for (i, l) in m.layers.iter().enumerate() {
            l.check(&format!("{what}: layers[{i}]"))?;
        }
        if let Some(s) = &m.subject {
            s.check(&format!("{what}: subject"))?;
        }
        Ok(m)
    }

    /// The artifact type: `artifactType`, else the config media type (OCI 1.1 rule).
    pub fn kind(&self) -> &str {
        self.artifact_type
            .as_deref()
            .unwrap_or(self.config.media_type.as_str())
    }
}

/// Is this media type an index (multi-platform image or referrers list)?
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// Why one entry of an index is not a usable descriptor.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("{what}: manifests[{index}] is not a descriptor: {source}")]
    NotDescriptor {
        what: String,
        index: usize,
        #[source]
        source: serde_json::Error,
    },
    /// A descriptor with a malformed digest, size or media type (the error names
    /// `what: manifests[index]`).
    #[error("{0}")]
    Invalid(#[source] Box<Error>),
}

/// The entries of an index. Entries that are not valid descriptors are returned as
/// `Err(why)` in place, so one junk entry cannot hide the others.
pub fn index_entries(
    bytes: &[u8],
    what: &str,
) -> Result<Vec<Result<Descriptor, EntryError>>, Error> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::malformed(what, format!("not JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| Error::malformed(what, "not a JSON object"))?;
    if let Some(mt) = obj.get("mediaType").and_then(Value::as_str) {
        if !is_index(mt) {
            return Err(Error::malformed(
                what,
                format!("mediaType {mt:?} is not an image index"),
            ));
        }
    }
    let list = match obj.get("manifests") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(Error::malformed(what, "manifests is not an array")),
    };
    if list.len() > MAX_ENTRIES {
        return Err(Error::malformed(
            what,
            format!("{} entries (limit {MAX_ENTRIES})", list.len()),
        ));
    }
    Ok(list
        .iter()
        .enumerate()
        .map(|(i, e)| {
            serde_json::from_value::<Descriptor>(e.clone())
                .map_err(|source| EntryError::NotDescriptor {
                    what: what.to_string(),
                    index: i,
                    source,
                })
                .and_then(|d| {
                    d.check(&format!("{what}: manifests[{i}]"))
                        .map(|_| d)
                        .map_err(|e| EntryError::Invalid(Box::new(e)))
                })
        })
        .collect())
}

/// Canonical compact JSON for manifests mlsign writes.
pub fn to_bytes<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junk_index_entries_do_not_hide_good_ones() {
        let d = format!("sha256:{}", "b".repeat(64));
        let idx = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
            42, {{"mediaType":"x"}}, {{"mediaType":"a","digest":"md5:00","size":1}},
            {{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":10,"artifactType":"t"}}]}}"#
        );
        let e = index_entries(idx.as_bytes(), "idx").unwrap();
        assert_eq!(e.len(), 4);
        assert!(matches!(
            &e[0],
            Err(EntryError::NotDescriptor { index: 0, .. })
        ));
        assert!(matches!(
            &e[1],
            Err(EntryError::NotDescriptor { index: 1, .. })
        ));
        let Err(bad) = &e[2] else {
            panic!("md5 digest accepted")
        };
        assert!(matches!(bad, EntryError::Invalid(_)), "{bad:?}");
        assert!(bad.to_string().starts_with("idx: manifests[2]"), "{bad}");
        assert_eq!(e[3].as_ref().unwrap().digest, d);
        assert!(index_entries(b"[]", "idx").is_err());
        assert!(index_entries(
            format!(r#"{{"mediaType":"{OCI_MANIFEST}","manifests":[]}}"#).as_bytes(),
            "idx"
        )
        .is_err());
    }

    #[test]
    fn manifest_strictness() {
        let d = format!("sha256:{}", "c".repeat(64));
        let good = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"c","digest":"{d}","size":2}},"layers":[]}}"#
        );
        assert!(ImageManifest::parse(good.as_bytes(), "m").is_ok());
        let dup = format!(
            r#"{{"schemaVersion":2,"schemaVersion":2,"config":{{"mediaType":"c","digest":"{d}","size":2}}}}"#
        );
        assert!(ImageManifest::parse(dup.as_bytes(), "m").is_err());
        let v1 = good.replace("\"schemaVersion\":2", "\"schemaVersion\":1");
        assert!(ImageManifest::parse(v1.as_bytes(), "m").is_err());
        let neg = good.replace("\"size\":2", "\"size\":-2");
        assert!(ImageManifest::parse(neg.as_bytes(), "m").is_err());
    }
}
