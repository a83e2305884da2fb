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


def anomaly_index(v, floor=0.0):
    v = np.asarray(v, float)
    med = np.median(v)
    mad = max(np.median(np.abs(v - med)), floor)
    return float((v.max() - med) / (1.4826 * mad + 1e-9))


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
        w = r["candidate"]["weights"]
        # Relative paths in the report are relative to where mlsign ran: the population dir.
        w = w if os.path.isabs(w) else os.path.join(a.dir, w)
        by[os.path.relpath(os.path.dirname(w), a.dir)] = r
    rows = []
    for m in man["models"]:
        r = by.get(m["path"])
        if r is None:
            continue
        sy = r["synthesis"]
        m = dict(m)
        m["S"] = r["decision"]["value"]
        ratios0 = [c["log2_ratio"] for c in sy["classes"]]
        m["Y"] = max(ratios0)
        m["AI"] = anomaly_index(ratios0)
        m["syn_s"] = sy["seconds"]
        m["total_s"] = r["timing"]["total_s"]
        m["probe_s"] = r["timing"]["total_s"] - sy["seconds"]
        m["base_syn_s"] = sy["baseline_seconds"]
        m["base_fwd_s"] = r["timing"]["baseline_forward_s"]
        hw = sy["shape"][1] * sy["shape"][2]
        neg_log_mask = [-np.log2(max(c["mask_l1"] if c["mask_l1"] is not None else hw, 1e-3))
                        for c in sy["classes"]]
        m["AIm"] = anomaly_index(neg_log_mask)
        # MAD floored at 0.25 (log2 units) and 0 unless the top class has a feasible trigger.
        ratios = [c["log2_ratio"] for c in sy["classes"]]
        best = max(sy["classes"], key=lambda c: c["log2_ratio"])
        m["AIf"] = anomaly_index(ratios, floor=0.25) if best["mask_l1"] is not None else 0.0
        # The shipped statistic (synth.rs): the same on −log2(differential mask).
        top = int(np.argmax(neg_log_mask))
        m["V"] = anomaly_index(neg_log_mask, floor=0.25) if sy["classes"][top]["mask_l1"] is not None else 0.0
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
    ln = [m for m in neg if m["kind"] == "labelnoise"]
    out = []
    P = out.append
    P(f"Population: {len(cal)} calibration negatives, {len(neg)} test negatives, {len(pos)} test positives "
      f"({len(strong)} with ASR ≥ 0.8). Thresholds at FPR {f} from the calibration negatives only.")
    P("")
    names = {
        "S": "probe statistic S (srcclass_median_excess)",
        "Y": "synthesis: max log2(natural / differential mask)",
        "AI": "synthesis: MAD anomaly index of log2 ratios across classes",
        "AIm": "synthesis: MAD anomaly index of −log2(differential mask) (no natural reference)",
        "AIf": "synthesis: anomaly index of log2 ratios, MAD ≥ 0.25, 0 unless the top class is feasible",
        "V": "**synthesis statistic shipped**: anomaly index of −log2(differential mask), MAD ≥ 0.25, 0 unless the top class is feasible",
    }
    P("| statistic / rule | AUROC all | AUROC ASR≥0.8 | TPR all | TPR ASR≥0.8 | held-out FPR | FPR label-noise |")
    P("|---|---|---|---|---|---|---|")
    def line(name, key, rule):
        P(f"| {name} | {auroc([m[key] for m in neg], [m[key] for m in pos]):.3f} | "
          f"{auroc([m[key] for m in neg], [m[key] for m in strong]):.3f} | "
          f"{sum(map(rule, pos))}/{len(pos)} | {sum(map(rule, strong))}/{len(strong)} | "
          f"{sum(map(rule, neg))}/{len(neg)} | {sum(map(rule, ln))}/{len(ln)} |")
    rules = {}
    for key, name in names.items():
        t = q(key, 1 - f)
        rules[key] = (lambda m, t=t, key=key: m[key] > t)
        line(f"{name}, alone", key, rules[key])
    FS = ecdf([m["S"] for m in cal])
    for key in ["Y", "AIm", "V"]:
        ts, ty = q("S", 1 - f / 2), q(key, 1 - f / 2)
        F = ecdf([m[key] for m in cal])
        ck = "C_" + key
        for m in rows:
            m[ck] = float(max(FS(m["S"]), F(m[key])) + 1e-6 * (m["S"] + m[key]))
        rules["S|" + key] = (lambda m, ts=ts, ty=ty, key=key: m["S"] > ts or m[key] > ty)
        line(f"S or {key}, each at FPR/2 (Bonferroni)", ck, rules["S|" + key])
        tc = q(ck, 1 - f)
        line(f"max calibrated rank of S, {key}", ck, lambda m, tc=tc, ck=ck: m[ck] > tc)
    P("")
    P("Per trigger family: detected (of which ASR ≥ 0.8), each rule at its calibrated threshold:")
    P("")
    keys = list(rules)
    P("| trigger | n | ASR≥0.8 | " + " | ".join(keys) + " | top class = target |")
    P("|---|---|---|" + "---|" * len(keys) + "---|")
    for trig in sorted({m["trigger"] for m in pos}):
        ps = [m for m in pos if m["trigger"] == trig]
        st = [m for m in ps if m["asr"] >= 0.8]
        cells = " | ".join(f"{sum(map(rules[k], ps))} ({sum(map(rules[k], st))})" for k in keys)
        P(f"| {trig} | {len(ps)} | {len(st)} | {cells} | "
          f"{sum(1 for m in ps if m['Y_class'] == m['target'])}/{len(ps)} |")
    P("")
    P("Negatives by kind (median / max of S and Y):")
    P("")
    P("| kind | n | " + " | ".join(f"{k} median / max" for k in names) + " |")
    P("|---|---|" + "---|" * len(names))
    for kind in sorted({m["kind"] for m in neg}):
        ns = [m for m in neg if m["kind"] == kind]
        cells = " | ".join(f"{np.median([m[k] for m in ns]):.2f} / {max(m[k] for m in ns):.2f}" for k in names)
        P(f"| {kind} | {len(ns)} | {cells} |")
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
