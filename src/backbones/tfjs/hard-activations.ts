/**
 * MobileNetV3's hard activations as ONNX operators. TF.js graphs spell them out: hard-swish as
 * `x · k · relu6(x + 3)` and hard-sigmoid as `relu6(x + 3) · k`, with k the float16-rounded 1/6
 * (0.1666259765625), so several elementwise nodes with scalar operands sit between convolutions.
 * onnxruntime runs a Conv followed by HardSwish / HardSigmoid as one fused kernel in its NCHWc
 * layout, but scalar Adds and Muls make it leave that layout (a reorder out and back per node).
 *
 * `fuseHardActivations` rewrites the patterns exactly: x·k·relu6(x+3) = 6k·HardSwish(x) and
 * relu6(x+3)·k = 6k·HardSigmoid(x) (α = 1/6, β = ½); the factor 6k (≠ 1 here) stays as a scalar Mul.
 * `sinkScalarFactors` then moves scalar Muls forward into the convolutions they reach through
 * linear steps (Conv(s·x) = Conv with s·W), so the factor costs nothing at run time.
 */
import { attr, type Attribute, type GraphNode, type OnnxGraph } from './onnx-graph.js';

interface Use {
  node: GraphNode;
  index: number;
}

function consumers(graph: OnnxGraph): Map<string, Use[]> {
  const uses = new Map<string, Use[]>();
  for (const node of graph.nodes) node.inputs.forEach((input, index) => input && uses.set(input, [...(uses.get(input) ?? []), { node, index }]));
  return uses;
}

function producers(graph: OnnxGraph): Map<string, GraphNode> {
  const byOutput = new Map<string, GraphNode>();
  for (const node of graph.nodes) for (const output of node.outputs) byOutput.set(output, node);
  return byOutput;
}

function scalarValue(graph: OnnxGraph, name: string | undefined): number | undefined {
  const values = name ? graph.floatInitializer(name) : undefined;
  return values?.length === 1 ? values[0] : undefined;
}

/** For Mul / Div by a scalar constant: the factor it applies to its other input, and that input's index. */
function scalarFactor(graph: OnnxGraph, node: GraphNode): { factor: number; operand: number } | undefined {
  if (node.op === 'Mul') {
    for (const operand of [0, 1]) {
      const value = scalarValue(graph, node.inputs[1 - operand]);
      if (value !== undefined && scalarValue(graph, node.inputs[operand]) === undefined) return { factor: value, operand };
    }
  }
  if (node.op === 'Div') {
    const value = scalarValue(graph, node.inputs[1]);
    if (value !== undefined && value !== 0) return { factor: 1 / value, operand: 0 };
  }
  return undefined;
}

function isGraphOutput(graph: OnnxGraph, tensor: string): boolean {
  return graph.outputs.some((output) => output.name === tensor);
}

/** The only reader of `tensor`, when it has exactly one and is not a graph output. */
function soleUse(graph: OnnxGraph, uses: Map<string, Use[]>, tensor: string): Use | undefined {
  const list = uses.get(tensor);
  return list?.length === 1 && !isGraphOutput(graph, tensor) ? list[0] : undefined;
}

/** relu6(x + 3): Clip(Add(x, 3), 0, 6), the Add read by the Clip alone. Returns x. */
function reluSixOfShifted(graph: OnnxGraph, clip: GraphNode, byOutput: Map<string, GraphNode>, uses: Map<string, Use[]>): { x: string; add: GraphNode } | undefined {
  if (clip.op !== 'Clip' || scalarValue(graph, clip.inputs[1]) !== 0 || scalarValue(graph, clip.inputs[2]) !== 6) return undefined;
  const add = byOutput.get(clip.inputs[0]!);
  if (add?.op !== 'Add' || !soleUse(graph, uses, add.outputs[0]!)) return undefined;
  const shift = add.inputs.findIndex((input) => scalarValue(graph, input) === 3);
  if (shift < 0) return undefined;
  const x = add.inputs[1 - shift]!;
  return scalarValue(graph, x) === undefined ? { x, add } : undefined;
}

/** Follows scalar Mul / Div nodes that are each the only reader of the previous: the product of their factors. */
function scalarChainAfter(graph: OnnxGraph, tensor: string, uses: Map<string, Use[]>): { end: string; factor: number; nodes: GraphNode[] } {
  let end = tensor;
  let factor = 1;
  const nodes: GraphNode[] = [];
  for (;;) {
    const use = soleUse(graph, uses, end);
    const scaled = use && scalarFactor(graph, use.node);
    if (!use || !scaled || scaled.operand !== use.index) return { end, factor, nodes };
    factor *= scaled.factor;
    nodes.push(use.node);
    end = use.node.outputs[0]!;
  }
}

/** `tensor` as `x` times scalar factors applied by nodes only this pattern reads, if it is one. */
function scaledCopyOf(graph: OnnxGraph, tensor: string, x: string, byOutput: Map<string, GraphNode>, uses: Map<string, Use[]>): { factor: number; nodes: GraphNode[] } | undefined {
  let current = tensor;
  let factor = 1;
  const nodes: GraphNode[] = [];
  while (current !== x) {
    const node = byOutput.get(current);
    const scaled = node && scalarFactor(graph, node);
    if (!node || !scaled || !soleUse(graph, uses, current)) return undefined;
    factor *= scaled.factor;
    nodes.push(node);
    current = node.inputs[scaled.operand]!;
  }
  return { factor, nodes };
}

