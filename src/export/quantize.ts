/**
 * Weight-only int8 quantisation of an ONNX graph, done in TypeScript: every large float weight of a
 * Conv, MatMul or Gemm is stored as int8 with one scale per output channel (symmetric, zero point 0)
 * and turned back into floats by a `DequantizeLinear` node in front of its consumer.
 *
 * Why this form: `DequantizeLinear` on initializers is plain ONNX (opset 13 for per-channel scales)
 * that onnxruntime-node and onnxruntime-web both run with their default CPU/wasm kernels, and it keeps
 * activations in float32, so accuracy is that of the rounded weights. MatMulInteger/ConvInteger would
 * also quantise activations per batch, which costs MobileNet-style depthwise convolutions far more
 * accuracy, and onnxruntime's ConvInteger kernel takes only uint8 weights. Per-channel rather than
 * per-tensor scales: depthwise filters differ in range by orders of magnitude, and one scale for all
 * of them rounds the small ones to zero.
 *
 * Embedding tables (a float initializer that a Gather on axis 0 reads: word vectors, a transformer's
 * token embeddings) are the exception: dequantising a whole 136 MB GloVe table on every run would
 * cost more than the model. They are stored as int8 with one scale per row, the Gather reads the
 * int8 rows, and only the gathered rows are turned back into floats (Cast, then Mul by their scales).
 */
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT8 = onnx.TensorProto.DataType.INT8;

export interface QuantizationReport {
  scheme: string;
  /** Weight tensors quantised. */
  tensors: number;
  /** Their size before and after, in bytes. */
  floatBytes: number;
  int8Bytes: number;
  /** Static schemes: activation tensors quantised, and the calibration that set their scales. */
  activations?: number;
  calibration?: { method: string; percentile: number; inputs: number };
  /** Convolution pairs whose channels were equalised before calibrating. */
  equalized?: number;
  /** Static int8: the head's last linear map refitted to the int8 features (head-refit.ts), kept or not. */
  headRefit?: { inputs: number; kept: boolean; looError: number; error: number };
}

export const INT8_WEIGHTS_SCHEME = 'int8 weights, per-output-channel symmetric scales, DequantizeLinear (activations stay float32); embedding tables per row, dequantised after the Gather';

/** Weights smaller than this stay float: biases and tiny kernels save nothing and lose accuracy. */
const MIN_ELEMENTS = 1024;

/** Rewrites `graph` in place; returns what was quantised. */
export function quantizeWeights(graph: OnnxTypes.IGraphProto): QuantizationReport {
  const nodes = graph.node ?? [];
  inlineWeightConstants(graph);
  const initializers = new Map((graph.initializer ?? []).map((tensor) => [tensor.name!, tensor]));

  // Which channel axis each weight has for each consumer; a weight shared with conflicting axes gets one scale.
  const axes = new Map<string, number | null>();
  for (const node of nodes) {
    const weight = node.input?.[1];
    if (!weight || !initializers.has(weight)) continue;
    const axis = channelAxis(node, initializers.get(weight)!);
    if (axis === undefined) continue;
    axes.set(weight, axes.has(weight) && axes.get(weight) !== axis ? null : axis);
  }

  const report: QuantizationReport = { scheme: INT8_WEIGHTS_SCHEME, tensors: 0, floatBytes: 0, int8Bytes: 0 };
  const dequantizers: OnnxTypes.INodeProto[] = [];
  const fresh = freshNamer(nodes, initializers.keys());
  for (const [name, axis] of axes) {
    const tensor = initializers.get(name)!;
    const values = floatsOf(tensor);
    if (!values || values.length < MIN_ELEMENTS) continue;
    const dims = (tensor.dims ?? []).map(Number);
    const { quantized, scales } = quantizeSymmetric(values, dims, axis);
    const quantizedName = fresh(`${name}_quantized`);
    const scaleName = fresh(`${name}_scale`);
    const zeroName = fresh(`${name}_zero_point`);
    initializers.delete(name);
    initializers.set(quantizedName, { name: quantizedName, dims, dataType: INT8, rawData: new Uint8Array(quantized.buffer) });
    initializers.set(scaleName, { name: scaleName, dims: axis === null ? [] : [scales.length], dataType: FLOAT, rawData: new Uint8Array(scales.buffer) });
    initializers.set(zeroName, { name: zeroName, dims: axis === null ? [] : [scales.length], dataType: INT8, rawData: new Uint8Array(scales.length) });
    dequantizers.push({
      name: fresh(`${name}/DequantizeLinear`),
      opType: 'DequantizeLinear',
      input: [quantizedName, scaleName, zeroName],
      // The float weight keeps its name, so every consumer reads the dequantised tensor unchanged.
      output: [name],
      attribute: axis === null ? [] : [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: axis }],
    });
    report.tensors++;
    report.floatBytes += values.length * 4;
    report.int8Bytes += values.length + scales.length * 5;
  }
  const rewritten = quantizeEmbeddingTables(nodes, initializers, axes, fresh, report);
  graph.initializer = [...initializers.values()];
  // Old-style graphs list initializers as inputs too; a dequantised weight is no longer one.
  const replaced = new Set([...dequantizers.map((node) => node.output![0]), ...rewritten.tables]);
  graph.input = (graph.input ?? []).filter((input) => !replaced.has(input.name!));
  // Dequantizers read only initializers, so they can all go first and the order stays topological.
  graph.node = [...dequantizers, ...rewritten.nodes];
  return report;
}

