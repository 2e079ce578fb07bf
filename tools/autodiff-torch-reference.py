"""Reference gradients and optimiser steps from PyTorch, for test/autodiff-torch.test.ts.

Run with Debian's PyTorch (python3-torch 1.13, python3-onnx), from the repository root:

    /usr/bin/python3 tools/autodiff-torch-reference.py

It writes test/fixtures/autodiff/:
- small-cnn.onnx and small-cnn.json: a small CNN built here (Conv with stride/padding, ReLU6 as
  Clip, BatchNormalization with frozen statistics, depthwise Conv, ReLU, MaxPool, 1x1 Conv, dilated
  Conv, Tanh, a residual Add, AveragePool, ReduceMean, Gemm), exported to ONNX, with the full loss
  gradient of every parameter and the parameters after one torch.optim.AdamW step and after one
  torch.optim.SGD (momentum) step; and, with its BatchNorm in train mode (batch statistics), the
  gradients and the running statistics after one forward pass;
- vit-tiny.json: the same for ../shared/models/vit-tiny-random (rebuilt bit for bit by
  ../shared/models/fixtures-src/fixture_models.py) under a linear head, with each parameter's
  gradient norm, its dot product with a fixed pattern, and 64 evenly spaced entries (all 2 M
  values would be 8 MB);
- bert-tiny.json: the same for ../shared/models/bert-tiny-random (BertModelLike of the same file) under
  a linear head on pooler_output, with a padded batch (attention_mask zeros, so the additive mask
  bias is in the graph) and token_type_ids of both types; written with /work/pyenv's PyTorch 2.x
  (`/work/pyenv/bin/python tools/autodiff-torch-reference.py bert-tiny`). PyTorch 2.x's
  trunc_normal_ draws other numbers than 1.13's from the same seed, so the twin's weights are
  loaded from the ONNX file (MatMul weights, exported transposed under generated names, in graph
  order), and its outputs are checked against onnxruntime's before anything is written.

- bert-tiny-text-mean.json, bert-tiny-text-cls-l2.json: the graph headstart's text fine-tuning
  trains (src/finetune/text-graph.ts): bert-tiny-random's last_hidden_state at a fixed padded length,
  pooled in-graph (mean over the attention mask; or the first token, L2-normalised), a linear head,
  one segment; written with /work/pyenv's PyTorch 2.x like bert-tiny.json
  (`/work/pyenv/bin/python tools/autodiff-torch-reference.py bert-tiny-text-mean bert-tiny-text-cls-l2`).

Names on the command line choose which files to write (default: all five).

Inputs, labels and the head's initial weights come from pattern(), an integer formula the test
reproduces exactly, so nothing but these numbers needs committing. The loss is the mean
cross-entropy with label smoothing 0.1 (torch.nn.functional.cross_entropy), as headstart trains.
"""
import json
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
OUT = os.path.join(ROOT, "test", "fixtures", "autodiff")
LABEL_SMOOTHING = 0.1
ADAMW = dict(lr=1e-2, weight_decay=0.05)
SGD = dict(lr=0.1, momentum=0.9, weight_decay=0.01)
VIT_SAMPLES = 64

torch.set_num_threads(2)


def pattern(count, scale=1.0, offset=0):
    """((i*7919 + 13) mod 2003) / 1001.5 - 1, in float64, then float32: exact in any language."""
    i = np.arange(offset, offset + count, dtype=np.int64)
    return ((((i * 7919 + 13) % 2003) / 1001.5 - 1.0) * scale).astype(np.float32)


def labels_for(batch, classes):
    return torch.tensor([(3 * n + 1) % classes for n in range(batch)], dtype=torch.int64)


class SmallCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.depthwise = nn.Conv2d(8, 16, 3, padding=1, groups=8)
        self.pointwise = nn.Conv2d(16, 16, 1)
        self.dilated = nn.Conv2d(16, 16, 3, padding=2, dilation=2)
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        # BatchNorm after the activation, so the exporter cannot fold it into the convolution.
        x = self.bn1(F.relu6(self.conv1(x)))
        x = F.max_pool2d(F.relu(self.depthwise(x)), 2)
        x = x + torch.tanh(self.dilated(self.pointwise(x)))
        x = F.avg_pool2d(x, 2)
        return self.fc(x.mean((2, 3)))


