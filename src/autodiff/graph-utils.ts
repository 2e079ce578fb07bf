/** Small graph queries shared by the autodiff passes. */
import type { GraphNode, OnnxGraph } from '../backbones/tfjs/onnx-graph.js';
import { modelError } from '../util/errors.js';

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
