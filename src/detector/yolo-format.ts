import { readdir, readFile, stat } from 'node:fs/promises';
import { dirname, extname, isAbsolute, join, relative, sep } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { compare, type SkippedInput, type SplitName } from '../data/dataset.js';
import { IMAGE_EXTENSIONS } from '../data/image-folder.js';
import { dataError, messageOf } from '../util/errors.js';
import type { RawBox } from './boxes.js';
import { assembleDataset, checkImages, DuplicateGuard, type DetectionDataset, type DetectionItem, type DetectionSplitOptions, type RawImage } from './detection-dataset.js';

/**
 * YOLO / Ultralytics: a dataset YAML (`path`, `train`, `val`, `test`, `names`) or `images/<split>/`
 * beside `labels/<split>/`, one `<image stem>.txt` per image with a `class cx cy w h` line per box,
 * normalised to the image's size (Ultralytics' polygon lines `class x1 y1 x2 y2 …` give their
 * bounding box). An image without a label file is a negative, as in Ultralytics.
 */
const SPLIT_KEYS: [SplitName, string[]][] = [
  ['train', ['train']],
  ['validation', ['val', 'valid', 'validation']],
  ['test', ['test']],
];
const SPLIT_FOLDERS: Record<SplitName, string[]> = { train: ['train', 'training'], validation: ['val', 'valid', 'validation'], test: ['test'] };

/** The dataset YAML a path names or a folder holds, or the folder when it has images/ + labels/; undefined when it is not YOLO. */
export async function findYoloDataset(root: string): Promise<{ yaml?: string; folder: string } | undefined> {
  const info = await stat(root).catch(() => undefined);
  if (info?.isFile()) return /\.ya?ml$/i.test(root) ? { yaml: root, folder: dirname(root) } : undefined;
  if (!info?.isDirectory()) return undefined;
  const entries = await readdir(root);
  const yaml = entries.filter((name) => /\.ya?ml$/i.test(name)).sort(compare);
  const preferred = yaml.find((name) => /^(data|dataset)\.ya?ml$/i.test(name)) ?? (yaml.length === 1 ? yaml[0] : undefined);
  if (preferred) return { yaml: join(root, preferred), folder: root };
  if (entries.includes('images') && entries.includes('labels')) return { folder: root };
  return undefined;
}

export async function readYoloDataset(root: string, options: DetectionSplitOptions = {}): Promise<DetectionDataset> {
  const found = await findYoloDataset(root);
  if (!found) throw dataError('no YOLO dataset found (expected a dataset YAML, or images/ beside labels/)', root);
  const skipped: SkippedInput[] = [];
  const { classes, sources } = found.yaml ? await fromYaml(found.yaml) : await fromFolders(found.folder);
  const splits: Partial<Record<SplitName, DetectionItem[]>> = {};
  const labelFiles = new DuplicateGuard<string>('image for label file');
  for (const [split, list] of Object.entries(sources) as [SplitName, string[]][]) {
    const raws: RawImage[] = [];
    for (const image of list) {
      const labelFile = labelPathOf(image);
      if (!labelFiles.firstTime(labelFile, image, skipped)) continue;
      raws.push({ path: image, boxes: await readLabelFile(labelFile, classes), normalised: true, annotationFile: labelFile });
    }
    splits[split] = await checkImages(raws, skipped);
  }
  return assembleDataset(root, 'yolo', classes, splits, skipped, options);
}

/** Ultralytics' rule: the last `images` folder in the path becomes `labels`, the extension `.txt`. */
export function labelPathOf(image: string): string {
  const parts = image.split(sep);
  const at = parts.lastIndexOf('images');
  if (at >= 0) parts[at] = 'labels';
  const path = parts.join(sep);
  return path.slice(0, path.length - extname(path).length) + '.txt';
}

async function fromYaml(file: string): Promise<{ classes: string[]; sources: Partial<Record<SplitName, string[]>> }> {
  let doc: any;
  try {
    doc = parseYaml(await readFile(file, 'utf8'));
  } catch (error) {
    throw dataError(`cannot parse the dataset YAML: ${messageOf(error)}`, file, error);
  }
  if (!doc || typeof doc !== 'object') throw dataError('the dataset YAML is not a mapping (expected path, train, val, names)', file);
  const classes = namesOf(doc.names, file);
  if (doc.nc !== undefined && Number(doc.nc) !== classes.length) throw dataError(`nc is ${doc.nc} but names lists ${classes.length} classes`, file);
  const base = typeof doc.path === 'string' ? (isAbsolute(doc.path) ? doc.path : join(dirname(file), doc.path)) : dirname(file);
  const sources: Partial<Record<SplitName, string[]>> = {};
  for (const [split, keys] of SPLIT_KEYS) {
    const key = keys.find((k) => doc[k] !== undefined && doc[k] !== null);
    if (!key) continue;
    const entries = Array.isArray(doc[key]) ? doc[key] : [doc[key]];
    const images: string[] = [];
    for (const entry of entries) images.push(...(await imagesOf(isAbsolute(String(entry)) ? String(entry) : join(base, String(entry)), file, base)));
    sources[split] = images;
  }
  if (!sources.train) throw dataError('the dataset YAML has no "train" entry', file);
  return { classes, sources };
}

