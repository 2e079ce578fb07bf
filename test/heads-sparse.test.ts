import { describe, expect, it } from 'vitest';
import { type SparseRows, selectRows, sparseRows, toDense } from '../src/features/sparse.js';
import type { FeatureSet } from '../src/heads/head.js';
import { Standardizer } from '../src/heads/standardizer.js';
import { fitHead } from '../src/train/fit.js';
import { LinearModel } from '../src/train/models.js';
import { Objective, TrainingRows, allRows } from '../src/train/objective.js';
import { Rng } from '../src/util/rng.js';
import { HeadstartError } from '../src/util/errors.js';

function expectError(fn: () => unknown, kind: string, message: RegExp): void {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(HeadstartError);
  expect((thrown as HeadstartError).kind).toBe(kind);
  expect((thrown as Error).message).toMatch(message);
}

/** Bag-of-words-like rows: each class favours its own columns, ~8 of 60 columns non-zero per row. */
function sparseProblem(n: number, dim: number, numClasses: number, seed: number): { sparse: FeatureSet; dense: FeatureSet } {
  const rng = new Rng(seed);
  const labels = new Int32Array(n);
  const rows = Array.from({ length: n }, (_, r) => {
    const c = r % numClasses;
    labels[r] = c;
    const columns = new Set<number>();
    while (columns.size < 8) {
      const favoured = rng.next() < 0.4;
      columns.add(favoured ? c * 5 + Math.floor(rng.next() * 5) : Math.floor(rng.next() * dim));
    }
    const indices = Int32Array.from([...columns].sort((a, b) => a - b));
    return { indices, values: Float32Array.from(indices, () => 0.1 + rng.next()) };
  });
  const matrix = sparseRows(rows, dim);
  return {
    sparse: { features: matrix, labels, dim, numClasses },
    dense: { features: toDense(matrix), labels, dim, numClasses },
  };
}

describe('the linear head on sparse rows', () => {
  const { sparse, dense } = sparseProblem(240, 60, 3, 1);
  const validation = sparseProblem(90, 60, 3, 2);

  it('gives the dense objective and gradient on the same rows', () => {
    const model = new LinearModel(60, 3, 0.1);
    const params = Float64Array.from({ length: model.size }, (_, i) => Math.sin(i) * 0.3);
    const evaluate = (set: FeatureSet) => {
      const rows = new TrainingRows(set, null, new Float64Array([1, 2, 0.5]));
      const grad = new Float64Array(model.size);
      const loss = new Objective(model, rows, rows.n).evaluate(params, allRows(rows.n), 0, rows.n, grad);
      return { loss, grad };
    };
    const fromSparse = evaluate(sparse);
    const fromDense = evaluate(dense);
    expect(fromSparse.loss).toBeCloseTo(fromDense.loss, 12);
    for (let i = 0; i < model.size; i++) expect(fromSparse.grad[i]).toBeCloseTo(fromDense.grad[i]!, 12);
  });

  for (const optimizer of ['adamw', 'lbfgs'] as const) {
    it(`trains the same head as on dense rows (${optimizer})`, () => {
      const options = { optimizer, standardize: false, epochs: optimizer === 'adamw' ? 20 : 100, seed: 3 };
      const a = fitHead(sparse, validation.sparse, options);
      const b = fitHead(dense, validation.dense, options);
      const wa = a.head.state().tensors.weight!.data;
      const wb = b.head.state().tensors.weight!.data;
      for (let i = 0; i < wa.length; i++) expect(wa[i]).toBeCloseTo(wb[i]!, 4);
      expect(a.history.map((h) => h.valLoss)).toEqual(b.history.map((h) => expect.closeTo(h.valLoss!, 8)));
      // Scored sparse or dense, the head gives the same probabilities.
      const pa = a.head.predictProba(validation.sparse.features);
      const pb = a.head.predictProba(validation.dense.features);
      for (let i = 0; i < pa.length; i++) expect(pa[i]).toBeCloseTo(pb[i]!, 6);
      expect(a.history.at(-1)!.valAccuracy).toBeGreaterThan(0.8);
    });
  }

  it('standardises sparse rows as it does dense ones, and every head accepts them', () => {
    const fromSparse = Standardizer.fit(sparse.features, 240, 60);
    const fromDense = Standardizer.fit(dense.features, 240, 60);
    for (let j = 0; j < 60; j++) {
      expect(fromSparse.mean[j]).toBeCloseTo(fromDense.mean[j]!, 6);
      expect(fromSparse.std[j]).toBeCloseTo(fromDense.std[j]!, 6);
    }
    for (const head of ['linear', 'mlp', 'knn', 'centroid'] as const) {
      const options = { head, epochs: 5, seed: 0 };
      const a = fitHead(sparse, undefined, options).head.predictProba(validation.sparse.features);
      const b = fitHead(dense, undefined, options).head.predictProba(validation.dense.features);
      for (let i = 0; i < a.length; i++) expect(a[i]).toBeCloseTo(b[i]!, 5);
    }
  });

  it('keeps rows selected from a sparse matrix sparse', () => {
    const picked = selectRows(sparse.features, 60, [5, 0, 5]) as SparseRows;
    expect(picked.kind).toBe('csr');
    const full = toDense(sparse.features as SparseRows);
    expect(Array.from(toDense(picked).subarray(0, 60))).toEqual(Array.from(full.subarray(300, 360)));
    expect(Array.from(toDense(picked).subarray(60, 120))).toEqual(Array.from(full.subarray(0, 60)));
  });

  it('rejects malformed sparse rows, and dense fallbacks too large to hold', () => {
    const bad = sparse.features as SparseRows;
    const unordered = { ...bad, indices: Int32Array.from(bad.indices, (c, e) => (e === 1 ? 99 : c)) };
    expectError(() => fitHead({ ...sparse, features: unordered }, undefined, { standardize: false }), 'data', /training set: row 0 has column 99 out of order or outside 0..59/);
    const wide: FeatureSet = { ...sparse, dim: 2 ** 23, features: { ...bad, dim: 2 ** 23 } };
    expectError(() => fitHead(wide, undefined, { head: 'knn' }), 'usage', /knn head needs the 240×8388608 sparse training rows as dense ones/);
  });
});
