/**
 * The detection report: COCO's summary, per-class AP, PR curves, and a gallery of the evaluated
 * images with ground truth and predictions drawn, filterable by class, false positives and misses,
 * and for CenterNet detectors each image's per-box Grad-CAM (its false positives and most confident
 * predictions, `src/explain/report-box-explanations.ts`) — one self-contained page (`renderPage`: no network, data as JSON, DOM built with textContent).
 */
import { basename } from 'node:path';
import sharp from 'sharp';
import type { SkippedInput } from '../data/dataset.js';
import { iou, type Box } from '../detector/boxes.js';
import type { DetectionMetrics, EvaluatedImage } from '../detector/coco-eval.js';
import type { DetectionItem } from '../detector/detection-dataset.js';
import type { Detector } from '../detector/detector.js';
import { readDetectionDataset } from '../detector/read-dataset.js';
import { explainGallery, type GalleryExplanations, type GalleryExplanationSettings } from '../explain/report-box-explanations.js';
import type { Reporter } from '../util/progress.js';
import { writeFileAtomic } from '../util/atomic.js';
import { DETECTION_SCRIPT } from './detection-client.js';
import { pageGuard, renderPage } from './html.js';

export interface GalleryBox {
  label: number;
  box: Box;
}

export interface GalleryImage {
  source: string;
  width: number;
  height: number;
  /** A JPEG data URI, at most THUMBNAIL_SIDE pixels a side (boxes are drawn over it by the page, in image pixels). */
  thumbnail?: string;
  missing?: string;
  /** Ground truth; `matched` at IoU 0.5 by a prediction scoring ≥ the threshold; crowd regions are not counted. */
  truth: (GalleryBox & { matched: boolean; crowd: boolean })[];
  /** Predictions scoring ≥ the threshold; `outcome`: matched a ground truth (tp), or not (fp), or only a crowd region (ignored). */
  predictions: (GalleryBox & { score: number; outcome: 'tp' | 'fp' | 'ignored'; gradCam?: BoxMap })[];
}

/** A box's Grad-CAM: a grayscale PNG (0–255 = the map's [0, 1]) spanning the whole image, and its peak in image pixels. */
export interface BoxMap {
  src: string;
  width: number;
  height: number;
  peak: { x: number; y: number };
}

export interface DetectionReportData {
  kind: 'detection';
  detector: string;
  layout: string;
  data: string;
  split: 'validation' | 'test';
  classes: string[];
  threshold: number;
  metrics: DetectionMetrics;
  gallery: GalleryImage[];
  /** Images evaluated but left out of the gallery (over `maxGallery`). */
  galleryOmitted: number;
  /** Per-box Grad-CAM in the gallery, or why there is none. */
  explained: GalleryExplanations | { method: 'none'; reason: string };
  skipped: SkippedInput[];
}

export interface DetectionReportOptions {
  /** Score from which predictions are drawn and counted for P/R/F1 (default 0.25). */
  threshold?: number;
  /** At most this many images in the gallery (default 200): thumbnails are embedded. */
  maxGallery?: number;
  seed?: number;
  /**
   * Per-box Grad-CAM in the gallery: `undefined` explains where the detector allows it (CenterNet)
   * and notes why not elsewhere; `true` insists (an error for other layouts); `false` skips it.
   */
  explain?: boolean | GalleryExplanationSettings;
  reporter?: Reporter;
}

const THUMBNAIL_SIDE = 320;

