//! Allowlist presets: exact (module, qualified name) pairs that real checkpoints use and that
//! cannot run code by themselves. Nothing here is matched by prefix.

const STORAGES: &[&str] = &[
    "DoubleStorage",
    "FloatStorage",
    "HalfStorage",
    "BFloat16Storage",
    "LongStorage",
    "IntStorage",
    "ShortStorage",
    "CharStorage",
    "ByteStorage",
    "BoolStorage",
    "ComplexDoubleStorage",
    "ComplexFloatStorage",
    "QUInt8Storage",
    "QInt8Storage",
    "QInt32Storage",
    "QUInt4x2Storage",
    "QUInt2x4Storage",
];

const TORCH_DTYPES: &[&str] = &[
    "float32",
    "float",
    "float64",
    "double",
    "float16",
    "half",
    "bfloat16",
    "int8",
    "uint8",
    "int16",
    "short",
    "int32",
    "int",
    "int64",
    "long",
    "bool",
    "complex64",
    "cfloat",
    "complex128",
    "cdouble",
    "complex32",
    "chalf",
    "uint16",
    "uint32",
    "uint64",
    "float8_e4m3fn",
    "float8_e5m2",
    "float8_e4m3fnuz",
    "float8_e5m2fnuz",
    "qint8",
    "quint8",
    "qint32",
    "quint4x2",
    "quint2x4",
];

const NUMPY_DTYPES: &[&str] = &[
    "BoolDType",
    "Int8DType",
    "Int16DType",
    "Int32DType",
    "Int64DType",
    "UInt8DType",
    "UInt16DType",
    "UInt32DType",
    "UInt64DType",
    "ByteDType",
    "UByteDType",
    "ShortDType",
    "UShortDType",
    "IntDType",
    "UIntDType",
    "LongDType",
    "ULongDType",
    "LongLongDType",
    "ULongLongDType",
    "Float16DType",
    "Float32DType",
    "Float64DType",
    "LongDoubleDType",
    "Complex64DType",
    "Complex128DType",
    "CLongDoubleDType",
    "StrDType",
    "BytesDType",
    "VoidDType",
    "ObjectDType",
    "DateTime64DType",
    "TimeDelta64DType",
    "StringDType",
];

/// Names of the presets, for `--help` and policy validation.
pub const PRESETS: &[&str] = &["builtins", "pytorch", "numpy", "joblib"];

