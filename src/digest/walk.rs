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

/// The stat identity of a walked file: what the stat cache compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStat {
    pub size: u64,
    pub dev: u64,
    pub ino: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl FileStat {
    fn of(m: &fs::Metadata) -> FileStat {
        let (mtime_ns, ctime_ns) = times_ns(m);
        FileStat {
            size: m.len(),
            dev: m.dev(),
            ino: m.ino(),
            mtime_ns,
            ctime_ns,
        }
    }
}

impl Entry {
    pub fn stat(&self) -> FileStat {
        FileStat {
            size: self.size,
            dev: self.dev,
            ino: self.ino,
            mtime_ns: self.mtime_ns,
            ctime_ns: self.ctime_ns,
        }
    }
}

/// The files of a walk, compact: names in one arena and a fixed-size stat record each (about
/// 60 bytes plus the name per file, against ~250 for a `Vec<Entry>`), so a tree of a million
/// files lists in tens of megabytes. [`Listing::entry`] rebuilds an [`Entry`] on demand.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    root: PathBuf,
    single_file: bool,
    names: String,
    /// End offset of each name in `names`.
    ends: Vec<usize>,
    stats: Vec<FileStat>,
    /// Resolved targets of allowed symlinks: (index, target), ascending.
    targets: Vec<(usize, PathBuf)>,
}

impl Listing {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Root-relative POSIX path of file `i`, or `"."` when the root is a single file.
    pub fn name(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.names[start..self.ends[i]]
    }

    pub fn stat(&self, i: usize) -> FileStat {
        self.stats[i]
    }

    /// Bytes of all files.
    pub fn total_bytes(&self) -> u64 {
        self.stats.iter().map(|s| s.size).sum()
    }

    /// The path to open for file `i` (the walk root joined with its name, or a link's target).
    pub fn open_path(&self, i: usize) -> PathBuf {
        if let Ok(k) = self.targets.binary_search_by_key(&i, |t| t.0) {
            return self.targets[k].1.clone();
        }
        if self.single_file {
            self.root.clone()
        } else {
            self.root.join(self.name(i))
        }
    }

    pub fn entry(&self, i: usize) -> Entry {
        let s = self.stats[i];
        Entry {
            name: self.name(i).to_string(),
            open_path: self.open_path(i),
            size: s.size,
            dev: s.dev,
            ino: s.ino,
            mtime_ns: s.mtime_ns,
            ctime_ns: s.ctime_ns,
        }
    }

    pub fn to_entries(&self) -> Vec<Entry> {
        (0..self.len()).map(|i| self.entry(i)).collect()
    }

    fn push(&mut self, name: &str, stat: FileStat, target: Option<PathBuf>) {
        if let Some(t) = target {
            self.targets.push((self.len(), t));
        }
        self.names.push_str(name);
        self.ends.push(self.names.len());
        self.stats.push(stat);
    }
}

/// Collect the regular files under `root` (or `root` itself when it is a file), sorted the way
/// model_signing sorts: component by component, so `a/b` comes before `a.txt`.
pub fn walk(
    root: &Path,
    ignore_paths: &[String],
    allow_symlinks: bool,
) -> Result<Vec<Entry>, Error> {
    Ok(walk_listing(root, ignore_paths, allow_symlinks)?.to_entries())
}

/// One directory being listed: its children sorted by name, and the next one to visit.
struct Pending {
    dir: PathBuf,
    /// Root-relative path of `dir` with a trailing `/` (empty at the root).
    prefix: String,
    children: Vec<(String, fs::DirEntry)>,
    next: usize,
}

fn list_dir(dir: PathBuf, prefix: String) -> Result<Pending, Error> {
    let rd = fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut children = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| Error::io(&dir, e))?;
        let Ok(name) = ent.file_name().into_string() else {
            return Err(Error::NonUtf8 { path: ent.path() });
        };
        children.push((name, ent));
    }
    // Byte order per directory, visited depth first, is exactly the component-wise order of
    // whole paths (`a/b` before `a.txt`), so the listing never needs a global sort.
    children.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(Pending {
        dir,
        prefix,
        children,
        next: 0,
    })
}

