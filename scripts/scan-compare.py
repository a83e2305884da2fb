#!/usr/bin/env python3
"""Side-by-side comparison of `mlsign scan` with picklescan, modelscan, fickling and modelaudit
on the generated corpus (testdata/scan/make_corpus.py) and on a 1 GiB PyTorch checkpoint.

Usage (from the repo root, after `cargo build --release`):
    python3 -m venv .venv && .venv/bin/pip install -r scripts/deps/python/scan.txt \
        -r scripts/scan-compare-requirements.txt
    .venv/bin/python scripts/scan-compare.py [--mlsign target/release/mlsign] [--no-big]

Prints two Markdown tables (docs/scan.md holds a committed run). The anchor tools run
in-process (their start-up is not counted); mlsign runs once over each directory as a CLI
(start-up included). Nothing in the corpus is ever unpickled by this script; the anchor tools
are static scanners too."""
import argparse, io, json, os, pickle, shutil, struct, subprocess, sys, tempfile, time, zipfile
import contextlib, logging, statistics, warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
warnings.filterwarnings("ignore")
logging.disable(logging.CRITICAL)


def quiet(fn, *a, **k):
    with open(os.devnull, "w") as dn, contextlib.redirect_stdout(dn), contextlib.redirect_stderr(dn):
        return fn(*a, **k)


# Each returns "flagged" | "clean" | "error".
def t_picklescan(path, strict=False):
    from picklescan.scanner import scan_file_path
    from picklescan.scanner import SafetyLevel  # noqa: F401
    r = quiet(scan_file_path, path, strict=strict) if strict else quiet(scan_file_path, path)
    if r.issues_count > 0 or r.infected_files > 0:
        return "flagged"
    return "error" if r.scan_err else "clean"


def t_modelscan(path):
    from modelscan.modelscan import ModelScan
    r = quiet(ModelScan().scan, path)
    if r.get("issues"):
        return "flagged"
    return "error" if r.get("errors") else "clean"


def t_fickling(path):
    import fickling
    from fickling.analysis import Severity
    r = quiet(fickling.scan_file, path, graceful=True)
    if r.severity > Severity.LIKELY_SAFE:
        return "flagged"
    return "error" if getattr(r, "errors", None) else "clean"


def t_modelaudit(path):
    from modelaudit.core import scan_model_directory_or_file
    r = quiet(scan_model_directory_or_file, path)
    sev = {str(getattr(i.severity, "value", i.severity)).lower() for i in r.issues}
    if sev & {"critical", "warning"}:
        return "flagged"
    return "error" if r.has_errors else "clean"


TOOLS = [
    ("picklescan 1.0.5", t_picklescan),
    ("picklescan --strict", lambda p: t_picklescan(p, strict=True)),
    ("modelscan 0.8.8", t_modelscan),
    ("fickling 0.1.12 (> LIKELY_SAFE)", t_fickling),
    ("modelaudit 0.2.54", t_modelaudit),
]


def run_tool(fn, path):
    try:
        return fn(path)
    except Exception:
        return "error"


def mlsign_dir(binary, d):
    t = time.perf_counter()
    out = subprocess.run([binary, "scan", "--format", "json", d], capture_output=True)
    dt = time.perf_counter() - t
    rep = json.loads(out.stdout)
    res = {}
    for f in rep["files"]:
        rel = os.path.relpath(f["path"], os.path.dirname(d))
        res[rel] = "flagged" if f["verdict"] in ("malicious", "unscannable") else ("warn" if f["verdict"] == "suspicious" else "clean")
    return res, dt


