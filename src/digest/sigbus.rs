//! Hashing reads files through short-lived memory maps (no copy out of the page cache). If a
//! mapped file is truncated underneath, the kernel raises SIGBUS on access. This guard turns that
//! into what any other change during hashing gets: an error naming the file and exit code 2 —
//! never a crash, and never a bundle (bundles are written only after hashing finished).
//!
//! Each hashing worker registers its current window in a fixed table; the handler looks the
//! faulting address up there with async-signal-safe reads only. Faults outside our windows are
//! handed back to the previous handler (Rust's stack-overflow reporter, or the default).

use std::cell::UnsafeCell;
use std::ffi::CStr;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::Once;

const SLOTS: usize = 256;

struct Slot {
    start: AtomicUsize,
    end: AtomicUsize,
    path: AtomicPtr<libc::c_char>,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    path: AtomicPtr::new(std::ptr::null_mut()),
};
static TABLE: [Slot; SLOTS] = [EMPTY; SLOTS];
/// Slot claims: 0 free, 1 taken (separate from `start` so a claimed slot is never matched early).
static CLAIMS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];

struct OldAction(UnsafeCell<std::mem::MaybeUninit<libc::sigaction>>);
// Written once before the handler is installed, read-only afterwards.
unsafe impl Sync for OldAction {}
static OLD: OldAction = OldAction(UnsafeCell::new(std::mem::MaybeUninit::zeroed()));
static INSTALL: Once = Once::new();

fn write_stderr(b: &[u8]) {
    unsafe {
        libc::write(2, b.as_ptr().cast(), b.len());
    }
}

extern "C" fn on_sigbus(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    let addr = unsafe { (*info).si_addr() } as usize;
    for s in TABLE.iter() {
        let (st, en) = (
            s.start.load(Ordering::Acquire),
            s.end.load(Ordering::Acquire),
        );
        if st != 0 && addr >= st && addr < en {
            write_stderr(b"error: ");
            let p = s.path.load(Ordering::Acquire);
            if !p.is_null() {
                let len = unsafe { libc::strlen(p) };
                write_stderr(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) });
            }
            write_stderr(
                b": changed while it was being hashed (truncated under its memory map); \
make sure nothing writes to the model and try again\n",
            );
            unsafe { libc::_exit(2) };
        }
    }
    // Not ours: restore the previous disposition; the faulting access repeats under it.
    unsafe {
        libc::sigaction(libc::SIGBUS, (*OLD.0.get()).as_ptr(), std::ptr::null_mut());
    }
}

fn install() {
    INSTALL.call_once(|| unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigbus as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGBUS, &sa, (*OLD.0.get()).as_mut_ptr());
    });
}

/// A registered window; unregisters on drop. Borrows the path so it outlives the registration.
pub(crate) struct Guard<'a> {
    idx: usize,
    _path: PhantomData<&'a CStr>,
}

impl<'a> Guard<'a> {
    /// Register `[start, start+len)` as a map of `path`. Returns `None` when the table is full
    /// (the caller then reads with `pread` instead).
    pub(crate) fn register(start: usize, len: usize, path: &'a CStr) -> Option<Guard<'a>> {
        install();
        let idx = CLAIMS.iter().position(|c| {
            c.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        })?;
        let s = &TABLE[idx];
        s.path.store(path.as_ptr().cast_mut(), Ordering::Release);
        s.end.store(start + len, Ordering::Release);
        s.start.store(start, Ordering::Release);
        Some(Guard {
            idx,
            _path: PhantomData,
        })
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let s = &TABLE[self.idx];
        s.start.store(0, Ordering::Release);
        s.end.store(0, Ordering::Release);
        s.path.store(std::ptr::null_mut(), Ordering::Release);
        CLAIMS[self.idx].store(0, Ordering::Release);
    }
}
