/**
 * Per-box Grad-CAM for CenterNet detectors (builtin:centernet and fine-tuned ones): each detection
 * is the heatmap's peak at one cell and class, so its score is that heatmap value, and Grad-CAM is
 * taken on the last feature map both heads share (the neck's output, found as the latest float
 * rank-4 tensor that the heatmap and the box sides both depend on). `src/autodiff` appends the
 * gradient of Σ heatmap · one-hot(cell, class) with respect to it; the backward stops there, so
 * the neck's Resize ops (no gradient rule) are never differentiated. Maps lie on the photo's grid
 * (the detector stretches the photo to its input, so the map is stretched back).
 */
import { readFile } from 'node:fs/promises';
import { ort, sessionOptions } from '../backbones/onnx-session.js';
import { encodeModel } from '../backbones/tfjs/onnx-graph.js';
import { matchScalarRanks, pruneToOutputs } from '../autodiff/graph-utils.js';
import { readTrainableModel, type TrainableModel } from '../autodiff/model.js';
import { GraphBuilder } from '../autodiff/builder.js';
import { CENTERNET_INPUT_SIZE, CENTERNET_STRIDE, decodeCenterNet } from '../detector/centernet.js';
import type { Detection } from '../detector/coco-eval.js';
import type { Detector } from '../detector/detector.js';
import { prepareDetectorInput } from '../detector/detector-input.js';
import { messageOf, modelError, usageError } from '../util/errors.js';
import { copyGraph, type FeatureMap } from './attribution-model.js';
import { camOf } from './grad-cam.js';
import { addTargetScoreGradient } from './gradient-runner.js';
import { argmax, normalised, resizeGrid, type Grid } from './pixel-grid.js';

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

export class DetectionExplainer {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly spec: CenterNetGraphSpec,
    private readonly names: { target: string; gradient: string },
    readonly featureMap: FeatureMap,
    readonly classes: number,
  ) {}

  /** For a loaded detector: CenterNet ones (builtin:centernet and fine-tuned folders); other layouts are refused, saying why. */
  static async forDetector(detector: Detector, threads?: number): Promise<DetectionExplainer> {
    const spec = detector.layout.graphSpec?.();
    if (spec?.kind !== 'centernet') {
      throw usageError(`per-box Grad-CAM needs a CenterNet detector (builtin:centernet or one fine-tuned from it); ${detector.reference} is a ${detector.layout.kind} model`);
    }
    return DetectionExplainer.create({ model: spec.model, origin: detector.reference, inputName: spec.inputName, heatmapOutput: spec.heatmapOutput, sidesOutput: spec.sidesOutput }, threads);
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

  async release(): Promise<void> {
    await this.session.release();
  }
}
