/**
 * BatchNorm's affine part brought back into a graph whose exporter folded BatchNorm into the
 * convolutions (conv weights scaled by γ/σ, bias β − γμ/σ): after each such convolution a
 * per-channel scale and shift, y·s + t, starting at the identity (s = 1, t = 0, so the graph computes
 * exactly what it did), trained as their own parameters without weight decay — what fastai's
 * trainable BatchNorm γ and β are to the frozen statistics. After training they fold back into the
 * convolution (W·s per output channel, b·s + t), so the written graph has the original structure.
 */
import type { OnnxGraph } from '../backbones/tfjs/onnx-graph.js';
import type { TensorInfoMap } from './tensor-info.js';

export interface ChannelAffine {
  /** The convolution's weight and bias initializers, which the scale and shift fold back into. */
  weight: string;
  bias: string;
  /** The trainable initializers, [C, 1, …] so they broadcast over [N, C, spatial…]. */
  scale: string;
  shift: string;
}

/**
 * Inserts a scale and shift after every Conv whose weight is in `trained` and that looks folded: it
 * has a bias (folded BatchNorm always leaves one), no BatchNormalization reads its output (an
 * un-folded BatchNorm has γ and β of its own), and its weight and bias feed no other node (folding
 * back must not change another node). Edits `graph` and `info` in place; returns what it inserted.
 */
export function insertChannelAffines(graph: OnnxGraph, info: TensorInfoMap, trained: readonly string[]): ChannelAffine[] {
  const trainable = new Set(trained);
  const uses = new Map<string, number>();
  for (const node of graph.nodes) for (const input of node.inputs) uses.set(input, (uses.get(input) ?? 0) + 1);
  const normalised = new Set(graph.nodes.filter((node) => node.op === 'BatchNormalization').map((node) => node.inputs[0]));
  const inserted: ChannelAffine[] = [];
  const nodes = [];
  for (const node of graph.nodes) {
    nodes.push(node);
    const [, weight, bias] = node.inputs;
    const output = node.outputs[0];
    const dims = output ? info.get(output)?.dims : undefined;
    const channels = dims?.[1];
    const folded =
      node.op === 'Conv' && !node.domain && weight && bias && output && trainable.has(weight) && trainable.has(bias) && uses.get(weight) === 1 && uses.get(bias) === 1 && !normalised.has(output);
    if (!folded || !dims || !(channels! > 0) || graph.outputs.some((o) => o.name === output)) continue;
    const channelDims = [channels!, ...new Array<number>(dims.length - 2).fill(1)];
    const scale = graph.addInitializer(`${node.name}/bn_scale`, { dtype: 'float32', dims: channelDims, data: new Float32Array(channels!).fill(1) });
    const shift = graph.addInitializer(`${node.name}/bn_shift`, { dtype: 'float32', dims: channelDims, data: new Float32Array(channels!) });
    const raw = graph.uniqueName(`${output}/before_bn_affine`);
    const scaled = graph.uniqueName(`${output}/bn_scaled`);
    node.outputs[0] = raw;
    // The shift's Add writes the convolution's old output name, so every reader is unchanged.
    nodes.push(
      { name: graph.uniqueName(`${node.name}/bn_scale/Mul`), op: 'Mul', inputs: [raw, scale], outputs: [scaled], attributes: {} },
      { name: graph.uniqueName(`${node.name}/bn_shift/Add`), op: 'Add', inputs: [scaled, shift], outputs: [output], attributes: {} },
    );
    for (const tensor of [raw, scaled]) info.set(tensor, { dtype: 'float32', dims: [...dims] });
    info.set(scale, { dtype: 'float32', dims: channelDims });
    info.set(shift, { dtype: 'float32', dims: channelDims });
    inserted.push({ weight, bias, scale, shift });
  }
  graph.nodes.splice(0, graph.nodes.length, ...nodes);
  return inserted;
}

/**
 * Folds trained scales and shifts into their convolutions: returns `weights` with each affine's
 * conv weight and bias replaced by W·s (per output channel) and b·s + t, and the scale and shift
 * themselves removed. `original` gives a weight not in `weights` (one that did not train).
 */
export function foldChannelAffines(weights: Map<string, Float32Array>, affines: readonly ChannelAffine[], original: (name: string) => Float32Array): Map<string, Float32Array> {
  const folded = new Map(weights);
  for (const affine of affines) {
    const scale = weights.get(affine.scale)!;
    const shift = weights.get(affine.shift)!;
    const weight = (weights.get(affine.weight) ?? original(affine.weight)).slice();
    const bias = (weights.get(affine.bias) ?? original(affine.bias)).slice();
    const perChannel = weight.length / scale.length;
    for (let c = 0; c < scale.length; c++) {
      for (let i = c * perChannel; i < (c + 1) * perChannel; i++) weight[i] = weight[i]! * scale[c]!;
      bias[c] = bias[c]! * scale[c]! + shift[c]!;
    }
    folded.set(affine.weight, weight);
    folded.set(affine.bias, bias);
    folded.delete(affine.scale);
    folded.delete(affine.shift);
  }
  return folded;
}
