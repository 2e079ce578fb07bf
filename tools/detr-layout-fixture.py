#!/work/pyenv/bin/python
"""A tiny random-weight detector in the transformers.js DETR layout, and what transformers' DETR
post-processing makes of its output, for test/detector-layouts.test.ts.

The layout (Hugging Face / Optimum exports of DetrForObjectDetection, as transformers.js runs them):
a folder with config.json (`id2label`), preprocessor_config.json and onnx/model.onnx taking
`pixel_values` [1, 3, H, W] (RGB / 255, normalised by the processor's mean and std) and returning
`logits` [1, Q, C + 1] (the last class is "no object") and `pred_boxes` [1, Q, 4] (centre x, y,
width, height as fractions of the image). The reference is `post_process_object_detection`
transcribed in numpy (this venv's DetrImageProcessor cannot import: its torchvision is broken):
softmax, drop "no object", best class per query, keep scores > threshold, corners × image size.
The processor config turns resizing off so both sides see the same pixels.

    /work/pyenv/bin/python tools/detr-layout-fixture.py test/fixtures/detection
"""
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from PIL import Image

NAMES = ["ant", "bee", "wasp"]
QUERIES = 12
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


class TinyDetr(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, stride=4, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.logits = torch.nn.Linear(16, QUERIES * (len(NAMES) + 1))
        self.boxes = torch.nn.Linear(16, QUERIES * 4)

    def forward(self, pixel_values):
        h = self.body(pixel_values)
        return self.logits(h).reshape(-1, QUERIES, len(NAMES) + 1) * 4, torch.sigmoid(self.boxes(h).reshape(-1, QUERIES, 4) * 2)


def reference(session, path, threshold):
    image = Image.open(path).convert("RGB")
    x = (np.asarray(image).astype(np.float32) / 255 - np.array(MEAN, dtype=np.float32)) / np.array(STD, dtype=np.float32)
    logits, boxes = session.run(["logits", "pred_boxes"], {"pixel_values": x.transpose(2, 0, 1)[None].astype(np.float32)})
    e = np.exp(logits[0] - logits[0].max(-1, keepdims=True))
    probs = (e / e.sum(-1, keepdims=True))[:, :-1]
    scores, labels = probs.max(-1), probs.argmax(-1)
    cx, cy, w, h = boxes[0].T
    corners = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1) * np.array([image.width, image.height, image.width, image.height])
    return [{"label": NAMES[l], "score": float(s), "box": [float(v) for v in b]} for s, l, b in zip(scores, labels, corners) if s > threshold]


def main():
    root = Path(sys.argv[1])
    out = root / "detr-tiny-random"
    (out / "onnx").mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.onnx.export(TinyDetr().eval(), torch.zeros(1, 3, 40, 64), str(out / "onnx" / "model.onnx"), input_names=["pixel_values"], output_names=["logits", "pred_boxes"],
                      dynamic_axes={"pixel_values": {0: "batch", 2: "height", 3: "width"}}, opset_version=17, dynamo=False)
    json.dump({"model_type": "detr", "architectures": ["DetrForObjectDetection"], "id2label": {str(i): n for i, n in enumerate(NAMES)}}, open(out / "config.json", "w"), indent=1)
    json.dump({"image_processor_type": "DetrImageProcessor", "do_resize": False, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": MEAN, "image_std": STD, "do_pad": False},
              open(out / "preprocessor_config.json", "w"), indent=1)
    session = ort.InferenceSession(str(out / "onnx" / "model.onnx"))
    result = {name: reference(session, root / name, 0.3) for name in ["square.png", "wide.png"]}
    json.dump({"model": out.name, "threshold": 0.3, "detections": result}, open(root / "detr-reference.json", "w"), indent=1)


main()
