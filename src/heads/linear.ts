import { type FeatureMatrix, isSparse, type SparseRows } from '../features/sparse.js';
import { BaseHead, SCORE_CHUNK_ROWS, StateReader } from './common.js';
import type { HeadState, NamedTensor } from './head.js';
import { multiplyTransposed } from './kernels.js';
import { STANDARDIZER_TENSORS, Standardizer } from './standardizer.js';

/**
 * Multinomial logistic regression: logits = W·z + b on standardised features z.
 * `weight` is numClasses×dim, in standardised space (that is what was trained and is saved).
 * Unstandardised sparse rows (TF-IDF) are scored on their non-zeros only.
 */
export class LinearHead extends BaseHead {
  readonly type = 'linear' as const;
  private readonly weight64: Float64Array;
  private readonly logitScratch: Float64Array;

  constructor(
    dim: number,
    numClasses: number,
    readonly weight: Float32Array,
    readonly bias: Float32Array,
    standardizer: Standardizer | null,
  ) {
    super(dim, numClasses, standardizer);
    this.weight64 = Float64Array.from(weight);
    this.logitScratch = new Float64Array(SCORE_CHUNK_ROWS * numClasses);
  }

  override scores(features: FeatureMatrix): Float64Array {
    if (!isSparse(features) || this.standardizer !== null) return super.scores(features);
    return sparseLogits(features, this.weight64, this.bias, this.dim, this.numClasses);
  }

  protected scoreRows(a: Float64Array, aRows: Int32Array, count: number, out: Float64Array, outOffset: number): void {
    const { dim, numClasses: k, bias, logitScratch } = this;
    multiplyTransposed(a, aRows, count, dim, this.weight64, 0, k, logitScratch);
    for (let i = 0; i < count; i++) {
      for (let c = 0; c < k; c++) out[outOffset + i * k + c] = logitScratch[i * k + c] + bias[c];
    }
  }

  state(): HeadState {
    const tensors: Record<string, NamedTensor> = {
      weight: { shape: [this.numClasses, this.dim], data: this.weight },
      bias: { shape: [this.numClasses], data: this.bias },
      ...this.standardizer?.tensors(),
    };
    return {
      type: 'linear',
      config: { dim: this.dim, numClasses: this.numClasses, standardize: this.standardizer !== null },
      tensors,
    };
  }

  static fromState(state: HeadState): LinearHead {
    const reader = new StateReader(state);
    const dim = reader.integer('dim', 1);
    const numClasses = reader.integer('numClasses', 2);
    const standardize = reader.boolean('standardize');
    reader.noOtherTensors(['weight', 'bias', ...(standardize ? STANDARDIZER_TENSORS : [])]);
    return new LinearHead(
      dim,
      numClasses,
      reader.tensor('weight', [numClasses, dim]),
      reader.tensor('bias', [numClasses]),
      standardize ? Standardizer.fromState(reader, dim) : null,
    );
  }
}

/**
 * logits[i·k + c] = bias[c] + Σ_e values[e] · weight[c·dim + indices[e]] over the non-zeros of row
 * rows[i] (row i without `rows`). Entries outer, classes inner: each entry is read once.
 */
export function sparseLogits(
  x: SparseRows,
  weight: Float64Array,
  bias: ArrayLike<number>,
  dim: number,
  k: number,
  rows: Int32Array | null = null,
  count = rows ? rows.length : x.rows,
  out = new Float64Array(count * k),
): Float64Array {
  const { indptr, indices, values } = x;
  for (let i = 0; i < count; i++) {
    const r = rows === null ? i : rows[i]!;
    const end = indptr[r + 1]!;
    const o = i * k;
    for (let c = 0; c < k; c++) out[o + c] = bias[c]!;
    if (k === 2) {
      // The common case (binary tasks) with both sums in registers.
      let s0 = 0;
      let s1 = 0;
      for (let e = indptr[r]!; e < end; e++) {
        const j = indices[e]!;
        const v = values[e]!;
        s0 += v * weight[j]!;
        s1 += v * weight[dim + j]!;
      }
      out[o] += s0;
      out[o + 1] += s1;
      continue;
    }
    for (let e = indptr[r]!; e < end; e++) {
      const j = indices[e]!;
      const v = values[e]!;
      for (let c = 0; c < k; c++) out[o + c] += v * weight[c * dim + j]!;
    }
  }
  return out;
}
