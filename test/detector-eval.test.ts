import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Box } from '../src/detector/boxes.js';
import { evaluateDetections, type EvaluatedImage } from '../src/detector/coco-eval.js';

/** Seeded cases and pycocotools' COCOeval numbers for them, written by tools/coco-eval-reference.py. */
const fixture = JSON.parse(readFileSync(new URL('./fixtures/detection/cocoeval-reference.json', import.meta.url), 'utf8'));

const corners = ([x, y, w, h]: number[]): Box => [x!, y!, x! + w!, y! + h!];

function imagesOf(c: any): EvaluatedImage[] {
  const label = new Map<number, number>(c.categories.map((cat: any, i: number) => [cat.id, i]));
  return c.images.map((image: any) => ({
    boxes: c.annotations
      .filter((a: any) => a.image_id === image.id)
      .map((a: any) => ({ label: label.get(a.category_id)!, box: corners(a.bbox), crowd: a.iscrowd === 1, area: a.area })),
    detections: c.results.filter((r: any) => r.image_id === image.id).map((r: any) => ({ label: label.get(r.category_id)!, score: r.score, box: corners(r.bbox) })),
  }));
}

describe("COCO detection metrics equal pycocotools' COCOeval", () => {
  for (const c of fixture.cases) {
    it(`case "${c.name}": the 12 summary numbers, per-class AP / AP50 / AP75 / AR@100 and PR curves within 1e-4`, () => {
      const metrics = evaluateDetections(imagesOf(c), c.classes);
      for (const [name, value] of Object.entries(c.reference.stats)) {
        expect(Math.abs((metrics as any)[name] - (value as number)), name).toBeLessThan(1e-4);
      }
      c.reference.perClass.forEach((ref: any, k: number) => {
        const mine = metrics.perClass[k]!;
        expect(mine.name).toBe(ref.name);
        for (const key of ['AP', 'AP50', 'AP75', 'AR100']) expect(Math.abs((mine as any)[key] - ref[key]), `${ref.name} ${key}`).toBeLessThan(1e-4);
        const curve = metrics.prCurves.iou50[k]!;
        ref.pr50.forEach((p: number, r: number) => expect(Math.abs(curve[r]! - p), `${ref.name} precision at recall ${r}%`).toBeLessThan(1e-4));
      });
    });
  }

  it('counts precision, recall and F1 at the score threshold with COCO matching at IoU 0.5', () => {
    const gt = (box: Box, crowd = false) => ({ label: 0, box, crowd, area: (box[2] - box[0]) * (box[3] - box[1]) });
    const images: EvaluatedImage[] = [
      {
        boxes: [gt([0, 0, 100, 100]), gt([200, 200, 300, 300]), gt([400, 0, 500, 100], true)],
        detections: [
          { label: 0, score: 0.9, box: [5, 5, 100, 100] }, // true positive
          { label: 0, score: 0.8, box: [0, 0, 100, 100] }, // duplicate of a matched box: false positive
          { label: 0, score: 0.7, box: [410, 10, 490, 90] }, // inside a crowd region: ignored
          { label: 0, score: 0.1, box: [200, 200, 300, 300] }, // below the threshold: not counted, so a miss
        ],
      },
    ];
    const metrics = evaluateDetections(images, ['thing'], { scoreThreshold: 0.5 });
    expect(metrics.atThreshold).toMatchObject({ truePositives: 1, falsePositives: 1, falseNegatives: 1, precision: 0.5, recall: 0.5, f1: 0.5 });
    expect(metrics.perClass[0]).toMatchObject({ support: 2, precision: 0.5, recall: 0.5 });
    // All detections ranked: TP, FP, (ignored), TP → at IoU 0.5 precision 1 up to recall 0.5, then 2/3 up to 1.
    expect(metrics.prCurves.iou50[0]![50]).toBeCloseTo(1, 12);
    expect(metrics.prCurves.iou50[0]![100]).toBeCloseTo(2 / 3, 12);
  });
});
