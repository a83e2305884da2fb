//! What a command hands to the output sinks. A command builds one [`Report`] from what the
//! library returned and [`render`]s it in the format asked for: the human text, the JSON
//! document, SARIF and the Markdown summary all show the same verdict and the same findings.

use super::{json, markdown, sarif, Exit, Finding, Format, Verdict};

/// A table for the Markdown summary: what was checked, one row each.
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

/// A command's result, renderable in every [`Format`].
pub trait Report {
    /// The command (`mlsign scan`): the Markdown title.
    fn title(&self) -> &'static str;
    /// Pass (exit 0) or fail (exit 1).
    fn verdict(&self) -> Verdict;
    /// One line: what was decided about what.
    fn headline(&self) -> String;
    /// Every finding, each once. All four formats carry exactly these codes.
    fn findings(&self) -> Vec<Finding>;
    /// Key facts under the headline (signer, digest, files…).
    fn facts(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    /// What was checked, for the summary table.
    fn table(&self) -> Table {
        Table::default()
    }
    /// The command's JSON document (its shape is documented in docs/output.md).
    fn json(&self) -> serde_json::Value;
    /// Text for a terminal; it names every finding.
    fn human(&self) -> String;
}

/// The report in `format`, newline-terminated.
pub fn render(format: Format, r: &dyn Report) -> String {
    match format {
        Format::Human => r.human(),
        Format::Json => json::to_string(&r.json()),
        Format::Sarif => json::to_string(&sarif::to_sarif(&r.findings())),
        Format::Markdown => markdown::document(
            &markdown::Doc {
                title: r.title(),
                verdict: r.verdict(),
                headline: &r.headline(),
                facts: &r.facts(),
                table: &r.table(),
                findings: &r.findings(),
            },
            markdown::MAX_BYTES,
        ),
    }
}

/// Print the report on stdout (a closed pipe is not an error worth a panic) and return the
/// exit code its verdict maps to.
pub fn emit(format: Format, r: &dyn Report) -> Exit {
    use std::io::Write;
    let _ = std::io::stdout()
        .lock()
        .write_all(render(format, r).as_bytes());
    exit(r.verdict())
}

/// Pass and warn exit 0; fail exits 1.
pub fn exit(v: Verdict) -> Exit {
    match v {
        Verdict::Pass | Verdict::Warn => Exit::Pass,
        Verdict::Fail => Exit::Finding,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Location, Severity};

    struct Fake(Vec<Finding>);

    impl Report for Fake {
        fn title(&self) -> &'static str {
            "mlsign fake"
        }
        fn verdict(&self) -> Verdict {
            Verdict::pass_if(self.0.is_empty())
        }
        fn headline(&self) -> String {
            format!("{} finding(s)", self.0.len())
        }
        fn findings(&self) -> Vec<Finding> {
            self.0.clone()
        }
        fn table(&self) -> Table {
            Table {
                columns: vec!["file", "status"],
                rows: vec![vec!["a|b.pkl".into(), "bad".into()]],
            }
        }
        fn json(&self) -> serde_json::Value {
            serde_json::json!({"findings": self.0})
        }
        fn human(&self) -> String {
            crate::report::human::findings(&self.0)
        }
    }

    #[test]
    fn every_format_renders_the_same_findings() {
        let r = Fake(vec![Finding::new(
            "PKL001",
            Severity::Critical,
            "os.system",
        )
        .at(Location::path("a|b.pkl"))]);
        assert_eq!(exit(r.verdict()), Exit::Finding);
        let h = render(Format::Human, &r);
        assert!(h.contains("PKL001 [critical] a|b.pkl: os.system"), "{h}");
        let j: serde_json::Value = serde_json::from_str(&render(Format::Json, &r)).unwrap();
        assert_eq!(j["findings"][0]["code"], "PKL001");
        let s: serde_json::Value = serde_json::from_str(&render(Format::Sarif, &r)).unwrap();
        assert_eq!(s["runs"][0]["results"][0]["ruleId"], "PKL001");
        let m = render(Format::Markdown, &r);
        assert!(
            m.starts_with("## mlsign fake — ❌ FAIL\n\n1 finding(s)\n"),
            "{m}"
        );
        assert!(
            m.contains("| file | status |\n|---|---|\n| a\\|b.pkl | bad |"),
            "{m}"
        );
        assert!(m.contains("- **PKL001** (critical)"), "{m}");
        assert_eq!(exit(Fake(vec![]).verdict()), Exit::Pass);
        assert!(render(Format::Markdown, &Fake(vec![])).starts_with("## mlsign fake — ✅ PASS"));
    }
}
