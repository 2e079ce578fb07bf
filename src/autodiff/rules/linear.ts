/**
 * Gradient rules of the weight-carrying operators: Gemm, MatMul, Conv, ConvTranspose.
 * Convolution gradients are convolutions themselves: the input gradient is a ConvTranspose of the
 * output gradient with the same weights, and the weight gradient is a convolution of the input
 * (batch moved to the channel axis) with the output gradient (as the kernel), strides and
 * dilations swapped — groups (depthwise) included, by moving each group's batch into channels.
 */
import { attr, type Attribute } from '../../backbones/tfjs/onnx-graph.js';
import type { GraphBuilder } from '../builder.js';
import type { GradientRule, RuleContext } from '../rule.js';

const gemm: GradientRule = (g) => {
  const [a, b, c] = [g.input(0), g.input(1), g.input(2)];
  const dy = g.dy()!;
  const alpha = g.float('alpha', 1);
  const beta = g.float('beta', 1);
  const transA = g.int('transA', 0) === 1;
  const transB = g.int('transB', 0) === 1;
  const scaled: Record<string, Attribute> = alpha === 1 ? {} : { alpha: attr.float(alpha) };
  const product = (x: string, y: string, tx: boolean, ty: boolean, like: string) =>
    g.b.sameShape(g.b.op('Gemm', [x, y], { ...scaled, transA: attr.int(tx ? 1 : 0), transB: attr.int(ty ? 1 : 0) }, 'gemm_grad'), like);
  const grads: (string | undefined)[] = [undefined, undefined, undefined];
  // Y = α·op(A)·op(B) + β·C
  if (g.needs(0)) grads[0] = transA ? product(b, dy, transB, true, a) : product(dy, b, false, !transB, a);
  if (g.needs(1)) grads[1] = transB ? product(dy, a, true, transA, b) : product(a, dy, !transA, false, b);
  if (g.needs(2) && c) {
    const scaledDy = beta === 1 ? dy : g.b.mul(dy, g.b.scalar(beta, dy));
    grads[2] = g.b.unbroadcast(scaledDy, c, g.dims(g.output(0)));
  }
  return grads;
};

/** Swaps the last two axes. */
function transposeLast(b: GraphBuilder, x: string, rank: number): string {
  const perm = Array.from({ length: rank }, (_, i) => i);
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1]!, perm[rank - 2]!];
  return b.op('Transpose', [x], { perm: attr.ints(perm) });
}

/**
 * MatMul with NumPy batching: dA = dY·Bᵀ and dB = Aᵀ·dY, summed over broadcast batch axes. The
 * common A[…, M, K] · B[K, N] (a linear layer on tokens) flattens the batch axes into one Gemm for dB.
 */
const matMul: GradientRule = (g) => {
  const b = g.b;
  let [x, w] = [g.input(0), g.input(1)];
  let dy = g.dy()!;
  const xDims = g.dims(x);
  const wDims = g.dims(w);
  const yDims = g.dims(g.output(0));
  // NumPy promotes 1-D operands to matrices and drops the added axis from the result; undo that first.
  let xFull = xDims;
  let wFull = wDims;
  let yFull = yDims;
  if (xDims.length === 1) {
    xFull = [1, ...xDims];
    x = b.op('Unsqueeze', [x, b.int64s([0])], {}, 'unsqueeze', xFull);
    dy = b.op('Unsqueeze', [dy, b.int64s([-2])]);
    yFull = [...yFull.slice(0, -1), 1, yFull[yFull.length - 1]!];
  }
  if (wDims.length === 1) {
    wFull = [...wDims, 1];
    w = b.op('Unsqueeze', [w, b.int64s([1])], {}, 'unsqueeze', wFull);
    dy = b.op('Unsqueeze', [dy, b.int64s([-1])]);
    yFull = [...yFull, 1];
  }
  const batch = yFull.slice(0, -2);
  const [m, n] = yFull.slice(-2) as [number, number];
  const k = xFull[xFull.length - 1]!;
  const grads: (string | undefined)[] = [undefined, undefined];
  if (g.needs(0)) {
    const full = b.op('MatMul', [dy, transposeLast(b, w, wFull.length)], {}, 'matmul_grad', [...batch, m, k]);
    grads[0] = b.reshapeLike(b.unbroadcast(full, x, [...batch, m, k]), g.input(0));
  }
  if (g.needs(1)) {
    if (wFull.length === 2 && k >= 0 && n >= 0) {
      const rows = b.op('Reshape', [x, b.int64s([-1, k])]);
      const dyRows = b.op('Reshape', [dy, b.int64s([-1, n])]);
      const full = b.op('Gemm', [rows, dyRows], { transA: attr.int(1) }, 'matmul_grad', [k, n]);
      grads[1] = wDims.length === 1 ? b.reshapeLike(full, g.input(1)) : b.sameShape(full, g.input(1));
    } else {
      const full = b.op('MatMul', [transposeLast(b, x, xFull.length), dy], {}, 'matmul_grad', [...batch, k, n]);
      grads[1] = b.reshapeLike(b.unbroadcast(full, w, [...batch, k, n]), g.input(1));
    }
  }
  return grads;
};

