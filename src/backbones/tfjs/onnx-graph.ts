/**
 * A small mutable ONNX graph: the converters emit nodes here, the optimisation passes rewrite it,
 * and `encodeModel` serialises it with onnx-proto. Keeping our own plain structure (instead of
 * building protobuf messages directly) makes the folding passes simple array/map edits.
 * `decodeModel` reads an existing ONNX file into the same structure, so the autodiff code can
 * rewrite exported models with the same tools.
 */
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';

const { onnx } = onnxProto;

/** Opset 17: every op we emit exists with its modern signature and onnxruntime 1.30 fuses them. */
export const OPSET_VERSION = 17;
export const IR_VERSION = 8;

export type TensorDtype = 'float32' | 'float64' | 'int64' | 'int32' | 'bool';

export type Initializer =
  | { dtype: 'float32'; dims: number[]; data: Float32Array }
  | { dtype: 'float64'; dims: number[]; data: Float64Array }
  | { dtype: 'int64'; dims: number[]; data: BigInt64Array }
  | { dtype: 'int32'; dims: number[]; data: Int32Array }
  | { dtype: 'bool'; dims: number[]; data: Uint8Array };

export type Attribute =
  | { kind: 'int'; value: number }
  | { kind: 'ints'; value: number[] }
  | { kind: 'float'; value: number }
  | { kind: 'floats'; value: number[] }
  | { kind: 'string'; value: string }
  | { kind: 'tensor'; value: Initializer };

export const attr = {
  int: (value: number): Attribute => ({ kind: 'int', value }),
  ints: (value: number[]): Attribute => ({ kind: 'ints', value }),
  float: (value: number): Attribute => ({ kind: 'float', value }),
  floats: (value: number[]): Attribute => ({ kind: 'floats', value }),
  string: (value: string): Attribute => ({ kind: 'string', value }),
  tensor: (value: Initializer): Attribute => ({ kind: 'tensor', value }),
};

export interface GraphNode {
  name: string;
  op: string;
  /** Operator set domain; absent for the default ONNX domain. */
  domain?: string;
  inputs: string[];
  outputs: string[];
  attributes: Record<string, Attribute>;
}

export interface GraphInput {
  name: string;
  /** -1 marks the dynamic batch dimension. */
  shape: number[];
  /** Default float32. */
  dtype?: TensorDtype;
  /** Names of the dynamic dimensions, when known (else `batch` for axis 0, `d<axis>` for others). */
  dimNames?: (string | undefined)[];
  /** Declare no shape at all (`shape` is ignored): for outputs whose rank is not known. */
  unknownShape?: boolean;
}

export class OnnxGraph {
  readonly nodes: GraphNode[] = [];
  readonly initializers = new Map<string, Initializer>();
  readonly inputs: GraphInput[] = [];
  /** Graph outputs, in order; `output` is the first (the converters produce exactly one). */
  outputs: GraphInput[] = [];
  /** The default-domain opset a decoded model declared (encoding always writes OPSET_VERSION). */
  sourceOpset: number | undefined;
  private readonly usedNames = new Set<string>();

  get output(): GraphInput | undefined {
    return this.outputs[0];
  }

  set output(value: GraphInput | undefined) {
    this.outputs = value ? [value] : [];
  }

  /** Records a name taken by a decoded model, so `uniqueName` never hands it out again. */
  reserveName(name: string): void {
    this.usedNames.add(name);
  }

  /** A tensor or node name not used yet, derived from a readable hint. */
  uniqueName(hint: string): string {
    const base = hint.length > 0 ? hint : 'tensor';
    let name = base;
    for (let suffix = 1; this.usedNames.has(name); suffix++) name = `${base}_${suffix}`;
    this.usedNames.add(name);
    return name;
  }

  addInput(hint: string, shape: number[], dtype?: TensorDtype): string {
    const name = this.uniqueName(hint);
    this.inputs.push(dtype ? { name, shape, dtype } : { name, shape });
    return name;
  }

  /** Adds an initializer of any dtype under a fresh name derived from `hint`. */
  addInitializer(hint: string, initializer: Initializer): string {
    const name = this.uniqueName(hint);
    this.initializers.set(name, initializer);
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
    case 'tensor':
      return { name, type: types.TENSOR, t: encodeInitializer('', attribute.value) };
  }
}

const ONNX_DTYPES: Record<TensorDtype, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float64: onnx.TensorProto.DataType.DOUBLE,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  bool: onnx.TensorProto.DataType.BOOL,
};

/** The ONNX TensorProto.DataType number of a dtype (Cast's `to`, ConstantOfShape values…). */
export function onnxDataType(dtype: TensorDtype): number {
  return ONNX_DTYPES[dtype];
}

