#!/usr/bin/env python3
"""Differential fuzzing of `mlsign scan` against CPython's unpicklers (scripts/pickle-oracle.py).

Seeds are pickles written by `pickle.dumps` (protocols 0-5; benign values and references to
dangerous callables, never called here) and hand-made streams in the forms CPython accepts but
picklers never write (PROTO 0/1 headers, `p1_0` memo keys, ` +1`/`0x10` numbers, lone surrogates,
lines without a final newline, FRAME longer than the data, payloads nested in bytes, tar and
GGUF polyglots). Each round mutates them (bytes and text arguments), asks the oracle what the C
and the pure-Python unpicklers would import, and scans every file with one `mlsign scan --format
json` run. A file is a BUG when

  * a loader would import a global outside mlsign's allowlist from a module that exists here
    (or completes a stream after importing any such global) while mlsign says `clean`;
  * a loader unpickles the first stream to its STOP while mlsign says "not a model" (SCN019);
  * mlsign crashes or returns no report for the file.

Whether mlsign allows a global is asked of mlsign itself: one probe pickle per distinct global
(`STACK_GLOBAL` of the two names), scanned in the same run. Nothing is ever executed: the
oracle's `find_class` returns stubs and imports nothing.

Usage:
  pickle-diff-fuzz.py --mlsign target/debug/mlsign [--seed 1] [--rounds 3] [--per-round 1500]
                      [--budget 50] [--keep DIR]
Smoke (CI, cargo test): the defaults, about 30 s on 2 cores. Long run (docs/scan.md):
  pickle-diff-fuzz.py --mlsign target/release/mlsign --rounds 200 --budget 3600 --keep /tmp/bugs
Exit status: 0 no bug, 1 bugs (written under --keep when given), 2 usage error.
"""
import argparse
import collections
import importlib.util
import io
import json
import os
import pickle
import random
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
_oracle_spec = importlib.util.spec_from_file_location(
    "pickle_oracle", os.path.join(os.path.dirname(os.path.abspath(__file__)), "pickle-oracle.py"))
pickle_oracle = importlib.util.module_from_spec(_oracle_spec)
_oracle_spec.loader.exec_module(pickle_oracle)


