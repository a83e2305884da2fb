//! Own serde types for the subset of CycloneDX 1.6 (JSON) that mlsign writes and reads.
//!
//! Why not `cyclonedx-bom`: 0.8.1 writes at most 1.5 and its ML types serialize to
//! schema-invalid JSON (see docs/bom.md). Field order here is the emission order, empty
//! collections are omitted, so the same inputs always give the same bytes.
//!
//! Reading is lenient about fields mlsign does not model (a valid BOM from another tool must
//! still load for `show`/`verify`); strictness is the job of `validate` (the official schema).

use serde::{Deserialize, Serialize};

pub const SPEC_VERSION: &str = "1.6";
pub const SCHEMA_URL: &str = "http://cyclonedx.org/schema/bom-1.6.schema.json";

fn is_empty<T>(v: &[T]) -> bool {
    v.is_empty()
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Bom {
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    pub bom_format: String,
    pub spec_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    #[serde(default = "one")]
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub components: Vec<Component>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub dependencies: Vec<Dependency>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub formulation: Vec<Formula>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub properties: Vec<Property>,
}

fn one() -> u32 {
    1
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub lifecycles: Vec<Lifecycle>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Tools>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<Box<Component>>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub properties: Vec<Property>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Lifecycle {
    pub phase: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Tools {
    #[serde(default, skip_serializing_if = "is_empty")]
    pub components: Vec<Component>,
}

/// `component.type` values mlsign emits or reads specially.
pub mod ctype {
    pub const MODEL: &str = "machine-learning-model";
    pub const DATA: &str = "data";
    pub const FILE: &str = "file";
    pub const LIBRARY: &str = "library";
    pub const APPLICATION: &str = "application";
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename = "bom-ref", default, skip_serializing_if = "Option::is_none")]
    pub bom_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub hashes: Vec<Hash>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub licenses: Vec<LicenseChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purl: Option<String>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub external_references: Vec<ExternalReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pedigree: Option<Pedigree>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_card: Option<ModelCard>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub data: Vec<ComponentData>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub properties: Vec<Property>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub components: Vec<Component>,
}

impl Component {
    pub fn new(kind: &str, name: impl Into<String>) -> Self {
        Component {
            kind: kind.to_string(),
            name: name.into(),
            ..Default::default()
        }
    }

    /// The value of the first property with this name.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.value.as_deref())
    }

    /// The content of the first hash with this algorithm (`SHA-256`, …).
    pub fn hash(&self, alg: &str) -> Option<&str> {
        self.hashes
            .iter()
            .find(|h| h.alg == alg)
            .map(|h| h.content.as_str())
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hash {
    pub alg: String,
    pub content: String,
}

impl Hash {
    pub fn sha256(hex: impl Into<String>) -> Self {
        Hash {
            alg: "SHA-256".into(),
            content: hex.into(),
        }
    }
}

/// `licenses[]` item: `{license: {id|name}}` or `{expression}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(untagged)]
pub enum LicenseChoice {
    License { license: License },
    Expression { expression: String },
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct License {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl LicenseChoice {
    /// A short human label (id, name or expression).
    pub fn label(&self) -> &str {
        match self {
            LicenseChoice::License { license } => license
                .id
                .as_deref()
                .or(license.name.as_deref())
                .unwrap_or("?"),
            LicenseChoice::Expression { expression } => expression,
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ExternalReference {
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub hashes: Vec<Hash>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Property {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl Property {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Property {
            name: name.into(),
            value: Some(value.into()),
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Pedigree {
    #[serde(default, skip_serializing_if = "is_empty")]
    pub ancestors: Vec<Component>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ModelCard {
    #[serde(rename = "bom-ref", default, skip_serializing_if = "Option::is_none")]
    pub bom_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_parameters: Option<ModelParameters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantitative_analysis: Option<QuantitativeAnalysis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub considerations: Option<Considerations>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub properties: Vec<Property>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ModelParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approach: Option<Approach>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture_family: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_architecture: Option<String>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub datasets: Vec<DatasetChoice>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub inputs: Vec<IoFormat>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub outputs: Vec<IoFormat>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Approach {
    #[serde(rename = "type")]
    pub kind: String,
}

/// `modelCard.modelParameters.datasets[]`: mlsign always writes `{ref}`; inline componentData
/// from other tools is kept as raw JSON.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(untagged)]
pub enum DatasetChoice {
    Ref {
        #[serde(rename = "ref")]
        reference: String,
    },
    Inline(serde_json::Value),
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct IoFormat {
    pub format: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct QuantitativeAnalysis {
    #[serde(default, skip_serializing_if = "is_empty")]
    pub performance_metrics: Vec<PerformanceMetric>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct PerformanceMetric {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Considerations {
    #[serde(default, skip_serializing_if = "is_empty")]
    pub users: Vec<String>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub use_cases: Vec<String>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub technical_limitations: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ComponentData {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename = "bom-ref", default, skip_serializing_if = "Option::is_none")]
    pub bom_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contents: Option<DataContents>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct DataContents {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub properties: Vec<Property>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Dependency {
    #[serde(rename = "ref")]
    pub reference: String,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub depends_on: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Formula {
    #[serde(rename = "bom-ref", default, skip_serializing_if = "Option::is_none")]
    pub bom_ref: Option<String>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub workflows: Vec<Workflow>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub properties: Vec<Property>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Workflow {
    #[serde(rename = "bom-ref")]
    pub bom_ref: String,
    pub uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub task_types: Vec<String>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub tasks: Vec<Task>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub task_dependencies: Vec<Dependency>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    #[serde(rename = "bom-ref")]
    pub bom_ref: String,
    pub uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub task_types: Vec<String>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub steps: Vec<Step>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub inputs: Vec<TaskInput>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub outputs: Vec<TaskOutput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_end: Option<String>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub properties: Vec<Property>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Step {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub commands: Vec<Command>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Command {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executed: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ResourceRef {
    #[serde(rename = "ref")]
    pub reference: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct TaskInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceRef>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub parameters: Vec<Parameter>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct TaskOutput {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceRef>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Parameter {
    pub name: String,
    pub value: String,
}

impl Bom {
    /// Every component, depth first: metadata.component, then components[] with children.
    pub fn all_components(&self) -> Vec<&Component> {
        fn walk<'a>(c: &'a Component, out: &mut Vec<&'a Component>) {
            out.push(c);
            for k in &c.components {
                walk(k, out);
            }
        }
        let mut out = Vec::new();
        if let Some(c) = self.metadata.as_ref().and_then(|m| m.component.as_deref()) {
            walk(c, &mut out);
        }
        for c in &self.components {
            walk(c, &mut out);
        }
        out
    }

    /// Find a component by bom-ref anywhere in the BOM.
    pub fn component(&self, bom_ref: &str) -> Option<&Component> {
        self.all_components()
            .into_iter()
            .find(|c| c.bom_ref.as_deref() == Some(bom_ref))
    }
}
