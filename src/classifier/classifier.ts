import { join } from 'node:path';
import type { Backbone, Modality } from '../backbones/backbone.js';
import type { Dataset, LabelledItem, SkippedInput } from '../data/dataset.js';
import { fitTemperature, probabilitiesWithTemperature } from '../evaluate/calibration.js';
import { evaluatePredictions, type DetailedMetrics } from '../evaluate/metrics.js';
import { defaultCacheDir, FeatureCache } from '../features/cache.js';
import { extractFeatures, type AugmentedViews, type RemoteExtraction } from '../features/extract.js';
import { concatRows, type FeatureMatrix } from '../features/sparse.js';
import { headFromState, type FeatureSet, type Head } from '../heads/head.js';
import { fitHead, type FitOptions, type FitResult } from '../train/fit.js';
import { loadModelFolder, saveModelFolder, type ManifestWithoutHead, type ModelManifest } from '../artifacts/model-folder.js';
import type { FineTuneOptions } from '../finetune/fine-tune.js';
import type { Explanation, ExplainOptions } from '../explain/explain.js';
import { predictionRecords, writePredictions, type StoredPredictions } from '../report/predictions.js';
import type { QueueOptions } from '../queue/coordinator.js';
import { dataError, messageOf, modelError, usageError } from '../util/errors.js';
import { silentReporter, type Reporter } from '../util/progress.js';
import { VERSION } from '../version.js';
import { modalityAdapter } from './modalities.js';
import type { BackboneOptions, ModalityAdapter, ReadDatasetOptions } from './modality.js';

export interface Prediction {
  label: string;
  probability: number;
}

/** Everything `train` accepts: the data, the backbone, and the head's settings (see FitOptions). */
export interface TrainOptions<Input extends Uint8Array | string = Uint8Array | string> extends Partial<Omit<FitOptions, 'seed'>> {
  /** image, text or audio (default image). */
  task?: Modality;
  /** A path the modality can read (a folder, a CSV file…), or a dataset already read. */
  data: string | Dataset<Input>;
  /** A backbone reference; default: the modality's bundled backbone. */
  backbone?: string;
  /** Backbone options: preprocessing overrides, feature output, ONNX dtype, hub settings. */
  backboneOptions?: Omit<BackboneOptions, 'cacheDir' | 'reporter'>;
  /** Options for reading the dataset (column names, …). */
  datasetOptions?: ReadDatasetOptions;
  /** Augmented views per training input (0 = none), and their settings. */
  augment?: number | { views: number; settings?: object };
  validationFraction?: number;
  seed?: number;
  cacheDir?: string;
  /** Set false to skip the on-disk feature cache. */
  cache?: boolean;
  /** Fit a softmax temperature on the validation split so probabilities mean what they say (default true). */
  calibrate?: boolean;
  /**
   * Fine-tune the backbone's own top blocks before the head is fitted (ONNX image backbones and
   * transformer text encoders): e.g. `{ unfreeze: 2 }`. The model folder then carries the
   * fine-tuned backbone.
   */
  fineTune?: FineTuneOptions;
  /**
   * Extract features on `headstart worker`s through a BullMQ queue on Redis instead of in this
   * process (e.g. `{ url: 'redis://127.0.0.1:6379' }`); the model is the same bit for bit.
   */
  queue?: QueueOptions;
  reporter?: Reporter;
}

export interface LoadOptions {
  cacheDir?: string;
  reporter?: Reporter;
  hub?: BackboneOptions['hub'];
}

export interface EvaluationResult {
  metrics: DetailedMetrics;
  /** Per input: its source, true label and predicted probabilities, for reports. */
  predictions: { source: string; label: number; probabilities: number[] }[];
  skipped: SkippedInput[];
}

/**
 * A backbone, a trained head and the labels: the thing users train, evaluate, save, load and
 * predict with, for every modality.
 *
 *   const clf = await Classifier.train({ task: 'image', data: 'photos/' });
 *   clf.metrics.validation.accuracy;
 *   await clf.save('model/');
 *   const again = await Classifier.load('model/');
 *   await again.predict('cat.jpg');
 */