/** Explicit per-axis padding of a Conv/pool node: [begin…, end…], resolving auto_pad from the probed sizes. */
export function explicitPads(g: RuleContext, inputDims: number[], kernel: number[], strides: number[], dilations: number[]): number[] {
  const spatial = kernel.length;
  const autoPad = g.string('auto_pad', 'NOTSET');
  if (autoPad === 'NOTSET') return g.ints('pads', new Array<number>(2 * spatial).fill(0));
  if (autoPad === 'VALID') return new Array<number>(2 * spatial).fill(0);
  const begin: number[] = [];
  const end: number[] = [];
  for (let i = 0; i < spatial; i++) {
    const size = inputDims[i + 2]!;
    if (size < 0) throw g.fail('auto_pad on a batch-dependent spatial size');
    const out = Math.ceil(size / strides[i]!);
    const total = Math.max((out - 1) * strides[i]! + (kernel[i]! - 1) * dilations[i]! + 1 - size, 0);
    const small = Math.floor(total / 2);
    begin.push(autoPad === 'SAME_UPPER' ? small : total - small);
    end.push(autoPad === 'SAME_UPPER' ? total - small : small);
  }
  return [...begin, ...end];
}

interface ConvGeometry {
  kernel: number[];
  strides: number[];
  dilations: number[];
  pads: number[];
  group: number;
}

function convGeometry(g: RuleContext, weightDims: number[], inputDims: number[]): ConvGeometry {
  const spatial = weightDims.length - 2;
  const kernel = g.ints('kernel_shape', weightDims.slice(2));
  const strides = g.ints('strides', new Array<number>(spatial).fill(1));
  const dilations = g.ints('dilations', new Array<number>(spatial).fill(1));
  return { kernel, strides, dilations, pads: explicitPads(g, inputDims, kernel, strides, dilations), group: g.int('group', 1) };
}

/**
 * Output padding that makes ConvTranspose (strides, pads, dilations of the forward conv) produce
 * exactly `target` spatial sizes from `from` sizes: the rows the forward conv's floor division dropped.
 */
function outputPadding(g: RuleContext, geometry: ConvGeometry, from: number[], target: number[]): number[] {
  const spatial = geometry.kernel.length;
  return Array.from({ length: spatial }, (_, i) => {
    if (from[i]! < 0 || target[i]! < 0) throw g.fail('a batch-dependent spatial size');
    const effective = (geometry.kernel[i]! - 1) * geometry.dilations[i]! + 1;
    const produced = geometry.strides[i]! * (from[i]! - 1) + effective - geometry.pads[i]! - geometry.pads[i + spatial]!;
    const padding = target[i]! - produced;
    if (padding < 0 || padding >= Math.max(geometry.strides[i]!, geometry.dilations[i]!)) throw g.fail(`no output padding maps size ${from[i]} back to ${target[i]}`);
    return padding;
  });
}

