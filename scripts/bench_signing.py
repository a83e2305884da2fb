#!/usr/bin/env python3
"""Side-by-side signing benchmark: mlsign vs model_signing, openssl and b3sum, in one run.

  scripts/bench-signing.sh          # builds what it needs, then runs this
  python3 scripts/bench_signing.py --size-mb 2048 --files 4 --repeat 3

Generates a model of FILES random files (SIZE_MB in total) under .bench/, warms the page cache,
then times every tool REPEAT times and prints a Markdown table: median wall seconds, CPU seconds
(user+sys), MB/s, peak RSS, and the ratio against mlsign. Rounds are interleaved. The machine is shared and noisy: read
the ratios and the CPU seconds, not only the wall times.
"""
import argparse
import os
import pathlib
import resource
import shutil
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
BENCH = ROOT / ".bench"


def run_once(cmd, cwd, env=None):
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"benchmark command failed ({code}): {' '.join(map(str, cmd))}\n{err}")
    cpu = ru.ru_utime + ru.ru_stime
    return wall, cpu, ru.ru_maxrss / 1024.0, ru.ru_stime  # MiB


def make_model(path, size_mb, files):
    want = size_mb * 1024 * 1024 // files
    path.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        f = path / f"model-{i:05d}-of-{files:05d}.safetensors"
        if f.exists() and f.stat().st_size == want:
            continue
        with open(f, "wb") as out:
            left = want
            while left:
                n = min(left, 8 << 20)
                out.write(os.urandom(n))
                left -= n
    return want * files


def make_sizes(path, sizes, seed_name="f"):
    """A tree with one random file per entry of `sizes` (bytes); reused when already there."""
    path.mkdir(parents=True, exist_ok=True)
    width = len(str(len(sizes)))
    for i, size in enumerate(sizes):
        sub = path / f"d{i // 1000:04d}" if len(sizes) > 1000 else path
        sub.mkdir(exist_ok=True)
        f = sub / f"{seed_name}-{i:0{width}d}.bin"
        if f.exists() and f.stat().st_size == size:
            continue
        with open(f, "wb") as out:
            left = size
            while left:
                n = min(left, 8 << 20)
                out.write(os.urandom(n))
                left -= n
    return sum(sizes)


def kernel_rates(path):
    """(best single-stream GB/s per core, two-stream GB/s per core) from the kernels bench."""
    import json
    p = pathlib.Path(path)
    if not p.exists():
        return None
    k = json.loads(p.read_text().strip().splitlines()[-1])
    single = max(k.get("sha2_gbps") or 0, k["ring_gbps"], k.get("sha_ni_1_gbps") or 0)
    pair = k.get("sha_ni_2_gbps") or single
    return single, max(pair, single)


def interleaved(rows, repeat):
    for _, cmd in rows:
        run_once(cmd, ROOT)  # warm-up (page cache, lazy loading)
    runs = {name: [] for name, _ in rows}
    for r in range(repeat):
        for name, cmd in rows:
            runs[name].append(run_once(cmd, ROOT))
        print(f"  round {r + 1}/{repeat} done", file=sys.stderr)
    return {
        name: (
            statistics.median(x[0] for x in rs),
            statistics.median(x[1] for x in rs),
            max(x[2] for x in rs),
            statistics.median(x[3] for x in rs),
        )
        for name, rs in runs.items()
    }


MIB = 1 << 20
SHAPES = [
    # name, sizes, target ratio model_signing ÷ mlsign, extra target text
    ("1 × 1 GiB", [1024 * MIB], 1.3, ""),
    ("2 × 512 MiB", [512 * MIB] * 2, 1.8, "CPU/wall ≥ 1.6"),
    ("3 × 512 MiB", [512 * MIB] * 3, None, ""),
    ("4 × 512 MiB (2C)", [512 * MIB] * 4, None, ""),
    ("skewed 1 GiB + 8 × 64 MiB", [1024 * MIB] + [64 * MIB] * 8, None, ""),
    ("20,000 small files (2–8 KB)", None, 4.0, ""),
]


