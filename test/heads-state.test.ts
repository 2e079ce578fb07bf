import { describe, expect, it } from 'vitest';
import { type FeatureSet, type HeadState, type HeadType, headFromState } from '../src/heads/head.js';
import { fitHead } from '../src/train/fit.js';
import { HeadstartError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';

function randomSet(n: number, dim: number, numClasses: number, seed: number): FeatureSet {
  const rng = new Rng(seed);
  const features = Float32Array.from({ length: n * dim }, (_, i) => rng.normal() + (i % dim) * 0.5);
  const labels = Int32Array.from({ length: n }, (_, i) => i % numClasses);
  for (let r = 0; r < n; r++) features[r * dim + (labels[r] % dim)] += 2;
  return { features, labels, dim, numClasses };
}

/** What a model folder does: config through JSON, tensors through a byte copy. */
function roundTrip(state: HeadState): HeadState {
  const tensors: HeadState['tensors'] = {};
  for (const [name, t] of Object.entries(state.tensors)) {
    tensors[name] = { shape: [...t.shape], data: new Float32Array(Uint8Array.from(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)).buffer) };
  }
  return { type: state.type, config: JSON.parse(JSON.stringify(state.config)), tensors };
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return x.every((v, i) => v === y[i]);
}

const train = randomSet(60, 7, 3, 1);
const test = randomSet(25, 7, 3, 2);

describe('headFromState(head.state())', () => {
  const cases: Array<[HeadType, Record<string, unknown>]> = [
    ['linear', {}],
    ['linear', { standardize: false, optimizer: 'lbfgs' }],
    ['mlp', { epochs: 5, hiddenUnits: 9 }],
    ['mlp', { epochs: 5, hiddenUnits: 6, activation: 'gelu', standardize: false }],
    ['knn', { k: 4 }],
    ['centroid', { standardize: false }],
  ];
  for (const [type, options] of cases) {
    it(`rebuilds a ${type} head ${JSON.stringify(options)} with identical outputs`, () => {
      const head = fitHead(train, undefined, { head: type, ...options }).head;
      const rebuilt = headFromState(roundTrip(head.state()));
      expect(rebuilt.type).toBe(type);
      expect(rebuilt.dim).toBe(7);
      expect(rebuilt.numClasses).toBe(3);
      expect(sameBits(rebuilt.predictProba(test.features), head.predictProba(test.features))).toBe(true);
      expect(sameBits(rebuilt.logits(test.features), head.logits(test.features))).toBe(true);
      const p = head.predictProba(test.features);
      for (let r = 0; r < 25; r++) expect(p[r * 3] + p[r * 3 + 1] + p[r * 3 + 2]).toBeCloseTo(1, 6);
    });
  }

  it('carries the standardisation inside the head (a saved head needs nothing else)', () => {
    const state = fitHead(train, undefined, { head: 'linear' }).head.state();
    expect(state.config.standardize).toBe(true);
    expect(state.tensors.mean.shape).toEqual([7]);
    expect(state.tensors.std.shape).toEqual([7]);
    expect(Object.keys(state.tensors).sort()).toEqual(['bias', 'mean', 'std', 'weight']);
  });
});

describe('headFromState rejects malformed states with a clear model error', () => {
  const linear = () => roundTrip(fitHead(train, undefined, { head: 'linear', optimizer: 'lbfgs' }).head.state());
  const mlp = () => roundTrip(fitHead(train, undefined, { head: 'mlp', epochs: 1, hiddenUnits: 4 }).head.state());
  const knn = () => roundTrip(fitHead(train, undefined, { head: 'knn' }).head.state());

  const expectModelError = (state: unknown, message: RegExp) => {
    let thrown: unknown;
    try {
      headFromState(state as HeadState);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(HeadstartError);
    expect((thrown as HeadstartError).kind).toBe('model');
    expect((thrown as Error).message).toMatch(message);
  };

  it('unknown type', () => {
    expectModelError({ ...linear(), type: 'svm' }, /unknown head type "svm" \(expected one of linear, mlp, knn, centroid\)/);
  });

  it('missing config or tensors', () => {
    expectModelError({ type: 'linear', tensors: {} }, /no config object/);
    expectModelError({ type: 'linear', config: {} }, /no tensors object/);
    expectModelError(null, /not an object/);
  });

  it('bad config values', () => {
    const s = linear();
    s.config.dim = 7.5;
    expectModelError(s, /malformed linear head state: config.dim must be an integer >= 1, got 7.5/);
    const t = linear();
    delete t.config.standardize;
    expectModelError(t, /config.standardize must be true or false/);
    const m = mlp();
    m.config.activation = 'tanh';
    expectModelError(m, /config.activation must be one of relu, gelu, got "tanh"/);
  });

  it('missing tensor, wrong shape, wrong length, non-finite values', () => {
    const missing = linear();
    delete missing.tensors.bias;
    expectModelError(missing, /missing tensor "bias"/);
    const shape = linear();
    shape.tensors.weight.shape = [7, 3];
    expectModelError(shape, /tensor "weight" has shape \[7,3\], expected \[3, 7\]/);
    const length = mlp();
    length.tensors.hiddenBias.data = new Float32Array(3);
    expectModelError(length, /tensor "hiddenBias" holds 3 values, its shape \[4\] needs 4/);
    const nan = linear();
    nan.tensors.weight.data[5] = Number.NaN;
    expectModelError(nan, /tensor "weight" has a non-finite value at index 5/);
    const notTyped = linear();
    (notTyped.tensors.bias as { data: unknown }).data = [0, 0, 0];
    expectModelError(notTyped, /tensor "bias" data is not a Float32Array/);
  });

  it('zero std, stray tensors, bad knn labels', () => {
    const std = linear();
    std.config.standardize = true;
    std.tensors.mean = { shape: [7], data: new Float32Array(7) };
    std.tensors.std = { shape: [7], data: new Float32Array(7) };
    expectModelError(std, /tensor "std" must be positive, index 0 is 0/);
    const stray = linear();
    stray.tensors.extra = { shape: [1], data: new Float32Array(1) };
    expectModelError(stray, /unexpected tensor "extra"/);
    const labels = knn();
    labels.tensors.referenceLabels.data[3] = 3;
    expectModelError(labels, /referenceLabels\[3\] = 3 is not a class index below 3/);
  });
});