export class Classifier<Input extends Uint8Array | string = Uint8Array | string> {
  constructor(
    readonly adapter: ModalityAdapter<Input>,
    readonly backbone: Backbone<Input, unknown>,
    readonly head: Head,
    readonly manifest: ManifestWithoutHead,
    protected readonly cacheDir: string,
    /** Per-example held-out predictions of a freshly trained model, saved for its report. */
    readonly heldOutPredictions?: StoredPredictions['splits'],
  ) {}

  static async train(options: TrainOptions): Promise<Classifier> {
    const adapter = await modalityAdapter(options.task ?? 'image');
    return trainWith(adapter, options, (...args) => new Classifier(...args));
  }

  /** Loads a saved model folder; the backbone is found again from its reference and checked by hash. */
  static async load(dir: string, options: LoadOptions = {}): Promise<Classifier> {
    const { manifest, head } = await loadModelFolder(dir);
    const adapter = await modalityAdapter(manifest.modality);
    return loadWith(adapter, dir, manifest, head, options, (...args) => new Classifier(...args));
  }

  get labels(): string[] {
    return this.manifest.labels;
  }

  get metrics(): ModelManifest['metrics'] {
    return this.manifest.metrics;
  }

  get skipped(): SkippedInput[] {
    return this.manifest.skipped;
  }

  /** Top-k labels for one input (a path or bytes for files, the text itself for text). */
  async predict(input: string | Uint8Array, options: { topK?: number } = {}): Promise<Prediction[]> {
    return (await this.predictMany([input], options))[0]!;
  }

  async predictMany(inputs: (string | Uint8Array)[], options: { topK?: number } = {}): Promise<Prediction[][]> {
    const read = await Promise.all(inputs.map((input) => this.adapter.readInput(input)));
    const probabilities = await this.predictProbabilities(read, inputs.map(describeInput));
    const k = this.labels.length;
    return read.map((_, i) => topPredictions(probabilities.subarray(i * k, (i + 1) * k), this.labels, options.topK ?? k));
  }

  /** Class probabilities for inputs already read, in order; an input that fails is named in the error. */
  async predictProbabilities(inputs: Input[], names?: string[]): Promise<Float32Array> {
    const prepared = await Promise.all(
      inputs.map((input, i) =>
        this.backbone.prepare(input).catch((error) => {
          throw dataError(messageOf(error).replace(/^.*?: (?=cannot)/, ''), names?.[i] ?? `input #${i + 1}`, error);
        }),
      ),
    );
    return this.probabilitiesOfPrepared(prepared);
  }

  /** Calibrated class probabilities (n × classes) for inputs the backbone has already prepared. */
  async probabilitiesOfPrepared(prepared: unknown[]): Promise<Float32Array> {
    const batches: FeatureMatrix[] = [];
    for (let start = 0; start < prepared.length; start += this.backbone.batchSize) {
      batches.push(await this.backbone.forward(prepared.slice(start, start + this.backbone.batchSize)));
    }
    return this.probabilitiesOf(batches.length === 1 ? batches[0]! : concatRows(batches, this.backbone.reference.featureDim));
  }

  /**
   * Why the model says what it says about one input (a path or bytes for files, the text itself
   * for text): a heat map on the image, a score per word, or a score per time window of a clip.
   * The default target is the predicted label; see `src/explain` for the methods.
   */
  async explain(input: string | Uint8Array, options: ExplainOptions = {}): Promise<Explanation> {
    const { explainInput } = await import('../explain/explain.js');
    return explainInput(this as unknown as Classifier, input, options);
  }

  /** Evaluates on labelled items (labels are indices into this model's labels). */
  async evaluate(items: LabelledItem<Input>[], options: { reporter?: Reporter; cache?: boolean } = {}): Promise<EvaluationResult> {
    const cache = options.cache === false ? undefined : FeatureCache.forBackbone(this.cacheDir, this.backbone);
    const extracted = await extractFeatures(this.backbone, items, { cache, reporter: options.reporter, label: 'evaluating' });
    if (extracted.itemOfRow.length === 0) throw dataError('none of the inputs could be read', items[0]?.source);
    const labels = Int32Array.from(extracted.itemOfRow, (item) => items[item]!.label);
    const probabilities = this.probabilitiesOf(extracted.features);
    const k = this.labels.length;
    // The full evaluation training gives, with ECE before and after the model's temperature.
    const calibration = this.manifest.calibration;
    const scaling = calibration && { ...calibration, unscaled: this.head.predictProba(extracted.features) };
    return {
      metrics: evaluatePredictions(labels, probabilities, this.labels, { scaling }),
      predictions: Array.from(extracted.itemOfRow, (item, row) => ({
        source: items[item]!.source,
        label: items[item]!.label,
        probabilities: Array.from(probabilities.subarray(row * k, (row + 1) * k)),
      })),
      skipped: extracted.skipped,
    };
  }