def build_small_cnn():
    torch.manual_seed(0)
    model = SmallCnn()
    with torch.no_grad():
        model.bn1.running_mean.copy_(torch.randn(8) * 0.5)
        model.bn1.running_var.copy_(torch.rand(8) + 0.5)
        model.bn1.weight.copy_(torch.rand(8) + 0.5)
        model.bn1.bias.copy_(torch.randn(8) * 0.2)
    return model.eval()


def loss_of(logits, labels):
    return F.cross_entropy(logits, labels, label_smoothing=LABEL_SMOOTHING)


def trained(model):
    """The parameters that train (a frozen pooler the features never reach is left out)."""
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


def gradients(model, forward):
    model.zero_grad()
    loss = forward()
    loss.backward()
    return loss.item(), {name: p.grad.detach().clone() for name, p in trained(model)}


def stepped(model, forward, make_optimizer):
    """Parameters after one optimiser step from the current ones (which are restored afterwards)."""
    saved = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = make_optimizer([p for _, p in trained(model)])
    optimizer.zero_grad()
    forward().backward()
    optimizer.step()
    after = {name: p.detach().clone() for name, p in trained(model)}
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(saved[name])
    return after


def onnx_names(path, model):
    """Maps each trainable ONNX tensor to its torch parameter: by name (initializers and the Identity
    outputs PyTorch's exporter hands deduplicated parameters out through), else by value (MatMul
    weights are exported transposed under generated names)."""
    graph = onnx.load(path).graph
    initializers = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in initializers:
            initializers[node.output[0]] = initializers[node.input[0]]
    params = {name: p.detach().numpy() for name, p in model.named_parameters()}
    mapping = {}
    for name in params:
        if name in initializers:
            mapping[name] = {"onnx": name, "transposed": False}
    for onnx_name, value in initializers.items():
        if onnx_name in params or value.size < 2:
            continue
        for name, p in params.items():
            if name in mapping:
                continue
            if p.ndim == 2 and value.shape == p.T.shape and np.array_equal(value, p.T):
                mapping[name] = {"onnx": onnx_name, "transposed": True}
                break
            if value.shape == p.shape and np.array_equal(value, p):
                mapping[name] = {"onnx": onnx_name, "transposed": False}
                break
    missing = [name for name in params if name not in mapping]
    if missing:
        raise SystemExit(f"no ONNX tensor found for {missing}")
    return mapping


def onnx_layout(tensor, transposed):
    array = tensor.detach().numpy()
    return np.ascontiguousarray(array.T if transposed else array).reshape(-1)


def sample_indices(count, samples):
    if count <= samples:
        return list(range(count))
    return [round(k * (count - 1) / (samples - 1)) for k in range(samples)]


def rounded(values):
    """float32 precision is all there is: 9 significant digits round-trip it."""
    return [float(f"{v:.9g}") for v in values]


def describe(model, mapping, grads, adamw, sgd, samples):
    entries = []
    for name, p in trained(model):
        info = mapping[name]
        grad = onnx_layout(grads[name], info["transposed"])
        after_adamw = onnx_layout(adamw[name], info["transposed"])
        after_sgd = onnx_layout(sgd[name], info["transposed"])
        indices = sample_indices(grad.size, samples)
        probe = pattern(grad.size, 1.0, 17).astype(np.float64)
        entries.append({
            "torch": name,
            "onnx": info["onnx"],
            "transposed": info["transposed"],
            "size": int(grad.size),
            "gradNorm": float(np.linalg.norm(grad.astype(np.float64))),
            "gradDotPattern": float(np.dot(grad.astype(np.float64), probe)),
            "indices": indices,
            "grad": rounded(grad[indices]),
            "afterAdamW": rounded(after_adamw[indices]),
            "afterSgd": rounded(after_sgd[indices]),
        })
    return entries


def common(batch, classes, loss, logits):
    return {
        "torch": torch.__version__,
        "batch": batch,
        "classes": classes,
        "labelSmoothing": LABEL_SMOOTHING,
        "labels": labels_for(batch, classes).tolist(),
        "adamw": {**ADAMW, "betas": [0.9, 0.999], "eps": 1e-8, "decayAllParameters": True},
        "sgd": {**SGD, "dampening": 0, "nesterov": False},
        "loss": loss,
        "logits": rounded(logits.reshape(-1)),
    }


