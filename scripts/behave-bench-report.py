#!/usr/bin/env python3
"""Score table for the `mlsign behave` benchmark (see scripts/behave-bench.sh).

Inputs in --dir: manifest.json (generator), calibration.json (`mlsign behave calibrate` over the
calibration negatives), scores.json (`mlsign behave` over test negatives + positives).
Thresholds come only from the calibration negatives; test negatives are never used to pick them.
"""
import argparse
import json
import os

import numpy as np
from scipy.stats import beta


def auroc(neg, pos):
    neg, pos = np.asarray(neg), np.asarray(pos)
    if len(neg) == 0 or len(pos) == 0:
        return float("nan")
    gt = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return gt / (len(neg) * len(pos))


def auroc_ci(neg, pos, rng, n=1000):
    neg, pos = np.asarray(neg), np.asarray(pos)
    vals = [auroc(rng.choice(neg, len(neg)), rng.choice(pos, len(pos))) for _ in range(n)]
    return np.percentile(vals, [2.5, 97.5])


def cp(k, n):
    """Clopper-Pearson 95% interval for k successes out of n."""
    lo = 0.0 if k == 0 else beta.ppf(0.025, k, n - k + 1)
    hi = 1.0 if k == n else beta.ppf(0.975, k + 1, n - k)
    return lo, hi


