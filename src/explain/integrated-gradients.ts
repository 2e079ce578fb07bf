/**
 * Integrated gradients (Sundararajan et al. 2017): (x − x′) ⊙ ∫₀¹ ∇f(x′ + α(x − x′)) dα, the
 * integral by Gauss–Legendre quadrature over the steps (Captum's default), every step one row of a
 * batched gradient run. f is the target's calibrated logit. Completeness — the attributions sum to
 * f(x) − f(x′) — is reported, measured on the same graph.
 */
import type { GradientRunner } from './gradient-runner.js';
import { blurTensor, reduceChannels, type Grid } from './pixel-grid.js';
import type { PixelTensor } from './saliency.js';

export type Baseline = 'black' | 'blurred';

export interface IntegratedGradientsOptions {
  steps?: number;
  baseline?: Baseline;
  /** The pixel tensor of a black image (each channel's value for pixel 0). */
  blackValues: [number, number, number];
}

export interface IntegratedGradientsResult {
  /** Per input value, the same layout as the input. */
  attributions: Float32Array;
  /** |attribution| summed over channels. */
  grid: Grid;
  completeness: { sum: number; expected: number; relativeError: number };
}

/** Nodes and weights of n-point Gauss–Legendre quadrature on [0, 1] (Newton's method on Pₙ). */
export function gaussLegendre(n: number): { nodes: number[]; weights: number[] } {
  const nodes: number[] = [];
  const weights: number[] = [];
  for (let i = 1; i <= n; i++) {
    let x = Math.cos((Math.PI * (i - 0.25)) / (n + 0.5));
    let derivative = 1;
    for (let iteration = 0; iteration < 100; iteration++) {
      let p0 = 1;
      let p1 = x;
      for (let k = 2; k <= n; k++) [p0, p1] = [p1, ((2 * k - 1) * x * p1 - (k - 1) * p0) / k];
      if (n === 1) p0 = 1;
      derivative = (n * (x * p1 - p0)) / (x * x - 1);
      const step = p1 / derivative;
      x -= step;
      if (Math.abs(step) < 1e-15) break;
    }
    nodes.push((1 - x) / 2);
    weights.push(1 / ((1 - x * x) * derivative * derivative));
  }
  return { nodes, weights };
}

export function baselineTensor(input: PixelTensor, baseline: Baseline, blackValues: [number, number, number]): Float32Array {
  if (baseline === 'blurred') return blurTensor(input.values, input.width, input.height, input.layout, input.width / 16);
  const plane = input.width * input.height;
  // Filled per channel, not by Float32Array.from with a callback (tens of ms for 224×224×3).
  const out = new Float32Array(input.values.length);
  for (let c = 0; c < 3; c++) {
    if (input.layout === 'NCHW') out.fill(blackValues[c]!, c * plane, (c + 1) * plane);
    else for (let i = c; i < out.length; i += 3) out[i] = blackValues[c]!;
  }
  return out;
}

/** The quadrature points on the straight path base → x, then the baseline and the input themselves (for f(x′) and f(x)), one row each. */
export function pathBatch(base: ArrayLike<number>, x: ArrayLike<number>, nodes: readonly number[]): Float32Array {
  const size = x.length;
  const steps = nodes.length;
  const batch = new Float32Array((steps + 2) * size);
  nodes.forEach((alpha, s) => {
    for (let i = 0; i < size; i++) batch[s * size + i] = base[i]! + alpha * (x[i]! - base[i]!);
  });
  for (let i = 0; i < size; i++) {
    batch[steps * size + i] = base[i]!;
    batch[(steps + 1) * size + i] = x[i]!;
  }
  return batch;
}

export async function integratedGradients(runner: GradientRunner, input: PixelTensor, target: number, options: IntegratedGradientsOptions): Promise<IntegratedGradientsResult> {
  const steps = options.steps ?? 32;
  const { nodes, weights } = gaussLegendre(steps);
  const x = input.values;
  const base = baselineTensor(input, options.baseline ?? 'black', options.blackValues);
  const size = x.length;
  const batch = pathBatch(base, x, nodes);
  const rows = new Array<number>(steps + 2).fill(target);
  const { gradient, logits } = await runner.run(batch, rows);
  const attributions = new Float32Array(size);
  for (let s = 0; s < steps; s++) {
    const w = weights[s]!;
    for (let i = 0; i < size; i++) attributions[i]! += w * gradient![s * size + i]!;
  }
  let sum = 0;
  for (let i = 0; i < size; i++) {
    attributions[i] = attributions[i]! * (x[i]! - base[i]!);
    sum += attributions[i]!;
  }
  const classes = logits.length / (steps + 2);
  const expected = logits[(steps + 1) * classes + target]! - logits[steps * classes + target]!;
  return {
    attributions,
    grid: reduceChannels(attributions, input.width, input.height, input.layout, 'abs-sum'),
    completeness: { sum, expected, relativeError: Math.abs(sum - expected) / Math.max(Math.abs(expected), 1e-12) },
  };
}
