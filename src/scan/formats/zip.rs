//! A ZIP reader that reads archives the way their loaders do, and *every* way they might.
//!
//! PyTorch (miniz) trusts the recorded central-directory offset; Python's `zipfile` (numpy.load,
//! joblib, Keras) puts the directory right before the end record and shifts every offset by the
//! difference ("concatenation"). Both take the *last* end record, even when its comment length
//! runs past the end of the file, and both use a ZIP64 end record whenever one is present (miniz
//! at the locator's offset, zipfile right before the locator). [`read_archives`] returns each
//! distinct reading; when there are several, the bytes mean different archives to different
//! loaders, and that ambiguity is itself an anomaly ([`Anomaly::Ambiguous`]).
//!
//! Like miniz, a reading tolerates bad CRCs, odd flag bits, local/central name mismatches and
//! prepended bytes, and *reports* each as an anomaly instead of refusing the file (a scanner that
//! refuses what torch loads is a bypass). All offset arithmetic on header fields is checked; each
//! way a hostile header can be wrong is its own [`ZipError`] variant.

use super::source::Source;
use std::io::Read;

#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    pub method: u16,
    pub flags: u16,
    pub crc: u32,
    pub csize: u64,
    pub usize: u64,
    /// Local header offset, already corrected for prepended bytes.
    pub local_offset: u64,
}

/// A parsed central directory: one reading of the file.
#[derive(Clone, Debug)]
pub struct Archive {
    pub entries: Vec<Entry>,
    /// Bytes before the archive proper (offsets were corrected by this much).
    pub prepended: u64,
    /// Human-readable anomalies found while reading the directory.
    pub anomalies: Vec<(Anomaly, String)>,
    /// Which loaders read the file this way.
    pub reading: &'static str,
    /// Where the central directory starts in the file.
    pub cd_start: u64,
}

/// Anomalies found while reading, with an explanation each.
pub type Anomalies = Vec<(Anomaly, String)>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anomaly {
    Prepended,
    Duplicate,
    Flags,
    NameMismatch,
    BadCrc,
    /// Loaders disagree on what the archive holds (several end records or directories, entry
    /// count against directory size).
    Ambiguous,
}

#[derive(Debug, thiserror::Error)]
pub enum ZipError {
    #[error("no end-of-central-directory record: not a readable ZIP archive")]
    NoEocd,
    #[error("ZIP64 end record missing at offset {0} (the end record's fields are saturated)")]
    NoZip64Record(u64),
    #[error("{total} entries / {size}-byte central directory exceed the limits ({MAX_ENTRIES} entries, {MAX_CD} bytes)")]
    DirectoryTooLarge { total: u64, size: u64 },
    #[error(
        "central directory of {size} bytes does not fit before its end record at offset {end}"
    )]
    DirectoryTooBig { size: u64, end: u64 },
    #[error(
        "central directory offset {offset} + size {size} is past the end of the file ({len} bytes)"
    )]
    DirectoryOutOfBounds { offset: u64, size: u64, len: u64 },
    #[error("no central directory at offset {0} (neither where it is recorded nor before the end record)")]
    NoDirectory(u64),
    #[error("central directory entry {index}: bad header signature at offset {offset}")]
    BadCentralHeader { index: u64, offset: u64 },
    #[error("central directory entry {index} at offset {offset} runs past the directory")]
    EntryPastDirectory { index: u64, offset: u64 },
    #[error("member {name}: local header offset {offset} plus {shift} prepended bytes overflows")]
    OffsetOverflow {
        name: String,
        offset: u64,
        shift: u64,
    },
    #[error("member {name}: no local header at offset {offset}")]
    NoLocalHeader { name: String, offset: u64 },
    #[error("member {name}: data at offset {offset} + {size} bytes is past the end of the file")]
    DataPastEnd {
        name: String,
        offset: u64,
        size: u64,
    },
    #[error("member {name}: {size} bytes uncompressed exceed the limit of {max}")]
    TooLarge { name: String, size: u64, max: u64 },
    #[error("member {name}: inflates past the limit of {max} bytes")]
    InflatesPastLimit { name: String, max: u64 },
    #[error("member {name}: DEFLATE data is corrupt: {msg}")]
    Inflate { name: String, msg: String },
    #[error("member {name}: compression method {method} is not supported")]
    Method { name: String, method: u16 },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

