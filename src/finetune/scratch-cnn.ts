/**
 * A small CNN trained from random initialisation by the same machinery as fine-tuning (one ONNX
 * training graph per step), on raw pixels: the real scratch network for the pretrained-vs-scratch
 * comparison. Four stages of 3×3 convolution + ReLU + 2×2 max-pooling, global average pooling and
 * a linear classifier; He-initialised from the seed.
 */
import { asDense } from '../features/sparse.js';
import { availableParallelism } from 'node:os';
import type { Backbone } from '../backbones/backbone.js';
import type { ImagePreprocessing } from '../backbones/image-preprocessing.js';
import { createSession, stack, type ort } from '../backbones/onnx-session.js';
import { attr, encodeModel, OnnxGraph } from '../backbones/tfjs/onnx-graph.js';
import { nchwcBlockSize } from '../autodiff/nchwc.js';
import { probeTensorInfo } from '../autodiff/tensor-info.js';
import { buildTrainingGraph } from '../autodiff/training-graph.js';
import { TrainingSession } from '../autodiff/training-session.js';
import type { Dataset, LabelledItem } from '../data/dataset.js';
import { DEFAULT_IMAGE_AUGMENTATION, prepareImage, type ImageAugmentation } from '../data/image-decode.js';
import { computeMetrics, type ClassificationMetrics } from '../evaluate/metrics.js';
import type { Contender } from '../evaluate/compare.js';
import { extractFeatures } from '../features/extract.js';
import { dataError, usageError } from '../util/errors.js';
import { sha256 } from '../util/hash.js';
import { silentReporter, type Reporter } from '../util/progress.js';
import { Rng } from '../util/rng.js';
import { evaluateRows, trainEpochs, type EpochStats, type ExampleRows } from './loop.js';

export interface ScratchCnnOptions {
  /** Input side in pixels (default 64). */
  size?: number;
  /** Output channels of the four stages (default [16, 32, 64, 128]). */
  channels?: number[];
  /** Default 40 (early stopping on validation may end sooner). */
  epochs?: number;
  batchSize?: number;
  /** Peak AdamW learning rate of the one-cycle schedule (default 3e-3). */
  lr?: number;
  weightDecay?: number;
  labelSmoothing?: number;
  /** Augmented views per training image (random resized crop, flip, jitter), cycled through epochs. Default 4. */
  augment?: number;
  augmentation?: ImageAugmentation;
  /** Epochs without a lower validation loss before stopping (default 8; 0: never). */
  patience?: number;
  seed?: number;
  reporter?: Reporter;
  threads?: number;
}

export const SCRATCH_CNN_DEFAULTS = {
  size: 64,
  channels: [16, 32, 64, 128],
  epochs: 40,
  batchSize: 32,
  lr: 3e-3,
  weightDecay: 0.01,
  labelSmoothing: 0.1,
  augment: 4,
  patience: 8,
};

export interface ScratchCnnResult {
  metrics: { validation: ClassificationMetrics; test?: ClassificationMetrics };
  history: EpochStats[];
  bestEpoch: number;
  parameters: number;
  /** The trained network as an ONNX graph: input `pixels` [batch, 3, size, size] (ImageNet-normalised), output `logits`. */
  graph: Uint8Array;
  preprocessing: ImagePreprocessing;
  seconds: number;
}

/** ImageNet-normalised NCHW pixels at `size`×`size` (shortest edge resized, centre-cropped). */
export function scratchPreprocessing(size: number): ImagePreprocessing {
  return {
    kind: 'image',
    width: size,
    height: size,
    resize: 'shortest-edge-crop',
    shortestEdge: Math.round(size / 0.875),
    interpolation: 'bilinear',
    rescale: 1 / 255,
    mean: [0.485, 0.456, 0.406],
    std: [0.229, 0.224, 0.225],
    layout: 'NCHW',
  };
}

interface CnnGraph {
  graph: OnnxGraph;
  input: string;
  logits: string;
  weights: string[];
}

