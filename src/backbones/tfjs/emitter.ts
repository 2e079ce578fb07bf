/**
 * Emits ONNX nodes for TF-semantics operations (NHWC, TF padding rules) on top of `OnnxGraph`.
 * Both converters (Keras layers, TF graph ops) describe their ops in TF terms and this file maps them.
 *
 * Layout: TF tensors are NHWC. Convolutions and pools run faster in ONNX's native NCHW, so a rank-4
 * value may be kept channels-first; `Value.shape` is always the logical (NHWC) shape and
 * `channelsFirst` says how it is stored. Ops that need the logical layout (Flatten, Reshape…)
 * transpose back only when the memory order actually differs.
 */
import { modelError } from '../../util/errors.js';
import { attr, type Attribute, type OnnxGraph } from './onnx-graph.js';
import { elementCount } from './weights.js';

export interface Value {
  /** ONNX tensor name. */
  name: string;
  /** Logical (TF, channels-last) shape; -1 where unknown (always the batch). */
  shape: number[];
  /** Rank-4 value stored as NCHW. */
  channelsFirst: boolean;
}

/** A tensor known at conversion time (a weight or a TF Const), with its logical shape. */
export interface Constant {
  constant: Float32Array | Int32Array;
  shape: number[];
}

export type Operand = Value | Constant;

export const isConstant = (operand: Operand): operand is Constant => 'constant' in operand;

export type Padding = 'same' | 'valid' | { top: number; bottom: number; left: number; right: number };

export interface ConvSpec {
  /** OIHW, O = output channels, I = input channels / group. */
  weights: Float32Array;
  weightShape: [number, number, number, number];
  bias?: Float32Array;
  strides: [number, number];
  dilations: [number, number];
  padding: Padding;
  group: number;
}

export interface PoolSpec {
  kernel: [number, number];
  strides: [number, number];
  padding: Padding;
}

const TO_CHANNELS_FIRST = [0, 3, 1, 2];
const TO_CHANNELS_LAST = [0, 2, 3, 1];
/** Physical (NCHW) axis of each logical (NHWC) axis. */
const PHYSICAL_AXIS = [0, 2, 3, 1];

export const SUPPORTED_ACTIVATIONS = [
  'linear', 'relu', 'relu6', 'sigmoid', 'tanh', 'softmax', 'log_softmax', 'elu', 'selu', 'softplus', 'softsign',
  'hard_sigmoid', 'swish', 'silu', 'hard_swish', 'hard_silu', 'gelu', 'gelu_new', 'mish', 'leaky_relu',
];

/**
 * Permutes a row-major array of `shape` by `perm` (output axis i = input axis perm[i]); rank ≤ 4.
 * (ndarray-style packages could; weight layouts need nothing more than this.)
 */
export function permute<T extends Float32Array | Int32Array>(data: T, shape: readonly number[], perm: readonly number[]): T {
  if (shape.length > 4) throw new Error(`permute supports rank ≤ 4, got [${shape}]`);
  // Pad to rank 4 with leading unit axes so one set of nested loops covers every case.
  const lead = 4 - shape.length;
  const fullShape = [...new Array<number>(lead).fill(1), ...shape];
  const fullPerm = [...Array.from({ length: lead }, (_, i) => i), ...perm.map((axis) => axis + lead)];
  const strides = [fullShape[1]! * fullShape[2]! * fullShape[3]!, fullShape[2]! * fullShape[3]!, fullShape[3]!, 1];
  const [n0, n1, n2, n3] = fullPerm.map((axis) => fullShape[axis]!) as [number, number, number, number];
  const [s0, s1, s2, s3] = fullPerm.map((axis) => strides[axis]!) as [number, number, number, number];
  const out = new (data.constructor as new (length: number) => T)(data.length);
  let index = 0;
  for (let a = 0; a < n0; a++) {
    for (let b = 0; b < n1; b++) {
      for (let c = 0; c < n2; c++) {
        const base = a * s0 + b * s1 + c * s2;
        for (let d = 0; d < n3; d++) out[index++] = data[base + d * s3]!;
      }
    }
  }
  return out;
}

