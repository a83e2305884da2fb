//! The signed statement parsed in one pass into [`SignedResources`], never into a JSON tree.
//!
//! A statement of a million resources is ~200 MB of JSON; as a `serde_json::Value` it took
//! about a kilobyte per resource. Here every object is visited by a seed that keeps only what
//! the checks need (names in one buffer, digests decoded), every other value is checked and
//! dropped as it is read ([`StrictCheck`]: duplicate keys at any depth are still refused), and
//! the checks then run in exactly the order the tree-based parser ran them, so a payload that
//! is wrong in several ways is refused with the same first reason. Resource checks that depend
//! on the serialization (which may come after the resources) are decided at the end from the
//! first index where each could fail.

use super::statement::{
    StatementError, SubjectKind, KIND_ANNOTATION, PREDICATE_V01, PREDICATE_V1, STATEMENT_TYPE,
};
use crate::digest::signed::{SignedBuilder, SignedResources};
use crate::digest::{check_resource_name, HashAlgorithm, HashConfig, Method};
use crate::json::{Keys, Strict, StrictCheck};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;

/// What a verified payload says was signed, compactly.
#[derive(Clone, Debug)]
pub struct CompactStatement {
    pub subject_name: String,
    pub kind: Option<SubjectKind>,
    pub predicate_type: String,
    /// How to re-hash: algorithm, method, symlinks and the recorded ignore paths.
    pub config: HashConfig,
    pub resources: SignedResources,
    pub root_digest: String,
}

/// Parse the signed payload of a model signature (predicate v1.0 or legacy v0.1).
pub fn parse_compact(payload: &[u8]) -> Result<CompactStatement, StatementError> {
    let mut de = serde_json::Deserializer::from_slice(payload);
    let top = TopSeed
        .deserialize(&mut de)
        .and_then(|t| de.end().map(|()| t))
        .map_err(|e| StatementError::NotJson(e.to_string()))?;
    top.validate()
}

/// A string field: absent (`None`), present but not a string (`Some(Err)`), or a string.
type Str = Option<Result<String, ()>>;

/// Visitor methods that accept any other JSON value as `$v`, checking (strictly) what they skip.
macro_rules! accept_others {
    ($v:expr; $($skip:ident),*) => {
        $(accept_others!(@one $skip, $v);)*
    };
    (@one scalars, $v:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_f64<E: de::Error>(self, x: f64) -> Result<Self::Value, E> {
            StrictCheck.visit_f64::<E>(x)?;
            Ok($v)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($v)
        }
    };
    (@one str, $v:expr) => {
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($v)
        }
    };
    (@one seq, $v:expr) => {
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            StrictCheck.visit_seq(seq)?;
            Ok($v)
        }
    };
    (@one map, $v:expr) => {
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            StrictCheck.visit_map(map)?;
            Ok($v)
        }
    };
}

/// Declares a unit seed whose visitor is itself.
macro_rules! seed {
    ($name:ident -> $out:ty) => {
        impl<'de> DeserializeSeed<'de> for $name {
            type Value = $out;
            fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<$out, D::Error> {
                d.deserialize_any(self)
            }
        }
    };
}

/// Each key of an object once (the duplicate check), then `f` on its name.
fn keys<'de, A: MapAccess<'de>>(
    map: &mut A,
    mut f: impl FnMut(&str, &mut A) -> Result<(), A::Error>,
) -> Result<(), A::Error> {
    let mut seen = Keys::default();
    while let Some(k) = map.next_key::<String>()? {
        // Checked before the value is read, as the tree parser refused it.
        let name = k.clone();
        seen.insert::<A::Error>(k)?;
        f(&name, map)?;
    }
    Ok(())
}

struct StrSeed;
seed!(StrSeed -> Result<String, ()>);
impl<'de> Visitor<'de> for StrSeed {
    type Value = Result<String, ()>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Ok(v.to_owned()))
    }
    accept_others!(Err(()); scalars, seq, map);
}

