//! `mlsign scan`: reject unsafe pickles and code-carrying model files, statically.
//!
//! Files are identified by content ([`formats::sniff`]), pickles are replayed by a stack
//! machine that never executes anything ([`pickle::vm`]), and every global is judged by an exact
//! allowlist ([`policy::Policy`]). Entry point: [`scan_path`].

pub mod diags;
pub mod finding;
pub mod formats;
pub mod pickle;
pub mod policy;
pub mod presets;
mod render;
pub mod scanner;
pub mod source;

pub use finding::{ScanFinding, Verdict};
pub use policy::Policy;
pub use scanner::Scanner;

use diags::Code;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One scanned file.
#[derive(Clone, Debug, Serialize)]
pub struct FileReport {
    pub path: String,
    pub verdict: Verdict,
    pub findings: Vec<ScanFinding>,
}

/// The whole scan.
#[derive(Clone, Debug, Serialize)]
pub struct ScanReport {
    pub files: Vec<FileReport>,
    /// The policy's `fail_on_suspicious` (`--strict`): suspicious files fail the scan too.
    #[serde(skip)]
    pub fail_on_suspicious: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// The verdict of a file from its findings.
pub fn verdict_of(findings: &[ScanFinding]) -> Verdict {
    findings
        .iter()
        .map(ScanFinding::verdict)
        .max()
        .unwrap_or(Verdict::Clean)
}

/// A scanner for one file under `policy`, dispatching nested content through
/// [`formats::FORMATS`].
pub fn scanner(policy: &Policy) -> Scanner<'_> {
    Scanner::new(policy, &formats::REGISTRY)
}

/// Scan one file.
pub fn scan_file(path: &Path, policy: &Policy) -> Result<FileReport, ScanError> {
    let findings = formats::scan_file(&scanner(policy), path).map_err(|source| ScanError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(FileReport {
        path: path.display().to_string(),
        verdict: verdict_of(&findings),
        findings,
    })
}

/// Scan in-memory content (as if it were a file called `name`).
pub fn scan_bytes(name: &str, data: &[u8], policy: &Policy) -> FileReport {
    let findings = formats::scan_bytes(&scanner(policy), data);
    FileReport {
        path: name.to_string(),
        verdict: verdict_of(&findings),
        findings,
    }
}

/// What the walk found at a path: a file to scan, or something skipped (and why).
enum Walked {
    File(PathBuf),
    Skipped(PathBuf, String),
}

/// Why a non-regular entry is skipped, or `None` for a directory / file.
fn special_kind(ft: &std::fs::FileType) -> Option<&'static str> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return Some(
                "a FIFO (named pipe): reading it would block or return whatever a writer sends",
            );
        }
        if ft.is_char_device() || ft.is_block_device() {
            return Some("a device file");
        }
        if ft.is_socket() {
            return Some("a socket");
        }
    }
    if ft.is_dir() || ft.is_file() || ft.is_symlink() {
        None
    } else {
        Some("not a regular file")
    }
}

fn collect(path: &Path, out: &mut Vec<Walked>) -> Result<(), ScanError> {
    let io = |source| ScanError::Io {
        path: path.display().to_string(),
        source,
    };
    let meta = std::fs::symlink_metadata(path).map_err(io)?;
    let ft = meta.file_type();
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(io)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(io)?;
        entries.sort();
        for e in entries {
            collect(&e, out)?;
        }
    } else if ft.is_symlink() {
        // Links to files are scanned; links to directories are not followed (cycles, escapes),
        // but a loader given a path through them would read what is there: report them.
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() => out.push(Walked::File(path.to_path_buf())),
            Ok(m) if m.is_dir() => out.push(Walked::Skipped(
                path.to_path_buf(),
                "a symbolic link to a directory, which is not followed: its files were not scanned (scan the target directory itself)".into(),
            )),
            Ok(m) => out.push(Walked::Skipped(
                path.to_path_buf(),
                format!("a symbolic link to {}", special_kind(&m.file_type()).unwrap_or("something that is not a regular file")),
            )),
            Err(e) => out.push(Walked::Skipped(
                path.to_path_buf(),
                format!("a symbolic link whose target cannot be read ({e})"),
            )),
        }
    } else if meta.is_file() {
        out.push(Walked::File(path.to_path_buf()));
    } else if let Some(why) = special_kind(&ft) {
        out.push(Walked::Skipped(path.to_path_buf(), why.to_string()));
    }
    Ok(())
}

