#!/usr/bin/env python3
"""Container-format cases for tests/scan/formats.rs: ZIP reader differentials, Keras configs
(.keras and legacy .h5 written by h5py), GGUF chat templates, and decompression bombs.

Usage: make_format_cases.py OUT_DIR. Writes the files and OUT_DIR/manifest.json:
{name: {"expect": verdict, "codes": [codes that must appear], "confirmed": what the real
loader did with the same bytes}}. Loaders are run only on harmless payloads (os.mkdir of a
marker directory inside OUT_DIR) or only asked to read bytes (zipfile), never on anything else.
"""
import base64
import io
import json
import os
import pickle
import struct
import sys
import zipfile
import zlib

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
manifest = {}


def case(name, data, expect, codes=(), confirmed=None):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
    manifest[name] = {"expect": expect, "codes": list(codes), "confirmed": confirmed}


class Mkdir:
    """Harmless payload: creates a marker directory when unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


EVIL = pickle.dumps(Mkdir(os.path.join(out, "never-run")), protocol=2)
BENIGN = pickle.dumps({"weights": [1.0, 2.0]}, protocol=2)
assert len(EVIL) != len(BENIGN)


def local(name, data, crc=None):
    n = name.encode()
    c = zlib.crc32(data) if crc is None else crc
    return (struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 0, c, len(data), len(data), len(n), 0)
            + n + data)


def central(name, data, offset, crc=None):
    n = name.encode()
    c = zlib.crc32(data) if crc is None else crc
    return (struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, c, len(data), len(data),
                        len(n), 0, 0, 0, 0, 0, offset) + n)


def eocd(total, cd_size, cd_off, comment_len=0):
    return struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, total, total, cd_size, cd_off, comment_len)


def zip_reads(data, member):
    """What Python's zipfile (numpy.load, joblib, Keras) reads for `member`."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return z.read(member)


# --- §3 ZIP reader differentials ------------------------------------------------------------
# 1. Recorded vs end-relative directory: miniz (torch) follows the recorded offset to a benign
#    directory, zipfile the end-relative one to the payload.
evil_part = local("m.pkl", EVIL)
cd_e = central("m.pkl", EVIL, 0)
# A benign pickle of the same length, so the benign directory starts exactly where the evil end
# record says (len(evil_part)) and both directories have the same size.
k = 0
while len(pickle.dumps({"w": "a" * k}, protocol=2)) < len(EVIL):
    k += 1
benign_data = pickle.dumps({"w": "a" * k}, protocol=2)
assert len(benign_data) == len(EVIL), (len(benign_data), len(EVIL))
b_part = local("m.pkl", benign_data)
cd_b = central("m.pkl", benign_data, 0)
data = b_part + cd_b + evil_part + cd_e + eocd(1, len(cd_e), len(evil_part))
assert zip_reads(data, "m.pkl") == EVIL
case("zip_recorded_vs_end_relative.zip", data, "malicious", ["SCN030", "PKL001"],
     "zipfile reads the payload member; the recorded offset leads to a benign directory")

# 2. Several end records: the last one's comment length runs past the end of the file. zipfile
#    and miniz take it; a reader that wants a fitting comment takes the earlier (benign) one.
b_arch = local("m.pkl", BENIGN)
b_cd = central("m.pkl", BENIGN, 0)
e_off = len(b_arch) + len(b_cd) + 22
e_arch = local("m.pkl", EVIL)
e_cd = central("m.pkl", EVIL, e_off)
tail = e_arch + e_cd + eocd(1, len(e_cd), e_off + len(e_arch), comment_len=0x4000)
data = b_arch + b_cd + eocd(1, len(b_cd), len(b_arch), comment_len=len(tail)) + tail
assert zip_reads(data, "m.pkl") == EVIL
case("zip_last_eocd_comment_past_eof.zip", data, "malicious", ["SCN030", "PKL001"],
     "zipfile takes the last end record (comment runs past EOF) and reads the payload")

