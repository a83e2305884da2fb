//! Test support shared by tests/keyless.rs, tests/gate.rs and tests/oci.rs: local Fulcio,
//! Rekor and TSA services on 127.0.0.1 (tests/cli/support/sigstore-services/server.js, around
//! `@sigstore/mock`), and unsigned OIDC tokens for them.

#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const SIGNER: &str =
    "https://github.com/mlsign-test/models/.github/workflows/release.yml@refs/heads/main";
pub const TEST_ISSUER: &str = "https://oidc.mlsign.test";

pub struct LocalSigstore {
    child: std::process::Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl LocalSigstore {
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for LocalSigstore {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// npm ci (once per test binary) into the git-ignored node_modules beside the server.
pub fn node_modules() -> PathBuf {
    static ONCE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli/support/sigstore-services");
        // Every package the tests load; a node_modules from an older lock file is refreshed.
        let installed = ["@sigstore/mock", "@sigstore/verify", "@sigstore/bundle"]
            .iter()
            .all(|p| {
                dir.join("node_modules")
                    .join(p)
                    .join("package.json")
                    .exists()
            });
        if !installed {
            let out = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir)
                .output()
                .expect("npm (Node.js 18+) is needed for the keyless signing tests");
            assert!(
                out.status.success(),
                "npm ci in {}: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        dir
    })
    .clone()
}

pub fn local_sigstore() -> LocalSigstore {
    use std::io::BufRead;
    let dir = node_modules();
    let out = tempfile::tempdir().unwrap();
    let mut child = Command::new("node")
        .arg(dir.join("server.js"))
        .arg(out.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("node");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .strip_prefix("READY ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("the local Sigstore services did not start: {line:?}"));
    LocalSigstore {
        child,
        dir: out,
        port,
    }
}

pub fn b64url(v: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

/// An unsigned JWT (the local Fulcio reads claims without checking a signature).
pub fn token(sub: &str, iss: &str) -> String {
    format!(
        "{}.{}.",
        b64url(&serde_json::json!({"alg": "none", "typ": "JWT"})),
        b64url(&serde_json::json!({
            "sub": sub, "iss": iss, "aud": "sigstore",
            "iat": 1_700_000_000u64, "nbf": 1_700_000_000u64, "exp": 4_000_000_000u64
        }))
    )
}
