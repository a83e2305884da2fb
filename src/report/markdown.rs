//! Markdown sink, made for a CI job summary (GitHub's `$GITHUB_STEP_SUMMARY` takes 1 MiB per
//! step): the verdict first, then one table row per check, then the findings. Output is capped;
//! what does not fit is cut at a line boundary with a note saying how much was left out.

use super::render::Table;
use super::{Check, Finding, Verdict};

/// Default cap: below GitHub's 1 MiB step-summary limit.
pub const MAX_BYTES: usize = 1_000_000;

/// Escape text for a table cell or list item: no HTML, no table breaks, one line.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' => o.push_str("\\|"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '`' => o.push('\''),
            '*' | '_' | '[' | ']' | '#' | '\\' => {
                o.push('\\');
                o.push(c);
            }
            '\n' | '\r' | '\t' => o.push(' '),
            c if c.is_control() => o.push('\u{fffd}'),
            c => o.push(c),
        }
    }
    o
}

fn icon(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "✅ PASS",
        Verdict::Warn => "⚠️ WARN",
        Verdict::Fail => "❌ FAIL",
    }
}

fn finding_line(f: &Finding) -> String {
    let loc = f
        .location
        .as_ref()
        .map(|l| format!(" — {}", esc(&l.to_string())))
        .unwrap_or_default();
    format!(
        "- **{}** ({}){loc}: {}\n",
        f.code,
        f.severity,
        esc(&f.message)
    )
}

/// A summary to render: the verdict first, then facts, a table of what was checked, then the
/// findings.
pub struct Doc<'a> {
    pub title: &'a str,
    pub verdict: Verdict,
    pub headline: &'a str,
    pub facts: &'a [(&'a str, String)],
    pub table: &'a Table,
    pub findings: &'a [Finding],
}

/// Render a gate-like result. `meta` rows (already plain text) go under the headline.
pub fn render(
    title: &str,
    verdict: Verdict,
    headline: &str,
    meta: &[(&str, String)],
    checks: &[Check],
    max_bytes: usize,
) -> String {
    let table = Table {
        columns: vec!["check", "status", "summary"],
        rows: checks
            .iter()
            .map(|c| {
                vec![
                    c.name.to_string(),
                    c.status.as_str().to_string(),
                    c.summary.clone(),
                ]
            })
            .collect(),
    };
    let findings: Vec<Finding> = checks
        .iter()
        .flat_map(|c| c.findings.iter().cloned())
        .collect();
    document(
        &Doc {
            title,
            verdict,
            headline,
            facts: meta,
            table: &table,
            findings: &findings,
        },
        max_bytes,
    )
}

/// Render `d` in at most `max_bytes` (at least a few hundred), cutting at a line boundary with
/// a note saying what was left out.
pub fn document(d: &Doc, max_bytes: usize) -> String {
    let mut head = format!(
        "## {} — {}\n\n{}\n\n",
        esc(d.title),
        icon(d.verdict),
        esc(d.headline)
    );
    for (k, v) in d.facts {
        head.push_str(&format!("- {}: {}\n", esc(k), esc(v)));
    }
    if !d.facts.is_empty() {
        head.push('\n');
    }
    if !d.table.columns.is_empty() {
        head.push_str(&format!("| {} |\n", d.table.columns.join(" | ")));
        head.push_str(&format!("|{}\n", "---|".repeat(d.table.columns.len())));
        for r in &d.table.rows {
            let cells: Vec<String> = r.iter().map(|c| esc(c)).collect();
            head.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
    }
    let lines: Vec<String> = d.findings.iter().map(finding_line).collect();
    if !lines.is_empty() {
        head.push_str("\n### Findings\n\n");
    }
    let mut out = head;
    let reserve = 200;
    let budget = max_bytes.saturating_sub(reserve);
    if out.len() > budget {
        // Even the table is too big: cut it at a line boundary.
        let mut cut = budget;
        while cut > 0 && !out.is_char_boundary(cut) {
            cut -= 1;
        }
        let cut = out[..cut].rfind('\n').map_or(0, |i| i + 1);
        out.truncate(cut);
        out.push_str(&format!(
            "\n_Output truncated to stay under {max_bytes} bytes; run `{} --format json` for the full report._\n",
            d.title
        ));
        return out;
    }
    for (i, l) in lines.iter().enumerate() {
        if out.len() + l.len() > budget {
            out.push_str(&format!(
                "\n_{} more finding(s) not shown: the summary is capped at {max_bytes} bytes; \
                 the JSON and SARIF reports have all of them._\n",
                lines.len() - i
            ));
            return out;
        }
        out.push_str(l);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{CheckStatus, Severity};

    fn check(n: usize) -> Check {
        Check {
            name: "scan",
            status: CheckStatus::Fail,
            summary: "a | b".into(),
            findings: (0..n)
                .map(|i| Finding::new("PKL001", Severity::Critical, format!("<script> {i} `x`")))
                .collect(),
        }
    }

    #[test]
    fn verdict_first_and_escaped() {
        let m = render(
            "mlsign gate",
            Verdict::Fail,
            "m: fail",
            &[],
            &[check(2)],
            MAX_BYTES,
        );
        assert!(m.starts_with("## mlsign gate — ❌ FAIL"));
        assert!(m.contains("| scan | fail | a \\| b |"));
        assert!(!m.contains("<script>"));
        assert!(m.contains("&lt;script&gt;"));
    }

    #[test]
    fn capped_with_a_note() {
        let m = render("t", Verdict::Fail, "h", &[], &[check(50_000)], 10_000);
        assert!(m.len() <= 10_000, "{}", m.len());
        assert!(m.contains("more finding(s) not shown"));
    }
}
