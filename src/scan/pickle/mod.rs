//! Static pickle analysis: [`vm`] replays streams without executing anything; this module turns
//! what they did into findings under a [`Policy`], reads stacked streams to EOF and follows
//! nested payloads.

pub mod compat;
pub mod input;
pub mod modules;
pub mod numbers;
pub mod opcodes;
pub mod strings;
pub mod vm;

use super::finding::ScanFinding;
use super::policy::{Decision, Policy};
use super::presets::ArgKind;
use super::scanner::{Retained, Scanner};
pub use super::scanner::{VM_MIN, VM_TOTAL};
use crate::report::Severity;
use crate::scan::diags::Code;
pub use input::{with_window, PickleSource};
use std::collections::BTreeMap;
pub use vm::{Limits, Outcome, PersistentId, PidItem, TopValue, Trace};

/// Stacked streams read from one region before giving up.
pub const MAX_STREAMS: u32 = 100_000;

/// Replay limits for one more stream of `sc`'s file: [`vm::VM_BUDGET`] shrunk by what the file's
/// held payloads and live traces take (see [`Scanner::memory_left`]).
pub fn limits(sc: &Scanner) -> Limits {
    Limits {
        max_bytes: sc.memory_left(vm::VM_BUDGET),
        ..Limits::default()
    }
}

/// All streams of one pickle region.
pub struct PickleScan {
    pub findings: Vec<ScanFinding>,
    pub traces: Vec<Trace>,
    /// Bytes consumed by complete streams.
    pub end: usize,
    held: Retained,
}

impl PickleScan {
    pub fn pids(&self) -> impl Iterator<Item = &PersistentId> {
        self.traces.iter().flat_map(|t| t.pids.iter())
    }
}

/// Did this trace do anything before it stopped (beyond reading its first opcode)?
fn did_something(t: &Trace) -> bool {
    !t.globals.is_empty() || !t.calls.is_empty() || t.ops > 1
}

fn summarize(t: &Trace) -> String {
    let mut parts = vec![];
    if !t.globals.is_empty() {
        let names: Vec<String> = t.globals.iter().take(5).map(|g| g.qualified()).collect();
        parts.push(format!(
            "resolved {} global(s) ({})",
            t.globals.len(),
            names.join(", ")
        ));
    }
    if !t.calls.is_empty() {
        parts.push(format!("made {} call(s)", t.calls.len()));
    }
    if parts.is_empty() {
        parts.push(format!(
            "ran {} opcode(s) without globals or calls",
            t.ops.saturating_sub(1)
        ));
    }
    parts.join(" and ")
}

/// Scan consecutive pickle streams in `data` until EOF (or `max_streams`).
/// `base` is the offset of `data` within the member, for reported offsets.
pub fn scan_streams(
    sc: &Scanner,
    data: &[u8],
    base: u64,
    max_streams: Option<usize>,
) -> PickleScan {
    scan_source(sc, &data, base, max_streams)
}

/// [`scan_streams`] over any [`PickleSource`]: a file, a member or a decompressed payload is
/// read through a bounded window, so memory is what the replay holds, not the data's size.
pub fn scan_source(
    sc: &Scanner,
    src: &dyn PickleSource,
    base: u64,
    max_streams: Option<usize>,
) -> PickleScan {
    let mut out = PickleScan {
        findings: vec![],
        traces: vec![],
        end: 0,
        held: sc.retainer(),
    };
    let mut inp = src.input(0);
    let mut pos = 0usize;
    let mut idx = 0u32;
    while inp.has(pos) && max_streams.is_none_or(|m| (idx as usize) < m) {
        if idx >= MAX_STREAMS {
            out.findings.push(
                sc.stamp(
                    ScanFinding::new(
                        Code::Pkl021,
                        Severity::High,
                        format!("resource limit: more than {MAX_STREAMS} stacked pickle streams; a loader reading on would run the rest"),
                    )
                    .offset(base + pos as u64),
                ),
            );
            break;
        }
        let t = vm::run_input(&mut inp, pos, base + pos as u64, limits(sc), true);
        out.held.add(t.mem_bytes);
        let mut fs = trace_findings(&t, sc.policy);
        let resource = t
            .anomalies
            .iter()
            .any(|a| a.kind == vm::AnomalyKind::Resource);
        if let Outcome::Broken { offset, message } = &t.outcome {
            if resource {
                // Stopped at mlsign's own limit (PKL021, unscannable), not at a broken stream.
            } else if idx == 0 || did_something(&t) {
                fs.push(
                    ScanFinding::new(
                        Code::Pkl009,
                        Severity::High,
                        format!(
                            "pickle stream breaks at offset {offset}: {message}; a loader has already acted on everything before the break: it {}",
                            summarize(&t)
                        ),
                    )
                    .offset(*offset),
                );
            } else {
                // Whitespace is no opcode and no payload (numpy 1.0 wrote a newline after its
                // object-array pickles): worth a note, not a warning.
                let (left, blank) = src.input(pos).rest_all(pos, |b| b.is_ascii_whitespace());
                fs.push(
                    ScanFinding::new(
                        Code::Pkl012,
                        if blank {
                            Severity::Low
                        } else {
                            Severity::Medium
                        },
                        format!(
                            "{} byte(s) of {} after the last STOP",
                            left,
                            if blank {
                                "whitespace"
                            } else {
                                "non-pickle data"
                            }
                        ),
                    )
                    .offset(base + pos as u64),
                );
            }
        }
        if let Some(from) = t.joblib_first_array {
            // numpy.load, torch.load and pickle.load do not read joblib's arrays: they take
            // those bytes as opcodes. Report what that reading resolves and calls there.
            let plain = vm::run_input(
                &mut src.input(pos),
                pos,
                base + pos as u64,
                limits(sc),
                false,
            );
            for f in plain_reading_findings(&plain, from, sc.policy) {
                if !fs.iter().any(|x| x.code == f.code && x.offset == f.offset) {
                    fs.push(f);
                }
            }
        }
        nested_findings(sc, &t, &mut fs);
        for mut f in fs {
            f.stream = Some(idx);
            out.findings.push(sc.stamp(f));
        }
        let complete = t.outcome == Outcome::Complete;
        let consumed = t.end;
        out.traces.push(t);
        if !complete {
            break;
        }
        pos += consumed;
        out.end = pos;
        idx += 1;
    }
    if let Some(e) = inp.error.take() {
        out.findings.push(
            sc.stamp(
                ScanFinding::new(
                    Code::Scn002,
                    Severity::High,
                    format!(
                        "the pickle data cannot be read past offset {}: {e}",
                        base + pos as u64
                    ),
                )
                .offset(base + pos as u64),
            ),
        );
    }
    out
}

