/**
 * Attention rollout (Abnar & Zuidema 2020) for ViT-style encoders: each layer's attention averaged
 * over heads, mixed half-and-half with the identity for the residual path, rows renormalised, and
 * multiplied through the layers; the class token's row over the patches is the map.
 */
import type { AttentionMaps } from './attribution-model.js';
import type { Grid } from './pixel-grid.js';

/** `layers[l]` holds one example's attention, [heads, tokens, tokens]. */
export function attentionRollout(maps: AttentionMaps, layers: Float32Array[]): Grid {
  const t = maps.tokens;
  let rollout = identity(t);
  for (const attention of layers) {
    const heads = attention.length / (t * t);
    const mixed = new Float64Array(t * t);
    for (let h = 0; h < heads; h++) for (let i = 0; i < t * t; i++) mixed[i]! += attention[h * t * t + i]! / heads;
    for (let r = 0; r < t; r++) {
      let rowSum = 0;
      for (let c = 0; c < t; c++) {
        mixed[r * t + c] = 0.5 * mixed[r * t + c]! + (r === c ? 0.5 : 0);
        rowSum += mixed[r * t + c]!;
      }
      for (let c = 0; c < t; c++) mixed[r * t + c]! /= rowSum;
    }
    rollout = multiply(mixed, rollout, t);
  }
  const values = Float32Array.from({ length: t - 1 }, (_, p) => rollout[p + 1]!);
  return { width: maps.grid, height: maps.grid, values };
}

function identity(n: number): Float64Array {
  const m = new Float64Array(n * n);
  for (let i = 0; i < n; i++) m[i * n + i] = 1;
  return m;
}

function multiply(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) {
      const aik = a[i * n + k]!;
      if (aik === 0) continue;
      for (let j = 0; j < n; j++) out[i * n + j]! += aik * b[k * n + j]!;
    }
  }
  return out;
}
