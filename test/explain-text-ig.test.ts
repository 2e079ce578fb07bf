/**
 * Integrated gradients on the token embeddings of a transformer text classifier
 * (bert-tiny-random): the gradient and the per-token attributions against PyTorch autograd of the
 * fixture's twin (float64, test/fixtures/explain/bert-tiny-ig.json from
 * tools/explain-text-reference.py), completeness, and the per-word explanation a trained
 * classifier gives.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { TransformerTextBackbone } from '../src/backbones/text-transformer.js';
import { openTextBackbone } from '../src/backbones/text-resolve.js';
import { TextClassifier } from '../src/classifier/text-classifier.js';
import { readTextRecords } from '../src/data/text-dataset.js';
import { TextAttribution } from '../src/explain/text-integrated-gradients.js';
import type { TextExplanation } from '../src/explain/text-explainer.js';
import { SHARED, tempDir } from './helpers/images.js';
import { patternHead } from './helpers/pattern-head.js';

const BERT = join(SHARED, 'models/bert-tiny-random');
const REFERENCE = fileURLToPath(new URL('./fixtures/explain/bert-tiny-ig.json', import.meta.url));
const SPAM = 'WINNER!! You have won a free cash prize, call now to claim';

const relativeL2 = (ours: ArrayLike<number>, theirs: ArrayLike<number>) => {
  let error = 0;
  let norm = 0;
  for (let i = 0; i < theirs.length; i++) {
    error += (ours[i]! - theirs[i]!) ** 2;
    norm += theirs[i]! ** 2;
  }
  return Math.sqrt(error / norm);
};

describe('explain: integrated gradients on transformer token embeddings', () => {
  it('bert-tiny-random: gradient and token attributions match PyTorch autograd (float64) within 1e-4; completeness within 1 % at 32 steps', async () => {
    const reference = JSON.parse(await readFile(REFERENCE, 'utf8')) as { ids: number[]; target: number; logits: number[]; baselineLogit: number; grad: number[]; tokens: number[] };
    const backbone = (await openTextBackbone(BERT, { cacheDir: await tempDir(), threads: 2 })) as TransformerTextBackbone;
    expect(backbone).toBeInstanceOf(TransformerTextBackbone);
    expect(backbone.preprocessing.pooling).toBe('mean');
    expect(backbone.tokenizer.encode('The cat sat.').ids).toEqual(reference.ids);
    const attribution = await TextAttribution.create(backbone, patternHead(backbone.reference.featureDim), 1, 2);
    try {
      const { logits, gradient } = await attribution.run(attribution.embed(reference.ids), reference.ids, reference.target);
      expect(relativeL2(logits, reference.logits)).toBeLessThan(1e-5);
      expect(relativeL2(gradient, reference.grad)).toBeLessThan(1e-4);
      const keep = new Set([0, reference.ids.length - 1]);
      const ig = await attribution.integratedGradients(reference.ids, reference.target, { steps: 32, padId: backbone.tokenizer.padId, keep });
      expect(ig.tokens[0]).toBe(0);
      expect(ig.tokens[reference.ids.length - 1]).toBe(0);
      expect(relativeL2(ig.tokens, reference.tokens)).toBeLessThan(1e-4);
      expect(ig.baselineLogit).toBeCloseTo(reference.baselineLogit, 5);
      console.log(`bert-tiny-random, 32 steps: Σ = ${ig.completeness.sum.toFixed(7)}, f(x) − f(x′) = ${ig.completeness.expected.toFixed(7)}, ${(100 * ig.completeness.relativeError).toFixed(4)} % apart`);
      expect(ig.completeness.relativeError).toBeLessThan(0.01);
    } finally {
      await attribution.release();
      await backbone.dispose();
    }
  }, 120_000);

  it('a trained BERT classifier explains a text per word by default, words adding up to f(x) − f(baseline)', async () => {
    const root = await tempDir();
    const { records } = await readTextRecords(join(SHARED, 'data/text/sms-spam/SMSSpamCollection'));
    const quote = (s: string) => `"${s.replace(/"/g, '""')}"`;
    await writeFile(join(root, 'sms.csv'), `text,label\n${records.slice(0, 300).map((r) => `${quote(r.text)},${r.label}`).join('\n')}\n`);
    const classifier = await TextClassifier.train({ data: join(root, 'sms.csv'), backbone: BERT, cacheDir: join(root, 'cache') });
    try {
      const explanation = (await classifier.explain(SPAM, { target: 'spam' })) as TextExplanation;
      expect(explanation.method).toBe('integrated-gradients');
      expect(explanation.unit).toBe('logit');
      expect(explanation.words.map((w) => SPAM.slice(w.start, w.end))).toEqual(SPAM.split(' '));
      const total = explanation.words.reduce((sum, w) => sum + w.score, 0);
      expect(total).toBeCloseTo(explanation.completeness!.sum, 6);
      expect(explanation.completeness!.relativeError).toBeLessThan(0.01);
      // The logit the explanation starts from is the one predict calibrates.
      const probabilities = await classifier.predictProbabilities([SPAM]);
      expect(explanation.probability).toBeCloseTo(probabilities[classifier.labels.indexOf('spam')]!, 5);
      const loo = (await classifier.explain(SPAM, { target: 'spam', method: 'leave-one-out' })) as TextExplanation;
      expect(loo.method).toBe('leave-one-out');
    } finally {
      await classifier.dispose();
    }
  }, 180_000);
});
