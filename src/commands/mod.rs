//! The CLI edge: each command turns parsed arguments into library calls, renders the result in
//! the requested format and maps it to an exit code. Library errors get their context here.

pub mod approve;
pub mod attest;
mod bom;
mod common;
pub mod completions;
mod conformance;
mod dataset;
pub mod gate;
mod hash;
mod keygen;
mod keyless_sign;
mod oci;
pub mod policy;
mod pull;
mod push;
pub mod scan;
pub mod serve;
mod sign;
mod verify;
mod verify_parts;

use crate::cli::{Cli, Command};
use mlsign::report::{Exit, Format};

#[cfg(feature = "behave")]
pub mod behave;

/// Run a parsed command line and return the process exit code.
pub fn run(cli: Cli) -> Exit {
    let (format, result) = match cli.command {
        Command::Keygen(a) => (a.format, keygen::run(a)),
        Command::Hash(a) => (a.format, hash::run(a)),
        Command::Sign(a) => (a.format, sign::run(a)),
        Command::Verify(a) => (a.format, verify::run(a)),
        Command::Bom(a) => (bom::format(&a), bom::run(a)),
        Command::Dataset(a) => (dataset::format(&a), dataset::run(a)),
        Command::Scan(a) => (a.format, scan::run(a)),
        Command::Conformance(a) => (conformance::format(&a), conformance::run(a)),
        Command::Push(a) => (a.format, push::run(a)),
        Command::Pull(a) => (a.format, pull::run(a)),
        Command::Gate(a) => (a.format, gate::run(a)),
        Command::Policy(a) => (policy::format(&a), policy::run(a)),
        Command::Approve(a) => (a.format, approve::run(a)),
        Command::Attest(a) => (attest::format(&a), attest::run(a)),
        Command::Serve(a) => (Format::Human, serve::run(a)),
        Command::Completions(a) => (Format::Human, completions::run_completions(a)),
        Command::Man(a) => (a.format, completions::run_man(a)),
        #[cfg(feature = "behave")]
        Command::Behave(a) => (behave::format(&a), behave::run(a)),
        #[cfg(not(feature = "behave"))]
        Command::Behave(_) => (
            Format::Human,
            Err(anyhow::anyhow!(
                "this mlsign was built without behavioural diffs: rebuild with the default features"
            )),
        ),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            common::report_error(format, &e);
            Exit::Error
        }
    }
}

#[allow(dead_code)]
fn _formats_are_exhaustive(f: Format) {
    match f {
        Format::Human | Format::Json | Format::Sarif | Format::Markdown => {}
    }
}
