/**
 * Occlusion (Zeiler & Fergus 2014): slide a window over the input, replace what it covers with a
 * neutral value, and score how much the target's probability drops; each position gets the mean
 * drop of the windows covering it. It needs nothing but predictions, so it explains any model —
 * a trained one, an exported ONNX file, an audio clip (windows over time).
 */

export interface OcclusionWindows {
  /** Window length per axis. */
  size: number[];
  stride: number[];
}

/** Window starts covering `[0, length)`, the last one flush with the end. */
export function windowStarts(length: number, size: number, stride: number): number[] {
  const starts: number[] = [];
  const last = Math.max(0, length - size);
  for (let start = 0; start < last; start += stride) starts.push(start);
  starts.push(last);
  return starts;
}

/**
 * Occlusion over an n-dimensional grid `shape`: `score(windows)` returns the target's probability
 * with each window ([start, end) per axis) occluded; `full` is the unoccluded probability. Windows
 * go to `score` `batch` at a time.
 */
export async function occlusion(
  shape: number[],
  windows: OcclusionWindows,
  full: number,
  score: (windows: { start: number[]; end: number[] }[]) => Promise<ArrayLike<number>>,
  batch = 16,
): Promise<Float32Array> {
  const axes = shape.map((length, axis) => windowStarts(length, Math.min(windows.size[axis]!, length), windows.stride[axis]!));
  const all: { start: number[]; end: number[] }[] = [];
  const visit = (axis: number, start: number[]) => {
    if (axis === shape.length) {
      all.push({ start, end: start.map((s, a) => Math.min(shape[a]!, s + windows.size[a]!)) });
      return;
    }
    for (const s of axes[axis]!) visit(axis + 1, [...start, s]);
  };
  visit(0, []);
  const total = shape.reduce((a, b) => a * b, 1);
  const sum = new Float64Array(total);
  const count = new Float64Array(total);
  const strides = shape.map((_, axis) => shape.slice(axis + 1).reduce((a, b) => a * b, 1));
  for (let first = 0; first < all.length; first += batch) {
    const chunk = all.slice(first, first + batch);
    const scores = await score(chunk);
    chunk.forEach((window, w) => {
      const drop = full - scores[w]!;
      const fill = (axis: number, offset: number) => {
        if (axis === shape.length) {
          sum[offset]! += drop;
          count[offset]!++;
          return;
        }
        for (let i = window.start[axis]!; i < window.end[axis]!; i++) fill(axis + 1, offset + i * strides[axis]!);
      };
      fill(0, 0);
    });
  }
  const out = new Float32Array(sum.length);
  for (let i = 0; i < out.length; i++) out[i] = count[i]! > 0 ? sum[i]! / count[i]! : 0;
  return out;
}
