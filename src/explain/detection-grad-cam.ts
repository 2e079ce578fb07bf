/**
 * Per-box Grad-CAM for CenterNet detectors (builtin:centernet and fine-tuned ones): each detection
 * is the heatmap's peak at one cell and class, so its score is that heatmap value, and Grad-CAM is
 * taken on the last feature map both heads share (the neck's output, found as the latest float
 * rank-4 tensor that the heatmap and the box sides both depend on). `src/autodiff` appends the
 * gradient of Σ heatmap · one-hot(cell, class) with respect to it; the backward stops there, so
 * the neck's Resize ops (no gradient rule) are never differentiated. Maps lie on the photo's grid
 * (the detector stretches the photo to its input, so the map is stretched back).
 *
 * Ultralytics YOLO exports and DETR folders go the same way with a per-anchor / per-query score:
 * `decodeYolo` / `decodeDetr` remember the column of output0 or the query behind each box, the
 * score is output0[4 + class, anchor] (YOLO) or softmax(logits)[query, class] (DETR, the probability
 * the box reports), and Grad-CAM is taken on the last feature map before the head (`headFeatureMap`).
 * Their maps are laid back through the layout's geometry (YOLO's letterbox padding is cut away).
 */
import { readFile } from 'node:fs/promises';
import { ort, sessionOptions } from '../backbones/onnx-session.js';
import { attr, decodeModel, encodeModel } from '../backbones/tfjs/onnx-graph.js';
import { defaultProbeFeeds, type ProbeFeeds } from '../autodiff/tensor-info.js';
import { matchScalarRanks, pruneToOutputs } from '../autodiff/graph-utils.js';
import { readTrainableModel, type TrainableModel } from '../autodiff/model.js';
import { GraphBuilder } from '../autodiff/builder.js';
import { CENTERNET_INPUT_SIZE, CENTERNET_STRIDE, decodeCenterNet } from '../detector/centernet.js';
import type { Detection } from '../detector/coco-eval.js';
import type { Detector } from '../detector/detector.js';
import { decodeDetr } from '../detector/detr-layout.js';
import type { DetectorLayout, PreparedImage } from '../detector/layout.js';
import { decodeYolo } from '../detector/yolo-layout.js';
import { prepareDetectorInput } from '../detector/detector-input.js';
import { messageOf, modelError, usageError } from '../util/errors.js';
import { copyGraph, type FeatureMap } from './attribution-model.js';
import { camOf } from './grad-cam.js';
import { addTargetScoreGradient } from './gradient-runner.js';
import { argmax, normalised, resizeGrid, sampleBilinear, type Grid } from './pixel-grid.js';

export interface CenterNetGraphSpec {
  model: string | Uint8Array;
  origin: string;
  inputName: string;
  heatmapOutput: string;
  sidesOutput: string;
}

export interface BoxExplanation extends Detection {
  /** The map on the photo's own pixel grid, values in [0, 1]. */
  map: Grid;
  peak: { x: number; y: number };
  /** Grad-CAM on the shared feature map's grid. */
  raw: Grid;
}

/** Tensors `output` depends on (its producer's inputs, recursively). */
function ancestors(model: TrainableModel, output: string): Set<string> {
  const producer = new Map(model.graph.nodes.flatMap((node) => node.outputs.map((name) => [name, node] as const)));
  const seen = new Set<string>();
  const stack = [output];
  while (stack.length > 0) {
    const name = stack.pop()!;
    for (const input of producer.get(name)?.inputs ?? []) if (input && !seen.has(input)) (seen.add(input), stack.push(input));
  }
  return seen;
}

