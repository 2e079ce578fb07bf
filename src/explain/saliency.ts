/**
 * Saliency (Simonyan et al. 2014): |∂ score / ∂ pixel|, the largest over the colour channels; and
 * SmoothGrad (Smilkov et al. 2017): the same averaged over copies of the input with Gaussian noise.
 */
import { Rng } from '../util/rng.js';
import type { GradientRunner } from './gradient-runner.js';
import { reduceChannels, type Grid } from './pixel-grid.js';

export interface SmoothGradOptions {
  /** Noisy copies (SmoothGrad's n; 0 or 1 = plain saliency). */
  samples: number;
  /** Noise σ as a fraction of the input's value range (the paper's 10–20 %). */
  noise?: number;
  seed?: number;
}

export interface PixelTensor {
  values: Float32Array;
  width: number;
  height: number;
  layout: 'NCHW' | 'NHWC';
}

export async function saliency(runner: GradientRunner, input: PixelTensor, target: number, smooth?: SmoothGradOptions): Promise<{ grid: Grid; gradient: Float32Array }> {
  const samples = Math.max(1, smooth?.samples ?? 1);
  const size = input.values.length;
  const batch = new Float32Array(samples * size);
  if (samples === 1) batch.set(input.values);
  else {
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of input.values) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    const sigma = (smooth?.noise ?? 0.15) * (hi - lo);
    const rng = new Rng(smooth?.seed ?? 0);
    for (let s = 0; s < samples; s++) for (let i = 0; i < size; i++) batch[s * size + i] = input.values[i]! + sigma * rng.normal();
  }
  const { gradient } = await runner.run(batch, new Array<number>(samples).fill(target));
  const sum = new Float32Array(input.width * input.height);
  for (let s = 0; s < samples; s++) {
    const grid = reduceChannels(gradient!.subarray(s * size, (s + 1) * size), input.width, input.height, input.layout, 'abs-max');
    for (let i = 0; i < sum.length; i++) sum[i]! += grid.values[i]! / samples;
  }
  return { grid: { width: input.width, height: input.height, values: sum }, gradient: gradient!.subarray(0, size) };
}
