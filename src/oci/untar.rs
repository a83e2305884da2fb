//! Unpacking tar layers (KitOps ModelKits, ModelPack `.tar` layers) safely: the blob is first
//! streamed to a temp file with its digest checked, then only regular files and directories are
//! written, every path validated (no absolute paths, no `..`, no links, no device files, no
//! file written twice).

use super::client::Client;
use super::model::{check_path, ModelLayer};
use super::Error;
use crate::util::tar::{self, Pax};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;

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
    let mut pax = Pax::default();
    let mut written = BTreeSet::new();
    let (mut files, mut bytes) = (0usize, 0u64);
    loop {
        if !read_exact_or(r, &mut header, what)? {
            break;
        }
        if tar::is_end(&header) {
            break;
        }
        let hd = tar::header(&header).map_err(|e| Error::malformed(what, e.to_string()))?;
        let typ = hd.typeflag;
        let mut name = hd.name;
        // A pax `size` replaces the header's for the member it precedes, as Python's tarfile
        // and Go's archive/tar read it; ignoring it would unpack other members than they do.
        let size = match typ {
            b'L' | b'K' | b'x' | b'g' => hd.size,
            _ => pax.size.take().unwrap_or(hd.size),
        };
        let padded =
            tar::padded(size).ok_or_else(|| Error::malformed(what, "tar size overflows"))?;
        match typ {
            b'L' | b'K' | b'x' | b'g' => {
                if size > 64 << 10 {
                    return Err(Error::malformed(what, "tar extended header too large"));
                }
                let mut buf = vec![0u8; padded as usize];
                if !read_exact_or(r, &mut buf, what)? {
                    return Err(Error::malformed(what, "truncated tar stream"));
                }
                buf.truncate(size as usize);
                match typ {
                    b'L' => long_name = Some(tar::nts(&buf)),
                    b'x' => tar::parse_pax(&buf, &mut pax)
                        .map_err(|e| Error::malformed(what, format!("pax header: {e}")))?,
                    b'g' => {
                        // Python applies global path/size records to every later member, Go
                        // does not: a layer that relies on either reading is ambiguous.
                        let mut g = Pax::default();
                        tar::parse_pax(&buf, &mut g)
                            .map_err(|e| Error::malformed(what, format!("pax header: {e}")))?;
                        if g != Pax::default() {
                            return Err(Error::malformed(
                                what,
                                "a global pax header sets path or size (tar readers disagree on it)",
                            ));
                        }
                    }
                    _ => {} // GNU long link name: links are refused below anyway
                }
                continue;
            }
            _ => {}
        }
        if let Some(p) = pax.path.take() {
            name = p;
            long_name = None;
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

    /// The layer is unpacked as Python's tarfile and Go's archive/tar read it: a pax `size`
    /// moves the next header (the member's bytes are the pax size, not the header's), a pax
    /// `path` names it, and global records that readers apply differently are refused.
    #[test]
    fn pax_size_and_path_as_tar_readers_apply_them() {
        let dir = tempfile::tempdir().unwrap();
        let rec = "17 path=real.bin\n11 size=13\n";
        let mut t = entry("PaxHeader", b'x', rec.as_bytes());
        // The header says 0 bytes; the pax size says 13: the member is "payload-bytes".
        let mut h = entry("decoy", b'0', b"");
        h.truncate(512);
        t.extend(h);
        let mut body = b"payload-bytes".to_vec();
        body.resize(512, 0);
        t.extend(body);
        t.extend(entry("after", b'0', b"2"));
        t.extend([0u8; 1024]);
        let (n, _) = extract(&mut t.as_slice(), dir.path(), "t").unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            std::fs::read(dir.path().join("real.bin")).unwrap(),
            b"payload-bytes"
        );
        assert!(!dir.path().join("decoy").exists());
        assert_eq!(std::fs::read(dir.path().join("after")).unwrap(), b"2");
        // The scanner's reader agrees on every member.
        let ms = crate::scan::formats::tar::members(&t).unwrap();
        let names: Vec<&str> = ms.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["real.bin", "after"]);
        assert_eq!(ms[0].data, b"payload-bytes");

        let mut g = entry("GlobalHead", b'g', b"14 path=x.bin\n");
        g.extend(entry("a", b'0', b"1"));
        let d = tempfile::tempdir().unwrap();
        let e = extract(&mut g.as_slice(), d.path(), "t").unwrap_err();
        assert!(e.to_string().contains("global pax"), "{e}");
        let mut bad = entry("PaxHeader", b'x', b"11 size=1x\n");
        bad.extend(entry("a", b'0', b"1"));
        assert!(extract(&mut bad.as_slice(), d.path(), "t").is_err());
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
