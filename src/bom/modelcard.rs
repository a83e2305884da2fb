//! What a model directory says about itself: Hugging Face `config.json` (architecture,
//! model type) and README front matter (license, task, datasets, base model, metrics). Only what
//! is written there is reported; nothing is guessed except the task from a `…ForXxx`
//! architecture name, which is marked as inferred.

use super::cyclonedx::{
    Considerations, ModelCard, ModelParameters, PerformanceMetric, Property, QuantitativeAnalysis,
};
use super::yaml::{self, Yaml};
use serde_json::Value;
use std::path::Path;

/// Files larger than this are not read for metadata (a config or card is a few KiB).
const MAX_META_BYTES: u64 = 4 << 20;

/// Facts read from the model directory.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ModelFacts {
    pub architecture: Option<String>,
    pub family: Option<String>,
    pub task: Option<String>,
    pub task_inferred: bool,
    pub license: Option<String>,
    pub datasets: Vec<String>,
    pub base_models: Vec<String>,
    pub languages: Vec<String>,
    pub library: Option<String>,
    pub metrics: Vec<PerformanceMetric>,
    pub description: Option<String>,
    /// Problems reading metadata (reported as properties, never fatal: weights still get a BOM).
    pub notes: Vec<String>,
}

/// Why a metadata file beside the weights was not read (a note in the BOM, never fatal).
#[derive(Debug, thiserror::Error)]
pub enum MetaFileError {
    #[error("larger than {MAX_META_BYTES} bytes, not read")]
    TooLarge,
    #[error("{0}")]
    Io(#[source] std::io::Error),
    #[error("not UTF-8")]
    NotUtf8,
}

fn read_small(path: &Path) -> Option<Result<String, MetaFileError>> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    if meta.len() > MAX_META_BYTES {
        return Some(Err(MetaFileError::TooLarge));
    }
    Some(
        std::fs::read(path)
            .map_err(MetaFileError::Io)
            .and_then(|b| String::from_utf8(b).map_err(|_| MetaFileError::NotUtf8)),
    )
}

/// Read `config.json` and `README.md` in `dir` (a single-file model has neither).
pub fn extract(dir: &Path) -> ModelFacts {
    let mut f = ModelFacts::default();
    if !dir.is_dir() {
        return f;
    }
    match read_small(&dir.join("config.json")) {
        Some(Ok(text)) => match serde_json::from_str::<Value>(&text) {
            Ok(v) => from_config(&v, &mut f),
            Err(e) => f.notes.push(format!("config.json: not JSON ({e})")),
        },
        Some(Err(e)) => f.notes.push(format!("config.json: {e}")),
        None => {}
    }
    match read_small(&dir.join("README.md")) {
        Some(Ok(text)) => from_readme(&text, &mut f),
        Some(Err(e)) => f.notes.push(format!("README.md: {e}")),
        None => {}
    }
    f
}

pub fn from_config(v: &Value, f: &mut ModelFacts) {
    if let Some(a) = v
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(Value::as_str)
    {
        f.architecture = Some(a.to_string());
    }
    if let Some(t) = v.get("model_type").and_then(Value::as_str) {
        f.family = Some(t.to_string());
    }
    if f.task.is_none() {
        if let Some(t) = f.architecture.as_deref().and_then(task_from_architecture) {
            f.task = Some(t.to_string());
            f.task_inferred = true;
        }
    }
}

/// Transformers' head naming convention → Hugging Face pipeline task.
fn task_from_architecture(a: &str) -> Option<&'static str> {
    const HEADS: &[(&str, &str)] = &[
        ("ForSequenceClassification", "text-classification"),
        ("ForTokenClassification", "token-classification"),
        ("ForQuestionAnswering", "question-answering"),
        ("ForMaskedLM", "fill-mask"),
        ("ForCausalLM", "text-generation"),
        ("LMHeadModel", "text-generation"),
        ("ForImageClassification", "image-classification"),
        ("ForObjectDetection", "object-detection"),
        ("ForSpeechSeq2Seq", "automatic-speech-recognition"),
        ("ForCTC", "automatic-speech-recognition"),
    ];
    HEADS.iter().find(|(h, _)| a.ends_with(h)).map(|(_, t)| *t)
}

pub fn from_readme(text: &str, f: &mut ModelFacts) {
    let (fm, body) = match yaml::front_matter(text) {
        Some(x) => x,
        None => ("", text),
    };
    f.description = first_paragraph(body);
    if fm.is_empty() {
        return;
    }
    let y = match yaml::parse(fm) {
        Ok(y) => y,
        Err(e) => {
            f.notes
                .push(format!("README.md front matter not read: {e}"));
            return;
        }
    };
    if let Some(l) = y
        .get("license")
        .and_then(Yaml::as_str)
        .filter(|s| !s.is_empty())
    {
        // `license: other` + `license_name` is the Hub's way to name a custom license.
        f.license = match (l, y.get("license_name").and_then(Yaml::as_str)) {
            ("other", Some(n)) => Some(n.to_string()),
            _ => Some(l.to_string()),
        };
    }
    if let Some(t) = y
        .get("pipeline_tag")
        .and_then(Yaml::as_str)
        .filter(|s| !s.is_empty())
    {
        f.task = Some(t.to_string());
        f.task_inferred = false;
    }
    if let Some(d) = y.get("datasets") {
        f.datasets = d.strings();
    }
    if let Some(b) = y.get("base_model") {
        f.base_models = b.strings();
    }
    if let Some(l) = y.get("language") {
        f.languages = l.strings();
    }
    if let Some(l) = y.get("library_name").and_then(Yaml::as_str) {
        f.library = Some(l.to_string());
    }
    for entry in y.get("model-index").map(Yaml::list).unwrap_or(&[]) {
        for r in entry.get("results").map(Yaml::list).unwrap_or(&[]) {
            let ds = r.get("dataset");
            let slice = ds.map(|d| {
                let name = d
                    .get("name")
                    .or_else(|| d.get("type"))
                    .and_then(Yaml::as_str)
                    .unwrap_or("?");
                match d.get("split").and_then(Yaml::as_str) {
                    Some(s) => format!("{name} ({s})"),
                    None => name.to_string(),
                }
            });
            for m in r.get("metrics").map(Yaml::list).unwrap_or(&[]) {
                let kind = m
                    .get("type")
                    .or_else(|| m.get("name"))
                    .and_then(Yaml::as_str);
                let value = m.get("value").and_then(Yaml::as_str);
                if kind.is_some() || value.is_some() {
                    f.metrics.push(PerformanceMetric {
                        kind: kind.map(String::from),
                        value: value.map(String::from),
                        slice: slice.clone(),
                    });
                }
            }
        }
    }
}

