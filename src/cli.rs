//! Command-line definitions only (clap). The work is done in [`crate::commands`].

use crate::report::Format;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "mlsign",
    version,
    about = "ML supply-chain integrity: sign, verify, scan and describe models and datasets",
    long_about = "mlsign signs and verifies model and dataset directories with bundles that are \
byte-compatible with OpenSSF model signing (the Python `model_signing` package), rejects \
code-carrying model files, builds ML-BOMs and compares model behaviour.\n\n\
Exit codes: 0 pass, 1 a finding / verification failure / policy violation, 2 usage or I/O error.",
    after_help = "Examples:\n  mlsign keygen --out signer\n  mlsign sign models/bert --key signer.pem --bundle bert.sig\n  mlsign verify models/bert --bundle bert.sig --key signer.pub\n  mlsign hash models/bert --algorithm blake3 --format json"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate a signing key pair (PREFIX.pem private, PREFIX.pub public).
    Keygen(KeygenArgs),
    /// Compute the content manifest of a model or dataset (what `sign` would sign).
    Hash(HashArgs),
    /// Sign a model or dataset directory (or file) into a Sigstore bundle.
    Sign(SignArgs),
    /// Verify a model or dataset against a signature bundle.
    Verify(VerifyArgs),
    /// Compare a candidate model's behaviour with a trusted baseline under trigger probes and flag
    /// backdoor-like divergence (`behave calibrate` sets the threshold).
    Behave(BehaveArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// ECDSA over NIST P-256 with SHA-256 (default; what model_signing uses most).
    P256,
    /// ECDSA over NIST P-384 with SHA-384.
    P384,
    /// ECDSA over NIST P-521 with SHA-512.
    P521,
    /// Ed25519 (mlsign only: model_signing 1.1.1 cannot verify it).
    Ed25519,
}

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Output prefix: writes PREFIX.pem (private, mode 0600) and PREFIX.pub.
    #[arg(long, value_name = "PREFIX")]
    pub out: PathBuf,
    /// Key algorithm.
    #[arg(long, value_enum, default_value = "p256")]
    pub algorithm: KeyAlgorithm,
    /// Encrypt the private key (PKCS#8, scrypt + AES-256-CBC) with the passphrase read from this
    /// environment variable.
    #[arg(long, value_name = "VAR")]
    pub passphrase_env: Option<String>,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlg {
    Sha256,
    Blake3,
    /// BLAKE2b-512 (to match model_signing's `blake2` option).
    Blake2b,
}

/// How a tree is walked and hashed; shared by `hash` and `sign`.
#[derive(Args, Debug, Clone)]
pub struct HashingArgs {
    /// Digest algorithm for each file or shard.
    #[arg(long, value_enum, default_value = "sha256")]
    pub algorithm: HashAlg,
    /// Hash big files in shards of this many bytes (accepts suffixes: 1G, 512M, 64Mi…).
    /// Without it each file gets one digest (model_signing's default).
    #[arg(long, value_name = "SIZE")]
    pub shard_size: Option<String>,
    /// Leave a path out of the manifest (relative to the current directory or to the model
    /// root; a directory covers everything under it). Repeatable. Recorded in the signature.
    #[arg(long = "ignore", value_name = "PATH")]
    pub ignore: Vec<PathBuf>,
    /// Also hash `.git`, `.gitattributes`, `.github` and `.gitignore` at the root.
    #[arg(long)]
    pub no_ignore_git_paths: bool,
    /// Follow symbolic links whose target stays inside the root (hashed under the link's path).
    #[arg(long)]
    pub allow_symlinks: bool,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Never draw a progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Args, Debug)]
