//! `oci://HOST[:PORT]/REPO[:TAG|@DIGEST]` references, parsed strictly (distribution grammar).

use super::Error;

/// A registry reference. `registry` is always explicit (no Docker Hub default: a signature must
/// name where it was checked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// `host` or `host:port`.
    pub registry: String,
    /// Repository path (`team/model`).
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<64 hex>`.
    pub digest: Option<String>,
}

pub const SCHEME: &str = "oci://";

/// Is this command-line argument a registry reference rather than a path?
pub fn is_oci(arg: &str) -> bool {
    arg.starts_with(SCHEME)
}

fn bad(input: &str, why: impl Into<String>) -> Error {
    Error::Reference {
        input: input.to_string(),
        why: why.into(),
    }
}

/// Repository path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let ch = b[i];
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or "-"+, always followed by an alphanumeric.
        let start = i;
        while i < b.len() && matches!(b[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok || i == start {
            return false;
        }
    }
    true
}

fn valid_host(h: &str) -> bool {
    let (host, port) = match h.strip_prefix('[') {
        // [::1]:5000
        Some(rest) => match rest.split_once(']') {
            Some((ip6, tail)) => {
                if ip6.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                (None, tail.strip_prefix(':'))
            }
            None => return false,
        },
        None => match h.rsplit_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(h), None),
        },
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !matches!(p.parse::<u16>(), Ok(v) if v != 0) {
            return false;
        }
    }
    match host {
        None => true,
        Some(host) => {
            !host.is_empty()
                && host.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                })
        }
    }
}

pub fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')))
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

impl Reference {
    pub fn parse(input: &str) -> Result<Reference, Error> {
        let rest = input
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad(input, "expected oci://HOST[:PORT]/REPOSITORY[:TAG|@DIGEST]"))?;
        let (host, path) = rest
            .split_once('/')
            .ok_or_else(|| bad(input, "missing repository after the registry host"))?;
        if !valid_host(host) {
            return Err(bad(input, format!("invalid registry host {host:?}")));
        }
        let (path, digest) = match path.split_once('@') {
            Some((p, d)) => {
                if !valid_digest(d) {
                    return Err(bad(
                        input,
                        format!(
                            "invalid digest {d:?}: expected sha256: and 64 lowercase hex digits"
                        ),
                    ));
                }
                (p, Some(d.to_string()))
            }
            None => (path, None),
        };
        // A tag follows the last ':' after the last '/'.
        let last_slash = path.rfind('/').map_or(0, |i| i + 1);
        let (repo, tag) = match path[last_slash..].rfind(':') {
            Some(i) => {
                let t = &path[last_slash + i + 1..];
                if !valid_tag(t) {
                    return Err(bad(input, format!("invalid tag {t:?}")));
                }
                (&path[..last_slash + i], Some(t.to_string()))
            }
            None => (path, None),
        };
        if repo.is_empty() || repo.len() > 255 || !repo.split('/').all(valid_component) {
            return Err(bad(
                input,
                format!("invalid repository {repo:?}: lowercase letters, digits and . _ - separators, components joined by /"),
            ));
        }
        if tag.is_none() && digest.is_none() {
            return Err(bad(
                input,
                "name a tag (:TAG) or a digest (@sha256:…); mlsign never guesses 'latest'",
            ));
        }
        Ok(Reference {
            registry: host.to_string(),
            repository: repo.to_string(),
            tag,
            digest,
        })
    }

    /// `host/repo`: what signatures record as the repository identity.
    pub fn repository_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository at `digest`.
    pub fn at_digest(&self, digest: &str) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest.to_string()),
        }
    }

    /// The same repository at `tag`.
    pub fn at_tag(&self, tag: &str) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        }
    }

    /// What the manifest endpoint is asked for: the digest when pinned, else the tag.
    pub fn manifest_ref(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The host without port, for loopback and insecure-registry checks.
    pub fn host(&self) -> &str {
        let r = self.registry.as_str();
        if let Some(rest) = r.strip_prefix('[') {
            return rest.split(']').next().unwrap_or(rest);
        }
        r.rsplit_once(':').map_or(r, |(h, _)| h)
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{SCHEME}{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_good_references() {
        let r = Reference::parse("oci://127.0.0.1:5000/mlsign/test:v1").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "mlsign/test");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.host(), "127.0.0.1");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("oci://reg.example/a/b-c/d__e@{d}")).unwrap();
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert_eq!(r.manifest_ref(), d);
        let r = Reference::parse(&format!("oci://[::1]:5000/x:t@{d}")).unwrap();
        assert_eq!(r.host(), "::1");
        assert_eq!(r.tag.as_deref(), Some("t"));
        assert_eq!(r.to_string(), format!("oci://[::1]:5000/x:t@{d}"));
    }

    #[test]
    fn rejects_bad_references() {
        for s in [
            "127.0.0.1:5000/x:v1",
            "oci://host",
            "oci://host/Upper:v1",
            "oci://host/x",
            "oci://host/x@sha256:abc",
            "oci://host/x:bad/tag",
            "oci://host:99999/x:v1",
            "oci://ho st/x:v1",
            "oci://host/x/../y:v1",
            "oci://host//x:v1",
            "oci://host/x:",
            "oci://host/x-:v1",
        ] {
            assert!(Reference::parse(s).is_err(), "{s}");
        }
    }
}
