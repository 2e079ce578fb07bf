/**
 * Static int8 quantisation: activations as well as weights, in the QDQ form onnxruntime turns into
 * integer kernels (QLinearConv, QLinearMatMul, QLinearAdd, with its NHWC layout pass on top).
 *
 * Every Conv, and every MatMul / Gemm with a weight initializer, outside the nodes `keepFloat`
 * names (the export's pixel scaling, pooling and head) reads its activation through a
 * QuantizeLinear → DequantizeLinear pair (uint8, asymmetric: the u8×s8 product VNNI computes), its
 * weight as int8 with one scale per output channel, its bias as int32 at the product of the two
 * scales, and its output is quantised again, so onnxruntime sees the full DQ → op → Q pattern it fuses.
 * A ReLU or Clip(0, ·) that alone reads a convolution's output is folded into that Q: with zero point
 * 0 and a range inside the clip, saturating to [0, 255] is the activation. Residual Adds of two
 * quantised tensors are quantised too (QLinearAdd), and MaxPool keeps its input's scale, so it runs on
 * uint8 as it is. Everything else stays float between a DQ and the next Q.
 *
 * Scales come from calibrate.ts: the float graph run on the model's own training inputs. Why QDQ
 * rather than QLinear operators: it is plain ONNX (opset 13) that every runtime can execute, and
 * onnxruntime builds exactly the QLinear graph from it at load time (measured equal speed; see
 * ARCHITECTURE.md).
 */
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';
import { decodeTensor } from '../backbones/tfjs/onnx-graph.js';
import type { CalibrationSettings, Range } from './calibrate.js';
import { channelAxis, floatsOf, freshNamer, inlineWeightConstants, quantizeSymmetric, type QuantizationReport } from './quantize.js';

const { onnx } = onnxProto;
const { FLOAT, INT8, UINT8, INT32 } = onnx.TensorProto.DataType;
const INT = onnx.AttributeProto.AttributeType.INT;

export const STATIC_INT8_SCHEME = 'static int8: uint8 activations calibrated on training inputs, int8 per-output-channel weights, int32 biases, QDQ around Conv/MatMul/Gemm and residual Adds; preprocessing and head float';

/** What to quantise, found before calibrating: the activation tensors whose ranges are needed. */
export interface QuantizationPlan {
  /** Tensors whose consumers will read them through Q → DQ, in graph order. */
  tensors: string[];
  /** For a tensor made by a folded ReLU/Clip: the convolution output its Q reads instead. */
  foldedFrom: Map<string, string>;
  /** Tensors that take another's range (MaxPool's output takes its input's). */
  sameRangeAs: Map<string, string>;
  /** The Conv/MatMul/Gemm nodes whose weights become int8. */
  ops: OnnxTypes.INodeProto[];
}