  /** Re-evaluates on labelled data the modality can read (a class-per-folder tree, a CSV file…). */
  async evaluatePath(path: string, options: { reporter?: Reporter; datasetOptions?: ReadDatasetOptions } = {}): Promise<EvaluationResult> {
    const { items, skipped } = await this.adapter.readLabelled(path, this.labels, options.datasetOptions);
    const result = await this.evaluate(items, options);
    return { ...result, skipped: [...skipped, ...result.skipped] };
  }

  /** Head probabilities, with the fitted temperature applied when there is one. */
  protected probabilitiesOf(features: FeatureMatrix): Float32Array {
    return probabilitiesWithTemperature(this.head, features, this.manifest.calibration?.temperature ?? 1);
  }

  /**
   * Writes the model folder; with held-out predictions from training, also `predictions.json`, and
   * `report.html` unless `report: false`, all inside the folder's atomic swap, so the model never
   * appears without them. A report that fails is a warning (the model is saved without it); the path
   * of the report written, if any, is returned.
   */
  async save(dir: string, options: { report?: boolean; reporter?: Reporter } = {}): Promise<{ report?: string }> {
    const { fineTunedFiles } = await import('../finetune/classifier-hooks.js');
    let report: string | undefined;
    let reportError: unknown;
    await saveModelFolder(dir, this.manifest, this.head.state(), await fineTunedFiles(this.backbone, this.manifest), async (staged) => {
      if (this.heldOutPredictions) await writePredictions(staged, this.heldOutPredictions);
      if (options.report === false) return;
      try {
        const { REPORT_FILE, writeModelReport } = await import('../report/report.js');
        // Rendered from the staged folder (manifest and predictions are in it), named as the final one.
        await writeModelReport(staged, { folder: dir });
        report = join(dir, REPORT_FILE);
      } catch (error) {
        reportError = error;
      }
    });
    if (reportError) (options.reporter ?? silentReporter).warn(`model saved, but its report could not be written: ${messageOf(reportError)}`);
    return report ? { report } : {};
  }

  async dispose(): Promise<void> {
    const { releaseExplainer } = await import('../explain/explain.js');
    await releaseExplainer(this as unknown as Classifier);
    await this.backbone.dispose();
  }
}

type Make<Input extends Uint8Array | string, C> = (
  adapter: ModalityAdapter<Input>,
  backbone: Backbone<Input, unknown>,
  head: Head,
  manifest: ManifestWithoutHead,
  cacheDir: string,
  heldOutPredictions?: StoredPredictions['splits'],
) => C;

