//! Human sink: plain text for a terminal, one finding per line.

use super::{Check, CheckStatus, Finding, Verdict};
use std::fmt::Write;

/// One line per finding, indented.
pub fn findings(findings: &[Finding]) -> String {
    let mut s = String::new();
    for f in findings {
        let _ = writeln!(s, "  {f}");
    }
    s
}

fn mark(status: CheckStatus) -> &'static str {
    match status {
        CheckStatus::Pass => "ok  ",
        CheckStatus::Fail => "FAIL",
        CheckStatus::Skipped => "skip",
        CheckStatus::Error => "ERR ",
    }
}

/// A verdict headline, then one line per check with its findings under it.
pub fn checks(headline: &str, verdict: Verdict, checks: &[Check]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}: {headline}", verdict.as_str().to_uppercase());
    for c in checks {
        let _ = writeln!(s, "  [{}] {:<10} {}", mark(c.status), c.name, c.summary);
        for f in &c.findings {
            let _ = writeln!(s, "         {f}");
        }
    }
    s
}

/// A byte count for people: `512 B`, `1.5 MiB`.
pub fn bytes(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}
