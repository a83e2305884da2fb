//! The parallel hashing engine: a fixed pool of workers pulls files or shards (largest first)
//! from a shared queue. Each worker maps one short window of its file at a time (no copy out of
//! the page cache; a truncation under the map is caught by [`super::sigbus`]) and falls back to
//! `pread` into one bounded buffer where mapping is impossible, so memory stays bounded whatever
//! the model size. Files are opened without following links and checked before and after
//! reading, so a file changing underneath is an error, not a silently wrong digest.

use super::schedule;
use super::sha256ni::{self, Sha256Ni};
use super::sigbus::Guard;
use super::{walk::Entry, Error, HashAlgorithm, Progress};
use std::ffi::CString;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Bytes per read or map window: big enough to amortise syscalls and page-table work, small
/// enough that two workers stay far below the 64 MiB memory budget.
const WINDOW: usize = 8 << 20;
/// Items up to this size are read with `pread`, not mapped.
const SMALL_READ: u64 = 64 << 10;

/// One mapped window of a file (read-only, private); unmapped on drop.
struct Map(memmap2::Mmap);

impl Map {
    fn new(file: &File, offset: u64, len: usize) -> Option<Map> {
        // SAFETY: a read-only private mapping of a file we hold open, read only through
        // `bytes()` while `self` lives; a truncation under the map raises SIGBUS, which the
        // caller's `sigbus::Guard` turns into an error for this window.
        // No MAP_POPULATE: on this kernel populating 2048 pages up front costs more system time
        // than letting fault-around map the page cache as it is read.
        let m = unsafe {
            memmap2::MmapOptions::new()
                .offset(offset)
                .len(len)
                .map_copy_read_only(file)
        }
        .ok()?;
        let _ = m.advise(memmap2::Advice::Sequential);
        Some(Map(m))
    }

    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

fn page_size() -> u64 {
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

/// A byte range of one entry to hash into one digest.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Item {
    pub entry: usize,
    pub start: u64,
    pub end: u64,
}

#[allow(clippy::large_enum_variant)] // one per worker item; boxing the SHA-256 state buys nothing
enum Hasher {
    Sha256(sha2::Sha256),
    Blake2b(Box<blake2::Blake2b512>),
    Blake3(Box<blake3::Hasher>),
}

impl Hasher {
    fn new(alg: HashAlgorithm) -> Self {
        match alg {
            HashAlgorithm::Sha256 => {
                use sha2::Digest;
                Hasher::Sha256(sha2::Sha256::new())
            }
            HashAlgorithm::Blake2b => {
                use blake2::Digest;
                Hasher::Blake2b(Box::new(blake2::Blake2b512::new()))
            }
            HashAlgorithm::Blake3 => Hasher::Blake3(Box::new(blake3::Hasher::new())),
        }
    }

    fn update(&mut self, data: &[u8], parallel: bool) {
        match self {
            Hasher::Sha256(c) => sha2::Digest::update(c, data),
            Hasher::Blake2b(h) => blake2::Digest::update(h.as_mut(), data),
            // BLAKE3 is a tree hash: one big file can use every core.
            Hasher::Blake3(h) if parallel => {
                h.update_rayon(data);
            }
            Hasher::Blake3(h) => {
                h.update(data);
            }
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha256(c) => sha2::Digest::finalize(c).to_vec(),
            Hasher::Blake2b(h) => blake2::Digest::finalize(*h).to_vec(),
            Hasher::Blake3(h) => h.finalize().as_bytes().to_vec(),
        }
    }
}

fn open_checked(e: &Entry) -> Result<(File, std::fs::Metadata), Error> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        // Never follow a link swapped in after the walk, never block on a FIFO swapped in.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&e.open_path)
        .map_err(|err| {
            if err.raw_os_error() == Some(libc::ELOOP) {
                Error::Changed {
                    path: e.open_path.clone(),
                    what: "replaced by a symbolic link",
                }
            } else {
                Error::io(&e.open_path, err)
            }
        })?;
    let meta = file
        .metadata()
        .map_err(|err| Error::io(&e.open_path, err))?;
    if !meta.is_file() || meta.dev() != e.dev || meta.ino() != e.ino {
        return Err(Error::Changed {
            path: e.open_path.clone(),
            what: "replaced by another file",
        });
    }
    if meta.len() != e.size {
        return Err(Error::Changed {
            path: e.open_path.clone(),
            what: "size differs from when the tree was walked",
        });
    }
    Ok((file, meta))
}

