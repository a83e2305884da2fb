#!/usr/bin/env python3
"""Generate the mlsign scan corpus into OUTDIR/{malicious,suspicious,benign}/ plus
OUTDIR/manifest.json ({"relative/path": {"expect": ..., "family": ...}}).

Malicious samples are assembled opcode by opcode from bytes literals: nothing malicious is ever
unpickled or even pickled from a live object. Benign samples are written by the real libraries
(pickle, numpy, joblib, scikit-learn; torch fixtures come from testdata/scan/torch).
Needs: Python 3.9+ stdlib; numpy, joblib, scikit-learn for the library samples."""
import argparse, bz2, collections, datetime, decimal, fractions, gzip, io, json, lzma, os
import pickle, shutil, struct, sys, tarfile, uuid, zipfile, zlib

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1]
MANIFEST = {}


def put(kind, name, data, family):
    path = os.path.join(OUT, kind, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    MANIFEST[f"{kind}/{name}"] = {"expect": kind, "family": family}


# ---- opcode assembly helpers (protocol 0 text forms and protocol 2+ binary forms) ----
def g0(mod, name):
    return f"c{mod}\n{name}\n".encode()

def s0(text):  # STRING, protocol 0
    return b"S'" + text.encode().replace(b"\\", b"\\\\").replace(b"'", b"\\'") + b"'\n"

def u(text):  # SHORT_BINUNICODE / BINUNICODE
    b = text.encode()
    return (b"\x8c" + bytes([len(b)]) if len(b) < 256 else b"X" + struct.pack("<I", len(b))) + b

def sg(mod, name):  # STACK_GLOBAL
    return u(mod) + u(name) + b"\x93"

def call0(mod, name, *args):  # proto 0: GLOBAL, MARK, args, TUPLE, REDUCE, STOP
    return g0(mod, name) + b"(" + b"".join(s0(a) for a in args) + b"tR."

def call4(mod, name, *args):  # proto 4: STACK_GLOBAL, args tuple, REDUCE
    return b"\x80\x04\x95" + b"\x00" * 8 + sg(mod, name) + b"(" + b"".join(u(a) for a in args) + b"tR."

def call2(mod, name, *args):  # proto 2: GLOBAL + BINUNICODE args
    return b"\x80\x02" + g0(mod, name) + b"(" + b"".join(u(a) for a in args) + b"tR."

CMD = "id > /dev/null"
PAYLOAD = call0("os", "system", CMD)

def mal(name, data, family):
    put("malicious", name, data, family)

# ---- 1. denylisted gadgets (advisories in the threat note) ----
gadgets = [
    ("os", "system"), ("posix", "system"), ("nt", "system"), ("subprocess", "Popen"),
    ("subprocess", "check_output"), ("subprocess", "getoutput"), ("builtins", "eval"),
    ("builtins", "exec"), ("builtins", "__import__"), ("builtins", "compile"), ("builtins", "open"),
    ("builtins", "getattr"), ("builtins", "breakpoint"), ("runpy", "_run_code"), ("runpy", "run_path"),
    ("pty", "spawn"), ("timeit", "timeit"), ("cProfile", "run"), ("profile", "run"), ("pdb", "run"),
    ("doctest", "debug_script"), ("trace", "Trace"), ("code", "InteractiveInterpreter"),
    ("pip", "main"), ("ensurepip", "_run_pip"), ("idlelib.pyshell", "ModifiedInterpreter"),
    ("lib2to3.pgen2.grammar", "Grammar"), ("operator", "attrgetter"), ("_operator", "methodcaller"),
    ("operator", "itemgetter"), ("functools", "partial"), ("functools", "reduce"),
    ("asyncio.unix_events", "_UnixSubprocessTransport"), ("distutils.file_util", "write_file"),
    ("_io", "FileIO"), ("shutil", "rmtree"), ("ssl", "get_server_certificate"),
    ("urllib.request", "urlopen"), ("requests.api", "get"), ("aiohttp.client", "request"),
    ("http.client", "HTTPSConnection"), ("webbrowser", "open"), ("ctypes", "CDLL"),
    ("uuid", "_get_command_stdout"), ("imaplib", "IMAP4_stream"), ("mailcap", "findmatch"),
    ("_osx_support", "_read_output"), ("_aix_support", "_read_cmd_output"),
    ("_pyrepl.pager", "pipe_pager"), ("numpy.f2py.crackfortran", "_eval_length"),
    ("numpy.testing._private.utils", "runstring"), ("torch._inductor.codecache", "compile_file"),
    ("torch.jit.unsupported_tensor_ops", "execWrapper"), ("torch.utils.collect_env", "run"),
    ("torch.serialization", "load"), ("torch.hub", "load"), ("cloudpickle.cloudpickle", "subimport"),
    ("types", "CodeType"), ("logging", "FileHandler"), ("pickle", "loads"), ("_pickle", "loads"),
    ("dill", "loads"), ("numpy", "load"), ("marshal", "loads"), ("socket", "create_connection"),
    ("tempfile", "mkstemp"), ("sys", "exit"),
]
for i, (m, n) in enumerate(gadgets):
    build = call4 if i % 3 == 0 else call2 if i % 3 == 1 else call0
    mal(f"gadget_{i:02d}_{m.replace('.', '_')}_{n}.pkl", build(m, n, CMD), "denylisted gadget")

# ---- 2. universal resolvers: string -> any callable ----
mal("resolver_pkgutil.pkl", b"\x80\x04" + sg("pkgutil", "resolve_name") + u("os:system") + b"\x85R" + u(CMD) + b"\x85R.", "resolver")
mal("resolver_pydoc.pkl", call0("pydoc", "locate", "os.system")[:-1] + b"(" + s0(CMD) + b"tR.", "resolver")
mal("resolver_importlib.pkl", b"\x80\x02" + g0("builtins", "getattr") + g0("importlib", "import_module") + u("os") + b"\x85R" + u("system") + b"\x86R" + u(CMD) + b"\x85R.", "resolver")
mal("resolver_logging_config.pkl", b"\x80\x02" + g0("logging.config", "_resolve") + u("os.system") + b"\x85R" + u(CMD) + b"\x85R.", "resolver")
mal("resolver_marshal_function.pkl", b"\x80\x02" + g0("types", "FunctionType") + g0("marshal", "loads") + b"C\x04\xe3\x00\x00\x00\x85R" + b"}\x86R)R.", "resolver")
mal("resolver_dunder_import.pkl", b"\x80\x02" + g0("builtins", "getattr") + g0("builtins", "__import__") + u("os") + b"\x85R" + u("system") + b"\x86R" + u(CMD) + b"\x85R.", "resolver")

# ---- 3. attribute traversal in the global name (protocol 4) ----
for i, (m, n) in enumerate([("posixpath", "os.system"), ("tempfile", "_os.system"),
                            ("code", "InteractiveInterpreter.runsource"), ("builtins", "dict.get"),
                            ("collections", "__builtins__.eval"), ("numpy", "__builtins__.exec"),
                            ("bdb", "Bdb.run"), ("torch._config_module", "ConfigModule.load_config")]):
    mal(f"dotted_{i}_{m}.pkl", call4(m, n, CMD), "dotted name")

# ---- 4. unknown globals (no denylist entry at all) ----
for i, (m, n) in enumerate([("antigravity", "fly"), ("evilpkg.payload", "run"), ("my_module", "gadget"),
                            ("sklearn.utils._testing", "run_command")]):
    mal(f"unknown_{i}_{m}.pkl", call2(m, n, CMD), "unknown global")

# ---- 5. parser differentials ----
mal("memo_confusion.pkl", b"\x80\x04" + u("os") + u("collections") + b"0q\x00" + u("system") + b"\x93q\x01h\x00" + u("system") + b"\x93" + u(CMD) + b"\x85R.", "memo confusion")
mal("memo_confusion_put.pkl", b"(" + s0("os") + s0("collections") + b"0p7\n" + b"g7\n" + s0("system") + b"\x93(" + s0(CMD) + b"tR.", "memo confusion")
mal("unicode_escape_global.pkl", b"V\\u006f\\u0073\nVsystem\n\x93(" + s0(CMD) + b"tR.", "escaped strings")
mal("string_escape_global.pkl", b"S'\\x6fs'\nS'sys\\164em'\n\x93(" + s0(CMD) + b"tR.", "escaped strings")
mal("computed_stack_global.pkl", b"\x80\x04" + u("") + b"(" + u("o") + u("s") + b"l" + b"\x86" + b")" + b"0" + sg("builtins", "str") + b"0" + b"(\x8c\x00\x8c\x01o\x8c\x01sl" + b"0" + g0("builtins", "str") + b"\x8c\x02os\x85R" + u("system") + b"\x93" + u(CMD) + b"\x85R.", "computed global")
mal("ext_opcode.pkl", b"\x80\x02\x82\x07" + u(CMD) + b"\x85R.", "EXT registry")
mal("memo_miss.pkl", b"\x80\x02h\x09" + u(CMD) + b"\x85R.", "memo miss")
mal("inst_opcode.pkl", b"(" + s0(CMD) + b"ios\nsystem\n.", "INST")
mal("obj_opcode.pkl", b"\x80\x02(" + g0("os", "system") + u(CMD) + b"o.", "OBJ")
mal("newobj_popen.pkl", b"\x80\x02" + g0("subprocess", "Popen") + u(CMD) + b"\x85\x81.", "NEWOBJ")
mal("newobj_ex.pkl", b"\x80\x04" + sg("subprocess", "Popen") + u(CMD) + b"\x85}\x92.", "NEWOBJ_EX")
mal("build_setstate_gadget.pkl", b"\x80\x02" + g0("builtins", "set") + b"}" + u("__reduce__") + g0("os", "system") + b"sb.", "BUILD on global")
mal("payload_then_pop.pkl", b"\x80\x02" + g0("os", "system") + u(CMD) + b"\x85R0}q\x00.", "payload then POP")
mal("py2_commands.pkl", call0("commands", "getoutput", CMD), "py2 names")
mal("py2_builtin_eval.pkl", call0("__builtin__", "eval", "1"), "py2 names")
mal("py2_cpickle_loads.pkl", g0("cPickle", "loads") + b"(" + s0(PAYLOAD.decode("latin1")) + b"tR.", "py2 names")
mal("py2_urllib2.pkl", call0("urllib2", "urlopen", "http://example.invalid/"), "py2 names")
mal("py2_httplib.pkl", call0("httplib", "HTTPConnection", "example.invalid"), "py2 names")
mal("py2_builtin_reduce.pkl", call0("__builtin__", "reduce", "x"), "py2 names")
mal("misplaced_proto.pkl", b"\x80\x02N0\x80\x02" + g0("os", "system") + u(CMD) + b"\x85R.", "misplaced PROTO")
mal("call_on_call_result.pkl", b"\x80\x02" + g0("collections", "OrderedDict") + b")R" + u(CMD) + b"\x85R.", "call on computed value")

# ---- 6. broken / partial streams: the payload runs before the error ----
mal("broken_bad_opcode.pkl", PAYLOAD[:-1] + b"\xff", "broken stream")
mal("broken_no_stop.pkl", PAYLOAD[:-1], "broken stream")
mal("broken_truncated_string.pkl", PAYLOAD[:-1] + b"X\xff\x00\x00\x00abc", "broken stream")
mal("broken_bad_proto.pkl", PAYLOAD[:-1] + b"\x80\x09.", "broken stream")
mal("broken_stack_underflow.pkl", PAYLOAD[:-1] + b"R.", "broken stream")
mal("second_stream_payload.pkl", pickle.dumps({"a": 1}, protocol=2) + PAYLOAD, "stacked streams")

# ---- 7. containers ----
def zbytes(members, compression=zipfile.ZIP_STORED, force_zip64=False):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", compression=compression) as z:
        for name, data in members:
            with z.open(zipfile.ZipInfo(name), "w", force_zip64=force_zip64) as f:
                f.write(data)
    return bytearray(b.getvalue())

def torch_members(pkl, extra=()):
    return [("archive/data.pkl", pkl), ("archive/byteorder", b"little"), ("archive/version", b"3\n")] + list(extra)

PAY2 = call2("os", "system", CMD)
mal("torch_zip_payload.pt", bytes(zbytes(torch_members(PAY2))), "torch zip")
mal("torch_zip_deflate.pt", bytes(zbytes(torch_members(PAY2), zipfile.ZIP_DEFLATED)), "torch zip")
mal("torch_zip_zip64.pt", bytes(zbytes(torch_members(PAY2), force_zip64=True)), "torch zip")
z = zbytes(torch_members(PAY2))
i = z.find(b"PK\x01\x02"); z[i + 16] ^= 0xFF  # central CRC
j = z.find(b"PK\x03\x04"); z[j + 14] ^= 0xFF  # local CRC
mal("torch_zip_bad_crc.pt", bytes(z), "zip trick: bad CRC")
z = zbytes(torch_members(PAY2))
for sig, off in ((b"PK\x01\x02", 8), (b"PK\x03\x04", 6)):
    k = -1
    while True:
        k = z.find(sig, k + 1)
        if k < 0:
            break
        z[k + off] |= 0x41
mal("torch_zip_flag_bits.pt", bytes(z), "zip trick: flag bits")
z = zbytes(torch_members(PAY2))
j = z.find(b"archive/data.pkl"); z[j:j + 16] = b"archive/data.pkx"
mal("torch_zip_name_mismatch.pt", bytes(z), "zip trick: name mismatch")
mal("torch_zip_prepended.pt", b"JUNK" * 64 + bytes(zbytes(torch_members(PAY2))), "zip trick: prepended data")
benign_pkl = pickle.dumps({"w": [1.0, 2.0]}, protocol=2)
mal("torch_zip_extra_member.pt", bytes(zbytes(torch_members(benign_pkl, [("archive/extra.pkl", PAY2)]))), "zip trick: extra member")
mal("torch_zip_constants.pt", bytes(zbytes(torch_members(benign_pkl, [("archive/constants.pkl", PAY2)]))), "torchscript constants")
mal("zip_nested_zip.zip", bytes(zbytes([("inner.pt", bytes(zbytes(torch_members(PAY2))))])), "nested zip")
# storage referenced by data.pkl that is not in the archive
pid_pkl = (b"\x80\x02" + g0("torch._utils", "_rebuild_tensor_v2") + b"((" + u("storage") + g0("torch", "FloatStorage")
           + u("0") + u("cpu") + b"K\x04tQK\x00K\x04\x85K\x01\x85\x89" + g0("collections", "OrderedDict") + b")Rtq\x00R.")
mal("torch_zip_missing_storage.pt", bytes(zbytes(torch_members(pid_pkl))), "storage check")
mal("torch_zip_short_storage.pt", bytes(zbytes(torch_members(pid_pkl, [("archive/data/0", b"\x00" * 8)]))), "storage check")

MAGIC = pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2)
PROTO_V = pickle.dumps(1001, protocol=2)
SYSINFO = pickle.dumps({"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2)
KEYS = pickle.dumps([], protocol=2)
OBJ = pickle.dumps({"a": 1}, protocol=2)
mal("legacy_magic_eval.pt", call0("builtins", "eval", "0x1950a86a20f9469cfc6c") + PROTO_V + SYSINFO + OBJ + KEYS, "legacy torch")
mal("legacy_sysinfo_payload.pt", MAGIC + PROTO_V + PAY2 + OBJ + KEYS, "legacy torch")
mal("legacy_object_payload.pt", MAGIC + PROTO_V + SYSINFO + PAY2 + KEYS, "legacy torch")
mal("legacy_trailing_payload.pt", MAGIC + PROTO_V + SYSINFO + OBJ + KEYS + PAY2, "legacy torch")

def tbytes(members):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in members:
            ti = tarfile.TarInfo(name); ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return b.getvalue()

cnt0 = pickle.dumps(0, protocol=2)
mal("legacy_tar_payload.tar.pt", tbytes([("sys_info", SYSINFO), ("pickle", PAY2), ("storages", cnt0), ("tensors", cnt0)]), "legacy torch tar")
mal("legacy_tar_storages_payload", tbytes([("sys_info", SYSINFO), ("pickle", OBJ), ("storages", pickle.dumps(1, protocol=2) + PAY2), ("tensors", cnt0)]), "legacy torch tar")

for codec, fn in [("zlib", zlib.compress), ("gzip", gzip.compress), ("bz2", bz2.compress),
                  ("xz", lambda d: lzma.compress(d, format=lzma.FORMAT_XZ)),
                  ("lzma", lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE))]:
    mal(f"joblib_{codec}_payload.joblib", fn(PAY2), "compressed joblib")

def npy(descr, shape, body, version=1):
    h = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    pad = 64 - (10 + len(h) + 1) % 64
    h = h + b" " * pad + b"\n"
    return b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<H", len(h)) + h + body

mal("npy_object_payload.npy", npy("|O", (1,), PAY2), "npy object dtype")
mal("npy_object_payload.txt", npy("|O", (1,), PAY2), "npy renamed")
mal("npy_structured_object.npy", npy([("a", "<f8"), ("b", "|O")], (1,), PAY2), "npy object dtype")
mal("npz_object_payload.npz", bytes(zbytes([("arr_0.npy", npy("|O", (1,), PAY2))])), "npz")
for ext in ("bin", "pt", "txt", "model", "safetensors"):
    mal(f"raw_pickle_as.{ext}", PAY2, "extension trick")
mal("pickle_then_embedded_zip.pkl", PAY2[:-1] + b"0B" + struct.pack("<I", len(bytes(zbytes([("a.txt", b"hi")])))) + bytes(zbytes([("a.txt", b"hi")])) + b".", "zip polyglot")
mal("torch_load_from_bytes.pkl", b"\x80\x02" + g0("torch.storage", "_load_from_bytes") + b"C" + bytes([len(PAY2)]) + PAY2 + b"\x85R.", "nested pickle")
mal("nested_pickle_loads.pkl", b"\x80\x02" + g0("pickle", "loads") + b"C" + bytes([len(PAY2)]) + PAY2 + b"\x85R.", "nested pickle")
mal("nested_payload_in_tensor_args.pkl", b"\x80\x02" + g0("collections", "OrderedDict") + b")R" + u("blob") + b"C" + bytes([len(PAY2)]) + PAY2 + b"s.", "nested pickle")
mal("sevenzip_archive.7z", b"7z\xbc\xaf\x27\x1c\x00\x04" + os.urandom(64), "unscannable archive")
z = zbytes([("weights.bin", os.urandom(128))])
for sig, off in ((b"PK\x01\x02", 8), (b"PK\x03\x04", 6)):
    k = z.find(sig); z[k + off] |= 0x01
mal("encrypted_zip.zip", bytes(z), "unscannable archive")
hdr = json.dumps({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}).encode()
mal("safetensors_overlap.safetensors", struct.pack("<Q", len(hdr)) + hdr + b"\x00" * 12, "safetensors header")
hdr = json.dumps({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
mal("safetensors_trailing_payload.safetensors", struct.pack("<Q", len(hdr)) + hdr + b"\x00" * 8 + PAY2, "safetensors header")
keras_lambda = {"class_name": "Functional", "config": {"layers": [{"class_name": "Lambda", "module": "keras.layers", "config": {"name": "l", "function": {"class_name": "__lambda__", "config": {"code": "4wEAAAAAAAAAAAAAAAEAAAADAAAA"}}}}]}}
mal("keras_lambda.keras", bytes(zbytes([("metadata.json", b"{}"), ("config.json", json.dumps(keras_lambda).encode()), ("model.weights.h5", b"\x89HDF\r\n\x1a\n")])), "keras lambda")

h5_cfg = json.dumps({"class_name": "Sequential", "config": {"layers": [{"class_name": "Lambda", "config": {"name": "lam", "function": ["4wEAAAAA", None, None]}}]}}).encode()
mal("keras_lambda_legacy.h5", b"\x89HDF\r\n\x1a\n" + b"\x00" * 120 + b"model_config\x00" + h5_cfg + b"\x00" * 64, "keras lambda")

def gguf(kvs):
    out = b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs))
    for k, v in kvs:
        kb, vb = k.encode(), v.encode()
        out += struct.pack("<Q", len(kb)) + kb + struct.pack("<I", 8) + struct.pack("<Q", len(vb)) + vb
    return out

mal("gguf_ssti_template.gguf", gguf([("general.architecture", "llama"), ("tokenizer.chat_template", "{{ ''.__class__.__mro__[1].__subclasses__() }}")]), "gguf template injection")

# ---- suspicious: custom classes a policy may allow ----
def sus(name, data, family):
    put("suspicious", name, data, family)

sus("argparse_namespace.pkl", pickle.dumps(argparse.Namespace(lr=0.1, epochs=3), protocol=2), "argparse")
sus("main_class_newobj.pkl", b"\x80\x02" + g0("__main__", "TrainingState") + b")\x81}" + u("step") + b"K\x07sb.", "__main__ class")
sus("pathlib_path.pkl", b"\x80\x02" + g0("pathlib", "PosixPath") + u("/data") + b"\x85R.", "pathlib")
sus("copyreg_reconstructor.pkl", b"ccopy_reg\n_reconstructor\n(c__main__\nCfg\nc__builtin__\nobject\nNtR(dS'a'\nI1\nsb.", "copyreg")
sus("transformers_training_args.pkl", b"\x80\x02" + g0("transformers.training_args", "TrainingArguments") + b")\x81}b.", "transformers")
keras_custom = {"class_name": "Sequential", "module": "keras", "config": {"layers": [{"class_name": "MyLayer", "module": "my_layers", "registered_name": "my_layers>MyLayer", "config": {"name": "c"}}]}}
sus("keras_custom_layer.keras", bytes(zbytes([("metadata.json", b"{}"), ("config.json", json.dumps(keras_custom).encode()), ("model.weights.h5", b"\x89HDF\r\n\x1a\n")])), "keras custom module")
for f in ("full_model.pt", "scripted.pt"):
    with open(os.path.join(HERE, "torch", f), "rb") as fh:
        sus(f"torch_{f}", fh.read(), "torch module pickle / TorchScript")

# ---- benign ----
def ben(name, data, family):
    put("benign", name, data, family)

objs = {
    "nested": {"a": [1, 2.5, None, True], "b": ("x", b"\x00\x01"), "c": {1: "one"}},
    "containers": [set([1, 2]), frozenset([3]), bytearray(b"ab"), complex(1, 2), range(3), slice(1, 5)],
    "collections": [collections.OrderedDict(a=1), collections.Counter("aab"), collections.defaultdict(list, {"k": [1]})],
    "dates": [datetime.datetime(2024, 1, 2, 3, 4, 5), datetime.date(2020, 1, 1), datetime.timedelta(3), decimal.Decimal("1.5"), fractions.Fraction(1, 3)],
    "text_os_system_literal": {"doc": "never call os.system or eval( or __import__( here", "n": 10 ** 30},
}
for name, obj in objs.items():
    for proto in range(0, 6):
        ben(f"stdlib_{name}_p{proto}.pkl", pickle.dumps(obj, protocol=proto), "stdlib pickle")
ben("stdlib_uuid.pkl", pickle.dumps(uuid.UUID(int=5), protocol=2), "stdlib pickle")
ben("stacked_two_streams.pkl", pickle.dumps([1], protocol=2) + pickle.dumps({"b": 2}, protocol=4), "stdlib pickle")
ben("legacy_handmade.pt", MAGIC + PROTO_V + SYSINFO + OBJ + KEYS, "legacy torch")
ben("config.json", json.dumps({"hidden_size": 16}).encode(), "non-model file")
ben("README.md", b"# model card\nuses os.system? no.\n", "non-model file")
ben("vocab.txt", b"cat\ndog\nbird\n(fish)\n", "non-model file")
hdr = json.dumps({"__metadata__": {"format": "pt"}, "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "BF16", "shape": [3], "data_offsets": [8, 14]}}).encode()
ben("weights.safetensors", struct.pack("<Q", len(hdr)) + hdr + b"\x00" * 14, "safetensors")
ben("tiny.gguf", gguf([("general.architecture", "llama"), ("tokenizer.chat_template", "{% for m in messages %}{{ m['content'] }}{% endfor %}")]), "gguf")
keras_ok = {"class_name": "Sequential", "module": "keras", "config": {"layers": [{"class_name": "Dense", "module": "keras.layers", "config": {"name": "d", "units": 2}}]}}
ben("dense.keras", bytes(zbytes([("metadata.json", b"{}"), ("config.json", json.dumps(keras_ok).encode()), ("model.weights.h5", b"\x89HDF\r\n\x1a\n")])), "keras")
for f in ("state_dict.pt", "state_dict_legacy.pt", "checkpoint.ckpt", "mixed_dtypes.bin", "tensor_list.pth", "state_dict_proto5.pt"):
    with open(os.path.join(HERE, "torch", f), "rb") as fh:
        ben(f"torch_{f}", fh.read(), "real torch.save")

try:
    import numpy as np, joblib
except ImportError:
    sys.exit("numpy and joblib are needed for the library samples (pip install -r scripts/deps/python/scan.txt)")
tmp = os.path.join(OUT, ".tmp"); os.makedirs(tmp, exist_ok=True)
arr = np.arange(12, dtype=np.float32).reshape(3, 4)
buf = io.BytesIO(); np.save(buf, arr); ben("numpy_float.npy", buf.getvalue(), "numpy")
buf = io.BytesIO(); np.save(buf, np.zeros(3, dtype=[("x", "<i4"), ("y", "<f8")])); ben("numpy_structured.npy", buf.getvalue(), "numpy")
buf = io.BytesIO(); np.savez(buf, a=arr, b=np.arange(5)); ben("numpy_arrays.npz", buf.getvalue(), "numpy")
buf = io.BytesIO(); np.save(buf, np.array([1, "a", None, {"k": 2.5}], dtype=object), allow_pickle=True); ben("numpy_object_benign.npy", buf.getvalue(), "numpy object dtype")
buf = io.BytesIO(); np.savez_compressed(buf, a=arr); ben("numpy_compressed.npz", buf.getvalue(), "numpy")
for proto in (2, 4, 5):
    ben(f"numpy_pickled_p{proto}.pkl", pickle.dumps({"arr": arr, "scalar": np.float64(1.5), "i": np.int32(3), "dt": np.dtype("f4")}, protocol=proto), "numpy pickle")
ben("numpy_random_state.pkl", pickle.dumps(np.random.RandomState(0), protocol=2), "numpy pickle")
for name, comp in [("plain", 0), ("zlib", ("zlib", 3)), ("gzip", ("gzip", 3)), ("bz2", ("bz2", 3)), ("xz", ("xz", 3)), ("lzma", ("lzma", 3))]:
    p = os.path.join(tmp, f"{name}.joblib")
    joblib.dump({"weights": arr, "bias": np.ones(4), "meta": {"v": 1}, "big": np.arange(1000, dtype=np.int64)}, p, compress=comp)
    with open(p, "rb") as fh:
        ben(f"joblib_{name}.joblib", fh.read(), "joblib")
try:
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier
    X = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]); y = np.array([0, 1, 1, 0])
    p = os.path.join(tmp, "lr.joblib"); joblib.dump(LogisticRegression().fit(X, y), p)
    with open(p, "rb") as fh:
        sus("sklearn_logreg.joblib", fh.read(), "scikit-learn")
    sus("sklearn_tree.pkl", pickle.dumps(DecisionTreeClassifier().fit(X, y), protocol=4), "scikit-learn")
except ImportError:
    sys.exit("scikit-learn is needed for the suspicious samples")
shutil.rmtree(tmp)

with open(os.path.join(OUT, "manifest.json"), "w") as f:
    json.dump(MANIFEST, f, indent=1, sort_keys=True)
counts = collections.Counter(v["expect"] for v in MANIFEST.values())
print(json.dumps(counts))
