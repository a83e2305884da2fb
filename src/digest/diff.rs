//! Comparing what was signed with what is on disk, path by path.

use super::Manifest;
use std::collections::BTreeMap;

/// One way a tree differs from its signed manifest.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Difference {
    /// Same path, other content.
    Modified { path: String },
    /// Signed, but not on disk.
    Missing { path: String },
    /// On disk, but not signed.
    Extra { path: String },
    /// Signed content found under another path (and the old path is gone).
    Renamed { from: String, to: String },
}

impl Difference {
    pub fn path(&self) -> &str {
        match self {
            Difference::Modified { path }
            | Difference::Missing { path }
            | Difference::Extra { path } => path,
            Difference::Renamed { to, .. } => to,
        }
    }
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difference::Modified { path } => {
                write!(f, "modified: {path} (content differs from what was signed)")
            }
            Difference::Missing { path } => write!(f, "missing: {path} (signed, but not found)"),
            Difference::Extra { path } => write!(
                f,
                "extra: {path} (present, but not covered by the signature)"
            ),
            Difference::Renamed { from, to } => write!(f, "renamed: {from} -> {to}"),
        }
    }
}

/// Per path: the (start, end, digest) of each piece; files have one piece (0, 0, digest).
type Pieces<'a> = Vec<(u64, u64, &'a [u8])>;

fn by_path(m: &Manifest) -> BTreeMap<&str, Pieces<'_>> {
    let mut map: BTreeMap<&str, Pieces<'_>> = BTreeMap::new();
    for r in m.resources() {
        let (path, s, e) = r.shard().unwrap_or((r.name.as_str(), 0, 0));
        map.entry(path).or_default().push((s, e, &r.digest));
    }
    map
}

/// Every difference between the signed manifest and the one computed from disk.
pub fn diff(signed: &Manifest, actual: &Manifest) -> Vec<Difference> {
    let exp = by_path(signed);
    let act = by_path(actual);
    let mut out = Vec::new();
    let mut missing = Vec::new();
    let mut extra = Vec::new();
    for (path, pieces) in &exp {
        match act.get(path) {
            None => missing.push((*path, pieces)),
            Some(a) if a != pieces => out.push(Difference::Modified {
                path: path.to_string(),
            }),
            Some(_) => {}
        }
    }
    for (path, pieces) in &act {
        if !exp.contains_key(path) {
            extra.push((*path, pieces));
        }
    }
    // Pair each missing path with an unclaimed extra path of identical content.
    let mut claimed = vec![false; extra.len()];
    for (mpath, mpieces) in missing {
        let found = extra
            .iter()
            .enumerate()
            .find(|(i, (_, p))| !claimed[*i] && *p == mpieces)
            .map(|(i, (p, _))| (i, *p));
        match found {
            Some((i, to)) => {
                claimed[i] = true;
                out.push(Difference::Renamed {
                    from: mpath.to_string(),
                    to: to.to_string(),
                });
            }
            None => out.push(Difference::Missing {
                path: mpath.to_string(),
            }),
        }
    }
    for (i, (path, _)) in extra.iter().enumerate() {
        if !claimed[i] {
            out.push(Difference::Extra {
                path: path.to_string(),
            });
        }
    }
    out.sort_by(|a, b| a.path().cmp(b.path()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Resource;

    fn m(items: &[(&str, u8)]) -> Manifest {
        Manifest::from_resources(
            items
                .iter()
                .map(|(n, d)| Resource {
                    name: n.to_string(),
                    algorithm: "sha256".into(),
                    digest: vec![*d; 32],
                })
                .collect(),
        )
    }

    #[test]
    fn classifies_every_kind() {
        let signed = m(&[("a", 1), ("b", 2), ("c", 3), ("d", 4)]);
        let actual = m(&[("a", 1), ("b", 9), ("c2", 3), ("e", 5)]);
        let d = diff(&signed, &actual);
        assert_eq!(
            d,
            vec![
                Difference::Modified { path: "b".into() },
                Difference::Renamed {
                    from: "c".into(),
                    to: "c2".into()
                },
                Difference::Missing { path: "d".into() },
                Difference::Extra { path: "e".into() },
            ]
        );
        assert!(diff(&signed, &signed).is_empty());
    }
}
