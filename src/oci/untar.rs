//! Unpacking tar layers (KitOps ModelKits, ModelPack `.tar` layers) safely: the blob is first
//! streamed to a temp file with its digest checked, then only regular files and directories are
//! written, every path validated (no absolute paths, no `..`, no links, no device files, no
//! file written twice).

use super::client::Client;
use super::model::{check_path, ModelLayer};
use super::Error;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;

fn octal(f: &[u8]) -> Option<u64> {
    if f.first().is_some_and(|b| b & 0x80 != 0) {
        return f[1..].iter().try_fold(0u64, |a, b| {
            a.checked_mul(256).and_then(|a| a.checked_add(*b as u64))
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

fn cstr(f: &[u8]) -> String {
    let end = f.iter().position(|b| *b == 0).unwrap_or(f.len());
    String::from_utf8_lossy(&f[..end]).into_owned()
}

/// PAX `path=` record, if any.
fn pax_path(data: &[u8]) -> Option<String> {
    let mut rest = data;
    while !rest.is_empty() {
        let sp = rest.iter().position(|b| *b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..sp]).ok()?.parse().ok()?;
        if len == 0 || len > rest.len() {
            return None;
        }
        let rec = &rest[sp + 1..len];
        let rec = rec.strip_suffix(b"\n").unwrap_or(rec);
        if let Some(v) = rec.strip_prefix(b"path=") {
            return String::from_utf8(v.to_vec()).ok();
        }
        rest = &rest[len..];
    }
    None
}

fn read_exact_or(r: &mut dyn Read, buf: &mut [u8], what: &str) -> Result<bool, Error> {
    let mut n = 0;
    while n < buf.len() {
        let k = r
            .read(&mut buf[n..])
            .map_err(|e| Error::malformed(what, format!("reading the tar stream: {e}")))?;
        if k == 0 {
            if n == 0 {
                return Ok(false);
            }
            return Err(Error::malformed(what, "truncated tar stream"));
        }
        n += k;
    }
    Ok(true)
}

fn skip(r: &mut dyn Read, n: u64, what: &str) -> Result<(), Error> {
    let got = std::io::copy(&mut (&mut *r).take(n), &mut std::io::sink())
        .map_err(|e| Error::malformed(what, format!("reading the tar stream: {e}")))?;
    if got != n {
        return Err(Error::malformed(what, "truncated tar stream"));
    }
    Ok(())
}

/// Extract a tar stream into `dest`. Returns (files, bytes).
pub fn extract(r: &mut dyn Read, dest: &Path, what: &str) -> Result<(usize, u64), Error> {
    let mut header = [0u8; 512];
    let mut long_name: Option<String> = None;
    let mut written = BTreeSet::new();
    let (mut files, mut bytes) = (0usize, 0u64);
    loop {
        if !read_exact_or(r, &mut header, what)? {
            break;
        }
        if header.iter().all(|b| *b == 0) {
            break;
        }
        let sum: u64 = header
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    *b as u64
                }
            })
            .sum();
        if octal(&header[148..156]) != Some(sum) {
            return Err(Error::malformed(what, "bad tar header checksum"));
        }
        let size =
            octal(&header[124..136]).ok_or_else(|| Error::malformed(what, "bad tar size field"))?;
        let padded = size
            .checked_add(511)
            .map(|s| s / 512 * 512)
            .ok_or_else(|| Error::malformed(what, "tar size overflows"))?;
        let typ = header[156];
        let mut name = cstr(&header[0..100]);
        if &header[257..262] == b"ustar" {
            let prefix = cstr(&header[345..500]);
            if !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
        }
        match typ {
            b'L' | b'x' => {
                if size > 64 << 10 {
                    return Err(Error::malformed(what, "tar extended header too large"));
                }
                let mut buf = vec![0u8; padded as usize];
                if !read_exact_or(r, &mut buf, what)? {
                    return Err(Error::malformed(what, "truncated tar stream"));
                }
                buf.truncate(size as usize);
                long_name = if typ == b'L' {
                    Some(cstr(&buf))
                } else {
                    pax_path(&buf)
                };
                continue;
            }
            b'g' => {
                skip(r, padded, what)?;
                continue;
            }
            _ => {}
        }
        if let Some(n) = long_name.take() {
            name = n;
        }
        let clean = name
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        match typ {
            b'5' => {
                if !clean.is_empty() && clean != "." {
                    check_path(&clean, what)?;
                    let d = dest.join(&clean);
                    std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
                }
                skip(r, padded, what)?;
            }
            b'0' | 0 | b'7' => {
                check_path(&clean, what)?;
                if !written.insert(clean.clone()) {
                    return Err(Error::UnsafePath {
                        what: what.into(),
                        path: clean,
                        why: "the tar holds this file twice".into(),
                    });
                }
                let target = dest.join(&clean);
                if let Some(p) = target.parent() {
                    // A path through an existing file fails here instead of writing elsewhere.
                    std::fs::create_dir_all(p).map_err(|e| Error::io(p, e))?;
                }
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&target)
                    .map_err(|e| Error::io(&target, e))?;
                let got = std::io::copy(&mut (&mut *r).take(size), &mut f)
                    .map_err(|e| Error::io(&target, e))?;
                if got != size {
                    return Err(Error::malformed(what, "truncated tar stream"));
                }
                f.flush().map_err(|e| Error::io(&target, e))?;
                skip(r, padded - size, what)?;
                files += 1;
                bytes = bytes.saturating_add(size);
            }
            other => {
                return Err(Error::UnsafePath {
                    what: what.into(),
                    path: clean,
                    why: format!(
                        "tar entry type {:?} (links and device files are not unpacked)",
                        other as char
                    ),
                })
            }
        }
    }
    Ok((files, bytes))
}