fn nested_findings(sc: &Scanner, t: &Trace, fs: &mut Vec<ScanFinding>) {
    for (off, bytes) in &t.nested {
        let off = *off;
        if sc.depth() >= sc.policy.max_depth {
            fs.push(
                ScanFinding::new(
                    Code::Scn017,
                    Severity::High,
                    format!(
                        "nested payload at offset {off} is deeper than the nesting limit ({})",
                        sc.policy.max_depth
                    ),
                )
                .offset(off),
            );
            continue;
        }
        if let Some((kind, inner)) = sc.embedded(&format!("bytes@{off}"), bytes) {
            let serious = inner.iter().any(|f| f.severity >= Severity::Medium);
            if serious {
                fs.push(
                    ScanFinding::new(
                        Code::Pkl013,
                        Severity::High,
                        format!("bytes at offset {off} hold a nested {kind} with findings of its own (a loader that unpickles them runs them)"),
                    )
                    .offset(off),
                );
            }
            fs.extend(inner);
        }
    }
}

/// Per-call findings (PKL008, PKL019) listed per stream before the rest are counted.
const MAX_CALL_FINDINGS: usize = 100;

/// Findings for one stream's trace under `policy` (without the broken-stream finding).
pub fn trace_findings(t: &Trace, policy: &Policy) -> Vec<ScanFinding> {
    let mut fs = vec![];
    // One finding per distinct global, first offset, with the call sites attributed to it.
    // (first global index, first call sites, number of call sites)
    let mut by_name: BTreeMap<(String, String), (usize, Vec<String>, usize)> = BTreeMap::new();
    for (i, g) in t.globals.iter().enumerate() {
        by_name
            .entry((g.module.clone(), g.name.clone()))
            .or_insert((i, vec![], 0));
    }
    // Findings per call site are listed up to a cap (a flood of calls is one finding's worth).
    let (mut computed, mut discarded) = (0usize, 0usize);
    for c in &t.calls {
        let g = match &c.target {
            vm::Target::Global(g) => *g,
            vm::Target::MethodOf(g, _) => *g,
            vm::Target::NotAGlobal(_) if computed >= MAX_CALL_FINDINGS => {
                computed += 1;
                continue;
            }
            vm::Target::NotAGlobal(what) => {
                computed += 1;
                fs.push(
                    ScanFinding::new(
                        Code::Pkl008,
                        Severity::High,
                        format!("{} at offset {} calls {what}, not a named global: the callable is computed at load time", c.opcode, c.offset),
                    )
                    .offset(c.offset),
                );
                continue;
            }
        };
        let gl = &t.globals[g];
        if let Some(e) = by_name.get_mut(&(gl.module.clone(), gl.name.clone())) {
            let how = match &c.target {
                vm::Target::MethodOf(_, m) => format!("{} ({m}) @{}", c.opcode, c.offset),
                _ => format!("{} @{}", c.opcode, c.offset),
            };
            e.2 += 1;
            if e.1.len() < 4 {
                e.1.push(how);
            }
        }
        if c.discarded && !matches!(policy.judge(&gl.module, &gl.name), Decision::Allowed) {
            discarded += 1;
            if discarded > MAX_CALL_FINDINGS {
                continue;
            }
            fs.push(
                ScanFinding::new(
                    Code::Pkl019,
                    Severity::Low,
                    format!("the result of calling {} is thrown away right after the call (payload-then-POP)", gl.qualified()),
                )
                .offset(c.offset)
                .global(gl.qualified()),
            );
        }
    }
    if computed > MAX_CALL_FINDINGS {
        fs.push(ScanFinding::new(
            Code::Pkl008,
            Severity::High,
            format!(
                "{} more calls on values that are not named globals (only the first {MAX_CALL_FINDINGS} are listed)",
                computed - MAX_CALL_FINDINGS
            ),
        ));
    }
    if discarded > MAX_CALL_FINDINGS {
        fs.push(ScanFinding::new(
            Code::Pkl019,
            Severity::Low,
            format!(
                "{} more call results thrown away right after the call (only the first {MAX_CALL_FINDINGS} are listed)",
                discarded - MAX_CALL_FINDINGS
            ),
        ));
    }
    // Globals whose first use proves they are classes (see `Policy::judge_as`).
    let mut first_use: BTreeMap<(&str, &str), bool> = BTreeMap::new();
    let mut uses: Vec<(u64, usize, bool)> = t
        .calls
        .iter()
        .filter_map(|c| match c.target {
            vm::Target::Global(g) => {
                Some((c.offset, g, matches!(c.opcode, "NEWOBJ" | "NEWOBJ_EX")))
            }
            _ => None,
        })
        .collect();
    uses.extend(t.invocations.iter().filter_map(|i| match i.value {
        vm::Invoked::Global(g) => Some((i.offset, g, i.kind == ArgKind::Type)),
        vm::Invoked::NotAGlobal(_) => None,
    }));
    uses.sort_by_key(|u| u.0);
    for (_, g, proves) in uses {
        let gl = &t.globals[g];
        first_use
            .entry((gl.module.as_str(), gl.name.as_str()))
            .or_insert(proves);
    }
    invocation_findings(t, policy, &mut fs);
    let mut ordered: Vec<_> = by_name.into_iter().collect();
    ordered.sort_by_key(|(_, (i, _, _))| *i);
    for ((module, name), (i, calls, ncalls)) in ordered {
        let g = &t.globals[i];
        let qual = format!("{module}.{name}");
        let mapped = g
            .original
            .as_ref()
            .map(|(m, n)| format!(" (written as {m}.{n}, mapped from Python 2)"))
            .unwrap_or_default();
        let called = if calls.is_empty() {
            " (imported, not called)".to_string()
        } else {
            let shown: Vec<_> = calls.iter().take(4).cloned().collect();
            format!(
                "; call sites: {}{}",
                shown.join(", "),
                if ncalls > 4 {
                    format!(" and {} more", ncalls - 4)
                } else {
                    String::new()
                }
            )
        };
        let known_class = first_use
            .get(&(module.as_str(), name.as_str()))
            .copied()
            .unwrap_or(false);
        let f = match policy.judge_as(&module, &name, known_class) {
            Decision::Allowed => continue,
            Decision::AllowedSuspicious => ScanFinding::new(
                Code::Pkl018,
                Severity::Info,
                format!("{qual}{mapped} is a custom class the policy allows{called}"),
            ),
            Decision::Suspicious => ScanFinding::new(
                Code::Pkl003,
                Severity::Medium,
                format!("{qual}{mapped} is a custom class outside the allowlist (allow it with a policy if expected){called}"),
            ),
            Decision::Unsafe { severity: Severity::Critical, why } => ScanFinding::new(
                Code::Pkl001,
                Severity::Critical,
                format!("{} {qual}{mapped}: {why}{called}", g.opcode),
            ),
            Decision::Unsafe { severity, why } if name.contains('.') => ScanFinding::new(
                Code::Pkl004,
                severity,
                format!("{} {qual}{mapped}: {why}{called}", g.opcode),
            ),
            Decision::Unsafe { severity, why } => ScanFinding::new(
                Code::Pkl002,
                severity,
                format!("{} {qual}{mapped}: {why}{called}", g.opcode),
            ),
        };
        fs.push(f.offset(g.offset).global(qual));
    }
    for a in &t.anomalies {
        let (code, sev) = match a.kind {
            vm::AnomalyKind::NonLiteralStackGlobal => (Code::Pkl005, Severity::High),
            vm::AnomalyKind::MemoMiss => (Code::Pkl006, Severity::High),
            vm::AnomalyKind::Ext => (Code::Pkl007, Severity::High),
            vm::AnomalyKind::BuildOnGlobal => (Code::Pkl011, Severity::High),
            vm::AnomalyKind::MisplacedProto => (Code::Pkl016, Severity::Low),
            vm::AnomalyKind::OutOfBand => (Code::Pkl017, Severity::Medium),
            vm::AnomalyKind::Limit => (Code::Pkl014, Severity::High),
            vm::AnomalyKind::Dropped => (Code::Pkl014, Severity::Info),
            vm::AnomalyKind::Resource => (Code::Pkl021, Severity::High),
            vm::AnomalyKind::JoblibCompanion => (Code::Pkl020, Severity::Low),
            vm::AnomalyKind::JoblibCompanionPath => (Code::Pkl020, Severity::High),
        };
        fs.push(ScanFinding::new(code, sev, a.detail.clone()).offset(a.offset));
    }
    fs
}

