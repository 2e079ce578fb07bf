import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { compare, type SkippedInput, type SplitName } from '../data/dataset.js';
import { dataError, messageOf } from '../util/errors.js';
import type { RawBox } from './boxes.js';
import { assembleDataset, checkImages, DuplicateGuard, type DetectionDataset, type DetectionItem, type DetectionSplitOptions, type RawImage } from './detection-dataset.js';

/**
 * Pascal VOC: `Annotations/<id>.xml` (one `<object>` per box, `<bndbox>` in VOC's 1-based inclusive
 * pixel indices) beside `JPEGImages/`, with splits from `ImageSets/Main/<split>.txt` when present.
 * Classes are the object names found in training, sorted (VOC's own class list is alphabetical);
 * `difficult` objects are kept as regions evaluation ignores, as VOC's evaluation does.
 */
export async function isVocDataset(root: string): Promise<boolean> {
  return (await stat(join(root, 'Annotations')).catch(() => undefined))?.isDirectory() ?? false;
}

const SPLIT_FILES: [SplitName, string[]][] = [
  ['train', ['train.txt', 'trainval.txt']],
  ['validation', ['val.txt']],
  ['test', ['test.txt']],
];

interface VocObject { name: string; where: string; box: RawBox['box']; crowd: boolean }
interface VocFile { file: string; image: string; size?: { width: number; height: number }; objects: VocObject[] }

export async function readVocDataset(root: string, options: DetectionSplitOptions = {}): Promise<DetectionDataset> {
  if (!(await isVocDataset(root))) throw dataError('no Pascal VOC dataset found (expected Annotations/*.xml beside JPEGImages/)', root);
  const skipped: SkippedInput[] = [];
  const annotationDir = join(root, 'Annotations');
  const ids = (await readdir(annotationDir)).filter((n) => n.toLowerCase().endsWith('.xml')).map((n) => n.slice(0, -4)).sort(compare);
  const known = new Set(ids);
  const lists = await splitLists(root);
  const splitIds: Partial<Record<SplitName, string[]>> = lists ?? { train: ids };
  const parsed: Partial<Record<SplitName, VocFile[]>> = {};
  const images = new DuplicateGuard<string>('image');
  for (const [split, list] of Object.entries(splitIds) as [SplitName, string[]][]) {
    const files: VocFile[] = [];
    const seen = new DuplicateGuard<string>(`id in ImageSets/Main (${split})`);
    for (const id of list) {
      if (!seen.firstTime(id, join(root, 'ImageSets', 'Main'), skipped)) continue;
      if (!known.has(id)) {
        skipped.push({ source: join(annotationDir, `${id}.xml`), reason: `listed in ImageSets/Main for ${split} but has no annotation file` });
        continue;
      }
      const voc = await readVocXml(join(annotationDir, `${id}.xml`), join(root, 'JPEGImages'));
      if (images.firstTime(voc.image, voc.file, skipped)) files.push(voc);
    }
    parsed[split] = files;
  }
  const classes = [...new Set((parsed.train ?? []).flatMap((f) => f.objects.map((o) => o.name)))].sort(compare);
  const splits: Partial<Record<SplitName, DetectionItem[]>> = {};
  for (const [split, files] of Object.entries(parsed) as [SplitName, VocFile[]][]) {
    const raws: RawImage[] = files.map((f) => ({
      path: f.image,
      declaredSize: f.size,
      annotationFile: f.file,
      boxes: f.objects.map((o) => {
        const label = classes.indexOf(o.name);
        return { where: o.where, label: label >= 0 ? label : { unknown: o.name }, box: o.box, crowd: o.crowd };
      }),
    }));
    splits[split] = await checkImages(raws, skipped);
  }
  return assembleDataset(root, 'voc', classes, splits, skipped, options);
}

/** Ids per split from ImageSets/Main; undefined when there are none (then every annotation is training data). */
async function splitLists(root: string): Promise<Partial<Record<SplitName, string[]>> | undefined> {
  const dir = join(root, 'ImageSets', 'Main');
  let found = false;
  const lists: Partial<Record<SplitName, string[]>> = {};
  for (const [split, names] of SPLIT_FILES) {
    for (const name of names) {
      const text = await readFile(join(dir, name), 'utf8').catch(() => undefined);
      if (text === undefined) continue;
      // Per-class lists (`<class>_train.txt`) carry a second column; the split lists carry ids alone.
      lists[split] = text.split(/\r?\n/).map((l) => l.trim().split(/\s+/)[0]!).filter(Boolean);
      found = true;
      break;
    }
  }
  return found ? lists : undefined;
}

const parser = new XMLParser({ isArray: (name) => name === 'object', parseTagValue: false });

async function readVocXml(file: string, imageDir: string): Promise<VocFile> {
  const text = await readFile(file, 'utf8');
  const valid = XMLValidator.validate(text);
  if (valid !== true) throw dataError(`cannot parse XML: ${valid.err.msg} (line ${valid.err.line})`, file);
  let doc: any;
  try {
    doc = parser.parse(text);
  } catch (error) {
    throw dataError(`cannot parse XML: ${messageOf(error)}`, file, error);
  }
  const annotation = doc?.annotation;
  if (!annotation || typeof annotation !== 'object') throw dataError('not a Pascal VOC annotation (no <annotation> element)', file);
  const filename = typeof annotation.filename === 'string' && annotation.filename.trim() ? annotation.filename.trim() : `${basename(file, '.xml')}.jpg`;
  const width = Number(annotation.size?.width);
  const height = Number(annotation.size?.height);
  const size = width > 0 && height > 0 ? { width, height } : undefined;
  const objects: VocObject[] = ((annotation.object ?? []) as any[]).map((object, index) => {
    const b = object?.bndbox ?? {};
    const [xmin, ymin, xmax, ymax] = [b.xmin, b.ymin, b.xmax, b.ymax].map((v) => (v === undefined || v === '' ? NaN : Number(v))) as [number, number, number, number];
    // 1-based inclusive pixel indices → pixel edges: pixel i spans [i - 1, i).
    return {
      name: String(object?.name ?? '').trim(),
      where: `object ${index + 1}${object?.name ? ` (${String(object.name).trim()})` : ''}`,
      box: [xmin - 1, ymin - 1, xmax, ymax],
      crowd: String(object?.difficult ?? '0').trim() === '1',
    };
  });
  return { file, image: join(imageDir, extname(filename) ? filename : `${filename}.jpg`), size, objects };
}
