import { describe, expect, it } from 'vitest';
import { computeMetrics } from '../src/evaluate/metrics.js';
import type { FeatureSet, Head } from '../src/heads/head.js';
import type { BaseHead } from '../src/heads/common.js';
import { Standardizer, standardizeAll } from '../src/heads/standardizer.js';
import { type FitOptions, fitHead } from '../src/train/fit.js';
import { MlpModel } from '../src/train/models.js';
import { Objective, TrainingRows } from '../src/train/objective.js';
import { HeadstartError } from '../src/util/errors.js';
import type { Reporter } from '../src/util/progress.js';
import { Rng } from '../src/util/rng.js';

/** Two noisy classes whose means differ in the first few dimensions only; `flip` of the labels are wrong. */
function noisySet(n: number, dim: number, seed: number, flip = 0): FeatureSet {
  const rng = new Rng(seed);
  const features = new Float32Array(n * dim);
  const labels = new Int32Array(n);
  for (let r = 0; r < n; r++) {
    const c = r % 2;
    labels[r] = rng.next() < flip ? 1 - c : c;
    for (let j = 0; j < dim; j++) features[r * dim + j] = rng.normal() + (j < 3 ? (c ? 0.8 : -0.8) : 0);
  }
  return { features, labels, dim, numClasses: 2 };
}

function tensorsBitwiseEqual(a: Head, b: Head): boolean {
  const ta = a.state().tensors;
  const tb = b.state().tensors;
  if (Object.keys(ta).join() !== Object.keys(tb).join()) return false;
  return Object.keys(ta).every((name) => {
    const x = new Uint32Array(ta[name].data.buffer, ta[name].data.byteOffset, ta[name].data.length);
    const y = new Uint32Array(tb[name].data.buffer, tb[name].data.byteOffset, tb[name].data.length);
    return x.length === y.length && x.every((v, i) => v === y[i]);
  });
}

const labelNames = ['a', 'b'];

describe('seeding', () => {
  const train = noisySet(120, 16, 1, 0.1);
  const validation = noisySet(60, 16, 2, 0.1);

  it('the same seed gives bit-identical MLP weights (init, batch order, dropout)', () => {
    const options: FitOptions = { head: 'mlp', epochs: 6, hiddenUnits: 12, dropout: 0.3, seed: 11 };
    const first = fitHead(train, validation, options);
    const second = fitHead(train, validation, options);
    expect(tensorsBitwiseEqual(first.head, second.head)).toBe(true);
    expect(second.history.map((e) => e.trainLoss)).toEqual(first.history.map((e) => e.trainLoss));
  });

  it('the same seed gives bit-identical linear weights', () => {
    const a = fitHead(train, undefined, { head: 'linear', epochs: 5, seed: 3 });
    const b = fitHead(train, undefined, { head: 'linear', epochs: 5, seed: 3 });
    expect(tensorsBitwiseEqual(a.head, b.head)).toBe(true);
  });

  it('a different seed gives different MLP weights', () => {
    const a = fitHead(train, undefined, { head: 'mlp', epochs: 2, hiddenUnits: 12, seed: 1 });
    const b = fitHead(train, undefined, { head: 'mlp', epochs: 2, hiddenUnits: 12, seed: 2 });
    const wa = a.head.state().tensors.hiddenWeight.data;
    const wb = b.head.state().tensors.hiddenWeight.data;
    let differing = 0;
    for (let i = 0; i < wa.length; i++) if (wa[i] !== wb[i]) differing++;
    expect(differing).toBe(wa.length);
  });
});

describe('early stopping', () => {
  // Few noisy rows, many dimensions, no regularisation, a high constant learning rate: the head
  // memorises the training noise and the validation loss turns upward after a few epochs.
  const train = noisySet(40, 80, 3, 0.2);
  const validation = noisySet(200, 80, 4, 0.2);
  const options: FitOptions = {
    head: 'linear',
    epochs: 200,
    lr: 0.05,
    weightDecay: 0,
    labelSmoothing: 0,
    schedule: 'constant',
    patience: 5,
    batchSize: 8,
  };
  const result = fitHead(train, validation, options);
  const valLosses = result.history.map((e) => e.valLoss!);
  const best = Math.min(...valLosses);

  it('stops after `patience` epochs without improvement', () => {
    expect(result.stoppedEarly).toBe(true);
    expect(result.history.length).toBe(result.bestEpoch + 5);
    expect(result.history.length).toBeLessThan(200);
    expect(valLosses.at(-1)!).toBeGreaterThan(best);
  });

  it('returns the best epoch’s weights, not the last', () => {
    expect(valLosses[result.bestEpoch - 1]).toBe(best);
    // Recompute the returned head's validation loss from scratch: it is exactly the best epoch's.
    const recomputed = computeMetrics(validation.labels, result.head.predictProba(validation.features), labelNames);
    expect(recomputed.logLoss).toBe(best);
    expect(recomputed.accuracy).toBe(result.history[result.bestEpoch - 1].valAccuracy);
  });

  it('patience 0 trains every epoch but still returns the best one', () => {
    const all = fitHead(train, validation, { ...options, epochs: 30, patience: 0 });
    expect(all.history.length).toBe(30);
    expect(all.stoppedEarly).toBe(false);
    const losses = all.history.map((e) => e.valLoss!);
    expect(losses[all.bestEpoch - 1]).toBe(Math.min(...losses));
  });

  it('without validation, trains every epoch and returns the last', () => {
    const plain = fitHead(train, undefined, { ...options, epochs: 12 });
    expect(plain.history.length).toBe(12);
    expect(plain.bestEpoch).toBe(12);
    expect(plain.history[0].valLoss).toBeUndefined();
  });
});

