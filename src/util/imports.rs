//! No import circles between the library's top-level modules: a module that another one builds
//! on must not reach back into it (that is how helpers end up misplaced). This test reads every
//! `crate::module` path (including `use crate::{a, b}` groups) outside test modules and fails on
//! any strongly connected set of modules, naming the files that make each edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules the check leaves out (none: add one only with the reason next to it).
/// Circles inside a module are checked for the modules in [`CHECKED_INSIDE`].
const EXCUSED: &[&str] = &[];

/// Top-level modules whose own sub-modules must not form circles either (`scan`: the formats
/// and the pickle machine meet only in `scan::scanner`).
const CHECKED_INSIDE: &[&str] = &["scan"];

fn rs_files(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_file() && p.extension().is_some_and(|e| e == "rs") {
        out.push(p.to_path_buf());
    } else if p.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(p).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.path());
        for e in entries {
            rs_files(&e.path(), out);
        }
    }
}

/// The code of a file without comments and without its trailing `#[cfg(test)] mod …` (tests may
/// use anything).
fn library_code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(l) = lines.next() {
        let t = l.trim_start();
        if t.starts_with("#[cfg(test)]")
            && lines
                .peek()
                .is_some_and(|n| n.trim_start().starts_with("mod "))
        {
            break;
        }
        let code = match t.find("//") {
            Some(i) => &t[..i],
            None => t,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// Modules named after `crate::` in `code`.
fn referenced(code: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `mycrate::`, not `crate::`
        }
        let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            group[..end]
                .split(',')
                .map(|s| s.trim().split("::").next().unwrap_or("").trim())
                .collect()
        } else {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            vec![&rest[..end]]
        };
        found.extend(
            names
                .into_iter()
                .filter(|n| known.contains(*n))
                .map(String::from),
        );
    }
    found
}

/// Strongly connected components with more than one module (Tarjan).
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        t.on.insert(v);
        for w in t.edges.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low[v].min(lw);
                t.low.insert(v, lv);
            } else if t.on.contains(w) {
                let lv = t.low[v].min(t.index[w]);
                t.low.insert(v, lv);
            }
        }
        if t.low[v] == t.index[v] {
            let mut c = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                c.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if c.len() > 1 {
                c.sort();
                t.out.push(c);
            }
        }
    }
    let mut t = T {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

/// Paths named by `crate::…` and `super::…` in `code` (groups flattened to their first
/// segments), resolved to absolute module paths against `here`, the file's own module path.
fn resolved_paths(code: &str, here: &[String]) -> Vec<Vec<String>> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let start = if rest.starts_with("crate::") || rest.starts_with("super::") {
            !code[..i].ends_with(|c: char| ident(c) || c == ':')
        } else {
            false
        };
        if !start {
            i += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        }
        let mut base: Vec<String> = Vec::new();
        let mut r = rest;
        if let Some(t) = r.strip_prefix("crate::") {
            r = t;
        } else {
            base = here.to_vec();
            while let Some(t) = r.strip_prefix("super::") {
                base.pop();
                r = t;
            }
        }
        // Segments up to a group or the end of the path.
        let mut grouped = r.starts_with('{');
        loop {
            let end = r.find(|c: char| !ident(c)).unwrap_or(r.len());
            if end == 0 {
                break;
            }
            base.push(r[..end].to_string());
            r = &r[end..];
            match r.strip_prefix("::") {
                Some(t) if t.starts_with('{') => {
                    (r, grouped) = (t, true);
                    break;
                }
                Some(t) => r = t,
                None => break,
            }
        }
        if let Some(group) = r.strip_prefix('{').filter(|_| grouped) {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let first = item.trim().split("::").next().unwrap_or("").trim();
                if !first.is_empty() && first != "self" {
                    let mut p = base.clone();
                    p.push(first.to_string());
                    out.push(p);
                }
            }
        }
        out.push(base);
        i = code.len() - r.len();
    }
    out
}

/// The module path of a source file (`scan/formats/zip.rs` → scan, formats, zip).
fn module_path(rel: &Path) -> Vec<String> {
    let mut p: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if p.last().is_some_and(|l| l == "mod") {
        p.pop();
    }
    p
}

type Edges = BTreeMap<String, BTreeSet<String>>;
/// The files that make each edge.
type EdgeFiles = BTreeMap<(String, String), BTreeSet<String>>;

/// Edges between the sub-modules of top-level module `top` (and `top` itself, for what its
/// `mod.rs` uses and for paths that end at it), with the files that make each edge.
fn inner_edges(src: &Path, top: &str) -> (Edges, EdgeFiles) {
    let mut files = Vec::new();
    rs_files(&src.join(top), &mut files);
    let children: BTreeSet<String> = files
        .iter()
        .filter_map(|f| module_path(f.strip_prefix(src).ok()?).get(1).cloned())
        .collect();
    let node = |p: &[String]| -> Option<String> {
        if p.first().map(String::as_str) != Some(top) {
            return None;
        }
        Some(match p.get(1) {
            Some(c) if children.contains(c) => c.clone(),
            _ => top.to_string(),
        })
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut why: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(src).unwrap();
        let here = module_path(rel);
        let Some(from) = node(&here) else { continue };
        let code = library_code(&std::fs::read_to_string(f).unwrap());
        let mut to: Vec<String> = resolved_paths(&code, &here)
            .iter()
            .filter_map(|p| node(p))
            .collect();
        if from == top {
            // The module's own file names its children without a prefix.
            for c in &children {
                let pat = format!("{c}::");
                to.extend(code.match_indices(&pat).filter_map(|(i, _)| {
                    let before = code[..i].chars().next_back();
                    (!before.is_some_and(|b| b.is_alphanumeric() || b == '_' || b == ':'))
                        .then(|| c.clone())
                }));
            }
        }
        for t in to {
            if t != from {
                edges.entry(from.clone()).or_default().insert(t.clone());
                why.entry((from.clone(), t))
                    .or_default()
                    .insert(rel.display().to_string());
            }
        }
    }
    (edges, why)
}