/** Trains with a modality's adapter; `make` builds the (sub)class the caller wants back. */
export async function trainWith<Input extends Uint8Array | string, C>(
  adapter: ModalityAdapter<Input>,
  options: TrainOptions<Input>,
  make: Make<Input, C>,
): Promise<C> {
  const { data, backbone: reference = adapter.defaultBackbone, augment, validationFraction, seed = 0, reporter, backboneOptions = {} } = options;
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  // Before the data is read, so a refused --queue is said at once.
  const remote = await remoteExtraction(options);
  const dataset = typeof data === 'string' ? await adapter.readDataset(data, { ...options.datasetOptions, validationFraction, seed }) : data;
  let backbone = await adapter.openBackbone(reference, { ...backboneOptions, cacheDir, reporter });
  const views = typeof augment === 'number' ? { views: augment } : augment;
  const augmentation = views && views.views > 0 ? { views: views.views, settings: { ...adapter.defaultAugmentation, ...views.settings } } : undefined;
  const settings = { fit: fitOptionsOf(options), calibrate: options.calibrate, augment: augmentation, cache: options.cache, cacheDir, seed, reporter, remote };
  const fineTuneSettings = { cacheDir, cache: options.cache, seed, augment: augmentation, reporter };
  try {
    // Fine-tuning yields a new backbone; the head is then fitted on its features like any other
    // (or the head trained with it kept). `unfreeze: 'auto'` trains both ways and keeps the better.
    const hooks = options.fineTune ? await import('../finetune/classifier-hooks.js') : undefined;
    // A backbone without a graph to train is refused before any work is done.
    await hooks?.checkUnfreezable(backbone as Backbone<unknown, unknown>);
    const auto = options.fineTune?.unfreeze === 'auto';
    const frozen = auto ? await trainClassifier(dataset, backbone, settings) : undefined;
    const tuned = hooks && (await hooks.fineTuneForClassifier(dataset, backbone, hooks.concreteUnfreeze(options.fineTune!), fineTuneSettings));
    let trained = tuned ? await trainClassifier(dataset, tuned.backbone as unknown as Backbone<Input, unknown>, { ...settings, head: tuned.jointHead }).catch(async (error) => {
      await tuned.backbone.dispose();
      throw error;
    }) : frozen;
    const choice = hooks && tuned && frozen ? hooks.chooseUnfreeze(frozen.manifest, trained!.manifest, tuned.record) : undefined;
    if (choice?.kept === 'frozen') {
      await tuned!.backbone.dispose();
      trained = frozen;
    } else if (tuned) {
      await backbone.dispose();
      backbone = tuned.backbone as unknown as Backbone<Input, unknown>;
    }
    if (!trained) trained = await trainClassifier(dataset, backbone, settings);
    const { head, manifest, heldOutPredictions } = trained;
    // What it takes to open the same backbone again at load time.
    manifest.training = { ...manifest.training, backboneOptions: { featureOutput: backboneOptions.featureOutput ?? null, dtype: backboneOptions.dtype ?? null } };
    if (hooks && tuned && choice?.kept !== 'frozen') hooks.recordFineTune(manifest, tuned);
    if (choice) manifest.training.unfreezeAuto = choice;
    return make(adapter, backbone, head, manifest, cacheDir, heldOutPredictions);
  } catch (error) {
    await backbone.dispose();
    throw error;
  }
}

export async function loadWith<Input extends Uint8Array | string, C>(
  adapter: ModalityAdapter<Input>,
  dir: string,
  manifest: ModelManifest,
  headState: Parameters<typeof headFromState>[0],
  options: LoadOptions,
  make: Make<Input, C>,
): Promise<C> {
  if (manifest.modality !== adapter.modality) throw modelError(`this is a ${manifest.modality} model, not a${adapter.modality === 'image' ? 'n' : ''} ${adapter.modality} model`, dir);
  const head = headFromState(headState);
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const saved = (manifest.training.backboneOptions ?? {}) as { featureOutput?: string | null; dtype?: BackboneOptions['dtype'] | null };
  // A fine-tuned backbone lives in the model folder itself, as one ONNX file.
  const fineTuned = manifest.backbone.fineTuned;
  const backbone = await adapter.openBackbone(fineTuned ? join(dir, fineTuned.file) : manifest.backbone.id, {
    cacheDir,
    reporter: options.reporter,
    hub: options.hub,
    featureOutput: fineTuned ? undefined : (saved.featureOutput ?? undefined),
    // A fine-tuned graph is written in float32, whatever dtype it was trained from.
    dtype: fineTuned ? undefined : (saved.dtype ?? undefined),
    preprocessing: manifest.backbone.preprocessing,
  });
  if (backbone.reference.sha256 !== manifest.backbone.sha256 || backbone.reference.featureDim !== manifest.backbone.featureDim) {
    await backbone.dispose();
    throw modelError(
      `the backbone "${manifest.backbone.id}" found now (sha256 ${backbone.reference.sha256.slice(0, 12)}…, ${backbone.reference.featureDim}-d) ` +
        `is not the one this model was trained on (${manifest.backbone.sha256.slice(0, 12)}…, ${manifest.backbone.featureDim}-d)`,
      dir,
    );
  }
  return make(adapter, backbone, head, manifest, cacheDir);
}

