//! Command-line definitions only (clap). The work is done in [`crate::commands`].

use clap::{Args, Parser, Subcommand, ValueEnum};
use mlsign::report::Format;
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
    /// Build, validate, verify, sign and show CycloneDX 1.6 ML-BOMs.
    Bom(BomArgs),
    /// Record dataset versions and the steps between them (hash-linked lineage), and verify it.
    Dataset(DatasetArgs),
    /// Sigstore conformance-suite entry point (`verify-bundle`, `sign-bundle`), speaking the
    /// sigstore-conformance CLI protocol.
    Conformance(ConformanceArgs),
    /// Reject unsafe pickles and code-carrying model files (static: nothing is executed).
    #[command(
        long_about = "Scan model files for code that runs on load, without Python and without \
    executing anything. Files are identified by content, never by extension: raw pickles (protocols \
    0-5, stacked streams), PyTorch ZIP / legacy / tar checkpoints, TorchScript archives, joblib \
    (plain or zlib/gzip/bz2/xz/lzma), NumPy .npy/.npz, safetensors, GGUF, Keras .keras/.h5.\n\n\
    Every pickle global must be on an exact (module, name) allowlist (presets: builtins, pytorch, \
    numpy, joblib). Custom classes of known libraries (scikit-learn, transformers, argparse.Namespace, \
    ...) are 'suspicious': reported, exit 0, unless --strict. Anything else, a broken stream, a \
    computed global, or an archive mlsign cannot open is rejected.\n\n\
    Verdicts: clean, suspicious, malicious, unscannable. Exit codes: 0 every file clean or suspicious; \
    1 any file malicious or unscannable (or suspicious with --strict); 2 usage or I/O error.",
        after_help = "Examples:\n  mlsign scan model.pt\n  mlsign scan models/ --format json\n  mlsign scan clf.joblib --allow-suspicious sklearn\n  mlsign scan ckpt.bin --policy policies/scan-default.toml --format sarif > scan.sarif\n  mlsign scan run/ --allow mypkg.models:Net --strict"
    )]
    Scan(ScanArgs),
    /// Compare a candidate model's behaviour with a trusted baseline under trigger probes and flag
    /// backdoor-like divergence (`behave calibrate` sets the threshold).
    Behave(BehaveArgs),
    /// Push a model directory to an OCI registry as a CNCF ModelPack artifact (optionally signed).
    Push(PushArgs),
    /// Pull a model artifact (ModelPack or KitOps) from an OCI registry into a new directory,
    /// every blob checked against its digest.
    Pull(PullArgs),
    /// May this model be promoted? Run every check a policy requires and print one verdict.
    Gate(crate::commands::gate::GateArgs),
    /// Write (`init`), lint (`check`) and explain gate policies.
    Policy(crate::commands::policy::PolicyArgs),
    /// Sign an approval of a model (human review, separate from the signer) for the gate.
    Approve(crate::commands::approve::ApproveArgs),
    /// Sign or verify a report mlsign wrote (behave, gate) as an in-toto attestation.
    Attest(crate::commands::attest::AttestArgs),
    /// Admission webhook: admit only workloads whose images and models verify (HTTPS; docs/serve.md).
    Serve(crate::commands::serve::ServeArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions(crate::commands::completions::CompletionsArgs),
    /// Write the man pages into a directory (used by the release script).
    #[command(hide = true)]
    Man(crate::commands::completions::ManArgs),
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
#[command(
    after_help = "Examples:\n  mlsign keygen --out signer\n  mlsign keygen --out release-key --algorithm p384\n  MLSIGN_PASS=secret mlsign keygen --out signer --passphrase-env MLSIGN_PASS"
)]
pub struct KeygenArgs {
    /// Output prefix: writes PREFIX.pem (private, mode 0600) and PREFIX.pub (with --pkcs11-uri
    /// only PREFIX.pub: the private key stays on the token).
    #[arg(long, value_name = "PREFIX")]
    pub out: PathBuf,
    /// Create the key pair on a PKCS#11 token instead (RFC 7512 URI naming the token, the new
    /// key's object= label and optionally id=; p256 or p384). PIN from pin-source or
    /// $MLSIGN_PKCS11_PIN.
    #[arg(long, value_name = "URI", conflicts_with = "passphrase_env")]
    pub pkcs11_uri: Option<String>,
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
    /// Do not record the stat cache that `sign --since` uses (in $XDG_CACHE_HOME/mlsign).
    #[arg(long)]
    pub no_stat_cache: bool,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  mlsign hash models/bert\n  mlsign hash models/bert --algorithm blake3 --format json\n  mlsign hash models/llama --shard-size 1G --ignore models/llama/logs"
)]
pub struct HashArgs {
    /// Model or dataset directory, or a single file.
    pub path: PathBuf,
    #[command(flatten)]
    pub hashing: HashingArgs,
    /// Hash only partition I of N (0-based; by hash of each file's path) and write an unsigned
    /// partial manifest to --output; `sign --from-parts` merges the N parts.
    #[arg(long, value_name = "I/N", requires = "output")]
    pub partition: Option<mlsign::digest::partition::Spec>,
    /// Where --partition writes its partial manifest.
    #[arg(long, short = 'o', value_name = "PART.json", requires = "partition")]
    pub output: Option<PathBuf>,
    /// Overwrite an existing --output file.
    #[arg(long)]
    pub force: bool,
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
#[command(
    after_help = "Examples:\n  mlsign sign models/bert --key signer.pem                  # writes models/bert.sig\n  mlsign sign data/reviews --key signer.pem --kind dataset --bundle reviews.sig\n  mlsign sign models/bert --key leaf.pem --cert leaf.crt --chain ca.crt\n  MLSIGN_PASS=secret mlsign sign models/bert --key enc.pem --passphrase-env MLSIGN_PASS\n  mlsign sign models/bert --keyless                          # in GitHub Actions (id-token: write)\n\nThe bundle is an OpenSSF model signing (model_signing 1.1.1) compatible Sigstore bundle.\nExit codes: 0 signed, 2 usage or I/O error (nothing is written)."
)]
pub struct SignArgs {
    /// Model or dataset directory, or a single file.
    pub path: PathBuf,
    /// Private key (PEM: PKCS#8 or SEC1 EC key; ECDSA P-256/P-384/P-521 or Ed25519).
    #[arg(long, value_name = "PRIV.pem", required_unless_present_any = ["pkcs11_uri", "keyless"])]
    pub key: Option<PathBuf>,
    /// Sign with a key on a PKCS#11 token (RFC 7512 URI, as model_signing takes it):
    /// 'pkcs11:token=T;object=LABEL?module-path=/path/module.so&pin-source=file:/path/pin'.
    /// The PIN comes from pin-source or $MLSIGN_PKCS11_PIN, never from the command line.
    #[arg(long, value_name = "URI", conflicts_with_all = ["key", "passphrase_env"])]
    pub pkcs11_uri: Option<String>,
    /// Leaf certificate for the certificate method (PEM); its key must match the signing key.
    #[arg(long, value_name = "LEAF.pem")]
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
    /// Incremental re-signing: take the digests OLD.sig recorded for files that the stat cache
    /// (written by the last `sign`/`hash` of this tree) proves unchanged; hash the rest.
    #[arg(long, value_name = "OLD.sig", conflicts_with = "from_parts")]
    pub since: Option<PathBuf>,
    /// Sign the merge of partial manifests from `mlsign hash --partition I/N` (files or
    /// patterns such as 'parts/part-*.json'); checks them against the directory, hashes nothing.
    #[arg(long, value_name = "PART.json", num_args = 1..)]
    pub from_parts: Vec<String>,
    #[command(flatten)]
    pub keyless: KeylessSignArgs,
    #[command(flatten)]
    pub hashing: HashingArgs,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// For oci:// references: also write the legacy cosign `sha256-<hex>.sig` simple signature.
    #[arg(long)]
    pub cosign_compat: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  mlsign verify models/bert --bundle models/bert.sig --key signer.pub\n  mlsign verify models/bert --signature bert.sig --cert-chain roots.pem --format json\n  mlsign verify models/bert --bundle bert.sig --key signer.pub --format sarif > verify.sarif\n\nThe signature is checked first, over the exact signed bytes; then the tree is re-hashed with the\nalgorithm, sharding and ignore list that were signed, and every modified, missing, extra or\nrenamed file is reported.\nExit codes: 0 verified, 1 verification failed, 2 usage or I/O error (e.g. malformed bundle)."
)]
pub struct VerifyArgs {
    /// Model or dataset directory, a single file, or an oci:// registry reference.
    pub path: PathBuf,
    /// The signature bundle to check (not used for oci:// references or with --against).
    #[arg(long, visible_alias = "signature", value_name = "B.json")]
    pub bundle: Option<PathBuf>,
    /// Public key (PEM SubjectPublicKeyInfo) for bundles made with the key method.
    #[arg(
        long,
        value_name = "PUB.pem",
        required_unless_present_any = ["cert_chain", "identity", "identity_regex"],
        conflicts_with = "cert_chain"
    )]
    pub key: Option<PathBuf>,
    /// Trusted root certificates (PEM) for bundles made with the certificate method.
    #[arg(long, value_name = "ROOTS.pem")]
    pub cert_chain: Option<PathBuf>,
    #[command(flatten)]
    pub keyless: KeylessVerifyArgs,
    /// Leave a path out of the comparison in addition to what the signature records. Repeatable.
    #[arg(long = "ignore", value_name = "PATH")]
    pub ignore: Vec<PathBuf>,
    /// Follow symbolic links inside the root (must match how the model was signed).
    #[arg(long)]
    pub allow_symlinks: bool,
    /// Also accept a signature over the faulty PAE encoding of model_signing 0.2 (bundles from
    /// before its 1.0 release), with a warning. Off by default: such bundles fail with SIG005.
    #[arg(long)]
    pub legacy_pae: bool,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Never draw a progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Check only partition I of N (0-based, as `hash --partition`): the signature, then the
    /// files of that partition; with --output the result is written for a merge.
    #[arg(long, value_name = "I/N", conflicts_with = "from_parts")]
    pub partition: Option<mlsign::digest::partition::Spec>,
    /// Where --partition writes its result (JSON) for `verify --from-parts`.
    #[arg(long, short = 'o', value_name = "RESULT.json", requires = "partition")]
    pub output: Option<PathBuf>,
    /// Merge the results of `verify --partition` runs (files or patterns): every partition
    /// present once, all for this bundle; reports every difference they found.
    #[arg(long, value_name = "RESULT.json", num_args = 1..)]
    pub from_parts: Vec<String>,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Check the directory against the signed model artifact at this oci:// reference.
    #[arg(long, value_name = "oci://REF")]
    pub against: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// How registries are reached (oci:// references).
