import type { BaseHead } from '../heads/common.js';
import type { FeatureSet } from '../heads/head.js';
import { contiguousRows } from '../heads/kernels.js';
import { type Standardizer, standardizeAll, writeRow } from '../heads/standardizer.js';
import { isSparse, type SparseRows } from '../features/sparse.js';
import type { Rng } from '../util/rng.js';

/**
 * The training objective shared by the linear and MLP heads:
 *
 *   L(θ) = Σ_i w_i · CE(q_i, softmax(f_θ(z_i))) / Σ_i w_i
 *
 * over the rows of a batch (or the whole set), where z_i is the standardised row, w_i the weight
 * of its class (1 unless class weights are set), and q_i the label-smoothed target
 * (1 − ε) · onehot(y_i) + ε / K. Normalising by Σ w_i (not n) keeps the loss scale, and so the
 * learning rate, independent of the class weights (PyTorch's weighted-mean convention).
 * Weight decay is not part of L: AdamW applies it decoupled, L-BFGS adds it as an L2 term.
 */

/** Per-batch accumulators a model adds into. */
export interface BatchStats {
  /** Σ w_i · CE_i (not yet normalised). */
  weightedLoss: number;
  /** Rows whose highest logit is their label. */
  correct: number;
}

/** A head being trained: flat float64 parameters plus forward/backward over standardised rows. */
export interface TrainableModel {
  readonly dim: number;
  readonly numClasses: number;
  readonly size: number;
  /** Parameters [0, decayEnd) are weight matrices (decayed); the rest are biases (not decayed). */
  readonly decayEnd: number;
  init(params: Float64Array, rng: Rng): void;
  /**
   * For `count` standardised rows (row i starts at a[aRows[i]]), adds w_i/normaliser · ∇CE_i
   * into `grad`, and w_i·CE_i and the correct count into `stats`. `dropoutRng` null = no dropout.
   */
  accumulate(
    params: Float64Array,
    a: Float64Array,
    aRows: Int32Array,
    labels: Int32Array,
    weights: Float64Array,
    count: number,
    normaliser: number,
    grad: Float64Array,
    dropoutRng: Rng | null,
    stats: BatchStats,
  ): void;
  /**
   * `accumulate` for unstandardised sparse rows (rows[i] of `x` for i < count), reading only their
   * non-zeros; models without it see the rows densified chunk by chunk.
   */
  accumulateSparse?(
    params: Float64Array,
    x: SparseRows,
    rows: Int32Array,
    labels: Int32Array,
    weights: Float64Array,
    count: number,
    normaliser: number,
    grad: Float64Array,
    stats: BatchStats,
  ): void;
  /** A frozen float32 head holding these parameters. */
  toHead(params: Float64Array, standardizer: Standardizer | null): BaseHead;
}

/**
 * Smoothed cross-entropy of the k logits at logits[offset..]; writes gradScale · (softmax − target)
 * to dLogits[offset..]. Uses log-sum-exp so any logit magnitude is safe.
 */
export function crossEntropyRow(
  logits: Float64Array,
  dLogits: Float64Array,
  offset: number,
  k: number,
  label: number,
  smoothing: number,
  gradScale: number,
): number {
  let max = -Infinity;
  for (let c = offset; c < offset + k; c++) if (logits[c] > max) max = logits[c];
  let sum = 0;
  for (let c = offset; c < offset + k; c++) sum += Math.exp(logits[c] - max);
  const logSumExp = max + Math.log(sum);
  const offTarget = smoothing / k;
  const onTarget = 1 - smoothing + offTarget;
  let targetDotLogits = 0;
  for (let c = 0; c < k; c++) {
    const target = c === label ? onTarget : offTarget;
    const z = logits[offset + c];
    targetDotLogits += target * z;
    dLogits[offset + c] = gradScale * (Math.exp(z - logSumExp) - target);
  }
  return logSumExp - targetDotLogits;
}

/**
 * Turns rows of raw logits (count×k, biases already added) into loss and dLogits for a batch:
 * adds w_i·CE_i and the correct count into stats, writes w_i/normaliser·(softmax − target) into
 * dLogits (zeros for weight-0 rows).
 */
export function crossEntropyBatch(
  logits: Float64Array,
  dLogits: Float64Array,
  count: number,
  k: number,
  labels: Int32Array,
  weights: Float64Array,
  normaliser: number,
  smoothing: number,
  stats: BatchStats,
): void {
  for (let i = 0; i < count; i++) {
    const offset = i * k;
    let best = 0;
    for (let c = 1; c < k; c++) if (logits[offset + c] > logits[offset + best]) best = c;
    const label = labels[i];
    if (best === label) stats.correct++;
    const weight = weights[i];
    if (weight === 0) {
      dLogits.fill(0, offset, offset + k);
      continue;
    }
    stats.weightedLoss += weight * crossEntropyRow(logits, dLogits, offset, k, label, smoothing, weight / normaliser);
  }
}

/**
 * Class weights: 'balanced' gives class c the weight n / (K · n_c) (scikit-learn's rule), so every
 * class contributes equally; a class absent from the training set gets 0.
 */
