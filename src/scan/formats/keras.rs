//! Keras, read the way Keras loads it: `.keras` archives (a ZIP recognised by `config.json`
//! alone) and legacy HDF5 models (`model_config` / `training_config` root attributes, read by
//! [`super::hdf5`]). The whole config is walked iteratively, with no depth cutoff.
//!
//! What runs code on load: `Lambda` layers under any spelling Keras resolves (`Lambda`,
//! `layers.Lambda`, `keras.layers.Lambda`, a registered name ending in `Lambda`), serialised
//! `__lambda__` functions anywhere (activations, initialisers, losses…), `TorchModuleWrapper`
//! (its module is a `torch.save` payload loaded with `weights_only=False`: scanned as one),
//! `TFSMLayer` (loads an external SavedModel), and objects from modules outside Keras, which
//! Keras before 3.9 imports by name (CVE-2025-1550): high for the standard library and other
//! modules every Python environment has, medium for other packages (custom layers).

use super::source::Source;
use super::zip;
use crate::report::Severity;
use crate::scan::diags::Code;
use crate::scan::finding::ScanFinding;
use crate::scan::scanner::Scanner;
use serde_json::Value;

/// Top-level packages of Keras objects Keras resolves itself.
const KERAS_PACKAGES: &[&str] = &[
    "keras",
    "keras_hub",
    "keras_cv",
    "keras_nlp",
    "tf_keras",
    "tensorflow",
];

/// Modules present in every Python environment (the standard library) or in every ML one: a
/// config naming them needs no custom code to be installed for the import to succeed.
const EVERYWHERE: &[&str] = &[
    "IPython",
    "_aix_support",
    "_codecs",
    "_ctypes",
    "_frozen_importlib",
    "_imp",
    "_io",
    "_operator",
    "_osx_support",
    "_pickle",
    "_posixsubprocess",
    "_thread",
    "_winapi",
    "abc",
    "aifc",
    "aiohttp",
    "antigravity",
    "argparse",
    "array",
    "ast",
    "asynchat",
    "asyncio",
    "asyncore",
    "atexit",
    "audioop",
    "base64",
    "bdb",
    "binascii",
    "bisect",
    "builtins",
    "bz2",
    "cProfile",
    "calendar",
    "cgi",
    "cgitb",
    "chunk",
    "cloudpickle",
    "cmath",
    "cmd",
    "code",
    "codecs",
    "codeop",
    "collections",
    "colorsys",
    "compileall",
    "concurrent",
    "configparser",
    "contextlib",
    "contextvars",
    "copy",
    "copyreg",
    "crypt",
    "csv",
    "ctypes",
    "curses",
    "dataclasses",
    "datetime",
    "dbm",
    "decimal",
    "difflib",
    "dill",
    "dis",
    "distutils",
    "doctest",
    "email",
    "encodings",
    "ensurepip",
    "enum",
    "errno",
    "faulthandler",
    "fcntl",
    "filecmp",
    "fileinput",
    "fnmatch",
    "fractions",
    "ftplib",
    "functools",
    "gc",
    "genericpath",
    "getopt",
    "getpass",
    "gettext",
    "glob",
    "graphlib",
    "grp",
    "gzip",
    "hashlib",
    "heapq",
    "hmac",
    "html",
    "http",
    "httpx",
    "huggingface_hub",
    "idlelib",
    "imaplib",
    "imghdr",
    "imp",
    "importlib",
    "inspect",
    "io",
    "ipaddress",
    "itertools",
    "jax",
    "joblib",
    "json",
    "keyword",
    "lib2to3",
    "linecache",
    "locale",
    "logging",
    "lzma",
    "mailbox",
    "mailcap",
    "marshal",
    "math",
    "mimetypes",
    "mmap",
    "modulefinder",
    "msilib",
    "msvcrt",
    "multiprocessing",
    "netrc",
    "nis",
    "nntplib",
    "nt",
    "ntpath",
    "nturl2path",
    "numbers",
    "numpy",
    "opcode",
    "operator",
    "optparse",
    "os",
    "ossaudiodev",
    "pandas",
    "pathlib",
    "pdb",
    "pickle",
    "pickletools",
    "pip",
    "pipes",
    "pkg_resources",
    "pkgutil",
    "platform",
    "plistlib",
    "poplib",
    "posix",
    "posixpath",
    "pprint",
    "profile",
    "pstats",
    "pty",
    "pwd",
    "py_compile",
    "pyclbr",
    "pydoc",
    "pydoc_data",
    "pyexpat",
    "queue",
    "quopri",
    "random",
    "re",
    "readline",
    "reprlib",
    "requests",
    "resource",
    "rlcompleter",
    "runpy",
    "sched",
    "scipy",
    "secrets",
    "select",
    "selectors",
    "setuptools",
    "shelve",
    "shlex",
    "shutil",
    "signal",
    "site",
    "sklearn",
    "smtpd",
    "smtplib",
    "sndhdr",
    "socket",
    "socketserver",
    "spwd",
    "sqlite3",
    "sre_compile",
    "sre_constants",
    "sre_parse",
    "ssl",
    "stat",
    "statistics",
    "string",
    "stringprep",
    "struct",
    "subprocess",
    "sunau",
    "symtable",
    "sys",
    "sysconfig",
    "syslog",
    "tabnanny",
    "tarfile",
    "telnetlib",
    "tempfile",
    "termios",
    "textwrap",
    "this",
    "threading",
    "time",
    "timeit",
    "tkinter",
    "token",
    "tokenize",
    "tomllib",
    "torch",
    "trace",
    "traceback",
    "tracemalloc",
    "transformers",
    "tty",
    "turtle",
    "turtledemo",
    "types",
    "typing",
    "unicodedata",
    "unittest",
    "urllib",
    "urllib3",
    "uu",
    "uuid",
    "venv",
    "warnings",
    "wave",
    "weakref",
    "webbrowser",
    "winreg",
    "winsound",
    "wsgiref",
    "xdrlib",
    "xml",
    "xmlrpc",
    "zipapp",
    "zipfile",
    "zipimport",
    "zlib",
    "zoneinfo",
];

