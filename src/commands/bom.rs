//! `mlsign bom …`: build, validate, verify (drift + signature), sign, show.

use super::common::{load_signer, print_json, read_small};
use crate::cli::{
    BomAction, BomArgs, BomBuildArgs, BomShowArgs, BomSignArgs, BomValidateArgs, BomVerifyArgs,
    ShowFormat,
};
use anyhow::{anyhow, bail, Context, Result};
use mlsign::attest::{self, cert, Trust, VerifyingKey};
use mlsign::bom::cyclonedx::{ctype, Property};
use mlsign::bom::{self, drift, show, validate, BomError, BuildOptions};
use mlsign::report::{render, Exit, Finding, Format};
use serde_json::json;
use std::path::{Path, PathBuf};

/// The output format used for errors of this invocation.
pub fn format(a: &BomArgs) -> Format {
    match &a.action {
        None => a.build.format,
        Some(BomAction::Validate(v)) => v.format,
        Some(BomAction::Verify(v)) => v.format,
        Some(BomAction::Sign(v)) => v.format,
        Some(BomAction::Show(v)) => match v.format {
            ShowFormat::Json => Format::Json,
            _ => Format::Human,
        },
    }
}

pub fn run(a: BomArgs) -> Result<Exit> {
    match a.action {
        None => build(a.build),
        Some(BomAction::Validate(v)) => validate_cmd(v),
        Some(BomAction::Verify(v)) => verify(v),
        Some(BomAction::Sign(v)) => sign(v),
        Some(BomAction::Show(v)) => show_cmd(v),
    }
}

fn canonical_dir_of(p: &Path) -> Result<PathBuf> {
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::canonicalize(parent)
        .with_context(|| format!("output directory {} does not exist", parent.display()))
}

/// Verify the model's signature bundle and turn the outcome into `mlsign:signature.*` properties.
fn signature_properties(model: &Path, bundle: &Path, key: &Path) -> Result<Vec<Property>> {
    let pem = read_small(key, "public key")?;
    let key = VerifyingKey::from_pem(&pem).with_context(|| format!("{}", key.display()))?;
    let bytes = bom::read_limited(bundle, 64 << 20)?;
    let mut props = vec![
        Property::new(
            "mlsign:signature.bundle",
            bundle
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ),
        Property::new(
            "mlsign:signature.bundleSha256",
            bom::sign::sha256_hex(&bytes),
        ),
    ];
    let out = attest::verify_model(
        model,
        bundle,
        &Trust::Key(key),
        &attest::VerifyOptions::default(),
        &mlsign::digest::NoProgress,
    );
    match out {
        Ok(o) if o.verified() => {
            props.push(Property::new("mlsign:signature.status", "verified"));
            props.push(Property::new("mlsign:signature.signer", o.signer));
        }
        Ok(o) => props.push(Property::new(
            "mlsign:signature.status",
            format!(
                "failed: {} file(s) differ from the signature",
                o.differences.len()
            ),
        )),
        Err(attest::Error::Rejected { message, .. }) => props.push(Property::new(
            "mlsign:signature.status",
            format!("failed: {message}"),
        )),
        Err(e) => return Err(anyhow!(e).context(format!("--signature {}", bundle.display()))),
    }
    Ok(props)
}