def small_cnn():
    model = build_small_cnn()
    batch, classes = 4, 3
    x = torch.from_numpy(pattern(batch * 3 * 16 * 16).reshape(batch, 3, 16, 16))
    labels = labels_for(batch, classes)
    path = os.path.join(OUT, "small-cnn.onnx")
    torch.onnx.export(model, x, path, input_names=["pixel_values"], output_names=["logits"],
                      dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}}, opset_version=14)
    forward = lambda: loss_of(model(x), labels)
    loss, grads = gradients(model, forward)
    adamw = stepped(model, forward, lambda params: torch.optim.AdamW(params, **ADAMW))
    sgd = stepped(model, forward, lambda params: torch.optim.SGD(params, **SGD))
    with torch.no_grad():
        logits = model(x).numpy()
    result = common(batch, classes, loss, logits)
    result["input"] = {"shape": [batch, 3, 16, 16], "pattern": {"scale": 1, "offset": 0}}
    mapping = onnx_names(path, model)
    result["parameters"] = describe(model, mapping, grads, adamw, sgd, samples=10 ** 9)
    # The same network with BatchNorm in train mode: one forward normalises with batch statistics
    # and moves the running statistics (momentum 0.1, unbiased variance).
    model.bn1.train()
    train_loss, train_grads = gradients(model, forward)
    result["trainModeBatchNorm"] = {
        "loss": train_loss,
        "momentum": model.bn1.momentum,
        "runningMean": rounded(model.bn1.running_mean.numpy()),
        "runningVar": rounded(model.bn1.running_var.numpy()),
        "gradients": {mapping[name]["onnx"]: rounded(onnx_layout(g, mapping[name]["transposed"])) for name, g in train_grads.items()},
    }
    return result


class VitWithHead(nn.Module):
    def __init__(self, vit, classes):
        super().__init__()
        self.vit = vit
        self.head = nn.Linear(192, classes)
        with torch.no_grad():
            self.head.weight.copy_(torch.from_numpy(pattern(classes * 192, 0.1, 5).reshape(classes, 192)))
            self.head.bias.zero_()

    def forward(self, x):
        return self.head(self.vit(x)[1])


def vit_tiny():
    sys.path.insert(0, os.path.join(SHARED, "models", "fixtures-src"))
    import fixture_models  # noqa: E402

    batch, classes = 2, 3
    model = VitWithHead(fixture_models.build_vit_tiny(), classes).eval()
    x = torch.from_numpy(pattern(batch * 3 * 224 * 224).reshape(batch, 3, 224, 224))
    labels = labels_for(batch, classes)
    forward = lambda: loss_of(model(x), labels)
    loss, grads = gradients(model, forward)
    adamw = stepped(model, forward, lambda params: torch.optim.AdamW(params, **{**ADAMW, "lr": 1e-3}))
    sgd = stepped(model, forward, lambda params: torch.optim.SGD(params, **SGD))
    with torch.no_grad():
        logits = model(x).numpy()
    onnx_path = os.path.join(SHARED, "models", "vit-tiny-random", "onnx", "model.onnx")
    mapping = {("vit." + k if not k.startswith("head.") else k): v for k, v in onnx_names(onnx_path, model.vit).items()}
    mapping["head.weight"] = {"onnx": "head.weight", "transposed": False}
    mapping["head.bias"] = {"onnx": "head.bias", "transposed": False}
    result = common(batch, classes, loss, logits)
    result["adamw"]["lr"] = 1e-3
    result["input"] = {"shape": [batch, 3, 224, 224], "pattern": {"scale": 1, "offset": 0}}
    result["head"] = {"weightPattern": {"scale": 0.1, "offset": 5}, "inputs": "pooler_output"}
    result["parameters"] = describe(model, mapping, grads, adamw, sgd, samples=VIT_SAMPLES)
    return result


class BertWithHead(nn.Module):
    def __init__(self, bert, classes):
        super().__init__()
        self.bert = bert
        self.head = nn.Linear(128, classes)
        with torch.no_grad():
            self.head.weight.copy_(torch.from_numpy(pattern(classes * 128, 0.1, 5).reshape(classes, 128)))
            self.head.bias.zero_()

    def forward(self, ids, mask, types):
        return self.head(self.bert(ids, mask, types)[1])


BERT_SEQUENCE = 12