const MAX_ENTRIES: u64 = 1_000_000;
const MAX_CD: u64 = 512 << 20;
const EOCD: [u8; 4] = [0x50, 0x4b, 0x05, 0x06];
const CDH: [u8; 4] = [0x50, 0x4b, 0x01, 0x02];
const Z64_LOC: [u8; 4] = [0x50, 0x4b, 0x06, 0x07];
const Z64_REC: [u8; 4] = [0x50, 0x4b, 0x06, 0x06];

/// End records loaders may choose: the last signature whose 22-byte record fits (miniz and
/// zipfile), and the last whose comment also fits (strict readers). Positions, deduplicated.
pub fn eocd_candidates(src: &dyn Source) -> Result<Vec<u64>, std::io::Error> {
    let len = src.len();
    if len < 22 {
        return Ok(vec![]);
    }
    let tail_len = len.min(22 + 65535);
    let start = len - tail_len;
    let tail = src.read_vec(start, tail_len, tail_len)?;
    let mut out: Vec<u64> = vec![];
    let mut loose = false;
    let mut i = tail.len() - 22;
    loop {
        if tail[i..i + 4] == EOCD {
            if !loose {
                out.push(start + i as u64);
                loose = true;
            }
            let comment = u16_at(&tail, i + 20) as usize;
            if i + 22 + comment <= tail.len() {
                if !out.contains(&(start + i as u64)) {
                    out.push(start + i as u64);
                }
                return Ok(out);
            }
        }
        if i == 0 {
            return Ok(out);
        }
        i -= 1;
    }
}

/// Find the end-of-central-directory record loaders use (position and its 22 bytes), if any.
pub fn find_eocd(src: &dyn Source) -> Result<Option<(u64, Vec<u8>)>, std::io::Error> {
    match eocd_candidates(src)?.first() {
        Some(&p) => Ok(Some((p, src.read_vec(p, 22, 22)?))),
        None => Ok(None),
    }
}

/// Directory totals from an end record (ZIP64 applied).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Totals {
    total: u64,
    cd_size: u64,
    cd_off: u64,
}

/// The two ways of placing the directory.
#[derive(Clone, Copy)]
enum Placement {
    /// miniz / torch: ZIP64 record at the locator's offset, directory at the recorded offset.
    Recorded,
    /// Python's zipfile: ZIP64 record right before the locator, directory right before the end
    /// records, every offset shifted by the difference.
    EndRelative,
}

fn totals(src: &dyn Source, eocd_pos: u64, how: Placement) -> Result<(Totals, u64), ZipError> {
    let eocd = src.read_vec(eocd_pos, 22, 22)?;
    let mut t = Totals {
        total: u16_at(&eocd, 10) as u64,
        cd_size: u32_at(&eocd, 12) as u64,
        cd_off: u32_at(&eocd, 16) as u64,
    };
    let saturated = t.total == 0xffff || t.cd_size == 0xffff_ffff || t.cd_off == 0xffff_ffff;
    // Where the directory must end for an end-relative reading.
    let mut cd_end = eocd_pos;
    if eocd_pos >= 20 {
        let loc = src.read_vec(eocd_pos - 20, 20, 20)?;
        if loc[..4] == Z64_LOC {
            let z64_pos = match how {
                Placement::Recorded => Some(u64_at(&loc, 8)),
                Placement::EndRelative => eocd_pos.checked_sub(20 + 56),
            };
            let rec = z64_pos.and_then(|p| {
                src.read_vec(p, 56, 56)
                    .ok()
                    .filter(|z| z[..4] == Z64_REC)
                    .map(|z| (p, z))
            });
            match rec {
                Some((p, z)) => {
                    t = Totals {
                        total: u64_at(&z, 32),
                        cd_size: u64_at(&z, 40),
                        cd_off: u64_at(&z, 48),
                    };
                    cd_end = match how {
                        Placement::Recorded => p,
                        Placement::EndRelative => eocd_pos - 76,
                    };
                }
                None if saturated => {
                    return Err(ZipError::NoZip64Record(z64_pos.unwrap_or(0)));
                }
                None => cd_end = eocd_pos - 20,
            }
        }
    }
    if t.total > MAX_ENTRIES || t.cd_size > MAX_CD {
        return Err(ZipError::DirectoryTooLarge {
            total: t.total,
            size: t.cd_size,
        });
    }
    Ok((t, cd_end))
}

