import { type Activation, activate, activationDerivative } from '../heads/activation.js';
import { accumulateTransposedProduct, contiguousRows, multiplyTransposed } from '../heads/kernels.js';
import { LinearHead, sparseLogits } from '../heads/linear.js';
import { MlpHead } from '../heads/mlp.js';
import type { Standardizer } from '../heads/standardizer.js';
import type { SparseRows } from '../features/sparse.js';
import type { Rng } from '../util/rng.js';
import { type BatchStats, type TrainableModel, crossEntropyBatch } from './objective.js';

/** Adds bias[biasOffset + o] to every row of a rows×outs matrix. */
export function addBias(matrix: Float64Array, rows: number, outs: number, bias: Float64Array, biasOffset: number): void {
  for (let i = 0; i < rows; i++) {
    const base = i * outs;
    for (let o = 0; o < outs; o++) matrix[base + o] += bias[biasOffset + o];
  }
}

/** Adds the column sums of a rows×outs matrix to g[gOffset..gOffset+outs) (a bias gradient). */
function accumulateColumnSums(matrix: Float64Array, rows: number, outs: number, g: Float64Array, gOffset: number): void {
  for (let i = 0; i < rows; i++) {
    const base = i * outs;
    for (let o = 0; o < outs; o++) g[gOffset + o] += matrix[base + o];
  }
}

/** Parameter layout: W (numClasses×dim, row-major) then b (numClasses). */
export class LinearModel implements TrainableModel {
  readonly size: number;
  readonly decayEnd: number;
  private logits = new Float64Array(0);
  private dLogits = new Float64Array(0);

  constructor(
    readonly dim: number,
    readonly numClasses: number,
    readonly labelSmoothing: number,
  ) {
    this.decayEnd = numClasses * dim;
    this.size = this.decayEnd + numClasses;
  }

  /** Zeros: the problem is convex, so a random start buys nothing. */
  init(params: Float64Array): void {
    params.fill(0);
  }

  accumulate(
    params: Float64Array,
    a: Float64Array,
    aRows: Int32Array,
    labels: Int32Array,
    weights: Float64Array,
    count: number,
    normaliser: number,
    grad: Float64Array,
    _dropoutRng: Rng | null,
    stats: BatchStats,
  ): void {
    const { dim, numClasses: k, decayEnd: biasStart } = this;
    if (this.logits.length < count * k) {
      this.logits = new Float64Array(count * k);
      this.dLogits = new Float64Array(count * k);
    }
    const { logits, dLogits } = this;
    multiplyTransposed(a, aRows, count, dim, params, 0, k, logits);
    addBias(logits, count, k, params, biasStart);
    crossEntropyBatch(logits, dLogits, count, k, labels, weights, normaliser, this.labelSmoothing, stats);
    accumulateTransposedProduct(dLogits, count, k, a, aRows, dim, grad, 0);
    accumulateColumnSums(dLogits, count, k, grad, biasStart);
  }

  /** The same on sparse rows: logits from the non-zeros, and ∇W scattered onto their columns only. */
  accumulateSparse(
    params: Float64Array,
    x: SparseRows,
    rows: Int32Array,
    labels: Int32Array,
    weights: Float64Array,
    count: number,
    normaliser: number,
    grad: Float64Array,
    stats: BatchStats,
  ): void {
    const { dim, numClasses: k, decayEnd: biasStart } = this;
    if (this.logits.length < count * k) {
      this.logits = new Float64Array(count * k);
      this.dLogits = new Float64Array(count * k);
    }
    const { logits, dLogits } = this;
    sparseLogits(x, params, params.subarray(biasStart), dim, k, rows, count, logits);
    crossEntropyBatch(logits, dLogits, count, k, labels, weights, normaliser, this.labelSmoothing, stats);
    const { indptr, indices, values } = x;
    for (let i = 0; i < count; i++) {
      const r = rows[i];
      const end = indptr[r + 1];
      if (k === 2) {
        const d0 = dLogits[2 * i];
        const d1 = dLogits[2 * i + 1];
        if (d0 === 0 && d1 === 0) continue;
        for (let e = indptr[r]; e < end; e++) {
          const j = indices[e];
          const v = values[e];
          grad[j] += d0 * v;
          grad[dim + j] += d1 * v;
        }
        continue;
      }
      for (let c = 0; c < k; c++) {
        const delta = dLogits[i * k + c];
        if (delta === 0) continue;
        const g0 = c * dim;
        for (let e = indptr[r]; e < end; e++) grad[g0 + indices[e]] += delta * values[e];
      }
    }
    accumulateColumnSums(dLogits, count, k, grad, biasStart);
  }

  toHead(params: Float64Array, standardizer: Standardizer | null): LinearHead {
    return new LinearHead(
      this.dim,
      this.numClasses,
      Float32Array.from(params.subarray(0, this.decayEnd)),
      Float32Array.from(params.subarray(this.decayEnd)),
      standardizer,
    );
  }
}

/**
 * Parameter layout: W1 (hidden×dim), W2 (numClasses×hidden), b1 (hidden), b2 (numClasses) —
 * weights first so the decayed part is one contiguous range.
 */
