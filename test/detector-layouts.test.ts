import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Detector } from '../src/detector/detector.js';
import { suppress } from '../src/detector/yolo-layout.js';

const FIXTURES = new URL('./fixtures/detection/', import.meta.url).pathname;
/** A random-weight model in Ultralytics YOLO's ONNX layout and Ultralytics' post-processing of it, from tools/yolo-layout-fixture.py. */
const reference = JSON.parse(readFileSync(`${FIXTURES}yolo-reference.json`, 'utf8'));

describe('Ultralytics YOLO ONNX exports (images → output0 [1, 4 + C, N])', () => {
  it('give the boxes, scores and labels Ultralytics\' letterbox + class-aware NMS give, in the original image\'s pixels', async () => {
    const detector = await Detector.load(`${FIXTURES}${reference.model}`, { threads: 1 });
    try {
      expect(detector.classes).toEqual(['ant', 'bee', 'wasp']);
      for (const [image, expected] of Object.entries(reference.detections) as [string, { label: string; score: number; box: number[] }[]][]) {
        const found = await detector.detect(`${FIXTURES}${image}`, { threshold: reference.conf, maxDetections: 300 });
        expect(found.detections.length, image).toBe(expected.length);
        found.detections.forEach((d, i) => {
          expect(d.label).toBe(expected[i]!.label);
          expect(d.score).toBeCloseTo(expected[i]!.score, 5);
          d.box.forEach((v, k) => expect(Math.abs(v - expected[i]!.box[k]!), `${image} #${i} coordinate ${k}`).toBeLessThan(1e-3));
        });
      }
    } finally {
      await detector.dispose();
    }
  });

  it('suppresses per class: an overlapping box of another class survives', () => {
    const kept = suppress([
      { label: 0, score: 0.9, box: [0, 0, 10, 10] },
      { label: 0, score: 0.8, box: [1, 1, 10, 10] },
      { label: 1, score: 0.7, box: [1, 1, 10, 10] },
      { label: 0, score: 0.6, box: [20, 20, 30, 30] },
    ], 0.7);
    expect(kept.map((d) => d.score)).toEqual([0.9, 0.7, 0.6]);
  });
});

/** A random-weight DETR in the transformers.js layout and transformers' post-processing of it, from tools/detr-layout-fixture.py. */
const detr = JSON.parse(readFileSync(`${FIXTURES}detr-reference.json`, 'utf8'));

describe('DETR folders in the transformers.js layout (pixel_values → logits + pred_boxes)', () => {
  it('give the boxes, scores and labels transformers\' post_process_object_detection gives, best first', async () => {
    const detector = await Detector.load(`${FIXTURES}${detr.model}`, { threads: 1 });
    try {
      expect(detector.classes).toEqual(['ant', 'bee', 'wasp']);
      expect(detector.layout.kind).toBe('detr');
      for (const [image, listed] of Object.entries(detr.detections) as [string, { label: string; score: number; box: number[] }[]][]) {
        const expected = [...listed].sort((a, b) => b.score - a.score);
        const found = await detector.detect(`${FIXTURES}${image}`, { threshold: detr.threshold });
        expect(found.detections.length, image).toBe(expected.length);
        found.detections.forEach((d, i) => {
          expect(d.label).toBe(expected[i]!.label);
          expect(d.score).toBeCloseTo(expected[i]!.score, 5);
          d.box.forEach((v, k) => expect(Math.abs(v - Math.min(Math.max(expected[i]!.box[k]!, 0), k % 2 ? found.height : found.width))).toBeLessThan(1e-3));
        });
      }
    } finally {
      await detector.dispose();
    }
  });
});
