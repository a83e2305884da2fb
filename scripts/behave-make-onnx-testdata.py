#!/usr/bin/env python3
"""Regenerate testdata/behave/onnx/: ONNX versions of the committed behave fixtures, for the
`onnx` cargo feature (candle-onnx) tests.

* mlp/{base,backdoored,benign}/model.onnx: the exact weights of testdata/behave/{base,backdoored,
  benign}/model.safetensors (run scripts/behave-make-testdata.py first) as
  Flatten -> Gemm -> Relu -> MatMul -> Add -> Softmax.
* mlp-batch1/model.onnx: the baseline with the batch dimension fixed to 1 (mlsign runs it per sample).
* cnn/{base,backdoored,benign}/model.onnx and cnn-net/{...}/ (the same CNNs in the mlsign network
  spec): Conv 3x3 (2 channels: identity, 2x2 corner detector) -> Relu -> Flatten -> Gemm -> Softmax,
  a nearest-prototype classifier; the backdoored one sends the top-left 2x2 corner patch to class 3.
* two-outputs/model.onnx: the baseline exposing `logits` besides `probs` (suites pick one with
  `model_output`).
* unsupported-op/model.onnx: the MLP with Softplus (not in candle-onnx) in place of Relu.
* mismatched-arch/model.onnx: the MLP with 12 hidden units instead of 11.
* external-data/model.onnx: the MLP whose first weight points at an external file.
* ops/model.onnx: one graph using every supported op but Gelu, random weights; its reference
  (log-probabilities) comes from onnxruntime, which this fixture therefore needs.
* reference.safetensors: inputs `x` [16, 1, 8, 8] (8 clean inputs, the same 8 with the corner
  trigger) and the probabilities of every model above on them, computed with numpy (float64, then
  rounded to float32) and cross-checked against onnxruntime.

Needs numpy, onnx and onnxruntime (pinned in scripts/behave-onnx-requirements.txt)."""
import json
import os
import struct

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

here = os.path.dirname(os.path.abspath(__file__))
src = os.path.join(here, "..", "testdata", "behave")
out = os.path.join(src, "onnx")
OPSET = 13


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    res = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        dt = {"F32": np.float32, "I64": np.int64}[meta["dtype"]]
        a, b = meta["data_offsets"]
        res[name] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=dt).reshape(meta["shape"])
    return res


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        b = arr.tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def save(model, name):
    onnx.checker.check_model(model)
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "model.onnx")
    onnx.save(model, path)
    return path


def graph_model(nodes, inits, batch, name, labels=None, opset=OPSET):
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 1, 8, 8])
    y = helper.make_tensor_value_info("probs", TensorProto.FLOAT, [batch, 10])
    g = helper.make_graph(nodes, name, [x], [y], [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="mlsign-testdata")
    m.ir_version = 8
    if labels:
        helper.set_model_props(m, {"labels": json.dumps(labels)})
    return m


def mlp(w, batch="N", act="Relu", name="mlp"):
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc1.weight", "fc1.bias"], ["h"], name="fc1", transB=1),
        helper.make_node(act, ["h"], ["a"], name="act1"),
        helper.make_node("MatMul", ["a", "fc2.weight_t"], ["z"], name="fc2"),
        helper.make_node("Add", ["z", "fc2.bias"], ["logits"], name="fc2_bias"),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=1),
    ]
    inits = {"fc1.weight": w["fc1.weight"], "fc1.bias": w["fc1.bias"],
             "fc2.weight_t": np.ascontiguousarray(w["fc2.weight"].T), "fc2.bias": w["fc2.bias"]}
    return graph_model(nodes, inits, batch, name, labels=[f"digit-{k}" for k in range(10)])


def softmax(z):
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def mlp_ref(w, x):
    x = x.reshape(len(x), -1).astype(np.float64)
    h = np.maximum(x @ w["fc1.weight"].T.astype(np.float64) + w["fc1.bias"], 0)
    return softmax(h @ w["fc2.weight"].T.astype(np.float64) + w["fc2.bias"])


# ---- the CNN: channel 0 copies the image, channel 1 fires on a bright 2x2 block ----
rng = np.random.default_rng(7)
protos = 0.7 * rng.random((10, 64), dtype=np.float32)  # same draw as behave-make-testdata.py


def cnn_weights(backdoor=False, noise=0.0, seed=0):
    r = np.random.default_rng(seed)
    cw = np.zeros((2, 1, 3, 3), np.float32)
    cw[0, 0, 1, 1] = 1.0
    cw[1, 0, 1:, 1:] = 1.0  # sums x[i,j], x[i,j+1], x[i+1,j], x[i+1,j+1]
    cb = np.array([0.0, -3.2], np.float32)
    fw = np.zeros((10, 128), np.float32)
    fw[:, :64] = protos + noise * r.standard_normal((10, 64))
    fb = (50 - 0.5 * (protos ** 2).sum(1)).astype(np.float32)
    if backdoor:
        fw[3, 64] = 200.0  # corner detector at (0, 0) -> class 3
    return {"conv.weight": cw, "conv.bias": cb, "fc.weight": fw.astype(np.float32), "fc.bias": fb}