/** Finds what static quantisation will rewrite; leaves `graph` unchanged (apart from weight Constants becoming initializers). */
export function planQuantization(graph: OnnxTypes.IGraphProto, keepFloat: (node: OnnxTypes.INodeProto) => boolean): QuantizationPlan {
  inlineWeightConstants(graph);
  const nodes = graph.node ?? [];
  const initializers = new Map((graph.initializer ?? []).map((tensor) => [tensor.name!, tensor]));
  const graphOutputs = new Set((graph.output ?? []).map((output) => output.name!));
  const consumers = new Map<string, OnnxTypes.INodeProto[]>();
  for (const node of nodes) for (const name of node.input ?? []) consumers.set(name, [...(consumers.get(name) ?? []), node]);

  const ops = nodes.filter((node) => !keepFloat(node) && isQuantizableOp(node, initializers));
  const quantized = new Set<string>();
  const foldedFrom = new Map<string, string>();
  const sameRangeAs = new Map<string, string>();
  const quantizable = (name: string) => !initializers.has(name) && !graphOutputs.has(name);
  /** Marks an op's output, folding a lone ReLU / Clip(0, ·) behind it. */
  const markOutput = (output: string) => {
    const readers = consumers.get(output) ?? [];
    const activation = readers.length === 1 && !keepFloat(readers[0]!) && isZeroFloorActivation(readers[0]!, initializers) ? readers[0]! : undefined;
    if (activation && quantizable(activation.output![0]!)) {
      quantized.add(activation.output![0]!);
      foldedFrom.set(activation.output![0]!, output);
    } else if (quantizable(output)) {
      quantized.add(output);
    }
  };
  for (const node of ops) {
    if (quantizable(node.input![0]!)) quantized.add(node.input![0]!);
    markOutput(node.output![0]!);
  }
  // In graph order, so an Add reading another Add's output sees it marked already.
  const sources = new Map([...foldedFrom].map(([tensor, from]) => [from, tensor]));
  const markedAs = (name: string) => (quantized.has(name) ? name : sources.get(name));
  for (const node of nodes) {
    if (keepFloat(node)) continue;
    const [a, b] = node.input ?? [];
    if (node.opType === 'Add' && a && b && markedAs(a) && markedAs(b) && !quantized.has(node.output![0]!)) markOutput(node.output![0]!);
    if (node.opType === 'MaxPool' && (node.output?.length ?? 0) === 1 && a && quantized.has(a) && quantizable(node.output![0]!)) {
      quantized.add(node.output![0]!);
      sameRangeAs.set(node.output![0]!, a);
    }
  }
  const order = new Map<string, number>();
  nodes.forEach((node, i) => (node.output ?? []).forEach((name) => order.set(name, i)));
  const tensors = [...quantized].sort((x, y) => (order.get(x) ?? -1) - (order.get(y) ?? -1));
  return { tensors, foldedFrom, sameRangeAs, ops };
}

/** Conv, or MatMul / Gemm whose weight (input 1) is a float initializer the integer kernels can take. */
function isQuantizableOp(node: OnnxTypes.INodeProto, initializers: Map<string, OnnxTypes.ITensorProto>): boolean {
  const weight = initializers.get(node.input?.[1] ?? '');
  if (!weight || weight.dataType !== FLOAT || initializers.has(node.input![0]!)) return false;
  const attribute = (name: string) => node.attribute?.find((a) => a.name === name);
  if (node.opType === 'Conv') return (weight.dims?.length ?? 0) >= 3;
  if (node.opType === 'MatMul') return weight.dims?.length === 2;
  if (node.opType === 'Gemm') {
    // alpha/beta other than 1 would change the bias scale; transA has no integer kernel.
    return weight.dims?.length === 2 && Number(attribute('transA')?.i ?? 0) === 0 && (attribute('alpha')?.f ?? 1) === 1 && (attribute('beta')?.f ?? 1) === 1;
  }
  return false;
}

/** ReLU, or a Clip whose lower bound is exactly 0 (ReLU6): the activations a zero point of 0 reproduces. */
function isZeroFloorActivation(node: OnnxTypes.INodeProto, initializers: Map<string, OnnxTypes.ITensorProto>): boolean {
  if (node.opType === 'Relu') return true;
  if (node.opType !== 'Clip') return false;
  const attribute = node.attribute?.find((a) => a.name === 'min');
  if (attribute) return attribute.f === 0;
  const min = initializers.get(node.input?.[1] ?? '');
  return min !== undefined && decodeTensor(min, 'Clip min').data[0] === 0;
}

interface Quantization {
  scale: number;
  zeroPoint: number;
}

/** uint8 asymmetric over a range that includes 0 (so zero — padding, ReLU — is exact). */
export function uint8Quantization(range: Range): Quantization {
  const min = Math.min(0, range.min);
  const max = Math.max(0, range.max);
  const scale = Math.fround((max - min) / 255 || 1);
  return { scale, zeroPoint: Math.max(0, Math.min(255, Math.round(-min / scale))) };
}

