import type { FeatureMatrix } from '../features/sparse.js';

/**
 * A backbone turns prepared inputs (pixels, token ids, audio windows) into one feature vector each.
 * Images, text and audio differ only in how an input is prepared; extraction, caching, heads,
 * training, evaluation and artifacts are shared.
 */
export type Modality = 'image' | 'text' | 'audio';

/** How a backbone was obtained, recorded in every model folder so it can be found again. */
export interface BackboneReference {
  /** What the user named: `builtin:mobilenet-v2-1.4`, a folder, `tfjs:…/model.json`, `hf:owner/repo`. */
  id: string;
  /** sha256 of the ONNX graph that actually runs. */
  sha256: string;
  modality: Modality;
  featureDim: number;
  /** Graph output (or node) the features come from, and how they are pooled. */
  featureOutput: string;
}

export interface Backbone<Input, Prepared> {
  readonly reference: BackboneReference;
  /** JSON-able description of the preprocessing; part of every cache key and of the manifest. */
  readonly preprocessing: object;
  /** Turns one raw input into what `forward` consumes (decode, resize, tokenise, resample…). */
  prepare(input: Input, view?: AugmentationView): Promise<Prepared>;
  /**
   * Runs the graph on a batch; returns features row-major, `batch.length × featureDim`, or sparse
   * rows for a backbone whose `sparse` is true (TF-IDF).
   */
  forward(batch: Prepared[]): Promise<FeatureMatrix>;
  /** True when `forward` returns sparse rows; such features are never written to the feature cache. */
  readonly sparse?: boolean;
  /** Preferred batch size for `forward`. */
  readonly batchSize: number;
  dispose(): Promise<void>;
}

/**
 * One augmented view of an input: a seed from which the modality's augmentation draws its random
 * choices, so the same (file, view) always yields the same pixels and can be cached.
 */
export interface AugmentationView {
  index: number;
  seed: number;
  /** The modality's augmentation settings (JSON-able; part of the cache key). */
  settings?: unknown;
}
