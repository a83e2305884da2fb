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
    /// Keyless authorities: (identity, issuer), exact unless `keyless_identity_regex`.
    pub keyless: Vec<(String, String)>,
    /// Write `identity_regex` instead of `identity` for the keyless authorities.
    pub keyless_identity_regex: bool,
    /// `trusted_root` for the keyless authorities (a Sigstore trusted_root.json).
    pub keyless_trusted_root: Option<PathBuf>,
}

/// Why no policy can be written for the options given. The CLI names the flags.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("unknown requirement {name:?} (known: {})", REQUIREMENTS.join(", "))]
    UnknownRequirement { name: String },
    #[error(
        "signature and bom checks need an authority (a public key, a certificate root, or a \
         keyless identity and issuer); none was given"
    )]
    NoAuthority,
    #[error(
        "the behave requirement pins the SHA-256 digests of a suite and of the baseline weights; \
         {} missing",
        match (suite, baseline) {
            (false, false) => "both are",
            (false, true) => "the suite's is",
            _ => "the baseline's is",
        }
    )]
    BehavePins { suite: bool, baseline: bool },
    #[error("the approvals requirement needs at least one reviewer key; none was given")]
    NoReviewers,
    #[error("{}: {source}", path.display())]
    Path {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// `p` as the policy should reference it: relative to the policy's directory when both resolve,
/// else absolute.
fn reference(p: &Path, out_dir: &Path) -> Result<String, InitError> {
    let canonical = |p: &Path| {
        std::fs::canonicalize(p).map_err(|source| InitError::Path {
            path: p.to_path_buf(),
            source,
        })
    };
    let abs = canonical(p)?;
    let base = canonical(out_dir)?;
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
pub fn render(o: &InitOptions) -> Result<String, InitError> {
    let mut req: Vec<&str> = Vec::new();
    let wanted: Vec<String> = if o.require.is_empty() {
        vec!["signature".into(), "scan".into(), "bom".into()]
    } else {
        o.require.clone()
    };
    for r in &wanted {
        let r = r.trim();
        let Some(known) = REQUIREMENTS.iter().find(|k| **k == r) else {
            return Err(InitError::UnknownRequirement { name: r.into() });
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
    if needs_auth && o.keys.is_empty() && o.cert_roots.is_empty() && o.keyless.is_empty() {
        return Err(InitError::NoAuthority);
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
    let root = match &o.keyless_trusted_root {
        Some(r) => format!(", trusted_root = {}", toml_str(&reference(r, &out_dir)?)),
        None => String::new(),
    };
    for (id, iss) in &o.keyless {
        n += 1;
        let _ = writeln!(
            s,
            "[[authorities]]\nname = \"keyless-{n}\"\nkeyless = {{ {} = {}, issuer = {}{root} }}\n",
            if o.keyless_identity_regex {
                "identity_regex"
            } else {
                "identity"
            },
            toml_str(id),
            toml_str(iss)
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
                    return Err(InitError::BehavePins {
                        suite: o.suite_sha256.is_some(),
                        baseline: o.baseline_sha256.is_some(),
                    });
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
                    return Err(InitError::NoReviewers);
                }
                let list: Result<Vec<String>, InitError> = o
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_unusable_option_set_is_its_own_error() {
        let t = tempfile::tempdir().unwrap();
        let key = t.path().join("k.pub.pem");
        std::fs::write(&key, "x").unwrap();
        let base = InitOptions {
            output: t.path().join("policy.toml"),
            keys: vec![key.clone()],
            ..InitOptions::default()
        };
        assert!(render(&base).is_ok());
        let with = |f: &dyn Fn(&mut InitOptions)| {
            let mut o = base.clone();
            f(&mut o);
            render(&o).unwrap_err()
        };
        let e = with(&|o| o.require = vec!["sig".into()]);
        assert!(
            matches!(&e, InitError::UnknownRequirement { name } if name == "sig"),
            "{e:?}"
        );
        assert!(e.to_string().contains("known: signature, scan"), "{e}");
        assert!(matches!(with(&|o| o.keys.clear()), InitError::NoAuthority));
        let e = with(&|o| {
            o.require = vec!["behave".into()];
            o.suite_sha256 = Some("ab".repeat(32));
        });
        assert!(
            matches!(
                e,
                InitError::BehavePins {
                    suite: true,
                    baseline: false
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("the baseline's is missing"), "{e}");
        let e = with(&|o| o.require = vec!["approvals".into()]);
        assert!(matches!(e, InitError::NoReviewers), "{e:?}");
        let gone = t.path().join("gone.pem");
        let e = with(&|o| o.keys = vec![gone.clone()]);
        assert!(
            matches!(&e, InitError::Path { path, .. } if path == &gone),
            "{e:?}"
        );
    }
}
