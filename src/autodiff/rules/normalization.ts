/** Gradient rules of BatchNormalization (inference form) and LayerNormalization. */
import type { GradientRule } from '../rule.js';

/**
 * Inference BatchNormalization is a per-channel affine map with frozen statistics:
 * y = (x − μ)·γ/√(σ² + ε) + β. Gradients for γ and β (and, if asked, μ and σ²) are channel sums.
 */
const batchNormalization: GradientRule = (g) => {
  const b = g.b;
  if (g.int('training_mode', 0) !== 0) throw g.fail('training-mode BatchNormalization (batch statistics) has no rule; export the model in eval mode');
  const [x, scale, , mean, variance] = [g.input(0), g.input(1), g.input(2), g.input(3), g.input(4)];
  const dy = g.dy()!;
  const rank = g.dims(x).length;
  const channelShape = b.int64s([-1, ...new Array<number>(rank - 2).fill(1)]);
  const perChannel = (v: string) => b.op('Reshape', [v, channelShape]);
  const sumAxes = [0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2)];
  const inverseStd = b.op('Reciprocal', [b.op('Sqrt', [b.op('Add', [variance, b.scalar(g.float('epsilon', 1e-5), x)])])]);
  const centered = () => b.op('Sub', [x, perChannel(mean)]);
  const grads: (string | undefined)[] = [undefined, undefined, undefined, undefined, undefined];
  if (g.needs(0)) grads[0] = b.sameShape(b.mul(dy, perChannel(b.mul(scale, inverseStd))), x);
  if (g.needs(1)) grads[1] = b.sameShape(b.reduceSum(b.mul(dy, b.mul(centered(), perChannel(inverseStd))), sumAxes, false), scale);
  if (g.needs(2)) grads[2] = b.sameShape(b.reduceSum(dy, sumAxes, false), g.input(2));
  if (g.needs(3)) grads[3] = b.sameShape(b.neg(b.mul(b.reduceSum(dy, sumAxes, false), b.mul(scale, inverseStd))), mean);
  if (g.needs(4)) {
    // ∂y/∂σ² = −½·(x − μ)·γ·(σ² + ε)^(−3/2)
    const cubed = b.mul(inverseStd, b.mul(inverseStd, inverseStd));
    const factor = b.mul(scale, b.mul(cubed, b.scalar(-0.5, x)));
    grads[4] = b.sameShape(b.mul(b.reduceSum(b.mul(dy, centered()), sumAxes, false), factor), variance);
  }
  return grads;
};

/**
 * LayerNormalization over the axes from `axis` on: with x̂ = (x − μ)/σ and ĝ = dy·γ,
 * dx = (ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))/σ; dγ = Σ dy·x̂ and dβ = Σ dy over the broadcast axes.
 */
const layerNormalization: GradientRule = (g) => {
  const b = g.b;
  const [x, scale, bias] = [g.input(0), g.input(1), g.input(2)];
  const dy = g.dy()!;
  const dims = g.dims(x);
  const rank = dims.length;
  const axis = g.int('axis', -1) < 0 ? g.int('axis', -1) + rank : g.int('axis', -1);
  const axes = Array.from({ length: rank - axis }, (_, i) => axis + i);
  const mean = (v: string) => b.op('ReduceMean', [v], { axes: { kind: 'ints', value: axes }, keepdims: { kind: 'int', value: 1 } });
  const centered = b.op('Sub', [x, mean(x)]);
  const variance = mean(b.mul(centered, centered));
  const inverseStd = b.op('Reciprocal', [b.op('Sqrt', [b.op('Add', [variance, b.scalar(g.float('epsilon', 1e-5), x)])])]);
  const normalized = b.sameShape(b.mul(centered, inverseStd), x);
  const grads: (string | undefined)[] = [undefined, undefined, undefined];
  if (g.needs(0)) {
    const scaled = b.mul(dy, scale);
    const inner = b.op('Sub', [b.op('Sub', [scaled, mean(scaled)]), b.mul(normalized, mean(b.mul(scaled, normalized)))]);
    grads[0] = b.sameShape(b.mul(inner, inverseStd), x);
  }
  if (g.needs(1)) grads[1] = b.unbroadcast(b.mul(dy, normalized), scale, dims);
  if (g.needs(2) && bias) grads[2] = b.unbroadcast(dy, bias, dims);
  return grads;
};

export const NORMALIZATION_RULES: Record<string, GradientRule> = {
  BatchNormalization: batchNormalization,
  LayerNormalization: layerNormalization,
};
