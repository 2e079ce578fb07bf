/**
 * Conversion-time rewrites of the emitted graph: drop what the output does not need, and fold
 * BatchNorm / per-channel scale and shift / zero padding into the preceding Conv, so the model
 * onnxruntime loads is already the fused Conv(+Clip) chain it runs fastest.
 */
import { fuseHardActivations, sinkScalarFactors } from './hard-activations.js';
import type { GraphNode, OnnxGraph } from './onnx-graph.js';

function useCounts(graph: OnnxGraph): Map<string, number> {
  const counts = new Map<string, number>();
  for (const node of graph.nodes) for (const input of node.inputs) counts.set(input, (counts.get(input) ?? 0) + 1);
  for (const output of graph.outputs) counts.set(output.name, (counts.get(output.name) ?? 0) + 1);
  return counts;
}

function producers(graph: OnnxGraph): Map<string, GraphNode> {
  const byOutput = new Map<string, GraphNode>();
  for (const node of graph.nodes) for (const output of node.outputs) byOutput.set(output, node);
  return byOutput;
}

/** Keeps only the nodes and initializers the graph outputs depend on. */
export function pruneToOutput(graph: OnnxGraph): void {
  if (graph.outputs.length === 0) return;
  const byOutput = producers(graph);
  const needed = new Set<string>(graph.outputs.map((output) => output.name));
  const keep = new Set<GraphNode>();
  const pending = [...needed];
  while (pending.length > 0) {
    const node = byOutput.get(pending.pop()!);
    if (!node || keep.has(node)) continue;
    keep.add(node);
    for (const input of node.inputs) {
      if (input && !needed.has(input)) {
        needed.add(input);
        pending.push(input);
      }
    }
  }
  const kept = graph.nodes.filter((node) => keep.has(node));
  graph.nodes.splice(0, graph.nodes.length, ...kept);
  for (const name of [...graph.initializers.keys()]) if (!needed.has(name)) graph.initializers.delete(name);
}

function removeIdentities(graph: OnnxGraph): void {
  const replacements = new Map<string, string>();
  const resolve = (name: string): string => {
    let current = name;
    while (replacements.has(current)) current = replacements.get(current)!;
    return current;
  };
  const kept: GraphNode[] = [];
  for (const node of graph.nodes) {
    node.inputs = node.inputs.map(resolve);
    if (node.op === 'Identity' && !graph.outputs.some((output) => output.name === node.outputs[0])) replacements.set(node.outputs[0]!, node.inputs[0]!);
    else kept.push(node);
  }
  graph.nodes.splice(0, graph.nodes.length, ...kept);
}

/** The Conv whose output is `tensor`, if that output feeds only one node and its weights are its own. */
function exclusiveConv(graph: OnnxGraph, tensor: string, byOutput: Map<string, GraphNode>, uses: Map<string, number>): GraphNode | undefined {
  const conv = byOutput.get(tensor);
  if (conv?.op !== 'Conv' || uses.get(tensor) !== 1) return undefined;
  const [, weights, bias] = conv.inputs;
  if (!weights || !graph.floatInitializer(weights) || uses.get(weights) !== 1) return undefined;
  if (bias && (!graph.floatInitializer(bias) || uses.get(bias) !== 1)) return undefined;
  return conv;
}

/** The Conv's bias, created as zeros when it has none. */
function convBias(graph: OnnxGraph, conv: GraphNode, channels: number): Float32Array {
  const existing = conv.inputs[2] ? graph.floatInitializer(conv.inputs[2]) : undefined;
  if (existing) return existing;
  const bias = new Float32Array(channels);
  conv.inputs[2] = graph.addFloatInitializer(`${conv.outputs[0]}/bias`, [channels], bias);
  return bias;
}

/** Per-channel values of a constant broadcastable to NCHW channels: shape [C,1,1], [1,C,1,1] or a scalar. */
function perChannel(graph: OnnxGraph, name: string, channels: number): Float32Array | undefined {
  const initializer = graph.initializers.get(name);
  if (initializer?.dtype !== 'float32') return undefined;
  const dims = initializer.dims;
  if (initializer.data.length === 1) return new Float32Array(channels).fill(initializer.data[0]!);
  const rankOk = dims.length === 3 || (dims.length === 4 && dims[0] === 1);
  const channelAxis = dims.length - 3;
  const isChannelVector = rankOk && dims[channelAxis] === channels && dims.slice(channelAxis + 1).every((d) => d === 1);
  return isChannelVector ? initializer.data : undefined;
}

/**
 * Folds a node that follows a Conv into the Conv's weights and bias. `fold` receives the conv's
 * output channel count and returns per-channel (scale, shift), or undefined to leave the node.
 */
