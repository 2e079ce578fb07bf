/**
 * The nodes an export adds around a backbone graph: pixel scaling in front, then pooling, the
 * trained head (standardisation, weights, calibration temperature) and a softmax behind. Built on
 * the converter's `OnnxGraph`; `onnx-export.ts` splices the result into the backbone's graph.
 */
import type { ImagePreprocessing } from '../backbones/image-preprocessing.js';
import type { Pooling } from '../backbones/onnx-session.js';
import { attr, type OnnxGraph } from '../backbones/tfjs/onnx-graph.js';
import type { Activation } from '../heads/activation.js';
import type { HeadState } from '../heads/head.js';
import { DISTANCE_EPSILON, KNN_VOTE_SMOOTHING } from '../heads/knn.js';
import { modelError } from '../util/errors.js';

/** ONNX data type numbers used by Cast. */
const FLOAT = 1;
const BOOL = 9;

/** Every ONNX operator emitted here exists in this form from opset 13; reductions switch form at 13/18. */
export const MIN_EXPORT_OPSET = 13;

export class HeadGraphBuilder {
  constructor(
    private readonly graph: OnnxGraph,
    /** The backbone's default-domain opset: the added nodes must be valid in it. */
    private readonly opset: number,
    /** Prefix of every name added, chosen not to clash with the backbone's names. */
    private readonly prefix: string,
  ) {}

  private name(hint: string): string {
    return `${this.prefix}${hint}`;
  }

  private node(op: string, inputs: string[], hint: string, attributes: Parameters<OnnxGraph['addNode']>[2] = {}): string {
    return this.graph.addNode(op, inputs, attributes, this.name(hint));
  }

  private floats(hint: string, dims: number[], data: Float32Array): string {
    return this.graph.addFloatInitializer(this.name(hint), dims, data);
  }

  private scalar(hint: string, value: number): string {
    return this.graph.addScalar(this.name(hint), value);
  }

  private int64s(hint: string, values: number[]): string {
    return this.graph.addInt64Initializer(this.name(hint), values);
  }

  /** ReduceX over `axes`; the axes moved from an attribute to an input (ReduceSum at 13, the others at 18). */
  private reduce(op: 'ReduceMean' | 'ReduceSum' | 'ReduceSumSquare' | 'ReduceMax' | 'ReduceMin', input: string, axes: number[], keepdims: boolean, hint: string): string {
    const axesAsInput = op === 'ReduceSum' ? this.opset >= 13 : this.opset >= 18;
    const keep = { keepdims: attr.int(keepdims ? 1 : 0) };
    return axesAsInput
      ? this.node(op, [input, this.int64s(`${hint}/axes`, axes)], hint, keep)
      : this.node(op, [input], hint, { ...keep, axes: attr.ints(axes) });
  }

  /**
   * uint8 RGB pixels [batch, h, w, 3] → the float tensor the backbone takes, computed as
   * `toTensor` does: pixel × (rescale / std) − mean / std, transposed to NCHW when needed.
   */
  pixelsToTensor(pixels: string, pre: ImagePreprocessing): string {
    const cast = this.node('Cast', [pixels], 'pixels_float', { to: attr.int(FLOAT) });
    const scale = Float32Array.from([0, 1, 2], (c) => pre.rescale / pre.std[c]!);
    const shift = Float32Array.from([0, 1, 2], (c) => pre.mean[c]! / pre.std[c]!);
    const scaled = this.node('Mul', [cast, this.floats('pixel_scale', [3], scale)], 'pixels_scaled');
    const shifted = this.node('Sub', [scaled, this.floats('pixel_shift', [3], shift)], 'pixels_normalised');
    return pre.layout === 'NCHW' ? this.node('Transpose', [shifted], 'pixels_nchw', { perm: attr.ints([0, 3, 1, 2]) }) : shifted;
  }

  /** A backbone output → one feature row per input, as `poolOutput` computes it. */
  pool(output: string, pooling: Pooling): string {
    let pooled = output;
    // spatial-mean is chosen for NCHW feature maps, the token poolings for [batch, tokens, dim].
    if (pooling === 'spatial-mean') pooled = this.reduce('ReduceMean', output, [2, 3], false, 'pooled');
    if (pooling === 'token-mean') pooled = this.reduce('ReduceMean', output, [1], false, 'pooled');
    if (pooling === 'first-token') pooled = this.node('Gather', [output, this.int64s('first_token', [0])], 'pooled', { axis: attr.int(1) });
    return this.node('Flatten', [pooled], 'features', { axis: attr.int(1) });
  }

