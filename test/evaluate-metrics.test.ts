import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { bootstrapIntervals, evaluatePredictions, formatEvaluationSummary } from '../src/evaluate/metrics.js';
import { Rng } from '../src/util/rng.js';

interface OneVsRest {
  perClass: (number | null)[];
  macro: number;
  weighted: number;
}

interface ReferenceCase {
  name: string;
  labels: string[];
  trueLabels: number[];
  probabilities: number[][];
  expected: {
    accuracy: number;
    topK: Record<string, number>;
    perClass: { precision: number[]; recall: number[]; f1: number[]; support: number[] };
    micro: { precision: number; recall: number; f1: number };
    macro: { precision: number; recall: number; f1: number };
    weighted: { precision: number; recall: number; f1: number };
    balancedAccuracy: number;
    cohenKappa: number;
    matthews: number;
    rocAuc: OneVsRest;
    prAuc: OneVsRest;
    logLoss: number;
    confusion: number[][];
    confusionNormalized: number[][];
    ece: { bins: number; value: number };
  };
}

// Written by tools/metrics-reference.py (scikit-learn 1.2.1, numpy for ECE).
const reference = JSON.parse(readFileSync(new URL('./fixtures/metrics/sklearn-reference.json', import.meta.url), 'utf8')) as { cases: ReferenceCase[] };

// The probabilities are float32 in both implementations; sklearn works in float64 on the same values.
const CLOSE = 1e-9;

describe('evaluatePredictions against scikit-learn', () => {
  it('has the reference cases', () => {
    expect(reference.cases.map((c) => c.name)).toEqual([
      'binary, 40 examples',
      'binary with tied scores, 30 examples',
      '3 classes, imbalanced 3:2:1, 60 examples',
      '5 classes, one never predicted, 200 examples',
      '4 classes, one absent from the true labels, 50 examples',
    ]);
  });

  for (const c of reference.cases) {
    it(c.name, () => {
      const m = evaluatePredictions(Int32Array.from(c.trueLabels), Float32Array.from(c.probabilities.flat()), c.labels, {
        topK: [1, 2, 3, 4],
        calibrationBins: c.expected.ece.bins,
      });
      const e = c.expected;
      expect(m.accuracy).toBeCloseTo(e.accuracy, 12);
      expect(m.topK[0]).toEqual({ k: 1, accuracy: m.accuracy });
      expect(Object.fromEntries(m.topK.slice(1).map((t) => [String(t.k), t.accuracy]))).toEqual(e.topK);
      m.perClass.forEach((pc, i) => {
        expect(pc.precision).toBeCloseTo(e.perClass.precision[i]!, 12);
        expect(pc.recall).toBeCloseTo(e.perClass.recall[i]!, 12);
        expect(pc.f1).toBeCloseTo(e.perClass.f1[i]!, 12);
        expect(pc.support).toBe(e.perClass.support[i]);
      });
      for (const average of ['micro', 'macro', 'weighted'] as const) {
        for (const key of ['precision', 'recall', 'f1'] as const) expect(m[average][key]).toBeCloseTo(e[average][key], 12);
      }
      expect(m.balancedAccuracy).toBeCloseTo(e.balancedAccuracy, 12);
      expect(m.cohenKappa).toBeCloseTo(e.cohenKappa, 12);
      expect(m.matthews).toBeCloseTo(e.matthews, 12);
      for (const [ours, theirs] of [
        [m.rocAuc, e.rocAuc],
        [m.prAuc, e.prAuc],
      ] as const) {
        expect(ours.perClass.map((x) => x === null)).toEqual(theirs.perClass.map((x) => x === null));
        ours.perClass.forEach((x, i) => x !== null && expect(x).toBeCloseTo(theirs.perClass[i]!, 12));
        expect(ours.macro!).toBeCloseTo(theirs.macro, 12);
        expect(ours.weighted!).toBeCloseTo(theirs.weighted, 12);
      }
      // sklearn renormalises float32 rows that sum to 1 ± 1e-7 before taking logs.
      expect(Math.abs(m.logLoss - e.logLoss)).toBeLessThan(1e-6);
      expect(m.confusion).toEqual(e.confusion);
      m.confusionNormalized.flat().forEach((x, i) => expect(x).toBeCloseTo(e.confusionNormalized.flat()[i]!, 12));
      expect(Math.abs(m.calibration.ece - e.ece.value)).toBeLessThan(CLOSE);
      expect(m.calibration.temperature).toBe(1);
    });
  }
});

