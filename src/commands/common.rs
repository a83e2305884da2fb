//! Helpers shared by the commands: hashing options, sizes, progress, passphrases, output.

use crate::cli::{HashAlg, HashingArgs};
use anyhow::{bail, Context, Result};
use mlsign::digest::{normalize_ignore, HashAlgorithm, HashConfig, Method, Progress, GIT_PATHS};
use mlsign::report::Format;
use std::io::IsTerminal;
use std::path::Path;
use zeroize::Zeroizing;

/// Parse `4096`, `64M`, `1G` (powers of 1000) or `64Mi`, `1Gi` (powers of 1024); `B` optional.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let t = t.strip_suffix(['B', 'b']).unwrap_or(t);
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().with_context(|| {
        format!("invalid size {s:?}: expected a number such as 1G, 512Mi or 1000000")
    })?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" => 1,
        "k" => 1_000,
        "m" => 1_000_000,
        "g" => 1_000_000_000,
        "t" => 1_000_000_000_000,
        "ki" => 1 << 10,
        "mi" => 1 << 20,
        "gi" => 1 << 30,
        "ti" => 1 << 40,
        _ => bail!("invalid size {s:?}: unknown unit {unit:?} (use K, M, G, Ki, Mi, Gi)"),
    };
    let v = n
        .checked_mul(mult)
        .with_context(|| format!("size {s:?} is too large"))?;
    if v == 0 {
        bail!("invalid size {s:?}: must be at least 1 byte");
    }
    Ok(v)
}

pub fn algorithm(a: HashAlg) -> HashAlgorithm {
    match a {
        HashAlg::Sha256 => HashAlgorithm::Sha256,
        HashAlg::Blake3 => HashAlgorithm::Blake3,
        HashAlg::Blake2b => HashAlgorithm::Blake2b,
    }
}

/// Root-relative ignore paths from `--ignore` flags; warns about ones outside the root.
pub fn ignore_list(root: &Path, ignore: &[std::path::PathBuf]) -> Vec<String> {
    let mut out = Vec::new();
    for p in ignore {
        match normalize_ignore(root, p) {
            Some(rel) => out.push(rel),
            None => eprintln!(
                "warning: --ignore {}: not inside {}; nothing to ignore",
                p.display(),
                root.display()
            ),
        }
    }
    out
}

pub fn hash_config(root: &Path, a: &HashingArgs) -> Result<HashConfig> {
    let mut ignore_paths: Vec<String> = if a.no_ignore_git_paths {
        Vec::new()
    } else {
        GIT_PATHS.iter().map(|s| s.to_string()).collect()
    };
    ignore_paths.extend(ignore_list(root, &a.ignore));
    ignore_paths.sort();
    ignore_paths.dedup();
    let method = match &a.shard_size {
        None => Method::Files,
        Some(s) => Method::Shards {
            shard_size: parse_size(s).context("--shard-size")?,
        },
    };
    let algorithm = algorithm(a.algorithm);
    if algorithm == HashAlgorithm::Blake3 && matches!(method, Method::Shards { .. }) {
        // model_signing silently falls back to file mode here; say it instead.
        eprintln!("note: model_signing cannot verify BLAKE3 shards (its API falls back to whole files); mlsign can");
    }
    Ok(HashConfig {
        algorithm,
        method,
        allow_symlinks: a.allow_symlinks,
        ignore_paths,
        threads: a.threads,
    })
}

/// A progress bar on stderr for long runs on a terminal.
pub struct Bar(Option<indicatif::ProgressBar>);

impl Bar {
    pub fn new(enabled: bool) -> Bar {
        Bar((enabled && std::io::stderr().is_terminal()).then(indicatif::ProgressBar::hidden))
    }
}

impl Progress for Bar {
    fn start(&self, total: u64) {
        if let Some(b) = &self.0 {
            // Short runs finish before a bar would help.
            if total >= 256 << 20 {
                b.set_length(total);
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{spinner} hashing {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            }
        }
    }
    fn advance(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.inc(n);
        }
    }
    fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

/// Read a passphrase from the named environment variable, or ask on the terminal.
pub fn passphrase(
    env: Option<&str>,
    what: &Path,
) -> Result<Zeroizing<String>, mlsign::attest::Error> {
    use mlsign::attest::Error;
    if let Some(var) = env {
        return std::env::var(var).map(Zeroizing::new).map_err(|_| {
            Error::Passphrase(format!(
                "environment variable {var} is not set (or not UTF-8)"
            ))
        });
    }
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password(format!("Passphrase for {}: ", what.display()))
            .map(Zeroizing::new)
            .map_err(|e| Error::Passphrase(format!("cannot read it from the terminal: {e}")));
    }
    Err(Error::Passphrase(format!(
        "{} is encrypted; pass --passphrase-env VAR with the passphrase in $VAR",
        what.display()
    )))
}

