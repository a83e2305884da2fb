//! Walking a tree: which files a manifest covers. Symlinks and special files are refused unless
//! allowed; an allowed symlink must resolve inside the root.

use super::Error;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

/// A regular file that the manifest will cover.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Root-relative POSIX path, or `"."` when the root is a single file.
    pub name: String,
    /// The path to open: the file itself, or the resolved target of an allowed symlink.
    pub open_path: PathBuf,
    pub size: u64,
    pub dev: u64,
    pub ino: u64,
    /// Modification and status-change times in nanoseconds (what the stat cache compares).
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

/// (mtime, ctime) in nanoseconds since the epoch, saturating.
fn times_ns(m: &fs::Metadata) -> (i64, i64) {
    let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
    (ns(m.mtime(), m.mtime_nsec()), ns(m.ctime(), m.ctime_nsec()))
}

fn kind_of(ft: &fs::FileType) -> &'static str {
    if ft.is_fifo() {
        "named pipe"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_char_device() {
        "character device"
    } else {
        "special file"
    }
}

/// Is `components` equal to, or under, one of the ignored paths?
fn ignored(components: &[String], ignore: &[Vec<String>]) -> bool {
    ignore.iter().any(|ig| {
        !ig.is_empty() && components.len() >= ig.len() && components[..ig.len()] == ig[..]
    })
}

/// Turn a user's `--ignore PATH` into a root-relative POSIX path. Like model_signing the path is
/// taken relative to the current directory; if that lies outside the root, it is read as
/// root-relative instead. Returns `None` when it names nothing inside the root.
pub fn normalize_ignore(root: &Path, p: &Path) -> Option<String> {
    let root_abs = fs::canonicalize(root).ok()?;
    let candidate = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(p)
    };
    let lexical = lexical_normalize(&candidate);
    let abs_root_lexical = lexical_normalize(&std::path::absolute(root).ok()?);
    for base in [&root_abs, &abs_root_lexical] {
        if let Ok(rel) = lexical.strip_prefix(base) {
            return rel_to_posix(rel);
        }
    }
    if let Ok(canon) = fs::canonicalize(&candidate) {
        if let Ok(rel) = canon.strip_prefix(&root_abs) {
            return rel_to_posix(rel);
        }
    }
    if !p.is_absolute() {
        // Root-relative reading, only if it stays inside.
        let rel = lexical_normalize(p);
        if rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return rel_to_posix(&rel);
        }
    }
    None
}

fn rel_to_posix(rel: &Path) -> Option<String> {
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    let s = parts?.join("/");
    if s.is_empty() {
        None
    } else {
        Some(s)
    }
}