/** TF filter HWIO → ONNX OIHW. */
export function hwioToOihw(kernel: Float32Array, shape: readonly number[]): { weights: Float32Array; weightShape: [number, number, number, number] } {
  const [height, width, inChannels, outChannels] = shape as [number, number, number, number];
  return { weights: permute(kernel, shape, [3, 2, 0, 1]), weightShape: [outChannels, inChannels, height, width] };
}

/**
 * TF depthwise filter (H, W, C, M) → ONNX grouped-conv weights (C·M, 1, H, W), group = C.
 * TF orders the outputs c·M + m, which is exactly the grouped conv's order.
 */
export function depthwiseToOihw(kernel: Float32Array, shape: readonly number[]): { weights: Float32Array; weightShape: [number, number, number, number]; group: number } {
  const [height, width, channels, multiplier] = shape as [number, number, number, number];
  return {
    weights: permute(kernel, shape, [2, 3, 0, 1]),
    weightShape: [channels * multiplier, 1, height, width],
    group: channels,
  };
}

/** TF 'SAME'/'VALID' output size and padding along one spatial axis; -1 when the input size is unknown. */
export function spatialPadding(
  inSize: number,
  kernel: number,
  stride: number,
  dilation: number,
  padding: 'same' | 'valid' | [number, number],
): { out: number; before: number; after: number } {
  const effectiveKernel = (kernel - 1) * dilation + 1;
  if (inSize < 0) return { out: -1, before: 0, after: 0 };
  if (padding === 'valid') return { out: Math.floor((inSize - effectiveKernel) / stride) + 1, before: 0, after: 0 };
  if (padding === 'same') {
    const out = Math.ceil(inSize / stride);
    const total = Math.max((out - 1) * stride + effectiveKernel - inSize, 0);
    // TF puts the odd pixel at the end (bottom/right).
    const before = Math.floor(total / 2);
    return { out, before, after: total - before };
  }
  const [before, after] = padding;
  return { out: Math.floor((inSize + before + after - effectiveKernel) / stride) + 1, before, after };
}

function broadcastShapes(a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1;
    const y = b[b.length - rank + i] ?? 1;
    out.push(x === 1 ? y : y === 1 ? x : x < 0 ? y : x);
  }
  return out;
}

export class Emitter {
  private readonly layoutCache = new Map<string, Value>();

  constructor(
    readonly graph: OnnxGraph,
    /** File named in error messages. */
    readonly origin: string,
  ) {}

  error(message: string): Error {
    return modelError(message, this.origin);
  }

  private node(op: string, inputs: string[], attributes: Record<string, Attribute>, hint: string): string {
    return this.graph.addNode(op, inputs, attributes, hint);
  }

  private derive(value: Value, name: string, shape: number[] = value.shape, channelsFirst = value.channelsFirst): Value {
    return { name, shape, channelsFirst };
  }

  // ---- layout ---------------------------------------------------------------------------------

  toChannelsFirst(value: Value): Value {
    if (value.shape.length !== 4) throw this.error(`expected a rank-4 (NHWC) tensor, got shape [${value.shape}] for ${value.name}`);
    if (value.channelsFirst) return value;
    const key = `cf:${value.name}`;
    let transposed = this.layoutCache.get(key);
    if (!transposed) {
      const name = this.node('Transpose', [value.name], { perm: attr.ints(TO_CHANNELS_FIRST) }, `${value.name}/nchw`);
      transposed = this.derive(value, name, value.shape, true);
      this.layoutCache.set(key, transposed);
      this.layoutCache.set(`cl:${name}`, value);
    }
    return transposed;
  }

  toLogical(value: Value): Value {
    if (!value.channelsFirst) return value;
    const key = `cl:${value.name}`;
    let transposed = this.layoutCache.get(key);
    if (!transposed) {
      const name = this.node('Transpose', [value.name], { perm: attr.ints(TO_CHANNELS_LAST) }, `${value.name}/nhwc`);
      transposed = this.derive(value, name, value.shape, false);
      this.layoutCache.set(key, transposed);
      this.layoutCache.set(`cf:${name}`, value);
    }
    return transposed;
  }