describe('evaluatePredictions by hand', () => {
  // The example of metrics-classification.test.ts. Confusion [true][predicted]:
  //        cat dog bird
  //   cat    2   1    1   support 4
  //   dog    1   2    0   support 3
  //   bird   0   2    1   support 3
  //   predicted 3  5  2
  const labels = ['cat', 'dog', 'bird'];
  const trueLabels = Int32Array.from([0, 0, 0, 0, 1, 1, 1, 2, 2, 2]);
  const probabilities = Float32Array.from(
    [
      [0.75, 0.125, 0.125],
      [0.5, 0.25, 0.25],
      [0.25, 0.5, 0.25],
      [0.25, 0.25, 0.5],
      [0.5, 0.25, 0.25],
      [0.125, 0.75, 0.125],
      [0.25, 0.5, 0.25],
      [0.125, 0.75, 0.125],
      [0.25, 0.5, 0.25],
      [0.25, 0.25, 0.5],
    ].flat(),
  );
  const m = evaluatePredictions(trueLabels, probabilities, labels, { topK: [2] });

  it('computes agreement scores from the confusion matrix', () => {
    // Accuracy 5/10; chance agreement (4·3 + 3·5 + 3·2)/100 = 0.33; κ = (0.5 − 0.33)/(1 − 0.33) = 17/67.
    expect(m.cohenKappa).toBeCloseTo(17 / 67, 12);
    // MCC = (5·10 − 33) / √((100 − (9 + 25 + 4))·(100 − (16 + 9 + 9))) = 17/√(62·66).
    expect(m.matthews).toBeCloseTo(17 / Math.sqrt(62 * 66), 12);
    // Mean recall (1/2 + 2/3 + 1/3)/3.
    expect(m.balancedAccuracy).toBeCloseTo(0.5, 12);
    expect(m.micro).toEqual({ precision: 0.5, recall: 0.5, f1: 0.5 });
  });

  it('ranks top-k with ties going to the lower class index', () => {
    // Top-2 misses only the bird rows [0.125, 0.75, 0.125] and [0.25, 0.5, 0.25]: dog beats bird,
    // and cat ties with it but ranks first as the lower index.
    expect(m.topK).toEqual([
      { k: 1, accuracy: 0.5 },
      { k: 2, accuracy: 0.8 },
    ]);
  });

  it('computes one-vs-rest ROC-AUC with ties counted half', () => {
    // bird scores: positives 0.125, 0.25, 0.5; negatives 0.125, 0.25, 0.25, 0.5, 0.25, 0.125, 0.25.
    // Pairs won: 0.125 → 0 + ½·2 = 1; 0.25 → 2 + ½·4 = 4; 0.5 → 6 + ½·1 = 6.5. AUC = 11.5 / 21.
    expect(m.rocAuc.perClass[2]).toBeCloseTo(11.5 / 21, 12);
  });

  it('computes average precision over distinct thresholds', () => {
    // bird: threshold 0.5 → 1 TP of 2 predicted (P ½, R ⅓); 0.25 → 2 TP of 7 (P 2/7, R ⅔);
    // 0.125 → 3 TP of 10 (P 0.3, R 1). AP = ⅓·½ + ⅓·2/7 + ⅓·0.3.
    expect(m.prAuc.perClass[2]).toBeCloseTo((1 / 3) * (1 / 2 + 2 / 7 + 0.3), 12);
  });

  it('normalises the confusion matrix by true class and lists the most confused pairs', () => {
    expect(m.confusionNormalized[0]).toEqual([0.5, 0.25, 0.25]);
    expect(m.mostConfused[0]).toMatchObject({ trueLabel: 'bird', predictedLabel: 'dog', count: 2, shareOfClass: 2 / 3 });
    expect(m.mostConfused.map((p) => p.count)).toEqual([2, 1, 1, 1]);
  });

  it('summarises itself in a few lines', () => {
    const text = formatEvaluationSummary(m);
    expect(text).toMatch(/balanced accuracy 0\.5000 {3}Cohen's kappa 0\.2537 {3}Matthews 0\.2658/);
    expect(text).toMatch(/95% CI \(bootstrap, 1000 resamples\): accuracy 0\.\d{3}–0\.\d{3}/);
    expect(text).toMatch(/most confused: bird → dog \(2\)/);
  });
});

describe('bootstrap confidence intervals', () => {
  function sample(n: number, accuracy: number, seed: number) {
    const rng = new Rng(seed);
    const trueLabels = Int32Array.from({ length: n }, () => rng.int(2));
    const predicted = trueLabels.map((t) => (rng.next() < accuracy ? t : 1 - t));
    return { trueLabels, predicted };
  }

  it('is reproducible from its seed and contains the estimate', () => {
    const { trueLabels, predicted } = sample(200, 0.8, 1);
    const options = { resamples: 500, seed: 7, accuracy: 0.8, macroF1: 0.8 };
    const a = bootstrapIntervals(trueLabels, predicted, 2, options);
    expect(bootstrapIntervals(trueLabels, predicted, 2, options)).toEqual(a);
    expect(bootstrapIntervals(trueLabels, predicted, 2, { ...options, seed: 8 })).not.toEqual(a);
    expect(a.accuracy.low).toBeLessThan(a.accuracy.high);
  });

  it('matches the normal approximation p ± 1.96·√(p(1 − p)/n) on a large sample', () => {
    const n = 2000;
    const { trueLabels, predicted } = sample(n, 0.8, 2);
    let correct = 0;
    trueLabels.forEach((t, i) => (correct += t === predicted[i] ? 1 : 0));
    const p = correct / n;
    const half = 1.96 * Math.sqrt((p * (1 - p)) / n);
    const ci = bootstrapIntervals(trueLabels, predicted, 2, { resamples: 2000, seed: 0, accuracy: p, macroF1: 0 }).accuracy;
    expect(ci.low).toBeCloseTo(p - half, 2);
    expect(ci.high).toBeCloseTo(p + half, 2);
  });

  it('narrows as the evaluation set grows', () => {
    const width = (n: number) => {
      const { trueLabels, predicted } = sample(n, 0.8, 3);
      const ci = bootstrapIntervals(trueLabels, predicted, 2, { resamples: 1000, seed: 0, accuracy: 0, macroF1: 0 });
      return ci.accuracy.high - ci.accuracy.low;
    };
    expect(width(1600)).toBeLessThan(width(100) / 2);
  });
});