/** `names: [a, b]` or `names: {0: a, 1: b}`. */
function namesOf(names: unknown, file: string): string[] {
  if (Array.isArray(names)) return names.map(String);
  if (names && typeof names === 'object') {
    const entries = Object.entries(names as Record<string, unknown>).map(([k, v]) => [Number(k), String(v)] as const);
    if (entries.some(([k], i) => k !== i)) throw dataError('"names" must number its classes 0, 1, 2, … without gaps', file);
    return entries.sort((a, b) => a[0] - b[0]).map(([, v]) => v);
  }
  throw dataError('the dataset YAML has no "names" (a list of class names, or a mapping from class index to name)', file);
}

/** A split entry: a folder of images (searched recursively) or a .txt file listing image paths. */
async function imagesOf(path: string, yaml: string, base: string): Promise<string[]> {
  const info = await stat(path).catch(() => undefined);
  if (!info) throw dataError(`split path "${relative(dirname(yaml), path)}" does not exist`, yaml);
  if (info.isDirectory()) return listImages(path);
  const lines = (await readFile(path, 'utf8')).split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  return lines.map((line) => (isAbsolute(line) ? line : join(line.startsWith('./') ? base : dirname(path), line)));
}

async function fromFolders(root: string): Promise<{ classes: string[]; sources: Partial<Record<SplitName, string[]>> }> {
  const imagesDir = join(root, 'images');
  const subfolders = (await readdir(imagesDir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  const sources: Partial<Record<SplitName, string[]>> = {};
  for (const [split, names] of Object.entries(SPLIT_FOLDERS) as [SplitName, string[]][]) {
    const folder = subfolders.find((name) => names.includes(name.toLowerCase()));
    if (folder) sources[split] = await listImages(join(imagesDir, folder));
  }
  if (!sources.train) sources.train = await listImages(imagesDir);
  // Without a YAML, class names come from labelImg's classes.txt; failing that, the class numbers themselves.
  for (const candidate of [join(root, 'classes.txt'), join(root, 'labels', 'classes.txt')]) {
    const text = await readFile(candidate, 'utf8').catch(() => undefined);
    if (text !== undefined) return { classes: text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean), sources };
  }
  let highest = -1;
  for (const list of Object.values(sources)) {
    for (const image of list) {
      const text = await readFile(labelPathOf(image), 'utf8').catch(() => '');
      for (const line of text.split(/\r?\n/)) {
        const value = Number(line.trim().split(/\s+/)[0]);
        if (line.trim() && Number.isInteger(value) && value >= 0) highest = Math.max(highest, value);
      }
    }
  }
  return { classes: Array.from({ length: highest + 1 }, (_, i) => String(i)), sources };
}

async function listImages(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listImages(path)));
    else if (IMAGE_EXTENSIONS.has(extname(entry.name).toLowerCase())) out.push(path);
  }
  return out.sort(compare);
}

/** One box per line; a missing file is a negative image; a line that is not numbers makes the file unparseable. */
async function readLabelFile(file: string, classes: string[]): Promise<RawBox[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw dataError(`cannot read label file: ${messageOf(error)}`, file, error);
  }
  const boxes: RawBox[] = [];
  text.split(/\r?\n/).forEach((line, index) => {
    const fields = line.trim().split(/\s+/).filter(Boolean);
    if (fields.length === 0) return;
    const where = `line ${index + 1}`;
    const values = fields.map(Number);
    const isPolygon = fields.length > 5 && fields.length % 2 === 1;
    if ((fields.length !== 5 && !isPolygon) || fields.some((f) => !/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$|^[-+]?(nan|inf(inity)?)$/i.test(f))) {
      throw dataError(`${where}: cannot parse "${line.trim().slice(0, 80)}" (expected "class cx cy w h", normalised)`, file);
    }
    const index0 = values[0]!;
    const label: RawBox['label'] = Number.isInteger(index0) && index0 >= 0 && index0 < classes.length ? index0 : { unknown: fields[0]! };
    let box: RawBox['box'];
    if (isPolygon) {
      const xs = values.slice(1).filter((_, i) => i % 2 === 0);
      const ys = values.slice(1).filter((_, i) => i % 2 === 1);
      const [x1, x2, y1, y2] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
      box = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1];
    } else {
      box = values.slice(1, 5) as RawBox['box'];
    }
    boxes.push({ where, label, box, crowd: false });
  });
  return boxes;
}