/// The (module, name) pairs of one preset.
pub fn preset(name: &str) -> Option<Vec<(String, String)>> {
    let mut v: Vec<(String, String)> = Vec::new();
    let mut add = |m: &str, names: &[&str]| {
        for n in names {
            v.push((m.to_string(), n.to_string()));
        }
    };
    match name {
        "builtins" => {
            add(
                "builtins",
                &[
                    "set",
                    "frozenset",
                    "complex",
                    "bytearray",
                    "slice",
                    "range",
                    "int",
                    "float",
                    "str",
                    "bytes",
                    "dict",
                    "list",
                    "tuple",
                    "bool",
                    "object",
                    "NoneType",
                    "Ellipsis",
                ],
            );
            add(
                "collections",
                &["OrderedDict", "defaultdict", "Counter", "deque"],
            );
            add("_codecs", &["encode"]);
            add(
                "datetime",
                &["datetime", "date", "time", "timedelta", "timezone"],
            );
            add("decimal", &["Decimal"]);
            add("fractions", &["Fraction"]);
            add("uuid", &["UUID"]);
        }
        "pytorch" => {
            add(
                "torch._utils",
                &[
                    "_rebuild_tensor",
                    "_rebuild_tensor_v2",
                    "_rebuild_tensor_v3",
                    "_rebuild_parameter",
                    "_rebuild_parameter_with_state",
                    "_rebuild_qtensor",
                    "_rebuild_sparse_tensor",
                    "_rebuild_nested_tensor",
                    "_rebuild_device_tensor_from_numpy",
                    "_rebuild_meta_tensor_no_storage",
                    "_rebuild_wrapper_subclass",
                    "_rebuild_device_tensor_from_cpu_tensor",
                ],
            );
            add("torch._tensor", &["_rebuild_from_type_v2"]);
            add("torch", STORAGES);
            add("torch.cuda", STORAGES);
            add("torch", TORCH_DTYPES);
            add(
                "torch",
                &[
                    "device",
                    "Size",
                    "Tensor",
                    "UntypedStorage",
                    "TypedStorage",
                    "strided",
                    "sparse_coo",
                    "sparse_csr",
                    "contiguous_format",
                    "channels_last",
                    "channels_last_3d",
                    "preserve_format",
                    "per_tensor_affine",
                    "per_channel_affine",
                    "per_tensor_symmetric",
                    "per_channel_symmetric",
                ],
            );
            // Not `torch.storage._load_from_bytes`: it calls torch.load on nested bytes.
            add("torch.storage", &["UntypedStorage", "TypedStorage"]);
            add("torch.nn.parameter", &["Parameter", "Buffer"]);
            // A `str` subclass Lightning and others store as the saving torch version.
            add("torch.torch_version", &["TorchVersion"]);
            add("torch.serialization", &["_get_layout"]);
            // TorchScript's own unpickler helpers (data.pkl/constants.pkl of jit archives).
            add(
                "torch.jit._pickle",
                &[
                    "build_intlist",
                    "build_floatlist",
                    "build_boollist",
                    "build_doublelist",
                    "build_tensorlist",
                    "build_complexlist",
                    "restore_type_tag",
                ],
            );
            add("collections", &["OrderedDict"]);
        }
        "numpy" => {
            for core in ["numpy.core", "numpy._core"] {
                add(&format!("{core}.multiarray"), &["_reconstruct", "scalar"]);
                add(&format!("{core}.numeric"), &["_frombuffer"]);
            }
            add("numpy", &["ndarray", "dtype"]);
            add("numpy.dtypes", NUMPY_DTYPES);
            add(
                "numpy.random._pickle",
                &[
                    "__randomstate_ctor",
                    "__bit_generator_ctor",
                    "__generator_ctor",
                ],
            );
            add("numpy.ma.core", &["_mareconstruct"]);
            add("numpy.random._mt19937", &["MT19937"]);
            add("numpy.random._pcg64", &["PCG64", "PCG64DXSM"]);
            add("numpy.random._philox", &["Philox"]);
            add("numpy.random._sfc64", &["SFC64"]);
            add("numpy.random.mtrand", &["RandomState"]);
            add("numpy.random._generator", &["Generator"]);
        }
        "joblib" => {
            add("joblib.numpy_pickle", &["NumpyArrayWrapper"]);
            add(
                "sklearn.externals.joblib.numpy_pickle",
                &["NumpyArrayWrapper"],
            );
        }
        _ => return None,
    }
    Some(v)
}

/// Modules (and module prefixes) whose globals are graded critical: known to reach code
/// execution, file/network access or arbitrary attribute lookup. This list only grades severity
/// and explains; the allowlist decides.
pub const DENY_MODULES: &[&str] = &[
    "os",
    "posix",
    "nt",
    "posixpath",
    "ntpath",
    "subprocess",
    "commands",
    "popen2",
    "sys",
    "runpy",
    "code",
    "codeop",
    "pty",
    "bdb",
    "pdb",
    "trace",
    "profile",
    "cProfile",
    "timeit",
    "doctest",
    "pickle",
    "_pickle",
    "cPickle",
    "dill",
    "cloudpickle",
    "marshal",
    "importlib",
    "pkgutil",
    "pydoc",
    "logging.config",
    "operator",
    "_operator",
    "pip",
    "ensurepip",
    "venv",
    "asyncio",
    "socket",
    "ssl",
    "http",
    "httplib",
    "urllib",
    "urllib2",
    "requests",
    "aiohttp",
    "webbrowser",
    "shutil",
    "_io",
    "io",
    "distutils",
    "ctypes",
    "_ctypes",
    "uuid",
    "imaplib",
    "mailcap",
    "_osx_support",
    "_aix_support",
    "_pyrepl",
    "idlelib",
    "lib2to3",
    "numpy.f2py",
    "numpy.testing",
    "torch.serialization",
    "torch.hub",
    "torch.jit",
    "torch._inductor",
    "torch._dynamo",
    "torch.fx",
    "torch.utils",
    "torch._config_module",
    "tempfile",
    "signal",
    "multiprocessing",
    "threading",
    "_thread",
    "smtplib",
    "ftplib",
    "telnetlib",
    "xmlrpc",
    "zipimport",
    "shelve",
    "dbm",
    "glob",
    "site",
    "sysconfig",
    "ast",
    "inspect",
    "gc",
    "builtins.__import__",
    "cgi",
    "nturl2path",
    "platform",
    "sqlite3",
    "tarfile",
    "zipfile",
];

