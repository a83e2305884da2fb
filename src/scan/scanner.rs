//! The scanner context: what every format scanner is handed instead of hidden state.
//!
//! A [`Scanner`] carries the [`Policy`], the location being scanned (member path and nesting
//! depth, see [`Ctx`]), and the per-file budgets shared by everything nested in that file: the
//! bytes still allowed to be read or decompressed (`policy.max_total_bytes`), the payload bytes
//! held in memory, and the bytes retained by live pickle traces. Nested payloads come back in
//! through [`Scanner::nested`] (any content: archive members, decompressed streams, config
//! blobs) or [`Scanner::embedded`] (bytes found inside a pickle: only real, known formats),
//! which dispatch through the format table the scanner was built with ([`Formats`], registered
//! in `formats::FORMATS`). So `pickle` never calls into `formats`: both build on this module.
//!
//! A scanner is cheap to clone; clones and children share the file's budgets.

use super::finding::{Ctx, ScanFinding};
use super::policy::Policy;
use std::cell::Cell;
use std::rc::Rc;

/// Held payloads, live traces and the replay together stay within this (plus the binary's own
/// ~16 MiB), so a scan peaks under 256 MiB when the payloads fit; the replay always gets at
/// least [`VM_MIN`].
pub const VM_TOTAL: usize = 208 << 20;
pub const VM_MIN: usize = 32 << 20;