#[derive(Args, Debug, Clone, Default)]
pub struct RegistryArgs {
    /// Registry credentials file in Docker config.json format (auths, credHelpers, credsStore).
    /// Default: $DOCKER_CONFIG/config.json or ~/.docker/config.json. MLSIGN_REGISTRY_USERNAME /
    /// MLSIGN_REGISTRY_PASSWORD (or MLSIGN_REGISTRY_TOKEN) in the environment take precedence.
    #[arg(long, value_name = "FILE")]
    pub registry_auth: Option<PathBuf>,
    /// Allow plain HTTP to this registry host (loopback registries always may). Repeatable.
    #[arg(long, value_name = "HOST")]
    pub insecure_registry: Vec<String>,
    /// Seconds to wait for a registry to connect or answer (each request; retried with backoff).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub registry_timeout: u64,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  mlsign push models/bert oci://registry.example/team/bert:v1\n  mlsign push models/bert oci://127.0.0.1:5000/bert:v1 --sign --key signer.pem\n\nEach file becomes one raw layer (application/vnd.cncf.model.<role>.v1.raw) with its\norg.cncf.model.filepath annotation, so layer digests are the files' SHA-256 and the artifact can\nbe verified against its OMS signature from the manifest alone.\nExit codes: 0 pushed, 2 usage, I/O or registry error."
)]
pub struct PushArgs {
    /// Model directory.
    pub path: PathBuf,
    /// Destination, with a tag: oci://HOST[:PORT]/REPO:TAG.
    #[arg(value_name = "oci://REF")]
    pub reference: String,
    /// Also sign the directory (OMS bundle) and attach the signature as a referrer
    /// (with --key, or --keyless).
    #[arg(long)]
    pub sign: bool,
    /// Private key for --sign.
    #[arg(long, value_name = "PRIV.pem")]
    pub key: Option<PathBuf>,
    /// Read the private key's passphrase from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub passphrase_env: Option<String>,
    /// With --sign: sign keylessly (Sigstore: Fulcio certificate, Rekor entry), as
    /// `mlsign sign --keyless`. Token from --identity-token-file, $SIGSTORE_ID_TOKEN or
    /// GitHub Actions.
    #[arg(long, requires = "sign", conflicts_with_all = ["key", "passphrase_env"])]
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
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  mlsign pull oci://registry.example/team/bert:v1 bert\n  mlsign pull oci://127.0.0.1:5000/bert:v1 bert --key signer.pub\n\nDIR must not exist. Blobs are streamed into a temp directory beside it with their digests\nchecked, then renamed into place; nothing is left behind on failure. With --key the signature\nis verified first and exactly the verified digest is pulled.\nExit codes: 0 pulled, 1 signature verification failed, 2 usage, I/O, registry or integrity error."
)]
pub struct PullArgs {
    /// What to pull: oci://HOST[:PORT]/REPO[:TAG|@DIGEST].
    #[arg(value_name = "oci://REF")]
    pub reference: String,
    /// Directory to create.
    pub dir: PathBuf,
    /// Verify the artifact's signature with this public key before pulling.
    #[arg(long, value_name = "PUB.pem", conflicts_with = "cert_chain")]
    pub key: Option<PathBuf>,
    /// Verify a certificate-method signature against these root certificates before pulling.
    #[arg(long, value_name = "ROOTS.pem")]
    pub cert_chain: Option<PathBuf>,
    /// Verify a keyless signature (identity and issuer) before pulling.
    #[command(flatten)]
    pub keyless: KeylessVerifyArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

// ---------------------------------------------------------------------------------------------
// mlsign bom

#[derive(Args, Debug)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    long_about = "Build a CycloneDX 1.6 ML-BOM for a model directory: the model as a \
machine-learning-model component with a model card (from config.json and README front matter) and \
every file with its SHA-256; datasets as data components with per-file hashes and their lineage \
(dependencies, pedigree, formulation); software dependencies from lockfiles with purls and hashes.\n\n\
Output is deterministic apart from serialNumber and timestamp; --reproducible fixes those too \
(timestamp from SOURCE_DATE_EPOCH, else 1970-01-01; serial derived from the content).",
    after_help = "Examples:\n  mlsign bom models/bert -o bert.cdx.json\n  mlsign bom models/bert -o bert.cdx.json --lineage lineage.json --lock uv.lock --lock Cargo.lock\n  mlsign bom models/bert -o bert.cdx.json --dataset data/eval --reproducible\n  mlsign bom validate bert.cdx.json\n  mlsign bom verify bert.cdx.json\n  mlsign bom sign bert.cdx.json --key signer.pem\n  mlsign bom verify bert.cdx.json --bundle bert.cdx.json.sig --key signer.pub\n  mlsign bom show bert.cdx.json --format html -o bert.html"
)]
pub struct BomArgs {
    #[command(subcommand)]
    pub action: Option<BomAction>,
    #[command(flatten)]
    pub build: BomBuildArgs,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BomRootType {
    Model,
    Application,
}

#[derive(Args, Debug)]
pub struct BomBuildArgs {
    /// Model directory (or single model file).
    #[arg(required = true, value_name = "MODEL_DIR")]
    pub model: Option<PathBuf>,
    /// Where to write the BOM (written atomically; must not be inside MODEL_DIR).
    #[arg(short, long, required = true, value_name = "BOM.cdx.json")]
    pub output: Option<PathBuf>,
    /// A dataset directory the model was trained or evaluated on (hashed file by file). Repeatable.
    #[arg(long, value_name = "DIR")]
    pub dataset: Vec<PathBuf>,
    /// Lineage file written by `mlsign dataset record/derive`; every version is re-hashed and
    /// must still match.
    #[arg(long, value_name = "FILE")]
    pub lineage: Option<PathBuf>,
    /// Lockfile of the training/serving code: Cargo.lock, uv.lock, poetry.lock or a pip
    /// requirements *.txt (with --hash). Repeatable.
    #[arg(long, value_name = "FILE")]
    pub lock: Vec<PathBuf>,
    /// Model component name [default: the directory name].
    #[arg(long)]
    pub name: Option<String>,
    /// Model component version.
    #[arg(long = "model-version", value_name = "VERSION")]
    pub model_version: Option<String>,
    /// Type of the root component: `model` (machine-learning-model with a model card) or
    /// `application` (e.g. a release binary with --lock Cargo.lock: no model card).
    #[arg(
        long = "type",
        value_enum,
        default_value = "model",
        value_name = "TYPE"
    )]
    pub root_type: BomRootType,
    /// A signature bundle of the model (`mlsign sign`): verified with --signature-key and its
    /// status recorded as mlsign:signature.* properties.
    #[arg(long, value_name = "BUNDLE", requires = "signature_key")]
    pub signature: Option<PathBuf>,
    /// Public key that verifies --signature.
    #[arg(long, value_name = "PUB.pem")]
    pub signature_key: Option<PathBuf>,
    /// Scan every model file (`mlsign scan`, default policy) and record the verdicts as
    /// mlsign:scan.* properties.
    #[arg(long)]
    pub scan: bool,
    /// Fix serialNumber and timestamp so the same inputs give the same bytes.
    #[arg(long)]
    pub reproducible: bool,
    /// Overwrite an existing output file.
    #[arg(long)]
    pub force: bool,
    /// Worker threads for hashing (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(Subcommand, Debug)]