  /** int64 zeros shaped like `like` (token_type_ids for encoders that take them: one segment). */
  zerosLike(like: string): string {
    const shape = this.node('Shape', [like], 'token_shape');
    return this.node('ConstantOfShape', [shape], 'zeros', { value: attr.tensor({ dtype: 'int64', dims: [1], data: BigInt64Array.of(0n) }) });
  }

  /**
   * Token vectors [batch, tokens, dim] → one row per text, as the text backbone pools them: the mean
   * over the attention mask (count floored at 1e-9, as sentence-transformers does), the first
   * token, or the output as it is; then optionally L2-normalised.
   */
  poolTokens(hidden: string, mask: string, pooling: 'mean' | 'cls' | 'none', normalize: boolean): string {
    let pooled: string;
    if (pooling === 'mean') {
      const weights = this.node('Cast', [mask], 'mask_float', { to: attr.int(FLOAT) });
      const masked = this.node('Mul', [hidden, this.node('Unsqueeze', [weights, this.int64s('mask_axis', [2])], 'mask_3d')], 'masked_tokens');
      const sums = this.reduce('ReduceSum', masked, [1], false, 'token_sums');
      const counts = this.node('Max', [this.reduce('ReduceSum', weights, [1], true, 'token_counts'), this.scalar('min_count', 1e-9)], 'token_counts_floor');
      pooled = this.node('Div', [sums, counts], 'mean_tokens');
    } else if (pooling === 'cls') {
      pooled = this.node('Gather', [hidden, this.int64s('first_token', [0])], 'first_token_vector', { axis: attr.int(1) });
    } else {
      pooled = hidden;
    }
    const features = this.node('Flatten', [pooled], 'text_features', { axis: attr.int(1) });
    return normalize ? this.unitRows(features) : features;
  }

  /**
   * Word ids [batch, words] (padded, `mask` 1 on real words) → one row per text, as
   * WordVectorBackbone pools: the word vectors come from `table` (an initializer, V × dim) by
   * Gather; `weights` (V, the SIF weights) scale them, and the sum is divided by the word count, not
   * the weights' sum (poolWordVectors); `withExtremes` appends the element-wise max and min over
   * the real words (padding masked to ∓∞). A text without words pools to zeros in every part, as
   * in the library. Then optionally L2-normalised.
   */
  poolWords(ids: string, mask: string, table: Float32Array, dim: number, weights: Float32Array | undefined, withExtremes: boolean, normalize: boolean): string {
    const vectors = this.node('Gather', [this.floats('word_vectors', [table.length / dim, dim], table), ids], 'word_vectors_of_text', { axis: attr.int(0) });
    const present = this.node('Cast', [mask], 'word_mask_float', { to: attr.int(FLOAT) });
    const scale = weights ? this.node('Mul', [this.node('Gather', [this.floats('sif_weights', [weights.length], weights), ids], 'word_weights', { axis: attr.int(0) }), present], 'masked_word_weights') : present;
    const weighted = this.node('Mul', [vectors, this.node('Unsqueeze', [scale, this.int64s('word_axis', [2])], 'word_weights_3d')], 'weighted_words');
    const sums = this.reduce('ReduceSum', weighted, [1], false, 'word_sums');
    const counts = this.reduce('ReduceSum', present, [1], true, 'word_counts');
    // max(count, 1): an empty text's sum is already zero.
    const mean = this.node('Div', [sums, this.node('Max', [counts, this.scalar('one_word', 1)], 'word_counts_floor')], 'mean_words');
    let pooled = mean;
    if (withExtremes) {
      const real = this.node('Cast', [this.node('Unsqueeze', [mask, this.int64s('mask_word_axis', [2])], 'word_mask_3d')], 'word_mask_bool', { to: attr.int(BOOL) });
      const hasWords = this.node('Greater', [counts, this.scalar('no_words', 0)], 'has_words');
      const extreme = (op: 'ReduceMax' | 'ReduceMin', fill: number, hint: string) => {
        const masked = this.node('Where', [real, vectors, this.scalar(`${hint}_padding`, fill)], `${hint}_candidates`);
        return this.node('Where', [hasWords, this.reduce(op, masked, [1], false, `${hint}_words_raw`), this.scalar(`${hint}_empty`, 0)], `${hint}_words`);
      };
      pooled = this.node('Concat', [mean, extreme('ReduceMax', -Infinity, 'max'), extreme('ReduceMin', Infinity, 'min')], 'pooled_words', { axis: attr.int(1) });
    }
    return normalize ? this.unitRows(pooled) : pooled;
  }

