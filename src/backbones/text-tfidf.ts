import type { Backbone, BackboneReference } from './backbone.js';
import { stack } from './onnx-session.js';
import { modelError, usageError } from '../util/errors.js';
import { hashJson } from '../util/hash.js';

/**
 * The from-scratch baseline: TF-IDF over word and character n-grams, what a user without a
 * pre-trained model would do. Unlike a backbone it is fitted — vocabulary and idf come from the
 * training texts — so it is a feature map with state; once fitted it is used like any backbone,
 * and its state (settings, terms, idf) is the "preprocessing" saved in the model folder.
 */
export interface TfidfSettings {
  /** Word n-gram lengths [min, max], or null for none. Words: runs of ≥ 2 letters/digits (scikit-learn's default). */
  wordNgrams: [number, number] | null;
  /** Character n-gram lengths within words padded by a space (scikit-learn's `char_wb`), or null. */
  charNgrams: [number, number] | null;
  /** Keep the terms in at least this many training texts. */
  minDf: number;
  /**
   * Keep at most this many terms, the most frequent by document count. Features are dense here
   * (the heads take dense rows), so the head's time grows with it: 5,000 trains the SMS spam
   * baseline in seconds where 20,000 took a minute, for 0.958 vs 0.954 spam F1 (measured). `fit`
   * also caps it by TFIDF_FEATURE_BUDGET.
   */
  maxFeatures: number;
  /** tf = 1 + ln(count) instead of the count. */
  sublinearTf: boolean;
}

export const TFIDF_DEFAULTS: TfidfSettings = { wordNgrams: [1, 2], charNgrams: [2, 4], minDf: 1, maxFeatures: 5_000, sublinearTf: true };

/**
 * Feature values (rows × terms) that the baseline may hold in memory at once, over all splits:
 * 2^28 float32 values = 1 GiB. SST-2's 68,000 texts thus get about 3,900 terms.
 */
export const TFIDF_FEATURE_BUDGET = 2 ** 28;

/** What a fitted TF-IDF map is; JSON-able. */
export interface TfidfState {
  kind: 'tfidf';
  settings: TfidfSettings;
  /** `w:<words>` and `c:<characters>` terms, in feature order. */
  terms: string[];
  idf: number[];
}

export class TfidfFeatureMap {
  private readonly index: Map<string, number>;
  /** Where the character features start: word and character blocks are normalised separately. */
  private readonly charStart: number;

  constructor(readonly state: TfidfState) {
    if (state.kind !== 'tfidf' || !Array.isArray(state.terms) || state.terms.length !== state.idf?.length) {
      throw modelError('not a fitted TF-IDF state (kind "tfidf" with as many terms as idf values)');
    }
    this.index = new Map(state.terms.map((t, i) => [t, i]));
    const firstChar = state.terms.findIndex((t) => t.startsWith('c:'));
    this.charStart = firstChar < 0 ? state.terms.length : firstChar;
  }

  get dim(): number {
    return this.state.terms.length;
  }

  /**
   * Fits on training texts: document frequencies of every n-gram, the `maxFeatures` most frequent
   * kept (ties in term order, so the same texts always give the same map), idf as scikit-learn's
   * smooth idf: ln((1 + n) / (1 + df)) + 1.
   */
  static fit(texts: string[], options: Partial<TfidfSettings> = {}, rowsToHold = texts.length): TfidfFeatureMap {
    const requested = { ...TFIDF_DEFAULTS, ...options };
    checkSettings(requested);
    if (texts.length === 0) throw usageError('TF-IDF needs at least one training text');
    const settings = { ...requested, maxFeatures: Math.max(1, Math.min(requested.maxFeatures, Math.floor(TFIDF_FEATURE_BUDGET / Math.max(1, rowsToHold)))) };
    const df = new Map<string, number>();
    for (const text of texts) for (const term of new Set(termsOf(text, settings))) df.set(term, (df.get(term) ?? 0) + 1);
    const kept = [...df.entries()]
      .filter(([, count]) => count >= settings.minDf)
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .slice(0, settings.maxFeatures)
      // Words first, then characters, each block in term order.
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    if (kept.length === 0) throw usageError(`no term occurs in at least ${settings.minDf} training texts`);
    const n = texts.length;
    return new TfidfFeatureMap({
      kind: 'tfidf',
      settings,
      terms: kept.map(([term]) => term),
      idf: kept.map(([, count]) => Math.log((1 + n) / (1 + count)) + 1),
    });
  }