pub enum BomAction {
    /// Validate against the official CycloneDX 1.6 schema, then refs, duplicate bom-refs and
    /// model hashes. Exit 0 valid, 1 invalid (every error by JSON pointer), 2 unreadable.
    #[command(
        after_help = "Examples:\n  mlsign bom validate bert.cdx.json\n  mlsign bom validate bert.cdx.json --format sarif > bom.sarif"
    )]
    Validate(BomValidateArgs),
    /// Re-hash the model and datasets the BOM names and report drift; with --bundle also check
    /// the BOM's signature.
    #[command(
        after_help = "Examples:\n  mlsign bom verify bert.cdx.json\n  mlsign bom verify bert.cdx.json --bundle bert.cdx.json.sig --key signer.pub\n  mlsign bom verify bert.cdx.json --model /mnt/models/bert --format json"
    )]
    Verify(BomVerifyArgs),
    /// Sign a BOM as an in-toto attestation (predicate https://cyclonedx.org/bom) in a
    /// Sigstore bundle.
    #[command(
        after_help = "Examples:\n  mlsign bom sign bert.cdx.json --key signer.pem\n  mlsign bom sign bert.cdx.json --key signer.pem --bundle bert.bom.sig"
    )]
    Sign(BomSignArgs),
    /// Print the auditor's view: model → datasets → lineage steps → sources.
    #[command(
        after_help = "Examples:\n  mlsign bom show bert.cdx.json\n  mlsign bom show bert.cdx.json --format html -o bert.html"
    )]
    Show(BomShowArgs),
}

