//! What particular callables do with the values the VM hands them, where that decides how the
//! stream is read or whether an allowlisted function ends up calling something else.
//!
//! * joblib (`NumpyUnpickler.load_build`) reads an array right after the BUILD of a
//!   `NumpyArrayWrapper`: raw bytes for a plain dtype, or a nested pickle read by a fresh
//!   `pickle._Unpickler` when the dtype holds Python objects. Where those bytes end depends on the
//!   wrapper's attributes after BUILD (`__dict__.update`, last key wins) and on the dtype after
//!   its own BUILD (numpy's `arraydescr_setstate`), so both are replayed here. What mlsign cannot
//!   evaluate exactly stops the stream (fail closed) instead of guessing a length.
//! * Allowlisted functions that call or instantiate one of their arguments (invokers, see
//!   [`presets::arg_kinds`]) record what reaches those arguments, so the policy can demand an
//!   allowlisted callable there.

use super::{AnomalyKind, Fail, Id, Node, Trace, Vm};
use crate::scan::presets::{self, ArgKind, Gets};
use std::collections::{HashMap, HashSet};

/// A callable or class that reached an argument an allowlisted function calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    /// Offset of the call of the invoker.
    pub offset: u64,
    /// The invoker (index into [`Trace::globals`]).
    pub invoker: usize,
    /// Argument position.
    pub arg: usize,
    pub kind: ArgKind,
    pub value: Invoked,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invoked {
    /// A named global: it must be allowlisted (and is judged by the policy).
    Global(usize),
    /// Not a named global (an instance, a call result, a computed value): always rejected.
    NotAGlobal(String),
}

/// Per-stream bookkeeping.
#[derive(Default)]
pub(super) struct State {
    /// BUILD states applied to `numpy.dtype` objects, in order.
    dtype_states: HashMap<Id, Vec<Id>>,
    /// joblib wrapper instances and the attributes BUILD gave them so far.
    wrappers: HashMap<Id, Wrapper>,
    /// Objects whose items were set by SETITEM(S)/APPEND(S) after they were created.
    pub(super) mutated: HashSet<Id>,
}

/// What remembering one joblib wrapper costs (map entry, attributes vector).
const WRAPPER_BYTES: usize = 128;

/// Nesting of dtypes in fields that is followed before giving up.
const MAX_DTYPE_DEPTH: u32 = 16;

/// BUILD states remembered per dtype object.
const MAX_DTYPE_STATES: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq)]
enum WrapperKind {
    /// `NumpyArrayWrapper` (joblib ≥ 0.10): the array follows in the stream.
    Array,
    /// `NDArrayWrapper` / `ZNDArrayWrapper` (joblib < 0.10): the array is in a companion file,
    /// read with `numpy.load(allow_pickle=True)` (`unpickles`) or as raw zlib data.
    Companion { unpickles: bool },
}

struct Wrapper {
    kind: WrapperKind,
    /// Created some other way than `cls.__new__(cls)` (NEWOBJ, `copyreg._reconstructor(cls,
    /// object, None)`, `copyreg.__newobj__(cls)`): `__init__` ran with arguments mlsign does not
    /// model, so its attributes are unknown.
    opaque: bool,
    attrs: Vec<(String, Id)>,
}

fn wrapper_kind(module: &str, name: &str) -> Option<WrapperKind> {
    let joblib = matches!(
        module,
        "joblib.numpy_pickle"
            | "joblib.numpy_pickle_compat"
            | "sklearn.externals.joblib.numpy_pickle"
            | "sklearn.externals.joblib.numpy_pickle_compat"
    );
    match name {
        "NumpyArrayWrapper" if joblib && !module.ends_with("_compat") => Some(WrapperKind::Array),
        "NDArrayWrapper" if joblib => Some(WrapperKind::Companion { unpickles: true }),
        "ZNDArrayWrapper" if joblib => Some(WrapperKind::Companion { unpickles: false }),
        _ => None,
    }
}

/// A dtype as numpy holds it after construction and `__setstate__`.
#[derive(Clone, Debug)]
struct DType {
    itemsize: i64,
    flags: i64,
    /// VOID, STRING or UNICODE: `__setstate__` sets the item size.
    flexible: bool,
    datetime: bool,
    object_kind: bool,
    fields: Option<Id>,
}

