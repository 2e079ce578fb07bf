import { type FeatureMatrix, selectRows as selectMatrixRows } from '../features/sparse.js';
import type { Backbone } from '../backbones/backbone.js';
import type { Dataset, LabelledItem } from '../data/dataset.js';
import { sampleShots } from '../data/subsample.js';
import { FeatureCache } from '../features/cache.js';
import { extractFeatures } from '../features/extract.js';
import type { FeatureSet } from '../heads/head.js';
import { fitHead, type FitOptions } from '../train/fit.js';
import { dataError, usageError } from '../util/errors.js';
import { silentReporter, type Reporter } from '../util/progress.js';
import { meanStd, selectRows, type MeanStd } from './few-shot.js';
import { computeMetrics } from './metrics.js';
import type { ScratchBaseline } from './scratch.js';

/**
 * One side of a comparison. Every contender trains on the same rows of the same training list and
 * is scored on the same evaluation examples; how it turns examples into a prediction is its own
 * business (frozen features + head, or a network trained end to end).
 */
export interface Contender {
  readonly name: string;
  readonly description: string;
  /** Seconds to turn one raw example into what `run` trains on (backbone forward, pixel resize…). */
  readonly secondsPerExample: number;
  /** Trains on the given rows of the shared training list, seeded, and scores the evaluation set. */
  run(rows: number[], seed: number): Promise<{ accuracy: number; macroF1: number; fitSeconds: number }>;
}

export type Shots = number | 'all';

export interface ComparePoint {
  shots: Shots;
  /** "5", or "all (≈122)". */
  label: string;
  trainSize: number;
  accuracy: MeanStd;
  macroF1: MeanStd;
  /** Mean seconds to fit the head at this size. */
  fitSeconds: number;
  runs: { seed: number; accuracy: number; macroF1: number; fitSeconds: number }[];
}

export interface ContenderResult {
  name: string;
  description: string;
  secondsPerExample: number;
  points: ComparePoint[];
  /** The smallest measured size whose mean accuracy reaches the target, and the time it takes; null if none does. */
  toTarget: { shots: Shots; label: string; trainSize: number; seconds: number } | null;
}

export interface CompareResult {
  labels: string[];
  origin: string;
  /** The held-out examples every run is scored on. */
  evaluation: { name: 'validation' | 'test'; n: number };
  trainExamples: number;
  sizes: { shots: Shots; label: string }[];
  seeds: number[];
  /** The accuracy to reach, and how it was chosen. */
  target: { accuracy: number; how: string };
  contenders: ContenderResult[];
  /** Inputs left out because some contender could not read them (both must see the same examples). */
  excluded: { source: string; reason: string }[];
  seconds: number;
}

export const DEFAULT_COMPARE_SIZES: Shots[] = [1, 2, 5, 10, 20, 50, 'all'];
export const DEFAULT_COMPARE_SEEDS = [0, 1, 2, 3, 4];
/** Without --target: this share of the pre-trained model's accuracy on all the training data. */
export const DEFAULT_TARGET_SHARE = 0.9;

export interface CompareOptions<Input extends Uint8Array | string> {
  dataset: Dataset<Input>;
  pretrained: Backbone<Input, unknown>;
  scratch: ScratchBaseline<Input>;
  /** Contenders beyond the two feature-based ones (e.g. a CNN trained from scratch). */
  extraContenders?: (shared: { train: LabelledItem<Input>[]; evaluation: LabelledItem<Input>[] }) => Promise<Contender[]>;
  sizes?: Shots[];
  seeds?: number[];
  /** Accuracy to reach; default 90 % of the pre-trained model's accuracy at the largest size. */
  target?: number;
  /** Head settings, identical for every feature-based contender (default: the linear head). */
  fit?: Partial<FitOptions>;
  cacheDir?: string;
  cache?: boolean;
  reporter?: Reporter;
}

