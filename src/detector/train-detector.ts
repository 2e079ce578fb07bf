/**
 * Fine-tuning the builtin CenterNet to a user's classes. The class branch is retargeted
 * (`retargetClasses`), the graph is cut below the weights that train (by default the two branches
 * after the stride-4 map; `unfreeze: N` adds the body's top N blocks, `blocks.ts`), the frozen prefix
 * runs once per image and view through `extractFeatures` with the on-disk feature cache, and each step
 * is one ONNX graph (forward, CenterNet's focal + L1 loss, gradients, AdamW) from `src/autodiff`.
 * Augmented views (`detector-views.ts`: horizontal flip with boxes mirrored, colour jitter, and with
 * `scaleCrop` random scale and crop with boxes clipped) are cached views like the classifier's; each
 * epoch reads one view per image. The epoch with the best validation mAP50
 * (`coco-eval.ts`) is kept; `patience` stops early.
 *
 * Rows are read back from the cache batch by batch rather than held in memory: the frontier is
 * 128×128×128 floats, 8 MB an image, too much to keep for a few hundred images and views.
 */
import { readFile } from 'node:fs/promises';
import type { AugmentationView, Backbone, BackboneReference } from '../backbones/backbone.js';
import { createSession, ort, stack } from '../backbones/onnx-session.js';
import { decodeModel, encodeModel } from '../backbones/tfjs/onnx-graph.js';
import { findBlocks, weightsOfTopBlocks } from '../autodiff/blocks.js';
import { readTrainableModel } from '../autodiff/model.js';
import { partitionModel } from '../autodiff/partition.js';
import { buildTrainingGraph } from '../autodiff/training-graph.js';
import { TrainingSession } from '../autodiff/training-session.js';
import { elementCount } from '../autodiff/graph-utils.js';
import { FeatureCache } from '../features/cache.js';
import { extractFeatures } from '../features/extract.js';
import { makeSchedule } from '../train/schedule.js';
import { dataError, usageError } from '../util/errors.js';
import { sha256 } from '../util/hash.js';
import { silentReporter, type Reporter } from '../util/progress.js';
import { Rng } from '../util/rng.js';
import { builtinCenterNet, CENTERNET_INPUT_SIZE, CENTERNET_STRIDE, decodeCenterNet } from './centernet.js';
import { CENTERNET_HEAD, retargetClasses } from './centernet-head.js';
import { convParameters, normaliseConvOutputs, reinitialiseConvs } from './centernet-scratch.js';
import { prepareDetectorInput } from './detector-input.js';
import { centerNetLoss, FOCAL_BETA, LOSS_INPUTS, SIDES_WEIGHT } from './centernet-loss.js';
import { batchTargets, drawTargets } from './centernet-targets.js';
import { evaluateDetections, type DetectionMetrics, type EvaluatedImage } from './coco-eval.js';
import type { DetectionDataset, DetectionItem } from './detection-dataset.js';
import { detectorViews, trainingView, viewBoxes, viewPixels } from './detector-views.js';

export interface DetectorTrainOptions {
  /** Epochs (early stopping may end sooner). Default 10. */
  epochs?: number;
  /** AdamW peak learning rate (one-cycle). Default 1e-2 (measured: 2e-3 left fresh class rows near mAP50 0 after 20 steps; 1e-2 reached 50 %). */
  lr?: number;
  /** Default 4. */
  batchSize?: number;
  /** Body blocks trained beside the two branches (0: the branches only). Default 0. */
  unfreeze?: number;
  /** Augmented views per training image (flip, colour jitter; with `scaleCrop` also scale and crop), cached like features. Default 1. */
  augment?: number;
  /** The augmented views also randomly scale and crop (boxes clipped, `detector-views.ts`); false: flip and colour jitter only. Default false. */
  scaleCrop?: boolean;
  /** Stop after this many epochs without a better validation mAP50 (0: never). Default 4. */
  patience?: number;
  weightDecay?: number;
  /** Every class branch row from a fresh start, ignoring COCO name matches (the renamed-head baseline keeps them). */
  freshClasses?: boolean;
  /**
   * The same architecture from random initialisation (`centernet-scratch.ts`), every weight trained,
   * decaying towards zero: the from-scratch side of `compare --task detect`. Trains the whole network.
   */
  fromScratch?: boolean;
}