describe('history and options', () => {
  const train = noisySet(100, 10, 5);
  const validation = noisySet(50, 10, 6);

  it('records one entry per epoch with the schedule’s learning rate', () => {
    const result = fitHead(train, validation, { epochs: 4, batchSize: 25, lr: 0.01, patience: 0, warmupFraction: 0 });
    expect(result.history.map((e) => e.epoch)).toEqual([1, 2, 3, 4]);
    // 4 steps per epoch, 16 in all; the epoch's last step is 3, 7, 11, 15: lr = 0.01·½(1 + cos(π·s/16))
    result.history.forEach((e, i) => {
      expect(e.lr).toBeCloseTo(0.01 * 0.5 * (1 + Math.cos((Math.PI * (4 * i + 3)) / 16)), 15);
      expect(e.trainLoss).toBeGreaterThan(0);
      expect(e.valAccuracy).toBeGreaterThan(0.5);
      expect(e.seconds).toBeGreaterThanOrEqual(0);
    });
    expect(result.seconds).toBeGreaterThan(0);
  });

  it('resolves defaults into JSON-able options', () => {
    const linear = fitHead(train, undefined, { epochs: 2 }).options;
    expect(linear).toEqual({
      head: 'linear',
      standardize: true,
      seed: 0,
      optimizer: 'adamw',
      labelSmoothing: 0.1,
      classWeights: 'none',
      batchSize: 32,
      epochs: 2,
      lr: 2e-3,
      weightDecay: 0.05,
      schedule: 'cosine',
      warmupFraction: 0.05,
      patience: 10,
    });
    expect(JSON.parse(JSON.stringify(linear))).toEqual(linear);
    // ~2000 optimiser steps, clamped to 5–100 epochs: 100 rows / 32 = 4 steps per epoch → 100 epochs
    expect(fitHead(train, undefined, { epochs: undefined, lr: 1e-3 }).options.epochs).toBe(100);
    // 2000 rows: 63 steps per epoch → 32 epochs; 20,000 rows: 625 steps → 4, raised to the minimum 5
    expect(fitHead(noisySet(2000, 1, 9), undefined, {}).options.epochs).toBe(32);
    expect(fitHead(noisySet(20000, 1, 9), undefined, {}).options.epochs).toBe(5);
    const mlp = fitHead(train, undefined, { head: 'mlp', epochs: 1 }).options;
    expect(mlp).toMatchObject({ hiddenUnits: 128, dropout: 0.2, activation: 'relu', lr: 1e-3 });
    expect(fitHead(train, undefined, { head: 'mlp', schedule: 'one-cycle', epochs: 1 }).options.warmupFraction).toBe(0.3);
    // L-BFGS: L2 = 10/n (scikit-learn C = 0.1), no label smoothing
    expect(fitHead(train, undefined, { optimizer: 'lbfgs' }).options).toEqual({
      head: 'linear',
      standardize: true,
      seed: 0,
      optimizer: 'lbfgs',
      labelSmoothing: 0,
      classWeights: 'none',
      epochs: 500,
      weightDecay: 0.1,
      tolerance: 1e-6,
    });
  });

  it('warns about options that do not apply, instead of silently ignoring them', () => {
    const warnings: string[] = [];
    const reporter: Reporter = { task: () => ({ tick() {}, done() {} }), info() {}, warn: (m) => warnings.push(m) };
    fitHead(train, undefined, { head: 'knn', epochs: 5, dropout: 0.5 }, reporter);
    expect(warnings).toEqual(['option epochs has no effect on a knn head', 'option dropout has no effect on a knn head']);
  });

  it('reports progress per epoch', () => {
    const events: string[] = [];
    const reporter: Reporter = {
      task: (label, total, unit) => {
        events.push(`start ${label} ${total} ${unit}`);
        return { tick: () => events.push('tick'), done: (summary) => events.push(`done ${summary}`) };
      },
      info() {},
      warn() {},
    };
    fitHead(train, undefined, { epochs: 3 }, reporter);
    expect(events.slice(0, 4)).toEqual(['start train linear head 3 epochs', 'tick', 'tick', 'tick']);
    expect(events[4]).toMatch(/^done 3 epochs, train loss \d\.\d{4}, train accuracy \d+\.\d%$/);
  });
});