fn build(a: BomBuildArgs) -> Result<Exit> {
    super::common::no_sarif(a.format)?;
    let (Some(model), Some(output)) = (a.model.clone(), a.output.clone()) else {
        bail!("usage: mlsign bom MODEL_DIR -o BOM.cdx.json (see --help)");
    };
    if !model.exists() {
        bail!("{}: no such file or directory", model.display());
    }
    let out_dir = canonical_dir_of(&output)?;
    let model_abs = std::fs::canonicalize(&model)?;
    if model_abs.is_dir() && out_dir.starts_with(&model_abs) {
        bail!(
            "{}: the BOM would be written inside the model directory and change what it describes; \
             write it beside the model",
            output.display()
        );
    }
    for d in &a.dataset {
        let abs = std::fs::canonicalize(d)
            .with_context(|| format!("--dataset {}: no such file or directory", d.display()))?;
        if abs.is_dir() && out_dir.starts_with(&abs) {
            bail!(
                "{}: the BOM would be written inside the dataset {}; write it elsewhere",
                output.display(),
                d.display()
            );
        }
    }
    super::common::refuse_existing(&output, a.force)?;
    let mut props = Vec::new();
    if let (Some(b), Some(k)) = (&a.signature, &a.signature_key) {
        props = signature_properties(&model, b, k)?;
    }
    let opts = BuildOptions {
        model: model.clone(),
        name: a.name.clone(),
        version: a.model_version.clone(),
        datasets: a.dataset.clone(),
        lineage: a.lineage.clone(),
        locks: a.lock.clone(),
        out_dir,
        reproducible: a.reproducible,
        model_properties: props,
        scan: a.scan,
        threads: a.threads,
        root: match a.root_type {
            crate::cli::BomRootType::Model => bom::RootKind::Model,
            crate::cli::BomRootType::Application => bom::RootKind::Application,
        },
    };
    let bom = bom::build(&opts)?;
    let text = bom::to_json(&bom)?;
    // Never write a BOM mlsign itself would reject.
    let issues = validate::validate(&validate::parse(text.as_bytes())?)?;
    if let Some(i) = issues.first() {
        bail!(
            "internal error: the generated BOM is invalid at {} ({}); please report this",
            i.pointer,
            i.message
        );
    }
    bom::write_public(&output, text.as_bytes(), a.force)?;
    let m = bom
        .metadata
        .as_ref()
        .and_then(|m| m.component.as_deref())
        .ok_or_else(|| anyhow!("internal error: no model component"))?;
    let datasets = bom
        .components
        .iter()
        .filter(|c| c.kind == ctype::DATA)
        .count();
    let libs = bom
        .components
        .iter()
        .filter(|c| c.kind == ctype::LIBRARY)
        .count();
    let steps: usize = bom
        .formulation
        .iter()
        .flat_map(|f| f.workflows.iter())
        .map(|w| w.tasks.len())
        .sum();
    let digest = m.hash("SHA-256").unwrap_or_default().to_string();
    match a.format {
        Format::Human => println!(
            "Wrote {}: model {} sha256:{} ({} files), {datasets} dataset(s), {steps} lineage \
             step(s), {libs} package(s); valid CycloneDX 1.6",
            output.display(),
            m.name,
            &digest[..digest.len().min(12)],
            m.components.len()
        ),
        _ => print_json(&json!({
            "output": output.display().to_string(),
            "serialNumber": bom.serial_number,
            "model": {"name": m.name, "sha256": digest, "files": m.components.len()},
            "datasets": datasets,
            "lineageSteps": steps,
            "packages": libs,
            "valid": true,
        })),
    }
    Ok(Exit::Pass)
}

fn validate_cmd(a: BomValidateArgs) -> Result<Exit> {
    let bytes = bom::read_limited(&a.file, bom::MAX_BOM_BYTES)?;
    let shown = a.file.display().to_string();
    let doc = validate::parse(&bytes).with_context(|| shown.clone())?;
    let issues = validate::validate(&doc).with_context(|| shown.clone())?;
    let report = bom::report::ValidateReport {
        file: shown,
        issues,
    };
    Ok(render::emit(a.format, &report))
}

fn trust(key: &Option<PathBuf>, roots: &Option<PathBuf>) -> Result<Trust> {
    match (key, roots) {
        (Some(k), _) => {
            let pem = read_small(k, "public key")?;
            Ok(Trust::Key(
                VerifyingKey::from_pem(&pem).with_context(|| format!("{}", k.display()))?,
            ))
        }
        (None, Some(r)) => {
            let pem = read_small(r, "root certificates")?;
            Ok(Trust::Roots(
                cert::load_pem_chain(pem.as_bytes()).with_context(|| format!("{}", r.display()))?,
            ))
        }
        (None, None) => bail!("--bundle needs --key PUB.pem or --cert-chain ROOTS.pem"),
    }
}

