import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { dataError, messageOf } from '../util/errors.js';
import { checkClasses, compare, stratifiedSplit, type Dataset, type LabelledItem, type SkippedInput } from './dataset.js';

/**
 * Labelled texts from the files people have: CSV, TSV, JSONL, or a folder with one sub-folder of
 * `.txt` files per class. Every text keeps a `source` (`file:line`, or the `.txt` path) so that
 * skipped rows and wrong predictions can be found again.
 * (A type alias, not an interface, so it fits the modality adapter's open `ReadDatasetOptions`.)
 */
export type TextDatasetOptions = {
  /** Share of each class held out for validation when no validation file is given (default 0.2). */
  validationFraction?: number;
  seed?: number;
  /** Column (CSV/TSV header name or 0-based index) or JSON field holding the text; default: detected. */
  textColumn?: string | number;
  /** Column or field holding the label; default: detected. */
  labelColumn?: string | number;
  /** Whether the first CSV/TSV row names the columns; default: detected. */
  header?: boolean;
  /** A labelled file (or class folder) to validate on instead of holding out a share of the training data. */
  validation?: string;
  /** A labelled file (or class folder) to report test metrics on. */
  test?: string;
  /** Without a test file: the share of each class held out (stratified, seeded) as a test set. */
  testFraction?: number;
};

export interface TextRecord {
  text: string;
  label: string;
  /** `file:line` for rows, the path for `.txt` files. */
  source: string;
}

export const TEXT_FILE_EXTENSIONS = ['.csv', '.tsv', '.tab', '.jsonl', '.ndjson'];

/** Column names recognised without `textColumn`/`labelColumn`, in order of preference. */
const TEXT_NAMES = ['text', 'sentence', 'content', 'review', 'message', 'document', 'body', 'comment', 'tweet', 'utterance', 'question', 'query', 'title', 'sms'];
const LABEL_NAMES = ['label', 'labels', 'class', 'category', 'target', 'sentiment', 'intent', 'topic', 'tag', 'y'];

const SPLIT_NAMES = {
  train: ['train', 'training'],
  validation: ['val', 'valid', 'validation', 'dev'],
  test: ['test', 'testing'],
} as const;

/**
 * Reads a labelled text dataset: a CSV/TSV/JSONL file, a folder holding `train.<ext>` (with
 * optional `dev|val.<ext>` and `test.<ext>`), or a class-per-folder tree of `.txt` files
 * (optionally under `train/`, `val/`, `test/`). Without a validation set, a stratified seeded share
 * of each class is held out; `testFraction` holds out a test set first, the same way.
 */
export async function readTextDataset(path: string, options: TextDatasetOptions = {}): Promise<Dataset<string>> {
  const layout = await splitLayout(path);
  const skipped: SkippedInput[] = [];
  const read = async (source: string) => {
    const result = await readTextRecords(source, options);
    skipped.push(...result.skipped);
    return result.records;
  };
  let train = await read(layout.train);
  const classes = sortLabels(unique(train.map((r) => r.label)));
  const origin = layout.train;
  checkClasses(classes, classes.map((c) => train.filter((r) => r.label === c).length), origin);

  const asItems = (records: TextRecord[], file: string) => toItems(records, classes, file);
  const testPath = options.test ?? layout.test;
  const validationPath = options.validation ?? layout.validation;
  let test: LabelledItem<string>[] | undefined;
  if (testPath) {
    test = asItems(await read(testPath), testPath);
  } else if (options.testFraction !== undefined) {
    const split = stratifiedSplit(asItems(train, origin), classes, { validationFraction: options.testFraction, seed: options.seed, origin });
    test = split.validation;
    const kept = new Set(split.train.map((item) => item.source));
    train = train.filter((r) => kept.has(r.source));
  }
  const trainItems = asItems(train, origin);
  if (validationPath) {
    const validation = asItems(await read(validationPath), validationPath);
    if (validation.length === 0) throw dataError('the validation file holds no usable texts', validationPath);
    return { origin, classes, train: trainItems, validation, test, validationSource: 'given', skipped };
  }
  const split = stratifiedSplit(trainItems, classes, { ...options, origin });
  return {
    origin,
    classes,
    train: split.train,
    validation: split.validation,
    test,
    validationSource: { heldOutFraction: options.validationFraction ?? 0.2, seed: options.seed ?? 0 },
    skipped,
  };
}

