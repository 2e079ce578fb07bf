/**
 * The text section of `npm run bench`: sentences/s of the encoders, and the issue's targets with the
 * TF-IDF baseline beside them. Prints only; nothing is asserted.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Backbone } from '../src/backbones/backbone.js';
import { openTextBackbone } from '../src/backbones/text-resolve.js';
import { TransformerTextBackbone } from '../src/backbones/text-transformer.js';
import { formatFewShot, runFewShot } from '../src/classifier/few-shot-run.js';
import { TextClassifier, trainTfidfBaseline, type BaselineReport } from '../src/classifier/text-classifier.js';
import { readTextDataset, readTextRecords, type TextDatasetOptions } from '../src/data/text-dataset.js';
import type { LabelledItem } from '../src/data/dataset.js';
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

const PYTHON = process.env.HEADSTART_PYTHON ?? '/work/pyenv/bin/python';

/** Writes items as {"text", "label"} lines for bench/sklearn_tfidf.py. */
async function writeSplit(items: LabelledItem<string>[], classes: string[], file: string): Promise<void> {
  const lines = await Promise.all(items.map(async (item) => JSON.stringify({ text: await item.load(), label: classes[item.label] })));
  await writeFile(file, lines.join('\n') + '\n');
}

/**
 * The TF-IDF baseline (every term, sparse rows, L-BFGS linear head) against scikit-learn's
 * TfidfVectorizer + LogisticRegression on the very same training and test texts, both run now.
 */
export async function tfidfBench(cacheDir: string): Promise<void> {
  section('TF-IDF baseline vs scikit-learn (word 1–2 + char 2–4-grams, sublinear tf, uncapped; LogisticRegression C=1), same training and test texts, same run');
  for (const set of SETS) {
    const dataset = await readTextDataset(set.data, { ...set.options, seed: 0 });
    const cpu0 = process.cpuUsage();
    const baseline = await trainTfidfBaseline(dataset, { seed: 0, cacheDir });
    const cpu = process.cpuUsage(cpu0);
    const ours = set.score(baseline.metrics.test!);
    const train = join(cacheDir, 'sklearn-train.jsonl');
    const test = join(cacheDir, 'sklearn-test.jsonl');
    await writeSplit(dataset.train, dataset.classes, train);
    await writeSplit(dataset.test!, dataset.classes, test);
    let reference: { terms: number; accuracy: number; f1: Record<string, number>; seconds: number; cpuSeconds: number } | undefined;
    try {
      reference = JSON.parse(execFileSync(PYTHON, [fileURLToPath(new URL('sklearn_tfidf.py', import.meta.url)), train, test], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }));
    } catch (error) {
      line(`${set.name}: scikit-learn`, 'n/a', `(${PYTHON} failed: ${(error as Error).message.split('\n')[0]})`);
    }
    const theirs = reference && (set.metric === 'accuracy' ? reference.accuracy : reference.f1['spam']!);
    line(`${set.name}: headstart TF-IDF ${set.metric}`, ours.toFixed(4), `${baseline.featureOutput}; ${baseline.seconds.toFixed(1)} s wall, ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s CPU (fit map + features + head + metrics)`);
    if (reference && theirs !== undefined) {
      line(`${set.name}: scikit-learn ${set.metric}`, theirs.toFixed(4), `${reference.terms} terms, ${reference.seconds.toFixed(1)} s wall, ${reference.cpuSeconds.toFixed(1)} s CPU; headstart − scikit-learn = ${((ours - theirs) * 100).toFixed(1)} points (target ≥ −0.5)`);
    }
    const capped = await trainTfidfBaseline(dataset, { seed: 0, cacheDir, tfidf: { maxFeatures: 5000 } });
    line(`${set.name}: headstart TF-IDF, --max-terms 5000`, set.score(capped.metrics.test!).toFixed(4), `${capped.seconds.toFixed(1)} s`);
  }
}

/**
 * The first `count` whole sentences of SST-2's training file (six words or more: the file also lists
 * phrases), as a TSV file in `dir` — the text fine-tuning bench's set and test/text-finetune.test.ts's.
 */
export async function sst2SentenceFile(dir: string, count: number): Promise<string> {
  const { records } = await readTextRecords(join(TEXT, 'sst2/train.tsv'));
  const picked = records.filter((record) => record.text.split(' ').length >= 6).slice(0, count);
  const file = join(dir, `sst2-${count}.tsv`);
  await writeFile(file, `sentence\tlabel\n${picked.map((record) => `${record.text}\t${record.label}`).join('\n')}\n`);
  return file;
}

/** `--unfreeze auto` on text: frozen head against the fine-tuned encoder, seeds 0, 1, 2 (each its own 80/20 split). */
export async function textFineTuneBench(cacheDir: string): Promise<void> {
  section('Text fine-tuning (--unfreeze auto): bert-tiny-random, the first 1,000 SST-2 training sentences (800 train / 200 validation per seed), validation accuracy');
  const data = await sst2SentenceFile(cacheDir, 1000);
  const frozen: number[] = [];
  const tuned: number[] = [];
  for (const seed of [0, 1, 2]) {
    const started = performance.now();
    const classifier = await TextClassifier.train({ data, backbone: BERT_TINY, cacheDir, seed, fineTune: { unfreeze: 'auto' } });
    const choice = classifier.manifest.training.unfreezeAuto as { kept: string; frozen: { accuracy: number }; fineTuned: { accuracy: number; bestEpoch: number } };
    const record = classifier.manifest.training.fineTune as { seconds: { train: number }; history: unknown[] } | undefined;
    frozen.push(choice.frozen.accuracy);
    tuned.push(choice.fineTuned.accuracy);
    line(
      `seed ${seed}: frozen head / fine-tuned (all blocks)`,
      `${choice.frozen.accuracy.toFixed(3)} / ${choice.fineTuned.accuracy.toFixed(3)}`,
      `kept ${choice.kept}; best epoch ${choice.fineTuned.bestEpoch}${record ? `, ${(record.seconds.train / record.history.length).toFixed(1)} s/epoch` : ''}; ${((performance.now() - started) / 1000).toFixed(0)} s in all`,
    );
    await classifier.dispose();
  }
  const meanStd = (xs: number[]) => {
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    return `${mean.toFixed(3)} ± ${Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)).toFixed(3)}`;
  };
  line('frozen head (mean ± std)', meanStd(frozen));
  line('--unfreeze auto (mean ± std)', meanStd(tuned), `(+${(100 * (tuned.reduce((a, b) => a + b) - frozen.reduce((a, b) => a + b)) / 3).toFixed(1)} points)`);
}

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

  await tfidfBench(cacheDir);
  await textFineTuneBench(cacheDir);

  section('Few-shot protocol on SST-2 (8 texts per class × 5 seeds, scored on the 872 test sentences)');
  const report = await runFewShot({ task: 'text', data: join(TEXT, 'sst2'), shots: 8, seeds: 5, cacheDir, cache: false, baseline: true });
  console.log(formatFewShot(report, 'texts'));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  // `npx tsx bench/text.ts tfidf` runs the TF-IDF section alone.
  if (process.argv[2] === 'tfidf') await tfidfBench(await mkdtemp(join(tmpdir(), 'headstart-bench-tfidf-')));
  // `npx tsx bench/text.ts finetune`: the text fine-tuning section alone.
  else if (process.argv[2] === 'finetune') await textFineTuneBench(await mkdtemp(join(tmpdir(), 'headstart-bench-text-finetune-')));
  else await textBench();
}