fn verify(a: BomVerifyArgs) -> Result<Exit> {
    let shown = a.bom.display().to_string();
    let bytes = bom::read_limited(&a.bom, bom::MAX_BOM_BYTES)?;
    let mut findings: Vec<Finding> = Vec::new();
    let mut signature = None;
    if let Some(bp) = &a.bundle {
        let t = if a.keyless.identity.is_some() || a.keyless.identity_regex.is_some() {
            Trust::Keyless(super::verify::keyless_trust(&a.keyless)?)
        } else {
            trust(&a.key, &a.cert_chain)?
        };
        let (status, finding) = bom::report::verify_signature(&bytes, &shown, bp, &t)?;
        if a.format == Format::Human {
            for w in &status.warnings {
                eprintln!("warning: {w}");
            }
        }
        findings.extend(finding);
        signature = Some(status);
    }
    let mut drift = None;
    if !a.no_rehash {
        let b = bom::from_json(&bytes).with_context(|| shown.clone())?;
        let r = drift::verify(
            &b,
            &a.bom,
            &drift::DriftOptions {
                base: a.base.clone(),
                model: a.model.clone(),
                threads: a.threads,
            },
        )
        .with_context(|| shown.clone())?;
        if r.checked.is_empty() && a.bundle.is_none() {
            bail!(
                "{shown}: nothing to re-hash: no model or dataset in the BOM records a local path \
                 (mlsign:path); pass --model DIR to check the model, or --bundle to check a signature"
            );
        }
        findings.extend(r.findings.iter().cloned());
        drift = Some(r);
    }
    let report = bom::report::VerifyReport {
        bom: shown,
        signature,
        drift,
        findings,
    };
    Ok(render::emit(a.format, &report))
}

fn sign(a: BomSignArgs) -> Result<Exit> {
    super::common::no_sarif(a.format)?;
    let shown = a.bom.display().to_string();
    let bytes = bom::read_limited(&a.bom, bom::MAX_BOM_BYTES)?;
    let doc = validate::parse(&bytes).with_context(|| shown.clone())?;
    let issues = validate::validate(&doc).with_context(|| shown.clone())?;
    if !issues.is_empty() {
        for i in &issues {
            eprintln!("  {} at {}: {}", i.code, i.pointer, i.message);
        }
        bail!(
            "{shown}: not signing an invalid BOM ({} error(s); see `mlsign bom validate`)",
            issues.len()
        );
    }
    let name = a
        .bom
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bom.cdx.json".into());
    let statement = bom::sign::statement(&bytes, &name)
        .map_err(|e| BomError::Usage(format!("{shown}: {e}")))?;
    let out = a.bundle.clone().unwrap_or_else(|| {
        let mut s = a.bom.as_os_str().to_os_string();
        s.push(".sig");
        PathBuf::from(s)
    });
    super::common::refuse_existing(&out, a.force)?;
    let bundle = if a.keyless {
        // Local files first; the token is fetched and the services called last.
        let (services, root, token) = super::keyless_sign::services_root_token(
            a.signing_config.as_deref(),
            a.trusted_root.as_deref(),
            a.staging,
            None,
            a.identity_token_file.as_deref(),
        )?;
        let b = mlsign::attest::sigstore::sign::sign(
            mlsign::attest::sigstore::sign::Content::Dsse {
                payload_type: attest::bundle::IN_TOTO_PAYLOAD_TYPE,
                payload: &statement,
            },
            &token,
            &services,
            &root,
        )?;
        b.to_string().into_bytes()
    } else {
        let Some(key) = &a.key else {
            bail!("pass --key PRIV.pem or --keyless");
        };
        let signer = load_signer(
            key,
            a.passphrase_env.as_deref(),
            a.cert.as_deref(),
            &a.chain,
        )?;
        attest::sign_statement(&signer, &statement)?.to_json()
    };
    bom::write_public(&out, &bundle, a.force)?;
    let digest = bom::sign::sha256_hex(&bytes);
    match a.format {
        Format::Human => println!(
            "Signed BOM {shown} (sha256:{}) as an in-toto attestation ({}) -> {}",
            &digest[..12],
            bom::PREDICATE_TYPE,
            out.display()
        ),
        _ => print_json(&json!({
            "bom": shown,
            "sha256": digest,
            "predicateType": bom::PREDICATE_TYPE,
            "bundle": out.display().to_string(),
        })),
    }
    Ok(Exit::Pass)
}

fn show_cmd(a: BomShowArgs) -> Result<Exit> {
    let shown = a.bom.display().to_string();
    let bytes = bom::read_limited(&a.bom, bom::MAX_BOM_BYTES)?;
    let b = bom::from_json(&bytes).with_context(|| shown.clone())?;
    let v = show::view(&b);
    let text = match a.format {
        ShowFormat::Human => v.human(),
        ShowFormat::Json => mlsign::report::json::to_string(&v),
        ShowFormat::Html => v.html(),
    };
    match &a.output {
        Some(p) => bom::write_public(p, text.as_bytes(), a.force)?,
        None => print!("{text}"),
    }
    Ok(Exit::Pass)
}
