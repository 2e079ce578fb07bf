import { readFile } from 'node:fs/promises';
import { compare, type SkippedInput, type SplitName } from '../data/dataset.js';
import { readImageHeader } from '../data/image-decode.js';
import { dataError, messageOf } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { checkBox, orientBox, type GroundTruthBox, type RawBox } from './boxes.js';

/** One image and its boxes; boxes are in the displayed image's pixels (EXIF orientation applied). */
export interface DetectionItem {
  /** The image file. */
  source: string;
  /** Displayed width and height. */
  width: number;
  height: number;
  /** No boxes: a negative (background) image. */
  boxes: GroundTruthBox[];
  load(): Promise<Uint8Array>;
}

export type DetectionFormat = 'coco' | 'yolo' | 'voc';

export interface DetectionDataset {
  origin: string;
  format: DetectionFormat;
  classes: string[];
  train: DetectionItem[];
  validation: DetectionItem[];
  test?: DetectionItem[];
  validationSource: 'given' | { heldOutFraction: number; seed: number };
  /** Images and boxes left out, each with the file and the reason (annotation id or line). */
  skipped: SkippedInput[];
}

export interface DetectionSplitOptions {
  /** Share of the images held out for validation when the data has no validation split (default 0.2). */
  validationFraction?: number;
  seed?: number;
}

/** An image as a reader found it, with its boxes not yet checked. */
export interface RawImage {
  path: string;
  /** The size the annotation file gives (COCO, VOC), when it gives one. */
  declaredSize?: { width: number; height: number };
  /** Boxes in pixels of the declared frame, or fractions of the displayed size when `normalised` (YOLO). */
  boxes: RawBox[];
  normalised?: boolean;
  /** The annotation file, for messages about its boxes. */
  annotationFile: string;
}

/**
 * Turns what a reader found into checked items: images that are missing or unreadable are skipped,
 * boxes are checked (`checkBox`) and brought into the displayed frame. Sizes come from the image's own
 * header, not the annotation file: when the two disagree only by EXIF orientation, the boxes were drawn
 * on the stored pixels and are turned with them; any other disagreement skips the image, since its
 * boxes and pixels cannot be trusted to match.
 */
export async function checkImages(raws: RawImage[], skipped: SkippedInput[]): Promise<DetectionItem[]> {
  const items: DetectionItem[] = [];
  for (const raw of raws) {
    let header;
    try {
      header = await readImageHeader(await readFile(raw.path));
    } catch (error) {
      const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
      skipped.push({ source: raw.path, reason: missing ? `image listed in ${raw.annotationFile} is missing` : `cannot read image: ${messageOf(error)}` });
      continue;
    }
    const turned = header.orientation >= 5;
    const width = turned ? header.height : header.width;
    const height = turned ? header.width : header.height;
    let orient = (box: RawBox['box']) => box;
    const declared = raw.declaredSize;
    if (declared && !(declared.width === width && declared.height === height)) {
      if (turned && declared.width === header.width && declared.height === header.height) {
        orient = (box) => orientBox(box, header.orientation, header.width, header.height);
      } else {
        skipped.push({
          source: raw.path,
          reason: `${raw.annotationFile} gives its size as ${declared.width}×${declared.height}, but the image is ${width}×${height}` +
            (header.orientation > 1 ? ` (EXIF orientation ${header.orientation} applied)` : '') + '; its boxes would not match its pixels',
        });
        continue;
      }
    }
    const boxes: GroundTruthBox[] = [];
    for (const rawBox of raw.boxes) {
      const box = raw.normalised
        ? normalisedToPixels(rawBox.box, width, height)
        : orient(rawBox.box);
      const checked = checkBox({ ...rawBox, box }, width, height);
      if ('reason' in checked) skipped.push({ source: raw.annotationFile, reason: checked.reason });
      else boxes.push(checked);
    }
    const path = raw.path;
    items.push({ source: path, width, height, boxes, load: () => readFile(path) });
  }
  return items;
}

/** YOLO's `cx cy w h` fractions (carried in `box` as is) → pixel corners. */
function normalisedToPixels([cx, cy, w, h]: RawBox['box'], width: number, height: number): RawBox['box'] {
  return [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height];
}

/**
 * Assembles the dataset from checked splits: without a validation split, a seeded share of the
 * training images is held out (by image, so an image's boxes stay together). Nothing to train on is
 * an error.
 */
export function assembleDataset(
  origin: string,
  format: DetectionFormat,
  classes: string[],
  splits: Partial<Record<SplitName, DetectionItem[]>>,
  skipped: SkippedInput[],
  options: DetectionSplitOptions,
): DetectionDataset {
  if (classes.length === 0) throw dataError('no classes found (no category, name or object)', origin);
  const trainItems = splits.train ?? [];
  const boxes = trainItems.reduce((sum, item) => sum + item.boxes.length, 0);
  if (trainItems.length === 0 || boxes === 0) {
    const why = skipped.length ? `; ${skipped.length} image(s) or box(es) were skipped, first: ${skipped[0]!.source}: ${skipped[0]!.reason}` : '';
    throw dataError(`nothing usable to train on: ${trainItems.length} training image(s) with ${boxes} box(es)${why}`, origin);
  }
  const test = splits.test?.length ? splits.test : undefined;
  if (splits.validation?.length) {
    return { origin, format, classes, train: trainItems, validation: splits.validation, test, validationSource: 'given', skipped };
  }
  const fraction = options.validationFraction ?? 0.2;
  const seed = options.seed ?? 0;
  const { train, validation } = splitByImage(trainItems, fraction, seed, origin);
  return { origin, format, classes, train, validation, test, validationSource: { heldOutFraction: fraction, seed }, skipped };
}

/** Holds out `fraction` of the images (at least one, leaving at least one), by a seeded shuffle of the sorted list. */
export function splitByImage<T extends { source: string }>(items: T[], fraction: number, seed: number, origin: string): { train: T[]; validation: T[] } {
  if (!(fraction > 0 && fraction < 1)) throw dataError(`the validation fraction must be between 0 and 1 (exclusive), got ${fraction}`);
  if (items.length < 2) throw dataError(`${items.length} training image(s): at least 2 are needed to hold one out for validation (or give a validation split)`, origin);
  const shuffled = new Rng(seed).shuffle([...items].sort((a, b) => compare(a.source, b.source)));
  const held = Math.min(items.length - 1, Math.max(1, Math.round(items.length * fraction)));
  return { validation: shuffled.slice(0, held), train: shuffled.slice(held) };
}

/** Reports ids seen twice: the first is kept, later ones are skipped with where they are. */
export class DuplicateGuard<K> {
  private readonly seen = new Set<K>();
  constructor(private readonly what: string) {}
  /** True the first time `key` is seen; afterwards records a skip and returns false. */
  firstTime(key: K, source: string, skipped: SkippedInput[]): boolean {
    if (!this.seen.has(key)) {
      this.seen.add(key);
      return true;
    }
    skipped.push({ source, reason: `duplicate ${this.what} ${String(key)} (the first one is kept)` });
    return false;
  }
}
