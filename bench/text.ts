/**
 * The text section of `npm run bench`: sentences/s of the encoders, and the targets with the
 * TF-IDF baseline beside them. Prints only; nothing is asserted.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Backbone } from '../src/backbones/backbone.js';
import { openTextBackbone } from '../src/backbones/text-resolve.js';
import { TransformerTextBackbone } from '../src/backbones/text-transformer.js';
import { formatFewShot, runFewShot } from '../src/classifier/few-shot-run.js';
import { TextClassifier, type BaselineReport } from '../src/classifier/text-classifier.js';
import { readTextRecords, type TextDatasetOptions } from '../src/data/text-dataset.js';
import type { ClassificationMetrics } from '../src/evaluate/metrics.js';
import { extractFeatures } from '../src/features/extract.js';

const SHARED = fileURLToPath(new URL('../../shared/', import.meta.url));
const TEXT = join(SHARED, 'data/text');
const BERT_TINY = join(SHARED, 'models/bert-tiny-random');

const line = (label: string, value: string, note = '') => console.log(`${label.padEnd(58)} ${value.padStart(14)}  ${note}`);
const section = (title: string) => console.log(`\n## ${title}`);

/** Sentences/s of feature extraction (tokenise + forward + pool, no cache), best of three passes. */
async function sentencesPerSecond(backbone: Backbone<string, unknown>, texts: string[]): Promise<number> {
  const items = texts.map((text, i) => ({ source: `#${i}`, load: async () => text }));
  let best = 0;
  for (let pass = 0; pass < 3; pass++) best = Math.max(best, texts.length / (await extractFeatures(backbone, items)).seconds);
  return best;
}

const SETS: { name: string; data: string; options: TextDatasetOptions; score: (m: ClassificationMetrics) => number; metric: string; target: number }[] = [
  { name: 'SST-2', data: join(TEXT, 'sst2'), options: {}, score: (m) => m.accuracy, metric: 'accuracy', target: 0.75 },
  {
    name: 'AG News',
    data: join(TEXT, 'agnews/dev.tsv'),
    options: { test: join(TEXT, 'agnews/test.tsv') },
    score: (m) => m.accuracy,
    metric: 'accuracy',
    target: 0.87,
  },
  {
    name: 'SMS spam',
    data: join(TEXT, 'sms-spam/SMSSpamCollection'),
    options: { testFraction: 0.2 },
    score: (m) => m.perClass.find((c) => c.label === 'spam')!.f1,
    metric: 'spam F1',
    target: 0.9,
  },
];

export async function textBench(): Promise<void> {
  const cacheDir = await mkdtemp(join(tmpdir(), 'headstart-bench-text-'));
  const sst2 = (await readTextRecords(join(TEXT, 'sst2/test.tsv'))).records.map((r) => r.text);
  const agnews = (await readTextRecords(join(TEXT, 'agnews/test.tsv'))).records.map((r) => r.text);

  section('Text encoders: sentences/s of feature extraction (tokenise + forward + pool, no cache)');
  const converting = performance.now();
  const glove = await openTextBackbone('builtin:glove-6b-100d', { cacheDir });
  line('builtin:glove-6b-100d: first use (convert wink JSON → binary)', `${((performance.now() - converting) / 1000).toFixed(1)} s`, '(once per cache)');
  const reopening = performance.now();
  await (await openTextBackbone('builtin:glove-6b-100d', { cacheDir })).dispose();
  line('builtin:glove-6b-100d: later opens (read the binary)', `${((performance.now() - reopening) / 1000).toFixed(2)} s`);
  line('GloVe SIF ⊕ max ⊕ min pooling, SST-2 test (short)', `${(await sentencesPerSecond(glove, sst2)).toFixed(0)} sent/s`);
  line('GloVe SIF ⊕ max ⊕ min pooling, AG News test (~40 words)', `${(await sentencesPerSecond(glove, agnews)).toFixed(0)} sent/s`);
  await glove.dispose();
  const bert = (await openTextBackbone(BERT_TINY, { cacheDir })) as TransformerTextBackbone;
  const tokenising = performance.now();
  for (const text of agnews) bert.tokenizer.encode(text);
  line('bert-tiny-random: tokenisation alone, AG News test', `${(agnews.length / ((performance.now() - tokenising) / 1000)).toFixed(0)} sent/s`);
  line('bert-tiny-random (2 layers, 128-d), SST-2 test', `${(await sentencesPerSecond(bert, sst2)).toFixed(0)} sent/s`);
  line('bert-tiny-random, AG News test', `${(await sentencesPerSecond(bert, agnews)).toFixed(0)} sent/s`);
  await bert.dispose();

  section(
    'Targets: test scores, linear head, default builtin:glove-6b-100d; TF-IDF baseline (same split, same head) beside. SST-2: test 872, trained on train; AG News: official test 7,600, trained on dev 10k; SMS spam: 80/20 stratified, seed 0',
  );
  for (const set of SETS) {
    const started = performance.now();
    const classifier = await TextClassifier.train({ data: set.data, datasetOptions: set.options, cacheDir, cache: false, baseline: true });
    const seconds = (performance.now() - started) / 1000;
    const baseline = classifier.manifest.training.baseline as BaselineReport;
    const score = set.score(classifier.metrics.test!);
    line(`${set.name}: GloVe ${set.metric}`, score.toFixed(4), `(target ≥ ${set.target}) ${score >= set.target ? 'met' : 'MISSED'}; ${seconds.toFixed(1)} s with the baseline`);
    line(`${set.name}: TF-IDF ${set.metric}`, set.score(baseline.metrics.test!).toFixed(4), `${baseline.featureOutput}, ${baseline.seconds.toFixed(1)} s`);
    await classifier.dispose();
    const fixture = await TextClassifier.train({ data: set.data, datasetOptions: set.options, backbone: BERT_TINY, cacheDir, cache: false });
    line(`${set.name}: bert-tiny-random ${set.metric}`, set.score(fixture.metrics.test!).toFixed(4), '(random weights: a pipeline check, not a model)');
    await fixture.dispose();
  }

  section('Few-shot protocol on SST-2 (8 texts per class × 5 seeds, scored on the 872 test sentences)');
  const report = await runFewShot({ task: 'text', data: join(TEXT, 'sst2'), shots: 8, seeds: 5, cacheDir, cache: false, baseline: true });
  console.log(formatFewShot(report, 'texts'));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await textBench();
