//! `mlsign policy init|check|explain`.

use super::common::print_json;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use mlsign::policy::{explain, init, lint, Policy};
use mlsign::report::{render, Exit, Format};
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  mlsign policy init -o policy.toml --key release.pub\n  mlsign policy init -o strict.toml --key release.pub --require signature,scan,bom,lineage,behave,approvals \\\n      --reviewer alice.pub --reviewer bob.pub --suite suite.toml --baseline base/model.safetensors\n  mlsign policy check policy.toml\n  mlsign policy explain policy.toml models/bert"
)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub action: PolicyAction,
}

#[derive(Subcommand, Debug)]
pub enum PolicyAction {
    /// Write a commented starter policy.
    Init(Box<PolicyInitArgs>),
    /// Lint a policy: errors (exit 2) for unknown keys and conflicting rules, remarks (exit 1)
    /// for settings that weaken it.
    Check(PolicyCheckArgs),
    /// Say in plain words what a policy requires, how its parts combine, and which mlsign
    /// commands the gate's checks correspond to.
    Explain(PolicyExplainArgs),
}

#[derive(Args, Debug)]
pub struct PolicyInitArgs {
    /// Where to write the policy.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Public key of a signing authority (PEM). Repeatable.
    #[arg(long = "key", value_name = "PUB.pem")]
    pub keys: Vec<PathBuf>,
    /// Root certificate(s) of a certificate authority (PEM). Repeatable.
    #[arg(long = "cert-root", value_name = "CA.pem")]
    pub cert_roots: Vec<PathBuf>,
    /// Keyless (Sigstore) signer identity of an authority: the certificate SAN, e.g.
    /// https://github.com/ORG/REPO/.github/workflows/release.yml@refs/heads/main. Repeatable;
    /// each needs a --keyless-issuer (one given applies to all).
    #[arg(long, value_name = "ID")]
    pub keyless_identity: Vec<String>,
    /// OIDC issuer of the keyless identities (e.g. https://token.actions.githubusercontent.com).
    #[arg(long, value_name = "URL", requires = "keyless_identity")]
    pub keyless_issuer: Vec<String>,
    /// Treat --keyless-identity values as anchored regexes (identity_regex).
    #[arg(long, requires = "keyless_identity")]
    pub keyless_regex: bool,
    /// Sigstore trusted_root.json for the keyless authorities (default: public good).
    #[arg(long, value_name = "FILE", requires = "keyless_identity")]
    pub keyless_trusted_root: Option<PathBuf>,
    /// Requirements, comma-separated: signature, scan, bom, lineage, behave, approvals.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub require: Vec<String>,
    /// Reviewer public key for `approvals`. Repeatable.
    #[arg(long = "reviewer", value_name = "PUB.pem")]
    pub reviewers: Vec<PathBuf>,
    /// Behave suite to pin (its SHA-256) for `behave`.
    #[arg(long, value_name = "SUITE.toml")]
    pub suite: Option<PathBuf>,
    /// Baseline weights file to pin (its SHA-256) for `behave`.
    #[arg(long, value_name = "WEIGHTS")]
    pub baseline: Option<PathBuf>,
    /// Lineage file for `lineage` (relative to the policy).
    #[arg(long, value_name = "FILE")]
    pub lineage: Option<String>,
    /// Subject pattern (path glob or oci:// glob). Repeatable; default "**".
    #[arg(long = "subject", value_name = "GLOB")]
    pub subjects: Vec<String>,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct PolicyCheckArgs {
    /// The policy file.
    pub policy: PathBuf,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct PolicyExplainArgs {
    /// The policy file.
    pub policy: PathBuf,
    /// A subject to explain the policy for (paths in the commands then name its evidence).
    pub subject: Option<String>,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

pub fn format(a: &PolicyArgs) -> Format {
    match &a.action {
        PolicyAction::Init(x) => x.format,
        PolicyAction::Check(x) => x.format,
        PolicyAction::Explain(x) => x.format,
    }
}

pub fn run(a: PolicyArgs) -> Result<Exit> {
    match a.action {
        PolicyAction::Init(x) => init_cmd(*x),
        PolicyAction::Check(x) => check_cmd(x),
        PolicyAction::Explain(x) => explain_cmd(x),
    }
}

fn sha256_file(p: &Path, what: &str) -> Result<String> {
    let m = mlsign::digest::Manifest::from_path(p, &mlsign::digest::HashConfig::default())
        .with_context(|| format!("{what} {}", p.display()))?;
    if !p.is_file() {
        bail!("{what} {}: must be a file", p.display());
    }
    m.resources()
        .first()
        .map(|r| r.hex())
        .with_context(|| format!("{what} {}: empty", p.display()))
}

fn init_cmd(a: PolicyInitArgs) -> Result<Exit> {
    super::common::no_sarif(a.format)?;
    super::common::refuse_existing(&a.output, a.force)?;
    let keyless = match (a.keyless_identity.len(), a.keyless_issuer.len()) {
        (0, _) => Vec::new(),
        (_, 0) => bail!("--keyless-identity needs --keyless-issuer URL (the OIDC issuer that vouches for it)"),
        (n, 1) => (0..n)
            .map(|i| (a.keyless_identity[i].clone(), a.keyless_issuer[0].clone()))
            .collect(),
        (n, m) if n == m => a
            .keyless_identity
            .iter()
            .cloned()
            .zip(a.keyless_issuer.iter().cloned())
            .collect(),
        (n, m) => bail!("{n} --keyless-identity but {m} --keyless-issuer: give one issuer for all, or one per identity"),
    };
    let o = init::InitOptions {
        keyless,
        keyless_identity_regex: a.keyless_regex,
        keyless_trusted_root: a.keyless_trusted_root.clone(),
        output: a.output.clone(),
        keys: a.keys.clone(),
        cert_roots: a.cert_roots.clone(),
        reviewers: a.reviewers.clone(),
        require: a.require.clone(),
        suite_sha256: a
            .suite
            .as_ref()
            .map(|p| sha256_file(p, "--suite"))
            .transpose()?,
        baseline_sha256: a
            .baseline
            .as_ref()
            .map(|p| sha256_file(p, "--baseline"))
            .transpose()?,
        lineage: a.lineage.clone(),
        subjects: a.subjects.clone(),
    };
    let text = init::render(&o).map_err(|e| match e {
        // The requirement came from this flag.
        init::InitError::UnknownRequirement { .. } => anyhow::Error::new(e).context("--require"),
        _ => anyhow::Error::new(e),
    })?;
    // What init writes must load.
    let p = Policy::from_bytes(text.as_bytes(), &a.output)
        .context("internal error: the generated policy does not load; please report this")?;
    mlsign::bom::write_public(&a.output, text.as_bytes(), a.force)?;
    match a.format {
        Format::Human => println!(
            "Wrote {} (requirements: {}); check it with `mlsign policy explain {}`",
            a.output.display(),
            p.requirements.names().join(", "),
            a.output.display()
        ),
        _ => print_json(&json!({
            "output": a.output.display().to_string(),
            "sha256": p.sha256,
            "requirements": p.requirements.names(),
        })),
    }
    Ok(Exit::Pass)
}

fn check_cmd(a: PolicyCheckArgs) -> Result<Exit> {
    let p = Policy::load(&a.policy)?;
    let report = lint::lint(&p, &a.policy.display().to_string());
    Ok(render::emit(a.format, &report))
}

fn explain_cmd(a: PolicyExplainArgs) -> Result<Exit> {
    super::common::no_sarif(a.format)?;
    let p = Policy::load(&a.policy)?;
    let e = explain::explain(&p, a.subject.as_deref());
    match a.format {
        Format::Human => print!("{}", e.human()),
        _ => print_json(&serde_json::to_value(&e)?),
    }
    Ok(Exit::Pass)
}