/** A labelled evaluation set for a trained model: every label must be one of its classes. */
export async function readLabelledTexts(
  path: string,
  classes: string[],
  options: TextDatasetOptions = {},
): Promise<{ items: LabelledItem<string>[]; skipped: SkippedInput[] }> {
  const { records, skipped } = await readTextRecords(path, options);
  if (records.length === 0) throw dataError('no labelled texts found', path);
  return { items: toItems(records, classes, path), skipped };
}

/** One text per non-empty line (for `predict --file`); lines keep their text as is, minus the line break. */
export async function readTextLines(file: string): Promise<string[]> {
  const content = decodeUtf8(await readBytes(file), file);
  return content.split(/\r?\n/).filter((line) => line.trim() !== '');
}

/** Reads the records of one file or class folder, skipping (and reporting) rows without text or label. */
export async function readTextRecords(path: string, options: TextDatasetOptions = {}): Promise<{ records: TextRecord[]; skipped: SkippedInput[] }> {
  const info = await stat(path).catch(() => undefined);
  if (!info) throw dataError('no such file or folder', path);
  if (info.isDirectory()) return readClassFolders(path);
  const content = decodeUtf8(await readBytes(path), path);
  const format = formatOf(path, content);
  const rows = format === 'jsonl' ? jsonlRows(content, path, options) : delimitedRows(content, path, format === 'tsv' ? '\t' : ',', options);
  const records: TextRecord[] = [];
  const skipped: SkippedInput[] = [];
  for (const row of rows) {
    const source = `${path}:${row.line}`;
    if (row.problem) skipped.push({ source, reason: row.problem });
    else if (row.label === undefined || row.label.trim() === '') skipped.push({ source, reason: 'missing label' });
    else if (row.text === undefined || row.text.trim() === '') skipped.push({ source, reason: 'empty text' });
    else records.push({ text: row.text, label: row.label.trim(), source });
  }
  return { records, skipped };
}

interface Row {
  line: number;
  text?: string;
  label?: string;
  problem?: string;
}

type Format = 'csv' | 'tsv' | 'jsonl';

/** By extension; a file without a known one is sniffed: `{` starts JSONL, a tab in the first line makes TSV. */
function formatOf(path: string, content: string): Format {
  const extension = extname(path).toLowerCase();
  if (extension === '.csv') return 'csv';
  if (extension === '.tsv' || extension === '.tab') return 'tsv';
  if (extension === '.jsonl' || extension === '.ndjson') return 'jsonl';
  const first = content.split('\n', 1)[0] ?? '';
  if (first.trimStart().startsWith('{')) return 'jsonl';
  return first.includes('\t') ? 'tsv' : 'csv';
}