/// Sequential windows over one item's byte range: mapped (zero-copy) where possible, read into
/// a bounded buffer otherwise, with the file checked for changes around the whole read.
struct Reader<'e> {
    e: &'e Entry,
    file: File,
    before: std::fs::Metadata,
    cpath: Option<CString>,
    page: u64,
    pos: u64,
    end: u64,
    buf: Vec<u8>,
    #[cfg(debug_assertions)]
    test_truncate: bool,
}

impl<'e> Reader<'e> {
    fn open(e: &'e Entry, item: Item) -> Result<Reader<'e>, Error> {
        let (file, before) = open_checked(e)?;
        // MLSIGN_NO_MMAP=1 reads with pread only (file systems where mapping misbehaves).
        // Small items are read too: for them a map, its fault and the unmap (a TLB shootdown
        // on every other hashing thread) cost several times one pread.
        static NO_MMAP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let no_mmap =
            *NO_MMAP.get_or_init(|| std::env::var_os("MLSIGN_NO_MMAP").is_some_and(|v| v != "0"));
        let cpath = (!no_mmap && item.end - item.start > SMALL_READ)
            .then(|| CString::new(e.open_path.as_os_str().as_bytes()).ok())
            .flatten();
        Ok(Reader {
            e,
            file,
            before,
            cpath,
            page: page_size(),
            pos: item.start,
            end: item.end,
            buf: Vec::new(),
            #[cfg(debug_assertions)]
            test_truncate: std::env::var_os("MLSIGN_TEST_TRUNCATE_WHILE_HASHING").is_some(),
        })
    }

    fn done(&self) -> bool {
        self.pos >= self.end
    }

    /// Give the next window to `f` (an empty slice once done); returns what `f` returned.
    fn next<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Result<R, Error> {
        if self.done() {
            return Ok(f(&[]));
        }
        let aligned = self.pos - self.pos % self.page;
        let len = (self.end - aligned).min(WINDOW as u64) as usize;
        let mapped = self.cpath.as_deref().and_then(|p| {
            let m = Map::new(&self.file, aligned, len)?;
            let g = Guard::register(m.0.as_ptr() as usize, m.0.len(), p)?;
            Some((m, g))
        });
        if let Some((map, _guard)) = mapped {
            #[cfg(debug_assertions)]
            if std::mem::take(&mut self.test_truncate) {
                // Test hook (debug builds only): simulate a writer truncating the file.
                if let Some(p) = &self.cpath {
                    unsafe { libc::truncate(p.as_ptr(), 0) };
                }
            }
            let data = &map.bytes()[(self.pos - aligned) as usize..];
            self.pos += data.len() as u64;
            return Ok(f(data));
        }
        let want = ((self.end - self.pos) as usize).min(WINDOW);
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        loop {
            match self.file.read_at(&mut self.buf[..want], self.pos) {
                Ok(0) => {
                    return Err(Error::Changed {
                        path: self.e.open_path.clone(),
                        what: "truncated while reading",
                    })
                }
                Ok(n) => {
                    self.pos += n as u64;
                    return Ok(f(&self.buf[..n]));
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(Error::io(&self.e.open_path, err)),
            }
        }
    }

    /// Check that the file did not change while it was read.
    fn close(self) -> Result<(), Error> {
        let after = self
            .file
            .metadata()
            .map_err(|err| Error::io(&self.e.open_path, err))?;
        if after.len() != self.before.len()
            || after.mtime() != self.before.mtime()
            || after.mtime_nsec() != self.before.mtime_nsec()
        {
            return Err(Error::Changed {
                path: self.e.open_path.clone(),
                what: "modified while reading",
            });
        }
        Ok(())
    }
}

fn hash_item(
    e: &Entry,
    item: Item,
    alg: HashAlgorithm,
    parallel: bool,
    progress: &dyn Progress,
    abort: &AtomicBool,
) -> Result<Vec<u8>, Error> {
    let mut r = Reader::open(e, item)?;
    let mut h = Hasher::new(alg);
    while !r.done() {
        if abort.load(Ordering::Relaxed) {
            return Ok(Vec::new());
        }
        let n = r.next(|d| {
            h.update(d, parallel);
            d.len()
        })?;
        progress.advance(n as u64);
    }
    r.close()?;
    Ok(h.finish())
}

/// Two SHA-256 items in lock-step on the SHA extensions (see [`Sha256Ni`]).
fn hash_pair(
    (ea, ia): (&Entry, Item),
    (eb, ib): (&Entry, Item),
    progress: &dyn Progress,
    abort: &AtomicBool,
) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let mut ra = Reader::open(ea, ia)?;
    let mut rb = Reader::open(eb, ib)?;
    let (mut ha, mut hb) = (Sha256Ni::new(), Sha256Ni::new());
    while !(ra.done() && rb.done()) {
        if abort.load(Ordering::Relaxed) {
            return Ok((Vec::new(), Vec::new()));
        }
        let n = ra.next(|da| {
            rb.next(|db| {
                Sha256Ni::update2(&mut ha, da, &mut hb, db);
                da.len() + db.len()
            })
        })??;
        progress.advance(n as u64);
    }
    ra.close()?;
    rb.close()?;
    Ok((ha.finish().to_vec(), hb.finish().to_vec()))
}

/// Hash every item; returns digests in item order. Stops early on the first error.
pub(crate) fn hash_items(
    entries: &[Entry],
    items: &[Item],
    alg: HashAlgorithm,
    threads: usize,
    progress: &dyn Progress,
) -> Result<Vec<Vec<u8>>, Error> {
    let abort = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Vec<u8>>>> = Mutex::new(vec![None; items.len()]);
    let first_err: Mutex<Option<Error>> = Mutex::new(None);
    let workers = threads.min(items.len()).max(1);
    // Fewer items than cores (one big file): let BLAKE3 spread each item over the cores.
    let parallel = alg == HashAlgorithm::Blake3 && items.len() < threads && threads > 1;

    // Two SHA-256 streams per worker keep the SHA unit busy (MLSIGN_NO_SHANI=1 turns it off);
    // the planner decides which items pair up and which run alone (see `schedule`).
    let pairs = alg == HashAlgorithm::Sha256
        && items.len() > 1
        && sha256ni::available()
        && std::env::var_os("MLSIGN_NO_SHANI").is_none_or(|v| v == "0");
    let sizes: Vec<u64> = items.iter().map(|it| it.end - it.start).collect();
    let jobs = schedule::plan(&sizes, workers, pairs);
    drop(sizes);
    let next = AtomicUsize::new(0);
    let store =
        |i: usize, d: Vec<u8>| results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(d);
    let fail = |e: Error| {
        abort.store(true, Ordering::Relaxed);
        first_err
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(e);
    };

    let work = || loop {
        if abort.load(Ordering::Relaxed) {
            return;
        }
        let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)).copied() else {
            return;
        };
        let (i, a) = (job.a, items[job.a]);
        let ea = &entries[a.entry];
        if let Some(j) = job.b {
            let (b, eb) = (items[j], &entries[items[j].entry]);
            match hash_pair((ea, a), (eb, b), progress, &abort) {
                Ok((da, db)) => {
                    store(i, da);
                    store(j, db);
                }
                Err(e) => return fail(e),
            }
            continue;
        }
        match hash_item(ea, a, alg, parallel, progress, &abort) {
            Ok(d) => store(i, d),
            Err(e) => return fail(e),
        }
    };

    std::thread::scope(|s| -> Result<(), Error> {
        let mut handles = Vec::new();
        for _ in 1..workers {
            handles.push(
                std::thread::Builder::new()
                    .name("mlsign-hash".into())
                    .spawn_scoped(s, work)
                    .map_err(Error::Threads)?,
            );
        }
        work();
        for h in handles {
            // A worker cannot panic on I/O; if it ever does, surface it rather than hide it.
            if let Err(p) = h.join() {
                std::panic::resume_unwind(p);
            }
        }
        Ok(())
    })?;

    if let Some(e) = first_err.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|d| {
            d.ok_or(Error::Threads(std::io::Error::other(
                "a hashing worker stopped early",
            )))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        for (alg, hex_abc) in [
            (HashAlgorithm::Sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            (HashAlgorithm::Blake3, "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"),
            (
                HashAlgorithm::Blake2b,
                "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d17d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923",
            ),
        ] {
            let mut h = Hasher::new(alg);
            h.update(b"a", false);
            h.update(b"bc", true);
            assert_eq!(hex::encode(h.finish()), hex_abc, "{alg}");
        }
    }
}
