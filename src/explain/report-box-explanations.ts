/**
 * Per-box Grad-CAM for the detection report's gallery: on each image, the false positives and the
 * most confident predictions get their map, embedded as a small grayscale PNG (values 0–255 = the
 * map's [0, 1]) that the page colours and stretches over the thumbnail. Grayscale rather than a
 * coloured overlay, so the page (and a test) can read the map's values back.
 */
import sharp from 'sharp';
import type { Detection } from '../detector/coco-eval.js';
import type { DetectionItem } from '../detector/detection-dataset.js';
import type { Detector } from '../detector/detector.js';
import type { GalleryImage } from '../report/detection-report.js';
import type { Reporter } from '../util/progress.js';
import { DetectionExplainer } from './detection-grad-cam.js';
import { normalised, resizeGrid, type Grid } from './pixel-grid.js';

/** Longest side of an embedded map: enough under a 320-px thumbnail, ~2 KB of PNG per box. */
export const REPORT_MAP_SIDE = 64;

export interface GalleryExplanationSettings {
  /** The most confident predictions explained per image (default 3). */
  mostConfident?: number;
  /** At most this many boxes per image, false positives included (default 6). */
  maxPerImage?: number;
}

export interface GalleryExplanations {
  method: 'gradcam';
  mostConfident: number;
  maxPerImage: number;
  /** Boxes given a map, over the whole gallery. */
  boxes: number;
}

/** The map the report embeds for a box: Grad-CAM on the feature grid, at most REPORT_MAP_SIDE a side, in [0, 1]. */
export function reportBoxMap(raw: Grid): Grid {
  const scale = Math.min(1, REPORT_MAP_SIDE / Math.max(raw.width, raw.height));
  return normalised(resizeGrid(raw, Math.max(1, Math.round(raw.width * scale)), Math.max(1, Math.round(raw.height * scale))));
}

async function grayscalePng(grid: Grid): Promise<string> {
  const bytes = Buffer.alloc(grid.values.length);
  for (let i = 0; i < bytes.length; i++) bytes[i] = Math.round(Math.min(1, Math.max(0, grid.values[i]!)) * 255);
  const png = await sharp(bytes, { raw: { width: grid.width, height: grid.height, channels: 1 } }).toColourspace('b-w').png().toBuffer();
  return `data:image/png;base64,${png.toString('base64')}`;
}

/** Which of an image's drawn predictions get a map: the `mostConfident` first, then false positives by score. */
export function boxesToExplain(image: Pick<GalleryImage, 'predictions'>, settings: Required<GalleryExplanationSettings>): number[] {
  const byScore = image.predictions.map((p, i) => [p, i] as const).sort((a, b) => b[0].score - a[0].score);
  const chosen = byScore.slice(0, settings.mostConfident).map(([, i]) => i);
  for (const [p, i] of byScore) if (p.outcome === 'fp' && !chosen.includes(i)) chosen.push(i);
  return chosen.slice(0, settings.maxPerImage);
}

/**
 * Adds `gradCam` to the chosen predictions of `gallery` (in place; `items[i]` is `gallery[i]`'s
 * image). Refuses detectors per-box Grad-CAM does not cover, saying why.
 */
export async function explainGallery(detector: Detector, gallery: GalleryImage[], items: DetectionItem[], classes: readonly string[], threshold: number, settings: GalleryExplanationSettings = {}, reporter?: Reporter): Promise<GalleryExplanations> {
  const resolved = { mostConfident: settings.mostConfident ?? 3, maxPerImage: settings.maxPerImage ?? 6 };
  const explainer = await DetectionExplainer.forDetector(detector);
  let boxes = 0;
  try {
    const work = gallery.map((image, i) => ({ image, item: items[i]!, chosen: image.thumbnail ? boxesToExplain(image, resolved) : [] })).filter((w) => w.chosen.length > 0);
    const progress = reporter?.task('per-box Grad-CAM', work.reduce((n, w) => n + w.chosen.length, 0), 'boxes');
    for (const { image, item, chosen } of work) {
      const wanted = chosen.map((i) => image.predictions[i]!);
      // The gallery's predictions are the explainer's own detections (same decode, threshold and
      // order), matched back by class name, score and box.
      const same = (d: Detection, k: number) => detector.classes[d.label] === classes[wanted[k]!.label] && Math.abs(d.score - wanted[k]!.score) < 1e-4 && d.box.every((v, j) => Math.abs(v - wanted[k]!.box[j]!) < 0.5);
      const explained = await explainer.explain(await item.load(), { threshold, maxDetections: 100, source: item.source, only: (d) => wanted.some((_, k) => same(d, k)) });
      for (const box of explained) {
        const k = wanted.findIndex((_, k) => same(box, k));
        if (k < 0) continue;
        const map = reportBoxMap(box.raw);
        image.predictions[chosen[k]!]!.gradCam = { src: await grayscalePng(map), width: map.width, height: map.height, peak: box.peak };
        boxes++;
        progress?.tick();
      }
    }
    progress?.done();
  } finally {
    await explainer.release();
  }
  return { method: 'gradcam', ...resolved, boxes };
}
