#!/usr/bin/env python3
"""Issue 15 §4 study, step 2: mechanism measures (baseline pull of the top cell, best cell of
another target, fragility) and candidate statistics (amplification discount, concentration on
one target, the shipped srcclass_focused_excess form) with the development / report split by
model index parity, from the .npz of scripts/behave-labelnoise-dump.py:

  python scripts/behave-labelnoise-cells.py .bench/pop0-counts.npz .bench/pop0/manifest.json
"""
import sys, json, numpy as np
d = np.load(sys.argv[1]); man = json.load(open(sys.argv[2]))["models"]
C = d["C"].astype(float); S = d["S"]; bC = d["base_C"].astype(float); bS = d["base_S"]; n = d["n_src"].astype(float)
M, P, K, _ = C.shape
ok = n >= 30
rate = C / n[None, None, :, None]; brate = bC / n[None, :, None]
soft = S / n[None, None, :, None]; bsoft = bS / n[None, :, None]
r = rate - brate[None]  # [M,P,s,c]
def med_src(rr):
    out = np.full(rr.shape[:2] + (K,), -np.inf)
    for c in range(K):
        ss = [s for s in range(K) if s != c and ok[s]]
        out[..., c] = np.median(rr[..., ss, c], axis=-1)
    return out
Mx = med_src(r)
Sv = Mx.reshape(M, -1).max(1)
eye = np.eye(K, dtype=bool)
leave_c = 1 - np.stack([rate[:, :, s, s] for s in range(K)], -1)  # [M,P,s]
leave_b = 1 - np.stack([brate[:, s, s] for s in range(K)], -1)   # [P,s]
dleave = leave_c - leave_b[None]
F = np.median(np.median(dleave[:, :, ok], axis=2), axis=1)  # per model global fragility
Fmean = np.mean(np.median(dleave[:, :, ok], axis=2), axis=1)
# baseline soft pull to c under the top cell
top = Mx.reshape(M, -1).argmax(1); tp, tc = top // K, top % K
bpull = np.array([np.median([bsoft[tp[i], s, tc[i]] for s in range(K) if s != tc[i] and ok[s]]) for i in range(M)])
cand_rate_top = np.array([np.median([rate[i, tp[i], s, tc[i]] for s in range(K) if s != tc[i] and ok[s]]) for i in range(M)])
base_rate_top = np.array([np.median([brate[tp[i], s, tc[i]] for s in range(K) if s != tc[i] and ok[s]]) for i in range(M)])
# number of probes with median excess to ANY target >= 0.2 (breadth of drift)
breadth = (Mx.max(2) >= 0.2).mean(1)
# second-best target's best cell (other than tc) 
Mx2 = Mx.copy()
for i in range(M): Mx2[i, :, tc[i]] = -np.inf
S2 = Mx2.reshape(M, -1).max(1)
rows = {"S": Sv, "F": F, "Fmean": Fmean, "bpull": bpull, "cand_rate_top": cand_rate_top, "base_rate_top": base_rate_top, "breadth": breadth, "S2_other_target": S2}
kind = np.array([m["kind"] for m in man]); pop = np.array([m["population"] for m in man]); asr = np.array([m.get("asr", 0) for m in man])
idx = np.array([int(m["path"].split("/")[-1]) for m in man]); half = np.where(idx % 2 == 0, "dev", "report")
def q(v): return f"{np.median(v):.3f} [{np.quantile(v,.1):.2f},{np.quantile(v,.9):.2f}]"
print("| kind | " + " | ".join(rows) + " |")
for k in ["plain", "shift", "labelnoise", "backdoor"]:
    sel = (kind == k) & (pop != "cal-neg") & ((asr >= 0.8) | (k != "backdoor"))
    print(f"| {k} n={sel.sum()} | " + " | ".join(q(v[sel]) for v in rows.values()) + " |")


def auroc(neg, pos):
    neg, pos = np.asarray(neg, float), np.asarray(pos, float)
    return ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(neg) * len(pos))
# base-pull-discounted cells: excess counted only beyond the baseline's own rate, amplification
br_b = brate[None]  # [1,P,s,c]
cand = {
  "S": Sv,
  "S-S2 (gap to best other target)": Sv - S2,
  "S-0.5*S2": Sv - 0.5 * S2,
  "S*(1-S2)": Sv * (1 - np.clip(S2, 0, 1)),
}
for lam in (1.0, 2.0):
    rr = rate - np.minimum(1.0, (1 + lam) * br_b)
    Ml = med_src(rr); cand[f"amplification-discount lam={lam}"] = Ml.reshape(M, -1).max(1)
    # concentration on the discounted cells
    t = Ml.reshape(M, -1).argmax(1) % K
    M2 = Ml.copy()
    for i in range(M): M2[i, :, t[i]] = -np.inf
    cand[f"amp lam={lam} minus other target"] = Ml.reshape(M, -1).max(1) - M2.reshape(M, -1).max(1)
    cand[f"SHIPPED-form lam={lam}: clamp0(top) - clamp0(other)"] = np.maximum(Ml.reshape(M, -1).max(1), 0) - np.maximum(M2.reshape(M, -1).max(1), 0)
for name, v in cand.items():
    line = [name]
    for h in ("dev", "report"):
        cal = v[(pop == "cal-neg") & (half == h)]
        neg = (pop == "test-neg") & (half == h); pos = (pop == "test-pos") & (half == h)
        strong = pos & (asr >= 0.8); ln = neg & (kind == "labelnoise")
        t = np.quantile(cal, 0.95)
        line.append(f"{auroc(v[neg], v[pos]):.3f} / {auroc(v[neg], v[strong]):.3f} / FPR {(v[neg] > t).sum()}/{neg.sum()} (LN {(v[ln] > t).sum()}/{ln.sum()}) / TPR {(v[pos] > t).sum()}/{pos.sum()}, strong {(v[strong] > t).sum()}/{strong.sum()}")
    print(" | ".join(line))
print()
Fv = cand["SHIPPED-form lam=1.0: clamp0(top) - clamp0(other)"]
for name, v in (("S", Sv), ("focused", Fv)):
    for k in ("plain", "shift", "labelnoise", "backdoor"):
        sel = (kind == k) & (pop != "cal-neg") & ((asr >= 0.8) | (k != "backdoor"))
        print(f"{name} {k}: median {np.median(v[sel]):.3f} p90 {np.quantile(v[sel], .9):.3f} max {v[sel].max():.3f}")
    for h in ("dev", "report"):
        strong = (pop == "test-pos") & (asr >= 0.8) & (half == h)
        lnm = (kind == "labelnoise") & (pop == "test-neg") & (half == h)
        t = v[strong].min()
        print(f"  {h}: label-noise >= weakest strong backdoor ({t:.3f}): {(v[lnm] >= t).sum()}/{lnm.sum()}")
for name, v in (("S", Sv), ("focused", Fv)):
    for h in ("dev", "report"):
        cal = v[(pop == "cal-neg") & (half == h)]
        print(name, h, "tau5", round(float(np.quantile(cal, 0.95)), 3), "exceed", int((cal > np.quantile(cal, .95)).sum()))