  /** One text's TF-IDF row; the word block and the character block each have unit length. */
  transform(text: string): Float32Array {
    const out = new Float32Array(this.dim);
    const counts = new Map<number, number>();
    for (const term of termsOf(text, this.state.settings)) {
      const at = this.index.get(term);
      if (at !== undefined) counts.set(at, (counts.get(at) ?? 0) + 1);
    }
    for (const [at, count] of counts) out[at] = (this.state.settings.sublinearTf ? 1 + Math.log(count) : count) * this.state.idf[at]!;
    normalizeBlock(out, 0, this.charStart);
    normalizeBlock(out, this.charStart, this.dim);
    return out;
  }

  describe(): string {
    const { wordNgrams, charNgrams, sublinearTf } = this.state.settings;
    const parts = [wordNgrams && `word ${wordNgrams[0]}–${wordNgrams[1]}-grams`, charNgrams && `char ${charNgrams[0]}–${charNgrams[1]}-grams`].filter(Boolean);
    return `TF-IDF (${parts.join(' + ')}, ${this.dim} terms${sublinearTf ? ', sublinear tf' : ''})`;
  }
}

function checkSettings(s: TfidfSettings): void {
  const range = (r: [number, number] | null, name: string) => {
    if (r !== null && !(Array.isArray(r) && r.length === 2 && Number.isInteger(r[0]) && Number.isInteger(r[1]) && r[0] >= 1 && r[1] >= r[0])) {
      throw usageError(`TF-IDF ${name} must be [min, max] with 1 ≤ min ≤ max, or null`);
    }
  };
  range(s.wordNgrams, 'wordNgrams');
  range(s.charNgrams, 'charNgrams');
  if (!s.wordNgrams && !s.charNgrams) throw usageError('TF-IDF needs word or character n-grams');
  if (!Number.isInteger(s.minDf) || s.minDf < 1) throw usageError('TF-IDF minDf must be a positive integer');
  if (!Number.isInteger(s.maxFeatures) || s.maxFeatures < 1) throw usageError('TF-IDF maxFeatures must be a positive integer');
}

function normalizeBlock(row: Float32Array, start: number, end: number): void {
  let squares = 0;
  for (let i = start; i < end; i++) squares += row[i]! ** 2;
  if (squares === 0) return;
  const scale = 1 / Math.sqrt(squares);
  for (let i = start; i < end; i++) row[i]! *= scale;
}

/** The n-gram terms of a text, with repeats (their count is the term frequency). */
export function termsOf(text: string, settings: Pick<TfidfSettings, 'wordNgrams' | 'charNgrams'>): string[] {
  const lower = text.normalize('NFKC').toLowerCase();
  const terms: string[] = [];
  if (settings.wordNgrams) {
    const words = lower.match(/[\p{L}\p{N}_]{2,}/gu) ?? [];
    const [min, max] = settings.wordNgrams;
    for (let n = min; n <= max; n++) for (let i = 0; i + n <= words.length; i++) terms.push(`w:${words.slice(i, i + n).join(' ')}`);
  }
  if (settings.charNgrams) {
    const [min, max] = settings.charNgrams;
    for (const word of lower.split(/\s+/)) {
      if (word === '') continue;
      const padded = ` ${word} `;
      for (let n = min; n <= max; n++) {
        // As scikit-learn's char_wb: a padded word no longer than n is taken whole, once.
        if (n >= padded.length) {
          terms.push(`c:${padded}`);
          break;
        }
        for (let i = 0; i + n <= padded.length; i++) terms.push(`c:${padded.slice(i, i + n)}`);
      }
    }
  }
  return terms;
}

/** A fitted TF-IDF map as a backbone, so training, evaluation, saving and loading are the shared ones. */
export class TfidfBackbone implements Backbone<string, Float32Array> {
  readonly batchSize = 256;
  readonly reference: BackboneReference;

  constructor(readonly map: TfidfFeatureMap) {
    this.reference = {
      id: TFIDF_BACKBONE,
      // The fitted state is what "runs": the same hash means the same features.
      sha256: hashJson(map.state),
      modality: 'text',
      featureDim: map.dim,
      featureOutput: map.describe(),
    };
  }

  get preprocessing(): TfidfState {
    return this.map.state;
  }

  async prepare(text: string): Promise<Float32Array> {
    return this.map.transform(text);
  }

  async forward(batch: Float32Array[]): Promise<Float32Array> {
    return stack(batch);
  }

  async dispose(): Promise<void> {}
}

/** The backbone reference that means "fit TF-IDF on the training texts". */
export const TFIDF_BACKBONE = 'tfidf';
