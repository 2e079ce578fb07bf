import { usageError } from '../util/errors.js';

/** How the per-window (or per-frame) embeddings of one clip become its feature vector. */
export type AudioPooling = 'mean' | 'mean-max';
export const AUDIO_POOLINGS: readonly AudioPooling[] = ['mean', 'mean-max'];

export function checkAudioPooling(pooling: unknown): AudioPooling {
  if (!AUDIO_POOLINGS.includes(pooling as AudioPooling)) {
    throw usageError(`unknown audio pooling "${String(pooling)}" (expected ${AUDIO_POOLINGS.join(' or ')})`);
  }
  return pooling as AudioPooling;
}

/** Feature size for `dim`-sized embeddings: the mean, and for mean-max the maximum after it. */
export function pooledDim(dim: number, pooling: AudioPooling): number {
  return pooling === 'mean-max' ? 2 * dim : dim;
}

/**
 * Pools rows `first … first + count − 1` of a `rows × dim` matrix into `out` at `offset`:
 * their mean, then (mean-max) their element-wise maximum.
 */
export function poolRows(
  matrix: Float32Array,
  dim: number,
  first: number,
  count: number,
  pooling: AudioPooling,
  out: Float32Array,
  offset: number,
): void {
  for (let d = 0; d < dim; d++) {
    let sum = 0;
    let max = -Infinity;
    for (let r = first; r < first + count; r++) {
      const value = matrix[r * dim + d]!;
      sum += value;
      if (value > max) max = value;
    }
    out[offset + d] = sum / count;
    if (pooling === 'mean-max') out[offset + dim + d] = max;
  }
}