  /**
   * A COO sparse tensor (int64 [nnz, 2] (row, term) indices, float32 [nnz] values, int64 [2]
   * shape) → the dense float32 [batch, dim] rows, for any head: zeros, then each value scattered
   * into its place. Only the shape's batch is read; `dim` is the export's own.
   */
  sparseToDense(indices: string, values: string, shape: string, dim: number): string {
    const batch = this.node('Slice', [shape, this.int64s('batch_start', [0]), this.int64s('batch_end', [1])], 'sparse_batch');
    const denseShape = this.node('Concat', [batch, this.int64s('sparse_dim', [dim])], 'dense_shape', { axis: attr.int(0) });
    const zeros = this.node('ConstantOfShape', [denseShape], 'dense_zeros', { value: attr.tensor({ dtype: 'float32', dims: [1], data: Float32Array.of(0) }) });
    return this.node('ScatterND', [zeros, indices, values], 'dense_rows');
  }

  /**
   * 16 kHz samples [1, n] in [-1, 1] → what the speech-embedding mel graph takes, as
   * SpeechEmbeddingBackbone.melFrames prepares it: int16 scale, completed with zeros to at least
   * one STFT frame.
   */
  samplesToMelInput(samples: string, int16Scale: number, minSamples: number): string {
    const scaled = this.node('Mul', [samples, this.scalar('int16_scale', int16Scale)], 'samples_int16_scale');
    const length = this.node('Gather', [this.node('Shape', [samples], 'samples_shape'), this.int64s('sample_axis', [1])], 'sample_count', { axis: attr.int(0) });
    const missing = this.node('Max', [this.node('Sub', [this.int64s('min_samples', [minSamples]), length], 'samples_short'), this.int64s('zero', [0])], 'samples_missing');
    const pads = this.node('Concat', [this.int64s('no_padding', [0, 0, 0]), missing], 'sample_pads', { axis: attr.int(0) });
    return this.node('Pad', [scaled, pads], 'samples_padded');
  }

  /**
   * The mel graph's output (one clip) → the embedding graph's input, as
   * SpeechEmbeddingBackbone.windowsOf lays it out: frames rescaled (x / divisor + offset), centred
   * on a canvas of max(frames, window) + 2 × edge frames filled with the clip's per-band minimum,
   * and every `hop`-th window of `window` frames cut from it: [windows, window, bands, 1].
   */
  speechWindows(mel: string, c: { melBands: number; melDivisor: number; melOffset: number; windowFrames: number; hopFrames: number; edgeFrames: number }): string {
    const frames = this.node('Reshape', [mel, this.int64s('mel_rows', [-1, c.melBands])], 'mel_frames_raw');
    const scaled = this.node('Add', [this.node('Div', [frames, this.scalar('mel_divisor', c.melDivisor)], 'mel_divided'), this.scalar('mel_offset', c.melOffset)], 'mel_frames');
    const floor = this.reduce('ReduceMin', scaled, [0], true, 'mel_floor');
    const count = this.node('Gather', [this.node('Shape', [scaled], 'mel_shape'), this.int64s('frame_axis', [0])], 'frame_count', { axis: attr.int(0) });
    const canvasFrames = this.node('Add', [this.node('Max', [count, this.int64s('window_frames', [c.windowFrames])], 'frames_or_window'), this.int64s('edges', [2 * c.edgeFrames])], 'canvas_frames');
    const spare = this.node('Sub', [canvasFrames, count], 'spare_frames');
    const start = this.node('Div', [spare, this.int64s('two', [2])], 'frames_before');
    const end = this.node('Sub', [spare, start], 'frames_after');
    const bands = this.int64s('bands', [c.melBands]);
    const fill = (rows: string, hint: string) => this.node('Expand', [floor, this.node('Concat', [rows, bands], `${hint}_shape`, { axis: attr.int(0) })], hint);
    const canvas = this.node('Concat', [fill(start, 'floor_before'), scaled, fill(end, 'floor_after')], 'mel_canvas', { axis: attr.int(0) });
    const windows = this.node(
      'Add',
      [this.node('Div', [this.node('Sub', [canvasFrames, this.int64s('window_frames_again', [c.windowFrames])], 'canvas_spare'), this.int64s('hop', [c.hopFrames])], 'last_window'), this.int64s('one', [1])],
      'window_count',
    );
    const scalar = (hint: string, value: number) => this.graph.addInitializer(this.name(hint), { dtype: 'int64', dims: [], data: BigInt64Array.of(BigInt(value)) });
    const windowIndex = this.node('Range', [scalar('range_start', 0), this.node('Squeeze', [windows, this.int64s('squeeze_axis', [0])], 'window_count_scalar'), scalar('range_step', 1)], 'window_index');
    const firstFrames = this.node('Unsqueeze', [this.node('Mul', [windowIndex, scalar('hop_scalar', c.hopFrames)], 'window_starts'), this.int64s('window_axis', [1])], 'window_starts_column');
    const offsets = this.graph.addInitializer(this.name('window_offsets'), { dtype: 'int64', dims: [1, c.windowFrames], data: BigInt64Array.from({ length: c.windowFrames }, (_, i) => BigInt(i)) });
    const indices = this.node('Add', [firstFrames, offsets], 'window_frame_indices');
    const cut = this.node('Gather', [canvas, indices], 'mel_windows', { axis: attr.int(0) });
    return this.node('Unsqueeze', [cut, this.int64s('channel_axis', [3])], 'mel_windows_nhwc');
  }

