import type { TextPreprocessingOptions } from '../backbones/text-resolve.js';
import { TFIDF_BACKBONE, TfidfBackbone, TfidfFeatureMap, type TfidfSettings } from '../backbones/text-tfidf.js';
import { TransformerTextBackbone } from '../backbones/text-transformer.js';
import { loadModelFolder } from '../artifacts/model-folder.js';
import type { Dataset, LabelledItem } from '../data/dataset.js';
import { sampleShots } from '../data/subsample.js';
import { readTextDataset, type TextDatasetOptions } from '../data/text-dataset.js';
import { meanStd, type ShotsResult } from '../evaluate/few-shot.js';
import { computeMetrics, type ClassificationMetrics } from '../evaluate/metrics.js';
import { defaultCacheDir } from '../features/cache.js';
import type { FeatureSet } from '../heads/head.js';
import { sparseRows } from '../features/sparse.js';
import { fitHead, type FitOptions } from '../train/fit.js';
import { usageError } from '../util/errors.js';
import { silentReporter, type Reporter } from '../util/progress.js';
import { Classifier, loadWith, trainClassifier, trainWith, type EvaluationResult, type LoadOptions, type Prediction, type TrainOptions } from './classifier.js';
import type { BackboneOptions, ModalityAdapter } from './modality.js';
import { textModality } from './text-modality.js';

export { TFIDF_BACKBONE };

export interface TextTrainOptions extends Omit<TrainOptions<string>, 'task' | 'augment' | 'data' | 'datasetOptions'> {
  /** A CSV/TSV/JSONL file, a folder of split files or class folders, or a dataset already read. */
  data: string | Dataset<string>;
  /** Columns, header, validation/test files, test share. */
  datasetOptions?: TextDatasetOptions;
  /**
   * Backbone settings: `pooling` (transformers: mean | cls; word vectors: mean | sif | sif+max+min),
   * `normalize` (L2), `maxLength` (transformer tokens). Shorthand for `backboneOptions.preprocessing`.
   */
  preprocessing?: TextPreprocessingOptions;
  /** With `backbone: 'tfidf'`: the n-gram settings. */
  tfidf?: Partial<TfidfSettings>;
  /**
   * Also fit the TF-IDF baseline on the same split (linear head) and record its metrics beside this
   * model's (`manifest.training.baseline`), so the pre-trained backbone has to earn its keep.
   */
  baseline?: boolean;
}

/**
 * Head settings for TF-IDF features: the linear head fitted by L-BFGS on the L2-penalised log loss,
 * the model scikit-learn's LogisticRegression(C = 1) fits on the same rows. λ is 1/(C·n) for
 * multinomial loss; for two classes 2/(C·n), because two softmax rows w₀ = −w₁ = w/2 carry half the
 * penalty of scikit-learn's single binary w. Gradient tolerance 1e-4 (scikit-learn's `tol`) rather
 * than the linear head's 1e-6: on SST-2 (109k terms) it stopped after 29 iterations at 0.830 test
 * accuracy, where 1e-6 took 72 for 0.836; AdamW with early stopping reached 0.821 (measured).
 * TF-IDF rows are sparse and already L2-normalised, so they are not standardised: standardising
 * blows a rare term up to hundreds of standard deviations (on AG News it cost 14 points, 0.707 vs
 * 0.849, measured) and would make every row dense.
 */
export function tfidfFitDefaults(trainRows: number, numClasses: number): Partial<FitOptions> {
  return { standardize: false, optimizer: 'lbfgs', weightDecay: (numClasses === 2 ? 2 : 1) / Math.max(1, trainRows), tolerance: 1e-4 };
}

/** What the TF-IDF baseline scored, trained on the same split with a linear head. */
export interface BaselineReport {
  backbone: string;
  featureOutput: string;
  metrics: { validation?: ClassificationMetrics; test?: ClassificationMetrics };
  seconds: number;
}

/** Token statistics of the texts a transformer saw: how many had to be cut to fit. */
export interface TruncationReport {
  maxTokens: number;
  texts: number;
  truncated: number;
}

