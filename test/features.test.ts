import { asDense } from '../src/features/sparse.js';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AugmentationView, Backbone, BackboneReference } from '../src/backbones/backbone.js';
import { ImageBackbone } from '../src/backbones/image-backbone.js';
import { imagePreprocessingFromHf, readHfImageModel } from '../src/backbones/hf-folder.js';
import { FeatureCache } from '../src/features/cache.js';
import { extractFeatures } from '../src/features/extract.js';
import { makeImage, SHARED, tempDir } from './helpers/images.js';

/** A backbone whose features are simple functions of the bytes, counting how often it runs. */
class CountingBackbone implements Backbone<Uint8Array, number[]> {
  readonly batchSize = 2;
  readonly preprocessing = { kind: 'test' };
  readonly reference: BackboneReference = { id: 'test', sha256: 'abc', modality: 'image', featureDim: 2, featureOutput: 'x' };
  forwardedRows = 0;
  async prepare(bytes: Uint8Array, view?: AugmentationView): Promise<number[]> {
    if (bytes.length === 0) throw new Error('empty file');
    return [bytes.length, view ? view.index : 0];
  }
  async forward(batch: number[][]): Promise<Float32Array> {
    this.forwardedRows += batch.length;
    return Float32Array.from(batch.flat());
  }
  async dispose() {}
}

const items = (inputs: Uint8Array[]) => inputs.map((bytes, i) => ({ source: `item${i}`, load: async () => bytes }));

describe('extractFeatures', () => {
  it('skips unreadable inputs with their reason and keeps the rest in order', async () => {
    const backbone = new CountingBackbone();
    const result = await extractFeatures(backbone, [
      ...items([new Uint8Array(3), new Uint8Array(0), new Uint8Array(5)]),
      { source: 'missing.jpg', load: async () => Promise.reject(new Error('ENOENT: no such file')) },
    ]);
    expect(Array.from(asDense(result.features))).toEqual([3, 0, 5, 0]);
    expect(Array.from(result.itemOfRow)).toEqual([0, 2]);
    expect(result.skipped).toEqual([
      { source: 'item1', reason: 'empty file' },
      { source: 'missing.jpg', reason: 'ENOENT: no such file' },
    ]);
  });

  it('serves a second run from the cache without running the backbone', async () => {
    const cacheDir = await tempDir();
    const backbone = new CountingBackbone();
    const cache = FeatureCache.forBackbone(cacheDir, backbone);
    const inputs = items([1, 2, 3, 4, 5].map((n) => new Uint8Array(n)));
    const first = await extractFeatures(backbone, inputs, { cache });
    expect(backbone.forwardedRows).toBe(5);
    expect(first.computed).toBe(5);
    const second = await extractFeatures(backbone, inputs, { cache });
    expect(backbone.forwardedRows).toBe(5);
    expect(second.cacheHits).toBe(5);
    expect(second.features).toEqual(first.features);
  });

  it('keys the cache by content, so a corrupt entry or new content is recomputed', async () => {
    const cacheDir = await tempDir();
    const backbone = new CountingBackbone();
    const cache = FeatureCache.forBackbone(cacheDir, backbone);
    await extractFeatures(backbone, items([new Uint8Array(7)]), { cache });
    const [shard] = await readdir(cache.dir);
    const [entry] = await readdir(join(cache.dir, shard!));
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(cache.dir, shard!, entry!), 'torn');
    const again = await extractFeatures(backbone, items([new Uint8Array(7), new Uint8Array(8)]), { cache });
    expect(again.computed).toBe(2);
    expect(Array.from(asDense(again.features))).toEqual([7, 0, 8, 0]);
  });

  it('adds augmented views per item, each cached under its own key', async () => {
    const cacheDir = await tempDir();
    const backbone = new CountingBackbone();
    const cache = FeatureCache.forBackbone(cacheDir, backbone);
    const views = { count: 2, seed: 0 };
    const result = await extractFeatures(backbone, items([new Uint8Array(2), new Uint8Array(3)]), { cache, views });
    expect(Array.from(result.viewOfRow)).toEqual([0, 1, 2, 0, 1, 2]);
    expect(Array.from(asDense(result.features))).toEqual([2, 0, 2, 1, 2, 2, 3, 0, 3, 1, 3, 2]);
    const withOtherSeed = await extractFeatures(backbone, items([new Uint8Array(2)]), { cache, views: { count: 2, seed: 1 } });
    expect(withOtherSeed.cacheHits).toBe(1);
    expect(withOtherSeed.computed).toBe(2);
  });
});

describe('Hugging Face image backbones', () => {
  it('maps image processor configs to preprocessing', () => {
    expect(imagePreprocessingFromHf({ image_processor_type: 'ViTImageProcessor', size: { height: 224, width: 224 }, resample: 2, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5] }, 'x')).toMatchObject({
      resize: 'stretch',
      width: 224,
      interpolation: 'bilinear',
    });
    expect(imagePreprocessingFromHf({ image_processor_type: 'ConvNextImageProcessor', size: { shortest_edge: 224 }, crop_pct: 0.875, resample: 3 }, 'x')).toMatchObject({
      resize: 'shortest-edge-crop',
      shortestEdge: 256,
      width: 224,
      interpolation: 'bicubic',
    });
    expect(imagePreprocessingFromHf({ size: { shortest_edge: 256 }, do_center_crop: true, crop_size: { height: 224, width: 224 } }, 'x')).toMatchObject({
      resize: 'shortest-edge-crop',
      shortestEdge: 256,
      width: 224,
      height: 224,
    });
    expect(() => imagePreprocessingFromHf({ image_mean: [1, 2] , size: 3 }, 'p.json')).toThrow(/p\.json: expected three per-channel numbers/);
  });

  it('runs a fixture in HF layout and pools its output, batch-independent', async () => {
    const spec = await readHfImageModel(join(SHARED, 'models/mobilenet-v2-random'), 'mobilenet-v2-random');
    const backbone = await ImageBackbone.open(spec);
    try {
      expect(backbone.reference.featureDim).toBe(1280);
      expect(backbone.reference.featureOutput).toBe('pooler_output');
      const images = await Promise.all([
        makeImage(300, 200, { r: 250, g: 20, b: 20 }, 'jpeg'),
        makeImage(120, 160, { r: 20, g: 20, b: 250 }, 'png'),
      ]);
      const prepared = await Promise.all(images.map((b) => backbone.prepare(b)));
      const both = await backbone.forward(prepared);
      const alone = await backbone.forward([prepared[1]!]);
      const diff = Math.max(...Array.from(alone, (v, i) => Math.abs(v - both[1280 + i]!)));
      expect(diff).toBeLessThan(1e-4);
      expect(both.subarray(0, 1280)).not.toEqual(both.subarray(1280));
    } finally {
      await backbone.dispose();
    }
  });
});
