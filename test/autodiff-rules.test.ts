/**
 * Every gradient rule against central finite differences on small random inputs (seeded). Float64
 * wherever onnxruntime's CPU provider has float64 kernels for the op and its gradient; float32
 * otherwise (Conv, ConvTranspose, AveragePool, GlobalAveragePool, Erf), where the ops are linear in
 * each differentiated input (exact differences, step 0.5) or the difference is Richardson-extrapolated.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { attr, type OnnxGraph } from '../src/backbones/tfjs/onnx-graph.js';
import type { Rng } from '../src/util/rng.js';
import { gradCheck, type GradCheckCase } from './helpers/gradcheck.js';

const away = (from: number[], margin: number) => (rng: Rng, n: number) =>
  Array.from({ length: n }, () => {
    let x = rng.normal() * 2;
    while (from.some((f) => Math.abs(x - f) < margin)) x = rng.normal() * 2;
    return x;
  });
const positive = (rng: Rng, n: number) => Array.from({ length: n }, () => 0.5 + 1.5 * rng.next());
const ints = (values: number[]) => () => values;
const int64 = (dims: number[], values: number[]) => ({ dims, dtype: 'int64' as const, values: ints(values) });

type Case = GradCheckCase & { tolerance: number };
const f64 = (inputs: GradCheckCase['inputs'], build: GradCheckCase['build'], extra: Partial<Case> = {}): Case => ({ dtype: 'float64', inputs, build, tolerance: 1e-6, ...extra });
/** Float32, for ops linear in every differentiated input: central differences are exact up to rounding. */
const f32Linear = (inputs: GradCheckCase['inputs'], build: GradCheckCase['build']): Case => ({ dtype: 'float32', inputs, build, step: 0.5, tolerance: 1e-4 });
/** A scalar constant of the case's float type. */
const scalar = (g: OnnxGraph, hint: string, value: number, like: string) =>
  g.addInitializer(hint, g.inputs.find((input) => input.name === like)?.dtype === 'float64' ? { dtype: 'float64', dims: [], data: Float64Array.of(value) } : { dtype: 'float32', dims: [], data: Float32Array.of(value) });
const node = (op: string, attributes: Record<string, ReturnType<typeof attr.int>> = {}) => (graph: OnnxGraph, inputs: string[]) => graph.addNode(op, inputs, attributes);