/** The network with He-normal weights drawn from `seed` (zero biases). */
export function buildScratchCnn(classes: number, size: number, channels: number[], seed: number): CnnGraph {
  const rng = new Rng(seed);
  const graph = new OnnxGraph();
  const input = graph.addInput('pixels', [-1, 3, size, size]);
  const weights: string[] = [];
  const he = (count: number, fanIn: number) => Float32Array.from({ length: count }, () => rng.normal() * Math.sqrt(2 / fanIn));
  let x = input;
  let inChannels = 3;
  channels.forEach((outChannels, stage) => {
    const w = graph.addFloatInitializer(`stage${stage}/conv/weight`, [outChannels, inChannels, 3, 3], he(outChannels * inChannels * 9, inChannels * 9));
    const b = graph.addFloatInitializer(`stage${stage}/conv/bias`, [outChannels], new Float32Array(outChannels));
    weights.push(w, b);
    const conv = graph.addNode('Conv', [x, w, b], { kernel_shape: attr.ints([3, 3]), pads: attr.ints([1, 1, 1, 1]) }, `stage${stage}/conv`);
    const relu = graph.addNode('Relu', [conv], {}, `stage${stage}/relu`);
    x = graph.addNode('MaxPool', [relu], { kernel_shape: attr.ints([2, 2]), strides: attr.ints([2, 2]) }, `stage${stage}/pool`);
    inChannels = outChannels;
  });
  const pooled = graph.addNode('Flatten', [graph.addNode('GlobalAveragePool', [x], {}, 'pool')], { axis: attr.int(1) }, 'features');
  const w = graph.addFloatInitializer('classifier/weight', [classes, inChannels], Float32Array.from({ length: classes * inChannels }, () => rng.normal() * Math.sqrt(1 / inChannels)));
  const b = graph.addFloatInitializer('classifier/bias', [classes], new Float32Array(classes));
  weights.push(w, b);
  const logits = graph.addNode('Gemm', [pooled, w, b], { transB: attr.int(1) }, 'logits');
  graph.outputs = [{ name: logits, shape: [-1, classes] }];
  return { graph, input, logits, weights };
}

/** Prepared pixels as a `Backbone` whose "features" are the pixels, so extraction (views, skips) is shared. */
function pixelSource(preprocessing: ImagePreprocessing): Backbone<Uint8Array, Float32Array> {
  const dim = 3 * preprocessing.width * preprocessing.height;
  return {
    reference: { id: `scratch-cnn:pixels-${preprocessing.width}`, sha256: sha256(`headstart scratch pixels ${preprocessing.width} v1`), modality: 'image', featureDim: dim, featureOutput: 'pixels' },
    preprocessing,
    batchSize: 32,
    prepare: (input, view) => prepareImage(input, preprocessing, undefined, view ? { seed: view.seed, settings: (view.settings as ImageAugmentation) ?? DEFAULT_IMAGE_AUGMENTATION } : undefined),
    forward: async (batch) => stack(batch),
    dispose: async () => {},
  };
}

interface ResolvedScratchOptions {
  size: number;
  channels: number[];
  epochs: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  labelSmoothing: number;
  augment: number;
  augmentation: ImageAugmentation;
  patience: number;
  seed: number;
}

function resolve(options: ScratchCnnOptions): ResolvedScratchOptions {
  const resolved = {
    ...SCRATCH_CNN_DEFAULTS,
    augmentation: DEFAULT_IMAGE_AUGMENTATION,
    seed: 0,
    ...Object.fromEntries(Object.entries(options).filter(([key, value]) => value !== undefined && key !== 'reporter' && key !== 'threads')),
  } as ResolvedScratchOptions;
  if (!(resolved.size >= 16) || resolved.size % 2 ** resolved.channels.length !== 0) {
    throw usageError(`size must be a multiple of ${2 ** resolved.channels.length} (one halving per stage) and at least 16, got ${resolved.size}`);
  }
  return resolved;
}

