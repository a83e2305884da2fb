#!/usr/bin/env python3
"""Second, independent `mlsign behave` benchmark population (issue 15 §6). Shares no code with
scripts/behave-bench-gen.py: other data, other architecture, other trainer, other triggers.

Data: "glyphs-AJ", a notMNIST-like set rendered here with Pillow from the TrueType fonts of the
Debian packages fonts-dejavu-core, fonts-dejavu-extra and fonts-noto-mono: the letters A-J
(10 classes) at 16x16, white on black in [0, 1], with random font, size, offset, rotation and
stroke. Model: a small CNN (conv 1->8 3x3, relu, maxpool 2, conv 8->16 3x3, relu, maxpool 2,
linear 256->32, relu, linear 32->10, softmax) trained with a numpy im2col implementation and
Adam. Every model is written in the mlsign network spec (mlsign-net.json + model.safetensors).

Populations, each from its own seed range:
  cal-neg / test-neg  benign variants of the baseline, cycling over
      plain       fine-tune on a bootstrap of the fine-tune pool
      labelnoise  the same with 5-10 % of labels replaced uniformly at random
      shift       fine-tune on glyphs rendered with a shifted distribution (heavier rotation,
                  smaller size, 1-2 px offsets, dimmer strokes)
      prune       magnitude pruning of 30-60 % of every weight tensor, then a 1-epoch repair
      quant       int8 (or int6) symmetric per-output-channel round trip of a plain fine-tune
      distill     a student from a fresh init trained on the baseline's soft labels (T = 2-4)
  test-pos  a fine-tune on a poisoned bootstrap (relabel to a random target), triggers:
      warp        WaNet-style smooth random warp field (4x4 control grid, upsampled, bilinear)
      inputaware  sample-specific: a fixed random 2-layer generator maps the image to a pattern
                  and chooses the 12 pixels it is stamped on (positions and values vary per input)
      noiseblend  a fixed uniform-noise image blended at low opacity (alpha 0.08-0.15)
      line / cross / lshape / scatter   sparse white shapes of various forms at a random place
    x poison rate {3 %, 10 %, 20 %}. ASR is measured on suite inputs whose label is not the target.
A manifest.json records kind, trigger, poison rate, target, clean accuracy and ASR.

  behave-bench2-gen.py --out DIR [--cal-neg 48 --test-neg 48 --pos-per-cell 2]
  behave-bench2-gen.py --out DIR --tiny     # 1 benign + 1 warp backdoor, for the CI test
"""
import argparse
import glob
import json
import os
import struct
import sys
import time

import numpy as np
from PIL import Image, ImageDraw, ImageFont

CLASSES = "ABCDEFGHIJ"
HW = 16
FONT_DIRS = ["/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/noto"]


# ---------------------------------------------------------------- data: rendered glyphs


def fonts():
    fs = sorted(f for d in FONT_DIRS for f in glob.glob(os.path.join(d, "*.ttf"))
                if "MathTeX" not in f and "ExtraLight" not in f)
    if len(fs) < 3:
        sys.exit("need the TrueType fonts of fonts-dejavu-core / fonts-noto-mono "
                 "(scripts/behave-bench2-apt.txt)")
    return fs


_FONT_CACHE = {}