def load_onnx_weights(model, path):
    """Named initializers by name; the Linear layers behind MatMul nodes, in graph order, transposed."""
    graph = onnx.load(path).graph
    initializers = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    matmul_weights = [node.input[1] for node in graph.node if node.op_type == "MatMul" and node.input[1] in initializers]
    linears = [(name, p) for name, p in model.named_parameters() if name.endswith(".weight") and name not in initializers and p.ndim == 2]
    if len(linears) != len(matmul_weights):
        raise SystemExit(f"{len(linears)} unnamed Linear weights but {len(matmul_weights)} MatMul weights")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in initializers:
                p.copy_(torch.from_numpy(initializers[name]))
        for (name, p), onnx_name in zip(linears, matmul_weights):
            value = initializers[onnx_name].T
            if value.shape != tuple(p.shape):
                raise SystemExit(f"{name} {tuple(p.shape)} against {onnx_name} {value.shape}")
            p.copy_(torch.from_numpy(np.ascontiguousarray(value)))


def check_against_onnxruntime(model, path, ids, mask, types):
    import onnxruntime
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    feeds = {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), "token_type_ids": types.numpy()}
    theirs = session.run(["pooler_output"], feeds)[0]
    with torch.no_grad():
        ours = model(ids, mask, types)[1].numpy()
    error = np.abs(ours - theirs).max()
    if error > 1e-5:
        raise SystemExit(f"the PyTorch twin differs from the ONNX graph by {error}")


