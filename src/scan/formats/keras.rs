//! Keras: `.keras` archives (ZIP with `config.json`) and legacy HDF5 models. A `Lambda` layer
//! carries Python bytecode; a layer from a non-Keras module needs that module's code.

use super::source::Source;
use super::zip;
use crate::report::Severity;
use crate::scan::finding::{Ctx, ScanFinding};
use crate::scan::policy::Policy;

fn walk(v: &serde_json::Value, path: &str, fs: &mut Vec<ScanFinding>, depth: u32) {
    if depth > 64 {
        return;
    }
    match v {
        serde_json::Value::Object(m) => {
            let class = m.get("class_name").and_then(|c| c.as_str()).unwrap_or("");
            let name = m
                .get("config")
                .and_then(|c| c.get("name"))
                .and_then(|n| n.as_str())
                .unwrap_or("?");
            if class == "Lambda" || class == "TFOpLambda" {
                fs.push(ScanFinding::new("SCN016", Severity::High, format!("{class} layer {name:?} at {path} carries Python code that runs on load (safe_mode=False) or call")));
            }
            if let Some(module) = m.get("module").and_then(|c| c.as_str()) {
                let builtin = module == "keras"
                    || module.starts_with("keras.")
                    || module == "builtins"
                    || module.starts_with("tensorflow")
                    || module.starts_with("tf_keras");
                if !builtin {
                    fs.push(ScanFinding::new("SCN016", Severity::Medium, format!("{class} {name:?} at {path} comes from module {module:?}, whose code is imported on load")));
                }
            }
            for (k, x) in m {
                walk(x, &format!("{path}/{k}"), fs, depth + 1);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                walk(x, &format!("{path}/{i}"), fs, depth + 1);
            }
        }
        _ => {}
    }
}

/// Inspect a Keras model config (JSON text).
pub fn check_config(text: &[u8], ctx: &Ctx) -> Vec<ScanFinding> {
    match serde_json::from_slice::<serde_json::Value>(text) {
        Ok(v) => {
            let mut fs = vec![];
            walk(&v, "", &mut fs, 0);
            fs.into_iter().map(|f| ctx.stamp(f)).collect()
        }
        Err(e) => vec![ctx.stamp(ScanFinding::new(
            "SCN016",
            Severity::High,
            format!("Keras config is not valid JSON: {e}"),
        ))],
    }
}

pub fn scan_keras_zip(
    src: &dyn Source,
    a: &zip::Archive,
    ctx: &Ctx,
    policy: &Policy,
) -> Vec<ScanFinding> {
    let mut fs = vec![];
    for e in &a.entries {
        let child = ctx.child(&e.name);
        if e.name.ends_with(".weights.h5") || e.name.ends_with(".weights.npz") {
            continue; // weights only, no code
        }
        match super::read_zip_member(src, e, &child, policy) {
            Ok((data, an)) => {
                fs.extend(an);
                if e.name == "config.json" {
                    fs.extend(check_config(&data, &child));
                } else if e.name != "metadata.json" {
                    fs.extend(super::scan_bytes(&data, &child, policy));
                }
            }
            Err(f) => fs.push(f),
        }
    }
    fs
}

/// Legacy `.h5` Keras models keep the config as a JSON string attribute (`model_config`);
/// find it without an HDF5 library by locating the JSON object that holds `"class_name"`.
pub fn scan_hdf5(src: &dyn Source, ctx: &Ctx) -> Vec<ScanFinding> {
    let n = src.len().min(64 << 20);
    let Ok(d) = src.read_vec(0, n, 64 << 20) else {
        return vec![ctx.stamp(ScanFinding::new(
            "SCN002",
            Severity::High,
            "HDF5 file cannot be read",
        ))];
    };
    let mut fs = vec![];
    let needle = b"{\"class_name\":";
    let mut i = 0;
    let mut configs = 0;
    while let Some(p) = d[i..].windows(needle.len()).position(|w| w == needle) {
        let start = i + p;
        // The attribute string ends at the first NUL (or the window end).
        let end = d[start..]
            .iter()
            .position(|b| *b == 0)
            .map(|e| start + e)
            .unwrap_or(d.len());
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&d[start..end]) {
            configs += 1;
            walk(&v, "model_config", &mut fs, 0);
        }
        i = end.max(start + 1);
    }
    let mut out: Vec<ScanFinding> = fs.into_iter().map(|f| ctx.stamp(f)).collect();
    if configs == 0 {
        out.push(ctx.stamp(ScanFinding::new(
            "SCN019",
            Severity::Info,
            "HDF5 file without a Keras model_config: weights only",
        )));
    }
    out
}