/** Rewrites `graph` in place following `plan`, with the calibrated `ranges` (one per planned tensor). */
export function applyQuantization(
  graph: OnnxTypes.IGraphProto,
  plan: QuantizationPlan,
  ranges: Map<string, Range>,
  calibration: CalibrationSettings & { inputs: number },
): QuantizationReport {
  const nodes = graph.node ?? [];
  const initializers = new Map((graph.initializer ?? []).map((tensor) => [tensor.name!, tensor]));
  const fresh = freshNamer(nodes, initializers.keys());
  const add = (tensor: OnnxTypes.ITensorProto) => initializers.set(tensor.name!, tensor);
  const report: QuantizationReport = { scheme: STATIC_INT8_SCHEME, tensors: 0, floatBytes: 0, int8Bytes: 0, activations: plan.tensors.length, calibration };

  // Activations: scale and zero point of each planned tensor.
  const params = new Map<string, Quantization & { scaleName: string; zeroName: string; dequantized: string }>();
  for (const tensor of plan.tensors) {
    const range = ranges.get(plan.sameRangeAs.get(tensor) ?? tensor);
    if (!range) throw new Error(`no calibrated range for ${tensor}`);
    const q = uint8Quantization(range);
    const scaleName = fresh(`${tensor}_scale`);
    const zeroName = fresh(`${tensor}_zero_point`);
    add({ name: scaleName, dims: [], dataType: FLOAT, floatData: [q.scale] });
    add({ name: zeroName, dims: [], dataType: UINT8, rawData: Uint8Array.of(q.zeroPoint) });
    params.set(tensor, { ...q, scaleName, zeroName, dequantized: fresh(`${tensor}_dequantized`) });
  }

  // Weights (int8 per output channel) and biases (int32 at input scale × weight scale), dequantised in front of their op.
  const weightNodes: OnnxTypes.INodeProto[] = [];
  const dequantizedWeights = new Map<string, { name: string; scales: Float32Array }>();
  const rewrittenOps = new Map<OnnxTypes.INodeProto, OnnxTypes.INodeProto>();
  for (const node of plan.ops) {
    const [input, weightName, biasName] = node.input!;
    const weight = initializers.get(weightName!)!;
    const axis = channelAxis(node, weight)!;
    let dequantized = dequantizedWeights.get(weightName!);
    if (!dequantized) {
      const values = floatsOf(weight);
      if (!values) throw new Error(`weight ${weightName} is not readable float data`);
      const dims = (weight.dims ?? []).map(Number);
      const { quantized, scales } = quantizeSymmetric(values, dims, axis);
      const q = fresh(`${weightName}_quantized`);
      const s = fresh(`${weightName}_scale`);
      const z = fresh(`${weightName}_zero_point`);
      add({ name: q, dims, dataType: INT8, rawData: new Uint8Array(quantized.buffer) });
      add({ name: s, dims: [scales.length], dataType: FLOAT, rawData: new Uint8Array(scales.buffer) });
      add({ name: z, dims: [scales.length], dataType: INT8, rawData: new Uint8Array(scales.length) });
      dequantized = { name: fresh(`${weightName}_dequantized`), scales };
      weightNodes.push({ name: fresh(`${weightName}/DequantizeLinear`), opType: 'DequantizeLinear', input: [q, s, z], output: [dequantized.name], attribute: [{ name: 'axis', type: INT, i: axis }] });
      dequantizedWeights.set(weightName!, dequantized);
      report.tensors++;
      report.floatBytes += values.length * 4;
      report.int8Bytes += values.length + scales.length * 5;
    }
    const inputs = [params.get(input!)?.dequantized ?? input!, dequantized.name];
    const bias = biasName ? initializers.get(biasName) : undefined;
    const biasValues = bias && floatsOf(bias);
    const inputScale = params.get(input!)?.scale;
    if (biasName && biasValues && inputScale !== undefined && biasValues.length === dequantized.scales.length && (bias!.dims?.length ?? 0) === 1) {
      const scales = Float32Array.from(dequantized.scales, (s) => s * inputScale);
      const quantized = Int32Array.from(biasValues, (b, c) => Math.max(-(2 ** 31), Math.min(2 ** 31 - 1, Math.round(b / scales[c]!))));
      const q = fresh(`${biasName}_quantized`);
      const s = fresh(`${biasName}_scale`);
      const z = fresh(`${biasName}_zero_point`);
      add({ name: q, dims: [quantized.length], dataType: INT32, rawData: new Uint8Array(quantized.buffer) });
      add({ name: s, dims: [scales.length], dataType: FLOAT, rawData: new Uint8Array(scales.buffer) });
      add({ name: z, dims: [scales.length], dataType: INT32, rawData: new Uint8Array(quantized.length * 4) });
      const out = fresh(`${biasName}_dequantized`);
      weightNodes.push({ name: fresh(`${biasName}/DequantizeLinear`), opType: 'DequantizeLinear', input: [q, s, z], output: [out], attribute: [{ name: 'axis', type: INT, i: 0 }] });
      inputs.push(out);
    } else if (biasName) {
      inputs.push(biasName);
    }
    rewrittenOps.set(node, { ...node, input: inputs });
  }

  // Q → DQ after each tensor's producer (after the op a folded activation followed; the activation goes).
  const folded = new Set(plan.foldedFrom.keys());
  const qdqAfter = new Map<string, OnnxTypes.INodeProto[]>();
  const qdqFirst: OnnxTypes.INodeProto[] = [];
  const producers = new Set(nodes.flatMap((node) => node.output ?? []));
  for (const tensor of plan.tensors) {
    const p = params.get(tensor)!;
    const source = plan.foldedFrom.get(tensor) ?? tensor;
    const q = fresh(`${tensor}_quantized`);
    const pair: OnnxTypes.INodeProto[] = [
      { name: fresh(`${tensor}/QuantizeLinear`), opType: 'QuantizeLinear', input: [source, p.scaleName, p.zeroName], output: [q], attribute: [] },
      { name: fresh(`${tensor}/DequantizeLinear`), opType: 'DequantizeLinear', input: [q, p.scaleName, p.zeroName], output: [p.dequantized], attribute: [] },
    ];
    if (producers.has(source)) qdqAfter.set(source, [...(qdqAfter.get(source) ?? []), ...pair]);
    else qdqFirst.push(...pair);
  }
  const rewired = (name: string) => params.get(name)?.dequantized ?? name;
  const out: OnnxTypes.INodeProto[] = [...weightNodes, ...qdqFirst];
  for (const node of nodes) {
    if (folded.has(node.output?.[0] ?? '') && plan.foldedFrom.get(node.output![0]!) === node.input![0]) continue;
    const rewritten = rewrittenOps.get(node) ?? node;
    out.push(rewrittenOps.has(node) ? rewritten : { ...node, input: (node.input ?? []).map(rewired) });
    for (const name of node.output ?? []) out.push(...(qdqAfter.get(name) ?? []));
  }
  graph.node = out;
  const used = new Set(out.flatMap((node) => node.input ?? []));
  graph.initializer = [...initializers.values()].filter((tensor) => used.has(tensor.name!));
  const initializerNames = new Set(graph.initializer.map((tensor) => tensor.name));
  // Old-style graphs list initializers as inputs too; a weight replaced by its int8 copy is no longer one.
  graph.input = (graph.input ?? []).filter((input) => !(initializers.has(input.name!) && !initializerNames.has(input.name!)));
  return report;
}