/** The latest float rank-4 spatial tensor both heads depend on. */
function sharedFeatureMap(model: TrainableModel, heatmap: string, sides: string): FeatureMap | undefined {
  const [a, b] = [ancestors(model, heatmap), ancestors(model, sides)];
  for (let n = model.graph.nodes.length - 1; n >= 0; n--) {
    for (const output of model.graph.nodes[n]!.outputs) {
      const info = model.info.get(output);
      const dims = info?.dims;
      if (!a.has(output) || !b.has(output) || info?.dtype !== 'float32' || dims?.length !== 4 || dims[0] !== -1) continue;
      // The converted TF graph computes in NCHW between its first and last Transpose.
      const [channels, height, width] = dims[2] === dims[3] ? [dims[1]!, dims[2]!, dims[3]!] : [dims[3]!, dims[1]!, dims[2]!];
      if (height * width > 1) return { tensor: output, layout: dims[2] === dims[3] ? 'NCHW' : 'NHWC', channels, height, width, block: -1 };
    }
  }
  return undefined;
}

/**
 * The last feature map before the head of a YOLO / DETR graph: the data input of the latest Conv
 * that every output depends on (YOLO's head convolutions, DETR's input projection), when that is a
 * spatial map computed from the input; else the latest float rank-4 tensor with more than one cell
 * that depends on the input and that every output depends on (a head without convolutions).
 */
export function headFeatureMap(model: TrainableModel, outputs: string[], input: string): string | undefined {
  const needed = outputs.map((output) => ancestors(model, output));
  const fromInput = new Set<string>([input]);
  for (const node of model.graph.nodes) if (node.inputs.some((name) => fromInput.has(name))) for (const output of node.outputs) fromInput.add(output);
  const producer = new Map(model.graph.nodes.flatMap((node) => node.outputs.map((name) => [name, node.op] as const)));
  const inputDims = model.info.get(input)?.dims ?? [];
  // With a dynamic input size the recorded shapes come from a small probe: a 1×1 map there may be
  // a real map, so only ops that always pool space away are ruled out by name.
  const fixedInput = inputDims.length === 4 && inputDims[2]! > 0 && inputDims[3]! > 0;
  const pooled = (name: string, dims: number[]) => ['GlobalAveragePool', 'GlobalMaxPool', 'GlobalLpPool'].includes(producer.get(name) ?? '') || (fixedInput && dims[2]! * dims[3]! <= 1);
  const spatial = (name: string) => {
    const info = model.info.get(name);
    const dims = info?.dims;
    return info?.dtype === 'float32' && dims?.length === 4 && fromInput.has(name) && name !== input && needed.every((set) => set.has(name)) && !pooled(name, dims);
  };
  for (let n = model.graph.nodes.length - 1; n >= 0; n--) {
    const node = model.graph.nodes[n]!;
    if (node.op !== 'Conv' || !needed.every((set) => node.outputs.some((name) => set.has(name)))) continue;
    if (spatial(node.inputs[0]!)) return node.inputs[0]!;
    break;
  }
  for (let n = model.graph.nodes.length - 1; n >= 0; n--) for (const output of model.graph.nodes[n]!.outputs) if (spatial(output)) return output;
  return undefined;
}

/**
 * Probe inputs whose dynamic height and width change with the probe's batch (16× it): the default
 * probe sets them to the batch size, 2 and 3, which a strided backbone shrinks to the same 1×1 map,
 * so the map would be recorded as fixed at 1×1 and a mean over it (GlobalAveragePool's gradient)
 * scaled for one cell. DETR takes any image size.
 */
function spatialProbeFeeds(bytes: Uint8Array, origin: string, input: string): ProbeFeeds {
  const inputs = decodeModel(bytes, origin).inputs;
  return (batch) => {
    const feeds = defaultProbeFeeds(inputs)(batch);
    const declared = inputs.find((i) => i.name === input)!.shape;
    const dims = declared.map((size, axis) => (size >= 0 ? size : axis === 0 ? batch : batch * 16));
    const count = dims.reduce((a, b) => a * b, 1);
    feeds[input] = new ort.Tensor('float32', Float32Array.from({ length: count }, (_, i) => Math.sin(i * 0.37 + batch)), dims);
    return feeds;
  };
}

