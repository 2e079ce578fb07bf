import { describe, expect, it } from 'vitest';
import type { FeatureSet } from '../src/heads/head.js';
import { LinearHead } from '../src/heads/linear.js';
import { Standardizer } from '../src/heads/standardizer.js';
import { addL2, fitHead } from '../src/train/fit.js';
import { LinearModel, MlpModel } from '../src/train/models.js';
import {
  Objective,
  type TrainableModel,
  TrainingRows,
  allRows,
  resolveClassWeights,
} from '../src/train/objective.js';
import { Rng } from '../src/util/rng.js';

/** Gaussian blobs: class c centred at `spread`·μ_c (μ_c ~ N(0, I)), unit noise, plus a per-dimension offset and scale. */
function blobs(n: number, dim: number, numClasses: number, spread: number, seed: number): FeatureSet {
  const rng = new Rng(seed);
  const centres = Array.from({ length: numClasses * dim }, () => spread * rng.normal());
  const features = new Float32Array(n * dim);
  const labels = new Int32Array(n);
  for (let r = 0; r < n; r++) {
    const c = r % numClasses;
    labels[r] = c;
    for (let j = 0; j < dim; j++) features[r * dim + j] = (centres[c * dim + j] + rng.normal()) * (1 + j) + 3 * j;
  }
  return { features, labels, dim, numClasses };
}

/** Full-batch objective L(θ) + λ/2‖W‖² over a training set, with its gradient. */
function objectiveOf(model: TrainableModel, rows: TrainingRows, l2 = 0, dropoutSeed?: number) {
  const objective = new Objective(model, rows, rows.n);
  const indices = allRows(rows.n);
  return (params: Float64Array, grad: Float64Array) => {
    const rng = dropoutSeed === undefined ? null : new Rng(dropoutSeed);
    return objective.evaluate(params, indices, 0, rows.n, grad, rng) + addL2(params, grad, model.decayEnd, l2);
  };
}

/** Largest |analytic − central difference| over all parameters, relative to max(1, |gradient|). */
function worstGradientError(f: (p: Float64Array, g: Float64Array) => number, params: Float64Array): number {
  const grad = new Float64Array(params.length);
  f(params, grad);
  const scratch = new Float64Array(params.length);
  const h = 1e-6;
  let worst = 0;
  for (let i = 0; i < params.length; i++) {
    const saved = params[i];
    params[i] = saved + h;
    const up = f(params, scratch);
    params[i] = saved - h;
    const down = f(params, scratch);
    params[i] = saved;
    const numeric = (up - down) / (2 * h);
    worst = Math.max(worst, Math.abs(numeric - grad[i]) / Math.max(1, Math.abs(grad[i])));
  }
  return worst;
}

function randomParams(size: number, seed: number, scale = 0.5): Float64Array {
  const rng = new Rng(seed);
  return Float64Array.from({ length: size }, () => scale * rng.normal());
}

describe('linear head training', () => {
  it('reaches 100% training accuracy on a linearly separable 3-class set', () => {
    // Well separated blobs in 20 dimensions: separable with a wide margin.
    const train = blobs(150, 20, 3, 4, 1);
    const result = fitHead(train, undefined, { head: 'linear' });
    const predicted = result.head.predict(train.features);
    expect(Array.from(predicted)).toEqual(Array.from(train.labels));
    expect(result.history.at(-1)!.trainAccuracy).toBe(1);
    expect(result.options).toMatchObject({ head: 'linear', optimizer: 'adamw', labelSmoothing: 0.1, schedule: 'cosine' });
  });

  it('L-BFGS reaches the exact optimum: gradient of the full objective ≈ 0 at the saved weights', () => {
    const train = blobs(90, 5, 3, 0.8, 2); // overlapping blobs: a finite, unique optimum
    const lambda = 1e-2;
    const result = fitHead(train, undefined, {
      head: 'linear',
      optimizer: 'lbfgs',
      weightDecay: lambda,
      labelSmoothing: 0.1,
      classWeights: 'balanced',
    });
    expect(result.convergence?.reason).toBe('gradient-tolerance');
    expect(result.options).toMatchObject({ optimizer: 'lbfgs', weightDecay: lambda, tolerance: 1e-6 });

    // Rebuild the objective from the head's own state and evaluate it at the saved (float32) weights.
    const head = result.head as LinearHead;
    const state = head.state();
    const standardizer = new Standardizer(state.tensors.mean.data, state.tensors.std.data);
    const model = new LinearModel(5, 3, 0.1);
    const rows = new TrainingRows(train, standardizer, Float64Array.from([1, 1, 1]));
    const params = new Float64Array(model.size);
    params.set(state.tensors.weight.data, 0);
    params.set(state.tensors.bias.data, model.decayEnd);
    const grad = new Float64Array(model.size);
    objectiveOf(model, rows, lambda)(params, grad);
    const gradientNorm = Math.sqrt(grad.reduce((s, g) => s + g * g, 0));
    expect(gradientNorm).toBeLessThan(1e-4);
    // …and it is a minimum: moving any weight either way raises the objective.
    const f = objectiveOf(model, rows, lambda);
    const base = f(params, grad);
    for (const i of [0, 7, model.decayEnd - 1]) {
      for (const step of [1e-2, -1e-2]) {
        const moved = Float64Array.from(params);
        moved[i] += step;
        expect(f(moved, new Float64Array(model.size))).toBeGreaterThan(base);
      }
    }
  });

  it('L-BFGS and AdamW agree on the same convex problem', () => {
    const train = blobs(120, 6, 2, 0.7, 3);
    const lbfgs = fitHead(train, undefined, { optimizer: 'lbfgs', weightDecay: 0, labelSmoothing: 0.1 });
    const adam = fitHead(train, undefined, {
      weightDecay: 0,
      labelSmoothing: 0.1,
      epochs: 400,
      batchSize: 120,
      lr: 0.05,
      schedule: 'cosine',
    });
    const a = lbfgs.head.predictProba(train.features);
    const b = adam.head.predictProba(train.features);
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    expect(worst).toBeLessThan(2e-3);
  });
});