/**
 * Pre-trained vs scratch on the user's data: both contenders see identical seeded draws of N
 * training examples per class (N growing), fit the same head without early stopping (with a handful
 * of examples none can be spared for validation, as in few-shot protocols), and are scored on the
 * same held-out set: the test split when there is one, else validation.
 */
export async function compareOnDataset<Input extends Uint8Array | string>(options: CompareOptions<Input>): Promise<CompareResult> {
  const started = performance.now();
  const { dataset, pretrained } = options;
  const reporter = options.reporter ?? silentReporter;
  const numClasses = dataset.classes.length;
  const evaluationName = dataset.test?.length ? 'test' : 'validation';
  const evaluationItems = evaluationName === 'test' ? dataset.test! : dataset.validation;
  const scratchBackbone = await options.scratch.build(dataset.train);
  const cacheFor = (backbone: Backbone<Input, unknown>) => (options.cache === false || !options.cacheDir ? undefined : FeatureCache.forBackbone(options.cacheDir, backbone));

  const extracted = [];
  for (const [backbone, name] of [
    [pretrained, 'pre-trained'],
    [scratchBackbone, 'scratch'],
  ] as const) {
    const cache = cacheFor(backbone);
    extracted.push({
      train: await extractFeatures(backbone, dataset.train, { cache, reporter, label: `${name} train features` }),
      evaluation: await extractFeatures(backbone, evaluationItems, { cache, reporter, label: `${name} ${evaluationName} features` }),
    });
  }
  // Only examples every contender could read, so the draws and the scoring are identical for all.
  const excluded = new Map<string, string>();
  for (const e of extracted) for (const s of [...e.train.skipped, ...e.evaluation.skipped]) excluded.set(s.source, s.reason);
  const keep = (items: LabelledItem<Input>[]) => items.map((item, i) => (excluded.has(item.source) ? -1 : i)).filter((i) => i >= 0);
  const trainKept = keep(dataset.train);
  const evaluationKept = keep(evaluationItems);
  if (evaluationKept.length === 0) throw dataError(`no readable ${evaluationName} examples`, dataset.origin);
  const sets = extracted.map((e) => ({
    train: featureSetOf(e.train, dataset.train, trainKept, numClasses),
    evaluation: featureSetOf(e.evaluation, evaluationItems, evaluationKept, numClasses),
  }));
  const trainLabels = sets[0]!.train.labels;

  const secondsPerExample = await Promise.all([pretrained, scratchBackbone].map((backbone) => measureSecondsPerExample(backbone, trainKept.map((i) => dataset.train[i]!))));
  const fit = { ...options.fit, head: options.fit?.head ?? 'linear' };
  const contenders: Contender[] = [
    featureContender('pre-trained backbone', `${pretrained.reference.id} features (${pretrained.reference.featureDim}-d), frozen`, sets[0]!.train, sets[0]!.evaluation, dataset.classes, fit, secondsPerExample[0]!),
    featureContender(options.scratch.name, options.scratch.description, sets[1]!.train, sets[1]!.evaluation, dataset.classes, fit, secondsPerExample[1]!, options.scratch.fitDefaults),
  ];
  if (options.extraContenders) {
    contenders.push(...(await options.extraContenders({ train: trainKept.map((i) => dataset.train[i]!), evaluation: evaluationKept.map((i) => evaluationItems[i]!) })));
  }

  const counts = new Array<number>(numClasses).fill(0);
  trainLabels.forEach((label) => counts[label]!++);
  const smallest = Math.min(...counts);
  if (smallest === 0) throw dataError(`class "${dataset.classes[counts.indexOf(0)]}" has no readable training examples`, dataset.origin);
  const sizes = resolveSizes(options.sizes ?? DEFAULT_COMPARE_SIZES, smallest, Boolean(options.sizes));
  const seeds = options.seeds ?? DEFAULT_COMPARE_SEEDS;
  if (seeds.length === 0) throw usageError('compare needs at least one seed');
  const labelOf = (shots: Shots) => (shots === 'all' ? `all (≈${Math.round(trainLabels.length / numClasses)})` : String(shots));

  const task = reporter.task('compare', sizes.length * seeds.length * contenders.length, 'fits');
  const results: ContenderResult[] = contenders.map((c) => ({ name: c.name, description: c.description, secondsPerExample: c.secondsPerExample, points: [], toTarget: null }));
  for (const shots of sizes) {
    const draws = seeds.map((seed) => ({ seed, rows: sampleShots(trainLabels, numClasses, shots, seed, dataset.classes) }));
    for (const [c, contender] of contenders.entries()) {
      const runs = [];
      for (const { seed, rows } of draws) {
        runs.push({ seed, ...(await contender.run(rows, seed)) });
        task.tick();
      }
      results[c]!.points.push({
        shots,
        label: labelOf(shots),
        trainSize: draws[0]!.rows.length,
        accuracy: meanStd(runs.map((r) => r.accuracy)),
        macroF1: meanStd(runs.map((r) => r.macroF1)),
        fitSeconds: runs.reduce((total, r) => total + r.fitSeconds, 0) / runs.length,
        runs,
      });
    }
  }
  task.done();

  const reference = results[0]!.points[results[0]!.points.length - 1]!;
  const target =
    options.target !== undefined
      ? { accuracy: options.target, how: 'as asked' }
      : {
          accuracy: DEFAULT_TARGET_SHARE * reference.accuracy.mean,
          how: `${Math.round(DEFAULT_TARGET_SHARE * 100)}% of the pre-trained backbone's ${reference.accuracy.mean.toFixed(3)} with ${reference.label} examples per class`,
        };
  for (const result of results) {
    const reached = result.points.find((p) => p.accuracy.mean >= target.accuracy);
    result.toTarget = reached
      ? { shots: reached.shots, label: reached.label, trainSize: reached.trainSize, seconds: result.secondsPerExample * reached.trainSize + reached.fitSeconds }
      : null;
  }

  return {
    labels: dataset.classes,
    origin: dataset.origin,
    evaluation: { name: evaluationName, n: evaluationKept.length },
    trainExamples: trainLabels.length,
    sizes: sizes.map((shots) => ({ shots, label: labelOf(shots) })),
    seeds,
    target,
    contenders: results,
    excluded: [...excluded].map(([source, reason]) => ({ source, reason })),
    seconds: (performance.now() - started) / 1000,
  };
}

