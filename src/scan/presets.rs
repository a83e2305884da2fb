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
            // numpy's name for `ndarray.__new__(subtype, shape, dtype)` before 1.0, still
            // shipped as a compatibility shim (py2 object-array .npy files use it).
            add("numpy.core._internal", &["_reconstruct"]);
            // numpy's own ndarray subclasses, as each numpy version names them in pickles:
            // `_reconstruct(subtype, ...)` + `ndarray.__setstate__`; their `__array_finalize__`
            // only copies attributes and none of them takes a callable.
            add("numpy", &["matrix", "memmap", "recarray", "record"]);
            add("numpy.matrixlib.defmatrix", &["matrix"]);
            add("numpy.ma", &["MaskedArray"]);
            add("numpy.ma.core", &["MaskedArray"]);
            add("numpy.rec", &["recarray", "record"]);
            for core in ["numpy.core", "numpy._core"] {
                add(&format!("{core}.records"), &["recarray", "record"]);
                add(&format!("{core}.memmap"), &["memmap"]);
            }
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
            // Cython's generated unpickler of numpy's SeedSequence (in every default_rng()
            // pickle): checks a layout checksum, `SeedSequence.__new__(type)` (the type must be a
            // subclass) and sets the C attributes from a data tuple.
            add(
                "numpy.random.bit_generator",
                &["SeedSequence", "__pyx_unpickle_SeedSequence"],
            );
        }
        "joblib" => {
            // joblib's array placeholders: no `__setstate__` (BUILD updates `__dict__`), and
            // joblib's unpickler replaces each by the array it reads right after the BUILD
            // (the VM follows those bytes as joblib does). `NDArrayWrapper` and
            // `ZNDArrayWrapper` are the joblib < 0.10 forms (still loaded by joblib 1.x): they
            // read a companion file named in their state, which the VM checks (PKL020).
            for m in [
                "joblib.numpy_pickle",
                "sklearn.externals.joblib.numpy_pickle",
            ] {
                add(
                    m,
                    &["NumpyArrayWrapper", "NDArrayWrapper", "ZNDArrayWrapper"],
                );
            }
            for m in [
                "joblib.numpy_pickle_compat",
                "sklearn.externals.joblib.numpy_pickle_compat",
            ] {
                add(m, &["NDArrayWrapper", "ZNDArrayWrapper"]);
            }
        }
        _ => return None,
    }
    Some(v)
}

/// How an allowlisted function uses one positional argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// Read as data (at most converted through `__index__`, `__iter__` and the like).
    Data,
    /// Called, now or later, receiving what [`Gets`] says: only an allowlisted global may be
    /// passed (an instance or computed value would have its `__call__` run).
    Callable(Gets),
    /// A class the function instantiates after checking that it is one (`ndarray.__new__`,
    /// `object.__new__`, `Tensor.as_subclass`): a global is judged by the allowlist as usual;
    /// a computed value is rejected.
    Type,
    /// A name or instance used as data, but called when it is a class (numpy's bit-generator
    /// argument): a global there must be allowlisted.
    CalledIfClass,
    /// A mapping whose values are called later (torch backward hooks): it must be empty or
    /// hold allowlisted callables only.
    CallableValues,
}

/// What a [`ArgKind::Callable`] argument is called with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gets {
    Nothing,
    /// The invoker's own arguments at these positions.
    Args(&'static [usize]),
    /// The items of the tuple at this position (`func(*args)`).
    Unpack(usize),
}

/// Argument kinds of the allowlisted functions that call or instantiate an argument (the
/// invokers). Every other preset entry only reads its arguments as data; this table was made
/// by reading each entry's implementation (torch 2.x, numpy 1.x/2.x, CPython 3.8-3.13).
pub fn arg_kinds(module: &str, name: &str) -> Option<&'static [ArgKind]> {
    use ArgKind::{CallableValues as Hooks, *};
    let kinds: &'static [ArgKind] = match (module, name) {
        // `defaultdict(default_factory)`: the factory is called for every missing key.
        ("collections", "defaultdict") => &[Callable(Gets::Nothing)],
        // `__generator_ctor(bit_generator_name, bit_generator_ctor=__bit_generator_ctor)`
        // returns `Generator(bit_generator_ctor(bit_generator_name))`; the default ctor calls
        // its argument when it is a class.
        ("numpy.random._pickle", "__generator_ctor" | "__randomstate_ctor") => {
            &[CalledIfClass, Callable(Gets::Args(&[0]))]
        }
        ("numpy.random._pickle", "__bit_generator_ctor") => &[CalledIfClass],
        // `_rebuild_from_type_v2(func, new_type, args, state)`: `func(*args).as_subclass(new_type)`.
        ("torch._tensor", "_rebuild_from_type_v2") => {
            &[Callable(Gets::Unpack(2)), Type, Data, Data]
        }
        // backward_hooks end up in `tensor._backward_hooks`, called during backward().
        ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor_v3") => {
            &[Data, Data, Data, Data, Data, Hooks]
        }
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
            &[Data, Data, Hooks]
        }
        ("torch._utils", "_rebuild_qtensor") => &[Data, Data, Data, Data, Data, Data, Hooks],
        ("torch._utils", "_rebuild_wrapper_subclass") => &[Type],
        // `ndarray.__new__(subtype, shape, dtype)`.
        (
            "numpy.core.multiarray" | "numpy._core.multiarray" | "numpy.core._internal",
            "_reconstruct",
        ) => &[Type, Data, Data],
        // `subtype.__new__(subtype, ndarray.__new__(baseclass, ...), ...)`.
        ("numpy.ma.core", "_mareconstruct") => &[Type, Type, Data, Data],
        // Suspicious tier, but followed the same way: `base.__new__(cls, state)`.
        ("copyreg", "_reconstructor") => &[Type, Type, Data],
        ("copyreg", "__newobj__" | "__newobj_ex__") => &[Type],
        ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence") => &[Type, Data, Data],
        _ => return None,
    };
    Some(kinds)
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