/// The signer for `--key` (with `--passphrase-env`), or the certificate method when `--cert`
/// (and `--chain`) are given. Shared by `sign` and `bom sign`.
pub fn load_signer(
    key_path: &Path,
    passphrase_env: Option<&str>,
    cert: Option<&Path>,
    chain: &[std::path::PathBuf],
) -> Result<mlsign::attest::Signer> {
    use mlsign::attest::{cert as x509, Signer, SigningKey};
    let key_pem = Zeroizing::new(read_small(key_path, "private key")?);
    let key = SigningKey::from_pem(&key_pem, &mut || passphrase(passphrase_env, key_path))
        .with_context(|| format!("private key {}", key_path.display()))?;
    let Some(leaf_path) = cert else {
        return Ok(Signer::from_key(key));
    };
    let pem = read_small(leaf_path, "certificate")?;
    let mut leaf =
        x509::load_pem_chain(pem.as_bytes()).with_context(|| format!("{}", leaf_path.display()))?;
    let leaf = leaf.remove(0);
    let mut certs = Vec::new();
    for p in chain {
        let pem = read_small(p, "certificate chain")?;
        certs.extend(
            x509::load_pem_chain(pem.as_bytes()).with_context(|| format!("{}", p.display()))?,
        );
    }
    Signer::with_certificates(key, leaf, certs).with_context(|| format!("{}", leaf_path.display()))
}

/// Read a small text file (keys, certificates) with a size bound.
pub fn read_small(path: &Path, what: &str) -> Result<String> {
    let meta = std::fs::metadata(path).with_context(|| format!("{what} {}", path.display()))?;
    if meta.len() > 4 << 20 {
        bail!(
            "{what} {} is {} bytes; that is not a PEM file",
            path.display(),
            meta.len()
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("{what} {}", path.display()))?;
    String::from_utf8(bytes)
        .with_context(|| format!("{what} {}: not a PEM text file", path.display()))
}

/// SARIF and Markdown are for findings; commands without findings refuse them (exit 2) rather
/// than print something else.
pub fn no_sarif(format: Format) -> Result<()> {
    if matches!(format, Format::Sarif | Format::Markdown) {
        bail!(
            "--format {} is for commands that report findings (verify, scan, bom validate, bom \
             verify, dataset verify, behave, attest verify, policy check, pull, gate); use human or json",
            if format == Format::Sarif {
                "sarif"
            } else {
                "markdown"
            }
        );
    }
    Ok(())
}

/// The JSON sink ([`mlsign::report::json`]) on stdout, for commands without findings.
pub fn print_json(v: &serde_json::Value) {
    use std::io::Write;
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::stdout()
        .lock()
        .write_all(mlsign::report::json::to_string(v).as_bytes());
}

/// Errors: one line on stderr; a JSON object on stdout too when JSON was asked for.
/// Never replace an output without `--force`; a symlink (even a dangling one) counts as existing.
pub fn refuse_existing(path: &Path, force: bool) -> anyhow::Result<()> {
    if !force && path.symlink_metadata().is_ok() {
        anyhow::bail!(
            "{}: already exists; pass --force to overwrite it",
            path.display()
        );
    }
    Ok(())
}

pub fn report_error(format: Format, e: &anyhow::Error) {
    // The library states the fact; what to do about it is the CLI's to say.
    let msg = match advice(e).map(str::to_string).or_else(|| advice_owned(e)) {
        Some(a) => format!("{e:#}; {a}"),
        None => format!("{e:#}"),
    };
    eprintln!("error: {msg}");
    if matches!(format, Format::Json | Format::Sarif) {
        print_json(&serde_json::json!({"error": {"message": msg}}));
    }
}

/// Advice that names a value from the error (a registry host, a lineage file).
fn advice_owned(e: &anyhow::Error) -> Option<String> {
    e.chain().find_map(|c| {
        if let Some(mlsign::oci::Error::Insecure { host }) = c.downcast_ref() {
            return Some(format!(
                "pass --insecure-registry {host} if plain HTTP to it is intended"
            ));
        }
        if let Some(mlsign::bom::BomError::DatasetChanged { lineage, .. }) = c.downcast_ref() {
            return Some(format!(
                "run `mlsign dataset verify --lineage {}` to see what changed",
                lineage.display()
            ));
        }
        None
    })
}

/// Advice for library errors that leave the user a choice of flags.
fn advice(e: &anyhow::Error) -> Option<&'static str> {
    e.chain().find_map(|c| {
        if let Some(e) = c.downcast_ref::<mlsign::attest::Error>() {
            return match e {
                mlsign::attest::Error::Exists { .. } => Some(FORCE),
                mlsign::attest::Error::OtherMethod { method, .. } => method_advice(method),
                // Transparent: the digest error is not a link of its own in the chain.
                mlsign::attest::Error::Digest(d) => digest_advice(d),
                _ => None,
            };
        }
        if let Some(d) = c.downcast_ref::<mlsign::digest::Error>() {
            return digest_advice(d);
        }
        if let Some(e) = c.downcast_ref::<mlsign::oci::Error>() {
            return match e {
                mlsign::oci::Error::Unauthorized { .. } => Some(
                    "give credentials (MLSIGN_REGISTRY_USERNAME/PASSWORD, --registry-auth FILE or \
                     docker login)",
                ),
                mlsign::oci::Error::Exists { .. } => Some("pull into a new directory"),
                mlsign::oci::Error::Keyless(e) => sign_advice(e),
                mlsign::oci::Error::Digest(d) => digest_advice(d),
                mlsign::oci::Error::Attest(mlsign::attest::Error::Digest(d)) => digest_advice(d),
                _ => None,
            };
        }
        if let Some(p) = c.downcast_ref::<PartError>() {
            return part_advice(p);
        }
        if let Some(mlsign::util::fs::WriteError::Exists { .. }) = c.downcast_ref() {
            return Some(FORCE);
        }
        if let Some(e) = c.downcast_ref::<SignError>() {
            return sign_advice(e);
        }
        if let Some(e) = c.downcast_ref::<mlsign::policy::init::InitError>() {
            return init_advice(e);
        }
        None
    })
}