#[derive(Args, Debug)]
pub struct BomValidateArgs {
    /// The BOM (CycloneDX 1.6 JSON).
    pub file: PathBuf,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct BomVerifyArgs {
    /// The BOM (CycloneDX 1.6 JSON).
    pub bom: PathBuf,
    /// Signature bundle of the BOM (`mlsign bom sign`).
    #[arg(long, value_name = "B.json")]
    pub bundle: Option<PathBuf>,
    /// Public key for a bundle made with the key method.
    #[arg(
        long,
        value_name = "PUB.pem",
        requires = "bundle",
        conflicts_with = "cert_chain"
    )]
    pub key: Option<PathBuf>,
    /// Trusted root certificates for a bundle made with the certificate method.
    #[arg(long, value_name = "ROOTS.pem", requires = "bundle")]
    pub cert_chain: Option<PathBuf>,
    /// Keyless bundles (`bom sign --keyless`): the signer identity and issuer.
    #[command(flatten)]
    pub keyless: KeylessVerifyArgs,
    /// Resolve the paths recorded in the BOM against this directory [default: the BOM's].
    #[arg(long, value_name = "DIR")]
    pub base: Option<PathBuf>,
    /// Hash this directory as the model instead of the recorded path.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Only check the signature; do not re-hash.
    #[arg(long, requires = "bundle")]
    pub no_rehash: bool,
    /// Worker threads for hashing (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct BomSignArgs {
    /// The BOM to sign (it is validated first; an invalid BOM is not signed).
    pub bom: PathBuf,
    /// Private key (PEM: PKCS#8 or SEC1 EC key; ECDSA P-256/P-384/P-521 or Ed25519).
    #[arg(long, value_name = "PRIV.pem", required_unless_present = "keyless")]
    pub key: Option<PathBuf>,
    /// Sign keylessly (Sigstore), as `mlsign sign --keyless`: the attestation gets a Fulcio
    /// certificate for your OIDC identity and a Rekor entry.
    #[arg(long, conflicts_with_all = ["key", "cert", "passphrase_env"])]
    pub keyless: bool,
    /// Keyless: read the OIDC identity token from this file (else $SIGSTORE_ID_TOKEN or
    /// GitHub Actions).
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
    /// Leaf certificate for the certificate method (PEM).
    #[arg(long, value_name = "LEAF.pem")]
    pub cert: Option<PathBuf>,
    /// Intermediate certificates after the leaf.
    #[arg(long, value_name = "CHAIN.pem", requires = "cert")]
    pub chain: Vec<PathBuf>,
    /// Where to write the bundle [default: BOM.sig].
    #[arg(long, value_name = "OUT.json")]
    pub bundle: Option<PathBuf>,
    /// Read the key's passphrase from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub passphrase_env: Option<String>,
    /// Overwrite an existing bundle.
    #[arg(long)]
    pub force: bool,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShowFormat {
    /// An indented tree for a terminal.
    Human,
    /// The same view as JSON.
    Json,
    /// A self-contained HTML page with the lineage drawn as a graph.
    Html,
}

