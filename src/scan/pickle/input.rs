//! The bytes a replay reads: a buffer already in memory, or a stream read through a bounded
//! window (a file, a ZIP member, a decompressor), so that a pickle of any size is replayed with
//! the memory its values need and not the memory its bytes take.
//!
//! Positions are absolute (from the start of the source) and only move forward; what lies before
//! the position last asked for is dropped from the window. Arguments the replay must see whole
//! (short strings, lines, integers) are buffered; long ones are streamed past with
//! [`Input::advance`]. A second reading from an earlier position opens the source again
//! ([`PickleSource::input`]).

use std::io::{self, Read};

/// Default bytes read from a stream at a time.
pub const DEFAULT_WINDOW: usize = 256 << 10;

thread_local! {
    /// Test hook: read in-memory buffers through a stream window of this many bytes too.
    /// Deliberately thread-scoped, not part of the [`crate::scan::Scanner`]: it is no scan state
    /// (nothing is counted or reset per file, and `None`, the only value outside tests and
    /// fuzzing, changes nothing), and the window-independence tests must reach every replay
    /// through public entry points such as `scan_path` without widening their signatures.
    static FORCE_WINDOW: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Run `f` with every pickle replay on this thread reading its bytes through a window of
/// `window` bytes, in-memory buffers included: a scan's findings must not depend on it.
pub fn with_window<T>(window: usize, f: impl FnOnce() -> T) -> T {
    struct Reset(Option<usize>);
    impl Drop for Reset {
        fn drop(&mut self) {
            FORCE_WINDOW.with(|w| w.set(self.0));
        }
    }
    let _reset = Reset(FORCE_WINDOW.with(|w| w.replace(Some(window.max(1)))));
    f()
}

fn forced_window() -> Option<usize> {
    FORCE_WINDOW.with(|w| w.get())
}

/// Something a replay can read from any position, as often as it needs to.
pub trait PickleSource {
    /// The whole content when it is in memory (read without copying).
    fn bytes(&self) -> Option<&[u8]>;
    /// A reader positioned `at` bytes from the start (only called when [`bytes`] is `None`).
    fn open(&self, at: u64) -> io::Result<Box<dyn Read + '_>>;

    /// An [`Input`] whose position `at` is the next byte read.
    fn input(&self, at: usize) -> Input<'_> {
        match (self.bytes(), forced_window()) {
            (Some(b), None) => Input::slice(b),
            (Some(b), Some(w)) => {
                let rest = b.get(at..).unwrap_or(&[]);
                Input::stream(Box::new(rest), at, w)
            }
            (None, w) => match self.open(at as u64) {
                Ok(r) => Input::stream(r, at, w.unwrap_or(DEFAULT_WINDOW)),
                Err(e) => {
                    let mut i = Input::stream(Box::new(io::empty()), at, 1);
                    i.error = Some(e);
                    i
                }
            },
        }
    }
}

impl PickleSource for &[u8] {
    fn bytes(&self) -> Option<&[u8]> {
        Some(self)
    }
    fn open(&self, at: u64) -> io::Result<Box<dyn Read + '_>> {
        let at = usize::try_from(at).unwrap_or(usize::MAX).min(self.len());
        Ok(Box::new(&self[at..]))
    }
}

/// A source re-read by a function that opens a fresh reader from its start (a decompressor, a
/// ZIP member): opening at `at` reads and drops the first `at` bytes.
pub struct Reopen<'a>(pub &'a dyn Fn() -> io::Result<Box<dyn Read + 'a>>);

impl PickleSource for Reopen<'_> {
    fn bytes(&self) -> Option<&[u8]> {
        None
    }
    fn open(&self, at: u64) -> io::Result<Box<dyn Read + '_>> {
        let mut r = (self.0)()?;
        let skipped = io::copy(&mut r.by_ref().take(at), &mut io::sink())?;
        if skipped < at {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(r)
    }
}