/// Read one interpretation of the archive.
fn read_with(src: &dyn Source, eocd_pos: u64, how: Placement) -> Result<Archive, ZipError> {
    let (t, cd_end) = totals(src, eocd_pos, how)?;
    let (cd_start, shift, reading) = match how {
        Placement::Recorded => (t.cd_off, 0, "recorded offsets (PyTorch/miniz)"),
        Placement::EndRelative => {
            let start = cd_end
                .checked_sub(t.cd_size)
                .ok_or(ZipError::DirectoryTooBig {
                    size: t.cd_size,
                    end: cd_end,
                })?;
            // zipfile refuses a negative shift ("Bad offset for central directory").
            let shift = start
                .checked_sub(t.cd_off)
                .ok_or(ZipError::DirectoryTooBig {
                    size: t.cd_size,
                    end: cd_end,
                })?;
            (
                start,
                shift,
                "end-relative offsets (Python zipfile: numpy, joblib, Keras)",
            )
        }
    };
    if cd_start
        .checked_add(t.cd_size)
        .is_none_or(|e| e > src.len())
    {
        return Err(ZipError::DirectoryOutOfBounds {
            offset: cd_start,
            size: t.cd_size,
            len: src.len(),
        });
    }
    let cd = src.read_vec(cd_start, t.cd_size, MAX_CD)?;
    if t.total > 0 && !cd.starts_with(&CDH) {
        return Err(ZipError::NoDirectory(cd_start));
    }
    let mut anomalies = vec![];
    if shift > 0 {
        anomalies.push((
            Anomaly::Prepended,
            format!("{shift} byte(s) precede the ZIP archive (offsets recorded without them)"),
        ));
    }
    if let Placement::Recorded = how {
        if let Some(gap) = cd_end.checked_sub(cd_start.saturating_add(t.cd_size)) {
            if gap > 0 {
                anomalies.push((
                    Anomaly::Prepended,
                    format!(
                        "{gap} byte(s) of data between the central directory and the end record"
                    ),
                ));
            }
        }
    }
    let mut entries = Vec::with_capacity(t.total.min(65536) as usize);
    let mut p = 0usize;
    let mut seen = std::collections::HashSet::new();
    let mut i = 0u64;
    // zipfile reads entries until the directory size is used up; miniz reads `total` entries.
    // Read the union: both must see the same list, or that is an anomaly below.
    while p < cd.len() || i < t.total {
        let offset = cd_start.saturating_add(p as u64);
        if p + 46 > cd.len() || cd[p..p + 4] != CDH {
            if i >= t.total {
                break; // trailing bytes after the last entry miniz reads: zipfile would error
            }
            return Err(ZipError::BadCentralHeader { index: i, offset });
        }
        let flags = u16_at(&cd, p + 8);
        let method = u16_at(&cd, p + 10);
        let crc = u32_at(&cd, p + 16);
        let mut csize = u32_at(&cd, p + 20) as u64;
        let mut usize_ = u32_at(&cd, p + 24) as u64;
        let nlen = u16_at(&cd, p + 28) as usize;
        let elen = u16_at(&cd, p + 30) as usize;
        let clen = u16_at(&cd, p + 32) as usize;
        let mut local = u32_at(&cd, p + 42) as u64;
        let end = p + 46 + nlen + elen + clen;
        if end > cd.len() {
            return Err(ZipError::EntryPastDirectory { index: i, offset });
        }
        let name = String::from_utf8_lossy(&cd[p + 46..p + 46 + nlen]).into_owned();
        // ZIP64 extra field: only the fields whose 32-bit value is saturated, in order.
        let mut e = p + 46 + nlen;
        let eend = e + elen;
        while e + 4 <= eend {
            let id = u16_at(&cd, e);
            let sz = u16_at(&cd, e + 2) as usize;
            let body = e + 4;
            if body + sz > eend {
                break;
            }
            if id == 1 {
                let mut q = body;
                for field in [&mut usize_, &mut csize, &mut local] {
                    if *field == 0xffff_ffff && q + 8 <= body + sz {
                        *field = u64_at(&cd, q);
                        q += 8;
                    }
                }
            }
            e = body + sz;
        }
        if !seen.insert(name.clone()) {
            anomalies.push((
                Anomaly::Duplicate,
                format!("member {name} appears more than once"),
            ));
        }
        let odd = flags & !(0x0002 | 0x0004 | 0x0008 | 0x0800);
        if odd != 0 {
            anomalies.push((
                Anomaly::Flags,
                format!("member {name} has general-purpose flag bits 0x{flags:04x}{} (Python's zipfile refuses it; torch loads it)",
                    if flags & 1 != 0 { ", marked encrypted" } else { "" }),
            ));
        }
        let local_offset = local
            .checked_add(shift)
            .ok_or_else(|| ZipError::OffsetOverflow {
                name: name.clone(),
                offset: local,
                shift,
            })?;
        entries.push(Entry {
            name,
            method,
            flags,
            crc,
            csize,
            usize: usize_,
            local_offset,
        });
        p = end;
        i += 1;
    }
    if i != t.total {
        anomalies.push((
            Anomaly::Ambiguous,
            format!(
                "the central directory holds {i} entries but the end record says {}: miniz reads {}, Python's zipfile reads all {i}",
                t.total,
                t.total.min(i)
            ),
        ));
    }
    Ok(Archive {
        entries,
        prepended: shift,
        anomalies,
        reading,
        cd_start,
    })
}

