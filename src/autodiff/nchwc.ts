/**
 * Depthwise convolutions whose weights are graph inputs, run in onnxruntime's blocked-channel
 * (NCHWc) layout.
 *
 * onnxruntime rewrites a Conv into its fast `com.microsoft.nchwc` form only when the weights are
 * constant initializers, because it reorders them once at load time. In a training graph every
 * trained weight is an input, so each depthwise Conv falls back to the generic grouped kernel,
 * 3–4× slower than PyTorch's (measured: [32, 960, 7, 7] with a 3×3 kernel, 22.8 ms generic against
 * 7.9 ms NCHWc including the layout changes). Here the reordering is written into the graph itself
 * (Reshape + Transpose of the weights, ReorderInput / ReorderOutput around the convolution), so
 * the NCHWc kernel runs on weights that change every step.
 *
 * The block size is the CPU's SIMD width in floats (16 with AVX-512, 8 with AVX2), read from
 * onnxruntime at run time, and the path is only used after a probe has checked it against the plain
 * convolution; without it (another CPU, another onnxruntime build) graphs stay as they are.
 */
import { attr, encodeModel, OnnxGraph, type GraphNode } from '../backbones/tfjs/onnx-graph.js';
import { ort } from '../backbones/onnx-session.js';
import type { TensorInfoMap } from './tensor-info.js';

const NCHWC = 'com.microsoft.nchwc';

let probed: Promise<number | undefined> | undefined;

/**
 * onnxruntime's NCHWc block size on this machine, or undefined when its NCHWc kernels are not
 * available or disagree with the plain convolution. Probed once per process.
 */
export function nchwcBlockSize(): Promise<number | undefined> {
  probed ??= probeBlockSize().catch(() => undefined);
  return probed;
}

async function probeBlockSize(): Promise<number | undefined> {
  // ReorderInput pads the channels up to a whole block (it takes multiples of 4): four in, one block out.
  const layout = new OnnxGraph();
  layout.inputs.push({ name: 'x', shape: [1, 4, 1, 1] });
  layout.nodes.push({ name: 'reorder', op: 'ReorderInput', domain: NCHWC, inputs: ['x'], outputs: ['y'], attributes: {} });
  layout.outputs = [{ name: 'y', shape: [], unknownShape: true }];
  const block = await runOnce(layout, { x: new ort.Tensor('float32', Float32Array.of(1, 2, 3, 4), [1, 4, 1, 1]) }).then((out) => out.dims[1]);
  if (!block || block < 4) return undefined;

  // The rewritten depthwise convolution must give what the plain one gives.
  const channels = 2 * block;
  const plain = new OnnxGraph();
  plain.inputs.push({ name: 'x', shape: [2, channels, 5, 4] }, { name: 'w', shape: [channels, 1, 3, 3] });
  plain.nodes.push({ name: 'conv', op: 'Conv', inputs: ['x', 'w'], outputs: ['y'], attributes: { group: attr.int(channels), pads: attr.ints([1, 0, 1, 2]) } });
  plain.outputs = [{ name: 'y', shape: [], unknownShape: true }];
  const info: TensorInfoMap = new Map([['w', { dtype: 'float32', dims: [channels, 1, 3, 3] }]]);
  const blocked = new OnnxGraph();
  blocked.inputs.push(...plain.inputs);
  blocked.nodes.push(...plain.nodes.map((node) => ({ ...node })));
  blocked.outputs = plain.outputs;
  if (useNchwcDepthwise(blocked, info, block) !== 1) return undefined;
  const x = Float32Array.from({ length: 2 * channels * 20 }, (_, i) => Math.sin(i * 0.37));
  const w = Float32Array.from({ length: channels * 9 }, (_, i) => Math.cos(i * 0.91));
  const feeds = () => ({ x: new ort.Tensor('float32', x, [2, channels, 5, 4]), w: new ort.Tensor('float32', w, [channels, 1, 3, 3]) });
  const [expected, actual] = [await runOnce(plain, feeds()), await runOnce(blocked, feeds())];
  const a = expected.data as Float32Array;
  const b = actual.data as Float32Array;
  if (a.length !== b.length || a.some((value, i) => Math.abs(value - b[i]!) > 1e-4)) return undefined;
  return block;
}

async function runOnce(graph: OnnxGraph, feeds: Record<string, ort.Tensor>): Promise<ort.Tensor> {
  const session = await ort.InferenceSession.create(encodeModel(graph, 'nchwc_probe', 'probe', { producer: 'headstart autodiff' }), { intraOpNumThreads: 1 });
  try {
    return (await session.run(feeds))['y']!;
  } finally {
    await session.release();
  }
}

/**
 * Rewrites, in place, the convolutions onnxruntime's NCHWc kernels run faster, when their weights
 * are not constant: every depthwise Conv (one input and one output channel per group) whose channel
 * count is a whole number of blocks, and every ungrouped Conv with a kernel larger than 1×1 whose
 * input and output channels are (a 3×3 conv of [32, 512, 7, 7] → 512: 55.9 ms plain, 44.3 ms
 * NCHWc with the layout changes; 1×1 convolutions gain nothing and stay plain). Each becomes
 * ReorderInput → NCHWc Conv on weights reordered in the graph → ReorderOutput. The weights' shape
 * must be in `info` (a depthwise kernel's height may be -1: the depthwise weight gradient's kernel
 * grows with the batch). Returns how many were rewritten.
 */
