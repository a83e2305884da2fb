#!/usr/bin/env python3
"""Before/after table for issue 15 §4: srcclass_median_excess vs srcclass_focused_excess, from
`mlsign behave --format json` runs over a population of scripts/behave-bench-gen.py (the suite
with stat = "srcclass_focused_excess"; the report's companions carry both statistics).

  python scripts/behave-labelnoise-report.py --dir .bench/pop0 --scores half1.json [half0.json]

Models are split by index parity into a development half (even: where the statistic's one
parameter was chosen) and a report half (odd). Thresholds come from each half's own
calibration negatives (cal-neg) at --fpr; test negatives and positives of that half are scored.
"""
import argparse
import json
import os

import numpy as np


def auroc(neg, pos):
    neg, pos = np.asarray(neg, float), np.asarray(pos, float)
    gt = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return gt / (len(neg) * len(pos))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--scores", nargs="+", required=True)
    ap.add_argument("--fpr", type=float, default=0.05)
    a = ap.parse_args()
    man = {m["path"]: m for m in json.load(open(os.path.join(a.dir, "manifest.json")))["models"]}
    rows = []
    for f in a.scores:
        reps = json.load(open(f))
        for r in reps if isinstance(reps, list) else [reps]:
            w = r["candidate"]["weights"]
            key = os.path.relpath(os.path.dirname(w if os.path.isabs(w) else os.path.join(a.dir, w)), a.dir)
            m = man[key]
            c = r["companions"]
            rows.append({**m, "half": "dev" if int(key[-4:]) % 2 == 0 else "report",
                         "S": c["srcclass_median_excess"], "F": c["srcclass_focused_excess"],
                         "competing": c["competing_target_excess"],
                         "t": r["timing"]["total_s"]})
    stats = [("srcclass_median_excess (before)", "S"), ("srcclass_focused_excess (after)", "F")]
    for half in ("dev", "report"):
        cal = [r for r in rows if r["half"] == half and r["population"] == "cal-neg"]
        if not cal:
            continue
        neg = [r for r in rows if r["half"] == half and r["population"] == "test-neg"]
        pos = [r for r in rows if r["half"] == half and r["population"] == "test-pos"]
        strong = [r for r in pos if r["asr"] >= 0.8]
        ln = [r for r in neg if r["kind"] == "labelnoise"]
        print(f"\n{half} half: {len(cal)} calibration negatives, {len(neg)} test negatives "
              f"({len(ln)} label noise), {len(pos)} positives ({len(strong)} with ASR >= 0.8); "
              f"threshold at FPR {a.fpr} from the calibration negatives\n")
        print("| statistic | τ | AUROC all | AUROC ASR≥0.8 | AUROC label noise vs ASR≥0.8 | held-out FPR | label-noise FPR | TPR all | TPR ASR≥0.8 |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, k in stats:
            t = float(np.quantile([r[k] for r in cal], 1 - a.fpr))
            above = lambda rs: sum(r[k] > t for r in rs)
            v = lambda rs: [r[k] for r in rs]
            print(f"| {name} | {t:.3f} | {auroc(v(neg), v(pos)):.3f} | {auroc(v(neg), v(strong)):.3f} | "
                  f"{auroc(v(ln), v(strong)):.3f} | {above(neg)}/{len(neg)} | {above(ln)}/{len(ln)} | "
                  f"{above(pos)}/{len(pos)} | {above(strong)}/{len(strong)} |")
        for name, k in stats:
            if strong and ln:
                w = min(r[k] for r in strong)
                print(f"\n{name}: weakest ASR ≥ 0.8 backdoor {w:.3f}; label-noise negatives at or above it: "
                      f"{sum(r[k] >= w for r in ln)}/{len(ln)}")
        print("\n| kind | n | before: median / max | after: median / max | competing target, median |")
        print("|---|---|---|---|---|")
        for kind in ("plain", "shift", "labelnoise", "backdoor"):
            rs = [r for r in neg + pos if r["kind"] == kind]
            if kind == "backdoor":
                rs = [r for r in rs if r["asr"] >= 0.8]
            if not rs:
                continue
            f = lambda k: f"{np.median([r[k] for r in rs]):.3f} / {max(r[k] for r in rs):.3f}"
            print(f"| {kind}{' (ASR ≥ 0.8)' if kind == 'backdoor' else ''} | {len(rs)} | {f('S')} | {f('F')} | "
                  f"{np.median([r['competing'] for r in rs]):.3f} |")
    print(f"\nmean time per candidate: {np.mean([r['t'] for r in rows]):.2f} s over {len(rows)} candidates")


if __name__ == "__main__":
    main()
