/**
 * Maps over the backbone's input grid: reading them out of a gradient laid out as the pixel tensor
 * (NCHW or NHWC), resizing them bilinearly, blurring a pixel tensor (the blurred baseline).
 */

/** A height × width map, row-major. */
export interface Grid {
  width: number;
  height: number;
  values: Float32Array;
}

/** Per position, the channels combined by `reduce` ('abs-max' for saliency, 'sum' and 'abs-sum' for attributions). */
export function reduceChannels(tensor: Float32Array, width: number, height: number, layout: 'NCHW' | 'NHWC', reduce: 'abs-max' | 'sum' | 'abs-sum'): Grid {
  const plane = width * height;
  const values = new Float32Array(plane);
  for (let i = 0; i < plane; i++) {
    let acc = reduce === 'abs-max' ? 0 : 0;
    for (let c = 0; c < 3; c++) {
      const v = layout === 'NCHW' ? tensor[c * plane + i]! : tensor[i * 3 + c]!;
      if (reduce === 'abs-max') acc = Math.max(acc, Math.abs(v));
      else acc += reduce === 'sum' ? v : Math.abs(v);
    }
    values[i] = acc;
  }
  return { width, height, values };
}

/**
 * Bilinear resize with pixel centres aligned (align_corners = false, as torch's interpolate and
 * libvips sample): coarse Grad-CAM and rollout grids onto the input grid.
 */
export function resizeGrid(grid: Grid, width: number, height: number): Grid {
  return sampleBilinear(grid, width, height, { left: 0, top: 0, width, height });
}

/**
 * `grid` stretched over `box` (in the pixels of a `width`×`height` image) and sampled bilinearly at
 * every pixel centre, edges clamped; pixels outside the box stay 0.
 */
export function sampleBilinear(grid: Grid, width: number, height: number, box: { left: number; top: number; width: number; height: number }): Grid {
  const values = new Float32Array(width * height);
  const gx = grid.width / box.width;
  const gy = grid.height / box.height;
  for (let y = 0; y < height; y++) {
    const v = (y + 0.5 - box.top) * gy - 0.5;
    if (v < -0.5 || v > grid.height - 0.5) continue;
    const fy = Math.min(Math.max(v, 0), grid.height - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, grid.height - 1);
    const wy = fy - y0;
    for (let x = 0; x < width; x++) {
      const u = (x + 0.5 - box.left) * gx - 0.5;
      if (u < -0.5 || u > grid.width - 0.5) continue;
      const fx = Math.min(Math.max(u, 0), grid.width - 1);
      const x0 = Math.floor(fx);
      const x1 = Math.min(x0 + 1, grid.width - 1);
      const wx = fx - x0;
      const top = grid.values[y0 * grid.width + x0]! * (1 - wx) + grid.values[y0 * grid.width + x1]! * wx;
      const bottom = grid.values[y1 * grid.width + x0]! * (1 - wx) + grid.values[y1 * grid.width + x1]! * wx;
      values[y * width + x] = top * (1 - wy) + bottom * wy;
    }
  }
  return { width, height, values };
}

/**
 * A separable Gaussian blur of each channel of a float pixel tensor, edges clamped. Written here
 * rather than with sharp because it blurs the normalised float tensor, which sharp's 8-bit
 * pipeline would quantise.
 */
export function blurTensor(tensor: Float32Array, width: number, height: number, layout: 'NCHW' | 'NHWC', sigma: number): Float32Array {
  const radius = Math.max(1, Math.ceil(3 * sigma));
  const kernel = Float32Array.from({ length: 2 * radius + 1 }, (_, i) => Math.exp(-((i - radius) ** 2) / (2 * sigma * sigma)));
  const total = kernel.reduce((a, b) => a + b, 0);
  for (let i = 0; i < kernel.length; i++) kernel[i]! /= total;
  const plane = width * height;
  const at = (c: number, i: number) => (layout === 'NCHW' ? c * plane + i : i * 3 + c);
  const out = new Float32Array(tensor.length);
  const row = new Float32Array(plane);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        let acc = 0;
        for (let k = -radius; k <= radius; k++) acc += kernel[k + radius]! * tensor[at(c, y * width + Math.min(width - 1, Math.max(0, x + k)))]!;
        row[y * width + x] = acc;
      }
    }
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        let acc = 0;
        for (let k = -radius; k <= radius; k++) acc += kernel[k + radius]! * row[Math.min(height - 1, Math.max(0, y + k)) * width + x]!;
        out[at(c, y * width + x)] = acc;
      }
    }
  }
  return out;
}

/** The position of the largest value. */
export function argmax(grid: Grid): { x: number; y: number } {
  let best = 0;
  for (let i = 1; i < grid.values.length; i++) if (grid.values[i]! > grid.values[best]!) best = i;
  return { x: best % grid.width, y: Math.floor(best / grid.width) };
}

/** Values divided by the largest one (negatives clipped to 0), so maps of any method read on one scale. */
export function normalised(grid: Grid): Grid {
  let max = 0;
  for (const v of grid.values) if (v > max) max = v;
  // A plain loop: Float32Array.from with a mapping callback took 46 ms for a 366×500 photo's map
  // (most of Grad-CAM's time per image), this takes under 1 ms.
  const values = new Float32Array(grid.values.length);
  if (max > 0) for (let i = 0; i < values.length; i++) values[i] = Math.max(0, grid.values[i]!) / max;
  return { ...grid, values };
}
