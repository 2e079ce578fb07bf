import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Classifier } from '../src/classifier/classifier.js';
import { readAudioFolder } from '../src/data/audio-folder.js';
import type { Dataset } from '../src/data/dataset.js';
import { formatMeanStd } from '../src/evaluate/few-shot.js';
import { leaveOneGroupOut } from '../src/evaluate/held-out-groups.js';
import { FeatureCache } from '../src/features/cache.js';
import { extractFeatures } from '../src/features/extract.js';
import { FSDD, fsddFile, fsddOfficialSplit, SPEECH_EMBEDDING_FOLDER, tempDir } from './helpers/audio.js';

/**
 * The Free Spoken Digit Dataset (6 speakers × 10 digits × 50 takes, 8 kHz) on the speech-embedding
 * graphs of the shared folder. Features are computed once, when the official-split model trains,
 * into this run's cache; the speaker-held-out folds and the reload reuse them.
 */
describe('FSDD on the speech embedding', () => {
  let cacheDir: string;
  let data: Dataset<Uint8Array>;
  let classifier: Classifier;

  beforeAll(async () => {
    cacheDir = await tempDir('headstart-fsdd-');
    data = await readAudioFolder(FSDD, { labelOf: (path) => fsddFile(path).digit, splitOf: fsddOfficialSplit, validationFraction: 0.1 });
  });
  afterAll(() => classifier?.dispose());

  it('official split (takes 0–4 are the test set): test accuracy ≥ 0.98', async () => {
    expect(data.classes).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    expect(data.train.length + data.validation.length).toBe(2700);
    expect(data.test).toHaveLength(300);
    const started = performance.now();
    classifier = await Classifier.train({ task: 'audio', data, backbone: SPEECH_EMBEDDING_FOLDER, cacheDir });
    const seconds = (performance.now() - started) / 1000;
    const test = classifier.metrics.test!;
    console.log(`FSDD official test accuracy ${test.accuracy.toFixed(4)} (${test.n} clips), validation ${classifier.metrics.validation!.accuracy.toFixed(4)}; ${seconds.toFixed(1)} s for 3000 clips`);
    expect(classifier.manifest.training.timings).toMatchObject({ featuresComputed: 3000 });
    expect(test.accuracy).toBeGreaterThanOrEqual(0.98);
  }, 600_000);

  it('speaker held out (train on five speakers, test on the sixth, each in turn): mean ± std', async () => {
    const items = [...data.train, ...data.validation, ...data.test!];
    const extracted = await extractFeatures(classifier.backbone, items, { cache: FeatureCache.forBackbone(cacheDir, classifier.backbone) });
    expect(extracted.cacheHits).toBe(3000);
    const set = {
      features: extracted.features,
      labels: Int32Array.from(extracted.itemOfRow, (i) => items[i]!.label),
      dim: extracted.dim,
      numClasses: 10,
    };
    const speakers = Array.from(extracted.itemOfRow, (i) => fsddFile(items[i]!.source).speaker);
    const result = leaveOneGroupOut(set, speakers, data.classes);
    console.log(
      `FSDD speaker held out: accuracy ${formatMeanStd(result.accuracy)} — ` + result.groups.map((g) => `${g.group} ${g.accuracy.toFixed(3)}`).join(', '),
    );
    expect(result.groups.map((g) => g.group)).toEqual(['george', 'jackson', 'lucas', 'nicolas', 'theo', 'yweweler']);
    for (const group of result.groups) {
      expect(group.testSize).toBe(500);
      expect(group.trainSize).toBe(2500);
    }
    // A voice never heard is harder than new takes of known voices, but far above chance (0.1).
    expect(result.accuracy.mean).toBeGreaterThan(0.7);
    expect(result.accuracy.std).toBeGreaterThan(0);
  }, 300_000);

  it('save → load gives identical probabilities', async () => {
    const dir = join(cacheDir, 'model');
    await classifier.save(dir);
    const loaded = await Classifier.load(dir, { cacheDir });
    try {
      const clips = await Promise.all(data.test!.slice(0, 40).map((item) => readFile(item.source)));
      expect(Array.from(await loaded.predictProbabilities(clips))).toEqual(Array.from(await classifier.predictProbabilities(clips)));
      expect(loaded.manifest.backbone.preprocessing).toEqual(classifier.backbone.preprocessing);
    } finally {
      await loaded.dispose();
    }
  }, 120_000);
});
