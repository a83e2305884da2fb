#!/usr/bin/env python3
"""Trigger synthesis vs the probe statistic on the `mlsign behave` benchmark population.

Input: a population from scripts/behave-bench-gen.py (--dir, with manifest.json) and the JSON
reports of ONE `mlsign behave --format json` run over its cal-neg, test-neg and test-pos
candidates with a suite that has a [synthesis] table (--scores). Thresholds come only from the
calibration negatives. Prints AUROC / TPR / held-out FPR for: the probe statistic alone,
synthesis alone, and two combinations (Bonferroni OR, max of calibrated empirical p-values),
plus the cost. See scripts/behave-synth-bench.sh.
"""
import argparse
import json
import os

import numpy as np


def auroc(neg, pos):
    neg, pos = np.asarray(neg, float), np.asarray(pos, float)
    if len(neg) == 0 or len(pos) == 0:
        return float("nan")
    gt = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return gt / (len(neg) * len(pos))


def ecdf(cal):
    cal = np.sort(np.asarray(cal, float))
    return lambda v: np.searchsorted(cal, v, side="right") / len(cal)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--scores", required=True)
    ap.add_argument("--fpr", type=float, default=0.05)
    a = ap.parse_args()
    man = json.load(open(os.path.join(a.dir, "manifest.json")))
    reps = json.load(open(a.scores))
    if isinstance(reps, dict):
        reps = [reps]
    by = {}
    for r in reps:
        by[os.path.relpath(os.path.dirname(r["candidate"]["weights"]), a.dir)] = r
    rows = []
    for m in man["models"]:
        r = by.get(m["path"])
        if r is None:
            continue
        sy = r["synthesis"]
        m = dict(m)
        m["S"] = r["decision"]["value"]
        m["Y"] = sy["value"]
        m["AI"] = sy["anomaly_index"]
        m["syn_s"] = sy["seconds"]
        m["total_s"] = r["timing"]["total_s"]
        m["probe_s"] = r["timing"]["total_s"] - sy["seconds"]
        m["base_syn_s"] = sy["baseline_seconds"]
        m["base_fwd_s"] = r["timing"]["baseline_forward_s"]
        top = [c for c in sy["classes"] if c["class"] == sy["top_class"]]
        m["Y_class"] = sy["top_class"]
        m["Y_mask"] = top[0]["mask_l1"] if top else None
        m["Y_cflip"] = top[0]["candidate_flip"] if top else None
        m["Y_bflip"] = top[0]["baseline_flip"] if top else None
        rows.append(m)
    cal = [m for m in rows if m["population"] == "cal-neg"]
    neg = [m for m in rows if m["population"] == "test-neg"]
    pos = [m for m in rows if m["population"] == "test-pos"]
    strong = [m for m in pos if m["asr"] >= 0.8]
    f = a.fpr
    q = lambda key, qq: float(np.quantile([m[key] for m in cal], qq))
    FS, FY = ecdf([m["S"] for m in cal]), ecdf([m["Y"] for m in cal])
    for m in rows:
        # Combined score: the larger calibrated empirical p-value rank of the two statistics.
        m["C"] = float(max(FS(m["S"]), FY(m["Y"])) + 1e-6 * (m["S"] + m["Y"]))
    tC = q("C", 1 - f)
    rules = {
        "probe statistic S alone": lambda m, t=q("S", 1 - f): m["S"] > t,
        "synthesis Y alone": lambda m, t=q("Y", 1 - f): m["Y"] > t,
        "S or Y, each at FPR/2 (Bonferroni; shipped rule)": lambda m, ts=q("S", 1 - f / 2), ty=q("Y", 1 - f / 2): m["S"] > ts or m["Y"] > ty,
        "max calibrated rank of S, Y": lambda m: m["C"] > tC,
    }
    scores = {
        "probe statistic S alone": "S",
        "synthesis Y alone": "Y",
        "S or Y, each at FPR/2 (Bonferroni; shipped rule)": "C",
        "max calibrated rank of S, Y": "C",
    }
    out = []
    P = out.append
    P(f"Population: {len(cal)} calibration negatives, {len(neg)} test negatives, {len(pos)} test positives "
      f"({len(strong)} with ASR ≥ 0.8). Thresholds at FPR {f} from the calibration negatives only.")
    P("")
    P("| rule | AUROC all | AUROC ASR≥0.8 | TPR all | TPR ASR≥0.8 | held-out FPR | FPR label-noise |")
    P("|---|---|---|---|---|---|---|")
    ln = [m for m in neg if m["kind"] == "labelnoise"]
    for name, rule in rules.items():
        k = scores[name]
        P(f"| {name} | {auroc([m[k] for m in neg], [m[k] for m in pos]):.3f} | "
          f"{auroc([m[k] for m in neg], [m[k] for m in strong]):.3f} | "
          f"{sum(map(rule, pos))}/{len(pos)} | {sum(map(rule, strong))}/{len(strong)} | "
          f"{sum(map(rule, neg))}/{len(neg)} | {sum(map(rule, ln))}/{len(ln)} |")
    P(f"| anomaly index (information) | {auroc([m['AI'] for m in neg], [m['AI'] for m in pos]):.3f} | "
      f"{auroc([m['AI'] for m in neg], [m['AI'] for m in strong]):.3f} | – | – | – | – |")
    P("")
    P("Per trigger family (TPR at FPR/2 each, S or Y; S alone at FPR; Y alone at FPR):")
    P("")
    P("| trigger | n | ASR≥0.8 | S | Y | S or Y | top class = target (Y) |")
    P("|---|---|---|---|---|---|---|")
    for trig in sorted({m["trigger"] for m in pos}):
        ps = [m for m in pos if m["trigger"] == trig]
        st = [m for m in ps if m["asr"] >= 0.8]
        r = list(rules.values())
        P(f"| {trig} | {len(ps)} | {len(st)} | {sum(map(r[0], ps))} | {sum(map(r[1], ps))} | {sum(map(r[2], ps))} | "
          f"{sum(1 for m in ps if m['Y_class'] == m['target'])}/{len(ps)} |")
    P("")
    P("Negatives by kind (median / max of S and Y):")
    P("")
    P("| kind | n | S median | S max | Y median | Y max |")
    P("|---|---|---|---|---|---|")
    for kind in sorted({m["kind"] for m in neg}):
        ns = [m for m in neg if m["kind"] == kind]
        S = [m["S"] for m in ns]
        Y = [m["Y"] for m in ns]
        P(f"| {kind} | {len(ns)} | {np.median(S):.3f} | {max(S):.3f} | {np.median(Y):.2f} | {max(Y):.2f} |")
    P("")
    ps = np.mean([m["probe_s"] for m in rows])
    ys = np.mean([m["syn_s"] for m in rows])
    P(f"Cost per candidate (mean over {len(rows)}): probe suite {ps:.3f} s, synthesis {ys:.3f} s "
      f"(ratio {ys / ps:.1f}×); once per run: baseline forward passes {rows[0]['base_fwd_s']:.3f} s, "
      f"baseline natural-trigger search {rows[0]['base_syn_s']:.3f} s.")
    print("\n".join(out))
    json.dump(rows, open(os.path.splitext(a.scores)[0] + "-rows.json", "w"), indent=0)


if __name__ == "__main__":
    main()
