import { argmaxRows } from '../heads/common.js';
import { dataError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { DEFAULT_CALIBRATION_BINS, expectedCalibrationError, reliabilityBins, type ReliabilityBin } from './calibration.js';

/**
 * Classification metrics from true labels and predicted probabilities. Conventions follow
 * scikit-learn so numbers can be checked against it:
 * - the prediction is the most probable class (ties go to the lower class index);
 * - a class that is never predicted has precision 0, and one with no true examples recall 0
 *   (`zero_division=0`); F1 is 0 whenever precision + recall is 0;
 * - macro averages run over every class in `labels`, including classes absent from this set
 *   (as sklearn does when given `labels=`), so a missing class pulls the macro average down;
 * - weighted averages weight each class by its support (number of true examples);
 * - log loss is the mean of −ln p(true class), with p clipped to [1e-15, 1].
 *
 * To add a metric: compute it in `computeMetrics` from `confusion` (kappa, MCC) or from the
 * probabilities (ROC-AUC, calibration), add an optional field here, and a line in the table.
 */
export interface ClassMetrics {
  label: string;
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

export interface AveragedMetrics {
  precision: number;
  recall: number;
  f1: number;
}

export interface ClassificationMetrics {
  n: number;
  accuracy: number;
  perClass: ClassMetrics[];
  macro: AveragedMetrics;
  weighted: AveragedMetrics;
  /** confusion[true][predicted] counts. */
  confusion: number[][];
  logLoss: number;
  labels: string[];
}

export const LOG_LOSS_EPSILON = 1e-15;

export function computeMetrics(
  trueLabels: Int32Array,
  probabilities: Float32Array,
  labels: string[],
): ClassificationMetrics {
  const k = labels.length;
  const n = trueLabels.length;
  checkInputs(trueLabels, probabilities, k);
  const predicted = argmaxRows(probabilities, k);
  const confusion = confusionMatrix(trueLabels, predicted, k);

  const perClass: ClassMetrics[] = [];
  let correct = 0;
  for (let c = 0; c < k; c++) {
    const truePositives = confusion[c][c];
    correct += truePositives;
    let support = 0;
    let predictedCount = 0;
    for (let other = 0; other < k; other++) {
      support += confusion[c][other];
      predictedCount += confusion[other][c];
    }
    const precision = ratio(truePositives, predictedCount);
    const recall = ratio(truePositives, support);
    const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
    perClass.push({ label: labels[c], precision, recall, f1, support });
  }

  return {
    n,
    accuracy: correct / n,
    perClass,
    macro: average(perClass, () => 1 / k),
    weighted: average(perClass, (m) => m.support / n),
    confusion,
    logLoss: logLoss(trueLabels, probabilities, k),
    labels: [...labels],
  };
}

/** confusion[true][predicted] counts. */
export function confusionMatrix(trueLabels: Int32Array, predicted: Int32Array, numClasses: number): number[][] {
  const confusion = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  for (let i = 0; i < trueLabels.length; i++) confusion[trueLabels[i]][predicted[i]]++;
  return confusion;
}

/** Mean −ln p(true class), p clipped to [1e-15, 1] so one confident mistake cannot make it infinite. */
export function logLoss(trueLabels: Int32Array, probabilities: Float32Array, numClasses: number): number {
  let total = 0;
  for (let i = 0; i < trueLabels.length; i++) {
    const p = probabilities[i * numClasses + trueLabels[i]];
    total -= Math.log(Math.min(1, Math.max(LOG_LOSS_EPSILON, p)));
  }
  return total / trueLabels.length;
}

/** Fraction of rows whose most probable class is the true one. */
export function accuracy(trueLabels: Int32Array, probabilities: Float32Array, numClasses: number): number {
  const predicted = argmaxRows(probabilities, numClasses);
  let correct = 0;
  for (let i = 0; i < trueLabels.length; i++) if (predicted[i] === trueLabels[i]) correct++;
  return correct / trueLabels.length;
}

function checkInputs(trueLabels: Int32Array, probabilities: Float32Array, k: number): void {
  const n = trueLabels.length;
  if (k < 1) throw dataError('metrics need at least one class label');
  if (n === 0) throw dataError('metrics need at least one example');
  if (probabilities.length !== n * k) {
    throw dataError(`expected ${n}×${k} = ${n * k} probabilities for ${n} examples and ${k} classes, got ${probabilities.length}`);
  }
  for (let i = 0; i < n; i++) {
    const label = trueLabels[i];
    if (label < 0 || label >= k) throw dataError(`true label ${label} of example ${i} is not a class index below ${k}`);
  }
}

function ratio(numerator: number, denominator: number): number {
  return denominator > 0 ? numerator / denominator : 0;
}

function average(perClass: ClassMetrics[], weight: (m: ClassMetrics) => number): AveragedMetrics {
  const result = { precision: 0, recall: 0, f1: 0 };
  for (const m of perClass) {
    const w = weight(m);
    result.precision += w * m.precision;
    result.recall += w * m.recall;
    result.f1 += w * m.f1;
  }
  return result;
}

export interface TopKAccuracy {
  k: number;
  accuracy: number;
}

/** One-vs-rest scores per class; null where undefined (a class with no positive, or no negative, example). */
export interface OneVsRestScores {
  perClass: (number | null)[];
  /** Mean over the classes where the score is defined (null if none is). */
  macro: number | null;
  /** Support-weighted mean over the classes where the score is defined. */
  weighted: number | null;
}

export interface ConfusedPair {
  trueLabel: string;
  predictedLabel: string;
  trueIndex: number;
  predictedIndex: number;
  count: number;
  /** count / support of the true class. */
  shareOfClass: number;
}

export interface ConfidenceInterval {
  estimate: number;
  low: number;
  high: number;
}

export interface BootstrapIntervals {
  level: number;
  resamples: number;
  seed: number;
  accuracy: ConfidenceInterval;
  macroF1: ConfidenceInterval;
}

export interface CalibrationSummary {
  /** Expected calibration error of these probabilities. */
  ece: number;
  bins: ReliabilityBin[];
  /** The softmax temperature these probabilities were made with (1 = none). */
  temperature: number;
  /** Which split the temperature was fitted on; that split's calibration is optimistic. */
  fittedOn?: string;
  /** The same inputs at temperature 1, for the before/after comparison. */
  beforeScaling?: { ece: number; logLoss: number; bins: ReliabilityBin[] };
}

/**
 * Everything `computeMetrics` reports, and the rest of a full evaluation. Conventions follow
 * scikit-learn (checked against it in test/fixtures/metrics/):
 * - micro averages pool every class's counts (for single-label data, micro P = R = F1 = accuracy);
 * - top-k: the true class is among the k highest probabilities, ties broken towards the lower class
 *   index as for the prediction (so top-1 = accuracy; sklearn breaks ties the other way);
 * - balanced accuracy: mean recall over the classes present in the true labels;
 * - Cohen's kappa and Matthews correlation from the confusion matrix; both 0 when undefined
 *   (every true label and every prediction the same class);
 * - ROC-AUC (Mann–Whitney, ties counted half) and PR-AUC (average precision, sklearn's step-wise
 *   sum without interpolation), each class against the rest;
 * - the normalised confusion matrix divides each row by its class's support (all-zero rows stay 0);
 * - 95 % intervals are percentile bootstrap intervals over examples, seeded.
 */
export interface DetailedMetrics extends ClassificationMetrics {
  micro: AveragedMetrics;
  topK: TopKAccuracy[];
  balancedAccuracy: number;
  cohenKappa: number;
  matthews: number;
  rocAuc: OneVsRestScores;
  prAuc: OneVsRestScores;
  /** confusion[true][predicted] / support[true]. */
  confusionNormalized: number[][];
  /** Off-diagonal cells with the most examples, largest first. */
  mostConfused: ConfusedPair[];
  intervals: BootstrapIntervals;
  calibration: CalibrationSummary;
}

export interface EvaluateOptions {
  /** Which k to report top-k accuracy for; values ≥ the number of classes are dropped. Default 1, 3, 5. */
  topK?: number[];
  /** Bootstrap resamples for the 95 % intervals (default 1000). */
  resamples?: number;
  /** Seed of the bootstrap (default 0). */
  seed?: number;
  calibrationBins?: number;
  /** How many confused pairs to list (default 10). */
  mostConfused?: number;
  /**
   * When `probabilities` were temperature-scaled: the temperature, where it was fitted, and the
   * unscaled probabilities of the same inputs, for ECE before and after.
   */
  scaling?: { temperature: number; fittedOn: string; unscaled: Float32Array };
}

export const DEFAULT_BOOTSTRAP_RESAMPLES = 1000;

/** A full evaluation of predicted probabilities against true labels (see DetailedMetrics). */
export function evaluatePredictions(
  trueLabels: Int32Array,
  probabilities: Float32Array,
  labels: string[],
  options: EvaluateOptions = {},
): DetailedMetrics {
  const base = computeMetrics(trueLabels, probabilities, labels);
  const k = labels.length;
  const n = base.n;
  const { confusion, perClass } = base;
  const predicted = argmaxRows(probabilities, k);
  const support = perClass.map((c) => c.support);
  const predictedCounts = labels.map((_, c) => confusion.reduce((total, row) => total + row[c]!, 0));

  const truePositives = base.accuracy * n;
  const micro = { precision: truePositives / n, recall: truePositives / n, f1: truePositives / n };

  const present = perClass.filter((c) => c.support > 0);
  const balancedAccuracy = present.reduce((total, c) => total + c.recall, 0) / present.length;

  // Both from the confusion matrix, in sklearn's formulation (products of marginals over n²).
  const agreement = support.reduce((total, s, c) => total + s * predictedCounts[c]!, 0);
  const chance = agreement / (n * n);
  const cohenKappa = chance < 1 ? (base.accuracy - chance) / (1 - chance) : 0;
  const covTruePredicted = truePositives * n - agreement;
  const covPredicted = n * n - predictedCounts.reduce((total, p) => total + p * p, 0);
  const covTrue = n * n - support.reduce((total, s) => total + s * s, 0);
  const matthews = covPredicted * covTrue > 0 ? covTruePredicted / Math.sqrt(covPredicted * covTrue) : 0;

  const ks = [...new Set([1, ...(options.topK ?? [1, 3, 5])])].filter((kk) => Number.isInteger(kk) && kk >= 1 && (kk === 1 || kk < k));
  const topK = ks.sort((a, b) => a - b).map((kk) => ({ k: kk, accuracy: topKAccuracy(trueLabels, probabilities, k, kk) }));

  const rocAuc = averageOneVsRest(labels.map((_, c) => rocAucOneVsRest(trueLabels, probabilities, k, c)), support);
  const prAuc = averageOneVsRest(labels.map((_, c) => averagePrecisionOneVsRest(trueLabels, probabilities, k, c)), support);

  const confusionNormalized = confusion.map((row, t) => row.map((count) => (support[t]! > 0 ? count / support[t]! : 0)));
  const mostConfused: ConfusedPair[] = [];
  confusion.forEach((row, t) =>
    row.forEach((count, p) => {
      if (t !== p && count > 0) {
        mostConfused.push({ trueLabel: labels[t]!, predictedLabel: labels[p]!, trueIndex: t, predictedIndex: p, count, shareOfClass: count / support[t]! });
      }
    }),
  );
  mostConfused.sort((a, b) => b.count - a.count || a.trueIndex - b.trueIndex || a.predictedIndex - b.predictedIndex);

  const bins = options.calibrationBins ?? DEFAULT_CALIBRATION_BINS;
  const reliability = reliabilityBins(trueLabels, probabilities, k, bins);
  const calibration: CalibrationSummary = { ece: expectedCalibrationError(reliability), bins: reliability, temperature: options.scaling?.temperature ?? 1 };
  if (options.scaling) {
    const unscaledBins = reliabilityBins(trueLabels, options.scaling.unscaled, k, bins);
    calibration.fittedOn = options.scaling.fittedOn;
    calibration.beforeScaling = { ece: expectedCalibrationError(unscaledBins), logLoss: logLoss(trueLabels, options.scaling.unscaled, k), bins: unscaledBins };
  }

  return {
    ...base,
    micro,
    topK,
    balancedAccuracy,
    cohenKappa,
    matthews,
    rocAuc,
    prAuc,
    confusionNormalized,
    mostConfused: mostConfused.slice(0, options.mostConfused ?? 10),
    intervals: bootstrapIntervals(trueLabels, predicted, k, {
      resamples: options.resamples ?? DEFAULT_BOOTSTRAP_RESAMPLES,
      seed: options.seed ?? 0,
      accuracy: base.accuracy,
      macroF1: base.macro.f1,
    }),
    calibration,
  };
}

/** Whether a full evaluation's fields are there (model folders written before them have only the basics). */
export function isDetailed(metrics: ClassificationMetrics): metrics is DetailedMetrics {
  return 'balancedAccuracy' in metrics && 'intervals' in metrics && 'calibration' in metrics;
}

/** Share of rows whose true class ranks among the k most probable (ties rank the lower index first). */
export function topKAccuracy(trueLabels: Int32Array, probabilities: Float32Array, numClasses: number, k: number): number {
  let hits = 0;
  for (let i = 0; i < trueLabels.length; i++) {
    const base = i * numClasses;
    const label = trueLabels[i]!;
    const score = probabilities[base + label]!;
    let rank = 0;
    for (let c = 0; c < numClasses; c++) {
      const other = probabilities[base + c]!;
      if (other > score || (other === score && c < label)) rank++;
    }
    if (rank < k) hits++;
  }
  return hits / trueLabels.length;
}

/** Area under the ROC curve of class c against the rest: P(score of a positive > score of a negative), ties ½. */
export function rocAucOneVsRest(trueLabels: Int32Array, probabilities: Float32Array, numClasses: number, c: number): number | null {
  const n = trueLabels.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => probabilities[a * numClasses + c]! - probabilities[b * numClasses + c]!);
  let positives = 0;
  let positiveRankSum = 0;
  for (let start = 0; start < n; ) {
    const score = probabilities[order[start]! * numClasses + c]!;
    let end = start;
    while (end < n && probabilities[order[end]! * numClasses + c]! === score) end++;
    // Ranks start..end-1 (0-based) share their mean, 1-based.
    const midRank = (start + end + 1) / 2;
    for (let j = start; j < end; j++) {
      if (trueLabels[order[j]!] === c) {
        positives++;
        positiveRankSum += midRank;
      }
    }
    start = end;
  }
  const negatives = n - positives;
  if (positives === 0 || negatives === 0) return null;
  return (positiveRankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

/**
 * Average precision of class c against the rest: Σ (R_t − R_{t−1}) · P_t over the distinct score
 * thresholds from high to low (sklearn's definition, no interpolation). Null without positives.
 */
export function averagePrecisionOneVsRest(trueLabels: Int32Array, probabilities: Float32Array, numClasses: number, c: number): number | null {
  const n = trueLabels.length;
  let positives = 0;
  for (let i = 0; i < n; i++) if (trueLabels[i] === c) positives++;
  if (positives === 0) return null;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => probabilities[b * numClasses + c]! - probabilities[a * numClasses + c]!);
  let truePositives = 0;
  let seen = 0;
  let previousRecall = 0;
  let total = 0;
  for (let start = 0; start < n; ) {
    const score = probabilities[order[start]! * numClasses + c]!;
    let end = start;
    while (end < n && probabilities[order[end]! * numClasses + c]! === score) {
      if (trueLabels[order[end]!] === c) truePositives++;
      end++;
    }
    seen = end;
    const recall = truePositives / positives;
    total += (recall - previousRecall) * (truePositives / seen);
    previousRecall = recall;
    start = end;
  }
  return total;
}

function averageOneVsRest(perClass: (number | null)[], support: number[]): OneVsRestScores {
  let sum = 0;
  let count = 0;
  let weightedSum = 0;
  let weightTotal = 0;
  perClass.forEach((value, c) => {
    if (value === null) return;
    sum += value;
    count++;
    weightedSum += value * support[c]!;
    weightTotal += support[c]!;
  });
  return { perClass, macro: count ? sum / count : null, weighted: weightTotal ? weightedSum / weightTotal : null };
}

/**
 * Percentile bootstrap: resample the examples with replacement `resamples` times (seeded), recompute
 * accuracy and macro F1 (over every class, as the point estimate), and take the 2.5th and 97.5th
 * percentiles (linear interpolation between order statistics, numpy's default).
 */
export function bootstrapIntervals(
  trueLabels: Int32Array,
  predicted: Int32Array,
  numClasses: number,
  options: { resamples: number; seed: number; accuracy: number; macroF1: number; level?: number },
): BootstrapIntervals {
  const n = trueLabels.length;
  const level = options.level ?? 0.95;
  const rng = new Rng(options.seed);
  const accuracies = new Float64Array(options.resamples);
  const macroF1s = new Float64Array(options.resamples);
  const tp = new Int32Array(numClasses);
  const supportCounts = new Int32Array(numClasses);
  const predictedCounts = new Int32Array(numClasses);
  for (let r = 0; r < options.resamples; r++) {
    tp.fill(0);
    supportCounts.fill(0);
    predictedCounts.fill(0);
    let correct = 0;
    for (let j = 0; j < n; j++) {
      const i = rng.int(n);
      const t = trueLabels[i]!;
      const p = predicted[i]!;
      supportCounts[t]++;
      predictedCounts[p]++;
      if (t === p) {
        tp[t]++;
        correct++;
      }
    }
    let f1Sum = 0;
    for (let c = 0; c < numClasses; c++) {
      // F1 = 2TP / (support + predicted), which is 0 exactly when precision + recall is.
      const denominator = supportCounts[c]! + predictedCounts[c]!;
      f1Sum += denominator > 0 ? (2 * tp[c]!) / denominator : 0;
    }
    accuracies[r] = correct / n;
    macroF1s[r] = f1Sum / numClasses;
  }
  const tail = (1 - level) / 2;
  const interval = (values: Float64Array, estimate: number): ConfidenceInterval => {
    values.sort();
    return { estimate, low: quantile(values, tail), high: quantile(values, 1 - tail) };
  };
  return {
    level,
    resamples: options.resamples,
    seed: options.seed,
    accuracy: interval(accuracies, options.accuracy),
    macroF1: interval(macroF1s, options.macroF1),
  };
}

/** Quantile q of sorted values, interpolating linearly between neighbours. */
function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!);
}

