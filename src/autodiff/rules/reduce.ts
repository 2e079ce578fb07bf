/** Gradient rules of reductions and of the softmax family. */
import type { GradientRule, RuleContext } from '../rule.js';

/** Reduced axes, normalised and sorted; all axes when none are given. */
function reducedAxes(axes: number[] | undefined, rank: number): number[] {
  const all = Array.from({ length: rank }, (_, i) => i);
  if (!axes || axes.length === 0) return all;
  return [...new Set(axes.map((axis) => (axis < 0 ? axis + rank : axis)))].sort((a, b) => a - b);
}

/** Spreads the gradient of a reduction back over the reduced axes (× `scale` per element). */
function spread(g: RuleContext, axes: number[], keepDims: boolean, scale: string | undefined): string {
  const b = g.b;
  const x = g.input(0);
  // Scale before expanding: the reduced tensor is the small one.
  let grad = scale === undefined ? g.dy()! : b.mul(g.dy()!, scale);
  if (!keepDims) grad = b.op('Unsqueeze', [grad, b.int64s(axes)]);
  return b.sameShape(b.op('Expand', [grad, b.shapeOf(x)]), x);
}

/**
 * 1 / (number of elements averaged): a constant when the reduced sizes are static, else computed
 * at run time as size(output) / size(input) (averaging over the batch, as a mean loss does).
 */
function meanScale(g: RuleContext, axes: number[]): string {
  const b = g.b;
  const x = g.input(0);
  const dims = g.dims(x);
  if (axes.every((axis) => dims[axis]! >= 0)) return b.scalar(1 / axes.reduce((product, axis) => product * dims[axis]!, 1), x);
  const size = (tensor: string) => b.op('CastLike', [b.op('Size', [tensor]), x]);
  return b.op('Div', [size(g.output(0)), size(x)], {}, 'mean_scale');
}

const reduceMean: GradientRule = (g) => {
  const rank = g.dims(g.input(0)).length;
  // ReduceMean takes `axes` as an attribute up to opset 17, as an input from 18.
  const given = g.node.attributes['axes'] ? g.ints('axes', []) : g.input(1) ? g.constantInts(g.input(1)) : undefined;
  if (g.input(1) && !given) throw g.fail('reduction axes computed at run time');
  const axes = reducedAxes(given, rank);
  return [spread(g, axes, g.int('keepdims', 1) === 1, meanScale(g, axes)), undefined];
};

const reduceSum: GradientRule = (g) => {
  const rank = g.dims(g.input(0)).length;
  const given = g.input(1) ? g.constantInts(g.input(1)) : g.node.attributes['axes'] ? g.ints('axes', []) : undefined;
  if (g.input(1) && !given) throw g.fail('reduction axes computed at run time');
  if ((!given || given.length === 0) && g.int('noop_with_empty_axes', 0) === 1) return [g.dy(), undefined];
  const axes = reducedAxes(given, rank);
  return [spread(g, axes, g.int('keepdims', 1) === 1, undefined), undefined];
};

/** ReduceSumSquare (L2 normalisation): d(Σx²)/dx = 2x. Axes as an attribute below opset 18, an input from 18. */
const reduceSumSquare: GradientRule = (g) => {
  const x = g.input(0);
  const rank = g.dims(x).length;
  const given = g.input(1) ? g.constantInts(g.input(1)) : g.node.attributes['axes'] ? g.ints('axes', []) : undefined;
  if (g.input(1) && !given) throw g.fail('reduction axes computed at run time');
  const axes = reducedAxes(given, rank);
  return [g.b.mul(spread(g, axes, g.int('keepdims', 1) === 1, g.b.scalar(2, x)), x), undefined];
};

const globalAveragePool: GradientRule = (g) => {
  const rank = g.dims(g.input(0)).length;
  const axes = Array.from({ length: rank - 2 }, (_, i) => i + 2);
  return [spread(g, axes, true, meanScale(g, axes))];
};

/** Softmax: dx = y ⊙ (dy − Σ dy ⊙ y) along the axis. */
const softmax: GradientRule = (g) => {
  const b = g.b;
  const y = g.output(0);
  const axis = g.int('axis', -1);
  const weighted = b.reduceSum(b.mul(g.dy()!, y), [axis], true);
  return [b.sameShape(b.mul(y, b.op('Sub', [g.dy()!, weighted])), g.input(0))];
};

/** LogSoftmax: dx = dy − exp(y) · Σ dy along the axis. */
const logSoftmax: GradientRule = (g) => {
  const b = g.b;
  const y = g.output(0);
  const axis = g.int('axis', -1);
  const total = b.reduceSum(g.dy()!, [axis], true);
  return [b.sameShape(b.op('Sub', [g.dy()!, b.mul(b.op('Exp', [y]), total)]), g.input(0))];
};

export const REDUCE_RULES: Record<string, GradientRule> = {
  ReduceMean: reduceMean,
  ReduceSum: reduceSum,
  ReduceSumSquare: reduceSumSquare,
  GlobalAveragePool: globalAveragePool,
  Softmax: softmax,
  LogSoftmax: logSoftmax,
};