interface TrainSettings {
  fit?: Partial<FitOptions>;
  /** A head already trained (with a fine-tuned backbone): calibrated and evaluated, not refitted. */
  head?: Head;
  calibrate?: boolean;
  augment?: { views: number; settings?: unknown };
  cache?: boolean;
  cacheDir: string;
  seed?: number;
  reporter?: Reporter;
  /** Where features the cache lacks are computed, when not in this process (a job queue). */
  remote?: RemoteExtraction;
}

/**
 * The shared training flow: features for every split (cached), a head fitted on train with early
 * stopping on validation, a softmax temperature fitted on validation, and honest metrics on
 * validation and test.
 */
export async function trainClassifier<Input extends Uint8Array | string>(
  dataset: Dataset<Input>,
  backbone: Backbone<Input, unknown>,
  settings: TrainSettings,
): Promise<{ head: Head; manifest: ManifestWithoutHead; fit: FitResult; heldOutPredictions: StoredPredictions['splits'] }> {
  const reporter = settings.reporter ?? silentReporter;
  const seed = settings.seed ?? 0;
  const cache = settings.cache === false ? undefined : FeatureCache.forBackbone(settings.cacheDir, backbone);
  const started = performance.now();
  const views: AugmentedViews | undefined =
    settings.augment && settings.augment.views > 0 ? { count: settings.augment.views, seed, settings: settings.augment.settings } : undefined;

  const featuresOf = async (items: LabelledItem<Input>[], label: string, withViews?: AugmentedViews) => {
    const extracted = await extractFeatures(backbone, items, { cache, reporter, label, views: withViews, remote: settings.remote });
    const set: FeatureSet = {
      features: extracted.features,
      labels: Int32Array.from(extracted.itemOfRow, (item) => items[item]!.label),
      dim: extracted.dim,
      numClasses: dataset.classes.length,
    };
    return { set, extracted };
  };
  const train = await featuresOf(dataset.train, 'train features', views);
  const validation = await featuresOf(dataset.validation, 'validation features');
  const test = dataset.test?.length ? await featuresOf(dataset.test, 'test features') : undefined;
  const extractionSeconds = (performance.now() - started) / 1000;

  const skipped = [...dataset.skipped, ...train.extracted.skipped, ...validation.extracted.skipped, ...(test?.extracted.skipped ?? [])];
  const trainCounts = countLabels(train.set.labels, dataset.classes.length, train.extracted.viewOfRow);
  const emptyClasses = dataset.classes.filter((_, c) => trainCounts[c] === 0);
  if (emptyClasses.length) {
    throw dataError(`no readable training inputs left for class${emptyClasses.length > 1 ? 'es' : ''} ${emptyClasses.map((c) => `"${c}"`).join(', ')}`, dataset.origin);
  }
  if (validation.set.labels.length === 0) throw dataError('no readable validation inputs', dataset.origin);

  const fit: FitResult = settings.head
    ? { head: settings.head, history: [], bestEpoch: 0, stoppedEarly: false, options: { head: 'linear', standardize: true, seed }, seconds: 0 }
    : fitHead(train.set, validation.set, { ...settings.fit, head: settings.fit?.head ?? 'linear', seed }, reporter);
  const k = dataset.classes.length;
  const calibration =
    settings.calibrate === false
      ? undefined
      : { temperature: fitTemperature(fit.head.logits(validation.set.features), validation.set.labels, k).temperature, fittedOn: 'validation' };
  // Metrics of the calibrated model (what predict returns), with ECE before and after scaling.
  const evaluateSplit = (split: { set: FeatureSet }) => {
    const unscaled = fit.head.predictProba(split.set.features);
    const probabilities = calibration ? probabilitiesWithTemperature(fit.head, split.set.features, calibration.temperature) : unscaled;
    const metrics = evaluatePredictions(split.set.labels, probabilities, dataset.classes, {
      seed,
      scaling: calibration && { ...calibration, unscaled },
    });
    return { metrics, probabilities };
  };
  const validationResult = evaluateSplit(validation);
  const testResult = test && evaluateSplit(test);
  const metrics: ModelManifest['metrics'] = { validation: validationResult.metrics };
  if (testResult) metrics.test = testResult.metrics;
  // Text examples are shown in reports by their text: a `file:line` source says little.
  const textsOf = async (items: LabelledItem<Input>[]) =>
    backbone.reference.modality === 'text' ? Promise.all(items.map((item) => item.load().then((input) => (typeof input === 'string' ? input : undefined), () => undefined))) : undefined;
  const heldOutPredictions: StoredPredictions['splits'] = {
    validation: predictionRecords(dataset.validation, validation.extracted.itemOfRow, validationResult.probabilities, k, await textsOf(dataset.validation)),
  };
  if (test && testResult) {
    heldOutPredictions.test = predictionRecords(dataset.test!, test.extracted.itemOfRow, testResult.probabilities, k, await textsOf(dataset.test!));
  }

  const manifest: ManifestWithoutHead = {
    headstartVersion: VERSION,
    createdAt: new Date().toISOString(),
    modality: backbone.reference.modality,
    labels: dataset.classes,
    backbone: { ...backbone.reference, preprocessing: backbone.preprocessing },
    training: {
      data: {
        origin: dataset.origin,
        validation: dataset.validationSource,
        counts: {
          train: trainCounts,
          validation: countLabels(validation.set.labels, dataset.classes.length),
          ...(test ? { test: countLabels(test.set.labels, dataset.classes.length) } : {}),
        },
      },
      augmentation: views ?? null,
      fit: fit.options,
      history: fit.history,
      bestEpoch: fit.bestEpoch,
      stoppedEarly: fit.stoppedEarly,
      seed,
      timings: {
        featureSeconds: round(extractionSeconds),
        fitSeconds: round(fit.seconds),
        featuresComputed: train.extracted.computed + validation.extracted.computed + (test?.extracted.computed ?? 0),
        featuresFromCache: train.extracted.cacheHits + validation.extracted.cacheHits + (test?.extracted.cacheHits ?? 0),
      },
    },
    metrics,
    skipped,
  };
  if (calibration) manifest.calibration = calibration;
  return { head: fit.head, manifest, fit, heldOutPredictions };
}

