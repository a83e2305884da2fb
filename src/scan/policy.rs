//! The scan policy: an exact (module, qualified name) allowlist built from presets and policy
//! files, a suspicious tier a policy can opt into, and a denylist that only grades severity.

use super::presets;
use crate::report::Severity;

/// The most bytes of one member or decompressed payload held in memory at once. Larger
/// payloads are streamed: their head decides whether they must be held (pickles, containers),
/// else they are counted and dropped. Keeps peak memory bounded on bombs (docs/scan-formats.md).
pub const IN_MEMORY_MAX: u64 = 192 << 20;
use serde::Deserialize;
use std::collections::HashSet;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("policy {path} is not valid TOML for a scan policy: {message}")]
    Parse { path: String, message: String },
    #[error("policy entry {0:?} must be `module:name` (e.g. `argparse:Namespace`)")]
    Entry(String),
    #[error("unknown preset {0:?} (known: builtins, pytorch, numpy, joblib)")]
    Preset(String),
}

/// How a global is judged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Suspicious tier the policy explicitly allows (reported as info).
    AllowedSuspicious,
    /// Suspicious tier (custom class of a known library).
    Suspicious,
    /// Not allowlisted: severity Critical when denylisted, High otherwise.
    Unsafe {
        severity: Severity,
        why: String,
    },
}

/// A loaded policy.
#[derive(Clone, Debug)]
pub struct Policy {
    allow: HashSet<(String, String)>,
    allow_suspicious_modules: Vec<String>,
    allow_suspicious_names: HashSet<(String, String)>,
    /// Exit 1 on suspicious files too.
    pub fail_on_suspicious: bool,
    /// How deep nested payloads and containers are followed.
    pub max_depth: u32,
    /// Largest member or decompressed payload read into memory.
    pub max_member_bytes: u64,
    /// Total bytes read from members and decompressed per scanned file (zip-bomb bound).
    pub max_total_bytes: u64,
    /// Largest member or decompressed payload held in memory to be scanned whole (pickles,
    /// nested containers); larger ones are unscannable. Everything else is streamed.
    pub max_in_memory_bytes: u64,
}

/// The TOML shape of a policy file (`[scan]` table).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    scan: Option<ScanSection>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ScanSection {
    presets: Option<Vec<String>>,
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    allow_suspicious: Vec<String>,
    fail_on_suspicious: Option<bool>,
    max_depth: Option<u32>,
    max_member_bytes: Option<u64>,
    max_total_bytes: Option<u64>,
    max_in_memory_bytes: Option<u64>,
}

impl Default for Policy {
    fn default() -> Self {
        let mut p = Policy {
            allow: HashSet::new(),
            allow_suspicious_modules: vec![],
            allow_suspicious_names: HashSet::new(),
            fail_on_suspicious: false,
            max_depth: 4,
            max_member_bytes: 1 << 30,
            max_total_bytes: 4 << 30,
            max_in_memory_bytes: IN_MEMORY_MAX,
        };
        for name in presets::PRESETS {
            p.add_preset(name).expect("built-in preset");
        }
        p
    }
}

fn split_entry(e: &str) -> Result<(String, String), PolicyError> {
    match e.split_once(':') {
        Some((m, n)) if !m.is_empty() && !n.is_empty() => Ok((m.to_string(), n.to_string())),
        _ => Err(PolicyError::Entry(e.to_string())),
    }
}

fn in_module(module: &str, prefix: &str) -> bool {
    module == prefix
        || (module.len() > prefix.len()
            && module.starts_with(prefix)
            && module.as_bytes()[prefix.len()] == b'.')
}

impl Policy {
    pub fn from_presets(names: &[&str]) -> Result<Self, PolicyError> {
        let mut p = Policy::default();
        p.allow.clear();
        for n in names {
            p.add_preset(n)?;
        }
        Ok(p)
    }

    pub fn add_preset(&mut self, name: &str) -> Result<(), PolicyError> {
        let pairs = presets::preset(name).ok_or_else(|| PolicyError::Preset(name.to_string()))?;
        self.allow.extend(pairs);
        Ok(())
    }

