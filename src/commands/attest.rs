//! `mlsign attest sign|verify REPORT`: sign a JSON report mlsign wrote (behave, gate) as an
//! in-toto attestation, so the gate can require that a policy authority vouched for it
//! (library: [`mlsign::attest::document`]).

use super::common::{load_signer, print_json, read_small};
use crate::cli::KeylessVerifyArgs;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use mlsign::attest::{self, cert, document, Trust, VerifyingKey};
use mlsign::report::{render, Exit, Format};
use serde_json::json;
use std::path::{Path, PathBuf};

/// Reports are small; a multi-subject gate report stays far below this.
const MAX_REPORT_BYTES: u64 = 64 << 20;

#[derive(Args, Debug)]
pub struct AttestArgs {
    #[command(subcommand)]
    pub command: AttestCommand,
}

#[derive(Subcommand, Debug)]
pub enum AttestCommand {
    /// Sign a report (behave or gate JSON) into REPORT.sig.
    #[command(
        after_help = "Examples:\n  mlsign behave --baseline base --candidate bert --suite s.json --format json > bert.behave.json\n  mlsign attest sign bert.behave.json --key ci.pem\n  mlsign attest sign bert.behave.json --keyless          # in GitHub Actions\n\nThe statement's subject is the report file (SHA-256 of its exact bytes); its predicate is the\nreport; the predicate type follows the report's schema (mlsign-behave/1:\nhttps://mlsign.dev/behave/v1, mlsign-gate/1: https://mlsign.dev/gate/v1) unless given."
    )]
    Sign(AttestSignArgs),
    /// Verify a signed report against its bundle.
    Verify(AttestVerifyArgs),
}