/** Evaluates `detector` on the data's test split (else validation) and builds the page's data. */
export async function buildDetectionReport(detector: Detector, dataPath: string, options: DetectionReportOptions = {}): Promise<DetectionReportData> {
  const threshold = options.threshold ?? 0.25;
  const data = await readDetectionDataset(dataPath, options.seed === undefined ? {} : { seed: options.seed });
  const split = data.test ? 'test' : 'validation';
  const items = data.test ?? data.validation;
  const { metrics, images } = await detector.evaluateImages(items, data.classes, { scoreThreshold: threshold });
  const maxGallery = options.maxGallery ?? 200;
  const gallery = await Promise.all(items.slice(0, maxGallery).map((item, i) => galleryImage(item, images[i]!, threshold)));
  const explainable = Boolean(detector.layout.graphSpec);
  let explained: DetectionReportData['explained'];
  if (options.explain === false) explained = { method: 'none', reason: 'not asked for (--no-explain)' };
  else if (!explainable && options.explain === undefined) explained = { method: 'none', reason: `per-box Grad-CAM covers CenterNet, Ultralytics YOLO and DETR detectors; this is a ${detector.layout.kind} model` };
  else explained = await explainGallery(detector, gallery, items, data.classes, threshold, typeof options.explain === 'object' ? options.explain : {}, options.reporter);
  return {
    kind: 'detection', detector: detector.reference, layout: detector.layout.kind, data: dataPath, split, classes: data.classes, threshold,
    metrics, gallery, galleryOmitted: Math.max(0, items.length - maxGallery), explained, skipped: data.skipped,
  };
}

export async function writeDetectionReport(detector: Detector, dataPath: string, out: string, options: DetectionReportOptions = {}): Promise<{ path: string; data: DetectionReportData }> {
  const data = await buildDetectionReport(detector, dataPath, options);
  const html = await renderPage({
    title: `Detection report: ${detector.reference}`,
    subtitle: `${data.split} split of ${basename(dataPath)}: ${data.metrics.images} images, ${data.classes.length} classes; COCO mAP@[.50:.95] ${data.metrics.mAP.toFixed(3)}`,
    data,
    script: DETECTION_SCRIPT,
  });
  await writeFileAtomic(out, html, { guard: pageGuard('detection report') });
  return { path: out, data };
}

/**
 * Which drawn predictions are true or false positives and which ground truths are missed, at IoU
 * 0.5 and the threshold: greedy by score, each prediction taking the best-overlapping unmatched
 * ground truth of its class, a crowd region only when no real box is left (COCO's matching at one
 * IoU and one area range, which is what `atThreshold` counts).
 */
export function matchAtThreshold(image: EvaluatedImage, threshold: number): Pick<GalleryImage, 'truth' | 'predictions'> {
  const truth = image.boxes.map((b) => ({ label: b.label, box: b.box, matched: false, crowd: b.crowd }));
  const kept = image.detections.filter((d) => d.score >= threshold).sort((a, b) => b.score - a.score);
  const predictions = kept.map((d) => {
    let best = -1;
    let bestIou = 0.5;
    for (const [j, t] of truth.entries()) {
      if (t.label !== d.label || t.crowd || t.matched) continue;
      const overlap = iou(t.box, d.box);
      if (overlap >= bestIou) [best, bestIou] = [j, overlap];
    }
    if (best >= 0) {
      truth[best]!.matched = true;
      return { label: d.label, box: d.box, score: d.score, outcome: 'tp' as const };
    }
    const onCrowd = truth.some((t) => t.crowd && t.label === d.label && iou(t.box, d.box) >= 0.5);
    return { label: d.label, box: d.box, score: d.score, outcome: onCrowd ? ('ignored' as const) : ('fp' as const) };
  });
  return { truth, predictions };
}

async function galleryImage(item: DetectionItem, image: EvaluatedImage, threshold: number): Promise<GalleryImage> {
  const base = { source: item.source, width: item.width, height: item.height, ...matchAtThreshold(image, threshold) };
  try {
    const jpeg = await sharp(await item.load())
      .rotate()
      .resize(THUMBNAIL_SIDE, THUMBNAIL_SIDE, { fit: 'inside', withoutEnlargement: true })
      .flatten({ background: '#ffffff' })
      .jpeg({ quality: 80 })
      .toBuffer();
    return { ...base, thumbnail: `data:image/jpeg;base64,${jpeg.toString('base64')}` };
  } catch (error) {
    return { ...base, missing: `cannot read the image: ${(error as Error).message}` };
  }
}