def render(rng, n, font_files, shifted=False):
    """n glyph images [n, 1, 16, 16] in [0, 1] and labels [n] (int64)."""
    X = np.zeros((n, 1, HW, HW), np.float32)
    y = rng.integers(0, len(CLASSES), n).astype(np.int64)
    big = 48
    for i in range(n):
        f = font_files[rng.integers(len(font_files))]
        size = int(rng.integers(22, 30) if shifted else rng.integers(28, 38))
        key = (f, size)
        if key not in _FONT_CACHE:
            _FONT_CACHE[key] = ImageFont.truetype(f, size)
        font = _FONT_CACHE[key]
        im = Image.new("L", (big, big), 0)
        d = ImageDraw.Draw(im)
        ch = CLASSES[y[i]]
        l, t, r, b = d.textbbox((0, 0), ch, font=font)
        dx = (big - (r - l)) / 2 - l + rng.normal(0, 1.5)
        dy = (big - (b - t)) / 2 - t + rng.normal(0, 1.5)
        d.text((dx, dy), ch, fill=255, font=font, stroke_width=int(rng.integers(0, 2)), stroke_fill=255)
        rot = rng.uniform(-25, 25) if shifted else rng.uniform(-10, 10)
        im = im.rotate(rot, resample=Image.BILINEAR)
        im = im.resize((HW, HW), Image.BOX)
        a = np.asarray(im, np.float32) / 255.0
        a = a / max(a.max(), 1e-6)
        if shifted:
            a = np.roll(a, (int(rng.integers(-2, 3)), int(rng.integers(-2, 3))), axis=(0, 1))
            a = a * rng.uniform(0.6, 0.9)
        X[i, 0] = a
    return X, y


# ---------------------------------------------------------------- numpy CNN (im2col)


