/**
 * Blocks of a network, read off the graph's structure: residual blocks (ResNet, MobileNetV2's
 * inverted residuals) and transformer sub-blocks (attention, MLP) end where a residual connection
 * merges back into the one tensor everything flows through. "Unfreeze the last N blocks" trains
 * the weights of the N blocks nearest the output.
 */
import type { GraphNode } from '../backbones/tfjs/onnx-graph.js';
import { modelError } from '../util/errors.js';
import { nodesNeededFor } from './graph-utils.js';
import type { TrainableModel } from './model.js';
import { weightInitializers } from './model.js';

export interface Block {
  /** 0 = nearest the input. */
  index: number;
  /** Name of the block's first node carrying a weight (for reports). */
  name: string;
  /** The tensor the block starts from (a graph input for the first block). */
  input: string;
  nodes: GraphNode[];
  /** Weight initializers the block's nodes use. */
  weights: string[];
}

/**
 * Walks the data path in graph order; a tensor is a cut when it is the only live activation.
 * Between cuts lie segments; a segment containing a node that joins two activations (a residual
 * Add, attention's q·k) is a merging segment. A block closes at the end of a merging segment once
 * it holds weights; the segments after the last closed block form the top block. Shape-only values
 * (Shape → Gather → Concat) are not activations.
 */
export function findBlocks(model: TrainableModel, output: string): Block[] {
  const { graph, info } = model;
  const nodes = nodesNeededFor(graph.nodes, [output]);
  const isActivation = (tensor: string) => {
    const dtype = info.get(tensor)?.dtype;
    return (dtype === 'float32' || dtype === 'float64') && !graph.initializers.has(tensor);
  };
  const weights = new Set(weightInitializers(graph));
  const inputs = new Set(graph.inputs.map((input) => input.name));
  const fromInputs = new Set(inputs);
  const fromWeights = new Set(weights);
  for (const node of nodes) {
    const weighted = node.inputs.some((input) => fromWeights.has(input));
    for (const out of node.outputs) if (out && weighted) fromWeights.add(out);
    if (node.op === 'Shape' || node.op === 'Size') continue;
    if (node.inputs.some((input) => fromInputs.has(input))) for (const out of node.outputs) if (out && isActivation(out)) fromInputs.add(out);
  }
  // The data path: activations computed from the inputs and some weight. A mask computed from the
  // inputs alone (an attention-mask bias, pooling's token weights) runs beside it to the end and
  // would otherwise keep every tensor from being the only live one.
  const data = new Set([...fromInputs].filter((tensor) => !inputs.has(tensor) && fromWeights.has(tensor)));
  // A graph input is on it when a node reads it into the data path (the mask input is not).
  for (const node of nodes) if (node.outputs.some((out) => data.has(out))) for (const input of node.inputs) if (inputs.has(input)) data.add(input);
  const remaining = new Map<string, number>();
  for (const node of nodes) for (const input of new Set(node.inputs)) if (data.has(input)) remaining.set(input, (remaining.get(input) ?? 0) + 1);
  remaining.set(output, (remaining.get(output) ?? 0) + 1);

  const live = new Set(graph.inputs.map((input) => input.name).filter((name) => remaining.has(name)));
  const blocks: Block[] = [];
  let current: GraphNode[] = [];
  let currentInput = [...live][0] ?? graph.inputs[0]?.name ?? '';
  let segmentMerges = false;
  const weightsOf = (list: GraphNode[]) => [...new Set(list.flatMap((node) => node.inputs.filter((input) => weights.has(input))))];
  for (const node of nodes) {
    const dataInputs = [...new Set(node.inputs.filter((input) => data.has(input)))];
    if (dataInputs.length >= 2) segmentMerges = true;
    for (const input of dataInputs) {
      const left = remaining.get(input)! - 1;
      remaining.set(input, left);
      if (left === 0) live.delete(input);
    }
    for (const out of node.outputs) if (data.has(out) && (remaining.get(out) ?? 0) > 0) live.add(out);
    current.push(node);
    if (live.size !== 1) continue;
    const cut = [...live][0]!;
    if (segmentMerges && weightsOf(current).length > 0 && cut !== output) {
      blocks.push(makeBlock(blocks.length, currentInput, current, weightsOf(current)));
      current = [];
      currentInput = cut;
    }
    segmentMerges = false;
  }
  if (current.length > 0) {
    const tail = weightsOf(current);
    if (tail.length > 0 || blocks.length === 0) blocks.push(makeBlock(blocks.length, currentInput, current, tail));
    else {
      const last = blocks[blocks.length - 1]!;
      last.nodes.push(...current);
    }
  }
  if (blocks.every((block) => block.weights.length === 0)) throw modelError('the graph has no weights to train', model.origin);
  return blocks;
}

function makeBlock(index: number, input: string, nodes: GraphNode[], weights: string[]): Block {
  const named = nodes.find((node) => node.inputs.some((i) => weights.includes(i))) ?? nodes[0]!;
  return { index, name: named.name, input, nodes, weights };
}

/** The weights of the last `count` blocks ('all': every block). */
export function weightsOfTopBlocks(blocks: Block[], count: number | 'all'): string[] {
  const chosen = count === 'all' ? blocks : blocks.slice(Math.max(0, blocks.length - count));
  return chosen.flatMap((block) => block.weights);
}

/** The block each weight belongs to (its first use), counted from the top: 0 = the last block. */
export function depthFromTop(blocks: Block[]): Map<string, number> {
  const depth = new Map<string, number>();
  for (const block of blocks) for (const weight of block.weights) if (!depth.has(weight)) depth.set(weight, blocks.length - 1 - block.index);
  return depth;
}