#[derive(Default)]
struct Top {
    type_: Str,
    predicate_type: Str,
    subject: Option<Subjects>,
    predicate: Option<Pred>,
}

struct TopSeed;
seed!(TopSeed -> Top);
impl<'de> Visitor<'de> for TopSeed {
    type Value = Top;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an in-toto statement")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
        let mut t = Top::default();
        keys(&mut map, |k, map| {
            match k {
                "_type" => t.type_ = Some(map.next_value_seed(StrSeed)?),
                "predicateType" => t.predicate_type = Some(map.next_value_seed(StrSeed)?),
                "subject" => t.subject = Some(map.next_value_seed(SubjectsSeed)?),
                "predicate" => t.predicate = Some(map.next_value_seed(PredSeed)?),
                _ => map.next_value_seed(StrictCheck)?,
            }
            Ok(())
        })?;
        Ok(t)
    }
    accept_others!(Top::default(); scalars, str, seq);
}

/// One element of `subject`.
#[derive(Default)]
struct Subject {
    name: Str,
    /// `None`: no `digest`; `Some(None)`: not an object or no `sha256`.
    digest: Option<Str>,
    kind: Option<String>,
}

struct SubjectSeed;
seed!(SubjectSeed -> Subject);
impl<'de> Visitor<'de> for SubjectSeed {
    type Value = Subject;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a subject")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Subject, A::Error> {
        let mut s = Subject::default();
        keys(&mut map, |k, map| {
            match k {
                "name" => s.name = Some(map.next_value_seed(StrSeed)?),
                "digest" => s.digest = Some(map.next_value_seed(FieldSeed("sha256"))?),
                "annotations" => {
                    s.kind = map
                        .next_value_seed(FieldSeed(KIND_ANNOTATION))?
                        .and_then(Result::ok)
                }
                _ => map.next_value_seed(StrictCheck)?,
            }
            Ok(())
        })?;
        Ok(s)
    }
    accept_others!(Subject::default(); scalars, str, seq);
}

/// One string field of an object (`None` when the value is not an object or lacks it).
struct FieldSeed(&'static str);
impl<'de> DeserializeSeed<'de> for FieldSeed {
    type Value = Str;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Str, D::Error> {
        d.deserialize_any(self)
    }
}
impl<'de> Visitor<'de> for FieldSeed {
    type Value = Str;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Str, A::Error> {
        let mut out = None;
        keys(&mut map, |k, map| {
            if k == self.0 {
                out = Some(map.next_value_seed(StrSeed)?);
            } else {
                map.next_value_seed(StrictCheck)?;
            }
            Ok(())
        })?;
        Ok(out)
    }
    accept_others!(None; scalars, str, seq);
}

/// `subject`: the first element (v1.0 wants exactly one) and, for v0.1, all of them as
/// resources.
#[derive(Default)]
struct Subjects {
    array: bool,
    count: usize,
    first: Option<Subject>,
    v01: SignedBuilder,
    /// The first reason the v0.1 reading refuses them.
    v01_error: Option<StatementError>,
}

impl Subjects {
    fn add(&mut self, s: Subject) {
        let i = self.count;
        self.count += 1;
        if self.v01_error.is_none() {
            if let Err(e) = self.add_v01(i, &s) {
                self.v01_error = Some(e);
            }
        }
        if i == 0 {
            self.first = Some(s);
        }
    }

    fn add_v01(&mut self, i: usize, s: &Subject) -> Result<(), StatementError> {
        let at = format!("subject[{i}]");
        let name = string(&s.name, "name", &at)?;
        let d = match &s.digest {
            None => return Err(missing(&at, "digest")),
            Some(d) => string(d, "sha256", &at)?,
        };
        let raw = parse_hex(d, 32, &at)?;
        self.v01
            .push(name, &raw)
            .map_err(|_| StatementError::TooLarge)
    }
}

struct SubjectsSeed;
seed!(SubjectsSeed -> Subjects);
impl<'de> Visitor<'de> for SubjectsSeed {
    type Value = Subjects;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("subjects")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Subjects, A::Error> {
        let mut s = Subjects {
            array: true,
            ..Subjects::default()
        };
        while let Some(x) = seq.next_element_seed(SubjectSeed)? {
            s.add(x);
        }
        Ok(s)
    }
    accept_others!(Subjects::default(); scalars, str, map);
}

#[derive(Default)]
struct Pred {
    serialization: Option<Value>,
    resources: Option<Resources>,
}

struct PredSeed;
seed!(PredSeed -> Pred);
impl<'de> Visitor<'de> for PredSeed {
    type Value = Pred;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a predicate")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pred, A::Error> {
        let mut p = Pred::default();
        keys(&mut map, |k, map| {
            match k {
                // Small: kept as a tree and checked as before.
                "serialization" => p.serialization = Some(map.next_value_seed(Strict)?),
                "resources" => p.resources = Some(map.next_value_seed(ResourcesSeed)?),
                _ => map.next_value_seed(StrictCheck)?,
            }
            Ok(())
        })?;
        Ok(p)
    }
    accept_others!(Pred::default(); scalars, str, seq);
}

