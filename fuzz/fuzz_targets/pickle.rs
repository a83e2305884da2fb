//! The pickle stack machine and policy on arbitrary bytes: must return findings, never panic,
//! never allocate without bound. A counting allocator checks the memory budget: a replay under
//! a budget of B bytes never has more than a small multiple of B allocated at once.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mlsign::scan::{pickle, scanner, Policy};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Relaxed) + l.size();
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            // Counted as if the old and new blocks were both live (a moving realloc).
            let now = LIVE.fetch_add(new, Relaxed) + new;
            PEAK.fetch_max(now, Relaxed);
            LIVE.fetch_sub(l.size(), Relaxed);
        }
        q
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Budget for the bounded replay, and what it may overshoot by (short-lived copies, the
/// report strings built when it stops).
const BUDGET: usize = 256 << 10;
const SLACK: usize = 2 * BUDGET + (1 << 20);

fuzz_target!(|data: &[u8]| {
    let policy = Policy::default();
    let scan = pickle::scan_streams(&scanner(&policy), data, 0, None);
    // Offsets must point inside the input.
    for f in &scan.findings {
        if f.member.is_none() {
            if let Some(o) = f.offset {
                assert!(o <= data.len() as u64, "offset {o} past {}", data.len());
            }
        }
    }
    assert!(scan.end <= data.len());
    let (findings, end) = (scan.findings.clone(), scan.end);
    drop(scan);
    // The replay reads its bytes through a window (files and payloads are streamed): reading
    // them a few bytes at a time must find exactly the same things at the same offsets.
    let windowed = pickle::with_window(7, || {
        pickle::scan_streams(&scanner(&policy), data, 0, None)
    });
    assert!(
        windowed.findings == findings && windowed.end == end,
        "findings depend on the read window"
    );
    drop(windowed);

    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    let limits = pickle::Limits {
        max_bytes: BUDGET,
        ..pickle::Limits::default()
    };
    let t = pickle::vm::run_stream(data, 0, limits);
    let peak = PEAK.load(Relaxed) - base;
    assert!(
        peak <= BUDGET + SLACK,
        "replay under a {BUDGET}-byte budget peaked at {peak} bytes"
    );
    if t.out_of_memory {
        assert!(t.unfollowable && matches!(t.outcome, pickle::Outcome::Broken { .. }));
    }
});
