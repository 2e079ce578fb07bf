import { ACTIVATIONS, type Activation, activate } from './activation.js';
import { BaseHead, SCORE_CHUNK_ROWS, StateReader } from './common.js';
import type { HeadState, NamedTensor } from './head.js';
import { contiguousRows, multiplyTransposed } from './kernels.js';
import { STANDARDIZER_TENSORS, Standardizer } from './standardizer.js';

/**
 * One hidden layer: logits = W2·act(W1·z + b1) + b2 on standardised features z. Dropout is a
 * training-time matter only (inverted dropout), so prediction needs no rescaling.
 */
export class MlpHead extends BaseHead {
  readonly type = 'mlp' as const;
  private readonly hiddenWeight64: Float64Array;
  private readonly outputWeight64: Float64Array;
  private readonly hiddenScratch: Float64Array;
  private readonly hiddenRows: Int32Array;
  private readonly logitScratch: Float64Array;

  constructor(
    dim: number,
    numClasses: number,
    readonly hiddenUnits: number,
    readonly activation: Activation,
    /** hiddenUnits×dim */
    readonly hiddenWeight: Float32Array,
    readonly hiddenBias: Float32Array,
    /** numClasses×hiddenUnits */
    readonly outputWeight: Float32Array,
    readonly outputBias: Float32Array,
    standardizer: Standardizer | null,
  ) {
    super(dim, numClasses, standardizer);
    this.hiddenWeight64 = Float64Array.from(hiddenWeight);
    this.outputWeight64 = Float64Array.from(outputWeight);
    this.hiddenScratch = new Float64Array(SCORE_CHUNK_ROWS * hiddenUnits);
    this.hiddenRows = contiguousRows(SCORE_CHUNK_ROWS, hiddenUnits);
    this.logitScratch = new Float64Array(SCORE_CHUNK_ROWS * numClasses);
  }

  protected scoreRows(a: Float64Array, aRows: Int32Array, count: number, out: Float64Array, outOffset: number): void {
    const { dim, numClasses: k, hiddenUnits: hu, activation, hiddenBias, outputBias } = this;
    const { hiddenScratch: hidden, logitScratch: logits } = this;
    multiplyTransposed(a, aRows, count, dim, this.hiddenWeight64, 0, hu, hidden);
    for (let i = 0; i < count; i++) {
      for (let h = 0; h < hu; h++) hidden[i * hu + h] = activate(activation, hidden[i * hu + h] + hiddenBias[h]);
    }
    multiplyTransposed(hidden, this.hiddenRows, count, hu, this.outputWeight64, 0, k, logits);
    for (let i = 0; i < count; i++) {
      for (let c = 0; c < k; c++) out[outOffset + i * k + c] = logits[i * k + c] + outputBias[c];
    }
  }

  state(): HeadState {
    const { dim, numClasses, hiddenUnits } = this;
    const tensors: Record<string, NamedTensor> = {
      hiddenWeight: { shape: [hiddenUnits, dim], data: this.hiddenWeight },
      hiddenBias: { shape: [hiddenUnits], data: this.hiddenBias },
      outputWeight: { shape: [numClasses, hiddenUnits], data: this.outputWeight },
      outputBias: { shape: [numClasses], data: this.outputBias },
      ...this.standardizer?.tensors(),
    };
    return {
      type: 'mlp',
      config: {
        dim,
        numClasses,
        hiddenUnits,
        activation: this.activation,
        standardize: this.standardizer !== null,
      },
      tensors,
    };
  }

  static fromState(state: HeadState): MlpHead {
    const reader = new StateReader(state);
    const dim = reader.integer('dim', 1);
    const numClasses = reader.integer('numClasses', 2);
    const hiddenUnits = reader.integer('hiddenUnits', 1);
    const activation = reader.oneOf('activation', ACTIVATIONS);
    const standardize = reader.boolean('standardize');
    reader.noOtherTensors([
      'hiddenWeight',
      'hiddenBias',
      'outputWeight',
      'outputBias',
      ...(standardize ? STANDARDIZER_TENSORS : []),
    ]);
    return new MlpHead(
      dim,
      numClasses,
      hiddenUnits,
      activation,
      reader.tensor('hiddenWeight', [hiddenUnits, dim]),
      reader.tensor('hiddenBias', [hiddenUnits]),
      reader.tensor('outputWeight', [numClasses, hiddenUnits]),
      reader.tensor('outputBias', [numClasses]),
      standardize ? Standardizer.fromState(reader, dim) : null,
    );
  }
}
