use super::common::{hash_config, human_bytes, load_signer, print_json, Bar};
use crate::attest::{sign_model, SignOptions, SubjectKind};
use crate::cli::{SignArgs, SubjectKind as CliKind};
use crate::report::{Exit, Format};
use anyhow::{Context, Result};
use std::path::PathBuf;

/// `PATH.sig` beside the model (never inside it).
fn default_bundle(path: &std::path::Path) -> Result<PathBuf> {
    let root = std::fs::canonicalize(path).with_context(|| format!("{}", path.display()))?;
    let name = root.file_name().with_context(|| {
        format!(
            "{}: cannot place a bundle beside the file-system root; pass --bundle",
            root.display()
        )
    })?;
    let mut n = name.to_os_string();
    n.push(".sig");
    Ok(root.with_file_name(n))
}

pub fn run(a: SignArgs) -> Result<Exit> {
    if let Some(r) = a.path.to_str().filter(|s| crate::oci::is_oci(s)) {
        return super::oci::sign(&a, r);
    }
    super::common::no_sarif(a.format)?;
    // Everything that can fail cheaply fails before hashing.
    if !a.path.exists() {
        anyhow::bail!("{}: no such file or directory", a.path.display());
    }
    let config = hash_config(&a.path, &a.hashing)?;
    let signer = load_signer(
        &a.key,
        a.passphrase_env.as_deref(),
        a.cert.as_deref(),
        &a.chain,
    )?;
    let bundle_path = match &a.bundle {
        Some(b) => b.clone(),
        None => default_bundle(&a.path)?,
    };
    let opts = SignOptions {
        kind: match a.kind {
            CliKind::Model => SubjectKind::Model,
            CliKind::Dataset => SubjectKind::Dataset,
        },
        config,
        bundle_path,
        force: a.force,
    };
    let bar = Bar::new(!a.hashing.no_progress);
    let out = sign_model(&a.path, &signer, &opts, &bar)?;
    for w in &out.warnings {
        eprintln!("warning: {w}");
    }
    match a.format {
        Format::Human => {
            println!(
                "Signed {} {} ({} files, {}, {}) -> {}",
                out.kind.name(),
                out.subject,
                out.files,
                human_bytes(out.bytes),
                out.algorithm,
                out.bundle.display()
            );
            println!("root sha256:{}", out.root_digest);
        }
        Format::Json | Format::Sarif => print_json(&serde_json::to_value(&out)?),
    }
    Ok(Exit::Pass)
}
