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
   * Keep at most this many terms, the most frequent by document count; null keeps every term the
   * training texts have (rows are sparse, so the head's time grows with the non-zeros, not with this).
   */
  maxFeatures: number | null;
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

/** One text's TF-IDF row as its non-zeros: term indices (increasing) and values. */
export interface TfidfRow {
  indices: Int32Array;
  values: Float32Array;
}

/** A fitted TF-IDF state, indexed: text → row (sparse, or dense). */
export class TfidfVectorizer {
  private readonly index: Map<string, number>;
  /** 1 for a character n-gram: word and character blocks are normalised separately. */
  private readonly isChar: Uint8Array;

  constructor(readonly state: TfidfState) {
    if (!isTfidfState(state)) throw new Error('not a fitted TF-IDF state (kind "tfidf" with as many terms as idf values)');
    this.index = new Map(state.terms.map((t, i) => [t, i]));
    // By prefix, not position: sorted by name, `c:` terms come before `w:` ones.
    this.isChar = Uint8Array.from(state.terms, (t) => (t.startsWith('c:') ? 1 : 0));
  }

  get dim(): number {
    return this.state.terms.length;
  }

  /**
   * One text's TF-IDF row as its non-zeros; the word block and the character block each have unit
   * length (as two scikit-learn vectorizers in a FeatureUnion). Norms are summed in float64 from the
   * float32 tf·idf values, then each value is scaled once.
   */
  transformSparse(text: string): TfidfRow {
    const counts = new Map<number, number>();
    for (const term of termsOf(text, this.state.settings)) {
      const at = this.index.get(term);
      if (at !== undefined) counts.set(at, (counts.get(at) ?? 0) + 1);
    }
    const indices = Int32Array.from(counts.keys()).sort();
    const values = new Float32Array(indices.length);
    const { sublinearTf } = this.state.settings;
    const { isChar } = this;
    let wordSquares = 0;
    let charSquares = 0;
    for (let e = 0; e < indices.length; e++) {
      const at = indices[e]!;
      const count = counts.get(at)!;
      values[e] = (sublinearTf ? 1 + Math.log(count) : count) * this.state.idf[at]!;
      if (isChar[at]) charSquares += values[e]! ** 2;
      else wordSquares += values[e]! ** 2;
    }
    const wordScale = wordSquares > 0 ? 1 / Math.sqrt(wordSquares) : 0;
    const charScale = charSquares > 0 ? 1 / Math.sqrt(charSquares) : 0;
    for (let e = 0; e < indices.length; e++) values[e]! *= isChar[indices[e]!] ? charScale : wordScale;
    return { indices, values };
  }

  /** The same row dense: `dim` values, zeros where the text lacks a term. */
  transform(text: string): Float32Array {
    const out = new Float32Array(this.dim);
    const { indices, values } = this.transformSparse(text);
    for (let e = 0; e < indices.length; e++) out[indices[e]!] = values[e]!;
    return out;
  }
}

/** The n-gram terms of a text, with repeats (their count is the term frequency). */
export function termsOf(text: string, settings: Pick<TfidfSettings, 'wordNgrams' | 'charNgrams'>): string[] {
  // Lower-cased only, as scikit-learn's vectorizers (no Unicode normalisation: … stays one character).
  const lower = text.toLowerCase();
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
