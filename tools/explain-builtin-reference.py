"""Float64 input gradients of headstart's attribution graph for builtin:mobilenet-v2-1.0, for
test/explain-builtin.test.ts.

Run from the repository root with the project's Python (torch 2.x CPU, onnx):

    /work/pyenv/bin/python tools/explain-builtin-reference.py

The builtin backbone is a TF.js graph that headstart converts itself, so there is no PyTorch twin:
this script has `npx tsx tools/explain-dump-attribution.ts` write the attribution graph (backbone +
pooling + the pattern() linear head of test/helpers/pattern-head.ts) and evaluates that ONNX graph
node by node in float64 torch (only the operators the converted graph holds: Transpose, Conv with
explicit pads, Clip, Add, AveragePool, Flatten, Gemm; anything else stops the script), then
differentiates with torch.autograd. The inputs are the points α·x of integrated gradients' path
from the black image to x = (pattern() + 1)/2 (values in [0, 1], as the preprocessing gives).
Also recorded: float64 central differences along x, which agree with autograd only for steps
below ~1e-6 — the network is piecewise linear with kinks that close together (ReLU6), which is
why integrated gradients needs many steps on it.
"""
import json
import os
import subprocess
import tempfile

import numpy as np
import onnx
from onnx import helper, numpy_helper
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test", "fixtures", "explain", "builtin-mobilenet-gradients.json")
ALPHAS = [0.3, 1.0]
TARGET = 0
SAMPLES = 64
torch.set_num_threads(2)


def pattern(count, scale=1.0, offset=0):
    i = np.arange(offset, offset + count, dtype=np.int64)
    return ((((i * 7919 + 13) % 2003) / 1001.5 - 1.0) * scale).astype(np.float32)


def rounded(values):
    return [float(f"{v:.9g}") for v in values]


class Float64Graph:
    def __init__(self, path, dtype=np.float64):
        model = onnx.load(path)
        self.graph = model.graph
        self.initializers = {}
        for t in self.graph.initializer:
            value = numpy_helper.to_array(t)
            self.initializers[t.name] = torch.from_numpy(value.astype(dtype) if value.dtype.kind == "f" else value.copy())

    def __call__(self, x):
        env = dict(self.initializers)
        env[self.graph.input[0].name] = x
        for node in self.graph.node:
            a = {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}
            i = [env[name] if name else None for name in node.input]
            op = node.op_type
            if op == "Transpose":
                y = i[0].permute(*a["perm"])
            elif op == "Conv":
                if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                    raise SystemExit(f"{node.name}: auto_pad")
                top, left, bottom, right = a.get("pads", [0, 0, 0, 0])
                y = F.conv2d(F.pad(i[0], (left, right, top, bottom)), i[1], i[2] if len(i) > 2 else None,
                             stride=a.get("strides", [1, 1]), dilation=a.get("dilations", [1, 1]), groups=a.get("group", 1))
            elif op == "Clip":
                y = torch.clamp(i[0], float(i[1]), float(i[2]))
            elif op == "Add":
                y = i[0] + i[1]
            elif op == "AveragePool":
                if any(a.get("pads", [0])):
                    raise SystemExit(f"{node.name}: padded AveragePool")
                y = F.avg_pool2d(i[0], a["kernel_shape"], a.get("strides", a["kernel_shape"]))
            elif op == "Flatten":
                y = i[0].flatten(a.get("axis", 1))
            elif op == "Gemm":
                left_ = i[0].T if a.get("transA", 0) else i[0]
                right_ = i[1].T if a.get("transB", 0) else i[1]
                y = a.get("alpha", 1.0) * left_ @ right_ + (a.get("beta", 1.0) * i[2] if len(i) > 2 else 0)
            else:
                raise SystemExit(f"operator {op} is not evaluated by this script")
            env[node.output[0]] = y
        return env[self.graph.output[0].name]


def main():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "attribution.onnx")
        subprocess.run(["npx", "tsx", "tools/explain-dump-attribution.ts", path, os.path.join(tmp, "cache")], cwd=ROOT, check=True)
        f = Float64Graph(path)
        f32 = Float64Graph(path, np.float32)
    x = torch.from_numpy(((pattern(224 * 224 * 3) + 1) / 2).astype(np.float64).reshape(1, 224, 224, 3))
    probe = pattern(x.numel(), 1.0, 17).astype(np.float64)
    points = []
    for alpha in ALPHAS:
        p = (alpha * x).clone().requires_grad_(True)
        logits = f(p)
        logits[0, TARGET].backward()
        g = p.grad.numpy().reshape(-1)
        indices = [round(k * (g.size - 1) / (SAMPLES - 1)) for k in range(SAMPLES)]
        # PyTorch's own float32 gradient of the same graph: how close float32 arithmetic can come.
        p32 = (alpha * x).float().clone().requires_grad_(True)
        f32(p32)[0, TARGET].backward()
        g32 = p32.grad.double().numpy().reshape(-1)
        with torch.no_grad():
            differences = {str(h): float((f(p + h * x)[0, TARGET] - f(p - h * x)[0, TARGET]) / (2 * h)) for h in (1e-3, 1e-5, 1e-7)}
        points.append({
            "alpha": alpha,
            "logits": rounded(logits.detach().numpy().reshape(-1)),
            "gradNorm": float(np.linalg.norm(g)),
            "gradDotPattern": float(np.dot(g, probe)),
            "gradDotInput": float(np.dot(g, x.numpy().reshape(-1))),
            "centralDifferencesAlongInput": differences,
            "indices": indices,
            "grad": rounded(g[indices]),
            "torchFloat32": {
                "normRelativeError": abs(float(np.linalg.norm(g32)) - float(np.linalg.norm(g))) / float(np.linalg.norm(g)),
                "dotError": abs(float(np.dot(g32, probe)) - float(np.dot(g, probe))),
                "sampledRelativeError": float(np.linalg.norm(g32[indices] - g[indices]) / np.linalg.norm(g[indices])),
            },
        })
    result = {"torch": torch.__version__, "target": TARGET, "input": "(pattern(224·224·3) + 1)/2, NHWC", "points": points}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as out:
        json.dump(result, out, separators=(",", ":"))
        out.write("\n")
    for point in points:
        print(point["alpha"], point["logits"], point["gradDotInput"], point["centralDifferencesAlongInput"], point["torchFloat32"])


if __name__ == "__main__":
    main()
