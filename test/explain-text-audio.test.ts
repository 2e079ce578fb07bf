/** Explanations of text (per word) and audio (per time window) predictions. */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Classifier } from '../src/classifier/classifier.js';
import { TextClassifier } from '../src/classifier/text-classifier.js';
import { readTextRecords } from '../src/data/text-dataset.js';
import type { AudioExplanation } from '../src/explain/audio-explainer.js';
import type { TextExplanation } from '../src/explain/text-explainer.js';
import { makeToneFolder, SPEECH_EMBEDDING_FOLDER, tone, wavBytes } from './helpers/audio.js';
import { SHARED, tempDir } from './helpers/images.js';

const GLOVE_20K = join(SHARED, 'models/glove-6b-100d-top20k');
const SMS = join(SHARED, 'data/text/sms-spam/SMSSpamCollection');
const SPAM = 'WINNER!! You have won a free cash prize, call now to claim';

describe('explain: text', () => {
  let data: string;
  let cacheDir: string;
  const opened: Classifier[] = [];
  afterAll(async () => {
    for (const classifier of opened) await classifier.dispose();
  });

  beforeAll(async () => {
    cacheDir = await tempDir();
    const { records } = await readTextRecords(SMS);
    const quote = (s: string) => `"${s.replace(/"/g, '""')}"`;
    data = join(cacheDir, 'sms.csv');
    await writeFile(data, `text,label\n${records.slice(0, 800).map((r) => `${quote(r.text)},${r.label}`).join('\n')}\n`);
  });

  it('word vectors + linear head: per-word contributions add up to the logit exactly, and spam words carry the spam label', async () => {
    const classifier = await TextClassifier.train({ data, backbone: GLOVE_20K, cacheDir });
    opened.push(classifier);
    const explanation = (await classifier.explain(SPAM, { target: 'spam' })) as TextExplanation;
    expect(explanation.method).toBe('word-contributions');
    expect(explanation.words.map((w) => w.text)).toEqual(SPAM.split(' '));
    expect(explanation.words.map((w) => SPAM.slice(w.start, w.end))).toEqual(SPAM.split(' '));
    // The logit the head itself computes, calibrated as predict is.
    const features = await classifier.backbone.forward([await classifier.backbone.prepare(SPAM)]);
    const logit = classifier.head.logits(features)[classifier.labels.indexOf('spam')]! / (classifier.manifest.calibration?.temperature ?? 1);
    const total = explanation.words.reduce((sum, w) => sum + w.score, 0) + explanation.constant!;
    expect(Math.abs(total - logit)).toBeLessThan(1e-4 * Math.max(1, Math.abs(logit)));
    const strongest = [...explanation.words].sort((a, b) => b.score - a.score).slice(0, 4).map((w) => w.text.toLowerCase().replace(/[^a-z]/g, ''));
    expect(strongest.some((word) => ['winner', 'won', 'free', 'cash', 'prize', 'claim', 'call'].includes(word)), strongest.join(', ')).toBe(true);
  }, 60_000);

  it('leave-one-out otherwise (TF-IDF): each score is the probability lost without the word', async () => {
    const classifier = await TextClassifier.train({ data, backbone: 'tfidf', cacheDir, tfidf: { maxFeatures: 800 } });
    opened.push(classifier);
    const explanation = (await classifier.explain(SPAM, { target: 'spam' })) as TextExplanation;
    expect(explanation.method).toBe('leave-one-out');
    const third = explanation.words[3]!;
    const without = SPAM.slice(0, third.start) + SPAM.slice(third.end);
    const [p] = await classifier.predictProbabilities([without]).then((rows) => [rows[classifier.labels.indexOf('spam')]!]);
    expect(third.score).toBeCloseTo(explanation.probability - p!, 6);
    await expect(classifier.explain(SPAM, { method: 'gradcam' })).rejects.toThrow(/does not explain text models/);
  }, 60_000);
});

describe('explain: audio', () => {
  it('occlusion over time: silencing silence costs nothing, each score is the probability lost, silencing sound moves it', async () => {
    const root = await tempDir();
    await makeToneFolder(join(root, 'tones'), [300, 1200], 8);
    const classifier = await Classifier.train({ task: 'audio', data: join(root, 'tones'), backbone: SPEECH_EMBEDDING_FOLDER, cacheDir: join(root, 'cache'), validationFraction: 0.25 });
    try {
      const rate = 16_000;
      const clip = new Float32Array(Math.round(1.2 * rate));
      clip.set(tone(1200, rate, 0.4, 0.3), 0);
      const explanation = (await classifier.explain(wavBytes([clip], rate, '32f'), { target: '1200hz', seconds: { window: 0.2, stride: 0.2 } })) as AudioExplanation;
      expect(explanation.duration).toBeCloseTo(1.2, 3);
      expect(explanation.windows.map((w) => [w.start, w.end])).toEqual([[0, 0.2], [0.2, 0.4], [0.4, 0.6], [0.6, 0.8], [0.8, 1], [1, 1.2]]);
      for (const window of explanation.windows.filter((w) => w.start >= 0.4)) expect(window.score).toBe(0);
      const silenced = clip.slice();
      silenced.fill(0, 0, Math.round(0.2 * rate));
      const [p] = await classifier.predictProbabilities([wavBytes([silenced], rate, '32f')]).then((rows) => [rows[classifier.labels.indexOf('1200hz')]!]);
      expect(explanation.windows[0]!.score).toBeCloseTo(explanation.probability - p!, 5);
      // Silencing part of the sound does move the prediction.
      for (const window of explanation.windows.filter((w) => w.end <= 0.4)) expect(Math.abs(window.score)).toBeGreaterThan(1e-6);
    } finally {
      await classifier.dispose();
    }
  }, 60_000);
});
