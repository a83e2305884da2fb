//! GitHub Actions sink: workflow commands (`::error file=…,title=…::message`) so findings show
//! as annotations, one per finding, capped with a note; and `key=value` step outputs.

use super::{Finding, Severity};

/// Escape a workflow-command message (GitHub's `escapeData`).
fn data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escape a workflow-command property value (`escapeProperty`).
fn prop(s: &str) -> String {
    data(s).replace(':', "%3A").replace(',', "%2C")
}

/// One annotation line per finding above `Info`, at most `cap`, then a note for the rest.
/// `error` selects `::error` (enforced violations) or `::warning` (warn and audit modes).
pub fn annotations(findings: &[Finding], cap: usize, error: bool) -> String {
    let level = if error { "error" } else { "warning" };
    let shown: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.severity > Severity::Info)
        .collect();
    let mut s = String::new();
    for f in shown.iter().take(cap) {
        let mut props = Vec::new();
        if let Some(l) = &f.location {
            props.push(format!("file={}", prop(&l.path)));
        }
        props.push(format!(
            "title={}",
            prop(&format!("mlsign {} ({})", f.code, f.severity))
        ));
        let mut msg = f.message.clone();
        if let Some(m) = f.location.as_ref().and_then(|l| l.member.as_ref()) {
            msg = format!("{m}: {msg}");
        }
        s.push_str(&format!("::{level} {}::{}\n", props.join(","), data(&msg)));
    }
    if shown.len() > cap {
        s.push_str(&format!(
            "::{level} title=mlsign::{} more finding(s) not annotated (cap {cap}); see the job summary, the JSON report or the SARIF file\n",
            shown.len() - cap
        ));
    }
    s
}

/// A `key=value` step-output line; values with newlines use the heredoc form.
pub fn output(key: &str, value: &str) -> String {
    if value.contains('\n') || value.contains('\r') {
        let mut delim = "MLSIGN_EOF".to_string();
        while value.contains(&delim) {
            delim.push('_');
        }
        format!("{key}<<{delim}\n{value}\n{delim}\n")
    } else {
        format!("{key}={value}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Location;

    #[test]
    fn escaped_and_capped() {
        let f: Vec<Finding> = (0..5)
            .map(|i| {
                Finding::new("PKL001", Severity::Critical, format!("50% bad\nline {i}"))
                    .at(Location::path("a,b:c.pkl"))
            })
            .collect();
        let s = annotations(&f, 3, true);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[0],
            "::error file=a%2Cb%3Ac.pkl,title=mlsign PKL001 (critical)::50%25 bad%0Aline 0"
        );
        assert!(lines[3].contains("2 more finding(s)"));
        assert_eq!(output("k", "v"), "k=v\n");
        assert!(output("k", "a\nb").starts_with("k<<MLSIGN_EOF\na\nb\nMLSIGN_EOF"));
    }
}
