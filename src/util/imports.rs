//! No import circles between the library's top-level modules: a module that another one builds
//! on must not reach back into it (that is how helpers end up misplaced). This test reads every
//! `crate::module` path (including `use crate::{a, b}` groups) outside test modules and fails on
//! any strongly connected set of modules, naming the files that make each edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules the check leaves out (none: add one only with the reason next to it).
/// Circles inside a module (e.g. between `scan`'s sub-modules) are not checked here.
const EXCUSED: &[&str] = &[];

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
    assert_eq!(
        circles(&e(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])),
        vec![vec!["a".to_string(), "b".into(), "c".into()]]
    );
}
