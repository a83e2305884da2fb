//! The auditor's view of a BOM: model → datasets → lineage steps → sources, with short digests,
//! as text, JSON, or a self-contained HTML page (inline SVG graph, no scripts, no network).

use super::build::prop;
use super::cyclonedx::{ctype, Bom, Component, DatasetChoice, Task};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

#[derive(Debug, Clone, Serialize)]
pub struct View {
    pub serial_number: Option<String>,
    pub timestamp: Option<String>,
    pub model: ModelView,
    pub datasets: Vec<DatasetView>,
    pub libraries: Vec<LibraryView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelView {
    pub bom_ref: String,
    pub name: String,
    pub version: Option<String>,
    pub digest: Option<String>,
    pub licenses: Vec<String>,
    pub task: Option<String>,
    pub architecture: Option<String>,
    pub family: Option<String>,
    pub base_models: Vec<String>,
    pub datasets: Vec<String>,
    pub files: Vec<FileView>,
    pub metrics: Vec<String>,
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileView {
    pub name: String,
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatasetView {
    pub bom_ref: String,
    pub name: String,
    pub version: Option<String>,
    pub digest: Option<String>,
    pub licenses: Vec<String>,
    pub source: Option<String>,
    pub split: Option<String>,
    pub files: usize,
    pub parents: Vec<String>,
    pub step: Option<StepView>,
    pub pinned: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    pub name: String,
    pub task_type: String,
    pub commands: Vec<String>,
    pub parameters: Vec<(String, String)>,
    pub code: Vec<String>,
    pub time_start: Option<String>,
    pub time_end: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LibraryView {
    pub name: String,
    pub version: Option<String>,
    pub purl: Option<String>,
    pub hashed: bool,
    pub lockfiles: Vec<String>,
}

fn licenses(c: &Component) -> Vec<String> {
    c.licenses.iter().map(|l| l.label().to_string()).collect()
}

fn sha(c: &Component) -> Option<String> {
    c.hash("SHA-256").map(|h| format!("sha256:{h}"))
}

/// Short form for display: `sha256:0123456789ab`.
pub use crate::util::short;

fn step_view(t: &Task) -> StepView {
    StepView {
        name: t.name.clone().unwrap_or_else(|| t.bom_ref.clone()),
        task_type: t.task_types.join(","),
        commands: t
            .steps
            .iter()
            .flat_map(|s| s.commands.iter().filter_map(|c| c.executed.clone()))
            .collect(),
        parameters: t
            .inputs
            .iter()
            .flat_map(|i| {
                i.parameters
                    .iter()
                    .map(|p| (p.name.clone(), p.value.clone()))
            })
            .collect(),
        code: t
            .properties
            .iter()
            .filter(|p| p.name == "mlsign:step.code")
            .filter_map(|p| p.value.clone())
            .collect(),
        time_start: t.time_start.clone(),
        time_end: t.time_end.clone(),
    }
}

/// Extract the view from a BOM (mlsign's or any other generator's).
pub fn view(bom: &Bom) -> View {
    let empty = Component::default();
    let m = bom
        .metadata
        .as_ref()
        .and_then(|m| m.component.as_deref())
        .or_else(|| bom.components.iter().find(|c| c.kind == ctype::MODEL))
        .unwrap_or(&empty);
    let params = m
        .model_card
        .as_ref()
        .and_then(|c| c.model_parameters.as_ref());
    let deps: BTreeMap<&str, &Vec<String>> = bom
        .dependencies
        .iter()
        .map(|d| (d.reference.as_str(), &d.depends_on))
        .collect();
    let mut made_by: BTreeMap<String, &Task> = BTreeMap::new();
    for f in &bom.formulation {
        for w in &f.workflows {
            for t in &w.tasks {
                for o in &t.outputs {
                    if let Some(r) = &o.resource {
                        made_by.insert(r.reference.clone(), t);
                    }
                }
            }
        }
    }
    let data_refs: BTreeSet<String> = bom
        .components
        .iter()
        .filter(|c| c.kind == ctype::DATA)
        .filter_map(|c| c.bom_ref.clone())
        .collect();
    let datasets = bom
        .components
        .iter()
        .filter(|c| c.kind == ctype::DATA)
        .map(|c| {
            let r = c.bom_ref.clone().unwrap_or_else(|| c.name.clone());
            let contents = c.data.first().and_then(|d| d.contents.as_ref());
            DatasetView {
                parents: deps
                    .get(r.as_str())
                    .map(|v| {
                        v.iter()
                            .filter(|x| data_refs.contains(*x))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default(),
                step: made_by.get(&r).map(|t| step_view(t)),
                name: c.name.clone(),
                version: c.version.clone(),
                digest: sha(c),
                licenses: licenses(c),
                source: c
                    .external_references
                    .iter()
                    .find(|e| e.kind == "distribution")
                    .map(|e| e.url.clone())
                    .or_else(|| contents.and_then(|x| x.url.clone()))
                    .or_else(|| c.property(prop::SOURCE).map(String::from)),
                split: contents.and_then(|x| {
                    x.properties
                        .iter()
                        .find(|p| p.name == "mlsign:split")
                        .and_then(|p| p.value.clone())
                }),
                files: c
                    .components
                    .iter()
                    .filter(|k| k.kind == ctype::FILE)
                    .count(),
                pinned: !c.hashes.is_empty(),
                bom_ref: r,
            }
        })
        .collect();
    let libraries = bom
        .components
        .iter()
        .filter(|c| c.kind != ctype::DATA && c.kind != ctype::MODEL)
        .map(|c| LibraryView {
            name: c.name.clone(),
            version: c.version.clone(),
            purl: c.purl.clone(),
            hashed: !c.hashes.is_empty(),
            lockfiles: c
                .properties
                .iter()
                .filter(|p| p.name == prop::LOCKFILE)
                .filter_map(|p| p.value.clone())
                .collect(),
        })
        .collect();
    View {
        serial_number: bom.serial_number.clone(),
        timestamp: bom.metadata.as_ref().and_then(|m| m.timestamp.clone()),
        model: ModelView {
            bom_ref: m.bom_ref.clone().unwrap_or_default(),
            name: m.name.clone(),
            version: m.version.clone(),
            digest: sha(m),
            licenses: licenses(m),
            task: params.and_then(|p| p.task.clone()),
            architecture: params.and_then(|p| p.model_architecture.clone()),
            family: params.and_then(|p| p.architecture_family.clone()),
            base_models: m
                .pedigree
                .iter()
                .flat_map(|p| p.ancestors.iter().map(|a| a.name.clone()))
                .collect(),
            datasets: params
                .map(|p| {
                    p.datasets
                        .iter()
                        .filter_map(|d| match d {
                            DatasetChoice::Ref { reference } => Some(reference.clone()),
                            DatasetChoice::Inline(_) => None,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            files: m
                .components
                .iter()
                .filter(|k| k.kind == ctype::FILE)
                .map(|f| FileView {
                    name: f.name.clone(),
                    sha256: f.hash("SHA-256").map(String::from),
                })
                .collect(),
            metrics: m
                .model_card
                .as_ref()
                .and_then(|c| c.quantitative_analysis.as_ref())
                .map(|q| {
                    q.performance_metrics
                        .iter()
                        .map(|p| {
                            let mut s = format!(
                                "{} = {}",
                                p.kind.as_deref().unwrap_or("?"),
                                p.value.as_deref().unwrap_or("?")
                            );
                            if let Some(sl) = &p.slice {
                                let _ = write!(s, " on {sl}");
                            }
                            s
                        })
                        .collect()
                })
                .unwrap_or_default(),
            properties: m
                .properties
                .iter()
                .filter(|p| {
                    p.name.starts_with("mlsign:signature") || p.name.starts_with("mlsign:scan")
                })
                .filter_map(|p| p.value.clone().map(|v| (p.name.clone(), v)))
                .collect(),
        },
        datasets,
        libraries,
    }
}

impl View {
    fn dataset(&self, r: &str) -> Option<&DatasetView> {
        self.datasets.iter().find(|d| d.bom_ref == r)
    }

    fn dataset_line(d: &DatasetView) -> String {
        let mut s = d.name.clone();
        if let Some(v) = &d.version {
            let _ = write!(s, "@{v}");
        }
        match &d.digest {
            Some(h) => {
                let _ = write!(s, "  {}  ({} files)", short(h), d.files);
            }
            None => s.push_str("  NOT PINNED (name only)"),
        }
        if let Some(sp) = &d.split {
            let _ = write!(s, "  split {sp}");
        }
        if !d.licenses.is_empty() {
            let _ = write!(s, "  license {}", d.licenses.join(", "));
        }
        s
    }

    /// Indented text tree.
    pub fn human(&self) -> String {
        let mut o = String::new();
        let m = &self.model;
        let _ = write!(o, "model {}", m.name);
        if let Some(v) = &m.version {
            let _ = write!(o, "@{v}");
        }
        if let Some(d) = &m.digest {
            let _ = write!(o, "  {}", short(d));
        }
        let _ = writeln!(o, "  ({} files)", m.files.len());
        let mut facts = vec![];
        if let Some(t) = &m.task {
            facts.push(format!("task {t}"));
        }
        if let Some(a) = &m.architecture {
            facts.push(format!("architecture {a}"));
        }
        if !m.licenses.is_empty() {
            facts.push(format!("license {}", m.licenses.join(", ")));
        }
        if !m.base_models.is_empty() {
            facts.push(format!("base {}", m.base_models.join(", ")));
        }
        if !facts.is_empty() {
            let _ = writeln!(o, "│ {}", facts.join(" · "));
        }
        for x in &m.metrics {
            let _ = writeln!(o, "│ metric {x}");
        }
        for (k, v) in &m.properties {
            let _ = writeln!(o, "│ {k}: {v}");
        }
        for f in &m.files {
            let _ = writeln!(
                o,
                "│ file {}  {}",
                f.name,
                f.sha256
                    .as_deref()
                    .map(|h| h.chars().take(12).collect::<String>())
                    .unwrap_or_else(|| "-".into())
            );
        }
        let _ = writeln!(o, "└─ trained on {} dataset(s)", m.datasets.len());
        let mut seen = BTreeSet::new();
        for (i, r) in m.datasets.iter().enumerate() {
            self.tree(&mut o, r, "   ", i + 1 == m.datasets.len(), &mut seen, 0);
        }
        let others: Vec<&DatasetView> = self
            .datasets
            .iter()
            .filter(|d| !seen.contains(&d.bom_ref))
            .collect();
        if !others.is_empty() {
            let _ = writeln!(o, "other datasets:");
            for d in others {
                let _ = writeln!(o, "   {}", Self::dataset_line(d));
            }
        }
        let hashed = self.libraries.iter().filter(|l| l.hashed).count();
        let mut locks: BTreeSet<&str> = BTreeSet::new();
        for l in &self.libraries {
            locks.extend(l.lockfiles.iter().map(String::as_str));
        }
        let _ = writeln!(
            o,
            "software: {} package(s), {} pinned by hash{}",
            self.libraries.len(),
            hashed,
            if locks.is_empty() {
                String::new()
            } else {
                format!(
                    " (from {})",
                    locks.into_iter().collect::<Vec<_>>().join(", ")
                )
            }
        );
        o
    }

    fn tree(
        &self,
        o: &mut String,
        r: &str,
        indent: &str,
        last: bool,
        seen: &mut BTreeSet<String>,
        depth: usize,
    ) {
        let branch = if last { "└─ " } else { "├─ " };
        let Some(d) = self.dataset(r) else {
            let _ = writeln!(o, "{indent}{branch}{r} (not in this BOM)");
            return;
        };
        let _ = writeln!(o, "{indent}{branch}{}", Self::dataset_line(d));
        let sub = format!("{indent}{}", if last { "   " } else { "│  " });
        if !seen.insert(r.to_string()) || depth > 64 {
            if !d.parents.is_empty() {
                let _ = writeln!(o, "{sub}(lineage shown above)");
            }
            return;
        }
        if let Some(s) = &d.step {
            let _ = writeln!(o, "{sub}⇐ step {} [{}]", s.name, s.task_type);
            for c in &s.commands {
                let _ = writeln!(o, "{sub}  $ {c}");
            }
            if !s.parameters.is_empty() {
                let p: Vec<String> = s
                    .parameters
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let _ = writeln!(o, "{sub}  params {}", p.join(" "));
            }
            for c in &s.code {
                let _ = writeln!(o, "{sub}  code {c}");
            }
            if let (Some(a), Some(b)) = (&s.time_start, &s.time_end) {
                let _ = writeln!(o, "{sub}  ran {a} → {b}");
            }
        }
        if d.parents.is_empty() {
            if let Some(src) = &d.source {
                let _ = writeln!(o, "{sub}source {src}");
            }
        }
        for (i, p) in d.parents.iter().enumerate() {
            self.tree(o, p, &sub, i + 1 == d.parents.len(), seen, depth + 1);
        }
    }

    /// A self-contained HTML page: summary, lineage graph (inline SVG), tables.
    pub fn html(&self) -> String {
        let mut o = String::new();
        let title = format!("ML-BOM: {}", self.model.name);
        let _ = write!(
            o,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
<title>{}</title><style>\
body{{font:14px system-ui,sans-serif;margin:2em;color:#222}}\
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}}\
code{{font:12px ui-monospace,monospace}}.warn{{color:#b00}}svg text{{font:12px system-ui,sans-serif}}\
</style></head><body>\n<h1>{}</h1>\n",
            esc(&title),
            esc(&title)
        );
        let m = &self.model;
        let _ = writeln!(o, "<table>");
        let mut row = |k: &str, v: String| {
            let _ = writeln!(o, "<tr><th>{}</th><td>{}</td></tr>", esc(k), v);
        };
        row("model digest", code(m.digest.as_deref().unwrap_or("-")));
        if let Some(t) = &m.task {
            row("task", esc(t));
        }
        if let Some(a) = &m.architecture {
            row("architecture", esc(a));
        }
        if !m.licenses.is_empty() {
            row("license", esc(&m.licenses.join(", ")));
        }
        if !m.base_models.is_empty() {
            row("base model", esc(&m.base_models.join(", ")));
        }
        for x in &m.metrics {
            row("metric", esc(x));
        }
        for (k, v) in &m.properties {
            row(k, esc(v));
        }
        row("serial", code(self.serial_number.as_deref().unwrap_or("-")));
        row("timestamp", esc(self.timestamp.as_deref().unwrap_or("-")));
        let _ = writeln!(o, "</table>\n<h2>Lineage</h2>");
        o.push_str(&self.svg());
        let _ = writeln!(
            o,
            "<h2>Datasets</h2><table><tr><th>name</th><th>digest</th><th>files</th><th>license</th>\
<th>source</th><th>made by</th></tr>"
        );
        for d in &self.datasets {
            let step = d
                .step
                .as_ref()
                .map(|s| {
                    format!(
                        "{} <code>{}</code>",
                        esc(&s.name),
                        esc(&s.commands.join("; "))
                    )
                })
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&Self::label(d)),
                d.digest
                    .as_deref()
                    .map(code)
                    .unwrap_or_else(|| "<span class=warn>not pinned</span>".into()),
                d.files,
                esc(&d.licenses.join(", ")),
                esc(d.source.as_deref().unwrap_or("")),
                step
            );
        }
        let _ = writeln!(
            o,
            "</table>\n<h2>Model files</h2><table><tr><th>file</th><th>SHA-256</th></tr>"
        );
        for f in &m.files {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td></tr>",
                esc(&f.name),
                code(f.sha256.as_deref().unwrap_or("-"))
            );
        }
        let _ = writeln!(
            o,
            "</table>\n<h2>Software ({} packages)</h2><table><tr><th>package</th><th>version</th><th>purl</th><th>hash</th></tr>",
            self.libraries.len()
        );
        for l in &self.libraries {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&l.name),
                esc(l.version.as_deref().unwrap_or("")),
                code(l.purl.as_deref().unwrap_or("")),
                if l.hashed {
                    "yes"
                } else {
                    "<span class=warn>no</span>"
                }
            );
        }
        let _ = writeln!(
            o,
            "</table>\n<p>Generated by mlsign {}.</p>\n</body></html>",
            env!("CARGO_PKG_VERSION")
        );
        o
    }

    fn label(d: &DatasetView) -> String {
        match &d.version {
            Some(v) => format!("{}@{v}", d.name),
            None => d.name.clone(),
        }
    }

    /// Layered drawing: sources on the left, the model on the right; a column per lineage depth.
    fn svg(&self) -> String {
        let n = self.datasets.len();
        let idx: BTreeMap<&str, usize> = self
            .datasets
            .iter()
            .enumerate()
            .map(|(i, d)| (d.bom_ref.as_str(), i))
            .collect();
        // Depth = longest parent chain (bounded: a cyclic foreign BOM cannot loop forever).
        let mut depth = vec![0usize; n];
        for _ in 0..n.min(256) {
            let mut changed = false;
            for (i, d) in self.datasets.iter().enumerate() {
                for p in &d.parents {
                    if let Some(&j) = idx.get(p.as_str()) {
                        if depth[j] + 1 > depth[i] && depth[j] < n {
                            depth[i] = depth[j] + 1;
                            changed = true;
                        }
                    }
                }
            }
            if !changed {
                break;
            }
        }
        // Versions the model uses directly and nothing else derives from sit next to the model,
        // so their edges do not cross other columns.
        let max_depth = depth.iter().copied().max().unwrap_or(0);
        let has_child: BTreeSet<usize> = self
            .datasets
            .iter()
            .flat_map(|d| {
                d.parents
                    .iter()
                    .filter_map(|p| idx.get(p.as_str()).copied())
            })
            .collect();
        for (i, d) in self.datasets.iter().enumerate() {
            if !has_child.contains(&i) && self.model.datasets.contains(&d.bom_ref) {
                depth[i] = max_depth;
            }
        }
        let cols = max_depth + 2; // + model column
        let mut rows_in: Vec<usize> = vec![0; cols];
        let mut pos = vec![(0usize, 0usize); n];
        for i in 0..n {
            pos[i] = (depth[i], rows_in[depth[i]]);
            rows_in[depth[i]] += 1;
        }
        let (w, h, gx, gy) = (210usize, 46usize, 90usize, 24usize);
        let rows = rows_in.iter().copied().max().unwrap_or(1).max(1);
        let width = cols * (w + gx) + 20;
        let height = rows * (h + gy) + 40;
        let xy = |c: usize, r: usize| (10 + c * (w + gx), 20 + r * (h + gy));
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"lineage graph\">\
<defs><marker id=\"a\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"6\" markerHeight=\"6\" orient=\"auto\"><path d=\"M0,0L10,5L0,10z\" fill=\"#555\"/></marker></defs>\n"
        );
        let model_pos = xy(cols - 1, 0);
        let edge = |s: &mut String, from: (usize, usize), to: (usize, usize), label: &str| {
            let (x1, y1) = (from.0 + w, from.1 + h / 2);
            let (x2, y2) = (to.0, to.1 + h / 2);
            let _ = writeln!(
                s,
                "<line x1=\"{x1}\" y1=\"{y1}\" x2=\"{x2}\" y2=\"{y2}\" stroke=\"#555\" marker-end=\"url(#a)\"/>"
            );
            if !label.is_empty() {
                let _ = writeln!(
                    s,
                    "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#036\">{}</text>",
                    (x1 + x2) / 2,
                    (y1 + y2) / 2 - 4,
                    esc(label)
                );
            }
        };
        for (i, d) in self.datasets.iter().enumerate() {
            let to = xy(pos[i].0, pos[i].1);
            for p in &d.parents {
                if let Some(&j) = idx.get(p.as_str()) {
                    let label = d.step.as_ref().map(|s| s.name.as_str()).unwrap_or("");
                    edge(&mut s, xy(pos[j].0, pos[j].1), to, label);
                }
            }
        }
        for r in &self.model.datasets {
            if let Some(&j) = idx.get(r.as_str()) {
                edge(&mut s, xy(pos[j].0, pos[j].1), model_pos, "");
            }
        }
        let node = |s: &mut String, (x, y): (usize, usize), title: &str, sub: &str, fill: &str| {
            let _ = writeln!(
                s,
                "<g><rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" rx=\"6\" fill=\"{fill}\" stroke=\"#333\"/>\
<text x=\"{}\" y=\"{}\" font-weight=\"bold\">{}</text><text x=\"{}\" y=\"{}\">{}</text></g>",
                x + 8,
                y + 18,
                esc(&clip(title, 30)),
                x + 8,
                y + 36,
                esc(&clip(sub, 32))
            );
        };
        for (i, d) in self.datasets.iter().enumerate() {
            let sub = d
                .digest
                .as_deref()
                .map(short)
                .unwrap_or_else(|| "not pinned".into());
            let fill = if d.digest.is_none() {
                "#fde2e2"
            } else if d.parents.is_empty() {
                "#e8f0fe"
            } else {
                "#eef7ee"
            };
            node(&mut s, xy(pos[i].0, pos[i].1), &Self::label(d), &sub, fill);
        }
        node(
            &mut s,
            model_pos,
            &format!("model {}", self.model.name),
            &self.model.digest.as_deref().map(short).unwrap_or_default(),
            "#fff4d6",
        );
        s.push_str("</svg>\n");
        s
    }
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

fn code(s: &str) -> String {
    format!("<code>{}</code>", esc(s))
}

/// HTML-escape text and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A foreign, schema-invalid BOM (non-hex digests, cycles in dependencies, refs to nowhere)
    /// still renders without panicking.
    #[test]
    fn foreign_bom_renders() {
        let text = r#"{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,
          "components":[
            {"type":"machine-learning-model","name":"m","bom-ref":"m",
             "hashes":[{"alg":"SHA-256","content":"ééééééééééééééé"}],
             "modelCard":{"modelParameters":{"datasets":[{"ref":"a"},{"ref":"zz"},{"type":"dataset","name":"inline"}]}}},
            {"type":"data","name":"a","bom-ref":"a","hashes":[{"alg":"SHA-256","content":"日本語日本語日本語日本語日本語"}]},
            {"type":"data","name":"b","bom-ref":"b"}],
          "dependencies":[{"ref":"a","dependsOn":["b"]},{"ref":"b","dependsOn":["a"]}]}"#;
        let bom = crate::bom::from_json(text.as_bytes()).unwrap();
        let v = view(&bom);
        assert_eq!(v.model.name, "m");
        let h = v.human();
        assert!(h.contains("zz (not in this BOM)"), "{h}");
        assert!(h.contains("(lineage shown above)"), "{h}");
        assert!(v.html().contains("<svg"));
    }

    #[test]
    fn escaping() {
        assert_eq!(esc("<script>&\"'"), "&lt;script&gt;&amp;&quot;&#39;");
        assert_eq!(clip("abcdef", 4), "abc…");
    }
}
