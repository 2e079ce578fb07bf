/**
 * TF-IDF featurisation of a fitted map, shared by the library (training, `predict`) and
 * `headstart/web` (a TF-IDF export carries the fitted state in its metadata and consumers compute
 * the row here): one implementation, so an exported model sees exactly the library's features.
 * Pure TypeScript: no Node built-ins, no DOM. Fitting stays in src/backbones/text-tfidf.ts.
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

/** What a fitted TF-IDF map is; JSON-able. */
export interface TfidfState {
  kind: 'tfidf';
  settings: TfidfSettings;
  /** `w:<words>` and `c:<characters>` terms, in feature order. */
  terms: string[];
  idf: number[];
}

/** Whether `state` looks like a fitted TF-IDF state (the checks a constructor needs before indexing it). */
export function isTfidfState(state: unknown): state is TfidfState {
  const s = state as TfidfState | undefined;
  return s?.kind === 'tfidf' && Array.isArray(s.terms) && Array.isArray(s.idf) && s.terms.length === s.idf.length && typeof s.settings === 'object' && s.settings !== null;
}

/** A fitted TF-IDF state, indexed: text → dense row. */
export class TfidfVectorizer {
  private readonly index: Map<string, number>;
  /** Where the character features start: word and character blocks are normalised separately. */
  private readonly charStart: number;

  constructor(readonly state: TfidfState) {
    if (!isTfidfState(state)) throw new Error('not a fitted TF-IDF state (kind "tfidf" with as many terms as idf values)');
    this.index = new Map(state.terms.map((t, i) => [t, i]));
    const firstChar = state.terms.findIndex((t) => t.startsWith('c:'));
    this.charStart = firstChar < 0 ? state.terms.length : firstChar;
  }

  get dim(): number {
    return this.state.terms.length;
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