#[derive(Default)]
struct ResourceFields {
    name: Str,
    algorithm: Str,
    digest: Str,
}

struct ResourceSeed;
seed!(ResourceSeed -> ResourceFields);
impl<'de> Visitor<'de> for ResourceSeed {
    type Value = ResourceFields;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a resource")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ResourceFields, A::Error> {
        let mut r = ResourceFields::default();
        keys(&mut map, |k, map| {
            match k {
                "name" => r.name = Some(map.next_value_seed(StrSeed)?),
                "algorithm" => r.algorithm = Some(map.next_value_seed(StrSeed)?),
                "digest" => r.digest = Some(map.next_value_seed(StrSeed)?),
                _ => map.next_value_seed(StrictCheck)?,
            }
            Ok(())
        })?;
        Ok(r)
    }
    accept_others!(ResourceFields::default(); scalars, str, seq);
}

/// Check stages of one resource, in the order the tree parser ran them.
const NAME: u8 = 0;
const ALGORITHM: u8 = 1;
const ALGORITHM_MATCH: u8 = 2;
const DIGEST: u8 = 3;
const DIGEST_HEX: u8 = 4;
const DIGEST_LEN: u8 = 5;
const SHARD_NAME: u8 = 6;

/// `predicate.resources`, collected; checks that need the serialization are kept as the first
/// index where each could fail.
#[derive(Default)]
struct Resources {
    array: bool,
    count: usize,
    b: SignedBuilder,
    /// The first check that failed on its own: (index, stage, error).
    failed: Option<(usize, u8, StatementError)>,
    /// The first algorithm seen, and the first one that differs from it.
    alg0: Option<(usize, String)>,
    alg_other: Option<(usize, String)>,
    /// Likewise for digest lengths.
    len0: Option<(usize, usize)>,
    len_other: Option<(usize, usize)>,
    /// The first name that is not `PATH:START:END` with END > START.
    bad_shard: Option<(usize, String)>,
    too_large: bool,
}

fn at_resource(i: usize) -> String {
    format!("predicate.resources[{i}]")
}

fn valid_shard(name: &str) -> bool {
    let mut it = name.rsplitn(3, ':');
    let (Some(e), Some(s), Some(_)) = (it.next(), it.next(), it.next()) else {
        return false;
    };
    matches!((s.parse::<u64>(), e.parse::<u64>()), (Ok(s), Ok(e)) if e > s)
}

impl Resources {
    fn add(&mut self, r: ResourceFields) {
        let i = self.count;
        self.count += 1;
        if self.failed.is_some() {
            // Nothing after a failed resource can be the first reason.
            return;
        }
        if let Err(f) = self.add_one(i, r) {
            let (stage, e) = *f;
            self.failed = Some((i, stage, e));
        }
    }