async function pixelRows(items: LabelledItem<Uint8Array>[], preprocessing: ImagePreprocessing, views: number, o: ResolvedScratchOptions, reporter: Reporter, label: string): Promise<ExampleRows & { skipped: { source: string; reason: string }[] }> {
  const extracted = await extractFeatures(pixelSource(preprocessing), items, { reporter, label, views: views > 0 ? { count: views, seed: o.seed, settings: o.augmentation } : undefined });
  return {
    data: asDense(extracted.features),
    labels: Int32Array.from(extracted.itemOfRow, (item) => items[item]!.label),
    itemOfRow: extracted.itemOfRow,
    viewOfRow: extracted.viewOfRow,
    skipped: extracted.skipped,
  };
}

/** Softmax probabilities from logits, row by row. */
function probabilitiesOf(logits: Float32Array, classes: number): Float32Array {
  const out = new Float32Array(logits.length);
  for (let r = 0; r < logits.length / classes; r++) {
    const row = logits.subarray(r * classes, (r + 1) * classes);
    const max = Math.max(...row);
    let sum = 0;
    row.forEach((v, k) => (sum += out[r * classes + k] = Math.exp(v - max)));
    for (let k = 0; k < classes; k++) out[r * classes + k]! /= sum;
  }
  return out;
}

async function trainCnn(classes: number, train: ExampleRows, validation: ExampleRows | undefined, o: ResolvedScratchOptions, reporter: Reporter, threads: number) {
  const cnn = buildScratchCnn(classes, o.size, o.channels, o.seed);
  const info = await probeTensorInfo(cnn.graph, 'scratch CNN');
  const training = buildTrainingGraph({
    graph: cnn.graph,
    info,
    logits: cnn.logits,
    params: cnn.weights.map((name) => ({ name })),
    optimizer: { kind: 'adamw', weightDecay: o.weightDecay },
    origin: 'scratch CNN',
    nchwcBlock: await nchwcBlockSize(),
  });
  const session = await TrainingSession.create(training, (name) => cnn.graph.floatInitializer(name)!, 'scratch CNN', threads);
  try {
    const inputs = [{ name: cnn.input, dims: [3, o.size, o.size] }];
    const loop = await trainEpochs(session, inputs, train, validation, classes, { ...o, schedule: 'one-cycle', warmupFraction: 0.3 }, reporter, 'train CNN from scratch');
    for (const [name, data] of loop.best) cnn.graph.initializers.set(name, { dtype: 'float32', dims: cnn.graph.initializers.get(name)!.dims, data });
    const parameters = cnn.weights.reduce((sum, name) => sum + cnn.graph.initializers.get(name)!.data.length, 0);
    return { cnn, loop, parameters };
  } finally {
    await session.release();
  }
}

/** Class probabilities of rows through a trained network. */
async function predictRows(cnn: CnnGraph, rows: ExampleRows, size: number, classes: number, threads: number): Promise<Float32Array> {
  const session = await createSession(encodeModel(cnn.graph, 'scratch CNN', 'small CNN trained from scratch by headstart', { producer: 'headstart' }), 'scratch CNN', threads);
  try {
    const run = async (batch: Record<string, ort.Tensor>) => (await session.run(batch, [cnn.logits]))[cnn.logits]!.data as Float32Array;
    return probabilitiesOf(await evaluateRows(run, [{ name: cnn.input, dims: [3, size, size] }], rows, classes), classes);
  } finally {
    await session.release();
  }
}

/**
 * Trains the CNN on a dataset's training split (with augmented views), early-stopped on the
 * validation loss, and reports validation (and test) metrics of the best epoch.
 */