  /** True when the stored bytes are in logical order too: the non-unit axes come in the same order in NCHW as in NHWC. */
  private storedInLogicalOrder(value: Value): boolean {
    if (!value.channelsFirst) return true;
    const nonUnitAxes = TO_CHANNELS_FIRST.filter((axis) => value.shape[axis] !== 1);
    return nonUnitAxes.every((axis, i) => i === 0 || nonUnitAxes[i - 1]! < axis);
  }

  /** The value in logical memory order, transposing only if the bytes would differ. */
  private logicalBytes(value: Value): Value {
    return this.storedInLogicalOrder(value) ? value : this.toLogical(value);
  }

  private physicalAxis(value: Value, logicalAxis: number): number {
    const axis = logicalAxis < 0 ? logicalAxis + value.shape.length : logicalAxis;
    return value.channelsFirst ? PHYSICAL_AXIS[axis]! : axis;
  }

  // ---- convolution and pooling ----------------------------------------------------------------

  conv(input: Value, spec: ConvSpec, hint: string): Value {
    const x = this.toChannelsFirst(input);
    const [outChannels, perGroup, kernelHeight, kernelWidth] = spec.weightShape;
    const inChannels = x.shape[3]!;
    if (inChannels > 0 && inChannels !== perGroup * spec.group) {
      throw this.error(`${hint}: the filter expects ${perGroup * spec.group} input channels but the input has ${inChannels}`);
    }
    const geometry = this.geometry(x, [kernelHeight, kernelWidth], spec.strides, spec.dilations, spec.padding);
    const weightName = this.graph.addFloatInitializer(`${hint}/weights`, [...spec.weightShape], spec.weights);
    const inputs = [x.name, weightName];
    // A copy: later passes fold BatchNorm into this bias in place, and a shared layer reuses its weights.
    if (spec.bias) inputs.push(this.graph.addFloatInitializer(`${hint}/bias`, [outChannels], spec.bias.slice()));
    const name = this.node(
      'Conv',
      inputs,
      {
        kernel_shape: attr.ints([kernelHeight, kernelWidth]),
        strides: attr.ints(spec.strides),
        dilations: attr.ints(spec.dilations),
        group: attr.int(spec.group),
        ...geometry.attributes,
      },
      hint,
    );
    return { name, shape: [x.shape[0]!, geometry.height, geometry.width, outChannels], channelsFirst: true };
  }

  /** Output size and ONNX padding attributes: explicit pads when the input size is known. */
  private geometry(x: Value, kernel: [number, number], strides: [number, number], dilations: [number, number], padding: Padding) {
    const along = (axis: 0 | 1) => {
      const spec = typeof padding === 'string' ? padding : axis === 0 ? ([padding.top, padding.bottom] as [number, number]) : ([padding.left, padding.right] as [number, number]);
      return spatialPadding(x.shape[axis + 1]!, kernel[axis], strides[axis], dilations[axis], spec);
    };
    const rows = along(0);
    const cols = along(1);
    const unknownSize = x.shape[1]! < 0 || x.shape[2]! < 0;
    const attributes: Record<string, Attribute> =
      unknownSize && padding === 'same'
        ? { auto_pad: attr.string('SAME_UPPER') }
        : { pads: attr.ints(unknownSize && typeof padding === 'object' ? [padding.top, padding.left, padding.bottom, padding.right] : [rows.before, cols.before, rows.after, cols.after]) };
    return { height: rows.out, width: cols.out, attributes };
  }

