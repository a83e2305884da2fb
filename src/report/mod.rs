//! Findings, verdicts and the output sinks (human, JSON, SARIF, Markdown) shared by every command.
//!
//! Every check in mlsign ends as [`Finding`]s with a stable code from [`codes`]; the output
//! formats are sinks over the same data, so nothing is computed for one format only.

pub mod check;
pub mod codes;
pub mod finding;
pub mod github;
pub mod human;
pub mod json;
pub mod markdown;
pub mod render;
pub mod sarif;

pub use check::{Check, CheckStatus, Verdict};
pub use finding::{Finding, Location, Severity};
pub use render::{Report, Table};

/// Output format selected with `--format`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// Readable text for a terminal.
    #[default]
    Human,
    /// Machine-readable JSON on stdout.
    Json,
    /// SARIF 2.1.0 for code-scanning dashboards (commands that produce findings).
    Sarif,
    /// A CI job summary (`$GITHUB_STEP_SUMMARY`): verdict, table, findings; under 1 MiB
    /// (commands that produce findings).
    Markdown,
}

/// Process exit codes shared by every command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Verified / clean / policy satisfied.
    Pass = 0,
    /// A finding, a verification failure or a policy violation.
    Finding = 1,
    /// Usage or I/O error: nothing could be decided.
    Error = 2,
}