/// Download a tar layer (digest-checked) next to the output, then unpack it into `dest`.
pub fn pull_tar_layer(
    client: &Client,
    repo: &str,
    l: &ModelLayer,
    dest: &Path,
    scratch: &Path,
) -> Result<(usize, u64), Error> {
    if l.media_type.ends_with("+zstd") {
        return Err(Error::malformed(
            &l.digest,
            "zstd-compressed tar layers are not supported; repack with gzip or raw layers",
        ));
    }
    let blob = scratch.join(format!(".layer-{}", l.digest.trim_start_matches("sha256:")));
    {
        let mut f = std::fs::File::create(&blob).map_err(|e| Error::io(&blob, e))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, &mut f);
        client.stream_blob(
            repo,
            &l.digest,
            l.size,
            &mut w,
            &format!("pull layer {}", l.digest),
        )?;
        w.flush().map_err(|e| Error::io(&blob, e))?;
    }
    let f = std::fs::File::open(&blob).map_err(|e| Error::io(&blob, e))?;
    let what = format!("layer {}", l.digest);
    let res = if l.gzip {
        extract(
            &mut flate2::read::GzDecoder::new(std::io::BufReader::new(f)),
            dest,
            &what,
        )
    } else {
        extract(&mut std::io::BufReader::new(f), dest, &what)
    };
    let _ = std::fs::remove_file(&blob);
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, typ: u8, data: &[u8]) -> Vec<u8> {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
        h[156] = typ;
        h[257..263].copy_from_slice(b"ustar\0");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| *b as u32).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        let mut out = h.to_vec();
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
        out
    }

    #[test]
    fn extracts_files_and_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = entry("./m/", b'5', b"");
        t.extend(entry("./m/w.bin", b'0', b"weights"));
        t.extend([0u8; 1024]);
        let (n, b) = extract(&mut t.as_slice(), dir.path(), "t").unwrap();
        assert_eq!((n, b), (1, 7));
        assert_eq!(
            std::fs::read(dir.path().join("m/w.bin")).unwrap(),
            b"weights"
        );
        for bad in [
            entry("../evil", b'0', b"x"),
            entry("/etc/x", b'0', b"x"),
            entry("link", b'2', b""),
        ] {
            let d = tempfile::tempdir().unwrap();
            assert!(extract(&mut bad.as_slice(), d.path(), "t").is_err());
        }
        let d = tempfile::tempdir().unwrap();
        let mut twice = entry("a", b'0', b"1");
        twice.extend(entry("a", b'0', b"2"));
        assert!(extract(&mut twice.as_slice(), d.path(), "t").is_err());
    }
}
