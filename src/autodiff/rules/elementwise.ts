/** Gradient rules of elementwise operators (NumPy broadcasting handled by `unbroadcast`). */
import { attr, onnxDataType } from '../../backbones/tfjs/onnx-graph.js';
import type { GradientRule, RuleContext } from '../rule.js';

/** The dims the op's output has, for un-broadcasting its gradient into each input. */
const outDims = (g: RuleContext) => g.dims(g.output(0));

const add: GradientRule = (g) => {
  const dy = g.dy()!;
  return [g.needs(0) ? g.b.unbroadcast(dy, g.input(0), outDims(g)) : undefined, g.needs(1) ? g.b.unbroadcast(dy, g.input(1), outDims(g)) : undefined];
};

const sub: GradientRule = (g) => {
  const dy = g.dy()!;
  return [g.needs(0) ? g.b.unbroadcast(dy, g.input(0), outDims(g)) : undefined, g.needs(1) ? g.b.neg(g.b.unbroadcast(dy, g.input(1), outDims(g))) : undefined];
};

const mul: GradientRule = (g) => {
  const dy = g.dy()!;
  const [a, b] = [g.input(0), g.input(1)];
  return [
    g.needs(0) ? g.b.unbroadcast(g.b.mul(dy, b), a, outDims(g)) : undefined,
    g.needs(1) ? g.b.unbroadcast(g.b.mul(dy, a), b, outDims(g)) : undefined,
  ];
};

const div: GradientRule = (g) => {
  const dy = g.dy()!;
  const [a, b, y] = [g.input(0), g.input(1), g.output(0)];
  return [
    g.needs(0) ? g.b.unbroadcast(g.b.op('Div', [dy, b]), a, outDims(g)) : undefined,
    // d(a/b)/db = −a/b² = −y/b
    g.needs(1) ? g.b.unbroadcast(g.b.neg(g.b.op('Div', [g.b.mul(dy, y), b])), b, outDims(g)) : undefined,
  ];
};

/** Sum of several inputs: each receives the (un-broadcast) output gradient. */
const sum: GradientRule = (g) => g.node.inputs.map((input, i) => (g.needs(i) ? g.b.unbroadcast(g.dy()!, input, outDims(g)) : undefined));

const pow: GradientRule = (g) => {
  const dy = g.dy()!;
  const [x, e, y] = [g.input(0), g.input(1), g.output(0)];
  const exponent = g.b.dtype(e) === g.b.dtype(x) ? e : g.b.op('Cast', [e], { to: attr.int(dataTypeOf(g, x)) });
  const grads: (string | undefined)[] = [undefined, undefined];
  if (g.needs(0)) {
    // d(xᵉ)/dx = e·x^(e−1)
    const lowered = g.b.op('Pow', [x, g.b.op('Sub', [exponent, g.b.scalar(1, x)])]);
    grads[0] = g.b.unbroadcast(g.b.mul(dy, g.b.mul(exponent, lowered)), x, outDims(g));
  }
  if (g.needs(1)) grads[1] = g.b.unbroadcast(g.b.mul(dy, g.b.mul(y, g.b.op('Log', [x]))), e, outDims(g));
  return grads;
};

function dataTypeOf(g: RuleContext, tensor: string): number {
  return onnxDataType(g.b.dtype(tensor));
}

const sqrt: GradientRule = (g) => [g.b.op('Div', [g.b.mul(g.dy()!, g.b.scalar(0.5, g.output(0))), g.output(0)])];

/** d|x|/dx = sign(x) (0 at 0, as torch.abs). */
const abs: GradientRule = (g) => [g.b.sameShape(g.b.mul(g.dy()!, g.b.op('Sign', [g.input(0)])), g.input(0))];

const exp: GradientRule = (g) => [g.b.mul(g.dy()!, g.output(0))];

const log: GradientRule = (g) => [g.b.op('Div', [g.dy()!, g.input(0)])];

const neg: GradientRule = (g) => [g.b.neg(g.dy()!)];

const identity: GradientRule = (g) => [g.dy()];

/** Passes the gradient where `mask` holds, zero elsewhere. */
function masked(g: RuleContext, mask: string): string {
  return g.b.sameShape(g.b.op('Where', [mask, g.dy()!, g.b.scalar(0, g.dy()!)]), g.output(0));
}

/**
 * Relu and Clip read their output for the mask, not their input (y > 0 exactly where x > 0; min < y < max
 * exactly where min < x < max): the input then has the activation as its only reader, so onnxruntime
 * fuses a Conv with the activation after it as in inference graphs (`nchwc.ts` does the same for
 * NCHWc convolutions): MobileNetV2's step went from 1 fused Conv to 4 (last 2 blocks).
 */
const relu: GradientRule = (g) => {
  const y = g.output(0);
  return [masked(g, g.b.op('Greater', [y, g.b.scalar(0, y)]))];
};

/** Clip (ReLU6 among others): the gradient passes strictly inside (min, max), as for PyTorch's hardtanh. */
const clip: GradientRule = (g) => {
  const x = g.output(0);
  const attributeMin = g.node.attributes['min'];
  const attributeMax = g.node.attributes['max'];
  const min = g.input(1) || (attributeMin?.kind === 'float' ? g.b.scalar(attributeMin.value, x) : '');
  const max = g.input(2) || (attributeMax?.kind === 'float' ? g.b.scalar(attributeMax.value, x) : '');
  const conditions = [min ? g.b.op('Greater', [x, min]) : '', max ? g.b.op('Less', [x, max]) : ''].filter((c) => c);
  if (conditions.length === 0) return [g.dy()];
  const mask = conditions.length === 1 ? conditions[0]! : g.b.op('And', conditions);
  return [masked(g, mask)];
};