/// Every distinct reading loaders could choose (at least one, or the first error). With more
/// than one, each carries an [`Anomaly::Ambiguous`] naming the others.
pub fn read_archives(src: &dyn Source) -> Result<Vec<Archive>, ZipError> {
    let cands = eocd_candidates(src)?;
    if cands.is_empty() {
        return Err(ZipError::NoEocd);
    }
    let mut out: Vec<Archive> = vec![];
    let mut first_err = None;
    for (k, &pos) in cands.iter().enumerate() {
        for how in [Placement::Recorded, Placement::EndRelative] {
            match read_with(src, pos, how) {
                Ok(mut a) => {
                    if k > 0 {
                        a.reading =
                            "the last end record whose comment fits the file (strict readers)";
                    }
                    let same = out.iter().any(|b| {
                        b.entries.len() == a.entries.len()
                            && b.entries
                                .iter()
                                .zip(&a.entries)
                                .all(|(x, y)| x.name == y.name && x.local_offset == y.local_offset)
                    });
                    if !same {
                        out.push(a);
                    }
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
    }
    if out.len() > 1 {
        let desc: Vec<String> = out
            .iter()
            .map(|a| {
                format!(
                    "{} entries at directory offset {} via {}",
                    a.entries.len(),
                    a.cd_start,
                    a.reading
                )
            })
            .collect();
        if cands.len() > 1 {
            let msg = format!(
                "several end-of-central-directory records: loaders take the last one (offset {}), whose comment length runs past the end of the file",
                cands[0]
            );
            for a in &mut out {
                a.anomalies.push((Anomaly::Ambiguous, msg.clone()));
            }
        }
        let msg = format!(
            "loaders read different archives from these bytes: {}; every reading is scanned",
            desc.join("; ")
        );
        for a in &mut out {
            a.anomalies.push((Anomaly::Ambiguous, msg.clone()));
        }
    }
    if out.is_empty() {
        return Err(first_err.unwrap_or(ZipError::NoEocd));
    }
    Ok(out)
}

/// Read the central directory the way PyTorch does (or, if it cannot, the first reading any
/// loader can): see [`read_archives`] for all of them.
pub fn read_archive(src: &dyn Source) -> Result<Archive, ZipError> {
    read_archives(src).map(|mut v| v.swap_remove(0))
}

/// Positioned reads from a [`Source`] as a [`Read`] stream.
struct SourceReader<'a> {
    src: &'a dyn Source,
    pos: u64,
    end: u64,
}

impl Read for SourceReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.end - self.pos).min(buf.len() as u64).min(1 << 16) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.src.read_at(self.pos, &mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// A member's decompressed bytes as a stream, with the CRC computed on the way.
pub struct MemberReader<'a> {
    inner: Box<dyn Read + 'a>,
    crc: crc32fast::Hasher,
    read: u64,
    name: String,
    method: u16,
    /// Where a stored member's bytes lie in the source (read in place, never copied).
    pub stored_at: Option<u64>,
}

impl Read for MemberReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

impl MemberReader<'_> {
    /// Bytes produced so far.
    pub fn produced(&self) -> u64 {
        self.read
    }

    /// Read up to `max` more bytes into `out`; `Ok(true)` when the member ended within them.
    /// When it did not, `out` holds one byte more than `max` (the probe that showed more data
    /// follows; it is part of the stream, so it is kept, never dropped).
    pub fn read_up_to(&mut self, out: &mut Vec<u8>, max: u64) -> Result<bool, ZipError> {
        let before = out.len();
        let r = self.by_ref().take(max.saturating_add(1)).read_to_end(out);
        r.map_err(|err| self.err(err))?;
        Ok((out.len() - before) as u64 <= max)
    }

    /// Read and discard the rest (for the CRC), refusing more than `max` further bytes.
    pub fn drain(&mut self, max: u64) -> Result<(), ZipError> {
        let r = std::io::copy(
            &mut self.by_ref().take(max.saturating_add(1)),
            &mut std::io::sink(),
        );
        let n = r.map_err(|err| self.err(err))?;
        if n > max {
            return Err(ZipError::InflatesPastLimit {
                name: self.name.clone(),
                max: self.read.saturating_sub(n).saturating_add(max),
            });
        }
        Ok(())
    }

    fn err(&self, err: std::io::Error) -> ZipError {
        if self.method == 8 && err.kind() != std::io::ErrorKind::UnexpectedEof {
            ZipError::Inflate {
                name: self.name.clone(),
                msg: err.to_string(),
            }
        } else {
            ZipError::Io(err)
        }
    }

    /// The CRC anomaly, if the whole member was read and its CRC differs.
    pub fn finish(self, e: &Entry) -> Option<(Anomaly, String)> {
        let crc = self.crc.finalize();
        (crc != e.crc).then(|| (Anomaly::BadCrc, format!("CRC-32 is 0x{crc:08x} but the directory says 0x{:08x} (Python's zipfile refuses it; torch does not check)", e.crc)))
    }
}