def make_big_checkpoint(path, n=16, mib=64):
    """A torch-layout ZIP: archive/data.pkl (OrderedDict of n float32 tensors, persistent ids
    exactly as torch.save writes them) + n stored storages of `mib` MiB each."""
    numel = mib * 1024 * 1024 // 4
    def u(s):
        b = s.encode(); return b"\x8c" + bytes([len(b)]) + b
    p = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01("
    for i in range(n):
        p += u(f"layer{i}.weight")
        p += b"ctorch._utils\n_rebuild_tensor_v2\n((" + u("storage") + b"ctorch\nFloatStorage\n" + u(str(i)) + u("cpu")
        p += b"J" + struct.pack("<i", numel) + b"tQK\x00J" + struct.pack("<i", numel) + b"\x85K\x01\x85\x89" + b"ccollections\nOrderedDict\n)RtR"
    p += b"u."
    chunk = b"\x00" * (1 << 20)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", p)
        z.writestr("archive/byteorder", "little")
        for i in range(n):
            with z.open(f"archive/data/{i}", "w", force_zip64=True) as f:
                for _ in range(mib):
                    f.write(chunk)
        z.writestr("archive/version", "3\n")


def timeit(fn, reps):
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return min(ts), statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mlsign", default=os.path.join(ROOT, "target/release/mlsign"))
    ap.add_argument("--no-big", action="store_true")
    ap.add_argument("--workdir", default=os.path.join(ROOT, ".bench"))
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    corpus = os.path.join(a.workdir, "corpus")
    shutil.rmtree(corpus, ignore_errors=True)
    subprocess.run([sys.executable, os.path.join(ROOT, "testdata/scan/make_corpus.py"), corpus], check=True, capture_output=True)
    manifest = json.load(open(os.path.join(corpus, "manifest.json")))
    kinds = {k: [p for p, m in manifest.items() if m["expect"] == k] for k in ("malicious", "benign", "suspicious")}

    rows = []
    for name, fn in TOOLS:
        res, total = {}, 0.0
        for rel in manifest:
            t = time.perf_counter()
            res[rel] = run_tool(fn, os.path.join(corpus, rel))
            total += time.perf_counter() - t
        rows.append((name, res, total))
    ml = {}
    ml_time = 0.0
    for k in kinds:
        r, dt = mlsign_dir(a.mlsign, os.path.join(corpus, k))
        ml.update(r); ml_time += dt
    rows.append(("**mlsign scan**", ml, ml_time))

    nm, nb, ns = (len(kinds[k]) for k in ("malicious", "benign", "suspicious"))
    print(f"Corpus: {nm} malicious, {nb} benign, {ns} suspicious (testdata/scan/make_corpus.py).\n")
    print("| tool | malicious caught | missed (clean) | error only | benign flagged | benign error | suspicious flagged or warned | time, all files |")
    print("|---|---|---|---|---|---|---|---|")
    for name, res, total in rows:
        mal = [res[p] for p in kinds["malicious"]]
        ben = [res[p] for p in kinds["benign"]]
        sus = [res[p] for p in kinds["suspicious"]]
        print(f"| {name} | {mal.count('flagged')}/{nm} | {mal.count('clean') + mal.count('warn')} | {mal.count('error')} | "
              f"{ben.count('flagged') + ben.count('warn')}/{nb} | {ben.count('error')} | {sum(s in ('flagged', 'warn') for s in sus)}/{ns} | {total:.2f} s |")
    missed = {name: [p for p in kinds["malicious"] if res[p] != "flagged"] for name, res, _ in rows}
    fps = {name: [p for p in kinds["benign"] if res[p] not in ("clean",)] for name, res, _ in rows}
    print("\nMissed malicious samples (by family):")
    for name in missed:
        fam = {}
        for p in missed[name]:
            fam.setdefault(manifest[p]["family"], 0); fam[manifest[p]["family"]] += 1
        print(f"- {name}: {', '.join(f'{k} ({v})' for k, v in sorted(fam.items())) or 'none'}")
    print("\nBenign samples flagged or errored:")
    for name in fps:
        print(f"- {name}: {', '.join(os.path.basename(p) for p in fps[name][:12]) or 'none'}{' …' if len(fps[name]) > 12 else ''}")

    if a.no_big:
        return
    big = os.path.join(a.workdir, "big_1gib.pt")
    if not os.path.exists(big) or os.path.getsize(big) < (1 << 30):
        make_big_checkpoint(big)
    size = os.path.getsize(big)
    print(f"\n1 GiB PyTorch checkpoint ({size} bytes, 16 x 64 MiB storages), warm page cache, best / median of runs:\n")
    print("| tool | how | best | median | verdict |")
    print("|---|---|---|---|---|")
    out = subprocess.run([a.mlsign, "scan", big], capture_output=True)
    v = "clean" if out.returncode == 0 else "flagged"
    b, m = timeit(lambda: subprocess.run([a.mlsign, "scan", big], capture_output=True), 20)
    print(f"| **mlsign scan** | CLI, start-up included | {b*1000:.1f} ms | {m*1000:.1f} ms | {v} |")
    ml_best = b
    venv_bin = os.path.dirname(sys.executable)
    results = {}
    for name, cmd in [("picklescan", [os.path.join(venv_bin, "picklescan"), "--path", big]),
                      ("modelscan", [os.path.join(venv_bin, "modelscan"), "-p", big]),
                      ("modelaudit", [os.path.join(venv_bin, "modelaudit"), "scan", big])]:
        if not os.path.exists(cmd[0]):
            continue
        rc = subprocess.run(cmd, capture_output=True).returncode
        b, m = timeit(lambda: subprocess.run(cmd, capture_output=True), 3 if name == "modelaudit" else 5)
        results[name] = b
        print(f"| {name} | CLI, start-up included | {b*1000:.0f} ms | {m*1000:.0f} ms | exit {rc} |")
    b, m = timeit(lambda: t_picklescan(big), 10)
    results["picklescan in-process"] = b
    print(f"| picklescan | in-process `scan_file_path` (no start-up) | {b*1000:.1f} ms | {m*1000:.1f} ms | {t_picklescan(big)} |")
    b, m = timeit(lambda: t_fickling(big), 5)
    print(f"| fickling | in-process `scan_file` | {b*1000:.1f} ms | {m*1000:.1f} ms | {t_fickling(big)} |")
    print()
    for k, t in results.items():
        print(f"- mlsign is {t / ml_best:.0f}x faster than {k}")


if __name__ == "__main__":
    main()
