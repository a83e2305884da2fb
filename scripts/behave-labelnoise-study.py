#!/usr/bin/env python3
"""Why do benign label-noise fine-tunes excite `srcclass_median_excess`? (issue 15 §4; not a test)

Reads a population from scripts/behave-bench-gen.py (--dir, manifest.json, mlsign-net MLPs) and
recomputes, in numpy, the probe statistic's ingredients for every candidate with the benchmark
suite's probe *families* (16 patch-grid 2x2 stride 2 + 200 random sparse 3..6-pixel patterns; the
sparse patterns are drawn here, not mlsign's exact ones):

  r[p, c, s] = P(cand(x+p) = c | base(x) = s) - P(base(x+p) = c | base(x) = s)

It prints, per kind of candidate, the diagnostics of the mechanism (clean confusion drift,
baseline confidence of the moved inputs, how many target classes move under the top probe, ...)
and the AUROC / FPR / TPR of candidate statistics, split into a development half (choose) and a
report half (held out): cal-neg, test-neg and test-pos are split by index parity.

  python scripts/behave-labelnoise-study.py --dir .bench/pop0
"""
import argparse
import json
import os
import struct

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        dt = {"F32": np.float32, "I64": np.int64}[v["dtype"]]
        out[k] = np.frombuffer(data[a:b], dtype=dt).reshape(v["shape"])
    return out


def load_mlp(d):
    t = read_safetensors(os.path.join(d, "model.safetensors"))
    return t["fc1.weight"], t["fc1.bias"], t["fc2.weight"], t["fc2.bias"]


def forward(m, X):
    w1, b1, w2, b2 = m
    h = np.maximum(X @ w1.T + b1, 0)
    z = h @ w2.T + b2
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def probes(seed=123):
    out = []
    for y in range(0, 8, 2):
        for x in range(0, 8, 2):
            m = np.zeros(64, bool)
            for dy in (0, 1):
                for dx in (0, 1):
                    m[(y + dy) * 8 + x + dx] = True
            out.append(m)
    rng = np.random.default_rng(seed)
    for _ in range(200):
        k = rng.integers(3, 7)
        m = np.zeros(64, bool)
        m[rng.choice(64, k, replace=False)] = True
        out.append(m)
    return np.array(out)


def auroc(neg, pos):
    neg, pos = np.asarray(neg, float), np.asarray(pos, float)
    gt = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return gt / (len(neg) * len(pos))


K = 10
MIN_SUPPORT = 30