fn short(name: &str) -> &str {
    name.rsplit(['.', '>']).next().unwrap_or(name)
}

fn is_lambda(name: &str) -> bool {
    matches!(short(name), "Lambda" | "TFOpLambda")
}

/// Findings for one serialised object (a JSON object with `class_name`).
fn check_object(
    sc: &Scanner,
    m: &serde_json::Map<String, Value>,
    path: &str,
    fs: &mut Vec<ScanFinding>,
) {
    let Some(class) = m.get("class_name").and_then(Value::as_str) else {
        // Keras 2 Lambda configs carry marshalled bytecode under `function`.
        if m.get("function_type").and_then(Value::as_str) == Some("lambda") {
            fs.push(ScanFinding::new(Code::Scn016, Severity::High, format!("serialised Python lambda (function_type \"lambda\") at {path}: marshalled bytecode runs on load")));
        }
        return;
    };
    let registered = m
        .get("registered_name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let config = m.get("config");
    let name = config
        .and_then(|c| c.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("?");
    if is_lambda(class) || is_lambda(registered) {
        fs.push(ScanFinding::new(Code::Scn016, Severity::High, format!("{class} layer {name:?} at {path} carries Python code that runs on load (safe_mode=False) or call")));
    }
    if class == "__lambda__" || registered == "__lambda__" {
        fs.push(ScanFinding::new(
            Code::Scn016,
            Severity::High,
            format!(
                "serialised Python lambda at {path}: its bytecode is loaded with safe_mode=False"
            ),
        ));
    }
    if m.get("function_type").and_then(Value::as_str) == Some("lambda") {
        fs.push(ScanFinding::new(Code::Scn016, Severity::High, format!("serialised Python lambda (function_type \"lambda\") at {path}: marshalled bytecode runs on load")));
    }
    if short(class) == "TFSMLayer" || short(registered) == "TFSMLayer" {
        fs.push(ScanFinding::new(Code::Scn016, Severity::High, format!("TFSMLayer {name:?} at {path} loads an external TensorFlow SavedModel (graph and its ops) on load")));
    }
    if short(class) == "TorchModuleWrapper" || short(registered) == "TorchModuleWrapper" {
        fs.extend(torch_module(sc, config, name, path));
    }
    if let Some(module) = m.get("module").and_then(Value::as_str) {
        // For functions the object's name is the config string.
        let obj = match config {
            Some(Value::String(s)) => s.as_str(),
            _ => class,
        };
        let top = module.split('.').next().unwrap_or(module);
        if module == "builtins" {
            // Keras maps `builtins` functions onto its own (activations, losses…); a Python
            // builtin that reaches code is still named here.
            if crate::scan::policy::deny_reason("builtins", obj).is_some() {
                fs.push(ScanFinding::new(
                    Code::Scn016,
                    Severity::High,
                    format!("{class} {obj:?} at {path} names the Python builtin builtins.{obj}"),
                ));
            }
        } else if !KERAS_PACKAGES.contains(&top) {
            let everywhere = EVERYWHERE.contains(&top)
                || crate::scan::policy::deny_reason(module, obj).is_some();
            let sev = if everywhere {
                Severity::High
            } else {
                Severity::Medium
            };
            let why = if everywhere {
                "a module every environment has: Keras before 3.9 imports it and takes the object by name (CVE-2025-1550)"
            } else {
                "its code is imported on load (custom objects need that package installed)"
            };
            fs.push(ScanFinding::new(
                Code::Scn016,
                sev,
                format!("{class} {obj:?} at {path} comes from module {module:?}: {why}"),
            ));
        }
    }
}

/// The `torch.save` payload of a `TorchModuleWrapper`, scanned as the torch pickle it is.
fn torch_module(sc: &Scanner, config: Option<&Value>, name: &str, path: &str) -> Vec<ScanFinding> {
    let mut fs = vec![ScanFinding::new(Code::Scn016, Severity::Medium, format!("TorchModuleWrapper {name:?} at {path}: its module is unpickled with torch.load(weights_only=False) on load"))];
    let bytes = match config.and_then(|c| c.get("module")) {
        // Keras 3: base64.b64decode(config["module"].encode("ascii")).
        Some(Value::String(s)) => py_b64decode(s),
        // `serialize_keras_object(bytes)`: {"class_name": "__bytes__", "config": {"value": …}}.
        Some(Value::Object(b)) => b
            .get("config")
            .and_then(|c| c.get("value"))
            .and_then(Value::as_str)
            .map(|s| s.as_bytes().to_vec()),
        _ => None,
    };
    match bytes {
        Some(b) if !b.is_empty() => {
            fs.extend(sc.nested(&format!("{path}/module"), &b));
        }
        _ => fs.push(ScanFinding::new(Code::Scn002, Severity::High, format!("TorchModuleWrapper {name:?} at {path}: its module payload cannot be decoded, so it cannot be scanned"))),
    }
    fs
}

/// `base64.b64decode(s.encode("ascii"))` as CPython decodes it (non-strict): characters outside
/// the alphabet are skipped, a complete pad sequence ends the data, a dangling quad is an error.
pub fn py_b64decode(s: &str) -> Option<Vec<u8>> {
    if !s.is_ascii() {
        return None; // .encode("ascii") raises
    }
    let val = |c: u8| -> Option<u8> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    };
    let (mut out, mut quad, mut left, mut pads) = (vec![], 0u8, 0u8, 0u8);
    for &c in s.as_bytes() {
        if c == b'=' {
            pads += 1;
            if quad >= 2 && quad + pads >= 4 {
                return Some(out);
            }
            continue;
        }
        let Some(v) = val(c) else { continue };
        pads = 0;
        match quad {
            0 => {
                quad = 1;
                left = v;
            }
            1 => {
                quad = 2;
                out.push((left << 2) | (v >> 4));
                left = v & 0x0f;
            }
            2 => {
                quad = 3;
                out.push((left << 4) | (v >> 2));
                left = v & 0x03;
            }
            _ => {
                quad = 0;
                out.push((left << 6) | v);
                left = 0;
            }
        }
    }
    (quad == 0).then_some(out)
}

/// Walk a config iteratively (no recursion, no depth cutoff).
fn walk(sc: &Scanner, root: &Value, base: &str) -> Vec<ScanFinding> {
    enum Step<'v> {
        Enter(&'v Value, String),
        Leave,
    }
    let mut fs = vec![];
    let mut path: Vec<String> = vec![];
    let mut stack = vec![Step::Enter(root, base.to_string())];
    while let Some(step) = stack.pop() {
        match step {
            Step::Leave => {
                path.pop();
            }
            Step::Enter(v, key) => {
                path.push(key);
                stack.push(Step::Leave);
                match v {
                    Value::Object(m) => {
                        check_object(sc, m, &path.join("/"), &mut fs);
                        for (k, x) in m.iter().rev() {
                            if x.is_object() || x.is_array() {
                                stack.push(Step::Enter(x, k.clone()));
                            }
                        }
                    }
                    Value::Array(a) => {
                        for (i, x) in a.iter().enumerate().rev() {
                            if x.is_object() || x.is_array() {
                                stack.push(Step::Enter(x, i.to_string()));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    fs
}

/// Inspect a Keras config (JSON text).
pub fn check_config(sc: &Scanner, text: &[u8]) -> Vec<ScanFinding> {
    check_config_with(sc, text, "")
}

fn check_config_with(sc: &Scanner, text: &[u8], base: &str) -> Vec<ScanFinding> {
    match super::pyjson::loads(text) {
        Ok(v) => walk(sc, &v, base)
            .into_iter()
            .map(|f| sc.stamp(f))
            .collect(),
        Err(e) => vec![sc.stamp(ScanFinding::new(
            Code::Scn016,
            Severity::High,
            format!("Keras config {base:?} cannot be read as JSON ({e}); what it loads cannot be checked"),
        ))],
    }
}

pub fn scan_keras_zip(sc: &Scanner, src: &dyn Source, a: &zip::Archive) -> Vec<ScanFinding> {
    let mut fs = vec![];
    for e in &a.entries {
        let child = sc.child(&e.name);
        if e.name == "config.json" {
            match super::read_zip_member(src, e, &child) {
                Ok((data, an)) => {
                    fs.extend(an);
                    fs.extend(check_config_with(&child, &data, ""));
                }
                Err(f) => fs.push(f),
            }
        } else if e.name == "metadata.json" || e.name.ends_with(".weights.h5") {
            // Metadata is read as plain JSON; `.weights.h5` holds arrays h5py reads (no code).
            continue;
        } else if !(e.name.ends_with('/') && e.usize == 0) {
            // Weights as `.npz` and any other member: scanned by content.
            fs.extend(super::scan_member(sc, src, e));
        }
    }
    fs
}

/// Legacy `.h5` Keras models: the root group's `model_config` and `training_config`
/// attributes (JSON strings) read as h5py reads them.
pub fn scan_hdf5(sc: &Scanner, src: &dyn Source) -> Vec<ScanFinding> {
    let attrs = match super::hdf5::root_attrs(src, &["model_config", "training_config"]) {
        Ok(a) => a,
        Err(e) => {
            return vec![sc.stamp(ScanFinding::new(
                Code::Scn002,
                Severity::High,
                format!("HDF5 file cannot be read: {e}"),
            ))]
        }
    };
    let mut out = vec![];
    for (name, text) in &attrs.text {
        out.extend(check_config_with(sc, text, name));
    }
    for (name, e) in &attrs.unreadable {
        if !name.is_empty() {
            out.push(sc.stamp(ScanFinding::new(
                Code::Scn001,
                Severity::High,
                format!(
                    "HDF5 root attribute {name:?} cannot be decoded ({e}); Keras would read it"
                ),
            )));
        }
    }
    let found = attrs.text.iter().any(|(n, _)| n == "model_config");
    if attrs.dense && !found {
        let why: Vec<String> = attrs
            .unreadable
            .iter()
            .filter(|(n, _)| n.is_empty())
            .map(|(_, e)| e.to_string())
            .collect();
        out.push(sc.stamp(ScanFinding::new(
            Code::Scn001,
            Severity::High,
            format!(
                "HDF5 root group keeps attributes in dense storage that mlsign cannot read ({}): a model_config there cannot be checked",
                why.join("; ")
            ),
        )));
    } else if !found && attrs.unreadable.is_empty() {
        out.push(sc.stamp(ScanFinding::new(
            Code::Scn019,
            Severity::Info,
            "HDF5 file without a Keras model_config: weights only",
        )));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::Policy;

    #[test]
    fn base64_decodes_like_cpython() {
        // Cases checked against CPython 3.11 base64.b64decode.
        for (s, want) in [
            ("QUJD", Some(&b"ABC"[..])),
            ("QU!JD", Some(b"ABC")),
            ("QQ==QUJD", Some(b"A")),
            ("QQ", None),
            ("QUJ", None),
            ("Q", None),
            ("QUJD\n", Some(b"ABC")),
            ("QQ=", None),
            ("QQ=x=", Some(b"A\x0c")),
        ] {
            assert_eq!(py_b64decode(s).as_deref(), want, "{s}");
        }
    }

    #[test]
    fn lambda_spellings_and_modules() {
        let cfg = |v: serde_json::Value| {
            check_config(
                &crate::scan::scanner(&Policy::default()),
                v.to_string().as_bytes(),
            )
        };
        let high = |fs: &[ScanFinding]| fs.iter().any(|f| f.severity == Severity::High);
        assert!(high(&cfg(
            serde_json::json!({"module": "keras", "class_name": "layers.Lambda", "config": {}})
        )));
        assert!(high(&cfg(
            serde_json::json!({"class_name": "Custom>Lambda", "config": {}})
        )));
        assert!(high(&cfg(
            serde_json::json!([{"class_name": "__lambda__", "config": {"code": "x"}}])
        )));
        assert!(high(&cfg(
            serde_json::json!({"module": "subprocess", "class_name": "function", "config": "getoutput"})
        )));
        assert!(high(&cfg(
            serde_json::json!({"module": "builtins", "class_name": "function", "config": "exec"})
        )));
        let custom = cfg(
            serde_json::json!({"module": "my_pkg.layers", "class_name": "Block", "config": {"name": "b"}}),
        );
        assert_eq!(custom.len(), 1);
        assert_eq!(custom[0].severity, Severity::Medium);
        let ok = cfg(
            serde_json::json!({"module": "keras.layers", "class_name": "Dense", "config": {"name": "d", "activation": {"module": "builtins", "class_name": "function", "config": "relu"}}}),
        );
        assert!(ok.is_empty(), "{ok:?}");
    }
}