/// The first prose paragraph after the title (for `component.description`), capped.
fn first_paragraph(body: &str) -> Option<String> {
    let mut para = Vec::new();
    for line in body.lines() {
        let t = line.trim();
        if t.is_empty() {
            if !para.is_empty() {
                break;
            }
            continue;
        }
        if t.starts_with('#') || t.starts_with("<!--") || t.starts_with('|') || t.starts_with("```")
        {
            if !para.is_empty() {
                break;
            }
            continue;
        }
        para.push(t);
    }
    let mut s = para.join(" ");
    if s.is_empty() {
        return None;
    }
    if s.len() > 500 {
        let mut cut = 500;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    Some(s)
}

impl ModelFacts {
    /// The model card (dataset refs are added by the builder, which knows the bom-refs).
    pub fn model_card(&self, bom_ref: String) -> ModelCard {
        let params = ModelParameters {
            approach: None,
            task: self.task.clone(),
            architecture_family: self.family.clone(),
            model_architecture: self.architecture.clone(),
            datasets: vec![],
            inputs: vec![],
            outputs: vec![],
        };
        let mut props = Vec::new();
        if self.task_inferred {
            props.push(Property::new(
                "mlsign:modelCard.task.source",
                "inferred from config.json architectures",
            ));
        }
        for l in &self.languages {
            props.push(Property::new("mlsign:modelCard.language", l));
        }
        if let Some(l) = &self.library {
            props.push(Property::new("mlsign:modelCard.library", l));
        }
        for n in &self.notes {
            props.push(Property::new("mlsign:modelCard.note", n));
        }
        ModelCard {
            bom_ref: Some(bom_ref),
            model_parameters: Some(params),
            quantitative_analysis: (!self.metrics.is_empty()).then(|| QuantitativeAnalysis {
                performance_metrics: self.metrics.clone(),
            }),
            considerations: None::<Considerations>,
            properties: props,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_and_readme() {
        let mut f = ModelFacts::default();
        from_config(
            &json!({"architectures": ["BertForSequenceClassification"], "model_type": "bert"}),
            &mut f,
        );
        assert_eq!(f.task.as_deref(), Some("text-classification"));
        assert!(f.task_inferred);
        from_readme(
            "---\nlicense: mit\npipeline_tag: sentiment\ndatasets:\n  - imdb\nbase_model: bert-base-uncased\n---\n# Title\n\nA small model.\nSecond line.\n\nMore.\n",
            &mut f,
        );
        assert_eq!(f.task.as_deref(), Some("sentiment"));
        assert!(!f.task_inferred);
        assert_eq!(f.license.as_deref(), Some("mit"));
        assert_eq!(f.datasets, vec!["imdb"]);
        assert_eq!(f.base_models, vec!["bert-base-uncased"]);
        assert_eq!(
            f.description.as_deref(),
            Some("A small model. Second line.")
        );
        assert_eq!(
            f.architecture.as_deref(),
            Some("BertForSequenceClassification")
        );
    }

    #[test]
    fn unreadable_metadata_files_are_notes_with_the_reason() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("config.json"), [0xff, 0xfe, b'{']).unwrap();
        let big = std::fs::File::create(t.path().join("README.md")).unwrap();
        big.set_len(MAX_META_BYTES + 1).unwrap();
        assert!(matches!(
            read_small(&t.path().join("config.json")),
            Some(Err(MetaFileError::NotUtf8))
        ));
        assert!(matches!(
            read_small(&t.path().join("README.md")),
            Some(Err(MetaFileError::TooLarge))
        ));
        assert!(read_small(&t.path().join("absent")).is_none());
        let f = extract(t.path());
        assert!(
            f.notes.iter().any(|n| n == "config.json: not UTF-8"),
            "{:?}",
            f.notes
        );
        assert!(
            f.notes
                .iter()
                .any(|n| n.starts_with("README.md: larger than")),
            "{:?}",
            f.notes
        );
    }

    #[test]
    fn broken_front_matter_is_a_note() {
        let mut f = ModelFacts::default();
        from_readme("---\n\tlicense: x\n---\n", &mut f);
        assert_eq!(f.notes.len(), 1, "{:?}", f.notes);
        assert!(f.license.is_none());
    }
}
