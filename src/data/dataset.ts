import { dataError } from '../util/errors.js';
import { Rng } from '../util/rng.js';

/**
 * A labelled example before it is read: `source` names it for people (a path, or `file:line`),
 * `load` yields the raw input (file bytes, or a text), read only when it is needed.
 */
export interface LabelledItem<Input> {
  source: string;
  label: number;
  load(): Promise<Input>;
}

/** An input that could not be used, with why; listed in every report and manifest. */
export interface SkippedInput {
  source: string;
  reason: string;
}

export type SplitName = 'train' | 'validation' | 'test';

export interface Dataset<Input> {
  /** Where it came from (a folder or file), for reports. */
  origin: string;
  classes: string[];
  train: LabelledItem<Input>[];
  validation: LabelledItem<Input>[];
  test?: LabelledItem<Input>[];
  /** How the validation set came about. */
  validationSource: 'given' | { heldOutFraction: number; seed: number };
  /** Found while listing (unsupported types); decoding failures are added during extraction. */
  skipped: SkippedInput[];
}

export interface SplitOptions {
  /** Fraction of each class held out for validation when no validation set is given. */
  validationFraction?: number;
  seed?: number;
}

/**
 * Holds out `fraction` of every class (at least one item, and at least one left to train on),
 * chosen by a seeded shuffle, so each class keeps its share and the same seed gives the same split.
 */
export function stratifiedSplit<T extends { label: number; source: string }>(
  items: T[],
  classes: string[],
  options: SplitOptions & { origin: string },
): { train: T[]; validation: T[] } {
  const fraction = options.validationFraction ?? 0.2;
  if (!(fraction > 0 && fraction < 1)) {
    throw dataError(`the validation fraction must be between 0 and 1 (exclusive), got ${fraction}`);
  }
  const rng = new Rng(options.seed ?? 0);
  const train: T[] = [];
  const validation: T[] = [];
  classes.forEach((name, label) => {
    // Sort first so the split depends only on the seed and the files, not on listing order.
    const members = items.filter((item) => item.label === label).sort((a, b) => compare(a.source, b.source));
    if (members.length < 2) {
      throw dataError(
        `class "${name}" has ${members.length} item(s); at least 2 are needed to hold one out for validation ` +
          `(add examples, or give a separate validation set)`,
        options.origin,
      );
    }
    rng.shuffle(members);
    const held = Math.min(members.length - 1, Math.max(1, Math.round(members.length * fraction)));
    validation.push(...members.slice(0, held));
    train.push(...members.slice(held));
  });
  return { train, validation };
}

export function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Every class must be known, non-empty in training, and there must be at least two. */
export function checkClasses(classes: string[], counts: number[], origin: string): void {
  if (classes.length < 2) {
    throw dataError(
      `found ${classes.length} class${classes.length === 1 ? '' : 'es'} (${classes.join(', ') || 'none'}); ` +
        'a classifier needs at least two',
      origin,
    );
  }
  const empty = classes.filter((_, i) => counts[i] === 0);
  if (empty.length > 0) {
    throw dataError(`class${empty.length > 1 ? 'es' : ''} ${empty.map((c) => `"${c}"`).join(', ')} contain no usable examples`, origin);
  }
}