/** Little-endian bytes of a typed array (ONNX raw_data is little-endian; so is every host Node runs on here). */
function rawBytes(data: Initializer['data']): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function encodeInitializer(name: string, initializer: Initializer): OnnxTypes.ITensorProto {
  return { name, dims: initializer.dims, dataType: ONNX_DTYPES[initializer.dtype], rawData: rawBytes(initializer.data) };
}

function encodeValueInfo(value: GraphInput): OnnxTypes.IValueInfoProto {
  return {
    name: value.name,
    type: {
      tensorType: {
        elemType: ONNX_DTYPES[value.dtype ?? 'float32'],
        ...(value.unknownShape
          ? {}
          : {
              shape: {
                dim: value.shape.map((size, axis) =>
                  size < 0 ? { dimParam: value.dimNames?.[axis] ?? (axis === 0 ? 'batch' : `d${axis}`) } : { dimValue: size },
                ),
              },
            }),
      },
    },
  };
}

export interface EncodeOptions {
  /** Default 'headstart tfjs-to-onnx'. */
  producer?: string;
}

export function encodeModel(graph: OnnxGraph, graphName: string, docString: string, options: EncodeOptions = {}): Uint8Array {
  if (graph.outputs.length === 0) throw new Error('OnnxGraph.output must be set before encoding');
  const model: OnnxTypes.IModelProto = {
    irVersion: IR_VERSION,
    producerName: options.producer ?? 'headstart tfjs-to-onnx',
    docString,
    opsetImport: [{ domain: '', version: OPSET_VERSION }, ...[...new Set(graph.nodes.flatMap((node) => (node.domain ? [node.domain] : [])))].map((domain) => ({ domain, version: 1 }))],
    graph: {
      name: graphName,
      node: graph.nodes.map((node) => ({
        name: node.name,
        opType: node.op,
        ...(node.domain ? { domain: node.domain } : {}),
        input: node.inputs,
        output: node.outputs,
        attribute: Object.entries(node.attributes).map(([name, attribute]) => encodeAttribute(name, attribute)),
      })),
      initializer: [...graph.initializers].map(([name, initializer]) => encodeInitializer(name, initializer)),
      input: graph.inputs.map(encodeValueInfo),
      output: graph.outputs.map(encodeValueInfo),
    },
  };
  // protobufjs does the wire encoding.
  return onnx.ModelProto.encode(model).finish();
}

// ---- decoding -----------------------------------------------------------------------------------

/** protobufjs hands int64 fields back as Long objects (the `long` package is installed) or numbers. */
const toNumber = (value: unknown): number => (typeof value === 'number' ? value : Number(value as bigint | { toString(): string }));

function dtypeOfDataType(dataType: number | null | undefined, where: string): TensorDtype {
  const found = (Object.keys(ONNX_DTYPES) as TensorDtype[]).find((dtype) => ONNX_DTYPES[dtype] === dataType);
  if (!found) throw new Error(`${where}: unsupported tensor data type ${dataType} (supported: ${Object.keys(ONNX_DTYPES).join(', ')})`);
  return found;
}

/** A copy into a fresh, aligned buffer: protobuf byte fields may sit at any offset of a shared buffer. */
function alignedCopy(bytes: Uint8Array): ArrayBuffer {
  const buffer = new ArrayBuffer(bytes.byteLength);
  new Uint8Array(buffer).set(bytes);
  return buffer;
}

export function decodeTensor(tensor: OnnxTypes.ITensorProto, where: string): Initializer {
  if (tensor.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) throw new Error(`${where}: tensors stored in external data files are not supported`);
  const dtype = dtypeOfDataType(tensor.dataType, where);
  const dims = (tensor.dims ?? []).map(toNumber);
  const count = dims.reduce((a, b) => a * b, 1);
  const raw = tensor.rawData && tensor.rawData.byteLength > 0 ? alignedCopy(tensor.rawData) : undefined;
  let initializer: Initializer;
  switch (dtype) {
    case 'float32':
      initializer = { dtype, dims, data: raw ? new Float32Array(raw) : Float32Array.from(tensor.floatData ?? []) };
      break;
    case 'float64':
      initializer = { dtype, dims, data: raw ? new Float64Array(raw) : Float64Array.from(tensor.doubleData ?? []) };
      break;
    case 'int64':
      initializer = { dtype, dims, data: raw ? new BigInt64Array(raw) : BigInt64Array.from((tensor.int64Data ?? []).map((v) => BigInt(String(v)))) };
      break;
    case 'int32':
      initializer = { dtype, dims, data: raw ? new Int32Array(raw) : Int32Array.from(tensor.int32Data ?? []) };
      break;
    case 'bool':
      initializer = { dtype, dims, data: raw ? new Uint8Array(raw) : Uint8Array.from(tensor.int32Data ?? []) };
      break;
  }
  if (initializer.data.length !== count) throw new Error(`${where}: tensor of shape [${dims}] holds ${initializer.data.length} values`);
  return initializer;
}