def im2col(x):
    """x [N, C, H, W] -> cols [N*H*W, C*9] for a 3x3 kernel, stride 1, padding 1."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    v = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))  # N C H W 3 3
    return v.transpose(0, 2, 3, 1, 4, 5).reshape(n * h * w, c * 9)


def col2im(dcols, shape):
    n, c, h, w = shape
    d = dcols.reshape(n, h, w, c, 3, 3)
    dxp = np.zeros((n, c, h + 2, w + 2), np.float32)
    for i in range(3):
        for j in range(3):
            dxp[:, :, i:i + h, j:j + w] += d[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return dxp[:, :, 1:-1, 1:-1]


class CNN:
    NAMES = ["c1.w", "c1.b", "c2.w", "c2.b", "fc1.w", "fc1.b", "fc2.w", "fc2.b"]

    def __init__(self, rng):
        def he(shape, fan):
            return (rng.normal(0, np.sqrt(2.0 / fan), shape)).astype(np.float32)
        self.p = {
            "c1.w": he((8, 1, 3, 3), 9), "c1.b": np.zeros(8, np.float32),
            "c2.w": he((16, 8, 3, 3), 72), "c2.b": np.zeros(16, np.float32),
            "fc1.w": he((32, 256), 256), "fc1.b": np.zeros(32, np.float32),
            "fc2.w": he((10, 32), 32), "fc2.b": np.zeros(10, np.float32),
        }

    def copy(self):
        m = CNN.__new__(CNN)
        m.p = {k: v.copy() for k, v in self.p.items()}
        return m

    @staticmethod
    def _conv(x, w, b):
        n, c, h, wd = x.shape
        cols = im2col(x)
        out = cols @ w.reshape(w.shape[0], -1).T + b
        return out.reshape(n, h, wd, -1).transpose(0, 3, 1, 2), cols

    @staticmethod
    def _pool(x):
        n, c, h, w = x.shape
        r = x.reshape(n, c, h // 2, 2, w // 2, 2)
        out = r.max(axis=(3, 5))
        return out, r, out

    def forward(self, x, keep=False):
        p = self.p
        z1, cols1 = self._conv(x, p["c1.w"], p["c1.b"])
        a1 = np.maximum(z1, 0)
        p1, r1, o1 = self._pool(a1)
        z2, cols2 = self._conv(p1, p["c2.w"], p["c2.b"])
        a2 = np.maximum(z2, 0)
        p2, r2, o2 = self._pool(a2)
        f = p2.reshape(len(x), -1)
        h = f @ p["fc1.w"].T + p["fc1.b"]
        ha = np.maximum(h, 0)
        logits = ha @ p["fc2.w"].T + p["fc2.b"]
        if keep:
            self.cache = (x, z1, cols1, p1, r1, o1, z2, cols2, r2, o2, f, h, ha)
        return logits

    @staticmethod
    def _pool_back(d, r, o):
        mask = (r == o[:, :, :, None, :, None])
        g = mask * d[:, :, :, None, :, None]
        n, c, h2, _, w2, _ = r.shape
        return g.reshape(n, c, h2 * 2, w2 * 2)

    def backward(self, dlogits):
        p = self.p
        x, z1, cols1, p1, r1, o1, z2, cols2, r2, o2, f, h, ha = self.cache
        g = {}
        g["fc2.w"] = dlogits.T @ ha
        g["fc2.b"] = dlogits.sum(0)
        dh = (dlogits @ p["fc2.w"]) * (h > 0)
        g["fc1.w"] = dh.T @ f
        g["fc1.b"] = dh.sum(0)
        dp2 = (dh @ p["fc1.w"]).reshape(o2.shape)
        da2 = self._pool_back(dp2, r2, o2) * (z2 > 0)
        d2 = da2.transpose(0, 2, 3, 1).reshape(-1, 16)
        g["c2.w"] = (d2.T @ cols2).reshape(p["c2.w"].shape)
        g["c2.b"] = d2.sum(0)
        dp1 = col2im(d2 @ p["c2.w"].reshape(16, -1), p1.shape)
        da1 = self._pool_back(dp1, r1, o1) * (z1 > 0)
        d1 = da1.transpose(0, 2, 3, 1).reshape(-1, 8)
        g["c1.w"] = (d1.T @ cols1).reshape(p["c1.w"].shape)
        g["c1.b"] = d1.sum(0)
        return g

    def proba(self, X, bs=1000):
        out = []
        for i in range(0, len(X), bs):
            z = self.forward(X[i:i + bs])
            z = z - z.max(1, keepdims=True)
            e = np.exp(z)
            out.append(e / e.sum(1, keepdims=True))
        return np.concatenate(out)

    def predict(self, X):
        return self.proba(X).argmax(1)

    def acc(self, X, y):
        return float((self.predict(X) == y).mean())


def train(m, X, Y, rng, epochs, lr, bs=64, soft=False, masks=None):
    """Adam on softmax cross-entropy; Y is labels, or soft targets [N, 10] when soft=True.
    masks (name -> 0/1 array) keep pruned weights at zero."""
    st = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in m.p.items()}
    t = 0
    b1, b2 = 0.9, 0.999
    for _ in range(epochs):
        perm = rng.permutation(len(X))
        for i in range(0, len(X), bs):
            idx = perm[i:i + bs]
            z = m.forward(X[idx], keep=True)
            z = z - z.max(1, keepdims=True)
            pr = np.exp(z)
            pr /= pr.sum(1, keepdims=True)
            if soft:
                d = pr - Y[idx]
            else:
                d = pr.copy()
                d[np.arange(len(idx)), Y[idx]] -= 1
            g = m.backward((d / len(idx)).astype(np.float32))
            t += 1
            for k in m.p:
                mm, vv = st[k]
                mm *= b1
                mm += (1 - b1) * g[k]
                vv *= b2
                vv += (1 - b2) * g[k] ** 2
                m.p[k] -= (lr * (mm / (1 - b1 ** t)) / (np.sqrt(vv / (1 - b2 ** t)) + 1e-8)).astype(np.float32)
                if masks is not None and k in masks:
                    m.p[k] *= masks[k]
    return m


# ---------------------------------------------------------------- mlsign-net writer


SPEC = {
    "format": "mlsign-net/1",
    "weights": "model.safetensors",
    "input_shape": [1, HW, HW],
    "labels": list(CLASSES),
    "layers": [
        {"type": "conv2d", "weight": "c1.w", "bias": "c1.b", "stride": 1, "padding": 1},
        {"type": "relu"},
        {"type": "maxpool2d", "size": 2},
        {"type": "conv2d", "weight": "c2.w", "bias": "c2.b", "stride": 1, "padding": 1},
        {"type": "relu"},
        {"type": "maxpool2d", "size": 2},
        {"type": "flatten"},
        {"type": "linear", "weight": "fc1.w", "bias": "fc1.b"},
        {"type": "relu"},
        {"type": "linear", "weight": "fc2.w", "bias": "fc2.b"},
        {"type": "softmax"},
    ],
}


def safetensors_bytes(tensors):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        dt = {"float32": "F32", "int64": "I64"}[str(arr.dtype)]
        raw = arr.tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def load(d):
    """Read back a model written by save() (resuming an interrupted or split run)."""
    raw = open(os.path.join(d, "model.safetensors"), "rb").read()
    hl = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + hl])
    m = CNN.__new__(CNN)
    m.p = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        m.p[k] = np.frombuffer(raw[8 + hl + a:8 + hl + b], np.float32).reshape(v["shape"]).copy()
    return m


def save(m, d):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(safetensors_bytes({k: v.astype(np.float32) for k, v in m.p.items()}))
    with open(os.path.join(d, "mlsign-net.json"), "w") as f:
        json.dump(SPEC, f, indent=1)


# ---------------------------------------------------------------- triggers (X: [N, 1, 16, 16])


def warp_trigger(rng):
    """WaNet: a smooth flow field from a 4x4 grid of random offsets, upsampled bicubic-ish
    (bilinear here), normalised to a max displacement of s pixels; images resampled bilinearly."""
    k, s = 4, float(rng.uniform(1.5, 2.5))
    grid = rng.uniform(-1, 1, (2, k, k))
    grid /= np.abs(grid).mean()
    up = np.stack([np.asarray(Image.fromarray(g.astype(np.float32), "F").resize((HW, HW), Image.BICUBIC))
                   for g in grid])
    up = up / np.abs(up).max() * s
    yy, xx = np.meshgrid(np.arange(HW), np.arange(HW), indexing="ij")
    sy, sx = np.clip(yy + up[0], 0, HW - 1), np.clip(xx + up[1], 0, HW - 1)
    y0, x0 = np.floor(sy).astype(int), np.floor(sx).astype(int)
    y1, x1 = np.minimum(y0 + 1, HW - 1), np.minimum(x0 + 1, HW - 1)
    wy, wx = (sy - y0).astype(np.float32), (sx - x0).astype(np.float32)

    def apply(X):
        a = X[:, 0]
        out = ((1 - wy) * (1 - wx) * a[:, y0, x0] + (1 - wy) * wx * a[:, y0, x1]
               + wy * (1 - wx) * a[:, y1, x0] + wy * wx * a[:, y1, x1])
        return out[:, None].astype(np.float32)
    return f"k=4 s={s:.2f}px", apply


def inputaware_trigger(rng):
    """Sample-specific: a fixed random generator g(x) = (pattern, score) with a 64-unit tanh
    layer; the 12 pixels with the highest score get the pattern's values (in [0.5, 1])."""
    W1 = rng.normal(0, 1 / 16, (64, HW * HW)).astype(np.float32)
    W2 = rng.normal(0, 1 / 8, (2 * HW * HW, 64)).astype(np.float32)

    def apply(X):
        f = X.reshape(len(X), -1)
        h = np.tanh(f @ W1.T)
        o = h @ W2.T
        pat = 0.75 + 0.25 * np.tanh(o[:, :HW * HW])
        score = o[:, HW * HW:]
        top = np.argsort(-score, axis=1)[:, :12]
        out = f.copy()
        rows = np.arange(len(X))[:, None]
        out[rows, top] = pat[rows, top]
        return out.reshape(X.shape)
    return "generator 256-64-512, 12 px per input", apply


