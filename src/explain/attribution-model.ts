/**
 * An image classifier as one differentiable ONNX graph: the backbone's graph, its pooling and the
 * trained head (built by the export's `HeadGraphBuilder`, so every head type matches what predict
 * computes, temperature included), read and probed by `src/autodiff`. Attribution methods ask it
 * for graphs that return the gradient of a chosen class score with respect to the input pixels
 * or to the last block's feature map (`gradient-runner.ts`).
 */
import { readFile } from 'node:fs/promises';
import { findBlocks, type Block } from '../autodiff/blocks.js';
import { readTrainableModel, unshareInitializers, type TrainableModel } from '../autodiff/model.js';
import { pruneToOutputs, sortTopologically } from '../autodiff/graph-utils.js';
import { graphLike } from '../autodiff/partition.js';
import type { ImageBackbone } from '../backbones/image-backbone.js';
import type { ImagePreprocessing } from '../backbones/image-preprocessing.js';
import { decodeModel, encodeModel, OPSET_VERSION, type OnnxGraph } from '../backbones/tfjs/onnx-graph.js';
import { HeadGraphBuilder } from '../export/head-graph.js';
import type { HeadState } from '../heads/head.js';
import { messageOf, modelError } from '../util/errors.js';

/** A rank-4 activation Grad-CAM weighs: which axis holds the channels. */
export interface FeatureMap {
  tensor: string;
  layout: 'NCHW' | 'NHWC';
  channels: number;
  height: number;
  width: number;
  /** Index of the block it belongs to (from `blocks.ts`). */
  block: number;
}

/** The attention probabilities of a ViT-style encoder, [batch, heads, tokens, tokens], in layer order. */
export interface AttentionMaps {
  tensors: string[];
  tokens: number;
  /** Side of the square patch grid (tokens − 1 = grid², the first token being the class token). */
  grid: number;
}

export interface AttributionModel {
  model: TrainableModel;
  /** The pixel tensor input (the backbone's float input, normalised as the preprocessing says). */
  input: string;
  /** Calibrated logits [batch, classes]: softmax of them is what `predict` returns. */
  logits: string;
  classes: number;
  preprocessing: ImagePreprocessing;
  blocks: Block[];
  /** The last block's spatial feature map, for Grad-CAM; absent for token-sequence backbones. */
  featureMap?: FeatureMap;
  attention?: AttentionMaps;
}

/** The backbone graph + pooling + head, as one model whose output is the calibrated logits. */
export async function buildAttributionModel(backbone: ImageBackbone, head: HeadState, temperature: number): Promise<AttributionModel> {
  const { spec } = backbone;
  const bytes = typeof spec.model === 'string' ? await readFile(spec.model) : spec.model;
  let graph: OnnxGraph;
  try {
    graph = decodeModel(bytes, spec.origin);
  } catch (error) {
    throw modelError(`cannot read the backbone graph: ${messageOf(error)}`, spec.origin, error);
  }
  unshareInitializers(graph);
  sortTopologically(graph, spec.origin);
  const builder = new HeadGraphBuilder(graph, graph.sourceOpset ?? OPSET_VERSION, 'explain/');
  const features = builder.pool(backbone.outputName, backbone.pooling);
  const logits = builder.head(features, head, temperature);
  const classes = (head.config as { numClasses: number }).numClasses;
  graph.inputs.splice(0, graph.inputs.length, ...graph.inputs.filter((input) => input.name === backbone.inputName));
  graph.outputs = [{ name: logits, shape: [-1, classes] }];
  pruneToOutputs(graph);
  const model = await readTrainableModel(encodeModel(graph, 'attribution', 'backbone, pooling and head', { producer: 'headstart explain' }), spec.origin);
  const blocks = findBlocks(model, logits);
  return {
    model,
    input: backbone.inputName,
    logits,
    classes,
    preprocessing: backbone.preprocessing,
    blocks,
    featureMap: lastFeatureMap(model, blocks, backbone.preprocessing.layout),
    attention: attentionMaps(model),
  };
}

