//! Compressed payloads (joblib's zlib/gzip/bz2/xz/lzma), decompressed with pure-Rust decoders
//! and a hard output limit.

use super::source::{Collected, Collector};
use std::io::Read;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Gzip,
    Zlib,
    Bzip2,
    Xz,
    Lzma,
    /// joblib < 0.10 `ZF` file: `ZF`, the length in hex padded to 19 bytes, then zlib data
    /// (joblib 1.x still loads it).
    JoblibZfile,
}

impl Codec {
    pub fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip data",
            Codec::Zlib => "zlib data",
            Codec::Bzip2 => "bzip2 data",
            Codec::Xz => "xz data",
            Codec::Lzma => "lzma (alone) data",
            Codec::JoblibZfile => "joblib (< 0.10) zlib file",
        }
    }
    pub fn short(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Zlib => "zlib",
            Codec::Bzip2 => "bz2",
            Codec::Xz => "xz",
            Codec::Lzma => "lzma",
            Codec::JoblibZfile => "joblib-zfile",
        }
    }
}

pub fn sniff(h: &[u8]) -> Option<Codec> {
    if h.len() < 6 {
        return None;
    }
    if h.len() > ZFILE_HEADER && h.starts_with(b"ZF") && zfile_length_ok(&h[2..ZFILE_HEADER]) {
        return Some(Codec::JoblibZfile);
    }
    if h.starts_with(&[0x1f, 0x8b, 0x08]) {
        return Some(Codec::Gzip);
    }
    if h.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Some(Codec::Xz);
    }
    if h.starts_with(b"BZh") && (b'1'..=b'9').contains(&h[3]) && h[4..6] == [0x31, 0x41] {
        return Some(Codec::Bzip2);
    }
    // zlib with a 32K window (what zlib.compress writes), header checksum, no dictionary.
    // Narrower windows are not sniffed: `(` (0x28) starts protocol-0 pickles.
    if h[0] == 0x78 && (u16::from(h[0]) << 8 | u16::from(h[1])) % 31 == 0 && h[1] & 0x20 == 0 {
        return Some(Codec::Zlib);
    }
    // lzma-alone: properties byte (lc/lp/pb) then a power-of-two-ish dictionary size.
    if h.len() >= 13 && h[0] == 0x5d && h[1] == 0 {
        return Some(Codec::Lzma);
    }
    None
}

/// Most memory an xz / lzma dictionary may take (KiB): joblib's presets use at most 64 MiB.
const DICT_LIMIT_KB: u32 = 160 << 10;

/// `ZF` + `hex(length)` left-justified to 19 bytes (joblib's `_MAX_LEN`).
const ZFILE_HEADER: usize = 21;

/// Whether Python's `int(field, 16)` accepts the length field of a `ZF` header (what decides
/// that joblib reads the file): ASCII whitespace around, a sign, an optional `0x`, hex digits
/// with single underscores between them (and one after the prefix).
fn zfile_length_ok(field: &[u8]) -> bool {
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r');
    let start = field.iter().position(|b| !ws(b)).unwrap_or(field.len());
    let end = field.iter().rposition(|b| !ws(b)).map_or(start, |i| i + 1);
    let mut t = &field[start..end];
    if let [b'+' | b'-', rest @ ..] = t {
        t = rest;
    }
    let mut underscore_ok = false;
    if let [b'0', b'x' | b'X', rest @ ..] = t {
        t = rest;
        underscore_ok = true;
    }
    if t.is_empty() {
        return false;
    }
    for (i, b) in t.iter().enumerate() {
        match b {
            b'_' if underscore_ok && t.get(i + 1).is_some_and(u8::is_ascii_hexdigit) => {
                underscore_ok = false
            }
            b if b.is_ascii_hexdigit() => underscore_ok = true,
            _ => return false,
        }
    }
    true
}

/// Why compressed data cannot be decompressed within the limits.
#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    /// The decoder (or the reader under it) failed: corrupt data, a dictionary past
    /// [`DICT_LIMIT_KB`], or a collector limit (the error's kind says which).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("truncated ZF header")]
    TruncatedZfHeader,
    #[error("decompresses to more than {max} bytes")]
    TooLarge { max: u64 },
    /// A payload that must be held whole (a container, or one with a ZIP behind it) is larger
    /// than what may be held.
    #[error("must be scanned whole but exceeds the in-memory limit of {hold} bytes")]
    MustHoldTooLarge { hold: u64 },
}

/// A streaming decoder over `data`. Every codec streams: nothing is held beyond its window.
fn reader(c: Codec, data: &[u8]) -> Result<Box<dyn Read + '_>, DecompressError> {
    stream_reader(c, Box::new(data))
}

