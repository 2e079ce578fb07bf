/**
 * Image explanations on a real backbone (MobileNetV2 α=0.35, ImageNet weights) trained on a
 * generated localisation set: hymenoptera crops pasted at seeded places onto other photos. Checks
 * Grad-CAM's localisation, integrated gradients' completeness, the model-randomisation sanity
 * check of Adebayo et al., the maps' geometry on the photo, and occlusion of an exported file.
 */
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { ImageClassifier } from '../src/classifier/image-classifier.js';
import { explainExportedImage } from '../src/explain/exported.js';
import { imageExplainerOf } from '../src/explain/explain.js';
import { ImageExplainer } from '../src/explain/image-explainer.js';
import { randomizeTopBlocks, spearman } from '../src/explain/sanity.js';
import { exportClassifier } from '../src/export/onnx-export.js';
import { ExportedModel } from '../src/export/exported-model.js';
import { readFile } from 'node:fs/promises';
import { COMPOSITE_SIZE, writePastedObjectSet, type PastedBox } from './helpers/pasted-objects.js';
import { HYMENOPTERA, SHARED, tempDir } from './helpers/images.js';

const MOBILENET_035 = join(SHARED, 'models/mobilenet-v2-0.35-imagenet-tfjs');
const BEE_PHOTO = join(HYMENOPTERA, 'val/bees/1032546534_06907fe3b3.jpg');

describe('explain: images', () => {
  let classifier: ImageClassifier;
  let boxes: PastedBox[];

  beforeAll(async () => {
    const root = await tempDir();
    boxes = await writePastedObjectSet(join(root, 'data'), { train: 80, val: 40 }, 7);
    classifier = await ImageClassifier.train({ data: join(root, 'data'), backbone: MOBILENET_035, cacheDir: join(root, 'cache'), seed: 0 });
  }, 120_000);

  it("Grad-CAM's peak falls inside the pasted object's box on ≥ 80 % of the correctly classified validation images", async () => {
    let correct = 0;
    let inside = 0;
    for (const { file, label, box } of boxes) {
      const explanation = await classifier.explain(file, { method: 'gradcam' });
      expect([explanation.map.width, explanation.map.height]).toEqual([COMPOSITE_SIZE, COMPOSITE_SIZE]);
      if (explanation.label !== label) continue;
      correct++;
      const { x, y } = explanation.peak;
      if (x >= box.left && x < box.left + box.width && y >= box.top && y < box.top + box.height) inside++;
    }
    console.log(`Grad-CAM localisation: peak inside the pasted box on ${inside} of ${correct} correctly classified (of ${boxes.length}) = ${((100 * inside) / correct).toFixed(1)} %`);
    expect(correct).toBeGreaterThanOrEqual(boxes.length / 2);
    expect(inside / correct).toBeGreaterThanOrEqual(0.8);
  }, 60_000);

  it('integrated gradients: attributions sum to f(x) − f(baseline) within 1 % at 256 steps, black and blurred baselines', async () => {
    for (const baseline of ['black', 'blurred'] as const) {
      const explanation = await classifier.explain(BEE_PHOTO, { method: 'integrated-gradients', steps: 256, baseline });
      const { sum, expected } = explanation.completeness!;
      expect(Math.abs(expected)).toBeGreaterThan(0.1);
      console.log(`integrated gradients, ${baseline} baseline, 256 steps: Σ = ${sum.toFixed(5)}, f(x) − f(x′) = ${expected.toFixed(5)}, ${((100 * Math.abs(sum - expected)) / Math.abs(expected)).toFixed(2)} % apart`);
      expect(Math.abs(sum - expected) / Math.abs(expected)).toBeLessThan(0.01);
    }
  }, 180_000);

  it('sanity check (Adebayo et al.): randomising the top blocks changes the maps (Spearman ρ < 0.5)', async () => {
    const explainer = imageExplainerOf(classifier);
    const randomized = new ImageExplainer(explainer.model, randomizeTopBlocks(await explainer.attributionModel(), 3, 1));
    const files = boxes.slice(0, 4).map((box) => box.file).concat(boxes.slice(-4).map((box) => box.file));
    for (const method of ['gradcam', 'saliency'] as const) {
      const rhos: number[] = [];
      for (const file of files) {
        const bytes = await readFile(file);
        const target = (await explainer.explain(bytes, { method })).target;
        const [trained, random] = await Promise.all([explainer.explain(bytes, { method, target }), randomized.explain(bytes, { method, target })]);
        rhos.push(spearman(trained.raw.values, random.raw.values));
      }
      const mean = rhos.reduce((a, b) => a + b, 0) / rhos.length;
      console.log(`sanity check, ${method}: Spearman ρ trained vs top 3 blocks randomised, mean ${mean.toFixed(3)} (${rhos.map((r) => r.toFixed(2)).join(', ')})`);
      expect(mean, `${method}: ρ ${rhos.map((r) => r.toFixed(2)).join(', ')}`).toBeLessThan(0.5);
    }
    await randomized.release();
  }, 60_000);

  it("maps lie on the photo's own pixel grid; the target can be chosen; unknown labels are refused", async () => {
    const { width, height } = await sharp(BEE_PHOTO).metadata();
    const predicted = await classifier.explain(BEE_PHOTO);
    expect(predicted.method).toBe('gradcam');
    expect(predicted.label).toBe((await classifier.predict(BEE_PHOTO))[0]!.label);
    expect([predicted.map.width, predicted.map.height]).toEqual([width, height]);
    expect(predicted.map.values.length).toBe(width! * height!);
    expect(predicted.map.values.reduce((a, b) => Math.max(a, b), 0)).toBe(1);
    expect(predicted.map.values[predicted.peak.y * width! + predicted.peak.x]).toBe(1);
    const other = classifier.labels.find((label) => label !== predicted.label)!;
    const forOther = await classifier.explain(BEE_PHOTO, { target: other });
    expect(forOther.label).toBe(other);
    expect(forOther.probability).toBeCloseTo(1 - predicted.probability, 5);
    await expect(classifier.explain(BEE_PHOTO, { target: 'wasps' })).rejects.toThrow(/unknown target label "wasps".*ants, bees/);
  }, 60_000);

  it('occlusion explains an exported ONNX file as it explains the library model', async () => {
    const exported = await ExportedModel.load((await exportClassifier(classifier)).onnx);
    const file = boxes[0]!.file;
    const bytes = await readFile(file);
    const fromFile = await explainExportedImage(exported, bytes, { window: 32, stride: 16 });
    const fromLibrary = await classifier.explain(file, { method: 'occlusion', window: 32, stride: 16 });
    await exported.release();
    expect(fromFile.label).toBe(fromLibrary.label);
    let worst = 0;
    for (let i = 0; i < fromFile.raw.values.length; i++) worst = Math.max(worst, Math.abs(fromFile.raw.values[i]! - fromLibrary.raw.values[i]!));
    expect(worst).toBeLessThan(1e-3);
    expect(spearman(fromFile.map.values, fromLibrary.map.values)).toBeGreaterThan(0.99);
  }, 60_000);
});