function jsonlRows(content: string, file: string, options: TextDatasetOptions): Row[] {
  const rows: Row[] = [];
  content.split('\n').forEach((raw, i) => {
    const line = i + 1;
    if (raw.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (error) {
      throw dataError(`not valid JSON: ${messageOf(error)}`, `${file}:${line}`, error);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw dataError('expected a JSON object per line', `${file}:${line}`);
    }
    const object = value as Record<string, unknown>;
    const keys = Object.keys(object);
    const textKey = pickField(options.textColumn, keys, TEXT_NAMES, 'text', `${file}:${line}`);
    const labelKey = pickField(options.labelColumn, keys, LABEL_NAMES, 'label', `${file}:${line}`);
    rows.push({ line, text: scalarText(object[textKey]), label: scalarText(object[labelKey]) });
  });
  return rows;
}

function pickField(wanted: string | number | undefined, keys: string[], names: string[], what: string, where: string): string {
  if (wanted !== undefined) return String(wanted);
  const lower = keys.map((k) => k.toLowerCase());
  for (const name of names) {
    const at = lower.indexOf(name);
    if (at >= 0) return keys[at]!;
  }
  throw dataError(`cannot tell which field holds the ${what} (fields: ${keys.join(', ')}); name it with --${what}-column`, where);
}

function scalarText(value: unknown): string | undefined {
  if (value === null || value === undefined) return undefined;
  return typeof value === 'string' ? value : typeof value === 'number' || typeof value === 'boolean' ? String(value) : JSON.stringify(value);
}

interface ParsedRecord {
  fields: string[];
  /** 1-based lines of the file where the record starts and ends. */
  first: number;
  last: number;
}

/**
 * CSV and TSV through csv-parse (RFC 4180 quoting: quoted fields may hold delimiters, doubled
 * quotes and line breaks). Quotes inside unquoted fields are kept as text. TSV files are often
 * written without quoting, so a "quoted field" in a TSV that swallows lines which are complete
 * records on their own is read line by line instead.
 */
function delimitedRows(content: string, file: string, delimiter: string, options: TextDatasetOptions): Row[] {
  let records = parseDelimited(content, file, delimiter, true);
  if (delimiter === '\t') records = unswallowRecords(records, content, file);
  if (records.length === 0) return [];
  const width = modalWidth(records);
  const { header, textIndex, labelIndex } = chooseColumns(records, width, file, options);
  const rows: Row[] = [];
  for (const record of header ? records.slice(1) : records) {
    if (record.fields.length !== width) {
      rows.push({ line: record.first, problem: `expected ${width} fields, found ${record.fields.length}` });
      continue;
    }
    rows.push({ line: record.first, text: record.fields[textIndex], label: record.fields[labelIndex] });
  }
  return rows;
}

function parseDelimited(content: string, file: string, delimiter: string, quoted: boolean, lineOffset = 0): ParsedRecord[] {
  let parsed: { record: string[]; info: { lines: number; empty_lines: number } }[];
  try {
    parsed = parseCsv(content, {
      delimiter,
      info: true,
      quote: quoted ? '"' : false,
      relax_quotes: true,
      relax_column_count: true,
      skip_empty_lines: true,
      bom: true,
    }) as unknown as typeof parsed;
  } catch (error) {
    const line = (error as { lines?: number }).lines;
    throw dataError(`cannot parse: ${messageOf(error)}`, line ? `${file}:${line + lineOffset}` : file, error);
  }
  const records: ParsedRecord[] = [];
  let previousLast = 0;
  let previousEmpty = 0;
  for (const { record, info } of parsed) {
    // csv-parse reports the line a record ends on; it starts after the previous one and any skipped empty lines.
    const first = previousLast + 1 + (info.empty_lines - previousEmpty);
    records.push({ fields: record, first: first + lineOffset, last: info.lines + lineOffset });
    previousLast = info.lines;
    previousEmpty = info.empty_lines;
  }
  return records;
}

/** Re-reads, line by line, the multi-line TSV records whose lines each have the usual number of fields. */
function unswallowRecords(records: ParsedRecord[], content: string, file: string): ParsedRecord[] {
  if (!records.some((r) => r.last > r.first)) return records;
  const width = modalWidth(records);
  const lines = content.split('\n');
  const out: ParsedRecord[] = [];
  for (const record of records) {
    const span = lines.slice(record.first - 1, record.last);
    if (record.last > record.first && span.every((line) => line.trim() === '' || line.replace(/\r$/, '').split('\t').length === width)) {
      out.push(...parseDelimited(span.join('\n'), file, '\t', false, record.first - 1).map(unquoteFields));
    } else {
      out.push(record);
    }
  }
  return out;
}

/** A field wrapped in quotes with doubled quotes inside, read without quote handling, is unwrapped. */
function unquoteFields(record: ParsedRecord): ParsedRecord {
  const fields = record.fields.map((field) => (/^"(?:[^"]|"")*"$/.test(field) ? field.slice(1, -1).replace(/""/g, '"') : field));
  return { ...record, fields };
}

function modalWidth(records: ParsedRecord[]): number {
  const counts = new Map<number, number>();
  for (const r of records) counts.set(r.fields.length, (counts.get(r.fields.length) ?? 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1] || b[0] - a[0])[0]![0];
}

/**
 * Which row is a header and which columns hold text and label. A first row is a header when it
 * names a column we recognise (or one asked for), or when its value in the label column appears
 * nowhere else in that column although labels repeat. Without names, the label column is the one
 * with the fewest distinct values and the text column the one with the longest values.
 */
function chooseColumns(
  records: ParsedRecord[],
  width: number,
  file: string,
  options: TextDatasetOptions,
): { header: boolean; textIndex: number; labelIndex: number } {
  if (width < 2) throw dataError(`found ${width} column; expected a text column and a label column`, file);
  const first = records[0]!.fields.map((f) => f.trim().toLowerCase());
  const body = records.slice(1).filter((r) => r.fields.length === width);
  const named = (wanted: string | number | undefined) => typeof wanted === 'string' && !/^\d+$/.test(wanted);
  const knownName = first.some((cell) => TEXT_NAMES.includes(cell) || LABEL_NAMES.includes(cell));
  const askedName = [options.textColumn, options.labelColumn].some((w) => named(w) && first.includes(String(w).toLowerCase()));

  const distinct = (column: number, rows: ParsedRecord[]) => new Set(rows.map((r) => r.fields[column]!.trim())).size;
  const meanLength = (column: number, rows: ParsedRecord[]) => rows.reduce((sum, r) => sum + r.fields[column]!.length, 0) / Math.max(1, rows.length);
  const columns = Array.from({ length: width }, (_, i) => i);
  const best = (candidates: number[], score: (c: number) => number) =>
    candidates.map((c) => ({ c, s: score(c) })).sort((a, b) => a.s - b.s || a.c - b.c)[0]!.c;
  const guessLabel = (rows: ParsedRecord[], exclude?: number) => best(columns.filter((c) => c !== exclude), (c) => distinct(c, rows));
  const guessText = (rows: ParsedRecord[], exclude: number) => best(columns.filter((c) => c !== exclude), (c) => -meanLength(c, rows));

  let header = options.header;
  if (header === undefined) {
    if (knownName || askedName) header = true;
    else {
      const label = guessLabel(body);
      const value = records[0]!.fields[label]!.trim();
      header = body.length > 0 && distinct(label, body) < body.length && !body.some((r) => r.fields[label]!.trim() === value);
    }
  }
  const names = header ? first : [];
  const resolve = (wanted: string | number | undefined, known: string[], what: string): number | undefined => {
    if (wanted === undefined) {
      for (const name of known) if (names.includes(name)) return names.indexOf(name);
      return undefined;
    }
    if (typeof wanted === 'number' || /^\d+$/.test(wanted)) {
      const index = Number(wanted);
      if (index >= width) throw dataError(`--${what}-column ${index} is out of range: rows have ${width} columns (0-based)`, file);
      return index;
    }
    const index = names.indexOf(wanted.toLowerCase());
    if (index < 0) {
      throw dataError(`no column named "${wanted}"${header ? ` (columns: ${records[0]!.fields.join(', ')})` : ' (the file has no header row)'}`, file);
    }
    return index;
  };
  const rows = header ? body : records.filter((r) => r.fields.length === width);
  let labelIndex = resolve(options.labelColumn, LABEL_NAMES, 'label');
  let textIndex = resolve(options.textColumn, TEXT_NAMES, 'text');
  labelIndex ??= guessLabel(rows, textIndex);
  textIndex ??= guessText(rows, labelIndex);
  if (textIndex === labelIndex) throw dataError(`the text and label columns are the same (column ${textIndex})`, file);
  return { header, textIndex, labelIndex };
}

/** `root/<class>/*.txt`: one text per file. */
async function readClassFolders(root: string): Promise<{ records: TextRecord[]; skipped: SkippedInput[] }> {
  const records: TextRecord[] = [];
  const skipped: SkippedInput[] = [];
  const folders = (await readdir(root, { withFileTypes: true })).filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort(compare);
  if (folders.length === 0) throw dataError('expected one sub-folder of .txt files per class, or a train.csv/.tsv/.jsonl file', root);
  for (const label of folders) {
    for (const file of await listFiles(join(root, label))) {
      if (extname(file).toLowerCase() !== '.txt') {
        skipped.push({ source: file, reason: `not a .txt file` });
        continue;
      }
      const text = decodeUtf8(await readBytes(file), file);
      if (text.trim() === '') skipped.push({ source: file, reason: 'empty text' });
      else records.push({ text: text.trim(), label, source: file });
    }
  }
  return { records, skipped };
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(path)));
    else out.push(path);
  }
  return out.sort(compare);
}

