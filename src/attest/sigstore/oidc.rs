//! The interactive OIDC flow for keyless signing on a developer machine: OAuth 2.0
//! authorization code with PKCE (RFC 7636) against the signing config's OIDC issuer (Sigstore's
//! public-good Dex, client `sigstore`, by default), a one-shot redirect listener on the loopback
//! interface, and the ID token taken from the token endpoint. As sigstore-python and cosign do it.
//!
//! Nothing secret is printed: the authorization URL carries only the PKCE challenge, state and
//! nonce; the code, the verifier and the token stay in memory (the token zeroized).

use super::sign::{agent, http_call, IdentityToken, SignError};
use base64::Engine;
use rand_core::RngCore;
use serde_json::Value;
use sha2::Digest;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Sigstore's public-good OIDC issuer.
pub const PUBLIC_GOOD_ISSUER: &str = "https://oauth2.sigstore.dev/auth";
/// The client Sigstore's issuers know (no secret: a public client, protected by PKCE).
pub const CLIENT_ID: &str = "sigstore";
/// Largest redirect request read from the browser.
const MAX_REQUEST_BYTES: usize = 16 << 10;

fn random_b64url(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand_core::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
fn enc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

fn dec(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut o = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                o.push(u8::from_str_radix(h, 16).ok()?);
                i += 3;
            }
            b'+' => {
                o.push(b' ');
                i += 1;
            }
            c => {
                o.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(o).ok()
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| dec(v))
}

/// Endpoints must be HTTPS, except on the loopback interface (test and private instances).
fn check_endpoint(what: &str, url: &str) -> Result<(), SignError> {
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|p| {
            url.strip_prefix(p)
                .is_some_and(|r| r.is_empty() || r.starts_with(':') || r.starts_with('/'))
        });
    if url.starts_with("https://") || loopback {
        Ok(())
    } else {
        Err(SignError::Token(format!(
            "the OIDC issuer's {what} {url:?} is not HTTPS"
        )))
    }
}

/// The endpoints from the issuer's discovery document.
fn discover(issuer: &str) -> Result<(String, String), SignError> {
    check_endpoint("URL", issuer)?;
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let body = http_call(
        "OIDC discovery",
        &url,
        agent()
            .get(&url)
            .header("Accept", "application/json")
            .call(),
    )?;
    let v: Value = serde_json::from_slice(&body).map_err(|e| SignError::Response {
        service: "OIDC discovery",
        url: url.clone(),
        why: format!("not JSON: {e}"),
    })?;
    let field = |k: &str| {
        v[k].as_str()
            .map(str::to_string)
            .ok_or_else(|| SignError::Response {
                service: "OIDC discovery",
                url: url.clone(),
                why: format!("no {k}"),
            })
    };
    let (auth, token) = (field("authorization_endpoint")?, field("token_endpoint")?);
    check_endpoint("authorization endpoint", &auth)?;
    check_endpoint("token endpoint", &token)?;
    Ok((auth, token))
}

/// Wait for the browser's redirect to `/auth/callback`; answer it and return its query.
fn await_redirect(listener: &TcpListener, deadline: Instant) -> Result<String, SignError> {
    listener
        .set_nonblocking(true)
        .map_err(|e| SignError::Token(format!("redirect listener: {e}")))?;
    loop {
        if Instant::now() >= deadline {
            return Err(SignError::BrowserTimeout);
        }
        let (mut s, _) = match listener.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(e) => return Err(SignError::Token(format!("redirect listener: {e}"))),
        };
        let Some(target) = read_request_target(&mut s) else {
            continue;
        };
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        if path != "/auth/callback" {
            respond(&mut s, "404 Not Found", "Not found.");
            continue;
        }
        respond(
            &mut s,
            "200 OK",
            "mlsign received the sign-in. You may close this window and return to the terminal.",
        );
        return Ok(query.to_string());
    }
}