export function useNchwcDepthwise(graph: OnnxGraph, info: TensorInfoMap, block: number): number {
  const rewritten: GraphNode[] = [];
  let count = 0;
  const readers = new Map<string, GraphNode[]>();
  for (const node of graph.nodes) for (const input of node.inputs) readers.set(input, [...(readers.get(input) ?? []), node]);
  const fused = new Set<GraphNode>();
  for (const node of graph.nodes) {
    if (fused.has(node)) continue;
    const weightDims = node.op === 'Conv' && !node.domain && !graph.initializers.has(node.inputs[1]!) ? info.get(node.inputs[1]!)?.dims : undefined;
    const layout = weightDims?.length === 4 ? blockedLayout(node, weightDims, block) : undefined;
    if (!layout) {
      rewritten.push(node);
      continue;
    }
    count++;
    const name = (hint: string) => graph.uniqueName(`${node.name}/nchwc_${hint}`);
    const [x, w, bias] = node.inputs;
    const blockedInput = name('input');
    const shape = (values: number[]) => graph.addInt64Initializer(name('shape'), values);
    const grouped = name('weight_grouped');
    const interleaved = name('weight_interleaved');
    const blockedWeight = name('weight');
    const blockedOutput = name('output');
    // A Relu or ReLU6 that only this convolution feeds runs inside the NCHWc kernel (its `activation`),
    // as onnxruntime does in inference graphs; the reordered output then carries the activation's name.
    // Measured (CPU time per step, interleaved, load 17–23): MobileNetV2 last 2 blocks 148 → 139 ms, all 2304 → 2122 ms.
    const activation = fusableActivation(graph, readers, node);
    if (activation) fused.add(activation.node);
    const activationAttributes = activation ? { activation: attr.string(activation.name), ...(activation.params ? { activation_params: attr.floats(activation.params) } : {}) } : {};
    rewritten.push(
      { name: name('reorder_input'), op: 'ReorderInput', domain: NCHWC, inputs: [x!], outputs: [blockedInput], attributes: {} },
      { name: name('group_weight'), op: 'Reshape', inputs: [w!, shape(layout.grouped)], outputs: [grouped], attributes: {} },
      { name: name('interleave_weight'), op: 'Transpose', inputs: [grouped], outputs: [interleaved], attributes: { perm: attr.ints(layout.perm) } },
      { name: name('shape_weight'), op: 'Reshape', inputs: [interleaved, shape(layout.dims)], outputs: [blockedWeight], attributes: {} },
      { name: name('conv'), op: 'Conv', domain: NCHWC, inputs: bias ? [blockedInput, blockedWeight, bias] : [blockedInput, blockedWeight], outputs: [blockedOutput], attributes: { ...node.attributes, ...activationAttributes } },
      { name: name('reorder_output'), op: 'ReorderOutput', domain: NCHWC, inputs: [blockedOutput], outputs: activation ? activation.node.outputs : node.outputs, attributes: { channels: attr.int(layout.outputChannels) } },
    );
  }
  graph.nodes.splice(0, graph.nodes.length, ...rewritten);
  // The fused Clips' bounds, unless something else reads them (onnxruntime warns about unused initializers).
  const used = new Set(graph.nodes.flatMap((node) => node.inputs));
  for (const node of fused) for (const input of node.inputs.slice(1)) if (!used.has(input)) graph.initializers.delete(input);
  return count;
}

/** The Relu or Clip (constant scalar bounds) that is the only reader of `conv`'s output, if any. */
function fusableActivation(graph: OnnxGraph, readers: Map<string, GraphNode[]>, conv: GraphNode): { node: GraphNode; name: string; params?: number[] } | undefined {
  const output = conv.outputs[0]!;
  const only = readers.get(output);
  if (only?.length !== 1 || graph.outputs.some((o) => o.name === output)) return undefined;
  const [next] = only as [GraphNode];
  if (next.domain || next.inputs[0] !== output) return undefined;
  if (next.op === 'Relu') return { node: next, name: 'Relu' };
  if (next.op !== 'Clip' || next.inputs.length !== 3) return undefined;
  const bound = (name: string) => {
    const value = graph.initializers.get(name);
    return value?.dtype === 'float32' && value.data.length === 1 ? Number(value.data[0]) : undefined;
  };
  const [min, max] = [bound(next.inputs[1]!), bound(next.inputs[2]!)];
  return min === undefined || max === undefined ? undefined : { node: next, name: 'Clip', params: [min, max] };
}

/**
 * How to reorder a convolution's OIHW weights for the NCHWc kernel, or undefined when it does not
 * take this convolution: depthwise → [O/block, I, H, W, block] (each block of output channels
 * innermost); ungrouped → [O/block, I/block, H, W, block_in, block_out].
 */
function blockedLayout(node: GraphNode, weightDims: number[], block: number): { grouped: number[]; perm: number[]; dims: number[]; outputChannels: number } | undefined {
  const [outputs, perGroup, height, width] = weightDims as [number, number, number, number];
  const group = node.attributes['group'];
  const groups = group?.kind === 'int' ? group.value : 1;
  if (!(outputs > 0) || outputs % block !== 0 || !(width > 0)) return undefined;
  if (groups === outputs && perGroup === 1) return { grouped: [outputs / block, block, -1], perm: [0, 2, 1], dims: [outputs, 1, -1, width], outputChannels: outputs };
  if (groups !== 1 || !(perGroup > 0) || perGroup % block !== 0 || !(height > 0) || height * width === 1) return undefined;
  return {
    grouped: [outputs / block, block, perGroup / block, block, height, width],
    perm: [0, 2, 4, 5, 3, 1],
    dims: [outputs, perGroup, height, width],
    outputChannels: outputs,
  };
}