  pool(kind: 'max' | 'average', input: Value, spec: PoolSpec, hint: string): Value {
    const x = this.toChannelsFirst(input);
    const geometry = this.geometry(x, spec.kernel, spec.strides, [1, 1], spec.padding);
    const attributes: Record<string, Attribute> = { kernel_shape: attr.ints(spec.kernel), strides: attr.ints(spec.strides), ...geometry.attributes };
    // TF averages over the real pixels only, never the padding.
    if (kind === 'average') attributes['count_include_pad'] = attr.int(0);
    const name = this.node(kind === 'max' ? 'MaxPool' : 'AveragePool', [x.name], attributes, hint);
    return { name, shape: [x.shape[0]!, geometry.height, geometry.width, x.shape[3]!], channelsFirst: true };
  }

  /**
   * TF's ResizeBilinear / ResizeNearestNeighbor as ONNX Resize, by scales (the batch is dynamic, so
   * sizes would need it). TF's default (no align_corners, no half-pixel centres) samples at
   * out × in / out: ONNX's `asymmetric`; nearest then floors, as TF's legacy kernel does.
   */
  resize(input: Value, size: [number, number], mode: 'linear' | 'nearest', transform: 'asymmetric' | 'align_corners' | 'half_pixel', hint: string): Value {
    const x = this.toChannelsFirst(input);
    const [inH, inW] = [x.shape[1]!, x.shape[2]!];
    if (!(inH > 0 && inW > 0)) throw this.error(`${hint}: resizing needs a known input size, got [${x.shape}]`);
    const scales = this.graph.addFloatInitializer(`${hint}/scales`, [4], Float32Array.from([1, 1, size[0] / inH, size[1] / inW]));
    const attributes: Record<string, Attribute> = {
      mode: attr.string(mode),
      coordinate_transformation_mode: attr.string(mode === 'nearest' && transform === 'half_pixel' ? 'tf_half_pixel_for_nn' : transform),
    };
    if (mode === 'nearest') attributes['nearest_mode'] = attr.string(transform === 'asymmetric' ? 'floor' : 'round_prefer_ceil');
    const name = this.node('Resize', [x.name, '', scales], attributes, hint);
    return { name, shape: [x.shape[0]!, size[0], size[1], x.shape[3]!], channelsFirst: true };
  }

  globalPool(kind: 'max' | 'average', input: Value, keepDims: boolean, hint: string): Value {
    const x = this.toChannelsFirst(input);
    const pooledName = this.node(kind === 'max' ? 'GlobalMaxPool' : 'GlobalAveragePool', [x.name], {}, keepDims ? hint : `${hint}/pooled`);
    const pooled: Value = { name: pooledName, shape: [x.shape[0]!, 1, 1, x.shape[3]!], channelsFirst: true };
    return keepDims ? pooled : this.flatten(pooled, hint);
  }

  // ---- shape ops ------------------------------------------------------------------------------

  /** Keras Flatten: rank-2 [batch, everything else] in logical (channels-last) order. */
  flatten(input: Value, hint: string): Value {
    if (input.shape.length === 2) return input;
    const x = this.logicalBytes(input);
    const rest = input.shape.slice(1);
    const size = rest.some((d) => d < 0) ? -1 : elementCount(rest);
    return { name: this.node('Flatten', [x.name], { axis: attr.int(1) }, hint), shape: [input.shape[0]!, size], channelsFirst: false };
  }

  /**
   * Reshape to a logical shape in ONNX Reshape's convention (0 copies the input's dimension, one -1
   * is inferred).
   */
  reshape(input: Value, target: number[], hint: string): Value {
    const x = this.logicalBytes(input);
    const shape = target.map((size, axis) => (size === 0 ? input.shape[axis]! : size));
    const inferredAxis = target.indexOf(-1);
    if (inferredAxis >= 0) {
      const others = shape.filter((_, axis) => axis !== inferredAxis);
      const batchKept = target[0] === 0 || inferredAxis === 0;
      // The inferred size is known when everything else is, or when only the (kept) batch is unknown.
      const [have, rest] = batchKept && inferredAxis !== 0 ? [input.shape.slice(1), others.slice(1)] : [input.shape, others];
      shape[inferredAxis] = [...have, ...rest].every((d) => d >= 0) ? elementCount(have) / elementCount(rest) : -1;
    }
    const shapeName = this.graph.addInt64Initializer(`${hint}/shape`, target);
    return { name: this.node('Reshape', [x.name, shapeName], {}, hint), shape, channelsFirst: false };
  }

