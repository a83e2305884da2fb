//! A signed manifest held compactly, and compared with a tree path by path.
//!
//! `verify` and `sign --since` on a tree of a million files read a statement of a million
//! resources. [`SignedResources`] keeps them in three flat buffers (names, end offsets,
//! digests) plus one sort index: the name's bytes and about 40 bytes per resource, where a
//! [`Resource`] (three heap allocations) costs several hundred. [`diff_listed`] compares it with
//! a [`ListedManifest`] by merging the two sorted sequences, with exactly the findings of
//! [`super::diff`].

use super::diff::Difference;
use super::manifest::{pieces, ListedManifest, Resource};
use super::{Manifest, Method};
use std::cmp::Ordering;
use std::collections::{HashMap, VecDeque};

/// Resources in signed order (the order the root digest covers) and an index in canonical
/// order: path component by component, then shard start and end.
#[derive(Clone, Debug, Default)]
pub struct SignedResources {
    names: String,
    /// End offset of each name in `names`.
    ends: Vec<u32>,
    /// Digests of `dlen` bytes each, in signed order: their concatenation is what the
    /// subject digest covers.
    digests: Vec<u8>,
    dlen: usize,
    algorithm: String,
    shards: bool,
    /// Indices in canonical order.
    order: Vec<u32>,
}

/// Collects resources while a statement is parsed (the digest length is known only once the
/// serialization has been read, which may come after the resources).
#[derive(Default)]
pub struct SignedBuilder {
    names: String,
    ends: Vec<u32>,
    digests: Vec<u8>,
}

/// Names or resources beyond what 32-bit offsets can index (a payload is at most 512 MiB, so
/// this is never reached by a bundle mlsign agrees to read).
#[derive(Debug)]
pub struct TooLarge;

impl SignedBuilder {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn push(&mut self, name: &str, digest: &[u8]) -> Result<(), TooLarge> {
        self.names.push_str(name);
        let end = u32::try_from(self.names.len()).map_err(|_| TooLarge)?;
        if self.ends.len() >= u32::MAX as usize {
            return Err(TooLarge);
        }
        self.ends.push(end);
        self.digests.extend_from_slice(digest);
        Ok(())
    }

    /// The digests in order, concatenated.
    pub fn digests(&self) -> &[u8] {
        &self.digests
    }

    /// Name of resource `i`.
    pub fn name(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.names[start..self.ends[i] as usize]
    }

    /// Finish with every digest `dlen` bytes long (the caller checked) and every resource of
    /// `algorithm`; shard names (`PATH:START:END`) when `shards`.
    pub fn finish(self, dlen: usize, algorithm: &str, shards: bool) -> SignedResources {
        let mut s = SignedResources {
            names: self.names,
            ends: self.ends,
            digests: self.digests,
            dlen,
            algorithm: algorithm.to_string(),
            shards,
            order: Vec::new(),
        };
        s.names.shrink_to_fit();
        s.digests.shrink_to_fit();
        let mut order: Vec<u32> = (0..s.ends.len() as u32).collect();
        order.sort_by(|&a, &b| {
            let (pa, sa, ea) = s.piece(a as usize);
            let (pb, sb, eb) = s.piece(b as usize);
            canonical_cmp(pa, pb)
                .then(sa.cmp(&sb))
                .then(ea.cmp(&eb))
                .then(a.cmp(&b))
        });
        s.order = order;
        s
    }
}

/// model_signing's order of paths: component by component (`a/b` before `a.txt`). For names
/// without NUL (checked before any comparison matters) that is byte order with `/` lowest.
pub fn canonical_cmp(a: &str, b: &str) -> Ordering {
    let key = |c: u8| if c == b'/' { 0 } else { c };
    a.bytes().map(key).cmp(b.bytes().map(key))
}

impl SignedResources {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Name of resource `i` (signed order).
    pub fn name(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.names[start..self.ends[i] as usize]
    }

    pub fn digest(&self, i: usize) -> &[u8] {
        &self.digests[i * self.dlen..(i + 1) * self.dlen]
    }

    pub fn algorithm(&self) -> &str {
        &self.algorithm
    }