# 3. The directory holds more entries than the end record counts: zipfile reads them all.
m1 = local("a.txt", b"hello")
m2 = local("b.pkl", EVIL)
cd = central("a.txt", b"hello", 0) + central("b.pkl", EVIL, len(m1))
data = m1 + m2 + cd + eocd(1, len(cd), len(m1) + len(m2))
with zipfile.ZipFile(io.BytesIO(data)) as z:
    assert z.namelist() == ["a.txt", "b.pkl"]
case("zip_uncounted_entry.zip", data, "malicious", ["SCN030", "PKL001"],
     "zipfile lists the entry the end record does not count")

# 4. Bad CRC: zipfile refuses to read it, torch (miniz) loads it: still scanned.
m = local("archive/data.pkl", EVIL, crc=0x12345678)
cd = central("archive/data.pkl", EVIL, 0, crc=0x12345678)
data = m + cd + eocd(1, len(cd), len(m))
try:
    zip_reads(data, "archive/data.pkl")
    raise SystemExit("zipfile accepted a bad CRC")
except zipfile.BadZipFile:
    pass
case("zip_bad_crc.pt", data, "malicious", ["SCN003", "PKL001"], "zipfile refuses (bad CRC); torch does not check")

# 5. torch.save(x, "code.pt"): the archive prefix is `code/`, its pickle `code/data.pkl`.
try:
    import torch  # noqa: F401

    have_torch = True
except Exception:  # pragma: no cover - torch is optional
    have_torch = False
marker = os.path.join(out, "torch-ran")
evil_torch = pickle.dumps(Mkdir(marker), protocol=2)
members = [("code/data.pkl", evil_torch), ("code/version", b"3\n"), ("code/byteorder", b"little")]
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
    for n, d in members:
        z.writestr(n, d)
data = buf.getvalue()
confirmed = None
if have_torch:
    import torch

    p = os.path.join(out, "code_prefix_probe.pt")
    with open(p, "wb") as f:
        f.write(data)
    try:
        torch.load(p, weights_only=False)
    except Exception:
        pass
    os.remove(p)
    assert os.path.isdir(marker), "torch.load did not unpickle code/data.pkl"
    confirmed = "torch.load(weights_only=False) unpickled code/data.pkl (marker created)"
    os.rmdir(marker)
    # The benign twin, written by torch itself.
    bp = os.path.join(out, "code.pt")
    torch.save({"w": torch.ones(3)}, bp)
    with zipfile.ZipFile(bp) as z:
        assert any(n.startswith("code/") and n.endswith("data.pkl") for n in z.namelist()), z.namelist()
    manifest["code.pt"] = {"expect": "clean", "codes": [], "confirmed": "written by torch.save"}
case("torch_prefix_code.pt", data, "malicious", ["PKL001"], confirmed)

# 5b. Extension tricks (CVE-2025-1889 class): a pickle member under a name no scanner list
#     knows, in an archive that is not a torch checkpoint, is still read by content.
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("readme.txt", "weights inside")
    z.writestr("model.weights", EVIL)
case("zip_pickle_member_odd_name.zip", buf.getvalue(), "malicious", ["PKL001"])

# 6. tar with a pax `size` record: Python's tarfile takes the member's size (and so its data
#    and the next header's position) from it, not from the ustar size field (0 here).
import tarfile  # noqa: E402


def tar_header(name, size, typ):
    ti = tarfile.TarInfo(name)
    ti.size = size
    ti.type = typ
    return ti.tobuf(format=tarfile.USTAR_FORMAT)


def pad512(b):
    return b + b"\0" * (-len(b) % 512)


rec = f"size={len(EVIL)}\n"
n = len(rec) + 2
while len(f"{n} {rec}") != n:
    n += 1
pax = f"{n} {rec}".encode()
data = (tar_header("PaxHeader/m.pkl", len(pax), tarfile.XHDTYPE) + pad512(pax)
        + tar_header("m.pkl", 0, tarfile.REGTYPE) + pad512(EVIL) + b"\0" * 1024)
with tarfile.open(fileobj=io.BytesIO(data)) as t:
    assert t.extractfile("m.pkl").read() == EVIL
case("tar_pax_size.tar", data, "malicious", ["PKL001"], "tarfile reads the payload through the pax size")

