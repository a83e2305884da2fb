//! Registry credentials: the environment, an auth file (`--registry-auth`), then Docker's
//! `config.json` with its credential helpers. Secrets are never logged.

use super::Error;
use base64::Engine;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// What to authenticate with.
#[derive(Clone, Default)]
pub enum Credential {
    #[default]
    Anonymous,
    Basic {
        username: String,
        password: Zeroizing<String>,
    },
    /// An OAuth2 refresh token (`identitytoken` / helper username `<token>`), exchanged at the
    /// token realm.
    IdentityToken(Zeroizing<String>),
    /// A bearer token sent as is (`MLSIGN_REGISTRY_TOKEN`, `registrytoken`).
    Bearer(Zeroizing<String>),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a secret.
        f.write_str(match self {
            Credential::Anonymous => "anonymous",
            Credential::Basic { .. } => "basic",
            Credential::IdentityToken(_) => "identity token",
            Credential::Bearer(_) => "bearer token",
        })
    }
}

pub const ENV_USER: &str = "MLSIGN_REGISTRY_USERNAME";
pub const ENV_PASS: &str = "MLSIGN_REGISTRY_PASSWORD";
pub const ENV_TOKEN: &str = "MLSIGN_REGISTRY_TOKEN";
const MAX_AUTH_FILE: u64 = 4 << 20;
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

fn docker_config_path() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(d).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// Credentials for `registry` (`host[:port]`).
pub fn credentials_for(registry: &str, auth_file: Option<&Path>) -> Result<Credential, Error> {
    if let Ok(t) = std::env::var(ENV_TOKEN) {
        if !t.is_empty() {
            return Ok(Credential::Bearer(Zeroizing::new(t)));
        }
    }
    match (std::env::var(ENV_USER), std::env::var(ENV_PASS)) {
        (Ok(u), Ok(p)) if !u.is_empty() => {
            return Ok(Credential::Basic {
                username: u,
                password: Zeroizing::new(p),
            })
        }
        (Ok(u), Err(_)) if !u.is_empty() => {
            return Err(Error::Credentials(format!(
                "{ENV_USER} is set but {ENV_PASS} is not"
            )))
        }
        _ => {}
    }
    if let Some(f) = auth_file {
        // An explicit file must exist and be readable.
        return from_config_file(f, registry).map(|c| c.unwrap_or_default());
    }
    match docker_config_path() {
        Some(p) if p.is_file() => from_config_file(&p, registry).map(|c| c.unwrap_or_default()),
        _ => Ok(Credential::Anonymous),
    }
}

/// Does a `config.json` key name this registry (`host`, `https://host`, `https://host/v1/`)?
fn key_matches(key: &str, registry: &str) -> bool {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let k = k.split('/').next().unwrap_or(k);
    k == registry
}

fn from_config_file(path: &Path, registry: &str) -> Result<Option<Credential>, Error> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.len() > MAX_AUTH_FILE {
        return Err(Error::Credentials(format!(
            "{}: {} bytes is too large for an auth file",
            path.display(),
            meta.len()
        )));
    }
    let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let v: Value = serde_json::from_slice(&text).map_err(|e| {
        Error::Credentials(format!("{}: not a Docker config.json: {e}", path.display()))
    })?;
    // credHelpers wins over auths for its registry, as in docker.
    if let Some(helpers) = v.get("credHelpers").and_then(Value::as_object) {
        for (k, h) in helpers {
            if key_matches(k, registry) {
                if let Some(h) = h.as_str() {
                    return run_helper(h, registry).map(Some);
                }
            }
        }
    }
    if let Some(auths) = v.get("auths").and_then(Value::as_object) {
        for (k, a) in auths {
            if !key_matches(k, registry) {
                continue;
            }
            if let Some(t) = a.get("registrytoken").and_then(Value::as_str) {
                return Ok(Some(Credential::Bearer(Zeroizing::new(t.to_string()))));
            }
            if let Some(t) = a.get("identitytoken").and_then(Value::as_str) {
                if !t.is_empty() {
                    return Ok(Some(Credential::IdentityToken(Zeroizing::new(
                        t.to_string(),
                    ))));
                }
            }
            if let Some(b) = a.get("auth").and_then(Value::as_str) {
                let raw = Zeroizing::new(
                    base64::engine::general_purpose::STANDARD
                        .decode(b.trim())
                        .map_err(|_| {
                            Error::Credentials(format!(
                                "{}: auths[{k}].auth is not base64",
                                path.display()
                            ))
                        })?,
                );
                let s = std::str::from_utf8(&raw).map_err(|_| {
                    Error::Credentials(format!("{}: auths[{k}].auth is not UTF-8", path.display()))
                })?;
                let (u, p) = s.split_once(':').ok_or_else(|| {
                    Error::Credentials(format!(
                        "{}: auths[{k}].auth is not user:password",
                        path.display()
                    ))
                })?;
                return Ok(Some(Credential::Basic {
                    username: u.to_string(),
                    password: Zeroizing::new(p.to_string()),
                }));
            }
            if let (Some(u), Some(p)) = (
                a.get("username").and_then(Value::as_str),
                a.get("password").and_then(Value::as_str),
            ) {
                return Ok(Some(Credential::Basic {
                    username: u.to_string(),
                    password: Zeroizing::new(p.to_string()),
                }));
            }
        }
    }
    if let Some(store) = v.get("credsStore").and_then(Value::as_str) {
        return match run_helper(store, registry) {
            Ok(c) => Ok(Some(c)),
            // A store that knows nothing of this registry means anonymous.
            Err(Error::Credentials(m)) if m.contains("credentials not found") => Ok(None),
            Err(e) => Err(e),
        };
    }
    Ok(None)
}

