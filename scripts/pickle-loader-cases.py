#!/usr/bin/env python3
"""Regression files for the "not a pickle" and polyglot classes, confirmed by the real loaders.

Usage: pickle-loader-cases.py OUTDIR
Writes OUTDIR/cases/<name> and OUTDIR/manifest.json: {name: {"loader": ..., "executed": bool,
"error": str|null}}. Every payload is `builtins.open('m_<name>', 'w')` (written as the Python 2
name `__builtin__.open`, or with STACK_GLOBAL): harmless, and it leaves a marker file behind
when it runs. Each loader runs in its own subprocess with OUTDIR/markers as its working
directory, so "executed" means the real loader ran the payload. mlsign must call every one of
these files malicious (tests/cli/scan.rs).
"""
import io
import json
import os
import struct
import subprocess
import sys
import tarfile
import zipfile
import zlib


def p0(name):
    """Protocol-0 payload: open('m_<name>', 'w')."""
    return b"c__builtin__\nopen\n(S'm_%s'\nS'w'\ntR." % name.encode()


def p4(name):
    s = lambda b: b"\x8c" + bytes([len(b)]) + b
    return s(b"builtins") + s(b"open") + b"\x93" + s(b"m_" + name.encode()) + s(b"w") + b"\x86R."


def zip_bytes(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n, d in members:
            z.writestr(n, d)
    return buf.getvalue()


def tar_polyglot(payload):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT, encoding="latin1") as t:
        info = tarfile.TarInfo(payload.decode("latin1"))
        info.size = 5
        t.addfile(info, io.BytesIO(b"hello"))
    return buf.getvalue()


def cases():
    c = {}

    def add(name, loader, data):
        c[name] = (loader, data)

    add("proto1_header.npy", "numpy", b"\x80\x01" + p0("proto1_header.npy"))
    add("proto0_header.pkl", "pickle", b"\x80\x00" + p0("proto0_header.pkl"))
    add("memo_underscore.pkl", "pickle", b"S'x'\np1_0\n0g1_0\n0" + p0("memo_underscore.pkl"))
    add("memo_sign_space.pkl", "pickle", b"S'x'\np +1 \n0g\t1\n0" + p0("memo_sign_space.pkl"))
    add("memo_nul.pkl", "pickle", b"S'x'\np1\x00junk\n0" + p0("memo_nul.pkl"))
    add("unicode_surrogate.pkl", "pickle", b"V\\ud800\n0" + p0("unicode_surrogate.pkl"))
    add("int_forms.pkl", "pickle", b"I 0x1_0\n0I010\n0L-0b1L\n0Finf\n0" + p0("int_forms.pkl"))
    # float() of the pure-Python loader takes what the C one refuses.
    add("float_forms.joblib", "joblib", b"F 1_0.5 \n0" + p0("float_forms.joblib"))
    add("eof_line.joblib", "joblib", b"(S'm_eof_line.joblib'\nS'w'\ni__builtin__\nopenX")
    add("frame_too_long.joblib", "joblib",
        b"\x80\x04\x95" + struct.pack("<Q", 1 << 20) + p4("frame_too_long.joblib"))
    add("zip_member_proto1.zip", "zip-pickle",
        zip_bytes([("model.pkl", b"\x80\x01" + p0("zip_member_proto1.zip"))]))
    add("joblib_zlib_proto1.joblib", "joblib",
        zlib.compress(b"\x80\x01" + p0("joblib_zlib_proto1.joblib")))
    inner = b"\x80\x01" + p0("nested_bytes_proto1.pkl")
    add("nested_bytes_proto1.pkl", "pickle",
        b"\x80\x03cpickle\nloads\nC" + bytes([len(inner)]) + inner + b"\x85R.")
    add("prepended_to_torch_zip.pt", "pickle",
        b"\x80\x01" + p0("prepended_to_torch_zip.pt")
        + zip_bytes([("archive/data.pkl", b"\x80\x02}q\x00.")]))
    add("tar_polyglot.tar", "pickle", tar_polyglot(p0("tar_polyglot.tar")))
    # GGUF v1: 'G' (BINFLOAT) takes "GUF", the version and a byte of n_tensors; 'N' '0' follow.
    add("gguf_v1_polyglot.gguf", "pickle",
        b"GGUF" + struct.pack("<I", 1) + b"\x00N0" + p0("gguf_v1_polyglot.gguf") + b"\x00" * 64)
    return c


LOADERS = {
    "pickle": "import pickle,sys; pickle.load(open(sys.argv[1],'rb'))",
    "numpy": "import numpy,sys; numpy.load(sys.argv[1], allow_pickle=True)",
    "joblib": "import joblib,sys; joblib.load(sys.argv[1])",
    "zip-pickle": "import pickle,sys,zipfile; z=zipfile.ZipFile(sys.argv[1]); "
                  "[pickle.loads(z.read(n)) for n in z.namelist()]",
}


def main(out):
    cdir = os.path.join(out, "cases")
    mdir = os.path.join(out, "markers")
    os.makedirs(cdir, exist_ok=True)
    os.makedirs(mdir, exist_ok=True)
    manifest = {}
    for name, (loader, data) in cases().items():
        path = os.path.join(cdir, name)
        with open(path, "wb") as f:
            f.write(data)
        r = subprocess.run([sys.executable, "-c", LOADERS[loader], os.path.abspath(path)],
                           cwd=mdir, capture_output=True, timeout=120)
        err = r.stderr.decode(errors="replace").strip().splitlines()
        manifest[name] = {
            "loader": loader,
            "executed": os.path.exists(os.path.join(mdir, "m_" + name)),
            "error": err[-1] if err else None,
        }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