  squeeze(input: Value, logicalAxes: number[], hint: string): Value {
    const rank = input.shape.length;
    let axes = logicalAxes.map((axis) => (axis < 0 ? axis + rank : axis));
    if (axes.length === 0) axes = input.shape.flatMap((size, axis) => (size === 1 ? [axis] : []));
    for (const axis of axes) {
      if (input.shape[axis] !== 1 && input.shape[axis]! >= 0) throw this.error(`${hint}: cannot squeeze axis ${axis} of shape [${input.shape}]`);
    }
    const shape = input.shape.filter((_, axis) => !axes.includes(axis));
    let x = input;
    if (x.channelsFirst) {
      const remaining = TO_CHANNELS_FIRST.filter((axis) => !axes.includes(axis));
      if (!remaining.every((axis, i) => i === 0 || remaining[i - 1]! < axis)) x = this.toLogical(x);
    }
    const physicalAxes = axes.map((axis) => this.physicalAxis(x, axis)).sort((a, b) => a - b);
    const axesName = this.graph.addInt64Initializer(`${hint}/axes`, physicalAxes);
    return { name: this.node('Squeeze', [x.name, axesName], {}, hint), shape, channelsFirst: false };
  }

  /** Zero (or `value`) padding; `pads` holds [before, after] per logical axis. */
  pad(input: Value, pads: [number, number][], hint: string, value = 0): Value {
    if (pads.length !== input.shape.length) throw this.error(`${hint}: ${pads.length} padding pairs for a rank-${input.shape.length} tensor`);
    // Rank-4 pads feed convolutions: pad in NCHW so the pad can later merge into the Conv.
    const x = input.shape.length === 4 ? this.toChannelsFirst(input) : input;
    const physical = x.channelsFirst ? TO_CHANNELS_FIRST.map((axis) => pads[axis]!) : pads;
    const padsName = this.graph.addInt64Initializer(`${hint}/pads`, [...physical.map((p) => p[0]), ...physical.map((p) => p[1])]);
    const inputs = [x.name, padsName];
    if (value !== 0) inputs.push(this.graph.addScalar(`${hint}/value`, value));
    const shape = input.shape.map((size, axis) => (size < 0 ? -1 : size + pads[axis]![0] + pads[axis]![1]));
    return { name: this.node('Pad', inputs, { mode: attr.string('constant') }, hint), shape, channelsFirst: x.channelsFirst };
  }

  concat(inputs: Value[], logicalAxis: number, hint: string): Value {
    const rank = inputs[0]!.shape.length;
    const axis = logicalAxis < 0 ? logicalAxis + rank : logicalAxis;
    if (inputs.some((input) => input.shape.length !== rank)) throw this.error(`${hint}: cannot concatenate tensors of different ranks`);
    const channelsFirst = rank === 4 && inputs.some((input) => input.channelsFirst);
    const xs = inputs.map((input) => (channelsFirst ? this.toChannelsFirst(input) : this.toLogical(input)));
    const shape = [...inputs[0]!.shape];
    shape[axis] = inputs.some((input) => input.shape[axis]! < 0) ? -1 : inputs.reduce((sum, input) => sum + input.shape[axis]!, 0);
    const physical = channelsFirst ? PHYSICAL_AXIS[axis]! : axis;
    return { name: this.node('Concat', xs.map((x) => x.name), { axis: attr.int(physical) }, hint), shape, channelsFirst };
  }