# --- §6 Keras ---------------------------------------------------------------------------------
def keras(config, extra=()):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", json.dumps(config))
        for n, d in extra:
            z.writestr(n, d)
    return buf.getvalue()


def dense(name, activation="relu"):
    return {"module": "keras.layers", "class_name": "Dense", "registered_name": None,
            "config": {"name": name, "units": 4, "activation": activation}}


def seq(layers, name="seq"):
    return {"module": "keras", "class_name": "Sequential", "registered_name": None,
            "config": {"name": name, "layers": layers}}


lam = {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
       "config": {"name": "l", "function": {"class_name": "__lambda__", "config": {"code": "abc"}}}}
nested = seq([lam])
for i in range(30):
    nested = seq([dense(f"d{i}"), nested], name=f"m{i}")
case("keras_lambda_30_deep.keras", keras(nested), "malicious", ["SCN016"])
case("keras_layers_lambda_spelling.keras",
     keras(seq([{"module": "keras", "class_name": "layers.Lambda", "config": {"name": "x"}}])),
     "malicious", ["SCN016"])
case("keras_lambda_activation.keras",
     keras(seq([dense("d", {"class_name": "__lambda__", "config": {"code": "4wEAAAAA", "defaults": None}})])),
     "malicious", ["SCN016"])
case("keras_tfsm_layer.keras",
     keras(seq([{"module": "keras.layers", "class_name": "TFSMLayer", "config": {"name": "t", "filepath": "/tmp/x"}}])),
     "malicious", ["SCN016"])
case("keras_os_module.keras",
     keras(seq([dense("d", {"module": "os", "class_name": "function", "config": "system", "registered_name": "system"})])),
     "malicious", ["SCN016"])
# Keras itself confirms what it does with these configs, where it can run (keras + torch).
try:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras as real_keras

    have_keras = real_keras.backend.backend() == "torch"
except Exception:  # pragma: no cover - keras / torch optional
    have_keras = False


def keras_load(data, safe_mode):
    p = os.path.join(out, "probe.keras")
    with open(p, "wb") as f:
        f.write(data)
    try:
        real_keras.saving.load_model(p, safe_mode=safe_mode)
        return None
    except Exception as e:  # the payloads are not real models: loading ends in an error
        return f"{type(e).__name__}: {e}"
    finally:
        os.remove(p)


keras_marker = os.path.join(out, "keras-ran")
wrapper = {"module": "keras.layers", "class_name": "TorchModuleWrapper", "registered_name": None,
           "config": {"name": "tw", "module": base64.b64encode(pickle.dumps(Mkdir(keras_marker), protocol=2)).decode()}}
data = keras(seq([wrapper]))  # config.json only: no metadata.json, no weights
confirmed = None
if have_keras:
    keras_load(data, safe_mode=False)
    assert os.path.isdir(keras_marker), "keras did not torch.load the TorchModuleWrapper module"
    os.rmdir(keras_marker)
    confirmed = "keras.saving.load_model(safe_mode=False) ran the torch.load payload (marker created)"
case("keras_torch_module_wrapper.keras", data, "malicious", ["SCN016", "PKL001"], confirmed)
if have_keras:
    err = keras_load(keras(seq([{"module": "keras", "class_name": "layers.Lambda",
                                 "config": {"name": "x", "function": lam["config"]["function"]}}])), True)
    assert err and "Lambda" in err, err
    manifest["keras_layers_lambda_spelling.keras"]["confirmed"] = f"keras resolves it to Lambda: {err[:80]}"
npz = io.BytesIO()
try:
    import numpy as np

    np.savez(npz, a=np.arange(6, dtype=np.float32))
    weights = [("model.weights.npz", npz.getvalue())]
except Exception:  # pragma: no cover
    weights = []
case("keras_benign_npz.keras", keras(seq([dense("d1"), dense("d2")]), weights), "clean")

