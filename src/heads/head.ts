import type { FeatureMatrix } from '../features/sparse.js';
import { modelError } from '../util/errors.js';
import { CentroidHead } from './centroid.js';
import { KnnHead } from './knn.js';
import { LinearHead } from './linear.js';
import { MlpHead } from './mlp.js';

/**
 * A head turns backbone feature vectors into class scores. Every head standardises its input
 * itself (per-dimension mean/std fitted on the training features), so a saved head needs nothing
 * but its own state to reproduce its predictions.
 */
export type HeadType = 'linear' | 'mlp' | 'knn' | 'centroid';

export const HEAD_TYPES: readonly HeadType[] = ['linear', 'mlp', 'knn', 'centroid'];

export interface FeatureSet {
  /** n×dim, row-major, or n sparse rows (TF-IDF). */
  features: FeatureMatrix;
  /** n labels in 0..numClasses-1. */
  labels: Int32Array;
  dim: number;
  numClasses: number;
}

export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}

/**
 * Everything needed to rebuild a head: a JSON-able config plus float tensors (the model folder
 * writes the tensors to a binary file). The tensors are the head's own arrays, not copies: treat
 * them as read-only.
 */
export interface HeadState {
  type: HeadType;
  config: Record<string, unknown>;
  tensors: Record<string, NamedTensor>;
}

export interface Head {
  readonly type: HeadType;
  readonly dim: number;
  readonly numClasses: number;
  /**
   * n×numClasses scores whose softmax is `predictProba`:
   * - linear, mlp: the network's logits;
   * - knn: log of the (slightly smoothed) distance-weighted vote shares;
   * - centroid: cosine similarity to each class centroid times a fixed scale.
   */
  logits(features: FeatureMatrix): Float32Array;
  /** n×numClasses, each row sums to 1. */
  predictProba(features: FeatureMatrix): Float32Array;
  /** n predicted classes (highest score; ties go to the lower class index). */
  predict(features: FeatureMatrix): Int32Array;
  state(): HeadState;
}

/**
 * Rebuilds a head from `state()` output (possibly after a JSON + binary round trip). Takes
 * ownership of the tensor arrays. Throws a model error naming the problem if the state is malformed.
 */
export function headFromState(state: HeadState): Head {
  if (state === null || typeof state !== 'object') throw modelError('head state is not an object');
  if (state.config === null || typeof state.config !== 'object' || Array.isArray(state.config)) {
    throw modelError(`head state has no config object`);
  }
  if (state.tensors === null || typeof state.tensors !== 'object' || Array.isArray(state.tensors)) {
    throw modelError(`head state has no tensors object`);
  }
  switch (state.type) {
    case 'linear':
      return LinearHead.fromState(state);
    case 'mlp':
      return MlpHead.fromState(state);
    case 'knn':
      return KnnHead.fromState(state);
    case 'centroid':
      return CentroidHead.fromState(state);
    default:
      throw modelError(
        `unknown head type ${JSON.stringify((state as { type?: unknown }).type)} (expected one of ${HEAD_TYPES.join(', ')})`,
      );
  }
}