const leakyRelu: GradientRule = (g) => {
  const x = g.input(0);
  const slope = g.b.op('Where', [g.b.op('Greater', [x, g.b.scalar(0, x)]), g.b.scalar(1, x), g.b.scalar(g.float('alpha', 0.01), x)]);
  return [g.b.mul(g.dy()!, slope)];
};

/** HardSigmoid max(0, min(1, αx + β)): α where the line is strictly inside (0, 1), as PyTorch's hardsigmoid. */
const hardSigmoid: GradientRule = (g) => {
  const x = g.input(0);
  const line = g.b.op('Add', [g.b.mul(x, g.b.scalar(g.float('alpha', 0.2), x)), g.b.scalar(g.float('beta', 0.5), x)]);
  const inside = g.b.op('And', [g.b.op('Greater', [line, g.b.scalar(0, x)]), g.b.op('Less', [line, g.b.scalar(1, x)])]);
  return [g.b.sameShape(g.b.op('Where', [inside, g.b.mul(g.dy()!, g.b.scalar(g.float('alpha', 0.2), x)), g.b.scalar(0, x)]), x)];
};

/** HardSwish x·relu6(x + 3)/6: 0 below −3, 1 above 3, (2x + 3)/6 between (PyTorch's hardswish). */
const hardSwish: GradientRule = (g) => {
  const x = g.input(0);
  const middle = g.b.op('Add', [g.b.mul(x, g.b.scalar(1 / 3, x)), g.b.scalar(0.5, x)]);
  const slope = g.b.op('Where', [g.b.op('Less', [x, g.b.scalar(-3, x)]), g.b.scalar(0, x), g.b.op('Where', [g.b.op('Greater', [x, g.b.scalar(3, x)]), g.b.scalar(1, x), middle])]);
  return [g.b.mul(g.dy()!, slope)];
};

const sigmoid: GradientRule = (g) => {
  const y = g.output(0);
  return [g.b.mul(g.dy()!, g.b.mul(y, g.b.op('Sub', [g.b.scalar(1, y), y])))];
};

const tanh: GradientRule = (g) => {
  const y = g.output(0);
  return [g.b.mul(g.dy()!, g.b.op('Sub', [g.b.scalar(1, y), g.b.mul(y, y)]))];
};

/** erf′(x) = 2/√π · exp(−x²). */
const erf: GradientRule = (g) => {
  const x = g.input(0);
  const gaussian = g.b.op('Exp', [g.b.neg(g.b.mul(x, x))]);
  return [g.b.mul(g.dy()!, g.b.mul(gaussian, g.b.scalar(2 / Math.sqrt(Math.PI), x)))];
};

/** Dropout as exported for inference is the identity; training-mode dropout would need its mask. */
const dropout: GradientRule = (g) => {
  const trainingMode = g.input(2) ? g.b.graph.initializers.get(g.input(2)) : undefined;
  if (g.input(2) && (!trainingMode || Array.from(trainingMode.data, Number).some((v) => v !== 0))) throw g.fail('training-mode Dropout is not supported');
  return [g.dy()];
};

const cast: GradientRule = (g) => {
  const x = g.input(0);
  const dtype = g.b.dtype(x);
  if (dtype !== 'float32' && dtype !== 'float64') return [undefined];
  return [g.b.sameShape(g.b.op('Cast', [g.dy()!], { to: attr.int(dataTypeOf(g, x)) }), x)];
};

const where: GradientRule = (g) => {
  const dy = g.dy()!;
  const [condition, a, b] = [g.input(0), g.input(1), g.input(2)];
  const zero = g.b.scalar(0, dy);
  return [
    undefined,
    g.needs(1) ? g.b.unbroadcast(g.b.op('Where', [condition, dy, zero]), a, outDims(g)) : undefined,
    g.needs(2) ? g.b.unbroadcast(g.b.op('Where', [condition, zero, dy]), b, outDims(g)) : undefined,
  ];
};

/**
 * Max of two inputs (L2 normalisation's norm floor): the gradient goes to the larger, to the
 * first on ties, as torch.maximum splits nothing when one side is a constant.
 */
const max: GradientRule = (g) => {
  if (g.node.inputs.length !== 2) throw g.fail(`Max of ${g.node.inputs.length} inputs`);
  const dy = g.dy()!;
  const [a, b] = [g.input(0), g.input(1)];
  const first = g.b.op('GreaterOrEqual', [a, b]);
  const zero = g.b.scalar(0, dy);
  return [
    g.needs(0) ? g.b.unbroadcast(g.b.op('Where', [first, dy, zero]), a, outDims(g)) : undefined,
    g.needs(1) ? g.b.unbroadcast(g.b.op('Where', [first, zero, dy]), b, outDims(g)) : undefined,
  ];
};

const expand: GradientRule = (g) => [g.b.unbroadcast(g.dy()!, g.input(0), outDims(g)), undefined];

export const ELEMENTWISE_RULES: Record<string, GradientRule> = {
  Max: max,
  Add: add,
  Sub: sub,
  Mul: mul,
  Div: div,
  Sum: sum,
  Pow: pow,
  Sqrt: sqrt,
  Exp: exp,
  Abs: abs,
  Log: log,
  Neg: neg,
  Identity: identity,
  Relu: relu,
  Clip: clip,
  LeakyRelu: leakyRelu,
  Sigmoid: sigmoid,
  HardSigmoid: hardSigmoid,
  HardSwish: hardSwish,
  Tanh: tanh,
  Erf: erf,
  Dropout: dropout,
  Cast: cast,
  Where: where,
  Expand: expand,
};