# Legacy .h5, written by h5py as Keras 2 wrote it (attrs["model_config"] = json.dumps(...)).
try:
    import h5py
    import numpy as np

    def h5(name, config, libver="earliest", fixed=False):
        p = os.path.join(out, name)
        with h5py.File(p, "w", libver=libver) as f:
            f.attrs["keras_version"] = "2.15.0"
            text = json.dumps(config)
            f.attrs["model_config"] = np.bytes_(text.encode()) if fixed else text
            f.create_dataset("model_weights/dense/kernel", data=np.ones((4, 4), dtype=np.float32))
        with h5py.File(p, "r") as f:
            v = f.attrs["model_config"]
            v = v.decode() if isinstance(v, bytes) else v
            assert json.loads(v) == config
        with open(p, "rb") as f:
            return f.read()

    # `class_name` is not the first key: a scan for `{"class_name":` misses it.
    lam_seq = {"config": {"name": "s", "layers": [lam]}, "class_name": "Sequential"}
    case("keras_legacy_lambda.h5", h5("x1", lam_seq), "malicious", ["SCN016"], "h5py reads model_config back")
    case("keras_legacy_lambda_v3.h5", h5("x2", lam_seq, libver="latest"), "malicious", ["SCN016"],
         "h5py reads model_config back (superblock v3, OHDR headers)")
    case("keras_legacy_lambda_fixed.h5", h5("x3", lam_seq, fixed=True), "malicious", ["SCN016"],
         "h5py reads a fixed-length string model_config")
    case("keras_legacy_benign.h5", h5("x4", seq([dense("d")])), "clean", [], "h5py reads model_config back")
    # Many attributes with libver latest: HDF5 moves them to dense storage (a fractal heap),
    # which is not read: unscannable, never clean.
    p5 = os.path.join(out, "x5")
    with h5py.File(p5, "w", libver="latest") as f:
        for i in range(20):
            f.attrs[f"a{i}"] = i
        f.attrs["model_config"] = json.dumps(lam_seq)
    with h5py.File(p5, "r") as f:
        assert json.loads(f.attrs["model_config"]) == lam_seq
    with open(p5, "rb") as f:
        case("keras_legacy_dense_attrs.h5", f.read(), "unscannable", ["SCN001"],
             "h5py reads model_config from dense attribute storage")
    for n in ("x1", "x2", "x3", "x4", "x5"):
        os.remove(os.path.join(out, n))
except ImportError:  # pragma: no cover - scripts/deps/python/scan-formats.txt installs h5py
    print("h5py missing: legacy .h5 cases skipped", file=sys.stderr)

# Large plain arrays in a compressed .npz are streamed (header + size checked, data not held);
# bytes after the array data are still read and scanned.
try:
    import numpy as np

    big = io.BytesIO()
    np.savez_compressed(big, w=np.arange(1 << 20, dtype=np.float32))  # 4 MiB member
    case("npz_compressed_4mib.npz", big.getvalue(), "clean")
    arr = io.BytesIO()
    np.save(arr, np.arange(1 << 19, dtype=np.float32))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("w.npy", arr.getvalue() + EVIL)
    with np.load(io.BytesIO(buf.getvalue())) as f:
        assert f["w"].shape == (1 << 19,)
    case("npz_trailing_payload.npz", buf.getvalue(), "malicious", ["SCN012"],
         "numpy.load reads the array; the payload rides behind it")
except ImportError:  # pragma: no cover
    pass

# --- §7 GGUF chat templates ------------------------------------------------------------------
def gguf(template):
    key = b"tokenizer.chat_template"
    t = template.encode()
    return (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key
            + struct.pack("<IQ", 8, len(t)) + t)


import jinja2  # noqa: E402

env = jinja2.Environment()
evil_templates = {
    "gguf_attr_escapes.gguf": "{{ x|attr('\\x5f\\x5fcla'~'ss\\x5f\\x5f') }}",
    "gguf_item_concat.gguf": "{{ (x|attr('\\u005f\\u005fclass\\u005f\\u005f'))['__mr' + 'o__'] }}",
    "gguf_set_var.gguf": "{% set a = '__cla' %}{% set b = 'ss__' %}{{ x|attr(a ~ b) }}",
}
for name, t in evil_templates.items():
    rendered = env.from_string(t).render(x="")
    assert "class" in rendered, rendered
    case(name, gguf(t), "malicious", ["SCN015"], f"jinja2 renders it to {rendered!r}")