function decodeAttribute(attribute: OnnxTypes.IAttributeProto, where: string): Attribute {
  const types = onnx.AttributeProto.AttributeType;
  switch (attribute.type) {
    case types.INT:
      return { kind: 'int', value: toNumber(attribute.i ?? 0) };
    case types.INTS:
      return { kind: 'ints', value: (attribute.ints ?? []).map(toNumber) };
    case types.FLOAT:
      return { kind: 'float', value: attribute.f ?? 0 };
    case types.FLOATS:
      return { kind: 'floats', value: [...(attribute.floats ?? [])] };
    case types.STRING:
      return { kind: 'string', value: new TextDecoder().decode(attribute.s ?? new Uint8Array()) };
    case types.TENSOR:
      return { kind: 'tensor', value: decodeTensor(attribute.t ?? {}, where) };
    default:
      throw new Error(`${where}: attribute "${attribute.name}" has a type (${attribute.type}) headstart does not read (subgraphs, sparse tensors, string lists)`);
  }
}

function decodeValueInfo(info: OnnxTypes.IValueInfoProto): GraphInput {
  const tensorType = info.type?.tensorType;
  const dims = tensorType?.shape?.dim ?? [];
  const shape = dims.map((dim) => (dim.dimValue !== undefined && dim.dimValue !== null && !dim.dimParam ? toNumber(dim.dimValue) : -1));
  const dtype = tensorType?.elemType ? dtypeOfDataType(tensorType.elemType, `value ${info.name}`) : undefined;
  const dimNames = dims.map((dim) => dim.dimParam || undefined);
  return { name: info.name ?? '', shape, ...(dtype ? { dtype } : {}), ...(dimNames.some((d) => d) ? { dimNames } : {}) };
}

/**
 * Reads a serialised ONNX model (default domain only) into an `OnnxGraph`. Constant nodes become
 * initializers, so every constant is found in one place; graph inputs that are also initializers
 * (older exporters list them as both) stay initializers.
 */
export function decodeModel(bytes: Uint8Array, origin = 'model'): OnnxGraph {
  const model = onnx.ModelProto.decode(bytes);
  const proto = model.graph;
  if (!proto) throw new Error(`${origin}: the ONNX file has no graph`);
  for (const opset of model.opsetImport ?? []) {
    if (opset.domain && opset.domain !== 'ai.onnx') throw new Error(`${origin}: operators of domain "${opset.domain}" are not supported`);
  }
  const graph = new OnnxGraph();
  const opset = (model.opsetImport ?? []).find((entry) => !entry.domain || entry.domain === 'ai.onnx');
  graph.sourceOpset = opset ? toNumber(opset.version ?? 0) : undefined;
  const nodeNames = new Set<string>();
  for (const tensor of proto.initializer ?? []) {
    const name = tensor.name ?? '';
    graph.reserveName(name);
    graph.initializers.set(name, decodeTensor(tensor, `${origin}: initializer ${name}`));
  }
  for (const input of proto.input ?? []) {
    if (graph.initializers.has(input.name ?? '')) continue;
    graph.reserveName(input.name ?? '');
    graph.inputs.push(decodeValueInfo(input));
  }
  for (const [index, node] of (proto.node ?? []).entries()) {
    const where = `${origin}: node ${node.name || `#${index}`} (${node.opType})`;
    if (node.domain && node.domain !== 'ai.onnx') throw new Error(`${where}: operators of domain "${node.domain}" are not supported`);
    const outputs = [...(node.output ?? [])];
    for (const name of [...outputs, ...(node.input ?? [])]) if (name) graph.reserveName(name);
    const attributes: Record<string, Attribute> = {};
    for (const attribute of node.attribute ?? []) attributes[attribute.name ?? ''] = decodeAttribute(attribute, where);
    if (node.opType === 'Constant') {
      const value = attributes['value'];
      if (value?.kind !== 'tensor') throw new Error(`${where}: only Constant nodes with a tensor "value" are supported`);
      graph.initializers.set(outputs[0]!, value.value);
      continue;
    }
    const name = node.name && !nodeNames.has(node.name) ? node.name : graph.uniqueName(`${outputs[0] ?? 'node'}/${node.opType}`);
    nodeNames.add(name);
    graph.reserveName(name);
    graph.nodes.push({ name, op: node.opType ?? '', inputs: [...(node.input ?? [])], outputs, attributes });
  }
  graph.outputs = (proto.output ?? []).map(decodeValueInfo);
  return graph;
}
