//! The CLI edge: each command turns parsed arguments into library calls, renders the result in
//! the requested format and maps it to an exit code. Library errors get their context here.

use crate::cli::{Cli, Command};
use crate::report::Exit;

pub mod behave;

/// Run a parsed command line and return the process exit code.
pub fn run(cli: Cli) -> Exit {
    let result: anyhow::Result<Exit> = match cli.command {
        Command::Keygen(_) | Command::Hash(_) | Command::Sign(_) | Command::Verify(_) => {
            Err(anyhow::anyhow!("not built yet"))
        }
        Command::Behave(args) => behave::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            Exit::Error
        }
    }
}
