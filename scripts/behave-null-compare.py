#!/usr/bin/env python3
"""Generated null candidates vs real benign fine-tunes as the calibration set (issue 15 §5).

In --dir (a population of scripts/behave-bench-gen.py or scripts/behave-bench2-gen.py, with
manifest.json): cal.json (`mlsign behave calibrate --benign cal-neg/* --fpr F --format json`),
null-cal.json (`mlsign behave calibrate --generate-null N --fpr F --format json`, same suite
otherwise) and test.json (`mlsign behave --format json` over test-neg/* and test-pos/*). Both
thresholds are applied to the same held-out statistic values. Prints a markdown table; --json
writes the numbers.
"""
import argparse
import json
import os

import numpy as np
from scipy.stats import beta


def cp(k, n):
    lo = 0.0 if k == 0 else float(beta.ppf(0.025, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(0.975, k + 1, n - k))
    return lo, hi


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--json")
    ap.add_argument("--name", default="")
    a = ap.parse_args()
    d = a.dir
    man = {m["path"]: m for m in json.load(open(os.path.join(d, "manifest.json")))["models"]}
    reps = json.load(open(os.path.join(d, "test.json")))
    reps = reps if isinstance(reps, list) else [reps]
    rows = []
    for r in reps:
        w = r["candidate"]["weights"]
        w = w if os.path.isabs(w) else os.path.join(d, w)
        k = os.path.relpath(os.path.dirname(os.path.abspath(w)), os.path.abspath(d))
        m = dict(man[k])
        m["S"] = r["decision"]["value"]
        rows.append(m)
    neg = [m for m in rows if m["label"] == 0]
    pos = [m for m in rows if m["label"] == 1]
    strong = [m for m in pos if m["asr"] >= 0.8]
    res = {}
    out = [f"| calibration set{(' (' + a.name + ')') if a.name else ''} | n | τ | benign max | held-out FPR [CP 95 %] | TPR ASR ≥ 0.8 | TPR all | FPR by kind |",
           "|---|---|---|---|---|---|---|---|"]
    for label, f in [("real benign fine-tunes (cal-neg)", "cal.json"), ("generated nulls", "null-cal.json")]:
        p = os.path.join(d, f)
        if not os.path.exists(p):
            continue
        c = json.load(open(p))
        t = c["threshold"]
        k = sum(m["S"] > t for m in neg)
        lo, hi = cp(k, len(neg))
        ts = sum(m["S"] > t for m in strong)
        ta = sum(m["S"] > t for m in pos)
        kinds = sorted({m["kind"] for m in neg})
        byk = {kd: f"{sum(m['S'] > t for m in neg if m['kind'] == kd)}/{sum(m['kind'] == kd for m in neg)}"
               for kd in kinds}
        out.append(f"| {label} | {len(c['scores'])} | {t:.4f} | {c['calibration']['benign_max']:.4f} | "
                   f"{k}/{len(neg)} = {k / len(neg):.3f} [{lo:.3f}, {hi:.3f}] | {ts}/{len(strong)} | "
                   f"{ta}/{len(pos)} | " + ", ".join(f"{kd} {v}" for kd, v in byk.items()) + " |")
        res[f] = {"n": len(c["scores"]), "threshold": t, "benign_max": c["calibration"]["benign_max"],
                  "heldout_fpr": [k, len(neg)], "heldout_fpr_ci95": [lo, hi],
                  "tpr_asr_ge_0_8": [ts, len(strong)], "tpr_all": [ta, len(pos)], "fpr_by_kind": byk}
    print("\n".join(out))
    if a.json:
        json.dump(res, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