const CASES: Record<string, Case> = {
  'Add (broadcast [2,3,4] + [3,1])': f64([{ dims: [2, 3, 4] }, { dims: [3, 1] }], node('Add')),
  'Sub (broadcast [4] − [2,3,4])': f64([{ dims: [4] }, { dims: [2, 3, 4] }], node('Sub')),
  'Mul (broadcast [2,3,4] · [2,1,4])': f64([{ dims: [2, 3, 4] }, { dims: [2, 1, 4] }], node('Mul')),
  'Div (broadcast [2,3] / [2,1])': f64([{ dims: [2, 3] }, { dims: [2, 1], values: positive }], node('Div')),
  'Sum (three inputs, broadcast)': f64([{ dims: [2, 3] }, { dims: [3] }, { dims: [2, 1] }], node('Sum')),
  'Pow (x^e, both differentiated)': f64([{ dims: [2, 3], values: positive }, { dims: [3] }], node('Pow')),
  'Pow (x², constant exponent)': f64([{ dims: [2, 3] }], (g, [x]) => g.addNode('Pow', [x!, scalar(g, 'two', 2, x!)])),
  Sqrt: f64([{ dims: [2, 3], values: positive }], node('Sqrt')),
  Exp: f64([{ dims: [2, 3] }], node('Exp')),
  Log: f64([{ dims: [2, 3], values: positive }], node('Log')),
  Neg: f64([{ dims: [2, 3] }], node('Neg')),
  Relu: f64([{ dims: [3, 4], values: away([0], 0.05) }], node('Relu')),
  'Clip (ReLU6)': f64([{ dims: [3, 5], values: away([0, 6], 0.05) }], (g, [x]) => g.addNode('Clip', [x!, scalar(g, 'min', 0, x!), scalar(g, 'max', 6, x!)])),
  // float32 only in onnxruntime; piecewise quadratic, so central differences with a step below the kink margin are exact up to rounding.
  HardSigmoid: { dtype: 'float32', inputs: [{ dims: [3, 5], values: away([-3, 3], 0.05) }], build: node('HardSigmoid', { alpha: attr.float(1 / 6), beta: attr.float(0.5) }), step: 0.01, tolerance: 1e-3 },
  HardSwish: { dtype: 'float32', inputs: [{ dims: [3, 5], values: away([-3, 3], 0.05) }], build: node('HardSwish'), step: 0.01, tolerance: 1e-3 },
  LeakyRelu: f64([{ dims: [3, 4], values: away([0], 0.05) }], node('LeakyRelu', { alpha: attr.float(0.1) })),
  Sigmoid: f64([{ dims: [2, 5] }], node('Sigmoid')),
  Tanh: f64([{ dims: [2, 5] }], node('Tanh')),
  Erf: { dtype: 'float32', inputs: [{ dims: [2, 5] }], build: node('Erf'), tolerance: 1e-3 },
  'GELU (x·½(1 + erf(x/√2)), as exported)': {
    dtype: 'float32',
    inputs: [{ dims: [2, 5] }],
    build: (g, [x]) => {
      const erf = g.addNode('Erf', [g.addNode('Div', [x!, g.addScalar('sqrt2', Math.SQRT2)])]);
      return g.addNode('Mul', [g.addNode('Mul', [x!, g.addNode('Add', [erf, g.addScalar('one', 1)])]), g.addScalar('half', 0.5)]);
    },
    tolerance: 1e-3,
  },
  'Softmax (axis 1)': f64([{ dims: [2, 3, 4] }], node('Softmax', { axis: attr.int(1) })),
  'LogSoftmax (last axis)': f64([{ dims: [3, 4] }], node('LogSoftmax', { axis: attr.int(-1) })),
  'Gemm (transB, α, β, bias broadcast)': f64([{ dims: [3, 4] }, { dims: [5, 4] }, { dims: [5] }], node('Gemm', { transB: attr.int(1), alpha: attr.float(0.7), beta: attr.float(1.3) })),
  'Gemm (transA)': f64([{ dims: [4, 3] }, { dims: [4, 5] }, { dims: [3, 5] }], node('Gemm', { transA: attr.int(1) })),
  'MatMul (batched, B broadcast [2,1,4,3]·[3,3,5])': f64([{ dims: [2, 1, 4, 3] }, { dims: [3, 3, 5] }], node('MatMul')),
  'MatMul (tokens · weight [2,4,3]·[3,5])': f64([{ dims: [2, 4, 3] }, { dims: [3, 5] }], node('MatMul')),
  'MatMul (1-D operands)': f64([{ dims: [3] }, { dims: [2, 3, 4] }], node('MatMul')),
  'Conv (groups 2, strides [2,1], asymmetric pads, dilations [1,2], bias)': f32Linear(
    [{ dims: [2, 4, 7, 6] }, { dims: [6, 2, 3, 3] }, { dims: [6] }],
    node('Conv', { group: attr.int(2), strides: attr.ints([2, 1]), pads: attr.ints([1, 0, 1, 2]), dilations: attr.ints([1, 2]) }),
  ),
  'Conv (depthwise, multiplier 2, stride 2, SAME_UPPER)': f32Linear(
    [{ dims: [2, 3, 6, 5] }, { dims: [6, 1, 3, 3] }],
    node('Conv', { group: attr.int(3), strides: attr.ints([2, 2]), auto_pad: attr.string('SAME_UPPER') }),
  ),
  'Conv (depthwise 3×3, stride 1, pads 1: flipped-kernel input gradient)': f32Linear([{ dims: [2, 4, 5, 5] }, { dims: [4, 1, 3, 3] }, { dims: [4] }], node('Conv', { group: attr.int(4), pads: attr.ints([1, 1, 1, 1]) })),
  'Conv (depthwise 3×2, stride 1, dilations [2,1], asymmetric pads: stacked weight gradient)': f32Linear(
    [{ dims: [3, 4, 7, 6] }, { dims: [4, 1, 3, 2] }, { dims: [4] }],
    node('Conv', { group: attr.int(4), dilations: attr.ints([2, 1]), pads: attr.ints([2, 0, 1, 1]) }),
  ),
  'Conv (groups 2, 3×2 kernel, dilation 2, asymmetric pads, stride 1)': f32Linear(
    [{ dims: [2, 4, 6, 7] }, { dims: [6, 2, 3, 2] }],
    node('Conv', { group: attr.int(2), dilations: attr.ints([2, 1]), pads: attr.ints([2, 0, 1, 1]) }),
  ),
  'Conv (dense 3×3, stride 2, dilation 2, asymmetric pads: unfolded weight gradient)': f32Linear(
    [{ dims: [2, 3, 9, 8] }, { dims: [4, 3, 3, 3] }, { dims: [4] }],
    node('Conv', { strides: attr.ints([2, 2]), dilations: attr.ints([2, 1]), pads: attr.ints([2, 1, 1, 0]) }),
  ),
  'Conv (1×1, stride 1)': f32Linear([{ dims: [2, 5, 3, 4] }, { dims: [4, 5, 1, 1] }, { dims: [4] }], node('Conv')),
  'ConvTranspose (stride 2, pads, output_padding, groups 2)': f32Linear(
    [{ dims: [2, 4, 3, 4] }, { dims: [4, 3, 3, 2] }, { dims: [6] }],
    node('ConvTranspose', { group: attr.int(2), strides: attr.ints([2, 2]), pads: attr.ints([1, 0, 0, 1]), output_padding: attr.ints([1, 0]) }),
  ),
  'MaxPool (3×3, stride 2, pads)': f64([{ dims: [2, 3, 5, 5] }], node('MaxPool', { kernel_shape: attr.ints([3, 3]), strides: attr.ints([2, 2]), pads: attr.ints([1, 1, 1, 1]) })),
  'AveragePool (count_include_pad 0, pads)': f32Linear([{ dims: [2, 3, 5, 6] }], node('AveragePool', { kernel_shape: attr.ints([3, 2]), strides: attr.ints([2, 2]), pads: attr.ints([1, 0, 1, 1]) })),
  'AveragePool (count_include_pad 1)': f32Linear([{ dims: [2, 2, 6, 6] }], node('AveragePool', { kernel_shape: attr.ints([3, 3]), strides: attr.ints([1, 2]), pads: attr.ints([1, 1, 1, 1]), count_include_pad: attr.int(1) })),
  GlobalAveragePool: f32Linear([{ dims: [2, 3, 4, 5] }], node('GlobalAveragePool')),
  // Resize is linear in x; the forward the differences run is onnxruntime's own, so the matrices are checked against its kernel.
  ...Object.fromEntries(
    (
      [
        ['linear', 'half_pixel', [1, 1, 2, 2], [2, 3, 4, 5]],
        ['linear', 'asymmetric', [1, 1, 2, 3], [2, 2, 3, 4]],
        ['linear', 'align_corners', [1, 1, 2.5, 1.5], [1, 2, 4, 4]],
        ['linear', 'pytorch_half_pixel', [1, 1, 0.5, 2], [1, 2, 6, 3]],
        ['nearest', 'asymmetric', [1, 1, 2, 2], [2, 2, 3, 3]],
        ['nearest', 'half_pixel', [1, 1, 3, 1.5], [1, 2, 3, 4]],
      ] as const
    ).map(([mode, transform, scales, dims]) => [
      `Resize (${mode}, ${transform}, scales ${scales.join('×')})`,
      f32Linear([{ dims: [...dims] }], (g, [x]) =>
        g.addNode('Resize', [x!, '', g.addFloatInitializer('scales', [4], Float32Array.from(scales))], { mode: attr.string(mode), coordinate_transformation_mode: attr.string(transform) })),
    ]),
  ),
  'BatchNormalization (inference; x, γ, β, μ, σ²)': f64(
    [{ dims: [2, 3, 4, 2] }, { dims: [3] }, { dims: [3] }, { dims: [3] }, { dims: [3], values: positive }],
    node('BatchNormalization', { epsilon: attr.float(1e-3) }),
  ),
  'LayerNormalization (last axis; x, γ, β)': f64([{ dims: [2, 3, 5] }, { dims: [5] }, { dims: [5] }], node('LayerNormalization', { axis: attr.int(-1), epsilon: attr.float(1e-5) })),
  'LayerNormalization (last two axes)': f64([{ dims: [2, 3, 4] }, { dims: [3, 4] }, { dims: [3, 4] }], node('LayerNormalization', { axis: attr.int(1) })),
  'LayerNorm decomposition (ReduceMean, Sub, Pow, Sqrt, Div, Mul, Add — as PyTorch exports it)': f64([{ dims: [2, 3, 6] }, { dims: [6] }, { dims: [6] }], (g, [x, gamma, beta]) => {
    const axes = { axes: attr.ints([-1]) };
    const centered = g.addNode('Sub', [x!, g.addNode('ReduceMean', [x!], axes)]);
    const variance = g.addNode('ReduceMean', [g.addNode('Pow', [centered, scalar(g, 'two', 2, x!)])], axes);
    const std = g.addNode('Sqrt', [g.addNode('Add', [variance, scalar(g, 'eps', 1e-5, x!)])]);
    return g.addNode('Add', [g.addNode('Mul', [g.addNode('Div', [centered, std]), gamma!]), beta!]);
  }),
  'ReduceMean (axes [1,2], keepdims 0)': f64([{ dims: [2, 3, 4] }], node('ReduceMean', { axes: attr.ints([1, 2]), keepdims: attr.int(0) })),
  'ReduceSum (axes input [-1], keepdims 1)': f64([{ dims: [2, 3, 4] }, int64([1], [-1])], node('ReduceSum')),
  'ReduceSum (all axes)': f64([{ dims: [2, 3] }], node('ReduceSum', { keepdims: attr.int(0) })),
  Reshape: f64([{ dims: [2, 3, 4] }, int64([3], [0, -1, 2])], node('Reshape')),
  Flatten: f64([{ dims: [2, 3, 2, 2] }], node('Flatten', { axis: attr.int(2) })),
  Transpose: f64([{ dims: [2, 3, 4] }], node('Transpose', { perm: attr.ints([2, 0, 1]) })),
  'Concat (axis 1)': f64([{ dims: [2, 1, 3] }, { dims: [2, 4, 3] }], node('Concat', { axis: attr.int(1) })),
  'Split (sizes [1,3,2], one output unused)': f64([{ dims: [2, 6] }, int64([3], [1, 3, 2])], (g, [x, sizes]) => {
    const outputs = [g.uniqueName('a'), g.uniqueName('b'), g.uniqueName('c')];
    g.nodes.push({ name: 'split', op: 'Split', inputs: [x!, sizes!], outputs, attributes: { axis: attr.int(1) } });
    return g.addNode('Concat', [outputs[2]!, outputs[0]!], { axis: attr.int(1) });
  }),
  'Slice (negative bounds, axes)': f64([{ dims: [3, 5, 4] }, int64([2], [1, -3]), int64([2], [100, -1]), int64([2], [0, 1])], node('Slice')),
  // RoPE's rotate_half as TorchScript exports it: the half of the head size computed from Shape, constant once probed.
  'Slice (rotate_half: bounds from Shape → Gather → Div)': f64([{ dims: [2, 3, 8] }], (g, [x]) => {
    const last = g.addNode('Gather', [g.addNode('Shape', [x!]), g.addInt64Initializer('last', [-1])], { axis: attr.int(0) });
    const half = g.addNode('Div', [last, g.addInt64Initializer('two', [2])]);
    const axes = g.addInt64Initializer('axes', [-1]);
    const first = g.addNode('Slice', [x!, g.addInt64Initializer('zero', [0]), half, axes]);
    const second = g.addNode('Slice', [x!, half, g.addInt64Initializer('end', [2 ** 31 - 1]), axes]);
    return g.addNode('Concat', [g.addNode('Neg', [second]), first], { axis: attr.int(-1) });
  }),
  'Pad (constant, [1,0,0,2] on two axes)': f64([{ dims: [2, 3, 4] }, int64([6], [0, 1, 0, 0, 0, 2])], node('Pad')),
  'Gather (axis 0: embedding with repeated and negative ids)': f64([{ dims: [5, 3] }, int64([2, 3], [0, 2, 2, 4, -1, 1])], node('Gather')),
  'Gather (axis 1, scalar index: the class token)': f64([{ dims: [2, 4, 3] }, int64([], [0])], node('Gather', { axis: attr.int(1) })),
  Unsqueeze: f64([{ dims: [2, 3] }, int64([2], [0, 3])], node('Unsqueeze')),
  Squeeze: f64([{ dims: [2, 1, 3, 1] }, int64([2], [1, -1])], node('Squeeze')),
  'Expand ([1,1,3] → [2,4,3], the class token)': f64([{ dims: [1, 1, 3] }, int64([3], [2, 4, 3])], node('Expand')),
  Where: f64([{ dims: [2, 3], dtype: 'bool', values: ints([1, 0, 1, 0, 0, 1]) }, { dims: [2, 3] }, { dims: [3] }], node('Where')),
  'Cast (float64 → float32 → float64)': f64([{ dims: [2, 3] }], (g, [x]) => g.addNode('Cast', [g.addNode('Cast', [x!], { to: attr.int(1) })], { to: attr.int(11) }), { step: 1e-2, tolerance: 1e-4 }),
  Identity: f64([{ dims: [2, 3] }], node('Identity')),
};

const results: string[] = [];

describe('gradient rules match central finite differences', () => {
  for (const [name, testCase] of Object.entries(CASES)) {
    it(name, async () => {
      const result = await gradCheck(testCase);
      results.push(`${name.padEnd(90)} ${testCase.dtype}  ${result.elements.toString().padStart(4)} elements  max rel. error ${result.relativeError.toExponential(1)}`);
      expect(result.elements).toBeGreaterThan(0);
      expect(result.relativeError).toBeLessThan(testCase.tolerance);
    });
  }
  afterAll(() => console.log(results.join('\n')));
});