/** A contender made of frozen features and a head fitted on the drawn rows. */
export function featureContender(
  name: string,
  description: string,
  train: FeatureSet,
  evaluation: FeatureSet,
  labels: string[],
  fit: Partial<FitOptions>,
  secondsPerExample: number,
  /** Settings these features need under `fit` (e.g. TF-IDF's), given the rows drawn. */
  defaults?: (trainRows: number, numClasses: number, head: NonNullable<FitOptions['head']>) => Partial<FitOptions>,
): Contender {
  return {
    name,
    description,
    secondsPerExample,
    async run(rows, seed) {
      const started = performance.now();
      const { head } = fitHead(selectRows(train, rows), undefined, { ...defaults?.(rows.length, labels.length, fit.head ?? 'linear'), ...fit, seed });
      const fitSeconds = (performance.now() - started) / 1000;
      const metrics = computeMetrics(evaluation.labels, head.predictProba(evaluation.features), labels);
      return { accuracy: metrics.accuracy, macroF1: metrics.macro.f1, fitSeconds };
    },
  };
}

/**
 * Sizes that every class can supply, in increasing order, with 'all' last. Sizes the user named
 * that are too large are an error; defaults that are too large are dropped quietly.
 */
export function resolveSizes(sizes: Shots[], smallestClass: number, explicit: boolean): Shots[] {
  const numbers = [...new Set(sizes.filter((s): s is number => s !== 'all'))].sort((a, b) => a - b);
  for (const s of numbers) if (!Number.isInteger(s) || s < 1) throw usageError(`sizes must be positive integers or "all", got ${s}`);
  const tooLarge = numbers.filter((s) => s > smallestClass);
  if (explicit && tooLarge.length) {
    throw usageError(`the smallest class has ${smallestClass} training examples, fewer than the size${tooLarge.length > 1 ? 's' : ''} ${tooLarge.join(', ')} asked for`);
  }
  const kept: Shots[] = numbers.filter((s) => s <= smallestClass);
  if (sizes.includes('all')) kept.push('all');
  if (kept.length === 0) throw usageError('no training-set size to compare');
  return kept;
}

