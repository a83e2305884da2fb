//! `mlsign scan`: parse, [`mlsign::scan::scan_path`], render, exit code.

use crate::cli::ScanArgs;
use anyhow::Context;
use mlsign::report::{render, Exit};
use mlsign::scan::{scan_path, Policy};

pub fn run(args: ScanArgs) -> anyhow::Result<Exit> {
    let mut policy = match &args.policy {
        Some(p) => Policy::from_file(p)?,
        None => Policy::default(),
    };
    for a in &args.allow {
        policy.allow_entry(a)?;
    }
    for a in &args.allow_suspicious {
        policy.allow_suspicious(a)?;
    }
    if args.strict {
        policy.fail_on_suspicious = true;
    }
    let report = scan_path(&args.paths, &policy).context("scan failed")?;
    Ok(render::emit(args.format, &report))
}