export function resolveClassWeights(
  spec: 'balanced' | 'none' | number[],
  labels: Int32Array,
  numClasses: number,
): Float64Array {
  const weights = new Float64Array(numClasses);
  if (spec === 'none') return weights.fill(1);
  if (spec === 'balanced') {
    const counts = new Float64Array(numClasses);
    for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
    for (let c = 0; c < numClasses; c++) weights[c] = counts[c] > 0 ? labels.length / (numClasses * counts[c]) : 0;
    return weights;
  }
  weights.set(spec);
  return weights;
}

/**
 * Data visited every epoch is standardised once into float64 when it has at most this many
 * values (64 MB); larger sets are standardised chunk by chunk on every pass instead.
 */
export const PREPARED_VALUES_LIMIT = 8_000_000;

/** Training rows as the optimisers see them, with each row's weight. */
export class TrainingRows {
  readonly n: number;
  readonly dim: number;
  readonly numClasses: number;
  /** Weight of each row (its class weight). */
  readonly rowWeights: Float64Array;
  /** All rows standardised (n×dim), or null when too large to keep (or sparse). */
  readonly matrix: Float64Array | null;
  /** The rows themselves when they are sparse and unstandardised: models read their non-zeros. */
  readonly sparse: SparseRows | null;

  constructor(
    readonly set: FeatureSet,
    readonly standardizer: Standardizer | null,
    classWeights: Float64Array,
    preparedValuesLimit = PREPARED_VALUES_LIMIT,
  ) {
    this.n = set.labels.length;
    this.dim = set.dim;
    this.numClasses = set.numClasses;
    this.rowWeights = new Float64Array(this.n);
    for (let i = 0; i < this.n; i++) this.rowWeights[i] = classWeights[set.labels[i]];
    this.sparse = isSparse(set.features) && standardizer === null ? set.features : null;
    this.matrix =
      this.sparse === null && this.n * this.dim <= preparedValuesLimit ? standardizeAll(standardizer, set.features, this.n, this.dim) : null;
  }
}

/** Rows per forward/backward chunk: bounds the scratch memory of full-batch passes. */
const CHUNK_ROWS = 256;

/** Evaluates L and ∇L of a model over any subset of training rows, chunk by chunk. */
export class Objective {
  private readonly capacity: number;
  /** Densified rows of the chunk; allocated on first use (a sparse pass never needs it). */
  private batch: Float64Array | undefined;
  private readonly batchRows: Int32Array;
  private readonly sparse: boolean;
  private readonly batchLabels: Int32Array;
  private readonly batchWeights: Float64Array;
  readonly stats: BatchStats = { weightedLoss: 0, correct: 0 };
  /** Σ w_i of the last evaluation. */
  lastWeight = 0;

  constructor(
    readonly model: TrainableModel,
    readonly rows: TrainingRows,
    maxRows: number,
  ) {
    this.capacity = Math.max(1, Math.min(maxRows, CHUNK_ROWS));
    this.sparse = rows.sparse !== null && model.accumulateSparse !== undefined;
    this.batchRows = rows.matrix || this.sparse ? new Int32Array(this.capacity) : contiguousRows(this.capacity, rows.dim);
    this.batchLabels = new Int32Array(this.capacity);
    this.batchWeights = new Float64Array(this.capacity);
  }

  /**
   * L over rows indices[start..start+count), its gradient written to `grad` (overwritten).
   * Returns 0 with a zero gradient when every row in the subset has weight 0.
   */
  evaluate(
    params: Float64Array,
    indices: ArrayLike<number>,
    start: number,
    count: number,
    grad: Float64Array,
    dropoutRng: Rng | null = null,
  ): number {
    const { rows, model, stats } = this;
    const { dim, matrix } = rows;
    grad.fill(0);
    stats.weightedLoss = 0;
    stats.correct = 0;
    let normaliser = 0;
    for (let i = start; i < start + count; i++) normaliser += rows.rowWeights[indices[i]];
    this.lastWeight = normaliser;
    const safeNormaliser = normaliser > 0 ? normaliser : 1;
    for (let chunkStart = start; chunkStart < start + count; chunkStart += this.capacity) {
      const chunkCount = Math.min(this.capacity, start + count - chunkStart);
      const dense = matrix || this.sparse ? undefined : (this.batch ??= new Float64Array(this.capacity * dim));
      for (let i = 0; i < chunkCount; i++) {
        const row = indices[chunkStart + i];
        if (matrix) this.batchRows[i] = row * dim;
        else if (this.sparse) this.batchRows[i] = row;
        else writeRow(rows.standardizer, rows.set.features, row, dim, dense!, i * dim);
        this.batchLabels[i] = rows.set.labels[row];
        this.batchWeights[i] = rows.rowWeights[row];
      }
      if (this.sparse) {
        model.accumulateSparse!(params, rows.sparse!, this.batchRows, this.batchLabels, this.batchWeights, chunkCount, safeNormaliser, grad, stats);
        continue;
      }
      model.accumulate(
        params,
        matrix ?? dense!,
        this.batchRows,
        this.batchLabels,
        this.batchWeights,
        chunkCount,
        safeNormaliser,
        grad,
        dropoutRng,
        stats,
      );
    }
    return stats.weightedLoss / safeNormaliser;
  }
}
/** 0, 1, …, n−1: the index list of a full-batch pass. */
export function allRows(n: number): Int32Array {
  const indices = new Int32Array(n);
  for (let i = 0; i < n; i++) indices[i] = i;
  return indices;
}