/** A 2-D depthwise convolution (channel multiplier 1) with stride 1 and known spatial sizes. */
function isStrideOneDepthwise(geometry: ConvGeometry, weightDims: number[], inputDims: number[]): boolean {
  return (
    geometry.kernel.length === 2 &&
    geometry.group === weightDims[0] &&
    weightDims[1] === 1 &&
    geometry.group === inputDims[1] &&
    geometry.strides.every((s) => s === 1) &&
    inputDims.slice(2).every((size) => size > 0)
  );
}

/** A 1×1 convolution with stride 1, no padding and no groups: a matrix product per pixel. */
function isPointwise(geometry: ConvGeometry): boolean {
  return geometry.group === 1 && geometry.kernel.every((k) => k === 1) && geometry.strides.every((s) => s === 1) && geometry.pads.every((p) => p === 0);
}

/**
 * ∂L/∂W of a pointwise convolution as one Gemm: W[m, c] = Σ over batch and pixels of dy[m]·x[c],
 * with batch and pixels flattened into the contraction axis (far faster than the convolution form).
 */
function pointwiseWeightGradient(b: GraphBuilder, x: string, dy: string, weightDims: number[]): string {
  const [outChannels, inChannels] = weightDims as [number, number];
  const rank = weightDims.length;
  const rest = Array.from({ length: rank - 2 }, (_, i) => i + 2);
  const dyRows = b.op('Reshape', [b.op('Transpose', [dy], { perm: attr.ints([1, 0, ...rest]) }), b.int64s([outChannels, -1])]);
  const xRows = b.op('Reshape', [b.op('Transpose', [x], { perm: attr.ints([1, 0, ...rest]) }), b.int64s([inChannels, -1])]);
  const product = b.op('Gemm', [dyRows, xRows], { transB: attr.int(1) }, 'pointwise_weight_grad');
  return b.op('Reshape', [product, b.int64s(weightDims)], {}, 'pointwise_weight_grad', weightDims);
}

/**
 * ∂L/∂x of a pointwise convolution: Wᵀ·dy per pixel, itself a pointwise convolution with the
 * transposed weights (onnxruntime's Conv runs it almost twice as fast as the batched MatMul form).
 */
function pointwiseInputGradient(b: GraphBuilder, w: string, dy: string, weightDims: number[], x: string): string {
  const rest = Array.from({ length: weightDims.length - 2 }, (_, i) => i + 2);
  const transposed = b.op('Transpose', [w], { perm: attr.ints([1, 0, ...rest]) });
  return b.sameShape(b.op('Conv', [dy, transposed], {}, 'pointwise_input_grad'), x);
}

/**
 * ∂L/∂x of a stride-1 convolution as a convolution of dy with the spatially flipped kernel (input
 * and output channels swapped within each group), padded by (k−1)·dilation − pad: the same values
 * as ConvTranspose, and onnxruntime's Conv kernels are about twice as fast as its ConvTranspose
 * for depthwise layers. Undefined when the padding would be negative.
 */
function flippedKernelInputGradient(b: GraphBuilder, w: string, dy: string, weightDims: number[], geometry: ConvGeometry, x: string): string | undefined {
  const spatial = geometry.kernel.length;
  if (geometry.strides.some((s) => s !== 1)) return undefined;
  const reach = geometry.kernel.map((k, i) => (k - 1) * geometry.dilations[i]!);
  const pads = [...reach.map((r, i) => r - geometry.pads[i]!), ...reach.map((r, i) => r - geometry.pads[i + spatial]!)];
  if (pads.some((p) => p < 0)) return undefined;
  const [outChannels, perGroup] = weightDims as [number, number];
  const { group } = geometry;
  const spatialAxes = Array.from({ length: spatial }, (_, i) => i + 2);
  // [M, C/g, K…] → [C, M/g, K…], per group.
  let swapped = w;
  if (perGroup === 1) swapped = b.op('Reshape', [w, b.int64s([group, outChannels / group, ...geometry.kernel])]);
  else {
    const grouped = b.op('Reshape', [w, b.int64s([group, outChannels / group, perGroup, ...geometry.kernel])]);
    const transposed = b.op('Transpose', [grouped], { perm: attr.ints([0, 2, 1, ...spatialAxes.map((a) => a + 1)]) });
    swapped = b.op('Reshape', [transposed, b.int64s([group * perGroup, outChannels / group, ...geometry.kernel])]);
  }
  const lastIndex = -(2 ** 62);
  const flipped = b.op(
    'Slice',
    [swapped, b.int64s(spatialAxes.map(() => -1)), b.int64s(spatialAxes.map(() => lastIndex)), b.int64s(spatialAxes), b.int64s(spatialAxes.map(() => -1))],
    {},
    'flipped_kernel',
    [group * perGroup, outChannels / group, ...geometry.kernel],
  );
  const grad = b.op(
    'Conv',
    [dy, flipped],
    { dilations: attr.ints(geometry.dilations), pads: attr.ints(pads), group: attr.int(group), kernel_shape: attr.ints(geometry.kernel) },
    'conv_input_grad',
  );
  return b.sameShape(grad, x);
}

