//! A pickle stack machine that never executes anything: it replays one stream opcode by opcode
//! with CPython's stack, mark and memo semantics, resolves every global the way
//! `Unpickler.find_class` would see it, and records each call site, persistent id, nested payload
//! and structural anomaly in a [`Trace`]. Memory and time are bounded by [`Limits`].

use super::compat;
use super::input::{Input, PickleSource, Utf8Check};
use super::numbers;
use super::opcodes::{code, lookup, Arg};
use super::strings;

mod semantics;
pub use semantics::{Invocation, Invoked};

/// Bounds on one stream's simulation.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Opcodes executed per stream.
    pub max_ops: u64,
    /// Memory the replay may hold: every value, container item, string, stack and memo entry
    /// and what the trace records is charged against it before it is allocated. Past it the
    /// stream stops as unscannable ([`AnomalyKind::Resource`]).
    pub max_bytes: usize,
    /// Elements a `STACK_GLOBAL` string / literal keeps (longer strings become opaque).
    pub max_literal: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_ops: 50_000_000,
            max_bytes: VM_BUDGET,
            max_literal: 4096,
        }
    }
}

/// Default [`Limits::max_bytes`]: with the payload held in memory (at most
/// `max_in_memory_bytes`), peak memory stays well under 256 MiB (docs/scan.md).
pub const VM_BUDGET: usize = 128 << 20;

/// A global as `find_class` receives it (after the Python-2 mapping when protocol < 3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalUse {
    pub module: String,
    pub name: String,
    /// The names as written in the stream when the Python-2 mapping changed them.
    pub original: Option<(String, String)>,
    pub offset: u64,
    pub opcode: &'static str,
    /// Protocol in force when it was resolved (dotted names traverse attributes from 4 on).
    pub proto: u8,
}

impl GlobalUse {
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.module, self.name)
    }
}

