#!/usr/bin/env python3
"""The hashing scheduler on every model shape, for any core count (no other tool needed).

  python3 scripts/bench_shapes.py --mlsign target/release/mlsign --kernels .bench/kernels.json

For C cores it times `mlsign hash` (SHA-256, warm page cache) on 1, 2, 3, C, 2C and 2C+1 equal
files, a skewed mix (one file 4× the unit + 8C files of 1/8 unit) and 20,000 small files, and
prints wall and CPU seconds, CPU/wall and each shape's floor: the largest single stream at the
best one-stream rate, or all bytes over all cores at the two-stream rate, whichever is larger.
The data lives under --dir (a tmpfs such as /dev/shm keeps disks out of it) and is removed shape
by shape.
"""
import argparse
import json
import os
import pathlib
import random
import shutil
import statistics
import subprocess
import sys
import time

MIB = 1 << 20


def make(path, sizes):
    path.mkdir(parents=True, exist_ok=True)
    blob = os.urandom(64 * MIB)
    for i, size in enumerate(sizes):
        sub = path / f"d{i // 1000:03d}"
        sub.mkdir(exist_ok=True)
        with open(sub / f"f{i:06d}.bin", "wb") as f:
            left, off = size, i * 4099 % (32 * MIB)
            while left:
                n = min(left, 32 * MIB)
                f.write(blob[off:off + n])
                left -= n
    return sum(sizes)


def once(cmd):
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {cmd}\n{err}")
    return wall, ru.ru_utime + ru.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mlsign", default="target/release/mlsign")
    ap.add_argument("--kernels", default=".bench/kernels.json")
    ap.add_argument("--dir", default=".bench/shapes-c")
    ap.add_argument("--unit-mb", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    k = json.loads(pathlib.Path(args.kernels).read_text().strip().splitlines()[-1])
    one = max(k.get("sha2_gbps") or 0, k["ring_gbps"], k.get("sha_ni_1_gbps") or 0) * 1e9
    two = max(k.get("sha_ni_2_gbps") or 0, one / 1e9) * 1e9
    u = args.unit_mb * MIB
    rnd = random.Random(17)
    shapes = [
        ("1 file", [u]),
        ("2 files", [u] * 2),
        ("3 files", [u] * 3),
        (f"C = {cores} files", [u] * cores),
        (f"2C = {2 * cores} files", [u] * (2 * cores)),
        (f"2C+1 = {2 * cores + 1} files", [u] * (2 * cores + 1)),
        (f"skewed: 4 units + {8 * cores} × 1/8 unit", [4 * u] + [u // 8] * (8 * cores)),
        ("20,000 small files (2–8 KB)", [rnd.randint(2048, 8192) for _ in range(20000)]),
    ]
    print(f"{cores} cores; unit {args.unit_mb} MiB; one stream {one / 1e9:.2f} GB/s, two streams "
          f"{two / 1e9:.2f} GB/s per core (in-memory kernels); median of {args.repeat}.\n")
    print("| shape | wall s | cpu s | CPU/wall | floor s | wall ÷ floor |")
    print("|---|---:|---:|---:|---:|---:|")
    base = pathlib.Path(args.dir)
    for name, sizes in shapes:
        d = base / "shape"
        shutil.rmtree(d, ignore_errors=True)
        total = make(d, sizes)
        cmd = [args.mlsign, "hash", str(d), "--no-progress", "--no-stat-cache"]
        once(cmd)  # warm-up
        runs = [once(cmd) for _ in range(args.repeat)]
        w = statistics.median(r[0] for r in runs)
        c = statistics.median(r[1] for r in runs)
        floor = max(max(sizes) / one, total / (cores * two))
        print(f"| {name} | {w:.3f} | {c:.2f} | {c / w:.2f} | {floor:.3f} | {w / floor:.2f}× |", flush=True)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