describe('errors users can hit', () => {
  const train = noisySet(20, 4, 7);
  const expectError = (fn: () => unknown, kind: string, message: RegExp) => {
    let thrown: unknown;
    try {
      fn();
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(HeadstartError);
    expect((thrown as HeadstartError).kind).toBe(kind);
    expect((thrown as Error).message).toMatch(message);
  };

  it('rejects invalid options', () => {
    expectError(() => fitHead(train, undefined, { head: 'mlp', optimizer: 'lbfgs' }), 'usage', /lbfgs optimizer trains only the linear head/);
    expectError(() => fitHead(train, undefined, { head: 'tree' as never }), 'usage', /unknown head "tree"/);
    expectError(() => fitHead(train, undefined, { lr: -1 }), 'usage', /lr must be a number >= 0, got -1/);
    expectError(() => fitHead(train, undefined, { epochs: 2.5 }), 'usage', /epochs must be an integer >= 1/);
    expectError(() => fitHead(train, undefined, { labelSmoothing: 1 }), 'usage', /labelSmoothing must be a number in \[0, 1\)/);
    expectError(() => fitHead(train, undefined, { classWeights: [1] }), 'usage', /2 numbers \(one per class\)/);
    expectError(() => fitHead(train, undefined, { schedule: 'step' as never }), 'usage', /unknown schedule "step"/);
    expectError(() => fitHead(train, undefined, { seed: -1 }), 'usage', /seed must be a non-negative integer/);
  });

  it('rejects inconsistent or broken data', () => {
    const nan = { ...train, features: (train.features as Float32Array).slice() };
    nan.features[9] = Number.NaN;
    expectError(() => fitHead(nan, undefined, {}), 'data', /training set: row 2 has a non-finite feature \(NaN\) at dimension 1/);
    const badLabel = { ...train, labels: train.labels.slice() };
    badLabel.labels[3] = 2;
    expectError(() => fitHead(badLabel, undefined, {}), 'data', /label 2 of row 3 is not a class index below 2/);
    expectError(() => fitHead(train, { ...train, dim: 2, features: new Float32Array(40) }, {}), 'usage', /validation features have dim 2, training features 4/);
    expectError(() => fitHead({ ...train, features: new Float32Array(7) }, undefined, {}), 'data', /20 labels need 20×4 = 80 feature values, got 7/);
  });
});

describe('large sets take the chunked path with identical results', () => {
  const train = noisySet(300, 9, 8);
  const standardizer = Standardizer.fit(train.features, 300, 9);

  it('training rows standardised per chunk give the same loss and gradient bits as the prepared matrix', () => {
    const model = new MlpModel(9, 5, 2, 'relu', 0.2, 0.1);
    const params = Float64Array.from({ length: model.size }, (_, i) => Math.sin(i));
    const order = Array.from({ length: 300 }, (_, i) => (i * 7) % 300);
    const run = (limit: number) => {
      const rows = new TrainingRows(train, standardizer, Float64Array.from([1, 2]), limit);
      const grad = new Float64Array(model.size);
      const loss = new Objective(model, rows, 300).evaluate(params, order, 0, 300, grad, new Rng(5));
      return { prepared: rows.matrix !== null, loss, grad };
    };
    const prepared = run(Number.POSITIVE_INFINITY);
    const chunked = run(0);
    expect([prepared.prepared, chunked.prepared]).toEqual([true, false]);
    expect(chunked.loss).toBe(prepared.loss);
    expect(Array.from(chunked.grad)).toEqual(Array.from(prepared.grad));
  });

  it('scoring pre-standardised rows equals scoring raw rows, bit for bit', () => {
    for (const head of ['linear', 'mlp', 'knn', 'centroid'] as const) {
      const fitted = fitHead(train, undefined, { head, epochs: 2 }).head as BaseHead;
      const matrix = standardizeAll(fitted.standardizer, train.features, 300, 9);
      expect(Array.from(fitted.scoresOfStandardized(matrix, 300))).toEqual(Array.from(fitted.scores(train.features)));
    }
  });
});