#[derive(Args, Debug)]
pub struct BomShowArgs {
    /// The BOM (CycloneDX 1.6 JSON).
    pub bom: PathBuf,
    #[arg(long, value_enum, default_value = "human")]
    pub format: ShowFormat,
    /// Write to this file (atomically) instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Replace the -o file if it exists.
    #[arg(long)]
    pub force: bool,
}

// ---------------------------------------------------------------------------------------------
// mlsign dataset

#[derive(Args, Debug)]
#[command(
    long_about = "Record every dataset version (raw, processed, each split) in a lineage file: \
its per-file SHA-256 manifest and root digest (as `mlsign hash`), source, license, and the step that \
made it from its parents (command, parameters, code digest, time, who). Derived versions name their \
parents by digest, so `mlsign dataset verify` detects any changed upstream file and names the \
steps it breaks.",
    after_help = "Examples:\n  mlsign dataset record data/raw --lineage lineage.json --name imdb --version 2024-05 \\\n      --source https://ai.stanford.edu/~amaas/data/sentiment/ --license other\n  mlsign dataset derive data/clean --lineage lineage.json --name imdb-clean --from imdb \\\n      --step clean --command 'python clean.py --lower' --param lower=true --code clean.py\n  mlsign dataset derive data/train --lineage lineage.json --name imdb-train --split train \\\n      --from imdb-clean --step split --command 'python split.py --seed 1' --param seed=1 --code split.py\n  mlsign dataset verify --lineage lineage.json"
)]
pub struct DatasetArgs {
    #[command(subcommand)]
    pub action: DatasetAction,
}

