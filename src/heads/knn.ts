import { modelError } from '../util/errors.js';
import { BaseHead, StateReader } from './common.js';
import { contiguousRows, multiplyTransposed } from './kernels.js';
import type { FeatureSet, HeadState, NamedTensor } from './head.js';
import { STANDARDIZER_TENSORS, Standardizer, writeRow } from './standardizer.js';

/** Weight of the uniform distribution mixed into the vote shares, so no class gets probability 0 (log loss stays finite). */
export const KNN_VOTE_SMOOTHING = 1e-3;
/** Keeps a neighbour at cosine distance 0 (a duplicate) from getting an infinite vote. */
export const DISTANCE_EPSILON = 1e-6;
/** References converted to float64 and compared at a time. */
const REFERENCE_BLOCK = 64;

/**
 * k-nearest neighbours by cosine similarity on standardised features. Each of the k nearest
 * training rows votes for its class with weight 1 / (cosine distance + 1e-6); probabilities are
 * the vote shares mixed with 0.1% of the uniform distribution; logits are their logs.
 * The head stores every training row (unit-normalised), so its size grows with the training set.
 */
export class KnnHead extends BaseHead {
  readonly type = 'knn' as const;
  readonly size: number;

  constructor(
    dim: number,
    numClasses: number,
    readonly k: number,
    /** size×dim, standardised and unit-normalised training rows. */
    readonly references: Float32Array,
    readonly referenceLabels: Int32Array,
    standardizer: Standardizer | null,
  ) {
    super(dim, numClasses, standardizer);
    this.size = referenceLabels.length;
  }

  static fit(train: FeatureSet, standardizer: Standardizer | null, k: number): KnnHead {
    const { dim } = train;
    const n = train.labels.length;
    const references = new Float32Array(n * dim);
    const row = new Float64Array(dim);
    for (let r = 0; r < n; r++) {
      writeRow(standardizer, train.features, r, dim, row, 0);
      const scale = inverseNorm(row, dim);
      for (let j = 0; j < dim; j++) references[r * dim + j] = row[j] * scale;
    }
    return new KnnHead(dim, train.numClasses, k, references, Int32Array.from(train.labels), standardizer);
  }

  protected scoreRows(a: Float64Array, aRows: Int32Array, count: number, out: Float64Array, outOffset: number): void {
    const { dim, numClasses, size, references, referenceLabels } = this;
    const k = Math.min(this.k, size);
    const queries = new Float64Array(count * dim);
    for (let r = 0; r < count; r++) {
      let sumSquares = 0;
      for (let j = 0; j < dim; j++) sumSquares += a[aRows[r] + j] * a[aRows[r] + j];
      const scale = sumSquares > 0 ? 1 / Math.sqrt(sumSquares) : 0;
      for (let j = 0; j < dim; j++) queries[r * dim + j] = a[aRows[r] + j] * scale;
    }
    const queryRows = contiguousRows(count, dim);
    const topSimilarity = new Float64Array(count * k);
    const topIndex = new Int32Array(count * k);
    const filled = new Int32Array(count);
    const block = new Float64Array(REFERENCE_BLOCK * dim);
    const similarities = new Float64Array(count * REFERENCE_BLOCK);

    // Similarities to a block of references at a time (blocked kernel), then a sorted top-k insertion;
    // strict comparisons keep the lower reference index on ties, so results are deterministic.
    for (let first = 0; first < size; first += REFERENCE_BLOCK) {
      const blockRows = Math.min(REFERENCE_BLOCK, size - first);
      for (let i = 0; i < blockRows * dim; i++) block[i] = references[first * dim + i];
      multiplyTransposed(queries, queryRows, count, dim, block, 0, blockRows, similarities);
      for (let r = 0; r < count; r++) {
        const top = r * k;
        for (let b = 0; b < blockRows; b++) {
          const similarity = similarities[r * blockRows + b];
          if (filled[r] === k && similarity <= topSimilarity[top + k - 1]) continue;
          let p = filled[r] < k ? filled[r]++ : k - 1;
          while (p > 0 && topSimilarity[top + p - 1] < similarity) {
            topSimilarity[top + p] = topSimilarity[top + p - 1];
            topIndex[top + p] = topIndex[top + p - 1];
            p--;
          }
          topSimilarity[top + p] = similarity;
          topIndex[top + p] = first + b;
        }
      }
    }

    const votes = new Float64Array(numClasses);
    for (let r = 0; r < count; r++) {
      votes.fill(0);
      let total = 0;
      for (let t = r * k; t < (r + 1) * k; t++) {
        const weight = 1 / (Math.max(0, 1 - topSimilarity[t]) + DISTANCE_EPSILON);
        votes[referenceLabels[topIndex[t]]] += weight;
        total += weight;
      }
      for (let c = 0; c < numClasses; c++) {
        const share = (1 - KNN_VOTE_SMOOTHING) * (votes[c] / total) + KNN_VOTE_SMOOTHING / numClasses;
        out[outOffset + r * numClasses + c] = Math.log(share);
      }
    }
  }

  state(): HeadState {
    const tensors: Record<string, NamedTensor> = {
      references: { shape: [this.size, this.dim], data: this.references },
      referenceLabels: { shape: [this.size], data: Float32Array.from(this.referenceLabels) },
      ...this.standardizer?.tensors(),
    };
    return {
      type: 'knn',
      config: { dim: this.dim, numClasses: this.numClasses, k: this.k, standardize: this.standardizer !== null },
      tensors,
    };
  }

  static fromState(state: HeadState): KnnHead {
    const reader = new StateReader(state);
    const dim = reader.integer('dim', 1);
    const numClasses = reader.integer('numClasses', 2);
    const k = reader.integer('k', 1);
    const standardize = reader.boolean('standardize');
    reader.noOtherTensors(['references', 'referenceLabels', ...(standardize ? STANDARDIZER_TENSORS : [])]);
    const labelTensor = state.tensors.referenceLabels;
    const size = Array.isArray(labelTensor?.shape) ? labelTensor.shape[0] : undefined;
    if (typeof size !== 'number' || !Number.isInteger(size) || size < 1) {
      throw modelError('malformed knn head state: tensor "referenceLabels" must have shape [n] with n >= 1');
    }
    const labels = reader.tensor('referenceLabels', [size]);
    const referenceLabels = new Int32Array(size);
    for (let i = 0; i < size; i++) {
      const label = labels[i];
      if (!Number.isInteger(label) || label < 0 || label >= numClasses) {
        throw modelError(`malformed knn head state: referenceLabels[${i}] = ${label} is not a class index below ${numClasses}`);
      }
      referenceLabels[i] = label;
    }
    return new KnnHead(
      dim,
      numClasses,
      k,
      reader.tensor('references', [size, dim]),
      referenceLabels,
      standardize ? Standardizer.fromState(reader, dim) : null,
    );
  }
}

/** 1/‖v‖ over the first `dim` entries, or 0 for a zero vector (which then has similarity 0 to everything). */
export function inverseNorm(v: Float64Array, dim: number): number {
  let sumSquares = 0;
  for (let j = 0; j < dim; j++) sumSquares += v[j] * v[j];
  return sumSquares > 0 ? 1 / Math.sqrt(sumSquares) : 0;
}
