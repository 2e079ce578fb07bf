"""Times a fixture network's forward pass in PyTorch CPU, for the benchmark's ratio.

Run by bench/run.ts with Debian's /usr/bin/python3 and the tuned environment the project quotes
(GLIBC_TUNABLES mmap/trim thresholds, OMP_WAIT_POLICY=PASSIVE): stock Debian PyTorch otherwise
loses a large share of its time to page faults and spinning threads. The network is rebuilt
bit-identically from ../shared/models/fixtures-src/fixture_models.py, then frozen and optimised
with torch.jit.optimize_for_inference. Prints one JSON line.
"""
import json
import os
import sys
import time

sys.path.insert(0, sys.argv[1])  # the fixtures-src folder
import torch  # noqa: E402
import fixture_models  # noqa: E402

name, batch, threads, seconds = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
torch.set_num_threads(threads)
builders = {"resnet-18": fixture_models.build_resnet18, "mobilenet-v2": fixture_models.build_mobilenet_v2}
model = builders[name]().eval()
x = torch.randn(batch, 3, 224, 224)
with torch.no_grad():
    traced = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, x).eval()))
    for _ in range(3):
        traced(x)
    runs = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or runs < 3:
        traced(x)
        runs += 1
    elapsed = time.perf_counter() - start
print(json.dumps({"model": name, "torch": torch.__version__, "batch": batch, "threads": threads, "runs": runs,
                  "images_per_second": runs * batch / elapsed, "env_tuned": bool(os.environ.get("GLIBC_TUNABLES"))}))
