/** Gradient rules of operators that move values around without arithmetic. */
import { attr } from '../../backbones/tfjs/onnx-graph.js';
import { initializerOf } from '../builder.js';
import type { GradientRule, RuleContext } from '../rule.js';

/** Reshape, Flatten, Squeeze, Unsqueeze: the gradient takes the input's shape back. */
const reshapeBack: GradientRule = (g) => [g.b.reshapeLike(g.dy()!, g.input(0))];

const transpose: GradientRule = (g) => {
  const rank = g.dims(g.input(0)).length;
  const perm = g.ints('perm', Array.from({ length: rank }, (_, i) => rank - 1 - i));
  const inverse = new Array<number>(rank);
  perm.forEach((axis, i) => (inverse[axis] = i));
  return [g.b.sameShape(g.b.op('Transpose', [g.dy()!], { perm: attr.ints(inverse) }), g.input(0))];
};

function normaliseAxis(g: RuleContext, axis: number, rank: number): number {
  const normalised = axis < 0 ? axis + rank : axis;
  if (normalised < 0 || normalised >= rank) throw g.fail(`axis ${axis} is out of range for rank ${rank}`);
  return normalised;
}

/** Concat: each input's gradient is its slice of the output gradient (sizes along the axis must be static). */
const concat: GradientRule = (g) => {
  const rank = g.dims(g.output(0)).length;
  const axis = normaliseAxis(g, g.int('axis', 0), rank);
  const sizes = g.node.inputs.map((input) => g.dims(input)[axis]!);
  if (sizes.some((size) => size < 0)) throw g.fail('concatenation along a batch-dependent axis');
  const parts = g.b.node('Split', [g.dy()!, g.b.int64s(sizes)], { axis: attr.int(axis) }, 'concat_grad', sizes.length);
  return g.node.inputs.map((input, i) => (g.needs(i) ? g.b.sameShape(parts[i]!, input) : undefined));
};

/** Split: the input's gradient is the outputs' gradients concatenated (zeros for unused outputs). */
const split: GradientRule = (g) => {
  const rank = g.dims(g.input(0)).length;
  const axis = normaliseAxis(g, g.int('axis', 0), rank);
  const parts = g.node.outputs.map((_, i) => g.dyOrZeros(i));
  return [g.b.sameShape(g.b.op('Concat', parts, { axis: attr.int(axis) }), g.input(0)), undefined];
};

/** Slice with unit steps and constant bounds: the gradient is the output gradient zero-padded back. */
const slice: GradientRule = (g) => {
  const x = g.input(0);
  const dims = g.dims(x);
  const rank = dims.length;
  const starts = g.constantInts(g.input(1));
  const ends = g.constantInts(g.input(2));
  if (!starts || !ends) throw g.fail('Slice bounds computed at run time');
  const axes = g.input(3) ? g.constantInts(g.input(3)) : starts.map((_, i) => i);
  const steps = g.input(4) ? g.constantInts(g.input(4)) : starts.map(() => 1);
  if (!axes || !steps) throw g.fail('Slice axes or steps computed at run time');
  if (steps.some((step) => step !== 1)) throw g.fail('Slice with steps other than 1');
  const before = new Array<number>(rank).fill(0);
  const after = new Array<number>(rank).fill(0);
  axes.forEach((rawAxis, i) => {
    const axis = normaliseAxis(g, rawAxis, rank);
    const size = dims[axis]!;
    if (size < 0) throw g.fail('slicing along a batch-dependent axis');
    const clamp = (value: number) => Math.min(Math.max(value < 0 ? value + size : value, 0), size);
    const start = clamp(starts[i]!);
    const end = Math.max(clamp(ends[i]!), start);
    before[axis] = start;
    after[axis] = size - end;
  });
  const padded = g.b.op('Pad', [g.dy()!, g.b.int64s([...before, ...after])], { mode: attr.string('constant') }, 'slice_grad');
  return [g.b.sameShape(padded, x)];
};

