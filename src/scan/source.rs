//! Random-access byte sources: a file read with positioned reads (so a 1 GiB checkpoint costs
//! only the bytes we ask for) or an in-memory buffer (members, decompressed payloads).

use std::io;

pub trait Source {
    fn len(&self) -> u64;
    fn read_at(&self, off: u64, buf: &mut [u8]) -> io::Result<()>;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Read `len` bytes at `off`, refusing more than `max`.
    fn read_vec(&self, off: u64, len: u64, max: u64) -> io::Result<Vec<u8>> {
        if len > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{len} bytes exceed the read limit of {max}"),
            ));
        }
        let end = off
            .checked_add(len)
            .filter(|e| *e <= self.len())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("range {off}+{len} is past the end ({} bytes)", self.len()),
                )
            })?;
        let _ = end;
        let mut v = vec![0u8; len as usize];
        self.read_at(off, &mut v)?;
        Ok(v)
    }
}

impl Source for &[u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
    fn read_at(&self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        let s = usize::try_from(off)
            .ok()
            .filter(|s| *s <= <[u8]>::len(self));
        let s = s.ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "offset past end"))?;
        let src = self
            .get(s..s + buf.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past end"))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// A file read with positioned reads.
pub struct FileSource {
    file: std::fs::File,
    len: u64,
}

impl FileSource {
    pub fn open(path: &std::path::Path) -> io::Result<Self> {
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        Ok(FileSource { file, len })
    }
}

impl Source for FileSource {
    fn len(&self) -> u64 {
        self.len
    }
    #[cfg(unix)]
    fn read_at(&self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.read_exact_at(buf, off)
    }
    #[cfg(windows)]
    fn read_at(&self, mut off: u64, mut buf: &mut [u8]) -> io::Result<()> {
        use std::os::windows::fs::FileExt;
        while !buf.is_empty() {
            let n = self.file.seek_read(buf, off)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            off += n as u64;
            buf = &mut buf[n..];
        }
        Ok(())
    }
}

/// A window of another source (a stored archive member read in place).
pub struct SubSource<'a> {
    pub src: &'a dyn Source,
    pub off: u64,
    pub len: u64,
}

impl Source for SubSource<'_> {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = off
            .checked_add(buf.len() as u64)
            .filter(|e| *e <= self.len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past end"))?;
        let _ = end;
        self.src.read_at(self.off + off, buf)
    }
}

/// A decision taken on a payload's head.
pub type Decide<'a> = dyn Fn(&[u8]) -> bool + 'a;

/// What a streamed payload (ZIP member, decompressed data) left in memory.
pub enum Collected {
    /// All of it (it was small, or its head says it must be scanned whole).
    Whole(Vec<u8>),
    /// Only its head was kept: the rest was counted and dropped. `tail_eocd`: a ZIP end
    /// record signature appeared in the last 64 KiB (an archive appended to the data).
    Dropped {
        head: Vec<u8>,
        total: u64,
        tail_eocd: bool,
    },
    /// Its head said it must be scanned whole, but it outgrew the in-memory limit: only the
    /// head was kept (see [`Collector::stream_oversize`]); the caller streams it again.
    Oversize {
        head: Vec<u8>,
        total: u64,
        tail_eocd: bool,
    },
}

/// A writer that keeps a payload's first `head` bytes, then asks `keep` whether the payload
/// must be held whole (up to `cap` bytes, else an error) or can be dropped as it streams.
/// Peak memory is `head` + 64 KiB unless the payload is kept.
pub struct Collector<'k> {
    buf: Vec<u8>,
    head: usize,
    cap: u64,
    hold: u64,
    total: u64,
    keep: Option<bool>,
    decide: &'k dyn Fn(&[u8]) -> bool,
    tail: Vec<u8>,
    /// Outgrowing `hold` drops the payload instead of failing.
    oversize_ok: bool,
    /// See [`Collector::stream_oversize`].
    stream: Option<(u64, &'k Decide<'k>)>,
    oversize: bool,
}

const TAIL: usize = 65536 + 22;

impl<'k> Collector<'k> {
    /// `cap`: most bytes streamed in all; `hold`: most bytes kept in memory (exceeding it is an
    /// error of kind [`io::ErrorKind::OutOfMemory`]; exceeding `cap` is kind `Other`).
    pub fn new(head: usize, cap: u64, hold: u64, decide: &'k dyn Fn(&[u8]) -> bool) -> Self {
        Collector {
            buf: vec![],
            head: head.min(usize::try_from(hold).unwrap_or(usize::MAX)),
            cap,
            hold,
            total: 0,
            keep: None,
            decide,
            tail: vec![],
            oversize_ok: false,
            stream: None,
            oversize: false,
        }
    }