/// Exact names graded critical in otherwise ordinary modules.
pub const DENY_NAMES: &[(&str, &str)] = &[
    ("builtins", "eval"),
    ("builtins", "exec"),
    ("builtins", "compile"),
    ("builtins", "open"),
    ("builtins", "getattr"),
    ("builtins", "setattr"),
    ("builtins", "delattr"),
    ("builtins", "__import__"),
    ("builtins", "breakpoint"),
    ("builtins", "input"),
    ("builtins", "globals"),
    ("builtins", "locals"),
    ("builtins", "vars"),
    ("builtins", "type"),
    ("builtins", "memoryview"),
    ("builtins", "help"),
    ("builtins", "exit"),
    ("builtins", "quit"),
    ("builtins", "__builtins__"),
    ("builtins", "classmethod"),
    ("builtins", "staticmethod"),
    ("builtins", "property"),
    ("builtins", "super"),
    ("builtins", "map"),
    ("builtins", "filter"),
    ("functools", "partial"),
    ("functools", "reduce"),
    ("functools", "partialmethod"),
    ("types", "CodeType"),
    ("types", "FunctionType"),
    ("types", "MethodType"),
    ("types", "ModuleType"),
    ("types", "LambdaType"),
    ("numpy", "load"),
    ("numpy", "loads"),
    ("numpy.lib.npyio", "load"),
    ("numpy", "fromfile"),
    ("numpy", "save"),
    ("torch", "load"),
    ("torch", "save"),
    ("logging", "FileHandler"),
];

/// Suspicious tier: custom classes of common ML libraries. Matched by module prefix, but only
/// for class-like names (first letter upper case, no dots) and never for denylisted pairs.
pub const SUSPICIOUS_MODULES: &[&str] = &[
    "sklearn",
    "scipy",
    "pandas",
    "transformers",
    "tokenizers",
    "xgboost",
    "lightgbm",
    "catboost",
    "lightning",
    "pytorch_lightning",
    "lightning_fabric",
    "accelerate",
    "peft",
    "diffusers",
    "timm",
    "argparse",
    "__torch__",
    "__main__",
    "pathlib",
    "torch.nn.modules",
    "torch.optim",
    "torch.nn.utils",
    "torchvision.models",
    "timm.models",
    "omegaconf",
    "typing",
    "enum",
    "numpy.random._mt19937",
    "numpy.random._pcg64",
    "numpy.random._philox",
    "numpy.random._sfc64",
    "numpy.random.bit_generator",
    "numpy.random.mtrand",
];

/// Suspicious tier: exact pairs that are not classes.
pub const SUSPICIOUS_NAMES: &[(&str, &str)] = &[
    ("copyreg", "_reconstructor"),
    ("copyreg", "__newobj__"),
    ("copyreg", "__newobj_ex__"),
    ("sklearn.utils._bunch", "Bunch"),
    ("numpy.random._pickle", "__randomstate_ctor"),
];