/** How a YOLO / DETR graph's outputs become anchored boxes and one flat row of scores to pick from. */
interface ScoreRows {
  layout: DetectorLayout;
  inputName: string;
  outputs: string[];
  /** The input tensor's shape for a prepared image. */
  inputDims(image: PreparedImage): number[];
  /** Boxes with, for each, the index of its score in the flat score row. */
  decode(outputs: Record<string, ort.Tensor>, image: PreparedImage, threshold: number, maxDetections: number): { detection: Detection; index: number }[];
  /** Where the feature map's grid lies in the image's pixels. */
  placement(image: PreparedImage): { left: number; top: number; width: number; height: number };
}

export class DetectionExplainer {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly spec: CenterNetGraphSpec,
    private readonly names: { target: string; gradient: string },
    readonly featureMap: FeatureMap,
    readonly classes: number,
    private readonly rows?: ScoreRows & { width: number },
  ) {}

  /** For a loaded detector: CenterNet ones (builtin:centernet and fine-tuned folders), Ultralytics YOLO exports and DETR folders; other layouts are refused, saying why. */
  static async forDetector(detector: Detector, threads?: number): Promise<DetectionExplainer> {
    const spec = detector.layout.graphSpec?.();
    if (!spec) throw usageError(`per-box Grad-CAM covers CenterNet, Ultralytics YOLO and DETR detectors; ${detector.reference} is a ${detector.layout.kind} model`);
    if (spec.kind === 'centernet') return DetectionExplainer.create({ model: spec.model, origin: detector.reference, inputName: spec.inputName, heatmapOutput: spec.heatmapOutput, sidesOutput: spec.sidesOutput }, threads);
    const layout = detector.layout;
    const classes = detector.classes.length;
    const origin = typeof spec.model === 'string' ? spec.model : detector.reference;
    if (spec.kind === 'ultralytics-yolo') {
      return DetectionExplainer.createRows(spec.model, origin, spec.outputName, [spec.outputName], threads, {
        layout, inputName: spec.inputName, outputs: [spec.outputName],
        inputDims: () => [1, 3, spec.inputHeight, spec.inputWidth],
        decode: (outputs, image, threshold, max) => {
          const count = Number(outputs[spec.outputName]!.dims[2]);
          // output0 flattened: the score of class c at anchor n is entry (4 + c)·N + n.
          return decodeYolo(outputs[spec.outputName]!.data as Float32Array, classes, count, image, threshold, max).map(({ anchor, ...detection }) => ({ detection, index: (4 + detection.label) * count + anchor }));
        },
        placement: (image) => ({ left: -image.padX * image.scaleX, top: -image.padY * image.scaleY, width: spec.inputWidth * image.scaleX, height: spec.inputHeight * image.scaleY }),
      });
    }
    return DetectionExplainer.createRows(spec.model, origin, spec.logitsOutput, [spec.logitsOutput, spec.boxesOutput], threads, {
      layout, inputName: spec.inputName, outputs: [spec.logitsOutput, spec.boxesOutput],
      // DetrLayout.prepare keeps the resized size in scaleX / scaleY.
      inputDims: (image) => [1, 3, image.scaleY, image.scaleX],
      decode: (outputs, image, threshold, max) => {
        const queries = Number(outputs[spec.logitsOutput]!.dims[1]);
        return decodeDetr(outputs[spec.logitsOutput]!.data as Float32Array, outputs[spec.boxesOutput]!.data as Float32Array, queries, classes, image, threshold, max).map(({ query, ...detection }) => ({ detection, index: query * (classes + 1) + detection.label }));
      },
      placement: (image) => ({ left: 0, top: 0, width: image.width, height: image.height }),
    }, true);
  }

  /** YOLO / DETR: the gradient of one entry of `scoresOutput` (softmaxed over its last axis when `softmax`) with respect to the feature map before the head. */
  private static async createRows(modelFile: string | Uint8Array, origin: string, scoresOutput: string, headOutputs: string[], threads: number | undefined, rows: ScoreRows, softmax = false): Promise<DetectionExplainer> {
    const bytes = typeof modelFile === 'string' ? await readFile(modelFile) : modelFile;
    const model = await readTrainableModel(bytes, origin, spatialProbeFeeds(bytes, origin, rows.inputName));
    const tensor = headFeatureMap(model, headOutputs, rows.inputName);
    if (!tensor) throw modelError(`no float [batch, channels, height, width] feature map before the ${rows.layout.kind} head (computed from "${rows.inputName}" and feeding ${headOutputs.map((name) => `"${name}"`).join(' and ')}), to take Grad-CAM on`, origin);
    const graph = copyGraph(model.graph);
    const info = new Map(model.info);
    const dims = info.get(scoresOutput)?.dims ?? [];
    const width = dims.slice(1).reduce((x, y) => x * y, 1);
    if (!(width > 0)) throw modelError(`"${scoresOutput}" has no fixed shape [1, …] (got [${dims.join(', ')}]): per-box Grad-CAM needs it`, origin);
    const b = new GraphBuilder(graph, info, 'explain/');
    const scores = softmax ? b.op('Softmax', [scoresOutput], { axis: attr.int(-1) }, 'probabilities', dims) : scoresOutput;
    const flat = b.op('Flatten', [scores], {}, 'score_rows', [-1, width]);
    const { target, gradient } = addTargetScoreGradient(graph, info, flat, width, tensor, origin);
    graph.outputs = [...rows.outputs, tensor, gradient].map((name) => ({ name, shape: info.get(name)?.dims ?? [] }));
    pruneToOutputs(graph);
    matchScalarRanks(graph, info);
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(encodeModel(graph, 'explain', `detections and the gradient of one box's score with respect to the feature map before the head`, { producer: 'headstart explain' }), sessionOptions(threads, { spinning: false }));
    } catch (error) {
      throw modelError(`onnxruntime cannot load the explanation graph: ${messageOf(error)}`, origin, error);
    }
    const featureDims = info.get(tensor)!.dims!;
    const featureMap: FeatureMap = { tensor, layout: 'NCHW', channels: featureDims[1]!, height: featureDims[2]!, width: featureDims[3]!, block: -1 };
    const spec: CenterNetGraphSpec = { model: modelFile, origin, inputName: rows.inputName, heatmapOutput: '', sidesOutput: '' };
    return new DetectionExplainer(session, spec, { target, gradient }, featureMap, width, { ...rows, width });
  }

  static async create(spec: CenterNetGraphSpec, threads?: number): Promise<DetectionExplainer> {
    const bytes = typeof spec.model === 'string' ? await readFile(spec.model) : spec.model;
    const model = await readTrainableModel(bytes, spec.origin);
    const featureMap = sharedFeatureMap(model, spec.heatmapOutput, spec.sidesOutput);
    if (!featureMap) throw modelError('no spatial feature map that both detection heads share, to take Grad-CAM on', spec.origin);
    const graph = copyGraph(model.graph);
    const info = new Map(model.info);
    const heatmapDims = info.get(spec.heatmapOutput)!.dims!;
    const cells = heatmapDims.slice(1).reduce((x, y) => x * y, 1);
    // The heatmap as [batch, cells·classes] "logits": a one-hot row picks one detection's score.
    const flat = new GraphBuilder(graph, info, 'explain/').op('Flatten', [spec.heatmapOutput], {}, 'heatmap_rows', [-1, cells]);
    const { target, gradient } = addTargetScoreGradient(graph, info, flat, cells, featureMap.tensor, spec.origin);
    graph.outputs = [spec.heatmapOutput, spec.sidesOutput, featureMap.tensor, gradient].map((name) => ({ name, shape: info.get(name)?.dims ?? [] }));
    pruneToOutputs(graph);
    matchScalarRanks(graph, info);
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(encodeModel(graph, 'explain', 'detections and the gradient of one heatmap peak with respect to the shared feature map', { producer: 'headstart explain' }), sessionOptions(threads, { spinning: false }));
    } catch (error) {
      throw modelError(`onnxruntime cannot load the explanation graph: ${messageOf(error)}`, spec.origin, error);
    }
    return new DetectionExplainer(session, spec, { target, gradient }, featureMap, heatmapDims[3]!);
  }

  /**
   * Detects as `Detector.detect` decodes (threshold, at most `maxDetections`), then Grad-CAM per box —
   * for every box, or for those `only` keeps (each map is one more forward and backward pass).
   */
  async explain(bytes: Uint8Array, options: { threshold?: number; maxDetections?: number; source?: string; only?: (detection: Detection, index: number) => boolean } = {}): Promise<BoxExplanation[]> {
    if (this.rows) return this.explainRows(this.rows, bytes, options);
    const size = CENTERNET_INPUT_SIZE;
    const grid = size / CENTERNET_STRIDE;
    const { pixels, width, height } = await prepareDetectorInput(bytes, size, options.source);
    const input = new ort.Tensor('float32', Float32Array.from(pixels), [1, size, size, 3]);
    const cells = grid * grid * this.classes;
    const run = async (oneHot: Float32Array) => {
      const outputs = await this.session.run({ [this.spec.inputName]: input, [this.names.target]: new ort.Tensor('float32', oneHot, [1, cells]) });
      const data = (name: string) => outputs[name]!.data as Float32Array;
      return { heatmap: data(this.spec.heatmapOutput), sides: data(this.spec.sidesOutput), activations: data(this.featureMap.tensor), gradient: data(this.names.gradient) };
    };
    const first = await run(new Float32Array(cells));
    const decode = { threshold: options.threshold ?? 0.3, maxDetections: options.maxDetections ?? 20 };
    const detections = decodeCenterNet(first.heatmap, first.sides, grid, grid, this.classes, { ...decode, scaleX: width / size, scaleY: height / size, width, height });
    // The same peaks with zero sides: each "box" is its cell's corner, which names the heatmap entry.
    const peaks = decodeCenterNet(first.heatmap, new Float32Array(first.sides.length), grid, grid, this.classes, { ...decode, scaleX: 1, scaleY: 1, width: size, height: size });
    const out: BoxExplanation[] = [];
    for (let d = 0; d < detections.length; d++) {
      if (options.only && !options.only(detections[d]!, d)) continue;
      const [x, y] = [peaks[d]!.box[0] / CENTERNET_STRIDE, peaks[d]!.box[1] / CENTERNET_STRIDE];
      const oneHot = new Float32Array(cells);
      oneHot[(y * grid + x) * this.classes + peaks[d]!.label] = 1;
      const { activations, gradient } = await run(oneHot);
      const raw = camOf(this.featureMap, activations, gradient);
      const map = normalised(resizeGrid(raw, width, height));
      out.push({ ...detections[d]!, map, peak: argmax(map), raw });
    }
    return out;
  }

  /** The YOLO / DETR path: the layout's own preparation and decoding, one forward and backward per box. */
  private async explainRows(rows: ScoreRows & { width: number }, bytes: Uint8Array, options: { threshold?: number; maxDetections?: number; source?: string; only?: (detection: Detection, index: number) => boolean }): Promise<BoxExplanation[]> {
    const image = await rows.layout.prepare(bytes, options.source);
    const input = new ort.Tensor('float32', image.data, rows.inputDims(image));
    const run = (oneHot: Float32Array) => this.session.run({ [rows.inputName]: input, [this.names.target]: new ort.Tensor('float32', oneHot, [1, rows.width]) });
    const first = await run(new Float32Array(rows.width));
    const boxes = rows.decode(first, image, options.threshold ?? 0.3, options.maxDetections ?? 20);
    const out: BoxExplanation[] = [];
    for (const [d, { detection, index }] of boxes.entries()) {
      if (options.only && !options.only(detection, d)) continue;
      const oneHot = new Float32Array(rows.width);
      oneHot[index] = 1;
      const outputs = await run(oneHot);
      const features = outputs[this.featureMap.tensor]!;
      // DETR takes any input size: the feature map's grid is read from the run.
      const [, channels, height, width] = features.dims.map(Number) as [number, number, number, number];
      const raw = camOf({ ...this.featureMap, channels, height, width }, features.data as Float32Array, outputs[this.names.gradient]!.data as Float32Array);
      const map = normalised(sampleBilinear(raw, image.width, image.height, rows.placement(image)));
      out.push({ ...detection, map, peak: argmax(map), raw });
    }
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