/**
 * The lines under the table for a full evaluation: agreement scores, ranking scores, intervals,
 * calibration and the most confused pairs.
 */
export function formatEvaluationSummary(m: DetailedMetrics): string {
  const v = (x: number | null) => (x === null ? 'n/a' : x.toFixed(4));
  const { intervals: ci, calibration: cal } = m;
  const percent = `${Math.round(ci.level * 100)}%`;
  const lines = [
    `balanced accuracy ${v(m.balancedAccuracy)}   Cohen's kappa ${v(m.cohenKappa)}   Matthews ${v(m.matthews)}`,
    `ROC-AUC ${v(m.rocAuc.macro)}   PR-AUC ${v(m.prAuc.macro)}   (macro, one-vs-rest)` +
      (m.topK.length > 1 ? `   ${m.topK.filter((t) => t.k > 1).map((t) => `top-${t.k} ${v(t.accuracy)}`).join('   ')}` : ''),
    `${percent} CI (bootstrap, ${ci.resamples} resamples): accuracy ${ci.accuracy.low.toFixed(3)}–${ci.accuracy.high.toFixed(3)}, ` +
      `macro F1 ${ci.macroF1.low.toFixed(3)}–${ci.macroF1.high.toFixed(3)}`,
    cal.beforeScaling
      ? `calibration: ECE ${cal.beforeScaling.ece.toFixed(4)} → ${cal.ece.toFixed(4)} with temperature ${cal.temperature.toPrecision(3)} (fitted on ${cal.fittedOn})`
      : `calibration: ECE ${cal.ece.toFixed(4)}${cal.temperature !== 1 ? ` (temperature ${cal.temperature.toPrecision(3)})` : ''}`,
  ];
  if (m.mostConfused.length) {
    lines.push(`most confused: ${m.mostConfused.slice(0, 3).map((p) => `${p.trueLabel} → ${p.predictedLabel} (${p.count})`).join(', ')}`);
  }
  return lines.join('\n');
}