/**
 * A text classifier: a text backbone's features (pooled word vectors, a transformer encoder, or
 * TF-IDF fitted on the training texts) and a small trained head.
 *
 *   const clf = await TextClassifier.train({ data: 'reviews.csv', baseline: true });
 *   clf.metrics.validation.accuracy;   clf.manifest.training.baseline.metrics.validation.accuracy;
 *   await clf.save('model/');
 *   const again = await TextClassifier.load('model/');
 *   await again.predictTexts(['great film', 'a waste of time']);
 */
export class TextClassifier extends Classifier<string> {
  static override async train(options: TextTrainOptions): Promise<TextClassifier> {
    const { data, datasetOptions, preprocessing, tfidf, baseline, ...rest } = options;
    const reporter = options.reporter ?? silentReporter;
    const dataset = typeof data === 'string' ? await readTextDataset(data, { ...datasetOptions, validationFraction: options.validationFraction, seed: options.seed }) : data;
    // BackboneOptions types preprocessing for images; text backbones read their own fields from it.
    const backboneOptions = { ...rest.backboneOptions, preprocessing: { ...rest.backboneOptions?.preprocessing, ...preprocessing } as BackboneOptions['preprocessing'] };
    const make = (...args: ConstructorParameters<typeof TextClassifier>) => new TextClassifier(...args);
    const isTfidf = (options.backbone ?? textModality.defaultBackbone) === TFIDF_BACKBONE;
    let classifier: TextClassifier;
    if (isTfidf) {
      if (options.fineTune) throw (await import('../finetune/text-graph.js')).textUnfreezeRefusal(TFIDF_BACKBONE, 'tfidf');
      if (options.queue) throw usageError('--queue: the TF-IDF backbone is fitted on the training texts in this process; it has no pre-trained forward pass for workers to run');
      const map = await fitTfidf(dataset, tfidf, reporter);
      // The map is fitted already; the shared flow then "opens" it like any backbone.
      const adapter: ModalityAdapter<string> = { ...textModality, openBackbone: async () => new TfidfBackbone(map) };
      classifier = await trainWith(adapter, { ...tfidfFitDefaults(dataset.train.length, dataset.classes.length), ...definedOnly(rest), data: dataset, backboneOptions, cache: false }, make);
    } else {
      classifier = await trainWith(textModality, { ...rest, data: dataset, backboneOptions }, make);
    }
    try {
      if (classifier.backbone instanceof TransformerTextBackbone) {
        classifier.manifest.training.truncation = await truncationReport(classifier.backbone, dataset);
      }
      if (baseline && !isTfidf) {
        classifier.manifest.training.baseline = await trainTfidfBaseline(dataset, { seed: options.seed, cacheDir: options.cacheDir, reporter, tfidf });
      }
    } catch (error) {
      await classifier.dispose();
      throw error;
    }
    return classifier;
  }

  static override async load(dir: string, options: LoadOptions = {}): Promise<TextClassifier> {
    const { manifest, head } = await loadModelFolder(dir);
    return loadWith(textModality, dir, manifest, head, options, (...args) => new TextClassifier(...args));
  }

  /** Top-k labels for each text. */
  predictTexts(texts: string[], options: { topK?: number } = {}): Promise<Prediction[][]> {
    return this.predictMany(texts, options);
  }

  /** Re-evaluates on a labelled CSV/TSV/JSONL file or class folder with this model's classes. */
  evaluateFile(path: string, options: { reporter?: Reporter; datasetOptions?: TextDatasetOptions } = {}): Promise<EvaluationResult> {
    return this.evaluatePath(path, options);
  }
}

async function textsOf(items: LabelledItem<string>[]): Promise<string[]> {
  return Promise.all(items.map((item) => item.load()));
}

async function fitTfidf(dataset: Dataset<string>, settings: Partial<TfidfSettings> | undefined, reporter: Reporter): Promise<TfidfFeatureMap> {
  const task = reporter.task('fitting TF-IDF on the training texts', 1, 'maps');
  const map = TfidfFeatureMap.fit(await textsOf(dataset.train), settings);
  task.done(map.describe());
  return map;
}

