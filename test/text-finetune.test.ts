/**
 * `--unfreeze` for text: a transformer encoder fine-tuned through the same path as image backbones
 * (src/finetune, text-graph.ts). bert-tiny-random has random weights, so its frozen features carry
 * little about sentiment and fine-tuning (the embeddings above all) has to earn the difference: on
 * 1,000 SST-2 training sentences (800 train / 200 validation) the frozen head measured 0.620 and the
 * fine-tuned encoder 0.705 (+8.5 points); asserted with a 5-point margin. The gradients of the same
 * graph are checked against PyTorch in autodiff-torch.test.ts.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sst2SentenceFile } from '../bench/text.js';
import { TextClassifier } from '../src/classifier/text-classifier.js';
import type { UnfreezeChoice } from '../src/finetune/classifier-hooks.js';
import type { FineTuneRecord } from '../src/finetune/fine-tune.js';
import { runCli } from './helpers/cli.js';
import { SHARED, tempDir } from './helpers/images.js';

const BERT_TINY = join(SHARED, 'models/bert-tiny-random');
const GLOVE_20K = join(SHARED, 'models/glove-6b-100d-top20k');

describe('text classification with --unfreeze (bert-tiny-random, SST-2 sentences)', () => {
  let work: string;
  let sst2: string;
  let classifier: TextClassifier | undefined;

  beforeAll(async () => {
    work = await tempDir('headstart-text-finetune-');
    sst2 = await sst2SentenceFile(work, 1000);
  });
  afterAll(async () => {
    await classifier?.dispose();
  });

  it('--unfreeze auto fine-tunes every block, beats the frozen head by ≥ 5 points (measured +8.5), keeps it and says so', async () => {
    classifier = await TextClassifier.train({ data: sst2, backbone: BERT_TINY, cacheDir: join(work, 'cache'), seed: 0, fineTune: { unfreeze: 'auto' } });
    const choice = classifier.manifest.training.unfreezeAuto as UnfreezeChoice;
    console.log(`SST-2 1,000 sentences, bert-tiny-random: frozen ${choice.frozen.accuracy.toFixed(3)}, fine-tuned ${choice.fineTuned.accuracy.toFixed(3)} (best epoch ${choice.fineTuned.bestEpoch})`);
    expect(choice.kept, JSON.stringify(choice)).toBe('fine-tuned');
    expect(choice.fineTuned.unfreeze).toBe('all');
    expect(choice.fineTuned.accuracy).toBeGreaterThanOrEqual(choice.frozen.accuracy + 0.05);
    expect(classifier.metrics.validation!.accuracy).toBe(choice.fineTuned.accuracy);
    const record = classifier.manifest.training.fineTune as FineTuneRecord;
    // Token ids cross the cut when the embeddings train; every sub-block of both layers trains.
    expect(record.cut).toEqual(expect.arrayContaining(['input_ids']));
    expect(record.blocks.trained.length).toBe(record.blocks.total);
    expect(classifier.manifest.backbone).toMatchObject({ id: BERT_TINY, fineTuned: { file: 'backbone', base: { id: BERT_TINY } }, preprocessing: { kind: 'text-transformer', pooling: 'mean' } });
  }, 300_000);

  it('saves a model folder (a Hugging Face ONNX folder with the tokenizer inside) whose predictions after load equal those right after training', async () => {
    const dir = join(work, 'model');
    await classifier!.save(dir, { report: false });
    const original = await readFile(join(BERT_TINY, 'tokenizer.json'));
    expect(await readFile(join(dir, 'backbone/tokenizer.json'))).toEqual(original);
    const again = await TextClassifier.load(dir, { cacheDir: join(work, 'cache') });
    try {
      expect(again.manifest.backbone.fineTuned).toEqual(classifier!.manifest.backbone.fineTuned);
      const texts = ['a gorgeous , witty , seductive movie .', 'the plot is nothing but boilerplate clichés from start to finish', 'zxqv'];
      const before = await classifier!.predictProbabilities(texts);
      expect(await again.predictProbabilities(texts)).toEqual(before);
      // The fine-tuned encoder is not the random one: its features differ.
      const frozen = await TextClassifier.train({ data: sst2, backbone: BERT_TINY, cacheDir: join(work, 'cache'), seed: 0 });
      expect(frozen.backbone.reference.sha256).not.toBe(again.backbone.reference.sha256);
      await frozen.dispose();
      const evaluation = await again.evaluateFile(sst2);
      expect(evaluation.metrics.n).toBe(1000);
    } finally {
      await again.dispose();
    }
  }, 300_000);

  it('`headstart train --unfreeze 2` trains a text model; TF-IDF and word vectors are refused before any training, naming what works', async () => {
    const small = await sst2SentenceFile(work, 120);
    const out = join(work, 'cli-model');
    const result = await runCli(['train', small, '--backbone', BERT_TINY, '--unfreeze', '2', '--fine-tune-epochs', '1', '--no-baseline', '--out', out, '--cache-dir', join(work, 'cache'), '--quiet', '--no-report']);
    expect(result.code, result.stderr).toBe(0);
    const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8'));
    expect(manifest.training.fineTune.unfreeze).toBe(2);
    expect(manifest.training.fineTune.blocks.trained.length).toBe(2);

    for (const backbone of ['tfidf', GLOVE_20K]) {
      const refused = await runCli(['train', small, '--backbone', backbone, '--unfreeze', 'auto', '--out', join(work, 'refused'), '--cache-dir', join(work, 'cache'), '--quiet']);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(backbone === 'tfidf' ? /--unfreeze: the text backbone tfidf is TF-IDF, fitted on the training texts, has no layers to fine-tune/ : /is a table of word vectors, pooled, has no layers to fine-tune/);
      expect(refused.stderr).toMatch(/needs a transformer encoder in Hugging Face ONNX layout/);
    }
  }, 300_000);
});