/**
 * Wall time per example of reading nothing but turning loaded inputs into features: prepare and
 * forward on up to 16 training examples, uncached, after one warm-up example.
 */
export async function measureSecondsPerExample<Input extends Uint8Array | string>(backbone: Backbone<Input, unknown>, items: LabelledItem<Input>[]): Promise<number> {
  const sample = items.slice(0, 17);
  const inputs = await Promise.all(sample.map((item) => item.load()));
  if (inputs.length < 2) return 0;
  await backbone.forward([await backbone.prepare(inputs[0]!)]);
  const timed = inputs.slice(1);
  const started = performance.now();
  const prepared = await Promise.all(timed.map((input) => backbone.prepare(input)));
  for (let start = 0; start < prepared.length; start += backbone.batchSize) await backbone.forward(prepared.slice(start, start + backbone.batchSize));
  return (performance.now() - started) / 1000 / timed.length;
}

function featureSetOf<Input>(
  extracted: { features: FeatureMatrix; dim: number; itemOfRow: Int32Array },
  items: LabelledItem<Input>[],
  kept: number[],
  numClasses: number,
): FeatureSet {
  const rowOfItem = new Map<number, number>();
  extracted.itemOfRow.forEach((item, row) => rowOfItem.set(item, row));
  const { dim } = extracted;
  const features = selectMatrixRows(extracted.features, dim, kept.map((item) => rowOfItem.get(item)!));
  return { features, labels: Int32Array.from(kept, (item) => items[item]!.label), dim, numClasses };
}

/** The compact table: examples per class × contenders, mean ± std, then what each needs to reach the target. */
export function formatCompareTable(result: CompareResult): string {
  const header = ['examples per class', ...result.contenders.map((c) => c.name)];
  const rows = result.sizes.map((size, i) => [size.label, ...result.contenders.map((c) => `${c.points[i]!.accuracy.mean.toFixed(3)} ± ${c.points[i]!.accuracy.std.toFixed(3)}`)]);
  const widths = header.map((h, col) => Math.max(h.length, ...rows.map((r) => r[col]!.length)));
  const line = (cells: string[]) => cells.map((cell, col) => (col === 0 ? cell.padEnd(widths[col]!) : cell.padStart(widths[col]!))).join('  ');
  const reach = result.contenders.map((c) => {
    const time = (s: number) => (s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(1)} s`);
    return c.toTarget
      ? `  ${c.name}: ${c.toTarget.label} example${c.toTarget.shots === 1 ? '' : 's'} per class (${c.toTarget.trainSize} in all), ≈ ${time(c.toTarget.seconds)}`
      : `  ${c.name}: not reached (best ${Math.max(...c.points.map((p) => p.accuracy.mean)).toFixed(3)})`;
  });
  return [
    `accuracy on ${result.evaluation.n} ${result.evaluation.name} examples, mean ± std over ${result.seeds.length} seed${result.seeds.length > 1 ? 's' : ''}:`,
    line(header),
    ...rows.map(line),
    '',
    `to reach accuracy ${result.target.accuracy.toFixed(3)} (${result.target.how}):`,
    ...reach,
  ].join('\n');
}