    /// `(path, start, end)` of resource `i`; files are `(name, 0, 0)`, as [`super::diff`] sees
    /// them.
    pub fn piece(&self, i: usize) -> (&str, u64, u64) {
        let name = self.name(i);
        if self.shards {
            let mut it = name.rsplitn(3, ':');
            if let (Some(e), Some(s), Some(p)) = (it.next(), it.next(), it.next()) {
                if let (Ok(s), Ok(e)) = (s.parse(), e.parse()) {
                    return (p, s, e);
                }
            }
        }
        (name, 0, 0)
    }

    /// The path resource `i` covers.
    pub fn path(&self, i: usize) -> &str {
        self.piece(i).0
    }

    /// SHA-256 over the digests in signed order (model_signing's subject digest).
    pub fn root_digest(&self) -> [u8; 32] {
        crate::util::sha256(&self.digests)
    }

    /// Indices in canonical order.
    pub fn canonical(&self) -> impl Iterator<Item = usize> + '_ {
        self.order.iter().map(|&i| i as usize)
    }

    /// The in-memory form, for callers that want [`Resource`]s.
    pub fn to_manifest(&self) -> Manifest {
        Manifest::from_resources(
            (0..self.len())
                .map(|i| Resource {
                    name: self.name(i).to_string(),
                    algorithm: self.algorithm.clone(),
                    digest: self.digest(i).to_vec(),
                })
                .collect(),
        )
    }

    /// Per path in canonical order, its resources' indices (ascending start, end).
    fn groups(&self) -> impl Iterator<Item = (&str, &[u32])> + '_ {
        let mut at = 0;
        std::iter::from_fn(move || {
            let first = *self.order.get(at)?;
            let path = self.path(first as usize);
            let mut end = at + 1;
            while end < self.order.len() && self.path(self.order[end] as usize) == path {
                end += 1;
            }
            let g = &self.order[at..end];
            at = end;
            Some((path, g))
        })
    }

    /// The digests recorded for `path` as `(start, end, digest)` ascending, if it is listed.
    pub fn pieces_of(&self, path: &str) -> Option<Vec<(u64, u64, &[u8])>> {
        let lo = self
            .order
            .partition_point(|&i| canonical_cmp(self.path(i as usize), path) == Ordering::Less);
        let v: Vec<_> = self.order[lo..]
            .iter()
            .map(|&i| i as usize)
            .take_while(|&i| self.path(i) == path)
            .map(|i| {
                let (_, s, e) = self.piece(i);
                (s, e, self.digest(i))
            })
            .collect();
        (!v.is_empty()).then_some(v)
    }
}

/// One path's pieces: (start, end, digest); a file is one piece (0, 0, digest).
type Pieces<'a> = Vec<(u64, u64, &'a [u8])>;

/// The pieces of a hashed file of `size` bytes from its concatenated digests.
fn act_pieces(size: u64, method: Method, dlen: usize, d: &[u8]) -> Pieces<'_> {
    let chunks = d.chunks(dlen);
    match method {
        Method::Files => chunks.map(|c| (0, 0, c)).collect(),
        Method::Shards { .. } => pieces(size, method)
            .zip(chunks)
            .map(|((s, e), c)| (s, e, c))
            .collect(),
    }
}

/// What [`diff_listed`] found, with the digests of the paths left missing or extra (hex, one
/// per piece), which partitioned verification needs to pair renames across partitions.
#[derive(Debug, Default)]
pub struct ListedDiff {
    pub differences: Vec<Difference>,
    pub missing: Vec<(String, Vec<String>)>,
    pub extra: Vec<(String, Vec<String>)>,
}