// augment 1, scale/crop off: on the generated ant/bee set (bench/detect-augment.ts, seeds 0–3, 10 epochs) scale/crop moved mean mAP50 by +0.1
// (1 view) and +0.2 points (2 views), a second view by +0.1: within seed noise (±1.7 per seed), so not worth a second view's extraction time.
export const DETECTOR_TRAIN_DEFAULTS = { epochs: 10, lr: 1e-2, batchSize: 4, unfreeze: 0, augment: 1, scaleCrop: false, patience: 4, weightDecay: 1e-4 };

export interface DetectorTrainSettings {
  cacheDir: string;
  /** false: no on-disk cache of the frozen prefix's activations (each epoch recomputes them). */
  cache?: boolean;
  seed?: number;
  reporter?: Reporter;
  threads?: number;
}

export interface DetectorEpoch {
  epoch: number;
  lr: number;
  trainLoss: number;
  valMAP50: number;
  valMAP: number;
  seconds: number;
}

export interface DetectorTrainResult {
  /** The full builtin-layout graph with the trained weights. */
  graph: Uint8Array;
  inputName: string;
  heatmapOutput: string;
  sidesOutput: string;
  baseSha256: string;
  validation: DetectionMetrics;
  record: {
    options: Required<Omit<DetectorTrainOptions, 'freshClasses' | 'fromScratch'>> & { freshClasses: boolean; fromScratch: boolean };
    initialisedFrom: (string | null)[];
    trainedWeights: number;
    trainedValues: number;
    cut: string[];
    history: DetectorEpoch[];
    bestEpoch: number;
    stoppedEarly: boolean;
    seconds: { cut: number; train: number };
  };
}

function resolve(options: DetectorTrainOptions) {
  const int = (name: string, value: number, min: number) => {
    if (!Number.isSafeInteger(value) || value < min) throw usageError(`${name} must be an integer >= ${min}, got ${JSON.stringify(value)}`);
    return value;
  };
  const positive = (name: string, value: number) => {
    if (!(typeof value === 'number' && value > 0 && Number.isFinite(value))) throw usageError(`${name} must be a positive number, got ${JSON.stringify(value)}`);
    return value;
  };
  const d = DETECTOR_TRAIN_DEFAULTS;
  return {
    epochs: int('epochs', options.epochs ?? d.epochs, 1),
    lr: positive('lr', options.lr ?? d.lr),
    batchSize: int('batchSize', options.batchSize ?? d.batchSize, 1),
    unfreeze: int('unfreeze', options.unfreeze ?? d.unfreeze, 0),
    augment: int('augment', options.augment ?? d.augment, 0),
    scaleCrop: options.scaleCrop ?? d.scaleCrop,
    patience: int('patience', options.patience ?? d.patience, 0),
    weightDecay: options.weightDecay ?? d.weightDecay,
    freshClasses: options.freshClasses ?? false,
    fromScratch: options.fromScratch ?? false,
  };
}

/**
 * The frozen prefix as a `Backbone`, so extraction batches, overlaps decoding and caches its output.
 * Without a session nothing is frozen (the whole network trains): its "features" are the prepared
 * 512×512 input itself, views included, which the step graph takes directly.
 */
class FrozenPrefix implements Backbone<Uint8Array, Float32Array> {
  readonly batchSize = 4;
  // Flip and jitter as first written; scale and crop are keyed by the views' settings (`detector-views.ts`).
  readonly preprocessing = { kind: 'detector-input', size: CENTERNET_INPUT_SIZE, resize: 'stretch', augmentation: 'flip + colour jitter v1' };
  constructor(
    readonly reference: BackboneReference,
    private readonly session: ort.InferenceSession | undefined,
    private readonly inputName: string,
    private readonly outputs: string[],
  ) {}

  async prepare(input: Uint8Array, view?: AugmentationView): Promise<Float32Array> {
    return viewPixels(input, view);
  }

