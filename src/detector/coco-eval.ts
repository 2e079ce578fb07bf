/**
 * COCO's detection metrics, computed exactly as pycocotools' `COCOeval` (bbox) computes them:
 * greedy matching by score at ten IoU thresholds 0.50:0.05:0.95, crowd regions matched by
 * intersection over the detection's area and ignored, small / medium / large judged by the ground
 * truth's COCO `area`, at most 100 detections per image and class, and precision interpolated at 101
 * recall points. Hand-written (no JavaScript port of COCOeval exists); checked against pycocotools
 * within 1e-4 by test/detector-eval.test.ts. Like COCOeval, a number with nothing to average
 * (a class without ground truth) is -1.
 */
import { boxArea, type Box, type GroundTruthBox } from './boxes.js';

export interface Detection {
  label: number;
  score: number;
  box: Box;
}

/** One image's ground truth and the model's detections on it. */
export interface EvaluatedImage {
  boxes: GroundTruthBox[];
  detections: Detection[];
}

export interface ClassDetectionMetrics {
  name: string;
  /** Ground-truth boxes (crowd regions excluded). */
  support: number;
  AP: number;
  AP50: number;
  AP75: number;
  AR100: number;
  /** At the score threshold, IoU 0.5. */
  precision: number;
  recall: number;
  f1: number;
}

export interface DetectionMetrics {
  /** COCO's 12 numbers: AP averaged over IoU 0.50:0.95 (`mAP`), at 0.5 and 0.75, by area, and AR at 1 / 10 / 100 detections and by area. */
  mAP: number;
  mAP50: number;
  mAP75: number;
  APsmall: number;
  APmedium: number;
  APlarge: number;
  AR1: number;
  AR10: number;
  AR100: number;
  ARsmall: number;
  ARmedium: number;
  ARlarge: number;
  perClass: ClassDetectionMetrics[];
  /** Counts and rates of detections scoring at least `threshold`, matched at IoU 0.5 (COCO's matching), over all classes. */
  atThreshold: { threshold: number; truePositives: number; falsePositives: number; falseNegatives: number; precision: number; recall: number; f1: number };
  /** Interpolated precision at `recall` (101 points) per class, at IoU 0.5 and 0.75 (area all, 100 detections); -1 for a class without ground truth. */
  prCurves: { recall: number[]; iou50: number[][]; iou75: number[][] };
  images: number;
}

export interface DetectionEvalOptions {
  /** Score from which a detection counts for precision / recall / F1 (default 0.25). */
  scoreThreshold?: number;
}

// np.linspace as pycocotools builds them, for bit-equal thresholds.
const IOU_THRESHOLDS = Array.from({ length: 10 }, (_, i) => (i === 9 ? 0.95 : i * ((0.95 - 0.5) / 9) + 0.5));
const RECALL_POINTS = Array.from({ length: 101 }, (_, i) => (i === 100 ? 1 : i * 0.01));
const MAX_DETECTIONS = [1, 10, 100];
const AREA_RANGES: [number, number][] = [[0, 1e10], [0, 32 ** 2], [32 ** 2, 96 ** 2], [96 ** 2, 1e10]];

/** One (image, class) at one area range: pycocotools' `evaluateImg`. */
interface ImageClassEval {
  /** Detection scores, sorted (descending, stable), at most 100. */
  scores: number[];
  /** [threshold][detection]: matched a ground truth. */
  matched: boolean[][];
  /** [threshold][detection]: ignored (matched a crowd / out-of-range box, or unmatched and itself out of range). */
  ignored: boolean[][];
  /** Ground truths that count. */
  counted: number;
}