/// Open a member for streaming. Returns the reader and the local-header anomalies (name
/// mismatch, stored size mismatch). Nothing is decompressed yet.
pub fn open_member<'a>(
    src: &'a dyn Source,
    e: &Entry,
    max: u64,
) -> Result<(MemberReader<'a>, Anomalies), ZipError> {
    let mut anomalies = vec![];
    let no_local = || ZipError::NoLocalHeader {
        name: e.name.clone(),
        offset: e.local_offset,
    };
    let lh = src
        .read_vec(e.local_offset, 30, 30)
        .map_err(|_| no_local())?;
    if lh[..4] != [0x50, 0x4b, 0x03, 0x04] {
        return Err(no_local());
    }
    let nlen = u16_at(&lh, 26) as u64;
    let elen = u16_at(&lh, 28) as u64;
    let name_off = e.local_offset.checked_add(30).ok_or_else(no_local)?;
    let lname = src
        .read_vec(name_off, nlen, 65535)
        .map_err(|_| no_local())?;
    let lname = String::from_utf8_lossy(&lname);
    if lname != e.name {
        anomalies.push((
            Anomaly::NameMismatch,
            format!(
                "local header names {lname:?} but the central directory names {:?}",
                e.name
            ),
        ));
    }
    if e.usize > max {
        return Err(ZipError::TooLarge {
            name: e.name.clone(),
            size: e.usize,
            max,
        });
    }
    let data_off = name_off + nlen + elen; // both ≤ 65535: no overflow past the checked add
                                           // Stored members are read for their recorded uncompressed size (miniz and zipfile read the
                                           // compressed size; a difference is reported).
    let size = if e.method == 0 { e.usize } else { e.csize };
    let end = data_off
        .checked_add(size)
        .filter(|x| *x <= src.len())
        .ok_or_else(|| ZipError::DataPastEnd {
            name: e.name.clone(),
            offset: data_off,
            size,
        })?;
    let raw = SourceReader {
        src,
        pos: data_off,
        end,
    };
    let inner: Box<dyn Read + 'a> = match e.method {
        0 => {
            if e.csize != e.usize {
                anomalies.push((
                    Anomaly::BadCrc,
                    format!(
                        "stored member sizes differ (compressed {}, uncompressed {})",
                        e.csize, e.usize
                    ),
                ));
            }
            Box::new(raw)
        }
        8 => Box::new(flate2::read::DeflateDecoder::new(
            std::io::BufReader::with_capacity(1 << 16, raw),
        )),
        m => {
            return Err(ZipError::Method {
                name: e.name.clone(),
                method: m,
            })
        }
    };
    Ok((
        MemberReader {
            inner,
            crc: crc32fast::Hasher::new(),
            read: 0,
            name: e.name.clone(),
            method: e.method,
            stored_at: (e.method == 0).then_some(data_off),
        },
        anomalies,
    ))
}

