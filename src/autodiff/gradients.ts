/**
 * Reverse-mode differentiation of an ONNX graph, emitted as more ONNX nodes: for each node between
 * the tensors to differentiate (`wrt`) and the scalar `loss`, in reverse order, its gradient rule
 * turns the gradients of its outputs into gradients of its inputs; a tensor used several times
 * gets the sum of its contributions. The result runs in any ONNX runtime — it is just a graph.
 */
import type { GraphNode, OnnxGraph } from '../backbones/tfjs/onnx-graph.js';
import { modelError } from '../util/errors.js';
import { GraphBuilder } from './builder.js';
import { RuleContext, type GradientRule } from './rule.js';
import { ELEMENTWISE_RULES } from './rules/elementwise.js';
import { LINEAR_RULES } from './rules/linear.js';
import { NORMALIZATION_RULES } from './rules/normalization.js';
import { POOL_RULES } from './rules/pool.js';
import { REDUCE_RULES } from './rules/reduce.js';
import { RESIZE_RULES } from './rules/resize.js';
import { SHAPE_RULES } from './rules/shape.js';
import type { TensorInfoMap } from './tensor-info.js';

export const GRADIENT_RULES: Readonly<Record<string, GradientRule>> = {
  ...ELEMENTWISE_RULES,
  ...SHAPE_RULES,
  ...REDUCE_RULES,
  ...LINEAR_RULES,
  ...POOL_RULES,
  ...RESIZE_RULES,
  ...NORMALIZATION_RULES,
};

/** Operators whose outputs carry no gradient: integer/boolean results, or piecewise-constant values. */
const NON_DIFFERENTIABLE = new Set([
  'Shape', 'Size', 'ConstantOfShape', 'Range', 'NonZero', 'ArgMax', 'ArgMin', 'OneHot',
  'Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'Not', 'And', 'Or', 'Xor', 'IsNaN', 'IsInf',
  'Floor', 'Ceil', 'Round', 'Sign',
]);

const isFloat = (dtype: string | undefined) => dtype === 'float32' || dtype === 'float64';

export interface GradientOptions {
  /** A scalar (rank-0 or single-element) float tensor. */
  loss: string;
  /** Tensors to differentiate: initializers or graph inputs. */
  wrt: string[];
  /** Named in errors. */
  origin: string;
  /** Prefix of the generated tensor names. */
  prefix?: string;
  /**
   * The loss's gradient with respect to `tensor`, already in the graph: the backward pass starts
   * there (the operators between `tensor` and the loss get no rules applied). A loss whose gradient
   * has a fused closed form (softmax cross-entropy: w·(softmax − one-hot)) saves the passes its rules
   * would make over a large tensor.
   */
  seed?: { tensor: string; gradient: string };
}

/** The tensors whose value depends on one of `sources` through differentiable operators, in graph order. */
export function dependentTensors(nodes: readonly GraphNode[], info: TensorInfoMap, sources: Iterable<string>): Set<string> {
  const dependent = new Set(sources);
  for (const node of nodes) {
    if (NON_DIFFERENTIABLE.has(node.op) || !node.inputs.some((input) => dependent.has(input))) continue;
    for (const output of node.outputs) if (output && isFloat(info.get(output)?.dtype)) dependent.add(output);
  }
  return dependent;
}

/**
 * Appends the backward pass to `graph` (which must be topologically sorted and fully described by
 * `info`) and returns, for each `wrt` tensor, the name of its gradient. A node on the path from
 * `wrt` to the loss whose operator has no rule is an error naming the node.
 */
export function addGradients(graph: OnnxGraph, info: TensorInfoMap, options: GradientOptions): Map<string, string> {
  const { loss, wrt, origin } = options;
  const b = new GraphBuilder(graph, info, options.prefix ?? 'grad/');
  const forward = [...graph.nodes];
  const requiresGrad = dependentTensors(forward, info, wrt);
  const start = options.seed?.tensor ?? loss;
  const reachesLoss = new Set<string>([start]);
  for (let i = forward.length - 1; i >= 0; i--) {
    const node = forward[i]!;
    if (node.outputs.some((output) => reachesLoss.has(output))) for (const input of node.inputs) if (input) reachesLoss.add(input);
  }
  if (!isFloat(info.get(loss)?.dtype)) throw modelError(`the loss ${loss} is not a float tensor`, origin);

  const contributions = new Map<string, string[]>();
  const summed = new Map<string, string>();
  const contribute = (tensor: string, grad: string) => {
    summed.delete(tensor);
    const list = contributions.get(tensor);
    if (list) list.push(grad);
    else contributions.set(tensor, [grad]);
  };
  const gradientOf = (tensor: string): string | undefined => {
    const cached = summed.get(tensor);
    if (cached) return cached;
    const list = contributions.get(tensor);
    if (!list) return undefined;
    const total = list.length === 1 ? list[0]! : b.sameShape(b.op('Sum', list, {}, 'grad_sum'), tensor);
    summed.set(tensor, total);
    return total;
  };

  if (options.seed) contribute(options.seed.tensor, options.seed.gradient);
  else {
    const lossDims = info.get(loss)?.dims ?? [];
    const one = b.constant(info.get(loss)!.dtype, lossDims.map((d) => Math.max(d, 1)), [1], 'loss_seed');
    contribute(loss, lossDims.every((d) => d === 1) ? one : b.op('Expand', [one, b.shapeOf(loss)]));
  }

  for (let i = forward.length - 1; i >= 0; i--) {
    const node = forward[i]!;
    const outputGrads = node.outputs.map((output) => (output && requiresGrad.has(output) && reachesLoss.has(output) ? gradientOf(output) : undefined));
    if (outputGrads.every((grad) => grad === undefined)) continue;
    const required = node.inputs.map((input) => input !== '' && requiresGrad.has(input) && isFloat(info.get(input)?.dtype));
    if (!required.some((r) => r)) continue;
    const rule = GRADIENT_RULES[node.op];
    if (!rule) {
      throw modelError(
        `no gradient rule for operator ${node.op} (node "${node.name}"), which lies between the trainable weights and the loss; ` +
          'freeze the part of the model that contains it (train fewer blocks)',
        origin,
      );
    }
    const ctx = new RuleContext(node, b, outputGrads, required, origin);
    const inputGrads = rule(ctx);
    node.inputs.forEach((input, index) => {
      const grad = inputGrads[index];
      if (required[index] && grad) contribute(input, grad);
    });
  }

  const result = new Map<string, string>();
  for (const tensor of wrt) result.set(tensor, gradientOf(tensor) ?? b.zerosLike(tensor));
  return result;
}
