/**
 * CenterNet's training targets, drawn in TypeScript as the reference implementation does
 * (xingyizhou/CenterNet, `src/lib/datasets/sample/ctdet.py`): each box puts a Gaussian peak of radius
 * `gaussianRadius(h, w, 0.7)` (in output cells) at its centre cell of its class's heatmap (overlaps
 * keep the maximum), and the box sides are regressed at that cell. Sides are distances in input
 * pixels from the cell's point (cell × stride), as `decodeCenterNet` reads them.
 */
import type { Box } from './boxes.js';

/** CornerNet's radius: the largest r such that a box shifted by r still has IoU ≥ minOverlap (CenterNet's three cases, its formula as written). */
export function gaussianRadius(height: number, width: number, minOverlap = 0.7): number {
  const a1 = 1;
  const b1 = height + width;
  const c1 = (width * height * (1 - minOverlap)) / (1 + minOverlap);
  const r1 = (b1 + Math.sqrt(b1 ** 2 - 4 * a1 * c1)) / 2;
  const a2 = 4;
  const b2 = 2 * (height + width);
  const c2 = (1 - minOverlap) * width * height;
  const r2 = (b2 + Math.sqrt(b2 ** 2 - 4 * a2 * c2)) / 2;
  const a3 = 4 * minOverlap;
  const b3 = -2 * minOverlap * (height + width);
  const c3 = (minOverlap - 1) * width * height;
  const r3 = (b3 + Math.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2;
  return Math.min(r1, r2, r3);
}

export interface ImageTargets {
  /** [classes, grid, grid] (NCHW, as the graph's logits), values in [0, 1], 1 exactly at centres. */
  heatmap: Float32Array;
  /** Centre cells (y·grid + x) and their sides [left, top, right, bottom] in input pixels. */
  centres: { label: number; cell: number; sides: [number, number, number, number] }[];
}

/** Targets of one image; `boxes` are in input pixels (the 512×512 frame). */
export function drawTargets(boxes: { label: number; box: Box }[], classes: number, grid: number, stride: number): ImageTargets {
  const heatmap = new Float32Array(classes * grid * grid);
  const centres: ImageTargets['centres'] = [];
  for (const { label, box } of boxes) {
    const [x1, y1, x2, y2] = box;
    const w = (x2 - x1) / stride;
    const h = (y2 - y1) / stride;
    if (!(w > 0 && h > 0)) continue;
    const cx = Math.min(grid - 1, Math.max(0, Math.floor((x1 + x2) / 2 / stride)));
    const cy = Math.min(grid - 1, Math.max(0, Math.floor((y1 + y2) / 2 / stride)));
    const radius = Math.max(0, Math.floor(gaussianRadius(Math.ceil(h), Math.ceil(w))));
    const sigma = (2 * radius + 1) / 6;
    const plane = heatmap.subarray(label * grid * grid, (label + 1) * grid * grid);
    for (let dy = -radius; dy <= radius; dy++) {
      const y = cy + dy;
      if (y < 0 || y >= grid) continue;
      for (let dx = -radius; dx <= radius; dx++) {
        const x = cx + dx;
        if (x < 0 || x >= grid) continue;
        const value = dx === 0 && dy === 0 ? 1 : Math.exp(-(dx * dx + dy * dy) / (2 * sigma * sigma));
        if (value > plane[y * grid + x]!) plane[y * grid + x] = value;
      }
    }
    const px = cx * stride;
    const py = cy * stride;
    centres.push({ label, cell: cy * grid + cx, sides: [px - x1, py - y1, x2 - px, y2 - py] });
  }
  return { heatmap, centres };
}

/** The loss's per-batch inputs (see `centerNetLoss`), normalised by the batch's number of objects. */
export interface BatchTargets {
  positiveWeight: Float32Array;
  negativeWeight: Float32Array;
  sidesTarget: Float32Array;
  sidesWeight: Float32Array;
  objects: number;
}

/**
 * Focal-loss weights (1/N at centres; (1 − y)^β / N elsewhere) and side targets with weight λ/(stride·N)
 * at centres (λ on sides measured in output cells, as CenterNet's `wh_weight`), N = max(1, objects).
 */
export function batchTargets(images: ImageTargets[], classes: number, grid: number, stride: number, options: { beta: number; sidesWeight: number }): BatchTargets {
  const plane = grid * grid;
  const objects = images.reduce((n, t) => n + t.centres.length, 0);
  const norm = 1 / Math.max(1, objects);
  const positiveWeight = new Float32Array(images.length * classes * plane);
  const negativeWeight = new Float32Array(images.length * classes * plane);
  const sidesTarget = new Float32Array(images.length * 4 * plane);
  const sidesWeight = new Float32Array(images.length * 4 * plane);
  images.forEach((targets, i) => {
    const offset = i * classes * plane;
    targets.heatmap.forEach((y, j) => {
      if (y === 1) positiveWeight[offset + j] = norm;
      else negativeWeight[offset + j] = (1 - y) ** options.beta * norm;
    });
    for (const centre of targets.centres) {
      for (let k = 0; k < 4; k++) {
        sidesTarget[(i * 4 + k) * plane + centre.cell] = centre.sides[k]!;
        sidesWeight[(i * 4 + k) * plane + centre.cell] = (options.sidesWeight / stride) * norm;
      }
    }
  });
  return { positiveWeight, negativeWeight, sidesTarget, sidesWeight, objects };
}