export async function trainScratchCnn(dataset: Dataset<Uint8Array>, options: ScratchCnnOptions = {}): Promise<ScratchCnnResult> {
  const started = performance.now();
  const reporter = options.reporter ?? silentReporter;
  const threads = options.threads ?? availableParallelism();
  const o = resolve(options);
  const classes = dataset.classes.length;
  const preprocessing = scratchPreprocessing(o.size);
  const train = await pixelRows(dataset.train, preprocessing, o.augment, o, reporter, 'scratch CNN train pixels');
  const validation = await pixelRows(dataset.validation, preprocessing, 0, o, reporter, 'scratch CNN validation pixels');
  if (train.labels.length === 0 || validation.labels.length === 0) throw dataError('no readable training or validation images', dataset.origin);
  const { cnn, loop, parameters } = await trainCnn(classes, train, validation, o, reporter, threads);
  const metrics: ScratchCnnResult['metrics'] = { validation: computeMetrics(validation.labels, await predictRows(cnn, validation, o.size, classes, threads), dataset.classes) };
  if (dataset.test?.length) {
    const test = await pixelRows(dataset.test, preprocessing, 0, o, reporter, 'scratch CNN test pixels');
    metrics.test = computeMetrics(test.labels, await predictRows(cnn, test, o.size, classes, threads), dataset.classes);
  }
  return {
    metrics,
    history: loop.history,
    bestEpoch: loop.bestEpoch,
    parameters,
    graph: encodeModel(cnn.graph, 'scratch CNN', 'small CNN trained from scratch by headstart', { producer: 'headstart' }),
    preprocessing,
    seconds: (performance.now() - started) / 1000,
  };
}

/**
 * The scratch CNN as a `compare` contender: pixels are prepared once for the shared training and
 * evaluation lists; each run trains a fresh network (seeded) on the chosen rows for a fixed number
 * of epochs — with a handful of examples none can be spared for early stopping — and scores the
 * evaluation set.
 */
export async function scratchCnnContender(
  shared: { train: LabelledItem<Uint8Array>[]; evaluation: LabelledItem<Uint8Array>[] },
  classes: string[],
  options: ScratchCnnOptions = {},
): Promise<Contender> {
  const reporter = options.reporter ?? silentReporter;
  const threads = options.threads ?? availableParallelism();
  const o = resolve({ patience: 0, ...options });
  const preprocessing = scratchPreprocessing(o.size);
  const started = performance.now();
  const train = await pixelRows(shared.train, preprocessing, o.augment, o, reporter, 'scratch CNN train pixels');
  const evaluation = await pixelRows(shared.evaluation, preprocessing, 0, o, reporter, 'scratch CNN evaluation pixels');
  if (train.skipped.length || evaluation.skipped.length) throw dataError(`the scratch CNN could not read ${[...train.skipped, ...evaluation.skipped][0]!.source}`);
  const secondsPerExample = (performance.now() - started) / 1000 / ((o.augment + 1) * shared.train.length + shared.evaluation.length);
  return {
    name: 'small CNN (scratch)',
    description: `${o.channels.length}-stage CNN (${o.channels.join('-')} channels) on ${o.size}×${o.size} pixels, trained from random initialisation, ${o.epochs} epochs, ${o.augment} augmented views`,
    secondsPerExample,
    async run(rows, seed) {
      const runStarted = performance.now();
      const keep = new Set(rows);
      const selected = Array.from(train.itemOfRow.keys()).filter((row) => keep.has(train.itemOfRow[row]!));
      const subset: ExampleRows = {
        data: new Float32Array(selected.length * 3 * o.size * o.size),
        labels: Int32Array.from(selected, (row) => train.labels[row]!),
        itemOfRow: Int32Array.from(selected, (row) => train.itemOfRow[row]!),
        viewOfRow: Int32Array.from(selected, (row) => train.viewOfRow[row]!),
      };
      const size = 3 * o.size * o.size;
      selected.forEach((row, i) => subset.data.set(train.data.subarray(row * size, (row + 1) * size), i * size));
      // No early stopping: the evaluation set only scores the final network.
      const { cnn } = await trainCnn(classes.length, subset, undefined, { ...o, seed, patience: 0 }, silentReporter, threads);
      const probabilities = await predictRows(cnn, evaluation, o.size, classes.length, threads);
      const metrics = computeMetrics(evaluation.labels, probabilities, classes);
      return { accuracy: metrics.accuracy, macroF1: metrics.macro.f1, fitSeconds: (performance.now() - runStarted) / 1000 };
    },
  };
}
