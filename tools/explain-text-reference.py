"""Reference integrated gradients on the token embeddings of bert-tiny-random, from PyTorch autograd
(float64), for test/explain-text-ig.test.ts.

Run from the repository root with the project's Python (torch 2.x CPU, onnxruntime):

    /work/pyenv/bin/python tools/explain-text-reference.py

The fixture's PyTorch twin (../shared/models/fixtures-src/fixture_models.py) gets the ONNX file's
weights, is checked against onnxruntime on that file, then takes a linear head on last_hidden_state mean-pooled
over the attention mask (the text backbone's pooling; weights pattern(2·128, 0.1, 5), bias 0, as
test/helpers/pattern-head.ts). For the README's ids of "The cat sat." it records the gradient of
the target logit with respect to the word embeddings at the text, and integrated gradients per
token from the [PAD] embedding (the [CLS] and [SEP] positions kept), by 64-point Gauss–Legendre
quadrature in float64 — converged far below float32 rounding on this smooth network.
"""
import json
import os
import sys
import types

import numpy as np
import onnx
from onnx import numpy_helper
import onnxruntime as ort
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
OUT = os.path.join(ROOT, "test", "fixtures", "explain", "bert-tiny-ig.json")
sys.path.insert(0, os.path.join(SHARED, "models", "fixtures-src"))
try:
    import torchvision  # noqa: F401  (the fixture module imports it for its CNNs; BERT needs none of it)
except ImportError:
    sys.modules["torchvision"] = types.ModuleType("torchvision")
import fixture_models  # noqa: E402

torch.set_num_threads(2)
IDS = [2, 5, 5144, 3047, 7, 3]  # [CLS] the cat sat . [SEP]
TARGET = 1
CLASSES = 2
STEPS = 64


def pattern(count, scale=1.0, offset=0):
    i = np.arange(offset, offset + count, dtype=np.int64)
    return ((((i * 7919 + 13) % 2003) / 1001.5 - 1.0) * scale).astype(np.float32)


def rounded(values):
    return [float(f"{v:.9g}") for v in values]


def logits_of(model, embeds, ids, weight):
    """The twin's forward from word embeddings: BertModelLike.forward with the lookup replaced."""
    e = model.embeddings
    types_ = torch.zeros_like(ids)
    x = e.LayerNorm(embeds + e.token_type_embeddings(types_) + e.position_embeddings(e.position_ids[:, : ids.size(1)]))
    mask = torch.ones_like(ids)
    bias = (1.0 - mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
    for layer in model.encoder.layer:
        x = layer(x, bias)
    pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1e-9)
    return x, pooled @ weight.T


def load_onnx_weights(model, path):
    """The ONNX file's weights into the twin (its seed-0 initialisation depends on the torch version):
    by HF name where the file kept it (through its Identity aliases), else — the exporter's anonymous
    MatMul weights — the remaining Linear weights in graph order, transposed."""
    graph = onnx.load(path).graph
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]]
    anonymous = [values[n.input[1]].T for n in graph.node if n.op_type == "MatMul" and n.input[1].startswith("onnx::")]
    with torch.no_grad():
        for name, p in model.named_parameters():
            value = values[name] if name in values else anonymous.pop(0)
            if tuple(value.shape) != tuple(p.shape):
                raise SystemExit(f"{name}: ONNX shape {value.shape}, twin {tuple(p.shape)}")
            p.copy_(torch.from_numpy(np.ascontiguousarray(value)))
    return model


def main():
    model = load_onnx_weights(fixture_models.build_bert_tiny(), os.path.join(SHARED, "models", "bert-tiny-random", "onnx", "model.onnx"))
    ids = torch.tensor([IDS])
    session = ort.InferenceSession(os.path.join(SHARED, "models", "bert-tiny-random", "onnx", "model.onnx"), providers=["CPUExecutionProvider"])
    feeds = {"input_ids": ids.numpy(), "attention_mask": np.ones_like(ids.numpy()), "token_type_ids": np.zeros_like(ids.numpy())}
    onnx_hidden = session.run(["last_hidden_state"], feeds)[0]
    with torch.no_grad():
        twin_hidden, _ = model(ids, torch.ones_like(ids), torch.zeros_like(ids))
    twin_error = float(np.abs(twin_hidden.numpy() - onnx_hidden).max() / np.abs(onnx_hidden).max())
    if twin_error > 1e-4:
        raise SystemExit(f"the PyTorch twin differs from the ONNX file by {twin_error}")
    model = model.double()
    weight = torch.from_numpy(pattern(CLASSES * 128, 0.1, 5).reshape(CLASSES, 128)).double()
    table = model.embeddings.word_embeddings.weight.detach()
    x = table[ids]
    base = table[torch.tensor([[IDS[0]] + [0] * (len(IDS) - 2) + [IDS[-1]]])]
    # The gradient at the text itself.
    at = x.clone().requires_grad_(True)
    _, logits = logits_of(model, at, ids, weight)
    logits[0, TARGET].backward()
    grad = at.grad.numpy().reshape(-1)
    # Integrated gradients, Gauss–Legendre on [0, 1].
    nodes, weights = np.polynomial.legendre.leggauss(STEPS)
    nodes, weights = (nodes + 1) / 2, weights / 2
    path = torch.cat([base + float(a) * (x - base) for a in nodes]).requires_grad_(True)
    _, path_logits = logits_of(model, path, ids.expand(STEPS, -1), weight)
    path_logits[:, TARGET].sum().backward()
    integral = (torch.from_numpy(weights)[:, None, None] * path.grad).sum(0)
    tokens = ((x - base)[0] * integral).sum(-1).numpy()
    with torch.no_grad():
        f_base = logits_of(model, base, ids, weight)[1][0, TARGET].item()
    result = {
        "torch": torch.__version__,
        "twinRelativeError": twin_error,
        "ids": IDS,
        "target": TARGET,
        "head": {"classes": CLASSES, "weightPattern": {"scale": 0.1, "offset": 5}, "pooling": "mean"},
        "logits": rounded(logits.detach().numpy().reshape(-1)),
        "baselineLogit": f_base,
        "grad": rounded(grad),
        "steps": STEPS,
        "tokens": rounded(tokens),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as out:
        json.dump(result, out, separators=(",", ":"))
        out.write("\n")
    print(f"twin error {twin_error:.2e}; logits {result['logits']}; Σ tokens {tokens.sum():.9f} vs f(x) − f(x′) {logits[0, TARGET].item() - f_base:.9f}; tokens {result['tokens']}")


if __name__ == "__main__":
    main()
