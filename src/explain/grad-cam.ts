/**
 * Grad-CAM (Selvaraju et al. 2017) on the last block's feature map A: channel weights
 * αc = mean over positions of ∂ score / ∂ Ac, map = ReLU(Σc αc·Ac), on the feature map's grid.
 */
import type { FeatureMap } from './attribution-model.js';
import type { GradientRunner } from './gradient-runner.js';
import type { Grid } from './pixel-grid.js';

export async function gradCam(runner: GradientRunner, featureMap: FeatureMap, input: Float32Array, target: number): Promise<{ grid: Grid; logits: Float32Array }> {
  const { gradient, activations, logits } = await runner.run(input, [target]);
  return { grid: camOf(featureMap, activations!, gradient!), logits };
}

export function camOf(featureMap: FeatureMap, activations: Float32Array, gradient: Float32Array): Grid {
  const { channels, width, height, layout } = featureMap;
  const plane = width * height;
  const at = (c: number, i: number) => (layout === 'NCHW' ? c * plane + i : i * channels + c);
  const weights = new Float64Array(channels);
  for (let c = 0; c < channels; c++) {
    let sum = 0;
    for (let i = 0; i < plane; i++) sum += gradient[at(c, i)]!;
    weights[c] = sum / plane;
  }
  const values = new Float32Array(plane);
  for (let i = 0; i < plane; i++) {
    let sum = 0;
    for (let c = 0; c < channels; c++) sum += weights[c]! * activations[at(c, i)]!;
    values[i] = Math.max(0, sum);
  }
  return { width, height, values };
}
