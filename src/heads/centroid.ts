import { BaseHead, StateReader } from './common.js';
import type { FeatureSet, HeadState, NamedTensor } from './head.js';
import { inverseNorm } from './knn.js';
import { STANDARDIZER_TENSORS, Standardizer, writeRow } from './standardizer.js';

/**
 * Logit scale applied to cosine similarities (which lie in [−1, 1]); 10 is the usual choice for
 * cosine classifiers and turns a 0.1 difference in similarity into a 1-nat difference in logits.
 */
export const DEFAULT_CENTROID_SCALE = 10;

/**
 * Nearest class mean by cosine similarity: rows are standardised and unit-normalised, each class's
 * centroid is the mean of its rows (normalised again), and logits = scale × cos(row, centroid).
 * A class with no training rows gets logit −scale (below any real similarity).
 */
export class CentroidHead extends BaseHead {
  readonly type = 'centroid' as const;
  /** Whether each class had training rows (its centroid is non-zero). */
  private readonly present: Uint8Array;

  constructor(
    dim: number,
    numClasses: number,
    readonly scale: number,
    /** numClasses×dim unit vectors (all-zero for a class without training rows). */
    readonly centroids: Float32Array,
    standardizer: Standardizer | null,
  ) {
    super(dim, numClasses, standardizer);
    this.present = new Uint8Array(numClasses);
    for (let c = 0; c < numClasses; c++) {
      for (let j = 0; j < dim; j++) {
        if (centroids[c * dim + j] !== 0) {
          this.present[c] = 1;
          break;
        }
      }
    }
  }

  static fit(train: FeatureSet, standardizer: Standardizer | null, scale = DEFAULT_CENTROID_SCALE): CentroidHead {
    const { dim, numClasses } = train;
    const n = train.labels.length;
    const sums = new Float64Array(numClasses * dim);
    const row = new Float64Array(dim);
    for (let r = 0; r < n; r++) {
      writeRow(standardizer, train.features, r, dim, row, 0);
      const inv = inverseNorm(row, dim);
      const base = train.labels[r] * dim;
      for (let j = 0; j < dim; j++) sums[base + j] += row[j] * inv;
    }
    const centroids = new Float32Array(numClasses * dim);
    for (let c = 0; c < numClasses; c++) {
      const inv = inverseNorm(sums.subarray(c * dim, (c + 1) * dim), dim);
      for (let j = 0; j < dim; j++) centroids[c * dim + j] = sums[c * dim + j] * inv;
    }
    return new CentroidHead(dim, numClasses, scale, centroids, standardizer);
  }

  protected scoreRows(a: Float64Array, aRows: Int32Array, count: number, out: Float64Array, outOffset: number): void {
    const { dim, numClasses, centroids, scale, present } = this;
    for (let r = 0; r < count; r++) {
      const row = aRows[r];
      let sumSquares = 0;
      for (let j = 0; j < dim; j++) sumSquares += a[row + j] * a[row + j];
      const inv = sumSquares > 0 ? 1 / Math.sqrt(sumSquares) : 0;
      for (let c = 0; c < numClasses; c++) {
        let cosine = -1;
        if (present[c]) {
          const base = c * dim;
          let s = 0;
          for (let j = 0; j < dim; j++) s += a[row + j] * centroids[base + j];
          cosine = s * inv;
        }
        out[outOffset + r * numClasses + c] = scale * cosine;
      }
    }
  }

  state(): HeadState {
    const tensors: Record<string, NamedTensor> = {
      centroids: { shape: [this.numClasses, this.dim], data: this.centroids },
      ...this.standardizer?.tensors(),
    };
    return {
      type: 'centroid',
      config: {
        dim: this.dim,
        numClasses: this.numClasses,
        scale: this.scale,
        standardize: this.standardizer !== null,
      },
      tensors,
    };
  }

  static fromState(state: HeadState): CentroidHead {
    const reader = new StateReader(state);
    const dim = reader.integer('dim', 1);
    const numClasses = reader.integer('numClasses', 2);
    const scale = reader.positiveNumber('scale');
    const standardize = reader.boolean('standardize');
    reader.noOtherTensors(['centroids', ...(standardize ? STANDARDIZER_TENSORS : [])]);
    return new CentroidHead(
      dim,
      numClasses,
      scale,
      reader.tensor('centroids', [numClasses, dim]),
      standardize ? Standardizer.fromState(reader, dim) : null,
    );
  }
}
