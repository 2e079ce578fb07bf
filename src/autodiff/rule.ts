/**
 * The contract between the reverse pass (`gradients.ts`) and the per-operator gradient rules
 * (`rules/*.ts`): a rule sees one forward node, the gradients of its outputs, and which inputs need
 * a gradient, and emits nodes computing those input gradients (vector–Jacobian products).
 */
import type { GraphNode } from '../backbones/tfjs/onnx-graph.js';
import { modelError } from '../util/errors.js';
import type { GraphBuilder } from './builder.js';

export class RuleContext {
  constructor(
    readonly node: GraphNode,
    readonly b: GraphBuilder,
    private readonly outputGrads: (string | undefined)[],
    private readonly required: boolean[],
    private readonly origin: string,
  ) {}

  /** Name of input `i` ('' when the optional input is absent). */
  input(i: number): string {
    return this.node.inputs[i] ?? '';
  }

  output(i: number): string {
    return this.node.outputs[i] ?? '';
  }

  /** Gradient of output `i`, or undefined when nothing downstream of it reaches the loss. */
  dy(i = 0): string | undefined {
    return this.outputGrads[i];
  }

  /** Gradient of output `i`, zeros when nothing flows back through it (multi-output ops). */
  dyOrZeros(i: number): string {
    return this.outputGrads[i] ?? this.b.zerosLike(this.output(i));
  }

  /** Whether the gradient of input `i` is wanted. */
  needs(i: number): boolean {
    return this.required[i] === true;
  }

  /** Probed dims of a forward tensor (-1 = batch-dependent). */
  dims(tensor: string): number[] {
    const dims = this.b.dims(tensor);
    if (!dims) throw this.fail(`the shape of ${tensor} is not known`);
    return dims;
  }

  int(name: string, fallback: number): number {
    const value = this.node.attributes[name];
    return value?.kind === 'int' ? value.value : fallback;
  }

  ints(name: string, fallback: number[]): number[] {
    const value = this.node.attributes[name];
    return value?.kind === 'ints' ? value.value : fallback;
  }

  float(name: string, fallback: number): number {
    const value = this.node.attributes[name];
    return value?.kind === 'float' ? value.value : fallback;
  }

  string(name: string, fallback: string): string {
    const value = this.node.attributes[name];
    return value?.kind === 'string' ? value.value : fallback;
  }

  /**
   * Values of a constant int64 input (e.g. Slice starts): an initializer, or a tensor computed from
   * shapes that the probe measured as the same at every batch size; undefined when it varies.
   */
  constantInts(tensor: string): number[] | undefined {
    const initializer = this.b.graph.initializers.get(tensor);
    if (!initializer) return this.b.info.get(tensor)?.value;
    if (initializer.dtype === 'int64') return Array.from(initializer.data, Number);
    if (initializer.dtype === 'int32') return Array.from(initializer.data);
    return undefined;
  }

  fail(message: string): Error {
    return modelError(`cannot differentiate node "${this.node.name}" (${this.node.op}): ${message}`, this.origin);
  }
}

/** Returns one entry per node input: its gradient, or undefined when not needed / not differentiable. */
export type GradientRule = (ctx: RuleContext) => (string | undefined)[];
