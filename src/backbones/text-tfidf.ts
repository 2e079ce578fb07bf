import type { Backbone, BackboneReference } from './backbone.js';
import { stack } from './onnx-session.js';
import { modelError, usageError } from '../util/errors.js';
import { hashJson } from '../util/hash.js';
import { isTfidfState, termsOf, TfidfVectorizer, type TfidfSettings, type TfidfState } from '../web/tfidf.js';

// Featurisation (termsOf, transform) is shared with headstart/web; fitting is here.
export { termsOf, type TfidfSettings, type TfidfState } from '../web/tfidf.js';

/**
 * The from-scratch baseline: TF-IDF over word and character n-grams, what a user without a
 * pre-trained model would do. Unlike a backbone it is fitted — vocabulary and idf come from the
 * training texts — so it is a feature map with state; once fitted it is used like any backbone,
 * and its state (settings, terms, idf) is the "preprocessing" saved in the model folder.
 */
export const TFIDF_DEFAULTS: TfidfSettings = { wordNgrams: [1, 2], charNgrams: [2, 4], minDf: 1, maxFeatures: 5_000, sublinearTf: true };

/**
 * Feature values (rows × terms) that the baseline may hold in memory at once, over all splits:
 * 2^28 float32 values = 1 GiB. SST-2's 68,000 texts thus get about 3,900 terms.
 */
export const TFIDF_FEATURE_BUDGET = 2 ** 28;

export class TfidfFeatureMap extends TfidfVectorizer {
  constructor(state: TfidfState) {
    if (!isTfidfState(state)) throw modelError('not a fitted TF-IDF state (kind "tfidf" with as many terms as idf values)');
    super(state);
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
