import type { Backbone, BackboneReference } from './backbone.js';
import { sparseRows, type SparseRows } from '../features/sparse.js';
import { modelError, usageError } from '../util/errors.js';
import { hashJson } from '../util/hash.js';
import { isTfidfState, termsOf, TfidfVectorizer, type TfidfRow, type TfidfSettings, type TfidfState } from '../web/tfidf.js';

// Featurisation (termsOf, transform) is shared with headstart/web; fitting is here.
export { termsOf, type TfidfSettings, type TfidfState } from '../web/tfidf.js';

/**
 * The from-scratch baseline: TF-IDF over word and character n-grams, what a user without a
 * pre-trained model would do. Unlike a backbone it is fitted — vocabulary and idf come from the
 * training texts — so it is a feature map with state; once fitted it is used like any backbone,
 * and its state (settings, terms, idf) is the "preprocessing" saved in the model folder.
 */
export const TFIDF_DEFAULTS: TfidfSettings = { wordNgrams: [1, 2], charNgrams: [2, 4], minDf: 1, maxFeatures: null, sublinearTf: true };

export class TfidfFeatureMap extends TfidfVectorizer {
  constructor(state: TfidfState) {
    if (!isTfidfState(state)) throw modelError('not a fitted TF-IDF state (kind "tfidf" with as many terms as idf values)');
    super(state);
  }

  /**
   * Fits on training texts: document frequencies of every n-gram, all kept or the `maxFeatures`
   * most frequent (ties in term order, so the same texts always give the same map), idf as
   * scikit-learn's smooth idf: ln((1 + n) / (1 + df)) + 1.
   */
  static fit(texts: string[], options: Partial<TfidfSettings> = {}): TfidfFeatureMap {
    const settings = { ...TFIDF_DEFAULTS, ...options };
    checkSettings(settings);
    if (texts.length === 0) throw usageError('TF-IDF needs at least one training text');
    const df = new Map<string, number>();
    for (const text of texts) for (const term of new Set(termsOf(text, settings))) df.set(term, (df.get(term) ?? 0) + 1);
    const byName = (a: [string, number], b: [string, number]) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
    let kept = [...df.entries()].filter(([, count]) => count >= settings.minDf);
    if (settings.maxFeatures !== null && kept.length > settings.maxFeatures) {
      kept = kept.sort((a, b) => b[1] - a[1] || byName(a, b)).slice(0, settings.maxFeatures);
    }
    // In term order: the `c:` (character) block, then the `w:` (word) block.
    kept.sort(byName);
    if (kept.length === 0) throw usageError(`no term occurs in at least ${settings.minDf} training texts`);
    const n = texts.length;
    return new TfidfFeatureMap({
      kind: 'tfidf',
      settings,
      terms: kept.map(([term]) => term),
      idf: kept.map(([, count]) => Math.log((1 + n) / (1 + count)) + 1),
    });
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
  if (s.maxFeatures !== null && (!Number.isInteger(s.maxFeatures) || s.maxFeatures < 1)) throw usageError('TF-IDF maxFeatures (--max-terms) must be a positive integer, or null for every term');
}

/**
 * A fitted TF-IDF map as a backbone, so training, evaluation, saving and loading are the shared
 * ones. Its rows are sparse (`forward` returns SparseRows): the linear head trains on their
 * non-zeros, so the vocabulary can be everything the training texts hold.
 */
export class TfidfBackbone implements Backbone<string, TfidfRow> {
  readonly batchSize = 256;
  readonly sparse = true;
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

  async prepare(text: string): Promise<TfidfRow> {
    return this.map.transformSparse(text);
  }

  async forward(batch: TfidfRow[]): Promise<SparseRows> {
    return sparseRows(batch, this.map.dim);
  }

  async dispose(): Promise<void> {}
}

/** The backbone reference that means "fit TF-IDF on the training texts". */
export const TFIDF_BACKBONE = 'tfidf';
