/**
 * Boxes as every detection reader hands them on: corners `[x1, y1, x2, y2]` in pixels of the image
 * as it is displayed (EXIF orientation applied), x to the right and y down, with x2 > x1 and y2 > y1.
 */
export type Box = [number, number, number, number];

export interface GroundTruthBox {
  /** Index into the dataset's classes. */
  label: number;
  box: Box;
  /**
   * A region evaluation ignores rather than counts: COCO's `iscrowd`, Pascal VOC's `difficult`.
   * Detections on it are neither true nor false positives (pycocotools' rule).
   */
  crowd: boolean;
  /** The area COCO's small / medium / large ranges are judged by: the annotation's `area` when given, else the box's. */
  area: number;
}

export const boxArea = (box: Box): number => Math.max(0, box[2] - box[0]) * Math.max(0, box[3] - box[1]);

/** Intersection over union of two boxes (0 when either is empty). */
export function iou(a: Box, b: Box): number {
  const w = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const h = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  return inter / (boxArea(a) + boxArea(b) - inter);
}

/** A box as a reader found it, before it is checked: where it was written, for messages. */
export interface RawBox {
  /** "annotation id 17", "line 3", "object 2": what a user searches the file for. */
  where: string;
  /** The class index, or the name a reader could not map to one. */
  label: number | { unknown: string };
  /** Corners in the frame the annotation file describes (see `orientBox`). */
  box: Box;
  crowd: boolean;
  area?: number;
}

/**
 * Checks one box against the image it belongs to: NaN or infinite coordinates, unknown classes and
 * boxes with no width or height are rejected; a box reaching outside the image is clipped to it, and
 * rejected when nothing is left. Returns the usable box, or why not.
 */
export function checkBox(raw: RawBox, width: number, height: number): GroundTruthBox | { reason: string } {
  const [x1, y1, x2, y2] = raw.box;
  if (!raw.box.every(Number.isFinite)) return { reason: `${raw.where}: coordinates are not numbers (${raw.box.join(', ')})` };
  if (typeof raw.label !== 'number') return { reason: `${raw.where}: unknown class "${raw.label.unknown}"` };
  if (!(x2 > x1 && y2 > y1)) return { reason: `${raw.where}: degenerate box (width ${fmt(x2 - x1)}, height ${fmt(y2 - y1)})` };
  const clipped: Box = [clamp(x1, width), clamp(y1, height), clamp(x2, width), clamp(y2, height)];
  if (!(clipped[2] > clipped[0] && clipped[3] > clipped[1])) {
    return { reason: `${raw.where}: box [${raw.box.map(fmt).join(', ')}] lies outside the ${width}×${height} image` };
  }
  const area = raw.area !== undefined && Number.isFinite(raw.area) && raw.area > 0 ? raw.area : boxArea(clipped);
  return { label: raw.label, box: clipped, crowd: raw.crowd, area };
}

const clamp = (value: number, limit: number) => Math.min(limit, Math.max(0, value));
const fmt = (value: number) => (Number.isInteger(value) ? String(value) : value.toFixed(2));

/**
 * Maps a box drawn on an image's stored pixels into the displayed frame, for EXIF orientation
 * 1–8 (the orientation says how to turn the stored pixels to display them; `width`/`height` are the
 * stored size). Corner-exact: orientation 6 (turn 90° clockwise) sends stored (x, y) to (H - y, x).
 */
export function orientBox(box: Box, orientation: number, width: number, height: number): Box {
  const corners = [
    [box[0], box[1]],
    [box[2], box[3]],
  ].map(([x, y]) => orientPoint(x!, y!, orientation, width, height));
  const xs = corners.map((c) => c[0]!);
  const ys = corners.map((c) => c[1]!);
  return [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
}

function orientPoint(x: number, y: number, orientation: number, w: number, h: number): [number, number] {
  switch (orientation) {
    case 2: return [w - x, y]; // mirrored
    case 3: return [w - x, h - y]; // 180°
    case 4: return [x, h - y]; // mirrored vertically
    case 5: return [y, x]; // transposed
    case 6: return [h - y, x]; // 90° clockwise
    case 7: return [h - y, w - x]; // transversed
    case 8: return [y, w - x]; // 90° counter-clockwise
    default: return [x, y];
  }
}