def bert_inputs(batch, length):
    """Token ids (i·7919 + 13) mod 20005, row n padded after 12 − 3n tokens; token types 1 from the middle on."""
    ids = np.array([[(k * 7919 + 13) % 20005 for k in range(n * length, (n + 1) * length)] for n in range(batch)], dtype=np.int64)
    mask = np.array([[1 if t < length - 3 * n else 0 for t in range(length)] for n in range(batch)], dtype=np.int64)
    types = np.array([[1 if t >= length // 2 else 0 for t in range(length)] for n in range(batch)], dtype=np.int64)
    ids = ids * mask  # padded positions hold [PAD] (id 0), as a tokenizer pads
    return ids, mask, types


def bert_tiny():
    sys.path.insert(0, os.path.join(SHARED, "models", "fixtures-src"))
    # fixture_models imports torchvision for its CNN builders only; /work/pyenv has none.
    import types as module_types  # noqa: E402
    sys.modules.setdefault("torchvision", module_types.ModuleType("torchvision"))
    import fixture_models  # noqa: E402

    batch, classes = 3, 3
    onnx_path = os.path.join(SHARED, "models", "bert-tiny-random", "onnx", "model.onnx")
    bert = fixture_models.build_bert_tiny()
    load_onnx_weights(bert, onnx_path)
    model = BertWithHead(bert, classes).eval()
    ids, mask, types = (torch.from_numpy(a) for a in bert_inputs(batch, BERT_SEQUENCE))
    check_against_onnxruntime(bert, onnx_path, ids, mask, types)
    labels = labels_for(batch, classes)
    forward = lambda: loss_of(model(ids, mask, types), labels)
    loss, grads = gradients(model, forward)
    adamw = stepped(model, forward, lambda params: torch.optim.AdamW(params, **{**ADAMW, "lr": 1e-3}))
    sgd = stepped(model, forward, lambda params: torch.optim.SGD(params, **SGD))
    with torch.no_grad():
        logits = model(ids, mask, types).numpy()
    mapping = {"bert." + k: v for k, v in onnx_names(onnx_path, model.bert).items()}
    mapping["head.weight"] = {"onnx": "head.weight", "transposed": False}
    mapping["head.bias"] = {"onnx": "head.bias", "transposed": False}
    result = common(batch, classes, loss, logits)
    result["adamw"]["lr"] = 1e-3
    result["input"] = {"shape": [batch, BERT_SEQUENCE], "ids": ids.reshape(-1).tolist(), "attentionMask": mask.reshape(-1).tolist(), "tokenTypeIds": types.reshape(-1).tolist()}
    result["head"] = {"weightPattern": {"scale": 0.1, "offset": 5}, "inputs": "pooler_output"}
    result["parameters"] = describe(model, mapping, grads, adamw, sgd, samples=VIT_SAMPLES)
    return result


class PooledBertWithHead(nn.Module):
    """What headstart's text fine-tuning trains: the encoder's last_hidden_state pooled as the
    backbone pools it (mean over the attention mask, count floored at 1e-9 as sentence-transformers
    does; or the first token), optionally L2-normalised (norm floored at 1e-30), then a linear head."""

    def __init__(self, bert, classes, pooling, normalize):
        super().__init__()
        self.bert = bert
        self.pooling = pooling
        self.normalize = normalize
        self.head = nn.Linear(128, classes)
        with torch.no_grad():
            self.head.weight.copy_(torch.from_numpy(pattern(classes * 128, 0.1, 5).reshape(classes, 128)))
            self.head.bias.zero_()
        # The pooled features never reach the pooler; headstart prunes it from the graph.
        for p in self.bert.pooler.parameters():
            p.requires_grad_(False)

    def forward(self, ids, mask, types):
        hidden = self.bert(ids, mask, types)[0]
        if self.pooling == "mean":
            weights = mask.to(hidden.dtype).unsqueeze(2)
            pooled = (hidden * weights).sum(1) / torch.clamp(weights.sum(1), min=1e-9)
        else:
            pooled = hidden[:, 0]
        if self.normalize:
            pooled = pooled / torch.clamp(pooled.norm(dim=1, keepdim=True), min=1e-30)
        return self.head(pooled)


TEXT_SEQUENCE = 12


def bert_tiny_text(pooling, normalize):
    """The text fine-tuning graph: token ids padded to a fixed length (12; rows padded after 12, 9
    and 6 tokens, [PAD] ids), one segment (token types 0, as headstart feeds them), every weight
    trained but the pooler's."""
    def build():
        sys.path.insert(0, os.path.join(SHARED, "models", "fixtures-src"))
        import types as module_types  # noqa: E402
        sys.modules.setdefault("torchvision", module_types.ModuleType("torchvision"))
        import fixture_models  # noqa: E402

        batch, classes = 3, 3
        onnx_path = os.path.join(SHARED, "models", "bert-tiny-random", "onnx", "model.onnx")
        bert = fixture_models.build_bert_tiny()
        load_onnx_weights(bert, onnx_path)
        model = PooledBertWithHead(bert, classes, pooling, normalize).eval()
        ids, mask, types = (torch.from_numpy(a) for a in bert_inputs(batch, TEXT_SEQUENCE))
        types = torch.zeros_like(types)
        check_against_onnxruntime(bert, onnx_path, ids, mask, types)
        labels = labels_for(batch, classes)
        forward = lambda: loss_of(model(ids, mask, types), labels)
        loss, grads = gradients(model, forward)
        adamw = stepped(model, forward, lambda params: torch.optim.AdamW(params, **{**ADAMW, "lr": 1e-3}))
        sgd = stepped(model, forward, lambda params: torch.optim.SGD(params, **SGD))
        with torch.no_grad():
            logits = model(ids, mask, types).numpy()
        mapping = {"bert." + k: v for k, v in onnx_names(onnx_path, model.bert).items()}
        mapping["head.weight"] = {"onnx": "head.weight", "transposed": False}
        mapping["head.bias"] = {"onnx": "head.bias", "transposed": False}
        result = common(batch, classes, loss, logits)
        result["adamw"]["lr"] = 1e-3
        result["input"] = {"shape": [batch, TEXT_SEQUENCE], "ids": ids.reshape(-1).tolist(), "attentionMask": mask.reshape(-1).tolist(), "tokenTypeIds": types.reshape(-1).tolist()}
        result["head"] = {"weightPattern": {"scale": 0.1, "offset": 5}, "inputs": f"last_hidden_state pooled ({pooling}{', L2' if normalize else ''})"}
        result["pooling"] = {"pooling": pooling, "normalize": normalize}
        result["parameters"] = describe(model, mapping, grads, adamw, sgd, samples=VIT_SAMPLES)
        return result
    return build


def main():
    os.makedirs(OUT, exist_ok=True)
    chosen = set(sys.argv[1:])
    builds = (("small-cnn", small_cnn), ("vit-tiny", vit_tiny), ("bert-tiny", bert_tiny),
              ("bert-tiny-text-mean", bert_tiny_text("mean", False)), ("bert-tiny-text-cls-l2", bert_tiny_text("cls", True)))
    for name, build in builds:
        if chosen and name not in chosen:
            continue
        result = build()
        with open(os.path.join(OUT, f"{name}.json"), "w") as f:
            json.dump(result, f, separators=(",", ":"))
            f.write("\n")
        print(f"{name}: loss {result['loss']:.6f}, {len(result['parameters'])} parameters")


if __name__ == "__main__":
    main()
