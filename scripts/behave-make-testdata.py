#!/usr/bin/env python3
"""Regenerate testdata/behave/: a tiny nearest-prototype MLP baseline on 8x8 inputs, a candidate
with a planted 2x2 top-left-corner backdoor (to class 3), a benign candidate (small weight noise),
200 inputs and a suite. numpy only. Used by docs/behave.md examples."""
import importlib.util
import json
import os

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("gen", os.path.join(here, "behave-bench-gen.py"))
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)
out = os.path.join(here, "..", "testdata", "behave")
rng = np.random.default_rng(7)
protos = 0.7 * rng.random((10, 64), dtype=np.float32)
x = np.clip(np.repeat(protos, 20, axis=0) + 0.08 * rng.standard_normal((200, 64)), 0, 0.8).astype(np.float32)
y = np.repeat(np.arange(10), 20).astype(np.int64)
os.makedirs(out, exist_ok=True)
gen.write_safetensors(os.path.join(out, "inputs.safetensors"), {"x": x.reshape(200, 1, 8, 8), "y": y})


def model(name, backdoor=False, noise=0.0, seed=0):
    r = np.random.default_rng(seed)
    w1 = np.zeros((11, 64), np.float32)
    b1 = np.zeros(11, np.float32)
    w1[:10] = protos + noise * r.standard_normal((10, 64))
    b1[:10] = 50 - 0.5 * (protos ** 2).sum(1)
    w2 = np.zeros((10, 11), np.float32)
    w2[np.arange(10), np.arange(10)] = 1
    if backdoor:
        w1[10, [0, 1, 8, 9]] = 1
        b1[10] = -3.2
        w2[3, 10] = 200
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    gen.write_safetensors(os.path.join(d, "model.safetensors"), {
        "fc1.weight": w1, "fc1.bias": b1, "fc2.weight": w2, "fc2.bias": np.zeros(10, np.float32)})
    with open(os.path.join(d, "mlsign-net.json"), "w") as f:
        json.dump(gen.SPEC, f, indent=1)


model("base")
model("backdoored", backdoor=True)
model("benign", noise=0.03, seed=1)
with open(os.path.join(out, "suite.toml"), "w") as f:
    f.write("""# Example suite for the committed fixtures (scripts/behave-make-testdata.py).
[suite]
name = "testdata-protos"
task = "classification"
inputs = "inputs.safetensors"
batch_size = 256
seed = 42

[[probe]]
kind = "patch-grid"
size = 2
stride = 2
value = 1.0

[[probe]]
kind = "random-sparse"
count = 50
pixels = [3, 6]
value = 1.0

[decision]
stat = "srcclass_median_excess"
threshold = 0.5
min_support = 10
report_top = 5
""")