def candidate_stats(base_clean_pred, base_probe_pred, base_clean_p, cand, X, P):
    """Every statistic under study for one candidate."""
    n = len(X)
    cp_clean = forward(cand, X)
    cpred0 = cp_clean.argmax(1)
    Xp = np.where(P[:, None, :], 1.0, X[None, :, :]).reshape(-1, 64)
    cprob = forward(cand, Xp).reshape(len(P), n, K)
    cpred = cprob.argmax(2)
    src = base_clean_pred
    n_src = np.bincount(src, minlength=K)
    ok = n_src >= MIN_SUPPORT
    # hits[p, s, c]
    ch = np.zeros((len(P), K, K))
    bh = np.zeros((len(P), K, K))
    for s in range(K):
        sel = src == s
        if not sel.any():
            continue
        ch[:, s, :] = np.stack([(cpred[:, sel] == c).sum(1) for c in range(K)], 1)
        bh[:, s, :] = np.stack([(base_probe_pred[:, sel] == c).sum(1) for c in range(K)], 1)
    r = (ch - bh) / np.maximum(n_src, 1)[None, :, None]  # r[p, s, c]
    # clean-input excess (no probe): how much the candidate already sends s to c on clean inputs
    c0 = np.zeros((K, K))
    for s in range(K):
        sel = src == s
        for c in range(K):
            c0[s, c] = (cpred0[sel] == c).sum() / max(sel.sum(), 1)
    base0 = np.eye(K)
    clean_excess = c0 - base0  # [s, c]
    out = {}

    def med_over_src(rr):
        # rr[p, s, c] -> median over eligible s != c, shape [p, c]
        m = np.full((rr.shape[0], K), -np.inf)
        for c in range(K):
            ss = [s for s in range(K) if s != c and ok[s]]
            if ss:
                m[:, c] = np.median(rr[:, ss, c], axis=1)
        return m

    M = med_over_src(r)
    S = M.max()
    p_top, c_top = np.unravel_index(M.argmax(), M.shape)
    out["S"] = S
    out["top_probe"] = int(p_top)
    out["top_target"] = int(c_top)
    # --- diagnostics of the mechanism
    out["clean_flip"] = float((cpred0 != src).mean())
    out["clean_offdiag_max"] = float((clean_excess - np.diag(np.diag(clean_excess))).max())
    # How many targets get a median excess >= half of the top under the top probe
    mp = M[p_top]
    out["targets_half"] = int((mp >= 0.5 * S).sum()) if S > 0 else 0
    # Spread of the top target over probes: share of probes whose median excess to c_top >= S/2
    out["probes_half_top_target"] = float((M[:, c_top] >= 0.5 * S).mean()) if S > 0 else 0.0
    # Mass that leaves the source classes under the top probe in the candidate vs baseline
    leave_c = 1 - np.array([ch[p_top, s, s] / max(n_src[s], 1) for s in range(K)])
    leave_b = 1 - np.array([bh[p_top, s, s] / max(n_src[s], 1) for s in range(K)])
    out["leave_cand_top"] = float(np.median(leave_c[ok]))
    out["leave_base_top"] = float(np.median(leave_b[ok]))
    # Baseline confidence (max prob) on the moved inputs under the top probe
    bprob_p = None
    out["moved_base_conf"] = float("nan")
    # Share of the top cell's excess that comes from inputs the baseline also moved off its
    # source under the probe (the probe "destroyed" the input) vs inputs the baseline kept.
    sel = (src != c_top)
    moved = sel & (cpred[p_top] == c_top) & (base_probe_pred[p_top] != c_top)
    if moved.any():
        out["moved_base_kept_src"] = float((base_probe_pred[p_top][moved] == src[moved]).mean())
    else:
        out["moved_base_kept_src"] = float("nan")
    # Candidate confidence in the target on the inputs it flips to it under the top probe, and
    # the baseline's confidence on the same probed inputs in their own prediction.
    cprob_top = cprob[p_top]
    out["flip_conf_cand"] = float(np.median(cprob_top[moved, c_top])) if moved.any() else float("nan")
    out["clean_conf_cand"] = float(cp_clean.max(1).mean())
    out["clean_conf_base"] = float(base_clean_p.max(1).mean())
    # --- alternative statistics
    # A: concentration: top-target excess minus the best other target's excess under the same probe
    Ms = np.sort(M, axis=1)
    out["A_gap"] = float((Ms[:, -1] - Ms[:, -2]).max())
    # B: per-candidate normalisation by its typical cell (anomaly across cells)
    flat = M[np.isfinite(M)]
    med, mad = np.median(flat), np.median(np.abs(flat - np.median(flat)))
    out["B_cellz"] = float((S - med) / (1.4826 * mad + 0.01))
    # C: excess among inputs the baseline keeps in their source under the probe (probe did not
    # destroy them): P(cand=c | s, base(x+p)=s) - 0
    rk = np.zeros_like(r)
    for s in range(K):
        sel = src == s
        if not sel.any():
            continue
        kept = (base_probe_pred[:, sel] == s)  # [p, n_s]
        nk = np.maximum(kept.sum(1), 1)
        for c in range(K):
            if c == s:
                continue
            rk[:, s, c] = ((cpred[:, sel] == c) & kept).sum(1) / nk
    Mk = med_over_src(rk)
    out["C_kept"] = float(Mk.max())
    # D: subtract the candidate's clean-input excess s->c (confusion drift)
    rd = r - np.maximum(clean_excess, 0)[None, :, :]
    out["D_minus_clean"] = float(med_over_src(rd).max())
    # E: per-target: excess of target c minus the median over probes of the same cell
    #    (a class the candidate prefers under *every* probe is drift, not a trigger)
    Mfin = np.where(np.isfinite(M), M, np.nan)
    out["E_vs_probe_median"] = float(np.nanmax(Mfin - np.nanmedian(Mfin, axis=0, keepdims=True)))
    # F: per-target: excess minus the q-quantile over probes of the same target
    out["F_vs_probe_q75"] = float(np.nanmax(Mfin - np.nanquantile(Mfin, 0.75, axis=0, keepdims=True)))
    # G: second-smallest-source: the minimum over sources rather than the median (backdoor moves all)
    Mq = np.full((len(P), K), -np.inf)
    for c in range(K):
        ss = [s for s in range(K) if s != c and ok[s]]
        if ss:
            Mq[:, c] = np.quantile(r[:, ss, c], 0.25, axis=1)
    out["G_q25"] = float(Mq.max())
    # H: soft excess: mean over a source class of P_cand(c | x+p) - P_base(c | x+p), median over s
    bprob = BASE_PROBE_PROB
    soft = np.zeros((len(P), K, K))
    for s_ in range(K):
        sel = src == s_
        if sel.any():
            soft[:, s_, :] = (cprob[:, sel, :] - bprob[:, sel, :]).mean(1)
    out["H_soft"] = float(med_over_src(soft).max())
    # I: confident flips only: count x when argmax is c AND P(c) >= 0.9, both models
    for thr, name in ((0.9, "I_conf90"), (0.99, "I_conf99")):
        cc = (cprob >= thr)
        bc = (bprob >= thr)
        rc = np.zeros((len(P), K, K))
        for s_ in range(K):
            sel = src == s_
            if sel.any():
                rc[:, s_, :] = (cc[:, sel, :].sum(1) - bc[:, sel, :].sum(1)) / sel.sum()
        out[name] = float(med_over_src(rc).max())
    return out