/// The base type of a dtype string as numpy's `__reduce__` writes it (and the other spellings
/// of the same types): (item size, flags, flexible, datetime, builtin singleton).
fn parse_dtype(s: &str) -> Option<DType> {
    let s = s.strip_prefix(['<', '>', '=', '|']).unwrap_or(s);
    let base = |itemsize: i64, flags: i64, flexible: bool| DType {
        itemsize,
        flags,
        flexible,
        datetime: false,
        object_kind: false,
        fields: None,
    };
    let single = match s {
        "O" | "O8" => {
            return Some(DType {
                object_kind: true,
                ..base(8, 63, false)
            })
        }
        "?" | "b1" | "b" | "B" | "i1" | "u1" => Some(1),
        "h" | "H" | "e" | "i2" | "u2" | "f2" => Some(2),
        "i" | "I" | "f" | "i4" | "u4" | "f4" => Some(4),
        "l" | "L" | "q" | "Q" | "p" | "P" | "d" | "F" | "i8" | "u8" | "f8" | "c8" => Some(8),
        "g" | "D" | "f16" | "c16" => Some(16),
        "G" | "c32" => Some(32),
        _ => None,
    };
    if let Some(n) = single {
        return Some(base(n, 0, false));
    }
    let (kind, rest) = s.split_at(s.char_indices().nth(1).map_or(s.len(), |(i, _)| i));
    match kind {
        "M" | "m" => {
            let unit_ok = rest.is_empty()
                || rest == "8"
                || rest
                    .strip_prefix('8')
                    .and_then(|r| r.strip_prefix('['))
                    .and_then(|r| r.strip_suffix(']'))
                    .is_some_and(|u| !u.is_empty() && u.chars().all(|c| c.is_ascii_alphanumeric()));
            unit_ok.then(|| DType {
                datetime: true,
                ..base(8, 0, false)
            })
        }
        "S" | "a" | "U" | "V" => {
            let n: i64 = if rest.is_empty() {
                0
            } else if rest.bytes().all(|b| b.is_ascii_digit()) && rest.len() <= 12 {
                rest.parse().ok()?
            } else {
                return None;
            };
            let (n, flags) = if kind == "U" {
                (n.checked_mul(4)?, 8)
            } else {
                (n, 0)
            };
            Some(base(n, flags, true))
        }
        _ => None,
    }
}

