//! The parallel hashing engine: a fixed pool of workers pulls files or shards (largest first)
//! from a shared queue; each worker owns one read buffer, so memory stays bounded whatever the
//! model size. Reads use `pread` on a descriptor opened without following links, and every file
//! is checked before and after reading so that a file changing underneath is an error, not a
//! silently wrong digest.

use super::{walk::Entry, Error, HashAlgorithm, Progress};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Bytes per read: big enough to amortise syscalls, small enough to stay in L2/L3 per core.
const BUF_SIZE: usize = 2 << 20;

/// A byte range of one entry to hash into one digest.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Item {
    pub entry: usize,
    pub start: u64,
    pub end: u64,
}

enum Hasher {
    Sha256(ring::digest::Context),
    Blake2b(Box<blake2::Blake2b512>),
    Blake3(Box<blake3::Hasher>),
}

impl Hasher {
    fn new(alg: HashAlgorithm) -> Self {
        match alg {
            HashAlgorithm::Sha256 => {
                Hasher::Sha256(ring::digest::Context::new(&ring::digest::SHA256))
            }
            HashAlgorithm::Blake2b => {
                use blake2::Digest;
                Hasher::Blake2b(Box::new(blake2::Blake2b512::new()))
            }
            HashAlgorithm::Blake3 => Hasher::Blake3(Box::new(blake3::Hasher::new())),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(c) => c.update(data),
            Hasher::Blake2b(h) => blake2::Digest::update(h.as_mut(), data),
            Hasher::Blake3(h) => {
                h.update(data);
            }
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha256(c) => c.finish().as_ref().to_vec(),
            Hasher::Blake2b(h) => blake2::Digest::finalize(*h).to_vec(),
            Hasher::Blake3(h) => h.finalize().as_bytes().to_vec(),
        }
    }
}

/// SHA-256 of a byte string (used for root digests and key hints).
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
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

fn hash_item(
    e: &Entry,
    item: Item,
    alg: HashAlgorithm,
    buf: &mut [u8],
    progress: &dyn Progress,
    abort: &AtomicBool,
) -> Result<Vec<u8>, Error> {
    let (file, before) = open_checked(e)?;
    #[cfg(target_os = "linux")]
    unsafe {
        // Advisory only; failure changes nothing.
        use std::os::fd::AsRawFd;
        libc::posix_fadvise(
            file.as_raw_fd(),
            item.start as libc::off_t,
            (item.end - item.start) as libc::off_t,
            libc::POSIX_FADV_SEQUENTIAL,
        );
    }
    let mut h = Hasher::new(alg);
    let mut pos = item.start;
    while pos < item.end {
        if abort.load(Ordering::Relaxed) {
            return Ok(Vec::new());
        }
        let want = ((item.end - pos) as usize).min(buf.len());
        let n = match file.read_at(&mut buf[..want], pos) {
            Ok(0) => {
                return Err(Error::Changed {
                    path: e.open_path.clone(),
                    what: "truncated while reading",
                })
            }
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(Error::io(&e.open_path, err)),
        };
        h.update(&buf[..n]);
        pos += n as u64;
        progress.advance(n as u64);
    }
    let after = file
        .metadata()
        .map_err(|err| Error::io(&e.open_path, err))?;
    if after.len() != before.len()
        || after.mtime() != before.mtime()
        || after.mtime_nsec() != before.mtime_nsec()
    {
        return Err(Error::Changed {
            path: e.open_path.clone(),
            what: "modified while reading",
        });
    }
    Ok(h.finish())
}

/// Hash every item; returns digests in item order. Stops early on the first error.
pub(crate) fn hash_items(
    entries: &[Entry],
    items: &[Item],
    alg: HashAlgorithm,
    threads: usize,
    progress: &dyn Progress,
) -> Result<Vec<Vec<u8>>, Error> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    // Largest first keeps the tail short when sizes are uneven.
    order.sort_by_key(|&i| std::cmp::Reverse(items[i].end - items[i].start));
    let next = AtomicUsize::new(0);
    let abort = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Vec<u8>>>> = Mutex::new(vec![None; items.len()]);
    let first_err: Mutex<Option<Error>> = Mutex::new(None);
    let workers = threads.min(items.len()).max(1);

    let work = || {
        let mut buf = vec![0u8; BUF_SIZE];
        loop {
            if abort.load(Ordering::Relaxed) {
                return;
            }
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(&i) = order.get(k) else { return };
            let item = items[i];
            match hash_item(&entries[item.entry], item, alg, &mut buf, progress, &abort) {
                Ok(d) => results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(d),
                Err(e) => {
                    abort.store(true, Ordering::Relaxed);
                    first_err
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_or_insert(e);
                    return;
                }
            }
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
            h.update(b"a");
            h.update(b"bc");
            assert_eq!(hex::encode(h.finish()), hex_abc, "{alg}");
        }
    }
}
