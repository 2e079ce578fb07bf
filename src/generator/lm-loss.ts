import { attr } from '../backbones/tfjs/onnx-graph.js';
import type { LossSpec } from '../autodiff/training-graph.js';

export const LM_TARGETS = 'lm_targets';
export const LM_WEIGHTS = 'lm_weights';
/** The evaluation graph's per-position loss output. */
export const LM_TOKEN_LOSS = 'token_loss';

/**
 * Causal language-modelling cross-entropy: Σ w·(−log softmax(logits)[next token]) over every
 * position, with `lm_targets` [batch, T] the next token of each position and `lm_weights` [batch, T]
 * 1/(targets in the batch) where the next token is a target, else 0 — so the loss is the mean over
 * targets, as transformers' (labels −100 excluded). The one-hot is built in the graph from the
 * integer targets, so no batch × T × vocab tensor crosses into onnxruntime.
 */
export function causalLmLoss(logits: string, blockLength: number, vocabSize: number): LossSpec {
  return {
    name: 'causal LM cross-entropy',
    build(b) {
      const targets = b.graph.addInput(LM_TARGETS, [-1, blockLength], 'int64');
      const weights = b.graph.addInput(LM_WEIGHTS, [-1, blockLength], 'float32');
      b.info.set(targets, { dtype: 'int64', dims: [-1, blockLength] });
      b.info.set(weights, { dtype: 'float32', dims: [-1, blockLength] });
      const full = [-1, blockLength, vocabSize];
      const oneHot = b.op('OneHot', [targets, b.int64s([vocabSize]), b.constant('float32', [2], [0, 1], 'one_hot_values')], { axis: attr.int(-1) }, 'target_one_hot', full);
      const logProbabilities = b.op('LogSoftmax', [logits], { axis: attr.int(-1) }, 'log_probabilities', full);
      const picked = b.op('ReduceSum', [b.op('Mul', [logProbabilities, oneHot], {}, 'target_log_probability_all', full), b.int64s([2])], { keepdims: attr.int(0) }, 'target_log_probability', [-1, blockLength]);
      const weighted = b.op('Mul', [picked, weights], {}, 'weighted_log_likelihood', [-1, blockLength]);
      const loss = b.op('Neg', [b.op('ReduceSum', [weighted], { keepdims: attr.int(0) }, 'log_likelihood', [])], {}, 'loss', []);
      return {
        loss,
        inputs: [
          { name: targets, dims: [-1, blockLength], dtype: 'int64' },
          { name: weights, dims: [-1, blockLength], dtype: 'float32' },
        ],
      };
    },
    // Each position's −log p(next token), [batch, T]: what perplexity needs, without the logits
    // (batch × T × vocab floats) leaving onnxruntime and a log-softmax over them in JavaScript.
    evaluation(b) {
      const targets = b.graph.addInput(LM_TARGETS, [-1, blockLength], 'int64');
      b.info.set(targets, { dtype: 'int64', dims: [-1, blockLength] });
      const full = [-1, blockLength, vocabSize];
      const logProbabilities = b.op('LogSoftmax', [logits], { axis: attr.int(-1) }, 'log_probabilities', full);
      const index = b.op('Unsqueeze', [targets, b.int64s([2])], {}, 'target_index', [-1, blockLength, 1]);
      const picked = b.op('GatherElements', [logProbabilities, index], { axis: attr.int(2) }, 'target_log_probability', [-1, blockLength, 1]);
      const nll = b.op('Neg', [b.op('Squeeze', [picked, b.int64s([2])], {}, 'target_log_probability_flat', [-1, blockLength])], {}, LM_TOKEN_LOSS, [-1, blockLength]);
      return { outputs: [nll], inputs: [{ name: targets, dims: [-1, blockLength], dtype: 'int64' }] };
    },
  };
}
