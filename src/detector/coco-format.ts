import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { SkippedInput, SplitName } from '../data/dataset.js';
import { dataError, messageOf } from '../util/errors.js';
import type { RawBox } from './boxes.js';
import { assembleDataset, checkImages, DuplicateGuard, type DetectionDataset, type DetectionItem, type DetectionSplitOptions, type RawImage } from './detection-dataset.js';

/**
 * COCO detection JSON, in the two layouts people bring: COCO's own (`annotations/instances_<split>.json`
 * beside `<split>/` or `images/<split>/` image folders) and Roboflow's export (`train/`, `valid/`,
 * `test/`, each holding `_annotations.coco.json` beside its images), or one JSON file whose images lie
 * beside it. Boxes are COCO's `[x, y, width, height]` in pixels.
 */
export const ROBOFLOW_ANNOTATIONS = '_annotations.coco.json';

/** The COCO annotation files under `root`, with the split each is and where its images are; undefined when it is not COCO. */
export async function findCocoFiles(root: string): Promise<{ split: SplitName; file: string; imageDir: string }[] | undefined> {
  const info = await stat(root).catch(() => undefined);
  if (info?.isFile()) return root.toLowerCase().endsWith('.json') ? [{ split: 'train', file: root, imageDir: dirname(root) }] : undefined;
  if (!info?.isDirectory()) return undefined;
  const entries = await readdir(root, { withFileTypes: true });
  const found: { split: SplitName; file: string; imageDir: string }[] = [];
  for (const entry of entries) {
    const split = entry.isDirectory() ? splitOf(entry.name) : undefined;
    const file = join(root, entry.name, ROBOFLOW_ANNOTATIONS);
    if (split && (await exists(file))) found.push({ split, file, imageDir: join(root, entry.name) });
  }
  if (found.length) return found;
  const annotations = entries.find((e) => e.isDirectory() && e.name === 'annotations');
  if (!annotations) return undefined;
  for (const name of (await readdir(join(root, 'annotations'))).sort()) {
    const match = /^instances_(.+)\.json$/.exec(name);
    const split = match && splitOf(match[1]!);
    if (!match || !split) continue;
    const candidates = [join(root, match[1]!), join(root, 'images', match[1]!), join(root, 'images'), root];
    let imageDir = root;
    for (const candidate of candidates) if (await isDir(candidate)) { imageDir = candidate; break; }
    found.push({ split, file: join(root, 'annotations', name), imageDir });
  }
  return found.length ? found : undefined;
}

/** `train2017` → train, `valid` → validation, `test-dev` → test. */
function splitOf(name: string): SplitName | undefined {
  const lower = name.toLowerCase();
  if (lower.startsWith('train')) return 'train';
  if (lower.startsWith('val') || lower === 'dev') return 'validation';
  if (lower.startsWith('test')) return 'test';
  return undefined;
}

export async function readCocoDataset(root: string, options: DetectionSplitOptions = {}): Promise<DetectionDataset> {
  const files = await findCocoFiles(root);
  if (!files) throw dataError(`no COCO annotations found (expected annotations/instances_<split>.json or <split>/${ROBOFLOW_ANNOTATIONS})`, root);
  const trainFile = files.find((f) => f.split === 'train');
  if (!trainFile) throw dataError(`COCO annotations found (${files.map((f) => basename(f.file)).join(', ')}) but none for a training split`, root);
  const skipped: SkippedInput[] = [];
  const trainJson = await readCocoJson(trainFile.file);
  const classes = cocoClasses(trainJson, trainFile.file);
  const splits: Partial<Record<SplitName, DetectionItem[]>> = {};
  for (const entry of files) {
    const json = entry === trainFile ? trainJson : await readCocoJson(entry.file);
    const raws = cocoImages(json, entry.file, entry.imageDir, classes, skipped);
    (splits[entry.split] ??= []).push(...(await checkImages(raws, skipped)));
  }
  return assembleDataset(root, 'coco', classes, splits, skipped, options);
}

interface CocoJson {
  images: any[];
  annotations: any[];
  categories: any[];
}

