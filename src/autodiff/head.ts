/** Classification heads appended to a backbone graph, so they train together with it. */
import { attr } from '../backbones/tfjs/onnx-graph.js';
import { modelError } from '../util/errors.js';
import type { TrainableModel } from './model.js';

export interface LinearHeadWeights {
  /** classes × features, row-major (Gemm with transB, as torch.nn.Linear stores it). */
  weight: Float32Array;
  bias: Float32Array;
  /** Optional standardisation z = (x − mean)/std applied first, frozen. */
  mean?: Float32Array;
  std?: Float32Array;
}

/** Names of the head's tensors in the graph. */
export interface AppendedHead {
  logits: string;
  weight: string;
  bias: string;
}

/**
 * Appends logits = W·z + b to `model` on the rank-2 tensor `features`, with z the features,
 * standardised by frozen constants when `mean`/`std` are given. W and b become initializers
 * (to train or to keep frozen).
 */
export function appendLinearHead(model: TrainableModel, features: string, head: LinearHeadWeights, names: { weight?: string; bias?: string } = {}): AppendedHead {
  const { graph, info } = model;
  const dims = info.get(features)?.dims;
  if (!dims || dims.length !== 2 || !(dims[1]! > 0)) throw modelError(`the head needs [batch, features] input, ${features} has shape [${dims}]`, model.origin);
  const dim = dims[1]!;
  const classes = head.bias.length;
  if (head.weight.length !== classes * dim) throw modelError(`a linear head on ${dim} features for ${classes} classes needs ${classes * dim} weights, got ${head.weight.length}`, model.origin);
  let input = features;
  if (head.mean && head.std) {
    const mean = graph.addFloatInitializer('head/standardize/mean', [dim], head.mean.slice());
    const inverseStd = graph.addFloatInitializer('head/standardize/inverse_std', [dim], Float32Array.from(head.std, (s) => 1 / s));
    info.set(mean, { dtype: 'float32', dims: [dim] });
    info.set(inverseStd, { dtype: 'float32', dims: [dim] });
    const centered = graph.addNode('Sub', [features, mean], {}, 'head/centered');
    info.set(centered, { dtype: 'float32', dims: [...dims] });
    input = graph.addNode('Mul', [centered, inverseStd], {}, 'head/standardized');
    info.set(input, { dtype: 'float32', dims: [...dims] });
  }
  const weight = graph.addFloatInitializer(names.weight ?? 'head/weight', [classes, dim], head.weight.slice());
  const bias = graph.addFloatInitializer(names.bias ?? 'head/bias', [classes], head.bias.slice());
  info.set(weight, { dtype: 'float32', dims: [classes, dim] });
  info.set(bias, { dtype: 'float32', dims: [classes] });
  const logits = graph.addNode('Gemm', [input, weight, bias], { transB: attr.int(1) }, 'head/logits');
  info.set(logits, { dtype: 'float32', dims: [dims[0]!, classes] });
  return { logits, weight, bias };
}
