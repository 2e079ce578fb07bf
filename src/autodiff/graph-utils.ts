/** Small graph queries shared by the autodiff passes. */
import type { GraphNode, Initializer, OnnxGraph } from '../backbones/tfjs/onnx-graph.js';
import { modelError } from '../util/errors.js';
import type { TensorInfoMap } from './tensor-info.js';

function producersOf(nodes: readonly GraphNode[]): Map<string, GraphNode> {
  const byOutput = new Map<string, GraphNode>();
  for (const node of nodes) for (const output of node.outputs) if (output) byOutput.set(output, node);
  return byOutput;
}

/** Sorts the nodes so every tensor is produced before it is used (ONNX requires it; exporters comply). */
export function sortTopologically(graph: OnnxGraph, origin: string): void {
  const available = new Set<string>([...graph.initializers.keys(), ...graph.inputs.map((input) => input.name), '']);
  const pending = [...graph.nodes];
  const sorted: GraphNode[] = [];
  while (pending.length > 0) {
    const before = sorted.length;
    for (let i = 0; i < pending.length; ) {
      const node = pending[i]!;
      if (node.inputs.every((input) => available.has(input))) {
        sorted.push(node);
        for (const output of node.outputs) available.add(output);
        pending.splice(i, 1);
      } else i++;
    }
    if (sorted.length === before) {
      const stuck = pending[0]!;
      throw modelError(`node "${stuck.name}" (${stuck.op}) uses ${stuck.inputs.filter((input) => !available.has(input)).join(', ')}, which nothing produces`, origin);
    }
  }
  graph.nodes.splice(0, graph.nodes.length, ...sorted);
}

/** The nodes `outputs` depend on, in graph order. */
export function nodesNeededFor(nodes: readonly GraphNode[], outputs: Iterable<string>): GraphNode[] {
  const byOutput = producersOf(nodes);
  const keep = new Set<GraphNode>();
  const pending = [...outputs];
  while (pending.length > 0) {
    const node = byOutput.get(pending.pop()!);
    if (!node || keep.has(node)) continue;
    keep.add(node);
    pending.push(...node.inputs.filter((input) => input));
  }
  return nodes.filter((node) => keep.has(node));
}

/** Drops nodes and initializers the graph outputs do not need. */
export function pruneToOutputs(graph: OnnxGraph): void {
  const kept = nodesNeededFor(graph.nodes, graph.outputs.map((output) => output.name));
  graph.nodes.splice(0, graph.nodes.length, ...kept);
  const used = new Set<string>(graph.outputs.map((output) => output.name));
  for (const node of kept) for (const input of node.inputs) used.add(input);
  for (const name of [...graph.initializers.keys()]) if (!used.has(name)) graph.initializers.delete(name);
}

export function elementCount(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** Element-wise operators that broadcast all their inputs against each other. */
const BROADCASTING = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Sum', 'Greater', 'Less', 'GreaterOrEqual', 'LessOrEqual', 'Equal', 'And', 'Or', 'Where']);

/** Operators whose output has the shape of their first input. */
const UNARY = new Set(['Sqrt', 'Neg', 'Exp', 'Log', 'Abs', 'Relu', 'Clip', 'Sigmoid', 'Tanh', 'Erf', 'Identity', 'Cast', 'CastLike', 'Reciprocal']);

/**
 * Gives every rank-0 operand of a broadcasting element-wise node the rank of the node's other
 * operands (shape [1, …, 1]), in place: the values are unchanged, but onnxruntime's CPU kernels take
 * a slow path for a rank-0 operand — a Mul of a [1280, 320, 1, 1] tensor by a rank-0 constant took
 * 6 ms, by a [1, 1, 1, 1] one 0.15 ms (measured, onnxruntime-node 1.30, 2 threads). Constants are
 * rewritten as constants, computed scalars get a Reshape. Needs the ranks of the other operands in
 * `info`; nodes where they are unknown are left as they are.
 */
export function matchScalarRanks(graph: OnnxGraph, info: TensorInfoMap): void {
  // Ranks the shape probe did not record, carried through element-wise nodes as the pass goes.
  const inferred = new Map<string, number>();
  const rankOf = (tensor: string) => info.get(tensor)?.dims?.length ?? graph.initializers.get(tensor)?.dims.length ?? inferred.get(tensor);
  const reshaped = new Map<string, string>();
  const rewritten: GraphNode[] = [];
  for (const node of graph.nodes) {
    const output = node.outputs[0];
    if (output && rankOf(output) === undefined && !node.domain) {
      const ranks = node.inputs.filter((input) => input).map(rankOf);
      if (UNARY.has(node.op) && ranks[0] !== undefined) inferred.set(output, ranks[0]);
      else if (BROADCASTING.has(node.op) && ranks.length > 0 && ranks.every((r) => r !== undefined)) inferred.set(output, Math.max(...(ranks as number[])));
    }
    if (BROADCASTING.has(node.op) && !node.domain) {
      const ranks = node.inputs.map((input) => (input ? rankOf(input) : undefined));
      const rank = Math.max(...ranks.map((r) => r ?? -1));
      if (rank > 0 && ranks.every((r, i) => r !== undefined || !node.inputs[i])) {
        node.inputs = node.inputs.map((input, i) => {
          if (!input || ranks[i] !== 0) return input;
          const key = `${input}|${rank}`;
          let name = reshaped.get(key);
          if (!name) {
            const dims = new Array<number>(rank).fill(1);
            const constant = graph.initializers.get(input);
            name = graph.uniqueName(`${input}/rank${rank}`);
            if (constant) graph.initializers.set(name, { ...constant, dims } as Initializer);
            else {
              const shape = graph.addInt64Initializer(`${name}/shape`, dims);
              rewritten.push({ name: graph.uniqueName(`${name}/Reshape`), op: 'Reshape', inputs: [input, shape], outputs: [name], attributes: {} });
            }
            info.set(name, { dtype: info.get(input)?.dtype ?? constant!.dtype, dims });
            reshaped.set(key, name);
          }
          return name;
        });
      }
    }
    rewritten.push(node);
  }
  graph.nodes.splice(0, graph.nodes.length, ...rewritten);
  // Constants every use of which now reads the reshaped copy.
  const used = new Set(graph.nodes.flatMap((node) => node.inputs));
  for (const output of graph.outputs) used.add(output.name);
  for (const key of reshaped.keys()) {
    const original = key.slice(0, key.lastIndexOf('|'));
    if (graph.initializers.has(original) && !used.has(original)) graph.initializers.delete(original);
  }
}