#[derive(Args, Debug)]
pub struct AttestSignArgs {
    /// The report (JSON object).
    pub report: PathBuf,
    /// Private key (PEM).
    #[arg(long, value_name = "PRIV.pem", required_unless_present = "keyless")]
    pub key: Option<PathBuf>,
    /// Read the key's passphrase from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub passphrase_env: Option<String>,
    /// Sign keylessly (Sigstore: Fulcio certificate, Rekor entry), as `mlsign sign --keyless`.
    #[arg(long, conflicts_with_all = ["key", "passphrase_env"])]
    pub keyless: bool,
    /// Keyless: read the OIDC identity token from this file.
    #[arg(long, value_name = "FILE", requires = "keyless")]
    pub identity_token_file: Option<PathBuf>,
    /// Keyless: Sigstore signing_config.json [default: public good].
    #[arg(long, value_name = "FILE", requires = "keyless")]
    pub signing_config: Option<PathBuf>,
    /// Keyless: trusted_root.json the new bundle is checked against [default: production].
    #[arg(long, value_name = "FILE", requires = "keyless")]
    pub trusted_root: Option<PathBuf>,
    /// Keyless: Sigstore's staging instance.
    #[arg(long, requires = "keyless", conflicts_with = "trusted_root")]
    pub staging: bool,
    /// Predicate type [default: from the report's schema].
    #[arg(long, value_name = "URI")]
    pub predicate_type: Option<String>,
    /// Where to write the bundle [default: REPORT.sig].
    #[arg(long, value_name = "OUT.json")]
    pub bundle: Option<PathBuf>,
    /// Overwrite an existing bundle.
    #[arg(long)]
    pub force: bool,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct AttestVerifyArgs {
    /// The report (JSON object).
    pub report: PathBuf,
    /// Its bundle [default: REPORT.sig].
    #[arg(long, value_name = "B.json")]
    pub bundle: Option<PathBuf>,
    /// Public key for a bundle made with the key method.
    #[arg(long, value_name = "PUB.pem", conflicts_with = "cert_chain")]
    pub key: Option<PathBuf>,
    /// Trusted root certificates for the certificate method.
    #[arg(long, value_name = "ROOTS.pem")]
    pub cert_chain: Option<PathBuf>,
    #[command(flatten)]
    pub keyless: KeylessVerifyArgs,
    /// Predicate type [default: from the report's schema].
    #[arg(long, value_name = "URI")]
    pub predicate_type: Option<String>,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

pub fn format(a: &AttestArgs) -> Format {
    match &a.command {
        AttestCommand::Sign(s) => s.format,
        AttestCommand::Verify(v) => v.format,
    }
}

pub fn run(a: AttestArgs) -> Result<Exit> {
    match a.command {
        AttestCommand::Sign(s) => sign(s),
        AttestCommand::Verify(v) => verify(v),
    }
}

fn read_report(p: &Path, given: Option<&str>) -> Result<(Vec<u8>, String)> {
    let bytes = mlsign::bom::read_limited(p, MAX_REPORT_BYTES)?;
    let doc = document::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
    let pt = match (given, document::predicate_for(&doc)) {
        (Some(g), _) => g.to_string(),
        (None, Some(pt)) => pt.to_string(),
        (None, None) => bail!(
            "{}: not a report mlsign knows (schema {}); pass --predicate-type URI",
            p.display(),
            doc["schema"]
        ),
    };
    Ok((bytes, pt))
}

fn sig_path(report: &Path, given: &Option<PathBuf>) -> PathBuf {
    given.clone().unwrap_or_else(|| {
        let mut s = report.as_os_str().to_os_string();
        s.push(".sig");
        PathBuf::from(s)
    })
}

fn sign(a: AttestSignArgs) -> Result<Exit> {
    super::common::no_sarif(a.format)?;
    let (bytes, pt) = read_report(&a.report, a.predicate_type.as_deref())?;
    let name = a
        .report
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report.json".into());
    let statement = document::statement(&bytes, &name, &pt)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.report.display()))?;
    let out = sig_path(&a.report, &a.bundle);
    super::common::refuse_existing(&out, a.force)?;
    let bundle = if a.keyless {
        let (services, root, token) = super::keyless_sign::services_root_token(
            a.signing_config.as_deref(),
            a.trusted_root.as_deref(),
            a.staging,
            None,
            a.identity_token_file.as_deref(),
        )?;
        attest::sigstore::sign::sign(
            attest::sigstore::sign::Content::Dsse {
                payload_type: attest::bundle::IN_TOTO_PAYLOAD_TYPE,
                payload: &statement,
            },
            &token,
            &services,
            &root,
        )?
        .to_string()
        .into_bytes()
    } else {
        let Some(key) = &a.key else {
            bail!("pass --key PRIV.pem or --keyless");
        };
        let signer = load_signer(key, a.passphrase_env.as_deref(), None, &[])?;
        attest::sign_statement(&signer, &statement)?.to_json()
    };
    mlsign::bom::write_public(&out, &bundle, a.force)?;
    let digest = mlsign::bom::sign::sha256_hex(&bytes);
    match a.format {
        Format::Human => println!(
            "Signed {} (sha256:{}) as an in-toto attestation ({pt}) -> {}",
            a.report.display(),
            &digest[..12],
            out.display()
        ),
        _ => print_json(&json!({
            "report": a.report.display().to_string(),
            "sha256": digest,
            "predicateType": pt,
            "bundle": out.display().to_string(),
        })),
    }
    Ok(Exit::Pass)
}

fn verify(a: AttestVerifyArgs) -> Result<Exit> {
    let (bytes, pt) = read_report(&a.report, a.predicate_type.as_deref())?;
    let bp = sig_path(&a.report, &a.bundle);
    let trust = if a.keyless.identity.is_some() || a.keyless.identity_regex.is_some() {
        Trust::Keyless(super::verify::keyless_trust(&a.keyless)?)
    } else {
        match (&a.key, &a.cert_chain) {
            (Some(k), _) => {
                let pem = read_small(k, "public key")?;
                Trust::Key(VerifyingKey::from_pem(&pem).with_context(|| format!("{}", k.display()))?)
            }
            (None, Some(r)) => {
                let pem = read_small(r, "root certificates")?;
                Trust::Roots(
                    cert::load_pem_chain(pem.as_bytes())
                        .with_context(|| format!("{}", r.display()))?,
                )
            }
            (None, None) => bail!(
                "pass --key PUB.pem, --cert-chain ROOTS.pem, or --identity ID --issuer URL (keyless)"
            ),
        }
    };
    let shown = a.report.display().to_string();
    let report = document::verify_report(&bytes, &shown, &pt, &bp, &trust)?;
    Ok(render::emit(a.format, &report))
}
