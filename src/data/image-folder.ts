import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join, relative } from 'node:path';
import { dataError } from '../util/errors.js';
import { checkClasses, compare, stratifiedSplit, type Dataset, type LabelledItem, type SkippedInput, type SplitOptions } from './dataset.js';

export const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff']);
/** Files that operating systems drop into folders; never data, never worth a warning. */
const IGNORED_NAMES = new Set(['.DS_Store', 'Thumbs.db', 'desktop.ini']);

const SPLIT_FOLDERS = {
  train: ['train', 'training'],
  validation: ['val', 'valid', 'validation', 'dev'],
  test: ['test', 'testing'],
} as const;

/**
 * Reads an ImageFolder tree: `root/<class>/*.jpg`, or `root/{train,val[,test]}/<class>/*.jpg`.
 * Without a validation folder, a stratified seeded share of each class is held out.
 */
export async function readImageFolder(root: string, options: SplitOptions = {}): Promise<Dataset<Uint8Array>> {
  const info = await stat(root).catch(() => undefined);
  if (!info) throw dataError('no such folder', root);
  if (!info.isDirectory()) throw dataError('expected a folder of class sub-folders (ImageFolder layout), found a file', root);

  const subfolders = await listSubfolders(root);
  const find = (names: readonly string[]) => subfolders.find((name) => names.includes(name.toLowerCase()));
  const trainFolder = find(SPLIT_FOLDERS.train);
  const skipped: SkippedInput[] = [];

  if (!trainFolder) {
    const all = await scanClasses(root, undefined, skipped);
    const classes = all.classes;
    checkClasses(classes, countByClass(all.items, classes.length), root);
    const { train, validation } = stratifiedSplit(all.items, classes, { ...options, origin: root });
    return {
      origin: root,
      classes,
      train,
      validation,
      validationSource: { heldOutFraction: options.validationFraction ?? 0.2, seed: options.seed ?? 0 },
      skipped,
    };
  }

  const trainSet = await scanClasses(join(root, trainFolder), undefined, skipped);
  const classes = trainSet.classes;
  checkClasses(classes, countByClass(trainSet.items, classes.length), join(root, trainFolder));
  const validationFolder = find(SPLIT_FOLDERS.validation);
  const testFolder = find(SPLIT_FOLDERS.test);
  const test = testFolder ? (await scanClasses(join(root, testFolder), classes, skipped)).items : undefined;
  if (validationFolder) {
    const validation = (await scanClasses(join(root, validationFolder), classes, skipped)).items;
    if (validation.length === 0) throw dataError('the validation folder holds no images', join(root, validationFolder));
    return { origin: root, classes, train: trainSet.items, validation, test, validationSource: 'given', skipped };
  }
  const { train, validation } = stratifiedSplit(trainSet.items, classes, { ...options, origin: join(root, trainFolder) });
  return {
    origin: root,
    classes,
    train,
    validation,
    test,
    validationSource: { heldOutFraction: options.validationFraction ?? 0.2, seed: options.seed ?? 0 },
    skipped,
  };
}

/**
 * Reads a labelled folder for evaluation against known classes (`root/<class>/*`); a class the
 * model does not know is an error, a class with no images is allowed.
 */
export async function readLabelledImages(
  root: string,
  classes: string[],
): Promise<{ items: LabelledItem<Uint8Array>[]; skipped: SkippedInput[] }> {
  const info = await stat(root).catch(() => undefined);
  if (!info?.isDirectory()) throw dataError('no such folder (expected <folder>/<class>/<images>)', root);
  const skipped: SkippedInput[] = [];
  const { items } = await scanClasses(root, classes, skipped);
  if (items.length === 0) throw dataError('no images found in any class folder', root);
  return { items, skipped };
}

async function listSubfolders(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort(compare);
}

/** Lists `dir/<class>/` files; with `knownClasses`, folders must be among them (labels follow their order). */
async function scanClasses(
  dir: string,
  knownClasses: string[] | undefined,
  skipped: SkippedInput[],
): Promise<{ classes: string[]; items: LabelledItem<Uint8Array>[] }> {
  const folders = await listSubfolders(dir);
  const classes = knownClasses ?? folders;
  const items: LabelledItem<Uint8Array>[] = [];
  for (const folder of folders) {
    const label = classes.indexOf(folder);
    if (label < 0) {
      throw dataError(`class folder "${folder}" is not one of the model's classes (${classes.join(', ')})`, join(dir, folder));
    }
    for (const file of await listFiles(join(dir, folder))) {
      const extension = extname(file).toLowerCase();
      if (!IMAGE_EXTENSIONS.has(extension)) {
        skipped.push({ source: file, reason: `not an image file (${extension || 'no extension'}); expected ${[...IMAGE_EXTENSIONS].join(' ')}` });
        continue;
      }
      items.push({ source: file, label, load: () => readFile(file) });
    }
  }
  return { classes, items };
}

/** All files under a class folder, recursively (sub-folders of a class belong to it), sorted. */
async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.') || IGNORED_NAMES.has(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(path)));
    else if (entry.isFile() || entry.isSymbolicLink()) out.push(path);
  }
  return out.sort(compare);
}

function countByClass(items: { label: number }[], numClasses: number): number[] {
  const counts = new Array<number>(numClasses).fill(0);
  for (const item of items) counts[item.label]!++;
  return counts;
}

/** A path relative to the data root, for compact reports. */
export function displayPath(root: string, path: string): string {
  const rel = relative(root, path);
  return rel.startsWith('..') ? path : rel;
}
