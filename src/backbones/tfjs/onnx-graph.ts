/**
 * A small mutable ONNX graph: the converters emit nodes here, the optimisation passes rewrite it,
 * and `encodeModel` serialises it with onnx-proto. Keeping our own plain structure (instead of
 * building protobuf messages directly) makes the folding passes simple array/map edits.
 */
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';

const { onnx } = onnxProto;

/** Opset 17: every op we emit exists with its modern signature and onnxruntime 1.30 fuses them. */
export const OPSET_VERSION = 17;
const IR_VERSION = 8;

export type Attribute =
  | { kind: 'int'; value: number }
  | { kind: 'ints'; value: number[] }
  | { kind: 'float'; value: number }
  | { kind: 'floats'; value: number[] }
  | { kind: 'string'; value: string };

export const attr = {
  int: (value: number): Attribute => ({ kind: 'int', value }),
  ints: (value: number[]): Attribute => ({ kind: 'ints', value }),
  float: (value: number): Attribute => ({ kind: 'float', value }),
  floats: (value: number[]): Attribute => ({ kind: 'floats', value }),
  string: (value: string): Attribute => ({ kind: 'string', value }),
};

export interface GraphNode {
  name: string;
  op: string;
  inputs: string[];
  outputs: string[];
  attributes: Record<string, Attribute>;
}

export type Initializer =
  | { dtype: 'float32'; dims: number[]; data: Float32Array }
  | { dtype: 'int64'; dims: number[]; data: BigInt64Array };

export interface GraphInput {
  name: string;
  /** -1 marks the dynamic batch dimension. */
  shape: number[];
}

export class OnnxGraph {
  readonly nodes: GraphNode[] = [];
  readonly initializers = new Map<string, Initializer>();
  readonly inputs: GraphInput[] = [];
  output: GraphInput | undefined;
  private readonly usedNames = new Set<string>();

  /** A tensor or node name not used yet, derived from a readable hint. */
  uniqueName(hint: string): string {
    const base = hint.length > 0 ? hint : 'tensor';
    let name = base;
    for (let suffix = 1; this.usedNames.has(name); suffix++) name = `${base}_${suffix}`;
    this.usedNames.add(name);
    return name;
  }

  addInput(hint: string, shape: number[]): string {
    const name = this.uniqueName(hint);
    this.inputs.push({ name, shape });
    return name;
  }

  addFloatInitializer(hint: string, dims: number[], data: Float32Array): string {
    const name = this.uniqueName(hint);
    this.initializers.set(name, { dtype: 'float32', dims, data });
    return name;
  }

  addInt64Initializer(hint: string, values: number[]): string {
    const name = this.uniqueName(hint);
    this.initializers.set(name, { dtype: 'int64', dims: [values.length], data: BigInt64Array.from(values.map(BigInt)) });
    return name;
  }

  addScalar(hint: string, value: number): string {
    const name = this.uniqueName(hint);
    this.initializers.set(name, { dtype: 'float32', dims: [], data: Float32Array.of(value) });
    return name;
  }

  /** Adds a single-output node and returns its output name. */
  addNode(op: string, inputs: string[], attributes: Record<string, Attribute> = {}, outputHint = op): string {
    const output = this.uniqueName(outputHint);
    this.nodes.push({ name: this.uniqueName(`${outputHint}/${op}`), op, inputs, outputs: [output], attributes });
    return output;
  }

  /**
   * Gives tensor `from` the name `to` (for the graph output). Falls back to an Identity when `from`
   * is a graph input, and keeps `from` when `to` is taken.
   */
  nameTensor(from: string, to: string): string {
    if (from === to) return to;
    if (this.usedNames.has(to)) return from;
    this.usedNames.add(to);
    const producer = this.nodes.find((node) => node.outputs.includes(from));
    if (!producer) {
      this.nodes.push({ name: this.uniqueName(`${to}/Identity`), op: 'Identity', inputs: [from], outputs: [to], attributes: {} });
      return to;
    }
    producer.outputs = producer.outputs.map((output) => (output === from ? to : output));
    for (const node of this.nodes) node.inputs = node.inputs.map((input) => (input === from ? to : input));
    return to;
  }

  floatInitializer(name: string): Float32Array | undefined {
    const initializer = this.initializers.get(name);
    return initializer?.dtype === 'float32' ? initializer.data : undefined;
  }

  int64Initializer(name: string): number[] | undefined {
    const initializer = this.initializers.get(name);
    return initializer?.dtype === 'int64' ? Array.from(initializer.data, Number) : undefined;
  }
}

function encodeAttribute(name: string, attribute: Attribute): OnnxTypes.IAttributeProto {
  const types = onnx.AttributeProto.AttributeType;
  switch (attribute.kind) {
    case 'int':
      return { name, type: types.INT, i: attribute.value };
    case 'ints':
      return { name, type: types.INTS, ints: attribute.value };
    case 'float':
      return { name, type: types.FLOAT, f: attribute.value };
    case 'floats':
      return { name, type: types.FLOATS, floats: attribute.value };
    case 'string':
      return { name, type: types.STRING, s: new TextEncoder().encode(attribute.value) };
  }
}

/** Little-endian bytes of a typed array (ONNX raw_data is little-endian; so is every host Node runs on here). */
function rawBytes(data: Float32Array | BigInt64Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function encodeInitializer(name: string, initializer: Initializer): OnnxTypes.ITensorProto {
  const dataType = initializer.dtype === 'float32' ? onnx.TensorProto.DataType.FLOAT : onnx.TensorProto.DataType.INT64;
  return { name, dims: initializer.dims, dataType, rawData: rawBytes(initializer.data) };
}

function encodeValueInfo(value: GraphInput): OnnxTypes.IValueInfoProto {
  return {
    name: value.name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: { dim: value.shape.map((size, axis) => (size < 0 ? { dimParam: axis === 0 ? 'batch' : `d${axis}` } : { dimValue: size })) },
      },
    },
  };
}

export function encodeModel(graph: OnnxGraph, graphName: string, docString: string): Uint8Array {
  if (!graph.output) throw new Error('OnnxGraph.output must be set before encoding');
  const model: OnnxTypes.IModelProto = {
    irVersion: IR_VERSION,
    producerName: 'headstart tfjs-to-onnx',
    docString,
    opsetImport: [{ domain: '', version: OPSET_VERSION }],
    graph: {
      name: graphName,
      node: graph.nodes.map((node) => ({
        name: node.name,
        opType: node.op,
        input: node.inputs,
        output: node.outputs,
        attribute: Object.entries(node.attributes).map(([name, attribute]) => encodeAttribute(name, attribute)),
      })),
      initializer: [...graph.initializers].map(([name, initializer]) => encodeInitializer(name, initializer)),
      input: graph.inputs.map(encodeValueInfo),
      output: [encodeValueInfo(graph.output)],
    },
  };
  // protobufjs does the wire encoding.
  return onnx.ModelProto.encode(model).finish();
}