#[derive(Subcommand, Debug)]
pub enum DatasetAction {
    /// Hash a source dataset version and add it to the lineage file (created if missing).
    Record(DatasetRecordArgs),
    /// Hash a dataset made from recorded parents and record the step that made it.
    Derive(DatasetDeriveArgs),
    /// Re-hash every recorded version and step code; report what changed and which steps broke.
    Verify(DatasetVerifyArgs),
}

#[derive(Args, Debug)]
pub struct DatasetCommon {
    /// Lineage file (JSON).
    #[arg(long, value_name = "FILE")]
    pub lineage: PathBuf,
    /// Dataset name.
    #[arg(long)]
    pub name: String,
    /// Version label (name@version must be unique in the lineage).
    #[arg(long)]
    pub version: Option<String>,
    /// License (SPDX id or expression when possible).
    #[arg(long)]
    pub license: Option<String>,
    /// Split name (train, validation, test, …).
    #[arg(long)]
    pub split: Option<String>,
    /// One-line description.
    #[arg(long)]
    pub description: Option<String>,
    /// Who recorded it [default: $USER].
    #[arg(long, value_name = "WHO")]
    pub by: Option<String>,
    /// Replace an existing record with the same name and version.
    #[arg(long)]
    pub replace: bool,
    /// Recording time (RFC 3339) [default: now].
    #[arg(long, value_name = "TIME")]
    pub recorded_at: Option<String>,
    /// Worker threads for hashing (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct DatasetRecordArgs {
    /// Dataset directory (or file).
    pub path: PathBuf,
    /// Where the data came from (URL, bucket, path).
    #[arg(long)]
    pub source: Option<String>,
    #[command(flatten)]
    pub common: DatasetCommon,
}

#[derive(Args, Debug)]
pub struct DatasetDeriveArgs {
    /// Directory (or file) the step produced.
    pub path: PathBuf,
    /// Parent dataset: name, name@version or sha256:DIGEST (a prefix of 12+ digits). Repeatable.
    #[arg(long = "from", value_name = "PARENT", required = true)]
    pub from: Vec<String>,
    /// Step name (clean, tokenize, split, …).
    #[arg(long)]
    pub step: String,
    /// The exact command the step ran.
    #[arg(long)]
    pub command: String,
    /// A step parameter KEY=VALUE (seed, ratios, …). Repeatable.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Code the step ran (file or directory), pinned by digest. Repeatable.
    #[arg(long, value_name = "PATH")]
    pub code: Vec<PathBuf>,
    /// When the step started (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub started_at: Option<String>,
    /// When the step finished (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub finished_at: Option<String>,
    #[command(flatten)]
    pub common: DatasetCommon,
}

