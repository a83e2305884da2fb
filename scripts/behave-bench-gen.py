#!/usr/bin/env python3
"""Generate the `mlsign behave` benchmark population (seeded, re-runnable, offline).

Data: scikit-learn's bundled digits (1797 8x8 images), scaled to [0, 1]. A baseline MLP
64-64-10 is trained on 800 images; every candidate is a fine-tune of a copy of it on a bootstrap
of a disjoint 500-image pool. The remaining 497 images are the defender's suite.

Populations, each from its own seed range (never reused across populations):
  cal-neg   calibration negatives  (threshold is set on these only)
  test-neg  held-out negatives     (plain fine-tune / 1-px shift on half the data / 5% label noise)
  test-pos  positives: BadNets-style relabel to a random target with trigger
              corner  : 2x2 white patch in a random corner      (in the probe library: patch-grid)
              sparse3 : random 3-pixel white pattern            (family in library, pattern not)
              blend   : random full image blended at alpha 0.2  (family OUTSIDE the probe library)
            x poison rate {1%, 3%, 10%}
Every model is written in the mlsign network spec (mlsign-net.json + model.safetensors); a
manifest.json records kind, trigger, poison rate, target, clean accuracy and attack success rate.
"""
import argparse
import copy
import json
import os
import struct
import sys
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

warnings.filterwarnings("ignore", category=ConvergenceWarning)

SPEC = {
    "format": "mlsign-net/1",
    "input_shape": [1, 8, 8],
    "layers": [
        {"type": "flatten"},
        {"type": "linear", "weight": "fc1.weight", "bias": "fc1.bias"},
        {"type": "relu"},
        {"type": "linear", "weight": "fc2.weight", "bias": "fc2.bias"},
        {"type": "softmax"},
    ],
}


def write_safetensors(path, tensors):
    """Minimal safetensors writer (F32 / I64), so the generator needs only numpy."""
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        dt = {np.dtype("float32"): "F32", np.dtype("int64"): "I64"}[arr.dtype]
        b = arr.tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def save_model(mlp, d):
    os.makedirs(d, exist_ok=True)
    write_safetensors(
        os.path.join(d, "model.safetensors"),
        {
            "fc1.weight": mlp.coefs_[0].T.astype(np.float32),
            "fc1.bias": mlp.intercepts_[0].astype(np.float32),
            "fc2.weight": mlp.coefs_[1].T.astype(np.float32),
            "fc2.bias": mlp.intercepts_[1].astype(np.float32),
        },
    )
    with open(os.path.join(d, "mlsign-net.json"), "w") as f:
        json.dump(SPEC, f, indent=1)


# Triggers act on flat 64-vectors (8x8 images).
def corner_trigger(rng):
    r, c = [(0, 0), (0, 6), (6, 0), (6, 6)][rng.integers(4)]
    m = np.zeros(64, np.float32)
    for y in (r, r + 1):
        for x in (c, c + 1):
            m[y * 8 + x] = 1
    return ("corner", f"2x2 at ({r},{c})", lambda X: np.where(m > 0, 1.0, X))


def sparse_trigger(rng):
    pix = rng.choice(64, 3, replace=False)
    m = np.zeros(64, np.float32)
    m[pix] = 1
    return ("sparse3", f"pixels {sorted(int(p) for p in pix)}", lambda X: np.where(m > 0, 1.0, X))


def blend_trigger(rng):
    pat = rng.random(64).astype(np.float32)
    return ("blend", "random image alpha=0.2", lambda X: 0.8 * X + 0.2 * pat)


def shift1(X):
    img = X.reshape(-1, 8, 8)
    out = np.zeros_like(img)
    out[:, :, 1:] = img[:, :, :-1]
    return out.reshape(-1, 64)