export function topPredictions(probabilities: ArrayLike<number>, labels: string[], topK: number): Prediction[] {
  return labels
    .map((label, i) => ({ label, probability: probabilities[i]! }))
    .sort((a, b) => b.probability - a.probability)
    .slice(0, Math.max(1, topK));
}

function describeInput(input: string | Uint8Array, i: number): string {
  return typeof input === 'string' && input.length < 300 ? input : `input #${i + 1}`;
}

/** Examples per class; with `views`, only the plain (unaugmented) rows count. */
function countLabels(labels: Int32Array, numClasses: number, views?: Int32Array): number[] {
  const counts = new Array<number>(numClasses).fill(0);
  labels.forEach((label, i) => {
    if (!views || views[i] === 0) counts[label]!++;
  });
  return counts;
}

function fitOptionsOf<Input extends Uint8Array | string>(options: TrainOptions<Input>): Partial<FitOptions> {
  const { task, data, backbone, backboneOptions, datasetOptions, augment, validationFraction, seed, cacheDir, cache, calibrate, fineTune, queue, reporter, ...fit } = options;
  return fit;
}

/** The job queue extraction goes through, if any; bullmq is loaded only then. */
export async function remoteExtraction(options: Pick<TrainOptions, 'queue' | 'cache' | 'fineTune' | 'backboneOptions'>): Promise<RemoteExtraction | undefined> {
  if (!options.queue) return undefined;
  if (options.cache === false) throw usageError('--queue: workers deliver features through the feature cache, so it cannot be turned off (--no-cache)');
  if (options.fineTune) throw usageError('--queue: a fine-tuned backbone exists only in this process, so workers cannot compute its features; drop --unfreeze or --queue');
  const { queueExtraction } = await import('../queue/coordinator.js');
  return queueExtraction({ ...options.queue, backboneOptions: { featureOutput: options.backboneOptions?.featureOutput, dtype: options.backboneOptions?.dtype } });
}

const round = (x: number) => Math.round(x * 1000) / 1000;
