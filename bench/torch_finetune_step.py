"""Times one fine-tuning step of a fixture network's top blocks in PyTorch CPU, for the benchmark's ratio.

Run by bench/finetune.ts with /work/pyenv's PyTorch 2.x (CPU wheel) and the tuned environment the
project quotes (see bench/torch_forward.py). The network is rebuilt from
../shared/models/fixtures-src/fixture_models.py when torchvision imports, its BatchNorm layers folded
into the convolutions they follow, as in the ONNX export headstart trains; without torchvision
(/work/pyenv has none now) the same layers come from bench/torch_fixture_cnns.py, BatchNorm already
folded. Either way both sides run the same graph:
either the last two blocks (MobileNetV2: features.16, features.17-18; ResNet-18: layer4.0,
layer4.1) on activations of the frozen part computed once, or the whole network from the pixels
('all'); then global average pooling and a linear head.

A step is forward, mean cross-entropy with label smoothing 0.1, backward and torch.optim.AdamW
(weight decay 0.01). Eager mode is always timed; with `compile`, torch.compile (inductor) of the
trainable part too, and the faster is PyTorch's number. Prints one JSON line.

Usage: torch_finetune_step.py <fixtures-src> <mobilenet-v2|resnet-18> <batch> <threads> <seconds> <top2|all> [compile]
"""
import json
import os
import statistics
import sys
import time

sys.path.insert(0, sys.argv[1])
# The torchvision wheel beside /work/pyenv's CPU torch is a CUDA build whose compiled operators do
# not load; its fake-tensor registrations for them then fail at import. The architectures used here
# are plain Python modules, so those registrations are skipped.
import types  # noqa: E402
sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.nn.utils.fusion import fuse_conv_bn_eval  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_fixture_cnns  # noqa: E402
try:
    import fixture_models  # noqa: E402
except ModuleNotFoundError:  # no torchvision: the plain torch.nn twins
    fixture_models = None

name, batch, threads, seconds = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
scope = sys.argv[6] if len(sys.argv) > 6 else "top2"
use_compile = len(sys.argv) > 7 and sys.argv[7] == "compile"
torch.set_num_threads(threads)
CLASSES = 2


def fold_batch_norms(module):
    """Replaces every Conv2d → BatchNorm2d pair (in Sequentials and ResNet blocks) by the folded Conv2d."""
    for child in module.children():
        fold_batch_norms(child)
    if isinstance(module, nn.Sequential):
        items = list(module)
        for i in range(len(items) - 1):
            if isinstance(items[i], nn.Conv2d) and isinstance(items[i + 1], nn.BatchNorm2d):
                module[i] = fuse_conv_bn_eval(items[i], items[i + 1])
                module[i + 1] = nn.Identity()
    for conv, bn in (("conv1", "bn1"), ("conv2", "bn2")):
        if isinstance(getattr(module, conv, None), nn.Conv2d) and isinstance(getattr(module, bn, None), nn.BatchNorm2d):
            setattr(module, conv, fuse_conv_bn_eval(getattr(module, conv), getattr(module, bn)))
            setattr(module, bn, nn.Identity())
    return module


class Top(nn.Module):
    def __init__(self, blocks, channels):
        super().__init__()
        self.blocks = blocks
        self.head = nn.Linear(channels, CLASSES)

    def forward(self, x):
        return self.head(torch.flatten(F.adaptive_avg_pool2d(self.blocks(x), 1), 1))


def split(model_name):
    """The frozen prefix (identity for 'all') and the trained top."""
    if fixture_models is None:
        if model_name == "mobilenet-v2":
            features = torch_fixture_cnns.mobilenet_v2_features()
            cut = 0 if scope == "all" else 16
            return features[:cut], Top(nn.Sequential(*features[cut:]), 1280)
        if model_name == "resnet-18":
            stem, layer4 = torch_fixture_cnns.resnet18_parts()
            if scope == "all":
                return nn.Sequential(), Top(nn.Sequential(stem, layer4), 512)
            return stem, Top(layer4, 512)
    if model_name == "mobilenet-v2":
        features = fixture_models.build_mobilenet_v2().m.features
        cut = 0 if scope == "all" else 16
        return features[:cut], Top(fold_batch_norms(nn.Sequential(*features[cut:])), 1280)
    if model_name == "resnet-18":
        m = fixture_models.build_resnet18().m
        stem = [m.conv1, m.bn1, m.relu, m.maxpool, m.layer1, m.layer2, m.layer3]
        if scope == "all":
            return nn.Sequential(), Top(fold_batch_norms(nn.Sequential(*stem, m.layer4)), 512)
        return nn.Sequential(*stem), Top(fold_batch_norms(m.layer4), 512)
    raise SystemExit(f"unknown model {model_name}")


def median_ms(run):
    """Median over three windows of wall milliseconds per call, and the CPU milliseconds (all threads) per call."""
    for _ in range(3):
        run()
    windows = []
    cpu = []
    for _ in range(3):
        runs = 0
        start = time.perf_counter()
        cpu_start = time.process_time()
        while time.perf_counter() - start < seconds or runs < 3:
            run()
            runs += 1
        windows.append((time.perf_counter() - start) / runs * 1000)
        cpu.append((time.process_time() - cpu_start) / runs * 1000)
    return statistics.median(windows), statistics.median(cpu)


prefix, top = split(name)
prefix.eval()
top.train()  # no dropout or BatchNorm left in the trainable part: train() changes nothing but intent
torch.manual_seed(0)
with torch.no_grad():
    activations = prefix(torch.randn(batch, 3, 224, 224))
activations = activations.contiguous()
labels = torch.arange(batch) % CLASSES


def timings(module):
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3, weight_decay=0.01)

    def step():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(module(activations), labels, label_smoothing=0.1).backward()
        optimizer.step()

    def forward():
        with torch.no_grad():
            module(activations)

    step_ms, step_cpu_ms = median_ms(step)
    forward_ms, _ = median_ms(forward)
    return {"step_ms": step_ms, "step_cpu_ms": step_cpu_ms, "forward_ms": forward_ms}


eager = timings(top)
modes = {"eager": eager}
if use_compile:
    compile_started = time.perf_counter()
    compiled = timings(torch.compile(top))
    compiled["includes_compile_s"] = time.perf_counter() - compile_started
    modes["torch.compile"] = compiled
mode, best = min(modes.items(), key=lambda item: item[1]["step_ms"])
print(json.dumps({
    "model": name, "torch": torch.__version__, "batch": batch, "threads": threads, "scope": scope,
    "cut": list(activations.shape[1:]), "trainable_values": sum(p.numel() for p in top.parameters()),
    **modes, "step_ms": best["step_ms"], "step_cpu_ms": best["step_cpu_ms"], "forward_ms": best["forward_ms"],
    "eager_step_ms": eager["step_ms"], "mode": mode, "env_tuned": bool(os.environ.get("GLIBC_TUNABLES")),
}))