def shapes(args, key, ml, oms):
    """Every model shape of issue 17, mlsign vs model_signing in the same interleaved rounds,
    with each shape's floor: the largest single stream at the best one-stream rate, or all bytes
    over all cores at the two-stream rate, whichever is larger."""
    import random
    rates = kernel_rates(args.kernels)
    cores = os.cpu_count() or 1
    print(f"\n## Model shapes (issue 17); load average {' '.join(load_line())}\n")
    print(f"{cores} CPUs; median of {args.repeat}; floor from `cargo bench --bench sha256_kernels`"
          + (f" (one stream {rates[0]:.2f} GB/s, two streams {rates[1]:.2f} GB/s per core)." if rates else " (not measured)."))
    print()
    print("| shape | mlsign wall s | cpu s | CPU/wall | model_signing wall s | cpu s | ratio (wall) | ratio (cpu) | target | floor s | mlsign ÷ floor | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    pick = {int(x) for x in args.shapes.split(",") if x.strip()}
    for k, (name, sizes, target, extra) in enumerate(SHAPES, 1):
        if pick and k not in pick:
            continue
        if sizes is None:
            rnd = random.Random(17)
            sizes = [rnd.randint(2048, 8192) for _ in range(20000)]
            tag = "small-20000"
        else:
            tag = name.split(" (")[0].replace(" ", "").replace("×", "x").replace("+", "_").replace(",", "")
        model = BENCH / f"shape-{tag}"
        total = make_sizes(model, sizes)
        rows = [
            ("mlsign", [ml, "sign", model, "--key", key, "--bundle", BENCH / "s.sig", "--force", "--no-progress", "--no-stat-cache"]),
            ("oms", [oms, "sign", "key", model, "--private_key", key, "--signature", BENCH / "s2.sig"]),
        ]
        res = interleaved(rows, args.repeat)
        w, c, rss, _ = res["mlsign"]
        ow, oc = res["oms"][0], res["oms"][1]
        floor = ""
        vs_floor = ""
        if rates:
            f = max(max(sizes) / (rates[0] * 1e9), total / (cores * rates[1] * 1e9))
            floor = f"{f:.3f}"
            vs_floor = f"{w / f:.2f}×"
        tgt = (f"≥ {target}×" if target else "–") + (f", {extra}" if extra else "")
        print(f"| {name} | {w:.3f} | {c:.2f} | {c / w:.2f} | {ow:.3f} | {oc:.2f} | {ow / w:.2f}× | {oc / c:.2f}× | {tgt} | {floor} | {vs_floor} | {rss:.1f} |")
        sys.stdout.flush()


def incremental(args, key, ml):
    """README edit in a 2 GiB model: `sign --since` vs a full sign."""
    model = BENCH / "incr-2g"
    make_sizes(model, [512 * MIB] * 4)
    readme = model / "README.md"
    readme.write_text("# model\n")
    cache = BENCH / "xdg-cache"
    env = dict(os.environ, XDG_CACHE_HOME=str(cache))
    old = BENCH / "incr-old.sig"
    time.sleep(0.2)  # let the files age past the stat cache's racy window
    subprocess.run([ml, "sign", model, "--key", key, "--bundle", old, "--force", "--no-progress"], check=True, stdout=subprocess.DEVNULL, env=env)
    # No change since OLD.sig: the fixed cost of an incremental run (nothing is re-hashed).
    # CPU milliseconds are the robust figure on a loaded machine (wall includes waiting for a core).
    same = [ml, "sign", model, "--key", key, "--bundle", BENCH / "incr-same.sig", "--force", "--no-progress", "--since", old, "--no-stat-cache"]
    nochange = [run_once(same, ROOT, env) for _ in range(max(7, args.repeat))]
    walls, full, cpus = [], [], []
    for i in range(args.repeat):
        readme.write_text(f"# model\nedit {i}\n")
        time.sleep(0.06)
        w, c, _, _ = run_once([ml, "sign", model, "--key", key, "--bundle", BENCH / "incr-new.sig", "--force", "--no-progress", "--since", old, "--no-stat-cache"], ROOT, env)
        walls.append(w)
        cpus.append(c)
        w, _, _, _ = run_once([ml, "sign", model, "--key", key, "--bundle", BENCH / "incr-full.sig", "--force", "--no-progress", "--no-stat-cache"], ROOT, env)
        full.append(w)
    print(f"\n## Incremental re-signing (README.md edited in a 2 GiB model); load average {' '.join(load_line())}\n")
    print("| run | wall ms (median) | cpu ms (median) | target |")
    print("|---|---:|---:|---|")
    print(f"| `sign --since OLD.sig`, nothing changed | {statistics.median(x[0] for x in nochange) * 1000:.1f} | {statistics.median(x[1] for x in nochange) * 1000:.1f} | < 20 ms |")
    print(f"| `sign --since OLD.sig`, README.md edited | {statistics.median(walls) * 1000:.1f} | {statistics.median(cpus) * 1000:.1f} | < 20 ms + hashing the changed bytes |")
    print(f"| full `sign` | {statistics.median(full) * 1000:.1f} | – | – |")


def large(args, ml, key):
    """Flat memory on big trees: peak RSS of `hash` and `sign` over N small files, and N × 1 KB
    with `mlsign hash` vs `find | xargs sha256sum`."""
    n = args.large_files
    model = BENCH / f"tree-{n}"
    stamp = model / ".complete"
    if not stamp.exists():
        print(f"  generating {n} files of 1 KB ...", file=sys.stderr)
        blob = os.urandom(1024 + n)
        for i in range(n):
            d = model / f"{i // 1000:05d}"
            if i % 1000 == 0:
                d.mkdir(parents=True, exist_ok=True)
            with open(d / f"{i:08d}.bin", "wb") as f:
                f.write(blob[i:i + 1024])
        stamp.write_text("")
    rows = [
        ("mlsign hash", [ml, "hash", model, "--no-progress", "--no-stat-cache", "--ignore", stamp]),
        ("mlsign sign", [ml, "sign", model, "--key", key, "--bundle", BENCH / "tree.sig", "--force", "--no-progress", "--no-stat-cache", "--ignore", stamp]),
        ("find \\| xargs sha256sum", ["bash", "-c", f"find {model} -type f -print0 | xargs -0 -P {os.cpu_count() or 1} -n 2000 sha256sum > /dev/null"]),
    ]
    res = interleaved(rows, args.repeat)
    print(f"\n## Large tree: {n:,} files of 1 KB\n")
    print("| tool | wall s | cpu s | files/s | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|")
    for name, _ in rows:
        w, c, rss, _ = res[name]
        print(f"| {name} | {w:.2f} | {c:.2f} | {n / w:,.0f} | {rss:.1f} |")
    print("\n(peak RSS of the xargs row is the largest sha256sum process, not their sum.)")


def load_line():
    """`uptime`'s load averages, to label figures taken on a shared machine."""
    try:
        return open("/proc/loadavg").read().split()[:3]
    except OSError:
        return ["?", "?", "?"]


def scale(args, key, ml, oms):
    """Issue 17's large-tree figures in one run, ratios side by side: N × 1 KB files (default
    1,000,000) with `mlsign hash` and `mlsign sign` against `find | xargs sha256sum` and the
    physical floors (walk + stat all files; read all files), then mlsign against model_signing
    on a 100,000-file part of the same tree. The tree lives under --scale-dir (default /tmp)
    and is removed at the end unless --keep-tree."""
    n = args.scale_files
    base = pathlib.Path(args.scale_dir) / f"mlsign-scale-{n}"
    tree = base / "tree"
    stamp = base / ".complete"
    per_part = 100_000
    if not stamp.exists():
        need = n * 4096 * 1.1 + 64 * MIB
        free = shutil.disk_usage(args.scale_dir).free
        if free < need * 1.5:
            sys.exit(f"{args.scale_dir}: {free / 2**30:.1f} GiB free, the tree needs ~{need / 2**30:.1f} GiB")
        print(f"  generating {n:,} files of 1 KB under {tree} ...", file=sys.stderr)
        blob = os.urandom(1024 + 4096)
        for i in range(n):
            # p<part>/<hundreds>/: 1,000 files a directory, 100,000 a part.
            if i % 1000 == 0:
                d = tree / f"p{i // per_part:02d}" / f"{(i % per_part) // 1000:03d}"
                d.mkdir(parents=True, exist_ok=True)
            with open(d / f"{i:08d}.bin", "wb") as f:
                f.write(blob[i % 4096:i % 4096 + 1024])
        stamp.write_text("")
    cores = os.cpu_count() or 1
    sig = BENCH / "scale.sig"
    cache = BENCH / "xdg-cache"
    rows = [
        ("walk + stat every file (`find -printf %s`)", ["bash", "-c", f"find {tree} -type f -printf '%s\\n' > /dev/null"]),
        ("read every file (`find | xargs cat`)", ["bash", "-c", f"find {tree} -type f -print0 | xargs -0 -P {cores} -n 2000 cat > /dev/null"]),
        ("find | xargs sha256sum", ["bash", "-c", f"find {tree} -type f -print0 | xargs -0 -P {cores} -n 2000 sha256sum > /dev/null"]),
        ("mlsign hash", [ml, "hash", tree, "--no-progress", "--no-stat-cache"]),
        ("mlsign sign", [ml, "sign", tree, "--key", key, "--bundle", sig, "--force", "--no-progress", "--no-stat-cache"]),
    ]
    load0 = load_line()
    res = interleaved(rows, args.repeat)
    part = tree / "p00"
    part_n = min(n, per_part)
    prow = [
        ("mlsign sign (100k part)", [ml, "sign", part, "--key", key, "--bundle", BENCH / "scale-part.sig", "--force", "--no-progress", "--no-stat-cache"]),
        ("model_signing sign key (100k part)", [oms, "sign", "key", part, "--private_key", key, "--signature", BENCH / "scale-part-oms.sig"]),
    ]
    pres = interleaved(prow, max(1, min(args.repeat, 2)))
    load1 = load_line()
    sha = res["find | xargs sha256sum"][0]
    print(f"\n## Large tree: {n:,} files of 1 KB ({cores} CPUs, warm page cache, median of {args.repeat}; "
          f"load average {' '.join(load0)} before, {' '.join(load1)} after)\n")
    print("| run | wall s | cpu s | files/s | peak RSS MiB | wall ÷ `xargs sha256sum` |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, _ in rows:
        w, c, rss, _ = res[name]
        print(f"| {name} | {w:.2f} | {c:.2f} | {n / w:,.0f} | {rss:.1f} | {w / sha:.2f} |")
    print("\n(peak RSS of the `find`/`xargs` rows is their largest single process.)\n")
    print(f"| {part_n:,}-file part | wall s | cpu s | peak RSS MiB | ratio |")
    print("|---|---:|---:|---:|---:|")
    mw = pres[prow[0][0]][0]
    for name, _ in prow:
        w, c, rss, _ = pres[name]
        print(f"| {name} | {w:.2f} | {c:.2f} | {rss:.1f} | {w / mw:.2f}× mlsign |")
    if not args.keep_tree:
        shutil.rmtree(base)


def memory(args, key, pub, ml, oms):
    """Peak RSS of every large-tree path over N files of 1 KB (default 100,000): `sign`,
    `verify`, `sign --since` (nothing changed, one file changed), `hash --partition` × 4 and
    `sign --from-parts`, `verify --partition`, and `model_signing verify key`. Reports MiB and
    bytes per file above a one-file `sign` (the binary, threads and buffers), one run each: a
    peak is a maximum, not a rate, so it is not median-ed. Stat caches go to a private
    XDG_CACHE_HOME."""
    n = args.memory_files
    tree = BENCH / f"memory-{n}"
    stamp = BENCH / f"memory-{n}.complete"
    if not stamp.exists():
        print(f"  generating {n:,} files of 1 KB under {tree} ...", file=sys.stderr)
        blob = os.urandom(1024 + 4096)
        for i in range(n):
            if i % 1000 == 0:
                d = tree / f"p{i // 100_000:02d}" / f"{(i % 100_000) // 1000:03d}"
                d.mkdir(parents=True, exist_ok=True)
            with open(d / f"{i:08d}.bin", "wb") as f:
                f.write(blob[i % 4096:i % 4096 + 1024])
        stamp.write_text("")
    work = BENCH / "memory-work"
    shutil.rmtree(work, ignore_errors=True)
    (work / "one").mkdir(parents=True)
    (work / "one" / "f").write_bytes(b"x\n")
    env = dict(os.environ, XDG_CACHE_HOME=str(work / "cache"))
    sig = lambda name: str(work / name)  # noqa: E731
    q = ["--no-progress"]
    changed = next((tree / "p00" / "000").iterdir())
    rows = [
        ("baseline: `sign` of one file", [ml, "sign", work / "one", "--key", key, "--bundle", sig("one.sig"), *q]),
        ("`sign`", [ml, "sign", tree, "--key", key, "--bundle", sig("a.sig"), *q]),
        ("`verify`", [ml, "verify", tree, "--key", pub, "--bundle", sig("a.sig"), *q]),
        ("`sign --since`, nothing changed", [ml, "sign", tree, "--key", key, "--since", sig("a.sig"), "--bundle", sig("b.sig"), *q]),
        ("`sign --since`, one file changed", None),
        *[(f"`hash --partition {i}/4`", [ml, "hash", tree, "--partition", f"{i}/4", "-o", sig(f"part-{i}.json"), *q]) for i in range(4)],
        ("`sign --from-parts` (4 parts)", [ml, "sign", tree, "--key", key, "--from-parts", sig("part-*.json"), "--bundle", sig("d.sig"), *q]),
        ("`verify --partition 0/4`", [ml, "verify", tree, "--key", pub, "--bundle", sig("d.sig"), "--partition", "0/4", "-o", sig("v0.json"), *q]),
        ("model_signing verify key", [oms, "verify", "key", tree, "--signature", sig("a.sig"), "--public_key", pub]),
    ]
    res = {}
    original = changed.read_bytes()
    for name, cmd in rows:
        if cmd is None:
            changed.write_bytes(original + b"!")
            cmd = [ml, "sign", tree, "--key", key, "--since", sig("a.sig"), "--bundle", sig("c.sig"), *q]
            res[name] = run_once(cmd, ROOT, env)
            changed.write_bytes(original)
            continue
        if name.startswith("model_signing") and not os.path.exists(oms):
            continue
        res[name] = run_once(cmd, ROOT, env)
        print(f"  {name}: {res[name][2]:.1f} MiB", file=sys.stderr)
    base = res[rows[0][0]][2]
    print(f"\n## Peak memory over {n:,} files of 1 KB; load average {' '.join(load_line())}\n")
    print("| run | wall s | peak RSS MiB | bytes/file above the baseline |")
    print("|---|---:|---:|---:|")
    for name, _ in rows:
        if name in res:
            w, _, rss, _ = res[name]
            print(f"| {name} | {w:.2f} | {rss:.1f} | {(rss - base) * MIB / n:,.0f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="classic,shapes,incremental",
                    help="comma list of: classic (tools side by side on one model), shapes "
                         "(issue 17 shapes vs model_signing with floors), incremental, large, "
                         "scale (1 M files vs sha256sum, floors and model_signing on 100k), memory (peak RSS of "
                         "sign, verify, --since, --partition/--from-parts)")
    ap.add_argument("--large-files", type=int, default=100_000,
                    help="files in the `large` suite (1000000 for the README figure)")
    ap.add_argument("--scale-files", type=int, default=1_000_000,
                    help="files of 1 KB in the `scale` suite")
    ap.add_argument("--scale-dir", default="/tmp", help="where the `scale` suite builds its tree")
    ap.add_argument("--memory-files", type=int, default=100_000,
                    help="files of 1 KB in the `memory` suite")
    ap.add_argument("--keep-tree", action="store_true", help="keep the `scale` tree for another run")
    ap.add_argument("--shapes", default="",
                    help="comma list of shape numbers (1-based, see SHAPES) to run; all by default")
    ap.add_argument("--size-mb", type=int, default=2048)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--mlsign", default=str(ROOT / "target/release/mlsign"))
    ap.add_argument("--model-signing", default=str(ROOT / ".venv/bin/model_signing"))
    ap.add_argument("--b3sum", default=shutil.which("b3sum") or str(BENCH / "tools/bin/b3sum"))
    ap.add_argument("--kernels", default=str(BENCH / "kernels.json"),
                    help="JSON line from `cargo bench --bench sha256_kernels` (the SHA-256 ceiling)")
    args = ap.parse_args()

    BENCH.mkdir(exist_ok=True)
    suites = set(args.suite.split(","))
    model = BENCH / f"model-{args.size_mb}m-{args.files}"
    small = BENCH / "model-20m"
    total = 0
    if "classic" in suites:
        total = make_model(model, args.size_mb, args.files)
        make_model(small, 20, 4)
    key, pub = BENCH / "bench.pem", BENCH / "bench.pub"
    if not key.exists():
        subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", BENCH / "bench.sec1"], check=True)
        subprocess.run(["openssl", "pkcs8", "-topk8", "-nocrypt", "-in", BENCH / "bench.sec1", "-out", key], check=True)
        subprocess.run(["openssl", "ec", "-in", key, "-pubout", "-out", pub], check=True, stderr=subprocess.DEVNULL)
    ml, oms = args.mlsign, args.model_signing
    if "classic" not in suites:
        if "shapes" in suites:
            shapes(args, key, ml, oms)
        if "incremental" in suites:
            incremental(args, key, ml)
        if "large" in suites:
            large(args, ml, key)
        if "scale" in suites:
            scale(args, key, ml, oms)
        if "memory" in suites:
            memory(args, key, pub, ml, oms)
        return
    sig = lambda name: str(BENCH / name)  # noqa: E731
    files = sorted(str(p) for p in model.iterdir())
    # Bundles the verify rows need.
    subprocess.run([ml, "sign", model, "--key", key, "--bundle", sig("ml.sig"), "--force", "--no-progress"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([ml, "sign", small, "--key", key, "--bundle", sig("ml-small.sig"), "--force", "--no-progress"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([oms, "sign", "key", model, "--private_key", key, "--signature", sig("oms.sig")], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([oms, "sign", "key", small, "--private_key", key, "--signature", sig("oms-small.sig")], check=True, stdout=subprocess.DEVNULL)

    rows = [
        ("mlsign sign (sha256)", [ml, "sign", model, "--key", key, "--bundle", sig("t.sig"), "--force", "--no-progress"]),
        ("mlsign sign (sha256, 1 thread)", [ml, "sign", model, "--key", key, "--bundle", sig("t.sig"), "--force", "--no-progress", "--threads", "1"]),
        ("mlsign verify (sha256)", [ml, "verify", model, "--bundle", sig("ml.sig"), "--key", pub, "--no-progress"]),
        ("model_signing sign key", [oms, "sign", "key", model, "--private_key", key, "--signature", sig("t2.sig")]),
        ("model_signing verify key", [oms, "verify", "key", model, "--signature", sig("oms.sig"), "--public_key", pub]),
        ("openssl dgst -sha256 (1 thread)", ["openssl", "dgst", "-sha256", *files]),
        ("mlsign sign (blake3)", [ml, "sign", model, "--key", key, "--bundle", sig("t3.sig"), "--force", "--no-progress", "--algorithm", "blake3"]),
        ("b3sum", [args.b3sum, *files]),
        ("mlsign verify 20 MB model", [ml, "verify", small, "--bundle", sig("ml-small.sig"), "--key", pub, "--no-progress"]),
        ("model_signing verify 20 MB model", [oms, "verify", "key", small, "--signature", sig("oms-small.sig"), "--public_key", pub]),
    ]
    # Rounds are interleaved (every tool once per round) so a burst of load on this shared
    # machine lands on all tools alike instead of on whichever ran during it.
    for _, cmd in rows:
        run_once(cmd, ROOT)  # warm-up (page cache, lazy loading)
    runs = {name: [] for name, _ in rows}
    for r in range(args.repeat):
        for name, cmd in rows:
            runs[name].append(run_once(cmd, ROOT))
        print(f"  round {r + 1}/{args.repeat} done", file=sys.stderr)
    results = {
        name: (
            statistics.median(x[0] for x in rs),
            statistics.median(x[1] for x in rs),
            max(x[2] for x in rs),
            statistics.median(x[3] for x in rs),
        )
        for name, rs in runs.items()
    }

    def ratio(slow, fast):
        return results[slow][0] / results[fast][0]

    mb = total / 1e6
    print(f"Model: {args.files} files, {total / 2**30:.2f} GiB random data, warm page cache; "
          f"{os.cpu_count()} CPUs; median of {args.repeat}.\n")
    print("| tool | wall s | cpu s | of which sys | MB/s (wall) | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, _ in rows:
        w, c, r, sy = results[name]
        size = 20 * 1024 * 1024 / 1e6 if "20 MB" in name else mb
        print(f"| {name} | {w:.3f} | {c:.2f} | {sy:.2f} | {size / w:.0f} | {r:.1f} |")
    print()
    print("| claim | ratio | target |")
    print("|---|---:|---|")
    print(f"| model_signing sign ÷ mlsign sign (SHA-256) | {ratio('model_signing sign key', 'mlsign sign (sha256)'):.2f}× | ≥ 2.5× |")
    print(f"| model_signing verify ÷ mlsign verify (SHA-256) | {ratio('model_signing verify key', 'mlsign verify (sha256)'):.2f}× | – |")
    print(f"| openssl dgst (1 thread) ÷ mlsign sign (SHA-256) | {ratio('openssl dgst -sha256 (1 thread)', 'mlsign sign (sha256)'):.2f}× | ≥ 1.6× |")
    print(f"| b3sum ÷ mlsign sign (BLAKE3) | {ratio('b3sum', 'mlsign sign (blake3)'):.2f}× | ≥ 1.0× |")
    print(f"| mlsign verify, 20 MB model | {results['mlsign verify 20 MB model'][0] * 1000:.1f} ms | < 20 ms |")
    print(f"| model_signing verify ÷ mlsign verify, 20 MB | {ratio('model_signing verify 20 MB model', 'mlsign verify 20 MB model'):.1f}× | – |")
    print(f"| mlsign peak RSS, 2 GiB sign | {results['mlsign sign (sha256)'][2]:.1f} MiB | < 64 MiB |")
    kpath = pathlib.Path(args.kernels)
    if kpath.exists():
        import json
        k = json.loads(kpath.read_text().strip().splitlines()[-1])
        cores = os.cpu_count() or 1
        peak = k["sha_ni_2_gbps"] or k.get("sha2_gbps") or k["ring_gbps"]
        floor_cpu = total / (peak * 1e9)  # CPU seconds no SHA-256 code can go below on this CPU
        best_wall = floor_cpu / min(cores, args.files)
        oms_wall = results["model_signing sign key"][0]
        print()
        print("SHA-256 ceiling of this CPU (`cargo bench --bench sha256_kernels`, in-memory, CPU time, per core):")
        print(f"sha2 {k.get('sha2_gbps', 0):.2f} GB/s, ring {k['ring_gbps']:.2f} GB/s, SHA-NI one stream {k['sha_ni_1_gbps']:.2f} GB/s, "
              f"SHA-NI two interleaved streams {k['sha_ni_2_gbps']:.2f} GB/s.\n")
        print("| ceiling | value |")
        print("|---|---:|")
        print(f"| least CPU any SHA-256 code needs for this model | {floor_cpu:.2f} s |")
        print(f"| mlsign sign CPU ÷ that floor | {results['mlsign sign (sha256)'][1] / floor_cpu:.2f}× |")
        print(f"| best wall on {min(cores, args.files)} cores at the ceiling, no I/O cost | {best_wall:.3f} s |")
        print(f"| model_signing sign ÷ that best wall (the most any tool could show) | {oms_wall / best_wall:.2f}× |")
    if "shapes" in suites:
        shapes(args, key, ml, oms)
    if "incremental" in suites:
        incremental(args, key, ml)
    if "large" in suites:
        large(args, ml, key)


if __name__ == "__main__":
    main()
