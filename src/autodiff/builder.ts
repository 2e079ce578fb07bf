/**
 * Emits nodes into an `OnnxGraph` while keeping the tensor-info map up to date, with the small
 * vocabulary the gradient rules, losses and optimisers are written in (scalars of the right dtype,
 * int64 vectors, shapes, reductions, un-broadcasting).
 */
import { attr, type Attribute, type Initializer, type OnnxGraph, type TensorDtype } from '../backbones/tfjs/onnx-graph.js';
import { outputDtypes, type TensorInfoMap } from './tensor-info.js';

export function initializerOf(dtype: TensorDtype, dims: number[], values: ArrayLike<number>): Initializer {
  switch (dtype) {
    case 'float32':
      return { dtype, dims, data: Float32Array.from(values) };
    case 'float64':
      return { dtype, dims, data: Float64Array.from(values) };
    case 'int64':
      return { dtype, dims, data: BigInt64Array.from(Array.from(values, (v) => BigInt(v))) };
    case 'int32':
      return { dtype, dims, data: Int32Array.from(values) };
    case 'bool':
      return { dtype, dims, data: Uint8Array.from(values) };
  }
}

export class GraphBuilder {
  private readonly constants = new Map<string, string>();
  private readonly shapes = new Map<string, string>();

  constructor(
    readonly graph: OnnxGraph,
    readonly info: TensorInfoMap,
    /** Prefix of every name this builder creates, so generated tensors are recognisable. */
    readonly prefix = '',
  ) {}

  dtype(tensor: string): TensorDtype {
    const found = this.info.get(tensor)?.dtype ?? this.graph.initializers.get(tensor)?.dtype;
    if (!found) throw new Error(`no dtype known for tensor ${tensor}`);
    return found;
  }

  /** Probed dims (-1 = batch-dependent), or undefined for tensors created without a known shape. */
  dims(tensor: string): number[] | undefined {
    return this.info.get(tensor)?.dims ?? this.graph.initializers.get(tensor)?.dims;
  }

  /** Adds a node; returns its outputs. `dims` (optional) records the outputs' shapes for later rules. */
  node(op: string, inputs: string[], attributes: Record<string, Attribute> = {}, hint = op, outputCount = 1, dims?: (number[] | undefined)[]): string[] {
    const outputs = Array.from({ length: outputCount }, (_, i) => this.graph.uniqueName(`${this.prefix}${hint}${outputCount > 1 ? `_${i}` : ''}`));
    const node = { name: this.graph.uniqueName(`${this.prefix}${hint}/${op}`), op, inputs, outputs, attributes };
    this.graph.nodes.push(node);
    const dtypes = outputDtypes(node, (tensor) => this.info.get(tensor)?.dtype ?? this.graph.initializers.get(tensor)?.dtype);
    outputs.forEach((output, i) => this.info.set(output, { dtype: dtypes[i]!, dims: dims?.[i] }));
    return outputs;
  }

  /** A single-output node. */
  op(op: string, inputs: string[], attributes: Record<string, Attribute> = {}, hint = op, dims?: number[]): string {
    return this.node(op, inputs, attributes, hint, 1, [dims])[0]!;
  }

  /** Marks `tensor` as having the shape of `like` (gradients have their tensor's shape). */
  sameShape(tensor: string, like: string): string {
    const dims = this.dims(like);
    const entry = this.info.get(tensor);
    if (entry && dims) entry.dims = [...dims];
    return tensor;
  }

  /** A constant (shared between uses) of the given dtype and shape. */
  constant(dtype: TensorDtype, dims: number[], values: ArrayLike<number>, hint = 'const'): string {
    const key = `${dtype}|${dims.join(',')}|${Array.from(values).join(',')}`;
    const existing = this.constants.get(key);
    if (existing) return existing;
    const name = this.graph.addInitializer(`${this.prefix}${hint}`, initializerOf(dtype, dims, values));
    this.info.set(name, { dtype, dims: [...dims] });
    this.constants.set(key, name);
    return name;
  }

  /** A rank-0 constant with the dtype of `like` (a tensor name) or the given dtype. */
  scalar(value: number, like: string | TensorDtype): string {
    const dtype = (['float32', 'float64', 'int64', 'int32', 'bool'] as const).includes(like as TensorDtype) ? (like as TensorDtype) : this.dtype(like);
    return this.constant(dtype, [], [value], 'scalar');
  }

  int64s(values: number[]): string {
    return this.constant('int64', [values.length], values, 'ints');
  }

  shapeOf(tensor: string): string {
    let shape = this.shapes.get(tensor);
    if (!shape) {
      shape = this.op('Shape', [tensor], {}, 'shape', [this.dims(tensor)?.length ?? -1]);
      this.shapes.set(tensor, shape);
    }
    return shape;
  }

  /** Sum over `axes` (ReduceSum takes its axes as an input since opset 13). */
  reduceSum(tensor: string, axes: number[], keepDims: boolean): string {
    if (axes.length === 0) return tensor;
    return this.op('ReduceSum', [tensor, this.int64s(axes)], { keepdims: attr.int(keepDims ? 1 : 0) }, 'reduce_sum');
  }

  /** Reshape to the (run-time) shape of `like`. */
  reshapeLike(tensor: string, like: string): string {
    return this.sameShape(this.op('Reshape', [tensor, this.shapeOf(like)], {}, 'reshape'), like);
  }

  zerosLike(tensor: string): string {
    const zero = initializerOf(this.dtype(tensor), [1], [0]);
    return this.sameShape(this.op('ConstantOfShape', [this.shapeOf(tensor)], { value: attr.tensor(zero) }, 'zeros'), tensor);
  }

  neg(tensor: string): string {
    return this.sameShape(this.op('Neg', [tensor], {}, 'neg'), tensor);
  }

  mul(a: string, b: string): string {
    return this.op('Mul', [a, b], {}, 'mul');
  }

  /**
   * The gradient of a broadcasting op's input `target`, from the gradient `grad` of the op's output
   * (of shape `outputDims`): summed over the axes along which `target` was broadcast. Axes are
   * decided on the probed shapes: a size-1 axis of `target` facing a larger (or batch-dependent) axis
   * of the output was broadcast.
   */
  unbroadcast(grad: string, target: string, outputDims: number[]): string {
    const targetDims = this.dims(target);
    if (!targetDims) throw new Error(`no shape known for tensor ${target}`);
    const lead = outputDims.length - targetDims.length;
    const axes: number[] = [];
    for (let axis = 0; axis < outputDims.length; axis++) {
      if (axis < lead) axes.push(axis);
      else if (targetDims[axis - lead] === 1 && outputDims[axis] !== 1) axes.push(axis);
    }
    if (axes.length === 0) return this.sameShape(grad, target);
    const reduced = this.reduceSum(grad, axes, true);
    return this.reshapeLike(reduced, target);
  }
}