/// [`walk`] into a compact [`Listing`].
pub fn walk_listing(
    root: &Path,
    ignore_paths: &[String],
    allow_symlinks: bool,
) -> Result<Listing, Error> {
    // The root itself is named by the user: follow it if it is a link.
    let root_meta = fs::metadata(root).map_err(|e| Error::io(root, e))?;
    let ignore: Vec<String> = ignore_paths
        .iter()
        .map(|p| {
            p.split('/')
                .filter(|s| !s.is_empty() && *s != ".")
                .collect::<Vec<_>>()
                .join("/")
        })
        .filter(|p| !p.is_empty())
        .collect();
    let is_ignored = |name: &str| {
        ignore.iter().any(|ig| {
            name.strip_prefix(ig.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    };
    let mut out = Listing {
        root: root.to_path_buf(),
        ..Listing::default()
    };
    if root_meta.is_file() {
        out.single_file = true;
        out.push(".", FileStat::of(&root_meta), None);
        return Ok(out);
    }
    if !root_meta.is_dir() {
        return Err(Error::SpecialFile {
            path: root.into(),
            kind: kind_of(&root_meta.file_type()),
        });
    }
    let canon_root = fs::canonicalize(root).map_err(|e| Error::io(root, e))?;
    let mut stack = vec![list_dir(root.to_path_buf(), String::new())?];
    let mut name = String::new();
    while let Some(top) = stack.last_mut() {
        let Some((fname, ent)) = top.children.get(top.next) else {
            stack.pop();
            continue;
        };
        top.next += 1;
        name.clear();
        name.push_str(&top.prefix);
        name.push_str(fname);
        if is_ignored(&name) {
            continue;
        }
        // lstat relative to the open directory (no path walk per file).
        let meta = ent.metadata().map_err(|e| Error::io(ent.path(), e))?;
        let ft = meta.file_type();
        if ft.is_dir() {
            let (dir, prefix) = (top.dir.join(fname), format!("{name}/"));
            let next = list_dir(dir, prefix)?;
            stack.push(next);
        } else if ft.is_file() {
            out.push(&name, FileStat::of(&meta), None);
        } else if ft.is_symlink() {
            let path = ent.path();
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
            out.push(&name, FileStat::of(&tmeta), Some(target));
        } else {
            return Err(Error::SpecialFile {
                path: ent.path(),
                kind: kind_of(&ft),
            });
        }
    }
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
    fn depth_first_order_is_the_component_wise_sort() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        let files = [
            "a/b", "a.txt", "a-b", "ab", "A", "a b", "a/b.c/d", "a/b-c", "a/a/a/a", "\u{e9}", "z",
            "a0/x", "a/\u{7f}",
        ];
        for f in files {
            let p = r.join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, f).unwrap();
        }
        let mut want: Vec<&str> = files.to_vec();
        want.sort_by(|a, b| a.split('/').cmp(b.split('/')));
        let l = walk_listing(r, &[], false).unwrap();
        let got: Vec<&str> = (0..l.len()).map(|i| l.name(i)).collect();
        assert_eq!(got, want);
        assert_eq!(l.open_path(0), r.join(want[0]));
        assert_eq!(
            l.total_bytes(),
            files.iter().map(|f| f.len() as u64).sum::<u64>()
        );
        // Ignoring `a` removes `a/…` but neither `a.txt` nor `a0/x`.
        let l = walk_listing(r, &["./a/".into()], false).unwrap();
        let got: Vec<&str> = (0..l.len()).map(|i| l.name(i)).collect();
        assert_eq!(
            got,
            want.iter()
                .copied()
                .filter(|n| !n.starts_with("a/"))
                .collect::<Vec<_>>()
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
