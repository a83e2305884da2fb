//! Chat templates (Jinja) judged by their syntax tree, not by substrings.
//!
//! A template is parsed with minijinja's parser (the same grammar as Jinja2 for everything chat
//! templates use). Then every place where Jinja2 looks up an attribute by a name — `x.name`,
//! `x[expr]` (Jinja2 falls back from item to attribute), the `attr` filter, the `attribute=`
//! argument of `map`/`selectattr`/`sort`/… and `map('attr', …)` — is checked: a name that folds
//! to a Python internal (`__class__`, `__globals__`, `mro`, frame attributes…) is a
//! template-injection payload (CVE-2024-34359 class), and so is a name that cannot be folded to a
//! constant when it is built from strings. Folding follows Jinja2: string literals are decoded as
//! Python's `unicode-escape` does (`\x5f`, `\u005f`, `\U0000005f`, octal), adjacent literals
//! join, and `~`, `+`, `*`, slices and the common string filters and methods are evaluated.

use minijinja::machinery::ast::{self, CallArg, Expr, Stmt};
use std::collections::HashMap;

/// One reason a template is dangerous.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Risk {
    /// Byte offset in the template.
    pub at: u32,
    pub what: String,
}

/// Attribute names that reach interpreter internals without a dunder (Jinja2's sandbox list).
const UNSAFE_NAMES: &[&str] = &[
    "mro",
    "func_globals",
    "func_code",
    "func_closure",
    "func_defaults",
    "im_class",
    "im_func",
    "im_self",
    "gi_frame",
    "gi_code",
    "gi_yieldfrom",
    "cr_frame",
    "cr_code",
    "cr_await",
    "ag_frame",
    "ag_code",
    "ag_await",
    "f_back",
    "f_builtins",
    "f_code",
    "f_globals",
    "f_locals",
    "tb_frame",
    "tb_next",
];

/// Whether an attribute name (or a dotted path of them) reaches Python internals.
pub fn is_internal_name(name: &str) -> bool {
    name.split('.')
        .any(|p| p.starts_with("__") || UNSAFE_NAMES.contains(&p))
}

/// Whether a built string is itself a dunder name (or dotted path with one): `__x__`.
fn is_dunder_ident(s: &str) -> bool {
    s.split('.').any(|p| {
        p.len() > 4
            && p.starts_with("__")
            && p.ends_with("__")
            && p.chars().all(|c| c == '_' || c.is_alphanumeric())
    })
}

/// A template whose Jinja syntax cannot be read (as Jinja itself would refuse it).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SyntaxError(#[from] minijinja::Error);

/// Parse a template; `Err` when Jinja syntax cannot be read (itself a finding for the caller).
pub fn analyse(source: &str) -> Result<Vec<Risk>, SyntaxError> {
    let prepared = prepare(source);
    let tree = minijinja::machinery::parse(&prepared, "chat_template", Default::default())?;
    let mut w = Walker {
        src: source,
        env: HashMap::new(),
        risks: vec![],
    };
    w.stmt(&tree);
    w.risks.sort_by_key(|r| r.at);
    w.risks.dedup();
    Ok(w.risks)
}

/// A folded value: what Jinja2 would compute, when it can be known statically.
#[derive(Clone, Debug)]
enum V {
    Str(String),
    Int(i64),
    List(Vec<V>),
}

impl V {
    fn as_text(&self) -> Option<String> {
        match self {
            V::Str(s) => Some(s.clone()),
            V::Int(i) => Some(i.to_string()),
            V::List(_) => None,
        }
    }
}

/// Rewrites, byte for byte in place, what the real consumers of chat templates accept and
/// minijinja's parser does not:
///
/// * `{% generation %}` … `{% endgeneration %}`: transformers' chat-template environment loads
///   its `AssistantTracker` extension, which parses the tag as a block whose body renders as
///   usual (it only records where the assistant's text lands); llama.cpp's minja reads it as
///   the same kind of block. It becomes `{% if true %}` … `{% endif %}`, so the body is walked.
/// * `\N{NAME}` escapes in string literals (Python's `unicode-escape`, which Jinja2 decodes
///   literals with): blanked with spaces so the literal parses; `fold` then treats any literal
///   holding one as unknown text (mlsign has no Unicode name table), so a name built from it is
///   flagged as not statically known rather than trusted.
///
/// Offsets stay valid for risk positions. Anything else minijinja refuses stays an error.
fn prepare(src: &str) -> String {
    let mut b = src.as_bytes().to_vec();
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b'{' && b[i + 1] == b'%' {
            if let Some((from, to, end)) = generation_tag(&b, i) {
                let keyword: &[u8] = if end { b"endif" } else { b"if true" };
                // `to - from` >= len("generation") > len(keyword)
                b[from..from + keyword.len()].copy_from_slice(keyword);
                b[from + keyword.len()..to].fill(b' ');
            }
            i += 2;
        } else if b[i] == b'\\' {
            if b[i + 1] == b'N' && b.get(i + 2) == Some(&b'{') {
                if let Some(len) = b[i + 3..].iter().take(128).position(|&c| c == b'}') {
                    let name = &b[i + 3..i + 3 + len];
                    if !name.is_empty()
                        && name
                            .iter()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b' ' | b'-'))
                    {
                        b[i..i + 4 + len].fill(b' ');
                        i += 4 + len;
                        continue;
                    }
                }
            }
            // An escape pair (`\\N{…}` is a backslash and text).
            i += 2;
        } else {
            i += 1;
        }
    }
    // Only ASCII bytes were replaced by ASCII bytes, whole escapes and keywords at a time.
    String::from_utf8(b).unwrap_or_else(|_| src.to_string())
}