  reduceMean(input: Value, logicalAxes: number[], keepDims: boolean, hint: string): Value {
    const rank = input.shape.length;
    const axes = [...new Set(logicalAxes.map((axis) => (axis < 0 ? axis + rank : axis)))].sort((a, b) => a - b);
    if (rank === 4 && axes.length === 2 && axes[0] === 1 && axes[1] === 2) return this.globalPool('average', input, keepDims, hint);
    const shape = keepDims ? input.shape.map((size, axis) => (axes.includes(axis) ? 1 : size)) : input.shape.filter((_, axis) => !axes.includes(axis));
    const x = keepDims ? input : this.toLogical(input);
    const physicalAxes = axes.map((axis) => this.physicalAxis(x, axis));
    const name = this.node('ReduceMean', [x.name], { axes: attr.ints(physicalAxes), keepdims: attr.int(keepDims ? 1 : 0) }, hint);
    return { name, shape, channelsFirst: keepDims && x.channelsFirst };
  }

  // ---- elementwise ----------------------------------------------------------------------------

  /** A constant as an initializer laid out to broadcast against `like` (which may be channels-first). */
  private constantFor(constant: Constant, like: Value | undefined, hint: string): Value {
    const data = constant.constant instanceof Float32Array ? constant.constant : Float32Array.from(constant.constant);
    if (data.length === 1) return { name: this.graph.addScalar(hint, data[0]!), shape: [], channelsFirst: false };
    if (like?.channelsFirst && constant.shape.length <= 4) {
      const logical = [...new Array<number>(4 - constant.shape.length).fill(1), ...constant.shape];
      const dims = TO_CHANNELS_FIRST.map((axis) => logical[axis]!);
      return { name: this.graph.addFloatInitializer(hint, dims, permute(data, logical, TO_CHANNELS_FIRST)), shape: logical, channelsFirst: true };
    }
    return { name: this.graph.addFloatInitializer(hint, [...constant.shape], data), shape: constant.shape, channelsFirst: false };
  }

  /** Binary elementwise op with NumPy broadcasting; operands may be values or constants. */
  binary(op: 'Add' | 'Sub' | 'Mul' | 'Div' | 'Max' | 'Min', a: Operand, b: Operand, hint: string): Value {
    if (isConstant(a) && isConstant(b)) throw this.error(`${hint}: ${op} of two constants is not supported`);
    let x = isConstant(a) ? undefined : a;
    let y = isConstant(b) ? undefined : b;
    if (x && y) {
      const bothRank4 = x.shape.length === 4 && y.shape.length === 4;
      if (bothRank4 && (x.channelsFirst || y.channelsFirst)) {
        x = this.toChannelsFirst(x);
        y = this.toChannelsFirst(y);
      } else {
        x = this.toLogical(x);
        y = this.toLogical(y);
      }
    }
    const layoutOf = (x ?? y)!;
    const left = x ?? this.constantFor(a as Constant, layoutOf, `${hint}/${op === 'Sub' || op === 'Div' ? 'a' : 'constant'}`);
    const right = y ?? this.constantFor(b as Constant, layoutOf, `${hint}/${op === 'Sub' || op === 'Div' ? 'b' : 'constant'}`);
    const shape = broadcastShapes(left.shape, right.shape);
    const channelsFirst = layoutOf.channelsFirst && shape.length === 4;
    return { name: this.node(op, [left.name, right.name], {}, hint), shape, channelsFirst };
  }

  /** Sum / product / max / min / mean of several values of one shape (Keras merge layers). */
  merge(op: 'Sum' | 'Mul' | 'Max' | 'Min' | 'Mean' | 'Sub', inputs: Value[], hint: string): Value {
    if (op === 'Sub' && inputs.length !== 2) throw this.error(`${hint}: Subtract needs exactly 2 inputs`);
    const [first, ...rest] = inputs;
    if (!first) throw this.error(`${hint}: no inputs`);
    if (rest.length === 0) return first;
    const channelsFirst = inputs.every((input) => input.shape.length === 4) && inputs.some((input) => input.channelsFirst);
    const xs = inputs.map((input) => (channelsFirst ? this.toChannelsFirst(input) : this.toLogical(input)));
    const shape = inputs.map((input) => input.shape).reduce(broadcastShapes);
    if (op === 'Sum' && xs.length === 2) return { name: this.node('Add', xs.map((x) => x.name), {}, hint), shape, channelsFirst };
    return { name: this.node(op, xs.map((x) => x.name), {}, hint), shape, channelsFirst };
  }