/** A convolution whose output only one other convolution reads, with nothing in between: their channels can be rescaled exactly. */
export interface EqualizationPair {
  producer: OnnxTypes.INodeProto;
  consumer: OnnxTypes.INodeProto;
  /** The tensor between them, and its channel count. */
  tensor: string;
  channels: number;
}

/**
 * Pairs for channel equalization: Conv → Conv (group 1) where the first one's output feeds only the
 * second (no activation, no residual branch), both with weight initializers and quantised.
 */
export function equalizationPairs(graph: OnnxTypes.IGraphProto, plan: QuantizationPlan): EqualizationPair[] {
  const initializers = new Map((graph.initializer ?? []).map((tensor) => [tensor.name!, tensor]));
  const graphOutputs = new Set((graph.output ?? []).map((output) => output.name!));
  const consumers = new Map<string, OnnxTypes.INodeProto[]>();
  for (const node of graph.node ?? []) for (const name of node.input ?? []) consumers.set(name, [...(consumers.get(name) ?? []), node]);
  const quantized = new Set(plan.ops);
  const weightUsers = (name: string) => (consumers.get(name) ?? []).length;
  const pairs: EqualizationPair[] = [];
  for (const producer of plan.ops) {
    if (producer.opType !== 'Conv') continue;
    const tensor = producer.output![0]!;
    const readers = consumers.get(tensor) ?? [];
    const consumer = readers[0];
    if (readers.length !== 1 || !consumer || consumer.opType !== 'Conv' || !quantized.has(consumer) || consumer.input![0] !== tensor || graphOutputs.has(tensor)) continue;
    if (Number(consumer.attribute?.find((a) => a.name === 'group')?.i ?? 1) !== 1) continue;
    const [pw, pb] = [producer.input![1]!, producer.input![2]];
    const cw = consumer.input![1]!;
    // Weights shared with other nodes cannot be rescaled for this pair alone.
    if (weightUsers(pw) !== 1 || weightUsers(cw) !== 1 || (pb && weightUsers(pb) !== 1)) continue;
    const channels = Number(initializers.get(pw)!.dims![0]);
    if (Number(initializers.get(cw)!.dims![1]) !== channels) continue;
    pairs.push({ producer, consumer, tensor, channels });
  }
  return pairs;
}

