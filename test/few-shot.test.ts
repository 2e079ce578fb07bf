import { describe, expect, it } from 'vitest';
import { sampleShots } from '../src/data/subsample.js';
import { fewShot, meanStd } from '../src/evaluate/few-shot.js';
import { Rng } from '../src/util/rng.js';
import type { FeatureSet } from '../src/heads/head.js';

function blobs(perClass: number, seed: number): FeatureSet {
  const rng = new Rng(seed);
  const centres = [[3, 0], [0, 3], [-3, -3]];
  const features = new Float32Array(perClass * 3 * 2);
  const labels = new Int32Array(perClass * 3);
  for (let i = 0; i < perClass * 3; i++) {
    const c = i % 3;
    labels[i] = c;
    features[i * 2] = centres[c]![0]! + rng.normal();
    features[i * 2 + 1] = centres[c]![1]! + rng.normal();
  }
  return { features, labels, dim: 2, numClasses: 3 };
}

describe('sampleShots', () => {
  const labels = [0, 1, 0, 1, 0, 1, 2, 2, 2, 2];
  it('takes exactly N of each class, seeded', () => {
    const a = sampleShots(labels, 3, 2, 5);
    expect(a.map((i) => labels[i]).sort()).toEqual([0, 0, 1, 1, 2, 2]);
    expect(sampleShots(labels, 3, 2, 5)).toEqual(a);
    expect(new Set([3, 4, 5, 6, 7].map((seed) => sampleShots(labels, 3, 2, seed).join())).size).toBeGreaterThan(1);
    expect(sampleShots(labels, 3, 'all', 0)).toHaveLength(10);
  });
  it('refuses more shots than a class has', () => {
    expect(() => sampleShots(labels, 3, 4, 0)).toThrow(/class #0 has 3 training example\(s\), fewer than the 4 shots per class/);
    expect(() => sampleShots(labels, 3, 4, 0, ['ants', 'bees', 'wasps'])).toThrow(/class "ants" has 3 training example\(s\), fewer than the 4 shots per class/);
  });
});

describe('fewShot', () => {
  it('reports mean ± std over seeds of heads trained on N examples per class', () => {
    const result = fewShot(blobs(40, 1), blobs(30, 2), ['a', 'b', 'c'], { shots: 5, seeds: [0, 1, 2, 3] });
    expect(result.runs).toHaveLength(4);
    expect(result.runs.every((r) => r.trainSize === 15)).toBe(true);
    expect(result.accuracy.mean).toBeGreaterThan(0.85);
    expect(result.accuracy.mean).toBeCloseTo(meanStd(result.runs.map((r) => r.accuracy)).mean, 12);
  });
  it('computes the sample standard deviation by hand', () => {
    // values 1, 2, 3, 4: mean 2.5, squared deviations 2.25+0.25+0.25+2.25 = 5, / (n-1) = 5/3.
    expect(meanStd([1, 2, 3, 4])).toEqual({ mean: 2.5, std: Math.sqrt(5 / 3) });
    expect(meanStd([7])).toEqual({ mean: 7, std: 0 });
  });
});
