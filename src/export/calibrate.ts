/**
 * Activation ranges for static int8 quantisation, measured by running the float graph on a few
 * dozen of the model's own training inputs. Three ways to turn the values seen into a range:
 *
 * - `minmax`: the smallest and largest value seen. Nothing is clipped; one outlier widens the step
 *   for every other value.
 * - `percentile`: the range that holds `percentile` % of the values seen (by magnitude), clipping
 *   the rare outliers beyond it.
 * - `entropy`: the clipping threshold whose quantised histogram is closest (KL divergence) to the
 *   float one, as TensorRT calibrates (Migacz, "8-bit inference with TensorRT", 2017).
 *
 * Hand-written rather than onnxruntime's Python calibrators because they run in Node on the same
 * session that serves, and need only the activation values the graph already computes.
 */
import { usageError } from '../util/errors.js';

export const CALIBRATION_METHODS = ['minmax', 'percentile', 'entropy'] as const;
export type CalibrationMethod = (typeof CALIBRATION_METHODS)[number];

export interface CalibrationSettings {
  method: CalibrationMethod;
  /** For `percentile`: the share of values (by magnitude) the range must hold, in %, e.g. 99.999. */
  percentile: number;
}

export const DEFAULT_CALIBRATION: CalibrationSettings = { method: 'minmax', percentile: 99.999 };

export interface Range {
  min: number;
  max: number;
}

/** Runs the float graph on calibration input `index` and returns the named tensors' values. */
export interface CalibrationRunner {
  inputs: number;
  run(index: number, tensors: string[]): Promise<Record<string, Float32Array>>;
}

/** Entropy calibration never clips more than 0.1 % of a tensor's non-zero values (see `entropyThreshold`). */
export const ENTROPY_KEEPS = 99.9;

/** Histogram bins: enough resolution for 256 levels at the tails TensorRT's method explores. */
const BINS = 2048;

export function checkCalibration(settings: CalibrationSettings): void {
  if (!CALIBRATION_METHODS.includes(settings.method)) {
    throw usageError(`unknown calibration method "${settings.method}"; use one of ${CALIBRATION_METHODS.join(', ')}`);
  }
  if (!(settings.percentile > 50 && settings.percentile <= 100)) {
    throw usageError(`the calibration percentile must be above 50 and at most 100 (it is the share of values kept, in %); got ${settings.percentile}`);
  }
}

/**
 * The range of every tensor in `tensors` over all calibration inputs. Ranges always include 0 (so
 * zero is exact, as padding and ReLU need) and are never empty.
 */
export async function calibrateRanges(runner: CalibrationRunner, tensors: string[], settings: CalibrationSettings): Promise<Map<string, Range>> {
  checkCalibration(settings);
  if (runner.inputs === 0) throw usageError('static int8 quantisation needs at least one calibration input');
  const seen = new Map(tensors.map((name) => [name, { min: 0, max: 0 }]));
  for (let i = 0; i < runner.inputs; i++) {
    const values = await runner.run(i, tensors);
    for (const name of tensors) {
      const range = seen.get(name)!;
      for (const v of values[name]!) {
        if (v < range.min) range.min = v;
        else if (v > range.max) range.max = v;
      }
    }
  }
  if (settings.method === 'minmax') return new Map([...seen].map(([name, range]) => [name, nonEmpty(range)]));

  // Second pass: a histogram of each tensor's magnitudes over what the first pass saw. Exact zeros
  // (ReLU's dead half, padding) are left out: zero is exact at any scale, and their spike would
  // otherwise dominate the entropy comparison.
  const histograms = new Map(tensors.map((name) => [name, new Float64Array(BINS)]));
  const tops = new Map(tensors.map((name) => [name, Math.max(seen.get(name)!.max, -seen.get(name)!.min)]));
  for (let i = 0; i < runner.inputs; i++) {
    const values = await runner.run(i, tensors);
    for (const name of tensors) {
      const top = tops.get(name)!;
      if (top === 0) continue;
      const histogram = histograms.get(name)!;
      const perBin = BINS / top;
      for (const v of values[name]!) if (v !== 0) histogram[Math.min(BINS - 1, Math.floor(Math.abs(v) * perBin))]++;
    }
  }
  const ranges = new Map<string, Range>();
  for (const name of tensors) {
    const range = seen.get(name)!;
    const top = tops.get(name)!;
    const signed = range.min < 0;
    const threshold = top === 0 ? 0 : settings.method === 'percentile' ? percentileThreshold(histograms.get(name)!, top, settings.percentile) : entropyThreshold(histograms.get(name)!, top, signed ? 128 : 256);
    ranges.set(name, nonEmpty({ min: Math.max(range.min, -threshold), max: Math.min(range.max, threshold) }));
  }
  return ranges;
}