/** Names not yet used by any initializer, node or tensor of the graph: `hint`, else `hint_1`, `hint_2`, … */
export function freshNamer(nodes: readonly OnnxTypes.INodeProto[], initializers: Iterable<string>): (hint: string) => string {
  const taken = new Set([...initializers, ...nodes.flatMap((node) => [...(node.input ?? []), ...(node.output ?? []), node.name ?? ''])]);
  return (hint) => {
    let name = hint;
    for (let i = 1; taken.has(name); i++) name = `${hint}_${i}`;
    taken.add(name);
    return name;
  };
}

/**
 * Only the embedding tables of `graph` as int8 rows (see below), adding to `report`: static int8
 * runs the matrix products on integer kernels, and the tables are still most of a text model's bytes.
 */
export function quantizeEmbeddings(graph: OnnxTypes.IGraphProto, report: QuantizationReport): void {
  const nodes = graph.node ?? [];
  const initializers = new Map((graph.initializer ?? []).map((tensor) => [tensor.name!, tensor]));
  const fresh = freshNamer(nodes, initializers.keys());
  const rewritten = quantizeEmbeddingTables(nodes, initializers, new Map(), fresh, report);
  if (rewritten.tables.length === 0) return;
  graph.initializer = [...initializers.values()];
  graph.input = (graph.input ?? []).filter((input) => !rewritten.tables.includes(input.name!));
  graph.node = rewritten.nodes;
}

/**
 * Tables read only by Gathers on axis 0 → int8 rows and a [rows, 1] scale table; each Gather then
 * reads both with the same indices and multiplies, so its output keeps its name, shape and (up to
 * rounding) values. Returns the node list with those rewrites in place, and the tables replaced.
 */
function quantizeEmbeddingTables(
  nodes: OnnxTypes.INodeProto[],
  initializers: Map<string, OnnxTypes.ITensorProto>,
  quantizedElsewhere: Map<string, number | null>,
  fresh: (hint: string) => string,
  report: QuantizationReport,
): { nodes: OnnxTypes.INodeProto[]; tables: string[] } {
  const isRowGather = (node: OnnxTypes.INodeProto) => node.opType === 'Gather' && Number(node.attribute?.find((a) => a.name === 'axis')?.i ?? 0) === 0;
  const readers = new Map<string, OnnxTypes.INodeProto[]>();
  for (const node of nodes) for (const name of node.input ?? []) if (initializers.has(name)) readers.set(name, [...(readers.get(name) ?? []), node]);
  const tables = new Map<string, { quantized: string; scales: string }>();
  for (const [name, users] of readers) {
    const tensor = initializers.get(name)!;
    if (quantizedElsewhere.has(name) || tensor.dims?.length !== 2 || !users.every((node) => isRowGather(node) && node.input![0] === name && node.input![1] !== name)) continue;
    const values = floatsOf(tensor);
    if (!values || values.length < MIN_ELEMENTS) continue;
    const dims = tensor.dims.map(Number);
    const { quantized, scales } = quantizeSymmetric(values, dims, 0);
    const quantizedName = fresh(`${name}_quantized`);
    const scaleName = fresh(`${name}_row_scale`);
    initializers.delete(name);
    initializers.set(quantizedName, { name: quantizedName, dims, dataType: INT8, rawData: new Uint8Array(quantized.buffer) });
    initializers.set(scaleName, { name: scaleName, dims: [dims[0]!, 1], dataType: FLOAT, rawData: new Uint8Array(scales.buffer) });
    tables.set(name, { quantized: quantizedName, scales: scaleName });
    report.tensors++;
    report.floatBytes += values.length * 4;
    report.int8Bytes += values.length + scales.length * 4;
  }
  const out: OnnxTypes.INodeProto[] = [];
  for (const node of nodes) {
    const table = isRowGather(node) ? tables.get(node.input![0]!) : undefined;
    if (!table) {
      out.push(node);
      continue;
    }
    const [, indices] = node.input!;
    const output = node.output![0]!;
    const rows = fresh(`${output}_int8`);
    const rowsFloat = fresh(`${output}_int8_float`);
    const rowScales = fresh(`${output}_row_scale`);
    out.push(
      { ...node, input: [table.quantized, indices!], output: [rows] },
      { name: fresh(`${output}/Cast`), opType: 'Cast', input: [rows], output: [rowsFloat], attribute: [{ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: FLOAT }] },
      { name: fresh(`${output}/GatherScale`), opType: 'Gather', input: [table.scales, indices!], output: [rowScales], attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 0 }] },
      { name: fresh(`${output}/Dequantize`), opType: 'Mul', input: [rowsFloat, rowScales], output: [output], attribute: [] },
    );
  }
  return { nodes: out, tables: [...tables.keys()] };
}