/// A streaming decoder over compressed bytes read from `r`.
pub fn stream_reader<'a>(
    c: Codec,
    mut r: Box<dyn Read + 'a>,
) -> Result<Box<dyn Read + 'a>, DecompressError> {
    Ok(match c {
        Codec::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
        Codec::Zlib => Box::new(flate2::read::ZlibDecoder::new(r)),
        Codec::JoblibZfile => {
            // joblib's read_zfile: skip the header, and one more space that joblib <= 0.8.4
            // wrote (zlib data never starts with a space), then zlib.
            let mut head = [0u8; ZFILE_HEADER + 1];
            let mut got = 0;
            while got < head.len() {
                match r.read(&mut head[got..]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if got < ZFILE_HEADER {
                return Err(DecompressError::TruncatedZfHeader);
            }
            let extra: Vec<u8> = head[ZFILE_HEADER..got]
                .iter()
                .copied()
                .filter(|&b| b != b' ')
                .collect();
            Box::new(flate2::read::ZlibDecoder::new(
                std::io::Cursor::new(extra).chain(r),
            ))
        }
        Codec::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(r)),
        // Python's lzma reads concatenated streams.
        Codec::Xz => Box::new(lzma_rust2::XzReader::new_mem_limit(r, true, DICT_LIMIT_KB)),
        Codec::Lzma => Box::new(lzma_rust2::LzmaReader::new_mem_limit(
            r,
            DICT_LIMIT_KB,
            None,
        )?),
    })
}

fn read_capped(mut r: impl Read, max: u64) -> Result<Vec<u8>, DecompressError> {
    let mut out = vec![];
    r.by_ref()
        .take(max.saturating_add(1))
        .read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(DecompressError::TooLarge { max });
    }
    Ok(out)
}

/// Decompress whole, refusing more than `max` bytes.
pub fn decompress(c: Codec, data: &[u8], max: u64) -> Result<Vec<u8>, DecompressError> {
    read_capped(reader(c, data)?, max)
}

/// Decompress as a stream into a [`Collector`]: only the head is held unless `decide` says
/// the payload must be scanned whole. Returns what was kept and the decompressed size.
/// With `oversize` (see [`Collector::stream_oversize`]), a streamable payload past its limit is
/// [`Collected::Oversize`] instead of an error.
pub fn decompress_collect(
    c: Codec,
    data: Box<dyn Read + '_>,
    head: usize,
    cap: u64,
    hold: u64,
    decide: &dyn Fn(&[u8]) -> bool,
    oversize: Option<(u64, &super::source::Decide<'_>)>,
) -> Result<(Collected, u64), DecompressError> {
    let mut col = Collector::new(head, cap, hold, decide);
    if let Some((limit, streamable)) = oversize {
        col = col.stream_oversize(limit, streamable);
    }
    std::io::copy(&mut stream_reader(c, data)?, &mut col)?;
    let total = col.total();
    Ok((col.finish(), total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn round_trips_and_limits() {
        let data = vec![7u8; 100_000];
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&data).unwrap();
        let z = z.finish().unwrap();
        assert_eq!(sniff(&z), Some(Codec::Zlib));
        assert_eq!(decompress(Codec::Zlib, &z, 1 << 20).unwrap(), data);
        assert!(decompress(Codec::Zlib, &z, 1000).is_err(), "output limit");
        let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        g.write_all(&data).unwrap();
        let g = g.finish().unwrap();
        assert_eq!(sniff(&g), Some(Codec::Gzip));
        assert_eq!(decompress(Codec::Gzip, &g, 1 << 20).unwrap(), data);
        // A protocol-0 pickle starting with MARK is not zlib.
        assert_eq!(sniff(b"(S'os'\n"), None);
        assert!(decompress(Codec::Xz, b"\xfd7zXZ\x00garbage", 100).is_err());
        // joblib < 0.10 ZF files, with and without joblib 0.8.4's extra space.
        for pad in ["", " "] {
            let mut zf = format!("ZF{:<19}{pad}", format!("{:#x}", data.len())).into_bytes();
            zf.extend_from_slice(&z);
            assert_eq!(sniff(&zf), Some(Codec::JoblibZfile));
            assert_eq!(decompress(Codec::JoblibZfile, &zf, 1 << 20).unwrap(), data);
        }
        // Text that merely starts with ZF is not one.
        assert_eq!(sniff(b"ZFS pool notes: nothing to see here at all"), None);
        for (field, ok) in [
            ("0x31f", true),
            (" \t0X_3_1f\r", true),
            ("-1f", true),
            ("31_f", true),
            ("0x", false),
            ("3__1", false),
            ("_31", false),
            ("31_", false),
            ("0x31g", false),
        ] {
            assert_eq!(zfile_length_ok(field.as_bytes()), ok, "{field:?}");
        }
    }
}
