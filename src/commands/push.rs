//! `mlsign push MODEL_DIR oci://…`.

use super::common::{human_bytes, load_signer, no_sarif, print_json};
use super::oci::{options, parse_ref};
use crate::cli::PushArgs;
use anyhow::Result;
use mlsign::report::{Exit, Format};

pub fn run(a: PushArgs) -> Result<Exit> {
    no_sarif(a.format)?;
    let r = parse_ref(&a.reference)?;
    if !a.path.is_dir() {
        anyhow::bail!(
            "{}: not a directory (push takes a model directory)",
            a.path.display()
        );
    }
    let signer = match (&a.key, a.sign) {
        (Some(k), true) => Some(load_signer(k, a.passphrase_env.as_deref(), None, &[])?),
        (Some(_), false) => {
            anyhow::bail!("--key is for --sign; add --sign to sign the pushed model")
        }
        (None, true) if !a.keyless => {
            anyhow::bail!("--sign needs --key PRIV.pem or --keyless")
        }
        _ => None,
    };
    let opts = options(&a.registry)?;
    let out = if a.keyless {
        let (services, root, token) = super::keyless_sign::services_root_token(
            a.signing_config.as_deref(),
            a.trusted_root.as_deref(),
            a.staging,
            None,
            a.identity_token_file.as_deref(),
        )?;
        let k = mlsign::oci::KeylessSigner {
            token: &token,
            services: &services,
            root: &root,
        };
        mlsign::oci::push_model_with(&a.path, &r, &opts, Some(&k))?
    } else {
        mlsign::oci::push_model(&a.path, &r, &opts, signer.as_ref())?
    };
    match a.format {
        Format::Human => {
            println!(
                "Pushed {} as {} ({} files, {}; {} uploaded)",
                a.path.display(),
                out.reference,
                out.files,
                human_bytes(out.bytes),
                human_bytes(out.uploaded)
            );
            if let Some(s) = &out.signature {
                println!(
                    "  OMS signature {} attached via the {}",
                    s.signature, s.stored
                );
            }
        }
        _ => print_json(&serde_json::to_value(&out)?),
    }
    Ok(Exit::Pass)
}