/** The output-channel axis of a node's weight (input 1), or undefined for nodes whose weights stay float. */
export function channelAxis(node: OnnxTypes.INodeProto, weight: OnnxTypes.ITensorProto): number | undefined {
  const rank = weight.dims?.length ?? 0;
  if (node.opType === 'Conv') return 0;
  if (node.opType === 'MatMul' && rank === 2) return 1;
  if (node.opType === 'Gemm') {
    const transB = node.attribute?.find((a) => a.name === 'transB')?.i;
    return Number(transB ?? 0) === 1 ? 0 : 1;
  }
  return undefined;
}

/** Weights held in Constant nodes (common in PyTorch exports) become initializers, so they can be quantised too. */
export function inlineWeightConstants(graph: OnnxTypes.IGraphProto): void {
  const weightInputs = new Set((graph.node ?? []).filter((node) => ['Conv', 'MatMul', 'Gemm'].includes(node.opType ?? '')).map((node) => node.input?.[1]));
  const kept: OnnxTypes.INodeProto[] = [];
  for (const node of graph.node ?? []) {
    const value = node.opType === 'Constant' && node.attribute?.length === 1 ? node.attribute[0] : undefined;
    const output = node.output?.[0];
    if (value?.name === 'value' && value.t && value.t.dataType === FLOAT && output && weightInputs.has(output)) {
      graph.initializer = [...(graph.initializer ?? []), { ...value.t, name: output }];
    } else {
      kept.push(node);
    }
  }
  graph.node = kept;
}

export function floatsOf(tensor: OnnxTypes.ITensorProto): Float32Array | undefined {
  if (tensor.dataType !== FLOAT || tensor.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) return undefined;
  // Copied: decoded raw_data is a view (a Buffer in Node) into the file's bytes, possibly not 4-byte aligned.
  if (tensor.rawData?.length) return new Float32Array(new Uint8Array(tensor.rawData).buffer);
  if (tensor.floatData?.length) return Float32Array.from(tensor.floatData);
  return undefined;
}

/** Symmetric int8 with one scale per slice along `axis` (null: one for the whole tensor). */
export function quantizeSymmetric(values: Float32Array, dims: number[], axis: number | null): { quantized: Int8Array; scales: Float32Array } {
  const channels = axis === null ? 1 : dims[axis]!;
  const inner = axis === null ? values.length : dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const channelOf = (i: number) => (axis === null ? 0 : Math.floor(i / inner) % channels);
  const maxima = new Float64Array(channels);
  for (let i = 0; i < values.length; i++) maxima[channelOf(i)] = Math.max(maxima[channelOf(i)]!, Math.abs(values[i]!));
  const scales = Float32Array.from(maxima, (max) => (max > 0 ? max / 127 : 1));
  const quantized = new Int8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    quantized[i] = Math.max(-127, Math.min(127, Math.round(values[i]! / scales[channelOf(i)]!)));
  }
  return { quantized, scales };
}
