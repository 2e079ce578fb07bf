/**
 * CenterNet's loss as a `LossSpec` for `buildTrainingGraph` (Zhou et al. 2019, "Objects as Points"):
 * the penalty-reduced pixel-wise focal loss on the class heatmap,
 *   −1/N Σ [ y = 1: (1 − p)^α log p ;  y < 1: (1 − y)^β p^α log(1 − p) ],
 * with p the sigmoid clamped to [1e-4, 1 − 1e-4] as the reference's `_sigmoid`, plus λ·L1 on the box
 * sides at object centres. The per-batch weights (1/N, (1 − y)^β / N, λ/(stride·N)) are drawn in
 * TypeScript (`batchTargets`), so the graph is a few elementwise ops and two sums.
 */
import type { LossInput, LossSpec } from '../autodiff/training-graph.js';

export const FOCAL_ALPHA = 2;
export const FOCAL_BETA = 4;
/** CenterNet's `wh_weight`, on sides in output cells. */
export const SIDES_WEIGHT = 0.1;
const CLAMP = 1e-4;

export const LOSS_INPUTS = { positiveWeight: 'heatmap_positive_weight', negativeWeight: 'heatmap_negative_weight', sidesTarget: 'sides_target', sidesWeight: 'sides_weight' } as const;

/** `logits`: NCHW [n, classes, grid, grid] before the sigmoid; `sides`: NCHW [n, 4, grid, grid]. */
export function centerNetLoss(logits: string, sides: string, classes: number, grid: number, options: { alpha?: number } = {}): LossSpec {
  const alpha = options.alpha ?? FOCAL_ALPHA;
  return {
    name: 'CenterNet focal + L1 sides',
    build(b) {
      const mapDims = [-1, classes, grid, grid];
      const sideDims = [-1, 4, grid, grid];
      const input = (name: string, dims: number[]): LossInput => {
        const added = b.graph.addInput(name, dims, 'float32');
        b.info.set(added, { dtype: 'float32', dims });
        return { name: added, dims, dtype: 'float32' };
      };
      const positive = input(LOSS_INPUTS.positiveWeight, mapDims);
      const negative = input(LOSS_INPUTS.negativeWeight, mapDims);
      const target = input(LOSS_INPUTS.sidesTarget, sideDims);
      const weight = input(LOSS_INPUTS.sidesWeight, sideDims);
      const one = b.scalar(1, 'float32');
      const sigmoid = b.op('Sigmoid', [logits], {}, 'heatmap_probability', mapDims);
      const p = b.op('Clip', [sigmoid, b.scalar(CLAMP, 'float32'), b.scalar(1 - CLAMP, 'float32')], {}, 'heatmap_clamped', mapDims);
      const q = b.op('Sub', [one, p], {}, 'heatmap_complement', mapDims);
      const power = b.scalar(alpha, 'float32');
      const positiveTerm = b.op('Mul', [b.op('Mul', [b.op('Pow', [q, power], {}, 'focal_positive_factor', mapDims), b.op('Log', [p], {}, 'log_p', mapDims)], {}, 'focal_positive', mapDims), positive.name], {}, 'focal_positive_weighted', mapDims);
      const negativeTerm = b.op('Mul', [b.op('Mul', [b.op('Pow', [p, power], {}, 'focal_negative_factor', mapDims), b.op('Log', [q], {}, 'log_q', mapDims)], {}, 'focal_negative', mapDims), negative.name], {}, 'focal_negative_weighted', mapDims);
      const focalSum = b.op('ReduceSum', [b.op('Add', [positiveTerm, negativeTerm], {}, 'focal_terms', mapDims)], { keepdims: { kind: 'int', value: 0 } }, 'focal_sum', []);
      const focal = b.op('Neg', [focalSum], {}, 'focal_loss', []);
      const l1 = b.op('Mul', [b.op('Abs', [b.op('Sub', [sides, target.name], {}, 'sides_error', sideDims)], {}, 'sides_abs_error', sideDims), weight.name], {}, 'sides_weighted', sideDims);
      const sidesLoss = b.op('ReduceSum', [l1], { keepdims: { kind: 'int', value: 0 } }, 'sides_loss', []);
      const loss = b.op('Add', [focal, sidesLoss], {}, 'loss', []);
      return { loss, inputs: [positive, negative, target, weight] };
    },
  };
}
