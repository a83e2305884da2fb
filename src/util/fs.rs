//! Writing files: atomically (temp file in the same directory, fsync, rename), and shared
//! documents readable by everyone.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Why a file was not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Without `force` an existing file is never replaced.
    #[error("{path}: already exists")]
    Exists { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path, source: std::io::Error) -> WriteError {
    WriteError::Io {
        path: path.into(),
        source,
    }
}

/// Write `data` to `path` atomically. Without `force` an existing file is never replaced.
pub fn write_atomic(path: &Path, data: &[u8], force: bool) -> Result<(), WriteError> {
    write_atomic_with(path, force, &mut |w| w.write_all(data))
}

/// [`write_atomic`] with the content streamed by `fill` (buffered); on any error the old file
/// is left as it was.
pub fn write_atomic_with(
    path: &Path,
    force: bool,
    fill: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), WriteError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !force && path.symlink_metadata().is_ok() {
        return Err(WriteError::Exists { path: path.into() });
    }
    let tmp = tempfile::Builder::new()
        .prefix(".mlsign-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| io(dir, e))?;
    {
        let mut w = std::io::BufWriter::with_capacity(1 << 16, tmp.as_file());
        fill(&mut w)
            .and_then(|_| w.flush())
            .map_err(|e| io(tmp.path(), e))?;
    }
    tmp.as_file().sync_all().map_err(|e| io(tmp.path(), e))?;
    let res = if force {
        tmp.persist(path).map(|_| ())
    } else {
        tmp.persist_noclobber(path).map(|_| ())
    };
    res.map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            WriteError::Exists { path: path.into() }
        } else {
            io(path, e.error)
        }
    })
}

/// Write a document meant to be shared (BOM, HTML view, lineage file, bundle): atomically, then
/// readable by everyone (temp files are created 0600).
pub fn write_public(path: &Path, bytes: &[u8], force: bool) -> Result<(), WriteError> {
    write_atomic(path, bytes, force)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| io(path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_public_and_no_clobber() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("a.json");
        write_public(&p, b"1", false).unwrap();
        assert!(matches!(
            write_public(&p, b"2", false),
            Err(WriteError::Exists { .. })
        ));
        assert_eq!(std::fs::read(&p).unwrap(), b"1");
        write_public(&p, b"2", true).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"2");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644);
        }
        // A failing writer leaves the old file and no temp file behind.
        let e = write_atomic_with(&p, true, &mut |_| Err(std::io::Error::other("boom")));
        assert!(matches!(e, Err(WriteError::Io { .. })));
        assert_eq!(std::fs::read(&p).unwrap(), b"2");
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1);
    }
}
