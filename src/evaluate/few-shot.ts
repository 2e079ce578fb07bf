import { selectRows as selectMatrixRows } from '../features/sparse.js';
import type { FeatureSet } from '../heads/head.js';
import { sampleShots } from '../data/subsample.js';
import { fitHead, type FitOptions } from '../train/fit.js';
import { computeMetrics } from './metrics.js';

export interface MeanStd {
  mean: number;
  std: number;
}

export interface ShotsRun {
  seed: number;
  trainSize: number;
  accuracy: number;
  macroF1: number;
  seconds: number;
}

export interface ShotsResult {
  /** Examples per class ('all' = the whole training set). */
  shots: number | 'all';
  runs: ShotsRun[];
  accuracy: MeanStd;
  macroF1: MeanStd;
}

/**
 * The few-shot protocol: for each seed, draw `shots` training examples per class, fit the head on
 * them alone (no validation set to stop on: with a handful of examples none can be spared), and
 * score on the evaluation set. Reports mean ± sample standard deviation over seeds.
 * Works on features, so every modality shares it and the backbone never runs again.
 */
export function fewShot(
  train: FeatureSet,
  evaluation: FeatureSet,
  labels: string[],
  options: { shots: number | 'all'; seeds: number[]; fit?: Partial<FitOptions> },
): ShotsResult {
  const runs = options.seeds.map((seed) => {
    const started = performance.now();
    const rows = sampleShots(train.labels, train.numClasses, options.shots, seed, labels);
    const subset = selectRows(train, rows);
    const { head } = fitHead(subset, undefined, { ...options.fit, seed });
    const metrics = computeMetrics(evaluation.labels, head.predictProba(evaluation.features), labels);
    return { seed, trainSize: rows.length, accuracy: metrics.accuracy, macroF1: metrics.macro.f1, seconds: (performance.now() - started) / 1000 };
  });
  return { shots: options.shots, runs, accuracy: meanStd(runs.map((r) => r.accuracy)), macroF1: meanStd(runs.map((r) => r.macroF1)) };
}

export function selectRows(set: FeatureSet, rows: number[]): FeatureSet {
  return { features: selectMatrixRows(set.features, set.dim, rows), labels: Int32Array.from(rows, (row) => set.labels[row]!), dim: set.dim, numClasses: set.numClasses };
}

/** Mean and sample standard deviation (n − 1; 0 for a single value). */
export function meanStd(values: number[]): MeanStd {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.length > 1 ? values.reduce((a, b) => a + (b - mean) ** 2, 0) / (values.length - 1) : 0;
  return { mean, std: Math.sqrt(variance) };
}

export function formatMeanStd(value: MeanStd, digits = 3): string {
  return `${value.mean.toFixed(digits)} ± ${value.std.toFixed(digits)}`;
}