function nonEmpty(range: Range): Range {
  // A tensor that was always 0 still needs a positive step.
  return range.max - range.min > 0 ? range : { min: 0, max: 1 };
}

/** The magnitude below which `percentile` % of the histogram's values lie (upper edge of that bin). */
export function percentileThreshold(histogram: Float64Array, top: number, percentile: number): number {
  const total = histogram.reduce((a, b) => a + b, 0);
  const wanted = (total * percentile) / 100;
  let cumulative = 0;
  for (let bin = 0; bin < histogram.length; bin++) {
    cumulative += histogram[bin]!;
    if (cumulative >= wanted) return ((bin + 1) * top) / histogram.length;
  }
  return top;
}

/**
 * TensorRT's entropy calibration: for each candidate threshold (a bin edge), the distribution
 * clipped there (outliers folded into the last bin) against the same distribution merged into
 * `levels` quantisation steps and spread back; the threshold with the smallest KL divergence wins.
 * `levels` is what the uint8 grid gives the magnitudes: 256 for a non-negative tensor (ReLU's
 * [0, t] uses the whole grid), 128 for a signed one (each side gets half).
 *
 * Candidates start where `keep` % of the values lie, never lower. KL over fine bins assumes a smooth
 * histogram; a convolution over a plain background (MNIST's black paper) makes one spike per
 * channel instead, and merging a spike with its neighbours costs more divergence than clipping
 * much of the tensor. On digits (MobileNetV2) it cut the first ReLU6 at 0.53 of 6 (89 % of its
 * values clipped, with 128 levels where the grid has 256) and the first linear bottleneck at 1.8 of
 * 19.9 (17 % clipped, with the right level count too): the file fell to chance (0.095; 0.115 with
 * 256 levels alone; 0.785, as minmax's 0.765, with the floor). The floor leaves the method free on
 * the tail it was designed for (a Gaussian's lone outliers lie far beyond it).
 */
export function entropyThreshold(histogram: Float64Array, top: number, levels = 128, keep = ENTROPY_KEEPS): number {
  const bins = histogram.length;
  const first = Math.min(bins, Math.max(levels, Math.round((percentileThreshold(histogram, top, keep) * bins) / top)));
  let best = bins;
  let bestDivergence = Infinity;
  const reference = new Float64Array(bins);
  const expanded = new Float64Array(bins);
  let outliers = 0;
  for (let bin = first; bin < bins; bin++) outliers += histogram[bin]!;
  for (let cut = first; cut <= bins; cut++) {
    reference.set(histogram.subarray(0, cut));
    if (cut < bins) reference[cut - 1]! += outliers;
    // Merge [0, cut) into `levels` groups, then spread each group's total over its non-empty bins.
    for (let level = 0; level < levels; level++) {
      const start = Math.floor((level * cut) / levels);
      const end = level === levels - 1 ? cut : Math.floor(((level + 1) * cut) / levels);
      let sum = 0;
      let nonZero = 0;
      for (let b = start; b < end; b++) {
        sum += histogram[b]!;
        if (histogram[b]! > 0) nonZero++;
      }
      for (let b = start; b < end; b++) expanded[b] = histogram[b]! > 0 ? sum / nonZero : 0;
    }
    const divergence = klDivergence(reference, expanded, cut);
    if (divergence < bestDivergence) {
      bestDivergence = divergence;
      best = cut;
    }
    if (cut < bins) outliers -= histogram[cut]!;
  }
  return (best * top) / bins;
}

/** KL(p ‖ q) over the first `n` bins, both normalised; bins where p has mass and q none count as a large penalty. */
function klDivergence(p: Float64Array, q: Float64Array, n: number): number {
  let sumP = 0;
  let sumQ = 0;
  for (let i = 0; i < n; i++) {
    sumP += p[i]!;
    sumQ += q[i]!;
  }
  if (sumP === 0 || sumQ === 0) return Infinity;
  let divergence = 0;
  for (let i = 0; i < n; i++) {
    if (p[i] === 0) continue;
    const pi = p[i]! / sumP;
    // q is zero only where the merged group was empty yet p (which includes the outliers) is not.
    const qi = q[i]! > 0 ? q[i]! / sumQ : 1e-12;
    divergence += pi * Math.log(pi / qi);
  }
  return divergence;
}