/**
 * ∂L/∂W of an ungrouped convolution as one large Gemm: the input is unfolded (im2col) by a
 * depthwise convolution with constant one-hot kernels — one output channel per (channel, kernel
 * tap), the forward strides, pads and dilations — and W[m, (c, k)] = Σ over batch and output pixels
 * of dy[m] · cols[(c, k)]. About a quarter faster than the convolution form on onnxruntime, whose
 * constant-weight depthwise kernel does the unfolding.
 */
function unfoldedWeightGradient(b: GraphBuilder, x: string, dy: string, weightDims: number[], geometry: ConvGeometry): string {
  const [outChannels, inChannels] = weightDims as [number, number];
  const taps = geometry.kernel.reduce((a, k) => a * k, 1);
  const spatial = geometry.kernel.length;
  const oneHot = new Array<number>(inChannels * taps * taps).fill(0);
  for (let c = 0; c < inChannels; c++) for (let t = 0; t < taps; t++) oneHot[(c * taps + t) * taps + t] = 1;
  const kernel = b.constant(b.dtype(x), [inChannels * taps, 1, ...geometry.kernel], oneHot, 'unfold_kernel');
  const cols = b.op(
    'Conv',
    [x, kernel],
    { strides: attr.ints(geometry.strides), dilations: attr.ints(geometry.dilations), pads: attr.ints(geometry.pads), group: attr.int(inChannels), kernel_shape: attr.ints(geometry.kernel) },
    'unfolded_input',
  );
  const rest = Array.from({ length: spatial }, (_, i) => i + 2);
  const colRows = b.op('Reshape', [b.op('Transpose', [cols], { perm: attr.ints([1, 0, ...rest]) }), b.int64s([inChannels * taps, -1])]);
  const dyRows = b.op('Reshape', [b.op('Transpose', [dy], { perm: attr.ints([1, 0, ...rest]) }), b.int64s([outChannels, -1])]);
  const product = b.op('Gemm', [dyRows, colRows], { transB: attr.int(1) }, 'conv_weight_grad');
  return b.op('Reshape', [product, b.int64s(weightDims)], {}, 'conv_weight_grad', weightDims);
}

/**
 * ∂L/∂W of a convolution y = conv(x, W): W[m, c, k] = Σₙ Σₚ dy[n, m, p] · x[n, c, p·stride + k·dilation − pad].
 * That is a convolution of x (batch ↔ channels swapped) with dy as the kernel, where the forward
 * dilations become strides and the forward strides become dilations; the result may extend past
 * the kernel size (padding, dropped rows) and is cropped. With groups, each group's samples become
 * that group's input channels.
 */