/// Every difference between the signed resources and the tree's manifest, restricted to the
/// paths `keep` accepts: the same findings, in the same order, as [`super::diff`] over the
/// in-memory manifests, without building them.
pub fn diff_listed(
    signed: &SignedResources,
    actual: &ListedManifest<'_>,
    method: Method,
    keep: &dyn Fn(&str) -> bool,
) -> ListedDiff {
    let dlen = signed.dlen.max(1);
    let listing = actual.listing();
    let mut exp = signed.groups().filter(|(p, _)| keep(p)).peekable();
    let mut act = actual
        .files()
        .map(|(i, d)| (listing.name(i), i, d))
        // An empty file has no shard: like the in-memory manifest, it is not listed at all.
        .filter(|(p, _, d)| !d.is_empty() && keep(p))
        .peekable();
    let exp_pieces = |g: &[u32]| -> Pieces<'_> {
        g.iter()
            .map(|&i| {
                let (_, s, e) = signed.piece(i as usize);
                (s, e, signed.digest(i as usize))
            })
            .collect()
    };
    let act_pieces = |i: usize, d| act_pieces(listing.stat(i).size, method, dlen, d);
    let mut out = Vec::new();
    let mut missing: Vec<(&str, Pieces<'_>)> = Vec::new();
    let mut extra: Vec<(&str, Pieces<'_>)> = Vec::new();
    loop {
        let ord = match (exp.peek(), act.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((ep, _)), Some((ap, _, _))) => canonical_cmp(ep, ap),
        };
        match ord {
            Ordering::Less => {
                if let Some((p, g)) = exp.next() {
                    missing.push((p, exp_pieces(g)));
                }
            }
            Ordering::Greater => {
                if let Some((p, i, d)) = act.next() {
                    extra.push((p, act_pieces(i, d)));
                }
            }
            Ordering::Equal => {
                if let (Some((p, g)), Some((_, i, d))) = (exp.next(), act.next()) {
                    if exp_pieces(g) != act_pieces(i, d) {
                        out.push(Difference::Modified {
                            path: p.to_string(),
                        });
                    }
                }
            }
        }
    }
    // As `diff`: missing paths in byte order each take the first unclaimed extra path (byte
    // order) of identical content. A queue per content keeps that linear.
    missing.sort_by(|a, b| a.0.cmp(b.0));
    extra.sort_by(|a, b| a.0.cmp(b.0));
    let mut by_content: HashMap<&Pieces<'_>, VecDeque<usize>> = HashMap::new();
    for (i, (_, p)) in extra.iter().enumerate() {
        by_content.entry(p).or_default().push_back(i);
    }
    let mut claimed = vec![false; extra.len()];
    let hex_of = |p: &Pieces<'_>| p.iter().map(|x| hex::encode(x.2)).collect::<Vec<_>>();
    let mut left_missing = Vec::new();
    for (mpath, mpieces) in &missing {
        match by_content.get_mut(mpieces).and_then(VecDeque::pop_front) {
            Some(i) => {
                claimed[i] = true;
                out.push(Difference::Renamed {
                    from: mpath.to_string(),
                    to: extra[i].0.to_string(),
                });
            }
            None => {
                out.push(Difference::Missing {
                    path: mpath.to_string(),
                });
                left_missing.push((mpath.to_string(), hex_of(mpieces)));
            }
        }
    }
    let mut left_extra = Vec::new();
    for (i, (path, p)) in extra.iter().enumerate() {
        if !claimed[i] {
            out.push(Difference::Extra {
                path: path.to_string(),
            });
            left_extra.push((path.to_string(), hex_of(p)));
        }
    }
    out.sort_by(|a, b| a.path().cmp(b.path()));
    ListedDiff {
        differences: out,
        missing: left_missing,
        extra: left_extra,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::{diff, walk_listing, HashConfig, NoProgress};
    use std::fs;

    fn signed_of(m: &Manifest, method: Method) -> SignedResources {
        let mut b = SignedBuilder::default();
        for r in m.resources() {
            b.push(&r.name, &r.digest).unwrap();
        }
        let alg = m
            .resources()
            .first()
            .map_or("sha256".to_string(), |r| r.algorithm.clone());
        b.finish(32, &alg, matches!(method, Method::Shards { .. }))
    }

    #[test]
    fn canonical_order_is_component_wise() {
        let mut v = vec!["a.txt", "a/b", "A", "a/b/c", "a-b", "a"];
        v.sort_by(|a, b| canonical_cmp(a, b));
        assert_eq!(v, ["A", "a", "a/b", "a/b/c", "a-b", "a.txt"]);
    }

    #[test]
    fn same_findings_as_the_in_memory_diff() {
        for method in [Method::Files, Method::Shards { shard_size: 3 }] {
            let cfg = HashConfig {
                method,
                ..HashConfig::default()
            };
            let d = tempfile::tempdir().unwrap();
            let r = d.path();
            let write = |p: &str, c: &str| {
                let f = r.join(p);
                fs::create_dir_all(f.parent().unwrap()).unwrap();
                fs::write(f, c).unwrap();
            };
            for (p, c) in [
                ("a/b", "same"),
                ("a.txt", "will change"),
                ("c", "moved away"),
                ("d", "deleted"),
                ("e/f", "dup"),
                ("e/g", "dup"),
                ("z", "stays"),
                ("empty", ""),
            ] {
                write(p, c);
            }
            let signed = Manifest::from_path(r, &cfg).unwrap();
            fs::write(r.join("a.txt"), "changed!").unwrap();
            fs::rename(r.join("c"), r.join("c2")).unwrap();
            fs::remove_file(r.join("d")).unwrap();
            fs::remove_file(r.join("e/f")).unwrap();
            fs::remove_file(r.join("e/g")).unwrap();
            write("x/f", "dup");
            write("x/g", "dup");
            write("new", "extra file");
            let actual = Manifest::from_path(r, &cfg).unwrap();
            let want = diff(&signed, &actual);
            let listing = walk_listing(r, &cfg.ignore_paths, false).unwrap();
            let (listed, _) = ListedManifest::hash(&listing, &cfg, &NoProgress, &|_| None).unwrap();
            let s = signed_of(&signed, method);
            let got = diff_listed(&s, &listed, method, &|_| true);
            assert_eq!(got.differences, want, "{method:?}");
            assert!(got
                .missing
                .iter()
                .any(|(p, h)| p == "d" && h.len() == s.pieces_of("d").unwrap().len()));
            assert!(got.extra.iter().any(|(p, _)| p == "new"));
            // Restricted to some paths: as the in-memory diff over the filtered manifests.
            let keep = |p: &str| p.starts_with('a') || p.starts_with('x');
            let filt = |m: &Manifest| {
                Manifest::from_resources(
                    m.resources()
                        .iter()
                        .filter(|x| keep(x.path()))
                        .cloned()
                        .collect(),
                )
            };
            assert_eq!(
                diff_listed(&s, &listed, method, &keep).differences,
                diff(&filt(&signed), &filt(&actual))
            );
            assert!(
                diff_listed(&signed_of(&actual, method), &listed, method, &|_| true)
                    .differences
                    .is_empty()
            );
        }
    }
}

/// Counts this thread's live heap bytes and their peak, for memory-regression tests (the lib's
/// test binary only).
#[cfg(test)]
pub(crate) mod alloc_count {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static LIVE: Cell<isize> = const { Cell::new(0) };
        static PEAK: Cell<isize> = const { Cell::new(0) };
    }

    struct Counting;

    #[global_allocator]
    static COUNTING: Counting = Counting;

    fn add(d: isize) {
        let _ = LIVE.try_with(|l| {
            let v = l.get() + d;
            l.set(v);
            let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
        });
    }

    // SAFETY: every call is forwarded to the system allocator unchanged; only sizes are counted.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            let p = unsafe { System.alloc(l) };
            if !p.is_null() {
                add(l.size() as isize);
            }
            p
        }
        unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
            let p = unsafe { System.alloc_zeroed(l) };
            if !p.is_null() {
                add(l.size() as isize);
            }
            p
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            unsafe { System.dealloc(p, l) };
            add(-(l.size() as isize));
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
            let q = unsafe { System.realloc(p, l, new) };
            if !q.is_null() {
                add(new as isize - l.size() as isize);
            }
            q
        }
    }

    /// Run `f`; returns its result and the most heap it held at once on this thread beyond
    /// what was live before (what it returns included).
    pub fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
        let base = LIVE.with(Cell::get);
        PEAK.with(|p| p.set(base));
        let r = f();
        let peak = PEAK.with(Cell::get);
        (r, (peak - base).max(0) as usize)
    }
}
