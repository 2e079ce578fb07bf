import { cp, readdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ImageClassifier } from '../src/classifier/image-classifier.js';
import { readImageFolder } from '../src/data/image-folder.js';
import { HYMENOPTERA, SHARED, makeColourFolder, tempDir } from './helpers/images.js';

const MOBILENET_035 = join(SHARED, 'models/mobilenet-v2-0.35-imagenet-tfjs');

describe('ImageClassifier on hymenoptera with MobileNetV2 α=0.35 (ImageNet)', () => {
  let cacheDir: string;
  let classifier: ImageClassifier;

  beforeAll(async () => {
    cacheDir = await tempDir('headstart-cache-');
    classifier = await ImageClassifier.train({ data: HYMENOPTERA, backbone: MOBILENET_035, cacheDir });
  });

  it('reaches at least 0.90 validation accuracy on the 153 held-out photos', () => {
    const validation = classifier.metrics.validation!;
    expect(validation.n).toBe(153);
    expect(validation.accuracy).toBeGreaterThanOrEqual(0.9);
    expect(validation.confusion.flat().reduce((a, b) => a + b, 0)).toBe(153);
    expect(classifier.labels).toEqual(['ants', 'bees']);
  });

  it('records what it trained on and how', () => {
    const { manifest } = classifier;
    expect(manifest.backbone.featureDim).toBe(1280);
    expect(manifest.backbone.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(manifest.training.data).toMatchObject({ counts: { train: [124, 121], validation: [70, 83] }, validation: 'given' });
    expect(manifest.skipped).toEqual([]);
  });

  it('saves and loads to identical probabilities', async () => {
    const dir = join(await tempDir(), 'model');
    await classifier.save(dir);
    const again = await ImageClassifier.load(dir, { cacheDir });
    try {
      const images = (await readImageFolder(HYMENOPTERA)).validation.slice(0, 6);
      const bytes = await Promise.all(images.map((i) => i.load()));
      const before = await classifier.predictProbabilities(bytes);
      const after = await again.predictProbabilities(bytes);
      expect(after).toEqual(before);
      const [top] = await again.predict(images[0]!.source, { topK: 1 });
      expect(['ants', 'bees']).toContain(top!.label);
      expect(top!.probability).toBeGreaterThan(0.5);
    } finally {
      await again.dispose();
    }
  });

  it('a saved model folder appears complete: never without its predictions and report', async () => {
    const dir = join(await tempDir(), 'complete-model');
    // Watch the folder as another process would while it is first written and then replaced.
    const seen: string[][] = [];
    let saving = true;
    const watch = (async () => {
      while (saving) {
        const names = await readdir(dir).catch(() => undefined);
        if (names?.includes('manifest.json')) seen.push(names.filter((n) => !n.startsWith('.')).sort());
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    const first = await classifier.save(dir);
    const second = await classifier.save(dir);
    saving = false;
    await watch;
    expect(first.report).toBe(join(dir, 'report.html'));
    expect(second.report).toBe(join(dir, 'report.html'));
    const complete = ['head.bin', 'manifest.json', 'metrics.json', 'predictions.json', 'report.html'];
    expect(seen.length).toBeGreaterThan(0);
    for (const names of seen) expect(names).toEqual(complete);
    // Rendered in the staging folder, but it names the model's own folder.
    const html = await readFile(join(dir, 'report.html'), 'utf8');
    expect(html).toContain(`<title>headstart report: ${basename(dir)}</title>`);
    const data = JSON.parse(/<script type="application\/json" id="report-data">(.*?)<\/script>/s.exec(html)![1]!);
    expect(data.model.folder).toBe(dir);
    expect(data.splits[0].examples).toHaveLength(153);
  });

  it('trains a second head from cached features without running the backbone', async () => {
    const second = await ImageClassifier.train({ data: HYMENOPTERA, backbone: MOBILENET_035, cacheDir, head: 'centroid' });
    try {
      expect(second.manifest.training.timings).toMatchObject({ featuresComputed: 0, featuresFromCache: 398 });
      expect(second.metrics.validation!.accuracy).toBeGreaterThan(0.8);
    } finally {
      await second.dispose();
    }
  });

  it('re-evaluates on a labelled folder to the same numbers', async () => {
    const result = await classifier.evaluateFolder(join(HYMENOPTERA, 'val'));
    expect(result.metrics.accuracy).toBeCloseTo(classifier.metrics.validation!.accuracy, 10);
    expect(result.predictions).toHaveLength(153);
  });
});

describe('ImageClassifier with bad inputs', () => {
  it('skips corrupt, truncated and empty images, reports them, and still trains', async () => {
    const root = await makeColourFolder(join(await tempDir(), 'colours'), 6);
    const good = await readFile(join(root, 'red', 'red-0.png'));
    await writeFile(join(root, 'red', 'truncated.png'), good.subarray(0, good.length >> 1));
    await writeFile(join(root, 'blue', 'empty.jpg'), new Uint8Array(0));
    await writeFile(join(root, 'blue', 'noise.jpg'), Buffer.from('definitely not a jpeg'));
    await cp(join(root, 'red', 'red-1.png'), join(root, 'red', 'copy.png'));
    const cacheDir = await tempDir();
    const classifier = await ImageClassifier.train({ data: root, backbone: MOBILENET_035, cacheDir, seed: 1 });
    try {
      const reasons = Object.fromEntries(classifier.skipped.map((s) => [s.source.split('/').pop(), s.reason]));
      expect(Object.keys(reasons).sort()).toEqual(['empty.jpg', 'noise.jpg', 'truncated.png']);
      expect(reasons['noise.jpg']).toMatch(/cannot decode image: .*unsupported image format/);
      expect(classifier.metrics.validation!.accuracy).toBe(1);
    } finally {
      await classifier.dispose();
    }
  });

  it('names an unknown backbone', async () => {
    await expect(ImageClassifier.train({ data: HYMENOPTERA, backbone: 'builtin:nope', cacheDir: await tempDir() })).rejects.toThrow(
      /unknown builtin backbone "nope"; builtins: mobilenet-v2-1\.4/,
    );
  });
});