    /// Boxed: the error is large and this runs once per resource.
    fn add_one(&mut self, i: usize, r: ResourceFields) -> Result<(), Box<(u8, StatementError)>> {
        let at = at_resource(i);
        let name = string(&r.name, "name", &at).map_err(|e| Box::new((NAME, e)))?;
        let alg = string(&r.algorithm, "algorithm", &at).map_err(|e| Box::new((ALGORITHM, e)))?;
        match &self.alg0 {
            None => self.alg0 = Some((i, alg.to_string())),
            Some((_, a0)) if a0 != alg && self.alg_other.is_none() => {
                self.alg_other = Some((i, alg.to_string()))
            }
            _ => {}
        }
        let digest = string(&r.digest, "digest", &at).map_err(|e| Box::new((DIGEST, e)))?;
        let raw = hex::decode(digest)
            .map_err(|_| Box::new((DIGEST_HEX, StatementError::DigestNotHex { at })))?;
        match self.len0 {
            None => self.len0 = Some((i, raw.len())),
            Some((_, l0)) if l0 != raw.len() && self.len_other.is_none() => {
                self.len_other = Some((i, raw.len()))
            }
            _ => {}
        }
        if self.bad_shard.is_none() && !valid_shard(name) {
            self.bad_shard = Some((i, name.to_string()));
        }
        if self.b.push(name, &raw).is_err() {
            self.too_large = true;
        }
        Ok(())
    }

    /// The first reason, in resource order and check order, that these resources are wrong
    /// for `expected` algorithm and `dlen` digests.
    fn first_error(&mut self, expected: &str, dlen: usize, shards: bool) -> Option<StatementError> {
        let mut best: Option<(usize, u8, StatementError)> = self.failed.take();
        let mut offer = |i: usize, stage: u8, e: StatementError| {
            if best
                .as_ref()
                .is_none_or(|(bi, bs, _)| (i, stage) < (*bi, *bs))
            {
                best = Some((i, stage, e));
            }
        };
        let alg_err = |i: usize, found: &str| StatementError::Algorithm {
            at: at_resource(i),
            found: found.into(),
            expected: expected.into(),
        };
        match (&self.alg0, &self.alg_other) {
            (Some((i, a0)), _) if a0 != expected => offer(*i, ALGORITHM_MATCH, alg_err(*i, a0)),
            (_, Some((i, a))) => offer(*i, ALGORITHM_MATCH, alg_err(*i, a)),
            _ => {}
        }
        let len_err = |i: usize, got: usize| StatementError::DigestLength {
            at: at_resource(i),
            got,
            want: dlen,
        };
        match (self.len0, self.len_other) {
            (Some((i, l0)), _) if l0 != dlen => offer(i, DIGEST_LEN, len_err(i, l0)),
            (_, Some((i, l))) => offer(i, DIGEST_LEN, len_err(i, l)),
            _ => {}
        }
        if shards {
            if let Some((i, name)) = self.bad_shard.take() {
                offer(
                    i,
                    SHARD_NAME,
                    StatementError::ShardName {
                        at: at_resource(i),
                        name,
                    },
                );
            }
        }
        best.map(|(_, _, e)| e)
            .or_else(|| self.too_large.then_some(StatementError::TooLarge))
    }
}

struct ResourcesSeed;
seed!(ResourcesSeed -> Resources);
impl<'de> Visitor<'de> for ResourcesSeed {
    type Value = Resources;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("resources")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Resources, A::Error> {
        let mut r = Resources {
            array: true,
            ..Resources::default()
        };
        while let Some(x) = seq.next_element_seed(ResourceSeed)? {
            r.add(x);
        }
        Ok(r)
    }
    accept_others!(Resources::default(); scalars, str, map);
}

fn missing(at: &str, key: &str) -> StatementError {
    StatementError::Missing {
        at: at.into(),
        key: key.into(),
    }
}