/// Scan files and directories (recursively, in sorted order). Symbolic links to files are
/// scanned; links to directories are not followed. FIFOs, devices, sockets, links to
/// directories and dangling links are reported as skipped (SCN032, unscannable), never silently.
pub fn scan_path(paths: &[PathBuf], policy: &Policy) -> Result<ScanReport, ScanError> {
    let mut walked = vec![];
    for p in paths {
        collect(p, &mut walked)?;
    }
    let files = walked
        .iter()
        .map(|w| match w {
            Walked::File(f) => scan_file(f, policy),
            Walked::Skipped(f, why) => {
                let findings = vec![ScanFinding::new(
                    Code::Scn032,
                    crate::report::Severity::High,
                    format!("skipped: {why}"),
                )];
                Ok(FileReport {
                    path: f.display().to_string(),
                    verdict: verdict_of(&findings),
                    findings,
                })
            }
        })
        .collect::<Result<_, _>>()?;
    Ok(ScanReport {
        files,
        fail_on_suspicious: policy.fail_on_suspicious,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cheap, deterministic mutation smoke over every parser (the real fuzzing is in fuzz/,
    /// see scripts/scan-fuzz-smoke.sh): mutated seeds must give findings, never a panic.
    #[test]
    fn mutation_smoke_never_panics() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/scan/torch");
        let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect();
        seeds.push(b"cos\nsystem\n(S'id'\ntR.".to_vec());
        seeds.push(b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x02id\x85R.".to_vec());
        seeds.push(b"\x93NUMPY\x01\x00\x16\x00{'descr': '|O'}   \n\x80\x02N.".to_vec());
        seeds.push(
            b"GGUF\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
                .to_vec(),
        );
        let mut policy = Policy::default();
        policy.max_member_bytes = 1 << 22;
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..20_000 {
            let mut d = seeds[i % seeds.len()].clone();
            for _ in 0..1 + rnd() % 8 {
                if d.is_empty() {
                    break;
                }
                let p = (rnd() as usize) % d.len();
                match rnd() % 5 {
                    0 => d[p] = rnd() as u8,
                    1 => d[p] ^= 1 << (rnd() % 8),
                    2 => d.truncate(p),
                    3 => d.insert(p, rnd() as u8),
                    _ => {
                        let v = [0u8, 0xff, 0x7f, 0x80][(rnd() % 4) as usize];
                        let end = (p + 4).min(d.len());
                        d[p..end].fill(v);
                    }
                }
            }
            let r = scan_bytes("mutant", &d, &policy);
            assert!(r.findings.len() < 1_000_000);
        }
    }

    /// The pickle VM reads through a window; reading every buffer through tiny windows must
    /// find the same things at the same offsets, on seeds and on their mutants alike.
    #[test]
    fn findings_do_not_depend_on_the_read_window() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/scan/torch");
        let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect();
        seeds.push(b"cos\nsystem\n(S'id'\ntR.".to_vec());
        seeds.push(b"\x80\x04\x95\x0e\x00\x00\x00\x00\x00\x00\x00cbuiltins\nset\n.".to_vec());
        // A nested pickle in BINBYTES, a long BINUNICODE, a joblib-style frame past STOP.
        let inner = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R.";
        let mut nested = b"\x80\x03cpickle\nloads\nB".to_vec();
        nested.extend_from_slice(&(inner.len() as u32).to_le_bytes());
        nested.extend_from_slice(inner);
        nested.extend_from_slice(b"\x85R.N.  \n");
        seeds.push(nested);
        let mut long = b"\x80\x04X\x00\x20\x00\x00".to_vec();
        long.extend(std::iter::repeat_n(b'a', 0x2000));
        long.extend_from_slice(b"\xed\xa0\x80.");
        seeds.push(long);
        let policy = Policy::default();
        let mut x: u64 = 0x2545f4914f6cdd1d;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let json = |r: &FileReport| serde_json::to_string(&r.findings).unwrap();
        for i in 0..1500 {
            let mut d = seeds[i % seeds.len()].clone();
            if i >= seeds.len() {
                for _ in 0..1 + rnd() % 4 {
                    if d.is_empty() {
                        break;
                    }
                    let p = (rnd() as usize) % d.len();
                    match rnd() % 3 {
                        0 => d[p] = rnd() as u8,
                        1 => d.truncate(p),
                        _ => d.insert(p, rnd() as u8),
                    }
                }
            }
            same_through_every_window(&d, || json(&scan_bytes("m", &d, &policy)));
        }
    }

    /// `scan` gives the same answer whole and through read windows of 1, 7 and 4096 bytes.
    fn same_through_every_window(d: &[u8], scan: impl Fn() -> String) {
        let whole = scan();
        for w in [1usize, 7, 4096] {
            assert_eq!(
                pickle::with_window(w, &scan),
                whole,
                "window {w}, input {d:?}"
            );
        }
    }

    /// Fuzz finds: a FRAME far past the data followed by an argument longer than what is left.
    #[test]
    fn window_regressions_from_the_fuzzer() {
        let policy = Policy::default();
        let cases: [&[u8]; 2] = [
            b"\x80\x04\x95\x5d\x02\x79\x55\x09\x00\x00\x00\x54\x79\x70\x65\x24\x52\x2e\x70\x65\x24\x2c\x52\x2e",
            b"\x80\x04\x95\x00\x5b\x00\x00\x00\x00\x00\x00\x8e\x02\x6f\x73\x63\x6f\x00\x1f\xc3\xc3\xc3\xc3\xc3\xc3\xc3\xc3\xc3\xc3\xc3\xc3\xc3\xc3\xc3\xc3\xc3\x65\x6d",
        ];
        for d in cases {
            same_through_every_window(d, || {
                let r = pickle::scan_streams(&scanner(&policy), d, 0, None);
                format!("{:?} {}", r.findings, r.end)
            });
        }
    }
}
