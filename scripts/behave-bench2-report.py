#!/usr/bin/env python3
"""Report for the second benchmark population (scripts/behave-bench2.sh; issue 15 §6).

Inputs (all in --dir): manifest.json (scripts/behave-bench2-gen.py), cal.json (`mlsign behave
calibrate --fpr F --format json` over the calibration negatives only: the threshold) and
test.json (`mlsign behave --format json` over the test negatives and positives with the
calibrated suite). Optionally syn-cal.json / syn-test.json: the same two runs with trigger
synthesis, on whatever subset they covered. Thresholds come only from the calibration runs.
Prints markdown and writes --json (the numbers, for docs/behave-bench2-results.json).
"""
import argparse
import json
import os

import numpy as np
from scipy.stats import beta


def cp(k, n, conf=0.95):
    a = 1 - conf
    lo = 0.0 if k == 0 else float(beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


def auroc(neg, pos):
    neg, pos = np.asarray(neg, float), np.asarray(pos, float)
    if len(neg) == 0 or len(pos) == 0:
        return float("nan")
    return float(((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum())
                 / (len(neg) * len(pos)))


def boot_ci(neg, pos, n=2000, seed=0):
    r = np.random.default_rng(seed)
    neg, pos = np.asarray(neg, float), np.asarray(pos, float)
    if len(neg) == 0 or len(pos) == 0:
        return float("nan"), float("nan")
    v = [auroc(neg[r.integers(0, len(neg), len(neg))], pos[r.integers(0, len(pos), len(pos))])
         for _ in range(n)]
    return float(np.quantile(v, 0.025)), float(np.quantile(v, 0.975))


MAD_FLOOR = 0.25  # src/behave/synth.rs


def anomaly_index(v, floor):
    v = np.asarray(v, float)
    med = float(np.median(v))
    mad = max(float(np.median(np.abs(v - med))), floor)
    return (float(v.max()) - med) / (1.4826 * mad + 1e-9)


def synth_stat(sy):
    """The synthesis statistic of src/behave/synth.rs `statistic` (evidence rule: a class's
    differential mask counts only when smaller than the baseline's natural one), recomputed from
    a report's per-class results; returns (value, top class)."""
    full = float(sy["shape"][1] * sy["shape"][2])

    def ev(c):
        m = c["mask_l1"]
        nat = c["natural_mask_l1"] if c["natural_mask_l1"] is not None else full
        return m if (m is not None and m < nat) else None

    cls = sy["classes"]
    if not cls:
        return 0.0, None
    small = [-np.log2(max(ev(c) if ev(c) is not None else full, 1e-3)) for c in cls]
    i = len(small) - 1 - int(np.argmax(small[::-1]))  # the last maximum, as Rust's max_by
    if ev(cls[i]) is None:
        return 0.0, cls[i]["class"]
    return anomaly_index(small, MAD_FLOOR), cls[i]["class"]


def key_of(path, base):
    p = path if os.path.isabs(path) else os.path.join(base, path)
    return os.path.relpath(os.path.dirname(os.path.abspath(p)), os.path.abspath(base))


def load_reports(path, base):
    reps = json.load(open(path))
    if isinstance(reps, dict):
        reps = [reps]
    return {key_of(r["candidate"]["weights"], base): r for r in reps}


def rate(k, n):
    lo, hi = cp(k, n)
    return {"k": k, "n": n, "rate": k / n if n else float("nan"), "ci95": [lo, hi]}


def fmt_rate(d):
    return f"{d['k']}/{d['n']} = {d['rate']:.3f} [{d['ci95'][0]:.3f}, {d['ci95'][1]:.3f}]"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--json", help="write the numbers here")
    a = ap.parse_args()
    d = a.dir
    man = json.load(open(os.path.join(d, "manifest.json")))
    models = {m["path"]: m for m in man["models"]}
    out, res = [], {"population": {}, "rules": {}}
    P = out.append

    cal = json.load(open(os.path.join(d, "cal.json")))
    test = load_reports(os.path.join(d, "test.json"), d)
    thr = cal["threshold"]
    rows = []
    for k, r in test.items():
        m = dict(models[k])
        m["S"] = r["decision"]["value"]
        m["S_v1"] = r["companions"]["srcclass_median_excess"]
        # The calibrated threshold applied to the statistic (the same verdict as a run with the
        # calibrated suite; the test run may use the uncalibrated suite in parallel to calibrate).
        m["flag_S"] = r["decision"]["value"] > thr
        m["s"] = r["timing"]["total_s"]
        m["top_target"] = (r["top_candidates"] or [{}])[0].get("target_class")
        rows.append(m)
    neg = [m for m in rows if m["label"] == 0]
    pos = [m for m in rows if m["label"] == 1]
    strong = [m for m in pos if m["asr"] >= 0.8]
    ncal = len(cal["scores"])
    res["population"] = {
        "dataset": man["dataset"], "baseline_clean_acc": man["baseline_clean_acc"],
        "calibration_negatives": ncal, "test_negatives": len(neg), "test_positives": len(pos),
        "positives_asr_ge_0_8": len(strong),
        "negatives_clean_acc_mean": float(np.mean([m["clean_acc"] for m in neg])),
        "positives_clean_acc_mean": float(np.mean([m["clean_acc"] for m in pos])),
    }
    P(f"Population ({man['dataset']}): baseline clean accuracy {man['baseline_clean_acc']:.3f}; "
      f"{ncal} calibration negatives, {len(neg)} test negatives, {len(pos)} test positives "
      f"({len(strong)} with ASR ≥ 0.8). Threshold from `mlsign behave calibrate --fpr {cal['calibration']['fpr']}` "
      f"on the calibration negatives only: τ = {thr:.4f} (in-sample FPR {cal['in_sample_fpr']:.3f}, "
      f"95 % upper bound {cal['fpr_upper_bound']:.3f}).")
    P("")

    def rule_row(name, key, flag, sub_neg, sub_pos, sub_strong, secs):
        r = {
            "auroc_asr_ge_0_8": auroc([m[key] for m in sub_neg], [m[key] for m in sub_strong]),
            "auroc_asr_ge_0_8_ci95": boot_ci([m[key] for m in sub_neg], [m[key] for m in sub_strong]),
            "auroc_all": auroc([m[key] for m in sub_neg], [m[key] for m in sub_pos]),
            "auroc_all_ci95": boot_ci([m[key] for m in sub_neg], [m[key] for m in sub_pos]),
            "tpr_asr_ge_0_8": rate(sum(map(flag, sub_strong)), len(sub_strong)),
            "tpr_all": rate(sum(map(flag, sub_pos)), len(sub_pos)),
            "heldout_fpr": rate(sum(map(flag, sub_neg)), len(sub_neg)),
            "seconds_per_candidate": secs,
        }
        res["rules"][name] = r
        P(f"| {name} | {r['auroc_asr_ge_0_8']:.3f} [{r['auroc_asr_ge_0_8_ci95'][0]:.3f}, "
          f"{r['auroc_asr_ge_0_8_ci95'][1]:.3f}] | {r['auroc_all']:.3f} [{r['auroc_all_ci95'][0]:.3f}, "
          f"{r['auroc_all_ci95'][1]:.3f}] | {fmt_rate(r['tpr_asr_ge_0_8'])} | {fmt_rate(r['tpr_all'])} | "
          f"{fmt_rate(r['heldout_fpr'])} | {secs:.2f} |")

    hdr = ("| statistic / rule | AUROC ASR ≥ 0.8 [95 % CI] | AUROC all | TPR ASR ≥ 0.8 [CP 95 %] | TPR all | "
           "held-out FPR | s / candidate |")
    P(hdr)
    P("|---|---|---|---|---|---|---|")
    secs = float(np.mean([m["s"] for m in rows]))
    rule_row("srcclass_focused_excess (shipped default), calibrated", "S", lambda m: m["flag_S"], neg, pos, strong, secs)
    # `calibrate --bounded`'s rule applied to the same calibration scores (src/behave/calibrate.rs
    # `choose`): the largest k with the exact one-sided 95 % upper bound ≤ FPR, threshold = the
    # (k+1)-th largest calibration score. Re-running calibrate would only re-score the same models;
    # when cal-bounded.json (a real `calibrate --bounded` run) exists, it must agree.
    fpr = cal["calibration"]["fpr"]
    vals = sorted((s["value"] for s in cal["scores"]), reverse=True)
    kb = None
    for k in range(len(vals)):
        if float(beta.ppf(0.95, k + 1, len(vals) - k)) <= fpr:
            kb = k
        else:
            break
    if kb is not None:
        bthr = vals[kb]
        bpath = os.path.join(d, "cal-bounded.json")
        if os.path.exists(bpath):
            real = json.load(open(bpath))["threshold"]
            assert abs(real - bthr) < 1e-12, f"calibrate --bounded gave {real}, the rule here {bthr}"
        for m in rows:
            m["flag_Sb"] = m["S"] > bthr
        rule_row(f"the same, `calibrate --bounded` rule (τ = {bthr:.4f}, {kb} calibration models above)", "S",
                 lambda m: m["flag_Sb"], neg, pos, strong, secs)
        res["calibration_bounded"] = {"threshold": bthr, "exceedances": kb,
                                      "fpr_upper_bound": float(beta.ppf(0.95, kb + 1, len(vals) - kb))}
    P("")
    P(f"Companion `srcclass_median_excess` (v1, no threshold here): AUROC ASR ≥ 0.8 "
      f"{auroc([m['S_v1'] for m in neg], [m['S_v1'] for m in strong]):.3f}, all "
      f"{auroc([m['S_v1'] for m in neg], [m['S_v1'] for m in pos]):.3f}.")
    res["companion_v1_auroc"] = {"asr_ge_0_8": auroc([m['S_v1'] for m in neg], [m['S_v1'] for m in strong]),
                                 "all": auroc([m['S_v1'] for m in neg], [m['S_v1'] for m in pos])}

    syn = None
    has2 = os.path.exists(os.path.join(d, "syn-cal-full.json"))
    if has2 and not os.path.exists(os.path.join(d, "syn-cal.json")):
        # No `calibrate` run with synthesis, only full reports of the calibration negatives
        # (`mlsign behave --format json`, suite-syn.toml uncalibrated): thresholds by calibrate's
        # quantile rule (type 7 at 1 − FPR/2, floor 0) from those reports, verdicts from them.
        cf = load_reports(os.path.join(d, "syn-cal-full.json"), d)
        fe = cal["calibration"]["fpr"] / 2
        q = lambda v: max(float(np.quantile(v, 1 - fe)), 0.0)
        syn = {"threshold": q([r["decision"]["value"] for r in cf.values()]),
               "synthesis": {"threshold": q([r["synthesis"]["value"] for r in cf.values()]),
                             "calibration": {"fpr": fe}},
               "scores": list(cf), "from_full_reports": True}
    elif os.path.exists(os.path.join(d, "syn-cal.json")):
        syn = json.load(open(os.path.join(d, "syn-cal.json")))
    if syn is not None and os.path.exists(os.path.join(d, "syn-test.json")):
        st = load_reports(os.path.join(d, "syn-test.json"), d)
        for m in rows:
            r = st.get(m["path"])
            m["has_syn"] = r is not None
            if r is None:
                continue
            sy = r["synthesis"]
            m["Y"] = sy["value"]
            m["flag_Y"] = sy["flagged"]
            m["flag_SY"] = r["verdict"] == "flagged"
            m["S2"] = r["decision"]["value"]
            m["flag_S2"] = r["decision"]["flagged"]
            if syn.get("from_full_reports"):
                m["flag_S2"] = m["S2"] > syn["threshold"]
                m["flag_Y"] = m["Y"] > syn["synthesis"]["threshold"]
                m["flag_SY"] = m["flag_S2"] or m["flag_Y"]
            m["Y_class"] = sy["top_class"]
            m["syn_s"] = sy["seconds"]
            m["probe_s"] = r["timing"]["total_s"] - sy["seconds"]
            m["base_syn_s"] = sy["baseline_seconds"]
            m["not_searched"] = len(sy["not_searched"])
        sub = [m for m in rows if m.get("has_syn")]
        sn = [m for m in sub if m["label"] == 0]
        sp = [m for m in sub if m["label"] == 1]
        ss = [m for m in sp if m["asr"] >= 0.8]
        # combined score for AUROC: the larger of the two calibrated ranks
        ts, ty = syn["threshold"], syn["synthesis"]["threshold"]
        for m in sub:
            m["C"] = max(m["S2"] / max(ts, 1e-9), m["Y"] / max(ty, 1e-9))
        P("")
        how = ("thresholds by calibrate's quantile rule from full reports of" if syn.get("from_full_reports")
               else "calibrated by `calibrate` on")
        P(f"With trigger synthesis (suite-syn.toml; {how} {len(syn['scores'])} "
          f"calibration negatives, FPR split in two: τ_probe = {ts:.4f}, τ_synth = {ty:.4f}); "
          f"subset scored: {len(sn)} test negatives, {len(sp)} positives ({len(ss)} with ASR ≥ 0.8).")
        P("")
        P(hdr)
        P("|---|---|---|---|---|---|---|")
        probe_s = float(np.mean([m["probe_s"] for m in sub]))
        syn_s = float(np.mean([m["syn_s"] for m in sub]))
        rule_row("probe statistic at FPR/2 (same subset)", "S2", lambda m: m["flag_S2"], sn, sp, ss, probe_s)
        rule_row("synthesis statistic at FPR/2, alone", "Y", lambda m: m["flag_Y"], sn, sp, ss, syn_s)
        rule_row("shipped combination (either flags)", "C", lambda m: m["flag_SY"], sn, sp, ss, probe_s + syn_s)
        P("")
        full_cal = os.path.join(d, "syn-cal-full.json")
        if os.path.exists(full_cal):
            # The statistic with the evidence rule, recomputed from the per-class results of full
            # reports (`mlsign behave --format json`) of the same calibration negatives and the test
            # subset; its threshold by calibrate's rule (type-7 quantile at 1 − FPR/2, floor 0).
            cal_full = load_reports(full_cal, d)
            cv = [synth_stat(r["synthesis"])[0] for r in cal_full.values()]
            fpr_each = syn["synthesis"]["calibration"]["fpr"]
            ty2 = max(float(np.quantile(cv, 1 - fpr_each)), 0.0)
            for m in sub:
                r = st[m["path"]]
                m["Y2"], m["Y2_class"] = synth_stat(r["synthesis"])
                m["flag_Y2"] = m["Y2"] > ty2
                m["flag_SY2"] = m["flag_S2"] or m["flag_Y2"]
                m["C2"] = max(m["S2"] / max(ts, 1e-9), m["Y2"] / max(ty2, 1e-9))
            rule_row(f"synthesis, evidence rule, at FPR/2 (τ = {ty2:.3f} from {len(cv)} calibration negatives), alone",
                     "Y2", lambda m: m["flag_Y2"], sn, sp, ss, syn_s)
            rule_row("combination with the evidence rule (either flags)", "C2", lambda m: m["flag_SY2"], sn, sp, ss,
                     probe_s + syn_s)
            res["synthesis_evidence_rule"] = {
                "threshold": ty2, "calibration_negatives": len(cv),
                "calibration_exceedances": int(sum(v > ty2 for v in cv)),
                "calibration_by_kind": {},
                "top_class_is_target": sum(1 for m in sp if m["Y2_class"] == m["target"]),
            }
            for k, r in cal_full.items():
                kind = models[k]["kind"]
                res["synthesis_evidence_rule"]["calibration_by_kind"].setdefault(kind, []).append(
                    round(synth_stat(r["synthesis"])[0], 3))
        P("")
        P(f"Synthesis cost: {syn_s:.1f} s per candidate (probe suite {probe_s:.1f} s, ratio "
          f"{syn_s / max(probe_s, 1e-9):.1f}×); baseline natural-trigger search once per run "
          f"{sub[0]['base_syn_s']:.1f} s; classes left unsearched by the time budget: "
          f"{sum(m['not_searched'] for m in sub)} over {len(sub)} candidates. "
          f"Top synthesised class = target in {sum(1 for m in sp if m['Y_class'] == m['target'])}/{len(sp)} positives.")
        res["synthesis_cost"] = {"synthesis_s": syn_s, "probe_s": probe_s, "baseline_search_s": sub[0]["base_syn_s"]}

    P("")
    P("Positives by trigger family (ASR ≥ 0.8 count; detected at τ; median S):")
    P("")
    cols = "| family | n | ASR ≥ 0.8 | ASR (median, min–max) | detected (of ASR ≥ 0.8) | median S (ASR ≥ 0.8) |"
    if syn:
        cols += " synthesis detected | combination detected |" + (" synthesis (evidence rule) | combination (evidence rule) |" if has2 else "")
    P(cols)
    P("|---|---|---|---|---|---|" + (("---|---|---|---|" if has2 else "---|---|") if syn else ""))
    res["families"] = {}
    for fam in sorted({m["trigger"] for m in pos}):
        ps = [m for m in pos if m["trigger"] == fam]
        stv = [m for m in ps if m["asr"] >= 0.8]
        asr = [m["asr"] for m in ps]
        line = (f"| {fam} | {len(ps)} | {len(stv)} | {np.median(asr):.2f} ({min(asr):.2f}–{max(asr):.2f}) | "
                f"{sum(m['flag_S'] for m in ps)} ({sum(m['flag_S'] for m in stv)}) | "
                f"{np.median([m['S'] for m in stv]) if stv else float('nan'):.3f} |")
        fr = {"n": len(ps), "asr_ge_0_8": len(stv), "asr": asr, "detected": sum(m["flag_S"] for m in ps),
              "detected_strong": sum(m["flag_S"] for m in stv)}
        if syn:
            sps = [m for m in ps if m.get("has_syn")]
            line += (f" {sum(m['flag_Y'] for m in sps)}/{len(sps)} | {sum(m['flag_SY'] for m in sps)}/{len(sps)} |")
            if sps and "flag_Y2" in sps[0]:
                line += (f" {sum(m['flag_Y2'] for m in sps)}/{len(sps)} | {sum(m['flag_SY2'] for m in sps)}/{len(sps)} |")
                fr["synthesis_evidence_rule_detected"] = [sum(m["flag_Y2"] for m in sps), len(sps)]
                fr["combination_evidence_rule_detected"] = [sum(m["flag_SY2"] for m in sps), len(sps)]
        P(line)
        res["families"][fam] = fr
    P("")
    P("Negatives by kind (test; FPR at τ):")
    P("")
    P("| kind | n | median S | max S | flagged |" + ((" synthesis flagged | combination flagged |" + (" synthesis (evidence rule) | combination (evidence rule) |" if has2 else "")) if syn else ""))
    P("|---|---|---|---|---|" + (("---|---|---|---|" if has2 else "---|---|") if syn else ""))
    res["negatives"] = {}
    for kind in sorted({m["kind"] for m in neg}):
        ns = [m for m in neg if m["kind"] == kind]
        line = (f"| {kind} | {len(ns)} | {np.median([m['S'] for m in ns]):.3f} | {max(m['S'] for m in ns):.3f} | "
                f"{sum(m['flag_S'] for m in ns)} |")
        if syn:
            sns = [m for m in ns if m.get("has_syn")]
            line += f" {sum(m['flag_Y'] for m in sns)}/{len(sns)} | {sum(m['flag_SY'] for m in sns)}/{len(sns)} |"
            if sns and "flag_Y2" in sns[0]:
                line += f" {sum(m['flag_Y2'] for m in sns)}/{len(sns)} | {sum(m['flag_SY2'] for m in sns)}/{len(sns)} |"
        P(line)
        res["negatives"][kind] = {"n": len(ns), "median": float(np.median([m["S"] for m in ns])),
                                  "max": float(max(m["S"] for m in ns)),
                                  "flagged": int(sum(m["flag_S"] for m in ns))}
    ckinds = {}
    for s in cal["scores"]:
        # calibrate ran in the population directory: candidates are relative to it
        c = s["candidate"].rstrip("/")
        k = os.path.relpath(c, os.path.abspath(d)) if os.path.isabs(c) else os.path.normpath(c)
        kind = models.get(k, {}).get("kind", "?")
        ckinds.setdefault(kind, []).append(s["value"])
    P("")
    P("Calibration negatives by kind (max S): " + ", ".join(f"{k} {max(v):.3f}" for k, v in sorted(ckinds.items())))
    res["calibration"] = {"threshold": thr, "in_sample_fpr": cal["in_sample_fpr"],
                          "fpr_upper_bound": cal["fpr_upper_bound"], "max_by_kind": {k: max(v) for k, v in ckinds.items()}}
    print("\n".join(out))
    if a.json:
        json.dump(res, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
