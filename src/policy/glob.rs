//! Subject globs. `*` and `?` stay within one path segment (`/`); `**` spans segments. The same
//! rules apply to file paths and to `oci://` references, so `oci://ghcr.io/acme/*` matches
//! `oci://ghcr.io/acme/bert:v1` but not `oci://ghcr.io/acme/team/bert`.

/// Does `pattern` match all of `text`?
pub fn matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matcher with memo over (pi, ti): patterns are short, texts are paths.
    let mut memo = vec![None; (p.len() + 1) * (t.len() + 1)];
    go(&p, &t, 0, 0, &mut memo)
}

fn go(p: &[char], t: &[char], pi: usize, ti: usize, memo: &mut [Option<bool>]) -> bool {
    let idx = pi * (t.len() + 1) + ti;
    if let Some(v) = memo[idx] {
        return v;
    }
    let r = if pi == p.len() {
        ti == t.len()
    } else if p[pi] == '*' && p.get(pi + 1) == Some(&'*') {
        // `**/` also matches zero segments.
        let mut next = pi + 2;
        if p.get(next) == Some(&'/') && go(p, t, next + 1, ti, memo) {
            true
        } else {
            if p.get(next) == Some(&'/') {
                next = pi + 2;
            }
            (ti..=t.len()).any(|k| go(p, t, next, k, memo))
        }
    } else if p[pi] == '*' {
        let mut k = ti;
        loop {
            if go(p, t, pi + 1, k, memo) {
                break true;
            }
            if k == t.len() || t[k] == '/' {
                break false;
            }
            k += 1;
        }
    } else if ti < t.len() && (p[pi] == '?' && t[ti] != '/' || p[pi] == t[ti]) {
        go(p, t, pi + 1, ti + 1, memo)
    } else {
        false
    };
    memo[idx] = Some(r);
    r
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs() {
        assert!(matches("**", "a/b/c"));
        assert!(matches("models/*", "models/bert"));
        assert!(!matches("models/*", "models/bert/x"));
        assert!(matches("models/**", "models/bert/x"));
        assert!(matches("**/bert", "bert"));
        assert!(matches("**/bert", "a/b/bert"));
        assert!(matches("a/**/c", "a/c"));
        assert!(matches("a/**/c", "a/b/x/c"));
        assert!(matches("m?del", "model"));
        assert!(!matches("m?del", "m/del"));
        assert!(matches(
            "oci://ghcr.io/acme/*",
            "oci://ghcr.io/acme/bert:v1"
        ));
        assert!(!matches(
            "oci://ghcr.io/acme/*",
            "oci://ghcr.io/acme/team/bert"
        ));
        assert!(!matches("oci://ghcr.io/acme/*", "oci://ghcr.io/acmex/bert"));
        assert!(!matches("", "x"));
        assert!(matches("", ""));
        // Pathological patterns stay polynomial.
        assert!(!matches("*a*a*a*a*a*a*a*a*b", &"a".repeat(200)));
    }
}