/// A required string field, as `get_str` read it from the tree.
fn string<'a>(v: &'a Str, key: &str, at: &str) -> Result<&'a str, StatementError> {
    match v {
        None => Err(missing(at, key)),
        Some(Err(())) => Err(StatementError::NotString {
            at: at.into(),
            key: key.into(),
        }),
        Some(Ok(s)) => Ok(s),
    }
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

fn expected(at: &'static str, what: &'static str) -> StatementError {
    StatementError::Expected { at, what }
}

/// Unsafe names and duplicates, the first in signed order (a name is checked before it is
/// compared with the earlier ones).
fn check_names(b: &SignedBuilder, path: &dyn Fn(&str) -> String) -> Result<(), StatementError> {
    let unsafe_at =
        (0..b.len()).find_map(|i| check_resource_name(&path(b.name(i))).err().map(|e| (i, e)));
    let mut by_name: Vec<u32> = (0..b.len() as u32).collect();
    by_name.sort_unstable_by(|&x, &y| b.name(x as usize).cmp(b.name(y as usize)).then(x.cmp(&y)));
    // The first index whose name an earlier index already had.
    let dup_at = by_name
        .windows(2)
        .filter(|w| b.name(w[0] as usize) == b.name(w[1] as usize))
        .map(|w| w[1] as usize)
        .min();
    match (unsafe_at, dup_at) {
        (Some((u, e)), d) if d.is_none_or(|d| u <= d) => Err(StatementError::ResourceName(e)),
        (_, Some(d)) => Err(StatementError::Duplicate(b.name(d).to_string())),
        _ => Ok(()),
    }
}

fn shard_path(name: &str) -> String {
    let mut it = name.rsplitn(3, ':');
    match (it.next(), it.next(), it.next()) {
        (Some(e), Some(s), Some(p)) if e.parse::<u64>().is_ok() && s.parse::<u64>().is_ok() => {
            p.to_string()
        }
        _ => name.to_string(),
    }
}

impl Top {
    fn validate(self) -> Result<CompactStatement, StatementError> {
        let t = string(&self.type_, "_type", "statement")?;
        if t != STATEMENT_TYPE {
            return Err(StatementError::StatementType(t.into()));
        }
        let pt = string(&self.predicate_type, "predicateType", "statement")?.to_string();
        let subjects = match self.subject {
            None => return Err(missing("statement", "subject")),
            Some(s) if !s.array => return Err(expected("statement.subject", "an array")),
            Some(s) => s,
        };
        match pt.as_str() {
            PREDICATE_V1 => v1(subjects, self.predicate),
            PREDICATE_V01 => v01(subjects),
            _ => Err(StatementError::NotModelSignature(pt)),
        }
    }
}

fn v1(subjects: Subjects, predicate: Option<Pred>) -> Result<CompactStatement, StatementError> {
    if subjects.count != 1 {
        return Err(StatementError::SubjectCount(subjects.count));
    }
    let subj = subjects.first.unwrap_or_default();
    let subject_name = match &subj.name {
        Some(Ok(s)) => s.clone(),
        _ => String::new(),
    };
    let root = match &subj.digest {
        None => return Err(missing("subject", "digest")),
        Some(d) => string(d, "sha256", "subject.digest")?.to_lowercase(),
    };
    let kind = subj.kind.as_deref().and_then(|k| match k {
        "model" => Some(SubjectKind::Model),
        "dataset" => Some(SubjectKind::Dataset),
        _ => None,
    });
    let pred = predicate.ok_or_else(|| missing("statement", "predicate"))?;
    let ser = pred
        .serialization
        .as_ref()
        .ok_or_else(|| missing("predicate", "serialization"))?;
    let get_str = |key: &str| -> Result<&str, StatementError> {
        match ser.get(key) {
            None => Err(missing("serialization", key)),
            Some(v) => v.as_str().ok_or_else(|| StatementError::NotString {
                at: "serialization".into(),
                key: key.into(),
            }),
        }
    };
    let method = get_str("method")?;
    let hash_type = get_str("hash_type")?;
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
            let n = ser
                .get("shard_size")
                .ok_or_else(|| missing("serialization", "shard_size"))?;
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
    let shards = matches!(method, Method::Shards { .. });
    let mut resources = match pred.resources {
        None => return Err(missing("predicate", "resources")),
        Some(r) if !r.array => return Err(expected("predicate.resources", "an array")),
        Some(r) => r,
    };
    if let Some(e) = resources.first_error(&expect_alg, algorithm.digest_len(), shards) {
        return Err(e);
    }
    // The subject digest covers the resources in the order they were signed.
    let computed = hex::encode(crate::util::sha256(resources.b.digests()));
    if computed != root {
        return Err(StatementError::RootMismatch {
            subject: root,
            computed,
        });
    }
    if shards {
        check_names(&resources.b, &shard_path)?;
    } else {
        check_names(&resources.b, &str::to_string)?;
    }
    Ok(CompactStatement {
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
        resources: resources
            .b
            .finish(algorithm.digest_len(), &expect_alg, shards),
        root_digest: root,
    })
}