impl Vm<'_, '_, '_> {
    fn global_name(&self, id: Id) -> Option<(usize, &str, &str)> {
        match self.node(id)? {
            Node::Global(g) => {
                let gl = &self.t.globals[g];
                Some((g, gl.module.as_str(), gl.name.as_str()))
            }
            _ => None,
        }
    }

    fn items_of(&self, id: Id) -> Option<&[Id]> {
        match self.node(id)? {
            Node::Tuple(v) => Some(v),
            _ => None,
        }
    }

    /// Literal int as CPython's `PyArg_ParseTuple("i")` / `int()` of a bool would see it.
    fn int_lit(&self, id: Id) -> Option<i64> {
        match self.node(id)? {
            Node::Int(i) => Some(i),
            Node::Bool(b) => Some(b as i64),
            _ => None,
        }
    }

    fn is_none(&self, id: Id) -> bool {
        matches!(self.node(id), Some(Node::None))
    }

    /// Called by the VM after every call it records (`id` is the result).
    pub(super) fn after_call(
        &mut self,
        op_pos: usize,
        opcode: &'static str,
        callee: Id,
        args: Option<Id>,
        id: Id,
    ) -> Result<(), Fail> {
        let Some((g, module, name)) = self.global_name(callee) else {
            return Ok(());
        };
        let (module, name) = (module.to_string(), name.to_string());
        let args: Vec<Id> = args
            .and_then(|a| self.items_of(a))
            .map(<[Id]>::to_vec)
            .unwrap_or_default();
        if self.joblib {
            if let Some(kind) = wrapper_kind(&module, &name) {
                let opaque = !matches!(opcode, "NEWOBJ" | "NEWOBJ_EX");
                self.mem.charge(WRAPPER_BYTES)?;
                self.jb.wrappers.insert(
                    id,
                    Wrapper {
                        kind,
                        opaque,
                        attrs: vec![],
                    },
                );
            } else if module == "copyreg" && (name == "_reconstructor" || name == "__newobj__") {
                // copyreg._reconstructor(cls, object, None) is `object.__new__(cls)`: how
                // protocols 0 and 1 write a plain instance. Any other base runs its __init__.
                let cls = args
                    .first()
                    .and_then(|c| self.global_name(*c))
                    .and_then(|(_, m, n)| wrapper_kind(m, n));
                if let Some(kind) = cls {
                    let plain = if name == "__newobj__" {
                        args.len() == 1
                    } else {
                        args.len() == 3
                            && self
                                .global_name(args[1])
                                .is_some_and(|(_, m, n)| m == "builtins" && n == "object")
                            && self.is_none(args[2])
                    };
                    self.mem.charge(WRAPPER_BYTES)?;
                    self.jb.wrappers.insert(
                        id,
                        Wrapper {
                            kind,
                            opaque: !plain,
                            attrs: vec![],
                        },
                    );
                }
            }
        }
        if presets::arg_kinds(&module, &name).is_some() {
            self.check_invoker(op_pos, g, &args, 0)?;
        }
        Ok(())
    }

    /// Record what reaches the arguments an allowlisted function calls or instantiates.
    fn check_invoker(
        &mut self,
        op_pos: usize,
        g: usize,
        args: &[Id],
        depth: u32,
    ) -> Result<(), Fail> {
        let gl = &self.t.globals[g];
        let Some(kinds) = presets::arg_kinds(&gl.module, &gl.name) else {
            return Ok(());
        };
        let offset = self.off(op_pos);
        for (i, kind) in kinds.iter().enumerate() {
            let Some(&v) = args.get(i) else { continue };
            let record = |this: &mut Self, value: Invoked| -> Result<(), Fail> {
                this.mem.reserve_trace(&mut this.t.invocations, 1)?;
                if let Invoked::NotAGlobal(s) = &value {
                    this.mem.charge_trace(s.len() + super::ALLOC)?;
                }
                this.t.invocations.push(Invocation {
                    offset,
                    invoker: g,
                    arg: i,
                    kind: *kind,
                    value,
                });
                Ok(())
            };
            match kind {
                ArgKind::Data => {}
                ArgKind::Callable(gets) => match self.node(v) {
                    Some(Node::Global(h)) => {
                        record(self, Invoked::Global(h))?;
                        // The callable is an invoker itself: check what it will be given.
                        let hg = &self.t.globals[h];
                        if presets::arg_kinds(&hg.module, &hg.name).is_some() {
                            let given: Option<Vec<Id>> = match gets {
                                Gets::Nothing => Some(vec![]),
                                Gets::Args(pos) => {
                                    Some(pos.iter().filter_map(|p| args.get(*p).copied()).collect())
                                }
                                Gets::Unpack(p) => args
                                    .get(*p)
                                    .and_then(|t| self.items_of(*t))
                                    .map(<[Id]>::to_vec),
                            };
                            match given {
                                Some(a) if depth < 8 => {
                                    self.check_invoker(op_pos, h, &a, depth + 1)?
                                }
                                _ => record(
                                    self,
                                    Invoked::NotAGlobal(
                                        "arguments mlsign cannot see (not a literal tuple, or nested too deep)".into(),
                                    ),
                                )?,
                            }
                        }
                    }
                    Some(n) if callable_value(&n) => {
                        record(self, Invoked::NotAGlobal(describe(self, v)))?;
                    }
                    _ => {}
                },
                ArgKind::Type => match self.node(v) {
                    // Judged by the allowlist as a global; recorded as proof it is a class.
                    Some(Node::Global(h)) => {
                        record(self, Invoked::Global(h))?;
                    }
                    Some(n) if callable_value(&n) => {
                        record(self, Invoked::NotAGlobal(describe(self, v)))?
                    }
                    _ => {}
                },
                ArgKind::CalledIfClass => {
                    if let Some(Node::Global(h)) = self.node(v) {
                        record(self, Invoked::Global(h))?;
                    }
                }
                ArgKind::CallableValues => match self.node(v) {
                    Some(Node::None) => {}
                    Some(Node::Dict(pairs)) => {
                        let vals: Vec<Id> = pairs.iter().map(|(_, x)| *x).collect();
                        for x in vals {
                            match self.node(x) {
                                Some(Node::Global(h)) => {
                                    record(self, Invoked::Global(h))?;
                                }
                                _ => record(self, Invoked::NotAGlobal(describe(self, x)))?,
                            }
                        }
                    }
                    Some(Node::Object {
                        origin: Some(o),
                        args: oargs,
                    }) if !self.jb.mutated.contains(&v)
                        && oargs.is_none_or(|a| self.items_of(a).is_some_and(<[Id]>::is_empty))
                        && {
                            let og = &self.t.globals[o];
                            matches!(
                                (og.module.as_str(), og.name.as_str()),
                                ("collections", "OrderedDict") | ("builtins", "dict")
                            )
                        } => {}
                    _ => record(
                        self,
                        Invoked::NotAGlobal(format!(
                            "{} filled with values mlsign cannot check",
                            describe(self, v)
                        )),
                    )?,
                },
            }
        }
        Ok(())
    }

    /// Called by the VM after every BUILD (`obj` is on top of the stack).
    pub(super) fn after_build(&mut self, op_pos: usize, obj: Id, state: Id) -> Result<(), Fail> {
        if !self.joblib {
            return Ok(());
        }
        if let Some(key) = self.dtype_key(obj) {
            self.mem
                .charge(if self.jb.dtype_states.contains_key(&key) {
                    std::mem::size_of::<Id>()
                } else {
                    super::MAP_ENTRY
                })?;
            let v = self.jb.dtype_states.entry(key).or_default();
            if v.len() >= MAX_DTYPE_STATES {
                return Err(Fail(format!(
                    "more than {MAX_DTYPE_STATES} BUILDs on one numpy dtype"
                )));
            }
            v.push(state);
            return Ok(());
        }
        let Some(mut w) = self.jb.wrappers.remove(&obj) else {
            return Ok(());
        };
        let before = w.attrs.len();
        let merged = self.merge_attrs(state, &mut w.attrs);
        // Each BUILD copies the state's names: charged, as a GET+BUILD loop repeats them.
        let added: usize = w.attrs[before..]
            .iter()
            .map(|(n, _)| n.len() + super::ALLOC + std::mem::size_of::<(String, Id)>())
            .sum();
        if let Err(e) = self.mem.charge(added) {
            self.jb.wrappers.insert(obj, w);
            return Err(e);
        }
        let kind = w.kind;
        let opaque = w.opaque;
        let attrs = w.attrs.clone();
        self.jb.wrappers.insert(obj, w);
        merged?;
        if opaque {
            return Err(Fail(
                "joblib array wrapper created by calling its class (its __init__ ran with arguments mlsign does not follow)".into(),
            ));
        }
        let get = |k: &str| attrs.iter().rev().find(|(n, _)| n == k).map(|(_, v)| *v);
        match kind {
            WrapperKind::Array => self.read_joblib_array(op_pos, &get)?,
            WrapperKind::Companion { unpickles } => {
                let how = if unpickles {
                    "with numpy.load(allow_pickle=True)"
                } else {
                    "as raw zlib array data"
                };
                let (escapes, detail) = match get("filename").map(|f| self.node(f)) {
                    Some(Some(Node::Str(f))) => {
                        let bare = !f.is_empty()
                            && f != "."
                            && f != ".."
                            && !f.contains(['/', '\\', '\0'])
                            && !f.starts_with('~');
                        let what = if bare {
                            format!("loads the companion file {f:?} next to this file {how}: scan that file too")
                        } else {
                            format!("names the companion file {f:?}, a path outside this file's directory, which it loads {how}")
                        };
                        (!bare, what)
                    }
                    _ => (true, format!("has no literal companion file name (it loads whatever file the value names {how})")),
                };
                self.anomaly(
                    if escapes {
                        AnomalyKind::JoblibCompanionPath
                    } else {
                        AnomalyKind::JoblibCompanion
                    },
                    self.off(op_pos),
                    format!("joblib (< 0.10) array wrapper {detail}"),
                )?;
            }
        }
        // joblib replaces the wrapper on the stack by the array it read.
        if let Some(top) = self.stack.last_mut() {
            *top = 5; // Node::Unknown
        }
        Ok(())
    }

    /// `__dict__.update(state)` (and the slot-state half of a 2-tuple), as `pickle` does for a
    /// class without `__setstate__`.
    fn merge_attrs(&self, state: Id, attrs: &mut Vec<(String, Id)>) -> Result<(), Fail> {
        let one = |d: Id, attrs: &mut Vec<(String, Id)>| -> Result<(), Fail> {
            match self.node(d) {
                Some(Node::None) => Ok(()),
                Some(Node::Dict(pairs)) => {
                    for (k, v) in pairs {
                        match self.node(*k) {
                            Some(Node::Str(s)) => attrs.push((s.to_string(), *v)),
                            // Keys that can never equal an attribute name joblib reads.
                            Some(
                                Node::Int(_)
                                | Node::BigInt(_)
                                | Node::Float
                                | Node::Bool(_)
                                | Node::None
                                | Node::Bytes
                                | Node::OpaqueStr
                                | Node::Tuple(_),
                            ) => {}
                            _ => {
                                return Err(Fail(
                                    "joblib array wrapper state has a computed attribute name".into(),
                                ))
                            }
                        }
                    }
                    Ok(())
                }
                _ => Err(Fail(
                    "joblib array wrapper state is not a literal dict (its attributes cannot be read)".into(),
                )),
            }
        };
        match self.node(state) {
            Some(Node::Tuple(items)) if items.len() == 2 => {
                one(items[0], attrs)?;
                one(items[1], attrs)
            }
            _ => one(state, attrs),
        }
    }

    /// joblib's `NumpyArrayWrapper.read_array`: skip the raw bytes, or unpickle the object array.
    fn read_joblib_array(
        &mut self,
        op_pos: usize,
        get: &dyn Fn(&str) -> Option<Id>,
    ) -> Result<(), Fail> {
        let at = self.off(op_pos);
        let fail = |m: String| Fail(format!("joblib NumpyArrayWrapper at offset {at}: {m}"));
        if self.t.joblib_first_array.is_none() {
            self.t.joblib_first_array = Some(self.off(self.r.pos));
        }
        let shape = get("shape").ok_or_else(|| fail("no shape attribute".into()))?;
        let dims: Vec<Id> = match self.node(shape) {
            Some(Node::Tuple(v) | Node::List(v)) => v.to_vec(),
            _ => return Err(fail("shape is not a literal tuple".into())),
        };
        // joblib multiplies int64 dimensions (numpy wraps on overflow; mlsign refuses).
        let mut count: i64 = 1;
        for d in dims {
            let d = self
                .int_lit(d)
                .ok_or_else(|| fail("a shape dimension is not a literal int".into()))?;
            count = count
                .checked_mul(d)
                .ok_or_else(|| fail("the element count overflows int64".into()))?;
        }
        if count < 0 {
            return Err(fail(format!("negative element count {count}")));
        }
        let dtype = get("dtype").ok_or_else(|| fail("no dtype attribute".into()))?;
        let dt = self.dtype_info(dtype, 0).map_err(|e| fail(e.to_string()))?;
        if self.r.pos < self.r.frame_end && self.r.has(self.r.pos) {
            // joblib reads the array from the file, past the rest of the current frame.
            return Err(fail(
                "the array is read from the file while the current pickle frame has bytes left (joblib never writes this)".into(),
            ));
        }
        if dt.flags & 1 != 0 {
            let start = self.r.pos;
            // The nested stream spends this stream's opcode and memory budgets.
            let mut limits = self.limits;
            limits.max_ops = limits.max_ops.saturating_sub(self.t.ops);
            limits.max_bytes = self.mem.max.saturating_sub(self.mem.used);
            let inner = super::run_input(
                &mut *self.r.inp,
                self.r.origin + start,
                self.base + start as u64,
                limits,
                false,
            );
            let broken = match &inner.outcome {
                super::Outcome::Broken { offset, message } => Some((*offset, message.clone())),
                super::Outcome::Complete => None,
            };
            let (past_stop, end) = (inner.frame_past_stop, inner.end);
            let (inner_bytes, inner_oom) = (inner.mem_bytes, inner.out_of_memory);
            self.merge_inner(inner);
            // What the nested trace keeps now belongs to this one's.
            self.mem.charge_trace(inner_bytes)?;
            self.t.out_of_memory |= inner_oom;
            if let Some((o, m)) = broken {
                return Err(fail(format!(
                    "its object array is a nested pickle (joblib unpickles it) that breaks at offset {o}: {m}"
                )));
            }
            if past_stop {
                // pickle._Unpickler (joblib 1.6) resumes after the frame, the C unpickler
                // (`pickle.load`, older joblib) right after STOP: the two readings differ.
                return Err(fail(
                    "its nested object-array pickle ends inside a frame that runs past its STOP (joblib versions disagree on where the outer stream resumes)".into(),
                ));
            }
            self.r.pos = start + end;
        } else {
            if dt.itemsize <= 0 {
                return Err(fail(format!(
                    "item size {} (joblib cannot read it)",
                    dt.itemsize
                )));
            }
            let align = match get("numpy_array_alignment_bytes") {
                None => false,
                Some(a) => match self.node(a) {
                    Some(Node::None) => false,
                    Some(Node::Object { .. } | Node::Unknown | Node::Persistent) | None => {
                        return Err(fail("numpy_array_alignment_bytes is computed".into()))
                    }
                    Some(_) => true,
                },
            };
            if align {
                let pad = self.r.byte()? as usize;
                self.r.skip(pad, &mut |_| {})?;
            }
            let n = count
                .checked_mul(dt.itemsize)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| fail("array size overflows".into()))?;
            self.r.skip(n, &mut |_| {})?;
        }
        Ok(())
    }

    /// Add a nested stream's trace to this one.
    fn merge_inner(&mut self, inner: Trace) {
        let g0 = self.t.globals.len();
        self.t.globals.extend(inner.globals);
        for mut c in inner.calls {
            c.target = match c.target {
                super::Target::Global(g) => super::Target::Global(g + g0),
                super::Target::MethodOf(g, m) => super::Target::MethodOf(g + g0, m),
                other => other,
            };
            self.t.calls.push(c);
        }
        for mut i in inner.invocations {
            i.invoker += g0;
            if let Invoked::Global(g) = &mut i.value {
                *g += g0;
            }
            self.t.invocations.push(i);
        }
        self.t.anomalies.extend(inner.anomalies);
        self.t.pids.extend(inner.pids);
        self.t.nested.extend(inner.nested);
        self.t.max_proto = self.t.max_proto.max(inner.max_proto);
        self.t.ops = self.t.ops.saturating_add(inner.ops);
        // What the nested stream's replay could not follow, the outer one cannot either.
        self.t.unfollowable |= inner.unfollowable;
        self.t.computed_global |= inner.computed_global;
    }

    /// The key BUILD states of a dtype object are filed under, if `obj` is `numpy.dtype(...)`.
    fn dtype_key(&self, obj: Id) -> Option<Id> {
        let Some(Node::Object {
            origin: Some(g), ..
        }) = self.node(obj)
        else {
            return None;
        };
        let gl = &self.t.globals[g];
        if !(gl.module == "numpy" && gl.name == "dtype") {
            return None;
        }
        Some(obj)
    }

    fn truthy(&self, id: Id) -> Option<bool> {
        match self.node(id)? {
            Node::None => Some(false),
            Node::Bool(b) => Some(b),
            Node::Int(i) => Some(i != 0),
            Node::Str(s) => Some(!s.is_empty()),
            _ => None,
        }
    }

    /// numpy's dtype object `id` after construction and every BUILD applied to it.
    fn dtype_info(&self, id: Id, depth: u32) -> Result<DType, DtypeError> {
        if depth > MAX_DTYPE_DEPTH {
            return Err(DtypeError::TooDeep);
        }
        let Some(key) = self.dtype_key(id) else {
            return Err(DtypeError::NotADtype(describe(self, id)));
        };
        let Some(Node::Object { args: Some(a), .. }) = self.node(id) else {
            return Err(DtypeError::NoArguments);
        };
        let items = self.items_of(a).ok_or(DtypeError::ArgumentsNotATuple)?;
        let s = items
            .first()
            .and_then(|s| self.str_of(*s))
            .ok_or(DtypeError::NotATypeString)?;
        let mut d = parse_dtype(s).ok_or_else(|| DtypeError::UnmodelledType(s.to_string()))?;
        let copy = match items.get(2) {
            None => false,
            Some(c) => self.truthy(*c).ok_or(DtypeError::CopyNotALiteral)?,
        };
        // Builtin dtypes without copy (numbers, bool, object) are shared singletons whose
        // __setstate__ does nothing (verified against numpy 2.4).
        if !copy && !d.flexible && !d.datetime {
            return Ok(d);
        }
        let states = self
            .jb
            .dtype_states
            .get(&key)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        for st in states {
            self.dtype_setstate(&mut d, *st, depth)?;
        }
        Ok(d)
    }

    /// numpy's `arraydescr_setstate`, for the parts that decide item size and object-ness.
    fn dtype_setstate(&self, d: &mut DType, state: Id, depth: u32) -> Result<(), DtypeError> {
        let items = self.items_of(state).ok_or(DtypeError::StateNotATuple)?;
        let int = |i: usize| -> Result<i64, DtypeError> {
            let v = items
                .get(i)
                .and_then(|x| self.int_lit(*x))
                .ok_or(DtypeError::StateFieldNotAnInt)?;
            i32::try_from(v)
                .map(i64::from)
                .map_err(|_| DtypeError::StateIntRange)
        };
        // (version, endian, subarray, names, fields, elsize, alignment, flags[, metadata])
        let (version, fields, names, elsize, flags, metadata) = match items.len() {
            9 => (
                int(0)?,
                items[4],
                Some(items[3]),
                int(5)?,
                int(7)?,
                Some(items[8]),
            ),
            8 => (int(0)?, items[4], Some(items[3]), int(5)?, int(7)?, None),
            7 => (int(0)?, items[4], Some(items[3]), int(5)?, 0, None),
            5 => (0, items[2], None, int(3)?, 0, None),
            n => return Err(DtypeError::StateLength(n)),
        };
        if !(0..=4).contains(&version) {
            return Err(DtypeError::StateVersion(version));
        }
        let has_fields = !self.is_none(fields);
        if version < 2 && has_fields {
            return Err(DtypeError::OldStateWithFields);
        }
        if has_fields {
            if !matches!(self.node(fields), Some(Node::Dict(_))) {
                return Err(DtypeError::FieldsNotADict);
            }
            match names.map(|n| self.node(n)) {
                Some(Some(Node::Tuple(_))) | None => {}
                _ => return Err(DtypeError::NamesNotATuple),
            }
            d.fields = Some(fields);
        } else if names.is_some_and(|n| !self.is_none(n)) {
            return Err(DtypeError::NamesWithoutFields);
        }
        let has_metadata = metadata.and_then(|m| self.items_of(m)).map(<[Id]>::len) == Some(2);
        if d.datetime && !has_metadata {
            return Err(DtypeError::DatetimeWithoutMetadata);
        }
        if d.flexible {
            d.itemsize = elsize;
        }
        d.flags = if (-128..0).contains(&flags) {
            flags + 128
        } else {
            flags
        };
        if version < 3 {
            d.flags = if self.find_object(d, depth)? { 63 } else { 0 };
        }
        Ok(())
    }

    /// numpy's `_descr_find_object`: any flag set, the object type, or a field whose dtype has a
    /// flag set (numpy counts any flag, not only the object one).
    fn find_object(&self, d: &DType, depth: u32) -> Result<bool, DtypeError> {
        if d.flags != 0 || d.object_kind {
            return Ok(true);
        }
        let Some(f) = d.fields else { return Ok(false) };
        let Some(Node::Dict(pairs)) = self.node(f) else {
            return Ok(false);
        };
        // Dict order: first position of a key, last value.
        let mut order: Vec<(Id, Id)> = vec![];
        for (k, v) in pairs {
            let key = self.node(*k);
            let same = |x: &Id| match (self.node(*x), key) {
                (Some(Node::Str(a)), Some(Node::Str(b))) => a == b,
                (Some(Node::Int(a)), Some(Node::Int(b))) => a == b,
                _ => false,
            };
            match key {
                Some(Node::Str(_) | Node::Int(_)) => {}
                _ => return Err(DtypeError::FieldNameNotALiteral),
            }
            match order.iter_mut().find(|(k2, _)| same(k2)) {
                Some(e) => e.1 = *v,
                None => order.push((*k, *v)),
            }
        }
        for (k, v) in order {
            let Some(t) = self.items_of(v) else {
                return Ok(false);
            };
            if t.len() < 2 || t.len() > 3 || self.int_lit(t[1]).is_none() {
                return Ok(false);
            }
            if t.len() == 3 {
                if let (Some(a), Some(b)) = (self.str_of(t[2]), self.str_of(k)) {
                    if a == b {
                        continue; // a title entry
                    }
                }
            }
            if self.dtype_info(t[0], depth + 1)?.flags != 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Values that can be called or instantiated at load time without being a named global.
fn callable_value(n: &Node) -> bool {
    matches!(n, Node::Object { .. } | Node::Unknown | Node::Persistent)
}

fn describe(vm: &Vm, id: Id) -> String {
    match vm.node(id) {
        Some(Node::Object {
            origin: Some(g), ..
        }) => {
            let gl = &vm.t.globals[g];
            format!("the result of calling {}.{}", gl.module, gl.name)
        }
        Some(Node::Global(g)) => {
            let gl = &vm.t.globals[g];
            format!("{}.{}", gl.module, gl.name)
        }
        Some(n) => format!("a {} value", super::kind_name(n)),
        None => "an unknown value".into(),
    }
}

/// Why a numpy dtype that joblib reads an array with cannot be followed (as numpy's
/// `arraydescr_setstate` would see it, or a form mlsign does not model).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtypeError {
    #[error("dtype nested too deep")]
    TooDeep,
    /// What the value is instead (see `describe`).
    #[error("dtype is {0}, not numpy.dtype(...)")]
    NotADtype(String),
    #[error("numpy.dtype called without arguments")]
    NoArguments,
    #[error("numpy.dtype arguments are not a tuple")]
    ArgumentsNotATuple,
    #[error("numpy.dtype is given something other than a type string")]
    NotATypeString,
    #[error("dtype string {0:?} is not one mlsign models")]
    UnmodelledType(String),
    #[error("the copy argument of numpy.dtype is not a literal")]
    CopyNotALiteral,
    #[error("dtype state is not a tuple")]
    StateNotATuple,
    #[error("dtype state field is not a literal int")]
    StateFieldNotAnInt,
    #[error("dtype state int out of C int range")]
    StateIntRange,
    #[error("dtype state of {0} items")]
    StateLength(usize),
    #[error("dtype state version {0}")]
    StateVersion(i64),
    #[error("dtype state of version < 2 with fields")]
    OldStateWithFields,
    #[error("dtype fields are not a literal dict")]
    FieldsNotADict,
    #[error("dtype names are not a tuple")]
    NamesNotATuple,
    #[error("dtype names without fields")]
    NamesWithoutFields,
    #[error("datetime dtype state without (metadata, c_metadata)")]
    DatetimeWithoutMetadata,
    #[error("dtype field name is not a literal")]
    FieldNameNotALiteral,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_strings() {
        let t = |s: &str| parse_dtype(s).map(|d| (d.itemsize, d.flags, d.flexible));
        assert_eq!(t("<i8"), Some((8, 0, false)));
        assert_eq!(t("O8"), Some((8, 63, false)));
        assert_eq!(t("U5"), Some((20, 8, true)));
        assert_eq!(t("V16"), Some((16, 0, true)));
        assert_eq!(t("|S3"), Some((3, 0, true)));
        assert_eq!(t("M8[ns]").map(|x| x.0), Some(8));
        assert_eq!(t("float64"), None);
        assert_eq!(t("i3"), None);
        assert_eq!(t("U99999999999999"), None);
    }
}
