//! `mlsign scan`: reject unsafe pickles and code-carrying model files, statically.
//!
//! Files are identified by content ([`formats::sniff`]), pickles are replayed by a stack
//! machine that never executes anything ([`pickle::vm`]), and every global is judged by an exact
//! allowlist ([`policy::Policy`]). Entry point: [`scan_path`].

pub mod finding;
pub mod formats;
pub mod pickle;
pub mod policy;
pub mod presets;

pub use finding::{ScanFinding, Verdict};
pub use policy::Policy;

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

/// Scan one file.
pub fn scan_file(path: &Path, policy: &Policy) -> Result<FileReport, ScanError> {
    let findings = formats::scan_file(path, policy).map_err(|source| ScanError::Io {
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
    let findings = formats::scan_bytes(data, &finding::Ctx::default(), policy);
    FileReport {
        path: name.to_string(),
        verdict: verdict_of(&findings),
        findings,
    }
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), ScanError> {
    let io = |source| ScanError::Io {
        path: path.display().to_string(),
        source,
    };
    let meta = std::fs::symlink_metadata(path).map_err(io)?;
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
    } else if meta.is_file()
        || (meta.file_type().is_symlink()
            && std::fs::metadata(path)
                .map(|m| m.is_file())
                .unwrap_or(false))
    {
        out.push(path.to_path_buf());
    }
    Ok(())
}

/// Scan files and directories (recursively, in sorted order). Symbolic links to files are
/// scanned; links to directories are not followed.
pub fn scan_path(paths: &[PathBuf], policy: &Policy) -> Result<ScanReport, ScanError> {
    let mut files = vec![];
    for p in paths {
        collect(p, &mut files)?;
    }
    let files = files
        .iter()
        .map(|f| scan_file(f, policy))
        .collect::<Result<_, _>>()?;
    Ok(ScanReport { files })
}
