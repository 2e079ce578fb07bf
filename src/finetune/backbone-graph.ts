/**
 * The ONNX graph behind a backbone, read for training, and the fine-tuned backbone written back.
 * What differs per modality is a `BackboneGraph`: how a raw input becomes the graph's feeds, and
 * how the fine-tuned weights become a backbone again. Images (here): the graph with updated
 * weights, its features pooled in-graph into one rank-2 output named `features`, so the file is a
 * complete, portable feature extractor. Text transformers: `text-graph.ts`.
 */
import { readFile } from 'node:fs/promises';
import type { AugmentationView, Backbone } from '../backbones/backbone.js';
import { ImageBackbone } from '../backbones/image-backbone.js';
import { ort, stack, type Pooling } from '../backbones/onnx-session.js';
import { attr, encodeModel, type OnnxGraph } from '../backbones/tfjs/onnx-graph.js';
import { readTrainableModel, type TrainableModel } from '../autodiff/model.js';
import { pruneToOutputs } from '../autodiff/graph-utils.js';
import { graphLike } from '../autodiff/partition.js';
import type { Dataset } from '../data/dataset.js';
import { DEFAULT_IMAGE_AUGMENTATION } from '../data/image-decode.js';
import { modelError, usageError } from '../util/errors.js';
import { sha256 } from '../util/hash.js';
import type { UnfreezeSpec } from './fine-tune.js';

/** Name of the pooled feature output of a fine-tuned backbone graph. */
export const FEATURES_OUTPUT = 'features';

/** A backbone's graph opened for fine-tuning: the modality hook `fineTuneBackbone` works through. */
export interface BackboneGraph<Input = unknown, Prepared = unknown> {
  model: TrainableModel;
  /** The rank-2 [batch, dim] feature tensor (pooled in-graph when the backbone pools in JS). */
  features: string;
  /** The backbone it was read from (its reference keys the activation cache). */
  backbone: Backbone<Input, Prepared>;
  /** Everything that decides the graph's feeds: the backbone's preprocessing, plus e.g. a fixed sequence length. */
  preprocessing: object;
  /** The modality's own defaults where `FINE_TUNE_DEFAULTS` does not fit it. */
  defaults?: { unfreeze?: UnfreezeSpec; discriminativeFactor?: number };
  /** Augmentation settings when fine-tuning asks for views without any (undefined: the modality has none). */
  defaultAugmentation?: object;
  prepare(input: Input, view?: AugmentationView): Promise<Prepared>;
  /** The graph inputs for a batch of prepared inputs. */
  feeds(batch: Prepared[]): Record<string, ort.Tensor>;
  /** The graph with `weights` substituted, serialised as the fine-tuned backbone's file. */
  write(weights: Map<string, Float32Array>, description: string): Uint8Array;
  /** Opens written bytes as a backbone with the original's preprocessing and identity. */
  open(bytes: Uint8Array, threads?: number): Promise<Backbone<Input, unknown>>;
}

/**
 * The graph of a backbone that can be fine-tuned, or a usage error naming why not. `dataset` is
 * the training data (text fixes its padded sequence length from it).
 */
export async function openBackboneGraph(backbone: Backbone<unknown, unknown>, dataset: Dataset<unknown>): Promise<BackboneGraph> {
  if (backbone instanceof ImageBackbone) return readBackboneGraph(backbone) as Promise<BackboneGraph>;
  if (backbone.reference.modality === 'text') {
    const { readTextBackboneGraph } = await import('./text-graph.js');
    return readTextBackboneGraph(backbone, dataset as Dataset<string>) as Promise<BackboneGraph>;
  }
  throw unfreezable(backbone);
}

/** Refuses backbones with no ONNX graph to train, before any work is done. */
export async function checkUnfreezable(backbone: Backbone<unknown, unknown>): Promise<void> {
  if (backbone instanceof ImageBackbone) return;
  if (backbone.reference.modality === 'text') {
    const { checkTextUnfreezable } = await import('./text-graph.js');
    return checkTextUnfreezable(backbone);
  }
  throw unfreezable(backbone);
}

function unfreezable(backbone: Backbone<unknown, unknown>) {
  return usageError(`--unfreeze: fine-tuning inside the backbone needs an ONNX image backbone or a transformer text encoder; ${backbone.reference.id} is a ${backbone.reference.modality} backbone without one`);
}

/** Appends the pooling `ImageBackbone` does in JavaScript, so the graph itself outputs the features. */
export function poolInGraph(model: TrainableModel, output: string, pooling: Pooling): string {
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

export async function readBackboneGraph(backbone: ImageBackbone): Promise<BackboneGraph<Uint8Array, Float32Array>> {
  const { spec } = backbone;
  const bytes = typeof spec.model === 'string' ? await readFile(spec.model) : spec.model;
  const model = await readTrainableModel(bytes, spec.origin);
  if (!model.graph.inputs.some((input) => input.name === backbone.inputName)) throw modelError(`the graph has no input ${backbone.inputName}`, spec.origin);
  // Only the input that carries the pixels is kept; the feature output is all that is needed.
  const features = poolInGraph(model, backbone.outputName, backbone.pooling);
  model.graph.outputs = [{ name: features, shape: model.info.get(features)!.dims! }];
  pruneToOutputs(model.graph);
  const { width, height, layout } = backbone.preprocessing;
  const graph: BackboneGraph<Uint8Array, Float32Array> = {
    model,
    features,
    backbone,
    preprocessing: backbone.preprocessing,
    defaultAugmentation: DEFAULT_IMAGE_AUGMENTATION,
    prepare: (input, view) => backbone.prepare(input, view),
    feeds: (batch) => ({
      [backbone.inputName]: new ort.Tensor('float32', stack(batch), layout === 'NCHW' ? [batch.length, 3, height, width] : [batch.length, height, width, 3]),
    }),
    write: (weights, description) => fineTunedGraphBytes(graph, weights, description),
    open: (bytes, threads) => openFineTunedBackbone(backbone, bytes, threads),
  };
  return graph;
}

/** A copy of the model's graph (inputs, nodes, outputs) with `weights` substituted for their initializers. */
export function graphWithWeights(model: TrainableModel, weights: Map<string, Float32Array>): OnnxGraph {
  const original = model.graph;
  const graph = graphLike(original);
  graph.inputs.push(...original.inputs);
  graph.nodes.push(...original.nodes);
  graph.outputs = [...original.outputs];
  for (const [name, initializer] of original.initializers) {
    const updated = weights.get(name);
    if (updated && (initializer.dtype !== 'float32' || initializer.data.length !== updated.length)) throw modelError(`cannot write weight ${name} back into the graph`, model.origin);
    graph.initializers.set(name, updated ? { dtype: 'float32', dims: initializer.dims, data: updated } : initializer);
  }
  return graph;
}

/** The graph with `weights` substituted and its features output named `features`, serialised. */
export function fineTunedGraphBytes(source: Pick<BackboneGraph, 'model' | 'features'>, weights: Map<string, Float32Array>, description: string): Uint8Array {
  const original = source.model.graph;
  const graph = graphWithWeights(source.model, weights);
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