/// What a plain unpickler does with the bytes joblib reads as array data (from offset `from`
/// on). Raw array bytes misread as opcodes, and joblib's nested object-array pickles replayed
/// against the outer memo, routinely name junk globals (`NumpyArrayWrapper.dtype`) that only
/// fail to import; so that reading is judged by the denylist (critical) alone, and the other
/// globals it would call are listed in one low finding.
fn plain_reading_findings(plain: &Trace, from: u64, policy: &Policy) -> Vec<ScanFinding> {
    let mut out = vec![];
    let why = "where joblib reads array data, a plain pickle.load (numpy.load, torch.load, pickle.load) reads opcodes";
    let mut called: std::collections::BTreeSet<usize> = std::collections::BTreeSet::new();
    for c in plain.calls.iter().filter(|c| c.offset >= from) {
        if let vm::Target::Global(g) | vm::Target::MethodOf(g, _) = c.target {
            called.insert(g);
        }
    }
    let mut seen = std::collections::HashSet::new();
    let mut others = vec![];
    for (i, g) in plain.globals.iter().enumerate() {
        if g.offset < from || !seen.insert((g.module.as_str(), g.name.as_str())) {
            continue;
        }
        match policy.judge(&g.module, &g.name) {
            Decision::Allowed | Decision::AllowedSuspicious => {}
            Decision::Unsafe {
                severity: Severity::Critical,
                why: reason,
            } => out.push(
                ScanFinding::new(
                    Code::Pkl001,
                    Severity::Critical,
                    format!(
                        "{why}: there it resolves {} at offset {} ({reason})",
                        g.qualified(),
                        g.offset
                    ),
                )
                .offset(g.offset)
                .global(g.qualified()),
            ),
            _ if called.contains(&i) => others.push(g.qualified()),
            _ => {}
        }
    }
    if !others.is_empty() {
        let n = others.len();
        others.truncate(5);
        out.push(
            ScanFinding::new(
                Code::Pkl002,
                Severity::Low,
                format!(
                    "{why}: there it would import and call {n} global(s) outside the allowlist ({}); none is denylisted, and such names usually come from array data read as opcodes",
                    others.join(", ")
                ),
            )
            .offset(from),
        );
    }
    out
}

