/**
 * Splits a model at the trainable weights: the frozen prefix (everything the trainable part reads
 * that does not depend on a trainable weight) runs once per example and its outputs — the
 * frontier — are cached; the trainable suffix reads the frontier and is all the training step runs.
 *
 * Shape arithmetic that exporters derive from the input (Shape(x) → Gather → Concat → Reshape)
 * is copied into the suffix, with Shape(x) of a prefix tensor rebuilt from the frontier's batch
 * size and x's probed per-example dims, so the suffix needs nothing but per-example tensors.
 */
import { attr, OnnxGraph, type GraphNode } from '../backbones/tfjs/onnx-graph.js';
import { modelError } from '../util/errors.js';
import { GraphBuilder } from './builder.js';
import { nodesNeededFor } from './graph-utils.js';
import type { TrainableModel } from './model.js';
import { isPerExample, type TensorInfoMap } from './tensor-info.js';

export interface FrontierTensor {
  name: string;
  /** Per-example dims (without the batch axis). */
  dims: number[];
  /**
   * float32 activations, or int64 graph inputs the trainable part reads directly (token ids, when
   * the embedding tables train): cached as float32 rows, exact for ids below 2^24.
   */
  dtype: 'float32' | 'int64';
}

export interface Partition {
  /** Graph inputs → frontier; undefined when the frontier is the graph's own inputs. */
  prefix: OnnxGraph | undefined;
  /** Frontier (as graph inputs) → `output`, trainable weights still initializers. */
  suffix: OnnxGraph;
  frontier: FrontierTensor[];
  /** Tensor info for both graphs (the model's, plus rebuilt shape tensors). */
  info: TensorInfoMap;
}

/** A new graph that will never reuse a name of `source`. */
export function graphLike(source: OnnxGraph): OnnxGraph {
  const graph = new OnnxGraph();
  for (const name of source.initializers.keys()) graph.reserveName(name);
  for (const input of source.inputs) graph.reserveName(input.name);
  for (const node of source.nodes) {
    graph.reserveName(node.name);
    for (const name of [...node.inputs, ...node.outputs]) if (name) graph.reserveName(name);
  }
  return graph;
}

const copyNode = (node: GraphNode): GraphNode => ({ ...node, inputs: [...node.inputs], outputs: [...node.outputs], attributes: { ...node.attributes } });

/** Tensors whose values depend on the graph inputs' values (Shape and Size read only their shape). */
function dataDependentTensors(model: TrainableModel): Set<string> {
  const data = new Set(model.graph.inputs.map((input) => input.name));
  for (const node of model.graph.nodes) {
    if (node.op === 'Shape' || node.op === 'Size') continue;
    if (node.inputs.some((input) => data.has(input))) for (const output of node.outputs) if (output) data.add(output);
  }
  return data;
}

