//! `mlsign approve SUBJECT --key REVIEWER.pem`: sign an approval of the subject's digest.

use super::common::{load_signer, print_json};
use anyhow::{bail, Context, Result};
use clap::Args;
use mlsign::digest::{HashConfig, Manifest};
use mlsign::gate::approval;
use mlsign::report::{Exit, Format};
use serde_json::json;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  mlsign approve models/bert --key alice.pem --note \"eval report 2026-11 reviewed\"\n  mlsign approve models/bert --key alice.pem --expires-in 7\n\nThe approval is an in-toto statement about the subject's digest (SHA-256 content manifest, as\n`mlsign hash` prints it) with the reviewer's key hint, time, expiry and note, signed into a\nSigstore bundle written beside the subject as SUBJECT.approval.<key>.sig. The gate counts it\nonly for the same digest, before it expires, under a policy reviewer key that did not sign the\nmodel itself."
)]
pub struct ApproveArgs {
    /// The model directory or file being approved.
    pub subject: PathBuf,
    /// The reviewer's private key (PEM).
    #[arg(long, value_name = "REVIEWER.pem")]
    pub key: PathBuf,
    /// Read the key's passphrase from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub passphrase_env: Option<String>,
    /// A note recorded in the approval (what was reviewed).
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    /// Days until the approval expires.
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    pub expires_in: u32,
    /// Write the approval here instead of beside the subject.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Overwrite an existing approval file.
    #[arg(long)]
    pub force: bool,
    /// Worker threads for hashing (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

pub fn run(a: ApproveArgs) -> Result<Exit> {
    super::common::no_sarif(a.format)?;
    if a.expires_in == 0 || a.expires_in > 3650 {
        bail!("--expires-in must be between 1 and 3650 days");
    }
    if let Some(n) = &a.note {
        if n.len() > 4096 || n.chars().any(|c| c.is_control() && c != '\n') {
            bail!("--note must be at most 4096 bytes of text without control characters");
        }
    }
    let abs = std::fs::canonicalize(&a.subject)
        .with_context(|| format!("{}: no such file or directory", a.subject.display()))?;
    let signer = load_signer(&a.key, a.passphrase_env.as_deref(), None, &[])?;
    let cfg = HashConfig {
        threads: a.threads,
        ..HashConfig::default()
    };
    let m = Manifest::from_path(&abs, &cfg)?;
    let digest = m.root_digest_hex();
    let hint = signer.verifying_key().hint();
    let now = time::OffsetDateTime::now_utc();
    let expires = now + time::Duration::days(a.expires_in.into());
    let name = abs
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "subject".into());
    let payload = approval::statement(&name, &digest, &hint, now, expires, a.note.as_deref());
    let bundle = approval::sign(&signer, &payload)?;
    let out = match &a.output {
        Some(p) => p.clone(),
        None => approval::default_path(&abs, &hint)
            .context("cannot place an approval beside the file-system root; pass --output")?,
    };
    mlsign::bom::write_public(&out, &bundle.to_json(), a.force)?;
    match a.format {
        Format::Human => println!(
            "Approved {} sha256:{} as reviewer {} (expires in {} days) -> {}",
            a.subject.display(),
            &digest[..12],
            &hint[..16],
            a.expires_in,
            out.display()
        ),
        _ => print_json(&json!({
            "subject": a.subject.display().to_string(),
            "digest": format!("sha256:{digest}"),
            "reviewer": hint,
            "predicateType": approval::PREDICATE_TYPE,
            "approval": out.display().to_string(),
        })),
    }
    Ok(Exit::Pass)
}