/// PKL008 for what reaches an argument that an allowlisted function calls or instantiates,
/// unless it is an allowlisted global.
fn invocation_findings(t: &Trace, policy: &Policy, fs: &mut Vec<ScanFinding>) {
    let mut seen = std::collections::HashSet::new();
    for inv in &t.invocations {
        let what = match &inv.value {
            // A class argument is checked by the function itself and judged as a global.
            vm::Invoked::Global(_) if inv.kind == ArgKind::Type => continue,
            vm::Invoked::Global(h) => {
                let gl = &t.globals[*h];
                if policy.judge(&gl.module, &gl.name) == Decision::Allowed {
                    continue;
                }
                format!("{} (not allowlisted)", gl.qualified())
            }
            vm::Invoked::NotAGlobal(s) => s.clone(),
        };
        let role = match inv.kind {
            ArgKind::Data => continue,
            ArgKind::Callable(_) => "calls it",
            ArgKind::Type => "instantiates it as a class",
            ArgKind::CalledIfClass => "calls it when it is a class",
            ArgKind::CallableValues => "keeps its values as hooks that are called later",
        };
        if !seen.insert((inv.offset, inv.arg, what.clone())) {
            continue;
        }
        let invoker = t.globals[inv.invoker].qualified();
        fs.push(
            ScanFinding::new(
                Code::Pkl008,
                Severity::High,
                format!(
                    "{what} reaches argument {} of {invoker} at offset {}, which {role}: only an allowlisted callable may go there",
                    inv.arg, inv.offset
                ),
            )
            .offset(inv.offset)
            .global(invoker),
        );
    }
}

