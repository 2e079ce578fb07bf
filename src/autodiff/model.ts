/**
 * An ONNX model read for training: decoded into an `OnnxGraph`, with the exporter habits that get
 * in the way of per-weight training undone, and every tensor's dtype and shape probed.
 */
import { decodeModel, OPSET_VERSION, type OnnxGraph } from '../backbones/tfjs/onnx-graph.js';
import { messageOf, modelError } from '../util/errors.js';
import { sortTopologically } from './graph-utils.js';
import { probeTensorInfo, type ProbeFeeds, type TensorInfoMap } from './tensor-info.js';

export const MIN_TRAINABLE_OPSET = 13;

export interface TrainableModel {
  graph: OnnxGraph;
  info: TensorInfoMap;
  origin: string;
}

/**
 * PyTorch's exporter deduplicates equal initializers and hands each parameter out through an
 * Identity node (all zero biases of a ViT share one tensor). Training must move them apart, so
 * each such Identity output becomes an initializer of its own.
 */
export function unshareInitializers(graph: OnnxGraph): void {
  const kept = graph.nodes.filter((node) => {
    const source = node.op === 'Identity' ? graph.initializers.get(node.inputs[0]!) : undefined;
    if (!source || !node.outputs[0] || graph.outputs.some((output) => output.name === node.outputs[0])) return true;
    graph.initializers.set(node.outputs[0], { ...source, dims: [...source.dims], data: source.data.slice() } as typeof source);
    return false;
  });
  graph.nodes.splice(0, graph.nodes.length, ...kept);
  const used = new Set(graph.nodes.flatMap((node) => node.inputs));
  for (const output of graph.outputs) used.add(output.name);
  for (const name of [...graph.initializers.keys()]) if (!used.has(name)) graph.initializers.delete(name);
}

export async function readTrainableModel(bytes: Uint8Array, origin: string, feeds?: ProbeFeeds): Promise<TrainableModel> {
  let graph: OnnxGraph;
  try {
    graph = decodeModel(bytes, origin);
  } catch (error) {
    throw modelError(`cannot read the ONNX graph: ${messageOf(error)}`, origin, error);
  }
  // Generated nodes use opset-17 forms; opsets 13–17 agree on every operator with a gradient rule
  // (axes as inputs for ReduceSum/Squeeze/Unsqueeze/Split, as attributes for ReduceMean).
  const opset = graph.sourceOpset ?? OPSET_VERSION;
  if (opset < MIN_TRAINABLE_OPSET || opset > OPSET_VERSION) {
    throw modelError(`the graph uses ONNX opset ${opset}; training needs opset ${MIN_TRAINABLE_OPSET} to ${OPSET_VERSION} (convert it with onnx.version_converter)`, origin);
  }
  unshareInitializers(graph);
  sortTopologically(graph, origin);
  return { graph, info: await probeTensorInfo(graph, origin, feeds), origin };
}

/**
 * Initializers that are weights: float tensors of two or more values (scalars are constants such
 * as ε, a ReLU6 bound or a GELU factor), except BatchNormalization's running statistics.
 */
export function weightInitializers(graph: OnnxGraph): string[] {
  const statistics = new Set(graph.nodes.filter((node) => node.op === 'BatchNormalization').flatMap((node) => node.inputs.slice(3, 5)));
  const used = new Set(graph.nodes.flatMap((node) => node.inputs));
  return [...graph.initializers]
    .filter(([name, initializer]) => initializer.dtype === 'float32' && initializer.data.length >= 2 && !statistics.has(name) && used.has(name))
    .map(([name]) => name);
}