/// Resolve `.` and `..` without touching the file system.
fn lexical_normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Collect the regular files under `root` (or `root` itself when it is a file), sorted the way
/// model_signing sorts: component by component, so `a/b` comes before `a.txt`.
pub fn walk(
    root: &Path,
    ignore_paths: &[String],
    allow_symlinks: bool,
) -> Result<Vec<Entry>, Error> {
    // The root itself is named by the user: follow it if it is a link.
    let root_meta = fs::metadata(root).map_err(|e| Error::io(root, e))?;
    let ignore: Vec<Vec<String>> = ignore_paths
        .iter()
        .map(|p| {
            p.split('/')
                .filter(|s| !s.is_empty() && *s != ".")
                .map(str::to_string)
                .collect()
        })
        .collect();
    let mut out = Vec::new();
    if root_meta.is_file() {
        out.push(Entry {
            name: ".".into(),
            open_path: root.to_path_buf(),
            size: root_meta.len(),
            dev: root_meta.dev(),
            ino: root_meta.ino(),
            mtime_ns: times_ns(&root_meta).0,
            ctime_ns: times_ns(&root_meta).1,
        });
        return Ok(out);
    }
    if !root_meta.is_dir() {
        return Err(Error::SpecialFile {
            path: root.into(),
            kind: kind_of(&root_meta.file_type()),
        });
    }
    let canon_root = fs::canonicalize(root).map_err(|e| Error::io(root, e))?;
    let mut stack: Vec<(PathBuf, Vec<String>)> = vec![(root.to_path_buf(), vec![])];
    while let Some((dir, prefix)) = stack.pop() {
        let rd = fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        for ent in rd {
            let ent = ent.map_err(|e| Error::io(&dir, e))?;
            let path = ent.path();
            let fname = ent.file_name();
            let Some(fname) = fname.to_str() else {
                return Err(Error::NonUtf8 { path });
            };
            let mut comps = prefix.clone();
            comps.push(fname.to_string());
            if ignored(&comps, &ignore) {
                continue;
            }
            let meta = fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
            let ft = meta.file_type();
            if ft.is_dir() {
                stack.push((path, comps));
            } else if ft.is_file() {
                out.push(Entry {
                    name: comps.join("/"),
                    open_path: path,
                    size: meta.len(),
                    dev: meta.dev(),
                    ino: meta.ino(),
                    mtime_ns: times_ns(&meta).0,
                    ctime_ns: times_ns(&meta).1,
                });
            } else if ft.is_symlink() {
                if !allow_symlinks {
                    return Err(Error::Symlink { path });
                }
                let target = fs::canonicalize(&path).map_err(|e| Error::io(&path, e))?;
                if !target.starts_with(&canon_root) {
                    return Err(Error::SymlinkEscapes { path, target });
                }
                let tmeta = fs::metadata(&target).map_err(|e| Error::io(&target, e))?;
                if tmeta.is_dir() {
                    return Err(Error::SymlinkToDir { path });
                }
                if !tmeta.is_file() {
                    return Err(Error::SpecialFile {
                        path,
                        kind: kind_of(&tmeta.file_type()),
                    });
                }
                out.push(Entry {
                    name: comps.join("/"),
                    open_path: target,
                    size: tmeta.len(),
                    dev: tmeta.dev(),
                    ino: tmeta.ino(),
                    mtime_ns: times_ns(&tmeta).0,
                    ctime_ns: times_ns(&tmeta).1,
                });
            } else {
                return Err(Error::SpecialFile {
                    path,
                    kind: kind_of(&ft),
                });
            }
        }
    }
    // Component by component (`a/b` before `a.txt`), without keeping the split per entry.
    out.sort_unstable_by(|a, b| a.name.split('/').cmp(b.name.split('/')));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[Entry]) -> Vec<&str> {
        v.iter().map(|e| e.name.as_str()).collect()
    }

    #[test]
    fn orders_by_components_and_ignores() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("a")).unwrap();
        fs::create_dir_all(r.join(".git/objects")).unwrap();
        fs::write(r.join("a/b"), "1").unwrap();
        fs::write(r.join("a.txt"), "2").unwrap();
        fs::write(r.join("with space"), "").unwrap();
        fs::write(r.join(".git/objects/x"), "").unwrap();
        fs::write(r.join(".gitignore"), "").unwrap();
        let ig: Vec<String> = crate::digest::GIT_PATHS
            .iter()
            .map(|s| s.to_string())
            .collect();
        let v = walk(r, &ig, false).unwrap();
        assert_eq!(names(&v), ["a/b", "a.txt", "with space"]);
        let v = walk(r, &[], false).unwrap();
        assert_eq!(
            names(&v),
            [".git/objects/x", ".gitignore", "a/b", "a.txt", "with space"]
        );
        let v = walk(r, &["a".into()], false).unwrap();
        assert_eq!(
            names(&v),
            [".git/objects/x", ".gitignore", "a.txt", "with space"]
        );
    }

    #[test]
    fn symlinks_refused_or_contained() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::write(r.join("f"), "x").unwrap();
        fs::write(outside.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink("f", r.join("link")).unwrap();
        assert!(matches!(walk(r, &[], false), Err(Error::Symlink { .. })));
        let v = walk(r, &[], true).unwrap();
        assert_eq!(names(&v), ["f", "link"]);
        std::os::unix::fs::symlink(outside.path().join("secret"), r.join("esc")).unwrap();
        assert!(matches!(
            walk(r, &[], true),
            Err(Error::SymlinkEscapes { .. })
        ));
    }

    #[test]
    fn fifo_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pipe");
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(
            walk(d.path(), &[], false),
            Err(Error::SpecialFile {
                kind: "named pipe",
                ..
            })
        ));
    }

    #[test]
    fn single_file_is_dot() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("model.bin");
        fs::write(&f, "abc").unwrap();
        let v = walk(&f, &[], false).unwrap();
        assert_eq!(names(&v), ["."]);
    }
}
