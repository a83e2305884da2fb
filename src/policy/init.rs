//! `mlsign policy init`: a commented starter policy, checked by [`super::Policy::from_bytes`]
//! before it is written, so what `init` writes always loads.

use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Requirement names `--require` accepts.
pub const REQUIREMENTS: &[&str] = &["signature", "scan", "bom", "lineage", "behave", "approvals"];

#[derive(Clone, Debug, Default)]
pub struct InitOptions {
    /// Where the policy will be written (key paths are written relative to its directory).
    pub output: PathBuf,
    pub keys: Vec<PathBuf>,
    pub cert_roots: Vec<PathBuf>,
    pub reviewers: Vec<PathBuf>,
    pub require: Vec<String>,
    /// SHA-256 (hex) of the behave suite and baseline weights, for `behave`.
    pub suite_sha256: Option<String>,
    pub baseline_sha256: Option<String>,
    pub lineage: Option<String>,
    pub subjects: Vec<String>,
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// `p` as the policy should reference it: relative to the policy's directory when both resolve,
/// else absolute.
fn reference(p: &Path, out_dir: &Path) -> Result<String, String> {
    let abs = std::fs::canonicalize(p).map_err(|e| format!("{}: {e}", p.display()))?;
    let base = std::fs::canonicalize(out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let ours: Vec<_> = abs.components().collect();
    let theirs: Vec<_> = base.components().collect();
    let common = ours.iter().zip(&theirs).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..theirs.len() {
        rel.push("..");
    }
    for c in &ours[common..] {
        rel.push(c);
    }
    Ok(rel.to_string_lossy().replace('\\', "/"))
}

/// The policy text for `o`. Errors are usage errors (unknown requirement, missing pins…).
pub fn render(o: &InitOptions) -> Result<String, String> {
    let mut req: Vec<&str> = Vec::new();
    let wanted: Vec<String> = if o.require.is_empty() {
        vec!["signature".into(), "scan".into(), "bom".into()]
    } else {
        o.require.clone()
    };
    for r in &wanted {
        let r = r.trim();
        let Some(known) = REQUIREMENTS.iter().find(|k| **k == r) else {
            return Err(format!(
                "--require {r:?}: unknown requirement (known: {})",
                REQUIREMENTS.join(", ")
            ));
        };
        if !req.contains(known) {
            req.push(known);
        }
    }
    let out_dir = match o.output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let needs_auth = req.contains(&"signature") || req.contains(&"bom");
    if needs_auth && o.keys.is_empty() && o.cert_roots.is_empty() {
        return Err(
            "signature and bom checks need an authority: pass --key PUB.pem or --cert-root CA.pem"
                .into(),
        );
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# mlsign gate policy (written by `mlsign policy init`).\n\
         # Docs: docs/policy.md. Check it with `mlsign policy check FILE`, read it back in plain\n\
         # words with `mlsign policy explain FILE [SUBJECT]`.\n\
         #\n\
         # How it combines: authorities OR (any one verifies a signature; `threshold` = how many\n\
         # distinct ones must), requirements AND (every [requirements.*] table must pass), and the\n\
         # [revocation] list overrides everything, in every mode.\n"
    );
    let _ = writeln!(s, "schema = \"mlsign-policy/1\"");
    let _ = writeln!(
        s,
        "# enforce: violations fail (exit 1) | warn: verdict warn, exit 0 | audit: recorded only"
    );
    let _ = writeln!(s, "mode = \"enforce\"");
    let _ = writeln!(
        s,
        "# A subject no pattern below covers: deny (fail) | warn | allow"
    );
    let _ = writeln!(s, "no_match = \"deny\"");
    let _ = writeln!(
        s,
        "# Path globs (`*` within a directory, `**` across) and oci:// reference globs."
    );
    let subjects = if o.subjects.is_empty() {
        vec!["**".to_string()]
    } else {
        o.subjects.clone()
    };
    let _ = writeln!(
        s,
        "subjects = [{}]\n",
        subjects
            .iter()
            .map(|x| toml_str(x))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut n = 0;
    for k in &o.keys {
        n += 1;
        let _ = writeln!(
            s,
            "[[authorities]]\nname = \"key-{n}\"\nkey = {}\n",
            toml_str(&reference(k, &out_dir)?)
        );
    }
    for c in &o.cert_roots {
        n += 1;
        let _ = writeln!(
            s,
            "[[authorities]]\nname = \"ca-{n}\"\ncert_roots = {}\n",
            toml_str(&reference(c, &out_dir)?)
        );
    }
    let _ = writeln!(
        s,
        "# Keyless (Sigstore) identities: the signing workflow (exact, or identity_regex, anchored)\n\
         # and its OIDC issuer; checked offline against Sigstore's public-good root unless\n\
         # trusted_root = \"trusted_root.json\" (private instance) or staging = true.\n\
         # Optional: tlog_entries = 1 (default), signed_timestamps = 0 (RFC 3161, default).\n\
         # [[authorities]]\n\
         # name = \"ci\"\n\
         # keyless = {{ identity = \"https://github.com/ORG/REPO/.github/workflows/release.yml@refs/heads/main\", issuer = \"https://token.actions.githubusercontent.com\" }}\n"
    );
    for r in &req {
        match *r {
            "signature" => {
                let _ = writeln!(
                    s,
                    "# A bundle (SUBJECT.sig, or --bundle) verified by an authority; files match exactly.\n\
                     [requirements.signature]\nthreshold = 1\n"
                );
            }
            "scan" => {
                let _ = writeln!(
                    s,
                    "# Every file scans clean. Extend the allowlist for your own classes:\n\
                     # allow = [\"mypkg.models:Net\"], allow_suspicious = [\"sklearn\"]\n\
                     [requirements.scan]\nfail_on_suspicious = true\n"
                );
            }
            "bom" => {
                let _ = writeln!(
                    s,
                    "# SUBJECT.cdx.json: valid CycloneDX 1.6, describes this subject, signed (SUBJECT.cdx.json.sig).\n\
                     [requirements.bom]\nsigned = true\n"
                );
            }
            "lineage" => {
                let _ = writeln!(
                    s,
                    "# The dataset lineage re-hashes to what was recorded (path relative to this policy).\n\
                     [requirements.lineage]\nfile = {}\n",
                    toml_str(o.lineage.as_deref().unwrap_or("lineage.json"))
                );
            }
            "behave" => {
                let (Some(su), Some(ba)) = (&o.suite_sha256, &o.baseline_sha256) else {
                    return Err("--require behave needs --suite SUITE.toml and --baseline WEIGHTS (their SHA-256 digests are pinned)".into());
                };
                let _ = writeln!(
                    s,
                    "# A passing behave report (SUBJECT.behave.json) for exactly this suite and baseline.\n\
                     [requirements.behave]\nsuite_sha256 = \"{su}\"\nbaseline_sha256 = \"{ba}\"\n\
                     # signed = true   # also require SUBJECT.behave.json.sig by an authority (`mlsign attest sign`)\n"
                );
            }
            "approvals" => {
                if o.reviewers.is_empty() {
                    return Err("--require approvals needs --reviewer PUB.pem (repeatable)".into());
                }
                let list: Result<Vec<String>, String> = o
                    .reviewers
                    .iter()
                    .map(|r| reference(r, &out_dir).map(|x| toml_str(&x)))
                    .collect();
                let _ = writeln!(
                    s,
                    "# Approvals (`mlsign approve SUBJECT --key REVIEWER.pem`) from distinct reviewers,\n\
                     # never the key that signed the subject.\n\
                     [requirements.approvals]\ncount = 1\nreviewers = [{}]\nmax_age_days = 30\n",
                    list?.join(", ")
                );
            }
            _ => {}
        }
    }
    let _ = writeln!(
        s,
        "# The kill switch: subject digests (sha256:...), signer key hints, signer identities.\n\
         [revocation]\ndigests = []\nkeys = []\nidentities = []"
    );
    Ok(s)
}