/// `{%[-+]? generation|endgeneration [-+]?%}` at `at`: the span of the keyword with its
/// surrounding blanks, and whether it is the end tag.
fn generation_tag(b: &[u8], at: usize) -> Option<(usize, usize, bool)> {
    let mut j = at + 2;
    if matches!(b.get(j), Some(b'-' | b'+')) {
        j += 1;
    }
    let from = j;
    while b.get(j).is_some_and(u8::is_ascii_whitespace) {
        j += 1;
    }
    let word_start = j;
    while b
        .get(j)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
    {
        j += 1;
    }
    let end = match &b[word_start..j] {
        b"generation" => false,
        b"endgeneration" => true,
        _ => return None,
    };
    while b.get(j).is_some_and(u8::is_ascii_whitespace) {
        j += 1;
    }
    let to = j;
    if matches!(b.get(j), Some(b'-' | b'+')) {
        j += 1;
    }
    (b.get(j..j + 2) == Some(b"%}")).then_some((from, to, end))
}

/// Whether adjacent literals hold a `\N{…}` escape (outside an escaped backslash).
fn has_name_escape(raw: &str) -> bool {
    let b = raw.as_bytes();
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b'\\' {
            if b[i + 1] == b'N' {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// Longest string folding builds (names are short; this bounds `'x' * 10**9`).
const MAX_FOLD: usize = 4096;

struct Walker<'s> {
    src: &'s str,
    /// Variables set from string-building expressions: `Some` when the value is known.
    env: HashMap<String, Option<V>>,
    risks: Vec<Risk>,
}

fn span_of(e: &Expr<'_>) -> u32 {
    e.span().start_offset
}

impl Walker<'_> {
    fn flag(&mut self, at: u32, what: String) {
        self.risks.push(Risk { at, what });
    }

    fn stmts(&mut self, b: &[Stmt<'_>]) {
        for s in b {
            self.stmt(s);
        }
    }

    fn stmt(&mut self, s: &Stmt<'_>) {
        match s {
            Stmt::Template(t) => self.stmts(&t.children),
            Stmt::EmitExpr(e) => self.expr(&e.expr),
            Stmt::EmitRaw(_) => {}
            Stmt::ForLoop(f) => {
                self.expr(&f.iter);
                // Loop variables hold data (dict keys index their own dict): not built names.
                self.bind(&f.target, None, false);
                if let Some(x) = &f.filter_expr {
                    self.expr(x);
                }
                self.stmts(&f.body);
                self.stmts(&f.else_body);
            }
            Stmt::IfCond(c) => {
                self.expr(&c.expr);
                self.stmts(&c.true_body);
                self.stmts(&c.false_body);
            }
            Stmt::WithBlock(w) => {
                for (t, v) in &w.assignments {
                    self.expr(v);
                    let folded = self.fold(v);
                    self.bind(t, folded, self.stringy(v));
                }
                self.stmts(&w.body);
            }
            Stmt::Set(x) => {
                self.expr(&x.expr);
                let folded = self.fold(&x.expr);
                let stringy = self.stringy(&x.expr);
                self.bind(&x.target, folded, stringy);
            }
            Stmt::SetBlock(x) => {
                if let Some(f) = &x.filter {
                    self.expr(f);
                }
                self.stmts(&x.body);
                // Captured output is a string built at run time.
                self.bind(&x.target, None, true);
            }
            Stmt::AutoEscape(a) => {
                self.expr(&a.enabled);
                self.stmts(&a.body);
            }
            Stmt::FilterBlock(f) => {
                self.expr(&f.filter);
                self.stmts(&f.body);
            }
            Stmt::Block(b) => self.stmts(&b.body),
            Stmt::Import(i) => {
                self.flag(
                    span_of(&i.expr),
                    "imports another template (a loader may read files)".into(),
                );
                self.expr(&i.expr);
            }
            Stmt::FromImport(i) => {
                self.flag(
                    span_of(&i.expr),
                    "imports from another template (a loader may read files)".into(),
                );
                self.expr(&i.expr);
            }
            Stmt::Extends(x) => {
                self.flag(
                    span_of(&x.name),
                    "extends another template (a loader may read files)".into(),
                );
                self.expr(&x.name);
            }
            Stmt::Include(x) => {
                self.flag(
                    span_of(&x.name),
                    "includes another template (a loader may read files)".into(),
                );
                self.expr(&x.name);
            }
            Stmt::Macro(m) => {
                for a in m.args.iter().chain(&m.defaults) {
                    self.expr(a);
                }
                for a in &m.args {
                    self.bind(a, None, false);
                }
                self.stmts(&m.body);
            }
            Stmt::CallBlock(c) => {
                self.call(&c.call);
                self.stmts(&c.macro_decl.body);
            }
            Stmt::Continue(_) | Stmt::Break(_) => {}
            Stmt::Do(d) => self.call(&d.call),
        }
    }

    /// Record what a target now holds. `stringy`: the value may be a built string.
    fn bind(&mut self, target: &Expr<'_>, value: Option<V>, stringy: bool) {
        match target {
            Expr::Var(v) => {
                if value.is_some() || stringy {
                    self.env.insert(v.id.to_string(), value);
                } else {
                    self.env.remove(v.id);
                }
            }
            Expr::Tuple(t) => {
                for i in &t.items {
                    self.bind(i, None, stringy);
                }
            }
            Expr::List(l) => {
                for i in &l.items {
                    self.bind(i, None, stringy);
                }
            }
            // `set ns.attr = …`: the attribute name is literal; nothing to record.
            other => self.expr(other),
        }
    }

    fn args(&mut self, args: &[CallArg<'_>]) {
        for a in args {
            match a {
                CallArg::Pos(e)
                | CallArg::Kwarg(_, e)
                | CallArg::PosSplat(e)
                | CallArg::KwargSplat(e) => self.expr(e),
            }
        }
    }

    fn call(&mut self, c: &ast::Call<'_>) {
        self.expr(&c.expr);
        self.args(&c.args);
    }

    /// Check a name Jinja2 looks an attribute up by: literal, folded, or built at run time.
    /// `getattr_like`: the name is only ever an attribute name (`attr`, `attribute=`), so any
    /// name not known statically is flagged; for `x[expr]` only names built from strings are.
    fn check_name(&mut self, at: u32, how: &str, name: &Expr<'_>, getattr_like: bool) {
        match self.fold(name) {
            Some(v) => {
                if let Some(s) = v.as_text() {
                    if is_internal_name(&s) {
                        self.flag(at, format!("{how} {s:?}: reaches Python internals"));
                    }
                }
            }
            None if getattr_like || self.stringy(name) => self.flag(
                at,
                format!("{how} a name not known until render time (cannot be checked statically)"),
            ),
            None => {}
        }
    }

    fn expr(&mut self, e: &Expr<'_>) {
        match e {
            Expr::Var(v) => {
                if v.id.starts_with("__") {
                    self.flag(
                        span_of(e),
                        format!("variable {:?} names Python internals", v.id),
                    );
                }
            }
            Expr::Const(_) => {
                if let Some(V::Str(s)) = self.fold(e) {
                    if s.len() < 256 && is_dunder_ident(&s) {
                        self.flag(span_of(e), format!("string {s:?} names Python internals"));
                    }
                }
            }
            Expr::Slice(s) => {
                self.expr(&s.expr);
                for x in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                    self.expr(x);
                }
            }
            Expr::UnaryOp(u) => self.expr(&u.expr),
            Expr::BinOp(b) => {
                self.expr(&b.left);
                self.expr(&b.right);
                if let Some(V::Str(s)) = self.fold(e) {
                    if is_dunder_ident(&s) {
                        self.flag(
                            span_of(e),
                            format!("builds the string {s:?}, which names Python internals"),
                        );
                    }
                }
            }
            Expr::Compare(c) => {
                self.expr(&c.expr);
                for o in &c.ops {
                    self.expr(&o.expr);
                }
            }
            Expr::IfExpr(i) => {
                self.expr(&i.test_expr);
                self.expr(&i.true_expr);
                if let Some(f) = &i.false_expr {
                    self.expr(f);
                }
            }
            Expr::Filter(f) => {
                if let Some(x) = &f.expr {
                    self.expr(x);
                }
                self.args(&f.args);
                self.filter_names(span_of(e), f.name, &f.args);
            }
            Expr::Test(t) => {
                self.expr(&t.expr);
                self.args(&t.args);
            }
            Expr::GetAttr(g) => {
                self.expr(&g.expr);
                if is_internal_name(g.name) {
                    self.flag(
                        span_of(e),
                        format!("attribute {:?}: reaches Python internals", g.name),
                    );
                }
            }
            Expr::GetItem(g) => {
                self.expr(&g.expr);
                self.expr(&g.subscript_expr);
                // Jinja2's `x[name]` falls back to getattr(x, name).
                self.check_name(
                    span_of(e),
                    "item/attribute lookup of",
                    &g.subscript_expr,
                    false,
                );
            }
            Expr::Call(c) => {
                self.expr(&c.expr);
                self.args(&c.args);
                if let Expr::Var(v) = &c.expr {
                    // `dict(__class__=1)` builds internal names as keys.
                    for a in &c.args {
                        if let CallArg::Kwarg(k, _) = a {
                            if is_internal_name(k) {
                                self.flag(
                                    span_of(e),
                                    format!("{}() keyword {k:?} names Python internals", v.id),
                                );
                            }
                        }
                    }
                }
            }
            Expr::List(l) => {
                for i in &l.items {
                    self.expr(i);
                }
            }
            Expr::Tuple(t) => {
                for i in &t.items {
                    self.expr(i);
                }
            }
            Expr::Map(m) => {
                for (k, v) in m.keys.iter().zip(&m.values) {
                    self.expr(k);
                    self.expr(v);
                }
            }
        }
    }

    /// Filters that look attributes up by a name given as an argument.
    fn filter_names(&mut self, at: u32, name: &str, args: &[CallArg<'_>]) {
        let pos: Vec<&Expr<'_>> = args
            .iter()
            .filter_map(|a| match a {
                CallArg::Pos(e) => Some(e),
                _ => None,
            })
            .collect();
        if name == "attr" {
            if let Some(n) = pos.first() {
                self.check_name(at, "attr filter with", n, true);
            }
        }
        // `map('attr', name)`, `select('attr', …)`: a filter or test applied by name.
        if matches!(
            name,
            "map" | "select" | "reject" | "selectattr" | "rejectattr"
        ) {
            if let Some(first) = pos.first() {
                match self.fold(first) {
                    Some(V::Str(f)) if f == "attr" => {
                        if let Some(n) = pos.get(1) {
                            self.check_name(at, "map('attr') with", n, true);
                        }
                    }
                    Some(_) => {}
                    None => self.flag(
                        at,
                        format!("{name} filter applies a filter or test chosen at render time"),
                    ),
                }
            }
        }
        // `attribute=` arguments (dotted paths are followed) and selectattr's first argument.
        for a in args {
            if let CallArg::Kwarg("attribute", v) = a {
                self.check_name(at, &format!("{name}(attribute=…) with"), v, true);
            }
        }
        if matches!(name, "selectattr" | "rejectattr") {
            if let Some(n) = pos.first() {
                self.check_name(at, &format!("{name} with"), n, true);
            }
        }
        // groupby takes the attribute positionally too.
        if name == "groupby" {
            if let Some(n) = pos.first() {
                self.check_name(at, &format!("{name} with"), n, true);
            }
        }
    }

    /// Whether an expression may evaluate to a string built from pieces (so a lookup by it
    /// could name anything). Plain variables from the context and arithmetic are not.
    fn stringy(&self, e: &Expr<'_>) -> bool {
        match e {
            // A string literal, folded or not (see `prepare` for the ones that are not).
            Expr::Const(c) => c.value.as_str().is_some(),
            Expr::Var(v) => self.env.contains_key(v.id),
            Expr::BinOp(b) => {
                matches!(b.op, ast::BinOpKind::Concat)
                    || self.stringy(&b.left)
                    || self.stringy(&b.right)
            }
            Expr::Filter(f) => {
                matches!(
                    f.name,
                    "join"
                        | "format"
                        | "replace"
                        | "lower"
                        | "upper"
                        | "reverse"
                        | "string"
                        | "trim"
                        | "title"
                        | "capitalize"
                        | "first"
                        | "last"
                        | "urlencode"
                        | "default"
                        | "d"
                        | "center"
                        | "indent"
                        | "truncate"
                        | "wordwrap"
                        | "striptags"
                        | "safe"
                        | "escape"
                        | "e"
                        | "forceescape"
                        | "tojson"
                        | "random"
                        | "list"
                        | "sort"
                        | "unique"
                        | "min"
                        | "max"
                        | "batch"
                        | "slice"
                        | "map"
                        | "dictsort"
                        | "items"
                        | "pprint"
                        | "xmlattr"
                ) || f.expr.as_ref().is_some_and(|x| self.stringy(x))
            }
            Expr::Call(c) => match &c.expr {
                Expr::GetAttr(g) => {
                    matches!(
                        g.name,
                        "format"
                            | "join"
                            | "replace"
                            | "lower"
                            | "upper"
                            | "strip"
                            | "lstrip"
                            | "rstrip"
                            | "title"
                            | "capitalize"
                            | "swapcase"
                            | "casefold"
                            | "removeprefix"
                            | "removesuffix"
                            | "translate"
                            | "zfill"
                            | "center"
                            | "ljust"
                            | "rjust"
                            | "expandtabs"
                            | "pop"
                            | "get"
                            | "split"
                    ) || self.stringy(&g.expr)
                }
                Expr::Var(v) => matches!(v.id, "dict" | "namespace") || self.env.contains_key(v.id),
                _ => true,
            },
            Expr::IfExpr(i) => {
                self.stringy(&i.true_expr) || i.false_expr.as_ref().is_some_and(|f| self.stringy(f))
            }
            Expr::GetItem(g) => self.stringy(&g.expr),
            Expr::Slice(s) => self.stringy(&s.expr),
            Expr::GetAttr(g) => self.stringy(&g.expr),
            Expr::List(l) => l.items.iter().any(|i| self.stringy(i)),
            Expr::Tuple(t) => t.items.iter().any(|i| self.stringy(i)),
            Expr::Map(_) => true,
            Expr::UnaryOp(_) | Expr::Compare(_) | Expr::Test(_) => false,
        }
    }

    /// The value Jinja2 computes for `e`, when it is known statically.
    fn fold(&self, e: &Expr<'_>) -> Option<V> {
        let v = match e {
            Expr::Const(c) => {
                if c.value.as_str().is_some() {
                    // Re-decode the literal(s) as Jinja2 does, from the source.
                    let sp = c.span();
                    let raw = self
                        .src
                        .get(sp.start_offset as usize..sp.end_offset as usize)?;
                    if has_name_escape(raw) {
                        // Its value is not known here (see `prepare`).
                        return None;
                    }
                    V::Str(python_literals(raw).or_else(|| c.value.as_str().map(str::to_string))?)
                } else if let Ok(i) = i64::try_from(c.value.clone()) {
                    V::Int(i)
                } else {
                    return None;
                }
            }
            Expr::Var(v) => self.env.get(v.id)?.clone()?,
            Expr::List(l) => V::List(
                l.items
                    .iter()
                    .map(|i| self.fold(i))
                    .collect::<Option<_>>()?,
            ),
            Expr::Tuple(t) => V::List(
                t.items
                    .iter()
                    .map(|i| self.fold(i))
                    .collect::<Option<_>>()?,
            ),
            Expr::BinOp(b) => {
                let (l, r) = (self.fold(&b.left)?, self.fold(&b.right)?);
                match (b.op, l, r) {
                    (ast::BinOpKind::Concat, l, r) => V::Str(l.as_text()? + &r.as_text()?),
                    (ast::BinOpKind::Add, V::Str(l), V::Str(r)) => V::Str(l + &r),
                    (ast::BinOpKind::Add, V::Int(l), V::Int(r)) => V::Int(l.checked_add(r)?),
                    (ast::BinOpKind::Mul, V::Str(s), V::Int(n))
                    | (ast::BinOpKind::Mul, V::Int(n), V::Str(s)) => {
                        let n = usize::try_from(n.max(0)).ok()?;
                        if s.len().checked_mul(n)? > MAX_FOLD {
                            return None;
                        }
                        V::Str(s.repeat(n))
                    }
                    (ast::BinOpKind::Mul, V::Int(l), V::Int(r)) => V::Int(l.checked_mul(r)?),
                    (ast::BinOpKind::Sub, V::Int(l), V::Int(r)) => V::Int(l.checked_sub(r)?),
                    (ast::BinOpKind::Rem, V::Str(f), arg) => V::Str(percent_format(&f, &arg)?),
                    _ => return None,
                }
            }
            Expr::UnaryOp(u) if matches!(u.op, ast::UnaryOpKind::Neg) => {
                match self.fold(&u.expr)? {
                    V::Int(i) => V::Int(i.checked_neg()?),
                    _ => return None,
                }
            }
            Expr::Slice(s) => {
                let V::Str(base) = self.fold(&s.expr)? else {
                    return None;
                };
                let int = |x: &Option<Expr<'_>>| -> Option<Option<i64>> {
                    match x {
                        None => Some(None),
                        Some(x) => match self.fold(x)? {
                            V::Int(i) => Some(Some(i)),
                            _ => None,
                        },
                    }
                };
                V::Str(py_slice(
                    &base,
                    int(&s.start)?,
                    int(&s.stop)?,
                    int(&s.step)?,
                )?)
            }
            Expr::GetItem(g) => match (self.fold(&g.expr)?, self.fold(&g.subscript_expr)?) {
                (V::List(l), V::Int(i)) => {
                    let n = l.len() as i64;
                    let i = if i < 0 { i + n } else { i };
                    l.get(usize::try_from(i).ok()?)?.clone()
                }
                (V::Str(s), V::Int(i)) => {
                    let c: Vec<char> = s.chars().collect();
                    let n = c.len() as i64;
                    let i = if i < 0 { i + n } else { i };
                    V::Str(c.get(usize::try_from(i).ok()?)?.to_string())
                }
                _ => return None,
            },
            Expr::Filter(f) => {
                let base = self.fold(f.expr.as_ref()?)?;
                let pos: Vec<V> = f
                    .args
                    .iter()
                    .map(|a| match a {
                        CallArg::Pos(e) => self.fold(e),
                        _ => None,
                    })
                    .collect::<Option<_>>()?;
                apply(f.name, base, &pos)?
            }
            Expr::Call(c) => {
                let Expr::GetAttr(g) = &c.expr else {
                    return None;
                };
                let base = self.fold(&g.expr)?;
                let pos: Vec<V> = c
                    .args
                    .iter()
                    .map(|a| match a {
                        CallArg::Pos(e) => self.fold(e),
                        _ => None,
                    })
                    .collect::<Option<_>>()?;
                apply(g.name, base, &pos)?
            }
            _ => return None,
        };
        match &v {
            V::Str(s) if s.len() > MAX_FOLD => None,
            _ => Some(v),
        }
    }
}

/// String filters and `str` methods, as Jinja2 / Python compute them.
fn apply(name: &str, base: V, args: &[V]) -> Option<V> {
    Some(match (name, base) {
        ("lower", V::Str(s)) => V::Str(s.to_lowercase()),
        ("upper", V::Str(s)) => V::Str(s.to_uppercase()),
        ("string", v) => V::Str(v.as_text()?),
        ("reverse", V::Str(s)) => V::Str(s.chars().rev().collect()),
        ("reverse", V::List(l)) => V::List(l.into_iter().rev().collect()),
        ("trim" | "strip", V::Str(s)) if args.is_empty() => V::Str(s.trim().to_string()),
        ("strip", V::Str(s)) => {
            let V::Str(chars) = args.first()? else {
                return None;
            };
            V::Str(s.trim_matches(|c| chars.contains(c)).to_string())
        }
        ("replace", V::Str(s)) => {
            let (V::Str(a), V::Str(b)) = (args.first()?, args.get(1)?) else {
                return None;
            };
            if a.is_empty() {
                return None;
            }
            V::Str(s.replace(a.as_str(), b))
        }
        ("join", V::List(l)) => {
            let sep = match args.first() {
                Some(V::Str(s)) => s.clone(),
                None => String::new(),
                _ => return None,
            };
            V::Str(
                l.iter()
                    .map(V::as_text)
                    .collect::<Option<Vec<_>>>()?
                    .join(&sep),
            )
        }
        ("join", V::Str(sep)) => {
            // str.join(iterable)
            let V::List(l) = args.first()? else {
                return None;
            };
            V::Str(
                l.iter()
                    .map(V::as_text)
                    .collect::<Option<Vec<_>>>()?
                    .join(&sep),
            )
        }
        ("format", V::Str(f)) if f.contains('{') => {
            // str.format with positional `{}` / `{0}` fields.
            let mut out = String::new();
            let mut auto = 0usize;
            let mut rest = f.as_str();
            while let Some(i) = rest.find('{') {
                out.push_str(&rest[..i]);
                let close = rest[i..].find('}')? + i;
                let field = &rest[i + 1..close];
                let idx = if field.is_empty() {
                    auto += 1;
                    auto - 1
                } else {
                    field.parse().ok()?
                };
                out.push_str(&args.get(idx)?.as_text()?);
                rest = &rest[close + 1..];
            }
            out.push_str(rest);
            V::Str(out)
        }
        ("format", V::Str(f)) => V::Str(percent_format(&f, &V::List(args.to_vec()))?),
        ("first", V::List(l)) => l.first()?.clone(),
        ("last", V::List(l)) => l.last()?.clone(),
        ("first", V::Str(s)) => V::Str(s.chars().next()?.to_string()),
        ("last", V::Str(s)) => V::Str(s.chars().last()?.to_string()),
        ("list", V::Str(s)) => V::List(s.chars().map(|c| V::Str(c.to_string())).collect()),
        ("list", V::List(l)) => V::List(l),
        ("capitalize", V::Str(s)) => {
            let mut c = s.chars();
            V::Str(match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + &c.as_str().to_lowercase(),
                None => String::new(),
            })
        }
        _ => return None,
    })
}

/// `'%s…' % args` with `%s` / `%%` only.
fn percent_format(f: &str, arg: &V) -> Option<String> {
    let args: Vec<V> = match arg {
        V::List(l) => l.clone(),
        v => vec![v.clone()],
    };
    let mut out = String::new();
    let mut it = args.iter();
    let mut chars = f.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '%' => out.push('%'),
            's' | 'd' => out.push_str(&it.next()?.as_text()?),
            _ => return None,
        }
    }
    Some(out)
}

