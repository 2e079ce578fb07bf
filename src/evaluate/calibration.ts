import type { FeatureMatrix } from '../features/sparse.js';
import type { Head } from '../heads/head.js';
import { dataError } from '../util/errors.js';

/**
 * Calibration: do predicted probabilities mean what they say? A model is calibrated when, of the
 * inputs it gives 80 % confidence, 80 % are right. Heads fitted on a few hundred rows are often
 * not: with label smoothing they tend to be under-confident, without it over-confident.
 */

/** Equal-width confidence bins, as in Guo et al. (2017) "On Calibration of Modern Neural Networks". */
export const DEFAULT_CALIBRATION_BINS = 10;

/** One bar of a reliability diagram: inputs whose top probability fell in (lower, upper]. */
export interface ReliabilityBin {
  lower: number;
  upper: number;
  count: number;
  /** Mean top probability of the bin's inputs (0 when empty). */
  confidence: number;
  /** Fraction of the bin's inputs whose top class is the true one (0 when empty). */
  accuracy: number;
}

/**
 * Reliability diagram bins over the top-class probability. Bin b covers (b/B, (b+1)/B]; a confidence
 * of exactly 0 falls in the first bin.
 */
export function reliabilityBins(
  trueLabels: Int32Array,
  probabilities: Float32Array,
  numClasses: number,
  bins = DEFAULT_CALIBRATION_BINS,
): ReliabilityBin[] {
  if (!Number.isInteger(bins) || bins < 1) throw dataError(`calibration bins must be a positive integer, got ${bins}`);
  const counts = new Array<number>(bins).fill(0);
  const confidenceSums = new Array<number>(bins).fill(0);
  const correct = new Array<number>(bins).fill(0);
  for (let i = 0; i < trueLabels.length; i++) {
    let best = 0;
    for (let c = 1; c < numClasses; c++) if (probabilities[i * numClasses + c]! > probabilities[i * numClasses + best]!) best = c;
    const confidence = probabilities[i * numClasses + best]!;
    const bin = Math.min(bins - 1, Math.max(0, Math.ceil(confidence * bins) - 1));
    counts[bin]!++;
    confidenceSums[bin]! += confidence;
    if (best === trueLabels[i]) correct[bin]!++;
  }
  return counts.map((count, b) => ({
    lower: b / bins,
    upper: (b + 1) / bins,
    count,
    confidence: count ? confidenceSums[b]! / count : 0,
    accuracy: count ? correct[b]! / count : 0,
  }));
}

/** Σ over bins of (share of inputs in the bin) × |accuracy − confidence|: 0 is perfectly calibrated. */
export function expectedCalibrationError(bins: ReliabilityBin[]): number {
  const n = bins.reduce((total, bin) => total + bin.count, 0);
  if (n === 0) return 0;
  return bins.reduce((total, bin) => total + (bin.count / n) * Math.abs(bin.accuracy - bin.confidence), 0);
}

/** Row-wise softmax(logits / T) in float64, rounded to float32 at the end. */
export function softmaxWithTemperature(logits: Float32Array, numClasses: number, temperature: number): Float32Array {
  const out = new Float32Array(logits.length);
  const row = new Float64Array(numClasses);
  for (let base = 0; base < logits.length; base += numClasses) {
    let max = -Infinity;
    for (let c = 0; c < numClasses; c++) max = Math.max(max, (row[c] = logits[base + c]! / temperature));
    let sum = 0;
    for (let c = 0; c < numClasses; c++) sum += row[c] = Math.exp(row[c]! - max);
    for (let c = 0; c < numClasses; c++) out[base + c] = row[c]! / sum;
  }
  return out;
}

/** A head's probabilities with a temperature applied (T = 1: the head's own softmax, untouched). */
export function probabilitiesWithTemperature(head: Head, features: FeatureMatrix, temperature: number): Float32Array {
  if (temperature === 1) return head.predictProba(features);
  return softmaxWithTemperature(head.logits(features), head.numClasses, temperature);
}

export interface TemperatureFit {
  temperature: number;
  /** Mean validation log loss before (T = 1) and after scaling. */
  logLossBefore: number;
  logLossAfter: number;
}

/** Temperatures outside this range mean the logits carry no usable scale; the search stays inside. */
export const TEMPERATURE_RANGE: readonly [number, number] = [0.01, 100];

/**
 * Temperature scaling (Guo et al. 2017): one scalar T, fitted by minimising the mean log loss of
 * softmax(logits / T) on held-out data. It rescales confidence without changing any prediction.
 *
 * The search runs over τ = ln T: a coarse grid, then golden-section refinement around the best grid
 * point. The objective adds a weak Gaussian prior on log10 T worth one example, so a perfectly
 * separated validation set (where the log loss keeps falling as T → 0) still gets a finite T.
 */
export function fitTemperature(logits: Float32Array, trueLabels: Int32Array, numClasses: number): TemperatureFit {
  const n = trueLabels.length;
  if (n === 0) throw dataError('temperature scaling needs at least one example');
  if (logits.length !== n * numClasses) throw dataError(`expected ${n}×${numClasses} logits, got ${logits.length}`);
  const logLossAt = (temperature: number) => meanLogLoss(logits, trueLabels, numClasses, 1 / temperature);
  const objective = (tau: number) => logLossAt(Math.exp(tau)) + (tau / Math.LN10) ** 2 / (2 * n);

  const [lo, hi] = TEMPERATURE_RANGE.map(Math.log) as [number, number];
  const steps = 40;
  const grid = Array.from({ length: steps + 1 }, (_, i) => lo + ((hi - lo) * i) / steps);
  const values = grid.map(objective);
  const bestIndex = values.indexOf(Math.min(...values));
  let a = grid[Math.max(0, bestIndex - 1)]!;
  let b = grid[Math.min(steps, bestIndex + 1)]!;
  const ratio = (Math.sqrt(5) - 1) / 2;
  let x1 = b - ratio * (b - a);
  let x2 = a + ratio * (b - a);
  let f1 = objective(x1);
  let f2 = objective(x2);
  while (b - a > 1e-6) {
    if (f1 <= f2) {
      b = x2;
      x2 = x1;
      f2 = f1;
      x1 = b - ratio * (b - a);
      f1 = objective(x1);
    } else {
      a = x1;
      x1 = x2;
      f1 = f2;
      x2 = a + ratio * (b - a);
      f2 = objective(x2);
    }
  }
  const temperature = Math.exp((a + b) / 2);
  return { temperature, logLossBefore: logLossAt(1), logLossAfter: logLossAt(temperature) };
}

/** Mean −ln softmax(β·z)[y], computed stably from the logits (no clipping needed). */
function meanLogLoss(logits: Float32Array, trueLabels: Int32Array, k: number, beta: number): number {
  let total = 0;
  for (let i = 0; i < trueLabels.length; i++) {
    const base = i * k;
    let max = -Infinity;
    for (let c = 0; c < k; c++) max = Math.max(max, beta * logits[base + c]!);
    let sum = 0;
    for (let c = 0; c < k; c++) sum += Math.exp(beta * logits[base + c]! - max);
    total += max + Math.log(sum) - beta * logits[base + trueLabels[i]!]!;
  }
  return total / trueLabels.length;
}