/// The request target of an HTTP/1 request line (bounded read; `None` for junk).
fn read_request_target(s: &mut TcpStream) -> Option<String> {
    s.set_nonblocking(false).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(2).any(|w| w == b"\r\n") {
        if buf.len() >= MAX_REQUEST_BYTES {
            return None;
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&buf);
    let first = line.lines().next()?;
    let mut parts = first.split(' ');
    (parts.next()? == "GET").then_some(())?;
    parts.next().map(str::to_string)
}

fn respond(s: &mut TcpStream, status: &str, text: &str) {
    let body = format!("<!doctype html><title>mlsign</title><p>{text}</p>\n");
    let _ = write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.flush();
}

/// Run the flow: `open` is handed the authorization URL (start a browser, print it); the
/// listener waits until `timeout` for the redirect. Returns the ID token after checking the
/// state and the nonce it carries.
pub fn browser_token(
    issuer: &str,
    client_id: &str,
    open: &dyn Fn(&str),
    timeout: Duration,
) -> Result<IdentityToken, SignError> {
    let (auth_endpoint, token_endpoint) = discover(issuer)?;
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| SignError::Token(format!("redirect listener on 127.0.0.1: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| SignError::Token(format!("redirect listener: {e}")))?
        .port();
    let redirect = format!("http://localhost:{port}/auth/callback");
    let verifier = Zeroizing::new(random_b64url(32));
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    let state = random_b64url(16);
    let nonce = random_b64url(16);
    let sep = if auth_endpoint.contains('?') {
        '&'
    } else {
        '?'
    };
    let url = format!(
        "{auth_endpoint}{sep}response_type=code&client_id={}&redirect_uri={}&scope={}&state={state}&nonce={nonce}&code_challenge={challenge}&code_challenge_method=S256",
        enc(client_id),
        enc(&redirect),
        enc("openid email"),
    );
    open(&url);
    let query = await_redirect(&listener, Instant::now() + timeout)?;
    if let Some(e) = query_param(&query, "error") {
        let d = query_param(&query, "error_description").unwrap_or_default();
        return Err(SignError::Token(format!(
            "the OIDC issuer refused the sign-in: {e} {d}"
        )));
    }
    if query_param(&query, "state").as_deref() != Some(state.as_str()) {
        return Err(SignError::Token(
            "the redirect's state does not match this sign-in (another page answered); try again"
                .into(),
        ));
    }
    let code =
        Zeroizing::new(query_param(&query, "code").ok_or_else(|| {
            SignError::Token("the redirect carries no authorization code".into())
        })?);
    let form = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&client_id={}&code_verifier={}",
        enc(&code),
        enc(&redirect),
        enc(client_id),
        enc(&verifier)
    );
    let body = Zeroizing::new(http_call(
        "OIDC token endpoint",
        &token_endpoint,
        agent()
            .post(&token_endpoint)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .send(form.as_bytes()),
    )?);
    let v: Value = serde_json::from_slice(&body).map_err(|_| SignError::Response {
        service: "OIDC token endpoint",
        url: token_endpoint.clone(),
        why: "not JSON".into(),
    })?;
    let raw = v["id_token"]
        .as_str()
        .ok_or_else(|| SignError::Response {
            service: "OIDC token endpoint",
            url: token_endpoint.clone(),
            why: "no id_token in the answer".into(),
        })?
        .to_string();
    let token = IdentityToken::new(raw)?;
    if token.claim("nonce").as_deref() != Some(nonce.as_str()) {
        return Err(SignError::Token(
            "the ID token's nonce does not match this sign-in (replayed token?)".into(),
        ));
    }
    Ok(token)
}

/// Start the user's browser on `url` (`$BROWSER`, else xdg-open / open); failure is fine, the
/// URL is printed too.
pub fn open_browser(url: &str) {
    let candidates: Vec<String> = std::env::var("BROWSER")
        .ok()
        .filter(|b| !b.trim().is_empty())
        .into_iter()
        .chain(["xdg-open".to_string(), "open".to_string()])
        .collect();
    for c in candidates {
        let ok = std::process::Command::new(&c)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .is_ok();
        if ok {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips() {
        let s = "http://localhost:8080/auth/callback?x=1&y=a b";
        assert_eq!(dec(&enc(s)).as_deref(), Some(s));
        assert_eq!(enc("openid email"), "openid%20email");
        assert_eq!(
            query_param("a=1&code=x%2By&state=s", "code").as_deref(),
            Some("x+y")
        );
        assert_eq!(dec("%zz"), None);
        assert_eq!(dec("%4"), None);
    }

    #[test]
    fn endpoints_must_be_https_off_loopback() {
        assert!(check_endpoint("x", "https://oauth2.sigstore.dev/auth").is_ok());
        assert!(check_endpoint("x", "http://127.0.0.1:5556/auth").is_ok());
        assert!(check_endpoint("x", "http://localhost/auth").is_ok());
        assert!(check_endpoint("x", "http://example.com/auth").is_err());
        assert!(check_endpoint("x", "http://127.0.0.1.evil.com/auth").is_err());
        assert!(check_endpoint("x", "http://localhost.evil.com/").is_err());
    }
}