export function evaluateDetections(images: EvaluatedImage[], classes: string[], options: DetectionEvalOptions = {}): DetectionMetrics {
  const threshold = options.scoreThreshold ?? 0.25;
  const T = IOU_THRESHOLDS.length;
  const R = RECALL_POINTS.length;
  const K = classes.length;
  // precision[t][k][a][m] → 101 values (or undefined: no ground truth, COCO's -1); recall likewise a number or -1.
  const precision: (number[] | undefined)[][][][] = IOU_THRESHOLDS.map(() => classes.map(() => AREA_RANGES.map(() => MAX_DETECTIONS.map(() => undefined))));
  const recall: number[][][][] = IOU_THRESHOLDS.map(() => classes.map(() => AREA_RANGES.map(() => MAX_DETECTIONS.map(() => -1))));
  const counts = { tp: 0, fp: 0, fn: 0 };
  const perClassCounts = classes.map(() => ({ tp: 0, fp: 0, fn: 0 }));

  for (let k = 0; k < K; k++) {
    const perArea: (ImageClassEval | undefined)[][] = AREA_RANGES.map(() => []);
    for (const image of images) {
      const gts = image.boxes.filter((b) => b.label === k);
      const dts = stableSortByScore(image.detections.filter((d) => d.label === k)).slice(0, 100);
      if (gts.length === 0 && dts.length === 0) continue;
      const ious = dts.map((d) => gts.map((g) => boxIou(d.box, g.box, g.crowd)));
      AREA_RANGES.forEach((range, a) => perArea[a]!.push(evaluateImageClass(gts, dts, ious, range)));
      // Precision / recall at the score threshold: COCO's matching at IoU 0.5, all areas.
      const all = perArea[0]!.at(-1)!;
      const c = perClassCounts[k]!;
      all.scores.forEach((score, d) => {
        if (score < threshold || all.ignored[0]![d]) return;
        if (all.matched[0]![d]) c.tp++;
        else c.fp++;
      });
      c.fn += all.counted - all.scores.filter((score, d) => score >= threshold && all.matched[0]![d] && !all.ignored[0]![d]).length;
    }
    AREA_RANGES.forEach((_, a) => {
      MAX_DETECTIONS.forEach((maxDet, m) => {
        const evals = perArea[a]!.filter((e): e is ImageClassEval => e !== undefined);
        const counted = evals.reduce((sum, e) => sum + e.counted, 0);
        if (counted === 0) return;
        // Every image's first maxDet detections, merged by score (stable: image order breaks ties, as numpy's mergesort).
        const merged: { score: number; e: ImageClassEval; d: number }[] = [];
        for (const e of evals) for (let d = 0; d < Math.min(maxDet, e.scores.length); d++) merged.push({ score: e.scores[d]!, e, d });
        const order = stableSortByScore(merged);
        for (let t = 0; t < T; t++) {
          let tp = 0;
          let fp = 0;
          const rc: number[] = [];
          const pr: number[] = [];
          for (const { e, d } of order) {
            if (!e.ignored[t]![d]) {
              if (e.matched[t]![d]) tp++;
              else fp++;
            }
            rc.push(tp / counted);
            pr.push(tp / (fp + tp + Number.EPSILON));
          }
          recall[t]![k]![a]![m] = rc.length ? rc.at(-1)! : 0;
          for (let i = pr.length - 1; i > 0; i--) if (pr[i]! > pr[i - 1]!) pr[i - 1] = pr[i]!;
          const q = new Array<number>(R).fill(0);
          let pi = 0;
          for (let ri = 0; ri < R; ri++) {
            // np.searchsorted(rc, recThr, side='left'): the first index with rc >= recThr.
            while (pi < rc.length && rc[pi]! < RECALL_POINTS[ri]!) pi++;
            if (pi >= rc.length) break;
            q[ri] = pr[pi]!;
          }
          precision[t]![k]![a]![m] = q;
        }
      });
    });
  }

  const ap = (ts: number[], ks: number[], a: number, m: number): number => {
    let sum = 0;
    let n = 0;
    for (const t of ts) for (const k of ks) for (const v of precision[t]![k]![a]![m] ?? []) if (v > -1) { sum += v; n++; }
    return n ? sum / n : -1;
  };
  const ar = (ks: number[], a: number, m: number): number => {
    let sum = 0;
    let n = 0;
    for (let t = 0; t < T; t++) for (const k of ks) { const v = recall[t]![k]![a]![m]!; if (v > -1) { sum += v; n++; } }
    return n ? sum / n : -1;
  };
  const allT = IOU_THRESHOLDS.map((_, t) => t);
  const allK = classes.map((_, k) => k);
  const M100 = 2;
  for (const c of perClassCounts) { counts.tp += c.tp; counts.fp += c.fp; counts.fn += c.fn; }
  const rates = (c: { tp: number; fp: number; fn: number }) => {
    const p = c.tp + c.fp ? c.tp / (c.tp + c.fp) : 0;
    const r = c.tp + c.fn ? c.tp / (c.tp + c.fn) : 0;
    return { precision: p, recall: r, f1: p + r ? (2 * p * r) / (p + r) : 0 };
  };
  const support = classes.map((_, k) => images.reduce((sum, image) => sum + image.boxes.filter((b) => b.label === k && !b.crowd).length, 0));
  return {
    mAP: ap(allT, allK, 0, M100),
    mAP50: ap([0], allK, 0, M100),
    mAP75: ap([5], allK, 0, M100),
    APsmall: ap(allT, allK, 1, M100),
    APmedium: ap(allT, allK, 2, M100),
    APlarge: ap(allT, allK, 3, M100),
    AR1: ar(allK, 0, 0),
    AR10: ar(allK, 0, 1),
    AR100: ar(allK, 0, M100),
    ARsmall: ar(allK, 1, M100),
    ARmedium: ar(allK, 2, M100),
    ARlarge: ar(allK, 3, M100),
    perClass: classes.map((name, k) => ({
      name,
      support: support[k]!,
      AP: ap(allT, [k], 0, M100),
      AP50: ap([0], [k], 0, M100),
      AP75: ap([5], [k], 0, M100),
      AR100: ar([k], 0, M100),
      ...rates(perClassCounts[k]!),
    })),
    atThreshold: { threshold, truePositives: counts.tp, falsePositives: counts.fp, falseNegatives: counts.fn, ...rates(counts) },
    prCurves: {
      recall: RECALL_POINTS,
      iou50: classes.map((_, k) => precision[0]![k]![0]![M100] ?? RECALL_POINTS.map(() => -1)),
      iou75: classes.map((_, k) => precision[5]![k]![0]![M100] ?? RECALL_POINTS.map(() => -1)),
    },
    images: images.length,
  };
}

