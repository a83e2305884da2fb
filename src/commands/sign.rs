use super::common::{hash_config, human_bytes, load_signer, print_json, read_small, Bar};
use crate::cli::{SignArgs, SubjectKind as CliKind};
use anyhow::{Context, Result};
use mlsign::attest::pkcs11::{Pkcs11Key, Pkcs11Uri};
use mlsign::attest::{
    cert as x509, sign_model_with, ManifestSource, SignExtras, SignOptions, Signer, SubjectKind,
};
use mlsign::report::{Exit, Format};
use std::path::PathBuf;

/// `PATH.sig` beside the model (never inside it).
pub(super) fn default_bundle(path: &std::path::Path) -> Result<PathBuf> {
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

/// The signer for `--pkcs11-uri` (key method, or certificate method with `--cert`).
fn pkcs11_signer(a: &SignArgs, uri: &str) -> Result<Signer> {
    let uri = Pkcs11Uri::parse(uri)?;
    let key = Pkcs11Key::open(&uri)?;
    let Some(leaf_path) = a.cert.as_deref() else {
        return Ok(Signer::from_backend(Box::new(key)));
    };
    let pem = read_small(leaf_path, "certificate")?;
    let mut leaf =
        x509::load_pem_chain(pem.as_bytes()).with_context(|| format!("{}", leaf_path.display()))?;
    let leaf = leaf.remove(0);
    let mut certs = Vec::new();
    for p in &a.chain {
        let pem = read_small(p, "certificate chain")?;
        certs.extend(
            x509::load_pem_chain(pem.as_bytes()).with_context(|| format!("{}", p.display()))?,
        );
    }
    Signer::backend_with_certificates(Box::new(key), leaf, certs)
        .with_context(|| format!("{}", leaf_path.display()))
}

pub(super) fn signer_of(a: &SignArgs) -> Result<Signer> {
    if !a.chain.is_empty() && a.cert.is_none() {
        anyhow::bail!("--chain needs --cert (the leaf certificate of the signing key)");
    }
    match (&a.pkcs11_uri, &a.key) {
        (Some(uri), _) => pkcs11_signer(a, uri),
        (None, Some(key)) => load_signer(
            key,
            a.passphrase_env.as_deref(),
            a.cert.as_deref(),
            &a.chain,
        ),
        (None, None) => anyhow::bail!("pass --key PRIV.pem or --pkcs11-uri URI"),
    }
}

pub fn run(a: SignArgs) -> Result<Exit> {
    if let Some(r) = a.path.to_str().filter(|s| mlsign::oci::is_oci(s)) {
        return super::oci::sign(&a, r);
    }
    super::common::no_sarif(a.format)?;
    // Everything that can fail cheaply fails before hashing.
    if !a.path.exists() {
        anyhow::bail!("{}: no such file or directory", a.path.display());
    }
    let config = hash_config(&a.path, &a.hashing)?;
    if a.keyless.keyless {
        return super::keyless_sign::run(&a, config);
    }
    let source = if let Some(old) = &a.since {
        if !old.is_file() {
            anyhow::bail!("--since {}: no such bundle", old.display());
        }
        ManifestSource::Since(old.clone())
    } else if !a.from_parts.is_empty() {
        ManifestSource::Parts(mlsign::digest::partition::expand_patterns(&a.from_parts)?)
    } else {
        ManifestSource::Hash
    };
    let signer = signer_of(&a)?;
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
    let extras = SignExtras {
        source,
        write_stat_cache: !a.hashing.no_stat_cache,
    };
    let bar = Bar::new(!a.hashing.no_progress);
    let out = sign_model_with(&a.path, &signer, &opts, &extras, &bar)?;
    for w in &out.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(miss) = &out.stat_cache_miss {
        let advice = match miss {
            mlsign::digest::cache::CacheError::Missing { .. } => {
                "; run `mlsign sign` or `mlsign hash` once to create it"
            }
            _ => "",
        };
        eprintln!("warning: {miss}; every file is re-hashed{advice}");
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
            if let Some(r) = &out.source.incremental {
                println!(
                    "incremental: {} files reused ({}), {} re-hashed ({})",
                    r.reused_files,
                    human_bytes(r.reused_bytes),
                    r.hashed_files,
                    human_bytes(r.hashed_bytes)
                );
            }
            if let Some(n) = out.source.parts {
                println!("merged {n} partial manifests (nothing re-hashed)");
            }
            if a.pkcs11_uri.is_some() {
                println!("key: {}", signer.describe());
            }
            println!("root sha256:{}", out.root_digest);
        }
        Format::Json | Format::Sarif | Format::Markdown => print_json(&serde_json::to_value(&out)?),
    }
    Ok(Exit::Pass)
}
