"""
Reference numbers for headstart's CenterNet training loss (test/detector-loss.test.ts), computed with
PyTorch autograd from CenterNet's own definitions (xingyizhou/CenterNet, re-written here):
  - targets: `gaussian_radius` (CornerNet's three cases, as written in CenterNet's image.py) and
    `draw_umich_gaussian` (a Gaussian of sigma (2r+1)/6 at the centre cell, overlaps keep the max),
  - `_neg_loss`: the penalty-reduced focal loss, alpha 2, beta 4, on `_sigmoid` (clamped to
    [1e-4, 1 - 1e-4]), normalised by the number of objects,
  - L1 on the four box sides (left, top, right, bottom: headstart's box branch, in output cells) at
    the centre cells, weighted by `wh_weight` 0.1 and normalised by the number of objects.
The model is two 1x1 convolutions over a random feature map (class logits and sides), so the
gradients check the loss graph and its rules (Sigmoid, Clip, Pow, Log, Abs, ReduceSum) end to end.

    /work/pyenv/bin/python tools/centernet-loss-reference.py > test/fixtures/detection/centernet-loss.json
"""
import json
import math

import numpy as np
import torch

torch.manual_seed(0)
CLASSES, CHANNELS, GRID, STRIDE, BATCH = 3, 6, 8, 4, 2
ALPHA, BETA, WH_WEIGHT = 2, 4, 0.1
# Boxes in input pixels (the 32x32 frame), [label, x1, y1, x2, y2]; image 1 has two overlapping
# boxes of one class (the max rule), a box at the border, and image 0 a small box (radius 0).
BOXES = [
    [[0, 3.0, 5.0, 21.0, 19.0], [2, 24.0, 24.0, 27.5, 28.0]],
    [[1, 0.0, 0.0, 14.0, 30.0], [1, 6.0, 2.0, 18.0, 26.0], [0, 17.0, 9.0, 32.0, 23.0]],
]


def gaussian_radius(height, width, min_overlap=0.7):
    a1, b1 = 1, height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1 ** 2 - 4 * a1 * c1)) / 2
    a2, b2 = 4, 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2 ** 2 - 4 * a2 * c2)) / 2
    a3, b3 = 4 * min_overlap, -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def draw_umich_gaussian(heatmap, center, radius):
    diameter = 2 * radius + 1
    sigma = diameter / 6
    m = (diameter - 1) / 2
    y, x = np.ogrid[-m:m + 1, -m:m + 1]
    gaussian = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    gaussian[gaussian < np.finfo(gaussian.dtype).eps * gaussian.max()] = 0
    cx, cy = int(center[0]), int(center[1])
    height, width = heatmap.shape
    left, right = min(cx, radius), min(width - cx, radius + 1)
    top, bottom = min(cy, radius), min(height - cy, radius + 1)
    region = heatmap[cy - top:cy + bottom, cx - left:cx + right]
    patch = gaussian[radius - top:radius + bottom, radius - left:radius + right]
    np.maximum(region, patch, out=region)


heatmaps = np.zeros((BATCH, CLASSES, GRID, GRID), dtype=np.float64)
sides_target = np.zeros((BATCH, 4, GRID, GRID), dtype=np.float64)
sides_mask = np.zeros((BATCH, 4, GRID, GRID), dtype=np.float64)
for i, boxes in enumerate(BOXES):
    for label, x1, y1, x2, y2 in boxes:
        w, h = (x2 - x1) / STRIDE, (y2 - y1) / STRIDE
        centre = np.array([(x1 + x2) / 2 / STRIDE, (y1 + y2) / 2 / STRIDE])
        cx, cy = (np.clip(np.floor(centre), 0, GRID - 1)).astype(int)
        radius = max(0, int(gaussian_radius(math.ceil(h), math.ceil(w))))
        draw_umich_gaussian(heatmaps[i, label], (cx, cy), radius)
        px, py = cx * STRIDE, cy * STRIDE
        sides_target[i, :, cy, cx] = [(px - x1) / STRIDE, (py - y1) / STRIDE, (x2 - px) / STRIDE, (y2 - py) / STRIDE]
        sides_mask[i, :, cy, cx] = 1
objects = sum(len(b) for b in BOXES)

x = torch.randn(BATCH, CHANNELS, GRID, GRID, dtype=torch.float64)
w_class = (torch.randn(CLASSES, CHANNELS, 1, 1, dtype=torch.float64) * 2).requires_grad_()
b_class = torch.full((CLASSES,), -2.0, dtype=torch.float64).requires_grad_()  # CenterNet's prior bias: most cells are background
w_sides = (torch.randn(4, CHANNELS, 1, 1, dtype=torch.float64) * 2).requires_grad_()
b_sides = (torch.rand(4, dtype=torch.float64) * 8).requires_grad_()

logits = torch.nn.functional.conv2d(x, w_class, b_class)
sides = torch.nn.functional.conv2d(x, w_sides, b_sides)  # in input pixels, as headstart's box branch
gt = torch.from_numpy(heatmaps)
p = torch.clamp(torch.sigmoid(logits), 1e-4, 1 - 1e-4)
clamped = int(((torch.sigmoid(logits) < 1e-4) | (torch.sigmoid(logits) > 1 - 1e-4)).sum())
pos = gt.eq(1).double()
neg = gt.lt(1).double()
pos_loss = (torch.log(p) * torch.pow(1 - p, ALPHA) * pos).sum()
neg_loss = (torch.log(1 - p) * torch.pow(p, ALPHA) * torch.pow(1 - gt, BETA) * neg).sum()
focal = -(pos_loss + neg_loss) / max(1, objects)
mask = torch.from_numpy(sides_mask)
l1 = (torch.abs(sides / STRIDE - torch.from_numpy(sides_target)) * mask).sum() * WH_WEIGHT / max(1, objects)
loss = focal + l1
loss.backward()

flat = lambda t: [float(v) for v in t.detach().reshape(-1)]
print(json.dumps({
    'generator': 'tools/centernet-loss-reference.py (PyTorch %s, float64)' % torch.__version__,
    'classes': CLASSES, 'channels': CHANNELS, 'grid': GRID, 'stride': STRIDE, 'batch': BATCH,
    'boxes': BOXES,
    'x': flat(x),
    'weights': {'w_class': flat(w_class), 'b_class': flat(b_class), 'w_sides': flat(w_sides), 'b_sides': flat(b_sides)},
    'heatmap': flat(gt),
    'clampedCells': clamped, 'loss': float(loss), 'focal': float(focal), 'sides': float(l1),
    'gradients': {'w_class': flat(w_class.grad), 'b_class': flat(b_class.grad), 'w_sides': flat(w_sides.grad), 'b_sides': flat(b_sides.grad)},
}))
