/**
 * Per-box Grad-CAM on builtin:centernet: the explained detections are the detector's own (same
 * classes, scores and boxes as `Detector.detect`), each map lies on the photo's grid, and its peak
 * falls inside its box for ≥ 80 % of the boxes on darknet's sample photos.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { builtinCenterNet } from '../src/detector/centernet.js';
import { COCO_CLASSES } from '../src/detector/coco-classes.js';
import { Detector } from '../src/detector/detector.js';
import { DetectionExplainer } from '../src/explain/detection-grad-cam.js';
import { runCli } from './helpers/cli.js';
import { tempDir } from './helpers/images.js';

const DARKNET = '/usr/share/darknet/data';
const PHOTOS = ['dog', 'person', 'horses', 'giraffe'].map((name) => join(DARKNET, `${name}.jpg`));

describe.skipIf(!existsSync(PHOTOS[0]!))('explain: per-box Grad-CAM for detectors', () => {
  it("builtin:centernet: each box's map peaks inside that box for ≥ 80 % of the boxes, on the detector's own detections", async () => {
    const cacheDir = await tempDir();
    const explainer = await DetectionExplainer.create(await builtinCenterNet({ cacheDir }), 2);
    const detector = await Detector.load('builtin:centernet', { cacheDir });
    let boxes = 0;
    let inside = 0;
    try {
      for (const photo of PHOTOS) {
        const bytes = await readFile(photo);
        const explained = await explainer.explain(bytes, { threshold: 0.3, maxDetections: 20 });
        const detected = (await detector.detect(bytes, { threshold: 0.3, maxDetections: 20 })).detections;
        expect(explained.map((e) => COCO_CLASSES[e.label])).toEqual(detected.map((d) => d.label));
        explained.forEach((e, i) => {
          expect(e.score).toBeCloseTo(detected[i]!.score, 4);
          e.box.forEach((v, k) => expect(Math.abs(v - detected[i]!.box[k]!)).toBeLessThan(0.5));
        });
        const { width, height } = await sharp(bytes).metadata();
        for (const e of explained) {
          expect([e.map.width, e.map.height]).toEqual([width, height]);
          expect([e.raw.width, e.raw.height]).toEqual([explainer.featureMap.width, explainer.featureMap.height]);
          boxes++;
          const [left, top, right, bottom] = e.box;
          if (e.peak.x >= left && e.peak.x <= right && e.peak.y >= top && e.peak.y <= bottom) inside++;
        }
      }
    } finally {
      await explainer.release();
      await detector.dispose();
    }
    console.log(`per-box Grad-CAM: peak inside its box for ${inside} of ${boxes} boxes (${((100 * inside) / boxes).toFixed(1)} %)`);
    expect(boxes).toBeGreaterThanOrEqual(8);
    expect(inside / boxes).toBeGreaterThanOrEqual(0.8);
  }, 180_000);

  it('`headstart explain builtin:centernet --json --out` explains the boxes `headstart detect` finds, one overlay per box; other methods and layouts are refused', async () => {
    const dir = await tempDir();
    const cache = ['--cache-dir', join(dir, 'cache'), '--quiet'];
    const photo = PHOTOS[0]!;
    const detected = await runCli(['detect', 'builtin:centernet', photo, '--json', '--threshold', '0.3', '--max-detections', '5', ...cache]);
    expect(detected.code).toBe(0);
    const out = join(dir, 'maps');
    const result = await runCli(['explain', 'builtin:centernet', photo, '--json', '--out', out, '--threshold', '0.3', '--max-detections', '5', ...cache]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    type Record = { input: string; detections: { label: string; score: number; box: number[]; peak: { x: number; y: number }; map: { width: number; height: number; values: number[] } }[] };
    const [explained] = JSON.parse(result.stdout) as Record[];
    const [boxes] = JSON.parse(detected.stdout) as { detections: { label: string; score: number; box: number[] }[] }[];
    expect(explained!.input).toBe(photo);
    expect(explained!.detections.map((d) => d.label)).toEqual(boxes!.detections.map((d) => d.label));
    expect(explained!.detections.length).toBeGreaterThan(0);
    const { width, height } = await sharp(photo).metadata();
    explained!.detections.forEach((d, k) => {
      expect(d.score).toBeCloseTo(boxes!.detections[k]!.score, 4);
      expect(d.map.values).toHaveLength(d.map.width * d.map.height);
      expect(Math.max(...d.map.values)).toBeCloseTo(1, 3);
      expect(d.peak.x >= 0 && d.peak.x < width! && d.peak.y >= 0 && d.peak.y < height!).toBe(true);
    });
    // One picture per box, the photo's size, named after the box's label.
    const first = explained!.detections[0]!;
    const picture = join(out, `dog.box1-${first.label}.png`);
    const meta = await sharp(picture).metadata();
    expect([meta.width, meta.height]).toEqual([width, height]);

    const method = await runCli(['explain', 'builtin:centernet', photo, '--method', 'saliency', ...cache]);
    expect(method.code).not.toBe(0);
    expect(method.stderr).toMatch(/detectors are explained per box with --method gradcam/);
    const notOnnx = join(dir, 'broken.onnx');
    await writeFile(notOnnx, 'not a model');
    const broken = await runCli(['explain', notOnnx, photo, ...cache]);
    expect(broken.code).not.toBe(0);
    expect(broken.stderr).toContain('broken.onnx');
  }, 180_000);
});
