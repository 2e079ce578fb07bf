/**
 * The augmented views detector fine-tuning (`train-detector.ts`) trains on, pixels and boxes alike.
 * A view is drawn from its seed alone (`seedOf`: the image's content, the run's seed, the view
 * number), so the cached activations of a view and the boxes drawn for it later always agree:
 * random scale and crop (the image stretched to 0.6–1.4 of the input side and placed at a random
 * offset: zoomed out it lies wholly inside on grey, zoomed in the input is a crop of it), then
 * horizontal flip, then colour jitter. Boxes follow the same affine map and are clipped to the
 * input; what is left of a box too little to stand for the object is dropped (`placeBoxes`).
 *
 * The scale and crop are the views' `settings`, so they enter the cache key (`viewKeys`): views
 * cached without them (flip and jitter only) are never read as scaled ones. View 0 is the plain input.
 */
import type { AugmentationView } from '../backbones/backbone.js';
import { type AugmentedViews, seedOf } from '../features/extract.js';
import { Rng } from '../util/rng.js';
import type { Box } from './boxes.js';
import { CENTERNET_INPUT_SIZE } from './centernet.js';
import type { DetectionItem } from './detection-dataset.js';
import { type InputPlacement, prepareDetectorInput } from './detector-input.js';

/** The views' settings (JSON-able: part of the cache key). `scale`: the range of the stretched image's side over the input's; absent: no scale or crop. */
export interface DetectorAugmentation {
  scale?: [number, number];
}

/** Random scale and crop: 0.6–1.4 of the input side, about CenterNet's own range (ctdet.py: 0.6–1.3 in steps of 0.1). */
export const SCALE_CROP: DetectorAugmentation = { scale: [0.6, 1.4] };

/**
 * A clipped box is kept when at least this share of its area is still inside the input: a fifth of
 * an insect or a face is rarely recognisable as one, and a centre placed on such a fragment teaches
 * the heatmap to fire on fragments, with sides the object does not fill.
 */
export const MIN_VISIBLE_AREA = 0.2;
/** ...and each of its visible sides spans at least this many input pixels: below half a stride-4 cell its sides say nothing. */
export const MIN_VISIBLE_SIDE = 2;

export interface ViewAugmentation {
  flip: boolean;
  brightness: number;
  contrast: number;
  saturation: number;
  /** The scale and crop, when the settings ask for it. */
  placement?: InputPlacement;
}

/** The `views` extraction is asked for: `count` augmented views per training image, with or without scale and crop. */
export function detectorViews(count: number, seed: number, scaleCrop: boolean): AugmentedViews | undefined {
  return count > 0 ? { count, seed, ...(scaleCrop ? { settings: SCALE_CROP } : {}) } : undefined;
}

/** The view `extractFeatures` hands to `prepare` for view `index` of an image (undefined: the plain view 0), for drawing its boxes. */
export function trainingView(contentKey: string, views: AugmentedViews | undefined, index: number): AugmentationView | undefined {
  if (index === 0 || !views) return undefined;
  return { index, seed: seedOf(contentKey, views.seed, index), settings: views.settings };
}

/** A view's random choices, from its seed and settings alone, so pixels and boxes are transformed alike. */
export function viewAugmentation(view: AugmentationView, size = CENTERNET_INPUT_SIZE): ViewAugmentation {
  const rng = new Rng(view.seed);
  // Drawn first and in this order, as before scale and crop existed, so flip + jitter views are unchanged (and so are their cache keys).
  const colour = { flip: rng.next() < 0.5, brightness: rng.uniform(-25, 25), contrast: rng.uniform(0.75, 1.25), saturation: rng.uniform(0.7, 1.3) };
  const scale = settingsOf(view).scale;
  if (!scale) return colour;
  const side = Math.max(1, Math.round(size * rng.uniform(scale[0], scale[1])));
  // Offsets keep the input covered when zoomed in and the image whole when zoomed out; whole pixels, so pasting needs no resampling.
  const offset = () => Math.round(Math.min(0, size - side) + rng.next() * Math.abs(size - side));
  return { ...colour, placement: { side, left: offset(), top: offset() } };
}