export class MlpModel implements TrainableModel {
  readonly size: number;
  readonly decayEnd: number;
  private readonly w2Start: number;
  private readonly b1Start: number;
  private readonly b2Start: number;
  private capacity = 0;
  private preActivation = new Float64Array(0);
  private hidden = new Float64Array(0);
  private hiddenRows: Int32Array = new Int32Array(0);
  private logitRows: Int32Array = new Int32Array(0);
  private readonly w2Transposed: Float64Array;
  private mask = new Float64Array(0);
  private dPre = new Float64Array(0);
  private logits = new Float64Array(0);
  private dLogits = new Float64Array(0);

  constructor(
    readonly dim: number,
    readonly hiddenUnits: number,
    readonly numClasses: number,
    readonly activation: Activation,
    readonly dropout: number,
    readonly labelSmoothing: number,
  ) {
    this.w2Start = hiddenUnits * dim;
    this.decayEnd = this.w2Start + numClasses * hiddenUnits;
    this.b1Start = this.decayEnd;
    this.b2Start = this.b1Start + hiddenUnits;
    this.size = this.b2Start + numClasses;
    this.w2Transposed = new Float64Array(hiddenUnits * numClasses);
  }

  /**
   * He-normal W1 (std √(2/dim), keeps ReLU activations at unit scale), LeCun-normal W2
   * (std √(1/hidden): it feeds softmax, not a ReLU), zero biases.
   */
  init(params: Float64Array, rng: Rng): void {
    params.fill(0);
    const hiddenStd = Math.sqrt(2 / this.dim);
    for (let i = 0; i < this.w2Start; i++) params[i] = hiddenStd * rng.normal();
    const outputStd = Math.sqrt(1 / this.hiddenUnits);
    for (let i = this.w2Start; i < this.decayEnd; i++) params[i] = outputStd * rng.normal();
  }

  private ensureCapacity(count: number): void {
    if (count <= this.capacity) return;
    this.capacity = count;
    const hu = this.hiddenUnits;
    this.preActivation = new Float64Array(count * hu);
    this.hidden = new Float64Array(count * hu);
    this.hiddenRows = contiguousRows(count, hu);
    this.logitRows = contiguousRows(count, this.numClasses);
    this.mask = new Float64Array(count * hu);
    this.dPre = new Float64Array(count * hu);
    this.logits = new Float64Array(count * this.numClasses);
    this.dLogits = new Float64Array(count * this.numClasses);
  }

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
  ): void {
    const { dim, hiddenUnits: hu, numClasses: k, activation, w2Start, b1Start, b2Start } = this;
    this.ensureCapacity(count);
    const { preActivation, hidden, hiddenRows, mask, dPre, logits, dLogits } = this;
    const size = count * hu;

    multiplyTransposed(a, aRows, count, dim, params, 0, hu, preActivation);
    addBias(preActivation, count, hu, params, b1Start);
    // Inverted dropout: kept units are scaled by 1/(1−p) at training time, so prediction needs no change.
    if (dropoutRng !== null && this.dropout > 0) {
      const keepScale = 1 / (1 - this.dropout);
      for (let i = 0; i < size; i++) mask[i] = dropoutRng.next() < this.dropout ? 0 : keepScale;
    } else {
      mask.fill(1, 0, size);
    }
    if (activation === 'relu') {
      for (let i = 0; i < size; i++) hidden[i] = preActivation[i] > 0 ? preActivation[i] * mask[i] : 0;
    } else {
      for (let i = 0; i < size; i++) hidden[i] = mask[i] === 0 ? 0 : activate(activation, preActivation[i]) * mask[i];
    }

    multiplyTransposed(hidden, hiddenRows, count, hu, params, w2Start, k, logits);
    addBias(logits, count, k, params, b2Start);
    crossEntropyBatch(logits, dLogits, count, k, labels, weights, normaliser, this.labelSmoothing, stats);
    accumulateTransposedProduct(dLogits, count, k, hidden, hiddenRows, hu, grad, w2Start);
    accumulateColumnSums(dLogits, count, k, grad, b2Start);

    // dPre = (dLogits · W2) ⊙ mask ⊙ act'(pre); W2 is transposed so the blocked kernel applies.
    const w2Transposed = this.w2Transposed;
    for (let c = 0; c < k; c++) {
      for (let h = 0; h < hu; h++) w2Transposed[h * k + c] = params[w2Start + c * hu + h];
    }
    multiplyTransposed(dLogits, this.logitRows, count, k, w2Transposed, 0, hu, dPre);
    if (activation === 'relu') {
      for (let i = 0; i < size; i++) dPre[i] = preActivation[i] > 0 ? dPre[i] * mask[i] : 0;
    } else {
      for (let i = 0; i < size; i++) {
        dPre[i] = mask[i] === 0 ? 0 : dPre[i] * mask[i] * activationDerivative(activation, preActivation[i]);
      }
    }
    accumulateTransposedProduct(dPre, count, hu, a, aRows, dim, grad, 0);
    accumulateColumnSums(dPre, count, hu, grad, b1Start);
  }

  toHead(params: Float64Array, standardizer: Standardizer | null): MlpHead {
    return new MlpHead(
      this.dim,
      this.numClasses,
      this.hiddenUnits,
      this.activation,
      Float32Array.from(params.subarray(0, this.w2Start)),
      Float32Array.from(params.subarray(this.b1Start, this.b2Start)),
      Float32Array.from(params.subarray(this.w2Start, this.decayEnd)),
      Float32Array.from(params.subarray(this.b2Start)),
      standardizer,
    );
  }
}
