/**
 * The ONNX graph behind an image backbone, read for training, and the fine-tuned backbone written
 * back: the same graph with updated weights, its features pooled in-graph into one rank-2 output
 * named `features`, so the file is a complete, portable feature extractor.
 */
import { readFile } from 'node:fs/promises';
import type { Backbone } from '../backbones/backbone.js';
import { ImageBackbone } from '../backbones/image-backbone.js';
import type { Pooling } from '../backbones/onnx-session.js';
import { attr, encodeModel } from '../backbones/tfjs/onnx-graph.js';
import { readTrainableModel, type TrainableModel } from '../autodiff/model.js';
import { pruneToOutputs } from '../autodiff/graph-utils.js';
import { graphLike } from '../autodiff/partition.js';
import { modelError, usageError } from '../util/errors.js';
import { sha256 } from '../util/hash.js';

/** Name of the pooled feature output of a fine-tuned backbone graph. */
export const FEATURES_OUTPUT = 'features';

export interface BackboneGraph {
  model: TrainableModel;
  /** The rank-2 [batch, dim] feature tensor (pooled in-graph when the backbone pools in JS). */
  features: string;
  input: string;
  backbone: ImageBackbone;
}

export function asImageBackbone(backbone: Backbone<never, unknown> | Backbone<Uint8Array, unknown>): ImageBackbone {
  if (!(backbone instanceof ImageBackbone)) throw usageError(`fine-tuning inside the backbone needs an image backbone (an ONNX graph); ${backbone.reference.id} is a ${backbone.reference.modality} backbone`);
  return backbone;
}

/** Appends the pooling `ImageBackbone` does in JavaScript, so the graph itself outputs the features. */
function poolInGraph(model: TrainableModel, output: string, pooling: Pooling): string {
  const { graph, info } = model;
  const dims = info.get(output)?.dims;
  if (!dims) throw modelError(`no shape known for ${output}`, model.origin);
  if (pooling === 'none' || dims.length === 2) {
    if (dims.length !== 2) throw modelError(`the feature output ${output} has shape [${dims}], expected [batch, features]`, model.origin);
    return output;
  }
  let pooled: string;
  let pooledDims: number[];
  if (pooling === 'spatial-mean') {
    pooled = graph.addNode('ReduceMean', [output], { axes: attr.ints([2, 3]), keepdims: attr.int(0) }, 'features/spatial_mean');
    pooledDims = [dims[0]!, dims[1]!];
  } else if (pooling === 'token-mean') {
    pooled = graph.addNode('ReduceMean', [output], { axes: attr.ints([1]), keepdims: attr.int(0) }, 'features/token_mean');
    pooledDims = [dims[0]!, dims[2]!];
  } else {
    const first = graph.addInitializer('features/first_token', { dtype: 'int64', dims: [], data: BigInt64Array.of(0n) });
    info.set(first, { dtype: 'int64', dims: [] });
    pooled = graph.addNode('Gather', [output, first], { axis: attr.int(1) }, 'features/first_token');
    pooledDims = [dims[0]!, dims[2]!];
  }
  info.set(pooled, { dtype: 'float32', dims: pooledDims });
  return pooled;
}

export async function readBackboneGraph(backbone: ImageBackbone): Promise<BackboneGraph> {
  const { spec } = backbone;
  const bytes = typeof spec.model === 'string' ? await readFile(spec.model) : spec.model;
  const model = await readTrainableModel(bytes, spec.origin);
  if (!model.graph.inputs.some((input) => input.name === backbone.inputName)) throw modelError(`the graph has no input ${backbone.inputName}`, spec.origin);
  // Only the input that carries the pixels is kept; the feature output is all that is needed.
  const features = poolInGraph(model, backbone.outputName, backbone.pooling);
  model.graph.outputs = [{ name: features, shape: model.info.get(features)!.dims! }];
  pruneToOutputs(model.graph);
  return { model, features, input: backbone.inputName, backbone };
}

/** The graph with `weights` substituted and its features output named `features`, serialised. */
export function fineTunedGraphBytes(source: BackboneGraph, weights: Map<string, Float32Array>, description: string): Uint8Array {
  const original = source.model.graph;
  const graph = graphLike(original);
  graph.inputs.push(...original.inputs);
  graph.nodes.push(...original.nodes);
  for (const [name, initializer] of original.initializers) {
    const updated = weights.get(name);
    if (updated && (initializer.dtype !== 'float32' || initializer.data.length !== updated.length)) throw modelError(`cannot write weight ${name} back into the graph`, source.model.origin);
    graph.initializers.set(name, updated ? { dtype: 'float32', dims: initializer.dims, data: updated } : initializer);
  }
  const dim = source.model.info.get(source.features)!.dims![1]!;
  if (source.features !== FEATURES_OUTPUT) {
    if (original.nodes.some((node) => node.outputs.includes(FEATURES_OUTPUT)) || original.initializers.has(FEATURES_OUTPUT)) {
      throw modelError(`the graph already has a tensor named "${FEATURES_OUTPUT}"`, source.model.origin);
    }
    graph.nodes.push({ name: graph.uniqueName(`${FEATURES_OUTPUT}/Identity`), op: 'Identity', inputs: [source.features], outputs: [FEATURES_OUTPUT], attributes: {} });
  }
  graph.outputs = [{ name: FEATURES_OUTPUT, shape: [-1, dim] }];
  return encodeModel(graph, 'fine-tuned backbone', description, { producer: 'headstart fine-tune' });
}

/** Opens a fine-tuned graph as a backbone with the original's preprocessing and identity. */
export async function openFineTunedBackbone(original: ImageBackbone, bytes: Uint8Array, threads?: number): Promise<ImageBackbone> {
  return ImageBackbone.open(
    {
      ...original.spec,
      model: bytes,
      sha256: sha256(bytes),
      inputName: original.inputName,
      outputName: FEATURES_OUTPUT,
      pooling: 'none',
    },
    threads,
  );
}
