#!/usr/bin/env python3
"""Issue 15 §4 study, step 1: per candidate of a scripts/behave-bench-gen.py population, the
[probe, source class, predicted class] counts and summed probabilities under the benchmark probe
families (numpy; probes as in scripts/behave-labelnoise-study.py), saved to one .npz for
scripts/behave-labelnoise-cells.py. Run from the repository root:

  python scripts/behave-labelnoise-dump.py .bench/pop0 .bench/pop0-counts.npz
"""
import sys, os, json, numpy as np
sys.path.insert(0, 'scripts')
import importlib.util
spec = importlib.util.spec_from_file_location("st", "scripts/behave-labelnoise-study.py")
st = importlib.util.module_from_spec(spec); spec.loader.exec_module(st)
d = sys.argv[1]
man = json.load(open(os.path.join(d, "manifest.json")))
X = st.read_safetensors(os.path.join(d, "inputs.safetensors"))["x"].reshape(-1, 64).astype(np.float32)
P = st.probes()
base = st.load_mlp(os.path.join(d, "base"))
src = st.forward(base, X).argmax(1)
Xp = np.where(P[:, None, :], 1.0, X[None, :, :]).reshape(-1, 64)
K = 10
def counts(m):
    pred = st.forward(m, Xp).reshape(len(P), len(X), K)
    pr = pred.argmax(2)
    conf = pred.max(2)
    idx = src[None, :] * K + pr  # [P, n]
    C = np.stack([np.bincount(idx[p], minlength=K*K) for p in range(len(P))]).reshape(len(P), K, K)
    # soft: sum over inputs of prob by src
    S = np.zeros((len(P), K, K), np.float32)
    for s in range(K):
        S[:, s, :] = pred[:, src == s, :].sum(1)
    clean = st.forward(m, X)
    return C.astype(np.int16), S, clean.argmax(1).astype(np.int8), clean.max(1).astype(np.float32)
bC, bS, b0, bc0 = counts(base)
out = {"base_C": bC, "base_S": bS, "n_src": np.bincount(src, minlength=K)}
Cs, Ss, C0 = [], [], []
for m in man["models"]:
    C, S, c0, _ = counts(st.load_mlp(os.path.join(d, m["path"])))
    Cs.append(C); Ss.append(S); C0.append(c0)
np.savez_compressed(sys.argv[2], C=np.array(Cs), S=np.array(Ss), clean=np.array(C0), src=src, **out)
print("done")