/// Positioned reads of a random-access source (a file on disk, a stored member).
pub struct SourceReader<'a> {
    pub src: &'a dyn crate::scan::source::Source,
    pub pos: u64,
}

impl Read for SourceReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.src.len().saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.src.read_at(self.pos, &mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl PickleSource for &dyn crate::scan::source::Source {
    fn bytes(&self) -> Option<&[u8]> {
        None
    }
    fn open(&self, at: u64) -> io::Result<Box<dyn Read + '_>> {
        Ok(Box::new(SourceReader {
            src: *self,
            pos: at,
        }))
    }
}

enum Kind<'a> {
    Slice(&'a [u8]),
    Stream {
        r: Box<dyn Read + 'a>,
        buf: Vec<u8>,
        /// Absolute position of `buf[0]`.
        start: usize,
        eof: bool,
        window: usize,
    },
}

/// The bytes one or more replays read, in order (see the module docs).
pub struct Input<'a> {
    kind: Kind<'a>,
    /// A read error met while streaming: the bytes after it are missing (they read as EOF).
    pub error: Option<io::Error>,
}

impl<'a> Input<'a> {
    pub fn slice(data: &'a [u8]) -> Self {
        Input {
            kind: Kind::Slice(data),
            error: None,
        }
    }

    /// A stream whose next byte is at absolute position `at`, read `window` bytes at a time.
    pub fn stream(r: Box<dyn Read + 'a>, at: usize, window: usize) -> Self {
        Input {
            kind: Kind::Stream {
                r,
                buf: vec![],
                start: at,
                eof: false,
                window: window.max(1),
            },
            error: None,
        }
    }

    /// Make `[pos, pos + n)` readable as far as the data goes; the bytes available from `pos`
    /// (at most `n`). Bytes before `pos` are dropped.
    pub fn fill(&mut self, pos: usize, n: usize) -> usize {
        match &mut self.kind {
            Kind::Slice(d) => d.len().saturating_sub(pos).min(n),
            Kind::Stream {
                r,
                buf,
                start,
                eof,
                window,
            } => {
                if pos < *start {
                    // Nothing reads behind its position (a second reading opens a new input).
                    if self.error.is_none() {
                        self.error = Some(io::Error::other("read behind the replay window"));
                    }
                    return 0;
                }
                let have = |buf: &Vec<u8>, start: usize| (start + buf.len()).saturating_sub(pos);
                if have(buf, *start) >= n || *eof {
                    return have(buf, *start).min(n);
                }
                // Drop what lies before `pos` (and skip forward to it if it lies past the window).
                let drop = (pos - *start).min(buf.len());
                buf.drain(..drop);
                *start += drop;
                // Give back what a long line or string needed once it is behind us.
                if buf.capacity() > 4 * (*window).max(n).max(buf.len()) {
                    buf.shrink_to((*window).max(n).max(buf.len()));
                }
                while *start < pos && !*eof {
                    let mut sink = [0u8; 8192];
                    let want = (pos - *start).min(sink.len());
                    match read_some(r, &mut sink[..want]) {
                        Ok(0) => *eof = true,
                        Ok(k) => *start += k,
                        Err(e) => {
                            *eof = true;
                            self.error.get_or_insert(e);
                        }
                    }
                }
                while buf.len() < n && !*eof {
                    let old = buf.len();
                    buf.resize(old + *window, 0);
                    match read_some(r, &mut buf[old..]) {
                        Ok(k) => {
                            buf.truncate(old + k);
                            if k == 0 {
                                *eof = true;
                            }
                        }
                        Err(e) => {
                            buf.truncate(old);
                            *eof = true;
                            self.error.get_or_insert(e);
                        }
                    }
                }
                if *start == pos {
                    buf.len().min(n)
                } else {
                    0
                }
            }
        }
    }

