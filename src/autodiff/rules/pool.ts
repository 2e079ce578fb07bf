/** Gradient rules of MaxPool and AveragePool. */
import { attr } from '../../backbones/tfjs/onnx-graph.js';
import { initializerOf } from '../builder.js';
import type { GradientRule } from '../rule.js';
import { explicitPads } from './linear.js';

/**
 * MaxPool routes each output gradient to the input element that won: the forward node is given
 * its optional Indices output (flat positions in the whole input tensor), and the gradient is
 * scattered there with ScatterElements(reduction=add), so an element that wins several
 * overlapping windows collects every share.
 */
const maxPool: GradientRule = (g) => {
  const b = g.b;
  const x = g.input(0);
  if (g.int('storage_order', 0) !== 0) throw g.fail('MaxPool with column-major storage_order');
  let indices = g.output(1);
  if (!indices) {
    indices = b.graph.uniqueName(`${g.output(0)}/indices`);
    g.node.outputs[1] = indices;
    b.info.set(indices, { dtype: 'int64', dims: g.dims(g.output(0)) });
  }
  const flatSize = b.op('Reshape', [b.op('Size', [x]), b.int64s([1])]);
  const zeros = b.op('ConstantOfShape', [flatSize], { value: attr.tensor(initializerOf(b.dtype(x), [1], [0])) });
  const flatIndices = b.op('Reshape', [indices, b.int64s([-1])]);
  const flatGrad = b.op('Reshape', [g.dy()!, b.int64s([-1])]);
  const scattered = b.op('ScatterElements', [zeros, flatIndices, flatGrad], { axis: attr.int(0), reduction: attr.string('add') }, 'max_pool_grad');
  return [b.reshapeLike(scattered, x)];
};

/**
 * AveragePool is a depthwise convolution with a constant kernel 1/count, so its gradient is the
 * matching ConvTranspose of dy/count. With count_include_pad = 0 the count varies near the borders:
 * it is recovered as k · AveragePool(ones) computed with the padding counted.
 */
const averagePool: GradientRule = (g) => {
  const b = g.b;
  const x = g.input(0);
  const xDims = g.dims(x);
  const yDims = g.dims(g.output(0));
  const kernel = g.ints('kernel_shape', []);
  const spatial = kernel.length;
  const strides = g.ints('strides', new Array<number>(spatial).fill(1));
  // AveragePool has no dilations before opset 19; the ConvTranspose below takes them as 1.
  const dilations = new Array<number>(spatial).fill(1);
  const pads = explicitPads(g, xDims, kernel, strides, dilations);
  const channels = xDims[1]!;
  if (channels < 0) throw g.fail('a batch-dependent channel count');
  const windowSize = kernel.reduce((a, k) => a * k, 1);
  const padded = pads.some((p) => p > 0);
  let scaled: string;
  if (g.int('count_include_pad', 0) === 1 || !padded) scaled = b.mul(g.dy()!, b.scalar(1 / windowSize, x));
  else {
    const ones = b.op('ConstantOfShape', [b.shapeOf(x)], { value: attr.tensor(initializerOf(b.dtype(x), [1], [1])) });
    const coverage = b.op('AveragePool', [ones], {
      kernel_shape: attr.ints(kernel),
      strides: attr.ints(strides),
      pads: attr.ints(pads),
      count_include_pad: attr.int(1),
      ceil_mode: attr.int(g.int('ceil_mode', 0)),
    });
    scaled = b.op('Div', [g.dy()!, b.mul(coverage, b.scalar(windowSize, x))]);
  }
  const kernelOnes = b.constant(b.dtype(x), [channels, 1, ...kernel], new Array<number>(channels * windowSize).fill(1), 'average_pool_kernel');
  const outputPadding = Array.from({ length: spatial }, (_, i) => {
    const effective = (kernel[i]! - 1) * dilations[i]! + 1;
    const produced = strides[i]! * (yDims[i + 2]! - 1) + effective - pads[i]! - pads[i + spatial]!;
    const padding = xDims[i + 2]! - produced;
    if (padding < 0 || padding >= Math.max(strides[i]!, dilations[i]!)) throw g.fail('windows that reach past the padded input (ceil_mode)');
    return padding;
  });
  const grad = b.op(
    'ConvTranspose',
    [scaled, kernelOnes],
    {
      strides: attr.ints(strides),
      dilations: attr.ints(dilations),
      pads: attr.ints(pads),
      group: attr.int(channels),
      kernel_shape: attr.ints(kernel),
      output_padding: attr.ints(outputPadding),
    },
    'average_pool_grad',
  );
  return [b.sameShape(grad, x)];
};

export const POOL_RULES: Record<string, GradientRule> = {
  MaxPool: maxPool,
  AveragePool: averagePool,
};