/// Python slicing of a string by characters.
fn py_slice(s: &str, start: Option<i64>, stop: Option<i64>, step: Option<i64>) -> Option<String> {
    let c: Vec<char> = s.chars().collect();
    let n = c.len() as i64;
    let step = step.unwrap_or(1);
    if step == 0 {
        return None;
    }
    let norm = |x: i64, lo: i64, hi: i64| -> i64 {
        let x = if x < 0 { x + n } else { x };
        x.clamp(lo, hi)
    };
    let mut out = String::new();
    if step > 0 {
        let (a, b) = (
            norm(start.unwrap_or(0), 0, n),
            norm(stop.unwrap_or(n), 0, n),
        );
        let mut i = a;
        while i < b {
            out.push(c[i as usize]);
            i += step;
        }
    } else {
        let a = start.map_or(n - 1, |x| norm(x, -1, n - 1));
        let b = stop.map_or(-1, |x| norm(x, -1, n - 1));
        let mut i = a;
        while i > b {
            out.push(c[i as usize]);
            i += step;
        }
    }
    Some(out)
}

/// Decode one or more adjacent Jinja2 string literals (`'a' "b"`) as Jinja2 does: Python's
/// `unicode-escape` codec on the text between the quotes. `None` when `raw` is not just
/// literals or holds an escape this decoder does not know (the caller then keeps minijinja's).
pub fn python_literals(raw: &str) -> Option<String> {
    let mut out = String::new();
    let b = raw.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == b.len() {
            return Some(out);
        }
        let q = b[i];
        if q != b'\'' && q != b'"' {
            return None;
        }
        let start = i + 1;
        let mut j = start;
        while j < b.len() && b[j] != q {
            if b[j] == b'\\' {
                j += 1;
            }
            j += 1;
        }
        if j >= b.len() {
            return None;
        }
        out.push_str(&unicode_escape(raw.get(start..j)?)?);
        i = j + 1;
    }
}

