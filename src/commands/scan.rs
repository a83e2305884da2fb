//! `mlsign scan`: render a [`mlsign::scan::ScanReport`] and map verdicts to the exit code.

use crate::cli::ScanArgs;
use anyhow::Context;
use mlsign::report::{sarif, Exit, Format};
use mlsign::scan::{scan_path, Policy, Verdict};

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
    let fail = report.files.iter().any(|f| match f.verdict {
        Verdict::Malicious | Verdict::Unscannable => true,
        Verdict::Suspicious => policy.fail_on_suspicious,
        Verdict::Clean => false,
    });
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Sarif => {
            let all: Vec<_> = report
                .files
                .iter()
                .flat_map(|f| f.findings.iter().map(|x| x.to_finding(&f.path)))
                .collect();
            println!("{}", serde_json::to_string_pretty(&sarif::to_sarif(&all))?);
        }
        Format::Human => {
            for f in &report.files {
                println!("{}: {}", f.path, f.verdict.as_str().to_uppercase());
                for x in &f.findings {
                    if x.severity == mlsign::report::Severity::Info && f.verdict == Verdict::Clean {
                        continue;
                    }
                    let mut loc = String::new();
                    if let Some(m) = &x.member {
                        loc.push_str(&format!(" {m}"));
                    }
                    if let Some(s) = x.stream {
                        loc.push_str(&format!(" stream {s}"));
                    }
                    if let Some(o) = x.offset {
                        loc.push_str(&format!(" @{o}"));
                    }
                    println!("  {} [{}]{}: {}", x.code, x.severity, loc, x.message);
                }
            }
            let count = |v: Verdict| report.files.iter().filter(|f| f.verdict == v).count();
            println!(
                "{} file(s): {} clean, {} suspicious, {} malicious, {} unscannable",
                report.files.len(),
                count(Verdict::Clean),
                count(Verdict::Suspicious),
                count(Verdict::Malicious),
                count(Verdict::Unscannable)
            );
        }
    }
    Ok(if fail { Exit::Finding } else { Exit::Pass })
}
