/**
 * Per-box Grad-CAM on builtin:centernet: the explained detections are the detector's own (same
 * classes, scores and boxes as `Detector.detect`), each map lies on the photo's grid, and its peak
 * falls inside its box for ≥ 80 % of the boxes on darknet's sample photos.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { builtinCenterNet } from '../src/detector/centernet.js';
import { COCO_CLASSES } from '../src/detector/coco-classes.js';
import { Detector } from '../src/detector/detector.js';
import { DetectionExplainer } from '../src/explain/detection-grad-cam.js';
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
});