  // ---- activations and normalisation ----------------------------------------------------------

  private unary(op: string, x: Value, hint: string, attributes: Record<string, Attribute> = {}): Value {
    return this.derive(x, this.node(op, [x.name], attributes, hint));
  }

  /** Clip to [min, max]; either bound may be absent. */
  clip(x: Value, min: number | undefined, max: number | undefined, hint: string): Value {
    const inputs = [x.name, min === undefined ? '' : this.graph.addScalar(`${hint}/min`, min)];
    if (max !== undefined) inputs.push(this.graph.addScalar(`${hint}/max`, max));
    return this.derive(x, this.node('Clip', inputs, {}, hint));
  }

  softmax(x: Value, logicalAxis: number, hint: string, log = false): Value {
    return this.unary(log ? 'LogSoftmax' : 'Softmax', x, hint, { axis: attr.int(this.physicalAxis(x, logicalAxis)) });
  }

  elu(x: Value, alpha: number, hint: string): Value {
    return this.unary('Elu', x, hint, { alpha: attr.float(alpha) });
  }

  leakyRelu(x: Value, alpha: number, hint: string): Value {
    return this.unary('LeakyRelu', x, hint, { alpha: attr.float(alpha) });
  }

  /**
   * A Keras / TF activation by name (Keras snake_case or TF.js camelCase), or undefined when unknown
   * so the caller can name the layer in its error.
   */
  activation(x: Value, activation: string | null | undefined, hint: string): Value | undefined {
    const name = (activation ?? 'linear').replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
    switch (name) {
      case 'linear':
        return x;
      case 'relu':
        return this.unary('Relu', x, hint);
      case 'relu6':
        // Clip(0, 6) is what onnxruntime fuses into the preceding Conv.
        return this.clip(x, 0, 6, hint);
      case 'sigmoid':
        return this.unary('Sigmoid', x, hint);
      case 'tanh':
        return this.unary('Tanh', x, hint);
      case 'softmax':
        return this.softmax(x, -1, hint);
      case 'log_softmax':
        return this.softmax(x, -1, hint, true);
      case 'elu':
        return this.elu(x, 1, hint);
      case 'selu':
        return this.unary('Selu', x, hint);
      case 'softplus':
        return this.unary('Softplus', x, hint);
      case 'softsign':
        return this.unary('Softsign', x, hint);
      case 'hard_sigmoid':
        return this.unary('HardSigmoid', x, hint, { alpha: attr.float(0.2), beta: attr.float(0.5) });
      case 'hard_swish':
      case 'hard_silu':
        return this.unary('HardSwish', x, hint);
      case 'leaky_relu':
        return this.leakyRelu(x, 0.2, hint);
      case 'swish':
      case 'silu':
        return this.binary('Mul', x, this.unary('Sigmoid', x, `${hint}/sigmoid`), hint);
      case 'mish': {
        const softplus = this.unary('Softplus', x, `${hint}/softplus`);
        return this.binary('Mul', x, this.unary('Tanh', softplus, `${hint}/tanh`), hint);
      }
      case 'gelu': {
        // x · ½(1 + erf(x/√2)), the exact form TF.js uses.
        const scaled = this.binary('Mul', x, { constant: Float32Array.of(Math.SQRT1_2), shape: [] }, `${hint}/scaled`);
        const erf = this.unary('Erf', scaled, `${hint}/erf`);
        const onePlus = this.binary('Add', erf, { constant: Float32Array.of(1), shape: [] }, `${hint}/one_plus`);
        const half = this.binary('Mul', x, { constant: Float32Array.of(0.5), shape: [] }, `${hint}/half`);
        return this.binary('Mul', half, onePlus, hint);
      }
      case 'gelu_new': {
        // ½x(1 + tanh(√(2/π)(x + 0.044715x³))), TF.js's tanh approximation.
        const cube = this.binary('Mul', this.binary('Mul', x, x, `${hint}/square`), x, `${hint}/cube`);
        const inner = this.binary('Add', x, this.binary('Mul', cube, { constant: Float32Array.of(0.044715), shape: [] }, `${hint}/cubic_term`), `${hint}/inner`);
        const tanh = this.unary('Tanh', this.binary('Mul', inner, { constant: Float32Array.of(Math.sqrt(2 / Math.PI)), shape: [] }, `${hint}/scaled`), `${hint}/tanh`);
        const onePlus = this.binary('Add', tanh, { constant: Float32Array.of(1), shape: [] }, `${hint}/one_plus`);
        const half = this.binary('Mul', x, { constant: Float32Array.of(0.5), shape: [] }, `${hint}/half`);
        return this.binary('Mul', half, onePlus, hint);
      }
      default:
        return undefined;
    }
  }