/** pycocotools' matching of one image's detections of one class to its ground truth, at every IoU threshold. */
function evaluateImageClass(gts: GroundTruthBox[], dts: Detection[], ious: number[][], [lo, hi]: [number, number]): ImageClassEval {
  const gtIgnore = gts.map((g) => g.crowd || g.area < lo || g.area > hi);
  // Counted ground truths first (stable), so a detection prefers them over ignored ones.
  const gOrder = gts.map((_, i) => i).sort((a, b) => Number(gtIgnore[a]) - Number(gtIgnore[b]) || a - b);
  const matched: boolean[][] = [];
  const ignored: boolean[][] = [];
  for (const threshold of IOU_THRESHOLDS) {
    const gtTaken = new Array<boolean>(gts.length).fill(false);
    const dtMatched = new Array<boolean>(dts.length).fill(false);
    const dtIgnored = new Array<boolean>(dts.length).fill(false);
    dts.forEach((_, d) => {
      let best = Math.min(threshold, 1 - 1e-10);
      let m = -1;
      for (const g of gOrder) {
        if (gtTaken[g] && !gts[g]!.crowd) continue;
        // Matched a counted box already and reached the ignored ones: stop.
        if (m > -1 && !gtIgnore[m] && gtIgnore[g]) break;
        if (ious[d]![g]! < best) continue;
        best = ious[d]![g]!;
        m = g;
      }
      if (m === -1) return;
      dtIgnored[d] = gtIgnore[m]!;
      dtMatched[d] = true;
      gtTaken[m] = true;
    });
    dts.forEach((det, d) => {
      const area = boxArea(det.box);
      if (!dtMatched[d] && (area < lo || area > hi)) dtIgnored[d] = true;
    });
    matched.push(dtMatched);
    ignored.push(dtIgnored);
  }
  return { scores: dts.map((d) => d.score), matched, ignored, counted: gtIgnore.filter((ig) => !ig).length };
}

/** COCO's box IoU; against a crowd region, the share of the detection inside it. */
function boxIou(d: Box, g: Box, crowd: boolean): number {
  const w = Math.min(d[2], g[2]) - Math.max(d[0], g[0]);
  const h = Math.min(d[3], g[3]) - Math.max(d[1], g[1]);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  const union = crowd ? boxArea(d) : boxArea(d) + boxArea(g) - inter;
  return inter / union;
}

/** Descending by score; equal scores keep their order (numpy's mergesort, which COCOeval uses). */
function stableSortByScore<T extends { score: number }>(items: T[]): T[] {
  return items.map((item, i) => ({ item, i })).sort((a, b) => b.item.score - a.item.score || a.i - b.i).map(({ item }) => item);
}