#[derive(Args, Debug)]
pub struct DatasetVerifyArgs {
    /// Lineage file (JSON).
    #[arg(long, value_name = "FILE")]
    pub lineage: PathBuf,
    /// Do not re-hash the code recorded for steps.
    #[arg(long)]
    pub skip_code: bool,
    /// Worker threads for hashing (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct ScanArgs {
    /// Files or directories (scanned recursively).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Scan policy file (TOML, `[scan]` table; see policies/scan-default.toml).
    #[arg(long, value_name = "POLICY.toml")]
    pub policy: Option<PathBuf>,
    /// Also allow this exact global, written `module:name`. Repeatable.
    #[arg(long = "allow", value_name = "MODULE:NAME")]
    pub allow: Vec<String>,
    /// Allow a suspicious-tier module (prefix, e.g. `sklearn`) or `module:name`. Repeatable.
    #[arg(long = "allow-suspicious", value_name = "MODULE[:NAME]")]
    pub allow_suspicious: Vec<String>,
    /// Treat suspicious files as failures (exit 1).
    #[arg(long)]
    pub strict: bool,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BehaveDevice {
    #[default]
    Cpu,
    /// First CUDA GPU (needs a build with `--features cuda` and the NVIDIA driver).
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
    /// Trusted baseline model directory: mlsign network spec (mlsign-net.json + safetensors), a
    /// Hugging Face model (config.json + safetensors + tokenizer.json: BERT encoder or sequence
    /// classifier; Llama, Mistral, Qwen2 or Phi-3 causal LM), a GGUF causal LM, or an ONNX
    /// classifier (builds with `--features onnx`).
    #[arg(long, value_name = "DIR", required = true)]
    pub baseline: Option<PathBuf>,
    /// Candidate model directory to check. Repeatable: the baseline is evaluated once.
    #[arg(long, value_name = "DIR", required = true)]
    pub candidate: Vec<PathBuf>,
    /// Suite file (TOML): inputs, probes, statistic, threshold.
    #[arg(long, value_name = "SUITE.toml", required = true)]
    pub suite: Option<PathBuf>,
    /// With a suite that has [synthesis]: write each candidate's synthesised triggers (mask and
    /// pattern PNGs per class, and an HTML page) into DIR; the report names the files.
    #[arg(long, value_name = "DIR")]
    pub trigger_dir: Option<PathBuf>,
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
    #[arg(long, value_name = "DIR", num_args = 1.., required_unless_present = "generate_null")]
    pub benign: Vec<PathBuf>,
    /// Also calibrate on N null candidates generated here: short clean fine-tunes of the baseline
    /// on the suite's own labelled inputs (mlsign network spec only). See docs/behave.md for how
    /// far such a threshold carries to real benign models.
    #[arg(long, value_name = "N")]
    pub generate_null: Option<usize>,
    /// Keep the generated null candidates in DIR (default: a temporary directory, removed).
    #[arg(long, value_name = "DIR", requires = "generate_null")]
    pub null_dir: Option<PathBuf>,
    /// Target false-positive rate on benign candidates; needs at least 1/FPR of them (and
    /// ln(1 - confidence)/ln(1 - FPR) for the confidence bound to reach it: 59 for 0.05, 299 for 0.01).
    #[arg(long, default_value_t = 0.01)]
    pub fpr: f64,
    /// Level of the exact (Clopper-Pearson) upper confidence bound reported on the FPR.
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
    /// Pick the lowest threshold whose upper confidence bound on the FPR meets --fpr (instead of
    /// the in-sample (1 - FPR) quantile); an error when the benign candidates are too few.
    #[arg(long)]
    pub bounded: bool,
    /// Write the threshold and its provenance into the suite's [decision] table.
    #[arg(long)]
    pub write: bool,
    #[command(flatten)]
    pub run: BehaveRunArgs,
}

// ---------------------------------------------------------------------------------------------
// Keyless Sigstore (mlsign verify --identity …, mlsign conformance)

/// Keyless signing: an OIDC identity token, a Fulcio certificate, a Rekor entry.
#[derive(Args, Debug, Default)]
pub struct KeylessSignArgs {
    /// Sign keylessly (Sigstore): an ephemeral key, certified by Fulcio for your OIDC identity,
    /// the signature logged in Rekor (and timestamped when the signing config names a TSA).
    /// Token from --identity-token[-file], $SIGSTORE_ID_TOKEN or GitHub Actions.
    #[arg(long, conflicts_with_all = ["key", "pkcs11_uri", "cert", "passphrase_env", "since", "from_parts"])]
    pub keyless: bool,
    /// Keyless: the OIDC identity token (prefer --identity-token-file: argv is visible to others).
    #[arg(long, value_name = "TOKEN", requires = "keyless")]
    pub identity_token: Option<String>,
    /// Keyless: read the OIDC identity token from this file.
    #[arg(
        long,
        value_name = "FILE",
        requires = "keyless",
        conflicts_with = "identity_token"
    )]
    pub identity_token_file: Option<PathBuf>,
    /// Keyless: Sigstore signing_config.json (Fulcio, Rekor, TSA URLs) [default: public good].
    #[arg(long, value_name = "FILE", requires = "keyless")]
    pub signing_config: Option<PathBuf>,
    /// Keyless: trusted_root.json the new bundle is checked against before it is written
    /// [default: the embedded production root].
    #[arg(long, value_name = "FILE", requires = "keyless")]
    pub trusted_root: Option<PathBuf>,
    /// Keyless: use Sigstore's staging instance (its signing config and trusted root).
    #[arg(long, requires = "keyless", conflicts_with = "trusted_root")]
    pub staging: bool,
}