/** Replaces `removed` by `added` at the position of the first removed node (the graph stays topologically sorted). */
function replaceNodes(graph: OnnxGraph, removed: GraphNode[], added: GraphNode[]): void {
  const at = Math.min(...removed.map((node) => graph.nodes.indexOf(node)));
  const gone = new Set(removed);
  const kept = graph.nodes.filter((node, i) => i < at && !gone.has(node));
  const rest = graph.nodes.filter((node, i) => i >= at && !gone.has(node));
  graph.nodes.splice(0, graph.nodes.length, ...kept, ...added, ...rest);
}

function activationNodes(graph: OnnxGraph, op: 'HardSwish' | 'HardSigmoid', x: string, factor: number, output: string): GraphNode[] {
  const attributes: Record<string, Attribute> = op === 'HardSigmoid' ? { alpha: attr.float(1 / 6), beta: attr.float(0.5) } : {};
  if (factor === 1) return [{ name: output, op, inputs: [x], outputs: [output], attributes }];
  const activated = graph.uniqueName(`${output}/${op === 'HardSwish' ? 'hard_swish' : 'hard_sigmoid'}`);
  return [
    { name: activated, op, inputs: [x], outputs: [activated], attributes },
    { name: output, op: 'Mul', inputs: [activated, graph.addScalar(`${output}/factor`, factor)], outputs: [output], attributes: {} },
  ];
}

/** Rewrites TF.js's spelled-out hard-swish and hard-sigmoid as HardSwish / HardSigmoid (times a scalar where k ≠ 1/6). */
export function fuseHardActivations(graph: OnnxGraph): number {
  let fused = 0;
  for (const clip of [...graph.nodes]) {
    if (!graph.nodes.includes(clip)) continue;
    const byOutput = producers(graph);
    const uses = consumers(graph);
    const shifted = reluSixOfShifted(graph, clip, byOutput, uses);
    if (!shifted) continue;
    const { x, add } = shifted;
    const chain = scalarChainAfter(graph, clip.outputs[0]!, uses);
    const next = soleUse(graph, uses, chain.end);
    const other = next?.node.op === 'Mul' ? next.node.inputs[1 - next.index]! : undefined;
    const copy = other !== undefined ? scaledCopyOf(graph, other, x, byOutput, uses) : undefined;
    if (next && copy) {
      // x · relu6(x + 3) · k = 6k · x · relu6(x + 3) / 6 = 6k · HardSwish(x)
      const factor = 6 * chain.factor * copy.factor;
      replaceNodes(graph, [add, clip, ...chain.nodes, ...copy.nodes, next.node], activationNodes(graph, 'HardSwish', x, factor, next.node.outputs[0]!));
    } else if (chain.nodes.length > 0) {
      // relu6(x + 3) · k = 6k · HardSigmoid(x) with α = 1/6, β = ½
      replaceNodes(graph, [add, clip, ...chain.nodes], activationNodes(graph, 'HardSigmoid', x, 6 * chain.factor, chain.end));
    } else {
      continue;
    }
    fused++;
  }
  return fused;
}

/** Ops through which a positive scalar factor passes unchanged to the output: f(s·x) = s·f(x). */
const HOMOGENEOUS = new Set(['GlobalAveragePool', 'AveragePool', 'Relu', 'MaxPool', 'GlobalMaxPool']);

/**
 * The convolutions a factor on `tensor` reaches through linear steps, one entry per path (a Mul of
 * two scaled tensors scales by s², and reaches its convolutions twice); undefined when a path ends
 * elsewhere (an Add, a graph output, a nonlinearity) or a reached Conv shares its weights.
 */
function convolutionsReached(graph: OnnxGraph, tensor: string, factor: number, uses: Map<string, Use[]>, depth = 0): GraphNode[] | undefined {
  if (isGraphOutput(graph, tensor) || depth > 64) return undefined;
  const reached: GraphNode[] = [];
  for (const { node, index } of uses.get(tensor) ?? []) {
    if (node.op === 'Conv' && index === 0) {
      const weights = node.inputs[1]!;
      if (!graph.floatInitializer(weights) || uses.get(weights)?.length !== 1) return undefined;
      reached.push(node);
      continue;
    }
    const passes = node.op === 'Mul' || (HOMOGENEOUS.has(node.op) && factor > 0) || (node.op === 'Resize' && index === 0 && linearResize(node));
    if (!passes) return undefined;
    const further = convolutionsReached(graph, node.outputs[0]!, factor, uses, depth + 1);
    if (!further) return undefined;
    reached.push(...further);
  }
  return reached;
}

function linearResize(node: GraphNode): boolean {
  const mode = node.attributes['mode'];
  return !mode || (mode.kind === 'string' && ['nearest', 'linear'].includes(mode.value));
}

/** Moves Mul-by-scalar nodes into the weights of the convolutions downstream, where every path reaches one. */
export function sinkScalarFactors(graph: OnnxGraph): number {
  let sunk = 0;
  for (const node of [...graph.nodes]) {
    const scaled = scalarFactor(graph, node);
    if (node.op !== 'Mul' || !scaled || !Number.isFinite(scaled.factor)) continue;
    const uses = consumers(graph);
    const output = node.outputs[0]!;
    const reached = convolutionsReached(graph, output, scaled.factor, uses);
    if (!reached || reached.length === 0) continue;
    for (const conv of reached) {
      const weights = graph.floatInitializer(conv.inputs[1]!)!;
      for (let i = 0; i < weights.length; i++) weights[i] = weights[i]! * scaled.factor;
    }
    const input = node.inputs[scaled.operand]!;
    for (const { node: reader, index } of uses.get(output) ?? []) reader.inputs[index] = input;
    graph.nodes.splice(graph.nodes.indexOf(node), 1);
    sunk++;
  }
  return sunk;
}
