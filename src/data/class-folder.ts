import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join, relative, sep } from 'node:path';
import { dataError } from '../util/errors.js';
import { checkClasses, compare, stratifiedSplit, type Dataset, type LabelledItem, type SkippedInput, type SplitName, type SplitOptions } from './dataset.js';

/**
 * Reading labelled files from a folder, for any modality whose inputs are files: class-per-folder
 * trees (`root/<class>/…`, or `root/{train,val[,test]}/<class>/…`), or — with `labelOf` / `splitOf` —
 * labels and splits computed from each file's path, for datasets that encode them in file names
 * (FSDD's `{digit}_{speaker}_{take}.wav`). Files are read only when needed, as bytes.
 */
export interface FileDatasetOptions extends SplitOptions {
  /** Extensions that are data (lower case, with the dot); other files are skipped with a reason. */
  extensions: ReadonlySet<string>;
  /** How the files are called in messages: "WAV files", "images". */
  noun: string;
  /** The class of a file from its path relative to the root (`/`-separated); undefined leaves the file out. Default: its top folder. */
  labelOf?: (path: string) => string | undefined;
  /** The split of a file from its path relative to the root; undefined leaves the file out. Without validation files, a stratified share of train is held out. */
  splitOf?: (path: string) => SplitName | undefined;
}

const SPLIT_FOLDERS = {
  train: ['train', 'training'],
  validation: ['val', 'valid', 'validation', 'dev'],
  test: ['test', 'testing'],
} as const;
/** Files that operating systems drop into folders; never data, never worth a warning. */
const IGNORED_NAMES = new Set(['.DS_Store', 'Thumbs.db', 'desktop.ini']);

export async function readFileDataset(root: string, options: FileDatasetOptions): Promise<Dataset<Uint8Array>> {
  const info = await stat(root).catch(() => undefined);
  if (!info) throw dataError('no such folder', root);
  if (!info.isDirectory()) throw dataError(`expected a folder of ${options.noun} (one sub-folder per class), found a file`, root);
  if (options.labelOf || options.splitOf) return readByPath(root, options);

  const subfolders = await listSubfolders(root);
  const find = (names: readonly string[]) => subfolders.find((name) => names.includes(name.toLowerCase()));
  const trainFolder = find(SPLIT_FOLDERS.train);
  const skipped: SkippedInput[] = [];
  const heldOut = { heldOutFraction: options.validationFraction ?? 0.2, seed: options.seed ?? 0 };

  if (!trainFolder) {
    const all = await scanClasses(root, undefined, options, skipped);
    checkClasses(all.classes, countByClass(all.items, all.classes.length), root);
    const { train, validation } = stratifiedSplit(all.items, all.classes, { ...options, origin: root });
    return { origin: root, classes: all.classes, train, validation, validationSource: heldOut, skipped };
  }
  const trainSet = await scanClasses(join(root, trainFolder), undefined, options, skipped);
  const classes = trainSet.classes;
  checkClasses(classes, countByClass(trainSet.items, classes.length), join(root, trainFolder));
  const validationFolder = find(SPLIT_FOLDERS.validation);
  const testFolder = find(SPLIT_FOLDERS.test);
  const test = testFolder ? (await scanClasses(join(root, testFolder), classes, options, skipped)).items : undefined;
  if (validationFolder) {
    const validation = (await scanClasses(join(root, validationFolder), classes, options, skipped)).items;
    if (validation.length === 0) throw dataError(`the validation folder holds no ${options.noun}`, join(root, validationFolder));
    return { origin: root, classes, train: trainSet.items, validation, test, validationSource: 'given', skipped };
  }
  const { train, validation } = stratifiedSplit(trainSet.items, classes, { ...options, origin: join(root, trainFolder) });
  return { origin: root, classes, train, validation, test, validationSource: heldOut, skipped };
}

/**
 * A labelled folder for evaluation against known classes (`root/<class>/*`); a class the model
 * does not know is an error, a class with no files is allowed.
 */
export async function readLabelledFiles(
  root: string,
  classes: string[],
  options: Pick<FileDatasetOptions, 'extensions' | 'noun'>,
): Promise<{ items: LabelledItem<Uint8Array>[]; skipped: SkippedInput[] }> {
  const info = await stat(root).catch(() => undefined);
  if (!info?.isDirectory()) throw dataError(`no such folder (expected <folder>/<class>/<${options.noun}>)`, root);
  const skipped: SkippedInput[] = [];
  const { items } = await scanClasses(root, classes, options, skipped);
  if (items.length === 0) throw dataError(`no ${options.noun} found in any class folder`, root);
  return { items, skipped };
}

/** Labels and splits from each file's path. */
async function readByPath(root: string, options: FileDatasetOptions): Promise<Dataset<Uint8Array>> {
  const skipped: SkippedInput[] = [];
  const found: Record<SplitName, { source: string; className: string }[]> = { train: [], validation: [], test: [] };
  for (const file of await listFiles(root)) {
    if (!isData(file, options, skipped)) continue;
    const path = relative(root, file).split(sep).join('/');
    const className = options.labelOf ? options.labelOf(path) : path.includes('/') ? path.slice(0, path.indexOf('/')) : undefined;
    const split = options.splitOf ? options.splitOf(path) : 'train';
    if (className === undefined || split === undefined) continue;
    found[split].push({ source: file, className });
  }
  const classes = [...new Set(found.train.map((item) => item.className))].sort(compare);
  const toItems = (split: SplitName) =>
    found[split].map(({ source, className }): LabelledItem<Uint8Array> => {
      const label = classes.indexOf(className);
      if (label < 0) throw dataError(`class "${className}" has ${split} ${options.noun} but none to train on`, source);
      return { source, label, load: () => readFile(source) };
    });
  const trainItems = toItems('train');
  checkClasses(classes, countByClass(trainItems, classes.length), root);
  const test = found.test.length ? toItems('test') : undefined;
  if (found.validation.length) {
    return { origin: root, classes, train: trainItems, validation: toItems('validation'), test, validationSource: 'given', skipped };
  }
  const { train, validation } = stratifiedSplit(trainItems, classes, { ...options, origin: root });
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

function isData(file: string, options: Pick<FileDatasetOptions, 'extensions' | 'noun'>, skipped: SkippedInput[]): boolean {
  const extension = extname(file).toLowerCase();
  if (options.extensions.has(extension)) return true;
  skipped.push({ source: file, reason: `not one of the ${options.noun} (${extension || 'no extension'}); expected ${[...options.extensions].join(' ')}` });
  return false;
}

async function listSubfolders(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort(compare);
}

/** Lists `dir/<class>/` files; with `knownClasses`, folders must be among them (labels follow their order). */
async function scanClasses(
  dir: string,
  knownClasses: string[] | undefined,
  options: Pick<FileDatasetOptions, 'extensions' | 'noun'>,
  skipped: SkippedInput[],
): Promise<{ classes: string[]; items: LabelledItem<Uint8Array>[] }> {
  const folders = await listSubfolders(dir);
  const classes = knownClasses ?? folders;
  const items: LabelledItem<Uint8Array>[] = [];
  for (const folder of folders) {
    const label = classes.indexOf(folder);
    if (label < 0) throw dataError(`class folder "${folder}" is not one of the model's classes (${classes.join(', ')})`, join(dir, folder));
    for (const file of await listFiles(join(dir, folder))) {
      if (isData(file, options, skipped)) items.push({ source: file, label, load: () => readFile(file) });
    }
  }
  return { classes, items };
}

/** All files under a folder, recursively (sub-folders of a class belong to it), sorted. */
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