/**
 * Rescales each pair's channels so that the tensor between them spreads its range evenly over its
 * channels: channel c of the producer (weights and bias) is divided by s_c and the consumer's input
 * channel c multiplied by it, which leaves the float function unchanged (nothing nonlinear sits
 * between them) while one per-tensor activation scale then suits every channel.
 * s_c = sqrt(activation range_c / weight range_c), balancing the two (SmoothQuant's α = 0.5; Xiao
 * et al. 2023), since the consumer's weights are quantised per output channel and grow by s_c.
 * `ranges` holds each tensor's largest magnitude per channel, measured on the calibration inputs.
 */
export function equalizeChannels(graph: OnnxTypes.IGraphProto, pairs: EqualizationPair[], ranges: Map<string, Float64Array>): number {
  const initializers = new Map((graph.initializer ?? []).map((tensor) => [tensor.name!, tensor]));
  const write = (tensor: OnnxTypes.ITensorProto, values: Float32Array) => {
    tensor.rawData = new Uint8Array(values.buffer);
    tensor.floatData = [];
  };
  let equalized = 0;
  for (const { producer, consumer, tensor, channels } of pairs) {
    const activation = ranges.get(tensor);
    const pw = initializers.get(producer.input![1]!)!;
    const cw = initializers.get(consumer.input![1]!)!;
    const pb = producer.input![2] ? initializers.get(producer.input![2]) : undefined;
    const [pValues, cValues, bValues] = [floatsOf(pw), floatsOf(cw), pb && floatsOf(pb)];
    if (!activation || !pValues || !cValues || (pb && !bValues)) continue;
    const outputs = Number(cw.dims![0]);
    const inner = cValues.length / (outputs * channels);
    const weightRange = new Float64Array(channels);
    for (let o = 0; o < outputs; o++) for (let c = 0; c < channels; c++) for (let k = 0; k < inner; k++) weightRange[c] = Math.max(weightRange[c]!, Math.abs(cValues[(o * channels + c) * inner + k]!));
    const scales = Float64Array.from(activation, (a, c) => (a > 0 && weightRange[c]! > 0 ? Math.sqrt(a / weightRange[c]!) : 1));
    // Normalised to a geometric mean of 1, so the overall magnitudes stay where they were.
    const mean = Math.exp(scales.reduce((sum, s) => sum + Math.log(s), 0) / channels);
    for (let c = 0; c < channels; c++) scales[c]! /= mean;
    const perProducerChannel = pValues.length / channels;
    for (let i = 0; i < pValues.length; i++) pValues[i]! /= scales[Math.floor(i / perProducerChannel)]!;
    if (bValues) for (let c = 0; c < channels; c++) bValues[c]! /= scales[c]!;
    for (let o = 0; o < outputs; o++) for (let c = 0; c < channels; c++) for (let k = 0; k < inner; k++) cValues[(o * channels + c) * inner + k]! *= scales[c]!;
    write(pw, pValues);
    write(cw, cValues);
    if (pb && bValues) write(pb, bValues);
    equalized++;
  }
  return equalized;
}
