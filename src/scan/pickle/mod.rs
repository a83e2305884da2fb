//! Static pickle analysis: [`vm`] replays streams without executing anything; this module turns
//! what they did into findings under a [`Policy`], reads stacked streams to EOF and follows
//! nested payloads.

pub mod compat;
pub mod modules;
pub mod numbers;
pub mod opcodes;
pub mod strings;
pub mod vm;

use super::finding::{Ctx, ScanFinding};
use super::policy::{Decision, Policy};
use crate::report::Severity;
use std::collections::BTreeMap;
pub use vm::{Limits, Outcome, PersistentId, PidItem, TopValue, Trace};

/// Stacked streams read from one region before giving up.
pub const MAX_STREAMS: u32 = 100_000;

/// All streams of one pickle region.
pub struct PickleScan {
    pub findings: Vec<ScanFinding>,
    pub traces: Vec<Trace>,
    /// Bytes consumed by complete streams.
    pub end: usize,
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
    data: &[u8],
    base: u64,
    ctx: &Ctx,
    policy: &Policy,
    max_streams: Option<usize>,
) -> PickleScan {
    let mut out = PickleScan {
        findings: vec![],
        traces: vec![],
        end: 0,
    };
    let mut pos = 0usize;
    let mut idx = 0u32;
    while pos < data.len() && max_streams.is_none_or(|m| (idx as usize) < m) {
        if idx >= MAX_STREAMS {
            out.findings.push(
                ctx.stamp(
                    ScanFinding::new(
                        "PKL014",
                        Severity::High,
                        format!("more than {MAX_STREAMS} stacked pickle streams"),
                    )
                    .offset(base + pos as u64),
                ),
            );
            break;
        }
        let t = vm::run_stream(&data[pos..], base + pos as u64, Limits::default());
        let mut fs = trace_findings(&t, policy);
        if let Outcome::Broken { offset, message } = &t.outcome {
            if idx == 0 || did_something(&t) {
                fs.push(
                    ScanFinding::new(
                        "PKL009",
                        Severity::High,
                        format!(
                            "pickle stream breaks at offset {offset}: {message}; a loader has already acted on everything before the break: it {}",
                            summarize(&t)
                        ),
                    )
                    .offset(*offset),
                );
            } else {
                fs.push(
                    ScanFinding::new(
                        "PKL012",
                        Severity::Medium,
                        format!(
                            "{} byte(s) of non-pickle data after the last STOP",
                            data.len() - pos
                        ),
                    )
                    .offset(base + pos as u64),
                );
            }
        }
        nested_findings(&t, data, pos, ctx, policy, &mut fs);
        for mut f in fs {
            f.stream = Some(idx);
            out.findings.push(ctx.stamp(f));
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
    out
}

fn nested_findings(
    t: &Trace,
    data: &[u8],
    pos: usize,
    ctx: &Ctx,
    policy: &Policy,
    fs: &mut Vec<ScanFinding>,
) {
    for &(off, start, len) in &t.nested {
        let bytes = &data[pos + start..pos + start + len];
        if ctx.depth >= policy.max_depth {
            fs.push(
                ScanFinding::new(
                    "SCN017",
                    Severity::High,
                    format!(
                        "nested payload at offset {off} is deeper than the nesting limit ({})",
                        policy.max_depth
                    ),
                )
                .offset(off),
            );
            continue;
        }
        let child = ctx.child(&format!("bytes@{off}"));
        if let Some((kind, inner)) = super::formats::scan_nested(bytes, &child, policy) {
            let serious = inner.iter().any(|f| f.severity >= Severity::Medium);
            if serious {
                fs.push(
                    ScanFinding::new(
                        "PKL013",
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

/// Findings for one stream's trace under `policy` (without the broken-stream finding).
pub fn trace_findings(t: &Trace, policy: &Policy) -> Vec<ScanFinding> {
    let mut fs = vec![];
    // One finding per distinct global, first offset, with the call sites attributed to it.
    let mut by_name: BTreeMap<(String, String), (usize, Vec<String>)> = BTreeMap::new();
    for (i, g) in t.globals.iter().enumerate() {
        by_name
            .entry((g.module.clone(), g.name.clone()))
            .or_insert((i, vec![]));
    }
    for c in &t.calls {
        let g = match &c.target {
            vm::Target::Global(g) => *g,
            vm::Target::MethodOf(g, _) => *g,
            vm::Target::NotAGlobal(what) => {
                fs.push(
                    ScanFinding::new(
                        "PKL008",
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
            e.1.push(how);
        }
        if c.discarded && !matches!(policy.judge(&gl.module, &gl.name), Decision::Allowed) {
            fs.push(
                ScanFinding::new(
                    "PKL019",
                    Severity::Low,
                    format!("the result of calling {} is thrown away right after the call (payload-then-POP)", gl.qualified()),
                )
                .offset(c.offset)
                .global(gl.qualified()),
            );
        }
    }
    let mut ordered: Vec<_> = by_name.into_iter().collect();
    ordered.sort_by_key(|(_, (i, _))| *i);
    for ((module, name), (i, calls)) in ordered {
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
                if calls.len() > 4 {
                    format!(" and {} more", calls.len() - 4)
                } else {
                    String::new()
                }
            )
        };
        let f = match policy.judge(&module, &name) {
            Decision::Allowed => continue,
            Decision::AllowedSuspicious => ScanFinding::new(
                "PKL018",
                Severity::Info,
                format!("{qual}{mapped} is a custom class the policy allows{called}"),
            ),
            Decision::Suspicious => ScanFinding::new(
                "PKL003",
                Severity::Medium,
                format!("{qual}{mapped} is a custom class outside the allowlist (allow it with a policy if expected){called}"),
            ),
            Decision::Unsafe { severity: Severity::Critical, why } => ScanFinding::new(
                "PKL001",
                Severity::Critical,
                format!("{} {qual}{mapped}: {why}{called}", g.opcode),
            ),
            Decision::Unsafe { severity, why } if name.contains('.') => ScanFinding::new(
                "PKL004",
                severity,
                format!("{} {qual}{mapped}: {why}{called}", g.opcode),
            ),
            Decision::Unsafe { severity, why } => ScanFinding::new(
                "PKL002",
                severity,
                format!("{} {qual}{mapped}: {why}{called}", g.opcode),
            ),
        };
        fs.push(f.offset(g.offset).global(qual));
    }
    for a in &t.anomalies {
        let (code, sev) = match a.kind {
            vm::AnomalyKind::NonLiteralStackGlobal => ("PKL005", Severity::High),
            vm::AnomalyKind::MemoMiss => ("PKL006", Severity::High),
            vm::AnomalyKind::Ext => ("PKL007", Severity::High),
            vm::AnomalyKind::BuildOnGlobal => ("PKL011", Severity::High),
            vm::AnomalyKind::MisplacedProto => ("PKL016", Severity::Low),
            vm::AnomalyKind::OutOfBand => ("PKL017", Severity::Medium),
            vm::AnomalyKind::Limit => ("PKL014", Severity::High),
        };
        fs.push(ScanFinding::new(code, sev, a.detail.clone()).offset(a.offset));
    }
    fs
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
        let s = scan_streams(data, 0, &Ctx::default(), &Policy::default(), None);
        s.findings.iter().map(|f| f.code).collect()
    }

    #[test]
    fn proto0_os_system_is_critical_with_call_site() {
        let s = scan_streams(
            b"cos\nsystem\n(S'id'\ntR.",
            0,
            &Ctx::default(),
            &Policy::default(),
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
            b"c__builtin__\nset\n(]tR.",
            0,
            &Ctx::default(),
            &Policy::default(),
            None,
        );
        assert!(s.findings.is_empty(), "{:?}", s.findings);
        let s = scan_streams(
            b"ccommands\ngetoutput\n(S'id'\ntR.",
            0,
            &Ctx::default(),
            &Policy::default(),
            None,
        );
        assert_eq!(
            s.findings[0].global.as_deref(),
            Some("subprocess.getoutput")
        );
        // Protocol 3+: no mapping, __builtin__ is simply unknown.
        let s = scan_streams(
            b"\x80\x03c__builtin__\nset\n)R.",
            0,
            &Ctx::default(),
            &Policy::default(),
            None,
        );
        assert_eq!(s.findings[0].code, "PKL002");
    }

    #[test]
    fn memo_confusion_resolves_the_real_value() {
        // push 'os', push 'collections', POP, BINPUT 0 (memo = 'os'), 'system', STACK_GLOBAL via memo.
        let d = b"\x80\x04\x8c\x02os\x8c\x0bcollections0q\x00\x8c\x06system\x93q\x01h\x00\x8c\x06system\x93)R.";
        let s = scan_streams(d, 0, &Ctx::default(), &Policy::default(), None);
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
        let s = scan_streams(d, 0, &Ctx::default(), &Policy::default(), None);
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
                let _ = scan_streams(&d, 0, &Ctx::default(), &Policy::default(), None);
            }
        }
    }
}