benign = ("{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] + eos_token }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}")
env.from_string(benign).render(messages=[{"role": "user", "content": "hi"}], eos_token="</s>")
case("gguf_benign_template.gguf", gguf(benign), "clean")
case("gguf_unparseable_template.gguf", gguf("{% for %}"), "unscannable", ["SCN031"])

# What transformers' chat-template environment accepts beyond plain Jinja2: its AssistantTracker
# extension's `{% generation %}` block (the body renders as usual), loop controls; and Python's
# `\N{NAME}` escapes in literals. The same kind of extension is rebuilt here (a CallBlock whose
# body is rendered unchanged), so jinja2 itself confirms what each case does.
from jinja2 import nodes  # noqa: E402
from jinja2.ext import Extension  # noqa: E402


class GenerationBlock(Extension):
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller):
        return caller()


hf_env = jinja2.Environment(extensions=[GenerationBlock, "jinja2.ext.loopcontrols"])
hf_benign = ("{% for m in messages %}{%- if m['role'] == 'assistant' -%}{%- generation -%}"
             "{{ m['content'] + eos_token }}{%- endgeneration -%}{%- else -%}{{ m['content'] }}"
             "{%- endif %}{% endfor %}{{ '\\N{EM DASH}' }}")
r = hf_env.from_string(hf_benign).render(messages=[{"role": "assistant", "content": "hi"}], eos_token="</s>")
assert r == "hi</s>\u2014", repr(r)
case("gguf_generation_block.gguf", gguf(hf_benign), "clean",
     confirmed=f"jinja2 with a generation-block extension renders it to {r!r}")
hf_evil = {
    "gguf_generation_payload.gguf": "{% generation %}{{ x|attr('\\x5f\\x5fclass\\x5f\\x5f') }}{% endgeneration %}",
    "gguf_named_escape_dunder.gguf":
        "{{ x|attr('\\N{LOW LINE}\\N{LOW LINE}class\\N{LOW LINE}\\N{LOW LINE}') }}",
    "gguf_named_escape_item.gguf": "{{ x['\\N{LOW LINE}\\N{LOW LINE}class\\N{LOW LINE}\\N{LOW LINE}'] }}",
}
for name, t in hf_evil.items():
    rendered = hf_env.from_string(t).render(x="")
    assert "class" in rendered, rendered
    case(name, gguf(t), "malicious", ["SCN015"], f"jinja2 renders it to {rendered!r}")
for name, t in {
    "gguf_generation_unclosed.gguf": "{% generation %}{{ x }}",
    "gguf_generation_with_args.gguf": "{% generation x %}{{ x }}{% endgeneration %}",
}.items():
    try:
        hf_env.from_string(t)
        raise AssertionError(f"jinja2 accepted {t!r}")
    except jinja2.TemplateSyntaxError as e:
        case(name, gguf(t), "unscannable", ["SCN031"], f"jinja2 refuses it too: {e}")

# --- §9 bombs: streamed, so a large harmless payload is scanned, not refused -----------------
zeros = 200 << 20
chunk = b"\0" * (1 << 20)
z = zlib.compressobj(9, zlib.DEFLATED, -15)
gz_buf = io.BytesIO()
deflated, crc = [], 0
import gzip  # noqa: E402

with gzip.GzipFile(fileobj=gz_buf, mode="wb", compresslevel=9) as g:
    for _ in range(zeros >> 20):
        deflated.append(z.compress(chunk))
        crc = zlib.crc32(chunk, crc)
        g.write(chunk)
deflated.append(z.flush())
deflated = b"".join(deflated)
n = b"zeros.bin"
lh = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(deflated), zeros, len(n), 0) + n
cd = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(deflated), zeros,
                 len(n), 0, 0, 0, 0, 0, 0) + n
data = lh + deflated + cd + eocd(1, len(cd), len(lh) + len(deflated))
with zipfile.ZipFile(io.BytesIO(data)) as zf:
    assert zf.getinfo("zeros.bin").file_size == zeros
case("zip_bomb_zeros_200m.zip", data, "clean")
case("gzip_bomb_zeros_200m.gz", gz_buf.getvalue(), "clean")

with open(os.path.join(out, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=1)