/// Read and decompress one member (at most `max` bytes). Returns the data and anomalies
/// (name mismatch, CRC).
pub fn read_member(
    src: &dyn Source,
    e: &Entry,
    max: u64,
) -> Result<(Vec<u8>, Anomalies), ZipError> {
    let (mut r, mut anomalies) = open_member(src, e, max)?;
    let mut out = Vec::with_capacity(e.usize.min(max).min(1 << 26) as usize);
    if !r.read_up_to(&mut out, max)? {
        return Err(ZipError::InflatesPastLimit {
            name: e.name.clone(),
            max,
        });
    }
    anomalies.extend(r.finish(e));
    Ok((out, anomalies))
}

/// A bounded plain ZIP writer for tests and fuzz seeds: (name, data) members, stored.
#[cfg(test)]
pub fn build_stored(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = vec![];
    let mut cd = vec![];
    for (name, data) in members {
        let off = out.len() as u32;
        let crc = crc32fast::hash(data);
        out.extend_from_slice(&[0x50, 0x4b, 3, 4, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        cd.extend_from_slice(&[0x50, 0x4b, 1, 2, 20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        cd.extend_from_slice(&crc.to_le_bytes());
        cd.extend_from_slice(&(data.len() as u32).to_le_bytes());
        cd.extend_from_slice(&(data.len() as u32).to_le_bytes());
        cd.extend_from_slice(&(name.len() as u16).to_le_bytes());
        cd.extend_from_slice(&[0; 12]);
        cd.extend_from_slice(&off.to_le_bytes());
        cd.extend_from_slice(name.as_bytes());
    }
    let cd_off = out.len() as u32;
    out.extend_from_slice(&cd);
    out.extend_from_slice(&[0x50, 0x4b, 5, 6, 0, 0, 0, 0]);
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(cd.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_off.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stored_and_reports_prepended_and_crc() {
        let z = build_stored(&[("a/data.pkl", b"\x80\x02N."), ("a/x", b"hello")]);
        let a = read_archive(&&z[..]).unwrap();
        assert_eq!(a.entries.len(), 2);
        assert_eq!(a.prepended, 0);
        let (d, an) = read_member(&&z[..], &a.entries[1], 100).unwrap();
        assert_eq!(d, b"hello");
        assert!(an.is_empty());

        let mut junk = b"JUNKJUNK".to_vec();
        junk.extend_from_slice(&z);
        let a = read_archive(&&junk[..]).unwrap();
        assert_eq!(a.prepended, 8);
        assert_eq!(
            read_member(&&junk[..], &a.entries[1], 100).unwrap().0,
            b"hello"
        );

        let mut bad = z.clone();
        let pos = bad.windows(5).position(|w| w == b"hello").unwrap();
        bad[pos] = b'j';
        let a = read_archive(&&bad[..]).unwrap();
        let (_, an) = read_member(&&bad[..], &a.entries[1], 100).unwrap();
        assert_eq!(an[0].0, Anomaly::BadCrc);
    }

    /// A ZIP64 local offset of u64::MAX plus prepended bytes must be an error, not an overflow.
    #[test]
    fn zip64_offset_overflow_is_its_own_error() {
        let name = b"x";
        let mut cd = vec![0x50, 0x4b, 1, 2, 20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        cd.extend_from_slice(&0u32.to_le_bytes()); // crc
        cd.extend_from_slice(&1u32.to_le_bytes());
        cd.extend_from_slice(&1u32.to_le_bytes());
        cd.extend_from_slice(&(name.len() as u16).to_le_bytes());
        cd.extend_from_slice(&12u16.to_le_bytes()); // extra length
        cd.extend_from_slice(&[0; 10]); // comment length, disk, attributes
        cd.extend_from_slice(&0xffff_ffffu32.to_le_bytes()); // local offset: in the ZIP64 extra
        cd.extend_from_slice(name);
        cd.extend_from_slice(&1u16.to_le_bytes());
        cd.extend_from_slice(&8u16.to_le_bytes());
        cd.extend_from_slice(&u64::MAX.to_le_bytes());
        let mut z = b"JUNK".to_vec(); // prepended: the end-relative reading shifts offsets by 4
        z.extend_from_slice(&cd);
        z.extend_from_slice(&[0x50, 0x4b, 5, 6, 0, 0, 0, 0, 1, 0, 1, 0]);
        z.extend_from_slice(&(cd.len() as u32).to_le_bytes());
        z.extend_from_slice(&0u32.to_le_bytes());
        z.extend_from_slice(&0u16.to_le_bytes());
        let pos = (z.len() - 22) as u64;
        assert!(matches!(
            read_with(&&z[..], pos, Placement::EndRelative),
            Err(ZipError::OffsetOverflow {
                offset: u64::MAX,
                shift: 4,
                ..
            })
        ));
        assert!(read_archives(&&z[..]).is_err());
    }

    #[test]
    fn readings_agree_on_plain_archives() {
        let z = build_stored(&[("a/data.pkl", b"\x80\x02N."), ("a/x", b"hello")]);
        let all = read_archives(&&z[..]).unwrap();
        assert_eq!(all.len(), 1);
        assert!(all[0].anomalies.is_empty(), "{:?}", all[0].anomalies);
        // A stored member streams with its CRC checked.
        let zs = &z[..];
        let (mut r, an) = open_member(&zs, &all[0].entries[1], 100).unwrap();
        assert!(an.is_empty());
        let mut out = vec![];
        assert!(r.read_up_to(&mut out, 100).unwrap());
        assert_eq!(out, b"hello");
        assert!(r.finish(&all[0].entries[1]).is_none());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(
            read_archive(&&b"PK\x05\x06"[..]),
            Err(ZipError::NoEocd)
        ));
        let mut z = build_stored(&[("x", b"1")]);
        let n = z.len();
        z[n - 6] = 0xff; // cd offset → far away
        assert!(read_archive(&&z[..]).is_err());
    }
}