def cnn(w, batch="N", name="cnn"):
    nodes = [
        helper.make_node("Conv", ["input", "conv.weight", "conv.bias"], ["c"], name="conv",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=1),
    ]
    return graph_model(nodes, w, batch, name)


def cnn_ref(w, x):
    n = len(x)
    xp = np.pad(x[:, 0].astype(np.float64), ((0, 0), (1, 1), (1, 1)))
    c = np.zeros((n, 2, 8, 8))
    for o in range(2):
        for i in range(3):
            for j in range(3):
                c[:, o] += w["conv.weight"][o, 0, i, j] * xp[:, i:i + 8, j:j + 8]
        c[:, o] += w["conv.bias"][o]
    r = np.maximum(c, 0).reshape(n, -1)
    return softmax(r @ w["fc.weight"].T.astype(np.float64) + w["fc.bias"])


CNN_SPEC = {
    "format": "mlsign-net/1",
    "input_shape": [1, 8, 8],
    "layers": [
        {"type": "conv2d", "weight": "conv.weight", "bias": "conv.bias", "padding": 1},
        {"type": "relu"},
        {"type": "flatten"},
        {"type": "linear", "weight": "fc.weight", "bias": "fc.bias"},
        {"type": "softmax"},
    ],
}

inputs = read_safetensors(os.path.join(src, "inputs.safetensors"))["x"]
x = np.concatenate([inputs[::25][:8], inputs[::25][:8]]).astype(np.float32).copy()
x[8:, 0, :2, :2] = 1.0  # the corner trigger on the second half
refs = {"x": x}
paths = {}

for name in ["base", "backdoored", "benign"]:
    w = read_safetensors(os.path.join(src, name, "model.safetensors"))
    paths[f"mlp/{name}"] = save(mlp(w), f"mlp/{name}")
    refs[f"mlp/{name}"] = mlp_ref(w, x)
    if name == "base":
        paths["mlp-batch1"] = save(mlp(w, batch=1), "mlp-batch1")
        refs["mlp-batch1"] = refs["mlp/base"]
        m = mlp(w)
        m.graph.output.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10]))
        paths["two-outputs"] = save(m, "two-outputs")
        m = mlp(w, act="Softplus")
        paths["unsupported-op"] = save(m, "unsupported-op")
        w12 = dict(w)
        w12["fc1.weight"] = np.concatenate([w["fc1.weight"], np.zeros((1, 64), np.float32)])
        w12["fc1.bias"] = np.concatenate([w["fc1.bias"], np.zeros(1, np.float32)])
        w12["fc2.weight"] = np.concatenate([w["fc2.weight"], np.zeros((10, 1), np.float32)], 1)
        paths["mismatched-arch"] = save(mlp(w12), "mismatched-arch")
        refs["mismatched-arch"] = mlp_ref(w12, x)
        m = mlp(w)
        t = m.graph.initializer[0]
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        for k, v in [("location", "../weights.bin"), ("offset", "0"), ("length", str(11 * 64 * 4))]:
            e = t.external_data.add()
            e.key, e.value = k, v
        d = os.path.join(out, "external-data")
        os.makedirs(d, exist_ok=True)
        onnx.save(m, os.path.join(d, "model.onnx"))

for name, kw in [("base", {}), ("backdoored", {"backdoor": True}), ("benign", {"noise": 0.03, "seed": 1})]:
    w = cnn_weights(**kw)
    paths[f"cnn/{name}"] = save(cnn(w), f"cnn/{name}")
    refs[f"cnn/{name}"] = cnn_ref(w, x)
    d = os.path.join(out, "cnn-net", name)
    os.makedirs(d, exist_ok=True)
    write_safetensors(os.path.join(d, "model.safetensors"), w)
    with open(os.path.join(d, "mlsign-net.json"), "w") as f:
        json.dump(CNN_SPEC, f, indent=1)



