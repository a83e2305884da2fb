//! Compressed payloads (joblib's zlib/gzip/bz2/xz/lzma), decompressed with pure-Rust decoders
//! and a hard output limit.

use std::io::{Read, Write};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Gzip,
    Zlib,
    Bzip2,
    Xz,
    Lzma,
}

impl Codec {
    pub fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip data",
            Codec::Zlib => "zlib data",
            Codec::Bzip2 => "bzip2 data",
            Codec::Xz => "xz data",
            Codec::Lzma => "lzma (alone) data",
        }
    }
    pub fn short(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Zlib => "zlib",
            Codec::Bzip2 => "bz2",
            Codec::Xz => "xz",
            Codec::Lzma => "lzma",
        }
    }
}

pub fn sniff(h: &[u8]) -> Option<Codec> {
    if h.len() < 6 {
        return None;
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

/// A writer that refuses to grow past a limit.
struct Capped {
    out: Vec<u8>,
    max: u64,
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() as u64 + buf.len() as u64 > self.max {
            return Err(std::io::Error::other(format!(
                "decompresses to more than {} bytes",
                self.max
            )));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn read_capped(mut r: impl Read, max: u64) -> Result<Vec<u8>, String> {
    let mut out = vec![];
    r.by_ref()
        .take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() as u64 > max {
        return Err(format!("decompresses to more than {max} bytes"));
    }
    Ok(out)
}

pub fn decompress(c: Codec, data: &[u8], max: u64) -> Result<Vec<u8>, String> {
    match c {
        Codec::Gzip => read_capped(flate2::read::MultiGzDecoder::new(data), max),
        Codec::Zlib => read_capped(flate2::read::ZlibDecoder::new(data), max),
        Codec::Bzip2 => read_capped(bzip2::read::MultiBzDecoder::new(data), max),
        Codec::Xz => {
            let mut w = Capped { out: vec![], max };
            lzma_rs::xz_decompress(&mut std::io::BufReader::new(data), &mut w)
                .map_err(|e| format!("{e:?}"))?;
            Ok(w.out)
        }
        Codec::Lzma => {
            let mut w = Capped { out: vec![], max };
            let opts = lzma_rs::decompress::Options {
                unpacked_size: lzma_rs::decompress::UnpackedSize::ReadFromHeader,
                memlimit: Some(1 << 28),
                allow_incomplete: false,
            };
            lzma_rs::lzma_decompress_with_options(
                &mut std::io::BufReader::new(data),
                &mut w,
                &opts,
            )
            .map_err(|e| format!("{e:?}"))?;
            Ok(w.out)
        }
    }
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
    }
}