/**
 * Where the splits are: a file is the training set; a folder may hold `train.<ext>` files (or
 * `train/` class folders) with validation and test beside them; otherwise it is one class tree.
 */
async function splitLayout(path: string): Promise<{ train: string; validation?: string; test?: string }> {
  const info = await stat(path).catch(() => undefined);
  if (!info) throw dataError('no such file or folder', path);
  if (!info.isDirectory()) return { train: path };
  const entries = await readdir(path, { withFileTypes: true });
  const find = (names: readonly string[]) => {
    const files = entries.filter((e) => e.isFile() && TEXT_FILE_EXTENSIONS.includes(extname(e.name).toLowerCase()));
    const file = files.find((e) => names.includes(basename(e.name, extname(e.name)).toLowerCase()));
    if (file) return join(path, file.name);
    const folder = entries.find((e) => e.isDirectory() && names.includes(e.name.toLowerCase()));
    return folder ? join(path, folder.name) : undefined;
  };
  const train = find(SPLIT_NAMES.train);
  if (!train) return { train: path };
  return { train, validation: find(SPLIT_NAMES.validation), test: find(SPLIT_NAMES.test) };
}

function toItems(records: TextRecord[], classes: string[], file: string): LabelledItem<string>[] {
  const unknown = unique(records.map((r) => r.label).filter((label) => !classes.includes(label)));
  if (unknown.length > 0) {
    const shown = unknown.slice(0, 5).map((l) => `"${l}"`).join(', ');
    throw dataError(`label${unknown.length > 1 ? 's' : ''} ${shown}${unknown.length > 5 ? ', …' : ''} not among the classes (${classes.join(', ')})`, file);
  }
  return records.map((r) => ({ source: r.source, label: classes.indexOf(r.label), load: async () => r.text }));
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}