const FORCE: &str = "pass --force to overwrite it";

use mlsign::digest::partition::PartError;

/// For the commands that hash a tree with the walk flags (sign, hash, verify, push).
fn digest_advice(e: &mlsign::digest::Error) -> Option<&'static str> {
    use mlsign::digest::Error;
    match e {
        Error::Partition(p) => part_advice(p),
        Error::Symlink { .. } => Some("--allow-symlinks hashes targets that stay inside the root"),
        Error::SpecialFile { .. } => Some("remove it or --ignore it"),
        Error::Changed { .. } => Some("make sure nothing writes to the model and try again"),
        _ => None,
    }
}

/// Which verify flags fit the method the bundle was signed with.
fn method_advice(m: &mlsign::attest::OtherMethod) -> Option<&'static str> {
    use mlsign::attest::OtherMethod;
    match m {
        OtherMethod::Certificate => Some("verify with --cert-chain ROOTS.pem"),
        OtherMethod::Keyless | OtherMethod::NoCertificateChain => {
            Some("a keyless bundle is verified with --identity ID --issuer URL")
        }
        OtherMethod::Key => Some("verify with --key PUB.pem"),
        _ => None,
    }
}

use mlsign::attest::sigstore::sign::SignError;

fn sign_advice(e: &SignError) -> Option<&'static str> {
    match e {
        SignError::NoToken => Some(
            "pass --identity-token or --identity-token-file, set SIGSTORE_ID_TOKEN, or run in \
             GitHub Actions with `permissions: id-token: write` (the interactive browser sign-in \
             runs only when a terminal is attached)",
        ),
        SignError::BrowserTimeout => {
            Some("open the printed URL and sign in, or pass --identity-token-file")
        }
        _ => None,
    }
}

fn init_advice(e: &mlsign::policy::init::InitError) -> Option<&'static str> {
    use mlsign::policy::init::InitError;
    match e {
        InitError::NoAuthority => Some(
            "pass --key PUB.pem, --cert-root CA.pem or --keyless-identity ID --keyless-issuer URL",
        ),
        InitError::BehavePins { .. } => Some("pass --suite SUITE.toml and --baseline WEIGHTS"),
        InitError::NoReviewers => Some("pass --reviewer PUB.pem (repeatable)"),
        _ => None,
    }
}

fn part_advice(e: &PartError) -> Option<&'static str> {
    match e {
        PartError::Settings { .. } => Some(
            "use the same --algorithm, --shard-size, --ignore, --no-ignore-git-paths and \
             --allow-symlinks",
        ),
        PartError::Listing { .. } => Some("hash the partitions again"),
        _ => None,
    }
}

pub fn human_bytes(n: u64) -> String {
    mlsign::report::human::bytes(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("1G").unwrap(), 1_000_000_000);
        assert_eq!(parse_size("64Mi").unwrap(), 64 << 20);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert!(parse_size("0").is_err());
        assert!(parse_size("12X").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999999999999T").is_err());
    }

    #[test]
    fn library_errors_get_their_advice_here() {
        let e = anyhow::Error::new(mlsign::oci::Error::Insecure {
            host: "reg.example".into(),
        })
        .context("verify oci://reg.example/a:v1");
        assert_eq!(
            advice_owned(&e).as_deref(),
            Some("pass --insecure-registry reg.example if plain HTTP to it is intended")
        );
        let e = anyhow::Error::new(mlsign::oci::Error::Exists { path: "out".into() });
        assert_eq!(advice(&e), Some("pull into a new directory"));
        let e = anyhow::Error::new(mlsign::attest::Error::Digest(
            mlsign::digest::Error::Partition(PartError::Listing {
                path: "p.json".into(),
                then: 1,
                now: 2,
            }),
        ));
        assert_eq!(advice(&e), Some("hash the partitions again"));
        let e = anyhow::Error::new(mlsign::attest::Error::Digest(
            mlsign::digest::Error::Symlink {
                path: "m/link".into(),
            },
        ));
        assert_eq!(
            advice(&e),
            Some("--allow-symlinks hashes targets that stay inside the root")
        );
        assert_eq!(advice(&anyhow::anyhow!("plain")), None);
    }
}
