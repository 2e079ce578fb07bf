import { describe, expect, it } from 'vitest';
import {
  TEMPERATURE_RANGE,
  expectedCalibrationError,
  fitTemperature,
  reliabilityBins,
  softmaxWithTemperature,
} from '../src/evaluate/calibration.js';
import { argmaxRows } from '../src/heads/common.js';
import { Rng } from '../src/util/rng.js';

describe('expected calibration error', () => {
  it('is Σ share × |accuracy − confidence| over equal-width bins', () => {
    // Top probabilities 0.95, 0.95 (one right), 0.65 (right), 0.55 (wrong):
    // bin (0.9, 1]: accuracy ½, confidence 0.95 → ½·0.45; bin (0.6, 0.7]: ¼·0.35; bin (0.5, 0.6]: ¼·0.55.
    const probabilities = Float32Array.from([0.95, 0.05, 0.95, 0.05, 0.35, 0.65, 0.55, 0.45]);
    const trueLabels = Int32Array.from([0, 1, 1, 1]);
    const bins = reliabilityBins(trueLabels, probabilities, 2, 10);
    expect(bins.map((b) => b.count)).toEqual([0, 0, 0, 0, 0, 1, 1, 0, 0, 2]);
    expect(bins[9]).toMatchObject({ lower: 0.9, upper: 1, accuracy: 0.5 });
    expect(bins[9]!.confidence).toBeCloseTo(0.95, 6);
    expect(expectedCalibrationError(bins)).toBeCloseTo(0.5 * 0.45 + 0.25 * 0.35 + 0.25 * 0.55, 6);
  });

  it('is 0 when confidence matches accuracy in every bin', () => {
    // Four inputs at 0.75 confidence, three of them right.
    const probabilities = Float32Array.from([0.75, 0.25, 0.75, 0.25, 0.75, 0.25, 0.75, 0.25]);
    expect(expectedCalibrationError(reliabilityBins(Int32Array.from([0, 0, 0, 1]), probabilities, 2))).toBe(0);
  });
});

/**
 * A 3-class problem whose true class probabilities are softmax(z) exactly (labels are drawn from
 * them), so logits z are calibrated; the model reports `overconfidence`·z.
 */
function syntheticModel(n: number, overconfidence: number, seed: number) {
  const rng = new Rng(seed);
  const k = 3;
  const logits = new Float32Array(n * k);
  const trueLabels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const z = [0, 1, 2].map(() => 1.5 * rng.normal());
    const p = softmaxWithTemperature(Float32Array.from(z), k, 1);
    const u = rng.next();
    trueLabels[i] = u < p[0]! ? 0 : u < p[0]! + p[1]! ? 1 : 2;
    z.forEach((value, c) => (logits[i * k + c] = overconfidence * value));
  }
  return { logits, trueLabels, k };
}

const ece = (trueLabels: Int32Array, logits: Float32Array, k: number, temperature: number) =>
  expectedCalibrationError(reliabilityBins(trueLabels, softmaxWithTemperature(logits, k, temperature), k));

describe('temperature scaling', () => {
  it('recovers the over-confidence of a deliberately over-confident model and lowers ECE on held-out data', () => {
    const validation = syntheticModel(3000, 4, 1);
    const heldOut = syntheticModel(3000, 4, 2);
    const fit = fitTemperature(validation.logits, validation.trueLabels, 3);
    expect(fit.temperature).toBeGreaterThan(3.5);
    expect(fit.temperature).toBeLessThan(4.5);
    expect(fit.logLossAfter).toBeLessThan(fit.logLossBefore);

    const before = ece(heldOut.trueLabels, heldOut.logits, 3, 1);
    const after = ece(heldOut.trueLabels, heldOut.logits, 3, fit.temperature);
    expect(before).toBeGreaterThan(0.15);
    expect(after).toBeLessThan(0.03);
    // Scaling never changes a prediction.
    expect(argmaxRows(softmaxWithTemperature(heldOut.logits, 3, fit.temperature), 3)).toEqual(argmaxRows(heldOut.logits, 3));
  });

  it('sharpens an under-confident model (T < 1)', () => {
    const data = syntheticModel(2000, 0.4, 3);
    const fit = fitTemperature(data.logits, data.trueLabels, 3);
    expect(fit.temperature).toBeGreaterThan(0.3);
    expect(fit.temperature).toBeLessThan(0.5);
    expect(ece(data.trueLabels, data.logits, 3, fit.temperature)).toBeLessThan(ece(data.trueLabels, data.logits, 3, 1));
  });

  it('stays finite on a perfectly separated validation set', () => {
    // Every input right with a margin of 2: the log loss alone would keep falling as T → 0.
    const logits = Float32Array.from([2, 0, 0, 2, 2, 0, 0, 2]);
    const fit = fitTemperature(logits, Int32Array.from([0, 1, 0, 1]), 2);
    expect(fit.temperature).toBeGreaterThan(TEMPERATURE_RANGE[0]);
    expect(fit.temperature).toBeLessThan(1);
    expect(Number.isFinite(fit.logLossAfter)).toBe(true);
  });
});