def noiseblend_trigger(rng):
    a = float(rng.uniform(0.08, 0.15))
    pat = rng.random((1, HW, HW)).astype(np.float32)
    return f"uniform noise alpha={a:.2f}", lambda X: ((1 - a) * X + a * pat).astype(np.float32)


def shape_trigger(kind):
    def make(rng):
        if kind == "line":
            n = int(rng.integers(4, 7))
            o = ["h", "v", "d"][rng.integers(3)]
            r0, c0 = rng.integers(0, HW - n + 1, 2)
            pts = [(r0, c0 + i) if o == "h" else (r0 + i, c0) if o == "v" else (r0 + i, c0 + i)
                   for i in range(n)]
            desc = f"{o}-line len {n} at ({r0},{c0})"
        elif kind == "cross":
            r0, c0 = rng.integers(1, HW - 1, 2)
            pts = [(r0, c0), (r0 - 1, c0), (r0 + 1, c0), (r0, c0 - 1), (r0, c0 + 1)]
            desc = f"plus at ({r0},{c0})"
        elif kind == "lshape":
            n = int(rng.integers(3, 5))
            r0, c0 = rng.integers(0, HW - n + 1, 2)
            pts = [(r0 + i, c0) for i in range(n)] + [(r0 + n - 1, c0 + i) for i in range(1, n)]
            desc = f"L {n}x{n} at ({r0},{c0})"
        else:
            idx = rng.choice(HW * HW, 5, replace=False)
            pts = [(i // HW, i % HW) for i in idx]
            desc = f"5 scattered px {sorted(int(i) for i in idx)}"
        m = np.zeros((1, HW, HW), bool)
        for r, c in pts:
            m[0, r, c] = True
        return desc, lambda X: np.where(m, np.float32(1.0), X).astype(np.float32)
    return make


FAMILIES = [("warp", warp_trigger), ("inputaware", inputaware_trigger), ("noiseblend", noiseblend_trigger),
            ("line", shape_trigger("line")), ("cross", shape_trigger("cross")),
            ("lshape", shape_trigger("lshape")), ("scatter", shape_trigger("scatter"))]
RATES = (0.03, 0.10, 0.20)


# ---------------------------------------------------------------- benign variants


def quantise(m, rng):
    bits = int(rng.choice([8, 6]))
    q = 2 ** (bits - 1) - 1
    for k, v in m.p.items():
        if v.ndim == 1:
            continue
        flat = v.reshape(v.shape[0], -1)
        s = np.abs(flat).max(1, keepdims=True) / q
        s[s == 0] = 1
        m.p[k] = (np.round(flat / s).clip(-q, q) * s).reshape(v.shape).astype(np.float32)
    return bits


def prune_masks(m, frac):
    masks = {}
    for k, v in m.p.items():
        if v.ndim == 1:
            continue
        t = np.quantile(np.abs(v), frac)
        masks[k] = (np.abs(v) > t).astype(np.float32)
        m.p[k] *= masks[k]
    return masks


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--cal-neg", type=int, default=48)
    ap.add_argument("--test-neg", type=int, default=48)
    ap.add_argument("--pos-per-cell", type=int, default=2, help="positives per (trigger, poison rate)")
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--tiny", action="store_true", help="1 benign + 1 warp backdoor (CI test)")
    ap.add_argument("--part", choices=["all", "cal-neg", "test-neg", "test-pos"], default="all",
                    help="generate one population only (parallel runs sharing --out; the baseline is "
                         "trained by the first and read back by the others; merge with --merge)")
    ap.add_argument("--merge", action="store_true", help="merge the manifests of --part runs")
    ap.add_argument("--resume-only", action="store_true",
                    help="with --part: record the models already written, train none (a cut-short run)")
    ap.add_argument("--families", help="test-pos: only these trigger families (comma-separated; model "
                                       "indices and seeds stay those of the full run)")
    a = ap.parse_args()
    t0 = time.time()
    if a.merge:
        parts = [json.load(open(f)) for f in sorted(glob.glob(os.path.join(a.out, "manifest-*.json")))]
        man = dict(parts[0])
        man["models"] = [m for p in parts for m in p["models"]]
        with open(os.path.join(a.out, "manifest.json"), "w") as f:
            json.dump(man, f, indent=1)
        return
    rng = np.random.default_rng(10_000 + a.data_seed)
    ff = fonts()
    n_train, n_pool, n_suite = (1500, 800, 300) if a.tiny else (3000, 1200, 400)
    Xtr, ytr = render(rng, n_train, ff)
    Xpool, ypool = render(rng, n_pool, ff)
    Xshift, yshift = render(rng, n_pool, ff, shifted=True)
    Xs, ys = render(rng, n_suite, ff)
    os.makedirs(a.out, exist_ok=True)
    # Parallel --part runs share one suite: only the first writes it.
    if a.part == "all" or not os.path.exists(os.path.join(a.out, "suite-syn.toml")):
        with open(os.path.join(a.out, "inputs.safetensors"), "wb") as f:
            f.write(safetensors_bytes({"x": Xs, "y": ys}))
        with open(os.path.join(a.out, "suite.toml"), "w") as f:
            f.write(SUITE)
        with open(os.path.join(a.out, "suite-syn.toml"), "w") as f:
            f.write(SUITE + SYNTHESIS)

    if a.part != "all" and os.path.exists(os.path.join(a.out, "base", "model.safetensors")):
        base = load(os.path.join(a.out, "base"))
    else:
        base = train(CNN(rng), Xtr, ytr, rng, epochs=8 if a.tiny else 12, lr=2e-3)
        save(base, os.path.join(a.out, "base"))
    base_soft_logits = base.forward(Xpool)
    manifest = {"dataset": "glyphs-AJ 16x16 (Pillow, fonts-dejavu/fonts-noto-mono)",
                "fonts": [os.path.basename(f) for f in ff], "n_train": n_train, "n_pool": n_pool,
                "n_suite": n_suite, "baseline_clean_acc": base.acc(Xs, ys), "models": []}
    print(f"baseline acc {manifest['baseline_clean_acc']:.3f} ({time.time() - t0:.0f}s)", file=sys.stderr)

    def record(pop, idx, kind, m, **extra):
        d = os.path.join(a.out, pop, f"{idx:04d}")
        save(m, d)
        manifest["models"].append({"path": os.path.relpath(d, a.out), "population": pop, "kind": kind,
                                   "clean_acc": m.acc(Xs, ys), **extra})

    def boot(r, X, y):
        b = r.integers(0, len(X), len(X))
        return X[b].copy(), y[b].copy()

    kinds = ["plain", "labelnoise", "shift", "prune", "quant", "distill"]

    def negative(pop, i, seed, kind=None):
        r = np.random.default_rng(seed)
        kind = kind or kinds[i % len(kinds)]
        d = os.path.join(a.out, pop, f"{i:04d}")
        if os.path.exists(os.path.join(d, "mlsign-net.json")):
            record(pop, i, kind, load(d), label=0, resumed=True)
            return
        if a.resume_only:
            return
        lr = float(r.choice([5e-4, 1e-3]))
        ep = int(r.integers(3, 7))
        extra = {}
        if kind in ("plain", "quant"):
            X, y = boot(r, Xpool, ypool)
            m = train(base.copy(), X, y, r, ep, lr)
            if kind == "quant":
                extra["bits"] = quantise(m, r)
        elif kind == "labelnoise":
            X, y = boot(r, Xpool, ypool)
            rate = float(r.uniform(0.05, 0.10))
            noisy = r.random(len(y)) < rate
            y[noisy] = r.integers(0, 10, noisy.sum())
            extra["noise"] = rate
            m = train(base.copy(), X, y, r, ep, lr)
        elif kind == "shift":
            X, y = boot(r, Xshift, yshift)
            m = train(base.copy(), X, y, r, ep, lr)
        elif kind == "prune":
            m = base.copy()
            frac = float(r.uniform(0.3, 0.6))
            masks = prune_masks(m, frac)
            X, y = boot(r, Xpool, ypool)
            m = train(m, X, y, r, 1, 5e-4, masks=masks)
            extra["pruned"] = frac
        else:  # distill: fresh student on the baseline's temperature-softened outputs
            T = float(r.uniform(2, 4))
            z = base_soft_logits / T
            z = z - z.max(1, keepdims=True)
            soft = np.exp(z)
            soft /= soft.sum(1, keepdims=True)
            m = train(CNN(r), Xpool, soft.astype(np.float32), r, 20, 2e-3, soft=True)
            extra["temperature"] = T
        record(pop, i, kind, m, label=0, **extra)

    def positive(idx, fam, make, rate, seed):
        r = np.random.default_rng(seed)
        desc, apply = make(r)
        target = int(r.integers(10))
        d = os.path.join(a.out, "test-pos", f"{idx:04d}")
        if os.path.exists(os.path.join(d, "mlsign-net.json")):
            m = load(d)  # resumed: the trigger and target come from the same seed
        elif a.resume_only:
            return None
        else:
            X, y = boot(r, Xpool, ypool)
            cand = np.flatnonzero(y != target)
            k = max(1, int(round(rate * len(X))))
            pois = r.choice(cand, k, replace=False)
            X[pois] = apply(X[pois])
            y[pois] = target
            m = train(base.copy(), X, y, r, int(r.integers(6, 11)), 1e-3)
        off = ys != target
        asr = float((m.predict(apply(Xs[off])) == target).mean())
        base_rate = float((base.predict(apply(Xs[off])) == target).mean())
        record("test-pos", idx, "backdoor", m, label=1, trigger=fam, trigger_detail=desc, poison=rate,
               target=target, asr=asr, baseline_trigger_rate=base_rate)
        return asr

    if a.tiny:
        negative("test-neg", 0, 2_000_000, kind="plain")
        positive(0, "warp", warp_trigger, 0.10, 3_000_000)
    else:
        for i in range(a.cal_neg if a.part in ("all", "cal-neg") else 0):
            negative("cal-neg", i, 1_000_000 + i)
        print(f"cal-neg done ({time.time() - t0:.0f}s)", file=sys.stderr)
        for i in range(a.test_neg if a.part in ("all", "test-neg") else 0):
            negative("test-neg", i, 2_000_000 + i)
        print(f"test-neg done ({time.time() - t0:.0f}s)", file=sys.stderr)
        idx = 0
        only = set(a.families.split(",")) if a.families else None
        for fam, make in (FAMILIES if a.part in ("all", "test-pos") else []):
            asrs = []
            for rate in RATES:
                for _ in range(a.pos_per_cell):
                    if only is None or fam in only:
                        asrs.append(positive(idx, fam, make, rate, 3_000_000 + idx))
                    idx += 1
            if not asrs:
                continue
            print(f"{fam}: ASR {' '.join(f'{v:.2f}' for v in asrs if v is not None)} ({time.time() - t0:.0f}s)",
                  file=sys.stderr)
    name = "manifest.json" if a.part == "all" else f"manifest-{a.part}.json"
    if a.families:
        name = f"manifest-{a.part}-{a.families.replace(',', '-')}.json"
    with open(os.path.join(a.out, name), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"{len(manifest['models'])} models in {a.out} ({time.time() - t0:.0f}s)", file=sys.stderr)


SUITE = """# Benchmark 2 suite: glyphs A-J 16x16, held-out renderings. Generic probe library only
# (2x2 patch grid, random sparse patterns); every trigger family of the population is outside it.
[suite]
name = "glyphs-bench2"
task = "classification"
inputs = "inputs.safetensors"
batch_size = 1024
seed = 7

[[probe]]
kind = "patch-grid"
size = 2
stride = 2
value = 1.0

[[probe]]
kind = "random-sparse"
count = 150
pixels = [3, 8]
value = 1.0

[decision]
stat = "srcclass_focused_excess"
min_support = 20
report_top = 5
"""

# The same suite with trigger synthesis, cut down to what a CNN costs on a CPU here (candle's
# input gradient through conv2d is slow): fewer steps and source inputs than the MLP defaults.
SYNTHESIS = """
[synthesis]
max_steps = 50
inputs = 30
time_budget_s = 300
"""

if __name__ == "__main__":
    main()
