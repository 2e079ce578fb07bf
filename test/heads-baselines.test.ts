import { describe, expect, it } from 'vitest';
import { CentroidHead } from '../src/heads/centroid.js';
import type { FeatureSet } from '../src/heads/head.js';
import { KNN_VOTE_SMOOTHING, KnnHead } from '../src/heads/knn.js';
import { fitHead } from '../src/train/fit.js';

function set(rows: number[][], labels: number[], numClasses = 2): FeatureSet {
  return {
    features: Float32Array.from(rows.flat()),
    labels: Int32Array.from(labels),
    dim: rows[0].length,
    numClasses,
  };
}

/** The documented knn rule: vote weight 1/(cosine distance + 1e-6), shares mixed with 0.1% uniform. */
const weightAt = (similarity: number) => 1 / (1 - similarity + 1e-6);
const smoothed = (share: number, k: number) => (1 - KNN_VOTE_SMOOTHING) * share + KNN_VOTE_SMOOTHING / k;

describe('knn head', () => {
  // Four unit vectors on the axes; cosine similarity to a query (3, 4)/5 is
  //   r0 (1, 0) label 0: 0.6    r1 (0, 1) label 1: 0.8
  //   r2 (−1, 0) label 1: −0.6  r3 (0, −1) label 0: −0.8
  const train = set(
    [
      [1, 0],
      [0, 1],
      [-1, 0],
      [0, -2], // length does not matter for cosine
    ],
    [0, 1, 1, 0],
  );
  const query = Float32Array.from([3, 4]);

  it('votes with the k most similar rows, weighted by 1/(cosine distance)', () => {
    const head = fitHead(train, undefined, { head: 'knn', k: 2, standardize: false }).head;
    // neighbours r1 (distance 0.2, class 1) and r0 (distance 0.4, class 0)
    const w1 = weightAt(0.8);
    const w0 = weightAt(0.6);
    const p = head.predictProba(query);
    expect(p[1]).toBeCloseTo(smoothed(w1 / (w0 + w1), 2), 6); // ≈ 2/3
    expect(p[0]).toBeCloseTo(smoothed(w0 / (w0 + w1), 2), 6); // ≈ 1/3
    expect(p[1]).toBeCloseTo(2 / 3, 3);
    expect(Array.from(head.predict(query))).toEqual([1]);
    // logits are the log vote shares
    const logits = head.logits(query);
    expect(logits[1]).toBeCloseTo(Math.log(smoothed(w1 / (w0 + w1), 2)), 5);
  });

  it('k = 3 adds the third neighbour r2 (distance 1.6, class 1)', () => {
    const head = fitHead(train, undefined, { head: 'knn', k: 3, standardize: false }).head;
    const [w0, w1, w2] = [weightAt(0.6), weightAt(0.8), weightAt(-0.6)];
    const p = head.predictProba(query);
    expect(p[1]).toBeCloseTo(smoothed((w1 + w2) / (w0 + w1 + w2), 2), 6);
  });

  it('a duplicate of a training row takes its class almost surely; probabilities stay positive', () => {
    const head = fitHead(train, undefined, { head: 'knn', k: 4, standardize: false }).head;
    const p = head.predictProba(Float32Array.from([0, 5]));
    expect(p[1]).toBeGreaterThan(0.999);
    expect(p[0]).toBeGreaterThan(0);
    expect(p[0] + p[1]).toBeCloseTo(1, 6);
  });

  it('clamps k to the training set size and breaks similarity ties toward the earlier row', () => {
    const result = fitHead(train, undefined, { head: 'knn', k: 50, standardize: false });
    expect(result.options.k).toBe(4);
    // Query (1, 0): r1 and r3 tie at similarity 0; with k = 2 the earlier row (r1, class 1) is the second neighbour.
    const head = fitHead(train, undefined, { head: 'knn', k: 2, standardize: false }).head as KnnHead;
    const p = head.predictProba(Float32Array.from([1, 0]));
    const [w0, w1] = [weightAt(1), weightAt(0)];
    expect(p[1]).toBeCloseTo(smoothed(w1 / (w0 + w1), 2), 6);
  });

  it('works on standardised features: a shift in every column does not change predictions', () => {
    const shifted = set(
      [
        [101, 50],
        [100, 51],
        [99, 50],
        [100, 48],
      ],
      [0, 1, 1, 0],
    );
    const head = fitHead(shifted, undefined, { head: 'knn', k: 1 }).head;
    expect(Array.from(head.predict(Float32Array.from([101.1, 50, 100, 51.1])))).toEqual([0, 1]);
  });
});

describe('centroid head', () => {
  // Class 0: (1, 0), (0, 1) → unit mean (½, ½) → centroid (1/√2, 1/√2)
  // Class 1: (−1, 0), (0, −2) → unit rows (−1, 0), (0, −1) → centroid (−1/√2, −1/√2)
  const train = set(
    [
      [1, 0],
      [0, 1],
      [-1, 0],
      [0, -2],
    ],
    [0, 0, 1, 1],
  );

  it('scores cosine similarity to each class mean, times 10', () => {
    const head = fitHead(train, undefined, { head: 'centroid', standardize: false }).head;
    const logits = head.logits(Float32Array.from([2, 0]));
    // cos((1, 0), ±(1, 1)/√2) = ±1/√2
    expect(logits[0]).toBeCloseTo(10 / Math.SQRT2, 5);
    expect(logits[1]).toBeCloseTo(-10 / Math.SQRT2, 5);
    const p = head.predictProba(Float32Array.from([2, 0]));
    // softmax of ±10/√2: p0 = 1 / (1 + e^(−20/√2))
    expect(p[0]).toBeCloseTo(1 / (1 + Math.exp(-20 / Math.SQRT2)), 6);
    expect(Array.from(head.predict(Float32Array.from([2, 0, -1, -3])))).toEqual([0, 1]);
  });

  it('gives a zero query similarity 0 to every class (uniform probabilities)', () => {
    const head = fitHead(train, undefined, { head: 'centroid', standardize: false }).head;
    expect(Array.from(head.predictProba(Float32Array.from([0, 0])))).toEqual([0.5, 0.5]);
  });

  it('gives a class without training rows the lowest possible logit', () => {
    const three = { ...train, numClasses: 3 };
    const head = fitHead(three, undefined, { head: 'centroid', standardize: false }).head as CentroidHead;
    const logits = head.logits(Float32Array.from([-1, 1]));
    expect(logits[0]).toBeCloseTo(0, 6); // orthogonal to both centroids
    expect(logits[1]).toBeCloseTo(0, 6);
    expect(logits[2]).toBe(-10);
  });

  it('records no training history', () => {
    const result = fitHead(train, undefined, { head: 'centroid' });
    expect(result.history).toEqual([]);
    expect(result.bestEpoch).toBe(0);
    expect(result.options).toEqual({ head: 'centroid', standardize: true, seed: 0 });
  });
});
