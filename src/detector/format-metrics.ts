import type { DetectionMetrics } from './coco-eval.js';

const show = (value: number) => (value < 0 ? '   n/a' : value.toFixed(4).padStart(6));

/** COCO's summary as pycocotools prints it (12 lines), then per-class AP and P/R/F1 at the score threshold. */
export function formatDetectionMetrics(m: DetectionMetrics): string {
  const rows: [string, number][] = [
    ['AP   @[IoU=0.50:0.95 | area=   all | maxDets=100]  mAP', m.mAP],
    ['AP   @[IoU=0.50      | area=   all | maxDets=100]  mAP50', m.mAP50],
    ['AP   @[IoU=0.75      | area=   all | maxDets=100]  mAP75', m.mAP75],
    ['AP   @[IoU=0.50:0.95 | area= small | maxDets=100]', m.APsmall],
    ['AP   @[IoU=0.50:0.95 | area=medium | maxDets=100]', m.APmedium],
    ['AP   @[IoU=0.50:0.95 | area= large | maxDets=100]', m.APlarge],
    ['AR   @[IoU=0.50:0.95 | area=   all | maxDets=  1]', m.AR1],
    ['AR   @[IoU=0.50:0.95 | area=   all | maxDets= 10]', m.AR10],
    ['AR   @[IoU=0.50:0.95 | area=   all | maxDets=100]', m.AR100],
    ['AR   @[IoU=0.50:0.95 | area= small | maxDets=100]', m.ARsmall],
    ['AR   @[IoU=0.50:0.95 | area=medium | maxDets=100]', m.ARmedium],
    ['AR   @[IoU=0.50:0.95 | area= large | maxDets=100]', m.ARlarge],
  ];
  const width = Math.max(5, ...m.perClass.map((c) => c.name.length));
  const t = m.atThreshold;
  return [
    ...rows.map(([label, value]) => `${label.padEnd(56)} ${show(value)}`),
    '',
    `${'class'.padEnd(width)}  boxes      AP    AP50    AP75  AR@100  P@${t.threshold}  R@${t.threshold}`,
    ...m.perClass.map((c) => `${c.name.padEnd(width)}  ${String(c.support).padStart(5)}  ${[c.AP, c.AP50, c.AP75, c.AR100].map(show).join('  ')}  ${c.precision.toFixed(3).padStart(6)}  ${c.recall.toFixed(3).padStart(6)}`),
    '',
    `at score ≥ ${t.threshold} (IoU 0.5): precision ${t.precision.toFixed(3)}, recall ${t.recall.toFixed(3)}, F1 ${t.f1.toFixed(3)} (${t.truePositives} true / ${t.falsePositives} false positives, ${t.falseNegatives} missed)`,
  ].join('\n');
}