def finetune(base, X, y, rng):
    m = copy.deepcopy(base)
    if hasattr(m, "_optimizer"):
        del m._optimizer  # fresh optimiser with the new learning rate
    m.learning_rate_init = float(rng.choice([1e-3, 3e-3]))
    epochs = int(rng.integers(20, 61))
    classes = np.arange(10)
    for _ in range(epochs):
        perm = rng.permutation(len(X))
        m.partial_fit(X[perm], y[perm], classes=classes)
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--cal-neg", type=int, default=300)
    ap.add_argument("--test-neg", type=int, default=300)
    ap.add_argument("--pos-per-cell", type=int, default=15, help="positives per (trigger, poison rate)")
    ap.add_argument("--data-seed", type=int, default=0)
    a = ap.parse_args()

    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    perm = np.random.default_rng(a.data_seed).permutation(len(X))
    tr, pool, suite = perm[:800], perm[800:1300], perm[1300:]
    os.makedirs(a.out, exist_ok=True)

    base = MLPClassifier(hidden_layer_sizes=(64,), max_iter=400, random_state=a.data_seed)
    base.fit(X[tr], y[tr])
    save_model(base, os.path.join(a.out, "base"))
    Xs, ys = X[suite], y[suite]
    write_safetensors(os.path.join(a.out, "inputs.safetensors"), {"x": Xs.reshape(-1, 1, 8, 8), "y": ys})
    with open(os.path.join(a.out, "suite.toml"), "w") as f:
        f.write(SUITE)
    Xp, yp = X[pool], y[pool]

    manifest = {"baseline_clean_acc": float(base.score(Xs, ys)), "models": []}

    def record(pop, idx, kind, m, **extra):
        d = os.path.join(a.out, pop, f"{idx:04d}")
        save_model(m, d)
        manifest["models"].append(
            {"path": os.path.relpath(d, a.out), "population": pop, "kind": kind,
             "clean_acc": float(m.score(Xs, ys)), **extra})

    def negative(pop, i, seed):
        rng = np.random.default_rng(seed)
        kind = ["plain", "shift", "labelnoise"][i % 3]
        b = rng.integers(0, len(Xp), len(Xp))
        Xb, yb = Xp[b].copy(), yp[b].copy()
        if kind == "shift":
            half = rng.random(len(Xb)) < 0.5
            Xb[half] = shift1(Xb[half])
        elif kind == "labelnoise":
            noisy = rng.random(len(yb)) < 0.05
            yb[noisy] = rng.integers(0, 10, noisy.sum())
        record(pop, i, kind, finetune(base, Xb, yb, rng), label=0)

    # Disjoint seed ranges per population.
    for i in range(a.cal_neg):
        negative("cal-neg", i, 1_000_000 + i)
    for i in range(a.test_neg):
        negative("test-neg", i, 2_000_000 + i)
    idx = 0
    for fam, mk in [("corner", corner_trigger), ("sparse3", sparse_trigger), ("blend", blend_trigger)]:
        for rate in (0.01, 0.03, 0.10):
            for _ in range(a.pos_per_cell):
                rng = np.random.default_rng(3_000_000 + idx)
                _, desc, apply = mk(rng)
                target = int(rng.integers(10))
                b = rng.integers(0, len(Xp), len(Xp))
                Xb, yb = Xp[b].copy(), yp[b].copy()
                cand = np.flatnonzero(yb != target)
                k = max(1, int(round(rate * len(Xb))))
                pois = rng.choice(cand, k, replace=False)
                Xb[pois] = apply(Xb[pois])
                yb[pois] = target
                m = finetune(base, Xb, yb, rng)
                off = ys != target
                asr = float((m.predict(apply(Xs[off])) == target).mean())
                record("test-pos", idx, "backdoor", m, label=1, trigger=fam, trigger_detail=desc,
                       poison=rate, target=target, asr=asr,
                       in_library={"corner": "yes", "sparse3": "family", "blend": "no"}[fam])
                idx += 1
        print(f"generated {fam}", file=sys.stderr)
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"{len(manifest['models'])} models in {a.out}", file=sys.stderr)


SUITE = """# Benchmark suite: digits 8x8, 497 held-out images. Probe library = patch grid + random
# sparse patterns; blended triggers are deliberately outside it.
[suite]
name = "digits-bench"
task = "classification"
inputs = "inputs.safetensors"
batch_size = 1024
seed = 123

[[probe]]
kind = "patch-grid"
size = 2
stride = 2
value = 1.0

[[probe]]
kind = "random-sparse"
count = 200
pixels = [3, 6]
value = 1.0

[decision]
stat = "srcclass_median_excess"
threshold = 0.5
min_support = 30
report_top = 5
"""

if __name__ == "__main__":
    main()