fn v01(subjects: Subjects) -> Result<CompactStatement, StatementError> {
    if let Some(e) = subjects.v01_error {
        return Err(e);
    }
    check_names(&subjects.v01, &str::to_string)?;
    let resources = subjects.v01.finish(32, "sha256", false);
    // v0.1 has no subject digest: the root covers the digests in canonical order.
    let mut cat = Vec::with_capacity(resources.len() * 32);
    for i in resources.canonical() {
        cat.extend_from_slice(resources.digest(i));
    }
    Ok(CompactStatement {
        subject_name: String::new(),
        kind: None,
        predicate_type: PREDICATE_V01.into(),
        config: HashConfig::default(),
        resources,
        root_digest: hex::encode(crate::util::sha256(&cat)),
    })
}

#[cfg(test)]
mod tests {
    use super::super::statement::{model_statement, parse_model_statement, KIND_ANNOTATION};
    use super::super::statement_reference as reference;
    use super::*;
    use crate::digest::{Manifest, Resource};
    use serde_json::json;

    fn statement(method: Method, names: &[&str]) -> Value {
        let cfg = HashConfig {
            method,
            ..HashConfig::default()
        };
        let alg = match method {
            Method::Files => "sha256".to_string(),
            Method::Shards { shard_size } => format!("sha256-sharded-{shard_size}"),
        };
        let m = Manifest::from_resources(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| Resource {
                    name: n.to_string(),
                    algorithm: alg.clone(),
                    digest: vec![i as u8 + 1; 32],
                })
                .collect(),
        );
        serde_json::from_slice(&model_statement("m", SubjectKind::Model, &m, &cfg)).unwrap()
    }

    /// Tiny deterministic generator (the tests must not depend on a seed source).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    fn odd_value(rng: &mut Rng) -> Value {
        match rng.below(12) {
            0 => Value::Null,
            1 => json!(true),
            2 => json!(7),
            3 => json!(1.5),
            4 => json!([]),
            5 => json!({}),
            6 => json!("zz"),
            7 => json!("00"),
            8 => json!("../x"),
            9 => json!("a:4:0"),
            10 => json!("sha256-sharded-9"),
            _ => json!("01".repeat(32)),
        }
    }

    /// One random change somewhere in the tree: drop a key, replace a value, duplicate or drop
    /// an array element.
    fn mutate(v: &mut Value, rng: &mut Rng) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                let keys: Vec<String> = m.keys().cloned().collect();
                let k = &keys[rng.below(keys.len())];
                match rng.below(4) {
                    0 => {
                        m.remove(k);
                    }
                    1 => {
                        m.insert(k.clone(), odd_value(rng));
                    }
                    _ => mutate(m.get_mut(k).unwrap(), rng),
                }
            }
            Value::Array(a) if !a.is_empty() => {
                let i = rng.below(a.len());
                match rng.below(5) {
                    0 => {
                        let x = a[i].clone();
                        a.push(x);
                    }
                    1 => {
                        a.remove(i);
                    }
                    2 => a[i] = odd_value(rng),
                    _ => mutate(&mut a[i], rng),
                }
            }
            _ => *v = odd_value(rng),
        }
    }

    fn same(payload: &[u8]) {
        let text = String::from_utf8_lossy(payload);
        match (
            parse_model_statement(payload),
            reference::parse_model_statement(payload),
        ) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.manifest, b.manifest, "{text}");
                assert_eq!(a.root_digest, b.root_digest, "{text}");
                assert_eq!(
                    format!("{:?}", a.config),
                    format!("{:?}", b.config),
                    "{text}"
                );
                assert_eq!(
                    (a.subject_name, a.kind, a.predicate_type),
                    (b.subject_name, b.kind, b.predicate_type),
                    "{text}"
                );
            }
            (Err(StatementError::NotJson(_)), Err(StatementError::NotJson(_))) => {}
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{text}"),
            (a, b) => panic!("{text}\none-pass: {a:?}\ntree: {b:?}"),
        }
    }

    #[test]
    fn same_verdict_as_the_tree_parser_on_mutated_statements() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let bases = [
            statement(Method::Files, &["a/b", "a.txt", "c"]),
            statement(
                Method::Shards { shard_size: 4 },
                &["a:0:4", "a:4:8", "b:0:3"],
            ),
            json!({
                "_type": STATEMENT_TYPE,
                "predicateType": PREDICATE_V01,
                "subject": [
                    {"name": "x", "digest": {"sha256": "02".repeat(32)}},
                    {"name": "a/y", "digest": {"sha256": "03".repeat(32)}},
                ],
            }),
        ];
        for base in &bases {
            same(&serde_json::to_vec(base).unwrap());
            same(&serde_json::to_vec_pretty(base).unwrap());
            for _ in 0..700 {
                let mut v = base.clone();
                for _ in 0..1 + rng.below(3) {
                    mutate(&mut v, &mut rng);
                }
                same(&serde_json::to_vec(&v).unwrap());
            }
        }
    }

    #[test]
    fn several_faults_report_the_first_in_resource_and_check_order() {
        // serialization after the resources (as mlsign writes it): the algorithm and length
        // checks are decided at the end, and must still pick the first faulty resource.
        let base = statement(Method::Files, &["a", "b", "c"]);
        let text = String::from_utf8(model_statement(
            "m",
            SubjectKind::Model,
            &Manifest::from_resources(vec![]),
            &HashConfig::default(),
        ))
        .unwrap();
        assert!(text.find("resources") < text.find("serialization"));
        type Edit = Box<dyn Fn(&mut Value)>;
        let cases: Vec<Edit> = vec![
            Box::new(|v| {
                v["predicate"]["resources"][1]["algorithm"] = json!("blake3");
                v["predicate"]["resources"][2]["name"] = json!(1);
            }),
            Box::new(|v| {
                v["predicate"]["resources"][2]["algorithm"] = json!("blake3");
                v["predicate"]["resources"][1]["digest"] = json!("00");
            }),
            Box::new(|v| {
                v["predicate"]["resources"][0]["digest"] = json!("00");
                v["predicate"]["resources"][0]["algorithm"] = json!("x");
            }),
            Box::new(|v| {
                v["predicate"]["resources"][1]["digest"] = json!("zz");
                v["predicate"]["resources"][1]["algorithm"] = json!("x");
            }),
            Box::new(|v| {
                v["predicate"]["resources"][2]["name"] = json!("a");
                v["predicate"]["resources"][1]["name"] = json!("../a");
            }),
            Box::new(|v| v["predicate"]["resources"][2]["name"] = json!("a")),
        ];
        for f in cases {
            let mut v = base.clone();
            f(&mut v);
            // Keys sorted (resources before serialization) and as a v1 statement writes them.
            same(&serde_json::to_vec(&v).unwrap());
            let pred = v["predicate"].take();
            let reordered = format!(
                r#"{{"_type":{},"subject":{},"predicateType":{},"predicate":{{"serialization":{},"resources":{}}}}}"#,
                v["_type"],
                v["subject"],
                v["predicateType"],
                pred["serialization"],
                pred["resources"]
            );
            same(reordered.as_bytes());
        }
    }

    #[test]
    fn a_duplicated_path_is_refused_by_name() {
        let mut v = statement(Method::Files, &["a", "b/c"]);
        let dup = v["predicate"]["resources"][1].clone();
        v["predicate"]["resources"]
            .as_array_mut()
            .unwrap()
            .push(dup);
        // Re-sign the subject digest over the three digests, so only the duplicate is wrong.
        let mut cat = Vec::new();
        for r in v["predicate"]["resources"].as_array().unwrap() {
            cat.extend(hex::decode(r["digest"].as_str().unwrap()).unwrap());
        }
        v["subject"][0]["digest"]["sha256"] = json!(hex::encode(crate::util::sha256(&cat)));
        let e = parse_compact(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(
            matches!(&e, StatementError::Duplicate(n) if n == "b/c"),
            "{e:?}"
        );
        assert!(e.to_string().contains("\"b/c\" twice"), "{e}");
        // A duplicate key inside a resource is not JSON mlsign reads, wherever it is.
        let text = serde_json::to_string(&statement(Method::Files, &["a"])).unwrap();
        let twice = text.replacen("\"name\":\"a\"", "\"name\":\"a\",\"name\":\"b\"", 1);
        assert!(matches!(
            parse_compact(twice.as_bytes()),
            Err(StatementError::NotJson(e)) if e.contains("duplicate key")
        ));
        let deep = text.replacen(
            "\"_type\"",
            "\"x\":[{\"k\":{\"z\":1,\"z\":2}}],\"_type\"",
            1,
        );
        assert!(matches!(
            parse_compact(deep.as_bytes()),
            Err(StatementError::NotJson(e)) if e.contains("duplicate key")
        ));
        let _ = KIND_ANNOTATION;
    }
}

