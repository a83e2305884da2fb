#!/usr/bin/env python3
"""Side-by-side ML-BOM benchmark, one run:

  1. build: `mlsign bom` over a dataset of FILES small files (+ the test model) vs the floor,
     `sha256sum` over the same files (what any BOM with real per-file hashes must at least do);
  2. validate: `mlsign bom validate` (bundled CycloneDX 1.6 schema + reference checks) vs
     cyclonedx-python-lib's JsonStrictValidator (the official schema, draft-07 + formats) on the
     BOM from step 1.

  scripts/bench-bom.sh                       # builds what it needs, then runs this
  python3 scripts/bench_bom.py --files 20000 --repeat 3

Prints a Markdown table: median wall seconds, CPU seconds (user+sys), peak RSS, and the ratio
against mlsign. The machine may be shared and noisy: read the ratios and the CPU seconds.
"""
import argparse
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
BENCH = ROOT / ".bench" / "bom"

PY_VALIDATE = r"""
import sys
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
err = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1], encoding="utf-8").read())
sys.exit(0 if err is None else 1)
"""


def run_once(cmd, cwd):
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"benchmark command failed ({code}): {' '.join(map(str, cmd))}\n{err}")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0


def measure(cmd, cwd, repeat):
    run_once(cmd, cwd)  # warm-up: page cache, lazy loading
    runs = [run_once(cmd, cwd) for _ in range(repeat)]
    return (
        statistics.median(r[0] for r in runs),
        statistics.median(r[1] for r in runs),
        max(r[2] for r in runs),
    )


def make_dataset(path, files):
    marker = path / f".complete-{files}"
    if marker.exists():
        return
    shutil.rmtree(path, ignore_errors=True)
    for i in range(files):
        d = path / f"shard-{i // 1000:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"row-{i:07d}.jsonl").write_bytes(os.urandom(2048))
    marker.write_text("")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--mlsign", default=str(ROOT / "target/release/mlsign"))
    ap.add_argument("--python", default=str(ROOT / ".venv/bin/python"))
    a = ap.parse_args()
    mlsign = os.environ.get("MLSIGN_BIN", a.mlsign)
    BENCH.mkdir(parents=True, exist_ok=True)
    data = BENCH / "data"
    make_dataset(data, a.files)
    model = BENCH / "model"
    shutil.rmtree(model, ignore_errors=True)
    shutil.copytree(ROOT / "testdata/bom/model", model)
    bom = BENCH / "bench.cdx.json"
    build = [mlsign, "bom", "model", "-o", bom.name, "--dataset", "data", "--force", "--reproducible"]
    files = sorted(str(p.relative_to(BENCH)) for p in data.rglob("*.jsonl"))
    listing = BENCH / "files.txt"
    listing.write_text("\n".join(files) + "\n")
    floor = ["sh", "-c", "xargs sha256sum < files.txt > /dev/null"]
    rows = []
    b = measure(build, BENCH, a.repeat)
    f = measure(floor, BENCH, a.repeat)
    size = bom.stat().st_size
    v_ml = measure([mlsign, "bom", "validate", bom.name], BENCH, a.repeat)
    v_py = measure([a.python, "-c", PY_VALIDATE, bom.name], BENCH, a.repeat)
    rows.append(("build", f"mlsign bom (model + {a.files} dataset files)", b, b))
    rows.append(("build", "sha256sum over the same dataset files (floor)", f, b))
    rows.append(("validate", f"mlsign bom validate ({size / 1e6:.1f} MB BOM)", v_ml, v_ml))
    rows.append(("validate", "cyclonedx-python-lib JsonStrictValidator", v_py, v_ml))
    print(f"files={a.files} repeat={a.repeat} cpus={os.cpu_count()} bom_bytes={size}\n")
    print("| step | tool | wall s (median) | CPU s | peak RSS MiB | wall vs mlsign |")
    print("|---|---|---:|---:|---:|---:|")
    for step, tool, (w, c, r), (w0, _, _) in rows:
        print(f"| {step} | {tool} | {w:.3f} | {c:.3f} | {r:.0f} | {w / w0:.2f}x |")


if __name__ == "__main__":
    main()