    /// Add one exact `module:name` entry.
    pub fn allow_entry(&mut self, entry: &str) -> Result<(), PolicyError> {
        self.allow.insert(split_entry(entry)?);
        Ok(())
    }

    /// Allow a suspicious-tier entry: `module` (prefix) or `module:name` (exact).
    pub fn allow_suspicious(&mut self, entry: &str) -> Result<(), PolicyError> {
        if entry.contains(':') {
            self.allow_suspicious_names.insert(split_entry(entry)?);
        } else if entry.is_empty() {
            return Err(PolicyError::Entry(entry.to_string()));
        } else {
            self.allow_suspicious_modules.push(entry.to_string());
        }
        Ok(())
    }

    /// Load a policy file (TOML, `[scan]` table). Presets default to all four.
    pub fn from_file(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            PolicyError::Parse { message, .. } => PolicyError::Parse {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    pub fn from_toml(text: &str) -> Result<Self, PolicyError> {
        let f: PolicyFile = toml::from_str(text).map_err(|e| PolicyError::Parse {
            path: String::new(),
            message: e.to_string(),
        })?;
        let s = f.scan.unwrap_or_default();
        let mut p = match &s.presets {
            Some(names) => {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                Policy::from_presets(&names)?
            }
            None => Policy::default(),
        };
        for e in &s.allow {
            p.allow_entry(e)?;
        }
        for e in &s.allow_suspicious {
            p.allow_suspicious(e)?;
        }
        if let Some(v) = s.fail_on_suspicious {
            p.fail_on_suspicious = v;
        }
        if let Some(v) = s.max_depth {
            p.max_depth = v.min(16);
        }
        if let Some(v) = s.max_member_bytes {
            p.max_member_bytes = v;
        }
        if let Some(v) = s.max_in_memory_bytes {
            p.max_in_memory_bytes = v;
        }
        if let Some(v) = s.max_total_bytes {
            p.max_total_bytes = v;
        }
        Ok(p)
    }

    /// Judge one resolved global (after the Python-2 mapping).
    pub fn judge(&self, module: &str, name: &str) -> Decision {
        self.judge_as(module, name, false)
    }

    /// [`Policy::judge`], knowing whether the stream proved the global is a class (its first
    /// use is NEWOBJ, which checks `PyType_Check` before calling, or a class argument that an
    /// allowlisted function checks before use): a class of a suspicious-tier library is then
    /// suspicious whatever its name looks like (`scipy.sparse._csr.csr_matrix`).
    pub fn judge_as(&self, module: &str, name: &str, known_class: bool) -> Decision {
        let key = (module.to_string(), name.to_string());
        if self.allow.contains(&key) {
            return Decision::Allowed;
        }
        if let Some(why) = deny_reason(module, name) {
            return Decision::Unsafe {
                severity: Severity::Critical,
                why,
            };
        }
        if name.contains('.') {
            return Decision::Unsafe {
                severity: Severity::High,
                why: "dotted name: from protocol 4 on, find_class follows attributes, so this can reach any object".into(),
            };
        }
        if is_suspicious_tier(module, name, known_class) {
            let allowed = self.allow_suspicious_names.contains(&key)
                || self
                    .allow_suspicious_modules
                    .iter()
                    .any(|m| in_module(module, m));
            return if allowed {
                Decision::AllowedSuspicious
            } else {
                Decision::Suspicious
            };
        }
        Decision::Unsafe {
            severity: Severity::High,
            why: "not in the allowlist".into(),
        }
    }
}

/// Why a global is denylisted, if it is.
pub fn deny_reason(module: &str, name: &str) -> Option<String> {
    if presets::DENY_NAMES
        .iter()
        .any(|(m, n)| *m == module && *n == name)
    {
        return Some(format!(
            "{module}.{name} can run code or reach arbitrary objects"
        ));
    }
    let first = name.split('.').next().unwrap_or(name);
    if presets::DENY_NAMES
        .iter()
        .any(|(m, n)| *m == module && *n == first)
    {
        return Some(format!(
            "{module}.{first} can run code or reach arbitrary objects"
        ));
    }
    if let Some(m) = presets::DENY_MODULES.iter().find(|m| in_module(module, m)) {
        return Some(format!(
            "module {m} gives process, file, network, import or code-execution access"
        ));
    }
    if name.contains("__builtins__")
        || name.contains("__globals__")
        || name.contains("__import__")
        || name.contains("__subclasses__")
        || name.contains("__code__")
    {
        return Some("name reaches interpreter internals".into());
    }
    None
}

fn is_suspicious_tier(module: &str, name: &str, known_class: bool) -> bool {
    if presets::SUSPICIOUS_NAMES
        .iter()
        .any(|(m, n)| *m == module && *n == name)
    {
        return true;
    }
    let class_like = (known_class || name.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
        && !name.contains('.');
    class_like
        && presets::SUSPICIOUS_MODULES
            .iter()
            .any(|m| in_module(module, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_allowlist() {
        let p = Policy::default();
        assert_eq!(
            p.judge("torch._utils", "_rebuild_tensor_v2"),
            Decision::Allowed
        );
        assert_eq!(p.judge("collections", "OrderedDict"), Decision::Allowed);
        assert!(matches!(
            p.judge("collections", "OrderedDict.fromkeys"),
            Decision::Unsafe { .. }
        ));
        assert!(matches!(
            p.judge("os", "system"),
            Decision::Unsafe {
                severity: Severity::Critical,
                ..
            }
        ));
        assert!(matches!(
            p.judge("builtins", "dict.get"),
            Decision::Unsafe { .. }
        ));
        assert!(matches!(
            p.judge("mypkg", "Thing"),
            Decision::Unsafe {
                severity: Severity::High,
                ..
            }
        ));
        assert_eq!(p.judge("argparse", "Namespace"), Decision::Suspicious);
        assert_eq!(
            p.judge("sklearn.linear_model._logistic", "LogisticRegression"),
            Decision::Suspicious
        );
        assert!(matches!(
            p.judge("sklearn.utils", "some_function"),
            Decision::Unsafe { .. }
        ));
        // A lower-case class the stream proved to be a class is suspicious, not unknown.
        assert!(matches!(
            p.judge("scipy.sparse._csr", "csr_matrix"),
            Decision::Unsafe { .. }
        ));
        assert_eq!(
            p.judge_as("scipy.sparse._csr", "csr_matrix", true),
            Decision::Suspicious
        );
        assert!(matches!(
            p.judge_as("os", "system", true),
            Decision::Unsafe { .. }
        ));
        assert!(matches!(
            p.judge_as("scipy.sparse", "csr_matrix.__init__", true),
            Decision::Unsafe { .. }
        ));
        assert!(matches!(
            p.judge("posixpath", "os.system"),
            Decision::Unsafe {
                severity: Severity::Critical,
                ..
            }
        ));
    }

    #[test]
    fn policy_file_allows_suspicious_and_exact() {
        let p = Policy::from_toml(
            "[scan]\npresets = [\"pytorch\"]\nallow = [\"mypkg:Thing\"]\nallow_suspicious = [\"sklearn\"]\nfail_on_suspicious = true\n",
        )
        .unwrap();
        assert_eq!(p.judge("mypkg", "Thing"), Decision::Allowed);
        assert_eq!(
            p.judge("sklearn.svm._classes", "SVC"),
            Decision::AllowedSuspicious
        );
        assert!(matches!(
            p.judge("numpy", "ndarray"),
            Decision::Unsafe { .. }
        ));
        assert!(p.fail_on_suspicious);
        assert!(Policy::from_toml("[scan]\nallow = [\"nocolon\"]").is_err());
        assert!(Policy::from_toml("[scan]\npresets = [\"nope\"]").is_err());
        assert!(Policy::from_toml("[scan]\nbogus = 1").is_err());
    }
}
