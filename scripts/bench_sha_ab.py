#!/usr/bin/env python3
"""End-to-end A/B of two mlsign binaries signing the same model (page cache warm), rounds
interleaved, in one run. Used to check that dropping ring for sha2 costs nothing:

  python3 scripts/bench_sha_ab.py --a OLD/mlsign --b NEW/mlsign --size-mb 1024 --files 4 --repeat 5

MLSIGN_NO_SHANI=1 (pairing off) by default, so every file goes through the single-stream kernel
being compared; --pairing keeps the two-stream SHA-NI kernel on. Prints median wall and CPU
seconds (user+sys) per binary and B/A ratios. The machine may be shared: read the CPU ratio.
"""
import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time


def run(cmd, env):
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{err}")
    return wall, ru.ru_utime + ru.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True, help="baseline binary")
    ap.add_argument("--b", required=True, help="candidate binary")
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--pairing", action="store_true", help="keep two-stream SHA-NI pairing on")
    ap.add_argument("--dir", default=None, help="where to generate the model (default: a temp dir)")
    args = ap.parse_args()
    work = pathlib.Path(args.dir or tempfile.mkdtemp(prefix="mlsign-ab-"))
    model = work / "model"
    model.mkdir(parents=True, exist_ok=True)
    per = args.size_mb * 1024 * 1024 // args.files
    for i in range(args.files):
        f = model / f"part-{i}.bin"
        if not f.exists() or f.stat().st_size != per:
            with open(f, "wb") as out:
                left = per
                while left:
                    n = min(left, 8 << 20)
                    out.write(os.urandom(n))
                    left -= n
    env = dict(os.environ)
    if not args.pairing:
        env["MLSIGN_NO_SHANI"] = "1"
    key = work / "k"
    run([args.a, "keygen", "--out", str(key), "--force"], env)
    for f in model.iterdir():  # warm the page cache
        f.read_bytes()
    res = {"a": [], "b": []}
    for r in range(args.repeat):
        for name in ("a", "b") if r % 2 == 0 else ("b", "a"):
            binary = getattr(args, name)
            res[name].append(
                run([binary, "sign", str(model), "--key", f"{key}.pem",
                     "--bundle", str(work / f"{name}.sig"), "--force"], env))
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
           for k, v in res.items()}
    mb = per * args.files / 1e6
    print(f"{args.files} files, {mb:.0f} MB, median of {args.repeat}, pairing "
          f"{'on' if args.pairing else 'off (MLSIGN_NO_SHANI=1)'}")
    print("| binary | wall s | CPU s | MB/s (wall) |")
    print("|---|---:|---:|---:|")
    for k in ("a", "b"):
        w, c = med[k]
        print(f"| {k}: {getattr(args, k)} | {w:.2f} | {c:.2f} | {mb / w:.0f} |")
    print(f"| B/A | {med['b'][0] / med['a'][0]:.3f} | {med['b'][1] / med['a'][1]:.3f} | |")


if __name__ == "__main__":
    main()