#[cfg(test)]
mod memory {
    use super::super::statement::model_statement;
    use super::super::statement_reference as reference;
    use super::*;
    use crate::digest::alloc_count::peak_of;
    use crate::digest::{Manifest, Resource};

    /// A memory regression check, not a timing: parsing the statement of 50,000 files keeps
    /// its names, digests and index (~60 bytes a file here, plus vector growth) and little
    /// else. The tree parser it replaced held ~800 bytes a file; the bound sits between.
    #[test]
    fn parsing_holds_about_the_names_and_digests() {
        let n: usize = 50_000;
        let m = Manifest::from_resources(
            (0..n)
                .map(|i| Resource {
                    name: format!("p{:02}/{:03}/{i:08}.bin", i / 100_000, i % 1000),
                    algorithm: "sha256".into(),
                    digest: crate::util::sha256(&i.to_le_bytes()).to_vec(),
                })
                .collect(),
        );
        let payload = model_statement("m", SubjectKind::Model, &m, &HashConfig::default());
        drop(m);
        let (parsed, peak) = peak_of(|| parse_compact(&payload).unwrap());
        assert_eq!(parsed.resources.len(), n);
        let per = peak / n;
        assert!(per < 200, "{per} bytes a resource at peak");
        let (old, old_peak) = peak_of(|| reference::parse_model_statement(&payload).unwrap());
        assert_eq!(old.manifest.resources().len(), n);
        // The check can fail: the parser it replaced is well over the bound.
        assert!(
            old_peak / n > 3 * per && old_peak / n > 500,
            "the tree parser held {} bytes a resource, this one {per}",
            old_peak / n
        );
        eprintln!(
            "peak per resource: {per} bytes (tree parser: {})",
            old_peak / n
        );
    }
}
