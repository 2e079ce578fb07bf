import { type FeatureMatrix, rowCountOf } from '../features/sparse.js';
import { modelError } from '../util/errors.js';
import type { Head, HeadState, HeadType, NamedTensor } from './head.js';
import { contiguousRows } from './kernels.js';
import { type Standardizer, writeRow } from './standardizer.js';

/** Number of `dim`-wide rows in a feature matrix. */
export const rowCount = rowCountOf;

/** Row-wise softmax of an n×k matrix, in float64 (max-shifted, so large logits cannot overflow). */
export function softmaxRowsInPlace(matrix: Float64Array, k: number): Float64Array {
  for (let base = 0; base < matrix.length; base += k) {
    let max = -Infinity;
    for (let c = 0; c < k; c++) if (matrix[base + c] > max) max = matrix[base + c];
    let sum = 0;
    for (let c = 0; c < k; c++) {
      const e = Math.exp(matrix[base + c] - max);
      matrix[base + c] = e;
      sum += e;
    }
    for (let c = 0; c < k; c++) matrix[base + c] /= sum;
  }
  return matrix;
}

/** Index of the largest entry of each k-wide row; ties go to the lower index. */
export function argmaxRows(matrix: Float32Array | Float64Array, k: number): Int32Array {
  const n = matrix.length / k;
  const result = new Int32Array(n);
  for (let r = 0; r < n; r++) {
    const base = r * k;
    let best = 0;
    for (let c = 1; c < k; c++) if (matrix[base + c] > matrix[base + best]) best = c;
    result[r] = best;
  }
  return result;
}

/** Rows scored per chunk: a multiple of 4 (the kernels' row block), big enough to amortise, small enough for cache. */
export const SCORE_CHUNK_ROWS = 64;

/**
 * Shared plumbing: every head standardises rows chunk by chunk into float64 and scores them with
 * `scoreRows`; logits, probabilities and predictions all derive from the same float64 scores, so
 * they never disagree.
 */
export abstract class BaseHead implements Head {
  abstract readonly type: HeadType;
  private chunk: Float64Array | undefined;
  private chunkRows: Int32Array | undefined;

  constructor(
    readonly dim: number,
    readonly numClasses: number,
    readonly standardizer: Standardizer | null,
  ) {}

  /**
   * Scores `count` standardised rows (row i starts at a[aRows[i]]), writing count×numClasses
   * values to out[outOffset..]. Called with at most SCORE_CHUNK_ROWS rows.
   */
  protected abstract scoreRows(
    a: Float64Array,
    aRows: Int32Array,
    count: number,
    out: Float64Array,
    outOffset: number,
  ): void;

  abstract state(): HeadState;

  /** n×numClasses float64 scores of raw feature rows. */
  scores(features: FeatureMatrix): Float64Array {
    const { dim, numClasses } = this;
    const n = rowCount(features, dim);
    const out = new Float64Array(n * numClasses);
    this.chunk ??= new Float64Array(SCORE_CHUNK_ROWS * dim);
    this.chunkRows ??= contiguousRows(SCORE_CHUNK_ROWS, dim);
    for (let first = 0; first < n; first += SCORE_CHUNK_ROWS) {
      const count = Math.min(SCORE_CHUNK_ROWS, n - first);
      for (let i = 0; i < count; i++) writeRow(this.standardizer, features, first + i, dim, this.chunk, i * dim);
      this.scoreRows(this.chunk, this.chunkRows, count, out, first * numClasses);
    }
    return out;
  }

  /**
   * The same scores for rows already standardised with this head's standardizer (an n×dim
   * float64 matrix, e.g. a validation set prepared once for many epochs). Chunks match `scores`,
   * so the results are bit-identical to scoring the raw rows.
   */
  scoresOfStandardized(matrix: Float64Array, n: number): Float64Array {
    const { dim, numClasses } = this;
    const out = new Float64Array(n * numClasses);
    const aRows = new Int32Array(SCORE_CHUNK_ROWS);
    for (let first = 0; first < n; first += SCORE_CHUNK_ROWS) {
      const count = Math.min(SCORE_CHUNK_ROWS, n - first);
      for (let i = 0; i < count; i++) aRows[i] = (first + i) * dim;
      this.scoreRows(matrix, aRows, count, out, first * numClasses);
    }
    return out;
  }

  logits(features: FeatureMatrix): Float32Array {
    return Float32Array.from(this.scores(features));
  }

  predictProba(features: FeatureMatrix): Float32Array {
    return Float32Array.from(softmaxRowsInPlace(this.scores(features), this.numClasses));
  }

  predict(features: FeatureMatrix): Int32Array {
    return argmaxRows(this.scores(features), this.numClasses);
  }
}

export function tensorOf(shape: number[], data: Float32Array): NamedTensor {
  return { shape, data };
}

/** Reads and checks parts of a HeadState, with errors that say which head and which field. */
export class StateReader {
  constructor(private readonly state: HeadState) {}

  private fail(message: string): never {
    throw modelError(`malformed ${this.state.type} head state: ${message}`);
  }

  integer(key: string, min: number): number {
    const value = this.state.config[key];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
      this.fail(`config.${key} must be an integer >= ${min}, got ${JSON.stringify(value)}`);
    }
    return value;
  }

  positiveNumber(key: string): number {
    const value = this.state.config[key];
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      this.fail(`config.${key} must be a positive number, got ${JSON.stringify(value)}`);
    }
    return value;
  }

  boolean(key: string): boolean {
    const value = this.state.config[key];
    if (typeof value !== 'boolean') this.fail(`config.${key} must be true or false, got ${JSON.stringify(value)}`);
    return value;
  }

  oneOf<T extends string>(key: string, allowed: readonly T[]): T {
    const value = this.state.config[key];
    if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
      this.fail(`config.${key} must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
    }
    return value as T;
  }

  /** The tensor's data, after checking it exists, has exactly `shape`, and holds only finite numbers. */
  tensor(name: string, shape: number[], check: { positive?: boolean } = {}): Float32Array {
    const tensor = this.state.tensors[name];
    if (tensor === undefined || tensor === null) this.fail(`missing tensor "${name}"`);
    if (!(tensor.data instanceof Float32Array)) this.fail(`tensor "${name}" data is not a Float32Array`);
    if (
      !Array.isArray(tensor.shape) ||
      tensor.shape.length !== shape.length ||
      tensor.shape.some((size, i) => size !== shape[i])
    ) {
      this.fail(`tensor "${name}" has shape [${String(tensor.shape)}], expected [${shape.join(', ')}]`);
    }
    const expected = shape.reduce((a, b) => a * b, 1);
    if (tensor.data.length !== expected) {
      this.fail(`tensor "${name}" holds ${tensor.data.length} values, its shape [${shape.join(', ')}] needs ${expected}`);
    }
    for (let i = 0; i < tensor.data.length; i++) {
      if (!Number.isFinite(tensor.data[i])) this.fail(`tensor "${name}" has a non-finite value at index ${i}`);
      if (check.positive && !(tensor.data[i] > 0)) this.fail(`tensor "${name}" must be positive, index ${i} is ${tensor.data[i]}`);
    }
    return tensor.data;
  }

  /** Fails if the state carries tensors this head type does not use (a sign of a mixed-up file). */
  noOtherTensors(expected: string[]): void {
    for (const name of Object.keys(this.state.tensors)) {
      if (!expected.includes(name)) this.fail(`unexpected tensor "${name}" (expected ${expected.join(', ')})`);
    }
  }
}