pub struct HashArgs {
    /// Model or dataset directory, or a single file.
    pub path: PathBuf,
    #[command(flatten)]
    pub hashing: HashingArgs,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SubjectKind {
    #[default]
    Model,
    Dataset,
}

#[derive(Args, Debug)]
pub struct SignArgs {
    /// Model or dataset directory, or a single file.
    pub path: PathBuf,
    /// Private key (PEM: PKCS#8 or SEC1 EC key; ECDSA P-256/P-384/P-521 or Ed25519).
    #[arg(long, value_name = "PRIV.pem")]
    pub key: PathBuf,
    /// Leaf certificate for the certificate method (PEM); its key must match --key.
    #[arg(long, value_name = "LEAF.pem", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Intermediate certificates to embed after the leaf (PEM, may hold several).
    #[arg(long, value_name = "CHAIN.pem", requires = "cert")]
    pub chain: Vec<PathBuf>,
    /// Where to write the bundle [default: PATH.sig beside the model, never inside it].
    #[arg(long, visible_alias = "signature", value_name = "OUT.json")]
    pub bundle: Option<PathBuf>,
    /// Read the private key's passphrase from this environment variable (never from argv).
    /// Without it an encrypted key is asked for on the terminal.
    #[arg(long, value_name = "VAR")]
    pub passphrase_env: Option<String>,
    /// What is being signed; recorded in the statement so BOMs can tell models from datasets.
    #[arg(long, value_enum, default_value = "model")]
    pub kind: SubjectKind,
    /// Overwrite an existing bundle.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub hashing: HashingArgs,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Model or dataset directory, or a single file.
    pub path: PathBuf,
    /// The signature bundle to check.
    #[arg(long, visible_alias = "signature", value_name = "B.json")]
    pub bundle: PathBuf,
    /// Public key (PEM SubjectPublicKeyInfo) for bundles made with the key method.
    #[arg(
        long,
        value_name = "PUB.pem",
        required_unless_present = "cert_chain",
        conflicts_with = "cert_chain"
    )]
    pub key: Option<PathBuf>,
    /// Trusted root certificates (PEM) for bundles made with the certificate method.
    #[arg(long, value_name = "ROOTS.pem")]
    pub cert_chain: Option<PathBuf>,
    /// Leave a path out of the comparison in addition to what the signature records. Repeatable.
    #[arg(long = "ignore", value_name = "PATH")]
    pub ignore: Vec<PathBuf>,
    /// Follow symbolic links inside the root (must match how the model was signed).
    #[arg(long)]
    pub allow_symlinks: bool,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Never draw a progress bar.
    #[arg(long)]
    pub no_progress: bool,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BehaveDevice {
    #[default]
    Cpu,
    /// First CUDA GPU (needs a build with `--features cuda`).
    Cuda,
}

#[derive(Args, Debug)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    long_about = "Runs the inputs of a suite through a trusted baseline and a candidate, clean and \
with every trigger probe of the suite stamped on (patch grid, random sparse patterns, blends), and \
flags the candidate when, under some probe, it sends a median share of every source class to one \
target class beyond what the baseline does (statistic srcclass_median_excess) above the suite's \
calibrated threshold. Clean drift (JS divergence, top-1 flip rate) is reported but never decides: \
benign fine-tunes drift more on clean inputs than backdoored ones.\n\n\
A pass means \"no backdoor-like divergence found under probes P\", not that the model is clean.\n\n\
Exit codes: 0 no divergence found, 1 flagged (any candidate), 2 error.",
    after_help = "Examples:\n  mlsign behave --baseline models/v1 --candidate models/v2 --suite suite.toml\n  mlsign behave --baseline v1 --candidate v2 --candidate v3 --suite suite.toml --format json\n  mlsign behave calibrate --baseline v1 --suite suite.toml --benign old/* --fpr 0.01 --write"
)]
pub struct BehaveArgs {
    #[command(subcommand)]
    pub command: Option<BehaveCommand>,
    /// Trusted baseline model directory: mlsign network spec (mlsign-net.json + safetensors) or
    /// a BERT encoder (config.json + model.safetensors + tokenizer.json).
    #[arg(long, value_name = "DIR", required = true)]
    pub baseline: Option<PathBuf>,
    /// Candidate model directory to check. Repeatable: the baseline is evaluated once.
    #[arg(long, value_name = "DIR", required = true)]
    pub candidate: Vec<PathBuf>,
    /// Suite file (TOML): inputs, probes, statistic, threshold.
    #[arg(long, value_name = "SUITE.toml", required = true)]
    pub suite: Option<PathBuf>,
    #[command(flatten)]
    pub run: BehaveRunArgs,
}

/// Options shared by `behave` and `behave calibrate`.
#[derive(Args, Debug, Clone)]
pub struct BehaveRunArgs {
    /// Where to run the models.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: BehaveDevice,
    /// Never draw a progress bar.
    #[arg(long)]
    pub no_progress: bool,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(Subcommand, Debug)]
pub enum BehaveCommand {
    /// Set the suite's threshold to the (1 - FPR) quantile of the statistic over known-benign
    /// candidates and record its provenance.
    #[command(
        after_help = "Examples:\n  mlsign behave calibrate --baseline v1 --suite suite.toml --benign benign/* --fpr 0.05\n  mlsign behave calibrate --baseline v1 --suite suite.toml --benign benign/* --fpr 0.01 --write --format json"
    )]
    Calibrate(BehaveCalibrateArgs),
}

#[derive(Args, Debug)]
pub struct BehaveCalibrateArgs {
    /// Trusted baseline model directory.
    #[arg(long, value_name = "DIR")]
    pub baseline: PathBuf,
    /// Suite file to calibrate.
    #[arg(long, value_name = "SUITE.toml")]
    pub suite: PathBuf,
    /// Known-benign candidate directories (earlier trusted versions, benign fine-tunes).
    #[arg(long, value_name = "DIR", num_args = 1.., required = true)]
    pub benign: Vec<PathBuf>,
    /// Target false-positive rate on benign candidates; needs at least 1/FPR of them.
    #[arg(long, default_value_t = 0.01)]
    pub fpr: f64,
    /// Write the threshold and its provenance into the suite's [decision] table.
    #[arg(long)]
    pub write: bool,
    #[command(flatten)]
    pub run: BehaveRunArgs,
}