BASE_PROBE_PROB = None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--fpr", type=float, default=0.05)
    ap.add_argument("--json", help="write per-model rows here")
    a = ap.parse_args()
    man = json.load(open(os.path.join(a.dir, "manifest.json")))
    inp = read_safetensors(os.path.join(a.dir, "inputs.safetensors"))
    X = inp["x"].reshape(-1, 64).astype(np.float32)
    P = probes()
    base = load_mlp(os.path.join(a.dir, "base"))
    bclean = forward(base, X)
    bpred0 = bclean.argmax(1)
    Xp = np.where(P[:, None, :], 1.0, X[None, :, :]).reshape(-1, 64)
    global BASE_PROBE_PROB
    BASE_PROBE_PROB = forward(base, Xp).reshape(len(P), len(X), K)
    bprobe = BASE_PROBE_PROB.argmax(2)
    rows = []
    for m in man["models"]:
        st = candidate_stats(bpred0, bprobe, bclean, load_mlp(os.path.join(a.dir, m["path"])), X, P)
        idx = int(os.path.basename(m["path"]))
        rows.append({**m, **st, "half": "dev" if idx % 2 == 0 else "report"})
    if a.json:
        json.dump(rows, open(a.json, "w"), indent=0, default=float)
    report(rows, a.fpr)


def report(rows, fpr):
    kinds = ["plain", "shift", "labelnoise", "backdoor"]
    diag = ["S", "clean_flip", "clean_offdiag_max", "targets_half", "probes_half_top_target",
            "leave_cand_top", "leave_base_top", "moved_base_kept_src", "flip_conf_cand",
            "clean_conf_cand", "clean_conf_base"]
    print("Diagnostics (test-neg + test-pos, both halves): median [p10, p90]")
    print("| kind | n | " + " | ".join(diag) + " |")
    for k in kinds:
        rs = [r for r in rows if r["kind"] == k and r["population"] != "cal-neg"]
        if k == "backdoor":
            rs = [r for r in rs if r["asr"] >= 0.8]
        cells = []
        for d in diag:
            v = np.array([r[d] for r in rs], float)
            v = v[np.isfinite(v)]
            cells.append(f"{np.median(v):.3f} [{np.quantile(v, .1):.2f}, {np.quantile(v, .9):.2f}]" if len(v) else "-")
        print(f"| {k}{' ASR>=0.8' if k == 'backdoor' else ''} | {len(rs)} | " + " | ".join(cells) + " |")
    stats = ["S", "A_gap", "B_cellz", "C_kept", "D_minus_clean", "E_vs_probe_median", "F_vs_probe_q75", "G_q25",
             "H_soft", "I_conf90", "I_conf99"]
    for half in ("dev", "report"):
        cal = [r for r in rows if r["population"] == "cal-neg" and r["half"] == half]
        neg = [r for r in rows if r["population"] == "test-neg" and r["half"] == half]
        pos = [r for r in rows if r["population"] == "test-pos" and r["half"] == half]
        strong = [r for r in pos if r["asr"] >= 0.8]
        print(f"\nhalf={half}: {len(cal)} cal-neg, {len(neg)} test-neg, {len(pos)} pos ({len(strong)} ASR>=0.8); threshold at FPR {fpr} on cal-neg")
        print("| stat | AUROC all | AUROC ASR>=0.8 | held-out FPR | FPR labelnoise | TPR all | TPR ASR>=0.8 |")
        for s in stats:
            t = np.quantile([r[s] for r in cal], 1 - fpr)
            f = lambda rs: sum(r[s] > t for r in rs)
            ln = [r for r in neg if r["kind"] == "labelnoise"]
            print(f"| {s} | {auroc([r[s] for r in neg], [r[s] for r in pos]):.3f} | "
                  f"{auroc([r[s] for r in neg], [r[s] for r in strong]):.3f} | {f(neg)}/{len(neg)} | "
                  f"{f(ln)}/{len(ln)} | {f(pos)}/{len(pos)} | {f(strong)}/{len(strong)} |")


if __name__ == "__main__":
    main()