    /// The `n` bytes at `pos`, after [`fill`] returned at least `n`.
    pub fn get(&self, pos: usize, n: usize) -> &[u8] {
        match &self.kind {
            Kind::Slice(d) => d.get(pos..pos.saturating_add(n)).unwrap_or(&[]),
            Kind::Stream { buf, start, .. } => pos
                .checked_sub(*start)
                .and_then(|o| buf.get(o..o.checked_add(n)?))
                .unwrap_or(&[]),
        }
    }

    /// The bytes already readable from `pos` without reading more (empty when none are).
    #[inline]
    pub fn buffered(&self, pos: usize) -> &[u8] {
        match &self.kind {
            Kind::Slice(d) => d.get(pos..).unwrap_or(&[]),
            Kind::Stream { buf, start, .. } => pos
                .checked_sub(*start)
                .and_then(|o| buf.get(o..))
                .unwrap_or(&[]),
        }
    }

    /// Whether a byte exists at `pos`.
    pub fn has(&mut self, pos: usize) -> bool {
        // A byte the replay has already streamed past was there (asking is not reading it again:
        // a truncated long argument leaves the position behind the window).
        if let Kind::Stream { start, .. } = &self.kind {
            if pos < *start {
                return true;
            }
        }
        self.fill(pos, 1) == 1
    }

    /// Where the next `\n` at or after `pos` is (relative to `pos`), reading on as needed;
    /// `Err(rest)` at EOF without one, `Ok(None)` once more than `max` bytes came without one.
    pub fn find_newline(&mut self, pos: usize, max: usize) -> Result<Option<usize>, usize> {
        if let Kind::Slice(d) = &self.kind {
            let rest = d.get(pos..).unwrap_or(&[]);
            return match rest.iter().position(|&b| b == b'\n') {
                Some(i) if i > max => Ok(None),
                Some(i) => Ok(Some(i)),
                None if rest.len() > max => Ok(None),
                None => Err(rest.len()),
            };
        }
        let step = match &self.kind {
            Kind::Stream { window, .. } => *window,
            Kind::Slice(_) => unreachable_slice(),
        };
        let mut searched = 0usize;
        loop {
            // Indices 0..=max decide: a newline among them, or a line too long.
            let want = searched.saturating_add(step).min(max.saturating_add(1));
            let have = self.fill(pos, want);
            if let Some(i) = self
                .get(pos, have)
                .get(searched..)
                .and_then(|s| s.iter().position(|&b| b == b'\n'))
            {
                return Ok(Some(searched + i));
            }
            if have < want {
                return Err(have);
            }
            if have > max {
                return Ok(None);
            }
            searched = have;
        }
    }

    /// Stream past up to `n` bytes from `pos`, showing each piece to `sink`; the number of
    /// bytes there were (less than `n` at EOF). Nothing is kept.
    pub fn advance(&mut self, pos: usize, n: usize, sink: &mut dyn FnMut(&[u8])) -> usize {
        if let Kind::Slice(d) = &self.kind {
            let s = d.get(pos..).unwrap_or(&[]);
            let s = &s[..s.len().min(n)];
            if !s.is_empty() {
                sink(s);
            }
            return s.len();
        }
        let step = match &self.kind {
            Kind::Stream { window, .. } => *window,
            Kind::Slice(_) => unreachable_slice(),
        };
        let mut done = 0usize;
        while done < n {
            let at = pos + done;
            let want = (n - done).min(step);
            let have = self.fill(at, want);
            if have == 0 {
                break;
            }
            sink(self.get(at, have));
            done += have;
            if have < want {
                break;
            }
        }
        done
    }

    /// Count the bytes from `pos` to EOF, and whether all of them satisfy `pred`.
    pub fn rest_all(&mut self, pos: usize, pred: impl Fn(u8) -> bool) -> (usize, bool) {
        let mut ok = true;
        let n = self.advance(pos, usize::MAX - pos, &mut |s| {
            ok = ok && s.iter().all(|&b| pred(b))
        });
        (n, ok)
    }
}

fn unreachable_slice() -> usize {
    // Callers return early for slices; a window of 1 keeps this total anyway.
    1
}

fn read_some(r: &mut Box<dyn Read + '_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            x => return x,
        }
    }
}