function convWeightGradient(b: GraphBuilder, x: string, dy: string, xDims: number[], weightDims: number[], geometry: ConvGeometry): string {
  const spatial = geometry.kernel.length;
  const spatialAxes = Array.from({ length: spatial }, (_, i) => i + 2);
  const [outChannels, perGroup] = weightDims as [number, number];
  const { group } = geometry;
  const spatialSizes = xDims.slice(2);
  // x [N, C, S…] → [C/g, g·N, S…]: channel index (group·N + n) holds x[n, group·C/g + c].
  let input: string;
  if (group === 1) input = b.op('Transpose', [x], { perm: attr.ints([1, 0, ...spatialAxes]) });
  else {
    const split = b.op('Reshape', [x, b.int64s([-1, group, perGroup, ...spatialSizes])]);
    const moved = b.op('Transpose', [split], { perm: attr.ints([2, 1, 0, ...spatialAxes.map((a) => a + 1)]) });
    input = b.op('Reshape', [moved, b.int64s([perGroup, -1, ...spatialSizes])]);
  }
  const kernel = b.op('Transpose', [dy], { perm: attr.ints([1, 0, ...spatialAxes]) });
  const correlation = b.op(
    'Conv',
    [input, kernel],
    { strides: attr.ints(geometry.dilations), dilations: attr.ints(geometry.strides), pads: attr.ints(geometry.pads), group: attr.int(group) },
    'conv_weight_grad',
  );
  // [C/g, M, K′…] → [M, C/g, K…]
  const swapped = b.op('Transpose', [correlation], { perm: attr.ints([1, 0, ...spatialAxes]) });
  const cropped = b.op('Slice', [swapped, b.int64s(new Array<number>(spatial).fill(0)), b.int64s(geometry.kernel), b.int64s(spatialAxes)]);
  return b.op('Reshape', [cropped, b.int64s([outChannels, perGroup, ...geometry.kernel])], {}, 'conv_weight_grad', weightDims);
}

/**
 * ∂L/∂W of a stride-1 depthwise convolution (one input and one output channel per group, 2-D) as
 * one depthwise convolution: each channel's padded images are stacked along the height into one
 * tall image, and correlated with that channel's dy images stacked the same way, with the
 * d·(k−1) padding rows after each dy image left at zero so that no product spans two images. The
 * kernel's height grows with the batch and is read from the tensor at run time. The grouped form of
 * `convWeightGradient` runs onnxruntime's generic grouped kernel with a batch-sized group; this is
 * a plain depthwise convolution, which `nchwc.ts` can move to onnxruntime's blocked layout
 * ([32, 960, 7, 7], 3×3: 29 ms grouped, 14 ms stacked in NCHWc).
 */
function stackedDepthwiseWeightGradient(b: GraphBuilder, x: string, dy: string, xDims: number[], yDims: number[], weightDims: number[], geometry: ConvGeometry): string {
  const [channels] = weightDims as [number];
  const [kernelHeight, kernelWidth] = geometry.kernel as [number, number];
  const [dilationHeight, dilationWidth] = geometry.dilations as [number, number];
  const [top, left, bottom, right] = geometry.pads as [number, number, number, number];
  const paddedHeight = xDims[2]! + top + bottom;
  const paddedWidth = xDims[3]! + left + right;
  const gapRows = dilationHeight * (kernelHeight - 1);
  // [N, C, H, W] → padded → [C, N, Hp, Wp] → one image per channel, the batch stacked along the height.
  const padded = b.op('Pad', [x, b.int64s([0, 0, top, left, 0, 0, bottom, right])]);
  const image = b.op('Reshape', [b.op('Transpose', [padded], { perm: attr.ints([1, 0, 2, 3]) }), b.int64s([1, channels, -1, paddedWidth])]);
  // dy [N, C, Ho, Wo] → zero rows up to Hp per image → [C, 1, N·Hp, Wo] → without the last image's gap.
  const spaced = b.op('Pad', [dy, b.int64s([0, 0, 0, 0, 0, 0, paddedHeight - yDims[2]!, 0])]);
  const stacked = b.op('Reshape', [b.op('Transpose', [spaced], { perm: attr.ints([1, 0, 2, 3]) }), b.int64s([channels, 1, -1, yDims[3]!])]);
  const kernel = b.op('Slice', [stacked, b.int64s([0]), b.int64s([-gapRows || 2 ** 62]), b.int64s([2])], {}, 'stacked_dy', [channels, 1, -1, yDims[3]!]);
  const correlation = b.op('Conv', [image, kernel], { strides: attr.ints([dilationHeight, dilationWidth]), group: attr.int(channels) }, 'depthwise_weight_grad');
  return b.op('Reshape', [correlation, b.int64s(weightDims)], {}, 'depthwise_weight_grad', weightDims);
}