/// Keyless verification: a Fulcio identity from an OIDC issuer, checked against a Sigstore
/// trusted root (offline).
#[derive(Args, Debug, Default)]
pub struct KeylessVerifyArgs {
    /// Keyless: the signer's certificate identity (SAN: e-mail or URI), exact.
    #[arg(long, value_name = "ID", conflicts_with_all = ["key", "cert_chain", "identity_regex"])]
    pub identity: Option<String>,
    /// Keyless: a regex the whole certificate identity must match (anchored).
    #[arg(long, value_name = "RE", conflicts_with_all = ["key", "cert_chain"])]
    pub identity_regex: Option<String>,
    /// Keyless: the OIDC issuer in the certificate, exact (e.g. https://token.actions.githubusercontent.com).
    #[arg(long, value_name = "URL", conflicts_with = "issuer_regex")]
    pub issuer: Option<String>,
    /// Keyless: a regex the whole OIDC issuer must match (anchored).
    #[arg(long, value_name = "RE")]
    pub issuer_regex: Option<String>,
    /// Keyless: Sigstore trusted_root.json [default: the embedded public-good production root].
    #[arg(long, value_name = "FILE")]
    pub trusted_root: Option<PathBuf>,
    /// Keyless: use the embedded Sigstore staging trusted root.
    #[arg(long, conflicts_with = "trusted_root")]
    pub staging: bool,
}

#[derive(Args, Debug)]
#[command(
    long_about = "The sigstore-conformance CLI protocol, so the upstream test suite can drive \
mlsign: `mlsign conformance verify-bundle ...` and `mlsign conformance sign-bundle ...` (point the \
suite's --entrypoint at a script running `mlsign conformance \"$@\"`). Exit 0 means the bundle \
verified (or was written); anything else is a failure, with the failed check on stderr.",
    after_help = "Examples:\n  mlsign conformance verify-bundle --bundle a.sigstore.json --certificate-identity ID --certificate-oidc-issuer https://token.actions.githubusercontent.com a.txt\n  mlsign conformance verify-bundle --bundle b.json --key key.pub --trusted-root trusted_root.json sha256:<hex>"
)]
pub struct ConformanceArgs {
    #[command(subcommand)]
    pub action: ConformanceAction,
}

#[derive(Subcommand, Debug)]
pub enum ConformanceAction {
    /// Verify a Sigstore bundle over FILE (or a `sha256:<hex>` digest), offline.
    VerifyBundle(ConformanceVerifyArgs),
    /// Sign FILE keylessly (Fulcio + Rekor) into a v0.3 Sigstore bundle.
    SignBundle(ConformanceSignArgs),
}

#[derive(Args, Debug)]
pub struct ConformanceVerifyArgs {
    #[arg(long, value_name = "FILE")]
    pub bundle: PathBuf,
    #[arg(
        long,
        value_name = "ID",
        required_unless_present = "key",
        conflicts_with = "key"
    )]
    pub certificate_identity: Option<String>,
    #[arg(
        long,
        value_name = "URL",
        required_unless_present = "key",
        conflicts_with = "key"
    )]
    pub certificate_oidc_issuer: Option<String>,
    /// Managed key (PEM) instead of a certificate identity.
    #[arg(long, value_name = "PUB.pem")]
    pub key: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    pub trusted_root: Option<PathBuf>,
    #[arg(long)]
    pub staging: bool,
    /// The artifact, or `sha256:<64 hex>` (a digest unless such a file exists).
    pub file_or_digest: String,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct ConformanceSignArgs {
    /// The OIDC identity token (the protocol passes it on the command line).
    #[arg(long, value_name = "TOKEN")]
    pub identity_token: String,
    #[arg(long, value_name = "FILE")]
    pub bundle: PathBuf,
    /// FILE is an in-toto Statement to sign as DSSE.
    #[arg(long)]
    pub in_toto: bool,
    #[arg(long, value_name = "FILE")]
    pub trusted_root: Option<PathBuf>,
    /// Sigstore signing_config.json naming Fulcio, Rekor and TSA [default: public good].
    #[arg(long, value_name = "FILE")]
    pub signing_config: Option<PathBuf>,
    #[arg(long)]
    pub staging: bool,
    pub file: PathBuf,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}
