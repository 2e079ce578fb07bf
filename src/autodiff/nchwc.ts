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
 * Rewrites, in place, every depthwise Conv (one input and one output channel per group) whose
 * weights are not constant and whose channel count is a whole number of blocks, into
 * ReorderInput → NCHWc Conv on the reordered weights → ReorderOutput. The weights' shape must be
 * in `info` (their kernel height may be -1: the depthwise weight gradient's kernel grows with the
 * batch). Returns how many were rewritten.
 */
export function useNchwcDepthwise(graph: OnnxGraph, info: TensorInfoMap, block: number): number {
  const rewritten: GraphNode[] = [];
  let count = 0;
  for (const node of graph.nodes) {
    const weightDims = node.op === 'Conv' && !node.domain ? info.get(node.inputs[1]!)?.dims : undefined;
    const channels = weightDims?.[0];
    const group = node.attributes['group'];
    const isDepthwise =
      weightDims?.length === 4 && weightDims[1] === 1 && channels !== undefined && channels > 0 && group?.kind === 'int' && group.value === channels && weightDims[3]! > 0;
    if (!isDepthwise || channels % block !== 0 || graph.initializers.has(node.inputs[1]!)) {
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
    // OIHW → [O/block, I, H, W, block]: each block of output channels interleaved innermost.
    rewritten.push(
      { name: name('reorder_input'), op: 'ReorderInput', domain: NCHWC, inputs: [x!], outputs: [blockedInput], attributes: {} },
      { name: name('group_weight'), op: 'Reshape', inputs: [w!, shape([channels / block, block, -1])], outputs: [grouped], attributes: {} },
      { name: name('interleave_weight'), op: 'Transpose', inputs: [grouped], outputs: [interleaved], attributes: { perm: attr.ints([0, 2, 1]) } },
      { name: name('shape_weight'), op: 'Reshape', inputs: [interleaved, shape([channels, 1, -1, weightDims[3]!])], outputs: [blockedWeight], attributes: {} },
      { name: name('conv'), op: 'Conv', domain: NCHWC, inputs: bias ? [blockedInput, blockedWeight, bias] : [blockedInput, blockedWeight], outputs: [blockedOutput], attributes: { ...node.attributes } },
      { name: name('reorder_output'), op: 'ReorderOutput', domain: NCHWC, inputs: [blockedOutput], outputs: node.outputs, attributes: { channels: attr.int(channels) } },
    );
  }
  graph.nodes.splice(0, graph.nodes.length, ...rewritten);
  return count;
}