/// Streaming check of what CPython's `surrogatepass` UTF-8 decoder accepts: UTF-8 in which
/// encoded surrogates (`ED A0..BF xx`) are allowed.
#[derive(Default)]
pub struct Utf8Check {
    /// Continuation bytes still expected.
    need: u8,
    /// Range the next continuation byte must lie in.
    lo: u8,
    hi: u8,
    bad: bool,
}

impl Utf8Check {
    pub fn feed(&mut self, s: &[u8]) {
        if self.bad {
            return;
        }
        for &b in s {
            if self.need > 0 {
                if b < self.lo || b > self.hi {
                    self.bad = true;
                    return;
                }
                self.need -= 1;
                (self.lo, self.hi) = (0x80, 0xbf);
                continue;
            }
            let (need, lo, hi) = match b {
                0x00..=0x7f => (0, 0x80, 0xbf),
                0xc2..=0xdf => (1, 0x80, 0xbf),
                0xe0 => (2, 0xa0, 0xbf),
                // ED: surrogates (A0..BF) pass.
                0xe1..=0xef => (2, 0x80, 0xbf),
                0xf0 => (3, 0x90, 0xbf),
                0xf1..=0xf3 => (3, 0x80, 0xbf),
                0xf4 => (3, 0x80, 0x8f),
                _ => {
                    self.bad = true;
                    return;
                }
            };
            (self.need, self.lo, self.hi) = (need, lo, hi);
        }
    }
    pub fn ok(&self) -> bool {
        !self.bad && self.need == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_check_matches_surrogatepass() {
        let mut x: u64 = 0x2545f4914f6cdd1d;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let pieces: [&[u8]; 12] = [
            b"a",
            "é".as_bytes(),
            "€".as_bytes(),
            "𝄞".as_bytes(),
            b"\xed\xa0\x80",
            b"\xed\xbf\xbf",
            b"\xed\x9f\xbf",
            b"\xe0\x80\x80",
            b"\xf4\x90\x80\x80",
            b"\xc0\xaf",
            b"\xff",
            b"\x80",
        ];
        for _ in 0..20_000 {
            let mut v = vec![];
            for _ in 0..rnd() % 6 {
                v.extend_from_slice(pieces[(rnd() % 12) as usize]);
            }
            if rnd() % 3 == 0 && !v.is_empty() {
                let l = v.len();
                v.truncate(l - 1);
            }
            let expect = crate::scan::pickle::vm::surrogatepass_ok(&v);
            for split in [1usize, 2, 3, 7] {
                let mut c = Utf8Check::default();
                for ch in v.chunks(split) {
                    c.feed(ch);
                }
                assert_eq!(c.ok(), expect, "{v:x?}");
            }
        }
    }

    #[test]
    fn windows_read_the_same_bytes() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for w in [1usize, 7, 4096] {
            let d = &data[..];
            let mut i = d.input(0);
            let mut s = Input::stream(Box::new(&data[..]), 0, w);
            assert_eq!(s.fill(10, 20), 20);
            assert_eq!(s.get(10, 20), &data[10..30]);
            assert_eq!(i.fill(10, 20), 20);
            let mut seen = vec![];
            assert_eq!(
                s.advance(30, 5000, &mut |b| seen.extend_from_slice(b)),
                5000
            );
            assert_eq!(seen, &data[30..5030]);
            assert_eq!(s.fill(9990, 100), 10);
            assert_eq!(s.rest_all(9995, |_| true), (5, true));
            assert!(s.error.is_none());
        }
        let mut s = Input::stream(Box::new(&b"ab\ncd"[..]), 0, 1);
        assert_eq!(s.find_newline(0, 10), Ok(Some(2)));
        assert_eq!(s.find_newline(3, 10), Err(2));
        let mut s = Input::stream(Box::new(&b"abcdef\n"[..]), 0, 2);
        assert_eq!(s.find_newline(0, 3), Ok(None));
    }
}