/** The bias gradient: dy summed over every axis but the channels. */
function channelSum(b: GraphBuilder, dy: string, rank: number, like: string): string {
  return b.sameShape(b.reduceSum(dy, [0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2)], false), like);
}

const conv: GradientRule = (g) => {
  const b = g.b;
  const [x, w, bias] = [g.input(0), g.input(1), g.input(2)];
  const dy = g.dy()!;
  const xDims = g.dims(x);
  const wDims = g.dims(w);
  const yDims = g.dims(g.output(0));
  const geometry = convGeometry(g, wDims, xDims);
  const grads: (string | undefined)[] = [undefined, undefined, undefined];
  const pointwise = isPointwise(geometry);
  if (g.needs(0) && pointwise) grads[0] = pointwiseInputGradient(b, w, dy, wDims, x);
  else if (g.needs(0)) grads[0] = flippedKernelInputGradient(b, w, dy, wDims, geometry, x);
  if (g.needs(0) && !grads[0]) {
    const padding = outputPadding(g, geometry, yDims.slice(2), xDims.slice(2));
    grads[0] = b.sameShape(
      b.op(
        'ConvTranspose',
        [dy, w],
        {
          strides: attr.ints(geometry.strides),
          dilations: attr.ints(geometry.dilations),
          pads: attr.ints(geometry.pads),
          group: attr.int(geometry.group),
          kernel_shape: attr.ints(geometry.kernel),
          output_padding: attr.ints(padding),
        },
        'conv_input_grad',
      ),
      x,
    );
  }
  if (g.needs(1)) {
    grads[1] = pointwise
      ? pointwiseWeightGradient(b, x, dy, wDims)
      : geometry.group === 1
        ? unfoldedWeightGradient(b, x, dy, wDims, geometry)
        : isStrideOneDepthwise(geometry, wDims, xDims)
          ? stackedDepthwiseWeightGradient(b, x, dy, xDims, yDims, wDims, geometry)
          : convWeightGradient(b, x, dy, xDims, wDims, geometry);
  }
  if (g.needs(2) && bias) grads[2] = channelSum(b, dy, xDims.length, bias);
  return grads;
};

/**
 * ConvTranspose is the adjoint of Conv: its input gradient is a Conv of dy with the same weights,
 * and its weight gradient is the Conv weight gradient with the roles of input and output swapped.
 */
const convTranspose: GradientRule = (g) => {
  const b = g.b;
  const [x, w, bias] = [g.input(0), g.input(1), g.input(2)];
  const dy = g.dy()!;
  const xDims = g.dims(x);
  const wDims = g.dims(w);
  if (g.node.attributes['output_shape']) throw g.fail('ConvTranspose with output_shape (give pads and output_padding instead)');
  if (g.string('auto_pad', 'NOTSET') !== 'NOTSET') throw g.fail('ConvTranspose with auto_pad');
  const geometry = convGeometry(g, wDims, xDims);
  const grads: (string | undefined)[] = [undefined, undefined, undefined];
  if (g.needs(0)) {
    grads[0] = b.sameShape(
      b.op(
        'Conv',
        [dy, w],
        {
          strides: attr.ints(geometry.strides),
          dilations: attr.ints(geometry.dilations),
          pads: attr.ints(geometry.pads),
          group: attr.int(geometry.group),
          kernel_shape: attr.ints(geometry.kernel),
        },
        'conv_transpose_input_grad',
      ),
      x,
    );
  }
  if (g.needs(1)) grads[1] = convWeightGradient(b, dy, x, g.dims(g.output(0)), wDims, geometry);
  if (g.needs(2) && bias) grads[2] = channelSum(b, dy, xDims.length, bias);
  return grads;
};

export const LINEAR_RULES: Record<string, GradientRule> = {
  Gemm: gemm,
  MatMul: matMul,
  Conv: conv,
  ConvTranspose: convTranspose,
};
