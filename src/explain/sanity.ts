/**
 * The model-randomisation check of Adebayo et al. 2018 ("Sanity checks for saliency maps"): an
 * explanation that does not change when the top blocks' weights are re-drawn at random does not
 * depend on what the model learned. `randomizeTopBlocks` gives the randomised model; maps are
 * compared by Spearman rank correlation.
 */
import { Rng } from '../util/rng.js';
import { withWeights, type AttributionModel } from './attribution-model.js';

/** The model with the weights of its `count` top blocks (blocks.ts) drawn from N(0, σ²), σ each tensor's own spread. */
export function randomizeTopBlocks(model: AttributionModel, count: number, seed = 0): AttributionModel {
  const rng = new Rng(seed);
  const weights = new Map<string, Float32Array>();
  for (const block of model.blocks.slice(Math.max(0, model.blocks.length - count))) {
    for (const name of block.weights) {
      const original = model.model.graph.floatInitializer(name);
      if (!original || weights.has(name)) continue;
      let mean = 0;
      for (const v of original) mean += v / original.length;
      let variance = 0;
      for (const v of original) variance += (v - mean) ** 2 / original.length;
      const sigma = Math.sqrt(variance) || 1e-2;
      weights.set(name, Float32Array.from(original, () => sigma * rng.normal()));
    }
  }
  return withWeights(model, weights);
}

/** Spearman's ρ: Pearson correlation of the ranks (ties get their mean rank). */
export function spearman(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const ra = ranks(a);
  const rb = ranks(b);
  const n = ra.length;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += ra[i]! / n;
    mb += rb[i]! / n;
  }
  let cov = 0;
  let va = 0;
  let vb = 0;
  for (let i = 0; i < n; i++) {
    cov += (ra[i]! - ma) * (rb[i]! - mb);
    va += (ra[i]! - ma) ** 2;
    vb += (rb[i]! - mb) ** 2;
  }
  return va === 0 || vb === 0 ? 0 : cov / Math.sqrt(va * vb);
}

function ranks(values: ArrayLike<number>): Float64Array {
  const order = Array.from({ length: values.length }, (_, i) => i).sort((x, y) => values[x]! - values[y]!);
  const out = new Float64Array(values.length);
  for (let start = 0; start < order.length; ) {
    let end = start;
    while (end + 1 < order.length && values[order[end + 1]!] === values[order[start]!]) end++;
    for (let k = start; k <= end; k++) out[order[k]!] = (start + end) / 2;
    start = end + 1;
  }
  return out;
}