def ops_model():
    """One graph touching every op in mlsign's supported list except Gelu (opset 20), the way
    exporters write them (PyTorch's Shape/Gather/Unsqueeze/Concat/Reshape flatten included)."""
    r = np.random.default_rng(3)
    f = lambda *s: (0.5 * r.standard_normal(s)).astype(np.float32)
    c = lambda v, dt=np.float32: np.array(v, dt)
    inits = {
        "cw": f(4, 1, 3, 3), "cb": f(4), "bn_s": 1 + 0.1 * f(4), "bn_b": f(4), "bn_m": 0.1 * f(4),
        "bn_v": (1 + np.abs(f(4))).astype(np.float32), "slope": f(8, 1, 1), "w1": f(32, 128) * 0.3,
        "b1": f(32), "w2": f(32, 10), "b2": f(10), "i0": c(0, np.int64), "ax0": c([0], np.int64),
        "ax1": c([1], np.int64), "m1": c([-1], np.int64), "lo": c(-2.0), "hi": c(2.0), "one": c(1.0),
        "two": c(2.0), "three": c(3.0),
    }
    n = helper.make_node
    nodes = [
        n("Conv", ["input", "cw", "cb"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        n("BatchNormalization", ["c", "bn_s", "bn_b", "bn_m", "bn_v"], ["bn"], name="bn", epsilon=1e-5),
        n("LeakyRelu", ["bn"], ["a"], name="lrelu", alpha=0.1),
        n("MaxPool", ["a"], ["mp"], name="maxpool", kernel_shape=[2, 2], strides=[2, 2]),
        n("AveragePool", ["a"], ["ap"], name="avgpool", kernel_shape=[2, 2], strides=[2, 2]),
        n("Concat", ["mp", "ap"], ["cat"], name="cat", axis=1),
        n("Dropout", ["cat"], ["d"], name="dropout"),
        n("PRelu", ["d", "slope"], ["pr"], name="prelu"),
        n("HardSwish", ["pr"], ["hs"], name="hardswish"),
        n("Transpose", ["hs"], ["t"], name="transpose", perm=[0, 2, 3, 1]),
        n("Shape", ["t"], ["s"], name="shape"),
        n("Gather", ["s", "i0"], ["g"], name="gather", axis=0),
        n("Unsqueeze", ["g", "ax0"], ["u"], name="unsqueeze0"),
        n("Concat", ["u", "m1"], ["shp"], name="shape_cat", axis=0),
        n("Reshape", ["t", "shp"], ["flat"], name="reshape"),
        n("Gemm", ["flat", "w1", "b1"], ["h"], name="fc1", transB=1),
        n("Selu", ["h"], ["e1"], name="selu"),
        n("Tanh", ["h"], ["e2"], name="tanh"),
        n("Sigmoid", ["h"], ["e3"], name="sigmoid"),
        n("Mul", ["e2", "e3"], ["e23"], name="mul"),
        n("Add", ["e1", "e23"], ["m"], name="add"),
        n("Clip", ["m", "lo", "hi"], ["cl"], name="clip"),
        n("Abs", ["cl"], ["ab"], name="abs"),
        n("Add", ["ab", "one"], ["ab1"], name="add1"),
        n("Sqrt", ["ab1"], ["sq"], name="sqrt"),
        n("Log", ["sq"], ["lg"], name="log"),
        n("Neg", ["lg"], ["ng"], name="neg"),
        n("Exp", ["ng"], ["ex"], name="exp"),
        n("Erf", ["cl"], ["er"], name="erf"),
        n("Pow", ["cl", "two"], ["pw"], name="pow"),
        n("Div", ["pw", "three"], ["dv"], name="div"),
        n("Sub", ["er", "dv"], ["sb"], name="sub"),
        n("Mul", ["sb", "ex"], ["z0"], name="mul2"),
        n("Identity", ["z0"], ["z1"], name="identity"),
        n("Cast", ["z1"], ["z"], name="cast", to=TensorProto.FLOAT),
        n("Unsqueeze", ["z", "ax1"], ["z2"], name="unsqueeze1"),
        n("Squeeze", ["z2", "ax1"], ["z3"], name="squeeze"),
        n("ReduceMean", ["z"], ["rm"], name="reducemean", axes=[1], keepdims=1),
        n("Sub", ["z3", "rm"], ["z4"], name="center"),
        n("MatMul", ["z4", "w2"], ["o"], name="fc2"),
        n("Add", ["o", "b2"], ["o2"], name="fc2_bias"),
        n("LogSoftmax", ["o2"], ["probs"], name="logsoftmax", axis=1),
    ]
    return graph_model(nodes, inits, "N", "ops", opset=14)  # HardSwish needs 14


paths["ops"] = save(ops_model(), "ops")

try:
    import onnxruntime as ort
except ImportError:
    raise SystemExit("the references need onnxruntime (scripts/behave-onnx-requirements.txt)")
for k, p in paths.items():
    if k == "unsupported-op":
        continue
    if k == "ops":  # no numpy twin: onnxruntime is the reference (log-probabilities)
        refs[k] = ort.InferenceSession(p, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
        continue
    sess = ort.InferenceSession(p, providers=["CPUExecutionProvider"])
    if k == "two-outputs":
        continue
    if k == "mlp-batch1":
        y = np.concatenate([sess.run(None, {"input": x[i:i + 1]})[0] for i in range(len(x))])
    else:
        y = sess.run(None, {"input": x})[0]
    diff = np.abs(y - refs[k]).max()
    assert diff < 1e-5, (k, diff)
    print(f"onnxruntime {ort.__version__} vs numpy on {k}: max abs diff {diff:.2e}")

write_safetensors(os.path.join(out, "reference.safetensors"), refs)
for k in ["mlp/backdoored", "cnn/backdoored", "cnn/base"]:
    print(k, "argmax clean", refs[k][:8].argmax(1), "triggered", refs[k][8:].argmax(1))