# ---------------------------------------------------------------- seeds
class Call:
    """Pickles as a call of `fn(*args)`; nothing is called when pickling."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


def _benign_values():
    import collections as c
    return [
        None, True, 0, 1, -1, 255, 256, 65535, 2**31, -2**31 - 1, 2**64, -2**100, 1.5, float("inf"),
        "", "os", "\u00e9t\u00e9", "a\\u0041\n'\"", "\ud800x", b"", b"\x00\xff", bytearray(b"ab"),
        [1, [2, [3]]], (1,), (1, 2), (1, 2, 3), {"a": 1, 2: "b"}, {1, 2}, frozenset({3}),
        c.OrderedDict(a=1), {"shared": [1], "again": None}, complex(1, 2), range(3), slice(1, 2),
    ]


def _dangerous_values():
    import os as _os
    import subprocess as _sp
    return [
        Call(_os.system, "true"),
        Call(eval, "1"),
        Call(getattr, _os, "system"),
        Call(_sp.getoutput, "true"),
        Call(__import__, "os"),
        _os.system,
        [1, Call(_os.system, "true"), 2],
        {"k": Call(exec, "pass")},
    ]


def generated_seeds():
    seeds = []
    vals = _benign_values()
    shared = [1, 2]
    vals.append([shared, shared])
    for proto in range(0, 6):
        for v in vals + _dangerous_values():
            try:
                seeds.append(pickle.dumps(v, protocol=proto))
            except Exception:
                pass
    return seeds


PAYLOAD0 = b"cos\nsystem\n(S'true'\ntR."          # protocol 0, os.system('true')
PAYLOAD_OPEN = b"c__builtin__\nopen\n(S'm'\nS'w'\ntR."  # protocol 0, py2 name


def handmade_seeds():
    s = []
    for head in (b"", b"\x80\x00", b"\x80\x01", b"\x80\x02"):
        s.append(head + PAYLOAD0)
        s.append(head + PAYLOAD_OPEN)
        # Memo keys, numbers and text in forms CPython accepts.
        s.append(head + b"S'x'\np1_0\n0g1_0\n0" + PAYLOAD0)
        s.append(head + b"S'x'\np 1\n0g+1\n0" + PAYLOAD0)
        s.append(head + b"S'x'\np-0\n0g0\n0" + PAYLOAD0)
        s.append(head + b"S'x'\np2\x00junk\n0" + PAYLOAD0)
        s.append(head + b"I 0x10\n0I010\n0I1_0\n0L0b11L\n0F 1.5\n0" + PAYLOAD0)
        s.append(head + b"V\\ud800\n0" + PAYLOAD0)
        s.append(head + b"V\\u006f\\u0073\np0\n0Vsystem\np1\n0(g0\ng1\n\x93S'true'\ntR.")
        s.append(head + b"(S'm'\nS'w'\ni__builtin__\nopenX")  # joblib acts on the last line
        s.append(head + b"\x95\xff\x00\x00\x00\x00\x00\x00\x00" + PAYLOAD0)  # FRAME too long
        s.append(head + b"(dS'a'\nI1\nS'b'\ncos\nsystem\ns.")
    # Nested: bytes holding a PROTO 1 pickle, handed to pickle.loads.
    inner = b"\x80\x01" + PAYLOAD0
    s.append(b"\x80\x03cpickle\nloads\nC" + bytes([len(inner)]) + inner + b"\x85R.")
    # A pickle prepended to a ZIP (torch.load reads the pickle when the magic is missing).
    zbuf = io.BytesIO()
    import zipfile
    with zipfile.ZipFile(zbuf, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"a": 1}, protocol=2))
    s.append(b"\x80\x01" + PAYLOAD0 + zbuf.getvalue())
    # Polyglots: a tar whose first member name is a protocol-0 pickle; a GGUF v1 header
    # swallowed by BINFLOAT.
    s.append(tar_polyglot(PAYLOAD0))
    s.append(gguf_v1_polyglot(PAYLOAD0))
    return s


def tar_polyglot(payload):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        info = tarfile.TarInfo(payload.decode("latin1"))
        info.size = 1
        t.addfile(info, io.BytesIO(b"x"))
    return buf.getvalue()


def gguf_v1_polyglot(payload):
    # "GGUF" + u32 version 1: 'G' (BINFLOAT) swallows "GUF\x01\x00\x00\x00" and one byte of
    # n_tensors; the next bytes are opcodes: 'N' (None), '0' (POP) and the payload.
    head = b"GGUF" + struct.pack("<I", 1) + b"\x00N0"
    return head + payload + b"\x00" * 32


# ---------------------------------------------------------------- mutation
OPCODES = b"(.012FIJKLMNPQRSTUVXabcdeghijlopqrstu}])G\x80\x81\x82\x85\x86\x87\x88\x89\x8a\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\x97\x98BC"
TEXT_OPS = b"IpgLFVSPa"


def mutate_text_arg(d, rnd):
    """Rewrite one text argument (INT/LONG/PUT/GET/FLOAT/UNICODE line) into another form."""
    lines = [i for i in range(len(d) - 1) if d[i] in TEXT_OPS and b"\n" in d[i + 1:i + 40]]
    if not lines:
        return d
    i = rnd.choice(lines)
    end = d.index(b"\n", i + 1)
    arg = d[i + 1:end]
    forms = [
        lambda a: b"_".join(bytes([c]) for c in a) if a.isdigit() and len(a) > 1 else a,
        lambda a: b" " + a + b" ",
        lambda a: b"+" + a if a[:1] not in b"+-" else a,
        lambda a: b"-0" if a == b"0" else a,
        lambda a: a + b"\x00" + bytes([rnd.randrange(256)]),
        lambda a: b"\t" + a + b"\x0b",
        lambda a: (b"0x%x" % int(a)) if a.isdigit() and len(a) < 18 else a,
        lambda a: a + b"L",
        lambda a: b"\\ud800" + a,
        lambda a: b"".join(b"\\u%04x" % c for c in a) if a.isalpha() else a,
        lambda a: a[:-1],
    ]
    new = rnd.choice(forms)(arg)
    return d[:i + 1] + new + d[end:]


def mutate(d, rnd, pool):
    d = bytearray(d)
    for _ in range(1 + rnd.randrange(4)):
        k = rnd.randrange(12)
        if not d:
            d = bytearray(rnd.choice(pool))
        p = rnd.randrange(len(d))
        if k == 0:
            d[p] = rnd.randrange(256)
        elif k == 1:
            d[p] ^= 1 << rnd.randrange(8)
        elif k == 2:
            del d[p]
        elif k == 3:
            d.insert(p, rnd.choice(OPCODES))
        elif k == 4:
            d = d[:p]
        elif k == 5:
            q = min(len(d), p + 1 + rnd.randrange(16))
            d[p:p] = d[p:q]
        elif k == 6:
            other = rnd.choice(pool)
            d = d[:p] + other[rnd.randrange(len(other) + 1):]
        elif k == 7:
            d = bytearray(mutate_text_arg(bytes(d), rnd))
        elif k == 8:
            # Switch / add a PROTO header.
            if d[:1] == b"\x80" and len(d) > 1:
                d[1] = rnd.randrange(6)
            else:
                d[0:0] = bytes([0x80, rnd.randrange(6)])
        elif k == 9:
            # Drop the final newline (pure-Python readline at EOF).
            while d and d[-1:] in (b".", b"\n"):
                d = d[:-1]
        elif k == 10:
            other = rnd.choice(pool)
            d[p:p] = other
        else:
            d[p:p] = rnd.choice([b"0", b"N0", b"(1", b"2", b"0(", b"p9\n", b"I1_0\n0", b"\x94"])
    return bytes(d)


SNIPPETS = [
    b"(", b"N", b"I1\n", b"I01\n", b"K\x01", b"M\x00\x01", b"S'os'\n", b"Vsystem\n", b"\x8c\x02os",
    b"\x8c\x06system", b"X\x03\x00\x00\x00set", b"cos\nsystem\n", b"c__builtin__\nset\n",
    b"cbuiltins\ngetattr\n", b"ccollections\nOrderedDict\n", b"t", b")", b"\x85", b"\x86", b"\x87",
    b"R", b"0", b"1", b"2", b"p0\n", b"p1_0\n", b"g0\n", b"g1_0\n", b"q\x01", b"h\x01", b"\x94",
    b"h\x00", b"\x93", b"]", b"a", b"e", b"}", b"s", b"u", b"b", b"o", b"i__builtin__\nlist\n",
    b"ios\nsystem\n", b"\x81", b"\x92", b"l", b"d", b"\x8f", b"\x90", b"\x91", b"P1\n", b"Q",
    b"\x88", b"\x89", b"G\x00\x00\x00\x00\x00\x00\x00\x00", b"C\x01x", b"\x80\x01", b"\x80\x04",
    b"\x95\x08\x00\x00\x00\x00\x00\x00\x00", b"L5L\n", b"F1.0\n", b"V\\ud800\n", b".",
]


def random_program(rnd):
    """A random opcode sequence from well-formed snippets: exercises stack, mark and memo
    semantics rather than argument parsing."""
    out = b"".join(rnd.choice(SNIPPETS) for _ in range(rnd.randrange(2, 30)))
    return out + (b"." if rnd.random() < 0.7 else b"")


# ---------------------------------------------------------------- running
def top_level_importable(module):
    top = module.split(".")[0]
    if not top or not top.isidentifier():
        return False
    try:
        return importlib.util.find_spec(top) is not None
    except Exception:
        return False


def scan_dir(mlsign, path):
    r = subprocess.run([mlsign, "scan", "--format", "json", path], capture_output=True)
    if r.returncode not in (0, 1):
        raise SystemExit("mlsign failed (exit %d): %s" % (r.returncode, r.stderr.decode()[-2000:]))
    doc = json.loads(r.stdout)
    return {os.path.basename(f["path"]): f for f in doc["files"]}


def probe_pickle(m, n):
    def s(x):
        b = x.encode("utf-8", "surrogatepass")
        return b"\x8d" + struct.pack("<Q", len(b)) + b
    return b"\x80\x04" + s(m) + s(n) + b"\x93."


SHOW_STRICT = bool(os.environ.get("PICKLE_FUZZ_SHOW_STRICT"))


def run_round(mlsign, cases, allowed_cache, work):
    cdir = os.path.join(work, "cases")
    pdir = os.path.join(work, "probes")
    for d in (cdir, pdir):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    results = []
    need = set()
    for i, data in enumerate(cases):
        name = "%06d.bin" % i
        with open(os.path.join(cdir, name), "wb") as f:
            f.write(data)
        o = pickle_oracle.oracle(data)
        results.append((name, data, o))
        for side in ("c", "py"):
            for m, n, _, _ in o[side]["globals"]:
                if (m, n) not in allowed_cache:
                    need.add((m, n))
    need = sorted(need)
    for j, (m, n) in enumerate(need):
        with open(os.path.join(pdir, "%06d.bin" % j), "wb") as f:
            f.write(probe_pickle(m, n))
    if need:
        probes = scan_dir(mlsign, pdir)
        for j, g in enumerate(need):
            f = probes.get("%06d.bin" % j)
            allowed_cache[g] = f is not None and f["verdict"] == "clean"
    scans = scan_dir(mlsign, cdir)
    bugs, stats = [], collections.Counter()
    for name, data, o in results:
        f = scans.get(name)
        if f is None:
            bugs.append((name, data, "no report from mlsign", o, None))
            continue
        stats[f["verdict"]] += 1
        # SCN019 about a member (a tar polyglot's inner file) is not the file's verdict.
        codes = {x["code"] for x in f["findings"] if x["code"] != "SCN019" or x["member"] is None}
        clean = f["verdict"] == "clean"
        for side in ("c", "py"):
            r = o[side]
            bad = [g for g in r["globals"] if not allowed_cache.get((g[0], g[1]), False)]
            if r["complete"]:
                stats["oracle_%s_complete" % side] += 1
            if bad:
                stats["oracle_%s_non_allowlisted" % side] += 1
            live = [g for g in bad if top_level_importable(g[0])]
            if clean and (live or (bad and r["complete"])):
                bugs.append((name, data, "%s unpickler imports %s; mlsign says clean" % (
                    side, ", ".join("%s.%s" % (g[0], g[1]) for g in (live or bad)[:3])), o, f))
                break
            if r["complete"] and "SCN019" in codes:
                bugs.append((name, data, "%s unpickler completes the stream; mlsign says not a "
                             "model (SCN019)" % side, o, f))
                break
            first_breaks = any(x["code"] == "PKL009" and x["stream"] == 0 for x in f["findings"])
            if r["complete"] and not bad and first_breaks and side == "c":
                stats["vm_stricter_than_c"] += 1
                if SHOW_STRICT:
                    print(ascii("STRICT %r\n  %s" % (data[:200], json.dumps(f["findings"])[:400])))
    return bugs, stats


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mlsign", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--per-round", type=int, default=1500)
    ap.add_argument("--budget", type=float, default=50.0, help="seconds; stop after the round that passes it")
    ap.add_argument("--keep", help="directory to write the bug files to")
    a = ap.parse_args()
    pickle_oracle.limit_memory()
    rnd = random.Random(a.seed)
    pool = generated_seeds() + handmade_seeds()
    start = time.time()
    allowed = {}
    all_bugs, total = [], collections.Counter()
    with tempfile.TemporaryDirectory() as work:
        for rno in range(a.rounds):
            cases = list(pool) if rno == 0 else []
            while len(cases) < a.per_round:
                if rnd.random() < 0.3:
                    cases.append(random_program(rnd))
                else:
                    cases.append(mutate(rnd.choice(pool), rnd, pool))
            bugs, stats = run_round(a.mlsign, cases, allowed, work)
            total.update(stats)
            total["files"] += len(cases)
            all_bugs.extend(bugs)
            if time.time() - start > a.budget:
                break
    elapsed = time.time() - start
    print("pickle-diff-fuzz: seed %d, %d files in %.1f s, %d distinct globals probed (%d allowed)" % (
        a.seed, total["files"], elapsed, len(allowed), sum(allowed.values())))
    print("  " + ", ".join("%s=%d" % kv for kv in sorted(total.items()) if kv[0] != "files"))
    if a.keep and all_bugs:
        os.makedirs(a.keep, exist_ok=True)
    for k, (name, data, why, o, f) in enumerate(all_bugs[:50]):
        print(ascii("BUG %d: %s\n  bytes: %r\n  oracle: %s\n  mlsign: %s" % (
            k, why, data[:300], json.dumps(o)[:600],
            json.dumps(f)[:600] if f else None)).replace("\\n", "\n"))
        if a.keep:
            with open(os.path.join(a.keep, "bug-%d-%d.bin" % (a.seed, k)), "wb") as out:
                out.write(data)
    print("%d bug(s)" % len(all_bugs))
    return 1 if all_bugs else 0


if __name__ == "__main__":
    sys.exit(main())
