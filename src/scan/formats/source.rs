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