/// Does `data` plausibly start a pickle stream (used for content sniffing)? CPython accepts
/// PROTO 0 to 5 anywhere, and protocol 0/1 streams need no PROTO at all.
pub fn looks_like_pickle(data: &[u8]) -> bool {
    match data {
        [0x80, p, ..] => *p <= 5,
        [b, ..] => opcodes::lookup(*b).is_some(),
        [] => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(data: &[u8]) -> Vec<&'static str> {
        let s = scan_streams(&crate::scan::scanner(&Policy::default()), data, 0, None);
        s.findings.iter().map(|f| f.code).collect()
    }

    #[test]
    fn proto0_os_system_is_critical_with_call_site() {
        let s = scan_streams(
            &crate::scan::scanner(&Policy::default()),
            b"cos\nsystem\n(S'id'\ntR.",
            0,
            None,
        );
        let f = &s.findings[0];
        assert_eq!(f.code, "PKL001");
        assert_eq!(f.global.as_deref(), Some("os.system"));
        assert_eq!(f.offset, Some(0));
        assert!(f.message.contains("REDUCE @"), "{}", f.message);
    }

    #[test]
    fn benign_protocol2_dict_is_clean() {
        // pickle.dumps({'a': [1, 2.0, None]}, protocol=2)
        let d =
            b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01]q\x02(K\x01G@\x00\x00\x00\x00\x00\x00\x00Nes.";
        assert!(codes(d).is_empty(), "{:?}", codes(d));
    }

    #[test]
    fn py2_names_are_mapped() {
        let s = scan_streams(
            &crate::scan::scanner(&Policy::default()),
            b"c__builtin__\nset\n(]tR.",
            0,
            None,
        );
        assert!(s.findings.is_empty(), "{:?}", s.findings);
        let s = scan_streams(
            &crate::scan::scanner(&Policy::default()),
            b"ccommands\ngetoutput\n(S'id'\ntR.",
            0,
            None,
        );
        assert_eq!(
            s.findings[0].global.as_deref(),
            Some("subprocess.getoutput")
        );
        // Protocol 3+: no mapping, __builtin__ is simply unknown.
        let s = scan_streams(
            &crate::scan::scanner(&Policy::default()),
            b"\x80\x03c__builtin__\nset\n)R.",
            0,
            None,
        );
        assert_eq!(s.findings[0].code, "PKL002");
    }

    #[test]
    fn memo_confusion_resolves_the_real_value() {
        // push 'os', push 'collections', POP, BINPUT 0 (memo = 'os'), 'system', STACK_GLOBAL via memo.
        let d = b"\x80\x04\x8c\x02os\x8c\x0bcollections0q\x00\x8c\x06system\x93q\x01h\x00\x8c\x06system\x93)R.";
        let s = scan_streams(&crate::scan::scanner(&Policy::default()), d, 0, None);
        assert!(
            s.findings
                .iter()
                .any(|f| f.global.as_deref() == Some("os.system")),
            "{:?}",
            s.findings
        );
    }

    #[test]
    fn escaped_strings_and_computed_operands() {
        let d = b"V\\u006f\\u0073\nVsystem\n\x93(S'id'\ntR.";
        let s = scan_streams(&crate::scan::scanner(&Policy::default()), d, 0, None);
        assert_eq!(s.findings[0].global.as_deref(), Some("os.system"));
        // Module name produced by a call: not literal.
        let d = b"\x80\x04cbuiltins\nstr\n\x8c\x02os\x85R\x8c\x06system\x93)R.";
        assert!(codes(d).contains(&"PKL005"));
        assert!(codes(d).contains(&"PKL008"));
    }

    #[test]
    fn broken_stream_keeps_what_ran() {
        let d = b"cos\nsystem\n(S'id'\ntR\xff";
        let c = codes(d);
        assert!(c.contains(&"PKL001") && c.contains(&"PKL009"), "{c:?}");
        let d = b"cos\nsystem\n(S'id'\ntR";
        assert!(codes(d).contains(&"PKL009"));
    }

    #[test]
    fn ext_memo_miss_dotted_build_on_global() {
        assert!(codes(b"\x80\x02\x82\x01)R.").contains(&"PKL007"));
        assert!(codes(b"\x80\x02h\x05.").contains(&"PKL006"));
        assert!(codes(b"\x80\x04\x8c\x08builtins\x8c\x08dict.get\x93.").contains(&"PKL004"));
        assert!(codes(b"\x80\x02cbuiltins\nset\n}b.").contains(&"PKL011"));
    }

    #[test]
    fn second_stream_is_scanned_and_junk_is_reported() {
        let c = codes(b"\x80\x02N.cos\nsystem\n(S'x'\ntR.");
        assert!(c.contains(&"PKL001"));
        let c = codes(b"\x80\x02N.\xff\xff");
        assert_eq!(c, vec!["PKL012"]);
        let s = scan_streams(
            &crate::scan::scanner(&Policy::default()),
            b"\x80\x02N.\n",
            0,
            None,
        );
        assert_eq!(s.findings[0].severity, Severity::Low);
    }

    fn g(m: &str, n: &str) -> Vec<u8> {
        format!("c{m}\n{n}\n").into_bytes()
    }
    fn u(s: &str) -> Vec<u8> {
        let mut v = vec![b'X'];
        v.extend((s.len() as u32).to_le_bytes());
        v.extend(s.as_bytes());
        v
    }
    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// NEWOBJ of a joblib NumpyArrayWrapper with `dtype` and shape (1,), then its BUILD.
    fn wrapper(dtype: &[u8]) -> Vec<u8> {
        cat(&[
            &g("joblib.numpy_pickle", "NumpyArrayWrapper"),
            b")\x81}(",
            &u("shape"),
            b"K\x01\x85",
            &u("dtype"),
            dtype,
            &u("order"),
            &u("C"),
            b"ub",
        ])
    }

    #[test]
    fn joblib_object_array_is_unpickled_and_scanned() {
        let o8 = cat(&[&g("numpy", "dtype"), &u("O8"), b"\x89\x88\x87R"]);
        let nested = cat(&[b"\x80\x02", &g("os", "system"), &u("id"), b"\x85R."]);
        let d = cat(&[b"\x80\x02", &wrapper(&o8), &nested, b"."]);
        let s = scan_streams(&crate::scan::scanner(&Policy::default()), &d, 0, None);
        assert!(
            s.findings
                .iter()
                .any(|f| f.code == "PKL001" && f.global.as_deref() == Some("os.system")),
            "{:?}",
            s.findings
        );
        assert_eq!(
            s.end,
            d.len(),
            "the outer stream resumes after the nested one"
        );
        // A plain dtype: 8 raw bytes skipped, then the outer STOP.
        let i8 = cat(&[&g("numpy", "dtype"), &u("i8"), b"\x89\x88\x87R"]);
        // The plain reading of those bytes (C `pickle.load`) raises at the last line without
        // newline before importing anything.
        for raw in [b"cos\nsyst", b"Xos\nsyst"] {
            let d = cat(&[b"\x80\x02", &wrapper(&i8), raw, b"."]);
            assert!(codes(&d).is_empty(), "{:?}", codes(&d));
        }
        // Unmodelled dtype spellings fail closed.
        let named = cat(&[&g("numpy", "dtype"), &u("float64"), b"\x89\x88\x87R"]);
        let d = cat(&[b"\x80\x02", &wrapper(&named), &[0u8; 8], b"."]);
        assert!(codes(&d).contains(&"PKL009"), "{:?}", codes(&d));
    }

    #[test]
    fn invokers_accept_only_allowlisted_callables() {
        let ctor = g("numpy.random._pickle", "__generator_ctor");
        let filetype = cat(&[&g("argparse", "FileType"), &u("w"), b"\x85R"]);
        // The instance of a suspicious class reaches the callable argument: PKL008.
        let d = cat(&[b"\x80\x02", &ctor, &u("victim"), &filetype, b"\x86R."]);
        assert!(codes(&d).contains(&"PKL008"), "{:?}", codes(&d));
        // numpy's own form: the ctor is __bit_generator_ctor, given a name.
        let bit = g("numpy.random._pickle", "__bit_generator_ctor");
        let d = cat(&[b"\x80\x02", &ctor, &u("PCG64"), &bit, b"\x86R."]);
        assert!(codes(&d).is_empty(), "{:?}", codes(&d));
        // ... and given a class it calls: the class must be allowlisted.
        let d = cat(&[
            b"\x80\x02",
            &ctor,
            &g("argparse", "FileType"),
            &bit,
            b"\x86R.",
        ]);
        assert!(codes(&d).contains(&"PKL008"), "{:?}", codes(&d));
        let d = cat(&[
            b"\x80\x02",
            &ctor,
            &g("numpy.random._pcg64", "PCG64"),
            &bit,
            b"\x86R.",
        ]);
        assert!(codes(&d).is_empty(), "{:?}", codes(&d));
        // defaultdict: list is fine, an instance is not.
        let dd = g("collections", "defaultdict");
        let d = cat(&[b"\x80\x02", &dd, &g("builtins", "list"), b"\x85R."]);
        assert!(codes(&d).is_empty(), "{:?}", codes(&d));
        let d = cat(&[b"\x80\x02", &dd, &filetype, b"\x85R."]);
        assert!(codes(&d).contains(&"PKL008"), "{:?}", codes(&d));
        // torch backward hooks: OrderedDict() is fine, a filled one is not.
        let rebuild = g("torch._utils", "_rebuild_parameter");
        let od = cat(&[&g("collections", "OrderedDict"), b")R"]);
        let d = cat(&[b"\x80\x02", &rebuild, b"(N\x89", &od, b"tR."]);
        assert!(codes(&d).is_empty(), "{:?}", codes(&d));
        let d = cat(&[
            b"\x80\x02",
            &rebuild,
            b"(N\x89",
            &od,
            b"K\x00",
            &filetype,
            b"stR.",
        ]);
        assert!(codes(&d).contains(&"PKL008"), "{:?}", codes(&d));
        // _rebuild_from_type_v2 checks the arguments it passes to an invoker it calls.
        let d = cat(&[
            b"\x80\x02",
            &g("torch._tensor", "_rebuild_from_type_v2"),
            b"(",
            &ctor,
            &g("torch", "Tensor"),
            &u("victim"),
            &filetype,
            b"\x86}tR.",
        ]);
        assert!(codes(&d).contains(&"PKL008"), "{:?}", codes(&d));
    }

    #[test]
    fn newobj_proves_a_class() {
        // scipy's lower-case sparse classes: suspicious when built by NEWOBJ ...
        let d = cat(&[
            b"\x80\x02",
            &g("scipy.sparse._csr", "csr_matrix"),
            b")\x81}b.",
        ]);
        assert_eq!(codes(&d), vec!["PKL003"]);
        // ... but not when first called as a function.
        let d = cat(&[
            b"\x80\x02",
            &g("scipy.sparse._csr", "csr_matrix"),
            b"q\x00)R0h\x00)\x81.",
        ]);
        let c = codes(&d);
        assert!(c.contains(&"PKL002") && !c.contains(&"PKL003"), "{c:?}");
    }

    /// Forms CPython accepts but picklers never write: the replay must go on where the loader
    /// does (each byte string below was run through pickle.loads / pickle._loads).
    #[test]
    fn text_arguments_are_read_as_cpython_reads_them() {
        let payload = b"cos\nsystem\n(S'id'\ntR.";
        for head in [
            &b"S'x'\np1_0\n0g1_0\n0"[..],
            b"S'x'\np +1 \n0g\t1\x0b\n0",
            b"S'x'\np-0\n0g0\n0",
            b"S'x'\np1\x00junk\n0g1\n0",
            b"V\\ud800\n0",
            b"V\\U0000dfff\n0",
            b"I 0x1_0\n0I010\n0L-0b1L\n0L123456789012345678901234567890\n0",
            b"\x80\x01",
            b"\x80\x00",
            b"\x95\xff\xff\x00\x00\x00\x00\x00\x00",
        ] {
            let mut d = head.to_vec();
            d.extend_from_slice(payload);
            let c = codes(&d);
            assert_eq!(c, vec!["PKL001"], "{:?}", String::from_utf8_lossy(&d));
        }
        // Big PUT/GET keys are legal for the pure-Python loader's dict memo.
        let big = b"S'os'\np99999999999999999999999\n0S'system'\np1\n0g99999999999999999999999\ng1\n\x93(S'id'\ntR.";
        assert_eq!(codes(big), vec!["PKL001"]);
        // Negative PUT and malformed keys stop both loaders.
        assert!(codes(b"Np-1\n.").contains(&"PKL009"));
        assert!(codes(b"Np1__0\n.").contains(&"PKL009"));
        assert!(codes(b"Np0x1\n.").contains(&"PKL009"));
    }

    #[test]
    fn last_line_without_newline_acts_like_joblib() {
        // pickle._Unpickler (joblib) takes readline()[:-1] at EOF and INST calls open.
        let t = vm::run_stream(b"(S'm'\nS'w'\ni__builtin__\nopenX", 0, Limits::default());
        assert_eq!(t.calls.len(), 1);
        assert_eq!(t.globals[0].qualified(), "builtins.open");
        assert!(matches!(t.outcome, Outcome::Broken { .. }));
        // The C unpickler (plain pickle.load) raises there before INST runs.
        let t = vm::run_stream_with(
            b"(S'm'\nS'w'\ni__builtin__\nopenX",
            0,
            Limits::default(),
            false,
        );
        assert!(t.calls.is_empty() && t.globals.is_empty());
        assert!(matches!(t.outcome, Outcome::Broken { .. }));
    }

    #[test]
    fn odd_setitems_assigns_complete_pairs_first() {
        // The pure-Python loader runs __setitem__ for the first pair before failing.
        let t = vm::run_stream(b"cos\nenviron\n(S'A'\nS'B'\nS'C'\nu.", 0, Limits::default());
        assert!(t
            .anomalies
            .iter()
            .any(|a| a.kind == vm::AnomalyKind::BuildOnGlobal));
    }

    #[test]
    fn text_line_across_a_frame_end_is_rejected() {
        // Found by the differential fuzzer: on a BytesIO the C loader reads `iltins` here.
        let d = b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x03cbuiltins\nset\nq\x00]q\x01(K\x01K\x02e\x85q\x02Rq\x03.";
        let t = vm::run_stream(d, 0, Limits::default());
        assert!(t.unfollowable);
        let c = codes(d);
        assert!(c.contains(&"PKL014") && c.contains(&"PKL009"), "{c:?}");
        // The same for a binary argument (SHORT_BINUNICODE of 5 in a frame of 6).
        let d =
            b"\x80\x04\x95\x06\x00\x00\x00\x00\x00\x00\x00\x8c\x05\x95\x12\x00\x00\x00\x00\x00.";
        assert!(vm::run_stream(d, 0, Limits::default()).unfollowable);
        // A line wholly inside its frame is fine.
        let d = b"\x80\x04\x95\x0e\x00\x00\x00\x00\x00\x00\x00cbuiltins\nset\n.";
        assert!(codes(d).is_empty(), "{:?}", codes(d));
    }

    #[test]
    fn limits_mark_the_trace_unfollowable() {
        let lim = Limits {
            max_ops: 3,
            ..Limits::default()
        };
        let t = vm::run_stream(b"NNNNN.", 0, lim);
        assert!(t.unfollowable);
        let t = vm::run_stream(b"N\xff", 0, Limits::default());
        assert!(!t.unfollowable);
    }

    #[test]
    fn all_opcodes_decode_without_panic() {
        // Every opcode byte followed by filler: the VM must return, never panic.
        for b in 0u8..=255 {
            for tail in [
                &b""[..],
                b"\x00\x00\x00\x00\x00\x00\x00\x00\x00",
                b"(\n\n.",
                b"\xff\xff\xff\xff\xff\xff\xff\x7f",
            ] {
                let mut d = vec![b];
                d.extend_from_slice(tail);
                let _ = scan_streams(&crate::scan::scanner(&Policy::default()), &d, 0, None);
            }
        }
    }

    /// Replay `body` (after PROTO 4, before STOP) under a memory budget of `max` bytes.
    fn budgeted(body: &[u8], max: usize) -> Trace {
        let mut d = b"\x80\x04".to_vec();
        d.extend_from_slice(body);
        d.push(b'.');
        vm::run_stream(
            &d,
            0,
            Limits {
                max_bytes: max,
                ..Limits::default()
            },
        )
    }

    fn stopped_by_budget(t: &Trace) -> bool {
        t.out_of_memory
            && t.unfollowable
            && matches!(&t.outcome, Outcome::Broken { message, .. } if message.contains("memory budget"))
            && t.anomalies
                .iter()
                .any(|a| a.kind == vm::AnomalyKind::Resource)
    }

    #[test]
    fn every_kind_of_value_is_charged_to_the_budget() {
        let n = 1 << 20; // 1 MiB of opcodes against a 256 KiB budget
        let rep = |op: &[u8]| op.repeat(n / op.len());
        let mut cases: Vec<(&str, Vec<u8>)> = vec![
            ("EMPTY_LIST", rep(b"]")),
            ("EMPTY_DICT", rep(b"}")),
            ("EMPTY_TUPLE", rep(b")")),
            ("MARK", rep(b"(")),
            ("NONE", rep(b"N")),
            ("GET", [&b"]q\x00"[..], &rep(b"h\x00")].concat()),
            ("PROTO anomalies", [&b"N"[..], &rep(b"\x80\x04")].concat()),
            ("REDUCE on None", [&b"N"[..], &rep(b"N)R")].concat()),
        ];
        let mut put = b"N".to_vec();
        let mut sparse = b"N".to_vec();
        let mut strs = vec![];
        let mut globals = vec![];
        let mut big_ints = vec![];
        for i in 0..(n / 5) as u32 {
            put.push(b'r');
            put.extend_from_slice(&i.to_le_bytes());
            sparse.push(b'r');
            sparse.extend_from_slice(&(i.wrapping_mul(7919) | 1 << 30).to_le_bytes());
            strs.extend_from_slice(b"\x8c\x10");
            strs.extend_from_slice(format!("{i:016}").as_bytes());
            if i % 10 == 0 {
                globals.extend_from_slice(format!("c__main__\nC{i}\n0").as_bytes());
            }
            big_ints.push(0x8a);
            big_ints.push(8);
            big_ints.extend_from_slice(&((1i64 << 40) + i as i64).to_le_bytes());
        }
        let mut bigkey = b"N".to_vec();
        for i in 0..n / 1000 {
            bigkey.extend_from_slice(format!("p{}{i}\n", "9".repeat(1000)).as_bytes());
        }
        let mut appends = b"]q\x00(".to_vec();
        appends.extend(std::iter::repeat_n(b'N', 4096));
        appends.push(b'e');
        appends.extend(rep(b"h\x00(h\x00e0"));
        cases.extend([
            ("BINPUT", put),
            ("sparse memo keys", sparse),
            ("text memo keys", bigkey),
            ("strings", strs),
            ("globals", globals),
            ("LONG1 ints", big_ints),
            ("APPENDS", appends),
        ]);
        for (what, body) in cases {
            let t = budgeted(&body, 256 << 10);
            assert!(stopped_by_budget(&t), "{what}: {:?}", t.outcome);
            // Charged by what is held, not by opcode count: the same flood fits a larger budget.
            let t = budgeted(&body, 64 << 20);
            assert!(
                !t.out_of_memory,
                "{what} should fit 64 MiB: {:?}",
                t.outcome
            );
        }
    }

    #[test]
    fn small_opcodes_are_cheap() {
        // 200,000 empty lists / dicts / ints are a stack slot and (for containers) a 16-byte
        // value each: they fit in 5 MiB.
        for op in [&b"]"[..], b"}", b")", b"J\x00\x00\x01\x00", b"N"] {
            let t = budgeted(&op.repeat(200_000), 5 << 20);
            assert!(!t.out_of_memory, "{op:?}");
        }
    }

    #[test]
    fn budget_stop_is_unscannable_not_a_broken_stream() {
        // A scan whose file has (nearly) spent the shared budget: the next stream stops at it.
        let policy = Policy::default();
        let sc = crate::scan::scanner(&policy);
        let mut held = sc.retainer();
        held.add(vm::VM_BUDGET - (256 << 10));
        let mut d = b"\x80\x04cos\nsystem\n".to_vec();
        d.extend(std::iter::repeat_n(b']', 1 << 20));
        d.push(b'.');
        let s = scan_streams(&sc, &d, 0, None);
        let c: Vec<_> = s.findings.iter().map(|f| f.code).collect();
        assert!(c.contains(&"PKL021") && !c.contains(&"PKL009"), "{c:?}");
        // What ran before the stop is still reported (the global is critical).
        assert!(c.contains(&"PKL001"), "{c:?}");
        let only_lists: Vec<u8> = [&b"\x80\x04"[..], &[b']'; 1 << 20], b"."].concat();
        let s = scan_streams(&sc, &only_lists, 0, None);
        assert_eq!(
            crate::scan::verdict_of(&s.findings),
            crate::scan::Verdict::Unscannable
        );
        drop(held);
        // With the budget back, the same lists replay to STOP.
        let s = scan_streams(&sc, &only_lists, 0, None);
        assert_eq!(
            crate::scan::verdict_of(&s.findings),
            crate::scan::Verdict::Clean
        );
    }

    #[test]
    fn anomalies_past_the_cap_are_counted_without_raising_the_verdict() {
        let mut d = b"\x80\x04N".to_vec();
        for _ in 0..5000 {
            d.extend_from_slice(b"\x80\x04");
        }
        d.push(b'.');
        let s = scan_streams(&crate::scan::scanner(&Policy::default()), &d, 0, None);
        let proto = s.findings.iter().filter(|f| f.code == "PKL016").count();
        assert!(proto <= 4096, "{proto}");
        assert!(s
            .findings
            .iter()
            .any(|f| f.code == "PKL014" && f.message.contains("more anomalies")));
        assert_eq!(
            crate::scan::verdict_of(&s.findings),
            crate::scan::Verdict::Clean
        );
    }

    #[test]
    fn held_payloads_shrink_the_budget_down_to_its_floor() {
        let policy = Policy::default();
        let sc = crate::scan::scanner(&policy);
        let vm_memory_left = || sc.memory_left(vm::VM_BUDGET);
        let full = vm_memory_left();
        let small = sc.hold(100 << 20);
        assert_eq!(vm_memory_left(), full.min(VM_TOTAL - (100 << 20)));
        let big = sc.hold(1 << 30);
        assert_eq!(vm_memory_left(), VM_MIN);
        drop((small, big));
        assert_eq!(vm_memory_left(), full);
    }

    #[test]
    fn retained_traces_are_charged_until_dropped() {
        let policy = Policy::default();
        let sc = crate::scan::scanner(&policy);
        let vm_memory_left = || sc.memory_left(vm::VM_BUDGET);
        let before = vm_memory_left();
        let d = b"\x80\x04c__main__\nA\nc__main__\nB\n\x86.";
        let s = scan_streams(&sc, d, 0, None);
        assert!(vm_memory_left() < before);
        drop(s);
        assert_eq!(vm_memory_left(), before);
    }
}
