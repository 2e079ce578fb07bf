import { type FeatureMatrix, isSparse, type SparseRows, writeDenseRow } from '../features/sparse.js';
import type { NamedTensor } from './head.js';
import type { StateReader } from './common.js';

/**
 * Per-dimension standardisation z = (x − mean) / std, fitted on the training features.
 * Backbone features differ wildly in scale between dimensions (post-ReLU activations, pooled
 * tokens); standardising makes one learning rate and one weight decay fit every dimension and makes
 * cosine similarity meaningful for knn/centroid.
 */
export class Standardizer {
  /** `std` is stored already floored, i.e. it is exactly the divisor used. */
  constructor(
    readonly mean: Float32Array,
    readonly std: Float32Array,
  ) {}

  /**
   * Population mean/std in float64 (two passes, so no catastrophic cancellation). A dimension's std
   * is floored at 1e-3 × the average std (and 1e-8), so a dimension that is constant in the training
   * data does not turn tiny deviations at prediction time into huge inputs.
   */
  static fit(features: FeatureMatrix, n: number, dim: number): Standardizer {
    if (isSparse(features)) return Standardizer.fitSparse(features);
    const sum = new Float64Array(dim);
    for (let r = 0; r < n; r++) {
      const base = r * dim;
      for (let j = 0; j < dim; j++) sum[j] += features[base + j];
    }
    const mean = new Float64Array(dim);
    for (let j = 0; j < dim; j++) mean[j] = sum[j] / n;
    const squares = new Float64Array(dim);
    for (let r = 0; r < n; r++) {
      const base = r * dim;
      for (let j = 0; j < dim; j++) {
        const d = features[base + j] - mean[j];
        squares[j] += d * d;
      }
    }
    return Standardizer.fromMoments(mean, squares, n);
  }

  /** The same statistics from the non-zeros: each column's zeros add (0 − mean)² apiece. */
  private static fitSparse(features: SparseRows): Standardizer {
    const { rows: n, dim, indices, values } = features;
    const sum = new Float64Array(dim);
    const nonZeros = new Float64Array(dim);
    for (let e = 0; e < indices.length; e++) {
      sum[indices[e]] += values[e];
      nonZeros[indices[e]]++;
    }
    const mean = new Float64Array(dim);
    for (let j = 0; j < dim; j++) mean[j] = sum[j] / n;
    const squares = new Float64Array(dim);
    for (let e = 0; e < indices.length; e++) {
      const d = values[e] - mean[indices[e]];
      squares[indices[e]] += d * d;
    }
    for (let j = 0; j < dim; j++) squares[j] += (n - nonZeros[j]) * mean[j] * mean[j];
    return Standardizer.fromMoments(mean, squares, n);
  }

  private static fromMoments(mean: Float64Array, squares: Float64Array, n: number): Standardizer {
    const dim = mean.length;
    const std = new Float64Array(dim);
    let stdTotal = 0;
    for (let j = 0; j < dim; j++) {
      std[j] = Math.sqrt(squares[j] / n);
      stdTotal += std[j];
    }
    const floor = Math.max((1e-3 * stdTotal) / dim, 1e-8);
    for (let j = 0; j < dim; j++) if (std[j] < floor) std[j] = floor;
    return new Standardizer(Float32Array.from(mean), Float32Array.from(std));
  }

  /** Writes row `row` of `features`, standardised, to `out[offset..offset+dim)`. */
  applyRow(features: FeatureMatrix, row: number, out: Float64Array, offset: number): void {
    const { mean, std } = this;
    const dim = mean.length;
    if (isSparse(features)) {
      writeDenseRow(features, row, dim, out, offset);
      for (let j = 0; j < dim; j++) out[offset + j] = (out[offset + j] - mean[j]) / std[j];
      return;
    }
    const base = row * dim;
    for (let j = 0; j < dim; j++) out[offset + j] = (features[base + j] - mean[j]) / std[j];
  }

  tensors(): Record<string, NamedTensor> {
    return {
      mean: { shape: [this.mean.length], data: this.mean },
      std: { shape: [this.std.length], data: this.std },
    };
  }

  static fromState(reader: StateReader, dim: number): Standardizer {
    return new Standardizer(reader.tensor('mean', [dim]), reader.tensor('std', [dim], { positive: true }));
  }
}

/** Copies (and standardises, when a standardizer is given) one feature row into float64 `out`. */
export function writeRow(
  standardizer: Standardizer | null,
  features: FeatureMatrix,
  row: number,
  dim: number,
  out: Float64Array,
  offset: number,
): void {
  if (standardizer) standardizer.applyRow(features, row, out, offset);
  else writeDenseRow(features, row, dim, out, offset);
}

export const STANDARDIZER_TENSORS = ['mean', 'std'];

/** The whole set standardised into one n×dim float64 matrix (for data visited many times). */
export function standardizeAll(standardizer: Standardizer | null, features: FeatureMatrix, n: number, dim: number): Float64Array {
  const out = new Float64Array(n * dim);
  for (let r = 0; r < n; r++) writeRow(standardizer, features, r, dim, out, r * dim);
  return out;
}
