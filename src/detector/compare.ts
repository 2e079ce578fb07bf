/**
 * The head start of the pre-trained detector: the builtin CenterNet fine-tuned as `train --task
 * detect` does (frozen body, branches trained on cached features) against the same architecture from
 * random initialisation (`centernet-scratch.ts`, every weight trained), on identical seeded draws of a
 * share of the training images, scored by validation mAP50.
 *
 * Both contenders get the same budget (epochs, batch, augmented views, learning rate, no early
 * stopping) and the same selection rule: the epoch with the best validation mAP50 is kept, as
 * `train --task detect` does, so the validation images pick each contender's epoch alike.
 */
import { usageError } from '../util/errors.js';
import { silentReporter, type Reporter } from '../util/progress.js';
import { Rng } from '../util/rng.js';
import type { DetectionDataset } from './detection-dataset.js';
import { DETECTOR_TRAIN_DEFAULTS, trainCenterNet } from './train-detector.js';

export const DEFAULT_DETECTION_PERCENTS = [10, 25, 50, 100];

export interface DetectionCompareBudget {
  epochs: number;
  batchSize: number;
  augment: number;
  lr: number;
}

export interface DetectionComparePoint {
  percent: number;
  images: number;
  mAP50: number;
  mAP: number;
  bestEpoch: number;
  seconds: number;
}

export interface DetectionCompareContender {
  name: string;
  description: string;
  points: DetectionComparePoint[];
}

export interface DetectionCompareResult {
  kind: 'detection-compare';
  origin: string;
  classes: string[];
  trainImages: number;
  evaluation: { name: 'validation'; n: number };
  seed: number;
  budget: DetectionCompareBudget;
  /** Each size's drawn training images (their sources), the same for both contenders. */
  sizes: { percent: number; images: number; sources: string[] }[];
  contenders: [DetectionCompareContender, DetectionCompareContender];
  seconds: number;
}

export interface DetectionCompareOptions {
  percents?: number[];
  seed?: number;
  epochs?: number;
  batchSize?: number;
  augment?: number;
  lr?: number;
  cacheDir: string;
  cache?: boolean;
  reporter?: Reporter;
}

/**
 * The training rows of each share: one seeded shuffle, and each size takes its first
 * round(percent × n) images (at least one), so smaller draws are nested in larger ones.
 */
export function drawImageShares(count: number, percents: number[], seed: number): { percent: number; rows: number[] }[] {
  if (count === 0) throw usageError('no training images to draw from');
  const order = new Rng(seed).shuffle(Array.from({ length: count }, (_, i) => i));
  return percents.map((percent) => ({ percent, rows: order.slice(0, Math.max(1, Math.round((percent / 100) * count))).sort((a, b) => a - b) }));
}

export function resolvePercents(percents: number[] | undefined): number[] {
  const list = [...new Set(percents ?? DEFAULT_DETECTION_PERCENTS)].sort((a, b) => a - b);
  if (list.length === 0) throw usageError('no training-set size to compare');
  for (const p of list) if (!Number.isFinite(p) || p <= 0 || p > 100) throw usageError(`detection sizes are percentages of the training images in (0, 100], got ${p}`);
  return list;
}

export async function compareDetectors(data: DetectionDataset, options: DetectionCompareOptions): Promise<DetectionCompareResult> {
  const started = performance.now();
  const reporter = options.reporter ?? silentReporter;
  const seed = options.seed ?? 0;
  const d = DETECTOR_TRAIN_DEFAULTS;
  const budget: DetectionCompareBudget = { epochs: options.epochs ?? d.epochs, batchSize: options.batchSize ?? d.batchSize, augment: options.augment ?? d.augment, lr: options.lr ?? d.lr };
  const draws = drawImageShares(data.train.length, resolvePercents(options.percents), seed);
  const contenders: [DetectionCompareContender, DetectionCompareContender] = [
    { name: 'pre-trained', description: 'builtin:centernet (COCO) fine-tuned: body frozen, the two branches after the stride-4 map trained', points: [] },
    { name: 'from scratch', description: 'the same architecture from random initialisation (He-normal + LSUV rescale), every weight trained', points: [] },
  ];
  for (const { percent, rows } of draws) {
    const subset: DetectionDataset = { ...data, train: rows.map((i) => data.train[i]!) };
    for (const [c, contender] of contenders.entries()) {
      reporter.info(`${percent} % (${rows.length} images): ${contender.name}`);
      const runStarted = performance.now();
      // patience 0: early stopping would give the two different budgets.
      const trained = await trainCenterNet(subset, { ...budget, patience: 0, fromScratch: c === 1 }, { cacheDir: options.cacheDir, cache: options.cache, seed, reporter });
      contender.points.push({
        percent,
        images: rows.length,
        mAP50: trained.validation.mAP50,
        mAP: trained.validation.mAP,
        bestEpoch: trained.record.bestEpoch,
        seconds: (performance.now() - runStarted) / 1000,
      });
    }
  }
  return {
    kind: 'detection-compare',
    origin: data.origin,
    classes: data.classes,
    trainImages: data.train.length,
    evaluation: { name: 'validation', n: data.validation.length },
    seed,
    budget,
    sizes: draws.map(({ percent, rows }) => ({ percent, images: rows.length, sources: rows.map((i) => data.train[i]!.source) })),
    contenders,
    seconds: (performance.now() - started) / 1000,
  };
}

/** The table: one row per size, both contenders' validation mAP50. */
export function formatDetectionCompareTable(result: DetectionCompareResult): string {
  const header = ['training images', ...result.contenders.map((c) => `${c.name} mAP50`)];
  const rows = result.sizes.map((size, i) => [`${size.percent} % (${size.images})`, ...result.contenders.map((c) => (100 * c.points[i]!.mAP50).toFixed(1))]);
  const widths = header.map((h, col) => Math.max(h.length, ...rows.map((r) => r[col]!.length)));
  const line = (cells: string[]) => cells.map((cell, col) => (col === 0 ? cell.padEnd(widths[col]!) : cell.padStart(widths[col]!))).join('  ');
  const b = result.budget;
  return [
    `mAP50 (%) on ${result.evaluation.n} validation images, draws seeded by ${result.seed}; budget for both: ${b.epochs} epochs, batch ${b.batchSize}, ${b.augment} augmented view${b.augment === 1 ? '' : 's'} per image, lr ${b.lr}, best epoch kept`,
    line(header),
    ...rows.map(line),
  ].join('\n');
}