  /** Per-window embeddings (any shape with `dim` last) → one row: their mean, and for mean-max their maximum after it (poolRows). */
  poolWindows(embeddings: string, dim: number, pooling: 'mean' | 'mean-max'): string {
    const rows = this.node('Reshape', [embeddings, this.int64s('embedding_rows', [-1, dim])], 'window_embeddings');
    const mean = this.reduce('ReduceMean', rows, [0], true, 'mean_windows');
    if (pooling === 'mean') return mean;
    return this.node('Concat', [mean, this.reduce('ReduceMax', rows, [0], true, 'max_windows')], 'pooled_windows', { axis: attr.int(1) });
  }

  /**
   * Features → logits / temperature, for every head type. The temperature divides the last linear
   * map's weights and bias (linear, MLP, centroid) or the log-shares (k-NN), so softmax of the
   * result is the calibrated probability.
   */
  head(features: string, state: HeadState, temperature: number): string {
    const config = state.config as { dim: number; numClasses: number; standardize: boolean };
    const tensor = (name: string) => {
      const found = state.tensors[name];
      if (!found) throw modelError(`the ${state.type} head has no tensor "${name}"`);
      return found.data;
    };
    const z = config.standardize
      ? this.node('Div', [this.node('Sub', [features, this.floats('feature_mean', [config.dim], tensor('mean'))], 'centred'), this.floats('feature_std', [config.dim], tensor('std'))], 'standardised')
      : features;
    const { dim, numClasses } = config;
    switch (state.type) {
      case 'linear':
        return this.gemm(z, tensor('weight'), tensor('bias'), numClasses, dim, 1 / temperature, 'logits');
      case 'mlp': {
        const hidden = state.config.hiddenUnits as number;
        const pre = this.gemm(z, tensor('hiddenWeight'), tensor('hiddenBias'), hidden, dim, 1, 'hidden');
        const activated = this.activation(pre, state.config.activation as Activation);
        return this.gemm(activated, tensor('outputWeight'), tensor('outputBias'), numClasses, hidden, 1 / temperature, 'logits');
      }
      case 'centroid':
        return this.centroid(z, tensor('centroids'), dim, numClasses, state.config.scale as number, temperature);
      case 'knn':
        return this.knn(z, tensor('references'), tensor('referenceLabels'), dim, numClasses, state.config.k as number, temperature);
      default:
        throw modelError(`cannot export a head of type "${(state as { type: string }).type}"`);
    }
  }

  softmax(logits: string): string {
    return this.node('Softmax', [logits], 'probabilities', { axis: attr.int(1) });
  }

  /** x · Wᵀ·s + b·s for W `rows×cols` (row-major, as heads store it); the scale is folded in float64 before rounding. */
  private gemm(x: string, weight: Float32Array, bias: Float32Array, rows: number, cols: number, scale: number, hint: string): string {
    const w = scale === 1 ? weight : Float32Array.from(weight, (v) => v * scale);
    const b = scale === 1 ? bias : Float32Array.from(bias, (v) => v * scale);
    return this.node('Gemm', [x, this.floats(`${hint}_weight`, [rows, cols], w), this.floats(`${hint}_bias`, [rows], b)], hint, { transB: attr.int(1) });
  }

  private activation(x: string, kind: Activation): string {
    if (kind === 'relu') return this.node('Relu', [x], 'hidden_relu');
    // The tanh approximation, as activation.ts computes it: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
    const cube = this.node('Mul', [this.node('Mul', [x, x], 'gelu_square'), x], 'gelu_cube');
    const inner = this.node('Add', [x, this.node('Mul', [cube, this.scalar('gelu_a', 0.044715)], 'gelu_cubic_term')], 'gelu_inner');
    const tanh = this.node('Tanh', [this.node('Mul', [inner, this.scalar('gelu_c', Math.sqrt(2 / Math.PI))], 'gelu_scaled')], 'gelu_tanh');
    const gate = this.node('Mul', [this.node('Add', [tanh, this.scalar('one', 1)], 'gelu_one_plus'), this.scalar('half', 0.5)], 'gelu_gate');
    return this.node('Mul', [x, gate], 'hidden_gelu');
  }