/// `docker-credential-<helper> get`, host on stdin, JSON on stdout.
fn run_helper(helper: &str, registry: &str) -> Result<Credential, Error> {
    if helper.is_empty()
        || !helper
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        return Err(Error::Credentials(format!(
            "invalid credential helper name {helper:?}"
        )));
    }
    let prog = format!("docker-credential-{helper}");
    let mut child = std::process::Command::new(&prog)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| Error::Credentials(format!("cannot run {prog}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(registry.as_bytes());
    }
    let mut stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.take(1 << 20).read_to_end(&mut out);
        }
        out
    });
    let deadline = Instant::now() + HELPER_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Credentials(format!(
                    "{prog} did not answer within {} s",
                    HELPER_TIMEOUT.as_secs()
                )));
            }
            Err(e) => return Err(Error::Credentials(format!("{prog}: {e}"))),
        }
    };
    let out = Zeroizing::new(reader.join().unwrap_or_default());
    if !status.success() {
        let msg = String::from_utf8_lossy(&out).trim().to_string();
        return Err(Error::Credentials(format!(
            "{prog} get {registry}: {}",
            if msg.contains("credentials not found") {
                "credentials not found"
            } else {
                "failed"
            }
        )));
    }
    let v: Value = serde_json::from_slice(&out)
        .map_err(|_| Error::Credentials(format!("{prog}: answer is not JSON")))?;
    let user = v.get("Username").and_then(Value::as_str).unwrap_or("");
    let secret = v.get("Secret").and_then(Value::as_str).unwrap_or("");
    Ok(if user == "<token>" {
        Credential::IdentityToken(Zeroizing::new(secret.to_string()))
    } else {
        Credential::Basic {
            username: user.to_string(),
            password: Zeroizing::new(secret.to_string()),
        }
    })
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Default, PartialEq)]
pub struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub fn param(&self, k: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    }
}

/// Parse `Bearer realm="…",service="…",scope="…"` (quoted strings with `\` escapes, or tokens).
pub fn parse_challenge(h: &str) -> Option<Challenge> {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut c = Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params: Vec::new(),
    };
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b',' || b[i] == b' ') {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let key = rest[ks..i].trim().to_string();
        i += 1;
        let mut val = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut closed = false;
            while i < b.len() {
                match b[i] {
                    b'\\' if i + 1 < b.len() => {
                        val.push(b[i + 1] as char);
                        i += 2;
                    }
                    b'"' => {
                        i += 1;
                        closed = true;
                        break;
                    }
                    _ => {
                        // Keep multi-byte characters whole.
                        let ch = rest[i..].chars().next()?;
                        val.push(ch);
                        i += ch.len_utf8();
                    }
                }
            }
            if !closed {
                return None;
            }
        } else {
            let vs = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            val = rest[vs..i].trim().to_string();
        }
        c.params.push((key, val));
    }
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_parsing() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="reg \"x\"",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://auth.example/token"));
        assert_eq!(c.param("service"), Some("reg \"x\""));
        assert_eq!(c.param("scope"), Some("repository:a/b:pull,push"));
        let c = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert!(parse_challenge(r#"Bearer realm="unterminated"#).is_none());
    }

    #[test]
    fn config_file_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        std::fs::write(
            &p,
            r#"{"auths":{"https://reg.example:5000/v1/":{"auth":"dXNlcjpwYXNzOndvcmQ="},
               "other":{"identitytoken":"tok"}}}"#,
        )
        .unwrap();
        match from_config_file(&p, "reg.example:5000").unwrap() {
            Some(Credential::Basic { username, password }) => {
                assert_eq!(username, "user");
                assert_eq!(password.as_str(), "pass:word");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            from_config_file(&p, "other").unwrap(),
            Some(Credential::IdentityToken(_))
        ));
        assert!(from_config_file(&p, "none.example").unwrap().is_none());
        std::fs::write(&p, r#"{"credHelpers":{"reg.example":"../evil"}}"#).unwrap();
        assert!(from_config_file(&p, "reg.example").is_err());
    }
}