/** Constant-mode Pad with constant non-negative pads: the gradient is the output gradient cropped back. */
const pad: GradientRule = (g) => {
  if (g.string('mode', 'constant') !== 'constant') throw g.fail(`Pad mode ${g.string('mode', 'constant')}`);
  const rank = g.dims(g.input(0)).length;
  const pads = g.constantInts(g.input(1));
  if (!pads) throw g.fail('pads computed at run time');
  const axes = g.input(3) ? g.constantInts(g.input(3)) : Array.from({ length: rank }, (_, i) => i);
  if (!axes) throw g.fail('pad axes computed at run time');
  if (pads.some((p) => p < 0)) throw g.fail('negative pads (cropping)');
  const count = axes.length;
  const starts = axes.map((_, i) => pads[i]!);
  // A negative end counts from the end; an unpadded axis runs to the end.
  const ends = axes.map((_, i) => (pads[i + count]! > 0 ? -pads[i + count]! : Number.MAX_SAFE_INTEGER));
  const cropped = g.b.op('Slice', [g.dy()!, g.b.int64s(starts), g.b.int64s(ends), g.b.int64s(axes.map((a) => normaliseAxis(g, a, rank)))], {}, 'pad_grad');
  return [g.b.sameShape(cropped, g.input(0))];
};

/**
 * Gather: the data's gradient scatters the output gradient back with ScatterND(reduction=add), so
 * repeated indices (the same token twice) add up. A non-zero axis is moved to the front first.
 */
const gather: GradientRule = (g) => {
  const [data, indices] = [g.input(0), g.input(1)];
  const dataRank = g.dims(data).length;
  const indicesRank = g.dims(indices).length;
  const axis = normaliseAxis(g, g.int('axis', 0), dataRank);
  const b = g.b;
  // Negative indices count from the end; ScatterND wants them in range.
  const axisSize = b.op('Gather', [b.shapeOf(data), b.constant('int64', [], [axis])]);
  const index64 = b.dtype(indices) === 'int64' ? indices : b.op('Cast', [indices], { to: attr.int(7) });
  const positive = b.op('Where', [b.op('Less', [index64, b.scalar(0, 'int64')]), b.op('Add', [index64, axisSize]), index64]);
  const scatterIndices = b.op('Unsqueeze', [positive, b.int64s([-1])]);
  // Output axes: data[:axis] ++ indices ++ data[axis+1:]; ScatterND wants indices' axes first.
  const gatheredAxes = Array.from({ length: indicesRank }, (_, i) => axis + i);
  const leadingAxes = Array.from({ length: axis }, (_, i) => i);
  const trailingAxes = Array.from({ length: dataRank - axis - 1 }, (_, i) => axis + indicesRank + i);
  const updatesPerm = [...gatheredAxes, ...leadingAxes, ...trailingAxes];
  const updates = axis === 0 ? g.dy()! : b.op('Transpose', [g.dy()!], { perm: attr.ints(updatesPerm) });
  const dataPerm = [axis, ...Array.from({ length: axis }, (_, i) => i), ...Array.from({ length: dataRank - axis - 1 }, (_, i) => axis + 1 + i)];
  const zerosShape = axis === 0 ? b.shapeOf(data) : b.op('Gather', [b.shapeOf(data), b.int64s(dataPerm)]);
  const zeros = b.op('ConstantOfShape', [zerosShape], { value: attr.tensor(initializerOf(b.dtype(data), [1], [0])) });
  let grad = b.op('ScatterND', [zeros, scatterIndices, updates], { reduction: attr.string('add') }, 'gather_grad');
  if (axis !== 0) {
    const inverse = new Array<number>(dataRank);
    dataPerm.forEach((a, i) => (inverse[a] = i));
    grad = b.op('Transpose', [grad], { perm: attr.ints(inverse) });
  }
  return [b.sameShape(grad, data), undefined];
};

export const SHAPE_RULES: Record<string, GradientRule> = {
  Reshape: (g) => [reshapeBack(g)[0], undefined],
  Flatten: reshapeBack,
  Squeeze: (g) => [reshapeBack(g)[0], undefined],
  Unsqueeze: (g) => [reshapeBack(g)[0], undefined],
  Transpose: transpose,
  Concat: concat,
  Split: split,
  Slice: (g) => [slice(g)[0], undefined, undefined, undefined, undefined],
  Gather: gather,
  Pad: pad,
};