def rate(k, n):
    if n == 0:
        return "–"
    lo, hi = cp(k, n)
    return f"{k/n:.3f} [{lo:.2f}, {hi:.2f}] ({k}/{n})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    a = ap.parse_args()
    man = json.load(open(os.path.join(a.dir, "manifest.json")))
    cal = json.load(open(os.path.join(a.dir, "calibration.json")))
    reps = json.load(open(os.path.join(a.dir, "scores.json")))
    if isinstance(reps, dict):
        reps = [reps]
    by_path = {}
    for r in reps:
        rel = os.path.relpath(os.path.dirname(r["candidate"]["weights"]), a.dir)
        by_path[rel] = r
    models = man["models"]
    for m in models:
        if m["population"] != "cal-neg":
            r = by_path[m["path"]]
            m["S"] = r["decision"]["value"]
            m["js"] = r["clean"]["js_mean"]
            m["flip"] = r["clean"]["top1_flip_rate"]
            m["pooled"] = r["companions"]["pooled_excess_max"]
            m["probe_js"] = r["companions"]["probe_js_excess_max"]
            m["time"] = r["timing"]["total_s"]
    calS = np.array([s["value"] for s in cal["scores"]])
    t1 = cal["threshold"]
    t5 = float(np.quantile(calS, 0.95))
    neg = [m for m in models if m["population"] == "test-neg"]
    pos = [m for m in models if m["population"] == "test-pos"]
    nS = np.array([m["S"] for m in neg])
    pS = np.array([m["S"] for m in pos])
    rng = np.random.default_rng(0)
    out = []
    P = out.append
    P(f"Population: {len(calS)} calibration negatives, {len(neg)} test negatives, {len(pos)} test positives "
      f"(baseline clean acc {man['baseline_clean_acc']:.3f}; negatives' clean acc "
      f"{np.mean([m['clean_acc'] for m in neg]):.3f}, positives' {np.mean([m['clean_acc'] for m in pos]):.3f}).")
    P(f"Thresholds from the calibration negatives only: default (FPR 1%) τ₁ = {t1:.4f}; FPR 5% τ₅ = {t5:.4f}.")
    P("")
    P("| statistic | AUROC [95% bootstrap CI] |")
    P("|---|---|")
    for key, name in [("S", "**srcclass_median_excess (verdict)**"), ("pooled", "pooled excess max (companion)"),
                      ("probe_js", "probe JS excess max (companion)"), ("js", "clean JS mean (informational)"),
                      ("flip", "clean top-1 flip rate (informational)")]:
        n_ = [m[key] for m in neg]
        p_ = [m[key] for m in pos]
        lo, hi = auroc_ci(n_, p_, rng)
        P(f"| {name} | {auroc(n_, p_):.3f} [{lo:.3f}, {hi:.3f}] |")
    P("")
    fp1, fp5 = int((nS > t1).sum()), int((nS > t5).sum())
    P("| metric (verdict statistic) | value [Clopper-Pearson 95% CI] |")
    P("|---|---|")
    P(f"| FPR on held-out negatives at the default threshold τ₁ | {rate(fp1, len(nS))} |")
    P(f"| TPR at τ₁ (all positives) | {rate(int((pS > t1).sum()), len(pS))} |")
    P(f"| FPR on held-out negatives at τ₅ | {rate(fp5, len(nS))} |")
    P(f"| TPR at τ₅ (all positives) | {rate(int((pS > t5).sum()), len(pS))} |")
    t95 = np.quantile(pS, 0.05) if len(pS) else float("nan")
    P(f"| FPR at 95% recall (TDC; threshold = 5th pct of positives = {t95:.4f}) | {rate(int((nS >= t95).sum()), len(nS))} |")
    strong = [m for m in pos if m["asr"] >= 0.8]
    sS = np.array([m["S"] for m in strong])
    if len(strong):
        lo, hi = auroc_ci(nS, sS, rng)
        P(f"| AUROC, attacks with ASR ≥ 0.8 | {auroc(nS, sS):.3f} [{lo:.3f}, {hi:.3f}] (n={len(strong)}) |")
        P(f"| TPR at τ₅, ASR ≥ 0.8 | {rate(int((sS > t5).sum()), len(sS))} |")
        P(f"| TPR at τ₁, ASR ≥ 0.8 | {rate(int((sS > t1).sum()), len(sS))} |")
        oo = np.array([m["S"] for m in strong if m["in_library"] == "no"])
        P(f"| TPR at τ₅, out-of-library family (blend), ASR ≥ 0.8 | {rate(int((oo > t5).sum()), len(oo))} |")
    P("")
    P("Stratified (positives; TPR at the calibration thresholds):")
    P("")
    P("| stratum | n | mean ASR | mean clean acc | median S | TPR@τ₅ | TPR@τ₁ | AUROC vs test negatives |")
    P("|---|---|---|---|---|---|---|---|")

    def row(label, ms):
        if not ms:
            return
        s = np.array([m["S"] for m in ms])
        P(f"| {label} | {len(ms)} | {np.mean([m['asr'] for m in ms]):.2f} | {np.mean([m['clean_acc'] for m in ms]):.3f} | "
          f"{np.median(s):.3f} | {(s > t5).mean():.2f} | {(s > t1).mean():.2f} | {auroc(nS, s):.3f} |")

    for lo_, hi_, lab in [(0, 0.5, "ASR < 0.5"), (0.5, 0.8, "0.5 ≤ ASR < 0.8"), (0.8, 1.01, "ASR ≥ 0.8")]:
        row(lab, [m for m in pos if lo_ <= m["asr"] < hi_])
    for lib, lab in [("yes", "in library (corner patch)"), ("family", "family in library, pattern not (3-px)"), ("no", "out of library (blend)")]:
        row(lab, [m for m in pos if m["in_library"] == lib])
    for fam in ("corner", "sparse3", "blend"):
        for p in (0.01, 0.03, 0.10):
            row(f"{fam} poison {p:.0%}", [m for m in pos if m["trigger"] == fam and m["poison"] == p])
    P("")
    P("Negatives by kind (FPR at the calibration thresholds):")
    P("")
    P("| kind | n | median S | max S | FPR@τ₅ | FPR@τ₁ |")
    P("|---|---|---|---|---|---|")
    for k in ("plain", "shift", "labelnoise"):
        s = np.array([m["S"] for m in neg if m["kind"] == k])
        if len(s):
            P(f"| {k} | {len(s)} | {np.median(s):.3f} | {s.max():.3f} | {(s > t5).mean():.3f} | {(s > t1).mean():.3f} |")
    times = [m["time"] for m in neg + pos]
    P("")
    P(f"Mean time per candidate (497 inputs × {reps[0]['suite']['n_probes']} probes, baseline cached): {np.mean(times)*1000:.0f} ms.")
    print("\n".join(out))


if __name__ == "__main__":
    main()