/// The callable of a call site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Index into [`Trace::globals`].
    Global(usize),
    /// A method of an instance created from that global (`append`, `__setitem__`, `__setstate__`).
    MethodOf(usize, &'static str),
    /// Anything else: the result of another call, a persistent object, an unknown value.
    NotAGlobal(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallSite {
    pub offset: u64,
    pub opcode: &'static str,
    pub target: Target,
    /// The call's result was discarded right away (payload-then-POP pattern).
    pub discarded: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnomalyKind {
    NonLiteralStackGlobal,
    MemoMiss,
    Ext,
    BuildOnGlobal,
    MisplacedProto,
    OutOfBand,
    /// A loader disagreement mlsign cannot settle (an argument across a FRAME end).
    Limit,
    /// More anomalies than are listed (each kind is listed at least once).
    Dropped,
    /// One of mlsign's own resource limits (memory budget, opcode count): not the loader's.
    Resource,
    /// joblib < 0.10 wrapper that loads a companion file next to the pickle.
    JoblibCompanion,
    /// joblib < 0.10 wrapper whose companion file is not a plain sibling name.
    JoblibCompanionPath,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    pub offset: u64,
    pub detail: String,
}

/// One element of a persistent id tuple, as far as it is literal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PidItem {
    Str(String),
    Int(i64),
    Global(String, String),
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersistentId {
    pub offset: u64,
    /// Items of the tuple; a non-tuple id is one `Other` item.
    pub items: Vec<PidItem>,
    pub is_tuple: bool,
}

/// The value a stream left on the stack at STOP, where a caller needs it (legacy torch layout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopValue {
    Int(i64),
    /// A LONG too wide for i64: little-endian two's-complement bytes.
    BigInt(Vec<u8>),
    Strings(Vec<String>),
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Reached STOP.
    Complete,
    /// Stopped at `offset` with `message` (truncation, bad opcode, stack underflow, …).
    Broken { offset: u64, message: String },
}

/// Everything one stream did.
#[derive(Clone, Debug)]
pub struct Trace {
    pub globals: Vec<GlobalUse>,
    pub calls: Vec<CallSite>,
    pub anomalies: Vec<Anomaly>,
    pub pids: Vec<PersistentId>,
    /// (offset of the opcode, bytes) of byte strings that look like nested payloads (held, and
    /// charged to the budget, until the caller scans them).
    pub nested: Vec<(u64, Vec<u8>)>,
    pub outcome: Outcome,
    /// Bytes consumed (position after STOP, or where it broke).
    pub end: usize,
    pub top: Option<TopValue>,
    pub ops: u64,
    pub max_proto: u8,
    /// The replay stopped at one of mlsign's own limits (opcodes, values, memo, a joblib array
    /// it cannot size), not at an error of the loader: the loader may go on from there.
    pub unfollowable: bool,
    /// A STACK_GLOBAL ran on operands that may be text at run time but are not literal names:
    /// the loader's `find_class` may import something.
    pub computed_global: bool,
    /// Callables and classes that reached allowlisted functions which call or instantiate them
    /// (see [`crate::scan::presets::arg_kinds`]).
    pub invocations: Vec<Invocation>,
    /// The frame STOP sits in runs past it, over bytes that are there: a file-reading Python
    /// unpickler (`pickle._Unpickler` reads whole frames) resumes after the frame, not at `end`.
    pub frame_past_stop: bool,
    /// Offset of the first joblib `NumpyArrayWrapper` array this stream read (skipped or
    /// unpickled as joblib does): from there on a plain `pickle.load` reads other opcodes.
    pub joblib_first_array: Option<u64>,
    /// Bytes charged for what this trace holds (globals, calls, anomalies, ids…).
    pub mem_bytes: usize,
    /// The replay stopped at its memory budget.
    pub out_of_memory: bool,
}

type Id = u32;

/// The unpickler memo: dense keys (what picklers write) in a vector, anything else in a map.
/// Keys beyond u64 (legal for the pure-Python unpickler's dict memo) by their decimal digits.
#[derive(Default)]
struct Memo {
    dense: Vec<Id>,
    sparse: std::collections::HashMap<u64, Id>,
    big: std::collections::HashMap<String, Id>,
    /// Distinct keys stored (MEMOIZE uses it as the next key, like `len(memo)`).
    count: usize,
}

const EMPTY: Id = Id::MAX;

impl Memo {
    fn get_big(&self, k: &numbers::PyInt) -> Option<Id> {
        match k.to_u64() {
            Some(k) => self.get(k),
            None if k.negative => None,
            None => self.big.get(&k.digits).copied(),
        }
    }
    fn insert_big(&mut self, k: &numbers::PyInt, v: Id, mem: &mut Mem) -> Result<(), Fail> {
        match k.to_u64() {
            Some(k) => self.insert(k, v, mem)?,
            None => {
                if let Some(e) = self.big.get_mut(&k.digits) {
                    *e = v;
                } else {
                    mem.charge(k.digits.len() + ALLOC + MAP_ENTRY)?;
                    self.big.insert(k.digits.clone(), v);
                    self.count += 1;
                }
            }
        }
        Ok(())
    }
    fn get(&self, k: u64) -> Option<Id> {
        match self.dense.get(k as usize) {
            Some(&v) if v != EMPTY => Some(v),
            _ => self.sparse.get(&k).copied(),
        }
    }
    fn insert(&mut self, k: u64, v: Id, mem: &mut Mem) -> Result<(), Fail> {
        let dense_ok = k < (1 << 26) && (k as usize) <= self.dense.len() + 4096;
        if dense_ok {
            let k = k as usize;
            if k >= self.dense.len() {
                let grow = k + 1 - self.dense.len();
                mem.reserve(&mut self.dense, grow)?;
                self.dense.resize(k + 1, EMPTY);
            }
            let was = self.dense[k] != EMPTY || self.sparse.remove(&(k as u64)).is_some();
            self.dense[k] = v;
            if !was {
                self.count += 1;
            }
        } else {
            let in_dense = self.dense.get(k as usize).is_some_and(|x| *x != EMPTY);
            if in_dense {
                self.dense[k as usize] = v;
            } else if let Some(e) = self.sparse.get_mut(&k) {
                *e = v;
            } else {
                mem.charge(MAP_ENTRY)?;
                self.sparse.insert(k, v);
                self.count += 1;
            }
        }
        Ok(())
    }
}

/// What one hash-map entry costs, with the table's spare capacity and control bytes.
const MAP_ENTRY: usize = 48;

/// A value under construction, as opcodes build it; [`Vm::push_node`] stores it compactly.
#[derive(Clone, Debug)]
enum Val {
    None,
    Bool(bool),
    Int(i64),
    BigInt(Vec<u8>),
    Float,
    Str(String),
    /// Text longer than the literal limit, or not valid as text.
    OpaqueStr,
    Bytes,
    Tuple(Vec<Id>),
    List(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Set,
    Global(usize),
    /// Result of calling / instantiating `origin` (index into globals) with `args`.
    Object {
        origin: Option<usize>,
        args: Option<Id>,
    },
    Persistent,
    Unknown,
}

/// A stored value: 16 bytes, payloads in side arenas (`NO` = empty / absent), so that floods
/// of small opcodes (`]`, `}`, `(`) cost a slot each and nothing more.
#[derive(Clone, Copy, Debug)]
enum Slot {
    None,
    Bool(bool),
    Int(i64),
    BigInt(u32),
    Float,
    Str(u32),
    OpaqueStr,
    Bytes,
    Tuple(u32),
    List(u32),
    Dict(u32),
    Set,
    Global(u32),
    Object { origin: u32, args: u32 },
    Persistent,
    Unknown,
}

/// "No arena entry" in a [`Slot`] (an empty container, an absent origin or args).
const NO: u32 = u32::MAX;

/// A stored value as the VM reads it.
#[derive(Clone, Copy, Debug)]
enum Node<'a> {
    None,
    Bool(bool),
    Int(i64),
    BigInt(&'a [u8]),
    Float,
    Str(&'a str),
    OpaqueStr,
    Bytes,
    Tuple(&'a [Id]),
    List(&'a [Id]),
    Dict(&'a [(Id, Id)]),
    Set,
    Global(usize),
    Object {
        origin: Option<usize>,
        args: Option<Id>,
    },
    Persistent,
    Unknown,
}

/// Ids from here on are integers held in the id itself (no slot): `IMM + (i + IMM_BIAS)`.
const IMM: Id = 1 << 31;
const IMM_BIAS: i64 = 1 << 30;

/// What reporting one recorded global, anomaly or persistent id costs later (its finding, its
/// entry in the per-global summary): charged with it, so the report fits the budget too.
const REPORT: usize = 384;

/// Heap bookkeeping an allocation costs beyond its payload (allocator header, rounding).
const ALLOC: usize = 16;

/// Memory one replay holds, charged before it is allocated (see [`Limits::max_bytes`]).
#[derive(Default)]
struct Mem {
    used: usize,
    max: usize,
    /// Part of `used` that the returned [`Trace`] keeps.
    trace: usize,
    hit: bool,
}

impl Mem {
    fn charge(&mut self, n: usize) -> Result<(), Fail> {
        match self.used.checked_add(n) {
            Some(u) if u <= self.max => {
                self.used = u;
                Ok(())
            }
            _ => {
                self.hit = true;
                Err(Fail(format!(
                    "memory budget exceeded: the replay would hold more than {} bytes",
                    self.max
                )))
            }
        }
    }
    /// Room for a short-lived allocation of `n` bytes, without charging it.
    fn check(&mut self, n: usize) -> Result<(), Fail> {
        self.charge(n)?;
        self.used -= n;
        Ok(())
    }
    fn charge_trace(&mut self, n: usize) -> Result<(), Fail> {
        self.charge(n)?;
        self.trace = self.trace.saturating_add(n);
        Ok(())
    }
    /// Room for `extra` more elements in `v`, charged by the capacity it grows to (doubling,
    /// as `Vec` does, but reserved exactly so the charge is what is allocated).
    fn reserve<T>(&mut self, v: &mut Vec<T>, extra: usize) -> Result<(), Fail> {
        let need = v
            .len()
            .checked_add(extra)
            .ok_or_else(|| Fail("memory budget exceeded".into()))?;
        if need <= v.capacity() {
            return Ok(());
        }
        let cap = need.max(v.capacity().saturating_mul(2)).max(4);
        self.charge((cap - v.capacity()).saturating_mul(std::mem::size_of::<T>().max(1)))?;
        v.reserve_exact(cap - v.len());
        Ok(())
    }
    fn reserve_trace<T>(&mut self, v: &mut Vec<T>, extra: usize) -> Result<(), Fail> {
        let before = self.used;
        self.reserve(v, extra)?;
        self.trace = self.trace.saturating_add(self.used - before);
        Ok(())
    }
}

/// Anomalies kept per stream; past it only the first of each kind is kept (the rest counted).
const MAX_ANOMALIES: usize = 4096;

struct Reader<'i, 'a> {
    inp: &'i mut Input<'a>,
    /// Absolute position of the stream's first byte in `inp` (positions below are relative).
    origin: usize,
    pos: usize,
    /// End of the current FRAME (may lie past the data).
    frame_end: usize,
    /// An argument ran past the end of its FRAME (see [`Reader::line`]).
    line_crossed_frame: bool,
    /// A last line without newline is read as the pure-Python unpickler (joblib's) reads it;
    /// false for the C unpickler alone (plain `pickle.load`), which raises there.
    eof_line: bool,
    /// A text argument was longer than the replay's memory budget lets it hold.
    too_long: bool,
}

#[derive(Debug)]
struct Fail(String);

impl Reader<'_, '_> {
    fn abs(&self) -> usize {
        self.origin + self.pos
    }
    /// Whether a byte exists at relative position `rel`.
    fn has(&mut self, rel: usize) -> bool {
        self.inp.has(self.origin + rel)
    }
    fn crossed(&mut self) -> Fail {
        self.line_crossed_frame = true;
        Fail(format!(
            "argument runs past the end of its FRAME at offset {} (loaders disagree on what it says)",
            self.frame_end
        ))
    }
    /// `n` bytes the replay reads as a value (callers keep `n` small: longer arguments are
    /// streamed past with [`Reader::skip`]).
    fn take(&mut self, n: usize) -> Result<&[u8], Fail> {
        let abs = self.abs();
        // See `line`: CPython 3.11's C loader on a file object reads an argument that runs
        // past the FRAME's end afresh from the file, dropping the frame's tail.
        if self.pos < self.frame_end && n > self.frame_end - self.pos {
            let to_end = self.frame_end - self.pos;
            if self.inp.fill(abs, to_end) == to_end {
                return Err(self.crossed());
            }
        }
        let have = self.inp.fill(abs, n);
        if have < n {
            return Err(Fail(format!(
                "pickle data was truncated (needs {n} bytes, {have} left)"
            )));
        }
        self.pos += n;
        Ok(self.inp.get(abs, n))
    }
    /// Stream past an `n`-byte argument, showing its bytes to `sink`; the same errors as
    /// [`Reader::take`], without holding the bytes.
    fn skip(&mut self, n: usize, sink: &mut dyn FnMut(&[u8])) -> Result<(), Fail> {
        let abs = self.abs();
        let got = self.inp.advance(abs, n, sink);
        if self.pos < self.frame_end
            && n > self.frame_end - self.pos
            && got >= self.frame_end - self.pos
        {
            return Err(self.crossed());
        }
        if got < n {
            return Err(Fail(format!(
                "pickle data was truncated (needs {n} bytes, {got} left)"
            )));
        }
        self.pos += n;
        Ok(())
    }
    #[inline]
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], Fail> {
        // Fast path: the bytes are buffered and the argument does not cross a FRAME end.
        let abs = self.abs();
        if !(self.pos < self.frame_end && N > self.frame_end - self.pos) {
            if let Some(b) = self.inp.buffered(abs).get(..N) {
                let mut a = [0u8; N];
                a.copy_from_slice(b);
                self.pos += N;
                return Ok(a);
            }
        }
        let b = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }
    #[inline]
    fn byte(&mut self) -> Result<u8, Fail> {
        Ok(self.arr::<1>()?[0])
    }
    /// One text argument without its `\n`. At EOF without a newline the C unpickler raises,
    /// but the pure-Python one (`joblib.load`) takes `readline()[:-1]` (dropping the last byte,
    /// or giving `b''` at EOF) and acts on it: INST calls, GLOBAL imports the module of
    /// `c<module>\n` + EOF, PERSID calls `persistent_load`. The stream ends right after.
    /// `room`: memory the replay has left; a line must fit in it (a PERSID line longer than
    /// that was refused by its charge before lines were streamed; any other is now refused too).
    fn line(&mut self, room: usize) -> Result<&[u8], Fail> {
        let abs = self.abs();
        match self.inp.find_newline(abs, room) {
            Ok(None) => {
                self.too_long = true;
                Err(Fail(format!(
                    "memory budget exceeded: a text argument is longer than the {room} bytes the replay has left to hold it"
                )))
            }
            // A line that starts inside a FRAME and ends after it is read three ways: whole by
            // `pickle.loads`, refused by the pure-Python loader, and by the C loader on a file
            // without `peek` (the BytesIO torch gives it for `data.pkl`) from the frame's end
            // on, dropping the frame's tail. Picklers never write one; it is not followable.
            Ok(Some(i)) if self.pos < self.frame_end && self.pos + i >= self.frame_end => {
                self.line_crossed_frame = true;
                Err(Fail(format!(
                    "text argument runs past the end of its FRAME at offset {} (loaders disagree on what it says)",
                    self.frame_end
                )))
            }
            Ok(Some(i)) => {
                self.pos += i + 1;
                Ok(self.inp.get(abs, i))
            }
            Err(_) if !self.eof_line => Err(Fail(
                "pickle data was truncated (a text argument has no newline)".into(),
            )),
            Err(rest) => {
                self.pos += rest;
                Ok(self.inp.get(abs, rest.saturating_sub(1)))
            }
        }
    }
    fn u32(&mut self) -> Result<u32, Fail> {
        Ok(u32::from_le_bytes(self.arr::<4>()?))
    }
    fn u64(&mut self) -> Result<u64, Fail> {
        Ok(u64::from_le_bytes(self.arr::<8>()?))
    }
}

/// Whether bytes look like a payload worth a nested scan.
pub fn looks_nested(b: &[u8]) -> bool {
    if b.len() < 8 {
        return false;
    }
    (b[0] == 0x80 && b[1] <= 5)
        || b.starts_with(b"\x93NUMPY")
        || b.starts_with(b"PK\x03\x04")
        || b.starts_with(&[0x1f, 0x8b])
        || b.starts_with(b"BZh")
        || b.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
        || (b[0] == 0x78 && matches!(b[1], 0x01 | 0x5e | 0x9c | 0xda))
}

struct Vm<'i, 'a, 'p> {
    r: Reader<'i, 'a>,
    base: u64,
    limits: Limits,
    /// Values by id (ids from [`IMM`] on are integers, see [`Vm::node`]).
    slots: Vec<Slot>,
    strs: Vec<Box<str>>,
    seqs: Vec<Vec<Id>>,
    maps: Vec<Vec<(Id, Id)>>,
    bigs: Vec<Box<[u8]>>,
    mem: Mem,
    /// Kinds of anomaly recorded so far (bit per kind) and how many were dropped past the cap.
    anomaly_kinds: u32,
    anomalies_dropped: u64,
    stack: Vec<Id>,
    /// Stack heights at each MARK (u32: the stack is far smaller under the budget).
    marks: Vec<u32>,
    memo: Memo,
    proto: u8,
    t: &'p mut Trace,
    /// Index of the call whose result is on top of the stack (for the discarded-result check).
    last_call: Option<(usize, Id)>,
    /// Follow joblib array wrappers (joblib's unpickler) or not (plain pickle).
    joblib: bool,
    jb: semantics::State,
}

/// Simulate one pickle stream starting at `data[0]`. `base` is added to every reported offset.
/// joblib array wrappers are followed as `joblib.load` reads them.
pub fn run_stream(data: &[u8], base: u64, limits: Limits) -> Trace {
    run_stream_with(data, base, limits, true)
}

/// [`run_stream`], with `joblib` saying whether a `NumpyArrayWrapper` BUILD is followed by its
/// array bytes (joblib's pure-Python `NumpyUnpickler`) or not (C `pickle.load`, as numpy, torch
/// and joblib's own object arrays use it: it also raises on a last line without newline).
pub fn run_stream_with(data: &[u8], base: u64, limits: Limits, joblib: bool) -> Trace {
    run_input(&mut (&data).input(0), 0, base, limits, joblib)
}

/// [`run_stream_with`] on the stream starting at absolute position `origin` of `inp`; `base`
/// is the reported offset of that position. The input is left after what the stream read.
pub fn run_input(
    inp: &mut Input<'_>,
    origin: usize,
    base: u64,
    limits: Limits,
    joblib: bool,
) -> Trace {
    let mut t = Trace {
        globals: vec![],
        calls: vec![],
        anomalies: vec![],
        pids: vec![],
        nested: vec![],
        outcome: Outcome::Complete,
        end: 0,
        top: None,
        ops: 0,
        max_proto: 0,
        unfollowable: false,
        computed_global: false,
        invocations: vec![],
        frame_past_stop: false,
        joblib_first_array: None,
        mem_bytes: 0,
        out_of_memory: false,
    };
    let mut vm = Vm {
        r: Reader {
            inp,
            origin,
            pos: 0,
            frame_end: 0,
            line_crossed_frame: false,
            eof_line: joblib,
            too_long: false,
        },
        base,
        limits,
        slots: Vec::new(),
        strs: Vec::new(),
        seqs: Vec::new(),
        maps: Vec::new(),
        bigs: Vec::new(),
        mem: Mem {
            max: limits.max_bytes,
            ..Mem::default()
        },
        anomaly_kinds: 0,
        anomalies_dropped: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: Memo::default(),
        proto: 0,
        t: &mut t,
        last_call: None,
        joblib,
        jb: semantics::State::default(),
    };
    // Shared immutable scalars (see `Vm::push_node`).
    vm.slots.extend([
        Slot::None,
        Slot::Bool(false),
        Slot::Float,
        Slot::Bytes,
        Slot::OpaqueStr,
        Slot::Unknown,
        Slot::Persistent,
        Slot::Bool(true),
    ]);
    let res = vm.run();
    let end = vm.r.pos;
    let frame_past_stop = vm.r.frame_end > end && vm.r.has(end);
    let top = match &res {
        Ok(Some(id)) => Some(vm.top_value(*id)),
        _ => None,
    };
    let crossed = vm.r.line_crossed_frame;
    let (out_of_memory, budget, used) = (vm.mem.hit || vm.r.too_long, vm.mem.max, vm.mem.used);
    let (mem_bytes, dropped) = (vm.mem.trace, vm.anomalies_dropped);
    drop(vm);
    t.mem_bytes = mem_bytes;
    if dropped > 0 {
        t.anomalies.push(Anomaly {
            kind: AnomalyKind::Dropped,
            offset: base + end as u64,
            detail: format!(
                "{dropped} more anomalies of kinds already reported were not listed (more than {MAX_ANOMALIES} in one stream)"
            ),
        });
    }
    if out_of_memory {
        t.out_of_memory = true;
        t.unfollowable = true;
        t.anomalies.push(Anomaly {
            kind: AnomalyKind::Resource,
            offset: base + end as u64,
            detail: format!(
                "resource limit: replaying this stream would hold more than {budget} bytes \
                 ({used} in use when it stopped at offset {}); mlsign cannot follow it as far \
                 as a loader would, so it cannot be called safe",
                base + end as u64
            ),
        });
    }
    if crossed {
        t.unfollowable = true;
        t.anomalies.push(Anomaly {
            kind: AnomalyKind::Limit,
            offset: base + end as u64,
            detail: "an opcode argument crosses the end of its FRAME: the C unpickler reading \
                     a file object drops the frame's tail, pickle.loads does not and the \
                     pure-Python unpickler refuses, so loaders see different values"
                .into(),
        });
    }
    t.end = end;
    t.frame_past_stop = frame_past_stop;
    t.top = top;
    if let Err((off, Fail(msg))) = res {
        t.outcome = Outcome::Broken {
            offset: base + off as u64,
            message: msg,
        };
    }
    t
}

impl Vm<'_, '_, '_> {
    fn push_node(&mut self, n: Val) -> Result<Id, Fail> {
        // Immutable scalars share preallocated slots and integers live in the id itself: only
        // strings, containers, globals and call results take arena space.
        let slot = match n {
            Val::None => return Ok(0),
            Val::Bool(false) => return Ok(1),
            Val::Bool(true) => return Ok(7),
            Val::Float => return Ok(2),
            Val::Bytes => return Ok(3),
            Val::OpaqueStr => return Ok(4),
            Val::Unknown => return Ok(5),
            Val::Persistent => return Ok(6),
            Val::Int(i) if (-IMM_BIAS..IMM_BIAS - 1).contains(&i) => {
                return Ok(IMM + (i + IMM_BIAS) as Id)
            }
            Val::Int(i) => Slot::Int(i),
            Val::Set => Slot::Set,
            Val::Global(g) => Slot::Global(arena_index(g)?),
            Val::Object { origin, args } => Slot::Object {
                origin: match origin {
                    Some(g) => arena_index(g)?,
                    None => NO,
                },
                args: args.unwrap_or(NO),
            },
            Val::BigInt(b) => {
                self.mem.reserve(&mut self.bigs, 1)?;
                self.mem.charge(b.len() + ALLOC)?;
                self.bigs.push(b.into_boxed_slice());
                Slot::BigInt(arena_index(self.bigs.len() - 1)?)
            }
            Val::Str(st) => {
                self.mem.reserve(&mut self.strs, 1)?;
                self.mem.charge(st.len() + ALLOC)?;
                self.strs.push(st.into_boxed_str());
                Slot::Str(arena_index(self.strs.len() - 1)?)
            }
            Val::Tuple(v) if v.is_empty() => Slot::Tuple(NO),
            Val::List(v) if v.is_empty() => Slot::List(NO),
            Val::Dict(v) if v.is_empty() => Slot::Dict(NO),
            Val::Tuple(v) => Slot::Tuple(self.new_seq(v)?),
            Val::List(v) => Slot::List(self.new_seq(v)?),
            Val::Dict(v) => Slot::Dict(self.new_map(v)?),
        };
        self.mem.reserve(&mut self.slots, 1)?;
        let id = arena_index(self.slots.len())?;
        if id >= IMM {
            return Err(Fail("simulation limit: too many values".into()));
        }
        self.slots.push(slot);
        Ok(id)
    }
    fn new_seq(&mut self, mut v: Vec<Id>) -> Result<u32, Fail> {
        self.mem.reserve(&mut self.seqs, 1)?;
        self.mem
            .charge(v.len() * std::mem::size_of::<Id>() + ALLOC)?;
        v.shrink_to_fit();
        self.seqs.push(v);
        arena_index(self.seqs.len() - 1)
    }
    fn new_map(&mut self, mut v: Vec<(Id, Id)>) -> Result<u32, Fail> {
        self.mem.reserve(&mut self.maps, 1)?;
        self.mem
            .charge(v.len() * std::mem::size_of::<(Id, Id)>() + ALLOC)?;
        v.shrink_to_fit();
        self.maps.push(v);
        arena_index(self.maps.len() - 1)
    }
    /// The value of `id`, or `None` for an id that names nothing.
    fn node(&self, id: Id) -> Option<Node<'_>> {
        if id >= IMM {
            return (id != Id::MAX).then(|| Node::Int((id - IMM) as i64 - IMM_BIAS));
        }
        let seq = |s: u32| -> &[Id] {
            if s == NO {
                &[]
            } else {
                self.seqs.get(s as usize).map_or(&[][..], Vec::as_slice)
            }
        };
        Some(match *self.slots.get(id as usize)? {
            Slot::None => Node::None,
            Slot::Bool(b) => Node::Bool(b),
            Slot::Int(i) => Node::Int(i),
            Slot::BigInt(b) => Node::BigInt(self.bigs.get(b as usize)?),
            Slot::Float => Node::Float,
            Slot::Str(s) => Node::Str(self.strs.get(s as usize)?),
            Slot::OpaqueStr => Node::OpaqueStr,
            Slot::Bytes => Node::Bytes,
            Slot::Tuple(s) => Node::Tuple(seq(s)),
            Slot::List(s) => Node::List(seq(s)),
            Slot::Dict(m) => Node::Dict(if m == NO {
                &[]
            } else {
                self.maps.get(m as usize)?
            }),
            Slot::Set => Node::Set,
            Slot::Global(g) => Node::Global(g as usize),
            Slot::Object { origin, args } => Node::Object {
                origin: (origin != NO).then_some(origin as usize),
                args: (args != NO).then_some(args),
            },
            Slot::Persistent => Node::Persistent,
            Slot::Unknown => Node::Unknown,
        })
    }
    fn push(&mut self, n: Val) -> Result<(), Fail> {
        let id = self.push_node(n)?;
        self.spush(id)
    }
    /// Push an existing value on the stack.
    fn spush(&mut self, id: Id) -> Result<(), Fail> {
        self.mem.reserve(&mut self.stack, 1)?;
        self.stack.push(id);
        Ok(())
    }
    /// Record an anomaly (charged to the trace; past [`MAX_ANOMALIES`] only new kinds).
    fn anomaly(&mut self, kind: AnomalyKind, offset: u64, detail: String) -> Result<(), Fail> {
        let bit = 1u32 << (kind as u32);
        if self.t.anomalies.len() >= MAX_ANOMALIES && self.anomaly_kinds & bit != 0 {
            self.anomalies_dropped += 1;
            return Ok(());
        }
        self.anomaly_kinds |= bit;
        self.mem.reserve_trace(&mut self.t.anomalies, 1)?;
        self.mem.charge_trace(2 * detail.len() + ALLOC + REPORT)?;
        self.t.anomalies.push(Anomaly {
            kind,
            offset,
            detail,
        });
        Ok(())
    }
    fn record_call(&mut self, c: CallSite) -> Result<usize, Fail> {
        self.mem.reserve_trace(&mut self.t.calls, 1)?;
        if let Target::NotAGlobal(s) = &c.target {
            self.mem.charge_trace(s.len() + ALLOC)?;
        }
        self.t.calls.push(c);
        Ok(self.t.calls.len() - 1)
    }
    fn floor(&self) -> usize {
        self.marks.last().map_or(0, |&m| m as usize)
    }
    fn pop(&mut self) -> Result<Id, Fail> {
        if self.stack.len() <= self.floor() {
            return Err(Fail(
                "stack underflow (value expected, found MARK or nothing)".into(),
            ));
        }
        Ok(self.stack.pop().unwrap_or(0))
    }
    fn top(&self) -> Result<Id, Fail> {
        if self.stack.len() <= self.floor() {
            return Err(Fail("stack underflow (value expected)".into()));
        }
        Ok(*self.stack.last().unwrap_or(&0))
    }
    fn pop_mark(&mut self) -> Result<Vec<Id>, Fail> {
        let m = self
            .marks
            .pop()
            .ok_or_else(|| Fail("could not find MARK".into()))?;
        let m = m as usize;
        // The items are copied out: room for them now (what keeps them is charged there).
        self.mem
            .check(self.stack.len().saturating_sub(m) * std::mem::size_of::<Id>())?;
        Ok(self.stack.split_off(m))
    }
    fn off(&self, op_pos: usize) -> u64 {
        self.base + op_pos as u64
    }
    fn text(&self, s: String) -> Val {
        if s.len() > self.limits.max_literal {
            Val::OpaqueStr
        } else {
            Val::Str(s)
        }
    }
    /// Memory the replay has left.
    fn room(&self) -> usize {
        self.mem.max.saturating_sub(self.mem.used)
    }

    /// Stream past an `n`-byte string argument. Bytes that look like a nested payload are
    /// kept (charged to the trace) for the caller to scan; `utf8` checks the text as CPython
    /// decodes it. Errors come in the order the whole-buffer reading raised them: the
    /// argument's own (truncation, frame), then the budget.
    fn blob(&mut self, op_pos: usize, n: usize, utf8: Option<&mut Utf8Check>) -> Result<(), Fail> {
        let abs = self.r.abs();
        let head = self.r.inp.fill(abs, 8.min(n));
        let nested = n >= 8 && head == 8 && looks_nested(self.r.inp.get(abs, 8));
        let mut kept: Vec<u8> = vec![];
        let mut over = false;
        let mem = &mut self.mem;
        let mut dummy = Utf8Check::default();
        let check = utf8.is_some();
        let u = utf8.unwrap_or(&mut dummy);
        if nested {
            // Charged before it is held (the whole payload, at once).
            match mem.charge_trace(n.saturating_add(ALLOC)) {
                Ok(()) => kept.reserve_exact(n),
                Err(_) => over = true,
            }
        }
        self.r.skip(n, &mut |b: &[u8]| {
            if check {
                u.feed(b);
            }
            if nested && !over {
                kept.extend_from_slice(b);
            }
        })?;
        if over {
            return Err(Fail(format!(
                "memory budget exceeded: the replay would hold more than {} bytes",
                self.mem.max
            )));
        }
        if nested {
            self.mem.reserve_trace(&mut self.t.nested, 1)?;
            self.t.nested.push((self.off(op_pos), kept));
        }
        Ok(())
    }

    fn resolve(
        &mut self,
        module: String,
        name: String,
        op_pos: usize,
        opcode: &'static str,
    ) -> Result<usize, Fail> {
        let mut original = None;
        let (mut m, mut n) = (module, name);
        if self.proto < 3 {
            if let Some((_, (nm, nn))) = compat::NAME_MAPPING
                .iter()
                .find(|((a, b), _)| *a == m && *b == n)
            {
                original = Some((m.clone(), n.clone()));
                m = nm.to_string();
                n = nn.to_string();
            } else if let Some((_, nm)) = compat::IMPORT_MAPPING.iter().find(|(a, _)| *a == m) {
                original = Some((m.clone(), n.clone()));
                m = nm.to_string();
            }
        }
        self.mem.reserve_trace(&mut self.t.globals, 1)?;
        let heap = m.len()
            + n.len()
            + original
                .as_ref()
                .map_or(0, |(a, b): &(String, String)| a.len() + b.len());
        self.mem.charge_trace(2 * heap + 4 * ALLOC + REPORT)?;
        self.t.globals.push(GlobalUse {
            module: m,
            name: n,
            original,
            offset: self.off(op_pos),
            opcode,
            proto: self.proto,
        });
        Ok(self.t.globals.len() - 1)
    }

    fn target_of(&self, id: Id, method: &'static str) -> Target {
        match self.node(id) {
            Some(Node::Global(g)) => Target::Global(g),
            Some(Node::Object {
                origin: Some(g), ..
            }) if !method.is_empty() => Target::MethodOf(g, method),
            Some(Node::Object {
                origin: Some(g), ..
            }) => {
                let gl = &self.t.globals[g];
                Target::NotAGlobal(format!("the result of calling {}.{}", gl.module, gl.name))
            }
            Some(Node::Object { origin: None, .. }) => {
                Target::NotAGlobal("the result of a call on a computed value".into())
            }
            Some(Node::Persistent) => Target::NotAGlobal("a persistent-load result".into()),
            Some(other) => Target::NotAGlobal(format!("a {} value", kind_name(other))),
            None => Target::NotAGlobal("an unknown value".into()),
        }
    }

    fn call(
        &mut self,
        op_pos: usize,
        opcode: &'static str,
        callee: Id,
        args: Option<Id>,
    ) -> Result<(), Fail> {
        let target = self.target_of(callee, "");
        let origin = match &target {
            Target::Global(g) => Some(*g),
            _ => None,
        };
        let ci = self.record_call(CallSite {
            offset: self.off(op_pos),
            opcode,
            target,
            discarded: false,
        })?;
        let id = self.push_node(Val::Object { origin, args })?;
        self.spush(id)?;
        self.last_call = Some((ci, id));
        self.after_call(op_pos, opcode, callee, args, id)
    }

    /// A method call on an existing value (APPEND on a non-list, BUILD's `__setstate__`, …).
    fn method(
        &mut self,
        op_pos: usize,
        opcode: &'static str,
        obj: Id,
        method: &'static str,
    ) -> Result<(), Fail> {
        match self.node(obj) {
            Some(Node::List(_) | Node::Dict(_) | Node::Set | Node::Unknown) => {}
            Some(Node::Global(g)) => {
                let gl = &self.t.globals[g];
                let detail = format!(
                    "{opcode} applied to the global {}.{} itself (mutates a module-level object)",
                    gl.module, gl.name
                );
                self.anomaly(AnomalyKind::BuildOnGlobal, self.off(op_pos), detail)?;
                self.record_call(CallSite {
                    offset: self.off(op_pos),
                    opcode,
                    target: Target::Global(g),
                    discarded: false,
                })?;
            }
            _ => {
                let target = self.target_of(obj, method);
                self.record_call(CallSite {
                    offset: self.off(op_pos),
                    opcode,
                    target,
                    discarded: false,
                })?;
            }
        }
        Ok(())
    }

    fn str_of(&self, id: Id) -> Option<&str> {
        match self.node(id)? {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }

    fn top_value(&self, id: Id) -> TopValue {
        match self.node(id) {
            Some(Node::Int(i)) => TopValue::Int(i),
            Some(Node::BigInt(b)) => TopValue::BigInt(b.to_vec()),
            Some(Node::List(items)) | Some(Node::Tuple(items)) => {
                let v: Option<Vec<String>> = items
                    .iter()
                    .map(|i| self.str_of(*i).map(str::to_string))
                    .collect();
                v.map(TopValue::Strings).unwrap_or(TopValue::Other)
            }
            _ => TopValue::Other,
        }
    }

    fn pid_item(&self, id: Id) -> PidItem {
        match self.node(id) {
            Some(Node::Str(s)) => PidItem::Str(s.to_string()),
            Some(Node::Int(i)) => PidItem::Int(i),
            Some(Node::Global(g)) => {
                let gl = &self.t.globals[g];
                PidItem::Global(gl.module.clone(), gl.name.clone())
            }
            _ => PidItem::Other,
        }
    }

    fn run(&mut self) -> Result<Option<Id>, (usize, Fail)> {
        let mut first = true;
        loop {
            let op_pos = self.r.pos;
            let r = self.step(op_pos, first);
            first = false;
            match r {
                Ok(true) => return Ok(self.stack.last().copied()),
                Ok(false) => {}
                Err(e) => return Err((op_pos, e)),
            }
        }
    }

    /// Execute one opcode; Ok(true) at STOP.
    fn step(&mut self, op_pos: usize, first: bool) -> Result<bool, Fail> {
        self.t.ops += 1;
        if self.t.ops > self.limits.max_ops {
            self.t.anomalies.push(Anomaly {
                kind: AnomalyKind::Resource,
                offset: self.off(op_pos),
                detail: format!(
                    "resource limit: more than {} opcodes in one stream; mlsign stops there, a loader would go on",
                    self.limits.max_ops
                ),
            });
            self.t.unfollowable = true;
            return Err(Fail("opcode limit reached".into()));
        }
        let byte = self
            .r
            .byte()
            .map_err(|_| Fail("pickle data was truncated (no STOP opcode)".into()))?;
        let op = lookup(byte).ok_or_else(|| Fail(format!("invalid opcode 0x{byte:02x}")))?;
        // The value on top before this opcode, to see a call result being thrown away.
        let pending = self.last_call.take();
        match op.code {
            code::PROTO => {
                let p = self.r.byte()?;
                if !first {
                    self.anomaly(
                        AnomalyKind::MisplacedProto,
                        self.off(op_pos),
                        format!("PROTO {p} not at the start of the stream"),
                    )?;
                }
                if p > 5 {
                    return Err(Fail(format!("unsupported pickle protocol: {p}")));
                }
                self.proto = p;
                self.t.max_proto = self.t.max_proto.max(p);
            }
            code::FRAME => {
                // Frames only group opcodes. The C loader wants the whole frame present, but
                // the pure-Python one reads a short frame and runs the opcodes in it, so a
                // FRAME longer than the data is no reason to stop.
                let n = self.r.u64()?;
                // The pure-Python loader reads the frame (or what is left of the data) at once.
                self.r.frame_end = usize::try_from(n)
                    .ok()
                    .and_then(|n| self.r.pos.checked_add(n))
                    .unwrap_or(usize::MAX);
            }
            code::STOP => {
                // CPython pops the result: STOP on an empty stack is an error.
                self.top()?;
                return Ok(true);
            }
            code::MARK => {
                self.mem.reserve(&mut self.marks, 1)?;
                let h = u32::try_from(self.stack.len())
                    .map_err(|_| Fail("simulation limit: stack too deep".into()))?;
                self.marks.push(h);
            }
            code::POP => {
                if self.stack.len() > self.floor() {
                    let id = self.stack.pop().unwrap_or(0);
                    if let Some((ci, cid)) = pending {
                        if cid == id {
                            self.t.calls[ci].discarded = true;
                        }
                    }
                } else {
                    // CPython: POP on an empty frame discards the MARK.
                    self.marks
                        .pop()
                        .ok_or_else(|| Fail("stack underflow on POP".into()))?;
                }
            }
            code::POP_MARK => {
                self.pop_mark()?;
            }
            code::DUP => {
                let t = self.top()?;
                self.spush(t)?;
            }
            code::NONE => self.push(Val::None)?,
            code::NEWTRUE => self.push(Val::Bool(true))?,
            code::NEWFALSE => self.push(Val::Bool(false))?,
            // Text numbers: values as CPython computes them. Text CPython refuses becomes an
            // unknown value rather than a stop, so the replay never ends before the loader does.
            code::INT => {
                let l = self.r.line(self.room())?;
                let n = match numbers::int_opcode(l) {
                    Some(numbers::IntValue::Bool(b)) => Val::Bool(b),
                    Some(numbers::IntValue::Int(v)) => int_node(&v),
                    None => Val::Unknown,
                };
                self.push(n)?;
            }
            code::LONG => {
                let l = self.r.line(self.room())?;
                let n = numbers::long_opcode(l)
                    .map(|v| int_node(&v))
                    .unwrap_or(Val::Unknown);
                self.push(n)?;
            }
            code::FLOAT => {
                self.r.line(self.room())?;
                self.push(Val::Float)?;
            }
            code::BINFLOAT => {
                self.r.arr::<8>()?;
                self.push(Val::Float)?;
            }
            code::BININT => {
                let b = self.r.arr::<4>()?;
                self.push(Val::Int(i32::from_le_bytes(b) as i64))?;
            }
            code::BININT1 => {
                let b = self.r.byte()?;
                self.push(Val::Int(b as i64))?;
            }
            code::BININT2 => {
                let b = self.r.arr::<2>()?;
                self.push(Val::Int(u16::from_le_bytes(b) as i64))?;
            }
            code::LONG1 | code::LONG4 => {
                let n = if op.code == code::LONG1 {
                    self.r.byte()? as usize
                } else {
                    let n = self.r.u32()? as i32;
                    if n < 0 {
                        return Err(Fail("LONG pickle has negative byte count".into()));
                    }
                    n as usize
                };
                if n > 64 {
                    self.r.skip(n, &mut |_| {})?;
                    self.push(Val::Unknown)?;
                    return Ok(false);
                }
                let b = self.r.take(n)?;
                let node = if n <= 8 {
                    let mut a = [0u8; 8];
                    a[..n].copy_from_slice(b);
                    if n > 0 && b[n - 1] & 0x80 != 0 {
                        for x in a.iter_mut().skip(n) {
                            *x = 0xff;
                        }
                    }
                    Val::Int(if n == 0 { 0 } else { i64::from_le_bytes(a) })
                } else if n <= 64 {
                    Val::BigInt(b.to_vec())
                } else {
                    Val::Unknown
                };
                self.push(node)?;
            }
            code::STRING => {
                let l = self.r.line(self.room())?;
                let b = strings::string_opcode(l).map_err(|e| Fail(e.to_string()))?;
                let node = match String::from_utf8(b) {
                    Ok(s) => self.text(s),
                    Err(_) => Val::OpaqueStr,
                };
                self.push(node)?;
            }
            code::BINSTRING | code::SHORT_BINSTRING => {
                let n = if op.code == code::SHORT_BINSTRING {
                    self.r.byte()? as usize
                } else {
                    let n = self.r.u32()? as i32;
                    if n < 0 {
                        return Err(Fail("BINSTRING pickle has negative byte count".into()));
                    }
                    n as usize
                };
                let node = if n <= self.limits.max_literal {
                    let b = self.r.take(n)?;
                    let node = match std::str::from_utf8(b) {
                        Ok(s) => Val::Str(s.to_string()),
                        Err(_) => Val::OpaqueStr,
                    };
                    // Read again as a nested payload (the window still holds it).
                    self.r.pos -= n;
                    node
                } else {
                    Val::OpaqueStr
                };
                self.blob(op_pos, n, None)?;
                self.push(node)?;
            }
            code::UNICODE => {
                let l = self.r.line(self.room())?;
                let n = match strings::raw_unicode_escape(l).map_err(|e| Fail(e.to_string()))? {
                    Some(s) => self.text(s),
                    // Lone surrogates: legal text, never a name that imports.
                    None => Val::OpaqueStr,
                };
                self.push(n)?;
            }
            code::BINUNICODE | code::SHORT_BINUNICODE | code::BINUNICODE8 => {
                let n = match op.arg {
                    Arg::Len1 => self.r.byte()? as u64,
                    Arg::Len4 => self.r.u32()? as u64,
                    _ => self.r.u64()?,
                };
                let n = usize::try_from(n).map_err(|_| Fail("string length overflows".into()))?;
                let node = if n > self.limits.max_literal {
                    // CPython decodes with surrogatepass; a long string is never a name.
                    let mut check = Utf8Check::default();
                    self.r.skip(n, &mut |b| check.feed(b))?;
                    if !check.ok() {
                        return Err(Fail("invalid UTF-8 in unicode string".into()));
                    }
                    Val::OpaqueStr
                } else {
                    let b = self.r.take(n)?;
                    match std::str::from_utf8(b) {
                        Ok(s) => Val::Str(s.to_string()),
                        // Lone surrogates (surrogatepass) are legal; never a valid name.
                        Err(_) if surrogatepass_ok(b) => Val::OpaqueStr,
                        Err(_) => return Err(Fail("invalid UTF-8 in unicode string".into())),
                    }
                };
                self.push(node)?;
            }
            code::BINBYTES | code::SHORT_BINBYTES | code::BINBYTES8 | code::BYTEARRAY8 => {
                let n = match op.arg {
                    Arg::Len1 => self.r.byte()? as u64,
                    Arg::Len4 => self.r.u32()? as u64,
                    _ => self.r.u64()?,
                };
                let n = usize::try_from(n).map_err(|_| Fail("bytes length overflows".into()))?;
                self.blob(op_pos, n, None)?;
                self.push(Val::Bytes)?;
            }
            code::NEXT_BUFFER => {
                self.anomaly(
                    AnomalyKind::OutOfBand,
                    self.off(op_pos),
                    "NEXT_BUFFER refers to out-of-band data the file does not carry".into(),
                )?;
                self.push(Val::Unknown)?;
            }
            code::READONLY_BUFFER => {
                self.top()?;
            }
            code::EMPTY_TUPLE => self.push(Val::Tuple(vec![]))?,
            code::TUPLE => {
                let items = self.pop_mark()?;
                self.push(Val::Tuple(items))?;
            }
            code::TUPLE1 | code::TUPLE2 | code::TUPLE3 => {
                let n = (op.code - code::TUPLE1 + 1) as usize;
                let mut items = vec![0; n];
                for i in (0..n).rev() {
                    items[i] = self.pop()?;
                }
                self.push(Val::Tuple(items))?;
            }
            code::EMPTY_LIST => self.push(Val::List(vec![]))?,
            code::LIST => {
                let items = self.pop_mark()?;
                self.push(Val::List(items))?;
            }
            code::EMPTY_DICT => self.push(Val::Dict(vec![]))?,
            code::DICT => {
                let items = self.pop_mark()?;
                if items.len() % 2 == 1 {
                    return Err(Fail("odd number of items for DICT".into()));
                }
                let pairs = items.chunks(2).map(|c| (c[0], c[1])).collect();
                self.push(Val::Dict(pairs))?;
            }
            code::EMPTY_SET => self.push(Val::Set)?,
            code::FROZENSET => {
                self.pop_mark()?;
                self.push(Val::Set)?;
            }
            code::APPEND => {
                let v = self.pop()?;
                let l = self.top()?;
                self.add_items(op_pos, "APPEND", l, &[v], "append")?;
            }
            code::APPENDS => {
                let items = self.pop_mark()?;
                let l = self.top()?;
                self.add_items(op_pos, "APPENDS", l, &items, "extend")?;
            }
            code::ADDITEMS => {
                self.pop_mark()?;
                let s = self.top()?;
                self.method(op_pos, "ADDITEMS", s, "add")?;
            }
            code::SETITEM => {
                let v = self.pop()?;
                let k = self.pop()?;
                let d = self.top()?;
                self.set_items(op_pos, "SETITEM", d, &[k, v])?;
            }
            code::SETITEMS => {
                let items = self.pop_mark()?;
                if items.len() % 2 == 1 {
                    // The pure-Python loader assigns the complete pairs before it fails.
                    if items.len() > 1 {
                        let d = self.top()?;
                        self.set_items(op_pos, "SETITEMS", d, &items[..items.len() - 1])?;
                    }
                    return Err(Fail("odd number of items for SETITEMS".into()));
                }
                let d = self.top()?;
                self.set_items(op_pos, "SETITEMS", d, &items)?;
            }
            code::GET | code::BINGET | code::LONG_BINGET => {
                let key = match op.code {
                    code::GET => memo_key_line(self.r.line(self.room())?)?,
                    code::BINGET => numbers::PyInt::from(self.r.byte()? as u64),
                    _ => numbers::PyInt::from(self.r.u32()? as u64),
                };
                match self.memo.get_big(&key) {
                    Some(id) => self.spush(id)?,
                    None => {
                        let idx = key.display();
                        self.anomaly(
                            AnomalyKind::MemoMiss,
                            self.off(op_pos),
                            format!(
                                "{} {idx} refers to a memo entry that was never stored",
                                op.name
                            ),
                        )?;
                        return Err(Fail(format!("memo key {idx} not found")));
                    }
                }
            }
            code::PUT | code::BINPUT | code::LONG_BINPUT | code::MEMOIZE => {
                let key = match op.code {
                    code::PUT => {
                        let k = memo_key_line(self.r.line(self.room())?)?;
                        if k.negative {
                            return Err(Fail("negative PUT argument".into()));
                        }
                        k
                    }
                    code::BINPUT => numbers::PyInt::from(self.r.byte()? as u64),
                    code::LONG_BINPUT => numbers::PyInt::from(self.r.u32()? as u64),
                    _ => numbers::PyInt::from(self.memo.count as u64),
                };
                let t = self.top()?;
                self.memo.insert_big(&key, t, &mut self.mem)?;
                // Memoizing keeps the call result on top: still "pending".
                self.last_call = pending;
            }
            code::GLOBAL | code::INST => {
                let m = self.r.line(self.room())?.to_vec();
                let n = self.r.line(self.room())?;
                let n = std::str::from_utf8(n)
                    .map_err(|_| Fail("invalid UTF-8 in global name".into()))
                    .map(str::to_string);
                let m = std::str::from_utf8(&m)
                    .map_err(|_| Fail("invalid UTF-8 in module name".into()))?
                    .to_string();
                let g = self.resolve(m, n?, op_pos, op.name)?;
                if op.code == code::GLOBAL {
                    self.push(Val::Global(g))?;
                } else {
                    let args = self.pop_mark()?;
                    let args = self.push_node(Val::Tuple(args))?;
                    let callee = self.push_node(Val::Global(g))?;
                    self.call(op_pos, "INST", callee, Some(args))?;
                }
            }
            code::STACK_GLOBAL => {
                let n = self.pop()?;
                let m = self.pop()?;
                match (
                    self.str_of(m).map(str::to_string),
                    self.str_of(n).map(str::to_string),
                ) {
                    (Some(m), Some(n)) => {
                        let g = self.resolve(m, n, op_pos, "STACK_GLOBAL")?;
                        self.push(Val::Global(g))?;
                    }
                    (ms, ns) => {
                        let desc = |s: Option<String>, id: Id, this: &Self| {
                            s.map(|s| format!("'{s}'")).unwrap_or_else(|| {
                                format!(
                                    "a {} value",
                                    kind_name(this.node(id).unwrap_or(Node::Unknown))
                                )
                            })
                        };
                        let detail = format!(
                            "STACK_GLOBAL operands are not literal strings: module {}, name {}",
                            desc(ms, m, self),
                            desc(ns, n, self)
                        );
                        self.anomaly(AnomalyKind::NonLiteralStackGlobal, self.off(op_pos), detail)?;
                        // CPython calls find_class only when both are str at run time.
                        let may_be_str = |id: Id| {
                            matches!(
                                self.node(id),
                                Some(
                                    Node::Str(_)
                                        | Node::OpaqueStr
                                        | Node::Unknown
                                        | Node::Object { .. }
                                        | Node::Persistent
                                )
                            )
                        };
                        if may_be_str(m) && may_be_str(n) {
                            self.t.computed_global = true;
                        }
                        self.push(Val::Unknown)?;
                    }
                }
            }
            code::EXT1 | code::EXT2 | code::EXT4 => {
                let n = match op.code {
                    code::EXT1 => self.r.byte()? as i64,
                    code::EXT2 => u16::from_le_bytes(self.r.arr::<2>()?) as i64,
                    _ => self.r.u32()? as i32 as i64,
                };
                self.anomaly(AnomalyKind::Ext, self.off(op_pos), format!("{} {n} loads a global from the copyreg extension registry, which the file does not name", op.name))?;
                self.push(Val::Unknown)?;
            }
            code::REDUCE => {
                let args = self.pop()?;
                let callee = self.pop()?;
                self.call(op_pos, "REDUCE", callee, Some(args))?;
            }
            code::NEWOBJ => {
                let args = self.pop()?;
                let cls = self.pop()?;
                self.call(op_pos, "NEWOBJ", cls, Some(args))?;
            }
            code::NEWOBJ_EX => {
                let _kwargs = self.pop()?;
                let args = self.pop()?;
                let cls = self.pop()?;
                self.call(op_pos, "NEWOBJ_EX", cls, Some(args))?;
            }
            code::OBJ => {
                let mut items = self.pop_mark()?;
                if items.is_empty() {
                    return Err(Fail("OBJ without a class".into()));
                }
                let cls = items.remove(0);
                let args = self.push_node(Val::Tuple(items))?;
                self.call(op_pos, "OBJ", cls, Some(args))?;
            }
            code::BUILD => {
                let state = self.pop()?;
                let obj = self.top()?;
                self.method(op_pos, "BUILD", obj, "__setstate__")?;
                // Losing track of joblib's inline array bytes is mlsign's limit, not joblib's.
                self.after_build(op_pos, obj, state)
                    .inspect_err(|_| self.t.unfollowable = true)?;
            }
            code::PERSID | code::BINPERSID => {
                let pid = if op.code == code::PERSID {
                    let l = self.r.line(self.room())?;
                    let s = std::str::from_utf8(l)
                        .map_err(|_| {
                            Fail("persistent IDs in protocol 0 must be ASCII strings".into())
                        })?
                        .to_string();
                    PersistentId {
                        offset: self.off(op_pos),
                        items: vec![PidItem::Str(s)],
                        is_tuple: false,
                    }
                } else {
                    let id = self.pop()?;
                    match self.node(id) {
                        Some(Node::Tuple(items)) => PersistentId {
                            offset: self.off(op_pos),
                            items: items.iter().map(|i| self.pid_item(*i)).collect(),
                            is_tuple: true,
                        },
                        _ => PersistentId {
                            offset: self.off(op_pos),
                            items: vec![self.pid_item(id)],
                            is_tuple: false,
                        },
                    }
                };
                self.mem.reserve_trace(&mut self.t.pids, 1)?;
                let heap: usize = pid
                    .items
                    .iter()
                    .map(|i| {
                        std::mem::size_of::<PidItem>()
                            + match i {
                                PidItem::Str(s) => s.len() + ALLOC,
                                PidItem::Global(m, n) => m.len() + n.len() + 2 * ALLOC,
                                _ => 0,
                            }
                    })
                    .sum();
                self.mem.charge_trace(heap + ALLOC + REPORT)?;
                self.t.pids.push(pid);
                self.push(Val::Persistent)?;
            }
            _ => return Err(Fail(format!("opcode {} not handled", op.name))),
        }
        Ok(false)
    }

    fn add_items(
        &mut self,
        op_pos: usize,
        opcode: &'static str,
        l: Id,
        items: &[Id],
        method: &'static str,
    ) -> Result<(), Fail> {
        match self.slots.get(l as usize).copied() {
            Some(Slot::List(s)) if l < IMM => {
                if items.is_empty() {
                    return Ok(());
                }
                let s = if s == NO {
                    let s = self.new_seq(vec![])?;
                    self.slots[l as usize] = Slot::List(s);
                    s
                } else {
                    s
                };
                let v = &mut self.seqs[s as usize];
                self.mem.reserve(v, items.len())?;
                v.extend_from_slice(items);
                Ok(())
            }
            _ => {
                self.mark_mutated(l)?;
                self.method(op_pos, opcode, l, method)
            }
        }
    }

    fn set_items(
        &mut self,
        op_pos: usize,
        opcode: &'static str,
        d: Id,
        items: &[Id],
    ) -> Result<(), Fail> {
        match self.slots.get(d as usize).copied() {
            Some(Slot::Dict(m)) if d < IMM => {
                if items.len() < 2 {
                    return Ok(());
                }
                let m = if m == NO {
                    let m = self.new_map(vec![])?;
                    self.slots[d as usize] = Slot::Dict(m);
                    m
                } else {
                    m
                };
                let v = &mut self.maps[m as usize];
                self.mem.reserve(v, items.len() / 2)?;
                v.extend(items.chunks_exact(2).map(|c| (c[0], c[1])));
                Ok(())
            }
            _ => {
                self.mark_mutated(d)?;
                self.method(op_pos, opcode, d, "__setitem__")
            }
        }
    }

    fn mark_mutated(&mut self, id: Id) -> Result<(), Fail> {
        if !self.jb.mutated.contains(&id) {
            self.mem.charge(MAP_ENTRY)?;
            self.jb.mutated.insert(id);
        }
        Ok(())
    }
}

fn arena_index(i: usize) -> Result<u32, Fail> {
    u32::try_from(i)
        .ok()
        .filter(|&i| i < NO)
        .ok_or_else(|| Fail("simulation limit: too many values".into()))
}

/// An integer value: `Int` when it fits, else LONG1's bytes (up to 64 of them).
fn int_node(v: &numbers::PyInt) -> Val {
    match v.to_i64() {
        Some(i) => Val::Int(i),
        // More than 64 bytes (154 decimal digits) is never a value a caller reads.
        None if v.digits.len() > 160 => Val::Unknown,
        None => {
            let b = v.to_le_bytes();
            if b.len() <= 64 {
                Val::BigInt(b)
            } else {
                Val::Unknown
            }
        }
    }
}

/// A PUT/GET key as CPython reads it (`1_0`, ` +1 `, `-0` and `1\0junk` are all legal).
fn memo_key_line(l: &[u8]) -> Result<numbers::PyInt, Fail> {
    numbers::memo_key(l).ok_or_else(|| {
        Fail(format!(
            "memo key {:?} is not an integer",
            String::from_utf8_lossy(&l[..l.len().min(40)])
        ))
    })
}

/// CPython decodes BINUNICODE with `surrogatepass`: UTF-8 with encoded surrogates is accepted.
pub(crate) fn surrogatepass_ok(b: &[u8]) -> bool {
    let mut i = 0;
    while i < b.len() {
        match std::str::from_utf8(&b[i..]) {
            Ok(_) => return true,
            Err(e) => {
                i += e.valid_up_to();
                // ED A0..BF xx: an encoded surrogate.
                if b.len() >= i + 3
                    && b[i] == 0xed
                    && (0xa0..=0xbf).contains(&b[i + 1])
                    && (0x80..=0xbf).contains(&b[i + 2])
                {
                    i += 3;
                } else {
                    return false;
                }
            }
        }
    }
    true
}

fn kind_name(n: Node) -> &'static str {
    match n {
        Node::None => "None",
        Node::Bool(_) => "bool",
        Node::Int(_) | Node::BigInt(_) => "int",
        Node::Float => "float",
        Node::Str(_) | Node::OpaqueStr => "str",
        Node::Bytes => "bytes",
        Node::Tuple(_) => "tuple",
        Node::List(_) => "list",
        Node::Dict(_) => "dict",
        Node::Set => "set",
        Node::Global(_) => "global",
        Node::Object { .. } => "call-result",
        Node::Persistent => "persistent-load",
        Node::Unknown => "unknown/computed",
    }
}

/// numpy dtype string → item size (`f8`, `<i4`, `U5`, `b1`, `M8[ns]`).
pub fn dtype_itemsize(s: &str) -> Option<u64> {
    let s = s.trim_start_matches(['<', '>', '=', '|']);
    let mut chars = s.chars();
    let kind = chars.next()?;
    let rest: String = chars.take_while(|c| c.is_ascii_digit()).collect();
    let n: u64 = if rest.is_empty() {
        match kind {
            '?' => 1,
            'b' | 'B' => 1,
            'h' | 'H' | 'e' => 2,
            'i' | 'I' | 'f' => 4,
            'l' | 'L' | 'q' | 'Q' | 'd' | 'g' | 'G' => 8,
            _ => return None,
        }
    } else {
        rest.parse().ok()?
    };
    match kind {
        'U' => n.checked_mul(4),
        'O' => None,
        _ => Some(n),
    }
}