/// Whether `to` can be reached from `from`.
fn reaches(edges: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_string()];
    while let Some(m) = stack.pop() {
        if m == to {
            return true;
        }
        if seen.insert(m.clone()) {
            stack.extend(edges.get(&m).into_iter().flatten().cloned());
        }
    }
    false
}

#[test]
fn no_circles_inside_checked_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for top in CHECKED_INSIDE {
        let (edges, why) = inner_edges(&src, top);
        assert!(edges.len() > 3, "{top}: too few edges found: {edges:?}");
        let found = circles(&edges);
        let mut msg = String::new();
        for c in &found {
            msg.push_str(&format!("circle in {top}: {}\n", c.join(" ↔ ")));
            for a in c {
                for b in c {
                    if let Some(files) = why.get(&(a.clone(), b.clone())) {
                        msg.push_str(&format!("  {a} → {b}: {files:?}\n"));
                    }
                }
            }
        }
        assert!(found.is_empty(), "{msg}");
    }
    // The star: the formats build on the pickle machine, which reaches them only through the
    // scanner (`Scanner::embedded`), never by name.
    let (edges, why) = inner_edges(&src, "scan");
    assert!(reaches(&edges, "formats", "pickle"), "{edges:?}");
    assert!(reaches(&edges, "pickle", "scanner"), "{edges:?}");
    assert!(!reaches(&edges, "pickle", "formats"), "{edges:?} {why:?}");
}

#[test]
fn no_circles_between_top_level_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let known: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| {
            let l = l.trim().strip_prefix("pub ").unwrap_or(l.trim());
            let name = l.strip_prefix("mod ")?.strip_suffix(';')?;
            Some(name.trim().to_string())
        })
        .filter(|m| !EXCUSED.contains(&m.as_str()))
        .collect();
    assert!(known.len() > 5, "modules not found in lib.rs: {known:?}");
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut why: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for m in &known {
        let mut files = Vec::new();
        rs_files(&src.join(format!("{m}.rs")), &mut files);
        rs_files(&src.join(m), &mut files);
        for f in files {
            let code = library_code(&std::fs::read_to_string(&f).unwrap());
            for to in referenced(&code, &known) {
                if &to != m {
                    edges.entry(m.clone()).or_default().insert(to.clone());
                    let rel = f.strip_prefix(&src).unwrap().display().to_string();
                    why.entry((m.clone(), to)).or_default().insert(rel);
                }
            }
        }
    }
    let found = circles(&edges);
    let mut msg = String::new();
    for c in &found {
        msg.push_str(&format!("circle: {}\n", c.join(" ↔ ")));
        for a in c {
            for b in c {
                if let Some(files) = why.get(&(a.clone(), b.clone())) {
                    msg.push_str(&format!("  {a} → {b}: {files:?}\n"));
                }
            }
        }
    }
    assert!(found.is_empty(), "{msg}");
}

#[test]
fn the_check_sees_circles_and_groups() {
    let known: BTreeSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let code = library_code(
        "use crate::{a::x, b};\n// crate::c in a comment\nlet v = crate::c::f(); mycrate::a;\n\
         #[cfg(test)]\nmod tests { use crate::c; }\n",
    );
    assert_eq!(
        referenced(&code, &known),
        ["a", "b", "c"].iter().map(|s| s.to_string()).collect()
    );
    assert!(!library_code("#[cfg(test)]\nmod tests {\n crate::a\n}").contains("crate::a"));
    let e = |pairs: &[(&str, &str)]| {
        let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in pairs {
            m.entry(a.to_string()).or_default().insert(b.to_string());
        }
        m
    };
    assert!(circles(&e(&[("a", "b"), ("b", "c")])).is_empty());
    // (Module names that are not in lib.rs, so this file makes no edge of its own.)
    let here: Vec<String> = ["top", "fmts", "zip"].map(String::from).to_vec();
    let paths = resolved_paths(
        "use super::source::Source; use super::super::{pkl::x, finding};\n\
         let _ = crate::top::scanner::f(); a::super::b; fn f() -> crate::X {}",
        &here,
    );
    let want: Vec<Vec<String>> = [
        &["top", "fmts", "source", "Source"][..],
        &["top", "pkl"],
        &["top", "finding"],
        &["top"],
        &["top", "scanner", "f"],
        &["X"],
    ]
    .iter()
    .map(|p| p.iter().map(|s| s.to_string()).collect())
    .collect();
    assert_eq!(paths, want);
    assert_eq!(module_path(Path::new("top/fmts/mod.rs")), ["top", "fmts"]);
    assert_eq!(
        circles(&e(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])),
        vec![vec!["a".to_string(), "b".into(), "c".into()]]
    );
}