function foldIntoConv(graph: OnnxGraph, ops: string[], fold: (node: GraphNode, channels: number, convInput: number) => { scale?: Float32Array; shift?: Float32Array } | undefined): void {
  let byOutput = producers(graph);
  let uses = useCounts(graph);
  for (const node of [...graph.nodes]) {
    if (!ops.includes(node.op)) continue;
    const convInput = node.inputs.findIndex((input) => exclusiveConv(graph, input, byOutput, uses));
    if (convInput < 0) continue;
    const conv = byOutput.get(node.inputs[convInput]!)!;
    const weights = graph.floatInitializer(conv.inputs[1]!)!;
    const channels = graph.initializers.get(conv.inputs[1]!)!.dims[0]!;
    const folded = fold(node, channels, convInput);
    if (!folded) continue;
    const bias = convBias(graph, conv, channels);
    const perChannelWeights = weights.length / channels;
    for (let c = 0; c < channels; c++) {
      const scale = folded.scale?.[c] ?? 1;
      const shift = folded.shift?.[c] ?? 0;
      if (scale !== 1) for (let i = c * perChannelWeights; i < (c + 1) * perChannelWeights; i++) weights[i] = weights[i]! * scale;
      bias[c] = bias[c]! * scale + shift;
    }
    conv.outputs[0] = node.outputs[0]!;
    graph.nodes.splice(graph.nodes.indexOf(node), 1);
    byOutput = producers(graph);
    uses = useCounts(graph);
  }
}

function foldBatchNorm(graph: OnnxGraph): void {
  foldIntoConv(graph, ['BatchNormalization'], (node, channels, convInput) => {
    if (convInput !== 0) return undefined;
    const [gamma, beta, mean, variance] = node.inputs.slice(1).map((name) => graph.floatInitializer(name));
    if (!gamma || !beta || !mean || !variance || gamma.length !== channels) return undefined;
    const epsilon = node.attributes['epsilon']?.kind === 'float' ? node.attributes['epsilon'].value : 1e-5;
    const scale = new Float32Array(channels);
    const shift = new Float32Array(channels);
    for (let c = 0; c < channels; c++) {
      // Computed in double: y = (conv - mean)·γ/√(var+ε) + β.
      const factor = gamma[c]! / Math.sqrt(variance[c]! + epsilon);
      scale[c] = factor;
      shift[c] = beta[c]! - mean[c]! * factor;
    }
    return { scale, shift };
  });
}

function foldChannelAffine(graph: OnnxGraph): void {
  foldIntoConv(graph, ['Add', 'Mul'], (node, channels, convInput) => {
    const values = perChannel(graph, node.inputs[1 - convInput]!, channels);
    if (!values) return undefined;
    return node.op === 'Add' ? { shift: values } : { scale: values };
  });
}

/** Zero Pad → Conv becomes the Conv's own pads. */
function foldPadIntoConv(graph: OnnxGraph): void {
  const uses = useCounts(graph);
  const byOutput = producers(graph);
  for (const conv of graph.nodes) {
    if (conv.op !== 'Conv' || conv.attributes['auto_pad']) continue;
    const pad = byOutput.get(conv.inputs[0]!);
    if (pad?.op !== 'Pad' || uses.get(pad.outputs[0]!) !== 1) continue;
    const mode = pad.attributes['mode'];
    if (mode && !(mode.kind === 'string' && mode.value === 'constant')) continue;
    const value = pad.inputs[2] ? graph.floatInitializer(pad.inputs[2]) : undefined;
    if (pad.inputs[2] && (!value || value[0] !== 0)) continue;
    const pads = graph.int64Initializer(pad.inputs[1]!);
    if (!pads || pads.length !== 8 || pads.some((p) => p < 0) || pads[0] || pads[1] || pads[4] || pads[5]) continue;
    const convPads = conv.attributes['pads']?.kind === 'ints' ? conv.attributes['pads'].value : [0, 0, 0, 0];
    conv.attributes['pads'] = { kind: 'ints', value: [convPads[0]! + pads[2]!, convPads[1]! + pads[3]!, convPads[2]! + pads[6]!, convPads[3]! + pads[7]!] };
    conv.inputs[0] = pad.inputs[0]!;
    uses.set(pad.outputs[0]!, 0);
  }
}

export function optimize(graph: OnnxGraph): void {
  pruneToOutput(graph);
  removeIdentities(graph);
  foldPadIntoConv(graph);
  pruneToOutput(graph);
  foldBatchNorm(graph);
  // Before the affine fold, which would take the `+ 3` of hard-sigmoids into their Conv's bias.
  fuseHardActivations(graph);
  foldChannelAffine(graph);
  sinkScalarFactors(graph);
  pruneToOutput(graph);
}
