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
 * targets, as transformers' (labels −100 excluded). Targets are integers, so no batch × T × vocab
 * tensor crosses into onnxruntime; the gradient with respect to the logits is given in closed form.
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
      const logProbabilities = b.op('LogSoftmax', [logits], { axis: attr.int(-1) }, 'log_probabilities', full);
      const index = b.op('Unsqueeze', [targets, b.int64s([2])], {}, 'target_index', [-1, blockLength, 1]);
      const picked = b.op('Squeeze', [b.op('GatherElements', [logProbabilities, index], { axis: attr.int(2) }, 'target_log_probability_kept', [-1, blockLength, 1]), b.int64s([2])], {}, 'target_log_probability', [-1, blockLength]);
      const weighted = b.op('Mul', [picked, weights], {}, 'weighted_log_likelihood', [-1, blockLength]);
      const loss = b.op('Neg', [b.op('ReduceSum', [weighted], { keepdims: attr.int(0) }, 'log_likelihood', [])], {}, 'loss', []);
      // ∂loss/∂logits = w·(softmax − one-hot), in four passes over batch × T × vocab (log-softmax,
      // exp, ×w, the scatter's copy) where the rules of a one-hot product took ten (the full GPT-2
      // 124M step: 2.5 of 15.9 s, bench/profile-step.ts).
      const weight = b.op('Unsqueeze', [weights, b.int64s([2])], {}, 'target_weight', [-1, blockLength, 1]);
      const scaled = b.op('Mul', [b.op('Exp', [logProbabilities], {}, 'probabilities', full), weight], {}, 'weighted_probabilities', full);
      const atTarget = b.op('Sub', [b.op('GatherElements', [scaled, index], { axis: attr.int(2) }, 'weighted_probability_at_target', [-1, blockLength, 1]), weight], {}, 'logit_gradient_at_target', [-1, blockLength, 1]);
      const gradient = b.op('ScatterElements', [scaled, index, atTarget], { axis: attr.int(2) }, 'logit_gradient', full);
      return {
        loss,
        seed: { tensor: logits, gradient },
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
