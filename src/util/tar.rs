//! tar headers read the way Python's `tarfile` (what `torch.load` and `tarfile.extractall` use)
//! and Go's `archive/tar` (ORAS, KitOps, modctl) read them: one parser for the scanner
//! (`scan::formats::tar`, in-memory) and the registry unpacker (`oci::untar`, streamed), so the
//! two never disagree about where a member starts or what it is called.

/// A 512-byte header, decoded. `name` already carries the ustar `prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    /// The size field (a pax `size` record may override it: [`Pax::size`]).
    pub size: u64,
    pub typeflag: u8,
}

/// Why a header cannot be read. Offsets are added by the caller, which knows them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TarError {
    #[error("bad tar header checksum")]
    Checksum,
    #[error("bad tar size field")]
    SizeField,
    #[error("pax record without a length")]
    PaxNoLength,
    #[error("bad pax record length")]
    PaxLength,
    #[error("pax record runs past its header")]
    PaxPastEnd,
    #[error("pax record without a newline")]
    PaxNoNewline,
    #[error("pax record without '='")]
    PaxNoEquals,
    #[error("bad pax size {0:?}")]
    PaxSize(String),
}

/// A numeric field: octal text (NUL/space terminated, as `tarfile.nti`), or GNU base-256 when
/// the first byte has its high bit set.
pub fn number(f: &[u8]) -> Option<u64> {
    if f.first().is_some_and(|b| b & 0x80 != 0) {
        return f[1..].iter().try_fold(0u64, |a, b| {
            a.checked_mul(256)
                .and_then(|a| a.checked_add(u64::from(*b)))
        });
    }
    let s: String = f
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| *b as char)
        .collect();
    let s = s.trim();
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

/// A NUL-terminated header string as `tarfile.nts` reads it: cut at the first NUL.
pub fn nts(b: &[u8]) -> String {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// True for the all-zero block that ends an archive.
pub fn is_end(h: &[u8; 512]) -> bool {
    h.iter().all(|b| *b == 0)
}

/// Decode a header: checksum (unsigned sum with the field as spaces), size, type, and the name
/// with the ustar prefix joined as both readers join it (not for GNU long-name/sparse entries,
/// whose bytes 345.. mean something else).
pub fn header(h: &[u8; 512]) -> Result<Header, TarError> {
    let sum: u64 = h
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(*b)
            }
        })
        .sum();
    if number(&h[148..156]) != Some(sum) {
        return Err(TarError::Checksum);
    }
    let size = number(&h[124..136]).ok_or(TarError::SizeField)?;
    let typeflag = h[156];
    let mut name = nts(&h[..100]);
    let prefix = nts(&h[345..500]);
    if !prefix.is_empty() && !matches!(typeflag, b'L' | b'K' | b'S') {
        name = format!("{prefix}/{name}");
    }
    Ok(Header {
        name,
        size,
        typeflag,
    })
}

/// The pax records that change how a member is read: its `path` and its `size` (the size
/// decides where the next header is, so a reader that ignored it would see other members).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pax {
    pub path: Option<String>,
    pub size: Option<u64>,
}

/// Parse pax extended header records (`"%d key=value\n"`) into `into` (later records win).
pub fn parse_pax(data: &[u8], into: &mut Pax) -> Result<(), TarError> {
    let mut p = 0usize;
    while p < data.len() && data[p] != 0 {
        let sp = data[p..]
            .iter()
            .position(|c| *c == b' ')
            .ok_or(TarError::PaxNoLength)?;
        let len: usize = std::str::from_utf8(&data[p..p + sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|l| *l > sp + 1)
            .ok_or(TarError::PaxLength)?;
        let rec = data
            .get(p + sp + 1..p.checked_add(len).ok_or(TarError::PaxLength)?)
            .ok_or(TarError::PaxPastEnd)?;
        let rec = rec.strip_suffix(b"\n").ok_or(TarError::PaxNoNewline)?;
        let eq = rec
            .iter()
            .position(|c| *c == b'=')
            .ok_or(TarError::PaxNoEquals)?;
        let (k, v) = (&rec[..eq], &rec[eq + 1..]);
        match k {
            b"path" => into.path = Some(String::from_utf8_lossy(v).into_owned()),
            b"size" => {
                let text = String::from_utf8_lossy(v).into_owned();
                into.size = Some(text.parse().map_err(|_| TarError::PaxSize(text))?);
            }
            _ => {}
        }
        p += len;
    }
    Ok(())
}

/// `size` rounded up to whole 512-byte blocks.
pub fn padded(size: u64) -> Option<u64> {
    size.checked_add(511).map(|s| s / 512 * 512)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_names_and_pax() {
        assert_eq!(number(b"0000644\0"), Some(0o644));
        assert_eq!(number(b"  17 \0"), Some(0o17));
        assert_eq!(number(b"\0\0"), Some(0));
        assert_eq!(number(&[0x80, 0, 0, 1, 0]), Some(256));
        assert_eq!(number(b"9"), None);
        assert_eq!(nts(b"pickle\0junk"), "pickle");
        let mut p = Pax::default();
        parse_pax(b"17 path=real.pkl\n11 size=13\n", &mut p).unwrap();
        assert_eq!(p.path.as_deref(), Some("real.pkl"));
        assert_eq!(p.size, Some(13));
        for bad in [
            &b"x path=a\n"[..],
            b"99 path=a\n",
            b"9 patha\n\n",
            b"12 size=1x\n",
        ] {
            assert!(parse_pax(bad, &mut Pax::default()).is_err(), "{bad:?}");
        }
        assert_eq!(padded(0), Some(0));
        assert_eq!(padded(1), Some(512));
        assert_eq!(padded(u64::MAX), None);
    }
}