/** Numeric labels in numeric order (2 before 10), others alphabetically. */
function sortLabels(labels: string[]): string[] {
  return labels.every((l) => /^-?\d+(\.\d+)?$/.test(l)) ? labels.sort((a, b) => Number(a) - Number(b)) : labels.sort(compare);
}

async function readBytes(file: string): Promise<Uint8Array> {
  try {
    return await readFile(file);
  } catch (error) {
    throw dataError(`cannot read: ${messageOf(error)}`, file, error);
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** Decodes UTF-8 (dropping a BOM); invalid bytes are an error naming the file and line. */
export function decodeUtf8(bytes: Uint8Array, file: string): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    const offset = firstInvalidUtf8(bytes);
    let line = 1;
    for (let i = 0; i < offset; i++) if (bytes[i] === 0x0a) line++;
    throw dataError(
      `not valid UTF-8 (byte 0x${bytes[offset]!.toString(16).padStart(2, '0')} at offset ${offset}); re-save the file as UTF-8`,
      `${file}:${line}`,
    );
  }
}

/** Offset of the first byte that does not belong to a well-formed UTF-8 sequence. */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    const length = b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
    if (length === 0) return i;
    if (length > 1) {
      // The second byte's range excludes overlong forms and surrogates (RFC 3629 table).
      const second = bytes[i + 1];
      const low = b === 0xe0 ? 0xa0 : b === 0xf0 ? 0x90 : 0x80;
      const high = b === 0xed ? 0x9f : b === 0xf4 ? 0x8f : 0xbf;
      if (second === undefined || second < low || second > high) return i;
      for (let k = 2; k < length; k++) {
        const next = bytes[i + k];
        if (next === undefined || next < 0x80 || next > 0xbf) return i;
      }
    }
    i += length;
  }
  return bytes.length;
}