/**
 * A plain-text report: one row per class, macro and weighted averages, accuracy and log loss
 * (in the f1-score column, as sklearn's classification_report places accuracy), then the
 * confusion matrix (rows: true class, columns: predicted). Every non-empty line has the same
 * width, columns right-aligned, no trailing spaces.
 */
export function formatMetricsTable(m: ClassificationMetrics): string {
  const digits = 4;
  const value = (x: number) => x.toFixed(digits);
  const headers = ['precision', 'recall', 'f1-score', 'support'];
  const supportWidth = Math.max(headers[3].length, String(m.n).length);
  const reportWidths = [headers[0].length, headers[1].length, headers[2].length, supportWidth].map((w) =>
    Math.max(w, digits + 2),
  );
  const reportRows: string[][] = [
    ...m.perClass.map((c) => [c.label, value(c.precision), value(c.recall), value(c.f1), String(c.support)]),
    ['macro avg', value(m.macro.precision), value(m.macro.recall), value(m.macro.f1), String(m.n)],
    ['weighted avg', value(m.weighted.precision), value(m.weighted.recall), value(m.weighted.f1), String(m.n)],
    ['accuracy', '', '', value(m.accuracy), String(m.n)],
    ['log loss', '', '', value(m.logLoss), String(m.n)],
  ];

  const maxCount = Math.max(0, ...m.confusion.flat());
  const confusionCorner = 'true \\ predicted';
  const confusionWidths = m.labels.map((label) => Math.max(label.length, String(maxCount).length));
  const confusionRows = m.labels.map((label, t) => [label, ...m.confusion[t].map(String)]);

  // Widen whichever first column is narrower so both blocks line up to the same total width.
  let reportFirst = Math.max('class'.length, ...reportRows.map((r) => r[0].length));
  let confusionFirst = Math.max(confusionCorner.length, ...m.labels.map((l) => l.length));
  const reportTotal = reportFirst + reportWidths.reduce((a, w) => a + 2 + w, 0);
  const confusionTotal = confusionFirst + confusionWidths.reduce((a, w) => a + 2 + w, 0);
  if (reportTotal < confusionTotal) reportFirst += confusionTotal - reportTotal;
  else confusionFirst += reportTotal - confusionTotal;

  const line = (first: string, firstWidth: number, cells: string[], widths: number[]) =>
    first.padEnd(firstWidth) + cells.map((cell, i) => `  ${cell.padStart(widths[i])}`).join('');
  return [
    line('class', reportFirst, headers, reportWidths),
    ...reportRows.map((r) => line(r[0], reportFirst, r.slice(1), reportWidths)),
    '',
    line(confusionCorner, confusionFirst, m.labels, confusionWidths),
    ...confusionRows.map((r) => line(r[0], confusionFirst, r.slice(1), confusionWidths)),
  ].join('\n');
}