  /** Inference batch norm over the last (channel) axis. */
  batchNorm(input: Value, params: { scale: Float32Array; offset: Float32Array; mean: Float32Array; variance: Float32Array; epsilon: number }, hint: string): Value {
    const channels = params.mean.length;
    const rank = input.shape.length;
    if (rank === 4 || rank === 2) {
      const x = rank === 4 ? this.toChannelsFirst(input) : input;
      const inputs = [x.name, ...(['scale', 'offset', 'mean', 'variance'] as const).map((key) => this.graph.addFloatInitializer(`${hint}/${key}`, [channels], params[key]))];
      return this.derive(x, this.node('BatchNormalization', inputs, { epsilon: attr.float(params.epsilon) }, hint));
    }
    // Other ranks: the same affine map, broadcast over the last axis.
    const multiplier = new Float32Array(channels);
    const shift = new Float32Array(channels);
    for (let c = 0; c < channels; c++) {
      multiplier[c] = params.scale[c]! / Math.sqrt(params.variance[c]! + params.epsilon);
      shift[c] = params.offset[c]! - params.mean[c]! * multiplier[c]!;
    }
    const scaled = this.binary('Mul', input, { constant: multiplier, shape: [channels] }, `${hint}/scaled`);
    return this.binary('Add', scaled, { constant: shift, shape: [channels] }, hint);
  }

  /** x · W + b over the last axis (Dense / MatMul with a constant right-hand side). */
  dense(input: Value, kernel: Float32Array, kernelShape: [number, number], bias: Float32Array | undefined, hint: string, transposeKernel = false): Value {
    const [rows, cols] = kernelShape;
    const inFeatures = transposeKernel ? cols : rows;
    const outFeatures = transposeKernel ? rows : cols;
    const lastDim = input.shape[input.shape.length - 1]!;
    if (lastDim >= 0 && lastDim !== inFeatures) throw this.error(`${hint}: the kernel expects ${inFeatures} input features but the input has ${lastDim}`);
    const shape = [...input.shape.slice(0, -1), outFeatures];
    if (input.shape.length === 2) {
      const inputs = [input.name, this.graph.addFloatInitializer(`${hint}/kernel`, [rows, cols], kernel)];
      if (bias) inputs.push(this.graph.addFloatInitializer(`${hint}/bias`, [outFeatures], bias));
      const name = this.node('Gemm', inputs, transposeKernel ? { transB: attr.int(1) } : {}, hint);
      return { name, shape, channelsFirst: false };
    }
    // Higher ranks: MatMul broadcasts over the leading axes, in logical order.
    const x = this.toLogical(input);
    const weights = transposeKernel
      ? this.graph.addFloatInitializer(`${hint}/kernel`, [cols, rows], permute(kernel, kernelShape, [1, 0]))
      : this.graph.addFloatInitializer(`${hint}/kernel`, [rows, cols], kernel);
    const product: Value = { name: this.node('MatMul', [x.name, weights], {}, bias ? `${hint}/matmul` : hint), shape, channelsFirst: false };
    return bias ? this.binary('Add', product, { constant: bias, shape: [outFeatures] }, hint) : product;
  }

  identity(x: Value, hint: string): Value {
    return this.unary('Identity', x, hint);
  }
}
