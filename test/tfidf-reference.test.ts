import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { TfidfFeatureMap } from '../src/backbones/text-tfidf.js';
import { tfidfFitDefaults } from '../src/classifier/text-classifier.js';
import { computeMetrics } from '../src/evaluate/metrics.js';
import { sparseRows } from '../src/features/sparse.js';
import { fitHead } from '../src/train/fit.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SMS = join(ROOT, '../shared/data/text/sms-spam/SMSSpamCollection');

interface Reference {
  train: number;
  test: number;
  terms: number;
  idf: Record<string, number>;
  rows: Record<string, Record<string, number>>;
  accuracy: number;
  spamF1: number;
  spamProbability: number[];
}

/** scikit-learn's uncapped TF-IDF + LogisticRegression on a fixed SMS spam split (tools/tfidf-reference.py). */
describe('TF-IDF + linear head against scikit-learn (SMS spam, 1,500 train / 500 test messages)', async () => {
  const reference = JSON.parse(await readFile(join(ROOT, 'test/fixtures/tfidf/sklearn-sms.json'), 'utf8')) as Reference;
  const rows = (await readFile(SMS, 'utf8')).split('\n').filter(Boolean).map((line) => line.split('\t') as [string, string]);
  const train = rows.slice(0, reference.train);
  const test = rows.slice(reference.train, reference.train + reference.test);
  const map = TfidfFeatureMap.fit(train.map(([, text]) => text));

  it('keeps every term with scikit-learn idf and row values', () => {
    expect(map.dim).toBe(reference.terms);
    const index = new Map(map.state.terms.map((term, i) => [term, i]));
    for (const [term, idf] of Object.entries(reference.idf)) expect(map.state.idf[index.get(term)!]).toBeCloseTo(idf, 10);
    for (const [r, expected] of Object.entries(reference.rows)) {
      const row = map.transformSparse(test[Number(r)]![1]);
      const ours = Object.fromEntries(Array.from(row.indices, (i, e) => [map.state.terms[i]!, row.values[e]!]));
      expect(Object.keys(ours).sort()).toEqual(Object.keys(expected).sort());
      // float32 values against float64 ones.
      for (const [term, value] of Object.entries(expected)) expect(ours[term]).toBeCloseTo(value, 5);
    }
  });

  it('scores as LogisticRegression(C = 1) does: accuracy within 0.5 point, the same probabilities to 0.02', () => {
    const classes = ['ham', 'spam'];
    const setOf = (part: [string, string][]) => ({
      features: sparseRows(part.map(([, text]) => map.transformSparse(text)), map.dim),
      labels: Int32Array.from(part, ([label]) => classes.indexOf(label)),
      dim: map.dim,
      numClasses: 2,
    });
    const testSet = setOf(test);
    const { head } = fitHead(setOf(train), undefined, tfidfFitDefaults(train.length, 2));
    const probabilities = head.predictProba(testSet.features);
    const metrics = computeMetrics(testSet.labels, probabilities, classes);
    expect(Math.abs(metrics.accuracy - reference.accuracy)).toBeLessThanOrEqual(0.005);
    let worst = 0;
    reference.spamProbability.forEach((p, i) => (worst = Math.max(worst, Math.abs(probabilities[2 * i + 1]! - p))));
    expect(worst).toBeLessThan(0.02);
  });
});