    /// A payload that must be held and whose head `streamable` says can be streamed instead
    /// (a pickle) is held only up to `limit` bytes: past it, it is counted and dropped past its
    /// head ([`Collected::Oversize`]) rather than an error, and the caller streams it again.
    pub fn stream_oversize(mut self, limit: u64, streamable: &'k dyn Fn(&[u8]) -> bool) -> Self {
        self.stream = Some((limit, streamable));
        self
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn finish(self) -> Collected {
        if self.keep != Some(false) {
            return Collected::Whole(self.buf);
        }
        // The end record lies in the last 64 KiB + 22 bytes (head and tail joined).
        let mut window = self.buf[self.buf.len().saturating_sub(TAIL)..].to_vec();
        window.extend_from_slice(&self.tail);
        let window = &window[window.len().saturating_sub(TAIL)..];
        let tail_eocd = window.windows(4).any(|w| w == b"PK\x05\x06");
        let (head, total) = (self.buf, self.total);
        if self.oversize {
            Collected::Oversize {
                head,
                total,
                tail_eocd,
            }
        } else {
            Collected::Dropped {
                head,
                total,
                tail_eocd,
            }
        }
    }
}

impl io::Write for Collector<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len();
        if self.total.saturating_add(n as u64) > self.cap {
            return Err(io::Error::other(format!(
                "more than {} bytes (the limit)",
                self.cap
            )));
        }
        self.total += n as u64;
        let mut rest = data;
        if self.keep.is_none() {
            let take = (self.head - self.buf.len()).min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buf.len() == self.head {
                let keep = (self.decide)(&self.buf);
                self.keep = Some(keep);
                if let Some((limit, streamable)) = self.stream {
                    if keep && streamable(&self.buf) {
                        self.oversize_ok = true;
                        self.hold = self.hold.min(limit);
                    }
                }
            }
        }
        match self.keep {
            Some(true) if self.oversize_ok && (self.buf.len() + rest.len()) as u64 > self.hold => {
                // Keep the head; the rest goes through the tail window like a dropped payload.
                self.oversize = true;
                self.keep = Some(false);
                let head = self.head.min(self.buf.len());
                let mut tail = vec![];
                if rest.len() < 2 * TAIL {
                    let from = self
                        .buf
                        .len()
                        .saturating_sub(2 * TAIL - rest.len())
                        .max(head);
                    tail.extend_from_slice(&self.buf[from..]);
                }
                tail.extend_from_slice(&rest[rest.len().saturating_sub(2 * TAIL)..]);
                self.tail = tail;
                self.buf.truncate(head);
                self.buf.shrink_to_fit();
            }
            Some(true) => {
                if (self.buf.len() + rest.len()) as u64 > self.hold {
                    return Err(io::Error::new(
                        io::ErrorKind::OutOfMemory,
                        format!(
                            "must be scanned whole but exceeds the in-memory limit of {} bytes",
                            self.hold
                        ),
                    ));
                }
                self.buf.extend_from_slice(rest)
            }
            Some(false) if !rest.is_empty() => {
                // A rolling window of the last bytes, for the end-record check.
                if rest.len() >= TAIL {
                    self.tail.clear();
                    self.tail.extend_from_slice(&rest[rest.len() - TAIL..]);
                } else {
                    self.tail.extend_from_slice(rest);
                    if self.tail.len() > 2 * TAIL {
                        let cut = self.tail.len() - TAIL;
                        self.tail.drain(..cut);
                    }
                }
            }
            _ => {}
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn collector_holds_only_what_it_must() {
        // Dropped: only the head stays; an end record in the last 64 KiB is noticed.
        let mut c = Collector::new(16, 1 << 20, 1 << 10, &|_| false);
        c.write_all(&[0u8; 100_000]).unwrap();
        c.write_all(b"PK\x05\x06").unwrap();
        c.write_all(&[0u8; 1000]).unwrap();
        match c.finish() {
            Collected::Dropped {
                head,
                total,
                tail_eocd,
            } => {
                assert_eq!((head.len(), total, tail_eocd), (16, 101_004, true));
            }
            _ => panic!("held"),
        }
        // An end record further back than 64 KiB is not an archive end.
        let mut c = Collector::new(16, 1 << 20, 1 << 10, &|_| false);
        c.write_all(b"PK\x05\x06").unwrap();
        c.write_all(&[0u8; 200_000]).unwrap();
        assert!(matches!(
            c.finish(),
            Collected::Dropped {
                tail_eocd: false,
                ..
            }
        ));
        // Held: up to the in-memory limit, then an OutOfMemory error; the total cap is Other.
        let mut c = Collector::new(4, 1 << 20, 64, &|_| true);
        assert!(c.write_all(&[1u8; 64]).is_ok());
        let e = c.write_all(&[1u8; 1]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::OutOfMemory);
        let mut c = Collector::new(4, 10, 64, &|_| false);
        assert_eq!(
            c.write_all(&[1u8; 11]).unwrap_err().kind(),
            io::ErrorKind::Other
        );
        // Small payloads are whole.
        let mut c = Collector::new(16, 100, 100, &|_| false);
        c.write_all(b"abc").unwrap();
        assert!(matches!(c.finish(), Collected::Whole(v) if v == b"abc"));
        // Oversize: a held payload past the limit keeps its head and is counted on.
        let mut c = Collector::new(4, 1 << 20, 1 << 10, &|_| true).stream_oversize(64, &|_| true);
        c.write_all(&[1u8; 60]).unwrap();
        c.write_all(&[2u8; 100]).unwrap();
        c.write_all(b"PK\x05\x06").unwrap();
        match c.finish() {
            Collected::Oversize {
                head,
                total,
                tail_eocd,
            } => assert_eq!((head, total, tail_eocd), (vec![1u8; 4], 164, true)),
            _ => panic!("not oversize"),
        }
    }
}