  async forward(batch: Float32Array[]): Promise<Float32Array> {
    if (!this.session) return stack(batch);
    const size = CENTERNET_INPUT_SIZE;
    const result = await this.session.run({ [this.inputName]: new ort.Tensor('float32', stack(batch), [batch.length, size, size, 3]) });
    if (this.outputs.length === 1) return result[this.outputs[0]!]!.data as Float32Array;
    const parts = this.outputs.map((name) => result[name]!.data as Float32Array);
    const sizes = parts.map((p) => p.length / batch.length);
    const row = sizes.reduce((a, b) => a + b, 0);
    const rows = new Float32Array(batch.length * row);
    for (let r = 0; r < batch.length; r++) {
      let offset = r * row;
      parts.forEach((p, t) => {
        rows.set(p.subarray(r * sizes[t]!, (r + 1) * sizes[t]!), offset);
        offset += sizes[t]!;
      });
    }
    return rows;
  }

  async dispose(): Promise<void> {
    await this.session?.release();
  }
}

const GRID = CENTERNET_INPUT_SIZE / CENTERNET_STRIDE;
/** Training images the from-scratch initialisation measures its Conv outputs on. */
const SCRATCH_INIT_IMAGES = 2;

export async function trainCenterNet(data: DetectionDataset, options: DetectorTrainOptions, settings: DetectorTrainSettings): Promise<DetectorTrainResult> {
  const reporter = settings.reporter ?? silentReporter;
  const seed = settings.seed ?? 0;
  const resolved = resolve(options);
  const classes = data.classes.length;
  if (classes === 0) throw dataError('the dataset has no classes', data.origin);
  if (data.train.length === 0) throw dataError('no training images', data.origin);
  if (data.validation.length === 0) throw dataError('no validation images', data.origin);
  if (resolved.fromScratch && resolved.unfreeze > 0) throw usageError('fromScratch trains every weight; unfreeze does not apply');
  const cutStarted = performance.now();

  const builtin = await builtinCenterNet({ cacheDir: settings.cacheDir, reporter });
  const graph = decodeModel(await readFile(builtin.model), builtin.origin);
  const { initialisedFrom } = retargetClasses(graph, data.classes, seed, builtin.origin, { scratch: resolved.freshClasses || resolved.fromScratch });
  if (resolved.fromScratch) {
    reinitialiseConvs(graph, seed, builtin.origin);
    // LSUV's rescaling, measured on the first training images (the same ones for a given draw, so seeded runs repeat).
    const sample = data.train.slice(0, SCRATCH_INIT_IMAGES);
    const pixels = new Float32Array(sample.length * CENTERNET_INPUT_SIZE * CENTERNET_INPUT_SIZE * 3);
    for (const [i, item] of sample.entries()) pixels.set((await prepareDetectorInput(await item.load(), CENTERNET_INPUT_SIZE, item.source)).pixels, i * CENTERNET_INPUT_SIZE * CENTERNET_INPUT_SIZE * 3);
    await normaliseConvOutputs(graph, { inputName: builtin.inputName, pixels, dims: [sample.length, CENTERNET_INPUT_SIZE, CENTERNET_INPUT_SIZE, 3] }, builtin.origin);
  }
  const full = encodeModel(graph, 'centernet', `builtin:centernet retargeted to ${classes} classes`, { producer: 'headstart detect' });
  // Training reads the class logits (before the sigmoid) and the sides, both NCHW; one Concat gives the partition a single output.
  const maps = graph.addNode('Concat', [CENTERNET_HEAD.classLogits, CENTERNET_HEAD.sides], { axis: { kind: 'int', value: 1 } }, 'detector/train_maps');
  graph.outputs = [{ name: maps, shape: [-1, classes + 4, GRID, GRID] }];
  const model = await readTrainableModel(encodeModel(graph, 'centernet-train', '', { producer: 'headstart detect' }), builtin.origin);

  const bodyWeights = resolved.fromScratch ? convParameters(model.graph) : resolved.unfreeze > 0 ? weightsOfTopBlocks(findBlocks(model, CENTERNET_HEAD.features), resolved.unfreeze) : [];
  const weights = [...new Set([...bodyWeights, ...CENTERNET_HEAD.branchWeights])];
  const partition = partitionModel(model, maps, weights);
  // Nothing frozen worth caching (from scratch, or unfreeze reaching the input; at most the input's NHWC → NCHW
  // Transpose is left): the whole network trains on the prepared input, uncached.
  const wholeNetwork = !partition.prefix || convParameters(partition.prefix).length === 0;
  partition.suffix.nodes.splice(0, partition.suffix.nodes.length, ...partition.suffix.nodes.filter((node) => !node.outputs.includes(maps)));
  const prefixSession = partition.prefix
    ? await createSession(encodeModel(partition.prefix, 'frozen prefix', '', { producer: 'headstart detect' }), `${builtin.origin} (frozen prefix)`, settings.threads)
    : undefined;
  const frontierSizes = partition.frontier.map((t) => elementCount(t.dims));
  const prefix = new FrozenPrefix(
    {
      id: 'builtin:centernet',
      sha256: builtin.sha256,
      modality: 'image',
      featureDim: frontierSizes.reduce((a, b) => a + b, 0),
      featureOutput: `activations at ${partition.frontier.map((t) => t.name).join(' + ')}`,
    },
    prefixSession,
    model.graph.inputs[0]!.name,
    partition.prefix?.outputs.map((o) => o.name) ?? [],
  );

  let session: TrainingSession | undefined;
  try {
    const training = buildTrainingGraph({
      graph: partition.suffix,
      info: partition.info,
      logits: CENTERNET_HEAD.classLogits,
      extraOutputs: [CENTERNET_HEAD.sides],
      loss: centerNetLoss(CENTERNET_HEAD.classLogits, CENTERNET_HEAD.sides, classes, GRID),
      params: weights.map((name) => ({ name })),
      // Decaying towards a random draw would be no prior at all: from scratch decays towards zero.
      optimizer: { kind: 'adamw', weightDecay: resolved.weightDecay, decayTowards: resolved.fromScratch ? 'zero' : 'initial' },
      clipGradNorm: 10,
      origin: builtin.origin,
    });
    session = await TrainingSession.create(training, (name) => partition.suffix.floatInitializer(name)!, builtin.origin, settings.threads);
    // The whole network's "frontier" is the input: caching decoded pixels would save little and take 3 MB a view.
    const cache = settings.cache === false || wholeNetwork ? undefined : FeatureCache.forBackbone(settings.cacheDir, prefix);
    const views = detectorViews(resolved.augment, seed, resolved.scaleCrop);
    const viewsPerItem = 1 + resolved.augment;

    // Content keys give each view's seed, so boxes follow the pixels of a cached view.
    const contentKeys = await Promise.all(data.train.map(async (item) => sha256(await item.load())));
    const rowsOf = async (items: DetectionItem[], withViews: boolean, label: string) => {
      const extracted = await extractFeatures(prefix, items, { cache, views: withViews ? views : undefined, reporter: silentReporter, label });
      if (extracted.skipped.length) throw dataError(`cannot read ${extracted.skipped[0]!.source}: ${extracted.skipped[0]!.reason}`, extracted.skipped[0]!.source);
      return extracted;
    };
    const feedsOf = (rows: Float32Array, count: number): Record<string, ort.Tensor> => {
      const feeds: Record<string, ort.Tensor> = {};
      const row = prefix.reference.featureDim;
      let offset = 0;
      partition.frontier.forEach((tensor, t) => {
        const size = frontierSizes[t]!;
        const part = partition.frontier.length === 1 ? rows : new Float32Array(count * size);
        if (partition.frontier.length > 1) for (let r = 0; r < count; r++) part.set(rows.subarray(r * row + offset, r * row + offset + size), r * size);
        feeds[tensor.name] = new ort.Tensor('float32', part, [count, ...tensor.dims]);
        offset += size;
      });
      return feeds;
    };

    // Fill the cache once (the cold part), with progress.
    const fill = reporter.task('frozen prefix (train + validation)', data.train.length * viewsPerItem + data.validation.length, 'views');
    for (const [items, withViews] of [[data.train, true], [data.validation, false]] as const) {
      for (let start = 0; start < items.length; start += resolved.batchSize) {
        const chunk = items.slice(start, start + resolved.batchSize);
        if (cache) await rowsOf(chunk, withViews, 'prefix');
        fill.tick(chunk.length * (withViews ? viewsPerItem : 1));
      }
    }
    fill.done();
    const cutSeconds = (performance.now() - cutStarted) / 1000;

    const validate = async (): Promise<DetectionMetrics> => {
      const images: EvaluatedImage[] = [];
      for (let start = 0; start < data.validation.length; start += resolved.batchSize) {
        const chunk = data.validation.slice(start, start + resolved.batchSize);
        const extracted = await rowsOf(chunk, false, 'validation');
        const outputs = await session!.evaluateOutputs(feedsOf(extracted.features as Float32Array, chunk.length));
        const logits = outputs.get(CENTERNET_HEAD.classLogits)!;
        const sides = outputs.get(CENTERNET_HEAD.sides)!;
        chunk.forEach((item, i) => {
          const { heatmap, sidesNhwc } = toNhwc(logits, sides, i, classes);
          const detections = decodeCenterNet(heatmap, sidesNhwc, GRID, GRID, classes, {
            threshold: 0.01, maxDetections: 100, scaleX: item.width / CENTERNET_INPUT_SIZE, scaleY: item.height / CENTERNET_INPUT_SIZE, width: item.width, height: item.height,
          });
          images.push({ boxes: item.boxes, detections });
        });
      }
      return evaluateDetections(images, data.classes);
    };

    const trainStarted = performance.now();
    const batchSize = Math.min(resolved.batchSize, data.train.length);
    const stepsPerEpoch = Math.ceil(data.train.length / batchSize);
    const schedule = makeSchedule('one-cycle', resolved.lr, resolved.epochs * stepsPerEpoch, 0.3);
    const rng = new Rng(seed);
    const history: DetectorEpoch[] = [];
    let best: { epoch: number; score: number; weights: Map<string, Float32Array>; metrics: DetectionMetrics } | undefined;
    let stoppedEarly = false;
    let step = 0;
    const task = reporter.task('fine-tune detector', resolved.epochs, 'epochs');
    for (let epoch = 1; epoch <= resolved.epochs; epoch++) {
      const started = performance.now();
      const order = rng.shuffle(data.train.map((_, i) => i));
      // One view per image per epoch, cycling through the plain and augmented views.
      const view = (epoch - 1) % viewsPerItem;
      let lossSum = 0;
      let lr = 0;
      for (let start = 0; start < order.length; start += batchSize) {
        const indices = order.slice(start, start + batchSize);
        const items = indices.map((i) => data.train[i]!);
        const extracted = await rowsOf(items, view > 0, 'train');
        const row = prefix.reference.featureDim;
        const rows = new Float32Array(items.length * row);
        const targets = indices.map((i, k) => {
          const r = view === 0 ? k : extracted.itemOfRow.findIndex((item, j) => item === k && extracted.viewOfRow[j] === view);
          rows.set((extracted.features as Float32Array).subarray(r * row, (r + 1) * row), k * row);
          return drawTargets(viewBoxes(data.train[i]!, trainingView(contentKeys[i]!, views, view)), classes, GRID, CENTERNET_STRIDE);
        });
        const t = batchTargets(targets, classes, GRID, CENTERNET_STRIDE, { beta: FOCAL_BETA, sidesWeight: SIDES_WEIGHT });
        const n = items.length;
        lr = schedule(step++);
        const result = await session.step(
          feedsOf(rows, n),
          {
            [LOSS_INPUTS.positiveWeight]: new ort.Tensor('float32', t.positiveWeight, [n, classes, GRID, GRID]),
            [LOSS_INPUTS.negativeWeight]: new ort.Tensor('float32', t.negativeWeight, [n, classes, GRID, GRID]),
            [LOSS_INPUTS.sidesTarget]: new ort.Tensor('float32', t.sidesTarget, [n, 4, GRID, GRID]),
            [LOSS_INPUTS.sidesWeight]: new ort.Tensor('float32', t.sidesWeight, [n, 4, GRID, GRID]),
          },
          lr,
        );
        if (!Number.isFinite(result.loss)) throw usageError(`training diverged in epoch ${epoch} (loss ${result.loss}); lower the learning rate (lr = ${resolved.lr})`);
        lossSum += result.loss * n;
      }
      const metrics = await validate();
      const record: DetectorEpoch = { epoch, lr, trainLoss: lossSum / order.length, valMAP50: metrics.mAP50, valMAP: metrics.mAP, seconds: (performance.now() - started) / 1000 };
      history.push(record);
      if (!best || metrics.mAP50 > best.score) best = { epoch, score: metrics.mAP50, weights: session.snapshot(), metrics };
      task.tick(1, { epoch, trainLoss: record.trainLoss, trainAccuracy: 0, valAccuracy: metrics.mAP50 });
      reporter.info(`epoch ${epoch}: loss ${record.trainLoss.toFixed(4)}, val mAP50 ${(100 * metrics.mAP50).toFixed(1)}, mAP ${(100 * metrics.mAP).toFixed(1)}`);
      if (resolved.patience > 0 && epoch - best.epoch >= resolved.patience && epoch < resolved.epochs) {
        stoppedEarly = true;
        break;
      }
    }
    task.done(`best epoch ${best!.epoch}/${history.length}${stoppedEarly ? ' (stopped early)' : ''}, val mAP50 ${(100 * best!.score).toFixed(1)}`);
    const trainSeconds = (performance.now() - trainStarted) / 1000;

    // The trained weights written back into the full inference graph (heatmap + sides, NHWC, as the builtin's).
    const final = decodeModel(full, builtin.origin);
    for (const [name, values] of best!.weights) {
      const initializer = final.initializers.get(name);
      if (initializer?.dtype !== 'float32' || initializer.data.length !== values.length) throw new Error(`cannot write weight ${name} back into the graph`);
      final.initializers.set(name, { dtype: 'float32', dims: initializer.dims, data: values });
    }
    const bytes = encodeModel(final, 'centernet', `builtin:centernet fine-tuned by headstart to ${data.classes.join(', ')}`, { producer: 'headstart detect' });
    return {
      graph: bytes,
      inputName: builtin.inputName,
      heatmapOutput: builtin.heatmapOutput,
      sidesOutput: builtin.sidesOutput,
      baseSha256: builtin.sha256,
      validation: best!.metrics,
      record: {
        options: resolved,
        initialisedFrom,
        trainedWeights: weights.length,
        trainedValues: weights.reduce((n, name) => n + model.graph.initializers.get(name)!.data.length, 0),
        cut: partition.frontier.map((t) => t.name),
        history,
        bestEpoch: best!.epoch,
        stoppedEarly,
        seconds: { cut: Math.round(cutSeconds * 1000) / 1000, train: Math.round(trainSeconds * 1000) / 1000 },
      },
    };
  } finally {
    await session?.release();
    await prefix.dispose();
  }
}

/** One image's sigmoid heatmap and sides, NCHW → NHWC (the layout `decodeCenterNet` reads). */
function toNhwc(logits: Float32Array, sides: Float32Array, image: number, classes: number): { heatmap: Float32Array; sidesNhwc: Float32Array } {
  const plane = GRID * GRID;
  const heatmap = new Float32Array(plane * classes);
  const sidesNhwc = new Float32Array(plane * 4);
  const l = logits.subarray(image * classes * plane, (image + 1) * classes * plane);
  const s = sides.subarray(image * 4 * plane, (image + 1) * 4 * plane);
  for (let c = 0; c < classes; c++) for (let p = 0; p < plane; p++) heatmap[p * classes + c] = 1 / (1 + Math.exp(-l[c * plane + p]!));
  for (let c = 0; c < 4; c++) for (let p = 0; p < plane; p++) sidesNhwc[p * 4 + c] = s[c * plane + p]!;
  return { heatmap, sidesNhwc };
}