/// Python's `unicode-escape` decoding of literal text.
fn unicode_escape(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let d = it.next()?;
        let hex = |it: &mut std::iter::Peekable<std::str::Chars<'_>>, n: usize| -> Option<u32> {
            let h: String = (0..n).map(|_| it.next()).collect::<Option<_>>()?;
            u32::from_str_radix(&h, 16).ok()
        };
        match d {
            '\n' => {}
            '\\' => out.push('\\'),
            '\'' => out.push('\''),
            '"' => out.push('"'),
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\x0b'),
            '0'..='7' => {
                let mut v = d.to_digit(8)?;
                for _ in 0..2 {
                    match it.peek().and_then(|c| c.to_digit(8)) {
                        Some(x) => {
                            v = v * 8 + x;
                            it.next();
                        }
                        None => break,
                    }
                }
                out.push(char::from_u32(v)?);
            }
            'x' => out.push(char::from_u32(hex(&mut it, 2)?)?),
            'u' => out.push(char::from_u32(hex(&mut it, 4)?)?),
            'U' => out.push(char::from_u32(hex(&mut it, 8)?)?),
            // \N{NAME} needs the Unicode name table: not folded (minijinja's value is used).
            'N' => return None,
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn risky(t: &str) -> bool {
        !analyse(t).unwrap().is_empty()
    }

    #[test]
    fn benign_chat_templates_pass() {
        for t in [
            "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token }}{% endfor %}",
            "{%- set ns = namespace(found=false) -%}{%- for m in messages -%}{%- if m.role == 'system' -%}{%- set ns.found = true -%}{%- endif -%}{%- endfor -%}{{ messages[0]['content'] | trim }}",
            "{% for m in messages %}{% if loop.index0 == 0 %}{{ bos_token }}{% endif %}{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}",
            "{{ messages | map(attribute='content') | join('\\n') }}{% for x in messages[1:] %}{{ x.content.strip() }}{% endfor %}",
            "{% for t in tools %}{{ t | tojson(indent=4) }}{% endfor %}{{ raise_exception('bad') if false }}",
            "{%- set index = (messages|length - 1) - loop.index0 %}{{ messages[index]['content'] }}{% for k in m %}{{ m[k] }}{% endfor %}",
            "{% macro show(m, key) %}{{ m[key] }}{% endmacro %}{% set c = m.content.split('</think>')[-1].lstrip('\\n') %}{{ c }}{% for x in messages %}{% if loop.index > 3 %}{% break %}{% endif %}{% endfor %}",
        ] {
            assert_eq!(analyse(t).unwrap(), vec![], "{t}");
        }
    }

    #[test]
    fn dunder_access_is_caught_however_built() {
        for t in [
            "{{ x.__class__ }}",
            "{{ x|attr('\\x5f\\x5fcla'~'ss\\x5f\\x5f') }}",
            "{{ x|attr('__cla' + 'ss__') }}",
            "{{ x['__glo' ~ 'bals__'] }}",
            "{{ x[('_' * 2) ~ 'class' ~ ('_' * 2)] }}",
            "{{ x|attr('__ssalc__'|reverse) }}",
            "{{ x|attr('__ssalc__'[::-1]) }}",
            "{{ x|attr('\\U0000005f\\U0000005fclass\\U0000005f\\U0000005f') }}",
            "{{ x|attr('\\137\\137class\\137\\137') }}",
            "{{ x|attr('__CLASS__'|lower) }}",
            "{{ x|attr(['__cla','ss__']|join) }}",
            "{{ x|attr('{}class{}'.format('__','__')) }}",
            "{{ x|attr('%sclass%s'|format('__','__')) }}",
            "{% set n = '__cla' %}{{ x|attr(n ~ 'ss__') }}",
            "{{ x|attr(messages[0].content) }}",
            "{{ x|map('attr', '__class__')|list }}",
            "{{ x|map(attribute='a.__class__')|list }}",
            "{{ x|selectattr('__class__') }}",
            "{{ x|attr(y ~ z) }}",
            "{{ x|attr(y) }}",
            "{% set n %}__class__{% endset %}{{ x[n] }}",
            "{{ lipsum.__globals__ }}",
            "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
            "{{ x.mro() }}",
            "{{ dict(__class__=1)|list|first }}",
            "{{ x['__cla' 'ss__'] }}",
        ] {
            assert!(risky(t), "{t}");
        }
    }

    #[test]
    fn unparseable_is_an_error() {
        assert!(analyse("{% for %}").is_err());
        assert!(analyse("{{ x|attr('\\x5') }}").is_err());
        // What transformers' jinja2 environment refuses too.
        for t in [
            "{% generation %}{{ x }}",
            "{% generation x %}{{ x }}{% endgeneration %}",
            "{{ x }}{% endgeneration %}",
            "{{ x.\\N{LOW LINE} }}",
        ] {
            assert!(analyse(t).is_err(), "{t}");
        }
    }

    #[test]
    fn generation_blocks_and_named_escapes_parse_and_are_walked() {
        for t in [
            "{% for m in messages %}{% generation %}{{ m['content'] }}{% endgeneration %}{% endfor %}",
            "{%- generation -%}{{ x }}{%- endgeneration -%}{%+ generation +%}{%generation%}{%endgeneration%}{%+ endgeneration +%}",
            "{{ '\\N{EM DASH}' ~ \"\\N{HORIZONTAL ELLIPSIS}\" }}{{ x['\\\\N{not an escape}'] }}",
            "{{ '{% generation %}' }}{# {% generation %} #}",
        ] {
            assert_eq!(analyse(t).unwrap(), vec![], "{t}");
        }
        for t in [
            "{% generation %}{{ x.__class__ }}{% endgeneration %}",
            "{%- generation -%}{% if true %}{{ x|attr('\\x5f\\x5fclass\\x5f\\x5f') }}{% endif %}{%- endgeneration -%}",
            // The name is unknown to mlsign (no Unicode name table): never trusted.
            "{{ x|attr('\\N{LOW LINE}\\N{LOW LINE}class\\N{LOW LINE}\\N{LOW LINE}') }}",
            "{{ x['\\N{LOW LINE}\\N{LOW LINE}globals\\N{LOW LINE}\\N{LOW LINE}'] }}",
            "{% set n = '\\N{LOW LINE}' * 2 ~ 'class' %}{{ x|attr(n) }}",
        ] {
            assert!(risky(t), "{t}");
        }
        // Offsets still point into the original template.
        let t = "{% generation %}{{ x.__class__ }}{% endgeneration %}";
        assert_eq!(
            analyse(t).unwrap()[0].at as usize,
            t.find("x.__class__").unwrap()
        );
    }
}
