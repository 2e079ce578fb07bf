"""Reference input gradients and Grad-CAM maps from PyTorch autograd (float64), for test/explain-torch.test.ts.

Run from the repository root with the project's Python (torch 2.x CPU, onnxruntime):

    /work/pyenv/bin/python tools/explain-torch-reference.py

For each random-weight fixture in ../shared/models (resnet-18-random, mobilenet-v2-random,
vit-tiny-random), the PyTorch twin from ../shared/models/fixtures-src/fixture_models.py gets a
linear head on its pooler_output (weights from pattern(), bias 0), as headstart's attribution
graph puts the trained head on the backbone's features. For two pattern() inputs and targets
[1, 2] it writes the gradient of each input's target logit with respect to its pixel tensor:
norm, dot product with a fixed pattern and 64 evenly spaced entries (the full 2×150,528 values
would be 2.4 MB), plus Grad-CAM on last_hidden_state for the CNNs. The twin is first checked
against onnxruntime on the ONNX file itself, so the numbers describe that file's network.
"""
import json
import os
import sys
import types

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
OUT = os.path.join(ROOT, "test", "fixtures", "explain", "torch-gradients.json")
sys.path.insert(0, os.path.join(SHARED, "models", "fixtures-src"))
# The CUDA torchvision wheel's compiled detection ops do not load against CPU torch; the model
# constructors used here need none of them, so their fake-tensor registrations are skipped.
sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
import fixture_models  # noqa: E402

torch.set_num_threads(2)
CLASSES = 3
TARGETS = [1, 2]
SAMPLES = 64


def pattern(count, scale=1.0, offset=0):
    """((i*7919 + 13) mod 2003) / 1001.5 - 1, in float64, then float32: exact in any language."""
    i = np.arange(offset, offset + count, dtype=np.int64)
    return ((((i * 7919 + 13) % 2003) / 1001.5 - 1.0) * scale).astype(np.float32)


def rounded(values):
    return [float(f"{v:.9g}") for v in values]


def load_onnx_weights(model, name, mapping_file):
    """Copies the ONNX file's weights into the twin, by the torch → ONNX name mapping that
    tools/autodiff-torch-reference.py recorded (its random initialisation depends on the torch version)."""
    graph = onnx.load(os.path.join(SHARED, "models", name, "onnx", "model.onnx")).graph
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]]
    with open(mapping_file) as f:
        mapping = {p["torch"]: p for p in json.load(f)["parameters"]}
    with torch.no_grad():
        for torch_name, p in model.named_parameters():
            entry = mapping["vit." + torch_name]
            value = values[entry["onnx"]]
            p.copy_(torch.from_numpy(np.ascontiguousarray(value.T if entry["transposed"] else value)))
    return model


def gradients(model, x_np, dtype, cnn):
    """Per example: the input gradient of its target logit and, for CNNs, Grad-CAM on last_hidden_state."""
    model = model.to(dtype)
    x = torch.from_numpy(x_np).to(dtype).requires_grad_(True)
    hidden, pooled = model(x)
    dim = pooled.shape[1]
    weight = torch.from_numpy(pattern(CLASSES * dim, 0.1, 5).reshape(CLASSES, dim)).to(dtype)
    logits = pooled @ weight.T
    if cnn:
        hidden.retain_grad()
    sum(logits[n, t] for n, t in enumerate(TARGETS)).backward()
    grad = x.grad.detach().double().numpy()
    cams = []
    if cnn:
        for n in range(len(TARGETS)):
            a = hidden[n].detach().double().numpy()
            weights = hidden.grad[n].double().numpy().mean(axis=(1, 2))
            cams.append(np.maximum(0, np.tensordot(weights, a, axes=(0, 0))).reshape(-1))
    return dim, pooled.detach().double().numpy(), logits.detach().double().numpy(), grad, cams


def relative(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def reference(name, build, cnn):
    """The float64 gradients are the reference; how far PyTorch's own float32 gradients are from
    them is recorded too. A ReLU network's input gradient flips with every pre-activation that
    rounding moves across zero, so float32 arithmetic (PyTorch's or onnxruntime's) cannot come
    closer to the exact gradient than that."""
    model = build().eval()
    if name == "vit-tiny-random":
        model = load_onnx_weights(model, name, os.path.join(ROOT, "test", "fixtures", "autodiff", "vit-tiny.json"))
    batch = len(TARGETS)
    x_np = pattern(batch * 3 * 224 * 224).reshape(batch, 3, 224, 224)
    session = ort.InferenceSession(os.path.join(SHARED, "models", name, "onnx", "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_pooled = session.run(["pooler_output"], {"pixel_values": x_np})[0]
    dim, pooled32, _, grad32, cams32 = gradients(model, x_np, torch.float32, cnn)
    twin_error = float(np.abs(pooled32 - onnx_pooled).max() / np.abs(onnx_pooled).max())
    if twin_error > 1e-4:
        raise SystemExit(f"{name}: the PyTorch twin differs from the ONNX file by {twin_error}")
    _, _, logits, grad, cams = gradients(model, x_np, torch.float64, cnn)
    per_example = []
    for n in range(batch):
        g = grad[n].reshape(-1)
        g32 = grad32[n].reshape(-1)
        indices = [round(k * (g.size - 1) / (SAMPLES - 1)) for k in range(SAMPLES)]
        probe = pattern(g.size, 1.0, 17).astype(np.float64)
        entry = {
            "target": TARGETS[n],
            "gradNorm": float(np.linalg.norm(g)),
            "gradDotPattern": float(np.dot(g, probe)),
            "indices": indices,
            "grad": rounded(g[indices]),
            "torchFloat32": {
                "gradRelativeError": relative(g32, g),
                "sampledRelativeError": relative(g32[indices], g[indices]),
                "normRelativeError": abs(float(np.linalg.norm(g32)) - float(np.linalg.norm(g))) / float(np.linalg.norm(g)),
                "dotError": abs(float(np.dot(g32, probe)) - float(np.dot(g, probe))),
            },
        }
        if cnn:
            entry["gradCam"] = rounded(cams[n])
            entry["torchFloat32"]["gradCamRelativeError"] = relative(cams32[n], cams[n])
        per_example.append(entry)
    return {"twinRelativeError": twin_error, "dim": dim, "logits": rounded(logits.reshape(-1)), "examples": per_example}


def main():
    result = {
        "torch": torch.__version__,
        "classes": CLASSES,
        "input": {"shape": [len(TARGETS), 3, 224, 224], "pattern": {"scale": 1, "offset": 0}},
        "head": {"weightPattern": {"scale": 0.1, "offset": 5}, "features": "pooler_output"},
        "models": {
            "resnet-18-random": reference("resnet-18-random", fixture_models.build_resnet18, True),
            "mobilenet-v2-random": reference("mobilenet-v2-random", fixture_models.build_mobilenet_v2, True),
            "vit-tiny-random": reference("vit-tiny-random", fixture_models.build_vit_tiny, False),
        },
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(result, f, separators=(",", ":"))
        f.write("\n")
    for name, entry in result["models"].items():
        print(f"{name}: twin error {entry['twinRelativeError']:.2e}, torch float32 vs float64 {[e['torchFloat32'] for e in entry['examples']]}")


if __name__ == "__main__":
    main()