/** A view's input pixels (HWC, size × size, float32 in 0–255): the plain input for view 0. What the frozen prefix runs on. */
export async function viewPixels(bytes: Uint8Array, view?: AugmentationView, source?: string, size = CENTERNET_INPUT_SIZE): Promise<Float32Array> {
  if (!view) return Float32Array.from((await prepareDetectorInput(bytes, size, source)).pixels);
  const augmentation = viewAugmentation(view, size);
  const { pixels } = await prepareDetectorInput(bytes, size, source, augmentation.placement);
  return flipAndJitter(pixels, size, augmentation);
}

/** A view's boxes in the input frame (size × size, stretched), crowd regions left out: what its training targets are drawn from. */
export function viewBoxes(item: DetectionItem, view?: AugmentationView, size = CENTERNET_INPUT_SIZE): { label: number; box: Box }[] {
  const sx = size / item.width;
  const sy = size / item.height;
  const stretched = item.boxes.filter((b) => !b.crowd).map(({ label, box: [x1, y1, x2, y2] }) => ({ label, box: [x1 * sx, y1 * sy, x2 * sx, y2 * sy] as Box }));
  if (!view) return stretched;
  const augmentation = viewAugmentation(view, size);
  const placed = augmentation.placement ? placeBoxes(stretched, augmentation.placement, size) : stretched;
  return augmentation.flip ? placed.map(({ label, box: [x1, y1, x2, y2] }) => ({ label, box: [size - x2, y1, size - x1, y2] as Box })) : placed;
}

/** Boxes of the stretched input moved as `placement` moves its pixels, clipped to the input; a clipped box with too little left is dropped. */
export function placeBoxes(boxes: { label: number; box: Box }[], placement: InputPlacement, size: number): { label: number; box: Box }[] {
  const k = placement.side / size;
  const kept: { label: number; box: Box }[] = [];
  for (const { label, box } of boxes) {
    const [x1, y1, x2, y2] = [box[0] * k + placement.left, box[1] * k + placement.top, box[2] * k + placement.left, box[3] * k + placement.top];
    const clipped: Box = [Math.max(0, x1), Math.max(0, y1), Math.min(size, x2), Math.min(size, y2)];
    const [w, h] = [clipped[2] - clipped[0], clipped[3] - clipped[1]];
    if (w <= 0 || h <= 0) continue;
    const cut = clipped[0] !== x1 || clipped[1] !== y1 || clipped[2] !== x2 || clipped[3] !== y2;
    // Only cut boxes are judged: an uncut one, however small, is all there, and dropping it would make its object a negative.
    if (cut && (w * h < MIN_VISIBLE_AREA * (x2 - x1) * (y2 - y1) || w < MIN_VISIBLE_SIDE || h < MIN_VISIBLE_SIDE)) continue;
    kept.push({ label, box: clipped });
  }
  return kept;
}

function settingsOf(view: AugmentationView): DetectorAugmentation {
  const settings = (view.settings ?? {}) as DetectorAugmentation;
  const scale = settings.scale;
  if (scale !== undefined && !(Array.isArray(scale) && scale.length === 2 && scale[0] > 0 && scale[1] >= scale[0])) {
    throw new Error(`detector augmentation: scale must be [low, high] with 0 < low <= high, got ${JSON.stringify(scale)}`);
  }
  return settings;
}

/** Flip and colour jitter of HWC uint8 pixels (size × size), as float32 in 0–255. */
function flipAndJitter(pixels: Uint8Array, size: number, view: ViewAugmentation): Float32Array {
  const out = new Float32Array(pixels.length);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const from = (y * size + (view.flip ? size - 1 - x : x)) * 3;
      const to = (y * size + x) * 3;
      const r = pixels[from]!;
      const g = pixels[from + 1]!;
      const b = pixels[from + 2]!;
      const grey = 0.299 * r + 0.587 * g + 0.114 * b;
      for (let c = 0; c < 3; c++) {
        const saturated = grey + (pixels[from + c]! - grey) * view.saturation;
        out[to + c] = Math.min(255, Math.max(0, (saturated - 128) * view.contrast + 128 + view.brightness));
      }
    }
  }
  return out;
}