/// A known format found inside a pickle's bytes: its name and findings.
pub type Embedded = Option<(&'static str, Vec<ScanFinding>)>;

/// The table of formats a scanner dispatches nested content to.
pub trait Formats {
    /// Scan content by what it is (a member, a decompressed payload): every content gets an
    /// answer, unrecognised data included.
    fn scan(&self, sc: &Scanner<'_>, data: &[u8]) -> Vec<ScanFinding>;
    /// Scan bytes found inside a pickle when they really are a known format: its name and
    /// findings, or `None` for anything else.
    fn embedded(&self, sc: &Scanner<'_>, data: &[u8]) -> Embedded;
}

/// Per-file state shared by a scanner and all its children.
#[derive(Debug)]
struct State {
    /// Bytes still allowed to be read from members / decompressed for this file.
    budget: Cell<u64>,
    /// Bytes held by the traces of pickle scans still alive.
    retained: Cell<usize>,
    /// Bytes of payloads held in memory while they are scanned.
    held: Cell<usize>,
}

/// The context of one file's scan (see the module docs).
#[derive(Clone)]
pub struct Scanner<'a> {
    pub policy: &'a Policy,
    formats: &'a dyn Formats,
    state: Rc<State>,
    at: Ctx,
}

impl std::fmt::Debug for Scanner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("at", &self.at)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<'a> Scanner<'a> {
    /// A scanner for one file, at its top, with the policy's whole read budget.
    pub fn new(policy: &'a Policy, formats: &'a dyn Formats) -> Self {
        Scanner {
            policy,
            formats,
            state: Rc::new(State {
                budget: Cell::new(policy.max_total_bytes),
                retained: Cell::new(0),
                held: Cell::new(0),
            }),
            at: Ctx::default(),
        }
    }

    /// Where this scanner is: the member path and nesting depth.
    pub fn location(&self) -> &Ctx {
        &self.at
    }

    pub fn depth(&self) -> u32 {
        self.at.depth
    }

    /// The same file one level down, in member `name` (joined to the path with `!`).
    pub fn child(&self, name: &str) -> Scanner<'a> {
        Scanner {
            at: self.at.child(name),
            ..self.clone()
        }
    }

    /// Stamp this location's member path on a finding that has none.
    pub fn stamp(&self, f: ScanFinding) -> ScanFinding {
        self.at.stamp(f)
    }

    /// Scan nested content called `name` (a member, a decompressed stream) by what it is.
    pub fn nested(&self, name: &str, data: &[u8]) -> Vec<ScanFinding> {
        self.child(name).scan(data)
    }

    /// Scan content at this location by what it is.
    pub fn scan(&self, data: &[u8]) -> Vec<ScanFinding> {
        self.formats.scan(self, data)
    }

    /// Bytes called `name` found inside a pickle: scanned when they are a known format.
    pub fn embedded(&self, name: &str, data: &[u8]) -> Embedded {
        let child = self.child(name);
        self.formats.embedded(&child, data)
    }

    /// The most one more member / payload may take: the per-member limit or what is left of
    /// the file's read budget.
    pub fn member_cap(&self) -> u64 {
        self.policy.max_member_bytes.min(self.state.budget.get())
    }

    /// Most bytes held in memory for one payload.
    pub fn hold_cap(&self) -> u64 {
        self.member_cap().min(self.policy.max_in_memory_bytes)
    }

    /// Count `n` bytes read or decompressed against the file's read budget.
    pub fn charge(&self, n: u64) {
        let b = &self.state.budget;
        b.set(b.get().saturating_sub(n));
    }

    /// What one more pickle replay may hold: `replay_max`, less what held payloads take beyond
    /// [`VM_TOTAL`] (down to [`VM_MIN`]), less what live traces hold.
    pub fn memory_left(&self, replay_max: usize) -> usize {
        let room = VM_TOTAL.saturating_sub(self.state.held.get()).max(VM_MIN);
        replay_max
            .min(room)
            .saturating_sub(self.state.retained.get())
    }

    /// Counts `len` payload bytes as held until the guard is dropped (see [`Self::memory_left`]).
    pub fn hold(&self, len: usize) -> Held {
        let h = &self.state.held;
        h.set(h.get().saturating_add(len));
        Held {
            state: self.state.clone(),
            n: len,
        }
    }

    /// A guard that counts trace bytes as retained until it is dropped.
    pub fn retainer(&self) -> Retained {
        Retained {
            state: self.state.clone(),
            n: 0,
        }
    }
}

/// Payload bytes held in memory, given back when dropped.
#[must_use = "the bytes count as held only while the guard lives"]
pub struct Held {
    state: Rc<State>,
    n: usize,
}

impl Drop for Held {
    fn drop(&mut self) {
        let h = &self.state.held;
        h.set(h.get().saturating_sub(self.n));
    }
}

/// Bytes retained by a pickle scan's traces, given back when the scan is dropped.
pub struct Retained {
    state: Rc<State>,
    n: usize,
}

impl Retained {
    pub fn add(&mut self, n: usize) {
        self.n = self.n.saturating_add(n);
        let r = &self.state.retained;
        r.set(r.get().saturating_add(n));
    }
}

impl Drop for Retained {
    fn drop(&mut self) {
        let r = &self.state.retained;
        r.set(r.get().saturating_sub(self.n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoFormats;

    impl Formats for NoFormats {
        fn scan(&self, _: &Scanner<'_>, _: &[u8]) -> Vec<ScanFinding> {
            vec![]
        }
        fn embedded(&self, _: &Scanner<'_>, _: &[u8]) -> Embedded {
            None
        }
    }

    #[test]
    fn children_share_the_file_budgets_and_files_do_not() {
        let mut policy = Policy::default();
        policy.max_total_bytes = 1000;
        policy.max_member_bytes = 600;
        policy.max_in_memory_bytes = 500;
        let sc = Scanner::new(&policy, &NoFormats);
        assert_eq!((sc.member_cap(), sc.hold_cap()), (600, 500));
        let child = sc.child("a").child("b");
        assert_eq!(child.location().member.as_deref(), Some("a!b"));
        assert_eq!(child.depth(), 2);
        child.charge(700);
        assert_eq!((sc.member_cap(), sc.hold_cap()), (300, 300));
        sc.charge(u64::MAX);
        assert_eq!(child.member_cap(), 0);
        // The next file starts with the whole budget: nothing carries over.
        let next = Scanner::new(&policy, &NoFormats);
        assert_eq!(next.member_cap(), 600);
        // Held payloads and retained traces shrink the replay's memory until they are dropped.
        assert_eq!(next.memory_left(usize::MAX), VM_TOTAL);
        let held = next.child("x").hold(VM_TOTAL);
        assert_eq!(next.memory_left(usize::MAX), VM_MIN);
        drop(held);
        let mut r = next.retainer();
        r.add(1000);
        assert_eq!(next.memory_left(usize::MAX), VM_TOTAL - 1000);
        drop(r);
        assert_eq!(next.memory_left(usize::MAX), VM_TOTAL);
    }
}