  /** Rows divided by their L2 norm; a zero row stays zero (the heads give it similarity 0). */
  private unitRows(x: string): string {
    const norm = this.node('Sqrt', [this.reduce('ReduceSumSquare', x, [1], true, 'sum_squares')], 'norm');
    return this.node('Div', [x, this.node('Max', [norm, this.scalar('tiny', 1e-30)], 'norm_floor')], 'unit');
  }

  /** scale × cosine to each class centroid; a class without centroid gets −scale, as in CentroidHead. */
  private centroid(z: string, centroids: Float32Array, dim: number, numClasses: number, scale: number, temperature: number): string {
    const factor = scale / temperature;
    const transposed = new Float32Array(dim * numClasses);
    const offset = new Float32Array(numClasses);
    for (let c = 0; c < numClasses; c++) {
      let present = false;
      for (let j = 0; j < dim; j++) {
        const value = centroids[c * dim + j]!;
        if (value !== 0) present = true;
        transposed[j * numClasses + c] = value * factor;
      }
      if (!present) offset[c] = -factor;
    }
    const similarities = this.node('MatMul', [this.unitRows(z), this.floats('centroids_t', [dim, numClasses], transposed)], 'scaled_cosines');
    return this.node('Add', [similarities, this.floats('absent_class_offset', [numClasses], offset)], 'logits');
  }

  /**
   * k-NN as KnnHead scores it: cosine similarity to every stored reference, the k most similar,
   * votes weighted 1 / (cosine distance + ε) summed per class through a one-hot label matrix,
   * shares smoothed towards uniform, then their logs.
   */
  private knn(z: string, references: Float32Array, labels: Float32Array, dim: number, numClasses: number, k: number, temperature: number): string {
    const size = labels.length;
    const neighbours = Math.min(k, size);
    const transposed = new Float32Array(dim * size);
    for (let r = 0; r < size; r++) for (let j = 0; j < dim; j++) transposed[j * size + r] = references[r * dim + j]!;
    const oneHot = new Float32Array(size * numClasses);
    labels.forEach((label, r) => (oneHot[r * numClasses + label] = 1));

    const similarities = this.node('MatMul', [this.unitRows(z), this.floats('references_t', [dim, size], transposed)], 'similarities');
    const topValues = this.graph.uniqueName(this.name('top_similarities'));
    const topIndices = this.graph.uniqueName(this.name('top_indices'));
    this.graph.nodes.push({
      name: this.graph.uniqueName(this.name('top/TopK')),
      op: 'TopK',
      inputs: [similarities, this.int64s('k', [neighbours])],
      outputs: [topValues, topIndices],
      attributes: { axis: attr.int(1), largest: attr.int(1), sorted: attr.int(1) },
    });
    const distance = this.node('Relu', [this.node('Sub', [this.scalar('one', 1), topValues], 'one_minus_similarity')], 'distance');
    const weight = this.node('Reciprocal', [this.node('Add', [distance, this.scalar('distance_epsilon', DISTANCE_EPSILON)], 'distance_eps')], 'vote_weight');
    const neighbourClasses = this.node('Gather', [this.floats('reference_one_hot', [size, numClasses], oneHot), topIndices], 'neighbour_classes', { axis: attr.int(0) });
    const weighted = this.node('Mul', [neighbourClasses, this.node('Unsqueeze', [weight, this.int64s('vote_axis', [2])], 'vote_weight_3d')], 'weighted_votes');
    const votes = this.reduce('ReduceSum', weighted, [1], false, 'votes');
    const total = this.reduce('ReduceSum', weight, [1], true, 'vote_total');
    const share = this.node('Div', [votes, total], 'vote_share');
    const smoothed = this.node(
      'Add',
      [this.node('Mul', [share, this.scalar('keep', 1 - KNN_VOTE_SMOOTHING)], 'share_kept'), this.scalar('uniform', KNN_VOTE_SMOOTHING / numClasses)],
      'smoothed_share',
    );
    const logShare = this.node('Log', [smoothed], 'log_share');
    return temperature === 1 ? logShare : this.node('Mul', [logShare, this.scalar('inverse_temperature', 1 / temperature)], 'logits');
  }
}
