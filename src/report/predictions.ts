import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';
import { messageOf, modelError } from '../util/errors.js';

export const PREDICTIONS_FILE = 'predictions.json';
export const PREDICTIONS_FORMAT = 'headstart-predictions';

/** Longest text kept per example: enough to recognise it in a report, small enough to keep the file light. */
export const TEXT_SNIPPET_CHARS = 400;

/** One held-out example as the model saw it: where it came from, its true class, what the model said. */
export interface PredictionRecord {
  source: string;
  /** Index into the model's labels. */
  label: number;
  /** Calibrated class probabilities, rounded to 5 decimals. */
  probabilities: number[];
  /** For text: the (start of the) text itself, since a `file:line` source cannot be shown. */
  text?: string;
}

/**
 * `predictions.json` in a model folder: the per-example predictions behind the metrics, so a report
 * can be rebuilt from the folder alone (confusion-matrix cells list their examples).
 */
export interface StoredPredictions {
  format: typeof PREDICTIONS_FORMAT;
  version: 1;
  splits: { validation: PredictionRecord[]; test?: PredictionRecord[] };
}

/** Records for the rows of an extraction: `itemOfRow[r]` is the item row r came from. */
export function predictionRecords(
  items: { source: string; label: number }[],
  itemOfRow: Int32Array,
  probabilities: Float32Array,
  numClasses: number,
  texts?: (string | undefined)[],
): PredictionRecord[] {
  return Array.from(itemOfRow, (item, row) => {
    const record: PredictionRecord = {
      source: items[item]!.source,
      label: items[item]!.label,
      probabilities: Array.from(probabilities.subarray(row * numClasses, (row + 1) * numClasses), (p) => Math.round(p * 1e5) / 1e5),
    };
    const text = texts?.[item];
    if (text !== undefined) record.text = text.length > TEXT_SNIPPET_CHARS ? `${text.slice(0, TEXT_SNIPPET_CHARS)}…` : text;
    return record;
  });
}

export async function writePredictions(dir: string, splits: StoredPredictions['splits']): Promise<void> {
  const stored: StoredPredictions = { format: PREDICTIONS_FORMAT, version: 1, splits };
  await writeFileAtomic(join(dir, PREDICTIONS_FILE), `${JSON.stringify(stored)}\n`);
}

/** The stored predictions of a model folder, or undefined when it has none (older folders, copies). */
export async function readPredictions(dir: string): Promise<StoredPredictions | undefined> {
  const path = join(dir, PREDICTIONS_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw modelError(`cannot read: ${messageOf(error)}`, path, error);
  }
  let stored: StoredPredictions;
  try {
    stored = JSON.parse(text) as StoredPredictions;
  } catch (error) {
    throw modelError(`not valid JSON: ${messageOf(error)}`, path, error);
  }
  if (stored.format !== PREDICTIONS_FORMAT || !Array.isArray(stored.splits?.validation)) {
    throw modelError(`not a headstart predictions file`, path);
  }
  return stored;
}
