#!/work/pyenv/bin/python
"""A tiny random-weight detector in Ultralytics YOLO's ONNX layout, and what Ultralytics' own
post-processing makes of its output, for test/detector-layouts.test.ts.

The layout (what `yolo export format=onnx` writes for YOLOv8/11): input `images` float32
[1, 3, H, W], RGB in 0-1, letterboxed (aspect kept, padded with grey 114, centred); output `output0`
[1, 4 + C, N]: box centre x, y, width, height in input pixels, then C class scores (sigmoid
applied); metadata `names` ("{0: 'a', 1: 'b'}") and `imgsz`. The network here is random (a layout
test needs the same inputs and outputs, not knowledge). The reference decoding is Ultralytics'
`non_max_suppression`: scores ≥ conf, class-aware NMS (torchvision) at IoU 0.7, at most 300 boxes,
then boxes un-letterboxed (`scale_boxes`) to the original image and clipped.

    /work/pyenv/bin/python tools/yolo-layout-fixture.py test/fixtures/detection
"""
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from PIL import Image

SIZE = 64
NAMES = ["ant", "bee", "wasp"]


class TinyYolo(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.SiLU(),
            torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), torch.nn.SiLU(),
            torch.nn.Conv2d(16, 4 + len(NAMES), 3, stride=2, padding=1),
        )

    def forward(self, images):
        out = self.body(images)  # [1, 4 + C, 8, 8]
        b, _, h, w = out.shape
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        stride = SIZE / w
        cx = (xs.reshape(1, -1) + torch.sigmoid(out[:, 0].reshape(b, -1))) * stride
        cy = (ys.reshape(1, -1) + torch.sigmoid(out[:, 1].reshape(b, -1))) * stride
        bw = torch.sigmoid(out[:, 2].reshape(b, -1)) * SIZE * 1.5
        bh = torch.sigmoid(out[:, 3].reshape(b, -1)) * SIZE * 1.5
        scores = torch.sigmoid(out[:, 4:].reshape(b, len(NAMES), -1) * 3)
        return torch.cat([torch.stack([cx, cy, bw, bh], 1), scores], 1)  # [1, 4 + C, 64]


def letterbox(image):
    """Ultralytics' LetterBox(auto=False, scaleup=True, center=True), exact when no resize is needed."""
    w, h = image.size
    r = min(SIZE / w, SIZE / h)
    assert r == 1, "the fixture images are at most the input size in one side and equal in the other"
    pad_w, pad_h = SIZE - w, SIZE - h
    left, top = int(round(pad_w / 2 - 0.1)), int(round(pad_h / 2 - 0.1))
    canvas = np.full((SIZE, SIZE, 3), 114, dtype=np.uint8)
    canvas[top:top + h, left:left + w] = np.asarray(image.convert("RGB"))
    return canvas, r, (left, top)


def batched_nms(boxes, scores, labels, iou):
    """torchvision.ops.batched_nms (which Ultralytics calls), in numpy: greedy by descending score,
    a box suppresses later boxes of its class overlapping it by more than `iou`. (This venv's
    torchvision does not load its compiled ops, hence the transcription.)"""
    order = np.argsort(-scores, kind="stable")
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    kept = []
    suppressed = np.zeros(len(boxes), dtype=bool)
    for i in order:
        if suppressed[i]:
            continue
        kept.append(int(i))
        w = np.clip(np.minimum(boxes[i, 2], boxes[:, 2]) - np.maximum(boxes[i, 0], boxes[:, 0]), 0, None)
        h = np.clip(np.minimum(boxes[i, 3], boxes[:, 3]) - np.maximum(boxes[i, 1], boxes[:, 1]), 0, None)
        overlap = w * h / (area[i] + area - w * h)
        suppressed |= (overlap > iou) & (labels == labels[i])
    return kept


def reference(session, path, conf, iou=0.7):
    image = Image.open(path)
    canvas, r, (left, top) = letterbox(image)
    x = canvas.astype(np.float32).transpose(2, 0, 1)[None] / 255.0
    pred = torch.from_numpy(session.run(["output0"], {"images": x})[0])[0].T  # [N, 4 + C]
    scores, labels = pred[:, 4:].max(1)
    keep = scores >= conf
    boxes = pred[keep, :4]
    xyxy = torch.cat([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2], 1)
    scores, labels = scores[keep], labels[keep]
    kept = batched_nms(xyxy.numpy(), scores.numpy(), labels.numpy(), iou)[:300]
    out = []
    w, h = image.size
    for i in kept:
        x1, y1, x2, y2 = xyxy[i].tolist()
        box = [min(max((x1 - left) / r, 0), w), min(max((y1 - top) / r, 0), h), min(max((x2 - left) / r, 0), w), min(max((y2 - top) / r, 0), h)]
        out.append({"label": NAMES[labels[i]], "score": float(scores[i]), "box": box})
    return out


def main():
    out_dir = Path(sys.argv[1])
    torch.manual_seed(0)
    model = TinyYolo().eval()
    onnx_path = out_dir / "yolo-tiny-random.onnx"
    torch.onnx.export(model, torch.zeros(1, 3, SIZE, SIZE), str(onnx_path), input_names=["images"], output_names=["output0"], opset_version=17, dynamo=False)
    proto = onnx.load(str(onnx_path))
    for key, value in {"names": str(dict(enumerate(NAMES))), "imgsz": str([SIZE, SIZE]), "task": "detect", "description": "random-weight layout fixture (tools/yolo-layout-fixture.py)"}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(onnx_path))
    # Two inputs: one at the input size, one letterboxed (64×40: grey bars above and below).
    rng = np.random.default_rng(0)
    images = {}
    for name, (w, h) in {"square.png": (SIZE, SIZE), "wide.png": (SIZE, 40)}.items():
        pixels = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(out_dir / name)
        images[name] = pixels
    session = ort.InferenceSession(str(onnx_path))
    result = {name: reference(session, out_dir / name, conf=0.25) for name in images}
    json.dump({"model": onnx_path.name, "conf": 0.25, "iou": 0.7, "detections": result}, open(out_dir / "yolo-reference.json", "w"), indent=1)


main()
