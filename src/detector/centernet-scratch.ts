/**
 * The builtin CenterNet's architecture from random initialisation: the from-scratch side of
 * `compare --task detect`. Its parameters are the Conv weights and biases, nothing else: the graph's
 * other float initializers are constants of the architecture (the FPN's Resize scales, a hard-swish
 * factor) and keep their values, as do shape and integer tensors.
 *
 * Weights are He-normal (std √(2 / fan-in), fan-in = input channels per group × kernel area, as
 * `scratch-cnn.ts` draws them); biases are zero except the class branch's, which starts at CenterNet's
 * heatmap prior (−2.19, sigmoid ≈ 0.1), as the CenterNet paper initialises it when training from
 * scratch: with a zero bias every one of the 128×128 cells starts at 0.5 and the focal loss of the
 * negatives swamps the first steps.
 *
 * The input is 0–255 pixels: the builtin's converter folded MobileNetV3's input scaling (x / 127.5 − 1)
 * into the first convolution, so He's draw for a unit-scale input gets that scaling folded back in
 * (W / 127.5, bias −ΣW); drawn for raw pixels it would start every activation ~100× too large.
 *
 * He's draw alone is not enough here: the builtin has no normalisation layers left (the converter
 * folded them into the convolutions), so ten residual additions and the FPN's sums grow activations
 * from rms ≈ 1 to ≈ 100 at the stride-4 map (measured), which saturates the heatmap. So, as LSUV
 * (Mishkin & Matas, "All you need is a good init", 2016) does for networks without normalisation,
 * each Conv's weights are then rescaled so that its output has unit rms on a few training images
 * (`normaliseConvOutputs`).
 */