/**
 * The last spatial (rank-4, more than one position) activation, searching the blocks from the top:
 * for a CNN, the final convolution's output before global pooling, where Grad-CAM is usually taken.
 */
function lastFeatureMap(model: TrainableModel, blocks: Block[], inputLayout: 'NCHW' | 'NHWC'): FeatureMap | undefined {
  for (let b = blocks.length - 1; b >= 0; b--) {
    const nodes = blocks[b]!.nodes;
    for (let n = nodes.length - 1; n >= 0; n--) {
      for (const output of nodes[n]!.outputs) {
        const info = model.info.get(output);
        const dims = info?.dims;
        if (info?.dtype !== 'float32' || !dims || dims.length !== 4 || dims[0] !== -1) continue;
        const layout = spatialLayout(dims, inputLayout);
        if (!layout) continue;
        const [channels, height, width] = layout === 'NCHW' ? [dims[1]!, dims[2]!, dims[3]!] : [dims[3]!, dims[1]!, dims[2]!];
        if (height * width > 1) return { tensor: output, layout, channels, height, width, block: b };
      }
    }
  }
  return undefined;
}

/** NCHW when the last two axes look spatial (equal, or the other reading is less square), NHWC otherwise. */
function spatialLayout(dims: number[], inputLayout: 'NCHW' | 'NHWC'): 'NCHW' | 'NHWC' | undefined {
  const nchw = Math.abs(dims[2]! - dims[3]!) / Math.max(dims[2]!, dims[3]!);
  const nhwc = Math.abs(dims[1]! - dims[2]!) / Math.max(dims[1]!, dims[2]!);
  if (nchw === nhwc) return inputLayout;
  return nchw < nhwc ? 'NCHW' : 'NHWC';
}

/** Softmax outputs shaped [batch, heads, T, T] with T − 1 a square: the attention of a ViT-style encoder. */
function attentionMaps(model: TrainableModel): AttentionMaps | undefined {
  const tensors: string[] = [];
  let tokens = 0;
  for (const node of model.graph.nodes) {
    if (node.op !== 'Softmax') continue;
    const dims = model.info.get(node.outputs[0]!)?.dims;
    if (!dims || dims.length !== 4 || dims[2] !== dims[3] || dims[2]! < 2) continue;
    const grid = Math.round(Math.sqrt(dims[2]! - 1));
    if (grid * grid !== dims[2]! - 1 || (tokens && dims[2] !== tokens)) continue;
    tokens = dims[2]!;
    tensors.push(node.outputs[0]!);
  }
  return tensors.length > 0 ? { tensors, tokens, grid: Math.round(Math.sqrt(tokens - 1)) } : undefined;
}

/**
 * The same model with some weights replaced (the sanity check of Adebayo et al. randomises the top
 * blocks' weights and checks that the explanations change).
 */
export function withWeights(source: AttributionModel, weights: Map<string, Float32Array>): AttributionModel {
  const graph = copyGraph(source.model.graph);
  for (const [name, data] of weights) {
    const initializer = graph.initializers.get(name);
    if (initializer?.dtype !== 'float32' || initializer.data.length !== data.length) throw modelError(`cannot replace weight ${name}`, source.model.origin);
    graph.initializers.set(name, { dtype: 'float32', dims: initializer.dims, data });
  }
  return { ...source, model: { ...source.model, graph } };
}

/** A graph whose node and initializer lists can be extended without touching `source`'s (the data is shared). */
export function copyGraph(source: OnnxGraph): OnnxGraph {
  const graph = graphLike(source);
  graph.inputs.push(...source.inputs.map((input) => ({ ...input })));
  graph.outputs = source.outputs.map((output) => ({ ...output }));
  graph.sourceOpset = source.sourceOpset;
  for (const [name, initializer] of source.initializers) graph.initializers.set(name, initializer);
  graph.nodes.push(...source.nodes.map((node) => ({ ...node, inputs: [...node.inputs], outputs: [...node.outputs], attributes: { ...node.attributes } })));
  return graph;
}
