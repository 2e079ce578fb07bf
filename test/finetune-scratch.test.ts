/**
 * The from-scratch CNN: built from a seeded He initialisation and trained by the same training
 * graphs as fine-tuning, on raw pixels, as `trainScratchCnn` and as a `compare` contender.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Dataset } from '../src/data/dataset.js';
import { readImageFolder } from '../src/data/image-folder.js';
import { buildScratchCnn, scratchCnnContender, trainScratchCnn } from '../src/finetune/scratch-cnn.js';
import { makeColourFolder, tempDir } from './helpers/images.js';

describe('small CNN from scratch', () => {
  let dataset: Dataset<Uint8Array>;

  beforeAll(async () => {
    const root = await makeColourFolder(join(await tempDir('headstart-scratch-'), 'colours'), 12, ['blue', 'green', 'red']);
    dataset = await readImageFolder(root, { validationFraction: 0.25, seed: 1 });
  });

  it('is He-initialised from its seed: same seed, same weights', () => {
    const [a, b, c] = [buildScratchCnn(3, 32, [8, 16], 4), buildScratchCnn(3, 32, [8, 16], 4), buildScratchCnn(3, 32, [8, 16], 5)];
    const first = a.graph.floatInitializer('stage0/conv/weight')!;
    expect(first).toEqual(b.graph.floatInitializer('stage0/conv/weight'));
    expect(first).not.toEqual(c.graph.floatInitializer('stage0/conv/weight'));
    // He-normal: variance 2 / fan-in (3 channels × 3 × 3).
    const variance = first.reduce((s, w) => s + w * w, 0) / first.length;
    expect(variance).toBeGreaterThan((2 / 27) * 0.6);
    expect(variance).toBeLessThan((2 / 27) * 1.4);
  });

  it('learns a task from random initialisation and reports validation metrics', async () => {
    const result = await trainScratchCnn(dataset, { size: 16, channels: [8, 16], epochs: 12, augment: 1, lr: 1e-2, seed: 2 });
    expect(result.history.length).toBeGreaterThan(0);
    expect(result.history[result.history.length - 1]!.trainLoss).toBeLessThan(result.history[0]!.trainLoss);
    expect(result.metrics.validation.n).toBe(dataset.validation.length);
    expect(result.metrics.validation.accuracy).toBeGreaterThanOrEqual(0.8);
    expect(result.parameters).toBe(8 * 3 * 9 + 8 + 16 * 8 * 9 + 16 + 3 * 16 + 3);
  });

  it('joins compare as a contender: seeded runs on chosen rows, scored on the evaluation set', async () => {
    const contender = await scratchCnnContender({ train: dataset.train, evaluation: dataset.validation }, dataset.classes, { size: 16, channels: [8, 16], epochs: 6, augment: 0, lr: 1e-2 });
    const rows = dataset.train.map((_, i) => i).filter((i) => i % 2 === 0);
    const [first, again] = [await contender.run(rows, 1), await contender.run(rows, 1)];
    expect(again.accuracy).toBe(first.accuracy);
    expect(first.accuracy).toBeGreaterThanOrEqual(0);
    expect(first.accuracy).toBeLessThanOrEqual(1);
    expect(contender.secondsPerExample).toBeGreaterThan(0);
  });
});