/** The TF-IDF baseline on the same split, through the shared training flow and the same linear head. */
export async function trainTfidfBaseline(
  dataset: Dataset<string>,
  options: { seed?: number; cacheDir?: string; reporter?: Reporter; tfidf?: Partial<TfidfSettings>; fit?: Partial<FitOptions> } = {},
): Promise<BaselineReport> {
  const started = performance.now();
  const reporter = options.reporter ?? silentReporter;
  const backbone = new TfidfBackbone(await fitTfidf(dataset, options.tfidf, reporter));
  const { manifest } = await trainClassifier(dataset, backbone, {
    fit: { ...tfidfFitDefaults(dataset.train.length, dataset.classes.length), ...options.fit },
    cache: false,
    cacheDir: options.cacheDir ?? defaultCacheDir(),
    seed: options.seed,
    reporter,
  });
  return { backbone: TFIDF_BACKBONE, featureOutput: backbone.reference.featureOutput, metrics: manifest.metrics, seconds: round((performance.now() - started) / 1000) };
}

/** How many of the dataset's texts (all splits) were longer than the transformer's maximum length. */
export async function truncationReport(backbone: TransformerTextBackbone, dataset: Dataset<string>): Promise<TruncationReport> {
  const items = [...dataset.train, ...dataset.validation, ...(dataset.test ?? [])];
  let truncated = 0;
  for (const text of await textsOf(items)) if (backbone.tokenizer.encode(text).truncated) truncated++;
  return { maxTokens: backbone.tokenizer.maxLength, texts: items.length, truncated };
}

/**
 * The few-shot protocol for the TF-IDF baseline. TF-IDF is fitted, so each draw fits its own map
 * on its N×classes training texts only — fitting it on the whole training set would let the
 * baseline see thousands of texts the protocol says it does not have. Draws are the same as
 * `fewShot`'s for the same seeds (same `sampleShots`), so both columns face the same examples.
 */
export async function tfidfFewShot(
  train: LabelledItem<string>[],
  evaluation: LabelledItem<string>[],
  labels: string[],
  options: { shots: number | 'all'; seeds: number[]; tfidf?: Partial<TfidfSettings>; fit?: Partial<FitOptions> },
): Promise<ShotsResult> {
  const trainTexts = await textsOf(train);
  const evaluationTexts = await textsOf(evaluation);
  const trainLabels = Int32Array.from(train, (item) => item.label);
  const evaluationLabels = Int32Array.from(evaluation, (item) => item.label);
  const runs = options.seeds.map((seed) => {
    const started = performance.now();
    const rows = sampleShots(trainLabels, labels.length, options.shots, seed, labels);
    const map = TfidfFeatureMap.fit(rows.map((r) => trainTexts[r]!), options.tfidf);
    const setOf = (texts: string[], rowLabels: Int32Array): FeatureSet => ({
      features: sparseRows(texts.map((text) => map.transformSparse(text)), map.dim),
      labels: rowLabels,
      dim: map.dim,
      numClasses: labels.length,
    });
    const subset = setOf(rows.map((r) => trainTexts[r]!), Int32Array.from(rows, (r) => trainLabels[r]!));
    const evaluationSet = setOf(evaluationTexts, evaluationLabels);
    const { head } = fitHead(subset, undefined, { ...tfidfFitDefaults(rows.length, labels.length), ...options.fit, seed });
    const metrics = computeMetrics(evaluationLabels, head.predictProba(evaluationSet.features), labels);
    return { seed, trainSize: rows.length, accuracy: metrics.accuracy, macroF1: metrics.macro.f1, seconds: (performance.now() - started) / 1000 };
  });
  return { shots: options.shots, runs, accuracy: meanStd(runs.map((r) => r.accuracy)), macroF1: meanStd(runs.map((r) => r.macroF1)) };
}

const round = (x: number) => Math.round(x * 1000) / 1000;

/** Drops keys whose value is undefined, so they do not override defaults in a spread. */
function definedOnly<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