describe('loss gradients match central finite differences (float64)', () => {
  const train = blobs(9, 4, 3, 1, 4);
  const standardizer = Standardizer.fit(train.features, 9, 4);
  const weights = Float64Array.from([1, 2, 0.5]);

  it('linear head, with label smoothing, class weights and L2', () => {
    const model = new LinearModel(4, 3, 0.1);
    const rows = new TrainingRows(train, standardizer, weights);
    expect(worstGradientError(objectiveOf(model, rows, 0.03), randomParams(model.size, 5))).toBeLessThan(1e-7);
  });

  for (const activation of ['relu', 'gelu'] as const) {
    it(`MLP head (${activation}), with dropout, label smoothing and class weights`, () => {
      const model = new MlpModel(4, 6, 3, activation, 0.25, 0.1);
      const rows = new TrainingRows(train, standardizer, weights);
      // The same dropout seed on every evaluation: the mask is fixed, so the loss is a smooth function of θ.
      const f = objectiveOf(model, rows, 0.01, 42);
      expect(worstGradientError(f, randomParams(model.size, 6))).toBeLessThan(1e-7);
    });
  }

  it('without standardisation the raw features are used as they are', () => {
    const model = new LinearModel(4, 3, 0);
    const rows = new TrainingRows(train, null, Float64Array.from([1, 1, 1]));
    expect(worstGradientError(objectiveOf(model, rows), randomParams(model.size, 7, 0.01))).toBeLessThan(1e-7);
  });
});

describe('label smoothing and class weights change the loss as computed by hand', () => {
  // dim 1, two classes, no standardisation. W = [ln 3, 0], b = [0, 0]:
  //   row 1: x = 0, label 0 → logits [0, 0]     → p = [1/2, 1/2]
  //   row 2: x = 1, label 1 → logits [ln 3, 0]  → p = [3/4, 1/4]
  const set: FeatureSet = {
    features: Float32Array.from([0, 1]),
    labels: Int32Array.from([0, 1]),
    dim: 1,
    numClasses: 2,
  };
  const params = Float64Array.from([Math.log(3), 0, 0, 0]);
  const loss = (smoothing: number, classWeights: number[]) => {
    const model = new LinearModel(1, 2, smoothing);
    const rows = new TrainingRows(set, null, Float64Array.from(classWeights));
    return objectiveOf(model, rows)(params, new Float64Array(4));
  };
  const ln2 = Math.LN2;

  it('plain cross-entropy: (ln 2 + ln 4) / 2', () => {
    expect(loss(0, [1, 1])).toBeCloseTo((ln2 + 2 * ln2) / 2, 14);
  });

  it('label smoothing ε = 0.2: targets 0.9/0.1', () => {
    // row 1: −(0.9 ln ½ + 0.1 ln ½) = ln 2
    // row 2: −(0.1 ln ¾ + 0.9 ln ¼) = 0.1 ln(4/3) + 0.9 ln 4
    expect(loss(0.2, [1, 1])).toBeCloseTo((ln2 + 0.1 * Math.log(4 / 3) + 0.9 * 2 * ln2) / 2, 14);
  });

  it('class weights [1, 3]: weighted mean (1·ln 2 + 3·ln 4) / (1 + 3)', () => {
    expect(loss(0, [1, 3])).toBeCloseTo((ln2 + 3 * 2 * ln2) / 4, 14);
  });

  it('both together', () => {
    expect(loss(0.2, [1, 3])).toBeCloseTo((ln2 + 3 * (0.1 * Math.log(4 / 3) + 0.9 * 2 * ln2)) / 4, 14);
  });

  it("'balanced' weights are n / (K · n_c), absent classes get 0", () => {
    const labels = Int32Array.from([0, 0, 0, 0, 0, 0, 0, 0, 1, 1]);
    // 10 / (3·8), 10 / (3·2), class 2 has no rows
    expect(Array.from(resolveClassWeights('balanced', labels, 3))).toEqual([10 / 24, 10 / 6, 0]);
    expect(Array.from(resolveClassWeights('none', labels, 3))).toEqual([1, 1, 1]);
    expect(Array.from(resolveClassWeights([2, 0.5, 1], labels, 3))).toEqual([2, 0.5, 1]);
  });
});