import { createSession, ort } from '../backbones/onnx-session.js';
import { decodeModel, encodeModel, type OnnxGraph } from '../backbones/tfjs/onnx-graph.js';
import { modelError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { CENTERNET_HEAD, FRESH_CLASS_BIAS } from './centernet-head.js';

const LAYOUT_OPS = new Set(['Transpose', 'Identity', 'Reshape']);
/** MobileNet's input scaling, pixels in 0–255 → [−1, 1]. */
const PIXEL_SCALE = 127.5;

/** The Conv weights and biases of a graph (its trainable parameters), in graph order. */
export function convParameters(graph: OnnxGraph): string[] {
  const names = new Set<string>();
  for (const node of graph.nodes) {
    if (node.op !== 'Conv') continue;
    for (const name of node.inputs.slice(1, 3)) if (name && graph.initializers.get(name)?.dtype === 'float32') names.add(name);
  }
  return [...names];
}

/** Re-draws every Conv weight and bias of the graph in place, seeded; returns their names. */
export function reinitialiseConvs(graph: OnnxGraph, seed: number, origin: string): string[] {
  const rng = new Rng(seed);
  const biasOf = new Map<string, string>();
  for (const node of graph.nodes) if (node.op === 'Conv' && node.inputs[2]) biasOf.set(node.inputs[2], node.inputs[1]!);
  const names = convParameters(graph);
  const inputs = new Set(graph.inputs.map((input) => input.name));
  // Tensors that are the input itself, up to layout (the NHWC → NCHW Transpose).
  for (const node of graph.nodes) if (LAYOUT_OPS.has(node.op) && inputs.has(node.inputs[0]!)) for (const out of node.outputs) inputs.add(out);
  const first = graph.nodes.filter((node) => node.op === 'Conv' && inputs.has(node.inputs[0]!));
  if (first.length === 0) throw modelError('not the builtin CenterNet layout: no convolution reads the input', origin);
  if (!names.includes(CENTERNET_HEAD.classBias)) throw modelError('not the builtin CenterNet layout: its class branch bias is missing', origin);
  for (const name of names) {
    const initializer = graph.initializers.get(name)!;
    const count = initializer.data.length;
    let data: Float32Array;
    if (biasOf.has(name)) {
      data = new Float32Array(count).fill(name === CENTERNET_HEAD.classBias ? FRESH_CLASS_BIAS : 0);
    } else {
      // Conv weights are [out, in / group, kH, kW]: fan-in is everything but the first axis.
      const fanIn = count / initializer.dims[0]!;
      const std = Math.sqrt(2 / fanIn);
      data = Float32Array.from({ length: count }, () => rng.normal() * std);
    }
    graph.initializers.set(name, { dtype: 'float32', dims: [...initializer.dims], data });
  }
  for (const conv of first) foldInputScaling(graph, conv.inputs[1]!, conv.inputs[2], origin);
  return names;
}

/** conv(x / 127.5 − 1) as a conv of x: W / 127.5, bias − Σ W per output channel. */
function foldInputScaling(graph: OnnxGraph, weightName: string, biasName: string | undefined, origin: string): void {
  const weight = graph.initializers.get(weightName)!;
  if (!biasName) throw modelError('not the builtin CenterNet layout: its first convolution has no bias to fold the input scaling into', origin);
  const bias = graph.initializers.get(biasName)!;
  const out = weight.dims[0]!;
  const perChannel = weight.data.length / out;
  const w = Float32Array.from(weight.data as Float32Array, (v) => v / PIXEL_SCALE);
  const b = Float32Array.from(bias.data as Float32Array);
  for (let o = 0; o < out; o++) for (let k = 0; k < perChannel; k++) b[o]! -= (weight.data as Float32Array)[o * perChannel + k]!;
  graph.initializers.set(weightName, { dtype: 'float32', dims: [...weight.dims], data: w });
  graph.initializers.set(biasName, { dtype: 'float32', dims: [...bias.dims], data: b });
}

/**
 * Measured on the builtin from He's draw, one training image: after one pass the Conv outputs' rms
 * lie within 0.3–6, after two within 0.8–2.5 (the stride-4 map ≈ 1.2, the heatmap's mean ≈ the 0.1 prior).
 */
export const NORMALISE_PASSES = 2;

/** Ops whose output scales with their (first) input: a rescaled input rescales the output alike. */
const HOMOGENEOUS = new Set(['Relu', 'HardSwish', 'Resize', 'GlobalAveragePool', 'Transpose', 'Identity', 'Reshape', 'MaxPool', 'AveragePool']);
/** Ops with bounded output (the squeeze-excite gates): unchanged by their input's scale, to first order. */
const BOUNDED = new Set(['Sigmoid', 'HardSigmoid']);

/**
 * LSUV's second step: rescales every Conv's weight (and bias) in place so that its output has rms 1
 * on `batch` (NHWC pixels fed to `inputName`), except that the class branch keeps its prior bias.
 * One forward measures every Conv output at once; the rescaling then walks the graph in order,
 * carrying how much each tensor has been scaled (homogeneous ops pass the factor on, a product
 * multiplies, a sum or concatenation takes the geometric mean, the sigmoid gates reset it), which is
 * exact for a chain and close for the rest; `passes` measurements refine it.
 */
export async function normaliseConvOutputs(graph: OnnxGraph, batch: { inputName: string; pixels: Float32Array; dims: number[] }, origin: string, passes = NORMALISE_PASSES): Promise<void> {
  const convs = graph.nodes.filter((node) => node.op === 'Conv' && graph.initializers.get(node.inputs[1]!)?.dtype === 'float32');
  for (let pass = 0; pass < passes; pass++) {
    const measured = await convOutputRms(graph, convs.map((node) => node.outputs[0]!), batch, origin);
    const rmsOf = new Map(convs.map((node, i) => [node.outputs[0]!, measured[i]!]));
    const factor = new Map<string, number>();
    const of = (tensor: string) => factor.get(tensor) ?? 1;
    for (const node of graph.nodes) {
      const out = node.outputs[0];
      if (!out) continue;
      const data = node.inputs.filter((input) => input && !graph.initializers.has(input));
      if (node.op === 'Conv' && rmsOf.has(out)) {
        const inScale = of(node.inputs[0]!);
        const rms = rmsOf.get(out)!;
        if (!(rms > 0) || !Number.isFinite(rms)) throw modelError(`cannot initialise ${node.name}: its output rms is ${rms}`, origin);
        // New output = α · inScale · old output; choose α so that it has rms 1.
        const alpha = 1 / (rms * inScale);
        scaleInitializer(graph, node.inputs[1]!, alpha);
        if (node.inputs[2] && node.inputs[2] !== CENTERNET_HEAD.classBias) scaleInitializer(graph, node.inputs[2], alpha * inScale);
        factor.set(out, 1 / rms);
      } else if (HOMOGENEOUS.has(node.op)) factor.set(out, of(node.inputs[0]!));
      else if (BOUNDED.has(node.op)) factor.set(out, 1);
      else if (node.op === 'Mul') factor.set(out, data.reduce((p, input) => p * of(input), 1));
      else if (data.length > 0) factor.set(out, Math.exp(data.reduce((sum, input) => sum + Math.log(of(input)), 0) / data.length));
    }
  }
}

function scaleInitializer(graph: OnnxGraph, name: string, factor: number): void {
  const initializer = graph.initializers.get(name)!;
  graph.initializers.set(name, { dtype: 'float32', dims: [...initializer.dims], data: Float32Array.from(initializer.data as Float32Array, (v) => v * factor) });
}

/** The rms of each named tensor on the batch, from one run of the graph with them as outputs. */
async function convOutputRms(graph: OnnxGraph, tensors: string[], batch: { inputName: string; pixels: Float32Array; dims: number[] }, origin: string): Promise<number[]> {
  const probe = decodeModel(encodeModel(graph, 'centernet-init', ''), origin);
  probe.outputs = tensors.map((name) => ({ name, shape: [-1, -1, -1, -1] }));
  const session = await createSession(encodeModel(probe, 'centernet-init', ''), `${origin} (initialisation probe)`);
  try {
    const result = await session.run({ [batch.inputName]: new ort.Tensor('float32', batch.pixels, batch.dims) });
    return tensors.map((name) => {
      const values = result[name]!.data as Float32Array;
      let sum = 0;
      for (const v of values) sum += v * v;
      return Math.sqrt(sum / values.length);
    });
  } finally {
    await session.release();
  }
}
