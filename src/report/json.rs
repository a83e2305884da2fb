//! JSON sink: pretty JSON with a trailing newline. Every command's JSON names its `schema`.

use serde::Serialize;

/// Pretty JSON text of `v`, newline-terminated.
pub fn to_string<T: Serialize + ?Sized>(v: &T) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_else(|e| {
        serde_json::json!({"error": {"message": format!("cannot serialize the report: {e}")}})
            .to_string()
    });
    s.push('\n');
    s
}
