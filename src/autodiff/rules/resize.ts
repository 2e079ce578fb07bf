/**
 * Gradient rule of Resize (linear and nearest, over the last two axes of a 4-D tensor: FPN
 * upsampling). Such a resize is linear and separable: y = A_h · x · A_wᵀ per image and channel, with
 * A_h, A_w the [out, in] interpolation matrices of each axis, fixed by the probed sizes, the scales
 * and the coordinate mode. Its gradient is dx = A_hᵀ · dy · A_w: two MatMuls with constant matrices.
 */
import type { GradientRule, RuleContext } from '../rule.js';

type CoordinateMode = 'half_pixel' | 'pytorch_half_pixel' | 'align_corners' | 'asymmetric' | 'tf_half_pixel_for_nn';
const COORDINATE_MODES = new Set<string>(['half_pixel', 'pytorch_half_pixel', 'align_corners', 'asymmetric', 'tf_half_pixel_for_nn']);

/** The input coordinate output index `o` samples at (ONNX's coordinate_transformation_mode). */
function sourceCoordinate(mode: CoordinateMode, o: number, scale: number, inLength: number, outLength: number): number {
  switch (mode) {
    case 'half_pixel':
      return (o + 0.5) / scale - 0.5;
    case 'pytorch_half_pixel':
      return outLength > 1 ? (o + 0.5) / scale - 0.5 : 0;
    case 'align_corners':
      return outLength === 1 ? 0 : (o * (inLength - 1)) / (outLength - 1);
    case 'asymmetric':
      return o / scale;
    case 'tf_half_pixel_for_nn':
      return (o + 0.5) / scale;
  }
}

function nearestIndex(x: number, rounding: string): number {
  switch (rounding) {
    case 'floor':
      return Math.floor(x);
    case 'ceil':
      return Math.ceil(x);
    case 'round_prefer_ceil':
      return Math.round(x);
    default:
      // round_prefer_floor, ONNX's default: halves go down.
      return x - Math.floor(x) === 0.5 ? Math.floor(x) : Math.round(x);
  }
}

/** The [out, in] matrix of one axis, row-major: out = A · in. */
export function interpolationMatrix(
  kind: 'linear' | 'nearest',
  mode: CoordinateMode,
  rounding: string,
  inLength: number,
  outLength: number,
  scale: number,
): Float32Array {
  const a = new Float32Array(outLength * inLength);
  for (let o = 0; o < outLength; o++) {
    const x = sourceCoordinate(mode, o, scale, inLength, outLength);
    if (kind === 'nearest') {
      a[o * inLength + Math.min(inLength - 1, Math.max(0, nearestIndex(x, rounding)))] = 1;
      continue;
    }
    // onnxruntime clamps the coordinate into the input before taking its two neighbours.
    const clamped = Math.min(inLength - 1, Math.max(0, x));
    const low = Math.min(inLength - 1, Math.floor(clamped));
    const high = Math.min(inLength - 1, low + 1);
    const fraction = clamped - low;
    a[o * inLength + low] += 1 - fraction;
    a[o * inLength + high] += fraction;
  }
  return a;
}

function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c]!;
  return t;
}

/** The scale of each axis: the constant `scales` input, else output / input (the `sizes` form). */
function scalesOf(g: RuleContext, xDims: number[], yDims: number[]): number[] {
  const name = g.input(2);
  if (!name) return yDims.map((d, i) => d / xDims[i]!);
  const initializer = g.b.graph.initializers.get(name);
  if (!initializer || (initializer.dtype !== 'float32' && initializer.dtype !== 'float64')) throw g.fail('scales computed at run time');
  return Array.from(initializer.data as ArrayLike<number>, Number);
}

const resize: GradientRule = (g) => {
  const b = g.b;
  const x = g.input(0);
  const kind = g.string('mode', 'nearest');
  if (kind !== 'linear' && kind !== 'nearest') throw g.fail(`mode ${kind} (linear and nearest have a gradient rule)`);
  const mode = g.string('coordinate_transformation_mode', 'half_pixel');
  if (!COORDINATE_MODES.has(mode)) throw g.fail(`coordinate_transformation_mode ${mode}`);
  if (g.int('antialias', 0) !== 0 || g.ints('axes', []).length > 0) throw g.fail('antialias or axes');
  const xDims = g.dims(x);
  const yDims = g.dims(g.output(0));
  if (xDims.length !== 4) throw g.fail(`a rank-${xDims.length} input (4-D only)`);
  const scales = scalesOf(g, xDims, yDims);
  for (const axis of [0, 1]) {
    if (xDims[axis] !== yDims[axis] || scales[axis] !== 1) throw g.fail('resizing the batch or channel axis');
  }
  const [inH, inW, outH, outW] = [xDims[2]!, xDims[3]!, yDims[2]!, yDims[3]!];
  if (![inH, inW, outH, outW].every((d) => d > 0)) throw g.fail('spatial sizes that are not static');
  const rounding = g.string('nearest_mode', 'round_prefer_floor');
  const ah = interpolationMatrix(kind, mode as CoordinateMode, rounding, inH, outH, scales[2]!);
  const aw = interpolationMatrix(kind, mode as CoordinateMode, rounding, inW, outW, scales[3]!);
  const dtype = b.dtype(x);
  // Shrink the wider axis first: dy · A_w gives [n, c, outH, inW], then A_hᵀ · that gives [n, c, inH, inW].
  const alongW = b.op('MatMul', [g.dy()!, b.constant(dtype, [outW, inW], aw, 'resize_grad_w')], {}, 'resize_grad');
  const grad = b.op('MatMul', [b.constant(dtype, [inH, outH], transpose(ah, outH, inH), 'resize_grad_h'), alongW], {}, 'resize_grad');
  return [b.sameShape(grad, x)];
};

export const RESIZE_RULES: Record<string, GradientRule> = { Resize: resize };
