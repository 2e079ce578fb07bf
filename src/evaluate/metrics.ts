import { argmaxRows } from '../heads/common.js';
import { dataError } from '../util/errors.js';

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
