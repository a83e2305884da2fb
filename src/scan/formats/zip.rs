//! A ZIP central-directory reader that reads archives the way PyTorch's loader (miniz) does:
//! it trusts the central directory, tolerates bad CRCs, odd flag bits, local/central name
//! mismatches, prepended bytes and ZIP64, and *reports* each of those as an anomaly instead of
//! refusing the file (a scanner that refuses what torch loads is a bypass).

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

/// A parsed central directory.
#[derive(Clone, Debug)]
pub struct Archive {
    pub entries: Vec<Entry>,
    /// Bytes before the archive proper (offsets were corrected by this much).
    pub prepended: u64,
    /// Human-readable anomalies found while reading the directory.
    pub anomalies: Vec<(Anomaly, String)>,
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
}

#[derive(Debug, thiserror::Error)]
pub enum ZipError {
    #[error("no end-of-central-directory record: not a readable ZIP archive")]
    NoEocd,
    #[error("central directory is corrupt: {0}")]
    Corrupt(String),
    #[error("member {name}: compression method {method} is not supported")]
    Method { name: String, method: u16 },
    #[error("member {name}: {msg}")]
    Member { name: String, msg: String },
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

/// Find the end-of-central-directory record (position in the source), if any.
pub fn find_eocd(src: &dyn Source) -> Result<Option<(u64, Vec<u8>)>, std::io::Error> {
    let len = src.len();
    if len < 22 {
        return Ok(None);
    }
    let tail_len = len.min(22 + 65535);
    let start = len - tail_len;
    let tail = src.read_vec(start, tail_len, tail_len)?;
    let mut i = tail.len() - 22;
    loop {
        if tail[i..i + 4] == [0x50, 0x4b, 0x05, 0x06] {
            let comment = u16_at(&tail, i + 20) as usize;
            if i + 22 + comment <= tail.len() {
                return Ok(Some((start + i as u64, tail[i..i + 22].to_vec())));
            }
        }
        if i == 0 {
            return Ok(None);
        }
        i -= 1;
    }
}

/// Read the central directory.
pub fn read_archive(src: &dyn Source) -> Result<Archive, ZipError> {
    let (eocd_pos, eocd) = find_eocd(src)?.ok_or(ZipError::NoEocd)?;
    let mut total = u16_at(&eocd, 10) as u64;
    let mut cd_size = u32_at(&eocd, 12) as u64;
    let mut cd_off = u32_at(&eocd, 16) as u64;
    let mut cd_end = eocd_pos;
    // A ZIP64 end record may be present even when nothing is saturated (torch writes one).
    if eocd_pos >= 20 {
        let loc = src.read_vec(eocd_pos - 20, 20, 20)?;
        if loc[..4] == [0x50, 0x4b, 0x06, 0x07] {
            let z64_pos = u64_at(&loc, 8);
            let z = src
                .read_vec(z64_pos, 56, 56)
                .ok()
                .filter(|z| z[..4] == [0x50, 0x4b, 0x06, 0x06]);
            let saturated = total == 0xffff || cd_size == 0xffff_ffff || cd_off == 0xffff_ffff;
            match z {
                Some(z) => {
                    if saturated {
                        total = u64_at(&z, 32);
                        cd_size = u64_at(&z, 40);
                        cd_off = u64_at(&z, 48);
                    }
                    cd_end = z64_pos;
                }
                None if saturated => {
                    return Err(ZipError::Corrupt(format!(
                        "no ZIP64 end record at {z64_pos}"
                    )));
                }
                None => cd_end = eocd_pos - 20,
            }
        }
    }
    if total > MAX_ENTRIES || cd_size > MAX_CD {
        return Err(ZipError::Corrupt(format!(
            "{total} entries / {cd_size}-byte directory exceed the limits"
        )));
    }
    let mut anomalies = vec![];
    // Where the directory really is: recorded offset (miniz) or end-relative (prepended data).
    let expected = cd_end
        .checked_sub(cd_size)
        .ok_or_else(|| ZipError::Corrupt("directory size exceeds the file".into()))?;
    let sig_at = |o: u64| -> bool {
        total == 0
            || src
                .read_vec(o, 4, 4)
                .map(|s| s == [0x50, 0x4b, 0x01, 0x02])
                .unwrap_or(false)
    };
    let prepended = if expected != cd_off
        && !sig_at(cd_off)
        && sig_at(expected)
        && expected > cd_off
    {
        let d = expected - cd_off;
        anomalies.push((
            Anomaly::Prepended,
            format!("{d} byte(s) precede the ZIP archive (offsets recorded without them)"),
        ));
        d
    } else {
        if expected > cd_off && sig_at(cd_off) {
            anomalies.push((Anomaly::Prepended, format!("{} byte(s) of data between the archive members and the central directory or before the archive", expected - cd_off)));
        }
        0
    };
    let cd = src
        .read_vec(cd_off + prepended, cd_size, MAX_CD)
        .map_err(|e| {
            ZipError::Corrupt(format!("central directory at {}: {e}", cd_off + prepended))
        })?;
    let mut entries = Vec::with_capacity(total.min(65536) as usize);
    let mut p = 0usize;
    let mut seen = std::collections::HashSet::new();
    for i in 0..total {
        if p + 46 > cd.len() || cd[p..p + 4] != [0x50, 0x4b, 0x01, 0x02] {
            return Err(ZipError::Corrupt(format!(
                "entry {i} of {total}: bad central header at {}",
                cd_off + p as u64
            )));
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
            return Err(ZipError::Corrupt(format!(
                "entry {i} runs past the directory"
            )));
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
        entries.push(Entry {
            name,
            method,
            flags,
            crc,
            csize,
            usize: usize_,
            local_offset: local + prepended,
        });
        p = end;
    }
    Ok(Archive {
        entries,
        prepended,
        anomalies,
    })
}

/// Read and decompress one member (at most `max` bytes). Returns the data and anomalies
/// (name mismatch, CRC).
pub fn read_member(
    src: &dyn Source,
    e: &Entry,
    max: u64,
) -> Result<(Vec<u8>, Anomalies), ZipError> {
    let mut anomalies = vec![];
    let member_err = |msg: String| ZipError::Member {
        name: e.name.clone(),
        msg,
    };
    let lh = src
        .read_vec(e.local_offset, 30, 30)
        .map_err(|err| member_err(format!("local header at {}: {err}", e.local_offset)))?;
    if lh[..4] != [0x50, 0x4b, 0x03, 0x04] {
        return Err(member_err(format!(
            "no local header at offset {}",
            e.local_offset
        )));
    }
    let nlen = u16_at(&lh, 26) as u64;
    let elen = u16_at(&lh, 28) as u64;
    let lname = src.read_vec(e.local_offset + 30, nlen, 65535)?;
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
    let data_off = e.local_offset + 30 + nlen + elen;
    if e.usize > max {
        return Err(member_err(format!(
            "{} bytes uncompressed exceed the limit of {max}",
            e.usize
        )));
    }
    let data = match e.method {
        0 => {
            let d = src
                .read_vec(data_off, e.usize, max)
                .map_err(|err| member_err(err.to_string()))?;
            if e.csize != e.usize {
                anomalies.push((
                    Anomaly::BadCrc,
                    format!(
                        "stored member sizes differ (compressed {}, uncompressed {})",
                        e.csize, e.usize
                    ),
                ));
            }
            d
        }
        8 => {
            let comp = src
                .read_vec(data_off, e.csize, max.saturating_mul(2).max(1 << 20))
                .map_err(|err| member_err(err.to_string()))?;
            let mut out = Vec::with_capacity(e.usize.min(1 << 26) as usize);
            flate2::read::DeflateDecoder::new(&comp[..])
                .take(max + 1)
                .read_to_end(&mut out)
                .map_err(|err| member_err(format!("DEFLATE data is corrupt: {err}")))?;
            if out.len() as u64 > max {
                return Err(member_err(format!(
                    "inflates past the limit of {max} bytes"
                )));
            }
            out
        }
        m => {
            return Err(ZipError::Method {
                name: e.name.clone(),
                method: m,
            })
        }
    };
    let crc = crc32fast::hash(&data);
    if crc != e.crc {
        anomalies.push((Anomaly::BadCrc, format!("CRC-32 is 0x{crc:08x} but the directory says 0x{:08x} (Python's zipfile refuses it; torch does not check)", e.crc)));
    }
    Ok((data, anomalies))
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
