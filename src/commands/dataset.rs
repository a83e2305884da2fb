//! `mlsign dataset record|derive|verify`: the lineage file at the CLI edge.

use super::common::print_json;
use crate::cli::{DatasetAction, DatasetArgs, DatasetCommon, DatasetVerifyArgs};
use anyhow::{bail, Context, Result};
use mlsign::dataset::{self, RecordInput, StepInput, VerifyOptions};
use mlsign::report::{render, Exit, Format};
use serde_json::json;
use std::collections::BTreeMap;

pub fn format(a: &DatasetArgs) -> Format {
    match &a.action {
        DatasetAction::Record(r) => r.common.format,
        DatasetAction::Derive(d) => d.common.format,
        DatasetAction::Verify(v) => v.format,
    }
}

pub fn run(a: DatasetArgs) -> Result<Exit> {
    match a.action {
        DatasetAction::Record(r) => {
            let input = record_input(&r.common, r.source.clone());
            record(&r.common, &r.path, &input, &[], None)
        }
        DatasetAction::Derive(d) => {
            let mut parameters = BTreeMap::new();
            for p in &d.params {
                let Some((k, v)) = p.split_once('=') else {
                    bail!("--param {p:?}: expected KEY=VALUE");
                };
                if k.trim().is_empty() {
                    bail!("--param {p:?}: empty key");
                }
                if parameters
                    .insert(k.trim().to_string(), v.to_string())
                    .is_some()
                {
                    bail!("--param {k:?} given twice");
                }
            }
            let step = StepInput {
                name: d.step.clone(),
                command: d.command.clone(),
                parameters,
                code: d.code.iter().map(|c| c.display().to_string()).collect(),
                started_at: d.started_at.clone(),
                finished_at: d.finished_at.clone(),
                by: who(&d.common),
            };
            let input = record_input(&d.common, None);
            record(&d.common, &d.path, &input, &d.from, Some(&step))
        }
        DatasetAction::Verify(v) => verify(v),
    }
}

fn who(c: &DatasetCommon) -> Option<String> {
    c.by.clone()
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .filter(|s| !s.is_empty())
}

fn record_input(c: &DatasetCommon, source: Option<String>) -> RecordInput {
    RecordInput {
        name: c.name.clone(),
        version: c.version.clone(),
        source,
        license: c.license.clone(),
        split: c.split.clone(),
        description: c.description.clone(),
        by: who(c),
        replace: c.replace,
        threads: c.threads,
        recorded_at: c.recorded_at.clone(),
    }
}

fn record(
    c: &DatasetCommon,
    path: &std::path::Path,
    input: &RecordInput,
    parents: &[String],
    step: Option<&StepInput>,
) -> Result<Exit> {
    super::common::no_sarif(c.format)?;
    if !path.exists() {
        bail!("{}: no such file or directory", path.display());
    }
    let mut l = dataset::load_or_new(&c.lineage)?;
    let i = match dataset::record(&mut l, path, input, parents, step) {
        Ok(i) => i,
        Err(e @ dataset::RecordError::ParentChanged { .. }) => {
            let msg = format!(
                "{e}; run `mlsign dataset verify` to see what changed, and record it again \
                 before deriving from it"
            );
            eprintln!("error: {msg}");
            if c.format == Format::Json {
                print_json(&json!({"error": {"message": msg}}));
            }
            return Ok(Exit::Finding);
        }
        Err(e) => return Err(e).with_context(|| c.lineage.display().to_string()),
    };
    dataset::save(&l)?;
    let r = &l.lineage.datasets[i];
    match c.format {
        Format::Human => {
            println!(
                "Recorded {} {} ({} files) in {}",
                r.label(),
                dataset::verify::short(&r.digest),
                r.files.len(),
                c.lineage.display()
            );
            for p in &r.parents {
                println!("  from {}", dataset::verify::short(p));
            }
            if let Some(s) = &r.step {
                println!("  step {}: {}", s.name, s.command);
            }
        }
        _ => print_json(&json!({
            "lineage": c.lineage.display().to_string(),
            "name": r.name,
            "version": r.version,
            "digest": r.digest,
            "files": r.files.len(),
            "parents": r.parents,
            "step": r.step.as_ref().map(|s| &s.name),
        })),
    }
    Ok(Exit::Pass)
}

fn verify(a: DatasetVerifyArgs) -> Result<Exit> {
    let l = dataset::load(&a.lineage)?;
    let rep = dataset::verify(
        &l,
        &VerifyOptions {
            skip_code: a.skip_code,
            threads: a.threads,
        },
    )?;
    Ok(render::emit(a.format, &rep))
}