async function readCocoJson(file: string): Promise<CocoJson> {
  let json: any;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw dataError(`cannot parse COCO JSON: ${messageOf(error)}`, file, error);
  }
  if (!json || typeof json !== 'object' || !Array.isArray(json.images)) throw dataError('not COCO detection JSON: no "images" array', file);
  if (json.annotations !== undefined && !Array.isArray(json.annotations)) throw dataError('"annotations" is not an array', file);
  if (!Array.isArray(json.categories)) throw dataError('not COCO detection JSON: no "categories" array', file);
  return { images: json.images, annotations: json.annotations ?? [], categories: json.categories };
}

/**
 * Class names in category-id order. Roboflow adds a category for the project itself (id 0, the
 * `supercategory` of the real ones) that no box uses: it is left out, since a class nothing is
 * labelled with would only lower mAP.
 */
function cocoClasses(json: CocoJson, file: string): string[] {
  const used = new Set(json.annotations.map((a) => a?.category_id));
  const parents = new Set(json.categories.map((c) => c?.supercategory));
  const names: { id: number; name: string }[] = [];
  for (const category of json.categories) {
    if (typeof category?.name !== 'string' || typeof category.id !== 'number') throw dataError(`a category lacks a numeric "id" or a "name": ${JSON.stringify(category)}`, file);
    if (parents.has(category.name) && !used.has(category.id) && category.supercategory !== category.name) continue;
    if (names.some((n) => n.name === category.name)) throw dataError(`category name "${category.name}" appears twice`, file);
    names.push({ id: category.id, name: category.name });
  }
  return names.sort((a, b) => a.id - b.id).map((n) => n.name);
}

function cocoImages(json: CocoJson, file: string, imageDir: string, classes: string[], skipped: SkippedInput[]): RawImage[] {
  const labelOf = new Map<number, number>();
  for (const category of json.categories) {
    const label = classes.indexOf(category?.name);
    if (label >= 0) labelOf.set(category.id, label);
  }
  const names = new Map<number, string>(json.categories.map((c) => [c?.id, String(c?.name)]));
  const images = new Map<number | string, RawImage>();
  const imageIds = new DuplicateGuard<number | string>('image id');
  const fileNames = new DuplicateGuard<string>('image file_name');
  for (const image of json.images) {
    if (typeof image?.file_name !== 'string' || image.id === undefined) {
      skipped.push({ source: file, reason: `an image entry lacks "id" or "file_name": ${JSON.stringify(image).slice(0, 120)}` });
      continue;
    }
    if (!imageIds.firstTime(image.id, file, skipped) || !fileNames.firstTime(image.file_name, file, skipped)) continue;
    const declaredSize = Number.isFinite(image.width) && Number.isFinite(image.height) ? { width: image.width, height: image.height } : undefined;
    images.set(image.id, { path: join(imageDir, image.file_name), declaredSize, boxes: [], annotationFile: file });
  }
  const annotationIds = new DuplicateGuard<number | string>('annotation id');
  json.annotations.forEach((annotation, index) => {
    const where = annotation?.id !== undefined ? `annotation id ${annotation.id}` : `annotation #${index}`;
    if (annotation?.id !== undefined && !annotationIds.firstTime(annotation.id, file, skipped)) return;
    const image = images.get(annotation?.image_id);
    if (!image) {
      skipped.push({ source: file, reason: `${where}: image id ${annotation?.image_id} is not among the images` });
      return;
    }
    const bbox = Array.isArray(annotation.bbox) && annotation.bbox.length === 4 ? annotation.bbox.map((v: unknown) => (typeof v === 'number' ? v : NaN)) : [NaN, NaN, NaN, NaN];
    const [x, y, w, h] = bbox as [number, number, number, number];
    const label: RawBox['label'] = labelOf.get(annotation.category_id) ?? { unknown: names.get(annotation.category_id) ?? `category id ${annotation.category_id}` };
    image.boxes.push({ where, label, box: [x, y, x + w, y + h], crowd: annotation.iscrowd === 1 || annotation.iscrowd === true, area: typeof annotation.area === 'number' ? annotation.area : undefined });
  });
  return [...images.values()];
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() ?? false;
}

async function isDir(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() ?? false;
}