export function partitionModel(model: TrainableModel, output: string, trainable: readonly string[]): Partition {
  const { graph, origin } = model;
  const info: TensorInfoMap = new Map(model.info);
  const needed = nodesNeededFor(graph.nodes, [output]);
  const trainableSet = new Set(trainable);
  for (const name of trainable) if (!graph.initializers.has(name)) throw modelError(`"${name}" is not an initializer of the graph`, origin);

  // Everything downstream of a trainable weight is the suffix.
  const dependent = new Set(trainable);
  const suffixNodes = new Set<GraphNode>();
  for (const node of needed) {
    if (!node.inputs.some((input) => dependent.has(input))) continue;
    suffixNodes.add(node);
    for (const out of node.outputs) if (out) dependent.add(out);
  }
  if (!dependent.has(output)) throw modelError(`none of the trainable weights affects the output ${output}`, origin);

  const data = dataDependentTensors(model);
  const producer = new Map<string, GraphNode>();
  for (const node of needed) for (const out of node.outputs) producer.set(out, node);
  const frontier: string[] = [];
  const shapeRewrites: GraphNode[] = [];
  // Walk back from the suffix through constant and shape-only tensors, stopping at data tensors.
  const visited = new Set<string>();
  const pending = [...suffixNodes].flatMap((node) => node.inputs);
  while (pending.length > 0) {
    const tensor = pending.pop()!;
    if (!tensor || visited.has(tensor) || dependent.has(tensor) || graph.initializers.has(tensor)) continue;
    visited.add(tensor);
    if (data.has(tensor)) {
      frontier.push(tensor);
      continue;
    }
    const node = producer.get(tensor);
    if (!node) throw modelError(`tensor ${tensor} has no producer`, origin);
    if ((node.op === 'Shape' || node.op === 'Size') && data.has(node.inputs[0]!)) shapeRewrites.push(node);
    else {
      suffixNodes.add(node);
      pending.push(...node.inputs);
    }
  }
  for (const name of frontier) {
    if (!isPerExample(info.get(name))) {
      throw modelError(`cannot cache ${name} per example (shape [${info.get(name)?.dims}]): its first axis is not the batch; train more of the model`, origin);
    }
    const dtype = info.get(name)!.dtype;
    if (dtype !== 'float32' && !(dtype === 'int64' && graph.inputs.some((input) => input.name === name))) {
      throw modelError(`the frozen part hands ${dtype} tensor ${name} to the trainable part; only float32 activations (and int64 graph inputs) can be cached`, origin);
    }
  }
  const dtypeOf = (name: string) => info.get(name)!.dtype as FrontierTensor['dtype'];
  frontier.sort((a, b) => a.localeCompare(b));

  const suffix = graphLike(graph);
  for (const name of frontier) suffix.inputs.push({ name, shape: [-1, ...info.get(name)!.dims!.slice(1)], dtype: dtypeOf(name) });
  const builder = new GraphBuilder(suffix, info, 'frontier_shape/');
  for (const node of shapeRewrites) rebuildShape(builder, node, frontier, origin);
  const rebuilt = [...suffix.nodes];
  suffix.nodes.splice(0, suffix.nodes.length, ...rebuilt, ...needed.filter((node) => suffixNodes.has(node)).map(copyNode));
  for (const node of suffix.nodes) {
    for (const input of node.inputs) {
      const initializer = graph.initializers.get(input);
      if (initializer) suffix.initializers.set(input, initializer);
    }
  }
  for (const name of trainableSet) if (!suffix.initializers.has(name)) throw modelError(`the trainable weight ${name} does not affect the output ${output}`, origin);
  suffix.outputs = [{ name: output, shape: info.get(output)?.dims ?? [], dtype: info.get(output)?.dtype ?? 'float32' }];

  const inputNames = new Set(graph.inputs.map((input) => input.name));
  let prefix: OnnxGraph | undefined;
  if (!frontier.every((name) => inputNames.has(name))) {
    prefix = graphLike(graph);
    prefix.inputs.push(...graph.inputs);
    prefix.nodes.push(...nodesNeededFor(graph.nodes, frontier).map(copyNode));
    for (const node of prefix.nodes) for (const input of node.inputs) if (graph.initializers.has(input)) prefix.initializers.set(input, graph.initializers.get(input)!);
    // A frontier tensor that is also a graph input passes through unchanged.
    prefix.outputs = frontier.map((name) => ({
      name: inputNames.has(name) ? prefix!.addNode('Identity', [name], {}, `${name}/passthrough`) : name,
      shape: [-1, ...info.get(name)!.dims!.slice(1)],
      dtype: dtypeOf(name),
    }));
  }
  return { prefix, suffix, frontier: frontier.map((name) => ({ name, dims: info.get(name)!.dims!.slice(1), dtype: dtypeOf(name) })), info };
}

/**
 * Shape(x) / Size(x) of a prefix tensor x, rebuilt in the suffix from the batch size of a frontier
 * tensor and x's per-example dims (static by the probe).
 */
function rebuildShape(b: GraphBuilder, node: GraphNode, frontier: string[], origin: string): void {
  const x = node.inputs[0]!;
  const xInfo = b.info.get(x);
  if (!isPerExample(xInfo)) throw modelError(`node "${node.name}" reads the shape of ${x}, whose first axis is not the batch; train more of the model`, origin);
  const carrier = frontier[0];
  if (!carrier) throw modelError(`node "${node.name}" reads the shape of ${x} but no per-example tensor crosses into the trainable part`, origin);
  const batch = b.op('Slice', [b.shapeOf(carrier), b.int64s([0]), b.int64s([1])]);
  const rest = xInfo!.dims!.slice(1);
  let result: string;
  if (node.op === 'Size') {
    result = b.op('Mul', [b.op('Squeeze', [batch, b.int64s([0])]), b.constant('int64', [], [rest.reduce((p, d) => p * d, 1)])]);
  } else {
    const shape = rest.length > 0 ? b.op('Concat', [batch, b.int64s(rest)], { axis: attr.int(0) }) : batch;
    const start = node.attributes['start']?.kind === 'int' ? node.attributes['start'].value : 0;
    const end = node.attributes['end']?.kind === 'int' ? node.attributes['end'].value : undefined;
    result = start === 0 && end === undefined ? shape : b.op('Slice', [shape, b.int64s([start]), b.int64s([end ?? rest.length + 1])]);
  }
  b.graph.nodes.push({ name: b.graph.uniqueName(`${node.name}/rebuilt`), op: 'Identity', inputs: [result], outputs: [node.outputs[0]!], attributes: {} });
}
