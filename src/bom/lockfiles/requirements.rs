//! pip `requirements.txt`, ideally as written by `pip-compile --generate-hashes` or
//! `uv pip compile --generate-hashes`: `name==version` pins, `--hash=ALG:HEX` options and
//! backslash continuations. Options lines (`-r`, `--index-url`, …) are skipped; a requirement
//! that is a URL or an editable install is an error (it has no name/version to put in a purl).

use super::{parse_hash, pypi_purl, LockError, LockedPackage};

pub(super) fn parse(text: &str, shown: &str) -> Result<Vec<LockedPackage>, LockError> {
    let mut out = Vec::new();
    // Join continuation lines, remembering where each logical line started.
    let mut logical: Vec<(usize, String)> = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = strip_comment(raw);
        let (body, cont) = match line.trim_end().strip_suffix('\\') {
            Some(b) => (b.to_string(), true),
            None => (line.to_string(), false),
        };
        let entry = cur.get_or_insert_with(|| (i + 1, String::new()));
        entry.1.push(' ');
        entry.1.push_str(&body);
        if !cont {
            logical.push(cur.take().expect("set above"));
        }
    }
    if let Some(c) = cur {
        logical.push(c);
    }
    for (lineno, line) in logical {
        let at = format!("{shown}:{lineno}");
        let mut toks = line.split_whitespace().peekable();
        let Some(first) = toks.peek().copied() else {
            continue;
        };
        if first.starts_with('-') {
            if first == "-e" || first.starts_with("--editable") {
                return Err(LockError::new(
                    at,
                    "editable requirement has no pinned version; lock it first",
                ));
            }
            continue; // -r, -c, --index-url, --extra-index-url, --no-binary, …
        }
        // The requirement spec runs until the first `--option`; markers follow `;`.
        let mut spec = String::new();
        let mut hashes = Vec::new();
        for t in toks {
            if let Some(h) = t.strip_prefix("--hash=") {
                hashes.push(parse_hash(h, &at)?);
            } else if t == "--hash" {
                return Err(LockError::new(at, "write --hash=ALG:HEX (with `=`)"));
            } else if t.starts_with("--") {
                continue;
            } else {
                spec.push_str(t);
            }
        }
        let req = spec.split(';').next().unwrap_or("").trim();
        if req.contains("://") || req.contains(" @ ") || req.contains('@') {
            return Err(LockError::new(
                at,
                format!(
                    "requirement {req:?} is a URL reference; mlsign records name==version pins"
                ),
            ));
        }
        let (name_part, version) = match req.split_once("===").or_else(|| req.split_once("==")) {
            Some((n, v)) => (n, Some(v.trim().to_string())),
            None => {
                let end = req.find(['<', '>', '=', '!', '~']).unwrap_or(req.len());
                (&req[..end], None)
            }
        };
        let name = name_part.split('[').next().unwrap_or("").trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(LockError::new(
                at,
                format!("cannot read a package name from {req:?}"),
            ));
        }
        if let Some(v) = &version {
            if v.is_empty() || v.contains(',') || v.contains('*') {
                return Err(LockError::new(
                    at,
                    format!("version pin {v:?} is not exact"),
                ));
            }
        }
        out.push(LockedPackage {
            ecosystem: "pypi",
            purl: Some(pypi_purl(name, version.as_deref())),
            name: name.to_string(),
            version,
            hashes,
            dependencies: vec![],
            source: None,
        });
    }
    Ok(out)
}

/// `#` starts a comment at line start or after whitespace (pip's rule).
fn strip_comment(line: &str) -> &str {
    let b = line.as_bytes();
    for i in 0..b.len() {
        if b[i] == b'#' && (i == 0 || b[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_pins_with_continuations() {
        let h1 = "a".repeat(64);
        let h2 = "b".repeat(64);
        let text = format!(
            "# comment\n--index-url https://pypi.org/simple\nnumpy==1.26.4 \\\n    --hash=sha256:{h1} \\\n    --hash=sha256:{h2}\n    # via torch\nTyping_Extensions[x]==4.9.0 ; python_version >= \"3.8\" --hash=sha256:{h1}\nfilelock>=3\n"
        );
        let p = parse(&text, "r.txt").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].name, "numpy");
        assert_eq!(p[0].hashes.len(), 2);
        assert_eq!(p[0].purl.as_deref(), Some("pkg:pypi/numpy@1.26.4"));
        assert_eq!(
            p[1].purl.as_deref(),
            Some("pkg:pypi/typing-extensions@4.9.0")
        );
        assert_eq!(p[2].version, None);
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("ok==1\n-e ./src\n", "r.txt").unwrap_err();
        assert_eq!(e.at, "r.txt:2");
        let e = parse("x==1 --hash=sha256:zz\n", "r.txt").unwrap_err();
        assert_eq!(e.at, "r.txt:1");
        let e = parse("pkg @ https://x/y.whl\n", "r.txt").unwrap_err();
        assert!(e.message.contains("URL"), "{e}");
        assert!(parse("x==1,<2\n", "r.txt").is_err());
    }
}
